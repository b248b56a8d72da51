//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy fetched from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, and the policy's `mx`
//! patterns compared with the domain's real MX hosts.
//!
//! The fetch does what a sending MTA does, and nothing more lenient: the
//! policy host is resolved through the audit's own [`DnsClient`] (so a
//! test or `--resolver` sees the same DNS as the rest of the audit), the
//! certificate must validate for `mta-sts.DOMAIN` against the Web PKI roots
//! (`webpki-roots`, Mozilla's list) plus any extra roots configured,
//! redirects are not followed (RFC 8461 §3.3), only `200` is accepted, and
//! the body is bounded in size and the whole fetch in time.
//!
//! The HTTP client is hyper's low-level HTTP/1.1 connection over
//! `tokio-rustls`, not reqwest: we must dial an address we resolved
//! ourselves while sending the host name as SNI, must never follow a
//! redirect, and must cap the body — all direct here, all knobs to fight in
//! a high-level client — and it adds no dependency (hyper and rustls are
//! already in the tree; no OpenSSL).
//!
//! The parsers ([`parse_record`], [`parse_policy`]) are pure and total:
//! any input gives a value, with the problems listed by line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use mailwarden_core::posture::{Area, Finding, Severity};
use rustls::pki_types::ServerName;
use serde::Serialize;

use crate::collect::syslog::{load_certs, tls_provider};
use crate::dns::{Answer, DnsClient};

/// The policy's path on the policy host.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// The largest `max_age` RFC 8461 allows (one year, in seconds).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Below this `max_age` (one day) a policy protects little between fetches.
pub const MAX_AGE_SHORT: u64 = 86_400;
/// Policy addresses tried at most.
const MAX_ADDRESSES: usize = 4;
/// Problems kept per parse (the rest are counted).
const MAX_PROBLEMS: usize = 20;
/// `mx` patterns kept per policy.
const MAX_MX_PATTERNS: usize = 256;
/// Response header bytes accepted (hyper's read buffer).
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// Characters of the policy body quoted as evidence.
const EVIDENCE_CHARS: usize = 400;

/// How to fetch the policy.
#[derive(Debug, Clone, Serialize)]
pub struct HttpsConfig {
    /// PEM files with extra trusted CA certificates (besides the Web PKI
    /// roots), e.g. a private CA.
    pub extra_roots: Vec<PathBuf>,
    /// The HTTPS port (443; tests use another).
    pub port: u16,
    /// Deadline for the whole fetch: address lookup, connection, TLS,
    /// request and body.
    pub timeout: Duration,
    /// Largest policy body accepted, in bytes; a larger one is refused.
    pub max_body: usize,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        HttpsConfig {
            extra_roots: Vec::new(),
            port: 443,
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
        }
    }
}

/// A problem with the extra roots (unreadable file, no certificate in it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}; give PEM files with CA certificates (-----BEGIN CERTIFICATE-----)")]
pub struct RootsError(String);

/// Builds the TLS client configuration: Web PKI roots plus
/// `cfg.extra_roots`. The binary can call it up front to reject bad root
/// files before the audit starts.
pub fn tls_client_config(cfg: &HttpsConfig) -> Result<Arc<rustls::ClientConfig>, RootsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &cfg.extra_roots {
        for cert in load_certs(path).map_err(RootsError)? {
            roots
                .add(cert)
                .map_err(|e| RootsError(format!("certificate in {}: {e}", path.display())))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RootsError(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Senders refuse to deliver without valid TLS to a matching MX.
    Enforce,
    /// Senders deliver anyway and report failures (TLS-RPT).
    Testing,
    /// The policy is being withdrawn: no protection.
    None,
}

impl Mode {
    /// The mode as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// One problem found while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseProblem {
    /// 1-based line of the policy (`None` for the whole policy or a TXT record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong, and what is expected.
    pub message: String,
    /// Senders reject the whole policy for it (RFC 8461 §3.2).
    pub fatal: bool,
}

impl std::fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A parsed MTA-STS policy (RFC 8461 §3.2). Fields are `None` when
/// missing or invalid; [`problems`](Self::problems) says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtaStsPolicy {
    /// `version` (must be `STSv1`).
    pub version: Option<String>,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `max_age` in seconds.
    pub max_age: Option<u64>,
    /// `mx` patterns, lower-cased (`*.` wildcards kept).
    pub mx: Vec<String>,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ParseProblem>,
}

impl MtaStsPolicy {
    /// No fatal problem: senders would use this policy.
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(|p| p.fatal)
    }

    /// The patterns that match `host` (RFC 8461 §4.1).
    pub fn matching(&self, host: &str) -> impl Iterator<Item = &str> {
        self.mx
            .iter()
            .map(String::as_str)
            .filter(move |p| mx_matches(p, host))
    }
}

