use super::*;

fn check_addr(input: &str, expect: Result<(&str, &str), &str>) {
    match (Addr::parse(input), expect) {
        (Ok(a), Ok((local, domain))) => {
            assert_eq!(
                (a.local.as_str(), a.domain.as_str()),
                (local, domain),
                "{input:?}"
            );
            assert_eq!(a.full, format!("{local}@{domain}"));
        }
        (Err(DirectoryError::InvalidAddress { problem, .. }), Err(want)) => {
            assert!(problem.contains(want), "{input:?}: {problem}");
        }
        (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn directory_addresses_are_checked_and_lowercased() {
    check_addr("XyOvt@Company.COM", Ok(("xyovt", "company.com")));
    check_addr("  <alice@example.com> ", Ok(("alice", "example.com")));
    check_addr("\"a@b\"@example.com", Ok(("\"a@b\"", "example.com")));
    check_addr("", Err("empty"));
    check_addr("<>", Err("empty"));
    check_addr("alice", Err("no @"));
    check_addr("@example.com", Err("before the @"));
    check_addr("alice@", Err("not a domain"));
    check_addr("alice@exa mple.com", Err("white space"));
    check_addr("alice@example..com", Err("not a domain"));
    check_addr("alice@exa\u{7}mple.com", Err("control"));
}

#[test]
fn directory_extension_is_dropped_like_postfix() {
    let a = Addr::parse("Alice+News+x@example.com").unwrap();
    assert_eq!(a.without_extension().unwrap().full, "alice@example.com");
    assert_eq!(Addr::parse("+x@example.com").unwrap().without_extension(), None);
    assert_eq!(
        Addr::parse("alice@example.com").unwrap().without_extension(),
        None
    );
}

#[test]
fn directory_targets_split_at_commas_and_space() {
    assert_eq!(
        split_targets(" A@x.org,b@x.org  c@x.org,,a@x.org "),
        ["a@x.org", "b@x.org", "c@x.org"]
    );
    assert!(split_targets(" , ").is_empty());
}

#[test]
fn directory_error_for_bad_address_escapes_it() {
    let e = Addr::parse("evil\u{1b}[31m").unwrap_err().to_string();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("user@example.com"), "names the fix: {e}");
}

const CONF: &str = "\
DBNAME=mailcow
DBUSER=mailcowuser
DBPASS=Qx7fTzK2mWc9LrB4vN8hJd3sPa6e
SQL_PORT=127.0.0.1:13306
COMPOSE_PROJECT_NAME=mailcowdockerized
";

#[test]
fn directory_db_config_from_mailcow() {
    let dir = tempfile::tempdir().unwrap();
    let conf = MailcowConf::parse(dir.path(), CONF).unwrap();
    let docker_root = dir.path().join("docker");
    let cfg = DbConfig::from_mailcow_with_docker_root(&conf, &docker_root).unwrap();
    assert_eq!(cfg.host, "127.0.0.1");
    assert_eq!(cfg.port, 13306);
    assert_eq!(cfg.user, "mailcowuser");
    assert_eq!(cfg.database, "mailcow");
    assert_eq!(cfg.password.as_deref(), Some("Qx7fTzK2mWc9LrB4vN8hJd3sPa6e"));
    assert_eq!(cfg.socket, None, "no volume, no socket");
    assert_eq!(cfg.addr(), "127.0.0.1:13306");

    // With Mailcow's socket volume present, the socket is used.
    let sock_dir = docker_root.join("volumes/mailcowdockerized_mysql-socket-vol-1/_data");
    std::fs::create_dir_all(&sock_dir).unwrap();
    std::fs::write(sock_dir.join("mysqld.sock"), b"").unwrap();
    let cfg = DbConfig::from_mailcow_with_docker_root(&conf, &docker_root).unwrap();
    assert_eq!(cfg.socket, Some(sock_dir.join("mysqld.sock")));

    // The password appears neither in Debug nor in JSON.
    let shown = format!(
        "{cfg:?} {}",
        serde_json::to_string(&DirectorySource::MailcowDb(cfg.clone())).unwrap()
    );
    assert!(!shown.contains("Qx7f"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn directory_sources_serialize() {
    let list = DirectorySource::ListFile(PathBuf::from("/etc/mailwarden/addresses.txt"));
    assert_eq!(
        serde_json::to_value(&list).unwrap(),
        serde_json::json!({"list_file": "/etc/mailwarden/addresses.txt"})
    );
    let pf = DirectorySource::Postfix { config_dir: None };
    assert_eq!(
        serde_json::to_value(&pf).unwrap(),
        serde_json::json!({"postfix": {"config_dir": null}})
    );
    let db = DirectorySource::MailcowDb(DbConfig {
        host: "127.0.0.1".to_owned(),
        port: 13306,
        socket: None,
        user: "mailcowuser".to_owned(),
        password: Some("hunter2-secret".to_owned()),
        database: "mailcow".to_owned(),
    });
    let v = serde_json::to_value(&db).unwrap();
    assert_eq!(v["mailcow_db"]["user"], "mailcowuser");
    assert!(!v.to_string().contains("hunter2"), "{v}");
}

#[test]
fn directory_db_config_needs_dbname_and_dbuser() {
    let dir = tempfile::tempdir().unwrap();
    let conf = MailcowConf::parse(dir.path(), "DBUSER=mailcowuser\nDBPASS=secret-value\n").unwrap();
    let e = DbConfig::from_mailcow(&conf).unwrap_err().to_string();
    assert!(e.contains("no DBNAME") && e.contains("DBNAME=mailcow"), "{e}");
    assert!(!e.contains("secret-value"), "{e}");
    let conf = MailcowConf::parse(dir.path(), "DBNAME=mailcow\n").unwrap();
    let e = DbConfig::from_mailcow(&conf).unwrap_err().to_string();
    assert!(e.contains("no DBUSER"), "{e}");
}

#[test]
fn directory_address_info_serializes_with_tagged_kind() {
    let info = AddressInfo {
        address: "x@example.net".to_owned(),
        kind: AddressKind::DomainAlias {
            alias_domain: "example.net".to_owned(),
            target_domain: "example.com".to_owned(),
            resolved: Box::new(AddressInfo {
                address: "x@example.com".to_owned(),
                kind: AddressKind::Mailbox { active: true },
                domain_known: true,
                may_send_as: vec!["x@example.com".to_owned()],
                source: "list a.txt:1".to_owned(),
                notes: Vec::new(),
            }),
        },
        domain_known: true,
        may_send_as: vec!["x@example.com".to_owned()],
        source: "list a.txt:2".to_owned(),
        notes: Vec::new(),
    };
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(v["kind"]["type"], "domain_alias");
    assert_eq!(v["kind"]["target_domain"], "example.com");
    assert_eq!(
        v["kind"]["resolved"]["kind"],
        serde_json::json!({"type": "mailbox", "active": true})
    );
    let unknown = serde_json::to_value(AddressKind::Unknown).unwrap();
    assert_eq!(unknown, serde_json::json!({"type": "unknown"}));
    let catch_all = serde_json::to_value(AddressKind::CatchAll {
        targets: vec!["a@x.org".to_owned()],
    })
    .unwrap();
    assert_eq!(
        catch_all,
        serde_json::json!({"type": "catch_all", "targets": ["a@x.org"]})
    );
}

#[tokio::test]
async fn directory_list_file_source_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addresses.txt");
    std::fs::write(&path, "alice@example.com\n@example.com: alice@example.com\n").unwrap();
    let src = DirectorySource::ListFile(path.clone());
    let info = lookup(&src, "XYOVT@example.com").await.unwrap();
    assert_eq!(info.address, "xyovt@example.com");
    assert_eq!(
        info.kind,
        AddressKind::CatchAll {
            targets: vec!["alice@example.com".to_owned()]
        }
    );
    assert_eq!(info.may_send_as, ["alice@example.com"]);
    assert_eq!(info.source, format!("list {}:2", path.display()));
    assert_eq!(our_domains(&src).await.unwrap(), ["example.com"]);

    let missing = DirectorySource::ListFile(dir.path().join("nope.txt"));
    let e = lookup(&missing, "a@example.com").await.unwrap_err().to_string();
    assert!(e.contains("nope.txt") && e.contains("check the path"), "{e}");
}
