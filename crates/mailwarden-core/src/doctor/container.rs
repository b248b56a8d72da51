//! Containers against their compose pins: the checks of `doctor containers`
//! on facts the caller read through the Docker API (`mailwarden-io`).
//!
//! - [`check_state`]: state, health and failing streak, restart count,
//!   exit code, OOM kill → running, crash loop, exited with an error,
//!   unhealthy, never started.
//! - [`check_pin`]: the compose pin's kind (floating tags flagged, database
//!   images more loudly), the image the container runs against the pin, and
//!   the local tag's image id against the container's (a tag re-pulled
//!   without re-creating the container).
//! - [`check_autoupdaters`]: Watchtower and similar containers that could
//!   pull a new database image and restart MariaDB on it unattended.
//!
//! Finding ids are stable; see [`ids`].

use std::collections::BTreeMap;

use super::compose::{ComposeService, ImageRef, PinKind};
use super::{Area, Finding, Severity};

/// The finding ids of this module.
pub mod ids {
    /// A container is running and healthy (pass).
    pub const RUNNING: &str = "container.state.running";
    /// Restarting now, or restarted repeatedly with short uptimes (fail).
    pub const CRASH_LOOP: &str = "container.state.crash-loop";
    /// Running, but restarted before (info).
    pub const RESTARTED: &str = "container.state.restarted";
    /// Stopped with a non-zero exit code (warning).
    pub const EXITED: &str = "container.state.exited";
    /// Stopped cleanly, or created and never started (info).
    pub const STOPPED: &str = "container.state.stopped";
    /// Killed by the kernel's OOM killer (warning).
    pub const OOM: &str = "container.state.oom-killed";
    /// Health check failing (warning).
    pub const UNHEALTHY: &str = "container.health.unhealthy";
    /// Compose pin on a floating tag (warning for databases, info otherwise).
    pub const PIN_FLOATING: &str = "container.pin.floating";
    /// Compose pin by digest or full version (pass).
    pub const PIN_FIXED: &str = "container.pin.fixed";
    /// The container runs another image than the compose file pins (warning).
    pub const IMAGE_NOT_PIN: &str = "container.image.differs-from-pin";
    /// The local tag now names another image than the container runs (warning).
    pub const TAG_MOVED: &str = "container.image.tag-moved";
    /// The image tag is not present locally (info).
    pub const TAG_ABSENT: &str = "container.image.tag-absent";
    /// The container runs what the compose file pins (pass).
    pub const IMAGE_MATCHES: &str = "container.image.matches-pin";
    /// A compose service has no container (info).
    pub const SERVICE_MISSING: &str = "container.service.missing";
    /// An auto-updater that may upgrade a database image (fail), or only
    /// other images / only notify (warning / info).
    pub const AUTOUPDATER: &str = "container.autoupdater.present";
}

/// What the Docker API says about one container (the inspect answer, cut
/// down to what the checks use; no environment values except an
/// auto-updater's own settings).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ContainerFacts {
    /// Name without the leading slash.
    pub name: String,
    /// Container id.
    pub id: String,
    /// `com.docker.compose.service`.
    pub service: Option<String>,
    /// `com.docker.compose.project`.
    pub project: Option<String>,
    /// `Config.Image`: the reference it was created from (`mariadb:10.11`).
    pub config_image: String,
    /// `Image`: the id of the image it runs (`sha256:…`).
    pub image_id: String,
    /// `RepoDigests` of the image it runs (`mariadb@sha256:…`): what a
    /// digest pin is compared with when the container was created from a
    /// tag.
    pub image_repo_digests: Vec<String>,
    /// `State.Status` (`running`, `restarting`, `exited`, `created`, …).
    pub status: String,
    /// `State.Running`.
    pub running: bool,
    /// `State.Restarting`.
    pub restarting: bool,
    /// `State.OOMKilled`.
    pub oom_killed: bool,
    /// `State.ExitCode`.
    pub exit_code: i64,
    /// `State.Error`.
    pub error: String,
    /// `State.StartedAt` (RFC 3339; Docker's zero time when never started).
    pub started_at: String,
    /// `State.FinishedAt`.
    pub finished_at: String,
    /// `RestartCount`.
    pub restart_count: i64,
    /// `State.Health.Status` when the container has a health check.
    pub health: Option<String>,
    /// `State.Health.FailingStreak`.
    pub failing_streak: i64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `Config.Cmd` and `Args` (for an auto-updater's flags).
    pub command: Vec<String>,
    /// `WATCHTOWER_*` environment settings (only these; other values may be secrets).
    pub updater_env: BTreeMap<String, String>,
}

