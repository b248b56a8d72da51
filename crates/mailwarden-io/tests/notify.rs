//! The alert sinks against real servers.
//!
//! - Webhooks against the testlab's HTTP(S) server: the receiver verifies
//!   the HMAC signature (and a wrong secret fails), 503s are retried until a
//!   200, a 400 is tried once, a hanging receiver times out, HTTPS works with
//!   the test CA and fails on the certificate without it, a redirect is not
//!   followed, and the notifier's deadline cuts a sink off.
//! - E-mail through the lab's real Postfix with STARTTLS and SASL: the
//!   message lands in the recipient's Maildir with the expected subject, the
//!   mail log shows the TLS connection, and a hostile key cannot add headers;
//!   a relay without STARTTLS is a clear error.
//! - Syslog to a private rsyslogd over TCP and UDP: the stored line has the
//!   PRI, MSGID and structured data the sink set.
//! - The JSON lines shape, as a snapshot.
//!
//! The lab needs root and postfix, dovecot and swaks; rsyslog needs
//! rsyslogd. Without them those tests print `SKIPPED: …` and pass.

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailwarden_core::detect::{Alert, AlertSeverity};
use mailwarden_core::time::Timestamp;
use mailwarden_io::notify::webhook::{
    self, HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP, VerifyError,
};
use mailwarden_io::notify::{
    AlertNotice, EmailConfig, EmailSink, FailureKind, JsonSink, NoticeEvent, Notifier, Outcome, Secret, Sink,
    SinkOptions, SmtpSecurity, SyslogConfig, SyslogSink, SyslogTransport, WebhookConfig, WebhookSink,
};
use mailwarden_testlab::{
    HttpsRoute, HttpsServer, HttpsSite, LabError, LabOptions, LogKind, MailLab, Rsyslog,
};

const SECRET: &[u8] = b"lab-webhook-secret-0123456789";

fn alert(key: &str) -> Alert {
    // Built from JSON, as a store or another process would hand it over.
    serde_json::from_value(serde_json::json!({
        "rule": "auth-bruteforce-ip",
        "title": "Password guessing from one address",
        "severity": "high",
        "attack": ["T1110.001"],
        "key": key,
        "first": "2024-03-14T08:14:00.000000+01:00",
        "last": "2024-03-14T09:40:00.000000+01:00",
        "count": 412,
        "message": "203.0.113.5 failed 412 logins",
        "facts": {"user": ["alice@example.org", "admin"]},
        "evidence": [{
            "kind": "line",
            "position": {"source": 0, "line": 1234},
            "at": "/var/log/mail.log:1234",
            "ts": "2024-03-14T08:14:00.000000+01:00",
            "text": "Mar 14 08:14:00 mx1 postfix/smtpd[77]: warning: unknown[203.0.113.5]: SASL LOGIN authentication failed"
        }],
        "evidence_omitted": 411
    }))
    .expect("a valid alert")
}

