//! `mailwarden investigate` against real traffic: a private Postfix + Dovecot
//! lab receives a burst from a "compromised" account sending as an address
//! that is no mailbox, an unauthenticated relay through mynetworks, and a
//! spoof delivered inbound from an outside host; the verdicts are read from
//! the log files and from the store, and a window the logs do not cover is
//! inconclusive with the gap named.

use mailwarden_testlab::{DnsServer, DnsZone, LabOptions, LabSigner, MailLab, Service, USERS};

use crate::support::mailwarden;

fn verdict_of(v: &serde_json::Value) -> &str {
    v["verdict"].as_str().unwrap_or_default()
}

#[test]
fn four_verdicts_from_real_traffic() {
    // The window starts when the lab does (its start-up is logged at once), so
    // the logs cover all of it whatever the time of day.
    let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)).to_string();
    // The mail server logs each message's From: header (a one-line
    // header_checks rule, as the README recommends).
    let lab = MailLab::start(LabOptions {
        log_header_from: true,
        ..LabOptions::default()
    })
    .expect("start the mail lab");
    // The samples are checked again against DNS: a private Knot serves
    // lab.test (SPF for the lab's own address only, DMARC p=none, the DKIM
    // key the lab signs its outgoing mail with) and an empty `test` zone (so
    // the DMARC tree walk gets NXDOMAIN, as on the internet).
    let signer = LabSigner::generate("lab.test", "dkim").expect("DKIM key");
    let dns = DnsServer::start(vec![
        DnsZone::new("lab.test")
            .txt("@", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc", "v=DMARC1; p=none")
            .txt(&signer.record_name(), &signer.record_text()),
        DnsZone::new("test"),
    ])
    .expect("start the DNS server");
    let resolver = dns.addr().to_string();
    let carol = USERS.iter().find(|u| u.address == "carol@lab.test").unwrap();

    // 1. A compromised account: a burst sent as an address that is no mailbox,
    // DKIM-signed for lab.test (as Mailcow signs outgoing mail). The first
    // message also goes to alice, whose copy becomes the "spam sample".
    let burst_dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let to = if i == 0 {
            "target0@remote.test,alice@lab.test".to_owned()
        } else {
            format!("target{i}@remote.test")
        };
        let raw = format!(
            "From: Accounts <xyovt@lab.test>\r\nTo: {to}\r\nSubject: Invoice {i}\r\n\
             Date: Fri, 04 Dec 2026 10:00:0{i} +0000\r\nMessage-ID: <burst-{i}@lab.test>\r\n\r\n\
             Please pay the attached invoice.\r\n"
        );
        let data = burst_dir.path().join(format!("burst{i}.eml"));
        std::fs::write(&data, signer.sign(&raw).expect("DKIM signing")).unwrap();
        lab.swaks(
            Service::Submission,
            &[
                "--local-interface",
                "127.0.0.1",
                "--from",
                "xyovt@lab.test",
                "--to",
                &to,
                "--data",
                data.to_str().unwrap(),
                "--auth",
                "PLAIN",
                "--auth-user",
                carol.address,
                "--auth-password",
                carol.password,
            ],
        )
        .expect("authenticated submission");
    }
    // 1b. The same account sends with its own envelope sender but a forged
    // From: header; only the logged header ties the mail to the address.
    lab.swaks(
        Service::Submission,
        &[
            "--local-interface",
            "127.0.0.1",
            "--from",
            carol.address,
            "--to",
            "staff@remote.test",
            "--header",
            "From: Payroll <payroll@lab.test>",
            "--auth",
            "PLAIN",
            "--auth-user",
            carol.address,
            "--auth-password",
            carol.password,
        ],
    )
    .expect("authenticated submission with a forged From:");
    // 2. Unauthenticated relay: a client inside mynetworks, no AUTH, foreign recipient.
    lab.swaks(
        Service::Smtp,
        &[
            "--local-interface",
            "127.0.0.1",
            "--from",
            "relay-me@lab.test",
            "--to",
            "victim@remote.test",
        ],
    )
    .expect("relay through mynetworks");
    // 3. A spoof from outside, delivered to a local mailbox.
    lab.swaks(
        Service::Smtp,
        &[
            "--local-interface",
            "127.0.0.6",
            "--helo",
            "spoofer.test",
            "--from",
            "ceo@lab.test",
            "--to",
            "alice@lab.test",
        ],
    )
    .expect("inbound spoof");
    lab.wait_idle().expect("lab idle");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = lab.mail_log().to_str().unwrap().to_owned();
    let dovecot = lab.dovecot_log().to_str().unwrap().to_owned();
    let run = |sender: &str, extra: &[&str]| -> serde_json::Value {
        // DNS questions (sample re-verification, the domain's posture) go
        // to the private Knot only.
        let mut args = vec![
            "investigate",
            "--json",
            "--sender",
            sender,
            "--since",
            &started,
            "--resolver",
            &resolver,
        ];
        args.extend_from_slice(extra);
        let r = mailwarden(d, &args);
        assert_eq!(r.code, 0, "{sender}: {}", r.stderr);
        r.json()
    };

    // Dovecot's LMTP writes the machine's host name in its Received line.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let v = run("xyovt@lab.test", &[&log, &dovecot]);
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    assert_eq!(v["accounts"]["carol@lab.test"]["messages"], 5, "{v:#}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);
    assert!(v["summary"].as_str().unwrap().contains("carol@lab.test"), "{v:#}");

    // With the directory: xyovt@ is no mailbox, and carol may not send as it.
    let list = d.join("addresses.txt");
    std::fs::write(
        &list,
        "# lab.test\n@lab.test\nalice@lab.test\nbob@lab.test\ncarol@lab.test\n",
    )
    .unwrap();
    let v = run(
        "xyovt@lab.test",
        &["--directory", list.to_str().unwrap(), &log, &dovecot],
    );
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    assert_eq!(v["directory"]["kind"], "unknown", "{v:#}");
    assert_eq!(v["accounts"]["carol@lab.test"]["may_send_as"], false, "{v:#}");
    let reasons = v["reasons"].to_string();
    assert!(reasons.contains("no mailbox or alias"), "{v:#}");
    assert!(reasons.contains("not allowed to send as xyovt@lab.test"), "{v:#}");

    // The burst as alice received it is the sample: it entered our server by
    // authenticated submission, its queue id joins it to the logs, and its
    // DKIM signature verifies against DNS.
    let burst_sample = find_file(lab.dir(), &|p, text| {
        p.to_string_lossy().contains("Maildir") && text.contains("burst-0@lab.test")
    })
    .expect("the burst copy in alice's Maildir");
    let v = run(
        "xyovt@lab.test",
        &[
            "--eml",
            burst_sample.to_str().unwrap(),
            "--our-host",
            "mail.lab.test",
            "--our-host",
            &host,
            &log,
            &dovecot,
        ],
    );
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    let smp = &v["samples"][0];
    assert_eq!(smp["analysis"]["entry"]["kind"], "ours", "{v:#}");
    assert!(!smp["analysis"]["entry"]["authenticated"].is_null(), "{v:#}");
    assert_eq!(smp["matched_queue_ids"].as_array().unwrap().len(), 1, "{v:#}");
    let dkim = smp["reverified"]["dkim"].to_string();
    assert!(dkim.contains("pass d=lab.test s=dkim"), "{v:#}");
    assert_eq!(smp["reverified"]["dmarc"], "pass", "{v:#}");
    assert_eq!(smp["reverified"]["spf"], "pass", "{v:#}");
    assert_eq!(smp["reverified"]["arc"], "none", "{v:#}");

    let v = run("payroll@lab.test", &[&log, &dovecot]);
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    assert_eq!(v["messages"][0]["matched_by"], "header-from", "{v:#}");
    assert_eq!(v["messages"][0]["envelope_sender"], carol.address, "{v:#}");
    assert!(
        v["reasons"].to_string().contains("only in their From: header"),
        "{v:#}"
    );

    let v = run("relay-me@lab.test", &[&log, &dovecot]);
    assert_eq!(verdict_of(&v), "relayed-by-us-unauthenticated", "{v:#}");
    assert!(v["summary"].as_str().unwrap().contains("127.0.0.1"), "{v:#}");

    let v = run("ceo@lab.test", &[&log, &dovecot]);
    assert_eq!(verdict_of(&v), "spoofed-externally", "{v:#}");
    assert_eq!(v["counts"]["inbound"], 1, "{v:#}");
    assert_eq!(v["messages"][0]["client"], "unknown[127.0.0.6]", "{v:#}");

    // The spoof as delivered to alice's Maildir is the sample: its Received
    // chain shows it entered our MX from 127.0.0.6, unauthenticated.
    let sample = find_file(lab.dir(), &|p, text| {
        p.to_string_lossy().contains("Maildir") && text.contains("ceo@lab.test")
    })
    .expect("the spoof in a Maildir");
    let v = run(
        "ceo@lab.test",
        &[
            "--eml",
            sample.to_str().unwrap(),
            "--our-host",
            "mail.lab.test",
            "--our-host",
            &host,
            &log,
            &dovecot,
        ],
    );
    // Checked again against DNS: 127.0.0.6 may not send for lab.test.
    assert_eq!(v["samples"][0]["reverified"]["spf"], "fail", "{v:#}");
    assert_eq!(verdict_of(&v), "spoofed-externally", "{v:#}");
    let entry = &v["samples"][0]["analysis"]["entry"];
    assert_eq!(entry["kind"], "ours", "{v:#}");
    assert_eq!(entry["from_ip"], "127.0.0.6", "{v:#}");
    assert!(entry["authenticated"].is_null(), "{v:#}");
    let qid = entry["queue_id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["samples"][0]["matched_queue_ids"][0],
        qid.as_str(),
        "the sample's queue id is in the logs: {v:#}"
    );
    assert!(
        v["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("entered our server mail.lab.test from 127.0.0.6")),
        "{v:#}"
    );

    // 4. A window the logs do not cover: absence proves nothing.
    let r = mailwarden(
        d,
        &[
            "investigate",
            "--json",
            "--sender",
            "ceo@lab.test",
            "--since",
            "3d",
            "--resolver",
            &resolver,
            &log,
        ],
    );
    let v = r.json();
    assert_eq!(verdict_of(&v), "inconclusive", "{v:#}");
    assert!(!v["coverage_gaps"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(
        v["missing"][0].as_str().unwrap().starts_with("logs for "),
        "{v:#}"
    );

    // ... unless a sample shows the mail never passed our servers; checked
    // again against DNS, SPF fails for the foreign sender, DMARC fails and
    // the domain's p=none told receivers to accept it.
    let foreign = d.join("foreign.eml");
    std::fs::write(
        &foreign,
        "Received: from mta.bulk.example (mta.bulk.example [198.51.100.23])\r\n\
         \tby mx.receiver.example (Postfix) with ESMTP id 4Xyz; Fri, 4 Dec 2026 10:00:00 +0000\r\n\
         Authentication-Results: mx.receiver.example; spf=fail smtp.mailfrom=ceo@lab.test; dmarc=fail header.from=lab.test\r\n\
         Return-Path: <ceo@lab.test>\r\n\
         From: CEO <ceo@lab.test>\r\nTo: someone@receiver.example\r\nSubject: invoice\r\n\r\nbody\r\n",
    )
    .unwrap();
    let foreign_s = foreign.to_str().unwrap();
    let args = [
        "investigate",
        "--json",
        "--sender",
        "ceo@lab.test",
        "--since",
        "3d",
        "--our-host",
        "mail.lab.test",
        "--resolver",
        &resolver,
        "--eml",
        foreign_s,
        &log,
    ];
    let v = mailwarden(d, &args).json();
    assert_eq!(verdict_of(&v), "spoofed-externally", "{v:#}");
    assert_eq!(
        v["confidence"], "medium",
        "logs are missing for part of the window: {v:#}"
    );
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("never passes our servers; it came from 198.51.100.23"),
        "{v:#}"
    );
    assert!(reasons.contains("said dmarc=fail"), "{v:#}");
    let rv = &v["samples"][0]["reverified"];
    assert_eq!(rv["ip"], "198.51.100.23", "{v:#}");
    assert_eq!(rv["spf"], "fail", "{v:#}");
    assert_eq!(rv["dmarc"], "fail", "{v:#}");
    assert_eq!(rv["dmarc_policy"], "none", "{v:#}");
    // The domain's posture, audited in DNS: p=none told receivers to take it.
    assert_eq!(v["posture"]["spoofs"], "accept", "{v:#}");
    assert_eq!(v["posture"]["facts"]["spf_all"], "-all", "{v:#}");
    assert!(
        reasons.contains("posture: lab.test publishes DMARC p=none"),
        "{v:#}"
    );
    assert!(
        v["recommendations"]
            .to_string()
            .contains("change p=none to p=quarantine"),
        "{v:#}"
    );

    // The same answers from the store, and a Markdown incident note.
    let data = d.join("data");
    let data_s = data.to_str().unwrap();
    let r = mailwarden(d, &["ingest", "--data-dir", data_s, &log, &dovecot]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = run("xyovt@lab.test", &["--store", "--data-dir", data_s]);
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);
    let v = run("payroll@lab.test", &["--store", "--data-dir", data_s]);
    assert_eq!(verdict_of(&v), "sent-by-us-authenticated", "{v:#}");
    assert_eq!(v["messages"][0]["matched_by"], "header-from", "{v:#}");
    let v = run("relay-me@lab.test", &["--store", "--data-dir", data_s]);
    assert_eq!(verdict_of(&v), "relayed-by-us-unauthenticated", "{v:#}");
    let report = d.join("note.md");
    let r = mailwarden(
        d,
        &[
            "investigate",
            "--sender",
            "xyovt@lab.test",
            "--since",
            &started,
            "--no-dns",
            "--store",
            "--data-dir",
            data_s,
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("VERDICT: sent-by-us-authenticated"),
        "{}",
        r.stdout
    );
    let note = std::fs::read_to_string(&report).unwrap();
    assert!(note.contains("**Verdict: sent-by-us-authenticated**"), "{note}");
    assert!(note.contains("`carol@lab.test`"), "{note}");

    // Bad input: not an address.
    let r = mailwarden(d, &["investigate", "--no-dns", "--sender", "nobody", &log]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not an address"), "{}", r.stderr);
}

/// The first file under `dir` (recursively) for which `pick(path, text)` holds.
fn find_file(
    dir: &std::path::Path,
    pick: &dyn Fn(&std::path::Path, &str) -> bool,
) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        // Only directories and regular files: Postfix's FIFOs block a reader.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if let Some(f) = find_file(&p, pick) {
                return Some(f);
            }
        } else if ft.is_file()
            && let Ok(text) = std::fs::read_to_string(&p)
            && pick(&p, &text)
        {
            return Some(p);
        }
    }
    None
}
