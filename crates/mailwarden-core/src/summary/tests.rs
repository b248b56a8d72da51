//! Summary semantics on small hand-checked inputs. The full report is
//! snapshot-tested on the lab sample in the binary's integration tests.

use super::*;
use crate::event::Position;
use crate::framing::{Format, Framer, FramerConfig};
use crate::parse::with_event;
use crate::stitch::{StitchConfig, Stitcher};
use crate::time::{TimeContext, parse_rfc3339_prefix};

fn summarize(lines: &[&str], cfg: SummaryConfig) -> Summary {
    let reference = parse_rfc3339_prefix(b"2023-12-31T00:00:00Z").unwrap().0;
    let mut framer = Framer::new(FramerConfig {
        format: Format::Auto,
        program_hint: None,
        time: TimeContext::utc(reference),
    });
    let mut st = Stitcher::new(StitchConfig::default());
    let mut sum = Summarizer::new(cfg);
    for (i, line) in lines.iter().enumerate() {
        let pos = Position {
            source: 0,
            line: i as u64 + 1,
        };
        with_event(&mut framer, line, |ev| {
            sum.on_event(pos, line, ev);
            st.feed(pos, line, ev);
        });
        while let Some(r) = st.pop() {
            sum.on_message(&r);
        }
    }
    st.finish();
    while let Some(r) = st.pop() {
        sum.on_message(&r);
    }
    sum.set_stitch_stats(st.stats().clone());
    sum.finish()
}

const TRAFFIC: &[&str] = &[
    // An inbound message through amavis (re-injected on 10025).
    "2023-03-14T00:08:33+01:00 helga postfix/smtpd[1]: connect from mail.example.cz[185.31.160.120]",
    "2023-03-14T00:08:33+01:00 helga postfix/smtpd[1]: 4PbC4x469Jz3tBr: client=mail.example.cz[185.31.160.120]",
    "2023-03-14T00:08:33+01:00 helga postfix/cleanup[2]: 4PbC4x469Jz3tBr: message-id=<m1@example.cz>",
    "2023-03-14T00:08:33+01:00 helga postfix/qmgr[3]: 4PbC4x469Jz3tBr: from=<a@example.cz>, size=1000, nrcpt=1 (queue active)",
    "2023-03-14T00:08:34+01:00 helga postfix/smtpd[1]: disconnect from mail.example.cz[185.31.160.120] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    "2023-03-14T00:08:35+01:00 helga postfix/10025/smtpd[4]: 4PbC4z6W5Qz3tG3: client=localhost[127.0.0.1]",
    "2023-03-14T00:08:35+01:00 helga postfix/cleanup[2]: 4PbC4z6W5Qz3tG3: message-id=<m1@example.cz>",
    "2023-03-14T00:08:35+01:00 helga postfix/qmgr[3]: 4PbC4z6W5Qz3tG3: from=<a@example.cz>, size=1200, nrcpt=1 (queue active)",
    "2023-03-14T00:08:35+01:00 helga postfix/amavis/smtp[5]: 4PbC4x469Jz3tBr: to=<u@local.test>, relay=127.0.0.1[127.0.0.1]:10024, delay=2, delays=0/0/0/2, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)",
    "2023-03-14T00:08:35+01:00 helga postfix/qmgr[3]: 4PbC4x469Jz3tBr: removed",
    "2023-03-14T00:08:36+01:00 helga postfix/pipe[6]: 4PbC4z6W5Qz3tG3: to=<u@local.test>, relay=dovecot, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)",
    "2023-03-14T00:08:36+01:00 helga postfix/qmgr[3]: 4PbC4z6W5Qz3tG3: removed",
    // An authenticated submission to two remote recipients, one deferred.
    "2023-03-14T01:00:00+01:00 helga postfix/submission/smtpd[7]: 4PbD000000z3tBr: client=unknown[198.51.100.7], sasl_method=PLAIN, sasl_username=alice@local.test",
    "2023-03-14T01:00:00+01:00 helga postfix/cleanup[2]: 4PbD000000z3tBr: message-id=<m2@local.test>",
    "2023-03-14T01:00:00+01:00 helga postfix/qmgr[3]: 4PbD000000z3tBr: from=<alice@local.test>, size=500, nrcpt=2 (queue active)",
    "2023-03-14T01:00:01+01:00 helga postfix/smtp[8]: 4PbD000000z3tBr: to=<x@remote.example>, relay=mx.remote.example[203.0.113.5]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABCDEF1234)",
    "2023-03-14T01:00:01+01:00 helga postfix/smtp[8]: 4PbD000000z3tBr: to=<y@other.example>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to mx.other.example[203.0.113.9]:25: Connection refused)",
    // Spoofed sender: our domain, not authenticated, accepted for a local user.
    "2023-03-14T02:00:00+01:00 helga postfix/smtpd[9]: 4PbE000000z3tBr: client=bad.example[192.0.2.66]",
    "2023-03-14T02:00:00+01:00 helga postfix/cleanup[2]: 4PbE000000z3tBr: message-id=<m3@bad.example>",
    "2023-03-14T02:00:00+01:00 helga postfix/qmgr[3]: 4PbE000000z3tBr: from=<xyovt@local.test>, size=300, nrcpt=1 (queue active)",
    "2023-03-14T02:00:01+01:00 helga postfix/pipe[6]: 4PbE000000z3tBr: to=<u@local.test>, relay=dovecot, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)",
    "2023-03-14T02:00:01+01:00 helga postfix/qmgr[3]: 4PbE000000z3tBr: removed",
    // Rejections and failures.
    "2023-03-14T03:00:00+01:00 helga postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[192.0.2.99]: 454 4.7.1 <z@elsewhere.example>: Relay access denied; from=<s@spam.example> to=<z@elsewhere.example> proto=ESMTP helo=<x>",
    "2023-03-14T03:00:01+01:00 helga postfix/postscreen[10]: NOQUEUE: reject: RCPT from [192.0.2.100]:4984: 550 5.7.1 Service unavailable; client [192.0.2.100] blocked using zen.spamhaus.org; from=<a@b.example>, to=<u@local.test>, proto=ESMTP, helo=<b>",
    "2023-03-14T03:00:02+01:00 helga postfix/submission/smtpd[7]: warning: unknown[192.0.2.55]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    "2023-03-14T03:00:03+01:00 helga postfix/submission/smtpd[7]: disconnect from unknown[192.0.2.55] ehlo=1 auth=0/1 quit=1 commands=2/3",
    "2023-03-14T03:00:04+01:00 helga postfix/postscreen[10]: PREGREET 11 after 0.23 from [192.0.2.101]:59187: EHLO User\\r\\n",
    "2023-03-14T03:00:04+01:00 helga postfix/dnsblog[11]: addr 192.0.2.101 listed by domain zen.spamhaus.org as 127.0.0.2",
    "2023-03-14T03:00:05+01:00 helga postfix/smtpd[9]: warning: TLS library problem: error",
    "2023-03-14T03:00:06+01:00 helga kernel: not mail",
];

