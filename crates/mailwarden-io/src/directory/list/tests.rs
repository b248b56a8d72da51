use super::*;
use proptest::prelude::*;

const LIST: &str = "\
# The company's directory, as of the incident.
alice@example.com
Bob@Example.com          # case does not matter
frank@example.com
eve@example.org

team@example.com: alice@example.com, bob@example.com external@elsewhere.test
ext-only@example.com: someone@elsewhere.test
@example.org: eve@example.org
@example.net: example.com
@example.info: @example.com
@example.biz
";

fn list() -> AddressList {
    AddressList::parse(Path::new("/etc/mailwarden/addresses.txt"), LIST.as_bytes()).unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// One lookup: the kind, who may send, where the answer came from.
fn check(address: &str, kind: AddressKind, may_send_as: &[&str], line: Option<usize>) {
    let info = list().lookup(address).unwrap();
    assert_eq!(info.kind, kind, "{address}: {info:#?}");
    assert_eq!(info.may_send_as, s(may_send_as), "{address}: {info:#?}");
    let source = match line {
        Some(l) => format!("list /etc/mailwarden/addresses.txt:{l}"),
        None => "list /etc/mailwarden/addresses.txt".to_owned(),
    };
    assert_eq!(info.source, source, "{address}");
}

fn mailbox(address: &str, line: usize) -> Box<AddressInfo> {
    Box::new(AddressInfo {
        address: address.to_owned(),
        kind: AddressKind::Mailbox { active: true },
        domain_known: true,
        may_send_as: s(&[address]),
        source: format!("list /etc/mailwarden/addresses.txt:{line}"),
        notes: Vec::new(),
    })
}

#[test]
fn directory_list_lookups() {
    check(
        "alice@example.com",
        AddressKind::Mailbox { active: true },
        &["alice@example.com"],
        Some(2),
    );
    check(
        "BOB@example.com",
        AddressKind::Mailbox { active: true },
        &["bob@example.com"],
        Some(3),
    );
    check(
        "team@example.com",
        AddressKind::Alias {
            targets: s(&["alice@example.com", "bob@example.com", "external@elsewhere.test"]),
            active: true,
        },
        &["alice@example.com", "bob@example.com"],
        Some(7),
    );
    // The incident: an address nobody created, caught by the catch-all, whose
    // target may send as it.
    check(
        "xyovt@example.org",
        AddressKind::CatchAll {
            targets: s(&["eve@example.org"]),
        },
        &["eve@example.org"],
        Some(9),
    );
    check("xyovt@example.com", AddressKind::Unknown, &[], None);
    check(
        "alice@example.net",
        AddressKind::DomainAlias {
            alias_domain: "example.net".to_owned(),
            target_domain: "example.com".to_owned(),
            resolved: mailbox("alice@example.com", 2),
        },
        &["alice@example.com"],
        Some(10),
    );
    check(
        "frank@example.info",
        AddressKind::DomainAlias {
            alias_domain: "example.info".to_owned(),
            target_domain: "example.com".to_owned(),
            resolved: mailbox("frank@example.com", 4),
        },
        &["frank@example.com"],
        Some(11),
    );
    // Only mailboxes are mapped through alias domains.
    check("team@example.net", AddressKind::Unknown, &[], None);
    check("stranger@elsewhere.test", AddressKind::Unknown, &[], None);
}

#[test]
fn directory_list_notes_and_domains() {
    let l = list();
    let info = l.lookup("alice+news@example.com").unwrap();
    assert_eq!(info.kind, AddressKind::Mailbox { active: true });
    assert_eq!(info.may_send_as, ["alice@example.com"]);
    assert!(info.notes[0].contains("+extension"), "{:?}", info.notes);

    let info = l.lookup("alice+news@example.net").unwrap();
    assert!(matches!(info.kind, AddressKind::DomainAlias { .. }), "{info:?}");
    assert_eq!(info.notes.len(), 1, "{:?}", info.notes);
    assert!(info.notes[0].contains("+extension"), "{:?}", info.notes);

    let info = l.lookup("ext-only@example.com").unwrap();
    assert!(info.may_send_as.is_empty());
    assert!(
        info.notes[0].contains("someone@elsewhere.test"),
        "{:?}",
        info.notes
    );

    let info = l.lookup("team@example.net").unwrap();
    assert!(info.domain_known);
    assert!(info.notes[0].contains("only mailboxes"), "{:?}", info.notes);

    assert!(l.lookup("x@example.biz").unwrap().domain_known);
    assert!(!l.lookup("x@elsewhere.test").unwrap().domain_known);
    assert_eq!(
        l.domains(),
        [
            "example.biz",
            "example.com",
            "example.info",
            "example.net",
            "example.org"
        ]
    );
}

/// A list with one bad line: the error names the line and says how to fix it.
fn check_error(text: impl AsRef<[u8]>, line: usize, problem: &str, fix: &str) {
    let text = text.as_ref();
    match AddressList::parse(Path::new("a.txt"), text) {
        Err(DirectoryError::ListSyntax {
            line: l,
            problem: p,
            fix: f,
            ..
        }) => {
            assert_eq!(l, line, "{text:?}: {p}");
            assert!(p.contains(problem), "{text:?}: problem {p:?}");
            assert!(f.contains(fix), "{text:?}: fix {f:?}");
        }
        other => panic!("{text:?}: {other:?}"),
    }
}

#[test]
fn directory_list_errors_name_line_and_fix() {
    check_error("alice\n", 1, "no @", "user@example.com");
    check_error(
        "ok@example.com\nteam@example.com alice@example.com\n",
        2,
        "no colon",
        "ALIAS: TARGET",
    );
    check_error("team@example.com:\n", 1, "nothing after the colon", "targets");
    check_error("a b: c@example.com\n", 1, "not one address", "one address");
    check_error(
        "a@example.com\n\nA@EXAMPLE.COM\n",
        3,
        "already defined on line 1",
        "one line only",
    );
    check_error(
        "@example.com\n@example.com: x@example.com\n",
        2,
        "already defined",
        "one line",
    );
    check_error(
        "@example.com: example.com\n",
        1,
        "alias domain of itself",
        "another domain",
    );
    check_error(
        "@example.com: a@example.com, example.org\n",
        1,
        "no address",
        "exactly one domain",
    );
    check_error("team@example.com: @example.org\n", 1, "no address", "@DOMAIN");
    check_error("@exa mple.com\n", 1, "several words", "ALIAS: TARGET");
    check_error("@bad..domain\n", 1, "not a domain", "example.com");
    check_error(b"x@example.com\n\xff\n", 2, "UTF-8", "UTF-8");
    check_error(
        "@a.example: b.example\n@b.example: c.example\n",
        1,
        "alias domain too",
        "do not chain",
    );
    let e = AddressList::parse(Path::new("/etc/mw/a.txt"), b"x\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/etc/mw/a.txt:1: "), "{e}");
}

