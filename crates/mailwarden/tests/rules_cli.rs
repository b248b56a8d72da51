//! `mailwarden rules` and `detect --rules`, run as the built binary: checking
//! files (exit codes, FILE:LINE:COL), trying rules on real-format logs with
//! --expect, listing and showing rules, and the fields of the bundled
//! sample's events accepted by the checker.

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::{Run, mailwarden};

/// The repository's example rule file.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules/example.yaml")
}

/// The RFC 3339 stamp `secs` after 2024-03-11T00:00:00Z (within the hour).
fn at(secs: i64) -> String {
    format!("2024-03-11T00:{:02}:{:02}+00:00", secs / 60, secs % 60)
}

fn sasl_fail(t: i64, ip: &str) -> String {
    format!(
        "{} mx postfix/submission/smtpd[2001]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        at(t)
    )
}

fn sogo_ok(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx sogod[77]: SOGoRootPage successful login from '{ip}' for user '{user}' - expire = -1  grace = -1",
        at(t)
    )
}

const RULES: &str = "\
rules:
  - id: sasl-failures
    title: SASL failures from one address
    severity: medium
    detection:
      selection:
        kind: postfix
        event: sasl_auth_failed
    group_by: client_ip
    timeframe: 5m
    threshold: 3
  - id: sogo-watched
    title: SOGo login from a watched network
    severity: high
    detection:
      selection:
        kind: sogo
        event: login_succeeded
        client_ip|cidr: 203.0.113.0/24
    group_by: client_ip
";

/// A temp dir with `rules.yaml` and `mail.log`: three SASL failures from one
/// address (one alert), two from another (none), two SOGo logins from the
/// watched network (one alert) and one from elsewhere.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap();
    let lines = [
        sasl_fail(0, "198.51.100.7"),
        sasl_fail(10, "198.51.100.7"),
        sasl_fail(20, "198.51.100.8"),
        sasl_fail(30, "198.51.100.7"),
        sasl_fail(40, "198.51.100.8"),
        sogo_ok(50, "203.0.113.5", "alice@example.org"),
        sogo_ok(60, "203.0.113.5", "alice@example.org"),
        sogo_ok(70, "192.0.2.1", "bob@example.org"),
    ];
    std::fs::write(dir.path().join("mail.log"), lines.join("\n") + "\n").unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Run {
    mailwarden(dir, args)
}

