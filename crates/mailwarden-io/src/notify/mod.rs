//! Alert notifications: the sinks that tell people and other systems that
//! an alert opened (or grew, or closed).
//!
//! An [`AlertNotice`] is one alert plus what happened to it
//! ([`NoticeEvent`]), its store id when it has one, the host that sends it
//! and when. A [`Sink`] delivers notices to one destination:
//!
//! * [`json`] — one JSON object per line to any writer (stdout), flushed per
//!   line;
//! * [`webhook`] — an HTTP(S) POST of the same JSON document, signed with
//!   HMAC-SHA256, with timeouts and bounded retries;
//! * [`email`] — a message through an SMTP relay (STARTTLS by default) with
//!   the alert rendered for people and the JSON attached;
//! * [`syslog`] — an RFC 5424 message over UDP, TCP or TLS.
//!
//! A [`Notifier`] fans a notice out to all its sinks concurrently, each with
//! its own minimum severity and overall deadline, and counts per sink what
//! was sent, what failed and the last error (for `status`).
//!
//! # Attacker-controlled text
//!
//! An alert's key, facts and evidence lines come from the logs, and an
//! attacker chooses much of them (the SASL user name, the HELO, the sender
//! address). Every sink treats them as data: JSON escapes them, e-mail
//! headers get a single line without control characters, bounded; the
//! e-mail body and syslog fields show control characters as visible escapes;
//! everything is cut to a bound. No sink runs a command or expands a
//! template, and no text from an alert is ever interpreted.
//!
//! # Secrets
//!
//! Webhook signing keys and SMTP passwords are [`Secret`]s, read from a file
//! or an environment variable — never a command-line argument, which every
//! local user can read in `/proc`. A secret never appears in an error or in
//! `Debug` output.

pub mod email;
pub mod json;
pub mod syslog;
pub mod webhook;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailwarden_core::detect::{Alert, AlertSeverity, MAX_FACT_VALUES, MAX_SAMPLE_BYTES};
use mailwarden_core::time::Timestamp;
use serde::{Deserialize, Serialize};

pub use email::{EmailConfig, EmailSink, SmtpSecurity};
pub use json::{JsonSink, notice_json};
pub use syslog::{SyslogConfig, SyslogSink, SyslogTransport};
pub use webhook::{WebhookConfig, WebhookSink};

/// Longest alert key kept in a notice, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest alert message kept in a notice, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Most evidence entries kept in a notice.
pub const MAX_EVIDENCE: usize = 50;
/// Longest host name kept in a notice, in bytes.
const MAX_HOST_BYTES: usize = 255;
/// Longest short text (title, rule id, evidence position name), in bytes.
const MAX_SHORT_BYTES: usize = 256;
/// Longest last-error text kept in the counters, in bytes.
const MAX_LAST_ERROR_BYTES: usize = 2048;

/// What happened to the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// The rule fired: a new episode.
    Opened,
    /// The open episode grew (more events, a new fact).
    Updated,
    /// The open episode became worse (a higher count threshold passed).
    Escalated,
    /// The episode ended (its quiet period passed).
    Closed,
}

impl NoticeEvent {
    /// The lower-case name (`opened`, `updated`, `escalated`, `closed`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::Opened => "opened",
            NoticeEvent::Updated => "updated",
            NoticeEvent::Escalated => "escalated",
            NoticeEvent::Closed => "closed",
        }
    }
}

impl fmt::Display for NoticeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification: an alert and what happened to it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertNotice {
    /// What happened.
    pub event: NoticeEvent,
    /// The alert (bounded by [`AlertNotice::new`]).
    pub alert: Alert,
    /// The alert's id in the store, if it was stored.
    pub alert_id: Option<i64>,
    /// The host that sends the notice (the monitored mail server's name).
    pub host: String,
    /// When the notice was made.
    pub at: Timestamp,
}

impl AlertNotice {
    /// A notice made now for `alert` on `host`. The alert is cut to the
    /// notice bounds ([`MAX_KEY_BYTES`], [`MAX_MESSAGE_BYTES`],
    /// [`MAX_EVIDENCE`], short texts at 256 bytes).
    pub fn new(event: NoticeEvent, alert: Alert, host: impl Into<String>) -> AlertNotice {
        AlertNotice {
            event,
            alert: bounded(alert),
            alert_id: None,
            host: cut(&host.into(), MAX_HOST_BYTES).to_owned(),
            at: now(),
        }
    }

