//! Syslog listener: receives syslog messages over UDP, TCP and TLS (RFC 5425) and
//! emits one [`SourceRecord`] per message.
//!
//! The listener only undoes the *transport* framing; the syslog header (RFC 3164
//! or RFC 5424) stays in the line and is recognised later by the ingest stage's
//! auto-detecting framer, like any other input line ([`Format::Auto`]).
//!
//! # Transports and framing
//!
//! - **UDP**: one datagram is one message (RFC 5426). Trailing CR, LF and NUL
//!   bytes are removed.
//! - **TCP and TLS**: both framings of RFC 6587 are accepted on the same
//!   connection and detected *per frame*:
//!   - a frame that starts with a digit `1`-`9`, followed by more digits and a
//!     space, is **octet-counted** (`LEN SP MSG`, the RFC 5425 framing);
//!   - anything else is **non-transparent**: the frame ends at LF or NUL (a CR
//!     before the LF is removed, so CRLF works too). Empty frames are skipped.
//!
//!   Trailing CR/LF bytes inside an octet-counted frame are removed as well.
//!
//! # Bounds and hostile input
//!
//! Memory is bounded per connection by one buffer of `max_frame_bytes` plus a
//! few bytes (at least 16 KiB), allocated once, and per listener by
//! `max_connections`; UDP uses one 64 KiB buffer per socket. A record's line is
//! at most `max_frame_bytes` bytes of input; lossy decoding turns each invalid
//! byte into U+FFFD (3 bytes), so binary input can make the `String` up to three
//! times longer.
//!
//! - **Oversized frames** are cut at `max_frame_bytes` (at a UTF-8 character
//!   boundary when the cut falls inside one), emitted with `truncated = true`
//!   and counted in `truncated`. The rest of the frame is skipped (octet
//!   counting: exactly the announced length; LF framing: up to the next
//!   terminator), so the connection stays in sync.
//! - **Bad octet counts**: a count of 10 to 19 digits, or larger than
//!   [`ListenerConfig::max_octet_count`] (by default 16 × `max_frame_bytes`), is
//!   *absurd*: it is counted in `bad_framing` and the connection **falls back to
//!   LF framing for that frame** (the digits stay part of the line; a run of 20
//!   or more digits is not read as a count at all). Detection
//!   stays per frame, so a sender whose count was wrong resynchronises at the
//!   next LF. A frame that starts with digits but continues with anything other
//!   than digits and a space (`2023-03-14T…`, an RFC 3339 line) is simply an LF
//!   frame. An octet-counted frame cut short by the end of the connection is
//!   emitted truncated and counted in `bad_framing`. Closing the connection
//!   instead was rejected: garbage after a fallback is no worse than garbage
//!   sent with LF framing in the first place (it is bounded the same way), and
//!   a legitimate LF sender whose line starts with a long number would be cut off.
//! - **Slowloris**: a connection that sends nothing for `idle_timeout` is
//!   closed (`idle_timeouts`); an *incomplete* frame must be completed within
//!   `frame_timeout` of its first byte, or the connection is closed
//!   (`frame_timeouts`) after emitting what arrived, marked truncated.
//! - **Too many connections**: beyond `max_connections` (TCP and TLS together)
//!   a new connection is accepted and closed at once (`connections_rejected`).
//! - **TLS**: the handshake must finish within `tls_handshake_timeout`;
//!   failures are counted in `tls_handshake_failures`.
//! - Binary garbage is just bytes: it becomes lossily decoded lines, never a
//!   panic, and each connection runs in its own task, so one connection cannot
//!   stall another.
//!
//! # Backpressure
//!
//! Records go to a bounded channel. When it is full, a TCP/TLS connection stops
//! reading until there is room, so the sender is slowed down by TCP's own flow
//! control and nothing is lost. **UDP has no backpressure**: a datagram that
//! cannot be queued within `udp_queue_wait` is dropped and counted in
//! `udp_dropped`; datagrams that overflow the kernel's socket buffer while the
//! listener waits are dropped by the kernel and are not counted here
//! (`/proc/net/snmp`, `RcvbufErrors`). Use TCP when every line matters.
//!
//! Records carry [`Checkpoint::None`]: a network listener cannot resume, the
//! sender owns retransmission.
//!
//! # Shutdown
//!
//! [`run`] returns when the shutdown token is cancelled or the channel's
//! receiver is dropped: listening sockets are closed, every connection task
//! ends, and a partial frame still in a connection's buffer is offered to the
//! channel without waiting (`truncated = true`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailwarden_core::framing::Format;
use mailwarden_core::time::Timestamp;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{Checkpoint, SourceRecord};