fn notice(key: &str) -> AlertNotice {
    AlertNotice::new(NoticeEvent::Opened, alert(key), "mx1.example.org")
        .with_id(17)
        .at(Timestamp {
            unix_micros: 1_710_405_600_000_000,
            offset_secs: 0,
        })
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A webhook configuration with short delays for tests.
fn hook(url: String) -> WebhookConfig {
    let mut cfg = WebhookConfig::new(url);
    cfg.secret = Some(Secret::from_bytes(SECRET));
    cfg.backoff_initial = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(100);
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

fn plain_url(server: &HttpsServer, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", server.port())
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_is_signed_and_the_receiver_verifies_it() {
    let server = HttpsServer::start_plain(vec![HttpsRoute::new("/hooks/mailwarden", 204)]).unwrap();
    let sink = WebhookSink::new(hook(plain_url(&server, "/hooks/mailwarden?team=ops"))).unwrap();
    assert_eq!(
        sink.destination(),
        format!("http://127.0.0.1:{}/hooks/mailwarden?…", server.port())
    );
    let d = sink.send(&notice("ip=203.0.113.5")).await.unwrap();
    assert_eq!((d.attempts, d.detail.as_str()), (1, "HTTP 204"));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/mailwarden?team=ops")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("user-agent").unwrap().starts_with("mailwarden/"),
        "{r:?}"
    );
    assert_eq!(r.header("x-mailwarden-event"), Some("opened"));
    assert_eq!(r.header(HEADER_DELIVERY).map(str::len), Some(32));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["type"], "mailwarden.alert");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["alert"]["key"], "ip=203.0.113.5");

    // What a receiver does: check the timestamp, then the HMAC.
    let ts = r.header(HEADER_TIMESTAMP).unwrap();
    let sig = r.header(HEADER_SIGNATURE).unwrap();
    let now = unix_now();
    assert_eq!(
        webhook::verify(SECRET, ts, &r.body, sig, now, webhook::DEFAULT_TOLERANCE),
        Ok(())
    );
    assert_eq!(
        webhook::verify(
            b"another-secret",
            ts,
            &r.body,
            sig,
            now,
            webhook::DEFAULT_TOLERANCE
        ),
        Err(VerifyError::Mismatch)
    );
    let mut tampered = r.body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        webhook::verify(SECRET, ts, &tampered, sig, now, webhook::DEFAULT_TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    // The same request replayed an hour later.
    assert!(matches!(
        webhook::verify(SECRET, ts, &r.body, sig, now + 3600, webhook::DEFAULT_TOLERANCE),
        Err(VerifyError::Stale(_))
    ));
}

#[tokio::test]
async fn webhook_retries_503s_then_succeeds() {
    let server = HttpsServer::start_plain(vec![
        HttpsRoute::new("/hook", 503).times(1),
        // A small Retry-After is honoured.
        HttpsRoute::new("/hook", 503).header("Retry-After", "0").times(1),
        HttpsRoute::new("/hook", 200),
    ])
    .unwrap();
    let sink = WebhookSink::new(hook(plain_url(&server, "/hook"))).unwrap();
    let d = sink.send(&notice("ip=203.0.113.5")).await.unwrap();
    assert_eq!((d.attempts, d.detail.as_str()), (3, "HTTP 200"));
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    // One delivery id for the notice; every attempt signed and verifiable.
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r.header(HEADER_DELIVERY).unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for r in &requests {
        let (ts, sig) = (
            r.header(HEADER_TIMESTAMP).unwrap(),
            r.header(HEADER_SIGNATURE).unwrap(),
        );
        assert_eq!(
            webhook::verify(SECRET, ts, &r.body, sig, unix_now(), webhook::DEFAULT_TOLERANCE),
            Ok(())
        );
    }
}

#[tokio::test]
async fn webhook_gives_up_after_max_attempts_of_5xx() {
    let server = HttpsServer::start_plain(vec![HttpsRoute::new("/hook", 500).body("database down")]).unwrap();
    let mut cfg = hook(plain_url(&server, "/hook"));
    cfg.max_attempts = 3;
    let e = WebhookSink::new(cfg)
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.attempts), (FailureKind::Rejected, 3));
    assert_eq!(server.requests().len(), 3);
    let text = e.to_string();
    assert!(
        text.contains("HTTP 500 Internal Server Error; it answered: database down (after 3 attempts)"),
        "{text}"
    );
}

#[tokio::test]
async fn webhook_400_is_tried_once() {
    let server = HttpsServer::start_plain(vec![
        HttpsRoute::new("/hook", 400).body("bad payload\r\nX-Injected: \u{1b}[2Jyes"),
    ])
    .unwrap();
    let e = WebhookSink::new(hook(plain_url(&server, "/hook")))
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.attempts), (FailureKind::Rejected, 1));
    assert_eq!(server.requests().len(), 1);
    let text = e.to_string();
    assert!(
        text.contains("HTTP 400 Bad Request (not retried: the same request would be refused again)"),
        "{text}"
    );
    // The receiver's answer is quoted on one line, without control characters.
    assert!(
        text.contains("it answered: bad payload X-Injected: [2Jyes"),
        "{text}"
    );
    assert!(!text.contains(['\r', '\n', '\u{1b}']), "{text:?}");
}

