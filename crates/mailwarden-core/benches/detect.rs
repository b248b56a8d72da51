//! Rule-evaluation throughput of the detection engine with every built-in
//! rule enabled, against the parse+stitch anchor measured in the same run,
//! and the memory one tracked key costs.
//!
//! The workload is one log built from real line shapes (the production
//! corpus' postscreen, dnsblog, tlsproxy, smtpd and amavis lines; Postfix
//! SASL and Dovecot failures, submissions, an Rspamd verdict), one line per
//! second, in blocks of 100 lines: 62 lines of inbound background traffic,
//! one inbound message through amavis (11 lines), one authenticated
//! submission (6 lines), 15 login failures from a pool of 1,000 attacker
//! addresses and 20 accounts, 4 logins and 2 Rspamd lines. Attacks are a
//! tenth of the lines — far more than the production corpus, which has none —
//! so the rules do real work.
//!
//! Groups (throughput in lines, `Throughput::Elements`):
//! * `detect/engine`: the engine alone over pre-parsed events and the
//!   stitcher's records (a fresh engine per batch of 10,000 lines).
//! * `detect/engine+5 user rules`: the same with five user rules
//!   ([`USER_RULES`]: cheap alias fields, JSON fields on frequent lines, a
//!   raw-line search, a distinct count and a message rule) beside the
//!   built-ins; against `detect/engine` it is the user rules' cost.
//! * `detect/pipeline`: frame+parse+stitch (the anchor) and
//!   frame+parse+stitch+engine; their ratio is the rules' cost.
//!
//! Before the groups, `main` prints the resident memory per tracked key,
//! measured by feeding 200,000 distinct attacker addresses (one SASL failure
//! each: three keys per address — brute force, slow guessing, and the
//! failures half of success-after-failures) and reading `/proc/self/statm`
//! before and after.
//!
//! Run: `cargo bench -p mailwarden-core --bench detect` (add `-- --quick`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use std::sync::Arc;

use mailwarden_core::detect::{DetectConfig, Engine, RuleSet};
use mailwarden_core::event::{Event, Position};
use mailwarden_core::framing::{Format, Framed, Framer, FramerConfig};
use mailwarden_core::parse::{parse_framed, with_event};
use mailwarden_core::stitch::{MessageRecord, StitchConfig, Stitcher};
use mailwarden_core::time::{TimeContext, Timestamp};

/// 2023-03-14T00:00:00+01:00.
const BASE: i64 = 1_678_748_400;
const LINES: usize = 10_000;

fn at(secs: i64) -> String {
    Timestamp {
        unix_micros: (BASE + secs) * 1_000_000 + 123_456,
        offset_secs: 3600,
    }
    .to_string()
}

