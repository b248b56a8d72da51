use super::*;

use proptest::prelude::*;

fn cfg() -> SampleConfig {
    SampleConfig {
        our_hosts: vec!["mail.example.org".into(), "mx2.example.org".into()],
        our_ips: vec!["192.0.2.0/28".into(), "2001:db8:25::/48".into()],
        ..SampleConfig::default()
    }
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// Outbound mail from our own user, authenticated submission on port 587,
/// then delivered locally through Dovecot LMTP.
const SUBMISSION: &str = "\
Return-Path: <alice@example.org>
Delivered-To: bob@example.org
Received: from mail.example.org
\tby mail.example.org with LMTP
\tid kLmAAp2kvmXyLQAAp7vN3A
\t(envelope-from <alice@example.org>)
\tfor <bob@example.org>; Tue, 09 Jan 2024 14:02:11 +0100
Received: from [192.168.1.23] (dyn-203-0-113-77.isp.example.net [203.0.113.77])
\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
\t(No client certificate requested)
\t(Authenticated sender: alice)
\tby mail.example.org (Postfix) with ESMTPSA id 4T8Qm71YkJz3wZq
\tfor <bob@example.org>; Tue,  9 Jan 2024 14:02:10 +0100 (CET)
From: Alice Example <Alice@Example.org>
To: bob@example.org
Subject: =?UTF-8?Q?Rechnung_f=C3=BCr_Januar?=
Date: Tue, 9 Jan 2024 14:02:09 +0100
Message-ID: <3f1c2a9e-1111-2222-3333-444455556666@example.org>

Body text.
";

#[test]
fn postfix_authenticated_submission() {
    let a = analyze(&crlf(SUBMISSION), &cfg());
    assert_eq!(a.hops.len(), 2);
    assert!(a.hops.iter().all(|h| h.ours));
    let lmtp = &a.hops[0];
    assert_eq!(lmtp.with.as_deref(), Some("LMTP"));
    assert_eq!(lmtp.id.as_deref(), Some("kLmAAp2kvmXyLQAAp7vN3A"));
    assert_eq!(lmtp.for_addr.as_deref(), Some("bob@example.org"));
    let sub = &a.hops[1];
    assert_eq!(sub.from_helo.as_deref(), Some("[192.168.1.23]"));
    assert_eq!(sub.from_rdns.as_deref(), Some("dyn-203-0-113-77.isp.example.net"));
    assert_eq!(sub.from_ip.as_deref(), Some("203.0.113.77"));
    assert_eq!(sub.date.as_deref(), Some("Tue,  9 Jan 2024 14:02:10 +0100 (CET)"));
    assert_eq!(
        a.entry,
        Entry::Ours {
            hop_index: 1,
            by_host: "mail.example.org".into(),
            from_ip: Some("203.0.113.77".into()),
            authenticated: Some("alice".into()),
            queue_id: Some("4T8Qm71YkJz3wZq".into()),
        }
    );
    assert_eq!(a.our_queue_ids, vec!["kLmAAp2kvmXyLQAAp7vN3A", "4T8Qm71YkJz3wZq"]);
    assert_eq!(a.first_external_ip.as_deref(), Some("203.0.113.77"));
    assert_eq!(a.from.as_deref(), Some("alice@example.org"));
    assert_eq!(a.from_name.as_deref(), Some("Alice Example"));
    assert_eq!(a.return_path.as_deref(), Some("alice@example.org"));
    assert_eq!(a.subject.as_deref(), Some("Rechnung für Januar"));
    assert_eq!(
        a.message_id.as_deref(),
        Some("3f1c2a9e-1111-2222-3333-444455556666@example.org")
    );
    assert_eq!(a.date.as_deref(), Some("Tue, 9 Jan 2024 14:02:09 +0100"));
    assert!(a.mismatches.is_empty(), "{:?}", a.mismatches);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn esmtpsa_without_sasl_header_is_authenticated_by_protocol() {
    let h = parse_received(
        "from laptop (unknown [198.51.100.9]) by mail.example.org (Postfix) with ESMTPSA id 4T9AbC0xyz; Wed, 10 Jan 2024 08:00:00 +0100",
    );
    assert_eq!(h.authenticated.as_deref(), Some("ESMTPSA"));
    assert_eq!(h.from_rdns, None, "unknown is not an rDNS name");
    assert_eq!(h.from_ip.as_deref(), Some("198.51.100.9"));
    let h = parse_received("from client.example.net by mail.example.org (Postfix) with ESMTPS id 4T9AbC0xyz");
    assert_eq!(h.authenticated, None);
    assert_eq!(h.date, None);
}

/// Inbound spoof: the spammer's own server relays it to our MX with two
/// forged Received lines below, one of which pretends to be our host.
const SPOOF: &str = "\
Return-Path: <bounce-7731@mailer.bulk-example.net>
Received: from mail.example.org (localhost [127.0.0.1])
\tby mail.example.org (Postfix) with ESMTP id 4TBk1q2Zm0z9sPQ
\tfor <bob@example.org>; Thu, 11 Jan 2024 03:14:16 +0100 (CET)
Received: from relay7.bulk-example.net (relay7.bulk-example.net [198.51.100.44])
\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
\t(No client certificate requested)
\tby mx2.example.org (Postfix) with ESMTPS id 4TBk1p6Lr3z9sPN
\tfor <bob@example.org>; Thu, 11 Jan 2024 03:14:15 +0100 (CET)
Received: from [10.3.3.3] (helo=workstation)
\tby mail.example.org with esmtpa (Exim 4.96)
\tid 1rNz8Q-000Abc-2d; Thu, 11 Jan 2024 02:10:00 +0000
Received: from unknown (HELO pc) ([IPv6:2001:db8:bad::1])
\tby relay7.bulk-example.net with SMTP; Thu, 11 Jan 2024 02:09:00 +0000
From: \"billing@example.org\" <billing@paypa1-secure.example.com>
To: bob@example.org
Subject: =?iso-8859-1?q?Ihr_Konto_wurde_gesperrt_=FC?=
Date: Thu, 11 Jan 2024 03:10:00 +0100
Message-ID: <20240111021000.ABC@mailer.bulk-example.net>
Authentication-Results: mail.example.org;
\tdkim=none;
\tspf=pass (mail.example.org: domain of bounce-7731@mailer.bulk-example.net designates 198.51.100.44 as permitted sender) smtp.mailfrom=bounce-7731@mailer.bulk-example.net;
\tdmarc=none
";

#[test]
fn inbound_spoof_through_external_relay() {
    let a = analyze(&crlf(SPOOF), &cfg());
    assert_eq!(a.hops.len(), 4);
    assert_eq!(
        a.hops.iter().map(|h| h.ours).collect::<Vec<_>>(),
        vec![true, true, false, false]
    );
    assert_eq!(
        a.entry,
        Entry::Ours {
            hop_index: 1,
            by_host: "mx2.example.org".into(),
            from_ip: Some("198.51.100.44".into()),
            authenticated: None,
            queue_id: Some("4TBk1p6Lr3z9sPN".into()),
        }
    );
    assert_eq!(a.first_external_ip.as_deref(), Some("198.51.100.44"));
    // The forged hop claiming our host is flagged, not trusted.
    let forged = &a.hops[2];
    assert!(!forged.ours);
    assert_eq!(forged.from_helo.as_deref(), Some("workstation"));
    assert_eq!(forged.from_ip.as_deref(), Some("10.3.3.3"));
    assert_eq!(forged.authenticated.as_deref(), Some("esmtpa"));
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("Received header 3") && w.contains("forged")),
        "{:?}",
        a.warnings
    );
    let bottom = &a.hops[3];
    assert_eq!(bottom.from_ip.as_deref(), Some("2001:db8:bad::1"));
    assert_eq!(bottom.from_helo.as_deref(), Some("pc"));
    assert_eq!(bottom.id, None);
    // The forged queue id is still offered for the log join (it won't match).
    assert_eq!(
        a.our_queue_ids,
        vec!["4TBk1q2Zm0z9sPQ", "4TBk1p6Lr3z9sPN", "1rNz8Q-000Abc-2d"]
    );
    assert_eq!(a.subject.as_deref(), Some("Ihr Konto wurde gesperrt ü"));
    assert_eq!(a.from.as_deref(), Some("billing@paypa1-secure.example.com"));
    assert!(
        a.mismatches
            .iter()
            .any(|m| m.starts_with("Return-Path domain mailer.bulk-example.net")),
        "{:?}",
        a.mismatches
    );
    assert!(
        a.mismatches
            .iter()
            .any(|m| m.starts_with("Message-ID domain mailer.bulk-example.net"))
    );
    assert!(
        a.mismatches
            .iter()
            .any(|m| m.contains("display name contains an address at example.org"))
    );
    assert_eq!(a.auth_results.len(), 3);
    assert!(a.auth_results.iter().all(|r| r.ours));
    assert_eq!(a.auth_results[0].method, "dkim");
    assert_eq!(a.auth_results[0].result, "none");
}

