//! Login records: the utmp/wtmp/btmp binary format and sshd's log lines, and
//! the host-triage findings they lead to.
//!
//! glibc writes one fixed-size `struct utmp` per record. On x86_64 the record
//! is 384 bytes (32-bit `ut_session` and `ut_tv`, for compatibility with
//! i386); on other 64-bit targets such as aarch64 it is 400 bytes (64-bit
//! session and timeval, padded to 8). A file carries no header, so
//! [`detect_layout`] decides from the file itself: which record size divides
//! the length and, above all, which one decodes into plausible records (known
//! type, a time after 1980, microseconds below a million). Decoding is
//! tolerant: a truncated trailing record is counted, never a panic, and
//! strings are cut at their first NUL and decoded lossily.
//!
//! [`parse_sshd`] reads the message part of an sshd line (`sshd` or, since
//! OpenSSH 9.8, `sshd-session`); the syslog framing around it is removed by
//! [`crate::framing::Framer`] like any other line.
//!
//! Finding ids (all area `host`):
//! - `host.login.root-remote` (warning): root logged in from a remote host
//!   within the window (wtmp/utmp).
//! - `host.login.recent` (info): the logins within the window, per file.
//! - `host.session.active` (info): a session listed in utmp right now.
//! - `host.btmp.failed-logins` (info; warning from [`BTMP_WARN`] records):
//!   failed logins within the window, with the most frequent sources.
//! - `host.utmp.truncated` (warning): the file ends inside a record.
//! - `host.utmp.unrecognized` (warning): no record layout fits the file.
//! - `host.utmp.empty` (warning): wtmp or btmp is empty (cleared?).
//! - `host.sshd.root-accepted` (warning): sshd accepted root within the window.
//! - `host.sshd.accepted` (info): sshd logins accepted within the window.
//! - `host.sshd.failed` (info; warning from [`SSHD_FAILED_WARN`]): failed
//!   sshd authentications and invalid users within the window.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Area, Finding, Severity};
use crate::time::Timestamp;

/// One of the two record layouts of `struct utmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 384-byte records: x86_64 (32-bit session and timeval).
    Bits32Time,
    /// 400-byte records: aarch64 and other 64-bit targets (64-bit time).
    Bits64Time,
}

impl Layout {
    /// Size of one record in bytes.
    pub fn record_size(self) -> usize {
        match self {
            Layout::Bits32Time => 384,
            Layout::Bits64Time => 400,
        }
    }

    /// Short description for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Bits32Time => "384-byte records (x86_64, 32-bit time)",
            Layout::Bits64Time => "400-byte records (64-bit time, e.g. aarch64)",
        }
    }

    /// Offsets of (session, tv_sec, tv_usec, addr_v6) and whether the
    /// session and time fields are 8 bytes wide.
    fn offsets(self) -> (usize, usize, usize, usize, bool) {
        match self {
            Layout::Bits32Time => (336, 340, 344, 348, false),
            Layout::Bits64Time => (336, 344, 352, 360, true),
        }
    }
}

/// `ut_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// 0: no valid data.
    Empty,
    /// 1: change in run level (`runlevel`, `shutdown`).
    RunLevel,
    /// 2: system boot (`reboot`).
    BootTime,
    /// 3: time after a clock change.
    NewTime,
    /// 4: time before a clock change.
    OldTime,
    /// 5: process spawned by init.
    InitProcess,
    /// 6: getty waiting for a login (also btmp's failed logins).
    LoginProcess,
    /// 7: a user's session.
    UserProcess,
    /// 8: a terminated process.
    DeadProcess,
    /// 9: accounting.
    Accounting,
    /// Any other value.
    Other(i16),
}

impl RecordType {
    fn from_raw(v: i16) -> RecordType {
        match v {
            0 => RecordType::Empty,
            1 => RecordType::RunLevel,
            2 => RecordType::BootTime,
            3 => RecordType::NewTime,
            4 => RecordType::OldTime,
            5 => RecordType::InitProcess,
            6 => RecordType::LoginProcess,
            7 => RecordType::UserProcess,
            8 => RecordType::DeadProcess,
            9 => RecordType::Accounting,
            n => RecordType::Other(n),
        }
    }

