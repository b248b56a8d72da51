//! Dovecot log messages — logins, authentication failures, LMTP/LDA delivery
//! with Sieve, quota, session ends and master start/stop — into typed events.
//!
//! Every Dovecot message starts with the process that wrote it, optionally
//! followed by the user, pid and session it works for: `imap-login: `,
//! `auth-worker(1234): `, `lmtp(alice@example.org)<4242><sessid>: ` and, since
//! 2.4, `auth(alice,192.0.2.7,sasl:plain)<sessid>: `. Lines from Dovecot's own
//! `log_path` file carry the level after that prefix (`Info: `); through syslog
//! only warnings and worse do. Dovecot 2.4 reworded many lines (`Login:` became
//! `Logged in:`, `Disconnected (auth failed, …)` became
//! `Login aborted: … (auth failed, …) (auth_failed)`, and the passdb moved from
//! `sql(user,ip,<sess>): Password mismatch` into the process prefix); both
//! wordings map to the same events so that brute-force and password-spraying
//! detection, delivery tracing and quota alerts work across versions.
//!
//! Security-relevant lines always get their specific variant. A line whose
//! process prefix is well-formed but whose content is not one of those becomes
//! [`DovecotEvent::Message`] (attributed to its process, user and session, never
//! guessed further); a line without a recognizable prefix gives `None`.

use memchr::memmem;
use serde::Serialize;

use super::text::{angle_value, plain_field, split_once, word_colon};

/// The level Dovecot writes after the process prefix (`Info: `, `Error: ` …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `Debug: `
    Debug,
    /// `Info: ` (only in Dovecot's own log file; absent through syslog).
    Info,
    /// `Warning: `
    Warning,
    /// `Error: `
    Error,
    /// `Fatal: ` — the process died.
    Fatal,
    /// `Panic: ` — an assertion failed; the process died.
    Panic,
}

impl Level {
    fn from_token(s: &str) -> Option<Level> {
        Some(match s {
            "Debug" => Level::Debug,
            "Info" => Level::Info,
            "Warning" => Level::Warning,
            "Error" => Level::Error,
            "Fatal" => Level::Fatal,
            "Panic" => Level::Panic,
            _ => return None,
        })
    }

    fn is_error(self) -> bool {
        matches!(self, Level::Error | Level::Fatal | Level::Panic)
    }
}

/// Why a connection to a login process ended without a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginAbortReason {
    /// Credentials were rejected (`auth failed, N attempts in S secs`).
    AuthFailed,
    /// The client never tried to authenticate (scanners, health checks).
    NoAuthAttempts,
    /// The client tried plaintext/cleartext auth where it is not allowed.
    CleartextDisallowed,
    /// The client asked for a SASL mechanism that is not offered.
    UnsupportedMechanism,
    /// The client started but did not finish authenticating.
    AuthIncomplete,
    /// The auth service was not ready, not reachable or failed temporarily.
    AuthUnavailable,
    /// The TLS handshake or the client certificate failed.
    TlsFailure,
    /// The account (or login for it) is disabled.
    UserDisabled,
    /// The password has expired.
    PasswordExpired,
    /// Proxying to the backend failed.
    ProxyFailed,
    /// `mail_max_userip_connections` or a similar limit was hit.
    ConnectionLimit,
    /// Authentication succeeded but the login failed internally.
    InternalFailure,
    /// The login process was shutting down or full.
    Shutdown,
    /// Any other reason; see `disconnect` and `detail`.
    Other,
}

/// What the auth process said about a failed lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailReason {
    /// The user exists but the password is wrong.
    PasswordMismatch,
    /// The passdb (or userdb) does not know the user.
    UnknownUser,
    /// Anything else (backend errors, PAM refusals, …); see `text`.
    Other,
}

/// A Sieve action other than storing into a mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SieveActionKind {
    /// `redirect`: the message was forwarded to `target`.
    Forwarded,
    /// `discard` (or a duplicate redirect that was dropped).
    Discarded,
    /// `reject`: the message was refused back to `target`.
    Rejected,
    /// `vacation`: an auto-reply was sent to `target`.
    Vacation,
    /// The message was left where it was (`left message in mailbox …`).
    Kept,
    /// Any other Sieve result line; see `text`.
    Other,
}

/// A parsed Dovecot message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DovecotEvent<'a> {
    /// A successful login through a login process (`imap-login: Login: …`,
    /// 2.4 `Logged in: …`), or a login proxied to a backend.
    Login {
        /// The protocol: `imap`, `pop3`, `submission`, `managesieve`.
        service: &'a str,
        /// The login name (`user=<…>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The SASL mechanism (`method=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        /// The client address (`rip=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        rip: Option<&'a str>,
        /// The server address (`lip=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        lip: Option<&'a str>,
        /// The client port (`rport=`, when `login_log_format_elements` has it).
        #[serde(skip_serializing_if = "Option::is_none")]
        rport: Option<u16>,
        /// The server port (`lport=`, when configured).
        #[serde(skip_serializing_if = "Option::is_none")]
        lport: Option<u16>,
        /// The pid of the mail process that took over (`mpid=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        mpid: Option<u32>,
        /// The connection used TLS.
        tls: bool,
        /// The connection was TLS or otherwise trusted (`secured`).
        secured: bool,
        /// The TLS protocol and cipher, when logged (`TLSv1.3 with cipher …`).
        #[serde(skip_serializing_if = "Option::is_none")]
        cipher: Option<&'a str>,
        /// The session id (`session=<…>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// `host:port` the login was proxied to (`proxy(…): started proxying to …`).
        #[serde(skip_serializing_if = "Option::is_none")]
        proxy_to: Option<&'a str>,
    },
    /// A connection to a login process that ended without a login: failed
    /// credentials, no attempt at all, disallowed plaintext auth, TLS failures…
    /// (2.3 `Disconnected (…)` / `Aborted login (…)`, 2.4 `Login aborted: …`).
    LoginAborted {
        /// The protocol: `imap`, `pop3`, `submission`, `managesieve`.
        service: &'a str,
        /// The login name tried, when there was one.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The SASL mechanism tried.
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        /// The client address.
        #[serde(skip_serializing_if = "Option::is_none")]
        rip: Option<&'a str>,
        /// The server address.
        #[serde(skip_serializing_if = "Option::is_none")]
        lip: Option<&'a str>,
        /// The client port, when configured.
        #[serde(skip_serializing_if = "Option::is_none")]
        rport: Option<u16>,
        /// The server port, when configured.
        #[serde(skip_serializing_if = "Option::is_none")]
        lport: Option<u16>,
        /// The connection used TLS.
        tls: bool,
        /// The connection was TLS or otherwise trusted.
        secured: bool,
        /// The TLS state when it was not a finished handshake
        /// (`Disconnected`, `TLS handshaking`, an `SSL_accept()` error …).
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_error: Option<&'a str>,
        /// The session id.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The classified reason.
        reason: LoginAbortReason,
        /// How the connection ended, as written (`Disconnected: Inactivity`,
        /// `Aborted login`, 2.4 `Connection closed` …).
        disconnect: &'a str,
        /// The explanation in parentheses (`auth failed, 3 attempts in 15 secs`).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a str>,
        /// The machine-readable reason 2.4 appends (`auth_failed`, `no_auth_attempts` …).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'a str>,
        /// Authentication attempts on the connection, when stated.
        #[serde(skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
        /// Seconds the attempts (or the connection) took, when stated.
        #[serde(skip_serializing_if = "Option::is_none")]
        secs: Option<u32>,
    },
    /// The auth service rejected a lookup: `passwd-file(u,ip,<s>): unknown user`,
    /// `sql(…): Password mismatch (SHA1 of given password: …)`, PAM refusals,
    /// 2.4 `auth(u,ip,sasl:plain)<s>: sql: Password mismatch`, and errors of a
    /// request for a particular user.
    AuthFailure {
        /// `auth`, `auth-worker` …
        process: &'a str,
        /// The level, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<Level>,
        /// The passdb/userdb driver or (2.4) its configured name: `sql`,
        /// `passwd-file`, `pam`, `ldap`, `lua` …
        #[serde(skip_serializing_if = "Option::is_none")]
        driver: Option<&'a str>,
        /// The user looked up.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The client address.
        #[serde(skip_serializing_if = "Option::is_none")]
        rip: Option<&'a str>,
        /// The session id (matches the login process line).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The SASL mechanism (2.4 `sasl:plain` → `plain`).
        #[serde(skip_serializing_if = "Option::is_none")]
        mechanism: Option<&'a str>,
        /// The lookup was for a master user login.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        master: bool,
        /// The classified reason.
        reason: AuthFailReason,
        /// SHA1 (possibly truncated) of the password tried, with
        /// `auth_verbose_passwords = sha1` (Mailcow's setting).
        #[serde(skip_serializing_if = "Option::is_none")]
        password_sha1: Option<&'a str>,
        /// Dovecot goes on to the next passdb/userdb (`- trying the next passdb`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        next_db: bool,
        /// The message after the driver prefix, as written.
        text: &'a str,
    },
    /// An error of the auth service not tied to one user's request
    /// (`auth: Error: passwd-file: open(…) failed`, backend down …).
    AuthError {
        /// `auth`, `auth-worker` …
        process: &'a str,
        /// `error`, `fatal` or `panic`.
        level: Level,
        /// The user in the process prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The session in the process prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The message, as written.
        text: &'a str,
    },
    /// A message was stored: LDA/LMTP `msgid=<…>: saved mail to INBOX`, Sieve
    /// `stored mail into mailbox 'X'` (keep and fileinto).
    Delivered {
        /// `lmtp`, `lda`, `deliver`, `imap` (imapsieve) …
        service: &'a str,
        /// The recipient mailbox owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The session id (also in Postfix's `status=sent (250 2.0.0 <…> <sess> Saved)`).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The Message-ID, without angle brackets; `None` when `unspecified`.
        #[serde(skip_serializing_if = "Option::is_none")]
        msgid: Option<&'a str>,
        /// The mailbox the message went into.
        mailbox: &'a str,
        /// Stored by a Sieve action (`fileinto` or keep).
        sieve: bool,
    },
    /// Storing a message failed for a reason other than quota
    /// (`save failed to INBOX: …`, Sieve `failed to store into mailbox 'X': …`).
    DeliveryFailed {
        /// `lmtp`, `lda` …
        service: &'a str,
        /// The recipient mailbox owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The session id.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The Message-ID.
        #[serde(skip_serializing_if = "Option::is_none")]
        msgid: Option<&'a str>,
        /// The mailbox that could not be written.
        #[serde(skip_serializing_if = "Option::is_none")]
        mailbox: Option<&'a str>,
        /// The failure came from a Sieve action.
        sieve: bool,
        /// The storage error, as written.
        error: &'a str,
    },
    /// Quota refused a message or an operation
    /// (`Quota exceeded (mailbox for user is full)`).
    QuotaExceeded {
        /// `lmtp`, `lda`, `imap` …
        service: &'a str,
        /// The mailbox owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The session id.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The Message-ID, for a delivery.
        #[serde(skip_serializing_if = "Option::is_none")]
        msgid: Option<&'a str>,
        /// The mailbox, for a delivery.
        #[serde(skip_serializing_if = "Option::is_none")]
        mailbox: Option<&'a str>,
        /// The refusal came from a Sieve action.
        sieve: bool,
        /// The error text, as written.
        text: &'a str,
    },
    /// A line of the quota-warning service (the script run when a user crosses
    /// a `quota_warning` threshold).
    QuotaWarning {
        /// The process name (`quota-warning` …).
        process: &'a str,
        /// The user in the process prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The level, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<Level>,
        /// The message, as written.
        text: &'a str,
    },
    /// A Sieve action other than storing: redirect, discard, reject, vacation.
    SieveAction {
        /// `lmtp`, `lda`, `imap` (imapsieve) …
        service: &'a str,
        /// The script owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The session id.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The Message-ID.
        #[serde(skip_serializing_if = "Option::is_none")]
        msgid: Option<&'a str>,
        /// The action.
        action: SieveActionKind,
        /// The address forwarded, replied or rejected to.
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a str>,
        /// The mailbox, for `left message in mailbox …`.
        #[serde(skip_serializing_if = "Option::is_none")]
        mailbox: Option<&'a str>,
        /// The action text, as written.
        text: &'a str,
    },
    /// An LMTP client (Postfix) connected: `lmtp(1234): Connect from 172.22.1.6`.
    LmtpConnect {
        /// The LMTP process id.
        #[serde(skip_serializing_if = "Option::is_none")]
        process_pid: Option<u32>,
        /// The client address, or `local` for a UNIX socket.
        remote: &'a str,
    },
    /// An LMTP client disconnected:
    /// `Disconnect from 172.22.1.6: Client has quit the connection (state=READY)`.
    LmtpDisconnect {
        /// The LMTP process id.
        #[serde(skip_serializing_if = "Option::is_none")]
        process_pid: Option<u32>,
        /// The client address, or `local`.
        remote: &'a str,
        /// Why, as written.
        reason: &'a str,
        /// The SMTP state at the time (`READY`, `MAIL FROM` …).
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'a str>,
    },
    /// An IMAP/POP3/ManageSieve/Submission session ended
    /// (`Logged out in=… out=…`, `Disconnected: Connection closed (…) in=…`).
    Logout {
        /// `imap`, `pop3`, `managesieve`, `submission` …
        service: &'a str,
        /// The logged-in user.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The mail process id.
        #[serde(skip_serializing_if = "Option::is_none")]
        process_pid: Option<u32>,
        /// The session id (matches the login line).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// How it ended, without the statistics (`Logged out`,
        /// `Disconnected: Connection closed (No commands sent)` …).
        reason: &'a str,
        /// Bytes received from the client (`in=`, ManageSieve `bytes=in/out`).
        #[serde(skip_serializing_if = "Option::is_none")]
        in_bytes: Option<u64>,
        /// Bytes sent to the client (`out=`).
        #[serde(skip_serializing_if = "Option::is_none")]
        out_bytes: Option<u64>,
        /// The logout statistics as written (`in=… out=… deleted=…`, POP3 `top=…`).
        #[serde(skip_serializing_if = "Option::is_none")]
        stats: Option<&'a str>,
    },
    /// The master process started:
    /// `Dovecot v2.3.19.1 (9b53102964) starting up for imap, lmtp`.
    Startup {
        /// The version (`2.3.19.1`).
        version: &'a str,
        /// The build hash (`9b53102964`).
        #[serde(skip_serializing_if = "Option::is_none")]
        build: Option<&'a str>,
        /// The protocols, as written (`imap, pop3, lmtp`).
        #[serde(skip_serializing_if = "Option::is_none")]
        protocols: Option<&'a str>,
        /// `(core dumps disabled)` was logged.
        core_dumps_disabled: bool,
    },
    /// The master process was told to stop: `Killed with signal 15 (by pid=1 …)`.
    Shutdown {
        /// The signal number.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
        /// The pid that sent the signal.
        #[serde(skip_serializing_if = "Option::is_none")]
        by_pid: Option<u32>,
        /// The message, as written.
        text: &'a str,
    },
    /// The master process reloads its configuration (`SIGHUP received …`).
    Reload {
        /// The message, as written.
        text: &'a str,
    },
    /// Any other line with a well-formed process prefix.
    Message {
        /// The process name (`imap`, `lmtp`, `auth`, `master`, `doveadm` …).
        process: &'a str,
        /// The user in the process prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// The process id in the prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        process_pid: Option<u32>,
        /// The session id in the prefix, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// The level, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<Level>,
        /// The message after the prefix and level, as written.
        text: &'a str,
    },
}

