//! Re-verification of a sample message's DKIM signatures, SPF and DMARC
//! against a chosen DNS server, using the `mail-auth` crate.
//!
//! [`verify_message`] never panics on hostile input (a panic inside
//! `mail-auth` is caught and reported as an error entry in debug/unwinding
//! builds) and always returns within [`VerifyConfig::timeout`] (plus a small
//! scheduling slack): lookups that did not finish in time are reported as
//! `temperror` with an entry in [`VerifyReport::errors`].

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult,
};
use serde::Serialize;
use tokio::time::Instant;

/// Largest message (headers and body) [`verify_message`] accepts: 25 MiB.
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// The host name used for the SPF `%{r}` macro (RFC 7208 §7.3: "unknown"
/// when the checking host's name is not available).
const SPF_HOST_DOMAIN: &str = "unknown";

/// How to reach DNS for a verification.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// `None`: the system configuration (`/etc/resolv.conf`). `Some(addr)`:
    /// only this server, over UDP with TCP fallback; no other name server is
    /// ever queried.
    pub resolver: Option<SocketAddr>,
    /// Overall time budget of one [`verify_message`] call (also the per-query
    /// DNS timeout).
    pub timeout: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            resolver: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Result of one DKIM signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimCheck {
    /// Signing domain (`d=`); empty for a signature that could not be parsed.
    pub domain: String,
    /// Selector (`s=`); empty for a signature that could not be parsed.
    pub selector: String,
    /// `pass`, `fail`, `neutral`, `temperror`, `permerror` or `none`.
    /// A body hash mismatch is `fail` (RFC 6376 §6.1.3), although `mail-auth`
    /// itself calls it neutral.
    pub result: String,
    /// Why the result is not `pass` (empty on pass).
    pub reason: String,
}

/// Result of the SPF check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfCheck {
    /// The connecting client's address.
    pub ip: IpAddr,
    /// The domain whose SPF record was evaluated (the MAIL FROM domain, or
    /// the HELO name for a null sender or a failing HELO check).
    pub mail_from: String,
    /// `pass`, `fail`, `softfail`, `neutral`, `temperror`, `permerror` or
    /// `none`.
    pub result: String,
}

/// Result of the DMARC evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcCheck {
    /// The RFC 5322 `From:` domain.
    pub header_from: String,
    /// SPF alignment: `pass` (SPF passed for an aligned domain), `fail` (SPF
    /// passed but the domain is not aligned), `temperror`, `permerror`, or
    /// `none` (SPF did not pass, so there is nothing to align).
    pub spf: String,
    /// DKIM alignment: `pass` (a valid signature with an aligned `d=`),
    /// `fail` (valid signatures, none aligned), `temperror`, `permerror`, or
    /// `none` (no valid signature).
    pub dkim: String,
    /// The published policy `p=`: `none`, `quarantine`, `reject`, or
    /// `unspecified` when no usable record was found.
    pub policy: String,
    /// Overall DMARC result: `pass`, `fail`, `temperror`, `permerror` or
    /// `none`.
    pub result: String,
}

/// Result of the ARC chain check (RFC 8617).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcCheck {
    /// `pass` (every seal and the newest message signature verify),
    /// `fail`, `neutral` (a malformed chain), `temperror`, `permerror`, or
    /// `none` (no ARC headers).
    pub result: String,
    /// The sets in the chain, oldest first: `i=1 d=example.net s=arc cv=none`.
    pub sets: Vec<String>,
    /// Why the result is not `pass`/`none` (empty otherwise).
    pub reason: String,
}

/// Everything [`verify_message`] found out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// One entry per `DKIM-Signature` header (empty for an unsigned message).
    pub dkim: Vec<DkimCheck>,
    /// The SPF check (`None` if it could not be run at all).
    pub spf: Option<SpfCheck>,
    /// The DMARC evaluation (`None` if it could not be run, e.g. the message
    /// did not parse or has no usable `From:` domain).
    pub dmarc: Option<DmarcCheck>,
    /// The ARC chain (`None` if the message did not parse or the check
    /// timed out).
    pub arc: Option<ArcCheck>,
    /// Problems met on the way: refused input, resolver setup, DNS failures
    /// and timeouts.
    pub errors: Vec<String>,
}

