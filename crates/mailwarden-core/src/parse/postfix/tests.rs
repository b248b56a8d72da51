//! Table tests on real Postfix lines: from the production log in the shared
//! corpus (postfix-production), the postfix-grok-patterns test vectors, and the
//! Debian Postfix 3.7 lab harness.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::parse::test_support;

/// Parses `message` as written by `program` and compares the JSON form (with
/// `service`/`daemon` removed when `expect` does not mention them).
#[track_caller]
fn check(program: &str, message: &str, expect: Value) {
    let context = format!("program: {program}\nmessage: {message}");
    let got = parse(program, message).map(|e| serde_json::to_value(e).unwrap());
    let Some(mut got) = got else {
        panic!("no parse for\n{context}");
    };
    let obj = got.as_object_mut().unwrap();
    let exp = expect.as_object().unwrap();
    for k in ["service", "daemon"] {
        if !exp.contains_key(k) {
            obj.remove(k);
        }
    }
    test_support::check_json(Some(got), &expect, &context);
}

#[track_caller]
fn none(program: &str, message: &str) {
    assert!(
        parse(program, message).is_none(),
        "unexpected parse of {program}: {message}"
    );
}

#[test]
fn program_split() {
    assert_eq!(
        split_program("postfix/submission/smtpd"),
        ("postfix/submission", "smtpd")
    );
    assert_eq!(split_program("haproxy/postscreen"), ("haproxy", "postscreen"));
    assert_eq!(split_program("postfix-script"), ("", "postfix-script"));
}

#[test]
fn smtpd_sessions() {
    check(
        "postfix/submission/smtpd",
        "connect from host1.uhu-banane.de[185.48.118.128]",
        json!({"service": "postfix/submission", "daemon": "smtpd", "event": "connect",
               "client": {"name": "host1.uhu-banane.de", "ip": "185.48.118.128"}}),
    );
    check(
        "postfix/smtpd",
        "disconnect from unknown[72.10.165.66] ehlo=2 starttls=1 auth=0/1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=5/8",
        json!({"event": "disconnect", "client": {"name": "unknown", "ip": "72.10.165.66"},
               "stats": {"ehlo": [2, 2], "starttls": [1, 1], "auth": [0, 1], "mail": [1, 1], "rcpt": [0, 1],
                         "data": [0, 1], "quit": [1, 1], "commands": [5, 8]}}),
    );
    check(
        "postfix/smtpd",
        "disconnect from unknown[unknown] commands=0/0",
        json!({"event": "disconnect", "client": {"name": "unknown", "ip": "unknown"}, "stats": {"commands": [0, 0]}}),
    );
    check(
        "postfix/smtpd",
        "lost connection after DATA (7774180 bytes) from unknown[72.13.58.7]",
        json!({"event": "session_abort", "reason": "lost_connection", "after": "DATA", "detail": "(7774180 bytes)",
               "client": {"name": "unknown", "ip": "72.13.58.7"}}),
    );
    check(
        "postfix/submission/smtpd",
        "timeout after EHLO from unknown[2001:456:cfb1:1:f5d7:dead:beef:cafe]",
        json!({"event": "session_abort", "reason": "timeout", "after": "EHLO",
               "client": {"name": "unknown", "ip": "2001:456:cfb1:1:f5d7:dead:beef:cafe"}}),
    );
    check(
        "postfix/smtpd",
        "too many errors after RCPT from unknown[192.0.2.9]",
        json!({"event": "session_abort", "reason": "too_many_errors", "after": "RCPT",
               "client": {"name": "unknown", "ip": "192.0.2.9"}}),
    );
    check(
        "postfix/submission/smtpd",
        "warning: non-SMTP command from unknown[134.122.81.18]: GET / HTTP/1.1",
        json!({"event": "non_smtp_command", "client": {"name": "unknown", "ip": "134.122.81.18"},
               "command": "GET / HTTP/1.1"}),
    );
    check(
        "postfix/smtpd",
        "improper command pipelining after EHLO from unknown[198.51.100.4]: MAIL FROM:<>",
        json!({"event": "improper_pipelining", "after": "EHLO", "client": {"name": "unknown", "ip": "198.51.100.4"},
               "text": "MAIL FROM:<>"}),
    );
}

