//! Rule tests: every built-in rule with a sequence that must raise it and one
//! that must not, written as the log lines Postfix, Dovecot, SOGo, Rspamd
//! and MariaDB write (shapes from the parser tests and the production
//! corpus); engine tests for window edges, eviction, determinism and event
//! time; and a property test over arbitrary orders of real lines.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::framing::{Format, Framer, FramerConfig};
use crate::parse::with_event;
use crate::stitch::{StitchConfig, Stitcher};
use crate::time::TimeContext;

/// 2024-03-11T00:00:00Z, a Monday.
pub(super) const BASE: i64 = 1_710_115_200;

/// The RFC 3339 stamp `secs` after [`BASE`] (rsyslog's file format).
pub(super) fn at(secs: i64) -> String {
    Timestamp::from_unix_seconds(BASE + secs).to_string()
}

/// MariaDB's own `YYYY-MM-DD HH:MM:SS` stamp (UTC in these tests).
pub(super) fn mariadb_at(secs: i64) -> String {
    let c = Timestamp::from_unix_seconds(BASE + secs).local();
    format!(
        "{:04}-{:02}-{:02} {:2}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

// --- Lines, as the daemons write them. ---

pub(super) fn sasl_fail(t: i64, ip: &str, user: Option<&str>) -> String {
    let user = user.map(|u| format!(", sasl_username={u}")).unwrap_or_default();
    format!(
        "{} mx postfix/submission/smtpd[2001]: warning: unknown[{ip}]: SASL LOGIN authentication failed: \
         UGFzc3dvcmQ6{user}",
        at(t)
    )
}

pub(super) fn imap_fail(t: i64, ip: &str, user: &str, attempts: u32) -> String {
    format!(
        "{} mx dovecot[900]: imap-login: Disconnected (auth failed, {attempts} attempts in 12 secs): user=<{user}>, \
         method=PLAIN, rip={ip}, lip=192.0.2.1, TLS, session=<s{t}>",
        at(t)
    )
}

pub(super) fn auth_mismatch(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx dovecot[900]: auth: passwd-file({user},{ip},<s{t}>): Password mismatch",
        at(t)
    )
}

pub(super) fn auth_unknown(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx dovecot[900]: auth: passwd-file({user},{ip},<s{t}>): unknown user",
        at(t)
    )
}

pub(super) fn imap_login(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx dovecot[900]: imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=192.0.2.1, mpid=4242, \
         TLS, session=<s{t}>",
        at(t)
    )
}

pub(super) fn sogo_fail(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx sogod[77]: SOGoRootPage Login from '{ip}' for user '{user}' might not have worked - password \
         policy: 65535  grace: -1  expire: -1  bound: 0",
        at(t)
    )
}

pub(super) fn sogo_ok(t: i64, ip: &str, user: &str) -> String {
    format!(
        "{} mx sogod[77]: SOGoRootPage successful login from '{ip}' for user '{user}' - expire = -1  grace = -1",
        at(t)
    )
}

pub(super) fn qid(n: u64) -> String {
    format!("{:010X}", 0x1000_0000 + n)
}

/// One outcome of a recipient.
#[derive(Clone, Copy)]
pub(super) enum Out {
    Sent,
    Bounced,
    Deferred,
    Blocklisted,
    Local,
}

pub(super) fn deliveries(t: i64, q: &str, rcpts: &[(&str, Out)]) -> Vec<String> {
    rcpts
        .iter()
        .map(|(r, out)| {
            let dom = r.rsplit_once('@').map_or("example.net", |(_, d)| d);
            match out {
                Out::Sent => format!(
                    "{} mx postfix/smtp[3004]: {q}: to=<{r}>, relay=mx.{dom}[198.51.100.25]:25, delay=0.5, \
                     delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Q{q})",
                    at(t)
                ),
                Out::Bounced => format!(
                    "{} mx postfix/smtp[3004]: {q}: to=<{r}>, relay=mx.{dom}[198.51.100.25]:25, delay=0.5, \
                     delays=0.1/0/0.2/0.2, dsn=5.1.1, status=bounced (host mx.{dom}[198.51.100.25] said: 550 \
                     5.1.1 <{r}>: Recipient address rejected: User unknown (in reply to RCPT TO command))",
                    at(t)
                ),
                Out::Deferred => format!(
                    "{} mx postfix/smtp[3004]: {q}: to=<{r}>, relay=none, delay=300, delays=0.1/0/300/0, \
                     dsn=4.4.1, status=deferred (connect to mx.{dom}[198.51.100.25]:25: Connection timed out)",
                    at(t)
                ),
                Out::Blocklisted => format!(
                    "{} mx postfix/smtp[3004]: {q}: to=<{r}>, relay=mx.{dom}[192.0.2.25]:25, delay=0.4, \
                     delays=0.1/0/0.2/0.1, dsn=5.7.1, status=bounced (host mx.{dom}[192.0.2.25] said: 554 5.7.1 \
                     Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org; \
                     https://www.spamhaus.org/query/ip/198.51.100.7 (in reply to RCPT TO command))",
                    at(t)
                ),
                Out::Local => format!(
                    "{} mx postfix/lmtp[6001]: {q}: to=<{r}>, relay=mx.example.org[private/dovecot-lmtp], \
                     delay=0.05, delays=0/0.01/0.01/0.03, dsn=2.0.0, status=sent (250 2.0.0 <{r}> \
                     wKc9OHQtE2sgEgAAg+zDdQ Saved)",
                    at(t)
                ),
            }
        })
        .collect()
}

/// An authenticated submission and its deliveries.
pub(super) fn submission(
    t: i64,
    n: u64,
    user: &str,
    ip: &str,
    from: &str,
    rcpts: &[(&str, Out)],
) -> Vec<String> {
    let q = qid(n);
    let mut v = vec![
        format!(
            "{} mx postfix/submission/smtpd[3001]: {q}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}",
            at(t)
        ),
        format!(
            "{} mx postfix/cleanup[3002]: {q}: message-id=<{q}@example.org>",
            at(t)
        ),
        format!(
            "{} mx postfix/qmgr[3003]: {q}: from=<{from}>, size=1234, nrcpt={} (queue active)",
            at(t),
            rcpts.len()
        ),
    ];
    v.extend(deliveries(t, &q, rcpts));
    if !rcpts.iter().any(|(_, o)| matches!(o, Out::Deferred)) {
        v.push(format!("{} mx postfix/qmgr[3003]: {q}: removed", at(t)));
    }
    v
}

