//! SOGo (`sogod`) messages: web logins, DAV/ActiveSync basic-auth failures,
//! TOTP checks, SOGo's own access lines and its generic SOPE log lines.
//!
//! SOGo is Mailcow's webmail, calendar and contacts server, reachable from the
//! internet with the same credentials as IMAP and SMTP. Its login lines are
//! therefore a password-guessing signal of their own (Mailcow's netfilter bans
//! on `SOGo.+ Login from '…' for user .+ might not have worked`), a successful
//! login from an unusual address is worth reporting, and an *invalid TOTP key*
//! after an accepted password means the password is known to someone.
//!
//! The message is the text after `sogod [pid]: ` (SOPE writes the tag with a
//! space before the pid; the framing handles it). SOPE's logger prefixes
//! warnings and errors with `[WARN] `, `[ERROR] `, `[FATAL] `, and most objects
//! log as `<0x0x55d1c2a3b4c0[ClassName]> text`; web components such as
//! `SOGoRootPage` log under their name. Access lines come from SOPE's
//! `WOHttpTransaction`: `HOST "METHOD URI HTTP/x" STATUS RESPLEN/REQLEN
//! DURATION …` (older builds add `- - [dd/Mon/yyyy:HH:MM:SS GMT]` after the
//! host). Lines written with GNUstep's `NSLog` (`2020-01-06 13:30:04.716
//! sogod[248:248] …`) are read too.

use serde::Serialize;

/// The SOPE log level (from the `[WARN] ` / `[ERROR] ` / `[FATAL] ` prefix;
/// lines without one are informational).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SogoLevel {
    /// `[DEBUG] ` (debug builds).
    Debug,
    /// No prefix, or `[INFO] `.
    Info,
    /// `[WARN] `.
    Warn,
    /// `[ERROR] `.
    Error,
    /// `[FATAL] `.
    Fatal,
}

/// Why SOPE's HTTP basic authentication (CalDAV/CardDAV, ActiveSync, direct
/// DAV clients) refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailureReason {
    /// `tried wrong password for user 'x'!`
    WrongPassword,
    /// `got empty password for user 'x'!`
    EmptyPassword,
    /// `got malformed basic credentials!`
    MalformedCredentials,
    /// `tried unknown authentication method: …` (the header is not copied).
    UnknownMethod,
}

/// The outcome of the TOTP step of a web login (the password was correct).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TotpOutcome {
    /// `Invalid TOTP key for 'user'`: wrong second factor after a right password.
    Invalid,
    /// `Missing TOTP key for 'user', asking it..`: the code is being asked for.
    Missing,
    /// `New TOTP key for 'user' must be created`: TOTP was switched off.
    MustRecreate,
}

