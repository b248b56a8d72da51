//! Unit tests of the Docker collector: checkpoint skipping, program hints,
//! rotated-file order, json-file synthesis and the bounded json-file reader.

use std::io::Write;

use mailwarden_core::framing::{Framer, FramerConfig};
use mailwarden_core::time::TimeContext;
use proptest::prelude::*;

use super::*;

const ID_A: &str = "4f66ad9a0b2e1d3c5e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
const ID_B: &str = "9c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d";

fn nanos(s: &str) -> i128 {
    parse_nanos(s).unwrap()
}

/// The log text of a json-file line, as Docker's framing in the core reads it.
fn framed_message(line: &str) -> String {
    let mut f = Framer::new(FramerConfig {
        format: Format::Docker,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(1_800_000_000)),
    });
    f.frame(line).unwrap().message.into_owned()
}

fn log_field(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["log"].as_str().unwrap().to_owned()
}

#[test]
fn program_hints_of_mailcow_services() {
    for (service, hint) in [
        ("postfix-mailcow", "postfix"),
        ("dovecot-mailcow", "dovecot"),
        ("rspamd-mailcow", "rspamd"),
        ("sogo-mailcow", "sogo"),
        ("mysql-mailcow", "mariadb"),
        ("nginx-mailcow", "nginx"),
        ("netfilter-mailcow", "netfilter"),
        ("php-fpm-mailcow", "php-fpm"),
        ("traefik", "traefik"),
    ] {
        assert_eq!(program_hint(Some(service), "/whatever-1"), hint, "{service}");
    }
    assert_eq!(program_hint(None, "/standalone-postfix"), "standalone-postfix");
    assert_eq!(program_hint(Some(" "), "x"), "x");
    assert_eq!(
        source_key("/mailcowdockerized-postfix-mailcow-1"),
        "docker:mailcowdockerized-postfix-mailcow-1"
    );
    assert_eq!(source_key("plain"), "docker:plain");
}

#[test]
fn rotated_files_oldest_first() {
    let names: Vec<String> = [
        format!("{ID_A}-json.log"),
        format!("{ID_A}-json.log.1"),
        format!("{ID_A}-json.log.2.gz"),
        format!("{ID_A}-json.log.10.gz"),
        format!("{ID_A}-json.log.3.gz"),
        // Compression of .4 in progress: the complete plain file wins.
        format!("{ID_A}-json.log.4"),
        format!("{ID_A}-json.log.4.gz"),
        "config.v2.json".to_owned(),
        "hostconfig.json".to_owned(),
        format!("{ID_A}-json.log.x"),
        format!("{ID_A}-json.log.1.tmp"),
        format!("{ID_B}-json.log"),
        "checkpoints".to_owned(),
    ]
    .into();
    let order = order_log_files(&names, ID_A);
    let want: Vec<String> = [".10.gz", ".4", ".3.gz", ".2.gz", ".1", ""]
        .iter()
        .map(|s| format!("{ID_A}-json.log{s}"))
        .collect();
    assert_eq!(order, want);
    assert!(order_log_files(&names, "nope").is_empty());
}

