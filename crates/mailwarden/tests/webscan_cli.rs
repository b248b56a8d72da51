//! `mailwarden webscan` run as a program on trees made here: exit codes,
//! the table (escaped), JSON lines, SARIF, and a baseline written and
//! checked. The malicious sample is a one-line request-to-eval backdoor
//! written for this test (the published "China Chopper" technique).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// A minimal backdoor: code from a POST field straight into eval.
const BACKDOOR: &[u8] = b"<?php @eval($_POST['cmd']); ?>\n";
/// Harmless PHP.
const BENIGN: &[u8] =
    b"<?php\nfunction greet(string $name): string {\n    return 'Hello, ' . htmlspecialchars($name);\n}\n";

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn webscan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .arg("webscan")
        .arg("--root")
        .arg("/nonexistent")
        .args(args)
        .output()
        .expect("mailwarden runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn clean_tree_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.php", BENIGN);
    write(dir.path(), "style.css", b"body { color: black }\n");
    let o = webscan(&[s(dir.path())]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("2 files seen, 2 scanned, 0 skipped, 0 errors, 0 allowed"),
        "{out}"
    );
    assert!(out.contains("0 malicious, 0 suspicious"), "{out}");
    assert!(out.contains("files/s") && out.contains("MB/s"), "{out}");
    assert!(out.contains("integrity: not checked"), "{out}");
}

#[test]
fn backdoor_exits_1_with_a_table() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.php", BENIGN);
    write(dir.path(), "uploads/x.php", BACKDOOR);
    let o = webscan(&["--no-progress", s(dir.path())]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("VERDICT") && out.contains("SCORE") && out.contains("PATH"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.contains("uploads/x.php"))
        .expect("row for the backdoor");
    assert!(row.starts_with("malicious"), "{row}");
    assert!(out.contains("line 1"), "{out}");
    // --min-verdict does not hide what decides the exit code's meaning.
    let o = webscan(&["--min-verdict", "malicious", s(dir.path())]);
    assert_eq!(code(&o), 1);
}

