//! The Mailcow directory against a real MariaDB: the machine's server on
//! `127.0.0.1:3306` and its socket, administered as `root` (without password
//! over TCP, or by `unix_socket` over the socket) — started with
//! `service mariadb start` when it is not running. Each test creates its own
//! database `mw_dir_test_<random>` holding the part of Mailcow's schema that
//! mailwarden reads (column names and types from Mailcow's
//! `init_db.inc.php`), filled the way Mailcow's UI does (every mailbox has an
//! alias row to itself), and a user of the same name that may only read it;
//! mailwarden connects as that user. Both are dropped at the end, also when
//! the test panics. Nothing is mocked and nothing is skipped.

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailwarden_io::directory::{self, AddressInfo, AddressKind, DbConfig, DirectoryError, DirectorySource};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

const HOST: &str = "127.0.0.1";
const PORT: u16 = 3306;
const SOCKET: &str = "/run/mysqld/mysqld.sock";

/// Mailcow's tables, as `init_db.inc.php` creates them (current release),
/// limited to the tables mailwarden reads.
const SCHEMA: [&str; 6] = [
    "CREATE TABLE domain (
        domain VARCHAR(255) NOT NULL,
        description VARCHAR(255),
        aliases INT(10) NOT NULL DEFAULT '0',
        mailboxes INT(10) NOT NULL DEFAULT '0',
        defquota BIGINT(20) NOT NULL DEFAULT '3072',
        maxquota BIGINT(20) NOT NULL DEFAULT '102400',
        quota BIGINT(20) NOT NULL DEFAULT '102400',
        relayhost VARCHAR(255) NOT NULL DEFAULT '0',
        backupmx TINYINT(1) NOT NULL DEFAULT '0',
        gal TINYINT(1) NOT NULL DEFAULT '1',
        relay_all_recipients TINYINT(1) NOT NULL DEFAULT '0',
        relay_unknown_only TINYINT(1) NOT NULL DEFAULT '0',
        created DATETIME(0) NOT NULL DEFAULT NOW(0),
        modified DATETIME ON UPDATE CURRENT_TIMESTAMP,
        active TINYINT(1) NOT NULL DEFAULT '1',
        PRIMARY KEY (domain)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
    "CREATE TABLE mailbox (
        username VARCHAR(255) NOT NULL,
        password VARCHAR(255) NOT NULL,
        name VARCHAR(255),
        description VARCHAR(255),
        mailbox_path_prefix VARCHAR(150) DEFAULT '/var/vmail/',
        quota BIGINT(20) NOT NULL DEFAULT '102400',
        local_part VARCHAR(255) NOT NULL,
        domain VARCHAR(255) NOT NULL,
        attributes JSON,
        custom_attributes JSON NOT NULL DEFAULT ('{}'),
        kind VARCHAR(100) NOT NULL DEFAULT '',
        multiple_bookings INT NOT NULL DEFAULT -1,
        authsource ENUM('mailcow', 'keycloak', 'generic-oidc', 'ldap') DEFAULT 'mailcow',
        created DATETIME(0) NOT NULL DEFAULT NOW(0),
        modified DATETIME ON UPDATE CURRENT_TIMESTAMP,
        active TINYINT(1) NOT NULL DEFAULT '1',
        PRIMARY KEY (username),
        KEY domain (domain),
        KEY kind (kind)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
    "CREATE TABLE alias (
        id INT NOT NULL AUTO_INCREMENT,
        address VARCHAR(255) NOT NULL,
        goto TEXT NOT NULL,
        domain VARCHAR(255) NOT NULL,
        created DATETIME(0) NOT NULL DEFAULT NOW(0),
        modified DATETIME ON UPDATE CURRENT_TIMESTAMP,
        private_comment TEXT,
        public_comment TEXT,
        sogo_visible TINYINT(1) NOT NULL DEFAULT '1',
        active TINYINT(1) NOT NULL DEFAULT '1',
        PRIMARY KEY (id),
        UNIQUE KEY address (address),
        KEY domain (domain)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
    "CREATE TABLE alias_domain (
        alias_domain VARCHAR(255) NOT NULL,
        target_domain VARCHAR(255) NOT NULL,
        created DATETIME(0) NOT NULL DEFAULT NOW(0),
        modified DATETIME ON UPDATE CURRENT_TIMESTAMP,
        active TINYINT(1) NOT NULL DEFAULT '1',
        PRIMARY KEY (alias_domain),
        KEY active (active),
        KEY target_domain (target_domain)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
    "CREATE TABLE sender_acl (
        id INT NOT NULL AUTO_INCREMENT,
        logged_in_as VARCHAR(255) NOT NULL,
        send_as VARCHAR(255) NOT NULL,
        external TINYINT(1) NOT NULL DEFAULT '0',
        PRIMARY KEY (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
    "CREATE TABLE spamalias (
        address VARCHAR(255) NOT NULL,
        goto TEXT NOT NULL,
        validity INT(11) NOT NULL,
        PRIMARY KEY (address)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=DYNAMIC",
];

/// The company's directory. example.com and example.org are domains;
/// example.net is an active alias domain of example.com, example.info an
/// inactive one.
const FIXTURES: [&str; 6] = [
    "INSERT INTO domain (domain, description, active) VALUES
        ('example.com', 'the company', 1), ('example.org', 'the shop', 1)",
    "INSERT INTO alias_domain (alias_domain, target_domain, active) VALUES
        ('example.net', 'example.com', 1), ('example.info', 'example.com', 0)",
    // dave has login disabled (active = 2), carol is inactive.
    "INSERT INTO mailbox (username, password, name, local_part, domain, attributes, active) VALUES
        ('alice@example.com', '{BLF-CRYPT}x', 'Alice', 'alice', 'example.com', '{}', 1),
        ('bob@example.com', '{BLF-CRYPT}x', 'Bob', 'bob', 'example.com', '{}', 1),
        ('carol@example.com', '{BLF-CRYPT}x', 'Carol', 'carol', 'example.com', '{}', 0),
        ('dave@example.com', '{BLF-CRYPT}x', 'Dave', 'dave', 'example.com', '{}', 2),
        ('frank@example.com', '{BLF-CRYPT}x', 'Frank', 'frank', 'example.com', '{}', 1),
        ('eve@example.org', '{BLF-CRYPT}x', 'Eve', 'eve', 'example.org', '{}', 1)",
    // Each mailbox's own alias row (as Mailcow's UI creates it, with the
    // mailbox's active value); bob forwards to an outside address. Then a
    // multi-target alias, an inactive alias and the catch-all of example.org.
    "INSERT INTO alias (address, goto, domain, active) VALUES
        ('alice@example.com', 'alice@example.com', 'example.com', 1),
        ('bob@example.com', 'bob@example.com,bob@elsewhere.test', 'example.com', 1),
        ('carol@example.com', 'carol@example.com', 'example.com', 0),
        ('dave@example.com', 'dave@example.com', 'example.com', 2),
        ('frank@example.com', 'frank@example.com', 'example.com', 1),
        ('eve@example.org', 'eve@example.org', 'example.org', 1),
        ('team@example.com', 'alice@example.com,bob@example.com,external@elsewhere.test', 'example.com', 1),
        ('old@example.com', 'alice@example.com', 'example.com', 0),
        ('@example.org', 'eve@example.org', 'example.org', 1)",
    // frank may send as anything, dave and the deleted ghost as anything of
    // example.org, bob as alice, alice as an outside address.
    "INSERT INTO sender_acl (logged_in_as, send_as, external) VALUES
        ('frank@example.com', '*', 0),
        ('dave@example.com', '@example.org', 0),
        ('ghost@example.com', '@example.org', 0),
        ('bob@example.com', 'alice@example.com', 0),
        ('alice@example.com', 'someone@elsewhere.test', 1)",
    "INSERT INTO spamalias (address, goto, validity) VALUES
        ('shop.xkcd@example.com', 'alice@example.com', UNIX_TIMESTAMP() + 86400),
        ('expired.abc@example.com', 'alice@example.com', UNIX_TIMESTAMP() - 86400)",
];

fn admin_tcp() -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(HOST)
        .tcp_port(PORT)
        .user(Some("root"))
        .prefer_socket(false)
}

