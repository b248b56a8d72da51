use super::*;
use proptest::prelude::*;

fn source(domain: &str, record_domain: Option<&str>, records: &[&str]) -> PolicySource {
    PolicySource {
        domain: domain.into(),
        record_domain: record_domain.map(str::to_owned),
        records: records.iter().map(|s| (*s).to_owned()).collect(),
        tree_walk_domain: None,
    }
}

fn ids(findings: &[Finding]) -> Vec<(&str, Severity)> {
    findings.iter().map(|f| (f.id, f.severity)).collect()
}

fn check(domain: &str, record: &str) -> Vec<(&'static str, Severity)> {
    let (_, f) = check_dmarc(&source(domain, Some(domain), &[record]));
    f.into_iter().map(|f| (f.id, f.severity)).collect()
}

#[test]
fn recognizes_dmarc_records() {
    assert!(is_dmarc_record("v=DMARC1; p=none"));
    assert!(is_dmarc_record("v = DMARC1;p=none"));
    assert!(is_dmarc_record("v=DMARC1"));
    assert!(!is_dmarc_record("v=DMARC10; p=none"));
    assert!(!is_dmarc_record("v=spf1 -all"));
    assert!(!is_dmarc_record("p=none; v=DMARC1"));
}

#[test]
fn parses_every_tag() {
    let r = parse_dmarc(
        "v=DMARC1; p=reject; sp=quarantine; np=reject; pct=100; adkim=s; aspf=r; \
         rua=mailto:agg@ex.test!10m,mailto:x@rep.test; ruf=mailto:f@ex.test; fo=1:d; rf=afrf; ri=86400; psd=n; t=n",
    );
    assert!(
        r.errors.is_empty() && r.ignored.is_empty() && r.unknown.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.policy, Some(Policy::Reject));
    assert_eq!(r.subdomain_policy, Some(Policy::Quarantine));
    assert_eq!(r.np, Some(Policy::Reject));
    assert_eq!(r.adkim, Some(Alignment::Strict));
    assert_eq!(r.rua.len(), 2);
    assert_eq!(r.rua[0].max_size.as_deref(), Some("10m"));
    assert_eq!(r.rua[0].address.as_deref(), Some("agg@ex.test"));
    assert_eq!(r.rua[1].domain.as_deref(), Some("rep.test"));
    assert_eq!(r.psd, Some('n'));
    assert_eq!(r.testing, Some(false));
    assert_eq!(r.effective_policy(false), Policy::Reject);
    assert_eq!(r.effective_policy(true), Policy::Quarantine);
}

#[test]
fn errors_and_ignored_values() {
    let r = parse_dmarc("p=reject; v=DMARC1");
    assert!(
        r.errors.iter().any(|e| e.contains("start with `v=DMARC1`")),
        "{r:?}"
    );
    let r = parse_dmarc("v=DMARC1; p=block");
    assert!(
        r.errors.iter().any(|e| e.contains("none, quarantine or reject")),
        "{r:?}"
    );
    let r = parse_dmarc("v=DMARC1; rua=mailto:a@ex.test");
    assert!(r.errors.is_empty());
    assert!(r.ignored[0].contains("treat the record as p=none"));
    let r = parse_dmarc("v=DMARC1");
    assert!(r.errors.iter().any(|e| e.contains("no `p=` tag")));
    let r = parse_dmarc("v=DMARC1; p=none; pct=150; adkim=x; fo=2; rua=; rue=mailto:a@b.test");
    assert_eq!(r.ignored.len(), 4, "{:?}", r.ignored);
    assert_eq!(r.unknown, ["rue"]);
}

