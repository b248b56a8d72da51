//! Framings: how a log line wraps the message a program wrote.
//!
//! One mail log line may be a BSD syslog line (RFC 3164, year-less), an RFC 5424
//! line, rsyslog's file format (RFC 3339 stamp, host, tag), a Docker json-file
//! record, a journald JSON export, a Mailcow Redis list entry, or the native file
//! format of Dovecot, Rspamd, nginx or MariaDB. A [`Framer`] unwraps each line
//! into a [`Framed`] record (time, host, program, pid, severity, message) that
//! the parsers read without caring where the line came from.
//!
//! Auto-detection decides per line (cheaply, from the first bytes) so that mixed
//! inputs work; a forced [`Format`] skips detection. Framings that wrap another
//! line (Docker, journald from a container) unwrap recursively once.

mod json;
mod native;
mod syslog;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::event::{Severity, UnparsedReason};
use crate::parse::Family;
use crate::time::{Clock, StampCache, TimeContext, Timestamp};

/// A line with its framing removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Framed<'a> {
    /// When the line was logged.
    pub ts: Option<Timestamp>,
    /// The host that logged it.
    pub host: Option<Cow<'a, str>>,
    /// The program (syslog tag without pid); empty when the framing has none.
    pub program: Cow<'a, str>,
    /// Process id.
    pub pid: Option<u32>,
    /// Severity, when the framing carries one.
    pub severity: Option<Severity>,
    /// The message the program wrote.
    pub message: Cow<'a, str>,
    /// The family a native framing implies (overrides dispatch by program).
    pub family: Option<Family>,
}

/// The framings mailwarden reads. `Auto` detects per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Detect per line.
    Auto,
    /// BSD syslog, `[<PRI>]Mmm dd HH:MM:SS host tag[pid]: msg`.
    Rfc3164,
    /// RFC 5424, `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
    /// rsyslog's file format: `RFC3339-TIMESTAMP host tag[pid]: msg`.
    Rfc3339,
    /// Docker's json-file driver: `{"log":…,"stream":…,"time":…}`.
    Docker,
    /// `journalctl -o json`.
    Journald,
    /// Mailcow's Redis log lists: `{"time","priority","program","message"}`.
    Mailcow,
    /// Dovecot's own `log_path` file: `Mmm dd HH:MM:SS process: Level: msg`.
    Dovecot,
    /// Rspamd's own log file: `YYYY-MM-DD HH:MM:SS #pid(proc) msg`.
    Rspamd,
    /// nginx access (combined) and error logs.
    Nginx,
    /// MariaDB's error log: `YYYY-MM-DD HH:MM:SS thread [Level] msg`.
    Mariadb,
    /// No framing at all: every line is a message of the hinted program.
    Raw,
}

impl Format {
    /// Every format with its command-line name and a description, for `--help`.
    pub const ALL: [(Format, &'static str, &'static str); 12] = [
        (Format::Auto, "auto", "detect per line (default)"),
        (
            Format::Rfc3164,
            "rfc3164",
            "BSD syslog with year-less stamps (/var/log/mail.log)",
        ),
        (Format::Rfc5424, "rfc5424", "RFC 5424 syslog"),
        (
            Format::Rfc3339,
            "rfc3339",
            "rsyslog file format with RFC 3339 stamps",
        ),
        (Format::Docker, "docker", "Docker json-file container logs"),
        (Format::Journald, "journald", "journalctl -o json"),
        (Format::Mailcow, "mailcow", "Mailcow Redis log-list JSON"),
        (Format::Dovecot, "dovecot", "Dovecot's own log_path file"),
        (Format::Rspamd, "rspamd", "Rspamd's own log file"),
        (Format::Nginx, "nginx", "nginx access/error log"),
        (Format::Mariadb, "mariadb", "MariaDB error log"),
        (Format::Raw, "raw", "bare messages; needs --program"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Format::ALL
            .iter()
            .find(|(f, _, _)| *f == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("auto")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(s))
            .map(|(f, _, _)| *f)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|(_, n, _)| *n).collect();
                format!("unknown format {s:?}; expected one of: {}", names.join(", "))
            })
    }
}

/// How to frame one input.
#[derive(Clone, Debug)]
pub struct FramerConfig {
    /// Forced framing, or `Auto`.
    pub format: Format,
    /// Program to assume when the framing carries none (raw lines, bare Docker
    /// output, Mailcow lists without a program field such as NETFILTER_LOG).
    pub program_hint: Option<String>,
    /// Reference time and zone for year-less and zone-less stamps.
    pub time: TimeContext,
}

/// Unwraps the lines of one input. Holds per-input state (the year tracker).
#[derive(Debug)]
pub struct Framer {
    format: Format,
    program_hint: Option<String>,
    clock: Clock,
    stamps: StampCache,
}

impl Framer {
    /// A framer for one input.
    pub fn new(cfg: FramerConfig) -> Framer {
        Framer {
            format: cfg.format,
            program_hint: cfg.program_hint,
            clock: Clock::new(cfg.time),
            stamps: StampCache::default(),
        }
    }