/// Seen only by Google: a Gmail user forwarded us their spam as an
/// attachment.
const GMAIL_ONLY: &str = "\
Delivered-To: victim@gmail.com
Received: by 2002:a05:7300:5a0c:b0:f2:1b4e:77c1 with SMTP id c12csp1234567dyb;
        Fri, 12 Jan 2024 05:21:44 -0800 (PST)
X-Received: by 2002:a17:906:1c4f:b0:a2c:1d4e:9f1 with SMTP id l15mr99.3.1705065704; Fri, 12 Jan 2024 05:21:44 -0800 (PST)
Received: from mail-ej1-f45.google.com (mail-ej1-f45.google.com. [209.85.218.45])
        by mx.google.com with SMTPS id a9-20020a1709062b0900b00a2c1d4e9f1sor1234567ejg.1.2024.01.12.05.21.44
        for <victim@gmail.com>
        (Google Transport Security);
        Fri, 12 Jan 2024 05:21:44 -0800 (PST)
Received: from [192.168.0.10] ([2a00:1450:4864:20::52f])
        by smtp.gmail.com with ESMTPSA id u2sm123456ejk.44.2024.01.12.05.21.43
        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);
        Fri, 12 Jan 2024 05:21:43 -0800 (PST)
Authentication-Results: mx.google.com;
       dkim=pass header.i=@example.org header.s=20230601 header.b=Xy7Zq1Ab;
       spf=softfail (google.com: domain of ceo@example.org does not designate 1.2.3.4 as permitted sender) smtp.mailfrom=ceo@example.org;
       dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=example.org