#[test]
fn errors_exit_2_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.php", BENIGN);
    let missing = dir.path().join("no-such-dir");
    let o = webscan(&[s(&missing)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains(s(&missing)), "{}", stderr(&o));

    let bad_allow = dir.path().join("missing.allow");
    let o = webscan(&["--allow", s(&bad_allow), s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("missing.allow") && stderr(&o).contains("sha256:HEX"),
        "{}",
        stderr(&o)
    );

    let bad_base = dir.path().join("missing.json");
    let o = webscan(&["--baseline", s(&bad_base), s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("missing.json") && stderr(&o).contains("--write-baseline"),
        "{}",
        stderr(&o)
    );

    let o = webscan(&["--baseline", "git", s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not inside a git checkout"), "{}", stderr(&o));

    let o = webscan(&["--install-time", "yesterday", s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("RFC 3339"), "{}", stderr(&o));

    // A file that cannot be read, and nothing found: exit 2, the scan done.
    std::os::unix::fs::symlink("nowhere", dir.path().join("dangling.php")).unwrap();
    let o = webscan(&[s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(
        stdout(&o).contains("dangling.php: dangling symbolic link"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_records_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.php", BENIGN);
    write(dir.path(), "img/x.php", BACKDOOR);
    std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
    let o = webscan(&["--json", s(dir.path())]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let recs = json_lines(&o);
    let files: Vec<&Value> = recs.iter().filter(|r| r["type"] == "file").collect();
    assert_eq!(files.len(), 1, "{recs:?}");
    let f = files[0];
    assert_eq!(f["path"], s(&dir.path().join("img/x.php")));
    assert_eq!(f["verdict"], "malicious");
    assert!(f["score"].as_u64().unwrap() > 0);
    assert_eq!(f["size"], BACKDOOR.len() as u64);
    assert!(f["mtime"].as_i64().unwrap() > 0);
    assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
    let reasons = f["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty());
    for r in reasons {
        for key in ["id", "layer", "strength", "weight", "message", "lines"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    assert!(
        reasons
            .iter()
            .any(|r| r["lines"].as_array().unwrap().contains(&Value::from(1)))
    );
    let errors: Vec<&Value> = recs.iter().filter(|r| r["type"] == "error").collect();
    assert_eq!(errors.len(), 1);
    let sum = recs.last().unwrap();
    assert_eq!(sum["type"], "summary");
    assert_eq!(sum["files_seen"], 3);
    assert_eq!(sum["files_scanned"], 2);
    assert_eq!(sum["errors"], 1);
    assert_eq!(sum["malicious"], 1);
    assert!(sum["seconds"].as_f64().is_some() && sum["files_per_second"].as_f64().is_some());
}

#[test]
fn sarif_structure() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a dir/shell #1.php", BACKDOOR);
    write(dir.path(), "ok.php", BENIGN);
    let o = webscan(&["--sarif", s(dir.path())]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &v["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "mailwarden");
    assert!(driver["version"].is_string() && driver["informationUri"].is_string());
    let rules: Vec<&str> = driver["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["shortDescription"]["text"].is_string());
            r["id"].as_str().unwrap()
        })
        .collect();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert!(rules.contains(&r["ruleId"].as_str().unwrap()));
    assert_eq!(r["level"], "error");
    assert!(r["message"]["text"].as_str().unwrap().starts_with("malicious"));
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "a%20dir/shell%20%231.php");
    assert_eq!(loc["region"]["startLine"], 1);
    let base = loc["artifactLocation"]["uriBaseId"].as_str().unwrap();
    assert!(
        run["originalUriBaseIds"][base]["uri"]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    );
}

#[test]
fn write_baseline_then_check_it() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    write(&web, "index.php", BENIGN);
    write(&web, "old.php", BENIGN);
    let base = dir.path().join("web.baseline.json");
    let o = webscan(&["--write-baseline", s(&base), s(&web)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("baseline of 2 files written"),
        "{}",
        stderr(&o)
    );
    let m: Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    assert_eq!(m["format"], 1);
    assert_eq!(m["files"].as_array().unwrap().len(), 2);

    write(&web, "index.php", b"<?php\necho 'changed';\n");
    write(&web, "added.php", BENIGN);
    std::fs::remove_file(web.join("old.php")).unwrap();
    let o = webscan(&["--json", "--baseline", s(&base), s(&web)]);
    let recs = json_lines(&o);
    let reason_ids = |rel: &str| -> Vec<String> {
        recs.iter()
            .find(|r| r["type"] == "file" && r["path"].as_str().unwrap().ends_with(rel))
            .map(|r| {
                r["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        reason_ids("index.php")
            .iter()
            .any(|i| i.starts_with("integrity.")),
        "{recs:?}"
    );
    assert!(
        reason_ids("added.php")
            .iter()
            .any(|i| i.starts_with("integrity.")),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .any(|r| r["type"] == "missing" && r["path"] == "old.php"),
        "{recs:?}"
    );
    assert_eq!(recs.last().unwrap()["missing"], 1);

    let o = webscan(&["--baseline", s(&base), s(&web)]);
    assert!(
        stdout(&o).contains("missing since the baseline"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn table_escapes_file_names_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let name = "x\u{1b}[2J\u{1b}]0;owned\u{7}.php";
    write(dir.path(), name, BACKDOOR);
    let o = webscan(&[s(dir.path())]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "raw control characters in {out:?}"
    );
    assert!(out.contains("x\\x1b[2J\\x1b]0;owned\\x07.php"), "{out}");
    // JSON keeps the real name (escaped by JSON itself).
    let recs = json_lines(&webscan(&["--json", s(dir.path())]));
    assert!(recs[0]["path"].as_str().unwrap().ends_with(name));
}

#[test]
fn allow_file_hides_files() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    write(&web, "tools/x.php", BACKDOOR);
    let allow = dir.path().join("webscan.allow");
    std::fs::write(&allow, "# a reviewed admin tool\npath:tools/*.php\n").unwrap();
    let o = webscan(&["--allow", s(&allow), s(&web)]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("1 allowed"), "{}", stdout(&o));
}

#[test]
fn help_has_examples() {
    let o = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
        .args(["webscan", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    for needle in [
        "Examples:",
        "--baseline",
        "--write-baseline",
        "--sarif",
        "Exit status",
        "sha256:",
    ] {
        assert!(out.contains(needle), "{needle} missing in --help");
    }
}
