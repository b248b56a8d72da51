//! DNS blocklist checks (RFC 5782) of the mail server's addresses.
//!
//! A blocklist answer is only worth something if the zone works, so every
//! zone is self-tested first, as RFC 5782 §5 allows: the test entry
//! 127.0.0.2 must be listed and 127.0.0.1 must not. A zone that fails is
//! reported as broken and not asked about our addresses — a dead zone that
//! answers nothing would claim "not listed" for everything, and a zone that
//! lists 127.0.0.1 (expired domains have done this) would claim everything
//! is listed. Zones that refuse the querier (Spamhaus answers
//! 127.255.255.252–255 to queries through public resolvers or over its
//! limits) are reported as refused, with the fix. IPv6 addresses are
//! asked in nibble form, and only from zones whose IPv6 test entries
//! (`::ffff:127.0.0.2` listed, `::ffff:127.0.0.1` not) behave.
//!
//! Then every address is asked from every usable zone: an A answer in
//! 127.0.0.0/8 is a listing (with the zone's TXT reason, if any); NXDOMAIN
//! or NODATA means not listed. Lookups run concurrently, at most
//! [`CONCURRENCY`] at a time.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::StreamExt as _;
use mailwarden_core::posture::{Area, Finding, Severity};
use serde::Serialize;

use crate::dns::{Answer, DnsClient, LookupError, dnsbl_name};

/// Lookups in flight at most.
pub const CONCURRENCY: usize = 8;
/// Zones used at most (more are reported and ignored).
const MAX_ZONES: usize = 32;
/// Addresses checked at most (more are reported and ignored).
const MAX_ADDRESSES: usize = 64;
/// Longest TXT reason kept, in characters.
const MAX_REASON: usize = 300;

/// The default blocklists: widely used, free for low-volume use, and each
/// listing the RFC 5782 test entry 127.0.0.2.
///
/// - `zen.spamhaus.org` — Spamhaus SBL, XBL, CSS and PBL combined. Refuses
///   queries through public resolvers (answers 127.255.255.254); use your
///   own recursive resolver or a DQS key.
/// - `bl.spamcop.net` — SpamCop, from user reports; entries expire quickly.
/// - `b.barracudacentral.org` — Barracuda reputation; answers only
///   resolvers registered (free) with Barracuda.
/// - `psbl.surriel.com` — the Passive Spam Block List, from spam traps.
/// - `bl.mailspike.net` — Mailspike reputation.
pub const DEFAULT_ZONES: &[&str] = &[
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "psbl.surriel.com",
    "bl.mailspike.net",
];

/// Which blocklists to ask.
#[derive(Debug, Clone, Serialize)]
pub struct DnsblConfig {
    /// DNSBL zones, e.g. `zen.spamhaus.org` (a DQS zone with its key works
    /// the same way). Default: [`DEFAULT_ZONES`].
    pub zones: Vec<String>,
}

impl Default for DnsblConfig {
    fn default() -> Self {
        DnsblConfig {
            zones: DEFAULT_ZONES.iter().map(|z| (*z).to_owned()).collect(),
        }
    }
}

/// What the self-test showed about a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneStatus {
    /// Lists 127.0.0.2, does not list 127.0.0.1: its answers are used.
    Healthy,
    /// Fails the self-test: its answers are not used.
    Broken,
    /// Refuses us (public resolver, rate limit, missing key): not used.
    Refused,
    /// The self-test lookups failed (timeout, SERVFAIL): not used.
    Unreachable,
}

/// The health of one zone as its self-test showed it.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneHealth {
    /// The zone, lower-cased, without the trailing dot.
    pub zone: String,
    /// The verdict.
    pub status: ZoneStatus,
    /// Why, in one line.
    pub detail: String,
    /// Whether the IPv6 test entries behave (`None`: not tested, because no
    /// IPv6 address was to be checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    /// The test queries and their answers.
    pub evidence: Vec<String>,
}

/// One address listed in one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The listed address.
    pub address: IpAddr,
    /// The zone listing it.
    pub zone: String,
    /// The A answers (the list's return codes, e.g. 127.0.0.4).
    pub codes: Vec<Ipv4Addr>,
    /// The zone's TXT explanation, if it gives one (cut to 300 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The DNSBL audit.
#[derive(Debug, Clone, Serialize)]
pub struct DnsblReport {
    /// Per-zone health, in configuration order.
    pub zones: Vec<ZoneHealth>,
    /// Listings found in healthy zones.
    pub listings: Vec<Listing>,
    /// The findings.
    pub findings: Vec<Finding>,
}

