//! Tests of the report readers, the repair pass and the analysis.

use proptest::prelude::*;

use super::aggregate::read_all;
use super::analysis::{Analysis, AnalysisConfig, ReportInfo, ReportStatus};
use super::model::{DkimAuth, NoteKind, Record, SpfAuth};
use super::render::{CSV_HEADER, RenderOptions, csv_row, render_text};
use super::tls::read_tls;
use super::xml::{Encoding, RepairOptions, repair_all};
use super::{AggregateReader, ContentKind, ReportError, ReportLimits, Schema, sniff};

fn repair(input: &[u8]) -> (String, super::xml::RepairStats) {
    repair_all(input, RepairOptions::default()).expect("repair")
}

/// Checks the repaired text and that quick-xml reads it without error.
#[track_caller]
fn check_repair(input: &str, want: &str) -> super::xml::RepairStats {
    let (out, stats) = repair(input.as_bytes());
    assert_eq!(out, want, "input: {input:?}");
    assert_well_formed(&out);
    stats
}

#[track_caller]
fn assert_well_formed(xml: &str) {
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let mut depth = 0i64;
    let mut roots = 0;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::Empty(_)) => {
                if depth == 0 {
                    roots += 1;
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Text(t)) if depth == 0 => {
                assert!(
                    t.xml10_content().trim().is_empty(),
                    "text outside the root in {xml:?}"
                );
            }
            Ok(quick_xml::events::Event::GeneralRef(_)) if depth == 0 => {
                panic!("reference outside the root: {xml:?}")
            }
            Ok(quick_xml::events::Event::GeneralRef(g)) => {
                let ok = g.is_char_ref() && g.resolve_char_ref().is_ok()
                    || matches!(g.xml10_content().as_ref(), "amp" | "lt" | "gt" | "quot" | "apos");
                assert!(ok, "bad reference {g:?} in {xml:?}");
            }
            Ok(_) => {}
            Err(e) => panic!("not well-formed ({e}): {xml:?}"),
        }
    }
    assert_eq!(depth, 0, "unbalanced: {xml:?}");
    assert!(roots <= 1, "several roots: {xml:?}");
}

#[test]
fn clean_documents_pass_unchanged_but_for_the_declaration() {
    let s = check_repair(
        "<?xml version=\"1.0\"?>\n<feedback a=\"1\"><x>t &amp; &#60; &#x3C;</x><y/></feedback>\n",
        "<feedback a=\"1\"><x>t &amp; &#60; &#x3C;</x><y/></feedback>",
    );
    assert!(s.is_clean(), "{s:?}");
}

#[test]
fn stray_markup_characters_become_text() {
    // parsedmarc's invalid_xml.xml: an address in angle brackets and a '<' in a domain.
    let s = check_repair(
        "<feedback><email><bad-xml@bad-xml.net></email><h>bad<xml.net</h></feedback>",
        "<feedback><email>&lt;bad-xml@bad-xml.net></email><h>bad&lt;xml.net</h></feedback>",
    );
    assert_eq!(s.escaped_lt, 2);
    assert_eq!(s.escaped_lt_line, 1);
    let s = check_repair(
        "<f><a>AT&T & co &nbsp; &#0; &#xD800; &amp;</a></f>",
        "<f><a>AT&amp;T &amp; co &amp;nbsp; &amp;#0; &amp;#xD800; &amp;</a></f>",
    );
    assert_eq!(s.escaped_amp, 5);
    check_repair("<f><a>1 < 2</a></f>", "<f><a>1 &lt; 2</a></f>");
    check_repair("<f><a>x<</a></f>", "<f><a>x&lt;</a></f>");
    check_repair(
        "<f a='x<y' b=\"&\" c=d></f>",
        "<f a=\"x&lt;y\" b=\"&amp;\" c=\"d\"></f>",
    );
    check_repair("<f a='1' a='2'/>", "<f a=\"1\"/>");
}

#[test]
fn junk_around_the_document_is_skipped_and_counted() {
    let s = check_repair(
        "garbage\r\n<?xml version=\"1.0\"?><!-- c --><feedback><x>1</x></feedback>trailing junk<!-- ok -->",
        "<feedback><x>1</x></feedback>",
    );
    assert_eq!(s.stray_prefix, 7);
    assert_eq!(s.trailing, 12);
    let s = check_repair("\u{feff}<feedback/>", "<feedback/>");
    assert!(s.is_clean());
}

