use super::*;
use crate::event::Position;
use crate::framing::{Format, Framer, FramerConfig};
use crate::parse::parse_framed;
use crate::stitch::{StitchConfig, Stitcher};
use crate::time::{TimeContext, parse_rfc3339_prefix};

fn ts(s: &str) -> Timestamp {
    parse_rfc3339_prefix(s.as_bytes()).unwrap().0
}

/// Frames, parses and stitches lab log lines (year 2026); returns the records
/// and the account events, and fills a coverage.
fn run(lines: &[&str], cov: &mut Coverage) -> (Vec<(MessageRecord, String)>, Vec<AccountEvent>) {
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(ts("2026-12-31T00:00:00Z")),
    });
    let mut st = Stitcher::new(StitchConfig::default());
    let mut recs = Vec::new();
    let mut acc = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let framed = framer.frame(line).expect("frames");
        let ev = parse_framed(&framed);
        assert!(!ev.kind.is_unparsed(), "unparsed: {line}");
        if let Some(t) = ev.ts {
            cov.add(t);
        }
        let src = format!("mail.log:{}", i + 1);
        if let Some(a) = account_event(&ev, &src) {
            acc.push(a);
        }
        st.feed(
            Position {
                source: 0,
                line: i as u64 + 1,
            },
            line,
            &ev,
        );
        recs.extend(std::iter::from_fn(|| st.pop()).map(|r| {
            let s = format!("mail.log:{}", r.first_position.line);
            (r, s)
        }));
    }
    st.finish();
    recs.extend(std::iter::from_fn(|| st.pop()).map(|r| {
        let s = format!("mail.log:{}", r.first_position.line);
        (r, s)
    }));
    (recs, acc)
}

const AUTHENTICATED: &[&str] = &[
    "Dec 04 21:15:30 mail dovecot: imap-login: Disconnected: Connection closed (auth failed, 3 attempts in 6 secs): user=<carol@lab.test>, method=PLAIN, rip=203.0.113.9, lip=127.0.0.1, session=<abc>",
    "Dec 04 21:15:33 mail postfix/submission/smtpd[4627]: 9A6E498E0FD: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=carol@lab.test",
    "Dec 04 21:15:33 mail postfix/cleanup[4631]: 9A6E498E0FD: message-id=<sample.0013@lab.test>",
    "Dec 04 21:15:33 mail postfix/qmgr[4619]: 9A6E498E0FD: from=<carol@lab.test>, size=425, nrcpt=1 (queue active)",
    "Dec 04 21:15:33 mail postfix/smtp[4632]: 9A6E498E0FD: to=<friend1@remote.test>, relay=127.0.0.1[127.0.0.1]:38567, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9B1B798E12A)",
    "Dec 04 21:15:33 mail postfix/qmgr[4619]: 9A6E498E0FD: removed",
];

const RELAYED: &[&str] = &[
    "Dec 04 21:16:00 mail postfix/smtpd[4700]: 1AAAA98E100: client=localhost[127.0.0.1]",
    "Dec 04 21:16:00 mail postfix/cleanup[4631]: 1AAAA98E100: message-id=<relay.1@lab.test>",
    "Dec 04 21:16:00 mail postfix/qmgr[4619]: 1AAAA98E100: from=<xyovt@lab.test>, size=425, nrcpt=1 (queue active)",
    "Dec 04 21:16:00 mail postfix/smtp[4632]: 1AAAA98E100: to=<victim@remote.test>, relay=127.0.0.1[127.0.0.1]:38567, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9B1B798E199)",
    "Dec 04 21:16:00 mail postfix/qmgr[4619]: 1AAAA98E100: removed",
];

const INBOUND_SPOOF: &[&str] = &[
    "Dec 04 21:15:35 mail postfix/smtpd[4641]: 0BD0498E13B: client=unknown[127.0.0.6]",
    "Dec 04 21:15:35 mail postfix/cleanup[4631]: 0BD0498E13B: message-id=<sample.0044@lab.test>",
    "Dec 04 21:15:35 mail postfix/qmgr[4619]: 0BD0498E13B: from=<ceo@lab.test>, size=425, nrcpt=1 (queue active)",
    "Dec 04 21:15:35 mail postfix/lmtp[4638]: 0BD0498E13B: to=<alice@lab.test>, relay=mail.lab.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <alice@lab.test> ACn8AnctE2sgEgAAg+zDdQ Saved)",
    "Dec 04 21:15:35 mail postfix/qmgr[4619]: 0BD0498E13B: removed",
];

fn input_for(address: &str, lines: &[&str], since: &str, until: &str) -> Input {
    let mut coverage = Coverage::default();
    let (recs, acc) = run(lines, &mut coverage);
    let recs = recs
        .into_iter()
        .filter(|(r, _)| r.from.as_deref() == Some(address))
        .collect();
    Input {
        address: address.to_owned(),
        since: Some(ts(since)),
        until: Some(ts(until)),
        messages: recs,
        account_events: acc,
        coverage,
        directory: None,
        our_domains: vec!["lab.test".into()],
        samples: Vec::new(),
        posture: None,
    }
}