/// A local `sendmail` submission (pickup) of `nrcpt` recipients.
pub(super) fn pickup(t: i64, n: u64, uid: u32, from: &str, rcpts: &[(&str, Out)]) -> Vec<String> {
    let q = qid(n);
    let mut v = vec![
        format!("{} mx postfix/pickup[700]: {q}: uid={uid} from=<{from}>", at(t)),
        format!(
            "{} mx postfix/cleanup[3002]: {q}: message-id=<{q}@example.org>",
            at(t)
        ),
        format!(
            "{} mx postfix/qmgr[3003]: {q}: from=<{from}>, size=1234, nrcpt={} (queue active)",
            at(t),
            rcpts.len()
        ),
    ];
    v.extend(deliveries(t, &q, rcpts));
    v.push(format!("{} mx postfix/qmgr[3003]: {q}: removed", at(t)));
    v
}

/// A message from an unauthenticated SMTP client.
pub(super) fn unauth(
    t: i64,
    n: u64,
    client: &str,
    from: &str,
    rcpts: &[(&str, Out)],
    orig_to: Option<&str>,
) -> Vec<String> {
    let q = qid(n);
    let mut v = vec![
        format!("{} mx postfix/smtpd[5001]: connect from unknown[{client}]", at(t)),
        format!("{} mx postfix/smtpd[5001]: {q}: client=unknown[{client}]", at(t)),
        format!(
            "{} mx postfix/cleanup[3002]: {q}: message-id=<{q}@example.com>",
            at(t)
        ),
        format!(
            "{} mx postfix/qmgr[3003]: {q}: from=<{from}>, size=999, nrcpt={} (queue active)",
            at(t),
            rcpts.len()
        ),
    ];
    let mut d = deliveries(t, &q, rcpts);
    if let Some(o) = orig_to {
        for line in &mut d {
            *line = line.replacen(", relay=", &format!(", orig_to=<{o}>, relay="), 1);
        }
    }
    v.extend(d);
    v.push(format!("{} mx postfix/qmgr[3003]: {q}: removed", at(t)));
    v.push(format!(
        "{} mx postfix/smtpd[5001]: disconnect from unknown[{client}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
        at(t)
    ));
    v
}

pub(super) fn relay_denied(t: i64, ip: &str) -> String {
    format!(
        "{} mx postfix/smtpd[4001]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <victim@example.net>: \
         Relay access denied; from=<spam@example.com> to=<victim@example.net> proto=ESMTP helo=<scanner>",
        at(t)
    )
}

pub(super) fn rspamd_task(t: i64, n: u64, from: &str, symbols: &str) -> String {
    format!(
        "{} mx rspamd[27538]: <{:06x}>; proxy; rspamd_task_write_log: id: <m{n}@x>, qid: <{}>, ip: 203.0.113.9, \
         from: <{from}>, (default: T (rewrite subject): [9.20/15.00] [{symbols}]), len: 900, time: 12.000ms, \
         dns req: 4, digest: <00000000000000000000000000000000>, rcpts: <bob@example.org>, ",
        at(t),
        n,
        qid(n)
    )
}

pub(super) fn postfix_start(t: i64) -> String {
    format!(
        "{} mx postfix/master[100]: daemon started -- version 3.7.11, configuration /etc/postfix",
        at(t)
    )
}

pub(super) fn dovecot_start(t: i64) -> String {
    format!(
        "{} mx dovecot[100]: master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, lmtp",
        at(t)
    )
}

pub(super) fn mariadb_start(t: i64) -> String {
    format!(
        "{} 0 [Note] Starting MariaDB 10.5.23-MariaDB-1:10.5.23+maria~ubu2004 source revision \
         6cfd2ba397b0ca689d8ff1bdb9fc4a4dc516a5eb as process 1",
        mariadb_at(t)
    )
}

// --- The harness. ---

/// Frames, parses and stitches `lines` and runs the engine over them.
fn run_with(cfg: DetectConfig, lines: &[String]) -> (Vec<Alert>, Engine) {
    let mut engine = Engine::new(cfg).expect("config");
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(BASE + 400 * 86_400)),
    });
    let mut stitcher = Stitcher::new(StitchConfig::default());
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut framer, line, |ev| {
            assert!(!ev.kind.is_unparsed(), "test line does not parse: {line}");
            engine.feed_event(pos, line, ev);
            stitcher.feed(pos, line, ev);
        });
        while let Some(r) = stitcher.pop() {
            engine.feed_record(&r);
        }
    }
    stitcher.finish();
    while let Some(r) = stitcher.pop() {
        engine.feed_record(&r);
    }
    engine.finish();
    let mut alerts = engine.take_alerts();
    sort_alerts(&mut alerts);
    (alerts, engine)
}

fn run(lines: &[String]) -> Vec<Alert> {
    run_with(our_config(), lines).0
}

fn our_config() -> DetectConfig {
    DetectConfig {
        our_domains: vec!["example.org".into()],
        ..DetectConfig::default()
    }
}

fn rules_of(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.rule.as_str()).collect()
}

#[track_caller]
fn only(alerts: &[Alert], rule: &str) -> Alert {
    let got: Vec<&Alert> = alerts.iter().filter(|a| a.rule == rule).collect();
    assert_eq!(got.len(), 1, "want one {rule}, got {:#?}", rules_of(alerts));
    got[0].clone()
}

#[track_caller]
fn none(alerts: &[Alert], rule: &str) {
    assert!(
        !alerts.iter().any(|a| a.rule == rule),
        "unexpected {rule}: {:#?}",
        alerts.iter().filter(|a| a.rule == rule).collect::<Vec<_>>()
    );
}

// --- Logins. ---

#[test]
fn bruteforce_ten_in_ten_minutes_fires_nine_do_not() {
    let ten: Vec<String> = (0..10).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    let a = only(&run(&ten), "auth-bruteforce-ip");
    assert_eq!(a.key, "203.0.113.5");
    assert_eq!(a.count, 10);
    assert_eq!(a.first.unix_micros, BASE * 1_000_000);
    assert_eq!(a.last.unix_micros, (BASE + 540) * 1_000_000);
    assert_eq!(a.evidence.len(), 10);
    assert_eq!(a.evidence[0].position.line, 1);
    assert!(
        a.evidence[0]
            .text
            .as_deref()
            .unwrap()
            .contains("SASL LOGIN authentication failed")
    );
    assert_eq!(a.attack, vec!["T1110.001"]);
    none(&run(&ten[..9]), "auth-bruteforce-ip");
    // Ten, but spread over more than 600 s.
    let slow: Vec<String> = (0..10).map(|i| sasl_fail(i * 67, "203.0.113.5", None)).collect();
    none(&run(&slow), "auth-bruteforce-ip");
}

