//! User-rule tests: every modifier both ways, the condition grammar,
//! counting (threshold, distinct, group-by, sliding windows, quiet periods
//! and episodes), message rules, errors with their positions, the field
//! list against real events, and property tests (no panics, determinism).
//! Events are real log lines parsed by the real parsers.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::super::tests::{
    Out, at, auth_unknown, imap_fail, imap_login, pool, relay_denied, retime, sasl_fail, sogo_fail, sogo_ok,
    submission,
};
use super::cond::{self, Expr};
use super::fields::{EVENT_FIELDS, EventView};
use super::*;
use crate::detect::{Alert, DetectConfig, Engine, sort_alerts};
use crate::event::Position;
use crate::framing::{Format, Framer, FramerConfig};
use crate::parse::with_event;
use crate::stitch::{StitchConfig, Stitcher};
use crate::time::{TimeContext, Timestamp};

const BASE: i64 = super::super::tests::BASE;

fn framer() -> Framer {
    Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(BASE + 400 * 86_400)),
    })
}

#[track_caller]
fn compile(yaml: &str) -> RuleSet {
    RuleSet::parse("test.yaml", yaml).unwrap_or_else(|e| panic!("rules do not compile:\n{e}\n---\n{yaml}"))
}

#[track_caller]
fn errors(yaml: &str) -> Vec<RuleError> {
    match RuleSet::parse("bad.yaml", yaml) {
        Ok(_) => panic!("rules compile but should not:\n{yaml}"),
        Err(e) => e.0,
    }
}

/// A one-rule file with `body` (indented by 4) after id, title and severity.
fn rule(body: &str) -> String {
    let mut s = String::from("rules:\n  - id: t\n    title: Test rule\n    severity: medium\n");
    for l in body.lines() {
        s.push_str("    ");
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Runs the rules of `yaml` alone (no built-in rule) over `lines`, with the
/// stitcher, and returns the alerts.
fn run(yaml: &str, lines: &[String]) -> Vec<Alert> {
    run_with(yaml, lines, |c| c).0
}

fn run_with(
    yaml: &str,
    lines: &[String],
    cfg: impl FnOnce(DetectConfig) -> DetectConfig,
) -> (Vec<Alert>, Engine) {
    let set = compile(yaml);
    let ids: Vec<String> = set.rules().iter().map(|r| r.id.clone()).collect();
    let cfg = cfg(DetectConfig {
        rules: Some(ids),
        user_rules: Arc::new(set),
        our_domains: vec!["example.org".into()],
        ..DetectConfig::default()
    });
    let mut engine = Engine::new(cfg).expect("config");
    let mut fr = framer();
    let mut st = Stitcher::new(StitchConfig::default());
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut fr, line, |ev| {
            engine.feed_event(pos, line, ev);
            st.feed(pos, line, ev);
        });
        while let Some(r) = st.pop() {
            engine.feed_record(&r);
        }
    }
    st.finish();
    while let Some(r) = st.pop() {
        engine.feed_record(&r);
    }
    engine.finish();
    let mut alerts = engine.take_alerts();
    sort_alerts(&mut alerts);
    (alerts, engine)
}

/// Whether the selection (YAML lines under `selection:`) matches `line`.
#[track_caller]
fn matches(selection: &str, line: &str) -> bool {
    let mut body = String::from("detection:\n  selection:\n");
    for l in selection.lines() {
        body.push_str("    ");
        body.push_str(l);
        body.push('\n');
    }
    let set = compile(&rule(&body));
    let r = &set.rules()[0];
    let mut fr = framer();
    let mut memo = Vec::new();
    with_event(&mut fr, line, |ev| {
        assert!(!ev.kind.is_unparsed(), "test line does not parse: {line}");
        let keys: Vec<Box<str>> = r.json_keys().into_iter().map(Into::into).collect();
        r.detection.matches(&EventView::new(ev, line, &keys), &mut memo)
    })
}

// --- Modifiers. ---

#[test]
fn equality_ignores_case_and_lists_mean_any() {
    let l = sogo_ok(0, "203.0.113.5", "Alice@Example.ORG");
    assert!(matches("kind: sogo\nevent: login_succeeded", &l));
    assert!(matches("user: alice@example.org", &l));
    assert!(matches("user: [bob@example.org, ALICE@example.org]", &l));
    assert!(!matches("user: [bob@example.org, carol@example.org]", &l));
    assert!(!matches("kind: dovecot", &l));
    assert!(!matches("user: alice", &l));
    // A number compares numerically.
    let d = imap_fail(0, "198.51.100.9", "bob@example.org", 3);
    assert!(matches("attempts: 3", &d));
    assert!(matches("attempts: 3.0", &d));
    assert!(!matches("attempts: 4", &d));
}

#[test]
fn wildcards_without_a_modifier() {
    let l = sogo_ok(0, "203.0.113.5", "alice@example.org");
    assert!(matches("user: 'alice@*'", &l));
    assert!(matches("user: '*@EXAMPLE.org'", &l));
    assert!(matches("user: 'al?ce@example.org'", &l));
    assert!(matches("user: '*'", &l));
    assert!(!matches("user: 'bob@*'", &l));
    assert!(!matches("user: 'al?e@example.org'", &l));
    // Escaped: a literal asterisk.
    assert!(!matches("user: 'alice\\*'", &l));
    let star = sogo_ok(0, "203.0.113.5", "alice*");
    assert!(matches("user: 'alice\\*'", &star));
}

