//! Rspamd log messages: the per-message scan summary (`rspamd_task_write_log`),
//! the "loaded message" line that ties a task tag to a Message-ID and a Postfix
//! queue id, forced results (`set pre-result`, e.g. an antivirus reject or a
//! rate limit), worker crashes and restarts, and a generic record for every
//! other well-formed `<tag>; module; function: text` line.
//!
//! For security monitoring the scan summary is the spam filter's verdict on a
//! message: action (`no action` … `reject`), score, threshold and the symbols
//! that fired (Mailcow adds `MAILCOW_AUTH`, `SPOOFED_UNAUTH`,
//! `DMARC_POLICY_REJECT`, …), with the client address, the authenticated user
//! and the queue id that links the verdict to Postfix's record of the message.
//! A worker that terminates abnormally leaves mail unscanned.
//!
//! Messages arrive without the syslog tag (`rspamd[pid]: `) or, from Rspamd's
//! own log file and Mailcow's container output, without the
//! `YYYY-MM-DD HH:MM:SS #pid(process) ` prefix. When that prefix is still
//! present (Rspamd's console output captured by journald) it is skipped here.
//! The task line's layout is configurable (`log_format`); the default layouts
//! of Rspamd 1.x to 3.x are read field by field, so missing or reordered
//! optional fields only leave the corresponding value empty.

use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::parse::text::{angle_value, rsplit_once, split_once};

/// A parsed Rspamd message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RspamdEvent<'a> {
    /// The scan summary of one message (`rspamd_task_write_log`).
    Task {
        /// Task tag (`8ae27d`): shared by every line about this scan.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Logging module: `task` (normal worker), `proxy` (milter proxy),
        /// `csession` (controller, e.g. a Web UI check or a learn request).
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<&'a str>,
        /// Message-ID without angle brackets; `None` when Rspamd wrote `undef`.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        /// MTA queue id (Postfix's), when the MTA passed one.
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_id: Option<&'a str>,
        /// Client address the MTA reported (IPv4 or IPv6).
        #[serde(skip_serializing_if = "Option::is_none")]
        ip: Option<&'a str>,
        /// Authenticated (SASL) user, for submissions.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        /// Envelope sender (empty for the null sender `<>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// `T` → `true`, `F` → `false`; `None` when skipped or not logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        is_spam: Option<bool>,
        /// The scan was skipped (`S`), e.g. by settings or a size limit.
        #[serde(skip_serializing_if = "is_false")]
        skipped: bool,
        /// Action as written: `no action`, `greylist`, `add header`,
        /// `rewrite subject`, `soft reject`, `reject`, or a custom one.
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<&'a str>,
        /// Total score.
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        /// Score of the lowest spam action (`nan` in the log → `None`).
        #[serde(skip_serializing_if = "Option::is_none")]
        required_score: Option<f64>,
        /// Symbols that fired, in the logged order (highest weight first).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        symbols: Vec<Symbol<'a>>,
        /// Message size in bytes as Rspamd saw it.
        #[serde(skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
        /// Wall-clock processing time in milliseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        time_real_ms: Option<f64>,
        /// CPU time in milliseconds (Rspamd before 2.0 only).
        #[serde(skip_serializing_if = "Option::is_none")]
        time_virtual_ms: Option<f64>,
        /// Number of DNS requests made for the scan.
        #[serde(skip_serializing_if = "Option::is_none")]
        dns_requests: Option<u32>,
        /// Content digest (32 hex digits).
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<&'a str>,
        /// Envelope recipients.
        #[serde(skip_serializing_if = "Option::is_none")]
        rcpts: Option<AddrList<'a>>,
        /// MIME (header) recipients.
        #[serde(skip_serializing_if = "Option::is_none")]
        mime_rcpts: Option<AddrList<'a>>,
        /// Forced action, as written: `reject "message"; score=nan (set by module)`.
        #[serde(skip_serializing_if = "Option::is_none")]
        forced: Option<&'a str>,
        /// Settings profile applied to the scan.
        #[serde(skip_serializing_if = "Option::is_none")]
        settings_id: Option<&'a str>,
    },
    /// `rspamd_message_parse: loaded message; id: <…>; queue-id: <…>; size: …`:
    /// the first line of a scan, linking the task tag to the message.
    MessageParse {
        /// Task tag.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Logging module (`task`, `proxy`, `csession`).
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<&'a str>,
        /// Message-ID without brackets; `None` for `undef`.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        /// MTA queue id; `None` for `undef`.
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_id: Option<&'a str>,
        /// Message size in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// Content checksum.
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum: Option<&'a str>,
    },
    /// A module forced the result: `<mid>: set pre-result to 'reject' (no score):
    /// 'clamav: virus found: "…"' from clamav(1)`.
    PreResult {
        /// Task tag.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Logging module.
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<&'a str>,
        /// Message-ID as logged (without brackets).
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
        /// Forced action (`reject`, `soft reject`, `no action`, …).
        action: &'a str,
        /// The result only applies if no stronger one exists (`*least`).
        #[serde(skip_serializing_if = "is_false")]
        least: bool,
        /// Target score, when the module set one.
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        /// The module's message (e.g. the virus name, the rate limit).
        message: &'a str,
        /// The module that set it (`clamav`, `ratelimit`, `force_actions`, …).
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'a str>,
        /// Priority of the result.
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<i32>,
        /// `NOT set pre-result …; action is disabled`: the result was dropped.
        #[serde(skip_serializing_if = "is_false")]
        disabled: bool,
    },
    /// `rspamd 3.8.4 is loading configuration, build id: release`: (re)start.
    Starting {
        /// Task tag of the main process, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Rspamd version.
        version: &'a str,
        /// Build id.
        #[serde(skip_serializing_if = "Option::is_none")]
        build_id: Option<&'a str>,
    },
    /// `rspamd 1.8.3 is restarting` (SIGHUP reload).
    Restarting {
        /// Tag of the main process, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Rspamd version.
        version: &'a str,
    },
    /// `normal process 23803 terminated normally` (or `abnormally by signal: …`).
    WorkerTerminated {
        /// Tag of the main process, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Worker type: `normal`, `rspamd_proxy`, `controller`, `hs_helper`, …
        process: &'a str,
        /// Worker process id (named so that it does not clash with the
        /// line's own `pid`, the main process, in the flattened event).
        worker_pid: u32,
        /// The rest as written: `normally`, `softly`, `abnormally by signal: …`.
        how: &'a str,
        /// The worker crashed or exited with an error.
        #[serde(skip_serializing_if = "is_false")]
        abnormal: bool,
    },
    /// Any other well-formed `<tag>; module; function: text` line (Lua
    /// modules, milter, maps, ratelimit, controller, …).
    Other {
        /// Tag; `None` for `<>` (syslog lines without an id).
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        /// Logging module (`lua`, `milter`, `task`, `map`, `cfg`, …).
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<&'a str>,
        /// C function or Lua `file.lua:line` that logged it.
        #[serde(skip_serializing_if = "Option::is_none")]
        function: Option<&'a str>,
        /// The message text.
        text: &'a str,
    },
    /// A line without a tag, as processes print at startup and shutdown
    /// (`rspamd_worker_on_terminate: performing finishing actions`).
    Untagged {
        /// Logging module, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<&'a str>,
        /// Function that logged it, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        function: Option<&'a str>,
        /// The message text.
        text: &'a str,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One symbol of a scan result: `BAYES_HAM(-3.00){100.00%;}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Symbol<'a> {
    /// Symbol name (`BAYES_HAM`, `MAILCOW_AUTH`, `R_SPF_ALLOW`).
    pub name: &'a str,
    /// Score contribution, when the layout logs scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Options (`{a;b;}` → `["a", "b"]`); Rspamd ends a cut list with `...`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<&'a str>,
}

/// A comma-separated address list as Rspamd writes it (`a@x,b@y`), borrowed;
/// serialized as a JSON array. Rspamd ends a cut list with `...`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrList<'a>(&'a str);

impl<'a> AddrList<'a> {
    /// The list as written.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The addresses, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split(',').map(str::trim).filter(|a| !a.is_empty())
    }
}

