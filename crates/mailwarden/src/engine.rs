//! The ingest engine behind `serve` and `ingest`: source records from the
//! collectors are framed and parsed once, stored in batches together with
//! the collectors' checkpoints, and stitched into message records that are
//! stored with the line that completed them.
//!
//! Durability: a batch (lines, message records, checkpoints) is one commit
//! per day file, the checkpoints in the last one; a record is acknowledged to
//! no one before its batch commits. After a crash the collectors resume from
//! the stored checkpoints, and the store ignores lines it already holds, so
//! nothing is lost and nothing is stored twice. When a commit fails (disk
//! full, store locked) the batch is kept and retried while the channel fills
//! and the collectors wait: backpressure instead of loss.
//!
//! The stitcher's open messages are not persisted; on start the engine
//! replays the last horizon of stored lines through a fresh stitcher (3
//! million lines a second) and drops what that replay completes, since those
//! records were stored when they completed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailwarden_core::event::{Position, UnparsedReason};
use mailwarden_core::framing::{Framer, FramerConfig};
use mailwarden_core::parse::{parse_framed, unparsed_event};
use mailwarden_core::stitch::{StitchConfig, Stitcher};
use mailwarden_core::time::{TimeContext, Timestamp};
use mailwarden_io::collect::{Checkpoint, SourceRecord};
use mailwarden_io::pipeline::now;
use mailwarden_store::{Batch, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Lines per batch before a commit.
    pub batch_lines: usize,
    /// Longest time a line waits for its batch to commit.
    pub flush_interval: Duration,
    /// Zone of zone-less timestamps.
    pub zone: jiff::tz::TimeZone,
    /// Stitcher limits.
    pub stitch: StitchConfig,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            batch_lines: 20_000,
            flush_interval: Duration::from_secs(1),
            zone: jiff::tz::TimeZone::UTC,
            stitch: StitchConfig::default(),
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// Counters of one source, for `status` and metrics.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Lines stored.
    pub lines: u64,
    /// Of which unparsed.
    pub unparsed: u64,
    /// Event time of the newest stored line.
    pub last_event: Option<Timestamp>,
    /// When the newest stored line was received.
    pub last_received: Option<Timestamp>,
    /// The last committed checkpoint.
    pub checkpoint: Option<Checkpoint>,
}

/// What the engine reports about itself.
#[derive(Debug, Default)]
pub struct EngineStatus {
    /// Lines stored since start.
    pub lines: AtomicU64,
    /// Unparsed lines stored since start.
    pub unparsed: AtomicU64,
    /// Message records stored since start.
    pub messages: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Commit failures (each retried).
    pub commit_errors: AtomicU64,
    /// Per-source details and the last error.
    pub detail: std::sync::Mutex<EngineDetail>,
}

/// The non-atomic part of [`EngineStatus`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineDetail {
    /// Per source.
    pub sources: std::collections::BTreeMap<String, SourceStatus>,
    /// The last store error, if any.
    pub last_error: Option<String>,
    /// Lines waiting in the current batch.
    pub pending: usize,
}

struct Pending {
    batch: Batch,
    lines: usize,
    checkpoints: HashMap<Arc<str>, Checkpoint>,
    touched: HashMap<Arc<str>, SourceStatus>,
    opened: Instant,
}

/// The engine; run it on a thread of its own (SQLite calls block).
pub struct Engine {
    store: Store,
    cfg: EngineConfig,
    framers: HashMap<Arc<str>, Framer>,
    source_ids: HashMap<Arc<str>, u32>,
    seq: u64,
    stitcher: Stitcher,
    status: Arc<EngineStatus>,
    /// Live detection, when enabled.
    detector: Option<crate::alerting::Detector>,
}