#[test]
fn sasl_and_client_lines() {
    check(
        "postfix/smtpd",
        "warning: ec2-3-84-57-208.compute-1.amazonaws.com[3.84.57.208]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        json!({"event": "sasl_auth_failed", "client": {"name": "ec2-3-84-57-208.compute-1.amazonaws.com", "ip": "3.84.57.208"},
               "method": "LOGIN", "reason": "UGFzc3dvcmQ6"}),
    );
    // Postfix 3.7 (Debian 12) with Dovecot SASL appends the user name.
    check(
        "postfix/submission/smtpd",
        "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: , sasl_username=alice@lab.test",
        json!({"event": "sasl_auth_failed", "client": {"name": "localhost", "ip": "127.0.0.1"},
               "method": "PLAIN", "sasl_username": "alice@lab.test"}),
    );
    check(
        "postfix/submission/smtpd",
        "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: Connection lost to authentication server",
        json!({"event": "sasl_auth_failed", "client": {"name": "unknown", "ip": "203.0.113.5"},
               "method": "LOGIN", "reason": "Connection lost to authentication server"}),
    );
    check(
        "postfix/submission/smtpd",
        "4PbCmQ39hpz3tBr: client=host3.uhu-banane.de[2a01:4f8:1c17:5f1d::1], sasl_method=PLAIN, sasl_username=user01.test@uhu-banane.net",
        json!({"queue_id": "4PbCmQ39hpz3tBr", "event": "client_accepted",
               "client": {"name": "host3.uhu-banane.de", "ip": "2a01:4f8:1c17:5f1d::1"},
               "sasl_method": "PLAIN", "sasl_username": "user01.test@uhu-banane.net"}),
    );
    check(
        "postfix/10025/smtpd",
        "4PbC4x5W2Bz3tBt: client=localhost[127.0.0.1], orig_queue_id=4PbC4x469Jz3tBr, orig_client=mx.example[192.0.2.1]",
        json!({"queue_id": "4PbC4x5W2Bz3tBt", "event": "client_accepted", "client": {"name": "localhost", "ip": "127.0.0.1"},
               "orig_queue_id": "4PbC4x469Jz3tBr", "orig_client": {"name": "mx.example", "ip": "192.0.2.1"}}),
    );
    check(
        "postfix/smtpd",
        "warning: Connection rate limit exceeded: 31 from unknown[192.0.2.77] for service smtp",
        json!({"event": "rate_limit", "limit": "Connection rate", "count": 31,
               "client": {"name": "unknown", "ip": "192.0.2.77"}, "service": "smtp"}),
    );
    check(
        "postfix/submission/smtpd",
        "warning: hostname zg-1220e-106.stretchoid.com does not resolve to address 192.241.213.4: Name or service not known",
        json!({"event": "reverse_dns_mismatch", "hostname": "zg-1220e-106.stretchoid.com", "ip": "192.241.213.4",
               "detail": "Name or service not known"}),
    );
}

