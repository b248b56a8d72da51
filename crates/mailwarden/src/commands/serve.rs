//! `mailwarden serve`: the long-running keeper. Resolves the sources (config
//! file and Mailcow auto-detection), starts the collectors on a tokio runtime,
//! runs the ingest engine on a thread of its own, forwards, reports status and
//! metrics, and shuts down cleanly on SIGTERM/Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mailwarden_core::framing::Format;
use mailwarden_io::collect::{Checkpoint, SourceRecord, docker, file, redis, syslog};
use mailwarden_io::forward;
use mailwarden_io::mailcow::{MailcowConf, find_install};
use mailwarden_io::pipeline::now;
use mailwarden_store::{Store, StoreConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::{Config, default_data_dir};
use crate::engine::{Engine, EngineConfig, EngineStatus};
use crate::forward_source::StoreForwardSource;
use crate::status::{CollectorBoard, CollectorStatus, status_path, write_loop};

/// Channel capacity between collectors and the engine: enough to absorb a
/// burst, small enough that a stalled store stops the collectors quickly.
const CHANNEL: usize = 16_384;
/// Alerts waiting for the alert task (beyond it they are dropped and counted).
const ALERT_CHANNEL: usize = 4096;

/// This machine's name, for alert notices.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Everything `serve` will run, resolved from flags, config and detection.
pub struct Plan {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Zone of zone-less stamps.
    pub zone: jiff::tz::TimeZone,
    /// Retention.
    pub retention_days: u32,
    /// Size bound.
    pub max_bytes: Option<u64>,
    /// Followed files.
    pub files: Option<file::FileConfig>,
    /// Redis lists.
    pub redis: Option<redis::RedisConfig>,
    /// Docker containers.
    pub docker: Option<docker::DockerConfig>,
    /// Syslog listener.
    pub syslog: Option<syslog::ListenerConfig>,
    /// Forwarder.
    pub forward: Option<forward::ForwardConfig>,
    /// Metrics address.
    pub metrics: Option<std::net::SocketAddr>,
    /// Live detection, unless off.
    pub detect: Option<crate::alerting::DetectPlan>,
    /// The alert sinks.
    pub notifier: Arc<mailwarden_io::notify::Notifier>,
    /// How repeats of an alert are merged.
    pub alert_policy: mailwarden_store::RecordPolicy,
    /// What was detected, for the start-up message.
    pub notes: Vec<String>,
}

/// Resolves the plan.
pub fn plan(args: &ServeArgs) -> anyhow::Result<Plan> {
    let cfg = match (&args.config, &args.config_if_exists) {
        (Some(p), _) => Config::load(p)?,
        (None, Some(p)) if p.exists() => Config::load(p)?,
        _ => Config::default(),
    };
    let data_dir = args
        .store
        .data_dir
        .clone()
        .or(cfg.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let zone = crate::commands::inputs::zone(cfg.timezone.as_deref())?;
    let mut notes = Vec::new();

    // Mailcow: explicit directory, config, or the default location.
    let mailcow_wanted = !args.no_mailcow && cfg.mailcow.enabled != Some(false);
    let mailcow_dir = args.mailcow_dir.clone().or(cfg.mailcow.dir.clone());
    let mailcow = if mailcow_wanted {
        match find_install(mailcow_dir.as_deref()) {
            Some(dir) => {
                let conf = MailcowConf::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
                notes.push(format!(
                    "Mailcow at {} (project {})",
                    dir.display(),
                    conf.compose_project()
                ));
                Some(conf)
            }
            None if mailcow_dir.is_some() => {
                bail!(
                    "no Mailcow installation (mailcow.conf) in {}; fix --mailcow-dir or [mailcow] dir",
                    mailcow_dir.unwrap_or_default().display()
                )
            }
            None => None,
        }
    } else {
        None
    };

    // Files: configured ones; else the system log when nothing else is collected.
    let mut patterns = Vec::new();
    for f in &cfg.files {
        let mut p = file::FilePattern::new(f.path.clone());
        if let Some(fmt) = &f.format {
            p.format = fmt.parse::<Format>().map_err(|e| anyhow::anyhow!(e))?;
        }
        p.program_hint = f.program.clone();
        patterns.push(p);
    }
    if patterns.is_empty()
        && mailcow.is_none()
        && cfg.docker.is_none()
        && cfg.redis.is_none()
        && cfg.syslog.is_none()
    {
        for p in ["/var/log/mail.log", "/var/log/maillog"] {
            if Path::new(p).is_file() {
                notes.push(format!("following {p}"));
                patterns.push(file::FilePattern::new(p));
                break;
            }
        }
    }
    let files = (!patterns.is_empty()).then(|| file::FileConfig {
        patterns,
        ..file::FileConfig::new(Vec::<String>::new())
    });

    let redis = match (&cfg.redis, &mailcow) {
        (Some(r), conf) => {
            let mut rc = match conf {
                Some(c) => redis::RedisConfig::from_mailcow(c)?,
                None => redis::RedisConfig::default(),
            };
            if let Some(h) = &r.host {
                rc.host = h.clone();
            }
            if let Some(p) = r.port {
                rc.port = p;
            }
            if r.password.is_some() {
                rc.password = r.password.clone();
            }
            if let Some(lists) = &r.lists {
                rc.lists = lists.iter().map(|l| redis::ListSpec::new(l, None)).collect();
            }
            Some(rc)
        }
        (None, Some(c)) => Some(redis::RedisConfig::from_mailcow(c)?),
        (None, None) => None,
    };

    let docker = match (&cfg.docker, &mailcow) {
        (None, None) => None,
        (d, conf) => {
            let mut dc = docker::DockerConfig::default();
            if let Some(c) = conf {
                dc.project = Some(c.compose_project());
            }
            if let Some(d) = d {
                if let Some(s) = &d.socket {
                    dc.socket = s.clone();
                }
                if let Some(p) = &d.project {
                    dc.project = Some(p.clone());
                }
                if let Some(r) = &d.data_root {
                    dc.data_root = r.clone();
                }
            }
            Some(dc)
        }
    };

    let syslog = cfg
        .syslog
        .as_ref()
        .map(|s| -> anyhow::Result<syslog::ListenerConfig> {
            let mut lc = syslog::ListenerConfig {
                udp: s.udp.clone(),
                tcp: s.tcp.clone(),
                tls: s
                    .tls
                    .iter()
                    .map(|t| syslog::TlsListen {
                        addr: t.addr,
                        cert_pem: t.cert.clone(),
                        key_pem: t.key.clone(),
                        client_ca_pem: None,
                    })
                    .collect(),
                ..syslog::ListenerConfig::default()
            };
            if let Some(m) = &s.max_frame {
                lc = lc.with_max_frame_bytes(crate::config::parse_size(m)? as usize);
            }
            if let Some(m) = s.max_connections {
                lc.max_connections = m;
            }
            Ok(lc)
        });
    let syslog = syslog.transpose()?;

    let forward = cfg.forward.as_ref().map(|f| {
        let mut fc = forward::ForwardConfig::new(f.target.clone());
        if f.tls {
            let host = f.target.rsplit_once(':').map(|(h, _)| h).unwrap_or(&f.target);
            fc.tls = Some(forward::ForwardTls {
                ca_pem: f
                    .ca
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt")),
                server_name: f
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned()),
                client_cert_pem: f.client_cert.clone(),
                client_key_pem: f.client_key.clone(),
            });
        }
        fc
    });

    let metrics = args.metrics.or(cfg
        .metrics
        .as_ref()
        .map(|m| m.listen.unwrap_or(([127, 0, 0, 1], 9465).into())));

    let detect = if args.no_detect {
        notes.push("detection is off (--no-detect)".to_owned());
        None
    } else {
        crate::alerting::detect_plan(&cfg, mailcow.as_ref(), &mut notes)?
    };
    let notifier = crate::alerting::build_notifier(&cfg.alerts)?;
    if detect.is_some() {
        notes.push(if notifier.is_empty() {
            "alerts are stored (`mailwarden alerts list`); no sink is configured ([alerts] in the config)"
                .to_owned()
        } else {
            format!("alerts are stored and sent to {} sink(s)", notifier.len())
        });
    }
    let alert_policy = mailwarden_store::RecordPolicy {
        dedup_window: Duration::from_secs(
            crate::config::duration("alerts.dedup", cfg.alerts.dedup.as_deref().unwrap_or("1h"))?.max(0)
                as u64,
        ),
        ..mailwarden_store::RecordPolicy::default()
    };

    Ok(Plan {
        data_dir,
        zone,
        retention_days: cfg.retention_days(),
        max_bytes: cfg.max_bytes(),
        files,
        redis,
        docker,
        syslog,
        forward,
        metrics,
        detect,
        notifier: Arc::new(notifier),
        alert_policy,
        notes,
    })
}

/// `mailwarden serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    if plan.files.is_none() && plan.redis.is_none() && plan.docker.is_none() && plan.syslog.is_none() {
        bail!(
            "nothing to collect: no Mailcow installation in /opt/mailcow-dockerized, no /var/log/mail.log, \
             and no sources in a config file; pass --mailcow-dir DIR or --config FILE \
             (see dist/mailwarden.example.toml)"
        );
    }
    let store = Store::open(StoreConfig {
        dir: plan.data_dir.clone(),
        retention_days: Some(plan.retention_days),
        max_bytes: plan.max_bytes,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(plan, store, args.run_for))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(plan: Plan, store: Store, run_for: Option<i64>) -> anyhow::Result<()> {
    for n in &plan.notes {
        eprintln!("mailwarden: {n}");
    }
    eprintln!("mailwarden: store in {}", plan.data_dir.display());
    let shutdown = CancellationToken::new();
    let engine_status = Arc::new(EngineStatus::default());
    let board: CollectorBoard = Arc::default();
    let started = now();

    let mut engine = Engine::new(
        store,
        EngineConfig {
            zone: plan.zone.clone(),
            ..EngineConfig::default()
        },
        engine_status.clone(),
    )?;

    // Detection: the rules run in the ingest engine; the alert task stores
    // and sends what they raise.
    let detect_status = Arc::new(crate::alerting::DetectStatus::default());
    let mut alert_task = None;
    let mut directory_task = None;
    if let Some(dp) = plan.detect {
        // The writer opened (and upgraded) the store above.
        let alerts = Arc::new(mailwarden_store::AlertStore::open(&plan.data_dir)?);
        let (alert_tx, alert_rx) = mpsc::channel(ALERT_CHANNEL);
        let shared = crate::alerting::SharedDirectory::default();
        let mut cfg = dp.cfg;
        if let Some(src) = dp.directory {
            cfg.directory = Some(Arc::new(shared.clone()));
            directory_task = Some(tokio::spawn(crate::alerting::refresh_directory(
                src,
                shared,
                dp.refresh_secs,
                shutdown.clone(),
            )));
        }
        let detector = crate::alerting::Detector::new(cfg, alert_tx, detect_status.clone())?;
        let warm = std::time::Instant::now();
        engine = engine.with_detector(detector, dp.warmup_secs)?;
        eprintln!(
            "mailwarden: detection on ({} stored lines replayed in {:.1} s to rebuild the rules' state)",
            detect_status
                .warmup_lines
                .load(std::sync::atomic::Ordering::Relaxed),
            warm.elapsed().as_secs_f64()
        );
        alert_task = Some(tokio::spawn(crate::alerting::run_alerts(
            alert_rx,
            alerts,
            plan.alert_policy,
            plan.notifier.clone(),
            host_name(),
            plan.retention_days,
        )));
    }
    let resume: BTreeMap<String, Checkpoint> = engine.checkpoints()?.into_iter().collect();
    let (tx, rx) = mpsc::channel::<SourceRecord>(CHANNEL);

    // The engine gets its own thread: SQLite calls block.
    let engine_shutdown = CancellationToken::new();
    let engine_token = engine_shutdown.clone();
    let engine_thread = std::thread::Builder::new()
        .name("mailwarden-ingest".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match rt {
                Ok(rt) => rt.block_on(engine.run(rx, engine_token)),
                Err(e) => tracing::error!("ingest thread: {e}"),
            }
        })
        .context("cannot start the ingest thread")?;

    let mut tasks = JoinSet::new();
    let mut stats_pollers: Vec<Box<dyn Fn() -> (String, CollectorStatus) + Send + Sync>> = Vec::new();

    if let Some(fc) = plan.files.clone() {
        let stats = Arc::new(file::FileStats::default());
        let (tx, tok, resume) = (tx.clone(), shutdown.clone(), resume.clone());
        let s = stats.clone();
        tasks.spawn(async move {
            file::run(fc, resume, tx, s, tok)
                .await
                .map_err(|e| anyhow::anyhow!("files: {e}"))
        });
        stats_pollers.push(Box::new(move || {
            ("files".into(), status_of("file", &stats.snapshot()))
        }));
    }
    if let Some(rc) = plan.redis.clone() {
        let stats = Arc::new(redis::RedisStats::default());
        let (tx, tok, resume) = (tx.clone(), shutdown.clone(), resume.clone());
        let s = stats.clone();
        tasks.spawn(async move {
            redis::run(rc, resume, tx, s, tok)
                .await
                .map_err(|e| anyhow::anyhow!("redis: {e}"))
        });
        stats_pollers.push(Box::new(move || {
            ("redis".into(), status_of("redis", &stats.snapshot()))
        }));
    }
    if let Some(dc) = plan.docker.clone() {
        let stats = Arc::new(docker::DockerStats::default());
        let (tx, tok, resume) = (tx.clone(), shutdown.clone(), resume.clone());
        let s = stats.clone();
        tasks.spawn(async move {
            docker::run(dc, resume, tx, s, tok)
                .await
                .map_err(|e| anyhow::anyhow!("docker: {e}"))
        });
        stats_pollers.push(Box::new(move || {
            ("docker".into(), status_of("docker", &stats.snapshot()))
        }));
    }
    if let Some(lc) = plan.syslog.clone() {
        let stats = Arc::new(syslog::ListenerStats::default());
        let listener = syslog::Listener::bind(lc).await?;
        for a in listener.udp_addrs() {
            eprintln!("mailwarden: syslog on udp {a}");
        }
        for a in listener.tcp_addrs() {
            eprintln!("mailwarden: syslog on tcp {a}");
        }
        for a in listener.tls_addrs() {
            eprintln!("mailwarden: syslog on tls {a}");
        }
        let (tx, tok) = (tx.clone(), shutdown.clone());
        let s = stats.clone();
        tasks.spawn(async move {
            listener
                .run(tx, s, tok)
                .await
                .map_err(|e| anyhow::anyhow!("syslog: {e}"))
        });
        stats_pollers.push(Box::new(move || {
            ("syslog".into(), status_of("syslog", &stats.snapshot()))
        }));
    }
    drop(tx);

    if let Some(fc) = plan.forward.clone() {
        let stats = Arc::new(forward::ForwardStats::default());
        let source = StoreForwardSource::open(&plan.data_dir)?;
        eprintln!("mailwarden: forwarding to {}", fc.addr);
        let tok = shutdown.clone();
        let s = stats.clone();
        tasks.spawn(async move {
            forward::run(fc, source, s, tok)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("forward: {e}"))
        });
        stats_pollers.push(Box::new(move || {
            ("forward".into(), status_of("forward", &stats.snapshot()))
        }));
    }

    {
        let (ds, notifier) = (detect_status.clone(), plan.notifier.clone());
        stats_pollers.push(Box::new(move || {
            ("alerts".into(), crate::alerting::board_status(&ds, &notifier))
        }));
    }

    // Collectors' counters → the board, every second.
    {
        let board = board.clone();
        let tok = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tok.cancelled() => break,
                }
                if let Ok(mut b) = board.lock() {
                    for p in &stats_pollers {
                        let (k, v) = p();
                        b.insert(k, v);
                    }
                }
            }
            Ok(())
        });
    }
    let rate = Arc::new(std::sync::Mutex::new(0.0));
    let status_task = tokio::spawn(write_loop(
        status_path(&plan.data_dir),
        engine_status.clone(),
        board.clone(),
        started,
        Duration::from_secs(2),
        engine_shutdown.clone(),
        rate.clone(),
    ));
    if let Some(addr) = plan.metrics {
        eprintln!("mailwarden: metrics on http://{addr}/metrics");
        let (dir, es, b, r, tok) = (
            plan.data_dir.clone(),
            engine_status.clone(),
            board.clone(),
            rate.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move { crate::status::serve_metrics(addr, dir, es, b, started, r, tok).await });
    }

    // Stop on SIGTERM, Ctrl-C, the test timer, or a collector failing for good.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let timer = async {
        match run_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s.max(0) as u64)).await,
            None => std::future::pending::<()>().await,
        }
    };
    let mut failure = None;
    tokio::select! {
        _ = sigterm.recv() => eprintln!("mailwarden: SIGTERM, flushing and stopping"),
        _ = tokio::signal::ctrl_c() => eprintln!("mailwarden: interrupted, flushing and stopping"),
        _ = timer => {}
        Some(res) = tasks.join_next() => {
            if let Ok(Err(e)) = res {
                failure = Some(e);
            }
        }
    }
    shutdown.cancel();
    while let Some(res) = tokio::time::timeout(Duration::from_secs(20), tasks.join_next())
        .await
        .ok()
        .flatten()
    {
        if let Ok(Err(e)) = res {
            tracing::warn!("{e}");
        }
    }
    // Collectors have stopped sending: let the engine drain and commit.
    engine_shutdown.cancel();
    let _ = tokio::task::spawn_blocking(move || engine_thread.join()).await;
    // The engine dropped its end of the alert channel: the alert task
    // stores and sends what is left, then ends.
    if let Some(t) = directory_task {
        t.abort();
    }
    if let Some(t) = alert_task {
        match tokio::time::timeout(Duration::from_secs(60), t).await {
            Ok(Ok(Err(e))) => tracing::warn!("{e}"),
            Err(_) => tracing::warn!("alerts still being sent after 60 s; stopping anyway"),
            _ => {}
        }
    }
    let _ = status_task.await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A collector's stats snapshot as a status entry (its numeric fields as counters).
fn status_of<T: serde::Serialize>(kind: &str, snap: &T) -> CollectorStatus {
    let mut st = CollectorStatus {
        kind: kind.to_owned(),
        state: "running".to_owned(),
        ..CollectorStatus::default()
    };
    if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(snap) {
        for (k, v) in o {
            match v {
                serde_json::Value::Number(n) => {
                    if let Some(u) = n.as_u64() {
                        st.counters.insert(k, u);
                    }
                }
                serde_json::Value::Bool(b) => {
                    st.counters.insert(k, u64::from(b));
                }
                serde_json::Value::String(s) if k.contains("error") => st.last_error = Some(s),
                serde_json::Value::String(s) if k == "state" || k == "mode" => st.state = s,
                _ => {}
            }
        }
    }
    st
}