/// The `_mta-sts` TXT record, parsed (RFC 8461 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StsRecord {
    /// The policy id (1–32 letters and digits).
    pub id: Option<String>,
    /// Other fields (`name=value`), kept in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<(String, String)>,
    /// What is wrong with it (every problem makes the record invalid).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ParseProblem>,
}

/// The MTA-STS audit.
#[derive(Debug, Clone, Serialize)]
pub struct MtaStsReport {
    /// The `_mta-sts` TXT record (the first one starting with `v=STSv1`).
    pub record: Option<String>,
    /// The fetched, parsed policy.
    pub policy: Option<MtaStsPolicy>,
    /// The findings.
    pub findings: Vec<Finding>,
}

/// True if the TXT string is an MTA-STS record (starts with `v=STSv1`);
/// other TXT records at `_mta-sts` are ignored (RFC 8461 §3.1).
pub fn is_sts_record(text: &str) -> bool {
    text.starts_with("v=STSv1")
}

/// Parses an `_mta-sts` TXT record: `v=STSv1; id=...;` plus extension
/// fields. Total: never fails, never panics; problems are listed.
pub fn parse_record(text: &str) -> StsRecord {
    let mut record = StsRecord {
        id: None,
        extensions: Vec::new(),
        problems: Vec::new(),
    };
    fn problem(record: &mut StsRecord, message: String) {
        if record.problems.len() < MAX_PROBLEMS {
            record.problems.push(ParseProblem {
                line: None,
                message,
                fatal: true,
            });
        }
    }
    let mut id_seen = false;
    let mut fields = text.split(';').map(|f| f.trim_matches([' ', '\t']));
    match fields.next() {
        Some("v=STSv1") => {}
        other => problem(
            &mut record,
            format!(
                "the record must start with `v=STSv1`, found `{}`",
                cut(other.unwrap_or(""), 40)
            ),
        ),
    }
    let fields: Vec<&str> = fields.collect();
    let last = fields.len().saturating_sub(1);
    for (i, field) in fields.into_iter().enumerate() {
        if field.is_empty() {
            if i != last {
                problem(&mut record, "an empty field (`;;`)".to_owned());
            }
            continue;
        }
        let Some((name, value)) = field.split_once('=') else {
            problem(
                &mut record,
                format!("field `{}` is not `name=value`", cut(field, 40)),
            );
            continue;
        };
        if name == "id" {
            if std::mem::replace(&mut id_seen, true) {
                problem(&mut record, "`id` appears twice".to_owned());
            } else if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                problem(
                    &mut record,
                    format!("id `{}` must be 1 to 32 letters and digits", cut(value, 40)),
                );
            } else {
                record.id = Some(value.to_owned());
            }
        } else if valid_ext_name(name) && valid_ext_value(value) {
            record.extensions.push((name.to_owned(), value.to_owned()));
        } else {
            problem(
                &mut record,
                format!("field `{}` is not a valid extension field", cut(field, 40)),
            );
        }
    }
    if !id_seen {
        problem(&mut record, "the record has no `id=` field".to_owned());
    }
    record
}

/// `sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`
fn valid_ext_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// `sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)` (printable, no `;` or `=`).
fn valid_ext_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|c| (0x21..=0x7e).contains(&c) && c != b';' && c != b'=')
}