    /// Sets the store id.
    #[must_use]
    pub fn with_id(mut self, id: i64) -> AlertNotice {
        self.alert_id = Some(id);
        self
    }

    /// Sets the time the notice was made (tests, replays).
    #[must_use]
    pub fn at(mut self, at: Timestamp) -> AlertNotice {
        self.at = at;
        self
    }
}

/// The alert cut to the notice bounds.
fn bounded(mut a: Alert) -> Alert {
    let cut_in_place = |s: &mut String, max: usize| {
        let n = cut(s, max).len();
        s.truncate(n);
    };
    cut_in_place(&mut a.rule, MAX_SHORT_BYTES);
    cut_in_place(&mut a.title, MAX_SHORT_BYTES);
    cut_in_place(&mut a.key, MAX_KEY_BYTES);
    cut_in_place(&mut a.message, MAX_MESSAGE_BYTES);
    a.attack.truncate(16);
    for t in &mut a.attack {
        cut_in_place(t, 32);
    }
    for values in a.facts.values_mut() {
        values.truncate(MAX_FACT_VALUES + 1);
        for v in values {
            cut_in_place(v, MAX_SHORT_BYTES);
        }
    }
    if a.evidence.len() > MAX_EVIDENCE {
        a.evidence_omitted = a
            .evidence_omitted
            .saturating_add((a.evidence.len() - MAX_EVIDENCE) as u64);
        a.evidence.truncate(MAX_EVIDENCE);
    }
    for e in &mut a.evidence {
        if let Some(at) = &mut e.at {
            cut_in_place(at, MAX_SHORT_BYTES);
        }
        if let Some(text) = &mut e.text {
            cut_in_place(text, MAX_SAMPLE_BYTES);
        }
    }
    a
}

/// What a sink did with a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Attempts made (webhooks retry; the others try once).
    pub attempts: u32,
    /// What the destination answered (`HTTP 200`, `250 2.0.0 Ok: queued as …`,
    /// `612 bytes over tcp`).
    pub detail: String,
}

/// Which kind of sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON lines to a writer.
    Json,
    /// HTTP(S) POST.
    Webhook,
    /// E-mail through an SMTP relay.
    Email,
    /// RFC 5424 syslog.
    Syslog,
}

impl SinkKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Json => "json",
            SinkKind::Webhook => "webhook",
            SinkKind::Email => "email",
            SinkKind::Syslog => "syslog",
        }
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delivery failed, in classes a caller can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The sink's configuration can never work (bad URL, unreadable CA file).
    Config,
    /// The destination could not be reached (name lookup, refused, unreachable).
    Connect,
    /// The destination did not answer in time.
    Timeout,
    /// The TLS handshake failed for another reason than the certificate.
    Tls,
    /// The destination's certificate did not validate.
    Certificate,
    /// The destination answered with a redirect, which is never followed.
    Redirect,
    /// The destination refused the notice (HTTP 4xx/5xx, SMTP 4xx/5xx).
    Rejected,
    /// The destination spoke the protocol wrongly, or not at all.
    Protocol,
    /// Writing failed (the JSON lines writer).
    Io,
    /// The notifier's overall deadline for the sink passed.
    Deadline,
}

/// A failed delivery: which sink, where to, what went wrong and how to fix it.
/// Never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{sink} sink to {destination}: {problem}{}; fix: {fix}", attempts_note(*.attempts))]
pub struct NotifyError {
    /// The kind of sink.
    pub sink: SinkKind,
    /// Where it sends (URL without query, relay, collector address, `stdout`).
    pub destination: String,
    /// The class of failure.
    pub kind: FailureKind,
    /// What went wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
    /// Attempts made before giving up (0 when nothing was tried).
    pub attempts: u32,
}

fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

