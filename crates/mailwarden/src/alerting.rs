//! Live detection in `serve`: the rule engine runs inside the ingest engine
//! on every line as it is parsed and on every message the stitcher
//! finishes; the alerts it raises are handed, after the batch that holds
//! their lines has committed, to the alert task, which stores them (with
//! de-duplication) and sends the new ones to the sinks.
//!
//! Invariants:
//! - The rules see lines in the order the ingest engine stores them, in
//!   event time; nothing here reads the wall clock for a rule's decision.
//! - An alert is handed on only after the lines it cites are committed, so
//!   `alerts show` never cites a line the store does not hold.
//! - A restart rebuilds the rules' windows from the last `warmup` of stored
//!   lines; alerts that warm-up raises again were raised before the restart
//!   and are dropped (an episode still open at the restart stays open and is
//!   merged into its stored alert when it closes).
//! - The hand-over channel is bounded: when the alert task cannot keep up,
//!   alerts are dropped and counted, never blocking ingestion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use mailwarden_core::detect::{self, Alert, DetectConfig, SenderDirectory, SenderStatus};
use mailwarden_core::event::{Event, Position};
use mailwarden_core::stitch::MessageRecord;
use mailwarden_core::time::Timestamp;
use mailwarden_io::directory::Snapshot;
use mailwarden_store::{Store, StoreError};
use tokio::sync::mpsc;

/// Source id the warm-up's lines carry (evidence from stored history).
const STORED: u32 = u32::MAX;

/// One alert handed from the rules to the alert task.
#[derive(Clone, Debug)]
pub struct AlertUpdate {
    /// The alert as it is now.
    pub alert: Alert,
    /// True when the episode just opened (notify), false when it closed
    /// (update the stored alert).
    pub opened: bool,
}

/// Counters of live detection, for `status`.
#[derive(Debug, Default)]
pub struct DetectStatus {
    /// Alerts opened.
    pub opened: AtomicU64,
    /// Alerts closed.
    pub closed: AtomicU64,
    /// Alerts dropped because the alert task was behind.
    pub dropped: AtomicU64,
    /// Lines replayed at start to rebuild the rules' state.
    pub warmup_lines: AtomicU64,
}

/// The directory the `sender-not-mailbox` rule asks, replaced whenever a
/// fresh snapshot has been read. Until the first one arrives the rule
/// judges no sender.
#[derive(Clone, Default)]
pub struct SharedDirectory(Arc<RwLock<Option<Snapshot>>>);

impl SharedDirectory {
    /// Installs a new snapshot.
    pub fn set(&self, snap: Snapshot) {
        if let Ok(mut g) = self.0.write() {
            *g = Some(snap);
        }
    }

    /// Entries in the current snapshot, if there is one.
    pub fn entries(&self) -> Option<usize> {
        self.0.read().ok().and_then(|g| g.as_ref().map(Snapshot::len))
    }
}

impl SenderDirectory for SharedDirectory {
    fn status(&self, address: &str) -> SenderStatus {
        match self.0.read() {
            Ok(g) => g
                .as_ref()
                .map_or(SenderStatus::NotOurs, |s| s.sender_status(address)),
            Err(_) => SenderStatus::NotOurs,
        }
    }
}

/// The rule engine as the ingest engine drives it.
pub struct Detector {
    engine: detect::Engine,
    names: Vec<Arc<str>>,
    tx: mpsc::Sender<AlertUpdate>,
    status: Arc<DetectStatus>,
}

impl Detector {
    /// A detector in live mode; alerts go to `tx`.
    pub fn new(
        cfg: DetectConfig,
        tx: mpsc::Sender<AlertUpdate>,
        status: Arc<DetectStatus>,
    ) -> Result<Detector, detect::ConfigError> {
        Ok(Detector {
            engine: detect::Engine::new(DetectConfig { live: true, ..cfg })?,
            names: Vec::new(),
            tx,
            status,
        })
    }