impl Engine {
    /// An engine writing to `store`; rebuilds the stitcher's open messages from
    /// the last horizon of stored lines.
    pub fn new(store: Store, cfg: EngineConfig, status: Arc<EngineStatus>) -> Result<Engine, StoreError> {
        let mut stitcher = Stitcher::new(cfg.stitch.clone());
        let since = now().plus_seconds(-cfg.stitch.horizon_secs);
        store.replay(Some(since), None, |line| {
            let ev = line.event();
            stitcher.feed(line.position, line.raw, &ev);
            while stitcher.pop().is_some() {}
        })?;
        Ok(Engine {
            store,
            cfg,
            framers: HashMap::new(),
            source_ids: HashMap::new(),
            seq: 0,
            stitcher,
            status,
            detector: None,
        })
    }

    /// Runs the detection rules on every line and message from now on,
    /// after rebuilding their state from the last `warmup_secs` of stored
    /// lines.
    pub fn with_detector(
        mut self,
        mut detector: crate::alerting::Detector,
        warmup_secs: i64,
    ) -> Result<Engine, StoreError> {
        if warmup_secs > 0 {
            let lines = detector.warm_up(&self.store, now().plus_seconds(-warmup_secs))?;
            tracing::info!("detection: rebuilt the rules' state from {lines} stored lines");
        }
        self.detector = Some(detector);
        Ok(self)
    }

    /// The checkpoints to resume the collectors from.
    pub fn checkpoints(&self) -> Result<HashMap<String, Checkpoint>, StoreError> {
        Ok(self
            .store
            .checkpoints()?
            .into_iter()
            .filter_map(|(k, v)| match serde_json::from_str(&v) {
                Ok(c) => Some((k, c)),
                Err(e) => {
                    // The source is read from its start again: duplicates,
                    // never a loss. Say so.
                    tracing::warn!(
                        "unreadable checkpoint of {k} ({e}): {v}; reading that source from its start"
                    );
                    None
                }
            })
            .collect())
    }

    fn new_pending(&self) -> Pending {
        Pending {
            batch: self.store.batch(),
            lines: 0,
            checkpoints: HashMap::new(),
            touched: HashMap::new(),
            opened: Instant::now(),
        }
    }

    /// Frames, parses and stitches one record into the pending batch.
    fn add(&mut self, p: &mut Pending, rec: SourceRecord) {
        let zone = self.cfg.zone.clone();
        let framer = self.framers.entry(rec.source.clone()).or_insert_with(|| {
            Framer::new(FramerConfig {
                format: rec.format,
                program_hint: rec.program_hint.as_deref().map(str::to_owned),
                time: TimeContext {
                    reference: rec.received,
                    zone,
                },
            })
        });
        let next_id = self.source_ids.len() as u32;
        let sid = *self.source_ids.entry(rec.source.clone()).or_insert(next_id);
        if sid == next_id
            && let Some(d) = &mut self.detector
        {
            d.name_source(sid, &rec.source);
        }
        self.seq += 1;
        let pos = Position {
            source: sid,
            line: self.seq,
        };
        let st = p.touched.entry(rec.source.clone()).or_default();
        st.lines += 1;
        st.last_received = Some(rec.received);
        if rec.truncated {
            let ev = unparsed_event(UnparsedReason::TooLong);
            p.batch.add_line(&rec.source, rec.received, &rec.line, None, &ev);
            st.unparsed += 1;
        } else {
            match framer.frame(&rec.line) {
                Ok(framed) => {
                    let ev = parse_framed(&framed);
                    p.batch
                        .add_line(&rec.source, rec.received, &rec.line, Some(&framed), &ev);
                    if ev.kind.is_unparsed() {
                        st.unparsed += 1;
                    }
                    if ev.ts.is_some() {
                        st.last_event = ev.ts;
                    }
                    self.stitcher.feed(pos, &rec.line, &ev);
                    if let Some(d) = &mut self.detector {
                        d.event(pos, &rec.line, &ev);
                    }
                }
                Err(reason) => {
                    let ev = unparsed_event(reason);
                    p.batch.add_line(&rec.source, rec.received, &rec.line, None, &ev);
                    st.unparsed += 1;
                }
            }
        }
        while let Some(m) = self.stitcher.pop() {
            p.batch.add_message(&m);
            if let Some(d) = &mut self.detector {
                d.record(&m);
            }
        }
        if rec.checkpoint != Checkpoint::None {
            p.checkpoints.insert(rec.source, rec.checkpoint);
        }
        p.lines += 1;
    }