#[test]
fn contains_startswith_endswith() {
    let l = sogo_ok(0, "203.0.113.5", "alice@example.org");
    assert!(matches("user|contains: CE@EX", &l));
    assert!(!matches("user|contains: bob", &l));
    assert!(matches("user|startswith: ALI", &l));
    assert!(!matches("user|startswith: lice", &l));
    assert!(matches("user|endswith: '@example.org'", &l));
    assert!(!matches("user|endswith: '@example.net'", &l));
    // `all`: every value must match.
    assert!(matches("user|contains|all: [alice, example]", &l));
    assert!(!matches("user|contains|all: [alice, bob]", &l));
    // The raw line.
    assert!(matches("line|contains: successful login", &l));
}

#[test]
fn regular_expressions() {
    let l = sogo_ok(0, "203.0.113.5", "alice@example.org");
    assert!(matches("user|re: '^[a-z]+@example\\.(org|net)$'", &l));
    assert!(!matches("user|re: '^[0-9]+@'", &l));
    // Case-sensitive unless (?i).
    assert!(!matches("user|re: '^ALICE'", &l));
    assert!(matches("user|re: '(?i)^ALICE'", &l));
}

#[test]
fn networks() {
    let l = sogo_ok(0, "203.0.113.5", "alice@example.org");
    assert!(matches("client_ip|cidr: 203.0.113.0/24", &l));
    assert!(matches("client_ip|cidr: [198.51.100.0/24, 203.0.113.5]", &l));
    assert!(!matches("client_ip|cidr: 203.0.112.0/24", &l));
    let v6 = imap_login(0, "2001:db8::7", "bob@example.org");
    assert!(matches("client_ip|cidr: '2001:db8::/32'", &v6));
    assert!(!matches("client_ip|cidr: 203.0.113.0/24", &v6));
    // IPv4-mapped addresses count as IPv4.
    let mapped = imap_login(0, "::ffff:203.0.113.9", "bob@example.org");
    assert!(matches("client_ip|cidr: 203.0.113.0/24", &mapped));
    // Nested JSON field.
    let s = sasl_fail(0, "203.0.113.5", None);
    assert!(matches("client.ip|cidr: 203.0.113.0/24", &s));
}

#[test]
fn numeric_comparisons() {
    let d = imap_fail(0, "198.51.100.9", "bob@example.org", 3);
    assert!(matches("attempts|gt: 2", &d));
    assert!(!matches("attempts|gt: 3", &d));
    assert!(matches("attempts|gte: 3", &d));
    assert!(!matches("attempts|gte: 4", &d));
    assert!(matches("attempts|lt: 4", &d));
    assert!(!matches("attempts|lt: 3", &d));
    assert!(matches("attempts|lte: 3", &d));
    assert!(!matches("attempts|lte: 2.5", &d));
    // Not a number: no match.
    assert!(!matches("user|gt: 1", &d));
}

#[test]
fn exists_and_null() {
    let with = sasl_fail(0, "203.0.113.5", Some("alice@example.org"));
    let without = sasl_fail(0, "203.0.113.5", None);
    assert!(matches("sasl_username|exists: true", &with));
    assert!(!matches("sasl_username|exists: true", &without));
    assert!(matches("sasl_username|exists: false", &without));
    assert!(matches("sasl_username: null", &without));
    assert!(!matches("sasl_username: null", &with));
    assert!(matches("sasl_username: [null, alice@example.org]", &with));
    assert!(matches("sasl_username: [null, alice@example.org]", &without));
}

#[test]
fn aliases_cover_every_family() {
    let s = sasl_fail(0, "203.0.113.5", Some("alice@example.org"));
    assert!(matches(
        "client_ip: 203.0.113.5\nuser: alice@example.org\nprogram: postfix/submission/smtpd\nhost: mx",
        &s
    ));
    let amavis = format!(
        "{} mx amavis[1234]: (1234-02) Passed SPAMMY, ORIGINATING/MYNETS LOCAL [10.0.0.1] [10.0.0.1] \
         <from@example.com> -> <to1@sample.net>,<to2@sample.net>, quarantine: spam-EzEbE9W, Message-ID: \
         <11780394@example.com>, mail_id: EzEbE9W, Hits: 6.364, size: 16493, queued_as: 2A4C31E0F5, 2310 ms",
        at(0)
    );
    assert!(matches(
        "kind: amavis\nsender: from@example.com\nrecipient: to2@sample.net\nclient_ip: 10.0.0.1",
        &amavis
    ));
    let nginx = format!(
        "{} mx nginx[1]: 82.32.1.35 - ryan@example.eu [31/Oct/2017:00:09:13 +0000] \"POST \
         /autodiscover/autodiscover.xml HTTP/1.0\" 401 0 \"-\" \"Android-Mail/7.9\"",
        at(0)
    );
    assert!(matches(
        "kind: nginx\nclient_ip: 82.32.1.35\nuser: ryan@example.eu\nstatus: 401",
        &nginx
    ));
    let netfilter = format!("{} mx netfilter[1]: Banning 203.0.113.7/32 for 30 minutes", at(0));
    assert!(matches(
        "kind: netfilter\nevent: ban\nclient_ip|cidr: 203.0.113.0/24",
        &netfilter
    ));
}

// --- The condition. ---

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

/// Evaluates `cond` over selections a, b, c with the truth values `bits`.
fn truth(cond: &str, bits: [bool; 3]) -> bool {
    let e = cond::parse(cond, &names(&["a", "b", "c"])).unwrap_or_else(|e| panic!("{cond}: {e:?}"));
    e.eval(&mut |i| bits[i])
}