impl fmt::Debug for AddrList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for AddrList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for a in self.iter() {
            seq.serialize_element(a)?;
        }
        seq.end()
    }
}

/// Rspamd's actions, for callers that act on the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `no action`: delivered unchanged.
    NoAction,
    /// `greylist`: temporarily deferred.
    Greylist,
    /// `add header`: delivered, marked as spam.
    AddHeader,
    /// `rewrite subject`: delivered, subject marked.
    RewriteSubject,
    /// `soft reject`: temporary failure (also rate limits).
    SoftReject,
    /// `reject`: refused.
    Reject,
    /// `discard`: accepted and dropped.
    Discard,
    /// `quarantine`: held.
    Quarantine,
    /// Any other (custom) action name.
    Other,
}

impl Action {
    /// Maps an action name as Rspamd writes it.
    pub fn from_name(name: &str) -> Action {
        match name {
            "no action" => Action::NoAction,
            "greylist" => Action::Greylist,
            "add header" => Action::AddHeader,
            "rewrite subject" => Action::RewriteSubject,
            "soft reject" => Action::SoftReject,
            "reject" => Action::Reject,
            "discard" => Action::Discard,
            "quarantine" => Action::Quarantine,
            _ => Action::Other,
        }
    }

    /// Whether the message was not delivered (now) because of the action.
    pub fn blocks_delivery(self) -> bool {
        matches!(
            self,
            Action::Greylist | Action::SoftReject | Action::Reject | Action::Discard | Action::Quarantine
        )
    }
}

impl<'a> RspamdEvent<'a> {
    /// The symbols of a scan summary (empty for other events).
    pub fn symbols(&self) -> &[Symbol<'a>] {
        match self {
            RspamdEvent::Task { symbols, .. } => symbols,
            _ => &[],
        }
    }

    /// The symbol `name` of a scan summary, if it fired.
    pub fn symbol(&self, name: &str) -> Option<&Symbol<'a>> {
        self.symbols().iter().find(|s| s.name == name)
    }

    /// Whether the scan summary lists the symbol `name`.
    pub fn has_symbol(&self, name: &str) -> bool {
        self.symbol(name).is_some()
    }

    /// The action of a scan summary or forced result, mapped.
    pub fn action_kind(&self) -> Option<Action> {
        match self {
            RspamdEvent::Task { action, .. } => action.map(Action::from_name),
            RspamdEvent::PreResult { action, .. } => Some(Action::from_name(action)),
            _ => None,
        }
    }

    /// The task tag, for events that carry one.
    pub fn tag(&self) -> Option<&'a str> {
        match self {
            RspamdEvent::Task { tag, .. }
            | RspamdEvent::MessageParse { tag, .. }
            | RspamdEvent::PreResult { tag, .. }
            | RspamdEvent::Starting { tag, .. }
            | RspamdEvent::Restarting { tag, .. }
            | RspamdEvent::WorkerTerminated { tag, .. }
            | RspamdEvent::Other { tag, .. } => *tag,
            RspamdEvent::Untagged { .. } => None,
        }
    }
}

/// Parses the message part of a Rspamd line; `None` when its shape is unknown.
pub fn parse<'a>(_program: &'a str, message: &'a str) -> Option<RspamdEvent<'a>> {
    let msg = strip_native_prefix(message.trim_end());
    if msg.is_empty() {
        return None;
    }
    let Some(h) = split_header(msg) else {
        // A bare text: only the main process's version lines are known.
        return lifecycle(None, msg);
    };
    if let Some(ev) = typed(&h) {
        return Some(ev);
    }
    Some(if h.tagged {
        RspamdEvent::Other {
            tag: h.tag,
            module: h.module,
            function: h.function,
            text: h.text,
        }
    } else {
        RspamdEvent::Untagged {
            module: h.module,
            function: h.function,
            text: h.text,
        }
    })
}

/// `<tag>; module; function: text` split into its parts.
struct Header<'a> {
    tagged: bool,
    tag: Option<&'a str>,
    module: Option<&'a str>,
    function: Option<&'a str>,
    text: &'a str,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Skips what Rspamd's console/file logger puts before the message when it was
/// not removed by a framing: `YYYY-MM-DD HH:MM:SS[.fff] [[level]] #pid(proc) `,
/// `#pid(proc) ` or (systemd mode) `(proc) `.
fn strip_native_prefix(s: &str) -> &str {
    let b = s.as_bytes();
    let mut rest = s;
    if b.len() >= 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-' && b[10] == b' '
    {
        let Some(hash) = s.get(..60).unwrap_or(s).find(" #") else {
            return s;
        };
        rest = &s[hash + 1..];
    }
    if let Some(after) = rest.strip_prefix('#') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return s;
        }
        rest = &after[digits..];
    }
    let Some(after) = rest.strip_prefix('(') else {
        return s;
    };
    let n = after
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        .count();
    match after[n..].strip_prefix(')') {
        Some(r) if n > 0 => {
            // `(proc): ` was the layout of Rspamd before 1.0.
            let r = r.strip_prefix(':').unwrap_or(r);
            r.strip_prefix(' ').unwrap_or(r)
        }
        _ => s,
    }
}

