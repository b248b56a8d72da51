//! The BIMI lookup (`default._bimi.<domain>`).

use mailwarden_core::posture::bimi::{BimiRecord, DmarcEnforcement, check_bimi, is_bimi_record};
use mailwarden_core::posture::{Area, Finding};
use serde::Serialize;

use super::lookup_failed;
use crate::dns::{Answer, DnsClient, LookupError};

/// The BIMI audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct BimiReport {
    /// The BIMI records found.
    pub records: Vec<String>,
    /// The parsed record, when there is exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed: Option<BimiRecord>,
}

/// Looks up the BIMI records of `domain` (checked once DMARC is known, see [`check`]).
pub async fn lookup(dns: &DnsClient, domain: &str) -> Result<Answer<String>, LookupError> {
    dns.txt(&format!("default._bimi.{domain}")).await
}

/// Checks the answer of [`lookup`] against the DMARC policy in force.
pub fn check(
    domain: &str,
    answer: &Result<Answer<String>, LookupError>,
    dmarc: Option<DmarcEnforcement>,
) -> (BimiReport, Vec<Finding>) {
    let records: Vec<String> = match answer {
        Ok(a) => a
            .records()
            .iter()
            .filter(|t| is_bimi_record(t))
            .cloned()
            .collect(),
        Err(e) => {
            let report = BimiReport {
                records: Vec::new(),
                parsed: None,
            };
            return (
                report,
                vec![lookup_failed("bimi.lookup-failed", Area::Bimi, domain, "BIMI", e)],
            );
        }
    };
    let (parsed, findings) = check_bimi(domain, &records, dmarc);
    (BimiReport { records, parsed }, findings)
}