/// The local image a container's reference names now (image inspect).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct LocalTag {
    /// The reference inspected (`mariadb:10.11`).
    pub reference: String,
    /// Its image id, `None` when the reference is not present locally.
    pub id: Option<String>,
    /// The image's version from its environment (`MARIADB_VERSION`, …), when set.
    pub version: Option<String>,
}

/// A restart count at which a recently started container counts as crash-looping.
pub const CRASH_LOOP_RESTARTS: i64 = 3;
/// Uptime under which a restarted container counts as crash-looping (seconds).
pub const CRASH_LOOP_UPTIME_SECS: i64 = 600;

fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = s.parse().ok()?;
    // Docker's zero time (0001-01-01T00:00:00Z) means "never".
    (t.as_second() > 0).then_some(t)
}

fn state_evidence(c: &ContainerFacts) -> Vec<String> {
    let mut e = vec![format!(
        "container {} ({}): Status={} Running={} Restarting={} RestartCount={} ExitCode={} OOMKilled={}",
        c.name,
        short_id(&c.id),
        c.status,
        c.running,
        c.restarting,
        c.restart_count,
        c.exit_code,
        c.oom_killed
    )];
    e.push(format!("StartedAt={} FinishedAt={}", c.started_at, c.finished_at));
    if let Some(h) = &c.health {
        e.push(format!("Health.Status={h} FailingStreak={}", c.failing_streak));
    }
    if !c.error.is_empty() {
        e.push(format!("State.Error={}", c.error));
    }
    e
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// Classifies a container's state at `now` (unix seconds).
pub fn check_state(c: &ContainerFacts, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let ev = state_evidence(c);
    let with = |mut f: Finding| {
        for e in &ev {
            f = f.evidence(e.clone());
        }
        f
    };
    let started = parse_time(&c.started_at);
    let uptime = started.map(|s| now - s.as_second());
    let logs = format!("docker logs --tail 100 {}", c.name);
    let recent_restarts =
        c.restart_count >= CRASH_LOOP_RESTARTS && uptime.is_some_and(|u| u < CRASH_LOOP_UPTIME_SECS);
    if c.restarting || c.status == "restarting" || (c.running && recent_restarts) {
        let up = uptime
            .map(|u| format!(", up {u} s since the last start"))
            .unwrap_or_default();
        out.push(with(
            Finding::new(
                ids::CRASH_LOOP,
                Area::Containers,
                Severity::Fail,
                &c.name,
                format!(
                    "crash loop: restarted {} times, last exit code {}{up}",
                    c.restart_count, c.exit_code
                ),
            )
            .fix(format!(
                "read the first fatal line in `{logs}`; for MariaDB run `mailwarden doctor mariadb` before anything else (a data directory newer than the image never starts)"
            )),
        ));
    } else if c.running {
        if c.restart_count > 0 {
            out.push(with(Finding::new(
                ids::RESTARTED,
                Area::Containers,
                Severity::Info,
                &c.name,
                format!("running, restarted {} times before", c.restart_count),
            )));
        } else if c.health.as_deref() != Some("unhealthy") {
            out.push(with(Finding::new(
                ids::RUNNING,
                Area::Containers,
                Severity::Pass,
                &c.name,
                "running",
            )));
        }
    } else if started.is_none() {
        out.push(with(
            Finding::new(
                ids::STOPPED,
                Area::Containers,
                Severity::Info,
                &c.name,
                format!("{}: created, never started", c.status),
            )
            .fix("start it with `docker compose up -d` in the project directory if it should run"),
        ));
    } else if c.exit_code != 0 {
        out.push(with(
            Finding::new(
                ids::EXITED,
                Area::Containers,
                Severity::Warning,
                &c.name,
                format!(
                    "{} with exit code {}{} after {} restarts",
                    c.status,
                    c.exit_code,
                    exit_meaning(c.exit_code),
                    c.restart_count
                ),
            )
            .fix(format!(
                "read why in `{logs}`, fix it, then `docker compose up -d`"
            )),
        ));
    } else {
        out.push(with(Finding::new(
            ids::STOPPED,
            Area::Containers,
            Severity::Info,
            &c.name,
            format!("{}, exit code 0 (stopped cleanly)", c.status),
        )));
    }
    if c.oom_killed {
        out.push(with(
            Finding::new(
                ids::OOM,
                Area::Containers,
                Severity::Warning,
                &c.name,
                "killed by the kernel's out-of-memory killer",
            )
            .fix("give the host or the container more memory (Mailcow: at least 6 GiB RAM; check `dmesg` for the OOM report), or lower ClamAV/Solr usage (SKIP_CLAMD, SKIP_SOLR)"),
        ));
    }
    if c.health.as_deref() == Some("unhealthy") {
        out.push(with(
            Finding::new(
                ids::UNHEALTHY,
                Area::Containers,
                Severity::Warning,
                &c.name,
                format!("health check failing {} times in a row", c.failing_streak),
            )
            .fix(format!(
                "read the health-check output in `docker inspect --format '{{{{json .State.Health}}}}' {}`",
                c.name
            )),
        ));
    }
    out
}

fn exit_meaning(code: i64) -> &'static str {
    match code {
        1 => " (application error)",
        125 => " (the engine could not run it)",
        126 => " (command not executable)",
        127 => " (command not found)",
        137 => " (SIGKILL: OOM kill or docker kill)",
        139 => " (SIGSEGV: crashed)",
        143 => " (SIGTERM)",
        _ => "",
    }
}

