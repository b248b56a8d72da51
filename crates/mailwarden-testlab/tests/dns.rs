//! End-to-end tests of the private Knot DNS server, queried with
//! hickory-resolver pointed at the server only (no resolv.conf, no hosts
//! file, no recursion), over UDP and over TCP.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use mailwarden_testlab::{DnsServer, DnsZone};

/// A 2048-bit RSA public key (base64 DER), generated for this test: its DKIM
/// record is longer than one 255-byte TXT string.
const DKIM_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAthMYWu0AgK4eSVF4hugvqM8NAC6Lx6gKlAvv4oGvI6yKUfiCCwnNscMBCGKhNbFPcD40WD2iSsnB2/hM04224p2yWaDarewWIuvBHXICHVAEAS/w7luoenz2zSoGIqRDZiMrZupeXVGyZpsIuta4yeLb225/Fku1ftu9/7ptPwsatoj9rhG6kVLc6nOlpxJWHS+IFsLlHAi0knIDGyeNWfb58MdEI9vxkd3/q8yUcDqAdtk6/xu6MHJdN1ptYK4ieKLThgBZxnK37qVMpbpavIM82H2vZkhDWq8S9AhlK14vbBPmGXysMEwWPxK4pzSHW33RDpWGTM21bcTYm7YzUQIDAQAB";

const SPF: &str = "v=spf1 ip4:127.0.0.0/8 -all";
const DMARC: &str = "v=DMARC1; p=reject; rua=mailto:dmarc-reports@lab.test; adkim=s; aspf=s";

fn dkim_value() -> String {
    format!("v=DKIM1; k=rsa; p={DKIM_KEY}")
}

fn lab_zone(spf: &str) -> DnsZone {
    DnsZone::new("lab.test")
        .txt("@", spf)
        .txt("_dmarc", DMARC)
        .txt("dkim._domainkey", &dkim_value())
        .record("@ 300 IN MX 10 mail")
        .record("@ 300 IN A 127.0.0.1")
        .record("mail 300 IN A 127.0.0.1")
}

fn remote_zone() -> DnsZone {
    DnsZone::new("remote.test.")
        .record("@ 300 IN MX 5 mx.remote.test.")
        .record("mx IN A 127.0.0.2")
        .txt("@", "v=spf1 a:mx.remote.test -all")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A resolver that talks to `addr` only, over one protocol, without cache,
/// hosts file or recursion.
fn resolver(addr: SocketAddr, protocol: ProtocolConfig) -> TokioResolver {
    let mut connection = ConnectionConfig::new(protocol);
    connection.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![connection]);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
    let mut opts = ResolverOpts::default();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.recursion_desired = false;
    opts.cache_size = 0;
    opts.attempts = 1;
    opts.timeout = Duration::from_secs(2);
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .expect("resolver")
}

/// The TXT records at `name`, each as its list of character-strings.
async fn txt(resolver: &TokioResolver, name: &str) -> Vec<Vec<String>> {
    let lookup = resolver
        .txt_lookup(name)
        .await
        .unwrap_or_else(|e| panic!("TXT {name}: {e}"));
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8(s.to_vec()).unwrap())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

async fn soa_serial(resolver: &TokioResolver, zone: &str) -> u32 {
    let lookup = resolver.soa_lookup(zone).await.expect("SOA lookup");
    lookup
        .answers()
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .expect("an SOA record")
}

