//! nginx access and error lines, and the php-fpm lines of Mailcow's PHP
//! container (the admin UI, the JSON API, autodiscover and the SOGo auth hook
//! run there behind nginx).
//!
//! For security monitoring the web front is where scanners and credential
//! stuffers show up first: requests for `/.env`, TLS bytes sent to the plain
//! port (`"\x16\x03\x01…"`), bursts of `401`s on `/Microsoft-Server-ActiveSync`
//! or `/SOGo/dav`, and failed admin-UI logins, which Mailcow's PHP code logs as
//! `mailcow UI: Invalid password for USER by IP` through php-fpm or nginx's
//! `FastCGI sent in stderr` (typed as [`NginxEvent::UiLoginFailed`]).
//!
//! Access lines arrive whole (the framing keeps them as the message). Mailcow's
//! nginx writes `combined` (`access_log` without a format name in the site
//! includes) or its `main` format, which adds `"$http_x_forwarded_for"`; any
//! further fields are kept as `tail`. Error lines arrive without their
//! `YYYY/MM/DD HH:MM:SS` stamp (a stamp that is still there is skipped).
//! php-fpm writes `[14-Mar-2023 00:00:31] NOTICE: …` and, with Mailcow's
//! `access.log = /proc/self/fd/2`, access lines `IP - USER dd/Mon/yyyy:HH:MM:SS
//! +zzzz "GET /index.php" 200`.

use serde::Serialize;

/// nginx error-log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NginxLevel {
    /// `[debug]`.
    Debug,
    /// `[info]`.
    Info,
    /// `[notice]`.
    Notice,
    /// `[warn]`.
    Warn,
    /// `[error]`.
    Error,
    /// `[crit]`.
    Crit,
    /// `[alert]`.
    Alert,
    /// `[emerg]`.
    Emerg,
}

impl NginxLevel {
    fn from_name(s: &str) -> Option<NginxLevel> {
        Some(match s {
            "debug" => NginxLevel::Debug,
            "info" => NginxLevel::Info,
            "notice" => NginxLevel::Notice,
            "warn" => NginxLevel::Warn,
            "error" => NginxLevel::Error,
            "crit" => NginxLevel::Crit,
            "alert" => NginxLevel::Alert,
            "emerg" => NginxLevel::Emerg,
            _ => return None,
        })
    }
}

/// php-fpm log level (`NOTICE:`, `WARNING:` …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FpmLevel {
    /// `DEBUG`.
    Debug,
    /// `NOTICE`.
    Notice,
    /// `WARNING`.
    Warning,
    /// `ERROR`.
    Error,
    /// `ALERT`.
    Alert,
}

impl FpmLevel {
    fn from_name(s: &str) -> Option<FpmLevel> {
        Some(match s {
            "DEBUG" => FpmLevel::Debug,
            "NOTICE" => FpmLevel::Notice,
            "WARNING" => FpmLevel::Warning,
            "ERROR" => FpmLevel::Error,
            "ALERT" => FpmLevel::Alert,
            _ => return None,
        })
    }
}

