//! DMARC (RFC 7489, with the changes of RFC 9989, "DMARCbis"): the record
//! parser, the policy checks, report-URI syntax, and the authorization of
//! external report destinations (RFC 7489 §7.1).
//!
//! The lookups (the record, the organizational domain's record when a
//! subdomain has none, the `_report._dmarc` authorization records) are done
//! by `mailwarden-io`; everything here is a pure function of the answers.

use serde::Serialize;

use super::domain::{check_name, org_domain};
use super::tags::{Tag, clip, parse_tag_list};
use super::{Area, Finding, Severity};

/// A DMARC policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Monitor only.
    None,
    /// Treat failing mail as suspicious (spam folder).
    Quarantine,
    /// Reject failing mail.
    Reject,
}

impl Policy {
    fn parse(value: &str) -> Option<Policy> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// The policy's name as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }
}

/// Identifier alignment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    /// `r`: same organizational domain.
    Relaxed,
    /// `s`: exactly the same domain.
    Strict,
}

/// One report destination (`rua`/`ruf` of DMARC, `rua` of TLS-RPT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportUri {
    /// The URI as written (size limit included).
    pub uri: String,
    /// The scheme, lower-cased (`mailto`, `https`, …).
    pub scheme: String,
    /// The mail address of a `mailto:` URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The domain receiving the reports (mail domain or https host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// DMARC's size limit suffix (`!10m`), as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<String>,
    /// Why the URI is unusable; `None` when it is fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Parses one report URI. `size_suffix` allows DMARC's `!size[kmgt]`.
pub fn parse_report_uri(text: &str, size_suffix: bool) -> ReportUri {
    let text = text.trim();
    let mut out = ReportUri {
        uri: text.to_owned(),
        scheme: String::new(),
        address: None,
        domain: None,
        max_size: None,
        problem: None,
    };
    let mut body = text;
    if size_suffix && let Some((head, size)) = text.rsplit_once('!') {
        let digits = size.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || size.len() - digits.len() > 1 {
            out.problem = Some(format!(
                "`!{}` is not a size limit (digits and an optional k, m, g or t, e.g. `!10m`)",
                clip(size)
            ));
        }
        out.max_size = Some(size.to_owned());
        body = head;
    }
    let Some((scheme, rest)) = body.split_once(':') else {
        out.problem.get_or_insert_with(|| {
            format!(
                "`{}` has no scheme: write `mailto:reports@example.com`",
                clip(text)
            )
        });
        return out;
    };
    out.scheme = scheme.to_ascii_lowercase();
    match out.scheme.as_str() {
        "mailto" => {
            let addr = rest.split('?').next().unwrap_or_default();
            let Some((local, domain)) = addr.rsplit_once('@') else {
                out.problem
                    .get_or_insert_with(|| format!("`{}` is not a mail address", clip(addr)));
                return out;
            };
            let domain = domain.to_ascii_lowercase();
            let domain = domain.strip_suffix('.').unwrap_or(&domain).to_owned();
            if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
                out.problem
                    .get_or_insert_with(|| format!("`{}` has an empty or malformed local part", clip(addr)));
            } else if let Err(e) = check_name(&domain) {
                out.problem
                    .get_or_insert_with(|| format!("mail domain of `{}`: {e}", clip(addr)));
            }
            out.address = Some(format!("{local}@{domain}"));
            out.domain = Some(domain);
        }
        "https" | "http" => {
            let Some(rest) = rest.strip_prefix("//") else {
                out.problem
                    .get_or_insert_with(|| format!("`{}` lacks `//host`", clip(text)));
                return out;
            };
            let host_port = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host_port
                .rsplit_once(':')
                .map_or(host_port, |(h, _)| h)
                .to_ascii_lowercase();
            if let Err(e) = check_name(&host) {
                out.problem
                    .get_or_insert_with(|| format!("host of `{}`: {e}", clip(text)));
            }
            out.domain = Some(host);
        }
        "" => {
            out.problem
                .get_or_insert_with(|| format!("`{}` has an empty scheme", clip(text)));
        }
        _ => {}
    }
    out
}