/// Smallest accepted `max_frame_bytes`.
pub const MIN_FRAME_BYTES: usize = 64;
/// Largest accepted `max_frame_bytes`.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Largest UDP datagram read (the IPv4/IPv6 payload limit is below it).
const UDP_BUFFER: usize = 65_536;
/// Digits scanned when deciding whether a frame is octet-counted.
const MAX_COUNT_DIGITS: usize = 20;

/// One TLS listening address with its server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListen {
    /// Address to listen on (port 0 picks a free port; see [`Listener::tls_addrs`]).
    pub addr: SocketAddr,
    /// PEM file with the server certificate chain, leaf first.
    pub cert_pem: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
    /// When set, clients must present a certificate issued by one of the CAs in
    /// this PEM file (mutual TLS, as RFC 5425 recommends); when unset, any
    /// client may connect.
    pub client_ca_pem: Option<PathBuf>,
}

/// What to listen on, and the bounds that protect the listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// UDP addresses.
    pub udp: Vec<SocketAddr>,
    /// Plain TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS addresses (RFC 5425).
    pub tls: Vec<TlsListen>,
    /// Longest message kept; longer ones are cut and marked truncated
    /// (default 64 KiB; between [`MIN_FRAME_BYTES`] and [`MAX_FRAME_BYTES`]).
    pub max_frame_bytes: usize,
    /// Largest octet count accepted as one (longer frames are skipped after
    /// `max_frame_bytes`); larger counts are bad framing. Default
    /// 16 × `max_frame_bytes`.
    pub max_octet_count: usize,
    /// Concurrent TCP + TLS connections (default 256); more are closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (default 5 min).
    pub idle_timeout: Duration,
    /// An incomplete frame must be completed within this long after its first
    /// byte arrived, or the connection is closed (default 30 s).
    pub frame_timeout: Duration,
    /// Time allowed for a TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// How long a UDP datagram may wait for room in the channel before it is
    /// dropped (default 100 ms).
    pub udp_queue_wait: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            max_frame_bytes: 64 << 10,
            max_octet_count: 16 * (64 << 10),
            max_connections: 256,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            udp_queue_wait: Duration::from_millis(100),
        }
    }
}

impl ListenerConfig {
    /// Sets `max_frame_bytes` and the default `max_octet_count` that goes with it.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self.max_octet_count = max.saturating_mul(16);
        self
    }

    fn validate(&self) -> Result<(), ListenerError> {
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes) {
            return Err(ListenerError::Config(format!(
                "max_frame_bytes must be between {MIN_FRAME_BYTES} and {MAX_FRAME_BYTES}, not {}",
                self.max_frame_bytes
            )));
        }
        if self.max_octet_count < self.max_frame_bytes {
            return Err(ListenerError::Config(
                "max_octet_count must be at least max_frame_bytes".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ListenerError::Config("max_connections must be at least 1".into()));
        }
        let zero = [
            ("idle_timeout", self.idle_timeout),
            ("frame_timeout", self.frame_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, d)| d.is_zero()) {
            return Err(ListenerError::Config(format!("{name} must not be zero")));
        }
        if self.udp.is_empty() && self.tcp.is_empty() && self.tls.is_empty() {
            return Err(ListenerError::Config("no address to listen on".into()));
        }
        Ok(())
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// An address could not be bound (in use, no permission for a port below 1024…).
    #[error("cannot listen on {proto} {addr}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A TLS certificate, key or CA file could not be used.
    #[error("TLS listener {addr}: {message}")]
    Tls {
        /// The TLS listening address.
        addr: SocketAddr,
        /// What is wrong, with the file name.
        message: String,
    },
    /// The configuration is inconsistent.
    #[error("syslog listener: {0}")]
    Config(String),
}

/// Counters of a running listener, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ListenerStats {
    frames: AtomicU64,
    bytes: AtomicU64,
    truncated: AtomicU64,
    bad_framing: AtomicU64,
    udp_dropped: AtomicU64,
    idle_timeouts: AtomicU64,
    frame_timeouts: AtomicU64,
    read_errors: AtomicU64,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_rejected: AtomicU64,
    tls_handshake_failures: AtomicU64,
}

