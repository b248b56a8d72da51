//! Checkpoints, crashes, full disks, concurrent readers, locking, schema
//! versions.

use std::collections::BTreeMap;
use std::process::Command;

use mailwarden_core::search::SearchQuery;
use rusqlite::Connection;

use super::*;
use crate::{LineCursor, StoreError};

fn commit_lines(
    store: &mut Store,
    source: &str,
    lines: &[String],
    checkpoint: Option<&str>,
) -> crate::CommitStats {
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, source, lines);
    if let Some(c) = checkpoint {
        b.set_checkpoint(source, c);
    }
    store.commit(&b).unwrap()
}

fn all_raw(store: &Store) -> Vec<String> {
    let mut v = Vec::new();
    store.replay(None, None, |l| v.push(l.raw.to_owned())).unwrap();
    v.sort();
    v
}

fn cps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn checkpoints_latest_wins_across_day_files() {
    let (dir, mut store) = temp_store();
    commit_lines(&mut store, "a", &lines_on(5, 0..3), Some("a1"));
    // An older day is the batch's final day: its checkpoint is newer anyway.
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, "a", &lines_on(3, 3..5));
    b.set_checkpoint("a", "a-ignored");
    b.set_checkpoint("a", "a2");
    b.set_checkpoint("b", "b1");
    store.commit(&b).unwrap();
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "a2"), ("b", "b1")]));
    // Checkpoints alone (no line) go to meta.sqlite.
    let mut b = store.batch();
    b.set_checkpoint("a", "a3");
    assert!(b.len() == 1 && b.lines() == 0);
    let st = store.commit(&b).unwrap();
    assert_eq!(st.checkpoints, 1);
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "a3"), ("b", "b1")]));
    // A batch over two days: the newest holds the checkpoint.
    let mut lines = lines_on(3, 5..6);
    lines.extend(lines_on(6, 6..7));
    commit_lines(&mut store, "b", &lines, Some("b2"));
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "a3"), ("b", "b2")]));
    // The same after reopening, and for a reader.
    drop(store);
    let store = Store::open(StoreConfig::new(dir.path().join("data"))).unwrap();
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "a3"), ("b", "b2")]));
    let reader = Store::open_read_only(&dir.path().join("data")).unwrap();
    assert_eq!(reader.checkpoints().unwrap(), cps(&[("a", "a3"), ("b", "b2")]));
}

#[test]
fn rolling_back_a_batch_restores_checkpoints() {
    let (_d, mut store) = temp_store();
    commit_lines(&mut store, "a", &lines_on(1, 0..3), Some("A"));
    commit_lines(&mut store, "b", &lines_on(0, 0..1), Some("B0"));
    let st = commit_lines(&mut store, "a", &lines_on(1, 3..6), Some("A2"));
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "A2"), ("b", "B0")]));
    let day = crate::day::day_of(at(1, 3600));
    let meta_path = store.meta_path.clone();
    let inner = store.inner.get_mut().unwrap();
    crate::store::rollback_batch(inner, &meta_path, st.seq, &[day]).unwrap();
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "A"), ("b", "B0")]));
    assert_eq!(store.stats().unwrap().lines, 4);
    // The next batch moves it on again.
    commit_lines(&mut store, "a", &lines_on(1, 3..6), Some("A2"));
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "A2"), ("b", "B0")]));
    assert_eq!(store.stats().unwrap().lines, 7);
}

#[test]
fn store_and_batch_cross_threads() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<crate::Batch>();
}

#[test]
fn dropped_batches_store_nothing() {
    let (dir, mut store) = temp_store();
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, "a", &lines_on(1, 0..10));
    b.set_checkpoint("a", "x");
    drop(b);
    assert!(store.commit(&store.batch()).unwrap() == crate::CommitStats::default());
    let mut b = store.batch();
    add_lines(&mut b, &mut fr, "a", &lines_on(1, 0..10));
    drop(store); // never committed
    drop(b);
    let store = Store::open(StoreConfig::new(dir.path().join("data"))).unwrap();
    assert_eq!(store.stats().unwrap().lines, 0);
    assert!(store.checkpoints().unwrap().is_empty());
}

/// Env var naming the data directory for the crash child.
const CRASH_DIR: &str = "MAILWARDEN_STORE_CRASH_DIR";
/// Env var: after how many day transactions the child aborts.
const CRASH_AFTER: &str = "MAILWARDEN_STORE_CRASH_AFTER";

/// The child of [`crash_mid_batch_is_rolled_back`]; does nothing in a normal
/// test run.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(after)) = (std::env::var(CRASH_DIR), std::env::var(CRASH_AFTER)) else {
        return;
    };
    let mut store = Store::open(StoreConfig::new(dir)).unwrap();
    commit_lines(&mut store, "a", &lines_on(1, 0..5), Some("A"));
    store.faults.abort_after_days = Some(after.parse().unwrap());
    let mut lines = lines_on(1, 5..10);
    lines.extend(lines_on(2, 10..15));
    lines.extend(lines_on(3, 15..20));
    commit_lines(&mut store, "a", &lines, Some("B"));
    unreachable!("the commit aborts the process");
}

