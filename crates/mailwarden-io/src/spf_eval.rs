//! SPF evaluation of one SMTP connection (RFC 7208 `check_host()`), on top
//! of `mail-auth`, for the `dns` and `investigate` commands and the RFC 7208
//! conformance suite (`tests/spf_suite.rs`, results in `bench/spf-suite.md`).
//!
//! [`check_spf`] checks exactly one identity: the MAIL FROM domain, or —
//! for the null sender `<>` — the HELO name with the sender
//! `postmaster@<helo>` (RFC 7208 §2.4). It does the initial processing of
//! §4.3 itself (a malformed or single-label domain is `none` without any
//! DNS query; a missing local part becomes `postmaster`) and leaves record
//! selection, mechanisms, macros and `exp=` to `mail-auth`. Unlike
//! `mail-auth`'s own `verify_spf` with both identities, it never reports
//! the HELO result in place of the MAIL FROM result.
//!
//! DNS goes to the server chosen in [`VerifyConfig`] (or the system's); the
//! whole evaluation ends within [`VerifyConfig::timeout`], and each DNS
//! query gets a quarter of it, so one server that never answers (a dead
//! `exp=` host, say) still leaves time to finish with the right result.
//! (Measured against a silent name: one lookup costs about twice the
//! per-query timeout, as the resolver tries again.)

use std::fmt;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::time::Duration;

use futures_util::FutureExt as _;
use mail_auth::SpfResult as AuthSpfResult;
use mail_auth::spf::verify::SpfParameters;
use serde::Serialize;
use tokio::time::Instant;

use crate::verify::{VerifyConfig, build_authenticator};

/// The host name used for the `%{r}` macro (RFC 7208 §7.3: "unknown" when
/// the checking host's name is not available).
const RECEIVER_DOMAIN: &str = "unknown";

/// Longest explanation kept, in bytes (an SMTP reply line is at most 512
/// bytes; the text comes from the sender's DNS, so it is bounded here).
pub const MAX_EXPLANATION_BYTES: usize = 1024;

/// Each DNS query may take `timeout / QUERY_SHARE` of the overall budget.
const QUERY_SHARE: u32 = 4;

/// The result of an SPF check (RFC 7208 §2.6), serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    /// The client is authorized to use the domain.
    Pass,
    /// The client is explicitly not authorized (`-all` and friends).
    Fail,
    /// Probably not authorized (`~all`); the domain does not commit to it.
    SoftFail,
    /// The domain makes no assertion about the client (`?all`, or no match).
    Neutral,
    /// No SPF record, or no valid domain to check.
    None,
    /// A transient DNS problem; checking again later may succeed.
    TempError,
    /// The domain's records cannot be interpreted (syntax, limits).
    PermError,
}

impl SpfResult {
    /// Every result, in RFC 7208 §2.6 order.
    pub const ALL: [SpfResult; 7] = [
        SpfResult::None,
        SpfResult::Neutral,
        SpfResult::Pass,
        SpfResult::Fail,
        SpfResult::SoftFail,
        SpfResult::TempError,
        SpfResult::PermError,
    ];

    /// The RFC 7208 name: `pass`, `fail`, `softfail`, `neutral`, `none`,
    /// `temperror` or `permerror`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an SPF result name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an SPF result; expected one of pass, fail, softfail, neutral, none, temperror, permerror"
)]
pub struct UnknownSpfResult(pub String);

impl FromStr for SpfResult {
    type Err = UnknownSpfResult;

    /// Parses an RFC 7208 result name, ignoring ASCII case and surrounding
    /// blanks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        SpfResult::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownSpfResult(s.to_owned()))
    }
}

impl From<AuthSpfResult> for SpfResult {
    fn from(r: AuthSpfResult) -> Self {
        match r {
            AuthSpfResult::Pass => SpfResult::Pass,
            AuthSpfResult::Fail => SpfResult::Fail,
            AuthSpfResult::SoftFail => SpfResult::SoftFail,
            AuthSpfResult::Neutral => SpfResult::Neutral,
            AuthSpfResult::TempError => SpfResult::TempError,
            AuthSpfResult::PermError => SpfResult::PermError,
            AuthSpfResult::None => SpfResult::None,
        }
    }
}

/// Which SMTP identity was checked (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpfIdentity {
    /// The MAIL FROM (reverse-path) domain.
    MailFrom,
    /// The HELO/EHLO name, checked because the MAIL FROM was null.
    Helo,
}

