//! The syslog listener and the forwarder against a real rsyslog.
//!
//! Each test runs its own private `rsyslogd -n -f <conf> -i <pidfile>` with its
//! own work directory, no imuxsock/imklog (so it never touches the machine's
//! logging), listening on loopback ports picked by the kernel, and kills it at
//! the end (also on panic). Needs `rsyslogd` and the GnuTLS network driver
//! (Debian: `rsyslog rsyslog-gnutls`); a missing program fails the test with
//! that hint, it is never skipped.
//!
//! - rsyslog as a **sender** into our listener: lines fed to rsyslog's imtcp
//!   input are forwarded by omfwd over UDP, TCP (octet-counted and LF framing)
//!   and TLS (mutual, certificates made by rcgen); every line must arrive
//!   exactly once, intact.
//! - rsyslog as the **collector** of our forwarder (TCP and mutual TLS), writing
//!   to a file with a template that keeps the structured data; content, order
//!   and SD parameters are checked, then the collector is stopped while items
//!   keep coming and restarted: every id must arrive (duplicates are reported).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailwarden_core::event::Severity;
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::time::{TimeContext, Timestamp};
use mailwarden_io::collect::SourceRecord;
use mailwarden_io::collect::syslog::{Listener, ListenerConfig, ListenerStats, TlsListen};
use mailwarden_io::forward::{
    self, ForwardConfig, ForwardCursor, ForwardItem, ForwardStats, ForwardTls, MemorySource, SdParams,
};
use mailwarden_testlab::Rsyslog;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- certificates

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client certificate.
fn make_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mailwarden test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |cn: &str, eku: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (sc, sk) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (cc, ck) = leaf("localhost", ExtendedKeyUsagePurpose::ClientAuth);
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", &ca_cert.pem()),
        server_cert: w("server.pem", &sc),
        server_key: w("server.key", &sk),
        client_cert: w("client.pem", &cc),
        client_key: w("client.key", &ck),
    }
}

/// rsyslog's global TLS settings (the GnuTLS driver).
fn rsyslog_tls_globals(pki: &Pki, cert: &Path, key: &Path) -> String {
    format!(
        "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
         DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")",
        pki.ca.display(),
        cert.display(),
        key.display()
    )
}

// ---------------------------------------------------------------- rsyslog → listener

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Udp,
    TcpOctet,
    TcpLf,
    Tls,
}

