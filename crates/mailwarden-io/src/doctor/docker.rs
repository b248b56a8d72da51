//! `doctor containers`, the reading half: the compose files (and the
//! variables they are interpolated with) from disk, the containers and
//! images from the Docker API (Docker, or Podman's Docker-compatible
//! service), turned into findings by `mailwarden_core::doctor::container`.
//!
//! Read-only: the API is asked only to list and inspect (containers and
//! images); nothing is pulled, started or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ImageInspect};
use bollard::query_parameters::ListContainersOptions;
use mailwarden_core::doctor::compose::{self, ComposeProject, ComposeService};
use mailwarden_core::doctor::container::{self, ContainerFacts, LocalTag};
use mailwarden_core::doctor::{Area, Finding, Severity};

use crate::collect::docker::{PROJECT_LABEL, SERVICE_LABEL};

/// Seconds bollard waits for an answer.
const API_TIMEOUT_SECS: u64 = 20;
/// Most containers inspected (a bound on what one host can make us do).
const MAX_CONTAINERS: usize = 1000;

/// Finding ids of this module (the checks' ids are in `container::ids`).
pub mod ids {
    /// The Docker API could not be reached: nothing about containers was checked (info).
    pub const API_UNAVAILABLE: &str = "container.api.unavailable";
    /// A compose file could not be read or parsed (warning).
    pub const COMPOSE_INVALID: &str = "container.compose.invalid";
    /// Variables the compose files use are not set (info).
    pub const COMPOSE_UNSET_VARIABLES: &str = "container.compose.unset-variables";
    /// No compose file was given or found: pins were not compared (info).
    pub const COMPOSE_NONE: &str = "container.compose.none";
    /// No container of the project exists (warning).
    pub const PROJECT_EMPTY: &str = "container.project.empty";
    /// A listed container could not be inspected (other than being gone).
    pub const INSPECT_FAILED: &str = "container.inspect.failed";
}

/// What `doctor containers` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainersConfig {
    /// The engine's API socket.
    pub socket: PathBuf,
    /// The compose project (`com.docker.compose.project`).
    pub project: String,
}

