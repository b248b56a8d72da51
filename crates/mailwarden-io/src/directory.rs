//! The address directory: what an address *is* on our mail server — a
//! mailbox, an alias (of whom), an address covered by an alias domain, one
//! caught by a catch-all, or unknown — and which accounts may send as it.
//!
//! This answers the first question of `mailwarden investigate --sender ADDR`.
//! The incident this product is built from: spam went out as
//! `xyovt@company.com`, an address that is no mailbox of the company. On a
//! current Mailcow that is possible without any stolen password for
//! `xyovt@…`: the targets of a catch-all alias may send as every address of
//! the domain that has no alias of its own, and a `sender_acl` entry for
//! `@company.com` or `*` lets an account send as anything in it. [`lookup`]
//! reports both halves: [`AddressInfo::kind`] (where mail *to* the address
//! goes) and [`AddressInfo::may_send_as`] (who may send *as* it).
//!
//! Four sources ([`DirectorySource`]):
//!
//! - **Mailcow's database** (MariaDB), queried read-only with bound
//!   parameters. The semantics are those of the Postfix maps Mailcow
//!   generates; see "Mailcow semantics" below.
//! - **A list file** in a small text format (see [`AddressList`]), for
//!   servers whose directory mailwarden cannot query, or to pin down what the
//!   directory looked like at the time of an incident.
//! - **Postfix's own maps**, asked with `postmap -q` (see "Postfix" below).
//! - **Mailcow's HTTP API** with a read-only key ([`ApiConfig`]): the same
//!   semantics as the list file, plus inactive entries and `sender_acl`
//!   where the API returns it; an authentication failure is never retried.
//!
//! # Mailcow semantics
//!
//! Facts from mailcow-dockerized: `data/web/inc/init_db.inc.php` (the schema),
//! `data/Dockerfiles/postfix/postfix.sh` (the SQL of every Postfix map),
//! `data/conf/postfix/main.cf` (which map is used where) and
//! `data/web/inc/functions.mailbox.inc.php` (what the UI writes).
//!
//! Tables and the columns read: `mailbox (username, active)`, `alias (id,
//! address, goto, domain, active)`, `alias_domain (alias_domain,
//! target_domain, active)`, `domain (domain, active)`, `sender_acl
//! (logged_in_as, send_as)` and `spamalias (address, goto, validity)` (the
//! UI's time-limited aliases; `validity` is a Unix time). `goto` is a
//! comma-separated list. `mailbox.active` is 1 (active), 2 (receives mail,
//! login disabled) or 0; the maps accept mailboxes and aliases with 1 or 2.
//! Creating a mailbox also creates the alias row `username → username`, so
//! every mailbox is an alias of itself; extra targets on that row are
//! forwarding.
//!
//! **Where mail to ADDR goes** (`virtual_alias_maps` = alias, resource,
//! spamalias, alias-domain maps; Postfix asks every map for `user@domain`,
//! then for `user@domain` without a `+extension` — Mailcow's
//! `recipient_delimiter` is `+` — then every map for `@domain`):
//!
//! 1. a `mailbox` row for ADDR → [`AddressKind::Mailbox`] (its alias row
//!    is the self alias; forwarding targets are reported in the notes);
//! 2. an `alias` row for ADDR → [`AddressKind::Alias`];
//! 3. a `spamalias` row for ADDR → [`AddressKind::Alias`], active while
//!    `validity` lies in the future (by the database's clock, as Postfix's
//!    query does);
//! 4. ADDR's domain is an active alias domain and `local@target` is a mailbox
//!    → [`AddressKind::DomainAlias`], `resolved` being that mailbox. Mailcow
//!    maps **only mailboxes** through alias domains: neither the target
//!    domain's aliases nor its catch-all apply (mailcow issue #3184), and
//!    mailwarden says so in the notes;
//! 5. steps 1–4 for ADDR without its `+extension`;
//! 6. an active `alias` row `@domain` → [`AddressKind::CatchAll`];
//! 7. otherwise [`AddressKind::Unknown`].
//!
//! Steps 1–3 report the entry even when it is inactive (`active: false`): an
//! investigator wants to see a disabled alias rather than have it vanish.
//! Kinds without an `active` flag (domain alias, catch-all) count only when
//! active, as in Postfix; an inactive one is mentioned in the notes.
//!
//! **Who may send as ADDR** (`smtpd_sender_login_maps` with
//! `reject_authenticated_sender_login_mismatch`: an authenticated client may
//! use ADDR as envelope sender only if its SASL login is among the owners the
//! map returns). mailwarden runs the query of Mailcow's
//! `mysql_virtual_sender_acl.cf` — current version, with the catch-all
//! fallback added in August 2022 (mailcow PR #4703) — with the address bound
//! as parameters instead of pasted in. The owners are the union of:
//!
//! - the `goto` of the active alias row for ADDR or, when ADDR has no alias
//!   row, of the active catch-all `@domain` (its domain must be an active
//!   domain or alias domain) — so a mailbox owns its address through its self
//!   alias, alias targets own the alias, and **catch-all targets own every
//!   otherwise undefined address of the domain**;
//! - `sender_acl.logged_in_as` where `send_as` is ADDR, `@domain`, `*`,
//!   `@target` of an alias domain ADDR's domain points to, or `local@target`
//!   (the last one unless the login is already a target of ADDR's alias);
//! - the mailbox `local@target` when ADDR's domain is an active alias domain.
//!
//! Like Postfix, the `+extension`-less address is asked when ADDR gets no
//! owner. The owners are split at commas and kept only when they are
//! mailboxes (SASL logins in Mailcow are mailbox user names; alias targets
//! outside the server cannot log in) — the dropped ones are listed in the
//! notes, and so are owners whose mailbox cannot log in now (active ≠ 1).
//! Mailcow releases before August 2022 did not let catch-all targets send;
//! mailwarden reports what current Mailcow allows.
//!
//! [`AddressInfo::domain_known`] is true when the domain has a `domain` or
//! `alias_domain` row (active or not).
//!
//! # Postfix
//!
//! With [`DirectorySource::Postfix`], `postconf -x -h` names the maps in
//! `virtual_alias_maps`, `virtual_mailbox_maps` and `smtpd_sender_login_maps`
//! and the domains in `virtual_mailbox_domains`, `virtual_alias_domains` and
//! `mydestination`; `postmap -q KEY MAP` asks them in Postfix's order
//! (`user@domain`, without `+extension`, `@domain`). A virtual alias
//! `@alias.example → @example.com` is reported as a domain alias. Limits:
//! maps that need a server or Postfix's proxy (`proxy:`, `mysql:`, `pgsql:`,
//! `ldap:`, `memcache:`, `tcp:`, `socketmap:`, `nis:`, `nisplus:`) are
//! skipped and named in the notes — which makes this source useless for
//! Mailcow, whose maps are all `proxy:mysql:` inside its container; `+` is
//! taken as the recipient delimiter; domains held in maps are listed by
//! [`our_domains`] only when `postmap -s` can dump the map; `may_send_as`
//! is what the sender-login maps return, unfiltered (Postfix SASL login
//! names need not be addresses).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mailcow::{MailcowConf, MailcowError};

