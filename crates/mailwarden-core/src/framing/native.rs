//! Native file formats of programs that do not log through syslog: Dovecot's
//! `log_path`, Rspamd's log file, nginx access/error logs, MariaDB's error log.
//! Mailcow's rspamd, nginx and mariadb containers write these to stdout, so
//! they also arrive wrapped in Docker records.

use std::borrow::Cow;

use super::{Format, Framed};
use crate::event::{Severity, UnparsedReason};
use crate::parse::Family;
use crate::time::{
    CivilDateTime, Clock, month_from_abbrev, parse_civil_prefix, parse_rfc3339_prefix, parse_yearless_prefix,
};

fn framed<'a>(
    ts: Option<crate::time::Timestamp>,
    program: &'static str,
    pid: Option<u32>,
    severity: Option<Severity>,
    message: &'a str,
    family: Family,
) -> Framed<'a> {
    Framed {
        ts,
        host: None,
        program: Cow::Borrowed(program),
        pid,
        severity,
        message: Cow::Borrowed(message),
        family: Some(family),
    }
}

/// Which native (or rsyslog) framing a digit-led line is.
pub(super) fn detect_digit_led(b: &[u8]) -> Option<Format> {
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' {
        if b[10] == b'T' {
            return Some(Format::Rfc3339);
        }
        if b[10] == b' ' {
            let head = &b[..b.len().min(80)];
            // Rspamd: `… HH:MM:SS[.fff] [level] #pid(proc)` — a ` #` and a
            // digit soon after the time; MariaDB has no `#` there.
            if let Some(i) = memchr::memmem::find(head, b" #")
                && i <= 40
                && head.get(i + 2).is_some_and(u8::is_ascii_digit)
            {
                return Some(Format::Rspamd);
            }
            return Some(Format::Mariadb);
        }
        return None;
    }
    if b.len() >= 19 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' {
        return Some(Format::Nginx);
    }
    if b.len() >= 6
        && b[2..6].iter().all(u8::is_ascii_digit)
        && b[6] == b' '
        && b[..2].iter().all(u8::is_ascii_digit)
    {
        // MySQL 5.x `YYMMDD HH:MM:SS`.
        return Some(Format::Mariadb);
    }
    looks_like_nginx_access(b).then_some(Format::Nginx)
}

/// `ADDR - USER [dd/Mon/yyyy:HH:MM:SS +zzzz] "…`.
pub(super) fn looks_like_nginx_access(b: &[u8]) -> bool {
    let Some(sp) = b.iter().take(48).position(|&c| c == b' ') else {
        return false;
    };
    let addr = &b[..sp];
    if !addr
        .iter()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':' | b'[' | b']'))
    {
        return false;
    }
    let rest = &b[sp..];
    memchr::memmem::find(&rest[..rest.len().min(128)], b" [").is_some()
        && memchr::memmem::find(rest, b"] \"").is_some()
}

/// `Mmm dd HH:MM:SS process: Level: message`.
pub(super) fn frame_dovecot<'a>(line: &'a str, clock: &mut Clock) -> Result<Framed<'a>, UnparsedReason> {
    let (stamp, n) = parse_yearless_prefix(line.as_bytes()).map_err(|_| UnparsedReason::Framing)?;
    let ts = clock
        .resolve_yearless(stamp)
        .map_err(|_| UnparsedReason::BadTimestamp)?;
    let msg = line[n..].trim_start_matches(' ');
    let severity = msg
        .split_once(": ")
        .and_then(|(_, after)| after.split_once(": "))
        .and_then(|(level, _)| Severity::from_name(level));
    Ok(framed(Some(ts), "dovecot", None, severity, msg, Family::Dovecot))
}

