//! The data of DMARC aggregate and SMTP TLS reports, as read.
//!
//! Values are kept as the reporter wrote them, trimmed; enumerated values
//! (`pass`, `quarantine`, `r`) and domains are lowercased, so an unknown
//! value survives instead of being forced into a default. Everything is
//! serde both ways: the store keeps records as JSON.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which aggregate-report format a report follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    /// RFC 7489 appendix C (no namespace, or the dmarc-xml/0.1 one).
    #[default]
    Rfc7489,
    /// RFC 9990 (DMARCbis aggregate reporting, `urn:ietf:params:xml:ns:dmarc-2.0`),
    /// or a report using its new elements.
    Rfc9990,
}

/// `<report_metadata>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMetadata {
    /// `org_name`: who sent the report.
    pub org_name: String,
    /// `email`: the reporter's contact address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// `extra_contact_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_contact_info: Option<String>,
    /// `report_id`.
    pub report_id: String,
    /// `date_range/begin`, seconds since the epoch (UTC).
    pub begin: i64,
    /// `date_range/end`, seconds since the epoch (UTC).
    pub end: i64,
    /// `error` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// `generator` (RFC 9990).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

/// `<policy_published>`: the DMARC record the receiver found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPublished {
    /// The policy domain (lowercased, no trailing dot).
    pub domain: String,
    /// `adkim`: `r` or `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adkim: Option<String>,
    /// `aspf`: `r` or `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspf: Option<String>,
    /// `p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    /// `sp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp: Option<String>,
    /// `np` (RFC 9990).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub np: Option<String>,
    /// `pct` (RFC 7489; removed in RFC 9990).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pct: Option<String>,
    /// `fo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fo: Option<String>,
    /// `testing` (RFC 9990): `y` or `n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub testing: Option<String>,
    /// `discovery_method` (RFC 9990): `psl` or `treewalk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_method: Option<String>,
}

impl PolicyPublished {
    /// `p=none sp=reject np=… pct=…` for people.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("p", &self.p),
            ("sp", &self.sp),
            ("np", &self.np),
            ("pct", &self.pct),
            ("adkim", &self.adkim),
            ("aspf", &self.aspf),
            ("testing", &self.testing),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(" ")
    }
}

/// Everything of an aggregate report except its records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHeader {
    /// RFC 7489 or RFC 9990.
    pub schema: Schema,
    /// `<version>` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The root element's namespace when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `<report_metadata>`.
    pub metadata: ReportMetadata,
    /// `<policy_published>`.
    pub policy: PolicyPublished,
}

/// What identifies a report across inputs and runs: reporting organisation
/// (its contact address when the name is empty), report id and policy
/// domain. A report without an id is identified by its date range instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReportKey {
    /// `tls` or `dmarc`.
    pub kind: &'static str,
    /// The organisation (or its address).
    pub org: String,
    /// The report id (or `begin-end` when the report has none).
    pub report_id: String,
    /// The policy domain (empty for TLS reports, which cover several).
    pub domain: String,
}

impl ReportHeader {
    /// The de-duplication key.
    pub fn key(&self) -> ReportKey {
        let m = &self.metadata;
        ReportKey {
            kind: "dmarc",
            org: if m.org_name.is_empty() {
                m.email.to_ascii_lowercase()
            } else {
                m.org_name.clone()
            },
            report_id: if m.report_id.is_empty() {
                format!("{}-{}", m.begin, m.end)
            } else {
                m.report_id.clone()
            },
            domain: self.policy.domain.clone(),
        }
    }
}

/// `<policy_evaluated><reason>`: why the receiver overrode the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReason {
    /// `type`: forwarded, sampled_out, trusted_forwarder, mailing_list, local_policy, other.
    #[serde(rename = "type")]
    pub kind: String,
    /// `comment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One DKIM result of `<auth_results>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimAuth {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// none, pass, fail, policy, neutral, temperror, permerror.
    pub result: String,
    /// `human_result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_result: Option<String>,
}

/// One SPF result of `<auth_results>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfAuth {
    /// The checked domain.
    pub domain: String,
    /// `mfrom` or `helo` (RFC 7489; RFC 9990 dropped `helo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// none, neutral, pass, fail, softfail, temperror, permerror.
    pub result: String,
    /// `human_result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_result: Option<String>,
}

/// One `<record>`: `count` messages from one source with the same results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `row/source_ip`, normalised when it is an address; as written (cut)
    /// otherwise.
    pub source_ip: String,
    /// `row/count`: messages.
    pub count: u64,
    /// `policy_evaluated/disposition`: none, quarantine, reject (RFC 9990: also pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// `policy_evaluated/dkim`: the *aligned* DKIM result (pass or fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<String>,
    /// `policy_evaluated/spf`: the *aligned* SPF result (pass or fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf: Option<String>,
    /// `policy_evaluated/reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<PolicyReason>,
    /// `identifiers/envelope_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_to: Option<String>,
    /// `identifiers/envelope_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_from: Option<String>,
    /// `identifiers/header_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_from: Option<String>,
    /// `auth_results/dkim`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dkim_results: Vec<DkimAuth>,
    /// `auth_results/spf`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spf_results: Vec<SpfAuth>,
}