From: CEO <ceo@example.org>
Subject: urgent wire transfer
Message-ID: <CAF=abc123@mail.gmail.com>
Date: Fri, 12 Jan 2024 14:21:30 +0100
";

#[test]
fn never_touched_us() {
    let a = analyze(GMAIL_ONLY.as_bytes(), &cfg());
    assert_eq!(a.entry, Entry::NeverTouchedUs);
    assert_eq!(a.hops.len(), 3);
    assert!(a.hops.iter().all(|h| !h.ours));
    assert!(a.our_queue_ids.is_empty());
    // Lowest public IP in the chain.
    assert_eq!(a.first_external_ip.as_deref(), Some("2a00:1450:4864:20::52f"));
    let top = &a.hops[0];
    assert_eq!(top.by.as_deref(), Some("2002:a05:7300:5a0c:b0:f2:1b4e:77c1"));
    assert_eq!(top.from_ip, None);
    let mx = &a.hops[1];
    assert_eq!(mx.from_rdns.as_deref(), Some("mail-ej1-f45.google.com"));
    assert_eq!(mx.from_ip.as_deref(), Some("209.85.218.45"));
    assert_eq!(mx.by.as_deref(), Some("mx.google.com"));
    assert_eq!(mx.with.as_deref(), Some("SMTPS"));
    assert_eq!(mx.for_addr.as_deref(), Some("victim@gmail.com"));
    assert_eq!(mx.date.as_deref(), Some("Fri, 12 Jan 2024 05:21:44 -0800 (PST)"));
    assert_eq!(a.hops[2].authenticated.as_deref(), Some("ESMTPSA"));

    // Gmail Authentication-Results.
    assert_eq!(a.auth_results.len(), 3);
    let dkim = &a.auth_results[0];
    assert_eq!(dkim.authserv_id.as_deref(), Some("mx.google.com"));
    assert!(!dkim.ours);
    assert_eq!((dkim.method.as_str(), dkim.result.as_str()), ("dkim", "pass"));
    assert_eq!(dkim.properties["header.i"], "@example.org");
    assert_eq!(dkim.properties["header.s"], "20230601");
    assert_eq!(dkim.properties["header.b"], "Xy7Zq1Ab");
    let spf = &a.auth_results[1];
    assert_eq!(spf.result, "softfail");
    assert_eq!(spf.properties["smtp.mailfrom"], "ceo@example.org");
    assert!(spf.comment.as_deref().unwrap().contains("1.2.3.4"));
    let dmarc = &a.auth_results[2];
    assert_eq!(dmarc.result, "fail");
    assert_eq!(dmarc.comment.as_deref(), Some("p=NONE sp=NONE dis=NONE"));
    assert_eq!(dmarc.properties["header.from"], "example.org");
    // Message-ID @mail.gmail.com vs From example.org.
    assert_eq!(a.mismatches.len(), 1, "{:?}", a.mismatches);
}

