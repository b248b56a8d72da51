//! `mailwarden_io::webscan` on real trees: the walk and its metadata, git
//! integrity against a real repository (made with the `git` binary here; the
//! scanner itself reads it with gix), loose and packed objects, baseline
//! manifests, allow-lists, the read cap, entries that cannot be read, and
//! hostile file names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailwarden_core::webscan::{IntegrityKind, Scanner, Verdict, integrity_reason};
use mailwarden_io::webscan::{
    AllowList, BaselineMode, FileReport, IntegritySource, Manifest, NoProgress, ScanReport, WebscanConfig,
    WebscanError, scan,
};
use sha2::{Digest, Sha256};

/// The reason id the core gives an integrity finding (so these tests do not
/// hard-code the core's spelling).
fn id(kind: IntegrityKind) -> &'static str {
    integrity_reason(kind, "").id
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Runs git with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "core.autocrlf=false", "-c", "gc.auto=0"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_DATE", "2024-03-01T12:00:00Z")
        .env("GIT_AUTHOR_DATE", "2024-03-01T12:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 2024-03-01T12:00:00Z
const COMMIT_TIME: i64 = 1_709_294_400;

fn run(cfg: &WebscanConfig) -> ScanReport {
    scan(cfg, &Scanner::new(Default::default()), &NoProgress).expect("scan runs")
}

fn config(root: &Path) -> WebscanConfig {
    let mut cfg = WebscanConfig::new(vec![root.to_path_buf()]);
    // No host passwd: the tests must not depend on this machine's users.
    cfg.system_root = PathBuf::from("/nonexistent");
    cfg
}

fn file<'a>(r: &'a ScanReport, rel: &str) -> &'a FileReport {
    r.files.iter().find(|f| f.rel == rel).unwrap_or_else(|| {
        panic!(
            "{rel} not in {:?}",
            r.files.iter().map(|f| &f.rel).collect::<Vec<_>>()
        )
    })
}

fn ids(f: &FileReport) -> Vec<&'static str> {
    f.reasons.iter().map(|r| r.id).collect()
}

/// A checkout with a committed PHP app, then tampered with.
fn tampered_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "index.php", b"<?php\necho 'hello';\n");
    write(
        root,
        "lib/util.php",
        b"<?php\nfunction add($a, $b) { return $a + $b; }\n",
    );
    write(root, "lib/crlf.php", b"<?php\n// line endings\necho 1;\n");
    write(root, "README.txt", b"An app.\n");
    write(root, ".gitignore", b"cache/\n");
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "app"]);
    // Tampering: a tracked file changed, a new script, a script in an
    // ignored directory, a new text file, and a file whose only change is
    // the line endings git's eol conversion would write.
    write(root, "index.php", b"<?php\necho 'hello';\n@include '/tmp/x';\n");
    write(root, "lib/shell.php", b"<?php\necho 'not from git';\n");
    write(root, "cache/hidden.php", b"<?php\necho 'hidden';\n");
    write(root, "notes.txt", b"just text\n");
    write(root, "lib/crlf.php", b"<?php\r\n// line endings\r\necho 1;\r\n");
    // Scripts hidden in git's own directory and in a fake one.
    write(root, ".git/hooks/x.php", b"<?php echo 'hook';\n");
    write(root, "uploads/.git/HEAD", b"ref: refs/heads/main\n");
    write(root, "uploads/.git/shell.php", b"<?php echo 'hidden';\n");
    dir
}

