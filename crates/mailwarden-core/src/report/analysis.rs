//! Many reports → "who sends as our domains".
//!
//! Per policy domain: every source address that sent mail with our domain
//! in `From:`, split into **authorized** (DMARC pass: aligned SPF pass or
//! aligned DKIM pass) and **failing**, with message counts, the SPF and
//! DKIM results and how often they aligned, the dispositions the receivers
//! applied, and who reported them; the reports' time span and messages per
//! day. Per TLS policy domain: successful and failed sessions and the
//! failure types.
//!
//! A report is folded in only once it has been read completely: its
//! records go to a [`ReportAcc`] first, merged by
//! [`Analysis::add_dmarc`]. A report that fails half-way thus counts
//! nowhere. Reports are de-duplicated by [`ReportKey`] (organisation,
//! report id, domain). Memory is bounded by the distinct sources, not by
//! the records: a source's tallies keep at most [`MAX_TALLY`] distinct
//! values each, and a domain at most [`AnalysisConfig::max_sources`]
//! sources (the rest are summed in one `(other sources)` row).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::model::{Note, PolicyPublished, Record, ReportHeader, ReportKey, Schema, TlsReport};

/// Most distinct values kept per tally (more are summed under `(other)`).
pub const MAX_TALLY: usize = 16;
/// Most aggregated failure rows kept per TLS domain.
const MAX_TLS_ROWS: usize = 1000;
/// The row name standing for sources beyond the limit.
pub const OTHER_SOURCES: &str = "(other sources)";

/// What to count.
#[derive(Clone, Debug)]
pub struct AnalysisConfig {
    /// Only these policy domains (lowercase); empty: all.
    pub domains: Vec<String>,
    /// Only reports whose range ends at or after this (Unix seconds).
    pub since: Option<i64>,
    /// Only reports whose range begins at or before this.
    pub until: Option<i64>,
    /// Most distinct sources kept per domain.
    pub max_sources: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            domains: Vec::new(),
            since: None,
            until: None,
            max_sources: 200_000,
        }
    }
}

impl AnalysisConfig {
    /// Whether a policy domain is wanted.
    pub fn wants_domain(&self, domain: &str) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether a report range is wanted.
    pub fn wants_range(&self, begin: i64, end: i64) -> bool {
        self.since.is_none_or(|s| end >= s) && self.until.is_none_or(|u| begin <= u)
    }

    /// Whether an aggregate report is wanted.
    pub fn wants(&self, h: &ReportHeader) -> bool {
        self.wants_domain(&h.policy.domain) && self.wants_range(h.metadata.begin, h.metadata.end)
    }
}

/// A value and how often it was seen (messages, or reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    /// The value (shared: the same text is stored once per analysis).
    pub value: Arc<str>,
    /// How many.
    pub count: u64,
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Count", 2)?;
        st.serialize_field("value", &*self.value)?;
        st.serialize_field("count", &self.count)?;
        st.end()
    }
}

/// Every distinct text of an analysis, stored once: tallies hold ids.
#[derive(Debug, Default)]
struct Interner {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let a: Arc<str> = Arc::from(s);
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX - 1);
        self.names.push(a.clone());
        self.ids.insert(a, i);
        i
    }

    fn name(&self, id: u32) -> Arc<str> {
        self.names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from("(other)"))
    }
}

type Shared = Rc<RefCell<Interner>>;

/// The value id standing for "everything beyond [`MAX_TALLY`]".
const OTHER: u32 = u32::MAX;

// Tally fields of a source.
const F_SPF: u8 = 0;
const F_DKIM: u8 = 1;
const F_DISPOSITION: u8 = 2;
const F_HEADER_FROM: u8 = 3;
const F_ENVELOPE_FROM: u8 = 4;
const F_DKIM_DOMAINS: u8 = 5;
const F_SPF_DOMAINS: u8 = 6;
const F_REPORTERS: u8 = 7;
const F_REASONS: u8 = 8;

/// One tally entry: field, interned value, count.
#[derive(Clone, Copy, Debug)]
struct Entry {
    field: u8,
    value: u32,
    count: u64,
}

/// Bounded tallies of several fields in one small vector (one allocation).
#[derive(Clone, Debug, Default)]
struct Tallies(Vec<Entry>);