/// Parses a policy body: `key: value` lines separated by CRLF (LF alone is
/// accepted too). Unknown keys are ignored (RFC 8461 §3.2); missing,
/// duplicate and invalid required keys are problems. Total: never fails,
/// never panics.
pub fn parse_policy(text: &str) -> MtaStsPolicy {
    let mut policy = MtaStsPolicy {
        version: None,
        mode: None,
        max_age: None,
        mx: Vec::new(),
        problems: Vec::new(),
    };
    let mut dropped = 0usize;
    let mut problem = |policy: &mut MtaStsPolicy, line: Option<usize>, message: String, fatal: bool| {
        if policy.problems.len() < MAX_PROBLEMS {
            policy.problems.push(ParseProblem { line, message, fatal });
        } else {
            dropped += 1;
        }
    };
    let (mut seen_version, mut seen_mode, mut seen_max_age) = (false, false, false);
    let mut mx_dropped = 0usize;
    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            problem(
                &mut policy,
                Some(n),
                format!("`{}` is not a `key: value` line", cut(line, 60)),
                false,
            );
            continue;
        };
        let key = key.trim_matches([' ', '\t']);
        let value = value.trim_matches([' ', '\t']);
        match key {
            "version" => {
                if std::mem::replace(&mut seen_version, true) {
                    problem(
                        &mut policy,
                        Some(n),
                        "`version` appears twice; the first is used".into(),
                        false,
                    );
                } else if value == "STSv1" {
                    policy.version = Some(value.to_owned());
                } else {
                    problem(
                        &mut policy,
                        Some(n),
                        format!("version `{}` is not `STSv1`", cut(value, 40)),
                        true,
                    );
                }
            }
            "mode" => {
                if std::mem::replace(&mut seen_mode, true) {
                    problem(
                        &mut policy,
                        Some(n),
                        "`mode` appears twice; the first is used".into(),
                        false,
                    );
                } else {
                    policy.mode = match value {
                        "enforce" => Some(Mode::Enforce),
                        "testing" => Some(Mode::Testing),
                        "none" => Some(Mode::None),
                        _ => {
                            problem(
                                &mut policy,
                                Some(n),
                                format!("mode `{}` is not `enforce`, `testing` or `none`", cut(value, 40)),
                                true,
                            );
                            None
                        }
                    };
                }
            }
            "max_age" => {
                if std::mem::replace(&mut seen_max_age, true) {
                    problem(
                        &mut policy,
                        Some(n),
                        "`max_age` appears twice; the first is used".into(),
                        false,
                    );
                } else if !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit())
                {
                    policy.max_age = value.parse().ok();
                } else {
                    problem(
                        &mut policy,
                        Some(n),
                        format!(
                            "max_age `{}` is not a number of seconds (1 to 10 digits)",
                            cut(value, 40)
                        ),
                        true,
                    );
                }
            }
            "mx" => {
                let pattern = value.to_ascii_lowercase();
                if !valid_mx_pattern(&pattern) {
                    problem(
                        &mut policy,
                        Some(n),
                        format!(
                            "mx `{}` is not a host name or `*.` wildcard (no trailing dot, no address)",
                            cut(value, 60)
                        ),
                        false,
                    );
                } else if policy.mx.len() >= MAX_MX_PATTERNS {
                    mx_dropped += 1;
                } else if !policy.mx.contains(&pattern) {
                    policy.mx.push(pattern);
                }
            }
            // Unknown keys are ignored (RFC 8461 §3.2), as senders do.
            _ => {}
        }
    }
    if mx_dropped > 0 {
        problem(
            &mut policy,
            None,
            format!("{mx_dropped} more mx patterns beyond {MAX_MX_PATTERNS} were not read"),
            false,
        );
    }
    for (seen, key) in [
        (seen_version, "version: STSv1"),
        (seen_mode, "mode"),
        (seen_max_age, "max_age"),
    ] {
        if !seen {
            problem(&mut policy, None, format!("`{key}` is missing"), true);
        }
    }
    if matches!(policy.mode, Some(Mode::Enforce | Mode::Testing)) && policy.mx.is_empty() {
        problem(
            &mut policy,
            None,
            "no valid `mx` pattern: in enforce or testing mode senders accept no MX".into(),
            true,
        );
    }
    if dropped > 0 {
        policy.problems.push(ParseProblem {
            line: None,
            message: format!("{dropped} more problems not listed"),
            fatal: false,
        });
    }
    policy
}