    /// Rebuilds the rules' state from stored lines since `since`; the
    /// alerts this raises are dropped (see the module docs). Returns the
    /// lines replayed.
    pub fn warm_up(&mut self, store: &Store, since: Timestamp) -> Result<u64, StoreError> {
        let mut stitcher = mailwarden_core::stitch::Stitcher::new(Default::default());
        let mut lines = 0u64;
        store.replay_in_time_order(Some(since), None, |line| {
            let ev = line.event();
            let pos = Position {
                source: STORED,
                line: line.position.line,
            };
            self.engine.feed_event(pos, line.raw, &ev);
            stitcher.feed(pos, line.raw, &ev);
            while let Some(rec) = stitcher.pop() {
                self.engine.feed_record(&rec);
            }
            lines += 1;
            if lines.is_multiple_of(65_536) {
                self.engine.take_opened();
                self.engine.take_alerts();
            }
        })?;
        self.engine.take_opened();
        self.engine.take_alerts();
        self.status.warmup_lines.store(lines, Ordering::Relaxed);
        Ok(lines)
    }

    /// Names the ingest engine's source id `sid` (for evidence).
    pub fn name_source(&mut self, sid: u32, name: &Arc<str>) {
        let i = sid as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, Arc::from(""));
        }
        self.names[i] = name.clone();
    }

    /// One parsed line.
    pub fn event(&mut self, pos: Position, raw: &str, ev: &Event<'_>) {
        self.engine.feed_event(pos, raw, ev);
    }

    /// One finished message.
    pub fn record(&mut self, rec: &MessageRecord) {
        self.engine.feed_record(rec);
    }

    /// Hands the alerts raised so far to the alert task (call after the
    /// lines they cite are committed).
    pub fn drain(&mut self) {
        let opened = self.engine.take_opened();
        let closed = self.engine.take_alerts();
        for (alert, is_open) in opened
            .into_iter()
            .map(|a| (a, true))
            .chain(closed.into_iter().map(|a| (a, false)))
        {
            let counter = if is_open {
                &self.status.opened
            } else {
                &self.status.closed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let alert = self.name_evidence(alert);
            if self
                .tx
                .try_send(AlertUpdate {
                    alert,
                    opened: is_open,
                })
                .is_err()
            {
                let n = self.status.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!("the alert task is behind: {n} alerts dropped so far");
                }
            }
        }
    }

    /// Gives each piece of evidence the name of its source.
    fn name_evidence(&self, mut alert: Alert) -> Alert {
        for e in &mut alert.evidence {
            if e.at.is_some() {
                continue;
            }
            let src = e.position.source;
            e.at = Some(if src == STORED {
                "store (before the restart)".to_owned()
            } else {
                match self.names.get(src as usize) {
                    Some(n) if !n.is_empty() => n.to_string(),
                    _ => format!("source {src}"),
                }
            });
        }
        alert
    }
}

/// What `serve` runs for detection, resolved from the config.
pub struct DetectPlan {
    /// The engine's settings (without the directory, which is shared).
    pub cfg: DetectConfig,
    /// Where the directory snapshot is read from, if anywhere.
    pub directory: Option<mailwarden_io::directory::DirectorySource>,
    /// Seconds between directory reads.
    pub refresh_secs: i64,
    /// Seconds of stored history replayed on start.
    pub warmup_secs: i64,
}

/// Default warm-up: the first-seen rules' learning period, so that a
/// restart does not start their learning over (the store is their memory).
const DEFAULT_WARMUP: &str = "7d";

