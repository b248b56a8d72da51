//! Tests of the store on real SQLite files in temporary directories.
//!
//! - `roundtrip`: lines (the bundled sample logs and every framing, unparsed
//!   lines included) and message records survive storage exactly.
//! - `search`: store searches equal in-memory filtering with the core's
//!   matchers (property tests over random data and queries).
//! - `durability`: checkpoints, crash mid-batch (a child process that aborts),
//!   full disk, readers beside the writer, locking, schema versions.
//! - `retention`: by age and by size.

mod durability;
mod retention;
mod roundtrip;
mod search;

use std::io::Read;
use std::path::{Path, PathBuf};

use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::time::{TimeContext, Timestamp};

use crate::{Batch, Store, StoreConfig};

/// 2026-12-31T00:00:00Z: the year reference for year-less sample stamps.
pub(crate) const REFERENCE: i64 = 1_798_675_200;

pub(crate) fn framer() -> Framer {
    Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(REFERENCE)),
    })
}

pub(crate) fn received() -> Timestamp {
    Timestamp {
        unix_micros: REFERENCE * 1_000_000 + 123_456,
        offset_secs: 3600,
    }
}

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The lines of a gzipped sample of the binary crate.
pub(crate) fn sample(name: &str) -> Vec<String> {
    let path = workspace().join("crates/mailwarden/samples").join(name);
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut s = String::new();
    flate2::read::GzDecoder::new(f).read_to_string(&mut s).unwrap();
    s.lines().map(str::to_owned).collect()
}

/// Lines in every framing, and lines that cannot be framed or parsed.
pub(crate) fn variety() -> Vec<String> {
    [
        // rsyslog file format (RFC 3339 stamps), a NOQUEUE reject.
        "2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<Spam@Evil.example> to=<victim@example.org> proto=ESMTP helo=<x>",
        "2023-03-14T23:59:59.999999-05:00 helga postfix/qmgr[1]: 4PbC4x469Jz3tBr: from=<alice@example.org>, size=1234, nrcpt=1 (queue active)",
        // RFC 5424 and RFC 3164 with PRI.
        "<22>1 2023-03-14T00:00:31.185246+01:00 mx postfix/smtpd 123 - - connect from unknown[192.0.2.1]",
        "<38>Mar 14 00:00:31 mx postfix/smtpd[9]: disconnect from unknown[192.0.2.1] ehlo=1 quit=1 commands=2",
        // Docker json-file wrapping a syslog line, and a bare escaped message.
        r#"{"log":"Mar 14 00:00:32 mx postfix/smtpd[7]: connect from x.example[198.51.100.7]\n","stream":"stdout","time":"2023-03-14T00:00:32.123456789Z"}"#,
        r#"{"log":"a \"quoted\" message\twith a tab\n","stream":"stderr","time":"2023-03-14T00:00:33Z"}"#,
        // journald and Mailcow's Redis lists.
        r#"{"__REALTIME_TIMESTAMP":"1678752031185246","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"77","PRIORITY":"6","MESSAGE":"connect from unknown[203.0.113.9]"}"#,
        r#"{"time":"1678752031","priority":"info","program":"dovecot","message":"imap-login: Login: user=<bob@example.org>, method=PLAIN, rip=198.51.100.7, lip=10.0.0.2, mpid=1, TLS"}"#,
        // Native files.
        "2023-03-14 00:00:31 #1234(normal) <abcdef>; task; rspamd_task_write_log: id: <m1@x>, qid: <4PbC4x469Jz3tBr>, ip: 192.0.2.1, from: <a@b>, (default: F (no action): [1.00/15.00] [X(1.00){}]), len: 100, time: 10.0ms, dns req: 1, digest: <d>, rcpts: <c@d>, mime_rcpts: <c@d>",
        r#"192.0.2.9 - - [14/Mar/2023:00:00:31 +0100] "GET /SOGo HTTP/1.1" 200 123 "-" "curl/8""#,
        "2023-03-14  0:00:31 0 [Note] InnoDB: Buffer pool(s) load completed",
        // Unknown program, unknown shape, and lines that do not frame.
        "2023-03-14T00:00:34+01:00 helga cron[5]: (root) CMD (run-parts /etc/cron.hourly)",
        "2023-03-14T00:00:35+01:00 helga postfix/smtpd[5]: something postfix never wrote",
        "",
        "   ",
        "no framing at all",
        "binary \u{0} data",
        "Mar 32 00:00:00 host prog: bad day",
        "{\"log\": broken json",
        "2023-03-14T00:00:36+01:00 helga postfix/smtpd[5]: connect from ünïcødé.example[192.0.2.200]",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Opens a store in a fresh temporary directory.
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("data"))).unwrap();
    (dir, store)
}

/// Frames, parses and adds `lines` to `batch`; returns each line's event JSON.
pub(crate) fn add_lines(
    batch: &mut Batch,
    framer: &mut Framer,
    source: &str,
    lines: &[String],
) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            batch.frame_and_add(framer, source, received(), l, |ev| {
                serde_json::to_string(ev).unwrap()
            })
        })
        .collect()
}

/// 2023-03-10T00:00:00Z.
pub(crate) const BASE: i64 = 1_678_406_400;

/// `secs` into day `day` after [`BASE`], shown at UTC+1.
pub(crate) fn at(day: u8, secs: u32) -> Timestamp {
    Timestamp {
        unix_micros: (BASE + i64::from(day) * 86_400 + i64::from(secs)) * 1_000_000 + 7,
        offset_secs: 3600,
    }
}

/// A connect line at `at(day, 3600 + i)`.
pub(crate) fn line_on(day: u8, i: usize) -> String {
    format!(
        "{} mx postfix/smtpd[{i}]: connect from host.example[192.0.2.{}]",
        at(day, 3600 + i as u32),
        i % 250
    )
}

/// Lines `line_on(day, i)` for `i` in `range`.
pub(crate) fn lines_on(day: u8, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| line_on(day, i)).collect()
}
