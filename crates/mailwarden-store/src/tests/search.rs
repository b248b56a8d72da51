//! Store searches return exactly what filtering the same data in memory with
//! the core's matchers returns: every `SearchQuery` field, `@domain` and
//! prefix patterns, case variants, time windows, limits.

use mailwarden_core::event::Position;
use mailwarden_core::parse::postfix::{Action, DeliveryStatus};
use mailwarden_core::parse::with_event;
use mailwarden_core::search::{SearchQuery, StatusFilter};
use mailwarden_core::stitch::{ActionRecord, ClientInfo, Delivery, MessageRecord, Origin, RecordEnd};
use mailwarden_core::time::Timestamp;
use proptest::prelude::*;

use super::*;

const ADDRS: &[&str] = &[
    "alice@example.org",
    "Bob@Example.ORG",
    "",
    "carol@sub.example.org",
    "x@b@example.org",
    "dave@other.net",
    "ALICE@example.org",
    "bob@",
];
const USERS: &[&str] = &["alice", "ALICE", "bob@example.org", "Bob@Example.org"];
const IPS: &[&str] = &[
    "192.0.2.1",
    "192.0.2.17",
    "2001:db8::1",
    "2001:DB8::2",
    "198.51.100.7",
    "unknown",
];
const MSGIDS: &[&str] = &["<a@x>", "b@y", "<b@y>", "c@z"];

const ADDR_PATTERNS: &[&str] = &[
    "alice@example.org",
    "ALICE@EXAMPLE.ORG",
    "@example.org",
    "*@EXAMPLE.org",
    "<>",
    "<bob@example.org>",
    "@b@example.org",
    "@sub.example.org",
    "@",
    "",
    "bob@",
    "@other.NET",
    "nobody@nowhere",
];
const IP_PATTERNS: &[&str] = &[
    "192.0.2.",
    "192.0.2.1",
    "2001:DB8:",
    "2001:db8:",
    "2001:DB8::2",
    "2001:db8::2",
    "198.",
    "unknown",
    "UNKNOWN",
    "10.",
];
const USER_PATTERNS: &[&str] = &["alice", "Alice", "bob@example.org", "carol"];
const QID_PATTERNS: &[&str] = &["Q1", "Q3", "R2", "N4", "q1", "4PbC4x469Jz3tB1"];
const MSGID_PATTERNS: &[&str] = &["a@x", "<a@x>", "b@y", " <b@y> ", "c@z", "zz"];
const STATUSES: &[StatusFilter] = &[
    StatusFilter::Sent,
    StatusFilter::Deferred,
    StatusFilter::Bounced,
    StatusFilter::Expired,
    StatusFilter::Rejected,
    StatusFilter::Held,
];

type DeliverySpec = (usize, Option<usize>, usize);
type RecordSpec = (
    Option<usize>,
    Vec<DeliverySpec>,
    (Option<usize>, Option<usize>, Option<usize>),
    (bool, bool, bool, Option<usize>),
    Option<(u8, u32)>,
    (u32, bool),
);

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    (
        prop::option::of(0..ADDRS.len()),
        prop::collection::vec(
            (0..ADDRS.len(), prop::option::of(0..ADDRS.len()), 0..3usize),
            0..3,
        ),
        (
            prop::option::of(0..USERS.len()),
            prop::option::of(0..IPS.len()),
            prop::option::of(0..MSGIDS.len()),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(0..4usize),
        ),
        prop::option::weighted(0.9, (0..5u8, 0..86_400u32)),
        (0..200_000u32, any::<bool>()),
    )
}

