//! The e-mail sink: one message per notice through an SMTP relay (lettre),
//! with the alert rendered for people and its JSON document attached.
//!
//! # Transport security
//!
//! * [`SmtpSecurity::StartTls`] (the default, port 587): the connection must
//!   be upgraded with STARTTLS before anything else is sent — a relay that
//!   does not offer it is an error, never a silent fallback to clear text;
//! * [`SmtpSecurity::ImplicitTls`] (port 465): TLS from the first byte;
//! * [`SmtpSecurity::Plain`] (port 25): no TLS, only when asked for, for a
//!   relay on this host. A password is never sent in clear to another host.
//!
//! The relay's certificate is checked against the Web PKI roots plus any
//! extra CA files, for [`EmailConfig::tls_server_name`] (the relay's name by
//! default). SASL login (PLAIN or LOGIN) is used when a user name is given;
//! the password is a [`Secret`].
//!
//! # The message
//!
//! `Subject: [mailwarden] HIGH auth-bruteforce-ip: ip=203.0.113.5` — one line,
//! control and invisible formatting characters removed, the key cut at 120
//! characters; lettre encodes it (RFC 2047) when it is not ASCII. The body
//! is `multipart/mixed`: a `text/plain` part with the alert for people
//! (message, times, count, facts, evidence lines — control characters shown
//! as `\x0a`-style escapes) and `alert.json`, the same JSON document a
//! webhook gets. Headers `Auto-Submitted: auto-generated` (RFC 3834: no
//! vacation replies), `X-Mailwarden-Rule` and `X-Mailwarden-Severity` (for
//! filters). Nothing from an alert reaches a header except through the
//! subject's one-line cleaning, so a hostile key cannot add a header.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{
    AlertNotice, Delivery, FailureKind, Jitter, NoticeEvent, NotifyError, Secret, SinkKind, escape_text,
    fmt_duration, notice_json, one_line,
};
use crate::collect::syslog::load_certs;

/// Characters of the alert key kept in the subject.
const SUBJECT_KEY_CHARS: usize = 120;
/// Longest line of text in the body from an alert, in bytes.
const BODY_TEXT_BYTES: usize = 1024;

/// How the connection to the relay is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS, required (port 587 by default).
    #[default]
    StartTls,
    /// TLS from the start (port 465 by default).
    ImplicitTls,
    /// No TLS (port 25 by default): only for a relay on this host.
    Plain,
}

impl SmtpSecurity {
    /// The usual port.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::Plain => 25,
        }
    }
}

/// Where and how to send mail.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// The relay's host name or IP address.
    pub relay: String,
    /// The relay's port (default: by [`SmtpSecurity::default_port`]).
    pub port: Option<u16>,
    /// Transport security (default STARTTLS, required).
    pub security: SmtpSecurity,
    /// The name the relay's certificate must carry (default: `relay`).
    pub tls_server_name: Option<String>,
    /// PEM files with extra CA certificates (a private relay's CA).
    pub extra_roots: Vec<PathBuf>,
    /// SASL user name; no login when `None`.
    pub username: Option<String>,
    /// SASL password (from a file or the environment).
    pub password: Option<Secret>,
    /// The `From:` (and envelope sender), e.g. `mailwarden <alerts@example.org>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The name sent with EHLO (default: the relay sees `[127.0.0.1]`).
    pub hello_name: Option<String>,
    /// Connecting, and each SMTP command (default 30 s).
    pub timeout: Duration,
}