#[test]
fn encodings() {
    // Invalid UTF-8 (Latin-1 bytes in a UTF-8 document).
    let (out, s) = repair(b"<f><o>M\xfcller \xc3\xbc</o></f>");
    assert_eq!(out, "<f><o>Müller ü</o></f>");
    assert_eq!(s.invalid_utf8, 1);
    // Declared Latin-1 and Windows-1252.
    let (out, s) = repair(b"<?xml version='1.0' encoding='ISO-8859-1'?><f>\xfc</f>");
    assert_eq!(out, "<f>ü</f>");
    assert_eq!(s.encoding, Some(Encoding::Latin1));
    assert!(s.is_clean());
    let (out, _) = repair(b"<?xml version='1.0' encoding='windows-1252'?><f>\x80\x93</f>");
    assert_eq!(out, "<f>€“</f>");
    // UTF-16 with and without BOM.
    let utf16: Vec<u8> = "\u{feff}<f>é</f>"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert_eq!(repair(&utf16).0, "<f>é</f>");
    let utf16be: Vec<u8> = "<?xml version='1.0'?><f>é</f>"
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    assert_eq!(repair(&utf16be).0, "<f>é</f>");
    // Unknown encoding: read as UTF-8 and said so.
    let (_, s) = repair(b"<?xml version='1.0' encoding='shift_jis'?><f/>");
    assert_eq!(s.unsupported_encoding.as_deref(), Some("shift_jis"));
    // A mail part already converted to UTF-8 keeps its old declaration.
    let (out, _) = repair_all(
        "<?xml version='1.0' encoding='ISO-8859-1'?><f>ü</f>".as_bytes(),
        RepairOptions {
            force_utf8: true,
            ..RepairOptions::default()
        },
    )
    .unwrap();
    assert_eq!(out, "<f>ü</f>");
}

#[test]
fn structure_is_repaired() {
    let s = check_repair("<f><a><b>x</a></f>", "<f><a><b>x</b></a></f>");
    assert_eq!(s.auto_closed, 1);
    let s = check_repair("<f><a>x</b></a></f>", "<f><a>x</a></f>");
    assert_eq!(s.stray_end, 1);
    let s = check_repair(
        "<f><r><a>1</a><b>2",
        "<f><r><a>1</a><b>2<?mailwarden truncated?></b></r></f>",
    );
    assert_eq!(s.truncated_inside.as_deref(), Some("f/r/b"));
    check_repair("<f><![CDATA[a<b&c]]></f>", "<f>a&lt;b&amp;c</f>");
    check_repair("<f><?pi x?>a<!-- <x> -->b</f>", "<f>ab</f>");
    check_repair("<f><!DOCTYPE x>y</f>", "<f>&lt;!DOCTYPE x>y</f>");
    check_repair("no xml at all", "");
}

#[test]
fn entities_are_never_expanded() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>"#;
    match repair_all(laughs.as_bytes(), RepairOptions::default()) {
        Err(ReportError::Entities { line: 3 }) => {}
        other => panic!("{other:?}"),
    }
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>"#;
    let err = read_all(xxe.as_bytes(), &ReportLimits::default()).unwrap_err();
    assert!(matches!(err, ReportError::Entities { .. }), "{err}");
    assert!(err.to_string().contains("refused"));
    // Without a declaration the reference is just text.
    let (h, _, notes) = read_all(
        b"<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata><policy_published><domain>d</domain></policy_published></feedback>",
        &ReportLimits::default(),
    )
    .unwrap();
    assert_eq!(h.metadata.org_name, "&xxe;");
    assert!(notes.iter().any(|n| n.kind == NoteKind::UnescapedAmp));
    // A DOCTYPE without entities is dropped.
    let (out, s) = repair(b"<!DOCTYPE feedback SYSTEM \"x.dtd\"><feedback/>");
    assert_eq!(out, "<feedback/>");
    assert!(s.doctype);
}