impl Tallies {
    fn add(&mut self, field: u8, value: u32, n: u64) {
        if let Some(e) = self.0.iter_mut().find(|e| e.field == field && e.value == value) {
            e.count = e.count.saturating_add(n);
            return;
        }
        let distinct = self
            .0
            .iter()
            .filter(|e| e.field == field && e.value != OTHER)
            .count();
        if distinct < MAX_TALLY {
            self.0.push(Entry {
                field,
                value,
                count: n,
            });
        } else if let Some(e) = self.0.iter_mut().find(|e| e.field == field && e.value == OTHER) {
            e.count = e.count.saturating_add(n);
        } else {
            self.0.push(Entry {
                field,
                value: OTHER,
                count: n,
            });
        }
    }

    fn merge(&mut self, o: &Tallies) {
        for e in &o.0 {
            self.add(e.field, e.value, e.count);
        }
    }

    fn rows(&self, field: u8, names: &Interner) -> Vec<Count> {
        let mut v: Vec<Count> = self
            .0
            .iter()
            .filter(|e| e.field == field && e.value != OTHER && e.count > 0)
            .map(|e| Count {
                value: names.name(e.value),
                count: e.count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        if let Some(o) = self.0.iter().find(|e| e.field == field && e.value == OTHER) {
            v.push(Count {
                value: Arc::from("(other)"),
                count: o.count,
            });
        }
        v
    }
}

#[derive(Clone, Debug, Default)]
struct SourceAcc {
    messages: u64,
    records: u64,
    spf_aligned: u64,
    dkim_aligned: u64,
    t: Tallies,
}

impl SourceAcc {
    fn add(&mut self, r: &Record, reporter: u32, names: &mut Interner, scratch: &mut String) {
        let n = r.count;
        self.messages = self.messages.saturating_add(n);
        self.records += 1;
        self.t.add(F_SPF, names.id(r.spf_result()), n);
        self.t.add(F_DKIM, names.id(r.dkim_result()), n);
        if r.spf_aligned_pass() {
            self.spf_aligned = self.spf_aligned.saturating_add(n);
        }
        if r.dkim_aligned_pass() {
            self.dkim_aligned = self.dkim_aligned.saturating_add(n);
        }
        self.t.add(
            F_DISPOSITION,
            names.id(r.disposition.as_deref().unwrap_or("(none given)")),
            n,
        );
        if let Some(h) = &r.header_from {
            self.t.add(F_HEADER_FROM, names.id(h), n);
        }
        if let Some(e) = &r.envelope_from {
            self.t.add(F_ENVELOPE_FROM, names.id(e), n);
        }
        for d in &r.dkim_results {
            scratch.clear();
            scratch.push_str(&d.domain);
            scratch.push('=');
            scratch.push_str(&d.result);
            self.t.add(F_DKIM_DOMAINS, names.id(scratch), n);
        }
        for sp in &r.spf_results {
            scratch.clear();
            scratch.push_str(&sp.domain);
            scratch.push('=');
            scratch.push_str(&sp.result);
            self.t.add(F_SPF_DOMAINS, names.id(scratch), n);
        }
        self.t.add(F_REPORTERS, reporter, n);
        for reason in &r.reasons {
            self.t.add(F_REASONS, names.id(&reason.kind), n);
        }
    }

    fn merge(&mut self, o: &SourceAcc) {
        self.messages = self.messages.saturating_add(o.messages);
        self.records += o.records;
        self.spf_aligned = self.spf_aligned.saturating_add(o.spf_aligned);
        self.dkim_aligned = self.dkim_aligned.saturating_add(o.dkim_aligned);
        self.t.merge(&o.t);
    }
}

/// A source address without a heap allocation (an unreadable one interned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SourceKey {
    Ip(IpAddr),
    Text(u32),
}

/// The records of one report, before it is known to be complete.
#[derive(Debug)]
pub struct ReportAcc {
    names: Shared,
    reporter: u32,
    scratch: String,
    sources: FxHashMap<(SourceKey, bool), SourceAcc>,
    dispositions: Tallies,
    records: u64,
    messages: u64,
    authorized: u64,
    failing: u64,
}

impl ReportAcc {
    /// Counts one record.
    pub fn add(&mut self, r: &Record) {
        let pass = r.dmarc_pass();
        self.records += 1;
        self.messages = self.messages.saturating_add(r.count);
        if pass {
            self.authorized = self.authorized.saturating_add(r.count);
        } else {
            self.failing = self.failing.saturating_add(r.count);
        }
        let mut names = self.names.borrow_mut();
        let disp = names.id(r.disposition.as_deref().unwrap_or("(none given)"));
        self.dispositions.add(F_DISPOSITION, disp, r.count);
        let key = match r.ip() {
            Some(ip) => SourceKey::Ip(ip),
            None => SourceKey::Text(names.id(&r.source_ip)),
        };
        self.sources
            .entry((key, pass))
            .or_default()
            .add(r, self.reporter, &mut names, &mut self.scratch);
    }