#[test]
fn bruteforce_counts_dovecot_attempts_and_sogo_and_extends_one_alert() {
    let mut lines = vec![
        imap_fail(0, "198.51.100.9", "alice@example.org", 3),
        auth_mismatch(1, "198.51.100.9", "alice@example.org"),
        imap_fail(30, "198.51.100.9", "bob@example.org", 3),
        sogo_fail(60, "198.51.100.9", "carol@example.org"),
        imap_fail(90, "198.51.100.9", "alice@example.org", 3),
    ];
    let a = only(&run(&lines), "auth-bruteforce-ip");
    // 3 + 3 + 1 + 3; the auth process's own line is not counted twice.
    assert_eq!(a.count, 10);
    // Later failures extend the same alert.
    for i in 0..20 {
        lines.push(imap_fail(120 + i * 30, "198.51.100.9", "dave@example.org", 1));
    }
    let a = only(&run(&lines), "auth-bruteforce-ip");
    assert_eq!(a.count, 30);
    assert_eq!(a.facts["service"], vec!["imap", "sogo"]);
    assert!(a.facts["user"].contains(&"dave@example.org".to_owned()));
    // After a quiet period, a new attack is a new alert.
    let mut two = lines.clone();
    for i in 0..10 {
        two.push(imap_fail(5000 + i, "198.51.100.9", "eve@example.org", 1));
    }
    let alerts = run(&two);
    assert_eq!(
        alerts.iter().filter(|a| a.rule == "auth-bruteforce-ip").count(),
        2
    );
}

#[test]
fn slow_guessing_below_the_fast_threshold() {
    // One try every 90 minutes: 15 in 21 hours.
    let slow: Vec<String> = (0..15)
        .map(|i| sasl_fail(i * 5400, "192.0.2.77", Some("alice@example.org")))
        .collect();
    let alerts = run(&slow);
    let a = only(&alerts, "auth-slow-guessing");
    assert_eq!(a.count, 15);
    none(&alerts, "auth-bruteforce-ip");
    none(&run(&slow[..14]), "auth-slow-guessing");
    // A fast attacker is reported once, by the fast rule.
    let fast: Vec<String> = (0..40).map(|i| sasl_fail(i * 20, "192.0.2.78", None)).collect();
    let alerts = run(&fast);
    only(&alerts, "auth-bruteforce-ip");
    none(&alerts, "auth-slow-guessing");
}

#[test]
fn spraying_many_users_from_one_address() {
    let users = [
        "a@example.org",
        "b@example.org",
        "c@example.org",
        "d@example.org",
        "e@example.org",
    ];
    let lines: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| imap_fail(i as i64 * 300, "203.0.113.50", u, 1))
        .collect();
    let a = only(&run(&lines), "auth-spraying-ip");
    assert_eq!(a.key, "203.0.113.50");
    assert_eq!(a.facts["user"].len(), 5);
    assert_eq!(a.count, 5);
    // Repeats do not count again; a sixth name does.
    let mut more = lines.clone();
    more.push(imap_fail(1600, "203.0.113.50", "a@example.org", 1));
    more.push(imap_fail(1700, "203.0.113.50", "b@example.org", 1));
    assert_eq!(only(&run(&more), "auth-spraying-ip").count, 5);
    more.push(imap_fail(1800, "203.0.113.50", "f@example.org", 1));
    assert_eq!(only(&run(&more), "auth-spraying-ip").count, 6);
    // The same user five times is not spraying; four users are not five.
    let same: Vec<String> = (0..5)
        .map(|i| imap_fail(i * 300, "203.0.113.50", "a@example.org", 1))
        .collect();
    none(&run(&same), "auth-spraying-ip");
    none(&run(&lines[..4]), "auth-spraying-ip");
}

#[test]
fn distributed_guessing_from_many_addresses() {
    let lines: Vec<String> = (1..=5)
        .map(|i| auth_mismatch(i * 400, &format!("198.51.100.{i}"), "ceo@example.org"))
        .collect();
    let a = only(&run(&lines), "auth-distributed-account");
    assert_eq!(a.key, "ceo@example.org");
    assert_eq!(a.facts["ip"].len(), 5);
    none(&run(&lines[..4]), "auth-distributed-account");
    // Five addresses but over more than an hour.
    let spread: Vec<String> = (1..=5)
        .map(|i| auth_mismatch(i * 1000, &format!("198.51.100.{i}"), "ceo@example.org"))
        .collect();
    none(&run(&spread), "auth-distributed-account");
}

#[test]
fn honeypot_names_fire_at_once() {
    let lines = vec![auth_unknown(0, "203.0.113.66", "admin")];
    let a = only(&run(&lines), "auth-honeypot-user");
    assert_eq!(a.key, "203.0.113.66");
    assert_eq!(a.severity, AlertSeverity::High);
    // A real account is no honeypot; `admin@example.org` is not `admin`.
    none(
        &run(&[auth_mismatch(0, "203.0.113.66", "alice@example.org")]),
        "auth-honeypot-user",
    );
    none(
        &run(&[auth_unknown(0, "203.0.113.66", "admin@example.org")]),
        "auth-honeypot-user",
    );
    // `admin@` matches the local part in any domain.
    let cfg = DetectConfig {
        honeypot_users: vec!["admin@".into()],
        ..our_config()
    };
    let (alerts, _) = run_with(cfg, &[imap_fail(0, "203.0.113.66", "Admin@Example.org", 1)]);
    only(&alerts, "auth-honeypot-user");
}

#[test]
fn unknown_user_names_from_one_address() {
    let lines = vec![
        auth_unknown(0, "203.0.113.7", "info@example.org"),
        auth_unknown(10, "203.0.113.7", "sales@example.org"),
        auth_unknown(20, "203.0.113.7", "hr@example.org"),
    ];
    let a = only(&run(&lines), "auth-unknown-user");
    assert_eq!(a.facts["user"].len(), 3);
    none(&run(&lines[..2]), "auth-unknown-user");
    // A wrong password for an existing user is no unknown user.
    let mismatches: Vec<String> = (0..3)
        .map(|i| auth_mismatch(i * 10, "203.0.113.7", &format!("u{i}@example.org")))
        .collect();
    none(&run(&mismatches), "auth-unknown-user");
}