/// Checks a compose service's pin, and (when it has a container) the image
/// the container runs against it; `local` is the local tag the container's
/// reference names now.
pub fn check_pin(
    svc: &ComposeService,
    container: Option<&ContainerFacts>,
    local: Option<&LocalTag>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(image) = svc.image.as_deref() else {
        return out;
    };
    let source = svc.image_source.clone().unwrap_or_default();
    let pin_ev = format!("{source}: image: {image}");
    let Some(pin) = ImageRef::parse(image) else {
        out.push(
            Finding::new(
                ids::PIN_FLOATING,
                Area::Containers,
                Severity::Warning,
                &svc.name,
                format!("image {image:?} is not a valid image reference"),
            )
            .evidence(pin_ev)
            .fix("check the variables the image is built from (mailcow.conf / .env)"),
        );
        return out;
    };
    let kind = pin.pin();
    match kind {
        PinKind::Digest | PinKind::Version => out.push(
            Finding::new(
                ids::PIN_FIXED,
                Area::Containers,
                Severity::Pass,
                &svc.name,
                format!("{image} is {}", kind.as_str()),
            )
            .evidence(pin_ev.clone()),
        ),
        PinKind::FloatingVersion | PinKind::Floating => {
            let db = pin.is_database();
            let sev = if db { Severity::Warning } else { Severity::Info };
            let what = if db {
                "a pull can bring a newer server that upgrades the data directory, and the old image cannot read it afterwards"
            } else {
                "a pull can bring another version than the one tested"
            };
            out.push(
                Finding::new(
                    ids::PIN_FLOATING,
                    Area::Containers,
                    sev,
                    &svc.name,
                    format!("{image} is {}: {what}", kind.as_str()),
                )
                .evidence(pin_ev.clone())
                .fix(format!(
                    "pin a full version or a digest in a docker-compose.override.yml (e.g. `image: {}:<full version>` — see `docker image inspect {image}` for the one running now), and upgrade deliberately",
                    image.split('@').next().map_or(image, |n| match n.rfind(':') {
                        Some(c) if !n[c..].contains('/') => &n[..c],
                        _ => n,
                    })
                )),
            );
        }
    }
    let Some(c) = container else {
        return out;
    };
    let running = ImageRef::parse(&c.config_image);
    // A digest pin is met by a container created from a tag when the image
    // it runs carries that digest (Docker records it in RepoDigests).
    let by_digest = pin.digest.as_deref().and_then(|want| {
        c.image_repo_digests
            .iter()
            .find(|d| d.rsplit_once('@').is_some_and(|(_, got)| got == want))
    });
    let same = running.as_ref().is_some_and(|r| r.canonical() == pin.canonical()) || by_digest.is_some();
    let mut cev = format!(
        "container {}: Config.Image={} Image={}",
        c.name, c.config_image, c.image_id
    );
    if let Some(d) = by_digest {
        cev.push_str(&format!(" RepoDigests∋{d}"));
    }
    if !same {
        out.push(
            Finding::new(
                ids::IMAGE_NOT_PIN,
                Area::Containers,
                Severity::Warning,
                &c.name,
                format!(
                    "runs {} but the compose file pins {image}: the next `docker compose up -d` replaces it",
                    c.config_image
                ),
            )
            .evidence(pin_ev.clone())
            .evidence(cev.clone())
            .fix(if pin.is_database() {
                "before re-creating a database container, run `mailwarden doctor mariadb` and take a snapshot of its data volume; then `docker compose up -d`".to_owned()
            } else {
                "re-create it with `docker compose up -d` (or fix the pin if the running image is the right one)".to_owned()
            }),
        );
    }
    if by_digest.is_some() {
        // The digest names the content: what the tag names now is moot, a
        // re-creation takes the pinned digest again.
        out.push(
            Finding::new(
                ids::IMAGE_MATCHES,
                Area::Containers,
                Severity::Pass,
                &c.name,
                format!("runs {image}, the digest the compose file pins"),
            )
            .evidence(cev),
        );
        return out;
    }
    let Some(l) = local else {
        return out;
    };
    match &l.id {
        None => out.push(
            Finding::new(
                ids::TAG_ABSENT,
                Area::Containers,
                Severity::Info,
                &c.name,
                format!(
                    "{} is not present locally (removed, or the container was created from another name)",
                    l.reference
                ),
            )
            .evidence(cev.clone()),
        ),
        Some(id) if !c.image_id.is_empty() && !same_id(id, &c.image_id) => {
            let mut f = Finding::new(
                ids::TAG_MOVED,
                Area::Containers,
                Severity::Warning,
                &c.name,
                format!(
                    "{} was pulled again and now names image {}, but the container still runs {}: the next re-creation switches images",
                    l.reference,
                    short_id(id),
                    short_id(&c.image_id)
                ),
            )
            .evidence(cev.clone())
            .evidence(format!("image {}: Id={id}", l.reference));
            if let Some(v) = &l.version {
                f = f.evidence(format!("image {}: version {v}", l.reference));
            }
            out.push(f.fix(if pin.is_database() {
                "know which server version wrote the data directory (`mailwarden doctor mariadb`) and snapshot it before the container is re-created on the new image"
            } else {
                "re-create it (`docker compose up -d`) when ready, or pin the image it runs"
            }));
        }
        Some(_) if same => out.push(
            Finding::new(
                ids::IMAGE_MATCHES,
                Area::Containers,
                Severity::Pass,
                &c.name,
                format!("runs {image}, the image the tag names locally"),
            )
            .evidence(cev),
        ),
        Some(_) => {}
    }
    out
}