/// What [`check_spf`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfOutcome {
    /// The SPF result.
    pub result: SpfResult,
    /// The identity whose domain was checked.
    pub identity: SpfIdentity,
    /// The domain checked (`<domain>` of `check_host()`), without a trailing
    /// dot.
    pub domain: String,
    /// The `<sender>` used for macros: the MAIL FROM address, with
    /// `postmaster` as local part when it had none, or `postmaster@<helo>`.
    pub sender: String,
    /// For `fail` only: the domain's explanation (`exp=`, RFC 7208 §6.2),
    /// macro-expanded, at most [`MAX_EXPLANATION_BYTES`]. Attacker-controlled
    /// text: escape it before printing. `None` when the record has no
    /// usable `exp=` (the "default explanation").
    pub explanation: Option<String>,
    /// Why the result is `none`, `temperror` or `permerror`, when known.
    pub problem: Option<String>,
}

/// Checks whether `ip`, which said `HELO helo` and `MAIL FROM:<mail_from>`,
/// may send for the MAIL FROM domain — or, when `mail_from` is empty (the
/// null sender, with or without angle brackets), for the HELO name.
///
/// An IPv4-mapped IPv6 `ip` is checked as the IPv4 address it carries. An
/// explanation that is not US-ASCII is dropped (RFC 7208 §6.2).
///
/// A MAIL FROM without `@` is taken as a bare domain; one without a local
/// part (`@example.net`) gets `postmaster` (RFC 7208 §4.3). A domain that
/// is empty, an address literal, single-label, longer than 253 bytes, with
/// an empty or over-long label, or with characters DNS host names do not
/// use, is `none` with a [`problem`](SpfOutcome::problem) and no DNS query.
///
/// Never panics on hostile DNS data in debug/unwinding builds (a panic in
/// `mail-auth` becomes `temperror`) and returns within about `cfg.timeout`.
pub async fn check_spf(ip: IpAddr, helo: &str, mail_from: &str, cfg: &VerifyConfig) -> SpfOutcome {
    // An IPv4-mapped IPv6 client (`::ffff:192.0.2.1`, as dual-stack sockets
    // report IPv4 peers) is an IPv4 client: A records and ip4 apply.
    let ip = ip.to_canonical();
    let helo = helo.trim();
    let id = spf_identity(helo, mail_from);
    let mut outcome = SpfOutcome {
        result: SpfResult::None,
        identity: id.identity,
        domain: id.domain.clone(),
        sender: id.sender.clone(),
        explanation: None,
        problem: None,
    };
    if let Some(problem) = domain_problem(&id.domain) {
        let which = match id.identity {
            SpfIdentity::MailFrom => "MAIL FROM domain",
            SpfIdentity::Helo => "HELO name",
        };
        outcome.problem = Some(format!(
            "the {which} `{}` {problem}; RFC 7208 §4.3 makes that `none`",
            id.domain.escape_debug()
        ));
        return outcome;
    }

    let mut query_cfg = cfg.clone();
    query_cfg.timeout = (cfg.timeout / QUERY_SHARE).max(Duration::from_millis(1));
    let authenticator = match build_authenticator(&query_cfg) {
        Ok(a) => a,
        Err(e) => {
            outcome.result = SpfResult::TempError;
            outcome.problem = Some(e);
            return outcome;
        }
    };
    let params = match id.identity {
        SpfIdentity::Helo => SpfParameters::verify_ehlo(ip, &id.domain, RECEIVER_DOMAIN),
        SpfIdentity::MailFrom => SpfParameters::verify_mail_from(ip, helo, RECEIVER_DOMAIN, &id.sender),
    };
    let deadline = Instant::now() + cfg.timeout;
    let run = AssertUnwindSafe(tokio::time::timeout_at(
        deadline,
        authenticator.verify_spf(params),
    ))
    .catch_unwind();
    match run.await {
        Ok(Ok(out)) => {
            outcome.result = out.result().into();
            // RFC 7208 §6.2: the explanation MUST be US-ASCII; otherwise
            // proceed as if there were no exp= (mail-auth keeps any text).
            outcome.explanation = out
                .explanation()
                .filter(|e| e.is_ascii())
                .map(bounded_explanation);
            outcome.problem = match outcome.result {
                SpfResult::TempError => {
                    Some("a DNS lookup failed or timed out (mail-auth does not say which)".into())
                }
                SpfResult::PermError => Some(
                    "the policy cannot be evaluated: a syntax error in a record, a missing include/redirect \
                     target, or more than 10 DNS-querying terms"
                        .into(),
                ),
                SpfResult::None => Some(format!("`{}` publishes no SPF record", id.domain.escape_debug())),
                _ => None,
            };
        }
        Ok(Err(_)) => {
            outcome.result = SpfResult::TempError;
            outcome.problem = Some(format!(
                "the SPF evaluation did not finish within {:?} (DNS too slow or not answering)",
                cfg.timeout
            ));
        }
        Err(_) => {
            outcome.result = SpfResult::TempError;
            outcome.problem = Some("internal error: the mail-auth SPF evaluator panicked".into());
        }
    }
    outcome
}

