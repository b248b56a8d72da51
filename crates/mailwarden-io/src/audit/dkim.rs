//! The DKIM audit: the keys of the selectors given and of the common ones
//! (Mailcow's `dkim`, `default`, `selector1`, …), looked up concurrently,
//! with CNAME delegation followed and shown.
//!
//! DNS cannot list a domain's selectors: a selector not given and not
//! among the common ones stays unseen, which the report says.

use futures_util::future::join_all;
use mailwarden_core::posture::dkim::{
    COMMON_SELECTORS, SelectorLookup, SelectorReport, check_domain, check_selector,
};
use mailwarden_core::posture::{Area, Finding};
use serde::Serialize;

use super::lookup_failed;
use crate::dns::{Answer, DnsClient};

/// Most CNAME hops followed from a selector's name.
const MAX_CNAME_HOPS: usize = 8;

/// The DKIM audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DkimReport {
    /// Every selector tried, given ones first.
    pub probed: Vec<String>,
    /// The selectors that have a key record.
    pub selectors: Vec<SelectorReport>,
}

/// Looks up `selectors` (given by the user) and, with `common`, the
/// common selectors, and checks every key found.
pub async fn check_dkim(
    dns: &DnsClient,
    domain: &str,
    selectors: &[String],
    common: bool,
) -> (DkimReport, Vec<Finding>) {
    let mut probed: Vec<(String, bool)> = Vec::new();
    for s in selectors {
        let s = s.trim().to_ascii_lowercase();
        if !s.is_empty() && !probed.iter().any(|(p, _)| *p == s) {
            probed.push((s, true));
        }
    }
    if common {
        for s in COMMON_SELECTORS {
            if !probed.iter().any(|(p, _)| p == s) {
                probed.push(((*s).to_owned(), false));
            }
        }
    }
    let results = join_all(
        probed
            .iter()
            .map(|(s, requested)| lookup_selector(dns, domain, s, *requested)),
    )
    .await;
    let mut findings = Vec::new();
    let mut found = Vec::new();
    for result in results {
        match result {
            Ok(lookup) => {
                let (report, f) = check_selector(domain, &lookup);
                findings.extend(f);
                found.extend(report);
            }
            Err(f) => findings.push(f),
        }
    }
    let names: Vec<String> = probed.into_iter().map(|(s, _)| s).collect();
    let mut out = check_domain(domain, &names, &found);
    out.extend(findings);
    (
        DkimReport {
            probed: names,
            selectors: found,
        },
        out,
    )
}

async fn lookup_selector(
    dns: &DnsClient,
    domain: &str,
    selector: &str,
    requested: bool,
) -> Result<SelectorLookup, Finding> {
    let name = format!("{selector}._domainkey.{domain}");
    let failed = |e| {
        lookup_failed(
            "dkim.lookup-failed",
            Area::Dkim,
            domain,
            &format!("DKIM selector {selector}"),
            &e,
        )
    };
    let (cname, txt) = tokio::join!(dns.cname(&name), dns.txt(&name));
    let mut chain = Vec::new();
    let mut next = cname.map_err(failed)?;
    while let Some(target) = next {
        if chain.contains(&target) || chain.len() >= MAX_CNAME_HOPS {
            break;
        }
        chain.push(target.clone());
        next = dns.cname(&target).await.map_err(failed)?;
    }
    let mut txt = txt.map_err(failed)?;
    // The resolver usually follows the chain itself; ask the end of the
    // chain directly when it did not.
    if txt.is_void()
        && let Some(end) = chain.last()
    {
        txt = dns.txt(end).await.map_err(failed)?;
    }
    Ok(SelectorLookup {
        selector: selector.to_owned(),
        name,
        cname_chain: chain,
        nxdomain: matches!(txt, Answer::NxDomain),
        records: txt.into_records(),
        requested,
    })
}
