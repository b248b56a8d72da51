//! Lines and records come back exactly as they went in.

use mailwarden_core::event::{Position, UnparsedReason};
use mailwarden_core::framing::Framed;
use mailwarden_core::parse::{parse_framed, unparsed_event};
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::{MessageRecord, StitchConfig, Stitcher};

use super::*;

/// The framing as comparable owned values.
fn framed_key(f: &Framed<'_>) -> String {
    format!(
        "{:?}|{:?}|{}|{:?}|{:?}|{}|{:?}",
        f.ts, f.host, f.program, f.pid, f.severity, f.message, f.family
    )
}

/// Ingests `lines` in `batches` commits; returns (raw, framing, event JSON)
/// per line, sorted.
fn ingest(store: &mut Store, lines: &[String], batches: usize) -> Vec<(String, Option<String>, String)> {
    let mut fr = framer();
    let mut expected = Vec::new();
    let per = lines.len().div_ceil(batches.max(1));
    for chunk in lines.chunks(per.max(1)) {
        let mut b = store.batch();
        for l in chunk {
            match fr.frame(l) {
                Ok(f) => {
                    let ev = parse_framed(&f);
                    b.add_line("file:/var/log/mail.log", received(), l, Some(&f), &ev);
                    expected.push((
                        l.clone(),
                        Some(framed_key(&f)),
                        serde_json::to_string(&ev).unwrap(),
                    ));
                }
                Err(reason) => {
                    let ev = unparsed_event(reason);
                    b.add_line("file:/var/log/mail.log", received(), l, None, &ev);
                    expected.push((l.clone(), None, serde_json::to_string(&ev).unwrap()));
                }
            }
        }
        store.commit(&b).unwrap();
    }
    expected.sort();
    expected
}

fn replayed(store: &Store) -> Vec<(String, Option<String>, String)> {
    let mut got = Vec::new();
    let n = store
        .replay(None, None, |l| {
            got.push((
                l.raw.to_owned(),
                l.framed.as_ref().map(framed_key),
                serde_json::to_string(&l.event()).unwrap(),
            ));
        })
        .unwrap();
    assert_eq!(n as usize, got.len());
    got.sort();
    got
}

#[test]
fn replay_gives_the_same_framing_and_events() {
    let (_d, mut store) = temp_store();
    let mut lines = sample("mail.log.gz");
    lines.extend(sample("dovecot.log.gz"));
    lines.extend(variety());
    let expected = ingest(&mut store, &lines, 3);
    let got = replayed(&store);
    assert_eq!(got.len(), lines.len());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g);
    }
    // Every kind of line is covered.
    assert!(
        expected.iter().any(|(_, f, _)| f.is_none()),
        "an unframeable line"
    );
    assert!(expected.iter().any(|(_, _, j)| j.contains("\"unparsed\"")));
    assert!(
        expected
            .iter()
            .any(|(_, _, j)| j.contains("\"kind\":\"dovecot\""))
    );
    assert!(
        expected
            .iter()
            .any(|(_, _, j)| j.contains("\"kind\":\"postfix\""))
    );
    // Owned (unescaped) messages are stored as text and come back too.
    assert!(
        got.iter()
            .any(|(_, f, _)| f.as_deref().is_some_and(|f| f.contains("\"quoted\"")))
    );

    // The owned form gives the same events, and the same counts.
    let st = store.stats().unwrap();
    assert_eq!(st.lines as usize, lines.len());
    let unparsed = expected
        .iter()
        .filter(|(_, _, j)| j.contains("\"kind\":\"unparsed\""))
        .count();
    assert_eq!(st.unparsed as usize, unparsed);
    let all = store.lines_after(None, usize::MAX).unwrap();
    let mut owned: Vec<_> = all
        .iter()
        .map(|(_, l)| {
            (
                l.raw.clone(),
                l.as_framed().as_ref().map(framed_key),
                l.with_event(|ev| serde_json::to_string(ev).unwrap()),
            )
        })
        .collect();
    owned.sort();
    assert_eq!(owned.len(), expected.len());
    for (o, e) in owned.iter().zip(&expected) {
        assert_eq!(o, e);
    }
}

