//! The file follower against a real Postfix writing its `maillog_file` under
//! mail traffic, while the log is rotated every way Postfix installations do
//! it — `mv` + `postfix reload`, `postfix logrotate` (rename, reload, gzip), and
//! logrotate's copytruncate — and while the follower is stopped, the log rotated
//! behind its back, and the follower restarted from its last checkpoint.
//!
//! The check: the emitted lines, in order, are exactly the lines of all the log
//! generations concatenated (oldest first) — every line once, none invented.
//! Lines that copytruncate loses (written between its copy and its truncate)
//! are in neither file, so they are not expected either.
//!
//! Needs root and the lab's packages (postfix, dovecot, swaks, gzip).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mailwarden_io::collect::file::{self, FileConfig, FileError, FileStats};
use mailwarden_io::collect::{Checkpoint, SourceRecord};
use mailwarden_testlab::{LabOptions, MailLab, Service};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running follower and the task storing what it sends.
struct Running {
    token: CancellationToken,
    task: JoinHandle<Result<(), FileError>>,
    consumer: JoinHandle<()>,
}

fn start(
    rt: &Runtime,
    cfg: FileConfig,
    resume: BTreeMap<String, Checkpoint>,
    stats: Arc<FileStats>,
    store: Arc<Mutex<Vec<SourceRecord>>>,
) -> Running {
    // A small channel, so backpressure is exercised too.
    let (tx, mut rx) = mpsc::channel::<SourceRecord>(16);
    let token = CancellationToken::new();
    let task = rt.spawn(file::run(cfg, resume, tx, stats, token.clone()));
    let consumer = rt.spawn(async move {
        while let Some(rec) = rx.recv().await {
            store.lock().unwrap().push(rec);
        }
    });
    Running {
        token,
        task,
        consumer,
    }
}

fn stop(rt: &Runtime, r: Running) {
    r.token.cancel();
    rt.block_on(async {
        r.task.await.unwrap().unwrap();
        r.consumer.await.unwrap();
    });
}

