//! MX records of a domain (RFC 5321 §5, RFC 7505 null MX) and the reverse
//! DNS of every MX address (PTR, forward-confirmed reverse DNS).
//!
//! What is checked:
//! - presence: no MX means senders fall back to the domain's own address
//!   (RFC 5321 §5.1) — a warning, since a domain that receives mail should
//!   say where; a null MX (`0 .`, RFC 7505) says "no mail here" and is
//!   correct for such a domain; a null MX next to other MX records is a
//!   contradiction senders resolve differently (fail);
//! - every target: an IP literal is not a host name (fail), a CNAME is not
//!   allowed as an MX target (RFC 2181 §10.3; warning, most senders cope),
//!   and it must resolve to A/AAAA (fail otherwise);
//! - every address: a PTR record (many receivers refuse servers without
//!   one), a PTR name that resolves back to the address (FCrDNS), and PTR
//!   names that look like an ISP's generic pool names (information).
//!
//! Lookups run concurrently but bounded, and hostile answers are capped
//! (hosts, addresses per host, PTR names per address); what was cut is said
//! in a finding. A failed lookup is a finding of its own, never read as
//! "no record".

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures_util::StreamExt as _;
use mailwarden_core::posture::{Area, Finding, Severity};
use serde::Serialize;

use crate::dns::{Answer, DnsClient, LookupError};

/// MX hosts checked at most (a larger RRset is cut, with a finding).
const MAX_HOSTS: usize = 20;
/// Addresses per MX host checked at most.
const MAX_ADDRESSES_PER_HOST: usize = 16;
/// PTR names per address tried for forward confirmation.
const MAX_PTR_NAMES: usize = 8;
/// Concurrent lookups.
const CONCURRENCY: usize = 8;

/// The MX audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct MxReport {
    /// The domain publishes a null MX (`0 .`): it receives no mail.
    pub null_mx: bool,
    /// The MX hosts (null MX excluded), by preference then name.
    pub hosts: Vec<MxHost>,
    /// The findings.
    pub findings: Vec<Finding>,
}

impl MxReport {
    /// Every distinct address of every MX host, in host order (the input of
    /// the DNSBL check).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in self.hosts.iter().flat_map(|h| h.addresses.iter()) {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }

    /// The exchange names (the input of the MTA-STS comparison).
    pub fn exchanges(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.exchange.clone()).collect()
    }
}

/// One MX target.
#[derive(Debug, Clone, Serialize)]
pub struct MxHost {
    /// MX preference (lower is tried first).
    pub preference: u16,
    /// The exchange host name, lower-cased, without the trailing dot.
    pub exchange: String,
    /// The exchange is an alias: its CNAME target (RFC 2181 §10.3 forbids it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    /// Its A and AAAA addresses (empty when it does not resolve).
    pub addresses: Vec<IpAddr>,
    /// Reverse DNS per address, in the order of `addresses`.
    pub reverse: Vec<ReverseCheck>,
}

/// Reverse DNS of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReverseCheck {
    /// The address.
    pub address: IpAddr,
    /// Its PTR names, lower-cased, without the trailing dot.
    pub names: Vec<String>,
    /// A PTR name resolves back to the address (FCrDNS).
    pub forward_confirmed: bool,
}