#[test]
fn our_hosts_only_below_a_foreign_top_hop_are_claims() {
    let raw = "\
Received: from mail.example.org (mail.example.org [192.0.2.5])
\tby mx.google.com with ESMTPS id x1si123.45 for <someone@gmail.com>; Mon, 15 Jan 2024 09:00:01 -0800 (PST)
Received: from [10.0.0.7] (unknown [198.51.100.200])
\t(Authenticated sender: mallory)
\tby mail.example.org (Postfix) with ESMTPSA id 4TDn0F1Xyz;
\tMon, 15 Jan 2024 18:00:00 +0100 (CET)
From: mallory@example.org
";
    let a = analyze(raw.as_bytes(), &cfg());
    assert_eq!(
        a.entry,
        Entry::ClaimsOurs {
            hop_index: 1,
            by_host: "mail.example.org".into(),
            from_ip: Some("198.51.100.200".into()),
            authenticated: Some("mallory".into()),
            queue_id: Some("4TDn0F1Xyz".into()),
        }
    );
    assert_eq!(a.our_queue_ids, vec!["4TDn0F1Xyz"]);
    assert!(a.hops.iter().all(|h| !h.ours));
}

#[test]
fn received_variants() {
    // Exchange Online internal hop: bare IPv6 in the comment, multi-word `with`.
    let h = parse_received(
        "from AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM (2603:10a6:208:1::12) by AM9PR10MB5678.EURPRD10.PROD.OUTLOOK.COM (2603:10a6:20b:2::3) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7181.19; Wed, 10 Jan 2024 10:00:00 +0000",
    );
    assert_eq!(
        h.from_helo.as_deref(),
        Some("AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM")
    );
    assert_eq!(h.from_ip.as_deref(), Some("2603:10a6:208:1::12"));
    assert_eq!(h.by.as_deref(), Some("AM9PR10MB5678.EURPRD10.PROD.OUTLOOK.COM"));
    assert_eq!(h.with.as_deref(), Some("Microsoft SMTP Server"));
    assert_eq!(h.id.as_deref(), Some("15.20.7181.19"));
    // Postfix IPv6 literal.
    let h = parse_received(
        "from mail.example.net (mail.example.net [IPv6:2001:DB8::25]) by mail.example.org (Postfix) with ESMTPS id 4TF00000Q1; Mon, 1 Jan 2024 00:00:00 +0000",
    );
    assert_eq!(h.from_ip.as_deref(), Some("2001:db8::25"));
    assert_eq!(h.from_rdns.as_deref(), Some("mail.example.net"));
    // Postfix local pickup.
    let h = parse_received(
        "by mail.example.org (Postfix, from userid 1000) id 3B1F2C0A12; Tue, 2 Jan 2024 00:00:00 +0100",
    );
    assert_eq!(h.by.as_deref(), Some("mail.example.org"));
    assert_eq!(h.id.as_deref(), Some("3B1F2C0A12"));
    assert_eq!(h.from_helo, None);
    // Sendmail "may be forged", nested comment.
    let h = parse_received(
        "from helo.example (rdns.example [198.51.100.3] (may be forged)) by relay.example.net (8.17.1/8.17.1) with ESMTP id 40A1B2C3004567 for <x@example.org>; Tue, 2 Jan 2024 00:00:00 +0100",
    );
    assert_eq!(h.from_rdns.as_deref(), Some("rdns.example"));
    assert_eq!(h.from_ip.as_deref(), Some("198.51.100.3"));
    assert_eq!(h.id.as_deref(), Some("40A1B2C3004567"));
    // Garbage keeps the raw text only.
    let h = parse_received("qmail 12345 invoked by uid 89");
    assert_eq!(h.raw, "qmail 12345 invoked by uid 89");
    assert_eq!(h.from_ip, None);
    assert_eq!(h.by.as_deref(), Some("uid"));
    let h = parse_received(";;;(((");
    assert_eq!(h.by, None);
    assert_eq!(h.raw, ";;;(((");
}

