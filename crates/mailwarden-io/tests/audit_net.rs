//! The MX, reverse-DNS, DNSBL and MTA-STS checks of `mailwarden dns`
//! against real servers: a private Knot DNS server (`DnsServer`) serving
//! the zone `test` (one subdomain per scenario, the blocklists `*.bl…test`)
//! and the reverse zone `100.51.198.in-addr.arpa` (TEST-NET-2, the MX
//! addresses), and a private HTTPS
//! server (`HttpsServer`) with certificates from a test CA for the MTA-STS
//! policy hosts. The resolver only ever points at the test server; the
//! policy hosts resolve to 127.0.0.1, where the HTTPS server listens.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mailwarden_core::posture::{Finding, Severity};
use mailwarden_io::audit::dnsbl::{DnsblConfig, ZoneStatus, check_dnsbl};
use mailwarden_io::audit::mta_sts::{HttpsConfig, Mode, MtaStsReport, POLICY_PATH, check_mta_sts};
use mailwarden_io::audit::mx::check_mx;
use mailwarden_io::dns::{DnsClient, DnsConfig, dnsbl_name};
use mailwarden_testlab::{DnsServer, DnsZone, HttpsRoute, HttpsServer, HttpsSite};

/// An address the test blocklist lists (TEST-NET-1; only ever asked from
/// the private server).
const LISTED: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
/// An address no test blocklist lists.
const CLEAN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
/// An IPv6 address the IPv6-capable test blocklist lists.
const LISTED_V6: &str = "2001:db8::25";