fn build_record(i: usize, s: &RecordSpec) -> MessageRecord {
    let (
        from,
        deliveries,
        (user, ip, msgid),
        (reinjected, notified, expired, action),
        first,
        (span, has_last),
    ) = s.clone();
    let first_seen = first.map(|(d, secs)| at(d, secs));
    let last_seen = match (first_seen, has_last) {
        (Some(f), true) => Some(f.plus_seconds(i64::from(span))),
        (Some(f), false) => Some(f),
        (None, true) => Some(at(2, span % 86_400)),
        (None, false) => None,
    };
    MessageRecord {
        host: Some("mx".into()),
        queue_id: format!("Q{i}"),
        reinjected_as: if reinjected {
            vec![format!("R{i}")]
        } else {
            Vec::new()
        },
        origin: Origin::Smtp,
        parent_queue_id: None,
        first_seen,
        last_seen,
        service: Some("postfix".into()),
        client: ip.map(|k| ClientInfo {
            name: "unknown".into(),
            ip: IPS[k].into(),
        }),
        sasl_method: user.map(|_| "PLAIN".into()),
        sasl_username: user.map(|k| USERS[k].into()),
        uid: None,
        message_id: msgid.map(|k| MSGIDS[k].into()),
        header_from: None,
        from: from.map(|k| ADDRS[k].into()),
        size: Some(100),
        nrcpt: Some(deliveries.len() as u32),
        deliveries: deliveries
            .iter()
            .map(|(to, orig, st)| Delivery {
                ts: first_seen,
                to: ADDRS[*to].into(),
                orig_to: orig.map(|k| ADDRS[k].into()),
                relay: "local".into(),
                agent: "virtual".into(),
                status: [
                    DeliveryStatus::Sent,
                    DeliveryStatus::Deferred,
                    DeliveryStatus::Bounced,
                ][*st],
                dsn: Some("2.0.0".into()),
                delay: Some(0.5),
                detail: "ok".into(),
            })
            .collect(),
        filter_hops: Vec::new(),
        actions: action
            .map(|k| {
                vec![ActionRecord {
                    action: [Action::Reject, Action::Hold, Action::Discard, Action::Warning][k],
                    milter: k == 0,
                    stage: "END-OF-MESSAGE".into(),
                    text: "x".into(),
                }]
            })
            .unwrap_or_default(),
        verdicts: Vec::new(),
        notification_queue_id: notified.then(|| format!("N{i}")),
        expired,
        end: RecordEnd::Removed,
        line_count: 3,
        first_position: Position {
            source: 0,
            line: i as u64 + 1,
        },
        lines: Vec::new(),
    }
}

type QuerySpec = (
    (Option<usize>, Option<usize>, Option<usize>, Option<usize>),
    (Option<usize>, Option<usize>, Option<usize>),
    (Option<(u8, u32)>, Option<(u8, u32)>),
);

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    let o = |n: usize| prop::option::weighted(0.3, 0..n);
    (
        (
            o(ADDR_PATTERNS.len()),
            o(ADDR_PATTERNS.len()),
            o(USER_PATTERNS.len()),
            o(IP_PATTERNS.len()),
        ),
        (o(QID_PATTERNS.len()), o(MSGID_PATTERNS.len()), o(STATUSES.len())),
        (
            prop::option::weighted(0.2, (0..6u8, 0..86_400u32)),
            prop::option::weighted(0.2, (0..6u8, 0..86_400u32)),
        ),
    )
}

fn build_query(s: &QuerySpec) -> SearchQuery {
    let ((sender, rcpt, user, ip), (qid, msgid, status), (since, until)) = *s;
    SearchQuery {
        sender: sender.map(|k| ADDR_PATTERNS[k].into()),
        recipient: rcpt.map(|k| ADDR_PATTERNS[k].into()),
        sasl_user: user.map(|k| USER_PATTERNS[k].into()),
        client_ip: ip.map(|k| IP_PATTERNS[k].into()),
        queue_id: qid.map(|k| QID_PATTERNS[k].into()),
        message_id: msgid.map(|k| MSGID_PATTERNS[k].into()),
        status: status.map(|k| STATUSES[k]),
        since: since.map(|(d, s)| at(d, s)),
        until: until.map(|(d, s)| at(d, s)),
    }
}

