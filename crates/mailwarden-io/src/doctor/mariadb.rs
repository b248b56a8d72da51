//! `doctor mariadb`, the reading half: the data directory's upgrade-info
//! file, `ib_logfile0` header and `aria_log_control` (bounded, read-only
//! reads), the server version (`--server-version`, the container's image,
//! or `mariadbd --version`), and the server's log (a file, or the container's
//! log through the Docker API), turned into findings by
//! `mailwarden_core::doctor::mariadb`.
//!
//! Without `--datadir` the data directory is found through the Docker API:
//! the container of the compose service `mysql-mailcow` and the host source
//! of its `/var/lib/mysql` mount. Nothing is started, written or changed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use mailwarden_core::doctor::mariadb::{
    self as core, Observed, REDO_HEADER_BYTES, ServerVersion, Version, parse_aria_control, parse_image_tag,
    parse_mariadbd_version, parse_redo_header, parse_upgrade_info,
};
use mailwarden_core::doctor::{Area, Finding, Severity};

use crate::collect::docker::SERVICE_LABEL;

/// Seconds bollard waits for an answer.
const API_TIMEOUT_SECS: u64 = 20;
/// Largest upgrade-info / aria control file read.
const MAX_SMALL_FILE: u64 = 4096;
/// Bytes read from the end of a log file.
pub const MAX_LOG_BYTES: u64 = 8 << 20;
/// Longest log line kept.
const MAX_LOG_LINE: usize = 4096;
/// Lines asked from the container's log.
const LOG_TAIL_LINES: &str = "5000";
/// Mailcow's MariaDB compose service.
pub const MAILCOW_MYSQL_SERVICE: &str = "mysql-mailcow";
/// Where the MariaDB image keeps its data directory.
pub const CONTAINER_DATADIR: &str = "/var/lib/mysql";

/// Finding ids of this module (the checks' ids are in `mailwarden_core::doctor::mariadb`).
pub mod ids {
    /// The Docker API could not be reached: the container was not looked at (info).
    pub const DOCKER_UNAVAILABLE: &str = "mariadb.docker.unavailable";
    /// No container of the `mysql-mailcow` service exists (info).
    pub const CONTAINER_NOT_FOUND: &str = "mariadb.container.not-found";
    /// No data directory was given or found: nothing was read (info).
    pub const DATADIR_NOT_FOUND: &str = "mariadb.datadir.not-found";
    /// The data directory or one of its files could not be read (warning).
    pub const DATADIR_UNREADABLE: &str = "mariadb.datadir.unreadable";
    /// The log file could not be read (warning).
    pub const LOG_UNREADABLE: &str = "mariadb.log.unreadable";
    /// No log was given or found (info).
    pub const LOG_NONE: &str = "mariadb.log.none";
}

/// What `doctor mariadb` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariadbConfig {
    /// The data directory; `None` finds it through the Docker API.
    pub datadir: Option<PathBuf>,
    /// The server version as given (`10.11.6`, `10.11`).
    pub server_version: Option<String>,
    /// The server's error log; `None` reads the container's log.
    pub log: Option<PathBuf>,
    /// The engine's API socket.
    pub socket: PathBuf,
    /// The `mariadbd` binary asked for `--version` when the data dir was given.
    pub mariadbd: PathBuf,
}

fn finding(id: &'static str, sev: Severity, subject: impl Into<String>, msg: impl Into<String>) -> Finding {
    Finding::new(id, Area::Mariadb, sev, subject, msg)
}

/// Reads at most `max` bytes from the start of `path` (opened read-only).
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(max).read_to_end(&mut buf)?;
    let part = if buf.len() as u64 >= max {
        format!("first {} bytes", buf.len())
    } else {
        "whole file".to_owned()
    };
    super::evidence::file(path, &buf, &part);
    Ok(buf)
}

