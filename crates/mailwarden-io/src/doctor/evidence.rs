//! The evidence bundle of `mailwarden doctor --evidence DIR`: a copy of
//! every artifact the checks read (file contents as read, command outputs,
//! Docker API answers), a SHA-256 manifest (JSON and `sha256sum` text), a
//! collection log with timestamps and the exact commands run, and the
//! findings. Nothing is written anywhere but `DIR`, which must not exist or
//! be empty; it is created mode 0700.
//!
//! The checks call [`file()`], [`command`] and [`api`] where they read; these
//! do nothing unless a bundle was [`start`]ed (one per process: the doctor
//! is a one-shot command). An artifact is stored as the bytes the check
//! read (reads are bounded: a log's tail, a file's first megabytes), and the
//! manifest says which part of the file that is.
//!
//! Layout:
//!
//! ```text
//! DIR/files/<absolute path>          the bytes read of each file
//! DIR/commands/NNN-<program>.out     each command's output
//! DIR/api/NNN-<what>.json            each Docker API answer
//! DIR/findings.json                  the findings, one JSON object per line
//! DIR/collection.log                 what was done, when, with which command
//! DIR/manifest.json, manifest.sha256 every file of the bundle with its SHA-256
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Most bytes one artifact keeps (beyond, it is cut and the manifest says so).
pub const MAX_ARTIFACT_BYTES: usize = 64 << 20;
/// Most bytes the whole bundle keeps; later artifacts are listed, not copied.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;

/// One file of the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Path inside the bundle.
    pub path: String,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
    /// Stored bytes.
    pub bytes: u64,
    /// What it is a copy of: a file path, a command line, an API request.
    pub source: String,
    /// Which part of the source it holds (`whole file`, `first N bytes`,
    /// `last N bytes`, `output`).
    pub part: String,
    /// When it was collected (RFC 3339, UTC).
    pub collected: String,
}

/// What [`finish`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Every file, the manifest's own files last excluded.
    pub entries: Vec<Entry>,
    /// Artifacts not copied because the bundle reached its size bound.
    pub not_copied: u64,
}

struct Bundle {
    dir: PathBuf,
    entries: Vec<Entry>,
    log: Vec<String>,
    seq: u32,
    total: u64,
    not_copied: u64,
    errors: Vec<String>,
}

static BUNDLE: Mutex<Option<Bundle>> = Mutex::new(None);

fn now() -> String {
    jiff::Timestamp::try_from(SystemTime::now())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Starts a bundle in `dir`: refuses a directory that exists and is not
/// empty (evidence is never overwritten or mixed), creates it mode 0700.
pub fn start(dir: &Path, command_line: &str) -> io::Result<()> {
    if let Ok(mut rd) = fs::read_dir(dir)
        && rd.next().is_some()
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not empty; evidence is never overwritten: give a new directory",
                dir.display()
            ),
        ));
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut b = Bundle {
        dir: dir.to_path_buf(),
        entries: Vec::new(),
        log: Vec::new(),
        seq: 0,
        total: 0,
        not_copied: 0,
        errors: Vec::new(),
    };
    b.log.push(format!("{} start: {command_line}", now()));
    let mut g = BUNDLE.lock().unwrap_or_else(|p| p.into_inner());
    *g = Some(b);
    Ok(())
}

/// Whether a bundle is being collected.
pub fn active() -> bool {
    BUNDLE.lock().map(|g| g.is_some()).unwrap_or(false)
}