/// The identity to check, its domain and the `<sender>` for macros.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    identity: SpfIdentity,
    domain: String,
    sender: String,
}

/// Picks the identity (RFC 7208 §2.3, §2.4, §4.3). Pure, total: any input
/// gives an identity; whether its domain is usable is [`domain_problem`]'s
/// question.
fn spf_identity(helo: &str, mail_from: &str) -> Identity {
    let mut path = mail_from.trim();
    if let Some(inner) = path.strip_prefix('<').and_then(|p| p.strip_suffix('>')) {
        path = inner.trim();
    }
    let strip_dot = |d: &str| d.strip_suffix('.').unwrap_or(d).to_owned();
    if path.is_empty() {
        let domain = strip_dot(helo.trim());
        return Identity {
            identity: SpfIdentity::Helo,
            sender: format!("postmaster@{domain}"),
            domain,
        };
    }
    let (local, domain) = match path.rsplit_once('@') {
        Some((local, domain)) => (local, strip_dot(domain)),
        None => ("", strip_dot(path)),
    };
    let local = if local.is_empty() { "postmaster" } else { local };
    Identity {
        identity: SpfIdentity::MailFrom,
        sender: format!("{local}@{domain}"),
        domain,
    }
}

/// Why `domain` (without trailing dot) cannot be an SPF `<domain>`, or
/// `None` if it can. Non-ASCII labels are allowed (internationalized names
/// are converted for the query by the resolver).
fn domain_problem(domain: &str) -> Option<String> {
    if domain.is_empty() {
        return Some("is empty".into());
    }
    if domain.starts_with('[') {
        return Some("is an address literal, not a domain name".into());
    }
    if domain.len() > 253 {
        return Some(format!("is {} bytes long, more than 253", domain.len()));
    }
    let mut labels = 0;
    for label in domain.split('.') {
        labels += 1;
        if label.is_empty() {
            return Some("has an empty label".into());
        }
        if label.len() > 63 {
            return Some(format!("has a {}-byte label, more than 63", label.len()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!("contains {:?}, which no host name has", c));
        }
    }
    if labels < 2 {
        return Some("is not a multi-label domain name".into());
    }
    None
}

/// Cuts an explanation to [`MAX_EXPLANATION_BYTES`] at a character boundary.
fn bounded_explanation(text: &str) -> String {
    if text.len() <= MAX_EXPLANATION_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_EXPLANATION_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(helo: &str, mail_from: &str) -> (SpfIdentity, String, String) {
        let i = spf_identity(helo, mail_from);
        (i.identity, i.domain, i.sender)
    }

    #[test]
    fn picks_the_identity() {
        use SpfIdentity::{Helo, MailFrom};
        let s = String::from;
        assert_eq!(
            id("mx.a.test", "bob@b.test"),
            (MailFrom, s("b.test"), s("bob@b.test"))
        );
        assert_eq!(
            id("mx.a.test", " <bob@B.test.> "),
            (MailFrom, s("B.test"), s("bob@B.test"))
        );
        assert_eq!(
            id("mx.a.test", "@example.net"),
            (MailFrom, s("example.net"), s("postmaster@example.net"))
        );
        assert_eq!(
            id("mx.a.test", "Macro Error@e8.test"),
            (MailFrom, s("e8.test"), s("Macro Error@e8.test"))
        );
        assert_eq!(
            id("mx.a.test", "a@b@c.test"),
            (MailFrom, s("c.test"), s("a@b@c.test"))
        );
        assert_eq!(
            id("mx.a.test", "c.test"),
            (MailFrom, s("c.test"), s("postmaster@c.test"))
        );
        assert_eq!(
            id(" mx.a.test. ", ""),
            (Helo, s("mx.a.test"), s("postmaster@mx.a.test"))
        );
        assert_eq!(
            id("mx.a.test", "<>"),
            (Helo, s("mx.a.test"), s("postmaster@mx.a.test"))
        );
    }

    #[test]
    fn rejects_malformed_domains() {
        assert_eq!(domain_problem("example.com"), None);
        assert_eq!(domain_problem("_spf.example-1.com"), None);
        assert_eq!(domain_problem("bücher.example"), None);
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(domain_problem(&long_label).unwrap().contains("64-byte label"));
        assert_eq!(domain_problem(&format!("{}.example.com", "a".repeat(63))), None);
        assert!(domain_problem("a...example.com").unwrap().contains("empty label"));
        assert!(domain_problem("A2345678").unwrap().contains("multi-label"));
        assert!(domain_problem("[1.2.3.5]").unwrap().contains("address literal"));
        assert!(domain_problem("").unwrap().contains("empty"));
        assert!(domain_problem("a b.example").unwrap().contains("' '"));
        let long = ["abcdefghi"; 26].join(".");
        assert!(domain_problem(&long).unwrap().contains("more than 253"));
    }

    #[test]
    fn parses_and_prints_results() {
        for r in SpfResult::ALL {
            assert_eq!(r.as_str().parse::<SpfResult>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert_eq!(" PermError ".parse::<SpfResult>(), Ok(SpfResult::PermError));
        let err = "unknown".parse::<SpfResult>().unwrap_err();
        assert!(err.to_string().contains("expected one of pass"), "{err}");
    }

    #[test]
    fn bounds_explanations_at_a_char_boundary() {
        assert_eq!(bounded_explanation("short"), "short");
        let text = "é".repeat(MAX_EXPLANATION_BYTES);
        let cut = bounded_explanation(&text);
        assert!(cut.len() <= MAX_EXPLANATION_BYTES && cut.len() >= MAX_EXPLANATION_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    /// Malformed domains never reach DNS: the outcome is `none` with the
    /// reason, even with a resolver address where nothing listens.
    #[test]
    fn malformed_domains_are_none_without_dns() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cfg = VerifyConfig {
            resolver: Some("127.0.0.1:9".parse().unwrap()),
            timeout: Duration::from_secs(1),
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let out = rt.block_on(check_spf(ip, "[192.0.2.1]", "", &cfg));
        assert_eq!(out.result, SpfResult::None);
        assert_eq!(out.identity, SpfIdentity::Helo);
        assert!(
            out.problem
                .unwrap()
                .contains("HELO name `[192.0.2.1]` is an address literal")
        );
        let out = rt.block_on(check_spf(ip, "mx.test", "x@foo", &cfg));
        assert_eq!(out.result, SpfResult::None);
        assert!(out.problem.unwrap().contains("MAIL FROM domain `foo`"));
    }

    proptest! {
        /// Any HELO/MAIL FROM pair gives an identity whose domain comes from
        /// the input and whose sender ends with `@domain`.
        #[test]
        fn identity_is_total(helo in "\\PC{0,40}", mail_from in "[<>@. a-zA-Z\\PC]{0,40}") {
            let i = spf_identity(&helo, &mail_from);
            let suffix = format!("@{}", i.domain);
            prop_assert!(i.sender.ends_with(&suffix));
            match i.identity {
                SpfIdentity::Helo => prop_assert!(helo.contains(i.domain.as_str())),
                SpfIdentity::MailFrom => prop_assert!(mail_from.contains(i.domain.as_str())),
            }
            let _ = domain_problem(&i.domain);
        }

        /// Well-formed host names are accepted; inserting a blank or an
        /// empty label is always caught.
        #[test]
        fn domain_checks(labels in proptest::collection::vec("[a-z0-9_-]{1,20}", 2..6)) {
            let domain = labels.join(".");
            prop_assert_eq!(domain_problem(&domain), None);
            let blank = format!("{domain} x");
            let empty_label = format!("{}..{}", labels[0], labels[1]);
            prop_assert!(domain_problem(&blank).is_some());
            prop_assert!(domain_problem(&empty_label).is_some());
        }

        /// Result names parse whatever their case.
        #[test]
        fn result_names_parse_in_any_case(idx in 0usize..7, upper in proptest::collection::vec(any::<bool>(), 9)) {
            let r = SpfResult::ALL[idx];
            let name: String = r.as_str().chars().zip(upper.iter().cycle())
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert_eq!(name.parse::<SpfResult>(), Ok(r));
        }
    }
}
