//! Hardening checks (Lynis-style): the pure readers of what they look at —
//! sshd's configuration, a firewall ruleset listing, syslog daemon
//! configurations, Docker's log options, Mailcow's `LOG_LINES`, a
//! certificate's validity — and the findings they give. The binary reads
//! the files and the listings and hands the text in.
//!
//! Finding ids: `hardening.ssh.root-login`, `hardening.ssh.password-auth`,
//! `hardening.firewall.input-open`, `hardening.firewall.input-filtered`,
//! `hardening.bruteforce.none`, `hardening.bruteforce.running`,
//! `hardening.logging.central`, `hardening.logging.no-central`,
//! `hardening.logging.docker-rotation`, `hardening.logging.mailcow-log-lines`,
//! `hardening.tls.expired`, `hardening.tls.expires-soon`, `hardening.tls.valid`.

use super::{Area, Finding, Severity};

/// sshd's effective global settings as far as its configuration files say
/// (sshd takes the first value it reads for a keyword; `Match` blocks only
/// apply to some connections and are not global).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshdSettings {
    /// `PermitRootLogin` and where it was set (`None`: the default,
    /// `prohibit-password`).
    pub permit_root_login: Option<(String, String)>,
    /// `PasswordAuthentication` and where (`None`: the default, `yes`).
    pub password_authentication: Option<(String, String)>,
    /// `KbdInteractiveAuthentication` (or its old name
    /// `ChallengeResponseAuthentication`) and where (`None`: default `yes`).
    pub kbd_interactive: Option<(String, String)>,
    /// Settings changed inside `Match` blocks, as `keyword value (where)`.
    pub in_match: Vec<String>,
}

/// Reads one sshd configuration file's text into `s`, keeping values
/// already set (first one wins). `name` is used in the evidence;
/// `include` resolves an `Include` argument to the files' (name, text),
/// which are read at that point, as sshd does.
pub fn read_sshd_config(
    s: &mut SshdSettings,
    name: &str,
    text: &str,
    include: &mut dyn FnMut(&str) -> Vec<(String, String)>,
    depth: usize,
) {
    let mut in_match = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (k.trim(), v.trim().trim_start_matches('=').trim()),
            None => (line, ""),
        };
        let key_l = key.to_ascii_lowercase();
        let at = format!("{name}:{}", i + 1);
        if key_l == "match" {
            in_match = true;
            continue;
        }
        if key_l == "include" && !in_match && depth < 8 {
            for pattern in value.split_whitespace() {
                for (n, t) in include(pattern) {
                    read_sshd_config(s, &n, &t, include, depth + 1);
                }
            }
            continue;
        }
        let value_l = value.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let slot = match key_l.as_str() {
            "permitrootlogin" => &mut s.permit_root_login,
            "passwordauthentication" => &mut s.password_authentication,
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => &mut s.kbd_interactive,
            _ => continue,
        };
        if in_match {
            if s.in_match.len() < 20 {
                s.in_match.push(format!("{key} {value_l} ({at})"));
            }
        } else if slot.is_none() {
            *slot = Some((value_l, at));
        }
    }
}