#[test]
fn nesting_and_text_are_bounded() {
    let deep = "<a>".repeat(100);
    match repair_all(deep.as_bytes(), RepairOptions::default()) {
        Err(ReportError::TooDeep { limit: 32, .. }) => {}
        other => panic!("{other:?}"),
    }
    let long = format!("<f>{}</f>", "x".repeat(100_000));
    let (out, s) = repair(long.as_bytes());
    assert_eq!(out.len(), "<f></f>".len() + 16 * 1024);
    assert_eq!(s.text_cut, 100_000 - 16 * 1024);
    // A tag longer than the limit is text.
    let big = format!("<f><x {}></x></f>", "a=\"b\" ".repeat(3000));
    let (out, _) = repair(big.as_bytes());
    assert!(out.starts_with("<f>&lt;x a="), "{}", &out[..40]);
}

const RFC7489: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>acme.example</org_name>
    <email>noreply@acme.example</email>
    <report_id>r-1</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>Example.COM.</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p><sp>none</sp><pct>100</pct>
  </policy_published>
  <record>
    <row><source_ip>192.0.2.1</source_ip><count>10</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>bounce.other.example</domain><scope>mfrom</scope><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row><source_ip>2001:0db8::0001</source_ip><count>3</count>
      <policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf>
        <reason><type>local_policy</type><comment>x</comment></reason></policy_evaluated></row>
    <identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>SoftFail</result></spf></auth_results>
  </record>
</feedback>
"#;

#[test]
fn reads_an_rfc7489_report() {
    let (h, recs, notes) = read_all(RFC7489.as_bytes(), &ReportLimits::default()).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(h.schema, Schema::Rfc7489);
    assert_eq!(h.metadata.org_name, "acme.example");
    assert_eq!(h.metadata.report_id, "r-1");
    assert_eq!((h.metadata.begin, h.metadata.end), (1_700_000_000, 1_700_086_399));
    assert_eq!(h.policy.domain, "example.com");
    assert_eq!(h.policy.p.as_deref(), Some("reject"));
    assert_eq!(recs.len(), 2);
    let a = &recs[0];
    assert_eq!((a.source_ip.as_str(), a.count), ("192.0.2.1", 10));
    assert!(a.dmarc_pass());
    assert!(a.dkim_aligned_pass() && !a.spf_aligned_pass());
    assert_eq!(a.spf_result(), "pass");
    assert_eq!(
        a.dkim_results,
        vec![DkimAuth {
            domain: "example.com".into(),
            selector: Some("s1".into()),
            result: "pass".into(),
            human_result: None
        }]
    );
    let b = &recs[1];
    assert_eq!(b.source_ip, "2001:db8::1");
    assert!(!b.dmarc_pass());
    assert_eq!(b.spf_result(), "softfail");
    assert_eq!(b.dkim_result(), "none");
    assert_eq!(b.reasons[0].kind, "local_policy");
    assert_eq!(b.disposition.as_deref(), Some("reject"));
}