/// What one blocklist A lookup said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// NXDOMAIN or NODATA.
    NotListed,
    /// A answers in 127.0.0.0/8.
    Listed(Vec<Ipv4Addr>),
    /// A "you are refused" code (127.255.255.252–255).
    Refused(Ipv4Addr),
    /// Answers outside 127.0.0.0/8: a wildcard or parked domain, not a DNSBL.
    OutOfRange(Vec<IpAddr>),
}

/// Reads an A answer. Refusal codes win over listing codes: a zone that
/// refuses us says nothing about the address.
fn interpret(answer: &Answer<IpAddr>) -> Verdict {
    let ips = answer.records();
    if ips.is_empty() {
        return Verdict::NotListed;
    }
    let mut v4 = Vec::new();
    for ip in ips {
        match ip {
            IpAddr::V4(a) if a.octets()[0] == 127 => v4.push(*a),
            _ => return Verdict::OutOfRange(ips.to_vec()),
        }
    }
    if let Some(code) = v4.iter().find(|a| refusal_meaning(**a).is_some()) {
        return Verdict::Refused(*code);
    }
    Verdict::Listed(v4)
}

/// The meaning of the return codes lists use to refuse a querier
/// (documented by Spamhaus; the range is unused for listings elsewhere).
fn refusal_meaning(code: Ipv4Addr) -> Option<&'static str> {
    match code.octets() {
        [127, 255, 255, 252] => Some("typing error in the DNSBL name"),
        [127, 255, 255, 253] => Some("query refused"),
        [127, 255, 255, 254] => Some("query through a public or open resolver refused"),
        [127, 255, 255, 255] => Some("excessive number of queries"),
        _ => None,
    }
}

/// A lookup's outcome, with the query name for the evidence.
struct Asked {
    name: String,
    result: Result<Verdict, LookupError>,
}

impl Asked {
    fn evidence(&self) -> String {
        let answer = match &self.result {
            Ok(Verdict::NotListed) => "not listed (NXDOMAIN/NODATA)".to_owned(),
            Ok(Verdict::Listed(codes)) => format!("A {}", join(codes)),
            Ok(Verdict::Refused(code)) => format!("A {code} (refused)"),
            Ok(Verdict::OutOfRange(ips)) => format!("A {}", join(ips)),
            Err(e) => format!("failed: {e}"),
        };
        format!("{} → {answer}", self.name)
    }
}

async fn ask(dns: &DnsClient, ip: IpAddr, zone: &str) -> Asked {
    let name = dnsbl_name(ip, zone);
    let result = dns.a(&name).await.map(|a| interpret(&a));
    Asked { name, result }
}

