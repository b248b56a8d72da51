//! What `serve` reports about itself: a status document written atomically to
//! the data directory every few seconds (read by `mailwarden status`, which
//! must work while `serve` runs and after it stopped), and the same figures
//! as Prometheus metrics on an optional loopback HTTP endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mailwarden_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineStatus, SourceStatus};

/// One collector's state as the collector reports it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// `file`, `docker`, `redis`, `syslog`, `forward`.
    pub kind: String,
    /// Running, retrying, stopped…
    pub state: String,
    /// Counters as name → value.
    pub counters: BTreeMap<String, u64>,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// The document `serve` writes and `status` reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusDoc {
    /// mailwarden version.
    pub version: String,
    /// Process id of `serve`.
    pub pid: u32,
    /// When `serve` started.
    pub started: Option<Timestamp>,
    /// When this document was written.
    pub updated: Option<Timestamp>,
    /// Lines stored since start.
    pub lines: u64,
    /// Of which unparsed.
    pub unparsed: u64,
    /// Message records stored since start.
    pub messages: u64,
    /// Batches committed.
    pub batches: u64,
    /// Commit failures (retried).
    pub commit_errors: u64,
    /// Lines per second over the last interval.
    pub lines_per_sec: f64,
    /// Lines waiting for a commit.
    pub pending: usize,
    /// The last store error.
    pub last_error: Option<String>,
    /// Per source: lines, last event, checkpoint.
    pub sources: BTreeMap<String, SourceStatus>,
    /// Per collector.
    pub collectors: BTreeMap<String, CollectorStatus>,
}

/// Collectors publish their state here.
pub type CollectorBoard = Arc<std::sync::Mutex<BTreeMap<String, CollectorStatus>>>;

/// Where the status document lives.
pub fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("status.json")
}

/// Builds the current document.
pub fn snapshot(
    engine: &EngineStatus,
    board: &CollectorBoard,
    started: Timestamp,
    lines_per_sec: f64,
) -> StatusDoc {
    let detail = engine.detail.lock().map(|d| d.clone()).unwrap_or_default();
    StatusDoc {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        started: Some(started),
        updated: Some(mailwarden_io::pipeline::now()),
        lines: engine.lines.load(Ordering::Relaxed),
        unparsed: engine.unparsed.load(Ordering::Relaxed),
        messages: engine.messages.load(Ordering::Relaxed),
        batches: engine.batches.load(Ordering::Relaxed),
        commit_errors: engine.commit_errors.load(Ordering::Relaxed),
        lines_per_sec,
        pending: detail.pending,
        last_error: detail.last_error,
        sources: detail.sources,
        collectors: board.lock().map(|b| b.clone()).unwrap_or_default(),
    }
}

/// Writes `doc` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, doc: &StatusDoc) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, doc).map_err(std::io::Error::from)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

/// Writes the status document every `every` until `shutdown`, and once more at the end.
pub async fn write_loop(
    path: PathBuf,
    engine: Arc<EngineStatus>,
    board: CollectorBoard,
    started: Timestamp,
    every: Duration,
    shutdown: CancellationToken,
    rate: Arc<std::sync::Mutex<f64>>,
) {
    let mut last_lines = engine.lines.load(Ordering::Relaxed);
    let mut last_at = std::time::Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let lines = engine.lines.load(Ordering::Relaxed);
        let secs = last_at.elapsed().as_secs_f64().max(1e-3);
        let lps = (lines.saturating_sub(last_lines)) as f64 / secs;
        last_lines = lines;
        last_at = std::time::Instant::now();
        if let Ok(mut r) = rate.lock() {
            *r = lps;
        }
        let doc = snapshot(&engine, &board, started, lps);
        if let Err(e) = write_atomic(&path, &doc) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
        if stop {
            break;
        }
    }
}