/// Length of a module name at the start of `s` (`task`, `lua`, `csession`).
fn module_len(s: &str) -> usize {
    s.bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        .count()
}

/// Length of a function name at the start of `s`: a C identifier or a Lua
/// location `file.lua:123`, ending right before `": "` (or `":"` at the end).
fn function_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        .count();
    // `common.lua:110: …`: a line number belongs to the function.
    if b.get(n) == Some(&b':') {
        let digits = b[n + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && b.get(n + 1 + digits) == Some(&b':') {
            n += 1 + digits;
        }
    }
    match (b.get(n), b.get(n + 1)) {
        (Some(b':'), Some(b' ') | None) => Some(n),
        _ => None,
    }
}

/// Text after `": "` (or after a trailing `":"`) at `s[n..]`.
fn after_colon(s: &str, n: usize) -> &str {
    let r = &s[n + 1..];
    r.strip_prefix(' ').unwrap_or(r)
}

fn split_header(s: &str) -> Option<Header<'_>> {
    if let Some(after) = s.strip_prefix('<') {
        let close = after.find('>')?;
        let tag = &after[..close];
        if tag.len() > 32 || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let rest = after[close + 1..].strip_prefix(';')?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let m = module_len(rest);
        let module = &rest[..m];
        let rest = rest[m..].strip_prefix(';')?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let (function, text) = if rest.starts_with(':') {
            (None, after_colon(rest, 0))
        } else {
            let n = function_len(rest)?;
            (non_empty(&rest[..n]), after_colon(rest, n))
        };
        return Some(Header {
            tagged: true,
            tag: non_empty(tag),
            module: non_empty(module),
            function,
            text,
        });
    }
    // Untagged: `module; function: text`, `function: text` or `: text`.
    if s.starts_with(':') {
        return Some(Header {
            tagged: false,
            tag: None,
            module: None,
            function: None,
            text: after_colon(s, 0),
        });
    }
    let m = module_len(s);
    let (module, rest) = match s[m..].strip_prefix("; ") {
        Some(r) if m > 0 => (Some(&s[..m]), r),
        _ => (None, s),
    };
    let n = function_len(rest)?;
    if n == 0 && module.is_none() {
        return None;
    }
    Some(Header {
        tagged: false,
        tag: None,
        module,
        function: non_empty(&rest[..n]),
        text: after_colon(rest, n),
    })
}

/// The typed events recognised by function and text.
fn typed<'a>(h: &Header<'a>) -> Option<RspamdEvent<'a>> {
    match h.function {
        Some("rspamd_task_write_log") => return Some(parse_task(h)),
        Some("rspamd_message_parse") if h.text.starts_with("loaded message") => {
            return Some(parse_message_parse(h));
        }
        _ => {}
    }
    if let Some(ev) = parse_pre_result(h) {
        return Some(ev);
    }
    lifecycle(h.tag, h.text)
}

/// `rspamd X is loading configuration, build id: Y`, `rspamd X is restarting`,
/// `<process> process <pid> terminated <how>`.
fn lifecycle<'a>(tag: Option<&'a str>, text: &'a str) -> Option<RspamdEvent<'a>> {
    if let Some(rest) = text.strip_prefix("rspamd ") {
        let (version, what) = rest.split_once(' ')?;
        if !version.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        if let Some(after) = what.strip_prefix("is loading configuration") {
            let build_id = after.strip_prefix(", build id: ").and_then(non_empty);
            return Some(RspamdEvent::Starting {
                tag,
                version,
                build_id,
            });
        }
        if what == "is restarting" {
            return Some(RspamdEvent::Restarting { tag, version });
        }
        return None;
    }
    let (process, rest) = split_once(text, " process ")?;
    if process.is_empty() || process.contains(' ') {
        return None;
    }
    let (pid, how) = rest.split_once(" terminated ")?;
    let worker_pid = pid.parse().ok()?;
    Some(RspamdEvent::WorkerTerminated {
        tag,
        process,
        worker_pid,
        how,
        abnormal: how.starts_with("abnormally"),
    })
}

/// Finds `key` in `s` where it starts `s` or follows a space, comma or `;`,
/// and returns the text after it.
fn after_key<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = s.get(from..).and_then(|r| r.find(key)) {
        let at = from + i;
        let boundary = at == 0 || matches!(s.as_bytes()[at - 1], b' ' | b',' | b';');
        if boundary {
            return Some(&s[at + key.len()..]);
        }
        from = at + key.len();
    }
    None
}

/// A plain value: up to the next comma, semicolon or whitespace.
fn plain(s: &str) -> &str {
    let end = s
        .bytes()
        .position(|c| matches!(c, b',' | b';' | b' ' | b'\t'))
        .unwrap_or(s.len());
    &s[..end]
}

/// An angle value after `key` (which ends with `<`); `undef` → `None`.
fn angle_after<'a>(s: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
    let rest = after_key(s, key)?;
    let (v, after) = angle_value(rest).unwrap_or((rest, ""));
    Some((v, after))
}

fn defined(v: &str) -> Option<&str> {
    (v != "undef").then_some(v)
}

