//! Index keys: how searchable values are written into the `keys` (lines) and
//! `mkeys` (messages) tables, and how a [`SearchQuery`] becomes key ranges.
//!
//! One `WITHOUT ROWID` table per kind of row holds `(k, id)` pairs, `k` being
//! a one-byte tag followed by the normalised value. Only present values get an
//! entry, so the table is the union of per-column partial indexes
//! (`WHERE col IS NOT NULL`) and stores each value once, not once in the row
//! and again in an index.
//!
//! Normalisation makes the key range a superset of what the core's matchers
//! accept; every candidate is then confirmed with the core's own matcher, so
//! results are exactly those of a file search:
//!
//! - addresses (sender, recipient) are ASCII-lower-cased and **byte-reversed**:
//!   `bob@Example.org` → `gro.elpmaxe@bob`. A whole-address query is one key;
//!   an `@domain` query is the prefix `niamod@` (the domain after the last
//!   `@` is exactly the reversed text before the first `@`).
//! - client addresses are lower-cased; a query ending in `.` or `:` is a
//!   prefix range (a superset of the case-sensitive `starts_with`).
//! - SASL/login users are lower-cased; queue ids are kept as written;
//!   Message-IDs lose their angle brackets.

use mailwarden_core::event::IndexFields;
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::MessageRecord;

/// Tag of a queue id key.
pub(crate) const TAG_QUEUE_ID: u8 = b'q';
/// Tag of a client address key.
pub(crate) const TAG_CLIENT_IP: u8 = b'i';
/// Tag of an envelope sender key.
pub(crate) const TAG_SENDER: u8 = b's';
/// Tag of a recipient key.
pub(crate) const TAG_RECIPIENT: u8 = b'r';
/// Tag of a login/SASL user key.
pub(crate) const TAG_USER: u8 = b'u';
/// Tag of a Message-ID key.
pub(crate) const TAG_MESSAGE_ID: u8 = b'm';

fn strip_angles(s: &str) -> &str {
    s.trim().trim_start_matches('<').trim_end_matches('>')
}

/// Appends `tag` + the normalised `value` for its kind to `out`.
pub(crate) fn push_key(out: &mut Vec<u8>, tag: u8, value: &str) {
    out.push(tag);
    match tag {
        TAG_SENDER | TAG_RECIPIENT => out.extend(value.bytes().rev().map(|b| b.to_ascii_lowercase())),
        TAG_CLIENT_IP | TAG_USER => out.extend(value.bytes().map(|b| b.to_ascii_lowercase())),
        TAG_MESSAGE_ID => out.extend_from_slice(strip_angles(value).as_bytes()),
        _ => out.extend_from_slice(value.as_bytes()),
    }
}

/// Calls `f(tag, value)` for every indexable field of a line.
pub(crate) fn line_keys(f: &IndexFields<'_>, mut emit: impl FnMut(u8, &str)) {
    if let Some(v) = f.queue_id {
        emit(TAG_QUEUE_ID, v);
    }
    if let Some(v) = f.client_ip {
        emit(TAG_CLIENT_IP, v);
    }
    if let Some(v) = f.sender {
        emit(TAG_SENDER, v);
    }
    if let Some(v) = f.recipient {
        emit(TAG_RECIPIENT, v);
    }
    if let Some(v) = f.user {
        emit(TAG_USER, v);
    }
    if let Some(v) = f.message_id {
        emit(TAG_MESSAGE_ID, v);
    }
}

/// Calls `f(tag, value)` for every value of a message record a query can
/// select it by (duplicates possible; the insert ignores them).
pub(crate) fn message_keys(r: &MessageRecord, mut emit: impl FnMut(u8, &str)) {
    for q in r.all_queue_ids() {
        emit(TAG_QUEUE_ID, q);
    }
    if let Some(n) = &r.notification_queue_id {
        emit(TAG_QUEUE_ID, n);
    }
    if let Some(c) = &r.client {
        emit(TAG_CLIENT_IP, &c.ip);
    }
    if let Some(f) = &r.from {
        emit(TAG_SENDER, f);
    }
    if let Some(h) = &r.header_from
        && r.from.as_deref().is_none_or(|f| !f.eq_ignore_ascii_case(h))
    {
        emit(TAG_SENDER, h);
    }
    for d in &r.deliveries {
        emit(TAG_RECIPIENT, &d.to);
        if let Some(o) = &d.orig_to {
            emit(TAG_RECIPIENT, o);
        }
    }
    if let Some(u) = &r.sasl_username {
        emit(TAG_USER, u);
    }
    if let Some(m) = &r.message_id {
        emit(TAG_MESSAGE_ID, m);
    }
}

/// A set of keys: one exact key, or every key starting with a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `k = key`.
    Exact(Vec<u8>),
    /// `k >= prefix AND k < successor(prefix)` (no upper bound when the
    /// prefix has no successor).
    Prefix(Vec<u8>),
}