#[test]
fn success_after_failures_from_the_same_address() {
    let mut lines: Vec<String> = (0..5)
        .map(|i| imap_fail(i * 60, "192.0.2.200", "bob@example.org", 1))
        .collect();
    lines.push(imap_login(400, "192.0.2.200", "bob@example.org"));
    let a = only(&run(&lines), "auth-success-after-failures");
    assert_eq!(a.key, "192.0.2.200 bob@example.org");
    assert_eq!(a.count, 5);
    assert_eq!(a.evidence.len(), 6);
    assert!(
        a.evidence[5]
            .text
            .as_deref()
            .unwrap()
            .contains("Login: user=<bob@example.org>")
    );
    // Four failures, or the success from another address, or too late: no.
    let mut four = lines[..4].to_vec();
    four.push(imap_login(400, "192.0.2.200", "bob@example.org"));
    none(&run(&four), "auth-success-after-failures");
    let mut other = lines[..5].to_vec();
    other.push(imap_login(400, "192.0.2.201", "bob@example.org"));
    none(&run(&other), "auth-success-after-failures");
    let mut late = lines[..5].to_vec();
    late.push(imap_login(4000, "192.0.2.200", "bob@example.org"));
    none(&run(&late), "auth-success-after-failures");
    // SOGo and an authenticated submission count as successes too.
    let mut sogo: Vec<String> = (0..5)
        .map(|i| sogo_fail(i * 60, "192.0.2.9", "bob@example.org"))
        .collect();
    sogo.push(sogo_ok(400, "192.0.2.9", "bob@example.org"));
    only(&run(&sogo), "auth-success-after-failures");
}

#[test]
fn new_network_for_a_known_account() {
    let day = 86_400;
    let mut lines: Vec<String> = (0..8)
        .map(|d| imap_login(d * day + 3600, "192.0.2.10", "alice@example.org"))
        .collect();
    let quiet = run(&lines);
    none(&quiet, "account-new-network");
    lines.push(imap_login(8 * day + 7200, "203.0.113.99", "alice@example.org"));
    let a = only(&run(&lines), "account-new-network");
    assert_eq!(a.key, "alice@example.org");
    assert_eq!(a.facts["network"], vec!["203.0.113.0/24"]);
    // Within the learning period every network is simply learned.
    let early = vec![
        imap_login(0, "192.0.2.10", "alice@example.org"),
        imap_login(3 * day, "203.0.113.99", "alice@example.org"),
    ];
    none(&run(&early), "account-new-network");
}

// --- Outbound. ---

#[test]
fn outbound_burst_per_account() {
    let rcpts: Vec<String> = (0..20).map(|i| format!("r{i}@partner.example")).collect();
    let list: Vec<(&str, Out)> = rcpts.iter().map(|r| (r.as_str(), Out::Sent)).collect();
    let mut lines = Vec::new();
    for m in 0..10 {
        lines.extend(submission(
            m * 120,
            m as u64,
            "carol@example.org",
            "203.0.113.44",
            "carol@example.org",
            &list,
        ));
    }
    let alerts = run(&lines);
    let a = only(&alerts, "outbound-burst-account");
    assert_eq!(a.key, "carol@example.org");
    assert_eq!(a.count, 200);
    assert_eq!(a.facts["ip"], vec!["203.0.113.44"]);
    assert!(
        a.evidence[0]
            .text
            .as_deref()
            .unwrap()
            .contains("sasl_username=carol@example.org")
    );
    // The same mail as an envelope sender burst too; one domain, so no spread.
    only(&alerts, "outbound-burst-sender");
    none(&alerts, "recipient-domains-spread");
    // 199 recipients: nothing.
    let mut fewer = Vec::new();
    for m in 0..9 {
        fewer.extend(submission(
            m * 120,
            m as u64,
            "carol@example.org",
            "203.0.113.44",
            "carol@example.org",
            &list,
        ));
    }
    fewer.extend(submission(
        2000,
        99,
        "carol@example.org",
        "203.0.113.44",
        "carol@example.org",
        &list[..19],
    ));
    let alerts = run(&fewer);
    none(&alerts, "outbound-burst-account");
    none(&alerts, "outbound-burst-sender");
}

#[test]
fn outbound_burst_per_sender_from_sendmail() {
    let rcpts: Vec<String> = (0..50).map(|i| format!("x{i}@victims.example")).collect();
    let list: Vec<(&str, Out)> = rcpts.iter().map(|r| (r.as_str(), Out::Sent)).collect();
    let mut lines = Vec::new();
    for m in 0..4 {
        lines.extend(pickup(m * 300, m as u64, 33, "www-data@example.org", &list));
    }
    let alerts = run(&lines);
    let a = only(&alerts, "outbound-burst-sender");
    assert_eq!(a.key, "www-data@example.org");
    assert_eq!(a.facts["user"], vec!["local uid 33"]);
    // No SASL user: the per-account rule has nothing to say.
    none(&alerts, "outbound-burst-account");
    none(&run(&lines[..lines.len() / 2]), "outbound-burst-sender");
    // Inbound mail is never a submission, however much of it comes.
    let mut inbound = Vec::new();
    for m in 0..250 {
        inbound.extend(unauth(
            m,
            m as u64,
            "198.51.100.80",
            "news@shop.example",
            &[("alice@example.org", Out::Local)],
            None,
        ));
    }
    let alerts = run(&inbound);
    none(&alerts, "outbound-burst-sender");
    none(&alerts, "open-relay");
}

#[test]
fn rate_change_against_the_same_hour_on_previous_days() {
    let day = 86_400;
    let hour9 = 9 * 3600;
    let mut lines = Vec::new();
    let mut n = 0;
    for d in 0..10 {
        for k in 0..3 {
            n += 1;
            lines.extend(submission(
                d * day + hour9 + k * 600,
                n,
                "dan@example.org",
                "192.0.2.40",
                "dan@example.org",
                &[("p@partner.example", Out::Sent)],
            ));
        }
    }
    let quiet = run(&lines);
    none(&quiet, "outbound-rate-change");
    let rcpts: Vec<String> = (0..60).map(|i| format!("v{i}@far.example")).collect();
    let list: Vec<(&str, Out)> = rcpts.iter().map(|r| (r.as_str(), Out::Sent)).collect();
    let mut spike = lines.clone();
    spike.extend(submission(
        10 * day + hour9 + 60,
        999,
        "dan@example.org",
        "192.0.2.40",
        "dan@example.org",
        &list,
    ));
    let a = only(&run(&spike), "outbound-rate-change");
    assert!(
        a.message
            .contains("median for that hour over the last 10 days is 3"),
        "{}",
        a.message
    );
    // Below the floor (50), however unusual.
    let mut small = lines.clone();
    small.extend(submission(
        10 * day + hour9 + 60,
        999,
        "dan@example.org",
        "192.0.2.40",
        "dan@example.org",
        &list[..40],
    ));
    none(&run(&small), "outbound-rate-change");
    // Without min_history days of history, no judgement.
    let young: Vec<String> = lines[lines.len() - 3 * 6..].to_vec();
    let mut young = young;
    young.extend(submission(
        10 * day + hour9 + 60,
        999,
        "dan@example.org",
        "192.0.2.40",
        "dan@example.org",
        &list,
    ));
    none(&run(&young), "outbound-rate-change");
}

