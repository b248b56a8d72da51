//! End to end through mailwarden itself: the logs of the lab's standard
//! scenario (real Postfix, Dovecot and swaks) are parsed with zero unparsed
//! lines, and the stitched message records, rejections and login failures
//! match what the scenario sent.

use std::collections::HashMap;

use mailwarden_testlab::{Outcome, ScenarioKind};
use serde_json::Value;

use crate::e2e_mail::standard_run;
use crate::support::mailwarden;

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn lab_logs_parse_without_unparsed_lines() {
    let run = standard_run();
    let (logs, _) = run.logs_and_expectations();
    let dir = run.lab.dir();
    for log in [&logs.mail, &logs.sink, &logs.dovecot] {
        let r = mailwarden(dir, &["logs", "parse", "--count", "--timezone", "UTC", path(log)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let doc = r.json();
        assert!(doc["lines"].as_u64().unwrap() > 0, "{} is empty", log.display());
        assert_eq!(
            doc["unparsed_by_reason"],
            serde_json::json!({}),
            "unparsed lines in {}; run `mailwarden logs parse --unparsed {}`",
            log.display(),
            log.display()
        );
    }
}

#[test]
fn lab_messages_match_what_was_sent() {
    let run = standard_run();
    let (logs, expectations) = run.logs_and_expectations();
    let dir = run.lab.dir();
    let r = mailwarden(
        dir,
        &["logs", "search", "--json", "--timezone", "UTC", path(&logs.mail)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hits = r.json_lines();
    let messages: HashMap<String, &Value> = hits
        .iter()
        .filter(|h| h["type"] == "message")
        .map(|h| (h["queue_id"].as_str().unwrap().to_owned(), h))
        .collect();
    let queued: Vec<_> = expectations.iter().filter(|e| e.queue_id.is_some()).collect();
    assert!(queued.len() >= 4, "the scenario queues several messages");
    assert_eq!(
        messages.len(),
        queued.len(),
        "one record per accepted message, no more: {hits:#?}"
    );

    for e in &queued {
        let qid = e.queue_id.as_deref().unwrap();
        let rec = messages.get(qid).unwrap_or_else(|| panic!("no record for {e}"));
        let why = format!("{e}\nrecord: {rec:#}");
        assert_eq!(rec["from"], e.sender.as_deref().unwrap(), "{why}");
        assert_eq!(rec["client"]["ip"], e.client_addr.to_string(), "{why}");
        let mid = e
            .message_id
            .as_deref()
            .unwrap()
            .trim_matches(|c| c == '<' || c == '>');
        assert_eq!(rec["message_id"], mid, "{why}");
        match (e.auth_ok, e.sasl_user.as_deref()) {
            (Some(true), Some(user)) => {
                assert_eq!(rec["sasl_username"], user, "{why}");
                assert_eq!(rec["service"], "postfix/submission", "{why}");
            }
            _ => assert!(rec.get("sasl_username").is_none(), "{why}"),
        }
        let deliveries = rec["deliveries"].as_array().unwrap();
        for r in e.accepted_recipients() {
            let want = r.outcome.postfix_status().unwrap();
            let last = deliveries
                .iter()
                .rev()
                .find(|d| d["to"] == r.address.as_str())
                .unwrap_or_else(|| panic!("no delivery to {} in {why}", r.address));
            assert_eq!(last["status"], want, "{why}");
            if r.outcome == Outcome::Relayed {
                assert_eq!(last["agent"], "smtp", "{why}");
            }
            if r.outcome == Outcome::Delivered {
                assert_eq!(last["agent"], "lmtp", "{why}");
            }
        }
        let expected_end = if e.accepted_recipients().any(|r| r.outcome == Outcome::Deferred) {
            "open"
        } else {
            "removed"
        };
        assert_eq!(rec["end"], expected_end, "{why}");
    }
}

#[test]
fn lab_rejections_and_login_failures_are_found() {
    let run = standard_run();
    let (logs, expectations) = run.logs_and_expectations();
    let dir = run.lab.dir();
    let r = mailwarden(
        dir,
        &[
            "logs",
            "search",
            "--status",
            "rejected",
            "--json",
            "--timezone",
            "UTC",
            path(&logs.mail),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rejections: Vec<Value> = r
        .json_lines()
        .into_iter()
        .filter(|h| h["type"] == "rejection")
        .collect();
    let mut expected = 0;
    for e in expectations {
        for rcpt in &e.recipients {
            let Outcome::Rejected { code_class } = rcpt.outcome else {
                continue;
            };
            expected += 1;
            let hit = rejections
                .iter()
                .find(|h| h["to"] == rcpt.address.as_str() && h["from"] == e.sender.as_deref().unwrap())
                .unwrap_or_else(|| panic!("no rejection found for {e}: {rejections:#?}"));
            assert_eq!(hit["client"]["ip"], e.client_addr.to_string());
            assert_eq!(
                hit["code"].as_u64().unwrap() / 100,
                u64::from(code_class),
                "{hit:#}"
            );
        }
    }
    assert_eq!(rejections.len(), expected);

    // The summary over all three logs counts the failed logins per user.
    let r = mailwarden(
        dir,
        &[
            "logs",
            "summary",
            "--json",
            "--timezone",
            "UTC",
            path(&logs.mail),
            path(&logs.dovecot),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = r.json();
    assert_eq!(s["lines"]["unparsed"], 0);
    let queued = expectations.iter().filter(|e| e.queue_id.is_some()).count() as u64;
    assert_eq!(s["totals"]["received"], queued, "{:#}", s["totals"]);
    assert_eq!(s["totals"]["rejected"], expected as u64);
    assert_eq!(s["totals"]["deferred"], 1);
    for e in expectations
        .iter()
        .filter(|e| e.kind == ScenarioKind::SaslFailure)
    {
        let user = e.sasl_user.as_deref().unwrap();
        let by_user = s["sasl"]["failures_by_user"].as_array().unwrap();
        assert!(
            by_user.iter().any(|c| c["key"] == user),
            "{user} not in {by_user:#?}"
        );
    }
    for e in expectations.iter().filter(|e| e.kind == ScenarioKind::ImapLogin) {
        let user = e.sasl_user.as_deref().unwrap();
        let list = if e.auth_ok == Some(true) {
            &s["dovecot_logins"]
        } else {
            &s["dovecot_failures_by_user"]
        };
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|c| c["key"].as_str().unwrap().starts_with(user)),
            "{e}: {list:#}"
        );
    }
    let users = s["sasl"]["users"].as_array().unwrap();
    assert!(users.iter().any(|u| u["user"] == "alice@lab.test"), "{users:#?}");
}