mod list;
mod mailcow_api;
mod mailcow_db;
mod postfix;
mod snapshot;

pub use list::AddressList;
pub use mailcow_api::ApiConfig;
pub use snapshot::{Snapshot, snapshot};

/// What an address is, as far as delivery goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AddressKind {
    /// A mailbox (an account that can log in, unless inactive).
    Mailbox {
        /// Whether it receives mail (Mailcow `active` 1 or 2).
        active: bool,
    },
    /// An alias: mail to it goes to `targets`.
    Alias {
        /// Where mail goes, in the order the directory lists them (lowercased).
        targets: Vec<String>,
        /// Whether the alias is in force.
        active: bool,
    },
    /// The address's domain is an alias domain: mail goes to the same local
    /// part in `target_domain`.
    DomainAlias {
        /// The domain of the address.
        alias_domain: String,
        /// The domain it stands for.
        target_domain: String,
        /// What the address resolves to in the target domain.
        resolved: Box<AddressInfo>,
    },
    /// No entry of its own: the domain's catch-all takes it.
    CatchAll {
        /// Where the catch-all sends mail.
        targets: Vec<String>,
    },
    /// Nothing in the directory delivers mail to it.
    Unknown,
}

/// Everything the directory says about one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressInfo {
    /// The address asked about, lowercased.
    pub address: String,
    /// What it is.
    pub kind: AddressKind,
    /// Whether its domain is one of ours (for Mailcow: a `domain` or
    /// `alias_domain` row).
    pub domain_known: bool,
    /// The accounts allowed to use it as envelope sender, sorted (see the
    /// module documentation for how each source decides).
    pub may_send_as: Vec<String>,
    /// Where the answer came from, e.g. `mailcow-db 127.0.0.1:13306/mailcow`
    /// or `list /etc/mailwarden/addresses.txt:12`.
    pub source: String,
    /// Facts worth knowing that the fields above cannot hold: forwarding of a
    /// mailbox, inactive entries that were skipped, a matched `+extension`,
    /// owners that cannot log in, maps that were not asked.
    pub notes: Vec<String>,
}