/// Records of the zone `test`: one subdomain per MX scenario, and the
/// blocklists.
fn test_zone() -> DnsZone {
    let v6: IpAddr = LISTED_V6.parse().unwrap();
    let mapped = |last: u8| IpAddr::V6(Ipv4Addr::new(127, 0, 0, last).to_ipv6_mapped());
    let bl = |ip: IpAddr, zone: &str, rest: &str| format!("{}. 300 IN {rest}", dnsbl_name(ip, zone));
    DnsZone::new("test")
        // good.test: one MX with forward-confirmed reverse DNS.
        .record("good.test. IN MX 10 mail.good.test.")
        .record("mail.good.test. IN A 198.51.100.10")
        // noptr.test: the MX address has no PTR.
        .record("noptr.test. IN MX 10 mail.noptr.test.")
        .record("mail.noptr.test. IN A 198.51.100.11")
        // badptr.test: the PTR name resolves elsewhere.
        .record("badptr.test. IN MX 10 mail.badptr.test.")
        .record("mail.badptr.test. IN A 198.51.100.12")
        .record("other.badptr.test. IN A 198.51.100.99")
        // generic.test: forward-confirmed, but a pool name.
        .record("generic.test. IN MX 10 mail.generic.test.")
        .record("mail.generic.test. IN A 198.51.100.13")
        .record("198-51-100-13.dyn.isp.test. IN A 198.51.100.13")
        // cname.test: the MX target is an alias.
        .record("cname.test. IN MX 10 alias.cname.test.")
        .record("alias.cname.test. IN CNAME real.cname.test.")
        .record("real.cname.test. IN A 198.51.100.10")
        // unres.test: one target does not exist, one has no address.
        .record("unres.test. IN MX 10 nowhere.unres.test.")
        .record("unres.test. IN MX 20 noaddr.unres.test.")
        .record("noaddr.unres.test. IN TXT \"no address here\"")
        // nullmx.test / mixed.test / literal.test / nomx.test.
        .record("nullmx.test. IN MX 0 .")
        .record("mixed.test. IN MX 0 .")
        .record("mixed.test. IN MX 10 mail.good.test.")
        .record("literal.test. IN MX 10 192.0.2.1.")
        .record("nomx.test. IN A 198.51.100.10")
        // bl.test: a healthy blocklist listing LISTED, with a reason.
        .record(bl("127.0.0.2".parse().unwrap(), "bl.test", "A 127.0.0.2"))
        .record(bl(LISTED, "bl.test", "A 127.0.0.4"))
        .record(bl(
            LISTED,
            "bl.test",
            "TXT \"listed for spam trap hits, see https://bl.test/lookup\"",
        ))
        // dead.bl6.test: lists nothing, not even 127.0.0.2 — broken. It
        // "lists" LISTED, which must not be reported.
        .record(bl(LISTED, "dead.bl6.test", "A 127.0.0.2"))
        // all.bl6.test: lists everything (127.0.0.1 too) — broken.
        .record("*.all.bl6.test. IN A 127.0.0.2")
        // refusing.bl6.test: answers the "public resolver" code.
        .record("*.refusing.bl6.test. IN A 127.255.255.254")
        // v6.bl6.test: healthy for IPv4 and IPv6, lists the IPv6 address.
        .record(bl("127.0.0.2".parse().unwrap(), "v6.bl6.test", "A 127.0.0.2"))
        .record(bl(mapped(2), "v6.bl6.test", "A 127.0.0.2"))
        .record(bl(v6, "v6.bl6.test", "A 127.0.0.3"))
        // MTA-STS domains: records and policy hosts (all on 127.0.0.1).
        .txt("_mta-sts.good.test.", "v=STSv1; id=20250101")
        .record("mta-sts.good.test. IN A 127.0.0.1")
        .record("sts.test. IN MX 10 mx1.sts.test.")
        .record("sts.test. IN MX 20 mx2.sts.test.")
        .txt("_mta-sts.testing.test.", "v=STSv1; id=1")
        .record("mta-sts.testing.test. IN A 127.0.0.1")
        .txt("_mta-sts.miss.test.", "v=STSv1; id=1")
        .record("mta-sts.miss.test. IN A 127.0.0.1")
        .txt("_mta-sts.gone.test.", "v=STSv1; id=1")
        .txt("_mta-sts.redirect.test.", "v=STSv1; id=1")
        .record("mta-sts.redirect.test. IN A 127.0.0.1")
        .txt("_mta-sts.wrongname.test.", "v=STSv1; id=1")
        .record("mta-sts.wrongname.test. IN A 127.0.0.1")
        .txt("_mta-sts.selfsigned.test.", "v=STSv1; id=1")
        .record("mta-sts.selfsigned.test. IN A 127.0.0.1")
        .txt("_mta-sts.big.test.", "v=STSv1; id=1")
        .record("mta-sts.big.test. IN A 127.0.0.1")
        .txt("_mta-sts.chunked.test.", "v=STSv1; id=1")
        .record("mta-sts.chunked.test. IN A 127.0.0.1")
        .txt("_mta-sts.html.test.", "v=STSv1; id=1")
        .record("mta-sts.html.test. IN A 127.0.0.1")
        .txt("_mta-sts.slow.test.", "v=STSv1; id=1")
        .record("mta-sts.slow.test. IN A 127.0.0.1")
        .txt("_mta-sts.twice.test.", "v=STSv1; id=1")
        .txt("_mta-sts.twice.test.", "v=STSv1; id=2")
        .txt("_mta-sts.badid.test.", "v=STSv1; id=not-alnum!")
        .record("mta-sts.norecord.test. IN A 127.0.0.1")
        .txt("_mta-sts.invalid.test.", "v=STSv1; id=1")
        .record("mta-sts.invalid.test. IN A 127.0.0.1")
}

/// PTR records for the MX addresses (198.51.100.x, TEST-NET-2). Not
/// 127.0.0.x: hickory answers PTR queries under `127.in-addr.arpa` itself
/// with `localhost` (RFC 6761), without asking the server.
fn reverse_zone() -> DnsZone {
    DnsZone::new("100.51.198.in-addr.arpa")
        .record("10 IN PTR mail.good.test.")
        .record("12 IN PTR other.badptr.test.")
        .record("13 IN PTR 198-51-100-13.dyn.isp.test.")
}

fn start_dns() -> DnsServer {
    DnsServer::start(vec![test_zone(), reverse_zone()]).expect("starting the private DNS server (knotd)")
}

fn client(server: &DnsServer) -> DnsClient {
    DnsClient::new(&DnsConfig {
        server: Some(server.addr()),
        timeout: Duration::from_secs(5),
        attempts: 2,
    })
    .expect("DNS client")
}

fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.id).collect()
}

/// The one finding with `id`, with its severity checked.
#[track_caller]
fn find<'a>(findings: &'a [Finding], id: &str, severity: Severity) -> &'a Finding {
    let matching: Vec<&Finding> = findings.iter().filter(|f| f.id == id).collect();
    assert_eq!(matching.len(), 1, "expected one {id} in {findings:#?}");
    assert_eq!(matching[0].severity, severity, "{:#?}", matching[0]);
    if severity > Severity::Info {
        assert!(matching[0].fix.is_some(), "{id} has no fix: {:#?}", matching[0]);
    }
    matching[0]
}