#[test]
fn new_envelope_sender_after_learning() {
    let day = 86_400;
    let mut lines = Vec::new();
    for d in 0..8 {
        lines.extend(submission(
            d * day,
            d as u64,
            "erin@example.org",
            "192.0.2.41",
            "erin@example.org",
            &[("p@partner.example", Out::Sent)],
        ));
    }
    none(&run(&lines), "outbound-new-sender");
    lines.extend(submission(
        8 * day,
        100,
        "erin@example.org",
        "192.0.2.41",
        "xyovt@example.org",
        &[("p@partner.example", Out::Sent)],
    ));
    let a = only(&run(&lines), "outbound-new-sender");
    assert_eq!(a.key, "xyovt@example.org");
    assert_eq!(a.facts["submitted_by"], vec!["user erin@example.org"]);
    // A local user's forward (sendmail, pickup) keeps the foreign sender: no.
    let mut fwd = lines[..lines.len() - 5].to_vec();
    fwd.extend(pickup(
        8 * day,
        101,
        2000,
        "familysafety@microsoft.example",
        &[("erin@gmail.example", Out::Sent)],
    ));
    none(&run(&fwd), "outbound-new-sender");
}

#[test]
fn sender_that_is_no_mailbox() {
    let dir = AddressSet {
        addresses: BTreeSet::from(["erin@example.org".to_owned(), "team@example.org".to_owned()]),
        domains: BTreeSet::from(["example.org".to_owned()]),
    };
    let cfg = || DetectConfig {
        directory: Some(Arc::new(dir.clone())),
        ..our_config()
    };
    let lines = submission(
        0,
        1,
        "erin@example.org",
        "203.0.113.12",
        "xyovt@example.org",
        &[("p@partner.example", Out::Sent)],
    );
    let (alerts, _) = run_with(cfg(), &lines);
    let a = only(&alerts, "sender-not-mailbox");
    assert_eq!(a.key, "xyovt@example.org");
    assert!(a.message.contains("user erin@example.org"), "{}", a.message);
    // A mailbox, an alias, or another domain: no.
    for from in ["erin@example.org", "team@example.org", "erin@gmail.example"] {
        let lines = submission(
            0,
            1,
            "erin@example.org",
            "203.0.113.12",
            from,
            &[("p@partner.example", Out::Sent)],
        );
        none(&run_with(cfg(), &lines).0, "sender-not-mailbox");
    }
    // Without a directory the rule stays silent.
    let lines = submission(
        0,
        1,
        "erin@example.org",
        "203.0.113.12",
        "xyovt@example.org",
        &[("p@partner.example", Out::Sent)],
    );
    none(&run(&lines), "sender-not-mailbox");
}

#[test]
fn many_recipient_domains_from_one_account() {
    let rcpts: Vec<String> = (0..30).map(|i| format!("someone@d{i}.example")).collect();
    let mut lines = Vec::new();
    for (i, r) in rcpts.iter().enumerate() {
        lines.extend(submission(
            i as i64 * 60,
            i as u64,
            "frank@example.org",
            "203.0.113.3",
            "frank@example.org",
            &[(r, Out::Sent)],
        ));
    }
    let a = only(&run(&lines), "recipient-domains-spread");
    assert_eq!(a.key, "frank@example.org");
    assert_eq!(a.facts["domain"].len(), MAX_FACT_VALUES + 1);
    assert_eq!(a.evidence[0].kind, EvidenceKind::Message);
    let cut = lines.len() * 29 / 30;
    none(&run(&lines[..cut]), "recipient-domains-spread");
    // Our own domain does not count.
    let mut own = lines.clone();
    own.truncate(cut);
    own.extend(submission(
        3000,
        500,
        "frank@example.org",
        "203.0.113.3",
        "frank@example.org",
        &[("bob@example.org", Out::Local)],
    ));
    none(&run(&own), "recipient-domains-spread");
}

#[test]
fn high_bounce_ratio() {
    let mut lines = Vec::new();
    for i in 0..20 {
        let out = if i % 5 < 2 { Out::Bounced } else { Out::Sent };
        let r = format!("list{i}@targets.example");
        lines.extend(submission(
            i * 60,
            i as u64,
            "gina@example.org",
            "192.0.2.66",
            "gina@example.org",
            &[(&r, out)],
        ));
    }
    let a = only(&run(&lines), "bounce-ratio");
    assert_eq!(a.key, "gina@example.org");
    assert!(a.message.starts_with("8 of 20"), "{}", a.message);
    // 2 of 20 bounce: normal.
    let mut fine = Vec::new();
    for i in 0..20 {
        let out = if i < 2 { Out::Bounced } else { Out::Sent };
        let r = format!("list{i}@targets.example");
        fine.extend(submission(
            i * 60,
            i as u64,
            "gina@example.org",
            "192.0.2.66",
            "gina@example.org",
            &[(&r, out)],
        ));
    }
    none(&run(&fine), "bounce-ratio");
}

#[test]
fn blocklist_rejections_of_our_mail() {
    let lines = submission(
        0,
        1,
        "hank@example.org",
        "192.0.2.5",
        "hank@example.org",
        &[("x@big.example", Out::Blocklisted)],
    );
    let a = only(&run(&lines), "blocklisted-our-ip");
    assert_eq!(a.key, "Spamhaus");
    let lines = submission(
        0,
        1,
        "hank@example.org",
        "192.0.2.5",
        "hank@example.org",
        &[("x@big.example", Out::Bounced)],
    );
    none(&run(&lines), "blocklisted-our-ip");
    // Our own postscreen rejecting a listed client is not about us.
    let ours = format!(
        "{} mx postfix/postscreen[3163107]: NOQUEUE: reject: RCPT from [185.246.220.193]:62795: 550 5.7.1 Service \
         unavailable; client [185.246.220.193] blocked using zen.spamhaus.org; from=<ripe@example.net>, \
         to=<alice@example.org>, proto=ESMTP, helo=<3BqSwxw>",
        at(0)
    );
    none(&run(&[ours]), "blocklisted-our-ip");
}

