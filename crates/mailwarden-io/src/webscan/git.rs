//! Integrity against git's HEAD, read with gix (no `git` binary): the blob
//! id of every tracked path, the commit's time, and git's blob hash of a
//! worktree file (`"blob <len>\0"` + content, SHA-1 in today's repositories).
//!
//! Limits: git may convert line endings on checkout (`core.autocrlf`,
//! `.gitattributes` `eol`/`text`) or run smudge filters, so a worktree file
//! can differ from its blob without anyone touching it. We do not evaluate
//! attributes or filters; instead a file whose hash differs and that holds
//! CRLF pairs is hashed a second time with CRLF turned into LF (what git's
//! `text` conversion undoes on commit) before it counts as modified. Smudge
//! filters (LFS pointers, `ident`) still show as modified; that is the honest
//! answer for a scanner that will not run filter programs.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use gix::hash::{Kind, ObjectId};

/// HEAD's view of one checkout, restricted to what the scan needs.
#[derive(Debug)]
pub(crate) struct HeadTree {
    /// The checkout's top directory (canonical).
    pub workdir: PathBuf,
    /// HEAD's commit id (hex).
    pub head: String,
    /// The committer time of HEAD (seconds since the epoch).
    pub commit_time: i64,
    /// The object hash the repository uses.
    pub kind: Kind,
    /// Blob id of every tracked regular file or symlink, by path relative to
    /// the workdir (git's `/`-separated bytes).
    pub blobs: HashMap<Vec<u8>, ObjectId>,
    /// Paths of submodules (gitlinks): what lies below belongs to another
    /// repository, so it is neither modified nor untracked here.
    pub submodules: HashSet<Vec<u8>>,
    /// The scanned root relative to the workdir, `/`-terminated (empty when
    /// the root is the workdir itself).
    pub prefix: Vec<u8>,
}

/// Why a checkout could not be used.
#[derive(Debug)]
pub(crate) enum GitOpen {
    /// No repository above the directory (or a bare one: no worktree).
    NotACheckout,
    /// A repository is there but HEAD could not be read.
    Broken(String),
}

/// Finds the checkout holding `root` (canonical) and reads HEAD's tree.
pub(crate) fn open(root: &Path) -> Result<HeadTree, GitOpen> {
    let repo = gix::discover(root).map_err(|_| GitOpen::NotACheckout)?;
    let workdir = repo.workdir().ok_or(GitOpen::NotACheckout)?;
    let workdir = std::fs::canonicalize(workdir).map_err(|e| GitOpen::Broken(e.to_string()))?;
    let commit = repo
        .head_commit()
        .map_err(|e| GitOpen::Broken(format!("HEAD does not name a commit: {e}")))?;
    let commit_time = commit
        .time()
        .map_err(|e| GitOpen::Broken(format!("HEAD's committer line: {e}")))?
        .seconds;
    let tree = commit
        .tree()
        .map_err(|e| GitOpen::Broken(format!("HEAD's tree: {e}")))?;
    let mut rec = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut rec)
        .map_err(|e| GitOpen::Broken(format!("walking HEAD's tree: {e}")))?;
    let mut blobs = HashMap::with_capacity(rec.records.len());
    let mut submodules = HashSet::new();
    for e in rec.records {
        if e.mode.is_commit() {
            submodules.insert(e.filepath.to_vec());
        } else if e.mode.is_blob_or_symlink() {
            blobs.insert(e.filepath.to_vec(), e.oid);
        }
    }
    let prefix = match root.strip_prefix(&workdir) {
        Ok(rel) if rel.as_os_str().is_empty() => Vec::new(),
        Ok(rel) => {
            let mut p = path_bytes(rel);
            p.push(b'/');
            p
        }
        Err(_) => return Err(GitOpen::NotACheckout),
    };
    Ok(HeadTree {
        workdir,
        head: commit.id.to_hex().to_string(),
        commit_time,
        kind: repo.object_hash(),
        blobs,
        submodules,
        prefix,
    })
}

impl HeadTree {
    /// The repository path of a file given relative to the scanned root.
    pub fn repo_path(&self, rel: &Path) -> Vec<u8> {
        let mut p = self.prefix.clone();
        p.extend_from_slice(&path_bytes(rel));
        p
    }

