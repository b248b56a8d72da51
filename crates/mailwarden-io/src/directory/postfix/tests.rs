//! Against the real `postconf` and `postmap` with a private configuration
//! directory (Postfix need not run).

use super::*;

/// Writes a Postfix configuration with hash, texthash and skipped maps.
fn lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let main_cf = format!(
        "compatibility_level = 3.6\n\
         virtual_alias_maps = hash:{d}/virtual, proxy:mysql:{d}/mysql.cf\n\
         virtual_mailbox_maps = texthash:{d}/vmailbox\n\
         virtual_mailbox_domains = example.com, hash:{d}/vdomains\n\
         virtual_alias_domains = example.net\n\
         mydestination = localhost\n\
         smtpd_sender_login_maps = hash:{d}/senders\n"
    );
    let files = [
        ("main.cf", main_cf.as_str()),
        (
            "virtual",
            "alice@example.com alice@example.com, alice@elsewhere.test\n\
             team@example.com alice@example.com, bob@example.com\n\
             @example.org eve@example.org\n\
             @example.net @example.com\n",
        ),
        (
            "vmailbox",
            "alice@example.com example.com/alice/\nbob@example.com example.com/bob/\n",
        ),
        ("vdomains", "example.org OK\n"),
        (
            "senders",
            "team@example.com alice@example.com, bob@example.com\n@example.org eve@example.org\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    for map in ["virtual", "vdomains", "senders"] {
        let st = Command::new("postmap")
            .arg("-c")
            .arg(dir.path())
            .arg(format!("hash:{d}/{map}"))
            .status()
            .unwrap_or_else(|e| panic!("postmap cannot run ({e}); fix: apt-get install postfix"));
        assert!(st.success(), "postmap {map}");
    }
    dir
}

fn check(dir: &Path, address: &str, kind: AddressKind, may_send_as: &[&str]) -> AddressInfo {
    let info = lookup(Some(dir), &Addr::parse(address).unwrap()).unwrap();
    assert_eq!(info.kind, kind, "{address}: {info:#?}");
    assert_eq!(info.may_send_as, may_send_as, "{address}");
    info
}

#[test]
fn directory_postfix_maps() {
    let lab = lab();
    let dir = lab.path();
    let d = dir.display();
    let info = check(
        dir,
        "alice@example.com",
        AddressKind::Mailbox { active: true },
        &[],
    );
    assert_eq!(info.source, format!("postfix {d}: texthash:{d}/vmailbox"));
    assert!(
        info.notes.iter().any(|n| n.contains("alice@elsewhere.test")),
        "{:?}",
        info.notes
    );
    assert!(
        info.notes.iter().any(|n| n.contains("proxy:mysql")),
        "{:?}",
        info.notes
    );
    assert!(info.domain_known);

    let targets = vec!["alice@example.com".to_owned(), "bob@example.com".to_owned()];
    let info = check(
        dir,
        "team@example.com",
        AddressKind::Alias {
            targets,
            active: true,
        },
        &["alice@example.com", "bob@example.com"],
    );
    assert_eq!(info.source, format!("postfix {d}: hash:{d}/virtual"));

    let info = check(
        dir,
        "xyovt@example.org",
        AddressKind::CatchAll {
            targets: vec!["eve@example.org".to_owned()],
        },
        &["eve@example.org"],
    );
    assert!(info.domain_known, "example.org is in the hash domain map");

    let info = lookup(Some(dir), &Addr::parse("bob@example.net").unwrap()).unwrap();
    match info.kind {
        AddressKind::DomainAlias {
            alias_domain,
            target_domain,
            resolved,
        } => {
            assert_eq!(
                (alias_domain.as_str(), target_domain.as_str()),
                ("example.net", "example.com")
            );
            assert_eq!(resolved.address, "bob@example.com");
            assert_eq!(resolved.kind, AddressKind::Mailbox { active: true });
        }
        k => panic!("{k:?}"),
    }

    check(
        dir,
        "bob+tag@example.com",
        AddressKind::Mailbox { active: true },
        &[],
    );
    let info = check(dir, "nobody@example.com", AddressKind::Unknown, &[]);
    assert!(info.domain_known);
    let info = check(dir, "x@elsewhere.test", AddressKind::Unknown, &[]);
    assert!(!info.domain_known);

    assert_eq!(
        our_domains(Some(dir)).unwrap(),
        ["example.com", "example.net", "example.org", "localhost"]
    );
}

#[test]
fn directory_postfix_errors_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = lookup(Some(dir.path()), &Addr::parse("a@example.com").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("postconf") && e.contains("main.cf"), "{e}");

    // A map named in main.cf but never built.
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("main.cf"),
        format!("virtual_alias_maps = hash:{d}/missing\n"),
    )
    .unwrap();
    let e = lookup(Some(dir.path()), &Addr::parse("a@example.com").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("postmap"), "{e}");
}

#[test]
fn directory_postfix_lists_split_like_postfix() {
    assert_eq!(
        split_list("hash:/a, inline:{ a=b, c=d }  pcre:/x"),
        ["hash:/a", "inline:{ a=b, c=d }", "pcre:/x"]
    );
    assert!(is_server_map("proxy:mysql:/x.cf"));
    assert!(is_server_map("LDAP:/x.cf"));
    assert!(!is_server_map("hash:/x"));
}
