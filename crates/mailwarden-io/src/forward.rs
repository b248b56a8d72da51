//! Forwarder: sends stored events to a central syslog collector as RFC 5424
//! messages over TCP with octet-counting framing (RFC 6587), optionally over
//! TLS (RFC 5425).
//!
//! # Where the items come from
//!
//! A [`ForwardSource`], implemented by the event store. The store keeps every
//! line, so the forwarder needs no spool of its own: its *spool* is its
//! committed [`ForwardCursor`] into the store. While the collector is down the
//! cursor stays put and the backlog grows in the store (bounded by the store's
//! retention); when it comes back, forwarding resumes from the cursor.
//!
//! # Delivery semantics: at least once, with ids
//!
//! **Nothing is lost (as long as the store retains the lines); duplicates after
//! a crash or reconnect are possible and carry the same id.** Every message has
//! an `id` structured-data parameter (stable and unique per item) so that the
//! receiver can drop duplicates.
//!
//! How: a batch is written and flushed to the socket; its cursor is committed
//! to the source once the connection has stayed healthy for
//! [`ForwardConfig::commit_delay`] after the flush (a non-blocking read shows
//! neither end-of-stream nor an error). On any failure the connection is
//! re-established and sending restarts **from the committed cursor**, so
//! everything written since then is sent again — those are the duplicates.
//!
//! Why the delay: TCP accepts writes into a connection whose peer has already
//! gone, and those bytes vanish when the peer's reset arrives; committing right
//! after the flush (`commit_delay = 0`) would lose them. With the delay, one
//! case remains that plain syslog transport cannot see, because it has no
//! application-level acknowledgements (RELP has): a collector that took bytes
//! off the wire more than `commit_delay` before it died, and had not yet
//! stored them (in its memory queue when killed). That is the collector's own
//! durability, to be handled there (disk-assisted queues).
//!
//! On a clean shutdown the forwarder half-closes the connection and waits (up
//! to [`ForwardConfig::close_timeout`]) for the collector to close its side,
//! which it does after reading everything; only then is the rest committed.
//!
//! The `id` must be stable for an item across restarts (the store derives it
//! from the item's position), or duplicates cannot be recognised.

//! # Encoding
//!
//! `LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id="…" …] BOM MSG`:
//! PRI from facility (mail = 2 by default) and severity (informational when
//! unknown); the timestamp in RFC 3339 with the original UTC offset; header
//! fields reduced to printable US-ASCII (anything else becomes `_`) and cut at
//! the RFC's lengths (255/48/128/32), `-` when absent; one SD-ELEMENT whose
//! SD-ID defaults to `mailwarden@32473` (32473 is the example enterprise number
//! of RFC 5612; set your own), with `"`, `\` and `]` escaped in values; the
//! message as UTF-8 with a BOM.
//!
//! # Reconnecting
//!
//! Exponential backoff with jitter (from `backoff_initial`, doubling up to
//! `backoff_max`), reset once a connection has stayed up for a while; connect,
//! TLS handshake and write timeouts. [`ForwardStats`] counts what was sent,
//! reconnects, the last error and the lag.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailwarden_core::event::Severity;
use mailwarden_core::time::Timestamp;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::collect::syslog::{load_certs, tls_provider};

/// The default SD-ID: `mailwarden` at the documentation enterprise number 32473.
pub const DEFAULT_SD_ID: &str = "mailwarden@32473";

/// Facility `mail` (2).
pub const FACILITY_MAIL: u8 = 2;

const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const PROCID_MAX: usize = 128;
const MSGID_MAX: usize = 32;
/// Longest structured-data parameter value kept (bytes, cut at a character boundary).
const PARAM_VALUE_MAX: usize = 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// A connection that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// A position in the source, opaque to the forwarder: the source hands it out
/// with each item and gets it back in [`ForwardSource::next_batch`] and
/// [`ForwardSource::commit`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ForwardCursor(pub String);

impl fmt::Display for ForwardCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The structured-data parameters of one item; only those present are sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdParams {
    /// Program family (`postfix`, `dovecot`, …).
    pub family: Option<String>,
    /// Event kind within the family.
    pub event: Option<String>,
    /// Postfix queue id.
    pub queue_id: Option<String>,
    /// Client IP address.
    pub client_ip: Option<String>,
    /// Envelope sender.
    pub sender: Option<String>,
    /// Envelope recipient.
    pub recipient: Option<String>,
    /// Authenticated user.
    pub user: Option<String>,
    /// Message-ID header.
    pub message_id: Option<String>,
}