/// A Postfix or Dovecot line of one of the shapes `matches_event` and the
/// index care about, in rsyslog's format.
fn build_line(i: usize, s: &(usize, usize, usize, usize, usize, (u8, u32, usize))) -> String {
    let (shape, a, b, user, ip, (day, secs, off)) = *s;
    let t = at(day, secs);
    let offset = [0, 3600, -5 * 3600][off];
    let stamp = Timestamp {
        unix_micros: t.unix_micros,
        offset_secs: offset,
    }
    .to_string();
    let (from, to, user, ip) = (ADDRS[a], ADDRS[b], USERS[user], IPS[ip]);
    let msg = match shape {
        0 => format!(
            "postfix/smtpd[{i}]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <{to}>: Relay access denied; from=<{from}> to=<{to}> proto=ESMTP helo=<h>"
        ),
        1 => format!("postfix/smtpd[{i}]: connect from host.example[{ip}]"),
        2 => format!("postfix/smtpd[{i}]: disconnect from host.example[{ip}] ehlo=1 quit=1 commands=2"),
        3 => format!(
            "postfix/submission/smtpd[{i}]: warning: unknown[{ip}]: SASL PLAIN authentication failed: , sasl_username={user}"
        ),
        4 => format!("postfix/postscreen[{i}]: CONNECT from [{ip}]:1234 to [10.0.0.1]:25"),
        5 => format!(
            "postfix/qmgr[{i}]: 4PbC4x469Jz3tB{}: from=<{from}>, size=100, nrcpt=1 (queue active)",
            i % 10
        ),
        6 => format!("postfix/smtpd[{i}]: lost connection after AUTH from unknown[{ip}]"),
        7 => format!(
            "postfix/smtpd[{i}]: NOQUEUE: reject: VRFY from unknown[{ip}]: 454 4.7.1 <{to}>: Relay access denied; to=<{to}> proto=SMTP helo=<me>"
        ),
        8 => format!(
            "postfix/smtpd[{i}]: 4PbC4x469Jz3tB{}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}",
            i % 10
        ),
        9 => format!(
            "dovecot[{i}]: imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=10.0.0.2, mpid=1, TLS"
        ),
        _ => format!("garbage {i} {from}"),
    };
    if shape == 10 {
        msg
    } else {
        format!("{stamp} mx {msg}")
    }
}

type LineSpec = (usize, usize, usize, usize, usize, (u8, u32, usize));

fn line_spec() -> impl Strategy<Value = LineSpec> {
    (
        0..11usize,
        0..ADDRS.len(),
        0..ADDRS.len(),
        0..USERS.len(),
        0..IPS.len(),
        (0..5u8, 0..86_400u32, 0..3usize),
    )
}

fn check_messages(specs: &[RecordSpec], queries: &[QuerySpec], batches: usize) -> Result<(), TestCaseError> {
    let (_d, mut store) = temp_store();
    let recs: Vec<MessageRecord> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| build_record(i, s))
        .collect();
    for chunk in recs.chunks(recs.len().div_ceil(batches).max(1)) {
        let mut b = store.batch();
        for r in chunk {
            b.add_message(r);
        }
        store.commit(&b).unwrap();
    }
    for qs in queries {
        let q = build_query(qs);
        let mut want: Vec<&str> = recs
            .iter()
            .filter(|r| q.matches_record(r))
            .map(|r| r.queue_id.as_str())
            .collect();
        let got_recs = store.search_messages(&q, usize::MAX).unwrap();
        let mut got: Vec<&str> = got_recs.iter().map(|r| r.queue_id.as_str()).collect();
        want.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(&got, &want, "query {:?}", q);
        // A limit keeps the first results in store order.
        let limited = store.search_messages(&q, 2).unwrap();
        prop_assert_eq!(&limited[..], &got_recs[..got_recs.len().min(2)]);
    }
    Ok(())
}