    /// Whether a repository path lies inside a submodule.
    pub fn in_submodule(&self, repo_path: &[u8]) -> bool {
        if self.submodules.is_empty() {
            return false;
        }
        // Check every ancestor directory of the path.
        let mut end = repo_path.len();
        while let Some(pos) = repo_path[..end].rfind_byte(b'/') {
            if self.submodules.contains(&repo_path[..pos]) {
                return true;
            }
            end = pos;
        }
        false
    }
}

/// `/`-separated bytes of a relative path (git's spelling).
pub(crate) fn path_bytes(rel: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for (i, c) in rel.components().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_os_str().as_bytes());
    }
    out
}

/// git's streaming blob hash: the header needs the length up front.
pub(crate) struct BlobHasher {
    hasher: gix::hash::Hasher,
}

impl BlobHasher {
    /// Starts the hash of a blob of `len` bytes.
    pub fn new(kind: Kind, len: u64) -> Self {
        let mut hasher = gix::hash::hasher(kind);
        hasher.update(format!("blob {len}\0").as_bytes());
        BlobHasher { hasher }
    }

    /// Feeds content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The blob id (None when SHA-1 collision detection fired: such content
    /// cannot be compared honestly).
    pub fn finish(self) -> Option<ObjectId> {
        self.hasher.try_finalize().ok()
    }
}

/// Re-reads a file and hashes it as the blob git would store after turning
/// each CRLF into LF; `len` is the converted length (file length minus the
/// CRLF pairs counted on the first read).
pub(crate) fn blob_id_crlf_to_lf(path: &Path, kind: Kind, len: u64) -> io::Result<Option<ObjectId>> {
    let mut file = File::open(path)?;
    let mut h = BlobHasher::new(kind, len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(buf.len() + 1);
    // A CR at the end of one chunk may pair with an LF at the start of the next.
    let mut pending_cr = false;
    let mut written = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        for (i, &b) in buf[..n].iter().enumerate() {
            if pending_cr {
                pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                if i + 1 == n {
                    pending_cr = true;
                } else if buf[i + 1] != b'\n' {
                    out.push(b'\r');
                }
                continue;
            }
            out.push(b);
        }
        written += out.len() as u64;
        h.update(&out);
    }
    if pending_cr {
        written += 1;
        h.update(b"\r");
    }
    if written != len {
        // The file changed since the first read; no honest answer.
        return Ok(None);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hash_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = BlobHasher::new(Kind::Sha1, 6);
        h.update(b"hello\n");
        let id = h.finish().map(|i| i.to_hex().to_string());
        assert_eq!(id.as_deref(), Some("ce013625030ba8dba906f756967f9e9ca394464a"));
    }

    #[test]
    fn crlf_conversion_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        // 64 KiB - 1 bytes, then CRLF straddling the chunk boundary, then a lone CR.
        let mut content = vec![b'a'; 64 * 1024 - 1];
        content.extend_from_slice(b"\r\nx\ry\r\n");
        std::fs::write(&p, &content).unwrap();
        let lf: Vec<u8> = {
            let mut v = vec![b'a'; 64 * 1024 - 1];
            v.extend_from_slice(b"\nx\ry\n");
            v
        };
        let mut want = BlobHasher::new(Kind::Sha1, lf.len() as u64);
        want.update(&lf);
        let got = blob_id_crlf_to_lf(&p, Kind::Sha1, lf.len() as u64).unwrap();
        assert_eq!(got, want.finish());
    }

    #[test]
    fn submodule_prefixes() {
        let t = HeadTree {
            workdir: PathBuf::new(),
            head: String::new(),
            commit_time: 0,
            kind: Kind::Sha1,
            blobs: HashMap::new(),
            submodules: [b"vendor/lib".to_vec()].into_iter().collect(),
            prefix: Vec::new(),
        };
        assert!(t.in_submodule(b"vendor/lib/a.php"));
        assert!(t.in_submodule(b"vendor/lib/x/a.php"));
        assert!(!t.in_submodule(b"vendor/library.php"));
        assert!(!t.in_submodule(b"a.php"));
    }
}