#[test]
fn rejects_and_actions() {
    check(
        "postfix/smtpd",
        "NOQUEUE: reject: RCPT from 061238241086.static.ctinets.com[61.238.241.86]: 550 5.1.1 <toernooicommissie@example.com>: Recipient address rejected: User unknown in virtual mailbox table; from=<wumt5@cchfdc.com> to=<toernooicommissie@example.com> proto=ESMTP helo=<ecsolved.com>",
        json!({"event": "action", "action": "reject", "milter": false, "stage": "RCPT",
               "client": {"name": "061238241086.static.ctinets.com", "ip": "61.238.241.86"},
               "code": 550, "enhanced": "5.1.1",
               "text": "<toernooicommissie@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
               "from": "wumt5@cchfdc.com", "to": "toernooicommissie@example.com", "proto": "ESMTP", "helo": "ecsolved.com"}),
    );
    check(
        "postfix/smtpd",
        "NOQUEUE: reject: RCPT from news.zihan-promo.com[192.36.205.58]: 554 5.7.1 Service unavailable; Helo command [news.zihan-promo.com] blocked using dbl.spamhaus.org; http://www.spamhaus.org/query/dbl?domain=zihan-promo.com; from=<mark.alexander@zihan-promo.com> to=<tom@example.com> proto=ESMTP helo=<news.zihan-promo.com>",
        json!({"event": "action", "action": "reject", "milter": false, "stage": "RCPT",
               "client": {"name": "news.zihan-promo.com", "ip": "192.36.205.58"}, "code": 554, "enhanced": "5.7.1",
               "text": "Service unavailable; Helo command [news.zihan-promo.com] blocked using dbl.spamhaus.org; http://www.spamhaus.org/query/dbl?domain=zihan-promo.com",
               "from": "mark.alexander@zihan-promo.com", "to": "tom@example.com", "proto": "ESMTP", "helo": "news.zihan-promo.com"}),
    );
    check(
        "postfix/smtpd",
        "NOQUEUE: reject: VRFY from unknown[2001:968:9999:20:88b:9b7d:2a54:2bd2]: 454 4.7.1 <aap@henk.com>: Relay access denied; to=<aap@henk.com> proto=SMTP helo=<me>",
        json!({"event": "action", "action": "reject", "milter": false, "stage": "VRFY",
               "client": {"name": "unknown", "ip": "2001:968:9999:20:88b:9b7d:2a54:2bd2"}, "code": 454, "enhanced": "4.7.1",
               "text": "<aap@henk.com>: Relay access denied", "to": "aap@henk.com", "proto": "SMTP", "helo": "me"}),
    );
    check(
        "postfix/postscreen",
        "NOQUEUE: reject: RCPT from [27.157.200.233]:4984: 550 5.7.1 Service unavailable; client [27.157.200.233] blocked using zen.spamhaus.org; from=<hcdvbnm@qhhn.com>, to=<4ECEA00F.9040306@example.com>, proto=ESMTP, helo=<qhhn.com>",
        json!({"event": "action", "action": "reject", "milter": false, "stage": "RCPT",
               "client": {"name": "", "ip": "27.157.200.233", "port": 4984}, "code": 550, "enhanced": "5.7.1",
               "text": "Service unavailable; client [27.157.200.233] blocked using zen.spamhaus.org",
               "from": "hcdvbnm@qhhn.com", "to": "4ECEA00F.9040306@example.com", "proto": "ESMTP", "helo": "qhhn.com"}),
    );
    check(
        "postfix/postscreen",
        "NOQUEUE: reject: CONNECT from [1.2.3.4]:1337: too many connections",
        json!({"event": "action", "action": "reject", "milter": false, "stage": "CONNECT",
               "client": {"name": "", "ip": "1.2.3.4", "port": 1337}, "text": "too many connections"}),
    );
    check(
        "postfix/cleanup",
        "4104E3D: milter-reject: END-OF-MESSAGE from 061238241086.static.ctinets.com[61.238.241.86]: 5.7.1 Blocked by SpamAssassin; from=<wumt5@cchfdc.com> to=<voorzitter@example.com> proto=ESMTP helo=<ecsolved.com>",
        json!({"queue_id": "4104E3D", "event": "action", "action": "reject", "milter": true, "stage": "END-OF-MESSAGE",
               "client": {"name": "061238241086.static.ctinets.com", "ip": "61.238.241.86"}, "enhanced": "5.7.1",
               "text": "Blocked by SpamAssassin", "from": "wumt5@cchfdc.com", "to": "voorzitter@example.com",
               "proto": "ESMTP", "helo": "ecsolved.com"}),
    );
    check(
        "postfix/cleanup",
        "48rT2v1hQrz1J0N: prepend: header X-Spam-Status: Yes, score=45.1 required=10.0 tests=ADVANCE_FE from mx2.example.org[192.0.2.41]; from=<SRS0=1sN3=5P=example.org=noreply@srs.example.org> to=<recipient@example.net> proto=ESMTP helo=<mx2.example.org>: X-Spam-Status: Yes",
        json!({"queue_id": "48rT2v1hQrz1J0N", "event": "action", "action": "prepend", "milter": false, "stage": "header",
               "client": {"name": "mx2.example.org", "ip": "192.0.2.41"}, "text": "X-Spam-Status: Yes",
               "matched": "X-Spam-Status: Yes, score=45.1 required=10.0 tests=ADVANCE_FE",
               "from": "SRS0=1sN3=5P=example.org=noreply@srs.example.org", "to": "recipient@example.net",
               "proto": "ESMTP", "helo": "mx2.example.org"}),
    );
    check(
        "postfix/cleanup",
        "D95341E50350: info: header Subject: Hello test from local; from=<from@example.com> to=<to@example.com>",
        json!({"queue_id": "D95341E50350", "event": "action", "action": "info", "milter": false, "stage": "header",
               "text": "", "matched": "Subject: Hello test", "from": "from@example.com", "to": "to@example.com"}),
    );
    check(
        "postfix/smtpd",
        "NOQUEUE: filter: RCPT from unknown[85.25.255.255]: <mail@sender.com>: Sender address triggers FILTER smtp-amavis:[127.0.0.1]:10024; from=<mail@sender.com> to=<user@domain.com> proto=ESMTP helo=<plutoapp.biz>",
        json!({"event": "action", "action": "filter", "milter": false, "stage": "RCPT",
               "client": {"name": "unknown", "ip": "85.25.255.255"},
               "text": "<mail@sender.com>: Sender address triggers FILTER smtp-amavis:[127.0.0.1]:10024",
               "from": "mail@sender.com", "to": "user@domain.com", "proto": "ESMTP", "helo": "plutoapp.biz"}),
    );
    check(
        "postfix/smtpd",
        "proxy-reject: END-OF-MESSAGE: 554 5.7.0 Reject, id=31619-02 - spam; from=<> to=<user2@example2.com> proto=SMTP helo=<17.33.12.53>",
        json!({"event": "action", "action": "proxy_reject", "milter": false, "stage": "END-OF-MESSAGE",
               "code": 554, "enhanced": "5.7.0", "text": "Reject, id=31619-02 - spam", "from": "",
               "to": "user2@example2.com", "proto": "SMTP", "helo": "17.33.12.53"}),
    );
}

