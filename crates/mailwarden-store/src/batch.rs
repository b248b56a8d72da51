//! [`Batch`]: lines, message records and checkpoints collected in memory and
//! written by one [`Store::commit`](crate::Store::commit).
//!
//! A batch copies what it keeps into two arenas (text and key bytes), so
//! adding a line costs a few appends and no allocation per line. The caller
//! bounds a batch (by [`Batch::len`] or [`Batch::bytes`]) and commits it.
//!
//! ## How a line is encoded
//!
//! The raw line is stored once. The framing's host, program and message are
//! usually slices of it; they are then stored as an integer locating the
//! slice in `raw` (found by comparing pointers, so no search):
//!
//! - `n >= 0`: `raw[n..]` (a suffix: the usual case for the message);
//! - `n < 0`: with `m = -n - 1`, `raw[m >> 16 .. (m >> 16) + (m & 0xffff)]`;
//! - TEXT: the value itself, when the framing rewrote it (a JSON envelope's
//!   unescaped message, a program taken from a hint);
//! - NULL: absent (no host; every framing field of an unframeable line).

use std::ops::Range;

use mailwarden_core::event::{Event, EventKind, Severity, UnparsedReason};
use mailwarden_core::framing::{Framed, Framer};
use mailwarden_core::parse::{FAMILIES, Family, parse_framed, unparsed_event};
use mailwarden_core::stitch::MessageRecord;
use mailwarden_core::time::Timestamp;

use crate::day::day_of;
use crate::keys::{line_keys, message_keys, push_key};

/// A framing field as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// Absent.
    Null,
    /// Located in the raw line (see the module docs).
    Int(i64),
    /// Literal text, a range of the batch's text arena.
    Text(Range<usize>),
}

/// One line, ready to insert.
#[derive(Clone, Debug)]
pub(crate) struct LineRow {
    pub(crate) src: usize,
    pub(crate) day: i64,
    pub(crate) ts: Option<Timestamp>,
    pub(crate) received: Timestamp,
    pub(crate) raw: Range<usize>,
    pub(crate) host: Field,
    pub(crate) prog: Field,
    pub(crate) pid: Option<u32>,
    pub(crate) sev: Option<u8>,
    pub(crate) fam: Option<u8>,
    pub(crate) msg: Field,
    pub(crate) unparsed: Option<u8>,
    /// Range of the batch's key spans.
    pub(crate) keys: Range<usize>,
}

/// One message record, ready to insert.
#[derive(Clone, Debug)]
pub(crate) struct MessageRow {
    /// `None`: no time at all; placed by the commit.
    pub(crate) day: Option<i64>,
    pub(crate) first_ts: Option<i64>,
    pub(crate) last_ts: Option<i64>,
    pub(crate) json: String,
    pub(crate) keys: Range<usize>,
}

/// Lines, message records and collector checkpoints to store together.
///
/// Get one from [`Store::batch`](crate::Store::batch), fill it, and pass it
/// to [`Store::commit`](crate::Store::commit): everything in it is stored, or
/// (on error) nothing. Dropping a batch discards it.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) text: String,
    pub(crate) key_bytes: Vec<u8>,
    pub(crate) key_spans: Vec<Range<usize>>,
    pub(crate) lines: Vec<LineRow>,
    pub(crate) messages: Vec<MessageRow>,
    /// Distinct source names of the batch; rows refer to them by index.
    pub(crate) sources: Vec<String>,
    /// `(source index, checkpoint JSON)`, one per source (the last set wins).
    pub(crate) checkpoints: Vec<(usize, String)>,
    /// A message record that could not be serialised (reported by commit).
    pub(crate) error: Option<String>,
    last_source: usize,
}

/// The numeric code of a severity (its syslog value).
pub(crate) fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Emerg => 0,
        Severity::Alert => 1,
        Severity::Crit => 2,
        Severity::Err => 3,
        Severity::Warning => 4,
        Severity::Notice => 5,
        Severity::Info => 6,
        Severity::Debug => 7,
    }
}

/// The stored code of a family (its index in [`FAMILIES`]).
pub(crate) fn family_code(f: Family) -> u8 {
    FAMILIES.iter().position(|x| *x == f).unwrap_or(0) as u8
}

/// The family of a stored code.
pub(crate) fn family_of_code(c: i64) -> Option<Family> {
    usize::try_from(c).ok().and_then(|i| FAMILIES.get(i)).copied()
}

/// The stored code of an unparsed reason (its index in [`UnparsedReason::ALL`]).
pub(crate) fn reason_code(r: UnparsedReason) -> u8 {
    UnparsedReason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8
}

/// The reason of a stored code.
pub(crate) fn reason_of_code(c: i64) -> Option<UnparsedReason> {
    usize::try_from(c)
        .ok()
        .and_then(|i| UnparsedReason::ALL.get(i))
        .copied()
}

