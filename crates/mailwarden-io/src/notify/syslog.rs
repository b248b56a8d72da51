//! The syslog sink: one RFC 5424 message per notice over UDP (RFC 5426),
//! TCP with octet-counting framing (RFC 6587) or TLS (RFC 5425).
//!
//! ```text
//! <83>1 2024-03-14T08:40:00.000000Z mx1.example.org mailwarden 4242 auth-bruteforce-ip
//!   [mailwarden@32473 event="opened" rule="auth-bruteforce-ip" severity="high" key="ip=203.0.113.5"
//!    count="412" first="2024-03-14T08:14:00.000000+01:00" last="…" alert_id="17"] BOM203.0.113.5 failed 412 logins
//! ```
//!
//! * PRI: the facility (default **authpriv**, 10) and the alert's severity
//!   (critical → crit, high → err, medium → warning, low → notice,
//!   informational → info). Authpriv because alerts name accounts and
//!   addresses: syslog daemons keep authpriv in a file only root reads
//!   (`/var/log/auth.log` on Debian), where security events belong. Set
//!   another facility (`local0` = 16 …) to route them elsewhere.
//! * TIMESTAMP: when the notice was made (UTC); the alert's own times are
//!   in `first` and `last`.
//! * HOSTNAME: the notice's host; APP-NAME `mailwarden`; PROCID our pid;
//!   MSGID the rule id.
//! * One SD-ELEMENT (`mailwarden@32473` by default, as the forwarder) with
//!   event, rule, severity, key, count, first, last and alert id.
//! * MSG: the alert's message, UTF-8 after a BOM.
//!
//! Header fields are printable US-ASCII (anything else becomes `_`);
//! parameter values escape `"`, `\` and `]` as RFC 5424 says and show
//! control characters as `\x0a`-style escapes, so a hostile key can neither
//! end the element nor start a new line in the collector's file. The key is
//! cut at 512 bytes and the message at [`SyslogConfig::max_msg_bytes`], so a
//! UDP datagram stays under the 2048 bytes RFC 5426 asks receivers to take.
//!
//! The encoder is this module's own, not the forwarder's
//! [`encode_rfc5424`](crate::forward::encode_rfc5424): that one writes the
//! fixed parameters of a log line, these are an alert's. Each notice opens
//! a new connection (alerts are rare); TCP and TLS connections are closed
//! cleanly after the frame is written.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailwarden_core::time::Timestamp;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use super::{
    AlertNotice, Delivery, FailureKind, NotifyError, SinkKind, TlsClient, escape_text, fmt_duration, now,
    syslog_severity,
};
use crate::audit::mta_sts::{HttpsConfig, tls_client_config};
use crate::forward::{DEFAULT_SD_ID, validate_sd_id};

/// Facility `authpriv` (10), the default.
pub const FACILITY_AUTHPRIV: u8 = 10;
/// Facility `local0` (16).
pub const FACILITY_LOCAL0: u8 = 16;

const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const MSGID_MAX: usize = 32;
/// Longest key parameter, in bytes.
const KEY_MAX: usize = 512;
const BOM: &str = "\u{feff}";

/// How to reach the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTransport {
    /// UDP, one datagram per notice (RFC 5426).
    Udp,
    /// TCP with octet-counting framing (RFC 6587).
    Tcp,
    /// TLS over TCP with octet counting (RFC 5425).
    Tls {
        /// PEM file with the CA that issued the collector's certificate
        /// (trusted besides the Web PKI roots).
        ca_pem: Option<PathBuf>,
        /// The name the collector's certificate must carry (default: the
        /// host of `addr`).
        server_name: Option<String>,
    },
}

impl SyslogTransport {
    fn as_str(&self) -> &'static str {
        match self {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls { .. } => "tls",
        }
    }
}

/// Where and how to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogConfig {
    /// The collector, `host:port`.
    pub addr: String,
    /// UDP, TCP or TLS.
    pub transport: SyslogTransport,
    /// Facility code 0..=23 (default [`FACILITY_AUTHPRIV`]).
    pub facility: u8,
    /// APP-NAME (default `mailwarden`).
    pub app_name: String,
    /// SD-ID of the structured-data element (`name@enterprise-number`).
    pub sd_id: String,
    /// Resolving, connecting, the TLS handshake and writing, each (default 10 s).
    pub timeout: Duration,
    /// Longest MSG part, in bytes (default 1024).
    pub max_msg_bytes: usize,
}

