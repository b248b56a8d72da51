//! JSON framings: Docker json-file, journald export, Mailcow Redis lists.
//!
//! One envelope struct reads all three; which one a line is follows from the
//! fields present (`log` → Docker, `MESSAGE` → journald, `message` → Mailcow).
//! Strings are borrowed from the line unless they contain escapes.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Format, Framed, Framer};
use crate::event::{Severity, UnparsedReason};
use crate::time::{Timestamp, parse_rfc3339_prefix};

/// A JSON value we accept where a string is expected: journald writes
/// non-UTF-8 messages as byte arrays, Mailcow writes `time` as a string in some
/// lists and as an integer in others.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Loose<'a> {
    Str(#[serde(borrow)] Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Other(IgnoredAny),
}

impl<'a> Loose<'a> {
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Loose::Str(s) => Some(s),
            Loose::Int(i) => Some(Cow::Owned(i.to_string())),
            Loose::Float(f) => Some(Cow::Owned(f.to_string())),
            Loose::Bytes(b) => Some(Cow::Owned(String::from_utf8_lossy(&b).into_owned())),
            Loose::Other(_) => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Loose::Str(s) => s.trim().parse().ok(),
            Loose::Int(i) => Some(*i),
            Loose::Float(f) => Some(*f as i64),
            _ => None,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
struct Envelope<'a> {
    // Docker json-file
    #[serde(borrow)]
    log: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Loose<'a>>,
    // Mailcow
    #[serde(borrow)]
    message: Option<Loose<'a>>,
    #[serde(borrow)]
    program: Option<Cow<'a, str>>,
    #[serde(borrow)]
    priority: Option<Loose<'a>>,
    // journald
    #[serde(rename = "MESSAGE", borrow)]
    journal_message: Option<Loose<'a>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
    realtime: Option<Loose<'a>>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow)]
    identifier: Option<Cow<'a, str>>,
    #[serde(rename = "_COMM", borrow)]
    comm: Option<Cow<'a, str>>,
    #[serde(rename = "SYSLOG_PID", borrow)]
    syslog_pid: Option<Loose<'a>>,
    #[serde(rename = "_PID", borrow)]
    pid: Option<Loose<'a>>,
    #[serde(rename = "_HOSTNAME", borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(rename = "PRIORITY", borrow)]
    journal_priority: Option<Loose<'a>>,
    #[serde(rename = "CONTAINER_NAME", borrow)]
    container_name: Option<Cow<'a, str>>,
}

/// Which JSON framing a `{…}` line is, from the keys it contains. Looks only at
/// the raw bytes (a key search), not a full parse.
pub(super) fn detect_json(b: &[u8]) -> Option<Format> {
    let has = |k: &[u8]| memchr::memmem::find(b, k).is_some();
    if has(b"\"log\"") {
        Some(Format::Docker)
    } else if has(b"\"MESSAGE\"") || has(b"\"__REALTIME_TIMESTAMP\"") {
        Some(Format::Journald)
    } else if has(b"\"message\"") {
        Some(Format::Mailcow)
    } else {
        None
    }
}

fn strip_line_end(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_end_matches(['\n', '\r'])),
        Cow::Owned(mut o) => {
            while o.ends_with(['\n', '\r']) {
                o.pop();
            }
            Cow::Owned(o)
        }
    }
}

pub(super) fn frame_json<'a>(
    line: &'a str,
    format: Format,
    framer: &mut Framer,
) -> Result<Framed<'a>, UnparsedReason> {
    let env: Envelope<'a> = serde_json::from_str(line).map_err(|_| UnparsedReason::Framing)?;
    match format {
        Format::Docker => {
            let log = env.log.ok_or(UnparsedReason::NoMessage)?;
            let ts = match env.time {
                Some(Loose::Str(t)) => Some(
                    parse_rfc3339_prefix(t.as_bytes())
                        .map_err(|_| UnparsedReason::BadTimestamp)?
                        .0,
                ),
                _ => None,
            };
            let ts = ts.map(|t| framer.localize(t));
            Ok(framer.frame_inner(strip_line_end(log), ts))
        }
        Format::Journald => {
            let msg = env
                .journal_message
                .and_then(Loose::into_text)
                .ok_or(UnparsedReason::NoMessage)?;
            let ts = env
                .realtime
                .as_ref()
                .and_then(Loose::as_i64)
                .map(|us| framer.localize(Timestamp::from_unix_micros(us)));
            let severity = env
                .journal_priority
                .as_ref()
                .and_then(Loose::as_i64)
                .and_then(|p| Severity::from_code(p as u8));
            let program = env.identifier.or(env.comm);
            match program {
                Some(program) => Ok(Framed {
                    ts,
                    host: env.hostname,
                    program,
                    pid: env
                        .syslog_pid
                        .as_ref()
                        .or(env.pid.as_ref())
                        .and_then(Loose::as_i64)
                        .and_then(|p| u32::try_from(p).ok()),
                    severity,
                    message: strip_line_end(msg),
                    family: None,
                }),
                None => {
                    // A container's stdout through Docker's journald driver.
                    let mut f = framer.frame_inner(strip_line_end(msg), ts);
                    if f.host.is_none() {
                        f.host = env.hostname;
                    }
                    if f.program.is_empty()
                        && let Some(c) = env.container_name
                    {
                        f.program = c;
                    }
                    Ok(f)
                }
            }
        }
        Format::Mailcow => {
            let msg = env
                .message
                .and_then(Loose::into_text)
                .ok_or(UnparsedReason::NoMessage)?;
            let ts = match env.time.as_ref() {
                Some(t) => {
                    let secs = t.as_i64().ok_or(UnparsedReason::BadTimestamp)?;
                    Some(framer.localize(Timestamp::from_unix_seconds(secs)))
                }
                None => None,
            };
            let severity = env
                .priority
                .and_then(Loose::into_text)
                .and_then(|p| Severity::from_name(&p));
            let (program, pid) = match env.program {
                // syslog-ng's $PROGRAM has no pid, but be lenient with `tag[pid]`.
                Some(Cow::Borrowed(p)) => match p.split_once('[') {
                    Some((tag, rest)) => (Cow::Borrowed(tag), rest.trim_end_matches(']').parse().ok()),
                    None => (Cow::Borrowed(p), None),
                },
                Some(Cow::Owned(p)) => (Cow::Owned(p), None),
                None => (Cow::Borrowed(""), None),
            };
            Ok(Framed {
                ts,
                host: None,
                program,
                pid,
                severity,
                message: strip_line_end(msg),
                family: None,
            })
        }
        _ => Err(UnparsedReason::Framing),
    }
}
