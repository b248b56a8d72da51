//! Hostile input into the syslog listener, sent with raw sockets: oversized
//! frames, bad octet counts, binary garbage, slowloris connections, too many
//! connections, a full channel, TLS misuse. The listener must stay up, other
//! connections' frames must still arrive, and the counters must say what happened.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailwarden_io::collect::SourceRecord;
use mailwarden_io::collect::syslog::{
    Listener, ListenerConfig, ListenerStats, ListenerStatsSnapshot, TlsListen,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    rx: mpsc::Receiver<SourceRecord>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), mailwarden_io::collect::syslog::ListenerError>>,
    tcp: SocketAddr,
    udp: SocketAddr,
    tls: Option<SocketAddr>,
}

impl Running {
    async fn start(cfg: ListenerConfig, capacity: usize) -> Running {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut cfg = cfg;
        cfg.tcp = vec![any];
        cfg.udp = vec![any];
        let l = Listener::bind(cfg).await.unwrap();
        let (tcp, udp) = (l.tcp_addrs()[0], l.udp_addrs()[0]);
        let tls = l.tls_addrs().first().copied();
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(ListenerStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(l.run(tx, stats.clone(), shutdown.clone()));
        Running {
            rx,
            stats,
            shutdown,
            task,
            tcp,
            udp,
            tls,
        }
    }

    async fn recv(&mut self) -> SourceRecord {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no record; {:?}", self.stats.snapshot()))
            .expect("listener stopped")
    }

    async fn recv_n(&mut self, n: usize) -> Vec<SourceRecord> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.recv().await);
        }
        v
    }

    async fn assert_quiet(&mut self) {
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(300), self.rx.recv()).await {
            panic!("unexpected record {r:?}");
        }
    }

    /// Waits until the counters satisfy `f`.
    async fn wait_stats(&self, f: impl Fn(&ListenerStatsSnapshot) -> bool) -> ListenerStatsSnapshot {
        for _ in 0..500 {
            let s = self.stats.snapshot();
            if f(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("counters never matched: {:?}", self.stats.snapshot());
    }

    /// A good frame on a fresh connection arrives: the listener is healthy.
    async fn assert_alive(&mut self, tag: &str) {
        let mut s = TcpStream::connect(self.tcp).await.unwrap();
        let msg = format!("<13>alive {tag}");
        s.write_all(format!("{} {msg}", msg.len()).as_bytes())
            .await
            .unwrap();
        let r = self.recv().await;
        assert_eq!(r.line, msg);
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("listener did not stop")
            .unwrap()
            .unwrap();
    }
}

fn small() -> ListenerConfig {
    ListenerConfig {
        max_connections: 8,
        idle_timeout: Duration::from_secs(2),
        frame_timeout: Duration::from_secs(1),
        tls_handshake_timeout: Duration::from_secs(1),
        ..ListenerConfig::default()
    }
    .with_max_frame_bytes(1024)
}

/// Waits until the server closes `s` (read returns 0 or an error; data such
/// as a TLS alert is skipped).
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    let closed = async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, closed).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_cut_counted_and_the_stream_stays_in_sync() {
    let mut l = Running::start(small(), 64).await;
    let mut s = TcpStream::connect(l.tcp).await.unwrap();
    let big = "A".repeat(5000);
    // Octet-counted, 5000 bytes; LF-framed, 3000 bytes; then good frames.
    let input = format!("5000 {big}4 good{}\nafter\n", &big[..3000]);
    s.write_all(input.as_bytes()).await.unwrap();
    let r = l.recv_n(4).await;
    assert_eq!((r[0].line.len(), r[0].truncated), (1024, true));
    assert_eq!((r[1].line.as_str(), r[1].truncated), ("good", false));
    assert_eq!((r[2].line.len(), r[2].truncated), (1024, true));
    assert_eq!((r[3].line.as_str(), r[3].truncated), ("after", false));
    assert_eq!(&*r[0].source, format!("syslog:tcp:{}", l.tcp));
    // UDP: one datagram, one message, cut the same way.
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(big.as_bytes(), l.udp).await.unwrap();
    let r = l.recv().await;
    assert_eq!((r.line.len(), r.truncated), (1024, true));
    assert_eq!(&*r.source, format!("syslog:udp:{}", l.udp));
    let st = l.stats.snapshot();
    assert_eq!((st.truncated, st.bad_framing), (3, 0));
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_octet_counts_fall_back_to_lf_framing() {
    let mut l = Running::start(small(), 64).await;
    let mut s = TcpStream::connect(l.tcp).await.unwrap();
    // Ten digits; a count above max_octet_count (16 KiB here); digits then no space.
    s.write_all(b"1234567890 ten digits\n99999 too long\n12ab not a count\n5 hello")
        .await
        .unwrap();
    let r = l.recv_n(4).await;
    let lines: Vec<&str> = r.iter().map(|r| r.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "1234567890 ten digits",
            "99999 too long",
            "12ab not a count",
            "hello"
        ]
    );
    assert_eq!(l.stats.snapshot().bad_framing, 2);
    // A count cut short by the end of the connection: kept, truncated, counted.
    s.write_all(b"100 only part").await.unwrap();
    s.shutdown().await.unwrap();
    let r = l.recv().await;
    assert_eq!((r.line.as_str(), r.truncated), ("only part", true));
    l.wait_stats(|s| s.bad_framing == 3 && s.connections_open == 0)
        .await;
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_does_not_disturb_other_connections() {
    let mut l = Running::start(small(), 1 << 16).await;
    let garbage_addr = l.tcp;
    let garbage = tokio::spawn(async move {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut buf = vec![0u8; 1 << 20];
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let mut s = TcpStream::connect(garbage_addr).await.unwrap();
        // The listener may close it at any point; that is fine.
        let _ = s.write_all(&buf).await;
        let _ = s.shutdown().await;
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for chunk in buf.chunks(700).take(200) {
            let _ = u.send_to(chunk, garbage_addr).await;
        }
    });
    let mut good = TcpStream::connect(l.tcp).await.unwrap();
    for i in 0..200 {
        let m = format!("<13>good {i:03}");
        good.write_all(format!("{} {m}", m.len()).as_bytes())
            .await
            .unwrap();
    }
    garbage.await.unwrap();
    // Collect until all good frames are seen; garbage records come in between.
    let mut seen = 0;
    let mut total = 0;
    while seen < 200 {
        let r = l.recv().await;
        total += 1;
        assert!(r.line.len() <= 3 * 1024, "bounded: {}", r.line.len());
        if r.line.starts_with("<13>good ") && r.source.contains("tcp") {
            assert_eq!(r.line, format!("<13>good {seen:03}"));
            seen += 1;
        }
    }
    // The garbage became records too (bounded, lossily decoded).
    l.wait_stats(|s| s.frames > 200 && s.bytes > 1 << 20).await;
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(300), l.rx.recv()).await {
        assert!(r.line.len() <= 3 * 1024);
        total += 1;
    }
    assert!(total > 200);
    l.assert_alive("after garbage").await;
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed() {
    let mut l = Running::start(small(), 64).await;
    // A partial frame, never completed, trickled a byte at a time.
    let mut slow = TcpStream::connect(l.tcp).await.unwrap();
    slow.write_all(b"<13>partial").await.unwrap();
    let mut idle = TcpStream::connect(l.tcp).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..30 {
            if slow.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_by_server(&mut slow, Duration::from_secs(1)).await
    });
    // Meanwhile another connection works.
    l.assert_alive("during slowloris").await;
    // frame_timeout is 1 s: the partial frame is emitted, truncated, and the connection closed.
    let r = l.recv().await;
    assert!(r.line.starts_with("<13>partialx"), "{r:?}");
    assert!(r.truncated);
    assert!(trickle.await.unwrap(), "slowloris connection was not closed");
    // idle_timeout is 2 s.
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(4)).await,
        "idle connection not closed"
    );
    let st = l
        .wait_stats(|s| s.frame_timeouts == 1 && s.idle_timeouts >= 1)
        .await;
    assert_eq!(st.truncated, 1);
    l.assert_alive("after slowloris").await;
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let mut l = Running::start(small(), 64).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(l.tcp).await.unwrap());
    }
    l.wait_stats(|s| s.connections_open == 8).await;
    for _ in 0..5 {
        let mut extra = TcpStream::connect(l.tcp).await.unwrap();
        let _ = extra.write_all(b"5 hello").await;
        assert!(closed_by_server(&mut extra, Duration::from_secs(2)).await);
    }
    l.assert_quiet().await;
    // The held connections still work.
    held[3].write_all(b"4 held").await.unwrap();
    assert_eq!(l.recv().await.line, "held");
    let st = l.stats.snapshot();
    assert_eq!(
        (st.connections_rejected, st.connections_open, st.connections_total),
        (5, 8, 8)
    );
    held.clear();
    l.wait_stats(|s| s.connections_open == 0).await;
    l.assert_alive("after the flood").await;
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_channel_slows_tcp_down_and_drops_udp() {
    let mut cfg = small();
    cfg.udp_queue_wait = Duration::from_millis(20);
    let mut l = Running::start(cfg, 4).await;
    let n = 20_000;
    let addr = l.tcp;
    let sender = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = String::new();
        for i in 0..n {
            let m = format!("<13>bp {i:05}");
            buf.push_str(&format!("{} {m}", m.len()));
        }
        s.write_all(buf.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    });
    // Nobody reads for a while: the connection is blocked, not buffering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(l.stats.snapshot().frames <= 4 + 1);
    // UDP cannot wait.
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..5 {
        u.send_to(b"<13>udp while full", l.udp).await.unwrap();
    }
    l.wait_stats(|s| s.udp_dropped >= 1).await;
    // Now drain: every TCP frame arrives, in order.
    let mut next = 0;
    while next < n {
        let r = l.recv().await;
        if r.source.contains("udp") {
            continue;
        }
        assert_eq!(r.line, format!("<13>bp {next:05}"));
        next += 1;
    }
    sender.await.unwrap();
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_connections() {
    let l = Running::start(small(), 64).await;
    let mut s = TcpStream::connect(l.tcp).await.unwrap();
    s.write_all(b"<13>partial without end").await.unwrap();
    l.wait_stats(|s| s.connections_open == 1).await;
    let tcp = l.tcp;
    l.stop().await;
    assert!(closed_by_server(&mut s, Duration::from_secs(2)).await);
    assert!(TcpStream::connect(tcp).await.is_err(), "still listening");
}