#[test]
fn report_uris() {
    let u = parse_report_uri("mailto:dmarc@Example.COM!5k", true);
    assert_eq!(u.problem, None);
    assert_eq!(u.domain.as_deref(), Some("example.com"));
    assert!(
        parse_report_uri("dmarc@example.com", true)
            .problem
            .unwrap()
            .contains("no scheme")
    );
    assert!(
        parse_report_uri("mailto:example.com", true)
            .problem
            .unwrap()
            .contains("not a mail address")
    );
    assert!(
        parse_report_uri("mailto:a@ex.test!10x", true)
            .problem
            .unwrap()
            .contains("size limit")
    );
    assert!(parse_report_uri("mailto:a@bad host.test", true).problem.is_some());
    let h = parse_report_uri("https://reports.example.net:8443/tls", false);
    assert_eq!(
        (h.scheme.as_str(), h.domain.as_deref(), h.problem),
        ("https", Some("reports.example.net"), None)
    );
    assert!(parse_report_uri("https:reports", false).problem.is_some());
}

#[test]
fn missing_multiple_and_invalid() {
    let (_, f) = check_dmarc(&source("ex.test", None, &[]));
    assert_eq!(ids(&f), [("dmarc.missing", Severity::Fail)]);
    assert!(f[0].fix.as_deref().unwrap().contains("p=none; rua=mailto:"));
    let (_, f) = check_dmarc(&source("a.ex.test", None, &[]));
    assert!(f[0].message.contains("_dmarc.ex.test"), "{}", f[0].message);
    let (_, f) = check_dmarc(&source(
        "ex.test",
        Some("ex.test"),
        &["v=DMARC1; p=none", "v=DMARC1; p=reject"],
    ));
    assert_eq!(ids(&f), [("dmarc.multiple", Severity::Fail)]);
    assert_eq!(
        check("ex.test", "v=DMARC1; p=bogus"),
        [("dmarc.invalid", Severity::Fail)]
    );
}

#[test]
fn policy_checks() {
    let got = check("ex.test", "v=DMARC1; p=none; pct=50; rua=mailto:d@ex.test");
    assert!(got.contains(&("dmarc.policy.none", Severity::Warning)), "{got:?}");
    assert!(got.contains(&("dmarc.pct.partial", Severity::Warning)), "{got:?}");
    assert!(got.contains(&("dmarc.bis.notes", Severity::Info)), "{got:?}");
    let got = check("ex.test", "v=DMARC1; p=reject; sp=none; rua=mailto:d@ex.test");
    assert!(got.contains(&("dmarc.policy.reject", Severity::Pass)), "{got:?}");
    assert!(got.contains(&("dmarc.sp.weaker", Severity::Warning)), "{got:?}");
    let got = check("ex.test", "v=DMARC1; p=quarantine; np=none; adkim=s; t=y");
    for want in [
        ("dmarc.policy.quarantine", Severity::Pass),
        ("dmarc.np.weaker", Severity::Warning),
        ("dmarc.adkim.strict", Severity::Info),
        ("dmarc.testing", Severity::Warning),
        ("dmarc.rua.missing", Severity::Warning),
    ] {
        assert!(got.contains(&want), "{want:?} not in {got:?}");
    }
    let got = check(
        "ex.test",
        "v=DMARC1; p=reject; rua=https://r.ex.test/x,mailto:bad; ruf=mailto:f@ex.test; foo=1",
    );
    for want in [
        ("dmarc.uri.scheme", Severity::Warning),
        ("dmarc.uri.invalid", Severity::Warning),
        ("dmarc.ruf.present", Severity::Info),
        ("dmarc.tag.unknown", Severity::Warning),
    ] {
        assert!(got.contains(&want), "{want:?} not in {got:?}");
    }
}

#[test]
fn inherited_policy_uses_sp() {
    let (_, f) = check_dmarc(&source(
        "mail.ex.test",
        Some("ex.test"),
        &["v=DMARC1; p=reject; sp=none; rua=mailto:d@ex.test"],
    ));
    let got = ids(&f);
    assert!(got.contains(&("dmarc.inherited", Severity::Info)), "{got:?}");
    assert!(got.contains(&("dmarc.policy.none", Severity::Warning)), "{got:?}");
    assert!(f.iter().any(|f| f.message.starts_with("sp=none")));
    // Without sp, p applies.
    let (_, f) = check_dmarc(&source(
        "mail.ex.test",
        Some("ex.test"),
        &["v=DMARC1; p=reject; rua=mailto:d@ex.test"],
    ));
    assert!(ids(&f).contains(&("dmarc.policy.reject", Severity::Pass)));
}