#[test]
fn directory_list_accepts_comments_bom_and_crlf() {
    let text = "\u{feff}# header\r\nalice@example.com # mailbox\r\n  \r\nteam@example.com: alice@example.com\r\nodd#local@example.com\r\n";
    let l = AddressList::parse(Path::new("a.txt"), text.as_bytes()).unwrap();
    assert_eq!(
        l.lookup("team@example.com").unwrap().kind,
        AddressKind::Alias {
            targets: s(&["alice@example.com"]),
            active: true
        }
    );
    // `#` inside a word is not a comment.
    assert_eq!(
        l.lookup("odd#local@example.com").unwrap().kind,
        AddressKind::Mailbox { active: true }
    );
}

proptest! {
    #[test]
    fn directory_list_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let lines = bytes.split(|b| *b == b'\n').count();
        match AddressList::parse(Path::new("p.txt"), &bytes) {
            Ok(l) => {
                let _ = l.domains();
                let _ = l.lookup("a@b.c");
            }
            Err(DirectoryError::ListSyntax { line, .. }) => {
                prop_assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn directory_list_lines_from_the_grammar_never_panic(
        lines in proptest::collection::vec(
            "(@?[a-c+#]{0,3}(@[a-c.]{0,4})?)(:? ?(@?[a-c+]{0,2}@?[a-c.]{0,3},? ?){0,3})?( #[a-z ]{0,4})?",
            0..12,
        ),
        probe in "[a-c+]{1,3}@[a-c.]{1,4}",
    ) {
        let text = lines.join("\n");
        match AddressList::parse(Path::new("p.txt"), text.as_bytes()) {
            Ok(l) => {
                let info = l.lookup(&probe);
                if let Ok(info) = info {
                    // Whoever may send must be a mailbox of the list.
                    for who in &info.may_send_as {
                        prop_assert!(l.mailboxes.contains_key(who), "{who} in {info:?}");
                    }
                }
            }
            Err(DirectoryError::ListSyntax { line, .. }) => {
                prop_assert!(line >= 1 && line <= lines.len().max(1), "line {line} of {}", lines.len());
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