/// Where the directory is read from. Serialized as `{"mailcow_db": {…}}`,
/// `{"list_file": "/path"}` or `{"postfix": {"config_dir": …}}` (never with
/// the password).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectorySource {
    /// Mailcow's MariaDB database.
    MailcowDb(DbConfig),
    /// Mailcow's HTTP API (a read-only key; never retried on an
    /// authentication failure).
    MailcowApi(ApiConfig),
    /// A list file (format: [`AddressList`]).
    ListFile(PathBuf),
    /// Postfix's own maps, asked with `postconf` and `postmap`.
    Postfix {
        /// Postfix's configuration directory (`-c`); `None` for the default
        /// (`/etc/postfix`).
        config_dir: Option<PathBuf>,
    },
}

/// How to reach Mailcow's database.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DbConfig {
    /// Host or IP (Mailcow publishes MariaDB on `127.0.0.1`).
    pub host: String,
    /// TCP port (Mailcow: `SQL_PORT`, default 13306).
    pub port: u16,
    /// A Unix socket to try before TCP (falls back to TCP when it cannot be
    /// connected to).
    pub socket: Option<PathBuf>,
    /// User name (Mailcow: `DBUSER`).
    pub user: String,
    /// Password (Mailcow: `DBPASS`). Never serialized, printed or put in an
    /// error message.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// Database name (Mailcow: `DBNAME`).
    pub database: String,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .finish()
    }
}

/// Docker's default data root, under which named volumes live.
pub const DEFAULT_DOCKER_ROOT: &str = "/var/lib/docker";

/// Mailcow's Compose volume holding MariaDB's socket directory (mounted at
/// `/var/run/mysqld/` in `mysql-mailcow` and the containers that use it).
pub const MAILCOW_SOCKET_VOLUME: &str = "mysql-socket-vol-1";

impl DbConfig {
    /// The database of a Mailcow installation: `DBNAME`, `DBUSER`, `DBPASS`
    /// from `mailcow.conf`, TCP to `SQL_PORT` (default `127.0.0.1:13306`), and
    /// the socket in Docker's volume `<project>_mysql-socket-vol-1` under
    /// `/var/lib/docker` when it exists. See
    /// [`DbConfig::from_mailcow_with_docker_root`].
    pub fn from_mailcow(conf: &MailcowConf) -> Result<DbConfig, DirectoryError> {
        DbConfig::from_mailcow_with_docker_root(conf, Path::new(DEFAULT_DOCKER_ROOT))
    }

    /// [`DbConfig::from_mailcow`] with Docker's data root given. Mailcow's
    /// Compose file mounts the named volume `mysql-socket-vol-1` at
    /// `/var/run/mysqld/` in the database container, so on the host the
    /// socket is `<docker root>/volumes/<project>_mysql-socket-vol-1/_data/mysqld.sock`
    /// (no directory inside the Mailcow installation holds it). It is used
    /// when that file exists; TCP stays the fallback.
    pub fn from_mailcow_with_docker_root(
        conf: &MailcowConf,
        docker_root: &Path,
    ) -> Result<DbConfig, DirectoryError> {
        let db = conf.db()?;
        let missing = |key: &str, example: &str| DirectoryError::Config {
            problem: format!("{} sets no {key}", conf.path().display()),
            fix: format!(
                "add {key}={example} as Mailcow's generate_config.sh writes it (it must match the running mysql-mailcow container)"
            ),
        };
        let database = db.name.ok_or_else(|| missing("DBNAME", "mailcow"))?;
        let user = db.user.ok_or_else(|| missing("DBUSER", "mailcowuser"))?;
        let socket = docker_root
            .join("volumes")
            .join(format!("{}_{MAILCOW_SOCKET_VOLUME}", conf.compose_project()))
            .join("_data")
            .join("mysqld.sock");
        Ok(DbConfig {
            host: db.endpoint.host,
            port: db.endpoint.port,
            socket: socket.exists().then_some(socket),
            user,
            password: db.password,
            database,
        })
    }