/// An `mx` pattern: a host name, or `*.` and a host name with at least two
/// labels; labels of letters, digits and hyphens (`_` tolerated).
fn valid_mx_pattern(pattern: &str) -> bool {
    let (wild, name) = match pattern.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if name.is_empty() || name.len() > 253 || name.parse::<IpAddr>().is_ok() {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    if wild && labels.len() < 2 {
        return false;
    }
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// RFC 8461 §4.1: a pattern matches a host name case-insensitively; a
/// `*.` pattern matches exactly one extra label on the left
/// (`*.example.com` matches `mx.example.com`, not `example.com` nor
/// `a.b.example.com`). Trailing dots are ignored.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Why the policy could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchError {
    /// The policy host has no address, or its lookup failed.
    Resolve(String),
    /// No TCP connection to any address.
    Connect(String),
    /// The certificate did not validate.
    Certificate(String),
    /// Another TLS failure.
    Tls(String),
    /// An HTTP protocol failure.
    Http(String),
    /// A 3xx answer (never followed).
    Redirect { status: u16, location: Option<String> },
    /// Any other non-200 status.
    Status(u16),
    /// The body (or its announced length) exceeds the limit.
    TooLarge { limit: usize, announced: Option<u64> },
    /// The deadline passed.
    Timeout(Duration),
}

/// A fetched policy.
#[derive(Debug, Clone)]
struct Fetched {
    address: SocketAddr,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Checks the MTA-STS record and policy of `domain` against its MX hosts
/// (`mx_hosts`: the exchange names; empty skips the comparison). Never
/// fails: every problem is a finding.
pub async fn check_mta_sts(
    dns: &DnsClient,
    domain: &str,
    mx_hosts: &[String],
    cfg: &HttpsConfig,
) -> MtaStsReport {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let txt_name = format!("_mta-sts.{domain}");
    let policy_host = format!("mta-sts.{domain}");
    let url = format!("https://{policy_host}{POLICY_PATH}");
    let mut report = MtaStsReport {
        record: None,
        policy: None,
        findings: Vec::new(),
    };

    // 1. The TXT record. `Some(true)`: a record; `Some(false)`: none;
    //    `None`: unknown (lookup failed).
    let has_record = match dns.txt(&txt_name).await {
        Err(e) => {
            report.findings.push(
                Finding::new(
                    "mta-sts.record.lookup-failed",
                    Area::Dns,
                    Severity::Warning,
                    &domain,
                    format!("the MTA-STS record could not be looked up: {e}"),
                )
                .fix("check that the resolver is reachable, then run the audit again"),
            );
            None
        }
        Ok(answer) => {
            let all = answer.into_records();
            let sts: Vec<&String> = all.iter().filter(|t| is_sts_record(t)).collect();
            let evidence = |f: Finding| {
                all.iter().fold(f, |f, t| {
                    f.evidence(format!("{txt_name} TXT \"{}\"", cut(t, 200)))
                })
            };
            match sts.as_slice() {
                [] => {
                    report.findings.push(evidence(
                        Finding::new(
                            "mta-sts.record.missing",
                            Area::MtaSts,
                            Severity::Info,
                            &domain,
                            "no MTA-STS record: senders may deliver over unencrypted or unauthenticated connections when an attacker strips STARTTLS",
                        )
                        .fix(format!(
                            "publish a policy at {url} and a TXT record `{txt_name}. IN TXT \"v=STSv1; id=20250101T000000\"` (RFC 8461), starting in testing mode"
                        )),
                    ));
                    Some(false)
                }
                [one] => {
                    report.record = Some((*one).clone());
                    let parsed = parse_record(one);
                    if parsed.problems.is_empty() {
                        report.findings.push(evidence(Finding::new(
                            "mta-sts.record.present",
                            Area::MtaSts,
                            Severity::Pass,
                            &domain,
                            format!("MTA-STS record with id {}", parsed.id.as_deref().unwrap_or("?")),
                        )));
                    } else {
                        report.findings.push(parsed.problems.iter().fold(
                            evidence(
                                Finding::new(
                                    "mta-sts.record.invalid",
                                    Area::MtaSts,
                                    Severity::Fail,
                                    &domain,
                                    format!(
                                        "the MTA-STS record is invalid ({}): senders ignore the policy",
                                        parsed.problems[0]
                                    ),
                                )
                                .fix(format!(
                                    "publish exactly `v=STSv1; id=ID;` at {txt_name}, with ID of 1 to 32 letters and digits, changed whenever the policy changes"
                                )),
                            ),
                            |f, p| f.evidence(p.to_string()),
                        ));
                    }
                    Some(true)
                }
                many => {
                    report.record = Some(many[0].clone());
                    report.findings.push(evidence(
                        Finding::new(
                            "mta-sts.record.multiple",
                            Area::MtaSts,
                            Severity::Fail,
                            &domain,
                            format!(
                                "{} MTA-STS records: senders treat this as no policy (RFC 8461 §3.1)",
                                many.len()
                            ),
                        )
                        .fix(format!("keep exactly one `v=STSv1` TXT record at {txt_name}")),
                    ));
                    Some(true)
                }
            }
        }
    };

    // 2. The policy.
    let tls = match tls_client_config(cfg) {
        Ok(tls) => tls,
        Err(e) => {
            report.findings.push(
                Finding::new(
                    "mta-sts.roots-unreadable",
                    Area::Dns,
                    Severity::Warning,
                    &policy_host,
                    format!("the policy was not fetched: {e}"),
                )
                .fix("fix or remove the extra CA file given for HTTPS checks"),
            );
            return report;
        }
    };
    let fetched = match tokio::time::timeout(cfg.timeout, fetch(dns, &policy_host, cfg, tls)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(cfg.timeout)),
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            // Without a record, a missing policy is just "not deployed".
            if has_record == Some(true) {
                report.findings.push(fetch_finding(&policy_host, &url, &e));
            }
            return report;
        }
    };
    let fetched_evidence = |f: Finding| {
        f.evidence(format!("GET {url} from {} → 200", fetched.address))
            .evidence(format!(
                "Content-Type: {}",
                fetched.content_type.as_deref().unwrap_or("(none)")
            ))
    };
    if has_record == Some(false) {
        report.findings.push(fetched_evidence(
            Finding::new(
                "mta-sts.policy.without-record",
                Area::MtaSts,
                Severity::Warning,
                &domain,
                format!("a policy is served at {url} but there is no {txt_name} TXT record, so senders never fetch it"),
            )
            .fix(format!("publish `{txt_name}. IN TXT \"v=STSv1; id=20250101T000000\"`")),
        ));
    }
    if !is_text_plain(fetched.content_type.as_deref()) {
        report.findings.push(fetched_evidence(
            Finding::new(
                "mta-sts.policy.content-type",
                Area::MtaSts,
                Severity::Warning,
                &policy_host,
                format!(
                    "the policy is served as `{}`, not `text/plain`; strict senders reject it",
                    fetched.content_type.as_deref().unwrap_or("(no Content-Type)")
                ),
            )
            .fix(format!("serve {POLICY_PATH} with `Content-Type: text/plain`")),
        ));
    }
    let text = String::from_utf8_lossy(&fetched.body);
    let policy = parse_policy(&text);
    let body_evidence = |f: Finding| f.evidence(format!("policy: {}", cut(&text, EVIDENCE_CHARS)));
    if !policy.is_valid() {
        let first = policy.problems.iter().find(|p| p.fatal).map(ToString::to_string);
        report.findings.push(body_evidence(policy.problems.iter().fold(
            Finding::new(
                "mta-sts.policy.invalid",
                Area::MtaSts,
                Severity::Fail,
                &policy_host,
                format!(
                    "the policy is invalid ({}): senders ignore it",
                    first.unwrap_or_default()
                ),
            )
            .fix("the policy needs `version: STSv1`, `mode: enforce|testing|none`, `max_age: SECONDS` and one `mx: HOST` line per MX, CRLF-separated"),
            |f, p| f.evidence(p.to_string()),
        )));
    } else if !policy.problems.is_empty() {
        report.findings.push(body_evidence(
            policy.problems.iter().fold(
                Finding::new(
                    "mta-sts.policy.syntax",
                    Area::MtaSts,
                    Severity::Warning,
                    &policy_host,
                    format!("the policy has {} syntax problem(s)", policy.problems.len()),
                )
                .fix(
                    "remove the lines listed; each line must be `key: value`, each key once (mx may repeat)",
                ),
                |f, p| f.evidence(p.to_string()),
            ),
        ));
    }
    // Senders ignore an invalid policy, so its mode and patterns mean nothing.
    if policy.is_valid() {
        check_policy(&mut report.findings, &policy_host, &policy, mx_hosts);
        report.findings.push(body_evidence(Finding::new(
            "mta-sts.policy.fetched",
            Area::MtaSts,
            Severity::Pass,
            &policy_host,
            format!("policy fetched from {url} with a valid certificate"),
        )));
    }
    report.policy = Some(policy);
    report
}

