//! The DNS audit of a domain's mail-authentication posture (C4): the
//! lookups behind `mailwarden dns`, turned into
//! [`Finding`](mailwarden_core::posture::Finding)s.

pub mod dnsbl;
pub mod mta_sts;
pub mod mx;