fn all_bits() -> Vec<[bool; 3]> {
    (0..8).map(|n| [n & 1 != 0, n & 2 != 0, n & 4 != 0]).collect()
}

#[test]
fn condition_precedence_and_parentheses() {
    for b in all_bits() {
        let [a, bb, c] = b;
        assert_eq!(truth("a or b and not c", b), a || (bb && !c), "{b:?}");
        assert_eq!(truth("(a or b) and not c", b), (a || bb) && !c, "{b:?}");
        assert_eq!(truth("not a and b", b), !a && bb, "{b:?}");
        assert_eq!(truth("not (a and b)", b), !(a && bb), "{b:?}");
        assert_eq!(truth("a AND NOT (b OR c)", b), a && !(bb || c), "{b:?}");
        assert_eq!(truth("not not a", b), a, "{b:?}");
    }
}

#[test]
fn condition_quantifiers() {
    let n = names(&["sel_a", "sel_b", "filter", "_helper"]);
    let e = cond::parse("1 of sel* and not filter", &n).unwrap();
    assert_eq!(
        e,
        Expr::And(vec![
            Expr::Or(vec![Expr::Sel(0), Expr::Sel(1)]),
            Expr::Not(Box::new(Expr::Sel(2)))
        ])
    );
    assert_eq!(
        cond::parse("all of them", &n).unwrap(),
        Expr::And(vec![Expr::Sel(0), Expr::Sel(1), Expr::Sel(2)])
    );
    assert_eq!(
        cond::parse("any of *_b", &n).unwrap(),
        Expr::Or(vec![Expr::Sel(1)])
    );
    let two = cond::parse("2 of them", &n).unwrap();
    for b in all_bits() {
        let want = b.iter().filter(|x| **x).count() >= 2;
        assert_eq!(two.eval(&mut |i| b[i]), want, "{b:?}");
    }
    // Mistakes.
    for bad in [
        "sel_a and",
        "(sel_a or sel_b",
        "sel_a sel_b",
        "1 of nothing*",
        "5 of them",
        "0 of them",
        "sel*",
        "and",
        "",
        "sel_a )",
        "sel_a & sel_b",
        "1 sel_a",
        "all of",
        "missing",
    ] {
        assert!(cond::parse(bad, &n).is_err(), "{bad:?} should not parse");
    }
    let e = cond::parse("sel_a and nope", &n).unwrap_err();
    assert_eq!(e.offset, 10);
    assert!(e.fix.contains("sel_a"), "{e:?}");
    // Depth is bounded.
    let deep = format!("{}sel_a{}", "(".repeat(100), ")".repeat(100));
    assert!(cond::parse(&deep, &n).is_err());
}

#[test]
fn a_rule_with_a_filter() {
    let yaml = rule(
        "detection:\n  selection:\n    kind: sogo\n    event: login_succeeded\n  filter:\n    \
         user|endswith: '@example.org'\n  condition: selection and not filter",
    );
    let lines = vec![
        sogo_ok(0, "203.0.113.5", "alice@example.org"),
        sogo_ok(10, "203.0.113.5", "mallory@evil.example"),
        sogo_fail(20, "203.0.113.5", "mallory@evil.example"),
    ];
    let alerts = run(&yaml, &lines);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].rule, "t");
    assert_eq!(alerts[0].title, "Test rule");
    assert_eq!(alerts[0].severity, AlertSeverity::Medium);
    assert_eq!(alerts[0].count, 1);
    assert_eq!(alerts[0].evidence[0].position.line, 2);
    assert_eq!(
        alerts[0].facts.get("user").map(Vec::as_slice),
        Some(&["mallory@evil.example".to_owned()][..])
    );
}

// --- Counting. ---

const FAILS: &str = "detection:\n  selection:\n    kind: [postfix, dovecot]\n    event: [sasl_auth_failed, \
                     login_aborted]\n";

#[test]
fn threshold_in_a_sliding_window_per_key() {
    let yaml = rule(&format!(
        "{FAILS}group_by: [client_ip]\ntimeframe: 5m\nthreshold: 5"
    ));
    // Four in five minutes: nothing.
    let four: Vec<String> = (0..4).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    assert!(run(&yaml, &four).is_empty());
    // Five within 300 s (both edges inside): one alert.
    let five: Vec<String> = (0..5).map(|i| sasl_fail(i * 75, "203.0.113.5", None)).collect();
    let a = run(&yaml, &five);
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].key, "client_ip=203.0.113.5");
    assert_eq!(a[0].count, 5);
    assert!(
        a[0].message.contains("5 matching events within 5 min"),
        "{}",
        a[0].message
    );
    // One second more between the first and the fifth: the window slides.
    let spread: Vec<String> = (0..5).map(|i| sasl_fail(i * 76, "203.0.113.5", None)).collect();
    assert!(run(&yaml, &spread).is_empty());
    // Sliding: failures 0..9 a minute apart, the first five fill a window.
    let many: Vec<String> = (0..10).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    let a = run(&yaml, &many);
    assert_eq!(a.len(), 1, "{a:#?}");
    // Opened at the fifth, extended by the next five.
    assert_eq!(a[0].count, 10);
    // Group-by: five each from two addresses are two keys; five spread over
    // two addresses are none.
    let mut two: Vec<String> = Vec::new();
    for i in 0..5 {
        two.push(sasl_fail(i * 10, "203.0.113.5", None));
        two.push(imap_fail(i * 10 + 1, "198.51.100.9", "bob@example.org", 1));
    }
    let a = run(&yaml, &two);
    let keys: Vec<&str> = a.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, vec!["client_ip=203.0.113.5", "client_ip=198.51.100.9"]);
    let mixed: Vec<String> = (0..5)
        .map(|i| sasl_fail(i, if i % 2 == 0 { "203.0.113.5" } else { "203.0.113.6" }, None))
        .collect();
    assert!(run(&yaml, &mixed).is_empty());
}