#[test]
fn cursor_skips_consumed_lines_by_stamp_and_count() {
    let id: Arc<str> = Arc::from(ID_A);
    let t1 = nanos("2024-03-14T00:00:31.5Z");
    let t2 = nanos("2024-03-14T00:00:32Z");
    let cp = Checkpoint::Docker {
        container_id: ID_A.to_owned(),
        last_nanos: t2,
        same_stamp_seen: 2,
    };
    let mut c = Cursor::from_checkpoint(Some(&cp));
    assert_eq!(c.since_secs(), 1_710_374_431);
    c.begin(ID_A);
    // Older stamps, and the two lines stamped t2 that were consumed: skipped.
    assert!(c.skip(t1));
    assert!(c.skip(t2));
    assert!(c.skip(t2));
    // A third line with the same stamp is new.
    assert!(!c.skip(t2));
    let p = c.next(&id, t2);
    assert_eq!(p.same_stamp_seen, 3);
    c.commit(p);
    // Once a line got through, nothing more is filtered (a clock step back
    // does not hide lines).
    assert!(!c.skip(t1));
    let p = c.next(&id, t1);
    assert_eq!((p.last_nanos, p.same_stamp_seen), (t1, 1));
    assert_eq!(
        checkpoint_of(&p),
        Checkpoint::Docker {
            container_id: ID_A.to_owned(),
            last_nanos: t1,
            same_stamp_seen: 1
        }
    );

    // A re-created container (same name, new id): older lines skipped, lines
    // with the very stamp are its own, not the ones counted.
    let mut c = Cursor::from_checkpoint(Some(&cp));
    c.begin(ID_B);
    assert!(c.skip(t1));
    assert!(!c.skip(t2));
    let p = c.next(&Arc::from(ID_B), t2);
    assert_eq!((&*p.container_id, p.same_stamp_seen), (ID_B, 1));

    // No checkpoint: nothing skipped, `since` 0 (everything).
    let mut c = Cursor::from_checkpoint(None);
    c.begin(ID_A);
    assert!(!c.skip(0));
    assert_eq!(c.since_secs(), 0);
    // Other checkpoint kinds are not ours.
    assert!(Cursor::from_checkpoint(Some(&Checkpoint::None)).pos.is_none());
}

#[test]
fn cursors_only_from_docker_checkpoints() {
    let mut resume = BTreeMap::new();
    resume.insert(
        "docker:a".to_owned(),
        Checkpoint::Docker {
            container_id: "x".into(),
            last_nanos: 5,
            same_stamp_seen: 1,
        },
    );
    resume.insert("docker:b".to_owned(), Checkpoint::None);
    resume.insert(
        "file:/var/log/mail.log".to_owned(),
        Checkpoint::Docker {
            container_id: "x".into(),
            last_nanos: 5,
            same_stamp_seen: 1,
        },
    );
    let c = cursors_from(&resume);
    assert_eq!(c.keys().collect::<Vec<_>>(), ["docker:a"]);
}

#[test]
fn synthesized_lines_are_docker_json_file_lines() {
    let t = nanos("2024-03-14T00:00:31.123456789Z");
    let text = "Mar 14 00:00:31 a1b2c3 postfix/smtpd[123]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <a@b.example>: Relay access denied; from=<x&y@c.example>\tto=<a@b.example>\n";
    let (line, cut) = json_file_line(text, "stdout", t, 64 * 1024);
    assert!(!cut);
    // Byte for byte what Docker's json-file driver writes for this message.
    assert_eq!(
        line,
        r#"{"log":"Mar 14 00:00:31 a1b2c3 postfix/smtpd[123]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 \u003ca@b.example\u003e: Relay access denied; from=\u003cx\u0026y@c.example\u003e\u0009to=\u003ca@b.example\u003e\n","stream":"stdout","time":"2024-03-14T00:00:31.123456789Z"}"#
    );
    assert_eq!(log_field(&line), text);
    // The core's Docker framing gives back the text (without its newline).
    assert_eq!(
        framed_message(&line),
        "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <a@b.example>: Relay access denied; from=<x&y@c.example>\tto=<a@b.example>"
    );
    // RFC3339Nano as Go writes it: trailing zeros of the fraction trimmed.
    let (line, _) = json_file_line("x", "stderr", nanos("2024-03-14T00:00:31.5Z"), 1024);
    assert_eq!(
        line,
        r#"{"log":"x","stream":"stderr","time":"2024-03-14T00:00:31.5Z"}"#
    );
    let (line, _) = json_file_line(
        "\u{1}\u{8}\u{c}\"\\\r\n\u{2028}é",
        "stdout",
        nanos("2024-03-14T00:00:31Z"),
        1024,
    );
    assert_eq!(
        line,
        r#"{"log":"\u0001\u0008\u000c\"\\\r\n\u2028é","stream":"stdout","time":"2024-03-14T00:00:31Z"}"#
    );
    // The reader of data-root files finds the stamp in a synthesized line.
    let mut r = JsonFileReader::new(line.as_bytes(), 1024);
    assert_eq!(
        r.next_line().unwrap().unwrap().nanos,
        Some(nanos("2024-03-14T00:00:31Z"))
    );
}

