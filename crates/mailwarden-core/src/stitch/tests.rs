use super::*;
use crate::framing::{Format, Framer, FramerConfig};
use crate::parse::parse_framed;
use crate::time::{TimeContext, parse_rfc3339_prefix};

fn run(cfg: StitchConfig, lines: &[&str]) -> (Vec<MessageRecord>, StitchStats) {
    let reference = parse_rfc3339_prefix(b"2023-12-31T00:00:00Z").unwrap().0;
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(reference),
    });
    let mut st = Stitcher::new(cfg);
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let framed = framer.frame(line).expect("frames");
        let ev = parse_framed(&framed);
        assert!(!ev.kind.is_unparsed(), "unparsed: {line}");
        st.feed(
            Position {
                source: 0,
                line: i as u64 + 1,
            },
            line,
            &ev,
        );
        out.extend(std::iter::from_fn(|| st.pop()));
    }
    st.finish();
    out.extend(std::iter::from_fn(|| st.pop()));
    (out, st.stats().clone())
}

/// One message through amavis, re-injected on port 10025 (production log,
/// lines 89–102). The parent is removed before the copy is delivered.
const REINJECTION: &[&str] = &[
    "2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: 4PbC4x469Jz3tBr: client=mail.nistoresio.co.cz[185.31.160.120]",
    "2023-03-14T00:08:33.628392+01:00 helga postfix/cleanup[302604]: 4PbC4x469Jz3tBr: message-id=<71816687N65284230Y01410375Q67285060N@ajmyjyz>",
    "2023-03-14T00:08:33.787870+01:00 helga postfix/qmgr[3163066]: 4PbC4x469Jz3tBr: from=<ajmyjyz@nistoresio.co.cz>, size=175061, nrcpt=1 (queue active)",
    "2023-03-14T00:08:35.917122+01:00 helga postfix/10025/smtpd[302614]: 4PbC4z6W5Qz3tG3: client=localhost[127.0.0.1]",
    "2023-03-14T00:08:35.921013+01:00 helga postfix/cleanup[302604]: 4PbC4z6W5Qz3tG3: message-id=<71816687N65284230Y01410375Q67285060N@ajmyjyz>",
    "2023-03-14T00:08:35.925875+01:00 helga postfix/qmgr[3163066]: 4PbC4z6W5Qz3tG3: from=<ajmyjyz@nistoresio.co.cz>, size=175919, nrcpt=1 (queue active)",
    "2023-03-14T00:08:35.948047+01:00 helga postfix/amavis/smtp[302609]: 4PbC4x469Jz3tBr: to=<user01.test@uhu-banane.net>, orig_to=<frank@brehm-berlin.de>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)",
    "2023-03-14T00:08:35.948639+01:00 helga postfix/qmgr[3163066]: 4PbC4x469Jz3tBr: removed",
    "2023-03-14T00:08:36.037018+01:00 helga postfix/pipe[302615]: 4PbC4z6W5Qz3tG3: to=<user01.test@uhu-banane.net>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)",
    "2023-03-14T00:08:36.037498+01:00 helga postfix/qmgr[3163066]: 4PbC4z6W5Qz3tG3: removed",
];

#[test]
fn reinjected_message_counts_once() {
    let (recs, stats) = run(StitchConfig::default(), REINJECTION);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r.queue_id, "4PbC4x469Jz3tBr");
    assert_eq!(r.reinjected_as, vec!["4PbC4z6W5Qz3tG3"]);
    assert_eq!(r.origin, Origin::Smtp);
    assert_eq!(r.client.as_ref().unwrap().ip, "185.31.160.120");
    assert_eq!(r.from.as_deref(), Some("ajmyjyz@nistoresio.co.cz"));
    assert_eq!(
        r.size,
        Some(175_061),
        "the size entering the system, not the filtered copy's"
    );
    assert_eq!(r.end, RecordEnd::Removed);
    assert_eq!(r.filter_hops.len(), 1);
    assert_eq!(r.deliveries.len(), 1);
    assert_eq!(r.deliveries[0].relay, "dovecot");
    assert_eq!(r.deliveries[0].status, DeliveryStatus::Sent);
    assert_eq!(r.line_count, 10);
    assert_eq!(stats.merged_reinjections, 1);
}

#[test]
fn reinjection_linked_by_queued_as_when_child_finishes_first() {
    // The copy is delivered and removed before the parent's filter delivery line.
    let order = [0, 1, 2, 3, 4, 5, 8, 9, 6, 7];
    let lines: Vec<&str> = order.iter().map(|&i| REINJECTION[i]).collect();
    let (recs, _) = run(StitchConfig::default(), &lines);
    // The copy carries the same Message-ID from a loopback client, so it links
    // at its cleanup line and waits for the parent.
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].deliveries.len(), 1);
}