/// A parsed nginx or php-fpm message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NginxEvent<'a> {
    /// An access line (`combined`, optionally followed by
    /// `"$http_x_forwarded_for"` and further fields).
    Access {
        /// `$remote_addr`.
        client: &'a str,
        /// `$remote_user` (HTTP basic-auth user); `None` for `-`.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The request method, when the request line is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        /// The request target, when the request line is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a str>,
        /// `HTTP/1.1`, `HTTP/2.0`, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol: Option<&'a str>,
        /// The request line as logged (nginx escapes binary as `\xHH`).
        request: &'a str,
        /// The response status.
        status: u16,
        /// `$body_bytes_sent`.
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// `$http_referer`; `None` for `-`.
        #[serde(skip_serializing_if = "Option::is_none")]
        referer: Option<&'a str>,
        /// `$http_user_agent`; `None` for `-`.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_agent: Option<&'a str>,
        /// `$http_x_forwarded_for` (Mailcow's `main` format); `None` for `-`.
        #[serde(skip_serializing_if = "Option::is_none")]
        forwarded_for: Option<&'a str>,
        /// Whatever a custom format adds after these fields.
        #[serde(skip_serializing_if = "Option::is_none")]
        tail: Option<&'a str>,
    },
    /// An error-log line: `[error] 12#12: *1 open() "/web/x" failed (2: No such
    /// file or directory), client: 1.2.3.4, server: …, request: "…", host: "…"`.
    Error {
        /// The level.
        level: NginxLevel,
        /// The worker's process id (JSON `worker_pid`, apart from the framing's `pid`).
        #[serde(rename = "worker_pid", skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The worker's thread id (JSON `worker_tid`).
        #[serde(rename = "worker_tid", skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        /// The connection number (`*1`).
        #[serde(skip_serializing_if = "Option::is_none")]
        connection: Option<u64>,
        /// The message, without the trailing context fields.
        text: &'a str,
        /// `client: …`.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<&'a str>,
        /// `server: …`.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
        /// `request: "…"`.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<&'a str>,
        /// `upstream: "…"`.
        #[serde(skip_serializing_if = "Option::is_none")]
        upstream: Option<&'a str>,
        /// `host: "…"`, the Host header (JSON `http_host`, apart from the
        /// framing's `host`).
        #[serde(rename = "http_host", skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        /// `referrer: "…"`.
        #[serde(skip_serializing_if = "Option::is_none")]
        referrer: Option<&'a str>,
    },
    /// A failed login to Mailcow's admin/user UI or API (`mailcow UI: Invalid
    /// password for USER by IP`) or to the Rspamd UI (`Rspamd UI: Invalid
    /// password by IP`), found in php-fpm worker output or in nginx's
    /// `FastCGI sent in stderr`. Mailcow's netfilter bans on the same text.
    UiLoginFailed {
        /// `mailcow UI` or `Rspamd UI`.
        app: &'a str,
        /// The user name tried (not logged for the Rspamd UI).
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The client address.
        client: &'a str,
    },
    /// A php-fpm master log line: `NOTICE: fpm is running, pid 1`,
    /// `WARNING: [pool www] server reached pm.max_children setting (5), …`.
    Fpm {
        /// The level.
        level: FpmLevel,
        /// `[pool NAME]`, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
        /// `child N`, when the line is about one worker.
        #[serde(skip_serializing_if = "Option::is_none")]
        child: Option<u32>,
        /// The text after the pool.
        text: &'a str,
    },
    /// `WARNING: [pool www] child 12 said into stderr: "…"`: output of a PHP
    /// worker (PHP warnings and `error_log()` calls).
    FpmWorkerOutput {
        /// The level.
        level: FpmLevel,
        /// The pool.
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
        /// The worker's process id.
        child: u32,
        /// `stderr` or `stdout`.
        stream: &'a str,
        /// The quoted output.
        output: &'a str,
    },
    /// A php-fpm access line: `172.22.1.10 - admin 05/Mar/2018:11:55:09 +0000
    /// "GET /status.php" 200`.
    FpmAccess {
        /// `%R`, the remote address.
        client: &'a str,
        /// `%u`, the authenticated user; `None` when empty or `-`.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The method, when the request is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        /// The script path, when the request is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a str>,
        /// The request as logged.
        request: &'a str,
        /// The response status.
        status: u16,
    },
}

/// Parses an nginx or php-fpm message; `None` when its shape is unknown.
pub fn parse<'a>(program: &'a str, message: &'a str) -> Option<NginxEvent<'a>> {
    let msg = message.trim_end_matches(['\r', '\n']);
    if program.starts_with("php") {
        fpm(msg).or_else(|| error(msg)).or_else(|| access(msg))
    } else {
        error(msg).or_else(|| access(msg)).or_else(|| fpm(msg))
    }
}

// ---------------------------------------------------------------------------
// Small helpers.

fn dash_none(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "-").then_some(s)
}

fn digits_len(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// The leading digits of `s`, parsed, and the rest.
fn number<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let n = digits_len(s);
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// A `"…"` value starting at `s[0]`, ending at a `"` that is followed by a
/// space or the end of the line (nginx escapes `"` inside values as `\x22`, so
/// the first such quote is normally the closing one). Returns the value and
/// the rest after the closing quote.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('"')?;
    let bytes = inner.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'"', &bytes[from..]) {
        let at = from + i;
        if matches!(bytes.get(at + 1), None | Some(b' ')) {
            return Some((&inner[..at], &inner[at + 1..]));
        }
        from = at + 1;
    }
    None
}

/// Splits a request line into method, target and protocol when it has the
/// shape `METHOD target [HTTP/x]`.
fn split_request(req: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let mut parts = req.split(' ');
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return (None, None, None);
    };
    let protocol = parts.next();
    let method_ok = !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
    let proto_ok = protocol.is_none_or(|p| p.starts_with("HTTP/"));
    if !method_ok || path.is_empty() || !proto_ok || parts.next().is_some() {
        return (None, None, None);
    }
    (Some(method), Some(path), protocol)
}

