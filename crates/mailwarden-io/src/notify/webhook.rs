//! The webhook sink: an HTTP(S) POST of the notice's JSON document
//! ([`notice_json`]), signed so that the receiver can check where it came
//! from and refuse replays.
//!
//! # The request
//!
//! ```text
//! POST /hooks/mailwarden HTTP/1.1
//! Content-Type: application/json
//! User-Agent: mailwarden/0.1.0
//! X-Mailwarden-Event: opened
//! X-Mailwarden-Delivery: 3f9c…            (one id per notice, the same on every retry)
//! X-Mailwarden-Timestamp: 1710405600      (Unix seconds when this attempt was signed)
//! X-Mailwarden-Signature: sha256=5d41…    (HMAC-SHA256, lower-case hex)
//!
//! {"type":"mailwarden.alert","version":1,"event":"opened",…}
//! ```
//!
//! The signature is `HMAC-SHA256(secret, timestamp + "." + body)` over the
//! exact bytes of the body. Each attempt is signed again with a fresh
//! timestamp, so a retry after a long back-off still passes a receiver's
//! freshness check.
//!
//! # Verifying on the receiver
//!
//! 1. Read `X-Mailwarden-Timestamp` (`t`) and `X-Mailwarden-Signature`.
//! 2. Refuse the request if `t` is more than five minutes from your clock
//!    (a replay of an old request).
//! 3. Compute `HMAC-SHA256(secret, t + "." + raw_body)` over the body bytes
//!    as received (before any JSON parsing) and compare it with the hex
//!    after `sha256=` **in constant time**.
//! 4. To drop duplicates and replays inside the window, remember the
//!    `X-Mailwarden-Delivery` ids of the last five minutes.
//!
//! In Python:
//!
//! ```text
//! import hashlib, hmac, time
//! def verify(secret: bytes, headers, body: bytes) -> bool:
//!     t = headers["X-Mailwarden-Timestamp"]
//!     if abs(time.time() - int(t)) > 300:
//!         return False
//!     want = "sha256=" + hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return hmac.compare_digest(want, headers["X-Mailwarden-Signature"])
//! ```
//!
//! In Rust, [`verify`] does steps 1–3.
//!
//! # Delivery
//!
//! A new connection per attempt (alerts are rare), to the address the
//! system resolver gives for the URL's host. `https` URLs are checked
//! against the Web PKI roots (`webpki-roots`) plus any extra CA files;
//! `http` URLs are allowed (a receiver on the same host) but carry the alert
//! in clear. Connecting (resolve, TCP, TLS) is bounded by
//! [`WebhookConfig::connect_timeout`], each whole attempt by
//! [`WebhookConfig::request_timeout`]. Connection failures, timeouts, `429`
//! and `5xx` answers are retried with exponential back-off and jitter (a
//! `Retry-After` in seconds is honoured up to
//! [`WebhookConfig::max_retry_after`]) up to
//! [`WebhookConfig::max_attempts`]; any other `4xx` is not retried (the same
//! request would be refused again), and redirects are never followed (a
//! signed alert goes only where it was configured to go). Response bodies
//! are read up to [`WebhookConfig::max_response_bytes`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER, USER_AGENT as USER_AGENT_HEADER};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    AlertNotice, Delivery, FailureKind, Jitter, NotifyError, Secret, SinkKind, TlsClient, fmt_duration, hex,
    notice_json, one_line,
};
use crate::audit::mta_sts::{HttpsConfig, tls_client_config};

/// Header with the Unix time (seconds) the attempt was signed at.
pub const HEADER_TIMESTAMP: &str = "x-mailwarden-timestamp";
/// Header with `sha256=` and the hex HMAC-SHA256 of `timestamp.body`.
pub const HEADER_SIGNATURE: &str = "x-mailwarden-signature";
/// Header with the notice's event (`opened`, …).
pub const HEADER_EVENT: &str = "x-mailwarden-event";
/// Header with the notice's delivery id (the same on every retry).
pub const HEADER_DELIVERY: &str = "x-mailwarden-delivery";
/// The `User-Agent` sent.
pub const USER_AGENT: &str = concat!("mailwarden/", env!("CARGO_PKG_VERSION"));
/// How far a timestamp may be from the receiver's clock by default (5 min).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Response header bytes accepted (hyper's read buffer).
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// Addresses tried per attempt.
const MAX_ADDRESSES: usize = 4;
/// Characters of a response body quoted in an error.
const QUOTED_BODY_CHARS: usize = 200;

