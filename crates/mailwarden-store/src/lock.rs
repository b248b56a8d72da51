//! The writer lock: one writer per data directory.
//!
//! `dir/lock` is locked with the operating system's advisory whole-file lock
//! (`flock` on Unix, through [`std::fs::File::try_lock`]); the holder writes its
//! pid into it for the error message. The lock dies with the process, so a
//! crashed writer never leaves a stale lock behind. Readers take no lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::StoreError;

/// Takes the writer lock of `dir`; held until the returned file is dropped.
pub(crate) fn acquire(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&path).map_err(|e| StoreError::NotWritable {
        path: path.clone(),
        source: e,
    })?;
    match f.try_lock() {
        Ok(()) => {
            let io = |e| StoreError::Io {
                path: path.clone(),
                source: e,
            };
            f.set_len(0).map_err(io)?;
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            writeln!(f, "{}", std::process::id()).map_err(io)?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let pid = f.read_to_string(&mut s).ok().and_then(|_| s.trim().parse().ok());
            Err(StoreError::Locked { path, pid })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
    }
}
