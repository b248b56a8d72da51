//! BIMI (Brand Indicators for Message Identification, draft-brand-
//! indicators-for-message-identification): the `default._bimi` record with
//! the logo (`l=`) and the mark certificate (`a=`). Receivers show the logo
//! only for mail that passes DMARC under an enforcing policy, so the check
//! takes the DMARC policy in force.

use serde::Serialize;

use super::dmarc::Policy;
use super::tags::{Tag, clip, parse_tag_list};
use super::{Area, Finding, Severity};

/// Tags the BIMI draft defines.
const KNOWN_TAGS: &[&str] = &["v", "l", "a", "avp", "lps"];

/// True if `txt` is a BIMI record (`v=BIMI1` first).
pub fn is_bimi_record(txt: &str) -> bool {
    parse_tag_list(txt)
        .tags
        .first()
        .is_some_and(|t| t.name.eq_ignore_ascii_case("v") && t.value.eq_ignore_ascii_case("BIMI1"))
}

/// A parsed BIMI record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BimiRecord {
    /// All tags.
    pub tags: Vec<Tag>,
    /// `l=`: the SVG logo's URL (empty: the domain declines BIMI).
    pub logo: Option<String>,
    /// `a=`: the mark certificate's URL.
    pub authority: Option<String>,
    /// Problems that make receivers ignore the record.
    pub errors: Vec<String>,
    /// Tags the draft does not define.
    pub unknown: Vec<String>,
}

/// Checks an `https://host/…` URL; returns the problem.
fn https_problem(url: &str) -> Option<String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Some(format!("`{}` is not an https:// URL", clip(url)));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    super::domain::check_name(&host.to_ascii_lowercase())
        .err()
        .map(|e| format!("host of `{}`: {e}", clip(url)))
}

/// Parses a BIMI record.
pub fn parse_bimi(text: &str) -> BimiRecord {
    let list = parse_tag_list(text);
    let mut r = BimiRecord {
        errors: list.problems.clone(),
        ..BimiRecord::default()
    };
    if !is_bimi_record(text) {
        r.errors.push("the record must start with `v=BIMI1`".into());
    }
    for tag in &list.tags {
        let name = tag.name.to_ascii_lowercase();
        let v = tag.value.trim();
        match name.as_str() {
            "l" | "a" => {
                if !v.is_empty()
                    && let Some(p) = https_problem(v)
                {
                    r.errors.push(format!("`{name}=`: {p}"));
                }
                if name == "l" {
                    r.logo = Some(v.to_owned());
                } else {
                    r.authority = Some(v.to_owned());
                }
            }
            _ if KNOWN_TAGS.contains(&name.as_str()) => {}
            _ => r.unknown.push(tag.name.clone()),
        }
    }
    if r.logo.is_none() {
        r.errors.push("no `l=` tag (the logo's https URL)".into());
    }
    r.tags = list.tags;
    r
}

/// The DMARC policy in force for the domain, as BIMI needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmarcEnforcement {
    /// The policy applied to the domain's mail.
    pub policy: Policy,
    /// `pct`.
    pub pct: u8,
    /// `sp` of the record, when it sets one: BIMI also wants it enforcing.
    pub subdomain_policy: Option<Policy>,
}

fn bimi(id: &'static str, severity: Severity, domain: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::Bimi, severity, domain, message)
}