/// Resolves `[detect]`; `None` when detection is off.
pub fn detect_plan(
    cfg: &crate::config::Config,
    mailcow: Option<&mailwarden_io::mailcow::MailcowConf>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<DetectPlan>> {
    use anyhow::Context;
    use mailwarden_io::directory::{ApiConfig, DbConfig, DirectorySource};

    let d = &cfg.detect;
    if d.enabled == Some(false) {
        notes.push("detection is off ([detect] enabled = false)".to_owned());
        return Ok(None);
    }
    let user_rules = crate::commands::rules::load(&d.rules).context("detect.rules")?;
    if !user_rules.is_empty() {
        notes.push(format!(
            "detection: {} user rule(s) from {}",
            user_rules.len(),
            d.rules
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let all_ids: Vec<String> = detect::RULES
        .iter()
        .map(|r| r.id.to_owned())
        .chain(user_rules.rules().iter().map(|r| r.id.clone()))
        .collect();
    let mut rules_on: Option<Vec<String>> = None;
    if !d.disable.is_empty() {
        for id in &d.disable {
            if !all_ids.contains(id) {
                anyhow::bail!("detect.disable: unknown rule {id:?}; `mailwarden rules list` shows the ids");
            }
        }
        rules_on = Some(all_ids.into_iter().filter(|id| !d.disable.contains(id)).collect());
    }
    // Checked now, so that a typo stops `serve` at start.
    let mut check = detect::Params::default();
    for (k, v) in &d.set {
        check
            .set_from_str(&format!("{k}={v}"))
            .with_context(|| format!("detect.set {k:?}"))?;
    }
    let directory = match d.directory.as_deref() {
        Some("none") => None,
        Some("mailcow-db") | None => match mailcow {
            Some(c) => Some(DirectorySource::MailcowDb(DbConfig::from_mailcow(c)?)),
            None if d.directory.is_some() => {
                anyhow::bail!(
                    "detect.directory = \"mailcow-db\" but no Mailcow installation was found; set [mailcow] dir"
                )
            }
            None => None,
        },
        Some("mailcow-api") => {
            let (Some(url), Some(key_file)) = (&d.api_url, &d.api_key_file) else {
                anyhow::bail!(
                    "detect.directory = \"mailcow-api\" needs detect.api_url and detect.api_key_file"
                );
            };
            let key = std::fs::read_to_string(key_file)
                .with_context(|| format!("reading the Mailcow API key from {}", key_file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            Some(DirectorySource::MailcowApi(ApiConfig {
                url: url.clone(),
                key,
                ca_file: d.api_ca.clone(),
                connect_to: None,
                timeout: std::time::Duration::from_secs(30),
            }))
        }
        Some(path) => Some(DirectorySource::ListFile(path.into())),
    };
    match &directory {
        Some(src) => notes.push(format!(
            "detection: the sender-not-mailbox rule asks {}",
            match src {
                DirectorySource::MailcowDb(c) => format!("Mailcow's database at {}", c.addr()),
                DirectorySource::MailcowApi(c) => format!("Mailcow's API at {}", c.url),
                DirectorySource::ListFile(p) => format!("the address list {}", p.display()),
                DirectorySource::Postfix { .. } => "Postfix's maps".to_owned(),
            }
        )),
        None => notes.push(
            "detection: no address directory, so the sender-not-mailbox rule judges no sender ([detect] directory)"
                .to_owned(),
        ),
    }
    let secs = |key: &str, v: &Option<String>, default: &str| {
        crate::config::duration(key, v.as_deref().unwrap_or(default))
    };
    Ok(Some(DetectPlan {
        cfg: DetectConfig {
            rules: rules_on,
            settings: d.set.clone(),
            our_domains: d.our_domains.clone(),
            honeypot_users: d.honeypot_users.clone().unwrap_or_else(|| {
                detect::DEFAULT_HONEYPOT_USERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            trusted_relays: d.trusted_relays.clone(),
            user_rules,
            ..DetectConfig::default()
        },
        directory,
        refresh_secs: secs("detect.directory_refresh", &d.directory_refresh, "10m")?.max(60),
        warmup_secs: secs("detect.warmup", &d.warmup, DEFAULT_WARMUP)?.max(0),
    }))
}

/// Reads the directory now and then every `refresh_secs`, installing each
/// snapshot; a failed read keeps the previous one and is logged.
pub async fn refresh_directory(
    src: mailwarden_io::directory::DirectorySource,
    shared: SharedDirectory,
    refresh_secs: i64,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(refresh_secs.max(60) as u64));
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        match mailwarden_io::directory::snapshot(&src).await {
            Ok(snap) => {
                if failures > 0 || shared.entries().is_none() {
                    tracing::info!("directory: {} entries from {}", snap.len(), snap.source());
                }
                for s in snap.skipped() {
                    tracing::warn!("directory: skipped {s}");
                }
                failures = 0;
                shared.set(snap);
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(
                    "directory not read (keeping the previous one{}): {e}",
                    if shared.entries().is_none() {
                        ", none yet"
                    } else {
                        ""
                    }
                );
                // A refused Mailcow API key is never asked again.
                if matches!(e, mailwarden_io::directory::DirectoryError::ApiAuth { .. }) {
                    tracing::error!(
                        "the Mailcow API refused the key; the directory will not be asked again until restart"
                    );
                    return Ok(());
                }
            }
        }
    }
}

/// Builds the sinks of `[alerts]`. Secrets are read here, so that a missing
/// file stops `serve` at start rather than at the first alert.
pub fn build_notifier(a: &crate::config::AlertsSection) -> anyhow::Result<mailwarden_io::notify::Notifier> {
    use std::time::Duration;

    use anyhow::Context;
    use mailwarden_io::notify::{
        EmailConfig, EmailSink, JsonSink, Notifier, Secret, Sink, SinkOptions, SmtpSecurity, SyslogConfig,
        SyslogSink, SyslogTransport, WebhookConfig, WebhookSink,
    };

    use crate::config::{duration, severity};

    let mut n = Notifier::new();
    if a.stdout {
        n.add(
            Sink::Json(JsonSink::new(std::io::stdout(), "stdout")),
            SinkOptions::new("stdout").min_severity(detect::AlertSeverity::Informational),
        );
    }
    for (i, w) in a.webhook.iter().enumerate() {
        let key = format!("alerts.webhook[{i}]");
        let mut c = WebhookConfig::new(w.url.clone());
        if let Some(f) = &w.secret_file {
            c.secret = Some(Secret::from_file(f).map_err(|e| anyhow::anyhow!("{key}.secret_file: {e}"))?);
        }
        if let Some(t) = &w.timeout {
            c.request_timeout = Duration::from_secs(duration(&format!("{key}.timeout"), t)?.max(1) as u64);
        }
        if let Some(n) = w.attempts {
            c.max_attempts = n.clamp(1, 20);
        }
        c.extra_roots.extend(w.ca.clone());
        let sink = WebhookSink::new(c).with_context(|| key.clone())?;
        let sev = severity(
            &format!("{key}.min_severity"),
            w.min_severity.as_deref().unwrap_or("low"),
        )?;
        n.add(
            Sink::Webhook(sink),
            SinkOptions::new(format!("webhook {}", i + 1)).min_severity(sev),
        );
    }
    for (i, e) in a.email.iter().enumerate() {
        let key = format!("alerts.email[{i}]");
        let (host, port) = split_host_port(&e.relay).with_context(|| format!("{key}.relay"))?;
        let mut c = EmailConfig::new(host, e.from.clone(), e.to.clone());
        c.port = Some(port);
        c.security = match e.tls.as_deref().unwrap_or("starttls") {
            "tls" => SmtpSecurity::ImplicitTls,
            "none" => SmtpSecurity::Plain,
            _ => SmtpSecurity::StartTls,
        };
        c.extra_roots.extend(e.ca.clone());
        c.username = e.username.clone();
        if let Some(f) = &e.password_file {
            c.password =
                Some(Secret::from_file(f).map_err(|err| anyhow::anyhow!("{key}.password_file: {err}"))?);
        }
        if let Some(t) = &e.timeout {
            c.timeout = Duration::from_secs(duration(&format!("{key}.timeout"), t)?.max(1) as u64);
        }
        let sink = EmailSink::new(c).with_context(|| key.clone())?;
        let sev = severity(
            &format!("{key}.min_severity"),
            e.min_severity.as_deref().unwrap_or("high"),
        )?;
        n.add(
            Sink::Email(sink),
            SinkOptions::new(format!("email {}", i + 1)).min_severity(sev),
        );
    }
    for (i, s) in a.syslog.iter().enumerate() {
        let key = format!("alerts.syslog[{i}]");
        let transport = match s.transport.as_deref().unwrap_or("tcp") {
            "udp" => SyslogTransport::Udp,
            "tls" => SyslogTransport::Tls {
                ca_pem: s.ca.clone(),
                server_name: None,
            },
            _ => SyslogTransport::Tcp,
        };
        let mut c = SyslogConfig::new(s.target.clone(), transport);
        if let Some(f) = &s.facility {
            c.facility = facility(f).ok_or_else(|| {
                anyhow::anyhow!(
                    "{key}.facility {f:?}: write authpriv, auth, mail, daemon, user or local0 … local7"
                )
            })?;
        }
        let sink = SyslogSink::new(c).with_context(|| key.clone())?;
        let sev = severity(
            &format!("{key}.min_severity"),
            s.min_severity.as_deref().unwrap_or("low"),
        )?;
        n.add(
            Sink::Syslog(sink),
            SinkOptions::new(format!("syslog {}", i + 1)).min_severity(sev),
        );
    }
    Ok(n)
}

/// `host:port` (or `[v6]:port`).
fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{s:?} needs a port, e.g. mail.example.org:587"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?}: the port is not a number"))?;
    Ok((
        host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port,
    ))
}

/// A syslog facility by name (RFC 5424 numbers).
fn facility(name: &str) -> Option<u8> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "authpriv" => 10,
        other => {
            let n: u8 = other.strip_prefix("local")?.parse().ok()?;
            if n > 7 {
                return None;
            }
            16 + n
        }
    })
}