#[test]
fn raw_hop_is_bounded() {
    let long = format!("from x by mail.example.org id {}", "é".repeat(2000));
    let h = parse_received(&long);
    assert!(h.raw.len() <= 1000);
    assert!(long.starts_with(&h.raw));
}

#[test]
fn microsoft_auth_results_without_authserv_id() {
    let v = "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=example.org; dkim=none (message not signed) header.d=none;dmarc=fail action=none header.from=example.org;compauth=fail reason=000";
    let r = parse_auth_results(v);
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r.iter().all(|x| x.authserv_id.is_none()));
    assert_eq!((r[0].method.as_str(), r[0].result.as_str()), ("spf", "fail"));
    assert_eq!(r[0].comment.as_deref(), Some("sender IP is 203.0.113.9"));
    assert_eq!(r[0].properties["smtp.mailfrom"], "example.org");
    assert_eq!(r[1].result, "none");
    assert_eq!(r[1].comment.as_deref(), Some("message not signed"));
    assert_eq!(r[1].properties["header.d"], "none");
    assert_eq!(r[2].method, "dmarc");
    assert_eq!(r[2].properties["action"], "none");
    assert_eq!(r[2].properties["header.from"], "example.org");
    assert_eq!(r[3].method, "compauth");
    assert_eq!(r[3].reason.as_deref(), Some("000"));
}

#[test]
fn rspamd_mailcow_auth_results() {
    let raw = "\
Authentication-Results: mail.example.org;
\tdkim=pass header.d=shop.example.com header.s=dkim header.b=\"kL0p9QzA\";
\tspf=pass (mail.example.org: domain of news@shop.example.com designates 198.51.100.61 as permitted sender) smtp.mailfrom=news@shop.example.com;
\tdmarc=pass (policy=reject) header.from=shop.example.com;
\tarc=none
Authentication-Results: mail.example.org 1; none
From: Shop <news@shop.example.com>
";
    let a = analyze(raw.as_bytes(), &cfg());
    let r = &a.auth_results;
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r.iter().all(|x| x.ours));
    assert_eq!(r[0].properties["header.d"], "shop.example.com");
    assert_eq!(r[0].properties["header.b"], "kL0p9QzA");
    assert_eq!(r[1].properties["smtp.mailfrom"], "news@shop.example.com");
    assert_eq!(r[2].comment.as_deref(), Some("policy=reject"));
    assert_eq!((r[3].method.as_str(), r[3].result.as_str()), ("arc", "none"));
    assert_eq!(a.entry, Entry::Unknown);
}