    /// The numeric value, as `utmpdump` prints it.
    pub fn raw(self) -> i16 {
        match self {
            RecordType::Empty => 0,
            RecordType::RunLevel => 1,
            RecordType::BootTime => 2,
            RecordType::NewTime => 3,
            RecordType::OldTime => 4,
            RecordType::InitProcess => 5,
            RecordType::LoginProcess => 6,
            RecordType::UserProcess => 7,
            RecordType::DeadProcess => 8,
            RecordType::Accounting => 9,
            RecordType::Other(n) => n,
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpRecord {
    /// `ut_type`.
    pub kind: RecordType,
    /// `ut_pid`.
    pub pid: i32,
    /// `ut_line`: the terminal (`pts/0`, `ssh:notty`, `~`).
    pub line: String,
    /// `ut_id`: the inittab id or the terminal suffix.
    pub id: String,
    /// `ut_user`.
    pub user: String,
    /// `ut_host`: remote host name or address, or the kernel release.
    pub host: String,
    /// `ut_addr_v6`: the remote address, `None` when all zero.
    pub addr: Option<IpAddr>,
    /// `ut_session`.
    pub session: i64,
    /// `ut_tv` as an instant (UTC).
    pub time: Timestamp,
}

impl UtmpRecord {
    /// Seconds since the epoch (the `ut_tv.tv_sec` part).
    pub fn unix_seconds(&self) -> i64 {
        self.time.unix_micros.div_euclid(1_000_000)
    }

    /// Whether the session came from another machine: a host that is not a
    /// local X display (`:0`) and not empty, or a non-zero address.
    pub fn is_remote(&self) -> bool {
        let h = self.host.trim();
        (!h.is_empty() && !h.starts_with(':') && h != "localhost")
            || self.addr.is_some_and(|a| !a.is_loopback() && !a.is_unspecified())
    }
}

/// A whole utmp-format file, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpFile {
    /// The layout used, `None` when nothing fit (or the file is empty).
    pub layout: Option<Layout>,
    /// Records in file order.
    pub records: Vec<UtmpRecord>,
    /// Bytes after the last whole record (a truncated record), 0 normally.
    pub trailing_bytes: usize,
    /// Records whose fields were implausible (unknown type, impossible time);
    /// they are still decoded and listed in `records`.
    pub implausible: usize,
}

/// Most records decoded from one file: beyond this the rest is skipped (a
/// wtmp of a busy host over years stays well below).
pub const MAX_RECORDS: usize = 2_000_000;

/// 1980-01-01T00:00:00Z: records of a real login are never older.
const MIN_PLAUSIBLE_SECS: i64 = 315_532_800;
/// 2200-01-01T00:00:00Z.
const MAX_PLAUSIBLE_SECS: i64 = 7_258_118_400;
/// Records looked at when detecting the layout.
const DETECT_RECORDS: usize = 64;

fn i16_at(b: &[u8], off: usize) -> i16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map(i16::from_le_bytes)
        .unwrap_or(0)
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_le_bytes)
        .unwrap_or(0)
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

fn cstr(b: &[u8], off: usize, len: usize) -> String {
    let field = b.get(off..off + len).unwrap_or(&[]);
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// How plausible one record is under a layout: `Some(true)` a meaningful
/// record, `Some(false)` an empty one, `None` implausible.
fn plausibility(rec: &[u8], layout: Layout) -> Option<bool> {
    let (_, sec_off, usec_off, _, wide) = layout.offsets();
    let raw_type = i16_at(rec, 0);
    let pad = i16_at(rec, 2);
    let (sec, usec) = if wide {
        (i64_at(rec, sec_off), i64_at(rec, usec_off))
    } else {
        (i64::from(i32_at(rec, sec_off)), i64::from(i32_at(rec, usec_off)))
    };
    if pad != 0 || !(0..=9).contains(&raw_type) || !(0..1_000_000).contains(&usec) {
        return None;
    }
    if raw_type == 0 {
        return Some(false);
    }
    if !(MIN_PLAUSIBLE_SECS..MAX_PLAUSIBLE_SECS).contains(&sec) || i32_at(rec, 4) < 0 {
        return None;
    }
    Some(true)
}

fn layout_score(bytes: &[u8], layout: Layout) -> i64 {
    let size = layout.record_size();
    let mut score = 0i64;
    for rec in bytes.chunks_exact(size).take(DETECT_RECORDS) {
        match plausibility(rec, layout) {
            Some(true) => score += 2,
            Some(false) => {}
            None => score -= 3,
        }
    }
    score
}

/// Picks the record layout of a utmp-format file from its bytes: the layout
/// whose records decode plausibly, preferring one that divides the length
/// and, on a tie, x86_64's. `None` when the file holds no whole record or no
/// layout yields a plausible one.
pub fn detect_layout(bytes: &[u8]) -> Option<Layout> {
    let candidates = [Layout::Bits32Time, Layout::Bits64Time];
    let mut best: Option<(i64, Layout)> = None;
    for layout in candidates {
        if bytes.len() < layout.record_size() {
            continue;
        }
        let divides = bytes.len().is_multiple_of(layout.record_size());
        let score = layout_score(bytes, layout) * 2 + i64::from(divides);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, layout));
        }
    }
    best.filter(|(s, _)| *s > 1).map(|(_, l)| l)
}

fn decode(rec: &[u8], layout: Layout) -> UtmpRecord {
    let (session_off, sec_off, usec_off, addr_off, wide) = layout.offsets();
    let (session, sec, usec) = if wide {
        (
            i64_at(rec, session_off),
            i64_at(rec, sec_off),
            i64_at(rec, usec_off),
        )
    } else {
        (
            i64::from(i32_at(rec, session_off)),
            i64::from(i32_at(rec, sec_off)),
            i64::from(i32_at(rec, usec_off)),
        )
    };
    let addr_bytes: [u8; 16] = rec
        .get(addr_off..addr_off + 16)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 16]);
    let addr = if addr_bytes == [0; 16] {
        None
    } else if addr_bytes[4..] == [0; 12] {
        Some(IpAddr::V4(Ipv4Addr::new(
            addr_bytes[0],
            addr_bytes[1],
            addr_bytes[2],
            addr_bytes[3],
        )))
    } else {
        Some(IpAddr::V6(Ipv6Addr::from(addr_bytes)))
    };
    let micros = sec
        .clamp(-MAX_PLAUSIBLE_SECS, MAX_PLAUSIBLE_SECS)
        .saturating_mul(1_000_000)
        .saturating_add(usec.clamp(0, 999_999));
    UtmpRecord {
        kind: RecordType::from_raw(i16_at(rec, 0)),
        pid: i32_at(rec, 4),
        line: cstr(rec, 8, 32),
        id: cstr(rec, 40, 4),
        user: cstr(rec, 44, 32),
        host: cstr(rec, 76, 256),
        addr,
        session,
        time: Timestamp::from_unix_micros(micros),
    }
}

