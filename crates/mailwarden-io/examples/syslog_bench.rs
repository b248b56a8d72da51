//! Throughput of the syslog listener against rsyslog, in one run.
//!
//! Sends the same stream of N RFC 5424 lines (octet-counted, one TCP
//! connection, from a thread of this process) to
//!
//! 1. mailwarden's listener, counting the records that come out of its channel;
//! 2. mailwarden's listener again, with the consumer writing every line to a
//!    file (what a receiver that stores lines does at the least);
//! 3. a private `rsyslogd` (imtcp → omfile, template `%rawmsg%\n`, otherwise
//!    default settings), timed until its file holds every line.
//!
//! Each figure is the best of `RUNS` runs (interleaved): time from the first
//! byte sent to the last line received (ours) or written (rsyslog). See `bench/syslog.md`.
//!
//! ```sh
//! cargo run --release -p mailwarden-io --example syslog_bench -- [N]   # default 1,000,000
//! RUNS=5 cargo run --release -p mailwarden-io --example syslog_bench
//! ```

use std::io::{BufWriter, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailwarden_io::collect::syslog::{Listener, ListenerConfig, ListenerStats};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The stream: N octet-counted RFC 5424 lines, and the bytes rsyslog writes for them.
struct Stream {
    wire: Vec<u8>,
    lines: usize,
    file_bytes: u64,
}

fn make_stream(n: usize) -> Stream {
    let mut wire = Vec::with_capacity(n * 150);
    let mut file_bytes = 0u64;
    let mut msg = String::new();
    for i in 0..n {
        msg.clear();
        use std::fmt::Write as _;
        let _ = write!(
            msg,
            "<22>1 2023-03-14T10:{:02}:{:02}.{:06}+01:00 mx1.example.org postfix/smtpd {} - - \
             connect from unknown[192.0.2.{}] seq={i}",
            i / 60 % 60,
            i % 60,
            i % 1_000_000,
            10_000 + i % 5000,
            i % 250
        );
        let _ = write!(wire, "{} {msg}", msg.len());
        file_bytes += msg.len() as u64 + 1;
    }
    Stream {
        wire,
        lines: n,
        file_bytes,
    }
}

fn send(addr: SocketAddr, wire: Arc<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        for chunk in wire.chunks(256 << 10) {
            s.write_all(chunk).expect("send");
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
    })
}

/// One run against our listener; returns the elapsed time.
fn run_ours(stream: &Stream, wire: &Arc<Vec<u8>>, to_file: Option<&Path>) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = ListenerConfig {
            tcp: vec!["127.0.0.1:0".parse().expect("addr")],
            ..ListenerConfig::default()
        };
        let listener = Listener::bind(cfg).await.expect("bind");
        let addr = listener.tcp_addrs()[0];
        let (tx, mut rx) = mpsc::channel(4096);
        let stats = Arc::new(ListenerStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(tx, stats.clone(), shutdown.clone()));
        let mut out =
            to_file.map(|p| BufWriter::with_capacity(256 << 10, std::fs::File::create(p).expect("file")));
        let start = Instant::now();
        let sender = send(addr, wire.clone());
        let mut got = 0usize;
        while got < stream.lines {
            let Some(r) = rx.recv().await else { break };
            if let Some(out) = out.as_mut() {
                out.write_all(r.line.as_bytes()).expect("write");
                out.write_all(b"\n").expect("write");
            }
            got += 1;
        }
        if let Some(mut out) = out {
            out.flush().expect("flush");
        }
        let elapsed = start.elapsed();
        sender.join().expect("sender");
        shutdown.cancel();
        let _ = task.await;
        let s = stats.snapshot();
        assert_eq!(got, stream.lines, "records received");
        assert_eq!((s.truncated, s.bad_framing), (0, 0), "{s:?}");
        elapsed
    })
}

struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rsyslogd_path() -> PathBuf {
    std::env::var_os("RSYSLOGD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/rsyslogd".into())
}

fn rsyslog_version() -> String {
    Command::new(rsyslogd_path())
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "rsyslogd (version unknown)".into())
}

/// One run against a fresh private rsyslogd; returns the elapsed time.
fn run_rsyslog(stream: &Stream, wire: &Arc<Vec<u8>>, dir: &Path, run: usize) -> Duration {
    let work = dir.join(format!("work{run}"));
    std::fs::create_dir_all(&work).expect("workdir");
    let out = dir.join(format!("rsyslog{run}.log"));
    let port_file = dir.join(format!("port{run}"));
    let conf = dir.join(format!("rsyslog{run}.conf"));
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{}\" net.enableDNS=\"off\" maxMessageSize=\"64k\")\n\
             module(load=\"imtcp\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             ruleset(name=\"in\") {{ action(type=\"omfile\" file=\"{}\" template=\"raw\") }}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"0\" listenPortFileName=\"{}\" ruleset=\"in\")\n",
            work.display(),
            out.display(),
            port_file.display()
        ),
    )
    .expect("conf");
    let child = Command::new(rsyslogd_path())
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join(format!("rsyslog{run}.pid")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!(
                "syslog_bench: cannot start {}: {e}; install rsyslog (apt-get install rsyslog) or set RSYSLOGD",
                rsyslogd_path().display()
            );
            std::process::exit(2)
        });
    let _guard = Rsyslogd(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    let port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|p| *p != 0)
        {
            break p;
        }
        assert!(Instant::now() < deadline, "rsyslogd did not start");
        std::thread::sleep(Duration::from_millis(10));
    };
    let start = Instant::now();
    let sender = send(SocketAddr::from(([127, 0, 0, 1], port)), wire.clone());
    let deadline = start + Duration::from_secs(600);
    loop {
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if len >= stream.file_bytes {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslogd wrote {len} of {} bytes",
            stream.file_bytes
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    sender.join().expect("sender");
    let lines = std::fs::read(&out)
        .expect("read")
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert_eq!(lines, stream.lines, "rsyslog lines");
    let _ = std::fs::remove_file(&out);
    elapsed
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn group(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.replace(['_', ','], "").parse().expect("N must be a number"))
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut stream = make_stream(n);
    let wire = Arc::new(std::mem::take(&mut stream.wire));
    let dir = tempfile::tempdir().expect("tempdir");
    let ours_file = dir.path().join("ours.log");

    // Runs are interleaved (ours, ours + file, rsyslog, ours, …) so that a burst
    // of load on a shared machine does not fall on one receiver only.
    let (mut ours, mut ours_file_t, mut rsyslog) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for r in 0..runs {
        ours = ours.min(run_ours(&stream, &wire, None));
        ours_file_t = ours_file_t.min(run_ours(&stream, &wire, Some(&ours_file)));
        rsyslog = rsyslog.min(run_rsyslog(&stream, &wire, dir.path(), r));
    }

    println!(
        "syslog_bench: {} lines, {:.1} MB, one TCP connection, octet-counted RFC 5424; best of {runs}; {} CPUs",
        group(n as f64),
        wire.len() as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let row = |name: &str, d: Duration| {
        println!(
            "  {name:<44} {:>8.3} s {:>12} lines/s",
            d.as_secs_f64(),
            group(rate(n, d))
        );
    };
    row("mailwarden listener (records counted)", ours);
    row("mailwarden listener (+ lines to a file)", ours_file_t);
    row(&format!("{} imtcp -> omfile", rsyslog_version()), rsyslog);
    println!(
        "  ratio mailwarden/rsyslog: {:.2}x (records counted), {:.2}x (+ file)",
        rate(n, ours) / rate(n, rsyslog),
        rate(n, ours_file_t) / rate(n, rsyslog)
    );
}