/// Parses the message part of a Dovecot line; `None` when its shape is unknown.
///
/// `program` is the syslog tag (normally `dovecot`; in some journald setups the
/// process name itself, e.g. `imap-login`), `message` the text after it.
pub fn parse<'a>(program: &'a str, message: &'a str) -> Option<DovecotEvent<'a>> {
    let (p, level, body) = split_line(program, message)?;
    let specific = if level == Some(Level::Debug) {
        None
    } else if p.name == "master" {
        master_event(body)
    } else if p.name.ends_with("-login") {
        login_event(&p, body)
    } else if is_auth_process(p.name) {
        auth_event(&p, level, body)
    } else if is_quota_warning(p.name) {
        Some(DovecotEvent::QuotaWarning {
            process: p.name,
            user: user_of(&p),
            level,
            text: body,
        })
    } else {
        mail_event(&p, body)
    };
    Some(specific.unwrap_or(DovecotEvent::Message {
        process: p.name,
        user: user_of(&p),
        process_pid: p.pid,
        session: p.session,
        level,
        text: body,
    }))
}

// ---------------------------------------------------------------------------
// Prefix and level

/// The process prefix: `name[(args)][<pid>][<session>]: `.
#[derive(Clone, Copy, Debug, Default)]
struct Prefix<'a> {
    name: &'a str,
    /// The parenthesized arguments unless they were only a pid.
    args: Option<&'a str>,
    pid: Option<u32>,
    session: Option<&'a str>,
}

/// Splits a message into its process prefix, optional level and body.
fn split_line<'a>(program: &'a str, message: &'a str) -> Option<(Prefix<'a>, Option<Level>, &'a str)> {
    let msg = message.trim_end();
    let generic = program.is_empty() || program == "dovecot";
    let (prefix, rest) = if generic {
        // A few setups repeat the tag inside the message (`dovecot: auth: …`).
        let msg = msg.strip_prefix("dovecot: ").unwrap_or(msg);
        match parse_prefix(msg) {
            Some(found) => found,
            // Master errors before its log prefix is set (`Fatal: Dovecot is
            // already running …`) carry only a level.
            None => {
                let (level, _) = word_colon(msg)?;
                Level::from_token(level)?;
                (
                    Prefix {
                        name: if program.is_empty() { "dovecot" } else { program },
                        ..Prefix::default()
                    },
                    msg,
                )
            }
        }
    } else {
        // The tag is the process itself (journald); the message may or may
        // not repeat it.
        match parse_prefix(msg) {
            Some((p, rest)) if p.name == program => (p, rest),
            _ => (
                Prefix {
                    name: program,
                    ..Prefix::default()
                },
                msg,
            ),
        }
    };
    let mut body = rest;
    // 2.4 auth-worker: `auth-worker(u,ip)<pid><sess>: request [12]: Info: …`.
    if let Some(r) = body.strip_prefix("request [")
        && let Some((n, after)) = split_once(r, "]: ")
        && all_digits(n)
    {
        body = after;
    }
    let mut level = None;
    if let Some((token, after)) = word_colon(body)
        && let Some(l) = Level::from_token(token)
    {
        level = Some(l);
        body = after;
    }
    Some((prefix, level, strip_worker_conn(body)))
}

/// Parses `name[(args)][<a>][<b>]: ` at the start of `s`.
fn parse_prefix(s: &str) -> Option<(Prefix<'_>, &str)> {
    let b = s.as_bytes();
    let end = b.iter().position(|&c| !is_name_byte(c)).unwrap_or(b.len());
    if end == 0 || end > 64 || !b[0].is_ascii_lowercase() {
        return None;
    }
    let name = &s[..end];
    let mut rest = &s[end..];
    let mut args = None;
    if let Some(inner) = rest.strip_prefix('(') {
        let close = args_end(inner)?;
        args = Some(&inner[..close]);
        rest = &inner[close + 1..];
    }
    let mut angles: [Option<&str>; 2] = [None, None];
    let mut count = 0usize;
    while let Some(r) = rest.strip_prefix('<') {
        let close = r.find('>')?;
        if let Some(slot) = angles.get_mut(count) {
            *slot = Some(&r[..close]);
        }
        count += 1;
        rest = &r[close + 1..];
    }
    let body = match rest.strip_prefix(": ") {
        Some(body) => body,
        None if rest == ":" => "",
        None => return None,
    };
    let (mut pid, mut session) = (None, None);
    match angles {
        [Some(a), Some(b)] => {
            pid = a.parse().ok();
            session = Some(b);
        }
        [Some(a), None] if all_digits(a) => pid = a.parse().ok(),
        [Some(a), None] => session = Some(a),
        _ => {}
    }
    if let Some(a) = args
        && all_digits(a)
    {
        pid = pid.or_else(|| a.parse().ok());
        args = None;
    }
    Some((
        Prefix {
            name,
            args,
            pid,
            session,
        },
        body,
    ))
}

/// The index of the `)` that closes process arguments: the first one followed
/// by `<` or `:` (arguments may contain `:` and `(`, e.g. `sasl:plain`).
fn args_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b')', b.get(from..)?) {
        let at = from + i;
        if matches!(b.get(at + 1), Some(b'<' | b':')) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// 2.3 auth-worker lines may carry the worker connection in front of the
/// request: `conn unix:auth-worker (pid=165,uid=401): auth-worker<472>: …`.
fn strip_worker_conn(body: &str) -> &str {
    if let Some(r) = body.strip_prefix("conn ")
        && let Some((_, after)) = split_once(r, "): ")
        && let Some(w) = after.strip_prefix("auth-worker<")
        && let Some((_, rest)) = split_once(w, ">: ")
    {
        return rest;
    }
    body
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn is_auth_process(name: &str) -> bool {
    name == "auth" || name.starts_with("auth-") || name == "dovecot-auth"
}

fn is_quota_warning(name: &str) -> bool {
    name.starts_with("quota-warning") || name.starts_with("quota_warning") || name.starts_with("quota-notify")
}

/// The user a process prefix names, if any.
fn user_of<'a>(p: &Prefix<'a>) -> Option<&'a str> {
    let args = p.args?;
    if is_auth_process(p.name) {
        return parse_auth_args(args).user;
    }
    (!args.is_empty() && args != "default").then_some(args)
}