/// The workload (see the module docs).
fn workload(n: usize) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(n + 100);
    let mut t = 0i64;
    let mut block = 0u64;
    while v.len() < n {
        let mut b: Vec<String> = Vec::with_capacity(100);
        let ip = format!("180.214.{}.{}", block % 200, block % 250);
        for k in 0..6 {
            let p = 30_000 + k;
            b.push(format!(
                "postfix/postscreen[3163107]: CONNECT from [{ip}]:{p} to [188.34.187.246]:25"
            ));
            b.push(format!(
                "postfix/dnsblog[301152]: addr {ip} listed by domain zen.spamhaus.org as 127.0.0.2"
            ));
            b.push(format!(
                "postfix/postscreen[3163107]: PREGREET 11 after 0.23 from [{ip}]:{p}: EHLO User\\r\\n"
            ));
            b.push(format!(
                "postfix/postscreen[3163107]: DNSBL rank 3 for [{ip}]:{p}"
            ));
            b.push(format!("postfix/postscreen[3163107]: DISCONNECT [{ip}]:{p}"));
            b.push(format!("postfix/tlsproxy[301555]: CONNECT from [{ip}]:{p}"));
            b.push(format!("postfix/tlsproxy[301555]: DISCONNECT [{ip}]:{p}"));
            b.push(
                "postfix/postscreen[3163107]: CONNECT from [185.48.118.128]:55566 to [188.34.187.246]:25"
                    .into(),
            );
            b.push("postfix/postscreen[3163107]: PASS OLD [185.48.118.128]:55566".into());
            b.push("postfix/smtpd[297535]: connect from host1.uhu-banane.de[185.48.118.128]".into());
        }
        b.push("postfix/smtpd[297535]: disconnect from host1.uhu-banane.de[185.48.118.128] ehlo=2 starttls=1 quit=1 commands=4".into());
        b.push("postfix/anvil[3163161]: statistics: max cache size 2 at Mar 14 00:08:33".into());
        // An inbound message through amavis.
        let q1 = format!("4Pb{:07}z3tBr", block * 2);
        let q2 = format!("4Pb{:07}z3tG3", block * 2 + 1);
        b.push(format!(
            "postfix/smtpd[297535]: {q1}: client=mail.nistoresio.co.cz[185.31.160.120]"
        ));
        b.push(format!(
            "postfix/cleanup[302604]: {q1}: message-id=<{block}N65284230Y01410375Q67285060N@ajmyjyz>"
        ));
        b.push(format!("postfix/qmgr[3163066]: {q1}: from=<ajmyjyz@nistoresio.co.cz>, size=175061, nrcpt=1 (queue active)"));
        b.push(format!(
            "postfix/10025/smtpd[302614]: {q2}: client=localhost[127.0.0.1]"
        ));
        b.push(format!(
            "postfix/cleanup[302604]: {q2}: message-id=<{block}N65284230Y01410375Q67285060N@ajmyjyz>"
        ));
        b.push(format!("postfix/qmgr[3163066]: {q2}: from=<ajmyjyz@nistoresio.co.cz>, size=175919, nrcpt=1 (queue active)"));
        b.push(format!("amavis[237978]: (237978-11) Passed CLEAN {{RelayedInbound}}, [185.31.160.120]:41695 [45.141.85.146] ESMTP/ESMTP <ajmyjyz@nistoresio.co.cz> -> <user01.test@uhu-banane.net>, Queue-ID: {q1}, Message-ID: <{block}N65284230Y01410375Q67285060N@ajmyjyz>, mail_id: VQpGETLS8yJc, Hits: 2.913, size: 175061, queued_as: {q2}, 2131 ms"));
        b.push(format!("postfix/amavis/smtp[302609]: {q1}: to=<user01.test@uhu-banane.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {q2})"));
        b.push(format!("postfix/qmgr[3163066]: {q1}: removed"));
        b.push(format!("postfix/pipe[302615]: {q2}: to=<user01.test@uhu-banane.net>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)"));
        b.push(format!("postfix/qmgr[3163066]: {q2}: removed"));
        // An authenticated submission.
        let q3 = format!("4Pc{:07}z3tBr", block);
        let user = format!("user{:02}@uhu-banane.net", block % 20);
        b.push(format!("postfix/submission/smtpd[303987]: {q3}: client=host1.uhu-banane.de[185.48.118.128], sasl_method=PLAIN, sasl_username={user}"));
        b.push(format!(
            "postfix/cleanup[302604]: {q3}: message-id=<{q3}@uhu-banane.net>"
        ));
        b.push(format!(
            "postfix/qmgr[3163066]: {q3}: from=<{user}>, size=2345, nrcpt=2 (queue active)"
        ));
        b.push(format!("postfix/smtp[3004]: {q3}: to=<a{block}@partner{}.example>, relay=mx.partner.example[198.51.100.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X1)", block % 7));
        b.push(format!("postfix/smtp[3004]: {q3}: to=<b{block}@partner.example>, relay=mx.partner.example[198.51.100.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=4.4.1, status=deferred (connect to mx.partner.example[198.51.100.25]:25: Connection timed out)"));
        b.push(format!("postfix/qmgr[3163066]: {q3}: removed"));
        // Login failures from a pool of 1,000 addresses, 20 accounts.
        for k in 0..10u64 {
            let a = (block * 10 + k) % 1000;
            b.push(format!("postfix/submission/smtpd[2001]: warning: unknown[45.141.{}.{}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", a / 250, a % 250));
        }
        for k in 0..5u64 {
            let a = (block * 5 + k) % 1000;
            let u = format!("user{:02}@uhu-banane.net", (block + k) % 20);
            b.push(format!("dovecot[900]: imap-login: Disconnected (auth failed, 1 attempts in 4 secs): user=<{u}>, method=PLAIN, rip=45.141.{}.{}, lip=188.34.187.246, TLS, session=<s{block}{k}>", a / 250, a % 250));
        }
        for k in 0..4u64 {
            let u = format!("user{:02}@uhu-banane.net", (block + k) % 20);
            b.push(format!("dovecot[900]: imap-login: Login: user=<{u}>, method=PLAIN, rip=77.20.106.{}, lip=188.34.187.246, mpid=4242, TLS, session=<l{block}{k}>", k));
        }
        b.push(format!("rspamd[27538]: <8ae27d>; proxy; rspamd_task_write_log: id: <m{block}@x>, qid: <{q1}>, ip: 185.31.160.120, from: <ajmyjyz@nistoresio.co.cz>, (default: F (no action): [2.10/15.00] [BAYES_HAM(-3.00){{100.00%;}},R_SPF_ALLOW(-0.20){{+a;}}]), len: 175061, time: 750.636ms real, dns req: 47, digest: <b1035f4fb07162ba88053d9e38df9c93>, rcpts: <user01.test@uhu-banane.net>, "));
        b.push(format!("rspamd[27538]: <8ae27e>; proxy; rspamd_task_write_log: id: <s{block}@x>, qid: <{q3}>, ip: 203.0.113.9, from: <ceo@uhu-banane.net>, (default: T (reject): [19.20/15.00] [SPOOFED_UNAUTH(5.00){{}},DMARC_POLICY_REJECT(2.00){{uhu-banane.net;reject;}}]), len: 900, time: 12.000ms, dns req: 4, digest: <00000000000000000000000000000000>, rcpts: <user01.test@uhu-banane.net>, "));
        while b.len() < 100 {
            b.push("postfix/postscreen[3163107]: PASS OLD [185.48.118.128]:55566".into());
        }
        for l in b {
            v.push(format!("{} helga {l}", at(t)));
            t += 1;
        }
        block += 1;
    }
    v.truncate(n);
    v
}