/// A `dd/Mon/yyyy:HH:MM:SS` time (as in CLF) at the start of `s`.
fn clf_time_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let ok = b.len() >= 20
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b'/'
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'/'
        && b[7..11].iter().all(u8::is_ascii_digit)
        && b[11] == b':'
        && b[12..14].iter().all(u8::is_ascii_digit)
        && b[14] == b':'
        && b[15..17].iter().all(u8::is_ascii_digit)
        && b[17] == b':'
        && b[18..20].iter().all(u8::is_ascii_digit);
    ok.then_some(20)
}

// ---------------------------------------------------------------------------
// Access lines.

fn access(msg: &str) -> Option<NginxEvent<'_>> {
    let (client, rest) = msg.split_once(' ')?;
    if client.is_empty() || client.contains(['"', '[']) {
        return None;
    }
    let rest = rest.strip_prefix("- ")?;
    let open = rest.find(" [")?;
    let user = dash_none(&rest[..open]);
    let rest = &rest[open + 2..];
    let close = rest.find(']')?;
    clf_time_len(&rest[..close])?;
    let rest = rest[close + 1..].strip_prefix(' ')?;
    let (request, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (status, rest) = number::<u16>(rest)?;
    let (bytes, mut rest) = match rest.strip_prefix(' ') {
        Some(r) if r.starts_with('-') => (None, &r[1..]),
        Some(r) => match number::<u64>(r) {
            Some((n, r)) => (Some(n), r),
            None => (None, rest),
        },
        None => (None, rest),
    };
    let mut quoted_fields = [None; 3];
    for slot in &mut quoted_fields {
        let Some(r) = rest.strip_prefix(' ').filter(|r| r.starts_with('"')) else {
            break;
        };
        let Some((v, after)) = quoted(r) else { break };
        *slot = Some(v);
        rest = after;
    }
    let [referer, user_agent, forwarded_for] = quoted_fields;
    let tail = rest.trim();
    let (method, path, protocol) = split_request(request);
    Some(NginxEvent::Access {
        client,
        user,
        method,
        path,
        protocol,
        request,
        status,
        bytes,
        referer: referer.and_then(dash_none),
        user_agent: user_agent.and_then(dash_none),
        forwarded_for: forwarded_for.and_then(dash_none),
        tail: (!tail.is_empty()).then_some(tail),
    })
}

// ---------------------------------------------------------------------------
// Error lines.

/// Context keys nginx appends to error lines, in the order it writes them
/// (http: client, server, request, subrequest, upstream, host, referrer; mail:
/// client, server, login, upstream).
const CONTEXT_KEYS: &[&str] = &[
    "client",
    "server",
    "login",
    "request",
    "subrequest",
    "upstream",
    "host",
    "referrer",
];

/// Parsed `, client: …, server: …` context.
#[derive(Default)]
struct Context<'a> {
    client: Option<&'a str>,
    server: Option<&'a str>,
    request: Option<&'a str>,
    upstream: Option<&'a str>,
    host: Option<&'a str>,
    referrer: Option<&'a str>,
}

/// Whether `s` starts with `, KEY: ` for a context key that may follow the key
/// at index `after` (keys come in a fixed order, each at most once).
fn at_next_key(s: &str, after: usize) -> bool {
    let Some(r) = s.strip_prefix(", ") else {
        return false;
    };
    CONTEXT_KEYS[after + 1..]
        .iter()
        .any(|k| r.strip_prefix(k).is_some_and(|r| r.starts_with(": ")))
}

/// The value of the context key at index `idx`, starting at `s[0]`: a quoted
/// value ends at the quote followed by the next key or the end, a bare one at
/// the next key or the end. Returns the value and the rest.
fn context_value(s: &str, idx: usize) -> Option<(&str, &str)> {
    if let Some(inner) = s.strip_prefix('"') {
        let bytes = inner.as_bytes();
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'"', &bytes[from..]) {
            let at = from + i;
            let after = &inner[at + 1..];
            if after.is_empty() || at_next_key(after, idx) {
                return Some((&inner[..at], after));
            }
            from = at + 1;
        }
        return None;
    }
    // Bare values (addresses, names) have no spaces or quotes.
    let end = s.find([' ', '"']).unwrap_or(s.len());
    let end = s[..end].find(',').unwrap_or(end);
    let (value, rest) = s.split_at(end);
    (!value.is_empty() && (rest.is_empty() || at_next_key(rest, idx))).then_some((value, rest))
}