/// A parsed SOGo message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SogoEvent<'a> {
    /// `SOGoRootPage successful login from '1.2.3.4' for user 'a@b' - expire =
    /// -1  grace = -1`.
    LoginSucceeded {
        /// The client address (`x-webobjects-remote-host`, set by nginx).
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<&'a str>,
        /// The login name as typed.
        user: &'a str,
        /// Password-policy expiry (`-1`: none).
        #[serde(skip_serializing_if = "Option::is_none")]
        expire: Option<i64>,
        /// Password-policy grace logins (`-1`: none).
        #[serde(skip_serializing_if = "Option::is_none")]
        grace: Option<i64>,
    },
    /// `SOGoRootPage Login from '1.2.3.4' for user 'a@b' might not have worked
    /// - password policy: 65535  grace: -1  expire: -1  bound: 0` (and the older
    /// forms without `from` or `failed login for user '…' due to wrong password`).
    LoginFailed {
        /// The client address, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<&'a str>,
        /// The login name as typed.
        user: &'a str,
        /// The password-policy error code (`65535`: none, i.e. a plain failure).
        #[serde(skip_serializing_if = "Option::is_none")]
        policy: Option<i64>,
        /// Grace logins left.
        #[serde(skip_serializing_if = "Option::is_none")]
        grace: Option<i64>,
        /// Expiry.
        #[serde(skip_serializing_if = "Option::is_none")]
        expire: Option<i64>,
        /// Whether the credentials bound (`bound: 1` with a policy error means
        /// the password was right but the policy refused the login).
        #[serde(skip_serializing_if = "Option::is_none")]
        bound: Option<bool>,
    },
    /// The TOTP step of a web login.
    Totp {
        /// The login name.
        user: &'a str,
        /// What happened.
        outcome: TotpOutcome,
    },
    /// SOPE's basic authentication refused a request (DAV, ActiveSync). The
    /// line carries no client address; pair it with the access line.
    AuthFailed {
        /// The authenticator class (`SOGoDAVAuthenticator`, `SOGoWebAuthenticator`).
        #[serde(skip_serializing_if = "Option::is_none")]
        authenticator: Option<&'a str>,
        /// The user name, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// Why.
        reason: AuthFailureReason,
    },
    /// SOGo's own access line: `1.2.3.4 "POST /SOGo/connect HTTP/1.0" 200
    /// 34/68 0.013 - - 0`.
    Access {
        /// The client (`x-webobjects-remote-host`, an address or a host name).
        client: &'a str,
        /// The method, when the request is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        /// The URI, when the request is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a str>,
        /// The HTTP version, when the request is well-formed.
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol: Option<&'a str>,
        /// The request as logged.
        request: &'a str,
        /// The response status.
        status: u16,
        /// Response body length.
        #[serde(skip_serializing_if = "Option::is_none")]
        response_bytes: Option<u64>,
        /// Request body length.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_bytes: Option<u64>,
        /// Processing time in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        duration: Option<f64>,
        /// The remaining columns (compression, memory, …) as written.
        #[serde(skip_serializing_if = "Option::is_none")]
        tail: Option<&'a str>,
    },
    /// An Objective-C exception logged through `NSLog`: `EXCEPTION:
    /// <NSException: 0x…> NAME:NSRangeException REASON:…`.
    Exception {
        /// The exception name.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        /// The reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        /// The text after `EXCEPTION: `.
        text: &'a str,
    },
    /// Any other SOPE log line: `[ERROR] <0x…[SOGoUserManager]> No authentication
    /// sources defined - nobody will be able to login.`, `SOGoRootPage …`,
    /// `|SOGo| request took …`, or an `NSLog` line.
    Message {
        /// The level.
        level: SogoLevel,
        /// The logging class or component (`SOGoCache`, `SOGoRootPage`, `SOGo`).
        #[serde(skip_serializing_if = "Option::is_none")]
        class: Option<&'a str>,
        /// The text after the prefixes.
        text: &'a str,
    },
}

/// Parses the message part of a SOGo line; `None` when its shape is unknown.
pub fn parse<'a>(_program: &'a str, message: &'a str) -> Option<SogoEvent<'a>> {
    let msg = message.trim_matches(|c: char| c == ' ' || c == '\r' || c == '\n');
    let msg = strip_pid_prefix(msg);
    if msg.is_empty() {
        return None;
    }
    if let Some(ev) = nslog(msg) {
        return Some(ev);
    }
    let (level, rest) = level_prefix(msg);
    if let Some((class, text)) = object_prefix(rest) {
        if let Some(ev) = auth_failure(class, text) {
            return Some(ev);
        }
        return Some(SogoEvent::Message {
            level: level.unwrap_or(SogoLevel::Info),
            class: Some(class),
            text,
        });
    }
    if let Some(text) = rest.strip_prefix("|SOGo| ") {
        return Some(SogoEvent::Message {
            level: level.unwrap_or(SogoLevel::Info),
            class: Some("SOGo"),
            text,
        });
    }
    if level.is_none()
        && let Some(ev) = access(rest)
    {
        return Some(ev);
    }
    if let Some((component, text)) = component_prefix(rest) {
        if let Some(ev) = login(text) {
            return Some(ev);
        }
        return Some(SogoEvent::Message {
            level: level.unwrap_or(SogoLevel::Info),
            class: Some(component),
            text,
        });
    }
    // `[ERROR] text` without an object prefix.
    level.map(|level| SogoEvent::Message {
        level,
        class: None,
        text: rest,
    })
}

// ---------------------------------------------------------------------------
// Prefixes.

/// Mailcow's log view shows some lines as `[47]: text` (the tag was cut before
/// the pid); skip that.
fn strip_pid_prefix(s: &str) -> &str {
    if let Some(inner) = s.strip_prefix('[')
        && let Some(close) = inner.find("]: ")
        && close > 0
        && inner.as_bytes()[..close].iter().all(u8::is_ascii_digit)
    {
        return &inner[close + 3..];
    }
    s
}