impl NotifyError {
    /// A new error with one attempt.
    pub(crate) fn new(
        sink: SinkKind,
        destination: impl Into<String>,
        kind: FailureKind,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> NotifyError {
        NotifyError {
            sink,
            destination: destination.into(),
            kind,
            problem: problem.into(),
            fix: fix.into(),
            attempts: 1,
        }
    }

    /// A configuration error (nothing was tried).
    pub(crate) fn config(
        sink: SinkKind,
        destination: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> NotifyError {
        NotifyError {
            attempts: 0,
            ..NotifyError::new(sink, destination, FailureKind::Config, problem, fix)
        }
    }
}

/// A secret (webhook signing key, SMTP password). Read it from a file or an
/// environment variable; it is never shown by `Debug` or in errors, and its
/// bytes are overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// A secret could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

impl Secret {
    /// Reads a secret from a file; one trailing line end is removed. The
    /// file should be readable by the service user only.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let bytes = std::fs::read(path).map_err(|e| {
            SecretError(format!(
                "reading the secret file {}: {e}; fix: create it (mode 0600, owned by the service user) \
                 with the secret on one line",
                path.display()
            ))
        })?;
        Secret::checked(bytes, &format!("the secret file {}", path.display()))
    }

    /// Reads a secret from the environment variable `name`; one trailing
    /// line end is removed.
    pub fn from_env(name: &str) -> Result<Secret, SecretError> {
        let value = std::env::var_os(name).ok_or_else(|| {
            SecretError(format!(
                "the environment variable {name} is not set; fix: set it (e.g. in the systemd unit's \
                 EnvironmentFile=) or use a secret file"
            ))
        })?;
        Secret::checked(
            value.into_encoded_bytes(),
            &format!("the environment variable {name}"),
        )
    }

    /// A secret from bytes the caller already holds (tests, a secret store).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    fn checked(mut bytes: Vec<u8>, what: &str) -> Result<Secret, SecretError> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretError(format!("{what} is empty; fix: put the secret in it")));
        }
        Ok(Secret(bytes))
    }

    /// The secret's bytes (only for the code that uses it).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

/// A notification destination.
#[derive(Debug)]
pub enum Sink {
    /// JSON lines to a writer.
    Json(JsonSink),
    /// HTTP(S) POST, signed.
    Webhook(WebhookSink),
    /// E-mail through an SMTP relay.
    Email(EmailSink),
    /// RFC 5424 syslog.
    Syslog(SyslogSink),
}

impl Sink {
    /// The kind of sink.
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Json(_) => SinkKind::Json,
            Sink::Webhook(_) => SinkKind::Webhook,
            Sink::Email(_) => SinkKind::Email,
            Sink::Syslog(_) => SinkKind::Syslog,
        }
    }

    /// Where it sends, for people (no secret, no URL query).
    pub fn destination(&self) -> String {
        match self {
            Sink::Json(s) => s.destination().to_owned(),
            Sink::Webhook(s) => s.destination().to_owned(),
            Sink::Email(s) => s.destination().to_owned(),
            Sink::Syslog(s) => s.destination().to_owned(),
        }
    }

    /// Delivers one notice.
    pub async fn send(&self, notice: &AlertNotice) -> Result<Delivery, NotifyError> {
        match self {
            Sink::Json(s) => s.send(notice),
            Sink::Webhook(s) => s.send(notice).await,
            Sink::Email(s) => s.send(notice).await,
            Sink::Syslog(s) => s.send(notice).await,
        }
    }
}

/// How the notifier uses one sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkOptions {
    /// A name for status output (`ops-webhook`, `oncall-mail`).
    pub name: String,
    /// Notices of alerts below this severity are skipped.
    pub min_severity: AlertSeverity,
    /// The sink's whole delivery (all retries included) must end within
    /// this; then it fails with [`FailureKind::Deadline`]. Default 60 s.
    pub deadline: Duration,
}

impl SinkOptions {
    /// Options for a sink called `name`: every severity, 60 s deadline.
    pub fn new(name: impl Into<String>) -> SinkOptions {
        SinkOptions {
            name: name.into(),
            min_severity: AlertSeverity::Informational,
            deadline: Duration::from_secs(60),
        }
    }

    /// Sets the minimum severity.
    #[must_use]
    pub fn min_severity(mut self, severity: AlertSeverity) -> SinkOptions {
        self.min_severity = severity;
        self
    }

    /// Sets the overall deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> SinkOptions {
        self.deadline = deadline;
        self
    }
}