/// Parses `client: X, server: Y, request: "…", …` making up all of `s`.
fn context(s: &str) -> Option<Context<'_>> {
    let mut ctx = Context::default();
    let mut rest = s;
    let mut last: Option<usize> = None;
    loop {
        let (key, r) = rest.split_once(": ")?;
        let idx = CONTEXT_KEYS.iter().position(|k| *k == key)?;
        if last.is_some_and(|l| idx <= l) {
            return None;
        }
        last = Some(idx);
        let (value, r) = context_value(r, idx)?;
        match key {
            "client" => ctx.client = Some(value),
            "server" => ctx.server = Some(value),
            "request" => ctx.request = Some(value),
            "upstream" => ctx.upstream = Some(value),
            "host" => ctx.host = Some(value),
            "referrer" => ctx.referrer = Some(value),
            _ => {}
        }
        if r.is_empty() {
            break;
        }
        rest = r.strip_prefix(", ")?;
    }
    ctx.client.is_some().then_some(ctx)
}

/// Splits the message text from its trailing context: the first `, client: `
/// after which the rest parses as context (at most a few candidates are tried).
fn split_context(s: &str) -> (&str, Context<'_>) {
    let mut from = 0;
    for _ in 0..8 {
        let Some(i) = s[from..].find(", client: ") else {
            break;
        };
        let at = from + i;
        if let Some(ctx) = context(&s[at + 2..]) {
            return (&s[..at], ctx);
        }
        from = at + 2;
    }
    (s, Context::default())
}

/// Skips a `YYYY/MM/DD HH:MM:SS ` stamp left in the message.
fn strip_error_stamp(s: &str) -> &str {
    let b = s.as_bytes();
    let stamp = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' ';
    if stamp { &s[20..] } else { s }
}

fn error(msg: &str) -> Option<NginxEvent<'_>> {
    let s = strip_error_stamp(msg);
    let s = s.strip_prefix("nginx: ").unwrap_or(s);
    let inner = s.strip_prefix('[')?;
    let (lvl, rest) = inner.split_once("] ")?;
    let level = NginxLevel::from_name(lvl)?;
    let (pid, tid, rest) = match pid_tid(rest) {
        Some((p, t, r)) => (Some(p), Some(t), r),
        None => (None, None, rest),
    };
    let (connection, rest) = match rest.strip_prefix('*').and_then(number::<u64>) {
        Some((c, r)) => (Some(c), r.strip_prefix(' ').unwrap_or(r)),
        None => (None, rest),
    };
    let (text, ctx) = split_context(rest);
    if let Some(ev) = ui_login_failed(text) {
        return Some(ev);
    }
    Some(NginxEvent::Error {
        level,
        pid,
        tid,
        connection,
        text,
        client: ctx.client,
        server: ctx.server,
        request: ctx.request,
        upstream: ctx.upstream,
        host: ctx.host,
        referrer: ctx.referrer,
    })
}

/// `12#12: ` at the start of `s`.
fn pid_tid(s: &str) -> Option<(u32, u32, &str)> {
    let (pid, r) = number::<u32>(s)?;
    let (tid, r) = number::<u32>(r.strip_prefix('#')?)?;
    Some((pid, tid, r.strip_prefix(": ")?))
}

// ---------------------------------------------------------------------------
// Mailcow / Rspamd UI login failures inside PHP output.

fn ui_login_failed(text: &str) -> Option<NginxEvent<'_>> {
    const MAILCOW: &str = "mailcow UI: Invalid password for ";
    const RSPAMD: &str = "Rspamd UI: Invalid password by ";
    if let Some(i) = text.find(MAILCOW) {
        let r = &text[i + MAILCOW.len()..];
        let r = &r[..r.find('"').unwrap_or(r.len())];
        let (user, client) = r.rsplit_once(" by ")?;
        let client = client.split([' ', '\\']).next()?;
        return (!client.is_empty()).then_some(NginxEvent::UiLoginFailed {
            app: &text[i..i + "mailcow UI".len()],
            user: Some(user),
            client,
        });
    }
    if let Some(i) = text.find(RSPAMD) {
        let r = &text[i + RSPAMD.len()..];
        let client = r.split(['"', ' ', '\\']).next()?;
        return (!client.is_empty()).then_some(NginxEvent::UiLoginFailed {
            app: &text[i..i + "Rspamd UI".len()],
            user: None,
            client,
        });
    }
    None
}

// ---------------------------------------------------------------------------
// php-fpm.

fn fpm(msg: &str) -> Option<NginxEvent<'_>> {
    fpm_log(msg).or_else(|| fpm_access(msg))
}