#[test]
fn open_relay_through_mynetworks() {
    let lines = unauth(
        0,
        1,
        "172.22.1.12",
        "billing@example.org",
        &[("victim@bank.example", Out::Sent)],
        None,
    );
    let a = only(&run(&lines), "open-relay");
    assert_eq!(a.key, "172.22.1.12");
    assert_eq!(a.severity, AlertSeverity::Critical);
    assert!(a.message.contains("claims one of our domains"), "{}", a.message);
    // Loopback, a trusted network, alias forwarding and inbound mail: no.
    none(
        &run(&unauth(
            0,
            1,
            "127.0.0.1",
            "cron@example.org",
            &[("admin@gmail.example", Out::Sent)],
            None,
        )),
        "open-relay",
    );
    let cfg = DetectConfig {
        trusted_relays: vec!["172.22.1.0/24".into()],
        ..our_config()
    };
    none(&run_with(cfg, &lines).0, "open-relay");
    let fwd = unauth(
        0,
        1,
        "198.51.100.80",
        "news@shop.example",
        &[("alice.private@gmail.example", Out::Sent)],
        Some("alice@example.org"),
    );
    none(&run(&fwd), "open-relay");
    none(
        &run(&unauth(
            0,
            1,
            "198.51.100.80",
            "news@shop.example",
            &[("alice@example.org", Out::Local)],
            None,
        )),
        "open-relay",
    );
}

#[test]
fn unauthenticated_mail_as_our_domain() {
    // From an internal address (a container in mynetworks): the first message.
    let inside = unauth(
        0,
        1,
        "172.22.1.12",
        "ceo@example.org",
        &[("alice@example.org", Out::Local)],
        None,
    );
    let a = only(&run(&inside), "own-domain-unauthenticated");
    assert_eq!(a.key, "example.org");
    assert!(a.message.contains("internal address"), "{}", a.message);
    // From outside: a wave of five within the hour, not four.
    let mut outside = Vec::new();
    for i in 0..5 {
        outside.extend(unauth(
            i * 300,
            i as u64,
            &format!("198.51.100.{}", 10 + i),
            "ceo@example.org",
            &[("alice@example.org", Out::Local)],
            None,
        ));
    }
    only(&run(&outside), "own-domain-unauthenticated");
    let four = outside[..outside.len() * 4 / 5].to_vec();
    none(&run(&four), "own-domain-unauthenticated");
    // Local programs, trusted relays and other domains: no.
    none(
        &run(&unauth(
            0,
            1,
            "127.0.0.1",
            "cron@example.org",
            &[("alice@example.org", Out::Local)],
            None,
        )),
        "own-domain-unauthenticated",
    );
    let cfg = DetectConfig {
        trusted_relays: vec!["172.22.1.0/24".into()],
        ..our_config()
    };
    none(&run_with(cfg, &inside).0, "own-domain-unauthenticated");
    none(
        &run(&unauth(
            0,
            1,
            "172.22.1.12",
            "news@shop.example",
            &[("alice@example.org", Out::Local)],
            None,
        )),
        "own-domain-unauthenticated",
    );
}

// --- Server. ---

#[test]
fn relay_attempts() {
    let lines: Vec<String> = (0..5).map(|i| relay_denied(i * 300, "45.141.84.120")).collect();
    let a = only(&run(&lines), "relay-attempt");
    assert_eq!(a.key, "45.141.84.120");
    assert_eq!(a.severity, AlertSeverity::Low);
    none(&run(&lines[..4]), "relay-attempt");
}

#[test]
fn deferred_queue_growth() {
    let mut lines = Vec::new();
    // A steady trickle of other traffic keeps the clock ticking.
    for m in 0..120 {
        lines.push(format!(
            "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
            at(m * 60)
        ));
    }
    for i in 0..60 {
        lines.extend(submission(
            1800 + i * 30,
            i as u64,
            "ivy@example.org",
            "192.0.2.8",
            "ivy@example.org",
            &[("x@slow.example", Out::Deferred)],
        ));
    }
    lines.sort_by(|a, b| a[..27].cmp(&b[..27]));
    let a = only(&run(&lines), "deferred-queue-growth");
    assert_eq!(a.key, "mx");
    assert!(a.count >= 50, "{}", a.count);
    // Forty deferred messages stay below the minimum queue.
    let few: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("postfix/smtpd") || l.contains("connect from"))
        .filter(|l| qid_number(l).is_none_or(|n| n < 40))
        .cloned()
        .collect();
    none(&run(&few), "deferred-queue-growth");
}

fn qid_number(line: &str) -> Option<u64> {
    line.split_whitespace()
        .nth(3)
        .and_then(|w| w.strip_suffix(':'))
        .and_then(|q| u64::from_str_radix(q, 16).ok())
        .map(|n| n - 0x1000_0000)
}

#[test]
fn spoofing_wave_from_rspamd() {
    let lines: Vec<String> = (0..10)
        .map(|i| rspamd_task(i * 120, i as u64, "ceo@example.org", "SPOOFED_UNAUTH(5.00){}"))
        .collect();
    let a = only(&run(&lines), "spoofed-unauth-wave");
    assert_eq!(a.key, "example.org");
    none(&run(&lines[..9]), "spoofed-unauth-wave");
}

#[test]
fn dmarc_reject_wave_for_our_domain_only() {
    let sym = |d: &str| format!("DMARC_POLICY_REJECT(2.00){{{d};reject;}}");
    let lines: Vec<String> = (0..10)
        .map(|i| rspamd_task(i * 120, i as u64, "ceo@example.org", &sym("example.org")))
        .collect();
    let a = only(&run(&lines), "dmarc-reject-wave");
    assert_eq!(a.key, "example.org");
    let theirs: Vec<String> = (0..10)
        .map(|i| rspamd_task(i * 120, i as u64, "ceo@bank.example", &sym("bank.example")))
        .collect();
    none(&run(&theirs), "dmarc-reject-wave");
}

#[test]
fn crash_loops() {
    let lines: Vec<String> = (0..5).map(|i| mariadb_start(i * 120)).collect();
    let a = only(&run(&lines), "crash-loop");
    assert_eq!(a.key, "mariadb@-");
    let lines: Vec<String> = (0..5).map(|i| dovecot_start(i * 300)).collect();
    only(&run(&lines), "crash-loop");
    // A restart or two is maintenance.
    let lines = vec![postfix_start(0), postfix_start(600)];
    none(&run(&lines), "crash-loop");
}

