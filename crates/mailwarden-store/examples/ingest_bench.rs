//! Ingest benchmark: frames, parses and stitches a real log into a fresh store,
//! then times searches over it.
//!
//! ```text
//! cargo run --release -p mailwarden-store --example ingest_bench -- LOG [options]
//!
//!   --repeat N       ingest the log N times; copy k has its RFC 3339 dates moved
//!                    k × D days later (default 1)
//!   --shift-days D   days per copy (default: the days the log covers)
//!   --batch B        lines per commit (default 20000)
//!   --dir DIR        store directory (default: a new temporary directory,
//!                    removed afterwards unless --keep)
//!   --keep           keep the temporary store
//!   --search-only    skip ingest and only time searches on --dir
//! ```
//!
//! Prints lines/s end to end (read + frame + parse + stitch + store) and for the
//! store alone (time inside `commit`), bytes per event, and the time of a few
//! searches (first run and a repeated run).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mailwarden_core::event::Position;
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::{StitchConfig, Stitcher};
use mailwarden_core::time::{TimeContext, Timestamp, civil_from_days, days_from_civil, parse_rfc3339_prefix};
use mailwarden_store::{Store, StoreConfig};

struct Args {
    log: PathBuf,
    repeat: u32,
    shift_days: Option<i64>,
    batch: usize,
    dir: Option<PathBuf>,
    keep: bool,
    search_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        log: PathBuf::new(),
        repeat: 1,
        shift_days: None,
        batch: 20_000,
        dir: None,
        keep: false,
        search_only: false,
    };
    let mut log = None;
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--repeat" | "repeat" => {
                a.repeat = val("--repeat")?.parse().map_err(|e| format!("--repeat: {e}"))?
            }
            "--shift-days" => a.shift_days = Some(val("--shift-days")?.parse().map_err(|e| format!("{e}"))?),
            "--batch" => a.batch = val("--batch")?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(val("--dir")?)),
            "--keep" => a.keep = true,
            "--search-only" => a.search_only = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if log.is_none() => log = Some(PathBuf::from(s)),
            // `ingest_bench LOG repeat N` and `ingest_bench LOG N` both work.
            s => a.repeat = s.parse().map_err(|e| format!("repeat count {s:?}: {e}"))?,
        }
    }
    a.log =
        log.ok_or("usage: ingest_bench LOG [--repeat N] [--batch B] [--dir DIR] [--keep] [--search-only]")?;
    Ok(a)
}

/// Days since the epoch of the RFC 3339 date that starts a line.
fn line_day(line: &[u8]) -> Option<i64> {
    let (ts, _) = parse_rfc3339_prefix(line.get(..40.min(line.len()))?).ok()?;
    Some(days_of(ts))
}

fn days_of(ts: Timestamp) -> i64 {
    let c = ts.local();
    days_from_civil(c.year, c.month, c.day)
}

/// Rewrites the `YYYY-MM-DD` prefix of `line` `shift` days later into `out`.
fn shifted(line: &str, shift: i64, out: &mut String) {
    out.clear();
    let b = line.as_bytes();
    let dated = b.len() > 10 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T';
    let parsed = dated
        .then(|| {
            let y: i32 = line.get(0..4)?.parse().ok()?;
            let m: u8 = line.get(5..7)?.parse().ok()?;
            let d: u8 = line.get(8..10)?.parse().ok()?;
            Some((y, m, d))
        })
        .flatten();
    match parsed {
        Some((y, m, d)) if shift != 0 => {
            let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + shift);
            out.push_str(&format!("{y:04}-{m:02}-{d:02}"));
            out.push_str(&line[10..]);
        }
        _ => out.push_str(line),
    }
}

