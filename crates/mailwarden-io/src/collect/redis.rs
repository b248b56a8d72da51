//! The Mailcow Redis collector: reads Mailcow's Redis log lists and its
//! `F2B_CHANNEL` channel, and emits every entry once, oldest first, with a
//! checkpoint that survives restarts.
//!
//! # What Mailcow puts into Redis
//!
//! (From mailcow-dockerized: `data/Dockerfiles/{postfix,dovecot,sogo}/syslog-ng*.conf`,
//! `data/Dockerfiles/dovecot/trim_logs.sh`, `data/Dockerfiles/netfilter/modules/Logger.py`,
//! `data/Dockerfiles/watchdog/watchdog.sh`, `data/Dockerfiles/acme/*.sh`,
//! `data/web/json_api.php`, `data/web/autodiscover.php`,
//! `data/conf/rspamd/meta_exporter/pipe_rl.php`, `data/web/inc/functions.inc.php`.)
//!
//! - syslog-ng in the postfix, dovecot and sogo containers `LPUSH`es
//!   `$(format-json time="$S_UNIXTIME" priority="$PRIORITY" program="$PROGRAM" message="$MESSAGE")\n`
//!   to `POSTFIX_MAILLOG`, `DOVECOT_MAILLOG` and `SOGO_LOG`: `time` is a string,
//!   and each entry ends with a newline. The same syslog-ng also `PUBLISH`es
//!   `$(sanitize $MESSAGE)` (the message text only, `/` and control characters
//!   turned into `_`) on `F2B_CHANNEL`, which netfilter reads.
//! - netfilter pushes `{"time": <int>, "priority", "message"}` (no `program`)
//!   to `NETFILTER_LOG`; the watchdog `{"time": "<secs>", "message"}` or health
//!   entries without a message to `WATCHDOG_LOG`; acme `{"time": "<secs>",
//!   "message"}` to `ACME_LOG`; the web UI `{"time": <int>, "uri", "method",
//!   "remote", "data"}` to `API_LOG`, `{"time", "ua", "user", "ip", "service"}`
//!   to `AUTODISCOVER_LOG`; Rspamd's ratelimit hook `{"time", "rcpt", "from",
//!   "user", "rl_info", "rl_name", "rl_hash", "qid", "ip", "message_id",
//!   "header_subject", "header_from"}` to `RL_LOG`.
//! - Nothing trims on push: `trim_logs.sh` runs every minute (Ofelia job in the
//!   dovecot container) and does `LTRIM <list> 0 ${LOG_LINES}` on all nine
//!   lists (the autodiscover endpoint also trims its own list to 101 entries).
//!   The web UI can `LREM` single `RL_LOG` entries.
//! - Besides syslog-ng, the web UI `PUBLISH`es on `F2B_CHANNEL` messages that
//!   are in **no list**: `mailcow UI: Invalid password for USER by IP`,
//!   `mailcow UI: Captcha failed by IP`, `Rspamd UI: Invalid password by IP`,
//!   `Autodiscover: Invalid request by IP` — the brute-force trail of the admin
//!   and API login, which exists nowhere else in Redis.
//!
//! # Lists: catching up without ids
//!
//! Entries carry no id and a list is changed at both ends (pushes at the head,
//! trims at the tail), so the position is the newest consumed entry: its
//! hash, its `time` and how many identical entries in a row ending at it were
//! consumed ([`Checkpoint::RedisList`]). While running, the collector also
//! remembers the consumed entries below it as runs of identical entries (up
//! to [`CONTEXT`] runs), and whether they reach down to the list's oldest
//! entry.
//!
//! Each poll of a list (every `poll_interval`, and at once when a message
//! arrives on the channel):
//!
//! 1. **Locate** the newest consumed entry, scanning from the head in chunks.
//!    Every read is one server-side read-only script (`EVAL_RO`, or `EVAL`
//!    before Redis 7) returning, atomically, the list length, a fingerprint of
//!    the oldest entry and the requested `LRANGE`, with entries longer than
//!    `max_entry_bytes` cut before they cross the network. The anchor is at
//!    the first run of entries identical to it that is at least as long as the
//!    consumed run and lies on the remembered older runs; of that run, the
//!    bottom `run` entries were consumed and any above them are new. So `E X E`
//!    (the last line repeated after another one) or a longer burst of `E` on top
//!    of an `X` is not taken for the consumed `E`. Pushes while scanning only
//!    move entries towards the tail, so the scan cannot miss the anchor.
//! 2. **Emit** the entries above the anchor, oldest first, reading upwards in
//!    chunks addressed from the tail (negative indices do not move when
//!    entries are pushed). Every read also returns the anchor and up to 32
//!    consumed entries below it, and the oldest entry's fingerprint; if either
//!    differs, the trim job (or the UI) changed the list between two reads and
//!    the collector locates again instead of guessing. Each record carries the
//!    checkpoint after its entry.
//! 3. When the anchor is **gone** (trimmed while mailwarden was not reading),
//!    every entry in the list is emitted and a **gap** is counted and logged:
//!    entries between the checkpoint and the oldest one left were lost. An
//!    **empty** list (flushed, or Redis restarted without persistence) is
//!    counted as a reset; what follows it is read in full. With
//!    `max_catch_up`, only the newest entries are read and the others are
//!    counted as skipped.
//!
//! Residual ambiguity (inherent to id-less lists, documented rather than
//! hidden): after a restart only the checkpoint is known, so when a line
//! identical to the checkpointed one (same bytes, hence same second) was
//! pushed after another line, at least `run` times, the newer copy is taken
//! for the checkpoint and the lines between are not read. And a trim that
//! cuts into a run of identical lines reaching from the anchor to the tail
//! while more identical lines arrive cannot be told from no change. When the
//! UI deletes (`LREM`) the very `RL_LOG` entry last read, the list looks
//! trimmed past it: a gap is reported and that list is read again in full.
//!
//! # The channel: wake-up, and the messages no list has
//!
//! A separate connection subscribes to `F2B_CHANNEL`. Every message makes the
//! collector poll the lists at once (at most every `min_wake_gap`: new log
//! lines are stored within a fraction of a second instead of
//! `poll_interval`). A message that turns out to be a
//! copy of a list entry (its text equals the sanitized `message` of an entry
//! read within `echo_grace`) is dropped: the list entry is the stored copy,
//! with its time and program. Any other message — the UI and API login
//! failures above — is emitted as a record of source `redis:F2B_CHANNEL`
//! (format `raw`, program hint `php-fpm`, no checkpoint: a channel has no
//! history). Channel messages wait in a bounded queue; when it is full the
//! message is counted as dropped in the stats and logged, never silently lost.
//!
//! # Failures
//!
//! Connection failures and timeouts are retried with exponential backoff
//! (`stats.connected`, `stats.reconnects`, `stats.last_error`). A rejected
//! password is not retried: [`run`] returns [`CollectError::Auth`] naming the
//! setting to fix.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use mailwarden_core::framing::Format;
use mailwarden_core::time::Timestamp;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Checkpoint, SourceRecord, fnv1a};
use crate::mailcow::{MailcowConf, MailcowError};