#[test]
fn synthesized_lines_are_bounded() {
    let t = nanos("2024-03-14T00:00:31.123Z");
    let text = format!("{}\n", "é<\u{1}".repeat(500));
    for max in [80, 100, 101, 257, 1000, 3000] {
        let (line, cut) = json_file_line(&text, "stdout", t, max);
        assert!(cut, "{max}");
        assert!(line.len() <= max, "{max}: {}", line.len());
        let log = log_field(&line);
        assert!(text.starts_with(&log), "{max}");
    }
    let (line, cut) = json_file_line(&text, "stdout", t, 100_000);
    assert!(!cut);
    assert_eq!(log_field(&line), text);
}

#[test]
fn reader_marks_stamps_garbage_and_cut_lines() {
    let data = concat!(
        r#"{"log":"Mar 14 00:00:31 a1b2 postfix/smtpd[1]: connect from x[192.0.2.1]\n","stream":"stdout","time":"2024-03-14T00:00:31.123456789Z"}"#,
        "\n",
        "not json at all\r\n",
        r#"{"stream":"stdout","time":"2024-03-14T00:00:31Z"}"#,
        "\n",
        r#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
        "\n",
        "\n",
        r#"{"log":"0123456789012345678901234567890123456789","stream":"stdout","time":"2024-03-14T00:00:32Z"}"#,
        "\n",
        "\u{ff}\u{fe}"
    );
    let mut bytes = data.as_bytes().to_vec();
    // Raw invalid UTF-8 at the end instead of the two characters.
    let n = bytes.len();
    bytes.truncate(n - 4);
    bytes.extend_from_slice(&[0xff, 0xfe]);
    let mut r = JsonFileReader::new(&bytes[..], 150);
    let mut got = Vec::new();
    while let Some(l) = r.next_line().unwrap() {
        got.push(l);
    }
    assert_eq!(got.len(), 7);
    assert_eq!(got[0].nanos, Some(nanos("2024-03-14T00:00:31.123456789Z")));
    assert!(!got[0].truncated);
    assert_eq!(got[1].line, "not json at all");
    assert_eq!(got[1].nanos, None);
    assert_eq!(got[2].nanos, None, "no log field");
    assert_eq!(got[3].nanos, None, "bad time");
    assert_eq!(got[4].line, "");
    assert_eq!(got[5].nanos, Some(nanos("2024-03-14T00:00:32Z")));
    assert_eq!(got[6].line, "\u{fffd}\u{fffd}");
    let mut r = JsonFileReader::new(&bytes[..], 40);
    let first = r.next_line().unwrap().unwrap();
    assert!(first.truncated && first.line.len() == 40 && first.nanos.is_none());
    // Replacement characters do not push a cut line over the limit.
    let mut r = JsonFileReader::new(&[0xffu8; 10][..], 7);
    let l = r.next_line().unwrap().unwrap();
    assert!(l.truncated && l.line.len() <= 7, "{:?}", l.line);
}

/// Writes a container of a data root (a minimal `config.v2.json`).
fn container(root: &Path, id: &str, name: &str, service: &str, created: &str) -> PathBuf {
    let dir = root.join("containers").join(id);
    fs::create_dir_all(&dir).unwrap();
    let cfg = serde_json::json!({
        "ID": id,
        "Created": created,
        "Name": format!("/{name}"),
        "Config": {"Labels": {(PROJECT_LABEL): "mailcowdockerized", (SERVICE_LABEL): service}},
    });
    fs::write(dir.join("config.v2.json"), cfg.to_string()).unwrap();
    dir
}

