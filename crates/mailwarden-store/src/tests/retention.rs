//! Retention by age and by size.

use crate::day::{date_of, day_of};
use crate::{RemovalReason, StoreConfig};

use super::*;

fn fill(store: &mut Store, days: std::ops::Range<u8>, per_day: usize) {
    for d in days {
        let mut b = store.batch();
        let mut fr = framer();
        add_lines(&mut b, &mut fr, "a", &lines_on(d, 0..per_day));
        store.commit(&b).unwrap();
    }
}

fn open(dir: &std::path::Path, retention_days: Option<u32>, max_bytes: Option<u64>) -> Store {
    Store::open(StoreConfig {
        dir: dir.join("data"),
        retention_days,
        max_bytes,
    })
    .unwrap()
}

#[test]
fn by_age_keeps_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), Some(3), None);
    // An idle source whose only checkpoint is in a day that will go.
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, "idle", &lines_on(0, 100..101));
    b.set_checkpoint("idle", "idle-1");
    store.commit(&b).unwrap();
    fill(&mut store, 0..10, 20);
    let now = at(9, 12 * 3600);
    let report = store.apply_retention(now).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|r| (r.date, r.reason)).collect();
    let want: Vec<_> = (0..6)
        .map(|d| (date_of(day_of(at(d, 0))), RemovalReason::Age))
        .collect();
    assert_eq!(removed, want);
    assert!(report.removed.iter().all(|r| r.bytes > 0));
    let st = store.stats().unwrap();
    assert_eq!(st.days.len(), 4);
    assert_eq!(st.oldest, Some(date_of(day_of(at(6, 0)))));
    assert_eq!(st.lines, 80);
    assert_eq!(store.replay(None, None, |_| {}).unwrap(), 80);
    assert_eq!(
        store.checkpoints().unwrap().get("idle").map(String::as_str),
        Some("idle-1")
    );
    // Nothing more to do; a reader agrees.
    assert!(store.apply_retention(now).unwrap().removed.is_empty());
    let reader = Store::open_read_only(&dir.path().join("data")).unwrap();
    assert_eq!(reader.stats().unwrap().lines, 80);
    assert_eq!(
        reader.checkpoints().unwrap().get("idle").map(String::as_str),
        Some("idle-1")
    );
}

#[test]
fn by_size_removes_oldest_first_never_today() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), None, None);
        fill(&mut store, 0..10, 300);
    }
    let full = {
        let store = open(dir.path(), None, None);
        store.stats().unwrap().total_bytes
    };
    let mut store = open(dir.path(), None, Some(full / 2));
    let now = at(9, 12 * 3600);
    let report = store.apply_retention(now).unwrap();
    assert!(!report.removed.is_empty());
    assert!(report.removed.iter().all(|r| r.reason == RemovalReason::Size));
    let dates: Vec<_> = report.removed.iter().map(|r| r.date).collect();
    let want: Vec<_> = (0..dates.len() as u8)
        .map(|d| date_of(day_of(at(d, 0))))
        .collect();
    assert_eq!(dates, want, "oldest first");
    assert!(report.total_bytes <= full / 2, "{report:?}");
    assert!(!report.over_limit);
    let st = store.stats().unwrap();
    assert!(st.total_bytes <= full / 2);
    assert_eq!(st.newest, Some(date_of(day_of(now))));
    drop(store);

    // A limit nothing but an empty store meets: every day but today goes.
    let mut store = open(dir.path(), None, Some(1));
    let report = store.apply_retention(now).unwrap();
    assert!(report.over_limit);
    let st = store.stats().unwrap();
    assert_eq!(st.days.len(), 1);
    assert_eq!(st.days[0].date, date_of(day_of(now)));
    assert_eq!(st.lines, 300);
}