fn admin_socket() -> OptsBuilder {
    OptsBuilder::default()
        .socket(Some(SOCKET))
        .user(Some("root"))
        .prefer_socket(false)
}

/// Connects as root: over TCP without password, else over the socket (where
/// Debian's default `unix_socket` authentication lets the system's root in).
/// Starts the machine's MariaDB once when neither works.
async fn admin() -> Conn {
    async fn try_both() -> Result<Conn, String> {
        match Conn::new(admin_tcp()).await {
            Ok(c) => Ok(c),
            Err(tcp) => Conn::new(admin_socket())
                .await
                .map_err(|sock| format!("TCP: {tcp}; socket: {sock}")),
        }
    }
    if let Ok(c) = try_both().await {
        return c;
    }
    let started = std::process::Command::new("service")
        .args(["mariadb", "start"])
        .output();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_both().await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!(
                "directory_mariadb cannot run: no MariaDB for root at {HOST}:{PORT} or {SOCKET}: {e} \
                 (service mariadb start: {started:?}); fix: apt-get install mariadb-server && service mariadb start"
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A private database and a user that may only read it (like Mailcow's
/// DBUSER, but without write rights), both dropped when this guard goes (also
/// on panic).
struct TestDb {
    /// The database's and the user's name.
    name: String,
    password: String,
}

impl TestDb {
    /// An empty database.
    async fn empty() -> TestDb {
        let random = || RandomState::new().hash_one(std::process::id());
        let db = TestDb {
            name: format!("mw_dir_test_{:016x}", random()),
            password: format!("pw{:016x}", random()),
        };
        let mut conn = admin().await;
        let name = &db.name;
        let setup = [
            format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
            format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{}'", db.password),
            format!("CREATE USER '{name}'@'localhost' IDENTIFIED BY '{}'", db.password),
            format!("GRANT SELECT ON {name}.* TO '{name}'@'%'"),
            format!("GRANT SELECT ON {name}.* TO '{name}'@'localhost'"),
        ];
        for sql in setup {
            conn.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
        }
        let _ = conn.disconnect().await;
        db
    }

    /// A database with Mailcow's tables and the company's directory.
    async fn mailcow() -> TestDb {
        let db = TestDb::empty().await;
        let mut conn = admin().await;
        conn.query_drop(format!("USE {}", db.name)).await.unwrap();
        for sql in SCHEMA.iter().chain(FIXTURES.iter()) {
            conn.query_drop(*sql)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
        }
        let _ = conn.disconnect().await;
        db
    }

    /// How mailwarden reaches it: over TCP, as the read-only user.
    fn config(&self) -> DbConfig {
        DbConfig {
            host: HOST.to_owned(),
            port: PORT,
            socket: None,
            user: self.name.clone(),
            password: Some(self.password.clone()),
            database: self.name.clone(),
        }
    }

    fn source(&self) -> DirectorySource {
        DirectorySource::MailcowDb(self.config())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread of its own: this may run inside the test's runtime, or
        // while it unwinds.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = admin().await;
                conn.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await?;
                conn.query_drop(format!("DROP USER IF EXISTS '{name}'@'%', '{name}'@'localhost'"))
                    .await?;
                conn.disconnect().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

async fn check(src: &DirectorySource, address: &str, kind: AddressKind, may_send_as: &[&str]) -> AddressInfo {
    let info = directory::lookup(src, address)
        .await
        .unwrap_or_else(|e| panic!("{address}: {e}"));
    assert_eq!(info.kind, kind, "{address}: {info:#?}");
    assert_eq!(info.may_send_as, s(may_send_as), "{address}: {info:#?}");
    info
}

fn has_note(info: &AddressInfo, part: &str) -> bool {
    info.notes.iter().any(|n| n.contains(part))
}

#[tokio::test]
async fn mailboxes_and_who_may_send_as_them() {
    let t0 = Instant::now();
    let db = TestDb::mailcow().await;
    let src = db.source();
    let info = check(
        &src,
        "Alice@Example.com",
        AddressKind::Mailbox { active: true },
        &["alice@example.com", "bob@example.com", "frank@example.com"],
    )
    .await;
    assert_eq!(info.address, "alice@example.com");
    assert!(info.domain_known);
    assert_eq!(info.source, format!("mailcow-db {HOST}:{PORT}/{}", db.name));
    assert!(info.notes.is_empty(), "{:?}", info.notes);

    // Forwarding is reported; the outside target cannot log in.
    let info = check(
        &src,
        "bob@example.com",
        AddressKind::Mailbox { active: true },
        &["bob@example.com", "frank@example.com"],
    )
    .await;
    assert!(
        has_note(&info, "goes to: bob@example.com, bob@elsewhere.test"),
        "{:?}",
        info.notes
    );
    assert!(has_note(&info, "no mailboxes"), "{:?}", info.notes);

    // An inactive mailbox is still a mailbox; its inactive alias row gives
    // it no send right.
    check(
        &src,
        "carol@example.com",
        AddressKind::Mailbox { active: false },
        &["frank@example.com"],
    )
    .await;
    let info = check(
        &src,
        "dave@example.com",
        AddressKind::Mailbox { active: true },
        &["frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "login disabled"), "{:?}", info.notes);

    // A +extension resolves to the mailbox; the sender map answered for the
    // full address already (frank's `*`), so Postfix does not retry.
    let info = check(
        &src,
        "alice+news@example.com",
        AddressKind::Mailbox { active: true },
        &["frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "+extension"), "{:?}", info.notes);
    eprintln!("mailboxes: {:?}", t0.elapsed());
}

#[tokio::test]
async fn aliases_catch_all_and_unknown() {
    let db = TestDb::mailcow().await;
    let src = db.source();
    let info = check(
        &src,
        "team@example.com",
        AddressKind::Alias {
            targets: s(&["alice@example.com", "bob@example.com", "external@elsewhere.test"]),
            active: true,
        },
        &["alice@example.com", "bob@example.com", "frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "external@elsewhere.test"), "{:?}", info.notes);
    check(
        &src,
        "old@example.com",
        AddressKind::Alias {
            targets: s(&["alice@example.com"]),
            active: false,
        },
        &["frank@example.com"],
    )
    .await;

    // The incident: an address nobody created. The catch-all takes its mail,
    // and its target may send as it — as may the `@example.org` and `*` ACLs.
    let info = check(
        &src,
        "xyovt@example.org",
        AddressKind::CatchAll {
            targets: s(&["eve@example.org"]),
        },
        &["dave@example.com", "eve@example.org", "frank@example.com"],
    )
    .await;
    assert!(info.domain_known);
    assert!(
        has_note(&info, "ghost@example.com"),
        "deleted account: {:?}",
        info.notes
    );
    assert!(
        has_note(
            &info,
            "cannot log in now (mailbox inactive or login disabled): dave@example.com"
        ),
        "{:?}",
        info.notes
    );

    let info = check(
        &src,
        "xyovt@example.com",
        AddressKind::Unknown,
        &["frank@example.com"],
    )
    .await;
    assert!(info.domain_known);
    let info = check(
        &src,
        "someone@elsewhere.test",
        AddressKind::Unknown,
        &["alice@example.com", "frank@example.com"],
    )
    .await;
    assert!(!info.domain_known);

    // Time-limited aliases (spamalias) by the database's clock.
    let info = check(
        &src,
        "shop.xkcd@example.com",
        AddressKind::Alias {
            targets: s(&["alice@example.com"]),
            active: true,
        },
        &["frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "valid until"), "{:?}", info.notes);
    check(
        &src,
        "expired.abc@example.com",
        AddressKind::Alias {
            targets: s(&["alice@example.com"]),
            active: false,
        },
        &["frank@example.com"],
    )
    .await;
}

#[tokio::test]
async fn alias_domains() {
    let db = TestDb::mailcow().await;
    let src = db.source();
    let info = check(
        &src,
        "alice@example.net",
        AddressKind::DomainAlias {
            alias_domain: "example.net".to_owned(),
            target_domain: "example.com".to_owned(),
            resolved: Box::new(AddressInfo {
                address: "alice@example.com".to_owned(),
                kind: AddressKind::Mailbox { active: true },
                domain_known: true,
                may_send_as: s(&["alice@example.com", "bob@example.com", "frank@example.com"]),
                source: format!("mailcow-db {HOST}:{PORT}/{}", db.name),
                notes: Vec::new(),
            }),
        },
        &["alice@example.com", "bob@example.com", "frank@example.com"],
    )
    .await;
    assert!(info.domain_known);

    // With a +extension: the mailbox behind the alias domain, and no word
    // about the full address, which matched nothing.
    let info = directory::lookup(&src, "alice+x@example.net").await.unwrap();
    assert!(
        matches!(&info.kind, AddressKind::DomainAlias { resolved, .. } if resolved.address == "alice@example.com"),
        "{info:#?}"
    );
    assert_eq!(
        info.may_send_as,
        ["frank@example.com"],
        "frank's `*` answers the full address"
    );
    assert!(
        has_note(&info, "+extension") && !has_note(&info, "only mailboxes"),
        "{:?}",
        info.notes
    );

    // Only mailboxes are mapped through an alias domain.
    let info = check(
        &src,
        "team@example.net",
        AddressKind::Unknown,
        &["frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "only mailboxes"), "{:?}", info.notes);
    assert!(info.domain_known);

    // An inactive alias domain maps nothing; Mailcow's sender map still
    // honours bob's ACL for alice through it (its sub-query ignores
    // `active`), but not the mailbox itself.
    let info = check(
        &src,
        "alice@example.info",
        AddressKind::Unknown,
        &["bob@example.com", "frank@example.com"],
    )
    .await;
    assert!(has_note(&info, "inactive alias domain"), "{:?}", info.notes);

    assert_eq!(
        directory::our_domains(&src).await.unwrap(),
        ["example.com", "example.info", "example.net", "example.org"]
    );
}

#[tokio::test]
async fn socket_and_its_fallback_to_tcp() {
    let db = TestDb::mailcow().await;
    assert!(Path::new(SOCKET).exists(), "MariaDB's socket {SOCKET} is missing");
    let mut cfg = db.config();
    cfg.socket = Some(PathBuf::from(SOCKET));
    let info = directory::lookup(&DirectorySource::MailcowDb(cfg.clone()), "alice@example.com")
        .await
        .unwrap();
    assert_eq!(info.source, format!("mailcow-db unix:{SOCKET}/{}", db.name));
    assert_eq!(info.kind, AddressKind::Mailbox { active: true });

    cfg.socket = Some(PathBuf::from("/nonexistent/mysqld.sock"));
    let info = directory::lookup(&DirectorySource::MailcowDb(cfg), "alice@example.com")
        .await
        .unwrap();
    assert_eq!(info.source, format!("mailcow-db {HOST}:{PORT}/{}", db.name));
}

#[tokio::test]
async fn wrong_password_names_user_and_fix_but_no_password() {
    let db = TestDb::mailcow().await;
    let mut cfg = db.config();
    cfg.password = Some("Wr0ng-Secret-4711".to_owned());
    let e = directory::lookup(&DirectorySource::MailcowDb(cfg), "alice@example.com")
        .await
        .unwrap_err();
    assert!(matches!(e, DirectoryError::Auth { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("{HOST}:{PORT}")), "{msg}");
    assert!(msg.contains(&format!("{:?}", db.name)), "names the user: {msg}");
    assert!(
        msg.contains("DBPASS") && msg.contains("mailcow.conf"),
        "names the fix: {msg}"
    );
    assert!(
        !msg.contains("Wr0ng") && !format!("{e:?}").contains("Wr0ng"),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_database_or_schema_or_port() {
    // A database that does not exist.
    let empty = TestDb::empty().await;
    let mut cfg = empty.config();
    cfg.database = "mw_dir_test_does_not_exist".to_owned();
    let e = directory::lookup(&DirectorySource::MailcowDb(cfg), "a@example.com")
        .await
        .unwrap_err();
    assert!(matches!(e, DirectoryError::Database { .. }), "{e:?}");
    assert!(e.to_string().contains("DBNAME"), "{e}");

    // A database that is not Mailcow's.
    let e = directory::lookup(&empty.source(), "a@example.com")
        .await
        .unwrap_err();
    assert!(matches!(e, DirectoryError::Schema { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("mailbox") && msg.contains("Mailcow's own database"),
        "{msg}"
    );

    // Nothing listening.
    let port = {
        let l = TcpListener::bind((HOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = empty.config();
    cfg.port = port;
    let e = directory::our_domains(&DirectorySource::MailcowDb(cfg))
        .await
        .unwrap_err();
    assert!(matches!(e, DirectoryError::Connect { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{HOST}:{port}")) && msg.contains("SQL_PORT"),
        "{msg}"
    );
}

/// The whole directory in memory (what `detect` and `serve` give the
/// sender-not-mailbox rule): the same answers as one lookup each.
#[tokio::test]
async fn the_snapshot_answers_like_lookups() {
    use mailwarden_core::detect::SenderStatus;
    let db = TestDb::mailcow().await;
    let snap = directory::snapshot(&db.source()).await.unwrap();
    assert!(snap.source().starts_with("mailcow-db "), "{}", snap.source());
    assert!(snap.skipped().is_empty(), "{:?}", snap.skipped());
    for (address, want) in [
        ("alice@example.com", SenderStatus::Known),
        ("dave@example.com", SenderStatus::Known),
        // Inactive: Postfix would not accept it, so it is no mailbox now.
        ("carol@example.com", SenderStatus::Unknown),
        ("team@example.com", SenderStatus::Known),
        ("old@example.com", SenderStatus::Unknown),
        ("shop.xkcd@example.com", SenderStatus::Known),
        ("expired.abc@example.com", SenderStatus::Unknown),
        // Only the catch-all covers it.
        ("xyovt@example.org", SenderStatus::Unknown),
        ("eve@example.org", SenderStatus::Known),
        ("alice@example.net", SenderStatus::Known),
        ("team@example.net", SenderStatus::Unknown),
        // Inactive alias domain: still one of ours.
        ("alice@example.info", SenderStatus::Unknown),
        ("someone@elsewhere.test", SenderStatus::NotOurs),
    ] {
        assert_eq!(snap.sender_status(address), want, "{address}");
    }
    let domains = snap.domains();
    for d in ["example.com", "example.org", "example.net", "example.info"] {
        assert!(domains.contains(&d.to_owned()), "{d} in {domains:?}");
    }
}