#[test]
fn queue_and_delivery() {
    check(
        "postfix/cleanup",
        "A785B308622AB: message-id=<5afa242e.hP5p/mry+fTNNjms%no-reply@example.com>",
        json!({"queue_id": "A785B308622AB", "event": "message_id",
               "message_id": "5afa242e.hP5p/mry+fTNNjms%no-reply@example.com", "resent": false}),
    );
    check(
        "postfix/cleanup",
        "4104E3D: message-id=<>",
        json!({"queue_id": "4104E3D", "event": "message_id", "message_id": "", "resent": false}),
    );
    check(
        "postfix/qmgr",
        "A785B308622AB: from=<no-reply@example.com>, size=2597, nrcpt=1 (queue active)",
        json!({"queue_id": "A785B308622AB", "event": "queue_active", "from": "no-reply@example.com",
               "size": 2597, "nrcpt": 1}),
    );
    check(
        "postfix/qmgr",
        "A785B308622AB: removed",
        json!({"queue_id": "A785B308622AB", "event": "removed"}),
    );
    check(
        "postfix/qmgr",
        "585BC3F: from=<>, status=expired, returned to sender",
        json!({"queue_id": "585BC3F", "event": "expired", "from": "", "detail": "returned to sender"}),
    );
    check(
        "postfix/lmtp",
        "A785B308622AB: to=<vmail+jsmith@mail.mynethserver.org>, orig_to=<jsmith@example.com>, relay=mail.mynethserver.org[/var/run/dovecot/lmtp], delay=0.82, delays=0.8/0.01/0.01/0.01, dsn=2.0.0, status=sent (250 2.0.0 <vmail+jsmith@mail.mynethserver.org> gK8pHS8k+lr/ZAAAJc5BcA Saved)",
        json!({"queue_id": "A785B308622AB", "event": "delivery", "to": "vmail+jsmith@mail.mynethserver.org",
               "orig_to": "jsmith@example.com", "relay": "mail.mynethserver.org[/var/run/dovecot/lmtp]",
               "delay": 0.82, "delays": "0.8/0.01/0.01/0.01", "dsn": "2.0.0", "status": "sent",
               "detail": "250 2.0.0 <vmail+jsmith@mail.mynethserver.org> gK8pHS8k+lr/ZAAAJc5BcA Saved"}),
    );
    check(
        "postfix/amavis/smtp",
        "4PbC4x469Jz3tBr: to=<user01.test@uhu-banane.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.5, delays=0.19/0/0/2.3, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6D1Tz3tBt)",
        json!({"queue_id": "4PbC4x469Jz3tBr", "event": "delivery", "to": "user01.test@uhu-banane.net",
               "relay": "127.0.0.1[127.0.0.1]:10024", "delay": 2.5, "delays": "0.19/0/0/2.3", "dsn": "2.0.0",
               "status": "sent", "detail": "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6D1Tz3tBt",
               "queued_as": "4PbC4z6D1Tz3tBt"}),
    );
    check(
        "postfix/smtp",
        "A0E85200BD: to=<whatever-user@lists.example.org>, relay=open.example.nl[10.49.140.10]:25, delay=2.3, delays=0.25/0.05/2/0.04, dsn=4.2.0, status=deferred (host open.example.nl[10.49.140.10] said: 450 4.2.0 <whatever-user@lists.example.org>: Recipient address rejected: Greylisted (in reply to RCPT TO command))",
        json!({"queue_id": "A0E85200BD", "event": "delivery", "to": "whatever-user@lists.example.org",
               "relay": "open.example.nl[10.49.140.10]:25", "delay": 2.3, "delays": "0.25/0.05/2/0.04", "dsn": "4.2.0",
               "status": "deferred",
               "detail": "host open.example.nl[10.49.140.10] said: 450 4.2.0 <whatever-user@lists.example.org>: Recipient address rejected: Greylisted (in reply to RCPT TO command)"}),
    );
    check(
        "postfix/local",
        "2A22C263F6: to=user@hostname.example.com, orig_to=root@localhost, relay=local, delay=0.07, delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: procmail -a \"$EXTENSION\")",
        json!({"queue_id": "2A22C263F6", "event": "delivery", "to": "user@hostname.example.com", "orig_to": "root@localhost",
               "relay": "local", "delay": 0.07, "delays": "0.04/0/0/0.03", "dsn": "2.0.0", "status": "sent",
               "detail": "delivered to command: procmail -a \"$EXTENSION\""}),
    );
    check(
        "postfix/local",
        "3F1B2A: to=<root@mail.uhu-banane.de>, relay=local, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (forwarded as 4PbC7269xVz3tBr)",
        json!({"queue_id": "3F1B2A", "event": "delivery", "to": "root@mail.uhu-banane.de", "relay": "local",
               "delay": 0.01, "delays": "0/0/0/0", "dsn": "2.0.0", "status": "sent",
               "detail": "forwarded as 4PbC7269xVz3tBr", "forwarded_as": "4PbC7269xVz3tBr"}),
    );
    check(
        "postfix/error",
        "3E29030F8637E: to=<user@yahoo.com>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=5.1.1, status=undeliverable-but-not-cached (User unknown in virtual alias table)",
        json!({"queue_id": "3E29030F8637E", "event": "delivery", "to": "user@yahoo.com", "relay": "none",
               "delay": 0.01, "delays": "0.01/0/0/0", "dsn": "5.1.1", "status": "undeliverable",
               "detail": "User unknown in virtual alias table"}),
    );
    check(
        "postfix/smtp",
        "connect to 127.0.0.1[127.0.0.1]:39119: Connection refused",
        json!({"event": "connect_failed", "peer": {"name": "127.0.0.1", "ip": "127.0.0.1", "port": 39119},
               "reason": "Connection refused"}),
    );
    check(
        "postfix/smtp",
        "ED59C3D: host mail2.example.com[1.74.253.23] said: 450 4.7.1 <user@example.com>: Recipient address rejected: Greylisted for 5 minutes (in reply to RCPT TO command)",
        json!({"queue_id": "ED59C3D", "event": "remote_reply", "peer": {"name": "mail2.example.com", "ip": "1.74.253.23"},
               "reply": "450 4.7.1 <user@example.com>: Recipient address rejected: Greylisted for 5 minutes",
               "in_reply_to": "RCPT TO"}),
    );
    check(
        "postfix/smtp",
        "B99FE3D: lost connection with mx3.hotmail.com[65.55.37.72] while receiving the initial server greeting",
        json!({"queue_id": "B99FE3D", "event": "remote_failure", "peer": {"name": "mx3.hotmail.com", "ip": "65.55.37.72"},
               "what": "lost connection", "stage": "receiving the initial server greeting"}),
    );
    check(
        "postfix/bounce",
        "17CCA8044: sender non-delivery notification: ADD2F8052",
        json!({"queue_id": "17CCA8044", "event": "notification", "notification": "sender non-delivery", "new_queue_id": "ADD2F8052"}),
    );
    check(
        "postfix/pickup",
        "D2FAE20586: uid=0 from=<fail2ban>",
        json!({"queue_id": "D2FAE20586", "event": "pickup", "uid": 0, "from": "fail2ban"}),
    );
    check(
        "postfix/postsuper",
        "D4F2023DB: placed on hold",
        json!({"queue_id": "D4F2023DB", "event": "postsuper", "action": "placed on hold"}),
    );
    check(
        "postfix/postsuper",
        "Deleted: 115 messages",
        json!({"event": "postsuper", "action": "Deleted", "count": 115}),
    );
}

