//! The whole audit of one domain, and of many: SPF, DKIM, DMARC, TLS-RPT,
//! BIMI, MX with reverse DNS, DNSBL and MTA-STS, with independent lookups
//! run concurrently, the findings gathered and scored.
//!
//! The first lookup (the domain's TXT records, needed by SPF anyway) also
//! tests the resolver: if it fails, the domain is an [`AuditError`] rather
//! than a report full of "could not check" findings.

use std::time::Instant;

use futures_util::StreamExt as _;
use mailwarden_core::posture::bimi::DmarcEnforcement;
use mailwarden_core::posture::{self, Area, Finding, Severity};
use serde::Serialize;

use super::bimi::BimiReport;
use super::dkim::{DkimReport, check_dkim};
use super::dmarc::{DmarcReport, check_dmarc};
use super::dnsbl::{DnsblConfig, DnsblReport, check_dnsbl};
use super::mta_sts::{HttpsConfig, MtaStsReport, check_mta_sts};
use super::mx::{MxReport, check_mx};
use super::spf::{SpfReport, check_spf};
use super::tlsrpt::TlsRptReport;
use crate::dns::{Answer, DnsClient, DnsConfig, LookupError, ResolverError};

/// What to audit besides the DNS records themselves.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// DKIM selectors to look up (besides the common ones).
    pub selectors: Vec<String>,
    /// Also probe the common DKIM selectors.
    pub common_selectors: bool,
    /// Blocklists to check the MX addresses against; `None` skips DNSBL.
    pub dnsbl: Option<DnsblConfig>,
    /// How to fetch MTA-STS policies.
    pub https: HttpsConfig,
}

/// The audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    /// The audited domain.
    pub domain: String,
    /// 0–100 ([`posture::score`]).
    pub score: u8,
    /// The worst severity found.
    pub worst: Severity,
    /// DNS queries made for this domain.
    pub dns_queries: u64,
    /// Wall time of the audit, in milliseconds.
    pub elapsed_ms: u64,
    /// Every finding, grouped by area in audit order.
    pub findings: Vec<Finding>,
    /// SPF records and the lookup tree.
    pub spf: SpfReport,
    /// DKIM selectors and keys.
    pub dkim: DkimReport,
    /// The DMARC policy and where it came from.
    pub dmarc: DmarcReport,
    /// TLS-RPT.
    pub tls_rpt: TlsRptReport,
    /// BIMI.
    pub bimi: BimiReport,
    /// MX hosts and their reverse DNS (findings moved to `findings`).
    pub mx: MxReport,
    /// Blocklist results (`None`: not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnsbl: Option<DnsblReport>,
    /// MTA-STS (findings moved to `findings`).
    pub mta_sts: MtaStsReport,
}

/// A domain that could not be audited at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The first lookup failed: the resolver is unusable for this domain.
    #[error("{domain}: the first lookup failed: {source}; check the resolver, or give --resolver IP[:PORT]")]
    Unreachable {
        /// The domain.
        domain: String,
        /// The failed lookup.
        source: LookupError,
    },
}

/// Audits `domain` (normalized: lower case, no trailing dot).
pub async fn audit_domain(
    dns: &DnsClient,
    domain: &str,
    cfg: &AuditConfig,
) -> Result<DomainReport, AuditError> {
    let started = Instant::now();
    let start_queries = dns.query_count();
    let apex = dns.txt(domain).await;
    if let Err(e) = &apex {
        return Err(AuditError::Unreachable {
            domain: domain.to_owned(),
            source: e.clone(),
        });
    }
    let exists = !matches!(apex, Ok(Answer::NxDomain));

    let mail_path = async {
        let mx = check_mx(dns, domain).await;
        let addresses = mx.addresses();
        let exchanges = mx.exchanges();
        let dnsbl = async {
            match &cfg.dnsbl {
                Some(zones) if !addresses.is_empty() => Some(check_dnsbl(dns, &addresses, zones).await),
                _ => None,
            }
        };
        let (dnsbl, mta_sts, dnssec) = tokio::join!(
            dnsbl,
            check_mta_sts(dns, domain, &exchanges, &cfg.https),
            super::dnssec::check_dnssec_dane(dns, domain, &exchanges)
        );
        (mx, dnsbl, mta_sts, dnssec)
    };
    let (
        (spf, spf_findings),
        (dkim, dkim_findings),
        (dmarc, dmarc_findings),
        (mut mx, mut dnsbl, mut mta_sts, dnssec_findings),
        tlsrpt_answer,
        bimi_answer,
    ) = tokio::join!(
        check_spf(dns, domain, &apex),
        check_dkim(dns, domain, &cfg.selectors, cfg.common_selectors),
        check_dmarc(dns, domain),
        mail_path,
        super::tlsrpt::lookup(dns, domain),
        super::bimi::lookup(dns, domain),
    );
    let (tls_rpt, tlsrpt_findings) = super::tlsrpt::check(domain, &tlsrpt_answer, mta_sts.record.is_some());
    let enforcement = dmarc.record.as_ref().map(|r| DmarcEnforcement {
        policy: r.effective_policy(dmarc.source.inherited()),
        pct: r.pct(),
        subdomain_policy: if dmarc.source.inherited() {
            None
        } else {
            r.subdomain_policy
        },
    });
    let (bimi, bimi_findings) = super::bimi::check(domain, &bimi_answer, enforcement);

    let mut findings = Vec::new();
    if !exists {
        findings.push(
            Finding::new(
                "dns.nxdomain",
                Area::Dns,
                Severity::Fail,
                domain,
                format!("{domain} does not exist in DNS (NXDOMAIN)"),
            )
            .fix("check the spelling; a domain that sends mail must exist in DNS"),
        );
    }
    findings.extend(spf_findings);
    findings.extend(dkim_findings);
    findings.extend(dmarc_findings);
    findings.append(&mut mx.findings);
    if let Some(d) = dnsbl.as_mut() {
        findings.append(&mut d.findings);
    }
    findings.append(&mut mta_sts.findings);
    findings.extend(tlsrpt_findings);
    findings.extend(bimi_findings);
    findings.extend(dnssec_findings);

    Ok(DomainReport {
        domain: domain.to_owned(),
        score: posture::score(&findings),
        worst: posture::worst(&findings),
        dns_queries: dns.query_count() - start_queries,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        findings,
        spf,
        dkim,
        dmarc,
        tls_rpt,
        bimi,
        mx,
        dnsbl,
        mta_sts,
    })
}

/// Audits `domains` with at most `concurrency` at a time. They share one
/// resolver (and its cache: providers included by many domains are asked
/// once), each with its own query counter ([`DnsClient::fork`]). Results
/// come in the order of `domains`.
pub async fn audit_domains(
    dns: &DnsConfig,
    domains: &[String],
    cfg: &AuditConfig,
    concurrency: usize,
) -> Result<Vec<Result<DomainReport, AuditError>>, ResolverError> {
    let base = DnsClient::new(dns)?;
    let base = &base;
    Ok(futures_util::stream::iter(domains)
        .map(|domain| async move { audit_domain(&base.fork(), domain, cfg).await })
        .buffered(concurrency.max(1))
        .collect()
        .await)
}
