//! The baseline manifest for trees that are no git checkout: every file's
//! path (relative to its scanned directory), size, SHA-256 and mode, written
//! by `--write-baseline FILE` and compared by `--baseline FILE`.
//!
//! ```json
//! {"format":1,"created":"2026-01-02T03:04:05Z","tool":"mailwarden 0.1.0",
//!  "roots":["/var/www/html"],
//!  "files":[{"root":0,"path":"index.php","size":405,"sha256":"…","mode":33188}]}
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ScanReport, WebscanError};

/// The manifest format this version writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Most bytes read from a manifest (a million files is about 150 MB).
const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// A baseline manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// When it was written (RFC 3339, UTC).
    pub created: String,
    /// What wrote it.
    #[serde(default)]
    pub tool: String,
    /// The scanned directories (canonical paths), indexed by
    /// [`ManifestEntry::root`].
    pub roots: Vec<PathBuf>,
    /// Every regular file seen.
    pub files: Vec<ManifestEntry>,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Index into [`Manifest::roots`].
    pub root: usize,
    /// Path relative to that root, `/`-separated (lossy UTF-8 for names
    /// that are not).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole content, lowercase hex.
    pub sha256: String,
    /// st_mode (type and permission bits).
    pub mode: u32,
}

impl Manifest {
    /// The manifest of a finished scan (every regular file read, allowed
    /// ones included, errors excluded).
    pub fn from_report(report: &ScanReport, created: String) -> Manifest {
        let mut files: Vec<ManifestEntry> = report
            .files
            .iter()
            .map(|f| ManifestEntry {
                root: f.root,
                path: f.rel.clone(),
                size: f.meta.size,
                sha256: f.sha256.clone(),
                mode: f.meta.mode,
            })
            .collect();
        files.sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
        Manifest {
            format: MANIFEST_FORMAT,
            created,
            tool: concat!("mailwarden ", env!("CARGO_PKG_VERSION")).to_string(),
            roots: report.roots.iter().map(|r| r.canonical.clone()).collect(),
            files,
        }
    }

    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, WebscanError> {
        let err = |message: String| WebscanError::Baseline {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a mailwarden webscan baseline: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(err(format!(
                "format {} is not the supported format {MANIFEST_FORMAT}",
                m.format
            )));
        }
        if let Some(f) = m.files.iter().find(|f| f.root >= m.roots.len()) {
            return Err(err(format!(
                "entry {:?} names root {} of {}",
                f.path,
                f.root,
                m.roots.len()
            )));
        }
        Ok(m)
    }

    /// Writes the manifest to `path` (through a temporary file beside it, so
    /// a failed write never leaves half a baseline).
    pub fn write(&self, path: &Path) -> Result<(), WebscanError> {
        let err = |e: std::io::Error| WebscanError::WriteBaseline {
            path: path.to_path_buf(),
            source: e,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            serde_json::to_writer(&mut f, self).map_err(std::io::Error::from)?;
            f.write_all(b"\n")?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    /// The entries of the root that corresponds to a scanned directory, by
    /// relative path. A manifest of one directory matches a scan of one
    /// directory even when the path differs (a tree restored elsewhere);
    /// otherwise roots match by canonical path.
    pub(crate) fn entries_for(
        &self,
        canonical: &Path,
        scanned_roots: usize,
    ) -> Option<HashMap<String, ManifestEntry>> {
        let idx = if self.roots.len() == 1 && scanned_roots == 1 {
            0
        } else {
            self.roots.iter().position(|r| r == canonical)?
        };
        Some(
            self.files
                .iter()
                .filter(|f| f.root == idx)
                .map(|f| (f.path.clone(), f.clone()))
                .collect(),
        )
    }
}