/// Mode, max_age and the mx patterns against the real MX hosts.
fn check_policy(findings: &mut Vec<Finding>, subject: &str, policy: &MtaStsPolicy, mx_hosts: &[String]) {
    match policy.mode {
        Some(Mode::Enforce) => findings.push(Finding::new(
            "mta-sts.policy.enforce",
            Area::MtaSts,
            Severity::Pass,
            subject,
            "mode enforce: senders refuse to deliver without authenticated TLS",
        )),
        Some(Mode::Testing) => findings.push(
            Finding::new(
                "mta-sts.policy.mode-testing",
                Area::MtaSts,
                Severity::Warning,
                subject,
                "mode testing: senders report TLS failures but still deliver, so STARTTLS stripping still works",
            )
            .fix("once TLS reports (TLS-RPT) show no failures, switch to `mode: enforce` and change the record's id"),
        ),
        Some(Mode::None) => findings.push(
            Finding::new(
                "mta-sts.policy.mode-none",
                Area::MtaSts,
                Severity::Warning,
                subject,
                "mode none: the policy is withdrawn and protects nothing",
            )
            .fix("use `mode: enforce` (or `testing` while checking), or remove the record once caches have expired"),
        ),
        None => {}
    }
    if let Some(age) = policy.max_age {
        if age > MAX_AGE_LIMIT {
            findings.push(
                Finding::new(
                    "mta-sts.policy.max-age-too-long",
                    Area::MtaSts,
                    Severity::Warning,
                    subject,
                    format!("max_age {age} exceeds the RFC 8461 maximum of {MAX_AGE_LIMIT} s (one year)"),
                )
                .fix(format!(
                    "set max_age to at most {MAX_AGE_LIMIT}; 604800 (a week) to 31557600 is usual"
                )),
            );
        } else if age < MAX_AGE_SHORT {
            findings.push(
                Finding::new(
                    "mta-sts.policy.max-age-short",
                    Area::MtaSts,
                    Severity::Warning,
                    subject,
                    format!("max_age {age} s is under a day: senders forget the policy quickly, which weakens protection against a downgrade"),
                )
                .fix("set max_age to a week (604800) or more once the policy is stable"),
            );
        }
    }
    let hosts: Vec<&String> = mx_hosts
        .iter()
        .filter(|h| !h.trim_end_matches('.').is_empty())
        .collect();
    if hosts.is_empty() || policy.mx.is_empty() {
        return;
    }
    let unmatched: Vec<&String> = hosts
        .iter()
        .copied()
        .filter(|h| policy.matching(h).next().is_none())
        .collect();
    let unused: Vec<&String> = policy
        .mx
        .iter()
        .filter(|p| !hosts.iter().any(|h| mx_matches(p, h)))
        .collect();
    let patterns = policy.mx.join(", ");
    if !unmatched.is_empty() {
        let (severity, consequence) = match policy.mode {
            Some(Mode::Enforce) => (
                Severity::Fail,
                "senders that enforce the policy refuse to deliver to it",
            ),
            Some(Mode::Testing) => (
                Severity::Warning,
                "senders report a failure for it; in enforce mode they would refuse it",
            ),
            _ => (Severity::Info, "this would matter in enforce mode"),
        };
        for host in unmatched {
            findings.push(
                Finding::new(
                    "mta-sts.policy.mx-unmatched",
                    Area::MtaSts,
                    severity,
                    host.as_str(),
                    format!("the MX {host} matches no mx pattern of the policy ({patterns}): {consequence}"),
                )
                .fix(format!(
                    "add `mx: {host}` (or a `*.` wildcard covering it) to the policy and change the record's id"
                )),
            );
        }
    } else {
        findings.push(Finding::new(
            "mta-sts.policy.mx-match",
            Area::MtaSts,
            Severity::Pass,
            subject,
            format!("every MX matches a policy pattern ({patterns})"),
        ));
    }
    for pattern in unused {
        findings.push(Finding::new(
            "mta-sts.policy.mx-unused",
            Area::MtaSts,
            Severity::Info,
            subject,
            format!("the policy pattern `{pattern}` matches no current MX host"),
        ));
    }
}

