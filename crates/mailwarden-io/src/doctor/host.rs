//! Host triage, read-only: reads login records, sshd logs, shell histories
//! and start-up files, users, sudoers, `authorized_keys`, crontabs, systemd
//! units, listening sockets and `dpkg --verify` under a root directory, and
//! turns them into findings with the pure decoders of
//! `mailwarden_core::doctor::{logins, host_files}`.
//!
//! Every path is read under [`HostConfig::root`] so tests (and an analyst
//! with a mounted disk image) can point the triage at another tree. procfs
//! and dpkg describe the running host, so they are only consulted when
//! [`HostConfig::live`] says the root is `/`. Files are opened read-only and
//! nothing is written; a file that cannot be read is a finding, not an error.
//!
//! Finding ids made here (area `host`), besides those of
//! `mailwarden_core::doctor::logins`:
//! - `host.file.unreadable` (info): a file exists but could not be read
//!   (usually: not running as root).
//! - `host.login.not-checked` (info): utmp/btmp absent, or wtmp absent with
//!   no wtmpdb either.
//! - `host.logindb.unreadable` (warning): wtmpdb's or lastlog2's database
//!   exists but is no readable SQLite database with the expected table;
//!   `host.utmp.empty` (warning) for a wtmpdb without rows. Both databases
//!   are read from a private copy (with the WAL), never opened in place.
//! - `host.sshd.not-checked` (info): no auth.log/secure under the root and
//!   no journal (sshd's journal entries are read with `journalctl -o json`).
//! - `host.history.disabled` (fail): a start-up file disables or erases history.
//! - `host.history.devnull` (fail): a history file is a symlink to /dev/null.
//! - `host.history.truncated` (warning): an empty history of a login user.
//! - `host.history.tamper-command` (warning): a history holds commands that
//!   disable or erase history.
//! - `host.history.recent` (info): a history written within the window.
//! - `host.user.uid0` (fail): a user other than root has UID 0.
//! - `host.user.recent` (warning; info for a system account without a
//!   login shell, as packages add): a password set within the window (a new
//!   user or a changed password).
//! - `host.user.passwd-changed` (warning): /etc/passwd, /etc/shadow or
//!   /etc/group changed within the window.
//! - `host.user.not-checked` (info): /etc/passwd absent.
//! - `host.sudoers.changed` (warning), `host.sudoers.nopasswd` (warning),
//!   `host.sudoers.all` (warning): recent sudoers changes, password-less and
//!   unusual full-root rules.
//! - `host.ssh.authorized-keys` (info): keys per file.
//! - `host.ssh.authorized-keys-changed` (warning): changed within the window.
//! - `host.ssh.authorized-keys-command` (warning): a key with a forced command.
//! - `host.cron.changed` (warning), `host.cron.suspicious` (warning):
//!   crontabs changed within the window, and jobs that download or run code
//!   from temporary directories.
//! - `host.systemd.unit-changed` (warning; info for a link to a unit a
//!   package ships, as `systemctl enable` makes): a unit or timer under
//!   /etc/systemd/{system,user}, /run/systemd/system,
//!   /usr/local/lib/systemd/system or a user's ~/.config/systemd/user
//!   changed within the window.
//! - `host.port.listening` (info): a listening socket and its process.
//! - `host.port.not-checked` (info): procfs not read (root is not /).
//! - `host.package.modified` (warning), `host.package.conffile-modified`
//!   (info), `host.package.not-checked` (info): `dpkg --verify`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailwarden_core::doctor::host_files::{
    Proto, cron_entries, parse_authorized_keys, parse_dpkg_verify, parse_passwd, parse_proc_net,
    parse_shadow_lastchg, scan_cron, scan_history_settings, scan_sudoers, socket_inode,
};
use mailwarden_core::doctor::logins::{
    Lastlog2Row, LoginFile, SshdRecord, WtmpdbRow, check_logins, check_records, check_sshd, is_sshd_program,
    lastlog2_records, parse_sshd, parse_utmp, wtmpdb_records,
};
use mailwarden_core::doctor::{Area, Finding, Severity};
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::time::{TimeContext, Timestamp};

use crate::input::{InputSource, LineReader, open_input};

/// What to triage and how far back "recent" goes.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The tree to read (`/` for this host).
    pub root: PathBuf,
    /// Start of the window: changes and logins at or after it are recent.
    pub since: SystemTime,
    /// Whether `root` is the running host, so procfs and dpkg apply.
    pub live: bool,
    /// Run `dpkg --verify` (live hosts only; it takes tens of seconds).
    pub dpkg: bool,
    /// Longest `dpkg --verify` may run before it is stopped.
    pub dpkg_timeout: Duration,
}

/// wtmpdb's database, relative to the root.
const WTMPDB: &str = "/var/lib/wtmpdb/wtmp.db";
/// lastlog2's database, relative to the root.
const LASTLOG2: &str = "/var/lib/lastlog/lastlog2.db";
/// Most rows read from a login database.
const MAX_DB_ROWS: usize = 2_000_000;

/// Rows of one login database.
enum DbRows {
    Wtmpdb(Vec<WtmpdbRow>),
    Lastlog2(Vec<Lastlog2Row>),
}