#[test]
fn without_group_by_one_key_for_the_rule() {
    let yaml = rule(&format!("{FAILS}timeframe: 5m\nthreshold: 3"));
    let lines: Vec<String> = (0..3)
        .map(|i| sasl_fail(i, &format!("203.0.113.{i}"), None))
        .collect();
    let a = run(&yaml, &lines);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].key, "*");
    // Facts name the addresses (client_ip is a default fact).
    assert_eq!(a[0].facts["client_ip"].len(), 3);
}

#[test]
fn distinct_values() {
    let yaml = rule(
        "detection:\n  selection:\n    kind: dovecot\n    event: login_aborted\ngroup_by: client_ip\n\
         distinct: user\ntimeframe: 10m\nthreshold: 3",
    );
    // The same user many times: one distinct value.
    let same: Vec<String> = (0..10)
        .map(|i| imap_fail(i, "198.51.100.9", "bob@example.org", 1))
        .collect();
    assert!(run(&yaml, &same).is_empty());
    let users: Vec<String> = ["a", "b", "a", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, u)| imap_fail(i as i64, "198.51.100.9", &format!("{u}@example.org"), 1))
        .collect();
    let a = run(&yaml, &users);
    assert_eq!(a.len(), 1, "{a:#?}");
    // Opened at c (a, b, c), extended by d.
    assert_eq!(a[0].count, 4);
    assert_eq!(a[0].facts["user"].len(), 4);
    assert!(
        a[0].message.contains("3 distinct user within 10 min"),
        "{}",
        a[0].message
    );
}

#[test]
fn quiet_periods_split_episodes() {
    let yaml = rule(&format!("{FAILS}group_by: client_ip\nquiet: 10m"));
    // Every match alerts (threshold 1); matches within 10 min extend it.
    let mut lines: Vec<String> = (0..3).map(|i| sasl_fail(i * 300, "203.0.113.5", None)).collect();
    // 10 min and 1 s after the last: a new episode.
    lines.push(sasl_fail(600 + 601, "203.0.113.5", None));
    let a = run(&yaml, &lines);
    assert_eq!(a.len(), 2, "{a:#?}");
    assert_eq!(a[0].count, 3);
    assert_eq!(a[1].count, 1);
    assert_eq!(
        a[0].last.unix_micros / 1_000_000 - a[0].first.unix_micros / 1_000_000,
        600
    );
    // The default quiet period is the timeframe, at least 60 s.
    let r = compile(&rule(&format!("{FAILS}timeframe: 5s")));
    assert_eq!(r.rules()[0].quiet_secs, 60);
    let r = compile(&rule(&format!("{FAILS}timeframe: 1h")));
    assert_eq!(r.rules()[0].quiet_secs, 3600);
}

#[test]
fn message_rules() {
    let yaml = "rules:\n\
                \x20 - id: spread\n\
                \x20   title: Mail to many domains\n\
                \x20   severity: high\n\
                \x20   source: messages\n\
                \x20   detection:\n\
                \x20     selection:\n\
                \x20       authenticated: true\n\
                \x20       sender_domain: example.org\n\
                \x20   group_by: sasl_username\n\
                \x20   distinct: recipient_domain\n\
                \x20   timeframe: 1h\n\
                \x20   threshold: 4\n\
                \x20 - id: bounced\n\
                \x20   title: Bounced mail\n\
                \x20   severity: low\n\
                \x20   source: messages\n\
                \x20   detection:\n\
                \x20     selection:\n\
                \x20       status: bounced\n\
                \x20       recipient|endswith: '@y.example'\n";
    let mut lines = Vec::new();
    lines.extend(submission(
        0,
        1,
        "carol@example.org",
        "203.0.113.44",
        "carol@example.org",
        &[("a@x.example", Out::Sent), ("b@y.example", Out::Bounced)],
    ));
    lines.extend(submission(
        60,
        2,
        "carol@example.org",
        "203.0.113.44",
        "carol@example.org",
        &[
            ("c@z.example", Out::Sent),
            ("d@w.example", Out::Sent),
            ("e@x.example", Out::Sent),
        ],
    ));
    let a = run(yaml, &lines);
    let rules: Vec<&str> = a.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(rules, vec!["bounced", "spread"], "{a:#?}");
    let spread = &a[1];
    assert_eq!(spread.key, "sasl_username=carol@example.org");
    assert_eq!(spread.count, 4);
    assert_eq!(spread.evidence[0].kind, crate::detect::EvidenceKind::Message);
    assert!(
        spread.evidence[0]
            .text
            .as_deref()
            .unwrap_or("")
            .starts_with("message ")
    );
    // Message fields are checked against the message list.
    let e = errors(&yaml.replace("sender_domain", "kind"));
    assert!(
        e[0].message.contains("unknown field `kind` (source: messages)"),
        "{e:?}"
    );
}

#[test]
fn keywords_search_the_raw_line() {
    let yaml = rule("detection:\n  keywords:\n    - 'Relay access DENIED'\n    - 'no such thing'");
    let a = run(
        &yaml,
        &[
            relay_denied(0, "45.141.84.120"),
            sogo_ok(1, "192.0.2.1", "a@example.org"),
        ],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].evidence[0].position.line, 1);
}

