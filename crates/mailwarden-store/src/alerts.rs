//! Stored alerts with a state people change (meta.sqlite, schema version 3).
//!
//! The detection engine raises [`Alert`]s — one per episode. This module keeps
//! them as *alerts people handle*: de-duplicated, with a state (open,
//! acknowledged, suppressed), and answers the queries of `mailwarden alerts`.
//!
//! # Beside the writer
//!
//! `serve` holds the store's writer lock for as long as it runs, and an admin
//! must be able to acknowledge an alert meanwhile. An [`AlertStore`] therefore
//! takes no writer lock: it opens meta.sqlite read-write on its own
//! connection (WAL, `synchronous = FULL`, a 10 s busy timeout, as the writer
//! does) and every change is one short `BEGIN IMMEDIATE` transaction, which
//! SQLite serialises with the writer's. It never creates or migrates
//! meta.sqlite: a store older than schema 3 is refused with
//! [`AlertError::NeedsUpgrade`] until `serve` or `ingest` (the writer) opened
//! it once.
//!
//! # Recording
//!
//! [`AlertStore::record`] files one alert and says whether sinks should be
//! told ([`RecordOutcome::notify`]):
//!
//! 1. **The same episode again** (rule, key and first event already
//!    recorded — a replay run twice, a restart, or the live engine's
//!    "opened" copy followed by the closed alert): if it holds nothing newer,
//!    [`RecordOutcome::Duplicate`] and nothing changes; else the alert's last
//!    time and count grow ([`RecordOutcome::Merged`]; `occurrences` stays).
//! 2. **Suppressed**: an active suppression matches rule and key. The episode
//!    joins the newest suppressed alert of the rule and key when it is within
//!    the de-dup window of it ([`RecordPolicy::dedup_window`], event time),
//!    else a new alert in state `suppressed` is stored.
//!    [`RecordOutcome::Suppressed`]; never notified.
//! 3. **A repeat** merges into the newest open or acknowledged alert of the
//!    same rule and key ([`RecordOutcome::Merged`]: `occurrences` + 1, last
//!    time, count, latest message and evidence; not notified) when that alert
//!    is
//!    - still open and continued by the repeat: it starts within the de-dup
//!      window after the alert's last event (event time) — more of the same
//!      is not news, but the same attack again weeks later is;
//!    - acknowledged, and either acknowledged less than
//!      [`RecordPolicy::ack_window`] ago (wall time), or the repeat continues
//!      it: it starts within the de-dup window after the alert's last event.
//!
//!    Otherwise — no such alert, an open one the repeat does not continue,
//!    or an acknowledged one whose window passed and that the repeat does
//!    not continue — a **new** alert opens
//!    ([`RecordOutcome::New`], notified).
//!
//! **Severity escalation**: a merge (1. or 3.) whose severity is higher than
//! the stored alert's raises the stored severity and is notified again
//! ([`RecordOutcome::Escalated`]); an acknowledged alert goes back to open.
//! Suppressed alerts never escalate.
//!
//! # Bounds
//!
//! Alerts come from the engine, whose messages, facts and evidence are
//! already bounded; an alert keeps the latest episode's. Notes, names and key
//! patterns people give are cut or refused at [`MAX_NOTE_BYTES`],
//! [`MAX_NAME_BYTES`] and [`MAX_PATTERN_BYTES`]. Rows and remembered
//! episodes grow with time only (one episode per rule, key and quiet period)
//! and are removed by [`AlertStore::apply_retention`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mailwarden_core::detect::{Alert, AlertSeverity};
use mailwarden_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::error::{SqlCtx, StoreError};
use crate::schema::{META, META_APP_ID, META_SCHEMA_VERSION};

/// The meta.sqlite schema version that holds the alert tables.
pub const ALERTS_SCHEMA_VERSION: i64 = 3;
const _: () = assert!(ALERTS_SCHEMA_VERSION <= META_SCHEMA_VERSION);
/// Longest acknowledgement or suppression note kept, in bytes (longer ones are cut).
pub const MAX_NOTE_BYTES: usize = 1024;
/// Longest "acknowledged by" / "created by" name kept, in bytes (longer ones are cut).
pub const MAX_NAME_BYTES: usize = 128;
/// Longest rule id or key pattern of a suppression, in bytes (longer ones are refused).
pub const MAX_PATTERN_BYTES: usize = 512;

/// Where an alert is in its handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Raised, nobody acknowledged it yet.
    Open,
    /// Somebody looked at it; repeats merge silently for a while.
    Acknowledged,
    /// A suppression matched when it was recorded; never notified.
    Suppressed,
}

impl AlertState {
    /// Every state.
    pub const ALL: [AlertState; 3] = [AlertState::Open, AlertState::Acknowledged, AlertState::Suppressed];

    /// The lower-case name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Suppressed => "suppressed",
        }
    }

    fn from_db(s: &str) -> Option<AlertState> {
        AlertState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertState {
    type Err = String;

    fn from_str(s: &str) -> Result<AlertState, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(AlertState::Open),
            "acknowledged" | "ack" | "acked" => Ok(AlertState::Acknowledged),
            "suppressed" => Ok(AlertState::Suppressed),
            _ => Err(format!(
                "unknown alert state {s:?}; use open, acknowledged or suppressed"
            )),
        }
    }
}

/// Who recorded an alert: the running collector or a replay of past logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// `serve`, as the events arrived.
    Live,
    /// A replay of files or of the store.
    Replay,
}

impl AlertSource {
    /// The lower-case name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Live => "live",
            AlertSource::Replay => "replay",
        }
    }
}

/// How [`AlertStore::record`] de-duplicates; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPolicy {
    /// An episode that starts at most this long (event time) after an
    /// acknowledged or suppressed alert's last event continues it. Default 1 h.
    pub dedup_window: Duration,
    /// After an acknowledgement, repeats merge silently for this long (wall
    /// time); later ones that do not continue the alert open a new one.
    /// Default 24 h.
    pub ack_window: Duration,
    /// Stored with new alerts.
    pub source: AlertSource,
}

impl Default for RecordPolicy {
    fn default() -> RecordPolicy {
        RecordPolicy {
            dedup_window: Duration::from_secs(3600),
            ack_window: Duration::from_secs(86_400),
            source: AlertSource::Live,
        }
    }
}

/// What [`AlertStore::record`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RecordOutcome {
    /// A new alert was stored: notify.
    New,
    /// Merged into an existing alert: do not notify.
    Merged,
    /// Merged into an existing alert with a higher severity than it had:
    /// notify again.
    Escalated,
    /// Stored as (or merged into) a suppressed alert because suppression
    /// `suppression` matched: do not notify.
    Suppressed {
        /// The matching suppression's id.
        suppression: i64,
    },
    /// Already recorded exactly so; nothing changed: do not notify.
    Duplicate,
}

impl RecordOutcome {
    /// Whether sinks should be told.
    pub fn notify(self) -> bool {
        matches!(self, RecordOutcome::New | RecordOutcome::Escalated)
    }
}

/// The result of [`AlertStore::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The stored alert the episode went to.
    pub id: i64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: RecordOutcome,
}

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// Stable id (what `mailwarden alerts ack` takes).
    pub id: i64,
    /// Its state.
    pub state: AlertState,
    /// Episodes merged into it (1 for a single one).
    pub occurrences: u64,
    /// When it was stored (wall time).
    pub created: Timestamp,
    /// When it last changed (wall time).
    pub updated: Timestamp,
    /// When it was acknowledged (wall time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_at: Option<Timestamp>,
    /// Who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_by: Option<String>,
    /// Their note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_note: Option<String>,
    /// When sinks were last told about it (see [`AlertStore::mark_notified`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<Timestamp>,
    /// Who recorded it first.
    pub source: AlertSource,
    /// The suppression that matched, for suppressed alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<i64>,
    /// The alert: the latest episode's message, facts and evidence, with the
    /// merged first and last event times, count and severity.
    #[serde(flatten)]
    pub alert: Alert,
}