#[test]
fn mariadb_version_mismatch() {
    let lines = vec![
        mariadb_start(0),
        format!(
            "{} 0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 11.4.2.",
            mariadb_at(1)
        ),
        format!(
            "{} 0 [ERROR] Plugin 'InnoDB' init function returned error.",
            mariadb_at(1)
        ),
    ];
    let a = only(&run(&lines), "mariadb-version-mismatch");
    assert_eq!(a.severity, AlertSeverity::Critical);
    assert!(a.message.contains("MariaDB 11.4.2"), "{}", a.message);
    let fine = vec![
        mariadb_start(0),
        format!(
            "{} 0 [Note] InnoDB: Buffer pool(s) load completed at 240311  0:00:01",
            mariadb_at(1)
        ),
    ];
    none(&run(&fine), "mariadb-version-mismatch");
}

#[test]
fn a_source_goes_silent() {
    let mut lines = Vec::new();
    for m in 0..(28 * 60) {
        lines.push(format!(
            "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
            at(m * 60)
        ));
        if m < 26 * 60 {
            lines.push(imap_login(m * 60 + 1, "192.0.2.10", "alice@example.org"));
        }
    }
    let a = only(&run(&lines), "source-silent");
    assert_eq!(a.key, "dovecot@mx");
    assert!(a.count >= 60, "{}", a.count);
    // Both keep logging: nothing.
    let both: Vec<String> = (0..(28 * 60))
        .flat_map(|m| {
            [
                format!(
                    "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
                    at(m * 60)
                ),
                imap_login(m * 60 + 1, "192.0.2.10", "alice@example.org"),
            ]
        })
        .collect();
    none(&run(&both), "source-silent");
    // A source read after another (a second file) is not judged against it.
    let mut sequential: Vec<String> = (0..(28 * 60))
        .map(|m| {
            format!(
                "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
                at(m * 60)
            )
        })
        .collect();
    sequential.extend((0..(26 * 60)).map(|m| imap_login(m * 60 + 1, "192.0.2.10", "alice@example.org")));
    none(&run(&sequential), "source-silent");
}

#[test]
fn a_gap_in_the_whole_input_is_no_silence() {
    // Both sources log for 26 h, nothing is logged for 3 h, both come back
    // (Postfix first, Dovecot ten minutes later).
    let mut lines = Vec::new();
    for m in 0..(26 * 60) {
        lines.push(format!(
            "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
            at(m * 60)
        ));
        lines.push(imap_login(m * 60 + 1, "192.0.2.10", "alice@example.org"));
    }
    for m in (29 * 60)..(30 * 60) {
        lines.push(format!(
            "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
            at(m * 60)
        ));
        if m >= 29 * 60 + 10 {
            lines.push(imap_login(m * 60 + 1, "192.0.2.10", "alice@example.org"));
        }
    }
    none(&run(&lines), "source-silent");
}

#[test]
fn evidence_keeps_positions_when_sample_texts_are_gone() {
    // A 64 KiB ring holds a few hundred lines; the first failures of a slow
    // attack are long gone from it when the alert opens.
    let mut lines = Vec::new();
    for i in 0..15 {
        lines.push(sasl_fail(i * 5400, "192.0.2.77", None));
        for k in 0..200 {
            lines.push(imap_fail(
                i * 5400 + 1 + k,
                &format!("198.51.{}.{}", i, k),
                "x@example.org",
                1,
            ));
        }
    }
    let cfg = DetectConfig {
        sample_bytes: 64 * 1024,
        ..our_config()
    };
    let (alerts, _) = run_with(cfg, &lines);
    let a = only(&alerts, "auth-slow-guessing");
    assert_eq!(a.evidence.len(), 10);
    assert_eq!(a.evidence[0].position.line, 1);
    assert_eq!(a.evidence[0].text, None, "the oldest sample left the ring");
    assert!(
        a.evidence
            .last()
            .unwrap()
            .text
            .as_deref()
            .unwrap()
            .contains("SASL LOGIN")
    );
}

// --- Engine properties. ---

#[test]
fn every_rule_is_built_and_listed() {
    let engine = Engine::new(DetectConfig::default()).unwrap();
    let stats = engine.stats();
    assert_eq!(stats.rules.len(), RULES.len());
    assert!(stats.rules.iter().all(|r| r.enabled));
    let only_one = Engine::new(DetectConfig {
        rules: Some(vec!["relay-attempt".into()]),
        ..DetectConfig::default()
    })
    .unwrap();
    assert_eq!(only_one.stats().rules.iter().filter(|r| r.enabled).count(), 1);
    assert!(matches!(
        Engine::new(DetectConfig {
            rules: Some(vec!["no-such-rule".into()]),
            ..DetectConfig::default()
        }),
        Err(ConfigError::UnknownRule { .. })
    ));
    assert!(matches!(
        Engine::new(DetectConfig {
            trusted_relays: vec!["not-a-net".into()],
            ..DetectConfig::default()
        }),
        Err(ConfigError::BadValue { .. })
    ));
}

#[test]
fn selected_rules_only() {
    let ten: Vec<String> = (0..10).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    let cfg = DetectConfig {
        rules: Some(vec!["relay-attempt".into()]),
        ..our_config()
    };
    assert!(run_with(cfg, &ten).0.is_empty());
    let cfg = DetectConfig {
        settings: [("auth-bruteforce-ip.failures".to_owned(), 11)]
            .into_iter()
            .collect(),
        ..our_config()
    };
    none(&run_with(cfg, &ten).0, "auth-bruteforce-ip");
}

#[test]
fn event_time_not_arrival_decides() {
    // Fed in one go, but logged 70 s apart: no brute force.
    let spaced: Vec<String> = (0..10).map(|i| sasl_fail(i * 70, "203.0.113.5", None)).collect();
    none(&run(&spaced), "auth-bruteforce-ip");
    // Logged in the same second but fed out of order: still ten in the window.
    let mut shuffled: Vec<String> = (0..10).map(|i| sasl_fail(9 - i, "203.0.113.5", None)).collect();
    shuffled.rotate_left(3);
    only(&run(&shuffled), "auth-bruteforce-ip");
}

#[test]
fn state_stays_bounded_and_evictions_are_counted() {
    let cfg = DetectConfig {
        max_keys: 100,
        ..our_config()
    };
    let lines: Vec<String> = (0..5000)
        .map(|i| {
            sasl_fail(
                i,
                &format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                None,
            )
        })
        .collect();
    let (_, engine) = run_with(cfg, &lines);
    let stats = engine.stats();
    for r in &stats.rules {
        assert!(r.keys <= 100, "{} keeps {} keys", r.rule, r.keys);
    }
    let bf = stats
        .rules
        .iter()
        .find(|r| r.rule == "auth-bruteforce-ip")
        .unwrap();
    assert!(bf.evictions > 0);
    assert!(bf.peak_keys <= 100);
}