/// Records the bytes read of a file. `part` says which part they are.
/// Secrets are redacted before anything is written: password hashes of
/// `shadow` files, and the values of secret-looking keys (`*PASS*`,
/// `*SECRET*`, `*TOKEN*`, `*KEY*`) in `mailcow.conf`, `.env` and TOML files;
/// the manifest says so, and its hash is of what was stored.
pub fn file(path: &Path, bytes: &[u8], part: &str) {
    if !active() {
        return;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let redacted = match name {
        "shadow" | "gshadow" | "shadow-" | "gshadow-" => Some(redact_shadow(bytes)),
        "mailcow.conf" | ".env" => Some(redact_assignments(bytes)),
        n if n.ends_with(".toml") || n.ends_with(".env") => Some(redact_assignments(bytes)),
        _ => None,
    };
    let (bytes, part): (&[u8], String) = match &redacted {
        Some(r) if r.as_slice() != bytes => (r, format!("{part}, secrets redacted")),
        _ => (bytes, part.to_owned()),
    };
    let inside = Path::new("files").join(relative(path));
    store(
        inside,
        bytes,
        &path.display().to_string(),
        &part,
        format!("read {} ({part})", path.display()),
    );
}

/// `shadow` with every password field replaced (users and dates kept).
pub fn redact_shadow(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut fields: Vec<&str> = body.split(':').collect();
        if fields.len() > 1 && !fields[1].is_empty() && !matches!(fields[1], "*" | "!" | "!!" | "!*") {
            fields[1] = "<redacted>";
        }
        out.push_str(&fields.join(":"));
        out.push_str(nl);
    }
    out.into_bytes()
}

/// `KEY=VALUE` / `key = "value"` lines whose key looks secret get their
/// value replaced.
pub fn redact_assignments(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match body.split_once('=') {
            Some((k, v)) if !body.trim_start().starts_with('#') && secret_key(k) && !v.trim().is_empty() => {
                out.push_str(k);
                out.push_str("=<redacted>");
            }
            _ => out.push_str(body),
        }
        out.push_str(nl);
    }
    out.into_bytes()
}

fn secret_key(k: &str) -> bool {
    let k = k.trim().to_ascii_uppercase();
    ["PASS", "SECRET", "TOKEN", "KEY"].iter().any(|w| k.contains(w))
}

/// Records a command that was run and its output.
pub fn command(argv: &[&str], output: &[u8], status: &str) {
    let program = argv
        .first()
        .map(|p| {
            Path::new(p)
                .file_name()
                .map_or(*p, |f| f.to_str().unwrap_or("cmd"))
        })
        .unwrap_or("cmd");
    let name = sanitize(program);
    let line = argv.join(" ");
    store_numbered(
        "commands",
        &name,
        "out",
        output,
        &line,
        "output",
        format!("ran `{line}`: {status}"),
    );
}

/// Records an answer of the Docker API.
pub fn api(request: &str, body: &[u8]) {
    store_numbered(
        "api",
        &sanitize(request),
        "json",
        body,
        request,
        "answer",
        format!("asked the Docker API: {request}"),
    );
}

/// Adds a line to the collection log.
pub fn note(text: &str) {
    if let Ok(mut g) = BUNDLE.lock()
        && let Some(b) = g.as_mut()
    {
        b.log.push(format!("{} {text}", now()));
    }
}

fn store_numbered(folder: &str, name: &str, ext: &str, bytes: &[u8], source: &str, part: &str, log: String) {
    let seq = match BUNDLE.lock() {
        Ok(mut g) => match g.as_mut() {
            Some(b) => {
                b.seq += 1;
                b.seq
            }
            None => return,
        },
        Err(_) => return,
    };
    let inside = Path::new(folder).join(format!("{seq:03}-{name}.{ext}"));
    store(inside, bytes, source, part, log);
}

fn store(inside: PathBuf, bytes: &[u8], source: &str, part: &str, log: String) {
    let Ok(mut g) = BUNDLE.lock() else { return };
    let Some(b) = g.as_mut() else { return };
    let cut = &bytes[..bytes.len().min(MAX_ARTIFACT_BYTES)];
    let part = if cut.len() < bytes.len() {
        format!("{part}, cut to {} bytes", cut.len())
    } else {
        part.to_owned()
    };
    if b.total + cut.len() as u64 > MAX_BUNDLE_BYTES {
        b.not_copied += 1;
        b.log.push(format!(
            "{} not copied (bundle at its size bound): {source}",
            now()
        ));
        return;
    }
    // The same file read twice (two checks) is stored once.
    let inside_s = inside.display().to_string();
    if b.entries.iter().any(|e| e.path == inside_s) {
        return;
    }
    match write_new(&b.dir.join(&inside), cut) {
        Ok(()) => {
            b.total += cut.len() as u64;
            b.entries.push(Entry {
                path: inside_s,
                sha256: hex(&Sha256::digest(cut)),
                bytes: cut.len() as u64,
                source: source.to_owned(),
                part,
                collected: now(),
            });
            b.log.push(format!("{} {log}", now()));
        }
        Err(e) => b.errors.push(format!("{}: {e}", inside.display())),
    }
}