#[tokio::test]
async fn webhook_times_out_on_a_hanging_receiver() {
    let server = HttpsServer::start_plain(vec![HttpsRoute::hanging("/hook")]).unwrap();
    let mut cfg = hook(plain_url(&server, "/hook"));
    cfg.request_timeout = Duration::from_millis(500);
    cfg.max_attempts = 2;
    let started = Instant::now();
    let e = WebhookSink::new(cfg)
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    // Bounded: two attempts of 0.5 s and a short back-off, far below this.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((e.kind, e.attempts), (FailureKind::Timeout, 2));
    assert!(
        e.to_string()
            .contains("no complete answer within the request timeout of 500 ms"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn webhook_over_https_needs_the_ca() {
    let server = HttpsServer::start(vec![
        HttpsSite::new("localhost").route(HttpsRoute::new("/hook", 200)),
    ])
    .unwrap();
    let url = format!("https://localhost:{}/hook", server.port());

    let mut with_ca = hook(url.clone());
    with_ca.extra_roots = vec![server.ca_pem()];
    let d = WebhookSink::new(with_ca)
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap();
    assert_eq!(d.detail, "HTTP 200");
    assert_eq!(server.requests()[0].sni.as_deref(), Some("localhost"));

    // Web PKI roots only: the test CA vouches for nothing. Not retried.
    let e = WebhookSink::new(hook(url))
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.attempts), (FailureKind::Certificate, 1));
    assert!(
        e.to_string()
            .contains("the certificate of localhost does not validate"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);

    // A CA file that is not one is a configuration error up front.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut bad = hook(format!("https://localhost:{}/hook", server.port()));
    bad.extra_roots = vec![junk];
    assert_eq!(WebhookSink::new(bad).unwrap_err().kind, FailureKind::Config);
}

#[tokio::test]
async fn webhook_does_not_follow_redirects() {
    let server = HttpsServer::start_plain(vec![
        HttpsRoute::redirect("/hook", "http://127.0.0.1:1/elsewhere"),
        HttpsRoute::new("/elsewhere", 200),
    ])
    .unwrap();
    let e = WebhookSink::new(hook(plain_url(&server, "/hook")))
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.attempts), (FailureKind::Redirect, 1));
    assert!(
        e.to_string()
            .contains("redirecting to http://127.0.0.1:1/elsewhere"),
        "{e}"
    );
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn webhook_to_a_closed_port_is_a_connect_error() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = hook(format!("http://127.0.0.1:{port}/hook"));
    cfg.max_attempts = 2;
    let e = WebhookSink::new(cfg)
        .unwrap()
        .send(&notice("k"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.attempts), (FailureKind::Connect, 2));
    assert!(!e.to_string().contains(std::str::from_utf8(SECRET).unwrap()));
}

#[tokio::test]
async fn notifier_fans_out_under_deadlines() {
    let ok = HttpsServer::start_plain(vec![HttpsRoute::new("/hook", 200)]).unwrap();
    let hanging = HttpsServer::start_plain(vec![HttpsRoute::hanging("/hook")]).unwrap();
    let lines = SharedBuffer::default();
    let mut n = Notifier::new();
    n.add(
        Sink::Webhook(WebhookSink::new(hook(plain_url(&ok, "/hook"))).unwrap()),
        SinkOptions::new("ops"),
    );
    n.add(
        Sink::Webhook(WebhookSink::new(hook(plain_url(&hanging, "/hook"))).unwrap()),
        SinkOptions::new("slow").deadline(Duration::from_millis(300)),
    );
    n.add(
        Sink::Json(JsonSink::new(lines.clone(), "buffer")),
        SinkOptions::new("pager").min_severity(AlertSeverity::Critical),
    );
    let results = n.notify(&notice("ip=203.0.113.5")).await;
    assert!(
        matches!(&results[0].outcome, Outcome::Sent(d) if d.detail == "HTTP 200"),
        "{results:?}"
    );
    assert!(
        matches!(&results[1].outcome, Outcome::Failed(e) if e.kind == FailureKind::Deadline),
        "{results:?}"
    );
    assert_eq!(results[2].outcome, Outcome::Skipped);
    assert!(lines.text().is_empty());
    let status = n.status();
    assert_eq!((status[0].sent, status[1].failed, status[2].skipped), (1, 1, 1));
    assert!(
        status[1]
            .last_error
            .as_deref()
            .unwrap()
            .contains("deadline of 300 ms"),
        "{status:?}"
    );
    assert_eq!(ok.requests().len(), 1);
}