/// Reads one file of the data directory: `None` when it does not exist;
/// a read error is a finding.
fn read_part<T>(
    dir: &Path,
    name: &str,
    max: u64,
    decode: impl Fn(&[u8]) -> Result<T, core::DecodeError>,
    findings: &mut Vec<Finding>,
) -> Option<(String, Result<T, core::DecodeError>)> {
    let path = dir.join(name);
    let shown = path.display().to_string();
    match read_bounded(&path, max) {
        Ok(b) => Some((shown, decode(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            findings.push(
                finding(
                    ids::DATADIR_UNREADABLE,
                    Severity::Warning,
                    &shown,
                    format!("cannot read {name}: {e}"),
                )
                .fix("run mailwarden as root (the data directory is owned by the mysql user, mode 700)")
                .evidence(format!("{shown}: {e}")),
            );
            None
        }
    }
}

/// The shutdown state of a pre-10.8 redo log: reads the one 512-byte block
/// that holds the checkpoint (in `ib_logfileN`, all files the size of
/// `ib_logfile0`).
fn old_checkpoint_state(dir: &Path, cp: &core::OldCheckpoint) -> core::RedoState {
    let first = dir.join("ib_logfile0");
    let Ok(size) = std::fs::metadata(&first).map(|m| m.len()) else {
        return core::RedoState::NotDetermined;
    };
    let Some((file, at)) = cp.block_location(size) else {
        return core::RedoState::NotDetermined;
    };
    let path = dir.join(format!("ib_logfile{file}"));
    let mut block = vec![0u8; 512];
    let read = File::open(&path).and_then(|mut f| {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut block)
    });
    match read {
        Ok(()) => {
            super::evidence::file(
                &path,
                &block,
                &format!("512 bytes at {at} (the block of the last checkpoint)"),
            );
            core::old_format_state(cp, &block)
        }
        Err(_) => core::RedoState::NotDetermined,
    }
}

/// Reads the version files of a data directory.
pub fn read_datadir(dir: &Path, findings: &mut Vec<Finding>) -> Observed {
    let mut o = Observed {
        datadir: dir.display().to_string(),
        ..Observed::default()
    };
    if let Err(e) = std::fs::read_dir(dir) {
        findings.push(
            finding(
                ids::DATADIR_UNREADABLE,
                Severity::Warning,
                &o.datadir,
                format!("cannot read the data directory: {e}"),
            )
            .fix("pass the MariaDB data directory with --datadir and run as root")
            .evidence(format!("{}: {e}", o.datadir)),
        );
        return o;
    }
    // 11.x writes mariadb_upgrade_info; older versions mysql_upgrade_info.
    o.upgrade_info = read_part(
        dir,
        "mariadb_upgrade_info",
        MAX_SMALL_FILE,
        parse_upgrade_info,
        findings,
    )
    .or_else(|| {
        read_part(
            dir,
            "mysql_upgrade_info",
            MAX_SMALL_FILE,
            parse_upgrade_info,
            findings,
        )
    });
    o.redo = read_part(
        dir,
        "ib_logfile0",
        REDO_HEADER_BYTES as u64,
        parse_redo_header,
        findings,
    );
    if let Some((_, Ok(r))) = &mut o.redo
        && let Some(cp) = r.old_checkpoint
    {
        r.state = old_checkpoint_state(dir, &cp);
    }
    o.aria = read_part(
        dir,
        "aria_log_control",
        MAX_SMALL_FILE,
        parse_aria_control,
        findings,
    );
    o
}

/// The version `binary --version` prints; `None` when it cannot run.
pub fn mariadbd_version(binary: &Path) -> Option<ServerVersion> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let shown = binary.display().to_string();
    super::evidence::command(&[&shown, "--version"], &out.stdout, &out.status.to_string());
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_mariadbd_version(&text)?;
    Some(ServerVersion {
        version,
        source: format!("`{} --version`: {}", binary.display(), text.trim()),
    })
}

/// The last [`MAX_LOG_BYTES`] of a log file as lines (each cut at 4 KiB).
pub fn read_log_tail(path: &Path) -> io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(MAX_LOG_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(MAX_LOG_BYTES).read_to_end(&mut buf)?;
    super::evidence::file(
        path,
        &buf,
        &if start > 0 {
            format!("last {} bytes", buf.len())
        } else {
            "whole file".to_owned()
        },
    );
    let mut lines: Vec<String> = buf.split(|b| *b == b'\n').map(cut_line).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // a partial line
    }
    Ok(lines)
}

fn cut_line(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_LOG_LINE)])
        .trim_end_matches('\r')
        .to_owned()
}