impl SdParams {
    /// The parameters in the order they are sent, with their PARAM-NAMEs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("family", &self.family),
            ("event", &self.event),
            ("queue_id", &self.queue_id),
            ("client_ip", &self.client_ip),
            ("sender", &self.sender),
            ("recipient", &self.recipient),
            ("user", &self.user),
            ("message_id", &self.message_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// One stored event to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardItem {
    /// The source's position of this item.
    pub cursor: ForwardCursor,
    /// Unique, stable id (e.g. `2023-03-14:12345`), sent as the `id` parameter
    /// so that a receiver can drop duplicates.
    pub id: String,
    /// When the event was logged (with the logging clock's offset).
    pub ts: Option<Timestamp>,
    /// Host that logged it.
    pub host: Option<String>,
    /// Program (APP-NAME).
    pub app_name: Option<String>,
    /// Process id (PROCID).
    pub procid: Option<String>,
    /// Severity; informational when unknown.
    pub severity: Option<Severity>,
    /// Facility code 0..=23 (default [`FACILITY_MAIL`]); larger values are sent as 23.
    pub facility: u8,
    /// Event type (MSGID), e.g. `delivery`.
    pub msgid: Option<String>,
    /// Structured-data parameters.
    pub params: SdParams,
    /// The message.
    pub msg: String,
}

impl Default for ForwardItem {
    fn default() -> Self {
        ForwardItem {
            cursor: ForwardCursor::default(),
            id: String::new(),
            ts: None,
            host: None,
            app_name: None,
            procid: None,
            severity: None,
            facility: FACILITY_MAIL,
            msgid: None,
            params: SdParams::default(),
            msg: String::new(),
        }
    }
}

/// Where forwarded items come from: the event store (a disk-backed spool).
///
/// Calls are blocking (the forwarder runs them on tokio's blocking pool), so
/// an implementation may read from disk or a database directly.
pub trait ForwardSource {
    /// Why a call failed (the forwarder records it and retries later).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `max` items strictly after `after`, in order; `None` means from
    /// the oldest item still retained (a store that wants a new forwarder to
    /// start at the present commits a cursor first). An empty result means
    /// nothing to send now.
    fn next_batch(
        &mut self,
        after: Option<&ForwardCursor>,
        max: usize,
    ) -> Result<Vec<ForwardItem>, Self::Error>;

    /// Records durably that everything up to and including `cursor` was delivered.
    fn commit(&mut self, cursor: &ForwardCursor) -> Result<(), Self::Error>;

    /// The last committed cursor, where sending resumes after a reconnect or restart.
    fn committed(&self) -> Option<ForwardCursor>;

    /// How many items come after `after` (for the lag figure), if known cheaply.
    fn backlog(&mut self, after: Option<&ForwardCursor>) -> Result<Option<u64>, Self::Error> {
        let _ = after;
        Ok(None)
    }
}

/// TLS settings (RFC 5425).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardTls {
    /// PEM file with the CA certificate(s) that issued the collector's certificate.
    pub ca_pem: PathBuf,
    /// Name to verify the collector's certificate against (a DNS name or IP address).
    pub server_name: String,
    /// Client certificate chain (PEM), for collectors that require mutual TLS.
    pub client_cert_pem: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_pem: Option<PathBuf>,
}

/// Where and how to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The collector, `host:port` (resolved at every connection attempt).
    pub addr: String,
    /// TLS, or plain TCP when `None`.
    pub tls: Option<ForwardTls>,
    /// SD-ID of the structured-data element (`name@enterprise-number`).
    pub sd_id: String,
    /// Items per batch (default 512).
    pub batch_size: usize,
    /// How often to look for new items when there were none (default 500 ms).
    pub poll_interval: Duration,
    /// TCP connect and TLS handshake timeout, each (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for writing and flushing one batch (default 30 s).
    pub write_timeout: Duration,
    /// First reconnect delay (default 500 ms).
    pub backoff_initial: Duration,
    /// Longest reconnect delay (default 30 s).
    pub backoff_max: Duration,
    /// How long a flushed batch must stay on a healthy connection before its
    /// cursor is committed (default 1 s; zero commits right after the flush).
    pub commit_delay: Duration,
    /// On shutdown, how long to wait for the collector to close its side (default 5 s).
    pub close_timeout: Duration,
    /// Longest MSG part sent (bytes, cut at a character boundary; default 64 KiB).
    pub max_msg_bytes: usize,
}