fn same_id(a: &str, b: &str) -> bool {
    a.strip_prefix("sha256:").unwrap_or(a) == b.strip_prefix("sha256:").unwrap_or(b)
}

/// A compose service without any container.
pub fn service_missing(svc: &ComposeService, project: &str) -> Finding {
    Finding::new(
        ids::SERVICE_MISSING,
        Area::Containers,
        Severity::Info,
        &svc.name,
        format!("no container of project {project} runs this service"),
    )
    .evidence(format!(
        "no container with labels com.docker.compose.project={project}, com.docker.compose.service={}",
        svc.name
    ))
    .fix("if the service should run: `docker compose up -d` in the project directory")
}

/// Image names of auto-updaters (last path components).
const UPDATER_IMAGES: &[&str] = &["watchtower", "ouroboros", "whats-up-docker", "wud"];
/// The label Watchtower reads to include or exclude a container.
pub const WATCHTOWER_ENABLE: &str = "com.centurylinklabs.watchtower.enable";

/// Whether a container is an auto-updater (by image name, or Watchtower's own label).
pub fn is_autoupdater(c: &ContainerFacts) -> bool {
    let by_image = ImageRef::parse(&c.config_image).is_some_and(|r| UPDATER_IMAGES.contains(&r.short_name()));
    by_image
        || c.labels
            .get("com.centurylinklabs.watchtower")
            .is_some_and(|v| v == "true")
}