fn fetch_finding(host: &str, url: &str, e: &FetchError) -> Finding {
    let (id, message, fix): (&'static str, String, String) = match e {
        FetchError::Resolve(why) => (
            "mta-sts.policy.unreachable",
            format!("the MTA-STS record exists but {host} does not resolve ({why}): senders cannot fetch the policy"),
            format!("publish A/AAAA records for {host} pointing at the web server that serves {url}"),
        ),
        FetchError::Connect(why) => (
            "mta-sts.policy.unreachable",
            format!("the MTA-STS record exists but {host} refuses HTTPS connections ({why})"),
            format!("serve {url} over HTTPS on port 443"),
        ),
        FetchError::Timeout(limit) => (
            "mta-sts.policy.unreachable",
            format!("fetching {url} took longer than {} s", limit.as_secs_f64()),
            "make the policy host answer promptly; senders give up as well".to_owned(),
        ),
        FetchError::Certificate(why) => (
            "mta-sts.policy.certificate",
            format!("the certificate of {host} does not validate ({why}): senders reject the policy"),
            format!("install a certificate for {host} from a public CA (e.g. Let's Encrypt), with its full chain"),
        ),
        FetchError::Tls(why) => (
            "mta-sts.policy.tls",
            format!("the TLS handshake with {host} failed ({why})"),
            format!("serve {url} with TLS 1.2 or 1.3 and a certificate for {host}"),
        ),
        FetchError::Http(why) => (
            "mta-sts.policy.http",
            format!("the HTTP exchange with {host} failed ({why})"),
            format!("serve {url} over HTTP/1.1 with a plain 200 answer"),
        ),
        FetchError::Redirect { status, location } => (
            "mta-sts.policy.redirect",
            format!(
                "{url} answers {status} redirecting to {}: senders do not follow redirects (RFC 8461 §3.3)",
                location.as_deref().unwrap_or("(no Location)")
            ),
            format!("serve the policy at {url} itself, with status 200"),
        ),
        FetchError::Status(status) => (
            "mta-sts.policy.status",
            format!("{url} answers HTTP {status}, not 200: senders find no policy"),
            format!("serve the policy file at {url} with status 200"),
        ),
        FetchError::TooLarge { limit, announced } => (
            "mta-sts.policy.too-large",
            match announced {
                Some(n) => format!("{url} announces a {n}-byte body, over the {limit}-byte limit"),
                None => format!("{url} sends more than {limit} bytes"),
            },
            "serve only the policy lines (a few hundred bytes); check that the URL is not answered by another page".to_owned(),
        ),
    };
    Finding::new(id, Area::MtaSts, Severity::Fail, host, message)
        .fix(fix)
        .evidence(format!("GET {url}"))
}

