//! The walk: every entry under a scanned directory, symlinks not followed
//! and `.gitignore` NOT honoured (an attacker's favourite hiding place is an
//! ignored cache or upload directory). Only `.git` internals are skipped,
//! except script files (a `.git` directory is a hiding place too).
//! Regular files are collected with their metadata; symlinks to something
//! are counted as skipped; dangling symlinks, FIFOs, sockets, devices and
//! unreadable directories become error entries naming the path.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mailwarden_core::webscan::FileMeta;
use walkdir::WalkDir;

use super::FileError;

/// Names whose uid is the web server's on common systems.
const WEB_USER_NAMES: &[&str] = &["www-data", "nginx", "apache", "http"];
/// Uids of the web server inside Mailcow's images (Alpine's www-data in
/// php-fpm is 82; 101 is nginx in the official nginx image).
const WEB_UIDS_FIXED: &[u32] = &[82, 101];
/// Most bytes read from /etc/passwd.
const MAX_PASSWD_BYTES: u64 = 4 << 20;

/// One regular file found by the walk.
#[derive(Debug, Clone)]
pub(crate) struct WalkedFile {
    /// Index of the scanned directory.
    pub root: usize,
    /// The path as walked (the root as given, joined with `rel`).
    pub path: PathBuf,
    /// Path relative to the root.
    pub rel: PathBuf,
    /// Its metadata (lstat).
    pub meta: FileMeta,
    /// Median mtime of the other files in its directory.
    pub sibling_median: Option<i64>,
}

/// A directory's owner and mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirInfo {
    pub uid: u32,
    pub mode: u32,
}

/// What a walk of all roots found.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    pub files: Vec<WalkedFile>,
    pub dirs: HashMap<PathBuf, DirInfo>,
    pub errors: Vec<FileError>,
    /// Non-directory entries seen (files, links, FIFOs, …).
    pub seen: u64,
    /// Symlinks to existing targets (not followed, not read).
    pub skipped: u64,
}

/// The web server's uids: the names above resolved in `<root>/etc/passwd`,
/// plus Mailcow's fixed container uids; sorted, no duplicates.
pub(crate) fn web_uids(system_root: &Path) -> Vec<u32> {
    use std::io::Read;
    let mut uids: Vec<u32> = WEB_UIDS_FIXED.to_vec();
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(system_root.join("etc/passwd")) {
        // A passwd file we cannot read leaves the fixed uids: better than nothing.
        let mut bytes = Vec::new();
        if f.take(MAX_PASSWD_BYTES).read_to_end(&mut bytes).is_ok() {
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), _, Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if WEB_USER_NAMES.contains(&name)
            && let Ok(uid) = uid.parse::<u32>()
        {
            uids.push(uid);
        }
    }
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// Whether a directory is writable by the web server: owned by a web uid
/// with the owner's write bit, or writable by everyone.
pub(crate) fn writable_by_web(d: DirInfo, web_uids: &[u32]) -> bool {
    (web_uids.contains(&d.uid) && d.mode & 0o200 != 0) || d.mode & 0o002 != 0
}

fn file_meta(m: &std::fs::Metadata) -> FileMeta {
    FileMeta {
        mtime: m.mtime(),
        ctime: m.ctime(),
        uid: m.uid(),
        mode: m.mode(),
        size: m.size(),
    }
}

/// Walks one root into `out`; `on_entry` is called per file found (progress).
pub(crate) fn walk_root(idx: usize, root: &Path, out: &mut Walked, on_entry: &dyn Fn(u64)) {
    let walker = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                let message = match e.io_error() {
                    Some(io) => format!("cannot read: {io}"),
                    None => e.to_string(),
                };
                out.errors.push(FileError { path, message });
                continue;
            }
        };
        let ft = entry.file_type();
        // `.git` holds git's own bookkeeping (objects, packs, hooks): not
        // web content, and costly to hash. But a directory is easily named
        // `.git` to hide from scanners, so inside one, files PHP would run
        // are still scanned; everything else there is passed over unseen.
        let in_git = entry.depth() > 0
            && entry
                .path()
                .strip_prefix(root)
                .is_ok_and(|rel| rel.components().any(|c| c.as_os_str() == ".git"));
        if in_git && !(ft.is_file() && super::is_script_name(&entry.file_name().to_string_lossy())) {
            continue;
        }
        if ft.is_dir() {
            if let Ok(m) = entry.metadata() {
                out.dirs.insert(
                    entry.path().to_path_buf(),
                    DirInfo {
                        uid: m.uid(),
                        mode: m.mode(),
                    },
                );
            }
            continue;
        }
        out.seen += 1;
        on_entry(out.seen);
        let path = entry.path().to_path_buf();
        if ft.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(_) => out.skipped += 1,
                Err(e) => {
                    let target = std::fs::read_link(&path)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| "?".into());
                    out.errors.push(FileError {
                        path,
                        message: format!("dangling symbolic link to {target:?} ({e})"),
                    });
                }
            }
            continue;
        }
        if !ft.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let what = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "a device"
            } else {
                "not a regular file"
            };
            out.errors.push(FileError {
                path,
                message: format!("{what}, not read"),
            });
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => file_meta(&m),
            Err(e) => {
                out.errors.push(FileError {
                    path,
                    message: format!("cannot stat: {e}"),
                });
                continue;
            }
        };
        let rel = path
            .strip_prefix(root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.clone());
        out.files.push(WalkedFile {
            root: idx,
            path,
            rel,
            meta,
            sibling_median: None,
        });
    }
}

