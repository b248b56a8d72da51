//! Following growing log files (`/var/log/mail.log`, `/srv/logs/*.log`), like
//! `tail -F`, with an exact resume position.
//!
//! # What is read
//!
//! Every [`FilePattern`] is a path or a glob. A literal path is followed even
//! while it does not exist (it is picked up when it appears); a glob is
//! re-expanded every [`FileConfig::rescan_interval`] and its matches are
//! followed, except names that look rotated (`mail.log.1`, `mail.log.20240101`,
//! `mail.log-20240101`) or compressed (`.gz`, `.bz2`, `.xz`, `.zst`, …): those are
//! history, read once with `mailwarden ingest`, never followed. Each followed
//! path is a source `file:<path>` (the path as the pattern produced it).
//!
//! Only complete lines are emitted: a last line without its newline waits for
//! it — unless the file is rotated away or truncated, then the fragment is
//! emitted as it is when the follower leaves the file. Lines longer than
//! [`FileConfig::max_line_bytes`] are cut there (`truncated = true`) and the rest
//! of the line is skipped; bytes are decoded as lossy UTF-8.
//!
//! # Checkpoints
//!
//! Every record carries [`Checkpoint::File`]: the device and inode of the file
//! it came from, an FNV-1a hash of the file's first `min(1024, offset)` bytes
//! (`head_len` says how many — the *consumed* part of the head, which never
//! changes while the file is only appended to), and the offset after the line.
//!
//! # Rotation
//!
//! The follower polls (every [`FileConfig::poll_interval`]; portable, no
//! inotify). On each poll it compares the path's current device and inode with
//! the file it has open:
//!
//! * **Rename** (logrotate `create`, `mv mail.log mail.log.1` followed by
//!   `postfix reload`, or `postfix logrotate`): the old file is read on through
//!   the descriptor already open — writers keep appending to it until they
//!   reopen their log — and left only when it has been quiet for
//!   [`FileConfig::rotate_grace`] *and* the new file at the path has content (the
//!   writer has moved on), or the old file was deleted, or nothing reappeared at
//!   the path for [`FileConfig::release_after`]. Then its last fragment (if any) is
//!   emitted and the new file is read from offset 0. Lines of the old and the new
//!   file are never interleaved, so the one checkpoint per source stays exact.
//! * **copytruncate**: the file is the same inode but shorter than the follower's
//!   position, or its head bytes changed. The follower looks for the copy — a
//!   sibling (same directory, name starting with the file's name, not
//!   compressed) whose head hash equals the one it had consumed and that is at
//!   least as long as its offset — reads the copy from the offset to its end, and
//!   then the truncated file from 0. Without a copy it reads the file from 0
//!   right away. Each such event counts as a *truncation*. **Lines written
//!   between logrotate's copy and its truncate are in neither file and are lost:
//!   that is inherent to copytruncate**; so are lines that reached only a copy
//!   that was compressed (no `delaycompress`) before the follower saw it. Prefer
//!   rename rotation.
//!
//! # Resume
//!
//! [`run`] takes the stored checkpoints (`file:<path>` → [`Checkpoint::File`]).
//! When the path's current device, inode and head hash match, reading continues
//! at the checkpoint's offset. Otherwise the checkpointed file is looked for
//! among the rotated siblings (by device and inode, or by head hash for a
//! copytruncate copy; compressed siblings are not read): when found, it is
//! finished from the offset first, then any generation rotated after it (the
//! unread siblings with newer modification times, oldest first — the follower was
//! down across several rotations), then the current file from 0. When
//! nothing matches (the file went to a compressed archive or was deleted), the
//! current file is read from 0 and a *checkpoint_lost* event is counted. A path
//! without a checkpoint starts at its beginning ([`FileConfig::read_existing`]) or
//! at its end; files that appear after the start are always read from 0.
//!
//! Records go out over a bounded channel: when the ingest side is behind, the
//! follower waits. Reading is done in batches of bounded size on tokio's
//! blocking pool.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mailwarden_core::framing::Format;
use mailwarden_core::time::Timestamp;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Checkpoint, SourceRecord, fnv1a};

/// How many leading bytes of a file its checkpoint hashes, at most.
pub const HEAD_BYTES: usize = 1024;

/// Read buffer per poll step.
const READ_CHUNK: usize = 64 * 1024;
/// Most lines one poll step hands to the channel.
const BATCH_LINES: usize = 2048;
/// Most line bytes one poll step hands to the channel.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// One path or glob to follow, with how its lines are framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePattern {
    /// A path (`/var/log/mail.log`) or a glob (`/srv/logs/*.log`).
    pub pattern: String,
    /// Program to assume for lines whose framing names none.
    pub program_hint: Option<String>,
    /// Framing of the lines (`Auto` detects per line).
    pub format: Format,
}

impl FilePattern {
    /// A pattern with automatic framing and no program hint.
    pub fn new(pattern: impl Into<String>) -> FilePattern {
        FilePattern {
            pattern: pattern.into(),
            program_hint: None,
            format: Format::Auto,
        }
    }
}

impl From<&str> for FilePattern {
    fn from(s: &str) -> FilePattern {
        FilePattern::new(s)
    }
}

impl From<String> for FilePattern {
    fn from(s: String) -> FilePattern {
        FilePattern::new(s)
    }
}

