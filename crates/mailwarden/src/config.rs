//! `mailwarden.toml`: what `serve` and `ingest` collect, where they keep it,
//! and where they forward it. Every section is optional; unknown keys are
//! errors that name the key, the line and the column.
//!
//! Without a config file, [`Config::default`] plus auto-detection applies: a
//! Mailcow installation is collected through Docker and Redis; otherwise the
//! system's mail log is followed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the store lives (default: /var/lib/mailwarden as root, else the
    /// user's data directory).
    pub data_dir: Option<PathBuf>,
    /// Zone of zone-less timestamps (default: the system's).
    pub timezone: Option<String>,
    /// Retention and size of the store.
    #[serde(default)]
    pub store: StoreSection,
    /// Mailcow auto-configuration.
    #[serde(default)]
    pub mailcow: MailcowSection,
    /// Log files to follow.
    #[serde(default)]
    pub files: Vec<FileSection>,
    /// Docker container logs.
    pub docker: Option<DockerSection>,
    /// Mailcow-style Redis log lists.
    pub redis: Option<RedisSection>,
    /// Syslog listener.
    pub syslog: Option<SyslogSection>,
    /// Forwarding to a central collector.
    pub forward: Option<ForwardSection>,
    /// Prometheus metrics endpoint.
    pub metrics: Option<MetricsSection>,
    /// Live detection in `serve`.
    #[serde(default)]
    pub detect: DetectSection,
    /// What happens to alerts: de-duplication and the sinks they go to.
    #[serde(default)]
    pub alerts: AlertsSection,
}

/// `[detect]`: the rules `serve` runs on every line as it arrives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSection {
    /// Set to false to run no rules (default true).
    pub enabled: Option<bool>,
    /// User rule files or directories of `*.yaml` (see docs/rules.md).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Rule ids that do not run.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Parameter overrides, `"RULE.PARAM" = value` (as `detect --set`).
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, i64>,
    /// Our mail domains (more are learned from the logs).
    #[serde(default)]
    pub our_domains: Vec<String>,
    /// Honeypot login names (replace the built-in list).
    pub honeypot_users: Option<Vec<String>>,
    /// Clients allowed to send without authentication (IP or CIDR).
    #[serde(default)]
    pub trusted_relays: Vec<String>,
    /// The address directory for `sender-not-mailbox`: `"mailcow-db"`
    /// (default on a Mailcow host), `"mailcow-api"` (with `api_url` and
    /// `api_key_file`), `"none"`, or the path of an address list file.
    pub directory: Option<String>,
    /// Mailcow API base URL, for `directory = "mailcow-api"`.
    pub api_url: Option<String>,
    /// File holding the read-only Mailcow API key.
    pub api_key_file: Option<PathBuf>,
    /// Extra CA for the Mailcow API.
    pub api_ca: Option<PathBuf>,
    /// How often the directory is read again (default "10m").
    pub directory_refresh: Option<String>,
    /// How much stored history rebuilds the rules' state on start
    /// (default "2h"; "0s" starts empty).
    pub warmup: Option<String>,
}

/// `[alerts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// A repeat of an alert (same rule and key) within this time of the last
    /// one is merged into it instead of raising a new one (default "1h").
    pub dedup: Option<String>,
    /// Print each new alert as a JSON line on stdout.
    #[serde(default)]
    pub stdout: bool,
    /// Webhooks (JSON POST signed with HMAC-SHA256).
    #[serde(default)]
    pub webhook: Vec<WebhookSection>,
    /// E-mail through an SMTP relay.
    #[serde(default)]
    pub email: Vec<EmailSection>,
    /// Syslog (RFC 5424) targets.
    #[serde(default)]
    pub syslog: Vec<SyslogSinkSection>,
}

/// `[[alerts.webhook]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// `http://` or `https://` URL.
    pub url: String,
    /// File holding the HMAC secret (never put the secret in this file).
    pub secret_file: Option<PathBuf>,
    /// Least severity sent (default "low").
    pub min_severity: Option<String>,
    /// Whole-request timeout per attempt (default "10s").
    pub timeout: Option<String>,
    /// Attempts in all (default 5).
    pub attempts: Option<u32>,
    /// Extra CA for an https URL.
    pub ca: Option<PathBuf>,
}