/// Checks the BIMI records at `default._bimi.<domain>`. No record: no
/// finding (BIMI is optional). `dmarc` is `None` when no DMARC policy
/// applies.
pub fn check_bimi(
    domain: &str,
    records: &[String],
    dmarc: Option<DmarcEnforcement>,
) -> (Option<BimiRecord>, Vec<Finding>) {
    let name = format!("default._bimi.{domain}");
    let text = match records {
        [] => return (None, Vec::new()),
        [one] => one,
        many => {
            let mut f = bimi(
                "bimi.multiple",
                Severity::Warning,
                domain,
                format!("{} BIMI records at {name}: receivers show no logo", many.len()),
            )
            .fix("keep one record");
            for r in many {
                f = f.evidence(format!("TXT {name}: {r}"));
            }
            return (None, vec![f]);
        }
    };
    let record = parse_bimi(text);
    let evidence = format!("TXT {name}: {text}");
    let mut out = Vec::new();
    if !record.errors.is_empty() {
        let mut f = bimi(
            "bimi.invalid",
            Severity::Warning,
            domain,
            "the BIMI record is invalid: receivers show no logo",
        )
        .fix(format!(
            "publish `v=BIMI1; l=https://{domain}/logo.svg; a=https://{domain}/vmc.pem` with https URLs"
        ))
        .evidence(&evidence);
        for e in &record.errors {
            f = f.evidence(e.clone());
        }
        out.push(f);
        return (Some(record), out);
    }
    if record.logo.as_deref() == Some("") {
        out.push(
            bimi(
                "bimi.declined",
                Severity::Info,
                domain,
                "the BIMI record declines to show a logo (empty l=)",
            )
            .evidence(evidence),
        );
        return (Some(record), out);
    }
    out.push(
        bimi(
            "bimi.present",
            Severity::Pass,
            domain,
            format!("BIMI logo at {}", record.logo.as_deref().unwrap_or("")),
        )
        .evidence(evidence),
    );
    if let Some(logo) = &record.logo
        && !logo
            .to_ascii_lowercase()
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .ends_with(".svg")
    {
        out.push(bimi(
            "bimi.logo.format",
            Severity::Info,
            domain,
            "the logo URL does not end in .svg: BIMI logos are SVG Tiny PS files",
        ));
    }
    if record.authority.as_deref().is_none_or(str::is_empty) {
        out.push(bimi(
            "bimi.vmc.missing",
            Severity::Info,
            domain,
            "no a= (mark certificate): Gmail and Apple Mail show logos only with a VMC or CMC",
        ));
    }
    if !record.unknown.is_empty() {
        out.push(bimi(
            "bimi.tag.unknown",
            Severity::Info,
            domain,
            format!("unknown tags {} are ignored", record.unknown.join(", ")),
        ));
    }
    let enforced = dmarc.is_some_and(|d| {
        d.policy != Policy::None && d.pct == 100 && d.subdomain_policy != Some(Policy::None)
    });
    if !enforced {
        let now = match dmarc {
            None => "there is no DMARC policy".to_owned(),
            Some(d) if d.policy == Policy::None => "the DMARC policy is none".to_owned(),
            Some(d) if d.pct < 100 => format!("DMARC applies to only {}% of mail (pct={})", d.pct, d.pct),
            Some(_) => "sp=none leaves subdomains unenforced".to_owned(),
        };
        out.push(
            bimi(
                "bimi.dmarc.not-enforced",
                Severity::Warning,
                domain,
                format!("BIMI needs DMARC enforcement (p=quarantine or reject at pct=100), but {now}: no logo is shown"),
            )
            .fix("move DMARC to p=quarantine or p=reject with pct=100"),
        );
    }
    (Some(record), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id, f.severity)).collect()
    }

    const ENFORCED: Option<DmarcEnforcement> = Some(DmarcEnforcement {
        policy: Policy::Reject,
        pct: 100,
        subdomain_policy: None,
    });

    #[test]
    fn checks_records() {
        let good = "v=BIMI1; l=https://ex.test/logo.svg; a=https://ex.test/vmc.pem".to_owned();
        let (r, f) = check_bimi("ex.test", std::slice::from_ref(&good), ENFORCED);
        assert_eq!(ids(&f), [("bimi.present", Severity::Pass)]);
        assert_eq!(r.unwrap().authority.as_deref(), Some("https://ex.test/vmc.pem"));
        assert!(check_bimi("ex.test", &[], ENFORCED).1.is_empty());
        let (_, f) = check_bimi(
            "ex.test",
            std::slice::from_ref(&good),
            Some(DmarcEnforcement {
                policy: Policy::None,
                pct: 100,
                subdomain_policy: None,
            }),
        );
        assert!(ids(&f).contains(&("bimi.dmarc.not-enforced", Severity::Warning)));
        let (_, f) = check_bimi(
            "ex.test",
            std::slice::from_ref(&good),
            Some(DmarcEnforcement {
                policy: Policy::Reject,
                pct: 50,
                subdomain_policy: None,
            }),
        );
        assert!(f.iter().any(|f| f.message.contains("pct=50")));
        let sp_none = Some(DmarcEnforcement {
            policy: Policy::Reject,
            pct: 100,
            subdomain_policy: Some(Policy::None),
        });
        let (_, f) = check_bimi("ex.test", std::slice::from_ref(&good), sp_none);
        assert!(f.iter().any(|f| f.message.contains("sp=none")));
        let (_, f) = check_bimi("ex.test", std::slice::from_ref(&good), None);
        assert!(f.iter().any(|f| f.message.contains("no DMARC policy")));
        let (_, f) = check_bimi(
            "ex.test",
            &["v=BIMI1; l=http://ex.test/logo.svg".into()],
            ENFORCED,
        );
        assert_eq!(ids(&f), [("bimi.invalid", Severity::Warning)]);
        let (_, f) = check_bimi(
            "ex.test",
            &["v=BIMI1; l=https://ex.test/logo.png; x=1".into()],
            ENFORCED,
        );
        assert_eq!(
            ids(&f),
            [
                ("bimi.present", Severity::Pass),
                ("bimi.logo.format", Severity::Info),
                ("bimi.vmc.missing", Severity::Info),
                ("bimi.tag.unknown", Severity::Info),
            ]
        );
        let (_, f) = check_bimi("ex.test", &["v=BIMI1; l=; a=;".into()], None);
        assert_eq!(ids(&f), [("bimi.declined", Severity::Info)]);
        let (_, f) = check_bimi("ex.test", &[good.clone(), good], ENFORCED);
        assert_eq!(ids(&f), [("bimi.multiple", Severity::Warning)]);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_bimi(&text);
            let _ = check_bimi("ex.test", std::slice::from_ref(&text), None);
        }

        #[test]
        fn well_formed_records_parse(host in "[a-z]{1,10}\\.test", path in "[a-z]{1,10}") {
            let text = format!("v=BIMI1; l=https://{host}/{path}.svg; a=https://{host}/{path}.pem");
            let r = parse_bimi(&text);
            prop_assert!(r.errors.is_empty(), "{text}: {r:?}");
            prop_assert_eq!(r.logo, Some(format!("https://{host}/{path}.svg")));
        }
    }
}
