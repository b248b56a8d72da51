//! Micro-benchmarks of the core pipeline on real lines.
//!
//! `LINES` are 42 lines copied from the public production corpus
//! (`logs/postfix-production/test/mail.log.gz`: rsyslog's file format with
//! RFC 3339 stamps and long queue ids), in log order: postscreen CONNECT/PASS/
//! PREGREET/DNSBL/HANGUP/DISCONNECT and NOQUEUE reject, dnsblog, tlsproxy, smtpd
//! connect/TLS/client=/disconnect and NOQUEUE reject, one message through amavis
//! (cleanup message-id, qmgr from=/removed, the amavis/smtp hand-off, amavis's
//! `Passed CLEAN`, the re-injected copy and its pipe delivery), anvil.
//!
//! Groups (throughput in lines, `Throughput::Elements`):
//! * `parse`: framing alone, and framing + parsing into typed events, with the
//!   framing detected per line (`auto`, what the CLI does) or forced (`rfc3339`).
//! * `pipeline`: framing + parsing + stitching, and the same plus the summary,
//!   with the state kept across iterations as when reading one long log (each
//!   batch completes its message, so the open state does not grow).
//!
//! Run: `cargo bench -p mailwarden-core --bench parse` (add `-- --quick` for a
//! short run). `bench/logs.sh` measures the same work end to end on whole files.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailwarden_core::event::Position;
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::parse::with_event;
use mailwarden_core::stitch::{StitchConfig, Stitcher};
use mailwarden_core::summary::{Summarizer, SummaryConfig};
use mailwarden_core::time::{TimeContext, parse_rfc3339_prefix};