#[test]
fn postscreen_and_dnsbl() {
    check(
        "postfix/postscreen",
        "CONNECT from [185.48.118.128]:36942 to [188.34.187.246]:25",
        json!({"event": "screen_connect", "ip": "185.48.118.128", "port": 36942, "server_ip": "188.34.187.246", "server_port": 25}),
    );
    check(
        "postfix/postscreen",
        "PASS OLD [2604:8d00:0:1::3]:52237",
        json!({"event": "screen_pass", "new": false, "ip": "2604:8d00:0:1::3", "port": 52237}),
    );
    check(
        "haproxy/postscreen",
        "PASS NEW [192.0.2.1]:1",
        json!({"event": "screen_pass", "new": true, "ip": "192.0.2.1", "port": 1}),
    );
    check(
        "postfix/postscreen",
        "PREGREET 11 after 0.23 from [180.214.239.18]:59187: EHLO User\\r\\n",
        json!({"event": "screen_pregreet", "bytes": 11, "after": 0.23, "ip": "180.214.239.18", "port": 59187, "text": "EHLO User\\r\\n"}),
    );
    check(
        "postfix/postscreen",
        "DNSBL rank 3 for [180.214.239.18]:59187",
        json!({"event": "screen_dnsbl_rank", "rank": 3, "ip": "180.214.239.18", "port": 59187}),
    );
    check(
        "postfix/postscreen",
        "HANGUP after 2.2 from [122.189.87.41]:52908 in tests after SMTP handshake",
        json!({"event": "screen_hangup", "after": 2.2, "ip": "122.189.87.41", "port": 52908, "stage": "tests after SMTP handshake"}),
    );
    check(
        "postfix/postscreen",
        "DISCONNECT [180.214.239.18]:59187",
        json!({"event": "screen_disconnect", "ip": "180.214.239.18", "port": 59187}),
    );
    check(
        "postfix/postscreen",
        "NON-SMTP COMMAND from [93.174.93.51]:45284 after CONNECT: GET http://ipv4scan.com/hello/check.txt HTTP/1.1",
        json!({"event": "screen_violation", "violation": "NON-SMTP COMMAND", "ip": "93.174.93.51", "port": 45284,
               "after": "CONNECT: GET http://ipv4scan.com/hello/check.txt HTTP/1.1"}),
    );
    check(
        "postfix/postscreen",
        "COMMAND TIME LIMIT from [182.246.250.243]:51799 after CONNECT",
        json!({"event": "screen_violation", "violation": "COMMAND TIME LIMIT", "ip": "182.246.250.243", "port": 51799, "after": "CONNECT"}),
    );
    check(
        "postfix/postscreen",
        "WHITELIST VETO [61.238.241.86]:53024",
        json!({"event": "screen_listed", "list": "WHITELIST VETO", "ip": "61.238.241.86", "port": 53024}),
    );
    check(
        "postfix/postscreen",
        "cache btree:/var/lib/postfix/postscreen_cache full cleanup: retained=242 dropped=7 entries",
        json!({"event": "cache_cleanup", "cache": "btree:/var/lib/postfix/postscreen_cache", "retained": 242, "dropped": 7}),
    );
    check(
        "postfix/verify",
        "cache btree:/var/lib/postfix/verify_cache partial cleanup: retained=1 dropped=0 entries",
        json!({"event": "cache_cleanup", "cache": "btree:/var/lib/postfix/verify_cache", "retained": 1, "dropped": 0}),
    );
    check(
        "postfix/qmgr",
        "ED06590130AA1C9D6D862: skipped, still being delivered",
        json!({"queue_id": "ED06590130AA1C9D6D862", "event": "postsuper", "action": "skipped, still being delivered"}),
    );
    check(
        "postfix/dnsblog",
        "addr 2607:f8b0:4003:c01::23a listed by domain list.dnswl.org as 127.0.5.1",
        json!({"event": "dnsbl_listed", "ip": "2607:f8b0:4003:c01::23a", "domain": "list.dnswl.org", "reply": "127.0.5.1"}),
    );
    check(
        "postfix/postscreen",
        "warning: dnsblog reply timeout 10s for b.barracudacentral.org",
        json!({"event": "warning", "text": "dnsblog reply timeout 10s for b.barracudacentral.org"}),
    );
}

