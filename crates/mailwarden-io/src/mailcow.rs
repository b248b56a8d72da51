//! Reading a Mailcow installation's `mailcow.conf`: where its Redis, MariaDB
//! and containers are, and how long its Redis log lists are.
//!
//! `mailcow.conf` is written by Mailcow's `generate_config.sh` and is also the
//! Docker Compose `.env` file of the installation (`.env` is a symlink to it),
//! so its syntax is the intersection of a shell script and a dotenv file:
//! `KEY=value` lines, `#` comment lines, blank lines. This reader accepts
//! exactly that, plus the usual variations people make by hand:
//!
//! - an optional `export ` prefix;
//! - values in double quotes (with `\"`, `\\`, `\$` and `` \` `` escapes) or single
//!   quotes (taken literally);
//! - a trailing ` # comment` after an unquoted value or a closing quote;
//! - `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$VAR` references in
//!   unquoted and double-quoted values, **resolved against keys defined earlier
//!   in the same file**. A reference to a key that is not defined earlier is left
//!   as written: reading the configuration never depends on the environment of
//!   the process that reads it. (Generated files contain no references; a
//!   hand-written `DBUSER=${DBNAME}` resolves as Compose and the shell would.)
//!
//! Later assignments of the same key win, as in the shell. A line that is none
//! of the above is an error naming the file, the line and the fix: Docker
//! Compose would refuse the file too, so Mailcow itself is broken.
//!
//! Facts about the keys (from mailcow-dockerized's `generate_config.sh`,
//! `update.sh` and `docker-compose.yml`): `REDIS_PORT=127.0.0.1:7654` publishes
//! Redis on the host (default when absent: `127.0.0.1:7654`) and `REDISPASS`
//! is its password (releases before 2024 had neither: Redis was reachable only
//! inside the Docker network at `${IPV4_NETWORK}.249:6379`, without password);
//! the Valkey-based branch renames the password `VALKEYPASS`, which is read as
//! a fallback. `SQL_PORT=127.0.0.1:13306` publishes MariaDB; `DBNAME`,
//! `DBUSER`, `DBPASS`, `DBROOT` are its database and credentials. `LOG_LINES`
//! (default 9999) is how many entries `trim_logs.sh` keeps in each Redis log
//! list (`LTRIM <list> 0 LOG_LINES` every minute, so up to `LOG_LINES + 1`).
//! `COMPOSE_PROJECT_NAME` is `mailcowdockerized` in current installs and
//! `mailcow-dockerized` in older ones.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The file name inside a Mailcow installation directory.
pub const CONF_FILE: &str = "mailcow.conf";

/// Where Mailcow's documentation installs it.
pub const DEFAULT_INSTALL_DIR: &str = "/opt/mailcow-dockerized";

/// The Compose project name of current Mailcow installs, used when the file
/// sets none and the directory name gives none.
pub const DEFAULT_COMPOSE_PROJECT: &str = "mailcowdockerized";

/// Default `LOG_LINES`.
pub const DEFAULT_LOG_LINES: u32 = 9999;

/// Default host side of `REDIS_PORT` when it has no address.
const DEFAULT_REDIS_HOST: &str = "127.0.0.1";
/// Default `REDIS_PORT` port.
const DEFAULT_REDIS_PORT: u16 = 7654;
/// Default `SQL_PORT`.
const DEFAULT_SQL_PORT: u16 = 13306;

/// Keys whose values are secrets: never echoed in errors or `Debug`.
const SECRET_KEYS: [&str; 6] = [
    "DBPASS",
    "DBROOT",
    "REDISPASS",
    "VALKEYPASS",
    "API_KEY",
    "API_KEY_READ_ONLY",
];

/// Why `mailcow.conf` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MailcowError {
    /// The file could not be read.
    #[error("{path}: {source}; {fix}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
        /// What to do about it.
        fix: &'static str,
    },
    /// A line is not `KEY=value`.
    #[error("{path}:{line}: {problem}; {fix}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A key has a value of the wrong form.
    #[error("{path}:{line}: {key}: {problem}; {fix}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the assignment.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong (never contains a secret value).
        problem: String,
        /// How to fix it.
        fix: String,
    },
}