/// A parsed DMARC record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DmarcRecord {
    /// All tags as written.
    pub tags: Vec<Tag>,
    /// `p`.
    pub policy: Option<Policy>,
    /// `sp`.
    pub subdomain_policy: Option<Policy>,
    /// `np` (RFC 9989): policy for non-existent subdomains.
    pub np: Option<Policy>,
    /// `pct` (removed in RFC 9989).
    pub pct: Option<u8>,
    /// `adkim`.
    pub adkim: Option<Alignment>,
    /// `aspf`.
    pub aspf: Option<Alignment>,
    /// `rua`.
    pub rua: Vec<ReportUri>,
    /// `ruf`.
    pub ruf: Vec<ReportUri>,
    /// `fo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fo: Option<String>,
    /// `t` (RFC 9989): `true` for testing mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub testing: Option<bool>,
    /// `psd` (RFC 9989): `y`, `n` or `u`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psd: Option<char>,
    /// Errors that make receivers discard the record.
    pub errors: Vec<String>,
    /// Values receivers ignore (defaults apply instead).
    pub ignored: Vec<String>,
    /// Tags that are not DMARC tags.
    pub unknown: Vec<String>,
}

/// Tags RFC 7489 and RFC 9989 define.
const KNOWN_TAGS: &[&str] = &[
    "v", "p", "sp", "np", "pct", "adkim", "aspf", "rua", "ruf", "fo", "rf", "ri", "psd", "t",
];

/// True if `txt` is a DMARC record: `v=DMARC1` first (blanks around `=`
/// allowed), then the end, a blank or `;`.
pub fn is_dmarc_record(txt: &str) -> bool {
    let t = txt.trim_start();
    let Some(rest) = t.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix('=') else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix("DMARC1") else {
        return false;
    };
    rest.is_empty() || rest.starts_with([' ', '\t', ';'])
}

/// Parses a DMARC record. Never fails: problems are collected.
pub fn parse_dmarc(text: &str) -> DmarcRecord {
    let list = parse_tag_list(text);
    let mut r = DmarcRecord {
        errors: list.problems.clone(),
        ..DmarcRecord::default()
    };
    if list
        .tags
        .first()
        .is_none_or(|t| !t.name.eq_ignore_ascii_case("v") || t.value != "DMARC1")
    {
        r.errors.push("the record must start with `v=DMARC1`".into());
    }
    for tag in &list.tags {
        let name = tag.name.to_ascii_lowercase();
        let v = tag.value.as_str();
        let bad = |what: &str| format!("`{name}={}`: {what}", clip(v));
        match name.as_str() {
            "v" => {}
            "p" => match Policy::parse(v) {
                Some(p) => r.policy = Some(p),
                None => r
                    .errors
                    .push(bad("the policy must be none, quarantine or reject")),
            },
            "sp" | "np" => match Policy::parse(v) {
                Some(p) if name == "sp" => r.subdomain_policy = Some(p),
                Some(p) => r.np = Some(p),
                None => r.ignored.push(bad("must be none, quarantine or reject; ignored")),
            },
            "pct" => match v.parse::<u8>() {
                Ok(n) if n <= 100 => r.pct = Some(n),
                _ => r
                    .ignored
                    .push(bad("must be a whole number 0–100; receivers use 100")),
            },
            "adkim" | "aspf" => {
                let a = match v.to_ascii_lowercase().as_str() {
                    "r" => Some(Alignment::Relaxed),
                    "s" => Some(Alignment::Strict),
                    _ => None,
                };
                match a {
                    Some(a) if name == "adkim" => r.adkim = Some(a),
                    Some(a) => r.aspf = Some(a),
                    None => r.ignored.push(bad("must be r or s; relaxed is used")),
                }
            }
            "rua" | "ruf" => {
                let uris: Vec<ReportUri> = v
                    .split(',')
                    .filter(|u| !u.trim().is_empty())
                    .take(32)
                    .map(|u| parse_report_uri(u, true))
                    .collect();
                if uris.is_empty() {
                    r.ignored.push(bad("no URI given"));
                }
                if name == "rua" {
                    r.rua = uris;
                } else {
                    r.ruf = uris;
                }
            }
            "fo" => {
                if v.split(':').all(|o| matches!(o.trim(), "0" | "1" | "d" | "s")) {
                    r.fo = Some(v.to_owned());
                } else {
                    r.ignored
                        .push(bad("options are 0, 1, d and s separated by `:`; ignored"));
                }
            }
            "rf" => {
                if !v.split(':').all(|f| f.trim().eq_ignore_ascii_case("afrf")) {
                    r.ignored.push(bad("the only report format is afrf"));
                }
            }
            "ri" => {
                if v.parse::<u32>().is_err() {
                    r.ignored.push(bad("must be a number of seconds"));
                }
            }
            "psd" => match v {
                "y" | "n" | "u" => r.psd = v.chars().next(),
                _ => r.ignored.push(bad("must be y, n or u")),
            },
            "t" => match v {
                "y" => r.testing = Some(true),
                "n" => r.testing = Some(false),
                _ => r.ignored.push(bad("must be y or n")),
            },
            _ => r.unknown.push(tag.name.clone()),
        }
    }
    if r.policy.is_none() && !r.errors.iter().any(|e| e.starts_with("`p=")) {
        if r.rua.iter().any(|u| u.problem.is_none()) {
            r.ignored
                .push("no `p=` tag: receivers treat the record as p=none because it has a valid rua (RFC 7489 §6.6.3)".into());
        } else {
            r.errors
                .push("no `p=` tag (and no valid rua): receivers discard the record".into());
        }
    }
    r.tags = list.tags;
    r
}

