//! MariaDB (and MySQL) server error-log messages, plus the lines the official
//! Docker image's entrypoint script writes (`[Note] [Entrypoint]: …`).
//!
//! Mailcow keeps every mailbox, alias, domain and the SOGo views in MariaDB. A
//! database that will not start takes all of mail authentication down with it,
//! and the classic cause is an image change the data directory does not match:
//! a downgrade ("Unsupported redo log format. The redo log was created with
//! MariaDB 11.4.2"), an upgrade over a crashed server ("Upgrade after a crash is
//! not supported"), a MySQL 8 volume mounted into MariaDB ("MySQL-8.0 tablespace
//! in ./ibdata1"), or system tables that were never upgraded ("Table
//! 'mysql.plugin' doesn't exist", "Please use mysql_upgrade"). These lines are
//! typed here ([`MariadbEvent::InnodbFatal`]) together with the version facts
//! (the server's `Starting`/`Ready` banners and the entrypoint's own version and
//! upgrade decisions) that let mailwarden compare the running image with the
//! data it was given. An unexpected "Initializing database files" or a
//! "GENERATED ROOT PASSWORD" line are worth an alert on their own.
//!
//! The message normally arrives without the log's date and time (the MariaDB
//! framing strips them) and starts with the thread id: `0 [Note] …`. Through
//! syslog or journald the stamp may still be there (`2023-03-14  0:00:31 0
//! [Note] …`, MySQL 5's `230314  0:00:31 [Note] …`, MySQL 8's RFC 3339 stamp);
//! it is skipped. MySQL 8's `[MY-010116] [Server]` columns are read too.

use serde::Serialize;

/// The level column: `[Note]`, `[Warning]` (the entrypoint writes `[Warn]`),
/// `[ERROR]`, and MySQL 8's `[System]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MariadbLevel {
    /// `[Note]`.
    Note,
    /// `[Warning]` or `[Warn]`.
    Warning,
    /// `[ERROR]` (or `[Error]`).
    Error,
    /// MySQL 8's `[System]` (start and stop banners).
    System,
}

impl MariadbLevel {
    fn from_name(s: &str) -> Option<MariadbLevel> {
        Some(match s {
            "Note" | "NOTE" | "note" | "Info" | "INFO" => MariadbLevel::Note,
            "Warning" | "WARNING" | "Warn" | "WARN" | "warning" => MariadbLevel::Warning,
            "ERROR" | "Error" | "error" => MariadbLevel::Error,
            "System" | "SYSTEM" => MariadbLevel::System,
            _ => return None,
        })
    }
}

/// What a `[Note] [Entrypoint]: …` line of the Docker image reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntrypointStep {
    /// `Entrypoint script for MariaDB Server 1:10.11.6+maria~ubu2204 started.`
    Started,
    /// `Switching to dedicated user 'mysql'`.
    SwitchingUser,
    /// `MariaDB upgrade not required`.
    UpgradeNotRequired,
    /// `MariaDB upgrade (mariadb-upgrade …) required, but skipped due to
    /// $MARIADB_AUTO_UPGRADE setting`: the data is older than the image.
    UpgradeSkipped,
    /// `MariaDB upgrade information missing, assuming required`.
    UpgradeInfoMissing,
    /// `Starting mariadb-upgrade` (or `mysql_upgrade`).
    UpgradeStarted,
    /// `Finished mariadb-upgrade`.
    UpgradeFinished,
    /// `Backing up system database to system_mysql_backup_<old version>.sql.zst`.
    BackupSystem,
    /// `Initializing database files`: a new, empty data directory.
    InitializingDatabase,
    /// `Database files initialized`.
    DatabaseInitialized,
    /// `MariaDB init process done. Ready for start up.`
    InitDone,
    /// Starting, waiting for or stopping the temporary init/upgrade server.
    TemporaryServer,
    /// `GENERATED ROOT PASSWORD: …`: the root password was written to the log.
    /// The password itself is never copied into the event.
    GeneratedRootPassword,
    /// Any other entrypoint line.
    Other,
}

/// Why the server (usually InnoDB) cannot start or cannot use its data; the
/// JSON form is flattened into the event with the tag `cause`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum FatalCause<'a> {
    /// `InnoDB: Unsupported redo log format. The redo log was created with
    /// MariaDB 11.4.2.`: the data directory was written by a newer server (a
    /// downgrade), or by MySQL (`created_with` starts with `MySQL`). Also the
    /// MariaDB 10.1 wording `A downgrade from MariaDB 10.2.2 or later is not
    /// supported`.
    UnsupportedRedoLogFormat {
        /// The creator recorded in the redo log, e.g. `MariaDB 10.11.6`.
        created_with: &'a str,
    },
    /// `InnoDB: Upgrade after a crash is not supported. The redo log was created
    /// with MariaDB 10.3.27.`: a newer image started on data an older server
    /// did not shut down cleanly.
    UpgradeAfterCrash {
        /// The creator recorded in the redo log; `None` for the pre-10.2.2 form.
        #[serde(skip_serializing_if = "Option::is_none")]
        created_with: Option<&'a str>,
        /// The message adds `, and it appears corrupted`.
        corrupted: bool,
    },
    /// `InnoDB: Downgrade after a crash is not supported. The redo log was
    /// created with MariaDB 10.4.17.`
    DowngradeAfterCrash {
        /// The creator recorded in the redo log.
        created_with: &'a str,
    },
    /// `InnoDB: No valid checkpoint was found; the log was created with …`.
    NoValidCheckpoint {
        /// The creator recorded in the redo log, when named.
        #[serde(skip_serializing_if = "Option::is_none")]
        created_with: Option<&'a str>,
    },
    /// `InnoDB: Invalid ib_logfile0 header block; the log was created with …`,
    /// `Invalid log header checksum`.
    InvalidRedoLog {
        /// The creator recorded in the redo log, when named.
        #[serde(skip_serializing_if = "Option::is_none")]
        created_with: Option<&'a str>,
    },
    /// `InnoDB: Reading log encryption info failed; the log was created with …`.
    RedoLogEncryption {
        /// The creator recorded in the redo log.
        created_with: &'a str,
    },
    /// `InnoDB: MySQL-8.0 tablespace in ./ibdata1` (or `MySQL Encrypted
    /// tablespace in …`): a MySQL data directory under MariaDB.
    MysqlTablespace {
        /// The file named.
        file: &'a str,
        /// The `MySQL Encrypted tablespace` form.
        encrypted: bool,
    },
    /// `InnoDB: Restart in MySQL for migration/recovery.`
    RestartInMysql,
    /// `InnoDB: Unable to lock ./ibdata1 error: 11`, `Can't lock aria control
    /// file '…/aria_log_control' for exclusive use, error: 11`: another server
    /// holds the data directory (errno 11), or the files are not accessible
    /// (errno 13).
    DatadirLocked {
        /// The file named.
        file: &'a str,
        /// The OS error number.
        #[serde(skip_serializing_if = "Option::is_none")]
        errno: Option<u32>,
    },
    /// `InnoDB: Plugin initialization aborted with error Generic error`.
    PluginInitAborted {
        /// The error named after `with error`.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    },
    /// `Plugin 'InnoDB' init function returned error.`
    PluginInitFailed {
        /// The plugin named.
        plugin: &'a str,
    },
    /// `Plugin 'InnoDB' registration as a STORAGE ENGINE failed.`
    EngineRegistrationFailed {
        /// The plugin named.
        plugin: &'a str,
    },
    /// `Unknown/unsupported storage engine: InnoDB`.
    UnknownStorageEngine {
        /// The engine named.
        engine: &'a str,
    },
    /// `Aborting`: the server gives up starting.
    Aborting,
    /// `Table 'mysql.plugin' doesn't exist`, `Missing system table
    /// mysql.roles_mapping`, ``InnoDB: Table `mysql`.`innodb_table_stats` not
    /// found``.
    MissingSystemTable {
        /// The table as written.
        table: &'a str,
    },
    /// `Can't open and lock privilege tables: …` (other than a missing table).
    PrivilegeTablesUnavailable,
    /// `Incorrect definition of table mysql.column_stats: expected column …`.
    IncorrectTableDefinition {
        /// The table as written.
        table: &'a str,
    },
    /// `Column count of mysql.proc is wrong. Expected 21, found 20. Created with
    /// MariaDB 100108, now running 100338. Please use mysql_upgrade …`.
    ColumnCountWrong {
        /// The table as written.
        table: &'a str,
        /// `MariaDB 100108`: the server version that created the table.
        #[serde(skip_serializing_if = "Option::is_none")]
        created_with: Option<&'a str>,
        /// `100338`: the running server version.
        #[serde(skip_serializing_if = "Option::is_none")]
        running: Option<&'a str>,
    },
    /// Any other message asking for `mysql_upgrade` / `mariadb-upgrade`.
    UpgradeNeeded,
}