/// Mailcow's MariaDB container as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlContainer {
    /// Container name (without the slash).
    pub name: String,
    /// Container id.
    pub id: String,
    /// The image reference it was created from.
    pub image: String,
    /// The host path mounted at `/var/lib/mysql`.
    pub datadir: Option<PathBuf>,
    /// The server version from the image's `MARIADB_VERSION` or its tag.
    pub server: Option<ServerVersion>,
    /// Whether the container is running now.
    pub running: bool,
}

/// Connects to the API at `socket`.
fn connect(socket: &Path) -> Result<Docker, String> {
    if !socket.exists() {
        return Err(format!("no Docker API socket at {}", socket.display()));
    }
    Docker::connect_with_unix(
        &socket.to_string_lossy(),
        API_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| format!("Docker API at {}: {e}", socket.display()))
}

/// Finds the container of the `mysql-mailcow` compose service (any project).
pub async fn find_mysql_container(socket: &Path) -> Result<Option<MysqlContainer>, String> {
    let docker = connect(socket)?;
    let opts = ListContainersOptions {
        all: true,
        filters: Some(
            [(
                "label".to_owned(),
                vec![format!("{SERVICE_LABEL}={MAILCOW_MYSQL_SERVICE}")],
            )]
            .into(),
        ),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| format!("Docker API at {}: {e}", socket.display()))?;
    let Some(id) = list.into_iter().find_map(|c| c.id) else {
        return Ok(None);
    };
    let i = docker
        .inspect_container(&id, None)
        .await
        .map_err(|e| format!("Docker API at {}: inspecting {id}: {e}", socket.display()))?;
    let name = i
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let config = i.config.as_ref();
    let image = config.and_then(|c| c.image.clone()).unwrap_or_default();
    let datadir = i.mounts.as_ref().and_then(|ms| {
        ms.iter()
            .find(|m| m.destination.as_deref() == Some(CONTAINER_DATADIR))
            .and_then(|m| m.source.clone())
            .map(PathBuf::from)
    });
    let env_version = config.and_then(|c| c.env.as_ref()).and_then(|env| {
        env.iter().find_map(|e| {
            let v = e.strip_prefix("MARIADB_VERSION=")?;
            let after_epoch = v.split_once(':').map_or(v, |(_, r)| r);
            Some(ServerVersion {
                version: Version::find(after_epoch)?,
                source: format!("container {name}: {e}"),
            })
        })
    });
    let server = env_version.or_else(|| {
        parse_image_tag(&image).map(|version| ServerVersion {
            version,
            source: format!("container {name}: image {image}"),
        })
    });
    let running = i.state.as_ref().and_then(|st| st.running).unwrap_or(false);
    Ok(Some(MysqlContainer {
        name,
        id,
        image,
        datadir,
        server,
        running,
    }))
}

/// The last lines of a container's log (stdout and stderr).
pub async fn container_log_lines(socket: &Path, id: &str) -> Result<Vec<String>, String> {
    let docker = connect(socket)?;
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        tail: LOG_TAIL_LINES.to_owned(),
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(opts));
    let mut lines = Vec::new();
    let mut total = 0u64;
    while let Some(item) = stream.next().await {
        let bytes = item
            .map_err(|e| format!("Docker API at {}: logs of {id}: {e}", socket.display()))?
            .into_bytes();
        total += bytes.len() as u64;
        if total > MAX_LOG_BYTES {
            break;
        }
        lines.extend(
            bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(cut_line),
        );
    }
    Ok(lines)
}

/// A MariaDB (or MySQL) server of this host running on `dir`: the server
/// changes its working directory to its data directory, so a `mariadbd` or
/// `mysqld` process whose `/proc/PID/cwd` is `dir` is the one.
pub fn local_server_on(dir: &Path) -> Option<String> {
    let want = std::fs::canonicalize(dir).ok()?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !matches!(comm, "mariadbd" | "mysqld") {
            continue;
        }
        if std::fs::read_link(e.path().join("cwd")).ok().as_deref() == Some(want.as_path()) {
            return Some(format!("{comm} (pid {pid}) runs on it"));
        }
    }
    None
}

