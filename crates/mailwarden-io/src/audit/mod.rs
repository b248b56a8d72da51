//! The DNS audit of a domain's mail-authentication posture (C4): the
//! lookups behind `mailwarden dns`, turned into
//! [`Finding`]s.

pub mod bimi;
pub mod dkim;
pub mod dmarc;
pub mod dnsbl;
pub mod dnssec;
pub mod domain;
pub mod mta_sts;
pub mod mx;
pub mod spf;
pub mod tlsrpt;

use mailwarden_core::posture::{Area, Finding, Severity};

use crate::dns::LookupError;

/// A lookup that failed (timeout, SERVFAIL): the check it served could not
/// be made. Never read as "no record".
pub(crate) fn lookup_failed(
    id: &'static str,
    area: Area,
    domain: &str,
    what: &str,
    err: &LookupError,
) -> Finding {
    Finding::new(
        id,
        area,
        Severity::Warning,
        domain,
        format!("{what} could not be checked: {err}"),
    )
    .fix("run the audit again; if it keeps failing, check the domain's DNS servers (or give --resolver)")
}