    /// `host:port` (IPv6 in brackets), for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a directory question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The address is not of the form `local@domain`.
    #[error("{address:?} is not an address: {problem}; give a full address such as user@example.com")]
    InvalidAddress {
        /// What was given.
        address: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `mailcow.conf` could not be used.
    #[error(transparent)]
    Mailcow(#[from] MailcowError),
    /// The settings are incomplete.
    #[error("{problem}; {fix}")]
    Config {
        /// What is missing.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The database server could not be reached.
    #[error("cannot connect to MariaDB at {target} as {user:?}: {problem}; {fix}")]
    Connect {
        /// `host:port` or `unix:/path` (or both, when both were tried).
        target: String,
        /// The user name.
        user: String,
        /// What went wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The server refused the user or password.
    #[error("MariaDB at {target} refused user {user:?}: {problem}; {fix}")]
    Auth {
        /// `host:port` or `unix:/path`.
        target: String,
        /// The user name.
        user: String,
        /// What the server said (it never contains the password).
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The database does not exist or the user may not use it.
    #[error("MariaDB at {target}: database {database:?} cannot be used by {user:?}: {problem}; {fix}")]
    Database {
        /// `host:port` or `unix:/path`.
        target: String,
        /// The user name.
        user: String,
        /// The database name.
        database: String,
        /// What the server said.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The database lacks a table or column of Mailcow's schema.
    #[error("MariaDB at {target}, database {database:?}: {problem}; {fix}")]
    Schema {
        /// `host:port` or `unix:/path`.
        target: String,
        /// The database name.
        database: String,
        /// What the server said.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// A query failed for another reason.
    #[error("MariaDB at {target}: query failed: {problem}")]
    Query {
        /// `host:port` or `unix:/path`.
        target: String,
        /// What went wrong.
        problem: String,
    },
    /// The list file could not be read.
    #[error("{path}: {source}; {fix}")]
    ListRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
        /// What to do.
        fix: &'static str,
    },
    /// A line of the list file is wrong.
    #[error("{}:{line}: {problem}; {fix}", path.display())]
    ListSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// Mailcow refused the API key. Not retried: Mailcow's netfilter bans
    /// addresses that fail API authentication repeatedly.
    #[error(
        "Mailcow API {url}: the API key was refused (HTTP {status}); not retrying, because Mailcow bans addresses after repeated failed API logins; check the key and that this host's address is in the key's allowed IPs (System → Configuration → Access → API)"
    )]
    ApiAuth {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The API could not be used.
    #[error("Mailcow API {url}: {problem}; {fix}")]
    Api {
        /// The URL asked.
        url: String,
        /// What went wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// `postconf` or `postmap` failed.
    #[error("Postfix: {problem}; {fix}")]
    Postfix {
        /// What went wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
}

/// Answers what `address` is and who may send as it. See the module
/// documentation for each source's semantics.
pub async fn lookup(src: &DirectorySource, address: &str) -> Result<AddressInfo, DirectoryError> {
    let addr = Addr::parse(address)?;
    match src {
        DirectorySource::MailcowDb(cfg) => mailcow_db::lookup(cfg, &addr).await,
        DirectorySource::MailcowApi(cfg) => mailcow_api::lookup(cfg, &addr).await,
        DirectorySource::ListFile(path) => AddressList::load(path).await?.lookup_addr(&addr),
        DirectorySource::Postfix { config_dir } => {
            let dir = config_dir.clone();
            let addr = addr.clone();
            run_blocking(move || postfix::lookup(dir.as_deref(), &addr)).await
        }
    }
}

/// The domains that are ours: for Mailcow every `domain` and `alias_domain`
/// (active or not); for a list file every domain it names; for Postfix the
/// domains listed in `virtual_mailbox_domains`, `virtual_alias_domains` and
/// `mydestination`. Lowercased, sorted, without duplicates.
pub async fn our_domains(src: &DirectorySource) -> Result<Vec<String>, DirectoryError> {
    match src {
        DirectorySource::MailcowDb(cfg) => mailcow_db::our_domains(cfg).await,
        DirectorySource::MailcowApi(cfg) => mailcow_api::our_domains(cfg).await,
        DirectorySource::ListFile(path) => Ok(AddressList::load(path).await?.domains()),
        DirectorySource::Postfix { config_dir } => {
            let dir = config_dir.clone();
            run_blocking(move || postfix::our_domains(dir.as_deref())).await
        }
    }
}

/// Runs blocking work (child processes) off the async threads.
async fn run_blocking<T, F>(f: F) -> Result<T, DirectoryError>
where
    F: FnOnce() -> Result<T, DirectoryError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(DirectoryError::Postfix {
            problem: format!("the Postfix query did not finish: {e}"),
            fix: "run it again; report a bug if it keeps failing".to_owned(),
        })
    })
}

/// The recipient delimiter Mailcow configures (`recipient_delimiter = +`).
const RECIPIENT_DELIMITER: char = '+';

/// A checked, lowercased address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Addr {
    /// `local@domain`.
    full: String,
    /// The part before the last `@`.
    local: String,
    /// The part after the last `@`.
    domain: String,
}

impl Addr {
    /// Accepts `local@domain`, optionally in angle brackets and with
    /// surrounding white space; lowercases it.
    fn parse(input: &str) -> Result<Addr, DirectoryError> {
        let bad = |problem| DirectoryError::InvalidAddress {
            address: input.to_owned(),
            problem,
        };
        let t = input.trim();
        let t = t
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(t)
            .trim();
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains white space or control characters"));
        }
        let Some((local, domain)) = t.rsplit_once('@') else {
            return Err(bad("it has no @"));
        };
        if local.is_empty() {
            return Err(bad("the part before the @ is empty"));
        }
        if !valid_domain(domain) {
            return Err(bad("the part after the @ is not a domain"));
        }
        let local = local.to_lowercase();
        let domain = domain.to_lowercase();
        Ok(Addr {
            full: format!("{local}@{domain}"),
            local,
            domain,
        })
    }

    /// The address without its `+extension`, when it has one (Postfix splits
    /// at the first delimiter and keeps a non-empty base).
    fn without_extension(&self) -> Option<Addr> {
        let (base, _) = self.local.split_once(RECIPIENT_DELIMITER)?;
        if base.is_empty() {
            return None;
        }
        Some(Addr {
            full: format!("{base}@{}", self.domain),
            local: base.to_owned(),
            domain: self.domain.clone(),
        })
    }

    /// `@domain`, the catch-all key.
    fn catch_all_key(&self) -> String {
        format!("@{}", self.domain)
    }

    /// The same local part in another domain.
    fn in_domain(&self, domain: &str) -> Addr {
        Addr {
            full: format!("{}@{domain}", self.local),
            local: self.local.clone(),
            domain: domain.to_owned(),
        }
    }
}

/// A plausible domain: not empty, no `@`, no white space, control or address
/// punctuation characters, no empty labels.
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && !d
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@,;:<>()[]\\\"'/".contains(c))
        && d.split('.').all(|label| !label.is_empty())
}

/// Splits a directory list (`goto`, a map result) at commas and white space,
/// lowercases, drops empty items and duplicates, keeps the order.
fn split_targets(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split(|c: char| c == ',' || c.is_whitespace()) {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Sorts and deduplicates.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The note for an address that matched only without its `+extension`.
fn extension_note(addr: &Addr, base: &Addr) -> String {
    format!(
        "{:?} has no entry of its own; it matched as {:?} (Postfix drops the +extension: recipient_delimiter = {RECIPIENT_DELIMITER})",
        addr.full, base.full
    )
}

#[cfg(test)]
mod tests;