#[test]
fn tls_and_proxy() {
    check(
        "postfix/smtpd",
        "Anonymous TLS connection established from julie.example.com[10.163.89.202]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (4096 bits) server-digest SHA256",
        json!({"event": "tls_established", "trust": "Anonymous", "direction": "from",
               "peer": {"name": "julie.example.com", "ip": "10.163.89.202"}, "protocol": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}),
    );
    check(
        "postfix/smtp",
        "Verified TLS connection established to mail.sys4.de[2001:1578:400:111::7]:25: TLSv1 with cipher ECDHE-RSA-AES256-SHA (256/256 bits)",
        json!({"event": "tls_established", "trust": "Verified", "direction": "to",
               "peer": {"name": "mail.sys4.de", "ip": "2001:1578:400:111::7", "port": 25}, "protocol": "TLSv1", "cipher": "ECDHE-RSA-AES256-SHA"}),
    );
    check(
        "postfix/tlsproxy",
        "Anonymous TLS connection established from [122.189.87.41]:52908: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
        json!({"event": "tls_established", "trust": "Anonymous", "direction": "from",
               "peer": {"name": "", "ip": "122.189.87.41", "port": 52908}, "protocol": "TLSv1.2", "cipher": "ECDHE-RSA-AES256-GCM-SHA384"}),
    );
    check(
        "postfix/tlsproxy",
        "CONNECT from [82.118.17.142]:51637",
        json!({"event": "proxy_connect", "ip": "82.118.17.142", "port": 51637}),
    );
    check(
        "postfix/tlsproxy",
        "TLS handshake failed for service=smtpd peer=[43.153.4.156]:45680",
        json!({"event": "tls_failed", "peer": {"name": "", "ip": "43.153.4.156", "port": 45680},
               "text": "TLS handshake failed for service=smtpd peer=[43.153.4.156]:45680"}),
    );
    check(
        "postfix/smtpd",
        "SSL_accept error from unknown[72.13.58.7]: lost connection",
        json!({"event": "tls_failed", "peer": {"name": "unknown", "ip": "72.13.58.7"}, "text": "SSL_accept error from unknown[72.13.58.7]: lost connection"}),
    );
}