/// `[[alerts.email]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSection {
    /// `host:port` of the relay (submission: 587).
    pub relay: String,
    /// `starttls` (default, required), `tls` (implicit, port 465) or `none`
    /// (only for a relay on this machine).
    pub tls: Option<String>,
    /// SASL login name, if the relay wants one.
    pub username: Option<String>,
    /// File holding the SASL password.
    pub password_file: Option<PathBuf>,
    /// Envelope and header sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Least severity sent (default "high").
    pub min_severity: Option<String>,
    /// Extra CA for a private relay.
    pub ca: Option<PathBuf>,
    /// Timeout per message (default "30s").
    pub timeout: Option<String>,
}

/// `[[alerts.syslog]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkSection {
    /// `host:port` of the collector.
    pub target: String,
    /// `udp`, `tcp` (default) or `tls`.
    pub transport: Option<String>,
    /// CA for `tls` (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// Facility name (default "authpriv").
    pub facility: Option<String>,
    /// Least severity sent (default "low").
    pub min_severity: Option<String>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Days to keep (whole days are dropped, oldest first). Default 90.
    pub retention_days: Option<u32>,
    /// Upper bound on the store's size, e.g. "20G" or "500M". Default: none.
    pub max_size: Option<String>,
}

/// `[mailcow]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailcowSection {
    /// The installation directory (default: /opt/mailcow-dockerized if it exists).
    pub dir: Option<PathBuf>,
    /// Set to false to ignore a Mailcow installation.
    pub enabled: Option<bool>,
}

/// `[[files]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// A path or glob (`/var/log/mail.log`, `/srv/logs/*.log`).
    pub path: String,
    /// Framing (`auto`, `rfc3164`, `rfc3339`, … as `--format`).
    pub format: Option<String>,
    /// Program to assume for lines without one.
    pub program: Option<String>,
}

/// `[docker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// API socket (default /var/run/docker.sock; Podman: /run/podman/podman.sock).
    pub socket: Option<PathBuf>,
    /// Compose project whose containers are collected (default from mailcow.conf, else "mailcowdockerized").
    pub project: Option<String>,
    /// Docker data root, read directly when the engine is down (default /var/lib/docker).
    pub data_root: Option<PathBuf>,
}

/// `[redis]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// Host (default 127.0.0.1).
    pub host: Option<String>,
    /// Port (default from mailcow.conf, else 6379).
    pub port: Option<u16>,
    /// Password (default REDISPASS from mailcow.conf).
    pub password: Option<String>,
    /// Lists to read (default: Mailcow's log lists).
    pub lists: Option<Vec<String>>,
}

/// `[syslog]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// UDP listen addresses.
    #[serde(default)]
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses (LF and octet-counted framing).
    #[serde(default)]
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners (RFC 5425).
    #[serde(default)]
    pub tls: Vec<TlsListenSection>,
    /// Largest frame kept, e.g. "64K".
    pub max_frame: Option<String>,
    /// Most concurrent TCP/TLS connections.
    pub max_connections: Option<usize>,
}

/// One `[[syslog.tls]]` listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenSection {
    /// Listen address.
    pub addr: SocketAddr,
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// `[forward]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    /// `host:port` of the central collector.
    pub target: String,
    /// Use TLS (RFC 5425).
    #[serde(default)]
    pub tls: bool,
    /// CA bundle to verify the collector (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// Name expected in the collector's certificate (default: the target host).
    pub server_name: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub client_key: Option<PathBuf>,
}