#[test]
fn an_authenticated_account_sending_is_ours_and_named() {
    let inv = investigate(input_for(
        "carol@lab.test",
        AUTHENTICATED,
        "2026-12-04T00:00:00Z",
        "2026-12-04T23:00:00Z",
    ));
    assert_eq!(inv.verdict, Verdict::SentByUsAuthenticated);
    assert_eq!(inv.confidence, Confidence::High);
    assert!(
        inv.summary.contains("carol@lab.test (1 messages)"),
        "{}",
        inv.summary
    );
    let a = &inv.accounts["carol@lab.test"];
    assert_eq!((a.messages, a.auth_failures), (1, 3));
    assert!(a.failing_ips.contains("203.0.113.9"));
    assert!(
        inv.reasons.iter().any(|r| r.contains("9A6E498E0FD (mail.log:2)")),
        "{:?}",
        inv.reasons
    );
    assert!(
        inv.recommendations
            .iter()
            .any(|r| r.contains("reset the password"))
    );
    assert_eq!(inv.messages[0].recipient_domains, vec!["remote.test"]);
    assert_eq!(inv.messages[0].outcomes["sent"], 1);
    assert_eq!(inv.timeline["2026-12-04 21"], 1);
}

#[test]
fn an_unknown_address_sent_by_an_account_names_the_missing_sender_check() {
    // The incident: an account sends as an address that is no mailbox.
    let lines: Vec<String> = AUTHENTICATED
        .iter()
        .map(|l| l.replace("from=<carol@lab.test>", "from=<xyovt@lab.test>"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut input = input_for(
        "xyovt@lab.test",
        &lines,
        "2026-12-04T00:00:00Z",
        "2026-12-04T23:00:00Z",
    );
    input.directory = Some(DirectoryFacts {
        kind: "unknown".into(),
        domain_known: true,
        source: "test".into(),
        ..DirectoryFacts::default()
    });
    let inv = investigate(input);
    assert_eq!(inv.verdict, Verdict::SentByUsAuthenticated);
    assert!(
        inv.reasons.iter().any(|r| r.contains("no mailbox or alias")),
        "{:?}",
        inv.reasons
    );
    assert_eq!(inv.accounts["carol@lab.test"].may_send_as, Some(false));
    assert!(
        inv.reasons
            .iter()
            .any(|r| r.contains("not allowed to send as xyovt@lab.test")),
        "{:?}",
        inv.reasons
    );
    assert!(inv.summary.contains("carol@lab.test"), "{}", inv.summary);
}

#[test]
fn unauthenticated_relay_to_a_foreign_domain_is_critical() {
    let inv = investigate(input_for(
        "xyovt@lab.test",
        RELAYED,
        "2026-12-04T00:00:00Z",
        "2026-12-04T23:00:00Z",
    ));
    assert_eq!(inv.verdict, Verdict::RelayedByUsUnauthenticated);
    assert!(inv.summary.contains("localhost[127.0.0.1]"), "{}", inv.summary);
    assert!(inv.recommendations[0].starts_with("Critical"));
}

#[test]
fn no_outgoing_record_in_covered_time_is_spoofing() {
    let mut lines = AUTHENTICATED.to_vec();
    lines.extend_from_slice(INBOUND_SPOOF);
    let inv = investigate(input_for(
        "ceo@lab.test",
        &lines,
        "2026-12-04T00:00:00Z",
        "2026-12-04T23:00:00Z",
    ));
    assert_eq!(inv.verdict, Verdict::SpoofedExternally);
    assert_eq!(inv.confidence, Confidence::High, "an inbound spoof was seen");
    assert_eq!(inv.counts["inbound"], 1);
    assert!(inv.coverage_gaps.is_empty());
}

#[test]
fn missing_days_make_absence_inconclusive() {
    // The logs cover 2026-12-04 only; the window starts on the 1st.
    let inv = investigate(input_for(
        "ceo@lab.test",
        AUTHENTICATED,
        "2026-12-01T00:00:00Z",
        "2026-12-04T23:00:00Z",
    ));
    assert_eq!(inv.verdict, Verdict::Inconclusive);
    assert_eq!(
        inv.coverage_gaps,
        vec![("2026-12-01".to_owned(), "2026-12-03".to_owned())]
    );
    assert!(
        inv.missing
            .iter()
            .any(|m| m == "logs for 2026-12-01 .. 2026-12-03"),
        "{:?}",
        inv.missing
    );
    // No logs at all.
    let inv = investigate(Input {
        address: "x@lab.test".into(),
        since: Some(ts("2026-12-01T00:00:00Z")),
        until: Some(ts("2026-12-02T00:00:00Z")),
        ..Input::default()
    });
    assert_eq!(inv.verdict, Verdict::Inconclusive);
    assert!(inv.missing[0].contains("none was found"));
}

#[test]
fn coverage_gaps_are_whole_days_inside_the_window() {
    let mut c = Coverage::default();
    c.add(ts("2026-12-02T10:00:00Z"));
    c.add(ts("2026-12-04T10:00:00Z"));
    assert_eq!(
        c.gaps(ts("2026-12-01T05:00:00Z"), ts("2026-12-05T01:00:00Z")),
        vec![
            ("2026-12-01".to_owned(), "2026-12-01".to_owned()),
            ("2026-12-03".to_owned(), "2026-12-03".to_owned()),
            ("2026-12-05".to_owned(), "2026-12-05".to_owned()),
        ]
    );
    let mut d = Coverage::default();
    d.add_day(day_of(ts("2026-12-03T00:00:00Z")), 10);
    assert!(
        d.gaps(ts("2026-12-03T01:00:00Z"), ts("2026-12-03T20:00:00Z"))
            .is_empty()
    );
    assert_eq!(d.first, Some(ts("2026-12-03T00:00:00Z")));
}

#[test]
fn an_authenticated_sample_without_logs_still_names_the_account() {
    let raw = b"Received: from laptop (unknown [203.0.113.5])\r\n\
        \t(Authenticated sender: carol@lab.test)\r\n\
        \tby mail.lab.test (Postfix) with ESMTPSA id 4QAbc1Def2;\r\n\
        \tFri, 04 Dec 2026 10:00:00 +0000 (UTC)\r\n\
        From: <xyovt@lab.test>\r\nSubject: x\r\n\r\nbody\r\n";
    let cfg = crate::sample::SampleConfig {
        our_hosts: vec!["mail.lab.test".into()],
        ..crate::sample::SampleConfig::default()
    };
    let analysis = crate::sample::analyze(raw, &cfg);
    let inv = investigate(Input {
        address: "xyovt@lab.test".into(),
        since: Some(ts("2026-12-01T00:00:00Z")),
        until: Some(ts("2026-12-05T00:00:00Z")),
        samples: vec![SampleEvidence {
            name: "spam.eml".into(),
            analysis,
            matched_queue_ids: Vec::new(),
            reverified: None,
        }],
        ..Input::default()
    });
    assert_eq!(inv.verdict, Verdict::SentByUsAuthenticated, "{inv:#?}");
    assert_eq!(inv.confidence, Confidence::Medium);
    assert!(inv.summary.contains("carol@lab.test"), "{}", inv.summary);
    assert!(
        inv.missing
            .iter()
            .any(|m| m.contains("mail logs of the sending time"))
    );
}

fn facts(dmarc: Option<&str>, policy: Option<&str>, pct: Option<u8>, spf_all: Option<&str>) -> PostureFacts {
    PostureFacts {
        domain: "example.com".into(),
        spf: spf_all.map(|a| format!("v=spf1 mx {a}")),
        spf_all: spf_all.map(str::to_owned),
        dmarc: dmarc.map(str::to_owned),
        dmarc_domain: dmarc.map(|_| "example.com".to_owned()),
        dmarc_policy: policy.map(str::to_owned),
        dmarc_pct: pct,
        ..PostureFacts::default()
    }
}

#[test]
fn posture_decides_whether_spoofs_are_rejected() {
    let a = assess_posture(facts(
        Some("v=DMARC1; p=reject"),
        Some("reject"),
        None,
        Some("-all"),
    ));
    assert_eq!(a.spoofs, "reject");
    assert!(a.changes.is_empty(), "{a:?}");

    let a = assess_posture(facts(
        Some("v=DMARC1; p=reject; pct=50"),
        Some("reject"),
        Some(50),
        Some("-all"),
    ));
    assert_eq!(a.spoofs, "partial");
    assert!(a.changes[0].contains("pct=50"), "{a:?}");

    let a = assess_posture(facts(
        Some("v=DMARC1; p=quarantine"),
        Some("quarantine"),
        None,
        Some("~all"),
    ));
    assert_eq!(a.spoofs, "quarantine");
    assert!(a.changes[0].contains("p=reject"), "{a:?}");

    let a = assess_posture(facts(Some("v=DMARC1; p=none"), Some("none"), None, Some("+all")));
    assert_eq!(a.spoofs, "accept");
    assert!(a.changes.iter().any(|c| c.contains("+all")), "{a:?}");

    let a = assess_posture(facts(None, None, None, None));
    assert_eq!(a.spoofs, "accept");
    assert!(
        a.changes.iter().any(|c| c.contains("_dmarc.example.com")),
        "{a:?}"
    );
    assert!(a.changes.iter().any(|c| c.contains("Publish SPF")), "{a:?}");

    let mut f = facts(None, None, None, None);
    f.errors.push("_dmarc.example.com TXT: timeout".into());
    assert_eq!(assess_posture(f).spoofs, "unknown");

    // A finding's fix is carried into the changes.
    let mut f = facts(Some("v=DMARC1; p=reject"), Some("reject"), None, Some("-all"));
    f.problems.push(
        crate::posture::Finding::new(
            "spf.lookups.exceeded",
            crate::posture::Area::Spf,
            crate::posture::Severity::Fail,
            "example.com",
            "SPF needs 12 DNS lookups",
        )
        .fix("flatten includes"),
    );
    let a = assess_posture(f);
    assert_eq!(
        a.changes,
        ["SPF needs 12 DNS lookups (spf.lookups.exceeded): flatten includes"]
    );
}