/// `YYYY-MM-DD HH:MM:SS[.fff] #pid(process) message`.
pub(super) fn frame_rspamd<'a>(line: &'a str, clock: &mut Clock) -> Result<Framed<'a>, UnparsedReason> {
    let (civil, n) = parse_civil_prefix(line.as_bytes()).map_err(|_| UnparsedReason::Framing)?;
    let ts = clock
        .resolve_civil(civil)
        .map_err(|_| UnparsedReason::BadTimestamp)?;
    let mut rest = line[n..].trim_start_matches(' ');
    let mut severity = None;
    // With `log_severity = true` the level comes first: `[notice] #pid(proc)`.
    if let Some(r) = rest.strip_prefix('[')
        && let Some((level, after)) = r.split_once("] ")
    {
        severity = Severity::from_name(level);
        rest = after;
    }
    let rest = rest.strip_prefix('#').ok_or(UnparsedReason::Framing)?;
    let open = rest.find('(').ok_or(UnparsedReason::Framing)?;
    let pid = rest[..open].parse().ok();
    let close = rest
        .find(") ")
        .map(|i| i + 2)
        .or_else(|| rest.ends_with(')').then_some(rest.len()))
        .ok_or(UnparsedReason::Framing)?;
    Ok(framed(
        Some(ts),
        "rspamd",
        pid,
        severity,
        &rest[close..],
        Family::Rspamd,
    ))
}

/// MariaDB error log: `YYYY-MM-DD  H:MM:SS message`, `YYYY-MM-DD HH:MM:SS+00:00 message`
/// (the Docker entrypoint) or MySQL 5's `YYMMDD HH:MM:SS message`. The message
/// keeps the thread id and `[Level]` (MariaDB writes the same text to journald).
pub(super) fn frame_mariadb<'a>(line: &'a str, clock: &mut Clock) -> Result<Framed<'a>, UnparsedReason> {
    let b = line.as_bytes();
    let (ts, rest) = if b.len() >= 19 && b[..10].is_ascii() && b[4] == b'-' && b[7] == b'-' {
        let date = &line[..10];
        let after_date = line[10..].trim_start_matches(' ');
        let consumed = line.len() - after_date.len();
        // Normalise a space-padded hour (` 0:00:31`) to two digits.
        let colon = after_date.find(':').ok_or(UnparsedReason::Framing)?;
        let mut buf = [b'0'; 26];
        buf[..10].copy_from_slice(date.as_bytes());
        buf[10] = b' ';
        let hour = &after_date.as_bytes()[..colon];
        if hour.is_empty() || hour.len() > 2 {
            return Err(UnparsedReason::Framing);
        }
        buf[13 - hour.len()..13].copy_from_slice(hour);
        let tail = after_date
            .as_bytes()
            .get(colon..colon + 6)
            .ok_or(UnparsedReason::Framing)?;
        buf[13..19].copy_from_slice(tail);
        let (civil, _) = parse_civil_prefix(&buf[..19]).map_err(|_| UnparsedReason::BadTimestamp)?;
        let mut end = consumed + colon + 6;
        let (civil_micros, frac_end) = fraction(&b[end..]);
        end += frac_end;
        let civil = CivilDateTime {
            micros: civil_micros,
            ..civil
        };
        let ts = if matches!(b.get(end), Some(b'+' | b'-' | b'Z')) {
            // The entrypoint writes `…+00:00`: reparse with the zone.
            let mut s = String::with_capacity(40);
            s.push_str(&line[..10]);
            s.push('T');
            s.push_str(std::str::from_utf8(&buf[11..19]).unwrap_or("00:00:00"));
            let zone_start = end;
            s.push_str(
                line.get(zone_start..(zone_start + 6).min(line.len()))
                    .ok_or(UnparsedReason::BadTimestamp)?,
            );
            match parse_rfc3339_prefix(s.as_bytes()) {
                Ok((t, used)) => {
                    end = zone_start + (used - 19);
                    t
                }
                Err(_) => return Err(UnparsedReason::BadTimestamp),
            }
        } else {
            clock
                .resolve_civil(civil)
                .map_err(|_| UnparsedReason::BadTimestamp)?
        };
        (ts, &line[end..])
    } else if b.len() >= 15 && b[..6].iter().all(u8::is_ascii_digit) && b[6] == b' ' {
        let yy: i32 = line[..2].parse().map_err(|_| UnparsedReason::Framing)?;
        let after = line[7..].trim_start_matches(' ');
        let colon = after.find(':').ok_or(UnparsedReason::Framing)?;
        let hour: u8 = after[..colon].parse().map_err(|_| UnparsedReason::Framing)?;
        let minute: u8 = after
            .get(colon + 1..colon + 3)
            .and_then(|s| s.parse().ok())
            .ok_or(UnparsedReason::Framing)?;
        let second: u8 = after
            .get(colon + 4..colon + 6)
            .and_then(|s| s.parse().ok())
            .ok_or(UnparsedReason::Framing)?;
        let civil = CivilDateTime {
            year: 2000 + yy,
            month: line[2..4].parse().map_err(|_| UnparsedReason::Framing)?,
            day: line[4..6].parse().map_err(|_| UnparsedReason::Framing)?,
            hour,
            minute,
            second,
            micros: 0,
        };
        let ts = clock
            .resolve_civil(civil)
            .map_err(|_| UnparsedReason::BadTimestamp)?;
        (ts, &after[colon + 6..])
    } else {
        return Err(UnparsedReason::Framing);
    };
    let msg = rest.trim_start_matches(' ');
    let severity = ["[Note]", "[Warning]", "[ERROR]", "[Error]", "[System]"]
        .iter()
        .find(|l| msg.get(..60.min(msg.len())).is_some_and(|h| h.contains(*l)))
        .map(|l| match *l {
            "[Warning]" => Severity::Warning,
            "[ERROR]" | "[Error]" => Severity::Err,
            _ => Severity::Info,
        });
    Ok(framed(Some(ts), "mariadbd", None, severity, msg, Family::Mariadb))
}