/// Checks the MX records of `domain`, their targets, and the reverse DNS
/// of their addresses. Never fails: lookup failures are findings.
pub async fn check_mx(dns: &DnsClient, domain: &str) -> MxReport {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut report = MxReport {
        null_mx: false,
        hosts: Vec::new(),
        findings: Vec::new(),
    };
    let records = match dns.mx(&domain).await {
        Err(e) => {
            report
                .findings
                .push(lookup_failed("mx.lookup-failed", &domain, &e));
            return report;
        }
        Ok(Answer::NxDomain) => {
            report.findings.push(
                Finding::new(
                    "mx.nxdomain",
                    Area::Mx,
                    Severity::Fail,
                    &domain,
                    format!("{domain} does not exist (NXDOMAIN): mail to it bounces"),
                )
                .fix("check the spelling of the domain, or register it and publish its DNS zone"),
            );
            return report;
        }
        Ok(Answer::NoData) => {
            report.findings.push(no_mx_finding(dns, &domain).await);
            return report;
        }
        Ok(Answer::Records(r)) => r,
    };

    let mut records: Vec<(u16, String)> = records
        .into_iter()
        .map(|(pref, host)| (pref, host.to_ascii_lowercase()))
        .collect();
    records.sort();
    records.dedup();
    let nulls: Vec<u16> = records
        .iter()
        .filter(|(_, h)| h.is_empty())
        .map(|(p, _)| *p)
        .collect();
    let real: Vec<(u16, String)> = records.iter().filter(|(_, h)| !h.is_empty()).cloned().collect();
    let evidence = |f: Finding| {
        records.iter().fold(f, |f, (p, h)| {
            f.evidence(format!("{domain} MX {p} {}", if h.is_empty() { "." } else { h }))
        })
    };

    if !nulls.is_empty() && !real.is_empty() {
        report.findings.push(evidence(
            Finding::new(
                "mx.null-mixed",
                Area::Mx,
                Severity::Fail,
                &domain,
                "a null MX (`0 .`) is published together with other MX records: senders disagree on what it means",
            )
            .fix("keep either the null MX (the domain receives no mail) or the real MX records, not both (RFC 7505 §3)"),
        ));
    } else if !nulls.is_empty() {
        report.null_mx = true;
        report.findings.push(evidence(Finding::new(
            "mx.null",
            Area::Mx,
            Severity::Info,
            &domain,
            "null MX (RFC 7505): the domain declares that it receives no mail",
        )));
        if nulls.iter().any(|&p| p != 0) {
            report.findings.push(evidence(
                Finding::new(
                    "mx.null-preference",
                    Area::Mx,
                    Severity::Warning,
                    &domain,
                    "the null MX has a preference other than 0, so some senders will not recognize it",
                )
                .fix(format!("publish it exactly as `{domain}. IN MX 0 .`")),
            ));
        }
        return report;
    } else {
        report.findings.push(evidence(Finding::new(
            "mx.present",
            Area::Mx,
            Severity::Pass,
            &domain,
            format!("{} MX record(s)", real.len()),
        )));
    }

    let mut real = real;
    if real.len() > MAX_HOSTS {
        report.findings.push(Finding::new(
            "mx.too-many",
            Area::Mx,
            Severity::Info,
            &domain,
            format!(
                "{} MX records; only the first {MAX_HOSTS} by preference were checked",
                real.len()
            ),
        ));
        real.truncate(MAX_HOSTS);
    }

    let checked: Vec<(MxHost, Vec<Finding>)> = futures_util::stream::iter(real)
        .map(|(pref, host)| check_host(dns, pref, host))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut addresses: Vec<IpAddr> = Vec::new();
    for (host, findings) in checked {
        report.findings.extend(findings);
        for ip in &host.addresses {
            if !addresses.contains(ip) {
                addresses.push(*ip);
            }
        }
        report.hosts.push(host);
    }

    // Reverse DNS once per distinct address, even when hosts share one.
    let reverse: Vec<(ReverseCheck, Vec<Finding>)> = futures_util::stream::iter(addresses)
        .map(|ip| check_reverse(dns, ip))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut by_address: BTreeMap<IpAddr, ReverseCheck> = BTreeMap::new();
    for (check, findings) in reverse {
        report.findings.extend(findings);
        by_address.insert(check.address, check);
    }
    for host in &mut report.hosts {
        host.reverse = host
            .addresses
            .iter()
            .filter_map(|ip| by_address.get(ip).cloned())
            .collect();
    }
    report
}