impl DmarcRecord {
    /// The policy receivers apply to mail from `domain`. `inherited` is true
    /// when the record was found at the organizational domain of a
    /// subdomain (then `sp` applies, falling back to `p`).
    pub fn effective_policy(&self, inherited: bool) -> Policy {
        let p = self.policy.unwrap_or(Policy::None);
        if inherited {
            self.subdomain_policy.unwrap_or(p)
        } else {
            p
        }
    }

    /// The `pct` in force (100 when absent).
    pub fn pct(&self) -> u8 {
        self.pct.unwrap_or(100)
    }
}

/// Where the policy for a domain was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySource {
    /// The audited domain.
    pub domain: String,
    /// The domain whose `_dmarc` record applies (the domain itself, or its
    /// organizational domain); `None` when no record applies.
    pub record_domain: Option<String>,
    /// The DMARC records found at `record_domain` (more than one is an error).
    pub records: Vec<String>,
    /// The nearest parent with a record, as RFC 9989's tree walk finds it,
    /// when it differs from `record_domain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_walk_domain: Option<String>,
}

impl PolicySource {
    /// True when the record comes from the organizational domain.
    pub fn inherited(&self) -> bool {
        self.record_domain.as_deref().is_some_and(|d| d != self.domain)
    }
}

fn dmarc(id: &'static str, severity: Severity, domain: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::Dmarc, severity, domain, message)
}

