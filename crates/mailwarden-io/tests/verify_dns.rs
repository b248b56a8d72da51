//! `verify_message` against a real private DNS server (Knot, via
//! `mailwarden_testlab::DnsServer`): DKIM (Ed25519), SPF and DMARC for the
//! zone `lab.test`. The resolver only ever points at the test server (or at a
//! loopback port where nothing answers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use mailwarden_io::verify::{MAX_MESSAGE_BYTES, VerifyConfig, VerifyReport, verify_message};
use mailwarden_testlab::{DnsServer, DnsZone};

/// RFC 8463 appendix A test key (Ed25519): private seed.
const ED25519_SEED: [u8; 32] = [
    157, 97, 177, 157, 239, 253, 90, 96, 186, 132, 74, 244, 146, 236, 44, 196, 68, 73, 197, 105, 123, 50,
    105, 25, 112, 59, 172, 3, 28, 174, 127, 96,
];
/// RFC 8463 appendix A test key (Ed25519): public key.
const ED25519_PUBLIC: [u8; 32] = [
    215, 90, 152, 1, 130, 177, 10, 183, 213, 75, 254, 211, 201, 100, 7, 58, 14, 225, 114, 243, 218, 166, 35,
    37, 175, 2, 26, 104, 247, 7, 81, 26,
];
/// The same public key, base64 (as published in DNS).
const ED25519_PUBLIC_B64: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const SELECTOR: &str = "mw2026";

const MESSAGE: &str = "From: The CEO <ceo@lab.test>\r\n\
To: finance@example.net\r\n\
Subject: Urgent wire transfer\r\n\
Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <sample-1@lab.test>\r\n\
\r\n\
Please wire the money today.\r\n\
Thanks.\r\n";

const GOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const BAD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));

