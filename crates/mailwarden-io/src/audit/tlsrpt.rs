//! The TLS-RPT lookup (`_smtp._tls.<domain>`, RFC 8460).

use mailwarden_core::posture::tlsrpt::{TlsRptRecord, check_tlsrpt, is_tlsrpt_record};
use mailwarden_core::posture::{Area, Finding};
use serde::Serialize;

use super::lookup_failed;
use crate::dns::{Answer, DnsClient, LookupError};

/// The TLS-RPT audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct TlsRptReport {
    /// The TLS-RPT records found.
    pub records: Vec<String>,
    /// The parsed record, when there is exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed: Option<TlsRptRecord>,
}

/// Looks up the TLS-RPT records of `domain` (to be checked once MTA-STS is
/// known, see [`check`]).
pub async fn lookup(dns: &DnsClient, domain: &str) -> Result<Answer<String>, LookupError> {
    dns.txt(&format!("_smtp._tls.{domain}")).await
}

/// Checks the answer of [`lookup`]; `mta_sts` says whether the domain
/// publishes an MTA-STS record.
pub fn check(
    domain: &str,
    answer: &Result<Answer<String>, LookupError>,
    mta_sts: bool,
) -> (TlsRptReport, Vec<Finding>) {
    let records: Vec<String> = match answer {
        Ok(a) => a
            .records()
            .iter()
            .filter(|t| is_tlsrpt_record(t))
            .cloned()
            .collect(),
        Err(e) => {
            let report = TlsRptReport {
                records: Vec::new(),
                parsed: None,
            };
            return (
                report,
                vec![lookup_failed(
                    "tls-rpt.lookup-failed",
                    Area::TlsRpt,
                    domain,
                    "TLS-RPT",
                    e,
                )],
            );
        }
    };
    let (parsed, findings) = check_tlsrpt(domain, &records, mta_sts);
    (TlsRptReport { records, parsed }, findings)
}