/// Where and how to POST.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `https://host[:port]/path` (or `http://` for a receiver on this host).
    pub url: String,
    /// The signing key; without it no signature header is sent (the
    /// receiver then cannot tell a forged alert from a real one).
    pub secret: Option<Secret>,
    /// PEM files with extra CA certificates trusted besides the Web PKI roots.
    pub extra_roots: Vec<PathBuf>,
    /// Resolving, connecting and the TLS handshake, each (default 5 s).
    pub connect_timeout: Duration,
    /// One whole attempt: connection, request, response (default 10 s).
    pub request_timeout: Duration,
    /// Attempts at most, the first included (default 4).
    pub max_attempts: u32,
    /// First back-off delay (default 1 s); it doubles per retry, with jitter.
    pub backoff_initial: Duration,
    /// Longest back-off delay (default 30 s).
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured; longer ones are cut to it (default 60 s).
    pub max_retry_after: Duration,
    /// Response body bytes read at most (default 16 KiB).
    pub max_response_bytes: usize,
}

impl WebhookConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: None,
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_response_bytes: 16 * 1024,
        }
    }
}

/// The parsed URL.
#[derive(Clone, Debug)]
struct Target {
    tls: bool,
    /// Host without IPv6 brackets.
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    path: String,
    /// For people: no query string.
    shown: String,
}

/// A webhook destination, ready to send.
#[derive(Debug)]
pub struct WebhookSink {
    cfg: WebhookConfig,
    target: Target,
    tls: Option<TlsClient>,
}

impl WebhookSink {
    /// Checks the URL and loads the CA files.
    pub fn new(cfg: WebhookConfig) -> Result<WebhookSink, NotifyError> {
        let target = parse_url(&cfg.url)?;
        let config_error =
            |problem: String, fix: &str| NotifyError::config(SinkKind::Webhook, &target.shown, problem, fix);
        if cfg.max_attempts == 0 {
            return Err(config_error(
                "max_attempts is 0".into(),
                "allow at least one attempt",
            ));
        }
        let tls = if target.tls {
            let roots = HttpsConfig {
                extra_roots: cfg.extra_roots.clone(),
                ..HttpsConfig::default()
            };
            let config = tls_client_config(&roots).map_err(|e| {
                config_error(
                    format!("the extra CA files cannot be used: {e}"),
                    "fix or remove the CA file",
                )
            })?;
            let name = ServerName::try_from(target.host.clone()).map_err(|e| {
                config_error(
                    format!("`{}` is not a valid TLS server name: {e}", target.host),
                    "use a DNS name or an IP address in the URL",
                )
            })?;
            Some(TlsClient {
                connector: tokio_rustls::TlsConnector::from(config),
                name,
            })
        } else {
            None
        };
        Ok(WebhookSink { cfg, target, tls })
    }

    /// The URL without its query string.
    pub fn destination(&self) -> &str {
        &self.target.shown
    }

