//! The DMARC audit: the record at `_dmarc.<domain>`, the organizational
//! domain's record when a subdomain has none (Public Suffix List, RFC 7489
//! §6.6.3), the nearest record on the way up as RFC 9989's tree walk would
//! find it, and the authorization records of external report
//! destinations (RFC 7489 §7.1) — independent lookups made concurrently.

use futures_util::future::join_all;
use mailwarden_core::posture::dmarc::{
    Authorization, DmarcRecord, MailRoute, PolicySource, authorization_name, check_authorization,
    check_dmarc as check_policy, check_report_route, external_destinations, is_dmarc_record,
    report_mail_domains,
};
use mailwarden_core::posture::domain::{org_domain, parents};
use mailwarden_core::posture::{Area, Finding};
use serde::Serialize;

use super::lookup_failed;
use crate::dns::{Answer, DnsClient, LookupError};

/// The DMARC audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DmarcReport {
    /// Where the policy was found.
    pub source: PolicySource,
    /// The organizational domain (Public Suffix List).
    pub org_domain: String,
    /// The parsed record that applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<DmarcRecord>,
}

async fn dmarc_records(dns: &DnsClient, domain: &str) -> Result<Vec<String>, LookupError> {
    let answer = dns.txt(&format!("_dmarc.{domain}")).await?;
    Ok(answer
        .into_records()
        .into_iter()
        .filter(|t| is_dmarc_record(t))
        .collect())
}

/// Audits the DMARC policy that applies to `domain`.
pub async fn check_dmarc(dns: &DnsClient, domain: &str) -> (DmarcReport, Vec<Finding>) {
    let org = org_domain(domain);
    let mut source = PolicySource {
        domain: domain.to_owned(),
        record_domain: None,
        records: Vec::new(),
        tree_walk_domain: None,
    };
    let mut findings = Vec::new();
    let own = match dmarc_records(dns, domain).await {
        Ok(r) => r,
        Err(e) => {
            findings.push(lookup_failed(
                "dmarc.lookup-failed",
                Area::Dmarc,
                domain,
                "DMARC",
                &e,
            ));
            let report = DmarcReport {
                source,
                org_domain: org,
                record: None,
            };
            return (report, findings);
        }
    };
    if !own.is_empty() {
        source.record_domain = Some(domain.to_owned());
        source.records = own;
    } else if org != domain {
        // Every parent down to the organizational domain, nearest first.
        let ups: Vec<&str> = parents(domain).take_while(|p| p.len() >= org.len()).collect();
        let answers = join_all(ups.iter().map(|p| dmarc_records(dns, p))).await;
        for (parent, answer) in ups.iter().zip(answers) {
            match answer {
                Ok(records) if !records.is_empty() => {
                    if *parent == org {
                        source.record_domain = Some(org.clone());
                        source.records = records;
                    } else if source.tree_walk_domain.is_none() {
                        source.tree_walk_domain = Some((*parent).to_owned());
                    }
                }
                Ok(_) => {}
                Err(e) if *parent == org => {
                    findings.push(lookup_failed(
                        "dmarc.lookup-failed",
                        Area::Dmarc,
                        domain,
                        "the organizational domain's DMARC",
                        &e,
                    ));
                }
                Err(_) => {}
            }
        }
    }
    let (record, policy_findings) = check_policy(&source);
    findings.extend(policy_findings);
    if let (Some(record), Some(record_domain)) = (&record, &source.record_domain) {
        let external = external_destinations(record_domain, record);
        let names: Vec<String> = external
            .iter()
            .map(|(dest, _)| authorization_name(record_domain, dest))
            .collect();
        let answers = join_all(names.iter().map(|n| dns.txt(n))).await;
        for ((dest, uris), answer) in external.iter().zip(answers) {
            let auth = match answer {
                Ok(Answer::Records(r)) => Authorization::Records(r),
                Ok(_) => Authorization::Records(Vec::new()),
                Err(e) => Authorization::Failed(e.to_string()),
            };
            findings.push(check_authorization(domain, record_domain, dest, uris, &auth));
        }
        let dests = report_mail_domains(record);
        let routes = join_all(dests.iter().map(|d| mail_route(dns, d))).await;
        for (dest, route) in dests.iter().zip(routes) {
            findings.extend(check_report_route(domain, dest, &route));
        }
    }
    (
        DmarcReport {
            source,
            org_domain: org,
            record,
        },
        findings,
    )
}

/// Whether `dest` can receive mail: MX, else an address.
async fn mail_route(dns: &DnsClient, dest: &str) -> MailRoute {
    match dns.mx(dest).await {
        Ok(Answer::Records(mx)) if mx.iter().all(|(_, host)| host.is_empty()) => MailRoute::NullMx,
        Ok(Answer::Records(_)) => MailRoute::Mx,
        Ok(_) => match dns.addresses(dest).await {
            Ok(Answer::Records(_)) => MailRoute::Address,
            Ok(_) => MailRoute::Nothing,
            Err(_) => MailRoute::Unknown,
        },
        Err(_) => MailRoute::Unknown,
    }
}