/// A parsed MariaDB / MySQL server or entrypoint message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MariadbEvent<'a> {
    /// The server starts: `Starting MariaDB 10.11.6-MariaDB-1:10.11.6+maria~ubu2204
    /// source revision … as process 1`, or the older `/usr/sbin/mysqld (mysqld
    /// 10.3.34-MariaDB-…) starting as process 1 ...`.
    Starting {
        /// The server binary, in the older form (`/usr/sbin/mysqld`).
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
        /// The full server version string.
        version: &'a str,
        /// The source revision (MariaDB 10.5+).
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<&'a str>,
        /// The server's process id (JSON `server_pid`, apart from the framing's `pid`).
        #[serde(rename = "server_pid", skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// `mariadbd: ready for connections.` and/or its second line `Version:
    /// '10.11.6-MariaDB-…'  socket: '/run/mysqld/mysqld.sock'  port: 3306  …`.
    /// MariaDB's file log splits the two over two lines (both become `Ready`,
    /// the second with the version); MySQL writes one line.
    Ready {
        /// The server binary as named before `: ready for connections.`.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
        /// The server version.
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
        /// The Unix socket.
        #[serde(skip_serializing_if = "Option::is_none")]
        socket: Option<&'a str>,
        /// The TCP port (0 for the entrypoint's temporary server).
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// The build comment (`mariadb.org binary distribution`).
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
    },
    /// `/usr/sbin/mariadbd (initiated by: unknown): Normal shutdown`, or MySQL
    /// 8's `Received SHUTDOWN from user <via user signal>.`
    Shutdown {
        /// The server binary named.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
        /// Who asked (`unknown`, `root[root] @ localhost []`).
        #[serde(skip_serializing_if = "Option::is_none")]
        initiated_by: Option<&'a str>,
    },
    /// `mariadbd: Shutdown complete`.
    ShutdownComplete {
        /// The server binary named.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
    },
    /// `mysqld got signal 11 ;`: the server crashed.
    Crash {
        /// The server binary named.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<&'a str>,
        /// The signal number.
        signal: u32,
    },
    /// A line of the Docker image's entrypoint script.
    Entrypoint {
        /// The level column.
        level: MariadbLevel,
        /// What the line reports.
        step: EntrypointStep,
        /// `MariaDB` or `MySQL`, for [`EntrypointStep::Started`].
        #[serde(skip_serializing_if = "Option::is_none")]
        product: Option<&'a str>,
        /// The image's package version (`1:10.11.6+maria~ubu2204`) for
        /// `started`, the previous data version for `backup_system`.
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
        /// The text after `[Entrypoint]: ` (cut before a generated password).
        text: &'a str,
    },
    /// The server cannot start or cannot use its data (see [`FatalCause`]).
    InnodbFatal {
        /// The level column; `None` for a continuation line without one.
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<MariadbLevel>,
        /// What went wrong.
        #[serde(flatten)]
        cause: FatalCause<'a>,
        /// The message text.
        text: &'a str,
    },
    /// `Access denied for user 'root'@'172.22.1.9' (using password: YES)`: a
    /// refused database login (logged with `log_warnings >= 2`, the default).
    AccessDenied {
        /// The user name tried.
        user: &'a str,
        /// The client host or address.
        client: &'a str,
        /// Whether a password was given (`using password: YES`).
        #[serde(skip_serializing_if = "Option::is_none")]
        using_password: Option<bool>,
    },
    /// Any other well-formed `[Level] text` line.
    Message {
        /// The thread id column.
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<u64>,
        /// The level column.
        level: MariadbLevel,
        /// MySQL 8's error code (`MY-010116`).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'a str>,
        /// The subsystem: MySQL 8's `[InnoDB]` column or a `InnoDB: ` prefix.
        #[serde(skip_serializing_if = "Option::is_none")]
        subsystem: Option<&'a str>,
        /// The text after the subsystem.
        text: &'a str,
    },
}

/// Parses a MariaDB / MySQL error-log message; `None` when its shape is unknown.
pub fn parse<'a>(_program: &'a str, message: &'a str) -> Option<MariadbEvent<'a>> {
    let msg = message.trim_matches(|c: char| c == ' ' || c == '\r' || c == '\n' || c == '\t');
    let msg = strip_stamps(msg);
    let (thread, rest) = thread_prefix(msg);
    let Some((level, rest)) = level_prefix(rest) else {
        return if thread.is_none() { headerless(msg) } else { None };
    };
    let rest = rest.trim_start_matches(' ');
    if let Some(text) = rest.strip_prefix("[Entrypoint]:") {
        return Some(entrypoint(level, text.trim_start_matches(' ')));
    }
    let (code, rest) = mysql8_code(rest);
    let (bracket_subsystem, text) = match code {
        Some(_) => bracket_word(rest),
        None => (None, rest),
    };
    if text.is_empty() {
        return None;
    }
    if let Some(ev) = server_event(text) {
        return Some(ev);
    }
    if let Some(ev) = access_denied(text) {
        return Some(ev);
    }
    if let Some(cause) = fatal_cause(text) {
        return Some(MariadbEvent::InnodbFatal {
            level: Some(level),
            cause,
            text,
        });
    }
    let (subsystem, text) = match bracket_subsystem {
        Some(s) => (Some(s), text),
        None => match subsystem_prefix(text) {
            Some((s, t)) => (Some(s), t),
            None => (None, text),
        },
    };
    Some(MariadbEvent::Message {
        thread,
        level,
        code,
        subsystem,
        text,
    })
}