async fn rsyslog_sends(transport: Transport, n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = make_pki(dir);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = ListenerConfig::default();
    match transport {
        Transport::Udp => cfg.udp.push(any),
        Transport::TcpOctet | Transport::TcpLf => cfg.tcp.push(any),
        Transport::Tls => cfg.tls.push(TlsListen {
            addr: any,
            cert_pem: pki.server_cert.clone(),
            key_pem: pki.server_key.clone(),
            client_ca_pem: Some(pki.ca.clone()),
        }),
    }
    let listener = Listener::bind(cfg).await.unwrap();
    let (addr, proto) = match transport {
        Transport::Udp => (listener.udp_addrs()[0], "udp"),
        Transport::TcpOctet | Transport::TcpLf => (listener.tcp_addrs()[0], "tcp"),
        Transport::Tls => (listener.tls_addrs()[0], "tls"),
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let stats = Arc::new(ListenerStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.run(tx, stats.clone(), shutdown.clone()));

    let (globals, action) = match transport {
        Transport::Udp => (String::new(), "protocol=\"udp\"".to_string()),
        Transport::TcpOctet => (
            String::new(),
            "protocol=\"tcp\" TCP_Framing=\"octet-counted\"".into(),
        ),
        Transport::TcpLf => (
            String::new(),
            "protocol=\"tcp\" TCP_Framing=\"traditional\"".into(),
        ),
        Transport::Tls => (
            rsyslog_tls_globals(&pki, &pki.client_cert, &pki.client_key),
            "protocol=\"tcp\" TCP_Framing=\"octet-counted\" StreamDriver=\"gtls\" StreamDriverMode=\"1\" \
             StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\""
                .into(),
        ),
    };
    let port_file = dir.join("in.port");
    let body = format!(
        "{globals}\nmodule(load=\"imtcp\")\n\
         ruleset(name=\"fwd\") {{ action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" {action} \
         template=\"RSYSLOG_SyslogProtocol23Format\" queue.type=\"LinkedList\" action.resumeRetryCount=\"-1\") }}\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"0\" listenPortFileName=\"{pf}\" ruleset=\"fwd\")",
        port = addr.port(),
        pf = port_file.display()
    );
    let mut rs = Rsyslog::start(dir, "sender", &body);
    let in_port = tokio::task::block_in_place(|| rs.port(&port_file));

    // Feed rsyslog n lines (LF framing into its imtcp input).
    let tag = format!("{transport:?}").to_lowercase();
    let feeder = {
        let tag = tag.clone();
        std::thread::spawn(move || {
            let mut s = StdTcpStream::connect(("127.0.0.1", in_port)).unwrap();
            let mut buf = String::new();
            for i in 0..n {
                buf.push_str(&format!(
                    "<22>Mar 14 10:00:{:02} mx1 postfix/smtpd[1234]: mwtest {tag} {i:05} ü \"q\" [x]\n",
                    i % 60
                ));
                if transport == Transport::Udp && i % 50 == 49 {
                    // Let UDP breathe: no backpressure there.
                    s.write_all(buf.as_bytes()).unwrap();
                    buf.clear();
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            s.write_all(buf.as_bytes()).unwrap();
        })
    };

    let mut got: Vec<SourceRecord> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => got.push(r),
            _ => panic!(
                "{tag}: got {} of {n} lines; listener {:?}; rsyslog: {}",
                got.len(),
                stats.snapshot(),
                rs.stderr()
            ),
        }
    }
    feeder.join().unwrap();
    // Anything more would be a duplicate.
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
        got.push(r);
    }
    tokio::task::block_in_place(|| rs.stop());
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let reference = Timestamp::from_unix_seconds(1_900_000_000);
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(reference),
    });
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for r in &got {
        assert_eq!(&*r.source, format!("syslog:{proto}:{addr}"));
        assert!(!r.truncated, "{r:?}");
        assert_eq!(r.format, Format::Auto);
        let f = framer
            .frame(&r.line)
            .unwrap_or_else(|e| panic!("{e:?}: {:?}", r.line));
        assert_eq!(f.program, "postfix/smtpd", "{:?}", r.line);
        assert_eq!(f.pid, Some(1234));
        assert_eq!(f.host.as_deref(), Some("mx1"));
        assert_eq!(f.severity, Some(Severity::Info));
        let msg = f.message.trim();
        let rest = msg
            .strip_prefix(&format!("mwtest {tag} "))
            .unwrap_or_else(|| panic!("unexpected message {msg:?}"));
        let (num, tail) = rest.split_once(' ').unwrap();
        assert_eq!(tail, "ü \"q\" [x]");
        *seen.entry(num.parse().unwrap()).or_default() += 1;
    }
    let missing: Vec<_> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "{tag}: missing {missing:?}, duplicated {dups:?}"
    );
    let s = stats.snapshot();
    assert_eq!(s.frames, n as u64);
    assert_eq!(
        (
            s.truncated,
            s.bad_framing,
            s.udp_dropped,
            s.tls_handshake_failures
        ),
        (0, 0, 0, 0)
    );
    if transport != Transport::Udp {
        assert!(s.connections_total >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_sends_over_udp() {
    rsyslog_sends(Transport::Udp, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_sends_over_tcp_octet_counted() {
    rsyslog_sends(Transport::TcpOctet, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_sends_over_tcp_lf_framed() {
    rsyslog_sends(Transport::TcpLf, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_sends_over_mutual_tls() {
    rsyslog_sends(Transport::Tls, 2000).await;
}

// ---------------------------------------------------------------- forwarder → rsyslog

/// One line of the collector's output file, split by the template below.
#[derive(Debug)]
struct Collected {
    msgid: String,
    hostname: String,
    app_name: String,
    procid: String,
    pri: String,
    timestamp: String,
    sd: String,
    msg: String,
}

const COLLECT_TEMPLATE: &str = "template(name=\"t\" type=\"string\" string=\"%msgid%|%hostname%|%app-name%|\
     %procid%|%pri%|%timestamp:::date-rfc3339%|%structured-data%|%msg%\\n\")";

fn collector_body(out: &Path, port: Option<u16>, port_file: &Path, tls: Option<&Pki>) -> String {
    let (globals, module) = match tls {
        None => (String::new(), "module(load=\"imtcp\")".to_string()),
        Some(pki) => (
            rsyslog_tls_globals(pki, &pki.server_cert, &pki.server_key),
            "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
             StreamDriver.AuthMode=\"x509/certvalid\")"
                .to_string(),
        ),
    };
    format!(
        "{globals}\n{module}\n{COLLECT_TEMPLATE}\n\
         ruleset(name=\"in\") {{ action(type=\"omfile\" file=\"{}\" template=\"t\") }}\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\" listenPortFileName=\"{}\" ruleset=\"in\")",
        out.display(),
        port.unwrap_or(0),
        port_file.display()
    )
}

fn read_collected(path: &Path) -> Vec<Collected> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A last line without its newline is still being written (or was cut
    // when the collector was killed): not a message yet.
    text.split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p: Vec<&str> = l.splitn(8, '|').collect();
            assert_eq!(p.len(), 8, "{l:?}");
            Collected {
                msgid: p[0].into(),
                hostname: p[1].into(),
                app_name: p[2].into(),
                procid: p[3].into(),
                pri: p[4].into(),
                timestamp: p[5].into(),
                sd: p[6].into(),
                msg: p[7].into(),
            }
        })
        .collect()
}

/// The `id` parameter of a collected structured-data element.
fn sd_id_param(sd: &str) -> String {
    let start = sd
        .find(" id=\"")
        .map(|i| i + 5)
        .unwrap_or_else(|| panic!("no id in {sd:?}"));
    let end = sd[start..].find('"').unwrap() + start;
    sd[start..end].to_string()
}

fn test_item(i: usize) -> ForwardItem {
    ForwardItem {
        cursor: ForwardCursor::default(),
        id: format!("2023-03-14:{i}"),
        ts: Some(Timestamp {
            unix_micros: 1_678_788_000_000_000 + i as i64 * 1_000_123,
            offset_secs: 3600,
        }),
        host: Some("mx1.example.org".into()),
        app_name: Some("postfix/smtp".into()),
        procid: Some(format!("{}", 1000 + i % 7)),
        severity: Some(if i.is_multiple_of(2) {
            Severity::Info
        } else {
            Severity::Warning
        }),
        facility: forward::FACILITY_MAIL,
        msgid: Some("delivery".into()),
        params: SdParams {
            family: Some("postfix".into()),
            event: Some("delivery".into()),
            queue_id: Some(format!("4PbC4x469Jz{i:04}")),
            client_ip: i.is_multiple_of(3).then(|| "192.0.2.7".into()),
            sender: Some("we\"ird]\\sender@example.org".into()),
            recipient: Some(format!("rcpt{i}@example.net")),
            user: None,
            message_id: Some(format!("<{i}@example.org>")),
        },
        msg: format!("to=<rcpt{i}@example.net>, status=sent (250 ok) | grüße {i}"),
    }
}

fn expected_sd(i: usize) -> String {
    let it = test_item(i);
    let mut s = format!(
        "[mailwarden@32473 id=\"{}\" family=\"postfix\" event=\"delivery\" queue_id=\"{}\"",
        it.id,
        it.params.queue_id.as_deref().unwrap()
    );
    if i.is_multiple_of(3) {
        s.push_str(" client_ip=\"192.0.2.7\"");
    }
    s.push_str(&format!(
        " sender=\"we\\\"ird\\]\\\\sender@example.org\" recipient=\"rcpt{i}@example.net\" \
         message_id=\"<{i}@example.org>\"]"
    ));
    s
}

fn check_line(c: &Collected, i: usize) {
    let it = test_item(i);
    assert_eq!(c.msgid, "delivery");
    assert_eq!(c.hostname, "mx1.example.org");
    assert_eq!(c.app_name, "postfix/smtp");
    assert_eq!(c.procid, it.procid.unwrap());
    assert_eq!(c.pri, if i.is_multiple_of(2) { "22" } else { "20" });
    // rsyslog prints the original offset; the fraction as received.
    let ts = it.ts.unwrap();
    let local = ts.local();
    let frac = if local.micros == 0 {
        String::new()
    } else {
        format!(".{:06}", local.micros)
    };
    assert_eq!(
        c.timestamp,
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}+01:00",
            local.year, local.month, local.day, local.hour, local.minute, local.second
        )
    );
    assert_eq!(c.sd, expected_sd(i));
    assert_eq!(c.msg, format!("\u{feff}{}", it.msg));
}

async fn wait_for_ids(out: &Path, want: usize, rs: &Rsyslog, stats: &ForwardStats) -> Vec<Collected> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = read_collected(out);
        let ids: std::collections::HashSet<String> = lines.iter().map(|c| sd_id_param(&c.sd)).collect();
        if ids.len() >= want {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "collector has {} distinct ids of {want}; forwarder {:?}; rsyslog: {}",
            ids.len(),
            stats.snapshot(),
            rs.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_config(port: u16, tls: Option<&Pki>) -> ForwardConfig {
    let mut cfg = ForwardConfig::new(format!("127.0.0.1:{port}"));
    cfg.batch_size = 64;
    cfg.poll_interval = Duration::from_millis(50);
    cfg.backoff_initial = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(800);
    cfg.commit_delay = Duration::from_millis(500);
    cfg.tls = tls.map(|pki| ForwardTls {
        ca_pem: pki.ca.clone(),
        server_name: "localhost".into(),
        client_cert_pem: Some(pki.client_cert.clone()),
        client_key_pem: Some(pki.client_key.clone()),
    });
    cfg
}

async fn forward_to_rsyslog(tls: bool, crash: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = make_pki(dir);
    let pki_opt = tls.then_some(&pki);
    let out = dir.join("collected.log");
    let port_file = dir.join("collector.port");
    let mut rs = Rsyslog::start(
        dir,
        "collector1",
        &collector_body(&out, None, &port_file, pki_opt),
    );
    let port = tokio::task::block_in_place(|| rs.port(&port_file));

    let source = MemorySource::new();
    let first = 300;
    for i in 0..first {
        source.push(test_item(i));
    }
    let stats = Arc::new(ForwardStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(forward::run(
        fast_config(port, pki_opt),
        source.clone(),
        stats.clone(),
        shutdown.clone(),
    ));

    // Phase 1: content, order, structured data.
    let lines = wait_for_ids(&out, first, &rs, &stats).await;
    assert_eq!(lines.len(), first, "duplicates without any failure");
    for (i, c) in lines.iter().enumerate() {
        assert_eq!(sd_id_param(&c.sd), format!("2023-03-14:{i}"), "order");
        check_line(c, i);
    }

    // On a healthy connection, batches are committed once `commit_delay` passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.committed_count() < first {
        assert!(Instant::now() < deadline, "not committed: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Phase 2: the collector goes away while items keep coming, then comes back.
    let total = 1000;
    let restart = |name: &str| {
        Rsyslog::start(
            dir,
            name,
            &collector_body(&out, Some(port), &dir.join(format!("{name}.port")), pki_opt),
        )
    };
    let rs2 = if crash {
        // Kill -9 in the middle of a steady stream.
        let pusher = {
            let source = source.clone();
            tokio::spawn(async move {
                for i in first..total {
                    source.push(test_item(i));
                    if i.is_multiple_of(10) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| rs.kill());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(stats.snapshot().connect_failures > 0, "{:?}", stats.snapshot());
        let rs2 = restart("collector2");
        pusher.await.unwrap();
        rs2
    } else {
        tokio::task::block_in_place(|| rs.stop());
        for i in first..700 {
            source.push(test_item(i));
            if i.is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
        // Long enough for the forwarder to notice and back off at least once.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(stats.snapshot().connect_failures > 0, "{:?}", stats.snapshot());
        let rs2 = restart("collector2");
        for i in 700..total {
            source.push(test_item(i));
            if i.is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        rs2
    };
    let lines = wait_for_ids(&out, total, &rs2, &stats).await;

    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for c in &lines {
        let id = sd_id_param(&c.sd);
        let i: usize = id.rsplit(':').next().unwrap().parse().unwrap();
        check_line(c, i);
        *count.entry(id).or_default() += 1;
    }
    assert_eq!(count.len(), total, "every id arrived");
    let dups: usize = count.values().map(|c| c - 1).sum();
    eprintln!(
        "forward_to_rsyslog(tls={tls}, crash={crash}): {} lines for {total} ids, {dups} duplicates; forwarder {:?}",
        lines.len(),
        stats.snapshot()
    );

    // A clean shutdown commits everything the collector read.
    shutdown.cancel();
    let src = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(src.committed_count(), total);
    let s = stats.snapshot();
    assert!(s.reconnects >= 1, "{s:?}");
    assert_eq!(s.lag, Some(0));
    drop(rs2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_to_rsyslog_over_tcp_survives_a_collector_restart() {
    forward_to_rsyslog(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_to_rsyslog_over_tcp_survives_a_collector_crash() {
    forward_to_rsyslog(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_to_rsyslog_over_mutual_tls_survives_a_collector_restart() {
    forward_to_rsyslog(true, false).await;
}