/// `[14-Mar-2023 00:00:31] ` at the start of `s` (the default
/// `log_time_format`, optionally with fractions).
fn strip_fpm_stamp(s: &str) -> &str {
    let Some(inner) = s.strip_prefix('[') else {
        return s;
    };
    let b = inner.as_bytes();
    let stamp = b.len() >= 20
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b'-'
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'-'
        && b[7..11].iter().all(u8::is_ascii_digit)
        && b[11] == b' '
        && b[14] == b':'
        && b[17] == b':';
    if !stamp {
        return s;
    }
    match inner.find("] ") {
        Some(close) if close <= 32 => &inner[close + 2..],
        _ => s,
    }
}

fn fpm_log(msg: &str) -> Option<NginxEvent<'_>> {
    let s = strip_fpm_stamp(msg);
    let (level, rest) = match s.split_once(": ") {
        Some((l, r)) => match FpmLevel::from_name(l) {
            Some(level) => (Some(level), r),
            None => (None, s),
        },
        None => (None, s),
    };
    let (pool, rest) = match rest.strip_prefix("[pool ").and_then(|r| r.split_once("] ")) {
        Some((p, r)) => (Some(p), r),
        None => (None, rest),
    };
    // Without a level, only a `[pool …]` line (syslog form) is php-fpm's.
    let level = match (level, pool) {
        (Some(l), _) => l,
        (None, Some(_)) => FpmLevel::Notice,
        (None, None) => return None,
    };
    if let Some(ev) = ui_login_failed(rest) {
        return Some(ev);
    }
    let child = rest.strip_prefix("child ").and_then(number::<u32>);
    if let Some((child, r)) = child
        && let Some(r) = r.strip_prefix(" said into ")
        && let Some((stream, out)) = r.split_once(": ")
    {
        let output = out.strip_prefix('"').map_or(out, |o| {
            o.strip_suffix('"')
                .or_else(|| o.rfind('"').map(|i| &o[..i]))
                .unwrap_or(o)
        });
        return Some(NginxEvent::FpmWorkerOutput {
            level,
            pool,
            child,
            stream,
            output,
        });
    }
    Some(NginxEvent::Fpm {
        level,
        pool,
        child: child.map(|(c, _)| c),
        text: rest,
    })
}