fn check_tampered(r: &ScanReport) {
    assert!(
        matches!(r.roots[0].integrity, IntegritySource::Git { .. }),
        "{:?}",
        r.roots[0].integrity
    );
    assert_eq!(r.roots[0].install_time, Some(COMMIT_TIME));
    assert!(ids(file(r, "index.php")).contains(&id(IntegrityKind::ModifiedFromHead)));
    assert!(ids(file(r, "lib/shell.php")).contains(&id(IntegrityKind::UntrackedInRepo)));
    // Ignored by .gitignore, still scanned, still untracked.
    assert!(ids(file(r, "cache/hidden.php")).contains(&id(IntegrityKind::UntrackedInRepo)));
    // Not a script: untracked, but no integrity reason.
    assert!(ids(file(r, "notes.txt")).is_empty());
    // Unchanged and CRLF-only-changed files are not modified.
    for rel in ["lib/util.php", "lib/crlf.php", "README.txt", ".gitignore"] {
        assert!(
            !ids(file(r, rel)).contains(&id(IntegrityKind::ModifiedFromHead)),
            "{rel}: {:?}",
            ids(file(r, rel))
        );
    }
    // .git internals are not scanned, but a script hidden in there is.
    let in_git: Vec<&str> = r
        .files
        .iter()
        .filter(|f| f.rel.contains(".git/"))
        .map(|f| f.rel.as_str())
        .collect();
    assert_eq!(in_git, [".git/hooks/x.php", "uploads/.git/shell.php"]);
    assert!(ids(file(r, ".git/hooks/x.php")).contains(&id(IntegrityKind::UntrackedInRepo)));
    assert!(ids(file(r, "uploads/.git/shell.php")).contains(&id(IntegrityKind::UntrackedInRepo)));
}

#[test]
fn git_integrity_loose_objects() {
    let dir = tampered_checkout();
    let r = run(&config(dir.path()));
    check_tampered(&r);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.files.len(), 10);
}

#[test]
fn git_integrity_packed_objects() {
    let dir = tampered_checkout();
    git(dir.path(), &["gc", "-q", "--prune=now"]);
    // The objects really come from a pack now.
    let loose: Vec<_> = std::fs::read_dir(dir.path().join(".git/objects"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().len() == 2)
        .collect();
    assert!(loose.is_empty(), "loose objects left: {loose:?}");
    let mut cfg = config(dir.path());
    cfg.baseline = BaselineMode::Git;
    check_tampered(&run(&cfg));
}

#[test]
fn git_integrity_of_a_subdirectory() {
    let dir = tampered_checkout();
    let r = run(&config(&dir.path().join("lib")));
    assert!(ids(file(&r, "shell.php")).contains(&id(IntegrityKind::UntrackedInRepo)));
    assert!(
        ids(file(&r, "util.php")).is_empty(),
        "{:?}",
        ids(file(&r, "util.php"))
    );
    write(dir.path(), "lib/util.php", b"<?php\n// changed\n");
    let r = run(&config(&dir.path().join("lib")));
    assert!(ids(file(&r, "util.php")).contains(&id(IntegrityKind::ModifiedFromHead)));
}

#[test]
fn install_time_option_wins_over_head() {
    let dir = tampered_checkout();
    let mut cfg = config(dir.path());
    cfg.install_time = Some(1_600_000_000);
    assert_eq!(run(&cfg).roots[0].install_time, Some(1_600_000_000));
}

#[test]
fn outside_a_checkout() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.php", b"<?php echo 1;\n");
    let r = run(&config(dir.path()));
    assert_eq!(r.roots[0].integrity, IntegritySource::None);
    assert_eq!(r.roots[0].install_time, None);
    assert!(ids(file(&r, "a.php")).is_empty());

    let mut cfg = config(dir.path());
    cfg.baseline = BaselineMode::Git;
    let err = scan(&cfg, &Scanner::new(Default::default()), &NoProgress).unwrap_err();
    assert!(matches!(err, WebscanError::NotACheckout { .. }), "{err}");
    assert!(err.to_string().contains("--baseline FILE"), "{err}");
}

#[test]
fn a_checkout_without_commits_still_scans() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    write(dir.path(), "a.php", b"<?php echo 1;\n");
    let r = run(&config(dir.path()));
    assert_eq!(r.roots[0].integrity, IntegritySource::None);
    assert!(r.roots[0].note.is_some());
    assert_eq!(r.files.len(), 1);
}

