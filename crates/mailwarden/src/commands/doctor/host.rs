//! `mailwarden doctor host`: read-only host triage — sessions and login
//! history (utmp, wtmp, btmp), sshd logins, shell histories and signs of
//! tampering, users with UID 0 and recent password changes, sudoers,
//! `authorized_keys`, crontabs and systemd units changed recently, listening
//! ports with their processes, and `dpkg --verify`.
//!
//! The checks live in `mailwarden_io::doctor::host`; the finding ids are
//! documented there and in `mailwarden_core::doctor::logins`. `--root` points
//! the file checks at another tree (a mounted image, a test fixture); procfs
//! and dpkg are only consulted when the root is `/`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use mailwarden_core::doctor::Finding;
use mailwarden_io::doctor::host::{HostConfig, check_host};

use super::CommonArgs;
use crate::cli::parse_duration_secs;

/// Flags of `doctor host`.
#[derive(Debug, Args, Default)]
pub struct HostArgs {
    /// Read every file under this directory instead of `/` (a mounted disk
    /// image, a copy of a server). Listening ports and dpkg are then skipped.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// How far back changes and logins count as recent (90s, 15m, 24h, 7d, 2w).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub since: Option<i64>,
    /// Do not run `dpkg --verify` (it takes tens of seconds).
    #[arg(long)]
    pub no_dpkg: bool,
}

/// Default window: 7 days.
const DEFAULT_SINCE_SECS: i64 = 7 * 86_400;
/// Longest `dpkg --verify` may run.
const DPKG_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the host checks, adding their findings.
pub fn run(_common: &CommonArgs, args: &HostArgs, findings: &mut Vec<Finding>) -> anyhow::Result<()> {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let meta = std::fs::metadata(&root).with_context(|| {
        format!(
            "--root {}: cannot read it; name an existing directory (the root of the tree to triage)",
            root.display()
        )
    })?;
    anyhow::ensure!(
        meta.is_dir(),
        "--root {}: not a directory; name the root of the tree to triage",
        root.display()
    );
    let live = std::fs::canonicalize(&root).is_ok_and(|r| r == std::path::Path::new("/"));
    let secs = args.since.unwrap_or(DEFAULT_SINCE_SECS).max(0);
    let since = SystemTime::now()
        .checked_sub(Duration::from_secs(secs.unsigned_abs()))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let cfg = HostConfig {
        root,
        since,
        live,
        dpkg: !args.no_dpkg,
        dpkg_timeout: DPKG_TIMEOUT,
    };
    findings.extend(check_host(&cfg));
    Ok(())
}
