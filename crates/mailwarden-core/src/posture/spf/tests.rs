use super::*;
use proptest::prelude::*;

fn errors(text: &str) -> Vec<String> {
    parse_spf(text).errors.into_iter().map(|e| e.reason).collect()
}

fn ids(findings: &[Finding]) -> Vec<(&str, Severity)> {
    findings.iter().map(|f| (f.id, f.severity)).collect()
}

#[test]
fn recognizes_spf_records() {
    assert!(is_spf_record("v=spf1"));
    assert!(is_spf_record("V=SPF1 -all"));
    assert!(!is_spf_record("v=spf10 -all"));
    assert!(!is_spf_record("v=spf1\t-all"));
    assert!(!is_spf_record("spf2.0/pra -all"));
    assert!(!is_spf_record(""));
}

#[test]
fn parses_every_mechanism_and_modifier() {
    let r = parse_spf(
        "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a a:mail.example.com/28 mx//64 mx:ex.test/24//48 \
         include:_spf.ex.test exists:%{i}._e.ex.test ptr ?ptr:ex.test ~all redirect=_r.ex.test exp=x.ex.test foo=bar",
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.terms.len(), 14);
    assert_eq!(
        r.terms[0],
        Term::Mechanism {
            qualifier: Qualifier::Pass,
            mechanism: Mechanism::Ip4 {
                network: Ipv4Addr::new(192, 0, 2, 0),
                prefix: 24
            },
            text: "ip4:192.0.2.0/24".into()
        }
    );
    assert!(matches!(
        &r.terms[3],
        Term::Mechanism { mechanism: Mechanism::A { domain: Some(d), cidr4: Some(28), cidr6: None }, .. } if d == "mail.example.com"
    ));
    assert!(matches!(
        &r.terms[4],
        Term::Mechanism {
            mechanism: Mechanism::Mx {
                domain: None,
                cidr4: None,
                cidr6: Some(64)
            },
            ..
        }
    ));
    assert!(matches!(
        &r.terms[5],
        Term::Mechanism {
            mechanism: Mechanism::Mx {
                cidr4: Some(24),
                cidr6: Some(48),
                ..
            },
            ..
        }
    ));
    assert!(matches!(
        &r.terms[10],
        Term::Mechanism {
            qualifier: Qualifier::SoftFail,
            mechanism: Mechanism::All,
            ..
        }
    ));
    assert!(
        matches!(&r.terms[11], Term::Modifier { name, value, .. } if name == "redirect" && value == "_r.ex.test")
    );
    assert_eq!(redirect(&r), Some("_r.ex.test"));
    assert_eq!(all_qualifier(&r), Some(Qualifier::SoftFail));
}

#[test]
fn syntax_errors_are_named() {
    let check = |text: &str, want: &str| {
        let errs = errors(text);
        assert!(errs.iter().any(|e| e.contains(want)), "{text}: {errs:?}");
    };
    check("v=spf1 ip4:192.0.2.0/33 -all", "out of range");
    check("v=spf1 ip4:192.0.2.300 -all", "not an IPv4 address");
    check("v=spf1 ip6:2001:db8::/129", "out of range");
    check("v=spf1 ip4:10.0.0.0/08", "leading zero");
    check("v=spf1 include -all", "needs a domain");
    check("v=spf1 include:localhost -all", "fully qualified");
    check("v=spf1 include:ex.123 -all", "top-level label");
    check("v=spf1 foo:bar -all", "unknown mechanism `foo`");
    check("v=spf1 ip:1.2.3.4 -all", "did you mean ip4");
    check("v=spf1 all:x", "takes no argument");
    check("v=spf1 redirect=a.test redirect=b.test", "more than once");
    check("v=spf1 exp=a.test exp=b.test -all", "more than once");
    check("v=spf1 a:%{q}.ex.test -all", "unknown macro letter");
    check("v=spf1 a:%{c}.ex.test -all", "only allowed in `exp`");
    check("v=spf1 a:%{d.ex.test -all", "not closed");
    check("v=spf1 a:100%.ex.test -all", "`%%`");
    check("v=spf1 + -all", "qualifier without a mechanism");
    check("v=spf1 -all v=spf1 mx", "second version tag");
    check("v=spf1 a:b\u{e9}.test", "printable ASCII");
    check("spf1 -all", "starts with `v=spf1`");
}