/// The SSH findings of the settings read.
pub fn ssh_findings(s: &SshdSettings) -> Vec<Finding> {
    let mut out = Vec::new();
    let (root, root_at) = match &s.permit_root_login {
        Some((v, at)) => (v.as_str(), at.clone()),
        None => ("prohibit-password", "default".to_owned()),
    };
    let f = match root {
        "yes" => Finding::new(
            "hardening.ssh.root-login",
            Area::Hardening,
            Severity::Fail,
            "sshd",
            "root may log in over SSH with a password",
        )
        .fix("set `PermitRootLogin prohibit-password` (keys only) or `no` in /etc/ssh/sshd_config and reload sshd"),
        _ => Finding::new(
            "hardening.ssh.root-login",
            Area::Hardening,
            Severity::Pass,
            "sshd",
            format!("root login over SSH: {root}"),
        ),
    };
    out.push(f.evidence(format!("PermitRootLogin {root} ({root_at})")));
    let (pw, pw_at) = match &s.password_authentication {
        Some((v, at)) => (v.as_str(), at.clone()),
        None => ("yes", "default".to_owned()),
    };
    let (kbd, kbd_at) = match &s.kbd_interactive {
        Some((v, at)) => (v.as_str(), at.clone()),
        None => ("yes", "default".to_owned()),
    };
    let mut f = if pw == "yes" || kbd == "yes" {
        Finding::new(
            "hardening.ssh.password-auth",
            Area::Hardening,
            Severity::Warning,
            "sshd",
            "SSH accepts passwords: a guessed or reused password is a shell on the mail server",
        )
        .fix("use keys and set `PasswordAuthentication no` and `KbdInteractiveAuthentication no`, then reload sshd")
    } else {
        Finding::new(
            "hardening.ssh.password-auth",
            Area::Hardening,
            Severity::Pass,
            "sshd",
            "SSH accepts keys only",
        )
    };
    f = f
        .evidence(format!("PasswordAuthentication {pw} ({pw_at})"))
        .evidence(format!("KbdInteractiveAuthentication {kbd} ({kbd_at})"));
    for m in &s.in_match {
        f = f.evidence(format!("inside a Match block: {m}"));
    }
    out.push(f);
    out
}

/// What a firewall listing says about traffic to this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallView {
    /// Input hooks/chains seen, with their policy (`drop`, `accept`).
    pub input_policies: Vec<String>,
    /// Rules in input chains that drop or reject.
    pub input_drops: usize,
    /// Lines of the listing read.
    pub lines: usize,
}

/// Reads `nft list ruleset` output.
pub fn read_nft(text: &str) -> FirewallView {
    let mut v = FirewallView::default();
    let mut in_input = false;
    for line in text.lines() {
        v.lines += 1;
        let l = line.trim();
        if l.starts_with("chain ") {
            in_input = false;
        }
        if l.starts_with("type filter hook input") {
            in_input = true;
            let policy = l
                .split("policy")
                .nth(1)
                .map(|p| p.trim().trim_end_matches(';').trim().to_owned())
                .unwrap_or_else(|| "accept".to_owned());
            v.input_policies.push(policy);
        } else if in_input && (l.contains(" drop") || l.starts_with("drop") || l.contains("reject")) {
            v.input_drops += 1;
        }
    }
    v
}

/// Reads `iptables-save` (or `ip6tables-save`) output.
pub fn read_iptables_save(text: &str) -> FirewallView {
    let mut v = FirewallView::default();
    let mut filter = false;
    for line in text.lines() {
        v.lines += 1;
        let l = line.trim();
        if let Some(t) = l.strip_prefix('*') {
            filter = t == "filter";
        } else if filter && let Some(rest) = l.strip_prefix(":INPUT ") {
            let policy = rest
                .split_whitespace()
                .next()
                .unwrap_or("ACCEPT")
                .to_ascii_lowercase();
            v.input_policies.push(policy);
        } else if filter && l.starts_with("-A INPUT") && (l.contains("-j DROP") || l.contains("-j REJECT")) {
            v.input_drops += 1;
        }
    }
    v
}

/// The firewall finding from the views read (`source` names each listing).
pub fn firewall_findings(views: &[(String, FirewallView)]) -> Vec<Finding> {
    let filtered = views
        .iter()
        .any(|(_, v)| v.input_drops > 0 || v.input_policies.iter().any(|p| p == "drop"));
    let mut f = if filtered {
        Finding::new(
            "hardening.firewall.input-filtered",
            Area::Hardening,
            Severity::Pass,
            "firewall",
            "incoming traffic is filtered (a drop policy or drop/reject rules on input)",
        )
    } else {
        Finding::new(
            "hardening.firewall.input-open",
            Area::Hardening,
            Severity::Warning,
            "firewall",
            "no input filtering: every listening port is reachable (Docker's published ports bypass INPUT anyway)",
        )
        .fix("drop incoming traffic by default and allow only the mail, web and SSH ports (nftables or ufw)")
    };
    for (source, v) in views {
        f = f.evidence(format!(
            "{source}: input policies [{}], {} drop/reject rules on input",
            v.input_policies.join(", "),
            v.input_drops
        ));
    }
    vec![f]
}