#[test]
fn crash_mid_batch_is_rolled_back() {
    for after in [0, 1, 2] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "tests::durability::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR, &data)
            .env(CRASH_AFTER, after.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(6),
            "the child must abort mid-batch: {status}"
        );
        let first: Vec<String> = {
            let mut v = lines_on(1, 0..5);
            v.sort();
            v
        };
        // A reader before any recovery sees batch A only.
        let reader = Store::open_read_only(&data).unwrap();
        assert_eq!(all_raw(&reader), first, "after {after} days");
        assert_eq!(reader.checkpoints().unwrap(), cps(&[("a", "A")]));
        assert_eq!(reader.stats().unwrap().lines, 5);
        let q = SearchQuery {
            client_ip: Some("192.0.2.".into()),
            ..SearchQuery::default()
        };
        assert_eq!(reader.search_lines(&q, 100).unwrap().len(), 5);
        assert_eq!(reader.lines_after(None, 100).unwrap().len(), 5);
        drop(reader);
        // The writer rolls the half batch back.
        let mut store = Store::open(StoreConfig::new(&data)).unwrap();
        assert_eq!(all_raw(&store), first);
        assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "A")]));
        let st = store.stats().unwrap();
        assert_eq!(st.lines, 5);
        assert_eq!(st.days.len(), 1, "{:?}", st.days);
        // Resuming from the checkpoint stores every line exactly once.
        let mut lines = lines_on(1, 5..10);
        lines.extend(lines_on(2, 10..15));
        lines.extend(lines_on(3, 15..20));
        commit_lines(&mut store, "a", &lines, Some("B"));
        let mut all = lines_on(1, 0..5);
        all.extend(lines);
        all.sort();
        assert_eq!(all_raw(&store), all);
        assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "B")]));
    }
}

#[test]
fn disk_full_stores_nothing_and_recovers() {
    let (_d, mut store) = temp_store();
    commit_lines(&mut store, "a", &lines_on(1, 0..5), Some("A"));
    store.set_max_pages(Some(40)).unwrap();
    // A few lines on a new day (fits), many on another (does not).
    let mut lines = lines_on(0, 100..103);
    lines.extend((0..3000).map(|i| format!("{} {}", line_on(4, i), "x".repeat(100))));
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, "a", &lines);
    b.set_checkpoint("a", "B");
    let err = store.commit(&b).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(err.to_string().contains(".sqlite"), "{err}");
    let st = store.stats().unwrap();
    assert_eq!(st.lines, 5, "{st:?}");
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "A")]));
    // Space again: the same batch goes in.
    store.set_max_pages(None).unwrap();
    let mut b = store.batch();
    add_lines(&mut b, &mut fr, "a", &lines);
    b.set_checkpoint("a", "B");
    store.commit(&b).unwrap();
    assert_eq!(store.stats().unwrap().lines as usize, 5 + lines.len());
    assert_eq!(store.checkpoints().unwrap(), cps(&[("a", "B")]));
}

#[test]
fn readers_beside_the_writer_and_one_writer_only() {
    let (dir, mut store) = temp_store();
    let data = dir.path().join("data");
    commit_lines(&mut store, "a", &lines_on(1, 0..5), Some("1"));
    let reader = Store::open_read_only(&data).unwrap();
    assert!(reader.is_read_only());
    let q = SearchQuery {
        client_ip: Some("192.0.2.3".into()),
        ..SearchQuery::default()
    };
    assert_eq!(reader.search_lines(&q, 10).unwrap().len(), 1);
    commit_lines(&mut store, "a", &lines_on(2, 0..5), Some("2"));
    assert_eq!(reader.search_lines(&q, 10).unwrap().len(), 2);
    assert_eq!(reader.checkpoints().unwrap(), cps(&[("a", "2")]));
    // A source added by the writer after the reader opened.
    commit_lines(&mut store, "new", &lines_on(2, 5..6), None);
    assert!(
        reader
            .lines_after(None, 100)
            .unwrap()
            .iter()
            .any(|(_, l)| l.source == "new")
    );
    // Readers do not write.
    let mut reader = reader;
    assert!(matches!(
        reader.commit(&reader.batch()),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.apply_retention(at(9, 0)),
        Err(StoreError::ReadOnly { .. })
    ));
    // A second writer is refused, naming the likely cause.
    let err = Store::open(StoreConfig::new(&data)).unwrap_err();
    assert!(matches!(err, StoreError::Locked { pid: Some(_), .. }), "{err}");
    assert!(err.to_string().contains("mailwarden serve"), "{err}");
    drop(store);
    Store::open(StoreConfig::new(&data)).unwrap();
    // No store at all.
    let err = Store::open_read_only(&dir.path().join("nothing")).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[test]
fn data_dir_is_private_and_unwritable_dirs_are_explained() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _store) = temp_store();
    let mode = std::fs::metadata(dir.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // A path that cannot be created, whatever the privileges (root ignores
    // permission bits): its parent is a regular file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let err = Store::open(StoreConfig::new(file.join("data"))).unwrap_err();
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err}");
    assert!(err.to_string().contains("--data-dir"), "{err}");
    // A read-only parent; only meaningful without privileges that ignore it.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_err() {
        let err = Store::open(StoreConfig::new(ro.join("data"))).unwrap_err();
        assert!(matches!(err, StoreError::NotWritable { .. }), "{err}");
        assert!(err.to_string().contains("--data-dir"), "{err}");
    }
}