/// No MX records: senders fall back to the domain's own A/AAAA records.
async fn no_mx_finding(dns: &DnsClient, domain: &str) -> Finding {
    let fallback = dns.addresses(domain).await;
    let base = |message: String| {
        Finding::new("mx.missing", Area::Mx, Severity::Warning, domain, message).fix(format!(
            "publish MX records naming the mail servers (`{domain}. IN MX 10 mail.{domain}.`), \
             or a null MX (`{domain}. IN MX 0 .`) if the domain receives no mail"
        ))
    };
    match fallback {
        Ok(Answer::Records(ips)) => ips.iter().fold(
            base(format!(
                "no MX records: senders deliver to the domain's own address ({}) instead (RFC 5321 §5.1)",
                join(&ips)
            )),
            |f, ip| {
                f.evidence(format!(
                    "{domain} {} {ip}",
                    if ip.is_ipv4() { "A" } else { "AAAA" }
                ))
            },
        ),
        Ok(_) => base("no MX records and no address: mail to the domain cannot be delivered".to_owned()),
        Err(e) => base(format!(
            "no MX records; the fallback address lookup failed too ({e})"
        )),
    }
}

/// Checks one MX target: IP literal, CNAME, addresses.
async fn check_host(dns: &DnsClient, preference: u16, exchange: String) -> (MxHost, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut host = MxHost {
        preference,
        exchange,
        cname: None,
        addresses: Vec::new(),
        reverse: Vec::new(),
    };
    let name = host.exchange.clone();
    if is_ip_literal(&name) {
        findings.push(
            Finding::new(
                "mx.ip-literal",
                Area::Mx,
                Severity::Fail,
                &name,
                format!("MX {preference} {name} is an IP address, not a host name: senders look it up as a name and fail"),
            )
            .fix("point the MX record at a host name that has an A/AAAA record with this address (RFC 5321 §5.1)"),
        );
        return (host, findings);
    }
    let (cname, addresses) = tokio::join!(dns.cname(&name), dns.addresses(&name));
    match cname {
        Ok(Some(target)) => {
            findings.push(
                Finding::new(
                    "mx.cname",
                    Area::Mx,
                    Severity::Warning,
                    &name,
                    format!("the MX target {name} is an alias (CNAME to {target}), which RFC 2181 §10.3 forbids"),
                )
                .fix(format!(
                    "point the MX record at the canonical name {target}, or replace the CNAME with A/AAAA records"
                ))
                .evidence(format!("{name} CNAME {target}")),
            );
            host.cname = Some(target);
        }
        Ok(None) => {}
        Err(e) => findings.push(lookup_failed("mx.lookup-failed", &name, &e)),
    }
    match addresses {
        Ok(Answer::Records(mut ips)) => {
            ips.truncate(MAX_ADDRESSES_PER_HOST);
            findings.push(ips.iter().fold(
                Finding::new(
                    "mx.resolves",
                    Area::Mx,
                    Severity::Pass,
                    &name,
                    format!("MX {preference} {name} resolves to {}", join(&ips)),
                ),
                |f, ip| f.evidence(format!("{name} {} {ip}", if ip.is_ipv4() { "A" } else { "AAAA" })),
            ));
            host.addresses = ips;
        }
        Ok(void) => {
            let why = if matches!(void, Answer::NxDomain) {
                "does not exist (NXDOMAIN)"
            } else {
                "has no A or AAAA record"
            };
            findings.push(
                Finding::new(
                    "mx.unresolvable",
                    Area::Mx,
                    Severity::Fail,
                    &name,
                    format!("the MX target {name} {why}: mail sent to this MX bounces or waits"),
                )
                .fix(format!(
                    "publish A/AAAA records for {name}, or remove the MX record pointing at it"
                )),
            );
        }
        Err(e) => findings.push(lookup_failed("mx.lookup-failed", &name, &e)),
    }
    (host, findings)
}