fn level_prefix(s: &str) -> (Option<SogoLevel>, &str) {
    for (p, l) in [
        ("[WARN] ", SogoLevel::Warn),
        ("[ERROR] ", SogoLevel::Error),
        ("[FATAL] ", SogoLevel::Fatal),
        ("[INFO] ", SogoLevel::Info),
        ("[DEBUG] ", SogoLevel::Debug),
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            return (Some(l), rest.trim_start_matches(' '));
        }
    }
    (None, s)
}

/// `<0x0x55d1c2a3b4c0[ClassName]> text` (also `<0x55…[Class]>`, and the
/// `<<0x…[Class]>>D` debug form): the class and the text.
fn object_prefix(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix("<<").or_else(|| s.strip_prefix('<'))?;
    let inner = inner.strip_prefix("0x")?;
    let open = inner.find('[')?;
    let addr = &inner[..open];
    if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x') {
        return None;
    }
    let after_open = &inner[open + 1..];
    let close = after_open.find("]>")?;
    let class = &after_open[..close];
    if class.is_empty() || !class.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let rest = &after_open[close + 2..];
    let rest = rest
        .strip_prefix(">D")
        .or_else(|| rest.strip_prefix('>'))
        .unwrap_or(rest);
    Some((class, rest.trim_start_matches(' ')))
}

/// A component name logging as itself (`SOGoRootPage text`): a `SOGo…` or
/// `UIx…` identifier followed by a space.
fn component_prefix(s: &str) -> Option<(&str, &str)> {
    let (word, rest) = s.split_once(' ')?;
    let known = word.starts_with("SOGo") || word.starts_with("UIx");
    (known && word.len() > 4 && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some((word, rest))
}

// ---------------------------------------------------------------------------
// Logins.

/// `'value'` where the closing quote is the last one before `end` (user names
/// may contain quotes): the value between the first `'` of `s` and the last
/// `'` before the first occurrence of `end`, and the rest after `end`.
fn quoted_before<'a>(s: &'a str, end: &str) -> Option<(&'a str, &'a str)> {
    let inner = s.strip_prefix('\'')?;
    let stop = inner.find(end)?;
    Some((&inner[..stop], &inner[stop + end.len()..]))
}

fn client_value(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "(null)").then_some(s)
}

/// The (possibly negative) integer after `key` in `s`.
fn int_after(s: &str, key: &str) -> Option<i64> {
    let r = &s[s.find(key)? + key.len()..];
    let r = r.trim_start_matches(' ');
    let neg = r.starts_with('-');
    let digits = &r[usize::from(neg)..];
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    let v: i64 = digits[..n].parse().ok()?;
    Some(if neg { -v } else { v })
}

fn login(text: &str) -> Option<SogoEvent<'_>> {
    if let Some(r) = text.strip_prefix("successful login from ") {
        let (client, r) = quoted_before(r, "' for user ")?;
        let (user, r) = quoted_before(r, "' - expire")?;
        return Some(SogoEvent::LoginSucceeded {
            client: client_value(client),
            user,
            expire: int_after(r, "="),
            grace: int_after(r, "grace ="),
        });
    }
    if let Some(r) = text.strip_prefix("Login from ") {
        let (client, r) = quoted_before(r, "' for user ")?;
        let (user, r) = quoted_before(r, "' might not have worked")?;
        return Some(login_failed(client_value(client), user, r));
    }
    if let Some(r) = text.strip_prefix("Login for user ") {
        let (user, r) = quoted_before(r, "' might not have worked")?;
        return Some(login_failed(None, user, r));
    }
    if let Some(r) = text.strip_prefix("failed login for user ") {
        let (user, _) = quoted_before(r, "' due to wrong password")?;
        return Some(login_failed(None, user, ""));
    }
    for (prefix, end, outcome) in [
        ("Invalid TOTP key for ", "'", TotpOutcome::Invalid),
        ("Missing TOTP key for ", "', asking", TotpOutcome::Missing),
        (
            "New TOTP key for ",
            "' must be created",
            TotpOutcome::MustRecreate,
        ),
    ] {
        if let Some(r) = text.strip_prefix(prefix) {
            let inner = r.strip_prefix('\'')?;
            let user = if end == "'" {
                &inner[..inner.rfind('\'')?]
            } else {
                quoted_before(r, end)?.0
            };
            return Some(SogoEvent::Totp { user, outcome });
        }
    }
    None
}