    /// POSTs the notice, retrying as the module docs say.
    pub async fn send(&self, notice: &AlertNotice) -> Result<Delivery, NotifyError> {
        let body = Bytes::from(notice_json(notice));
        let mut jitter = Jitter::new();
        let delivery_id = jitter.id();
        let mut step = self.cfg.backoff_initial;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let request = self.request(&body, &delivery_id, notice.event.as_str());
            let result = tokio::time::timeout(self.cfg.request_timeout, self.attempt(request)).await;
            let (mut error, retry_after) = match result {
                Err(_) => (
                    self.error(
                        FailureKind::Timeout,
                        format!(
                            "no complete answer within the request timeout of {}",
                            fmt_duration(self.cfg.request_timeout)
                        ),
                        "check that the receiver is up and answers promptly; raise request_timeout if it is only slow",
                    ),
                    None,
                ),
                Ok(Err(e)) => {
                    let retry = e.retryable();
                    let error = self.attempt_error(e);
                    if !retry {
                        return Err(NotifyError { attempts, ..error });
                    }
                    (error, None)
                }
                Ok(Ok(answer)) => match answer.status {
                    200..=299 => {
                        return Ok(Delivery {
                            attempts,
                            detail: format!("HTTP {}", answer.status),
                        });
                    }
                    300..=399 => {
                        return Err(NotifyError {
                            attempts,
                            ..self.error(
                                FailureKind::Redirect,
                                format!(
                                    "HTTP {} redirecting to {}: redirects are not followed (a signed alert goes only \
                                     where it was configured to go)",
                                    answer.status,
                                    answer.location.as_deref().unwrap_or("(no Location)")
                                ),
                                "set the URL to the final address",
                            )
                        });
                    }
                    429 | 500..=599 => (self.rejected(&answer), answer.retry_after),
                    _ => {
                        return Err(NotifyError {
                            attempts,
                            ..self.rejected(&answer)
                        });
                    }
                },
            };
            error.attempts = attempts;
            if attempts >= self.cfg.max_attempts {
                return Err(error);
            }
            let delay = match retry_after {
                Some(d) => d.min(self.cfg.max_retry_after),
                None => step.mul_f64(jitter.half_to_one()),
            };
            step = step.saturating_mul(2).min(self.cfg.backoff_max);
            tracing::debug!(
                "webhook {}: attempt {attempts} failed ({error}); retrying in {delay:?}",
                self.target.shown
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn request(&self, body: &Bytes, delivery_id: &str, event: &str) -> hyper::Request<Full<Bytes>> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let mut builder = hyper::Request::post(self.target.path.as_str())
            .header(HOST, self.target.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT_HEADER, USER_AGENT)
            .header(CONNECTION, "close")
            .header(HEADER_EVENT, event)
            .header(HEADER_DELIVERY, delivery_id)
            .header(HEADER_TIMESTAMP, timestamp.as_str());
        if let Some(secret) = &self.cfg.secret {
            builder = builder.header(HEADER_SIGNATURE, sign(secret.expose(), &timestamp, body));
        }
        // Every part was checked when the sink was built (path, authority) or
        // is a constant; a failure here would be a bug, answered by an empty
        // request that the receiver refuses.
        builder
            .body(Full::new(body.clone()))
            .unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
    }

    async fn attempt(&self, request: hyper::Request<Full<Bytes>>) -> Result<Answer, AttemptError> {
        let tcp = self.connect().await?;
        match &self.tls {
            None => exchange(tcp, request, self.cfg.max_response_bytes).await,
            Some(TlsClient { connector, name }) => {
                let tls =
                    tokio::time::timeout(self.cfg.connect_timeout, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| AttemptError::Timeout("the TLS handshake"))?
                        .map_err(classify_tls)?;
                exchange(tls, request, self.cfg.max_response_bytes).await
            }
        }
    }

    async fn connect(&self) -> Result<tokio::net::TcpStream, AttemptError> {
        let t = self.cfg.connect_timeout;
        let host = (self.target.host.as_str(), self.target.port);
        let addrs = tokio::time::timeout(t, tokio::net::lookup_host(host))
            .await
            .map_err(|_| AttemptError::Timeout("resolving the host"))?
            .map_err(|e| AttemptError::Connect(format!("resolving {}: {e}", self.target.host)))?;
        let mut errors = Vec::new();
        for addr in addrs.take(MAX_ADDRESSES) {
            match tokio::time::timeout(t, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!("{addr}: timed out after {}", fmt_duration(t))),
            }
        }
        if errors.is_empty() {
            errors.push(format!("{} has no address", self.target.host));
        }
        Err(AttemptError::Connect(errors.join("; ")))
    }

    fn error(&self, kind: FailureKind, problem: String, fix: &str) -> NotifyError {
        NotifyError::new(SinkKind::Webhook, &self.target.shown, kind, problem, fix)
    }

    fn attempt_error(&self, e: AttemptError) -> NotifyError {
        match e {
            AttemptError::Connect(why) => self.error(
                FailureKind::Connect,
                format!("cannot connect ({why})"),
                "check the URL's host and port, and that the receiver runs and is reachable from this host",
            ),
            AttemptError::Timeout(what) => self.error(
                FailureKind::Timeout,
                format!("{what} took longer than {}", fmt_duration(self.cfg.connect_timeout)),
                "check that the receiver is reachable; raise connect_timeout if the network is only slow",
            ),
            AttemptError::Certificate(why) => self.error(
                FailureKind::Certificate,
                format!("the certificate of {} does not validate ({why})", self.target.host),
                &format!(
                    "give the receiver a certificate for {} from a public CA, or add the CA that issued it as an \
                     extra CA file",
                    self.target.host
                ),
            ),
            AttemptError::Tls(why) => self.error(
                FailureKind::Tls,
                format!("the TLS handshake with {} failed ({why})", self.target.host),
                "check that the receiver speaks TLS 1.2 or 1.3 on this port (use http:// for a plain-HTTP receiver)",
            ),
            AttemptError::Http(why) => self.error(
                FailureKind::Protocol,
                format!("the HTTP exchange failed ({why})"),
                "check that the URL points at an HTTP/1.1 server",
            ),
        }
    }

