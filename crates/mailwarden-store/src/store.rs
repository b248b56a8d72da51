//! [`Store`]: opening, the connection cache, commits (with the cross-file
//! batch protocol), recovery, retention and statistics. Queries are in
//! [`crate::query`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use mailwarden_core::time::{Date, Timestamp};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::batch::{Batch, Field};
use crate::day::{MIN_DAY, date_of, day_of, day_path, file_bytes, list_days, side_files};
use crate::error::{SqlCtx, StoreError};
use crate::lock;
use crate::schema::{self, DAY, META, Mode};

/// Where the store lives and how much it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data directory (created with mode 0700 if missing).
    pub dir: PathBuf,
    /// Delete days that ended more than this many days ago.
    pub retention_days: Option<u32>,
    /// Delete the oldest days while the store is larger than this.
    pub max_bytes: Option<u64>,
}

impl StoreConfig {
    /// A store in `dir` that keeps everything.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            retention_days: None,
            max_bytes: None,
        }
    }
}

/// What a commit stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    /// The batch's sequence number (0 for an empty batch, which stores nothing).
    pub seq: i64,
    /// Lines stored.
    pub lines: u64,
    /// Of which unparsed.
    pub unparsed: u64,
    /// Message records stored.
    pub messages: u64,
    /// Checkpoints stored.
    pub checkpoints: u64,
    /// The days written, oldest first.
    pub days: Vec<Date>,
}

/// Why retention removed a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Older than `retention_days`.
    Age,
    /// Removed to get under `max_bytes`.
    Size,
}

/// A day removed by retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemovedDay {
    /// The day.
    pub date: Date,
    /// Bytes freed.
    pub bytes: u64,
    /// Why.
    pub reason: RemovalReason,
}

/// What [`Store::apply_retention`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Days removed, oldest first.
    pub removed: Vec<RemovedDay>,
    /// Store size afterwards (all files).
    pub total_bytes: u64,
    /// Whether the store is still above `max_bytes` (only the current day is
    /// left, or days newer than it).
    pub over_limit: bool,
}

/// Figures of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// The day (UTC).
    pub date: Date,
    /// Bytes on disk (database, WAL and shared-memory files).
    pub bytes: u64,
    /// Lines stored.
    pub lines: u64,
    /// Of which unparsed.
    pub unparsed: u64,
    /// Message records stored.
    pub messages: u64,
}

/// Figures of the whole store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Per day, oldest first.
    pub days: Vec<DayStats>,
    /// Bytes of every file of the store.
    pub total_bytes: u64,
    /// Bytes of meta.sqlite (included in `total_bytes`).
    pub meta_bytes: u64,
    /// Lines stored.
    pub lines: u64,
    /// Of which unparsed.
    pub unparsed: u64,
    /// Message records stored.
    pub messages: u64,
    /// The oldest day.
    pub oldest: Option<Date>,
    /// The newest day.
    pub newest: Option<Date>,
}

/// Test-only fault injection.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Abort the process after this many day transactions of a commit.
    pub(crate) abort_after_days: Option<usize>,
}

/// Open day-file connections, least recently used evicted first.
pub(crate) struct ConnCache {
    mode: Mode,
    days_dir: PathBuf,
    cap: usize,
    tick: u64,
    entries: Vec<(i64, Connection, u64)>,
    /// `PRAGMA max_page_count` for every connection (tests: a full disk).
    pub(crate) max_pages: Option<i64>,
}

impl ConnCache {
    fn new(mode: Mode, days_dir: PathBuf) -> ConnCache {
        ConnCache {
            mode,
            days_dir,
            cap: 48,
            tick: 0,
            entries: Vec::new(),
            max_pages: None,
        }
    }

    /// The path of a day's file.
    pub(crate) fn path(&self, day: i64) -> PathBuf {
        day_path(&self.days_dir, day)
    }

