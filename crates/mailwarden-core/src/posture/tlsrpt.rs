//! SMTP TLS Reporting (RFC 8460): the `_smtp._tls` record that tells
//! sending servers where to report TLS failures (failed STARTTLS, MTA-STS
//! or DANE validation) for the domain.

use serde::Serialize;

use super::dmarc::{ReportUri, parse_report_uri};
use super::tags::{clip, parse_tag_list};
use super::{Area, Finding, Severity};

/// True if `txt` is a TLS-RPT record (`v=TLSRPTv1` first).
pub fn is_tlsrpt_record(txt: &str) -> bool {
    parse_tag_list(txt)
        .tags
        .first()
        .is_some_and(|t| t.name == "v" && t.value == "TLSRPTv1")
}

/// A parsed TLS-RPT record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsRptRecord {
    /// The report destinations.
    pub rua: Vec<ReportUri>,
    /// Problems that make senders ignore the record.
    pub errors: Vec<String>,
}

/// Parses a TLS-RPT record.
pub fn parse_tlsrpt(text: &str) -> TlsRptRecord {
    let list = parse_tag_list(text);
    let mut r = TlsRptRecord {
        errors: list.problems.clone(),
        ..TlsRptRecord::default()
    };
    if !is_tlsrpt_record(text) {
        r.errors.push("the record must start with `v=TLSRPTv1`".into());
    }
    match list.get("rua") {
        Some(v) => {
            r.rua = v
                .split(',')
                .filter(|u| !u.trim().is_empty())
                .take(32)
                .map(|u| parse_report_uri(u, false))
                .collect();
            if r.rua.is_empty() {
                r.errors.push("`rua=` is empty".into());
            }
        }
        None => r
            .errors
            .push("no `rua=`: the record names no report destination".into()),
    }
    r
}

fn tlsrpt(id: &'static str, severity: Severity, domain: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::TlsRpt, severity, domain, message)
}

