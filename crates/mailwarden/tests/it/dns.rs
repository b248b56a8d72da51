//! `mailwarden dns` against a private Knot server: one crafted zone set per
//! finding (clean domain, SPF over the lookup limit, two SPF records, +all,
//! void lookups, an include loop, missing DMARC, p=none with pct=50,
//! external report destinations with and without authorization, weak DKIM
//! keys, a subdomain falling back to its organizational domain), asserted on
//! finding ids and severities in `--json` and on the exit code; one human
//! report is snapshotted. One test runs the whole audit with the MX, reverse
//! DNS, DNSBL and MTA-STS parts (a private blocklist zone, an HTTPS policy
//! host with a test CA).

use mailwarden_testlab::{DnsServer, DnsZone, HttpsRoute, HttpsServer, HttpsSite};
use serde_json::Value;

use crate::support::{Run, mailwarden};

// Public keys made once with `openssl genpkey -algorithm RSA -pkeyopt
// rsa_keygen_bits:N` and `openssl pkey -pubout -outform DER | base64 -w0`.
const RSA_512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALOeVn8Hd0PYoH1H8uWWShQ6ahLYM9cS7ymfLaC5cdMzW+Z8SLmCTOaaOQJwNXzaWGE0N+8vTn19AUV6nZYgatcCAwEAAQ==";
const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQ+ZvDxN4Qm4/Rf52frcNUM2cFw63eWA2oK4ZNr0Fo3AmYHTt3Ed28FSW5piEK4h6ViJzz4yo4AMqDukXTRT+ifihUOcbEXZA7z00udgd3Ds9pL03l+8zqSAagCQZXG3n0lYwEipziVAh0YoSFEMzSelzfuVq7txvXBhP8FtBQIwIDAQAB";
const RSA_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0bBUroth/M+UEvbM0cEkWHSqb00uxcRSrVIGrCVmUNcxP1uFlUiEJRIThePSSoa/3uU6mB9YheRFSskg2grmcCnpW1n2YZEswWSwzH1lX/LgKspDZg+5ylSQHNkagYLmy+bzurfW2TqzwkZTEJg/UANSBcCVkqtYxv4uY6fQdkJAtpUwhtjiC0kfu8m9GLN3xeqx4jiEvuhoz/iISVntGx4pv0yQEEMrGRRnymzzZrNQZnXuD9JBuAMgIIgJ6lGNM/jfGPfZrGOYWU5P1mRpmWMcE/1pYyknZtYEsFlKCJobNP4VXK9HH/WbmUCS7yWG6H/9ZzPrKjEVVHusHct3NwIDAQAB";

/// A domain with everything in order: SPF by MX, DMARC reject with local
/// reports, a 2048-bit DKIM key at Mailcow's selector, TLS-RPT, and an MX
/// whose address has a forward-confirmed PTR.
fn clean_zone(origin: &str) -> DnsZone {
    DnsZone::new(origin)
        .record("@ MX 10 mail")
        .record("mail A 192.0.2.10")
        .txt("@", "v=spf1 mx -all")
        .txt(
            "_dmarc",
            &format!("v=DMARC1; p=reject; rua=mailto:dmarc@{origin}"),
        )
        .txt("dkim._domainkey", &format!("v=DKIM1; k=rsa; p={RSA_2048}"))
        .txt("_smtp._tls", &format!("v=TLSRPTv1; rua=mailto:tls@{origin}"))
}

/// The reverse zone for the MX addresses used here.
fn reverse_zone(ptrs: &[(&str, &str)]) -> DnsZone {
    let mut zone = DnsZone::new("2.0.192.in-addr.arpa");
    for (last, name) in ptrs {
        zone = zone.record(format!("{last} PTR {name}."));
    }
    zone
}

fn start(zones: Vec<DnsZone>) -> DnsServer {
    DnsServer::start(zones).expect("start the DNS server (needs the knot package)")
}