    /// The connection to a day's file, opened if needed. In write mode the
    /// file is created; in read mode `None` means there is nothing to read
    /// (no file, or never initialised).
    pub(crate) fn get(&mut self, day: i64) -> Result<Option<&mut Connection>, StoreError> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(i) = self.entries.iter().position(|(d, _, _)| *d == day) {
            self.entries[i].2 = tick;
            return Ok(Some(&mut self.entries[i].1));
        }
        let path = self.path(day);
        if self.mode == Mode::Read && !path.exists() {
            return Ok(None);
        }
        let conn = match schema::open_file(&path, DAY, self.mode) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            // Removed by retention between the listing and the open.
            Err(StoreError::NotWritable { .. }) if self.mode == Mode::Read && !path.exists() => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(n) = self.max_pages {
            conn.pragma_update(None, "max_page_count", n).at(&path)?;
        }
        if self.entries.len() >= self.cap
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        self.entries.push((day, conn, tick));
        let last = self.entries.len() - 1;
        Ok(Some(&mut self.entries[last].1))
    }

    /// Closes a day's connection (before deleting its file).
    pub(crate) fn close(&mut self, day: i64) {
        self.entries.retain(|(d, _, _)| *d != day);
    }

    /// Applies a page limit to every open and future connection.
    #[cfg(test)]
    pub(crate) fn set_max_pages(&mut self, n: Option<i64>) -> Result<(), StoreError> {
        self.max_pages = n;
        let days_dir = self.days_dir.clone();
        for (day, c, _) in &self.entries {
            c.pragma_update(None, "max_page_count", n.unwrap_or(i64::from(u32::MAX - 1)))
                .at(&day_path(&days_dir, *day))?;
        }
        Ok(())
    }
}

/// Source names and their ids (meta.sqlite `sources`).
#[derive(Debug, Default)]
pub(crate) struct Sources {
    by_name: HashMap<String, i64>,
    by_id: HashMap<i64, String>,
}

impl Sources {
    fn load(meta: &Connection, path: &Path) -> Result<Sources, StoreError> {
        let mut s = Sources::default();
        let mut stmt = meta.prepare("SELECT id, name FROM sources").at(path)?;
        let mut rows = stmt.query([]).at(path)?;
        while let Some(r) = rows.next().at(path)? {
            let id: i64 = r.get(0).at(path)?;
            let name: String = r.get(1).at(path)?;
            s.by_name.insert(name.clone(), id);
            s.by_id.insert(id, name);
        }
        Ok(s)
    }

    /// The name of a source id, reloading once from meta.sqlite when unknown
    /// (a writer beside this reader may have added it).
    pub(crate) fn name(&mut self, id: i64, meta: &Connection, path: &Path) -> Result<&str, StoreError> {
        if !self.by_id.contains_key(&id) {
            *self = Sources::load(meta, path)?;
        }
        self.by_id
            .get(&id)
            .map(String::as_str)
            .ok_or_else(|| StoreError::Corrupt {
                path: path.into(),
                detail: format!("unknown source id {id}"),
            })
    }
}

/// State behind the store's lock.
pub(crate) struct Inner {
    pub(crate) meta: Connection,
    pub(crate) conns: ConnCache,
    pub(crate) sources: Sources,
}

/// Per-day hints kept in meta.sqlite.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DayHint {
    /// Highest batch sequence that may have written to the day.
    pub(crate) max_seq: i64,
    /// Whether the day may hold lines or records without a timestamp.
    pub(crate) untimed: bool,
}

/// The embedded event store. See the [crate docs](crate) for the layout and
/// the guarantees.
///
/// One process writes ([`Store::open`]); any number read beside it
/// ([`Store::open_read_only`]). Read methods take `&self` and may be called
/// from several threads (they serialise on an internal lock); callbacks
/// ([`Store::replay`]) must not call back into the same store.
pub struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) days_dir: PathBuf,
    pub(crate) meta_path: PathBuf,
    retention_days: Option<u32>,
    max_bytes: Option<u64>,
    pub(crate) mode: Mode,
    _lock: Option<File>,
    pub(crate) inner: Mutex<Inner>,
    next_seq: i64,
    needs_recovery: bool,
    #[cfg(test)]
    pub(crate) faults: Faults,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path).map_err(|e| StoreError::NotWritable {
        path: path.into(),
        source: e,
    })
}

