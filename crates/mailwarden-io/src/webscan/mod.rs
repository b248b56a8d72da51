//! The I/O half of `mailwarden webscan`: walk the web roots, read each file
//! (size-capped for scanning, hashed whole), compare it with git's HEAD or a
//! baseline manifest, and hand bytes and numbers to the core's
//! [`Scanner`], [`context_reasons`] and [`score`].
//!
//! Everything is read-only: files are opened for reading only, nothing is
//! written except the manifest `--write-baseline` asks for. Memory stays
//! bounded: files are scanned in parallel (rayon) one buffer each and the
//! content is dropped after scanning; what is kept per file is its path,
//! metadata, hash and reasons. A file that cannot be read (permissions, a
//! FIFO, a dangling symlink) is an error entry naming the path, and the scan
//! goes on.

mod allow;
mod baseline;
mod git;
mod walk;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mailwarden_core::webscan::{
    DirContext, FileMeta, IntegrityKind, Reason, Scanner, Verdict, context_reasons, integrity_reason, score,
};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use allow::AllowList;
pub use baseline::{MANIFEST_FORMAT, Manifest, ManifestEntry};

/// Default cap on the bytes of one file that are scanned (the whole file
/// is still hashed).
pub const DEFAULT_MAX_READ: u64 = 8 << 20;

/// Extensions the PHP interpreter runs in common server setups.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "php", "php2", "php3", "php4", "php5", "php6", "php7", "php8", "phtml", "pht", "phar", "phps", "inc",
];

/// Reads are done in blocks of this size.
const BLOCK: usize = 64 * 1024;

/// What the scan compares files with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BaselineMode {
    /// git's HEAD when a directory is inside a checkout, else nothing.
    #[default]
    Auto,
    /// git's HEAD; a directory outside a checkout is an error.
    Git,
    /// A manifest written by `--write-baseline`.
    Manifest(PathBuf),
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct WebscanConfig {
    /// The directories to scan.
    pub roots: Vec<PathBuf>,
    /// What files are compared with.
    pub baseline: BaselineMode,
    /// Most bytes of a file that are scanned.
    pub max_read: u64,
    /// Worker threads (None: one per core).
    pub threads: Option<usize>,
    /// Files not to report.
    pub allow: AllowList,
    /// When the tree was installed (seconds since the epoch); overrides the
    /// HEAD commit's time.
    pub install_time: Option<i64>,
    /// Where `/etc/passwd` is read from to resolve the web server's users.
    pub system_root: PathBuf,
}

impl WebscanConfig {
    /// Defaults for the given directories.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        WebscanConfig {
            roots,
            baseline: BaselineMode::Auto,
            max_read: DEFAULT_MAX_READ,
            threads: None,
            allow: AllowList::default(),
            install_time: None,
            system_root: PathBuf::from("/"),
        }
    }
}