/// Decodes a utmp, wtmp or btmp file. Never fails: an undetectable layout
/// gives no records, a truncated tail is counted in `trailing_bytes`.
pub fn parse_utmp(bytes: &[u8]) -> UtmpFile {
    let Some(layout) = detect_layout(bytes) else {
        return UtmpFile {
            layout: None,
            records: Vec::new(),
            trailing_bytes: bytes.len(),
            implausible: 0,
        };
    };
    let size = layout.record_size();
    let mut records = Vec::with_capacity((bytes.len() / size).min(4096));
    let mut implausible = 0;
    for rec in bytes.chunks_exact(size).take(MAX_RECORDS) {
        if plausibility(rec, layout).is_none() {
            implausible += 1;
        }
        records.push(decode(rec, layout));
    }
    UtmpFile {
        layout: Some(layout),
        records,
        trailing_bytes: bytes.len() % size,
        implausible,
    }
}

/// Which login file a [`UtmpFile`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFile {
    /// `/var/run/utmp`: current sessions.
    Utmp,
    /// `/var/log/wtmp`: login history.
    Wtmp,
    /// `/var/log/btmp`: failed logins.
    Btmp,
    /// lastlog2's database (`/var/lib/lastlog/lastlog2.db`): each
    /// account's most recent login.
    Lastlog2,
}

/// Failed logins in btmp within the window from which the finding is a warning.
pub const BTMP_WARN: usize = 100;
/// Failed sshd authentications within the window from which the finding is a warning.
pub const SSHD_FAILED_WARN: usize = 100;
/// Most evidence lines per finding.
const MAX_EVIDENCE: usize = 50;

fn record_line(r: &UtmpRecord) -> String {
    let addr = r.addr.map(|a| a.to_string()).unwrap_or_default();
    format!(
        "{} user={:?} line={:?} host={:?} addr={} pid={}",
        r.time, r.user, r.line, r.host, addr, r.pid
    )
}

fn source_of(r: &UtmpRecord) -> String {
    match (r.host.trim(), r.addr) {
        ("", Some(a)) => a.to_string(),
        ("", None) => "local".to_owned(),
        (h, _) => h.to_owned(),
    }
}

/// Findings from one decoded login file: structure problems, and what
/// happened at or after `since`.
pub fn check_logins(which: LoginFile, path: &str, file: &UtmpFile, since: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = |id, sev, msg: String| Finding::new(id, Area::Host, sev, path, msg);
    if file.layout.is_none() {
        if file.trailing_bytes == 0 {
            if which != LoginFile::Utmp {
                out.push(
                    host(
                        "host.utmp.empty",
                        Severity::Warning,
                        "the file is empty: the login history may have been cleared".into(),
                    )
                    .evidence(format!("{path}: 0 bytes"))
                    .fix("compare with the sshd log and the journal (`last -f` of rotated copies); an empty file after logins took place means it was wiped"),
                );
            }
        } else {
            out.push(
                host(
                    "host.utmp.unrecognized",
                    Severity::Warning,
                    format!(
                        "{} bytes that fit no utmp record layout (384 or 400 bytes)",
                        file.trailing_bytes
                    ),
                )
                .evidence(format!(
                    "{path}: {} bytes, no plausible record",
                    file.trailing_bytes
                ))
                .fix("inspect it with `utmpdump`; a damaged or overwritten login file can be tampering"),
            );
        }
        return out;
    }
    let layout = file.layout.map(Layout::describe).unwrap_or("");
    if file.trailing_bytes != 0 {
        out.push(
            host(
                "host.utmp.truncated",
                Severity::Warning,
                format!(
                    "the file ends inside a record ({} stray bytes after {} records)",
                    file.trailing_bytes,
                    file.records.len()
                ),
            )
            .evidence(format!("{path}: {layout}, {} trailing bytes", file.trailing_bytes))
            .fix("a login file is written a whole record at a time: a partial record means an interrupted write or editing; keep a copy before anything rotates it"),
        );
    }
    out.extend(check_records(which, path, &file.records, since));
    out
}