    fn rejected(&self, answer: &Answer) -> NotifyError {
        let status = answer.status;
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let said = if answer.body.is_empty() {
            String::new()
        } else {
            format!("; it answered: {}", answer.body)
        };
        let (note, fix) = match status {
            429 => (
                "",
                "the receiver limits the rate: raise its limit, or send fewer alerts (a higher min_severity)",
            ),
            500..=599 => ("", "the receiver failed: check its logs"),
            401 | 403 => (
                " (not retried: the same request would be refused again)",
                "check that the receiver has the same signing secret, and that this host's clock is right (the \
                 signature covers the timestamp)",
            ),
            404 | 405 => (
                " (not retried: the same request would be refused again)",
                "check the URL's path, and that the receiver accepts POST there",
            ),
            413 => (
                " (not retried: the same request would be refused again)",
                "raise the receiver's request body limit",
            ),
            _ => (
                " (not retried: the same request would be refused again)",
                "check what the receiver expects (its logs say why it refused)",
            ),
        };
        self.error(
            FailureKind::Rejected,
            format!("HTTP {status} {reason}{note}{said}"),
            fix,
        )
    }
}

/// Parses and checks a webhook URL.
fn parse_url(url: &str) -> Result<Target, NotifyError> {
    let bad = |problem: String| {
        NotifyError::config(
            SinkKind::Webhook,
            one_line(&redact_url(url), 200),
            problem,
            "give a URL like https://hooks.example.org/mailwarden",
        )
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| bad(format!("the URL is not valid: {e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(bad(format!("the scheme `{other}` is not http or https"))),
        None => return Err(bad("the URL has no scheme (https://)".into())),
    };
    let Some(authority) = uri.authority() else {
        return Err(bad("the URL has no host".into()));
    };
    if authority.as_str().contains('@') {
        return Err(bad(
            "the URL carries a user name or password, which is not supported; the signing secret authenticates \
             the sender"
                .into(),
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad("the URL has no host".into()));
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let path = if path.is_empty() { "/".to_owned() } else { path };
    let shown = format!(
        "{}://{}{}{}",
        if tls { "https" } else { "http" },
        authority.as_str(),
        uri.path(),
        if uri.query().is_some() { "?…" } else { "" }
    );
    Ok(Target {
        tls,
        host,
        port,
        authority: authority.as_str().to_owned(),
        path,
        shown,
    })
}

/// `url` without its query and without a user name or password, for
/// errors about a URL that did not parse.
fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => authority.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

/// What the receiver answered.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    location: Option<String>,
    /// The start of the body, one line, for error messages.
    body: String,
}

/// Why one attempt failed.
enum AttemptError {
    Connect(String),
    Timeout(&'static str),
    Tls(String),
    Certificate(String),
    Http(String),
}

impl AttemptError {
    /// Worth another attempt: the receiver may be back, the network may
    /// recover. A TLS failure is a configuration problem.
    fn retryable(&self) -> bool {
        matches!(
            self,
            AttemptError::Connect(_) | AttemptError::Timeout(_) | AttemptError::Http(_)
        )
    }
}

/// Sends one request over `io` and reads the answer (the body bounded).
async fn exchange<S>(
    io: S,
    request: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Answer, AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADER_BUFFER)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| AttemptError::Http(e.to_string()))?;
    let _conn = AbortOnDrop(tokio::spawn(conn));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| AttemptError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| one_line(&String::from_utf8_lossy(v.as_bytes()), 200))
    };
    let retry_after = header(RETRY_AFTER).and_then(|v| parse_retry_after(&v));
    let location = header(LOCATION);
    let mut body = response.into_body();
    let mut kept: Vec<u8> = Vec::new();
    let mut read = 0usize;
    while read < max_body {
        let Some(frame) = body.frame().await else { break };
        // A broken body after the status line does not change the answer.
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            read += data.len();
            let room = 1024usize.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(Answer {
        status,
        retry_after,
        location,
        body: one_line(&String::from_utf8_lossy(&kept), QUOTED_BODY_CHARS),
    })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the
/// receivers we know of, and then the back-off applies).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().map(Duration::from_secs)
}

/// Aborts the connection task when the attempt ends (or times out).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Certificate problems apart from other TLS failures.
fn classify_tls(e: std::io::Error) -> AttemptError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => AttemptError::Certificate(cert.to_string()),
        Some(other) => AttemptError::Tls(other.to_string()),
        None => AttemptError::Tls(e.to_string()),
    }
}