#[test]
fn totals_count_each_message_once() {
    let s = summarize(TRAFFIC, SummaryConfig::default());
    let t = &s.totals;
    assert_eq!(t.received, 3);
    assert_eq!(t.delivered, 3, "the hand-off to amavis is not a delivery");
    assert_eq!(t.delivered_remote, 1);
    assert_eq!((t.deferred, t.deferrals), (1, 1));
    assert_eq!((t.rejected, t.rejected_smtpd, t.rejected_postscreen), (2, 1, 1));
    assert_eq!(t.reinjections_merged, 1);
    assert_eq!(
        t.bytes_received, 1800,
        "sizes as received, not the filtered copy's"
    );
    assert_eq!(s.lines.total as usize, TRAFFIC.len());
    assert_eq!(s.lines.unparsed, 1);
    assert_eq!(s.unparsed[0].reason, UnparsedReason::UnknownProgram);
    assert_eq!(s.unparsed[0].samples[0].position.line, TRAFFIC.len() as u64);
}

#[test]
fn security_sections() {
    let s = summarize(TRAFFIC, SummaryConfig::default());
    // Local domains are inferred from local deliveries and SASL names.
    assert_eq!(s.local_domains, vec!["local.test"]);
    let spoof = &s.unauthenticated_senders[0];
    assert_eq!(
        (spoof.sender.as_str(), spoof.claims_local_domain),
        ("xyovt@local.test", true)
    );
    assert_eq!(spoof.clients, vec!["192.0.2.66"]);
    assert!(
        s.unauthenticated_relay.is_empty(),
        "nothing unauthenticated left for another server"
    );
    let alice = &s.sasl.users[0];
    assert_eq!(
        (
            alice.user.as_str(),
            alice.messages,
            alice.recipients,
            alice.remote_recipients
        ),
        ("alice@local.test", 1, 2, 2)
    );
    assert_eq!(s.sasl.failures, 1);
    assert_eq!(s.sasl.failed_auth_sessions[0].key, "192.0.2.55");
    assert_eq!(s.postscreen.pregreet, 1);
    assert_eq!(s.postscreen.dnsbl_zones[0].key, "zen.spamhaus.org");
    assert_eq!(s.rejects.len(), 2);
    assert!(s.rejects.iter().any(|g| g.reason == "Relay access denied"));
    assert!(
        s.rejects
            .iter()
            .any(|g| g.reason == "Service unavailable; client […] blocked using zen.spamhaus.org"),
        "{:?}",
        s.rejects
    );
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.smtpd.connections, 1);
    assert!((s.smtpd.total_seconds - 1.0).abs() < 1e-6);
}