#[test]
fn user_rules_run_beside_the_built_ins_and_are_selectable() {
    let set = compile(&rule(&format!(
        "{FAILS}group_by: client_ip\nthreshold: 10\ntimeframe: 10m"
    )));
    let ten: Vec<String> = (0..10).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    let cfg = DetectConfig {
        user_rules: Arc::new(set.clone()),
        ..DetectConfig::default()
    };
    let mut engine = Engine::new(cfg).unwrap();
    let mut fr = framer();
    for (i, l) in ten.iter().enumerate() {
        with_event(&mut fr, l, |ev| {
            engine.feed_event(
                Position {
                    source: 0,
                    line: i as u64 + 1,
                },
                l,
                ev,
            )
        });
    }
    engine.finish();
    let rules: BTreeSet<String> = engine.take_alerts().into_iter().map(|a| a.rule).collect();
    assert!(
        rules.contains("t") && rules.contains("auth-bruteforce-ip"),
        "{rules:?}"
    );
    let stats = engine.stats();
    assert_eq!(stats.rules.len(), RULES.len() + 1);
    assert_eq!(stats.rules.last().map(|r| r.rule.as_str()), Some("t"));
    // Selecting only the built-in leaves the user rule off, and the reverse.
    let only = Engine::new(DetectConfig {
        rules: Some(vec!["auth-bruteforce-ip".into()]),
        user_rules: Arc::new(set.clone()),
        ..DetectConfig::default()
    })
    .unwrap();
    assert!(!only.stats().rules.last().unwrap().enabled);
    let only = Engine::new(DetectConfig {
        rules: Some(vec!["t".into()]),
        user_rules: Arc::new(set),
        ..DetectConfig::default()
    })
    .unwrap();
    let on: Vec<String> = only
        .stats()
        .rules
        .into_iter()
        .filter(|r| r.enabled)
        .map(|r| r.rule)
        .collect();
    assert_eq!(on, vec!["t".to_owned()]);
}

#[test]
fn user_rule_state_is_capped() {
    let yaml = rule(&format!(
        "{FAILS}group_by: client_ip\nthreshold: 5\ntimeframe: 1h"
    ));
    let lines: Vec<String> = (0..3000)
        .map(|i| sasl_fail(i, &format!("10.0.{}.{}", i / 256, i % 256), None))
        .collect();
    let (_, engine) = run_with(&yaml, &lines, |c| DetectConfig { max_keys: 100, ..c });
    let s = engine.stats();
    let t = s.rules.iter().find(|r| r.rule == "t").unwrap();
    assert!(t.keys <= 100 && t.peak_keys <= 100, "{t:?}");
    assert!(t.evictions > 0);
}

#[test]
fn json_is_made_only_when_a_rule_needs_it() {
    let set = compile(&rule(
        "detection:\n  selection:\n    kind: dovecot\n    rip|cidr: 198.51.100.0/24",
    ));
    let r = &set.rules()[0];
    let keys: Vec<Box<str>> = r.json_keys().into_iter().map(Into::into).collect();
    assert_eq!(keys, vec!["rip".into()]);
    let mut fr = framer();
    let mut memo = Vec::new();
    // A Postfix line fails at `kind`: no serialization.
    let l = sasl_fail(0, "203.0.113.5", None);
    with_event(&mut fr, &l, |ev| {
        let v = EventView::new(ev, &l, &keys);
        assert!(!r.detection.matches(&v, &mut memo));
        assert!(!v.serialized());
    });
    let l = imap_fail(0, "198.51.100.9", "bob@example.org", 1);
    with_event(&mut fr, &l, |ev| {
        let v = EventView::new(ev, &l, &keys);
        assert!(r.detection.matches(&v, &mut memo));
        assert!(v.serialized());
    });
}

#[test]
fn rules_skip_events_of_other_kinds_at_once() {
    let kinds = |body: &str| compile(&rule(body)).rules()[0].detection.kinds;
    let bit = super::eval::kind_bit;
    assert_eq!(kinds("detection:\n  s:\n    kind: sogo"), bit("sogo"));
    assert_eq!(
        kinds("detection:\n  s:\n    kind: [sogo, Dovecot]\n    user: x"),
        bit("sogo") | bit("dovecot")
    );
    // Or: the union; and: the intersection; not: anything.
    assert_eq!(
        kinds("detection:\n  a:\n    kind: sogo\n  b:\n    kind: nginx\n  condition: a or b"),
        bit("sogo") | bit("nginx")
    );
    assert_eq!(
        kinds("detection:\n  a:\n    kind: [sogo, nginx]\n  b:\n    kind: nginx\n  condition: a and b"),
        bit("nginx")
    );
    assert_eq!(
        kinds("detection:\n  a:\n    kind: sogo\n  condition: not a"),
        super::eval::ALL_KINDS
    );
    // A list of alternatives, one without a kind: anything.
    assert_eq!(
        kinds("detection:\n  s:\n    - kind: sogo\n    - user: x"),
        super::eval::ALL_KINDS
    );
    assert_eq!(kinds("detection:\n  s:\n    kind: 'so*'"), super::eval::ALL_KINDS);
}

// --- Errors and their positions. ---

/// (line, column) of `token` on 1-based `line` of `text`.
#[track_caller]
fn pos(text: &str, line: usize, token: &str) -> (usize, usize) {
    let l = text
        .lines()
        .nth(line - 1)
        .unwrap_or_else(|| panic!("no line {line}"));
    let col = l
        .find(token)
        .unwrap_or_else(|| panic!("{token:?} not on line {line}: {l:?}"));
    (line, l[..col].chars().count() + 1)
}