fn flag(c: &ContainerFacts, flag: &str, env: &str) -> bool {
    c.command
        .iter()
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")) && !a.ends_with("=false"))
        || c.updater_env.get(env).is_some_and(|v| v == "true" || v == "1")
}

/// Watchtower's flags without a value; any other `--flag` without `=` takes the next argument.
const BOOL_FLAGS: &[&str] = &[
    "--cleanup",
    "-c",
    "--label-enable",
    "--monitor-only",
    "-m",
    "--debug",
    "-d",
    "--trace",
    "--run-once",
    "-R",
    "--include-stopped",
    "-S",
    "--include-restarting",
    "--revive-stopped",
    "--rolling-restart",
    "--no-pull",
    "--no-restart",
    "--no-startup-message",
    "--http-api-update",
    "--http-api-metrics",
    "--http-api-periodic-polls",
    "--remove-volumes",
    "--tlsverify",
    "--warn-on-head-failure",
    "--label-take-precedence",
];

/// The container names an updater's command line restricts it to.
fn named_containers(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with('-') {
            skip = !a.contains('=') && !BOOL_FLAGS.contains(&a.as_str());
        } else if !a.contains('/') {
            out.push(a.as_str());
        }
    }
    out
}

/// Finds auto-updaters among `all` containers (any project) and says
/// whether they can upgrade the database containers among `project`.
pub fn check_autoupdaters(all: &[ContainerFacts], project: &[ContainerFacts]) -> Vec<Finding> {
    let mut out = Vec::new();
    let dbs: Vec<&ContainerFacts> = project
        .iter()
        .filter(|c| ImageRef::parse(&c.config_image).is_some_and(|r| r.is_database()))
        .collect();
    for u in all.iter().filter(|c| is_autoupdater(c)) {
        let mut ev = vec![format!(
            "container {}: Config.Image={} Status={} command={:?}",
            u.name, u.config_image, u.status, u.command
        )];
        for (k, v) in &u.updater_env {
            ev.push(format!("env {k}={v}"));
        }
        let monitor_only = flag(u, "--monitor-only", "WATCHTOWER_MONITOR_ONLY");
        let label_enable = flag(u, "--label-enable", "WATCHTOWER_LABEL_ENABLE");
        // Container names given as arguments restrict Watchtower to them.
        let named = named_containers(&u.command);
        let exposed: Vec<&&ContainerFacts> = dbs
            .iter()
            .filter(|d| {
                let label = d.labels.get(WATCHTOWER_ENABLE).map(String::as_str);
                if label == Some("false") {
                    return false;
                }
                if label_enable {
                    return label == Some("true");
                }
                named.is_empty() || named.contains(&d.name.as_str())
            })
            .collect();
        for d in &exposed {
            ev.push(format!(
                "database container {} runs {} ({}={})",
                d.name,
                d.config_image,
                WATCHTOWER_ENABLE,
                d.labels.get(WATCHTOWER_ENABLE).map_or("unset", String::as_str)
            ));
        }
        let (sev, msg) = if !u.running {
            (
                Severity::Info,
                "an auto-updater exists but is not running".to_owned(),
            )
        } else if monitor_only {
            (
                Severity::Info,
                "an auto-updater runs in monitor-only mode (notifies, does not update)".to_owned(),
            )
        } else if exposed.is_empty() {
            (
                Severity::Warning,
                "an auto-updater runs; no database container of the project is in its scope".to_owned(),
            )
        } else {
            (
                Severity::Fail,
                format!(
                    "an auto-updater can pull a new image for {} and restart it unattended: a database upgraded this way cannot be rolled back by changing the tag",
                    exposed
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
        let mut f = Finding::new(ids::AUTOUPDATER, Area::Containers, sev, &u.name, msg).fix(format!(
            "exclude database containers (label `{WATCHTOWER_ENABLE}=false` in docker-compose.override.yml), or run it with --label-enable / --monitor-only; Mailcow is updated with its update.sh"
        ));
        for e in ev {
            f = f.evidence(e);
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-14T12:00:00Z
    const NOW: i64 = 1_710_417_600;

    fn facts(name: &str, image: &str) -> ContainerFacts {
        ContainerFacts {
            name: name.into(),
            id: "8d2b3a1c9e7f60514b3c2d1e0f9a8b7c".into(),
            service: Some(name.into()),
            project: Some("mailcowdockerized".into()),
            config_image: image.into(),
            image_id: "sha256:aaaa".into(),
            status: "running".into(),
            running: true,
            started_at: "2024-03-14T08:00:00.123456789Z".into(),
            finished_at: "0001-01-01T00:00:00Z".into(),
            ..ContainerFacts::default()
        }
    }

    fn ids_of(f: &[Finding]) -> Vec<(&'static str, Severity)> {
        f.iter().map(|f| (f.id, f.severity)).collect()
    }

    #[test]
    fn state_classification() {
        let ok = facts("postfix", "ghcr.io/mailcow/postfix:1.80");
        assert_eq!(ids_of(&check_state(&ok, NOW)), [(ids::RUNNING, Severity::Pass)]);
        let mut restarting = ok.clone();
        restarting.running = true;
        restarting.restarting = true;
        restarting.status = "restarting".into();
        restarting.restart_count = 41;
        restarting.exit_code = 1;
        let f = check_state(&restarting, NOW);
        assert_eq!(ids_of(&f), [(ids::CRASH_LOOP, Severity::Fail)]);
        assert!(
            f[0].message.contains("41 times, last exit code 1"),
            "{}",
            f[0].message
        );
        assert!(f[0].evidence[0].contains("RestartCount=41"));
        // Up again, but only for 20 s after many restarts.
        let mut flapping = ok.clone();
        flapping.restart_count = 7;
        flapping.started_at = "2024-03-14T11:59:40Z".into();
        assert_eq!(
            ids_of(&check_state(&flapping, NOW)),
            [(ids::CRASH_LOOP, Severity::Fail)]
        );
        // Up for hours after restarts long ago.
        flapping.started_at = "2024-03-14T02:00:00Z".into();
        assert_eq!(
            ids_of(&check_state(&flapping, NOW)),
            [(ids::RESTARTED, Severity::Info)]
        );
        let mut exited = ok.clone();
        exited.running = false;
        exited.status = "exited".into();
        exited.exit_code = 137;
        exited.oom_killed = true;
        exited.finished_at = "2024-03-14T09:00:00Z".into();
        let f = check_state(&exited, NOW);
        assert_eq!(
            ids_of(&f),
            [(ids::EXITED, Severity::Warning), (ids::OOM, Severity::Warning)]
        );
        assert!(f[0].message.contains("137 (SIGKILL"), "{}", f[0].message);
        let mut clean = exited.clone();
        clean.exit_code = 0;
        clean.oom_killed = false;
        assert_eq!(
            ids_of(&check_state(&clean, NOW)),
            [(ids::STOPPED, Severity::Info)]
        );
        let mut created = ok.clone();
        created.running = false;
        created.status = "created".into();
        created.started_at = "0001-01-01T00:00:00Z".into();
        let f = check_state(&created, NOW);
        assert_eq!(ids_of(&f), [(ids::STOPPED, Severity::Info)]);
        assert!(f[0].message.contains("never started"));
        let mut sick = ok.clone();
        sick.health = Some("unhealthy".into());
        sick.failing_streak = 12;
        let f = check_state(&sick, NOW);
        assert_eq!(ids_of(&f), [(ids::UNHEALTHY, Severity::Warning)]);
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e == "Health.Status=unhealthy FailingStreak=12")
        );
        // Garbage times never panic and count as never started.
        let mut odd = ok.clone();
        odd.running = false;
        odd.started_at = "yesterday".into();
        assert_eq!(ids_of(&check_state(&odd, NOW)), [(ids::STOPPED, Severity::Info)]);
    }

    fn svc(image: &str) -> ComposeService {
        ComposeService {
            name: "mysql-mailcow".into(),
            image: Some(image.into()),
            image_source: Some("docker-compose.yml:20".into()),
            ..ComposeService::default()
        }
    }

    #[test]
    fn pins_and_running_images() {
        let s = svc("mariadb:10.11");
        let f = check_pin(&s, None, None);
        assert_eq!(ids_of(&f), [(ids::PIN_FLOATING, Severity::Warning)]);
        assert_eq!(f[0].evidence, ["docker-compose.yml:20: image: mariadb:10.11"]);
        let f = check_pin(&svc("ghcr.io/mailcow/ofelia:latest"), None, None);
        assert_eq!(ids_of(&f), [(ids::PIN_FLOATING, Severity::Info)]);
        assert_eq!(
            ids_of(&check_pin(&svc("mariadb:10.11.6"), None, None)),
            [(ids::PIN_FIXED, Severity::Pass)]
        );
        // The container still runs the 10.5 image after the pin moved to 10.11.
        let c = facts("mailcowdockerized-mysql-mailcow-1", "mariadb:10.5");
        let local = LocalTag {
            reference: "mariadb:10.5".into(),
            id: Some("sha256:aaaa".into()),
            version: None,
        };
        let f = check_pin(&s, Some(&c), Some(&local));
        assert_eq!(
            ids_of(&f),
            [
                (ids::PIN_FLOATING, Severity::Warning),
                (ids::IMAGE_NOT_PIN, Severity::Warning)
            ]
        );
        assert!(
            f[1].message
                .contains("runs mariadb:10.5 but the compose file pins mariadb:10.11")
        );
        // Same tag (Podman writes it fully qualified), re-pulled: another id.
        let c = facts(
            "mailcowdockerized-mysql-mailcow-1",
            "docker.io/library/mariadb:10.11",
        );
        let moved = LocalTag {
            reference: c.config_image.clone(),
            id: Some("sha256:bbbbbbbbbbbbbbbb".into()),
            version: Some("1:10.11.9+maria~ubu2204".into()),
        };
        let f = check_pin(&s, Some(&c), Some(&moved));
        assert_eq!(ids_of(&f)[1], (ids::TAG_MOVED, Severity::Warning));
        assert!(f[1].evidence.iter().any(|e| e.contains("version 1:10.11.9")));
        let same = LocalTag {
            id: Some("aaaa".into()),
            ..moved.clone()
        };
        assert_eq!(
            ids_of(&check_pin(&s, Some(&c), Some(&same)))[1],
            (ids::IMAGE_MATCHES, Severity::Pass)
        );
        let gone = LocalTag { id: None, ..moved };
        assert_eq!(
            ids_of(&check_pin(&s, Some(&c), Some(&gone)))[1],
            (ids::TAG_ABSENT, Severity::Info)
        );
        assert_eq!(
            ids_of(&check_pin(&svc("a b"), None, None)),
            [(ids::PIN_FLOATING, Severity::Warning)]
        );
    }

    #[test]
    fn digest_pins_against_repo_digests() {
        let want = "sha256:4f8ad6b0a3fa2bd1d43cbf0c7d2c1d1ae3a4c8ab55cb6e4aa0c1f7ab2c1d0e9f";
        let s = svc(&format!("mariadb@{want}"));
        // Created from a tag, but the image it runs carries the pinned digest.
        let mut c = facts("mailcowdockerized-mysql-mailcow-1", "mariadb:10.11");
        c.image_repo_digests = vec![
            "docker.io/library/mariadb@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
            format!("docker.io/library/mariadb@{want}"),
        ];
        let moved = LocalTag {
            reference: "mariadb:10.11".into(),
            id: Some("sha256:bbbb".into()),
            version: None,
        };
        let f = check_pin(&s, Some(&c), Some(&moved));
        assert_eq!(
            ids_of(&f),
            [
                (ids::PIN_FIXED, Severity::Pass),
                (ids::IMAGE_MATCHES, Severity::Pass)
            ]
        );
        assert!(f[1].evidence[0].contains(want));
        // Another digest: the container does not run the pin.
        c.image_repo_digests.pop();
        let f = check_pin(&s, Some(&c), Some(&moved));
        assert_eq!(ids_of(&f)[1], (ids::IMAGE_NOT_PIN, Severity::Warning));
    }

    #[test]
    fn autoupdaters() {
        let db = facts("mailcowdockerized-mysql-mailcow-1", "mariadb:10.11");
        let web = facts("mailcowdockerized-nginx-mailcow-1", "ghcr.io/mailcow/nginx:1.03");
        let mut wt = facts("watchtower", "containrrr/watchtower");
        wt.project = None;
        let project = vec![db.clone(), web.clone()];
        let all = vec![db.clone(), web.clone(), wt.clone()];
        let f = check_autoupdaters(&all, &project);
        assert_eq!(ids_of(&f), [(ids::AUTOUPDATER, Severity::Fail)]);
        assert!(f[0].message.contains("mailcowdockerized-mysql-mailcow-1"));
        // Opted out by label.
        let mut db_out = db.clone();
        db_out.labels.insert(WATCHTOWER_ENABLE.into(), "false".into());
        let p2 = vec![db_out.clone(), web.clone()];
        assert_eq!(
            ids_of(&check_autoupdaters(&[wt.clone()], &p2)),
            [(ids::AUTOUPDATER, Severity::Warning)]
        );
        // --label-enable: only opted-in containers.
        let mut wt_le = wt.clone();
        wt_le.command = vec!["--label-enable".into(), "--cleanup".into()];
        assert_eq!(
            ids_of(&check_autoupdaters(&[wt_le.clone()], &project))[0].1,
            Severity::Warning
        );
        let mut db_in = db.clone();
        db_in.labels.insert(WATCHTOWER_ENABLE.into(), "true".into());
        assert_eq!(
            ids_of(&check_autoupdaters(&[wt_le], &[db_in]))[0].1,
            Severity::Fail
        );
        // Monitor only, by environment.
        let mut wt_mo = wt.clone();
        wt_mo
            .updater_env
            .insert("WATCHTOWER_MONITOR_ONLY".into(), "true".into());
        assert_eq!(
            ids_of(&check_autoupdaters(&[wt_mo], &project))[0].1,
            Severity::Info
        );
        // Named containers only.
        let mut wt_named = wt.clone();
        wt_named.command = vec!["--interval".into(), "300".into(), "nextcloud".into()];
        // Only `nextcloud` is named: the DB is not in scope.
        assert_eq!(
            ids_of(&check_autoupdaters(&[wt_named], &project))[0].1,
            Severity::Warning
        );
        assert!(check_autoupdaters(&project, &project).is_empty());
        assert_eq!(
            named_containers(&[
                "--interval".into(),
                "30".into(),
                "--cleanup".into(),
                "a".into(),
                "--x=1".into(),
                "b".into()
            ]),
            ["a", "b"]
        );
    }
}