fn login_failed<'a>(client: Option<&'a str>, user: &'a str, policy_text: &str) -> SogoEvent<'a> {
    SogoEvent::LoginFailed {
        client,
        user,
        policy: int_after(policy_text, "password policy:"),
        grace: int_after(policy_text, "grace:"),
        expire: int_after(policy_text, "expire:"),
        bound: int_after(policy_text, "bound:").map(|b| b != 0),
    }
}

/// SOPE's `SoHTTPAuthenticator` messages (used for DAV and ActiveSync).
fn auth_failure<'a>(class: &'a str, text: &'a str) -> Option<SogoEvent<'a>> {
    let (reason, user) = if let Some(r) = text.strip_prefix("tried wrong password for user ") {
        (
            AuthFailureReason::WrongPassword,
            quoted_before(r, "'!").map(|(u, _)| u),
        )
    } else if let Some(r) = text.strip_prefix("got empty password for user ") {
        (
            AuthFailureReason::EmptyPassword,
            quoted_before(r, "'!").map(|(u, _)| u),
        )
    } else if text.starts_with("got malformed basic credentials") {
        (AuthFailureReason::MalformedCredentials, None)
    } else if text.starts_with("tried unknown authentication method") {
        (AuthFailureReason::UnknownMethod, None)
    } else {
        return None;
    };
    Some(SogoEvent::AuthFailed {
        authenticator: Some(class),
        user,
        reason,
    })
}

// ---------------------------------------------------------------------------
// Access lines.

/// Splits `METHOD URI HTTP/x` when it has that shape.
fn split_request(req: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let mut parts = req.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v), None)
            if !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                && !p.is_empty()
                && v.starts_with("HTTP/") =>
        {
            (Some(m), Some(p), Some(v))
        }
        _ => (None, None, None),
    }
}

fn access(s: &str) -> Option<SogoEvent<'_>> {
    let (client, rest) = s.split_once(' ')?;
    if client.is_empty() || client.contains(['"', '\'', '<', '[']) {
        return None;
    }
    // Older SOPE: `- - [14/Mar/2023:00:00:31 GMT] `.
    let rest = match rest.strip_prefix("- - [") {
        Some(r) => {
            let close = r.find("] ")?;
            &r[close + 2..]
        }
        None => rest,
    };
    let inner = rest.strip_prefix('"')?;
    // The request ends at `" ` followed by the status digits.
    let bytes = inner.as_bytes();
    let mut from = 0;
    let (request, after) = loop {
        let i = memchr::memmem::find(&bytes[from..], b"\" ")?;
        let at = from + i;
        if bytes.get(at + 2).is_some_and(u8::is_ascii_digit) {
            break (&inner[..at], &inner[at + 2..]);
        }
        from = at + 1;
    };
    let mut cols = after.splitn(3, ' ');
    let status: u16 = cols.next()?.parse().ok()?;
    let (response_bytes, request_bytes) = match cols.next() {
        Some(len) => {
            let (resp, req) = len.split_once('/').map_or((len, None), |(a, b)| (a, Some(b)));
            (resp.parse().ok(), req.and_then(|r| r.parse().ok()))
        }
        None => (None, None),
    };
    let (duration, tail) = match cols.next() {
        Some(r) => {
            let (d, t) = r.split_once(' ').unwrap_or((r, ""));
            match d.parse::<f64>() {
                Ok(v) if v.is_finite() => (Some(v), t),
                _ => (None, r),
            }
        }
        None => (None, ""),
    };
    let tail = tail.trim();
    let (method, path, protocol) = split_request(request);
    Some(SogoEvent::Access {
        client,
        method,
        path,
        protocol,
        request,
        status,
        response_bytes,
        request_bytes,
        duration,
        tail: (!tail.is_empty()).then_some(tail),
    })
}

// ---------------------------------------------------------------------------
// NSLog lines.