    /// Commits the pending batch; on failure keeps it for a retry.
    fn flush(&mut self, p: &mut Pending) -> bool {
        if p.lines == 0 && p.checkpoints.is_empty() {
            return true;
        }
        for (src, cp) in &p.checkpoints {
            if let Ok(json) = serde_json::to_string(cp) {
                p.batch.set_checkpoint(src, &json);
            }
        }
        let messages = p.batch.messages() as u64;
        match self.store.commit(&p.batch) {
            Ok(_) => {
                p.batch = self.store.batch();
                // The lines the alerts cite are stored now.
                if let Some(d) = &mut self.detector {
                    d.drain();
                }
                let s = &self.status;
                s.lines.fetch_add(p.lines as u64, Ordering::Relaxed);
                s.messages.fetch_add(messages, Ordering::Relaxed);
                s.batches.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut d) = s.detail.lock() {
                    for (src, t) in p.touched.drain() {
                        let e = d.sources.entry(src.to_string()).or_default();
                        e.lines += t.lines;
                        e.unparsed += t.unparsed;
                        s.unparsed.fetch_add(t.unparsed, Ordering::Relaxed);
                        if t.last_event.is_some() {
                            e.last_event = t.last_event;
                        }
                        e.last_received = t.last_received.or(e.last_received);
                    }
                    for (src, cp) in p.checkpoints.drain() {
                        d.sources.entry(src.to_string()).or_default().checkpoint = Some(cp);
                    }
                    d.pending = 0;
                }
                p.lines = 0;
                p.opened = Instant::now();
                true
            }
            Err(e) => {
                tracing::error!("store commit failed, will retry: {e}");
                self.status.commit_errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut d) = self.status.detail.lock() {
                    d.last_error = Some(e.to_string());
                    d.pending = p.lines;
                }
                false
            }
        }
    }

    /// Runs until `shutdown`, then drains what is already queued and commits.
    pub async fn run(mut self, mut rx: mpsc::Receiver<SourceRecord>, shutdown: CancellationToken) {
        let mut p = self.new_pending();
        let mut tick = tokio::time::interval(self.cfg.flush_interval.min(Duration::from_millis(250)));
        let mut last_retention = Instant::now() - self.cfg.retention_interval;
        let mut backoff = Duration::from_millis(200);
        loop {
            let full = p.lines >= self.cfg.batch_lines;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                rec = rx.recv(), if !full => match rec {
                    Some(rec) => {
                        self.add(&mut p, rec);
                        if p.lines >= self.cfg.batch_lines && !self.flush(&mut p) {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if (full || p.opened.elapsed() >= self.cfg.flush_interval) && !self.flush(&mut p) {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    } else {
                        backoff = Duration::from_millis(200);
                    }
                    if last_retention.elapsed() >= self.cfg.retention_interval {
                        last_retention = Instant::now();
                        match self.store.apply_retention(now()) {
                            Ok(r) => tracing::info!("retention: {r:?}"),
                            Err(e) => tracing::warn!("retention failed: {e}"),
                        }
                    }
                }
            }
        }
        // Drain what the collectors already handed over, then commit.
        while let Ok(rec) = rx.try_recv() {
            self.add(&mut p, rec);
            if p.lines >= self.cfg.batch_lines {
                self.flush(&mut p);
            }
        }
        for _ in 0..5 {
            if self.flush(&mut p) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::error!(
            "could not commit the last {} lines before exit; they will be read again",
            p.lines
        );
    }
}