#[track_caller]
fn absent(findings: &[Finding], id: &str) {
    assert!(
        !findings.iter().any(|f| f.id == id),
        "unexpected {id} in {findings:#?}"
    );
}

// ---------------------------------------------------------------- MX / PTR

#[tokio::test]
async fn mx_with_forward_confirmed_reverse_dns() {
    let server = start_dns();
    let dns = client(&server);
    let report = check_mx(&dns, "good.test").await;
    assert!(!report.null_mx);
    assert_eq!(report.hosts.len(), 1, "{report:#?}");
    let host = &report.hosts[0];
    assert_eq!((host.preference, host.exchange.as_str()), (10, "mail.good.test"));
    assert_eq!(host.addresses, ["198.51.100.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(host.reverse.len(), 1);
    assert_eq!(host.reverse[0].names, ["mail.good.test"]);
    assert!(host.reverse[0].forward_confirmed);
    assert_eq!(report.addresses(), host.addresses);
    assert_eq!(report.exchanges(), ["mail.good.test"]);
    find(&report.findings, "mx.present", Severity::Pass);
    find(&report.findings, "mx.resolves", Severity::Pass);
    find(&report.findings, "ptr.forward-confirmed", Severity::Pass);
    assert!(
        report.findings.iter().all(|f| f.severity == Severity::Pass),
        "{report:#?}"
    );
}

#[tokio::test]
async fn null_mx_and_its_contradictions() {
    let server = start_dns();
    let dns = client(&server);

    let null = check_mx(&dns, "nullmx.test").await;
    assert!(null.null_mx);
    assert!(null.hosts.is_empty());
    let f = find(&null.findings, "mx.null", Severity::Info);
    assert_eq!(f.evidence, ["nullmx.test MX 0 ."]);
    assert_eq!(null.findings.len(), 1, "{null:#?}");

    let mixed = check_mx(&dns, "mixed.test").await;
    assert!(!mixed.null_mx);
    find(&mixed.findings, "mx.null-mixed", Severity::Fail);
    // The real host is still checked.
    assert_eq!(mixed.exchanges(), ["mail.good.test"]);

    let none = check_mx(&dns, "nomx.test").await;
    let f = find(&none.findings, "mx.missing", Severity::Warning);
    assert!(f.message.contains("198.51.100.10"), "{f:#?}");

    let nx = check_mx(&dns, "nosuchdomain.test").await;
    find(&nx.findings, "mx.nxdomain", Severity::Fail);
}

#[tokio::test]
async fn mx_without_ptr_and_with_a_ptr_that_does_not_resolve_back() {
    let server = start_dns();
    let dns = client(&server);

    let noptr = check_mx(&dns, "noptr.test").await;
    let f = find(&noptr.findings, "ptr.missing", Severity::Warning);
    assert_eq!(f.subject, "198.51.100.11");
    assert!(noptr.hosts[0].reverse[0].names.is_empty());
    assert!(!noptr.hosts[0].reverse[0].forward_confirmed);

    let badptr = check_mx(&dns, "badptr.test").await;
    let f = find(&badptr.findings, "ptr.not-forward-confirmed", Severity::Warning);
    assert!(f.message.contains("other.badptr.test"), "{f:#?}");
    assert!(
        f.evidence.iter().any(|e| e.contains("198.51.100.99")),
        "the evidence shows where the name points: {f:#?}"
    );
    assert_eq!(badptr.hosts[0].reverse[0].names, ["other.badptr.test"]);
    assert!(!badptr.hosts[0].reverse[0].forward_confirmed);

    let generic = check_mx(&dns, "generic.test").await;
    find(&generic.findings, "ptr.forward-confirmed", Severity::Pass);
    let f = find(&generic.findings, "ptr.generic", Severity::Info);
    assert!(f.message.contains("198-51-100-13.dyn.isp.test"), "{f:#?}");
}

#[tokio::test]
async fn mx_target_problems() {
    let server = start_dns();
    let dns = client(&server);

    let cname = check_mx(&dns, "cname.test").await;
    let f = find(&cname.findings, "mx.cname", Severity::Warning);
    assert_eq!(f.subject, "alias.cname.test");
    assert_eq!(cname.hosts[0].cname.as_deref(), Some("real.cname.test"));
    // It still resolves (through the alias), and reverse DNS is checked.
    assert_eq!(
        cname.hosts[0].addresses,
        ["198.51.100.10".parse::<IpAddr>().unwrap()]
    );
    find(&cname.findings, "ptr.forward-confirmed", Severity::Pass);

    let unres = check_mx(&dns, "unres.test").await;
    let bad: Vec<&Finding> = unres
        .findings
        .iter()
        .filter(|f| f.id == "mx.unresolvable")
        .collect();
    assert_eq!(bad.len(), 2, "{unres:#?}");
    assert!(bad.iter().all(|f| f.severity == Severity::Fail));
    assert!(bad[0].message.contains("NXDOMAIN"), "{:#?}", bad[0]);
    assert!(bad[1].message.contains("no A or AAAA"), "{:#?}", bad[1]);
    assert!(unres.addresses().is_empty());

    let literal = check_mx(&dns, "literal.test").await;
    let f = find(&literal.findings, "mx.ip-literal", Severity::Fail);
    assert_eq!(f.subject, "192.0.2.1");
    absent(&literal.findings, "mx.unresolvable");
}

#[tokio::test]
async fn mx_lookup_failure_is_a_finding_not_a_missing_record() {
    // A loopback port where nothing answers: every lookup times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = DnsClient::new(&DnsConfig {
        server: Some(silent.local_addr().unwrap()),
        timeout: Duration::from_millis(200),
        attempts: 1,
    })
    .unwrap();
    let report = check_mx(&dns, "good.test").await;
    let f = find(&report.findings, "mx.lookup-failed", Severity::Warning);
    assert_eq!(f.area, mailwarden_core::posture::Area::Dns);
    absent(&report.findings, "mx.missing");
}

