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
    fn sizes() {
        assert_eq!(parse_size("64K").unwrap(), 65_536);
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1X").is_err());
    }
}