fn framer() -> Framer {
    Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(Timestamp::from_unix_seconds(BASE + 86_400 * 30)),
    })
}

fn config() -> DetectConfig {
    DetectConfig {
        our_domains: vec!["uhu-banane.net".into()],
        ..DetectConfig::default()
    }
}

/// Five user rules of the kinds people write, over the workload's lines.
const USER_RULES: &str = r#"
rules:
  - id: imap-spraying
    title: Logins to many accounts from one address
    severity: high
    detection:
      selection:
        kind: dovecot
        event: login_aborted
        reason: auth_failed
    group_by: host
    distinct: user
    timeframe: 30m
    threshold: 5
  - id: sasl-failures-watched-net
    title: SASL failures from a watched network
    severity: medium
    detection:
      selection:
        kind: postfix
        event: sasl_auth_failed
        client_ip|cidr: [45.141.0.0/16, 203.0.113.0/24]
    timeframe: 10m
    threshold: 20
  - id: dnsbl-rank
    title: Clients listed on several blocklists
    severity: low
    detection:
      selection:
        kind: postfix
        event: screen_dnsbl_rank
        rank|gte: 3
    group_by: client_ip
    timeframe: 1h
    threshold: 5
  - id: spoofed-ceo
    title: Spoofed mail from our CEO
    severity: high
    detection:
      selection:
        kind: rspamd
        symbols.name: SPOOFED_UNAUTH
      keywords:
        - 'ceo@uhu-banane.net'
      condition: selection and keywords
    group_by: from
  - id: many-domains
    title: One account writes to many domains
    severity: high
    source: messages
    detection:
      selection:
        authenticated: true
    group_by: sasl_username
    distinct: recipient_domain
    timeframe: 1h
    threshold: 3
"#;

fn config_with_user_rules() -> DetectConfig {
    DetectConfig {
        user_rules: Arc::new(RuleSet::parse("bench.yaml", USER_RULES).expect("the bench rules compile")),
        ..config()
    }
}