/// Whether a process command line is a brute-force blocker, and which.
/// (Mailcow's netfilter container runs a generic `python3 -u /app/main.py`;
/// it is recognised by the `MAILCOW` chain it keeps in the firewall, see
/// [`mailcow_chain`].)
pub fn bruteforce_blocker(cmdline: &str) -> Option<&'static str> {
    let c = cmdline.to_ascii_lowercase();
    if c.contains("fail2ban-server") {
        Some("fail2ban")
    } else if c.contains("crowdsec") && !c.contains("cscli") {
        Some("CrowdSec")
    } else if c.contains("sshguard") {
        Some("sshguard")
    } else {
        None
    }
}

/// Whether a firewall listing holds the `MAILCOW` chain that Mailcow's
/// netfilter container creates for its bans (nftables or iptables-save).
pub fn mailcow_chain(listing: &str) -> bool {
    listing.lines().any(|l| {
        let l = l.trim();
        l.starts_with("chain MAILCOW") || l.starts_with(":MAILCOW ")
    })
}

/// The brute-force protection finding from the blockers found running and
/// where Mailcow's netfilter chain was seen.
pub fn bruteforce_findings(running: &[(String, u32)], mailcow_chain_in: Option<&str>) -> Vec<Finding> {
    if running.is_empty() && mailcow_chain_in.is_none() {
        return vec![
            Finding::new(
                "hardening.bruteforce.none",
                Area::Hardening,
                Severity::Warning,
                "brute-force protection",
                "no fail2ban, CrowdSec, sshguard or Mailcow netfilter process is running",
            )
            .fix("on Mailcow, check that netfilter-mailcow runs (docker compose ps); elsewhere install fail2ban with the postfix-sasl and dovecot jails"),
        ];
    }
    let mut f = Finding::new(
        "hardening.bruteforce.running",
        Area::Hardening,
        Severity::Pass,
        "brute-force protection",
        "a brute-force blocker is running",
    );
    if let Some(src) = mailcow_chain_in {
        f = f.evidence(format!("Mailcow netfilter's MAILCOW chain in {src}"));
    }
    for (name, pid) in running {
        f = f.evidence(format!("{name} (pid {pid})"));
    }
    vec![f]
}