/// `[metrics]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Listen address; loopback unless you mean otherwise (default 127.0.0.1:9465).
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads and validates a config file. Errors name the file, the line,
    /// the column and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", describe_toml_error(text, &e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(s) = &self.store.max_size {
            parse_size(s).with_context(|| "store.max_size")?;
        }
        if let Some(s) = self.syslog.as_ref().and_then(|s| s.max_frame.as_ref()) {
            parse_size(s).with_context(|| "syslog.max_frame")?;
        }
        for f in &self.files {
            if let Some(fmt) = &f.format {
                fmt.parse::<mailwarden_core::framing::Format>()
                    .map_err(|e| anyhow::anyhow!("files.format of {:?}: {e}", f.path))?;
            }
        }
        self.validate_detect()?;
        if let Some(fw) = &self.forward {
            if !fw.target.contains(':') {
                bail!(
                    "forward.target {:?} needs a port, e.g. \"siem.example.org:6514\"",
                    fw.target
                );
            }
            if fw.client_cert.is_some() != fw.client_key.is_some() {
                bail!("forward.client_cert and forward.client_key go together; set both or neither");
            }
        }
        Ok(())
    }

    fn validate_detect(&self) -> anyhow::Result<()> {
        let d = &self.detect;
        for (key, v) in [
            ("detect.directory_refresh", &d.directory_refresh),
            ("detect.warmup", &d.warmup),
            ("alerts.dedup", &self.alerts.dedup),
        ] {
            if let Some(v) = v {
                duration(key, v)?;
            }
        }
        if d.directory.as_deref() == Some("mailcow-api") && (d.api_url.is_none() || d.api_key_file.is_none())
        {
            bail!("detect.directory = \"mailcow-api\" needs detect.api_url and detect.api_key_file");
        }
        let sev = |key: &str, v: &Option<String>| -> anyhow::Result<()> {
            if let Some(v) = v {
                severity(key, v)?;
            }
            Ok(())
        };
        for (i, w) in self.alerts.webhook.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                bail!(
                    "alerts.webhook[{i}].url {:?} must start with http:// or https://",
                    w.url
                );
            }
            sev(&format!("alerts.webhook[{i}].min_severity"), &w.min_severity)?;
            if let Some(t) = &w.timeout {
                duration(&format!("alerts.webhook[{i}].timeout"), t)?;
            }
        }
        for (i, e) in self.alerts.email.iter().enumerate() {
            if !e.relay.contains(':') {
                bail!(
                    "alerts.email[{i}].relay {:?} needs a port, e.g. \"mail.example.org:587\"",
                    e.relay
                );
            }
            if e.to.is_empty() {
                bail!("alerts.email[{i}].to is empty; name at least one recipient");
            }
            if let Some(t) = &e.tls
                && !matches!(t.as_str(), "starttls" | "tls" | "none")
            {
                bail!("alerts.email[{i}].tls {t:?}: write starttls, tls or none");
            }
            if e.username.is_some() != e.password_file.is_some() {
                bail!("alerts.email[{i}].username and password_file go together; set both or neither");
            }
            sev(&format!("alerts.email[{i}].min_severity"), &e.min_severity)?;
            if let Some(t) = &e.timeout {
                duration(&format!("alerts.email[{i}].timeout"), t)?;
            }
        }
        for (i, s) in self.alerts.syslog.iter().enumerate() {
            if !s.target.contains(':') {
                bail!(
                    "alerts.syslog[{i}].target {:?} needs a port, e.g. \"siem.example.org:514\"",
                    s.target
                );
            }
            if let Some(t) = &s.transport
                && !matches!(t.as_str(), "udp" | "tcp" | "tls")
            {
                bail!("alerts.syslog[{i}].transport {t:?}: write udp, tcp or tls");
            }
            sev(&format!("alerts.syslog[{i}].min_severity"), &s.min_severity)?;
        }
        Ok(())
    }

    /// Store retention in days (default 90).
    pub fn retention_days(&self) -> u32 {
        self.store.retention_days.unwrap_or(90)
    }

    /// Store size bound in bytes, if any.
    pub fn max_bytes(&self) -> Option<u64> {
        self.store.max_size.as_deref().and_then(|s| parse_size(s).ok())
    }
}

/// Adds the line, column and a pointer to a TOML error.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let src = text.lines().nth(line - 1).unwrap_or("");
    let mut msg = format!(
        "line {line}, column {col}: {}\n  | {src}\n  | {}^",
        e.message(),
        " ".repeat(col - 1)
    );
    if e.message().contains("unknown field") {
        msg.push_str("\nfix: check the spelling; see dist/mailwarden.example.toml for every key");
    }
    msg
}

/// Parses `500M`, `20G`, `64K` or a plain byte count.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}; write e.g. 500M, 20G or 64K"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => bail!("invalid size unit in {s:?}; use K, M, G or T"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow::anyhow!("size {s:?} is too large"))
}