/// The alert task: stores each alert the rules hand over (with
/// de-duplication and suppressions), tells the sinks about new and escalated
/// ones, and applies the alerts' retention once an hour. Runs until the
/// channel closes (the ingest engine stopped).
pub async fn run_alerts(
    mut rx: mpsc::Receiver<AlertUpdate>,
    alerts: Arc<mailwarden_store::AlertStore>,
    policy: mailwarden_store::RecordPolicy,
    notifier: Arc<mailwarden_io::notify::Notifier>,
    host: String,
    retention_days: u32,
) -> anyhow::Result<()> {
    use mailwarden_io::notify::{AlertNotice, NoticeEvent};
    use mailwarden_io::pipeline::now;
    use mailwarden_store::RecordOutcome;

    let mut last_retention: Option<std::time::Instant> = None;
    while let Some(update) = rx.recv().await {
        let store = alerts.clone();
        let alert = update.alert.clone();
        let pol = policy;
        let recorded = tokio::task::spawn_blocking(move || store.record(&alert, now(), &pol)).await;
        let recorded = match recorded {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                // Not stored (store busy or full): still tell people about a
                // new episode, since it may be the one that matters.
                tracing::error!("alert {} {} not stored: {e}", update.alert.rule, update.alert.key);
                if update.opened {
                    let notice = AlertNotice::new(NoticeEvent::Opened, update.alert, host.clone());
                    notifier.notify(&notice).await;
                }
                continue;
            }
            Err(e) => anyhow::bail!("the alert store task failed: {e}"),
        };
        if recorded.outcome.notify() {
            let event = if matches!(recorded.outcome, RecordOutcome::Escalated) {
                NoticeEvent::Escalated
            } else {
                NoticeEvent::Opened
            };
            let notice = AlertNotice::new(event, update.alert, host.clone()).with_id(recorded.id);
            let results = notifier.notify(&notice).await;
            if !results.is_empty() {
                let store = alerts.clone();
                let id = recorded.id;
                let _ = tokio::task::spawn_blocking(move || store.mark_notified(id, now())).await;
            }
        }
        if last_retention.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600)) {
            last_retention = Some(std::time::Instant::now());
            let store = alerts.clone();
            match tokio::task::spawn_blocking(move || store.apply_retention(retention_days, now())).await {
                Ok(Ok(n)) if n > 0 => tracing::info!("alerts: retention removed {n} old alerts"),
                Ok(Err(e)) => tracing::warn!("alerts: retention failed: {e}"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The `alerts` entry of `status`: what the rules raised and what each sink did.
pub fn board_status(
    ds: &DetectStatus,
    notifier: &mailwarden_io::notify::Notifier,
) -> crate::status::CollectorStatus {
    let mut st = crate::status::CollectorStatus {
        kind: "alerts".to_owned(),
        state: "running".to_owned(),
        ..Default::default()
    };
    for (k, v) in [
        ("opened", &ds.opened),
        ("closed", &ds.closed),
        ("dropped", &ds.dropped),
        ("warmup_lines", &ds.warmup_lines),
    ] {
        st.counters.insert(k.to_owned(), v.load(Ordering::Relaxed));
    }
    let mut newest: Option<(Timestamp, String)> = None;
    for s in notifier.status() {
        st.counters.insert(format!("{} sent", s.name), s.sent);
        st.counters.insert(format!("{} failed", s.name), s.failed);
        if let (Some(at), Some(e)) = (s.last_error_at, &s.last_error)
            && newest.as_ref().is_none_or(|(t, _)| at > *t)
        {
            newest = Some((at, format!("{}: {e}", s.name)));
        }
    }
    st.last_error = newest.map(|(_, e)| e);
    st
}