/// Configuration of the file follower.
#[derive(Clone, Debug)]
pub struct FileConfig {
    /// Paths and globs to follow.
    pub patterns: Vec<FilePattern>,
    /// How often files are checked for new data, rotation and truncation. Default 250 ms.
    pub poll_interval: Duration,
    /// Longest line kept; longer lines are cut (`truncated`). Default 64 KiB.
    pub max_line_bytes: usize,
    /// Whether files present at start without a checkpoint are read from their
    /// beginning (true, the default) or only from their end.
    pub read_existing: bool,
    /// How long a rotated-away file must stay unchanged before the follower
    /// moves on to its successor. Default 1 s.
    pub rotate_grace: Duration,
    /// How often globs are re-expanded to find new files. Default 5 s.
    pub rescan_interval: Duration,
    /// How long a rotated-away file is kept open when nothing reappears at its
    /// path. Default 60 s.
    pub release_after: Duration,
}

impl FileConfig {
    /// A configuration for these patterns with the defaults.
    pub fn new<I, P>(patterns: I) -> FileConfig
    where
        I: IntoIterator<Item = P>,
        P: Into<FilePattern>,
    {
        FileConfig {
            patterns: patterns.into_iter().map(Into::into).collect(),
            ..FileConfig::default()
        }
    }
}

impl Default for FileConfig {
    fn default() -> FileConfig {
        FileConfig {
            patterns: Vec::new(),
            poll_interval: Duration::from_millis(250),
            max_line_bytes: 64 * 1024,
            read_existing: true,
            rotate_grace: Duration::from_secs(1),
            rescan_interval: Duration::from_secs(5),
            release_after: Duration::from_secs(60),
        }
    }
}

/// Why the follower could not run.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No pattern was given.
    #[error("no files to follow: give at least one path or glob")]
    NoPatterns,
    /// A glob does not parse.
    #[error("bad file pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The blocking reader task failed (a panic in the reader).
    #[error("file follower task failed: {0}")]
    Task(String),
}