#[test]
fn expands_static_macros() {
    assert_eq!(
        expand("%{d}", "a.ex.test", "ex.test").as_deref(),
        Some("a.ex.test")
    );
    assert_eq!(
        expand("_spf.%{d2}", "a.b.ex.test", "x").as_deref(),
        Some("_spf.ex.test")
    );
    assert_eq!(expand("%{dr}", "a.b.test", "x").as_deref(), Some("test.b.a"));
    assert_eq!(
        expand("%{o}.x.test", "a", "ex.test").as_deref(),
        Some("ex.test.x.test")
    );
    assert_eq!(expand("%{d1r-}", "a-b.c", "x").as_deref(), Some("a"));
    assert_eq!(expand("100%%", "d", "o").as_deref(), Some("100%"));
    assert_eq!(expand("%{i}._spf.ex.test", "d", "o"), None);
    assert_eq!(expand("plain.test", "d", "o").as_deref(), Some("plain.test"));
}

#[test]
fn lookup_terms_skip_ips_and_an_ignored_redirect() {
    let r = parse_spf("v=spf1 ip4:192.0.2.1 a mx include:x.test ptr exists:%{i}.e.test -all redirect=y.test");
    let kinds: Vec<LookupKind> = lookup_terms(&r).into_iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            LookupKind::A,
            LookupKind::Mx,
            LookupKind::Include,
            LookupKind::Ptr,
            LookupKind::Exists
        ]
    );
    let r = parse_spf("v=spf1 include:x.test redirect=y.test");
    let t = lookup_terms(&r);
    assert_eq!(t[1].kind, LookupKind::Redirect);
    assert_eq!(t[1].spec.as_deref(), Some("y.test"));
}

#[test]
fn record_checks() {
    let f = check_records("ex.test", &[]);
    assert_eq!(ids(&f), [("spf.missing", Severity::Fail)]);
    let f = check_records("ex.test", &["v=spf1 -all".into(), "v=spf1 mx -all".into()]);
    assert_eq!(ids(&f), [("spf.multiple", Severity::Fail)]);
    assert_eq!(f[0].evidence.len(), 2);

    let check = |text: &str| {
        let f = check_record("ex.test", text, &parse_spf(text));
        f.into_iter().map(|f| (f.id, f.severity)).collect::<Vec<_>>()
    };
    assert_eq!(
        check("v=spf1 mx -all"),
        [
            ("spf.syntax.valid", Severity::Pass),
            ("spf.all.fail", Severity::Pass)
        ]
    );
    assert!(check("v=spf1 +all").contains(&("spf.all.pass", Severity::Fail)));
    assert!(check("v=spf1 ?all").contains(&("spf.all.neutral", Severity::Warning)));
    assert!(check("v=spf1 mx ~all").contains(&("spf.all.softfail", Severity::Info)));
    assert!(check("v=spf1 mx").contains(&("spf.all.missing", Severity::Warning)));
    assert!(
        !check("v=spf1 redirect=x.test")
            .iter()
            .any(|(id, _)| *id == "spf.all.missing")
    );
    assert!(check("v=spf1 -all redirect=x.test").contains(&("spf.redirect.ignored", Severity::Warning)));
    assert!(check("v=spf1 -all mx").contains(&("spf.terms.after-all", Severity::Warning)));
    assert!(check("v=spf1 ptr -all").contains(&("spf.ptr.deprecated", Severity::Warning)));
    assert!(check("v=spf1 ip4:0.0.0.0/0 -all").contains(&("spf.ip.everything", Severity::Fail)));
    assert!(check("v=spf1 ip4:10.0.0.0/8 -all").contains(&("spf.ip.wide", Severity::Warning)));
    assert!(
        !check("v=spf1 -ip4:10.0.0.0/8 -all")
            .iter()
            .any(|(id, _)| *id == "spf.ip.wide")
    );
    assert!(check("v=spf1 exists:%{i}.e.ex.test -all").contains(&("spf.macros", Severity::Info)));
    assert!(check("v=spf1 exists:%{p}.e.ex.test -all").contains(&("spf.macros", Severity::Warning)));
    assert!(check("v=spf1 rediret=x.test -all").contains(&("spf.modifier.unknown", Severity::Info)));
    assert!(check("v=spf1 bogus -all").contains(&("spf.syntax.invalid", Severity::Fail)));
    let long = format!("v=spf1 {} -all", "ip4:192.0.2.1 ".repeat(40));
    assert!(check(&long).contains(&("spf.record.long", Severity::Warning)));
}

fn leaf(kind: LookupKind, term: &str) -> SpfNode {
    SpfNode::new(kind, term, Some(term.rsplit(':').next().unwrap().to_owned()))
}

