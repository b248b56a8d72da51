//! The directory in Mailcow's MariaDB database (semantics: the parent
//! module's documentation). Every statement is a `SELECT` with the address
//! bound as parameters (server-side prepared statements); the session is
//! also put into read-only mode.

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};

use super::{
    Addr, AddressInfo, AddressKind, DbConfig, DirectoryError, extension_note, sorted, split_targets,
};

/// How long a connection attempt or a query may take.
const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// The owners of an address as Mailcow's `mysql_virtual_sender_acl.cf`
/// returns them (current version, with the catch-all fallback of mailcow PR
/// #4703), rewritten with bound parameters. In the order they are bound:
/// `%s`, `@%d`, `%d`, `%d` | `@%d`, `%s`, `%d`, `%u`, `%d`, `%s` | `%d`, `%u`.
/// The `AND … NOT IN` binds to the last `OR` term only, as in Mailcow's query.
const SENDER_ACL_SQL: &str = "\
SELECT goto FROM alias
  WHERE id IN (
      SELECT COALESCE(
        (SELECT id FROM alias WHERE address = ? AND active IN (1, 2)),
        (SELECT id FROM alias WHERE address = ? AND active IN (1, 2))
      )
    )
    AND active = 1
    AND (domain IN (SELECT domain FROM domain WHERE domain = ? AND active = 1)
      OR domain IN (SELECT alias_domain FROM alias_domain WHERE alias_domain = ? AND active = 1))
UNION
SELECT logged_in_as FROM sender_acl
  WHERE send_as = ?
    OR send_as = ?
    OR send_as = '*'
    OR send_as IN (SELECT CONCAT('@', target_domain) FROM alias_domain WHERE alias_domain = ?)
    OR send_as IN (SELECT CONCAT(?, '@', target_domain) FROM alias_domain WHERE alias_domain = ?)
      AND logged_in_as NOT IN (SELECT goto FROM alias WHERE address = ?)
UNION
SELECT username FROM mailbox, alias_domain
  WHERE alias_domain.alias_domain = ?
    AND mailbox.username = CONCAT(?, '@', alias_domain.target_domain)
    AND mailbox.active IN (1, 2)
    AND alias_domain.active = 1";

/// Answers [`super::lookup`] for a Mailcow database.
pub(super) async fn lookup(cfg: &DbConfig, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
    let mut db = Db::connect(cfg).await?;
    let result = db.lookup(addr).await;
    db.close().await;
    result
}

/// Answers [`super::our_domains`] for a Mailcow database.
pub(super) async fn our_domains(cfg: &DbConfig) -> Result<Vec<String>, DirectoryError> {
    let mut db = Db::connect(cfg).await?;
    let result = db
        .rows(
            "SELECT domain FROM domain UNION SELECT alias_domain FROM alias_domain",
            Vec::new(),
        )
        .await;
    db.close().await;
    let mut out = Vec::new();
    for row in result? {
        if let Some(d) = text(&row, 0) {
            out.push(d.to_lowercase());
        }
    }
    Ok(sorted(out))
}

/// One open connection.
struct Db {
    conn: Conn,
    /// `host:port` or `unix:/path`, for messages and `source`.
    target: String,
    database: String,
    user: String,
    has_password: bool,
}