#[test]
fn auth_results_odd_spacing_versions_and_quotes() {
    let r = parse_auth_results(
        "example.net; dkim/1 = pass (comment; with semicolon) header.d = \"a;b.example\"; spf=neutral",
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].method, "dkim");
    assert_eq!(r[0].result, "pass");
    assert_eq!(r[0].comment.as_deref(), Some("comment; with semicolon"));
    assert_eq!(r[0].properties["header.d"], "a;b.example");
    assert_eq!(r[1].result, "neutral");
    assert!(parse_auth_results("").is_empty());
    assert!(parse_auth_results("host.example; none").is_empty());
}

#[test]
fn mismatches_relaxed_for_subdomains() {
    let raw = "\
Return-Path: <bounces+123@em.example.com>
From: \"Example News\" <news@example.com>
Message-ID: <abc@mta.example.com>
";
    let a = analyze(raw.as_bytes(), &cfg());
    assert!(a.mismatches.is_empty(), "{:?}", a.mismatches);
    let raw = "\
Return-Path: <>
From: =?UTF-8?B?U3VwcG9ydCBzdXBwb3J0QGJhbmsuZXhhbXBsZQ==?= <x@evil.example>
Message-ID: <1@evil.example>
";
    let a = analyze(raw.as_bytes(), &cfg());
    assert_eq!(a.return_path.as_deref(), Some(""));
    assert_eq!(a.from_name.as_deref(), Some("Support support@bank.example"));
    assert_eq!(
        a.mismatches,
        vec!["From display name contains an address at bank.example, but the From domain is evil.example"]
    );
}

#[test]
fn mbox_with_two_messages() {
    let mbox = format!(
        "From alice@example.org Tue Jan  9 14:02:11 2024\n{SUBMISSION}\nFrom MAILER-DAEMON Thu Jan 11 03:14:16 2024\n{SPOOF}\n"
    );
    let msgs = split_messages(mbox.as_bytes());
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].starts_with(b"Return-Path: <alice@example.org>"));
    assert!(msgs[1].starts_with(b"Return-Path: <bounce-7731@"));
    // The body line "From " that follows no blank line does not split.
    let a0 = analyze(msgs[0], &cfg());
    let a1 = analyze(msgs[1], &cfg());
    assert!(matches!(a0.entry, Entry::Ours { hop_index: 1, .. }));
    assert_eq!(a1.first_external_ip.as_deref(), Some("198.51.100.44"));
    // CRLF mbox, too.
    let crlf_mbox = crlf(&mbox);
    assert_eq!(split_messages(&crlf_mbox).len(), 2);
}

#[test]
fn single_eml_and_empty_inputs() {
    assert_eq!(split_messages(SUBMISSION.as_bytes()).len(), 1);
    assert!(split_messages(b"").is_empty());
    assert!(split_messages(b"\n\n  \n").is_empty());
    // A body line starting with "From " does not make an .eml an mbox.
    let eml = "Subject: x\n\nFrom here on\n\nFrom me\n";
    assert_eq!(split_messages(eml.as_bytes()).len(), 1);
    // analyze() tolerates a leftover envelope line.
    let a = analyze(b"From someone Mon Jan  1 00:00:00 2024\nSubject: hi\n", &cfg());
    assert_eq!(a.subject.as_deref(), Some("hi"));
}