/// Checks the TLS-RPT records found at `_smtp._tls.<domain>` (only those
/// starting with `v=TLSRPTv1`). `mta_sts` says whether the domain
/// publishes MTA-STS: then missing reports are a warning, since TLS
/// failures would go unnoticed.
pub fn check_tlsrpt(domain: &str, records: &[String], mta_sts: bool) -> (Option<TlsRptRecord>, Vec<Finding>) {
    let name = format!("_smtp._tls.{domain}");
    let fix = format!("publish TXT at {name}: `v=TLSRPTv1; rua=mailto:tls-reports@{domain}`");
    let text = match records {
        [] => {
            let (severity, why) = if mta_sts {
                (
                    Severity::Warning,
                    "the domain enforces TLS with MTA-STS but will not hear when delivery to it fails",
                )
            } else {
                (
                    Severity::Info,
                    "senders cannot report TLS problems delivering to this domain",
                )
            };
            return (
                None,
                vec![
                    tlsrpt(
                        "tls-rpt.missing",
                        severity,
                        domain,
                        format!("no TLS-RPT record at {name}: {why}"),
                    )
                    .fix(fix),
                ],
            );
        }
        [one] => one,
        many => {
            let mut f = tlsrpt(
                "tls-rpt.multiple",
                Severity::Warning,
                domain,
                format!(
                    "{} TLS-RPT records at {name}: senders ignore them all (RFC 8460 §3)",
                    many.len()
                ),
            )
            .fix("keep one record");
            for r in many {
                f = f.evidence(format!("TXT {name}: {r}"));
            }
            return (None, vec![f]);
        }
    };
    let record = parse_tlsrpt(text);
    let evidence = format!("TXT {name}: {text}");
    let mut out = Vec::new();
    if !record.errors.is_empty() {
        let mut f = tlsrpt(
            "tls-rpt.invalid",
            Severity::Warning,
            domain,
            "the TLS-RPT record is invalid: senders ignore it",
        )
        .fix(fix)
        .evidence(&evidence);
        for e in &record.errors {
            f = f.evidence(e.clone());
        }
        out.push(f);
        return (Some(record), out);
    }
    let mut usable = 0;
    for u in &record.rua {
        if let Some(problem) = &u.problem {
            out.push(
                tlsrpt(
                    "tls-rpt.uri.invalid",
                    Severity::Warning,
                    domain,
                    format!("rua= `{}` is unusable: {problem}", clip(&u.uri)),
                )
                .fix(
                    "write `rua=mailto:tls-reports@example.com` or `rua=https://reports.example.com/tlsrpt`",
                ),
            );
        } else if u.scheme != "mailto" && u.scheme != "https" {
            out.push(
                tlsrpt(
                    "tls-rpt.uri.scheme",
                    Severity::Warning,
                    domain,
                    format!(
                        "rua= `{}`: only mailto: and https: destinations are defined",
                        clip(&u.uri)
                    ),
                )
                .fix("use a mailto: or https: destination"),
            );
        } else {
            usable += 1;
        }
    }
    if usable > 0 {
        let list: Vec<&str> = record
            .rua
            .iter()
            .filter(|u| u.problem.is_none())
            .map(|u| u.uri.as_str())
            .collect();
        out.push(
            tlsrpt(
                "tls-rpt.present",
                Severity::Pass,
                domain,
                format!("TLS reports go to {}", list.join(", ")),
            )
            .evidence(evidence),
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

    #[test]
    fn parses_and_checks_records() {
        let r = parse_tlsrpt("v=TLSRPTv1; rua=mailto:tls@ex.test,https://r.ex.test/v1");
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(r.rua.len(), 2);
        let (_, f) = check_tlsrpt("ex.test", &["v=TLSRPTv1; rua=mailto:tls@ex.test".into()], false);
        assert_eq!(ids(&f), [("tls-rpt.present", Severity::Pass)]);
        let (_, f) = check_tlsrpt("ex.test", &[], false);
        assert_eq!(ids(&f), [("tls-rpt.missing", Severity::Info)]);
        let (_, f) = check_tlsrpt("ex.test", &[], true);
        assert_eq!(ids(&f), [("tls-rpt.missing", Severity::Warning)]);
        let (_, f) = check_tlsrpt(
            "ex.test",
            &["v=TLSRPTv1".into(), "v=TLSRPTv1; rua=mailto:a@b.test".into()],
            false,
        );
        assert_eq!(ids(&f), [("tls-rpt.multiple", Severity::Warning)]);
        let (_, f) = check_tlsrpt("ex.test", &["v=TLSRPTv1; ruf=mailto:a@b.test".into()], false);
        assert_eq!(ids(&f), [("tls-rpt.invalid", Severity::Warning)]);
        let (_, f) = check_tlsrpt(
            "ex.test",
            &["v=TLSRPTv1; rua=ftp://x.test/,mailto:nobody".into()],
            false,
        );
        assert_eq!(
            ids(&f),
            [
                ("tls-rpt.uri.scheme", Severity::Warning),
                ("tls-rpt.uri.invalid", Severity::Warning)
            ]
        );
        assert!(is_tlsrpt_record("v=TLSRPTv1;rua=mailto:a@b.test"));
        assert!(!is_tlsrpt_record("v=TLSRPTv2; rua=mailto:a@b.test"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_tlsrpt(&text);
            let _ = check_tlsrpt("ex.test", std::slice::from_ref(&text), true);
        }

        #[test]
        fn well_formed_records_parse(local in "[a-z]{1,10}", dom in "[a-z]{1,10}\\.test", path in "[a-z/]{0,12}") {
            let text = format!("v=TLSRPTv1; rua=mailto:{local}@{dom},https://{dom}/{path}");
            let r = parse_tlsrpt(&text);
            prop_assert!(r.errors.is_empty() && r.rua.iter().all(|u| u.problem.is_none()), "{text}: {r:?}");
        }
    }
}