/// `%R - %u %t "%m %r" %s` with the default `%t` (`dd/Mon/yyyy:HH:MM:SS +zzzz`).
fn fpm_access(msg: &str) -> Option<NginxEvent<'_>> {
    let (client, rest) = msg.split_once(' ')?;
    if client.is_empty() || client.contains(['"', '[']) {
        return None;
    }
    let rest = rest.strip_prefix("- ")?;
    let sp = rest.find(' ')?;
    // An empty %u leaves two spaces: the user is then empty.
    let (user, rest) = if clf_time_len(rest).is_some() {
        (None, rest)
    } else {
        (dash_none(&rest[..sp]), &rest[sp + 1..])
    };
    let n = clf_time_len(rest)?;
    let rest = rest[n..].strip_prefix(' ')?;
    let zone_end = rest.find(' ')?;
    let zone = &rest[..zone_end];
    if !zone.starts_with(['+', '-']) {
        return None;
    }
    let (request, rest) = quoted(&rest[zone_end + 1..])?;
    let (status, rest) = number::<u16>(rest.strip_prefix(' ')?)?;
    if !rest.trim().is_empty() {
        return None;
    }
    let (method, path, _) = split_request(request);
    Some(NginxEvent::FpmAccess {
        client,
        user,
        method,
        path,
        request,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::json;

    /// Sample lines. Sources: mailcow-dockerized issues #4534, #6331 and #5478
    /// (nginx-mailcow access and error lines), #704 and mailcow #791 (FastCGI
    /// stderr), #1141 and #6331 (php-fpm-mailcow), PR #6281 (Rspamd UI), the
    /// nginx.conf.j2 `main` log_format, and common scanner probes.
    const SAMPLES: &[&str] = &[
        "172.22.1.1 - - [14/Mar/2023:00:00:31 +0100] \"GET /SOGo/ HTTP/2.0\" 200 1234 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        "192.0.2.7 - - [06/Apr/2022:22:08:57 +0200] \"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03\" 400 157 \"-\" \"-\" \"-\"",
        "[error] 12#12: *1 open() \"/web/x\" failed (2: No such file or directory), client: 1.2.3.4, server: mail.example.org, request: \"GET /x HTTP/1.1\", host: \"mail.example.org\"",
        "[error] 11#11: *358 FastCGI sent in stderr: \"PHP message: mailcow UI: Invalid password for ryan@example.eu by 82.32.1.35\" while reading response header from upstream, client: 82.32.1.35, server: mail.example.be, request: \"POST /autodiscover/autodiscover.xml HTTP/1.0\", upstream: \"fastcgi://172.22.1.7:9000\", host: \"autodiscover.example.eu\"",
        "[14-Mar-2023 00:00:31] NOTICE: fpm is running, pid 1",
        "[25-Feb-2025 17:03:10] WARNING: [pool web-worker] child 55 said into stderr: \"NOTICE: PHP message: mailcow UI: Invalid password for admin by 203.0.113.9\"",
        "172.22.1.10 - admin 05/Mar/2018:11:55:09 +0000 \"GET /status.php\" 200",
        "fd4d:6169:6c63:6f77::d -  05/Mar/2018:11:54:54 +0000 \"HEAD /forwardinghosts.php\" 200",
    ];

    #[test]
    fn access_lines() {
        // combined, as the site includes log it (mailcow #4534).
        check(
            parse,
            "nginx",
            SAMPLES[0],
            json!({"event": "access", "client": "172.22.1.1", "method": "GET", "path": "/SOGo/",
                   "protocol": "HTTP/2.0", "request": "GET /SOGo/ HTTP/2.0", "status": 200,
                   "bytes": 1234, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}),
        );
        // main format with X-Forwarded-For, basic-auth user (mailcow #704).
        check(
            parse,
            "nginx",
            "82.32.1.35 - ryan@example.eu [31/Oct/2017:00:09:13 +0000] \"POST /autodiscover/autodiscover.xml HTTP/1.0\" 401 0 \"-\" \"Android-Mail/7.9.24.172525262.release\" \"198.51.100.4, 10.0.0.1\"",
            json!({"event": "access", "client": "82.32.1.35", "user": "ryan@example.eu",
                   "method": "POST", "path": "/autodiscover/autodiscover.xml", "protocol": "HTTP/1.0",
                   "request": "POST /autodiscover/autodiscover.xml HTTP/1.0", "status": 401, "bytes": 0,
                   "user_agent": "Android-Mail/7.9.24.172525262.release",
                   "forwarded_for": "198.51.100.4, 10.0.0.1"}),
        );
        // A TLS ClientHello on the plain port: method/path stay empty, the raw request is kept.
        check(
            parse,
            "nginx",
            SAMPLES[1],
            json!({"event": "access", "client": "192.0.2.7",
                   "request": "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03",
                   "status": 400, "bytes": 157}),
        );
        // An empty request ("-" in older nginx, "" in newer) and a 408.
        check(
            parse,
            "nginx",
            "192.0.2.8 - - [14/Mar/2023:00:00:31 +0000] \"-\" 408 0 \"-\" \"-\"",
            json!({"event": "access", "client": "192.0.2.8", "request": "-", "status": 408, "bytes": 0}),
        );
        check(
            parse,
            "nginx",
            "192.0.2.8 - - [14/Mar/2023:00:00:31 +0000] \"\" 400 0 \"-\" \"-\"",
            json!({"event": "access", "client": "192.0.2.8", "request": "", "status": 400, "bytes": 0}),
        );
        // IPv6 client, scanner path, common format (no referer / agent), extra custom field.
        check(
            parse,
            "nginx",
            "2001:db8::5 - - [14/Mar/2023:00:00:31 +0100] \"GET /.env HTTP/1.1\" 404 153",
            json!({"event": "access", "client": "2001:db8::5", "method": "GET", "path": "/.env",
                   "protocol": "HTTP/1.1", "request": "GET /.env HTTP/1.1", "status": 404, "bytes": 153}),
        );
        check(
            parse,
            "nginx",
            "198.51.100.2 - - [14/Mar/2023:00:00:31 +0100] \"GET /SOGo/dav HTTP/1.1\" 401 0 \"-\" \"DAVx5/4.3\" \"-\" rt=0.004",
            json!({"event": "access", "client": "198.51.100.2", "method": "GET", "path": "/SOGo/dav",
                   "protocol": "HTTP/1.1", "request": "GET /SOGo/dav HTTP/1.1", "status": 401, "bytes": 0,
                   "user_agent": "DAVx5/4.3", "tail": "rt=0.004"}),
        );
    }

    #[test]
    fn error_lines() {
        check(
            parse,
            "nginx",
            SAMPLES[2],
            json!({"event": "error", "level": "error", "worker_pid": 12, "worker_tid": 12, "connection": 1,
                   "text": "open() \"/web/x\" failed (2: No such file or directory)",
                   "client": "1.2.3.4", "server": "mail.example.org", "request": "GET /x HTTP/1.1",
                   "http_host": "mail.example.org"}),
        );
        // mailcow #5478: upstream (php-fpm) down; the stamp left in the message is skipped.
        check(
            parse,
            "nginx",
            "2023/10/17 14:17:37 [error] 25#25: *18 connect() failed (111: Connection refused) while connecting to upstream, client: 172.22.1.12, server: mail.example.de, request: \"GET / HTTP/1.1\", upstream: \"fastcgi://[fd4d:6169:6c63:6f77::9]:9002\", host: \"nginx\"",
            json!({"event": "error", "level": "error", "worker_pid": 25, "worker_tid": 25, "connection": 18,
                   "text": "connect() failed (111: Connection refused) while connecting to upstream",
                   "client": "172.22.1.12", "server": "mail.example.de", "request": "GET / HTTP/1.1",
                   "upstream": "fastcgi://[fd4d:6169:6c63:6f77::9]:9002", "http_host": "nginx"}),
        );
        // TLS handshake noise from scanners (stream-like context, no request).
        check(
            parse,
            "nginx",
            "[crit] 35#35: *123 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: 198.51.100.9, server: 0.0.0.0:443",
            json!({"event": "error", "level": "crit", "worker_pid": 35, "worker_tid": 35, "connection": 123,
                   "text": "SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking",
                   "client": "198.51.100.9", "server": "0.0.0.0:443"}),
        );
        // A request line containing a quote and a fake context: the real context wins.
        check(
            parse,
            "nginx",
            "[error] 7#7: *9 open() \"/web/a, client: 6.6.6.6\" failed (2: No such file or directory), client: 1.2.3.4, server: mail.example.org, request: \"GET /a\", client: 6.6.6.6 HTTP/1.1\", host: \"mail.example.org\", referrer: \"https://evil.example/\"",
            json!({"event": "error", "level": "error", "worker_pid": 7, "worker_tid": 7, "connection": 9,
                   "text": "open() \"/web/a, client: 6.6.6.6\" failed (2: No such file or directory)",
                   "client": "1.2.3.4", "server": "mail.example.org",
                   "request": "GET /a\", client: 6.6.6.6 HTTP/1.1", "http_host": "mail.example.org",
                   "referrer": "https://evil.example/"}),
        );
        // Worker lifecycle and startup errors without connection or context.
        check(
            parse,
            "nginx",
            "[notice] 1#1: start worker process 35",
            json!({"event": "error", "level": "notice", "worker_pid": 1, "worker_tid": 1,
                   "text": "start worker process 35"}),
        );
        check(
            parse,
            "nginx",
            "nginx: [emerg] host not found in upstream \"phpfpm:9002\" in /etc/nginx/includes/site-defaults.conf:96",
            json!({"event": "error", "level": "emerg",
                   "text": "host not found in upstream \"phpfpm:9002\" in /etc/nginx/includes/site-defaults.conf:96"}),
        );
    }

    #[test]
    fn ui_login_failures() {
        // mailcow #704: nginx's FastCGI stderr.
        check(
            parse,
            "nginx",
            SAMPLES[3],
            json!({"event": "ui_login_failed", "app": "mailcow UI", "user": "ryan@example.eu",
                   "client": "82.32.1.35"}),
        );
        // mailcow #6331: php-fpm worker output.
        check(
            parse,
            "php-fpm",
            SAMPLES[5],
            json!({"event": "ui_login_failed", "app": "mailcow UI", "user": "admin", "client": "203.0.113.9"}),
        );
        // mailcow PR #6281: Rspamd UI.
        check(
            parse,
            "php-fpm",
            "[28-Jan-2025 20:29:06] WARNING: [pool web-worker] child 68 said into stderr: \"NOTICE: PHP message: Rspamd UI: Invalid password by 198.51.100.23\"",
            json!({"event": "ui_login_failed", "app": "Rspamd UI", "client": "198.51.100.23"}),
        );
        // A user name containing " by " keeps the last one as the address.
        check(
            parse,
            "php-fpm",
            "[25-Feb-2025 17:03:10] WARNING: [pool web-worker] child 55 said into stderr: \"NOTICE: PHP message: mailcow UI: Invalid password for a by b by 2001:db8::1\"",
            json!({"event": "ui_login_failed", "app": "mailcow UI", "user": "a by b", "client": "2001:db8::1"}),
        );
    }

    #[test]
    fn fpm_lines() {
        // mailcow #1141.
        check(
            parse,
            "php-fpm",
            SAMPLES[4],
            json!({"event": "fpm", "level": "notice", "text": "fpm is running, pid 1"}),
        );
        check(
            parse,
            "php-fpm",
            "[05-Mar-2018 11:54:41] NOTICE: ready to handle connections",
            json!({"event": "fpm", "level": "notice", "text": "ready to handle connections"}),
        );
        // mailcow #931.
        check(
            parse,
            "php-fpm",
            "[18-Jan-2018 10:00:00] WARNING: [pool www] server reached pm.max_children setting (10), consider raising it",
            json!({"event": "fpm", "level": "warning", "pool": "www",
                   "text": "server reached pm.max_children setting (10), consider raising it"}),
        );
        check(
            parse,
            "php-fpm",
            "[14-Mar-2023 00:00:31] NOTICE: [pool system-worker] child 25 exited with code 0 after 0.001 seconds from start",
            json!({"event": "fpm", "level": "notice", "pool": "system-worker", "child": 25,
                   "text": "child 25 exited with code 0 after 0.001 seconds from start"}),
        );
        check(
            parse,
            "php-fpm",
            "[14-Mar-2023 00:00:31] WARNING: [pool web-worker] child 12 said into stderr: \"NOTICE: PHP message: PHP Warning:  Undefined array key \"x\" in /web/inc/functions.inc.php on line 42\"",
            json!({"event": "fpm_worker_output", "level": "warning", "pool": "web-worker", "child": 12,
                   "stream": "stderr",
                   "output": "NOTICE: PHP message: PHP Warning:  Undefined array key \"x\" in /web/inc/functions.inc.php on line 42"}),
        );
        // Access lines (mailcow #1141): with user, and with an empty user.
        check(
            parse,
            "php-fpm",
            SAMPLES[6],
            json!({"event": "fpm_access", "client": "172.22.1.10", "user": "admin", "method": "GET",
                   "path": "/status.php", "request": "GET /status.php", "status": 200}),
        );
        check(
            parse,
            "php-fpm",
            SAMPLES[7],
            json!({"event": "fpm_access", "client": "fd4d:6169:6c63:6f77::d", "method": "HEAD",
                   "path": "/forwardinghosts.php", "request": "HEAD /forwardinghosts.php", "status": 200}),
        );
    }

    #[test]
    fn unknown_shapes() {
        for (program, msg) in [
            ("nginx", ""),
            ("nginx", "Waiting for PHP on port 9002..."),
            (
                "nginx",
                "/docker-entrypoint.sh: Configuration complete; ready for start up",
            ),
            ("nginx", "[bogus] 1#1: x"),
            ("nginx", "1.2.3.4 - - [not a date] \"GET / HTTP/1.1\" 200 1"),
            (
                "nginx",
                "1.2.3.4 - - [14/Mar/2023:00:00:31 +0100] \"GET / HTTP/1.1\" abc",
            ),
            (
                "nginx",
                "1.2.3.4 - - [14/Mar/2023:00:00:31 +0100] \"GET / HTTP/1.1",
            ),
            ("php-fpm", "mysqld is alive"),
            ("php-fpm", "[14-Mar-2023 00:00:31] something without a level"),
            // Found by proptest: a multi-byte char inside the time must not be sliced.
            (
                "php-fpm",
                "172.22.1.10 - admin 05/Mar/2018:11:55:\u{800}9 +0000 \"GET /status.php\" 200",
            ),
            (
                "nginx",
                "1.2.3.4 - - [14/Mar/2023:00:00:\u{800}1 +0100] \"GET / HTTP/1.1\" 200 1",
            ),
        ] {
            assert_eq!(parse(program, msg), None, "{msg:?}");
        }
    }

    #[test]
    fn through_event_kind() {
        let ev = parse("nginx", SAMPLES[2]).unwrap();
        let v = serde_json::to_value(crate::event::EventKind::Nginx(ev)).unwrap();
        assert_eq!(v["kind"], "nginx");
        assert_eq!(v["worker_pid"], 12);
        assert_eq!(v["http_host"], "mail.example.org");
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse("nginx", &s);
            let _ = parse("php-fpm", &s);
        }

        #[test]
        fn never_panics_on_mutations(i in 0..SAMPLES.len(), cut in 0usize..400, at in 0usize..400, c in any::<char>()) {
            for m in test_support::mutations(SAMPLES[i], cut, at, c) {
                let _ = parse("nginx", &m);
                let _ = parse("php-fpm", &m);
            }
        }
    }
}