    /// Records counted.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Messages counted.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Messages that passed DMARC.
    pub fn authorized(&self) -> u64 {
        self.authorized
    }

    /// Messages that failed DMARC.
    pub fn failing(&self) -> u64 {
        self.failing
    }
}

/// How a report was counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ReportStatus {
    /// Counted in the analysis.
    Counted,
    /// The same report (organisation, id, domain) was already read.
    Duplicate {
        /// Where it was read first.
        of: String,
    },
}

/// One report read, for the listing.
#[derive(Clone, Debug, Serialize)]
pub struct ReportInfo {
    /// `dmarc` or `tls`.
    pub kind: &'static str,
    /// Where it came from (file, mail, attachment, archive entry).
    pub source: String,
    /// Reporting organisation.
    pub org: String,
    /// Report id.
    pub report_id: String,
    /// Policy domain(s).
    pub domains: Vec<String>,
    /// Range begin (Unix seconds).
    pub begin: i64,
    /// Range end.
    pub end: i64,
    /// Aggregate-report format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
    /// Records (aggregate) or policies (TLS).
    pub records: u64,
    /// Messages (aggregate) or sessions (TLS).
    pub messages: u64,
    /// Messages passing DMARC, or successful TLS sessions.
    pub passed: u64,
    /// Messages failing DMARC, or failed TLS sessions.
    pub failed: u64,
    /// Repairs and oddities.
    pub notes: Vec<Note>,
    /// How it was counted.
    #[serde(flatten)]
    pub status: ReportStatus,
    /// With a store: `new` or `already stored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<&'static str>,
}

#[derive(Debug, Default)]
struct DayAcc {
    messages: u64,
    authorized: u64,
    failing: u64,
}

#[derive(Debug, Default)]
struct DomainAcc {
    reports: u64,
    reporters: BTreeMap<String, u64>,
    begin: Option<i64>,
    end: Option<i64>,
    policy: Option<(i64, PolicyPublished)>,
    messages: u64,
    authorized: u64,
    failing: u64,
    dispositions: Tallies,
    sources: FxHashMap<(SourceKey, bool), SourceAcc>,
    days: BTreeMap<i64, DayAcc>,
    no_date: DayAcc,
}