fn fraction(b: &[u8]) -> (u32, usize) {
    if b.first() != Some(&b'.') {
        return (0, 0);
    }
    let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut micros = 0u32;
    for &d in b[1..1 + n.min(6)].iter() {
        micros = micros * 10 + u32::from(d - b'0');
    }
    micros *= 10u32.pow(6 - n.min(6) as u32);
    (micros, 1 + n)
}

/// nginx access (`ADDR - USER [dd/Mon/yyyy:HH:MM:SS +zzzz] "…`) and error
/// (`YYYY/MM/DD HH:MM:SS [level] pid#tid: …`) lines. Access lines keep the whole
/// line as the message; error lines drop the stamp.
pub(super) fn frame_nginx<'a>(line: &'a str, clock: &mut Clock) -> Result<Framed<'a>, UnparsedReason> {
    let b = line.as_bytes();
    if b.len() >= 19 && b[4] == b'/' && b[7] == b'/' {
        let mut buf = [0u8; 19];
        buf.copy_from_slice(&b[..19]);
        buf[4] = b'-';
        buf[7] = b'-';
        let (civil, _) = parse_civil_prefix(&buf).map_err(|_| UnparsedReason::BadTimestamp)?;
        let ts = clock
            .resolve_civil(civil)
            .map_err(|_| UnparsedReason::BadTimestamp)?;
        let msg = line[19..].trim_start_matches(' ');
        let severity = msg
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(l, _)| Severity::from_name(l));
        return Ok(framed(Some(ts), "nginx", None, severity, msg, Family::Nginx));
    }
    let open = line.find(" [").ok_or(UnparsedReason::Framing)? + 2;
    let close = open + line[open..].find(']').ok_or(UnparsedReason::Framing)?;
    let ts = parse_clf_time(&line[open..close]).ok_or(UnparsedReason::BadTimestamp)?;
    Ok(framed(Some(ts), "nginx", None, None, line, Family::Nginx))
}

/// Common Log Format time: `14/Mar/2023:00:00:31 +0100`.
fn parse_clf_time(s: &str) -> Option<crate::time::Timestamp> {
    let b = s.as_bytes();
    if b.len() < 26 || !b[..26].is_ascii() || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let month = month_from_abbrev(&b[3..6])?;
    let mut iso = String::with_capacity(25);
    iso.push_str(&s[7..11]);
    iso.push('-');
    iso.push_str(&format!("{month:02}"));
    iso.push('-');
    iso.push_str(&s[0..2]);
    iso.push('T');
    iso.push_str(&s[12..20]);
    iso.push_str(&s[21..26]);
    parse_rfc3339_prefix(iso.as_bytes()).ok().map(|(t, _)| t)
}
