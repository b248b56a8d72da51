//! Collecting the logs of Docker containers (Mailcow's `postfix-mailcow`,
//! `dovecot-mailcow`, `rspamd-mailcow`, …) through the engine's API, with a
//! direct read of the engine's data root as a fallback when the engine is
//! unreachable.
//!
//! # Sources and records
//!
//! Each container is a source `docker:<container name>` (the name without its
//! leading slash, e.g. `docker:mailcowdockerized-postfix-mailcow-1`). Compose
//! names survive `docker compose up` re-creating a container with a new id, so
//! the checkpoint of a name carries over to its new container.
//!
//! Every record's `line` is a line of Docker's json-file log driver,
//! `{"log":"<text>\n","stream":"stdout","time":"<RFC 3339, ns, UTC>"}`, with
//! [`Format::Docker`] — whichever way it was collected: read from a data root,
//! it is the file's line as it is (cut at [`DockerConfig::max_line_bytes`]);
//! followed through the API, the same JSON is written from the log frame and its
//! timestamp, with Docker's field order, time format and string escaping (so a
//! plain record is the same bytes either way). `received` is the line's Docker
//! timestamp; `program_hint` is the compose service (see [`program_hint`]).
//!
//! # Checkpoints
//!
//! [`Checkpoint::Docker`]: the container id, the timestamp (ns) of the last
//! line consumed and how many consumed lines carry exactly that stamp. On
//! resume every line older than the stamp is skipped, and of the lines with
//! exactly that stamp as many as were consumed (only when the container id is
//! the same: a re-created container's lines are all new). The API's `since`
//! filter is asked for one second before the stamp (Docker's filter is
//! inclusive, Podman's exclusive); the rest is skipped by the stamp.
//!
//! A line without a readable stamp (not JSON, cut at the length limit) takes
//! the stamp of the line before it in the same container (the epoch for the
//! first), so resuming treats it exactly as the first pass did. Such lines are
//! still emitted — they become unparsed records downstream, never lost.
//!
//! # The API
//!
//! [`run`] connects to [`DockerConfig::socket`] (Docker, or Podman's
//! Docker-compatible service), lists all containers — running or not — with
//! the label `com.docker.compose.project=<project>` every
//! [`DockerConfig::poll_interval`], and follows each container's logs in its own
//! task. One name is followed by one task at a time: when the name points at a
//! new container, the old stream is ended and the new container is followed
//! from the name's checkpoint. Stopped containers are read to their end and
//! looked at again every 12 polls (a stopped container may have run in between).
//!
//! # Fallback: the data root
//!
//! When the socket is missing, refuses connections or goes away, [`run`] reads
//! the data root ([`DockerConfig::data_root`], `/var/lib/docker`) once —
//! `containers/<id>/config.v2.json` for the name and labels,
//! `containers/<id>/<id>-json.log` and its rotated generations `.1`, `.2`, …,
//! `.N.gz` (Docker's `max-file` and `compress` options) oldest first, skipping
//! what the checkpoints say was consumed — and then retries the API with
//! exponential backoff (up to 60 s). [`read_data_root`] is that same read as a
//! one-shot function, for `mailwarden ingest --docker-data-root`. Podman keeps no
//! Docker data root: with Podman the fallback finds nothing (reported once per
//! outage) and the collector simply waits for the service to come back.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as ApiError;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use mailwarden_core::framing::Format;
use mailwarden_core::time::Timestamp;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Checkpoint, SourceRecord};
use crate::input::{InputSource, LineReader, open_input};

#[cfg(test)]
mod tests;

/// The compose label naming a container's project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The compose label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Shortest poll interval honoured (a zero interval must not spin).
const MIN_POLL: Duration = Duration::from_millis(10);
/// Seconds bollard waits for an answer's headers (not for a followed stream).
const API_TIMEOUT_SECS: u64 = 30;
/// Stopped containers (and failed follows) are looked at again after this many polls.
const RECHECK_POLLS: u32 = 12;

/// Configuration of the Docker collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerConfig {
    /// The engine's API socket. Default `/var/run/docker.sock` (Podman's
    /// Docker-compatible service: `/run/podman/podman.sock`).
    pub socket: PathBuf,
    /// The compose project whose containers are followed (the value of the
    /// `com.docker.compose.project` label); `None` follows every container.
    pub project: Option<String>,
    /// The engine's data root, read directly while the API is unreachable.
    /// Default `/var/lib/docker`.
    pub data_root: PathBuf,
    /// How often containers are listed again (new and re-created containers are
    /// picked up) and the first wait before retrying an unreachable engine.
    /// Default 5 s.
    pub poll_interval: Duration,
    /// Longest line kept; longer lines are cut (`truncated`). Default 64 KiB.
    pub max_line_bytes: usize,
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            socket: PathBuf::from("/var/run/docker.sock"),
            project: None,
            data_root: PathBuf::from("/var/lib/docker"),
            poll_interval: Duration::from_secs(5),
            max_line_bytes: 64 * 1024,
        }
    }
}