/// One assignment as read.
#[derive(Clone)]
struct Entry {
    key: String,
    value: String,
    line: usize,
}

/// The parsed `mailcow.conf` of one installation.
#[derive(Clone)]
pub struct MailcowConf {
    dir: PathBuf,
    path: PathBuf,
    /// In file order; later assignments of a key win.
    entries: Vec<Entry>,
}

impl fmt::Debug for MailcowConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for e in &self.entries {
            if is_secret(&e.key) {
                m.entry(&e.key, &"<redacted>");
            } else {
                m.entry(&e.key, &e.value);
            }
        }
        m.finish()
    }
}

/// A `host:port` binding from `REDIS_PORT` / `SQL_PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host or IP to connect to (`0.0.0.0` and `::` are mapped to loopback).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// MariaDB settings of the installation.
#[derive(Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// Database name (`DBNAME`).
    pub name: Option<String>,
    /// User (`DBUSER`).
    pub user: Option<String>,
    /// The user's password (`DBPASS`).
    pub password: Option<String>,
    /// MariaDB root password (`DBROOT`).
    pub root_password: Option<String>,
    /// Where MariaDB is published on the host (`SQL_PORT`, default `127.0.0.1:13306`).
    pub endpoint: Endpoint,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSettings")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "root_password",
                &self.root_password.as_ref().map(|_| "<redacted>"),
            )
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl MailcowConf {
    /// Reads `<dir>/mailcow.conf`.
    pub fn load(dir: &Path) -> Result<MailcowConf, MailcowError> {
        let path = dir.join(CONF_FILE);
        let bytes = std::fs::read(&path).map_err(|source| {
            let fix = match source.kind() {
                io::ErrorKind::NotFound => {
                    "point mailwarden at the Mailcow directory (the one holding mailcow.conf and docker-compose.yml), or run Mailcow's generate_config.sh there"
                }
                io::ErrorKind::PermissionDenied => {
                    "mailcow.conf is mode 600 and owned by root: run mailwarden as root or grant it read access"
                }
                _ => "check that the file is readable",
            };
            MailcowError::Read {
                path: path.clone(),
                source,
                fix,
            }
        })?;
        let text = String::from_utf8_lossy(&bytes);
        MailcowConf::parse(dir, &text)
    }

    /// Parses the text of a `mailcow.conf` that lives in `dir` (used in
    /// messages and for the Compose project fallback).
    pub fn parse(dir: &Path, text: &str) -> Result<MailcowConf, MailcowError> {
        let path = dir.join(CONF_FILE);
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let syntax = |problem: String, fix: &str| MailcowError::Syntax {
                path: path.clone(),
                line: line_no,
                problem,
                fix: fix.to_owned(),
            };
            let line = raw.trim_start_matches('\u{feff}').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
            let Some((key, rest)) = line.split_once('=') else {
                let first = line.split_whitespace().next().unwrap_or(line);
                let shown = if is_secret(first) {
                    format!("a line starting with {first}")
                } else {
                    format!("{:?}", shorten(line))
                };
                return Err(syntax(
                    format!("expected KEY=value, found {shown}"),
                    "write the setting as KEY=value, or start the line with # to make it a comment",
                ));
            };
            let key = key.trim_end();
            if !is_valid_key(key) {
                return Err(syntax(
                    format!("{:?} is not a valid key", shorten(key)),
                    "keys are letters, digits and underscores and do not start with a digit (e.g. LOG_LINES)",
                ));
            }
            let value = parse_value(rest, &entries).map_err(|(problem, fix)| {
                // Never echo any part of a secret value.
                let problem = if is_secret(key) && problem.contains(':') {
                    problem.split(':').next().unwrap_or_default().to_owned()
                } else {
                    problem
                };
                syntax(format!("{key}: {problem}"), fix)
            })?;
            entries.push(Entry {
                key: key.to_owned(),
                value,
                line: line_no,
            });
        }
        Ok(MailcowConf {
            dir: dir.to_path_buf(),
            path,
            entries,
        })
    }

    /// The installation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `mailcow.conf` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// The value of a key (the last assignment), as written after quote removal
    /// and reference resolution. Empty values are returned as `Some("")`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// The value of a key when it is set and not empty.
    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// The 1-based line where a key is (last) assigned.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.entry(key).map(|e| e.line)
    }

    /// All keys in file order (each once, at its last assignment).
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for e in &self.entries {
            if let Some(pos) = keys.iter().position(|k| *k == e.key) {
                keys.remove(pos);
            }
            keys.push(&e.key);
        }
        keys
    }

    /// The Docker Compose project name: `COMPOSE_PROJECT_NAME`; when unset,
    /// what Compose itself would use (the directory name, lower-cased, with
    /// characters other than `a-z0-9_-` removed); else `mailcowdockerized`.
    pub fn compose_project(&self) -> String {
        if let Some(p) = self.non_empty("COMPOSE_PROJECT_NAME") {
            return p.to_owned();
        }
        let from_dir: String = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
            .collect();
        let from_dir = from_dir.trim_start_matches(['_', '-']).to_owned();
        if from_dir.is_empty() {
            DEFAULT_COMPOSE_PROJECT.to_owned()
        } else {
            from_dir
        }
    }

    /// The mail server's host name (`MAILCOW_HOSTNAME`).
    pub fn hostname(&self) -> Option<&str> {
        self.non_empty("MAILCOW_HOSTNAME")
    }

    /// The time zone Mailcow's containers run in (`TZ`), e.g. `Europe/Berlin`.
    pub fn tz(&self) -> Option<&str> {
        self.non_empty("TZ")
    }

    /// Where Redis (or Valkey) is published on the host: `REDIS_PORT`, else
    /// `VALKEY_PORT`, else `127.0.0.1:7654`. `7654` alone means all addresses
    /// (connected to on `127.0.0.1`).
    pub fn redis_endpoint(&self) -> Result<Endpoint, MailcowError> {
        for key in ["REDIS_PORT", "VALKEY_PORT"] {
            if let Some(v) = self.non_empty(key) {
                return self.parse_binding(key, v, DEFAULT_REDIS_HOST);
            }
        }
        Ok(Endpoint {
            host: DEFAULT_REDIS_HOST.to_owned(),
            port: DEFAULT_REDIS_PORT,
        })
    }

    /// Redis inside the Docker network (`${IPV4_NETWORK}.249:6379`): the only
    /// way to reach it on releases that do not publish `REDIS_PORT`.
    pub fn redis_internal_endpoint(&self) -> Endpoint {
        let net = self.non_empty("IPV4_NETWORK").unwrap_or("172.22.1");
        Endpoint {
            host: format!("{}.249", net.trim_end_matches('.')),
            port: 6379,
        }
    }

    /// The Redis password: `REDISPASS`, else `VALKEYPASS`; `None` when unset or
    /// empty (releases before 2024 ran Redis without a password).
    pub fn redis_password(&self) -> Option<&str> {
        self.non_empty("REDISPASS")
            .or_else(|| self.non_empty("VALKEYPASS"))
    }

    /// MariaDB settings.
    pub fn db(&self) -> Result<DbSettings, MailcowError> {
        let endpoint = match self.non_empty("SQL_PORT") {
            Some(v) => self.parse_binding("SQL_PORT", v, DEFAULT_REDIS_HOST)?,
            None => Endpoint {
                host: DEFAULT_REDIS_HOST.to_owned(),
                port: DEFAULT_SQL_PORT,
            },
        };
        Ok(DbSettings {
            name: self.non_empty("DBNAME").map(str::to_owned),
            user: self.non_empty("DBUSER").map(str::to_owned),
            password: self.non_empty("DBPASS").map(str::to_owned),
            root_password: self.non_empty("DBROOT").map(str::to_owned),
            endpoint,
        })
    }

    /// How many entries Mailcow keeps per Redis log list (`LOG_LINES`, default
    /// 9999; the lists hold up to one more).
    pub fn log_lines(&self) -> Result<u32, MailcowError> {
        match self.non_empty("LOG_LINES") {
            None => Ok(DEFAULT_LOG_LINES),
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                self.value_error(
                    "LOG_LINES",
                    format!("{:?} is not a whole number", shorten(v)),
                    "set LOG_LINES to a number of lines, e.g. LOG_LINES=9999",
                )
            }),
        }
    }

    fn value_error(&self, key: &str, problem: String, fix: &str) -> MailcowError {
        MailcowError::Value {
            path: self.path.clone(),
            line: self.line_of(key).unwrap_or(0),
            key: key.to_owned(),
            problem,
            fix: fix.to_owned(),
        }
    }

    /// Parses a Compose port binding: `PORT`, `HOST:PORT`, `[V6]:PORT`.
    fn parse_binding(&self, key: &str, v: &str, default_host: &str) -> Result<Endpoint, MailcowError> {
        let bad = || {
            self.value_error(
                key,
                format!("{:?} is not PORT, IP:PORT or [IPv6]:PORT", shorten(v)),
                &format!(
                    "write it as Mailcow does, e.g. {key}=127.0.0.1:{}",
                    default_port_of(key)
                ),
            )
        };
        let v = v.trim();
        let (host, port) = if let Some(rest) = v.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            (h, p)
        } else {
            match v.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, p),
                Some(_) => return Err(bad()),
                None => ("", v),
            }
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        let host = match host {
            "" | "0.0.0.0" => default_host.to_owned(),
            "::" => "::1".to_owned(),
            h => h.to_owned(),
        };
        Ok(Endpoint { host, port })
    }
}