#[track_caller]
fn has(errs: &[RuleError], at: (usize, usize), what: &str) {
    assert!(
        errs.iter()
            .any(|e| (e.line, e.column) == at && e.message.contains(what) && !e.fix.is_empty()),
        "no error {what:?} at {at:?} in:\n{}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
    );
}

const BAD: &str = "\
rules:
  - id: Bad_Id
    title: Bad id and an unknown key
    severity: low
    colour: red
    detection:
      selection:
        kind: postfix
  - id: unknown-things
    title: Unknown modifier and field
    severity: urgent
    detection:
      selection:
        client_ip|cidrr: 10.0.0.0/8
        usr: alice
  - id: bad-values
    title: Bad values
    severity: high
    detection:
      selection:
        user|re: '(unclosed'
        client_ip|cidr: [192.0.2.0/24, 300.1.1.1/8]
    timeframe: 10x
    threshold: 0
  - id: bad-condition
    title: A condition naming nothing
    severity: low
    detection:
      selection:
        kind: sogo
      condition: selection and nope
  - id: auth-bruteforce-ip
    title: Built-in id
    severity: low
    detection:
      selection:
        kind: sogo
  - id: twice
    title: First
    severity: low
    detection:
      selection:
        kind: sogo
  - id: twice
    title: Second
    severity: low
    threshold: 3
    detection:
      selection:
        kind: sogo
      unused:
        kind: dovecot
      condition: selection
";

#[test]
fn every_mistake_is_reported_with_its_position() {
    let e = errors(BAD);
    has(&e, pos(BAD, 2, "Bad_Id"), "is not of lowercase letters");
    has(&e, pos(BAD, 5, "colour"), "unknown key `colour`");
    has(&e, pos(BAD, 11, "urgent"), "unknown severity `urgent`");
    has(&e, pos(BAD, 14, "client_ip|cidrr"), "unknown modifier `cidrr`");
    has(&e, pos(BAD, 15, "usr"), "unknown field `usr`");
    has(&e, pos(BAD, 21, "'(unclosed'"), "bad regular expression");
    has(&e, pos(BAD, 22, "300.1.1.1/8"), "`300.1.1.1/8` is no network");
    has(&e, pos(BAD, 23, "10x"), "not a duration");
    has(&e, pos(BAD, 24, "0"), "`threshold` is 0");
    // Inside the condition string, at the name.
    has(&e, pos(BAD, 31, "nope"), "no selection of this rule");
    has(&e, pos(BAD, 32, "auth-bruteforce-ip"), "built-in rule");
    // The duplicate is reported at the second id.
    has(
        &e,
        pos(BAD, 44, "twice"),
        "already used by the rule at bad.yaml:38",
    );
    has(&e, pos(BAD, 44, "id"), "counts matches but has no `timeframe`");
    has(&e, pos(BAD, 51, "unused"), "not used by the condition");
    // Fixes say what to do.
    let usr = e.iter().find(|x| x.message.contains("`usr`")).unwrap();
    assert!(usr.fix.contains("`user`"), "{usr}");
    let cidrr = e.iter().find(|x| x.message.contains("cidrr")).unwrap();
    assert!(cidrr.fix.contains("`cidr`"), "{cidrr}");
    // FILE:LINE:COL: message; fix: …
    assert!(
        e[0].to_string().starts_with("bad.yaml:2:9: the id `Bad_Id`"),
        "{}",
        e[0]
    );
    // Sorted by position.
    let at: Vec<(usize, usize)> = e.iter().map(|x| (x.line, x.column)).collect();
    let mut sorted = at.clone();
    sorted.sort();
    assert_eq!(at, sorted);
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let text = "rules:\n  - id: x\n    title: [unclosed\n    severity: low\n";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("YAML: "), "{}", e[0]);
    assert!(e[0].line >= 3, "{}", e[0]);
    let text = "rules:\n  - id: x\n    id: y\n";
    let e = errors(text);
    // serde_yaml_ng places a duplicate key at its mapping.
    assert!(
        e[0].message.contains("duplicate entry with key \"id\""),
        "{}",
        e[0]
    );
    assert_eq!((e[0].line, e[0].column), (2, 5), "{}", e[0]);
    // Not a rule file at all.
    for (t, what) in [
        ("", "holds no rules"),
        ("- a\n- b\n", "not a mapping"),
        ("rule:\n  - id: x\n", "unknown top-level key `rule`"),
        ("rules: 5\n", "`rules` is a number"),
    ] {
        let e = errors(t);
        assert!(e.iter().any(|x| x.message.contains(what)), "{t:?}: {e:?}");
    }
}

