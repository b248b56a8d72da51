//! `mailwarden doctor`: checks of the server itself — the compose project's
//! containers against their pins, MariaDB's data directory against the server
//! version, host triage (logins, sessions, users, history, cron, ports),
//! hardening (SSH, firewall, brute-force blocker, logging, certificates). Each
//! part runs alone (`doctor mariadb`) or all together (`doctor`). Every
//! check is read-only. Findings print grouped by area, worst first, or as
//! JSON lines; exit 1 when any finding fails, 2 on errors.

mod containers;
mod hardening;
mod host;
mod mariadb;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mailwarden_core::doctor::{Area, Finding, Severity, sort_findings};
use mailwarden_core::escape::escape_for_terminal;

use super::dns::label;
use crate::output::{json_line, stdout};

/// Flags of `mailwarden doctor`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mailwarden doctor                       # every part, on a Mailcow host\n  \
    mailwarden doctor mariadb --datadir /var/lib/docker/volumes/mailcowdockerized_mysql-vol-1/_data\n  \
    mailwarden doctor host --json\n  \
    mailwarden doctor containers --socket /run/podman/podman.sock")]
pub struct DoctorArgs {
    /// One part only (default: every part).
    #[command(subcommand)]
    pub part: Option<Part>,
    /// Options every part shares.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options every part of `doctor` shares.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Mailcow installation directory (default: /opt/mailcow-dockerized when present).
    #[arg(long, value_name = "DIR", global = true)]
    pub mailcow_dir: Option<PathBuf>,
    /// Print one JSON object per finding (JSON lines).
    #[arg(long, global = true)]
    pub json: bool,
    /// Also list the checks that passed.
    #[arg(long, global = true)]
    pub all: bool,
    /// Keep an evidence bundle in DIR (which must not exist or be empty):
    /// a copy of every file, command output and Docker answer the checks
    /// read (password hashes and secret-looking values redacted), the
    /// findings, a collection log with the commands run, and a SHA-256
    /// manifest (manifest.json, manifest.sha256 for `sha256sum -c`).
    #[arg(long, value_name = "DIR", global = true)]
    pub evidence: Option<PathBuf>,
    /// With --evidence, also pack the bundle into DIR.tar.gz.
    #[arg(long, requires = "evidence", global = true)]
    pub tar: bool,
}

/// The parts of `doctor`.
#[derive(Debug, Subcommand)]
pub enum Part {
    /// The compose project's containers: state, health, restarts, exit
    /// codes, OOM kills, crash loops; the image running against the compose
    /// file's pin, floating tags, re-pulled tags, auto-updaters.
    Containers(containers::ContainersArgs),
    /// MariaDB's data directory against the server that runs it: the
    /// version that last wrote it (upgrade info, redo log header), failed
    /// recoveries, and the first fatal line of the server's log; a downgrade
    /// is named as such, with the recovery playbook.
    Mariadb(mariadb::MariadbArgs),
    /// Host triage: who is and was logged in (utmp, wtmp, btmp), sshd
    /// logins, shell histories and signs of tampering, recently changed
    /// crontabs, timers, users, sudoers and authorized_keys, listening ports
    /// with their processes.
    Host(host::HostArgs),
    /// Hardening: SSH settings (root login, passwords), input filtering,
    /// a brute-force blocker (fail2ban, CrowdSec, Mailcow netfilter), central
    /// logging, how long logs survive (Docker rotation, Mailcow's LOG_LINES),
    /// TLS certificate expiry; on Mailcow, an open relay through Docker's
    /// userland proxy (IPv6 clients seen as the trusted Docker gateway) and
    /// the checkout against the newest release tag it knows.
    Hardening(hardening::HardeningArgs),
}

/// One part of `doctor`, run with its default flags.
type PartFn<'a> = Box<dyn Fn(&mut Vec<Finding>) -> anyhow::Result<()> + 'a>;