/// A copy of the [`ListenerStats`] counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListenerStatsSnapshot {
    /// Records sent to the channel.
    pub frames: u64,
    /// Bytes received (all transports, framing included).
    pub bytes: u64,
    /// Records cut at `max_frame_bytes` (or cut short by a timeout or the end
    /// of the connection).
    pub truncated: u64,
    /// Absurd octet counts, and octet-counted frames cut by the end of the connection.
    pub bad_framing: u64,
    /// UDP datagrams dropped because the channel stayed full.
    pub udp_dropped: u64,
    /// Connections closed for sending nothing for `idle_timeout`.
    pub idle_timeouts: u64,
    /// Connections closed for not completing a frame within `frame_timeout`.
    pub frame_timeouts: u64,
    /// Read errors (connection resets, UDP receive errors).
    pub read_errors: u64,
    /// TCP + TLS connections open now.
    pub connections_open: u64,
    /// TCP + TLS connections accepted and served since the start.
    pub connections_total: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_rejected: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
}

impl ListenerStats {
    /// Reads every counter (each one atomically; the set is not one atomic snapshot).
    pub fn snapshot(&self) -> ListenerStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ListenerStatsSnapshot {
            frames: g(&self.frames),
            bytes: g(&self.bytes),
            truncated: g(&self.truncated),
            bad_framing: g(&self.bad_framing),
            udp_dropped: g(&self.udp_dropped),
            idle_timeouts: g(&self.idle_timeouts),
            frame_timeouts: g(&self.frame_timeouts),
            read_errors: g(&self.read_errors),
            connections_open: g(&self.connections_open),
            connections_total: g(&self.connections_total),
            connections_rejected: g(&self.connections_rejected),
            tls_handshake_failures: g(&self.tls_handshake_failures),
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Bound sockets, ready to [`run`](Listener::run). Binding first lets a caller
/// use port 0 and learn the ports picked.
pub struct Listener {
    cfg: ListenerConfig,
    udp: Vec<(UdpSocket, SocketAddr)>,
    tcp: Vec<(TcpListener, SocketAddr)>,
    tls: Vec<(TcpListener, SocketAddr, TlsAcceptor)>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("udp", &self.udp_addrs())
            .field("tcp", &self.tcp_addrs())
            .field("tls", &self.tls_addrs())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Validates the configuration, loads the TLS certificates and binds every address.
    pub async fn bind(cfg: ListenerConfig) -> Result<Listener, ListenerError> {
        cfg.validate()?;
        let mut udp = Vec::new();
        for &addr in &cfg.udp {
            let s = UdpSocket::bind(addr)
                .await
                .map_err(|source| ListenerError::Bind {
                    proto: "udp",
                    addr,
                    source,
                })?;
            let local = s.local_addr().unwrap_or(addr);
            udp.push((s, local));
        }
        let mut tcp = Vec::new();
        for &addr in &cfg.tcp {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenerError::Bind {
                    proto: "tcp",
                    addr,
                    source,
                })?;
            let local = l.local_addr().unwrap_or(addr);
            tcp.push((l, local));
        }
        let mut tls = Vec::new();
        for t in &cfg.tls {
            let acceptor = tls_acceptor(t)?;
            let l = TcpListener::bind(t.addr)
                .await
                .map_err(|source| ListenerError::Bind {
                    proto: "tls",
                    addr: t.addr,
                    source,
                })?;
            let local = l.local_addr().unwrap_or(t.addr);
            tls.push((l, local, acceptor));
        }
        Ok(Listener { cfg, udp, tcp, tls })
    }

    /// The bound UDP addresses, in configuration order.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(_, a)| *a).collect()
    }