impl EmailConfig {
    /// Defaults: STARTTLS on the usual port, no login, 30 s timeout.
    pub fn new(relay: impl Into<String>, from: impl Into<String>, to: Vec<String>) -> EmailConfig {
        EmailConfig {
            relay: relay.into(),
            port: None,
            security: SmtpSecurity::StartTls,
            tls_server_name: None,
            extra_roots: Vec::new(),
            username: None,
            password: None,
            from: from.into(),
            to,
            hello_name: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// An SMTP relay destination, ready to send.
pub struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// The domain of Message-IDs (the sender's).
    id_domain: String,
    shown: String,
    security: SmtpSecurity,
    tls_name: String,
    timeout: Duration,
}

impl std::fmt::Debug for EmailSink {
    // Not derived: the transport holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSink")
            .field("destination", &self.shown)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .field(
                "to",
                &self.to.iter().map(|m| m.email.to_string()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    /// Checks the addresses, loads the CA files and prepares the transport.
    pub fn new(cfg: EmailConfig) -> Result<EmailSink, NotifyError> {
        let port = cfg.port.unwrap_or(cfg.security.default_port());
        let shown = format!("smtp://{}:{port}", one_line(&cfg.relay, 255));
        let config = |problem: String, fix: &str| NotifyError::config(SinkKind::Email, &shown, problem, fix);
        if cfg.relay.is_empty() {
            return Err(config("no relay is set".into(), "give the relay's host name"));
        }
        let from: Mailbox = cfg.from.parse().map_err(|e| {
            config(
                format!(
                    "the From address {:?} is not valid: {e}",
                    one_line(&cfg.from, 100)
                ),
                "give an address like `mailwarden <alerts@example.org>`",
            )
        })?;
        if cfg.to.is_empty() {
            return Err(config(
                "no recipient is set".into(),
                "give at least one To address",
            ));
        }
        let to = cfg
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>().map_err(|e| {
                    config(
                        format!("the To address {:?} is not valid: {e}", one_line(t, 100)),
                        "give addresses like `oncall@example.org`",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_name = cfg.tls_server_name.clone().unwrap_or_else(|| cfg.relay.clone());
        let tls = match cfg.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls | SmtpSecurity::ImplicitTls => {
                let mut params =
                    TlsParameters::builder(tls_name.clone()).certificate_store(CertificateStore::WebpkiRoots);
                for path in &cfg.extra_roots {
                    for der in
                        load_certs(path).map_err(|e| config(e, "give a PEM file with CA certificates"))?
                    {
                        let cert = Certificate::from_der(der.to_vec()).map_err(|e| {
                            config(
                                format!("a certificate in {} cannot be used: {e}", path.display()),
                                "give a PEM file with CA certificates",
                            )
                        })?;
                        params = params.add_root_certificate(cert);
                    }
                }
                let params = params.build_rustls().map_err(|e| {
                    config(
                        format!("the TLS settings cannot be used: {e}"),
                        "check tls_server_name and the CA files",
                    )
                })?;
                if cfg.security == SmtpSecurity::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.relay.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(cfg.timeout));
        if let Some(name) = &cfg.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => {
                if cfg.security == SmtpSecurity::Plain && !is_local(&cfg.relay) {
                    return Err(config(
                        "a password would be sent in clear text to a relay on another host".into(),
                        "use security = starttls or implicit-tls for this relay",
                    ));
                }
                let password = String::from_utf8(password.expose().to_vec()).map_err(|_| {
                    config(
                        "the SMTP password is not UTF-8".into(),
                        "store the password as UTF-8 text",
                    )
                })?;
                builder = builder.credentials(Credentials::new(user.clone(), password));
            }
            (Some(_), None) => {
                return Err(config(
                    "a user name is set without a password".into(),
                    "give the password in a file or an environment variable",
                ));
            }
            (None, Some(_)) => {
                return Err(config(
                    "a password is set without a user name".into(),
                    "give the SASL user name",
                ));
            }
            (None, None) => {}
        }
        let id_domain = from.email.domain().to_owned();
        Ok(EmailSink {
            transport: builder.build(),
            from,
            to,
            id_domain,
            shown,
            security: cfg.security,
            tls_name,
            timeout: cfg.timeout,
        })
    }

    /// The relay, `smtp://host:port`.
    pub fn destination(&self) -> &str {
        &self.shown
    }

    /// Sends the notice as one message to every recipient.
    pub async fn send(&self, notice: &AlertNotice) -> Result<Delivery, NotifyError> {
        let message = self.message(notice)?;
        match self.transport.send(message).await {
            Ok(response) => {
                let text: Vec<&str> = response.message().collect();
                Ok(Delivery {
                    attempts: 1,
                    detail: one_line(&format!("{} {}", response.code(), text.join(" ")), 300),
                })
            }
            Err(e) => Err(self.smtp_error(&e)),
        }
    }

    /// Builds the message.
    pub fn message(&self, notice: &AlertNotice) -> Result<Message, NotifyError> {
        let a = &notice.alert;
        let id = format!("<mailwarden.{}@{}>", Jitter::new().id(), self.id_domain);
        let header =
            |name: &'static str, value: String| HeaderValue::new(HeaderName::new_from_ascii_str(name), value);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(notice))
            .message_id(Some(id))
            .user_agent(super::webhook::USER_AGENT.to_owned())
            .raw_header(header("Auto-Submitted", "auto-generated".into()))
            .raw_header(header("X-Mailwarden-Rule", one_line(&a.rule, 64)))
            .raw_header(header("X-Mailwarden-Severity", a.severity.as_str().into()))
            .raw_header(header("X-Mailwarden-Event", notice.event.as_str().into()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let json_type = ContentType::parse("application/json").map_err(|e| {
            NotifyError::config(
                SinkKind::Email,
                &self.shown,
                format!("content type: {e}"),
                "report this bug",
            )
        })?;
        builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(render_text(notice)))
                    .singlepart(
                        Attachment::new("alert.json".to_owned()).body(notice_json(notice), json_type),
                    ),
            )
            .map_err(|e| {
                NotifyError::config(
                    SinkKind::Email,
                    &self.shown,
                    format!("the message cannot be built: {e}"),
                    "check the From and To addresses",
                )
            })
    }

    fn smtp_error(&self, e: &lettre::transport::smtp::Error) -> NotifyError {
        let text = one_line(&e.to_string(), 500);
        let error = |kind, problem: String, fix: String| {
            NotifyError::new(SinkKind::Email, &self.shown, kind, problem, fix)
        };
        if let Some(tls) = rustls_problem(e) {
            return match tls {
                rustls::Error::InvalidCertificate(why) => error(
                    FailureKind::Certificate,
                    format!(
                        "the relay's certificate does not validate for {} ({why})",
                        self.tls_name
                    ),
                    format!(
                        "give the relay a certificate for {} from a public CA, add the CA that issued it as an \
                         extra CA file, or set tls_server_name to the name in its certificate",
                        self.tls_name
                    ),
                ),
                other => error(
                    FailureKind::Tls,
                    format!("the TLS handshake failed ({other})"),
                    "check the port and the security setting (587: starttls, 465: implicit-tls)".into(),
                ),
            };
        }
        if text.contains("STARTTLS is not supported") {
            return error(
                FailureKind::Tls,
                "the relay does not offer STARTTLS, and STARTTLS is required (nothing was sent in clear text)".into(),
                "enable TLS on the relay (Postfix: smtpd_tls_security_level = may with a certificate), use \
                 security = implicit-tls if it listens on port 465, or security = plain only for a relay on this \
                 host"
                    .into(),
            );
        }
        if e.is_tls() {
            return error(
                FailureKind::Tls,
                format!("the TLS handshake failed ({text})"),
                "check the port and the security setting (587: starttls, 465: implicit-tls)".into(),
            );
        }
        if e.is_timeout() || text.contains("timed out") {
            return error(
                FailureKind::Timeout,
                format!(
                    "the relay did not answer within {} ({text})",
                    fmt_duration(self.timeout)
                ),
                "check that the relay runs and is reachable; raise the timeout if it is only slow".into(),
            );
        }
        if let Some(code) = e.status() {
            let code_text = code.to_string();
            let fix = match code_text.as_str() {
                "530" | "534" | "535" | "538" => "check the SASL user name and password",
                "550" | "551" | "553" => {
                    "check the From and To addresses, and that the relay lets this user send as From"
                }
                "552" => "the relay refused the size; raise its message size limit",
                "554" => "the relay refused the transaction; its log says why",
                _ if e.is_transient() => {
                    "a temporary refusal: the relay's log says why; later notices are tried again"
                }
                _ => "the relay's log says why it refused",
            };
            return error(
                FailureKind::Rejected,
                format!("the relay refused: {text}"),
                fix.into(),
            );
        }
        if text.starts_with("Connection error") || text.starts_with("network error") {
            return error(
                FailureKind::Connect,
                format!("cannot talk to the relay ({text})"),
                "check the relay's host name and port, and that it runs and is reachable from this host"
                    .into(),
            );
        }
        if text.contains("authentication mechanism") {
            return error(
                FailureKind::Protocol,
                format!("{text}: the relay offers neither AUTH PLAIN nor AUTH LOGIN here"),
                "enable SASL on the relay's port, or remove the user name if it accepts mail without login"
                    .into(),
            );
        }
        error(
            FailureKind::Protocol,
            format!("the SMTP exchange failed ({text})"),
            "check that the relay speaks SMTP on this port and the security setting matches it".into(),
        )
    }
}

/// A rustls error somewhere in the error's sources (lettre wraps handshake
/// failures as connection errors).
fn rustls_problem<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let found = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if found.is_some() {
            return found;
        }
        next = err.source();
    }
    None
}

/// `localhost` or a loopback address.
fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `[mailwarden] HIGH auth-bruteforce-ip: ip=203.0.113.5`, with the event
/// in parentheses when it is not `opened`.
pub fn subject(notice: &AlertNotice) -> String {
    let a = &notice.alert;
    let mut s = format!(
        "[mailwarden] {} {}: {}",
        a.severity.as_str().to_ascii_uppercase(),
        one_line(&a.rule, 64),
        one_line(&a.key, SUBJECT_KEY_CHARS)
    );
    if notice.event != NoticeEvent::Opened {
        let _ = write!(s, " ({})", notice.event);
    }
    s
}

/// The alert for people, as the text part of the message.
pub fn render_text(notice: &AlertNotice) -> String {
    let a = &notice.alert;
    let esc = |s: &str| escape_text(s, BODY_TEXT_BYTES).into_owned();
    let mut out = String::new();
    let _ = writeln!(out, "mailwarden alert {} on {}", notice.event, esc(&notice.host));
    out.push('\n');
    let _ = writeln!(
        out,
        "{} {}: {}",
        a.severity.as_str().to_ascii_uppercase(),
        esc(&a.rule),
        esc(&a.title)
    );
    let _ = writeln!(out, "Key:      {}", esc(&a.key));
    let _ = writeln!(out, "What:     {}", esc(&a.message));
    let _ = writeln!(out, "First:    {}", a.first);
    let _ = writeln!(out, "Last:     {}", a.last);
    let _ = writeln!(out, "Count:    {}", a.count);
    if !a.attack.is_empty() {
        let _ = writeln!(out, "ATT&CK:   {}", esc(&a.attack.join(", ")));
    }
    if let Some(id) = notice.alert_id {
        let _ = writeln!(out, "Alert id: {id}");
    }
    if !a.facts.is_empty() {
        out.push_str("\nFacts\n");
        for (name, values) in &a.facts {
            let values: Vec<String> = values.iter().map(|v| esc(v)).collect();
            let _ = writeln!(out, "  {}: {}", esc(name), values.join(", "));
        }
    }
    if !a.evidence.is_empty() {
        let _ = write!(out, "\nEvidence ({} shown", a.evidence.len());
        if a.evidence_omitted > 0 {
            let _ = write!(out, ", {} more not kept", a.evidence_omitted);
        }
        out.push_str(")\n");
        for e in &a.evidence {
            let place = match &e.at {
                Some(at) => esc(at),
                None => format!("input {}, line {}", e.position.source, e.position.line),
            };
            match e.ts {
                Some(ts) => {
                    let _ = writeln!(out, "  {place}  {ts}");
                }
                None => {
                    let _ = writeln!(out, "  {place}");
                }
            }
            if let Some(text) = &e.text {
                let _ = writeln!(out, "    {}", esc(text));
            }
        }
    }
    out.push_str("\nThe alert as JSON is attached (alert.json).\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::notice;

    #[test]
    fn subjects_are_one_bounded_line() {
        assert_eq!(
            subject(&notice("ip=203.0.113.5")),
            "[mailwarden] HIGH auth-bruteforce-ip: ip=203.0.113.5"
        );
        let mut closed = notice("user=bob");
        closed.event = NoticeEvent::Closed;
        assert_eq!(
            subject(&closed),
            "[mailwarden] HIGH auth-bruteforce-ip: user=bob (closed)"
        );
        let hostile = format!(
            "user=x\r\nBcc: victim@example.org\r\n\u{1b}[31m\u{202e}{}",
            "A".repeat(10_000)
        );
        let s = subject(&notice(&hostile));
        assert!(!s.contains(['\r', '\n', '\u{1b}', '\u{202e}']), "{s:?}");
        assert!(
            s.starts_with("[mailwarden] HIGH auth-bruteforce-ip: user=x Bcc: victim@example.org [31mAAA"),
            "{s}"
        );
        assert!(s.ends_with('…') && s.chars().count() < 200, "{}", s.len());
    }

    #[test]
    fn body_shows_the_alert_with_escapes() {
        let mut n = notice("user=a\nb");
        n.alert.evidence[0].text = Some("line with \u{1b}]0;title\u{7} and \r\n".into());
        let text = render_text(&n);
        assert!(
            text.starts_with("mailwarden alert opened on mx1.example.org\n\nHIGH auth-bruteforce-ip: "),
            "{text}"
        );
        assert!(text.contains("Key:      user=a\\x0ab\n"), "{text}");
        assert!(text.contains("Count:    412\n"), "{text}");
        assert!(text.contains("Alert id: 17\n"), "{text}");
        assert!(text.contains("  user: alice@example.org, admin\n"), "{text}");
        assert!(text.contains("Evidence (1 shown, 411 more not kept)\n  /var/log/mail.log:1234  2024-03-14T08:14:00.000000+01:00\n"), "{text}");
        assert!(
            text.contains("    line with \\x1b]0;title\\x07 and \\x0d\\x0a\n"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn configuration_errors() {
        let base = || {
            EmailConfig::new(
                "relay.example.org",
                "mailwarden <alerts@example.org>",
                vec!["oncall@example.org".into()],
            )
        };
        assert!(EmailSink::new(base()).is_ok());
        let check = |cfg: EmailConfig, part: &str| {
            let e = EmailSink::new(cfg).unwrap_err();
            assert_eq!(e.kind, FailureKind::Config);
            assert!(e.to_string().contains(part), "{e}");
        };
        check(
            EmailConfig {
                from: "not an address".into(),
                ..base()
            },
            "From address",
        );
        check(EmailConfig { to: vec![], ..base() }, "no recipient");
        check(
            EmailConfig {
                to: vec!["a@b".into(), "@@".into()],
                ..base()
            },
            "To address",
        );
        check(
            EmailConfig {
                security: SmtpSecurity::Plain,
                username: Some("u".into()),
                password: Some(Secret::from_bytes("hunter2")),
                ..base()
            },
            "clear text",
        );
        check(
            EmailConfig {
                username: Some("u".into()),
                ..base()
            },
            "without a password",
        );
        // Plain with a password to this host is allowed.
        let local = EmailConfig {
            relay: "127.0.0.1".into(),
            security: SmtpSecurity::Plain,
            username: Some("u".into()),
            password: Some(Secret::from_bytes("hunter2")),
            ..base()
        };
        let sink = EmailSink::new(local).unwrap();
        assert!(!format!("{sink:?}").contains("hunter2"));
        assert_eq!(sink.destination(), "smtp://127.0.0.1:25");
    }

    #[test]
    fn messages_carry_text_and_json() {
        let sink = EmailSink::new(EmailConfig::new(
            "relay.example.org",
            "mailwarden <alerts@example.org>",
            vec!["a@example.org".into(), "b@example.org".into()],
        ))
        .unwrap();
        let raw = String::from_utf8(sink.message(&notice("ip=203.0.113.5")).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Subject: [mailwarden] HIGH auth-bruteforce-ip: ip=203.0.113.5\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"), "{raw}");
        assert!(raw.contains("X-Mailwarden-Rule: auth-bruteforce-ip\r\n"), "{raw}");
        assert!(raw.contains("To: a@example.org, b@example.org\r\n"), "{raw}");
        assert!(raw.contains("Content-Type: application/json"), "{raw}");
        assert!(raw.contains("filename=\"alert.json\""), "{raw}");
        assert!(raw.contains("Message-ID: <mailwarden."), "{raw}");
    }
}