fn default_port_of(key: &str) -> u16 {
    if key == "SQL_PORT" {
        DEFAULT_SQL_PORT
    } else {
        DEFAULT_REDIS_PORT
    }
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key) || key.ends_with("PASS") || key.ends_with("PASSWORD")
}

fn is_valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// At most 60 characters of a value, for messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(57).collect();
        t.push_str("...");
        t
    }
}

type ParseProblem = (String, &'static str);

/// How a value is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// No quotes: ends at the end of the line or at ` #`.
    Bare,
    /// Double quotes: backslash escapes, ends at the closing quote.
    Double,
}

/// Parses the right-hand side of `KEY=` (already without the key).
fn parse_value(rest: &str, earlier: &[Entry]) -> Result<String, ParseProblem> {
    let rest = rest.trim_start();
    let (value, after) = if let Some(body) = rest.strip_prefix('"') {
        let (value, end) = scan(body, earlier, Quoting::Double);
        let Some(end) = end else {
            return Err((
                "the double quote is never closed".to_owned(),
                "close the quote on the same line (multi-line values are not supported)",
            ));
        };
        (value, &body[end..])
    } else if let Some(body) = rest.strip_prefix('\'') {
        let Some(close) = body.find('\'') else {
            return Err((
                "the single quote is never closed".to_owned(),
                "close the quote on the same line (multi-line values are not supported)",
            ));
        };
        (body[..close].to_owned(), &body[close + 1..])
    } else {
        let (value, _) = scan(rest, earlier, Quoting::Bare);
        (value.trim_end().to_owned(), "")
    };
    let after = after.trim();
    if !after.is_empty() && !after.starts_with('#') {
        return Err((
            format!("unexpected text after the closing quote: {:?}", shorten(after)),
            "put the whole value inside the quotes, or add a space and # before a comment",
        ));
    }
    Ok(value)
}