// ---------------------------------------------------------------- DNSBL

fn zones(names: &[&str]) -> DnsblConfig {
    DnsblConfig {
        zones: names.iter().map(|z| (*z).to_owned()).collect(),
    }
}

#[tokio::test]
async fn dnsbl_listing_in_a_healthy_zone() {
    let server = start_dns();
    let dns = client(&server);
    let report = check_dnsbl(&dns, &[LISTED, CLEAN], &zones(&["bl.test"])).await;
    assert_eq!(report.zones.len(), 1);
    assert_eq!(report.zones[0].status, ZoneStatus::Healthy, "{report:#?}");
    assert_eq!(report.listings.len(), 1, "{report:#?}");
    let listing = &report.listings[0];
    assert_eq!((listing.address, listing.zone.as_str()), (LISTED, "bl.test"));
    assert_eq!(listing.codes, [Ipv4Addr::new(127, 0, 0, 4)]);
    assert!(listing.reason.as_deref().unwrap().contains("spam trap"));

    let f = find(&report.findings, "dnsbl.listed", Severity::Fail);
    assert_eq!(f.subject, "192.0.2.10");
    assert!(f.message.contains("spam trap"), "{f:#?}");
    let pass = find(&report.findings, "dnsbl.not-listed", Severity::Pass);
    assert_eq!(pass.subject, "192.0.2.20");
}

#[tokio::test]
async fn dnsbl_broken_and_refusing_zones_are_not_trusted() {
    let server = start_dns();
    let dns = client(&server);
    let cfg = zones(&["bl.test", "dead.bl6.test", "all.bl6.test", "refusing.bl6.test."]);
    let report = check_dnsbl(&dns, &[LISTED, CLEAN], &cfg).await;
    let status: Vec<(&str, ZoneStatus)> = report.zones.iter().map(|z| (z.zone.as_str(), z.status)).collect();
    assert_eq!(
        status,
        [
            ("bl.test", ZoneStatus::Healthy),
            ("dead.bl6.test", ZoneStatus::Broken),
            ("all.bl6.test", ZoneStatus::Broken),
            ("refusing.bl6.test", ZoneStatus::Refused),
        ],
        "{report:#?}"
    );
    let broken: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.id == "dnsbl.zone-broken")
        .collect();
    assert_eq!(broken.len(), 2, "{report:#?}");
    assert!(broken[0].message.contains("127.0.0.2"), "{:#?}", broken[0]);
    assert!(broken[1].message.contains("127.0.0.1"), "{:#?}", broken[1]);
    let refused = find(&report.findings, "dnsbl.zone-refused", Severity::Warning);
    assert!(refused.message.contains("127.255.255.254"), "{refused:#?}");
    assert!(refused.fix.as_deref().unwrap().contains("resolver"));

    // Only the healthy zone's answers count: dead.bl6.test "lists" LISTED
    // and all.bl6.test lists everything, yet only bl.test's listing is reported.
    let listed: Vec<(IpAddr, &str)> = report
        .listings
        .iter()
        .map(|l| (l.address, l.zone.as_str()))
        .collect();
    assert_eq!(listed, [(LISTED, "bl.test")]);
    let pass = find(&report.findings, "dnsbl.not-listed", Severity::Pass);
    assert!(pass.message.contains("none of the 1 working"), "{pass:#?}");
}