#[test]
fn per_day_uses_log_local_time() {
    let s = summarize(TRAFFIC, SummaryConfig::default());
    assert_eq!(s.per_day.len(), 1);
    assert_eq!(s.per_day[0].date.unwrap().to_string(), "2023-03-14");
    assert_eq!(
        s.per_hour[0].received, 1.0,
        "00:08 local, although 23:08 UTC the day before"
    );
}

#[test]
fn configured_local_domain_flags_senders() {
    let lines = [
        "2023-03-14T02:00:00+01:00 h postfix/smtpd[9]: AAAAAA1: client=x[192.0.2.66]",
        "2023-03-14T02:00:00+01:00 h postfix/qmgr[3]: AAAAAA1: from=<ceo@company.example>, size=300, nrcpt=1 (queue active)",
        "2023-03-14T02:00:01+01:00 h postfix/smtp[6]: AAAAAA1: to=<v@victim.example>, relay=mx.victim.example[203.0.113.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)",
        "2023-03-14T02:00:01+01:00 h postfix/qmgr[3]: AAAAAA1: removed",
    ];
    let s = summarize(
        &lines,
        SummaryConfig {
            local_domains: vec!["Company.Example".into()],
            ..SummaryConfig::default()
        },
    );
    assert!(s.unauthenticated_senders[0].claims_local_domain);
    // …and it left for another server without authentication: an open relay.
    assert_eq!(s.unauthenticated_relay.len(), 1);
    assert_eq!(s.unauthenticated_relay[0].client, "192.0.2.66");
}

#[test]
fn reasons_generalise() {
    assert_eq!(
        normalize_reason("<x@y.example>: Recipient address rejected: User unknown in virtual mailbox table"),
        "Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(
        normalize_reason("Client host [192.0.2.1] blocked using zen.spamhaus.org; see <https://x>"),
        "Client host […] blocked using zen.spamhaus.org; see <https://x>"
    );
    assert_eq!(
        normalize_reason("contains \u{1b}[31m escape"),
        "contains \\x1b[31m escape"
    );
}

#[test]
fn text_report_escapes_and_mentions_every_section() {
    let mut lines: Vec<&str> = TRAFFIC.to_vec();
    lines.push("2023-03-14T04:00:00+01:00 helga postfix/smtpd[9]: warning: non-SMTP command from unknown[192.0.2.9]: \u{1b}]0;pwned\u{7}");
    let s = summarize(&lines, SummaryConfig::default());
    let text = render_text(&s);
    assert!(
        !text.contains('\u{1b}'),
        "control characters reach the terminal escaped"
    );
    for section in [
        "Grand Totals",
        "Per-Day Traffic Summary",
        "Per-Hour Traffic Daily Average",
        "Host/Domain Summary: Message Delivery",
        "Message reject detail",
        "postscreen and DNSBLs",
        "Authenticated submission by SASL user",
        "Senders that never authenticated",
        "Unauthenticated mail relayed to other servers",
        "Unparsed lines",
    ] {
        assert!(text.contains(section), "missing {section}");
    }
    assert!(text.contains("<< claims a local domain without login"));
}
