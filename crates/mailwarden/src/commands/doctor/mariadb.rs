//! `mailwarden doctor mariadb`: MariaDB's data directory against the server
//! that runs it — the version that last wrote it (upgrade info, redo log
//! header), the redo log's shutdown state, Aria's failed recoveries, and the
//! first fatal line of the server's log. Read-only.

use std::path::PathBuf;

use clap::Args;
use mailwarden_core::doctor::Finding;
use mailwarden_io::doctor::mariadb::{MariadbConfig, check};

use super::CommonArgs;

/// Flags of `doctor mariadb`.
#[derive(Debug, Args, Default)]
pub struct MariadbArgs {
    /// The MariaDB data directory (default: the host path mounted at
    /// /var/lib/mysql in Mailcow's mysql-mailcow container; without a
    /// Docker socket, this host's own /var/lib/mysql when it exists).
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// The server version to compare with (e.g. 10.11.6 or 10.11; default:
    /// `mariadbd --version` with --datadir, else the container's image).
    #[arg(long, value_name = "V")]
    pub server_version: Option<String>,
    /// The server's error log (default: the container's log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The Docker (or Podman) API socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The mariadbd binary asked for its version.
    #[arg(long, value_name = "PATH")]
    pub mariadbd: Option<PathBuf>,
}

/// Runs the mariadb checks, adding their findings.
pub fn run(_common: &CommonArgs, args: &MariadbArgs, findings: &mut Vec<Finding>) -> anyhow::Result<()> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    // No Docker here: a MariaDB of the host itself (a plain Postfix host
    // with a local database) is the one to check.
    let local = PathBuf::from("/var/lib/mysql");
    let datadir = args
        .datadir
        .clone()
        .or_else(|| (!socket.exists() && local.join("mysql").is_dir()).then_some(local));
    let cfg = MariadbConfig {
        datadir,
        server_version: args.server_version.clone(),
        log: args.log.clone(),
        socket,
        mariadbd: args.mariadbd.clone().unwrap_or_else(|| {
            let sbin = PathBuf::from("/usr/sbin/mariadbd");
            if sbin.exists() {
                sbin
            } else {
                PathBuf::from("mariadbd")
            }
        }),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    findings.extend(rt.block_on(check(&cfg)));
    Ok(())
}