#[derive(Debug, Default)]
struct TlsAcc {
    reports: u64,
    reporters: BTreeMap<String, u64>,
    begin: Option<i64>,
    end: Option<i64>,
    policy_types: BTreeMap<String, u64>,
    successful: u64,
    failed: u64,
    failure_types: BTreeMap<String, u64>,
    rows: HashMap<TlsRowKey, u64>,
    rows_dropped: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TlsRowKey {
    result_type: String,
    receiving_mx_hostname: Option<String>,
    receiving_ip: Option<String>,
    sending_mta_ip: Option<String>,
    failure_reason_code: Option<String>,
}

/// Accumulates reports; [`finish`](Self::finish) gives the result.
#[derive(Debug)]
pub struct Analysis {
    cfg: AnalysisConfig,
    names: Shared,
    domains: BTreeMap<String, DomainAcc>,
    tls: BTreeMap<String, TlsAcc>,
    reports: Vec<ReportInfo>,
    seen: FxHashMap<ReportKey, String>,
    filtered: u64,
}

impl Analysis {
    /// An empty analysis.
    pub fn new(cfg: AnalysisConfig) -> Analysis {
        Analysis {
            cfg,
            names: Shared::default(),
            domains: BTreeMap::new(),
            tls: BTreeMap::new(),
            reports: Vec::new(),
            seen: FxHashMap::default(),
            filtered: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AnalysisConfig {
        &self.cfg
    }

    /// Where a report with this key was first read, when it was.
    pub fn first_seen(&self, key: &ReportKey) -> Option<&str> {
        self.seen.get(key).map(String::as_str)
    }

    /// Counts a report left out by the domain or time filter.
    pub fn filtered(&mut self) {
        self.filtered += 1;
    }

    /// A per-report accumulator for the records of `h`.
    pub fn start_dmarc(&self, h: &ReportHeader) -> ReportAcc {
        let reporter = self.names.borrow_mut().id(&reporter_name(h));
        ReportAcc {
            names: self.names.clone(),
            reporter,
            scratch: String::new(),
            sources: FxHashMap::default(),
            dispositions: Tallies::default(),
            records: 0,
            messages: 0,
            authorized: 0,
            failing: 0,
        }
    }

    /// Lists a report that was not counted (a duplicate).
    pub fn add_uncounted(&mut self, info: ReportInfo) {
        self.reports.push(info);
    }

    /// Folds a completely read aggregate report in.
    pub fn add_dmarc(&mut self, h: &ReportHeader, acc: ReportAcc, mut info: ReportInfo) {
        self.seen.insert(h.key(), info.source.clone());
        info.status = ReportStatus::Counted;
        let max_sources = self.cfg.max_sources.max(1);
        let d = self.domains.entry(h.policy.domain.clone()).or_default();
        d.reports += 1;
        *d.reporters.entry(reporter_name(h)).or_default() += 1;
        let (b, e) = (h.metadata.begin, h.metadata.end);
        if b > 0 {
            d.begin = Some(d.begin.map_or(b, |x| x.min(b)));
        }
        if e > 0 {
            d.end = Some(d.end.map_or(e, |x| x.max(e)));
        }
        if d.policy.as_ref().is_none_or(|(end, _)| e >= *end) {
            d.policy = Some((e, h.policy.clone()));
        }
        d.messages = d.messages.saturating_add(acc.messages);
        d.authorized = d.authorized.saturating_add(acc.authorized);
        d.failing = d.failing.saturating_add(acc.failing);
        d.dispositions.merge(&acc.dispositions);
        let day = if b > 0 {
            d.days.entry(b.div_euclid(86_400)).or_default()
        } else {
            &mut d.no_date
        };
        day.messages = day.messages.saturating_add(acc.messages);
        day.authorized = day.authorized.saturating_add(acc.authorized);
        day.failing = day.failing.saturating_add(acc.failing);
        for (key, src) in acc.sources {
            if let Some(existing) = d.sources.get_mut(&key) {
                existing.merge(&src);
            } else if d.sources.len() < max_sources {
                d.sources.insert(key, src);
            } else {
                let other = SourceKey::Text(self.names.borrow_mut().id(OTHER_SOURCES));
                d.sources.entry((other, key.1)).or_default().merge(&src);
            }
        }
        self.reports.push(info);
    }

    /// Whether a TLS report is wanted (its range; domains are filtered per policy).
    pub fn wants_tls(&self, r: &TlsReport) -> bool {
        self.cfg.wants_range(r.begin, r.end)
            && r.policies.iter().any(|p| self.cfg.wants_domain(&p.policy_domain))
    }

    /// Folds a TLS report in (its wanted policies).
    pub fn add_tls(&mut self, r: &TlsReport, mut info: ReportInfo) {
        self.seen.insert(r.key(), info.source.clone());
        info.status = ReportStatus::Counted;
        let org = if r.organization_name.is_empty() {
            r.contact_info.clone()
        } else {
            r.organization_name.clone()
        };
        for p in &r.policies {
            if !self.cfg.wants_domain(&p.policy_domain) {
                continue;
            }
            let t = self.tls.entry(p.policy_domain.clone()).or_default();
            t.reports += 1;
            *t.reporters.entry(org.clone()).or_default() += 1;
            if r.begin > 0 {
                t.begin = Some(t.begin.map_or(r.begin, |x| x.min(r.begin)));
            }
            if r.end > 0 {
                t.end = Some(t.end.map_or(r.end, |x| x.max(r.end)));
            }
            *t.policy_types.entry(p.policy_type.clone()).or_default() += 1;
            t.successful = t.successful.saturating_add(p.successful);
            t.failed = t.failed.saturating_add(p.failed);
            for f in &p.failure_details {
                *t.failure_types.entry(f.result_type.clone()).or_default() += f.failed_sessions;
                let key = TlsRowKey {
                    result_type: f.result_type.clone(),
                    receiving_mx_hostname: f.receiving_mx_hostname.clone(),
                    receiving_ip: f.receiving_ip.clone(),
                    sending_mta_ip: f.sending_mta_ip.clone(),
                    failure_reason_code: f.failure_reason_code.clone(),
                };
                if let Some(n) = t.rows.get_mut(&key) {
                    *n = n.saturating_add(f.failed_sessions);
                } else if t.rows.len() < MAX_TLS_ROWS {
                    t.rows.insert(key, f.failed_sessions);
                } else {
                    t.rows_dropped = t.rows_dropped.saturating_add(f.failed_sessions);
                }
            }
        }
        self.reports.push(info);
    }

    /// The result.
    pub fn finish(self) -> DmarcAnalysis {
        let names = self.names.borrow();
        let mut totals = Totals {
            filtered: self.filtered,
            ..Totals::default()
        };
        for r in &self.reports {
            match (&r.status, r.kind) {
                (ReportStatus::Duplicate { .. }, _) => totals.duplicates += 1,
                (ReportStatus::Counted, "tls") => totals.tls_reports += 1,
                (ReportStatus::Counted, _) => {
                    totals.reports += 1;
                    totals.records += r.records;
                }
            }
            if r.status == ReportStatus::Counted && r.notes.iter().any(|n| n.kind.is_repair()) {
                totals.repaired += 1;
            }
        }
        let mut domains = Vec::new();
        for (domain, d) in self.domains {
            totals.messages = totals.messages.saturating_add(d.messages);
            totals.authorized = totals.authorized.saturating_add(d.authorized);
            totals.failing = totals.failing.saturating_add(d.failing);
            let mut failing_sources = Vec::new();
            let mut authorized_sources = Vec::new();
            for ((key, pass), s) in d.sources {
                let source_ip = match key {
                    SourceKey::Ip(ip) => ip.to_string(),
                    SourceKey::Text(id) => names.name(id).to_string(),
                };
                let row = SourceRow {
                    source_ip,
                    reverse_name: None,
                    dmarc: if pass { "pass" } else { "fail" },
                    messages: s.messages,
                    records: s.records,
                    spf: s.t.rows(F_SPF, &names),
                    spf_aligned: s.spf_aligned,
                    dkim: s.t.rows(F_DKIM, &names),
                    dkim_aligned: s.dkim_aligned,
                    dispositions: s.t.rows(F_DISPOSITION, &names),
                    header_from: s.t.rows(F_HEADER_FROM, &names),
                    envelope_from: s.t.rows(F_ENVELOPE_FROM, &names),
                    dkim_domains: s.t.rows(F_DKIM_DOMAINS, &names),
                    spf_domains: s.t.rows(F_SPF_DOMAINS, &names),
                    reporters: s.t.rows(F_REPORTERS, &names),
                    reasons: s.t.rows(F_REASONS, &names),
                };
                if pass {
                    authorized_sources.push(row);
                } else {
                    failing_sources.push(row);
                }
            }
            let order = |a: &SourceRow, b: &SourceRow| {
                b.messages
                    .cmp(&a.messages)
                    .then_with(|| a.source_ip.cmp(&b.source_ip))
            };
            failing_sources.sort_by(order);
            authorized_sources.sort_by(order);
            let mut days: Vec<DayRow> = d
                .days
                .iter()
                .map(|(day, a)| DayRow {
                    date: day_name(*day),
                    messages: a.messages,
                    authorized: a.authorized,
                    failing: a.failing,
                })
                .collect();
            if d.no_date.messages > 0 {
                days.push(DayRow {
                    date: "(no date)".into(),
                    messages: d.no_date.messages,
                    authorized: d.no_date.authorized,
                    failing: d.no_date.failing,
                });
            }
            let mut reporters: Vec<Count> = d
                .reporters
                .into_iter()
                .map(|(value, count)| Count {
                    value: Arc::from(value),
                    count,
                })
                .collect();
            reporters.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            domains.push(DomainReport {
                domain,
                policy: d.policy.map(|(_, p)| p),
                reports: d.reports,
                reporters,
                begin: d.begin,
                end: d.end,
                messages: d.messages,
                authorized: d.authorized,
                failing: d.failing,
                dispositions: d.dispositions.rows(F_DISPOSITION, &names),
                failing_sources,
                authorized_sources,
                days,
            });
        }
        // Domains with the most failing mail first.
        domains.sort_by(|a, b| {
            b.failing
                .cmp(&a.failing)
                .then_with(|| b.messages.cmp(&a.messages))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        let mut tls = Vec::new();
        for (domain, t) in self.tls {
            let mut failure_types: Vec<Count> = t
                .failure_types
                .into_iter()
                .map(|(value, count)| Count {
                    value: Arc::from(value),
                    count,
                })
                .collect();
            failure_types.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            let mut failures: Vec<TlsFailureRow> = t
                .rows
                .into_iter()
                .map(|(k, sessions)| TlsFailureRow {
                    result_type: k.result_type,
                    receiving_mx_hostname: k.receiving_mx_hostname,
                    receiving_ip: k.receiving_ip,
                    sending_mta_ip: k.sending_mta_ip,
                    failure_reason_code: k.failure_reason_code,
                    sessions,
                })
                .collect();
            failures.sort_by(|a, b| {
                b.sessions
                    .cmp(&a.sessions)
                    .then_with(|| a.result_type.cmp(&b.result_type))
                    .then_with(|| a.receiving_mx_hostname.cmp(&b.receiving_mx_hostname))
                    .then_with(|| a.sending_mta_ip.cmp(&b.sending_mta_ip))
            });
            let mut reporters: Vec<Count> = t
                .reporters
                .into_iter()
                .map(|(value, count)| Count {
                    value: Arc::from(value),
                    count,
                })
                .collect();
            reporters.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            tls.push(TlsDomainReport {
                policy_domain: domain,
                reports: t.reports,
                reporters,
                begin: t.begin,
                end: t.end,
                policy_types: t
                    .policy_types
                    .into_iter()
                    .map(|(value, count)| Count {
                        value: Arc::from(value),
                        count,
                    })
                    .collect(),
                successful: t.successful,
                failed: t.failed,
                failure_types,
                failures,
                failures_not_itemized: t.rows_dropped,
            });
        }
        tls.sort_by(|a, b| {
            b.failed
                .cmp(&a.failed)
                .then_with(|| a.policy_domain.cmp(&b.policy_domain))
        });
        drop(names);
        DmarcAnalysis {
            totals,
            domains,
            tls,
            reports: self.reports,
        }
    }
}

/// The organisation of a report for people (its address when unnamed).
pub fn reporter_name(h: &ReportHeader) -> String {
    if h.metadata.org_name.is_empty() {
        if h.metadata.email.is_empty() {
            "(unnamed)".to_owned()
        } else {
            h.metadata.email.clone()
        }
    } else {
        h.metadata.org_name.clone()
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn day_name(day: i64) -> String {
    match jiff::Timestamp::from_second(day.saturating_mul(86_400)) {
        Ok(ts) => ts.strftime("%Y-%m-%d").to_string(),
        Err(_) => format!("day {day}"),
    }
}

/// Overall figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Aggregate reports counted.
    pub reports: u64,
    /// TLS reports counted.
    pub tls_reports: u64,
    /// Reports read again (not counted twice).
    pub duplicates: u64,
    /// Reports left out by --domain/--since/--until.
    pub filtered: u64,
    /// Counted reports with at least one repair (see [`super::NoteKind::is_repair`]).
    pub repaired: u64,
    /// Records of the counted aggregate reports.
    pub records: u64,
    /// Messages.
    pub messages: u64,
    /// Messages passing DMARC.
    pub authorized: u64,
    /// Messages failing DMARC.
    pub failing: u64,
}

/// The result of an analysis.
#[derive(Clone, Debug, Serialize)]
pub struct DmarcAnalysis {
    /// Overall figures.
    pub totals: Totals,
    /// Per policy domain, most failing mail first.
    pub domains: Vec<DomainReport>,
    /// Per TLS policy domain, most failed sessions first.
    pub tls: Vec<TlsDomainReport>,
    /// Every report read, in reading order.
    pub reports: Vec<ReportInfo>,
}

impl DmarcAnalysis {
    /// Distinct source addresses (for reverse lookups), most messages first.
    pub fn source_ips(&self) -> Vec<String> {
        let mut by: HashMap<&str, u64> = HashMap::new();
        for d in &self.domains {
            for s in d.failing_sources.iter().chain(&d.authorized_sources) {
                *by.entry(s.source_ip.as_str()).or_default() += s.messages;
            }
        }
        let mut v: Vec<(&str, u64)> = by.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter().map(|(ip, _)| ip.to_owned()).collect()
    }

    /// Fills in reverse names.
    pub fn set_reverse_names(&mut self, names: &HashMap<String, String>) {
        for d in &mut self.domains {
            for s in d
                .failing_sources
                .iter_mut()
                .chain(d.authorized_sources.iter_mut())
            {
                s.reverse_name = names.get(&s.source_ip).cloned();
            }
        }
    }
}

/// One policy domain.
#[derive(Clone, Debug, Serialize)]
pub struct DomainReport {
    /// The domain.
    pub domain: String,
    /// The policy in the newest report.
    pub policy: Option<PolicyPublished>,
    /// Reports about it.
    pub reports: u64,
    /// Reporting organisations and their report counts.
    pub reporters: Vec<Count>,
    /// Earliest range begin.
    pub begin: Option<i64>,
    /// Latest range end.
    pub end: Option<i64>,
    /// Messages.
    pub messages: u64,
    /// Messages passing DMARC.
    pub authorized: u64,
    /// Messages failing DMARC.
    pub failing: u64,
    /// Dispositions applied, by messages.
    pub dispositions: Vec<Count>,
    /// Sources whose messages failed DMARC, most messages first.
    pub failing_sources: Vec<SourceRow>,
    /// Sources whose messages passed DMARC, most messages first.
    pub authorized_sources: Vec<SourceRow>,
    /// Messages per day (UTC, by report begin).
    pub days: Vec<DayRow>,
}

/// One source sending as a domain, with one DMARC outcome.
#[derive(Clone, Debug, Serialize)]
pub struct SourceRow {
    /// The address.
    pub source_ip: String,
    /// Its reverse name, when looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_name: Option<String>,
    /// `pass` or `fail`.
    pub dmarc: &'static str,
    /// Messages.
    pub messages: u64,
    /// Records.
    pub records: u64,
    /// SPF results (envelope sender), by messages.
    pub spf: Vec<Count>,
    /// Messages with an aligned SPF pass.
    pub spf_aligned: u64,
    /// DKIM results (best signature), by messages.
    pub dkim: Vec<Count>,
    /// Messages with an aligned DKIM pass.
    pub dkim_aligned: u64,
    /// Dispositions applied.
    pub dispositions: Vec<Count>,
    /// `From:` domains.
    pub header_from: Vec<Count>,
    /// Envelope sender domains.
    pub envelope_from: Vec<Count>,
    /// DKIM `domain=result`.
    pub dkim_domains: Vec<Count>,
    /// SPF `domain=result`.
    pub spf_domains: Vec<Count>,
    /// Reporting organisations, by messages.
    pub reporters: Vec<Count>,
    /// Policy override reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Count>,
}

/// Messages of one day.
#[derive(Clone, Debug, Serialize)]
pub struct DayRow {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Messages.
    pub messages: u64,
    /// Passing DMARC.
    pub authorized: u64,
    /// Failing DMARC.
    pub failing: u64,
}

/// One TLS policy domain.
#[derive(Clone, Debug, Serialize)]
pub struct TlsDomainReport {
    /// The policy domain.
    pub policy_domain: String,
    /// Reports about it.
    pub reports: u64,
    /// Reporting organisations.
    pub reporters: Vec<Count>,
    /// Earliest range begin.
    pub begin: Option<i64>,
    /// Latest range end.
    pub end: Option<i64>,
    /// Policy types seen (sts, tlsa, no-policy-found), by reports.
    pub policy_types: Vec<Count>,
    /// Successful sessions.
    pub successful: u64,
    /// Failed sessions.
    pub failed: u64,
    /// Failed sessions per result type.
    pub failure_types: Vec<Count>,
    /// Failed sessions per (type, MX, IPs, code), most first.
    pub failures: Vec<TlsFailureRow>,
    /// Failed sessions beyond the row limit (in `failure_types`, not itemized).
    pub failures_not_itemized: u64,
}

/// Failed TLS sessions of one kind between one sender and one MX.
#[derive(Clone, Debug, Serialize)]
pub struct TlsFailureRow {
    /// `result-type`.
    pub result_type: String,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<String>,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<String>,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
    /// Failed sessions.
    pub sessions: u64,
}