impl SyslogConfig {
    /// Defaults for `addr` over `transport`.
    pub fn new(addr: impl Into<String>, transport: SyslogTransport) -> SyslogConfig {
        SyslogConfig {
            addr: addr.into(),
            transport,
            facility: FACILITY_AUTHPRIV,
            app_name: "mailwarden".into(),
            sd_id: DEFAULT_SD_ID.into(),
            timeout: Duration::from_secs(10),
            max_msg_bytes: 1024,
        }
    }
}

/// A syslog collector, ready to send.
#[derive(Debug)]
pub struct SyslogSink {
    cfg: SyslogConfig,
    tls: Option<TlsClient>,
    shown: String,
}

impl SyslogSink {
    /// Checks the settings and loads the CA file.
    pub fn new(cfg: SyslogConfig) -> Result<SyslogSink, NotifyError> {
        let shown = format!("{}://{}", cfg.transport.as_str(), cfg.addr);
        let config = |problem: String, fix: &str| NotifyError::config(SinkKind::Syslog, &shown, problem, fix);
        let Some((host, port)) = cfg.addr.rsplit_once(':') else {
            return Err(config(
                format!("the collector address {:?} has no port", cfg.addr),
                "give host:port, e.g. logs.example.org:6514",
            ));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(config(
                format!("the collector address {:?} is not host:port", cfg.addr),
                "give host:port, e.g. logs.example.org:6514",
            ));
        }
        validate_sd_id(&cfg.sd_id)
            .map_err(|e| config(e.to_string(), "set sd_id to name@enterprise-number"))?;
        if cfg.facility > 23 {
            return Err(config(
                format!("facility {} is not 0 to 23", cfg.facility),
                "use e.g. 10 (authpriv) or 16 (local0)",
            ));
        }
        let tls = match &cfg.transport {
            SyslogTransport::Tls { ca_pem, server_name } => {
                let roots = HttpsConfig {
                    extra_roots: ca_pem.iter().cloned().collect(),
                    ..HttpsConfig::default()
                };
                let mut client = (*tls_client_config(&roots).map_err(|e| {
                    config(
                        format!("the CA file cannot be used: {e}"),
                        "fix or remove the CA file",
                    )
                })?)
                .clone();
                client.alpn_protocols.clear();
                let name = server_name
                    .clone()
                    .unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']').to_owned());
                let name = ServerName::try_from(name.clone()).map_err(|e| {
                    config(
                        format!("`{name}` is not a valid TLS server name: {e}"),
                        "set server_name to the name in the collector's certificate",
                    )
                })?;
                Some(TlsClient {
                    connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
                    name,
                })
            }
            _ => None,
        };
        Ok(SyslogSink { cfg, tls, shown })
    }

    /// `udp://host:port`, `tcp://…`, `tls://…`.
    pub fn destination(&self) -> &str {
        &self.shown
    }

    /// Sends the notice as one message.
    pub async fn send(&self, notice: &AlertNotice) -> Result<Delivery, NotifyError> {
        let message = encode(notice, &self.cfg, now());
        let t = self.cfg.timeout;
        let addrs: Vec<SocketAddr> = tokio::time::timeout(t, tokio::net::lookup_host(self.cfg.addr.as_str()))
            .await
            .map_err(|_| {
                self.error(
                    FailureKind::Timeout,
                    format!("resolving took longer than {}", fmt_duration(t)),
                )
            })?
            .map_err(|e| self.error(FailureKind::Connect, format!("resolving {}: {e}", self.cfg.addr)))?
            .collect();
        let Some(first) = addrs.first().copied() else {
            return Err(self.error(FailureKind::Connect, format!("{} has no address", self.cfg.addr)));
        };
        if self.cfg.transport == SyslogTransport::Udp {
            let local: SocketAddr = if first.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = tokio::net::UdpSocket::bind(local)
                .await
                .map_err(|e| self.error(FailureKind::Io, format!("opening a UDP socket: {e}")))?;
            let n = tokio::time::timeout(t, socket.send_to(&message, first))
                .await
                .map_err(|_| self.error(FailureKind::Timeout, "sending the datagram timed out".into()))?
                .map_err(|e| self.error(FailureKind::Connect, format!("sending to {first}: {e}")))?;
            return Ok(Delivery {
                attempts: 1,
                detail: format!("{n} bytes over udp to {first}"),
            });
        }
        let mut frame = format!("{} ", message.len()).into_bytes();
        frame.extend_from_slice(&message);
        let mut errors = Vec::new();
        for addr in addrs.iter().take(4) {
            let tcp = match tokio::time::timeout(t, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    errors.push(format!("{addr}: {e}"));
                    continue;
                }
                Err(_) => {
                    errors.push(format!("{addr}: timed out after {}", fmt_duration(t)));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => self.write(tcp, &frame).await?,
                Some(TlsClient { connector, name }) => {
                    let tls = tokio::time::timeout(t, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| self.error(FailureKind::Timeout, "the TLS handshake timed out".into()))?
                        .map_err(|e| self.tls_error(e))?;
                    self.write(tls, &frame).await?;
                }
            }
            return Ok(Delivery {
                attempts: 1,
                detail: format!(
                    "{} bytes over {} to {addr}",
                    frame.len(),
                    self.cfg.transport.as_str()
                ),
            });
        }
        Err(self.error(
            FailureKind::Connect,
            format!("cannot connect ({})", errors.join("; ")),
        ))
    }

    async fn write<S: AsyncWrite + Unpin>(&self, mut conn: S, frame: &[u8]) -> Result<(), NotifyError> {
        let io = async {
            conn.write_all(frame).await?;
            conn.flush().await?;
            conn.shutdown().await
        };
        tokio::time::timeout(self.cfg.timeout, io)
            .await
            .map_err(|_| self.error(FailureKind::Timeout, "writing the message timed out".into()))?
            .map_err(|e| self.error(FailureKind::Io, format!("writing the message failed: {e}")))
    }

    fn tls_error(&self, e: std::io::Error) -> NotifyError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(c)) => NotifyError::new(
                SinkKind::Syslog,
                &self.shown,
                FailureKind::Certificate,
                format!("the collector's certificate does not validate ({c})"),
                "give the CA that issued it as ca_pem, or set server_name to the name in the certificate",
            ),
            _ => self.error(FailureKind::Tls, format!("the TLS handshake failed ({e})")),
        }
    }

    fn error(&self, kind: FailureKind, problem: String) -> NotifyError {
        let fix = match kind {
            FailureKind::Timeout => {
                "check that the collector runs and answers; raise the timeout if it is only slow"
            }
            FailureKind::Tls => "check that the collector speaks TLS on this port (RFC 5425, usually 6514)",
            _ => "check the collector's address and port, and that it runs and is reachable from this host",
        };
        NotifyError::new(SinkKind::Syslog, &self.shown, kind, problem, fix)
    }
}