/// `ASCII-case-insensitive` substring test; `needle` must be lower-case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Splits a trailing ` (…)` group off `s`: `(before, inside)`. Parentheses
/// inside the group must balance.
fn trailing_paren(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_end();
    let b = s.as_bytes();
    if b.last() != Some(&b')') {
        return None;
    }
    let mut depth = 0usize;
    for i in (0..b.len()).rev() {
        match b[i] {
            b')' => depth += 1,
            b'(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    if i == 0 || b[i - 1] != b' ' {
                        return None;
                    }
                    return Some((&s[..i - 1], &s[i + 1..b.len() - 1]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The number written right before `pat` in `s` (`3` in `3 attempts`).
fn number_before(s: &str, pat: &str) -> Option<u32> {
    let i = memmem::find(s.as_bytes(), pat.as_bytes())?;
    let head = s.as_bytes().get(..i)?;
    let start = head
        .iter()
        .rposition(|c| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    s.get(start..i)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Master

fn master_event(body: &str) -> Option<DovecotEvent<'_>> {
    if let Some(rest) = body.strip_prefix("Dovecot v") {
        let (version, mut r) = rest.split_once(' ')?;
        let mut build = None;
        if let Some(x) = r.strip_prefix('(') {
            let (b, after) = x.split_once(") ")?;
            build = Some(b);
            r = after;
        }
        let r = r.strip_prefix("starting up")?;
        let core_dumps_disabled = r.ends_with(" (core dumps disabled)");
        let r = r.strip_suffix(" (core dumps disabled)").unwrap_or(r);
        let protocols = r.strip_prefix(" for ").and_then(non_empty);
        return Some(DovecotEvent::Startup {
            version,
            build,
            protocols,
            core_dumps_disabled,
        });
    }
    if let Some(rest) = body.strip_prefix("Killed with signal ") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let signal = rest.get(..digits).and_then(|d| d.parse().ok());
        let by_pid = plain_field(rest, "pid").and_then(|v| v.parse().ok());
        return Some(DovecotEvent::Shutdown {
            signal,
            by_pid,
            text: body,
        });
    }
    if body.starts_with("SIGHUP received") {
        return Some(DovecotEvent::Reload { text: body });
    }
    None
}

// ---------------------------------------------------------------------------
// Login processes

/// The `login_log_format_elements` of a login line.
#[derive(Default)]
struct Elements<'a> {
    user: Option<&'a str>,
    method: Option<&'a str>,
    rip: Option<&'a str>,
    lip: Option<&'a str>,
    rport: Option<u16>,
    lport: Option<u16>,
    mpid: Option<u32>,
    session: Option<&'a str>,
    tls: bool,
    secured: bool,
    cipher: Option<&'a str>,
    tls_error: Option<&'a str>,
}

/// Messages of a login process that end a connection without a login.
const ABORT_PREFIXES: &[&str] = &[
    "Login aborted",
    "Disconnected",
    "Aborted login",
    "Remote closed connection",
    "Client has quit the connection",
    "Maximum number of connections",
    "Connection closed",
    "Inactivity",
    "Timeout while finishing login",
    "Internal login failure",
];

fn login_event<'a>(p: &Prefix<'a>, body: &'a str) -> Option<DovecotEvent<'a>> {
    let service = p.name.strip_suffix("-login").unwrap_or(p.name);
    let (msg, elems) = split_elements(body);
    let msg = msg.trim_end();
    let e = parse_elements(elems.unwrap_or(""));
    if msg == "Login" || msg == "Logged in" {
        return Some(login(service, e, None));
    }
    if let Some(rest) = msg.strip_prefix("proxy(") {
        if let Some((_, after)) = split_once(rest, "): started proxying to ") {
            let dest = after.split(' ').next().and_then(non_empty);
            return Some(login(service, e, dest));
        }
        if let Some((_, after)) = split_once(rest, "): Login failed to ") {
            return Some(aborted(
                e,
                service,
                LoginAbortReason::ProxyFailed,
                msg,
                Some(after),
                None,
                None,
                None,
            ));
        }
        return None;
    }
    if ABORT_PREFIXES.iter().any(|pre| msg.starts_with(pre)) {
        return Some(login_aborted(service, e, msg));
    }
    None
}

fn login<'a>(service: &'a str, e: Elements<'a>, proxy_to: Option<&'a str>) -> DovecotEvent<'a> {
    DovecotEvent::Login {
        service,
        user: e.user,
        method: e.method,
        rip: e.rip,
        lip: e.lip,
        rport: e.rport,
        lport: e.lport,
        mpid: e.mpid,
        tls: e.tls,
        secured: e.secured,
        cipher: e.cipher,
        session: e.session,
        proxy_to,
    }
}

#[allow(clippy::too_many_arguments)]
fn aborted<'a>(
    e: Elements<'a>,
    service: &'a str,
    reason: LoginAbortReason,
    disconnect: &'a str,
    detail: Option<&'a str>,
    code: Option<&'a str>,
    attempts: Option<u32>,
    secs: Option<u32>,
) -> DovecotEvent<'a> {
    DovecotEvent::LoginAborted {
        service,
        user: e.user,
        method: e.method,
        rip: e.rip,
        lip: e.lip,
        rport: e.rport,
        lport: e.lport,
        tls: e.tls,
        secured: e.secured,
        tls_error: e.tls_error,
        session: e.session,
        reason,
        disconnect,
        detail,
        code,
        attempts,
        secs,
    }
}

/// 2.3 `Disconnected: Inactivity (auth failed, 1 attempts in 178 secs)`,
/// 2.4 `Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed)`.
fn login_aborted<'a>(service: &'a str, e: Elements<'a>, msg: &'a str) -> DovecotEvent<'a> {
    let (v24, mut m) = match msg.strip_prefix("Login aborted: ") {
        Some(rest) => (true, rest),
        None => (false, msg),
    };
    let (mut code, mut detail) = (None, None);
    if let Some((before, inner)) = trailing_paren(m) {
        m = before;
        if v24 && is_event_code(inner) {
            code = Some(inner);
            if let Some((b2, i2)) = trailing_paren(m) {
                detail = Some(i2);
                m = b2;
            }
        } else {
            detail = Some(inner);
        }
    }
    let disconnect = m.trim_end();
    let reason = code
        .and_then(reason_from_code)
        .or_else(|| detail.and_then(reason_from_text))
        .or_else(|| reason_from_text(disconnect))
        .unwrap_or(LoginAbortReason::Other);
    let (mut attempts, mut secs) = (None, None);
    if let Some(d) = detail {
        attempts = number_before(d, " attempts").or_else(|| number_before(d, " successful auths"));
        secs = number_before(d, " secs");
    }
    if reason == LoginAbortReason::NoAuthAttempts && attempts.is_none() {
        attempts = Some(0);
    }
    aborted(e, service, reason, disconnect, detail, code, attempts, secs)
}

fn is_event_code(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// The 2.4 machine-readable reasons (`login_aborted` event `reason`).
fn reason_from_code(code: &str) -> Option<LoginAbortReason> {
    use LoginAbortReason as R;
    Some(match code {
        "auth_failed" | "authorization_failed" => R::AuthFailed,
        "no_auth_attempts" => R::NoAuthAttempts,
        "cleartext_auth_disabled" => R::CleartextDisallowed,
        "invalid_mech" => R::UnsupportedMechanism,
        "auth_waiting_client" | "auth_aborted_by_client" | "invalid_base64" => R::AuthIncomplete,
        "auth_process_not_ready" | "auth_process_comm_fail" | "temp_fail" => R::AuthUnavailable,
        "tls_handshake_not_finished" => R::TlsFailure,
        "user_disabled" | "login_disabled" | "anonymous_auth_disabled" => R::UserDisabled,
        "password_expired" => R::PasswordExpired,
        "connection_limit" => R::ConnectionLimit,
        "internal_failure" => R::InternalFailure,
        "shutting_down" | "process_full" => R::Shutdown,
        c if c.starts_with("client_ssl_") => R::TlsFailure,
        c if c.starts_with("proxy_dest_") => R::ProxyFailed,
        _ => return None,
    })
}

/// The human-readable reasons of 2.0–2.4.
fn reason_from_text(t: &str) -> Option<LoginAbortReason> {
    use LoginAbortReason as R;
    const TABLE: &[(&str, LoginAbortReason)] = &[
        ("proxy dest", R::ProxyFailed),
        ("auth failed", R::AuthFailed),
        ("authorization failed", R::AuthFailed),
        ("no auth attempts", R::NoAuthAttempts),
        ("plaintext auth", R::CleartextDisallowed),
        ("cleartext auth", R::CleartextDisallowed),
        ("unsupported auth mechanism", R::UnsupportedMechanism),
        ("didn't finish sasl auth", R::AuthIncomplete),
        ("while authenticating", R::AuthIncomplete),
        ("while finishing login", R::AuthIncomplete),
        ("aborted authentication", R::AuthIncomplete),
        ("auth aborted by client", R::AuthIncomplete),
        ("invalid base64", R::AuthIncomplete),
        ("before auth was ready", R::AuthUnavailable),
        ("auth process communication failure", R::AuthUnavailable),
        ("temporary failure", R::AuthUnavailable),
        ("tls handshake", R::TlsFailure),
        ("cert", R::TlsFailure),
        ("user disabled", R::UserDisabled),
        ("login disabled", R::UserDisabled),
        ("anonymous logins disabled", R::UserDisabled),
        ("password expired", R::PasswordExpired),
        ("connection limit", R::ConnectionLimit),
        ("maximum number of connections", R::ConnectionLimit),
        ("internal failure", R::InternalFailure),
        ("internal login failure", R::InternalFailure),
        ("successful auths", R::InternalFailure),
        ("shutting down", R::Shutdown),
        ("process_limit was hit", R::Shutdown),
    ];
    TABLE
        .iter()
        .find(|(needle, _)| contains_ci(t, needle))
        .map(|&(_, r)| r)
}

/// Splits a login line into the message and the elements after
/// `: user=<…>` (or `: method=`/`: rip=` when the user is not logged).
fn split_elements(body: &str) -> (&str, Option<&str>) {
    let at = [": user=", ": method=", ": rip="]
        .iter()
        .filter_map(|pat| memmem::find(body.as_bytes(), pat.as_bytes()))
        .min();
    match at {
        Some(i) => (&body[..i], Some(&body[i + 2..])),
        None => (body, None),
    }
}

fn parse_elements(s: &str) -> Elements<'_> {
    let mut e = Elements::default();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (key, value, next) = next_element(rest);
        rest = next;
        match key {
            "user" => e.user = non_empty(value),
            "method" => e.method = non_empty(value),
            "rip" => e.rip = non_empty(value),
            "lip" => e.lip = non_empty(value),
            "rport" => e.rport = value.parse().ok(),
            "lport" => e.lport = value.parse().ok(),
            "mpid" => e.mpid = value.parse().ok(),
            "session" => e.session = non_empty(value),
            "" => keyless_element(&mut e, value),
            _ => {}
        }
    }
    e.secured |= e.tls;
    e
}

/// One `key=value`, `key=<value>` or bare element: `(key, value, rest)`; the
/// key is empty for a bare element.
fn next_element(s: &str) -> (&str, &str, &str) {
    let b = s.as_bytes();
    let key_end = b
        .iter()
        .position(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
    if let Some(k) = key_end
        && k > 0
        && b[k] == b'='
    {
        let key = &s[..k];
        let after = &s[k + 1..];
        if let Some(inner) = after.strip_prefix('<') {
            if let Some((v, rest)) = angle_value(inner) {
                return (key, v, rest.trim_start_matches(',').trim_start());
            }
            // Unterminated `user=<…`: take up to the next separator.
            let (v, rest) = split_item(inner);
            return (key, v, rest);
        }
        let (v, rest) = split_item(after);
        return (key, v, rest);
    }
    let (v, rest) = split_item(s);
    ("", v, rest)
}

fn split_item(s: &str) -> (&str, &str) {
    split_once(s, ", ").unwrap_or((s, ""))
}

/// `TLS`, `secured`, `TLS: Disconnected`, `TLS handshaking: …`, and the
/// `%k` security string (`TLSv1.3 with cipher …`, 2.4 `(proxied)`).
fn keyless_element<'a>(e: &mut Elements<'a>, v: &'a str) {
    if v == "TLS" {
        e.tls = true;
    } else if v == "secured" {
        e.secured = true;
    } else if v.starts_with("TLSv")
        || v.starts_with("SSLv")
        || v.contains(" with cipher ")
        || v == "(proxied)"
    {
        e.cipher = Some(v);
    } else if let Some(r) = v.strip_prefix("TLS") {
        e.tls = true;
        let r = r.trim_start_matches(" handshaking");
        e.tls_error = Some(r.strip_prefix(": ").filter(|x| !x.is_empty()).unwrap_or(v));
    }
}