/// Checks the DMARC policy that applies to `source.domain`. Returns the
/// parsed record (when exactly one applies) and the findings.
pub fn check_dmarc(source: &PolicySource) -> (Option<DmarcRecord>, Vec<Finding>) {
    let domain = source.domain.as_str();
    let mut out = Vec::new();
    let Some(record_domain) = source.record_domain.as_deref() else {
        let org = org_domain(domain);
        let where_ = if org == domain {
            format!("_dmarc.{domain}")
        } else {
            format!("_dmarc.{domain} nor at the organizational domain (_dmarc.{org})")
        };
        out.push(
            dmarc(
                "dmarc.missing",
                Severity::Fail,
                domain,
                format!("no DMARC record at {where_}: receivers apply no policy, so spoofed mail is delivered"),
            )
            .fix(format!(
                "publish a TXT record at _dmarc.{domain}: `v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}`, \
                 read the aggregate reports for a few weeks, then move to p=quarantine and p=reject; \
                 a domain that sends no mail can start at `v=DMARC1; p=reject`"
            )),
        );
        return (None, out);
    };
    let name = format!("_dmarc.{record_domain}");
    if source.records.len() > 1 {
        let mut f = dmarc(
            "dmarc.multiple",
            Severity::Fail,
            domain,
            format!(
                "{} DMARC records at {name}: receivers ignore DMARC for the domain (RFC 7489 §6.6.3)",
                source.records.len()
            ),
        )
        .fix("keep one record and delete the others");
        for r in &source.records {
            f = f.evidence(format!("TXT {name}: {r}"));
        }
        out.push(f);
        return (None, out);
    }
    let Some(text) = source.records.first() else {
        return (None, out);
    };
    let evidence = format!("TXT {name}: {text}");
    let record = parse_dmarc(text);
    let inherited = source.inherited();
    if !record.errors.is_empty() {
        let mut f = dmarc(
            "dmarc.invalid",
            Severity::Fail,
            domain,
            "the DMARC record is invalid: receivers discard it and apply no policy",
        )
        .fix("correct the record: `v=DMARC1; p=…;` first, then the other tags")
        .evidence(&evidence);
        for e in &record.errors {
            f = f.evidence(e.clone());
        }
        out.push(f);
        return (Some(record), out);
    }
    if inherited {
        out.push(
            dmarc(
                "dmarc.inherited",
                Severity::Info,
                domain,
                format!(
                    "no record at _dmarc.{domain}: the organizational domain's record applies ({} for subdomains)",
                    if record.subdomain_policy.is_some() { "its sp=" } else { "its p=, as it has no sp=" }
                ),
            )
            .evidence(&evidence),
        );
    } else {
        out.push(
            dmarc(
                "dmarc.present",
                Severity::Pass,
                domain,
                format!("DMARC record at {name}"),
            )
            .evidence(&evidence),
        );
    }
    if !record.ignored.is_empty() {
        let mut f = dmarc(
            "dmarc.syntax.ignored",
            Severity::Warning,
            domain,
            format!(
                "{} value{} in the DMARC record are ignored by receivers",
                record.ignored.len(),
                if record.ignored.len() == 1 { "" } else { "s" }
            ),
        )
        .fix("correct the values named here");
        for e in &record.ignored {
            f = f.evidence(e.clone());
        }
        out.push(f);
    }
    if !record.unknown.is_empty() {
        out.push(
            dmarc(
                "dmarc.tag.unknown",
                Severity::Warning,
                domain,
                format!(
                    "unknown tag{} {} ignored by receivers",
                    if record.unknown.len() == 1 { "" } else { "s" },
                    record.unknown.join(", ")
                ),
            )
            .fix(format!(
                "remove or correct them (DMARC tags: {})",
                KNOWN_TAGS.join(", ")
            )),
        );
    }

    let policy = record.effective_policy(inherited);
    let which = if inherited {
        if record.subdomain_policy.is_some() {
            "sp"
        } else {
            "p"
        }
    } else {
        "p"
    };
    match policy {
        Policy::None => out.push(
            dmarc(
                "dmarc.policy.none",
                Severity::Warning,
                domain,
                format!("{which}=none: monitoring only — receivers deliver mail that fails DMARC, so spoofs of {domain} are not rejected"),
            )
            .fix("once the aggregate reports show all your legitimate senders pass, move to p=quarantine, then p=reject"),
        ),
        Policy::Quarantine => out.push(dmarc(
            "dmarc.policy.quarantine",
            Severity::Pass,
            domain,
            format!("{which}=quarantine: mail failing DMARC goes to spam; p=reject is the last step"),
        )),
        Policy::Reject => out.push(dmarc(
            "dmarc.policy.reject",
            Severity::Pass,
            domain,
            format!("{which}=reject: receivers reject mail failing DMARC"),
        )),
    }
    if !inherited
        && let Some(sp) = record.subdomain_policy
        && sp < record.policy.unwrap_or(Policy::None)
    {
        out.push(
            dmarc(
                "dmarc.sp.weaker",
                Severity::Warning,
                domain,
                format!(
                    "sp={} is weaker than p={}: spoofs of any subdomain of {domain} are handled more leniently",
                    sp.as_str(),
                    policy.as_str()
                ),
            )
            .fix("raise sp= to the level of p= (or remove sp= so p= applies to subdomains)"),
        );
    }
    if let Some(np) = record.np {
        let base = if inherited {
            policy
        } else {
            record.subdomain_policy.unwrap_or(policy)
        };
        if np < base {
            out.push(
                dmarc(
                    "dmarc.np.weaker",
                    Severity::Warning,
                    domain,
                    format!(
                        "np={} is weaker than the subdomain policy: made-up subdomains get a weaker policy",
                        np.as_str()
                    ),
                )
                .fix("raise np= (or remove it)"),
            );
        }
    }
    if let Some(pct) = record.pct
        && pct < 100
    {
        out.push(
            dmarc(
                "dmarc.pct.partial",
                Severity::Warning,
                domain,
                format!(
                    "pct={pct}: the policy applies to only {pct}% of failing mail; the rest gets the next weaker policy"
                ),
            )
            .fix("set pct=100 (or remove pct); RFC 9989 drops pct altogether — use t=y while testing instead"),
        );
    }
    if record.testing == Some(true) {
        out.push(
            dmarc(
                "dmarc.testing",
                Severity::Warning,
                domain,
                "t=y (RFC 9989 testing mode): receivers apply the next weaker policy",
            )
            .fix("remove t=y when the reports look clean"),
        );
    }
    for (tag, mode) in [("adkim", record.adkim), ("aspf", record.aspf)] {
        if mode == Some(Alignment::Strict) {
            out.push(dmarc(
                if tag == "adkim" { "dmarc.adkim.strict" } else { "dmarc.aspf.strict" },
                Severity::Info,
                domain,
                format!(
                    "{tag}=s (strict alignment): mail signed or sent with a subdomain of {record_domain} fails DMARC"
                ),
            ));
        }
    }
    check_uris(domain, "rua", &record.rua, &mut out);
    check_uris(domain, "ruf", &record.ruf, &mut out);
    if record.rua.is_empty() {
        out.push(
            dmarc(
                "dmarc.rua.missing",
                Severity::Warning,
                domain,
                "no rua=: you get no aggregate reports, so you cannot see who sends mail as your domain",
            )
            .fix(format!(
                "add `rua=mailto:dmarc-reports@{record_domain}` (a mailbox you read, or a report service)"
            )),
        );
    }
    if !record.ruf.is_empty() {
        out.push(dmarc(
            "dmarc.ruf.present",
            Severity::Info,
            domain,
            "ruf= asks for failure reports: few receivers send them, and they may carry personal data",
        ));
    }

    let mut notes = Vec::new();
    if record.pct.is_some() {
        notes.push(
            "pct is removed: receivers following RFC 9989 ignore it; t=y replaces pct=0..99".to_owned(),
        );
    }
    if record
        .tags
        .iter()
        .any(|t| t.name.eq_ignore_ascii_case("rf") || t.name.eq_ignore_ascii_case("ri"))
    {
        notes.push("rf and ri are removed in RFC 9989 and ignored".to_owned());
    }
    if record.np.is_none() {
        notes.push(format!(
            "np= (policy for subdomains that do not exist) is not set: {} applies to them",
            record
                .subdomain_policy
                .unwrap_or(record.policy.unwrap_or(Policy::None))
                .as_str()
        ));
    }
    if let Some(psd) = record.psd {
        notes.push(format!(
            "psd={psd}: marks the record's domain as {}",
            match psd {
                'y' => "a public suffix domain",
                'n' => "an organizational domain (the tree walk stops here)",
                _ => "unspecified (default)",
            }
        ));
    }
    if inherited {
        notes.push(
            "RFC 9989 finds the policy by walking up the DNS tree instead of using the Public Suffix List"
                .to_owned(),
        );
    }
    if let Some(tree) = &source.tree_walk_domain {
        notes.push(format!(
            "the tree walk finds _dmarc.{tree} first: RFC 9989 receivers apply that record, RFC 7489 receivers the one at _dmarc.{record_domain}"
        ));
    }
    if !notes.is_empty() {
        let mut f = dmarc(
            "dmarc.bis.notes",
            Severity::Info,
            domain,
            "RFC 9989 (DMARCbis) notes",
        );
        for n in notes {
            f = f.evidence(n);
        }
        out.push(f);
    }
    (Some(record), out)
}