const INSERT_LINE: &str = "INSERT INTO lines (src, ts, tz, recv, recv_tz, raw, host, prog, pid, sev, fam, msg, unparsed) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_KEY: &str = "INSERT OR IGNORE INTO keys (k, line) VALUES (?1, ?2)";
const INSERT_MESSAGE: &str = "INSERT INTO messages (first_ts, last_ts, json) VALUES (?1, ?2, ?3)";
const INSERT_MKEY: &str = "INSERT OR IGNORE INTO mkeys (k, msg) VALUES (?1, ?2)";
const INSERT_BATCH: &str = "INSERT INTO batches (seq, final, line_lo, line_hi, msg_lo, msg_hi, ts_min, ts_max, \
     untimed, lines, unparsed, messages) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const UPSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (source, seq, json) VALUES (?1, ?2, ?3) \
     ON CONFLICT (source) DO UPDATE SET prev_seq = checkpoints.seq, prev_json = checkpoints.json, \
     seq = excluded.seq, json = excluded.json WHERE excluded.seq > checkpoints.seq";

fn field_sql<'a>(b: &'a Batch, f: &Field) -> ToSqlOutput<'a> {
    ToSqlOutput::Borrowed(match f {
        Field::Null => ValueRef::Null,
        Field::Int(n) => ValueRef::Integer(*n),
        Field::Text(r) => ValueRef::Text(b.text(r).as_bytes()),
    })
}

/// The rows of one batch that go to one day.
#[derive(Default)]
struct DayPlan {
    lines: Vec<usize>,
    messages: Vec<usize>,
    untimed: bool,
}

