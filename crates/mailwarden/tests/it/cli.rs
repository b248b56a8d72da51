//! The built binary on hostile and odd input, its exit codes, and a snapshot
//! of the summary on the bundled sample.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::support::{mailwarden, mailwarden_stdin};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn summary_of_the_bundled_sample() {
    let dir = tempdir();
    let r = mailwarden(dir.path(), &["logs", "summary", "--sample"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("sample_summary", r.stdout);
}

#[test]
fn sample_summary_json_accounts_for_every_line() {
    let dir = tempdir();
    let r = mailwarden(dir.path(), &["logs", "summary", "--sample", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = r.json();
    let lines = &s["lines"];
    assert_eq!(
        lines["total"],
        lines["events"].as_u64().unwrap() + lines["unparsed"].as_u64().unwrap()
    );
    assert_eq!(lines["unparsed"], 0);
    let inputs: u64 = s["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(lines["total"], inputs);
    // The sample's incident: a spoofed local sender and a compromised account.
    let spoof = &s["unauthenticated_senders"][0];
    assert_eq!(spoof["claims_local_domain"], true, "{spoof:#}");
    assert_eq!(s["sasl"]["users"][0]["user"], "carol@lab.test");
}

#[test]
fn bad_lines_become_counted_unparsed_records_with_positions() {
    let dir = tempdir();
    let mut data: Vec<u8> = Vec::new();
    data.extend_from_slice(b"2023-03-14T00:00:01+01:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n");
    data.extend_from_slice(b"\x00\x01\x02binary\xff\xfe garbage\n"); // 2: binary
    data.extend_from_slice(
        b"2023-03-14T00:00:02+01:00 mx postfix/smtpd[1]: disconnect from a[192.0.2.1] ehlo=1 commands=1\n",
    );
    data.extend_from_slice(&vec![b'A'; 200_000]); // 4: megabytes-class line
    data.push(b'\n');
    data.extend_from_slice(
        b"2023-03-14T00:00:03+01:00 mx postfix/smtpd[1]: connect from \xc3\x28bad-utf8[192.0.2.2]\n",
    ); // 5
    data.extend_from_slice(b"2023-03-14T00:00:04+01:00 mx someprogram[7]: hello\n"); // 6: unknown program
    data.extend_from_slice(b"2023-03-13T23:00:00+01:00 mx postfix/smtpd[1]: connect from b[192.0.2.3]\n"); // 7: out of order
    data.extend_from_slice(b"2023-03-14T00:00:05+01:00 mx postfix/smtpd[1]: a new kind of line\n"); // 8
    data.extend_from_slice(b"2023-03-14T00:00:05+01:00 mx postfix/smtpd[1]: connect from trunc"); // 9: truncated, no newline
    std::fs::write(dir.path().join("bad.log"), &data).unwrap();

    let r = mailwarden(dir.path(), &["logs", "parse", "--unparsed", "bad.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: Vec<(u64, String)> = r
        .json_lines()
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [
        (2, "binary"),
        (4, "too_long"),
        (6, "unknown_program"),
        (8, "unrecognized_postfix"),
        (9, "unrecognized_postfix"),
    ]
    .iter()
    .map(|(l, r)| (*l, r.to_string()))
    .collect();
    assert_eq!(got, want);
    // The kept text of a too-long line is bounded.
    let long = r.json_lines().into_iter().find(|l| l["line"] == 4).unwrap();
    assert_eq!(long["text"].as_str().unwrap().len(), 65_536);

    let r = mailwarden(dir.path(), &["logs", "parse", "--count", "bad.log"]);
    let c = r.json();
    assert_eq!(c["lines"], 9);
    assert_eq!(c["events_by_family"]["postfix"], 4, "{c:#}");
    assert_eq!(c["events_by_family"]["unparsed"], 5);
}

#[test]
fn unreadable_inputs_are_named_and_the_rest_is_read() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("ok.log"),
        "2023-03-14T00:00:01+01:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let r = mailwarden(
        dir.path(),
        &["logs", "parse", "--count", "missing.log", "adir", "ok.log"],
    );
    assert_eq!(r.code, 2, "exit 2 when an input failed");
    assert!(r.stderr.contains("missing.log: no such file"), "{}", r.stderr);
    assert!(r.stderr.contains("adir: is a directory"), "{}", r.stderr);
    assert_eq!(r.json()["lines"], 1, "the readable input was still processed");
}

#[test]
fn stdin_and_compressed_input() {
    let dir = tempdir();
    let text = b"2023-03-14T00:00:01+01:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n";
    let mut gz = flate2_gzip(text);
    let r = mailwarden_stdin(dir.path(), &["logs", "parse", "--count", "-"], &gz);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["events_by_family"]["postfix"], 1);
    // A truncated .gz (a rotation in progress) is a read error naming the file.
    gz.truncate(gz.len() - 10);
    std::fs::write(dir.path().join("mail.log.1.gz"), &gz).unwrap();
    let r = mailwarden(dir.path(), &["logs", "parse", "--count", "mail.log.1.gz"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("mail.log.1.gz: read error"), "{}", r.stderr);
}

/// gzip via the system's gzip: the test must not need a compression crate.
fn flate2_gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn search_exit_codes_and_filters() {
    let dir = tempdir();
    let r = mailwarden(
        dir.path(),
        &["logs", "search", "--sample", "--sender", "nobody@nowhere.example"],
    );
    assert_eq!(r.code, 1, "no match exits 1");
    assert!(r.stderr.contains("no match"));

    let r = mailwarden(
        dir.path(),
        &[
            "logs",
            "search",
            "--sample",
            "--sasl-user",
            "carol@lab.test",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hits = r.json_lines();
    assert!(hits.len() >= 20, "carol's burst: {}", hits.len());
    assert!(hits.iter().all(|h| h["sasl_username"] == "carol@lab.test"));

    let r = mailwarden(
        dir.path(),
        &[
            "logs",
            "search",
            "--sample",
            "--sender",
            "@lab.test",
            "--client-ip",
            "127.0.0.6",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("ceo@lab.test") && r.stdout.contains("not authenticated"),
        "{}",
        r.stdout
    );

    let r = mailwarden(
        dir.path(),
        &[
            "logs",
            "search",
            "--sample",
            "--client-ip",
            "127.0.0.3",
            "--lines",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.lines().all(|l| l.contains("127.0.0.3")), "{}", r.stdout);
    assert!(r.stdout.contains("Relay access denied"));

    let r = mailwarden(
        dir.path(),
        &["logs", "search", "--sample", "--since", "yesterday"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--since") && r.stderr.contains("cannot read time"),
        "{}",
        r.stderr
    );
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let dir = tempdir();
    let line = "2023-03-14T00:00:01+01:00 mx postfix/smtpd[1]: warning: non-SMTP command from unknown[192.0.2.9]: \x1b]0;owned\x07\x1b[2J\n";
    std::fs::write(dir.path().join("evil.log"), line).unwrap();
    let r = mailwarden(dir.path(), &["logs", "summary", "evil.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains('\x1b'), "raw ESC in output");
    let r = mailwarden(
        dir.path(),
        &[
            "logs",
            "search",
            "--client-ip",
            "192.0.2.9",
            "--lines",
            "evil.log",
        ],
    );
    assert!(
        !r.stdout.contains('\x1b') && r.stdout.contains("\\x1b"),
        "{}",
        r.stdout
    );
}

#[test]
fn closed_pipe_ends_quietly() {
    let dir = tempdir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .args(["logs", "parse", "--sample"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with('{'));
    drop(out);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn flag_errors_name_the_fix() {
    let dir = tempdir();
    let r = mailwarden(dir.path(), &["logs", "parse", "--format", "syslog9", "--sample"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("expected one of"), "{}", r.stderr);
    let r = mailwarden(
        dir.path(),
        &["logs", "parse", "--timezone", "Mars/Olympus", "--sample"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("IANA name"), "{}", r.stderr);
    let r = mailwarden(
        dir.path(),
        &["logs", "summary", "--horizon", "3 fortnights", "--sample"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid duration"), "{}", r.stderr);
}