    /// The bound TCP addresses, in configuration order.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().map(|(_, a)| *a).collect()
    }

    /// The bound TLS addresses, in configuration order.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls.iter().map(|(_, a, _)| *a).collect()
    }

    /// Serves every socket until `shutdown` is cancelled or the receiving end
    /// of `tx` is dropped; then closes all connections and returns.
    pub async fn run(
        self,
        tx: mpsc::Sender<SourceRecord>,
        stats: Arc<ListenerStats>,
        shutdown: CancellationToken,
    ) -> Result<(), ListenerError> {
        // A child token also stops everything when the channel's receiver is gone.
        let stop = shutdown.child_token();
        let shared = Arc::new(Shared {
            max_frame: self.cfg.max_frame_bytes,
            max_count: self.cfg.max_octet_count,
            idle_timeout: self.cfg.idle_timeout,
            frame_timeout: self.cfg.frame_timeout,
            handshake_timeout: self.cfg.tls_handshake_timeout,
            udp_queue_wait: self.cfg.udp_queue_wait,
            tx,
            stats,
            stop,
            permits: Arc::new(Semaphore::new(self.cfg.max_connections)),
        });
        let mut tasks = JoinSet::new();
        for (sock, addr) in self.udp {
            let source: Arc<str> = format!("syslog:udp:{addr}").into();
            tasks.spawn(udp_loop(sock, source, shared.clone()));
        }
        for (l, addr) in self.tcp {
            let source: Arc<str> = format!("syslog:tcp:{addr}").into();
            tasks.spawn(accept_loop(l, source, None, shared.clone()));
        }
        for (l, addr, acceptor) in self.tls {
            let source: Arc<str> = format!("syslog:tls:{addr}").into();
            tasks.spawn(accept_loop(l, source, Some(acceptor), shared.clone()));
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!("syslog listener task failed: {e}");
                shared.stop.cancel();
            }
        }
        Ok(())
    }
}

/// Binds the configured addresses and serves them until `shutdown` is
/// cancelled (or the channel's receiver is dropped). Shorthand for
/// [`Listener::bind`] + [`Listener::run`].
pub async fn run(
    cfg: ListenerConfig,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) -> Result<(), ListenerError> {
    Listener::bind(cfg).await?.run(tx, stats, shutdown).await
}