#[tokio::test]
async fn dnsbl_ipv6_in_nibble_form_only_where_the_zone_supports_it() {
    let server = start_dns();
    let dns = client(&server);
    let v6: IpAddr = LISTED_V6.parse().unwrap();
    let report = check_dnsbl(&dns, &[v6, LISTED], &zones(&["v6.bl6.test", "bl.test"])).await;
    assert_eq!(report.zones[0].ipv6, Some(true), "{report:#?}");
    assert_eq!(report.zones[1].ipv6, Some(false), "{report:#?}");
    let f = find(&report.findings, "dnsbl.zone-no-ipv6", Severity::Info);
    assert_eq!(f.subject, "bl.test");
    let listed: Vec<(IpAddr, &str)> = report
        .listings
        .iter()
        .map(|l| (l.address, l.zone.as_str()))
        .collect();
    assert_eq!(listed, [(v6, "v6.bl6.test"), (LISTED, "bl.test")], "{report:#?}");
}

#[tokio::test]
async fn dnsbl_without_usable_zones_says_so() {
    let server = start_dns();
    let dns = client(&server);
    let loopback: IpAddr = "127.0.0.10".parse().unwrap();
    let report = check_dnsbl(&dns, &[loopback, CLEAN], &zones(&["dead.bl6.test"])).await;
    find(&report.findings, "dnsbl.address-skipped", Severity::Info);
    find(&report.findings, "dnsbl.zone-broken", Severity::Warning);
    find(&report.findings, "dnsbl.no-usable-zone", Severity::Warning);
    absent(&report.findings, "dnsbl.not-listed");
    assert!(report.listings.is_empty());
}

// ---------------------------------------------------------------- MTA-STS

const GOOD_POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.sts.test\r\nmx: *.sts.test\r\nmax_age: 604800\r\n";

fn policy_site(host: &str, body: &str) -> HttpsSite {
    HttpsSite::new(host).route(HttpsRoute::text(POLICY_PATH, body))
}