/// `[YYYY-MM-DD ]HH:MM:SS.mmm sogod[pid:tid] text` or `sogod[pid:tid] text`.
fn nslog(s: &str) -> Option<SogoEvent<'_>> {
    let mut rest = s;
    let b = rest.as_bytes();
    if b.len() >= 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-' && b[10] == b' '
    {
        rest = &rest[11..];
    }
    let b = rest.as_bytes();
    if b.len() >= 9 && b[..2].iter().all(u8::is_ascii_digit) && b[2] == b':' && b[5] == b':' {
        let sp = rest.find(' ')?;
        rest = &rest[sp + 1..];
    }
    let open = rest.find('[')?;
    let name = &rest[..open];
    if name.is_empty() || name.len() > 32 || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    let inner = &rest[open + 1..];
    let close = inner.find("] ")?;
    let ids = &inner[..close];
    if ids.is_empty() || !ids.bytes().all(|c| c.is_ascii_digit() || c == b':') {
        return None;
    }
    let text = inner[close + 2..].trim_start_matches(' ');
    if let Some(ex) = text.strip_prefix("EXCEPTION: ") {
        let name = after_word(ex, "NAME:");
        let reason = ex.find("REASON:").map(|i| {
            let r = &ex[i + "REASON:".len()..];
            r.find(" INFO:").map_or(r, |e| &r[..e]).trim()
        });
        return Some(SogoEvent::Exception {
            name,
            reason,
            text: ex,
        });
    }
    Some(SogoEvent::Message {
        level: SogoLevel::Info,
        class: None,
        text,
    })
}