impl Store {
    /// Opens (creating it if needed) the store in `cfg.dir` for writing: takes
    /// the writer lock, migrates older files, and rolls back a batch a crash
    /// left half-written.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        create_private_dir(&cfg.dir)?;
        let lock = lock::acquire(&cfg.dir)?;
        let days_dir = cfg.dir.join("days");
        create_private_dir(&days_dir)?;
        let meta_path = cfg.dir.join("meta.sqlite");
        let meta = schema::open_file(&meta_path, META, Mode::Write)?.ok_or_else(|| StoreError::Corrupt {
            path: meta_path.clone(),
            detail: "cannot initialise".into(),
        })?;
        let sources = Sources::load(&meta, &meta_path)?;
        let mut store = Store {
            dir: cfg.dir,
            days_dir: days_dir.clone(),
            meta_path,
            retention_days: cfg.retention_days,
            max_bytes: cfg.max_bytes,
            mode: Mode::Write,
            _lock: Some(lock),
            inner: Mutex::new(Inner {
                meta,
                conns: ConnCache::new(Mode::Write, days_dir),
                sources,
            }),
            next_seq: 1,
            needs_recovery: true,
            #[cfg(test)]
            faults: Faults::default(),
        };
        store.recover()?;
        Ok(store)
    }

    /// Opens an existing store for reading, beside a running writer (WAL
    /// readers see committed batches only, never part of one).
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let meta_path = dir.join("meta.sqlite");
        if !meta_path.exists() {
            return Err(StoreError::NotFound { path: dir.into() });
        }
        let meta = schema::open_file(&meta_path, META, Mode::Read)?
            .ok_or_else(|| StoreError::NotFound { path: dir.into() })?;
        let sources = Sources::load(&meta, &meta_path)?;
        let days_dir = dir.join("days");
        Ok(Store {
            dir: dir.into(),
            days_dir: days_dir.clone(),
            meta_path,
            retention_days: None,
            max_bytes: None,
            mode: Mode::Read,
            _lock: None,
            inner: Mutex::new(Inner {
                meta,
                conns: ConnCache::new(Mode::Read, days_dir),
                sources,
            }),
            next_seq: 0,
            needs_recovery: false,
            #[cfg(test)]
            faults: Faults::default(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.mode == Mode::Read
    }

    /// A new, empty batch.
    pub fn batch(&self) -> Batch {
        Batch::new()
    }

    pub(crate) fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.mode {
            Mode::Write => Ok(()),
            Mode::Read => Err(StoreError::ReadOnly {
                path: self.dir.clone(),
            }),
        }
    }

    /// Stores a batch: everything in it, or — on error — nothing.
    ///
    /// Rows go to the file of their day, one transaction per day file, the
    /// newest day last; that last transaction also holds the checkpoints. A
    /// batch is complete when its last transaction commits; a crash before
    /// that leaves a batch the next [`Store::open`] rolls back (and readers
    /// never see). On a full disk the error is [`StoreError::DiskFull`] and
    /// the batch's rows are removed again; the caller keeps its own position
    /// and retries later.
    pub fn commit(&mut self, batch: &Batch) -> Result<CommitStats, StoreError> {
        self.writable()?;
        if let Some(e) = &batch.error {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                detail: e.clone(),
            });
        }
        if self.needs_recovery {
            self.recover()?;
        }
        if batch.is_empty() {
            return Ok(CommitStats::default());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let meta_path = self.meta_path.clone();
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());

        // Which rows go to which day.
        let mut plans: BTreeMap<i64, DayPlan> = BTreeMap::new();
        for (i, l) in batch.lines.iter().enumerate() {
            let p = plans.entry(l.day).or_default();
            p.lines.push(i);
            p.untimed |= l.ts.is_none();
        }
        let fallback_day = match batch.lines.iter().map(|l| l.day).max() {
            Some(d) => d,
            None => list_days(&self.days_dir)?.last().copied().unwrap_or(MIN_DAY),
        };
        for (i, m) in batch.messages.iter().enumerate() {
            let p = plans.entry(m.day.unwrap_or(fallback_day)).or_default();
            p.messages.push(i);
            p.untimed |= m.day.is_none();
        }
        let final_day = plans.keys().next_back().copied();

        // 1. meta.sqlite: register sources, journal the batch and its days.
        let src_ids = {
            let tx = inner.meta.transaction().at(&meta_path)?;
            let mut ids = Vec::with_capacity(batch.sources.len());
            let mut added = Vec::new();
            for name in &batch.sources {
                match inner.sources.by_name.get(name) {
                    Some(id) => ids.push(*id),
                    None => {
                        tx.execute("INSERT INTO sources (name) VALUES (?1)", [name])
                            .at(&meta_path)?;
                        let id = tx.last_insert_rowid();
                        ids.push(id);
                        added.push((name.clone(), id));
                    }
                }
            }
            let days_text = plans.keys().map(i64::to_string).collect::<Vec<_>>().join(",");
            tx.execute("DELETE FROM journal", []).at(&meta_path)?;
            tx.execute(
                "INSERT INTO journal (seq, days, resolved) VALUES (?1, ?2, 0)",
                params![seq, days_text],
            )
            .at(&meta_path)?;
            for (day, plan) in &plans {
                tx.execute(
                    "INSERT INTO days (day, max_seq, untimed) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (day) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq), \
                     untimed = max(untimed, excluded.untimed)",
                    params![day, seq, plan.untimed],
                )
                .at(&meta_path)?;
            }
            if final_day.is_none() {
                for (src, json) in &batch.checkpoints {
                    tx.execute(UPSERT_CHECKPOINT, params![ids[*src], seq, json])
                        .at(&meta_path)?;
                }
            }
            tx.commit().at(&meta_path)?;
            for (name, id) in added {
                inner.sources.by_id.insert(id, name.clone());
                inner.sources.by_name.insert(name, id);
            }
            ids
        };

        // 2. One transaction per day, the newest (final) last.
        let stats = CommitStats {
            seq,
            lines: batch.lines.len() as u64,
            unparsed: batch.lines.iter().filter(|l| l.unparsed.is_some()).count() as u64,
            messages: batch.messages.len() as u64,
            checkpoints: batch.checkpoints.len() as u64,
            days: plans.keys().map(|d| date_of(*d)).collect(),
        };
        let mut committed: Vec<i64> = Vec::new();
        #[cfg(test)]
        if self.faults.abort_after_days == Some(0) {
            std::process::abort();
        }
        for (day, plan) in &plans {
            let is_final = Some(*day) == final_day;
            let res = write_day(&mut inner.conns, *day, batch, plan, seq, &src_ids, is_final);
            if let Err(e) = res {
                tracing::warn!(error = %e, seq, "commit failed; removing the batch's rows");
                let mut undo = committed.clone();
                undo.push(*day);
                if let Err(e2) = rollback_batch(inner, &meta_path, seq, &undo) {
                    tracing::warn!(error = %e2, seq, "cannot remove the failed batch's rows yet; retrying before the next commit");
                    self.needs_recovery = true;
                }
                return Err(e);
            }
            committed.push(*day);
            #[cfg(test)]
            if self.faults.abort_after_days == Some(committed.len()) {
                std::process::abort();
            }
        }
        Ok(stats)
    }

    /// Resolves the last journaled batch: complete if its final day file has
    /// it, else its rows are removed from every day it touched.
    fn recover(&mut self) -> Result<(), StoreError> {
        let meta_path = self.meta_path.clone();
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let last: Option<(i64, String, bool)> = inner
            .meta
            .query_row(
                "SELECT seq, days, resolved FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .at(&meta_path)?;
        let hint_max: i64 = inner
            .meta
            .query_row(
                "SELECT max(coalesce((SELECT max(max_seq) FROM days), 0), \
                 coalesce((SELECT max(seq) FROM checkpoints), 0))",
                [],
                |r| r.get(0),
            )
            .at(&meta_path)?;
        let mut next = hint_max + 1;
        if let Some((seq, days_text, resolved)) = last {
            next = next.max(seq + 1);
            if !resolved {
                let days = parse_days(&days_text, &meta_path)?;
                if !batch_complete(&mut inner.conns, seq, &days)? {
                    tracing::warn!(seq, "rolling back a batch interrupted by a crash");
                    rollback_batch(inner, &meta_path, seq, &days)?;
                } else {
                    inner
                        .meta
                        .execute("UPDATE journal SET resolved = 1 WHERE seq = ?1", [seq])
                        .at(&meta_path)?;
                }
            }
        }
        self.next_seq = self.next_seq.max(next);
        self.needs_recovery = false;
        Ok(())
    }

    /// The sequence number up to which batches are complete and visible: every
    /// batch for the writer (`None`), the last complete one for a reader.
    pub(crate) fn visible_seq(&self, inner: &mut Inner) -> Result<Option<i64>, StoreError> {
        if self.mode == Mode::Write {
            return Ok(None);
        }
        let last: Option<(i64, String, bool)> = inner
            .meta
            .query_row(
                "SELECT seq, days, resolved FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .at(&self.meta_path)?;
        Ok(Some(match last {
            None => 0,
            Some((seq, _, true)) => seq,
            Some((seq, days_text, false)) => {
                let days = parse_days(&days_text, &self.meta_path)?;
                if batch_complete(&mut inner.conns, seq, &days)? {
                    seq
                } else {
                    seq - 1
                }
            }
        }))
    }

    /// Per-day hints from meta.sqlite.
    pub(crate) fn day_hints(&self, inner: &Inner) -> Result<HashMap<i64, DayHint>, StoreError> {
        let p = &self.meta_path;
        let mut stmt = inner
            .meta
            .prepare_cached("SELECT day, max_seq, untimed FROM days")
            .at(p)?;
        let mut rows = stmt.query([]).at(p)?;
        let mut out = HashMap::new();
        while let Some(r) = rows.next().at(p)? {
            out.insert(
                r.get::<_, i64>(0).at(p)?,
                DayHint {
                    max_seq: r.get(1).at(p)?,
                    untimed: r.get::<_, i64>(2).at(p)? != 0,
                },
            );
        }
        Ok(out)
    }

    /// Deletes days by age, then by size. Before any file goes, the latest
    /// checkpoint of every source is copied to meta.sqlite, so a source that
    /// was idle for longer than the retention keeps its position.
    ///
    /// Age: a day is removed when it ended more than `retention_days` days
    /// before `now`. Size: while the store is larger than `max_bytes`, the
    /// oldest day before `now`'s day is removed; the current day never is.
    pub fn apply_retention(&mut self, now: Timestamp) -> Result<RetentionReport, StoreError> {
        self.writable()?;
        if self.needs_recovery {
            self.recover()?;
        }
        // Every batch is complete now: say so, so that readers need not look
        // for the last batch's final day file (which retention may remove).
        {
            let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            inner
                .meta
                .execute("UPDATE journal SET resolved = 1 WHERE resolved = 0", [])
                .at(&self.meta_path)?;
        }
        let mut plan = self.retention_plan(now)?;
        let mut report = RetentionReport::default();
        if !plan.0.is_empty() {
            // Writing the checkpoints may grow meta.sqlite: plan again after.
            self.carry_checkpoints()?;
            plan = self.retention_plan(now)?;
            let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            for (d, bytes, reason) in plan.0 {
                remove_day_file(inner, &self.meta_path, d)?;
                tracing::info!(day = %date_of(d), bytes, ?reason, "retention removed a day");
                report.removed.push(RemovedDay {
                    date: date_of(d),
                    bytes,
                    reason,
                });
            }
        }
        report.total_bytes = plan.1;
        report.over_limit = self.max_bytes.is_some_and(|m| plan.1 > m);
        Ok(report)
    }

    /// The days to remove (with their sizes and why) and the store size after.
    #[allow(clippy::type_complexity)]
    fn retention_plan(&self, now: Timestamp) -> Result<(Vec<(i64, u64, RemovalReason)>, u64), StoreError> {
        let today = day_of(now);
        let mut sizes: Vec<(i64, u64)> = list_days(&self.days_dir)?
            .into_iter()
            .map(|d| (d, file_bytes(&day_path(&self.days_dir, d))))
            .collect();
        let mut remove = Vec::new();
        if let Some(n) = self.retention_days {
            let cutoff = today - i64::from(n);
            sizes.retain(|(d, b)| {
                let old = *d < cutoff;
                if old {
                    remove.push((*d, *b, RemovalReason::Age));
                }
                !old
            });
        }
        let mut total: u64 = file_bytes(&self.meta_path) + sizes.iter().map(|(_, b)| b).sum::<u64>();
        if let Some(max) = self.max_bytes {
            for (d, b) in &sizes {
                if total <= max || *d >= today {
                    break;
                }
                remove.push((*d, *b, RemovalReason::Size));
                total -= b;
            }
        }
        Ok((remove, total))
    }

    /// Copies the latest checkpoint of every source into meta.sqlite.
    fn carry_checkpoints(&mut self) -> Result<(), StoreError> {
        let latest = self.latest_checkpoints()?;
        let meta_path = self.meta_path.clone();
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let tx = inner.meta.transaction().at(&meta_path)?;
        for (src, (seq, json)) in &latest {
            tx.execute(UPSERT_CHECKPOINT, params![src, seq, json])
                .at(&meta_path)?;
        }
        tx.commit().at(&meta_path)
    }

    /// Figures per day and in total.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut inner = self.lock_inner();
        let visible = self.visible_seq(&mut inner)?;
        let mut st = StoreStats {
            meta_bytes: file_bytes(&self.meta_path),
            ..StoreStats::default()
        };
        st.total_bytes = st.meta_bytes;
        for day in list_days(&self.days_dir)? {
            let path = inner.conns.path(day);
            let Some(conn) = inner.conns.get(day)? else {
                continue;
            };
            let (lines, unparsed, messages): (i64, i64, i64) = conn
                .prepare_cached(
                    "SELECT coalesce(sum(lines), 0), coalesce(sum(unparsed), 0), coalesce(sum(messages), 0) \
                     FROM batches WHERE seq <= ?1",
                )
                .and_then(|mut s| {
                    s.query_row([visible.unwrap_or(i64::MAX)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })
                .at(&path)?;
            let ds = DayStats {
                date: date_of(day),
                bytes: file_bytes(&path),
                lines: lines as u64,
                unparsed: unparsed as u64,
                messages: messages as u64,
            };
            st.total_bytes += ds.bytes;
            st.lines += ds.lines;
            st.unparsed += ds.unparsed;
            st.messages += ds.messages;
            st.days.push(ds);
        }
        st.oldest = st.days.first().map(|d| d.date);
        st.newest = st.days.last().map(|d| d.date);
        Ok(st)
    }

    /// Test hook: limit every day file to `n` pages (a full disk).
    #[cfg(test)]
    pub(crate) fn set_max_pages(&mut self, n: Option<i64>) -> Result<(), StoreError> {
        self.inner
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .set_max_pages(n)
    }
}

fn parse_days(text: &str, meta_path: &Path) -> Result<Vec<i64>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>().map_err(|_| StoreError::Corrupt {
                path: meta_path.into(),
                detail: format!("bad day list in the journal: {text:?}"),
            })
        })
        .collect()
}