fn lab_zone() -> DnsZone {
    DnsZone::new("lab.test")
        .txt("@", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc", "v=DMARC1; p=reject")
        .txt(
            &format!("{SELECTOR}._domainkey"),
            &format!("v=DKIM1; k=ed25519; p={ED25519_PUBLIC_B64}"),
        )
}

fn signed_message() -> String {
    let key =
        Ed25519Key::from_seed_and_public_key(&ED25519_SEED, &ED25519_PUBLIC).expect("RFC 8463 key pair");
    assert_eq!(key.public_key(), ED25519_PUBLIC.to_vec());
    let signature = DkimSigner::from_key(key)
        .domain("lab.test")
        .selector(SELECTOR)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(MESSAGE.as_bytes())
        .expect("DKIM signing");
    format!("{}{MESSAGE}", signature.to_header())
}

fn cfg(server: &DnsServer) -> VerifyConfig {
    VerifyConfig {
        resolver: Some(server.addr()),
        timeout: Duration::from_secs(10),
    }
}

/// Serves `lab.test` and (empty) `test`: the DMARC tree walk (RFC 9989)
/// also asks for `_dmarc.test`, which must get NXDOMAIN like on the real
/// internet; a server that is not authoritative for it answers REFUSED,
/// which is (correctly) a DMARC temperror.
fn start_server() -> DnsServer {
    DnsServer::start(vec![lab_zone(), DnsZone::new("test")]).expect("starting the private DNS server (knotd)")
}

fn dkim_results(report: &VerifyReport) -> Vec<&str> {
    report.dkim.iter().map(|d| d.result.as_str()).collect()
}

#[tokio::test]
async fn signed_from_authorized_ip_passes_everything() {
    let server = start_server();
    let msg = signed_message();
    let report = verify_message(
        msg.as_bytes(),
        GOOD_IP,
        "mail.lab.test",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    assert_eq!(report.dkim.len(), 1, "{report:#?}");
    let dkim = &report.dkim[0];
    assert_eq!(dkim.result, "pass", "{report:#?}");
    assert_eq!(dkim.domain, "lab.test");
    assert_eq!(dkim.selector, SELECTOR);
    let spf = report.spf.as_ref().expect("spf");
    assert_eq!(spf.result, "pass", "{report:#?}");
    assert_eq!(spf.ip, GOOD_IP);
    assert_eq!(spf.mail_from, "lab.test");
    let dmarc = report.dmarc.as_ref().expect("dmarc");
    assert_eq!(dmarc.header_from, "lab.test");
    assert_eq!(dmarc.result, "pass", "{report:#?}");
    assert_eq!(dmarc.spf, "pass");
    assert_eq!(dmarc.dkim, "pass");
    assert_eq!(dmarc.policy, "reject");
    assert!(report.errors.is_empty(), "{report:#?}");
    // The report serializes.
    let json = serde_json::to_string(&report).expect("json");
    assert!(json.contains("\"policy\":\"reject\""), "{json}");
}

#[tokio::test]
async fn signed_from_foreign_ip_passes_dmarc_via_dkim() {
    let server = start_server();
    let msg = signed_message();
    let report = verify_message(
        msg.as_bytes(),
        BAD_IP,
        "mx.attacker.example",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    assert_eq!(dkim_results(&report), ["pass"], "{report:#?}");
    assert_eq!(report.spf.as_ref().expect("spf").result, "fail");
    let dmarc = report.dmarc.as_ref().expect("dmarc");
    assert_eq!(dmarc.result, "pass", "{report:#?}");
    assert_eq!(dmarc.dkim, "pass");
    // SPF did not pass, so it contributes no aligned identifier.
    assert_ne!(dmarc.spf, "pass");
    assert_eq!(dmarc.policy, "reject");
    assert!(report.errors.is_empty(), "{report:#?}");
}

#[tokio::test]
async fn altered_body_fails_dkim_and_dmarc() {
    let server = start_server();
    let msg = signed_message().replace("wire the money", "wire ALL the money");
    let report = verify_message(
        msg.as_bytes(),
        BAD_IP,
        "mx.attacker.example",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    assert_eq!(dkim_results(&report), ["fail"], "{report:#?}");
    assert!(!report.dkim[0].reason.is_empty());
    assert_eq!(report.spf.as_ref().expect("spf").result, "fail");
    let dmarc = report.dmarc.as_ref().expect("dmarc");
    assert_eq!(dmarc.result, "fail", "{report:#?}");
    assert_ne!(dmarc.dkim, "pass");
    assert_ne!(dmarc.spf, "pass");
    assert_eq!(dmarc.policy, "reject");
}

#[tokio::test]
async fn unsigned_spoof_fails_dmarc() {
    let server = start_server();
    let report = verify_message(
        MESSAGE.as_bytes(),
        BAD_IP,
        "mx.attacker.example",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    assert!(report.dkim.iter().all(|d| d.result == "none"), "{report:#?}");
    assert_eq!(report.spf.as_ref().expect("spf").result, "fail");
    let dmarc = report.dmarc.as_ref().expect("dmarc");
    assert_eq!(dmarc.result, "fail", "{report:#?}");
    assert_eq!(dmarc.policy, "reject");
}

#[tokio::test]
async fn null_sender_uses_helo_for_spf() {
    let server = start_server();
    let report = verify_message(MESSAGE.as_bytes(), GOOD_IP, "lab.test", "", &cfg(&server)).await;
    let spf = report.spf.as_ref().expect("spf");
    assert_eq!(spf.mail_from, "lab.test");
    assert_eq!(spf.result, "pass", "{report:#?}");
    // SPF (HELO identity lab.test) is aligned with From: lab.test.
    assert_eq!(report.dmarc.as_ref().expect("dmarc").result, "pass");
}

/// A loopback port with nothing listening on UDP or TCP.
fn dead_port() -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = udp.local_addr().expect("addr");
    drop(udp);
    // Best effort: make sure TCP on that port is free as well.
    drop(TcpListener::bind(addr));
    addr
}

fn assert_temperror_report(report: &VerifyReport) {
    assert!(!report.errors.is_empty(), "{report:#?}");
    assert_eq!(dkim_results(report), ["temperror"], "{report:#?}");
    assert_eq!(
        report.spf.as_ref().expect("spf").result,
        "temperror",
        "{report:#?}"
    );
    let dmarc = report.dmarc.as_ref().expect("dmarc");
    assert_eq!(dmarc.result, "temperror", "{report:#?}");
}

#[tokio::test]
async fn refused_resolver_gives_temperror_not_panic() {
    let timeout = Duration::from_secs(3);
    let cfg = VerifyConfig {
        resolver: Some(dead_port()),
        timeout,
    };
    let msg = signed_message();
    let started = Instant::now();
    let report = verify_message(msg.as_bytes(), GOOD_IP, "mail.lab.test", "ceo@lab.test", &cfg).await;
    let elapsed = started.elapsed();
    assert!(elapsed < timeout + Duration::from_secs(1), "took {elapsed:?}");
    assert_temperror_report(&report);
}

#[tokio::test]
async fn silent_resolver_times_out_within_budget() {
    // A bound UDP socket that never answers (queries are black-holed); TCP
    // on that port is refused.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let timeout = Duration::from_secs(2);
    let cfg = VerifyConfig {
        resolver: Some(silent.local_addr().expect("addr")),
        timeout,
    };
    let msg = signed_message();
    let started = Instant::now();
    let report = verify_message(msg.as_bytes(), GOOD_IP, "mail.lab.test", "ceo@lab.test", &cfg).await;
    let elapsed = started.elapsed();
    assert!(elapsed < timeout + Duration::from_secs(1), "took {elapsed:?}");
    assert_temperror_report(&report);
    drop(silent);
}

#[tokio::test]
async fn oversized_message_is_refused() {
    let cfg = VerifyConfig {
        resolver: Some(dead_port()),
        timeout: Duration::from_secs(1),
    };
    let mut msg = MESSAGE.as_bytes().to_vec();
    msg.resize(MAX_MESSAGE_BYTES + 1, b'x');
    let report = verify_message(&msg, GOOD_IP, "mail.lab.test", "ceo@lab.test", &cfg).await;
    assert!(report.dkim.is_empty());
    assert!(report.spf.is_none());
    assert!(report.dmarc.is_none());
    assert_eq!(report.errors.len(), 1, "{report:#?}");
    assert!(report.errors[0].contains("limit"), "{report:#?}");
}

#[tokio::test]
async fn garbage_input_does_not_panic() {
    let server = start_server();
    for raw in [
        &b""[..],
        b"\r\n\r\n",
        b"DKIM-Signature: v=1; a=ed25519-sha256; d=lab.test; s=\r\n\r\nx",
        b"From: <>\r\nFrom: a@b@c\r\n\r\n",
        &[0xff, 0xfe, 0x00, b':', b'\n'],
    ] {
        let report = verify_message(raw, GOOD_IP, "", "", &cfg(&server)).await;
        assert!(report.spf.is_some());
    }
}

/// The forwarder `relay.test` seals the signed message with ARC (RFC 8617),
/// using the same Ed25519 key under its own domain.
fn arc_sealed(message: &str) -> String {
    use mail_auth::arc::ArcSealer;
    use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};
    let key =
        Ed25519Key::from_seed_and_public_key(&ED25519_SEED, &ED25519_PUBLIC).expect("RFC 8463 key pair");
    let parsed = AuthenticatedMessage::parse(message.as_bytes()).expect("parse");
    let results = AuthenticationResults::new("relay.test");
    let set = ArcSealer::from_key(key)
        .domain("relay.test")
        .selector("arc")
        .headers(["From", "To", "Subject", "DKIM-Signature"])
        .seal(&parsed, &results, &ArcOutput::default())
        .expect("ARC sealing");
    format!("{}{message}", set.to_header())
}

fn relay_zone() -> DnsZone {
    DnsZone::new("relay.test").txt(
        "arc._domainkey",
        &format!("v=DKIM1; k=ed25519; p={ED25519_PUBLIC_B64}"),
    )
}

#[tokio::test]
async fn arc_chain_is_verified() {
    let server = DnsServer::start(vec![lab_zone(), relay_zone(), DnsZone::new("test")]).expect("knotd");
    let sealed = arc_sealed(&signed_message());
    let report = verify_message(
        sealed.as_bytes(),
        GOOD_IP,
        "mail.lab.test",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    let arc = report.arc.as_ref().expect("arc checked");
    assert_eq!(arc.result, "pass", "{report:#?}");
    assert_eq!(arc.sets, ["i=1 d=relay.test s=arc cv=none"], "{report:#?}");

    // A header covered by the seal changed after sealing: the chain fails.
    let tampered = sealed.replace("Subject: Urgent wire transfer", "Subject: Urgent wire transfer!!");
    let report = verify_message(
        tampered.as_bytes(),
        GOOD_IP,
        "mail.lab.test",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    let arc = report.arc.as_ref().expect("arc checked");
    assert_eq!(arc.result, "fail", "{report:#?}");
    assert!(!arc.reason.is_empty());

    // No ARC headers at all: none.
    let plain = signed_message();
    let report = verify_message(
        plain.as_bytes(),
        GOOD_IP,
        "mail.lab.test",
        "ceo@lab.test",
        &cfg(&server),
    )
    .await;
    assert_eq!(report.arc.as_ref().expect("arc checked").result, "none");
}