fn tls_acceptor(t: &TlsListen) -> Result<TlsAcceptor, ListenerError> {
    let err = |message: String| ListenerError::Tls {
        addr: t.addr,
        message,
    };
    let certs = load_certs(&t.cert_pem).map_err(err)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_pem)
        .map_err(|e| err(format!("private key {}: {e}", t.key_pem.display())))?;
    let provider = tls_provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?;
    let builder = match &t.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca).map_err(err)? {
                roots
                    .add(c)
                    .map_err(|e| err(format!("client CA {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| err(format!("certificate {}: {e}", t.cert_pem.display())))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The TLS crypto provider: *ring* (small, builds without CMake). rustls
/// 0.23.48 deprecates it for lacking post-quantum key exchange; classic
/// X25519/P-256 is what syslog peers (rsyslog, syslog-ng) offer today. Passed
/// explicitly so that no process-wide default provider is needed.
pub(crate) fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file; an error names the file.
pub(crate) fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificates {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificates {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// What every task of one listener shares.
struct Shared {
    max_frame: usize,
    max_count: usize,
    idle_timeout: Duration,
    frame_timeout: Duration,
    handshake_timeout: Duration,
    udp_queue_wait: Duration,
    tx: mpsc::Sender<SourceRecord>,
    stats: Arc<ListenerStats>,
    stop: CancellationToken,
    permits: Arc<Semaphore>,
}

impl Shared {
    /// Queues a record, waiting while the channel is full. False when the
    /// listener is stopping (and then stops everything if the receiver is gone).
    async fn send(&self, rec: SourceRecord) -> bool {
        let ok = match self.tx.try_send(rec) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(rec)) => tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                r = self.tx.send(rec) => r.is_ok(),
            },
        };
        if ok {
            add(&self.stats.frames, 1);
        } else {
            self.stop.cancel();
        }
        ok
    }
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros)
}

fn record(source: &Arc<str>, bytes: &[u8], truncated: bool) -> SourceRecord {
    SourceRecord {
        source: source.clone(),
        line: String::from_utf8_lossy(bytes).into_owned(),
        truncated,
        format: Format::Auto,
        program_hint: None,
        received: now(),
        checkpoint: Checkpoint::None,
    }
}

async fn udp_loop(sock: UdpSocket, source: Arc<str>, sh: Arc<Shared>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = tokio::select! {
            biased;
            _ = sh.stop.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, _peer)) => n,
                Err(e) => {
                    add(&sh.stats.read_errors, 1);
                    tracing::debug!("{source}: receive error: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        add(&sh.stats.bytes, n as u64);
        let mut d = &buf[..n];
        while let [rest @ .., b'\n' | b'\r' | 0] = d {
            d = rest;
        }
        if d.is_empty() {
            continue;
        }
        let truncated = d.len() > sh.max_frame;
        if truncated {
            d = &d[..utf8_boundary(&d[..sh.max_frame])];
            add(&sh.stats.truncated, 1);
        }
        let rec = record(&source, d, truncated);
        let queued = match sh.tx.try_send(rec) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => {
                sh.stop.cancel();
                return;
            }
            Err(TrySendError::Full(rec)) => tokio::select! {
                biased;
                _ = sh.stop.cancelled() => return,
                r = tokio::time::timeout(sh.udp_queue_wait, sh.tx.send(rec)) => matches!(r, Ok(Ok(()))),
            },
        };
        if queued {
            add(&sh.stats.frames, 1);
        } else {
            add(&sh.stats.udp_dropped, 1);
        }
    }
}

async fn accept_loop(listener: TcpListener, source: Arc<str>, tls: Option<TlsAcceptor>, sh: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = sh.stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => match sh.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        add(&sh.stats.connections_total, 1);
                        add(&sh.stats.connections_open, 1);
                        let guard = OpenGuard {
                            stats: sh.stats.clone(),
                            _permit: permit,
                        };
                        conns.spawn(connection(stream, peer, source.clone(), tls.clone(), sh.clone(), guard));
                    }
                    Err(_) => {
                        add(&sh.stats.connections_rejected, 1);
                        tracing::debug!("{source}: rejected {peer}: too many connections");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and friends: do not spin, do not give up.
                    tracing::warn!("{source}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    while conns.join_next().await.is_some() {}
}

/// Decrements `connections_open` and releases the connection slot when a
/// connection task ends, however it ends.
struct OpenGuard {
    stats: Arc<ListenerStats>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    source: Arc<str>,
    tls: Option<TlsAcceptor>,
    sh: Arc<Shared>,
    _guard: OpenGuard,
) {
    match tls {
        None => serve(stream, &source, &sh).await,
        Some(acceptor) => {
            let hs = tokio::select! {
                biased;
                _ = sh.stop.cancelled() => return,
                r = tokio::time::timeout(sh.handshake_timeout, acceptor.accept(stream)) => r,
            };
            match hs {
                Ok(Ok(s)) => serve(s, &source, &sh).await,
                Ok(Err(e)) => {
                    add(&sh.stats.tls_handshake_failures, 1);
                    tracing::debug!("{source}: TLS handshake with {peer} failed: {e}");
                }
                Err(_) => {
                    add(&sh.stats.tls_handshake_failures, 1);
                    tracing::debug!("{source}: TLS handshake with {peer} timed out");
                }
            }
        }
    }
}

/// Reads frames from one connection until it ends, times out or the listener stops.
async fn serve<R: AsyncRead + Unpin>(mut rd: R, source: &Arc<str>, sh: &Shared) {
    let mut dec = FrameDecoder::new(sh.max_frame, sh.max_count);
    // When the current incomplete frame started, and how many frames were
    // complete then (a change means a new frame started).
    let mut partial_since: Option<(Instant, u64)> = None;
    let mut bad_seen = 0;
    loop {
        loop {
            let rec = dec.next_frame().map(|f| record(source, f.bytes, f.truncated));
            // Counters first, so that they are up to date when the record is seen.
            if dec.bad != bad_seen {
                add(&sh.stats.bad_framing, dec.bad - bad_seen);
                bad_seen = dec.bad;
            }
            let Some(rec) = rec else { break };
            if rec.truncated {
                add(&sh.stats.truncated, 1);
            }
            if !sh.send(rec).await {
                return;
            }
        }
        let now = Instant::now();
        partial_since = match partial_since {
            _ if !dec.has_partial() => None,
            Some((t, done)) if done == dec.completed => Some((t, done)),
            _ => Some((now, dec.completed)),
        };
        let idle_deadline = now + sh.idle_timeout;
        let deadline = match partial_since {
            Some((t, _)) => (t + sh.frame_timeout).min(idle_deadline),
            None => idle_deadline,
        };
        let spare = dec.spare();
        if spare.is_empty() {
            // Cannot happen (the buffer always has room for a frame and more);
            // closing is the safe answer if it ever does.
            add(&sh.stats.bad_framing, 1);
            return;
        }
        let r = tokio::select! {
            biased;
            _ = sh.stop.cancelled() => {
                if let Some(f) = dec.finish(false) {
                    let _ = sh.tx.try_send(record(source, f.bytes, true));
                }
                return;
            }
            r = tokio::time::timeout_at(deadline, rd.read(spare)) => r,
        };
        let end = match r {
            Ok(Ok(0)) => Some(true),
            Ok(Ok(n)) => {
                add(&sh.stats.bytes, n as u64);
                dec.filled(n);
                None
            }
            Ok(Err(e)) => {
                add(&sh.stats.read_errors, 1);
                tracing::debug!("{source}: read error: {e}");
                Some(true)
            }
            Err(_) if partial_since.is_some() => {
                add(&sh.stats.frame_timeouts, 1);
                Some(false)
            }
            Err(_) => {
                add(&sh.stats.idle_timeouts, 1);
                return;
            }
        };
        if let Some(eof) = end {
            let last = dec.finish(eof).map(|f| {
                if f.truncated {
                    add(&sh.stats.truncated, 1);
                }
                record(source, f.bytes, f.truncated)
            });
            if dec.bad != bad_seen {
                add(&sh.stats.bad_framing, dec.bad - bad_seen);
            }
            if let Some(rec) = last {
                sh.send(rec).await;
            }
            return;
        }
    }
}

/// Where the decoder is inside the current frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a frame: the framing is not decided yet.
    Start,
    /// In an LF/NUL-terminated frame; `scanned` bytes after `start` hold no terminator.
    Lf { scanned: usize },
    /// In an octet-counted frame of `len` bytes (header consumed).
    Octet { len: usize },
    /// Skipping the rest of an oversized octet-counted frame.
    Skip { remaining: usize },
    /// Discarding the rest of an oversized LF frame, up to its terminator.
    Discard,
}

/// One frame, borrowed from the decoder's buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The message, without its length prefix or trailing CR/LF.
    pub bytes: &'a [u8],
    /// Whether the message was cut.
    pub truncated: bool,
}