#[test]
fn bad_roots_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.txt", b"x");
    for root in [dir.path().join("missing"), dir.path().join("f.txt")] {
        let err = scan(&config(&root), &Scanner::new(Default::default()), &NoProgress).unwrap_err();
        assert!(matches!(err, WebscanError::Root { .. }), "{err}");
        assert!(err.to_string().contains(&root.display().to_string()), "{err}");
    }
}

#[test]
fn metadata_hashes_and_sorting() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b/x.php", b"<?php echo 2;\n");
    write(dir.path(), "a.txt", b"hello");
    std::fs::set_permissions(dir.path().join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = run(&config(dir.path()));
    let rels: Vec<&str> = r.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(rels, ["a.txt", "b/x.php"]);
    let a = file(&r, "a.txt");
    assert_eq!(a.meta.size, 5);
    assert_eq!(a.meta.mode & 0o7777, 0o640);
    assert_eq!(a.meta.mode & 0o170000, 0o100000);
    assert!(a.meta.mtime > 0 && a.meta.ctime > 0);
    assert_eq!(
        a.sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert!(!a.script);
    assert!(file(&r, "b/x.php").script);
    assert_eq!(a.path, dir.path().join("a.txt"));
    assert_eq!(r.seen, 2);
    assert_eq!(r.bytes_read, 5 + 14);
}

#[test]
fn threads_do_not_change_results() {
    let dir = tampered_checkout();
    let mut one = config(dir.path());
    one.threads = Some(1);
    let mut four = config(dir.path());
    four.threads = Some(4);
    let (a, b) = (run(&one), run(&four));
    assert_eq!(a.files, b.files);
}

#[test]
fn read_cap_truncates_scan_but_hashes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    write(dir.path(), "big.txt", &content);
    write(dir.path(), "small.txt", b"tiny");
    let mut cfg = config(dir.path());
    cfg.max_read = 1000;
    let r = run(&cfg);
    let big = file(&r, "big.txt");
    assert_eq!(big.sha256, format!("{:x}", Sha256::digest(&content)));
    assert_eq!(big.meta.size, 200_000);
    assert!(
        big.notes
            .iter()
            .any(|n| n.contains("truncated") && n.contains("1000")),
        "{:?}",
        big.notes
    );
    assert!(file(&r, "small.txt").notes.is_empty());
}

#[test]
fn baseline_write_then_check() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    write(&web, "index.php", b"<?php echo 1;\n");
    write(&web, "keep.php", b"<?php echo 2;\n");
    write(&web, "gone.php", b"<?php echo 3;\n");
    write(&web, "mode.php", b"<?php echo 4;\n");
    write(&web, "img/logo.png", b"\x89PNG\r\n\x1a\n");
    let first = run(&config(&web));
    let manifest_path = dir.path().join("base.json");
    Manifest::from_report(&first, "2024-03-01T12:00:00Z".into())
        .write(&manifest_path)
        .unwrap();
    let m = Manifest::load(&manifest_path).unwrap();
    assert_eq!(m.files.len(), 5);
    assert_eq!(m.roots, vec![std::fs::canonicalize(&web).unwrap()]);
    let idx = m.files.iter().find(|f| f.path == "index.php").unwrap();
    assert_eq!(idx.size, 14);
    assert_eq!(idx.sha256, format!("{:x}", Sha256::digest(b"<?php echo 1;\n")));

    write(&web, "index.php", b"<?php echo 'changed';\n");
    std::fs::remove_file(web.join("gone.php")).unwrap();
    std::fs::set_permissions(web.join("mode.php"), std::fs::Permissions::from_mode(0o777)).unwrap();
    write(&web, "new.php", b"<?php echo 5;\n");
    write(&web, "img/new.png", b"\x89PNG\r\n\x1a\n");
    let mut cfg = config(&web);
    cfg.baseline = BaselineMode::Manifest(manifest_path.clone());
    let r = run(&cfg);
    assert!(matches!(r.roots[0].integrity, IntegritySource::Manifest { .. }));
    assert!(ids(file(&r, "index.php")).contains(&id(IntegrityKind::ChangedFromBaseline)));
    assert!(ids(file(&r, "mode.php")).contains(&id(IntegrityKind::ChangedFromBaseline)));
    assert!(ids(file(&r, "new.php")).contains(&id(IntegrityKind::NewSinceBaseline)));
    assert!(ids(file(&r, "keep.php")).is_empty());
    // A new non-script file is listed in the next baseline, not reported.
    assert!(ids(file(&r, "img/new.png")).is_empty());
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].path, "gone.php");

    // A manifest of one tree matches a scan of one tree moved elsewhere.
    let moved = dir.path().join("moved");
    std::fs::rename(&web, &moved).unwrap();
    let mut cfg = config(&moved);
    cfg.baseline = BaselineMode::Manifest(manifest_path.clone());
    assert!(ids(file(&run(&cfg), "keep.php")).is_empty());

    // Two trees against a one-tree manifest: the unknown one is an error.
    let other = tempfile::tempdir().unwrap();
    let mut cfg = WebscanConfig::new(vec![moved.clone(), other.path().to_path_buf()]);
    cfg.baseline = BaselineMode::Manifest(manifest_path);
    let err = scan(&cfg, &Scanner::new(Default::default()), &NoProgress).unwrap_err();
    assert!(matches!(err, WebscanError::Baseline { .. }), "{err}");
}

