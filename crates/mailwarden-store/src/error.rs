//! The store's errors. Each names the file or directory involved and, where
//! there is one, the fix.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory (or a file in it) cannot be created or written.
    #[error("cannot write {path}: {source}; run as root or choose --data-dir")]
    NotWritable {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No store exists at the path (read-only open).
    #[error("no mailwarden store at {path}; start `mailwarden serve` first or choose --data-dir")]
    NotFound {
        /// The data directory.
        path: PathBuf,
    },
    /// Another process holds the writer lock.
    #[error(
        "{path} is locked by another writer{}; is `mailwarden serve` already running?",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written by the holder, when readable.
        pid: Option<u32>,
    },
    /// The disk (or the file's size limit) is full; the batch was not stored.
    #[error(
        "disk full while writing {path}; the batch was not stored (free space, or lower the retention or --max-bytes)"
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// A file was written by a newer mailwarden.
    #[error(
        "{path} has schema version {found}, newer than this mailwarden supports ({supported}); upgrade mailwarden"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A file has an older schema and the store is open read-only, so it
    /// cannot be migrated.
    #[error(
        "{path} has schema version {found} and needs migrating to {supported}; run `mailwarden serve` (the writer) once"
    )]
    NeedsMigration {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The version this build writes.
        supported: i64,
    },
    /// A file in the data directory is not a mailwarden store file.
    #[error("{path} is not a mailwarden store file; choose another --data-dir")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// A write was attempted on a store opened read-only.
    #[error("the store at {path} is open read-only")]
    ReadOnly {
        /// The data directory.
        path: PathBuf,
    },
    /// Stored data could not be decoded.
    #[error("{path}: stored data is damaged: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Any other SQLite failure.
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Classifies a SQLite error on `path`: a full disk, a read-only or
    /// unopenable file (permissions) and a foreign file get their own variants.
    pub(crate) fn sqlite(path: impl Into<PathBuf>, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let path = path.into();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore { path },
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
                StoreError::NotWritable {
                    source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
                    path,
                }
            }
            _ => StoreError::Sqlite { path, source: e },
        }
    }

    /// Whether the error is a full disk (the batch was not stored).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}

/// Attaches a path to SQLite results.
pub(crate) trait SqlCtx<T> {
    /// Maps the error with [`StoreError::sqlite`].
    fn at(self, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T> SqlCtx<T> for Result<T, rusqlite::Error> {
    fn at(self, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::sqlite(path, e))
    }
}