/// A duration setting (`90s`, `10m`, `2h`, `1d`) in seconds; errors name the key.
pub fn duration(key: &str, v: &str) -> anyhow::Result<i64> {
    crate::cli::parse_duration_secs(v).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

/// A severity setting; errors name the key and the choices.
pub fn severity(key: &str, v: &str) -> anyhow::Result<mailwarden_core::detect::AlertSeverity> {
    serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_lowercase()))
        .map_err(|_| anyhow::anyhow!("{key} {v:?}: write informational, low, medium, high or critical"))
}

/// The data directory: explicit, else /var/lib/mailwarden for root, else
/// `$XDG_DATA_HOME/mailwarden` or `~/.local/share/mailwarden`.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/mailwarden");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("mailwarden");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/mailwarden"),
        None => PathBuf::from("mailwarden-data"),
    }
}

fn is_root() -> bool {
    // The effective uid of this process, from procfs (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../../dist/mailwarden.example.toml");
        let cfg = Config::parse(text).unwrap();
        assert_eq!(cfg.retention_days(), 90);
        assert!(cfg.forward.is_some());
    }

    #[test]
    fn empty_config_is_the_default() {
        let cfg = Config::parse("").unwrap();
        assert!(cfg.files.is_empty() && cfg.forward.is_none());
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let err = Config::parse("data_dir = \"/x\"\n[store]\nretension_days = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3, column 1"), "{err}");
        assert!(err.contains("retension_days"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = format!(
            "{:#}",
            Config::parse("[store]\nmax_size = \"lots\"\n").unwrap_err()
        );
        assert!(err.contains("store.max_size") && err.contains("500M"), "{err}");
        let err = format!(
            "{:#}",
            Config::parse("[forward]\ntarget = \"siem\"\n").unwrap_err()
        );
        assert!(err.contains("needs a port"), "{err}");
        let err = format!(
            "{:#}",
            Config::parse("[[files]]\npath = \"/x\"\nformat = \"xml\"\n").unwrap_err()
        );
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn detect_and_alert_settings_are_checked() {
        let cfg = Config::parse(
            "[detect]\nrules = [\"/etc/mailwarden/rules.d\"]\ndisable = [\"outbound-new-sender\"]\n\
             set = { \"auth-bruteforce-ip.failures\" = 20 }\nwarmup = \"1h\"\n\
             [alerts]\ndedup = \"2h\"\n[[alerts.webhook]]\nurl = \"https://hooks.example.org/x\"\n\
             secret_file = \"/etc/mailwarden/hook.key\"\nmin_severity = \"high\"\n",
        )
        .unwrap();
        assert_eq!(cfg.detect.set["auth-bruteforce-ip.failures"], 20);
        assert_eq!(cfg.alerts.webhook.len(), 1);
        for (text, want) in [
            ("[detect]\nwarmup = \"soon\"\n", "detect.warmup"),
            ("[alerts]\ndedup = \"5x\"\n", "alerts.dedup"),
            ("[[alerts.webhook]]\nurl = \"ftp://x\"\n", "http:// or https://"),
            (
                "[[alerts.webhook]]\nurl = \"http://x\"\nmin_severity = \"urgent\"\n",
                "alerts.webhook[0].min_severity",
            ),
            (
                "[[alerts.email]]\nrelay = \"mail\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
                "needs a port",
            ),
            (
                "[[alerts.email]]\nrelay = \"mail:587\"\nfrom = \"a@b\"\nto = []\n",
                "to is empty",
            ),
            (
                "[[alerts.email]]\nrelay = \"mail:587\"\nfrom = \"a@b\"\nto = [\"c@d\"]\ntls = \"ssl\"\n",
                "starttls, tls or none",
            ),
            (
                "[[alerts.syslog]]\ntarget = \"siem:514\"\ntransport = \"relp\"\n",
                "udp, tcp or tls",
            ),
            ("[detect]\ndirectory = \"mailcow-api\"\n", "api_url"),
            ("[alerts]\nslack = true\n", "unknown field"),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K").unwrap(), 65_536);
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1X").is_err());
    }
}