#[test]
fn daemons_and_levels() {
    check(
        "postfix/anvil",
        "statistics: max connection rate 1/60s for (smtp:185.48.118.128) at Mar 14 00:08:03",
        json!({"event": "anvil_max", "metric": "connection rate", "value": "1/60s", "client": "smtp:185.48.118.128", "at": "Mar 14 00:08:03"}),
    );
    check(
        "postfix/anvil",
        "statistics: max cache size 1 at Oct 26 18:13:50",
        json!({"event": "anvil_max", "metric": "cache size", "value": "1", "at": "Oct 26 18:13:50"}),
    );
    check(
        "postfix/scache",
        "statistics: domain lookup hits=0 miss=1 success=0%",
        json!({"event": "statistics", "text": "domain lookup hits=0 miss=1 success=0%"}),
    );
    check(
        "postfix/master",
        "daemon started -- version 3.7.11, configuration /etc/postfix",
        json!({"event": "master", "what": "started", "version": "3.7.11", "text": "daemon started -- version 3.7.11, configuration /etc/postfix"}),
    );
    check(
        "postfix/master",
        "terminating on signal 15",
        json!({"event": "master", "what": "terminating", "text": "terminating on signal 15"}),
    );
    check(
        "postfix/postfix-script",
        "starting the Postfix mail system",
        json!({"event": "master", "what": "starting", "text": "starting the Postfix mail system"}),
    );
    check(
        "postfix/sendmail",
        "fatal: root(0): message file too big",
        json!({"event": "fatal", "text": "root(0): message file too big"}),
    );
    check(
        "postfix/smtpd",
        "panic: myfree: corrupt or unallocated memory block",
        json!({"event": "panic", "text": "myfree: corrupt or unallocated memory block"}),
    );
    check(
        "postfix/master",
        "warning: process /usr/lib/postfix/sbin/smtpd pid 46234 killed by signal 11",
        json!({"event": "warning", "text": "process /usr/lib/postfix/sbin/smtpd pid 46234 killed by signal 11"}),
    );
    check(
        "postfix/smtpd",
        "discarding EHLO keywords: CHUNKING ETRN DSN 8BITMIME",
        json!({"event": "info", "text": "discarding EHLO keywords: CHUNKING ETRN DSN 8BITMIME"}),
    );
}