// ---------------------------------------------------------------- TLS

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client: (
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "hostile test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = || {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert, key)
    };
    let (sc, sk) = leaf();
    let (cc, ck) = leaf();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), sc.pem()).unwrap();
    std::fs::write(dir.join("server.key"), sk.serialize_pem()).unwrap();
    Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client: (
            cc.der().clone(),
            rustls_pki_types::PrivateKeyDer::try_from(ck.serialize_der()).unwrap(),
        ),
    }
}

fn client_config(pki: &Pki, with_cert: bool) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = if with_cert {
        b.with_client_auth_cert(vec![pki.client.0.clone()], pki.client.1.clone_key())
            .unwrap()
    } else {
        b.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_misuse_is_counted_and_good_clients_get_through() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let mut cfg = small();
    cfg.tls = vec![TlsListen {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_pem: pki.server_cert.clone(),
        key_pem: pki.server_key.clone(),
        client_ca_pem: Some(pki.ca.clone()),
    }];
    let mut l = Running::start(cfg, 64).await;
    let addr = l.tls.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

    // Plain syslog to the TLS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"<13>not tls at all\n").await.unwrap();
    assert!(closed_by_server(&mut plain, Duration::from_secs(3)).await);
    // A client without a certificate.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let r = client_config(&pki, false).connect(name.clone(), tcp).await;
    if let Ok(mut s) = r {
        // TLS 1.3: the rejection comes after the client's handshake finished.
        let _ = s.write_all(b"5 hello").await;
        let mut b = [0u8; 16];
        assert!(!matches!(s.read(&mut b).await, Ok(n) if n > 0));
    }
    // A client that never starts the handshake.
    let mut mute = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut mute, Duration::from_secs(3)).await);
    l.wait_stats(|s| s.tls_handshake_failures == 3).await;
    l.assert_quiet().await;

    // A proper client, octet counting (RFC 5425) and LF on the same connection.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = client_config(&pki, true).connect(name, tcp).await.unwrap();
    s.write_all(b"21 <13>1 - h a - - - tls\n<13>lf over tls\n")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let r = l.recv_n(2).await;
    assert_eq!(r[0].line, "<13>1 - h a - - - tls");
    assert_eq!(r[1].line, "<13>lf over tls");
    assert_eq!(&*r[0].source, format!("syslog:tls:{addr}"));
    l.stop().await;
}

#[tokio::test]
async fn configuration_errors_are_reported() {
    let bad = ListenerConfig::default().with_max_frame_bytes(10);
    let mut cfg = bad.clone();
    cfg.tcp.push("127.0.0.1:0".parse().unwrap());
    assert!(Listener::bind(cfg).await.is_err());
    assert!(
        Listener::bind(ListenerConfig::default()).await.is_err(),
        "no address"
    );
    let cfg = ListenerConfig {
        tls: vec![TlsListen {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_pem: "/nonexistent/cert.pem".into(),
            key_pem: "/nonexistent/key.pem".into(),
            client_ca_pem: None,
        }],
        ..ListenerConfig::default()
    };
    let e = Listener::bind(cfg).await.unwrap_err().to_string();
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");
}