/// The space-delimited word after `key`.
fn after_word<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let r = &s[s.find(key)? + key.len()..];
    let w = r.split(' ').next()?;
    (!w.is_empty()).then_some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::json;

    /// Sample lines. Sources: mailcow-dockerized issues #2 (SOGo start-up,
    /// access line with `8M`), #40/#121/#6163 (failed web logins), #1395 (access
    /// line, NSLog exception), #1591 and #4078 (WOWatchDog/WOHttpAdaptor), #5244
    /// (newer access line, SOGoWebAuthenticator), #2756 (NSLog), and the format
    /// strings in Alinto/sogo UI/MainUI/SOGoRootPage.m, Alinto/sope
    /// SoHTTPAuthenticator.m, WOHttpTransaction.m and NGLogEventDetailedFormatter.m.
    const SAMPLES: &[&str] = &[
        "SOGoRootPage successful login from '1.2.3.4' for user 'a@b' - expire = -1  grace = -1",
        "SOGoRootPage Login from '172.22.1.1' for user 'mitchell@example.com' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
        "<0x0xaaaae6890780[SOGoWebAuthenticator]> tried wrong password for user 'user@example.org'!",
        "37.201.192.192 \"POST /SOGo/connect HTTP/1.0\" 403 34/58 0.032 - - 8M",
        "1.2.3.4 - - [14/Mar/2023:00:00:31 GMT] \"POST /SOGo/connect HTTP/1.1\" 200 34/68 0.013 - - 0",
        "[ERROR] <0x0x56176e334250[SOGoUserManager]> No authentication sources defined - nobody will be able to login. Check your defaults.",
        "2020-01-06 13:30:04.716 sogod[248:248] Adding uh 55357 ul 56380",
        "sogod[70:70] EXCEPTION: <NSException: 0x5606b0f138b0> NAME:NSRangeException REASON:Range location + length too great INFO:(null)",
        "SOGoRootPage Invalid TOTP key for 'a@b'",
    ];

    #[test]
    fn web_logins() {
        check(
            parse,
            "sogod",
            SAMPLES[0],
            json!({"event": "login_succeeded", "client": "1.2.3.4", "user": "a@b", "expire": -1, "grace": -1}),
        );
        // mailcow #121.
        check(
            parse,
            "sogod",
            SAMPLES[1],
            json!({"event": "login_failed", "client": "172.22.1.1", "user": "mitchell@example.com",
                   "policy": 65535, "grace": -1, "expire": -1, "bound": false}),
        );
        // mailcow #1591: a user name with a stray quote, IPv6 client.
        check(
            parse,
            "sogod",
            "SOGoRootPage Login from '2001:db8::7' for user ''*@example.com' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
            json!({"event": "login_failed", "client": "2001:db8::7", "user": "'*@example.com",
                   "policy": 65535, "grace": -1, "expire": -1, "bound": false}),
        );
        // Password right, policy refuses (bound: 1, password expired policy code).
        check(
            parse,
            "sogod",
            "SOGoRootPage Login from '198.51.100.3' for user 'b@example.org' might not have worked - password policy: 2  grace: 0  expire: -1  bound: 1",
            json!({"event": "login_failed", "client": "198.51.100.3", "user": "b@example.org",
                   "policy": 2, "grace": 0, "expire": -1, "bound": true}),
        );
        // Older SOGo wordings (no address).
        check(
            parse,
            "sogod",
            "SOGoRootPage Login for user 'a@b' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
            json!({"event": "login_failed", "user": "a@b", "policy": 65535, "grace": -1, "expire": -1,
                   "bound": false}),
        );
        check(
            parse,
            "sogod",
            "SOGoRootPage failed login for user 'a@b' due to wrong password",
            json!({"event": "login_failed", "user": "a@b"}),
        );
        // Mailcow's log view cut before the pid: `[64]: …` (mailcow #1395 shape).
        check(
            parse,
            "sogod",
            "[64]: SOGoRootPage successful login from '(null)' for user 'a@b' - expire = 3600  grace = -1",
            json!({"event": "login_succeeded", "user": "a@b", "expire": 3600, "grace": -1}),
        );
    }

    #[test]
    fn totp() {
        check(
            parse,
            "sogod",
            SAMPLES[8],
            json!({"event": "totp", "user": "a@b", "outcome": "invalid"}),
        );
        check(
            parse,
            "sogod",
            "SOGoRootPage Missing TOTP key for 'a@b', asking it..",
            json!({"event": "totp", "user": "a@b", "outcome": "missing"}),
        );
        check(
            parse,
            "sogod",
            "SOGoRootPage New TOTP key for 'a@b' must be created",
            json!({"event": "totp", "user": "a@b", "outcome": "must_recreate"}),
        );
    }

    #[test]
    fn basic_auth_failures() {
        // mailcow #5244.
        check(
            parse,
            "sogod",
            SAMPLES[2],
            json!({"event": "auth_failed", "authenticator": "SOGoWebAuthenticator",
                   "user": "user@example.org", "reason": "wrong_password"}),
        );
        check(
            parse,
            "sogod",
            "<0x0x55d1c2a3b4c0[SOGoDAVAuthenticator]> got empty password for user 'phone@example.org'!",
            json!({"event": "auth_failed", "authenticator": "SOGoDAVAuthenticator",
                   "user": "phone@example.org", "reason": "empty_password"}),
        );
        check(
            parse,
            "sogod",
            "<0x0x55d1c2a3b4c0[SOGoDAVAuthenticator]> got malformed basic credentials (missing colon)!",
            json!({"event": "auth_failed", "authenticator": "SOGoDAVAuthenticator",
                   "reason": "malformed_credentials"}),
        );
        // The Authorization header is not copied into the event.
        check(
            parse,
            "sogod",
            "<0x0x55d1c2a3b4c0[SOGoDAVAuthenticator]> tried unknown authentication method: Bearer abc.def (B)",
            json!({"event": "auth_failed", "authenticator": "SOGoDAVAuthenticator",
                   "reason": "unknown_method"}),
        );
    }

    #[test]
    fn access_lines() {
        // mailcow #2.
        check(
            parse,
            "sogod",
            SAMPLES[3],
            json!({"event": "access", "client": "37.201.192.192", "method": "POST", "path": "/SOGo/connect",
                   "protocol": "HTTP/1.0", "request": "POST /SOGo/connect HTTP/1.0", "status": 403,
                   "response_bytes": 34, "request_bytes": 58, "duration": 0.032, "tail": "- - 8M"}),
        );
        // WOHttpTransaction.m with the date.
        check(
            parse,
            "sogod",
            SAMPLES[4],
            json!({"event": "access", "client": "1.2.3.4", "method": "POST", "path": "/SOGo/connect",
                   "protocol": "HTTP/1.1", "request": "POST /SOGo/connect HTTP/1.1", "status": 200,
                   "response_bytes": 34, "request_bytes": 68, "duration": 0.013, "tail": "- - 0"}),
        );
        // mailcow #5244: the watchdog's host name, newer trailing columns.
        check(
            parse,
            "sogod",
            "mailcowdockerized-watchdog-mailcow-1.mailcowdockerized_mailcow-network \"GET /SOGo.index/ HTTP/1.1\" 200 2584/0 0.005 - - 0 - 11",
            json!({"event": "access", "client": "mailcowdockerized-watchdog-mailcow-1.mailcowdockerized_mailcow-network",
                   "method": "GET", "path": "/SOGo.index/", "protocol": "HTTP/1.1",
                   "request": "GET /SOGo.index/ HTTP/1.1", "status": 200, "response_bytes": 2584,
                   "request_bytes": 0, "duration": 0.005, "tail": "- - 0 - 11"}),
        );
        // A request with a quote inside the URI; no duration.
        check(
            parse,
            "sogod",
            "local \"GET /SOGo/so/a\"b HTTP/1.1\" 404 0/0 -",
            json!({"event": "access", "client": "local", "request": "GET /SOGo/so/a\"b HTTP/1.1",
                   "method": "GET", "path": "/SOGo/so/a\"b", "protocol": "HTTP/1.1", "status": 404,
                   "response_bytes": 0, "request_bytes": 0, "tail": "-"}),
        );
    }

    #[test]
    fn generic_lines() {
        // mailcow #2.
        check(
            parse,
            "sogod",
            SAMPLES[5],
            json!({"event": "message", "level": "error", "class": "SOGoUserManager",
                   "text": "No authentication sources defined - nobody will be able to login. Check your defaults."}),
        );
        check(
            parse,
            "sogod",
            "[WARN] <0x0x7ff6533ed820[WOxElemBuilder]> could not locate builders: WOxExtElemBuilder,WOxExtElemBuilder",
            json!({"event": "message", "level": "warn", "class": "WOxElemBuilder",
                   "text": "could not locate builders: WOxExtElemBuilder,WOxExtElemBuilder"}),
        );
        // mailcow #1591 / #4078.
        check(
            parse,
            "sogod",
            "<0x0x555c6e6b42a0[WOWatchDog]> child spawned with pid 58",
            json!({"event": "message", "level": "info", "class": "WOWatchDog", "text": "child spawned with pid 58"}),
        );
        check(
            parse,
            "sogod",
            "|SOGo| request took 0.027754 seconds to execute",
            json!({"event": "message", "level": "info", "class": "SOGo",
                   "text": "request took 0.027754 seconds to execute"}),
        );
        check(
            parse,
            "sogod",
            "[ERROR] Could not connect to memcached",
            json!({"event": "message", "level": "error", "text": "Could not connect to memcached"}),
        );
        check(
            parse,
            "sogod",
            "SOGoRootPage some other component message",
            json!({"event": "message", "level": "info", "class": "SOGoRootPage",
                   "text": "some other component message"}),
        );
        // NSLog lines (mailcow #2756, #1395).
        check(
            parse,
            "sogod",
            SAMPLES[6],
            json!({"event": "message", "level": "info", "text": "Adding uh 55357 ul 56380"}),
        );
        check(
            parse,
            "sogod",
            SAMPLES[7],
            json!({"event": "exception", "name": "NSRangeException", "reason": "Range location + length too great",
                   "text": "<NSException: 0x5606b0f138b0> NAME:NSRangeException REASON:Range location + length too great INFO:(null)"}),
        );
        check(
            parse,
            "sogod",
            "01:58:28.430 sogod[47:47] EXCEPTION: <NSException: 0x5650d3ce9630> NAME:NSRangeException REASON:Range location + length too great INFO:(null)",
            json!({"event": "exception", "name": "NSRangeException", "reason": "Range location + length too great",
                   "text": "<NSException: 0x5650d3ce9630> NAME:NSRangeException REASON:Range location + length too great INFO:(null)"}),
        );
    }

    #[test]
    fn unknown_shapes() {
        for msg in [
            "",
            "   ",
            "'[...]'!",
            "just some text",
            "SOGo",
            "Login from somewhere",
            "1.2.3.4 GET /",
            "1.2.3.4 \"GET / HTTP/1.1\" OK",
            "<0xZZ[Class]> x",
        ] {
            assert_eq!(parse("sogod", msg), None, "{msg:?}");
        }
    }

    #[test]
    fn through_event_kind() {
        let ev = parse("sogod", SAMPLES[1]).unwrap();
        let v = serde_json::to_value(crate::event::EventKind::Sogo(ev)).unwrap();
        assert_eq!(v["kind"], "sogo");
        assert_eq!(v["event"], "login_failed");
        assert_eq!(v["client"], "172.22.1.1");
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse("sogod", &s);
        }

        #[test]
        fn never_panics_on_mutations(i in 0..SAMPLES.len(), cut in 0usize..400, at in 0usize..400, c in any::<char>()) {
            for m in test_support::mutations(SAMPLES[i], cut, at, c) {
                let _ = parse("sogod", &m);
            }
        }
    }
}
