//! The forwarder without rsyslog: into mailwarden's own listener (round trip
//! through the core's RFC 5424 framing), against a collector that never reads,
//! and against no collector at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailwarden_core::event::Severity;
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::time::{TimeContext, Timestamp};
use mailwarden_io::collect::syslog::{Listener, ListenerConfig, ListenerStats};
use mailwarden_io::forward::{
    self, ForwardConfig, ForwardCursor, ForwardItem, ForwardStats, ForwardTls, MemorySource, SdParams,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn item(i: usize, msg_len: usize) -> ForwardItem {
    ForwardItem {
        cursor: ForwardCursor::default(),
        id: format!("id-{i}"),
        ts: Some(Timestamp {
            unix_micros: 1_678_788_000_000_000 + i as i64 * 1_500_000,
            offset_secs: -4 * 3600,
        }),
        host: Some("mx2.example.org".into()),
        app_name: Some("dovecot".into()),
        procid: Some(i.to_string()),
        severity: Some(Severity::Notice),
        facility: forward::FACILITY_MAIL,
        msgid: Some("login".into()),
        params: SdParams {
            family: Some("dovecot".into()),
            user: Some(format!("user{i}")),
            ..SdParams::default()
        },
        msg: format!("imap-login: Login: user=<user{i}> {}", "x".repeat(msg_len)),
    }
}

fn quick(addr: String) -> ForwardConfig {
    let mut cfg = ForwardConfig::new(addr);
    cfg.poll_interval = Duration::from_millis(20);
    cfg.backoff_initial = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(400);
    cfg.commit_delay = Duration::from_millis(100);
    cfg.close_timeout = Duration::from_secs(1);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_into_our_listener() {
    let l = Listener::bind(ListenerConfig {
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        ..ListenerConfig::default()
    })
    .await
    .unwrap();
    let addr = l.tcp_addrs()[0];
    let (tx, mut rx) = mpsc::channel(256);
    let lstats = Arc::new(ListenerStats::default());
    let stop = CancellationToken::new();
    let ltask = tokio::spawn(l.run(tx, lstats.clone(), stop.clone()));

    let n = 3000;
    let source = MemorySource::new();
    for i in 0..n {
        source.push(item(i, i % 300));
    }
    let stats = Arc::new(ForwardStats::default());
    let fstop = CancellationToken::new();
    let ftask = tokio::spawn(forward::run(
        quick(addr.to_string()),
        source.clone(),
        stats.clone(),
        fstop.clone(),
    ));

    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(1_900_000_000)),
    });
    for i in 0..n {
        let r = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let it = item(i, i % 300);
        assert!(
            r.line.contains(&format!(
                "[mailwarden@32473 id=\"id-{i}\" family=\"dovecot\" user=\"user{i}\"]"
            )),
            "{}",
            r.line
        );
        let f = framer.frame(&r.line).unwrap();
        assert_eq!(f.ts, it.ts);
        assert_eq!(f.ts.unwrap().offset_secs, -4 * 3600);
        assert_eq!(f.host.as_deref(), Some("mx2.example.org"));
        assert_eq!(f.program, "dovecot");
        assert_eq!(f.pid, Some(i as u32));
        assert_eq!(f.severity, Some(Severity::Notice));
        assert_eq!(f.message, it.msg);
    }
    fstop.cancel();
    let src = ftask.await.unwrap().unwrap();
    assert_eq!(src.committed_count(), n);
    let s = stats.snapshot();
    assert_eq!(
        (s.sent, s.committed, s.lag, s.reconnects),
        (n as u64, n as u64, Some(0), 0)
    );
    stop.cancel();
    ltask.await.unwrap().unwrap();
    assert_eq!(lstats.snapshot().bad_framing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_hang_on_a_collector_that_never_reads() {
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sink.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (s, _) = sink.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let source = MemorySource::new();
    for i in 0..2000 {
        source.push(item(i, 20_000)); // 40 MB: more than the socket buffers hold
    }
    let stats = Arc::new(ForwardStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(forward::run(
        quick(addr.to_string()),
        source.clone(),
        stats.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t = Instant::now();
    stop.cancel();
    let src = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(4));
    // Nothing was confirmed: the collector never closed its side after reading.
    assert_eq!(src.committed_count(), 0);
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_collector_is_retried_with_backoff() {
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let source = MemorySource::new();
    source.push(item(0, 0));
    let stats = Arc::new(ForwardStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(forward::run(
        quick(addr.to_string()),
        source.clone(),
        stats.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    let src = task.await.unwrap().unwrap();
    let s = stats.snapshot();
    // 100 ms doubling to 400 ms, jittered: 4 to 10 attempts in 1.5 s.
    assert!((3..=12).contains(&s.connect_failures), "{s:?}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("refused"), "{s:?}");
    assert!(!s.connected);
    assert_eq!(src.committed_count(), 0);
}

#[tokio::test]
async fn invalid_configurations_are_errors() {
    let mut cfg = ForwardConfig::new("127.0.0.1:1");
    cfg.sd_id = "no-enterprise-number".into();
    let r = forward::run(
        cfg,
        MemorySource::new(),
        Arc::new(ForwardStats::default()),
        CancellationToken::new(),
    )
    .await;
    assert!(r.is_err());
    let mut cfg = ForwardConfig::new("127.0.0.1:1");
    cfg.tls = Some(ForwardTls {
        ca_pem: "/nonexistent/ca.pem".into(),
        server_name: "localhost".into(),
        client_cert_pem: None,
        client_key_pem: None,
    });
    let e = forward::run(
        cfg,
        MemorySource::new(),
        Arc::new(ForwardStats::default()),
        CancellationToken::new(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