fn docker_line(text: &str, time: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"log": format!("{text}\n"), "stream": "stdout", "time": time})
    )
}

fn read_all(root: &Path, resume: &BTreeMap<String, Checkpoint>) -> (Vec<SourceRecord>, DataRootSummary) {
    let mut out = Vec::new();
    let sum = read_data_root(root, Some("mailcowdockerized"), resume, 4096, &mut |r| {
        out.push(r);
        true
    })
    .unwrap();
    (out, sum)
}

#[test]
fn resuming_after_any_record_gives_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let c = container(
        root,
        ID_A,
        "mailcowdockerized-postfix-mailcow-1",
        "postfix-mailcow",
        "2024-03-14T00:00:00Z",
    );
    // Garbage first (no stamp yet), equal stamps across a rotation boundary,
    // garbage between equal stamps, a cut line.
    let mut rotated = String::from("garbage before any stamp\n");
    rotated += &docker_line("a", "2024-03-14T00:00:31Z");
    rotated += &docker_line("b", "2024-03-14T00:00:31Z");
    let mut live = docker_line("c", "2024-03-14T00:00:31Z");
    live += "{\"log\":\"torn";
    live += "\n";
    live += &docker_line("d", "2024-03-14T00:00:31Z");
    live += &docker_line(&"long ".repeat(2000), "2024-03-14T00:00:32Z");
    live += &docker_line("e", "2024-03-14T00:00:32Z");
    live += &docker_line("f", "2024-03-14T00:00:33.000000001Z");
    fs::write(c.join(format!("{ID_A}-json.log.1")), &rotated).unwrap();
    fs::write(c.join(format!("{ID_A}-json.log")), &live).unwrap();

    let (all, sum) = read_all(root, &BTreeMap::new());
    assert_eq!(all.len(), 9);
    assert_eq!(
        (sum.containers, sum.files, sum.lines, sum.bad_lines, sum.truncated),
        (1, 2, 9, 3, 1)
    );
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert!(all.iter().all(|r| r.format == Format::Docker
        && &*r.source == "docker:mailcowdockerized-postfix-mailcow-1"
        && r.program_hint.as_deref() == Some("postfix")));
    assert!(all[6].truncated && all[6].line.len() <= 4096);
    assert_eq!(all[1].received.to_string(), "2024-03-14T00:00:31.000000Z");
    for k in 1..=all.len() {
        let resume = BTreeMap::from([(all[k - 1].source.to_string(), all[k - 1].checkpoint.clone())]);
        let (rest, sum) = read_all(root, &resume);
        assert_eq!(rest, all[k..].to_vec(), "resuming after record {k}");
        assert_eq!(sum.skipped, k as u64);
    }
}

#[test]
fn unreadable_configs_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let c = container(
        root,
        ID_A,
        "mailcowdockerized-dovecot-mailcow-1",
        "dovecot-mailcow",
        "2024-03-14T00:00:00Z",
    );
    fs::write(
        c.join(format!("{ID_A}-json.log")),
        docker_line("x", "2024-03-14T00:00:31Z"),
    )
    .unwrap();
    let bad = root.join("containers").join(ID_B);
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("config.v2.json"), "{\"ID\": ").unwrap();
    let (recs, sum) = read_all(root, &BTreeMap::new());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].program_hint.as_deref(), Some("dovecot"));
    assert_eq!(sum.errors.len(), 1);
    assert!(
        sum.errors[0].contains(&format!("{ID_B}/config.v2.json")),
        "{:?}",
        sum.errors
    );
    // No data root at all: an error naming the directory.
    let err = read_data_root(&root.join("nope"), None, &BTreeMap::new(), 100, &mut |_| true).unwrap_err();
    assert!(
        err.to_string().contains("nope/containers: no such directory"),
        "{err}"
    );
}