/// Reads a bare or double-quoted value, resolving references. Returns the
/// value and, for a double-quoted one, the index just after the closing quote
/// (`None` when it is missing).
fn scan(s: &str, earlier: &[Entry], quoting: Quoting) -> (String, Option<usize>) {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let b = s.as_bytes();
    while i < s.len() {
        let c = b[i];
        match (quoting, c) {
            (Quoting::Double, b'"') => return (out, Some(i + 1)),
            (Quoting::Double, b'\\') => {
                match b.get(i + 1) {
                    Some(&e @ (b'"' | b'\\' | b'`' | b'$')) => {
                        out.push(char::from(e));
                        i += 2;
                    }
                    _ => {
                        out.push('\\');
                        i += 1;
                    }
                }
                continue;
            }
            (Quoting::Bare, b'#') if i > 0 && matches!(b[i - 1], b' ' | b'\t') => break,
            (_, b'$') => {
                let (text, next) = reference(s, i, earlier);
                out.push_str(&text);
                i = next;
                continue;
            }
            _ => {}
        }
        // Copy one whole character (values may hold UTF-8).
        let len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + len]);
        i += len;
    }
    let end = match quoting {
        Quoting::Double => None,
        Quoting::Bare => Some(s.len()),
    };
    (out, end)
}