/// Lines without thread id and level that still have a known shape: the
/// `Version: '…'` second line of the ready banner and bare InnoDB messages.
fn headerless(msg: &str) -> Option<MariadbEvent<'_>> {
    if msg.starts_with("Version: '") {
        return Some(ready(None, msg));
    }
    if msg.starts_with("InnoDB: ") {
        return fatal_cause(msg).map(|cause| MariadbEvent::InnodbFatal {
            level: None,
            cause,
            text: msg,
        });
    }
    None
}

// ---------------------------------------------------------------------------
// Header pieces.

fn all_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// Skips a leading date/time stamp (up to two, as some log viewers prepend
/// their own): `YYYY-MM-DD  H:MM:SS[.f][zone]`, `YYYY-MM-DDTHH:MM:SS[.f]Z`,
/// `YYMMDD  H:MM:SS`.
fn strip_stamps(s: &str) -> &str {
    let mut s = s;
    for _ in 0..2 {
        match stamp_len(s.as_bytes()) {
            Some(n) => s = s[n..].trim_start_matches(' '),
            None => break,
        }
    }
    s
}

/// Length of a stamp at the start of `b` (only ASCII bytes are consumed, so the
/// result is a char boundary).
fn stamp_len(b: &[u8]) -> Option<usize> {
    let mut i;
    if b.len() >= 10 && all_digits(&b[..4]) && b[4] == b'-' && all_digits(&b[5..7]) && b[7] == b'-' {
        if !all_digits(&b[8..10]) {
            return None;
        }
        i = 10;
        if b.get(i) == Some(&b'T') {
            i += 1;
        } else {
            let spaces = b[i..].iter().take_while(|&&c| c == b' ').count();
            if spaces == 0 {
                return None;
            }
            i += spaces;
        }
    } else if b.len() >= 7 && all_digits(&b[..6]) && b[6] == b' ' {
        i = 7 + b[7..].iter().take_while(|&&c| c == b' ').count();
    } else {
        return None;
    }
    // H:MM:SS or HH:MM:SS
    let h = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&h) {
        return None;
    }
    i += h;
    for _ in 0..2 {
        if b.get(i) != Some(&b':') || !b.get(i + 1..i + 3).is_some_and(all_digits) {
            return None;
        }
        i += 3;
    }
    if b.get(i) == Some(&b'.') {
        i += 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') => {
            let z = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == b':')
                .count();
            i += 1 + z;
        }
        _ => {}
    }
    match b.get(i) {
        None | Some(b' ') => Some(i),
        _ => None,
    }
}

/// The numeric thread-id column and the rest after it.
fn thread_prefix(s: &str) -> (Option<u64>, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 20 || s.as_bytes().get(n) != Some(&b' ') {
        return (None, s);
    }
    match s[..n].parse() {
        Ok(t) => (Some(t), s[n..].trim_start_matches(' ')),
        Err(_) => (None, s),
    }
}

/// `[Level] ` at the start of `s`.
fn level_prefix(s: &str) -> Option<(MariadbLevel, &str)> {
    let (word, rest) = bracket_word(s);
    Some((MariadbLevel::from_name(word?)?, rest))
}

/// A `[word] ` (no spaces inside) at the start of `s`, and the rest.
fn bracket_word(s: &str) -> (Option<&str>, &str) {
    let Some(inner) = s.strip_prefix('[') else {
        return (None, s);
    };
    let Some(close) = inner.find(']') else {
        return (None, s);
    };
    let word = &inner[..close];
    if word.is_empty() || word.len() > 32 || word.contains(' ') {
        return (None, s);
    }
    (Some(word), inner[close + 1..].trim_start_matches(' '))
}

/// MySQL 8's `[MY-010116] ` error-code column.
fn mysql8_code(s: &str) -> (Option<&str>, &str) {
    match bracket_word(s) {
        (Some(w), rest) if w.starts_with("MY-") && all_digits(&w.as_bytes()[3..]) => (Some(w), rest),
        _ => (None, s),
    }
}

/// `InnoDB: rest` style prefix: a short word of `[A-Za-z0-9_-]` and `": "`.
fn subsystem_prefix(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))?;
    if end == 0 || end > 24 {
        return None;
    }
    let rest = s[end..].strip_prefix(": ")?;
    Some((&s[..end], rest))
}

// ---------------------------------------------------------------------------
// Text helpers.

/// The text after the first occurrence of `needle`.
fn after<'a>(s: &'a str, needle: &str) -> Option<&'a str> {
    s.find(needle).map(|i| &s[i + needle.len()..])
}

/// The leading run of ASCII digits, parsed.
fn leading_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..n].parse().ok()
}

/// A creator / version name: up to `", "`, `". "`, or the end, without a
/// trailing dot.
fn creator(s: &str) -> &str {
    let mut end = s.len();
    for stop in [", ", ". "] {
        if let Some(i) = s.find(stop) {
            end = end.min(i);
        }
    }
    s[..end].trim_end_matches('.').trim_end()
}

/// The value of `'…'` starting right at `s`, and the rest.
fn single_quoted(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('\'')?;
    let close = inner.find('\'')?;
    Some((&inner[..close], &inner[close + 1..]))
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

// ---------------------------------------------------------------------------
// Server lifecycle.

fn server_event(text: &str) -> Option<MariadbEvent<'_>> {
    if let Some(rest) = text.strip_prefix("Starting MariaDB ") {
        let version = rest.split(' ').next().unwrap_or("");
        if !version.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let revision = after(rest, " source revision ")
            .and_then(|r| r.split(' ').next())
            .and_then(non_empty);
        let pid = after(rest, " as process ").and_then(leading_number);
        return Some(MariadbEvent::Starting {
            server: None,
            version,
            revision,
            pid,
        });
    }
    if let Some(i) = text.find(") starting as process ") {
        let head = &text[..i];
        let open = head
            .rfind(" (")
            .map(|o| (o, 2))
            .or_else(|| head.starts_with('(').then_some((0, 1)))?;
        let server = non_empty(&head[..open.0]);
        let inner = &head[open.0 + open.1..];
        let version = inner.split_once(' ').map_or(inner, |(_, v)| v);
        if !version.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let pid = leading_number(&text[i + ") starting as process ".len()..]);
        return Some(MariadbEvent::Starting {
            server,
            version,
            revision: None,
            pid,
        });
    }
    if let Some(i) = text.find(": ready for connections.") {
        return Some(ready(non_empty(&text[..i]), &text[i..]));
    }
    if text.starts_with("Version: '") {
        return Some(ready(None, text));
    }
    if let Some(head) = text.trim_end().strip_suffix(": Normal shutdown") {
        let (server, initiated_by) = match head.find(" (initiated by: ") {
            Some(i) => (
                non_empty(&head[..i]),
                head[i + " (initiated by: ".len()..]
                    .strip_suffix(')')
                    .and_then(non_empty),
            ),
            None => (non_empty(head), None),
        };
        return Some(MariadbEvent::Shutdown { server, initiated_by });
    }
    if let Some(rest) = text.strip_prefix("Received SHUTDOWN from user ") {
        let who = rest.find(". ").map_or(rest.trim_end_matches('.'), |i| &rest[..i]);
        return Some(MariadbEvent::Shutdown {
            server: None,
            initiated_by: non_empty(who),
        });
    }
    if let Some(i) = text.find(": Shutdown complete") {
        let next = text[i + ": Shutdown complete".len()..].chars().next();
        if !next.is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Some(MariadbEvent::ShutdownComplete {
                server: non_empty(&text[..i]),
            });
        }
    }
    if let Some(i) = text.find(" got signal ")
        && let Some(signal) = leading_number(&text[i + " got signal ".len()..])
    {
        let server = non_empty(&text[..i]).filter(|s| !s.contains(' '));
        return Some(MariadbEvent::Crash { server, signal });
    }
    None
}

