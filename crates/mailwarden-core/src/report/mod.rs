//! DMARC aggregate reports (RFC 7489 appendix C and RFC 9990) and SMTP TLS
//! reports (RFC 8460): reading them tolerantly, saying what was repaired,
//! and turning many of them into "who sends as our domains".
//!
//! Pure: readers take any [`std::io::Read`] the caller opened (a file, a
//! decompressor, an attachment in memory) and never open anything
//! themselves; the I/O crate finds, sniffs and decompresses the inputs.
//!
//! Pieces, in the order data flows through them:
//!
//! - [`mod@sniff`] tells from the first bytes what an input is (gzip, zip, XML,
//!   JSON, a mail, an mbox).
//! - [`xml`] is a streaming repair pass: whatever bytes come in, what comes
//!   out is well-formed UTF-8 XML without a DOCTYPE — invalid UTF-8 read as
//!   Latin-1, stray `<` and `&` escaped, junk before the root and after its
//!   end dropped, mismatched end tags fixed, a truncated document closed —
//!   and every repair is counted. Entity declarations are refused, so no
//!   entity is ever expanded and no external entity is ever fetched.
//! - [`aggregate`] reads the repaired stream with quick-xml and hands out the
//!   report header, then one [`Record`] at a time, so a report of any size
//!   is read in bounded memory.
//! - [`tls`] reads SMTP TLS reports (JSON) leniently.
//! - [`analysis`] folds headers and records into per-domain figures: the
//!   sources sending as a domain, split into authorized (DMARC pass) and
//!   failing, the time series, the TLS session counts.
//! - [`render`] prints the analysis for people and as CSV.
//!
//! Every limit is in [`ReportLimits`]; a report that breaks one fails with a
//! [`ReportError`] naming the limit and the flag that raises it.

pub mod aggregate;
pub mod analysis;
pub mod model;
pub mod render;
pub mod sniff;
pub mod tls;
pub mod xml;

#[cfg(test)]
mod tests;

pub use aggregate::AggregateReader;
pub use analysis::{Analysis, AnalysisConfig, DmarcAnalysis};
pub use model::{
    DkimAuth, Note, NoteKind, PolicyPublished, PolicyReason, Record, ReportHeader, ReportKey, ReportMetadata,
    Schema, SpfAuth, TlsFailure, TlsPolicy, TlsReport,
};
pub use sniff::{ContentKind, sniff};

/// Bounds applied while reading one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// Most records read from one aggregate report; more fail the report.
    pub max_records: u64,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Longest text kept for one element (bytes); longer text is cut.
    pub max_text: usize,
    /// Most DKIM or SPF results kept per record (more are counted and dropped).
    pub max_auth_results: usize,
    /// Most failure details kept per TLS policy (more are counted and dropped).
    pub max_tls_details: usize,
    /// Most policies kept per TLS report.
    pub max_tls_policies: usize,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_records: 1_000_000,
            max_depth: 32,
            max_text: 16 * 1024,
            max_auth_results: 64,
            max_tls_details: 10_000,
            max_tls_policies: 10_000,
        }
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the underlying stream failed (this includes the expansion
    /// limits enforced by the I/O layer, whose messages say which limit).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No XML element at all.
    #[error("no XML element found{}", if *.skipped > 0 { format!(" ({} bytes of other text)", .skipped) } else { String::new() })]
    NotXml {
        /// Bytes that were not XML.
        skipped: u64,
    },
    /// The root element is not `<feedback>`.
    #[error("not a DMARC aggregate report: the root element is <{root}>, not <feedback>")]
    NotAggregate {
        /// The root element's name.
        root: String,
    },
    /// The document declares entities (XXE / entity-expansion attempts).
    #[error(
        "the XML declares entities (<!ENTITY> at line {line}); DMARC reports never do, so it is refused unread (entity expansion / external entity attack?)"
    )]
    Entities {
        /// Line of the declaration.
        line: u64,
    },
    /// A DOCTYPE too long to be a real one.
    #[error("a <!DOCTYPE> longer than {limit} bytes at line {line}; refused")]
    DoctypeTooLong {
        /// The limit.
        limit: usize,
        /// Line where it starts.
        line: u64,
    },
    /// Elements nested deeper than the limit.
    #[error("elements nested deeper than {limit} levels at line {line}; not a DMARC report")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Line of the element that went too deep.
        line: u64,
    },
    /// More records than allowed.
    #[error("more than {limit} records in one report; raise --max-records to read it")]
    TooManyRecords {
        /// The limit.
        limit: u64,
    },
    /// No `<policy_published>` (so no domain).
    #[error("no <policy_published> in the report: cannot tell which domain it is about")]
    NoPolicy,
    /// quick-xml refused the repaired stream (a bug in the repair pass).
    #[error("XML error near line {line}: {detail}")]
    Xml {
        /// Line near the error.
        line: u64,
        /// quick-xml's message.
        detail: String,
    },
    /// The JSON could not be read.
    #[error("JSON error at line {line}, column {column}: {detail}")]
    Json {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// serde_json's message.
        detail: String,
    },
    /// JSON that is not a TLS report.
    #[error("not an SMTP TLS report: {0}")]
    NotTls(String),
}