/// Errors that stop a scan before it starts (each names the path and the fix).
#[derive(Debug, thiserror::Error)]
pub enum WebscanError {
    /// A directory to scan does not exist or is no directory.
    #[error("{}: {message} (give the web root, e.g. /opt/mailcow-dockerized/data/web)", path.display())]
    Root {
        /// The directory as given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--baseline git` on a directory outside a git checkout.
    #[error(
        "{}: not inside a git checkout (use --baseline FILE with a manifest from --write-baseline, or leave --baseline out)",
        path.display()
    )]
    NotACheckout {
        /// The directory.
        path: PathBuf,
    },
    /// The repository holding a directory could not be read.
    #[error("{}: reading the git repository failed: {message} (use --baseline FILE, or repair the checkout)", path.display())]
    Git {
        /// The directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The baseline manifest could not be read or does not fit.
    #[error("baseline {}: {message} (write one with --write-baseline FILE)", path.display())]
    Baseline {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The baseline manifest could not be written.
    #[error("--write-baseline {}: {source} (choose a writable path)", path.display())]
    WriteBaseline {
        /// The manifest.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The allow file could not be read or parsed.
    #[error("allow file {}: {message} (lines are `sha256:HEX` or `path:GLOB`, # comments)", path.display())]
    Allow {
        /// The allow file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The worker pool could not start.
    #[error("cannot start {threads} worker threads: {message} (try a smaller --threads)")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The error.
        message: String,
    },
}

/// Progress callbacks (called from worker threads).
pub trait ScanProgress: Sync {
    /// The walk found its `n`th entry.
    fn walked(&self, _n: u64) {}
    /// The walk is over; `files` regular files will be read.
    fn scanning(&self, _files: u64) {}
    /// One file was read (`bytes` read from it).
    fn file_done(&self, _bytes: u64) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl ScanProgress for NoProgress {}

/// A file or entry that could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileError {
    /// The path as walked.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What one regular file came to.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// Index of its scanned directory in [`ScanReport::roots`].
    pub root: usize,
    /// The path as walked (the directory as given joined with the relative path).
    pub path: PathBuf,
    /// Path relative to the scanned directory, `/`-separated (lossy UTF-8).
    pub rel: String,
    /// Its metadata (lstat at walk time).
    pub meta: FileMeta,
    /// SHA-256 of the whole content, lowercase hex.
    pub sha256: String,
    /// Whether the content scan found PHP.
    pub has_php: bool,
    /// Whether it is a script file (PHP-like name, `.htaccess`, `.user.ini`,
    /// or PHP found inside).
    pub script: bool,
    /// The verdict over all reasons.
    pub verdict: Verdict,
    /// The score over all reasons.
    pub score: u32,
    /// The evidence, strongest first.
    pub reasons: Vec<Reason>,
    /// Remarks about the scan itself (truncation, changed while read).
    pub notes: Vec<String>,
    /// Whether an allow-list entry matched (then it is not reported, and
    /// carries no reasons).
    pub allowed: bool,
}

/// Where a scanned directory's integrity evidence came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegritySource {
    /// No comparison.
    None,
    /// git's HEAD.
    Git {
        /// The checkout's top directory.
        workdir: PathBuf,
        /// HEAD's commit id (hex).
        head: String,
    },
    /// A baseline manifest.
    Manifest {
        /// The manifest file.
        path: PathBuf,
    },
}

/// One scanned directory.
#[derive(Debug, Clone)]
pub struct RootSummary {
    /// As given.
    pub path: PathBuf,
    /// Canonical.
    pub canonical: PathBuf,
    /// What files were compared with.
    pub integrity: IntegritySource,
    /// The install time the context checks used.
    pub install_time: Option<i64>,
    /// Why git could not be used in `Auto` mode (a broken checkout), if so.
    pub note: Option<String>,
}

/// A file the baseline lists that is gone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingFile {
    /// The scanned directory (as given).
    pub root: PathBuf,
    /// The path relative to it, as the baseline spells it.
    pub path: String,
}

/// The result of a scan.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// The scanned directories.
    pub roots: Vec<RootSummary>,
    /// Every regular file read, sorted by directory and path.
    pub files: Vec<FileReport>,
    /// Entries that could not be scanned, sorted by path.
    pub errors: Vec<FileError>,
    /// Files the baseline lists that are gone.
    pub missing: Vec<MissingFile>,
    /// Non-directory entries seen.
    pub seen: u64,
    /// Entries skipped on purpose (symlinks, not followed).
    pub skipped: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl ScanReport {
    /// How many files were allowed by the allow-list.
    pub fn allowed(&self) -> usize {
        self.files.iter().filter(|f| f.allowed).count()
    }

    /// Files at or above `min` (allowed ones excluded).
    pub fn reported(&self, min: Verdict) -> impl Iterator<Item = &FileReport> {
        self.files
            .iter()
            .filter(move |f| !f.allowed && f.verdict >= min && f.verdict > Verdict::Clean)
    }

    /// Files per verdict (allowed ones excluded).
    pub fn count(&self, v: Verdict) -> usize {
        self.files.iter().filter(|f| !f.allowed && f.verdict == v).count()
    }
}

/// Per-root state during the scan.
enum RootIntegrity {
    None,
    Git(git::HeadTree),
    Manifest(HashMap<String, ManifestEntry>),
}

struct RootState {
    integrity: RootIntegrity,
    manifest_path: Option<PathBuf>,
    install_time: Option<i64>,
}