/// Mailcow's log lists and the program each list's entries come from (used
/// when an entry has no `program` field).
pub const MAILCOW_LISTS: [(&str, &str); 9] = [
    ("POSTFIX_MAILLOG", "postfix"),
    ("DOVECOT_MAILLOG", "dovecot"),
    ("SOGO_LOG", "sogod"),
    ("NETFILTER_LOG", "netfilter"),
    ("WATCHDOG_LOG", "watchdog"),
    ("ACME_LOG", "acme"),
    ("API_LOG", "mailcow-api"),
    ("RL_LOG", "ratelimit"),
    ("AUTODISCOVER_LOG", "autodiscover"),
];

/// The channel Mailcow publishes log messages and UI login failures on.
pub const MAILCOW_CHANNEL: &str = "F2B_CHANNEL";

/// Program assumed for channel-only messages (the web UI's PHP).
pub const CHANNEL_PROGRAM: &str = "php-fpm";

/// How many runs of identical consumed entries are remembered to recognise
/// the position.
pub const CONTEXT: usize = 8;

/// How many of the newest consumed entries each read re-checks.
const VERIFY_WINDOW: usize = 32;

/// Entries read by the first locate read of a poll, above the remembered
/// ones (a poll's worth of new entries on a busy server; more are read in
/// `chunk_size` chunks).
const FIRST_CHUNK: i64 = 16;

/// How often a poll re-locates after the list changed under it before giving
/// up until the next poll.
const MAX_RELOCATES: usize = 4;

/// Channel messages buffered between the subscriber and the poller.
const CHANNEL_QUEUE: usize = 4096;

/// Channel messages waiting for their list copy.
const MAX_PENDING: usize = 4096;

/// List messages remembered for recognising their channel copies.
const ECHO_CAPACITY: usize = 16_384;

/// Initial reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(250);

/// Interval of the keep-alive ping on the subscriber connection.
const CHANNEL_PING: Duration = Duration::from_secs(30);

/// Read-only script: the list length, a fingerprint of the oldest entry
/// (length, first and last 48 bytes: it changes when the trim job removes
/// entries), and a range of entries, each as (full length, bytes cut at
/// ARGV[3]). One atomic server-side step.
const RANGE_SCRIPT: &str = "\
local n = redis.call('LLEN', KEYS[1])
local items = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
local cap = tonumber(ARGV[3])
local last = redis.call('LINDEX', KEYS[1], -1)
local out = {n, 0, ''}
if last then
  out[2] = #last
  out[3] = string.sub(last, 1, 48) .. string.sub(last, -48)