#[test]
fn emit_returning_false_stops_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let c = container(dir.path(), ID_A, "n", "postfix-mailcow", "2024-03-14T00:00:00Z");
    let mut f = fs::File::create(c.join(format!("{ID_A}-json.log"))).unwrap();
    for i in 0..10 {
        f.write_all(docker_line(&format!("l{i}"), "2024-03-14T00:00:31Z").as_bytes())
            .unwrap();
    }
    let mut n = 0;
    let sum = read_data_root(dir.path(), None, &BTreeMap::new(), 1000, &mut |_| {
        n += 1;
        n < 3
    })
    .unwrap();
    assert_eq!((n, sum.lines), (3, 3));
}

#[test]
fn api_frames_split_into_stamp_and_text() {
    let (t, text) = split_frame(b"2024-03-14T00:00:31.123456789Z Mar 14 00:00:31 a postfix/smtpd[1]: x\n");
    assert_eq!(t, Some(nanos("2024-03-14T00:00:31.123456789Z")));
    assert_eq!(text, b"Mar 14 00:00:31 a postfix/smtpd[1]: x\n");
    // Podman writes whole seconds.
    assert_eq!(split_frame(b"2024-03-14T00:00:31Z partial ").1, b"partial ");
    assert_eq!(split_frame(b"no stamp here\n"), (None, &b"no stamp here\n"[..]));
    assert_eq!(split_frame(b""), (None, &b""[..]));
}

/// Input lines: arbitrary bytes without newlines, some long.
fn segments() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let seg = prop_oneof![
        4 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
        1 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 60..200),
        2 => (0u32..3).prop_map(|i| docker_line("Mar 14 00:00:31 a postfix/smtpd[1]: x", &format!("2024-03-14T00:00:3{i}Z")).trim_end().as_bytes().to_vec()),
    ];
    proptest::collection::vec(seg, 0..30)
}

proptest! {
    #[test]
    fn reader_never_panics_never_drops_a_line(segs in segments(), trailing_newline in any::<bool>(), max in 1usize..120) {
        let mut data = segs.join(&b'\n');
        if trailing_newline && !segs.is_empty() {
            data.push(b'\n');
        }
        let mut r = JsonFileReader::new(&data[..], max);
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(l);
        }
        // One record per line: n-1 separators, plus the last segment unless it
        // is an empty fragment after the final newline.
        let expected = if data.is_empty() { 0 } else { data.split(|b| *b == b'\n').count() - usize::from(data.ends_with(b"\n")) };
        prop_assert_eq!(got.len(), expected);
        let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
        for (l, raw) in got.iter().zip(lines) {
            prop_assert!(l.line.len() <= max);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let full = String::from_utf8_lossy(raw);
            if l.truncated {
                prop_assert!(full.len() > max || raw.len() > max);
                prop_assert!(l.nanos.is_none());
            } else {
                prop_assert_eq!(&l.line, &full);
            }
        }
    }

    #[test]
    fn synthesized_lines_round_trip(text in any::<String>(), ns in 0i128..4_102_444_800_000_000_000, stderr in any::<bool>()) {
        let stream = if stderr { "stderr" } else { "stdout" };
        let (line, cut) = json_file_line(&text, stream, ns, usize::MAX);
        prop_assert!(!cut);
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(log_field(&line), text.clone());
        let mut r = JsonFileReader::new(line.as_bytes(), 1 << 20);
        prop_assert_eq!(r.next_line().unwrap().unwrap().nanos, Some(ns));
        let (short, cut) = json_file_line(&text, stream, ns, 120);
        prop_assert!(short.len() <= 120);
        prop_assert!(text.starts_with(&log_field(&short)));
        prop_assert_eq!(cut, short != line);
    }
}