#[test]
fn header_only_paste() {
    // Pasted from a mail client's "show headers": leading blank line, LF only,
    // no body, no blank line at the end.
    let paste = "\n\nReceived: from out.example.com (out.example.com [198.51.100.7])\n  by mail.example.org (Postfix) with ESMTPS id 4TG1x2y3z4\n  for <bob@example.org>; Sat, 13 Jan 2024 10:00:00 +0100\nFrom: Out <info@out.example.com>\nSubject: hello\nthis line is junk\nDate: Sat, 13 Jan 2024 09:59:58 +0100";
    let msgs = split_messages(paste.as_bytes());
    assert_eq!(msgs.len(), 1);
    let a = analyze(msgs[0], &cfg());
    assert!(matches!(a.entry, Entry::Ours { hop_index: 0, .. }));
    assert_eq!(a.first_external_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(a.our_queue_ids, vec!["4TG1x2y3z4"]);
    assert_eq!(a.date.as_deref(), Some("Sat, 13 Jan 2024 09:59:58 +0100"));
    assert!(a.warnings.iter().any(|w| w.contains("Message-ID")));
    assert!(a.warnings.iter().any(|w| w.contains("not `Name: value`")));
}

#[test]
fn bounds_and_warnings() {
    let mut raw = String::new();
    for i in 0..5 {
        raw.push_str(&format!(
            "Received: from h{i} ([198.51.100.{i}]) by mail.example.org with ESMTP id Q{i}\n"
        ));
    }
    let cfg = SampleConfig {
        max_received: 3,
        ..cfg()
    };
    let a = analyze(raw.as_bytes(), &cfg);
    assert_eq!(a.hops.len(), 3);
    assert!(a.received_truncated);
    assert!(a.warnings.iter().any(|w| w.contains("5 Received")));
    assert!(a.warnings.iter().any(|w| w.contains("missing From")));

    let cfg2 = SampleConfig {
        max_header_bytes: 100,
        ..cfg.clone()
    };
    let a = analyze(raw.as_bytes(), &cfg2);
    assert_eq!(a.hops.len(), 1);
    assert!(!a.received_truncated);
    assert!(a.warnings.iter().any(|w| w.contains("exceeds 100 bytes")));

    // Broken encodings and non-UTF-8 bytes.
    let mut bad = b"From: =?x-unknown?Q?abc?= <a@b.example>\nSubject: =?UTF-8?B?!!!?=\nX: ".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let a = analyze(&bad, &cfg);
    assert!(a.warnings.iter().any(|w| w.contains("not UTF-8")));
    assert_eq!(a.from.as_deref(), Some("a@b.example"));
}

#[test]
fn our_ips_cidrs_and_host_suffixes() {
    let n = Net::parse("2001:db8:25::/48").unwrap();
    assert!(n.contains("2001:db8:25:1::9".parse().unwrap()));
    assert!(!n.contains("2001:db8:26::1".parse().unwrap()));
    assert!(!n.contains("192.0.2.1".parse().unwrap()));
    let n = Net::parse("192.0.2.0/28").unwrap();
    assert!(n.contains("192.0.2.15".parse().unwrap()));
    assert!(!n.contains("192.0.2.16".parse().unwrap()));
    assert!(
        Net::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap())
    );
    assert!(Net::parse("1.2.3.4/33").is_none());
    assert!(Net::parse("mail").is_none());

    let hosts = vec!["example.org".to_string()];
    assert!(host_is_ours("MX1.Example.ORG.", &hosts));
    assert!(host_is_ours("example.org", &hosts));
    assert!(!host_is_ours("badexample.org", &hosts));
    assert!(!host_is_ours("example.org.evil.net", &hosts));

    // A `by` IP literal inside our_ips counts as ours.
    let a = analyze(
        b"Received: from x ([198.51.100.1]) by [192.0.2.3] with SMTP id Z1\n",
        &cfg(),
    );
    assert!(matches!(a.entry, Entry::Ours { .. }));
}

