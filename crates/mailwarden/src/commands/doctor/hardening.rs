//! `mailwarden doctor hardening`: Lynis-style checks of what protects the
//! server — SSH settings, input filtering, a brute-force blocker, central
//! logging, how long logs survive (Docker rotation, Mailcow's `LOG_LINES`),
//! the TLS certificate; on Mailcow, an open relay through Docker's userland
//! proxy and how far the checkout is behind its releases. Reads files under
//! `--root` (default `/`); the
//! firewall is listed with `nft list ruleset` and `iptables-save` (listing
//! only) when the root is this machine's, or read from files given.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use mailwarden_core::doctor::hardening::{
    FirewallView, RelayRisk, SshdSettings, bruteforce_blocker, bruteforce_findings, certificate_findings,
    docker_logging_findings, firewall_findings, logging_findings, mailcow_chain, mailcow_checkout_findings,
    mailcow_log_lines_findings, postfix_mynetworks, read_iptables_save, read_nft, read_sshd_config,
    relay_risk_findings, ssh_findings, syslog_forwarding,
};
use mailwarden_core::doctor::{Area, Finding, Severity};
use mailwarden_io::doctor::evidence;

use super::CommonArgs;

/// A firewall listing: its name, a saved copy given, the command that
/// lists it live, and its reader.
type Listing<'a> = (
    &'a str,
    &'a Option<PathBuf>,
    &'a [&'a str],
    fn(&str) -> FirewallView,
);

/// Longest configuration file read, in bytes.
const MAX_FILE: u64 = 4 << 20;

/// Flags of `doctor hardening`.
#[derive(Debug, Args, Default)]
pub struct HardeningArgs {
    /// Read the system's files under this directory instead of / (an
    /// image or a copy of a server's /etc). Processes and the live firewall
    /// are only looked at when this is /.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A saved `nft list ruleset` output to judge instead of the live one.
    #[arg(long, value_name = "FILE")]
    pub nft_ruleset: Option<PathBuf>,
    /// A saved `iptables-save` output to judge instead of the live one.
    #[arg(long, value_name = "FILE")]
    pub iptables_save: Option<PathBuf>,
    /// Another certificate (PEM) to check for expiry (repeatable).
    #[arg(long = "cert", value_name = "PEM")]
    pub certs: Vec<PathBuf>,
}