#[test]
fn tree_counts_and_findings() {
    let mut root = SpfNode::new(LookupKind::Root, "ex.test", Some("ex.test".into()));
    let mut inc = leaf(LookupKind::Include, "include:a.test");
    for i in 0..5 {
        inc.children.push(leaf(LookupKind::A, &format!("a:h{i}.a.test")));
    }
    let mut void = leaf(LookupKind::A, "a:gone.a.test");
    void.void = true;
    inc.children.push(void);
    root.children.push(inc);
    for i in 0..4 {
        root.children.push(leaf(LookupKind::Mx, &format!("mx:m{i}.test")));
    }
    root.finish();
    assert_eq!(root.total_lookups, 11);
    assert_eq!(root.total_voids, 1);
    assert_eq!(root.children[0].total_lookups, 7);
    let f = check_tree("ex.test", &root);
    let got = ids(&f);
    assert!(got.contains(&("spf.lookups.exceeded", Severity::Fail)), "{got:?}");
    assert!(got.contains(&("spf.void.present", Severity::Warning)), "{got:?}");

    let lines = render_tree(&root);
    assert_eq!(lines[0], "ex.test  [11 lookups, 1 void]");
    assert_eq!(lines[1], "├─ include:a.test  (7)");
    assert_eq!(lines[2], "│  ├─ a:h0.a.test  (1)");
    assert_eq!(lines[7], "│  └─ a:gone.a.test  (1)  void");
    assert_eq!(lines[11], "└─ mx:m3.test  (1)");
}

#[test]
fn tree_status_findings() {
    let mut root = SpfNode::new(LookupKind::Root, "ex.test", None);
    root.children.push(
        leaf(LookupKind::Include, "include:loop.test").with_status(NodeStatus::Loop, "back to ex.test"),
    );
    root.children
        .push(leaf(LookupKind::Include, "include:none.test").with_status(NodeStatus::NoRecord, "no SPF"));
    root.children
        .push(leaf(LookupKind::Redirect, "redirect=r.test").with_status(NodeStatus::NoRecord, "no SPF"));
    let mut all = leaf(LookupKind::Include, "include:open.test");
    all.all = Some(Qualifier::Pass);
    root.children.push(all);
    for _ in 0..3 {
        let mut v = leaf(LookupKind::A, "a:v.test");
        v.void = true;
        root.children.push(v);
    }
    root.finish();
    let findings = check_tree("ex.test", &root);
    let got = ids(&findings);
    for want in [
        ("spf.lookups.ok", Severity::Pass),
        ("spf.include.loop", Severity::Fail),
        ("spf.include.missing", Severity::Fail),
        ("spf.redirect.missing", Severity::Fail),
        ("spf.include.pass-all", Severity::Fail),
        ("spf.void.exceeded", Severity::Fail),
    ] {
        assert!(got.contains(&want), "{want:?} missing from {got:?}");
    }
}

#[test]
fn a_redirect_target_is_checked_like_the_domain_record() {
    let mut root = SpfNode::new(LookupKind::Root, "ex.test", Some("ex.test".into()));
    let mut r = leaf(LookupKind::Redirect, "redirect=_spf.ex.test");
    r.record = Some("v=spf1 mx +all".into());
    root.children.push(r);
    root.finish();
    let findings = check_tree("ex.test", &root);
    let f = findings
        .iter()
        .find(|f| f.id == "spf.all.pass")
        .expect("spf.all.pass");
    assert_eq!(f.severity, Severity::Fail);
    assert!(
        f.message.contains("_spf.ex.test, reached by redirect"),
        "{}",
        f.message
    );
    assert!(!findings.iter().any(|f| f.id == "spf.syntax.valid"));
}

proptest! {
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        let r = parse_spf(&text);
        let _ = lookup_terms(&r);
        let _ = macros(&r);
        let _ = check_record("ex.test", &text, &r);
    }

    #[test]
    fn parser_never_panics_on_spf_like_input(body in "[ a-z0-9:/.%{}+~?=_-]{0,120}") {
        let text = format!("v=spf1 {body}");
        let r = parse_spf(&text);
        prop_assert!(r.terms.len() + r.errors.len() <= MAX_TERMS + 1);
        for t in lookup_terms(&r) {
            if let Some(spec) = t.spec {
                let _ = expand(&spec, "a.test", "b.test");
            }
        }
    }

    #[test]
    fn valid_records_round_trip(terms in proptest::collection::vec(prop_oneof![
        "[+~?-]?(a|mx|ptr)",
        "[+~?-]?include:[a-z]{1,8}\\.[a-z]{2,5}",
        "[+~?-]?(a|mx):[a-z]{1,8}\\.[a-z]{2,5}(/[12]?[0-9])?",
        "ip4:((1[0-9]{2}|[1-9]?[0-9])\\.){3}(1[0-9]{2}|[1-9]?[0-9])",
    ], 0..12)) {
        let mut terms = terms;
        terms.push("-all".into());
        let text = format!("v=spf1 {}", terms.join(" "));
        let r = parse_spf(&text);
        prop_assert!(r.errors.is_empty(), "{text}: {:?}", r.errors);
        let rebuilt: Vec<&str> = r.terms.iter().map(Term::text).collect();
        prop_assert_eq!(format!("v=spf1 {}", rebuilt.join(" ")), text);
    }
}