#[test]
fn internal_relay_chain_needs_handover_from_us() {
    let chain = |first_client: &str| {
        format!(
            "Received: from mx2.example.org ({first_client}) by mail.example.org (Postfix) with ESMTP id TOP1; Mon, 1 Jan 2024 00:00:02 +0000\n\
             Received: from ext.example.net (ext.example.net [198.51.100.50]) by mx2.example.org (Postfix) with ESMTPS id MX2ID; Mon, 1 Jan 2024 00:00:01 +0000\n"
        )
    };
    // Handover from an address in our_ips: the run continues to mx2.
    let a = analyze(chain("unknown [192.0.2.7]").as_bytes(), &cfg());
    assert!(matches!(&a.entry, Entry::Ours { hop_index: 1, queue_id: Some(q), .. } if q == "MX2ID"));
    assert_eq!(a.first_external_ip.as_deref(), Some("198.51.100.50"));
    // Handover from an unknown public IP: mx2's line is not believed.
    let a = analyze(chain("unknown [198.51.100.99]").as_bytes(), &cfg());
    assert!(matches!(a.entry, Entry::Ours { hop_index: 0, .. }));
    assert_eq!(a.first_external_ip.as_deref(), Some("198.51.100.99"));
    assert!(a.warnings.iter().any(|w| w.contains("likely forged")));
}

#[test]
fn serializes_to_json() {
    let a = analyze(&crlf(SUBMISSION), &cfg());
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["entry"]["kind"], "ours");
    assert_eq!(v["entry"]["authenticated"], "alice");
    assert_eq!(v["hops"][1]["from_ip"], "203.0.113.77");
}

fn headerish() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("Received"),
        Just("From"),
        Just("Subject"),
        Just("Authentication-Results"),
        Just("Return-Path"),
        Just("Message-ID"),
        Just("X-Junk"),
    ];
    let value = "[ -~\t\u{80}-\u{10ffff}();\\[\\]<>=@\"]{0,120}";
    let line = (name, value, any::<bool>()).prop_map(|(n, v, fold)| {
        if fold {
            format!("{n}: {v}\r\n\t{v}\r\n")
        } else {
            format!("{n}: {v}\n")
        }
    });
    prop::collection::vec(line, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let cfg = SampleConfig { max_header_bytes: 512, max_received: 4, ..cfg() };
        for m in split_messages(&bytes) {
            let a = analyze(m, &cfg);
            prop_assert!(a.hops.len() <= 4);
            prop_assert!(a.hops.iter().all(|h| h.raw.len() <= 1000));
        }
        let _ = analyze(&bytes, &cfg);
    }

    #[test]
    fn never_panics_on_headerish(text in headerish()) {
        let a = analyze(text.as_bytes(), &cfg());
        let _ = serde_json::to_string(&a).unwrap();
        for m in split_messages(text.as_bytes()) {
            let _ = analyze(m, &cfg());
        }
    }

    #[test]
    fn never_panics_on_received_and_ar(v in "[ -~\u{a0}-\u{3ff}]{0,300}") {
        let _ = parse_received(&v);
        let _ = parse_auth_results(&v);
    }
}

#[test]
fn large_pathological_headers_stay_bounded() {
    let mut raw = b"Received: ".to_vec();
    raw.extend(std::iter::repeat_n(b'(', 300_000));
    raw.extend_from_slice(b"\nAuthentication-Results: x; ");
    raw.extend(std::iter::repeat_n(b"a=b ".as_slice(), 100_000).flatten());
    raw.extend_from_slice(b"\nSubject: ");
    raw.extend(std::iter::repeat_n(b"=?utf-8?q?x?= ".as_slice(), 50_000).flatten());
    raw.push(b'\n');
    let a = analyze(&raw, &cfg());
    assert_eq!(a.hops.len(), 1);
    assert!(a.hops[0].raw.len() <= 1000);
    assert!(a.warnings.iter().any(|w| w.contains("exceeds")));
}
