//! `mailwarden detect`: the rule list, a replay of small real-format logs
//! (table and JSON lines, exit codes), option errors, and a replay of the
//! store in event-time order.

use crate::support::mailwarden;

/// The RFC 3339 stamp `secs` after 2024-03-11T00:00:00Z.
fn at(secs: i64) -> String {
    let t = 1_710_115_200 + secs;
    let (d, s) = (t / 86_400, t % 86_400);
    // 2024-03-11 is day 19793 since 1970; the tests stay within March.
    let day = 11 + (d - 19_793);
    format!(
        "2024-03-{day:02}T{:02}:{:02}:{:02}+00:00",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn sasl_fail(t: i64, ip: &str) -> String {
    format!(
        "{} mx postfix/submission/smtpd[2001]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        at(t)
    )
}

fn relay_denied(t: i64, ip: &str) -> String {
    format!(
        "{} mx postfix/smtpd[4001]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <victim@example.net>: \
         Relay access denied; from=<spam@example.com> to=<victim@example.net> proto=ESMTP helo=<scanner>",
        at(t)
    )
}

fn connect(t: i64) -> String {
    format!(
        "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
        at(t)
    )
}

fn imap_login(t: i64) -> String {
    format!(
        "{} mx dovecot[900]: imap-login: Login: user=<alice@example.org>, method=PLAIN, rip=192.0.2.10, \
         lip=192.0.2.1, mpid=4242, TLS, session=<s{t}>",
        at(t)
    )
}

fn write(dir: &std::path::Path, name: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn list_rules_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let r = mailwarden(dir.path(), &["detect", "--list-rules"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for id in [
        "auth-bruteforce-ip",
        "outbound-burst-account",
        "open-relay",
        "source-silent",
    ] {
        assert!(r.stdout.contains(id), "{id} missing:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("failures=10 window=600s"), "{}", r.stdout);
    let r = mailwarden(
        dir.path(),
        &[
            "detect",
            "--list-rules",
            "--json",
            "--set",
            "auth-bruteforce-ip.failures=20",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rules = r.json();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 25);
    let bf = rules.iter().find(|r| r["id"] == "auth-bruteforce-ip").unwrap();
    assert_eq!(bf["values"]["failures"], 20);
    assert_eq!(bf["attack"][0], "T1110.001");
    assert!(bf["rationale"].as_str().unwrap().contains("600 s"));
}

#[test]
fn replay_a_small_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = Vec::new();
    for i in 0..12 {
        lines.push(sasl_fail(i * 30, "203.0.113.5"));
    }
    for i in 0..6 {
        lines.push(relay_denied(1000 + i * 60, "45.141.84.120"));
    }
    write(dir.path(), "mail.log", &lines);

    let r = mailwarden(dir.path(), &["detect", "--replay", "mail.log"]);
    assert_eq!(r.code, 1, "alerts exit 1: {}", r.stderr);
    assert!(r.stdout.starts_with("SEVERITY"), "{}", r.stdout);
    assert!(r.stdout.contains("auth-bruteforce-ip"), "{}", r.stdout);
    assert!(r.stdout.contains("relay-attempt"), "{}", r.stdout);
    assert!(r.stdout.contains("> mail.log:1  "), "{}", r.stdout);
    assert!(r.stderr.contains("2 alerts from 18 lines"), "{}", r.stderr);

    let r = mailwarden(dir.path(), &["detect", "--replay", "mail.log", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let alerts = r.json_lines();
    assert_eq!(alerts.len(), 2);
    let bf = &alerts[0];
    assert_eq!(bf["rule"], "auth-bruteforce-ip");
    assert_eq!(bf["key"], "203.0.113.5");
    assert_eq!(bf["count"], 12);
    assert_eq!(bf["severity"], "high");
    assert_eq!(bf["first"], "2024-03-11T00:00:00.000000Z");
    assert_eq!(bf["evidence"][0]["at"], "mail.log:1");
    assert!(bf["evidence"][0]["text"].as_str().unwrap().contains("SASL LOGIN"));
    assert_eq!(alerts[1]["rule"], "relay-attempt");

    // One rule only, and a stricter threshold.
    let r = mailwarden(
        dir.path(),
        &[
            "detect",
            "--replay",
            "mail.log",
            "--json",
            "--rule",
            "relay-attempt",
            "--set",
            "relay-attempt.attempts=7",
        ],
    );
    assert_eq!(r.code, 0, "no alert exits 0: {}", r.stderr);
    assert!(r.stdout.is_empty());

    // Clean traffic: no alerts.
    write(dir.path(), "clean.log", &(0..50).map(connect).collect::<Vec<_>>());
    let r = mailwarden(dir.path(), &["detect", "--replay", "clean.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "No alerts.\n");
}

#[test]
fn a_directory_names_senders_that_are_no_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("addresses.txt"), "erin@example.org\n@example.org\n").unwrap();
    let submission = |from: &str| {
        vec![
            format!(
                "{} mx postfix/submission/smtpd[3001]: 4D1A2B3C4D: client=unknown[203.0.113.12], \
                 sasl_method=PLAIN, sasl_username=erin@example.org",
                at(0)
            ),
            format!(
                "{} mx postfix/cleanup[3002]: 4D1A2B3C4D: message-id=<x@example.org>",
                at(0)
            ),
            format!(
                "{} mx postfix/qmgr[3003]: 4D1A2B3C4D: from=<{from}>, size=1234, nrcpt=1 (queue active)",
                at(0)
            ),
        ]
    };
    write(d, "spoof.log", &submission("xyovt@example.org"));
    write(d, "fine.log", &submission("erin@example.org"));
    let r = mailwarden(
        d,
        &[
            "detect",
            "--replay",
            "spoof.log",
            "--directory",
            "addresses.txt",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let alerts = r.json_lines();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["rule"], "sender-not-mailbox");
    assert_eq!(alerts[0]["key"], "xyovt@example.org");
    let r = mailwarden(
        d,
        &["detect", "--replay", "fine.log", "--directory", "addresses.txt"],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A broken list is an error naming the file.
    std::fs::write(d.join("bad.txt"), "erin@example.org\nnot an address\n").unwrap();
    let r = mailwarden(d, &["detect", "--replay", "fine.log", "--directory", "bad.txt"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.txt"), "{}", r.stderr);
}

#[test]
fn bad_options_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mail.log", &[connect(0)]);
    let r = mailwarden(
        dir.path(),
        &[
            "detect",
            "--replay",
            "mail.log",
            "--set",
            "auth-bruteforce-ip.failures=0",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("out of range") && r.stderr.contains("fix"),
        "{}",
        r.stderr
    );
    let r = mailwarden(
        dir.path(),
        &["detect", "--replay", "mail.log", "--rule", "no-such-rule"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--list-rules"), "{}", r.stderr);
    let r = mailwarden(dir.path(), &["detect", "--replay", "missing.log"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = mailwarden(dir.path(), &["detect"]);
    assert_eq!(r.code, 2, "--replay or --store is required: {}", r.stderr);
    let r = mailwarden(
        dir.path(),
        &["detect", "--replay", "mail.log", "--trusted-relay", "nonsense"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("172.22.1.0/24"), "{}", r.stderr);
}

#[test]
fn the_store_replays_sources_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Postfix logs for 28 hours; Dovecot stops after 26.
    let postfix: Vec<String> = (0..28 * 60).map(|m| connect(m * 60)).collect();
    let dovecot: Vec<String> = (0..26 * 60).map(|m| imap_login(m * 60 + 1)).collect();
    write(d, "mail.log", &postfix);
    write(d, "dovecot.log", &dovecot);
    let data = d.join("data");
    let data_s = data.to_str().unwrap();
    let r = mailwarden(d, &["ingest", "--data-dir", data_s, "mail.log", "dovecot.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = mailwarden(d, &["detect", "--store", "--data-dir", data_s, "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let alerts = r.json_lines();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["rule"], "source-silent");
    assert_eq!(alerts[0]["key"], "dovecot@mx");
    let at = alerts[0]["evidence"][0]["at"].as_str().unwrap();
    assert!(at.starts_with("store:2024-03-12#"), "{at}");

    // Files read one after the other are not compared (documented).
    let r = mailwarden(d, &["detect", "--replay", "mail.log", "dovecot.log"]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // --since limits the replay.
    let r = mailwarden(
        d,
        &[
            "detect",
            "--store",
            "--data-dir",
            data_s,
            "--since",
            "2024-03-12T12:00:00Z",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
}