#[test]
fn stored_reason_of_lines_that_never_framed() {
    let (_d, mut store) = temp_store();
    let mut b = store.batch();
    let cut = "x".repeat(100);
    b.add_line(
        "s",
        received(),
        &cut,
        None,
        &unparsed_event(UnparsedReason::TooLong),
    );
    b.add_line(
        "s",
        received(),
        "\u{1}\u{2}",
        None,
        &unparsed_event(UnparsedReason::Binary),
    );
    store.commit(&b).unwrap();
    let mut reasons = Vec::new();
    store
        .replay(None, None, |l| {
            assert!(l.framed.is_none());
            assert_eq!(l.received, received());
            reasons.push(serde_json::to_string(&l.event()).unwrap());
        })
        .unwrap();
    assert_eq!(reasons.len(), 2);
    assert!(reasons[0].contains("too_long"), "{reasons:?}");
    assert!(reasons[1].contains("binary"), "{reasons:?}");
    // Untimed lines are filed under the receive day.
    let st = store.stats().unwrap();
    assert_eq!(st.days.len(), 1);
    assert_eq!(
        st.days[0].date,
        crate::day::date_of(crate::day::day_of(received()))
    );
}

#[test]
fn replay_positions_and_time_window() {
    let (_d, mut store) = temp_store();
    let lines = variety();
    ingest(&mut store, &lines, 1);
    let mut positions = Vec::new();
    store.replay(None, None, |l| positions.push(l.position)).unwrap();
    let lines_per_source: Vec<u64> = positions.iter().map(|p| p.line).collect();
    assert_eq!(lines_per_source, (1..=lines.len() as u64).collect::<Vec<_>>());
    assert!(
        positions
            .iter()
            .all(|p: &Position| p.source == positions[0].source)
    );

    // Only 2023-03-14 00:00:31..=00:00:33 UTC+1.
    let since = mailwarden_core::time::parse_rfc3339_prefix(b"2023-03-14T00:00:31+01:00")
        .unwrap()
        .0;
    let until = mailwarden_core::time::parse_rfc3339_prefix(b"2023-03-14T00:00:33.5+01:00")
        .unwrap()
        .0;
    let inside = |l: &crate::ReplayLine<'_>| {
        let ts = l.framed.as_ref().and_then(|f| f.ts).unwrap_or(l.received);
        ts >= since && ts <= until
    };
    let mut want = Vec::new();
    store
        .replay(None, None, |l| {
            if inside(&l) {
                want.push(l.raw.to_owned());
            }
        })
        .unwrap();
    let mut got = Vec::new();
    store
        .replay(Some(since), Some(until), |l| {
            assert!(inside(&l), "{}", l.raw);
            got.push(l.raw.to_owned());
        })
        .unwrap();
    assert_eq!(got, want);
    assert!(got.len() >= 2, "{got:?}");
}

fn stitched(lines: &[String]) -> Vec<MessageRecord> {
    let mut fr = framer();
    let mut st = Stitcher::new(StitchConfig {
        capture_lines: true,
        ..StitchConfig::default()
    });
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        mailwarden_core::parse::with_event(&mut fr, l, |ev| st.feed(pos, l, ev));
        while let Some(r) = st.pop() {
            out.push(r);
        }
    }
    st.finish();
    while let Some(r) = st.pop() {
        out.push(r);
    }
    out
}