/// Re-verifies `raw` (a complete RFC 5322 message) as if it had been received
/// from `client_ip`, which said `HELO helo` and `MAIL FROM:<mail_from>`
/// (`mail_from` may be empty for the null sender; SPF then checks the HELO
/// name).
///
/// Messages larger than [`MAX_MESSAGE_BYTES`] are refused with an `errors`
/// entry. The call never panics and returns within about `cfg.timeout`.
pub async fn verify_message(
    raw: &[u8],
    client_ip: IpAddr,
    helo: &str,
    mail_from: &str,
    cfg: &VerifyConfig,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    if raw.len() > MAX_MESSAGE_BYTES {
        report.errors.push(format!(
            "message is {} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit; not verified",
            raw.len()
        ));
        return report;
    }
    let authenticator = match build_authenticator(cfg) {
        Ok(a) => a,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let deadline = Instant::now() + cfg.timeout;
    let run = AssertUnwindSafe(run_checks(
        &authenticator,
        raw,
        client_ip,
        helo,
        mail_from,
        deadline,
        &mut report,
    ))
    .catch_unwind();
    if run.await.is_err() {
        report
            .errors
            .push("internal error: the mail-auth verifier panicked".to_owned());
    }
    report
}

/// Builds the resolver: system configuration, or exactly one name server.
pub(crate) fn build_authenticator(cfg: &VerifyConfig) -> Result<MessageAuthenticator, String> {
    let timeout = if cfg.timeout.is_zero() {
        Duration::from_millis(1)
    } else {
        cfg.timeout
    };
    let (config, mut opts) = crate::dns::resolver_setup(cfg.resolver)?;
    opts.timeout = timeout;
    opts.attempts = 1;
    // Every verification gets a fresh resolver; caching across lookups of a
    // single message is all that is needed.
    opts.cache_size = 64;
    MessageAuthenticator::new(config, opts).map_err(|e| format!("creating the DNS resolver: {e}"))
}

/// Runs DKIM and SPF concurrently, then DMARC, each bounded by `deadline`.
async fn run_checks(
    authenticator: &MessageAuthenticator,
    raw: &[u8],
    client_ip: IpAddr,
    helo: &str,
    mail_from: &str,
    deadline: Instant,
    report: &mut VerifyReport,
) {
    let message = AuthenticatedMessage::parse(raw);
    if message.is_none() {
        report
            .errors
            .push("the message could not be parsed (no header section found)".to_owned());
    }

    let mail_from = mail_from.trim().trim_start_matches('<').trim_end_matches('>');
    let helo = helo.trim();
    let spf_params = if mail_from.is_empty() {
        SpfParameters::verify_ehlo(client_ip, helo, SPF_HOST_DOMAIN)
    } else {
        SpfParameters::verify(client_ip, helo, SPF_HOST_DOMAIN, mail_from)
    };
    // The RFC 5321 identity DMARC aligns SPF against.
    let spf_identity = match mail_from.rsplit_once('@') {
        Some((_, domain)) if !mail_from.is_empty() => domain,
        _ => helo,
    };

    let dkim_fut = async {
        match &message {
            Some(m) => Some(tokio::time::timeout_at(deadline, authenticator.verify_dkim(m)).await),
            None => None,
        }
    };
    let spf_fut = tokio::time::timeout_at(deadline, authenticator.verify_spf(spf_params));
    let arc_fut = async {
        match &message {
            Some(m) => Some(tokio::time::timeout_at(deadline, authenticator.verify_arc(m)).await),
            None => None,
        }
    };
    let (dkim_out, spf_out, arc_out) = tokio::join!(dkim_fut, spf_fut, arc_fut);

    // ARC.
    match arc_out {
        Some(Ok(out)) => {
            let check = arc_check(&out);
            if check.result == "temperror" {
                report.errors.push(format!("arc: {}", check.reason));
            }
            report.arc = Some(check);
        }
        Some(Err(_)) => report.errors.push("arc: timed out waiting for DNS".to_owned()),
        None => {}
    }

    // DKIM.
    let dkim_outputs: Vec<DkimOutput<'_>> = match (dkim_out, &message) {
        (Some(Ok(outputs)), _) => outputs,
        (Some(Err(_)), Some(m)) => {
            report.errors.push("dkim: timed out waiting for DNS".to_owned());
            for header in &m.dkim_headers {
                report.dkim.push(DkimCheck {
                    domain: header.header.d.clone(),
                    selector: header.header.s.clone(),
                    result: "temperror".to_owned(),
                    reason: "timed out waiting for DNS".to_owned(),
                });
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    for out in &dkim_outputs {
        let check = dkim_check(out);
        if check.result == "temperror" {
            report.errors.push(format!(
                "dkim d={} s={}: {}",
                check.domain, check.selector, check.reason
            ));
        }
        report.dkim.push(check);
    }

    // SPF.
    let spf_output: Option<SpfOutput> = match spf_out {
        Ok(out) => {
            if out.result() == SpfResult::TempError {
                report
                    .errors
                    .push(format!("spf: temporary DNS error evaluating {}", out.domain()));
            }
            report.spf = Some(SpfCheck {
                ip: client_ip,
                mail_from: out.domain().to_owned(),
                result: spf_result_str(out.result()).to_owned(),
            });
            Some(out)
        }
        Err(_) => {
            report.errors.push("spf: timed out waiting for DNS".to_owned());
            let domain = if mail_from.is_empty() { helo } else { spf_identity };
            report.spf = Some(SpfCheck {
                ip: client_ip,
                mail_from: domain.to_owned(),
                result: "temperror".to_owned(),
            });
            None
        }
    };

    // DMARC.
    let Some(message) = &message else {
        return;
    };
    let header_from = message
        .from
        .iter()
        .find_map(|f| f.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
        .unwrap_or_default();
    let Some(spf_output) = spf_output else {
        report.dmarc = Some(DmarcCheck {
            header_from,
            spf: "temperror".to_owned(),
            dkim: "temperror".to_owned(),
            policy: "unspecified".to_owned(),
            result: "temperror".to_owned(),
        });
        return;
    };
    let params = DmarcParameters::new(message, &dkim_outputs, spf_identity, &spf_output);
    match tokio::time::timeout_at(deadline, authenticator.verify_dmarc(params)).await {
        Ok(out) => {
            let result = out.result();
            if out.domain().is_empty() && matches!(result, DmarcResult::None) {
                report
                    .errors
                    .push("dmarc: not evaluated (no single From: domain in the message)".to_owned());
                return;
            }
            for r in [&result, out.spf_result(), out.dkim_result()] {
                if let DmarcResult::TempError(e) = r {
                    report.errors.push(format!("dmarc: {e}"));
                    break;
                }
            }
            report.dmarc = Some(DmarcCheck {
                header_from: out.domain().to_owned(),
                spf: dmarc_result_str(out.spf_result()).to_owned(),
                dkim: dmarc_result_str(out.dkim_result()).to_owned(),
                policy: policy_str(out.policy()).to_owned(),
                result: dmarc_result_str(&result).to_owned(),
            });
        }
        Err(_) => {
            report.errors.push("dmarc: timed out waiting for DNS".to_owned());
            report.dmarc = Some(DmarcCheck {
                header_from,
                spf: "temperror".to_owned(),
                dkim: "temperror".to_owned(),
                policy: "unspecified".to_owned(),
                result: "temperror".to_owned(),
            });
        }
    }
}

fn dkim_check(out: &DkimOutput<'_>) -> DkimCheck {
    let (result, reason) = match out.result() {
        DkimResult::Pass => ("pass", String::new()),
        // mail-auth reports a body hash mismatch as "neutral"; RFC 6376
        // §6.1.3 makes it a failed verification (PERMFAIL), which RFC 8601
        // reports as "fail".
        DkimResult::Neutral(e @ mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            ("fail", e.to_string())
        }
        DkimResult::Neutral(e) => ("neutral", e.to_string()),
        DkimResult::Fail(e) => ("fail", e.to_string()),
        DkimResult::PermError(e) => ("permerror", e.to_string()),
        DkimResult::TempError(e) => ("temperror", e.to_string()),
        DkimResult::None => ("none", String::new()),
    };
    let (domain, selector) = out
        .signature()
        .map(|s| (s.d.clone(), s.s.clone()))
        .unwrap_or_default();
    DkimCheck {
        domain,
        selector,
        result: result.to_owned(),
        reason,
    }
}

fn arc_check(out: &mail_auth::ArcOutput<'_>) -> ArcCheck {
    let (result, reason) = match out.result() {
        DkimResult::Pass => ("pass", String::new()),
        DkimResult::Neutral(e) => ("neutral", e.to_string()),
        DkimResult::Fail(e) => ("fail", e.to_string()),
        DkimResult::PermError(e) => ("permerror", e.to_string()),
        DkimResult::TempError(e) => ("temperror", e.to_string()),
        DkimResult::None => ("none", String::new()),
    };
    let sets = out
        .sets()
        .iter()
        .map(|set| {
            let seal = set.seal.header;
            let cv = match seal.cv {
                mail_auth::arc::ChainValidation::None => "none",
                mail_auth::arc::ChainValidation::Fail => "fail",
                mail_auth::arc::ChainValidation::Pass => "pass",
            };
            format!("i={} d={} s={} cv={cv}", seal.i, seal.d, seal.s)
        })
        .collect();
    ArcCheck {
        result: result.to_owned(),
        sets,
        reason,
    }
}

fn spf_result_str(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dmarc_result_str(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_str(p: Policy) -> &'static str {
    match p {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::Unspecified => "unspecified",
    }
}