/// RFC 6587 frame decoder (sans I/O): both framings, auto-detected per frame,
/// with one fixed-size buffer.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    max_count: usize,
    state: State,
    /// Absurd octet counts and cut-short octet frames seen so far.
    pub bad: u64,
    /// Frames completed (emitted or skipped as empty) so far.
    pub completed: u64,
}

impl FrameDecoder {
    /// A decoder keeping frames up to `max` bytes, accepting octet counts up to `max_count`.
    pub fn new(max: usize, max_count: usize) -> FrameDecoder {
        // Room for a whole frame, its length prefix and one more byte (to tell a
        // frame of exactly `max` bytes from a longer one).
        let cap = (max + MAX_COUNT_DIGITS + 2).max(16 << 10);
        FrameDecoder {
            buf: vec![0; cap],
            start: 0,
            end: 0,
            max,
            max_count: max_count.max(max),
            state: State::Start,
            bad: 0,
            completed: 0,
        }
    }

    /// The free part of the buffer to read into (moves unread bytes to the front).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`spare`](Self::spare) as read.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Whether a frame has begun but is not complete.
    pub fn has_partial(&self) -> bool {
        self.state != State::Start || self.start < self.end
    }

    /// The next complete frame, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let (s, e, truncated) = self.next_range()?;
        Some(Frame {
            bytes: &self.buf[s..e],
            truncated,
        })
    }

    /// What is left when the connection ends (`eof`) or is cut by a timeout:
    /// a partial frame, truncated unless it is an LF frame ended by EOF.
    pub fn finish(&mut self, eof: bool) -> Option<Frame<'_>> {
        let (s, e) = (self.start, self.end);
        let r = match self.state {
            State::Start | State::Lf { .. } => {
                let e = strip_crlf(&self.buf[s..e]) + s;
                (e > s).then_some((s, e, !eof))
            }
            State::Octet { .. } => {
                self.bad += 1;
                let e = strip_crlf(&self.buf[s..e]) + s;
                (e > s).then_some((s, e, true))
            }
            State::Skip { .. } => {
                self.bad += 1;
                None
            }
            State::Discard => None,
        };
        self.start = self.end;
        self.state = State::Start;
        let (s, e, truncated) = r?;
        self.completed += 1;
        Some(Frame {
            bytes: &self.buf[s..e],
            truncated,
        })
    }

    fn next_range(&mut self) -> Option<(usize, usize, bool)> {
        loop {
            let avail = self.end - self.start;
            match self.state {
                State::Start => {
                    if avail == 0 {
                        return None;
                    }
                    let b = self.buf[self.start];
                    if !(b'1'..=b'9').contains(&b) {
                        self.state = State::Lf { scanned: 0 };
                        continue;
                    }
                    let lim = self.end.min(self.start + MAX_COUNT_DIGITS);
                    let mut i = self.start;
                    let mut value: u64 = 0;
                    while i < lim && self.buf[i].is_ascii_digit() {
                        value = value
                            .saturating_mul(10)
                            .saturating_add(u64::from(self.buf[i] - b'0'));
                        i += 1;
                    }
                    let digits = i - self.start;
                    if i == self.end && digits < MAX_COUNT_DIGITS {
                        return None; // only digits so far: cannot decide yet
                    }
                    if digits < MAX_COUNT_DIGITS && self.buf[i] == b' ' {
                        match usize::try_from(value) {
                            Ok(len) if digits <= 9 && len <= self.max_count => {
                                self.start = i + 1;
                                self.state = State::Octet { len };
                            }
                            _ => {
                                self.bad += 1;
                                self.state = State::Lf { scanned: 0 };
                            }
                        }
                    } else {
                        self.state = State::Lf { scanned: 0 };
                    }
                }
                State::Lf { scanned } => {
                    // A terminator is looked for up to `max` bytes into the frame.
                    let from = self.start + scanned;
                    let to = self.end.min(self.start + self.max + 1);
                    if let Some(off) = memchr::memchr2(b'\n', 0, &self.buf[from..to]) {
                        let s = self.start;
                        let p = from + off;
                        self.start = p + 1;
                        self.state = State::Start;
                        self.completed += 1;
                        let e = s + strip_crlf(&self.buf[s..p]);
                        if e > s {
                            return Some((s, e, false));
                        }
                    } else if avail > self.max {
                        let s = self.start;
                        self.start += self.max;
                        self.state = State::Discard;
                        self.completed += 1;
                        return Some((s, s + utf8_boundary(&self.buf[s..s + self.max]), true));
                    } else {
                        self.state = State::Lf {
                            scanned: to - self.start,
                        };
                        return None;
                    }
                }
                State::Octet { len } if len <= self.max => {
                    if avail < len {
                        return None;
                    }
                    let s = self.start;
                    self.start += len;
                    self.state = State::Start;
                    self.completed += 1;
                    let e = s + strip_crlf(&self.buf[s..s + len]);
                    if e > s {
                        return Some((s, e, false));
                    }
                }
                State::Octet { len } => {
                    if avail < self.max {
                        return None;
                    }
                    let s = self.start;
                    self.start += self.max;
                    self.state = State::Skip {
                        remaining: len - self.max,
                    };
                    self.completed += 1;
                    return Some((s, s + utf8_boundary(&self.buf[s..s + self.max]), true));
                }
                State::Skip { remaining } => {
                    let take = remaining.min(avail);
                    self.start += take;
                    if take == remaining {
                        self.state = State::Start;
                    } else {
                        self.state = State::Skip {
                            remaining: remaining - take,
                        };
                        return None;
                    }
                }
                State::Discard => match memchr::memchr2(b'\n', 0, &self.buf[self.start..self.end]) {
                    Some(off) => {
                        self.start += off + 1;
                        self.state = State::Start;
                    }
                    None => {
                        self.start = self.end;
                        return None;
                    }
                },
            }
        }
    }
}