/// Runs every check of `doctor mariadb`.
pub async fn check(cfg: &MariadbConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let given_server = cfg.server_version.as_deref().map(|s| match Version::find(s) {
        Some(version) => Ok(ServerVersion {
            version,
            source: format!("--server-version {s}"),
        }),
        None => Err(s.to_owned()),
    });
    let mut server = match given_server {
        Some(Ok(s)) => Some(s),
        Some(Err(s)) => {
            findings.push(
                finding(
                    "mariadb.server.version-invalid",
                    Severity::Warning,
                    &s,
                    "--server-version holds no version number",
                )
                .fix("pass it as MAJOR.MINOR[.PATCH], e.g. --server-version 10.11.6"),
            );
            None
        }
        None => None,
    };
    if server.is_none() && cfg.datadir.is_some() {
        server = mariadbd_version(&cfg.mariadbd);
    }
    let need_docker = cfg.datadir.is_none() || server.is_none() || cfg.log.is_none();
    let mut container = None;
    if need_docker {
        match find_mysql_container(&cfg.socket).await {
            Ok(Some(c)) => container = Some(c),
            Ok(None) => findings.push(
                finding(
                    ids::CONTAINER_NOT_FOUND,
                    Severity::Info,
                    cfg.socket.display().to_string(),
                    format!("no container of the compose service {MAILCOW_MYSQL_SERVICE}: its data directory, image and log were not looked at"),
                )
                .fix("pass --datadir, --server-version and --log for a MariaDB outside Mailcow"),
            ),
            Err(e) => findings.push(
                finding(ids::DOCKER_UNAVAILABLE, Severity::Info, cfg.socket.display().to_string(), format!("not checked through Docker: {e}"))
                    .fix("run on the Docker host as root, pass the socket with --socket, or pass --datadir, --server-version and --log"),
            ),
        }
    }
    if server.is_none() {
        server = container.as_ref().and_then(|c| c.server.clone());
    }
    let datadir = cfg
        .datadir
        .clone()
        .or_else(|| container.as_ref().and_then(|c| c.datadir.clone()));
    match &datadir {
        Some(dir) => {
            let mut o = read_datadir(dir, &mut findings);
            o.server = server.clone();
            o.server_running = match container.as_ref().filter(|c| c.running && cfg.datadir.is_none()) {
                Some(c) => Some(format!("container {} is running", c.name)),
                None => local_server_on(dir),
            };
            findings.extend(core::classify(&o));
        }
        None => findings.push(
            finding(ids::DATADIR_NOT_FOUND, Severity::Info, "datadir", "no data directory given or found: the data directory was not checked")
                .fix("pass it with --datadir (Mailcow: /var/lib/docker/volumes/mailcowdockerized_mysql-vol-1/_data)"),
        ),
    }
    if let Some(log) = &cfg.log {
        let shown = log.display().to_string();
        match read_log_tail(log) {
            Ok(lines) => findings.extend(core::log_findings(
                &core::diagnose_log(lines.iter().map(String::as_str)),
                &shown,
            )),
            Err(e) => findings.push(
                finding(
                    ids::LOG_UNREADABLE,
                    Severity::Warning,
                    &shown,
                    format!("cannot read the log: {e}"),
                )
                .fix("pass a readable MariaDB error log with --log")
                .evidence(format!("{shown}: {e}")),
            ),
        }
    } else if let Some(c) = &container {
        let source = format!("docker logs {}", c.name);
        match container_log_lines(&cfg.socket, &c.id).await {
            Ok(lines) => {
                if super::evidence::active() {
                    let text = lines.join("\n");
                    super::evidence::api(&format!("GET /containers/{}/logs", c.id), text.as_bytes());
                }
                findings.extend(core::log_findings(
                    &core::diagnose_log(lines.iter().map(String::as_str)),
                    &source,
                ));
            }
            Err(e) => findings.push(
                finding(
                    ids::LOG_UNREADABLE,
                    Severity::Warning,
                    &source,
                    format!("cannot read the container's log: {e}"),
                )
                .fix("pass the log with --log (`docker logs CONTAINER > file`)"),
            ),
        }
    } else {
        findings.push(
            finding(
                ids::LOG_NONE,
                Severity::Info,
                "log",
                "no MariaDB log given or found: its first fatal line was not checked",
            )
            .fix("pass the server's error log with --log"),
        );
    }
    findings
}