/// The signature header value: `sha256=` and the lower-case hex
/// HMAC-SHA256 of `timestamp + "." + body`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of every length (longer ones are hashed first); the
    // error exists for MACs with fixed-size keys and never comes from HMAC.
    match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// Why [`verify`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a number of seconds.
    #[error("the timestamp {0:?} is not Unix seconds")]
    BadTimestamp(String),
    /// The timestamp is too far from now (an old request replayed, or a clock off).
    #[error("the timestamp is {0} s away from now, more than allowed")]
    Stale(i64),
    /// The signature header is not `sha256=` and 64 hex digits.
    #[error("the signature header is not sha256= and 64 hex digits")]
    Malformed,
    /// The signature does not match the body and timestamp under this secret.
    #[error("the signature does not match (wrong secret, or the body or timestamp was changed)")]
    Mismatch,
}

/// Checks a received webhook: `timestamp` and `signature` are the header
/// values, `body` the raw body, `now_unix` the receiver's clock. The
/// comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let t: i64 = timestamp
        .parse()
        .ok()
        .filter(|_| !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| VerifyError::BadTimestamp(one_line(timestamp, 40)))?;
    let skew = now_unix.saturating_sub(t);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::Stale(skew));
    }
    let hex_sig = signature.strip_prefix("sha256=").ok_or(VerifyError::Malformed)?;
    let want = unhex(hex_sig).ok_or(VerifyError::Malformed)?;
    let mut mac = new_mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&want).map_err(|_| VerifyError::Mismatch)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse() {
        let body = br#"{"type":"mailwarden.alert"}"#;
        let sig = sign(b"s3cret", "1710405600", body);
        // Known answer, from Python's hmac module (the recipe in the docs):
        // hmac.new(b"s3cret", b"1710405600." + body, hashlib.sha256).hexdigest()
        assert_eq!(
            sig,
            "sha256=e9abcc53e5309d7b1c591cc77ce271df2507b11fae6a5175e775329c0cc63be4"
        );
        let ok = |secret: &[u8], ts: &str, body: &[u8], sig: &str, now: i64| {
            verify(secret, ts, body, sig, now, DEFAULT_TOLERANCE)
        };
        assert_eq!(ok(b"s3cret", "1710405600", body, &sig, 1_710_405_610), Ok(()));
        assert_eq!(
            ok(
                b"s3cret",
                "1710405600",
                body,
                &sig.to_uppercase().replace("SHA256", "sha256"),
                1_710_405_600
            ),
            Ok(())
        );
        assert_eq!(
            ok(b"wrong", "1710405600", body, &sig, 1_710_405_600),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            ok(b"s3cret", "1710405601", body, &sig, 1_710_405_600),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            ok(b"s3cret", "1710405600", b"{}", &sig, 1_710_405_600),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            ok(b"s3cret", "1710405600", body, &sig, 1_710_406_000),
            Err(VerifyError::Stale(400))
        );
        assert_eq!(
            ok(b"s3cret", "-5", body, &sig, 0),
            Err(VerifyError::BadTimestamp("-5".into()))
        );
        assert_eq!(
            ok(b"s3cret", "1710405600", body, "md5=00", 1_710_405_600),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            ok(b"s3cret", "1710405600", body, "sha256=zz", 1_710_405_600),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn urls() {
        let t = parse_url("https://hooks.example.org/a/b?token=xyz").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("hooks.example.org", 443));
        assert_eq!(t.path, "/a/b?token=xyz");
        assert_eq!(t.shown, "https://hooks.example.org/a/b?…");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 8080, "/"));
        assert_eq!(t.authority, "[::1]:8080");
        for bad in [
            "ftp://x/",
            "hooks.example.org/x",
            "https://user:pw@hooks.example.org/",
            "https:///x",
            "not a url",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert_eq!(e.kind, FailureKind::Config, "{bad}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn urls_in_errors_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://u:pw@h.example/p?token=1"),
            "https://…@h.example/p"
        );
        assert_eq!(redact_url("h.example/p#x"), "h.example/p");
        assert_eq!(redact_url("https://h.example"), "https://h.example");
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("99999999999"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut cfg = WebhookConfig::new("https://hooks.example.org/x");
        cfg.secret = Some(Secret::from_bytes("hunter2-very-secret"));
        let sink = WebhookSink::new(cfg).unwrap();
        let shown = format!("{sink:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(<redacted>)"), "{shown}");
    }
}