/// Remote forwarding found in a syslog daemon's configuration: the target
/// of each `@host`, `@@host`, `omfwd`/`omrelp` action or syslog-ng network
/// destination, with where it was written.
pub fn syslog_forwarding(name: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        // Legacy rsyslog selector: `*.* @@central:514`.
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() >= 2
            && fields[0].contains('.')
            && let Some(target) = fields[1].strip_prefix('@')
        {
            out.push(format!("{} ({at})", target.trim_start_matches('@')));
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if lower.contains("omfwd") || lower.contains("omrelp") {
            let target = lower
                .split("target=")
                .nth(1)
                .map(|t| {
                    t.trim_start_matches('"')
                        .split('"')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
                .unwrap_or_else(|| "?".to_owned());
            out.push(format!("{target} ({at})"));
        } else if (lower.contains("network(") || lower.contains("tcp(") || lower.contains("udp("))
            && !lower.contains("source")
        {
            out.push(format!("{l} ({at})"));
        }
    }
    out
}

/// The central-logging finding: forwarding targets found, and whether
/// mailwarden itself forwards.
pub fn logging_findings(targets: &[String], mailwarden_forward: Option<&str>) -> Vec<Finding> {
    if targets.is_empty() && mailwarden_forward.is_none() {
        return vec![
            Finding::new(
                "hardening.logging.no-central",
                Area::Hardening,
                Severity::Warning,
                "logging",
                "logs stay on this host only: an intruder with root can erase the evidence",
            )
            .fix("forward to a central collector: [forward] in mailwarden.toml, or an rsyslog omfwd action"),
        ];
    }
    let mut f = Finding::new(
        "hardening.logging.central",
        Area::Hardening,
        Severity::Pass,
        "logging",
        "logs are forwarded to a central collector",
    );
    if let Some(m) = mailwarden_forward {
        f = f.evidence(format!("mailwarden [forward] target {m}"));
    }
    for t in targets {
        f = f.evidence(format!("syslog forwarding to {t}"));
    }
    vec![f]
}

/// Docker's default log rotation from `/etc/docker/daemon.json`: the
/// finding says how much a container's log keeps.
pub fn docker_logging_findings(name: &str, json: Option<&str>) -> Vec<Finding> {
    let v: Option<serde_json::Value> = json.and_then(|t| serde_json::from_str(t).ok());
    let driver = v
        .as_ref()
        .and_then(|v| v.get("log-driver"))
        .and_then(|d| d.as_str())
        .unwrap_or("json-file")
        .to_owned();
    let opts = v.as_ref().and_then(|v| v.get("log-opts"));
    let max_size = opts
        .and_then(|o| o.get("max-size"))
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    let max_file = opts
        .and_then(|o| o.get("max-file"))
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    let msg = match (&max_size, driver.as_str()) {
        (None, "json-file") => {
            "containers' logs grow without rotation (json-file without max-size): they are kept, but can fill the disk"
                .to_owned()
        }
        (Some(s), _) => format!(
            "each container keeps at most {} × {s} of log ({driver}); older lines are gone unless collected",
            max_file.as_deref().unwrap_or("1")
        ),
        (None, d) => format!("log driver {d}"),
    };
    let sev = if json.is_some() && v.is_none() {
        Severity::Warning
    } else {
        Severity::Info
    };
    let mut f = Finding::new(
        "hardening.logging.docker-rotation",
        Area::Hardening,
        sev,
        "docker",
        if sev == Severity::Warning {
            format!("{name} is not valid JSON; Docker will refuse to start with it")
        } else {
            msg
        },
    )
    .evidence(match json {
        Some(_) => format!("{name}: log-driver {driver}, max-size {max_size:?}, max-file {max_file:?}"),
        None => format!("{name}: absent (Docker's defaults: json-file, no rotation)"),
    });
    if sev == Severity::Info {
        f = f.fix("keep the logs where rotation cannot lose them: `mailwarden serve` stores every container's lines");
    }
    vec![f]
}

/// Mailcow keeps only `LOG_LINES` lines per log list in Redis (default
/// 9999): the finding says so.
pub fn mailcow_log_lines_findings(conf_name: &str, log_lines: Option<&str>) -> Vec<Finding> {
    let n = log_lines
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(9999);
    vec![
        Finding::new(
            "hardening.logging.mailcow-log-lines",
            Area::Hardening,
            if n < 100_000 {
                Severity::Warning
            } else {
                Severity::Info
            },
            "mailcow",
            format!(
                "Mailcow keeps the last {n} lines of each log in Redis (postfix, dovecot, …): a busy day pushes the evidence out"
            ),
        )
        .evidence(format!(
            "{conf_name}: LOG_LINES={}",
            log_lines.unwrap_or("(unset, default 9999)")
        ))
        .fix("keep every line: run `mailwarden serve` (it follows the containers and the Redis lists into its store)"),
    ]
}

/// The validity of a PEM certificate (the first one in `pem`) at `now`
/// (Unix seconds): expired (fail), within 14 days (warning) or valid.
pub fn certificate_findings(name: &str, pem: &[u8], now: i64) -> Vec<Finding> {
    let parsed = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| e.to_string())
        .and_then(|(_, p)| {
            p.parse_x509()
                .map(|c| (c.validity().not_after.timestamp(), c.subject().to_string()))
                .map_err(|e| e.to_string())
        });
    match parsed {
        Err(e) => vec![
            Finding::new(
                "hardening.tls.unreadable",
                Area::Hardening,
                Severity::Warning,
                name,
                format!("the certificate could not be read: {e}"),
            )
            .fix("check that the file is a PEM certificate"),
        ],
        Ok((not_after, subject)) => {
            let days = (not_after - now).div_euclid(86_400);
            let (id, sev, msg) = if not_after <= now {
                (
                    "hardening.tls.expired",
                    Severity::Fail,
                    format!("the certificate expired {} days ago", -days),
                )
            } else if days < 14 {
                (
                    "hardening.tls.expires-soon",
                    Severity::Warning,
                    format!("the certificate expires in {days} days"),
                )
            } else {
                (
                    "hardening.tls.valid",
                    Severity::Pass,
                    format!("the certificate is valid for {days} more days"),
                )
            };
            let mut f = Finding::new(id, Area::Hardening, sev, name, msg)
                .evidence(format!("subject {subject}, not after {not_after} (Unix time)"));
            if sev != Severity::Pass {
                f = f.fix("renew it (Mailcow: check the acme-mailcow container's log)");
            }
            vec![f]
        }
    }
}

/// What decides whether Mailcow's Postfix trusts outsiders that come in
/// through Docker's userland proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayRisk {
    /// `IPV4_NETWORK` of mailcow.conf (default `172.22.1`).
    pub ipv4_network: Option<String>,
    /// `SMTP_PORT` of mailcow.conf (default `25`, all addresses).
    pub smtp_port: Option<String>,
    /// `mynetworks` as configured (extra.cf over main.cf), with where.
    pub mynetworks: Option<(String, String)>,
    /// `userland-proxy` of /etc/docker/daemon.json (Docker's default: true).
    pub userland_proxy: Option<bool>,
}