/// Fills each file's `sibling_median`: the median mtime of the other files
/// in the same directory (the lower middle for an even count).
pub(crate) fn fill_sibling_medians(files: &mut [WalkedFile]) {
    let mut by_dir: HashMap<&Path, Vec<i64>> = HashMap::new();
    for f in files.iter() {
        if let Some(parent) = f.path.parent() {
            by_dir.entry(parent).or_default().push(f.meta.mtime);
        }
    }
    let medians: HashMap<PathBuf, Vec<i64>> = by_dir
        .into_iter()
        .map(|(d, mut v)| {
            v.sort_unstable();
            (d.to_path_buf(), v)
        })
        .collect();
    for f in files.iter_mut() {
        let Some(sorted) = f.path.parent().and_then(|p| medians.get(p)) else {
            continue;
        };
        f.sibling_median = median_without(sorted, f.meta.mtime);
    }
}

/// The median of `sorted` with one occurrence of `own` left out.
fn median_without(sorted: &[i64], own: i64) -> Option<i64> {
    let n = sorted.len();
    if n < 2 {
        return None;
    }
    let i = sorted.partition_point(|&x| x < own);
    // After removing index i, n-1 values remain; take the lower middle.
    let k = (n - 2) / 2;
    Some(if k < i { sorted[k] } else { sorted[k + 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_leave_the_file_out() {
        assert_eq!(median_without(&[5], 5), None);
        assert_eq!(median_without(&[1, 9], 9), Some(1));
        assert_eq!(median_without(&[1, 9], 1), Some(9));
        // Others of 100 are [1, 2, 3] → 2.
        assert_eq!(median_without(&[1, 2, 3, 100], 100), Some(2));
        // Others of 1 are [2, 3, 100] → 3.
        assert_eq!(median_without(&[1, 2, 3, 100], 1), Some(3));
        // Others of 3 are [1, 2, 100] → 2.
        assert_eq!(median_without(&[1, 2, 3, 100], 3), Some(2));
    }

    #[test]
    fn web_uids_from_passwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nnginx:x:bad:1::/:/bin/false\nhttp:x:990:990::/:/bin/false\n",
        )
        .unwrap();
        assert_eq!(web_uids(dir.path()), vec![33, 82, 101, 990]);
        assert_eq!(web_uids(&dir.path().join("nope")), vec![82, 101]);
    }

    #[test]
    fn writable_dirs() {
        let web = [33];
        assert!(writable_by_web(
            DirInfo {
                uid: 33,
                mode: 0o40755
            },
            &web
        ));
        assert!(!writable_by_web(
            DirInfo {
                uid: 33,
                mode: 0o40555
            },
            &web
        ));
        assert!(!writable_by_web(
            DirInfo {
                uid: 0,
                mode: 0o40775
            },
            &web
        ));
        assert!(writable_by_web(
            DirInfo {
                uid: 0,
                mode: 0o41777
            },
            &web
        ));
    }
}