// ---------------------------------------------------------------------------
// Auth service

/// The request identity in `(user,ip[,master][,<session>][,sasl:mech])`.
#[derive(Clone, Copy, Default)]
struct AuthId<'a> {
    user: Option<&'a str>,
    rip: Option<&'a str>,
    session: Option<&'a str>,
    mechanism: Option<&'a str>,
    master: bool,
}

fn parse_auth_args(args: &str) -> AuthId<'_> {
    let mut id = AuthId::default();
    let mut parts = args.split(',');
    if let Some(u) = parts.next()
        && !u.is_empty()
        && u != "?"
        && u != "default"
    {
        id.user = Some(u);
    }
    for part in parts {
        if part == "master" {
            id.master = true;
        } else if let Some(s) = part.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            id.session = Some(s);
        } else if let Some(m) = part.strip_prefix("sasl:") {
            id.mechanism = non_empty(m);
        } else if id.rip.is_none() && looks_like_ip(part) {
            id.rip = Some(part);
        }
    }
    id
}

fn looks_like_ip(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
        && s.bytes().any(|c| c == b'.' || c == b':')
}

/// 2.3 `driver(args): text` → `(driver, args, text)`.
fn driver_prefix(s: &str) -> Option<(&str, &str, &str)> {
    let b = s.as_bytes();
    let end = b.iter().position(|&c| !is_name_byte(c))?;
    if end == 0 || b[end] != b'(' {
        return None;
    }
    let (args, text) = split_once(&s[end + 1..], "): ")?;
    Some((&s[..end], args, text))
}

/// What an auth message says.
struct AuthText<'a> {
    reason: AuthFailReason,
    /// The text is one of the known failure messages.
    known: bool,
    sha1: Option<&'a str>,
    next_db: bool,
}

fn classify_auth_text(text: &str) -> AuthText<'_> {
    let mut t = text.trim_end();
    let mut next_db = false;
    for suffix in [" - trying the next passdb", " - trying the next userdb"] {
        if let Some(x) = t.strip_suffix(suffix) {
            t = x.trim_end();
            next_db = true;
        }
    }
    let sha1 = split_once(t, "(SHA1 of given password: ")
        .and_then(|(_, after)| after.split(')').next())
        .and_then(non_empty);
    use AuthFailReason as R;
    let (reason, known) = if t.starts_with("Password mismatch")
        || t.starts_with("invalid credentials")
        || t.starts_with("No password returned")
    {
        (R::PasswordMismatch, true)
    } else if t.starts_with("unknown user") {
        (R::UnknownUser, true)
    } else if let Some(r) = t.strip_prefix("pam_authenticate() failed: ") {
        if contains_ci(r, "password mismatch") {
            (R::PasswordMismatch, true)
        } else if r.starts_with("User not known") {
            (R::UnknownUser, true)
        } else {
            (R::Other, true)
        }
    } else {
        (R::Other, false)
    };
    AuthText {
        reason,
        known,
        sha1,
        next_db,
    }
}

fn auth_event<'a>(p: &Prefix<'a>, level: Option<Level>, body: &'a str) -> Option<DovecotEvent<'a>> {
    // 2.4 carries the request in the process prefix.
    let mut id = p.args.map(parse_auth_args).unwrap_or_default();
    id.session = id.session.or(p.session);
    let mut driver = None;
    let mut text = body;
    if let Some((name, args, rest)) = driver_prefix(body) {
        if name.starts_with("pam_") {
            return pam_module_event(p, level, name, rest);
        }
        let a = parse_auth_args(args);
        id = AuthId {
            user: a.user.or(id.user),
            rip: a.rip.or(id.rip),
            session: a.session.or(id.session),
            mechanism: a.mechanism.or(id.mechanism),
            master: a.master || id.master,
        };
        driver = Some(name);
        text = rest;
    } else if (id.user.is_some() || id.rip.is_some())
        && let Some((name, rest)) = word_colon(body)
    {
        // 2.4: `auth(u,ip,sasl:plain)<s>: Info: sql: Password mismatch`.
        driver = Some(name);
        text = rest;
    }
    let scoped = id.user.is_some() || id.rip.is_some() || (driver.is_some() && id.session.is_some());
    let t = classify_auth_text(text);
    let is_error = level.is_some_and(Level::is_error);
    if scoped && (t.known || is_error) {
        return Some(DovecotEvent::AuthFailure {
            process: p.name,
            level,
            driver,
            user: id.user,
            rip: id.rip,
            session: id.session,
            mechanism: id.mechanism,
            master: id.master,
            reason: t.reason,
            password_sha1: t.sha1,
            next_db: t.next_db,
            text: text.trim_end(),
        });
    }
    if let Some(level) = level.filter(|l| l.is_error()) {
        return Some(DovecotEvent::AuthError {
            process: p.name,
            level,
            user: id.user,
            session: id.session,
            text: body,
        });
    }
    None
}

/// PAM's own line inside the auth process:
/// `pam_unix(dovecot:auth): authentication failure; logname= … rhost=192.0.2.7 user=x`.
fn pam_module_event<'a>(
    p: &Prefix<'a>,
    level: Option<Level>,
    module: &'a str,
    text: &'a str,
) -> Option<DovecotEvent<'a>> {
    let unknown = contains_ci(text, "user unknown");
    if !(text.starts_with("authentication failure") || unknown) {
        return None;
    }
    let user = plain_field(text, "user")
        .and_then(non_empty)
        .or_else(|| plain_field(text, "ruser").and_then(non_empty));
    Some(DovecotEvent::AuthFailure {
        process: p.name,
        level,
        driver: Some(module),
        user,
        rip: plain_field(text, "rhost").and_then(non_empty),
        session: None,
        mechanism: None,
        master: false,
        reason: if unknown {
            AuthFailReason::UnknownUser
        } else {
            AuthFailReason::Other
        },
        password_sha1: None,
        next_db: false,
        text,
    })
}

// ---------------------------------------------------------------------------
// Mail processes: delivery, Sieve, quota, session ends

fn mail_event<'a>(p: &Prefix<'a>, body: &'a str) -> Option<DovecotEvent<'a>> {
    if p.name == "lmtp" {
        if let Some(remote) = body.strip_prefix("Connect from ") {
            return Some(DovecotEvent::LmtpConnect {
                process_pid: p.pid,
                remote,
            });
        }
        if let Some(r) = body.strip_prefix("Disconnect from ") {
            let (remote, rest) = split_once(r, ": ").unwrap_or((r, ""));
            let (reason, state) = match trailing_paren(rest) {
                Some((before, inner)) if inner.starts_with("state=") => {
                    (before, inner.strip_prefix("state="))
                }
                _ => (rest, None),
            };
            return Some(DovecotEvent::LmtpDisconnect {
                process_pid: p.pid,
                remote,
                reason,
                state,
            });
        }
    }
    let user = user_of(p);
    if let Some(ev) = delivery_event(p.name, user, p.session, body) {
        return Some(ev);
    }
    if !matches!(p.name, "lmtp" | "lda" | "deliver" | "dovecot-lda")
        && (body.starts_with("Logged out") || body.starts_with("Disconnected"))
    {
        return Some(logout(p, user, body));
    }
    if is_quota_text(body) {
        return Some(DovecotEvent::QuotaExceeded {
            service: p.name,
            user,
            session: p.session,
            msgid: None,
            mailbox: None,
            sieve: false,
            text: body,
        });
    }
    None
}

fn is_quota_text(s: &str) -> bool {
    contains_ci(s, "quota exceeded")
        || contains_ci(s, "not enough disk quota")
        || contains_ci(s, "over quota")
}

/// `in=… out=…` (IMAP, Submission), `top=…` (POP3), `bytes=in/out` (Mailcow's
/// ManageSieve format) start the logout statistics.
fn logout<'a>(p: &Prefix<'a>, user: Option<&'a str>, body: &'a str) -> DovecotEvent<'a> {
    let at = [" in=", " top=", " bytes="]
        .iter()
        .filter_map(|pat| memmem::find(body.as_bytes(), pat.as_bytes()))
        .min();
    let (reason, stats) = match at {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (mut in_bytes, mut out_bytes) = (None, None);
    if let Some(s) = stats {
        in_bytes = plain_field(s, "in").and_then(|v| v.parse().ok());
        out_bytes = plain_field(s, "out").and_then(|v| v.parse().ok());
        if in_bytes.is_none()
            && let Some((i, o)) = plain_field(s, "bytes").and_then(|v| v.split_once('/'))
        {
            in_bytes = i.parse().ok();
            out_bytes = o.parse().ok();
        }
    }
    DovecotEvent::Logout {
        service: p.name,
        user,
        process_pid: p.pid,
        session: p.session,
        reason,
        in_bytes,
        out_bytes,
        stats,
    }
}

/// `[sess: ][sieve: ]msgid=<…>: <action>`.
fn delivery_event<'a>(
    service: &'a str,
    user: Option<&'a str>,
    mut session: Option<&'a str>,
    body: &'a str,
) -> Option<DovecotEvent<'a>> {
    let starts = |s: &str| s.starts_with("sieve: ") || s.starts_with("msgid=");
    let mut b = body;
    if !starts(b) {
        // 2.2 LMTP put the session id in the message: `<sess>: sieve: msgid=…`.
        let (tok, rest) = split_once(b, ": ")?;
        if tok.is_empty() || tok.contains(' ') || !starts(rest) {
            return None;
        }
        session = session.or(Some(tok));
        b = rest;
    }
    let mut sieve = false;
    if let Some(r) = b.strip_prefix("sieve: ") {
        sieve = true;
        b = r;
    }
    let r = b.strip_prefix("msgid=")?;
    let (msgid, rest) = match r.strip_prefix('<') {
        Some(x) => {
            let (v, after) = angle_value(x)?;
            (Some(v), after.strip_prefix(": ")?)
        }
        None => {
            let (v, after) = split_once(r, ": ")?;
            ((v != "unspecified").then_some(v), after)
        }
    };
    // Tolerate an action label (`fileinto action: stored mail into …`).
    let a = match split_once(rest, " action: ") {
        Some((label, after)) if !label.is_empty() && label.bytes().all(is_name_byte) => after,
        _ => rest,
    };
    let sieve_action = |action, target, mailbox| DovecotEvent::SieveAction {
        service,
        user,
        session,
        msgid,
        action,
        target,
        mailbox,
        text: a,
    };
    if let Some(mb) = a.strip_prefix("saved mail to ") {
        return Some(DovecotEvent::Delivered {
            service,
            user,
            session,
            msgid,
            mailbox: unquote(mb),
            sieve,
        });
    }
    if let Some(mb) = a.strip_prefix("stored mail into mailbox ") {
        return Some(DovecotEvent::Delivered {
            service,
            user,
            session,
            msgid,
            mailbox: unquote(mb),
            sieve: true,
        });
    }
    let failure = a
        .strip_prefix("save failed to open mailbox ")
        .or_else(|| a.strip_prefix("save failed to "))
        .map(|r| (r, sieve))
        .or_else(|| a.strip_prefix("failed to store into mailbox ").map(|r| (r, true)));
    if let Some((r, sieve)) = failure {
        let (mailbox, error) = split_mailbox_error(r);
        return Some(if is_quota_text(error) {
            DovecotEvent::QuotaExceeded {
                service,
                user,
                session,
                msgid,
                mailbox,
                sieve,
                text: error,
            }
        } else {
            DovecotEvent::DeliveryFailed {
                service,
                user,
                session,
                msgid,
                mailbox,
                sieve,
                error,
            }
        });
    }
    use SieveActionKind as K;
    if let Some(r) = a.strip_prefix("forwarded to ") {
        return Some(sieve_action(K::Forwarded, address(r), None));
    }
    if let Some(r) = a.strip_prefix("discarded duplicate forward to ") {
        return Some(sieve_action(K::Discarded, address(r), None));
    }
    if a.get(..30)
        .is_some_and(|h| h.eq_ignore_ascii_case("marked message to be discarded"))
        || a == "discarded"
        || a.starts_with("discarded message")
    {
        return Some(sieve_action(K::Discarded, None, None));
    }
    if let Some(r) = a.strip_prefix("sent vacation response to ") {
        return Some(sieve_action(K::Vacation, address(r), None));
    }
    if let Some(r) = a.strip_prefix("rejected message from ") {
        return Some(sieve_action(K::Rejected, address(r), None));
    }
    if let Some(r) = a.strip_prefix("left message in mailbox ") {
        return Some(sieve_action(K::Kept, None, Some(unquote(r))));
    }
    sieve.then(|| sieve_action(K::Other, None, None))
}

