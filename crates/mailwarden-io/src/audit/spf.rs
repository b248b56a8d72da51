//! The SPF audit: the record at the domain, the deprecated type-99 record,
//! and the lookup tree walked through DNS (every `include` and `redirect`
//! followed, `a`/`mx`/`exists` resolved to count void lookups and MX names).
//!
//! Sibling terms are resolved concurrently. The walk is bounded: at most
//! [`MAX_DEPTH`] levels of include/redirect and [`MAX_WALK_LOOKUPS`]
//! lookups, so a hostile or looping record set cannot keep it busy.

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::{BoxFuture, join_all};
use mailwarden_core::posture::spf::{
    LookupKind, LookupTerm, NodeStatus, SpfNode, SpfRecord, all_qualifier, check_records, check_tree, expand,
    is_spf_record, lookup_terms, parse_spf,
};
use mailwarden_core::posture::{Area, Finding, Severity};
use serde::Serialize;

use super::lookup_failed;
use crate::dns::{Answer, DnsClient, LookupError};

/// Deepest include/redirect nesting followed.
pub const MAX_DEPTH: usize = 10;
/// Most lookups one walk makes (a record over the limit is still drawn
/// well past 10, so the report shows by how much).
pub const MAX_WALK_LOOKUPS: u32 = 60;

/// The SPF audit of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct SpfReport {
    /// The SPF records (TXT starting with `v=spf1`) at the domain.
    pub records: Vec<String>,
    /// The parsed record, when there is exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed: Option<SpfRecord>,
    /// The lookup tree, when there is exactly one record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<SpfNode>,
    /// Records of the deprecated SPF RR type (99).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub type99: Vec<String>,
}

/// Audits SPF for `domain`, given the answer to its TXT query (made by the
/// caller, which needs it first to see whether the resolver works).
pub async fn check_spf(
    dns: &DnsClient,
    domain: &str,
    apex: &Result<Answer<String>, LookupError>,
) -> (SpfReport, Vec<Finding>) {
    let mut report = SpfReport {
        records: Vec::new(),
        parsed: None,
        tree: None,
        type99: Vec::new(),
    };
    let answer = match apex {
        Ok(a) => a,
        Err(e) => {
            return (
                report,
                vec![lookup_failed("spf.lookup-failed", Area::Spf, domain, "SPF", e)],
            );
        }
    };
    report.records = answer
        .records()
        .iter()
        .filter(|t| is_spf_record(t))
        .cloned()
        .collect();
    let mut findings = check_records(domain, &report.records);
    let type99 = async {
        match dns.spf_rr(domain).await {
            Ok(a) => a.into_records(),
            // Some servers answer NOTIMP or FORMERR for type 99: nothing to report.
            Err(_) => Vec::new(),
        }
    };
    let walk = async {
        let [text] = report.records.as_slice() else {
            return None;
        };
        let parsed = parse_spf(text);
        let mut root = SpfNode::new(LookupKind::Root, domain, Some(domain.to_owned()));
        root.record = Some(text.clone());
        root.all = all_qualifier(&parsed);
        let walker = Walker {
            dns,
            audited: domain,
            budget: AtomicU32::new(0),
        };
        root.children = walker
            .walk(domain.to_owned(), parsed.clone(), vec![domain.to_owned()])
            .await;
        root.finish();
        Some((parsed, root))
    };
    let (type99, walked) = tokio::join!(type99, walk);
    if let Some((parsed, root)) = walked {
        findings.extend(check_tree(domain, &root));
        report.parsed = Some(parsed);
        report.tree = Some(root);
    }
    if !type99.is_empty() {
        let same = report.records.len() == 1 && type99.iter().all(|t| *t == report.records[0]);
        let mut f = if same {
            Finding::new(
                "spf.type99.present",
                Area::Spf,
                Severity::Info,
                domain,
                "a record of the SPF RR type (99) is published as well: RFC 7208 §3.1 retired that type and receivers read only TXT",
            )
            .fix("you may delete the type-99 record")
        } else {
            Finding::new(
                "spf.type99.differs",
                Area::Spf,
                Severity::Warning,
                domain,
                "the deprecated SPF RR type (99) holds a different record than TXT: receivers read only TXT, so the type-99 one is misleading",
            )
            .fix("delete the type-99 record (or make it identical to the TXT record)")
        };
        for t in &type99 {
            f = f.evidence(format!("SPF {domain}: {t}"));
        }
        findings.push(f);
        report.type99 = type99;
    }
    (report, findings)
}

struct Walker<'a> {
    dns: &'a DnsClient,
    audited: &'a str,
    budget: AtomicU32,
}