/// PTR and FCrDNS of one address.
async fn check_reverse(dns: &DnsClient, ip: IpAddr) -> (ReverseCheck, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut check = ReverseCheck {
        address: ip,
        names: Vec::new(),
        forward_confirmed: false,
    };
    let subject = ip.to_string();
    let reverse_name = crate::dns::reverse_name(ip);
    let names = match dns.ptr(ip).await {
        Err(e) => {
            findings.push(lookup_failed("ptr.lookup-failed", &subject, &e));
            return (check, findings);
        }
        Ok(Answer::Records(names)) => names,
        Ok(_) => {
            findings.push(
                Finding::new(
                    "ptr.missing",
                    Area::Ptr,
                    Severity::Warning,
                    &subject,
                    format!("{ip} has no PTR record: many receivers refuse or distrust mail from it"),
                )
                .fix(format!(
                    "ask whoever owns the address (hosting provider, ISP) to set its reverse DNS \
                     to the server's host name, which must resolve back to {ip}"
                ))
                .evidence(format!("{reverse_name} PTR: none")),
            );
            return (check, findings);
        }
    };
    let mut names: Vec<String> = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names.truncate(MAX_PTR_NAMES);
    check.names.clone_from(&names);

    let forward: Vec<Result<Answer<IpAddr>, LookupError>> = futures_util::stream::iter(names.iter())
        .map(|name| async move {
            if ip.is_ipv4() {
                dns.a(name).await
            } else {
                dns.aaaa(name).await
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut evidence: Vec<String> = names.iter().map(|n| format!("{reverse_name} PTR {n}")).collect();
    let mut failed = None;
    for (name, answer) in names.iter().zip(&forward) {
        match answer {
            Ok(a) => {
                let ips = a.records();
                if ips.contains(&ip) {
                    check.forward_confirmed = true;
                }
                evidence.push(if ips.is_empty() {
                    format!("{name}: no {} record", if ip.is_ipv4() { "A" } else { "AAAA" })
                } else {
                    format!("{name} → {}", join(ips))
                });
            }
            Err(e) => {
                evidence.push(format!("{name}: {e}"));
                failed.get_or_insert_with(|| e.clone());
            }
        }
    }
    let with_evidence = |f: Finding| evidence.iter().fold(f, |f, e| f.evidence(e.clone()));
    if check.forward_confirmed {
        findings.push(with_evidence(Finding::new(
            "ptr.forward-confirmed",
            Area::Ptr,
            Severity::Pass,
            &subject,
            format!(
                "{ip} has reverse DNS {} that resolves back to it",
                names.join(", ")
            ),
        )));
    } else if let Some(e) = failed {
        findings.push(with_evidence(lookup_failed("ptr.lookup-failed", &subject, &e)));
    } else {
        findings.push(with_evidence(
            Finding::new(
                "ptr.not-forward-confirmed",
                Area::Ptr,
                Severity::Warning,
                &subject,
                format!(
                    "the PTR name(s) of {ip} ({}) do not resolve back to {ip}: receivers that check FCrDNS distrust it",
                    names.join(", ")
                ),
            )
            .fix(format!(
                "give the PTR name an A/AAAA record with {ip}, or set the PTR to a name that has one"
            )),
        ));
    }
    for name in &names {
        if let Some(why) = generic_ptr_reason(name, ip) {
            findings.push(
                Finding::new(
                    "ptr.generic",
                    Area::Ptr,
                    Severity::Info,
                    &subject,
                    format!("the PTR name {name} looks generic ({why}); receivers may treat the server as a dial-up or pool host"),
                )
                .fix(format!(
                    "set the reverse DNS of {ip} to the mail server's own host name (the one in its HELO)"
                )),
            );
        }
    }
    (check, findings)
}

/// Why `name` looks like a provider's generic reverse name for `ip`, if it
/// does: the address's octets in the name (in order or reversed, as
/// decimal runs or as one hex word), or a pool keyword (`dynamic`, `dsl`,
/// `pool`, …) as a whole word in a label left of the last two.
pub fn generic_ptr_reason(name: &str, ip: IpAddr) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let IpAddr::V4(v4) = ip {
        let octets = v4.octets().map(u32::from);
        let runs: Vec<u32> = name
            .split(|c: char| !c.is_ascii_digit())
            .filter(|r| !r.is_empty() && r.len() <= 3)
            .filter_map(|r| r.parse().ok())
            .collect();
        let reversed = [octets[3], octets[2], octets[1], octets[0]];
        if runs.windows(4).any(|w| w == octets || w == reversed) {
            return Some("it contains the address's numbers".to_owned());
        }
        let hex = format!("{:08x}", u32::from(v4));
        if name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == hex || (word.ends_with(&hex) && word.len() <= hex.len() + 4))
        {
            return Some("it contains the address in hexadecimal".to_owned());
        }
    }
    const KEYWORDS: &[&str] = &[
        "dynamic",
        "dyn",
        "dhcp",
        "dsl",
        "adsl",
        "vdsl",
        "xdsl",
        "pool",
        "dial",
        "dialup",
        "ppp",
        "pppoe",
        "cable",
        "broadband",
        "customer",
        "cust",
        "residential",
        "unassigned",
    ];
    let labels: Vec<&str> = name.split('.').collect();
    let host_labels = &labels[..labels.len().saturating_sub(2)];
    for label in host_labels {
        // Words are split at punctuation and at letter/digit boundaries:
        // `dsl-pool123` → `dsl`, `pool`.
        let mut words: Vec<String> = Vec::new();
        let mut current = String::new();
        for c in label.chars() {
            let boundary = !c.is_ascii_alphabetic();
            if boundary {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
        if let Some(word) = words.iter().find(|w| KEYWORDS.contains(&w.as_str())) {
            return Some(format!("the word `{word}`"));
        }
    }
    None
}

/// An MX target that is an address rather than a name (`192.0.2.1`,
/// `[192.0.2.1]`, `2001:db8::1`).
fn is_ip_literal(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let bare = bare.strip_prefix("ipv6:").unwrap_or(bare);
    bare.parse::<IpAddr>().is_ok()
}

fn lookup_failed(id: &'static str, subject: &str, e: &LookupError) -> Finding {
    Finding::new(
        id,
        Area::Dns,
        Severity::Warning,
        subject,
        format!("lookup failed, so this was not checked: {e}"),
    )
    .fix("check that the resolver is reachable and answers for this name, then run the audit again")
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ip: &str, expect: Option<&str>) {
        let got = generic_ptr_reason(name, ip.parse().unwrap());
        match expect {
            None => assert_eq!(got, None, "{name} {ip}"),
            Some(part) => {
                let got = got.unwrap_or_else(|| panic!("{name} {ip}: expected generic"));
                assert!(got.contains(part), "{name} {ip}: {got}");
            }
        }
    }

    #[test]
    fn generic_ptr_names() {
        check("mail.example.com", "192.0.2.10", None);
        check("192-0-2-10.dyn.example.net", "192.0.2.10", Some("numbers"));
        check("10.2.0.192.in-addr.example.net", "192.0.2.10", Some("numbers"));
        check("ip192.0.2.10.example.net", "192.0.2.10", Some("numbers"));
        check("host-c000020a.example.net", "192.0.2.10", Some("hexadecimal"));
        check(
            "p5dc0000a.dip0.t-ipconnect.de",
            "93.192.0.10",
            Some("hexadecimal"),
        );
        check("dynamic-host.example.net", "192.0.2.10", Some("dynamic"));
        check("adsl123.isp.example", "192.0.2.10", Some("adsl"));
        check("x.pool.isp.example", "2001:db8::1", Some("pool"));
        // The provider's own name is not judged; whole words only.
        check("mx.dyn.com", "192.0.2.10", None);
        check("mx1.poolparty.example", "192.0.2.10", None);
        check("mail10.example.com", "192.0.2.10", None);
        // Other numbers are not the address.
        check("mx-1-2-3-4.example.com", "192.0.2.10", None);
    }

    #[test]
    fn ip_literals() {
        assert!(is_ip_literal("192.0.2.1"));
        assert!(is_ip_literal("[192.0.2.1]"));
        assert!(is_ip_literal("2001:db8::1"));
        assert!(is_ip_literal("[ipv6:2001:db8::1]"));
        assert!(!is_ip_literal("mail.example.com"));
        assert!(!is_ip_literal("192.0.2.1.example.com"));
    }
}