end
for i = 1, #items do
  local v = items[i]
  out[#out + 1] = #v
  if #v > cap then v = string.sub(v, 1, cap) end
  out[#out + 1] = v
end
return out
";

/// One list to read and the program its entries come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSpec {
    /// The Redis key (`POSTFIX_MAILLOG`).
    pub key: String,
    /// Program to assume for entries without a `program` field.
    pub program_hint: Option<String>,
}

impl ListSpec {
    /// A list with a program hint.
    pub fn new(key: &str, program_hint: Option<&str>) -> ListSpec {
        ListSpec {
            key: key.to_owned(),
            program_hint: program_hint.map(str::to_owned),
        }
    }

    /// Mailcow's nine log lists with their programs.
    pub fn mailcow_defaults() -> Vec<ListSpec> {
        MAILCOW_LISTS
            .iter()
            .map(|(key, hint)| ListSpec::new(key, Some(hint)))
            .collect()
    }
}

/// How to reach Redis and what to read.
#[derive(Clone)]
pub struct RedisConfig {
    /// Host or IP (`127.0.0.1` for Mailcow's published port).
    pub host: String,
    /// TCP port (Mailcow: `REDIS_PORT`, default 7654).
    pub port: u16,
    /// Password (Mailcow: `REDISPASS`); `None` for Redis without one.
    pub password: Option<String>,
    /// Database number (Mailcow uses 0).
    pub db: i64,
    /// The lists to read.
    pub lists: Vec<ListSpec>,
    /// The channel to subscribe to (`F2B_CHANNEL`), or `None` to poll only.
    pub channel: Option<String>,
    /// Program assumed for channel-only messages.
    pub channel_program_hint: Option<String>,
    /// How often lists are polled without a wake-up (default 2 s).
    pub poll_interval: Duration,
    /// Least time between two polls woken by the channel (default 100 ms): a
    /// busy server publishes hundreds of lines a second, one poll takes them
    /// all.
    pub min_wake_gap: Duration,
    /// At most this many of the newest entries per list are read when catching
    /// up (first start, after a gap, or after a long stop); older ones are
    /// skipped and counted. `None` reads everything Redis still has.
    pub max_catch_up: Option<usize>,
    /// Entries and channel messages longer than this are cut (server-side) and
    /// marked truncated (default 64 KiB).
    pub max_entry_bytes: usize,
    /// Entries per `LRANGE` read (default 256).
    pub chunk_size: usize,
    /// How long a channel message waits for its copy in a list before it is
    /// emitted as a channel-only record (default 3 s).
    pub echo_grace: Duration,
    /// Connect and response timeout (default 10 s).
    pub timeout: Duration,
    /// Longest delay between reconnect attempts (default 30 s).
    pub max_backoff: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("lists", &self.lists)
            .field("channel", &self.channel)
            .field("channel_program_hint", &self.channel_program_hint)
            .field("poll_interval", &self.poll_interval)
            .field("min_wake_gap", &self.min_wake_gap)
            .field("max_catch_up", &self.max_catch_up)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("chunk_size", &self.chunk_size)
            .field("echo_grace", &self.echo_grace)
            .field("timeout", &self.timeout)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            host: "127.0.0.1".to_owned(),
            port: 7654,
            password: None,
            db: 0,
            lists: ListSpec::mailcow_defaults(),
            channel: Some(MAILCOW_CHANNEL.to_owned()),
            channel_program_hint: Some(CHANNEL_PROGRAM.to_owned()),
            poll_interval: Duration::from_secs(2),
            min_wake_gap: Duration::from_millis(100),
            max_catch_up: None,
            max_entry_bytes: 64 * 1024,
            chunk_size: 256,
            echo_grace: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RedisConfig {
    /// The settings of a Mailcow installation: Redis at `REDIS_PORT` with
    /// `REDISPASS`, all nine lists, the channel.
    pub fn from_mailcow(conf: &MailcowConf) -> Result<RedisConfig, MailcowError> {
        let endpoint = conf.redis_endpoint()?;
        Ok(RedisConfig {
            host: endpoint.host,
            port: endpoint.port,
            password: conf.redis_password().map(str::to_owned),
            ..RedisConfig::default()
        })
    }

    /// The source (and checkpoint) key of a list: `redis:POSTFIX_MAILLOG`.
    pub fn source_key(list: &str) -> String {
        format!("redis:{list}")
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Checks the settings that would make the collector misbehave.
    pub fn validate(&self) -> Result<(), CollectError> {
        let bad = |m: &str| Err(CollectError::Config(m.to_owned()));
        if self.host.is_empty() {
            return bad("the Redis host is empty; set it (Mailcow: 127.0.0.1)");
        }
        if self.lists.is_empty() && self.channel.is_none() {
            return bad("nothing to read: give at least one list or the channel");
        }
        if self.lists.iter().any(|l| l.key.is_empty()) || self.channel.as_deref() == Some("") {
            return bad("a list or channel name is empty");
        }
        if self.chunk_size == 0 || self.max_entry_bytes == 0 {
            return bad("chunk_size and max_entry_bytes must be at least 1");
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return bad("poll_interval and timeout must be longer than zero");
        }
        Ok(())
    }
}

/// Why the collector stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Redis rejected the credentials; retrying would not help.
    #[error("Redis at {addr}: {problem}; {fix}")]
    Auth {
        /// `host:port`.
        addr: String,
        /// What Redis said.
        problem: String,
        /// What to change.
        fix: String,
    },
    /// The configuration cannot work.
    #[error("Redis collector: {0}")]
    Config(String),
}

/// Live counters of the collector, shared with whoever reports status.
#[derive(Debug, Default)]
pub struct RedisStats {
    connected: AtomicBool,
    channel_connected: AtomicBool,
    polls: AtomicU64,
    entries: AtomicU64,
    gaps: AtomicU64,
    resets: AtomicU64,
    skipped: AtomicU64,
    truncated: AtomicU64,
    reconnects: AtomicU64,
    errors: AtomicU64,
    channel_messages: AtomicU64,
    channel_only: AtomicU64,
    channel_dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`RedisStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RedisStatsSnapshot {
    /// The list connection is up.
    pub connected: bool,
    /// The channel subscription is up.
    pub channel_connected: bool,
    /// Completed polls of all lists.
    pub polls: u64,
    /// List entries emitted.
    pub entries: u64,
    /// Times a list's checkpoint was no longer in the list: entries were
    /// trimmed away before they could be read (data lost).
    pub gaps: u64,
    /// Times a list was found empty after entries had been read from it
    /// (flushed, or Redis restarted without its data).
    pub resets: u64,
    /// Entries skipped on purpose because of `max_catch_up`.
    pub skipped: u64,
    /// Entries and messages cut at `max_entry_bytes`.
    pub truncated: u64,
    /// Connections (lists or channel) lost and re-established.
    pub reconnects: u64,
    /// Errors (connection, per list) seen.
    pub errors: u64,
    /// Messages received on the channel.
    pub channel_messages: u64,
    /// Channel messages emitted because no list holds them.
    pub channel_only: u64,
    /// Channel messages lost because the queue was full.
    pub channel_dropped: u64,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

impl RedisStats {
    /// A consistent-enough copy for status output.
    pub fn snapshot(&self) -> RedisStatsSnapshot {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisStatsSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            channel_connected: self.channel_connected.load(Ordering::Relaxed),
            polls: n(&self.polls),
            entries: n(&self.entries),
            gaps: n(&self.gaps),
            resets: n(&self.resets),
            skipped: n(&self.skipped),
            truncated: n(&self.truncated),
            reconnects: n(&self.reconnects),
            errors: n(&self.errors),
            channel_messages: n(&self.channel_messages),
            channel_only: n(&self.channel_only),
            channel_dropped: n(&self.channel_dropped),
            last_error: self.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn set_error(&self, e: String) {
        Self::add(&self.errors, 1);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }
}

/// Runs the collector until `shutdown` is cancelled or the receiver of `tx` is
/// dropped. `resume` holds the stored checkpoints by source key
/// (`redis:<LIST>`). Returns an error only for failures retrying cannot fix
/// (configuration, rejected password).
pub async fn run(
    cfg: RedisConfig,
    resume: BTreeMap<String, Checkpoint>,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<RedisStats>,
    shutdown: CancellationToken,
) -> Result<(), CollectError> {
    cfg.validate()?;
    let client = connection_info(&cfg)
        .and_then(redis::Client::open)
        .map_err(|e| CollectError::Config(format!("cannot use {}: {e}", cfg.addr())))?;
    let lists = cfg
        .lists
        .iter()
        .map(|spec| ListState::new(spec, resume.get(&RedisConfig::source_key(&spec.key))))
        .collect();
    let stop_channel = shutdown.child_token();
    let (chan_tx, chan_rx) = mpsc::channel(CHANNEL_QUEUE);
    let channel_task = cfg.channel.clone().map(|channel| {
        tokio::spawn(channel_task(
            client.clone(),
            ChannelTaskConfig {
                channel,
                addr: cfg.addr(),
                has_password: cfg.password.is_some(),
                timeout: cfg.timeout,
                max_backoff: cfg.max_backoff,
                max_bytes: cfg.max_entry_bytes,
            },
            chan_tx,
            Arc::clone(&stats),
            stop_channel.clone(),
        ))
    });
    let channel_source: Arc<str> = Arc::from(RedisConfig::source_key(cfg.channel.as_deref().unwrap_or("")));
    let channel_hint = cfg.channel_program_hint.as_deref().map(Arc::from);
    let mut collector = Collector {
        cfg,
        client,
        lists,
        tx,
        stats,
        shutdown,
        chan_rx: Some(chan_rx),
        echo: EchoSet::new(ECHO_CAPACITY),
        pending: VecDeque::new(),
        channel_source,
        channel_hint,
    };
    let result = collector.run().await;
    stop_channel.cancel();
    if let Some(task) = channel_task {
        // The task ends promptly once cancelled; it holds no data of ours.
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    result
}

fn connection_info(cfg: &RedisConfig) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let mut redis_settings = redis::RedisConnectionInfo::default()
        .set_db(cfg.db)
        .set_skip_set_lib_name();
    if let Some(p) = &cfg.password {
        redis_settings = redis_settings.set_password(p);
    }
    Ok((cfg.host.clone(), cfg.port)
        .into_connection_info()?
        .set_redis_settings(redis_settings))
}

/// Is this Redis telling us the credentials are wrong or missing?
fn is_auth_error(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

fn auth_error(addr: &str, has_password: bool, e: &redis::RedisError) -> CollectError {
    let (problem, fix) = if has_password {
        (
            format!("the password was rejected ({e})"),
            "check REDISPASS in mailcow.conf against the running Redis (after changing it, recreate the redis-mailcow container); Mailcow releases before 2024 run Redis without a password: then set none",
        )
    } else {
        (
            format!("Redis requires a password ({e})"),
            "set the password: REDISPASS from mailcow.conf",
        )
    };
    CollectError::Auth {
        addr: addr.to_owned(),
        problem,
        fix: fix.to_owned(),
    }
}

/// Exponential reconnect delay.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: BACKOFF_START.min(max),
            max,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START.min(self.max);
    }

    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Sleeps unless cancelled; `false` when cancelled.
async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros)
}

/// Lossy text of an entry without its line terminator.
fn line_of(bytes: &[u8]) -> String {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

// ---------------------------------------------------------------------------
// Entries.

/// One list entry as read: its bytes (cut at the limit) and its full length.
#[derive(Clone, Debug)]
struct RawEntry {
    bytes: Vec<u8>,
    full_len: usize,
}

impl RawEntry {
    fn truncated(&self) -> bool {
        self.full_len > self.bytes.len()
    }

    /// FNV-1a of the entry's bytes; for a cut entry, of the bytes read and
    /// then the full length (so it stays stable and distinct).
    fn hash(&self) -> u64 {
        let mut h = fnv1a(&self.bytes);
        if self.truncated() {
            for b in (self.full_len as u64).to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// The `time` (seconds) and `message` of a Mailcow entry, when it has them.
#[derive(Debug, Default, PartialEq)]
struct EntryInfo {
    time: i64,
    message: Option<String>,
}

fn entry_info(bytes: &[u8]) -> EntryInfo {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        time: Option<serde_json::Value>,
        #[serde(default)]
        message: Option<serde_json::Value>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(bytes) else {
        return EntryInfo::default();
    };
    let time = match p.time {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(serde_json::Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
        }
        _ => None,
    }
    .unwrap_or(0);
    let message = match p.message {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    EntryInfo { time, message }
}

/// The hash under which a list message and its `F2B_CHANNEL` copy meet:
/// syslog-ng's `$(sanitize)` turns `/` and control characters into `_`, so
/// those (and `_`) compare equal.
fn echo_key(text: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text {
        let b = if b == b'/' || b == b'_' || b < 0x20 || b == 0x7f {
            b'_'
        } else {
            b
        };
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Recently read list messages, to recognise their channel copies. Bounded:
/// the oldest are forgotten first. Each list message matches one channel copy.
struct EchoSet {
    /// (key, sequence) in insertion order.
    order: VecDeque<(u64, u64)>,
    /// key → sequences not yet matched, oldest first.
    live: HashMap<u64, VecDeque<u64>>,
    seq: u64,
    cap: usize,
}

impl EchoSet {
    fn new(cap: usize) -> EchoSet {
        EchoSet {
            order: VecDeque::new(),
            live: HashMap::new(),
            seq: 0,
            cap,
        }
    }

    fn insert(&mut self, key: u64) {
        self.seq += 1;
        self.order.push_back((key, self.seq));
        self.live.entry(key).or_default().push_back(self.seq);
        while self.order.len() > self.cap {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if let Some(q) = self.live.get_mut(&old) {
                if q.front() == Some(&seq) {
                    q.pop_front();
                }
                if q.is_empty() {
                    self.live.remove(&old);
                }
            }
        }
    }

    /// Consumes one unmatched list message with this key.
    fn take(&mut self, key: u64) -> bool {
        let Some(q) = self.live.get_mut(&key) else {
            return false;
        };
        let found = q.pop_front().is_some();
        if q.is_empty() {
            self.live.remove(&key);
        }
        found
    }
}

// ---------------------------------------------------------------------------
// Per-list state.

/// The newest consumed entry and what was consumed before it, as runs of
/// identical entries (newest first): `runs[0]` is the anchor and how many
/// identical entries in a row ending at it were consumed. After a restart only
/// that first run is known.
#[derive(Clone, Debug, PartialEq)]
struct Anchor {
    runs: VecDeque<(u64, u32)>,
    /// The anchor's `time` field.
    time: i64,
    /// The runs reach down to the oldest entry the list had when reading
    /// began: nothing but trimming lies below them.
    complete: bool,
}

impl Anchor {
    fn from_checkpoint(hash: u64, time: i64, run: u32) -> Anchor {
        Anchor {
            runs: VecDeque::from([(hash, run.max(1))]),
            time,
            complete: false,
        }
    }

    /// The first entry read from a list's oldest end.
    fn oldest(hash: u64, time: i64) -> Anchor {
        Anchor {
            complete: true,
            ..Anchor::from_checkpoint(hash, time, 1)
        }
    }

    /// An anchor at an entry not read yet (reading starts above it), with
    /// the entries below it: `below` holds their hashes, newest first, the
    /// first one being the anchor; `reaches_tail` when they go down to the
    /// oldest entry.
    fn seeded(below: &[u64], time: i64, reaches_tail: bool) -> Option<Anchor> {
        let mut anchor: Option<Anchor> = None;
        for &h in below.iter().rev() {
            match &mut anchor {
                Some(a) => a.advance(h, time),
                None => {
                    anchor = Some(Anchor {
                        complete: reaches_tail,
                        ..Anchor::from_checkpoint(h, time, 1)
                    })
                }
            }
        }
        anchor
    }

    fn hash(&self) -> u64 {
        self.runs.front().map_or(0, |r| r.0)
    }

    fn run(&self) -> u32 {
        self.runs.front().map_or(0, |r| r.1)
    }

    /// Moves the anchor to a newly consumed entry.
    fn advance(&mut self, hash: u64, time: i64) {
        match self.runs.front_mut() {
            Some(first) if first.0 == hash => first.1 = first.1.saturating_add(1),
            _ => {
                self.runs.push_front((hash, 1));
                if self.runs.len() > CONTEXT {
                    self.runs.truncate(CONTEXT);
                    self.complete = false;
                }
            }
        }
        self.time = time;
    }

    /// The newest consumed entries' hashes, newest first, at most `n`.
    fn recent(&self, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n);
        for &(hash, count) in &self.runs {
            for _ in 0..count {
                if out.len() == n {
                    return out;
                }
                out.push(hash);
            }
        }
        out
    }

    /// How many consumed entries the runs describe (capped).
    fn described(&self) -> i64 {
        self.runs
            .iter()
            .map(|r| i64::from(r.1))
            .sum::<i64>()
            .min(VERIFY_WINDOW as i64)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::RedisList {
            newest_hash: self.hash(),
            newest_time: self.time,
            run: self.run(),
        }
    }
}

struct ListState {
    key: String,
    source: Arc<str>,
    hint: Option<Arc<str>>,
    anchor: Option<Anchor>,
    /// The list was seen empty while an anchor was held (reported once).
    seen_empty: bool,
    /// Last error reported for this list (to log changes only).
    last_error: Option<String>,
}

impl ListState {
    fn new(spec: &ListSpec, resume: Option<&Checkpoint>) -> ListState {
        let anchor = match resume {
            Some(Checkpoint::RedisList {
                newest_hash,
                newest_time,
                run,
            }) => Some(Anchor::from_checkpoint(*newest_hash, *newest_time, *run)),
            Some(other) => {
                warn!(list = %spec.key, checkpoint = ?other, "stored checkpoint is not a Redis list position; reading the list from its oldest entry");
                None
            }
            None => None,
        };
        ListState {
            key: spec.key.clone(),
            source: Arc::from(RedisConfig::source_key(&spec.key)),
            hint: spec.program_hint.as_deref().map(Arc::from),
            anchor,
            seen_empty: false,
            last_error: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Reading.

/// Reads list ranges through the read-only script.
struct Reader {
    conn: MultiplexedConnection,
    /// `EVAL_RO` is known to work (Redis ≥ 7); falls back to `EVAL`.
    read_only_eval: bool,
    max_bytes: usize,
}

/// One atomic read: the list length, the oldest entry's fingerprint, and the
/// entries of a range.
struct Range {
    llen: i64,
    tail_mark: TailMark,
    entries: Vec<RawEntry>,
}

/// Length and edge bytes of the oldest entry: changes when entries are
/// trimmed from the tail (unless they were identical to the new oldest one).
#[derive(Clone, Debug, PartialEq, Eq)]
struct TailMark(i64, Vec<u8>);

impl Reader {
    async fn range(&mut self, key: &str, start: i64, stop: i64) -> Result<Range, redis::RedisError> {
        loop {
            let command = if self.read_only_eval { "EVAL_RO" } else { "EVAL" };
            let reply: Result<redis::Value, _> = redis::cmd(command)
                .arg(RANGE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(start)
                .arg(stop)
                .arg(self.max_bytes)
                .query_async(&mut self.conn)
                .await;
            match reply {
                Ok(v) => return parse_range(v),
                Err(e)
                    if self.read_only_eval
                        && e.to_string().to_ascii_lowercase().contains("unknown command") =>
                {
                    debug!("EVAL_RO not supported (Redis before 7); using EVAL");
                    self.read_only_eval = false;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn parse_range(v: redis::Value) -> Result<Range, redis::RedisError> {
    let bad = || {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply to the list read",
        ))
    };
    let redis::Value::Array(items) = v else {
        return Err(bad());
    };
    let mut it = items.into_iter();
    let Some(redis::Value::Int(llen)) = it.next() else {
        return Err(bad());
    };
    let (Some(redis::Value::Int(tail_len)), Some(redis::Value::BulkString(tail_edges))) =
        (it.next(), it.next())
    else {
        return Err(bad());
    };
    let tail_mark = TailMark(tail_len, tail_edges);
    let mut entries = Vec::new();
    while let Some(len) = it.next() {
        let (redis::Value::Int(full_len), Some(redis::Value::BulkString(bytes))) = (len, it.next()) else {
            return Err(bad());
        };
        entries.push(RawEntry {
            full_len: usize::try_from(full_len).unwrap_or(0).max(bytes.len()),
            bytes,
        });
    }
    Ok(Range {
        llen,
        tail_mark,
        entries,
    })
}

/// Where the anchor is.
enum Located {
    /// At this tail index (`-1` is the oldest entry), in a list of `llen`
    /// entries at that read. `head` holds the read from the head that contains
    /// it (reused to emit without a second read).
    Found {
        tail: i64,
        llen: i64,
        mark: TailMark,
        head: Option<Range>,
    },
    /// Not in the list (trimmed away).
    Gone { llen: i64 },
    /// The trim job ran during the scan: scan again.
    Moved,
    /// The list is empty or missing.
    Empty,
}

/// Why a poll of one list ended early.
enum PollError {
    /// The connection failed: reconnect.
    Conn(redis::RedisError),
    /// This list cannot be read (e.g. wrong type); the others go on.
    List(String),
    /// Credentials rejected.
    Auth(redis::RedisError),
    /// Shutdown, or nobody receives records any more.
    Stop,
}

impl From<redis::RedisError> for PollError {
    fn from(e: redis::RedisError) -> PollError {
        if is_auth_error(&e) {
            PollError::Auth(e)
        } else if e.code() == Some("WRONGTYPE") {
            PollError::List("the key holds no list (WRONGTYPE); check the list name".to_owned())
        } else if e.code() == Some("NOPERM") {
            PollError::List(format!(
                "Redis denies reading it ({e}); the user needs +eval_ro (or +eval), +llen, +lrange, +lindex"
            ))
        } else {
            PollError::Conn(e)
        }
    }
}

/// Finds the anchor, scanning from the head: the start of a run of entries
/// identical to the anchor, at least as long as the consumed run, followed
/// (towards the tail) by the remembered older runs. The anchor is the newest
/// entry of the consumed part of that run.
async fn locate(reader: &mut Reader, key: &str, anchor: &Anchor, chunk: i64) -> Result<Located, PollError> {
    let h0 = anchor.hash();
    let n0 = i64::from(anchor.run());
    let overlap = anchor.described();
    let mut start = 0i64;
    let mut size = FIRST_CHUNK.min(chunk).max(1);
    let mut first_mark: Option<TailMark> = None;
    loop {
        let range = reader.range(key, start, start + size + overlap - 1).await?;
        if range.llen == 0 {
            return Ok(Located::Empty);
        }
        // "Gone" means data loss: only say it when the list's tail did not
        // move while scanning (a trim shifts the tail-addressed reads).
        let first = first_mark.get_or_insert_with(|| range.tail_mark.clone());
        let gone = if *first == range.tail_mark {
            Located::Gone { llen: range.llen }
        } else {
            Located::Moved
        };
        if range.entries.is_empty() {
            return Ok(gone);
        }
        let hashes: Vec<u64> = range.entries.iter().map(RawEntry::hash).collect();
        let at_end = start + hashes.len() as i64 >= range.llen;
        // The overlap is examined by the next read, except at the end.
        let candidates = if at_end {
            hashes.len()
        } else {
            hashes.len().min(size as usize)
        };
        let mut i = 0;
        while i < candidates {
            if hashes[i] != h0 || (i > 0 && hashes[i - 1] == h0) {
                i += 1;
                continue;
            }
            let after_window = start + hashes.len() as i64 - range.llen;
            let mut cursor = Cursor {
                window: &hashes[i..],
                pos: 0,
                extra: VecDeque::new(),
                next_tail: after_window,
                chunk,
            };
            if let Some(r0) = match_runs(&mut cursor, reader, key, &anchor.runs, anchor.complete).await? {
                let head_index = start + i as i64 + (r0 - n0).max(0);
                let tail = head_index - range.llen;
                let llen = range.llen;
                let mark = range.tail_mark.clone();
                let head = (start == 0 && (head_index as usize) < range.entries.len()).then_some(range);
                return Ok(Located::Found {
                    tail,
                    llen,
                    mark,
                    head,
                });
            }
            i += hashes[i..].iter().take_while(|h| **h == h0).count().max(1);
        }
        if at_end {
            return Ok(gone);
        }
        start += size;
        size = chunk;
    }
}

/// Walks entry hashes from a position towards the tail: first those already
/// read, then further reads addressed from the tail (stable under pushes).
struct Cursor<'a> {
    window: &'a [u64],
    pos: usize,
    extra: VecDeque<u64>,
    /// Tail index of the next entry not yet read (0: none left).
    next_tail: i64,
    chunk: i64,
}

impl Cursor<'_> {
    async fn peek(&mut self, reader: &mut Reader, key: &str) -> Result<Option<u64>, PollError> {
        if let Some(h) = self.window.get(self.pos) {
            return Ok(Some(*h));
        }
        if self.extra.is_empty() && self.next_tail < 0 {
            let stop = (self.next_tail + self.chunk - 1).min(-1);
            let range = reader.range(key, self.next_tail, stop).await?;
            self.extra.extend(range.entries.iter().map(RawEntry::hash));
            self.next_tail = if range.entries.is_empty() { 0 } else { stop + 1 };
        }
        Ok(self.extra.front().copied())
    }

    fn advance(&mut self) {
        if self.pos < self.window.len() {
            self.pos += 1;
        } else {
            self.extra.pop_front();
        }
    }
}

/// Matches the remembered runs at the cursor. Returns the length of the
/// first run found there (which may hold newer identical entries above the
/// consumed ones), or `None` when the runs do not match. Where the list ends
/// inside the runs (trimmed), what was there matches. With `complete` runs
/// the list must end right below them.
async fn match_runs(
    cursor: &mut Cursor<'_>,
    reader: &mut Reader,
    key: &str,
    runs: &VecDeque<(u64, u32)>,
    complete: bool,
) -> Result<Option<i64>, PollError> {
    let Some(&(h0, n0)) = runs.front() else {
        return Ok(None);
    };
    let mut r0 = 0i64;
    while cursor.peek(reader, key).await? == Some(h0) {
        cursor.advance();
        r0 += 1;
    }
    if r0 < i64::from(n0) {
        // Shorter than the consumed run: a newer repeat, unless the trim job
        // cut the run at the tail.
        return Ok(cursor.peek(reader, key).await?.is_none().then_some(r0));
    }
    if complete && runs.len() == 1 {
        return Ok(cursor.peek(reader, key).await?.is_none().then_some(r0));
    }
    let last = runs.len().saturating_sub(1);
    for (k, &(h, n)) in runs.iter().enumerate().skip(1) {
        let n = i64::from(n);
        let mut r = 0i64;
        loop {
            match cursor.peek(reader, key).await? {
                None => return Ok(Some(r0)),
                Some(x) if x == h && !(k == last && r >= n && !complete) => {
                    cursor.advance();
                    r += 1;
                }
                Some(_) => break,
            }
        }
        // The oldest remembered run may go on below (entries never consumed,
        // or forgotten) unless the runs are complete; the others are exact.
        let fits = if k == last && !complete { r >= n } else { r == n };
        if !fits {
            return Ok(None);
        }
    }
    if complete && cursor.peek(reader, key).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(r0))
}

// ---------------------------------------------------------------------------
// The channel subscriber.

enum ChannelEvent {
    /// (Re)subscribed: poll, wake-ups may have been missed.
    Subscribed,
    /// A message (cut at the limit) and whether it was cut.
    Message(Vec<u8>, bool),
    /// Credentials rejected.
    Fatal(CollectError),
}

struct ChannelTaskConfig {
    channel: String,
    addr: String,
    has_password: bool,
    timeout: Duration,
    max_backoff: Duration,
    max_bytes: usize,
}

async fn channel_task(
    client: redis::Client,
    cfg: ChannelTaskConfig,
    tx: mpsc::Sender<ChannelEvent>,
    stats: Arc<RedisStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.max_backoff);
    let mut subscribed_before = false;
    let mut dropped_logged = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(cfg.timeout, subscribe(&client, &cfg.channel)) => r,
        };
        let pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) if is_auth_error(&e) => {
                let err = auth_error(&cfg.addr, cfg.has_password, &e);
                stats.set_error(err.to_string());
                let _ = tx.send(ChannelEvent::Fatal(err)).await;
                return;
            }
            failed => {
                let e = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", cfg.timeout),
                };
                let msg = format!("cannot subscribe to {} at {}: {e}", cfg.channel, cfg.addr);
                warn!("{msg}");
                stats.set_error(msg);
                if !sleep_or_cancel(backoff.step(), &shutdown).await {
                    return;
                }
                continue;
            }
        };
        if subscribed_before {
            RedisStats::add(&stats.reconnects, 1);
            info!(channel = %cfg.channel, "resubscribed");
        } else {
            info!(channel = %cfg.channel, addr = %cfg.addr, "subscribed");
        }
        subscribed_before = true;
        backoff.reset();
        stats.channel_connected.store(true, Ordering::Relaxed);
        if tx.send(ChannelEvent::Subscribed).await.is_err() {
            return;
        }
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(CHANNEL_PING);
        ping.tick().await;
        let lost = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = stream.next() => {
                    let Some(msg) = msg else { break "the connection closed".to_owned() };
                    RedisStats::add(&stats.channel_messages, 1);
                    let payload = msg.get_payload_bytes();
                    let cut = payload.len() > cfg.max_bytes;
                    let bytes = payload[..payload.len().min(cfg.max_bytes)].to_vec();
                    match tx.try_send(ChannelEvent::Message(bytes, cut)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            RedisStats::add(&stats.channel_dropped, 1);
                            let dropped = stats.channel_dropped.load(Ordering::Relaxed);
                            if dropped > dropped_logged * 2 {
                                dropped_logged = dropped;
                                warn!(dropped, "channel messages dropped: the collector is behind (the ingest side is slow)");
                            }
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(cfg.timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break format!("ping failed: {e}"),
                        Err(_) => break format!("no ping answer within {:?}", cfg.timeout),
                    }
                }
            }
        };
        stats.channel_connected.store(false, Ordering::Relaxed);
        let msg = format!("subscription to {} at {} lost: {lost}", cfg.channel, cfg.addr);
        warn!("{msg}");
        stats.set_error(msg);
        if !sleep_or_cancel(backoff.step(), &shutdown).await {
            return;
        }
    }
}

async fn subscribe(client: &redis::Client, channel: &str) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// A channel message waiting for its list copy.
struct Pending {
    key: u64,
    bytes: Vec<u8>,
    truncated: bool,
    deadline: Instant,
}

// ---------------------------------------------------------------------------
// The poller.

/// How a connected session ended.
enum SessionEnd {
    Stop,
    Lost(String),
    Fatal(CollectError),
}

struct Collector {
    cfg: RedisConfig,
    client: redis::Client,
    lists: Vec<ListState>,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<RedisStats>,
    shutdown: CancellationToken,
    chan_rx: Option<mpsc::Receiver<ChannelEvent>>,
    echo: EchoSet,
    pending: VecDeque<Pending>,
    channel_source: Arc<str>,
    channel_hint: Option<Arc<str>>,
}

impl Collector {
    async fn run(&mut self) -> Result<(), CollectError> {
        let addr = self.cfg.addr();
        let mut backoff = Backoff::new(self.cfg.max_backoff);
        let mut connected_before = false;
        let result = loop {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.cfg.timeout))
                .set_response_timeout(Some(self.cfg.timeout));
            let conn = tokio::select! {
                _ = self.shutdown.cancelled() => break Ok(()),
                c = self.client.get_multiplexed_async_connection_with_config(&config) => c,
            };
            let conn = match conn {
                Ok(c) => c,
                Err(e) if is_auth_error(&e) => {
                    let err = auth_error(&addr, self.cfg.password.is_some(), &e);
                    self.stats.set_error(err.to_string());
                    break Err(err);
                }
                Err(e) => {
                    let msg = format!("cannot connect to Redis at {addr}: {e}");
                    warn!("{msg}");
                    self.stats.set_error(msg);
                    if !sleep_or_cancel(backoff.step(), &self.shutdown).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            if connected_before {
                RedisStats::add(&self.stats.reconnects, 1);
                info!(%addr, "reconnected to Redis");
            } else {
                info!(%addr, lists = self.lists.len(), "connected to Redis");
            }
            connected_before = true;
            self.stats.connected.store(true, Ordering::Relaxed);
            let mut reader = Reader {
                conn,
                read_only_eval: true,
                max_bytes: self.cfg.max_entry_bytes,
            };
            let end = self.session(&mut reader, &mut backoff).await;
            self.stats.connected.store(false, Ordering::Relaxed);
            match end {
                SessionEnd::Stop => break Ok(()),
                SessionEnd::Fatal(e) => {
                    self.stats.set_error(e.to_string());
                    break Err(e);
                }
                SessionEnd::Lost(e) => {
                    let msg = format!("lost Redis at {addr}: {e}");
                    warn!("{msg}");
                    self.stats.set_error(msg);
                    if !sleep_or_cancel(backoff.step(), &self.shutdown).await {
                        break Ok(());
                    }
                }
            }
        };
        // Channel-only messages are live-only: do not lose those already
        // received (bounded wait: the ingest side may be gone).
        if result.is_ok() {
            let flush = self.flush_pending_all();
            let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
        }
        result
    }

    /// Polls while connected.
    async fn session(&mut self, reader: &mut Reader, backoff: &mut Backoff) -> SessionEnd {
        let mut next_poll = Instant::now();
        let mut last_poll = Instant::now();
        loop {
            let now = Instant::now();
            // A channel message whose grace is over gets one more poll before
            // it is called channel-only: its list copy may have just arrived.
            let pending_due = self.pending.front().is_some_and(|p| p.deadline <= now);
            if now >= next_poll || pending_due {
                last_poll = now;
                if let Some(end) = self.poll_all(reader).await {
                    return end;
                }
                // A full poll worked: the connection is healthy.
                backoff.reset();
                RedisStats::add(&self.stats.polls, 1);
                next_poll = Instant::now() + self.cfg.poll_interval;
            }
            if self.settle_pending().await.is_err() {
                return SessionEnd::Stop;
            }
            let wake = self
                .pending
                .front()
                .map_or(next_poll, |p| p.deadline.min(next_poll));
            let event = tokio::select! {
                _ = self.shutdown.cancelled() => return SessionEnd::Stop,
                _ = tokio::time::sleep_until(wake) => None,
                ev = recv_channel(&mut self.chan_rx) => ev,
            };
            match event {
                None => {}
                Some(ChannelEvent::Subscribed) => next_poll = Instant::now(),
                Some(ChannelEvent::Fatal(e)) => return SessionEnd::Fatal(e),
                Some(ChannelEvent::Message(bytes, cut)) => {
                    self.queue_message(bytes, cut);
                    // Take whatever else has arrived, then poll once for all.
                    while let Some(rx) = &mut self.chan_rx {
                        match rx.try_recv() {
                            Ok(ChannelEvent::Message(b, c)) => self.queue_message(b, c),
                            Ok(ChannelEvent::Subscribed) => {}
                            Ok(ChannelEvent::Fatal(e)) => return SessionEnd::Fatal(e),
                            Err(_) => break,
                        }
                    }
                    next_poll = next_poll.min((last_poll + self.cfg.min_wake_gap).max(Instant::now()));
                }
            }
        }
    }

    fn queue_message(&mut self, bytes: Vec<u8>, truncated: bool) {
        self.pending.push_back(Pending {
            key: echo_key(&bytes),
            bytes,
            truncated,
            deadline: Instant::now() + self.cfg.echo_grace,
        });
    }

    /// Drops channel messages whose list copy was read; emits those whose
    /// grace time is over (or that overflow the queue).
    async fn settle_pending(&mut self) -> Result<(), ()> {
        let now = Instant::now();
        let mut keep = VecDeque::with_capacity(self.pending.len());
        let mut due = Vec::new();
        while let Some(p) = self.pending.pop_front() {
            if self.echo.take(p.key) {
                continue;
            }
            if p.deadline <= now || keep.len() >= MAX_PENDING {
                due.push(p);
            } else {
                keep.push_back(p);
            }
        }
        self.pending = keep;
        for p in due {
            self.emit_channel_only(p).await?;
        }
        Ok(())
    }

    async fn flush_pending_all(&mut self) {
        while let Some(p) = self.pending.pop_front() {
            if self.echo.take(p.key) {
                continue;
            }
            if self.emit_channel_only(p).await.is_err() {
                return;
            }
        }
    }

    async fn emit_channel_only(&mut self, p: Pending) -> Result<(), ()> {
        if p.truncated {
            RedisStats::add(&self.stats.truncated, 1);
        }
        let rec = SourceRecord {
            source: Arc::clone(&self.channel_source),
            line: line_of(&p.bytes),
            truncated: p.truncated,
            format: Format::Raw,
            program_hint: self.channel_hint.clone(),
            received: now(),
            checkpoint: Checkpoint::None,
        };
        // At shutdown the token is already cancelled: send without it.
        self.tx.send(rec).await.map_err(|_| ())?;
        RedisStats::add(&self.stats.channel_only, 1);
        Ok(())
    }

    /// Polls every list once. `Some` ends the session.
    async fn poll_all(&mut self, reader: &mut Reader) -> Option<SessionEnd> {
        for i in 0..self.lists.len() {
            match self.poll_list(reader, i).await {
                Ok(()) => {
                    self.lists[i].last_error = None;
                }
                Err(PollError::Stop) => return Some(SessionEnd::Stop),
                Err(PollError::Conn(e)) => return Some(SessionEnd::Lost(e.to_string())),
                Err(PollError::Auth(e)) => {
                    return Some(SessionEnd::Fatal(auth_error(
                        &self.cfg.addr(),
                        self.cfg.password.is_some(),
                        &e,
                    )));
                }
                Err(PollError::List(msg)) => {
                    let list = &mut self.lists[i];
                    let msg = format!("{}: {msg}", list.key);
                    if list.last_error.as_deref() != Some(msg.as_str()) {
                        warn!("{msg}");
                        self.stats.set_error(msg.clone());
                        list.last_error = Some(msg);
                    }
                }
            }
        }
        None
    }

    async fn poll_list(&mut self, reader: &mut Reader, i: usize) -> Result<(), PollError> {
        let chunk = i64::try_from(self.cfg.chunk_size).unwrap_or(i64::MAX / 4);
        let key = self.lists[i].key.clone();
        for _ in 0..MAX_RELOCATES {
            let located = match &self.lists[i].anchor {
                Some(anchor) => locate(reader, &key, anchor, chunk).await?,
                None => {
                    // Only the length (an empty range).
                    let range = reader.range(&key, 1, 0).await?;
                    if range.llen == 0 {
                        return Ok(());
                    }
                    Located::Gone { llen: range.llen }
                }
            };
            let (start_tail, verify, head, mark) = match located {
                Located::Moved => continue,
                Located::Empty => {
                    let list = &mut self.lists[i];
                    if list.anchor.is_some() && !list.seen_empty {
                        info!(list = %key, "the list is empty (flushed, or Redis restarted without its data); reading it afresh");
                        RedisStats::add(&self.stats.resets, 1);
                        list.seen_empty = true;
                    }
                    list.anchor = None;
                    return Ok(());
                }
                Located::Found {
                    tail,
                    llen,
                    mark,
                    head,
                } => {
                    // Entries above the anchor, at that read.
                    let newer = tail + llen;
                    match self.cfg.max_catch_up {
                        // Too far behind: skip to the newest `max_catch_up`.
                        Some(max) if newer > max as i64 => {
                            self.skip(i, (newer - max as i64) as u64);
                            (max as i64 - llen, false, head, Some(mark))
                        }
                        _ => (tail, true, head, Some(mark)),
                    }
                }
                Located::Gone { llen } => {
                    let list = &mut self.lists[i];
                    if list.anchor.take().is_some() && !list.seen_empty {
                        RedisStats::add(&self.stats.gaps, 1);
                        warn!(list = %key, "the last entry read is no longer in the list: it was trimmed (LOG_LINES) before mailwarden could read what came after it; entries were lost. Reading all that is left");
                    }
                    list.seen_empty = false;
                    match self.cfg.max_catch_up {
                        Some(max) if llen > max as i64 => {
                            self.skip(i, (llen - max as i64) as u64);
                            (max as i64 - llen, false, None, None)
                        }
                        _ => (0, false, None, None),
                    }
                }
            };
            // Reading starts above an entry that is not read (max_catch_up):
            // remember the entries below it as if read, to find the place
            // again.
            let (verify, mark) = if !verify && start_tail < 0 {
                let stop = (start_tail + VERIFY_WINDOW as i64 - 1).min(-1);
                let below = reader.range(&key, start_tail, stop).await?;
                let hashes: Vec<u64> = below.entries.iter().map(RawEntry::hash).collect();
                let time = below.entries.first().map_or(0, |e| entry_info(&e.bytes).time);
                let reaches_tail = stop == -1 && hashes.len() as i64 == -start_tail;
                self.lists[i].anchor = Anchor::seeded(&hashes, time, reaches_tail);
                (self.lists[i].anchor.is_some(), Some(below.tail_mark))
            } else {
                (verify, mark)
            };
            match self.emit_newer(reader, i, start_tail, verify, head, mark).await? {
                Emitted::Done => return Ok(()),
                Emitted::Changed => {
                    debug!(list = %key, "the list changed between two reads; locating again");
                }
            }
        }
        Err(PollError::List(
            "the list keeps changing between reads; will try again at the next poll".to_owned(),
        ))
    }

    fn skip(&mut self, i: usize, n: u64) {
        let list = &mut self.lists[i];
        list.anchor = None;
        RedisStats::add(&self.stats.skipped, n);
        warn!(list = %list.key, skipped = n, "more entries than max_catch_up: reading only the newest ones");
    }

    /// Emits the entries above tail index `tail` (0: above the oldest entry),
    /// oldest first. With `verify`, each read must show the anchor and its
    /// context at their place, else the list changed.
    async fn emit_newer(
        &mut self,
        reader: &mut Reader,
        i: usize,
        mut tail: i64,
        mut verify: bool,
        mut head: Option<Range>,
        mut mark: Option<TailMark>,
    ) -> Result<Emitted, PollError> {
        let chunk = i64::try_from(self.cfg.chunk_size).unwrap_or(i64::MAX / 4);
        let key = self.lists[i].key.clone();
        let mut emitted = 0u64;
        loop {
            let context: Vec<u64> = match (&self.lists[i].anchor, verify) {
                (Some(a), true) => a.recent(VERIFY_WINDOW),
                _ => Vec::new(),
            };
            let lo = tail - chunk;
            let hi = if context.is_empty() {
                tail - 1
            } else {
                (tail + context.len() as i64 - 1).min(-1)
            };
            // A read from the head (made while locating) serves when it holds
            // the anchor's position; its first entry is the head.
            let prefetched = head.take().filter(|h| {
                let at = tail + h.llen;
                let needed = at + if verify { context.len() as i64 } else { 0 };
                let reaches_tail = h.entries.len() as i64 >= h.llen;
                at >= 0
                    && (at as usize) < h.entries.len() + usize::from(!verify)
                    && (needed <= h.entries.len() as i64 || reaches_tail)
            });
            let (range, base) = match prefetched {
                Some(h) => {
                    let base = -h.llen;
                    (h, base)
                }
                None => {
                    let r = reader.range(&key, lo, hi).await?;
                    // LRANGE clamps a start before the head to the head.
                    let base = lo.max(-r.llen);
                    (r, base)
                }
            };
            if range.llen == 0 {
                return Ok(Emitted::Changed);
            }
            // Entries trimmed from the tail since the last read move every
            // tail index: locate again.
            if mark.as_ref().is_some_and(|m| *m != range.tail_mark) {
                return Ok(Emitted::Changed);
            }
            mark = Some(range.tail_mark.clone());
            let at = tail - base;
            if verify {
                if at < 0 || at as usize >= range.entries.len() {
                    return Ok(Emitted::Changed);
                }
                let at = at as usize;
                for (j, want) in context.iter().enumerate() {
                    match range.entries.get(at + j) {
                        Some(e) if e.hash() == *want => {}
                        Some(_) => return Ok(Emitted::Changed),
                        // Older context trimmed away: fine if the read reached the tail.
                        None if at + j == range.entries.len() && base + range.entries.len() as i64 == 0 => {
                            break;
                        }
                        None => return Ok(Emitted::Changed),
                    }
                }
            }
            let newer = (at.max(0) as usize).min(range.entries.len());
            for entry in range.entries[..newer].iter().rev() {
                self.emit_entry(i, entry).await?;
                emitted += 1;
            }
            if newer > 0 {
                verify = true;
            }
            if base <= -range.llen {
                if emitted > 100 {
                    info!(list = %key, entries = emitted, "caught up");
                }
                return Ok(Emitted::Done);
            }
            tail = base;
        }
    }

    async fn emit_entry(&mut self, i: usize, entry: &RawEntry) -> Result<(), PollError> {
        let info = entry_info(&entry.bytes);
        let hash = entry.hash();
        if let Some(m) = &info.message {
            self.echo.insert(echo_key(m.as_bytes()));
        }
        let list = &mut self.lists[i];
        let anchor = match &list.anchor {
            Some(a) => {
                let mut a = a.clone();
                a.advance(hash, info.time);
                a
            }
            // Reading began at the list's oldest entry.
            None => Anchor::oldest(hash, info.time),
        };
        let rec = SourceRecord {
            source: Arc::clone(&list.source),
            line: line_of(&entry.bytes),
            truncated: entry.truncated(),
            format: Format::Mailcow,
            program_hint: list.hint.clone(),
            received: now(),
            checkpoint: anchor.checkpoint(),
        };
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Err(PollError::Stop),
            sent = self.tx.send(rec) => sent.map_err(|_| PollError::Stop)?,
        }
        // Only what was handed over counts as consumed.
        let list = &mut self.lists[i];
        list.anchor = Some(anchor);
        list.seen_empty = false;
        RedisStats::add(&self.stats.entries, 1);
        if entry.truncated() {
            RedisStats::add(&self.stats.truncated, 1);
        }
        Ok(())
    }
}

enum Emitted {
    Done,
    Changed,
}

async fn recv_channel(rx: &mut Option<mpsc::Receiver<ChannelEvent>>) -> Option<ChannelEvent> {
    match rx {
        Some(r) => match r.recv().await {
            Some(ev) => Some(ev),
            None => {
                // The subscriber ended (shutdown): stop listening to it.
                *rx = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
