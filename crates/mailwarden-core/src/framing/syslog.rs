//! Syslog framings: RFC 3164 (BSD), RFC 5424, and rsyslog's RFC 3339 file format.

use std::borrow::Cow;

use super::{Format, Framed, split_tag};
use crate::event::{Severity, UnparsedReason};
use crate::time::{
    Clock, StampCache, TimeError, parse_rfc3339_prefix, parse_rfc3339_prefix_cached, parse_yearless_prefix,
};

/// Strips an optional `<PRI>` and returns the severity it carries.
fn strip_pri(line: &str) -> (Option<Severity>, &str) {
    let b = line.as_bytes();
    if b.first() != Some(&b'<') {
        return (None, line);
    }
    let Some(close) = b.iter().take(5).position(|&c| c == b'>') else {
        return (None, line);
    };
    match line[1..close].parse::<u8>() {
        Ok(pri) if pri <= 191 => (Severity::from_code(pri & 7), &line[close + 1..]),
        _ => (None, line),
    }
}

fn time_err(e: TimeError) -> UnparsedReason {
    match e {
        TimeError::Layout => UnparsedReason::Framing,
        TimeError::Range | TimeError::Zone => UnparsedReason::BadTimestamp,
    }
}

/// Splits `host tag[pid]: msg`.
fn host_and_tag(rest: &str) -> Result<(&str, &str, Option<u32>, &str), UnparsedReason> {
    let rest = rest.trim_start_matches(' ');
    let sp = rest
        .bytes()
        .position(|b| b == b' ')
        .ok_or(UnparsedReason::Framing)?;
    let host = &rest[..sp];
    let (tag, pid, msg) = split_tag(&rest[sp + 1..]);
    Ok((host, tag, pid, msg))
}

/// Which year-less framing a `Mmm dd HH:MM:SS …` line is: Dovecot's own file
/// format has `process: Level: ` right after the stamp and no host.
pub(super) fn detect_yearless_kind(b: &[u8]) -> Format {
    let Ok(s) = std::str::from_utf8(&b[..b.len().min(160)]) else {
        return Format::Rfc3164;
    };
    let Ok((_, n)) = parse_yearless_prefix(s.as_bytes()) else {
        return Format::Rfc3164;
    };
    let rest = s[n..].trim_start_matches(' ');
    if let Some(colon) = rest.find(": ") {
        let after = &rest[colon + 2..];
        let first_token_has_space = rest[..colon].contains(' ');
        if !first_token_has_space
            && ["Info: ", "Warning: ", "Error: ", "Fatal: ", "Panic: ", "Debug: "]
                .iter()
                .any(|l| after.starts_with(l))
        {
            return Format::Dovecot;
        }
    }
    Format::Rfc3164
}

/// `[<PRI>]Mmm dd HH:MM:SS host tag[pid]: msg`.
pub(super) fn frame_rfc3164<'a>(line: &'a str, clock: &mut Clock) -> Result<Framed<'a>, UnparsedReason> {
    let (severity, rest) = strip_pri(line);
    let (stamp, n) = parse_yearless_prefix(rest.as_bytes()).map_err(time_err)?;
    let ts = clock.resolve_yearless(stamp).map_err(time_err)?;
    let after = &rest[n..];
    if !after.starts_with(' ') {
        return Err(UnparsedReason::Framing);
    }
    // Some senders omit the host: `Mmm dd HH:MM:SS tag[pid]: msg` (a first
    // token ending in `:` is a tag — host names never do) and SOGo's own
    // `Mmm dd HH:MM:SS sogod [pid]: msg`.
    let trimmed = after.trim_start_matches(' ');
    let first = trimmed.split(' ').next().unwrap_or("");
    let sogo_style = trimmed.split_once(' ').is_some_and(|(_, next)| {
        next.starts_with('[') && next.split(' ').next().is_some_and(|t| t.ends_with("]:"))
    });
    let (host, tag, pid, msg) = if first.ends_with(':') || sogo_style {
        let (tag, pid, msg) = split_tag(trimmed);
        (None, tag, pid, msg)
    } else {
        let (h, t, p, m) = host_and_tag(after)?;
        (Some(h), t, p, m)
    };
    Ok(Framed {
        ts: Some(ts),
        host: host.map(Cow::Borrowed),
        program: Cow::Borrowed(tag),
        pid,
        severity,
        message: Cow::Borrowed(msg),
        family: None,
    })
}

/// `[<PRI>]YYYY-MM-DDTHH:MM:SS[.frac]±hh:mm host tag[pid]: msg` (rsyslog's
/// `RSYSLOG_FileFormat` and `RSYSLOG_ForwardFormat`).
pub(super) fn frame_rfc3339<'a>(line: &'a str, cache: &mut StampCache) -> Result<Framed<'a>, UnparsedReason> {
    let (severity, rest) = strip_pri(line);
    let (ts, n) = parse_rfc3339_prefix_cached(rest.as_bytes(), cache).map_err(time_err)?;
    let after = &rest[n..];
    if !after.starts_with(' ') {
        return Err(UnparsedReason::Framing);
    }
    let (host, tag, pid, msg) = host_and_tag(after)?;
    Ok(Framed {
        ts: Some(ts),
        host: Some(Cow::Borrowed(host)),
        program: Cow::Borrowed(tag),
        pid,
        severity,
        message: Cow::Borrowed(msg),
        family: None,
    })
}

/// Takes one space-delimited RFC 5424 header field; `-` is nil.
fn field(s: &str) -> Result<(Option<&str>, &str), UnparsedReason> {
    let (f, rest) = s.split_once(' ').unwrap_or((s, ""));
    if f.is_empty() {
        return Err(UnparsedReason::Framing);
    }
    Ok(((f != "-").then_some(f), rest))
}

/// Skips RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"…]…`, honouring `\"`,
/// `\\` and `\]` escapes). Returns the rest after it.
fn skip_structured_data(s: &str) -> Result<&str, UnparsedReason> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest);
    }
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(UnparsedReason::Framing),
                Some(b'\\') if in_quotes => i += 2,
                Some(b'"') => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                Some(b']') if !in_quotes => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    if i == 0 {
        return Err(UnparsedReason::Framing);
    }
    Ok(&s[i..])
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.
pub(super) fn frame_rfc5424(line: &str) -> Result<Framed<'_>, UnparsedReason> {
    let (severity, rest) = strip_pri(line);
    let rest = rest.strip_prefix("1 ").ok_or(UnparsedReason::Framing)?;
    let (ts, rest) = if let Some(r) = rest.strip_prefix("- ") {
        (None, r)
    } else {
        let (ts, n) = parse_rfc3339_prefix(rest.as_bytes()).map_err(time_err)?;
        (
            Some(ts),
            rest[n..].strip_prefix(' ').ok_or(UnparsedReason::Framing)?,
        )
    };
    let (host, rest) = field(rest)?;
    let (app, rest) = field(rest)?;
    let (procid, rest) = field(rest)?;
    let (_msgid, rest) = field(rest)?;
    let rest = skip_structured_data(rest)?;
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Ok(Framed {
        ts,
        host: host.map(Cow::Borrowed),
        program: Cow::Borrowed(app.unwrap_or("")),
        pid: procid.and_then(|p| p.parse().ok()),
        severity,
        message: Cow::Borrowed(msg),
        family: None,
    })
}