fn https_server() -> HttpsServer {
    HttpsServer::start(vec![
        policy_site("mta-sts.good.test", GOOD_POLICY),
        policy_site(
            "mta-sts.testing.test",
            "version: STSv1\nmode: testing\nmx: mx1.sts.test\nmx: mx2.sts.test\nmax_age: 3600\n",
        ),
        policy_site(
            "mta-sts.miss.test",
            "version: STSv1\r\nmode: enforce\r\nmx: mx1.sts.test\r\nmx: old.sts.test\r\nmax_age: 86400\r\n",
        ),
        HttpsSite::new("mta-sts.redirect.test").route(HttpsRoute::redirect(
            POLICY_PATH,
            "https://mta-sts.good.test/.well-known/mta-sts.txt",
        )),
        policy_site("mta-sts.wrongname.test", GOOD_POLICY).certificate_for(["www.elsewhere.test"]),
        policy_site("mta-sts.selfsigned.test", GOOD_POLICY).self_signed(),
        policy_site("mta-sts.big.test", &"x".repeat(100 * 1024)),
        HttpsSite::new("mta-sts.chunked.test").route(
            HttpsRoute::new(POLICY_PATH, 200)
                .header("Content-Type", "text/plain")
                .header("Transfer-Encoding", "chunked")
                .body("y".repeat(100 * 1024)),
        ),
        HttpsSite::new("mta-sts.html.test").route(
            HttpsRoute::new(POLICY_PATH, 200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(GOOD_POLICY),
        ),
        HttpsSite::new("mta-sts.slow.test").route(HttpsRoute::hanging(POLICY_PATH)),
        policy_site("mta-sts.norecord.test", GOOD_POLICY),
        policy_site(
            "mta-sts.invalid.test",
            "version: STSv1\nmode: enforce\nmx: mx1.sts.test\n",
        ),
    ])
    .expect("starting the HTTPS test server")
}

fn https_cfg(server: &HttpsServer) -> HttpsConfig {
    HttpsConfig {
        extra_roots: vec![server.ca_pem()],
        port: server.port(),
        timeout: Duration::from_secs(10),
        max_body: 64 * 1024,
    }
}

fn sts_mx() -> Vec<String> {
    vec!["mx1.sts.test".to_owned(), "mx2.sts.test".to_owned()]
}

async fn sts(domain: &str, dns: &DnsClient, https: &HttpsServer) -> MtaStsReport {
    check_mta_sts(dns, domain, &sts_mx(), &https_cfg(https)).await
}

#[tokio::test]
async fn mta_sts_good_enforce_policy_matching_the_mx() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    let report = sts("good.test", &dns, &https).await;
    assert_eq!(report.record.as_deref(), Some("v=STSv1; id=20250101"));
    let policy = report.policy.as_ref().expect("policy fetched");
    assert_eq!(policy.mode, Some(Mode::Enforce));
    assert_eq!(policy.max_age, Some(604_800));
    assert_eq!(policy.mx, ["mx1.sts.test", "*.sts.test"]);
    for id in [
        "mta-sts.record.present",
        "mta-sts.policy.enforce",
        "mta-sts.policy.mx-match",
        "mta-sts.policy.fetched",
    ] {
        find(&report.findings, id, Severity::Pass);
    }
    assert!(
        report.findings.iter().all(|f| f.severity == Severity::Pass),
        "{report:#?}"
    );
    // One GET with the policy host as SNI and Host.
    let requests = https.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].sni.as_deref(), Some("mta-sts.good.test"));
    assert_eq!(requests[0].path, POLICY_PATH);
    assert_eq!(
        requests[0].host.as_deref(),
        Some(format!("mta-sts.good.test:{}", https.port()).as_str())
    );
}

#[tokio::test]
async fn mta_sts_testing_mode_and_short_max_age() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    let report = sts("testing.test", &dns, &https).await;
    find(&report.findings, "mta-sts.policy.mode-testing", Severity::Warning);
    find(
        &report.findings,
        "mta-sts.policy.max-age-short",
        Severity::Warning,
    );
    find(&report.findings, "mta-sts.policy.mx-match", Severity::Pass);
    assert_eq!(report.policy.unwrap().mode, Some(Mode::Testing));
}

#[tokio::test]
async fn mta_sts_policy_missing_an_mx_fails_in_enforce_mode() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    let report = sts("miss.test", &dns, &https).await;
    let f = find(&report.findings, "mta-sts.policy.mx-unmatched", Severity::Fail);
    assert_eq!(f.subject, "mx2.sts.test");
    assert!(f.fix.as_deref().unwrap().contains("mx: mx2.sts.test"));
    let unused = find(&report.findings, "mta-sts.policy.mx-unused", Severity::Info);
    assert!(unused.message.contains("old.sts.test"));
}

#[tokio::test]
async fn mta_sts_record_without_a_reachable_policy() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    // No address for mta-sts.gone.test.
    let report = sts("gone.test", &dns, &https).await;
    find(&report.findings, "mta-sts.record.present", Severity::Pass);
    let f = find(&report.findings, "mta-sts.policy.unreachable", Severity::Fail);
    assert!(f.message.contains("does not resolve"), "{f:#?}");
    assert!(report.policy.is_none());

    // An address, but nothing listening there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = HttpsConfig {
        port,
        ..https_cfg(&https)
    };
    let report = check_mta_sts(&dns, "good.test", &sts_mx(), &cfg).await;
    let f = find(&report.findings, "mta-sts.policy.unreachable", Severity::Fail);
    assert!(f.message.contains("refuses"), "{f:#?}");

    // A server that never answers: bounded by the deadline.
    let cfg = HttpsConfig {
        timeout: Duration::from_secs(1),
        ..https_cfg(&https)
    };
    let report = check_mta_sts(&dns, "slow.test", &sts_mx(), &cfg).await;
    let f = find(&report.findings, "mta-sts.policy.unreachable", Severity::Fail);
    assert!(f.message.contains("longer than"), "{f:#?}");
}