/// The ready banner; `rest` holds the `Version: '…'` part when present.
fn ready<'a>(server: Option<&'a str>, rest: &'a str) -> MariadbEvent<'a> {
    let version = after(rest, "Version: '").and_then(|r| r.split('\'').next());
    let socket = after(rest, "socket: ")
        .and_then(|r| {
            single_quoted(r)
                .map(|(v, _)| v)
                .or_else(|| r.split([' ', ',']).next())
        })
        .and_then(non_empty);
    let port_rest = after(rest, "port: ");
    let port = port_rest.and_then(leading_number);
    let comment = port_rest.and_then(|r| {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        non_empty(&r[n..])
    });
    MariadbEvent::Ready {
        server,
        version,
        socket,
        port,
        comment,
    }
}

/// `Access denied for user 'u'@'h' (using password: YES)`.
fn access_denied(text: &str) -> Option<MariadbEvent<'_>> {
    let r = after(text, "Access denied for user '")?;
    let (user, rest) = r.split_once("'@'")?;
    let (client, rest) = rest.split_once('\'')?;
    let using_password = match after(rest, "using password: ") {
        Some(v) if v.starts_with("YES") => Some(true),
        Some(v) if v.starts_with("NO") => Some(false),
        _ => None,
    };
    Some(MariadbEvent::AccessDenied {
        user,
        client,
        using_password,
    })
}

// ---------------------------------------------------------------------------
// Fatal causes.

fn fatal_cause(text: &str) -> Option<FatalCause<'_>> {
    if let Some(r) = after(
        text,
        "Unsupported redo log format. The redo log was created with ",
    ) {
        return Some(FatalCause::UnsupportedRedoLogFormat {
            created_with: creator(r),
        });
    }
    if let Some(r) = after(text, "A downgrade from ")
        && let Some(end) = r.find(" is not supported")
    {
        return Some(FatalCause::UnsupportedRedoLogFormat {
            created_with: &r[..end],
        });
    }
    if let Some(r) = after(text, "Upgrade after a crash is not supported.") {
        let corrupted = r.contains("and it appears corrupted");
        let created_with = after(r, "The redo log was created with ").map(creator);
        return Some(FatalCause::UpgradeAfterCrash {
            created_with,
            corrupted,
        });
    }
    if let Some(r) = after(
        text,
        "Downgrade after a crash is not supported. The redo log was created with ",
    ) {
        return Some(FatalCause::DowngradeAfterCrash {
            created_with: creator(r),
        });
    }
    if text.contains("No valid checkpoint") {
        return Some(FatalCause::NoValidCheckpoint {
            created_with: after(text, "the log was created with ").map(creator),
        });
    }
    if text.contains("Invalid ib_logfile0 header block")
        || text.contains("Invalid log header checksum")
        || text.contains("Invalid redo log header checksum")
    {
        return Some(FatalCause::InvalidRedoLog {
            created_with: after(text, "the log was created with ").map(creator),
        });
    }
    if let Some(r) = after(
        text,
        "Reading log encryption info failed; the log was created with ",
    ) {
        return Some(FatalCause::RedoLogEncryption {
            created_with: creator(r),
        });
    }
    if let Some(file) = after(text, "MySQL-8.0 tablespace in ") {
        return Some(FatalCause::MysqlTablespace {
            file: file.trim(),
            encrypted: false,
        });
    }
    if let Some(file) = after(text, "MySQL Encrypted tablespace in ") {
        return Some(FatalCause::MysqlTablespace {
            file: file.trim(),
            encrypted: true,
        });
    }
    if text.contains("Restart in MySQL for migration/recovery") {
        return Some(FatalCause::RestartInMysql);
    }
    if let Some(r) = after(text, "Unable to lock ") {
        let (file, rest) = r.split_once(' ').unwrap_or((r, ""));
        return Some(FatalCause::DatadirLocked {
            file,
            errno: after(rest, "error: ").and_then(leading_number),
        });
    }
    if let Some(r) = after(text, "Can't lock aria control file ")
        && let Some((file, rest)) = single_quoted(r)
    {
        return Some(FatalCause::DatadirLocked {
            file,
            errno: after(rest, "error: ").and_then(leading_number),
        });
    }
    if text.contains("Plugin initialization aborted") {
        return Some(FatalCause::PluginInitAborted {
            error: after(text, " with error ").and_then(non_empty),
        });
    }
    if let Some(r) = text.strip_prefix("Plugin '")
        && let Some((plugin, rest)) = r.split_once('\'')
    {
        if rest.starts_with(" init function returned error") {
            return Some(FatalCause::PluginInitFailed { plugin });
        }
        if rest.starts_with(" registration as a STORAGE ENGINE failed") {
            return Some(FatalCause::EngineRegistrationFailed { plugin });
        }
    }
    if let Some(r) = after(text, "Unknown/unsupported storage engine: ") {
        return Some(FatalCause::UnknownStorageEngine {
            engine: r.split([' ', ',']).next().unwrap_or(r).trim_end_matches('.'),
        });
    }
    if text.trim_end_matches('.') == "Aborting" {
        return Some(FatalCause::Aborting);
    }
    if let Some(r) = after(text, "Column count of ")
        && let Some(end) = r.find(" is wrong")
    {
        let created = after(r, "Created with ");
        return Some(FatalCause::ColumnCountWrong {
            table: &r[..end],
            created_with: created.map(|c| c.split(", ").next().unwrap_or(c)),
            running: after(r, "now running ").map(|c| creator(c.split(' ').next().unwrap_or(c))),
        });
    }
    if let Some(r) = after(text, "Incorrect definition of table ") {
        let end = r.find([':', ' ']).unwrap_or(r.len());
        return Some(FatalCause::IncorrectTableDefinition { table: &r[..end] });
    }
    if let Some(table) = missing_system_table(text) {
        return Some(FatalCause::MissingSystemTable { table });
    }
    if text.contains("Can't open and lock privilege tables") {
        return Some(FatalCause::PrivilegeTablesUnavailable);
    }
    if text.contains("mysql_upgrade") || text.contains("mariadb-upgrade") {
        return Some(FatalCause::UpgradeNeeded);
    }
    None
}