impl Record {
    /// The source as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.source_ip.parse().ok()
    }

    /// Whether these messages passed DMARC: aligned SPF pass or aligned
    /// DKIM pass, as the receiver evaluated it. When the receiver left
    /// `policy_evaluated` out, alignment is computed from `auth_results`
    /// (relaxed: same organisational domain as `header_from`).
    pub fn dmarc_pass(&self) -> bool {
        self.spf_aligned_pass() || self.dkim_aligned_pass()
    }

    /// Aligned SPF pass.
    pub fn spf_aligned_pass(&self) -> bool {
        match &self.spf {
            Some(v) => v == "pass",
            None => self.header_from.as_deref().is_some_and(|from| {
                self.spf_results
                    .iter()
                    .any(|s| s.result == "pass" && aligned_relaxed(&s.domain, from))
            }),
        }
    }

    /// Aligned DKIM pass.
    pub fn dkim_aligned_pass(&self) -> bool {
        match &self.dkim {
            Some(v) => v == "pass",
            None => self.header_from.as_deref().is_some_and(|from| {
                self.dkim_results
                    .iter()
                    .any(|d| d.result == "pass" && aligned_relaxed(&d.domain, from))
            }),
        }
    }

    /// The SPF result the receiver got for the envelope sender (the `mfrom`
    /// one when several are listed); `none` when none is listed.
    pub fn spf_result(&self) -> &str {
        self.spf_results
            .iter()
            .find(|s| s.scope.as_deref().is_none_or(|sc| sc == "mfrom"))
            .or(self.spf_results.first())
            .map_or("none", |s| s.result.as_str())
    }

    /// The best DKIM result: `pass` when any signature passed, else the
    /// first listed; `none` when no signature was listed.
    pub fn dkim_result(&self) -> &str {
        if self.dkim_results.iter().any(|d| d.result == "pass") {
            return "pass";
        }
        self.dkim_results.first().map_or("none", |d| d.result.as_str())
    }
}

/// Relaxed identifier alignment (RFC 7489 §3.1): both names have the same
/// organisational domain (public suffix list).
pub fn aligned_relaxed(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('.').to_ascii_lowercase();
    let b = b.trim_end_matches('.').to_ascii_lowercase();
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    match (psl::domain_str(&a), psl::domain_str(&b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// What kind of repair or oddity a [`Note`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Bytes that were not valid in the declared encoding were decoded another way.
    Encoding,
    /// Bytes before the root element were skipped.
    StrayPrefix,
    /// Bytes after the end of the report were ignored.
    TrailingData,
    /// A `<` that starts no markup was read as text.
    UnescapedLt,
    /// An `&` that starts no valid reference was read as text.
    UnescapedAmp,
    /// End tags that did not match were fixed.
    MismatchedTags,
    /// The input ended early; what was complete was kept.
    Truncated,
    /// A DOCTYPE (without entities) was removed.
    Doctype,
    /// Text longer than the limit was cut.
    TextCut,
    /// The root element had an unexpected namespace.
    Namespace,
    /// Text where only elements belong was ignored.
    StrayText,
    /// Elements the format does not define were ignored.
    UnknownElement,
    /// A value could not be read as its type.
    BadValue,
    /// Something required was missing.
    Missing,
    /// More entries than kept; the rest was counted and dropped.
    Dropped,
    /// Something about the container (gzip, zip, attachment).
    Container,
}

impl NoteKind {
    /// Whether the note is about a repair (the input was broken and was
    /// fixed), as opposed to an oddity of well-formed data (a value missing
    /// or unreadable, an element the format does not define, a limit).
    pub fn is_repair(self) -> bool {
        !matches!(
            self,
            NoteKind::BadValue | NoteKind::Missing | NoteKind::Dropped | NoteKind::UnknownElement
        )
    }
}

/// One repair made, or oddity met, while reading a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// What kind.
    pub kind: NoteKind,
    /// What happened, for people.
    pub detail: String,
}

impl Note {
    /// A note.
    pub fn new(kind: NoteKind, detail: impl Into<String>) -> Note {
        Note {
            kind,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// An SMTP TLS report (RFC 8460 §4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsReport {
    /// `organization-name`.
    pub organization_name: String,
    /// `contact-info`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact_info: String,
    /// `report-id`.
    pub report_id: String,
    /// `date-range/start-datetime`, seconds since the epoch.
    pub begin: i64,
    /// `date-range/end-datetime`, seconds since the epoch.
    pub end: i64,
    /// `policies`.
    pub policies: Vec<TlsPolicy>,
}

impl TlsReport {
    /// The de-duplication key.
    pub fn key(&self) -> ReportKey {
        ReportKey {
            kind: "tls",
            org: if self.organization_name.is_empty() {
                self.contact_info.to_ascii_lowercase()
            } else {
                self.organization_name.clone()
            },
            report_id: if self.report_id.is_empty() {
                format!("{}-{}", self.begin, self.end)
            } else {
                self.report_id.clone()
            },
            domain: String::new(),
        }
    }
}

/// One policy of a TLS report with its session counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPolicy {
    /// `policy-type`: tlsa, sts, no-policy-found.
    pub policy_type: String,
    /// `policy-domain` (lowercased).
    pub policy_domain: String,
    /// `policy-string`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_string: Vec<String>,
    /// `mx-host`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx_host: Vec<String>,
    /// `summary/total-successful-session-count`.
    pub successful: u64,
    /// `summary/total-failure-session-count`.
    pub failed: u64,
    /// `failure-details`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_details: Vec<TlsFailure>,
    /// Failure details beyond the limit (counted, not kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_details_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One `failure-details` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFailure {
    /// `result-type`, e.g. starttls-not-supported, certificate-expired.
    pub result_type: String,
    /// `sending-mta-ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<String>,
    /// `failed-session-count`.
    pub failed_sessions: u64,
    /// `additional-information`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<String>,
    /// `failure-reason-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason_code: Option<String>,
}
