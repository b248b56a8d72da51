//! `mailwarden dmarc` end to end: the public parsedmarc sample reports,
//! JSON and CSV output, the store round trip (a second read adds nothing),
//! hostile inputs (bombs, entity attacks, escape sequences) next to good
//! ones, and reverse names from a private DNS server.

use std::io::Write;
use std::path::{Path, PathBuf};

use mailwarden_testlab::{DnsServer, DnsZone};
use serde_json::Value;

use crate::support::mailwarden;

/// The parsedmarc samples beside the checkout (`../shared/corpus`), or
/// `None`: the project does not ship that public corpus, so a clone without
/// it skips these comparisons and says so; the other tests here use
/// reports written by the tests themselves.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/auth/parsedmarc-samples");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: the public corpus is not beside the checkout at {}",
            dir.display()
        );
        None
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn report_xml(org: &str, id: &str, ips: &[(&str, u64, bool)]) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name><email>r@x.example</email><report_id>{id}</report_id><date_range><begin>1700006400</begin><end>1700092799</end></date_range></report_metadata><policy_published><domain>example.org</domain><p>reject</p></policy_published>"
    );
    for (ip, count, pass) in ips {
        let r = if *pass { "pass" } else { "fail" };
        x.push_str(&format!(
            "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>none</disposition><dkim>{r}</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.org</header_from></identifiers><auth_results><dkim><domain>example.org</domain><result>{r}</result></dkim></auth_results></record>"
        ));
    }
    x.push_str("</feedback>\n");
    x
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The reports of a JSON document, by a piece of their source.
fn report<'a>(doc: &'a Value, source_part: &str) -> &'a Value {
    doc["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"].as_str().unwrap().contains(source_part))
        .unwrap_or_else(|| panic!("no report from {source_part}: {doc:#}"))
}

