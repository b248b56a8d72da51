//! `mailwarden status`: the last status document `serve` wrote, whether that
//! `serve` is still running, and the store's size, days and oldest data.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use mailwarden_core::escape::escape_for_terminal;
use mailwarden_store::{AlertCounts, AlertStore, Store};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::default_data_dir;
use crate::status::{StatusDoc, status_path};

#[derive(Serialize)]
struct Report {
    data_dir: String,
    serve_running: bool,
    serve: Option<StatusDoc>,
    store: Option<StoreReport>,
    store_error: Option<String>,
    /// Stored alerts per state (`mailwarden alerts`).
    alerts: Option<AlertCounts>,
    alerts_error: Option<String>,
}

#[derive(Serialize)]
struct StoreReport {
    bytes: u64,
    days: usize,
    oldest: Option<String>,
    newest: Option<String>,
    lines: u64,
    unparsed: u64,
    messages: u64,
}

/// Whether a process with this pid exists (procfs).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `mailwarden status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let dir = args.store.data_dir.clone().unwrap_or_else(default_data_dir);
    let doc: Option<StatusDoc> = std::fs::read_to_string(status_path(&dir))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let serve_running = doc
        .as_ref()
        .is_some_and(|d| alive(d.pid) && d.pid != std::process::id());
    let (store, store_error) = match Store::open_read_only(&dir).and_then(|s| s.stats()) {
        Ok(st) => (
            Some(StoreReport {
                bytes: st.total_bytes,
                days: st.days.len(),
                oldest: st.oldest.map(|d| d.to_string()),
                newest: st.newest.map(|d| d.to_string()),
                lines: st.lines,
                unparsed: st.unparsed,
                messages: st.messages,
            }),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let (alerts, alerts_error) = match AlertStore::open_read_only(&dir).and_then(|a| a.counts()) {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = Report {
        data_dir: dir.display().to_string(),
        serve_running,
        serve: doc,
        store,
        store_error,
        alerts,
        alerts_error,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render(&report).as_bytes())?;
    }
    Ok(if report.store.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn render(r: &Report) -> String {
    let e = |s: &str| escape_for_terminal(s).into_owned();
    let mut s = String::new();
    let _ = writeln!(s, "data directory: {}", e(&r.data_dir));
    match &r.store {
        Some(st) => {
            let _ = writeln!(
                s,
                "store: {} in {} day files ({} .. {}), {} lines ({} unparsed), {} message records",
                crate::status::human_size(st.bytes),
                st.days,
                st.oldest.as_deref().unwrap_or("-"),
                st.newest.as_deref().unwrap_or("-"),
                st.lines,
                st.unparsed,
                st.messages
            );
        }
        None => {
            let _ = writeln!(
                s,
                "store: unavailable: {}",
                r.store_error.as_deref().unwrap_or("?")
            );
        }
    }
    match (&r.alerts, &r.store) {
        (Some(c), _) => {
            let _ = writeln!(
                s,
                "alerts: {} open, {} acknowledged, {} suppressed (`mailwarden alerts list`)",
                c.open, c.acknowledged, c.suppressed
            );
        }
        // The store's own error says it already.
        (None, None) => {}
        (None, Some(_)) => {
            let _ = writeln!(
                s,
                "alerts: unavailable: {}",
                e(r.alerts_error.as_deref().unwrap_or("?"))
            );
        }
    }
    let Some(d) = &r.serve else {
        s.push_str(
            "serve: no status written yet (is `mailwarden serve` running with this data directory?)\n",
        );
        return s;
    };
    let state = if r.serve_running { "running" } else { "NOT running" };
    let _ = writeln!(
        s,
        "serve: {state} (pid {}, started {}, updated {})",
        d.pid,
        d.started.map(|t| t.to_string()).unwrap_or_default(),
        d.updated.map(|t| t.to_string()).unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  {} lines stored since start ({} unparsed), {} message records, {:.0} lines/s, {} waiting to commit",
        d.lines, d.unparsed, d.messages, d.lines_per_sec, d.pending
    );
    if d.commit_errors > 0 || d.last_error.is_some() {
        let _ = writeln!(
            s,
            "  store errors: {} (last: {})",
            d.commit_errors,
            e(d.last_error.as_deref().unwrap_or("-"))
        );
    }
    s.push_str("sources:\n");
    let now = d.updated.map(|t| t.unix_micros).unwrap_or(0);
    for (name, src) in &d.sources {
        let lag = src
            .last_received
            .map(|t| format!("{:.0}s ago", (now - t.unix_micros) as f64 / 1e6))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "  {:<48} {:>9} lines {:>7} unparsed  last line {}  newest event {}",
            e(name),
            src.lines,
            src.unparsed,
            lag,
            src.last_event
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    s.push_str("collectors:\n");
    for (name, c) in &d.collectors {
        let counters: Vec<String> = c
            .counters
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "  {:<8} {:<10} {}", e(name), e(&c.state), counters.join(" "));
        if c.kind == "forward" {
            // The store is the spool: what the collector has not acknowledged yet.
            let spool = c.counters.get("lag").copied().unwrap_or(0);
            let up = c.counters.get("connected").copied().unwrap_or(0) == 1;
            let _ = writeln!(
                s,
                "           spool: {spool} lines waiting; collector {}",
                if up { "connected" } else { "NOT connected" }
            );
        }
        if let Some(err) = &c.last_error {
            let _ = writeln!(s, "           last error: {}", e(err));
        }
    }
    s
}