#[test]
fn bad_baselines_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web/a.php", b"<?php\n");
    write(dir.path(), "junk.json", b"{\"not\": \"a manifest\"}");
    write(
        dir.path(),
        "future.json",
        b"{\"format\":99,\"created\":\"x\",\"roots\":[],\"files\":[]}",
    );
    for name in ["junk.json", "future.json", "missing.json"] {
        let mut cfg = config(&dir.path().join("web"));
        cfg.baseline = BaselineMode::Manifest(dir.path().join(name));
        let err = scan(&cfg, &Scanner::new(Default::default()), &NoProgress).unwrap_err();
        assert!(matches!(err, WebscanError::Baseline { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn allow_list_by_path_and_hash() {
    let dir = tampered_checkout();
    let shell_sha = format!("{:x}", Sha256::digest(b"<?php\necho 'not from git';\n"));
    let mut cfg = config(dir.path());
    cfg.allow = AllowList::parse(&format!("# reviewed\npath:cache/*.php\nsha256:{shell_sha}\n")).unwrap();
    let r = run(&cfg);
    assert_eq!(r.allowed(), 2);
    assert!(file(&r, "cache/hidden.php").allowed);
    assert!(file(&r, "lib/shell.php").allowed);
    let reported: Vec<&str> = r.reported(Verdict::Info).map(|f| f.rel.as_str()).collect();
    assert!(!reported.contains(&"cache/hidden.php") && !reported.contains(&"lib/shell.php"));
    assert!(reported.contains(&"index.php"));

    let bad = dir.path().join("bad.allow");
    std::fs::write(&bad, "path:ok/*\nsha1:abc\n").unwrap();
    let err = AllowList::load(&bad).unwrap_err();
    assert!(
        err.to_string().contains("line 2") && err.to_string().contains("bad.allow"),
        "{err}"
    );
    assert!(AllowList::load(&dir.path().join("none.allow")).is_err());
}

#[test]
fn unreadable_entries_are_errors_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "ok.php", b"<?php echo 1;\n");
    write(root, "target.txt", b"x");
    std::os::unix::fs::symlink("does/not/exist.php", root.join("dangling.php")).unwrap();
    std::os::unix::fs::symlink("target.txt", root.join("link.txt")).unwrap();
    let fifo = root.join("pipe.php");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(st.success());
    let r = run(&config(root));
    let errs: Vec<(String, &str)> = r
        .errors
        .iter()
        .map(|e| {
            (
                e.path.file_name().unwrap().to_string_lossy().into_owned(),
                e.message.as_str(),
            )
        })
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .any(|(p, m)| p == "dangling.php" && m.contains("dangling")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|(p, m)| p == "pipe.php" && m.contains("FIFO")),
        "{errs:?}"
    );
    assert_eq!(r.skipped, 1, "the symlink to a file is skipped, not followed");
    assert_eq!(r.seen, 5);
    assert_eq!(r.files.len(), 2);
    assert!(r.files.iter().any(|f| f.rel == "ok.php"));
}

#[test]
fn hostile_file_names() {
    let dir = tampered_checkout();
    let esc_name = "evil\u{1b}]0;pwned\u{7}\n.php";
    write(dir.path(), esc_name, b"<?php echo 1;\n");
    let raw = OsStr::from_bytes(b"bad\xff name.php");
    std::fs::write(dir.path().join(raw), b"<?php echo 2;\n").unwrap();
    let r = run(&config(dir.path()));
    let f = file(&r, esc_name);
    assert!(ids(f).contains(&id(IntegrityKind::UntrackedInRepo)));
    let lossy = file(&r, "bad\u{fffd} name.php");
    // The path as walked keeps the real bytes (so it can be opened).
    assert_eq!(lossy.path.file_name().unwrap().as_bytes(), b"bad\xff name.php");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn web_context_uses_the_given_root_passwd() {
    // The scan resolves web users from the given system root; a
    // world-writable upload directory is passed on as such. The verdict is
    // the core's business; here only that the scan runs with both.
    let sys = tempfile::tempdir().unwrap();
    write(
        sys.path(),
        "etc/passwd",
        b"www-data:x:33:33::/var/www:/bin/false\n",
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "uploads/a.php", b"<?php echo 1;\n");
    std::fs::set_permissions(dir.path().join("uploads"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cfg = config(dir.path());
    cfg.system_root = sys.path().to_path_buf();
    let r = run(&cfg);
    assert_eq!(r.files.len(), 1);
}

/// The core's labelled fixtures (relative paths), copied into temporary
/// trees here; the project's tests never read the shared corpus.
fn fixtures(kind: &str) -> (PathBuf, Vec<PathBuf>) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mailwarden-core/tests/fixtures/webscan")
        .join(kind);
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension() != Some(OsStr::new("md")) {
                out.push(p.strip_prefix(&base).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    (base, out)
}

#[test]
fn fixtures_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["malicious", "benign"] {
        let (base, files) = fixtures(kind);
        assert!(!files.is_empty(), "no {kind} fixtures");
        for rel in files {
            let dst = dir.path().join(kind).join(&rel);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(base.join(&rel), &dst).unwrap();
        }
    }
    let r = run(&config(dir.path()));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let malicious: Vec<&FileReport> = r
        .files
        .iter()
        .filter(|f| f.rel.starts_with("malicious/"))
        .collect();
    let benign: Vec<&FileReport> = r.files.iter().filter(|f| f.rel.starts_with("benign/")).collect();
    for f in &malicious {
        assert!(
            f.verdict >= Verdict::Suspicious,
            "{}: {:?} {:?}",
            f.rel,
            f.verdict,
            ids(f)
        );
    }
    let caught = malicious
        .iter()
        .filter(|f| f.verdict == Verdict::Malicious)
        .count();
    assert!(
        caught * 10 >= malicious.len() * 8,
        "{caught} of {} malicious",
        malicious.len()
    );
    // Benign code: never malicious, rarely suspicious (the core's own tests
    // pin each fixture's verdict; this is the whole path end to end).
    for f in &benign {
        assert!(
            f.verdict < Verdict::Malicious,
            "{}: {:?} {:?}",
            f.rel,
            f.verdict,
            ids(f)
        );
    }
    let suspicious = benign.iter().filter(|f| f.verdict == Verdict::Suspicious).count();
    assert!(
        suspicious * 4 <= benign.len(),
        "{suspicious} of {} benign files suspicious",
        benign.len()
    );
}
