//! Mail-authentication posture (C4): the findings of a DNS audit of a
//! domain, and the score summarizing them.
//!
//! A finding has a stable id (`spf.lookups.exceeded`, `dmarc.policy.none`,
//! …) that scripts and suppressions can rely on, a severity, a one-line
//! message saying what was seen, and the fix. The record parsers and
//! per-area analyses live in the submodules; the lookups themselves are in
//! `mailwarden-io` (this crate does no I/O).

use serde::Serialize;

pub mod bimi;
pub mod dkim;
pub mod dmarc;
pub mod domain;
pub mod spf;
pub mod tags;
pub mod tlsrpt;

/// How bad a finding is. Ordered: `Pass < Info < Warning < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A check that passed; listed so the report shows what was verified.
    Pass,
    /// Worth knowing, nothing to fix.
    Info,
    /// Weakens protection or breaks some receivers; should be fixed.
    Warning,
    /// Broken or exploitable: receivers will not enforce, or mail will fail.
    Fail,
}

impl Severity {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Pass => "pass",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Fail => "fail",
        }
    }
}

/// The area a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    /// Sender Policy Framework (RFC 7208).
    Spf,
    /// DKIM keys (RFC 6376, RFC 8463).
    Dkim,
    /// DMARC policy (RFC 7489, RFC 9989).
    Dmarc,
    /// MTA-STS (RFC 8461).
    MtaSts,
    /// SMTP TLS reporting (RFC 8460).
    TlsRpt,
    /// MX records (RFC 5321, RFC 7505 null MX).
    Mx,
    /// Reverse DNS and forward-confirmed reverse DNS of the MX addresses.
    Ptr,
    /// DNS blocklists (RFC 5782).
    Dnsbl,
    /// BIMI (draft-brand-indicators-for-message-identification).
    Bimi,
    /// DNSSEC signing of the domain and DANE (TLSA) for its MX hosts.
    Dnssec,
    /// The audit itself (lookups that failed, resolver problems).
    Dns,
}

impl Area {
    /// Short name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Spf => "spf",
            Area::Dkim => "dkim",
            Area::Dmarc => "dmarc",
            Area::MtaSts => "mta-sts",
            Area::TlsRpt => "tls-rpt",
            Area::Mx => "mx",
            Area::Ptr => "ptr",
            Area::Dnsbl => "dnsbl",
            Area::Bimi => "bimi",
            Area::Dnssec => "dnssec",
            Area::Dns => "dns",
        }
    }
}

/// One result of the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, `area.subject.condition`, e.g. `spf.all.pass`.
    pub id: &'static str,
    /// Area.
    pub area: Area,
    /// Severity.
    pub severity: Severity,
    /// The domain audited (or the MX host / address the finding is about).
    pub subject: String,
    /// What was seen, one line.
    pub message: String,
    /// How to fix it; `None` for passes and pure information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The DNS evidence: record names and texts as answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding without fix and evidence; add them with the builders.
    pub fn new(
        id: &'static str,
        area: Area,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            id,
            area,
            severity,
            subject: subject.into(),
            message: message.into(),
            fix: None,
            evidence: Vec::new(),
        }
    }

    /// Sets the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// Adds an evidence line.
    pub fn evidence(mut self, line: impl Into<String>) -> Finding {
        self.evidence.push(line.into());
        self
    }
}

/// A 0–100 score: 100 minus a penalty per failing and warning finding,
/// weighted by area (SPF and DMARC carry anti-spoofing, so weigh most).
/// Passes and information cost nothing.
pub fn score(findings: &[Finding]) -> u8 {
    let mut penalty: u32 = 0;
    for f in findings {
        let weight = match f.area {
            Area::Spf | Area::Dmarc => 3,
            Area::Dkim | Area::Mx | Area::Dnsbl => 2,
            Area::MtaSts | Area::TlsRpt | Area::Ptr | Area::Bimi | Area::Dnssec | Area::Dns => 1,
        };
        penalty += match f.severity {
            Severity::Fail => 8 * weight,
            Severity::Warning => 2 * weight,
            Severity::Pass | Severity::Info => 0,
        };
    }
    u8::try_from(100u32.saturating_sub(penalty)).unwrap_or(0)
}

/// The worst severity present (`Pass` for none).
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_weighs_failures_by_area() {
        let pass = Finding::new("spf.present", Area::Spf, Severity::Pass, "a.test", "ok");
        assert_eq!(score(std::slice::from_ref(&pass)), 100);
        let spf_fail = Finding::new("spf.all.pass", Area::Spf, Severity::Fail, "a.test", "+all");
        let bimi_warn = Finding::new("bimi.x", Area::Bimi, Severity::Warning, "a.test", "x");
        assert_eq!(score(&[pass.clone(), spf_fail.clone()]), 76);
        assert_eq!(score(std::slice::from_ref(&bimi_warn)), 98);
        assert_eq!(worst(&[pass, bimi_warn, spf_fail]), Severity::Fail);
        assert_eq!(worst(&[]), Severity::Pass);
        let many = vec![Finding::new("spf.x", Area::Spf, Severity::Fail, "a.test", "x"); 10];
        assert_eq!(score(&many), 0);
    }
}