async fn check_mail_auth_records(resolver: &TokioResolver, label: &str) {
    assert_eq!(txt(resolver, "lab.test.").await, [[SPF]], "{label}: SPF");
    assert_eq!(
        txt(resolver, "_dmarc.lab.test.").await,
        [[DMARC]],
        "{label}: DMARC"
    );

    let dkim = txt(resolver, "dkim._domainkey.lab.test.").await;
    assert_eq!(dkim.len(), 1, "{label}: one DKIM record: {dkim:?}");
    let strings = &dkim[0];
    assert!(dkim_value().len() > 255);
    assert_eq!(
        strings.len(),
        dkim_value().len().div_ceil(255),
        "{label}: {strings:?}"
    );
    assert_eq!(strings[0].len(), 255, "{label}: first string is full");
    assert_eq!(
        strings.concat(),
        dkim_value(),
        "{label}: DKIM strings concatenate to the key"
    );

    let mx = resolver.mx_lookup("lab.test.").await.expect("MX lab.test");
    let mx: Vec<(u16, String)> = mx
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(m) => Some((m.preference, m.exchange.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(mx, [(10, "mail.lab.test.".to_owned())], "{label}: MX");

    let a = resolver
        .ipv4_lookup("mail.lab.test.")
        .await
        .expect("A mail.lab.test");
    let a: Vec<Ipv4Addr> = a
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(a, [Ipv4Addr::LOCALHOST], "{label}: A");

    let mx = resolver.mx_lookup("remote.test.").await.expect("MX remote.test");
    assert!(
        mx.answers()
            .iter()
            .any(|r| matches!(&r.data, RData::MX(m) if m.preference == 5 && m.exchange.to_string() == "mx.remote.test.")),
        "{label}: remote.test MX: {mx:?}"
    );
    let a = resolver
        .ipv4_lookup("mx.remote.test.")
        .await
        .expect("A mx.remote.test");
    assert!(
        a.answers()
            .iter()
            .any(|r| matches!(&r.data, RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 2))),
        "{label}: {a:?}"
    );
    assert_eq!(
        txt(resolver, "remote.test.").await,
        [["v=spf1 a:mx.remote.test -all"]],
        "{label}: remote SPF"
    );

    // Generated SOA and NS.
    let ns = resolver.ns_lookup("lab.test.").await.expect("NS lab.test");
    assert!(
        ns.answers()
            .iter()
            .any(|r| matches!(&r.data, RData::NS(n) if n.0.to_string() == "ns1.lab.test.")),
        "{label}: {ns:?}"
    );

    let missing = resolver.txt_lookup("missing.lab.test.").await.unwrap_err();
    assert!(
        missing.is_nx_domain(),
        "{label}: expected NXDOMAIN, got {missing:?}"
    );
    // Names outside the lab's zones are refused, never looked up elsewhere.
    let outside = resolver.txt_lookup("example.com.").await;
    assert!(outside.is_err(), "{label}: {outside:?}");
}

#[test]
fn serves_spf_dkim_dmarc_mx_and_a_over_udp_and_tcp_and_reloads() {
    let mut server = DnsServer::start(vec![lab_zone(SPF), remote_zone()]).unwrap_or_else(|e| panic!("{e}"));
    let addr = server.addr();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    let rt = runtime();
    rt.block_on(async {
        let udp = resolver(addr, ProtocolConfig::Udp);
        let tcp = resolver(addr, ProtocolConfig::Tcp);
        check_mail_auth_records(&udp, "udp").await;
        check_mail_auth_records(&tcp, "tcp").await;
    });

    let before = rt.block_on(soa_serial(&resolver(addr, ProtocolConfig::Udp), "lab.test."));
    let new_spf = "v=spf1 ip4:127.0.0.1 ~all";
    server
        .set_zone(lab_zone(new_spf))
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        for (label, protocol) in [("udp", ProtocolConfig::Udp), ("tcp", ProtocolConfig::Tcp)] {
            let r = resolver(addr, protocol);
            assert_eq!(
                txt(&r, "lab.test.").await,
                [[new_spf]],
                "{label}: SPF after set_zone"
            );
            assert!(
                soa_serial(&r, "lab.test.").await > before,
                "{label}: serial bumped"
            );
            assert_eq!(txt(&r, "_dmarc.lab.test.").await, [[DMARC]], "{label}");
        }
    });

    // A new zone is added by set_zone too.
    server
        .set_zone(DnsZone::new("added.test").record("www 60 IN A 127.0.0.9"))
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let r = resolver(addr, ProtocolConfig::Udp);
        let a = r.ipv4_lookup("www.added.test.").await.expect("A www.added.test");
        assert!(
            a.answers()
                .iter()
                .any(|rec| matches!(&rec.data, RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 9))),
            "{a:?}"
        );
        assert_eq!(txt(&r, "remote.test.").await, [["v=spf1 a:mx.remote.test -all"]]);
    });

    // A zone that does not load is an error and the old version stays served.
    let err = server
        .set_zone(lab_zone("v=spf1 -all").record("broken 300 IN A not-an-address"))
        .expect_err("a broken zone must be rejected");
    let text = err.to_string();
    assert!(
        text.contains("zone-check") && text.contains("not-an-address"),
        "{text}"
    );
    rt.block_on(async {
        let r = resolver(addr, ProtocolConfig::Udp);
        assert_eq!(txt(&r, "lab.test.").await, [[new_spf]]);
    });
}

#[test]
fn a_supplied_soa_keeps_its_fields_but_gets_a_managed_serial() {
    let zone = DnsZone::new("soa.test")
        .record("@ 120 IN SOA ns.soa.test. admin.soa.test. ( 2024010101 7200 900 1209600 30 )")
        .record("@ 120 IN NS ns")
        .record("ns 120 IN A 127.0.0.3");
    let mut server = DnsServer::start(vec![zone.clone()]).unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    let soa = |server: &DnsServer| {
        rt.block_on(async {
            let r = resolver(server.addr(), ProtocolConfig::Udp);
            let lookup = r.soa_lookup("soa.test.").await.expect("SOA");
            lookup
                .answers()
                .iter()
                .find_map(|rec| match &rec.data {
                    RData::SOA(s) => Some((s.mname.to_string(), s.serial, s.refresh)),
                    _ => None,
                })
                .expect("SOA record")
        })
    };
    let (mname, first, refresh) = soa(&server);
    assert_eq!(mname, "ns.soa.test.");
    assert_eq!(refresh, 7200);
    server.set_zone(zone).unwrap_or_else(|e| panic!("{e}"));
    let (_, second, _) = soa(&server);
    assert!(second > first, "{first} -> {second}");
}

#[test]
fn drop_stops_the_server_frees_the_port_and_removes_the_dir() {
    let server =
        DnsServer::start(vec![DnsZone::new("lab.test").txt("@", SPF)]).unwrap_or_else(|e| panic!("{e}"));
    let addr = server.addr();
    let dir = server.dir().to_path_buf();
    assert!(dir.join("knot.conf").is_file());
    // The port is taken while it runs.
    assert!(UdpSocket::bind(addr).is_err());
    assert!(TcpListener::bind(addr).is_err());
    drop(server);
    assert!(!dir.exists(), "{} still exists", dir.display());
    let v4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, addr.port());
    UdpSocket::bind(v4).expect("UDP port is free after drop");
    TcpListener::bind(v4).expect("TCP port is free after drop");
}

#[test]
fn a_zone_that_does_not_load_fails_start_with_the_zone_file() {
    let err =
        DnsServer::start(vec![DnsZone::new("lab.test").record("mail 300 IN MX ten")]).expect_err("bad zone");
    let text = err.to_string();
    assert!(text.contains("lab.test") && text.contains("MX ten"), "{text}");
    let err = DnsServer::start(vec![DnsZone::new("bad origin")]).expect_err("bad origin");
    assert!(err.to_string().contains("invalid zone"), "{err}");
}