/// Prometheus text exposition of a status document and store figures.
pub fn render_metrics(doc: &StatusDoc, store_bytes: Option<u64>, oldest_day_age_secs: Option<i64>) -> String {
    let mut s = String::with_capacity(4096);
    let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = writeln!(
            s,
            "# HELP mailwarden_{name} {help}\n# TYPE mailwarden_{name} {kind}\nmailwarden_{name} {value}"
        );
    };
    gauge(
        "lines_stored_total",
        "Lines stored since start.",
        "counter",
        doc.lines as f64,
    );
    gauge(
        "lines_unparsed_total",
        "Unparsed lines stored since start.",
        "counter",
        doc.unparsed as f64,
    );
    gauge(
        "messages_stored_total",
        "Message records stored since start.",
        "counter",
        doc.messages as f64,
    );
    gauge(
        "batches_total",
        "Batches committed.",
        "counter",
        doc.batches as f64,
    );
    gauge(
        "commit_errors_total",
        "Store commit failures (retried).",
        "counter",
        doc.commit_errors as f64,
    );
    gauge(
        "lines_per_second",
        "Ingest rate over the last interval.",
        "gauge",
        doc.lines_per_sec,
    );
    gauge(
        "pending_lines",
        "Lines waiting for a commit.",
        "gauge",
        doc.pending as f64,
    );
    if let Some(b) = store_bytes {
        gauge("store_bytes", "Size of the store on disk.", "gauge", b as f64);
    }
    if let Some(a) = oldest_day_age_secs {
        gauge(
            "store_oldest_day_age_seconds",
            "Age of the oldest stored day.",
            "gauge",
            a as f64,
        );
    }
    let _ = writeln!(
        s,
        "# HELP mailwarden_source_lines_total Lines stored per source.\n# TYPE mailwarden_source_lines_total counter"
    );
    for (src, st) in &doc.sources {
        let _ = writeln!(
            s,
            "mailwarden_source_lines_total{{source=\"{}\"}} {}",
            label(src),
            st.lines
        );
    }
    let _ = writeln!(
        s,
        "# HELP mailwarden_source_lag_seconds Seconds since the newest stored line of a source was received.\n# TYPE mailwarden_source_lag_seconds gauge"
    );
    let now = doc.updated.map(|t| t.unix_micros).unwrap_or(0);
    for (src, st) in &doc.sources {
        if let Some(r) = st.last_received {
            let lag = (now - r.unix_micros) as f64 / 1e6;
            let _ = writeln!(
                s,
                "mailwarden_source_lag_seconds{{source=\"{}\"}} {lag}",
                label(src)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP mailwarden_collector_counter Collector counters.\n# TYPE mailwarden_collector_counter counter"
    );
    for (name, c) in &doc.collectors {
        for (k, v) in &c.counters {
            let _ = writeln!(
                s,
                "mailwarden_collector_counter{{collector=\"{}\",counter=\"{}\"}} {v}",
                label(name),
                label(k)
            );
        }
    }
    s
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `GET /metrics` on `addr` until `shutdown`.
pub async fn serve_metrics(
    addr: SocketAddr,
    data_dir: PathBuf,
    engine: Arc<EngineStatus>,
    board: CollectorBoard,
    started: Timestamp,
    rate: Arc<std::sync::Mutex<f64>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use axum::Router;
    use axum::routing::get;
    let handler = move || {
        let engine = engine.clone();
        let board = board.clone();
        let rate = rate.clone();
        let data_dir = data_dir.clone();
        async move {
            let lps = rate.lock().map(|r| *r).unwrap_or(0.0);
            let doc = snapshot(&engine, &board, started, lps);
            let (bytes, age) = store_figures(&data_dir);
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                render_metrics(&doc, bytes, age),
            )
        }
    };
    let app = Router::new().route("/metrics", get(handler));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// Store size and oldest-day age, read from the store's files.
pub fn store_figures(data_dir: &Path) -> (Option<u64>, Option<i64>) {
    match mailwarden_store::Store::open_read_only(data_dir).and_then(|s| s.stats()) {
        Ok(st) => {
            let now = mailwarden_io::pipeline::now().unix_micros / 1_000_000;
            let age = st
                .oldest
                .map(|d| now - mailwarden_core::time::days_from_civil(d.year, d.month, d.day) * 86_400);
            (Some(st.total_bytes), age)
        }
        Err(_) => (None, None),
    }
}

/// Bytes as `12.3 MiB`.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
