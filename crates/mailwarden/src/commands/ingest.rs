//! `mailwarden ingest`: read sources once into the store, through the same
//! engine as `serve`.
//!
//! Files are identified by their content (a hash of their first kilobyte,
//! decompressed), not their name: after `mail.log` became `mail.log.1` and
//! then `mail.log.2.gz`, ingesting it again continues where the last ingest
//! stopped instead of storing it twice.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use mailwarden_core::framing::Format;
use mailwarden_io::collect::{Checkpoint, SourceRecord, docker, fnv1a, redis};
use mailwarden_io::input::{InputSource, LineReader, open_input};
use mailwarden_io::mailcow::{MailcowConf, find_install};
use mailwarden_io::pipeline::{now, timestamp_of};
use mailwarden_store::{Store, StoreConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::IngestArgs;
use crate::config::default_data_dir;
use crate::engine::{Engine, EngineConfig, EngineStatus};

const HEAD: usize = 1024;

/// `mailwarden ingest`.
pub fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() && args.docker_data_root.is_none() && !args.mailcow_redis {
        anyhow::bail!("nothing to ingest: name log files, --docker-data-root DIR, or --mailcow-redis");
    }
    let data_dir = args.store.data_dir.clone().unwrap_or_else(default_data_dir);
    let store = Store::open(StoreConfig::new(&data_dir))?;
    let zone = crate::commands::inputs::zone(args.timezone.as_deref())?;
    let status = Arc::new(EngineStatus::default());
    let engine = Engine::new(
        store,
        EngineConfig {
            zone,
            ..EngineConfig::default()
        },
        status.clone(),
    )?;
    let resume = engine.checkpoints()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let failed = runtime.block_on(async move {
        let (tx, rx) = mpsc::channel::<SourceRecord>(16_384);
        let token = CancellationToken::new();
        let engine_task = tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(engine.run(rx, CancellationToken::new())))
        });
        let mut failed = false;
        for f in &args.files {
            let (tx, resume) = (tx.clone(), resume.clone());
            let (path, fmt, hint) = (f.clone(), args.format, args.program.clone());
            let res = tokio::task::spawn_blocking(move || ingest_file(&path, fmt, hint, &resume, &tx)).await;
            match res {
                Ok(Ok(n)) => eprintln!("mailwarden: {}: {n} new lines", f.display()),
                Ok(Err(e)) => {
                    eprintln!("mailwarden: {e:#}");
                    failed = true;
                }
                Err(e) => {
                    eprintln!("mailwarden: {}: {e}", f.display());
                    failed = true;
                }
            }
        }
        if let Some(root) = &args.docker_data_root {
            match ingest_docker_root(
                root.clone(),
                args.project.clone(),
                args.mailcow_dir.clone(),
                resume.clone(),
                tx.clone(),
            )
            .await
            {
                Ok(n) => eprintln!(
                    "mailwarden: {}: {n} new lines from container logs",
                    root.display()
                ),
                Err(e) => {
                    eprintln!("mailwarden: {e:#}");
                    failed = true;
                }
            }
        }
        if args.mailcow_redis {
            match ingest_redis_once(args.mailcow_dir.as_deref(), &resume, &tx, &token).await {
                Ok(n) => eprintln!("mailwarden: Redis lists: {n} new entries"),
                Err(e) => {
                    eprintln!("mailwarden: {e:#}");
                    failed = true;
                }
            }
        }
        drop(tx);
        let _ = engine_task.await;
        failed
    });
    let lines = status.lines.load(std::sync::atomic::Ordering::Relaxed);
    let unparsed = status.unparsed.load(std::sync::atomic::Ordering::Relaxed);
    let messages = status.messages.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "mailwarden: stored {lines} lines ({unparsed} unparsed) and {messages} message records in {}",
        data_dir.display()
    );
    if let Ok(d) = status.detail.lock()
        && let Some(e) = &d.last_error
    {
        eprintln!("mailwarden: store error: {e}");
        return Ok(ExitCode::from(2));
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The content key of a file: the hash of its first kilobyte, decompressed.
fn content_key(path: &Path) -> anyhow::Result<(String, u64, u32)> {
    let mut opened = open_input(&InputSource::File(path.to_owned()))?;
    let mut head = Vec::with_capacity(HEAD);
    (&mut opened.reader).take(HEAD as u64).read_to_end(&mut head)?;
    let h = fnv1a(&head);
    Ok((format!("ingest:{h:016x}"), h, head.len() as u32))
}

/// Reads one file into the engine, skipping what a previous ingest of the
/// same content stored. Returns the number of new lines.
fn ingest_file(
    path: &Path,
    format: Format,
    hint: Option<String>,
    resume: &std::collections::HashMap<String, Checkpoint>,
    tx: &mpsc::Sender<SourceRecord>,
) -> anyhow::Result<u64> {
    let (key, head_hash, head_len) = content_key(path)?;
    let skip = match resume.get(&key) {
        Some(Checkpoint::File { offset, .. }) => *offset,
        _ => 0,
    };
    let mut opened = open_input(&InputSource::File(path.to_path_buf()))?;
    let received = opened.modified.map(timestamp_of).unwrap_or_else(now);
    // Skip what is already stored (the offset is in decompressed bytes).
    std::io::copy(&mut (&mut opened.reader).take(skip), &mut std::io::sink())
        .with_context(|| format!("{}: cannot skip to {skip}", path.display()))?;
    let source: Arc<str> = Arc::from(key.as_str());
    let hint: Option<Arc<str>> = hint.map(Arc::from);
    let mut reader = LineReader::new(&mut opened.reader, 65_536);
    let mut offset = skip;
    let mut n = 0;
    loop {
        let next = reader
            .next_line()
            .with_context(|| format!("{}: read error after {n} new lines", path.display()))?;
        let Some((bytes, info)) = next else { break };
        offset += info.consumed as u64;
        let rec = SourceRecord {
            source: source.clone(),
            line: String::from_utf8_lossy(bytes).into_owned(),
            truncated: info.truncated,
            format,
            program_hint: hint.clone(),
            received,
            checkpoint: Checkpoint::File {
                dev: 0,
                inode: 0,
                head_hash,
                head_len,
                offset,
            },
        };
        if tx.blocking_send(rec).is_err() {
            anyhow::bail!("the store stopped accepting lines");
        }
        n += 1;
    }
    Ok(n)
}

/// Reads every matching container's json-file logs straight from a Docker
/// data root (works while the engine is down). The project defaults to the
/// Mailcow installation's, else every container.
async fn ingest_docker_root(
    root: PathBuf,
    project: Option<String>,
    mailcow_dir: Option<PathBuf>,
    resume: std::collections::HashMap<String, Checkpoint>,
    tx: mpsc::Sender<SourceRecord>,
) -> anyhow::Result<u64> {
    let project = match project {
        Some(p) if p == "*" => None,
        Some(p) => Some(p),
        None => find_install(mailcow_dir.as_deref())
            .and_then(|d| MailcowConf::load(&d).ok())
            .map(|c| c.compose_project()),
    };
    let resume: std::collections::BTreeMap<String, Checkpoint> = resume.into_iter().collect();
    tokio::task::spawn_blocking(move || {
        let mut stopped = false;
        let summary = docker::read_data_root(&root, project.as_deref(), &resume, 65_536, &mut |rec| {
            stopped = tx.blocking_send(rec).is_err();
            !stopped
        })
        .with_context(|| format!("reading container logs under {}", root.display()))?;
        if stopped {
            anyhow::bail!("the store stopped accepting lines");
        }
        for e in &summary.errors {
            eprintln!("mailwarden: {e}");
        }
        if summary.bad_lines > 0 {
            eprintln!(
                "mailwarden: {}: {} lines were not Docker json-file records (kept as unparsed)",
                root.display(),
                summary.bad_lines
            );
        }
        eprintln!(
            "mailwarden: {}: {} containers, {} log files, {} lines already stored",
            root.display(),
            summary.containers,
            summary.files,
            summary.skipped
        );
        Ok(summary.lines)
    })
    .await?
}

/// Reads Mailcow's Redis lists once (for `ingest --mailcow-redis`): runs the
/// collector until it has polled every list once, then stops it.
async fn ingest_redis_once(
    mailcow_dir: Option<&Path>,
    resume: &std::collections::HashMap<String, Checkpoint>,
    tx: &mpsc::Sender<SourceRecord>,
    _token: &CancellationToken,
) -> anyhow::Result<u64> {
    let dir = find_install(mailcow_dir).ok_or_else(|| {
        anyhow::anyhow!("no Mailcow installation found (mailcow.conf); pass --mailcow-dir DIR")
    })?;
    let conf = MailcowConf::load(&dir)?;
    let cfg = redis::RedisConfig::from_mailcow(&conf)?;
    let stats = Arc::new(redis::RedisStats::default());
    let token = CancellationToken::new();
    let resume: BTreeMap<String, Checkpoint> = resume.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let task = tokio::spawn(redis::run(cfg, resume, tx.clone(), stats.clone(), token.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = stats.snapshot();
        // Two completed polls: the second starts after the first has read
        // everything, so all that was in the lists at the start is read.
        if s.polls >= 2 || task.is_finished() || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    token.cancel();
    match task.await {
        Ok(Ok(())) => Ok(stats.snapshot().entries),
        Ok(Err(e)) => Err(anyhow::anyhow!("Redis: {e}")),
        Err(e) => Err(anyhow::anyhow!("Redis task: {e}")),
    }
}