fn check_uris(domain: &str, tag: &str, uris: &[ReportUri], out: &mut Vec<Finding>) {
    for u in uris {
        if let Some(problem) = &u.problem {
            out.push(
                dmarc(
                    "dmarc.uri.invalid",
                    Severity::Warning,
                    domain,
                    format!(
                        "{tag}= `{}` is unusable: {problem}; receivers skip it",
                        clip(&u.uri)
                    ),
                )
                .fix(format!(
                    "write it as `{tag}=mailto:reports@example.com` (optionally `!10m` for a size limit)"
                )),
            );
        } else if u.scheme != "mailto" {
            out.push(
                dmarc(
                    "dmarc.uri.scheme",
                    Severity::Warning,
                    domain,
                    format!(
                        "{tag}= `{}`: receivers send DMARC reports only by mail (mailto:)",
                        clip(&u.uri)
                    ),
                )
                .fix(format!("use a mailto: address in {tag}=")),
            );
        }
    }
}

/// Report destinations outside the organizational domain of
/// `record_domain`: each destination domain with its URIs. Their owners
/// must authorize them (RFC 7489 §7.1).
pub fn external_destinations(record_domain: &str, record: &DmarcRecord) -> Vec<(String, Vec<String>)> {
    let own = org_domain(record_domain);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for u in record.rua.iter().chain(&record.ruf) {
        if u.problem.is_some() || u.scheme != "mailto" {
            continue;
        }
        let Some(dest) = &u.domain else { continue };
        if org_domain(dest) == own {
            continue;
        }
        match out.iter_mut().find(|(d, _)| d == dest) {
            Some((_, uris)) => uris.push(u.uri.clone()),
            None => out.push((dest.clone(), vec![u.uri.clone()])),
        }
    }
    out
}