/// Fetches the policy (no deadline here; the caller sets it).
async fn fetch(
    dns: &DnsClient,
    host: &str,
    cfg: &HttpsConfig,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Fetched, FetchError> {
    let ips = match dns.addresses(host).await {
        Ok(Answer::Records(ips)) => ips,
        Ok(Answer::NxDomain) => return Err(FetchError::Resolve("NXDOMAIN".into())),
        Ok(Answer::NoData) => return Err(FetchError::Resolve("no A or AAAA record".into())),
        Err(e) => return Err(FetchError::Resolve(e.to_string())),
    };
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|e| FetchError::Tls(format!("`{host}` is not a valid TLS server name: {e}")))?;
    let mut tcp = None;
    let mut errors = Vec::new();
    for ip in ips.iter().take(MAX_ADDRESSES) {
        let addr = SocketAddr::new(*ip, cfg.port);
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some((addr, s));
                break;
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    let Some((address, tcp)) = tcp else {
        return Err(FetchError::Connect(errors.join("; ")));
    };
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(classify_tls)?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADER_BUFFER)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let _conn = AbortOnDrop(tokio::spawn(conn));
    let host_header = if cfg.port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{}", cfg.port)
    };
    let request = hyper::Request::get(POLICY_PATH)
        .header(HOST, host_header)
        .header(
            USER_AGENT,
            concat!("mailwarden/", env!("CARGO_PKG_VERSION"), " (MTA-STS audit)"),
        )
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| cut(&String::from_utf8_lossy(v.as_bytes()), 200));
        return Err(FetchError::Redirect { status, location });
    }
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| cut(&String::from_utf8_lossy(v.as_bytes()), 100));
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > cfg.max_body as u64) {
        return Err(FetchError::TooLarge {
            limit: cfg.max_body,
            announced,
        });
    }
    let mut body = response.into_body();
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Http(format!("reading the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > cfg.max_body {
                return Err(FetchError::TooLarge {
                    limit: cfg.max_body,
                    announced: None,
                });
            }
            out.extend_from_slice(data);
        }
    }
    Ok(Fetched {
        address,
        content_type,
        body: out,
    })
}

/// Aborts the connection task when the fetch ends (or is cancelled by the
/// deadline).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Certificate problems apart from other TLS failures.
fn classify_tls(e: std::io::Error) -> FetchError {
    let text = e.to_string();
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => FetchError::Certificate(cert.to_string()),
        Some(other) => FetchError::Tls(other.to_string()),
        None => FetchError::Tls(text),
    }
}

/// `text/plain`, parameters (charset) allowed, case-insensitive.
fn is_text_plain(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/plain"))
    })
}