#[test]
fn unknown_shapes_are_none() {
    none("postfix/smtpd", "something new that postfix 4.0 might write");
    none("postfix/qmgr", "4PbC4x469Jz3tBr: a brand new record type");
    none("postfix/smtpd", "connect from no-brackets");
    none("postfix/postscreen", "PASS NEW not-an-address");
    none("postfix/smtpd", "");
}

fn samples() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "postfix/smtpd",
            "NOQUEUE: reject: RCPT from unknown[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<x@y> to=<a@b> proto=ESMTP helo=<h>",
        ),
        (
            "postfix/smtp",
            "4PbC4x469Jz3tBr: to=<a@b>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.5, delays=0.19/0/0/2.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4PbC4z6D1Tz3tBt)",
        ),
        (
            "postfix/postscreen",
            "PREGREET 11 after 0.23 from [180.214.239.18]:59187: EHLO User\\r\\n",
        ),
        (
            "postfix/cleanup",
            "48rT2v1hQrz1J0N: prepend: header X-Spam: Yes from mx[1.2.3.4]; from=<a> to=<b> proto=ESMTP helo=<c>: X",
        ),
        (
            "postfix/smtpd",
            "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: , sasl_username=alice@lab.test",
        ),
        (
            "postfix/anvil",
            "statistics: max connection rate 1/60s for (smtp:1.2.3.4) at Mar 14 00:08:03",
        ),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(program in "postfix/[a-z]{1,10}", message in ".{0,300}") {
        let _ = parse(&program, &message);
    }

    #[test]
    fn never_panics_on_truncated_or_mutated_lines(i in 0usize..6, cut in 0usize..300, pos in 0usize..300, c in any::<char>()) {
        let (program, line) = samples()[i];
        let variants = test_support::mutations(line, cut, pos, c);
        // The same edits within the truncated line (its prefix comes first).
        let in_prefix = test_support::mutations(&variants[0], cut, pos, c);
        for m in variants.iter().chain(&in_prefix) {
            let _ = parse(program, m);
        }
    }
}