/// Which alerts [`AlertStore::list`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only these states; empty: all.
    pub states: Vec<AlertState>,
    /// Only alerts whose last event is not before this.
    pub since: Option<Timestamp>,
    /// Only alerts whose last event is not after this.
    pub until: Option<Timestamp>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this severity or higher.
    pub min_severity: Option<AlertSeverity>,
    /// Only keys containing this text (case-sensitive).
    pub key_contains: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A suppression: alerts of a rule (and key pattern) are stored suppressed,
/// never notified, until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Stable id (what `mailwarden alerts unsuppress` takes).
    pub id: i64,
    /// The rule id.
    pub rule: String,
    /// The key pattern (`*` matches any run of characters); `None`: every key.
    pub key: Option<String>,
    /// Active until (wall time).
    pub until: Timestamp,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When (wall time).
    pub created_at: Timestamp,
}

impl Suppression {
    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.until > now
    }

    /// Whether it covers an alert of `rule` for `key`.
    pub fn matches(&self, rule: &str, key: &str) -> bool {
        self.rule == rule
            && self
                .key
                .as_deref()
                .is_none_or(|p| glob_match(p.as_bytes(), key.as_bytes()))
    }
}

/// How many alerts are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounts {
    /// Open.
    pub open: u64,
    /// Acknowledged.
    pub acknowledged: u64,
    /// Suppressed.
    pub suppressed: u64,
}

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The store failed (names the file and the fix).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// meta.sqlite predates the alert tables.
    #[error(
        "{path} has schema version {found} and has no alert tables yet (version {needed}); \
         start `mailwarden serve` or `ingest` once to upgrade the store"
    )]
    NeedsUpgrade {
        /// meta.sqlite.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The version with the alert tables.
        needed: i64,
    },
    /// Ids that name no stored alert (nothing was changed).
    #[error(
        "no alert with id {}; `mailwarden alerts list --state all` shows the ids",
        .ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )]
    UnknownAlerts {
        /// The unknown ids.
        ids: Vec<i64>,
    },
    /// An id that names no suppression.
    #[error("no suppression with id {id}; `mailwarden alerts suppressions --all` lists them")]
    UnknownSuppression {
        /// The unknown id.
        id: i64,
    },
    /// An argument that cannot be stored.
    #[error("{what}: {detail}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong and the fix.
        detail: String,
    },
}

/// The stored alerts of a data directory; see the module docs.
///
/// Methods take `&self` and may be called from several threads (they
/// serialise on an internal lock).
pub struct AlertStore {
    path: PathBuf,
    read_only: bool,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for AlertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertStore")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// The stored state of an alert row, as merging needs it.
struct Row {
    id: i64,
    state: AlertState,
    severity: i64,
    first: Timestamp,
    last: Timestamp,
    count: i64,
    occurrences: i64,
    ack_at: Option<i64>,
    suppression: Option<i64>,
}

const ROW_COLS: &str =
    "id, state, severity, first_ts, first_tz, last_ts, last_tz, count, occurrences, ack_at, suppression";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Row, String)> {
    let state: String = r.get(1)?;
    Ok((
        Row {
            id: r.get(0)?,
            state: AlertState::Open,
            severity: r.get(2)?,
            first: ts(r.get(3)?, r.get(4)?),
            last: ts(r.get(5)?, r.get(6)?),
            count: r.get(7)?,
            occurrences: r.get(8)?,
            ack_at: r.get(9)?,
            suppression: r.get(10)?,
        },
        state,
    ))
}

const FULL_COLS: &str = "id, state, occurrences, created, updated, ack_at, ack_by, ack_note, notified_at, source, \
     suppression, json, severity, first_ts, first_tz, last_ts, last_tz, count";

fn ts(micros: i64, offset: i64) -> Timestamp {
    Timestamp {
        unix_micros: micros,
        offset_secs: i32::try_from(offset).unwrap_or(0),
    }
}