impl ForwardConfig {
    /// Defaults for forwarding to `addr` (`host:port`) over plain TCP.
    pub fn new(addr: impl Into<String>) -> ForwardConfig {
        ForwardConfig {
            addr: addr.into(),
            tls: None,
            sd_id: DEFAULT_SD_ID.into(),
            batch_size: 512,
            poll_interval: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            commit_delay: Duration::from_secs(1),
            close_timeout: Duration::from_secs(5),
            max_msg_bytes: 64 << 10,
        }
    }
}

/// Why the forwarder could not run. Network trouble is never an error (it is
/// retried); only a configuration that can never work, or a lost source.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The configuration is invalid.
    #[error("forwarder: {0}")]
    Config(String),
    /// TLS files could not be used.
    #[error("forwarder TLS: {0}")]
    Tls(String),
    /// The source panicked inside a call.
    #[error("forwarder: the source failed: {0}")]
    Source(String),
}

/// Counters of a running forwarder.
#[derive(Debug)]
pub struct ForwardStats {
    sent: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
    committed: AtomicU64,
    connects: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    connected: AtomicU64,
    lag: AtomicU64,
    in_flight: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Default for ForwardStats {
    fn default() -> Self {
        ForwardStats {
            sent: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            lag: AtomicU64::new(u64::MAX),
            in_flight: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// A copy of the [`ForwardStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ForwardStatsSnapshot {
    /// Items written to a connection (resent items count again).
    pub sent: u64,
    /// Batches written.
    pub batches: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Items whose cursor was committed.
    pub committed: u64,
    /// Successful connections.
    pub connects: u64,
    /// Successful connections after the first one.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Whether a connection is up now.
    pub connected: bool,
    /// Items in the source not yet written (`None` when the source cannot tell).
    pub lag: Option<u64>,
    /// Items written but not yet committed (sent again after a failure).
    pub in_flight: u64,
    /// The last error (connection, write or source), if any.
    pub last_error: Option<String>,
}

impl ForwardStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> ForwardStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lag = g(&self.lag);
        ForwardStatsSnapshot {
            sent: g(&self.sent),
            batches: g(&self.batches),
            bytes: g(&self.bytes),
            committed: g(&self.committed),
            connects: g(&self.connects),
            reconnects: g(&self.reconnects),
            connect_failures: g(&self.connect_failures),
            connected: g(&self.connected) != 0,
            lag: (lag != u64::MAX).then_some(lag),
            in_flight: g(&self.in_flight),
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    fn set_error(&self, e: impl fmt::Display) {
        let s = e.to_string();
        tracing::warn!("forwarder: {s}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Checks an SD-ID: 1 to 32 printable US-ASCII characters except `=`, space,
/// `]` and `"`; a name with `@` must end in a private enterprise number
/// (names without `@` are reserved for IANA-registered SD-IDs).
pub fn validate_sd_id(sd_id: &str) -> Result<(), ForwardError> {
    let ok_char = |c: u8| (33..=126).contains(&c) && !matches!(c, b'=' | b']' | b'"');
    if sd_id.is_empty() || sd_id.len() > 32 || !sd_id.bytes().all(ok_char) {
        return Err(ForwardError::Config(format!(
            "SD-ID {sd_id:?} must be 1 to 32 printable ASCII characters without '=', ']', '\"' or space"
        )));
    }
    match sd_id.split_once('@') {
        Some((name, pen))
            if !name.is_empty()
                && !pen.is_empty()
                && !pen.contains('@')
                && pen
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Ok(())
        }
        _ => Err(ForwardError::Config(format!(
            "SD-ID {sd_id:?} must have the form name@enterprise-number"
        ))),
    }
}

/// Appends one RFC 5424 message for `item` (without transport framing) to `out`.
pub fn encode_rfc5424(item: &ForwardItem, sd_id: &str, max_msg_bytes: usize, out: &mut Vec<u8>) {
    let severity = item.severity.unwrap_or(Severity::Info) as u8;
    let pri = u16::from(item.facility.min(23)) * 8 + u16::from(severity);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "<{pri}>1 ");
    write_timestamp(out, item.ts);
    out.push(b' ');
    write_header_field(out, item.host.as_deref(), HOSTNAME_MAX);
    out.push(b' ');
    write_header_field(out, item.app_name.as_deref(), APP_NAME_MAX);
    out.push(b' ');
    write_header_field(out, item.procid.as_deref(), PROCID_MAX);
    out.push(b' ');
    write_header_field(out, item.msgid.as_deref(), MSGID_MAX);
    out.extend_from_slice(b" [");
    out.extend_from_slice(sd_id.as_bytes());
    write_param(out, "id", &item.id);
    for (name, value) in item.params.iter() {
        write_param(out, name, value);
    }
    out.push(b']');
    if !item.msg.is_empty() {
        out.push(b' ');
        out.extend_from_slice(BOM);
        out.extend_from_slice(cut(&item.msg, max_msg_bytes).as_bytes());
    }
}

/// Appends `item` with octet-counting framing (`LEN SP MSG`) to `out`;
/// `scratch` is a reusable buffer.
pub fn encode_frame(
    item: &ForwardItem,
    sd_id: &str,
    max_msg_bytes: usize,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    encode_rfc5424(item, sd_id, max_msg_bytes, scratch);
    let _ = write!(out, "{} ", scratch.len());
    out.extend_from_slice(scratch);
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut e = max;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    &s[..e]
}

fn write_timestamp(out: &mut Vec<u8>, ts: Option<Timestamp>) {
    let Some(mut ts) = ts else {
        out.push(b'-');
        return;
    };
    // RFC 3339 offsets are whole minutes below 24 h; anything else is shown in UTC.
    if ts.offset_secs % 60 != 0 || ts.offset_secs.unsigned_abs() >= 24 * 3600 {
        ts.offset_secs = 0;
    }
    let c = ts.local();
    if !(0..=9999).contains(&c.year) {
        out.push(b'-');
        return;
    }
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if c.micros != 0 {
        let _ = write!(out, ".{:06}", c.micros);
    }
    if ts.offset_secs == 0 {
        out.push(b'Z');
    } else {
        let sign = if ts.offset_secs < 0 { '-' } else { '+' };
        let abs = ts.offset_secs.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60);
    }
}

/// A header field: printable US-ASCII only (others become `_`), at most `max`
/// characters, NILVALUE when absent or empty.
fn write_header_field(out: &mut Vec<u8>, value: Option<&str>, max: usize) {
    let mut n = 0;
    for c in value.unwrap_or("").chars().take(max) {
        out.push(if c.is_ascii_graphic() { c as u8 } else { b'_' });
        n += 1;
    }
    if n == 0 {
        out.push(b'-');
    }
}

/// ` name="value"` with `"`, `\` and `]` escaped.
fn write_param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in cut(value, PARAM_VALUE_MAX).as_bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A byte stream to the collector (TCP or TLS over TCP).
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Reconnect delays: exponential with jitter (each delay is between half and
/// all of the current step).
struct Backoff {
    step: Duration,
    initial: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            step: initial,
            initial,
            max,
            rng: seed | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let frac = 0.5 + 0.5 * ((z >> 11) as f64 / (1u64 << 53) as f64);
        let d = self.step.mul_f64(frac);
        self.step = (self.step * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// Holds the source between calls, which run on the blocking pool.
struct SourceSlot<S> {
    inner: Option<S>,
}

impl<S: ForwardSource + Send + 'static> SourceSlot<S> {
    async fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, ForwardError> {
        let mut s = self
            .inner
            .take()
            .ok_or_else(|| ForwardError::Source("lost after an earlier failure".into()))?;
        let (s, r) = tokio::task::spawn_blocking(move || {
            let r = f(&mut s);
            (s, r)
        })
        .await
        .map_err(|e| ForwardError::Source(e.to_string()))?;
        self.inner = Some(s);
        Ok(r)
    }
}

/// What the blocking step returns: the next batch, the backlog after it, or
/// the error of whichever call failed.
type Step<E> = Result<(Vec<ForwardItem>, Option<u64>), E>;

/// How a connection ended.
enum SessionEnd {
    Shutdown,
    Failed(String),
}

/// Forwards items from `source` until `shutdown` is cancelled; returns the
/// source. Connection trouble is retried forever (see the module docs);
/// an error is returned only for an invalid configuration or a source that
/// panicked.
pub async fn run<S>(
    cfg: ForwardConfig,
    source: S,
    stats: Arc<ForwardStats>,
    shutdown: CancellationToken,
) -> Result<S, ForwardError>
where
    S: ForwardSource + Send + 'static,
    S::Error: Send,
{
    validate_sd_id(&cfg.sd_id)?;
    if cfg.batch_size == 0 {
        return Err(ForwardError::Config("batch_size must be at least 1".into()));
    }
    let tls = match &cfg.tls {
        Some(t) => Some(tls_connector(t)?),
        None => None,
    };
    let mut slot = SourceSlot { inner: Some(source) };
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    while !shutdown.is_cancelled() {
        let conn = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = connect(&cfg, tls.as_ref()) => r,
        };
        let end = match conn {
            Ok(mut conn) => {
                if stats.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                    add(&stats.reconnects, 1);
                }
                stats.connected.store(1, Ordering::Relaxed);
                let up = Instant::now();
                let end = session(&cfg, &mut conn, &mut slot, &stats, &shutdown).await;
                stats.connected.store(0, Ordering::Relaxed);
                stats.in_flight.store(0, Ordering::Relaxed);
                let end = end?;
                if up.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                end
            }
            Err(e) => {
                add(&stats.connect_failures, 1);
                SessionEnd::Failed(e)
            }
        };
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Failed(e) => {
                stats.set_error(e);
                // While the collector is unreachable the spool grows: keep the
                // lag figure current (everything after the committed cursor).
                let lag = slot
                    .call(|s| {
                        let c = s.committed();
                        s.backlog(c.as_ref())
                    })
                    .await?;
                if let Ok(Some(n)) = lag {
                    stats.lag.store(n, Ordering::Relaxed);
                }
                let delay = backoff.next();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    slot.inner
        .take()
        .ok_or_else(|| ForwardError::Source("lost after an earlier failure".into()))
}

fn tls_connector(t: &ForwardTls) -> Result<(TlsConnector, ServerName<'static>), ForwardError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&t.ca_pem).map_err(ForwardError::Tls)? {
        roots
            .add(c)
            .map_err(|e| ForwardError::Tls(format!("CA {}: {e}", t.ca_pem.display())))?;
    }
    let provider = tls_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&t.client_cert_pem, &t.client_key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert).map_err(ForwardError::Tls)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ForwardError::Tls(format!("client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ForwardError::Tls(format!("client certificate {}: {e}", cert.display())))?
        }
        _ => {
            return Err(ForwardError::Tls(
                "client_cert_pem and client_key_pem go together".into(),
            ));
        }
    };
    let name = ServerName::try_from(t.server_name.clone())
        .map_err(|e| ForwardError::Tls(format!("server name {:?}: {e}", t.server_name)))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

async fn connect(
    cfg: &ForwardConfig,
    tls: Option<&(TlsConnector, ServerName<'static>)>,
) -> Result<Box<dyn Conn>, String> {
    let addrs = tokio::time::timeout(cfg.connect_timeout, tokio::net::lookup_host(cfg.addr.as_str()))
        .await
        .map_err(|_| format!("resolving {}: timed out", cfg.addr))?
        .map_err(|e| format!("resolving {}: {e}", cfg.addr))?;
    let mut last = format!("{}: no address", cfg.addr);
    for addr in addrs {
        let stream = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = format!("connecting to {addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("connecting to {addr}: timed out");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some((connector, name)) = tls else {
            return Ok(Box::new(stream));
        };
        return match tokio::time::timeout(cfg.connect_timeout, connector.connect(name.clone(), stream)).await
        {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(format!("TLS handshake with {addr}: {e}")),
            Err(_) => Err(format!("TLS handshake with {addr}: timed out")),
        };
    }
    Err(last)
}

/// Checks without waiting whether the collector closed the connection or it
/// failed. The collector never sends anything, so any data is ignored.
async fn probe(conn: &mut Box<dyn Conn>) -> Result<(), String> {
    let mut buf = [0u8; 256];
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut **conn).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                Poll::Ready(Err("the collector closed the connection".to_string()))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(format!("connection failed: {e}"))),
        }
    })
    .await
}