/// A float as Rspamd prints it (`%.2f`); `nan`/`inf` → `None`.
fn finite(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A millisecond value `750.636ms`.
fn millis(s: &str) -> Option<f64> {
    finite(plain(s).strip_suffix("ms")?)
}

fn parse_task<'a>(h: &Header<'a>) -> RspamdEvent<'a> {
    let text = h.text;
    let (head, verdict) = match split_once(text, "(default: ") {
        Some((head, v)) => (head, Some(v)),
        None => (text, None),
    };
    // Head fields, in the default order; each search starts after the last hit
    // so that a Message-ID cannot be mistaken for a later key.
    let mut cur = head;
    let mut message_id = None;
    if let Some((v, after)) = angle_after(cur, "id: <") {
        message_id = defined(v);
        cur = after;
    }
    let mut queue_id = None;
    if let Some((v, after)) = angle_after(cur, "qid: <") {
        queue_id = defined(v);
        cur = after;
    }
    let mut ip = None;
    if let Some(r) = after_key(cur, "ip: ") {
        ip = non_empty(plain(r)).and_then(defined);
        cur = r;
    }
    let mut user = None;
    if let Some(r) = after_key(cur, "user: ") {
        user = non_empty(plain(r)).and_then(defined);
        cur = r;
    }
    let from = angle_after(cur, "from: <").map(|(v, _)| v);

    let mut is_spam = None;
    let mut skipped = false;
    let mut action = None;
    let mut score = None;
    let mut required_score = None;
    let mut symbols = Vec::new();
    let mut tail = verdict.unwrap_or(text);
    if let Some(v) = verdict {
        match v.as_bytes().first() {
            Some(b'T') => is_spam = Some(true),
            Some(b'F') => is_spam = Some(false),
            Some(b'S') => skipped = true,
            _ => {}
        }
        if let Some((_, r)) = v.split_once(" (")
            && let Some((a, r)) = r.split_once("): ")
        {
            action = non_empty(a);
            if let Some(r) = r.strip_prefix('[')
                && let Some((scores, r)) = r.split_once(']')
            {
                let (s, req) = scores.split_once('/').unwrap_or((scores, ""));
                score = finite(s);
                required_score = finite(req);
                if let Some(list) = r.strip_prefix(" [") {
                    let (syms, rest) = parse_symbols(list);
                    symbols = syms;
                    tail = rest;
                }
            }
        }
    }

    let len = after_key(tail, "len: ").and_then(|r| plain(r).parse().ok());
    let mut time_real_ms = None;
    let mut time_virtual_ms = None;
    if let Some(r) = after_key(tail, "time: ") {
        time_real_ms = millis(r);
        if let Some((_, after)) = r.split_once("ms real, ") {
            time_virtual_ms = split_once(after, "ms virtual").and_then(|(v, _)| finite(v));
        }
    }
    let dns_requests = after_key(tail, "dns req: ").and_then(|r| plain(r).parse().ok());
    let digest = angle_after(tail, "digest: <")
        .and_then(|(v, _)| non_empty(v))
        .and_then(defined);
    let rcpts = angle_after(tail, "rcpts: <").map(|(v, _)| AddrList(v));
    let mime_rcpts = angle_after(tail, "mime_rcpts: <")
        .or_else(|| angle_after(tail, "mime_rcpt: <"))
        .map(|(v, _)| AddrList(v));
    let forced = after_key(tail, "forced: ").map(|r| {
        let end = r
            .find(" (set by ")
            .and_then(|i| r[i..].find(')').map(|j| i + j + 1));
        match end {
            Some(e) => &r[..e],
            None => r.trim_end_matches([',', ' ']),
        }
    });
    let settings_id = after_key(tail, "settings_id: ").and_then(|r| non_empty(plain(r)));

    RspamdEvent::Task {
        tag: h.tag,
        module: h.module,
        message_id,
        queue_id,
        ip,
        user,
        from,
        is_spam,
        skipped,
        action,
        score,
        required_score,
        symbols,
        len,
        time_real_ms,
        time_virtual_ms,
        dns_requests,
        digest,
        rcpts,
        mime_rcpts,
        forced,
        settings_id,
    }
}

/// Whether a symbol of a layout with scores or options starts at `s`: a name
/// followed by `(` or `{`.
fn symbol_starts(s: &str) -> bool {
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        .count();
    n > 0 && matches!(s.as_bytes().get(n), Some(b'(' | b'{'))
}

/// Parses `NAME(score){opt;opt;},NAME2(score){}…]` and returns the symbols and
/// the text after the closing `])`. A list cut short yields what was complete.
fn parse_symbols(list: &str) -> (Vec<Symbol<'_>>, &str) {
    let mut out = Vec::new();
    let mut s = list;
    loop {
        if let Some(rest) = s.strip_prefix(']') {
            return (out, rest.strip_prefix(')').unwrap_or(rest));
        }
        let n = s
            .bytes()
            .position(|c| matches!(c, b'(' | b'{' | b',' | b']'))
            .unwrap_or(s.len());
        let name = &s[..n];
        if name.is_empty() || n == s.len() || name.contains(' ') {
            return (out, "");
        }
        s = &s[n..];
        let mut score = None;
        if let Some(r) = s.strip_prefix('(') {
            let Some(close) = r.find(')') else {
                return (out, "");
            };
            score = finite(&r[..close]);
            s = &r[close + 1..];
        }
        let mut options = Vec::new();
        if let Some(r) = s.strip_prefix('{') {
            // Options are written raw: the list ends at the first `}` that is
            // followed by the next symbol or by the end of the list.
            let bytes = r.as_bytes();
            let mut close = None;
            let mut from = 0;
            while let Some(i) = r.get(from..).and_then(|t| t.find('}')) {
                let at = from + i;
                match bytes.get(at + 1) {
                    Some(b']') if matches!(bytes.get(at + 2), Some(b')') | None) => {
                        close = Some(at);
                        break;
                    }
                    Some(b',') if symbol_starts(&r[at + 2..]) => {
                        close = Some(at);
                        break;
                    }
                    _ => from = at + 1,
                }
            }
            let Some(close) = close else {
                return (out, "");
            };
            let inner = &r[..close];
            let inner = inner.strip_suffix(';').unwrap_or(inner);
            if !inner.is_empty() {
                options.extend(inner.split(';'));
            }
            s = &r[close + 1..];
        }
        out.push(Symbol { name, score, options });
        match s.as_bytes().first() {
            Some(b',') => s = &s[1..],
            Some(b']') => {}
            _ => return (out, ""),
        }
    }
}

fn parse_message_parse<'a>(h: &Header<'a>) -> RspamdEvent<'a> {
    let t = h.text;
    RspamdEvent::MessageParse {
        tag: h.tag,
        module: h.module,
        message_id: angle_after(t, "id: <").and_then(|(v, _)| defined(v)),
        queue_id: angle_after(t, "queue-id: <")
            .and_then(|(v, _)| defined(v))
            .and_then(non_empty),
        size: after_key(t, "size: ").and_then(|r| plain(r).parse().ok()),
        checksum: angle_after(t, "checksum: <").and_then(|(v, _)| non_empty(v)),
    }
}