#[test]
fn reinjection_linked_without_message_id() {
    // No cleanup lines: only `queued as` links the copies.
    let lines: Vec<&str> = REINJECTION
        .iter()
        .copied()
        .filter(|l| !l.contains("message-id="))
        .collect();
    let (recs, _) = run(StitchConfig::default(), &lines);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].reinjected_as, vec!["4PbC4z6W5Qz3tG3"]);
}

#[test]
fn nethserver_trace_is_one_message() {
    // ../shared/corpus/logs/mailflow-trace (NethServer docs), Postfix lines only.
    let lines = [
        "May 15 02:05:02 mail postfix/smtpd[25846]: A785B308622AB: client=my.example.com[10.154.200.17]",
        "May 15 02:05:02 mail postfix/cleanup[25849]: A785B308622AB: message-id=<5afa242e.hP5p/mry+fTNNjms%no-reply@example.com>",
        "May 15 02:05:03 mail postfix/qmgr[27757]: A785B308622AB: from=<no-reply@example.com>, size=2597, nrcpt=1 (queue active)",
        "May 15 02:05:03 mail postfix/lmtp[25854]: A785B308622AB: to=<vmail+jsmith@mail.mynethserver.org>, orig_to=<jsmith@example.com>, relay=mail.mynethserver.org[/var/run/dovecot/lmtp], delay=0.82, delays=0.8/0.01/0.01/0.01, dsn=2.0.0, status=sent (250 2.0.0 <vmail+jsmith@mail.mynethserver.org> gK8pHS8k+lr/ZAAAJc5BcA Saved)",
        "May 15 02:05:03 mail postfix/qmgr[27757]: A785B308622AB: removed",
    ];
    let (recs, _) = run(StitchConfig::default(), &lines);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        r.message_id.as_deref(),
        Some("5afa242e.hP5p/mry+fTNNjms%no-reply@example.com")
    );
    assert_eq!(r.deliveries[0].orig_to.as_deref(), Some("jsmith@example.com"));
    assert_eq!(r.deliveries[0].agent, "lmtp");
    assert!(
        r.filter_hops.is_empty(),
        "an LMTP socket delivery without `queued as` is final"
    );
    assert_eq!(r.outcomes().len(), 1);
}

#[test]
fn idle_messages_are_evicted_not_dropped() {
    let lines = [
        "2023-03-14T00:00:00+00:00 h postfix/smtpd[1]: AAAAAA1: client=a[192.0.2.1]",
        "2023-03-14T00:00:01+00:00 h postfix/qmgr[2]: AAAAAA1: from=<a@x>, size=10, nrcpt=1 (queue active)",
        "2023-03-14T00:00:02+00:00 h postfix/smtp[3]: AAAAAA1: to=<b@y>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to y[192.0.2.2]:25: Connection refused)",
        "2023-03-14T03:00:00+00:00 h postfix/smtpd[1]: BBBBBB2: client=a[192.0.2.1]",
    ];
    let cfg = StitchConfig {
        horizon_secs: 3600,
        ..StitchConfig::default()
    };
    let (recs, stats) = run(cfg, &lines);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].queue_id.as_str(), recs[0].end),
        ("AAAAAA1", RecordEnd::Evicted)
    );
    assert_eq!(recs[0].outcomes()[0].status, DeliveryStatus::Deferred);
    assert_eq!(
        (recs[1].queue_id.as_str(), recs[1].end),
        ("BBBBBB2", RecordEnd::Open)
    );
    assert_eq!((stats.evicted, stats.open_at_end), (1, 1));
}

#[test]
fn open_cap_evicts_oldest() {
    let lines: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "2023-03-14T00:00:{:02}+00:00 h postfix/smtpd[1]: A{:06X}: client=a[192.0.2.1]",
                i, i
            )
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let cfg = StitchConfig {
        max_open: 10,
        ..StitchConfig::default()
    };
    let (recs, stats) = run(cfg, &refs);
    assert_eq!(recs.len(), 50, "every message is emitted");
    assert!(stats.evicted >= 40);
    assert_eq!(recs[0].queue_id, "A000000", "the oldest goes first");
}

