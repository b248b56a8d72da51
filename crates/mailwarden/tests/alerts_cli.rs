//! `mailwarden alerts` on a temporary data directory: alerts seeded through
//! the store's API (as `serve` records them), then listed, shown,
//! acknowledged, suppressed — while a writer holds the store's lock — with
//! their text and JSON output, exit codes and error messages.

use std::path::Path;
use std::process::{Command, Stdio};

use mailwarden_core::detect::Alert;
use mailwarden_core::time::Timestamp;
use mailwarden_store::{AlertStore, RecordOutcome, RecordPolicy, Store, StoreConfig};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
            .collect()
    }
}

/// Runs `mailwarden alerts ARGS --data-dir DATA` as user `tester`.
fn alerts(data: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .arg("alerts")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("RUST_LOG")
        .env_remove("SUDO_USER")
        .env_remove("MAILWARDEN_DATA_DIR")
        .env("USER", "tester")
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

/// 2024-03-11T00:00:00Z.
const T0: i64 = 1_710_115_200;

fn t(secs: i64) -> String {
    Timestamp {
        unix_micros: (T0 + secs) * 1_000_000,
        offset_secs: 3600,
    }
    .to_string()
}

/// An alert as the engine raises it; the key and evidence carry terminal
/// control characters, as attacker-chosen text can.
fn alert(rule: &str, severity: &str, key: &str, first: i64, last: i64, count: u64) -> Alert {
    serde_json::from_value(serde_json::json!({
        "rule": rule,
        "title": format!("title of {rule}"),
        "severity": severity,
        "attack": ["T1110.001"],
        "key": key,
        "first": t(first),
        "last": t(last),
        "count": count,
        "message": format!("{count} failed logins from {key}"),
        "facts": {"user": ["alice@example.org", "admin\u{1b}[2J"]},
        "evidence": [{
            "kind": "line",
            "position": {"source": 0, "line": 42},
            "at": "mail.log:42",
            "ts": t(first),
            "text": "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed \u{1b}]0;owned\u{7}"
        }],
        "evidence_omitted": 3
    }))
    .expect("alert JSON")
}

/// A store with three alerts: two open (one high, one medium), one repeat
/// merged into the first.
fn seeded() -> (tempfile::TempDir, std::path::PathBuf, [i64; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Store::open(StoreConfig::new(&data)).unwrap());
    let a = AlertStore::open(&data).unwrap();
    let now = Timestamp::from_unix_seconds(T0 + 86_400);
    let p = RecordPolicy::default();
    let bf = a
        .record(
            &alert("auth-bruteforce-ip", "high", "ip=203.0.113.5", 0, 600, 40),
            now,
            &p,
        )
        .unwrap();
    assert_eq!(bf.outcome, RecordOutcome::New);
    let repeat = a
        .record(
            &alert("auth-bruteforce-ip", "high", "ip=203.0.113.5", 3000, 3100, 10),
            now,
            &p,
        )
        .unwrap();
    assert_eq!((repeat.id, repeat.outcome), (bf.id, RecordOutcome::Merged));
    let relay = a
        .record(
            &alert("relay-attempt", "medium", "ip=198.51.100.7", 100, 200, 3),
            now,
            &p,
        )
        .unwrap();
    (dir, data, [bf.id, relay.id])
}

#[test]
fn list_show_ack_and_json() {
    let (_d, data, [bf, relay]) = seeded();

    // Default: open alerts, the latest last event first, a table.
    let r = alerts(&data, &["list"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with("   ID SEVERITY"), "{}", lines[0]);
    assert!(lines[1].contains("auth-bruteforce-ip") && lines[1].contains("ip=203.0.113.5"));
    assert!(
        lines[1].contains(" 50 ") && lines[1].contains("open"),
        "count 50: {}",
        lines[1]
    );
    assert!(
        lines[1].contains("2024-03-11 01:00:00+01:00 – 01:51:40+01:00"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("relay-attempt"));

    // Filters.
    let r = alerts(&data, &["list", "--min-severity", "high"]).ok();
    assert_eq!(r.stdout.lines().count(), 2);
    let r = alerts(&data, &["list", "--rule", "relay-attempt", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], relay);
    let r = alerts(&data, &["list", "--since", "2024-03-11T00:30:00Z", "--json"]).ok();
    assert_eq!(r.json_lines().len(), 1);
    let r = alerts(&data, &["list", "--key", "198.51", "--limit", "5", "--json"]).ok();
    assert_eq!(r.json_lines()[0]["id"], relay);

    // JSON: one object per alert, the alert's fields beside the stored state.
    let r = alerts(&data, &["list", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 2);
    let d = &docs[0];
    assert_eq!(d["id"], bf);
    assert_eq!(d["state"], "open");
    assert_eq!(d["rule"], "auth-bruteforce-ip");
    assert_eq!(d["severity"], "high");
    assert_eq!(d["key"], "ip=203.0.113.5");
    assert_eq!(d["count"], 50);
    assert_eq!(d["occurrences"], 2);
    assert_eq!(d["source"], "live");
    assert_eq!(d["first"], t(0));
    assert_eq!(d["last"], t(3100));
    assert_eq!(d["evidence"][0]["at"], "mail.log:42");
    assert!(d.get("ack_at").is_none());

    // show: everything, control characters escaped.
    let r = alerts(&data, &["show", &bf.to_string()]).ok();
    let out = &r.stdout;
    assert!(
        out.starts_with(&format!("alert {bf}  open  high  auth-bruteforce-ip\n")),
        "{out}"
    );
    assert!(out.contains("occurrences: 2"), "{out}");
    assert!(out.contains("10 failed logins from ip=203.0.113.5"), "{out}");
    assert!(out.contains("user: alice@example.org, admin\\x1b[2J"), "{out}");
    assert!(
        out.contains("> mail.log:42  warning: unknown[203.0.113.5]"),
        "{out}"
    );
    assert!(out.contains("\\x1b]0;owned\\x07"), "{out}");
    assert!(out.contains("… 3 more"), "{out}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "raw control characters: {out:?}"
    );
    let r = alerts(&data, &["show", &bf.to_string(), "--json"]).ok();
    let doc = &r.json_lines()[0];
    assert_eq!(
        doc["facts"]["user"][1], "admin\u{1b}[2J",
        "JSON keeps the text exactly"
    );

    // ack: leaves the open list, shows up as acknowledged with who and why.
    let r = alerts(
        &data,
        &["ack", &bf.to_string(), "--note", "blocked at the firewall"],
    )
    .ok();
    assert!(r.stdout.contains("acknowledged 1 alert"), "{}", r.stdout);
    assert!(r.stdout.contains("as tester"), "{}", r.stdout);
    let r = alerts(&data, &["list", "--json"]).ok();
    let open: Vec<_> = r.json_lines().iter().map(|d| d["id"].clone()).collect();
    assert_eq!(open, vec![serde_json::json!(relay)]);
    let r = alerts(&data, &["list", "--state", "acknowledged", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], bf);
    assert_eq!(docs[0]["state"], "acknowledged");
    assert_eq!(docs[0]["ack_by"], "tester");
    assert_eq!(docs[0]["ack_note"], "blocked at the firewall");
    let r = alerts(&data, &["show", &bf.to_string()]).ok();
    assert!(
        r.stdout.contains("by tester: blocked at the firewall"),
        "{}",
        r.stdout
    );
    let r = alerts(&data, &["ack", &relay.to_string(), "--by", "bob"]).ok();
    assert!(r.stdout.contains("as bob"), "{}", r.stdout);
    let r = alerts(&data, &["list"]).ok();
    assert_eq!(r.stdout, "No open alerts.\n");
    let r = alerts(&data, &["list", "--state", "all", "--json"]).ok();
    assert_eq!(r.json_lines().len(), 2);
    let r = alerts(&data, &["list", "--json"]).ok();
    assert_eq!(r.stdout, "", "an empty JSON list prints nothing");
}

#[test]
fn unknown_ids_and_bad_options_exit_2() {
    let (_d, data, [bf, _]) = seeded();
    let r = alerts(&data, &["ack", &bf.to_string(), "999"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no alert with id 999")
            && r.stderr
                .contains("`mailwarden alerts list --state all` shows the ids"),
        "{}",
        r.stderr
    );
    // Nothing was acknowledged.
    let r = alerts(&data, &["list", "--json"]).ok();
    assert_eq!(r.json_lines().len(), 2);
    let r = alerts(&data, &["show", "999"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no alert with id 999"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let r = alerts(&data, &["unsuppress", "7"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no suppression with id 7"), "{}", r.stderr);
    let r = alerts(&data, &["list", "--min-severity", "severe"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("use informational, low, medium, high or critical"),
        "{}",
        r.stderr
    );
    let r = alerts(&data, &["list", "--since", "yesterday-ish"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--since"), "{}", r.stderr);
    let long = "x".repeat(2000);
    let r = alerts(&data, &["ack", &bf.to_string(), "--note", &long]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--note is 2000 bytes long"), "{}", r.stderr);

    // No store, and a store without the alert tables.
    let empty = data.parent().unwrap().join("nothing");
    let r = alerts(&empty, &["list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no mailwarden store"), "{}", r.stderr);
    let old = data.parent().unwrap().join("old");
    std::fs::create_dir(&old).unwrap();
    write_v2_meta(&old.join("meta.sqlite"));
    let r = alerts(&old, &["ack", "1"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("start `mailwarden serve` or `ingest` once to upgrade the store"),
        "{}",
        r.stderr
    );
}

/// Writes a meta.sqlite that says schema 2, by copying a current one and
/// lowering its version (the alert handle checks the version first; the
/// store's unit tests migrate a real version 2 file).
fn write_v2_meta(path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Store::open(StoreConfig::new(&data)).unwrap());
    let bytes = std::fs::read(data.join("meta.sqlite")).unwrap();
    // The header's user_version is the big-endian u32 at offset 60.
    let mut bytes = bytes;
    bytes[60..64].copy_from_slice(&2u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn suppress_and_unsuppress_beside_a_running_writer() {
    let (_d, data, _) = seeded();
    // `serve` holds the writer lock the whole time.
    let writer = Store::open(StoreConfig::new(&data)).unwrap();

    let r = alerts(&data, &["suppressions"]).ok();
    assert_eq!(r.stdout, "No active suppressions.\n");
    let r = alerts(
        &data,
        &[
            "suppress",
            "--rule",
            "auth-bruteforce-ip",
            "--key",
            "ip=203.0.113.*",
            "--for",
            "7d",
            "--note",
            "our scanner",
        ],
    )
    .ok();
    assert!(
        r.stdout
            .starts_with("suppression 1: auth-bruteforce-ip key ip=203.0.113.* until "),
        "{}",
        r.stdout
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // The collector records a matching alert: stored as suppressed, not notified.
    let a = AlertStore::open(&data).unwrap();
    let now = mailwarden_io::pipeline::now();
    let rec = a
        .record(
            &alert("auth-bruteforce-ip", "high", "ip=203.0.113.77", 0, 10, 12),
            now,
            &RecordPolicy::default(),
        )
        .unwrap();
    assert_eq!(rec.outcome, RecordOutcome::Suppressed { suppression: 1 });
    let r = alerts(&data, &["list", "--state", "suppressed", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["key"], "ip=203.0.113.77");
    assert_eq!(docs[0]["suppression"], 1);

    let r = alerts(&data, &["suppressions", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], 1);
    assert_eq!(docs[0]["rule"], "auth-bruteforce-ip");
    assert_eq!(docs[0]["key"], "ip=203.0.113.*");
    assert_eq!(docs[0]["note"], "our scanner");
    assert_eq!(docs[0]["created_by"], "tester");
    assert_eq!(docs[0]["active"], true);
    let r = alerts(&data, &["suppressions"]).ok();
    assert!(
        r.stdout.lines().nth(1).unwrap().contains("active"),
        "{}",
        r.stdout
    );

    // A rule of every key, with a warning for an id no built-in rule has.
    let r = alerts(&data, &["suppress", "--rule", "no-such-rule", "--for", "1h"]).ok();
    assert!(r.stdout.contains("(every key)"), "{}", r.stdout);
    assert!(r.stderr.contains("not a built-in rule id"), "{}", r.stderr);

    let r = alerts(&data, &["unsuppress", "1"]).ok();
    assert!(r.stdout.contains("suppression 1 lifted"), "{}", r.stdout);
    let r = alerts(&data, &["unsuppress", "1"]).ok();
    assert!(r.stdout.contains("already expired"), "{}", r.stdout);
    let r = alerts(&data, &["suppressions", "--json"]).ok();
    assert_eq!(r.json_lines().len(), 1, "only suppression 2 is active");
    let r = alerts(&data, &["suppressions", "--all", "--json"]).ok();
    let docs = r.json_lines();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["active"], false);
    // After lifting, the next matching alert is new and notified.
    let rec = a
        .record(
            &alert("auth-bruteforce-ip", "high", "ip=203.0.113.77", 9000, 9010, 12),
            mailwarden_io::pipeline::now(),
            &RecordPolicy::default(),
        )
        .unwrap();
    assert!(rec.outcome.notify(), "{rec:?}");

    let r = alerts(&data, &["suppress", "--rule", "x", "--for", "0s"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("positive duration"), "{}", r.stderr);
    drop(writer);
}

#[test]
fn help_says_what_ack_does_to_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let r = alerts(dir.path(), &["ack", "--help"]).ok();
    let text = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("repeats of the same rule and key merge into it silently"),
        "{}",
        r.stdout
    );
    let r = alerts(dir.path(), &["--help"]).ok();
    for sub in ["list", "show", "ack", "suppress", "unsuppress", "suppressions"] {
        assert!(r.stdout.contains(sub), "{sub}: {}", r.stdout);
    }
}