/// Where `part` lies inside `raw`, if it is a slice of it (pointer comparison).
fn offset_in(raw: &str, part: &str) -> Option<usize> {
    let base = raw.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    (p >= base && p + part.len() <= base + raw.len()).then(|| p - base)
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    fn source_index(&mut self, source: &str) -> usize {
        if self.sources.get(self.last_source).is_some_and(|s| s == source) {
            return self.last_source;
        }
        let i = match self.sources.iter().position(|s| s == source) {
            Some(i) => i,
            None => {
                self.sources.push(source.to_owned());
                self.sources.len() - 1
            }
        };
        self.last_source = i;
        i
    }

    fn push_text(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Encodes a framing field that is usually a slice of `raw`.
    fn field(&mut self, raw: &str, part: &str, allow_suffix: bool) -> Field {
        let located = offset_in(raw, part).or_else(|| {
            // Not a borrowed slice (the caller passed a copy of the line):
            // a suffix is still cheap to recognise.
            (allow_suffix && !part.is_empty() && raw.ends_with(part)).then(|| raw.len() - part.len())
        });
        match located {
            Some(start) if allow_suffix && start + part.len() == raw.len() => Field::Int(start as i64),
            Some(start) if part.len() < 0x1_0000 && start < (1 << 40) => {
                Field::Int(-(((start as i64) << 16) | part.len() as i64) - 1)
            }
            _ => Field::Text(self.push_text(part)),
        }
    }

    /// Adds one line: the raw text as read, its framing (`None` when the line
    /// could not be framed) and the event parsed from it.
    ///
    /// `framed` should borrow from `raw` (as [`Framer::frame`] returns it) so
    /// that its fields are stored as positions in the raw line; copies are
    /// stored as text. The line is filed under the UTC day of its event time,
    /// or of `received` when it has none.
    pub fn add_line(
        &mut self,
        source: &str,
        received: Timestamp,
        raw: &str,
        framed: Option<&Framed<'_>>,
        event: &Event<'_>,
    ) {
        let src = self.source_index(source);
        let raw_range = self.push_text(raw);
        let ts = match framed {
            Some(f) => f.ts,
            None => event.ts,
        };
        let (host, prog, pid, sev, fam, msg) = match framed {
            Some(f) => (
                match &f.host {
                    Some(h) => self.field(raw, h, false),
                    None => Field::Null,
                },
                self.field(raw, &f.program, false),
                f.pid,
                f.severity.map(severity_code),
                f.family.map(family_code),
                self.field(raw, &f.message, true),
            ),
            None => (Field::Null, Field::Null, None, None, None, Field::Null),
        };
        let unparsed = match &event.kind {
            EventKind::Unparsed(u) => Some(reason_code(u.reason)),
            _ => None,
        };
        let keys_start = self.key_spans.len();
        let fields = event.index_fields();
        let (bytes, spans) = (&mut self.key_bytes, &mut self.key_spans);
        line_keys(&fields, |tag, v| {
            let start = bytes.len();
            push_key(bytes, tag, v);
            spans.push(start..bytes.len());
        });
        self.lines.push(LineRow {
            src,
            day: day_of(ts.unwrap_or(received)),
            ts,
            received,
            raw: raw_range,
            host,
            prog,
            pid,
            sev,
            fam,
            msg,
            unparsed,
            keys: keys_start..self.key_spans.len(),
        });
    }

    /// Frames and parses `raw` with `framer`, adds it with
    /// [`add_line`](Self::add_line), and hands the event to `f` (for the
    /// stitcher and the live analyses) — the same event `with_event` gives.
    pub fn frame_and_add<R>(
        &mut self,
        framer: &mut Framer,
        source: &str,
        received: Timestamp,
        raw: &str,
        f: impl FnOnce(&Event<'_>) -> R,
    ) -> R {
        match framer.frame(raw) {
            Ok(framed) => {
                let ev = parse_framed(&framed);
                self.add_line(source, received, raw, Some(&framed), &ev);
                f(&ev)
            }
            Err(reason) => {
                let ev = unparsed_event(reason);
                self.add_line(source, received, raw, None, &ev);
                f(&ev)
            }
        }
    }

    /// Adds a finished message record. It is filed under the UTC day of its
    /// `first_seen` (or `last_seen`); a record with neither goes to the newest
    /// day of the batch's lines (or the store's newest day).
    pub fn add_message(&mut self, rec: &MessageRecord) {
        let json = match serde_json::to_string(rec) {
            Ok(j) => j,
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("message {}: {e}", rec.queue_id));
                return;
            }
        };
        let keys_start = self.key_spans.len();
        let (bytes, spans) = (&mut self.key_bytes, &mut self.key_spans);
        message_keys(rec, |tag, v| {
            let start = bytes.len();
            push_key(bytes, tag, v);
            spans.push(start..bytes.len());
        });
        self.messages.push(MessageRow {
            day: rec.first_seen.or(rec.last_seen).map(day_of),
            first_ts: rec.first_seen.map(|t| t.unix_micros),
            last_ts: rec.last_seen.map(|t| t.unix_micros),
            json,
            keys: keys_start..self.key_spans.len(),
        });
    }

    /// Records where `source`'s collector is after the lines of this batch.
    /// It is stored in the same transaction as the batch's newest day, so a
    /// checkpoint is never ahead of the data; the last one set per source wins.
    pub fn set_checkpoint(&mut self, source: &str, checkpoint_json: &str) {
        let src = self.source_index(source);
        match self.checkpoints.iter_mut().find(|(s, _)| *s == src) {
            Some((_, j)) => {
                j.clear();
                j.push_str(checkpoint_json);
            }
            None => self.checkpoints.push((src, checkpoint_json.to_owned())),
        }
    }

    /// Items in the batch: lines, message records and checkpoints.
    pub fn len(&self) -> usize {
        self.lines.len() + self.messages.len() + self.checkpoints.len()
    }

    /// Whether the batch holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines in the batch.
    pub fn lines(&self) -> usize {
        self.lines.len()
    }

    /// Message records in the batch.
    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// Approximate heap bytes the batch holds, to bound it by memory.
    pub fn bytes(&self) -> usize {
        self.text.len()
            + self.key_bytes.len()
            + self.key_spans.len() * std::mem::size_of::<Range<usize>>()
            + self.lines.len() * std::mem::size_of::<LineRow>()
            + self.messages.iter().map(|m| m.json.len()).sum::<usize>()
            + self.messages.len() * std::mem::size_of::<MessageRow>()
    }

    /// The text of an arena range.
    pub(crate) fn text(&self, r: &Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or("")
    }

    /// The key bytes of a row's keys.
    pub(crate) fn keys(&self, r: &Range<usize>) -> impl Iterator<Item = &[u8]> {
        self.key_spans[r.clone()]
            .iter()
            .map(|s| &self.key_bytes[s.clone()])
    }
}