/// What happened at one sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Sent(Delivery),
    /// Failed (counted, and kept as the sink's last error).
    Failed(NotifyError),
    /// The alert is below the sink's minimum severity.
    Skipped,
}

/// One sink's result for one notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkResult {
    /// The sink's name.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Counters of one sink, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// The kind of sink.
    pub kind: SinkKind,
    /// Where it sends.
    pub destination: String,
    /// Its minimum severity.
    pub min_severity: AlertSeverity,
    /// Notices delivered.
    pub sent: u64,
    /// Notices that failed.
    pub failed: u64,
    /// Notices below the minimum severity.
    pub skipped: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<Timestamp>,
    /// When the last notice was delivered.
    pub last_sent_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    last: Mutex<Last>,
}

#[derive(Debug, Default)]
struct Last {
    error: Option<(String, Timestamp)>,
    sent: Option<Timestamp>,
}

#[derive(Debug)]
struct Entry {
    sink: Sink,
    opts: SinkOptions,
    counters: Counters,
}

/// Sends each notice to every sink at once, each under its own deadline and
/// severity filter, and keeps per-sink counters.
#[derive(Debug, Default)]
pub struct Notifier {
    entries: Vec<Entry>,
}

impl Notifier {
    /// A notifier without sinks.
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Adds a sink.
    pub fn add(&mut self, sink: Sink, opts: SinkOptions) -> &mut Notifier {
        self.entries.push(Entry {
            sink,
            opts,
            counters: Counters::default(),
        });
        self
    }

    /// How many sinks there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Delivers `notice` to every sink concurrently; returns each sink's
    /// result, in the order the sinks were added. A slow or failing sink
    /// delays no other beyond its own deadline.
    pub async fn notify(&self, notice: &AlertNotice) -> Vec<SinkResult> {
        let sends = self.entries.iter().map(|e| async move {
            let outcome = if notice.alert.severity < e.opts.min_severity {
                e.counters.skipped.fetch_add(1, Ordering::Relaxed);
                Outcome::Skipped
            } else {
                match tokio::time::timeout(e.opts.deadline, e.sink.send(notice)).await {
                    Ok(Ok(d)) => Outcome::Sent(d),
                    Ok(Err(err)) => Outcome::Failed(err),
                    Err(_) => Outcome::Failed(NotifyError {
                        attempts: 0,
                        ..NotifyError::new(
                            e.sink.kind(),
                            e.sink.destination(),
                            FailureKind::Deadline,
                            format!(
                                "not delivered within the sink's deadline of {}",
                                fmt_duration(e.opts.deadline)
                            ),
                            "make the destination answer faster, or give the sink a longer deadline \
                             (or fewer retries)",
                        )
                    }),
                }
            };
            match &outcome {
                Outcome::Sent(_) => {
                    e.counters.sent.fetch_add(1, Ordering::Relaxed);
                    e.counters.lock().sent = Some(now());
                }
                Outcome::Failed(err) => {
                    e.counters.failed.fetch_add(1, Ordering::Relaxed);
                    let text = cut(&err.to_string(), MAX_LAST_ERROR_BYTES).to_owned();
                    tracing::warn!(sink = %e.opts.name, "notification failed: {text}");
                    e.counters.lock().error = Some((text, now()));
                }
                Outcome::Skipped => {}
            }
            SinkResult {
                name: e.opts.name.clone(),
                outcome,
            }
        });
        futures_util::future::join_all(sends).await
    }

    /// Every sink's counters.
    pub fn status(&self) -> Vec<SinkStatus> {
        self.entries
            .iter()
            .map(|e| {
                let last = e.counters.lock();
                SinkStatus {
                    name: e.opts.name.clone(),
                    kind: e.sink.kind(),
                    destination: e.sink.destination(),
                    min_severity: e.opts.min_severity,
                    sent: e.counters.sent.load(Ordering::Relaxed),
                    failed: e.counters.failed.load(Ordering::Relaxed),
                    skipped: e.counters.skipped.load(Ordering::Relaxed),
                    last_error: last.error.as_ref().map(|(t, _)| t.clone()),
                    last_error_at: last.error.as_ref().map(|(_, at)| *at),
                    last_sent_at: last.sent,
                }
            })
            .collect()
    }
}