/// Scans the configured directories.
pub fn scan(
    cfg: &WebscanConfig,
    scanner: &Scanner,
    progress: &dyn ScanProgress,
) -> Result<ScanReport, WebscanError> {
    let started = Instant::now();
    let manifest = match &cfg.baseline {
        BaselineMode::Manifest(p) => Some((p.clone(), Manifest::load(p)?)),
        _ => None,
    };
    let web_uids = walk::web_uids(&cfg.system_root);

    let mut roots = Vec::with_capacity(cfg.roots.len());
    let mut states = Vec::with_capacity(cfg.roots.len());
    for root in &cfg.roots {
        let rerr = |message: String| WebscanError::Root {
            path: root.clone(),
            message,
        };
        let canonical = std::fs::canonicalize(root).map_err(|e| rerr(e.to_string()))?;
        if !canonical.is_dir() {
            return Err(rerr("not a directory".into()));
        }
        let mut note = None;
        let integrity = match (&cfg.baseline, &manifest) {
            (BaselineMode::Manifest(p), Some((_, m))) => match m.entries_for(&canonical, cfg.roots.len()) {
                Some(entries) => RootIntegrity::Manifest(entries),
                None => {
                    return Err(WebscanError::Baseline {
                        path: p.clone(),
                        message: format!(
                            "it does not list {} (it lists {})",
                            canonical.display(),
                            m.roots
                                .iter()
                                .map(|r| r.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            },
            (BaselineMode::Git, _) => match git::open(&canonical) {
                Ok(t) => RootIntegrity::Git(t),
                Err(git::GitOpen::NotACheckout) => {
                    return Err(WebscanError::NotACheckout { path: root.clone() });
                }
                Err(git::GitOpen::Broken(message)) => {
                    return Err(WebscanError::Git {
                        path: root.clone(),
                        message,
                    });
                }
            },
            _ => match git::open(&canonical) {
                Ok(t) => RootIntegrity::Git(t),
                Err(git::GitOpen::NotACheckout) => RootIntegrity::None,
                Err(git::GitOpen::Broken(m)) => {
                    // Auto mode: a checkout without commits (or damaged)
                    // still gets every other check; say why integrity is off.
                    note = Some(format!("git integrity not checked: {m}"));
                    RootIntegrity::None
                }
            },
        };
        let install_time = cfg.install_time.or(match &integrity {
            RootIntegrity::Git(t) => Some(t.commit_time),
            _ => None,
        });
        roots.push(RootSummary {
            path: root.clone(),
            canonical,
            integrity: match &integrity {
                RootIntegrity::None => IntegritySource::None,
                RootIntegrity::Git(t) => IntegritySource::Git {
                    workdir: t.workdir.clone(),
                    head: t.head.clone(),
                },
                RootIntegrity::Manifest(_) => IntegritySource::Manifest {
                    path: manifest.as_ref().map(|(p, _)| p.clone()).unwrap_or_default(),
                },
            },
            install_time,
            note,
        });
        states.push(RootState {
            integrity,
            manifest_path: manifest.as_ref().map(|(p, _)| p.clone()),
            install_time,
        });
    }

    let mut walked = walk::Walked::default();
    for (i, root) in cfg.roots.iter().enumerate() {
        walk::walk_root(i, root, &mut walked, &|n| progress.walked(n));
    }
    walk::fill_sibling_medians(&mut walked.files);
    progress.scanning(walked.files.len() as u64);

    let dir_writable: HashMap<&Path, bool> = walked
        .dirs
        .iter()
        .map(|(p, d)| (p.as_path(), walk::writable_by_web(*d, &web_uids)))
        .collect();
    let env = Env {
        cfg,
        scanner,
        states: &states,
        web_uids: &web_uids,
        dir_writable: &dir_writable,
        progress,
    };
    let threads = cfg.threads.unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("webscan-{i}"))
        .build()
        .map_err(|e| WebscanError::Threads {
            threads,
            message: e.to_string(),
        })?;
    let outcomes: Vec<Result<FileReport, FileError>> =
        pool.install(|| walked.files.par_iter().map(|f| process(&env, f)).collect());

    let mut files = Vec::with_capacity(outcomes.len());
    let mut errors = walked.errors;
    for o in outcomes {
        match o {
            Ok(r) => files.push(r),
            Err(e) => errors.push(e),
        }
    }
    files.sort_by(|a, b| (a.root, &a.rel).cmp(&(b.root, &b.rel)));
    errors.sort_by(|a, b| a.path.cmp(&b.path));

    // Files the baseline lists that the walk did not find.
    let mut missing = Vec::new();
    for (i, st) in states.iter().enumerate() {
        if let RootIntegrity::Manifest(entries) = &st.integrity {
            let present: std::collections::HashSet<String> = walked
                .files
                .iter()
                .filter(|f| f.root == i)
                .map(|f| rel_string(&f.rel))
                .chain(
                    errors
                        .iter()
                        .filter_map(|e| e.path.strip_prefix(&cfg.roots[i]).ok().map(rel_string)),
                )
                .collect();
            let mut gone: Vec<&String> = entries.keys().filter(|k| !present.contains(*k)).collect();
            gone.sort();
            missing.extend(gone.into_iter().map(|p| MissingFile {
                root: cfg.roots[i].clone(),
                path: p.clone(),
            }));
        }
    }

    let bytes_read = files.iter().map(|f| f.meta.size).sum();
    Ok(ScanReport {
        roots,
        files,
        errors,
        missing,
        seen: walked.seen,
        skipped: walked.skipped,
        bytes_read,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Everything a worker needs, shared read-only.
struct Env<'a> {
    cfg: &'a WebscanConfig,
    scanner: &'a Scanner,
    states: &'a [RootState],
    web_uids: &'a [u32],
    dir_writable: &'a HashMap<&'a Path, bool>,
    progress: &'a dyn ScanProgress,
}

/// `/`-separated lossy UTF-8 spelling of a relative path.
fn rel_string(rel: &Path) -> String {
    String::from_utf8_lossy(&git::path_bytes(rel)).into_owned()
}

/// Whether a file name is one PHP (or the web server configuring PHP) reads.
pub(crate) fn is_script_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == ".htaccess" || lower == ".user.ini" {
        return true;
    }
    match lower.rsplit_once('.') {
        // A bare `.php` still runs under the usual `\.php$` handler.
        Some((_, ext)) => SCRIPT_EXTENSIONS.contains(&ext),
        None => false,
    }
}

/// What reading one file gave.
struct ReadOut {
    /// The first `max_read` bytes.
    head: Vec<u8>,
    /// Bytes read in total.
    total: u64,
    sha256: [u8; 32],
    /// git's blob id, when asked for and the file did not change while read.
    blob: Option<gix::hash::ObjectId>,
    /// CRLF pairs seen (for the eol-conversion second look).
    crlf: u64,
    /// Size at open time (fstat).
    size_at_open: u64,
}

/// Reads a file once: keeps the first `cap` bytes, hashes everything.
fn read_file(path: &Path, cap: u64, blob_kind: Option<gix::hash::Kind>) -> io::Result<ReadOut> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Swapped for something else since the walk.
        return Err(io::Error::other("no longer a regular file"));
    }
    let size = meta.len();
    let mut head = Vec::with_capacity(size.min(cap) as usize);
    let mut sha = Sha256::new();
    let mut blob = blob_kind.map(|k| git::BlobHasher::new(k, size));
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    let mut crlf = 0u64;
    let mut prev_cr = false;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        sha.update(chunk);
        if let Some(b) = blob.as_mut() {
            b.update(chunk);
            if prev_cr && chunk[0] == b'\n' {
                crlf += 1;
            }
            crlf += chunk.windows(2).filter(|w| w == b"\r\n").count() as u64;
            prev_cr = chunk[n - 1] == b'\r';
        }
        let room = cap.saturating_sub(head.len() as u64) as usize;
        head.extend_from_slice(&chunk[..room.min(n)]);
        total += n as u64;
    }
    Ok(ReadOut {
        head,
        total,
        sha256: sha.finalize().into(),
        blob: if total == size {
            blob.and_then(git::BlobHasher::finish)
        } else {
            None
        },
        crlf,
        size_at_open: size,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Reads, scans and judges one file.
fn process(env: &Env<'_>, f: &walk::WalkedFile) -> Result<FileReport, FileError> {
    let st = &env.states[f.root];
    let rel = rel_string(&f.rel);
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    // Only tracked files need git's blob hash.
    let git_lookup = match &st.integrity {
        RootIntegrity::Git(t) => {
            let rp = t.repo_path(&f.rel);
            let tracked = t.blobs.get(&rp).copied();
            Some((t, rp, tracked))
        }
        _ => None,
    };
    let blob_kind = git_lookup
        .as_ref()
        .and_then(|(t, _, tracked)| tracked.map(|_| t.kind));

    let out = read_file(&f.path, env.cfg.max_read, blob_kind).map_err(|e| FileError {
        path: f.path.clone(),
        message: format!("cannot read: {e}"),
    });
    env.progress.file_done(out.as_ref().map(|o| o.total).unwrap_or(0));
    let out = out?;
    let sha256 = hex(&out.sha256);
    let mut notes = Vec::new();
    if out.total > out.head.len() as u64 {
        notes.push(format!(
            "truncated: scanned the first {} of {} bytes",
            out.head.len(),
            out.total
        ));
    }
    if out.total != out.size_at_open {
        notes.push("changed while being read".to_string());
    }
    let allowed = env.cfg.allow.allows_path(&rel) || env.cfg.allow.allows_sha256(&sha256);
    let mut report = FileReport {
        root: f.root,
        path: f.path.clone(),
        rel,
        meta: f.meta,
        sha256,
        has_php: false,
        script: false,
        verdict: Verdict::Clean,
        score: 0,
        reasons: Vec::new(),
        notes,
        allowed,
    };
    if allowed {
        return Ok(report);
    }

    let content = env.scanner.scan_content(&name, &out.head);
    // The content is not needed past this point: free it before the
    // integrity checks (which may re-read the file).
    drop(out.head);
    report.has_php = content.has_php;
    report.script = content.has_php || is_script_name(&name);
    let mut reasons = content.reasons;

    if report.script {
        let parent = f.path.parent();
        let ctx = DirContext {
            sibling_mtime_median: f.sibling_median,
            install_time: st.install_time,
            web_uids: env.web_uids.to_vec(),
            dir_writable_by_web: parent
                .and_then(|p| env.dir_writable.get(p))
                .copied()
                .unwrap_or(false),
        };
        reasons.extend(context_reasons(&f.meta, &ctx));
    }

    match (&st.integrity, git_lookup) {
        (RootIntegrity::Git(_), Some((t, rp, tracked))) => {
            let detail = format!("HEAD {}", &t.head[..t.head.len().min(12)]);
            match tracked {
                Some(want) => {
                    let mut same = out.blob == Some(want);
                    if !same && out.blob.is_some() && out.crlf > 0 {
                        // Maybe only git's eol conversion on checkout.
                        let converted = git::blob_id_crlf_to_lf(&f.path, t.kind, out.total - out.crlf)
                            .ok()
                            .flatten();
                        same = converted == Some(want);
                    }
                    if out.blob.is_none() {
                        report
                            .notes
                            .push("git comparison skipped: the file changed while being read".into());
                    } else if !same {
                        reasons.push(integrity_reason(IntegrityKind::ModifiedFromHead, &detail));
                    }
                }
                None if report.script && !t.in_submodule(&rp) => {
                    reasons.push(integrity_reason(IntegrityKind::UntrackedInRepo, &detail));
                }
                None => {}
            }
        }
        (RootIntegrity::Manifest(entries), _) => {
            let mpath = st
                .manifest_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            match entries.get(&report.rel) {
                Some(e) => {
                    let mut what = Vec::new();
                    if e.size != report.meta.size {
                        what.push(format!("size {} → {}", e.size, report.meta.size));
                    }
                    if e.sha256 != report.sha256 {
                        what.push("content (SHA-256) differs".to_string());
                    }
                    if e.mode != report.meta.mode {
                        what.push(format!("mode {:o} → {:o}", e.mode, report.meta.mode));
                    }
                    if !what.is_empty() {
                        let detail = format!("baseline {mpath}: {}", what.join(", "));
                        reasons.push(integrity_reason(IntegrityKind::ChangedFromBaseline, &detail));
                    }
                }
                None if report.script => {
                    let detail = format!("baseline {mpath}");
                    reasons.push(integrity_reason(IntegrityKind::NewSinceBaseline, &detail));
                }
                None => {}
            }
        }
        _ => {}
    }

    let (verdict, total) = score(&reasons);
    // Strongest evidence first; ties by weight, then id for stable output.
    reasons.sort_by(|a, b| (b.strength, b.weight, a.id).cmp(&(a.strength, a.weight, b.id)));
    report.verdict = verdict;
    report.score = total;
    report.reasons = reasons;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names() {
        for n in [
            ".php",
            "a.php",
            "A.PHP",
            "x.phtml",
            "y.phar",
            ".htaccess",
            ".user.ini",
            "z.php7",
            "lib.inc",
        ] {
            assert!(is_script_name(n), "{n}");
        }
        for n in ["a.jpg", "php", "a.php.txt", "readme", "user.ini"] {
            assert!(!is_script_name(n), "{n}");
        }
    }
}