impl<'a> Walker<'a> {
    /// The nodes of the terms of `record` (found at `current`) that cost lookups.
    fn walk(
        &'a self,
        current: String,
        record: SpfRecord,
        ancestors: Vec<String>,
    ) -> BoxFuture<'a, Vec<SpfNode>> {
        Box::pin(async move {
            let terms = lookup_terms(&record);
            join_all(terms.into_iter().map(|t| self.resolve(&current, t, &ancestors))).await
        })
    }

    async fn resolve(&'a self, current: &str, term: LookupTerm, ancestors: &[String]) -> SpfNode {
        let name = match term.spec.as_deref() {
            None => Some(current.to_owned()),
            Some(spec) => expand(spec, current, self.audited).map(|n| {
                let n = n.to_ascii_lowercase();
                n.strip_suffix('.').map(str::to_owned).unwrap_or(n)
            }),
        };
        let node = SpfNode::new(term.kind, term.text, name.clone());
        let Some(name) = name else {
            return node.with_status(NodeStatus::NotFollowed, "the name depends on the message (macro)");
        };
        if term.kind == LookupKind::Ptr {
            return node.with_status(NodeStatus::NotFollowed, "depends on the client's address");
        }
        if matches!(term.kind, LookupKind::Include | LookupKind::Redirect) && ancestors.contains(&name) {
            return node.with_status(NodeStatus::Loop, format!("{name} is already being evaluated"));
        }
        if ancestors.len() > MAX_DEPTH {
            return node.with_status(
                NodeStatus::Truncated,
                format!("nested more than {MAX_DEPTH} levels"),
            );
        }
        if self.budget.fetch_add(1, Ordering::Relaxed) >= MAX_WALK_LOOKUPS {
            return node.with_status(
                NodeStatus::Truncated,
                format!("the audit stops after {MAX_WALK_LOOKUPS} lookups"),
            );
        }
        match term.kind {
            LookupKind::Include | LookupKind::Redirect => self.target(node, name, ancestors).await,
            LookupKind::A => self.addresses(node, &name).await,
            LookupKind::Exists => match self.dns.a(&name).await {
                Err(e) => node.with_status(NodeStatus::LookupFailed, e.to_string()),
                Ok(a) => void_or(node, &a, "no A record", |n| {
                    format!("{n} address{}", plural_es(n))
                }),
            },
            LookupKind::Mx => self.mx(node, &name).await,
            LookupKind::Root | LookupKind::Ptr => node,
        }
    }

    async fn target(&'a self, mut node: SpfNode, name: String, ancestors: &[String]) -> SpfNode {
        let answer = match self.dns.txt(&name).await {
            Ok(a) => a,
            Err(e) => return node.with_status(NodeStatus::LookupFailed, e.to_string()),
        };
        node.void = answer.is_void();
        let records: Vec<&String> = answer.records().iter().filter(|t| is_spf_record(t)).collect();
        match records.as_slice() {
            [] => {
                let why = match answer {
                    Answer::NxDomain => "the name does not exist",
                    Answer::NoData => "the name has no TXT record",
                    Answer::Records(_) => "TXT records, but none starts with v=spf1",
                };
                node.with_status(NodeStatus::NoRecord, why)
            }
            [one] => {
                let parsed = parse_spf(one);
                node.record = Some((*one).clone());
                node.all = all_qualifier(&parsed);
                if !parsed.errors.is_empty() {
                    node.errors = parsed.errors;
                    node.status = NodeStatus::Invalid;
                    return node;
                }
                let mut path = ancestors.to_vec();
                path.push(name.clone());
                node.children = self.walk(name, parsed, path).await;
                node
            }
            many => node.with_status(NodeStatus::MultipleRecords, format!("{} SPF records", many.len())),
        }
    }

    async fn addresses(&self, node: SpfNode, name: &str) -> SpfNode {
        match self.dns.addresses(name).await {
            Err(e) => node.with_status(NodeStatus::LookupFailed, e.to_string()),
            Ok(a) => void_or(node, &a, "no address", |n| format!("{n} address{}", plural_es(n))),
        }
    }

    async fn mx(&self, mut node: SpfNode, name: &str) -> SpfNode {
        let hosts = match self.dns.mx(name).await {
            Err(e) => return node.with_status(NodeStatus::LookupFailed, e.to_string()),
            Ok(Answer::Records(r)) => r,
            Ok(_) => {
                node.void = true;
                node.detail = Some("no MX record".into());
                return node;
            }
        };
        if hosts.len() > mailwarden_core::posture::spf::NAME_LIMIT {
            return node.with_status(NodeStatus::TooManyNames, format!("{} MX names", hosts.len()));
        }
        // The MX hosts' address lookups belong to the `mx` term: they do not
        // count against the limit of 10, but a host without address is shown.
        let exchanges: Vec<String> = hosts
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| !h.is_empty())
            .collect();
        let lookups = join_all(exchanges.iter().map(|h| self.dns.addresses(h))).await;
        let parts: Vec<String> = exchanges
            .iter()
            .zip(lookups)
            .map(|(h, a)| match a {
                Ok(Answer::Records(r)) => format!("{h} ({} address{})", r.len(), plural_es(r.len())),
                Ok(_) => format!("{h} (no address)"),
                Err(_) => format!("{h} (lookup failed)"),
            })
            .collect();
        node.detail = Some(if parts.is_empty() {
            "null MX".to_owned()
        } else {
            format!("MX {}", parts.join(", "))
        });
        node
    }
}

fn void_or<T>(mut node: SpfNode, answer: &Answer<T>, void: &str, found: impl Fn(usize) -> String) -> SpfNode {
    if answer.is_void() {
        node.void = true;
        node.detail = Some(match answer {
            Answer::NxDomain => format!("{void} (NXDOMAIN)"),
            _ => void.to_owned(),
        });
    } else {
        node.detail = Some(found(answer.records().len()));
    }
    node
}

fn plural_es(n: usize) -> &'static str {
    if n == 1 { "" } else { "es" }
}