/// `'INBOX'` → `INBOX`; `'Junk' (Spam)` → `Junk`; unquoted names as they are.
fn unquote(s: &str) -> &str {
    let s = s.trim_end();
    if let Some(inner) = s.strip_prefix('\'')
        && let Some(end) = inner.rfind('\'')
    {
        return &inner[..end];
    }
    s
}

/// `'X': error` or `X: error` → `(mailbox, error)`.
fn split_mailbox_error(r: &str) -> (Option<&str>, &str) {
    if let Some(q) = r.strip_prefix('\'')
        && let Some((mb, err)) = split_once(q, "': ")
    {
        return (Some(mb), err);
    }
    match split_once(r, ": ") {
        Some((mb, err)) => (non_empty(unquote(mb)), err),
        None => (None, r),
    }
}

/// `<a@b>` (or a bare first word) at the start of `s`.
fn address(s: &str) -> Option<&str> {
    match s.strip_prefix('<') {
        Some(x) => x.find('>').map(|i| &x[..i]),
        None => s.split(' ').next().and_then(non_empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn logins() {
        // Mailcow 2.3 login_log_format_elements "user=<%u> method=%m rip=%r lip=%l mpid=%e %c %k"
        // (mailcow-dockerized data/conf/dovecot/dovecot.conf).
        check(
            parse,
            "dovecot",
            "imap-login: Login: user=<alice@example.org>, method=PLAIN, rip=192.0.2.7, lip=172.22.1.250, \
             mpid=1234, TLS, TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            json!({"event": "login", "service": "imap", "user": "alice@example.org", "method": "PLAIN",
                   "rip": "192.0.2.7", "lip": "172.22.1.250", "mpid": 1234, "tls": true, "secured": true,
                   "cipher": "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"}),
        );
        // Dovecot 2.3 default elements, own log file (level after the prefix).
        check(
            parse,
            "dovecot",
            "pop3-login: Info: Login: user=<bob>, method=PLAIN, rip=2001:db8::7, lip=2001:db8::1, \
             mpid=77, secured, session=<abcDEF12+/x>",
            json!({"event": "login", "service": "pop3", "user": "bob", "method": "PLAIN",
                   "rip": "2001:db8::7", "lip": "2001:db8::1", "mpid": 77, "tls": false, "secured": true,
                   "session": "abcDEF12+/x"}),
        );
        // Custom elements with ports.
        check(
            parse,
            "dovecot",
            "submission-login: Login: user=<carol@example.org>, method=LOGIN, rip=198.51.100.4, rport=51234, \
             lip=10.0.0.2, lport=587, mpid=9, TLS, session=<Zm9vYmFy>",
            json!({"event": "login", "service": "submission", "user": "carol@example.org", "method": "LOGIN",
                   "rip": "198.51.100.4", "rport": 51234, "lip": "10.0.0.2", "lport": 587, "mpid": 9,
                   "tls": true, "secured": true, "session": "Zm9vYmFy"}),
        );
        // 2.4.1 (rorycl/dovecot-config no-domain/log.txt).
        check(
            parse,
            "dovecot",
            "imap-login: Info: Logged in: user=<terry@another.com>, method=PLAIN, rip=172.17.0.1, \
             lip=172.17.0.2, mpid=16, session=<Cvgxbmw88rSsEQAB>",
            json!({"event": "login", "service": "imap", "user": "terry@another.com", "method": "PLAIN",
                   "rip": "172.17.0.1", "lip": "172.17.0.2", "mpid": 16, "tls": false, "secured": false,
                   "session": "Cvgxbmw88rSsEQAB"}),
        );
        // journald with the process as the tag.
        check(
            parse,
            "managesieve-login",
            "Login: user=<dave>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.1, mpid=3, TLS, session=<s1>",
            json!({"event": "login", "service": "managesieve", "user": "dave", "method": "PLAIN",
                   "rip": "192.0.2.9", "lip": "192.0.2.1", "mpid": 3, "tls": true, "secured": true,
                   "session": "s1"}),
        );
        check(
            parse,
            "imap-login",
            "imap-login: Login: user=<dave>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.1, mpid=3, TLS, session=<s1>",
            json!({"event": "login", "service": "imap", "user": "dave", "method": "PLAIN",
                   "rip": "192.0.2.9", "lip": "192.0.2.1", "mpid": 3, "tls": true, "secured": true,
                   "session": "s1"}),
        );
        // Proxy (client-common-auth.c "proxy(%s): started proxying to %s:%u").
        check(
            parse,
            "dovecot",
            "imap-login: proxy(erin): started proxying to 10.1.1.5:143: user=<erin>, method=PLAIN, \
             rip=192.0.2.3, lip=10.0.0.2, TLS, session=<p1>",
            json!({"event": "login", "service": "imap", "user": "erin", "method": "PLAIN", "rip": "192.0.2.3",
                   "lip": "10.0.0.2", "tls": true, "secured": true, "session": "p1",
                   "proxy_to": "10.1.1.5:143"}),
        );
    }

    #[test]
    fn login_aborted_23() {
        // Brief / fail2ban test corpus shapes.
        check(
            parse,
            "dovecot",
            "imap-login: Disconnected (auth failed, 3 attempts in 15 secs): user=<x@example.org>, method=PLAIN, \
             rip=203.0.113.5, lip=10.0.0.2, TLS, session=<q454Xu/vMwBZApgg>",
            json!({"event": "login_aborted", "service": "imap", "user": "x@example.org", "method": "PLAIN",
                   "rip": "203.0.113.5", "lip": "10.0.0.2", "tls": true, "secured": true,
                   "session": "q454Xu/vMwBZApgg", "reason": "auth_failed", "disconnect": "Disconnected",
                   "detail": "auth failed, 3 attempts in 15 secs", "attempts": 3, "secs": 15}),
        );
        // fail2ban tests/files/logs/dovecot.
        check(
            parse,
            "dovecot",
            "pop3-login: Aborted login (auth failed, 1 attempts in 17 secs): user=<test>, method=PLAIN, \
             rip=192.51.100.13, lip=203.0.113.17, session=<YADINsQCDs5BH8Pg>",
            json!({"event": "login_aborted", "service": "pop3", "user": "test", "method": "PLAIN",
                   "rip": "192.51.100.13", "lip": "203.0.113.17", "tls": false, "secured": false,
                   "session": "YADINsQCDs5BH8Pg", "reason": "auth_failed", "disconnect": "Aborted login",
                   "detail": "auth failed, 1 attempts in 17 secs", "attempts": 1, "secs": 17}),
        );
        check(
            parse,
            "dovecot",
            "pop3-login: Info: Disconnected: Inactivity (auth failed, 1 attempts in 178 secs): user=<suzanne>, \
             method=PLAIN, rip=117.218.51.80",
            json!({"event": "login_aborted", "service": "pop3", "user": "suzanne", "method": "PLAIN",
                   "rip": "117.218.51.80", "tls": false, "secured": false, "reason": "auth_failed",
                   "disconnect": "Disconnected: Inactivity", "detail": "auth failed, 1 attempts in 178 secs",
                   "attempts": 1, "secs": 178}),
        );
        // Mailcow issue #2111 (no auth attempts, user=<> and %k).
        check(
            parse,
            "dovecot",
            "imap-login: Aborted login (no auth attempts in 0 secs): user=<>, rip=172.22.1.6, lip=172.22.1.8, \
             TLS, TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
            json!({"event": "login_aborted", "service": "imap", "rip": "172.22.1.6", "lip": "172.22.1.8",
                   "tls": true, "secured": true,
                   "reason": "no_auth_attempts", "disconnect": "Aborted login",
                   "detail": "no auth attempts in 0 secs", "attempts": 0, "secs": 0}),
        );
        // Old 2.0 shape (fail2ban corpus).
        check(
            parse,
            "dovecot",
            "pop3-login: Disconnected: Inactivity (no auth attempts): rip=180.200.180.81, lip=113.212.99.194, TLS",
            json!({"event": "login_aborted", "service": "pop3", "rip": "180.200.180.81", "lip": "113.212.99.194",
                   "tls": true, "secured": true, "reason": "no_auth_attempts",
                   "disconnect": "Disconnected: Inactivity", "detail": "no auth attempts", "attempts": 0}),
        );
        check(
            parse,
            "dovecot",
            "pop3-login: Aborted login (tried to use disallowed plaintext auth): rip=190.210.136.21, \
             lip=113.212.99.193, session=<LgDINsQCkttVIMPg>",
            json!({"event": "login_aborted", "service": "pop3", "rip": "190.210.136.21", "lip": "113.212.99.193",
                   "tls": false, "secured": false, "session": "LgDINsQCkttVIMPg",
                   "reason": "cleartext_disallowed", "disconnect": "Aborted login",
                   "detail": "tried to use disallowed plaintext auth"}),
        );
        check(
            parse,
            "dovecot",
            "imap-login: Disconnected (no auth attempts): rip=180.189.168.166, lip=113.212.99.194, \
             TLS handshaking: Disconnected",
            json!({"event": "login_aborted", "service": "imap", "rip": "180.189.168.166", "lip": "113.212.99.194",
                   "tls": true, "secured": true, "tls_error": "Disconnected", "reason": "no_auth_attempts",
                   "disconnect": "Disconnected", "detail": "no auth attempts", "attempts": 0}),
        );
        check(
            parse,
            "dovecot",
            "pop3-login: Info: Disconnected (no auth attempts in 10 secs): user=<>, rip=176.61.137.100, \
             TLS handshaking: SSL_accept() failed: error:140760FC:SSL routines:SSL23_GET_CLIENT_HELLO:unknown protocol",
            json!({"event": "login_aborted", "service": "pop3", "rip": "176.61.137.100", "tls": true, "secured": true,
                   "tls_error": "SSL_accept() failed: error:140760FC:SSL routines:SSL23_GET_CLIENT_HELLO:unknown protocol",
                   "reason": "no_auth_attempts", "disconnect": "Disconnected",
                   "detail": "no auth attempts in 10 secs", "attempts": 0, "secs": 10}),
        );
        // fail2ban PR #2795 (submission-login).
        check(
            parse,
            "dovecot",
            "submission-login: Client has quit the connection (auth failed, 1 attempts in 2 secs): user=<user2>, \
             method=LOGIN, rip=183.136.134.133, lip=0.0.0.0",
            json!({"event": "login_aborted", "service": "submission", "user": "user2", "method": "LOGIN",
                   "rip": "183.136.134.133", "lip": "0.0.0.0", "tls": false, "secured": false,
                   "reason": "auth_failed", "disconnect": "Client has quit the connection",
                   "detail": "auth failed, 1 attempts in 2 secs", "attempts": 1, "secs": 2}),
        );
        check(
            parse,
            "dovecot",
            "imap-login: Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10): \
             user=<f@example.org>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=0, TLS, session=<m1>",
            json!({"event": "login_aborted", "service": "imap", "user": "f@example.org", "method": "PLAIN",
                   "rip": "192.0.2.1", "lip": "192.0.2.2", "tls": true, "secured": true, "session": "m1",
                   "reason": "connection_limit",
                   "disconnect": "Maximum number of connections from user+IP exceeded",
                   "detail": "mail_max_userip_connections=10"}),
        );
        check(
            parse,
            "dovecot",
            "imap-login: Disconnected (proxy dest auth failed): user=<g>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2",
            json!({"event": "login_aborted", "service": "imap", "user": "g", "method": "PLAIN", "rip": "192.0.2.1",
                   "lip": "192.0.2.2", "tls": false, "secured": false, "reason": "proxy_failed",
                   "disconnect": "Disconnected", "detail": "proxy dest auth failed"}),
        );
        // Unterminated user=< (fail2ban PR #2795 sample as posted).
        check(
            parse,
            "dovecot",
            "submission-login: Client has quit the connection (auth failed, 1 attempts in 2 secs): user=<user1, \
             method=LOGIN, rip=183.136.134.133, lip=0.0.0.0",
            json!({"event": "login_aborted", "service": "submission", "user": "user1", "method": "LOGIN",
                   "rip": "183.136.134.133", "lip": "0.0.0.0", "tls": false, "secured": false,
                   "reason": "auth_failed", "disconnect": "Client has quit the connection",
                   "detail": "auth failed, 1 attempts in 2 secs", "attempts": 1, "secs": 2}),
        );
    }

    #[test]
    fn login_aborted_24() {
        // fail2ban issue #4196 (2.4 log file).
        check(
            parse,
            "dovecot",
            "imap-login: Info: Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed): \
             user=<info@example.com>, method=PLAIN, rip=1.2.3.4, lip=2.3.4.5, TLS, session=<CvN+E95Uf4e7eEnj>",
            json!({"event": "login_aborted", "service": "imap", "user": "info@example.com", "method": "PLAIN",
                   "rip": "1.2.3.4", "lip": "2.3.4.5", "tls": true, "secured": true, "session": "CvN+E95Uf4e7eEnj",
                   "reason": "auth_failed", "disconnect": "Connection closed",
                   "detail": "auth failed, 3 attempts in 16 secs", "code": "auth_failed",
                   "attempts": 3, "secs": 16}),
        );
        // client-common.c (2.4): "no auth attempts in %u secs", event reason no_auth_attempts.
        check(
            parse,
            "dovecot",
            "pop3-login: Login aborted: Inactivity (no auth attempts in 180 secs) (no_auth_attempts): user=<>, \
             rip=198.51.100.9, lip=10.0.0.2, TLS, session=<n1>",
            json!({"event": "login_aborted", "service": "pop3", "rip": "198.51.100.9", "lip": "10.0.0.2",
                   "tls": true, "secured": true, "session": "n1", "reason": "no_auth_attempts",
                   "disconnect": "Inactivity", "detail": "no auth attempts in 180 secs",
                   "code": "no_auth_attempts", "attempts": 0, "secs": 180}),
        );
        check(
            parse,
            "dovecot",
            "imap-login: Login aborted: Connection closed (tried to use disallowed cleartext auth, 1 attempts in 0 secs) \
             (cleartext_auth_disabled): user=<h>, method=PLAIN, rip=192.0.2.5, lip=192.0.2.6, session=<c1>",
            json!({"event": "login_aborted", "service": "imap", "user": "h", "method": "PLAIN", "rip": "192.0.2.5",
                   "lip": "192.0.2.6", "tls": false, "secured": false, "session": "c1",
                   "reason": "cleartext_disallowed", "disconnect": "Connection closed",
                   "detail": "tried to use disallowed cleartext auth, 1 attempts in 0 secs",
                   "code": "cleartext_auth_disabled", "attempts": 1, "secs": 0}),
        );
        check(
            parse,
            "dovecot",
            "imap-login: Login aborted: Connection closed: SSL_accept() failed: error:0A00006C:SSL routines::bad key share \
             (disconnected during TLS handshake) (tls_handshake_not_finished): user=<>, rip=192.0.2.8, lip=192.0.2.6, \
             TLS handshaking, session=<t1>",
            json!({"event": "login_aborted", "service": "imap", "rip": "192.0.2.8", "lip": "192.0.2.6", "tls": true,
                   "secured": true, "tls_error": "TLS handshaking", "session": "t1", "reason": "tls_failure",
                   "disconnect": "Connection closed: SSL_accept() failed: error:0A00006C:SSL routines::bad key share",
                   "detail": "disconnected during TLS handshake", "code": "tls_handshake_not_finished"}),
        );
    }

    #[test]
    fn auth_failures_23() {
        // fail2ban corpus.
        check(
            parse,
            "dovecot",
            "auth: passwd-file(username,1.2.3.4): unknown user",
            json!({"event": "auth_failure", "process": "auth", "driver": "passwd-file", "user": "username",
                   "rip": "1.2.3.4", "reason": "unknown_user", "text": "unknown user"}),
        );
        // vestacp issue #1499 (log file).
        check(
            parse,
            "dovecot",
            "auth: Info: passwd-file(teste@example.org,127.0.0.1,<46Yghx5mIAB/AAAB>): Password mismatch",
            json!({"event": "auth_failure", "process": "auth", "level": "info", "driver": "passwd-file",
                   "user": "teste@example.org", "rip": "127.0.0.1", "session": "46Yghx5mIAB/AAAB",
                   "reason": "password_mismatch", "text": "Password mismatch"}),
        );
        // auth-request.c auth_request_append_password, verbose_passwords=sha1 (Mailcow,
        // docker-mailserver issue #479).
        check(
            parse,
            "dovecot",
            "auth: sql(alice@example.org,192.0.2.7,<abcDEF12>): Password mismatch \
             (SHA1 of given password: 5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8)",
            json!({"event": "auth_failure", "process": "auth", "driver": "sql", "user": "alice@example.org",
                   "rip": "192.0.2.7", "session": "abcDEF12", "reason": "password_mismatch",
                   "password_sha1": "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
                   "text": "Password mismatch (SHA1 of given password: 5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8)"}),
        );
        check(
            parse,
            "dovecot",
            "auth-worker(1234): Info: passwd-file(root,::1,master,<xYj0cH7M>): unknown user \
             (SHA1 of given password: 9d4e1e) - trying the next passdb",
            json!({"event": "auth_failure", "process": "auth-worker", "level": "info", "driver": "passwd-file",
                   "user": "root", "rip": "::1", "session": "xYj0cH7M", "master": true, "reason": "unknown_user",
                   "password_sha1": "9d4e1e", "next_db": true,
                   "text": "unknown user (SHA1 of given password: 9d4e1e) - trying the next passdb"}),
        );
        // fail2ban corpus (EL7 pam).
        check(
            parse,
            "dovecot",
            "auth-worker(304): pam(username,1.2.3.4): pam_authenticate() failed: Authentication failure \
             (password mismatch?)",
            json!({"event": "auth_failure", "process": "auth-worker", "driver": "pam", "user": "username",
                   "rip": "1.2.3.4", "reason": "password_mismatch",
                   "text": "pam_authenticate() failed: Authentication failure (password mismatch?)"}),
        );
        // fail2ban issue #1897.
        check(
            parse,
            "dovecot",
            "auth-worker(30165): pam(user@example.org,127.0.0.1,<PNHQq8pZhqIKAQGd>): pam_authenticate() failed: \
             Permission denied",
            json!({"event": "auth_failure", "process": "auth-worker", "driver": "pam", "user": "user@example.org",
                   "rip": "127.0.0.1", "session": "PNHQq8pZhqIKAQGd", "reason": "other",
                   "text": "pam_authenticate() failed: Permission denied"}),
        );
        // Mailcow issue #6511: auth-worker connection prefix before the request.
        check(
            parse,
            "dovecot",
            "auth-worker(372): Error: conn unix:auth-worker (pid=165,uid=401): auth-worker<472>: \
             lua(u@example.org,198.51.100.108,<PHq0Yhg0HO5Vi/1s>): passdb-lua: Upstream error",
            json!({"event": "auth_failure", "process": "auth-worker", "level": "error", "driver": "lua",
                   "user": "u@example.org", "rip": "198.51.100.108", "session": "PHq0Yhg0HO5Vi/1s",
                   "reason": "other", "text": "passdb-lua: Upstream error"}),
        );
        // fail2ban corpus: PAM's own line under the dovecot-auth tag.
        check(
            parse,
            "dovecot-auth",
            "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=web \
             rhost=176.61.140.224",
            json!({"event": "auth_failure", "process": "dovecot-auth", "driver": "pam_unix", "user": "web",
                   "rip": "176.61.140.224", "reason": "other",
                   "text": "authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=web rhost=176.61.140.224"}),
        );
        // docker-mailserver issue #142: auth errors without a request.
        check(
            parse,
            "dovecot",
            "auth: Error: passwd-file: open(/etc/dovecot/userdb) failed: No such file or directory",
            json!({"event": "auth_error", "process": "auth", "level": "error",
                   "text": "passwd-file: open(/etc/dovecot/userdb) failed: No such file or directory"}),
        );
    }

    #[test]
    fn auth_failures_24() {
        // fail2ban issue #4196.
        check(
            parse,
            "dovecot",
            "auth(info@example.com,1.2.3.4,sasl:login)<CvN+E95Uf4e7eEnj>: Info: sql: Password mismatch \
             (given password: XxxxXXxx123)",
            json!({"event": "auth_failure", "process": "auth", "level": "info", "driver": "sql",
                   "user": "info@example.com", "rip": "1.2.3.4", "session": "CvN+E95Uf4e7eEnj",
                   "mechanism": "login", "reason": "password_mismatch",
                   "text": "Password mismatch (given password: XxxxXXxx123)"}),
        );
        check(
            parse,
            "dovecot",
            "auth-worker(info@example.com,1.2.3.4)<4001084><CvN+E95Uf4e7eEnj>: request [12]: Info: sql: \
             Password mismatch (SHA1 of given password: 9d4e1e)",
            json!({"event": "auth_failure", "process": "auth-worker", "level": "info", "driver": "sql",
                   "user": "info@example.com", "rip": "1.2.3.4", "session": "CvN+E95Uf4e7eEnj",
                   "reason": "password_mismatch", "password_sha1": "9d4e1e",
                   "text": "Password mismatch (SHA1 of given password: 9d4e1e)"}),
        );
        // rorycl/dovecot-config two-userdbs/log.txt (named passdb).
        check(
            parse,
            "dovecot",
            "auth(tom@example.com,172.17.0.1,sasl:plain)<QwjguGw81qOsEQAB>: Info: passwd-file2: unknown user",
            json!({"event": "auth_failure", "process": "auth", "level": "info", "driver": "passwd-file2",
                   "user": "tom@example.com", "rip": "172.17.0.1", "session": "QwjguGw81qOsEQAB",
                   "mechanism": "plain", "reason": "unknown_user", "text": "unknown user"}),
        );
        // Through syslog (no Info:).
        check(
            parse,
            "dovecot",
            "auth(mallory@example.org,203.0.113.9,sasl:plain)<s9>: lua: Password mismatch \
             (SHA1 of given password: 7c4a8d)",
            json!({"event": "auth_failure", "process": "auth", "driver": "lua", "user": "mallory@example.org",
                   "rip": "203.0.113.9", "session": "s9", "mechanism": "plain", "reason": "password_mismatch",
                   "password_sha1": "7c4a8d", "text": "Password mismatch (SHA1 of given password: 7c4a8d)"}),
        );
        // rorycl/dovecot-config migration/log.txt.
        check(
            parse,
            "dovecot",
            "auth-worker(tom,172.17.0.1)<14><vFoLWg49Br+sEQAB>: request [1]: Error: pam: pam_authenticate() failed: \
             Authentication failure (/etc/pam.d/dovecot missing?)",
            json!({"event": "auth_failure", "process": "auth-worker", "level": "error", "driver": "pam", "user": "tom",
                   "rip": "172.17.0.1", "session": "vFoLWg49Br+sEQAB", "reason": "other",
                   "text": "pam_authenticate() failed: Authentication failure (/etc/pam.d/dovecot missing?)"}),
        );
        // Debug lines stay messages.
        check(
            parse,
            "dovecot",
            "auth(tom,172.17.0.1,sasl:plain)<z0a/bGw8OKKsEQAB>: Debug: user-only: Performing passdb lookup",
            json!({"event": "message", "process": "auth", "user": "tom", "session": "z0a/bGw8OKKsEQAB",
                   "level": "debug", "text": "user-only: Performing passdb lookup"}),
        );
    }

    #[test]
    fn deliveries() {
        // 2.3 LMTP (lmtp(user)<pid><session> prefix, deliver_log_format "msgid=%m: %$").
        check(
            parse,
            "dovecot",
            "lmtp(alice@example.org)<1234><kM7nKc69FGXsAwAAUi6ngw>: msgid=<20230927234206.87D03B0E8@mail.example.test>: \
             saved mail to INBOX",
            json!({"event": "delivered", "service": "lmtp", "user": "alice@example.org",
                   "session": "kM7nKc69FGXsAwAAUi6ngw", "msgid": "20230927234206.87D03B0E8@mail.example.test",
                   "mailbox": "INBOX", "sieve": false}),
        );
        // Log file with level; LDA (AlternC issue #526).
        check(
            parse,
            "dovecot",
            "lda(test@example.com)<26457><0rg3GaaeRWNZZwAA1FsZqw>: Info: msgid=<20221011124942.2081800@x>: saved mail to INBOX",
            json!({"event": "delivered", "service": "lda", "user": "test@example.com",
                   "session": "0rg3GaaeRWNZZwAA1FsZqw", "msgid": "20221011124942.2081800@x", "mailbox": "INBOX",
                   "sieve": false}),
        );
        // Pigeonhole act_store_log_status "stored mail into mailbox %s" (quoted).
        check(
            parse,
            "dovecot",
            "lmtp(alice@example.org)<1234><sess1>: sieve: msgid=<m1@example.org>: stored mail into mailbox 'Junk'",
            json!({"event": "delivered", "service": "lmtp", "user": "alice@example.org", "session": "sess1",
                   "msgid": "m1@example.org", "mailbox": "Junk", "sieve": true}),
        );
        // 2.2 shape with the session inside the message (pastebin cRejaX2g).
        check(
            parse,
            "dovecot",
            "lmtp(dominik@example.de): 93b6I/NRL1YjfgAAMW3Dmg: sieve: msgid=<562F51C3.4000000@example.at>: \
             stored mail into mailbox 'Lists.2015.10.dovecot'",
            json!({"event": "delivered", "service": "lmtp", "user": "dominik@example.de",
                   "session": "93b6I/NRL1YjfgAAMW3Dmg", "msgid": "562F51C3.4000000@example.at",
                   "mailbox": "Lists.2015.10.dovecot", "sieve": true}),
        );
        check(
            parse,
            "dovecot",
            "lda(xyz): sieve: msgid=unspecified: forwarded to <bob@example.com>",
            json!({"event": "sieve_action", "service": "lda", "user": "xyz", "action": "forwarded",
                   "target": "bob@example.com", "text": "forwarded to <bob@example.com>"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: sieve: msgid=<m5@x>: marked message to be discarded if not explicitly \
             delivered (discard action)",
            json!({"event": "sieve_action", "service": "lmtp", "user": "a@example.org", "session": "s5",
                   "msgid": "m5@x", "action": "discarded",
                   "text": "marked message to be discarded if not explicitly delivered (discard action)"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: sieve: msgid=<m6@x>: sent vacation response to <c@example.net>",
            json!({"event": "sieve_action", "service": "lmtp", "user": "a@example.org", "session": "s5",
                   "msgid": "m6@x", "action": "vacation", "target": "c@example.net",
                   "text": "sent vacation response to <c@example.net>"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: Error: sieve: msgid=<m7@x>: failed to store into mailbox 'Archive': \
             Mailbox doesn't exist: Archive",
            json!({"event": "delivery_failed", "service": "lmtp", "user": "a@example.org", "session": "s5",
                   "msgid": "m7@x", "mailbox": "Archive", "sieve": true,
                   "error": "Mailbox doesn't exist: Archive"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: msgid=<m8@x>: save failed to open mailbox Work: Permission denied",
            json!({"event": "delivery_failed", "service": "lmtp", "user": "a@example.org", "session": "s5",
                   "msgid": "m8@x", "mailbox": "Work", "sieve": false, "error": "Permission denied"}),
        );
        // Connect/disconnect (Mailcow issues #2111, #2548; lmtp-client.c).
        check(
            parse,
            "dovecot",
            "lmtp(18339): Connect from 127.0.0.1",
            json!({"event": "lmtp_connect", "process_pid": 18339, "remote": "127.0.0.1"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(113): Disconnect from 172.22.1.6: Client has quit the connection (state=MAIL FROM)",
            json!({"event": "lmtp_disconnect", "process_pid": 113, "remote": "172.22.1.6",
                   "reason": "Client has quit the connection", "state": "MAIL FROM"}),
        );
    }

    #[test]
    fn quota() {
        // mail-deliver.c "save failed to %s: %s" with the default quota_exceeded_message.
        check(
            parse,
            "dovecot",
            "lmtp(full@example.org)<9><q1>: msgid=<q@x>: save failed to INBOX: Quota exceeded (mailbox for user is full)",
            json!({"event": "quota_exceeded", "service": "lmtp", "user": "full@example.org", "session": "q1",
                   "msgid": "q@x", "mailbox": "INBOX", "sieve": false,
                   "text": "Quota exceeded (mailbox for user is full)"}),
        );
        // Pigeonhole logs quota problems with the global log (not as error).
        check(
            parse,
            "dovecot",
            "lmtp(full@example.org)<9><q2>: sieve: msgid=<q2@x>: failed to store into mailbox 'INBOX': \
             Quota exceeded (mailbox for user is full)",
            json!({"event": "quota_exceeded", "service": "lmtp", "user": "full@example.org", "session": "q2",
                   "msgid": "q2@x", "mailbox": "INBOX", "sieve": true,
                   "text": "Quota exceeded (mailbox for user is full)"}),
        );
        check(
            parse,
            "dovecot",
            "imap(full@example.org)<10><q3>: Error: Mailbox Sent: Quota exceeded (mailbox for user is full)",
            json!({"event": "quota_exceeded", "service": "imap", "user": "full@example.org", "session": "q3",
                   "sieve": false, "text": "Mailbox Sent: Quota exceeded (mailbox for user is full)"}),
        );
        // mailad issue #122.
        check(
            parse,
            "dovecot",
            "quota-warning: Fatal: master: service(quota-warning): child 4801 returned error 75",
            json!({"event": "quota_warning", "process": "quota-warning", "level": "fatal",
                   "text": "master: service(quota-warning): child 4801 returned error 75"}),
        );
    }

    #[test]
    fn logouts() {
        // Mailcow issue #2111 (2.3).
        check(
            parse,
            "dovecot",
            "imap(me@example.com)<437><MrMp3Ip91sisFgH4>: Logged out in=146 out=2974 deleted=0 expunged=0 trashed=0 \
             hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
            json!({"event": "logout", "service": "imap", "user": "me@example.com", "process_pid": 437,
                   "session": "MrMp3Ip91sisFgH4", "reason": "Logged out", "in_bytes": 146, "out_bytes": 2974,
                   "stats": "in=146 out=2974 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"}),
        );
        // 2.4.1 (rorycl/dovecot-config).
        check(
            parse,
            "dovecot",
            "imap(tom)<16><vFoLWg49Br+sEQAB>: Info: Disconnected: Connection closed (No commands sent) in=0 out=464 \
             deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
            json!({"event": "logout", "service": "imap", "user": "tom", "process_pid": 16,
                   "session": "vFoLWg49Br+sEQAB", "reason": "Disconnected: Connection closed (No commands sent)",
                   "in_bytes": 0, "out_bytes": 464,
                   "stats": "in=0 out=464 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"}),
        );
        // 2.2 (docker-mailserver issue #479).
        check(
            parse,
            "dovecot",
            "imap(name@example.de): Disconnected: Logged out in=377 out=1450",
            json!({"event": "logout", "service": "imap", "user": "name@example.de",
                   "reason": "Disconnected: Logged out", "in_bytes": 377, "out_bytes": 1450,
                   "stats": "in=377 out=1450"}),
        );
        // pop3_logout_format default "top=%t/%p, retr=%r/%b, del=%d/%m, size=%s".
        check(
            parse,
            "dovecot",
            "pop3(bob)<88><p3>: Disconnected: Logged out top=0/0, retr=1/2048, del=1/1, size=2030",
            json!({"event": "logout", "service": "pop3", "user": "bob", "process_pid": 88, "session": "p3",
                   "reason": "Disconnected: Logged out", "stats": "top=0/0, retr=1/2048, del=1/1, size=2030"}),
        );
        // Mailcow managesieve_logout_format = bytes=%i/%o.
        check(
            parse,
            "dovecot",
            "managesieve(a@example.org)<70><ms1>: Disconnected: Logged out bytes=120/440",
            json!({"event": "logout", "service": "managesieve", "user": "a@example.org", "process_pid": 70,
                   "session": "ms1", "reason": "Disconnected: Logged out", "in_bytes": 120, "out_bytes": 440,
                   "stats": "bytes=120/440"}),
        );
    }

    #[test]
    fn master() {
        check(
            parse,
            "dovecot",
            "master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, lmtp",
            json!({"event": "startup", "version": "2.3.19.1", "build": "9b53102964", "protocols": "imap, lmtp",
                   "core_dumps_disabled": false}),
        );
        // 2.4.1 log file (rorycl/dovecot-config).
        check(
            parse,
            "dovecot",
            "master: Info: Dovecot v2.4.1 (7d8c0e5759) starting up for imap, lmtp",
            json!({"event": "startup", "version": "2.4.1", "build": "7d8c0e5759", "protocols": "imap, lmtp",
                   "core_dumps_disabled": false}),
        );
        // 2.2 (pastebin 3CKaFDKV).
        check(
            parse,
            "dovecot",
            "master: Dovecot v2.2.9 starting up (core dumps disabled)",
            json!({"event": "startup", "version": "2.2.9", "core_dumps_disabled": true}),
        );
        // master/main.c sig_die.
        check(
            parse,
            "dovecot",
            "master: Warning: Killed with signal 15 (by pid=1 uid=0 code=kill)",
            json!({"event": "shutdown", "signal": 15, "by_pid": 1,
                   "text": "Killed with signal 15 (by pid=1 uid=0 code=kill)"}),
        );
        check(
            parse,
            "dovecot",
            "master: Warning: SIGHUP received - reloading configuration",
            json!({"event": "reload", "text": "SIGHUP received - reloading configuration"}),
        );
        // Mailcow issue #3211.
        check(
            parse,
            "dovecot",
            "master: Error: service(auth): Initial status notification not received in 30 seconds, killing the process",
            json!({"event": "message", "process": "master", "level": "error",
                   "text": "service(auth): Initial status notification not received in 30 seconds, killing the process"}),
        );
    }

    #[test]
    fn generic_messages() {
        // Mailcow issue #2371 (mail_log plugin).
        check(
            parse,
            "dovecot",
            "imap(me@example.de)<147><Ic7pPuqD+tW5dxAp>: expunge: box=INBOX, uid=2934, msgid=<5891@x>, size=2514",
            json!({"event": "message", "process": "imap", "user": "me@example.de", "process_pid": 147,
                   "session": "Ic7pPuqD+tW5dxAp", "text": "expunge: box=INBOX, uid=2934, msgid=<5891@x>, size=2514"}),
        );
        // Mailcow issue #2548.
        check(
            parse,
            "dovecot",
            "imap-login: Warning: Auth process not responding, delayed sending initial response (greeting): user=<>, \
             rip=192.0.2.1, lip=192.0.2.2",
            json!({"event": "message", "process": "imap-login", "level": "warning",
                   "text": "Auth process not responding, delayed sending initial response (greeting): user=<>, \
                            rip=192.0.2.1, lip=192.0.2.2"}),
        );
        check(
            parse,
            "dovecot",
            "indexer-worker(lucas)<19528><tf7kcH7M5soA:CHTVIcysSWFITAAA>: Debug: Mailbox mlr/Sys: Indexed 1 messages",
            json!({"event": "message", "process": "indexer-worker", "user": "lucas", "process_pid": 19528,
                   "session": "tf7kcH7M5soA:CHTVIcysSWFITAAA", "level": "debug",
                   "text": "Mailbox mlr/Sys: Indexed 1 messages"}),
        );
        check(
            parse,
            "dovecot",
            "Fatal: Dovecot is already running with PID 1234",
            json!({"event": "message", "process": "dovecot", "level": "fatal",
                   "text": "Dovecot is already running with PID 1234"}),
        );
        check(
            parse,
            "dovecot",
            "auth: Info: Master user logging in as lucas",
            json!({"event": "message", "process": "auth", "level": "info", "text": "Master user logging in as lucas"}),
        );
    }

    #[test]
    fn journald_process_tags() {
        // The tag is the process; the message has no process prefix.
        check(
            parse,
            "auth",
            "passwd-file(alice@example.org,192.0.2.7,<s7>): unknown user",
            json!({"event": "auth_failure", "process": "auth", "driver": "passwd-file", "user": "alice@example.org",
                   "rip": "192.0.2.7", "session": "s7", "reason": "unknown_user", "text": "unknown user"}),
        );
        check(
            parse,
            "imap",
            "Logged out in=10 out=20",
            json!({"event": "logout", "service": "imap", "reason": "Logged out", "in_bytes": 10, "out_bytes": 20,
                   "stats": "in=10 out=20"}),
        );
        check(
            parse,
            "pop3-login",
            "Info: Aborted login by logging out (no auth attempts in 0 secs): user=<>, rip=192.0.2.4, lip=192.0.2.1",
            json!({"event": "login_aborted", "service": "pop3", "rip": "192.0.2.4", "lip": "192.0.2.1", "tls": false,
                   "secured": false, "reason": "no_auth_attempts", "disconnect": "Aborted login by logging out",
                   "detail": "no auth attempts in 0 secs", "attempts": 0, "secs": 0}),
        );
    }

    #[test]
    fn more_shapes() {
        // A leading "dovecot: " repeated in the message (fail2ban corpus) and the
        // old auth(default) process name.
        check(
            parse,
            "dovecot",
            "dovecot: auth(default): pam(account@example.com,200.76.17.206): pam_authenticate() failed: \
             User not known to the underlying authentication module: 2 Time(s)",
            json!({"event": "auth_failure", "process": "auth", "driver": "pam", "user": "account@example.com",
                   "rip": "200.76.17.206", "reason": "unknown_user",
                   "text": "pam_authenticate() failed: User not known to the underlying authentication module: 2 Time(s)"}),
        );
        // Tolerated action label in front of the Sieve result (not seen in a real log).
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: sieve: msgid=<m9@x>: fileinto action: stored mail into mailbox 'Lists'",
            json!({"event": "delivered", "service": "lmtp", "user": "a@example.org", "session": "s5", "msgid": "m9@x",
                   "mailbox": "Lists", "sieve": true}),
        );
        // client-common.c (2.3): internal failure after a successful auth.
        check(
            parse,
            "dovecot",
            "imap-login: Disconnected (internal failure, 1 successful auths): user=<k>, method=PLAIN, \
             rip=192.0.2.1, lip=192.0.2.2, TLS, session=<i1>",
            json!({"event": "login_aborted", "service": "imap", "user": "k", "method": "PLAIN", "rip": "192.0.2.1",
                   "lip": "192.0.2.2", "tls": true, "secured": true, "session": "i1", "reason": "internal_failure",
                   "disconnect": "Disconnected", "detail": "internal failure, 1 successful auths", "attempts": 1}),
        );
        check(
            parse,
            "dovecot",
            "auth-worker(6543): Error: sql(bob@example.org,192.0.2.7,<s8>): Password query failed: \
             Not connected to database",
            json!({"event": "auth_failure", "process": "auth-worker", "level": "error", "driver": "sql",
                   "user": "bob@example.org", "rip": "192.0.2.7", "session": "s8", "reason": "other",
                   "text": "Password query failed: Not connected to database"}),
        );
        check(
            parse,
            "dovecot",
            "lmtp(a@example.org)<5><s5>: sieve: msgid=<m10@x>: rejected message from <spam@example.net> (spam)",
            json!({"event": "sieve_action", "service": "lmtp", "user": "a@example.org", "session": "s5",
                   "msgid": "m10@x", "action": "rejected", "target": "spam@example.net",
                   "text": "rejected message from <spam@example.net> (spam)"}),
        );
    }

    #[test]
    fn unknown_shapes() {
        for (program, message) in [
            ("dovecot", ""),
            ("dovecot", "hello world"),
            ("dovecot", "Login: user=<x>, rip=1.2.3.4"),
            ("dovecot", "imap-login Login"),
            ("dovecot", "IMAP-login: Login: user=<x>"),
            ("dovecot", "lmtp(unterminated: saved"),
            ("dovecot", "imap(user)<12: x"),
            ("dovecot", "msgid=<a@b>: saved mail to INBOX"),
            ("dovecot", "Notice: something"),
        ] {
            assert_eq!(parse(program, message), None, "{message}");
        }
    }

    const SAMPLES: &[&str] = &[
        "imap-login: Login: user=<alice@example.org>, method=PLAIN, rip=192.0.2.7, lip=10.0.0.2, mpid=1234, TLS, session=<abcDEF12>",
        "imap-login: Info: Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed): user=<i@e.com>, method=PLAIN, rip=1.2.3.4, lip=2.3.4.5, TLS, session=<CvN+E95U>",
        "pop3-login: Disconnected: Inactivity (auth failed, 1 attempts in 178 secs): user=<ivo>, method=PLAIN, rip=1.2.3.4, lip=1.1.2.2, session=<6brQWt/v>",
        "auth: sql(alice@x,192.0.2.7,<sess>): Password mismatch (SHA1 of given password: 5baa61)",
        "auth-worker(info@e.com,1.2.3.4)<4001084><CvN+E95U>: request [12]: Info: sql: Password mismatch (given password: X)",
        "auth-worker(372): Error: conn unix:auth-worker (pid=165,uid=401): auth-worker<472>: lua(u@x,1.2.3.4,<P>): passdb-lua: Upstream error",
        "lmtp(alice@x)<1234><sess>: sieve: msgid=<m@x>: failed to store into mailbox 'INBOX': Quota exceeded (mailbox for user is full)",
        "imap(tom)<16><vFoL>: Info: Disconnected: Connection closed (No commands sent) in=0 out=464 deleted=0",
        "master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, lmtp (core dumps disabled)",
        "lmtp(113): Disconnect from 172.22.1.6: Client has quit the connection (state=MAIL FROM)",
        "imap-login: Disconnected (no auth attempts in 10 secs): user=<>, rip=176.61.137.100, TLS handshaking: SSL_accept() failed: error:1:x",
        "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=web rhost=1.2.3.4",
        "lmtp(dü@exämple.org)<1><s€>: msgid=<ü@x>: saved mail to 'Entwürfe'",
    ];

    proptest! {
        #[test]
        fn never_panics_on_arbitrary(program in "\\PC{0,12}", message in "\\PC{0,200}") {
            let _ = parse(&program, &message);
        }

        #[test]
        fn never_panics_on_truncations(
            idx in 0..SAMPLES.len(),
            cut in 0usize..400,
            at in 0usize..400,
            c in any::<char>(),
            prog in 0usize..3,
        ) {
            let program = ["dovecot", "auth", "imap-login"][prog];
            for m in test_support::mutations(SAMPLES[idx], cut, at, c) {
                let _ = parse(program, &m);
            }
        }

        #[test]
        fn never_panics_on_mutations(
            idx in 0..SAMPLES.len(),
            edits in proptest::collection::vec((0usize..400, prop::sample::select(vec![
                "(", ")", "<", ">", ":", ": ", ", ", "=", "'", " ", "é", "\u{0}", "user=<", "(auth failed, ",
            ])), 1..6),
            cut in 0usize..400,
            at in 0usize..400,
            c in any::<char>(),
        ) {
            let mut s = SAMPLES[idx].to_string();
            for (pos, ins) in edits {
                let mut b = pos.min(s.len());
                while !s.is_char_boundary(b) {
                    b -= 1;
                }
                if pos % 2 == 0 {
                    s.insert_str(b, ins);
                } else if let Some(old) = s[b..].chars().next() {
                    s.replace_range(b..b + old.len_utf8(), ins);
                }
            }
            let _ = parse("dovecot", &s);
            for m in test_support::mutations(&s, cut, at, c) {
                let _ = parse("dovecot", &m);
            }
        }
    }
}
