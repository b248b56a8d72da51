//! Keeping logs (C2) end to end, through the built binary: `ingest` and
//! `serve` into a store in a temporary data directory, read back with
//! `logs … --store`, `status` and the metrics endpoint; crash tests kill the
//! daemon with SIGKILL and prove that nothing acknowledged was lost and
//! nothing stored twice; the forwarder delivers to a real rsyslog that is
//! killed and restarted on the way; a real Postfix log is rotated while the
//! daemon follows it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailwarden_testlab::{LabOptions, MailLab, RedisServer, Rsyslog, Service};

use crate::support::{Run, mailwarden};

// ---------------------------------------------------------------- helpers

/// The bundled sample logs, decompressed.
fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name);
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("run gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    String::from_utf8(out.stdout).expect("sample is UTF-8")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn data_arg(data: &Path) -> String {
    data.display().to_string()
}

/// `status --json` of a data directory.
fn status(data: &Path) -> serde_json::Value {
    let r = mailwarden(
        data.parent().unwrap(),
        &["status", "--json", "--data-dir", &data_arg(data)],
    );
    r.json()
}

fn stored_lines(data: &Path) -> u64 {
    status(data)["store"]["lines"].as_u64().unwrap_or(0)
}

/// Every stored line, in stored order (`logs parse --store --raw`).
fn stored_raw(data: &Path) -> Vec<String> {
    let r = mailwarden(
        data.parent().unwrap(),
        &["logs", "parse", "--store", "--raw", "--data-dir", &data_arg(data)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.lines().map(str::to_owned).collect()
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Asserts two line lists are equal, showing the first difference.
#[track_caller]
fn assert_same_lines(got: &[String], want: &[String]) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "stored {} lines, expected {}; first difference at {first}:\n got: {:?}\nwant: {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}

/// A `mailwarden serve` child process, killed when dropped.
struct Serve {
    child: Option<Child>,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, config: &Path, extra: &[&str]) -> Serve {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("serve-{n}.stderr"));
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
            .arg("serve")
            .arg("--no-mailcow")
            .arg("--config")
            .arg(config)
            .args(extra)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn mailwarden serve");
        Serve {
            child: Some(child),
            log,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A crash: SIGKILL, no chance to flush anything.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit code after the graceful shutdown.
    fn term(&mut self) -> i32 {
        let mut c = self.child.take().expect("serve is running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("serve did not stop within 30 s of SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Some(st) = c.try_wait().unwrap()
        {
            panic!("serve exited ({st}):\n{}", self.stderr());
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

// ---------------------------------------------------------------- ingest

#[test]
fn ingest_keeps_every_line_once_and_the_store_reads_like_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let (mail, dovecot) = (samples.join("mail.log.gz"), samples.join("dovecot.log.gz"));
    let (mail, dovecot) = (mail.to_str().unwrap(), dovecot.to_str().unwrap());
    let data = d.join("data");
    let data_s = data_arg(&data);

    // A first, partial ingest of the live log (as if `mail.log` was read
    // before it was complete), then the whole rotated-and-compressed file:
    // the content key recognises it and only the rest is stored.
    let mail_text = sample("mail.log.gz");
    let half: String = mail_text.lines().take(200).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("mail.log"), &half).unwrap();
    let r = mailwarden(d, &["ingest", "--data-dir", &data_s, "mail.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("mail.log: 200 new lines"), "{}", r.stderr);

    let r = mailwarden(d, &["ingest", "--data-dir", &data_s, mail, dovecot]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let total_mail = mail_text.lines().count();
    assert!(
        r.stderr
            .contains(&format!("mail.log.gz: {} new lines", total_mail - 200)),
        "{}",
        r.stderr
    );

    // Again: nothing new.
    let r = mailwarden(d, &["ingest", "--data-dir", &data_s, mail, dovecot]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("mail.log.gz: 0 new lines"), "{}", r.stderr);
    assert!(r.stderr.contains("dovecot.log.gz: 0 new lines"), "{}", r.stderr);

    // The store holds exactly the two files, in order.
    let mut want = lines_of(&mail_text);
    want.extend(lines_of(&sample("dovecot.log.gz")));
    assert_same_lines(&stored_raw(&data), &want);
    let st = status(&data);
    assert_eq!(st["store"]["lines"].as_u64(), Some(want.len() as u64), "{st}");
    assert_eq!(st["store"]["unparsed"].as_u64(), Some(0), "{st}");
    assert_eq!(st["serve_running"], false);

    // summary and search give the same answers from the store as from the files.
    let without_inputs = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("inputs");
        v
    };
    let from_files = mailwarden(d, &["logs", "summary", "--json", mail, dovecot]);
    let from_store = mailwarden(
        d,
        &["logs", "summary", "--json", "--store", "--data-dir", &data_s],
    );
    assert_eq!(from_store.code, 0, "{}", from_store.stderr);
    assert!(
        !from_store.stderr.contains("bundled sample"),
        "{}",
        from_store.stderr
    );
    assert_eq!(
        without_inputs(from_store.json()),
        without_inputs(from_files.json())
    );

    let senders = from_files.json()["top_senders"].clone();
    let sender = senders[0]["key"]
        .as_str()
        .or_else(|| senders[0]["address"].as_str())
        .unwrap_or_else(|| panic!("no top sender in {senders}"))
        .to_owned();
    let search = |args: &[&str]| -> Run { mailwarden(d, args) };
    let f = search(&["logs", "search", "--json", "--sender", &sender, mail, dovecot]);
    let s = search(&[
        "logs",
        "search",
        "--json",
        "--sender",
        &sender,
        "--store",
        "--data-dir",
        &data_s,
    ]);
    assert_eq!(f.code, 0, "{}", f.stderr);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let strip = |run: &Run| -> Vec<serde_json::Value> {
        run.json_lines()
            .into_iter()
            .map(|mut v| {
                // Positions count lines per read: from files, the line in the
                // file; from the store, the line in the run that stored it.
                if let Some(o) = v.as_object_mut() {
                    o.remove("first_position");
                }
                v
            })
            .collect()
    };
    let (fs, ss) = (strip(&f), strip(&s));
    assert!(!fs.is_empty(), "search by {sender} found nothing in the files");
    assert_eq!(ss, fs, "store search differs from file search for {sender}");
}

#[test]
fn config_errors_name_the_key_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "[store]\nretention_days = 30\nmax_sise = \"1G\"\n",
    )
    .unwrap();
    let r = mailwarden(
        d,
        &[
            "serve",
            "--no-mailcow",
            "--config",
            "bad.toml",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("max_sise"), "{}", r.stderr);
    assert!(r.stderr.contains("max_size"), "no fix offered: {}", r.stderr);
}

// ---------------------------------------------------------------- serve

/// Lines for the crash test: the sample, repeated with distinct queue ids so
/// every line is unique.
fn many_lines(copies: usize) -> Vec<String> {
    let base = sample("mail.log.gz");
    let mut out = Vec::new();
    for c in 0..copies {
        for l in base.lines() {
            out.push(format!("{l} copy={c}"));
        }
    }
    out
}

#[test]
fn serve_killed_mid_ingest_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("mail.log");
    let data = d.join("data");
    let metrics = free_port();
    std::fs::write(
        d.join("mw.toml"),
        format!(
            "data_dir = \"{}\"\n[[files]]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let cfg = d.join("mw.toml");
    let lines = many_lines(40); // ~22,600 lines
    let (first, rest) = lines.split_at(lines.len() / 2);
    let mut f = std::fs::File::create(&log).unwrap();
    for l in first {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();

    // Kill it while it is busy storing the first half.
    let mut serve = Serve::start(d, &cfg, &[]);
    wait_until("the first lines to be stored", Duration::from_secs(60), || {
        serve.assert_running();
        stored_lines(&data) > 0
    });
    serve.kill9();
    let after_crash = stored_lines(&data);

    // Append the rest while it is down, then again while it runs.
    let (while_down, while_up) = rest.split_at(rest.len() / 2);
    for l in while_down {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    let mut serve = Serve::start(d, &cfg, &[]);
    for chunk in while_up.chunks(500) {
        for l in chunk {
            writeln!(f, "{l}").unwrap();
        }
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = lines.len() as u64;
    wait_until("every line to be stored", Duration::from_secs(120), || {
        serve.assert_running();
        stored_lines(&data) >= total
    });

    // Status and metrics while it runs.
    let key = format!("file:{}", log.display());
    let len = std::fs::metadata(&log).unwrap().len();
    wait_until("the status file to catch up", Duration::from_secs(10), || {
        status(&data)["serve"]["sources"][&key]["checkpoint"]["offset"].as_u64() == Some(len)
    });
    let st = status(&data);
    assert_eq!(st["serve_running"], true, "{st}");
    assert!(st["serve"]["sources"][&key]["lines"].as_u64() > Some(0), "{st}");
    // A second writer is refused with a clear error; readers are not.
    let r = mailwarden(
        d,
        &["ingest", "--data-dir", &data_arg(&data), log.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("locked by another writer"), "{}", r.stderr);
    assert!(r.stderr.contains("mailwarden serve"), "{}", r.stderr);
    let body = http_get(metrics, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("mailwarden_store_bytes"), "{body}");
    assert!(
        body.contains(&format!("mailwarden_source_lines_total{{source=\"{key}\"}}")),
        "{body}"
    );

    assert_eq!(serve.term(), 0, "{}", serve.stderr());
    assert!(serve.stderr().contains("SIGTERM"), "{}", serve.stderr());

    let got = stored_raw(&data);
    assert_same_lines(&got, &lines);
    eprintln!(
        "crash after {after_crash} of {} lines; all {total} stored once",
        first.len()
    );
}

#[test]
fn serve_follows_a_real_postfix_log_through_rotation() {
    let lab = MailLab::start(LabOptions::default()).expect("start the mail lab");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = lab.mail_log().to_path_buf();
    let data = d.join("data");
    std::fs::write(
        d.join("mw.toml"),
        format!(
            "data_dir = \"{}\"\n[[files]]\npath = \"{}\"\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let mut serve = Serve::start(d, &d.join("mw.toml"), &[]);
    let send = |n: usize, tag: &str| {
        for i in 0..n {
            let from = format!("{tag}{i}@partner.test");
            lab.swaks(
                Service::Smtp,
                &[
                    "--from",
                    &from,
                    "--to",
                    "alice@lab.test",
                    "--helo",
                    "partner.test",
                ],
            )
            .expect("swaks");
        }
    };
    send(3, "before");
    lab.wait_idle().unwrap();
    let len = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let key = format!("file:{}", log.display());
    let caught_up =
        |want: u64| status(&data)["serve"]["sources"][&key]["checkpoint"]["offset"].as_u64() == Some(want);
    let l = len();
    wait_until("serve to read the log", Duration::from_secs(30), || caught_up(l));

    // logrotate's way: rename, then make Postfix reopen its log.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let out = Command::new("postfix")
        .arg("-c")
        .arg(lab.postfix_config_dir())
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    send(3, "after");
    lab.wait_idle().unwrap();
    wait_until("the new log to exist", Duration::from_secs(10), || log.exists());
    let l = len();
    wait_until("serve to read the new log", Duration::from_secs(30), || {
        caught_up(l)
    });
    assert_eq!(serve.term(), 0, "{}", serve.stderr());

    let mut want = lines_of(&std::fs::read_to_string(&rotated).unwrap());
    want.extend(lines_of(&std::fs::read_to_string(&log).unwrap()));
    assert_same_lines(&stored_raw(&data), &want);
    let st = status(&data);
    let rotations = st["serve"]["collectors"]["files"]["counters"]["rotations"].as_u64();
    assert!(rotations >= Some(1), "{st}");
    // The rotated-out lines are searchable: every sender of both halves is there.
    let r = mailwarden(
        d,
        &[
            "logs",
            "search",
            "--json",
            "--store",
            "--data-dir",
            &data_arg(&data),
            "--sender",
            "before0@partner.test",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = mailwarden(
        d,
        &[
            "logs",
            "search",
            "--json",
            "--store",
            "--data-dir",
            &data_arg(&data),
            "--sender",
            "after2@partner.test",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// ---------------------------------------------------------------- forwarding

const COLLECT_TEMPLATE: &str =
    "template(name=\"t\" type=\"string\" string=\"%msgid%|%app-name%|%structured-data%|%msg%\\n\")";

fn start_collector(d: &Path, name: &str, out: &Path, port: Option<u16>) -> (Rsyslog, u16) {
    let port_file = d.join(format!("{name}.port"));
    let _ = std::fs::remove_file(&port_file);
    let body = format!(
        "module(load=\"imtcp\")\n{COLLECT_TEMPLATE}\n\
         ruleset(name=\"in\") {{ action(type=\"omfile\" file=\"{}\" template=\"t\") }}\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\" listenPortFileName=\"{}\" ruleset=\"in\")",
        out.display(),
        port.unwrap_or(0),
        port_file.display()
    );
    let mut rs = Rsyslog::start(d, name, &body);
    match port {
        // rsyslog writes the port file only for a kernel-chosen port.
        Some(p) => {
            wait_until("the collector to listen again", Duration::from_secs(15), || {
                TcpStream::connect(("127.0.0.1", p)).is_ok()
            });
            (rs, p)
        }
        None => {
            let p = rs.port(&port_file);
            (rs, p)
        }
    }
}

/// (id, message) of every record the collector wrote.
fn collected(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p: Vec<&str> = l.splitn(4, '|').collect();
            assert_eq!(p.len(), 4, "{l:?}");
            let sd = p[2];
            let id = sd
                .find(" id=\"")
                .map(|i| {
                    let rest = &sd[i + 5..];
                    rest[..rest.find('"').unwrap()].to_owned()
                })
                .unwrap_or_else(|| panic!("no id in {sd:?}"));
            (id, p[3].to_owned())
        })
        .collect()
}

#[test]
fn forwarding_survives_a_collector_outage_and_a_daemon_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("central.log");
    let (mut rs, port) = start_collector(d, "central", &out, None);
    let log = d.join("mail.log");
    let data = d.join("data");
    std::fs::write(
        d.join("mw.toml"),
        format!(
            "data_dir = \"{}\"\n[[files]]\npath = \"{}\"\n[forward]\ntarget = \"127.0.0.1:{port}\"\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let cfg = d.join("mw.toml");
    let lines = many_lines(2);
    let (a, rest) = lines.split_at(400);
    let (b, c) = rest.split_at(400);
    let mut f = std::fs::File::create(&log).unwrap();
    let append = |f: &mut std::fs::File, part: &[String]| {
        for l in part {
            writeln!(f, "{l}").unwrap();
        }
        f.flush().unwrap();
    };

    // 1. Collector up: the first part arrives.
    append(&mut f, a);
    let mut serve = Serve::start(d, &cfg, &[]);
    wait_until("part 1 at the collector", Duration::from_secs(60), || {
        serve.assert_running();
        collected(&out).len() >= a.len()
    });

    // 2. Collector down: the store spools, status shows the backlog.
    rs.kill();
    append(&mut f, b);
    let total_ab = (a.len() + b.len()) as u64;
    wait_until(
        "part 2 stored while the collector is down",
        Duration::from_secs(60),
        || stored_lines(&data) >= total_ab,
    );
    wait_until("the backlog in status", Duration::from_secs(30), || {
        let st = status(&data);
        st["serve"]["collectors"]["forward"]["counters"]["lag"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });

    // 3. The daemon crashes too; the rest is written; both come back.
    serve.kill9();
    append(&mut f, c);
    let (_rs2, _) = start_collector(d, "central2", &out, Some(port));
    let mut serve = Serve::start(d, &cfg, &[]);
    let want = lines.len();
    wait_until("every line at the collector", Duration::from_secs(120), || {
        serve.assert_running();
        let got = collected(&out);
        let mut ids: Vec<&String> = got.iter().map(|(i, _)| i).collect();
        ids.sort();
        ids.dedup();
        ids.len() >= want
    });
    assert_eq!(serve.term(), 0, "{}", serve.stderr());

    // At-least-once with ids: every stored line arrived; a line seen twice
    // carries the same id both times, so the collector can drop it.
    let got = collected(&out);
    let mut by_id: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (id, msg) in &got {
        if let Some(prev) = by_id.insert(id, msg) {
            assert_eq!(prev, msg, "id {id} carried two different messages");
        }
    }
    assert_eq!(by_id.len(), want, "distinct ids at the collector");
    // In order of first arrival, the messages are the log's lines.
    let mut seen = std::collections::HashSet::new();
    let first_arrivals: Vec<&str> = got
        .iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(_, m)| m.as_str())
        .collect();
    for (i, (got, line)) in first_arrivals.iter().zip(&lines).enumerate() {
        // RFC 5424 MSG: UTF-8 with a BOM.
        let msg = got.trim_start().trim_start_matches('\u{feff}');
        assert!(
            line.ends_with(msg),
            "record {i}: {got:?} is not the end of {line:?}"
        );
    }
    let dups = got.len() - by_id.len();
    eprintln!("{} records, {dups} resent after the crash (same ids)", got.len());
}

// ---------------------------------------------------------------- syslog listener

#[test]
fn serve_stores_what_arrives_on_its_syslog_listener_and_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let port = free_port();
    std::fs::write(
        d.join("mw.toml"),
        format!(
            "data_dir = \"{}\"\n[syslog]\ntcp = [\"127.0.0.1:{port}\"]\nmax_frame = \"4K\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut serve = Serve::start(d, &d.join("mw.toml"), &[]);
    wait_until("the listener", Duration::from_secs(30), || {
        serve.assert_running();
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let msgs: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "<22>1 2026-12-04T10:00:{:02}Z mx1 postfix/smtpd 42 - - disconnect from unknown[192.0.2.{i}] ehlo=1 quit=1 commands=2",
                i % 60
            )
        })
        .collect();
    // A hostile connection first: binary garbage and an oversized frame.
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut junk = vec![0u8, 0xff, 0xfe, b'\n'];
    junk.extend(std::iter::repeat_n(b'A', 10_000));
    junk.push(b'\n');
    bad.write_all(&junk).unwrap();
    drop(bad);
    // Then a well-behaved sender, octet-counted (RFC 6587).
    let mut ok = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for m in &msgs {
        write!(ok, "{} {m}", m.len()).unwrap();
    }
    ok.flush().unwrap();
    drop(ok);
    wait_until("the messages to be stored", Duration::from_secs(30), || {
        stored_lines(&data) >= 52
    });
    assert_eq!(serve.term(), 0, "{}", serve.stderr());

    let got = stored_raw(&data);
    for m in &msgs {
        assert!(got.contains(m), "missing {m:?} in {got:?}");
    }
    let st = status(&data);
    assert!(
        st["store"]["unparsed"].as_u64().unwrap() >= 1,
        "garbage is kept as unparsed: {st}"
    );
    let r = mailwarden(
        d,
        &[
            "logs",
            "summary",
            "--json",
            "--store",
            "--data-dir",
            &data_arg(&data),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// ---------------------------------------------------------------- Mailcow

/// `redis-cli` against a private Redis, checking the reply.
fn redis_cli(redis: &RedisServer, args: &[&str]) {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "--no-auth-warning",
            "-a",
            redis.password(),
        ])
        .args(args)
        .output()
        .expect("redis-cli runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !said.contains("ERR") && !said.contains("NOAUTH"),
        "redis-cli {args:?}: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One container of a compose project in a Docker data root, in the on-disk
/// format (`config.v2.json`, `<id>-json.log`).
fn fake_container(root: &Path, id: &str, name: &str, project: &str, service: &str, lines: &[&str]) {
    let dir = root.join("containers").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "ID": id,
        "Name": format!("/{name}"),
        "Created": "2026-12-01T08:00:00.000000000Z",
        "State": {"Running": false, "ExitCode": 0},
        "Config": {
            "Image": "ghcr.io/mailcow/postfix:1.80",
            "Labels": {
                "com.docker.compose.project": project,
                "com.docker.compose.service": service,
            }
        },
        "LogPath": format!("/var/lib/docker/containers/{id}/{id}-json.log"),
    });
    std::fs::write(dir.join("config.v2.json"), config.to_string()).unwrap();
    let mut log = String::new();
    for (i, l) in lines.iter().enumerate() {
        let rec = serde_json::json!({
            "log": format!("{l}\n"),
            "stream": "stdout",
            "time": format!("2026-12-04T10:00:{:02}.{:09}Z", i % 60, i),
        });
        log.push_str(&rec.to_string());
        log.push('\n');
    }
    std::fs::write(dir.join(format!("{id}-json.log")), log).unwrap();
}

#[test]
fn zero_config_on_a_mailcow_host_keeps_redis_lists_and_container_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = "s3cret-redis";
    let redis = RedisServer::start(password).expect("a private redis-server");

    // A Mailcow installation directory: only mailcow.conf matters.
    let mc = d.join("mailcow-dockerized");
    std::fs::create_dir_all(&mc).unwrap();
    std::fs::write(
        mc.join("mailcow.conf"),
        format!(
            "MAILCOW_HOSTNAME=mail.example.org\nCOMPOSE_PROJECT_NAME=mctest\nDBNAME=mailcow\nDBUSER=mailcow\n\
             DBPASS=x\nDBROOT=y\nREDIS_PORT=127.0.0.1:{}\nREDISPASS={password}\nLOG_LINES=9999\n",
            redis.port()
        ),
    )
    .unwrap();
    // Mailcow pushes the newest entry to the head of each list.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..5 {
        let entry = serde_json::json!({
            "time": (now_secs - 60 + i).to_string(),
            "priority": "info",
            "program": "postfix/smtpd",
            "message": format!("connect from unknown[203.0.113.{i}]"),
        });
        redis_cli(&redis, &["LPUSH", "POSTFIX_MAILLOG", &entry.to_string()]);
    }

    // The containers' json-file logs, read while the engine is "down".
    let root = d.join("docker");
    fake_container(
        &root,
        "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "mctest-postfix-mailcow-1",
        "mctest",
        "postfix-mailcow",
        &[
            "Dec  4 10:00:00 mail postfix/smtpd[101]: connect from unknown[198.51.100.7]",
            "Dec  4 10:00:01 mail postfix/smtpd[101]: disconnect from unknown[198.51.100.7] ehlo=1 quit=1 commands=2",
        ],
    );
    fake_container(
        &root,
        "ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000",
        "other-web-1",
        "otherproject",
        "web",
        &["GET / HTTP/1.1 200"],
    );

    let data = d.join("data");
    // `serve` with nothing but --mailcow-dir: Redis from mailcow.conf; the
    // Docker API socket is absent here, so the collector falls back to the
    // data root (also absent: reported in status, serve keeps running).
    let serve = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .args([
            "serve",
            "--mailcow-dir",
            mc.to_str().unwrap(),
            "--data-dir",
            &data_arg(&data),
        ])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the Redis entries to be stored and reported",
        Duration::from_secs(30),
        || status(&data)["serve"]["collectors"]["redis"]["counters"]["entries"] == 5,
    );
    let st = status(&data);
    assert_eq!(st["store"]["lines"], 5, "{st}");
    assert_eq!(
        st["serve"]["collectors"]["redis"]["counters"]["entries"], 5,
        "{st}"
    );
    assert!(
        st["serve"]["collectors"]["docker"]["last_error"].is_string(),
        "{st}"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(serve.id().to_string())
        .status();
    let out = serve.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Mailcow at"), "{err}");
    assert!(!err.contains(password), "the Redis password leaked: {err}");

    // The one-shot read of the same lists: nothing new (serve stored them).
    // On a fresh store, all of them.
    let redis_once = |data: &Path| {
        mailwarden(
            d,
            &[
                "ingest",
                "--data-dir",
                &data_arg(data),
                "--mailcow-dir",
                mc.to_str().unwrap(),
                "--mailcow-redis",
            ],
        )
    };
    let r = redis_once(&data);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Redis lists: 0 new entries"), "{}", r.stderr);
    let other = d.join("other-data");
    let r = redis_once(&other);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Redis lists: 5 new entries"), "{}", r.stderr);
    assert_eq!(stored_lines(&other), 5);

    // The containers' logs straight from the data root, while the engine is down.
    let args = [
        "ingest",
        "--data-dir",
        &data_arg(&data),
        "--mailcow-dir",
        mc.to_str().unwrap(),
        "--docker-data-root",
        root.to_str().unwrap(),
    ];
    let r = mailwarden(d, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("2 new lines from container logs"),
        "{}",
        r.stderr
    );
    assert_eq!(stored_lines(&data), 7);
    // Again: nothing new.
    let r = mailwarden(d, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 new lines from container logs"),
        "{}",
        r.stderr
    );
    assert_eq!(stored_lines(&data), 7);

    // Parsed, indexed and searchable like any other Postfix log.
    for ip in ["203.0.113.3", "198.51.100.7"] {
        let r = mailwarden(
            d,
            &[
                "logs",
                "search",
                "--store",
                "--data-dir",
                &data_arg(&data),
                "--client-ip",
                ip,
                "--lines",
            ],
        );
        assert_eq!(r.code, 0, "{ip}: {}", r.stderr);
        assert!(r.stdout.contains(ip), "{ip}: {}", r.stdout);
    }
    let r = mailwarden(
        d,
        &[
            "logs",
            "parse",
            "--store",
            "--data-dir",
            &data_arg(&data),
            "--count",
        ],
    );
    let counts = r.json();
    assert_eq!(counts["events_by_family"]["postfix"], 7, "{counts}");
}