/// Sends batches over one connection until it fails or shutdown.
async fn session<S>(
    cfg: &ForwardConfig,
    conn: &mut Box<dyn Conn>,
    slot: &mut SourceSlot<S>,
    stats: &ForwardStats,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, ForwardError>
where
    S: ForwardSource + Send + 'static,
    S::Error: Send,
{
    // Resend from the committed cursor: everything after it may not have arrived.
    let mut pos = slot.call(|s| s.committed()).await?;
    // Written but not committed: (flushed at, cursor of the batch's last item, items).
    let mut in_flight: VecDeque<(Instant, ForwardCursor, u64)> = VecDeque::new();
    let mut buf = Vec::with_capacity(64 << 10);
    let mut scratch = Vec::with_capacity(4 << 10);
    loop {
        if let Err(e) = probe(conn).await {
            return Ok(SessionEnd::Failed(e));
        }
        // The newest batch that has been on a healthy connection long enough.
        let now = Instant::now();
        let mut to_commit = None;
        let mut count = 0;
        while let Some((t, _, _)) = in_flight.front() {
            if now.duration_since(*t) < cfg.commit_delay {
                break;
            }
            if let Some((_, c, n)) = in_flight.pop_front() {
                to_commit = Some(c);
                count += n;
            }
        }
        if shutdown.is_cancelled() {
            return close(cfg, conn, slot, stats, in_flight, to_commit, count).await;
        }
        let (after, max) = (pos.clone(), cfg.batch_size);
        let commit = to_commit.clone();
        let step: Step<S::Error> = slot
            .call(move |s| {
                if let Some(c) = &commit {
                    s.commit(c)?;
                }
                let batch = s.next_batch(after.as_ref(), max)?;
                let next = batch.last().map(|i| &i.cursor).or(after.as_ref());
                let backlog = s.backlog(next)?;
                Ok((batch, backlog))
            })
            .await?;
        let (batch, backlog) = match step {
            Ok(x) => x,
            Err(e) => {
                // Keep what was not committed; try again after a pause.
                if let Some(c) = to_commit {
                    in_flight.push_front((now, c, count));
                }
                stats.set_error(format!("source: {e}"));
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(cfg.poll_interval) => {}
                }
                continue;
            }
        };
        if to_commit.is_some() {
            add(&stats.committed, count);
        }
        stats.lag.store(backlog.unwrap_or(u64::MAX), Ordering::Relaxed);
        stats.in_flight.store(
            in_flight.iter().map(|(_, _, n)| n).sum::<u64>() + batch.len() as u64,
            Ordering::Relaxed,
        );
        let Some(last) = batch.last() else {
            // Nothing new: wait, watching the connection, until the next poll or
            // until the oldest in-flight batch may be committed.
            let wait = in_flight
                .front()
                .map(|(t, _, _)| (*t + cfg.commit_delay).saturating_duration_since(now))
                .map_or(cfg.poll_interval, |d| d.min(cfg.poll_interval));
            let mut b = [0u8; 256];
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {}
                r = conn.read(&mut b) => match r {
                    Ok(0) => return Ok(SessionEnd::Failed("the collector closed the connection".into())),
                    Ok(_) => {}
                    Err(e) => return Ok(SessionEnd::Failed(format!("connection failed: {e}"))),
                },
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        };
        let last_cursor = last.cursor.clone();
        buf.clear();
        for item in &batch {
            encode_frame(item, &cfg.sd_id, cfg.max_msg_bytes, &mut scratch, &mut buf);
        }
        let write = async {
            conn.write_all(&buf).await?;
            conn.flush().await
        };
        let mut write = std::pin::pin!(tokio::time::timeout(cfg.write_timeout, write));
        let written = tokio::select! {
            biased;
            r = &mut write => r,
            // Shutdown while the collector is slow: give the batch `close_timeout`
            // to get out, then abandon it (not committed, so it is sent again).
            _ = shutdown.cancelled() => match tokio::time::timeout(cfg.close_timeout, &mut write).await {
                Ok(r) => r,
                Err(_) => return Ok(SessionEnd::Shutdown),
            },
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ok(SessionEnd::Failed(format!("write failed: {e}"))),
            Err(_) => return Ok(SessionEnd::Failed("write timed out".into())),
        }
        add(&stats.sent, batch.len() as u64);
        add(&stats.batches, 1);
        add(&stats.bytes, buf.len() as u64);
        in_flight.push_back((Instant::now(), last_cursor.clone(), batch.len() as u64));
        pos = Some(last_cursor);
    }
}