/// Runs the hardening checks, adding their findings.
pub fn run(common: &CommonArgs, args: &HardeningArgs, findings: &mut Vec<Finding>) -> anyhow::Result<()> {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !root.is_dir() {
        anyhow::bail!("--root {}: not a directory", root.display());
    }
    let live = root == Path::new("/");
    let at = |p: &str| root.join(p.trim_start_matches('/'));

    // SSH.
    let sshd = at("/etc/ssh/sshd_config");
    match read(&sshd) {
        Some(text) => {
            let mut s = SshdSettings::default();
            let mut include = |pattern: &str| {
                let full = if pattern.starts_with('/') {
                    at(pattern)
                } else {
                    at("/etc/ssh").join(pattern)
                };
                let mut files: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                    .map(|g| g.flatten().collect())
                    .unwrap_or_default();
                files.sort();
                files
                    .into_iter()
                    .filter_map(|p| read(&p).map(|t| (p.display().to_string(), t)))
                    .collect()
            };
            read_sshd_config(&mut s, &sshd.display().to_string(), &text, &mut include, 0);
            findings.extend(ssh_findings(&s));
        }
        None => findings.push(not_checked(
            "hardening.ssh.not-checked",
            "sshd",
            format!(
                "{} is absent or unreadable: SSH settings not checked",
                sshd.display()
            ),
        )),
    }

    // Firewall (and Mailcow's netfilter chain in it).
    let mut views: Vec<(String, FirewallView)> = Vec::new();
    let mut mailcow_in: Option<String> = None;
    let listings: [Listing<'_>; 2] = [
        (
            "nft list ruleset",
            &args.nft_ruleset,
            &["nft", "list", "ruleset"],
            read_nft,
        ),
        (
            "iptables-save",
            &args.iptables_save,
            &["iptables-save"],
            read_iptables_save,
        ),
    ];
    for (name, file, cmd, reader) in listings {
        let text = match file {
            Some(f) => read(f).ok_or_else(|| anyhow::anyhow!("{}: cannot read it", f.display()))?,
            None if live => match list(cmd) {
                Some(t) => t,
                None => continue,
            },
            None => continue,
        };
        if mailcow_chain(&text) && mailcow_in.is_none() {
            mailcow_in = Some(name.to_owned());
        }
        let v = reader(&text);
        if v.lines > 0 {
            views.push((name.to_owned(), v));
        }
    }
    if views.is_empty() {
        findings.push(not_checked(
            "hardening.firewall.not-checked",
            "firewall",
            if live {
                "neither `nft list ruleset` nor `iptables-save` gave a listing (not installed, or not root)"
                    .to_owned()
            } else {
                "no firewall listing given (--nft-ruleset, --iptables-save)".to_owned()
            },
        ));
    } else {
        findings.extend(firewall_findings(&views));
    }

    // Brute-force protection.
    let mut running = Vec::new();
    if live && let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if let Some(name) = bruteforce_blocker(&cmdline) {
                running.push((name.to_owned(), pid));
            }
        }
    }
    running.sort();
    if live || mailcow_in.is_some() {
        findings.extend(bruteforce_findings(&running, mailcow_in.as_deref()));
    }

    // Central logging.
    let mut targets = Vec::new();
    for pattern in [
        "/etc/rsyslog.conf",
        "/etc/rsyslog.d/*.conf",
        "/etc/syslog-ng/syslog-ng.conf",
        "/etc/syslog-ng/conf.d/*.conf",
    ] {
        let mut files: Vec<PathBuf> = glob::glob(&at(pattern).to_string_lossy())
            .map(|g| g.flatten().collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            if let Some(t) = read(&f) {
                targets.extend(syslog_forwarding(&f.display().to_string(), &t));
            }
        }
    }
    let forward = read(&at("/etc/mailwarden/mailwarden.toml"))
        .and_then(|t| crate::config::Config::parse(&t).ok())
        .and_then(|c| c.forward.map(|f| f.target));
    findings.extend(logging_findings(&targets, forward.as_deref()));

    // How long logs survive.
    let daemon = at("/etc/docker/daemon.json");
    if at("/etc/docker").is_dir() || daemon.exists() {
        findings.extend(docker_logging_findings(
            &daemon.display().to_string(),
            read(&daemon).as_deref(),
        ));
    }
    let mailcow_dir = match &common.mailcow_dir {
        Some(d) => Some(d.clone()),
        None => {
            let d = at("/opt/mailcow-dockerized");
            d.join("mailcow.conf").exists().then_some(d)
        }
    };
    let mut certs: Vec<PathBuf> = args.certs.clone();
    if let Some(dir) = &mailcow_dir {
        let conf = dir.join("mailcow.conf");
        let text = read(&conf)
            .ok_or_else(|| anyhow::anyhow!("{}: cannot read it; fix --mailcow-dir", conf.display()))?;
        let setting = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .next_back()
                .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
        };
        let log_lines = setting("LOG_LINES");
        // Open relay through Docker's userland proxy.
        let mut mynetworks = None;
        for cf in ["data/conf/postfix/main.cf", "data/conf/postfix/extra.cf"] {
            let p = dir.join(cf);
            if let Some(t) = read(&p)
                && let Some(m) = postfix_mynetworks(&p.display().to_string(), &t)
            {
                mynetworks = Some(m);
            }
        }
        let userland_proxy = read(&daemon)
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("userland-proxy").and_then(serde_json::Value::as_bool));
        findings.extend(relay_risk_findings(
            &RelayRisk {
                ipv4_network: setting("IPV4_NETWORK"),
                smtp_port: setting("SMTP_PORT"),
                mynetworks,
                userland_proxy,
            },
            &conf.display().to_string(),
        ));
        // How far the checkout is behind the releases it knows.
        let dir_s = dir.display().to_string();
        let git = |args: &[&str]| {
            let mut cmd = vec!["git", "-c", "safe.directory=*", "-C", dir_s.as_str()];
            cmd.extend_from_slice(args);
            list(&cmd).and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        };
        let current = git(&["describe", "--tags", "--abbrev=0"]);
        let newest = git(&["tag", "--list", "--sort=-creatordate"]);
        findings.extend(mailcow_checkout_findings(
            &dir_s,
            current.as_deref(),
            newest.as_deref(),
        ));
        findings.extend(mailcow_log_lines_findings(
            &conf.display().to_string(),
            log_lines.as_deref(),
        ));
        let cert = dir.join("data/assets/ssl/cert.pem");
        if cert.exists() {
            certs.push(cert);
        }
    }

    // Certificates.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for c in certs {
        let bytes = std::fs::read(&c).map_err(|e| anyhow::anyhow!("{}: {e}", c.display()))?;
        evidence::file(&c, &bytes, "whole file");
        findings.extend(certificate_findings(&c.display().to_string(), &bytes, now));
    }
    Ok(())
}

/// A configuration file's text (bounded), or `None` when absent or unreadable.
fn read(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf).ok()?;
    let part = if buf.len() as u64 >= MAX_FILE {
        format!("first {} bytes", buf.len())
    } else {
        "whole file".to_owned()
    };
    evidence::file(path, &buf, &part);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A listing command's output (read-only commands only), or `None` when it
/// is not installed or fails.
fn list(cmd: &[&str]) -> Option<String> {
    let (prog, args) = cmd.split_first()?;
    let out = Command::new(prog).args(args).output().ok()?;
    evidence::command(cmd, &out.stdout, &out.status.to_string());
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn not_checked(id: &'static str, subject: &str, message: String) -> Finding {
    Finding::new(id, Area::Hardening, Severity::Info, subject, message)
}