/// Checks once that every line parses and the rules raise alerts.
fn check(lines: &[String]) {
    let mut fr = framer();
    let mut engine = Engine::new(config()).expect("config");
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut fr, line, |ev| {
            assert!(!ev.kind.is_unparsed(), "unparsed workload line: {line}");
            engine.feed_event(pos, line, ev);
        });
    }
    engine.finish();
    let alerts = engine.take_alerts();
    assert!(!alerts.is_empty(), "the workload should raise alerts");
    eprintln!("workload: {} lines, {} alerts", lines.len(), alerts.len());
    // The user rules see their lines (and the stitched messages) too.
    let mut engine = Engine::new(config_with_user_rules()).expect("config");
    let mut st = Stitcher::new(StitchConfig::default());
    let mut fr = framer();
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
    engine.finish();
    let user: Vec<String> = engine
        .take_alerts()
        .iter()
        .map(|a| a.rule.clone())
        .filter(|r| USER_RULES.contains(&format!("id: {r}\n")))
        .collect();
    let mut ids: Vec<&String> = user.iter().collect();
    ids.sort();
    ids.dedup();
    eprintln!("user rules: {} alerts ({ids:?})", user.len());
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Memory per tracked key: 200,000 attacker addresses, one failure each.
fn memory_per_key() {
    const KEYS: u32 = 200_000;
    let lines: Vec<String> = (0..KEYS)
        .map(|i| {
            format!(
                "{} helga postfix/submission/smtpd[2001]: warning: unknown[10.{}.{}.{}]: SASL LOGIN authentication \
                 failed: UGFzc3dvcmQ6",
                at(i64::from(i / 100)),
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let cfg = DetectConfig {
        max_keys: 1_000_000,
        ..config()
    };
    let mut engine = Engine::new(cfg).expect("config");
    let mut fr = framer();
    let before = rss();
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut fr, line, |ev| engine.feed_event(pos, line, ev));
    }
    let after = rss();
    let keys = engine.tracked_keys();
    if let (Some(b), Some(a)) = (before, after) {
        let per_key = a.saturating_sub(b) as f64 / keys.max(1) as f64;
        eprintln!(
            "memory: {keys} keys tracked (brute force, slow guessing, success-after-failures per address) \
             for {KEYS} addresses; RSS +{:.1} MiB = {per_key:.0} bytes per key \
             (each holds one failure; sample texts live in the shared 4 MiB ring, counted here too)",
            a.saturating_sub(b) as f64 / 1_048_576.0
        );
    } else {
        eprintln!("memory: /proc/self/statm not readable; per-key memory not measured");
    }
    black_box(engine);
}

fn bench_engine(c: &mut Criterion, lines: &[String]) {
    // Pre-parse: the events borrow from the framed lines.
    let mut fr = framer();
    let framed: Vec<Framed<'_>> = lines.iter().map(|l| fr.frame(l).expect("frames")).collect();
    let events: Vec<Event<'_>> = framed.iter().map(parse_framed).collect();
    // The stitcher's records, each after the event that finished it.
    let mut st = Stitcher::new(StitchConfig::default());
    let mut records: Vec<Vec<MessageRecord>> = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        st.feed(pos, &lines[i], ev);
        records.push(std::iter::from_fn(|| st.pop()).collect());
    }

    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("engine", |b| {
        b.iter_batched(
            || Engine::new(config()).expect("config"),
            |mut engine| {
                for (i, ev) in events.iter().enumerate() {
                    let pos = Position {
                        source: 0,
                        line: i as u64 + 1,
                    };
                    engine.feed_event(pos, &lines[i], ev);
                    for r in &records[i] {
                        engine.feed_record(r);
                    }
                }
                engine.finish();
                black_box(engine.take_alerts());
                engine
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("engine+5 user rules", |b| {
        b.iter_batched(
            || Engine::new(config_with_user_rules()).expect("config"),
            |mut engine| {
                for (i, ev) in events.iter().enumerate() {
                    let pos = Position {
                        source: 0,
                        line: i as u64 + 1,
                    };
                    engine.feed_event(pos, &lines[i], ev);
                    for r in &records[i] {
                        engine.feed_record(r);
                    }
                }
                engine.finish();
                black_box(engine.take_alerts());
                engine
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("parse+stitch (anchor)", |b| {
        b.iter_batched(
            || (framer(), Stitcher::new(StitchConfig::default())),
            |(mut fr, mut st)| {
                for (i, line) in lines.iter().enumerate() {
                    let pos = Position {
                        source: 0,
                        line: i as u64 + 1,
                    };
                    with_event(&mut fr, line, |ev| st.feed(pos, line, ev));
                    while let Some(r) = st.pop() {
                        black_box(r);
                    }
                }
                (fr, st)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("parse+stitch+engine", |b| {
        b.iter_batched(
            || {
                (
                    framer(),
                    Stitcher::new(StitchConfig::default()),
                    Engine::new(config()).expect("config"),
                )
            },
            |(mut fr, mut st, mut engine)| {
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
                engine.finish();
                black_box(engine.take_alerts());
                (fr, st, engine)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn main() {
    let lines = workload(LINES);
    check(&lines);
    memory_per_key();
    let mut c = Criterion::default().configure_from_args();
    bench_engine(&mut c, &lines);
    c.final_summary();
}