fn note_kinds(r: &Value) -> Vec<&str> {
    r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn every_parsedmarc_sample_is_read_with_its_repairs() {
    let dir = tempdir();
    let Some(corpus) = corpus() else { return };
    let r = mailwarden(dir.path(), &["dmarc", "--json", corpus.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.json();
    assert_eq!(doc["inputs"]["files"], 9);
    assert_eq!(doc["inputs"]["failed"].as_array().unwrap().len(), 0, "{doc:#}");
    let t = &doc["totals"];
    assert_eq!(
        (t["reports"].as_u64(), t["tls_reports"].as_u64()),
        (Some(7), Some(2))
    );
    assert_eq!(
        (t["records"].as_u64(), t["messages"].as_u64()),
        (Some(7), Some(129))
    );
    assert_eq!(
        (t["authorized"].as_u64(), t["failing"].as_u64()),
        (Some(124), Some(5))
    );
    assert_eq!(t["repaired"], 2);
    // (file, records, messages, source of the first record, notes)
    let want: &[(&str, u64, u64, &[&str])] = &[
        ("!example.com!1538204542!1538463818.xml", 1, 1, &["missing"]),
        (
            "example.net!example.com!1529366400!1529452799.xml",
            1,
            1,
            &["stray_text"],
        ),
        (
            "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
            1,
            1,
            &[],
        ),
        ("invalid_xml.xml", 1, 1, &["unescaped_lt"]),
        (
            "protection.outlook.com!example.com!1711756800!1711843200.xml",
            1,
            1,
            &[],
        ),
        ("rfc9990-sample.xml", 1, 123, &[]),
        ("twilight.eml", 1, 1, &[]),
        ("google.com_smtp_tls_report.eml", 1, 48, &[]),
        ("rfc8460.json", 1, 5629, &[]),
    ];
    for (file, records, messages, notes) in want {
        let rep = report(&doc, file);
        assert_eq!(rep["records"].as_u64(), Some(*records), "{file}");
        assert_eq!(rep["messages"].as_u64(), Some(*messages), "{file}");
        assert_eq!(note_kinds(rep), *notes, "{file}: {rep:#}");
        assert_eq!(rep["status"], "counted");
    }
    assert_eq!(report(&doc, "rfc9990-sample.xml")["schema"], "rfc9990");
    assert_eq!(
        report(&doc, "invalid_xml.xml")["notes"][0]["detail"],
        "read 2 stray '<' as text (first at line 5)"
    );
    // Who sends as example.com: the failing sources first, largest first.
    let ex = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "example.com")
        .unwrap();
    assert_eq!(ex["failing_sources"][0]["source_ip"], "199.230.200.36");
    assert_eq!(ex["failing_sources"][0]["messages"], 2);
    assert_eq!(ex["authorized_sources"][0]["source_ip"], "192.0.2.123");
    assert_eq!(ex["authorized_sources"][0]["dkim_aligned"], 123);
    let tls = doc["tls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["policy_domain"] == "company-y.example")
        .unwrap();
    assert_eq!(
        (tls["successful"].as_u64(), tls["failed"].as_u64()),
        (Some(5326), Some(303))
    );
    assert_eq!(tls["failure_types"][0]["value"], "starttls-not-supported");
    assert_eq!(tls["failures"][0]["sending_mta_ip"], "2001:db8:abcd:13::1");

    // The text view: failing before authorized, repairs listed.
    let r = mailwarden(dir.path(), &["dmarc", corpus.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = &r.stdout;
    assert!(text.find("Failing DMARC").unwrap() < text.find("Authorized — DMARC pass").unwrap());
    assert!(
        text.contains("invalid_xml.xml: read 2 stray '<' as text"),
        "{text}"
    );
    assert!(
        text.contains("sessions 5629: successful 5326, failed 303 (5.4%)"),
        "{text}"
    );
}

#[test]
fn csv_has_one_row_per_record() {
    let dir = tempdir();
    let Some(corpus) = corpus() else { return };
    let r = mailwarden(dir.path(), &["dmarc", "--csv", corpus.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "report_org,report_id,begin,end,domain,source_ip,count,disposition,dkim,spf,header_from,envelope_from,dkim_domains,dkim_results,spf_domains,spf_results"
    );
    assert_eq!(lines.len(), 8);
    assert!(lines.contains(
        &"Sample Reporter,3v98abbp8ya9n3va8yr8oa3ya,1979-08-07T00:00:00Z,1979-08-07T23:59:59Z,example.com,192.0.2.123,123,pass,pass,fail,example.com,example.com,example.com,pass,example.com,fail"
    ));
    // Only the chosen domain.
    let r = mailwarden(
        dir.path(),
        &[
            "dmarc",
            "--csv",
            "--domain",
            "twlnet.com",
            corpus.to_str().unwrap(),
        ],
    );
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
}

#[test]
fn the_store_keeps_each_report_once() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let Some(corpus) = corpus() else { return };
    let run = |args: &[&str]| {
        let mut full = vec!["dmarc", "--json", "--data-dir", data.to_str().unwrap()];
        full.extend_from_slice(args);
        let r = mailwarden(dir.path(), &full);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()
    };
    let first = run(&[corpus.to_str().unwrap()]);
    assert_eq!(first["store"]["new"], 9);
    assert_eq!(first["store"]["already_stored"], 0);
    assert_eq!(report(&first, "invalid_xml.xml")["stored"], "new");
    let second = run(&[corpus.to_str().unwrap()]);
    assert_eq!(second["store"]["new"], 0);
    assert_eq!(second["store"]["already_stored"], 9);
    assert_eq!(report(&second, "invalid_xml.xml")["stored"], "already stored");
    // What is stored is what was read, once.
    let stored = run(&[]);
    assert_eq!(stored["totals"], first["totals"], "{stored:#}");
    assert_eq!(stored["domains"], first["domains"]);
    assert_eq!(stored["tls"], first["tls"]);
    assert_eq!(
        report(&stored, "invalid_xml.xml")["notes"],
        report(&first, "invalid_xml.xml")["notes"]
    );
    // Filters apply to stored reports too.
    let recent = run(&["--since", "2019-01-01"]);
    assert_eq!(recent["totals"]["reports"], 2);
    assert_eq!(recent["totals"]["tls_reports"], 1);
    let one = run(&["--domain", "indemed.com"]);
    assert_eq!(one["domains"].as_array().unwrap().len(), 1);
    assert_eq!(one["tls"].as_array().unwrap().len(), 0);
    // CSV from the store.
    let r = mailwarden(
        dir.path(),
        &["dmarc", "--csv", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(r.stdout.lines().count(), 8, "{}", r.stdout);
    // A store that does not exist is an error, not an empty answer.
    let r = mailwarden(
        dir.path(),
        &["dmarc", "--data-dir", dir.path().join("none").to_str().unwrap()],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no mailwarden store"), "{}", r.stderr);
}

#[test]
fn bad_inputs_are_listed_and_the_rest_is_read() {
    let dir = tempdir();
    let d = dir.path().join("in");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        d.join("good.xml"),
        report_xml(
            "good.example",
            "g1",
            &[("192.0.2.1", 5, true), ("203.0.113.9", 2, false)],
        ),
    )
    .unwrap();
    // The same report again (forwarded twice): counted once.
    std::fs::write(
        d.join("good-again.xml.gz"),
        gzip(
            report_xml(
                "good.example",
                "g1",
                &[("192.0.2.1", 5, true), ("203.0.113.9", 2, false)],
            )
            .as_bytes(),
        ),
    )
    .unwrap();
    // XXE pointing at /etc/passwd, and a billion laughs.
    std::fs::write(
        d.join("xxe.xml"),
        "<?xml version=\"1.0\"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><feedback><report_metadata><org_name>&xxe;</org_name><report_id>x</report_id></report_metadata><policy_published><domain>example.org</domain></policy_published></feedback>",
    )
    .unwrap();
    let mut laughs = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    laughs.push_str("]><feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>");
    std::fs::write(d.join("laughs.xml"), laughs).unwrap();
    // A gzip bomb: 200 MiB of whitespace inside a report.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"<feedback><report_metadata><org_name>bomb</org_name></report_metadata>")
        .unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..200 {
        enc.write_all(&spaces).unwrap();
    }
    enc.write_all(b"</feedback>").unwrap();
    std::fs::write(d.join("bomb.xml.gz"), enc.finish().unwrap()).unwrap();
    // A report cut in the middle of its second record, and an unrelated file.
    let cut = report_xml(
        "cut.example",
        "c1",
        &[("198.51.100.1", 1, false), ("198.51.100.2", 1, false)],
    );
    let cut = &cut[..cut.rfind("<count>").unwrap()];
    std::fs::write(d.join("cut.xml"), cut).unwrap();
    std::fs::write(d.join("README.txt"), "not a report").unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a report either").unwrap();

    let r = mailwarden(
        dir.path(),
        &[
            "dmarc",
            "--json",
            d.to_str().unwrap(),
            notes.to_str().unwrap(),
            "missing.xml",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("root:") && !r.stderr.contains("root:"));
    let doc = r.json();
    let failed: Vec<(String, String)> = doc["inputs"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["input"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |part: &str| {
        failed
            .iter()
            .find(|f| f.0.contains(part))
            .unwrap_or_else(|| panic!("{part} not among the failures: {failed:#?}"))
            .1
            .clone()
    };
    assert_eq!(failed.len(), 5, "{failed:#?}");
    assert!(reason("missing.xml").contains("no such file"));
    assert!(reason("notes.txt").starts_with("not a DMARC or TLS report"));
    assert!(reason("xxe.xml").contains("declares entities"));
    assert!(reason("laughs.xml").contains("declares entities"));
    assert!(
        reason("bomb.xml.gz").contains("decompression bomb"),
        "{}",
        reason("bomb.xml.gz")
    );
    assert_eq!(
        doc["inputs"]["skipped"][0]["input"].as_str().unwrap(),
        d.join("README.txt").to_str().unwrap()
    );
    // The good report counted once; the cut one with its complete record.
    assert_eq!(doc["totals"]["reports"], 2);
    assert_eq!(doc["totals"]["duplicates"], 1);
    assert_eq!(doc["totals"]["messages"], 8);
    assert_eq!(doc["totals"]["failing"], 3);
    let cut = report(&doc, "cut.xml");
    assert_eq!(cut["records"], 1);
    assert!(note_kinds(cut).contains(&"truncated"), "{cut:#}");
    // Read in name order: the gzip copy first, so the plain one is the duplicate.
    assert_eq!(report(&doc, "good-again.xml.gz")["status"], "counted");
    let dup = report(&doc, "good.xml");
    assert_eq!(dup["status"], "duplicate");
    assert!(
        dup["of"].as_str().unwrap().ends_with("good-again.xml.gz"),
        "{dup:#}"
    );
    // stderr lists every failure with its input.
    let r = mailwarden(dir.path(), &["dmarc", d.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("xxe.xml: the XML declares entities"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("3 input(s) could not be read"), "{}", r.stderr);
}

#[test]
fn attacker_text_is_escaped_for_the_terminal() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("evil.xml"),
        report_xml(
            "evil\x1b]0;pwned\x07\x1b[2J",
            "e&#27;1",
            &[("192.0.2.1", 1, false)],
        ),
    )
    .unwrap();
    let r = mailwarden(dir.path(), &["dmarc", "evil.xml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains('\x1b') && !r.stdout.contains('\x07'),
        "{:?}",
        r.stdout
    );
    assert!(r.stdout.contains("evil\\x1b]0;pwned"), "{}", r.stdout);
}

#[test]
fn resolve_names_the_sources() {
    let dns = DnsServer::start(vec![
        DnsZone::new("2.0.192.in-addr.arpa").record("123 IN PTR mail.sample-reporter.test."),
    ])
    .expect("starting the private DNS server (knotd)");
    let dir = tempdir();
    let Some(corpus) = corpus() else { return };
    let sample = corpus.join("aggregate/rfc9990-sample.xml");
    let resolver = dns.addr().to_string();
    let r = mailwarden(
        dir.path(),
        &[
            "dmarc",
            "--json",
            "--resolve",
            "--resolver",
            &resolver,
            sample.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.json();
    assert_eq!(
        doc["domains"][0]["authorized_sources"][0]["reverse_name"],
        "mail.sample-reporter.test"
    );
    let r = mailwarden(
        dir.path(),
        &[
            "dmarc",
            "--resolve",
            "--resolver",
            &resolver,
            sample.to_str().unwrap(),
        ],
    );
    assert!(
        r.stdout.contains("192.0.2.123 (mail.sample-reporter.test)"),
        "{}",
        r.stdout
    );
}

#[test]
fn help_and_usage_errors() {
    let dir = tempdir();
    let r = mailwarden(dir.path(), &["dmarc", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Examples:"), "{}", r.stdout);
    assert!(r.stdout.contains("Exit status: 0"), "{}", r.stdout);
    let r = mailwarden(dir.path(), &["dmarc"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("name report files"), "{}", r.stderr);
    let r = mailwarden(dir.path(), &["dmarc", "--since", "yesterday-ish", "x.xml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--since"), "{}", r.stderr);
    let r = mailwarden(dir.path(), &["dmarc", "--max-report-bytes", "10Q", "x.xml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown unit"), "{}", r.stderr);
}