#[test]
fn reads_an_rfc9990_report_with_prefixes_and_extensions() {
    let xml = r#"<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">
  <d:version>1.0</d:version>
  <d:report_metadata><d:org_name>R</d:org_name><d:email>r@r.example</d:email><d:report_id>x</d:report_id>
    <d:date_range><d:begin>1</d:begin><d:end>2</d:end></d:date_range><d:generator>gen 1</d:generator></d:report_metadata>
  <d:policy_published><d:domain>example.org</d:domain><d:p>quarantine</d:p><d:np>reject</d:np><d:testing>n</d:testing>
    <d:discovery_method>treewalk</d:discovery_method></d:policy_published>
  <d:extensions><x:y xmlns:x="urn:x">z</x:y></d:extensions>
  <d:record><d:row><d:source_ip>198.51.100.7</d:source_ip><d:count>5</d:count>
    <d:policy_evaluated><d:disposition>pass</d:disposition><d:dkim>pass</d:dkim><d:spf>pass</d:spf></d:policy_evaluated></d:row>
    <d:identifiers><d:header_from>example.org</d:header_from></d:identifiers>
    <d:auth_results><d:dkim><d:domain>example.org</d:domain><d:result>pass</d:result><d:human_result>good</d:human_result></d:dkim></d:auth_results>
  </d:record>
</d:feedback>"#;
    let (h, recs, notes) = read_all(xml.as_bytes(), &ReportLimits::default()).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(h.schema, Schema::Rfc9990);
    assert_eq!(h.namespace.as_deref(), Some("urn:ietf:params:xml:ns:dmarc-2.0"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.metadata.generator.as_deref(), Some("gen 1"));
    assert_eq!(h.policy.np.as_deref(), Some("reject"));
    assert_eq!(h.policy.discovery_method.as_deref(), Some("treewalk"));
    assert_eq!(recs[0].dkim_results[0].human_result.as_deref(), Some("good"));
    assert_eq!(recs[0].disposition.as_deref(), Some("pass"));
}

#[test]
fn odd_reports_are_read_with_notes() {
    // Wrong namespace, stray text, an unknown element, bad values, a record
    // before the policy, junk after the end.
    let xml = r#"<feedback xmlns="http://example.invalid/ns">
  <record><row><source_ip>not-an-ip</source_ip><count>x</count></row></record>
  <report_metadata><org_name>o</org_name><report_id>1</report_id><date_range><begin>2024-03-30T00:00:00Z</begin><end>1711843200</end></date_range></report_metadata>
  <policy_published><domain>d.example</domain><sp>none</sp>11<wat>1</wat></policy_published>
  <record><row><source_ip>[192.0.2.9]</source_ip><count>2</count></row></record>
</feedback>trailing"#;
    let (h, recs, notes) = read_all(xml.as_bytes(), &ReportLimits::default()).unwrap();
    assert_eq!(h.metadata.begin, 1_711_756_800);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].source_ip, "not-an-ip");
    assert_eq!(recs[0].count, 0);
    assert_eq!(recs[1].source_ip, "192.0.2.9");
    let kinds: Vec<NoteKind> = notes.iter().map(|n| n.kind).collect();
    for k in [
        NoteKind::Namespace,
        NoteKind::StrayText,
        NoteKind::UnknownElement,
        NoteKind::BadValue,
        NoteKind::Missing,
        NoteKind::TrailingData,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing in {notes:#?}");
    }
    let text: Vec<String> = notes.iter().map(|n| n.detail.clone()).collect();
    assert!(
        text.iter().any(|t| t.contains("policy_published/wat")),
        "{text:?}"
    );
    assert!(text.iter().any(|t| t.contains("\"11\"")), "{text:?}");
}

#[test]
fn a_truncated_report_keeps_its_complete_records() {
    let cut = &RFC7489[..RFC7489.find("<source_ip>2001").unwrap() + 15];
    let (_, recs, notes) = read_all(cut.as_bytes(), &ReportLimits::default()).unwrap();
    assert_eq!(recs.len(), 1);
    assert!(
        notes
            .iter()
            .any(|n| n.kind == NoteKind::Truncated && n.detail.contains("record 2")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.detail.contains("feedback/record/row/source_ip")),
        "{notes:?}"
    );
}

#[test]
fn report_errors_are_clear() {
    let lim = ReportLimits::default();
    let e = read_all(b"<html><body/></html>", &lim).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a DMARC aggregate report: the root element is <html>, not <feedback>"
    );
    let e = read_all(b"hello", &lim).unwrap_err();
    assert!(matches!(e, ReportError::NotXml { skipped: 5 }), "{e}");
    let e = read_all(b"<feedback><report_metadata/></feedback>", &lim).unwrap_err();
    assert!(matches!(e, ReportError::NoPolicy), "{e}");
    let few = ReportLimits {
        max_records: 1,
        ..ReportLimits::default()
    };
    let e = read_all(RFC7489.as_bytes(), &few).unwrap_err();
    assert_eq!(
        e.to_string(),
        "more than 1 records in one report; raise --max-records to read it"
    );
}