/// Why the Docker collector or a data-root read could not run.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The configuration cannot be used.
    #[error("docker: {0}")]
    Config(String),
    /// The data root's container directory cannot be listed.
    #[error("{path}: {reason}")]
    DataRoot {
        /// The directory.
        path: String,
        /// What is wrong, and what to check.
        reason: String,
    },
    /// A reader task failed (a panic in the reader).
    #[error("docker collector task failed: {0}")]
    Task(String),
}

/// How the collector is reading right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Connecting = 0,
    Api = 1,
    DataRoot = 2,
}

impl Mode {
    fn name(v: u8) -> &'static str {
        match v {
            1 => "api",
            2 => "data_root",
            _ => "connecting",
        }
    }
}

/// Live counters of the Docker collector, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct DockerStats {
    mode: AtomicU8,
    containers: AtomicU64,
    lines: AtomicU64,
    skipped: AtomicU64,
    bad_lines: AtomicU64,
    truncated: AtomicU64,
    reconnects: AtomicU64,
    catchups: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`DockerStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DockerStatsSnapshot {
    /// `connecting` (before the first answer), `api` (following through the
    /// engine's API) or `data_root` (the engine is unreachable: the data root
    /// was read, the API is being retried).
    pub mode: String,
    /// Containers matching the project: listed by the API, or read from the
    /// data root in the last catch-up.
    pub containers: u64,
    /// Lines emitted.
    pub lines: u64,
    /// Lines skipped because a checkpoint says they were consumed already.
    pub skipped: u64,
    /// Lines that are not a valid json-file record (emitted all the same).
    pub bad_lines: u64,
    /// Lines cut at the length limit.
    pub truncated: u64,
    /// Connection attempts after the engine was unreachable or went away.
    pub reconnects: u64,
    /// Reads of the data root while the engine was unreachable.
    pub catchups: u64,
    /// Errors (unreachable engine, unreadable containers or files); the
    /// collector goes on.
    pub errors: u64,
    /// The latest error, for status output.
    pub last_error: Option<String>,
}

impl DockerStats {
    /// The current values.
    pub fn snapshot(&self) -> DockerStatsSnapshot {
        DockerStatsSnapshot {
            mode: Mode::name(self.mode.load(Ordering::Relaxed)).to_owned(),
            containers: self.containers.load(Ordering::Relaxed),
            lines: self.lines.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            bad_lines: self.bad_lines.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            catchups: self.catchups.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Counts an error; logs it as a warning unless it repeats the last one
    /// (an engine that stays down is reported once, not at every retry).
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_error.lock() {
            if g.as_deref() == Some(what.as_str()) {
                tracing::debug!("{what}");
            } else {
                tracing::warn!("{what}");
                *g = Some(what);
            }
        }
    }
}

/// What [`read_data_root`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DataRootSummary {
    /// Containers matching the project whose configuration was read.
    pub containers: usize,
    /// Log files read (live and rotated generations).
    pub files: usize,
    /// Lines emitted.
    pub lines: u64,
    /// Lines skipped because the checkpoint says they were consumed already.
    pub skipped: u64,
    /// Lines that are not a valid json-file record (emitted all the same).
    pub bad_lines: u64,
    /// Lines cut at the length limit (also counted in `bad_lines`: a cut
    /// record is no longer valid JSON).
    pub truncated: u64,
    /// Containers and files that could not be read (each message names the
    /// file); they were skipped, everything else was read.
    pub errors: Vec<String>,
}

/// The source key of a container: `docker:<name>`, the name without its
/// leading slash.
pub fn source_key(container_name: &str) -> String {
    format!("docker:{}", container_name.trim_start_matches('/'))
}

/// The program to assume for a container's lines that name none: its compose
/// service without Mailcow's `-mailcow` suffix (`postfix-mailcow` → `postfix`,
/// `dovecot-mailcow` → `dovecot`; `mysql-mailcow` → `mariadb`, the server it
/// runs), else the container name.
pub fn program_hint(service: Option<&str>, container_name: &str) -> String {
    match service.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let base = s.strip_suffix("-mailcow").unwrap_or(s);
            match base {
                "mysql" => "mariadb".to_owned(),
                _ => base.to_owned(),
            }
        }
        None => container_name.trim_start_matches('/').to_owned(),
    }
}

/// Nanoseconds since the epoch of an RFC 3339 stamp.
fn parse_nanos(s: &str) -> Option<i128> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_nanosecond)
}

/// A line's Docker stamp as the core's timestamp (microseconds, UTC).
fn timestamp_of(nanos: i128) -> Timestamp {
    let micros = nanos.div_euclid(1000);
    Timestamp::from_unix_micros(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

fn system_time_nanos(t: SystemTime) -> Option<i128> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i128::try_from(d.as_nanos()).ok())
}

// ---------------------------------------------------------------------------
// Positions

/// A container stream's position: after the last consumed line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    container_id: Arc<str>,
    last_nanos: i128,
    same_stamp_seen: u32,
}

/// One source's position plus the resume filter of the stream being read.
#[derive(Clone, Debug, Default)]
struct Cursor {
    pos: Option<Position>,
    /// While set: lines older than `.0` are skipped, and `.1` more lines
    /// stamped exactly `.0`. Cleared by the first line that is not skipped.
    filter: Option<(i128, u32)>,
}

impl Cursor {
    fn from_checkpoint(cp: Option<&Checkpoint>) -> Cursor {
        let pos = match cp {
            Some(Checkpoint::Docker {
                container_id,
                last_nanos,
                same_stamp_seen,
            }) => Some(Position {
                container_id: Arc::from(container_id.as_str()),
                last_nanos: *last_nanos,
                same_stamp_seen: *same_stamp_seen,
            }),
            _ => None,
        };
        Cursor { pos, filter: None }
    }

    /// Starts reading a stream of `container_id` from its beginning (or from
    /// shortly before the position): lines up to the position will be skipped.
    fn begin(&mut self, container_id: &str) {
        self.filter = self.pos.as_ref().map(|p| {
            let same = &*p.container_id == container_id;
            (p.last_nanos, if same { p.same_stamp_seen } else { 0 })
        });
    }

    /// Whether a line with this stamp was consumed before (then it is counted
    /// as skipped by the filter).
    fn skip(&mut self, nanos: i128) -> bool {
        let Some((floor, equal)) = &mut self.filter else {
            return false;
        };
        if nanos < *floor {
            return true;
        }
        if nanos == *floor && *equal > 0 {
            *equal -= 1;
            return true;
        }
        self.filter = None;
        false
    }

    /// The position after consuming a line with this stamp (not committed).
    fn next(&self, container_id: &Arc<str>, nanos: i128) -> Position {
        match &self.pos {
            Some(p) if p.last_nanos == nanos && p.container_id == *container_id => Position {
                container_id: p.container_id.clone(),
                last_nanos: nanos,
                same_stamp_seen: p.same_stamp_seen.saturating_add(1),
            },
            _ => Position {
                container_id: container_id.clone(),
                last_nanos: nanos,
                same_stamp_seen: 1,
            },
        }
    }

    fn commit(&mut self, pos: Position) {
        self.pos = Some(pos);
    }

    /// The `since` (Unix seconds) to ask the API for: one second before the
    /// position (Podman's `since` is exclusive), 0 (everything) without one.
    fn since_secs(&self) -> i32 {
        self.pos.as_ref().map_or(0, |p| {
            let s = p.last_nanos.div_euclid(1_000_000_000) - 1;
            i32::try_from(s.max(0)).unwrap_or(i32::MAX)
        })
    }

    /// The stamp given to a line without one: the last consumed line's.
    fn last_nanos(&self) -> Option<i128> {
        self.pos.as_ref().map(|p| p.last_nanos)
    }
}

fn checkpoint_of(pos: &Position) -> Checkpoint {
    Checkpoint::Docker {
        container_id: pos.container_id.to_string(),
        last_nanos: pos.last_nanos,
        same_stamp_seen: pos.same_stamp_seen,
    }
}

fn cursors_from(resume: &BTreeMap<String, Checkpoint>) -> HashMap<String, Cursor> {
    resume
        .iter()
        .filter(|(k, c)| k.starts_with("docker:") && matches!(c, Checkpoint::Docker { .. }))
        .map(|(k, c)| (k.clone(), Cursor::from_checkpoint(Some(c))))
        .collect()
}

/// What every record of one container carries besides its line.
#[derive(Clone, Debug)]
struct EmitMeta {
    key: Arc<str>,
    hint: Option<Arc<str>>,
}

impl EmitMeta {
    fn new(name: &str, service: Option<&str>) -> EmitMeta {
        let name = name.trim_start_matches('/');
        EmitMeta {
            key: Arc::from(source_key(name)),
            hint: Some(Arc::from(program_hint(service, name))),
        }
    }

    fn record(&self, line: String, truncated: bool, received: Timestamp, pos: &Position) -> SourceRecord {
        SourceRecord {
            source: self.key.clone(),
            line,
            truncated,
            format: Format::Docker,
            program_hint: self.hint.clone(),
            received,
            checkpoint: checkpoint_of(pos),
        }
    }
}

// ---------------------------------------------------------------------------
// The json-file format

/// One json-file record, written the way Docker's json-file driver writes it.
#[derive(Serialize)]
struct JsonFileRecord<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// What the parser needs of a json-file line.
#[derive(Deserialize)]
struct JsonFileFields<'a> {
    log: Option<IgnoredAny>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

/// serde_json's output with the escaping of Docker's json-file writer: `<`,
/// `>`, `&`, U+2028 and U+2029 as `\u` escapes, and control characters other
/// than `\n` and `\r` as `\u00XX` (also tab, backspace and form feed).
struct DockerEscapes;

impl serde_json::ser::Formatter for DockerEscapes {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, escape: serde_json::ser::CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        use serde_json::ser::CharEscape;
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Tab => b"\\u0009",
            CharEscape::AsciiControl(b) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                return writer.write_all(&buf);
            }
        };
        writer.write_all(s)
    }
}

/// Writes a json-file line for `text` (the log message, with its newline if it
/// had one) of `stream` stamped `nanos`. Returns the line and whether `text`
/// had to be cut for the line to fit in `max_bytes` (the envelope itself is
/// never cut, so a limit below ~70 bytes is exceeded by it).
fn json_file_line(text: &str, stream: &str, nanos: i128, max_bytes: usize) -> (String, bool) {
    let time = jiff::Timestamp::from_nanosecond(nanos)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
    let write = |log: &str| -> String {
        let mut out = Vec::with_capacity(log.len() + time.len() + 40);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, DockerEscapes);
        let rec = JsonFileRecord {
            log,
            stream,
            time: &time,
        };
        // Serializing three strings into a Vec cannot fail.
        if rec.serialize(&mut ser).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    };
    let mut line = write(text);
    if line.len() <= max_bytes {
        return (line, false);
    }
    let mut cut = text.len();
    while line.len() > max_bytes && cut > 0 {
        // Every byte of text is at least one byte of output: dropping the
        // excess from the text gets at least that much closer.
        let excess = line.len() - max_bytes;
        cut = text.floor_char_boundary(cut.saturating_sub(excess));
        line = write(&text[..cut]);
    }
    (line, true)
}

/// One line of a json-file log as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileLine {
    /// The line (lossy UTF-8, at most the limit).
    line: String,
    /// Whether it was cut at the limit.
    truncated: bool,
    /// Its `time`, when the line is a valid json-file record (has `log` and a
    /// readable `time`).
    nanos: Option<i128>,
}

/// Reads a json-file log (any bytes) as bounded lines, each with its stamp
/// when it has one. Every line of the input comes out, valid or not.
struct JsonFileReader<R> {
    lines: LineReader<R>,
    max: usize,
}

impl<R: Read> JsonFileReader<R> {
    fn new(inner: R, max_line_bytes: usize) -> JsonFileReader<R> {
        let max = max_line_bytes.max(1);
        JsonFileReader {
            lines: LineReader::new(inner, max),
            max,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<FileLine>> {
        let Some((bytes, info)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let mut line = String::from_utf8_lossy(bytes).into_owned();
        let mut truncated = info.truncated;
        if line.len() > self.max {
            // Replacement characters made it longer than the limit.
            line.truncate(line.floor_char_boundary(self.max));
            truncated = true;
        }
        let nanos = if truncated {
            None
        } else {
            serde_json::from_str::<JsonFileFields<'_>>(&line)
                .ok()
                .filter(|f| f.log.is_some())
                .and_then(|f| f.time.as_deref().and_then(parse_nanos))
        };
        Ok(Some(FileLine {
            line,
            truncated,
            nanos,
        }))
    }
}

// ---------------------------------------------------------------------------
// The data root

/// What the reader needs of a container's `config.v2.json`.
#[derive(Deserialize)]
struct ContainerConfigV2 {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Created", default)]
    created: Option<String>,
    #[serde(rename = "Config", default)]
    config: Option<ContainerConfigSection>,
}

#[derive(Deserialize, Default)]
struct ContainerConfigSection {
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// A container found in a data root.
struct RootContainer {
    dir: PathBuf,
    /// The id the log files are named after (the directory's name).
    file_id: String,
    id: Arc<str>,
    created: i128,
    meta: EmitMeta,
}

/// The log files of container `id` among `names` (a directory listing), oldest
/// first: the rotated generations from the highest number down (`.N.gz` or
/// `.N`; when both exist — compression in progress — the complete `.N`), then
/// the live `<id>-json.log`.
fn order_log_files(names: &[String], id: &str) -> Vec<String> {
    let base = format!("{id}-json.log");
    let mut rotated: BTreeMap<u64, (Option<&String>, Option<&String>)> = BTreeMap::new();
    let mut live = None;
    for n in names {
        if *n == base {
            live = Some(n.clone());
            continue;
        }
        let Some(rest) = n.strip_prefix(base.as_str()).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let (num, gz) = match rest.strip_suffix(".gz") {
            Some(num) => (num, true),
            None => (rest, false),
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(num) = num.parse::<u64>() else {
            continue;
        };
        let slot = rotated.entry(num).or_default();
        if gz {
            slot.1 = Some(n);
        } else {
            slot.0 = Some(n);
        }
    }
    let mut out: Vec<String> = rotated
        .into_iter()
        .rev()
        .filter_map(|(_, (plain, gz))| plain.or(gz).cloned())
        .collect();
    out.extend(live);
    out
}

fn data_root_error(path: &Path, e: &io::Error) -> DockerError {
    let reason = match e.kind() {
        io::ErrorKind::NotFound => {
            "no such directory: not a Docker data root (`docker info --format '{{.DockerRootDir}}'` names it; Podman keeps none)".to_owned()
        }
        io::ErrorKind::PermissionDenied => "permission denied: reading a Docker data root needs root".to_owned(),
        _ => format!("cannot list: {e}"),
    };
    DockerError::DataRoot {
        path: path.display().to_string(),
        reason,
    }
}

/// The containers of a data root matching `project`, by name then creation
/// (so an old container's lines come before its re-created successor's).
fn root_containers(
    root: &Path,
    project: Option<&str>,
    errors: &mut Vec<String>,
) -> Result<Vec<RootContainer>, DockerError> {
    let dir = root.join("containers");
    let entries = fs::read_dir(&dir).map_err(|e| data_root_error(&dir, &e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("{}: cannot list: {e}", dir.display()));
                continue;
            }
        };
        let cdir = entry.path();
        if !cdir.is_dir() {
            continue;
        }
        let file_id = entry.file_name().to_string_lossy().into_owned();
        let cfg_path = cdir.join("config.v2.json");
        let cfg = fs::read(&cfg_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ContainerConfigV2>(&b).map_err(|e| e.to_string()));
        let cfg = match cfg {
            Ok(c) if !c.name.trim_start_matches('/').is_empty() => c,
            Ok(_) => {
                errors.push(format!(
                    "{}: no container name in it; container skipped",
                    cfg_path.display()
                ));
                continue;
            }
            Err(e) => {
                errors.push(format!(
                    "{}: unreadable container configuration ({e}); container skipped",
                    cfg_path.display()
                ));
                continue;
            }
        };
        let labels = cfg.config.and_then(|c| c.labels).unwrap_or_default();
        if let Some(p) = project
            && labels.get(PROJECT_LABEL).map(String::as_str) != Some(p)
        {
            continue;
        }
        let id = if cfg.id.is_empty() {
            file_id.clone()
        } else {
            cfg.id
        };
        out.push(RootContainer {
            meta: EmitMeta::new(&cfg.name, labels.get(SERVICE_LABEL).map(String::as_str)),
            dir: cdir,
            file_id,
            id: Arc::from(id),
            created: cfg.created.as_deref().and_then(parse_nanos).unwrap_or(0),
        });
    }
    out.sort_by(|a, b| (&a.meta.key, a.created).cmp(&(&b.meta.key, b.created)));
    Ok(out)
}

/// Reads the containers of a data root through their cursors (created for
/// names without one), calling `emit` per new line. Returns early (Ok) when
/// `emit` returns false.
fn scan_data_root(
    root: &Path,
    project: Option<&str>,
    cursors: &mut HashMap<String, Cursor>,
    max_line_bytes: usize,
    emit: &mut dyn FnMut(SourceRecord) -> bool,
) -> Result<DataRootSummary, DockerError> {
    let mut sum = DataRootSummary::default();
    let containers = root_containers(root, project, &mut sum.errors)?;
    sum.containers = containers.len();
    for c in containers {
        let names: Vec<String> = match fs::read_dir(&c.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) => {
                sum.errors.push(format!("{}: cannot list: {e}", c.dir.display()));
                continue;
            }
        };
        let cursor = cursors.entry(c.meta.key.to_string()).or_default();
        cursor.begin(&c.id);
        // The stamp given to lines without one, per container (deterministic,
        // so a resumed read skips them exactly like the first read counted them).
        let mut inherited: i128 = 0;
        for name in order_log_files(&names, &c.file_id) {
            let path = c.dir.join(&name);
            let opened = match open_input(&InputSource::File(path.clone())) {
                Ok(o) => o,
                Err(e) => {
                    sum.errors.push(e.to_string());
                    continue;
                }
            };
            sum.files += 1;
            let mtime = opened
                .modified
                .and_then(system_time_nanos)
                .unwrap_or_else(now_nanos);
            let mut reader = JsonFileReader::new(opened.reader, max_line_bytes);
            let mut n: u64 = 0;
            loop {
                let fl = match reader.next_line() {
                    Ok(Some(fl)) => fl,
                    Ok(None) => break,
                    Err(e) => {
                        sum.errors.push(format!(
                            "{}: read error after line {n}: {e}; the lines before it were read (a .gz being written by Docker's compression looks like this)",
                            path.display()
                        ));
                        break;
                    }
                };
                n += 1;
                let nanos = fl.nanos.unwrap_or(inherited);
                let received = timestamp_of(
                    fl.nanos
                        .or((inherited != 0).then_some(inherited))
                        .unwrap_or(mtime),
                );
                inherited = nanos;
                if fl.nanos.is_none() {
                    sum.bad_lines += 1;
                }
                if fl.truncated {
                    sum.truncated += 1;
                }
                if cursor.skip(nanos) {
                    sum.skipped += 1;
                    continue;
                }
                let pos = cursor.next(&c.id, nanos);
                let rec = c.meta.record(fl.line, fl.truncated, received, &pos);
                cursor.commit(pos);
                sum.lines += 1;
                if !emit(rec) {
                    return Ok(sum);
                }
            }
        }
    }
    Ok(sum)
}

/// Reads every matching container's json-file logs from a Docker data root
/// (`/var/lib/docker`): per container (by name), its rotated generations oldest
/// first (`.N.gz`/`.N` from the highest N down), then the live file. Lines that
/// `resume` (source key → checkpoint) says were consumed are skipped; `emit` is
/// called for every other line and reading stops early when it returns false.
///
/// One-shot and synchronous, for `mailwarden ingest --docker-data-root`.
/// `project` selects containers by their compose project label (`None`: all).
/// Containers or files that cannot be read are skipped and listed in
/// [`DataRootSummary::errors`]; the call fails only when the data root's
/// `containers` directory cannot be listed.
pub fn read_data_root(
    root: &Path,
    project: Option<&str>,
    resume: &BTreeMap<String, Checkpoint>,
    max_line_bytes: usize,
    emit: &mut dyn FnMut(SourceRecord) -> bool,
) -> Result<DataRootSummary, DockerError> {
    let mut cursors = cursors_from(resume);
    scan_data_root(root, project, &mut cursors, max_line_bytes, emit)
}

// ---------------------------------------------------------------------------
// The API

/// Whether an API error means the engine is unreachable (as opposed to a
/// complaint about one request).
fn is_connection_error(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::SocketNotFoundError(_)
            | ApiError::HyperResponseError { .. }
            | ApiError::HyperLegacyError { .. }
            | ApiError::IOError { .. }
            | ApiError::RequestTimeoutError
    )
}

/// Splits an API log frame (`<RFC 3339 stamp> <text>`) into stamp and text.
fn split_frame(frame: &[u8]) -> (Option<i128>, &[u8]) {
    let head = &frame[..frame.len().min(64)];
    if let Some(sp) = memchr::memchr(b' ', head)
        && let Ok(stamp) = std::str::from_utf8(&frame[..sp])
        && let Some(nanos) = parse_nanos(stamp)
    {
        return (Some(nanos), &frame[sp + 1..]);
    }
    (None, frame)
}

/// A container as listed by the API.
struct Listed {
    name: String,
    id: Arc<str>,
    running: bool,
    service: Option<String>,
}

fn listed(c: ContainerSummary) -> Option<Listed> {
    let id = c.id?;
    let names = c.names.unwrap_or_default();
    // Legacy links add names like `/web/db`; the container's own has one slash.
    let name = names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .find(|n| !n.is_empty() && !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
        .filter(|n| !n.is_empty())
        .map_or_else(|| id.clone(), str::to_owned);
    let running = matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING)
    );
    let service = c.labels.and_then(|mut l| l.remove(SERVICE_LABEL));
    Some(Listed {
        name,
        id: Arc::from(id),
        running,
        service,
    })
}

/// What a follow task hands back when it ends.
struct FollowEnd {
    cursor: Cursor,
    result: Result<(), ApiError>,
}

/// A running follow task.
struct Follower {
    id: Arc<str>,
    token: CancellationToken,
    /// The cursor it started with (used only if the task panicked).
    start: Cursor,
    task: JoinHandle<FollowEnd>,
}

/// How the last follow of a name ended.
struct Ended {
    id: Arc<str>,
    at: Instant,
    failed: bool,
}

/// Why an API session ended.
enum SessionEnd {
    /// Shutdown, or the receiver is gone: stop.
    Stop,
    /// The engine is unreachable.
    Lost {
        why: String,
        /// Whether the session had listed containers (the engine was up).
        was_up: bool,
    },
}

/// Exponential backoff between connection attempts.
struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration) -> Backoff {
        Backoff { first, next: first }
    }

    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        d
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Follows one container's logs from its cursor until the stream ends, the
/// token is cancelled or the receiver is gone.
/// What a follow task needs besides its cursor.
struct FollowTask {
    docker: Docker,
    id: Arc<str>,
    meta: EmitMeta,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<DockerStats>,
    token: CancellationToken,
    max_line_bytes: usize,
}

async fn follow(task: FollowTask, mut cursor: Cursor) -> FollowEnd {
    let FollowTask {
        docker,
        id,
        meta,
        tx,
        stats,
        token,
        max_line_bytes,
    } = task;
    cursor.begin(&id);
    let opts = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since: cursor.since_secs(),
        until: 0,
        timestamps: true,
        tail: "all".to_owned(),
    };
    let mut logs = docker.logs(&id, Some(opts));
    loop {
        let item = tokio::select! {
            biased;
            () = token.cancelled() => None,
            item = logs.next() => Some(item),
        };
        let out = match item {
            None | Some(None) => {
                return FollowEnd {
                    cursor,
                    result: Ok(()),
                };
            }
            Some(Some(Err(e))) => {
                return FollowEnd {
                    cursor,
                    result: Err(e),
                };
            }
            Some(Some(Ok(out))) => out,
        };
        let (stream, frame) = match &out {
            LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
            LogOutput::StdErr { message } => ("stderr", message),
            LogOutput::StdIn { .. } => continue,
        };
        let (stamp, text) = split_frame(frame);
        let nanos = match stamp {
            Some(n) => n,
            None => {
                DockerStats::add(&stats.bad_lines, 1);
                cursor.last_nanos().unwrap_or_else(now_nanos)
            }
        };
        if cursor.skip(nanos) {
            DockerStats::add(&stats.skipped, 1);
            continue;
        }
        let text = String::from_utf8_lossy(text);
        let (line, truncated) = json_file_line(&text, stream, nanos, max_line_bytes);
        let pos = cursor.next(&id, nanos);
        let rec = meta.record(line, truncated, timestamp_of(nanos), &pos);
        let permit = tokio::select! {
            biased;
            () = token.cancelled() => return FollowEnd { cursor, result: Ok(()) },
            p = tx.reserve() => match p {
                Ok(p) => p,
                Err(_) => return FollowEnd { cursor, result: Ok(()) },
            },
        };
        cursor.commit(pos);
        permit.send(rec);
        DockerStats::add(&stats.lines, 1);
        if truncated {
            DockerStats::add(&stats.truncated, 1);
        }
    }
}

/// The collector's state across API sessions and data-root catch-ups.
struct Collector {
    cfg: DockerConfig,
    socket: String,
    poll: Duration,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<DockerStats>,
    shutdown: CancellationToken,
    /// By source key; a followed name's cursor is with its task meanwhile.
    cursors: HashMap<String, Cursor>,
    ended: HashMap<String, Ended>,
}

impl Collector {
    async fn run(mut self) -> Result<(), DockerError> {
        let mut backoff = Backoff::new(self.poll.min(Duration::from_secs(1)));
        let mut caught_up = false;
        loop {
            if self.shutdown.is_cancelled() || self.tx.is_closed() {
                return Ok(());
            }
            let end = match self.connect().await {
                Ok(Some(docker)) => self.session(docker).await,
                Ok(None) => SessionEnd::Stop,
                Err(why) => SessionEnd::Lost { why, was_up: false },
            };
            match end {
                SessionEnd::Stop => return Ok(()),
                SessionEnd::Lost { why, was_up } => {
                    if was_up {
                        caught_up = false;
                        backoff.reset();
                    }
                    self.stats.error(why);
                }
            }
            if !caught_up {
                self.stats.set_mode(Mode::DataRoot);
                if !self.catch_up().await? {
                    return Ok(());
                }
                caught_up = true;
            }
            let wait = backoff.step();
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = self.tx.closed() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            DockerStats::add(&self.stats.reconnects, 1);
        }
    }

    /// Connects and agrees on an API version. `Ok(None)`: shut down meanwhile.
    async fn connect(&self) -> Result<Option<Docker>, String> {
        let docker = Docker::connect_with_unix(&self.socket, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(|e| format!("docker API at {}: {e}", self.socket))?;
        tokio::select! {
            () = self.shutdown.cancelled() => Ok(None),
            r = docker.negotiate_version() => r
                .map(Some)
                .map_err(|e| format!("docker API at {}: {e}", self.socket)),
        }
    }

    async fn list(&self, docker: &Docker) -> Option<Result<Vec<ContainerSummary>, ApiError>> {
        let filters = self
            .cfg
            .project
            .as_ref()
            .map(|p| HashMap::from([("label".to_owned(), vec![format!("{PROJECT_LABEL}={p}")])]));
        let opts = ListContainersOptions {
            all: true,
            filters,
            ..ListContainersOptions::default()
        };
        tokio::select! {
            () = self.shutdown.cancelled() => None,
            r = docker.list_containers(Some(opts)) => Some(r),
        }
    }

    /// Follows the listed containers until the engine goes away or the
    /// collector is stopped.
    async fn session(&mut self, docker: Docker) -> SessionEnd {
        let session = self.shutdown.child_token();
        let mut followers: HashMap<String, Follower> = HashMap::new();
        let mut was_up = false;
        let end = loop {
            self.reap(&mut followers, true).await;
            let Some(listing) = self.list(&docker).await else {
                break SessionEnd::Stop;
            };
            match listing {
                Ok(list) => {
                    was_up = true;
                    self.stats.set_mode(Mode::Api);
                    let list: Vec<Listed> = list.into_iter().filter_map(listed).collect();
                    self.stats.containers.store(list.len() as u64, Ordering::Relaxed);
                    for c in list {
                        self.consider(&docker, &session, &mut followers, c);
                    }
                }
                Err(e) if is_connection_error(&e) => {
                    break SessionEnd::Lost {
                        why: format!("docker API at {}: {e}", self.socket),
                        was_up,
                    };
                }
                // A complaint about this one request (e.g. Podman reporting a
                // transient container state Docker does not have): try again.
                Err(e) => self
                    .stats
                    .error(format!("docker API at {}: listing containers: {e}", self.socket)),
            }
            tokio::select! {
                () = self.shutdown.cancelled() => break SessionEnd::Stop,
                () = self.tx.closed() => break SessionEnd::Stop,
                () = tokio::time::sleep(self.poll) => {}
            }
        };
        session.cancel();
        if matches!(end, SessionEnd::Lost { .. }) {
            // Take the cursors back for the data-root catch-up.
            self.reap(&mut followers, false).await;
        }
        end
    }

    /// Starts following a listed container unless its name is followed already
    /// or there is nothing new to expect from it.
    fn consider(
        &mut self,
        docker: &Docker,
        session: &CancellationToken,
        followers: &mut HashMap<String, Follower>,
        c: Listed,
    ) {
        let meta = EmitMeta::new(&c.name, c.service.as_deref());
        let key = meta.key.to_string();
        if let Some(f) = followers.get(&key) {
            if f.id != c.id {
                // The name belongs to a new container: the old one is gone.
                f.token.cancel();
            }
            return;
        }
        let recheck = self.poll * RECHECK_POLLS;
        if let Some(e) = self.ended.get(&key)
            && e.id == c.id
        {
            let due = e.at.elapsed() >= recheck;
            let again = if e.failed { due } else { c.running || due };
            if !again {
                return;
            }
        }
        let cursor = self.cursors.remove(&key).unwrap_or_default();
        let token = session.child_token();
        let task = tokio::spawn(follow(
            FollowTask {
                docker: docker.clone(),
                id: c.id.clone(),
                meta,
                tx: self.tx.clone(),
                stats: self.stats.clone(),
                token: token.clone(),
                max_line_bytes: self.cfg.max_line_bytes,
            },
            cursor.clone(),
        ));
        tracing::debug!("following {key} ({})", c.id);
        followers.insert(
            key,
            Follower {
                id: c.id,
                token,
                start: cursor,
                task,
            },
        );
    }

    /// Collects ended follow tasks (all of them, waiting, when `finished_only`
    /// is false), taking their cursors back.
    async fn reap(&mut self, followers: &mut HashMap<String, Follower>, finished_only: bool) {
        let done: Vec<String> = followers
            .iter()
            .filter(|(_, f)| !finished_only || f.task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            let Some(f) = followers.remove(&key) else {
                continue;
            };
            let (cursor, failed) = match f.task.await {
                Ok(FollowEnd { cursor, result }) => {
                    let failed = match result {
                        Ok(()) => false,
                        // The listing reports an unreachable engine, once.
                        Err(e) if is_connection_error(&e) => true,
                        Err(e) => {
                            self.stats
                                .error(format!("{key}: following the logs of {}: {e}", f.id));
                            true
                        }
                    };
                    (cursor, failed)
                }
                Err(e) => {
                    self.stats.error(format!("{key}: follow task failed: {e}"));
                    (f.start, true)
                }
            };
            self.cursors.insert(key.clone(), cursor);
            self.ended.insert(
                key,
                Ended {
                    id: f.id,
                    at: Instant::now(),
                    failed,
                },
            );
        }
    }

    /// Reads the data root once through the cursors. Returns false when the
    /// collector is to stop (shutdown, receiver gone).
    async fn catch_up(&mut self) -> Result<bool, DockerError> {
        DockerStats::add(&self.stats.catchups, 1);
        let root = self.cfg.data_root.clone();
        let project = self.cfg.project.clone();
        let max = self.cfg.max_line_bytes;
        let tx = self.tx.clone();
        let token = self.shutdown.clone();
        let rt = tokio::runtime::Handle::current();
        let stats = self.stats.clone();
        let backup = self.cursors.clone();
        let mut cursors = std::mem::take(&mut self.cursors);
        let task = tokio::task::spawn_blocking(move || {
            let mut stopped = false;
            let res = scan_data_root(&root, project.as_deref(), &mut cursors, max, &mut |rec| {
                let sent = rt.block_on(async {
                    tokio::select! {
                        biased;
                        () = token.cancelled() => false,
                        r = tx.send(rec) => r.is_ok(),
                    }
                });
                if sent {
                    DockerStats::add(&stats.lines, 1);
                } else {
                    stopped = true;
                }
                sent
            });
            (cursors, res, stopped)
        });
        let joined = tokio::select! {
            () = self.shutdown.cancelled() => return Ok(false),
            j = task => j,
        };
        let (cursors, res, stopped) = match joined {
            Ok(v) => v,
            Err(e) => {
                self.cursors = backup;
                return Err(DockerError::Task(e.to_string()));
            }
        };
        self.cursors = cursors;
        if stopped {
            return Ok(false);
        }
        match res {
            Ok(sum) => {
                self.stats
                    .containers
                    .store(sum.containers as u64, Ordering::Relaxed);
                DockerStats::add(&self.stats.skipped, sum.skipped);
                DockerStats::add(&self.stats.bad_lines, sum.bad_lines);
                DockerStats::add(&self.stats.truncated, sum.truncated);
                tracing::info!(
                    "docker data root {}: {} containers, {} files, {} new lines",
                    self.cfg.data_root.display(),
                    sum.containers,
                    sum.files,
                    sum.lines
                );
                for e in sum.errors {
                    self.stats.error(e);
                }
            }
            Err(e) => {
                self.stats.containers.store(0, Ordering::Relaxed);
                self.stats.error(format!("docker data root: {e}"));
            }
        }
        Ok(true)
    }
}

/// Collects the logs of the configured containers until `shutdown` is
/// cancelled or the receiving side of `tx` is dropped (both end it with `Ok`),
/// sending one [`SourceRecord`] per line. `resume` holds the stored
/// checkpoints by source key (`docker:<name>`); other keys are ignored.
///
/// Follows the engine's API; while it is unreachable, reads the data root once
/// and retries with exponential backoff (see the module documentation). Fails
/// only on configuration errors (a socket path that is not UTF-8) or a panic in
/// a reader; everything else is reported in `stats` and retried.
pub async fn run(
    cfg: DockerConfig,
    resume: BTreeMap<String, Checkpoint>,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<DockerStats>,
    shutdown: CancellationToken,
) -> Result<(), DockerError> {
    let socket = cfg
        .socket
        .to_str()
        .ok_or_else(|| DockerError::Config(format!("socket path {} is not UTF-8", cfg.socket.display())))?
        .to_owned();
    stats.set_mode(Mode::Connecting);
    let collector = Collector {
        poll: cfg.poll_interval.max(MIN_POLL),
        socket,
        cursors: cursors_from(&resume),
        cfg,
        tx,
        stats,
        shutdown,
        ended: HashMap::new(),
    };
    collector.run().await
}