/// Real lines from the production corpus, in log order (lines 27–32, 38–47,
/// 81–102, 201, 335, 470 and 1801 of the test log).
const LINES: &[&str] = &[
    r#"2023-03-14T00:03:53.704542+01:00 helga postfix/postscreen[3163107]: CONNECT from [180.214.239.18]:37981 to [188.34.187.246]:25"#,
    r#"2023-03-14T00:03:53.821285+01:00 helga postfix/dnsblog[301152]: addr 180.214.239.18 listed by domain zen.spamhaus.org as 127.0.0.2"#,
    r#"2023-03-14T00:03:53.821729+01:00 helga postfix/dnsblog[301152]: addr 180.214.239.18 listed by domain zen.spamhaus.org as 127.0.0.4"#,
    r#"2023-03-14T00:03:53.935643+01:00 helga postfix/postscreen[3163107]: PREGREET 11 after 0.23 from [180.214.239.18]:37981: EHLO User\r\n"#,
    r#"2023-03-14T00:03:53.936198+01:00 helga postfix/postscreen[3163107]: DNSBL rank 3 for [180.214.239.18]:37981"#,
    r#"2023-03-14T00:03:54.389385+01:00 helga postfix/postscreen[3163107]: DISCONNECT [180.214.239.18]:37981"#,
    r#"2023-03-14T00:04:58.488007+01:00 helga postfix/postscreen[3163107]: CONNECT from [122.189.87.41]:52908 to [188.34.187.246]:25"#,
    r#"2023-03-14T00:04:58.537057+01:00 helga postfix/dnsblog[301152]: addr 122.189.87.41 listed by domain zen.spamhaus.org as 127.0.0.3"#,
    r#"2023-03-14T00:04:58.537505+01:00 helga postfix/dnsblog[301152]: addr 122.189.87.41 listed by domain zen.spamhaus.org as 127.0.0.11"#,
    r#"2023-03-14T00:04:58.537768+01:00 helga postfix/dnsblog[301152]: addr 122.189.87.41 listed by domain zen.spamhaus.org as 127.0.0.4"#,
    r#"2023-03-14T00:05:04.922544+01:00 helga postfix/postscreen[3163107]: DNSBL rank 3 for [122.189.87.41]:52908"#,
    r#"2023-03-14T00:05:05.352143+01:00 helga postfix/tlsproxy[301555]: CONNECT from [122.189.87.41]:52908"#,
    r#"2023-03-14T00:05:05.999028+01:00 helga postfix/tlsproxy[301555]: Anonymous TLS connection established from [122.189.87.41]:52908: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"#,
    r#"2023-03-14T00:05:07.150928+01:00 helga postfix/tlsproxy[301555]: DISCONNECT [122.189.87.41]:52908"#,
    r#"2023-03-14T00:05:07.151411+01:00 helga postfix/postscreen[3163107]: HANGUP after 2.2 from [122.189.87.41]:52908 in tests after SMTP handshake"#,
    r#"2023-03-14T00:05:07.151573+01:00 helga postfix/postscreen[3163107]: DISCONNECT [122.189.87.41]:52908"#,
    r#"2023-03-14T00:08:26.300084+01:00 helga postfix/postscreen[3163107]: CONNECT from [185.31.160.120]:41695 to [188.34.187.246]:25"#,
    r#"2023-03-14T00:08:31.184425+01:00 helga postfix/postscreen[3163107]: CONNECT from [185.48.118.128]:55566 to [188.34.187.246]:25"#,
    r#"2023-03-14T00:08:31.595009+01:00 helga postfix/postscreen[3163107]: PASS OLD [185.48.118.128]:55566"#,
    r#"2023-03-14T00:08:31.618176+01:00 helga postfix/smtpd[297535]: connect from host1.uhu-banane.de[185.48.118.128]"#,
    r#"2023-03-14T00:08:31.653001+01:00 helga postfix/smtpd[297535]: Anonymous TLS connection established from host1.uhu-banane.de[185.48.118.128]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"#,
    r#"2023-03-14T00:08:31.666085+01:00 helga postfix/smtpd[297535]: disconnect from host1.uhu-banane.de[185.48.118.128] ehlo=2 starttls=1 quit=1 commands=4"#,
    r#"2023-03-14T00:08:32.597967+01:00 helga postfix/postscreen[3163107]: PASS OLD [185.31.160.120]:41695"#,
    r#"2023-03-14T00:08:33.348115+01:00 helga postfix/smtpd[297535]: connect from mail.nistoresio.co.cz[185.31.160.120]"#,
    r#"2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: 4PbC4x469Jz3tBr: client=mail.nistoresio.co.cz[185.31.160.120]"#,
    r#"2023-03-14T00:08:33.628392+01:00 helga postfix/cleanup[302604]: 4PbC4x469Jz3tBr: message-id=<71816687N65284230Y01410375Q67285060N@ajmyjyz>"#,
    r#"2023-03-14T00:08:33.786682+01:00 helga postfix/smtpd[297535]: disconnect from mail.nistoresio.co.cz[185.31.160.120] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"#,
    r#"2023-03-14T00:08:33.787870+01:00 helga postfix/qmgr[3163066]: 4PbC4x469Jz3tBr: from=<ajmyjyz@nistoresio.co.cz>, size=175061, nrcpt=1 (queue active)"#,
    r#"2023-03-14T00:08:35.911679+01:00 helga postfix/10025/smtpd[302614]: connect from localhost[127.0.0.1]"#,
    r#"2023-03-14T00:08:35.917122+01:00 helga postfix/10025/smtpd[302614]: 4PbC4z6W5Qz3tG3: client=localhost[127.0.0.1]"#,
    r#"2023-03-14T00:08:35.921013+01:00 helga postfix/cleanup[302604]: 4PbC4z6W5Qz3tG3: message-id=<71816687N65284230Y01410375Q67285060N@ajmyjyz>"#,
    r#"2023-03-14T00:08:35.925532+01:00 helga postfix/10025/smtpd[302614]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"#,
    r#"2023-03-14T00:08:35.925875+01:00 helga postfix/qmgr[3163066]: 4PbC4z6W5Qz3tG3: from=<ajmyjyz@nistoresio.co.cz>, size=175919, nrcpt=1 (queue active)"#,
    r#"2023-03-14T00:08:35.940347+01:00 helga amavis[237978]: (237978-11) Passed CLEAN {RelayedInbound}, [185.31.160.120]:41695 [45.141.85.146] ESMTP/ESMTP <ajmyjyz@nistoresio.co.cz> -> <user01.test@uhu-banane.net>, (ESMTP://[185.31.160.120]:41695 < ESMTPA://45.141.85.146), Queue-ID: 4PbC4x469Jz3tBr, Message-ID: <71816687N65284230Y01410375Q67285060N@ajmyjyz>, mail_id: VQpGETLS8yJc, b: _dAm-dg2M, Hits: 2.913, size: 175061, queued_as: 4PbC4z6W5Qz3tG3, Subject: "Individuelle Prognose für den Gewichtsverlust (raw: =?utf-8?B?SW5kaXZpZHVlbGxlIFByb2dub3NlIGbDvHIgZGVuIEdld2ljaHRzdmVybHVzdA==?=)", From: <ajmyjyz@nistoresio.co.cz>, helo=mail.nistoresio.co.cz, Tests: [BAYES_20=-0.001,HTML_IMAGE_ONLY_08=1.651,HTML_IMAGE_RATIO_02=0.001,HTML_MESSAGE=0.001,HTML_SHORT_LINK_IMG_1=0.001,SPF_HELO_NONE=0.001,SPF_PASS=-0.001,T_TVD_MIME_EPI=0.01,URIBL_ABUSE_SURBL=1.25], autolearn=no autolearn_force=no, autolearnscore=3.881, 2131 ms"#,
    r#"2023-03-14T00:08:35.948047+01:00 helga postfix/amavis/smtp[302609]: 4PbC4x469Jz3tBr: to=<user01.test@uhu-banane.net>, orig_to=<frank@brehm-berlin.de>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)"#,
    r#"2023-03-14T00:08:35.948639+01:00 helga postfix/qmgr[3163066]: 4PbC4x469Jz3tBr: removed"#,
    r#"2023-03-14T00:08:36.037018+01:00 helga postfix/pipe[302615]: 4PbC4z6W5Qz3tG3: to=<user01.test@uhu-banane.net>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)"#,
    r#"2023-03-14T00:08:36.037498+01:00 helga postfix/qmgr[3163066]: 4PbC4z6W5Qz3tG3: removed"#,
    r#"2023-03-14T00:16:33.282451+01:00 helga postfix/anvil[3163161]: statistics: max cache size 2 at Mar 14 00:08:33"#,
    r#"2023-03-14T00:26:51.985219+01:00 helga postfix/postscreen[3163107]: NOQUEUE: reject: RCPT from [185.246.220.193]:62795: 550 5.7.1 Service unavailable; client [185.246.220.193] blocked using zen.spamhaus.org; from=<ripe@uhu-banane.de>, to=<zzzzzzzzzzzzzzzzzezihe@hotmail.com>, proto=ESMTP, helo=<3BqSwxw>"#,
    r#"2023-03-14T00:37:06.630804+01:00 helga postfix/smtpd[304356]: NOQUEUE: reject: RCPT from smtp.csp.res.in[117.244.254.50]: 450 4.1.8 <sabrina@S510.gigasys>: Sender address rejected: Domain not found; from=<sabrina@S510.gigasys> to=<user01.test@uhu-banane.net> proto=ESMTP helo=<galaxy.csp.res.in>"#,
    r#"2023-03-14T02:47:08.105903+01:00 helga postfix/submission/smtpd[312857]: lost connection after STARTTLS from scanner-25.ch1.censys-scanner.com[162.142.125.223]"#,
];