/// Runs `mailwarden doctor`.
pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let common = args.common;
    if let Some(dir) = &common.evidence {
        let line: Vec<String> = std::env::args().collect();
        mailwarden_io::doctor::evidence::start(dir, &line.join(" "))
            .map_err(|e| anyhow::anyhow!("--evidence {}: {e}", dir.display()))?;
    }
    let mut findings: Vec<Finding> = Vec::new();
    match args.part {
        Some(Part::Containers(a)) => containers::run(&common, &a, &mut findings)?,
        Some(Part::Mariadb(a)) => mariadb::run(&common, &a, &mut findings)?,
        Some(Part::Host(a)) => host::run(&common, &a, &mut findings)?,
        Some(Part::Hardening(a)) => hardening::run(&common, &a, &mut findings)?,
        None => {
            // A part that cannot run at all is a finding, not the end of
            // the other parts.
            let parts: [(&str, PartFn<'_>); 4] = [
                (
                    "containers",
                    Box::new(|f: &mut Vec<Finding>| containers::run(&common, &Default::default(), f)),
                ),
                (
                    "mariadb",
                    Box::new(|f: &mut Vec<Finding>| mariadb::run(&common, &Default::default(), f)),
                ),
                (
                    "host",
                    Box::new(|f: &mut Vec<Finding>| host::run(&common, &Default::default(), f)),
                ),
                (
                    "hardening",
                    Box::new(|f: &mut Vec<Finding>| hardening::run(&common, &Default::default(), f)),
                ),
            ];
            for (name, part) in parts {
                if let Err(e) = part(&mut findings) {
                    findings.push(
                        Finding::new(
                            "doctor.part.failed",
                            Area::Doctor,
                            Severity::Warning,
                            name,
                            format!("the {name} checks could not run: {e:#}"),
                        )
                        .fix(format!("run `mailwarden doctor {name}` for details")),
                    );
                }
            }
        }
    }
    sort_findings(&mut findings);
    if let Some(dir) = &common.evidence {
        let mut jsonl = Vec::new();
        for f in &findings {
            json_line(&mut jsonl, f)?;
        }
        let m = mailwarden_io::doctor::evidence::finish(&jsonl, common.tar)
            .map_err(|e| anyhow::anyhow!("--evidence {}: {e}", dir.display()))?;
        eprintln!(
            "mailwarden: evidence: {} files in {}{}{}",
            m.entries.len(),
            dir.display(),
            if common.tar { " (and .tar.gz)" } else { "" },
            if m.not_copied > 0 {
                format!("; {} artifacts not copied (size bound)", m.not_copied)
            } else {
                String::new()
            }
        );
    }
    let mut out = stdout();
    if common.json {
        for f in &findings {
            json_line(&mut out, f)?;
        }
    } else {
        out.write_all(render(&findings, common.all).as_bytes())?;
    }
    out.flush()?;
    Ok(if findings.iter().any(|f| f.severity == Severity::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn area_title(a: Area) -> &'static str {
    match a {
        Area::Containers => "Containers",
        Area::Mariadb => "MariaDB data directory",
        Area::Host => "Host triage",
        Area::Hardening => "Hardening",
        Area::Doctor => "Doctor",
    }
}

/// Most evidence lines shown per finding in text (JSON has them all).
const MAX_EVIDENCE: usize = 8;

/// The text report: areas in order, findings worst first; passes only with `all`.
fn render(findings: &[Finding], all: bool) -> String {
    let esc = |t: &str| escape_for_terminal(t).into_owned();
    let mut s = String::new();
    let count = |sev: Severity| findings.iter().filter(|f| f.severity == sev).count();
    let _ = writeln!(
        s,
        "doctor: {} fail, {} warning, {} info, {} passed",
        count(Severity::Fail),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Pass)
    );
    let mut area: Option<Area> = None;
    for f in findings.iter().filter(|f| all || f.severity != Severity::Pass) {
        if area != Some(f.area) {
            area = Some(f.area);
            let _ = writeln!(s, "\n{}", area_title(f.area));
        }
        let _ = writeln!(
            s,
            "  {:<4} {}  {}: {}",
            label(f.severity),
            f.id,
            esc(&f.subject),
            esc(&f.message)
        );
        for e in f.evidence.iter().take(MAX_EVIDENCE) {
            let _ = writeln!(s, "         > {}", esc(e));
        }
        if f.evidence.len() > MAX_EVIDENCE {
            let _ = writeln!(
                s,
                "         > … {} more (see --json)",
                f.evidence.len() - MAX_EVIDENCE
            );
        }
        if let Some(fix) = &f.fix {
            let _ = writeln!(s, "         fix: {}", esc(fix));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_groups_by_area_and_hides_passes() {
        let mut f = vec![
            Finding::new("host.x.ok", Area::Host, Severity::Pass, "a", "fine"),
            Finding::new("mariadb.x.bad", Area::Mariadb, Severity::Fail, "b", "bad\x1b[2J")
                .fix("do this")
                .evidence("read from /x"),
        ];
        sort_findings(&mut f);
        let t = render(&f, false);
        assert!(
            t.starts_with("doctor: 1 fail, 0 warning, 0 info, 1 passed"),
            "{t}"
        );
        assert!(
            t.contains("MariaDB data directory\n  FAIL mariadb.x.bad  b: bad"),
            "{t}"
        );
        assert!(!t.contains('\x1b'), "escaped: {t}");
        assert!(t.contains("fix: do this") && t.contains("> read from /x"), "{t}");
        assert!(!t.contains("host.x.ok"), "{t}");
        assert!(render(&f, true).contains("ok   host.x.ok"));
    }
}