#[test]
fn more_mistakes() {
    for (body, line, token, what) in [
        (
            "detection:\n  selection:\n    kind: sogo\n    user|contains|endswith: x",
            8,
            "user|contains|endswith",
            "two match modifiers",
        ),
        (
            "detection:\n  selection:\n    user|exists: yes",
            7,
            "yes",
            "not true or false",
        ),
        (
            "detection:\n  selection:\n    attempts|gt: many",
            7,
            "many",
            "not a number",
        ),
        ("detection:\n  selection:\n    user: []", 7, "[]", "empty list"),
        ("detection:\n  selection: {}", 6, "{}", "empty selection"),
        (
            "detection:\n  a:\n    kind: sogo\n  b:\n    kind: dovecot",
            6,
            "a:",
            "no `condition`",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\ngroup_by: [client_ip, nope]",
            8,
            "nope",
            "unknown field `nope`",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\ndistinct: nope\ntimeframe: 1m\nthreshold: 2",
            8,
            "nope",
            "unknown field",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\nquiet: 30s",
            8,
            "30s",
            "out of range",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\nsource: files",
            8,
            "files",
            "`source` is `files`",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\nattack: [T10]",
            8,
            "T10",
            "no ATT&CK technique",
        ),
        (
            "detection:\n  selection:\n    kind: sogo\nthreshold: 1000001\ntimeframe: 1m",
            8,
            "1000001",
            "`threshold` is",
        ),
        (
            "detection:\n  and:\n    kind: sogo",
            6,
            "and",
            "cannot name a selection",
        ),
        (
            "detection:\n  selection:\n    kind: [sogo, sogoo]",
            7,
            "sogoo",
            "no event has the kind `sogoo`",
        ),
    ] {
        let text = rule(body);
        let e = errors(&text);
        has(&e, pos(&text, line, token), what);
    }
    // At the end of the condition: one past its last character.
    let text = rule("detection:\n  selection:\n    kind: sogo\n  condition: selection or (");
    let e = errors(&text);
    let (l, c) = pos(&text, 8, "(");
    has(&e, (l, c + 1), "ends where");
    // Missing required keys: at the rule.
    let text = "rules:\n  - title: x\n    detection:\n      sel:\n        kind: sogo\n";
    let e = errors(text);
    has(&e, (2, 5), "no `id`");
    has(&e, (2, 5), "no `severity`");
}

#[test]
fn rule_text_and_line_are_kept() {
    let text = "# header\nrules:\n  # first\n  - id: one\n    title: One\n    severity: low\n    detection:\n      \
                s:\n        kind: sogo\n\n  - id: two   # second\n    title: Two\n    severity: low\n    \
                detection:\n      s: {kind: dovecot}\n";
    let set = compile(text);
    let one = set.get("one").unwrap();
    assert_eq!(one.line, 4);
    assert!(
        one.text.starts_with("id: one\n") || one.text.contains("- id: one"),
        "{:?}",
        one.text
    );
    assert!(
        one.text.contains("kind: sogo") && !one.text.contains("two"),
        "{:?}",
        one.text
    );
    let two = set.get("two").unwrap();
    assert_eq!(two.line, 11);
    assert!(
        two.text.contains("# second") && two.text.contains("kind: dovecot"),
        "{:?}",
        two.text
    );
}

#[test]
fn ids_must_be_unique_across_files() {
    let a = rule("detection:\n  s:\n    kind: sogo");
    let e = RuleSet::parse_files([("a.yaml", a.as_str()), ("b.yaml", a.as_str())]).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].file, "b.yaml");
    assert_eq!((e.0[0].line, e.0[0].column), (2, 9));
    assert!(e.0[0].message.contains("a.yaml:2"), "{}", e.0[0]);
}

#[test]
fn the_example_file_compiles() {
    let text = include_str!("../../../../../examples/rules/example.yaml");
    let set = compile(text);
    assert!(set.len() >= 5);
    // And runs over real lines without a panic.
    let lines: Vec<String> = pool().iter().map(|l| retime(l, 0)).collect();
    let (_, engine) = run_with(text, &lines, |c| c);
    assert_eq!(engine.stats().rules.len(), RULES.len() + set.len());
}

// --- Fields against real events. ---

/// Lines of every family, as the daemons write them.
fn corpus() -> Vec<String> {
    let t = at(0);
    let mut v = pool();
    v.push(imap_login(0, "192.0.2.9", "bob@example.org"));
    v.push(auth_unknown(0, "198.51.100.12", "nobody@example.org"));
    v.push(format!(
        "{t} mx postfix/smtpd[1]: disconnect from unknown[203.0.113.5] ehlo=1 auth=0/1 rset=1 quit=1 commands=3/4"
    ));
    v.push(format!(
        "{t} mx postfix/smtp[2]: Trusted TLS connection established to mx.example.net[198.51.100.25]:25: TLSv1.3 \
         with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
    ));
    v.push(format!(
        "{t} mx postfix/postscreen[3]: CONNECT from [180.214.1.2]:30000 to [188.34.187.246]:25"
    ));
    v.push(format!(
        "{t} mx postfix/postscreen[3]: DNSBL rank 3 for [180.214.1.2]:30000"
    ));
    v.push(format!(
        "{t} mx rspamd[4]: <cf1261>; csession; rspamd_task_write_log: id: <157c12f9@gmail.com>, ip: 10.3.53.226, \
         from: <a@gmail.com>, (default: T (add header): [6.10/25.00] [BAYES_SPAM(5.10){{100.00%;}},URI_COUNT_ODD(1.00){{5;}}]), \
         len: 184445, time: 230.101ms, dns req: 21, digest: <0123456789abcdef0123456789abcdef>, rcpts: <b@example.org>, "
    ));
    v.push(format!(
        "{t} mx amavis[5]: (1234-02) Passed SPAMMY, ORIGINATING/MYNETS LOCAL [10.0.0.1] [10.0.0.1] <from@example.com> \
         -> <to1@sample.net>,<to2@sample.net>, quarantine: spam-EzEbE9W, Message-ID: <11780394@example.com>, \
         mail_id: EzEbE9W, Hits: 6.364, size: 16493, queued_as: 2A4C31E0F5, 2310 ms"
    ));
    v.push(format!(
        "{t} mx sogod[6]: <0x0xaaaae6890780[SOGoWebAuthenticator]> tried wrong password for user 'user@example.org'!"
    ));
    v.push(format!(
        "{t} mx sogod[6]: 1.2.3.4 - - [14/Mar/2023:00:00:31 GMT] \"POST /SOGo/connect HTTP/1.1\" 200 34/68 0.013 - - 0"
    ));
    v.push(format!(
        "{t} mx nginx[7]: 82.32.1.35 - ryan@example.eu [31/Oct/2017:00:09:13 +0000] \"POST \
         /autodiscover/autodiscover.xml HTTP/1.0\" 401 0 \"-\" \"Android-Mail/7.9\" \"198.51.100.4, 10.0.0.1\""
    ));
    v.push(format!(
        "{t} mx nginx[7]: [error] 12#12: *1 open() \"/web/x\" failed (2: No such file or directory), client: 1.2.3.4, \
         server: mail.example.org, request: \"GET /x HTTP/1.1\", host: \"mail.example.org\""
    ));
    v.push(format!(
        "{t} mx netfilter[8]: Banning 203.0.113.0/24 for 30 minutes"
    ));
    v.push(format!(
        "{t} mx netfilter[8]: 203.0.113.5 matched rule id 3 (warning: unknown[203.0.113.5]: SASL LOGIN \
         authentication failed: UGFzc3dvcmQ6)"
    ));
    v.push(format!(
        "{t} mx mysqld[9]: 0 [ERROR] Column count of mysql.proc is wrong. Expected 21, found 20. Created with \
         MariaDB 100108, now running 100338. Please use mysql_upgrade to fix this error"
    ));
    v
}

fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                key_paths(x, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_json_key_is_a_known_field_and_event_names_agree() {
    let mut fr = framer();
    let mut kinds = BTreeSet::new();
    for line in corpus() {
        with_event(&mut fr, &line, |ev| {
            assert!(!ev.kind.is_unparsed(), "does not parse: {line}");
            let json = serde_json::to_value(ev).unwrap();
            let mut paths = BTreeSet::new();
            key_paths(&json, "", &mut paths);
            for p in &paths {
                let known = EVENT_FIELDS
                    .binary_search_by(|(n, _)| (*n).cmp(p.as_str()))
                    .is_ok()
                    || p.starts_with("stats.");
                assert!(known, "{p} of {line} is missing from EVENT_FIELDS");
            }
            let view = EventView::new(ev, &line, &[]);
            assert_eq!(
                view.event_name(),
                json.get("event").and_then(|e| e.as_str()),
                "{line}"
            );
            // Picking keys gives what the whole JSON form has.
            let obj = json.as_object().unwrap();
            let mut keys: Vec<Box<str>> = obj.keys().map(|k| k.as_str().into()).collect();
            keys.push("no_such_key".into());
            let picked = super::fields::json_fields(ev, &keys);
            for (k, v) in keys.iter().zip(&picked) {
                assert_eq!(v.as_ref(), obj.get(&**k), "{k} of {line}");
            }
            kinds.insert(json["kind"].as_str().unwrap_or("").to_owned());
        });
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    // The table is sorted (looked up by binary search) and has no duplicates.
    assert!(EVENT_FIELDS.windows(2).all(|w| w[0].0 < w[1].0));
}

// --- Properties. ---

const EXAMPLE: &str = "rules:\n  - id: p\n    title: P\n    severity: low\n    detection:\n      sel_a:\n        \
                       kind: [postfix, dovecot]\n        client_ip|cidr: 203.0.113.0/24\n      sel_b:\n        \
                       user|endswith: '@example.org'\n      condition: 1 of sel_* and not sel_b\n    group_by: \
                       client_ip\n    timeframe: 10m\n    threshold: 3\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_loader_never_panics(text in "\\PC{0,300}") {
        let _ = RuleSet::parse("x.yaml", &text);
    }

    #[test]
    fn the_loader_never_panics_on_mutated_rules(at in 0usize..400, cut in 0usize..400, c in "[ -~\\n\\t]") {
        let at = at % (EXAMPLE.len() + 1);
        let cut = cut % (EXAMPLE.len() + 1);
        for t in [
            format!("{}{c}{}", &EXAMPLE[..at], &EXAMPLE[at..]),
            format!("{}{}", &EXAMPLE[..at], &EXAMPLE[(at + 1).min(EXAMPLE.len())..]),
            EXAMPLE[..cut].to_owned(),
        ] {
            if let Err(e) = RuleSet::parse("x.yaml", &t) {
                for x in e.0 {
                    prop_assert!(x.line >= 1 && x.column >= 1);
                    prop_assert!(!x.fix.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_condition_parser_never_panics(text in "[a-c_*() 0-9]{0,40}|(and|or|not|of|them|all|any|sel_a|sel_b|1|\\(|\\)| ){0,30}") {
        let _ = cond::parse(&text, &names(&["sel_a", "sel_b", "_c"]));
    }

    #[test]
    fn evaluation_is_deterministic(
        picks in proptest::collection::vec((0usize..64, -600i64..7_200, 0u8..4), 1..200),
    ) {
        let pool = pool();
        let lines: Vec<String> = picks
            .iter()
            .map(|(i, t, ip)| retime(&pool[i % pool.len()], *t).replace("203.0.113.5", &format!("203.0.113.{}", 5 + ip)))
            .collect();
        let a = serde_json::to_string(&run(EXAMPLE, &lines)).unwrap();
        let b = serde_json::to_string(&run(EXAMPLE, &lines)).unwrap();
        prop_assert_eq!(a, b);
    }
}
