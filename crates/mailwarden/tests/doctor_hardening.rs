//! `mailwarden doctor hardening` on a server's files copied under a
//! directory (`--root`) and saved firewall listings: each check's finding,
//! the exit code, JSON, and a run on this machine's own `/`.

use std::path::Path;
use std::process::{Command, Stdio};

fn doctor(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .arg("doctor")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run mailwarden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn ids(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["id"].as_str().unwrap_or_default().to_owned(),
                v["severity"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_weak_server_and_a_hardened_one() {
    let dir = tempfile::tempdir().unwrap();
    let weak = dir.path().join("weak");
    write(
        &weak,
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n",
    );
    write(
        &weak,
        "/etc/ssh/sshd_config.d/10-x.conf",
        "PasswordAuthentication yes\n",
    );
    write(&weak, "/etc/rsyslog.conf", "*.* /var/log/syslog\n");
    write(&weak, "/etc/docker/daemon.json", "{}\n");
    let mailcow = weak.join("opt/mailcow-dockerized");
    write(
        &weak,
        "/opt/mailcow-dockerized/mailcow.conf",
        "MAILCOW_HOSTNAME=mail.example.org\n",
    );
    std::fs::create_dir_all(mailcow.join("data/assets/ssl")).unwrap();
    // A certificate that expires in 5 days, made by the real openssl.
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "5",
            "-subj",
            "/CN=mail.example.org",
        ])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(mailcow.join("data/assets/ssl/cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    // The Mailcow checkout: a git repository with two release tags, the
    // older one checked out.
    let git = |args: &[&str], date: &str| {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(&mailcow)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_DATE", date)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git");
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q"], "2025-01-10T00:00:00Z");
    git(&["add", "mailcow.conf"], "2025-01-10T00:00:00Z");
    git(&["commit", "-q", "-m", "january"], "2025-01-10T00:00:00Z");
    git(&["tag", "2025-01"], "2025-01-10T00:00:00Z");
    git(
        &["commit", "-q", "--allow-empty", "-m", "march"],
        "2025-03-10T00:00:00Z",
    );
    git(&["tag", "2025-03"], "2025-03-10T00:00:00Z");
    git(&["checkout", "-q", "2025-01"], "2025-03-10T00:00:00Z");
    write(
        dir.path(),
        "open.nft",
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n",
    );
    let weak_s = weak.display().to_string();
    let (code, out, err) = doctor(
        dir.path(),
        &[
            "hardening",
            "--root",
            &weak_s,
            "--nft-ruleset",
            "open.nft",
            "--json",
            "--all",
        ],
    );
    assert_eq!(code, 1, "a failing check exits 1: {err}");
    let got = ids(&out);
    for want in [
        ("hardening.ssh.root-login", "fail"),
        ("hardening.ssh.password-auth", "warning"),
        ("hardening.firewall.input-open", "warning"),
        ("hardening.logging.no-central", "warning"),
        ("hardening.logging.docker-rotation", "info"),
        ("hardening.logging.mailcow-log-lines", "warning"),
        ("hardening.tls.expires-soon", "warning"),
        ("hardening.mailcow.relay-via-docker-proxy", "warning"),
        ("hardening.mailcow.behind-release", "warning"),
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {got:?}"
        );
    }
    // Not the live machine: no process scan, so no brute-force verdict.
    assert!(
        !got.iter().any(|(id, _)| id.starts_with("hardening.bruteforce")),
        "{got:?}"
    );

    let good = dir.path().join("good");
    write(
        &good,
        "/etc/ssh/sshd_config",
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    );
    write(
        &good,
        "/etc/rsyslog.d/90-central.conf",
        "action(type=\"omfwd\" target=\"siem.example.org\" port=\"6514\" protocol=\"tcp\")\n",
    );
    write(
        dir.path(),
        "mailcow.iptables",
        "*filter\n:INPUT DROP [0:0]\n:MAILCOW - [0:0]\n-A INPUT -j MAILCOW\n-A INPUT -p tcp --dport 25 -j ACCEPT\nCOMMIT\n",
    );
    let good_s = good.display().to_string();
    let (code, out, err) = doctor(
        dir.path(),
        &[
            "hardening",
            "--root",
            &good_s,
            "--iptables-save",
            "mailcow.iptables",
            "--json",
            "--all",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let got = ids(&out);
    for want in [
        "hardening.ssh.root-login",
        "hardening.ssh.password-auth",
        "hardening.firewall.input-filtered",
        "hardening.bruteforce.running",
        "hardening.logging.central",
    ] {
        assert!(
            got.contains(&(want.to_owned(), "pass".to_owned())),
            "{want} in {got:?}"
        );
    }
    // Text: passes hidden unless --all.
    let (_, text, _) = doctor(
        dir.path(),
        &[
            "hardening",
            "--root",
            &good_s,
            "--iptables-save",
            "mailcow.iptables",
        ],
    );
    assert!(text.starts_with("doctor: 0 fail"), "{text}");
    assert!(!text.contains("hardening.ssh.root-login"), "{text}");

    // Bad input: a missing listing file is a clear error, exit 2.
    let (code, _, err) = doctor(
        dir.path(),
        &["hardening", "--root", &good_s, "--nft-ruleset", "nope"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = doctor(dir.path(), &["hardening", "--json", "--all"]);
    assert!(code == 0 || code == 1, "{code}: {err}");
    let got = ids(&out);
    // The live run always judges brute-force protection and logging.
    assert!(
        got.iter().any(|(id, _)| id.starts_with("hardening.bruteforce.")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|(id, _)| id.starts_with("hardening.logging.")),
        "{got:?}"
    );
}

/// `--evidence`: every file read is copied with its SHA-256 (checked with
/// the real `sha256sum -c`), secrets are redacted, the collection log says
/// what was read, a second run into the same directory is refused, and
/// `--tar` packs the bundle.
#[test]
fn the_evidence_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write(&root, "/etc/ssh/sshd_config", "PermitRootLogin no\n");
    write(
        &root,
        "/opt/mailcow-dockerized/mailcow.conf",
        "MAILCOW_HOSTNAME=mail.example.org\nDBPASS=correct-horse-battery\nLOG_LINES=9999\n",
    );
    write(dir.path(), "fw.iptables", "*filter\n:INPUT DROP [0:0]\nCOMMIT\n");
    let root_s = root.display().to_string();
    let args = [
        "hardening",
        "--root",
        &root_s,
        "--iptables-save",
        "fw.iptables",
        "--evidence",
        "bundle",
        "--tar",
    ];
    let (code, _, err) = doctor(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("evidence:"), "{err}");
    let bundle = dir.path().join("bundle");
    let check = Command::new("sha256sum")
        .args(["-c", "manifest.sha256"])
        .current_dir(&bundle)
        .output()
        .expect("sha256sum");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let listed = String::from_utf8_lossy(&check.stdout).into_owned();
    for f in [
        "sshd_config: OK",
        "mailcow.conf: OK",
        "fw.iptables: OK",
        "findings.json: OK",
        "collection.log: OK",
    ] {
        assert!(listed.contains(f), "{f} in {listed}");
    }
    let conf_copy = bundle
        .join("files")
        .join(root.strip_prefix("/").unwrap())
        .join("opt/mailcow-dockerized/mailcow.conf");
    let conf = std::fs::read_to_string(&conf_copy).unwrap();
    assert!(
        conf.contains("DBPASS=<redacted>") && !conf.contains("correct-horse"),
        "{conf}"
    );
    assert!(conf.contains("LOG_LINES=9999"), "{conf}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["part"]
            .as_str()
            .unwrap_or_default()
            .contains("secrets redacted")),
        "{manifest:#}"
    );
    let log = std::fs::read_to_string(bundle.join("collection.log")).unwrap();
    assert!(
        log.contains("start: ") && log.contains("read ") && log.contains("end: "),
        "{log}"
    );
    let findings = std::fs::read_to_string(bundle.join("findings.json")).unwrap();
    assert!(findings.contains("hardening.ssh.root-login"), "{findings}");
    // Nothing is overwritten.
    let (code, _, err) = doctor(dir.path(), &args);
    assert_eq!(code, 2);
    assert!(err.contains("never overwritten"), "{err}");
    // The packed copy holds the same manifest.
    let tar = Command::new("tar")
        .arg("-tzf")
        .arg(dir.path().join("bundle.tar.gz"))
        .output()
        .expect("tar");
    assert!(String::from_utf8_lossy(&tar.stdout).contains("bundle/manifest.sha256"));
}