#[test]
fn external_destinations_and_authorization() {
    let r = parse_dmarc(
        "v=DMARC1; p=none; rua=mailto:a@ex.test,mailto:b@reports.vendor.test,mailto:c@sub.ex.test; ruf=mailto:d@reports.vendor.test",
    );
    let ext = external_destinations("ex.test", &r);
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0].0, "reports.vendor.test");
    assert_eq!(ext[0].1.len(), 2);
    assert_eq!(
        authorization_name("ex.test", "reports.vendor.test"),
        "ex.test._report._dmarc.reports.vendor.test"
    );
    let ok = check_authorization(
        "ex.test",
        "ex.test",
        "v.test",
        &ext[0].1,
        &Authorization::Records(vec!["v=DMARC1".into()]),
    );
    assert_eq!((ok.id, ok.severity), ("dmarc.report.authorized", Severity::Pass));
    let no = check_authorization(
        "ex.test",
        "ex.test",
        "v.test",
        &ext[0].1,
        &Authorization::Records(vec![]),
    );
    assert_eq!(
        (no.id, no.severity),
        ("dmarc.report.unauthorized", Severity::Warning)
    );
    let err = check_authorization(
        "ex.test",
        "ex.test",
        "v.test",
        &ext[0].1,
        &Authorization::Failed("timeout".into()),
    );
    assert_eq!(err.id, "dmarc.report.unverified");
}

#[test]
fn report_routes() {
    let r = parse_dmarc(
        "v=DMARC1; p=none; rua=mailto:a@x.test,mailto:b@x.test,mailto:c@y.test; ruf=mailto:d@z.test",
    );
    assert_eq!(report_mail_domains(&r), ["x.test", "y.test", "z.test"]);
    assert!(check_report_route("ex.test", "x.test", &MailRoute::Mx).is_none());
    assert!(check_report_route("ex.test", "x.test", &MailRoute::Address).is_none());
    assert!(check_report_route("ex.test", "x.test", &MailRoute::Unknown).is_none());
    let f = check_report_route("ex.test", "x.test", &MailRoute::NullMx).unwrap();
    assert_eq!((f.id, f.severity), ("dmarc.uri.undeliverable", Severity::Warning));
    assert!(
        check_report_route("ex.test", "x.test", &MailRoute::Nothing)
            .unwrap()
            .message
            .contains("no MX and no address")
    );
}

proptest! {
    #[test]
    fn parser_never_panics(text in "\\PC{0,300}") {
        let r = parse_dmarc(&text);
        let _ = external_destinations("ex.test", &r);
        let _ = check_dmarc(&source("ex.test", Some("ex.test"), &[&text]));
    }

    #[test]
    fn uri_parser_never_panics(text in "\\PC{0,100}") {
        let _ = parse_report_uri(&text, true);
        let _ = parse_report_uri(&text, false);
    }

    #[test]
    fn well_formed_records_parse_cleanly(
        p in prop_oneof!["none", "quarantine", "reject"],
        pct in 0u8..=100,
        local in "[a-z][a-z0-9.+-]{0,10}",
        dom in "[a-z]{1,10}\\.test",
    ) {
        let text = format!("v=DMARC1; p={p}; pct={pct}; rua=mailto:{local}@{dom}");
        let r = parse_dmarc(&text);
        prop_assert!(r.errors.is_empty() && r.ignored.is_empty(), "{text}: {r:?}");
        prop_assert_eq!(r.policy.map(Policy::as_str), Some(p.as_str()));
        prop_assert_eq!(r.pct, Some(pct));
        prop_assert_eq!(r.rua[0].address.clone(), Some(format!("{local}@{dom}")));
    }
}