/// The distinct mail domains of the usable `mailto:` report URIs.
pub fn report_mail_domains(record: &DmarcRecord) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in record.rua.iter().chain(&record.ruf) {
        if u.problem.is_none()
            && u.scheme == "mailto"
            && let Some(d) = &u.domain
            && !out.contains(d)
        {
            out.push(d.clone());
        }
    }
    out
}

/// Whether a report destination's domain can receive mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailRoute {
    /// It has MX records.
    Mx,
    /// No MX, but an address (the implicit MX of RFC 5321 §5.1).
    Address,
    /// A null MX (RFC 7505): it accepts no mail.
    NullMx,
    /// Neither MX nor address.
    Nothing,
    /// The lookups failed.
    Unknown,
}

/// A finding when reports to `dest` cannot be delivered.
pub fn check_report_route(domain: &str, dest: &str, route: &MailRoute) -> Option<Finding> {
    let why = match route {
        MailRoute::NullMx => "publishes a null MX (it accepts no mail)",
        MailRoute::Nothing => "has no MX and no address",
        MailRoute::Mx | MailRoute::Address | MailRoute::Unknown => return None,
    };
    Some(
        dmarc(
            "dmarc.uri.undeliverable",
            Severity::Warning,
            domain,
            format!("report destination {dest} {why}: reports sent there bounce"),
        )
        .fix(format!(
            "send reports to a domain that receives mail, or give {dest} an MX record"
        )),
    )
}

/// The name whose TXT record authorizes `dest` to receive reports for
/// `record_domain`.
pub fn authorization_name(record_domain: &str, dest: &str) -> String {
    format!("{record_domain}._report._dmarc.{dest}")
}

/// The answer to an authorization lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The TXT records found (possibly none).
    Records(Vec<String>),
    /// The lookup failed; the reason.
    Failed(String),
}

/// Checks one external destination's authorization.
pub fn check_authorization(
    domain: &str,
    record_domain: &str,
    dest: &str,
    uris: &[String],
    answer: &Authorization,
) -> Finding {
    let name = authorization_name(record_domain, dest);
    let list = uris.join(", ");
    match answer {
        Authorization::Records(records) if records.iter().any(|r| is_dmarc_record(r)) => dmarc(
            "dmarc.report.authorized",
            Severity::Pass,
            domain,
            format!("{dest} accepts reports for {record_domain} ({list})"),
        )
        .evidence(format!("TXT {name}: {}", records.iter().find(|r| is_dmarc_record(r)).map_or("", String::as_str))),
        Authorization::Records(_) => dmarc(
            "dmarc.report.unauthorized",
            Severity::Warning,
            domain,
            format!(
                "{list} is outside {record_domain} and {dest} has not authorized it: receivers send no reports there"
            ),
        )
        .fix(format!(
            "the owner of {dest} must publish TXT `v=DMARC1` at {name} (report services do this when you register the domain)"
        )),
        Authorization::Failed(reason) => dmarc(
            "dmarc.report.unverified",
            Severity::Info,
            domain,
            format!("could not check whether {dest} accepts reports for {record_domain}: {reason}"),
        ),
    }
}

#[cfg(test)]
mod tests;