impl Counters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The current time.
pub(crate) fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_unix_micros(micros)
}

/// `1.5 s`, `250 ms`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Characters that reorder or hide text when shown (bidirectional
/// overrides and isolates, zero-width characters, line and paragraph
/// separators, the byte-order mark).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}')
}

/// One line of text for a header or a subject: control and invisible
/// formatting characters removed (line ends and tabs become spaces), runs of
/// spaces collapsed, trimmed, at most `max` characters (`…` when cut).
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut n = 0;
    let mut space = false;
    for c in s.chars() {
        let c = match c {
            '\r' | '\n' | '\t' => ' ',
            c if c.is_control() || is_invisible_format(c) => continue,
            c => c,
        };
        if c == ' ' {
            if out.is_empty() || space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if n == max {
            out.truncate(out.trim_end().len());
            out.push('…');
            return out;
        }
        out.push(c);
        n += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// Text for people, safe to show: control and invisible formatting
/// characters as visible escapes (`\x0a`, `\u{202e}`), at most `max` bytes of
/// the input.
pub(crate) fn escape_text(s: &str, max: usize) -> Cow<'_, str> {
    let s = cut(s, max);
    if !s
        .chars()
        .any(|c| (c.is_control() && c != '\t') || is_invisible_format(c))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Random-enough numbers for jitter and delivery ids (splitmix64 seeded
/// from the clock, the process id and a counter); not for secrets.
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Jitter(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fraction in [0.5, 1).
    pub(crate) fn half_to_one(&mut self) -> f64 {
        0.5 + 0.5 * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// 32 hex digits.
    pub(crate) fn id(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

/// A TLS connector and the name the server's certificate must carry.
#[derive(Clone)]
pub(crate) struct TlsClient {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: rustls::pki_types::ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The RFC 5424 severity of an alert (critical → crit, high → err, medium →
/// warning, low → notice, informational → info).
pub fn syslog_severity(s: AlertSeverity) -> mailwarden_core::event::Severity {
    use mailwarden_core::event::Severity;
    match s {
        AlertSeverity::Critical => Severity::Crit,
        AlertSeverity::High => Severity::Err,
        AlertSeverity::Medium => Severity::Warning,
        AlertSeverity::Low => Severity::Notice,
        AlertSeverity::Informational => Severity::Info,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic alert for the sink tests.
    pub(crate) fn alert(key: &str) -> Alert {
        // Built from JSON, as a store or another process would hand it over.
        serde_json::from_value(serde_json::json!({
            "rule": "auth-bruteforce-ip",
            "title": "Password guessing from one address",
            "severity": "high",
            "attack": ["T1110.001"],
            "key": key,
            "first": "2024-03-14T08:14:00.000000+01:00",
            "last": "2024-03-14T09:40:00.000000+01:00",
            "count": 412,
            "message": "203.0.113.5 failed 412 logins",
            "facts": {"user": ["alice@example.org", "admin"]},
            "evidence": [{
                "kind": "line",
                "position": {"source": 0, "line": 1234},
                "at": "/var/log/mail.log:1234",
                "ts": "2024-03-14T08:14:00.000000+01:00",
                "text": "Mar 14 08:14:00 mx1 postfix/smtpd[77]: warning: unknown[203.0.113.5]: SASL LOGIN authentication failed"
            }],
            "evidence_omitted": 411
        }))
        .expect("a valid alert")
    }

    pub(crate) fn notice(key: &str) -> AlertNotice {
        AlertNotice::new(NoticeEvent::Opened, alert(key), "mx1.example.org")
            .with_id(17)
            .at(Timestamp {
                unix_micros: 1_710_405_600_000_000,
                offset_secs: 0,
            })
    }

    #[test]
    fn one_line_text() {
        let check = |input: &str, max: usize, want: &str| assert_eq!(one_line(input, max), want, "{input:?}");
        check("ip=203.0.113.5", 100, "ip=203.0.113.5");
        check("a\r\nBcc: x@y\r\n", 100, "a Bcc: x@y");
        check("  a \t\t b  ", 100, "a b");
        check("a\u{1b}[2Jb\u{7f}c\u{9b}d", 100, "a[2Jbcd");
        check("evil\u{202e}gpj.exe", 100, "evilgpj.exe");
        check("abcdef", 3, "abc…");
        check("ab    cdef", 3, "ab…");
        check("", 3, "");
    }

    #[test]
    fn escaped_text() {
        assert!(matches!(
            escape_text("plain\ttext", 100),
            Cow::Borrowed("plain\ttext")
        ));
        assert_eq!(
            escape_text("a\nb\u{1b}c\u{202e}d", 100),
            "a\\x0ab\\x1bc\\u{202e}d"
        );
        assert_eq!(escape_text("aé", 2), "a");
    }

    #[test]
    fn notices_are_bounded() {
        let mut a = alert(&"k".repeat(5000));
        a.message = "m".repeat(10_000);
        a.evidence = (0..80).map(|_| a.evidence[0].clone()).collect();
        let n = AlertNotice::new(NoticeEvent::Opened, a, "h".repeat(300));
        assert_eq!(n.alert.key.len(), MAX_KEY_BYTES);
        assert_eq!(n.alert.message.len(), MAX_MESSAGE_BYTES);
        assert_eq!(n.alert.evidence.len(), MAX_EVIDENCE);
        assert_eq!(n.alert.evidence_omitted, 411 + 30);
        assert_eq!(n.host.len(), 255);
    }

    #[test]
    fn secrets_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hunter2-very-secret\r\n").unwrap();
        let s = Secret::from_file(&path).unwrap();
        assert_eq!(s.expose(), b"hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        std::fs::write(&path, "\n").unwrap();
        let e = Secret::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = Secret::from_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("fix:"), "{e}");
        let e = Secret::from_env("MAILWARDEN_TEST_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not set"), "{e}");
    }

    #[test]
    fn severities_map_to_syslog() {
        use mailwarden_core::event::Severity;
        assert_eq!(syslog_severity(AlertSeverity::Critical), Severity::Crit);
        assert_eq!(syslog_severity(AlertSeverity::High), Severity::Err);
        assert_eq!(syslog_severity(AlertSeverity::Medium), Severity::Warning);
        assert_eq!(syslog_severity(AlertSeverity::Low), Severity::Notice);
        assert_eq!(syslog_severity(AlertSeverity::Informational), Severity::Info);
    }

    #[test]
    fn errors_read_well() {
        let e = NotifyError {
            attempts: 3,
            ..NotifyError::new(
                SinkKind::Webhook,
                "https://hooks.example.org/x",
                FailureKind::Rejected,
                "HTTP 503",
                "check the receiver",
            )
        };
        assert_eq!(
            e.to_string(),
            "webhook sink to https://hooks.example.org/x: HTTP 503 (after 3 attempts); fix: check the receiver"
        );
    }

    #[tokio::test]
    async fn notifier_filters_counts_and_meets_deadlines() {
        let buf = json::SharedBuffer::default();
        let mut n = Notifier::new();
        n.add(
            Sink::Json(JsonSink::new(buf.clone(), "buffer")),
            SinkOptions::new("all"),
        );
        n.add(
            Sink::Json(JsonSink::new(buf.clone(), "buffer")),
            SinkOptions::new("critical-only").min_severity(AlertSeverity::Critical),
        );
        n.add(
            Sink::Json(JsonSink::new(json::FailingWriter, "broken")),
            SinkOptions::new("broken"),
        );
        let results = n.notify(&notice("ip=203.0.113.5")).await;
        let names: Vec<(&str, bool, bool)> = results
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    matches!(r.outcome, Outcome::Sent(_)),
                    matches!(r.outcome, Outcome::Skipped),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("all", true, false),
                ("critical-only", false, true),
                ("broken", false, false)
            ]
        );
        assert_eq!(buf.text().lines().count(), 1);
        let status = n.status();
        assert_eq!((status[0].sent, status[0].failed, status[0].skipped), (1, 0, 0));
        assert_eq!((status[1].sent, status[1].failed, status[1].skipped), (0, 0, 1));
        assert_eq!((status[2].sent, status[2].failed), (0, 1));
        let last = status[2].last_error.as_deref().unwrap();
        assert!(
            last.contains("json sink to broken") && last.contains("fix:"),
            "{last}"
        );
        assert!(status[2].last_error_at.is_some() && status[0].last_sent_at.is_some());
    }
}