/// Length of `b` without trailing CR and LF bytes.
fn strip_crlf(b: &[u8]) -> usize {
    let mut e = b.len();
    while e > 0 && matches!(b[e - 1], b'\n' | b'\r') {
        e -= 1;
    }
    e
}

/// Length of `b` without a UTF-8 sequence cut at its end (a cut inside a
/// character would otherwise decode to a replacement character).
pub(crate) fn utf8_boundary(b: &[u8]) -> usize {
    let n = b.len();
    for back in 1..=n.min(4) {
        let c = b[n - back];
        if c & 0xC0 != 0x80 {
            let need = match c {
                0xF0..=0xF4 => 4,
                0xE0..=0xEF => 3,
                0xC2..=0xDF => 2,
                _ => 1, // ASCII, or a byte that starts no valid sequence
            };
            return if need > back { n - back } else { n };
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes and collects (line, truncated).
    fn decode(input: &[u8], max: usize, chunk: usize) -> (Vec<(String, bool)>, u64) {
        let mut d = FrameDecoder::new(max, max * 16);
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            while let Some(f) = d.next_frame() {
                out.push((String::from_utf8_lossy(f.bytes).into_owned(), f.truncated));
            }
            if rest.is_empty() {
                break;
            }
            let spare = d.spare();
            let n = chunk.min(rest.len()).min(spare.len());
            spare[..n].copy_from_slice(&rest[..n]);
            d.filled(n);
            rest = &rest[n..];
        }
        if let Some(f) = d.finish(true) {
            out.push((String::from_utf8_lossy(f.bytes).into_owned(), f.truncated));
        }
        (out, d.bad)
    }

    fn lines(v: &[(String, bool)]) -> Vec<&str> {
        v.iter().map(|(l, _)| l.as_str()).collect()
    }

    #[test]
    fn both_framings_mixed_on_one_connection() {
        let input = b"11 <13>1 - a b\n<13>plain lf\r\n5 hello\0nul ended\x002023-03-14T10:00:00 h p: x\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let (out, bad) = decode(input, 1024, chunk);
            assert_eq!(
                lines(&out),
                [
                    "<13>1 - a b",
                    "<13>plain lf",
                    "hello",
                    "nul ended",
                    "2023-03-14T10:00:00 h p: x"
                ],
                "chunk {chunk}"
            );
            assert!(out.iter().all(|(_, t)| !t));
            assert_eq!(bad, 0);
        }
    }

    #[test]
    fn octet_frame_may_contain_newlines_and_trailing_lf_is_stripped() {
        let (out, _) = decode(b"7 ab\ncd\r\n\n3 xyz", 1024, 4);
        assert_eq!(lines(&out), ["ab\ncd", "xyz"]);
    }

    #[test]
    fn oversized_frames_are_cut_and_skipped_in_sync() {
        let max = 64;
        let big = "x".repeat(200);
        let input = format!("{} {big}{}\nafter1\n200 {big}after2\n", big.len() + 1, "y");
        for chunk in [1, 13, 10_000] {
            let (out, bad) = decode(input.as_bytes(), max, chunk);
            assert_eq!(out.len(), 4, "{out:?}");
            assert_eq!(out[0], ("x".repeat(64), true));
            // The LF after the counted frame is an empty frame, skipped.
            assert_eq!(out[1], ("after1".into(), false));
            assert_eq!(out[2], ("x".repeat(64), true));
            assert_eq!(out[3], ("after2".into(), false));
            assert_eq!(bad, 0);
        }
    }

    #[test]
    fn lf_frame_of_exactly_max_is_not_truncated() {
        let line = "a".repeat(64);
        let (out, _) = decode(format!("{line}\n{line}a\nnext\n").as_bytes(), 64, 1);
        assert_eq!(out, [(line.clone(), false), (line, true), ("next".into(), false)]);
    }

    #[test]
    fn absurd_counts_fall_back_to_lf() {
        let (out, bad) = decode(b"99999999999 huge\n4000000 big\n12x4 not a count\n", 64, 5);
        assert_eq!(
            lines(&out),
            ["99999999999 huge", "4000000 big", "12x4 not a count"]
        );
        assert_eq!(bad, 2);
    }

    #[test]
    fn cut_short_octet_frame_is_kept_truncated_and_counted() {
        let (out, bad) = decode(b"3 abc50 only part", 1024, 3);
        assert_eq!(out, [("abc".into(), false), ("only part".into(), true)]);
        assert_eq!(bad, 1);
    }

    #[test]
    fn lf_frame_without_terminator_at_eof_is_complete() {
        let (out, bad) = decode(b"one\ntwo", 1024, 2);
        assert_eq!(out, [("one".into(), false), ("two".into(), false)]);
        assert_eq!(bad, 0);
    }

    #[test]
    fn cut_inside_a_character_backs_off() {
        let s = format!("{}é\n", "a".repeat(63));
        let (out, _) = decode(s.as_bytes(), 64, 100);
        assert_eq!(out[0], ("a".repeat(63), true));
        assert_eq!(utf8_boundary("aé".as_bytes()), 3);
        assert_eq!(utf8_boundary(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_boundary(&[0xff, 0xfe]), 2);
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut input = Vec::new();
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            input.push(match x % 7 {
                0 => b'\n',
                1 => b' ',
                2 => b'1' + (x >> 8) as u8 % 9,
                _ => (x >> 16) as u8,
            });
        }
        for chunk in [1, 333, 65_536] {
            let (out, _) = decode(&input, 100, chunk);
            assert!(out.iter().all(|(l, _)| l.len() <= 300));
        }
    }
}