#[test]
fn results_are_deterministic() {
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(sasl_fail(i * 30, "203.0.113.5", None));
        lines.push(sasl_fail(i * 30 + 1, "203.0.113.6", None));
        lines.push(imap_fail(
            i * 30 + 2,
            &format!("198.51.100.{i}"),
            "ceo@example.org",
            1,
        ));
        lines.push(auth_unknown(
            i * 30 + 3,
            "203.0.113.7",
            &format!("u{i}@example.org"),
        ));
    }
    let a = serde_json::to_string(&run(&lines)).unwrap();
    let b = serde_json::to_string(&run(&lines)).unwrap();
    assert_eq!(a, b);
    assert!(run(&lines).len() >= 5);
}

#[test]
fn live_mode_reports_openings_and_closes_on_the_clock() {
    let cfg = DetectConfig {
        live: true,
        ..our_config()
    };
    let mut lines: Vec<String> = (0..10).map(|i| sasl_fail(i * 60, "203.0.113.5", None)).collect();
    // Other traffic an hour later passes the quiet period (600 s).
    for m in 0..60 {
        lines.push(format!(
            "{} mx postfix/smtpd[5001]: connect from unknown[198.51.100.1]",
            at(600 + m * 60)
        ));
    }
    let mut engine = Engine::new(cfg).unwrap();
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(BASE)),
    });
    let mut opened_at = None;
    let mut closed_at = None;
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut framer, line, |ev| engine.feed_event(pos, line, ev));
        if opened_at.is_none() && !engine.take_opened().is_empty() {
            opened_at = Some(i);
        }
        if closed_at.is_none() && !engine.take_alerts().is_empty() {
            closed_at = Some(i);
        }
    }
    assert_eq!(opened_at, Some(9));
    assert!(
        closed_at.is_some_and(|c| c > 9 && c < lines.len() - 1),
        "{closed_at:?}"
    );
}

/// Real lines of every family the rules read, with a time placeholder.
pub(super) fn pool() -> Vec<String> {
    let mut v = vec![
        sasl_fail(0, "203.0.113.5", None),
        sasl_fail(0, "203.0.113.6", Some("alice@example.org")),
        imap_fail(0, "198.51.100.9", "bob@example.org", 3),
        imap_fail(0, "198.51.100.10", "admin", 1),
        auth_mismatch(0, "198.51.100.11", "carol@example.org"),
        auth_unknown(0, "198.51.100.12", "nobody@example.org"),
        imap_login(0, "198.51.100.9", "bob@example.org"),
        sogo_fail(0, "192.0.2.9", "bob@example.org"),
        sogo_ok(0, "192.0.2.9", "bob@example.org"),
        relay_denied(0, "45.141.84.120"),
        rspamd_task(
            0,
            7,
            "ceo@example.org",
            "SPOOFED_UNAUTH(5.00){},DMARC_POLICY_REJECT(2.00){example.org;reject;}",
        ),
        postfix_start(0),
        dovecot_start(0),
        mariadb_start(0),
        format!(
            "{} 0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 11.4.2.",
            mariadb_at(0)
        ),
    ];
    v.extend(submission(
        0,
        1,
        "carol@example.org",
        "203.0.113.44",
        "xyovt@example.org",
        &[("a@x.example", Out::Sent), ("b@y.example", Out::Bounced)],
    ));
    v.extend(submission(
        0,
        2,
        "carol@example.org",
        "203.0.113.44",
        "carol@example.org",
        &[("c@z.example", Out::Deferred), ("d@w.example", Out::Blocklisted)],
    ));
    v.extend(pickup(0, 3, 33, "www@example.org", &[("e@v.example", Out::Sent)]));
    v.extend(unauth(
        0,
        4,
        "172.22.1.12",
        "billing@example.org",
        &[("victim@bank.example", Out::Sent)],
        None,
    ));
    v
}

/// Moves the line's time by `secs` (both stamp forms used in the pool).
pub(super) fn retime(line: &str, secs: i64) -> String {
    let base = at(0);
    if let Some(rest) = line.strip_prefix(&base) {
        return format!("{}{rest}", at(secs));
    }
    let m = mariadb_at(0);
    match line.strip_prefix(&m) {
        Some(rest) => format!("{}{rest}", mariadb_at(secs)),
        None => line.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_orders_never_panic_and_stay_bounded(
        picks in proptest::collection::vec((0usize..64, -3_600i64..200_000, 0u8..4), 1..400),
        max_keys in 16usize..64,
    ) {
        let pool = pool();
        let lines: Vec<String> = picks
            .iter()
            .map(|(i, t, ip)| {
                let l = retime(&pool[i % pool.len()], *t);
                // Vary the attacker address a little.
                l.replace("203.0.113.5", &format!("203.0.113.{}", 5 + ip))
            })
            .collect();
        let cfg = DetectConfig {
            max_keys,
            directory: Some(Arc::new(AddressSet {
                addresses: BTreeSet::from(["carol@example.org".to_owned()]),
                domains: BTreeSet::from(["example.org".to_owned()]),
            })),
            ..our_config()
        };
        let (alerts, engine) = run_with(cfg, &lines);
        let stats = engine.stats();
        for r in &stats.rules {
            // Per-rule states are capped at max_keys each (a rule may hold two).
            prop_assert!(r.keys <= 2 * max_keys.max(16) + 64, "{} keeps {}", r.rule, r.keys);
        }
        prop_assert_eq!(engine.open_alerts(), 0);
        for a in &alerts {
            prop_assert!(a.first <= a.last, "{:?}", a);
            prop_assert!(a.evidence.len() <= 10);
            prop_assert!(a.facts.values().all(|v| v.len() <= MAX_FACT_VALUES + 1));
            prop_assert!(RULES.iter().any(|r| r.id == a.rule));
        }
        // The same input gives the same alerts.
        let cfg2 = DetectConfig { max_keys, ..our_config() };
        let cfg3 = DetectConfig { max_keys, ..our_config() };
        let x = serde_json::to_string(&run_with(cfg2, &lines).0).unwrap();
        let y = serde_json::to_string(&run_with(cfg3, &lines).0).unwrap();
        prop_assert_eq!(x, y);
    }
}
