//! File layout, schemas, migrations and connection settings.
//!
//! ```text
//! <dir>/lock                 writer lock (flock) + the holder's pid
//! <dir>/meta.sqlite          sources, batch journal, per-day hints, carried-over checkpoints,
//!                            reports (version 2), alerts and suppressions (version 3)
//! <dir>/days/YYYY-MM-DD.sqlite  one file per UTC day: lines, keys, messages, mkeys, batches, checkpoints
//! ```
//!
//! Every file carries `PRAGMA application_id` (so a foreign SQLite file is
//! refused) and `PRAGMA user_version` = its schema version. Opening a file
//! with a newer version than this build is an error ("upgrade mailwarden");
//! an older one is migrated, one step per version, in one transaction
//! (read-only opens refuse to migrate). Version 0 is a file that was never
//! initialised (e.g. a crash between creating it and the first commit) and is
//! initialised like a new one.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{SqlCtx, StoreError};

/// `PRAGMA application_id` of a day file ("MWDY").
pub(crate) const DAY_APP_ID: i64 = 0x4d57_4459;
/// `PRAGMA application_id` of meta.sqlite ("MWMT").
pub(crate) const META_APP_ID: i64 = 0x4d57_4d54;

/// Day file schema, version 1.
///
/// `checkpoints` keeps the value each row had before the last batch that
/// changed it (`prev_*`), so rolling that batch back restores it.
///
/// `lines`: one row per log line. `host`, `prog` and `msg` are untyped
/// columns: `NULL` (absent), an INTEGER locating the text inside `raw`
/// (see [`crate::batch`]), or TEXT when the framing rewrote it (JSON
/// unescaping). `unparsed` is the reason code of an unparsed event; `msg` is
/// `NULL` exactly when the line could not be framed.
const DAY_V1: &str = "
CREATE TABLE lines (
    id INTEGER PRIMARY KEY,
    src INTEGER NOT NULL,
    ts INTEGER,
    tz INTEGER,
    recv INTEGER NOT NULL,
    recv_tz INTEGER NOT NULL,
    raw TEXT NOT NULL,
    host,
    prog,
    pid INTEGER,
    sev INTEGER,
    fam INTEGER,
    msg,
    unparsed INTEGER
);
CREATE TABLE keys (
    k BLOB NOT NULL,
    line INTEGER NOT NULL,
    PRIMARY KEY (k, line)
) WITHOUT ROWID;
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    first_ts INTEGER,
    last_ts INTEGER,
    json TEXT NOT NULL
);
CREATE TABLE mkeys (
    k BLOB NOT NULL,
    msg INTEGER NOT NULL,
    PRIMARY KEY (k, msg)
) WITHOUT ROWID;
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY,
    final INTEGER NOT NULL,
    line_lo INTEGER,
    line_hi INTEGER,
    msg_lo INTEGER,
    msg_hi INTEGER,
    ts_min INTEGER,
    ts_max INTEGER,
    untimed INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    unparsed INTEGER NOT NULL,
    messages INTEGER NOT NULL
);
CREATE TABLE checkpoints (
    source INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    prev_seq INTEGER,
    prev_json TEXT
);
";