/// Self-tests every zone in `cfg`, then looks up every address in the
/// usable ones. Loopback and unspecified addresses are skipped (127.0.0.0/8
/// holds the lists' own test entries). Never fails: lookup failures are
/// findings.
pub async fn check_dnsbl(dns: &DnsClient, addresses: &[IpAddr], cfg: &DnsblConfig) -> DnsblReport {
    let mut report = DnsblReport {
        zones: Vec::new(),
        listings: Vec::new(),
        findings: Vec::new(),
    };
    let mut zones: Vec<String> = Vec::new();
    for zone in &cfg.zones {
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        if !zone.is_empty() && !zones.contains(&zone) {
            zones.push(zone);
        }
    }
    if zones.len() > MAX_ZONES {
        report.findings.push(Finding::new(
            "dnsbl.too-many-zones",
            Area::Dnsbl,
            Severity::Info,
            "dnsbl",
            format!(
                "{} zones configured; only the first {MAX_ZONES} were used",
                zones.len()
            ),
        ));
        zones.truncate(MAX_ZONES);
    }

    let mut targets: Vec<IpAddr> = Vec::new();
    for &ip in addresses {
        if targets.contains(&ip) {
            continue;
        }
        if ip.is_loopback() || ip.is_unspecified() {
            report.findings.push(Finding::new(
                "dnsbl.address-skipped",
                Area::Dnsbl,
                Severity::Info,
                ip.to_string(),
                format!("{ip} is a loopback or unspecified address, which blocklists reserve for tests: not checked"),
            ));
            continue;
        }
        targets.push(ip);
    }
    if targets.len() > MAX_ADDRESSES {
        report.findings.push(Finding::new(
            "dnsbl.too-many-addresses",
            Area::Dnsbl,
            Severity::Info,
            "dnsbl",
            format!(
                "{} addresses; only the first {MAX_ADDRESSES} were checked",
                targets.len()
            ),
        ));
        targets.truncate(MAX_ADDRESSES);
    }
    if zones.is_empty() || targets.is_empty() {
        return report;
    }
    let want_v6 = targets.iter().any(IpAddr::is_ipv6);

    // Self-tests: per zone 2 (or 4 with IPv6) lookups, all in one bounded stream.
    let mut tests: Vec<(usize, IpAddr)> = Vec::new();
    for i in 0..zones.len() {
        tests.push((i, Ipv4Addr::new(127, 0, 0, 2).into()));
        tests.push((i, Ipv4Addr::new(127, 0, 0, 1).into()));
        if want_v6 {
            tests.push((i, Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped().into()));
            tests.push((i, Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().into()));
        }
    }
    let answers: Vec<Asked> = futures_util::stream::iter(&tests)
        .map(|(i, ip)| ask(dns, *ip, &zones[*i]))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let per_zone = if want_v6 { 4 } else { 2 };
    for (zone, asked) in zones.iter().zip(answers.chunks(per_zone)) {
        let health = self_test(zone, asked);
        if let Some(f) = zone_finding(&health) {
            report.findings.push(f);
        }
        report.zones.push(health);
    }

    // The addresses, in usable zones only.
    let mut jobs: Vec<(usize, IpAddr)> = Vec::new();
    for (i, health) in report.zones.iter().enumerate() {
        if health.status != ZoneStatus::Healthy {
            continue;
        }
        for &ip in &targets {
            if ip.is_ipv6() && health.ipv6 != Some(true) {
                continue;
            }
            jobs.push((i, ip));
        }
    }
    let results: Vec<(usize, IpAddr, Asked, Option<String>)> = futures_util::stream::iter(jobs)
        .map(|(i, ip)| {
            let zone = &zones[i];
            async move {
                let asked = ask(dns, ip, zone).await;
                let reason = if matches!(asked.result, Ok(Verdict::Listed(_))) {
                    txt_reason(dns, &asked.name).await
                } else {
                    None
                };
                (i, ip, asked, reason)
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let mut clean: Vec<(IpAddr, Vec<String>)> = targets.iter().map(|ip| (*ip, Vec::new())).collect();
    let mut listed: Vec<IpAddr> = Vec::new();
    let mut failed: Vec<IpAddr> = Vec::new();
    for (i, ip, asked, reason) in results {
        let zone = &zones[i];
        match &asked.result {
            Ok(Verdict::NotListed) => {
                if let Some((_, evidence)) = clean.iter_mut().find(|(a, _)| *a == ip) {
                    evidence.push(asked.evidence());
                }
            }
            Ok(Verdict::Listed(codes)) => {
                listed.push(ip);
                let mut f = Finding::new(
                    "dnsbl.listed",
                    Area::Dnsbl,
                    Severity::Fail,
                    ip.to_string(),
                    match &reason {
                        Some(r) => format!("{ip} is listed by {zone} ({}): {r}", join(codes)),
                        None => format!("{ip} is listed by {zone} ({})", join(codes)),
                    },
                )
                .fix(format!(
                    "find out why (the list's lookup page for {ip} says; typical causes are a compromised \
                     account, an open relay or a misbehaving script), fix the cause, then request removal from {zone}"
                ))
                .evidence(asked.evidence());
                if let Some(r) = &reason {
                    f = f.evidence(format!("{} TXT {r}", asked.name));
                }
                report.findings.push(f);
                report.listings.push(Listing {
                    address: ip,
                    zone: zone.clone(),
                    codes: codes.clone(),
                    reason,
                });
            }
            Ok(Verdict::Refused(code)) => {
                failed.push(ip);
                // The zone passed its self-test but refuses now (rate limit).
                let health = &mut report.zones[i];
                health.evidence.push(asked.evidence());
                if health.status != ZoneStatus::Refused {
                    health.status = ZoneStatus::Refused;
                    health.detail = refused_detail(*code);
                    if let Some(f) = zone_finding(health) {
                        report.findings.push(f);
                    }
                }
            }
            Ok(Verdict::OutOfRange(_)) => {
                failed.push(ip);
                report.findings.push(
                    Finding::new(
                        "dnsbl.answer-invalid",
                        Area::Dnsbl,
                        Severity::Warning,
                        ip.to_string(),
                        format!("{zone} answered outside 127.0.0.0/8 for {ip}, which no DNSBL does: answer ignored"),
                    )
                    .fix(format!("check that {zone} is still a working blocklist, or remove it from the list"))
                    .evidence(asked.evidence()),
                );
            }
            Err(e) => {
                failed.push(ip);
                report.findings.push(
                    Finding::new(
                        "dnsbl.lookup-failed",
                        Area::Dns,
                        Severity::Warning,
                        ip.to_string(),
                        format!("{ip} could not be checked in {zone}: {e}"),
                    )
                    .fix("check that the resolver is reachable, then run the audit again"),
                );
            }
        }
    }
    let usable = report
        .zones
        .iter()
        .filter(|z| z.status == ZoneStatus::Healthy)
        .count();
    if usable == 0 {
        report.findings.push(
            Finding::new(
                "dnsbl.no-usable-zone",
                Area::Dnsbl,
                Severity::Warning,
                "dnsbl",
                "no configured blocklist passed its self-test, so no address was checked",
            )
            .fix("query through your own recursive resolver (not a public one), register with the lists that require it, or configure other zones"),
        );
    }
    for (ip, evidence) in clean {
        if evidence.is_empty() || listed.contains(&ip) || failed.contains(&ip) {
            continue;
        }
        let zones_asked = evidence.len();
        report.findings.push(evidence.into_iter().fold(
            Finding::new(
                "dnsbl.not-listed",
                Area::Dnsbl,
                Severity::Pass,
                ip.to_string(),
                format!("{ip} is listed by none of the {zones_asked} working blocklist(s)"),
            ),
            Finding::evidence,
        ));
    }
    report
}

/// Judges a zone from its self-test answers: `[127.0.0.2, 127.0.0.1]`
/// and, when asked, `[::ffff:127.0.0.2, ::ffff:127.0.0.1]`.
fn self_test(zone: &str, asked: &[Asked]) -> ZoneHealth {
    let evidence: Vec<String> = asked.iter().map(Asked::evidence).collect();
    let mut health = ZoneHealth {
        zone: zone.to_owned(),
        status: ZoneStatus::Healthy,
        detail: "lists the test entry 127.0.0.2 and not 127.0.0.1".to_owned(),
        ipv6: None,
        evidence,
    };
    let (two, one) = (&asked[0].result, &asked[1].result);
    let (status, detail) = match (two, one) {
        (Err(e), _) | (_, Err(e)) => (
            ZoneStatus::Unreachable,
            format!("the self-test lookup failed: {e}"),
        ),
        (Ok(Verdict::Refused(code)), _) | (_, Ok(Verdict::Refused(code))) => {
            (ZoneStatus::Refused, refused_detail(*code))
        }
        (Ok(Verdict::OutOfRange(ips)), _) | (_, Ok(Verdict::OutOfRange(ips))) => (
            ZoneStatus::Broken,
            format!(
                "answers outside 127.0.0.0/8 ({}): a wildcard or parked domain, not a blocklist",
                join(ips)
            ),
        ),
        (Ok(Verdict::NotListed), _) => (
            ZoneStatus::Broken,
            "does not list the RFC 5782 test entry 127.0.0.2: the zone is dead, misspelled or not a blocklist, \
             so its \"not listed\" answers mean nothing"
                .to_owned(),
        ),
        (_, Ok(Verdict::Listed(codes))) => (
            ZoneStatus::Broken,
            format!(
                "lists 127.0.0.1 (answer {}), which RFC 5782 forbids: the zone answers \"listed\" for everything",
                join(codes)
            ),
        ),
        (Ok(Verdict::Listed(_)), Ok(Verdict::NotListed)) => {
            (ZoneStatus::Healthy, health.detail.clone())
        }
    };
    health.status = status;
    health.detail = detail;
    if let [_, _, v6_two, v6_one] = asked {
        health.ipv6 = Some(matches!(
            (&v6_two.result, &v6_one.result),
            (Ok(Verdict::Listed(_)), Ok(Verdict::NotListed))
        ));
    }
    health
}

fn refused_detail(code: Ipv4Addr) -> String {
    format!(
        "refuses our queries (answer {code}: {})",
        refusal_meaning(code).unwrap_or("refused")
    )
}

/// The finding for an unusable zone (none for a healthy one, except a
/// note when it cannot be used for IPv6).
fn zone_finding(health: &ZoneHealth) -> Option<Finding> {
    let zone = &health.zone;
    let f = match health.status {
        ZoneStatus::Healthy if health.ipv6 == Some(false) => Finding::new(
            "dnsbl.zone-no-ipv6",
            Area::Dnsbl,
            Severity::Info,
            zone,
            format!(
                "{zone} fails the IPv6 self-test (::ffff:127.0.0.2): IPv6 addresses were not checked in it"
            ),
        ),
        ZoneStatus::Healthy => return None,
        ZoneStatus::Broken => Finding::new(
            "dnsbl.zone-broken",
            Area::Dnsbl,
            Severity::Warning,
            zone,
            format!("{zone} {}; its answers are not used", health.detail),
        )
        .fix(format!(
            "check the zone name against the list's documentation, or remove {zone} from the configured zones"
        )),
        ZoneStatus::Refused => Finding::new(
            "dnsbl.zone-refused",
            Area::Dnsbl,
            Severity::Warning,
            zone,
            format!("{zone} {}; its answers are not used", health.detail),
        )
        .fix(
            "run the audit through your own recursive resolver (not 8.8.8.8, 1.1.1.1 or another public one), \
             or use the list's registered access (Spamhaus: a free DQS key, zone KEY.zen.dq.spamhaus.net)",
        ),
        ZoneStatus::Unreachable => Finding::new(
            "dnsbl.zone-unreachable",
            Area::Dns,
            Severity::Warning,
            zone,
            format!("{zone}: {}; its answers are not used", health.detail),
        )
        .fix("check that the resolver is reachable and can resolve the zone, then run the audit again"),
    };
    Some(health.evidence.iter().fold(f, |f, e| f.evidence(e.clone())))
}

/// The TXT explanation of a listing, joined and cut; `None` when there is
/// none or the lookup fails (the listing stands either way).
async fn txt_reason(dns: &DnsClient, name: &str) -> Option<String> {
    let texts = dns.txt(name).await.ok()?.into_records();
    let joined = texts.join(" | ");
    if joined.trim().is_empty() {
        return None;
    }
    let mut cut: String = joined.chars().take(MAX_REASON).collect();
    if cut.len() < joined.len() {
        cut.push('…');
    }
    Some(cut)
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(answer: Result<Answer<IpAddr>, LookupError>) -> Asked {
        Asked {
            name: "q".into(),
            result: answer.map(|a| interpret(&a)),
        }
    }

    fn a(ips: &[&str]) -> Result<Answer<IpAddr>, LookupError> {
        Ok(Answer::Records(ips.iter().map(|s| s.parse().unwrap()).collect()))
    }

    #[test]
    fn interprets_answers() {
        assert_eq!(interpret(&Answer::NxDomain), Verdict::NotListed);
        assert_eq!(interpret(&Answer::NoData), Verdict::NotListed);
        assert_eq!(
            interpret(&a(&["127.0.0.2", "127.0.0.4"]).unwrap()),
            Verdict::Listed(vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4)])
        );
        assert_eq!(
            interpret(&a(&["127.0.0.2", "127.255.255.254"]).unwrap()),
            Verdict::Refused(Ipv4Addr::new(127, 255, 255, 254))
        );
        assert!(matches!(
            interpret(&a(&["192.0.2.1"]).unwrap()),
            Verdict::OutOfRange(_)
        ));
    }

    #[test]
    fn self_test_verdicts() {
        let nx = || Ok(Answer::NxDomain);
        let check = |two, one, status| {
            let h = self_test("bl.test", &[asked(two), asked(one)]);
            assert_eq!(h.status, status, "{h:?}");
            h
        };
        check(a(&["127.0.0.2"]), nx(), ZoneStatus::Healthy);
        let dead = check(nx(), nx(), ZoneStatus::Broken);
        assert!(dead.detail.contains("127.0.0.2"), "{}", dead.detail);
        let all = check(a(&["127.0.0.2"]), a(&["127.0.0.2"]), ZoneStatus::Broken);
        assert!(all.detail.contains("127.0.0.1"), "{}", all.detail);
        check(a(&["192.0.2.80"]), a(&["192.0.2.80"]), ZoneStatus::Broken);
        let refused = check(
            a(&["127.255.255.254"]),
            a(&["127.255.255.254"]),
            ZoneStatus::Refused,
        );
        assert!(refused.detail.contains("public"), "{}", refused.detail);
        let timeout = Err(LookupError::Timeout {
            name: "x".into(),
            rtype: "A".into(),
        });
        check(timeout, nx(), ZoneStatus::Unreachable);
        let v6 = self_test(
            "bl.test",
            &[asked(a(&["127.0.0.2"])), asked(nx()), asked(nx()), asked(nx())],
        );
        assert_eq!((v6.status, v6.ipv6), (ZoneStatus::Healthy, Some(false)));
        assert_eq!(zone_finding(&v6).unwrap().id, "dnsbl.zone-no-ipv6");
    }
}