/// Resolves the reference starting at `s[at] == '$'`: `${VAR}`, `${VAR:-def}`,
/// `${VAR-def}` or `$VAR`, against keys defined earlier. A reference to an
/// unknown key is kept as written. Returns the text and the index after it.
fn reference(s: &str, at: usize, earlier: &[Entry]) -> (String, usize) {
    let lookup = |name: &str| {
        earlier
            .iter()
            .rev()
            .find(|e| e.key == name)
            .map(|e| e.value.clone())
    };
    let after = &s[at + 1..];
    if let Some(inner) = after.strip_prefix('{')
        && let Some(close) = inner.find('}')
    {
        let expr = &inner[..close];
        let next = at + 2 + close + 1;
        let whole = &s[at..next];
        let (name, default) = match expr.find([':', '-']) {
            Some(i) if expr[i..].starts_with(":-") => (&expr[..i], Some((&expr[i + 2..], true))),
            Some(i) if expr[i..].starts_with('-') => (&expr[..i], Some((&expr[i + 1..], false))),
            _ => (expr, None),
        };
        if !is_valid_key(name) {
            return (whole.to_owned(), next);
        }
        let text = match (lookup(name), default) {
            (Some(v), Some((d, true))) if v.is_empty() => d.to_owned(),
            (Some(v), _) => v,
            (None, Some((d, _))) => d.to_owned(),
            (None, None) => whole.to_owned(),
        };
        return (text, next);
    }
    let name_len = after
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
        .count();
    let name = &after[..name_len];
    let next = at + 1 + name_len;
    match (is_valid_key(name), lookup(name)) {
        (true, Some(v)) => (v, next),
        _ => (s[at..next].to_owned(), next),
    }
}

/// Finds a Mailcow installation: `explicit` when given (a directory holding
/// `mailcow.conf`, or the `mailcow.conf` file itself), else the current
/// directory if it holds a `mailcow.conf`, else `/opt/mailcow-dockerized`
/// (where Mailcow's documentation installs it). `None` when nothing is found.
pub fn find_install(explicit: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd);
    }
    candidates.push(PathBuf::from(DEFAULT_INSTALL_DIR));
    find_install_in(explicit, &candidates)
}

/// [`find_install`] with the fallback directories given (for tests and for
/// callers with their own search path).
pub fn find_install_in(explicit: Option<&Path>, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = explicit {
        if p.file_name().is_some_and(|n| n == CONF_FILE) && p.is_file() {
            return p.parent().map(Path::to_path_buf);
        }
        return p.join(CONF_FILE).is_file().then(|| p.to_path_buf());
    }
    candidates.iter().find(|d| d.join(CONF_FILE).is_file()).cloned()
}

#[cfg(test)]
mod tests;