fn set_version(path: &std::path::Path, v: i64) {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "user_version", v).unwrap();
}

#[test]
fn newer_schemas_are_refused() {
    let (dir, mut store) = temp_store();
    let data = dir.path().join("data");
    commit_lines(&mut store, "a", &lines_on(1, 0..5), None);
    drop(store);
    let meta = data.join("meta.sqlite");
    set_version(&meta, 99);
    for err in [
        Store::open(StoreConfig::new(&data)).unwrap_err(),
        Store::open_read_only(&data).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("upgrade mailwarden"), "{err}");
        assert!(err.to_string().contains("meta.sqlite"), "{err}");
    }
    set_version(&meta, crate::META_SCHEMA_VERSION);
    let day = crate::day::day_path(&data.join("days"), crate::day::day_of(at(1, 3600)));
    set_version(&day, 99);
    // The writer's recovery reads the last batch's day file, so the open
    // already fails; either way the error names the file.
    let err = match Store::open(StoreConfig::new(&data)) {
        Err(e) => e,
        Ok(store) => store.replay(None, None, |_| {}).unwrap_err(),
    };
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    assert!(err.to_string().contains("2023-03-11.sqlite"), "{err}");
    let reader = Store::open_read_only(&data).unwrap();
    let err = reader.replay(None, None, |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    assert!(err.to_string().contains("2023-03-11.sqlite"), "{err}");
}

#[test]
fn uninitialised_and_foreign_day_files() {
    let (dir, mut store) = temp_store();
    let days = dir.path().join("data/days");
    // A file created but never initialised (a crash right after creating it).
    let empty = crate::day::day_path(&days, crate::day::day_of(at(1, 0)));
    Connection::open(&empty)
        .unwrap()
        .execute_batch("PRAGMA journal_mode=WAL")
        .unwrap();
    let reader = Store::open_read_only(&dir.path().join("data")).unwrap();
    assert_eq!(reader.replay(None, None, |_| {}).unwrap(), 0);
    commit_lines(&mut store, "a", &lines_on(1, 0..3), None);
    assert_eq!(reader.replay(None, None, |_| {}).unwrap(), 3);
    // Another program's database where a day file should be.
    let foreign = crate::day::day_path(&days, crate::day::day_of(at(2, 0)));
    let c = Connection::open(&foreign).unwrap();
    c.execute_batch("PRAGMA application_id = 42; CREATE TABLE t (x);")
        .unwrap();
    drop(c);
    let err = store.replay(None, None, |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
}

#[test]
fn lines_after_follows_insertion_order() {
    let (_d, mut store) = temp_store();
    let b1 = lines_on(5, 0..3);
    commit_lines(&mut store, "a", &b1, None);
    // A late batch: an older day, then a newer one.
    let mut b2 = lines_on(3, 3..5);
    b2.extend(lines_on(6, 5..6));
    commit_lines(&mut store, "a", &b2, None);
    let b3 = lines_on(5, 6..8);
    commit_lines(&mut store, "a", &b3, None);
    let want: Vec<String> = b1.iter().chain(&b2).chain(&b3).cloned().collect();

    let mut got = Vec::new();
    let mut cursor: Option<LineCursor> = None;
    loop {
        // The spool depth agrees with what is left to read, at every cursor
        // (inside a batch, at a batch's end, across day files).
        let left = store.lines_after(cursor, usize::MAX).unwrap().len() as u64;
        assert_eq!(store.count_lines_after(cursor).unwrap(), left, "after {cursor:?}");
        let page = store.lines_after(cursor, 2).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        for (c, l) in page {
            // The forwarder persists the cursor as JSON.
            let json = serde_json::to_string(&c).unwrap();
            let back: LineCursor = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
            cursor = Some(back);
            got.push(l.raw);
        }
    }
    assert_eq!(got, want);
    assert!(store.lines_after(cursor, 10).unwrap().is_empty());
    commit_lines(&mut store, "a", &lines_on(1, 9..10), None);
    let next = store.lines_after(cursor, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.raw, line_on(1, 9));
    assert!(serde_json::from_str::<LineCursor>(r#"{"seq":1,"day":"2023-02-30","rowid":1}"#).is_err());
}
