//! DNSSEC and DANE presence: does the domain's zone publish DNSKEY records,
//! and do its MX hosts publish TLSA records for SMTP (`_25._tcp.MX`,
//! RFC 7672)? This reports what is published; it does not validate the
//! chain of trust (that is the validating resolver's job).

use hickory_resolver::proto::rr::RecordType;
use mailwarden_core::posture::{Area, Finding, Severity};

use super::lookup_failed;
use crate::dns::{Answer, DnsClient};

/// Checks DNSKEY at `domain` and TLSA at `_25._tcp.EXCHANGE` for each MX.
pub async fn check_dnssec_dane(dns: &DnsClient, domain: &str, exchanges: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let signed = match dns.lookup(domain, RecordType::DNSKEY).await {
        Ok(Answer::Records(keys)) => {
            findings.push(
                Finding::new(
                    "dnssec.signed",
                    Area::Dnssec,
                    Severity::Pass,
                    domain,
                    format!(
                        "{domain} publishes {} DNSKEY record(s): the zone is signed",
                        keys.len()
                    ),
                )
                .evidence(format!("{domain} DNSKEY: {} record(s)", keys.len())),
            );
            true
        }
        Ok(_) => {
            findings.push(
                Finding::new(
                    "dnssec.unsigned",
                    Area::Dnssec,
                    Severity::Info,
                    domain,
                    format!("{domain} publishes no DNSKEY: the zone is not DNSSEC-signed, so its SPF, DKIM and DMARC answers can be forged on the path and DANE is impossible"),
                )
                .fix("sign the zone at your DNS provider (DNSSEC) and publish the DS record at the registrar"),
            );
            false
        }
        Err(e) => {
            findings.push(lookup_failed(
                "dnssec.lookup-failed",
                Area::Dnssec,
                domain,
                "DNSSEC",
                &e,
            ));
            false
        }
    };
    let mut without = Vec::new();
    for mx in exchanges.iter().take(20) {
        let name = format!("_25._tcp.{}", mx.trim_end_matches('.'));
        match dns.lookup(&name, RecordType::TLSA).await {
            Ok(Answer::Records(tlsa)) => {
                let mut f = Finding::new(
                    "dane.tlsa",
                    Area::Dnssec,
                    if signed { Severity::Pass } else { Severity::Warning },
                    mx.as_str(),
                    format!("{mx} publishes {} TLSA record(s) for SMTP (DANE)", tlsa.len()),
                )
                .evidence(format!("{name} TLSA: {} record(s)", tlsa.len()));
                if !signed {
                    f.message
                        .push_str(", but senders use them only from a DNSSEC-signed zone");
                    f = f.fix("sign the MX host's zone with DNSSEC, or DANE has no effect");
                }
                findings.push(f);
            }
            Ok(_) => without.push(mx.clone()),
            Err(e) => findings.push(lookup_failed(
                "dane.lookup-failed",
                Area::Dnssec,
                mx,
                "DANE (TLSA)",
                &e,
            )),
        }
    }
    if !without.is_empty() {
        findings.push(
            Finding::new(
                "dane.none",
                Area::Dnssec,
                Severity::Info,
                domain,
                format!("no TLSA record for SMTP at {}: senders cannot authenticate your MX with DANE", without.join(", ")),
            )
            .fix("with a DNSSEC-signed zone, publish `_25._tcp.MX TLSA 3 1 1 <sha256 of the certificate's public key>` for each MX"),
        );
    }
    findings
}