/// meta.sqlite schema, version 1.
const META_V1: &str = "
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    days TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE days (
    day INTEGER PRIMARY KEY,
    max_seq INTEGER NOT NULL,
    untimed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE checkpoints (
    source INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    prev_seq INTEGER,
    prev_json TEXT
);
";

/// meta.sqlite version 2: DMARC aggregate and SMTP TLS reports (see
/// [`crate::reports`]). A report is stored once per (organisation, report
/// id, policy domain) — TLS reports per (organisation, report id) — so
/// reading the same folder again adds nothing. Headers, records and notes
/// are JSON of the core's report types.
const META_V2: &str = "
CREATE TABLE dmarc_reports (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL,
    report_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    begin INTEGER NOT NULL,
    end INTEGER NOT NULL,
    header TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL,
    records INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL,
    UNIQUE (org, report_id, domain)
);
CREATE INDEX dmarc_reports_end ON dmarc_reports (end);
CREATE TABLE dmarc_records (
    report INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    source_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (report, seq)
) WITHOUT ROWID;
CREATE TABLE tls_reports (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL,
    report_id TEXT NOT NULL,
    begin INTEGER NOT NULL,
    end INTEGER NOT NULL,
    json TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL,
    added INTEGER NOT NULL,
    UNIQUE (org, report_id)
);
CREATE INDEX tls_reports_end ON tls_reports (end);
";

/// meta.sqlite version 3: stored alerts and suppressions (see
/// [`crate::alerts`]).
///
/// `alerts`: one row per alert as people handle it — episodes of the same
/// rule and key merged into it (`occurrences`), its state (`open`,
/// `acknowledged`, `suppressed`), who acknowledged it. Event times are UTC
/// microseconds plus the logging clock's offset in seconds (`*_ts`, `*_tz`,
/// as in day files); wall times (`created`, `updated`, `ack_at`,
/// `notified_at`) are UTC microseconds. `severity` is the rank (0
/// informational … 4 critical); `json` is the latest episode's `Alert` with
/// the merged times, count and severity. `alert_episodes` remembers every
/// episode recorded (rule, key, first event) so recording one again changes
/// nothing. `suppressions`: `key` NULL matches every key of the rule, else a
/// pattern where `*` matches any run of characters; active while `until`
/// (wall time) is in the future.
const META_V3: &str = "
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    severity INTEGER NOT NULL,
    title TEXT NOT NULL,
    first_ts INTEGER NOT NULL,
    first_tz INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    last_tz INTEGER NOT NULL,
    count INTEGER NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    message TEXT NOT NULL,
    json TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'suppressed')),
    suppression INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    ack_at INTEGER,
    ack_by TEXT,
    ack_note TEXT,
    notified_at INTEGER,
    source TEXT NOT NULL CHECK (source IN ('live', 'replay'))
);
CREATE INDEX alerts_state_last ON alerts (state, last_ts);
CREATE INDEX alerts_rule_key ON alerts (rule, key, last_ts);
CREATE INDEX alerts_last ON alerts (last_ts);
CREATE TABLE alert_episodes (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    alert INTEGER NOT NULL,
    PRIMARY KEY (rule, key, first_ts)
) WITHOUT ROWID;
CREATE INDEX alert_episodes_alert ON alert_episodes (alert);
CREATE TABLE suppressions (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    key TEXT,
    until INTEGER NOT NULL,
    note TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX suppressions_rule ON suppressions (rule, until);
";

/// Migrations of day files: entry `i` takes a file from version `i` to `i + 1`.
pub(crate) const DAY_MIGRATIONS: &[&str] = &[DAY_V1];
/// Migrations of meta.sqlite.
pub(crate) const META_MIGRATIONS: &[&str] = &[META_V1, META_V2, META_V3];

/// The schema version this build writes for day files.
pub const DAY_SCHEMA_VERSION: i64 = DAY_MIGRATIONS.len() as i64;
/// The schema version this build writes for meta.sqlite.
pub const META_SCHEMA_VERSION: i64 = META_MIGRATIONS.len() as i64;

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The writer: creates and migrates.
    Write,
    /// A reader beside a running writer.
    Read,
}

/// What kind of file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kind {
    pub(crate) app_id: i64,
    pub(crate) migrations: &'static [&'static str],
    /// `PRAGMA wal_autocheckpoint` (pages).
    pub(crate) wal_pages: i64,
    /// `PRAGMA journal_size_limit` (bytes the WAL is cut back to).
    pub(crate) wal_limit: i64,
}

/// Day files: the SQLite defaults (checkpoint every 1000 pages), WAL cut
/// back to 4 MiB.
pub(crate) const DAY: Kind = Kind {
    app_id: DAY_APP_ID,
    migrations: DAY_MIGRATIONS,
    wal_pages: 1000,
    wal_limit: 4 << 20,
};
/// meta.sqlite: small transactions, so a small WAL.
pub(crate) const META: Kind = Kind {
    app_id: META_APP_ID,
    migrations: META_MIGRATIONS,
    wal_pages: 100,
    wal_limit: 512 << 10,
};