impl Db {
    /// Connects over the socket when one is configured, else (or when it
    /// cannot be reached) over TCP.
    async fn connect(cfg: &DbConfig) -> Result<Db, DirectoryError> {
        let mut socket_failure = None;
        if let Some(socket) = &cfg.socket {
            let target = format!("unix:{}", socket.display());
            match open(cfg, Some(socket), &target).await {
                Ok(conn) => return Ok(Db::new(cfg, conn, target)),
                Err(DirectoryError::Connect { problem, .. }) => socket_failure = Some((target, problem)),
                Err(e) => return Err(e),
            }
        }
        let target = cfg.addr();
        match open(cfg, None, &target).await {
            Ok(conn) => Ok(Db::new(cfg, conn, target)),
            Err(DirectoryError::Connect {
                target,
                user,
                problem,
                fix,
            }) => {
                let Some((socket_target, socket_problem)) = socket_failure else {
                    return Err(DirectoryError::Connect {
                        target,
                        user,
                        problem,
                        fix,
                    });
                };
                Err(DirectoryError::Connect {
                    target: format!("{socket_target} and {target}"),
                    user,
                    problem: format!("the socket: {socket_problem}; TCP: {problem}"),
                    fix,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn new(cfg: &DbConfig, conn: Conn, target: String) -> Db {
        Db {
            conn,
            target,
            database: cfg.database.clone(),
            user: cfg.user.clone(),
            has_password: cfg.password.is_some(),
        }
    }

    /// Says goodbye to the server; a failure here changes no answer.
    async fn close(self) {
        let _ = tokio::time::timeout(DB_TIMEOUT, self.conn.disconnect()).await;
    }

    fn source(&self) -> String {
        format!("mailcow-db {}/{}", self.target, self.database)
    }

    /// Runs one read-only statement with bound parameters.
    async fn rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DirectoryError> {
        let fut = self.conn.exec::<Row, _, _>(sql, params);
        match tokio::time::timeout(DB_TIMEOUT, fut).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(db_error(
                e,
                &self.target,
                &self.user,
                &self.database,
                self.has_password,
            )),
            Err(_) => Err(DirectoryError::Query {
                target: self.target.clone(),
                problem: format!("no answer within {} s", DB_TIMEOUT.as_secs()),
            }),
        }
    }

    async fn lookup(&mut self, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
        let mut notes = Vec::new();
        let mut kind = self.exact(addr, &mut notes).await?;
        if kind.is_none()
            && let Some(base) = addr.without_extension()
        {
            let mut base_notes = Vec::new();
            kind = self.exact(&base, &mut base_notes).await?;
            if kind.is_some() {
                // What the full address lacked no longer matters.
                notes = vec![extension_note(addr, &base)];
                notes.extend(base_notes);
            }
        }
        let kind = match kind {
            Some(k) => k,
            None => self
                .catch_all(addr, &mut notes)
                .await?
                .unwrap_or(AddressKind::Unknown),
        };
        let domain_known = self.domain_known(&addr.domain).await?;
        let may_send_as = self.senders(addr, &mut notes).await?;
        Ok(AddressInfo {
            address: addr.full.clone(),
            kind,
            domain_known,
            may_send_as,
            source: self.source(),
            notes,
        })
    }

    /// Steps 1–4: the entries for exactly this address.
    async fn exact(
        &mut self,
        a: &Addr,
        notes: &mut Vec<String>,
    ) -> Result<Option<AddressKind>, DirectoryError> {
        // 1. A mailbox.
        let rows = self
            .rows(
                "SELECT active FROM mailbox WHERE username = ?",
                vec![a.full.as_str().into()],
            )
            .await?;
        if let Some(row) = rows.first() {
            let active = int(row, 0).unwrap_or(0);
            if active == 2 {
                notes.push(format!(
                    "{:?} has login disabled (Mailcow active = 2): it receives mail but cannot log in",
                    a.full
                ));
            }
            let own = self
                .rows(
                    "SELECT goto FROM alias WHERE address = ?",
                    vec![a.full.as_str().into()],
                )
                .await?;
            match own.first().and_then(|r| text(r, 0)) {
                None => notes.push(format!(
                    "{:?} has no alias row of its own (Mailcow creates one with every mailbox): it cannot send as its own address",
                    a.full
                )),
                Some(goto) => {
                    let targets = split_targets(&goto);
                    if targets != [a.full.clone()] {
                        notes.push(format!(
                            "mail to {:?} goes to: {} (forwarding set on the mailbox)",
                            a.full,
                            targets.join(", ")
                        ));
                    }
                }
            }
            return Ok(Some(AddressKind::Mailbox {
                active: matches!(active, 1 | 2),
            }));
        }
        // 2. An alias.
        let rows = self
            .rows(
                "SELECT goto, active FROM alias WHERE address = ?",
                vec![a.full.as_str().into()],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(Some(AddressKind::Alias {
                targets: split_targets(&text(row, 0).unwrap_or_default()),
                active: matches!(int(row, 1), Some(1 | 2)),
            }));
        }
        // 3. A time-limited alias, judged by the database's clock as Postfix's
        // query does.
        let rows = self
            .rows(
                "SELECT goto, validity, UNIX_TIMESTAMP() FROM spamalias WHERE address = ?",
                vec![a.full.as_str().into()],
            )
            .await?;
        if let Some(row) = rows.first() {
            let validity = int(row, 1).unwrap_or(0);
            let now = int(row, 2).unwrap_or(i64::MAX);
            let active = validity >= now;
            let when = unix_time(validity);
            notes.push(if active {
                format!(
                    "{:?} is a time-limited alias (Mailcow spamalias), valid until {when}",
                    a.full
                )
            } else {
                format!(
                    "{:?} is a time-limited alias (Mailcow spamalias) that expired at {when}",
                    a.full
                )
            });
            return Ok(Some(AddressKind::Alias {
                targets: split_targets(&text(row, 0).unwrap_or_default()),
                active,
            }));
        }
        // 4. An alias domain: only mailboxes are mapped.
        let rows = self
            .rows(
                "SELECT target_domain, active FROM alias_domain WHERE alias_domain = ?",
                vec![a.domain.as_str().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let target_domain = text(row, 0).unwrap_or_default().to_lowercase();
        let domain_active = int(row, 1) == Some(1);
        let target = a.in_domain(&target_domain);
        let mailbox = self
            .rows(
                "SELECT active FROM mailbox WHERE username = ?",
                vec![target.full.as_str().into()],
            )
            .await?;
        if mailbox.is_empty() {
            notes.push(format!(
                "{:?} is an alias domain of {:?}, which has no mailbox {:?}; Mailcow maps only mailboxes through alias domains (not the aliases or the catch-all of {:?})",
                a.domain, target_domain, target.full, target_domain
            ));
            return Ok(None);
        }
        if !domain_active {
            notes.push(format!(
                "{:?} is an inactive alias domain of {:?}: Postfix accepts no mail for it",
                a.domain, target_domain
            ));
            return Ok(None);
        }
        let mut resolved_notes = Vec::new();
        let kind = Box::pin(self.exact(&target, &mut resolved_notes))
            .await?
            .unwrap_or(AddressKind::Unknown);
        let may_send_as = Box::pin(self.senders(&target, &mut resolved_notes)).await?;
        let resolved = AddressInfo {
            address: target.full.clone(),
            kind,
            domain_known: true,
            may_send_as,
            source: self.source(),
            notes: resolved_notes,
        };
        Ok(Some(AddressKind::DomainAlias {
            alias_domain: a.domain.clone(),
            target_domain,
            resolved: Box::new(resolved),
        }))
    }

    /// Step 6: the domain's catch-all, when active.
    async fn catch_all(
        &mut self,
        a: &Addr,
        notes: &mut Vec<String>,
    ) -> Result<Option<AddressKind>, DirectoryError> {
        let key = a.catch_all_key();
        let rows = self
            .rows(
                "SELECT goto, active FROM alias WHERE address = ?",
                vec![key.as_str().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let targets = split_targets(&text(row, 0).unwrap_or_default());
        if matches!(int(row, 1), Some(1 | 2)) {
            Ok(Some(AddressKind::CatchAll { targets }))
        } else {
            notes.push(format!(
                "the catch-all {key:?} (to {}) is inactive",
                targets.join(", ")
            ));
            Ok(None)
        }
    }

    async fn domain_known(&mut self, domain: &str) -> Result<bool, DirectoryError> {
        let rows = self
            .rows(
                "SELECT (SELECT COUNT(*) FROM domain WHERE domain = ?) + (SELECT COUNT(*) FROM alias_domain WHERE alias_domain = ?)",
                vec![domain.into(), domain.into()],
            )
            .await?;
        Ok(rows.first().and_then(|r| int(r, 0)).unwrap_or(0) > 0)
    }

    /// The owners per Mailcow's sender-login map (with Postfix's retry
    /// without `+extension`), kept when they are mailboxes.
    async fn senders(&mut self, a: &Addr, notes: &mut Vec<String>) -> Result<Vec<String>, DirectoryError> {
        let mut owners = self.sender_acl(a).await?;
        if owners.is_empty()
            && let Some(base) = a.without_extension()
        {
            owners = self.sender_acl(&base).await?;
        }
        if owners.is_empty() {
            return Ok(owners);
        }
        let placeholders = vec!["?"; owners.len()].join(", ");
        let sql = format!("SELECT username, active FROM mailbox WHERE username IN ({placeholders})");
        let params = owners.iter().map(|o| Value::from(o.as_str())).collect();
        let mut mailboxes = Vec::new();
        let mut cannot_log_in = Vec::new();
        for row in self.rows(&sql, params).await? {
            let Some(user) = text(&row, 0).map(|u| u.to_lowercase()) else {
                continue;
            };
            if int(&row, 1) != Some(1) {
                cannot_log_in.push(user.clone());
            }
            mailboxes.push(user);
        }
        let dropped: Vec<&String> = owners.iter().filter(|o| !mailboxes.contains(o)).collect();
        if !dropped.is_empty() {
            let dropped: Vec<&str> = dropped.iter().map(|s| s.as_str()).collect();
            notes.push(format!(
                "not counted as senders of {:?}, because they are no mailboxes and so cannot log in: {}",
                a.full,
                dropped.join(", ")
            ));
        }
        let cannot_log_in = sorted(cannot_log_in);
        if !cannot_log_in.is_empty() {
            notes.push(format!(
                "may send as {:?} but cannot log in now (mailbox inactive or login disabled): {}",
                a.full,
                cannot_log_in.join(", ")
            ));
        }
        Ok(sorted(mailboxes))
    }

    /// The raw owners from the sender-ACL query, split and lowercased.
    async fn sender_acl(&mut self, a: &Addr) -> Result<Vec<String>, DirectoryError> {
        let s = a.full.as_str();
        let d = a.domain.as_str();
        let u = a.local.as_str();
        let at_d = a.catch_all_key();
        let params: Vec<Value> = vec![
            s.into(),
            at_d.as_str().into(),
            d.into(),
            d.into(),
            at_d.as_str().into(),
            s.into(),
            d.into(),
            u.into(),
            d.into(),
            s.into(),
            d.into(),
            u.into(),
        ];
        let mut owners = Vec::new();
        for row in self.rows(SENDER_ACL_SQL, params).await? {
            if let Some(t) = text(&row, 0) {
                for o in split_targets(&t) {
                    if !owners.contains(&o) {
                        owners.push(o);
                    }
                }
            }
        }
        Ok(owners)
    }
}

/// Opens one connection.
async fn open(cfg: &DbConfig, socket: Option<&Path>, target: &str) -> Result<Conn, DirectoryError> {
    let mut opts = OptsBuilder::default()
        .user(Some(cfg.user.clone()))
        .pass(cfg.password.clone())
        .db_name(Some(cfg.database.clone()))
        // Never switch to the socket the server reports: inside Docker that
        // path is the container's.
        .prefer_socket(false)
        .init(vec!["SET SESSION TRANSACTION READ ONLY"]);
    opts = match socket {
        Some(path) => opts.socket(Some(path.to_string_lossy().into_owned())),
        None => opts.ip_or_hostname(cfg.host.clone()).tcp_port(cfg.port),
    };
    match tokio::time::timeout(DB_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(db_error(
            e,
            target,
            &cfg.user,
            &cfg.database,
            cfg.password.is_some(),
        )),
        Err(_) => Err(DirectoryError::Connect {
            target: target.to_owned(),
            user: cfg.user.clone(),
            problem: format!("no answer within {} s", DB_TIMEOUT.as_secs()),
            fix: CONNECT_FIX.to_owned(),
        }),
    }
}

const CONNECT_FIX: &str = "check that Mailcow's database runs (docker compose ps mysql-mailcow, in the Mailcow directory) and where it is published: SQL_PORT in mailcow.conf (default 127.0.0.1:13306)";

/// Turns a driver error into one that names the target, the user and the fix
/// (never the password: neither the driver nor the server puts it in a
/// message).
fn db_error(
    e: mysql_async::Error,
    target: &str,
    user: &str,
    database: &str,
    has_password: bool,
) -> DirectoryError {
    use mysql_async::Error as E;
    let auth = |problem: String| DirectoryError::Auth {
        target: target.to_owned(),
        user: user.to_owned(),
        problem,
        fix: if has_password {
            "check DBUSER and DBPASS in mailcow.conf: they must be the credentials the running mysql-mailcow container was created with (changing DBPASS in mailcow.conf later does not change it in the database)".to_owned()
        } else {
            "no password was given: set DBPASS in mailcow.conf (Mailcow's generate_config.sh always writes one)".to_owned()
        },
    };
    match e {
        E::Server(s) => match s.code {
            // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
            1045 | 1698 => auth(s.message),
            // ER_DBACCESS_DENIED_ERROR, ER_BAD_DB_ERROR.
            1044 | 1049 => DirectoryError::Database {
                target: target.to_owned(),
                user: user.to_owned(),
                database: database.to_owned(),
                problem: s.message,
                fix: "check DBNAME in mailcow.conf (Mailcow writes DBNAME=mailcow) and that DBUSER is the user Mailcow created for it".to_owned(),
            },
            // ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR.
            1146 | 1054 => DirectoryError::Schema {
                target: target.to_owned(),
                database: database.to_owned(),
                problem: s.message,
                fix: "DBNAME must name Mailcow's own database: mailwarden reads its tables mailbox, alias, alias_domain, domain, sender_acl and spamalias (a database of a very old Mailcow release may lack columns: run Mailcow's update.sh)".to_owned(),
            },
            code => DirectoryError::Query {
                target: target.to_owned(),
                problem: format!("server error {code}: {}", s.message),
            },
        },
        E::Driver(mysql_async::DriverError::UnknownAuthPlugin { name }) => auth(format!(
            "the server asks for the authentication plugin {name:?}, which mailwarden does not speak (it speaks mysql_native_password, Mailcow's default)"
        )),
        E::Io(io) => DirectoryError::Connect {
            target: target.to_owned(),
            user: user.to_owned(),
            problem: io.to_string(),
            fix: CONNECT_FIX.to_owned(),
        },
        other => DirectoryError::Query {
            target: target.to_owned(),
            problem: other.to_string(),
        },
    }
}

/// Column `i` as an integer (binary or text protocol).
fn int(row: &Row, i: usize) -> Option<i64> {
    match row.as_ref(i)? {
        Value::Int(n) => Some(*n),
        Value::UInt(n) => i64::try_from(*n).ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Column `i` as text (invalid UTF-8 replaced).
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Unix time as RFC 3339 (UTC), or the number when out of range.
fn unix_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| format!("Unix time {secs}"), |t| t.to_string())
}

/// The whole directory as list-file entries (see [`super::snapshot`]): the
/// entries Postfix's maps would accept now — mailboxes with `active` 1 or 2,
/// active aliases and catch-alls, spam aliases still valid by the
/// database's clock, active alias domains, and every domain. Returns the
/// entries and the source's name.
pub(super) async fn entries(cfg: &DbConfig) -> Result<(super::snapshot::Entries, String), DirectoryError> {
    let mut db = Db::connect(cfg).await?;
    let result = db.entries().await;
    let source = db.source();
    db.close().await;
    Ok((result?, source))
}

impl Db {
    async fn entries(&mut self) -> Result<super::snapshot::Entries, DirectoryError> {
        let mut e = super::snapshot::Entries::default();
        for row in self
            .rows("SELECT username FROM mailbox WHERE active IN (1, 2)", Vec::new())
            .await?
        {
            if let Some(u) = text(&row, 0) {
                e.mailboxes.push(u);
            }
        }
        for row in self
            .rows("SELECT address, goto FROM alias WHERE active = 1", Vec::new())
            .await?
        {
            if let (Some(a), Some(g)) = (text(&row, 0), text(&row, 1)) {
                e.aliases.push((a, g));
            }
        }
        for row in self
            .rows(
                "SELECT address, goto FROM spamalias WHERE validity >= UNIX_TIMESTAMP()",
                Vec::new(),
            )
            .await?
        {
            if let (Some(a), Some(g)) = (text(&row, 0), text(&row, 1)) {
                e.aliases.push((a, g));
            }
        }
        for row in self
            .rows(
                "SELECT alias_domain, target_domain FROM alias_domain WHERE active = 1",
                Vec::new(),
            )
            .await?
        {
            if let (Some(a), Some(t)) = (text(&row, 0), text(&row, 1)) {
                e.alias_domains.push((a, t));
            }
        }
        for row in self
            .rows(
                "SELECT domain FROM domain UNION SELECT alias_domain FROM alias_domain",
                Vec::new(),
            )
            .await?
        {
            if let Some(d) = text(&row, 0) {
                e.domains.push(d);
            }
        }
        Ok(e)
    }
}