/// The RFC 5424 message for `notice` (no transport framing), stamped `at`.
pub fn encode(notice: &AlertNotice, cfg: &SyslogConfig, at: Timestamp) -> Vec<u8> {
    let a = &notice.alert;
    let pri = u16::from(cfg.facility.min(23)) * 8 + syslog_severity(a.severity) as u16;
    let mut out = String::with_capacity(512);
    let at = Timestamp { offset_secs: 0, ..at };
    let _ = write!(out, "<{pri}>1 {at} ");
    header_field(&mut out, &notice.host, HOSTNAME_MAX);
    out.push(' ');
    header_field(&mut out, &cfg.app_name, APP_NAME_MAX);
    let _ = write!(out, " {} ", std::process::id());
    header_field(&mut out, &a.rule, MSGID_MAX);
    let _ = write!(out, " [{}", cfg.sd_id);
    param(&mut out, "event", notice.event.as_str());
    param(&mut out, "rule", &a.rule);
    param(&mut out, "severity", a.severity.as_str());
    param(&mut out, "key", super::cut(&a.key, KEY_MAX));
    param(&mut out, "count", &a.count.to_string());
    param(&mut out, "first", &a.first.to_string());
    param(&mut out, "last", &a.last.to_string());
    if let Some(id) = notice.alert_id {
        param(&mut out, "alert_id", &id.to_string());
    }
    out.push(']');
    if !a.message.is_empty() {
        out.push(' ');
        out.push_str(BOM);
        out.push_str(&escape_text(&a.message, cfg.max_msg_bytes));
    }
    out.into_bytes()
}