fn time<T>(label: &str, f: impl Fn() -> T, count: impl Fn(&T) -> usize) {
    let t0 = Instant::now();
    let r = f();
    let first = t0.elapsed();
    let t1 = Instant::now();
    let r2 = f();
    let again = t1.elapsed();
    assert_eq!(count(&r), count(&r2));
    println!(
        "  {label:<58} {:>7} hits  first {:>9.1} ms  again {:>9.1} ms",
        count(&r),
        ms(first),
        ms(again)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ingest_bench: {e}");
            std::process::exit(2);
        }
    };
    let tmp = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("mailwarden-store-bench")
                .tempdir()
                .expect("temporary directory"),
        ),
    };
    let dir = match (&args.dir, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().join("data"),
        (None, None) => unreachable!(),
    };

    if !args.search_only {
        let bytes = std::fs::read(&args.log).unwrap_or_else(|e| {
            eprintln!("ingest_bench: {}: {e}", args.log.display());
            std::process::exit(2);
        });
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let first_day = lines.iter().find_map(|l| line_day(l.as_bytes()));
        let last_day = lines.iter().rev().find_map(|l| line_day(l.as_bytes()));
        let span = match (first_day, last_day) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 1,
        };
        let shift = args.shift_days.unwrap_or(span);
        println!(
            "log {} : {} lines, {} MB, {span} days; {} copies shifted by {shift} days; batches of {}",
            args.log.display(),
            lines.len(),
            bytes.len() / 1_000_000,
            args.repeat,
            args.batch
        );

        let mut store = Store::open(StoreConfig::new(&dir)).expect("open store");
        let now = Timestamp::from_unix_seconds(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        );
        let mut framer = Framer::new(FramerConfig {
            format: Format::Auto,
            program_hint: None,
            time: TimeContext::utc(now),
        });
        let mut stitcher = Stitcher::new(StitchConfig::default());
        let mut buf = String::new();
        let mut batch = store.batch();
        let (mut n, mut messages, mut in_commit) = (0u64, 0u64, Duration::ZERO);
        let source = format!("file:{}", args.log.display());
        let t0 = Instant::now();
        let commit = |store: &mut Store, batch, in_commit: &mut Duration| {
            let t = Instant::now();
            store.commit(&batch).expect("commit");
            *in_commit += t.elapsed();
        };
        for rep in 0..args.repeat {
            for (i, line) in lines.iter().enumerate() {
                shifted(line, i64::from(rep) * shift, &mut buf);
                n += 1;
                let pos = Position {
                    source: rep,
                    line: i as u64 + 1,
                };
                batch.frame_and_add(&mut framer, &source, now, &buf, |ev| stitcher.feed(pos, &buf, ev));
                while let Some(rec) = stitcher.pop() {
                    batch.add_message(&rec);
                    messages += 1;
                }
                if batch.lines() >= args.batch {
                    batch.set_checkpoint(&source, &format!("{{\"copy\":{rep},\"line\":{}}}", i + 1));
                    commit(&mut store, std::mem::take(&mut batch), &mut in_commit);
                }
            }
        }
        stitcher.finish();
        while let Some(rec) = stitcher.pop() {
            batch.add_message(&rec);
            messages += 1;
        }
        batch.set_checkpoint(&source, "{\"done\":true}");
        commit(&mut store, batch, &mut in_commit);
        let total = t0.elapsed();
        let st = store.stats().expect("stats");
        println!(
            "ingested {n} lines and {messages} message records into {} day files in {:.2} s",
            st.days.len(),
            total.as_secs_f64()
        );
        println!(
            "  end to end (frame + parse + stitch + store): {:>9.0} events/s",
            n as f64 / total.as_secs_f64()
        );
        println!(
            "  store only (time inside commit):             {:>9.0} events/s",
            n as f64 / in_commit.as_secs_f64()
        );
        println!(
            "  size while open {:.1} MB ({:.1} bytes/event, WAL files included)",
            st.total_bytes as f64 / 1e6,
            st.total_bytes as f64 / n as f64,
        );
        drop(store);
        // Closed: WAL files checkpointed and removed.
        let st = Store::open_read_only(&dir)
            .and_then(|s| s.stats())
            .expect("stats");
        println!(
            "  size closed {:.1} MB = {:.1} bytes/event (input {:.1} bytes/line)",
            st.total_bytes as f64 / 1e6,
            st.total_bytes as f64 / n as f64,
            bytes.len() as f64 * f64::from(args.repeat) / n as f64
        );
    }

    let store = Store::open_read_only(&dir).expect("open store read-only");
    let st = store.stats().expect("stats");
    println!(
        "searches over {} lines, {} message records, {} day files (read-only open, as `logs --store`):",
        st.lines,
        st.messages,
        st.days.len()
    );
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery::default();
        f(&mut q);
        q
    };
    let sender = q(&|q| q.sender = Some("postmaster@mailer-service.de".into()));
    time(
        "search_messages sender=postmaster@mailer-service.de",
        || store.search_messages(&sender, usize::MAX).expect("search"),
        Vec::len,
    );
    let domain = q(&|q| q.sender = Some("@gmx.de".into()));
    time(
        "search_messages sender=@gmx.de",
        || store.search_messages(&domain, usize::MAX).expect("search"),
        Vec::len,
    );
    let rcpt = q(&|q| q.recipient = Some("@uhu-banane.net".into()));
    time(
        "search_messages recipient=@uhu-banane.net (limit 100)",
        || store.search_messages(&rcpt, 100).expect("search"),
        Vec::len,
    );
    let user = q(&|q| q.sasl_user = Some("vmail@uhu-banane.net".into()));
    time(
        "search_messages sasl_user=vmail@uhu-banane.net",
        || store.search_messages(&user, usize::MAX).expect("search"),
        Vec::len,
    );
    let status = q(&|q| q.status = Some(mailwarden_core::search::StatusFilter::Bounced));
    time(
        "search_messages status=bounced (no index: scan)",
        || store.search_messages(&status, usize::MAX).expect("search"),
        Vec::len,
    );
    let ip = q(&|q| q.client_ip = Some("200.123.4.113".into()));
    time(
        "search_lines client_ip=200.123.4.113",
        || store.search_lines(&ip, usize::MAX).expect("search"),
        Vec::len,
    );
    let busy = q(&|q| q.client_ip = Some("185.48.118.128".into()));
    time(
        "search_lines client_ip=185.48.118.128 (limit 1000)",
        || store.search_lines(&busy, 1000).expect("search"),
        Vec::len,
    );
    time(
        "search_lines client_ip=185.48.118.128 (all)",
        || store.search_lines(&busy, usize::MAX).expect("search"),
        Vec::len,
    );
    let prefix = q(&|q| q.client_ip = Some("176.111.".into()));
    time(
        "search_lines client_ip=176.111. (prefix)",
        || store.search_lines(&prefix, usize::MAX).expect("search"),
        Vec::len,
    );
    let rejected = q(&|q| q.status = Some(mailwarden_core::search::StatusFilter::Rejected));
    time(
        "search_lines status=rejected (no index: scan, limit 100)",
        || store.search_lines(&rejected, 100).expect("search"),
        Vec::len,
    );
    drop(store);
    if let Some(t) = tmp
        && args.keep
    {
        let _ = t.keep();
    }
    if args.keep || args.dir.is_some() {
        println!("store kept in {}", dir.display());
    }
}