/// The `hardening.mailcow.relay-via-docker-proxy` check. Docker's
/// userland proxy accepts IPv6 connections to a published port and
/// forwards them over IPv4 from the bridge's gateway (`IPV4_NETWORK.1`), so
/// Postfix sees every such outsider as a member of the Docker network —
/// which Mailcow's `mynetworks` trusts: an open relay (mailcow issues #5242,
/// #1145, docs #858). Safe when the proxy is off (`"userland-proxy": false`)
/// or the SMTP port is published on IPv4 only (`SMTP_PORT=0.0.0.0:25`), or
/// when `mynetworks` does not hold the Docker network.
pub fn relay_risk_findings(r: &RelayRisk, conf_name: &str) -> Vec<Finding> {
    let net = r.ipv4_network.clone().unwrap_or_else(|| "172.22.1".to_owned());
    let gateway = format!("{net}.1");
    let (mynetworks, where_) = r.mynetworks.clone().unwrap_or_else(|| {
        (
            format!("127.0.0.0/8 {net}.0/24 (Mailcow's default)"),
            "default".to_owned(),
        )
    });
    let trusts_gateway = mynetworks.split([' ', ',']).any(|n| {
        let n = n.trim();
        n.parse::<ipnet::Ipv4Net>()
            .ok()
            .zip(gateway.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|(net, gw)| net.contains(&gw))
    });
    let port = r.smtp_port.clone().unwrap_or_else(|| "25".to_owned());
    let ipv4_only = port
        .rsplit_once(':')
        .is_some_and(|(addr, _)| addr.parse::<std::net::Ipv4Addr>().is_ok());
    let proxy = r.userland_proxy.unwrap_or(true);
    let evidence = [
        format!("mynetworks = {mynetworks} ({where_})"),
        format!("{conf_name}: IPV4_NETWORK={net}, SMTP_PORT={port}"),
        format!(
            "/etc/docker/daemon.json: userland-proxy {}",
            match r.userland_proxy {
                Some(v) => v.to_string(),
                None => "not set (Docker's default: true)".to_owned(),
            }
        ),
    ];
    let mut f = if trusts_gateway && proxy && !ipv4_only {
        Finding::new(
            "hardening.mailcow.relay-via-docker-proxy",
            Area::Hardening,
            Severity::Warning,
            "mailcow",
            format!(
                "IPv6 clients reach Postfix through Docker's userland proxy and arrive as {gateway}, which mynetworks trusts: anyone with IPv6 can relay"
            ),
        )
        .fix("set \"userland-proxy\": false in /etc/docker/daemon.json and restart Docker, or publish SMTP on IPv4 only (SMTP_PORT=0.0.0.0:25 in mailcow.conf); then test relaying from an outside IPv6 address")
    } else {
        Finding::new(
            "hardening.mailcow.relay-via-docker-proxy",
            Area::Hardening,
            Severity::Pass,
            "mailcow",
            if !trusts_gateway {
                format!("mynetworks does not trust the Docker gateway {gateway}")
            } else if !proxy {
                "Docker's userland proxy is off: clients keep their own addresses".to_owned()
            } else {
                "SMTP is published on IPv4 only".to_owned()
            },
        )
    };
    for e in evidence {
        f = f.evidence(e);
    }
    vec![f]
}