/// A header field: printable US-ASCII (others become `_`), at most `max`
/// characters, `-` when empty.
fn header_field(out: &mut String, value: &str, max: usize) {
    let start = out.len();
    out.extend(
        value
            .chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' }),
    );
    if out.len() == start {
        out.push('-');
    }
}

/// ` name="value"`: controls shown as escapes, then `"`, `\` and `]` escaped.
fn param(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"");
    for c in escape_text(value, usize::MAX).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::notice;

    fn encoded(n: &AlertNotice, cfg: &SyslogConfig) -> String {
        let at = Timestamp {
            unix_micros: 1_710_405_600_000_000,
            offset_secs: 0,
        };
        String::from_utf8(encode(n, cfg, at)).unwrap()
    }

    #[test]
    fn encodes_an_alert() {
        let cfg = SyslogConfig::new("127.0.0.1:514", SyslogTransport::Udp);
        let s = encoded(&notice("ip=203.0.113.5"), &cfg);
        let pid = std::process::id();
        assert_eq!(
            s,
            format!(
                "<83>1 2024-03-14T08:40:00.000000Z mx1.example.org mailwarden {pid} auth-bruteforce-ip \
                 [mailwarden@32473 event=\"opened\" rule=\"auth-bruteforce-ip\" severity=\"high\" \
                 key=\"ip=203.0.113.5\" count=\"412\" first=\"2024-03-14T08:14:00.000000+01:00\" \
                 last=\"2024-03-14T09:40:00.000000+01:00\" alert_id=\"17\"] \u{feff}203.0.113.5 failed 412 logins"
            )
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_parameter() {
        let cfg = SyslogConfig {
            facility: FACILITY_LOCAL0,
            ..SyslogConfig::new("127.0.0.1:514", SyslogTransport::Tcp)
        };
        let mut n = notice(&format!(
            "user=a\"] [x@1 y=\"z\\\r\n<13>1 fake{}",
            "A".repeat(5000)
        ));
        n.alert.message = "two\nlines".into();
        n.host = "höst name".into();
        let s = encoded(&n, &cfg);
        assert!(s.starts_with("<131>1 "), "{s}");
        assert!(!s.contains(['\r', '\n']), "{s}");
        assert!(s.contains(" h_st_name mailwarden "), "{s}");
        assert!(
            s.contains("key=\"user=a\\\"\\] [x@1 y=\\\"z\\\\\\\\x0d\\\\x0a<13>1 fakeAAA"),
            "{s}"
        );
        assert!(s.ends_with("\u{feff}two\\x0alines"), "{s}");
        // The key is cut: the whole message stays small enough for UDP.
        assert!(s.len() < 2048, "{}", s.len());
    }

    #[test]
    fn configuration_errors() {
        let bad = |cfg: SyslogConfig, part: &str| {
            let e = SyslogSink::new(cfg).unwrap_err();
            assert_eq!(e.kind, FailureKind::Config);
            assert!(e.to_string().contains(part), "{e}");
        };
        bad(
            SyslogConfig::new("logs.example.org", SyslogTransport::Tcp),
            "no port",
        );
        bad(
            SyslogConfig::new("logs.example.org:x", SyslogTransport::Tcp),
            "not host:port",
        );
        bad(
            SyslogConfig {
                sd_id: "bad id".into(),
                ..SyslogConfig::new("logs.example.org:514", SyslogTransport::Udp)
            },
            "SD-ID",
        );
        bad(
            SyslogConfig {
                facility: 24,
                ..SyslogConfig::new("logs.example.org:514", SyslogTransport::Udp)
            },
            "facility",
        );
        let ok = SyslogSink::new(SyslogConfig::new(
            "logs.example.org:6514",
            SyslogTransport::Tls {
                ca_pem: None,
                server_name: None,
            },
        ))
        .unwrap();
        assert_eq!(ok.destination(), "tls://logs.example.org:6514");
    }
}