/// Decodes a stored framing field against the raw line. `Ok(None)` for NULL;
/// `Err` when the stored position does not fit the line (damaged data).
pub(crate) fn decode_field<'r>(
    raw: &'r str,
    v: rusqlite::types::ValueRef<'r>,
) -> Result<Option<&'r str>, String> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) if n >= 0 => usize::try_from(n)
            .ok()
            .and_then(|s| raw.get(s..))
            .map(Some)
            .ok_or_else(|| format!("suffix {n} outside the line")),
        ValueRef::Integer(n) => {
            let m = -(n + 1);
            let (start, len) = ((m >> 16) as usize, (m & 0xffff) as usize);
            raw.get(start..start + len)
                .map(Some)
                .ok_or_else(|| format!("range {start}+{len} outside the line"))
        }
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(Some)
            .map_err(|e| format!("text field: {e}")),
        other => Err(format!("unexpected {:?} in a text field", other.data_type())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::ValueRef;
    use std::borrow::Cow;

    fn check(raw: &str, part: &str, suffix: bool) {
        let mut b = Batch::new();
        let f = b.field(raw, part, suffix);
        let got = match &f {
            Field::Int(n) => decode_field(raw, ValueRef::Integer(*n))
                .unwrap()
                .unwrap()
                .to_owned(),
            Field::Text(r) => b.text(r).to_owned(),
            Field::Null => panic!("null"),
        };
        assert_eq!(got, part, "{f:?}");
    }

    #[test]
    fn fields_round_trip() {
        let raw = "2023-03-14T00:00:31+01:00 helga postfix/smtpd[1]: connect from x[1.2.3.4]";
        check(raw, &raw[26..31], false);
        check(raw, &raw[32..45], false);
        check(raw, &raw[50..], true);
        check(raw, &raw[50..], false);
        check(raw, &raw[raw.len()..], true);
        check(raw, "copied", false);
        let copy = raw[50..].to_owned();
        check(raw, &copy, true);
        let cow: Cow<'_, str> = Cow::Owned("unescaped \"x\"".into());
        check(raw, &cow, true);
        assert!(decode_field("abc", ValueRef::Integer(7)).is_err());
        assert!(decode_field("abc", ValueRef::Integer(-(((1 << 16) | 9) + 1))).is_err());
    }

    #[test]
    fn codes_round_trip() {
        for r in UnparsedReason::ALL {
            assert_eq!(reason_of_code(i64::from(reason_code(r))), Some(r));
        }
        for f in FAMILIES {
            assert_eq!(family_of_code(i64::from(family_code(f))), Some(f));
        }
        for c in 0..8u8 {
            let s = Severity::from_code(c).unwrap();
            assert_eq!(severity_code(s), c);
        }
    }
}