fn postfix(lab: &MailLab, action: &str) {
    let out = Command::new("postfix")
        .arg("-c")
        .arg(lab.postfix_config_dir())
        .arg(action)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postfix {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_maybe_gz(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn follows_postfix_through_rotations_and_a_restart_exactly_once() {
    let lab = MailLab::start(LabOptions::default()).expect("start the mail lab");
    let log = lab.mail_log().to_path_buf();
    let dir = log.parent().unwrap().to_path_buf();
    let key = format!("file:{}", log.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = FileConfig::new([log.to_str().unwrap()]);
    let store = Arc::new(Mutex::new(Vec::<SourceRecord>::new()));
    let stats = Arc::new(FileStats::default());
    let traffic_on = AtomicBool::new(true);
    let sent = AtomicUsize::new(0);

    // The generations of the log, oldest first, as they are created.
    let mut generations: Vec<PathBuf> = Vec::new();

    thread::scope(|s| {
        // Steady traffic: one SMTP session after another, accepted and rejected.
        s.spawn(|| {
            let mut i = 0usize;
            while traffic_on.load(Ordering::Relaxed) {
                let to = if i.is_multiple_of(2) {
                    "alice@lab.test"
                } else {
                    "nobody@lab.test"
                };
                let from = format!("sender{i}@partner.test");
                lab.swaks(
                    Service::Smtp,
                    &["--from", &from, "--to", to, "--helo", "partner.test"],
                )
                .expect("run swaks");
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
                thread::sleep(Duration::from_millis(30));
            }
        });

        // Stop the traffic however this closure ends: a failed assertion below
        // must fail the test, not leave the scope waiting for the sender forever.
        struct StopTraffic<'a>(&'a AtomicBool);
        impl Drop for StopTraffic<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _stop_traffic = StopTraffic(&traffic_on);

        let running = start(&rt, cfg.clone(), BTreeMap::new(), stats.clone(), store.clone());
        let sessions = |n: usize| {
            let target = sent.load(Ordering::Relaxed) + n;
            wait_for("swaks sessions", Duration::from_secs(60), || {
                sent.load(Ordering::Relaxed) >= target
            });
        };
        // Rotations are hours apart in real life: before the next one, wait
        // until the follower reads the file now at the path.
        let settled = || {
            wait_for(
                "the follower to reach the current file",
                Duration::from_secs(30),
                || {
                    let ino = fs::metadata(&log).map(|m| m.ino()).ok();
                    matches!(store.lock().unwrap().last().map(|r| &r.checkpoint),
                    Some(Checkpoint::File { inode, .. }) if Some(*inode) == ino)
                },
            );
        };
        sessions(5);

        // 1. Rename + reload (what logrotate's `create` + postrotate does).
        let g1 = dir.join("mail.log.1");
        fs::rename(&log, &g1).unwrap();
        postfix(&lab, "reload");
        generations.push(g1);
        sessions(5);
        settled();

        // 2. `postfix logrotate`: rename to mail.log.<date>, reload, gzip it.
        postfix(&lab, "logrotate");
        let rotated = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".gz"))
            .expect("postfix logrotate made a .gz");
        generations.push(rotated);
        sessions(5);
        settled();

        // 3. copytruncate: copy, then truncate in place.
        let ct = dir.join("mail.log.ct");
        fs::copy(&log, &ct).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        generations.push(ct);
        sessions(5);
        settled();

        // 4. Stop the follower; rotate while it is down; restart from the last
        // stored checkpoint.
        stop(&rt, running);
        let resume: BTreeMap<String, Checkpoint> = store
            .lock()
            .unwrap()
            .last()
            .map(|r| (r.source.to_string(), r.checkpoint.clone()))
            .into_iter()
            .collect();
        assert!(resume.contains_key(&key));
        sessions(3);
        let r2 = dir.join("mail.log.r2");
        fs::rename(&log, &r2).unwrap();
        postfix(&lab, "reload");
        generations.push(r2);
        sessions(3);
        let running = start(&rt, cfg.clone(), resume, stats.clone(), store.clone());
        sessions(5);

        traffic_on.store(false, Ordering::Relaxed);
        lab.wait_idle().expect("lab idle");
        generations.push(log.clone());
        // Caught up: the last checkpoint is the end of the current file.
        wait_for("the follower to catch up", Duration::from_secs(30), || {
            let len = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            matches!(store.lock().unwrap().last().map(|r| &r.checkpoint),
                Some(Checkpoint::File { offset, .. }) if *offset == len)
        });
        stop(&rt, running);
    });

    let mut expected = Vec::new();
    for g in &generations {
        expected.extend_from_slice(&read_maybe_gz(g));
    }
    let expected = String::from_utf8_lossy(&expected);
    let expected: Vec<&str> = expected.lines().collect();
    let records = store.lock().unwrap();
    let got: Vec<&str> = records.iter().map(|r| r.line.as_str()).collect();
    assert!(
        expected.len() > 100,
        "too little traffic: {} lines",
        expected.len()
    );
    if got != expected {
        let _ = fs::write("/tmp/collect-got.txt", got.join("\n"));
        let _ = fs::write("/tmp/collect-want.txt", expected.join("\n"));
        let first = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "emitted {} lines, the generations hold {}; first difference at line {first}:\n got: {:?}\nwant: {:?}\ngenerations: {generations:?}\nstats: {:?}",
            got.len(),
            expected.len(),
            got.get(first.saturating_sub(1)..(first + 3).min(got.len())),
            expected.get(first.saturating_sub(1)..(first + 3).min(expected.len())),
            stats.snapshot()
        );
    }
    let s = stats.snapshot();
    assert_eq!(s.truncations, 1, "{s:?}");
    assert_eq!(s.checkpoint_lost, 0, "{s:?}");
    // mv, logrotate, and the rotation found at restart.
    assert!(s.rotations >= 3, "{s:?}");
    assert!(records.iter().all(|r| r.source.as_ref() == key));
}
