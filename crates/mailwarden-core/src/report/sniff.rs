//! What an input is, from its first bytes (never from its name).

use serde::Serialize;

/// Bytes [`sniff`] wants to see (fewer are fine at the end of input).
pub const SNIFF_BYTES: usize = 4096;

/// The kinds of content a report can come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// gzip (`1f 8b`).
    Gzip,
    /// zip (`PK\3\4`, or `PK\5\6` for an empty archive).
    Zip,
    /// XML (possibly with junk or a BOM before it, or UTF-16).
    Xml,
    /// JSON (an object).
    Json,
    /// One mail (RFC 5322 header fields first).
    Mail,
    /// An mbox file (starts with a `From ` line).
    Mbox,
    /// Anything else.
    Unknown,
}

impl ContentKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ContentKind::Gzip => "gzip",
            ContentKind::Zip => "zip",
            ContentKind::Xml => "XML",
            ContentKind::Json => "JSON",
            ContentKind::Mail => "mail",
            ContentKind::Mbox => "mbox",
            ContentKind::Unknown => "unknown",
        }
    }
}

/// Tells what `head` (the first up to [`SNIFF_BYTES`] of an input) is.
pub fn sniff(head: &[u8]) -> ContentKind {
    if head.starts_with(&[0x1f, 0x8b]) {
        return ContentKind::Gzip;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return ContentKind::Zip;
    }
    if head.starts_with(b"\xFF\xFE")
        || head.starts_with(b"\xFE\xFF")
        || head.starts_with(b"<\0")
        || head.starts_with(b"\0<")
    {
        return ContentKind::Xml;
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let trimmed = body.trim_ascii_start();
    if body.starts_with(b"From ") {
        return ContentKind::Mbox;
    }
    match trimmed.first() {
        Some(b'<') => return ContentKind::Xml,
        Some(b'{') => return ContentKind::Json,
        _ => {}
    }
    if looks_like_mail(body) {
        return ContentKind::Mail;
    }
    // Junk before the document.
    let xml = memchr::memmem::find(head, b"<?xml").or_else(|| memchr::memmem::find(head, b"<feedback"));
    let json = memchr::memmem::find(head, b"{\"").or_else(|| memchr::memmem::find(head, b"{ \""));
    match (xml, json) {
        (Some(x), Some(j)) => {
            if x < j {
                ContentKind::Xml
            } else {
                ContentKind::Json
            }
        }
        (Some(_), None) => ContentKind::Xml,
        (None, Some(j))
            if memchr::memmem::find(&head[j..], b"\"organization-name\"").is_some()
                || memchr::memmem::find(&head[j..], b"\"policies\"").is_some() =>
        {
            ContentKind::Json
        }
        _ => ContentKind::Unknown,
    }
}

/// Whether the first two lines are RFC 5322 header fields (or a field and
/// its continuation).
fn looks_like_mail(head: &[u8]) -> bool {
    let mut lines = head.split(|&b| b == b'\n');
    let Some(first) = lines.next() else {
        return false;
    };
    if !is_field(first) {
        return false;
    }
    match lines.next() {
        Some(second) => {
            let second = second.strip_suffix(b"\r").unwrap_or(second);
            is_field(second) || second.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        }
        None => false,
    }
}

fn is_field(line: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    colon > 0
        && colon <= 76
        && line[..colon]
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b':')
}