/// Findings from decoded login records, whatever file or database they came
/// from: what happened at or after `since`.
pub fn check_records(which: LoginFile, path: &str, records: &[UtmpRecord], since: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = |id, sev, msg: String| Finding::new(id, Area::Host, sev, path, msg);
    let recent = |r: &UtmpRecord| r.time >= since;
    match which {
        LoginFile::Utmp | LoginFile::Wtmp | LoginFile::Lastlog2 => {
            let users: Vec<&UtmpRecord> = records
                .iter()
                .filter(|r| r.kind == RecordType::UserProcess)
                .collect();
            for r in users
                .iter()
                .filter(|r| recent(r))
                .filter(|r| r.user == "root" && r.is_remote())
            {
                out.push(
                    host(
                        "host.login.root-remote",
                        Severity::Warning,
                        format!("root logged in from {} at {}", source_of(r), r.time),
                    )
                    .evidence(format!("{path}: {}", record_line(r)))
                    .fix("confirm the login was yours; disable remote root logins (PermitRootLogin no) and use a personal account with sudo"),
                );
            }
            if which == LoginFile::Utmp {
                // utmp keeps a USER_PROCESS entry while the session lives.
                for r in &users {
                    out.push(
                        host(
                            "host.session.active",
                            Severity::Info,
                            format!(
                                "{} is logged in on {} from {} since {}",
                                r.user,
                                r.line,
                                source_of(r),
                                r.time
                            ),
                        )
                        .evidence(format!("{path}: {}", record_line(r))),
                    );
                }
            } else {
                let logins: Vec<&&UtmpRecord> = users.iter().filter(|r| recent(r)).collect();
                if !logins.is_empty() {
                    let mut f = if which == LoginFile::Lastlog2 {
                        host(
                            "host.lastlog.recent",
                            Severity::Info,
                            format!("{} accounts last logged in since {since}", logins.len()),
                        )
                    } else {
                        host(
                            "host.login.recent",
                            Severity::Info,
                            format!("{} logins since {since}", logins.len()),
                        )
                    };
                    for r in logins.iter().rev().take(MAX_EVIDENCE) {
                        f = f.evidence(format!("{path}: {}", record_line(r)));
                    }
                    out.push(f);
                }
            }
        }
        LoginFile::Btmp => {
            let failed: Vec<&UtmpRecord> = records
                .iter()
                .filter(|r| recent(r))
                .filter(|r| r.kind != RecordType::Empty)
                .collect();
            if !failed.is_empty() {
                let mut by_source: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
                for r in &failed {
                    let e = by_source.entry(source_of(r)).or_default();
                    e.0 += 1;
                    if e.1.len() < 5 || e.1.contains_key(&r.user) {
                        *e.1.entry(r.user.clone()).or_default() += 1;
                    }
                }
                let mut ranked: Vec<_> = by_source.into_iter().collect();
                ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
                let sev = if failed.len() >= BTMP_WARN {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                let mut f = host(
                    "host.btmp.failed-logins",
                    sev,
                    format!(
                        "{} failed logins since {since} from {} sources",
                        failed.len(),
                        ranked.len()
                    ),
                );
                for (src, (n, users)) in ranked.iter().take(MAX_EVIDENCE) {
                    let users: Vec<&str> = users.keys().map(String::as_str).collect();
                    f = f.evidence(format!("{path}: {n} from {src} (users {})", users.join(", ")));
                }
                if sev == Severity::Warning {
                    f = f.fix("make sure brute-force protection (fail2ban, Mailcow netfilter) bans these sources and that password logins are off for SSH");
                }
                out.push(f);
            }
        }
    }
    out
}

/// One row of wtmpdb's `wtmp` table (`/var/lib/wtmpdb/wtmp.db`, SQLite; the
/// login history of distributions that dropped `/var/log/wtmp` for Y2038,
/// Debian 13 among them). Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WtmpdbRow {
    /// `ID`.
    pub id: i64,
    /// `Type`: 1 boot, 2 runlevel, 3 a user session.
    pub kind: i64,
    /// `User` (`reboot` for boots).
    pub user: String,
    /// `Login`.
    pub login_usec: Option<i64>,
    /// `Logout`, `None` while the session lasts (or the host crashed).
    pub logout_usec: Option<i64>,
    /// `TTY`.
    pub tty: String,
    /// `RemoteHost`: the client's name or address (the kernel release for boots).
    pub remote_host: String,
    /// `Service`: the PAM service (`sshd`, `login`, …).
    pub service: String,
}

/// wtmpdb's `Type` of a user session.
pub const WTMPDB_USER_PROCESS: i64 = 3;
/// wtmpdb's `Type` of a boot.
pub const WTMPDB_BOOT_TIME: i64 = 1;

fn host_addr(host: &str) -> Option<IpAddr> {
    host.trim().parse().ok()
}

/// wtmpdb rows as login records (sessions as USER_PROCESS, boots as
/// BOOT_TIME), in ID order, for [`check_records`] with [`LoginFile::Wtmp`].
/// Rows without a login time are skipped.
pub fn wtmpdb_records(rows: &[WtmpdbRow]) -> Vec<UtmpRecord> {
    let mut rows: Vec<&WtmpdbRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .filter_map(|r| {
            let kind = match r.kind {
                WTMPDB_USER_PROCESS => RecordType::UserProcess,
                WTMPDB_BOOT_TIME => RecordType::BootTime,
                n => RecordType::Other(i16::try_from(n).unwrap_or(i16::MAX)),
            };
            let mut line = r.tty.clone();
            if !r.service.is_empty() {
                // The PAM service says how the session came (sshd, login);
                // shown with the terminal since utmp has no field for it.
                line = format!("{line} ({})", r.service);
            }
            Some(UtmpRecord {
                kind,
                pid: 0,
                line,
                id: String::new(),
                user: r.user.clone(),
                host: r.remote_host.clone(),
                addr: host_addr(&r.remote_host),
                session: r.id,
                time: Timestamp::from_unix_micros(r.login_usec?),
            })
        })
        .collect()
}

/// One row of lastlog2's `Lastlog2` table (`/var/lib/lastlog/lastlog2.db`):
/// an account's most recent login. `Time` is in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lastlog2Row {
    /// `Name`.
    pub name: String,
    /// `Time`.
    pub time: i64,
    /// `TTY`.
    pub tty: String,
    /// `RemoteHost`.
    pub remote_host: String,
    /// `Service`.
    pub service: String,
}

/// lastlog2 rows as USER_PROCESS records, for [`check_records`] with
/// [`LoginFile::Lastlog2`]. Accounts that never logged in (time 0) are
/// skipped.
pub fn lastlog2_records(rows: &[Lastlog2Row]) -> Vec<UtmpRecord> {
    let mut out: Vec<UtmpRecord> = rows
        .iter()
        .filter(|r| r.time > 0)
        .map(|r| UtmpRecord {
            kind: RecordType::UserProcess,
            pid: 0,
            line: if r.service.is_empty() {
                r.tty.clone()
            } else {
                format!("{} ({})", r.tty, r.service)
            },
            id: String::new(),
            user: r.name.clone(),
            host: r.remote_host.clone(),
            addr: host_addr(&r.remote_host),
            session: 0,
            time: Timestamp::from_unix_seconds(r.time),
        })
        .collect();
    out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.user.cmp(&b.user)));
    out
}

