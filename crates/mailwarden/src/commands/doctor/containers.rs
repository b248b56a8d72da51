//! `mailwarden doctor containers`: the compose project's containers through
//! the Docker API (state, health, restarts, crash loops, OOM kills), the
//! image each runs against the compose file's pin, floating tags, re-pulled
//! tags and auto-updaters. The project name, compose files and variables
//! come from the Mailcow installation when one is found.

use std::path::{Path, PathBuf};

use clap::Args;
use mailwarden_core::doctor::{Area, Finding, Severity};
use mailwarden_io::doctor::docker::{self, ContainersConfig};
use mailwarden_io::mailcow::{MailcowConf, find_install};

use super::CommonArgs;

/// Docker's socket.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Podman's Docker-compatible socket (rootful).
const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// Mailcow's project name when nothing else says otherwise.
const DEFAULT_PROJECT: &str = "mailcowdockerized";

/// Flags of `doctor containers`.
#[derive(Debug, Args, Default)]
pub struct ContainersArgs {
    /// The engine's API socket (default: /var/run/docker.sock, else /run/podman/podman.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The compose project (default: COMPOSE_PROJECT_NAME of mailcow.conf, else mailcowdockerized).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// A compose file; repeat for overrides, in order (default: the Mailcow
    /// directory's docker-compose.yml and docker-compose.override.yml).
    #[arg(long = "compose", value_name = "FILE")]
    pub compose: Vec<PathBuf>,
}

fn default_socket() -> PathBuf {
    [DOCKER_SOCKET, PODMAN_SOCKET]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(DOCKER_SOCKET))
}

/// Runs the containers checks, adding their findings.
pub fn run(common: &CommonArgs, args: &ContainersArgs, findings: &mut Vec<Finding>) -> anyhow::Result<()> {
    let mailcow = find_install(common.mailcow_dir.as_deref());
    let mut files = args.compose.clone();
    let mut env_files = Vec::new();
    let mut project = args.project.clone();
    match &mailcow {
        Some(dir) => {
            env_files.push(dir.join(".env"));
            env_files.push(dir.join("mailcow.conf"));
            if files.is_empty() {
                files.push(dir.join("docker-compose.yml"));
                let over = dir.join("docker-compose.override.yml");
                if over.is_file() {
                    files.push(over);
                }
            }
            if project.is_none()
                && let Ok(conf) = MailcowConf::load(dir)
            {
                project = Some(conf.compose_project());
            }
        }
        None => {
            // Compose's own variables file beside the first compose file.
            if let Some(dir) = args.compose.first().and_then(|f| f.parent()) {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                env_files.push(dir.join(".env"));
            }
        }
    }
    let vars = docker::read_env_files(&env_files, findings);
    let project = project
        .or_else(|| {
            vars.get("COMPOSE_PROJECT_NAME")
                .filter(|p| !p.is_empty())
                .cloned()
        })
        .unwrap_or_else(|| DEFAULT_PROJECT.to_owned());
    let compose = if files.is_empty() {
        findings.push(
            Finding::new(
                docker::ids::COMPOSE_NONE,
                Area::Containers,
                Severity::Info,
                &project,
                "no compose file: running images were not compared with pins",
            )
            .evidence(match &common.mailcow_dir {
                Some(d) => format!("no mailcow.conf in {}", d.display()),
                None => {
                    "no Mailcow installation found (current directory, /opt/mailcow-dockerized)".to_owned()
                }
            })
            .fix("pass --mailcow-dir DIR or --compose FILE"),
        );
        None
    } else {
        docker::load_compose(&files, &vars, findings)
    };
    let cfg = ContainersConfig {
        socket: args.socket.clone().unwrap_or_else(default_socket),
        project,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    findings.extend(rt.block_on(docker::check(&cfg, compose.as_ref(), now)));
    Ok(())
}