/// Opens a copy of a login database (and its WAL, when there is one) in a
/// private temporary directory and reads its rows.
fn read_login_db(which: LoginFile, db: &[u8], wal: Option<&[u8]>) -> Result<DbRows, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let copy = dir.path().join("login.db");
    std::fs::write(&copy, db).map_err(|e| format!("copying it: {e}"))?;
    if let Some(wal) = wal {
        std::fs::write(dir.path().join("login.db-wal"), wal).map_err(|e| format!("copying its WAL: {e}"))?;
    }
    let conn = rusqlite::Connection::open_with_flags(
        &copy,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let text = |row: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<String> {
        Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    match which {
        LoginFile::Lastlog2 => {
            let mut stmt = conn
                .prepare("SELECT Name, Time, TTY, RemoteHost, Service FROM Lastlog2")
                .map_err(|e| format!("not a lastlog2 database: {e}"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Lastlog2Row {
                        name: text(r, 0)?,
                        time: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                        tty: text(r, 2)?,
                        remote_host: text(r, 3)?,
                        service: text(r, 4)?,
                    })
                })
                .map_err(|e| e.to_string())?
                .take(MAX_DB_ROWS)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            Ok(DbRows::Lastlog2(rows))
        }
        _ => {
            let mut stmt = conn
                .prepare("SELECT ID, Type, User, Login, Logout, TTY, RemoteHost, Service FROM wtmp ORDER BY ID DESC")
                .map_err(|e| format!("not a wtmpdb database: {e}"))?;
            let mut rows = stmt
                .query_map([], |r| {
                    Ok(WtmpdbRow {
                        id: r.get(0)?,
                        kind: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                        user: text(r, 2)?,
                        login_usec: r.get(3)?,
                        logout_usec: r.get(4)?,
                        tty: text(r, 5)?,
                        remote_host: text(r, 6)?,
                        service: text(r, 7)?,
                    })
                })
                .map_err(|e| e.to_string())?
                .take(MAX_DB_ROWS)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            rows.reverse();
            Ok(DbRows::Wtmpdb(rows))
        }
    }
}

/// Largest login file read (bytes); the rest is ignored and said so.
const MAX_LOGIN_FILE: u64 = 512 * 1024 * 1024;
/// Largest text file read (history, crontab, keys).
const MAX_TEXT_FILE: u64 = 16 * 1024 * 1024;
/// Longest log line kept.
const MAX_LINE: usize = 16 * 1024;
/// The finding for a journal that could not be read.
fn journal_not_read(dir: &str, why: String) -> Finding {
    Finding::new(
        "host.sshd.journal-unreadable",
        Area::Host,
        Severity::Info,
        dir,
        format!("sshd's journal entries were not read: {why}"),
    )
    .fix("run `mailwarden doctor host` as root on a host with journalctl")
}

/// Most journal entries asked of journalctl (the newest ones).
const MAX_JOURNAL_ENTRIES: usize = 100_000;
/// Most sshd events kept.
const MAX_SSHD_EVENTS: usize = 200_000;
/// Most files looked at per directory.
const MAX_DIR_ENTRIES: usize = 10_000;
/// Most `dpkg --verify` lines read.
const MAX_DPKG_LINES: usize = 20_000;
/// Most evidence lines per finding.
const MAX_EVIDENCE: usize = 50;

fn ts(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp::from_unix_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        Err(e) => Timestamp::from_unix_micros(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
    }
}

/// Runs every host check and returns the findings.
pub fn check_host(cfg: &HostConfig) -> Vec<Finding> {
    let mut t = Triage {
        cfg,
        since: ts(cfg.since),
        out: Vec::new(),
    };
    t.logins();
    t.sshd_log();
    let users = t.users();
    t.histories(&users);
    t.sudoers();
    t.authorized_keys(&users);
    t.cron();
    t.systemd(&users);
    t.ports();
    t.dpkg();
    t.out
}

struct Triage<'a> {
    cfg: &'a HostConfig,
    since: Timestamp,
    out: Vec<Finding>,
}

/// A user with a home directory that exists under the root.
struct Home {
    user: String,
    dir: PathBuf,
    login_shell: bool,
}

fn modified(meta: &fs::Metadata) -> Option<SystemTime> {
    meta.modified().ok()
}