fn framer(format: Format) -> Framer {
    // Year-less stamps would be placed at or before the reference; these lines
    // all carry a year and an offset, so it is only there because it must be.
    let reference = parse_rfc3339_prefix(b"2023-03-17T00:00:00Z")
        .expect("a valid stamp")
        .0;
    Framer::new(FramerConfig {
        format,
        program_hint: None,
        time: TimeContext::utc(reference),
    })
}

/// The next position of one long input: line numbers keep counting across iterations.
fn next_pos(line: &mut u64) -> Position {
    *line += 1;
    Position {
        source: 0,
        line: *line,
    }
}

/// Checks once that the sample is what the benchmark claims: every line parses
/// and one batch stitches into exactly one message.
fn check_sample() {
    let mut fr = framer(Format::Auto);
    let mut st = Stitcher::new(StitchConfig::default());
    let mut line_no = 0;
    let mut messages = 0;
    for line in LINES {
        let pos = next_pos(&mut line_no);
        with_event(&mut fr, line, |ev| {
            assert!(!ev.kind.is_unparsed(), "unparsed sample line: {line}");
            st.feed(pos, line, ev);
        });
        messages += std::iter::from_fn(|| st.pop()).count();
    }
    st.finish();
    messages += std::iter::from_fn(|| st.pop()).count();
    assert_eq!(messages, 1, "the sample should stitch into one message");
}

fn parse(c: &mut Criterion) {
    check_sample();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(LINES.len() as u64));

    let mut fr = framer(Format::Auto);
    g.bench_function("frame/auto", |b| {
        b.iter(|| {
            for line in LINES {
                let _ = black_box(fr.frame(black_box(line)));
            }
        })
    });

    for (name, format) in [("auto", Format::Auto), ("rfc3339", Format::Rfc3339)] {
        let mut fr = framer(format);
        g.bench_function(format!("frame+parse/{name}"), |b| {
            b.iter(|| {
                for line in LINES {
                    with_event(&mut fr, black_box(line), |ev| {
                        black_box(ev);
                    });
                }
            })
        });
    }
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(LINES.len() as u64));

    let mut fr = framer(Format::Auto);
    let mut st = Stitcher::new(StitchConfig::default());
    let mut line_no = 0;
    g.bench_function("parse+stitch", |b| {
        b.iter(|| {
            for line in LINES {
                let pos = next_pos(&mut line_no);
                with_event(&mut fr, black_box(line), |ev| st.feed(pos, line, ev));
                while let Some(rec) = st.pop() {
                    black_box(rec);
                }
            }
        })
    });

    let mut fr = framer(Format::Auto);
    let mut st = Stitcher::new(StitchConfig::default());
    let mut sum = Summarizer::new(SummaryConfig::default());
    let mut line_no = 0;
    g.bench_function("parse+stitch+summary", |b| {
        b.iter(|| {
            for line in LINES {
                let pos = next_pos(&mut line_no);
                with_event(&mut fr, black_box(line), |ev| {
                    sum.on_event(pos, line, ev);
                    st.feed(pos, line, ev);
                });
                while let Some(rec) = st.pop() {
                    sum.on_message(&rec);
                }
            }
        })
    });
    g.finish();
    black_box(sum.finish());
}

criterion_group!(benches, parse, pipeline);
criterion_main!(benches);