#[test]
fn message_records_round_trip() {
    let (_d, mut store) = temp_store();
    let recs = stitched(&sample("mail.log.gz"));
    assert!(recs.len() >= 5, "{}", recs.len());
    let mut b = store.batch();
    for r in &recs {
        b.add_message(r);
    }
    let stats = store.commit(&b).unwrap();
    assert_eq!(stats.messages as usize, recs.len());
    let mut got = store
        .search_messages(&SearchQuery::default(), usize::MAX)
        .unwrap();
    let mut want = recs.clone();
    got.sort_by(|a, b| a.queue_id.cmp(&b.queue_id));
    want.sort_by(|a, b| a.queue_id.cmp(&b.queue_id));
    assert_eq!(got, want);
    // Limit.
    assert_eq!(
        store.search_messages(&SearchQuery::default(), 2).unwrap().len(),
        2
    );
    assert!(
        store
            .search_messages(&SearchQuery::default(), 0)
            .unwrap()
            .is_empty()
    );

    // A record's own lines, by queue id.
    let mut b = store.batch();
    let mut fr = framer();
    add_lines(&mut b, &mut fr, "s", &sample("mail.log.gz"));
    store.commit(&b).unwrap();
    let r = want.iter().find(|r| !r.lines.is_empty()).unwrap();
    let lines = store.message_lines(r, usize::MAX).unwrap();
    for captured in &r.lines {
        if r.all_queue_ids()
            .any(|q| captured.text.contains(&format!("{q}:")))
        {
            assert!(lines.iter().any(|l| l.raw == captured.text), "{}", captured.text);
        }
    }
    assert!(lines.iter().all(|l| r.all_queue_ids().any(|q| l.raw.contains(q))));
}

/// The whole production log from the benchmark data (`bench/logs.sh`
/// prepares it; opt-in with --ignored): every line round-trips, and searches over
/// real values equal filtering in memory. Slow in debug builds: run with
/// `cargo test --release -p mailwarden-store -- --ignored`.
#[test]
#[ignore]
fn production_log_round_trip() {
    let path = workspace().join("bench/data/mail.1x.log");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; prepare it with bench/logs.sh (or bench/store.sh) first",
            path.display()
        )
    });
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (_d, mut store) = temp_store();
    let expected = ingest(&mut store, &lines, 7);
    assert_eq!(replayed(&store), expected);

    let recs = stitched(&lines);
    let mut b = store.batch();
    for r in &recs {
        b.add_message(r);
    }
    store.commit(&b).unwrap();
    let queries: Vec<SearchQuery> = [
        ("sender", "postmaster@mailer-service.de"),
        ("sender", "@GMX.de"),
        ("sender", "<>"),
        ("recipient", "@uhu-banane.de"),
        ("client_ip", "185.48.118.128"),
        ("client_ip", "176.111."),
        ("client_ip", "2a01:"),
        ("sasl_user", "user01.test"),
        ("status", "rejected"),
        ("status", "bounced"),
    ]
    .iter()
    .map(|(field, v)| {
        let mut q = SearchQuery::default();
        match *field {
            "sender" => q.sender = Some((*v).into()),
            "recipient" => q.recipient = Some((*v).into()),
            "client_ip" => q.client_ip = Some((*v).into()),
            "sasl_user" => q.sasl_user = Some((*v).into()),
            _ => q.status = v.parse().ok(),
        }
        q
    })
    .collect();
    let mut fr = framer();
    for q in &queries {
        let mut want: Vec<String> = recs
            .iter()
            .filter(|r| q.matches_record(r))
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let mut got: Vec<String> = store
            .search_messages(q, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{q:?}");
        let records = got.len();
        let mut want: Vec<&str> = lines
            .iter()
            .filter(|l| mailwarden_core::parse::with_event(&mut fr, l, |ev| q.matches_event(ev)))
            .map(String::as_str)
            .collect();
        let found = store.search_lines(q, usize::MAX).unwrap();
        let mut got: Vec<&str> = found.iter().map(|l| l.raw.as_str()).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{q:?}");
        eprintln!("{q:?}: {records} records, {} lines", got.len());
    }
}