/// Clean shutdown: half-close, wait for the collector to close its side (it
/// has then read everything), and only then commit what was written.
async fn close<S>(
    cfg: &ForwardConfig,
    conn: &mut Box<dyn Conn>,
    slot: &mut SourceSlot<S>,
    stats: &ForwardStats,
    mut in_flight: VecDeque<(Instant, ForwardCursor, u64)>,
    mut to_commit: Option<ForwardCursor>,
    mut count: u64,
) -> Result<SessionEnd, ForwardError>
where
    S: ForwardSource + Send + 'static,
    S::Error: Send,
{
    let drained = async {
        conn.shutdown().await?;
        let mut b = [0u8; 1024];
        loop {
            match conn.read(&mut b).await {
                Ok(0) => return Ok::<_, std::io::Error>(()),
                Ok(_) => {}
                // TLS: the collector closed the TCP connection without a
                // close_notify of its own (rsyslog does), after reading ours.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(cfg.close_timeout, drained).await {
        Ok(Ok(())) => {
            for (_, c, n) in in_flight.drain(..) {
                to_commit = Some(c);
                count += n;
            }
        }
        Ok(Err(e)) => {
            // An error while closing may mean the collector read everything
            // and reset; the unconfirmed batches are sent again next time.
            tracing::debug!("forwarder: closing: {e}");
        }
        Err(_) => stats.set_error("closing: the collector did not close its side in time"),
    }
    if let Some(c) = to_commit {
        match slot.call(move |s| s.commit(&c)).await? {
            Ok(()) => add(&stats.committed, count),
            Err(e) => stats.set_error(format!("source: {e}")),
        }
    }
    Ok(SessionEnd::Shutdown)
}

/// An in-memory [`ForwardSource`] for tests and examples: items live in a
/// vector, cursors are their indexes. Clones share the same items, so a test
/// can keep one handle to add items and inspect commits while the forwarder
/// owns another. It is not a spool: everything is lost with the process.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    items: Vec<ForwardItem>,
    committed: Option<ForwardCursor>,
    commits: u64,
}

/// A cursor the [`MemorySource`] did not hand out.
#[derive(Debug, thiserror::Error)]
#[error("unknown cursor {0:?}")]
pub struct BadCursor(String);

impl MemorySource {
    /// An empty source.
    pub fn new() -> MemorySource {
        MemorySource::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an item; its cursor is replaced by its index.
    pub fn push(&self, mut item: ForwardItem) {
        let mut g = self.lock();
        item.cursor = ForwardCursor(g.items.len().to_string());
        g.items.push(item);
    }

    /// How many items were pushed.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items are covered by the committed cursor.
    pub fn committed_count(&self) -> usize {
        let g = self.lock();
        g.committed
            .as_ref()
            .and_then(|c| c.0.parse::<usize>().ok())
            .map_or(0, |i| i + 1)
    }

    /// How many times `commit` was called.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn start(after: Option<&ForwardCursor>) -> Result<usize, BadCursor> {
        match after {
            None => Ok(0),
            Some(c) => {
                c.0.parse::<usize>()
                    .map(|i| i + 1)
                    .map_err(|_| BadCursor(c.0.clone()))
            }
        }
    }
}

impl ForwardSource for MemorySource {
    type Error = BadCursor;

    fn next_batch(
        &mut self,
        after: Option<&ForwardCursor>,
        max: usize,
    ) -> Result<Vec<ForwardItem>, BadCursor> {
        let from = MemorySource::start(after)?;
        let g = self.lock();
        Ok(g.items.iter().skip(from).take(max).cloned().collect())
    }

    fn commit(&mut self, cursor: &ForwardCursor) -> Result<(), BadCursor> {
        MemorySource::start(Some(cursor))?;
        let mut g = self.lock();
        g.committed = Some(cursor.clone());
        g.commits += 1;
        Ok(())
    }

    fn committed(&self) -> Option<ForwardCursor> {
        self.lock().committed.clone()
    }

    fn backlog(&mut self, after: Option<&ForwardCursor>) -> Result<Option<u64>, BadCursor> {
        let from = MemorySource::start(after)?;
        Ok(Some(self.lock().items.len().saturating_sub(from) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> ForwardItem {
        ForwardItem {
            cursor: ForwardCursor("7".into()),
            id: "2023-03-14:12345".into(),
            ts: Some(Timestamp {
                unix_micros: 1_678_788_000_123_456,
                offset_secs: 3600,
            }),
            host: Some("mx1.example.org".into()),
            app_name: Some("postfix/smtpd".into()),
            procid: Some("4242".into()),
            severity: Some(Severity::Info),
            facility: FACILITY_MAIL,
            msgid: Some("delivery".into()),
            params: SdParams {
                family: Some("postfix".into()),
                queue_id: Some("4PbC4x469Jz3tBr".into()),
                sender: Some("a\"b]c\\d@example.org".into()),
                ..SdParams::default()
            },
            msg: "to=<bob@example.org>, status=sent (250 2.0.0 Ok) — ü".into(),
        }
    }

    fn encode(i: &ForwardItem) -> String {
        let mut out = Vec::new();
        encode_rfc5424(i, DEFAULT_SD_ID, 64 << 10, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_a_full_item() {
        assert_eq!(
            encode(&item()),
            "<22>1 2023-03-14T11:00:00.123456+01:00 mx1.example.org postfix/smtpd 4242 delivery \
             [mailwarden@32473 id=\"2023-03-14:12345\" family=\"postfix\" queue_id=\"4PbC4x469Jz3tBr\" \
             sender=\"a\\\"b\\]c\\\\d@example.org\"] \u{feff}to=<bob@example.org>, status=sent (250 2.0.0 Ok) — ü"
        );
    }

    #[test]
    fn nil_values_limits_and_odd_characters() {
        let i = ForwardItem {
            id: "x".into(),
            host: Some("höst name".into()),
            app_name: Some("a".repeat(100)),
            msgid: Some(String::new()),
            severity: Some(Severity::Err),
            facility: 200,
            ..ForwardItem::default()
        };
        let s = encode(&i);
        assert_eq!(
            s,
            format!(
                "<187>1 - h_st_name {} - - [mailwarden@32473 id=\"x\"]",
                "a".repeat(48)
            )
        );
    }

    #[test]
    fn timestamps() {
        let t = |unix_micros, offset_secs| {
            let mut out = Vec::new();
            write_timestamp(
                &mut out,
                Some(Timestamp {
                    unix_micros,
                    offset_secs,
                }),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(t(1_000_000, -9000), "1969-12-31T21:30:01-02:30");
        assert_eq!(t(0, 17), "1970-01-01T00:00:00Z");
        assert_eq!(t(-62_200_000_000_000_000, 0), "-");
    }

    #[test]
    fn frames_are_octet_counted() {
        let mut out = Vec::new();
        encode_frame(&item(), DEFAULT_SD_ID, 64 << 10, &mut Vec::new(), &mut out);
        let s = String::from_utf8(out).unwrap();
        let (len, rest) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }

    #[test]
    fn message_is_cut_at_a_character_boundary() {
        let i = ForwardItem {
            msg: "aé".into(),
            ..ForwardItem::default()
        };
        let mut out = Vec::new();
        encode_rfc5424(&i, DEFAULT_SD_ID, 2, &mut out);
        assert!(out.ends_with(b"\xEF\xBB\xBFa"));
    }

    #[test]
    fn sd_id_validation() {
        assert!(validate_sd_id("mailwarden@32473").is_ok());
        assert!(validate_sd_id("x@1.2.3").is_ok());
        for bad in [
            "",
            "mailwarden",
            "a b@1",
            "a=b@1",
            "a@",
            "@1",
            "a@x",
            "a@1@2",
            &"a".repeat(40),
        ] {
            assert!(validate_sd_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_source_cursors() {
        let mut m = MemorySource::new();
        for n in 0..5 {
            m.push(ForwardItem {
                id: n.to_string(),
                ..ForwardItem::default()
            });
        }
        let b = m.next_batch(None, 2).unwrap();
        assert_eq!(b.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["0", "1"]);
        let b = m.next_batch(Some(&b[1].cursor), 10).unwrap();
        assert_eq!(b.len(), 3);
        m.commit(&b[0].cursor).unwrap();
        assert_eq!(m.committed_count(), 3);
        assert_eq!(m.backlog(m.committed().as_ref()).unwrap(), Some(2));
        assert!(m.next_batch(Some(&ForwardCursor("x".into())), 1).is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<_> = (0..8).map(|_| b.next()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d[7] >= Duration::from_millis(500) && d[7] <= Duration::from_secs(1));
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