fn wall(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

/// The rank stored in `severity` (0 informational … 4 critical).
fn rank(s: AlertSeverity) -> i64 {
    match s {
        AlertSeverity::Informational => 0,
        AlertSeverity::Low => 1,
        AlertSeverity::Medium => 2,
        AlertSeverity::High => 3,
        AlertSeverity::Critical => 4,
    }
}

fn severity_of(rank: i64) -> AlertSeverity {
    match rank {
        i64::MIN..=0 => AlertSeverity::Informational,
        1 => AlertSeverity::Low,
        2 => AlertSeverity::Medium,
        3 => AlertSeverity::High,
        _ => AlertSeverity::Critical,
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `s` matches `pat`, where `*` matches any run of bytes (also
/// none) and every other byte itself. Backtracks to the last star only: at
/// most `pat.len() * s.len()` steps (both are bounded).
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

impl AlertStore {
    /// Opens the alerts of the store in `dir` for reading and changing,
    /// beside a running writer (no writer lock is taken).
    pub fn open(dir: &Path) -> Result<AlertStore, AlertError> {
        AlertStore::open_mode(dir, false)
    }

    /// Opens the alerts of the store in `dir` for reading only.
    pub fn open_read_only(dir: &Path) -> Result<AlertStore, AlertError> {
        AlertStore::open_mode(dir, true)
    }

    fn open_mode(dir: &Path, read_only: bool) -> Result<AlertStore, AlertError> {
        let path = dir.join("meta.sqlite");
        if !path.exists() {
            return Err(StoreError::NotFound { path: dir.into() }.into());
        }
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).at(&path)?;
        conn.busy_timeout(Duration::from_secs(10)).at(&path)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .at(&path)?;
        let app_id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .at(&path)?;
        if app_id != META_APP_ID {
            // A meta.sqlite created but never initialised (a crash right
            // after creating it) waits for the writer like an old one.
            let objects: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .at(&path)?;
            if app_id == 0 && version == 0 && objects == 0 {
                return Err(AlertError::NeedsUpgrade {
                    path,
                    found: 0,
                    needed: ALERTS_SCHEMA_VERSION,
                });
            }
            return Err(StoreError::NotAStore { path }.into());
        }
        if version > META_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found: version,
                supported: META_SCHEMA_VERSION,
            }
            .into());
        }
        if version < ALERTS_SCHEMA_VERSION {
            return Err(AlertError::NeedsUpgrade {
                path,
                found: version,
                needed: ALERTS_SCHEMA_VERSION,
            });
        }
        if read_only {
            conn.pragma_update(None, "query_only", true).at(&path)?;
        } else {
            // The writer's settings for meta.sqlite (see `schema::open_file`):
            // WAL lets this connection write between the writer's short
            // transactions; FULL puts every change on disk at commit.
            let jm: String = conn
                .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
                .at(&path)?;
            if !jm.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt {
                    path,
                    detail: format!("cannot switch to WAL journal mode (got {jm})"),
                }
                .into());
            }
            conn.pragma_update(None, "synchronous", "FULL").at(&path)?;
            conn.pragma_update(None, "wal_autocheckpoint", META.wal_pages)
                .at(&path)?;
            conn.pragma_update(None, "journal_size_limit", META.wal_limit)
                .at(&path)?;
        }
        Ok(AlertStore {
            path,
            read_only,
            conn: Mutex::new(conn),
        })
    }

    /// meta.sqlite's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<(), AlertError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn corrupt(&self, detail: String) -> AlertError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
        .into()
    }

    /// Files one alert at wall time `now`; see the module docs for merging,
    /// suppression, escalation and idempotence.
    pub fn record(
        &self,
        alert: &Alert,
        now: Timestamp,
        policy: &RecordPolicy,
    ) -> Result<Recorded, AlertError> {
        self.writable()?;
        let path = self.path.clone();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        let (first, last) = if alert.first <= alert.last {
            (alert.first, alert.last)
        } else {
            (alert.last, alert.first)
        };
        let count = clamp(alert.count);
        let dedup = micros(policy.dedup_window);

        // 1. The same episode again.
        let episode: Option<(i64, i64, i64)> = tx
            .query_row(
                "SELECT alert, last_ts, count FROM alert_episodes WHERE rule = ?1 AND key = ?2 AND first_ts = ?3",
                params![alert.rule, alert.key, first.unix_micros],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .at(&path)?;
        if let Some((id, ep_last, ep_count)) = episode
            && let Some(row) = self.row(&tx, id)?
        {
            if last.unix_micros <= ep_last && count <= ep_count {
                return Ok(Recorded {
                    id,
                    outcome: RecordOutcome::Duplicate,
                });
            }
            tx.execute(
                "UPDATE alert_episodes SET last_ts = max(last_ts, ?4), count = max(count, ?5) \
                 WHERE rule = ?1 AND key = ?2 AND first_ts = ?3",
                params![alert.rule, alert.key, first.unix_micros, last.unix_micros, count],
            )
            .at(&path)?;
            let grown = count.saturating_sub(ep_count).max(0);
            let outcome = self.merge(&tx, &row, alert, (first, last), grown, false, now)?;
            tx.commit().at(&path)?;
            return Ok(Recorded { id, outcome });
        }

        // 2. Suppressed.
        let suppression = self
            .suppressions_in(&tx, false, now)?
            .into_iter()
            .find(|s| s.matches(&alert.rule, &alert.key));
        let recorded = if let Some(s) = suppression {
            let near = self
                .newest(&tx, &alert.rule, &alert.key, &[AlertState::Suppressed])?
                .filter(|row| first.unix_micros <= row.last.unix_micros.saturating_add(dedup));
            let id = match near {
                Some(row) => {
                    self.merge(&tx, &row, alert, (first, last), count, true, now)?;
                    row.id
                }
                None => self.insert(
                    &tx,
                    alert,
                    (first, last),
                    AlertState::Suppressed,
                    Some(s.id),
                    now,
                    policy,
                )?,
            };
            Recorded {
                id,
                outcome: RecordOutcome::Suppressed { suppression: s.id },
            }
        } else {
            // 3. A repeat, or new.
            let candidate = self
                .newest(
                    &tx,
                    &alert.rule,
                    &alert.key,
                    &[AlertState::Open, AlertState::Acknowledged],
                )?
                .filter(|row| {
                    let continues = first.unix_micros <= row.last.unix_micros.saturating_add(dedup);
                    match row.state {
                        // An open alert nobody looked at absorbs what
                        // continues it, not an attack weeks later: that
                        // is news again, and is told.
                        AlertState::Open => continues,
                        AlertState::Acknowledged => {
                            let in_window = row.ack_at.is_some_and(|at| {
                                now.unix_micros < at.saturating_add(micros(policy.ack_window))
                            });
                            in_window || continues
                        }
                        AlertState::Suppressed => false,
                    }
                });
            match candidate {
                Some(row) => Recorded {
                    id: row.id,
                    outcome: self.merge(&tx, &row, alert, (first, last), count, true, now)?,
                },
                None => Recorded {
                    id: self.insert(&tx, alert, (first, last), AlertState::Open, None, now, policy)?,
                    outcome: RecordOutcome::New,
                },
            }
        };
        tx.execute(
            "INSERT OR REPLACE INTO alert_episodes (rule, key, first_ts, last_ts, count, alert) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                alert.rule,
                alert.key,
                first.unix_micros,
                last.unix_micros,
                count,
                recorded.id
            ],
        )
        .at(&path)?;
        tx.commit().at(&path)?;
        Ok(recorded)
    }

    fn row(&self, tx: &Transaction<'_>, id: i64) -> Result<Option<Row>, AlertError> {
        let got = tx
            .query_row(
                &format!("SELECT {ROW_COLS} FROM alerts WHERE id = ?1"),
                params![id],
                read_row,
            )
            .optional()
            .at(&self.path)?;
        got.map(|(row, state)| self.with_state(row, &state)).transpose()
    }

    fn with_state(&self, mut row: Row, state: &str) -> Result<Row, AlertError> {
        row.state = AlertState::from_db(state)
            .ok_or_else(|| self.corrupt(format!("alert {} has an unknown state {state:?}", row.id)))?;
        Ok(row)
    }

    /// The alert of `rule` and `key` in one of `states` with the latest last event.
    fn newest(
        &self,
        tx: &Transaction<'_>,
        rule: &str,
        key: &str,
        states: &[AlertState],
    ) -> Result<Option<Row>, AlertError> {
        // The states are this module's constants, never input.
        let states: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let got = tx
            .prepare_cached(&format!(
                "SELECT {ROW_COLS} FROM alerts WHERE rule = ?1 AND key = ?2 AND state IN ({}) \
                 ORDER BY last_ts DESC, id DESC LIMIT 1",
                states.join(", ")
            ))
            .at(&self.path)?
            .query_row(params![rule, key], read_row)
            .optional()
            .at(&self.path)?;
        got.map(|(row, state)| self.with_state(row, &state)).transpose()
    }

    /// Merges an episode into `row`: `grown` more counted events, and one
    /// more occurrence when `new_occurrence`. Returns the outcome for a
    /// non-suppressed row (merged or escalated).
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &self,
        tx: &Transaction<'_>,
        row: &Row,
        alert: &Alert,
        (first, last): (Timestamp, Timestamp),
        grown: i64,
        new_occurrence: bool,
        now: Timestamp,
    ) -> Result<RecordOutcome, AlertError> {
        let new_rank = rank(alert.severity);
        let escalated = new_rank > row.severity && row.state != AlertState::Suppressed;
        let severity = row.severity.max(new_rank);
        let mut merged = alert.clone();
        merged.first = row.first.min(first);
        merged.last = row.last.max(last);
        merged.count = u64::try_from(row.count.saturating_add(grown)).unwrap_or(0);
        merged.severity = severity_of(severity);
        let json = serde_json::to_string(&merged)
            .map_err(|e| self.corrupt(format!("cannot encode an alert: {e}")))?;
        let state = if escalated { AlertState::Open } else { row.state };
        tx.execute(
            "UPDATE alerts SET severity = ?2, title = ?3, first_ts = ?4, first_tz = ?5, last_ts = ?6, last_tz = ?7, \
             count = ?8, occurrences = ?9, message = ?10, json = ?11, state = ?12, updated = ?13 WHERE id = ?1",
            params![
                row.id,
                severity,
                merged.title,
                merged.first.unix_micros,
                merged.first.offset_secs,
                merged.last.unix_micros,
                merged.last.offset_secs,
                clamp(merged.count),
                row.occurrences.saturating_add(i64::from(new_occurrence)),
                merged.message,
                json,
                state.as_str(),
                now.unix_micros
            ],
        )
        .at(&self.path)?;
        Ok(match row.state {
            AlertState::Suppressed => RecordOutcome::Suppressed {
                suppression: row.suppression.unwrap_or(0),
            },
            _ if escalated => RecordOutcome::Escalated,
            _ => RecordOutcome::Merged,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        tx: &Transaction<'_>,
        alert: &Alert,
        (first, last): (Timestamp, Timestamp),
        state: AlertState,
        suppression: Option<i64>,
        now: Timestamp,
        policy: &RecordPolicy,
    ) -> Result<i64, AlertError> {
        let mut stored = alert.clone();
        stored.first = first;
        stored.last = last;
        let json = serde_json::to_string(&stored)
            .map_err(|e| self.corrupt(format!("cannot encode an alert: {e}")))?;
        tx.execute(
            "INSERT INTO alerts (rule, key, severity, title, first_ts, first_tz, last_ts, last_tz, count, \
             occurrences, message, json, state, suppression, created, updated, source) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?11, ?12, ?13, ?14, ?14, ?15)",
            params![
                stored.rule,
                stored.key,
                rank(stored.severity),
                stored.title,
                first.unix_micros,
                first.offset_secs,
                last.unix_micros,
                last.offset_secs,
                clamp(stored.count),
                stored.message,
                json,
                state.as_str(),
                suppression,
                now.unix_micros,
                policy.source.as_str()
            ],
        )
        .at(&self.path)?;
        Ok(tx.last_insert_rowid())
    }

    /// Notes that sinks were told about alert `id` at `now`.
    pub fn mark_notified(&self, id: i64, now: Timestamp) -> Result<(), AlertError> {
        self.writable()?;
        let conn = self.lock();
        let n = conn
            .execute(
                "UPDATE alerts SET notified_at = ?2 WHERE id = ?1",
                params![id, now.unix_micros],
            )
            .at(&self.path)?;
        if n == 0 {
            return Err(AlertError::UnknownAlerts { ids: vec![id] });
        }
        Ok(())
    }

    /// The alerts matching `q`, the latest last event first.
    pub fn list(&self, q: &AlertQuery) -> Result<Vec<StoredAlert>, AlertError> {
        let mut sql = format!("SELECT {FULL_COLS} FROM alerts WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if !q.states.is_empty() {
            let marks: Vec<String> = q
                .states
                .iter()
                .map(|s| {
                    args.push(Value::Text(s.as_str().to_owned()));
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND state IN ({})", marks.join(", ")));
        }
        // Fixed fragments only; `#` becomes the placeholder of the value.
        let mut cond = |fragment: &str, v: Value| {
            args.push(v);
            sql.push_str(&fragment.replace('#', &format!("?{}", args.len())));
        };
        if let Some(t) = q.since {
            cond(" AND last_ts >= #", Value::Integer(t.unix_micros));
        }
        if let Some(t) = q.until {
            cond(" AND last_ts <= #", Value::Integer(t.unix_micros));
        }
        if let Some(r) = &q.rule {
            cond(" AND rule = #", Value::Text(r.clone()));
        }
        if let Some(s) = q.min_severity {
            cond(" AND severity >= #", Value::Integer(rank(s)));
        }
        if let Some(k) = q.key_contains.as_ref().filter(|k| !k.is_empty()) {
            cond(" AND instr(key, #) > 0", Value::Text(k.clone()));
        }
        args.push(Value::Integer(
            q.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        ));
        sql.push_str(&format!(" ORDER BY last_ts DESC, id DESC LIMIT ?{}", args.len()));
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql).at(&self.path)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .at(&self.path)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().at(&self.path)? {
            out.push(self.stored(r)?);
        }
        Ok(out)
    }

    /// The alert with this id.
    pub fn get(&self, id: i64) -> Result<Option<StoredAlert>, AlertError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {FULL_COLS} FROM alerts WHERE id = ?1"))
            .at(&self.path)?;
        let mut rows = stmt.query(params![id]).at(&self.path)?;
        match rows.next().at(&self.path)? {
            Some(r) => Ok(Some(self.stored(r)?)),
            None => Ok(None),
        }
    }

    fn stored(&self, r: &rusqlite::Row<'_>) -> Result<StoredAlert, AlertError> {
        let p = &self.path;
        let id: i64 = r.get(0).at(p)?;
        let state: String = r.get(1).at(p)?;
        let source: String = r.get(9).at(p)?;
        let json: String = r.get(11).at(p)?;
        let mut alert: Alert = serde_json::from_str(&json)
            .map_err(|e| self.corrupt(format!("alert {id} cannot be read: {e}")))?;
        // The columns are authoritative for what merging changes.
        alert.severity = severity_of(r.get(12).at(p)?);
        alert.first = ts(r.get(13).at(p)?, r.get(14).at(p)?);
        alert.last = ts(r.get(15).at(p)?, r.get(16).at(p)?);
        alert.count = u64::try_from(r.get::<_, i64>(17).at(p)?).unwrap_or(0);
        Ok(StoredAlert {
            id,
            state: AlertState::from_db(&state)
                .ok_or_else(|| self.corrupt(format!("alert {id} has an unknown state {state:?}")))?,
            occurrences: u64::try_from(r.get::<_, i64>(2).at(p)?).unwrap_or(0),
            created: wall(r.get(3).at(p)?),
            updated: wall(r.get(4).at(p)?),
            ack_at: r.get::<_, Option<i64>>(5).at(p)?.map(wall),
            ack_by: r.get(6).at(p)?,
            ack_note: r.get(7).at(p)?,
            notified_at: r.get::<_, Option<i64>>(8).at(p)?.map(wall),
            source: if source == "replay" {
                AlertSource::Replay
            } else {
                AlertSource::Live
            },
            suppression: r.get(10).at(p)?,
            alert,
        })
    }

    /// Acknowledges alerts: state `acknowledged` (suppressed alerts stay
    /// suppressed), with who, when and a note (cut at [`MAX_NOTE_BYTES`]).
    /// Acknowledging again renews the acknowledgement window. All or nothing:
    /// an unknown id changes nothing and is named in the error. Returns how
    /// many alerts were acknowledged.
    pub fn ack(
        &self,
        ids: &[i64],
        by: &str,
        note: Option<&str>,
        now: Timestamp,
    ) -> Result<usize, AlertError> {
        self.writable()?;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let by = cut(by.trim(), MAX_NAME_BYTES);
        let note = note.map(|n| cut(n, MAX_NOTE_BYTES)).filter(|n| !n.is_empty());
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&self.path)?;
        let mut unknown = Vec::new();
        for id in &ids {
            let n = tx
                .execute(
                    "UPDATE alerts SET state = CASE state WHEN 'suppressed' THEN state ELSE 'acknowledged' END, \
                     ack_at = ?2, ack_by = ?3, ack_note = ?4, updated = ?2 WHERE id = ?1",
                    params![id, now.unix_micros, by, note],
                )
                .at(&self.path)?;
            if n == 0 {
                unknown.push(*id);
            }
        }
        if !unknown.is_empty() {
            return Err(AlertError::UnknownAlerts { ids: unknown });
        }
        tx.commit().at(&self.path)?;
        Ok(ids.len())
    }

    /// Adds a suppression of `rule` (and keys matching `key`, where `*`
    /// matches any run of characters; `None`: every key) until `until`.
    /// Returns its id.
    pub fn suppress(
        &self,
        rule: &str,
        key: Option<&str>,
        until: Timestamp,
        note: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<i64, AlertError> {
        self.writable()?;
        let rule = rule.trim();
        if rule.is_empty() || rule.len() > MAX_PATTERN_BYTES {
            return Err(AlertError::Invalid {
                what: "rule",
                detail: format!("give a rule id of 1 to {MAX_PATTERN_BYTES} bytes"),
            });
        }
        if let Some(k) = key
            && (k.is_empty() || k.len() > MAX_PATTERN_BYTES)
        {
            return Err(AlertError::Invalid {
                what: "key",
                detail: format!(
                    "give a key pattern of 1 to {MAX_PATTERN_BYTES} bytes, or none for every key"
                ),
            });
        }
        if until <= now {
            return Err(AlertError::Invalid {
                what: "until",
                detail: format!("{until} is not in the future; give a positive duration"),
            });
        }
        let note = note.map(|n| cut(n, MAX_NOTE_BYTES)).filter(|n| !n.is_empty());
        let conn = self.lock();
        conn.execute(
            "INSERT INTO suppressions (rule, key, until, note, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rule,
                key,
                until.unix_micros,
                note,
                cut(by.trim(), MAX_NAME_BYTES),
                now.unix_micros
            ],
        )
        .at(&self.path)?;
        Ok(conn.last_insert_rowid())
    }

    /// Ends suppression `id` at `now` (it stays listed as expired). Returns
    /// whether it was still active.
    pub fn unsuppress(&self, id: i64, now: Timestamp) -> Result<bool, AlertError> {
        self.writable()?;
        let conn = self.lock();
        let until: Option<i64> = conn
            .query_row("SELECT until FROM suppressions WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .at(&self.path)?;
        let Some(until) = until else {
            return Err(AlertError::UnknownSuppression { id });
        };
        if until <= now.unix_micros {
            return Ok(false);
        }
        conn.execute(
            "UPDATE suppressions SET until = ?2 WHERE id = ?1",
            params![id, now.unix_micros],
        )
        .at(&self.path)?;
        Ok(true)
    }

    /// The suppressions active at `now` (and the expired ones too with
    /// `include_expired`), oldest first.
    pub fn suppressions(
        &self,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<Suppression>, AlertError> {
        let conn = self.lock();
        self.suppressions_in(&conn, include_expired, now)
    }

    fn suppressions_in(
        &self,
        conn: &Connection,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<Suppression>, AlertError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, rule, key, until, note, created_by, created_at FROM suppressions \
                 WHERE ?1 OR until > ?2 ORDER BY id",
            )
            .at(&self.path)?;
        let rows = stmt
            .query_map(params![include_expired, now.unix_micros], |r| {
                Ok(Suppression {
                    id: r.get(0)?,
                    rule: r.get(1)?,
                    key: r.get(2)?,
                    until: wall(r.get(3)?),
                    note: r.get(4)?,
                    created_by: r.get(5)?,
                    created_at: wall(r.get(6)?),
                })
            })
            .at(&self.path)?;
        rows.map(|r| r.at(&self.path).map_err(AlertError::from)).collect()
    }

    /// How many alerts are in each state.
    pub fn counts(&self) -> Result<AlertCounts, AlertError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM alerts GROUP BY state")
            .at(&self.path)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .at(&self.path)?;
        let mut c = AlertCounts::default();
        for row in rows {
            let (state, n) = row.at(&self.path)?;
            let n = u64::try_from(n).unwrap_or(0);
            match AlertState::from_db(&state) {
                Some(AlertState::Open) => c.open = n,
                Some(AlertState::Acknowledged) => c.acknowledged = n,
                Some(AlertState::Suppressed) => c.suppressed = n,
                None => return Err(self.corrupt(format!("alerts in an unknown state {state:?}"))),
            }
        }
        Ok(c)
    }

    /// Deletes alerts whose last event is more than `days` days before `now`
    /// (with their remembered episodes), and suppressions that expired
    /// before that. Returns how many alerts were deleted.
    pub fn apply_retention(&self, days: u32, now: Timestamp) -> Result<u64, AlertError> {
        self.writable()?;
        let cutoff = now
            .unix_micros
            .saturating_sub(i64::from(days).saturating_mul(86_400_000_000));
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&self.path)?;
        tx.execute(
            "DELETE FROM alert_episodes WHERE alert IN (SELECT id FROM alerts WHERE last_ts < ?1)",
            params![cutoff],
        )
        .at(&self.path)?;
        let n = tx
            .execute("DELETE FROM alerts WHERE last_ts < ?1", params![cutoff])
            .at(&self.path)?;
        tx.execute("DELETE FROM suppressions WHERE until < ?1", params![cutoff])
            .at(&self.path)?;
        tx.commit().at(&self.path)?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use mailwarden_core::time::Timestamp;
    use rusqlite::Connection;

    use super::*;
    use crate::schema::{self, Kind, META_MIGRATIONS, Mode};
    use crate::tests::{add_lines, framer, lines_on, temp_store};
    use crate::{Store, StoreConfig};

    /// 2024-03-11T00:00:00Z: event times of the test alerts.
    const T0: i64 = 1_710_115_200;
    /// Wall time: a day after the events.
    const NOW: i64 = T0 + 86_400;

    fn t(secs: i64) -> Timestamp {
        Timestamp {
            unix_micros: (T0 + secs) * 1_000_000,
            offset_secs: 3600,
        }
    }

    fn now(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(NOW + secs)
    }

    /// An alert as the engine raises it (built from JSON so that fields the
    /// engine may add later with defaults keep the tests compiling).
    fn alert(rule: &str, key: &str, first: i64, last: i64, count: u64, severity: &str) -> Alert {
        serde_json::from_value(serde_json::json!({
            "rule": rule,
            "title": format!("title of {rule}"),
            "severity": severity,
            "attack": ["T1110.001"],
            "key": key,
            "first": t(first).to_string(),
            "last": t(last).to_string(),
            "count": count,
            "message": format!("{key}: {count} events"),
            "facts": {"user": ["alice@example.org"]},
            "evidence": [{
                "kind": "line",
                "position": {"source": 0, "line": 7},
                "at": "mail.log:7",
                "ts": t(first).to_string(),
                "text": "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed"
            }]
        }))
        .unwrap()
    }

    fn bf(key: &str, first: i64, last: i64, count: u64) -> Alert {
        alert("auth-bruteforce-ip", key, first, last, count, "high")
    }

    fn policy() -> RecordPolicy {
        RecordPolicy {
            source: AlertSource::Replay,
            ..RecordPolicy::default()
        }
    }

    /// A fresh store (schema current) and its alert handle.
    fn alerts() -> (tempfile::TempDir, Store, AlertStore) {
        let (dir, store) = temp_store();
        let a = AlertStore::open(&dir.path().join("data")).unwrap();
        (dir, store, a)
    }

    fn outcome(a: &AlertStore, al: &Alert, at: Timestamp) -> (i64, RecordOutcome) {
        let r = a.record(al, at, &policy()).unwrap();
        (r.id, r.outcome)
    }

    #[test]
    fn a_v2_store_is_refused_until_the_writer_migrates_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let meta = data.join("meta.sqlite");
        // meta.sqlite as mailwarden with schema 2 left it, with a source and
        // a TLS report in it.
        let v2 = Kind {
            migrations: &META_MIGRATIONS[..2],
            ..schema::META
        };
        let c = schema::open_file(&meta, v2, Mode::Write).unwrap().unwrap();
        c.execute("INSERT INTO sources (name) VALUES ('file:/var/log/mail.log')", [])
            .unwrap();
        c.execute(
            "INSERT INTO tls_reports (org, report_id, begin, end, json, source, added) \
             VALUES ('Google Inc.', 'r1', 1, 2, '{}', 'r.json', 3)",
            [],
        )
        .unwrap();
        drop(c);

        for err in [
            AlertStore::open(&data).unwrap_err(),
            AlertStore::open_read_only(&data).unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    AlertError::NeedsUpgrade {
                        found: 2,
                        needed: 3,
                        ..
                    }
                ),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("start `mailwarden serve` or `ingest` once"), "{msg}");
            assert!(msg.contains("meta.sqlite"), "{msg}");
        }
        // Readers of the event store refuse it too; the writer migrates it.
        assert!(matches!(
            Store::open_read_only(&data),
            Err(StoreError::NeedsMigration { found: 2, .. })
        ));
        let store = Store::open(StoreConfig::new(&data)).unwrap();
        let c = Connection::open(&meta).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, META_SCHEMA_VERSION);
        assert!(v >= ALERTS_SCHEMA_VERSION);
        let kept: (i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM tls_reports)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (1, 1));
        drop(c);
        // Now the alert handle opens beside the writer.
        let a = AlertStore::open(&data).unwrap();
        assert_eq!(
            outcome(&a, &bf("ip=203.0.113.5", 0, 60, 10), now(0)).1,
            RecordOutcome::New
        );
        assert_eq!(a.counts().unwrap().open, 1);
        drop(store);

        // A newer schema, no store, and a foreign file are refused too.
        let c = Connection::open(&meta).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let err = AlertStore::open(&data).unwrap_err();
        assert!(
            matches!(err, AlertError::Store(StoreError::SchemaTooNew { found: 99, .. })),
            "{err}"
        );
        let err = AlertStore::open(&dir.path().join("nothing")).unwrap_err();
        assert!(err.to_string().contains("no mailwarden store"), "{err}");
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        Connection::open(foreign.join("meta.sqlite"))
            .unwrap()
            .execute_batch("PRAGMA application_id = 42; CREATE TABLE t (x);")
            .unwrap();
        let err = AlertStore::open(&foreign).unwrap_err();
        assert!(
            matches!(err, AlertError::Store(StoreError::NotAStore { .. })),
            "{err}"
        );
    }

    #[test]
    fn new_merged_duplicate_and_escalated() {
        let (_d, _s, a) = alerts();
        let first = bf("ip=203.0.113.5", 0, 600, 40);
        let (id, o) = outcome(&a, &first, now(0));
        assert_eq!(o, RecordOutcome::New);
        assert!(o.notify());
        // The same alert again (a replay run twice, a restart): nothing changes.
        assert_eq!(outcome(&a, &first, now(5)), (id, RecordOutcome::Duplicate));
        assert!(!RecordOutcome::Duplicate.notify());
        // The same episode grown (the live engine's opened copy, then the
        // closed alert): last and count grow, occurrences do not.
        assert_eq!(
            outcome(&a, &bf("ip=203.0.113.5", 0, 900, 55), now(6)),
            (id, RecordOutcome::Merged)
        );
        let s = a.get(id).unwrap().unwrap();
        assert_eq!((s.occurrences, s.alert.count, s.alert.last), (1, 55, t(900)));
        // A later episode of the same rule and key that continues the open
        // alert (starts within the de-dup window of its last event) merges.
        let (id2, o) = outcome(&a, &bf("ip=203.0.113.5", 2700, 2700 + 60, 12), now(10));
        assert_eq!((id2, o), (id, RecordOutcome::Merged));
        assert!(!o.notify());
        let s = a.get(id).unwrap().unwrap();
        assert_eq!(
            (s.occurrences, s.alert.count, s.alert.first, s.alert.last),
            (2, 67, t(0), t(2700 + 60))
        );
        assert_eq!(
            s.alert.message, "ip=203.0.113.5: 12 events",
            "the latest episode's message"
        );
        assert_eq!(s.state, AlertState::Open);
        assert_eq!(s.source, AlertSource::Replay);
        assert_eq!(s.created, now(0));
        assert_eq!(s.updated, now(10));
        assert_eq!(s.alert.first.offset_secs, 3600, "event times keep their offset");
        // Recording that episode again changes nothing either.
        assert_eq!(
            outcome(&a, &bf("ip=203.0.113.5", 2700, 2700 + 60, 12), now(11)),
            (id, RecordOutcome::Duplicate)
        );
        // Another key, another rule: new alerts.
        assert_eq!(
            outcome(&a, &bf("ip=198.51.100.7", 0, 10, 10), now(12)).1,
            RecordOutcome::New
        );
        assert_eq!(
            outcome(
                &a,
                &alert("relay-attempt", "ip=203.0.113.5", 0, 10, 3, "medium"),
                now(12)
            )
            .1,
            RecordOutcome::New
        );
        // A repeat with a higher severity than stored notifies again.
        let crit = alert(
            "auth-bruteforce-ip",
            "ip=203.0.113.5",
            3000,
            3000 + 5,
            3,
            "critical",
        );
        assert_eq!(outcome(&a, &crit, now(20)), (id, RecordOutcome::Escalated));
        assert!(RecordOutcome::Escalated.notify());
        let s = a.get(id).unwrap().unwrap();
        assert_eq!((s.alert.severity, s.occurrences), (AlertSeverity::Critical, 3));
        // A lower one afterwards does not lower it, nor notify.
        let low = alert("auth-bruteforce-ip", "ip=203.0.113.5", 3300, 3300 + 5, 1, "low");
        assert_eq!(outcome(&a, &low, now(21)), (id, RecordOutcome::Merged));
        assert_eq!(
            a.get(id).unwrap().unwrap().alert.severity,
            AlertSeverity::Critical
        );
        assert_eq!(
            a.counts().unwrap(),
            AlertCounts {
                open: 3,
                acknowledged: 0,
                suppressed: 0
            }
        );
        // The stored JSON is the alert with the merged figures.
        let stored = a.get(id).unwrap().unwrap();
        let json = serde_json::to_value(&stored).unwrap();
        let back: StoredAlert = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, stored, "the JSON form reads back");
        assert_eq!(json["id"], id);
        assert_eq!(json["state"], "open");
        assert_eq!(json["rule"], "auth-bruteforce-ip");
        assert_eq!(json["count"], 71);
        assert_eq!(json["evidence"][0]["at"], "mail.log:7");
        assert!(a.get(9999).unwrap().is_none());
        // The same attack weeks later is news again, even though nobody
        // acknowledged the old alert.
        let (later, o) = outcome(
            &a,
            &bf("ip=203.0.113.5", 30 * 86_400, 30 * 86_400 + 60, 10),
            now(30),
        );
        assert_eq!(o, RecordOutcome::New);
        assert_ne!(later, id);
    }

    #[test]
    fn acknowledged_alerts_absorb_repeats_for_the_window_then_a_new_one_opens() {
        let (_d, _s, a) = alerts();
        let p = RecordPolicy {
            dedup_window: Duration::from_secs(3600),
            ack_window: Duration::from_secs(6 * 3600),
            source: AlertSource::Live,
        };
        let rec = |al: &Alert, at: Timestamp| {
            let r = a.record(al, at, &p).unwrap();
            (r.id, r.outcome)
        };
        let (id, _) = rec(&bf("ip=192.0.2.9", 0, 600, 20), now(0));
        assert_eq!(
            a.ack(&[id, id], "alice", Some("blocked at the firewall"), now(100))
                .unwrap(),
            1
        );
        let s = a.get(id).unwrap().unwrap();
        assert_eq!(s.state, AlertState::Acknowledged);
        assert_eq!(
            (s.ack_at, s.ack_by.as_deref(), s.ack_note.as_deref()),
            (Some(now(100)), Some("alice"), Some("blocked at the firewall"))
        );
        // Within the ack window (wall time): merged silently, still acknowledged.
        assert_eq!(
            rec(&bf("ip=192.0.2.9", 10 * 3600, 10 * 3600 + 60, 5), now(3600)),
            (id, RecordOutcome::Merged)
        );
        let s = a.get(id).unwrap().unwrap();
        assert_eq!(
            (s.state, s.occurrences, s.alert.count),
            (AlertState::Acknowledged, 2, 25)
        );
        // After the window, a repeat that continues the alert (within the
        // de-dup window of its last event) still merges.
        assert_eq!(
            rec(
                &bf("ip=192.0.2.9", 10 * 3600 + 1800, 10 * 3600 + 1900, 5),
                now(7 * 3600)
            ),
            (id, RecordOutcome::Merged)
        );
        // After the window, a repeat after a pause opens a new alert.
        let (id2, o) = rec(&bf("ip=192.0.2.9", 20 * 3600, 20 * 3600 + 60, 9), now(8 * 3600));
        assert_eq!(o, RecordOutcome::New);
        assert_ne!(id2, id);
        assert_eq!(a.get(id2).unwrap().unwrap().source, AlertSource::Live);
        // Repeats now go to the new, open alert; the acknowledged one stays.
        assert_eq!(
            rec(
                &bf("ip=192.0.2.9", 20 * 3600 + 1800, 20 * 3600 + 1801, 1),
                now(9 * 3600)
            ),
            (id2, RecordOutcome::Merged)
        );
        assert_eq!(a.get(id).unwrap().unwrap().occurrences, 3);
        // Acknowledging again renews the window.
        a.ack(&[id2], "bob", None, now(10 * 3600)).unwrap();
        assert_eq!(
            rec(&bf("ip=192.0.2.9", 50 * 3600, 50 * 3600 + 1, 1), now(11 * 3600)),
            (id2, RecordOutcome::Merged)
        );
        // An escalation reopens an acknowledged alert.
        let crit = alert(
            "auth-bruteforce-ip",
            "ip=192.0.2.9",
            51 * 3600,
            51 * 3600 + 1,
            1,
            "critical",
        );
        assert_eq!(rec(&crit, now(11 * 3600 + 1)), (id2, RecordOutcome::Escalated));
        assert_eq!(a.get(id2).unwrap().unwrap().state, AlertState::Open);
        assert_eq!(
            a.counts().unwrap(),
            AlertCounts {
                open: 1,
                acknowledged: 1,
                suppressed: 0
            }
        );
    }

    #[test]
    fn ack_names_unknown_ids_and_changes_nothing() {
        let (_d, _s, a) = alerts();
        let (id, _) = outcome(&a, &bf("ip=192.0.2.1", 0, 1, 10), now(0));
        let err = a.ack(&[id, 404, 405], "alice", None, now(1)).unwrap_err();
        assert!(
            matches!(&err, AlertError::UnknownAlerts { ids } if ids == &[404, 405]),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("404, 405") && msg.contains("alerts list --state all"),
            "{msg}"
        );
        assert_eq!(a.get(id).unwrap().unwrap().state, AlertState::Open);
        // Notes and names are bounded.
        let long = "é".repeat(MAX_NOTE_BYTES);
        a.ack(&[id], &"x".repeat(1000), Some(&long), now(2)).unwrap();
        let s = a.get(id).unwrap().unwrap();
        assert!(s.ack_note.as_ref().unwrap().len() <= MAX_NOTE_BYTES);
        assert!(s.ack_note.unwrap().starts_with("éé"));
        assert_eq!(s.ack_by.unwrap().len(), MAX_NAME_BYTES);
        // Reading only: no changes.
        let dir = a.path().parent().unwrap().to_owned();
        let ro = AlertStore::open_read_only(&dir).unwrap();
        assert_eq!(ro.list(&AlertQuery::default()).unwrap().len(), 1);
        assert!(matches!(
            ro.ack(&[id], "x", None, now(3)),
            Err(AlertError::Store(StoreError::ReadOnly { .. }))
        ));
    }

    #[test]
    fn suppressions_store_silently_until_lifted_or_expired() {
        let (_d, _s, a) = alerts();
        let sid = a
            .suppress(
                "auth-bruteforce-ip",
                Some("ip=203.0.113.*"),
                now(3600),
                Some("our scanner"),
                "alice",
                now(0),
            )
            .unwrap();
        // Matching: suppressed, stored, not notified.
        let (id, o) = outcome(&a, &bf("ip=203.0.113.5", 0, 10, 10), now(1));
        assert_eq!(o, RecordOutcome::Suppressed { suppression: sid });
        assert!(!o.notify());
        let s = a.get(id).unwrap().unwrap();
        assert_eq!((s.state, s.suppression), (AlertState::Suppressed, Some(sid)));
        // A repeat within the de-dup window joins it; a later one is a new
        // suppressed alert.
        assert_eq!(
            outcome(&a, &bf("ip=203.0.113.5", 1800, 1810, 4), now(2)),
            (id, RecordOutcome::Suppressed { suppression: sid })
        );
        assert_eq!(a.get(id).unwrap().unwrap().occurrences, 2);
        let (id_later, o) = outcome(&a, &bf("ip=203.0.113.5", 5 * 3600, 5 * 3600 + 1, 4), now(3));
        assert_eq!(o, RecordOutcome::Suppressed { suppression: sid });
        assert_ne!(id_later, id);
        // Other keys and rules are not covered.
        assert_eq!(
            outcome(&a, &bf("ip=198.51.100.1", 0, 10, 10), now(4)).1,
            RecordOutcome::New
        );
        assert_eq!(
            outcome(
                &a,
                &alert("relay-attempt", "ip=203.0.113.5", 0, 10, 3, "medium"),
                now(4)
            )
            .1,
            RecordOutcome::New
        );
        // A suppression of every key of a rule.
        let all = a
            .suppress("relay-attempt", None, now(7200), None, "bob", now(5))
            .unwrap();
        assert_eq!(
            outcome(
                &a,
                &alert("relay-attempt", "ip=192.0.2.77", 0, 10, 3, "medium"),
                now(6)
            )
            .1,
            RecordOutcome::Suppressed { suppression: all }
        );
        let active = a.suppressions(false, now(7)).unwrap();
        assert_eq!(active.iter().map(|s| s.id).collect::<Vec<_>>(), vec![sid, all]);
        assert_eq!(active[0].note.as_deref(), Some("our scanner"));
        assert_eq!(active[0].created_by, "alice");
        assert!(active[0].matches("auth-bruteforce-ip", "ip=203.0.113.250"));
        // Expiry: after `until` the next episode is a new, notified alert.
        assert_eq!(
            outcome(&a, &bf("ip=203.0.113.9", 0, 10, 10), now(3600)).1,
            RecordOutcome::New
        );
        assert_eq!(a.suppressions(false, now(3600)).unwrap().len(), 1);
        assert_eq!(a.suppressions(true, now(3600)).unwrap().len(), 2);
        // Lifting one ends it now; lifting it again is a no-op; unknown ids are named.
        assert!(a.unsuppress(all, now(3601)).unwrap());
        assert!(!a.unsuppress(all, now(3602)).unwrap());
        let err = a.unsuppress(77, now(3602)).unwrap_err();
        assert!(err.to_string().contains("no suppression with id 77"), "{err}");
        assert_eq!(
            outcome(
                &a,
                &alert("relay-attempt", "ip=192.0.2.77", 9000, 9010, 3, "medium"),
                now(3603)
            )
            .1,
            RecordOutcome::New
        );
        assert!(a.suppressions(false, now(3603)).unwrap().is_empty());
        // Bad arguments.
        for (rule, key, until) in [
            ("", None, now(9999)),
            ("x", Some(""), now(9999)),
            ("x", None, now(0)),
        ] {
            let r = a.suppress(rule, key, until, None, "a", now(1));
            assert!(matches!(r, Err(AlertError::Invalid { .. })), "{r:?}");
        }
        let long = "k".repeat(MAX_PATTERN_BYTES + 1);
        assert!(
            a.suppress("x", Some(&long), now(9999), None, "a", now(1))
                .is_err()
        );
    }

    #[test]
    fn glob_patterns() {
        for (pat, s, want) in [
            ("ip=203.0.113.*", "ip=203.0.113.5", true),
            ("ip=203.0.113.*", "ip=203.0.114.5", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("user=*@example.org", "user=alice@example.org", true),
            ("user=*@example.org", "user=alice@example.org.evil", false),
            ("*a*b*c", "xxaxxbxxbxc", true),
            ("a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(pat.as_bytes(), s.as_bytes()), want, "{pat:?} ~ {s:?}");
        }
    }

    #[test]
    fn list_filters_and_order() {
        let (_d, _s, a) = alerts();
        let id1 = outcome(&a, &bf("ip=203.0.113.5", 0, 100, 10), now(0)).0;
        let id2 = outcome(
            &a,
            &alert("relay-attempt", "ip=198.51.100.7", 50, 3600, 3, "medium"),
            now(0),
        )
        .0;
        let id3 = outcome(
            &a,
            &alert("silence", "source=dovecot", 10, 7200, 1, "low"),
            now(0),
        )
        .0;
        let sid = a
            .suppress("outbound-burst", None, now(99_999), None, "a", now(0))
            .unwrap();
        let id4 = outcome(
            &a,
            &alert("outbound-burst", "user=bob@example.org", 20, 200, 900, "critical"),
            now(0),
        )
        .0;
        assert_eq!(a.get(id4).unwrap().unwrap().suppression, Some(sid));
        a.ack(&[id2], "alice", None, now(1)).unwrap();
        let ids = |q: AlertQuery| a.list(&q).unwrap().iter().map(|s| s.id).collect::<Vec<_>>();
        // Newest last event first.
        assert_eq!(ids(AlertQuery::default()), vec![id3, id2, id4, id1]);
        let st = |states: &[AlertState]| AlertQuery {
            states: states.to_vec(),
            ..AlertQuery::default()
        };
        assert_eq!(ids(st(&[AlertState::Open])), vec![id3, id1]);
        assert_eq!(ids(st(&[AlertState::Acknowledged])), vec![id2]);
        assert_eq!(ids(st(&[AlertState::Suppressed])), vec![id4]);
        assert_eq!(ids(st(&AlertState::ALL)), vec![id3, id2, id4, id1]);
        assert_eq!(
            ids(AlertQuery {
                since: Some(t(200)),
                ..AlertQuery::default()
            }),
            vec![id3, id2, id4]
        );
        assert_eq!(
            ids(AlertQuery {
                since: Some(t(200)),
                until: Some(t(3600)),
                ..AlertQuery::default()
            }),
            vec![id2, id4]
        );
        assert_eq!(
            ids(AlertQuery {
                rule: Some("relay-attempt".into()),
                ..AlertQuery::default()
            }),
            vec![id2]
        );
        assert_eq!(
            ids(AlertQuery {
                min_severity: Some(AlertSeverity::High),
                ..AlertQuery::default()
            }),
            vec![id4, id1]
        );
        assert_eq!(
            ids(AlertQuery {
                key_contains: Some("example.org".into()),
                ..AlertQuery::default()
            }),
            vec![id4]
        );
        // Text with SQL's wildcard characters is plain text.
        assert!(
            ids(AlertQuery {
                key_contains: Some("%".into()),
                ..AlertQuery::default()
            })
            .is_empty()
        );
        assert_eq!(
            ids(AlertQuery {
                limit: Some(2),
                ..AlertQuery::default()
            }),
            vec![id3, id2]
        );
        assert_eq!(
            ids(AlertQuery {
                states: vec![AlertState::Open],
                min_severity: Some(AlertSeverity::Low),
                key_contains: Some("ip=".into()),
                limit: Some(5),
                ..AlertQuery::default()
            }),
            vec![id1]
        );
        a.mark_notified(id1, now(2)).unwrap();
        assert_eq!(a.get(id1).unwrap().unwrap().notified_at, Some(now(2)));
        assert!(a.mark_notified(999, now(2)).is_err());
    }

    #[test]
    fn retention_deletes_old_alerts_and_their_episodes() {
        let (_d, _s, a) = alerts();
        let old = bf("ip=192.0.2.1", 0, 10, 10);
        let id_old = outcome(&a, &old, now(0)).0;
        let id_new = outcome(&a, &bf("ip=192.0.2.2", 20 * 86_400, 20 * 86_400 + 10, 10), now(0)).0;
        a.suppress("x", None, now(10), None, "a", now(0)).unwrap();
        a.suppress(
            "y",
            None,
            Timestamp::from_unix_seconds(NOW + 40 * 86_400),
            None,
            "a",
            now(0),
        )
        .unwrap();
        // 30 days after T0 + 1 day: 10 days of retention keep only the newer alert.
        let at = Timestamp::from_unix_seconds(T0 + 30 * 86_400);
        assert_eq!(a.apply_retention(10, at).unwrap(), 1);
        assert!(a.get(id_old).unwrap().is_none());
        assert!(a.get(id_new).unwrap().is_some());
        assert_eq!(a.suppressions(true, at).unwrap().len(), 1);
        // Its episode is gone too: recording it again stores it again.
        assert_eq!(outcome(&a, &old, now(1)).1, RecordOutcome::New);
        assert_eq!(a.apply_retention(1000, at).unwrap(), 0);
    }

    #[test]
    fn ack_beside_the_writer() {
        let (dir, mut store, _) = alerts();
        let data = dir.path().join("data");
        // `serve` holds the writer lock and commits.
        let commit = |store: &mut Store, range| {
            let mut b = store.batch();
            add_lines(&mut b, &mut framer(), "a", &lines_on(1, range));
            store.commit(&b).unwrap();
        };
        commit(&mut store, 0..5);
        assert!(matches!(
            Store::open(StoreConfig::new(&data)),
            Err(StoreError::Locked { .. })
        ));
        let a = AlertStore::open(&data).unwrap();
        let (id, _) = outcome(&a, &bf("ip=203.0.113.5", 0, 10, 10), now(0));
        assert_eq!(a.ack(&[id], "alice", Some("seen"), now(1)).unwrap(), 1);
        commit(&mut store, 5..10);
        // While another connection holds a write transaction on meta.sqlite
        // (the writer committing a batch), recording and acknowledging wait
        // for it (busy timeout) instead of failing. Whichever runs first,
        // both succeed.
        let (recorded, acked) = std::thread::scope(|sc| {
            let w = Connection::open(data.join("meta.sqlite")).unwrap();
            w.execute_batch("BEGIN IMMEDIATE").unwrap();
            w.execute("INSERT INTO sources (name) VALUES ('other')", [])
                .unwrap();
            let worker = sc.spawn(|| {
                let r = a.record(&bf("ip=198.51.100.1", 0, 10, 10), now(2), &policy())?;
                a.ack(&[r.id], "bob", None, now(3)).map(|n| (r, n))
            });
            w.execute_batch("COMMIT").unwrap();
            worker.join().unwrap().unwrap()
        });
        assert_eq!((recorded.outcome, acked), (RecordOutcome::New, 1));
        assert_ne!(recorded.id, id);
        commit(&mut store, 10..15);
        drop(store);
        let reader = Store::open_read_only(&data).unwrap();
        assert_eq!(reader.replay(None, None, |_| {}).unwrap(), 15);
        assert_eq!(a.counts().unwrap().acknowledged, 2);
    }
}