impl KeyRange {
    /// The bounds `[lo, hi)` for SQL; `hi` is `None` for "no upper bound".
    pub(crate) fn bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeyRange::Exact(k) => {
                let mut hi = k.clone();
                hi.push(0);
                (k.clone(), Some(hi))
            }
            KeyRange::Prefix(p) => (p.clone(), successor(p)),
        }
    }
}

/// The smallest byte string greater than every string starting with `p`.
fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

fn address_range(tag: u8, pattern: &str) -> KeyRange {
    let p = pattern.trim().trim_start_matches('<').trim_end_matches('>');
    let p = p.strip_prefix('*').unwrap_or(p);
    let mut k = vec![tag];
    match p.strip_prefix('@') {
        Some(dom) => {
            k.extend(dom.bytes().rev().map(|b| b.to_ascii_lowercase()));
            k.push(b'@');
            KeyRange::Prefix(k)
        }
        None => {
            k.extend(p.bytes().rev().map(|b| b.to_ascii_lowercase()));
            KeyRange::Exact(k)
        }
    }
}

fn ip_range(pattern: &str) -> KeyRange {
    let mut k = vec![TAG_CLIENT_IP];
    k.extend(pattern.bytes().map(|b| b.to_ascii_lowercase()));
    if pattern.ends_with('.') || pattern.ends_with(':') {
        KeyRange::Prefix(k)
    } else {
        KeyRange::Exact(k)
    }
}

/// The key ranges a query's indexable criteria select. A row can only match
/// the query if it has a key in every returned range; an empty list means the
/// query has no indexable criterion (scan).
pub(crate) fn query_ranges(q: &SearchQuery, for_messages: bool) -> Vec<KeyRange> {
    let mut out = Vec::new();
    if for_messages {
        if let Some(v) = &q.queue_id {
            let mut k = vec![TAG_QUEUE_ID];
            k.extend_from_slice(v.as_bytes());
            out.push(KeyRange::Exact(k));
        }
        if let Some(v) = &q.message_id {
            let mut k = vec![TAG_MESSAGE_ID];
            k.extend_from_slice(strip_angles(v).as_bytes());
            out.push(KeyRange::Exact(k));
        }
    }
    if let Some(v) = &q.sasl_user {
        let mut k = vec![TAG_USER];
        k.extend(v.bytes().map(|b| b.to_ascii_lowercase()));
        out.push(KeyRange::Exact(k));
    }
    if let Some(v) = &q.sender {
        out.push(address_range(TAG_SENDER, v));
    }
    if let Some(v) = &q.recipient {
        out.push(address_range(TAG_RECIPIENT, v));
    }
    if let Some(v) = &q.client_ip {
        out.push(ip_range(v));
    }
    // Exact keys first: they are the most selective, and SQLite evaluates an
    // INTERSECT from its first arm.
    out.sort_by_key(|r| matches!(r, KeyRange::Prefix(_)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailwarden_core::search::{address_matches, ip_matches};

    fn in_range(r: &KeyRange, k: &[u8]) -> bool {
        let (lo, hi) = r.bounds();
        k >= lo.as_slice() && hi.is_none_or(|h| k < h.as_slice())
    }

    fn key(tag: u8, v: &str) -> Vec<u8> {
        let mut k = Vec::new();
        push_key(&mut k, tag, v);
        k
    }

    #[test]
    fn address_ranges_cover_the_matcher() {
        let addrs = [
            "bob@Example.org",
            "alice@example.org",
            "x@sub.example.org",
            "",
            "a@b@example.org",
            "no-at-sign",
            "Ünï@exämple.org",
        ];
        let pats = [
            "@example.org",
            "*@EXAMPLE.org",
            "<bob@example.org>",
            "<>",
            "",
            "*",
            "@",
            "@b@example.org",
            "ünï@exämple.org",
        ];
        for p in pats {
            let r = address_range(TAG_SENDER, p);
            for a in addrs {
                if address_matches(p, a) {
                    assert!(in_range(&r, &key(TAG_SENDER, a)), "{p:?} {a:?}");
                }
            }
        }
    }

    #[test]
    fn ip_ranges_cover_the_matcher() {
        for p in ["192.0.2.", "192.0.2.1", "2001:DB8:", "2001:db8::1", "2001:DB8::1"] {
            let r = ip_range(p);
            for ip in ["192.0.2.17", "192.0.2.1", "2001:db8::1", "2001:DB8::1"] {
                if ip_matches(p, ip) {
                    assert!(in_range(&r, &key(TAG_CLIENT_IP, ip)), "{p} {ip}");
                }
            }
        }
    }

    #[test]
    fn successor_carries() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(successor(&[0xff]), None);
    }
}