/// `<mid>: set pre-result to 'ACTION' [*least ](SCORE|no score): 'MESSAGE' from
/// MODULE(PRIO)`, optionally `NOT set …; action is disabled`.
fn parse_pre_result<'a>(h: &Header<'a>) -> Option<RspamdEvent<'a>> {
    let t = h.text;
    let (before, rest, disabled) = if let Some((b, r)) = split_once(t, "NOT set pre-result to '") {
        (b, r, true)
    } else {
        let (b, r) = split_once(t, "set pre-result to '")?;
        (b, r, false)
    };
    let message_id = before
        .strip_prefix('<')
        .and_then(|b| b.strip_suffix(">: "))
        .and_then(non_empty)
        .and_then(defined);
    let (action, rest) = rest.split_once("' ")?;
    let (least, rest) = match rest.strip_prefix("*least ") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.strip_prefix('(')?;
    let (score, rest) = rest.split_once("): '")?;
    let score = if score == "no score" { None } else { finite(score) };
    let (rest, disabled_tail) = match rest.strip_suffix("; action is disabled") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (message, source) = match rsplit_once(rest, "' from ") {
        Some((m, src)) => (m, Some(src)),
        None => (rest.strip_suffix('\'').unwrap_or(rest), None),
    };
    let (source, priority) = match source {
        Some(src) => match src.split_once('(') {
            Some((m, p)) => (non_empty(m), p.strip_suffix(')').and_then(|p| p.parse().ok())),
            None => (non_empty(src), None),
        },
        None => (None, None),
    };
    Some(RspamdEvent::PreResult {
        tag: h.tag,
        module: h.module,
        message_id,
        action,
        least,
        score,
        message,
        source,
        priority,
        disabled: disabled || disabled_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    // Real trace: NethServer docs (mail.rst), /work/shared/corpus/logs/mailflow-trace.
    const TRACE_PARSE: &str = "<8ae27d>; proxy; rspamd_message_parse: loaded message; id: <5afa242e.hP5p/mry+fTNNjms%no-reply@example.com>; queue-id: <A785B308622AB>; size: 2348; checksum: <b1035f4fb07162ba88053d9e38df9c93>";
    const TRACE_TASK: &str = "<8ae27d>; proxy; rspamd_task_write_log: id: <5afa242e.hP5p/mry+fTNNjms%no-reply@example.com>, qid: <A785B308622AB>, ip: 10.154.200.17, from: <no-reply@example.com>, (default: F (no action): [-0.64/20.00] [BAYES_HAM(-3.00){100.00%;},AUTH_NA(1.00){},MID_CONTAINS_FROM(1.00){},MX_INVALID(0.50){},MIME_GOOD(-0.10){text/plain;},IP_SCORE(-0.04){ip: (0.22), ipnet: 10.154.192.0/20(0.18), asn: 14061(0.23), country: US(-0.81);},ASN(0.00){asn:14061, ipnet:10.154.192.0/20, country:US;},DMARC_NA(0.00){example.com;},FROM_EQ_ENVFROM(0.00){},FROM_NO_DN(0.00){},NEURAL_HAM(-0.00){-0.656;0;},RCPT_COUNT_ONE(0.00){1;},RCVD_COUNT_TWO(0.00){2;},RCVD_NO_TLS_LAST(0.00){},R_DKIM_NA(0.00){},R_SPF_NA(0.00){},TO_DN_NONE(0.00){},TO_DOM_EQ_FROM_DOM(0.00){},TO_MATCH_ENVRCPT_ALL(0.00){}]), len: 2348, time: 750.636ms real, 5.680ms virtual, dns req: 47, digest: <b1035f4fb07162ba88053d9e38df9c93>, rcpts: <jsmith@example.com>, mime_rcpts: <jsmith@example.com>";
    // Shape: a ClamAV test of a heise.de/c't mail (rspamd 3.x, proxy worker),
    // found in public issue text; IPv6 client.
    const CLAM_PRE: &str = "<adfb84>; proxy; rspamd_add_passthrough_result: <E1pwgnI-00DQGx-NA.octo03@web.heise.de>: set pre-result to 'reject' (no score): 'clamav: virus found: \"Win.Test.EICAR_HDB-1\"' from clamav(1)";
    const CLAM_TASK: &str = "<adfb84>; proxy; rspamd_task_write_log: id: <E1pwgnI-00DQGx-NA.octo03@web.heise.de>, qid: <1BBB9602BE>, ip: 2a02:2e0:3fe:1001::beef, from: <emailcheck-robot@ct.de>, (default: T (reject): [7.31/12.00] [CLAM_VIRUS(4.00){Win.Test.EICAR_HDB-1;},MIME_BAD_EXTENSION(4.00){com;},DMARC_POLICY_ALLOW(-0.50){ct.de;none;},R_SPF_ALLOW(-0.20){+ip6:2a02:2e0:3fe:1001::/64:c;}]), len: 2061, time: 103.331ms, dns req: 20, digest: <be3242c8ff90cdcad4cc1004a224d530>, rcpts: <a@example.org,b@example.org>, mime_rcpt: <a@example.org>, ";
    // Shape: Mailcow submission (user: present, MAILCOW_AUTH), rspamd 3.x
    // default log_format (time without real/virtual, mime_rcpt singular).
    const AUTH_TASK: &str = "2023-03-14 00:00:31 #27538(rspamd_proxy) <1f2e3d>; proxy; rspamd_task_write_log: id: <20230314000029.1234@mail.example.net>, qid: <4PbC4x469Jz3tBr>, ip: 2001:db8::25, user: alice@example.net, from: <alice@example.net>, (default: F (no action): [-3.10/15.00] [MAILCOW_AUTH(-20.00){},DMARC_POLICY_ALLOW(-0.50){example.net;quarantine;},ARC_NA(0.00){},HAS_X_PRIO_THREE(0.00){3;}]), len: 1543, time: 95.102ms, dns req: 3, digest: <0a1b2c3d4e5f60718293a4b5c6d7e8f9>, rcpts: <bob@example.org>, mime_rcpt: <bob@example.org>, ";

    #[test]
    fn task_trace_line() {
        check(
            parse,
            "rspamd",
            TRACE_TASK,
            json!({
                "event": "task", "tag": "8ae27d", "module": "proxy",
                "message_id": "5afa242e.hP5p/mry+fTNNjms%no-reply@example.com",
                "queue_id": "A785B308622AB", "ip": "10.154.200.17", "from": "no-reply@example.com",
                "is_spam": false, "action": "no action", "score": -0.64, "required_score": 20.0,
                "symbols": [
                    {"name": "BAYES_HAM", "score": -3.0, "options": ["100.00%"]},
                    {"name": "AUTH_NA", "score": 1.0},
                    {"name": "MID_CONTAINS_FROM", "score": 1.0},
                    {"name": "MX_INVALID", "score": 0.5},
                    {"name": "MIME_GOOD", "score": -0.1, "options": ["text/plain"]},
                    {"name": "IP_SCORE", "score": -0.04, "options": ["ip: (0.22), ipnet: 10.154.192.0/20(0.18), asn: 14061(0.23), country: US(-0.81)"]},
                    {"name": "ASN", "score": 0.0, "options": ["asn:14061, ipnet:10.154.192.0/20, country:US"]},
                    {"name": "DMARC_NA", "score": 0.0, "options": ["example.com"]},
                    {"name": "FROM_EQ_ENVFROM", "score": 0.0},
                    {"name": "FROM_NO_DN", "score": 0.0},
                    {"name": "NEURAL_HAM", "score": -0.0, "options": ["-0.656", "0"]},
                    {"name": "RCPT_COUNT_ONE", "score": 0.0, "options": ["1"]},
                    {"name": "RCVD_COUNT_TWO", "score": 0.0, "options": ["2"]},
                    {"name": "RCVD_NO_TLS_LAST", "score": 0.0},
                    {"name": "R_DKIM_NA", "score": 0.0},
                    {"name": "R_SPF_NA", "score": 0.0},
                    {"name": "TO_DN_NONE", "score": 0.0},
                    {"name": "TO_DOM_EQ_FROM_DOM", "score": 0.0},
                    {"name": "TO_MATCH_ENVRCPT_ALL", "score": 0.0}
                ],
                "len": 2348, "time_real_ms": 750.636, "time_virtual_ms": 5.68, "dns_requests": 47,
                "digest": "b1035f4fb07162ba88053d9e38df9c93",
                "rcpts": ["jsmith@example.com"], "mime_rcpts": ["jsmith@example.com"]
            }),
        );
    }

    #[test]
    fn accessors() {
        let ev = parse("rspamd", TRACE_TASK).unwrap();
        assert!(ev.has_symbol("BAYES_HAM"));
        assert!(!ev.has_symbol("BAYES_SPAM"));
        assert_eq!(ev.symbol("MX_INVALID").and_then(|s| s.score), Some(0.5));
        assert_eq!(ev.action_kind(), Some(Action::NoAction));
        assert_eq!(ev.tag(), Some("8ae27d"));
        let ev = parse("rspamd", CLAM_TASK).unwrap();
        assert_eq!(ev.action_kind(), Some(Action::Reject));
        assert!(Action::Reject.blocks_delivery() && !Action::AddHeader.blocks_delivery());
        let RspamdEvent::Task { rcpts, .. } = ev else {
            panic!()
        };
        assert_eq!(
            rcpts.unwrap().iter().collect::<Vec<_>>(),
            ["a@example.org", "b@example.org"]
        );
    }

    #[test]
    fn task_variants() {
        let cases: Vec<(&str, Value)> = vec![
            (
                CLAM_TASK,
                json!({"event": "task", "tag": "adfb84", "module": "proxy",
                    "message_id": "E1pwgnI-00DQGx-NA.octo03@web.heise.de", "queue_id": "1BBB9602BE",
                    "ip": "2a02:2e0:3fe:1001::beef", "from": "emailcheck-robot@ct.de",
                    "is_spam": true, "action": "reject", "score": 7.31, "required_score": 12.0,
                    "symbols": [
                        {"name": "CLAM_VIRUS", "score": 4.0, "options": ["Win.Test.EICAR_HDB-1"]},
                        {"name": "MIME_BAD_EXTENSION", "score": 4.0, "options": ["com"]},
                        {"name": "DMARC_POLICY_ALLOW", "score": -0.5, "options": ["ct.de", "none"]},
                        {"name": "R_SPF_ALLOW", "score": -0.2, "options": ["+ip6:2a02:2e0:3fe:1001::/64:c"]}
                    ],
                    "len": 2061, "time_real_ms": 103.331, "dns_requests": 20,
                    "digest": "be3242c8ff90cdcad4cc1004a224d530",
                    "rcpts": ["a@example.org", "b@example.org"], "mime_rcpts": ["a@example.org"]}),
            ),
            (
                AUTH_TASK,
                json!({"event": "task", "tag": "1f2e3d", "module": "proxy",
                    "message_id": "20230314000029.1234@mail.example.net", "queue_id": "4PbC4x469Jz3tBr",
                    "ip": "2001:db8::25", "user": "alice@example.net", "from": "alice@example.net",
                    "is_spam": false, "action": "no action", "score": -3.1, "required_score": 15.0,
                    "symbols": [
                        {"name": "MAILCOW_AUTH", "score": -20.0},
                        {"name": "DMARC_POLICY_ALLOW", "score": -0.5, "options": ["example.net", "quarantine"]},
                        {"name": "ARC_NA", "score": 0.0},
                        {"name": "HAS_X_PRIO_THREE", "score": 0.0, "options": ["3"]}
                    ],
                    "len": 1543, "time_real_ms": 95.102, "dns_requests": 3,
                    "digest": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    "rcpts": ["bob@example.org"], "mime_rcpts": ["bob@example.org"]}),
            ),
            // Shape: controller check from the Web UI (csession), no qid, ham
            // with `add header` from a public issue thread (rspamd 3.6).
            (
                "<cf1261>; csession; rspamd_task_write_log: id: <157c12f9@gmail.com>, ip: 10.3.53.226, from: <a@gmail.com>, (default: T (add header): [6.10/25.00] [BAYES_SPAM(5.10){100.00%;},URI_COUNT_ODD(1.00){5;}]), len: 184445, time: 230.101ms, dns req: 21, digest: <8469e25782e3fb573cff3088525bd481>, mime_rcpt: <b@example.vn>, ",
                json!({"event": "task", "tag": "cf1261", "module": "csession", "message_id": "157c12f9@gmail.com",
                    "ip": "10.3.53.226", "from": "a@gmail.com", "is_spam": true, "action": "add header",
                    "score": 6.1, "required_score": 25.0,
                    "symbols": [{"name": "BAYES_SPAM", "score": 5.1, "options": ["100.00%"]},
                                {"name": "URI_COUNT_ODD", "score": 1.0, "options": ["5"]}],
                    "len": 184445, "time_real_ms": 230.101, "dns_requests": 21,
                    "digest": "8469e25782e3fb573cff3088525bd481", "mime_rcpts": ["b@example.vn"]}),
            ),
            // Mailcow: unauthenticated spoof of a local domain, rewrite subject.
            (
                "<77aa01>; proxy; rspamd_task_write_log: id: <undef>, qid: <4PbX>, ip: 203.0.113.9, from: <ceo@example.net>, (default: T (rewrite subject): [9.20/15.00] [SPOOFED_UNAUTH(5.00){},DMARC_POLICY_REJECT(2.00){example.net;reject;}]), len: 900, time: 12.000ms, dns req: 4, digest: <00000000000000000000000000000000>, rcpts: <bob@example.net>, ",
                json!({"event": "task", "tag": "77aa01", "module": "proxy", "queue_id": "4PbX",
                    "ip": "203.0.113.9", "from": "ceo@example.net", "is_spam": true,
                    "action": "rewrite subject", "score": 9.2, "required_score": 15.0,
                    "symbols": [{"name": "SPOOFED_UNAUTH", "score": 5.0},
                                {"name": "DMARC_POLICY_REJECT", "score": 2.0, "options": ["example.net", "reject"]}],
                    "len": 900, "time_real_ms": 12.0, "dns_requests": 4,
                    "digest": "00000000000000000000000000000000", "rcpts": ["bob@example.net"]}),
            ),
            // Greylist and soft reject (ratelimit forced action, settings id),
            // null sender; shape from a public test fixture of the forced field.
            (
                "<ab12cd>; task; rspamd_task_write_log: id: <x@y>, qid: <C3BA7E2D01>, ip: 10.42.0.238, from: <>, (default: F (soft reject): [0.60/15.00] [MID_RHS_NOT_FQDN(0.50){},RATELIMITED(0.00){user:alice;}]), len: 342, time: 256.862ms, dns req: 6, digest: <0123456789abcdef0123456789abcdef>, rcpts: <user@example.test>, forced: soft reject \"Ratelimit exceeded, try again\"; score=nan (set by ratelimit), settings_id: TEST_PROFILE",
                json!({"event": "task", "tag": "ab12cd", "module": "task", "message_id": "x@y",
                    "queue_id": "C3BA7E2D01", "ip": "10.42.0.238", "from": "", "is_spam": false,
                    "action": "soft reject", "score": 0.6, "required_score": 15.0,
                    "symbols": [{"name": "MID_RHS_NOT_FQDN", "score": 0.5},
                                {"name": "RATELIMITED", "score": 0.0, "options": ["user:alice"]}],
                    "len": 342, "time_real_ms": 256.862, "dns_requests": 6,
                    "digest": "0123456789abcdef0123456789abcdef", "rcpts": ["user@example.test"],
                    "forced": "soft reject \"Ratelimit exceeded, try again\"; score=nan (set by ratelimit)",
                    "settings_id": "TEST_PROFILE"}),
            ),
            (
                "<ab12ce>; proxy; rspamd_task_write_log: id: <g@y>, qid: <ABCDEF12>, ip: 198.51.100.7, from: <s@x.example>, (default: F (greylist): [4.10/15.00] [R_SPF_SOFTFAIL(4.10){~all;}]), len: 1000, time: 5.5ms, dns req: 1, digest: <ffffffffffffffffffffffffffffffff>, rcpts: <r@example.com>, ",
                json!({"event": "task", "tag": "ab12ce", "module": "proxy", "message_id": "g@y",
                    "queue_id": "ABCDEF12", "ip": "198.51.100.7", "from": "s@x.example", "is_spam": false,
                    "action": "greylist", "score": 4.1, "required_score": 15.0,
                    "symbols": [{"name": "R_SPF_SOFTFAIL", "score": 4.1, "options": ["~all"]}],
                    "len": 1000, "time_real_ms": 5.5, "dns_requests": 1,
                    "digest": "ffffffffffffffffffffffffffffffff", "rcpts": ["r@example.com"]}),
            ),
            // Skipped scan, nan threshold, empty symbol list.
            (
                "<0a0b0c>; task; rspamd_task_write_log: id: <undef>, ip: 127.0.0.1, (default: S (no action): [0.00/nan] []), len: 12, time: 0.1ms, dns req: 0, digest: <undef>",
                json!({"event": "task", "tag": "0a0b0c", "module": "task", "ip": "127.0.0.1",
                    "skipped": true, "action": "no action", "score": 0.0, "len": 12,
                    "time_real_ms": 0.1, "dns_requests": 0}),
            ),
            // Options containing braces, commas and `]`, and a cut option list.
            (
                "<0a0b0d>; task; rspamd_task_write_log: id: <m@x>, (default: T (reject): [20.00/15.00] [PHISHING(5.00){http://a/{x},y]z;},URIBL(2.00){a;b;...;},LAST(0.00){}]), len: 1",
                json!({"event": "task", "tag": "0a0b0d", "module": "task", "message_id": "m@x",
                    "is_spam": true, "action": "reject", "score": 20.0, "required_score": 15.0,
                    "symbols": [{"name": "PHISHING", "score": 5.0, "options": ["http://a/{x},y]z"]},
                                {"name": "URIBL", "score": 2.0, "options": ["a", "b", "..."]},
                                {"name": "LAST", "score": 0.0}],
                    "len": 1}),
            ),
            // A line cut inside the symbol list keeps the complete symbols.
            (
                "<0a0b0e>; task; rspamd_task_write_log: id: <m@x>, qid: <AB12CD34EF>, (default: T (reject): [20.00/15.00] [ONE(5.00){a;},TWO(2.0",
                json!({"event": "task", "tag": "0a0b0e", "module": "task", "message_id": "m@x",
                    "queue_id": "AB12CD34EF", "is_spam": true, "action": "reject", "score": 20.0,
                    "required_score": 15.0, "symbols": [{"name": "ONE", "score": 5.0, "options": ["a"]}]}),
            ),
            // Layout without scores/options ($symbols) and a custom field order.
            (
                "<0a0b0f>; task; rspamd_task_write_log: id: <m@x>, (default: F (no action): [1.00/15.00] [A,B_C]), len: 5",
                json!({"event": "task", "tag": "0a0b0f", "module": "task", "message_id": "m@x",
                    "is_spam": false, "action": "no action", "score": 1.0, "required_score": 15.0,
                    "symbols": [{"name": "A"}, {"name": "B_C"}], "len": 5}),
            ),
        ];
        for (msg, want) in cases {
            check(parse, "rspamd", msg, want);
        }
    }

    #[test]
    fn other_shapes() {
        let cases: Vec<(&str, Value)> = vec![
            (
                TRACE_PARSE,
                json!({"event": "message_parse", "tag": "8ae27d", "module": "proxy",
                    "message_id": "5afa242e.hP5p/mry+fTNNjms%no-reply@example.com",
                    "queue_id": "A785B308622AB", "size": 2348, "checksum": "b1035f4fb07162ba88053d9e38df9c93"}),
            ),
            // rspamd 1.x docs: no size/checksum, undef queue id.
            (
                "<ed2abb>; task; rspamd_message_parse: loaded message; id: <F66099EE@FreeBSD.org>; queue-id: <undef>",
                json!({"event": "message_parse", "tag": "ed2abb", "module": "task", "message_id": "F66099EE@FreeBSD.org"}),
            ),
            (
                CLAM_PRE,
                json!({"event": "pre_result", "tag": "adfb84", "module": "proxy",
                    "message_id": "E1pwgnI-00DQGx-NA.octo03@web.heise.de", "action": "reject",
                    "message": "clamav: virus found: \"Win.Test.EICAR_HDB-1\"", "source": "clamav", "priority": 1}),
            ),
            (
                "<a9d075>; task; rspamd_add_passthrough_result: <x@y>: set pre-result to 'soft reject' *least (5.00): 'Ratelimit exceeded' from ratelimit(2)",
                json!({"event": "pre_result", "tag": "a9d075", "module": "task", "message_id": "x@y",
                    "action": "soft reject", "least": true, "score": 5.0, "message": "Ratelimit exceeded",
                    "source": "ratelimit", "priority": 2}),
            ),
            (
                "<a9d076>; task; rspamd_add_passthrough_result: <x@y>: NOT set pre-result to 'reject' (15.00): 'no' from force_actions(0); action is disabled",
                json!({"event": "pre_result", "tag": "a9d076", "module": "task", "message_id": "x@y",
                    "action": "reject", "score": 15.0, "message": "no", "source": "force_actions",
                    "priority": 0, "disabled": true}),
            ),
            // journald capture of the console logger (rspamd 4.0.1, public blog).
            (
                "2026-05-14 05:29:11 #386895(main) <f0cb08>; main; main: rspamd 4.0.1 is loading configuration, build id: release",
                json!({"event": "starting", "tag": "f0cb08", "version": "4.0.1", "build_id": "release"}),
            ),
            // rspamd issue #2716 (reload) and #1758 (worker exits).
            (
                "<21c42e>; main; rspamd_hup_handler: rspamd 1.8.3 is restarting",
                json!({"event": "restarting", "tag": "21c42e", "version": "1.8.3"}),
            ),
            (
                "<ff7ccf>; main; rspamd_cld_handler: normal process 23803 terminated normally",
                json!({"event": "worker_terminated", "tag": "ff7ccf", "process": "normal", "worker_pid": 23803, "how": "normally"}),
            ),
            (
                "<ff7ccf>; main; rspamd_check_termination_clause: rspamd_proxy process 2063 terminated abnormally by signal: Segmentation fault and created core file",
                json!({"event": "worker_terminated", "tag": "ff7ccf", "process": "rspamd_proxy", "worker_pid": 2063,
                    "how": "abnormally by signal: Segmentation fault and created core file", "abnormal": true}),
            ),
            // Lua module line (function is file:line), milter, map.
            (
                "<adfb84>; lua; common.lua:110: clamav: result - virusfound: \"Win.Test.EICAR_HDB-1 - score: 1\"",
                json!({"event": "other", "tag": "adfb84", "module": "lua", "function": "common.lua:110",
                    "text": "clamav: result - virusfound: \"Win.Test.EICAR_HDB-1 - score: 1\""}),
            ),
            (
                "<adfb84>; milter; rspamd_milter_process_command: got connection from [2a02:2e0:3fe:1001::beef]:40878",
                json!({"event": "other", "tag": "adfb84", "module": "milter", "function": "rspamd_milter_process_command",
                    "text": "got connection from [2a02:2e0:3fe:1001::beef]:40878"}),
            ),
            // Syslog logger without an id: `<>; module; function: text`.
            (
                "<>; cfg; rspamd_config_read: loaded configuration",
                json!({"event": "other", "module": "cfg", "function": "rspamd_config_read", "text": "loaded configuration"}),
            ),
            // Untagged startup/shutdown lines (rspamd issues #3280, opnsense #466).
            (
                "2020-02-29 07:01:39 #2064(controller) rspamd_controller_on_terminate: closing rrd file: /var/lib/rspamd/rspamd.rrd",
                json!({"event": "untagged", "function": "rspamd_controller_on_terminate", "text": "closing rrd file: /var/lib/rspamd/rspamd.rrd"}),
            ),
            (
                "rspamd_worker_on_terminate: performing finishing actions",
                json!({"event": "untagged", "function": "rspamd_worker_on_terminate", "text": "performing finishing actions"}),
            ),
            (
                "rspamd 3.7.1 is loading configuration, build id: release",
                json!({"event": "starting", "version": "3.7.1", "build_id": "release"}),
            ),
            (
                "(normal) <abc123>; task; accept_socket: accepted connection from 127.0.0.1 port 36992",
                json!({"event": "other", "tag": "abc123", "module": "task", "function": "accept_socket",
                    "text": "accepted connection from 127.0.0.1 port 36992"}),
            ),
        ];
        for (msg, want) in cases {
            check(parse, "rspamd", msg, want);
        }
    }

    #[test]
    fn unknown_shapes() {
        for msg in [
            "",
            "   ",
            "hello world",
            "Waiting for redis...",
            "<not a tag>; x; y: z",
            "<abc>; task rspamd_task_write_log id",
            "<abc> task; f: x",
            "rspamd is great",
            "2023-03-14 00:00:31 something else",
        ] {
            assert_eq!(parse("rspamd", msg), None, "{msg:?}");
        }
    }

    const SAMPLES: &[&str] = &[TRACE_PARSE, TRACE_TASK, CLAM_PRE, CLAM_TASK, AUTH_TASK];

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse("rspamd", &s);
        }

        #[test]
        fn never_panics_on_rspamd_like(s in "[<>;:(){}\\[\\],/ a-zA-Z0-9.\"'-]*") {
            let _ = parse("rspamd", &s);
        }

        #[test]
        fn truncations_and_mutations(i in 0usize..5, cut in 0usize..2000, at in 0usize..2000, c in any::<char>()) {
            for m in test_support::mutations(SAMPLES[i], cut, at, c) {
                let _ = parse("rspamd", &m);
            }
        }
    }
}
