//! mailwarden-store: the embedded event store (capability C2, "Keep").
//!
//! Raw lines, their typed events, per-message records and collector
//! checkpoints are kept in SQLite files under one data directory, indexed by
//! sender, recipient, login user, client address, queue id and Message-ID,
//! pruned by age and by size, and searched with exactly the semantics of
//! `mailwarden logs search` on files.
//!
//! # Layout
//!
//! ```text
//! <dir>/lock                      writer lock (flock) with the writer's pid
//! <dir>/meta.sqlite               sources, batch journal, per-day hints, carried checkpoints,
//!                                 DMARC and TLS reports (schema 2, see [`reports`]),
//!                                 alerts and suppressions (schema 3, see [`alerts`])
//! <dir>/days/2023-03-14.sqlite    one file per UTC day
//! ```
//!
//! One file per day makes retention a file deletion. Every file has
//! `PRAGMA user_version` = its schema version and is migrated on open by the
//! writer; a file from a newer mailwarden is refused ("upgrade mailwarden").
//! See [`schema`] for the tables.
//!
//! # What a line costs
//!
//! A `lines` row holds the raw line once; host, program and message are
//! positions in it (see [`batch`]), plus event time, receive time, pid,
//! severity and codes. Indexed values go to a `keys` table (tag + normalised
//! value, row id) that only has entries for values present — the
//! equivalent of partial indexes — and stores each value once. There is no
//! per-line time index: the day file is the coarse time index, and each
//! batch records its row range with the minimum and maximum time it holds.
//!
//! # Batches, checkpoints and crashes
//!
//! [`Store::commit`] writes a [`Batch`] as follows (one writer; the lock
//! guarantees it):
//!
//! 1. meta.sqlite, one transaction: new sources, the **journal** entry
//!    `(seq, days)` of this batch (replacing the previous one), and per-day
//!    hints. `seq` grows by one per batch and is never reused.
//! 2. each day file the batch touches, oldest first, one transaction each:
//!    its lines, keys, records, and a `batches` row `(seq, row ranges, ...)`.
//!    The **newest** day's transaction comes last, is marked `final`, and also
//!    upserts the batch's checkpoints with `seq`.
//!
//! A batch is complete exactly when its final transaction has committed.
//! Every transaction is `synchronous = FULL` (in WAL mode), so a day
//! transaction is on disk before the next one starts, and a complete batch
//! implies all its days are complete — also across a power loss. If the
//! process dies in between, the next [`Store::open`] finds the journal entry
//! without its final row and deletes the batch's rows from every day it lists
//! (by row range: row ids only grow within a file). Readers meanwhile read
//! each file only up to the last complete batch's rows, so they never see part
//! of a batch.
//!
//! Hence data and checkpoints are atomic together across files: after a
//! crash a collector resumes from the checkpoint of the last complete batch,
//! and exactly the lines after it are missing — re-ingesting them cannot
//! store anything twice. (The scheme relies on callers putting a source's
//! checkpoint in the batch that holds the lines it covers; this is the
//! at-least-once → exactly-once step. A content key such as
//! `UNIQUE(source, offset)` was not used: the line's offset is not part of
//! the API and would cost bytes on every row.)
//!
//! `checkpoints()` returns, per source, the checkpoint with the highest
//! `seq` over all day files and meta.sqlite; before retention deletes a day,
//! the latest checkpoints are copied to meta.sqlite.
//!
//! On `SQLITE_FULL` the commit returns [`StoreError::DiskFull`], removes the
//! rows already written for the batch, and the caller keeps its checkpoint.
//!
//! # Searches
//!
//! See [`query`]: indexed criteria select candidates, every candidate is
//! confirmed with the core's matcher, so results equal file searches.
//!
//! # Benchmark
//!
//! ```text
//! cargo run --release -p mailwarden-store --example ingest_bench -- bench/data/mail.10x.log --repeat 15
//! ```
//!
//! ingests the log (repeated with shifted dates), then prints events/s,
//! bytes/event and search timings; see the crate's README.md.

pub mod alerts;
pub mod batch;
mod day;
pub mod error;
mod keys;
mod lock;
pub mod query;
pub mod reports;
pub mod schema;
pub mod store;

pub use alerts::{
    AlertCounts, AlertError, AlertQuery, AlertSource, AlertState, AlertStore, RecordOutcome, RecordPolicy,
    Recorded, StoredAlert, Suppression,
};
pub use batch::Batch;
pub use error::StoreError;
pub use query::{LineCursor, ReplayLine, StoredLine};
pub use reports::{DmarcReportWriter, ReportQuery, StoredDmarcReport, StoredTlsReport};
pub use schema::{DAY_SCHEMA_VERSION, META_SCHEMA_VERSION};
pub use store::{
    CommitStats, DayStats, RemovalReason, RemovedDay, RetentionReport, Store, StoreConfig, StoreStats,
};

#[cfg(test)]
mod tests;