/// Whether batch `seq`, which wrote to `days` (the final one last), is
/// complete: its final day file records it as final.
fn batch_complete(conns: &mut ConnCache, seq: i64, days: &[i64]) -> Result<bool, StoreError> {
    let Some(&final_day) = days.last() else {
        // Checkpoints only: committed with the journal entry itself.
        return Ok(true);
    };
    if !conns.path(final_day).exists() {
        return Ok(false);
    }
    let path = conns.path(final_day);
    let Some(conn) = conns.get(final_day)? else {
        return Ok(false);
    };
    conn.prepare_cached("SELECT 1 FROM batches WHERE seq = ?1 AND final = 1")
        .and_then(|mut s| s.exists([seq]))
        .at(&path)
}

/// Removes every row batch `seq` wrote to `days`, marks it resolved, and
/// deletes day files left empty.
pub(crate) fn rollback_batch(
    inner: &mut Inner,
    meta_path: &Path,
    seq: i64,
    days: &[i64],
) -> Result<(), StoreError> {
    for &day in days {
        let path = inner.conns.path(day);
        if !path.exists() {
            continue;
        }
        let empty = {
            let Some(conn) = inner.conns.get(day)? else {
                continue;
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .at(&path)?;
            let (keep_line, keep_msg): (i64, i64) = tx
                .query_row(
                    "SELECT coalesce(max(line_hi), 0), coalesce(max(msg_hi), 0) FROM batches WHERE seq < ?1",
                    [seq],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .at(&path)?;
            tx.execute("DELETE FROM keys WHERE line > ?1", [keep_line])
                .at(&path)?;
            tx.execute("DELETE FROM lines WHERE id > ?1", [keep_line])
                .at(&path)?;
            tx.execute("DELETE FROM mkeys WHERE msg > ?1", [keep_msg])
                .at(&path)?;
            tx.execute("DELETE FROM messages WHERE id > ?1", [keep_msg])
                .at(&path)?;
            tx.execute("DELETE FROM batches WHERE seq >= ?1", [seq])
                .at(&path)?;
            // Checkpoints the batch moved go back to their previous value.
            tx.execute(
                "UPDATE checkpoints SET seq = prev_seq, json = prev_json, prev_seq = NULL, prev_json = NULL \
                 WHERE seq >= ?1 AND prev_seq IS NOT NULL AND prev_seq < ?1",
                [seq],
            )
            .at(&path)?;
            tx.execute("DELETE FROM checkpoints WHERE seq >= ?1", [seq])
                .at(&path)?;
            let empty = !tx
                .query_row("SELECT EXISTS (SELECT 1 FROM batches)", [], |r| {
                    r.get::<_, bool>(0)
                })
                .at(&path)?;
            tx.commit().at(&path)?;
            empty
        };
        if empty {
            remove_day_file(inner, meta_path, day)?;
        }
    }
    inner
        .meta
        .execute("UPDATE journal SET resolved = 1 WHERE seq = ?1", [seq])
        .at(meta_path)?;
    Ok(())
}

/// Deletes a day's files: the WAL and shared-memory files first, so a crash in
/// between never leaves a WAL beside a different database of the same name.
fn remove_day_file(inner: &mut Inner, meta_path: &Path, day: i64) -> Result<(), StoreError> {
    inner.conns.close(day);
    let path = inner.conns.path(day);
    let [wal, shm] = side_files(&path);
    for p in [&wal, &shm, &path] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Io {
                    path: p.clone(),
                    source: e,
                });
            }
        }
    }
    inner
        .meta
        .execute("DELETE FROM days WHERE day = ?1", [day])
        .at(meta_path)?;
    Ok(())
}