/// Writes the findings, the collection log and the manifest; ends the
/// bundle. With `tar_gz`, also packs the bundle into `DIR.tar.gz` beside
/// it (refused when that file exists).
pub fn finish(findings_jsonl: &[u8], tar_gz: bool) -> io::Result<Manifest> {
    let mut g = BUNDLE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(mut b) = g.take() else {
        return Err(io::Error::other("no evidence bundle was started"));
    };
    drop(g);
    write_new(&b.dir.join("findings.json"), findings_jsonl)?;
    b.entries.push(Entry {
        path: "findings.json".into(),
        sha256: hex(&Sha256::digest(findings_jsonl)),
        bytes: findings_jsonl.len() as u64,
        source: "mailwarden doctor".into(),
        part: "findings".into(),
        collected: now(),
    });
    for e in &b.errors {
        b.log.push(format!("{} error: {e}", now()));
    }
    b.log.push(format!("{} end: {} files", now(), b.entries.len()));
    let log = b.log.join("\n") + "\n";
    write_new(&b.dir.join("collection.log"), log.as_bytes())?;
    b.entries.push(Entry {
        path: "collection.log".into(),
        sha256: hex(&Sha256::digest(log.as_bytes())),
        bytes: log.len() as u64,
        source: "mailwarden doctor".into(),
        part: "collection log".into(),
        collected: now(),
    });
    let manifest = Manifest {
        dir: b.dir.clone(),
        entries: b.entries,
        not_copied: b.not_copied,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    write_new(&b.dir.join("manifest.json"), &json)?;
    let text: String = manifest
        .entries
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.path))
        .collect();
    write_new(&b.dir.join("manifest.sha256"), text.as_bytes())?;
    if tar_gz {
        pack(&b.dir)?;
    }
    Ok(manifest)
}

/// Packs `dir` into `dir.tar.gz` (never overwriting).
fn pack(dir: &Path) -> io::Result<()> {
    let name = dir
        .file_name()
        .ok_or_else(|| io::Error::other("the evidence directory has no name"))?;
    let out = dir.with_file_name(format!("{}.tar.gz", name.to_string_lossy()));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(name, dir)?;
    tar.into_inner()?.finish()?.sync_all()
}

/// Creates `path` (and its parents) and writes `bytes`; never overwrites.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(p) = path.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(p)?;
    }
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An absolute path as a relative one under `files/`, without `..`.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// A name safe for a file name.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let shadow = b"root:$y$j9T$abc:19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\nbob:!:19700::::::";
        assert_eq!(
            String::from_utf8(redact_shadow(shadow)).unwrap(),
            "root:<redacted>:19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\nbob:!:19700::::::"
        );
        let conf = b"MAILCOW_HOSTNAME=mail.example.org\nDBPASS=hunter2\n# REDISPASS=old\nAPI_KEY=abc\nredis_password = \"x\"\nEMPTYPASS=\n";
        assert_eq!(
            String::from_utf8(redact_assignments(conf)).unwrap(),
            "MAILCOW_HOSTNAME=mail.example.org\nDBPASS=<redacted>\n# REDISPASS=old\nAPI_KEY=<redacted>\nredis_password =<redacted>\nEMPTYPASS=\n"
        );
    }

    #[test]
    fn names_are_safe() {
        assert_eq!(
            relative(Path::new("/etc/../etc/ssh/sshd_config")),
            PathBuf::from("etc/etc/ssh/sshd_config")
        );
        assert_eq!(sanitize("GET /containers/a b/json"), "GET__containers_a_b_json");
        assert_eq!(sanitize(""), "_");
    }
}