/// Reads `KEY=VALUE` files (`mailcow.conf`, `.env`) in order, later files
/// winning; a missing file is skipped, an unreadable one is a finding.
pub fn read_env_files(paths: &[PathBuf], findings: &mut Vec<Finding>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for p in paths {
        match std::fs::read(p) {
            Ok(b) => {
                super::evidence::file(p, &b, "whole file");
                vars.extend(compose::parse_env(&String::from_utf8_lossy(&b)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => findings.push(
                Finding::new(
                    ids::COMPOSE_INVALID,
                    Area::Containers,
                    Severity::Warning,
                    p.display().to_string(),
                    format!("cannot read the variables file: {e}"),
                )
                .fix("run mailwarden as root (mailcow.conf is mode 600), or pass the compose files with --compose"),
            ),
        }
    }
    vars
}

/// Deepest nesting of `include` followed.
const MAX_INCLUDE_DEPTH: usize = 4;

fn compose_invalid(shown: &str, problem: &str) -> Finding {
    Finding::new(
        ids::COMPOSE_INVALID,
        Area::Containers,
        Severity::Warning,
        shown,
        format!("compose file not usable, its pins were not checked: {problem}"),
    )
    .evidence(format!("{shown}: {problem}"))
    .fix(format!("check it with `docker compose -f {shown} config`"))
}

/// Reads and parses one compose file (kept in the evidence bundle); the
/// error says what is wrong, for a finding naming the file.
fn read_compose(f: &Path, vars: &BTreeMap<String, String>) -> Result<ComposeProject, String> {
    let lookup = |k: &str| vars.get(k).cloned();
    let b = std::fs::read(f).map_err(|e| format!("cannot read: {e}"))?;
    super::evidence::file(f, &b, "whole file");
    let text = String::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))?;
    compose::parse_compose(&f.display().to_string(), &text, &lookup).map_err(|e| e.to_string())
}

/// Reads one compose file, and the files its `include` names (relative to
/// its directory) before it, as Compose does.
fn load_with_includes(
    f: &Path,
    vars: &BTreeMap<String, String>,
    depth: usize,
    findings: &mut Vec<Finding>,
) -> Option<ComposeProject> {
    let shown = f.display().to_string();
    let p = match read_compose(f, vars) {
        Ok(p) => p,
        Err(problem) => {
            findings.push(compose_invalid(&shown, &problem));
            return None;
        }
    };
    if p.includes.is_empty() {
        return Some(p);
    }
    if depth >= MAX_INCLUDE_DEPTH {
        findings.push(compose_invalid(
            &shown,
            &format!("`include` nested deeper than {MAX_INCLUDE_DEPTH} files"),
        ));
        return Some(p);
    }
    let dir = f.parent().unwrap_or(Path::new("."));
    let mut merged: Option<ComposeProject> = None;
    for inc in &p.includes {
        if let Some(ip) = load_with_includes(&dir.join(inc), vars, depth + 1, findings) {
            match &mut merged {
                Some(m) => m.merge(ip),
                None => merged = Some(ip),
            }
        }
    }
    match merged {
        Some(mut m) => {
            m.merge(p);
            Some(m)
        }
        None => Some(p),
    }
}

/// Resolves `extends`: within the project, then bases in other files (read
/// relative to the first compose file's directory).
fn resolve_extends(
    p: &mut ComposeProject,
    dir: Option<&Path>,
    vars: &BTreeMap<String, String>,
    findings: &mut Vec<Finding>,
) {
    // Several services usually extend bases of the same file: read each
    // file once.
    let mut files: BTreeMap<PathBuf, Result<ComposeProject, String>> = BTreeMap::new();
    let names: Vec<String> = p.services.keys().cloned().collect();
    for name in names {
        let Some((base, Some(file))) = p.services.get(&name).and_then(|s| s.extends.clone()) else {
            continue;
        };
        let path = dir.unwrap_or(Path::new(".")).join(&file);
        let shown = path.display().to_string();
        let first = !files.contains_key(&path);
        let other = files.entry(path.clone()).or_insert_with(|| {
            read_compose(&path, vars).map(|mut o| {
                o.resolve_extends();
                o
            })
        });
        match other {
            Ok(o) => match o.services.get(&base) {
                Some(b) => {
                    if let Some(svc) = p.services.get_mut(&name) {
                        svc.inherit(b);
                        svc.extends = None;
                    }
                }
                None => findings.push(compose_invalid(
                    &shown,
                    &format!("service {name} extends {base}, which this file does not define"),
                )),
            },
            Err(problem) if first => findings.push(compose_invalid(&shown, problem)),
            Err(_) => {}
        }
    }
    for (name, base) in p.resolve_extends() {
        if p.services
            .get(&name)
            .is_some_and(|s| s.extends.as_ref().is_some_and(|e| e.1.is_none()))
        {
            findings.push(compose_invalid(
                &p.files.join(", "),
                &format!("service {name} extends {base}, which is not defined (or the chain loops)"),
            ));
        }
    }
}

/// Reads and merges compose files (the first is the base, the rest
/// overrides, as `docker compose -f a -f b`), interpolated with `vars`.
/// A file that cannot be read or parsed is a finding naming it (and the
/// line); `None` when no file could be used.
pub fn load_compose(
    files: &[PathBuf],
    vars: &BTreeMap<String, String>,
    findings: &mut Vec<Finding>,
) -> Option<ComposeProject> {
    let mut project: Option<ComposeProject> = None;
    for f in files {
        if let Some(p) = load_with_includes(f, vars, 0, findings) {
            match &mut project {
                Some(base) => base.merge(p),
                None => project = Some(p),
            }
        }
    }
    if let Some(p) = &mut project {
        resolve_extends(p, files.first().and_then(|f| f.parent()), vars, findings);
        // Compose reads COMPOSE_PROFILES from .env or the environment.
        let active = vars
            .get("COMPOSE_PROFILES")
            .cloned()
            .or_else(|| std::env::var("COMPOSE_PROFILES").ok())
            .unwrap_or_default();
        p.active_profiles = active
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(p) = &project
        && !p.missing_variables.is_empty()
    {
        let mut f = Finding::new(
            ids::COMPOSE_UNSET_VARIABLES,
            Area::Containers,
            Severity::Info,
            p.files.join(", "),
            format!(
                "{} variables used without a default are not set (compose substitutes an empty string)",
                p.missing_variables.len()
            ),
        );
        for m in &p.missing_variables {
            f = f.evidence(m.clone());
        }
        findings.push(f.fix("set them in mailcow.conf / .env, or pass the right --mailcow-dir"));
    }
    project
}

/// The facts the checks use, from a container inspect answer (the Docker
/// API's shape; Podman's compatible API gives the same).
pub fn facts_from_inspect(i: &ContainerInspectResponse) -> ContainerFacts {
    let state = i.state.as_ref();
    let cfg = i.config.as_ref();
    let labels: BTreeMap<String, String> = cfg
        .and_then(|c| c.labels.clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    let mut command: Vec<String> = cfg.and_then(|c| c.cmd.clone()).unwrap_or_default();
    if command.is_empty() {
        command = i.args.clone().unwrap_or_default();
    }
    let updater_env = cfg
        .and_then(|c| c.env.as_ref())
        .map(|env| {
            env.iter()
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| {
                    k.starts_with("WATCHTOWER_")
                        && !k.contains("PASSWORD")
                        && !k.contains("TOKEN")
                        && !k.contains("URL")
                })
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let health = state.and_then(|s| s.health.as_ref());
    ContainerFacts {
        name: i
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        id: i.id.clone().unwrap_or_default(),
        service: labels.get(SERVICE_LABEL).cloned(),
        project: labels.get(PROJECT_LABEL).cloned(),
        config_image: cfg.and_then(|c| c.image.clone()).unwrap_or_default(),
        image_id: i.image.clone().unwrap_or_default(),
        // Filled from the image's own inspect answer by the caller.
        image_repo_digests: Vec::new(),
        status: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        running: state.and_then(|s| s.running).unwrap_or(false),
        restarting: state.and_then(|s| s.restarting).unwrap_or(false),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        exit_code: state.and_then(|s| s.exit_code).unwrap_or(0),
        error: state.and_then(|s| s.error.clone()).unwrap_or_default(),
        started_at: state.and_then(|s| s.started_at.clone()).unwrap_or_default(),
        finished_at: state.and_then(|s| s.finished_at.clone()).unwrap_or_default(),
        restart_count: i.restart_count.unwrap_or(0),
        health: health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        failing_streak: health.and_then(|h| h.failing_streak).unwrap_or(0),
        labels,
        command,
        updater_env,
    }
}

/// The local tag's facts from an image inspect answer.
pub fn local_tag(reference: &str, image: Option<&ImageInspect>) -> LocalTag {
    let version = image
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.env.as_ref())
        .and_then(|env| {
            env.iter().find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                matches!(
                    k,
                    "MARIADB_VERSION" | "MYSQL_VERSION" | "PG_VERSION" | "REDIS_VERSION"
                )
                .then(|| format!("{k}={v}"))
            })
        });
    LocalTag {
        reference: reference.to_owned(),
        id: image.and_then(|i| i.id.clone()),
        version,
    }
}

fn unavailable(socket: &Path, why: String) -> Finding {
    Finding::new(
        ids::API_UNAVAILABLE,
        Area::Containers,
        Severity::Info,
        socket.display().to_string(),
        format!("containers not checked: {why}"),
    )
    .evidence(format!("socket {}", socket.display()))
    .fix("run on the Docker host as root (or a member of the docker group), or pass --socket PATH (Podman: /run/podman/podman.sock, started by `systemctl start podman.socket`)")
}

/// The pins' kinds alone (no engine to compare them with).
fn pins_only(compose: Option<&ComposeProject>) -> Vec<Finding> {
    compose
        .map(|p| {
            p.services
                .values()
                .flat_map(|s| container::check_pin(s, None, None))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the container checks: every container of the project (state,
/// crash loops, health), each compose service's pin against the container
/// that runs it and the local tag, and auto-updaters anywhere on the engine.
/// `now` is the current time in unix seconds. An unreachable engine is an
/// info finding, not an error.
pub async fn check(cfg: &ContainersConfig, compose: Option<&ComposeProject>, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    if !cfg.socket.exists() {
        out.extend(pins_only(compose));
        out.push(unavailable(
            &cfg.socket,
            format!("no Docker API socket at {}", cfg.socket.display()),
        ));
        return out;
    }
    let docker = match Docker::connect_with_unix(
        &cfg.socket.to_string_lossy(),
        API_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    ) {
        Ok(d) => d,
        Err(e) => {
            out.extend(pins_only(compose));
            out.push(unavailable(&cfg.socket, format!("cannot connect: {e}")));
            return out;
        }
    };
    let list = match docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            out.extend(pins_only(compose));
            out.push(unavailable(
                &cfg.socket,
                format!("listing containers failed: {e}"),
            ));
            return out;
        }
    };
    let mut all: Vec<ContainerFacts> = Vec::new();
    for c in list.iter().take(MAX_CONTAINERS) {
        let Some(id) = c.id.as_deref() else { continue };
        match docker.inspect_container(id, None).await {
            Ok(i) => {
                if super::evidence::active()
                    && let Ok(json) = serde_json::to_vec_pretty(&i)
                {
                    super::evidence::api(&format!("GET /containers/{id}/json"), &json);
                }
                all.push(facts_from_inspect(&i));
            }
            // Removed between list and inspect: simply gone.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            // Anything else (an answer bollard cannot read, a server error)
            // is said, never skipped silently.
            Err(e) => out.push(
                Finding::new(
                    ids::INSPECT_FAILED,
                    Area::Containers,
                    Severity::Warning,
                    c.names
                        .as_ref()
                        .and_then(|n| n.first())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_else(|| id.to_owned()),
                    format!("the container could not be inspected: {e}"),
                )
                .fix("inspect it by hand (`docker inspect NAME`); report the answer if the engine is a supported Docker or Podman"),
            ),
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let mut project: Vec<ContainerFacts> = all
        .iter()
        .filter(|c| c.project.as_deref() == Some(cfg.project.as_str()))
        .cloned()
        .collect();
    if project.is_empty() {
        out.push(
            Finding::new(
                ids::PROJECT_EMPTY,
                Area::Containers,
                Severity::Warning,
                &cfg.project,
                format!(
                    "no container of compose project {} exists on this engine",
                    cfg.project
                ),
            )
            .evidence(format!(
                "{} containers listed through {}, none with label {PROJECT_LABEL}={}",
                all.len(),
                cfg.socket.display(),
                cfg.project
            ))
            .fix("pass the right --project (Mailcow: COMPOSE_PROJECT_NAME in mailcow.conf) or --socket"),
        );
    }
    // One inspect per image, however many containers run it.
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &mut project {
        if c.image_id.is_empty() {
            continue;
        }
        if !digests.contains_key(&c.image_id) {
            let d = match docker.inspect_image(&c.image_id).await {
                Ok(img) => img.repo_digests.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            digests.insert(c.image_id.clone(), d);
        }
        c.image_repo_digests = digests.get(&c.image_id).cloned().unwrap_or_default();
    }
    let mut tags: BTreeMap<String, LocalTag> = BTreeMap::new();
    for c in &project {
        if c.config_image.is_empty() || tags.contains_key(&c.config_image) {
            continue;
        }
        let img = docker.inspect_image(&c.config_image).await.ok();
        tags.insert(c.config_image.clone(), local_tag(&c.config_image, img.as_ref()));
    }
    for c in &project {
        out.extend(container::check_state(c, now));
    }
    match compose {
        Some(p) => {
            for svc in p.services.values() {
                let runs: Vec<&ContainerFacts> = project
                    .iter()
                    .filter(|c| c.service.as_deref() == Some(svc.name.as_str()))
                    .collect();
                if runs.is_empty() {
                    out.extend(container::check_pin(svc, None, None));
                    // A service behind an inactive profile is not started.
                    if svc.image.is_some() && !project.is_empty() && svc.enabled(&p.active_profiles) {
                        out.push(container::service_missing(svc, &cfg.project));
                    }
                }
                for c in runs {
                    out.extend(container::check_pin(svc, Some(c), tags.get(&c.config_image)));
                }
            }
        }
        None => {
            // Without a compose file, the reference each container was
            // created from is the only pin there is.
            for c in &project {
                let svc = ComposeService {
                    name: c.service.clone().unwrap_or_else(|| c.name.clone()),
                    image: Some(c.config_image.clone()),
                    image_source: Some(format!("container {} Config.Image", c.name)),
                    ..ComposeService::default()
                };
                out.extend(container::check_pin(&svc, Some(c), tags.get(&c.config_image)));
            }
        }
    }
    out.extend(container::check_autoupdaters(&all, &project));
    out
}