/// The outcome an sshd log line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshdOutcome {
    /// `Accepted METHOD for USER from ADDR port N`.
    Accepted,
    /// `Failed METHOD for [invalid user] USER from ADDR port N`.
    Failed,
    /// `Invalid user USER from ADDR port N`.
    InvalidUser,
}

/// One authentication event from sshd's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdEvent<'a> {
    /// What happened.
    pub outcome: SshdOutcome,
    /// `password`, `publickey`, `keyboard-interactive/pam`, … (empty for
    /// `Invalid user`).
    pub method: &'a str,
    /// The user name tried (attacker-controlled: escape before printing).
    pub user: &'a str,
    /// Whether sshd called the user invalid (no such account).
    pub invalid_user: bool,
    /// The client address.
    pub addr: Option<IpAddr>,
    /// The client port.
    pub port: Option<u16>,
}

/// Whether a syslog program name is sshd's (the listener or, from OpenSSH
/// 9.8, the per-connection `sshd-session`).
pub fn is_sshd_program(program: &str) -> bool {
    matches!(program, "sshd" | "sshd-session")
}

/// ` from ADDR port N` at the end of a user name; user names may contain
/// spaces, so the last ` from ` wins.
fn split_from(rest: &str) -> Option<(&str, Option<IpAddr>, Option<u16>)> {
    let i = rest.rfind(" from ")?;
    let user = &rest[..i];
    let mut it = rest[i + 6..].split_whitespace();
    let addr = it.next().and_then(|a| a.parse().ok());
    let port = match it.next() {
        Some("port") => it.next().and_then(|p| p.parse().ok()),
        _ => None,
    };
    Some((user, addr, port))
}

/// Parses the message of an sshd line; `None` for lines that report no
/// authentication outcome.
pub fn parse_sshd(message: &str) -> Option<SshdEvent<'_>> {
    let (outcome, rest) = if let Some(r) = message.strip_prefix("Accepted ") {
        (SshdOutcome::Accepted, r)
    } else if let Some(r) = message.strip_prefix("Failed ") {
        (SshdOutcome::Failed, r)
    } else if let Some(r) = message.strip_prefix("Invalid user ") {
        let (user, addr, port) = split_from(r)?;
        return Some(SshdEvent {
            outcome: SshdOutcome::InvalidUser,
            method: "",
            user,
            invalid_user: true,
            addr,
            port,
        });
    } else {
        return None;
    };
    let (method, rest) = rest.split_once(" for ")?;
    if method.contains(' ') {
        return None;
    }
    let (rest, invalid_user) = match rest.strip_prefix("invalid user ") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (user, addr, port) = split_from(rest)?;
    Some(SshdEvent {
        outcome,
        method,
        user,
        invalid_user,
        addr,
        port,
    })
}

/// One sshd event with where and when it was logged, as the checks keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdRecord {
    /// What happened.
    pub outcome: SshdOutcome,
    /// Authentication method.
    pub method: String,
    /// User name.
    pub user: String,
    /// Client address, as text (`?` when absent).
    pub source: String,
    /// When, if the line carried a time.
    pub time: Option<Timestamp>,
    /// `file:line` it came from.
    pub origin: String,
}

impl SshdRecord {
    /// Keeps an event with its origin.
    pub fn new(ev: &SshdEvent<'_>, time: Option<Timestamp>, origin: String) -> SshdRecord {
        SshdRecord {
            outcome: ev.outcome,
            method: ev.method.to_owned(),
            user: ev.user.chars().take(64).collect(),
            source: ev.addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
            time,
            origin,
        }
    }
}