#[tokio::test]
async fn mta_sts_redirect_is_not_followed() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    let report = sts("redirect.test", &dns, &https).await;
    let f = find(&report.findings, "mta-sts.policy.redirect", Severity::Fail);
    assert!(f.message.contains("301"), "{f:#?}");
    assert!(f.message.contains("https://mta-sts.good.test/"), "{f:#?}");
    assert!(report.policy.is_none());
    let hosts: Vec<Option<String>> = https.requests().into_iter().map(|r| r.sni).collect();
    assert_eq!(hosts, [Some("mta-sts.redirect.test".to_owned())]);
}

#[tokio::test]
async fn mta_sts_certificate_must_validate_for_the_policy_host() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);

    let wrong = sts("wrongname.test", &dns, &https).await;
    let f = find(&wrong.findings, "mta-sts.policy.certificate", Severity::Fail);
    assert!(f.message.contains("www.elsewhere.test"), "{f:#?}");

    let selfsigned = sts("selfsigned.test", &dns, &https).await;
    let f = find(&selfsigned.findings, "mta-sts.policy.certificate", Severity::Fail);
    assert!(f.message.contains("UnknownIssuer"), "{f:#?}");

    // Without the test CA, even the good host fails: only the Web PKI roots.
    let cfg = HttpsConfig {
        extra_roots: Vec::new(),
        ..https_cfg(&https)
    };
    let untrusted = check_mta_sts(&dns, "good.test", &sts_mx(), &cfg).await;
    find(&untrusted.findings, "mta-sts.policy.certificate", Severity::Fail);
    // No request reached the server in any of these.
    assert!(https.requests().is_empty(), "{:?}", https.requests());
}

#[tokio::test]
async fn mta_sts_oversize_body_is_bounded() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);
    let announced = sts("big.test", &dns, &https).await;
    let f = find(&announced.findings, "mta-sts.policy.too-large", Severity::Fail);
    assert!(f.message.contains("102400-byte body"), "{f:#?}");
    // Without a Content-Length the stream is cut at the limit.
    let chunked = sts("chunked.test", &dns, &https).await;
    let f = find(&chunked.findings, "mta-sts.policy.too-large", Severity::Fail);
    assert!(f.message.contains("more than 65536 bytes"), "{f:#?}");
    assert!(chunked.policy.is_none());
}

#[tokio::test]
async fn mta_sts_record_and_policy_problems() {
    let (server, https) = (start_dns(), https_server());
    let dns = client(&server);

    let html = sts("html.test", &dns, &https).await;
    find(&html.findings, "mta-sts.policy.content-type", Severity::Warning);
    find(&html.findings, "mta-sts.policy.enforce", Severity::Pass);

    let twice = sts("twice.test", &dns, &https).await;
    let f = find(&twice.findings, "mta-sts.record.multiple", Severity::Fail);
    assert_eq!(f.evidence.len(), 2, "{f:#?}");

    let badid = sts("badid.test", &dns, &https).await;
    find(&badid.findings, "mta-sts.record.invalid", Severity::Fail);

    let norecord = sts("norecord.test", &dns, &https).await;
    find(&norecord.findings, "mta-sts.record.missing", Severity::Info);
    find(
        &norecord.findings,
        "mta-sts.policy.without-record",
        Severity::Warning,
    );

    let invalid = sts("invalid.test", &dns, &https).await;
    let f = find(&invalid.findings, "mta-sts.policy.invalid", Severity::Fail);
    assert!(f.message.contains("max_age"), "{f:#?}");
    // Senders ignore an invalid policy: no verdict on its mode or patterns.
    absent(&invalid.findings, "mta-sts.policy.enforce");
    absent(&invalid.findings, "mta-sts.policy.mx-unmatched");

    // No record and no policy host: just "not deployed".
    let nothing = sts("good-but-no-sts.test", &dns, &https).await;
    assert_eq!(ids(&nothing.findings), ["mta-sts.record.missing"]);
}