/// Runs `mailwarden dns DOMAIN --json` (plus `extra`) against `dns`.
fn audit(dns: &DnsServer, domain: &str, extra: &[&str]) -> (Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let resolver = dns.addr().to_string();
    let mut args = vec![
        "dns",
        domain,
        "--json",
        "--no-dnsbl",
        "--resolver",
        &resolver,
        "--timeout",
        "3s",
    ];
    args.extend_from_slice(extra);
    let run = mailwarden(dir.path(), &args);
    let json = run.json();
    (run, json)
}

/// (id, severity) of every finding.
fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_has(report: &Value, id: &str, severity: &str) {
    let all = findings(report);
    assert!(
        all.iter().any(|(i, s)| i == id && s == severity),
        "no {id} ({severity}) in {all:#?}"
    );
}

#[track_caller]
fn assert_lacks(report: &Value, id: &str) {
    let all = findings(report);
    assert!(!all.iter().any(|(i, _)| i == id), "unexpected {id} in {all:#?}");
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn clean_domain_scores_high_and_exits_zero() {
    let dns = start(vec![
        clean_zone("clean.test"),
        reverse_zone(&[("10", "mail.clean.test")]),
    ]);
    let (run, report) = audit(&dns, "clean.test", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(report["domain"], "clean.test");
    let fails: Vec<_> = findings(&report)
        .into_iter()
        .filter(|(_, s)| s == "fail" || s == "warning")
        .collect();
    assert!(
        report["score"].as_u64().unwrap() >= 95,
        "score {} with {fails:#?}",
        report["score"]
    );
    for (id, sev) in [
        ("spf.syntax.valid", "pass"),
        ("spf.all.fail", "pass"),
        ("spf.lookups.ok", "pass"),
        ("dmarc.present", "pass"),
        ("dmarc.policy.reject", "pass"),
        ("dkim.key.ok", "pass"),
        ("tls-rpt.present", "pass"),
    ] {
        assert_has(&report, id, sev);
    }
    assert_eq!(report["spf"]["tree"]["total_lookups"], 1);
    assert_eq!(report["dkim"]["selectors"][0]["selector"], "dkim");
    assert_eq!(report["dkim"]["selectors"][0]["key"]["bits"], 2048);
    assert_eq!(report["dmarc"]["record"]["policy"], "reject");
    assert!(report["dns_queries"].as_u64().unwrap() > 10);
}

#[test]
fn eleven_spf_lookups_fail_and_the_tree_shows_them() {
    // include:a (1) → a has 4 `a:` terms and include:b (1) → b has 4 `a:`
    // terms; plus `mx` at the top: 1 + 4 + 1 + 4 + 1 = 11.
    let mut many = clean_zone("many.test")
        .txt("@", "v=spf1 mx include:_a.many.test -all")
        .txt(
            "_a",
            "v=spf1 a:h1.many.test a:h2.many.test a:h3.many.test a:h4.many.test include:_b.many.test -all",
        )
        .txt(
            "_b",
            "v=spf1 a:h5.many.test a:h6.many.test a:h7.many.test a:h8.many.test -all",
        );
    many.records
        .retain(|r| !r.starts_with("@ IN TXT \"v=spf1 mx -all\""));
    for i in 1..=8 {
        many = many.record(format!("h{i} A 192.0.2.{}", 20 + i));
    }
    let dns = start(vec![many, reverse_zone(&[("10", "mail.many.test")])]);
    let (run, report) = audit(&dns, "many.test", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_has(&report, "spf.lookups.exceeded", "fail");
    assert!(
        finding(&report, "spf.lookups.exceeded")["message"]
            .as_str()
            .unwrap()
            .starts_with("11 DNS lookups")
    );
    let tree = &report["spf"]["tree"];
    assert_eq!(tree["total_lookups"], 11);
    assert_eq!(tree["children"][0]["term"], "mx");
    assert_eq!(tree["children"][1]["term"], "include:_a.many.test");
    assert_eq!(tree["children"][1]["total_lookups"], 10);
    assert_eq!(tree["children"][1]["children"][4]["total_lookups"], 5);

    // The human report draws the tree with the counts.
    let dir = tempfile::tempdir().unwrap();
    let text = mailwarden(
        dir.path(),
        &[
            "dns",
            "many.test",
            "--no-dnsbl",
            "--resolver",
            &dns.addr().to_string(),
        ],
    );
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("many.test  [11 lookups]"), "{}", text.stdout);
    assert!(
        text.stdout.contains("└─ include:_a.many.test  (10)"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("   └─ include:_b.many.test  (5)"),
        "{}",
        text.stdout
    );
}

fn spf_domain(origin: &str, spf: &[&str]) -> DnsZone {
    let mut zone = clean_zone(origin);
    zone.records.retain(|r| !r.contains("v=spf1"));
    for s in spf {
        zone = zone.txt("@", s);
    }
    zone
}

#[test]
fn two_spf_records_are_a_permerror() {
    let dns = start(vec![
        spf_domain("two.test", &["v=spf1 mx -all", "v=spf1 ip4:192.0.2.10 -all"]),
        reverse_zone(&[("10", "mail.two.test")]),
    ]);
    let (run, report) = audit(&dns, "two.test", &[]);
    assert_eq!(run.code, 1);
    assert_has(&report, "spf.multiple", "fail");
    assert_eq!(
        finding(&report, "spf.multiple")["evidence"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(report["spf"]["records"].as_array().unwrap().len(), 2);
}

#[test]
fn plus_all_fails() {
    let dns = start(vec![
        spf_domain("open.test", &["v=spf1 mx +all"]),
        reverse_zone(&[("10", "mail.open.test")]),
    ]);
    let (run, report) = audit(&dns, "open.test", &[]);
    assert_eq!(run.code, 1);
    assert_has(&report, "spf.all.pass", "fail");
}

#[test]
fn void_lookups_are_counted() {
    // Three names without records: one NXDOMAIN `a:`, one `mx` of a name
    // without MX, one include of a name without TXT.
    let dns = start(vec![
        spf_domain(
            "void.test",
            &["v=spf1 a:gone.void.test mx:nomx.void.test include:notxt.void.test -all"],
        )
        .record("nomx A 192.0.2.30")
        .record("notxt A 192.0.2.31"),
        reverse_zone(&[("10", "mail.void.test")]),
    ]);
    let (run, report) = audit(&dns, "void.test", &[]);
    assert_eq!(run.code, 1);
    assert_has(&report, "spf.void.exceeded", "fail");
    assert_has(&report, "spf.include.missing", "fail");
    assert_eq!(report["spf"]["tree"]["total_voids"], 3);
    let kids = report["spf"]["tree"]["children"].as_array().unwrap();
    assert!(kids.iter().all(|k| k["void"] == true), "{kids:#?}");

    // Two voids only: a warning.
    let dns = start(vec![
        spf_domain(
            "void2.test",
            &["v=spf1 a:gone.void2.test a:gone2.void2.test mx -all"],
        ),
        reverse_zone(&[("10", "mail.void2.test")]),
    ]);
    let (_, report) = audit(&dns, "void2.test", &[]);
    assert_has(&report, "spf.void.present", "warning");
}

#[test]
fn include_loop_is_detected() {
    let dns = start(vec![
        spf_domain("loop.test", &["v=spf1 include:_spf.loop.test -all"])
            .txt("_spf", "v=spf1 a include:loop.test -all"),
        reverse_zone(&[("10", "mail.loop.test")]),
    ]);
    let (run, report) = audit(&dns, "loop.test", &[]);
    assert_eq!(run.code, 1);
    assert_has(&report, "spf.include.loop", "fail");
    let inner = &report["spf"]["tree"]["children"][0]["children"][1];
    assert_eq!(inner["term"], "include:loop.test");
    assert_eq!(inner["status"], "loop");
}

#[test]
fn redirect_ptr_macros_and_the_type_99_record() {
    // The record hands over to _spf by redirect; _spf uses ptr and a macro
    // that depends on the sender; a deprecated type-99 record differs.
    let dns = start(vec![
        spf_domain("redir.test", &["v=spf1 redirect=_spf.redir.test"])
            .txt("_spf", "v=spf1 ptr exists:%{i}._e.redir.test a:%{d} -all")
            .record("@ SPF \"v=spf1 -all\""),
        reverse_zone(&[("10", "mail.redir.test")]),
    ]);
    let (_, report) = audit(&dns, "redir.test", &[]);
    assert_has(&report, "spf.type99.differs", "warning");
    assert_eq!(report["spf"]["type99"][0], "v=spf1 -all");
    assert_has(&report, "spf.lookups.ok", "pass");
    let redirect = &report["spf"]["tree"]["children"][0];
    assert_eq!(redirect["kind"], "redirect");
    assert_eq!(redirect["name"], "_spf.redir.test");
    assert_eq!(redirect["total_lookups"], 4);
    let kids = redirect["children"].as_array().unwrap();
    assert_eq!(kids[0]["status"], "not_followed");
    assert_eq!(kids[1]["status"], "not_followed");
    // `%{d}` is the current domain: the redirect target.
    assert_eq!(kids[2]["name"], "_spf.redir.test");
    assert_eq!(kids[2]["void"], true);
    // No `all` in the top record, but a redirect: no spf.all.missing; the
    // target's record is checked like the domain's own.
    assert_lacks(&report, "spf.all.missing");
    assert_has(&report, "spf.all.fail", "pass");
    assert_has(&report, "spf.ptr.deprecated", "warning");
    assert!(
        finding(&report, "spf.ptr.deprecated")["message"]
            .as_str()
            .unwrap()
            .contains("reached by redirect")
    );
    assert_has(&report, "spf.macros", "info");
}

#[test]
fn missing_dmarc_fails_with_the_fix() {
    let mut zone = clean_zone("nodmarc.test");
    zone.records.retain(|r| !r.starts_with("_dmarc"));
    let dns = start(vec![zone, reverse_zone(&[("10", "mail.nodmarc.test")])]);
    let (run, report) = audit(&dns, "nodmarc.test", &[]);
    assert_eq!(run.code, 1);
    assert_has(&report, "dmarc.missing", "fail");
    let fix = finding(&report, "dmarc.missing")["fix"].as_str().unwrap();
    assert!(fix.contains("v=DMARC1; p=none; rua=mailto:"), "{fix}");
}

#[test]
fn dmarc_none_with_pct_50_warns() {
    let mut zone = clean_zone("lax.test");
    zone.records.retain(|r| !r.starts_with("_dmarc"));
    let zone = zone.txt("_dmarc", "v=DMARC1; p=none; pct=50; rua=mailto:dmarc@lax.test");
    let dns = start(vec![zone, reverse_zone(&[("10", "mail.lax.test")])]);
    let (run, report) = audit(&dns, "lax.test", &[]);
    assert_eq!(run.code, 0, "warnings only: {}", run.stdout);
    assert_has(&report, "dmarc.policy.none", "warning");
    assert_has(&report, "dmarc.pct.partial", "warning");
    assert!(
        finding(&report, "dmarc.pct.partial")["fix"]
            .as_str()
            .unwrap()
            .contains("RFC 9989")
    );
    assert_has(&report, "dmarc.bis.notes", "info");
    assert_eq!(report["dmarc"]["record"]["pct"], 50);
}

#[test]
fn external_report_destinations_need_authorization() {
    let mut ext = clean_zone("ext.test");
    ext.records.retain(|r| !r.starts_with("_dmarc"));
    let ext = ext.txt(
        "_dmarc",
        "v=DMARC1; p=reject; rua=mailto:agg@reports.vendor.test,mailto:agg@elsewhere.test",
    );
    let dns = start(vec![
        ext,
        reverse_zone(&[("10", "mail.ext.test")]),
        // The vendor authorized ext.test; elsewhere.test did not.
        DnsZone::new("vendor.test").txt("ext.test._report._dmarc.reports", "v=DMARC1"),
        DnsZone::new("elsewhere.test"),
    ]);
    let (run, report) = audit(&dns, "ext.test", &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let auth: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("dmarc.report."))
        .collect();
    assert_eq!(auth.len(), 2, "{auth:#?}");
    assert_eq!(auth[0]["id"], "dmarc.report.authorized");
    assert_eq!(auth[0]["severity"], "pass");
    assert!(
        auth[0]["message"]
            .as_str()
            .unwrap()
            .contains("reports.vendor.test")
    );
    assert_eq!(auth[1]["id"], "dmarc.report.unauthorized");
    assert_eq!(auth[1]["severity"], "warning");
    assert!(
        auth[1]["fix"]
            .as_str()
            .unwrap()
            .contains("ext.test._report._dmarc.elsewhere.test")
    );
}

#[test]
fn weak_dkim_keys() {
    let zone = clean_zone("keys.test")
        .txt("s1._domainkey", &format!("v=DKIM1; k=rsa; p={RSA_1024}"))
        .txt("legacy._domainkey", &format!("v=DKIM1; k=rsa; p={RSA_512}"))
        // A key delegated to a provider by CNAME.
        .record("s2._domainkey CNAME s2.keys.provider.test.");
    let dns = start(vec![
        zone,
        reverse_zone(&[("10", "mail.keys.test")]),
        DnsZone::new("provider.test").txt("s2.keys", &format!("v=DKIM1; p={RSA_2048}")),
    ]);
    let (run, report) = audit(&dns, "keys.test", &["--selector", "legacy,missing"]);
    assert_eq!(run.code, 1);
    let by_subject = |id: &str, subject: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id && f["subject"] == subject)
            .unwrap_or_else(|| panic!("no {id} for {subject}: {:#?}", findings(&report)))
            .clone()
    };
    assert_eq!(
        by_subject("dkim.key.short", "s1._domainkey.keys.test")["severity"],
        "warning"
    );
    assert_eq!(
        by_subject("dkim.key.weak", "legacy._domainkey.keys.test")["severity"],
        "fail"
    );
    assert_eq!(
        by_subject("dkim.key.ok", "dkim._domainkey.keys.test")["severity"],
        "pass"
    );
    assert_eq!(
        by_subject("dkim.cname.delegated", "s2._domainkey.keys.test")["severity"],
        "info"
    );
    assert_eq!(
        by_subject("dkim.key.ok", "s2._domainkey.keys.test")["severity"],
        "pass"
    );
    assert_eq!(
        by_subject("dkim.selector.missing", "keys.test")["severity"],
        "fail"
    );
    let selectors: Vec<&str> = report["dkim"]["selectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["selector"].as_str().unwrap())
        .collect();
    assert_eq!(selectors, ["legacy", "dkim", "s1", "s2"]);
    assert_eq!(
        report["dkim"]["selectors"][3]["cname_chain"][0],
        "s2.keys.provider.test"
    );
}

#[test]
fn no_dkim_selector_found_asks_for_one() {
    let mut zone = clean_zone("nokey.test");
    zone.records.retain(|r| !r.contains("_domainkey"));
    let dns = start(vec![zone, reverse_zone(&[("10", "mail.nokey.test")])]);
    let (_, report) = audit(&dns, "nokey.test", &[]);
    assert_has(&report, "dkim.none-found", "warning");
    assert!(
        finding(&report, "dkim.none-found")["fix"]
            .as_str()
            .unwrap()
            .contains("--selector")
    );
}

#[test]
fn subdomain_falls_back_to_the_organizational_domain() {
    let org = clean_zone("org.test");
    let mut org2 = org.clone();
    org2.records.retain(|r| !r.starts_with("_dmarc"));
    let org2 = org2
        .txt("_dmarc", "v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@org.test")
        .record("shop MX 10 mail")
        .txt("shop", "v=spf1 mx -all")
        .txt("dkim._domainkey.shop", &format!("v=DKIM1; p={RSA_2048}"))
        .txt("_smtp._tls.shop", "v=TLSRPTv1; rua=mailto:tls@org.test");
    let dns = start(vec![org2, reverse_zone(&[("10", "mail.org.test")])]);
    let (run, report) = audit(&dns, "shop.org.test", &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_has(&report, "dmarc.inherited", "info");
    assert_has(&report, "dmarc.policy.none", "warning");
    assert!(
        finding(&report, "dmarc.policy.none")["message"]
            .as_str()
            .unwrap()
            .starts_with("sp=none")
    );
    assert_eq!(report["dmarc"]["source"]["record_domain"], "org.test");
    assert_eq!(report["dmarc"]["org_domain"], "org.test");
    assert_lacks(&report, "dmarc.missing");
}

#[test]
fn unreachable_resolver_exits_two() {
    // A port nothing listens on: every query times out.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    let dir = tempfile::tempdir().unwrap();
    let run = mailwarden(
        dir.path(),
        &[
            "dns",
            "example.test",
            "--no-dnsbl",
            "--resolver",
            &addr,
            "--timeout",
            "300ms",
        ],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("example.test: the first lookup failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--resolver"), "{}", run.stderr);
}

#[test]
fn bad_flags_exit_two_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = mailwarden(dir.path(), &["dns", "bad domain.test"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not a domain name"), "{}", run.stderr);
    let run = mailwarden(dir.path(), &["dns", "x.test", "--resolver", "dns.example"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("IP:PORT"), "{}", run.stderr);
    let run = mailwarden(dir.path(), &["dns", "x.test", "--ca-file", "/nonexistent.pem"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent.pem"), "{}", run.stderr);
}

#[test]
fn several_domains_one_json_line_each() {
    let dns = start(vec![
        clean_zone("one.test"),
        spf_domain("two.test", &["v=spf1 mx +all"]),
        reverse_zone(&[("10", "mail.one.test")]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let resolver = dns.addr().to_string();
    let run = mailwarden(
        dir.path(),
        &[
            "dns",
            "one.test",
            "TWO.test.",
            "--json",
            "--no-dnsbl",
            "--resolver",
            &resolver,
        ],
    );
    assert_eq!(run.code, 1);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["domain"], "one.test");
    assert_eq!(lines[1]["domain"], "two.test");
    assert_eq!(lines[1]["worst"], "fail");
}

/// Replaces what changes between runs (query counts, the resolver port) so
/// the human report can be snapshotted.
fn stable(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find(" DNS queries)") {
            Some(end) => {
                let start = line[..end].rfind(", ").map_or(0, |p| p + 2);
                format!("{}N{}", &line[..start], &line[end..])
            }
            None => line.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn human_report_snapshot() {
    // A typical half-done setup: SPF with an include and ~all, DMARC at
    // p=none without reports, a 1024-bit key, no TLS-RPT.
    let zone = DnsZone::new("shop.test")
        .record("@ MX 10 mail")
        .record("mail A 192.0.2.10")
        .txt("@", "v=spf1 mx include:_spf.mailer.test ~all")
        .txt("_dmarc", "v=DMARC1; p=none")
        .txt("dkim._domainkey", &format!("v=DKIM1; k=rsa; p={RSA_1024}"));
    let dns = start(vec![
        zone,
        reverse_zone(&[("10", "mail.shop.test")]),
        DnsZone::new("mailer.test")
            .txt("_spf", "v=spf1 ip4:198.51.100.0/24 a:out.mailer.test -all")
            .record("out A 198.51.100.7"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let run = mailwarden(
        dir.path(),
        &[
            "dns",
            "shop.test",
            "--no-dnsbl",
            "--resolver",
            &dns.addr().to_string(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("dns_human_report", stable(&run.stdout));
}

#[test]
fn whole_audit_with_mx_ptr_dnsbl_and_mta_sts() {
    // Two MX hosts: mail (PTR, forward-confirmed) and mx2 (no PTR, and
    // listed in the private blocklist bl.test). MTA-STS in enforce mode
    // naming both, served over HTTPS with a test CA. TLS-RPT is published.
    let zone = clean_zone("full.test")
        .record("@ MX 20 mx2")
        .record("mx2 A 192.0.2.41")
        .txt("_mta-sts", "v=STSv1; id=20260101")
        .record("mta-sts A 127.0.0.1");
    let blocklist = DnsZone::new("bl.test")
        // RFC 5782 self-test entries: 127.0.0.2 listed, 127.0.0.1 not.
        .record("2.0.0.127 A 127.0.0.2")
        .record("41.2.0.192 A 127.0.0.2")
        .txt("41.2.0.192", "listed for tests");
    let dns = start(vec![zone, reverse_zone(&[("10", "mail.full.test")]), blocklist]);
    let https = HttpsServer::start(vec![HttpsSite::new("mta-sts.full.test").route(HttpsRoute::text(
        "/.well-known/mta-sts.txt",
        "version: STSv1\r\nmode: enforce\r\nmx: mail.full.test\r\nmx: mx2.full.test\r\nmax_age: 604800\r\n",
    ))])
    .expect("start the HTTPS server");
    let dir = tempfile::tempdir().unwrap();
    let resolver = dns.addr().to_string();
    let ca = https.ca_pem();
    let port = https.port().to_string();
    let run = mailwarden(
        dir.path(),
        &[
            "dns",
            "full.test",
            "--json",
            "--resolver",
            &resolver,
            "--dnsbl",
            "bl.test",
            "--ca-file",
            ca.to_str().unwrap(),
            "--mta-sts-port",
            &port,
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_has(&report, "mx.present", "pass");
    assert_has(&report, "ptr.forward-confirmed", "pass");
    let missing_ptr = finding(&report, "ptr.missing");
    assert_eq!(missing_ptr["subject"], "192.0.2.41");
    let listed = finding(&report, "dnsbl.listed");
    assert_eq!(listed["severity"], "fail");
    assert!(
        listed["message"].as_str().unwrap().contains("192.0.2.41"),
        "{listed}"
    );
    assert_has(&report, "mta-sts.policy.enforce", "pass");
    assert_has(&report, "mta-sts.policy.mx-match", "pass");
    assert_has(&report, "tls-rpt.present", "pass");
    assert_eq!(report["mx"]["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(report["mta_sts"]["policy"]["mode"], "enforce");
    assert!(report["dnsbl"]["listings"].as_array().unwrap().len() == 1);
    // The MX-side findings are in the one list, not repeated per area.
    assert!(report["mx"]["findings"].as_array().unwrap().is_empty());
}

#[test]
fn dnssec_and_dane_are_reported() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
    let dns = start(vec![
        clean_zone("secure.test")
            .record(format!("@ DNSKEY 257 3 13 {key}"))
            .record(
                "_25._tcp.mail TLSA 3 1 1 0000000000000000000000000000000000000000000000000000000000000000",
            ),
        clean_zone("plain.test"),
        reverse_zone(&[("10", "mail.secure.test")]),
    ]);
    let (_, report) = audit(&dns, "secure.test", &[]);
    assert_has(&report, "dnssec.signed", "pass");
    assert_has(&report, "dane.tlsa", "pass");
    assert_lacks(&report, "dane.none");
    let (_, report) = audit(&dns, "plain.test", &[]);
    assert_has(&report, "dnssec.unsigned", "info");
    assert_has(&report, "dane.none", "info");
    assert!(
        finding(&report, "dane.none")["fix"]
            .as_str()
            .unwrap()
            .contains("TLSA 3 1 1")
    );
}