impl Triage<'_> {
    /// A host path under the root.
    fn path(&self, p: &str) -> PathBuf {
        self.cfg.root.join(p.trim_start_matches('/'))
    }

    fn recent(&self, meta: &fs::Metadata) -> bool {
        modified(meta).is_some_and(|m| m >= self.cfg.since)
    }

    fn mtime(meta: &fs::Metadata) -> String {
        modified(meta)
            .map(|m| ts(m).to_string())
            .unwrap_or_else(|| "?".into())
    }

    fn unreadable(&mut self, path: &Path, e: &io::Error) {
        self.out.push(
            Finding::new(
                "host.file.unreadable",
                Area::Host,
                Severity::Info,
                path.display().to_string(),
                format!("not checked: cannot read it ({e})"),
            )
            .evidence(format!("{}: {e}", path.display()))
            .fix("run `mailwarden doctor host` as root to read it"),
        );
    }

    /// Reads at most `max` bytes; `Ok(None)` when the file does not exist,
    /// and other errors become `host.file.unreadable`.
    fn read(&mut self, path: &Path, max: u64) -> Option<Vec<u8>> {
        let r = File::open(path).and_then(|f| {
            let mut b = Vec::new();
            f.take(max).read_to_end(&mut b)?;
            Ok(b)
        });
        match r {
            Ok(b) => {
                let part = if b.len() as u64 >= max {
                    format!("first {} bytes", b.len())
                } else {
                    "whole file".to_owned()
                };
                super::evidence::file(path, &b, &part);
                Some(b)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.unreadable(path, &e);
                None
            }
        }
    }

    fn read_text(&mut self, path: &Path) -> Option<String> {
        self.read(path, MAX_TEXT_FILE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Regular files (and symlinks) directly in a directory, sorted.
    fn list(&self, dir: &Path) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .take(MAX_DIR_ENTRIES)
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    fn logins(&mut self) {
        let files = [
            (LoginFile::Utmp, ["/var/run/utmp", "/run/utmp"].as_slice()),
            (LoginFile::Wtmp, ["/var/log/wtmp"].as_slice()),
            (LoginFile::Btmp, ["/var/log/btmp"].as_slice()),
        ];
        for (which, candidates) in files {
            let Some(path) = candidates
                .iter()
                .map(|p| self.path(p))
                .find(|p| p.symlink_metadata().is_ok())
            else {
                let f = Finding::new(
                    "host.login.not-checked",
                    Area::Host,
                    Severity::Info,
                    candidates[0],
                    format!("{} is absent: not checked", candidates[0]),
                )
                .evidence(format!("{}: not found", self.path(candidates[0]).display()));
                if which == LoginFile::Wtmp && self.path(WTMPDB).exists() {
                    // The history is in wtmpdb, read below: no finding.
                    continue;
                }
                self.out.push(f);
                continue;
            };
            let Some(bytes) = self.read(&path, MAX_LOGIN_FILE) else {
                continue;
            };
            let file = parse_utmp(&bytes);
            let shown = path.display().to_string();
            self.out.extend(check_logins(which, &shown, &file, self.since));
        }
        self.login_databases();
    }

    /// wtmpdb and lastlog2: SQLite databases that replace wtmp and lastlog
    /// where /var/log/wtmp is gone (Y2038). Read from a private copy so that
    /// SQLite's locking, journal recovery or WAL checkpoint never touches the
    /// original (a read-only open of a WAL database still writes its -shm).
    fn login_databases(&mut self) {
        for (which, rel) in [(LoginFile::Wtmp, WTMPDB), (LoginFile::Lastlog2, LASTLOG2)] {
            let path = self.path(rel);
            if path.symlink_metadata().is_err() {
                continue;
            }
            let shown = path.display().to_string();
            let Some(db) = self.read(&path, MAX_LOGIN_FILE) else {
                continue;
            };
            let wal_path = PathBuf::from(format!("{}-wal", path.display()));
            let wal = if wal_path.exists() {
                self.read(&wal_path, MAX_LOGIN_FILE)
            } else {
                None
            };
            let records = match read_login_db(which, &db, wal.as_deref()) {
                Ok(DbRows::Wtmpdb(rows)) => wtmpdb_records(&rows),
                Ok(DbRows::Lastlog2(rows)) => lastlog2_records(&rows),
                Err(e) => {
                    self.out.push(
                        Finding::new(
                            "host.logindb.unreadable",
                            Area::Host,
                            Severity::Warning,
                            &shown,
                            format!("the login database cannot be read: {e}"),
                        )
                        .evidence(format!("{shown}: {} bytes, {e}", db.len()))
                        .fix("inspect it with `wtmpdb last -d FILE` or `sqlite3 FILE .schema`; a damaged or replaced login database can be tampering"),
                    );
                    continue;
                }
            };
            if records.is_empty() && which == LoginFile::Wtmp {
                self.out.push(
                    Finding::new(
                        "host.utmp.empty",
                        Area::Host,
                        Severity::Warning,
                        &shown,
                        "wtmpdb holds no login or boot: the login history may have been cleared".to_owned(),
                    )
                    .evidence(format!("{shown}: table wtmp has no rows"))
                    .fix("compare with the sshd log and the journal; an empty history after logins took place means it was wiped"),
                );
                continue;
            }
            self.out
                .extend(check_records(which, &shown, &records, self.since));
        }
    }

    fn sshd_log(&mut self) {
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in ["/var/log"] {
            for p in self.list(&self.path(dir)) {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("auth.log") || name.starts_with("secure") {
                    files.push(p);
                }
            }
        }
        let mut records = Vec::new();
        let journal = self.sshd_journal(&mut records);
        if files.is_empty() && !journal {
            self.out.push(
                Finding::new(
                    "host.sshd.not-checked",
                    Area::Host,
                    Severity::Info,
                    "/var/log/auth.log",
                    "no auth.log or secure under /var/log and no readable journal: sshd logins not checked",
                )
                .evidence(format!(
                    "{}: no auth.log*, secure*; {}: no journal",
                    self.path("/var/log").display(),
                    self.path("/var/log/journal").display()
                ))
                .fix("make sshd's log reachable: keep the journal (Storage=persistent) or install rsyslog"),
            );
            return;
        }
        for path in files {
            // A file last written before the window holds nothing recent.
            match fs::metadata(&path) {
                Ok(m) if !self.recent(&m) => continue,
                Ok(_) => {}
                Err(e) => {
                    self.unreadable(&path, &e);
                    continue;
                }
            }
            if super::evidence::active() {
                let copy = File::open(&path).and_then(|f| {
                    let mut b = Vec::new();
                    f.take(super::evidence::MAX_ARTIFACT_BYTES as u64)
                        .read_to_end(&mut b)?;
                    Ok(b)
                });
                if let Ok(b) = copy {
                    super::evidence::file(&path, &b, "the log file as stored (compressed if it is)");
                }
            }
            let opened = match open_input(&InputSource::File(path.clone())) {
                Ok(o) => o,
                Err(e) => {
                    self.out.push(
                        Finding::new(
                            "host.file.unreadable",
                            Area::Host,
                            Severity::Info,
                            path.display().to_string(),
                            format!("not checked: {e}"),
                        )
                        .evidence(e.to_string())
                        .fix("run `mailwarden doctor host` as root to read it"),
                    );
                    continue;
                }
            };
            let reference = opened.modified.map(ts).unwrap_or_else(|| ts(SystemTime::now()));
            let mut framer = Framer::new(FramerConfig {
                format: Format::Auto,
                program_hint: None,
                time: TimeContext::utc(reference),
            });
            let mut reader = LineReader::new(opened.reader, MAX_LINE);
            let mut n = 0usize;
            loop {
                let (line, _) = match reader.next_line() {
                    Ok(Some(l)) => l,
                    Ok(None) => break,
                    Err(e) => {
                        self.unreadable(&path, &e);
                        break;
                    }
                };
                n += 1;
                let text = String::from_utf8_lossy(line);
                let Ok(fr) = framer.frame(&text) else { continue };
                if !is_sshd_program(&fr.program) {
                    continue;
                }
                if let Some(ev) = parse_sshd(&fr.message)
                    && records.len() < MAX_SSHD_EVENTS
                {
                    records.push(SshdRecord::new(&ev, fr.ts, format!("{}:{n}", path.display())));
                }
            }
        }
        records.sort_by_key(|r| r.time);
        self.out.extend(check_sshd(&records, self.since));
    }

    /// sshd's entries of the systemd journal (`journalctl -o json`, read
    /// only) under the root's /var/log/journal, and /run/log/journal on the
    /// live host; returns whether a journal was read.
    fn sshd_journal(&mut self, records: &mut Vec<SshdRecord>) -> bool {
        let mut dirs = vec![self.path("/var/log/journal")];
        if self.cfg.live {
            dirs.push(PathBuf::from("/run/log/journal"));
        }
        let since = self
            .cfg
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut read_any = false;
        for dir in dirs {
            let has_files = fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
            if !has_files {
                continue;
            }
            let dir_s = dir.display().to_string();
            let since_s = format!("@{since}");
            let lines_s = MAX_JOURNAL_ENTRIES.to_string();
            let args = [
                "journalctl",
                "-D",
                dir_s.as_str(),
                "-o",
                "json",
                "--no-pager",
                "--since",
                since_s.as_str(),
                "-n",
                lines_s.as_str(),
                "_COMM=sshd",
                "+",
                "_COMM=sshd-session",
            ];
            let out = match Command::new(args[0])
                .args(&args[1..])
                .stdin(Stdio::null())
                .output()
            {
                Ok(o) => o,
                Err(e) => {
                    self.out
                        .push(journal_not_read(&dir_s, format!("cannot run journalctl ({e})")));
                    continue;
                }
            };
            super::evidence::command(&args, &out.stdout, &out.status.to_string());
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                self.out
                    .push(journal_not_read(&dir_s, format!("journalctl failed: {err}")));
                continue;
            }
            read_any = true;
            let mut framer = Framer::new(FramerConfig {
                format: Format::Auto,
                program_hint: None,
                time: TimeContext::utc(ts(SystemTime::now())),
            });
            for (n, line) in out.stdout.split(|b| *b == b'\n').enumerate() {
                if line.is_empty() || line.len() > MAX_LINE {
                    continue;
                }
                let text = String::from_utf8_lossy(line);
                let Ok(fr) = framer.frame(&text) else { continue };
                if !is_sshd_program(&fr.program) {
                    continue;
                }
                if let Some(ev) = parse_sshd(&fr.message)
                    && records.len() < MAX_SSHD_EVENTS
                {
                    records.push(SshdRecord::new(
                        &ev,
                        fr.ts,
                        format!("journal {dir_s} entry {}", n + 1),
                    ));
                }
            }
        }
        read_any
    }

    fn users(&mut self) -> Vec<Home> {
        let passwd = self.path("/etc/passwd");
        let Some(text) = self.read_text(&passwd) else {
            self.out.push(
                Finding::new(
                    "host.user.not-checked",
                    Area::Host,
                    Severity::Info,
                    "/etc/passwd",
                    "no /etc/passwd: users not checked",
                )
                .evidence(format!("{}: not found", passwd.display())),
            );
            return Vec::new();
        };
        let (users, _bad) = parse_passwd(&text);
        for u in users.iter().filter(|u| u.uid == 0 && u.name != "root") {
            self.out.push(
                Finding::new(
                    "host.user.uid0",
                    Area::Host,
                    Severity::Fail,
                    u.name.clone(),
                    format!("user {:?} has UID 0: a second root account", u.name),
                )
                .evidence(format!("{}:{}: {}:…:0:…:{}:{}", passwd.display(), u.line, u.name, u.home, u.shell))
                .fix("find out who added it (auth.log, wtmp); lock it (`usermod -L`) and remove it (`userdel`) unless it is documented"),
            );
        }
        for p in ["/etc/passwd", "/etc/shadow", "/etc/group"] {
            let path = self.path(p);
            if let Ok(m) = fs::metadata(&path)
                && self.recent(&m)
            {
                self.out.push(
                    Finding::new(
                        "host.user.passwd-changed",
                        Area::Host,
                        Severity::Warning,
                        p,
                        format!("{p} changed at {}", Self::mtime(&m)),
                    )
                    .evidence(format!("{}: modified {}", path.display(), Self::mtime(&m)))
                    .fix(format!("compare with the backup the tools keep: `diff {p}- {p}`")),
                );
            }
        }
        let shadow = self.path("/etc/shadow");
        if let Some(text) = self.read_text(&shadow) {
            let since_days = self.since.unix_micros.div_euclid(86_400_000_000);
            for (name, days) in parse_shadow_lastchg(&text)
                .into_iter()
                .filter(|(_, d)| *d >= since_days)
            {
                // A system account without a login shell is what a package
                // installation adds; an account people can log in with is
                // worth a look.
                let system = users
                    .iter()
                    .find(|u| u.name == name)
                    .is_some_and(|u| u.uid < 1000 && !u.has_login_shell());
                let (sev, what) = if system {
                    (Severity::Info, "system account (no login shell) added or changed")
                } else {
                    (Severity::Warning, "new user or changed password")
                };
                self.out.push(
                    Finding::new(
                        "host.user.recent",
                        Area::Host,
                        sev,
                        name.clone(),
                        format!("password of {name:?} set within the window ({what})"),
                    )
                    .evidence(format!(
                        "{}: {name} last change day {days} (days since 1970)",
                        shadow.display()
                    ))
                    .fix("confirm the account and the change are expected"),
                );
            }
        }
        let mut seen = BTreeSet::new();
        users
            .into_iter()
            .filter_map(|u| {
                let dir = self.path(&u.home);
                (u.home.starts_with('/') && u.home != "/" && dir.is_dir() && seen.insert(dir.clone())).then(
                    || Home {
                        login_shell: u.has_login_shell(),
                        user: u.name,
                        dir,
                    },
                )
            })
            .collect()
    }

    fn tamper_settings(&mut self, path: &Path, id: &'static str, sev: Severity) {
        let Some(text) = self.read_text(path) else { return };
        let signs = scan_history_settings(&text);
        if signs.is_empty() {
            return;
        }
        let what: BTreeSet<&str> = signs.iter().map(|s| s.sign).collect();
        let what: Vec<&str> = what.into_iter().collect();
        let (msg, fix) = if id == "host.history.disabled" {
            (
                format!("shell history is disabled or erased here: {}", what.join(", ")),
                "remove these lines and find out who added them (file time, other tampering); an intruder hides commands this way",
            )
        } else {
            (
                format!(
                    "commands that disable or erase history were run: {}",
                    what.join(", ")
                ),
                "someone tried to hide commands: look at the lines before, the login records of that time, and other users' histories",
            )
        };
        let mut f = Finding::new(id, Area::Host, sev, path.display().to_string(), msg).fix(fix);
        for s in signs.iter().take(MAX_EVIDENCE) {
            f = f.evidence(format!("{}:{}: {}", path.display(), s.line, s.text));
        }
        self.out.push(f);
    }

    fn histories(&mut self, homes: &[Home]) {
        // System-wide start-up files.
        let mut system = vec![
            self.path("/etc/profile"),
            self.path("/etc/bash.bashrc"),
            self.path("/etc/environment"),
            self.path("/etc/zsh/zshrc"),
            self.path("/etc/zsh/zshenv"),
        ];
        system.extend(self.list(&self.path("/etc/profile.d")));
        for p in system {
            self.tamper_settings(&p, "host.history.disabled", Severity::Fail);
        }
        const RC: &[&str] = &[
            ".bashrc",
            ".profile",
            ".bash_profile",
            ".bash_login",
            ".bash_logout",
            ".zshrc",
            ".zprofile",
            ".zshenv",
            ".kshrc",
            ".mkshrc",
        ];
        const HIST: &[&str] = &[
            ".bash_history",
            ".zsh_history",
            ".history",
            ".sh_history",
            ".ash_history",
            ".mysql_history",
        ];
        for h in homes {
            for rc in RC {
                self.tamper_settings(&h.dir.join(rc), "host.history.disabled", Severity::Fail);
            }
            for name in HIST {
                let path = h.dir.join(name);
                let Ok(meta) = path.symlink_metadata() else {
                    continue;
                };
                let shown = path.display().to_string();
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    if target == "/dev/null" {
                        self.out.push(
                            Finding::new("host.history.devnull", Area::Host, Severity::Fail, shown.clone(), format!("{}'s history is a link to /dev/null: nothing is kept", h.user))
                                .evidence(format!("{shown} -> {target} (link made {})", Self::mtime(&meta)))
                                .fix("remove the link (`rm` it; the shell recreates the file) and find out who made it: it hides an intruder's commands"),
                        );
                    }
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                if meta.len() == 0 && h.login_shell {
                    self.out.push(
                        Finding::new("host.history.truncated", Area::Host, Severity::Warning, shown.clone(), format!("{}'s history is empty", h.user))
                            .evidence(format!("{shown}: 0 bytes, modified {}", Self::mtime(&meta)))
                            .fix("an emptied history of a user who logs in can mean it was wiped (`> ~/.bash_history`); compare with wtmp and the sshd log"),
                    );
                } else if self.recent(&meta) {
                    self.out.push(
                        Finding::new(
                            "host.history.recent",
                            Area::Host,
                            Severity::Info,
                            shown.clone(),
                            format!("{}'s history was written at {}", h.user, Self::mtime(&meta)),
                        )
                        .evidence(format!(
                            "{shown}: {} bytes, modified {}",
                            meta.len(),
                            Self::mtime(&meta)
                        )),
                    );
                }
                self.tamper_settings(&path, "host.history.tamper-command", Severity::Warning);
            }
        }
    }

    fn sudoers(&mut self) {
        let mut files = vec![self.path("/etc/sudoers")];
        files.extend(self.list(&self.path("/etc/sudoers.d")));
        for path in files {
            let Ok(meta) = fs::metadata(&path) else { continue };
            let shown = path.display().to_string();
            if self.recent(&meta) {
                self.out.push(
                    Finding::new(
                        "host.sudoers.changed",
                        Area::Host,
                        Severity::Warning,
                        shown.clone(),
                        format!("sudoers file changed at {}", Self::mtime(&meta)),
                    )
                    .evidence(format!("{shown}: modified {}", Self::mtime(&meta)))
                    .fix("review it with `visudo -c -f FILE` and confirm the change is yours"),
                );
            }
            let Some(text) = self.read_text(&path) else {
                continue;
            };
            for r in scan_sudoers(&text) {
                let (id, msg) = if r.kind == "nopasswd" {
                    (
                        "host.sudoers.nopasswd",
                        "a rule runs commands as root without a password",
                    )
                } else {
                    (
                        "host.sudoers.all",
                        "a rule grants full root to a principal other than root or the sudo/admin/wheel groups",
                    )
                };
                self.out.push(
                    Finding::new(id, Area::Host, Severity::Warning, shown.clone(), msg)
                        .evidence(format!("{shown}:{}: {}", r.line, r.text))
                        .fix("confirm the rule is intended; limit it to the commands needed"),
                );
            }
        }
    }

    fn authorized_keys(&mut self, homes: &[Home]) {
        for h in homes {
            for name in [".ssh/authorized_keys", ".ssh/authorized_keys2"] {
                let path = h.dir.join(name);
                let Ok(meta) = fs::metadata(&path) else { continue };
                let Some(text) = self.read_text(&path) else {
                    continue;
                };
                let keys = parse_authorized_keys(&text);
                let shown = path.display().to_string();
                let mut info = Finding::new(
                    "host.ssh.authorized-keys",
                    Area::Host,
                    Severity::Info,
                    shown.clone(),
                    format!("{} keys let someone log in as {}", keys.keys, h.user),
                )
                .evidence(format!(
                    "{shown}: {} keys, modified {}",
                    keys.keys,
                    Self::mtime(&meta)
                ));
                for c in keys.comments.iter().take(MAX_EVIDENCE) {
                    info = info.evidence(format!("key comment: {c}"));
                }
                self.out.push(info);
                if self.recent(&meta) {
                    self.out.push(
                        Finding::new(
                            "host.ssh.authorized-keys-changed",
                            Area::Host,
                            Severity::Warning,
                            shown.clone(),
                            format!("{}'s authorized_keys changed at {}", h.user, Self::mtime(&meta)),
                        )
                        .evidence(format!("{shown}: {} keys, modified {}", keys.keys, Self::mtime(&meta)))
                        .fix("check every key against its owner; remove unknown keys, then look for how they were added"),
                    );
                }
                for (line, opts) in keys.forced_commands.iter().take(MAX_EVIDENCE) {
                    self.out.push(
                        Finding::new(
                            "host.ssh.authorized-keys-command",
                            Area::Host,
                            Severity::Warning,
                            shown.clone(),
                            "a key runs a forced command (command=)",
                        )
                        .evidence(format!("{shown}:{line}: {opts}"))
                        .fix("confirm the forced command is yours (backups, git); a forced command is also a way to keep a backdoor"),
                    );
                }
            }
        }
    }

    fn cron(&mut self) {
        let mut files = vec![self.path("/etc/crontab"), self.path("/etc/anacrontab")];
        for d in [
            "/etc/cron.d",
            "/var/spool/cron/crontabs",
            "/var/spool/cron",
            "/etc/cron.hourly",
            "/etc/cron.daily",
            "/etc/cron.weekly",
            "/etc/cron.monthly",
        ] {
            files.extend(self.list(&self.path(d)).into_iter().filter(|p| p.is_file()));
        }
        for path in files {
            let Ok(meta) = fs::metadata(&path) else { continue };
            let Some(text) = self.read_text(&path) else {
                continue;
            };
            let shown = path.display().to_string();
            if self.recent(&meta) {
                let mut f = Finding::new(
                    "host.cron.changed",
                    Area::Host,
                    Severity::Warning,
                    shown.clone(),
                    format!("cron file changed at {}", Self::mtime(&meta)),
                )
                .evidence(format!("{shown}: modified {}", Self::mtime(&meta)))
                .fix("read the jobs and confirm each one; cron is the most common persistence");
                for e in cron_entries(&text, 20) {
                    f = f.evidence(e);
                }
                self.out.push(f);
            }
            for s in scan_cron(&text) {
                self.out.push(
                    Finding::new(
                        "host.cron.suspicious",
                        Area::Host,
                        Severity::Warning,
                        shown.clone(),
                        format!("a job that {}", s.sign),
                    )
                    .evidence(format!("{shown}:{}: {}", s.line, s.text))
                    .fix("confirm the job is yours; intruders persist with jobs that fetch and run code"),
                );
            }
        }
    }

    fn systemd(&mut self, homes: &[Home]) {
        // Where units are made by hand: the admin's (and an intruder's)
        // system and user unit directories, runtime units, and every user's
        // own units, which run at their login without root. Package units
        // under /lib are dpkg's to verify.
        let mut bases: Vec<PathBuf> = [
            "/etc/systemd/system",
            "/etc/systemd/user",
            "/run/systemd/system",
            "/usr/local/lib/systemd/system",
        ]
        .iter()
        .map(|p| self.path(p))
        .collect();
        bases.extend(homes.iter().map(|h| h.dir.join(".config/systemd/user")));
        let mut units = Vec::new();
        for base in bases {
            for p in self.list(&base) {
                if p.is_dir() && !p.is_symlink() {
                    units.extend(self.list(&p));
                } else {
                    units.push(p);
                }
            }
        }
        for path in units {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.ends_with(".timer") || name.ends_with(".service") || name.ends_with(".conf")) {
                continue;
            }
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if !self.recent(&meta) {
                continue;
            }
            let shown = path.display().to_string();
            // `systemctl enable` of a unit a package ships only links to it.
            let shipped = fs::read_link(&path).is_ok_and(|t| {
                t.starts_with("/lib/systemd/system") || t.starts_with("/usr/lib/systemd/system")
            });
            let mut f = Finding::new(
                "host.systemd.unit-changed",
                Area::Host,
                if shipped {
                    Severity::Info
                } else {
                    Severity::Warning
                },
                shown.clone(),
                if shipped {
                    format!(
                        "systemd unit {name} (shipped by a package) enabled at {}",
                        Self::mtime(&meta)
                    )
                } else {
                    format!("systemd unit {name} changed at {}", Self::mtime(&meta))
                },
            )
            .evidence(format!("{shown}: modified {}", Self::mtime(&meta)))
            .fix("confirm the unit (`systemctl cat UNIT`); timers and services are a common persistence");
            if let Ok(target) = fs::read_link(&path) {
                f = f.evidence(format!("{shown} -> {}", target.display()));
            } else if let Some(text) = self.read_text(&path) {
                for l in text
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        l.starts_with("Exec")
                            || l.starts_with("OnCalendar")
                            || l.starts_with("OnBoot")
                            || l.starts_with("Unit=")
                    })
                    .take(10)
                {
                    f = f.evidence(l.chars().take(200).collect::<String>());
                }
            }
            self.out.push(f);
        }
    }

    fn ports(&mut self) {
        if !self.cfg.live {
            self.out.push(Finding::new(
                "host.port.not-checked",
                Area::Host,
                Severity::Info,
                "procfs",
                format!(
                    "listening ports not checked: procfs describes the running host, not {}",
                    self.cfg.root.display()
                ),
            ));
            return;
        }
        let mut sockets = Vec::new();
        for (file, proto) in [
            ("tcp", Proto::Tcp),
            ("tcp6", Proto::Tcp),
            ("udp", Proto::Udp),
            ("udp6", Proto::Udp),
        ] {
            let path = PathBuf::from("/proc/net").join(file);
            if let Ok(text) = fs::read_to_string(&path) {
                sockets.extend(
                    parse_proc_net(&text, proto)
                        .into_iter()
                        .filter(|s| s.is_listening()),
                );
            }
        }
        let wanted: BTreeSet<u64> = sockets.iter().map(|s| s.inode).collect();
        let owners = socket_owners(&wanted);
        let mut seen = BTreeSet::new();
        for s in sockets {
            let key = (s.proto.as_str(), s.local);
            if !seen.insert(key) {
                continue;
            }
            let subject = format!("{} {}", s.proto.as_str(), s.local);
            let owner = owners.get(&s.inode);
            let msg = match owner {
                Some((pid, comm)) => format!(
                    "{comm} (pid {pid}) listens on {} port {}",
                    s.local.ip(),
                    s.local.port()
                ),
                None => format!(
                    "a process of uid {} listens on {} port {} (owner not visible; run as root)",
                    s.uid,
                    s.local.ip(),
                    s.local.port()
                ),
            };
            let mut f = Finding::new("host.port.listening", Area::Host, Severity::Info, subject, msg)
                .evidence(format!(
                    "/proc/net/{}{}: {} uid {} inode {}",
                    s.proto.as_str(),
                    if s.local.is_ipv6() { "6" } else { "" },
                    s.local,
                    s.uid,
                    s.inode
                ));
            if let Some((pid, comm)) = owner {
                f = f.evidence(format!("/proc/{pid}/comm: {comm}"));
            }
            self.out.push(f);
        }
    }

    fn dpkg(&mut self) {
        let not_checked = |why: String| {
            Finding::new(
                "host.package.not-checked",
                Area::Host,
                Severity::Info,
                "dpkg",
                why,
            )
        };
        if !self.cfg.live {
            self.out.push(not_checked(format!(
                "package files not verified: dpkg describes the running host, not {}",
                self.cfg.root.display()
            )));
            return;
        }
        if !self.cfg.dpkg {
            self.out.push(not_checked(
                "package files not verified (dpkg --verify was switched off)".into(),
            ));
            return;
        }
        let child = Command::new("dpkg")
            .arg("--verify")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                self.out.push(not_checked(format!(
                    "package files not verified: cannot run dpkg ({e})"
                )));
                return;
            }
        };
        let Some(stdout) = child.stdout.take() else { return };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .take(MAX_DPKG_LINES)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + self.cfg.dpkg_timeout;
        let mut lines = Vec::new();
        let mut timed_out = false;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => lines.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    break;
                }
            }
        }
        // Only the process started here is stopped (it reads, never writes).
        let _ = child.kill();
        let _ = child.wait();
        let mut out = lines.join("\n");
        out.push('\n');
        super::evidence::command(
            &["dpkg", "--verify"],
            out.as_bytes(),
            if timed_out {
                "stopped at the time limit"
            } else {
                "finished"
            },
        );
        let changes: Vec<_> = lines
            .iter()
            .filter_map(|l| parse_dpkg_verify(l))
            .filter(|c| c.content_changed())
            .collect();
        let (conf, bin): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| c.conffile);
        let partial = if timed_out {
            format!(" (stopped after {}s: partial)", self.cfg.dpkg_timeout.as_secs())
        } else {
            String::new()
        };
        if !bin.is_empty() {
            let mut f = Finding::new(
                "host.package.modified",
                Area::Host,
                Severity::Warning,
                "dpkg",
                format!("{} packaged files differ from their packages{partial}", bin.len()),
            )
            .fix("reinstall the package of each file (`dpkg -S FILE`, `apt install --reinstall PKG`) after keeping a copy for analysis; modified binaries are a rootkit sign");
            for c in bin.iter().take(MAX_EVIDENCE) {
                f = f.evidence(format!("dpkg --verify: {} {}", c.checks, c.path));
            }
            self.out.push(f);
        }
        if !conf.is_empty() {
            let mut f = Finding::new(
                "host.package.conffile-modified",
                Area::Host,
                Severity::Info,
                "dpkg",
                format!(
                    "{} configuration files differ from their packages' defaults{partial}",
                    conf.len()
                ),
            );
            for c in conf.iter().take(MAX_EVIDENCE) {
                f = f.evidence(format!("dpkg --verify: {} c {}", c.checks, c.path));
            }
            self.out.push(f);
        }
        if timed_out && bin.is_empty() && conf.is_empty() {
            self.out.push(not_checked(format!(
                "dpkg --verify did not finish within {}s",
                self.cfg.dpkg_timeout.as_secs()
            )));
        }
    }
}

/// Maps socket inodes to (pid, command name) by reading `/proc/*/fd` links;
/// processes that cannot be read (other users') are skipped.
fn socket_owners(wanted: &BTreeSet<u64>) -> HashMap<u64, (u32, String)> {
    let mut owners = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return owners;
    };
    let mut by_pid: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for e in procs.filter_map(Result::ok) {
        if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            by_pid.insert(pid, e.path());
        }
    }
    for (pid, dir) in by_pid {
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok).take(MAX_DIR_ENTRIES) {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = link.to_str().and_then(socket_inode) else {
                continue;
            };
            if wanted.contains(&inode) && !owners.contains_key(&inode) {
                let comm = fs::read_to_string(dir.join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_default();
                owners.insert(inode, (pid, comm));
            }
        }
    }
    owners
}