/// Findings from sshd events (already limited to the window by the caller,
/// or filtered here by `since` when they carry a time).
pub fn check_sshd(records: &[SshdRecord], since: Timestamp) -> Vec<Finding> {
    let recent: Vec<&SshdRecord> = records
        .iter()
        .filter(|r| r.time.is_none_or(|t| t >= since))
        .collect();
    let mut out = Vec::new();
    let line = |r: &SshdRecord| {
        let t = r.time.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
        format!(
            "{}: {t} {:?} {} for {:?} from {}",
            r.origin, r.outcome, r.method, r.user, r.source
        )
    };
    let accepted: Vec<&&SshdRecord> = recent
        .iter()
        .filter(|r| r.outcome == SshdOutcome::Accepted)
        .collect();
    for r in accepted.iter().filter(|r| r.user == "root") {
        out.push(
            Finding::new(
                "host.sshd.root-accepted",
                Area::Host,
                Severity::Warning,
                format!("root@{}", r.source),
                format!("sshd accepted root by {} from {}", r.method, r.source),
            )
            .evidence(line(r))
            .fix("confirm the login was yours; set PermitRootLogin no (or prohibit-password) and rotate root's keys if not"),
        );
    }
    if !accepted.is_empty() {
        let mut f = Finding::new(
            "host.sshd.accepted",
            Area::Host,
            Severity::Info,
            "sshd",
            format!("{} accepted sshd logins since {since}", accepted.len()),
        );
        for r in accepted.iter().rev().take(MAX_EVIDENCE) {
            f = f.evidence(line(r));
        }
        out.push(f);
    }
    let failed: Vec<&&SshdRecord> = recent
        .iter()
        .filter(|r| r.outcome != SshdOutcome::Accepted)
        .collect();
    if !failed.is_empty() {
        let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &failed {
            *by_source.entry(&r.source).or_default() += 1;
        }
        let mut ranked: Vec<_> = by_source.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let sev = if failed.len() >= SSHD_FAILED_WARN {
            Severity::Warning
        } else {
            Severity::Info
        };
        let mut f = Finding::new(
            "host.sshd.failed",
            Area::Host,
            sev,
            "sshd",
            format!(
                "{} failed sshd authentications since {since} from {} sources",
                failed.len(),
                ranked.len()
            ),
        );
        for (src, n) in ranked.iter().take(MAX_EVIDENCE) {
            f = f.evidence(format!("{n} from {src}"));
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one record in a layout (what glibc would write).
    #[allow(clippy::too_many_arguments)]
    fn record(
        layout: Layout,
        kind: i16,
        pid: i32,
        line: &str,
        id: &str,
        user: &str,
        host: &str,
        addr: [u8; 16],
        sec: i64,
        usec: i64,
    ) -> Vec<u8> {
        let mut r = vec![0u8; layout.record_size()];
        let put = |r: &mut Vec<u8>, off: usize, b: &[u8]| r[off..off + b.len()].copy_from_slice(b);
        put(&mut r, 0, &kind.to_le_bytes());
        put(&mut r, 4, &pid.to_le_bytes());
        put(&mut r, 8, line.as_bytes());
        put(&mut r, 40, id.as_bytes());
        put(&mut r, 44, user.as_bytes());
        put(&mut r, 76, host.as_bytes());
        let (_, s, u, a, wide) = layout.offsets();
        if wide {
            put(&mut r, s, &sec.to_le_bytes());
            put(&mut r, u, &usec.to_le_bytes());
        } else {
            put(&mut r, s, &(sec as i32).to_le_bytes());
            put(&mut r, u, &(usec as i32).to_le_bytes());
        }
        put(&mut r, a, &addr);
        r
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    const T: i64 = 1_710_115_200; // 2024-03-11T00:00:00Z

    fn sample(layout: Layout) -> Vec<u8> {
        let mut b = record(layout, 2, 0, "~", "~~", "reboot", "6.1.0-18-amd64", [0; 16], T, 1);
        b.extend(record(
            layout,
            7,
            4242,
            "pts/0",
            "ts/0",
            "root",
            "203.0.113.9",
            v4([203, 0, 113, 9]),
            T + 60,
            999_999,
        ));
        let v6: [u8; 16] = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets();
        b.extend(record(
            layout,
            7,
            4243,
            "pts/1",
            "ts/1",
            "alice",
            "2001:db8::7",
            v6,
            T + 120,
            0,
        ));
        b
    }

    #[test]
    fn both_layouts_decode_the_same_records() {
        for layout in [Layout::Bits32Time, Layout::Bits64Time] {
            let f = parse_utmp(&sample(layout));
            assert_eq!(f.layout, Some(layout));
            assert_eq!((f.records.len(), f.trailing_bytes, f.implausible), (3, 0, 0));
            let r = &f.records[1];
            assert_eq!(r.kind, RecordType::UserProcess);
            assert_eq!(
                (r.pid, r.line.as_str(), r.id.as_str(), r.user.as_str()),
                (4242, "pts/0", "ts/0", "root")
            );
            assert_eq!(r.addr, Some("203.0.113.9".parse().unwrap()));
            assert_eq!(r.time.unix_micros, (T + 60) * 1_000_000 + 999_999);
            assert_eq!(f.records[2].addr, Some("2001:db8::7".parse().unwrap()));
            assert_eq!(f.records[0].kind, RecordType::BootTime);
        }
    }

    #[test]
    fn truncated_tail_is_counted() {
        let mut b = sample(Layout::Bits64Time);
        b.truncate(b.len() - 17);
        let f = parse_utmp(&b);
        assert_eq!(f.layout, Some(Layout::Bits64Time));
        assert_eq!((f.records.len(), f.trailing_bytes), (2, 383));
        let found = check_logins(
            LoginFile::Wtmp,
            "/var/log/wtmp",
            &f,
            Timestamp::from_unix_seconds(T),
        );
        assert!(found.iter().any(|f| f.id == "host.utmp.truncated"), "{found:?}");
    }

    #[test]
    fn length_divisible_by_both_sizes_is_decided_by_plausibility() {
        // 25 x 384 = 24 x 400 = 9600 bytes.
        for (layout, n) in [(Layout::Bits32Time, 25), (Layout::Bits64Time, 24)] {
            let mut b = Vec::new();
            for i in 0..n {
                b.extend(record(
                    layout,
                    7,
                    100 + i,
                    "pts/3",
                    "ts/3",
                    "bob",
                    "",
                    [0; 16],
                    T + i64::from(i),
                    5,
                ));
            }
            assert_eq!(b.len(), 9600);
            assert_eq!(detect_layout(&b), Some(layout));
        }
    }

    #[test]
    fn garbage_and_empty_fit_no_layout() {
        assert_eq!(parse_utmp(&[]).layout, None);
        assert_eq!(parse_utmp(&[0xff; 800]).layout, None);
        let f = parse_utmp(&[0xff; 800]);
        let found = check_logins(
            LoginFile::Btmp,
            "/var/log/btmp",
            &f,
            Timestamp::from_unix_seconds(T),
        );
        assert_eq!(found[0].id, "host.utmp.unrecognized");
        let found = check_logins(
            LoginFile::Wtmp,
            "/var/log/wtmp",
            &parse_utmp(&[]),
            Timestamp::from_unix_seconds(T),
        );
        assert_eq!(found[0].id, "host.utmp.empty");
    }

    #[test]
    fn login_findings() {
        let f = parse_utmp(&sample(Layout::Bits32Time));
        let since = Timestamp::from_unix_seconds(T);
        let ids = |v: Vec<Finding>| v.iter().map(|f| (f.id, f.severity)).collect::<Vec<_>>();
        let wtmp = ids(check_logins(LoginFile::Wtmp, "w", &f, since));
        assert_eq!(
            wtmp,
            vec![
                ("host.login.root-remote", Severity::Warning),
                ("host.login.recent", Severity::Info)
            ]
        );
        // Outside the window: nothing.
        assert!(check_logins(LoginFile::Wtmp, "w", &f, Timestamp::from_unix_seconds(T + 3600)).is_empty());
        let utmp = ids(check_logins(
            LoginFile::Utmp,
            "u",
            &f,
            Timestamp::from_unix_seconds(T + 3600),
        ));
        assert_eq!(
            utmp,
            vec![
                ("host.session.active", Severity::Info),
                ("host.session.active", Severity::Info)
            ]
        );
        let mut btmp = Vec::new();
        for i in 0..BTMP_WARN as i32 {
            btmp.extend(record(
                Layout::Bits32Time,
                6,
                i,
                "ssh:notty",
                "",
                "admin",
                "198.51.100.4",
                v4([198, 51, 100, 4]),
                T + 1,
                0,
            ));
        }
        let found = check_logins(LoginFile::Btmp, "b", &parse_utmp(&btmp), since);
        assert_eq!(
            ids(found.clone()),
            vec![("host.btmp.failed-logins", Severity::Warning)]
        );
        assert!(
            found[0].evidence[0].contains("100 from 198.51.100.4 (users admin)"),
            "{found:?}"
        );
    }

    /// The real samples of ../shared/corpus/host/utmp, against utmpdump's
    /// output (384-byte) and the bytes read by hand (400-byte).
    #[test]
    fn shared_corpus_samples() {
        let dir = std::path::Path::new("/work/shared/corpus/host/utmp");
        if !dir.exists() {
            eprintln!("SKIPPED: {} is absent", dir.display());
            return;
        }
        let b32 = std::fs::read(dir.join("basic32.utmp")).unwrap();
        let f = parse_utmp(&b32);
        assert_eq!(
            (f.layout, f.records.len(), f.trailing_bytes),
            (Some(Layout::Bits32Time), 5, 0)
        );
        let dump = std::fs::read_to_string(dir.join("basic32.utmpdump.txt")).unwrap();
        for (r, line) in f.records.iter().zip(dump.lines()) {
            // [7] [28885] [tty3] [upsuper ] [tty3        ] [                    ] [0.0.0.0        ] [2020-02-09T03:01:07,195722+00:00]
            let fields: Vec<&str> = line
                .split("] [")
                .map(|s| s.trim_matches(['[', ']']).trim_end())
                .collect();
            assert_eq!(fields[0], r.kind.raw().to_string());
            assert_eq!(fields[1].parse::<i32>().unwrap(), r.pid);
            assert_eq!(fields[2], r.id);
            assert_eq!(fields[3], r.user);
            assert_eq!(fields[4], r.line);
            assert_eq!(fields[5], r.host);
            assert_eq!(r.addr, None);
            let t = r.time.to_string(); // 2020-02-09T03:01:07.195722Z
            assert_eq!(t.replace('.', ",").replace('Z', "+00:00"), fields[7]);
        }
        let b64 = std::fs::read(dir.join("basic64.utmp")).unwrap();
        let f = parse_utmp(&b64);
        assert_eq!(
            (f.layout, f.records.len(), f.trailing_bytes),
            (Some(Layout::Bits64Time), 3, 0)
        );
        let r = &f.records;
        assert_eq!(
            (
                r[0].kind,
                r[0].user.as_str(),
                r[0].line.as_str(),
                r[0].host.as_str()
            ),
            (RecordType::BootTime, "reboot", "~", "5.15.0-41-generic")
        );
        assert_eq!(r[0].time.unix_micros, 1_658_083_371 * 1_000_000 + 314_869);
        assert_eq!(
            (r[1].kind, r[1].pid, r[1].time.unix_micros),
            (RecordType::RunLevel, 53, 1_658_083_400 * 1_000_000 + 855_073)
        );
        assert_eq!(
            (
                r[2].kind,
                r[2].pid,
                r[2].line.as_str(),
                r[2].id.as_str(),
                r[2].user.as_str()
            ),
            (RecordType::LoginProcess, 1219, "ttyAMA0", "AMA0", "LOGIN")
        );
    }

    /// Outcome, method, user, invalid, address, port.
    type Expected = (SshdOutcome, &'static str, &'static str, bool, &'static str, u16);

    #[test]
    fn sshd_messages() {
        let cases: &[(&str, Option<Expected>)] = &[
            (
                "Accepted publickey for root from 203.0.113.9 port 52144 ssh2: ED25519 SHA256:abc",
                Some((
                    SshdOutcome::Accepted,
                    "publickey",
                    "root",
                    false,
                    "203.0.113.9",
                    52144,
                )),
            ),
            (
                "Accepted password for alice from 2001:db8::7 port 22 ssh2",
                Some((
                    SshdOutcome::Accepted,
                    "password",
                    "alice",
                    false,
                    "2001:db8::7",
                    22,
                )),
            ),
            (
                "Failed password for invalid user admin from 198.51.100.4 port 4444 ssh2",
                Some((
                    SshdOutcome::Failed,
                    "password",
                    "admin",
                    true,
                    "198.51.100.4",
                    4444,
                )),
            ),
            (
                "Failed publickey for bob from 198.51.100.4 port 1 ssh2: RSA SHA256:x",
                Some((SshdOutcome::Failed, "publickey", "bob", false, "198.51.100.4", 1)),
            ),
            (
                "Invalid user a from b from 198.51.100.4 port 5",
                Some((SshdOutcome::InvalidUser, "", "a from b", true, "198.51.100.4", 5)),
            ),
            ("Connection closed by 198.51.100.4 port 5 [preauth]", None),
            ("Failed none", None),
            ("Accepted", None),
        ];
        for (msg, want) in cases {
            let got = parse_sshd(msg).map(|e| {
                (
                    e.outcome,
                    e.method,
                    e.user,
                    e.invalid_user,
                    e.addr.map(|a| a.to_string()).unwrap_or_default(),
                    e.port.unwrap_or(0),
                )
            });
            let want = want.map(|(o, m, u, i, a, p)| (o, m, u, i, a.to_owned(), p));
            assert_eq!(got, want, "{msg}");
        }
        assert!(is_sshd_program("sshd-session") && is_sshd_program("sshd") && !is_sshd_program("sshd-auth2"));
    }

    /// auth.log lines go through the ordinary syslog framer.
    #[test]
    fn sshd_lines_through_the_framer() {
        use crate::framing::{Format, Framer, FramerConfig};
        use crate::time::TimeContext;
        let mut framer = Framer::new(FramerConfig {
            format: Format::Auto,
            program_hint: None,
            time: TimeContext::utc(Timestamp::from_unix_seconds(T + 86_400)),
        });
        for line in [
            "Mar 11 10:00:00 mx sshd-session[123]: Accepted publickey for root from 203.0.113.9 port 52144 ssh2: ED25519 SHA256:abc",
            "2024-03-11T10:00:00.123456+00:00 mx sshd[123]: Accepted publickey for root from 203.0.113.9 port 52144 ssh2",
        ] {
            let fr = framer.frame(line).unwrap();
            assert!(is_sshd_program(&fr.program), "{fr:?}");
            let ev = parse_sshd(&fr.message).unwrap();
            let rec = SshdRecord::new(&ev, fr.ts, "auth.log:1".into());
            let found = check_sshd(&[rec], Timestamp::from_unix_seconds(T));
            assert_eq!(found[0].id, "host.sshd.root-accepted", "{found:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let f = parse_utmp(&bytes);
            if let Some(l) = f.layout {
                proptest::prop_assert_eq!(f.records.len() * l.record_size() + f.trailing_bytes, bytes.len());
            }
            let _ = check_logins(LoginFile::Btmp, "b", &f, Timestamp::from_unix_seconds(0));
        }

        #[test]
        fn arbitrary_sshd_text_never_panics(s in "\\PC{0,80}") {
            let _ = parse_sshd(&s);
            let _ = parse_sshd(&format!("Accepted {s}"));
            let _ = parse_sshd(&format!("Failed password for {s}"));
        }
    }

    #[test]
    fn wtmpdb_and_lastlog2_rows() {
        let since = Timestamp::from_unix_seconds(1_788_249_000);
        let rows = vec![
            WtmpdbRow {
                id: 2,
                kind: WTMPDB_USER_PROCESS,
                user: "root".into(),
                login_usec: Some(1_788_249_700_123_456),
                logout_usec: None,
                tty: "pts/0".into(),
                remote_host: "203.0.113.66".into(),
                service: "sshd".into(),
            },
            WtmpdbRow {
                id: 1,
                kind: WTMPDB_BOOT_TIME,
                user: "reboot".into(),
                login_usec: Some(1_788_249_600_000_000),
                tty: "~".into(),
                remote_host: "6.12.48+deb13-amd64".into(),
                ..WtmpdbRow::default()
            },
            // No login time: skipped.
            WtmpdbRow {
                id: 3,
                kind: WTMPDB_USER_PROCESS,
                user: "x".into(),
                ..WtmpdbRow::default()
            },
        ];
        let recs = wtmpdb_records(&rows);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].kind, RecordType::BootTime);
        assert_eq!(recs[1].addr, Some("203.0.113.66".parse().unwrap()));
        assert_eq!(recs[1].line, "pts/0 (sshd)");
        assert_eq!(recs[1].time.unix_micros, 1_788_249_700_123_456);
        let f = check_records(LoginFile::Wtmp, "wtmp.db", &recs, since);
        let ids: Vec<&str> = f.iter().map(|f| f.id).collect();
        assert_eq!(ids, ["host.login.root-remote", "host.login.recent"]);

        let ll = lastlog2_records(&[
            Lastlog2Row {
                name: "alice".into(),
                time: 1_788_249_700,
                tty: "pts/1".into(),
                remote_host: "192.0.2.15".into(),
                service: "sshd".into(),
            },
            Lastlog2Row {
                name: "bob".into(),
                time: 0,
                ..Lastlog2Row::default()
            },
            Lastlog2Row {
                name: "carol".into(),
                time: 1_600_000_000,
                tty: "tty1".into(),
                ..Lastlog2Row::default()
            },
        ]);
        assert_eq!(
            ll.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
            ["carol", "alice"]
        );
        let f = check_records(LoginFile::Lastlog2, "lastlog2.db", &ll, since);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, "host.lastlog.recent");
        assert!(f[0].message.starts_with("1 accounts"), "{}", f[0].message);
    }
}