    /// Unwraps one line (without its line terminator).
    pub fn frame<'a>(&mut self, line: &'a str) -> Result<Framed<'a>, UnparsedReason> {
        if line.trim().is_empty() {
            return Err(UnparsedReason::Empty);
        }
        let format = match self.format {
            Format::Auto => detect(line.as_bytes()),
            f => Some(f),
        };
        let framed = format
            .ok_or(UnparsedReason::Framing)
            .and_then(|f| self.frame_as(f, line));
        // A line that frames is kept whatever bytes its message holds (they are
        // escaped on output); one that does not is called binary if it has NULs.
        let mut framed = framed.map_err(|e| {
            if memchr::memchr(0, line.as_bytes()).is_some() {
                UnparsedReason::Binary
            } else {
                e
            }
        })?;
        if framed.program.is_empty()
            && let Some(hint) = &self.program_hint
        {
            framed.program = Cow::Owned(hint.clone());
        }
        Ok(framed)
    }

    fn frame_as<'a>(&mut self, format: Format, line: &'a str) -> Result<Framed<'a>, UnparsedReason> {
        match format {
            Format::Auto => self.frame(line),
            Format::Rfc3164 => syslog::frame_rfc3164(line, &mut self.clock),
            Format::Rfc5424 => syslog::frame_rfc5424(line),
            Format::Rfc3339 => syslog::frame_rfc3339(line, &mut self.stamps),
            Format::Docker | Format::Journald | Format::Mailcow => json::frame_json(line, format, self),
            Format::Dovecot => native::frame_dovecot(line, &mut self.clock),
            Format::Rspamd => native::frame_rspamd(line, &mut self.clock),
            Format::Nginx => native::frame_nginx(line, &mut self.clock),
            Format::Mariadb => native::frame_mariadb(line, &mut self.clock),
            Format::Raw => Ok(Framed {
                ts: None,
                host: None,
                program: Cow::Borrowed(""),
                pid: None,
                severity: None,
                message: Cow::Borrowed(line),
                family: None,
            }),
        }
    }

    /// Frames the payload of a wrapper (Docker `log`, a container's journald
    /// `MESSAGE`): a syslog or native line if it is one, else a bare message.
    /// The wrapper's own timestamp wins: it has a year and a zone.
    fn frame_inner<'a>(&mut self, inner: Cow<'a, str>, ts: Option<Timestamp>) -> Framed<'a> {
        let detected = detect(inner.as_bytes())
            .filter(|f| !matches!(f, Format::Docker | Format::Journald | Format::Mailcow));
        if let Some(format) = detected {
            let attempt = match &inner {
                Cow::Borrowed(s) => self.frame_as(format, s).ok(),
                Cow::Owned(s) => self.frame_as(format, s).ok().map(into_owned),
            };
            if let Some(mut f) = attempt {
                if ts.is_some() {
                    f.ts = ts;
                }
                return f;
            }
        }
        Framed {
            ts,
            host: None,
            program: Cow::Borrowed(""),
            pid: None,
            severity: None,
            message: inner,
            family: None,
        }
    }

    /// Gives an instant from a zone-carrying source the offset of the
    /// configured zone, so reports show local time.
    fn localize(&mut self, ts: Timestamp) -> Timestamp {
        self.clock.localize(ts)
    }
}

fn into_owned(f: Framed<'_>) -> Framed<'static> {
    Framed {
        ts: f.ts,
        host: f.host.map(|h| Cow::Owned(h.into_owned())),
        program: Cow::Owned(f.program.into_owned()),
        pid: f.pid,
        severity: f.severity,
        message: Cow::Owned(f.message.into_owned()),
        family: f.family,
    }
}

/// Guesses the framing of one line from its first bytes. Cheap: no full parse.
pub fn detect(b: &[u8]) -> Option<Format> {
    let first = *b.first()?;
    match first {
        b'{' => json::detect_json(b),
        b'<' => {
            // <PRI>1 … is RFC 5424; <PRI> then a stamp is RFC 3164 (or 3339 with PRI).
            let close = b.iter().take(5).position(|&c| c == b'>')?;
            let rest = &b[close + 1..];
            if rest.starts_with(b"1 ") {
                Some(Format::Rfc5424)
            } else if rest.first().is_some_and(u8::is_ascii_digit) {
                Some(Format::Rfc3339)
            } else {
                Some(Format::Rfc3164)
            }
        }
        b'0'..=b'9' => native::detect_digit_led(b),
        b'A'..=b'Z' | b'a'..=b'z' => {
            if crate::time::month_from_abbrev(b.get(..3)?).is_some() && b.get(3) == Some(&b' ') {
                Some(syslog::detect_yearless_kind(b))
            } else if b.iter().take(48).any(|&c| c == b'[') && native::looks_like_nginx_access(b) {
                Some(Format::Nginx)
            } else {
                None
            }
        }
        b'[' | b':' => native::looks_like_nginx_access(b).then_some(Format::Nginx),
        _ => None,
    }
}

/// Splits `tag[pid]: message` (or `tag: message`, or `tag [pid]: message` as
/// SOGo writes it). Returns `(tag, pid, message)`. Without a colon the whole
/// text is the message of an unnamed program.
pub(crate) fn split_tag(s: &str) -> (&str, Option<u32>, &str) {
    let b = s.as_bytes();
    let end = b
        .iter()
        .position(|&c| matches!(c, b'[' | b':' | b' '))
        .unwrap_or(b.len());
    let tag = &s[..end];
    let mut rest = &s[end..];
    let mut pid = None;
    let bracket = rest.strip_prefix('[').or_else(|| rest.strip_prefix(" ["));
    if let Some(after) = bracket
        && let Some(close) = after.bytes().position(|b| b == b']')
    {
        pid = after[..close].parse().ok();
        rest = &after[close + 1..];
    }
    match rest.strip_prefix(':') {
        Some(msg) if !tag.is_empty() => (tag, pid, msg.strip_prefix(' ').unwrap_or(msg)),
        _ => ("", None, s),
    }
}

#[cfg(test)]
mod tests;