fn check_lines(specs: &[LineSpec], queries: &[QuerySpec], batches: usize) -> Result<(), TestCaseError> {
    let (_d, mut store) = temp_store();
    let lines: Vec<String> = specs.iter().enumerate().map(|(i, s)| build_line(i, s)).collect();
    let mut fr = framer();
    for chunk in lines.chunks(lines.len().div_ceil(batches).max(1)) {
        let mut b = store.batch();
        add_lines(&mut b, &mut fr, "src", chunk);
        store.commit(&b).unwrap();
    }
    let mut fr = framer();
    for qs in queries {
        let q = build_query(qs);
        let mut want: Vec<&str> = lines
            .iter()
            .filter(|l| with_event(&mut fr, l, |ev| q.matches_event(ev)))
            .map(String::as_str)
            .collect();
        let got_lines = store.search_lines(&q, usize::MAX).unwrap();
        let mut got: Vec<&str> = got_lines.iter().map(|l| l.raw.as_str()).collect();
        // Store order: day, then insertion.
        let order: Vec<_> = got_lines.iter().map(|l| (l.day, l.rowid)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(order, sorted);
        want.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(&got, &want, "query {:?}", q);
        let limited = store.search_lines(&q, 3).unwrap();
        prop_assert_eq!(&limited[..], &got_lines[..got_lines.len().min(3)]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn message_search_equals_matches_record(
        specs in prop::collection::vec(record_spec(), 1..40),
        queries in prop::collection::vec(query_spec(), 1..25),
        batches in 1..4usize,
    ) {
        check_messages(&specs, &queries, batches)?;
    }

    #[test]
    fn line_search_equals_matches_event(
        specs in prop::collection::vec(line_spec(), 1..60),
        queries in prop::collection::vec(query_spec(), 1..25),
        batches in 1..4usize,
    ) {
        check_lines(&specs, &queries, batches)?;
    }
}

/// Each field on its own, over all the data: the property tests combine
/// fields at random; this makes sure every single pattern is exercised.
#[test]
fn every_field_alone() {
    let specs: Vec<RecordSpec> = (0..ADDRS.len() * 3)
        .map(|i| {
            (
                Some(i % ADDRS.len()),
                vec![((i + 1) % ADDRS.len(), Some((i + 2) % ADDRS.len()), i % 3)],
                (Some(i % USERS.len()), Some(i % IPS.len()), Some(i % MSGIDS.len())),
                (i % 2 == 0, i % 3 == 0, i % 5 == 0, Some(i % 4)),
                (i % 7 != 0).then_some(((i % 5) as u8, (i * 3607 % 86_400) as u32)),
                ((i * 7919 % 200_000) as u32, i % 2 == 1),
            )
        })
        .collect();
    let mut queries: Vec<QuerySpec> = Vec::new();
    let none = ((None, None, None, None), (None, None, None), (None, None));
    for k in 0..ADDR_PATTERNS.len() {
        let mut q = none;
        q.0.0 = Some(k);
        queries.push(q);
        let mut q = none;
        q.0.1 = Some(k);
        queries.push(q);
    }
    for k in 0..USER_PATTERNS.len() {
        let mut q = none;
        q.0.2 = Some(k);
        queries.push(q);
    }
    for k in 0..IP_PATTERNS.len() {
        let mut q = none;
        q.0.3 = Some(k);
        queries.push(q);
    }
    for k in 0..QID_PATTERNS.len() {
        let mut q = none;
        q.1.0 = Some(k);
        queries.push(q);
    }
    for k in 0..MSGID_PATTERNS.len() {
        let mut q = none;
        q.1.1 = Some(k);
        queries.push(q);
    }
    for k in 0..STATUSES.len() {
        let mut q = none;
        q.1.2 = Some(k);
        queries.push(q);
    }
    for d in 0..6u8 {
        let mut q = none;
        q.2.0 = Some((d, 40_000));
        queries.push(q);
        let mut q = none;
        q.2.1 = Some((d, 40_000));
        queries.push(q);
    }
    check_messages(&specs, &queries, 2).unwrap();

    let lines: Vec<LineSpec> = (0..11 * 8)
        .map(|i| {
            (
                i % 11,
                i % ADDRS.len(),
                (i / 11) % ADDRS.len(),
                i % USERS.len(),
                (i / 3) % IPS.len(),
                ((i % 5) as u8, (i * 977 % 86_400) as u32, i % 3),
            )
        })
        .collect();
    check_lines(&lines, &queries, 2).unwrap();
}

/// The shapes of the generated lines parse as intended (so the line property
/// test exercises the matcher, not only unparsed lines).
#[test]
fn generated_lines_parse() {
    let mut fr = framer();
    for shape in 0..10 {
        let l = build_line(shape, &(shape, 0, 5, 0, 0, (0, 100, 1)));
        let j = with_event(&mut fr, &l, |ev| serde_json::to_string(ev).unwrap());
        assert!(!j.contains("\"kind\":\"unparsed\""), "{l}\n{j}");
    }
    let q = SearchQuery {
        client_ip: Some("192.0.2.".into()),
        ..SearchQuery::default()
    };
    for shape in [0, 1, 2, 3, 6, 7] {
        let l = build_line(shape, &(shape, 0, 5, 0, 0, (0, 100, 1)));
        assert!(with_event(&mut fr, &l, |ev| q.matches_event(ev)), "{l}");
    }
}