/// `mynetworks` from Postfix configuration text (the last assignment wins,
/// continuation lines joined), with its line.
pub fn postfix_mynetworks(name: &str, text: &str) -> Option<(String, String)> {
    let mut found = None;
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let l = line.trim_start();
        if l.starts_with('#') || line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = l.split_once('=')
            && k.trim() == "mynetworks"
        {
            let mut value = v.trim().to_owned();
            while let Some((_, next)) = lines.peek() {
                if next.starts_with([' ', '\t']) && !next.trim().is_empty() {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            found = Some((value, format!("{name}:{}", i + 1)));
        }
    }
    found
}

/// Where a Mailcow checkout stands against the newest release tag it
/// knows (tags fetched with the last `git fetch`/`update.sh`).
pub fn mailcow_checkout_findings(dir: &str, current: Option<&str>, newest: Option<&str>) -> Vec<Finding> {
    match (current, newest) {
        (Some(c), Some(n)) if c != n => vec![
            Finding::new(
                "hardening.mailcow.behind-release",
                Area::Hardening,
                Severity::Warning,
                dir,
                format!("the Mailcow checkout is at {c}; release {n} is known and not installed"),
            )
            .evidence(format!("git describe --tags: {c}; newest tag: {n}"))
            .fix("read the release notes, then run ./update.sh in the Mailcow directory"),
        ],
        (Some(c), Some(_)) => vec![
            Finding::new(
                "hardening.mailcow.behind-release",
                Area::Hardening,
                Severity::Pass,
                dir,
                format!("the Mailcow checkout is at the newest release it knows ({c}); `./update.sh --check` asks upstream"),
            )
            .evidence(format!("git describe --tags: {c}")),
        ],
        _ => vec![Finding::new(
            "hardening.mailcow.not-a-checkout",
            Area::Hardening,
            Severity::Info,
            dir,
            "not a git checkout with release tags: how far behind Mailcow's releases it is was not checked",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_include(_: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn sshd_first_value_wins_includes_first_and_match_is_not_global() {
        let mut s = SshdSettings::default();
        let main = "Include /etc/ssh/sshd_config.d/*.conf\n# PermitRootLogin yes\nPermitRootLogin yes\n\
                    PasswordAuthentication yes\nMatch User backup\n  PasswordAuthentication yes\n";
        let mut inc = |p: &str| {
            assert_eq!(p, "/etc/ssh/sshd_config.d/*.conf");
            vec![(
                "50-local.conf".to_owned(),
                "PasswordAuthentication=no\nKbdInteractiveAuthentication no\n".to_owned(),
            )]
        };
        read_sshd_config(&mut s, "sshd_config", main, &mut inc, 0);
        assert_eq!(s.permit_root_login, Some(("yes".into(), "sshd_config:3".into())));
        assert_eq!(
            s.password_authentication,
            Some(("no".into(), "50-local.conf:1".into()))
        );
        assert_eq!(s.in_match, ["PasswordAuthentication yes (sshd_config:6)"]);
        let f = ssh_findings(&s);
        assert_eq!(
            (f[0].id, f[0].severity),
            ("hardening.ssh.root-login", Severity::Fail)
        );
        assert_eq!(
            (f[1].id, f[1].severity),
            ("hardening.ssh.password-auth", Severity::Pass)
        );
        assert!(f[1].evidence.iter().any(|e| e.contains("Match")));
    }

    #[test]
    fn sshd_defaults_accept_passwords_but_not_root_passwords() {
        let mut s = SshdSettings::default();
        read_sshd_config(&mut s, "x", "Port 22\n", &mut no_include, 0);
        let f = ssh_findings(&s);
        assert_eq!(f[0].severity, Severity::Pass);
        assert!(f[0].evidence[0].contains("prohibit-password (default)"));
        assert_eq!(f[1].severity, Severity::Warning);
    }

    #[test]
    fn firewalls() {
        let nft = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
                   \t\tct state established,related accept\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";
        let v = read_nft(nft);
        assert_eq!(v.input_policies, ["drop"]);
        let open = read_nft(
            "table inet filter {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n",
        );
        assert_eq!(open.input_policies, ["accept"]);
        assert_eq!(open.input_drops, 0);
        let ipt = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n\
                   -A INPUT -s 203.0.113.5/32 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";
        let iv = read_iptables_save(ipt);
        assert_eq!(
            (iv.input_policies.clone(), iv.input_drops),
            (vec!["accept".to_owned()], 1)
        );
        assert_eq!(
            firewall_findings(&[("nft".into(), open.clone())])[0].id,
            "hardening.firewall.input-open"
        );
        assert_eq!(
            firewall_findings(&[("nft".into(), open), ("iptables-save".into(), iv)])[0].severity,
            Severity::Pass
        );
    }

    #[test]
    fn blockers_and_forwarding() {
        assert_eq!(
            bruteforce_blocker("/usr/bin/python3 /usr/bin/fail2ban-server -xf start"),
            Some("fail2ban")
        );
        assert_eq!(bruteforce_blocker("python3 -u /app/main.py"), None);
        assert_eq!(bruteforce_blocker("/usr/sbin/sshd -D"), None);
        assert_eq!(bruteforce_findings(&[], None)[0].severity, Severity::Warning);
        assert!(mailcow_chain(
            "*filter\n:INPUT ACCEPT [0:0]\n:MAILCOW - [0:0]\n-A INPUT -j MAILCOW\n"
        ));
        assert!(mailcow_chain("table ip filter {\n\tchain MAILCOW {\n\t}\n}\n"));
        assert!(!mailcow_chain("*filter\n-A INPUT -j MAILCOW\n"));
        let f = bruteforce_findings(&[], Some("iptables-save"));
        assert_eq!(f[0].severity, Severity::Pass);
        assert!(f[0].evidence[0].contains("MAILCOW chain"));
        let conf = "# *.* @@old:514\nmail.* @@central.example.org:6514\n\
                    action(type=\"omfwd\" target=\"10.0.0.5\" port=\"514\" protocol=\"tcp\")\n*.* /var/log/all\n";
        let t = syslog_forwarding("rsyslog.conf", conf);
        assert_eq!(
            t,
            [
                "central.example.org:6514 (rsyslog.conf:2)",
                "10.0.0.5 (rsyslog.conf:3)"
            ]
        );
        assert_eq!(logging_findings(&[], None)[0].id, "hardening.logging.no-central");
        assert_eq!(
            logging_findings(&[], Some("siem:6514"))[0].severity,
            Severity::Pass
        );
    }

    #[test]
    fn docker_and_mailcow_logs() {
        let f = docker_logging_findings(
            "daemon.json",
            Some(r#"{"log-driver":"json-file","log-opts":{"max-size":"10m","max-file":"3"}}"#),
        );
        assert!(f[0].message.contains("3 × 10m"), "{:?}", f[0]);
        assert_eq!(
            docker_logging_findings("daemon.json", Some("{oops"))[0].severity,
            Severity::Warning
        );
        assert!(
            docker_logging_findings("daemon.json", None)[0]
                .message
                .contains("without rotation")
        );
        let m = mailcow_log_lines_findings("mailcow.conf", None);
        assert_eq!(m[0].severity, Severity::Warning);
        assert!(m[0].message.contains("9999"));
        assert_eq!(
            mailcow_log_lines_findings("mailcow.conf", Some("500000"))[0].severity,
            Severity::Info
        );
    }

    #[test]
    fn relay_through_the_docker_proxy() {
        let main = "smtpd_banner = x\nmynetworks = 127.0.0.0/8 [::1]/128\n  172.22.1.0/24 [fd4d:6169:6c63:6f77::]/64\n";
        let (v, at) = postfix_mynetworks("main.cf", main).unwrap();
        assert!(v.contains("172.22.1.0/24"), "{v}");
        assert_eq!(at, "main.cf:2");
        let risky = RelayRisk {
            mynetworks: Some((v.clone(), at.clone())),
            ..RelayRisk::default()
        };
        assert_eq!(
            relay_risk_findings(&risky, "mailcow.conf")[0].severity,
            Severity::Warning
        );
        let off = RelayRisk {
            userland_proxy: Some(false),
            ..risky.clone()
        };
        assert_eq!(
            relay_risk_findings(&off, "mailcow.conf")[0].severity,
            Severity::Pass
        );
        let v4 = RelayRisk {
            smtp_port: Some("0.0.0.0:25".into()),
            ..risky.clone()
        };
        assert_eq!(
            relay_risk_findings(&v4, "mailcow.conf")[0].severity,
            Severity::Pass
        );
        let narrow = RelayRisk {
            mynetworks: Some(("127.0.0.0/8".into(), "extra.cf:1".into())),
            ..risky
        };
        assert_eq!(
            relay_risk_findings(&narrow, "mailcow.conf")[0].severity,
            Severity::Pass
        );
        // Mailcow's default when nothing is read: the Docker network is trusted.
        assert_eq!(
            relay_risk_findings(&RelayRisk::default(), "x")[0].severity,
            Severity::Warning
        );
    }

    #[test]
    fn checkouts() {
        assert_eq!(
            mailcow_checkout_findings("/opt/m", Some("2025-01"), Some("2025-03"))[0].severity,
            Severity::Warning
        );
        assert_eq!(
            mailcow_checkout_findings("/opt/m", Some("2025-03"), Some("2025-03"))[0].severity,
            Severity::Pass
        );
        assert_eq!(
            mailcow_checkout_findings("/opt/m", None, None)[0].id,
            "hardening.mailcow.not-a-checkout"
        );
    }

    #[test]
    fn certificates() {
        let cert = rcgen_free_cert();
        let f = certificate_findings("cert.pem", cert.as_bytes(), 0);
        assert_eq!(f[0].id, "hardening.tls.valid", "{f:?}");
        let f = certificate_findings("cert.pem", cert.as_bytes(), 4_102_444_800 + 86_400);
        assert_eq!(f[0].id, "hardening.tls.expired", "{f:?}");
        let f = certificate_findings("cert.pem", cert.as_bytes(), 4_102_444_800 - 5 * 86_400);
        assert_eq!(f[0].id, "hardening.tls.expires-soon", "{f:?}");
        assert_eq!(
            certificate_findings("x", b"not a cert", 0)[0].id,
            "hardening.tls.unreadable"
        );
    }

    /// A self-signed certificate valid until 2100-01-01 (4,102,444,800).
    fn rcgen_free_cert() -> String {
        let mut params = rcgen::CertificateParams::new(vec!["mail.example.org".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(1975, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").pem()
    }

    proptest::proptest! {
        #[test]
        fn readers_never_panic(text in "\\PC{0,400}") {
            let mut s = SshdSettings::default();
            read_sshd_config(&mut s, "x", &text, &mut |_| Vec::new(), 0);
            let _ = ssh_findings(&s);
            let _ = read_nft(&text);
            let _ = read_iptables_save(&text);
            let _ = syslog_forwarding("x", &text);
            let _ = docker_logging_findings("x", Some(&text));
            let _ = certificate_findings("x", text.as_bytes(), 0);
        }
    }
}