/// Opens (creating in write mode) a store file, applies the connection
/// settings and checks or migrates its schema. Returns `None` in read mode
/// when the file has never been initialised (nothing to read yet).
pub(crate) fn open_file(path: &Path, kind: Kind, mode: Mode) -> Result<Option<Connection>, StoreError> {
    let flags = match mode {
        Mode::Write => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Mode::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).at(path)?;
    conn.busy_timeout(Duration::from_secs(10)).at(path)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .at(path)?;
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .at(path)?;
    let supported = kind.migrations.len() as i64;
    let fresh = app_id == 0 && version == 0 && {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .at(path)?;
        objects == 0
    };
    if app_id != kind.app_id && !fresh {
        return Err(StoreError::NotAStore { path: path.into() });
    }
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.into(),
            found: version,
            supported,
        });
    }
    match mode {
        Mode::Read => {
            if version == 0 {
                return Ok(None);
            }
            if version < supported {
                return Err(StoreError::NeedsMigration {
                    path: path.into(),
                    found: version,
                    supported,
                });
            }
            conn.pragma_update(None, "query_only", true).at(path)?;
            conn.pragma_update(None, "cache_size", -8192i64).at(path)?;
        }
        Mode::Write => {
            // WAL: readers (`logs --store`) run beside the writer. FULL: every
            // commit is on disk before the next transaction (of this or
            // another day file) starts, which the cross-file batch protocol
            // relies on (see the crate docs).
            let jm: String = conn
                .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
                .at(path)?;
            if !jm.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt {
                    path: path.into(),
                    detail: format!("cannot switch to WAL journal mode (got {jm})"),
                });
            }
            conn.pragma_update(None, "synchronous", "FULL").at(path)?;
            conn.pragma_update(None, "cache_size", -32768i64).at(path)?;
            conn.pragma_update(None, "temp_store", "MEMORY").at(path)?;
            conn.pragma_update(None, "wal_autocheckpoint", kind.wal_pages)
                .at(path)?;
            conn.pragma_update(None, "journal_size_limit", kind.wal_limit)
                .at(path)?;
            if version < supported {
                migrate(&conn, path, kind, version)?;
            }
        }
    }
    Ok(Some(conn))
}

fn migrate(conn: &Connection, path: &Path, kind: Kind, from: i64) -> Result<(), StoreError> {
    let conn_tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).at(path)?;
    // Re-read under the write lock: another opener may have migrated it.
    let version: i64 = conn_tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .at(path)?;
    if version != from {
        drop(conn_tx);
        return Ok(());
    }
    for (i, step) in kind.migrations.iter().enumerate().skip(from as usize) {
        conn_tx.execute_batch(step).at(path)?;
        tracing::debug!(path = %path.display(), to = i + 1, "migrated store file");
    }
    conn_tx
        .pragma_update(None, "user_version", kind.migrations.len() as i64)
        .at(path)?;
    conn_tx
        .pragma_update(None, "application_id", kind.app_id)
        .at(path)?;
    conn_tx.commit().at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_get_the_current_version_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqlite");
        let c = open_file(&p, DAY, Mode::Write).unwrap().unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, DAY_SCHEMA_VERSION);
        drop(c);
        open_file(&p, DAY, Mode::Write).unwrap().unwrap();
        open_file(&p, DAY, Mode::Read).unwrap().unwrap();
        // The wrong kind is refused.
        assert!(matches!(
            open_file(&p, META, Mode::Write),
            Err(StoreError::NotAStore { .. })
        ));
    }

    #[test]
    fn uninitialised_files_are_initialised_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqlite");
        Connection::open(&p)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL")
            .unwrap();
        assert!(open_file(&p, DAY, Mode::Read).unwrap().is_none());
        assert!(open_file(&p, DAY, Mode::Write).unwrap().is_some());
    }
}