#[test]
fn records_are_streamed() {
    // 20k records are handed out one by one; the reader's buffer stays small.
    let mut xml = String::from(
        "<feedback><report_metadata><org_name>o</org_name><report_id>1</report_id></report_metadata><policy_published><domain>d</domain></policy_published>",
    );
    for i in 0..20_000u32 {
        xml.push_str(&format!(
            "<record><row><source_ip>10.{}.{}.{}</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>d</header_from></identifiers></record>",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    xml.push_str("</feedback>");
    let mut r = AggregateReader::new(xml.as_bytes(), &ReportLimits::default(), false);
    r.header().unwrap();
    let mut n = 0;
    while let Some(rec) = r.next_record().unwrap() {
        assert!(rec.dmarc_pass());
        n += 1;
    }
    assert_eq!(n, 20_000);
    assert_eq!(r.messages(), 20_000);
    assert!(r.notes().is_empty());
}

const RFC8460: &str = r#"{
 "organization-name": "Company-X",
 "date-range": {"start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
 "contact-info": "sts-reporting@company-x.example",
 "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
 "policies": [{
   "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
              "policy-domain": "Company-Y.example", "mx-host": "*.mail.company-y.example"},
   "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
   "failure-details": [
     {"result-type": "certificate-expired", "sending-mta-ip": "2001:db8:abcd:0012::1",
      "receiving-mx-hostname": "mx1.mail.company-y.example", "failed-session-count": 100},
     {"result-type": "starttls-not-supported", "sending-mta-ip": "2001:db8:abcd:0013::1",
      "receiving-mx-hostname": "mx2.mail.company-y.example", "receiving-ip": "203.0.113.56",
      "failed-session-count": 200},
     {"result-type": "validation-failure", "sending-mta-ip": "198.51.100.62", "receiving-ip": "203.0.113.58",
      "receiving-mx-hostname": "mx-backup.mail.company-y.example", "failed-session-count": 3,
      "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}]
 }]
}"#;

#[test]
fn reads_an_rfc8460_report() {
    let (r, notes) = read_tls(RFC8460.as_bytes(), &ReportLimits::default()).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(r.organization_name, "Company-X");
    assert_eq!(r.begin, 1_459_468_800);
    let p = &r.policies[0];
    assert_eq!(p.policy_domain, "company-y.example");
    assert_eq!(p.mx_host, vec!["*.mail.company-y.example"]);
    assert_eq!((p.successful, p.failed), (5326, 303));
    assert_eq!(p.failure_details.len(), 3);
    assert_eq!(p.failure_details[1].failed_sessions, 200);
    assert_eq!(
        p.failure_details[2].failure_reason_code.as_deref(),
        Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
    );
}

#[test]
fn tls_reports_are_read_leniently() {
    let json = b"\xEF\xBB\xBFjunk {\"organization-name\": \"Org \xe9\", \"report-id\": 42,
      \"date-range\": {\"start-datetime\": \"2024-01-01T00:00:00\", \"end-datetime\": 1704153599},
      \"policies\": {\"policy\": {\"policy-type\": \"no-policy-found\", \"policy-domain\": \"x.example\", \"mx-host\": [\"a\", \"b\"]},
                    \"summary\": {\"total-successful-session-count\": \"7\", \"total-failure-session-count\": \"oops\"},
                    \"failure-details\": [{\"result-type\": \"sts-policy-fetch-error\", \"failed-session-count\": 1}, {}, {}]}} trailing";
    let lim = ReportLimits {
        max_tls_details: 2,
        ..ReportLimits::default()
    };
    let (r, notes) = read_tls(&json[..], &lim).unwrap();
    assert_eq!(r.organization_name, "Org é");
    assert_eq!(r.report_id, "42");
    assert_eq!((r.begin, r.end), (1_704_067_200, 1_704_153_599));
    let p = &r.policies[0];
    assert_eq!(p.mx_host, vec!["a", "b"]);
    assert_eq!((p.successful, p.failed), (7, 0));
    assert_eq!((p.failure_details.len(), p.failure_details_dropped), (2, 1));
    let kinds: Vec<NoteKind> = notes.iter().map(|n| n.kind).collect();
    for k in [
        NoteKind::StrayPrefix,
        NoteKind::TrailingData,
        NoteKind::Encoding,
        NoteKind::BadValue,
        NoteKind::Dropped,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing in {notes:#?}");
    }
    let e = read_tls(&b"{\"a\": 1}"[..], &lim).unwrap_err();
    assert!(e.to_string().contains("no \"policies\""), "{e}");
    let e = read_tls(&b"{\"policies\": [1,"[..], &lim).unwrap_err();
    assert!(matches!(e, ReportError::Json { line: 1, .. }), "{e}");
}

#[test]
fn sniffing() {
    let cases: &[(&[u8], ContentKind)] = &[
        (b"\x1f\x8b\x08\x00", ContentKind::Gzip),
        (b"PK\x03\x04rest", ContentKind::Zip),
        (b"<?xml version='1.0'?><feedback/>", ContentKind::Xml),
        (b"\xEF\xBB\xBF  <feedback/>", ContentKind::Xml),
        (b"\xFF\xFE<\0", ContentKind::Xml),
        (b"  {\"organization-name\": 1}", ContentKind::Json),
        (
            b"{\"organization-name\":\"x\",\n  \"policies\": []}",
            ContentKind::Json,
        ),
        (
            b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\nFrom: x\n",
            ContentKind::Mbox,
        ),
        (
            b"Return-Path: <a@b>\nReceived: from x\n\tby y\n\nbody",
            ContentKind::Mail,
        ),
        (b"From: a@b\r\nSubject: x\r\n\r\n", ContentKind::Mail),
        (b"Content-Type: text/plain\n  continued\n", ContentKind::Mail),
        (
            b"HTTP junk\x00\x01 <?xml version='1.0'?><feedback/>",
            ContentKind::Xml,
        ),
        (b"garbage: x\n<?xml version='1.0'?>", ContentKind::Xml),
        (b"hello world", ContentKind::Unknown),
        (b"", ContentKind::Unknown),
    ];
    for (input, want) in cases {
        assert_eq!(sniff(input), *want, "{:?}", String::from_utf8_lossy(input));
    }
}

fn rec(ip: &str, count: u64, pass: bool) -> Record {
    Record {
        source_ip: ip.into(),
        count,
        disposition: Some(if pass { "none" } else { "reject" }.into()),
        dkim: Some(if pass { "pass" } else { "fail" }.into()),
        spf: Some("fail".into()),
        header_from: Some("example.com".into()),
        envelope_from: Some("bounce.example.net".into()),
        dkim_results: vec![DkimAuth {
            domain: "example.com".into(),
            result: if pass { "pass" } else { "fail" }.into(),
            ..DkimAuth::default()
        }],
        spf_results: vec![SpfAuth {
            domain: "bounce.example.net".into(),
            result: "pass".into(),
            ..SpfAuth::default()
        }],
        ..Record::default()
    }
}

fn info(source: &str) -> ReportInfo {
    ReportInfo {
        kind: "dmarc",
        source: source.into(),
        org: String::new(),
        report_id: String::new(),
        domains: Vec::new(),
        begin: 0,
        end: 0,
        schema: None,
        records: 0,
        messages: 0,
        passed: 0,
        failed: 0,
        notes: Vec::new(),
        status: ReportStatus::Counted,
        stored: None,
    }
}

fn header(org: &str, id: &str, domain: &str, begin: i64) -> super::model::ReportHeader {
    let mut h = super::model::ReportHeader::default();
    h.metadata.org_name = org.into();
    h.metadata.report_id = id.into();
    h.metadata.begin = begin;
    h.metadata.end = begin + 86_399;
    h.policy.domain = domain.into();
    h.policy.p = Some("reject".into());
    h
}

#[test]
fn analysis_splits_authorized_and_failing_sources() {
    let mut a = Analysis::new(AnalysisConfig::default());
    let h1 = header("google.com", "1", "example.com", 1_700_006_400);
    let mut acc = a.start_dmarc(&h1);
    for r in [
        rec("192.0.2.1", 100, true),
        rec("192.0.2.1", 2, false),
        rec("198.51.100.9", 7, false),
    ] {
        acc.add(&r);
    }
    assert_eq!(
        (acc.records(), acc.messages(), acc.authorized(), acc.failing()),
        (3, 109, 100, 9)
    );
    a.add_dmarc(&h1, acc, info("a.xml"));
    let h2 = header("microsoft", "2", "example.com", 1_700_092_800);
    assert!(a.first_seen(&h2.key()).is_none());
    assert_eq!(a.first_seen(&h1.key()), Some("a.xml"));
    let mut acc = a.start_dmarc(&h2);
    acc.add(&rec("198.51.100.9", 5, false));
    a.add_dmarc(&h2, acc, info("b.xml"));
    let out = a.finish();
    assert_eq!(out.totals.reports, 2);
    assert_eq!(
        (out.totals.messages, out.totals.authorized, out.totals.failing),
        (114, 100, 14)
    );
    let d = &out.domains[0];
    assert_eq!(d.domain, "example.com");
    assert_eq!(d.failing_sources.len(), 2);
    assert_eq!(d.failing_sources[0].source_ip, "198.51.100.9");
    assert_eq!(d.failing_sources[0].messages, 12);
    assert_eq!(d.failing_sources[0].reporters.len(), 2);
    assert_eq!(&*d.failing_sources[0].spf[0].value, "pass");
    assert_eq!(d.failing_sources[0].spf_aligned, 0);
    assert_eq!(d.authorized_sources[0].messages, 100);
    assert_eq!(d.authorized_sources[0].dkim_aligned, 100);
    let days: Vec<(&str, u64)> = d.days.iter().map(|x| (x.date.as_str(), x.failing)).collect();
    assert_eq!(days, vec![("2023-11-15", 9), ("2023-11-16", 5)]);
    let text = render_text(&out, &RenderOptions::default());
    assert!(text.contains("198.51.100.9"), "{text}");
    assert!(text.contains("pass, unaligned"), "{text}");
    let fail_at = text.find("Failing DMARC").unwrap();
    let auth_at = text.find("Authorized — DMARC pass").unwrap();
    assert!(fail_at < auth_at);
}

#[test]
fn analysis_filters_and_bounds_sources() {
    let cfg = AnalysisConfig {
        domains: vec!["example.com".into()],
        since: Some(1_700_000_000),
        until: None,
        max_sources: 2,
    };
    assert!(cfg.wants(&header("o", "1", "EXAMPLE.com", 1_700_006_400)));
    assert!(!cfg.wants(&header("o", "1", "other.example", 1_700_006_400)));
    assert!(!cfg.wants(&header("o", "1", "example.com", 1_600_000_000)));
    let mut a = Analysis::new(cfg);
    let h = header("o", "1", "example.com", 1_700_006_400);
    let mut acc = a.start_dmarc(&h);
    for i in 0..5 {
        acc.add(&rec(&format!("192.0.2.{i}"), 1, false));
    }
    a.add_dmarc(&h, acc, info("x"));
    let out = a.finish();
    let rows = &out.domains[0].failing_sources;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .any(|r| r.source_ip == super::analysis::OTHER_SOURCES && r.messages == 3)
    );
}

#[test]
fn csv_rows_are_quoted_and_defused() {
    let mut h = header("Org, \"Inc\"", "=cmd|' /C calc'!A0", "example.com", 1_700_006_400);
    h.metadata.end = 1_700_092_799;
    let mut r = rec("192.0.2.1", 3, false);
    r.dkim_results.push(DkimAuth {
        domain: "b.example".into(),
        result: "pass".into(),
        ..DkimAuth::default()
    });
    let mut out = String::new();
    csv_row(&mut out, &h, &r);
    assert_eq!(CSV_HEADER.split(',').count(), 16);
    assert_eq!(
        out,
        "\"Org, \"\"Inc\"\"\",\"'=cmd|' /C calc'!A0\",2023-11-15T00:00:00Z,2023-11-15T23:59:59Z,example.com,192.0.2.1,3,reject,fail,fail,example.com,bounce.example.net,example.com;b.example,fail;pass,bounce.example.net,pass\n"
    );
}

#[test]
fn control_characters_are_escaped_in_text_output() {
    let mut a = Analysis::new(AnalysisConfig::default());
    let h = header("evil\x1b[2J", "1", "example.com", 1_700_006_400);
    let mut acc = a.start_dmarc(&h);
    acc.add(&rec("192.0.2.1\x1b]0;x\x07", 1, false));
    let mut i = info("file\x1b[31m.xml");
    i.org = "evil\x1b[2J".into();
    i.notes
        .push(super::model::Note::new(NoteKind::BadValue, "bad \x1b[1m"));
    a.add_dmarc(&h, acc, i);
    let text = render_text(&a.finish(), &RenderOptions::default());
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("\\x1b[2J"));
}

/// Escapes text for generated XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn record_xml(r: &Record) -> String {
    let mut x = format!(
        "<record><row><source_ip>{}</source_ip><count>{}</count><policy_evaluated>",
        esc(&r.source_ip),
        r.count
    );
    for (name, v) in [
        ("disposition", &r.disposition),
        ("dkim", &r.dkim),
        ("spf", &r.spf),
    ] {
        if let Some(v) = v {
            x.push_str(&format!("<{name}>{}</{name}>", esc(v)));
        }
    }
    x.push_str("</policy_evaluated></row><identifiers>");
    if let Some(h) = &r.header_from {
        x.push_str(&format!("<header_from>{}</header_from>", esc(h)));
    }
    x.push_str("</identifiers><auth_results>");
    for d in &r.dkim_results {
        x.push_str(&format!(
            "<dkim><domain>{}</domain><result>{}</result></dkim>",
            esc(&d.domain),
            esc(&d.result)
        ));
    }
    x.push_str("</auth_results></record>");
    x
}

fn arb_word() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.&<>'\"-]{0,20}"
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        any::<[u8; 4]>(),
        0u64..1_000_000,
        proptest::option::of(arb_word()),
        proptest::option::of(arb_word()),
        proptest::collection::vec((arb_word(), arb_word()), 0..3),
    )
        .prop_map(|(ip, count, disp, from, dkim)| Record {
            source_ip: std::net::Ipv4Addr::from(ip).to_string(),
            count,
            disposition: disp.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            dkim: Some("pass".into()),
            spf: None,
            header_from: from
                .map(|s| s.trim().trim_end_matches('.').to_owned())
                .filter(|s| !s.is_empty()),
            dkim_results: dkim
                .into_iter()
                .map(|(d, r)| DkimAuth {
                    domain: d.trim().trim_end_matches('.').to_owned(),
                    result: r.trim().to_owned(),
                    ..DkimAuth::default()
                })
                .collect(),
            ..Record::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn repair_never_panics_and_always_yields_well_formed_xml(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok((out, _)) = repair_all(&input, RepairOptions::default()) {
            assert_well_formed(&out);
        }
    }

    #[test]
    fn repair_of_xml_like_noise_is_well_formed(input in "[<>/&;#a-z0-9 =\"'!?\\[\\]-]{0,300}") {
        let doc = format!("<feedback>{input}");
        if let Ok((out, _)) = repair_all(doc.as_bytes(), RepairOptions::default()) {
            assert_well_formed(&out);
        }
    }

    #[test]
    fn readers_never_panic_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_all(&input, &ReportLimits::default());
        let _ = read_tls(&input[..], &ReportLimits::default());
        let _ = sniff(&input);
    }

    #[test]
    fn reader_never_panics_on_damaged_reports(cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..8)) {
        let mut bytes = RFC7489.as_bytes().to_vec();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.min(bytes.len()));
        if let Ok((_, recs, _)) = read_all(&bytes, &ReportLimits::default()) {
            prop_assert!(recs.len() <= 2);
        }
        let mut json = RFC8460.as_bytes().to_vec();
        json.truncate(cut.min(json.len()));
        let _ = read_tls(&json[..], &ReportLimits::default());
    }

    #[test]
    fn generated_reports_read_back_exactly(records in proptest::collection::vec(arb_record(), 0..20)) {
        let mut xml = String::from("<?xml version=\"1.0\"?><feedback><report_metadata><org_name>o</org_name><report_id>1</report_id></report_metadata><policy_published><domain>d.example</domain></policy_published>");
        for r in &records {
            xml.push_str(&record_xml(r));
        }
        xml.push_str("</feedback>");
        let (_, got, notes) = read_all(xml.as_bytes(), &ReportLimits::default()).unwrap();
        prop_assert!(notes.is_empty(), "{:?}", notes);
        let want: Vec<Record> = records.into_iter().map(|mut r| {
            r.disposition = r.disposition.map(|s| s.to_ascii_lowercase());
            r.header_from = r.header_from.map(|s| s.to_ascii_lowercase());
            for d in &mut r.dkim_results {
                d.domain = d.domain.to_ascii_lowercase();
                d.result = d.result.to_ascii_lowercase();
            }
            r
        }).collect();
        prop_assert_eq!(got, want);
    }
}