#[test]
fn bounce_notification_and_milter_reject() {
    let lines = [
        "2023-03-16T02:27:29+01:00 helga postfix/smtpd[1]: 4PcV4K5FPLz3tBr: client=x[192.0.2.1]",
        "2023-03-16T02:27:29+01:00 helga postfix/qmgr[2]: 4PcV4K5FPLz3tBr: from=<root@x>, size=100, nrcpt=1 (queue active)",
        "2023-03-16T02:27:29+01:00 helga postfix/smtp[3]: 4PcV4K5FPLz3tBr: to=<a@nowhere.invalid>, relay=none, delay=0.1, delays=0/0/0.1/0, dsn=5.4.4, status=bounced (Host or domain name not found)",
        "2023-03-16T02:27:29+01:00 helga postfix/bounce[4]: 4PcV4K5FPLz3tBr: sender non-delivery notification: 4PcV4K5tFpz3tG5",
        "2023-03-16T02:27:29+01:00 helga postfix/qmgr[2]: 4PcV4K5tFpz3tG5: from=<>, size=2000, nrcpt=1 (queue active)",
        "2023-03-16T02:27:29+01:00 helga postfix/qmgr[2]: 4PcV4K5FPLz3tBr: removed",
        "2023-03-16T02:27:30+01:00 helga postfix/local[5]: 4PcV4K5tFpz3tG5: to=<root@x>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)",
        "2023-03-16T02:27:30+01:00 helga postfix/qmgr[2]: 4PcV4K5tFpz3tG5: removed",
        "2023-03-16T02:28:00+01:00 helga postfix/smtpd[1]: 4PcV4K6AAAz3tBr: client=spam[192.0.2.9]",
        "2023-03-16T02:28:01+01:00 helga postfix/cleanup[6]: 4PcV4K6AAAz3tBr: milter-reject: END-OF-MESSAGE from spam[192.0.2.9]: 5.7.1 Spam message rejected; from=<s@spam> to=<u@x> proto=ESMTP helo=<spam>",
    ];
    let (recs, _) = run(StitchConfig::default(), &lines);
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert_eq!(recs[0].notification_queue_id.as_deref(), Some("4PcV4K5tFpz3tG5"));
    assert_eq!(recs[1].origin, Origin::Notification);
    assert_eq!(recs[1].parent_queue_id.as_deref(), Some("4PcV4K5FPLz3tBr"));
    assert_eq!(recs[2].end, RecordEnd::Rejected);
    assert_eq!(recs[2].actions[0].action, Action::Reject);
}

#[test]
fn capture_keeps_lines() {
    let cfg = StitchConfig {
        capture_lines: true,
        ..StitchConfig::default()
    };
    let (recs, _) = run(cfg, REINJECTION);
    assert_eq!(recs[0].lines.len(), REINJECTION.len());
    assert!(recs[0].lines.iter().any(|l| l.text.contains("relay=dovecot")));
}

#[test]
fn records_roundtrip_through_json() {
    // The store keeps records as JSON and reads them back for `--store` queries.
    let (recs, _) = run(StitchConfig::default(), REINJECTION);
    let json = serde_json::to_string(&recs[0]).unwrap();
    let back: MessageRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, recs[0]);
}

#[test]
fn logged_from_header_is_kept_beside_the_envelope_sender() {
    let (recs, _) = run(
        StitchConfig::default(),
        &[
            "Dec  5 01:06:29 mail postfix/submission/smtpd[5559]: 44A53990451: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=carol@lab.test",
            "Dec  5 01:06:29 mail postfix/cleanup[5563]: 44A53990451: info: header From: Payroll <Payroll@Lab.test> from unknown[127.0.0.1]; from=<carol@lab.test> to=<staff@remote.test> proto=ESMTP helo=<vm>",
            "Dec  5 01:06:29 mail postfix/qmgr[5561]: 44A53990451: from=<carol@lab.test>, size=433, nrcpt=1 (queue active)",
            "Dec  5 01:06:29 mail postfix/qmgr[5561]: 44A53990451: removed",
        ],
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].from.as_deref(), Some("carol@lab.test"));
    assert_eq!(recs[0].header_from.as_deref(), Some("payroll@lab.test"));
}

#[test]
fn header_from_addresses() {
    assert_eq!(
        header_from_address("From: A <a@b.test>").as_deref(),
        Some("a@b.test")
    );
    assert_eq!(header_from_address("from:a@b.test").as_deref(), Some("a@b.test"));
    assert_eq!(
        header_from_address("From: \"x, y\" <X@B.test>").as_deref(),
        Some("x@b.test")
    );
    assert_eq!(
        header_from_address("From: a@b.test (A)").as_deref(),
        Some("a@b.test")
    );
    assert_eq!(header_from_address("Subject: a@b.test"), None);
    assert_eq!(header_from_address("From: undisclosed"), None);
    assert_eq!(header_from_address("From: <>"), None);
}

proptest::proptest! {
    #[test]
    fn header_from_never_panics(s in "\\PC{0,80}") {
        let _ = header_from_address(&s);
        let _ = header_from_address(&format!("From: {s}"));
    }
}