/// `Table 'mysql.x' doesn't exist`, `Missing system table mysql.x`,
/// ``Table `mysql`.`x` not found``.
fn missing_system_table(text: &str) -> Option<&str> {
    if let Some(i) = text.find("Table 'mysql.") {
        let r = &text[i + "Table '".len()..];
        let (table, rest) = r.split_once('\'')?;
        return rest.starts_with(" doesn't exist").then_some(table);
    }
    if let Some(r) = after(text, "Missing system table ") {
        let end = r.find([';', ' ', ',']).unwrap_or(r.len());
        return Some(&r[..end]);
    }
    if let Some(i) = text.find("Table `mysql`.`") {
        let r = &text[i + "Table ".len()..];
        let end = r.find(" not found")?;
        return Some(&r[..end]);
    }
    None
}

// ---------------------------------------------------------------------------
// Entrypoint.

fn entrypoint(level: MariadbLevel, text: &str) -> MariadbEvent<'_> {
    let mut product = None;
    let mut version = None;
    let mut shown = text;
    let step = if let Some(i) = text.find("GENERATED ROOT PASSWORD:") {
        // Checked first: the password could contain any of the phrases below.
        shown = &text[..i + "GENERATED ROOT PASSWORD:".len()];
        EntrypointStep::GeneratedRootPassword
    } else if let Some(r) = text.strip_prefix("Entrypoint script for ") {
        if let Some((p, rest)) = r.split_once(" Server ") {
            product = non_empty(p);
            version = rest.strip_suffix(" started.").and_then(non_empty);
        }
        EntrypointStep::Started
    } else if text.starts_with("Switching to dedicated user") {
        EntrypointStep::SwitchingUser
    } else if text.ends_with("upgrade not required") {
        EntrypointStep::UpgradeNotRequired
    } else if text.contains("upgrade") && text.contains("required, but skipped") {
        EntrypointStep::UpgradeSkipped
    } else if text.contains("upgrade information missing") {
        EntrypointStep::UpgradeInfoMissing
    } else if text.starts_with("Starting mariadb-upgrade")
        || text.starts_with("Starting mysql_upgrade")
        || text.starts_with("Starting MariaDB database upgrade")
    {
        EntrypointStep::UpgradeStarted
    } else if text.starts_with("Finished mariadb-upgrade") || text.starts_with("Finished mysql_upgrade") {
        EntrypointStep::UpgradeFinished
    } else if let Some(r) = text.strip_prefix("Backing up system database to ") {
        version = after(r, "system_mysql_backup_")
            .and_then(|v| v.split(".sql").next())
            .filter(|v| *v != "unknown_version")
            .and_then(non_empty);
        EntrypointStep::BackupSystem
    } else if text.starts_with("Initializing database files") {
        EntrypointStep::InitializingDatabase
    } else if text.starts_with("Database files initialized") {
        EntrypointStep::DatabaseInitialized
    } else if text.contains("init process done") {
        EntrypointStep::InitDone
    } else if text.contains("emporary server") || text.starts_with("Waiting for server startup") {
        EntrypointStep::TemporaryServer
    } else {
        EntrypointStep::Other
    };
    MariadbEvent::Entrypoint {
        level,
        step,
        product,
        version,
        text: shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::json;

    /// Sample lines, as the MariaDB framing or journald hands them over.
    /// Sources: mailcow-dockerized issues #5941 (10.5 container start), DietPi
    /// #4899 (journald, 10.5 after upgrade over a crash), dockhippie/mariadb #46,
    /// lando #3463, ddev #615 (10.1 on newer data), docker-magento #170 and
    /// bitnami/charts #16053 (MySQL 5.7/8 formats), public logs of MariaDB over a
    /// MySQL 8 volume, and the wording in MariaDB's log0recv.cc / fsp0file.cc and
    /// the mariadb-docker entrypoint script.
    const SAMPLES: &[&str] = &[
        "0 [Note] Starting MariaDB 10.11.6-MariaDB-1:10.11.6+maria~ubu2204 source revision fecd78b83785d5ae96f2c6ff340375be803cd299 as process 1",
        "0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.11.6.",
        "2023-03-14  0:00:31 0 [Note] InnoDB: Using Linux native AIO",
        "[Note] [Entrypoint]: Entrypoint script for MariaDB Server 1:10.11.6+maria~ubu2204 started.",
        "[Note] [Entrypoint]: MariaDB upgrade (mariadb-upgrade or creating healthcheck users) required, but skipped due to $MARIADB_AUTO_UPGRADE setting",
        "0 [Note] mariadbd: ready for connections.",
        "Version: '10.11.6-MariaDB-1:10.11.6+maria~ubu2204'  socket: '/run/mysqld/mysqld.sock'  port: 3306  mariadb.org binary distribution",
        "0 [ERROR] Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\". Some plugins may be not loaded",
        "0 [ERROR] Column count of mysql.proc is wrong. Expected 21, found 20. Created with MariaDB 100108, now running 100338. Please use mysql_upgrade to fix this error",
        "2023-04-14T03:28:03.492028Z 0 [System] [MY-010116] [Server] /opt/bitnami/mysql/bin/mysqld (mysqld 8.0.32) starting as process 618",
        "0 [Note] /usr/sbin/mariadbd (initiated by: unknown): Normal shutdown",
        "[Note] [Entrypoint]: GENERATED ROOT PASSWORD: s3cr3t-Pa55",
    ];

    #[test]
    fn server_lifecycle() {
        // mailcow-dockerized #5941 (MariaDB 10.5 in mysql-mailcow).
        check(
            parse,
            "mariadbd",
            "0 [Note] Starting MariaDB 10.5.25-MariaDB-ubu2004 source revision 29c185bd771ac441121468b3850d6dc8d13b8a1f as process 1",
            json!({"event": "starting", "version": "10.5.25-MariaDB-ubu2004",
                   "revision": "29c185bd771ac441121468b3850d6dc8d13b8a1f", "server_pid": 1}),
        );
        // MariaDB 11.x adds server_uid.
        check(
            parse,
            "mariadbd",
            "0 [Note] Starting MariaDB 11.4.2-MariaDB-ubu2404 source revision 3fca5ed772fb75e3e57c507edef2985f8eba5b12 server_uid 0/Xa+2HfR3dR2qDvJrN4wmGYBq8= as process 1",
            json!({"event": "starting", "version": "11.4.2-MariaDB-ubu2404",
                   "revision": "3fca5ed772fb75e3e57c507edef2985f8eba5b12", "server_pid": 1}),
        );
        // Older form (MariaDB <= 10.4, Debian's 10.5; DietPi #4899 via journald with the stamp).
        check(
            parse,
            "mariadbd",
            "2021-10-30 17:34:41 0 [Note] /usr/sbin/mariadbd (mysqld 10.5.12-MariaDB-0+deb11u1) starting as process 699 ...",
            json!({"event": "starting", "server": "/usr/sbin/mariadbd",
                   "version": "10.5.12-MariaDB-0+deb11u1", "server_pid": 699}),
        );
        // MySQL 5.7 (docker-magento #170) without binary path, RFC 3339 stamp kept.
        check(
            parse,
            "mysqld",
            "2019-08-08T13:26:37.588194Z 0 [Note] mysqld (mysqld 5.7.26-29) starting as process 1 ...",
            json!({"event": "starting", "server": "mysqld", "version": "5.7.26-29", "server_pid": 1}),
        );
        // MySQL 8 (bitnami/charts #16053).
        check(
            parse,
            "mysqld",
            "0 [System] [MY-010116] [Server] /opt/bitnami/mysql/bin/mysqld (mysqld 8.0.32) starting as process 618",
            json!({"event": "starting", "server": "/opt/bitnami/mysql/bin/mysqld",
                   "version": "8.0.32", "server_pid": 618}),
        );
        // The ready banner: MariaDB's two lines, and the one-line form with an embedded newline.
        check(
            parse,
            "mariadbd",
            "0 [Note] mariadbd: ready for connections.",
            json!({"event": "ready", "server": "mariadbd"}),
        );
        check(
            parse,
            "mariadbd",
            "Version: '10.11.6-MariaDB-1:10.11.6+maria~ubu2204'  socket: '/run/mysqld/mysqld.sock'  port: 3306  mariadb.org binary distribution",
            json!({"event": "ready", "version": "10.11.6-MariaDB-1:10.11.6+maria~ubu2204",
                   "socket": "/run/mysqld/mysqld.sock", "port": 3306,
                   "comment": "mariadb.org binary distribution"}),
        );
        check(
            parse,
            "mysqld",
            "0 [Note] /usr/sbin/mysqld: ready for connections.\nVersion: '10.3.34-MariaDB-1:10.3.34+maria~focal'  socket: '/var/run/mysqld/mysqld.sock'  port: 0  mariadb.org binary distribution",
            json!({"event": "ready", "server": "/usr/sbin/mysqld",
                   "version": "10.3.34-MariaDB-1:10.3.34+maria~focal",
                   "socket": "/var/run/mysqld/mysqld.sock", "port": 0,
                   "comment": "mariadb.org binary distribution"}),
        );
        // MySQL 8 one-line banner.
        check(
            parse,
            "mysqld",
            "0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.0.32'  socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.",
            json!({"event": "ready", "server": "/usr/sbin/mysqld", "version": "8.0.32",
                   "socket": "/var/run/mysqld/mysqld.sock", "port": 3306,
                   "comment": "MySQL Community Server - GPL."}),
        );
        // Shutdown (MariaDB 10.x, MySQL 5 and MySQL 8 wording).
        check(
            parse,
            "mariadbd",
            "0 [Note] /usr/sbin/mariadbd (initiated by: unknown): Normal shutdown",
            json!({"event": "shutdown", "server": "/usr/sbin/mariadbd", "initiated_by": "unknown"}),
        );
        check(
            parse,
            "mysqld",
            "[Note] /usr/sbin/mysqld: Normal shutdown",
            json!({"event": "shutdown", "server": "/usr/sbin/mysqld"}),
        );
        check(
            parse,
            "mysqld",
            "0 [System] [MY-013172] [Server] Received SHUTDOWN from user <via user signal>. Shutting down mysqld (Version: 8.0.32).",
            json!({"event": "shutdown", "initiated_by": "<via user signal>"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [Note] mariadbd: Shutdown complete",
            json!({"event": "shutdown_complete", "server": "mariadbd"}),
        );
        check(
            parse,
            "mysqld",
            "0 [System] [MY-010910] [Server] /usr/sbin/mysqld: Shutdown complete (mysqld 8.0.32)  MySQL Community Server - GPL.",
            json!({"event": "shutdown_complete", "server": "/usr/sbin/mysqld"}),
        );
        // InnoDB's own "Shutdown completed; …" stays a plain message.
        check(
            parse,
            "mariadbd",
            "0 [Note] InnoDB: Shutdown completed; log sequence number 46590; transaction id 15",
            json!({"event": "message", "thread": 0, "level": "note", "subsystem": "InnoDB",
                   "text": "Shutdown completed; log sequence number 46590; transaction id 15"}),
        );
        // Crash (MariaDB's signal handler).
        check(
            parse,
            "mariadbd",
            "0 [ERROR] /usr/sbin/mariadbd got signal 11 ;",
            json!({"event": "crash", "server": "/usr/sbin/mariadbd", "signal": 11}),
        );
    }

    #[test]
    fn entrypoint_lines() {
        // mariadb-docker entrypoint (mailcow #5941, warden #660, madock #14).
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Entrypoint script for MariaDB Server 1:10.11.6+maria~ubu2204 started.",
            json!({"event": "entrypoint", "level": "note", "step": "started", "product": "MariaDB",
                   "version": "1:10.11.6+maria~ubu2204",
                   "text": "Entrypoint script for MariaDB Server 1:10.11.6+maria~ubu2204 started."}),
        );
        check(
            parse,
            "mysqld",
            "[Note] [Entrypoint]: Entrypoint script for MySQL Server 8.0.35-1.el8 started.",
            json!({"event": "entrypoint", "level": "note", "step": "started", "product": "MySQL",
                   "version": "8.0.35-1.el8",
                   "text": "Entrypoint script for MySQL Server 8.0.35-1.el8 started."}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Switching to dedicated user 'mysql'",
            json!({"event": "entrypoint", "level": "note", "step": "switching_user",
                   "text": "Switching to dedicated user 'mysql'"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: MariaDB upgrade not required",
            json!({"event": "entrypoint", "level": "note", "step": "upgrade_not_required",
                   "text": "MariaDB upgrade not required"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: MariaDB upgrade (mariadb-upgrade) required, but skipped due to $MARIADB_AUTO_UPGRADE setting",
            json!({"event": "entrypoint", "level": "note", "step": "upgrade_skipped",
                   "text": "MariaDB upgrade (mariadb-upgrade) required, but skipped due to $MARIADB_AUTO_UPGRADE setting"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Backing up system database to system_mysql_backup_10.5.25-MariaDB.sql.zst",
            json!({"event": "entrypoint", "level": "note", "step": "backup_system",
                   "version": "10.5.25-MariaDB",
                   "text": "Backing up system database to system_mysql_backup_10.5.25-MariaDB.sql.zst"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Backing up system database to system_mysql_backup_unknown_version.sql.zst",
            json!({"event": "entrypoint", "level": "note", "step": "backup_system",
                   "text": "Backing up system database to system_mysql_backup_unknown_version.sql.zst"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Starting mariadb-upgrade",
            json!({"event": "entrypoint", "level": "note", "step": "upgrade_started",
                   "text": "Starting mariadb-upgrade"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Initializing database files",
            json!({"event": "entrypoint", "level": "note", "step": "initializing_database",
                   "text": "Initializing database files"}),
        );
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: Temporary server started.",
            json!({"event": "entrypoint", "level": "note", "step": "temporary_server",
                   "text": "Temporary server started."}),
        );
        // The password is never copied into the event.
        check(
            parse,
            "mariadbd",
            "[Note] [Entrypoint]: GENERATED ROOT PASSWORD: s3cr3t-Pa55",
            json!({"event": "entrypoint", "level": "note", "step": "generated_root_password",
                   "text": "GENERATED ROOT PASSWORD:"}),
        );
        check(
            parse,
            "mariadbd",
            "[ERROR] [Entrypoint]: Unable to start server.",
            json!({"event": "entrypoint", "level": "error", "step": "other",
                   "text": "Unable to start server."}),
        );
        // The stamp with a zone, left in by a syslog relay.
        check(
            parse,
            "mariadbd",
            "2024-07-07 19:22:01-02:00 [Warn] [Entrypoint]: /usr/local/bin/docker-entrypoint.sh: ignoring /docker-entrypoint-initdb.d/x.txt",
            json!({"event": "entrypoint", "level": "warning", "step": "other",
                   "text": "/usr/local/bin/docker-entrypoint.sh: ignoring /docker-entrypoint-initdb.d/x.txt"}),
        );
    }

    #[test]
    fn fatal_causes() {
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.11.6.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "unsupported_redo_log_format",
                   "created_with": "MariaDB 10.11.6",
                   "text": "InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.11.6."}),
        );
        // A MySQL-written redo log (xtrabackup-style continuation without header).
        check(
            parse,
            "mysqld",
            "InnoDB: Unsupported redo log format. The redo log was created with MySQL 8.0.32. Please follow the instructions at http://dev.mysql.com/doc/refman/5.7/en/upgrading-downgrading.html",
            json!({"event": "innodb_fatal", "cause": "unsupported_redo_log_format",
                   "created_with": "MySQL 8.0.32",
                   "text": "InnoDB: Unsupported redo log format. The redo log was created with MySQL 8.0.32. Please follow the instructions at http://dev.mysql.com/doc/refman/5.7/en/upgrading-downgrading.html"}),
        );
        // DietPi #4899, dockhippie/mariadb #46.
        check(
            parse,
            "mariadbd",
            "2021-10-30 22:05:27 0 [ERROR] InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.3.27.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "upgrade_after_crash",
                   "created_with": "MariaDB 10.3.27", "corrupted": false,
                   "text": "InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.3.27."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.4.8, and it appears corrupted.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "upgrade_after_crash",
                   "created_with": "MariaDB 10.4.8", "corrupted": true,
                   "text": "InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.4.8, and it appears corrupted."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Upgrade after a crash is not supported. This redo log was created before MariaDB 10.2.2.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "upgrade_after_crash",
                   "corrupted": false,
                   "text": "InnoDB: Upgrade after a crash is not supported. This redo log was created before MariaDB 10.2.2."}),
        );
        // lando #3463.
        check(
            parse,
            "mysqld",
            "0 [ERROR] InnoDB: Downgrade after a crash is not supported. The redo log was created with MariaDB 10.4.17.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "downgrade_after_crash",
                   "created_with": "MariaDB 10.4.17",
                   "text": "InnoDB: Downgrade after a crash is not supported. The redo log was created with MariaDB 10.4.17."}),
        );
        // ddev #615: MariaDB 10.1 on newer data (a continuation line without header).
        check(
            parse,
            "mysqld",
            "InnoDB: A downgrade from MariaDB 10.2.2 or later is not supported.",
            json!({"event": "innodb_fatal", "cause": "unsupported_redo_log_format",
                   "created_with": "MariaDB 10.2.2 or later",
                   "text": "InnoDB: A downgrade from MariaDB 10.2.2 or later is not supported."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: No valid checkpoint was found; the log was created with MariaDB 10.5.4.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "no_valid_checkpoint",
                   "created_with": "MariaDB 10.5.4",
                   "text": "InnoDB: No valid checkpoint was found; the log was created with MariaDB 10.5.4."}),
        );
        // MySQL 8 volume under MariaDB.
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: MySQL-8.0 tablespace in ./ibdata1",
            json!({"event": "innodb_fatal", "level": "error", "cause": "mysql_tablespace",
                   "file": "./ibdata1", "encrypted": false,
                   "text": "InnoDB: MySQL-8.0 tablespace in ./ibdata1"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Restart in MySQL for migration/recovery.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "restart_in_mysql",
                   "text": "InnoDB: Restart in MySQL for migration/recovery."}),
        );
        // Two servers on one data directory, or wrong permissions (bisheng #1470 for MySQL 8).
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Unable to lock ./ibdata1 error: 11",
            json!({"event": "innodb_fatal", "level": "error", "cause": "datadir_locked",
                   "file": "./ibdata1", "errno": 11, "text": "InnoDB: Unable to lock ./ibdata1 error: 11"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] mariadbd: Can't lock aria control file '/var/lib/mysql/aria_log_control' for exclusive use, error: 11. Will retry for 30 seconds",
            json!({"event": "innodb_fatal", "level": "error", "cause": "datadir_locked",
                   "file": "/var/lib/mysql/aria_log_control", "errno": 11,
                   "text": "mariadbd: Can't lock aria control file '/var/lib/mysql/aria_log_control' for exclusive use, error: 11. Will retry for 30 seconds"}),
        );
        check(
            parse,
            "mysqld",
            "2025-07-22T22:31:49.550326Z 0 [ERROR] [MY-012574] [InnoDB] Unable to lock ./#innodb_redo/#ib_redo0 error: 13",
            json!({"event": "innodb_fatal", "level": "error", "cause": "datadir_locked",
                   "file": "./#innodb_redo/#ib_redo0", "errno": 13,
                   "text": "Unable to lock ./#innodb_redo/#ib_redo0 error: 13"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Plugin initialization aborted with error Generic error",
            json!({"event": "innodb_fatal", "level": "error", "cause": "plugin_init_aborted",
                   "error": "Generic error",
                   "text": "InnoDB: Plugin initialization aborted with error Generic error"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Plugin 'InnoDB' init function returned error.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "plugin_init_failed",
                   "plugin": "InnoDB", "text": "Plugin 'InnoDB' init function returned error."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Plugin 'InnoDB' registration as a STORAGE ENGINE failed.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "engine_registration_failed",
                   "plugin": "InnoDB", "text": "Plugin 'InnoDB' registration as a STORAGE ENGINE failed."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Unknown/unsupported storage engine: InnoDB",
            json!({"event": "innodb_fatal", "level": "error", "cause": "unknown_storage_engine",
                   "engine": "InnoDB", "text": "Unknown/unsupported storage engine: InnoDB"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Aborting",
            json!({"event": "innodb_fatal", "level": "error", "cause": "aborting", "text": "Aborting"}),
        );
        // Missing or outdated system tables.
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\". Some plugins may be not loaded",
            json!({"event": "innodb_fatal", "level": "error", "cause": "missing_system_table",
                   "table": "mysql.plugin",
                   "text": "Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\". Some plugins may be not loaded"}),
        );
        check(
            parse,
            "mysqld",
            "[ERROR] Fatal error: Can't open and lock privilege tables: Table 'mysql.user' doesn't exist",
            json!({"event": "innodb_fatal", "level": "error", "cause": "missing_system_table",
                   "table": "mysql.user",
                   "text": "Fatal error: Can't open and lock privilege tables: Table 'mysql.user' doesn't exist"}),
        );
        check(
            parse,
            "mysqld",
            "[ERROR] Fatal error: Can't open and lock privilege tables: Incorrect file format 'user'",
            json!({"event": "innodb_fatal", "level": "error", "cause": "privilege_tables_unavailable",
                   "text": "Fatal error: Can't open and lock privilege tables: Incorrect file format 'user'"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Missing system table mysql.roles_mapping; please run mysql_upgrade to create it",
            json!({"event": "innodb_fatal", "level": "error", "cause": "missing_system_table",
                   "table": "mysql.roles_mapping",
                   "text": "Missing system table mysql.roles_mapping; please run mysql_upgrade to create it"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] InnoDB: Table `mysql`.`innodb_table_stats` not found.",
            json!({"event": "innodb_fatal", "level": "error", "cause": "missing_system_table",
                   "table": "`mysql`.`innodb_table_stats`",
                   "text": "InnoDB: Table `mysql`.`innodb_table_stats` not found."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Incorrect definition of table mysql.column_stats: expected column 'min_value' at position 3 to have type varbinary(255), found type varchar(255).",
            json!({"event": "innodb_fatal", "level": "error", "cause": "incorrect_table_definition",
                   "table": "mysql.column_stats",
                   "text": "Incorrect definition of table mysql.column_stats: expected column 'min_value' at position 3 to have type varbinary(255), found type varchar(255)."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [ERROR] Column count of mysql.proc is wrong. Expected 21, found 20. Created with MariaDB 100108, now running 100338. Please use mysql_upgrade to fix this error",
            json!({"event": "innodb_fatal", "level": "error", "cause": "column_count_wrong",
                   "table": "mysql.proc", "created_with": "MariaDB 100108", "running": "100338",
                   "text": "Column count of mysql.proc is wrong. Expected 21, found 20. Created with MariaDB 100108, now running 100338. Please use mysql_upgrade to fix this error"}),
        );
        check(
            parse,
            "mariadbd",
            "0 [Warning] InnoDB: Table mysql/innodb_table_stats has length mismatch in the column name table_name.  Please run mysql_upgrade",
            json!({"event": "innodb_fatal", "level": "warning", "cause": "upgrade_needed",
                   "text": "InnoDB: Table mysql/innodb_table_stats has length mismatch in the column name table_name.  Please run mysql_upgrade"}),
        );
    }

    #[test]
    fn generic_messages() {
        check(
            parse,
            "mariadbd",
            "2023-03-14  0:00:31 0 [Note] InnoDB: Using Linux native AIO",
            json!({"event": "message", "thread": 0, "level": "note", "subsystem": "InnoDB",
                   "text": "Using Linux native AIO"}),
        );
        // The 10.1-era OS thread id; MySQL 5's YYMMDD stamp without thread id.
        check(
            parse,
            "mysqld",
            "2018-01-23 17:21:06 140200324049800 [Note] InnoDB: Highest supported file format is Barracuda.",
            json!({"event": "message", "thread": 140200324049800u64, "level": "note",
                   "subsystem": "InnoDB", "text": "Highest supported file format is Barracuda."}),
        );
        check(
            parse,
            "mysqld",
            "150304 10:11:12 [Note] Plugin 'FEDERATED' is disabled.",
            json!({"event": "message", "level": "note", "text": "Plugin 'FEDERATED' is disabled."}),
        );
        check(
            parse,
            "mariadbd",
            "0 [Warning] 'default-authentication-plugin' is MySQL 5.6 / 5.7 compatible option. To be implemented in later versions.",
            json!({"event": "message", "thread": 0, "level": "warning",
                   "text": "'default-authentication-plugin' is MySQL 5.6 / 5.7 compatible option. To be implemented in later versions."}),
        );
        // A refused database login (MariaDB's log_warnings=2 wording; MySQL 8 alike).
        check(
            parse,
            "mariadbd",
            "12 [Warning] Access denied for user 'root'@'172.22.1.9' (using password: YES)",
            json!({"event": "access_denied", "user": "root", "client": "172.22.1.9",
                   "using_password": true}),
        );
        check(
            parse,
            "mysqld",
            "2023-04-14T03:28:03.492028Z 8 [Note] [MY-010926] [Server] Access denied for user 'mailcow'@'localhost' (using password: NO)",
            json!({"event": "access_denied", "user": "mailcow", "client": "localhost",
                   "using_password": false}),
        );
        // MySQL 8 bracketed columns (bisheng #1470).
        check(
            parse,
            "mysqld",
            "2025-07-22T22:31:47.953259Z 1 [System] [MY-013576] [InnoDB] InnoDB initialization has started.",
            json!({"event": "message", "thread": 1, "level": "system", "code": "MY-013576",
                   "subsystem": "InnoDB", "text": "InnoDB initialization has started."}),
        );
    }

    #[test]
    fn unknown_shapes() {
        for msg in [
            "",
            "   ",
            "mysqld is alive",
            "0",
            "0 Note something",
            "[Nonsense] text",
            "0 [Note] ",
            "2023-03-14 0:00:31",
            "Waiting for SQL...",
            "2023-03-14 25 [Note] x",
        ] {
            assert_eq!(parse("mariadbd", msg), None, "{msg:?}");
        }
    }

    #[test]
    fn through_event_kind() {
        // The event is flattened into Event: no field may clash with its keys.
        let ev = parse("mariadbd", SAMPLES[1]).unwrap();
        let v = serde_json::to_value(crate::event::EventKind::Mariadb(ev)).unwrap();
        assert_eq!(v["kind"], "mariadb");
        assert_eq!(v["event"], "innodb_fatal");
        assert_eq!(v["cause"], "unsupported_redo_log_format");
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse("mariadbd", &s);
        }

        #[test]
        fn never_panics_on_mutations(i in 0..SAMPLES.len(), cut in 0usize..400, at in 0usize..400, c in any::<char>()) {
            for m in test_support::mutations(SAMPLES[i], cut, at, c) {
                let _ = parse("mariadbd", &m);
            }
        }
    }
}