#[test]
fn check_accepts_the_example_file() {
    let dir = tempfile::tempdir().unwrap();
    let ex = example();
    let r = run(dir.path(), &["rules", "check", ex.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("example.yaml: 7 rules OK"), "{}", r.stdout);
}

#[test]
fn check_reports_every_mistake_as_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "rules:\n  - id: x\n    title: X\n    severity: hgh\n    detection:\n      selection:\n        \
               kind: sogo\n        client_ip|cidrr: 10.0.0.0/8\n      condition: selection or nope\n    \
               timeframe: 5 minutes\n";
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let r = run(dir.path(), &["rules", "check", "bad.yaml"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(
        lines[0].starts_with("bad.yaml:4:15: unknown severity `hgh`; fix: "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("bad.yaml:8:9: unknown modifier `cidrr`"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("did you mean `cidr`"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("bad.yaml:9:31: the condition names `nope`"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("bad.yaml:10:16: `timeframe` is `5 minutes`"),
        "{}",
        lines[3]
    );
    assert!(r.stderr.contains("4 mistakes in 1 file"), "{}", r.stderr);
    // As JSON.
    let r = run(dir.path(), &["rules", "check", "--json", "bad.yaml"]);
    assert_eq!(r.code, 1);
    let errs = r.json_lines();
    assert_eq!(errs.len(), 4);
    assert_eq!(errs[0]["line"], 4);
    assert_eq!(errs[0]["column"], 15);
    assert!(errs[0]["fix"].as_str().unwrap().contains("high"));
    // A YAML syntax error.
    std::fs::write(
        dir.path().join("syntax.yaml"),
        "rules:\n  - id: x\n    title: [oops\n",
    )
    .unwrap();
    let r = run(dir.path(), &["rules", "check", "syntax.yaml"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.starts_with("syntax.yaml:") && r.stdout.contains(": YAML: "),
        "{}",
        r.stdout
    );
}

#[test]
fn check_reads_directories_and_ids_must_be_unique_across_files() {
    let dir = setup();
    let d = dir.path().join("rules.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a.yaml"), RULES).unwrap();
    std::fs::write(d.join("README"), "not a rule file").unwrap();
    let r = run(dir.path(), &["rules", "check", "rules.d"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("a.yaml: 2 rules OK"), "{}", r.stdout);
    std::fs::write(d.join("b.yml"), RULES).unwrap();
    let r = run(dir.path(), &["rules", "check", "rules.d"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("b.yml:2:9: the id `sasl-failures` is already used by the rule at"),
        "{}",
        r.stdout
    );
    // An unreadable path is an error (2), not a mistake in a rule.
    let r = run(dir.path(), &["rules", "check", "missing.yaml"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("missing.yaml"), "{}", r.stderr);
}

#[test]
fn test_runs_only_the_files_rules_and_checks_the_count() {
    let dir = setup();
    let args = ["rules", "test", "rules.yaml", "--events", "mail.log"];
    let r = run(dir.path(), &[&args[..], &["--expect", "2"]].concat());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("sasl-failures") && r.stdout.contains("client_ip=198.51.100.7"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("sogo-watched") && r.stdout.contains("client_ip=203.0.113.5"),
        "{}",
        r.stdout
    );
    // Only the file's rules: the built-ins stay silent.
    assert!(!r.stdout.contains("auth-"), "{}", r.stdout);
    let r = run(dir.path(), &[&args[..], &["--expect", "3"]].concat());
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("expected 3 alerts, got 2"), "{}", r.stderr);
    let r = run(dir.path(), &[&args[..], &["--json"]].concat());
    assert_eq!(r.code, 0);
    let alerts = r.json_lines();
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, vec!["sasl-failures", "sogo-watched"]);
    assert_eq!(alerts[0]["count"], 3);
    assert_eq!(alerts[1]["count"], 2);
    assert_eq!(alerts[0]["evidence"][0]["at"], "mail.log:1");
}

#[test]
fn detect_runs_user_rules_beside_the_built_ins() {
    let dir = setup();
    let r = run(
        dir.path(),
        &[
            "detect",
            "--replay",
            "mail.log",
            "--rules",
            "rules.yaml",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "alerts exit 1: {}{}", r.stdout, r.stderr);
    let rules: BTreeSet<String> = r
        .json_lines()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        rules.contains("sasl-failures") && rules.contains("sogo-watched"),
        "{rules:?}"
    );
    // --rule selects a user rule alone.
    let r = run(
        dir.path(),
        &[
            "detect",
            "--replay",
            "mail.log",
            "--rules",
            "rules.yaml",
            "--rule",
            "sogo-watched",
            "--json",
        ],
    );
    let rules: Vec<String> = r
        .json_lines()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rules, vec!["sogo-watched".to_owned()]);
    // Broken rules: nothing runs, every mistake is named.
    std::fs::write(
        dir.path().join("bad.yaml"),
        RULES.replace("threshold: 3", "threshold: 0"),
    )
    .unwrap();
    let r = run(
        dir.path(),
        &["detect", "--replay", "mail.log", "--rules", "bad.yaml"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:11:16: `threshold` is 0"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn list_and_show() {
    let dir = setup();
    let r = run(dir.path(), &["rules", "list", "--rules", "rules.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("auth-bruteforce-ip") && r.stdout.contains("built-in"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("sogo-watched") && r.stdout.contains("rules.yaml:12"),
        "{}",
        r.stdout
    );
    let r = run(dir.path(), &["rules", "list", "--rules", "rules.yaml", "--json"]);
    let all = r.json();
    let list = all.as_array().unwrap();
    assert!(
        list.iter()
            .any(|x| x["id"] == "auth-bruteforce-ip" && x["origin"] == "built-in")
    );
    let user = list.iter().find(|x| x["id"] == "sasl-failures").unwrap();
    assert_eq!(user["origin"], "user");
    assert_eq!(user["threshold"], 3);
    assert_eq!(user["timeframe_secs"], 300);
    // A user rule: its settings and its text as written.
    let r = run(
        dir.path(),
        &["rules", "show", "sogo-watched", "--rules", "rules.yaml"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("origin    rules.yaml:12"), "{}", r.stdout);
    assert!(
        r.stdout.contains("client_ip|cidr: 203.0.113.0/24"),
        "{}",
        r.stdout
    );
    // A built-in rule: rationale and parameters with ranges.
    let r = run(dir.path(), &["rules", "show", "auth-bruteforce-ip"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Why:") && r.stdout.contains("failures"),
        "{}",
        r.stdout
    );
    let r = run(dir.path(), &["rules", "show", "no-such-rule"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--rules PATH"), "{}", r.stderr);
}

/// Every key path of a JSON value (arrays give their elements' paths).
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                key_paths(x, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_of_the_samples_events_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["logs", "parse", "--sample"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut paths = BTreeSet::new();
    for ev in r.json_lines() {
        key_paths(&ev, "", &mut paths);
    }
    // `input` is the file `logs parse` read, not a field of the event.
    paths.remove("input");
    assert!(paths.len() > 40, "{paths:?}");
    let mut yaml = String::from(
        "rules:\n  - id: every-field\n    title: Every field\n    severity: low\n    detection:\n      fields:\n",
    );
    for p in &paths {
        yaml.push_str(&format!("        - '{p}|exists': true\n"));
    }
    std::fs::write(dir.path().join("fields.yaml"), &yaml).unwrap();
    let r = run(dir.path(), &["rules", "check", "fields.yaml"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