// ---------------------------------------------------------------- JSON lines

#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_lines_shape() {
    let out = SharedBuffer::default();
    let sink = JsonSink::new(out.clone(), "stdout");
    sink.send(&notice("ip=203.0.113.5")).unwrap();
    let mut closed = notice("user=\"x\"\n\u{1b}[2J");
    closed.event = NoticeEvent::Closed;
    closed.alert_id = None;
    sink.send(&closed).unwrap();
    insta::assert_snapshot!(out.text());
}

// ---------------------------------------------------------------- e-mail

/// Starts the lab, or says why the test is skipped.
fn start_lab(opts: LabOptions) -> Option<MailLab> {
    match MailLab::start(opts) {
        Ok(lab) => Some(lab),
        Err(e @ (LabError::MissingBinary { .. } | LabError::NotRoot { .. })) => {
            eprintln!("SKIPPED: the mail lab cannot start here: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The messages in a lab user's Maildir `new/`, as text.
fn maildir_messages(lab: &MailLab, user: &str) -> Vec<String> {
    let dir = lab.dir().join("vmail/lab.test").join(user).join("Maildir/new");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    out.sort();
    out
}

fn wait_for_messages(lab: &MailLab, user: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = maildir_messages(lab, user);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{n} messages for {user} did not arrive:\n{}",
            lab.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn email_config(lab: &MailLab, port: u16) -> EmailConfig {
    let alice = &lab.users()[0];
    let mut cfg = EmailConfig::new(
        "127.0.0.1",
        format!("mailwarden <{}>", alice.address),
        vec!["bob@lab.test".into()],
    );
    cfg.port = Some(port);
    cfg.tls_server_name = Some(mailwarden_testlab::MAIL_HOSTNAME.into());
    cfg.extra_roots = lab.tls_ca_pem().into_iter().collect();
    cfg.username = Some(alice.address.into());
    cfg.password = Some(Secret::from_bytes(alice.password));
    cfg.hello_name = Some("mailwarden.lab.test".into());
    cfg.timeout = Duration::from_secs(20);
    cfg
}

#[test]
fn email_through_the_lab_with_starttls() {
    let Some(lab) = start_lab(LabOptions {
        smtpd_tls: true,
        ..LabOptions::default()
    }) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let submission = lab.port(mailwarden_testlab::Service::Submission);
    let sink = EmailSink::new(email_config(&lab, submission)).unwrap();

    // A normal alert, and one whose key tries to add headers and recipients.
    let hostile = format!(
        "user=x\r\nBcc: carol@lab.test\r\nX-Injected: yes\r\n\r\nbody?\u{0}\u{7}\u{1b}[31m\u{202e}{}",
        "A".repeat(10_000)
    );
    let d = rt.block_on(sink.send(&notice("ip=203.0.113.5"))).unwrap();
    assert!(d.detail.starts_with("250 "), "{d:?}");
    rt.block_on(sink.send(&notice(&hostile))).unwrap();

    let messages = wait_for_messages(&lab, "bob", 2);
    lab.wait_idle().unwrap();
    let parsed: Vec<mail_parser::Message<'_>> = messages
        .iter()
        .map(|m| mail_parser::MessageParser::default().parse(m.as_bytes()).unwrap())
        .collect();
    let subjects: Vec<&str> = parsed.iter().map(|m| m.subject().unwrap_or("")).collect();
    let normal = subjects
        .iter()
        .position(|s| *s == "[mailwarden] HIGH auth-bruteforce-ip: ip=203.0.113.5")
        .unwrap_or_else(|| panic!("no message with the expected subject: {subjects:?}"));
    let evil = 1 - normal;
    // The hostile key stayed inside the subject, on one line, cut short.
    assert!(
        subjects[evil].starts_with(
            "[mailwarden] HIGH auth-bruteforce-ip: user=x Bcc: carol@lab.test X-Injected: yes body?[31mAAAA"
        ),
        "{:?}",
        subjects[evil]
    );
    assert!(subjects[evil].chars().count() < 200, "{}", subjects[evil]);
    let raw = &messages[evil];
    let header_end = raw.find("\r\n\r\n").or_else(|| raw.find("\n\n")).unwrap();
    let headers = &raw[..header_end];
    assert!(
        !headers.to_ascii_lowercase().contains("\nx-injected:"),
        "{headers}"
    );
    assert!(!headers.to_ascii_lowercase().contains("\nbcc:"), "{headers}");
    assert!(maildir_messages(&lab, "carol").is_empty(), "carol got mail");
    // The body has the alert for people; the JSON is attached.
    let m = &parsed[normal];
    let text = m.body_text(0).unwrap();
    assert!(text.contains("Key:      ip=203.0.113.5"), "{text}");
    assert!(text.contains("Count:    412"), "{text}");
    let attachment = m.attachment(0).expect("alert.json attached");
    assert_eq!(
        mail_parser::MimeHeaders::attachment_name(attachment),
        Some("alert.json")
    );
    let doc: serde_json::Value = serde_json::from_slice(attachment.contents()).unwrap();
    assert_eq!(doc["alert"]["rule"], "auth-bruteforce-ip");
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );

    // The submission service saw TLS, and the login happened under it.
    let log = lab.read_log(LogKind::Mail);
    assert!(
        log.lines()
            .any(|l| l.contains("postfix/submission/smtpd") && l.contains("TLS connection established from")),
        "{log}"
    );
    assert!(log.contains("sasl_username=alice@lab.test"), "{log}");

    // Without the lab's CA the certificate does not validate; nothing is sent.
    let mut no_ca = email_config(&lab, submission);
    no_ca.extra_roots.clear();
    let e = rt
        .block_on(EmailSink::new(no_ca).unwrap().send(&notice("k")))
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Certificate, "{e}");

    // The sink instance offers no STARTTLS: required means refused, clearly.
    let sink_port = lab.port(mailwarden_testlab::Service::Sink);
    let mut cfg = email_config(&lab, sink_port);
    cfg.to = vec!["someone@remote.test".into()];
    let e = rt
        .block_on(EmailSink::new(cfg).unwrap().send(&notice("k")))
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Tls, "{e}");
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    assert!(!e.to_string().contains(lab.users()[0].password), "{e}");
    assert_eq!(maildir_messages(&lab, "bob").len(), 2);
}

#[test]
fn email_plain_to_a_local_relay_when_asked() {
    let Some(lab) = start_lab(LabOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The smtp listener takes mail for lab.test without login.
    let mut cfg = EmailConfig::new(
        "127.0.0.1",
        "mailwarden <alerts@monitor.test>",
        vec!["dave@lab.test".into()],
    );
    cfg.port = Some(lab.port(mailwarden_testlab::Service::Smtp));
    cfg.security = SmtpSecurity::Plain;
    let d = rt
        .block_on(
            EmailSink::new(cfg.clone())
                .unwrap()
                .send(&notice("ip=198.51.100.7")),
        )
        .unwrap();
    assert!(d.detail.starts_with("250 "), "{d:?}");
    let messages = wait_for_messages(&lab, "dave", 1);
    assert!(messages[0].contains("Subject: [mailwarden] HIGH auth-bruteforce-ip: ip=198.51.100.7"));

    // STARTTLS (the default) against the same listener, which has no TLS.
    cfg.security = SmtpSecurity::StartTls;
    let e = rt
        .block_on(EmailSink::new(cfg).unwrap().send(&notice("k")))
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Tls);
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
}

// ---------------------------------------------------------------- syslog

fn rsyslogd_installed() -> bool {
    let found = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"]
        .iter()
        .any(|d| Path::new(d).join("rsyslogd").exists());
    if !found {
        eprintln!("SKIPPED: rsyslogd is not installed (apt-get install rsyslog)");
    }
    found
}

/// Waits until `file` has a line containing `needle`.
fn wait_for_line(file: &Path, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Some(line) = text.lines().find(|l| l.contains(needle))
        {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn syslog_to_rsyslog_over_tcp_and_udp() {
    if !rsyslogd_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out: PathBuf = dir.join("alerts.log");
    let port_file = dir.join("tcp.port");
    // imudp has no port file: take a free port and hand it over.
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = format!(
        "module(load=\"imtcp\")\nmodule(load=\"imudp\")\n\
         template(name=\"t\" type=\"string\" string=\"%pri%|%syslogfacility-text%|%syslogseverity-text%|%hostname%|\
         %app-name%|%msgid%|%structured-data%|%msg%\\n\")\n\
         ruleset(name=\"in\") {{ action(type=\"omfile\" file=\"{out}\" template=\"t\") }}\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"0\" listenPortFileName=\"{pf}\" ruleset=\"in\")\n\
         input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp_port}\" ruleset=\"in\")",
        out = out.display(),
        pf = port_file.display(),
    );
    let mut rs = Rsyslog::start(dir, "collector", &body);
    let tcp_port = rs.port(&port_file);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // TCP, octet-counted: the default facility (authpriv), a hostile key.
    let tcp = SyslogSink::new(SyslogConfig::new(
        format!("127.0.0.1:{tcp_port}"),
        SyslogTransport::Tcp,
    ))
    .unwrap();
    let d = rt
        .block_on(tcp.send(&notice("user=tcp\"] \r\n<13>1 fake")))
        .unwrap();
    assert!(d.detail.contains("over tcp"), "{d:?}");
    let line = wait_for_line(&out, "user=tcp", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("nothing arrived over TCP: {}", rs.stderr()));
    let f: Vec<&str> = line.splitn(8, '|').collect();
    assert_eq!(
        &f[..6],
        [
            "83",
            "authpriv",
            "err",
            "mx1.example.org",
            "mailwarden",
            "auth-bruteforce-ip"
        ],
        "{line}"
    );
    assert_eq!(
        f[6],
        "[mailwarden@32473 event=\"opened\" rule=\"auth-bruteforce-ip\" severity=\"high\" \
         key=\"user=tcp\\\"\\] \\\\x0d\\\\x0a<13>1 fake\" count=\"412\" first=\"2024-03-14T08:14:00.000000+01:00\" \
         last=\"2024-03-14T09:40:00.000000+01:00\" alert_id=\"17\"]",
        "{line}"
    );
    assert!(f[7].ends_with("203.0.113.5 failed 412 logins"), "{line}");
    // One message, one line: nothing was split off.
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");

    // UDP, facility local0, a critical alert. The listener may still be
    // binding: send again until the line arrives (bounded).
    let udp = SyslogSink::new(SyslogConfig {
        facility: 16,
        ..SyslogConfig::new(format!("127.0.0.1:{udp_port}"), SyslogTransport::Udp)
    })
    .unwrap();
    let mut critical = notice("ip=udp.example");
    critical.alert.severity = AlertSeverity::Critical;
    let mut line = None;
    for _ in 0..10 {
        rt.block_on(udp.send(&critical)).unwrap();
        line = wait_for_line(&out, "ip=udp.example", Duration::from_secs(2));
        if line.is_some() {
            break;
        }
    }
    let line = line.unwrap_or_else(|| panic!("nothing arrived over UDP: {}", rs.stderr()));
    let f: Vec<&str> = line.splitn(8, '|').collect();
    assert_eq!(&f[..3], ["130", "local0", "crit"], "{line}");
    assert!(
        f[6].contains("severity=\"critical\" key=\"ip=udp.example\""),
        "{line}"
    );
    rs.stop();
}