/// Live counters of the file follower, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct FileStats {
    files_followed: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
    rotations: AtomicU64,
    truncations: AtomicU64,
    checkpoint_lost: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`FileStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileStatsSnapshot {
    /// Files open right now (a rotated file being finished counts).
    pub files_followed: u64,
    /// Lines emitted.
    pub lines: u64,
    /// Bytes consumed (including line terminators and skipped parts of long lines).
    pub bytes: u64,
    /// Renames detected (a followed path pointing to a new file).
    pub rotations: u64,
    /// Truncations detected (copytruncate, or a file rewritten in place).
    pub truncations: u64,
    /// Checkpoints whose file could not be found any more (read from 0 instead).
    pub checkpoint_lost: u64,
    /// I/O errors (unreadable files, glob errors); the follower goes on.
    pub errors: u64,
    /// The latest error, for status output.
    pub last_error: Option<String>,
}

impl FileStats {
    /// The current values.
    pub fn snapshot(&self) -> FileStatsSnapshot {
        FileStatsSnapshot {
            files_followed: self.files_followed.load(Ordering::Relaxed),
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rotations: self.rotations.load(Ordering::Relaxed),
            truncations: self.truncations.load(Ordering::Relaxed),
            checkpoint_lost: self.checkpoint_lost.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn error(&self, what: String) {
        tracing::warn!("{what}");
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(what);
        }
    }
}

/// Follows the configured files until `shutdown` is cancelled or the receiving
/// side of `tx` is dropped (both end it with `Ok`), sending one
/// [`SourceRecord`] per line. `resume` holds the stored checkpoints by source
/// key (`file:<path>`); other keys are ignored.
///
/// Fails only on configuration errors (no pattern, a bad glob); unreadable
/// files are reported in `stats` and retried on the next poll.
pub async fn run(
    cfg: FileConfig,
    resume: BTreeMap<String, Checkpoint>,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<FileStats>,
    shutdown: CancellationToken,
) -> Result<(), FileError> {
    let mut follower = Some(Follower::new(cfg, resume, stats)?);
    let poll_interval = follower
        .as_ref()
        .map_or(Duration::from_millis(250), |f| f.cfg.poll_interval);
    while !shutdown.is_cancelled() {
        let Some(mut f) = follower.take() else {
            break;
        };
        let step = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let more = f.poll(&mut out);
            (f, out, more)
        })
        .await;
        let (f, out, more) = step.map_err(|e| FileError::Task(e.to_string()))?;
        follower = Some(f);
        for rec in out {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                sent = tx.send(rec) => if sent.is_err() { return Ok(()) },
            }
        }
        if !more {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(poll_interval) => {}
            }
        }
    }
    Ok(())
}

/// Whether a file name looks compressed (such files are never followed).
pub fn is_compressed_name(name: &str) -> bool {
    const EXT: [&str; 9] = [".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".z", ".zip", ".lz"];
    let lower = name.to_ascii_lowercase();
    EXT.iter().any(|e| lower.ends_with(e))
}

/// Whether a file name looks like a rotated log (`x.1`, `x.20240101`,
/// `x.20240101-120000` as `postfix logrotate` names them, `x-20240101` as
/// logrotate's `dateext` does) or a compressed one. Glob matches with such
/// names are not followed.
pub fn is_rotated_name(name: &str) -> bool {
    if is_compressed_name(name) {
        return true;
    }
    let digits_dash = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
    };
    if let Some((_, ext)) = name.rsplit_once('.')
        && digits_dash(ext)
    {
        return true;
    }
    if let Some((_, tail)) = name.rsplit_once('-')
        && tail.len() >= 8
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        return true;
    }
    false
}

fn now_timestamp() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros)
}

/// One configured pattern, validated.
struct Source {
    text: String,
    glob: bool,
    hint: Option<Arc<str>>,
    format: Format,
}

/// What a record of one followed path carries besides its line.
struct EmitMeta {
    key: Arc<str>,
    hint: Option<Arc<str>>,
    format: Format,
}

/// Per-poll limits on what goes into one batch.
struct Budget {
    lines: usize,
    bytes: usize,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.lines == 0 || self.bytes == 0
    }

    fn take(&mut self, bytes: usize) {
        self.lines = self.lines.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes.max(1));
    }
}

/// An open file and the follower's position in it.
struct Reader {
    file: File,
    dev: u64,
    ino: u64,
    /// The file's first `min(HEAD_BYTES, offset)` bytes.
    head: Vec<u8>,
    head_hash: u64,
    /// After the last complete line consumed.
    offset: u64,
    /// Next byte to read (`offset` plus the pending fragment's length).
    pos: u64,
    /// The kept start of an incomplete line (at most `max_line_bytes`).
    pending: Vec<u8>,
    /// Full length of the incomplete line so far.
    pending_len: u64,
    /// The name it was opened under (for messages).
    name: PathBuf,
}

/// What one read pass saw.
struct ReadOutcome {
    grew: bool,
    eof: bool,
}

impl Reader {
    /// A reader positioned at `offset`, which must be a line start.
    fn at(file: File, meta: &Metadata, offset: u64, name: PathBuf) -> io::Result<Reader> {
        let mut r = Reader {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            head: Vec::new(),
            head_hash: fnv1a(&[]),
            offset,
            pos: offset,
            pending: Vec::new(),
            pending_len: 0,
            name,
        };
        r.fill_head()?;
        Ok(r)
    }

    /// A reader positioned after the last newline of the file.
    fn at_end(file: File, meta: &Metadata, name: PathBuf, max_line: usize) -> io::Result<Reader> {
        let size = meta.len();
        let tail_len = size.min(max_line as u64 + 1);
        let mut tail = vec![0; usize::try_from(tail_len).unwrap_or(0)];
        let n = read_full_at(&file, &mut tail, size - tail_len)?;
        tail.truncate(n);
        let offset = match memchr::memrchr(b'\n', &tail) {
            Some(i) => size - tail_len + i as u64 + 1,
            None => size,
        };
        Reader::at(file, meta, offset, name)
    }

    /// Makes `head` cover `min(HEAD_BYTES, offset)` bytes.
    fn fill_head(&mut self) -> io::Result<()> {
        let want = usize::try_from(self.offset.min(HEAD_BYTES as u64)).unwrap_or(HEAD_BYTES);
        if self.head.len() < want {
            let have = self.head.len();
            self.head.resize(want, 0);
            let n = read_full_at(&self.file, &mut self.head[have..], have as u64)?;
            self.head.truncate(have + n);
            self.head_hash = fnv1a(&self.head);
        }
        Ok(())
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::File {
            dev: self.dev,
            inode: self.ino,
            head_hash: self.head_hash,
            head_len: self.head.len() as u32,
            offset: self.offset,
        }
    }

    /// Whether the file was truncated or rewritten under the follower: shorter
    /// than the read position, or its consumed head bytes changed.
    fn restarted(&self) -> io::Result<bool> {
        let size = self.file.metadata()?.len();
        if size < self.pos {
            return Ok(true);
        }
        if self.head.is_empty() {
            return Ok(false);
        }
        let mut now = vec![0; self.head.len()];
        let n = read_full_at(&self.file, &mut now, 0)?;
        Ok(n < self.head.len() || now != self.head)
    }

    fn push_partial(&mut self, seg: &[u8], max: usize) {
        self.pending_len += seg.len() as u64;
        if self.pending.len() < max {
            let take = (max - self.pending.len()).min(seg.len());
            self.pending.extend_from_slice(&seg[..take]);
        }
    }

    /// Emits the pending bytes as one line ending at `self.offset`.
    fn emit_pending(&mut self, meta: &EmitMeta, stats: &FileStats, max: usize, out: &mut Vec<SourceRecord>) {
        let truncated = self.pending_len > max as u64;
        let mut bytes: &[u8] = &self.pending;
        if !truncated && let Some(b) = bytes.strip_suffix(b"\r") {
            bytes = b;
        }
        let line = String::from_utf8_lossy(bytes).into_owned();
        if let Err(e) = self.fill_head() {
            stats.error(format!("{}: cannot read its head: {e}", self.name.display()));
        }
        out.push(SourceRecord {
            source: meta.key.clone(),
            line,
            truncated,
            format: meta.format,
            program_hint: meta.hint.clone(),
            received: now_timestamp(),
            checkpoint: self.checkpoint(),
        });
        FileStats::add(&stats.lines, 1);
        self.pending.clear();
        self.pending_len = 0;
    }

    /// Emits an incomplete last line as it is (the file is being left).
    fn flush_fragment(
        &mut self,
        meta: &EmitMeta,
        stats: &FileStats,
        max: usize,
        out: &mut Vec<SourceRecord>,
    ) {
        if self.pending_len > 0 {
            self.offset = self.pos;
            FileStats::add(&stats.bytes, self.pending_len);
            self.emit_pending(meta, stats, max, out);
        }
    }

    /// Reads what was appended, emitting complete lines, within the budget.
    fn read_lines(
        &mut self,
        meta: &EmitMeta,
        stats: &FileStats,
        max: usize,
        buf: &mut [u8],
        budget: &mut Budget,
        out: &mut Vec<SourceRecord>,
    ) -> ReadOutcome {
        let mut outcome = ReadOutcome {
            grew: false,
            eof: false,
        };
        while !budget.exhausted() {
            let n = match self.file.read_at(buf, self.pos) {
                Ok(0) => {
                    outcome.eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    stats.error(format!("{}: read error: {e}", self.name.display()));
                    break;
                }
            };
            outcome.grew = true;
            let chunk = &buf[..n];
            let mut start = 0;
            let mut stopped = false;
            while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
                self.push_partial(&chunk[start..start + i], max);
                start += i + 1;
                self.offset = self.pos + start as u64;
                let line_bytes = self.pending_len + 1;
                FileStats::add(&stats.bytes, line_bytes);
                budget.take(self.pending.len());
                self.emit_pending(meta, stats, max, out);
                if budget.exhausted() {
                    stopped = true;
                    break;
                }
            }
            if stopped {
                self.pos = self.offset;
                break;
            }
            self.push_partial(&chunk[start..], max);
            self.pos += n as u64;
        }
        outcome
    }
}

/// Reads until `buf` is full or the end of the file.
fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether the file's first `head_len` bytes hash to `head_hash`.
fn head_matches(file: &File, head_len: u32, head_hash: u64) -> bool {
    let mut head = vec![0; head_len.min(HEAD_BYTES as u32) as usize];
    matches!(read_full_at(file, &mut head, 0), Ok(n) if n == head.len() && fnv1a(&head) == head_hash)
}

/// The rotated siblings of `path`: same directory, name = the file's name, a
/// separator (`.`, `-`, `_`) and anything, not compressed; sorted by name.
fn siblings(path: &Path) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let rest = n.strip_prefix(name.as_str())?;
            (rest.len() > 1 && rest.starts_with(['.', '-', '_']) && !is_compressed_name(&n))
                .then(|| (n, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// Finds the file a checkpoint or a truncated file continues in, among the
/// [`siblings`] of `path`: the one with the inode `want` (and a matching head),
/// or else one whose head matches (a copytruncate copy). It must hold at least
/// `offset` bytes.
fn find_sibling(
    path: &Path,
    want: Option<(u64, u64)>,
    head_len: u32,
    head_hash: u64,
    offset: u64,
) -> Option<(File, Metadata, PathBuf)> {
    let mut by_head = None;
    for p in siblings(path) {
        let Ok(file) = File::open(&p) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        if !meta.is_file() || meta.len() < offset {
            continue;
        }
        let by_inode = want == Some((meta.dev(), meta.ino()));
        if !by_inode && (head_len == 0 || by_head.is_some()) {
            continue;
        }
        if !head_matches(&file, head_len, head_hash) {
            continue;
        }
        if by_inode {
            return Some((file, meta, p));
        }
        by_head = Some((file, meta, p));
    }
    by_head
}

/// The rotated generation written after one the follower just finished while
/// catching up after a restart: the sibling not yet read, other than the file
/// at the path, with the oldest modification time newer than `after`.
fn next_generation(
    path: &Path,
    after: SystemTime,
    done: &[(u64, u64)],
    current: Option<(u64, u64)>,
) -> Option<(File, Metadata, PathBuf)> {
    let mut best: Option<(SystemTime, File, Metadata, PathBuf)> = None;
    for p in siblings(path) {
        let Ok(file) = File::open(&p) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let id = (meta.dev(), meta.ino());
        if !meta.is_file() || done.contains(&id) || current == Some(id) {
            continue;
        }
        let Ok(mtime) = meta.modified() else { continue };
        if mtime > after && best.as_ref().is_none_or(|(t, ..)| mtime < *t) {
            best = Some((mtime, file, meta, p));
        }
    }
    best.map(|(_, f, m, p)| (f, m, p))
}

/// One followed path.
struct Tracked {
    path: PathBuf,
    meta: EmitMeta,
    /// From a literal pattern: kept while the path is missing.
    literal: bool,
    /// The file being read: the one at `path`, or a rotated one being finished.
    live: Option<Reader>,
    /// `live` is no longer the file at `path`.
    draining: bool,
    /// While draining: the file that replaced it, held open, read from 0 next.
    next: Option<Reader>,
    /// Since when the draining file has not grown.
    quiet_since: Option<Instant>,
    /// Catching up after a restart: the rotated files read so far (newer
    /// generations are read before the current file).
    chain: Vec<(u64, u64)>,
}

struct Ctx<'a> {
    cfg: &'a FileConfig,
    stats: &'a FileStats,
}

impl Tracked {
    fn identity(r: &Reader) -> (u64, u64) {
        (r.dev, r.ino)
    }

    /// Opens the file now at the path, at offset 0.
    fn open_path(&self, ctx: &Ctx<'_>) -> Option<Reader> {
        let opened = File::open(&self.path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        match opened {
            Ok((f, m)) if m.is_file() => match Reader::at(f, &m, 0, self.path.clone()) {
                Ok(r) => Some(r),
                Err(e) => {
                    ctx.stats.error(format!("{}: {e}", self.path.display()));
                    None
                }
            },
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                ctx.stats
                    .error(format!("{}: cannot open: {e}", self.path.display()));
                None
            }
        }
    }

    /// Sets the starting position from a stored checkpoint (see the module docs).
    fn resume_from(&mut self, ctx: &Ctx<'_>, cp: &Checkpoint) {
        let Checkpoint::File {
            dev,
            inode,
            head_hash,
            head_len,
            offset,
        } = *cp
        else {
            FileStats::add(&ctx.stats.checkpoint_lost, 1);
            return;
        };
        if let Ok(f) = File::open(&self.path)
            && let Ok(m) = f.metadata()
            && m.is_file()
            && (m.dev(), m.ino()) == (dev, inode)
        {
            if m.len() >= offset && head_matches(&f, head_len, head_hash) {
                match Reader::at(f, &m, offset, self.path.clone()) {
                    Ok(r) => self.live = Some(r),
                    Err(e) => ctx.stats.error(format!("{}: {e}", self.path.display())),
                }
                return;
            }
            // Same inode, other content: truncated (copytruncate) while we were away.
            FileStats::add(&ctx.stats.truncations, 1);
        }
        if offset == 0 {
            return;
        }
        if let Some((f, m, p)) = find_sibling(&self.path, Some((dev, inode)), head_len, head_hash, offset) {
            tracing::info!(
                "{}: finishing {} from offset {offset} before reading the current file",
                self.path.display(),
                p.display()
            );
            match Reader::at(f, &m, offset, p) {
                Ok(r) => {
                    self.chain.push((r.dev, r.ino));
                    self.live = Some(r);
                    self.draining = true;
                    FileStats::add(&ctx.stats.rotations, 1);
                }
                Err(e) => ctx.stats.error(format!("{}: {e}", self.path.display())),
            }
            return;
        }
        tracing::warn!(
            "{}: the checkpointed file (inode {inode}, offset {offset}) is gone; reading the current file from its start",
            self.path.display()
        );
        FileStats::add(&ctx.stats.checkpoint_lost, 1);
    }

    /// Handles a truncated file: continue in its copy if there is one (the
    /// truncated file waits as the successor), else read it again from 0.
    fn on_truncated(&mut self, ctx: &Ctx<'_>, out: &mut Vec<SourceRecord>) {
        FileStats::add(&ctx.stats.truncations, 1);
        let Some(mut r) = self.live.take() else { return };
        tracing::info!(
            "{}: truncated (copytruncate?) at offset {}",
            r.name.display(),
            r.offset
        );
        let copy = find_sibling(&self.path, None, r.head.len() as u32, r.head_hash, r.offset)
            .and_then(|(f, m, p)| Reader::at(f, &m, r.offset, p).ok());
        if copy.is_none() {
            r.flush_fragment(&self.meta, ctx.stats, ctx.cfg.max_line_bytes, out);
        }
        r.offset = 0;
        r.pos = 0;
        r.pending.clear();
        r.pending_len = 0;
        r.head.clear();
        r.head_hash = fnv1a(&[]);
        match copy {
            Some(copy) => {
                tracing::info!(
                    "{}: finishing its copy {}",
                    self.path.display(),
                    copy.name.display()
                );
                self.live = Some(copy);
                self.next = Some(r);
                self.draining = true;
                self.quiet_since = None;
            }
            None => self.live = Some(r),
        }
    }

    /// One poll of this path.
    fn poll(&mut self, ctx: &Ctx<'_>, buf: &mut [u8], budget: &mut Budget, out: &mut Vec<SourceRecord>) {
        // Per poll at most: finish a rotated file, read the next one, and so on.
        for _ in 0..4 {
            if budget.exhausted() {
                return;
            }
            let at_path = fs::metadata(&self.path).ok().filter(Metadata::is_file);
            let at_path_id = at_path.as_ref().map(|m| (m.dev(), m.ino()));
            if self.live.is_none() {
                self.live = self
                    .next
                    .take()
                    .or_else(|| at_path.as_ref().and_then(|_| self.open_path(ctx)));
                self.draining = false;
                self.quiet_since = None;
            }
            let Some(r) = self.live.as_ref() else { return };
            let id = Tracked::identity(r);
            if !self.draining && at_path_id != Some(id) {
                tracing::info!("{}: rotated (now a new file or gone)", self.path.display());
                FileStats::add(&ctx.stats.rotations, 1);
                self.draining = true;
                self.quiet_since = None;
            }
            // Hold the successor open as soon as it exists: if it is rotated
            // away too before the old file is finished, it is still read.
            if self.draining
                && self.next.is_none()
                && at_path_id.is_some_and(|a| a != id && !self.chain.contains(&a))
            {
                self.next = self.open_path(ctx).filter(|n| Tracked::identity(n) != id);
            }
            if !self.draining {
                match r.restarted() {
                    Ok(true) => self.on_truncated(ctx, out),
                    Ok(false) => {}
                    Err(e) => ctx.stats.error(format!("{}: {e}", self.path.display())),
                }
            }
            let Some(r) = self.live.as_mut() else { return };
            let got = r.read_lines(&self.meta, ctx.stats, ctx.cfg.max_line_bytes, buf, budget, out);
            if !self.draining {
                return;
            }
            let now = Instant::now();
            if got.grew || !got.eof {
                self.quiet_since = None;
                return;
            }
            let quiet_for = now.duration_since(*self.quiet_since.get_or_insert(now));
            if quiet_for < ctx.cfg.rotate_grace {
                return;
            }
            if !self.chain.is_empty() {
                let mut exclude = self.chain.clone();
                exclude.extend(self.next.as_ref().map(Tracked::identity));
                let after = r.file.metadata().and_then(|m| m.modified());
                if let Ok(after) = after
                    && let Some((f, m, p)) = next_generation(&self.path, after, &exclude, at_path_id)
                {
                    r.flush_fragment(&self.meta, ctx.stats, ctx.cfg.max_line_bytes, out);
                    match Reader::at(f, &m, 0, p) {
                        Ok(gen_) => {
                            tracing::info!(
                                "{}: catching up with {}",
                                self.path.display(),
                                gen_.name.display()
                            );
                            self.chain.push(Tracked::identity(&gen_));
                            FileStats::add(&ctx.stats.rotations, 1);
                            self.live = Some(gen_);
                            self.quiet_since = None;
                            continue;
                        }
                        Err(e) => ctx.stats.error(format!("{}: {e}", self.path.display())),
                    }
                }
                self.chain.clear();
            }
            // The writer has moved on when the successor has data.
            let successor = self
                .next
                .as_ref()
                .is_some_and(|n| n.file.metadata().is_ok_and(|m| m.len() > 0));
            let deleted = r.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
            let give_up =
                self.next.is_none() && at_path.is_none() && (deleted || quiet_for >= ctx.cfg.release_after);
            if !(successor || give_up) {
                return;
            }
            r.flush_fragment(&self.meta, ctx.stats, ctx.cfg.max_line_bytes, out);
            tracing::info!("{}: finished {}", self.path.display(), r.name.display());
            self.live = None;
            self.draining = false;
            self.quiet_since = None;
            self.chain.clear();
        }
    }
}

/// The synchronous core of the follower: one `poll` reads one batch.
struct Follower {
    cfg: FileConfig,
    sources: Vec<Source>,
    resume: BTreeMap<String, Checkpoint>,
    tracked: Vec<Tracked>,
    stats: Arc<FileStats>,
    buf: Vec<u8>,
    last_scan: Option<Instant>,
    /// Where the next poll starts (fairness between files).
    next: usize,
}

impl Follower {
    fn new(
        cfg: FileConfig,
        resume: BTreeMap<String, Checkpoint>,
        stats: Arc<FileStats>,
    ) -> Result<Follower, FileError> {
        if cfg.patterns.is_empty() {
            return Err(FileError::NoPatterns);
        }
        let mut sources = Vec::new();
        for p in &cfg.patterns {
            let glob = p.pattern.contains(['*', '?', '[']);
            if glob {
                glob::Pattern::new(&p.pattern).map_err(|e| FileError::Pattern {
                    pattern: p.pattern.clone(),
                    reason: e.to_string(),
                })?;
            }
            if p.pattern.is_empty() {
                return Err(FileError::Pattern {
                    pattern: String::new(),
                    reason: "empty path".into(),
                });
            }
            sources.push(Source {
                text: p.pattern.clone(),
                glob,
                hint: p.program_hint.as_deref().map(Arc::from),
                format: p.format,
            });
        }
        Ok(Follower {
            cfg,
            sources,
            resume,
            tracked: Vec::new(),
            stats,
            buf: vec![0; READ_CHUNK],
            last_scan: None,
            next: 0,
        })
    }

    /// Finds paths to follow (literal paths once, globs every rescan interval).
    fn scan(&mut self) {
        let startup = self.last_scan.is_none();
        let now = Instant::now();
        if self
            .last_scan
            .is_some_and(|t| now.duration_since(t) < self.cfg.rescan_interval)
        {
            return;
        }
        self.last_scan = Some(now);
        let mut found: Vec<(PathBuf, usize, bool)> = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if !s.glob {
                found.push((PathBuf::from(&s.text), i, true));
                continue;
            }
            match glob::glob(&s.text) {
                Ok(paths) => {
                    for entry in paths {
                        match entry {
                            Ok(p) => {
                                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                                if name.is_some_and(|n| !is_rotated_name(&n)) && p.is_file() {
                                    found.push((p, i, false));
                                }
                            }
                            Err(e) => self.stats.error(format!("{}: {e}", s.text)),
                        }
                    }
                }
                Err(e) => self.stats.error(format!("{}: {e}", s.text)),
            }
        }
        for (path, i, literal) in found {
            if self.tracked.iter().any(|t| t.path == path) {
                continue;
            }
            // A glob match that is a file already being read under another name
            // (renamed within the glob) is not followed twice.
            if !literal
                && let Ok(m) = fs::metadata(&path)
                && self
                    .tracked
                    .iter()
                    .filter_map(|t| t.live.as_ref())
                    .any(|r| (r.dev, r.ino) == (m.dev(), m.ino()))
            {
                continue;
            }
            self.add(path, i, literal, startup);
        }
    }

    fn add(&mut self, path: PathBuf, source: usize, literal: bool, startup: bool) {
        let s = &self.sources[source];
        let key: Arc<str> = Arc::from(format!("file:{}", path.display()));
        let mut t = Tracked {
            meta: EmitMeta {
                key: key.clone(),
                hint: s.hint.clone(),
                format: s.format,
            },
            path,
            literal,
            live: None,
            draining: false,
            next: None,
            quiet_since: None,
            chain: Vec::new(),
        };
        let ctx = Ctx {
            cfg: &self.cfg,
            stats: &self.stats,
        };
        if let Some(cp) = self.resume.remove(&*key) {
            t.resume_from(&ctx, &cp);
        } else if startup && !self.cfg.read_existing {
            let opened = File::open(&t.path).and_then(|f| {
                let m = f.metadata()?;
                Ok((f, m))
            });
            if let Ok((f, m)) = opened
                && m.is_file()
            {
                match Reader::at_end(f, &m, t.path.clone(), self.cfg.max_line_bytes) {
                    Ok(r) => t.live = Some(r),
                    Err(e) => self.stats.error(format!("{}: {e}", t.path.display())),
                }
            }
        }
        tracing::debug!("following {}", t.path.display());
        self.tracked.push(t);
    }

    /// Reads one batch. Returns true when the batch was full (more data is
    /// probably waiting).
    fn poll(&mut self, out: &mut Vec<SourceRecord>) -> bool {
        self.scan();
        let mut budget = Budget {
            lines: BATCH_LINES,
            bytes: BATCH_BYTES,
        };
        let ctx = Ctx {
            cfg: &self.cfg,
            stats: &self.stats,
        };
        let n = self.tracked.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            self.tracked[i].poll(&ctx, &mut self.buf, &mut budget, out);
            if budget.exhausted() {
                self.next = i;
                break;
            }
        }
        // Glob matches that are gone and fully read are forgotten.
        self.tracked
            .retain(|t| t.literal || t.live.is_some() || t.next.is_some() || fs::metadata(&t.path).is_ok());
        let open = self.tracked.iter().filter(|t| t.live.is_some()).count();
        self.stats.files_followed.store(open as u64, Ordering::Relaxed);
        budget.exhausted()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn cfg(pattern: &str) -> FileConfig {
        FileConfig {
            rotate_grace: Duration::from_millis(50),
            rescan_interval: Duration::ZERO,
            ..FileConfig::new([pattern])
        }
    }

    fn append(path: &Path, data: &[u8]) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data).unwrap();
    }

    fn poll_lines(f: &mut Follower) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        while f.poll(&mut out) {}
        out
    }

    /// Polls until a few rounds past the rotate grace bring nothing new.
    fn settle(f: &mut Follower) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        let mut idle = 0;
        while idle < 4 {
            let got = poll_lines(f);
            idle = if got.is_empty() { idle + 1 } else { 0 };
            out.extend(got);
            std::thread::sleep(Duration::from_millis(30));
        }
        out
    }

    fn texts(recs: &[SourceRecord]) -> Vec<String> {
        recs.iter().map(|r| r.line.clone()).collect()
    }

    fn last_cp(recs: &[SourceRecord]) -> BTreeMap<String, Checkpoint> {
        recs.iter()
            .map(|r| (r.source.to_string(), r.checkpoint.clone()))
            .collect()
    }

    #[test]
    fn names_that_look_rotated_or_compressed() {
        for n in [
            "mail.log.1",
            "mail.log.2.gz",
            "mail.log.20240101-120000",
            "mail.log-20240101",
            "x.log.xz",
            "x.ZST",
        ] {
            assert!(is_rotated_name(n), "{n}");
        }
        for n in ["mail.log", "mail.err", "dovecot-lmtp.log", "php-fpm.log", "x.1a"] {
            assert!(!is_rotated_name(n), "{n}");
        }
    }

    #[test]
    fn complete_lines_only_bounded_and_lossy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"one\r\ntwo\nthr");
        let mut f = Follower::new(
            FileConfig {
                max_line_bytes: 8,
                ..cfg(p.to_str().unwrap())
            },
            BTreeMap::new(),
            Arc::default(),
        )
        .unwrap();
        assert_eq!(texts(&poll_lines(&mut f)), ["one", "two"]);
        append(&p, b"ee\n");
        let recs = poll_lines(&mut f);
        assert_eq!(texts(&recs), ["three"]);
        assert_eq!(
            recs[0].checkpoint,
            Checkpoint::File {
                dev: fs::metadata(&p).unwrap().dev(),
                inode: fs::metadata(&p).unwrap().ino(),
                head_hash: fnv1a(b"one\r\ntwo\nthree\n"),
                head_len: 15,
                offset: 15,
            }
        );
        append(&p, b"0123456789abcdef\n\xff\xfeok\n");
        let recs = poll_lines(&mut f);
        assert_eq!(texts(&recs), ["01234567", "\u{fffd}\u{fffd}ok"]);
        assert!(recs[0].truncated && !recs[1].truncated);
        assert_eq!(recs[0].source.as_ref(), format!("file:{}", p.display()));
        let s = f.stats.snapshot();
        assert_eq!((s.lines, s.bytes), (5, 15 + 17 + 5));
    }

    #[test]
    fn read_existing_false_starts_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, b"old\npartial");
        let mut f = Follower::new(
            FileConfig {
                read_existing: false,
                ..cfg(p.to_str().unwrap())
            },
            BTreeMap::new(),
            Arc::default(),
        )
        .unwrap();
        assert!(poll_lines(&mut f).is_empty());
        append(&p, b" line\nnew\n");
        assert_eq!(texts(&poll_lines(&mut f)), ["partial line", "new"]);
    }

    #[test]
    fn rename_rotation_finishes_the_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"a1\na2\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), BTreeMap::new(), Arc::default()).unwrap();
        assert_eq!(texts(&poll_lines(&mut f)), ["a1", "a2"]);
        let old = dir.path().join("mail.log.1");
        fs::rename(&p, &old).unwrap();
        // The writer has not reopened yet: it still appends to the old inode,
        // and its last line has no newline when it moves on.
        append(&old, b"a3\n");
        append(&p, b"b1\n");
        assert_eq!(texts(&poll_lines(&mut f)), ["a3"]);
        append(&old, b"a4");
        // Quiet for the grace period → fragment emitted, then the new file from 0.
        assert_eq!(texts(&settle(&mut f)), ["a4", "b1"]);
        assert_eq!(f.stats.snapshot().rotations, 1);
    }

    #[test]
    fn copytruncate_continues_in_the_copy_then_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"line 1\nline 2\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), BTreeMap::new(), Arc::default()).unwrap();
        assert_eq!(texts(&poll_lines(&mut f)), ["line 1", "line 2"]);
        append(&p, b"line 3\n");
        fs::copy(&p, dir.path().join("mail.log.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"new 1\n");
        assert_eq!(texts(&settle(&mut f)), ["line 3", "new 1"]);
        assert_eq!(f.stats.snapshot().truncations, 1);
        // Without a copy: read again from 0.
        fs::remove_file(dir.path().join("mail.log.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"again\n");
        assert_eq!(texts(&poll_lines(&mut f)), ["again"]);
        assert_eq!(f.stats.snapshot().truncations, 2);
    }

    #[test]
    fn resume_at_offset_in_a_rotated_sibling_or_lost() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"a1\na2\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), BTreeMap::new(), Arc::default()).unwrap();
        let recs = poll_lines(&mut f);
        let cps = last_cp(&recs);
        drop(f);

        // Same file, more data: continue at the offset.
        append(&p, b"a3\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), cps.clone(), Arc::default()).unwrap();
        let recs = poll_lines(&mut f);
        assert_eq!(texts(&recs), ["a3"]);
        let cps = last_cp(&recs);
        drop(f);

        // Rotated while stopped: finish mail.log.1, then mail.log from 0.
        append(&p, b"a4\n");
        fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, b"b1\n");
        let stats = Arc::new(FileStats::default());
        let mut f = Follower::new(cfg(p.to_str().unwrap()), cps.clone(), stats.clone()).unwrap();
        assert_eq!(texts(&settle(&mut f)), ["a4", "b1"]);
        assert_eq!(stats.snapshot().checkpoint_lost, 0);
        drop(f);

        // The checkpointed file went away (compressed): from 0, counted.
        fs::remove_file(dir.path().join("mail.log.1")).unwrap();
        let stats = Arc::new(FileStats::default());
        let mut f = Follower::new(cfg(p.to_str().unwrap()), cps, stats.clone()).unwrap();
        assert_eq!(texts(&poll_lines(&mut f)), ["b1"]);
        assert_eq!(stats.snapshot().checkpoint_lost, 1);
    }

    #[test]
    fn resume_across_two_rotations_reads_every_generation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"a1\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), BTreeMap::new(), Arc::default()).unwrap();
        let cps = last_cp(&poll_lines(&mut f));
        drop(f);
        let pause = || std::thread::sleep(Duration::from_millis(30));
        append(&p, b"a2\n");
        pause();
        fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, b"b1\n");
        pause();
        fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.2")).unwrap();
        fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, b"c1\n");
        append(&dir.path().join("mail.logger"), b"not a sibling\n");
        let mut f = Follower::new(cfg(p.to_str().unwrap()), cps, Arc::default()).unwrap();
        assert_eq!(texts(&settle(&mut f)), ["a2", "b1", "c1"]);
    }

    #[test]
    fn globs_skip_rotated_names_and_pick_up_new_files() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a.log"), b"a\n");
        append(&dir.path().join("a.log.1"), b"old\n");
        append(&dir.path().join("b.log.gz"), b"gz\n");
        let pattern = format!("{}/*.log*", dir.path().display());
        let mut f = Follower::new(cfg(&pattern), BTreeMap::new(), Arc::default()).unwrap();
        assert_eq!(texts(&poll_lines(&mut f)), ["a"]);
        append(&dir.path().join("c.log"), b"c\n");
        assert_eq!(texts(&poll_lines(&mut f)), ["c"]);
        assert_eq!(f.stats.snapshot().files_followed, 2);
        assert!(matches!(
            Follower::new(cfg("/x/[a"), BTreeMap::new(), Arc::default()),
            Err(FileError::Pattern { .. })
        ));
    }

    #[tokio::test]
    async fn run_sends_over_the_channel_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, b"x\ny\n");
        let (tx, mut rx) = mpsc::channel(1);
        let token = CancellationToken::new();
        let stats = Arc::new(FileStats::default());
        let task = tokio::spawn(run(
            cfg(p.to_str().unwrap()),
            BTreeMap::new(),
            tx,
            stats.clone(),
            token.clone(),
        ));
        assert_eq!(rx.recv().await.unwrap().line, "x");
        assert_eq!(rx.recv().await.unwrap().line, "y");
        token.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(stats.snapshot().lines, 2);
    }
}