/// Writes one day's share of a batch in one transaction.
fn write_day(
    conns: &mut ConnCache,
    day: i64,
    batch: &Batch,
    plan: &DayPlan,
    seq: i64,
    src_ids: &[i64],
    is_final: bool,
) -> Result<(), StoreError> {
    let path = conns.path(day);
    let conn = conns.get(day)?.ok_or_else(|| StoreError::Corrupt {
        path: path.clone(),
        detail: "cannot open the day file".into(),
    })?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(&path)?;
    let (mut line_lo, mut line_hi, mut msg_lo, mut msg_hi) = (None, None, None, None);
    let (mut ts_min, mut ts_max): (Option<i64>, Option<i64>) = (None, None);
    let (mut untimed, mut unparsed) = (0i64, 0i64);
    {
        let mut ins_line = tx.prepare_cached(INSERT_LINE).at(&path)?;
        let mut ins_key = tx.prepare_cached(INSERT_KEY).at(&path)?;
        for &i in &plan.lines {
            let l = &batch.lines[i];
            ins_line
                .execute(params![
                    src_ids[l.src],
                    l.ts.map(|t| t.unix_micros),
                    l.ts.map(|t| t.offset_secs),
                    l.received.unix_micros,
                    l.received.offset_secs,
                    batch.text(&l.raw),
                    field_sql(batch, &l.host),
                    field_sql(batch, &l.prog),
                    l.pid,
                    l.sev,
                    l.fam,
                    field_sql(batch, &l.msg),
                    l.unparsed,
                ])
                .at(&path)?;
            let id = tx.last_insert_rowid();
            line_lo.get_or_insert(id);
            line_hi = Some(id);
            match l.ts {
                Some(t) => {
                    ts_min = Some(ts_min.map_or(t.unix_micros, |m| m.min(t.unix_micros)));
                    ts_max = Some(ts_max.map_or(t.unix_micros, |m| m.max(t.unix_micros)));
                }
                None => untimed += 1,
            }
            unparsed += i64::from(l.unparsed.is_some());
            for k in batch.keys(&l.keys) {
                ins_key.execute(params![k, id]).at(&path)?;
            }
        }
        let mut ins_msg = tx.prepare_cached(INSERT_MESSAGE).at(&path)?;
        let mut ins_mkey = tx.prepare_cached(INSERT_MKEY).at(&path)?;
        for &i in &plan.messages {
            let m = &batch.messages[i];
            ins_msg
                .execute(params![m.first_ts, m.last_ts, m.json])
                .at(&path)?;
            let id = tx.last_insert_rowid();
            msg_lo.get_or_insert(id);
            msg_hi = Some(id);
            for k in batch.keys(&m.keys) {
                ins_mkey.execute(params![k, id]).at(&path)?;
            }
        }
        tx.prepare_cached(INSERT_BATCH)
            .and_then(|mut s| {
                s.execute(params![
                    seq,
                    is_final,
                    line_lo,
                    line_hi,
                    msg_lo,
                    msg_hi,
                    ts_min,
                    ts_max,
                    untimed,
                    plan.lines.len() as i64,
                    unparsed,
                    plan.messages.len() as i64,
                ])
            })
            .at(&path)?;
        if is_final {
            let mut up = tx.prepare_cached(UPSERT_CHECKPOINT).at(&path)?;
            for (src, json) in &batch.checkpoints {
                up.execute(params![src_ids[*src], seq, json]).at(&path)?;
            }
        }
    }
    tx.commit().at(&path)
}