/// The first `max` characters of `text`, with `…` when cut; control
/// characters are shown as `\n`-style escapes so evidence stays one line.
fn cut(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records() {
        let ok = parse_record("v=STSv1; id=20250101T000000;");
        assert_eq!(ok.id.as_deref(), Some("20250101T000000"));
        assert!(ok.problems.is_empty(), "{ok:?}");
        assert!(parse_record("v=STSv1;id=abc").problems.is_empty());
        let ext = parse_record("v=STSv1; id=1; ext_1=value");
        assert_eq!(ext.extensions, [("ext_1".to_owned(), "value".to_owned())]);

        let check = |text: &str, part: &str| {
            let r = parse_record(text);
            assert!(
                r.problems.iter().any(|p| p.message.contains(part)),
                "{text}: {:?}",
                r.problems
            );
        };
        check("v=STSv1;", "no `id=`");
        check("v=STSv1; id=", "1 to 32");
        check("v=STSv1; id=has-dash", "1 to 32");
        check(&format!("v=STSv1; id={}", "a".repeat(33)), "1 to 32");
        check("v=STSv1; id=1; id=2", "twice");
        check("v=STSv2; id=1", "must start");
        check("v=STSv1; id=1; junk", "name=value");
        check("v=STSv1; id=1; -x=1", "extension");
        check("v=STSv1;; id=1", "empty field");
        assert!(is_sts_record("v=STSv1; id=1"));
        assert!(!is_sts_record("google-site-verification=x"));
    }

    #[test]
    fn policies() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.net\r\nmax_age: 604800\r\n",
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.version.as_deref(), Some("STSv1"));
        assert_eq!(p.mode, Some(Mode::Enforce));
        assert_eq!(p.max_age, Some(604_800));
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);

        // LF line ends, extra blanks, unknown keys ignored.
        let lf = parse_policy("version:STSv1\nmode:   testing\nmax_age: 86400\nmx: a.example\nfoo: bar\n\n");
        assert!(lf.problems.is_empty(), "{:?}", lf.problems);
        assert_eq!(lf.mode, Some(Mode::Testing));

        let problems = |text: &str| parse_policy(text).problems;
        let p = problems("version: STSv1\r\nmode: enforce\r\n");
        assert!(
            p.iter().any(|p| p.fatal && p.message.contains("max_age")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.fatal && p.message.contains("mx")), "{p:?}");
        let p = problems("version: STSv1\nmode: enforce\nmode: none\nmax_age: 1\nmx: a.example\n");
        assert!(
            p.iter()
                .any(|p| !p.fatal && p.line == Some(3) && p.message.contains("twice")),
            "{p:?}"
        );
        let p = problems("version: STSv2\nmode: strict\nmax_age: -1\nmx: 192.0.2.1\nmx: a.example.\njunk\n");
        let lines: Vec<Option<usize>> = p.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)],
            "{p:?}"
        );
        assert!(p[0].fatal && p[1].fatal && p[2].fatal && !p[3].fatal && !p[5].fatal);
        // mode none needs no mx.
        assert!(problems("version: STSv1\nmode: none\nmax_age: 86400\n").is_empty());
        // Problems are capped.
        let junk = "x\n".repeat(1000);
        let p = problems(&junk);
        assert!(p.len() <= MAX_PROBLEMS + 1, "{}", p.len());
        assert!(p.last().unwrap().message.contains("more problems"));
    }

    #[test]
    fn mx_patterns() {
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(mx_matches("*.example.com", "mx1.example.com"));
        assert!(!mx_matches("*.example.com", "example.com"));
        assert!(!mx_matches("*.example.com", "a.b.example.com"));
        assert!(!mx_matches("mail.example.com", "mail.example.org"));
        assert!(!mx_matches("*.example.com", ".example.com"));
        assert!(valid_mx_pattern("*.example.com"));
        assert!(!valid_mx_pattern("*.com"));
        assert!(!valid_mx_pattern("mail.*.com"));
        assert!(!valid_mx_pattern("exa mple.com"));
        assert!(!valid_mx_pattern(""));
    }

    #[test]
    fn content_types() {
        assert!(is_text_plain(Some("text/plain")));
        assert!(is_text_plain(Some("Text/Plain; charset=utf-8")));
        assert!(!is_text_plain(Some("text/html")));
        assert!(!is_text_plain(None));
    }

    proptest! {
        #[test]
        fn policy_parser_is_total(text in "\\PC{0,400}", raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let p = parse_policy(&text);
            prop_assert!(p.problems.len() <= MAX_PROBLEMS + 1);
            prop_assert!(p.mx.len() <= MAX_MX_PATTERNS);
            let _ = parse_policy(&String::from_utf8_lossy(&raw));
        }

        #[test]
        fn policy_parser_on_near_valid_input(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("version: STSv1".to_owned()),
                    "mode: (enforce|testing|none|x)",
                    "max_age: [0-9]{0,12}",
                    "mx: [a-z*.\\-]{0,20}",
                    "[a-z_]{0,8}:[ -~]{0,20}",
                ],
                0..12,
            ),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            let p = parse_policy(&text);
            // Every pattern kept is one the matcher understands.
            for pattern in &p.mx {
                prop_assert!(valid_mx_pattern(pattern));
            }
            if p.is_valid() {
                prop_assert!(p.version.is_some() && p.mode.is_some() && p.max_age.is_some());
            }
        }

        #[test]
        fn record_parser_is_total(text in "\\PC{0,300}") {
            let r = parse_record(&text);
            prop_assert!(r.problems.len() <= MAX_PROBLEMS);
            if r.problems.is_empty() {
                prop_assert!(is_sts_record(&text));
                prop_assert!(r.id.is_some());
            }
        }

        #[test]
        fn record_parser_on_near_valid_input(
            id in "[A-Za-z0-9]{0,34}",
            ext in "[ -~]{0,30}",
        ) {
            let text = format!("v=STSv1; id={id}; {ext}");
            let r = parse_record(&text);
            if r.problems.is_empty() {
                prop_assert_eq!(r.id.as_deref(), Some(id.as_str()));
            }
            if id.is_empty() || id.len() > 32 {
                prop_assert!(!r.problems.is_empty());
            }
        }
    }
}
