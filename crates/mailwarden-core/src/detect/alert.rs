//! Alerts and the episodes behind them.
//!
//! A rule that fires opens an *episode* for its group key (an address, an
//! account, a host…). Matching events for the same rule and key extend the
//! open episode — its count, last time, evidence and facts grow — instead of
//! raising a new alert. The episode closes when the rule's `quiet` period of
//! event time passes without a match (or at the end of the input), and
//! becomes one [`Alert`]: "203.0.113.5 failed 412 logins between 02:14 and
//! 03:40", not 41 alerts of ten failures each.
//!
//! Alerts are plain values (serde) so that stores and sinks can keep and send
//! them. Everything an alert holds is bounded: evidence entries
//! ([`BookConfig::max_evidence`]), sample line length, facts per name.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::catalog::AlertSeverity;
use crate::event::Position;
use crate::time::Timestamp;

/// Longest sample line kept in evidence, in bytes.
pub const MAX_SAMPLE_BYTES: usize = 512;
/// Most distinct values kept per fact name.
pub const MAX_FACT_VALUES: usize = 20;
/// Most distinct values a distinct-count alert counts exactly (beyond it,
/// every new-looking value counts).
pub(crate) const MAX_DISTINCT: usize = 10_000;

/// What a piece of evidence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A log line: `text` is the line as read (cut at [`MAX_SAMPLE_BYTES`]).
    Line,
    /// A stitched message: `position` is its first line, `text` a summary.
    Message,
}

/// One piece of evidence: where it is, when, and a sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Line or message.
    pub kind: EvidenceKind,
    /// The input (as the caller numbered them) and line.
    pub position: Position,
    /// A display name for `position` set by the caller that knows the inputs
    /// (`/var/log/mail.log:1234`, `store:2023-03-14#5678`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
    /// The line, or a summary of the message; `None` when not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Evidence {
    /// Evidence for a log line (the text is cut at [`MAX_SAMPLE_BYTES`]).
    pub fn line(position: Position, ts: Timestamp, raw: &str) -> Evidence {
        Evidence {
            kind: EvidenceKind::Line,
            position,
            at: None,
            ts: Some(ts),
            text: Some(cut(raw, MAX_SAMPLE_BYTES).to_owned()),
        }
    }

    /// Evidence for a position whose text is not kept.
    pub fn position(position: Position, ts: Option<Timestamp>) -> Evidence {
        Evidence {
            kind: EvidenceKind::Line,
            position,
            at: None,
            ts,
            text: None,
        }
    }

    /// Evidence for a stitched message.
    pub fn message(position: Position, ts: Option<Timestamp>, summary: String) -> Evidence {
        Evidence {
            kind: EvidenceKind::Message,
            position,
            at: None,
            ts,
            text: Some(cut(&summary, MAX_SAMPLE_BYTES).to_owned()),
        }
    }
}

/// Where a sample text lives in the [`Arena`]; [`TextRef::NONE`] for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TextRef {
    chunk: u64,
    off: u32,
    len: u32,
}

impl TextRef {
    pub(crate) const NONE: TextRef = TextRef {
        chunk: u64::MAX,
        off: 0,
        len: 0,
    };
}

/// A piece of evidence as the rules keep it before an alert opens: compact
/// and `Copy`, its text in the [`Arena`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) kind: EvidenceKind,
    pub(crate) pos: Position,
    pub(crate) ts: Timestamp,
    pub(crate) text: TextRef,
}

/// Sample texts of recent events, in a bounded ring of chunks: windows keep
/// a 16-byte reference per event instead of a copy of its line. When the
/// ring wraps, the oldest texts are gone and their evidence keeps only its
/// position (`file:line`), which still finds the line.
#[derive(Debug)]
pub(crate) struct Arena {
    chunks: std::collections::VecDeque<String>,
    /// Id of `chunks[0]`.
    base: u64,
    max_chunks: usize,
}

impl Arena {
    const CHUNK: usize = 64 * 1024;

    /// A ring of `bytes` (at least one chunk of 64 KiB).
    pub(crate) fn new(bytes: usize) -> Arena {
        Arena {
            chunks: std::collections::VecDeque::new(),
            base: 0,
            max_chunks: (bytes / Arena::CHUNK).max(1),
        }
    }

    /// Keeps `s` (cut at [`MAX_SAMPLE_BYTES`]).
    pub(crate) fn store(&mut self, s: &str) -> TextRef {
        let s = cut(s, MAX_SAMPLE_BYTES);
        let full = self
            .chunks
            .back()
            .is_none_or(|c| c.len() + s.len() > Arena::CHUNK);
        if full {
            if self.chunks.len() >= self.max_chunks
                && let Some(mut old) = self.chunks.pop_front()
            {
                self.base += 1;
                old.clear();
                self.chunks.push_back(old);
            } else {
                self.chunks.push_back(String::with_capacity(Arena::CHUNK));
            }
        }
        let id = self.base + self.chunks.len() as u64 - 1;
        let Some(c) = self.chunks.back_mut() else {
            return TextRef::NONE;
        };
        let off = c.len() as u32;
        c.push_str(s);
        TextRef {
            chunk: id,
            off,
            len: s.len() as u32,
        }
    }

    /// The text, if it is still in the ring.
    pub(crate) fn get(&self, r: TextRef) -> Option<&str> {
        if r == TextRef::NONE || r.chunk < self.base {
            return None;
        }
        let c = self.chunks.get(usize::try_from(r.chunk - self.base).ok()?)?;
        c.get(r.off as usize..r.off as usize + r.len as usize)
    }

    /// The evidence a sample stands for.
    pub(crate) fn evidence(&self, s: &Sample) -> Evidence {
        Evidence {
            kind: s.kind,
            position: s.pos,
            at: None,
            ts: Some(s.ts),
            text: self.get(s.text).map(str::to_owned),
        }
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An alert: one closed (or, for live consumers, just opened) episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's stable id.
    pub rule: String,
    /// The rule's title.
    pub title: String,
    /// Severity.
    pub severity: AlertSeverity,
    /// MITRE ATT&CK technique ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<String>,
    /// The group key (`ip=203.0.113.5`, `user=alice@example.org`, …).
    pub key: String,
    /// Time of the first event of the episode.
    pub first: Timestamp,
    /// Time of the last event of the episode.
    pub last: Timestamp,
    /// Matching events (failures, recipients, messages …) in the episode.
    pub count: u64,
    /// What happened, for people.
    pub message: String,
    /// Distinct values seen in the episode (`user`, `service`, `ip`, …),
    /// at most [`MAX_FACT_VALUES`] each, in first-seen order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Vec<String>>,
    /// Where to look: the first entries of the episode.
    pub evidence: Vec<Evidence>,
    /// Evidence entries the episode had beyond those kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub evidence_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Limits of the episode book.
#[derive(Clone, Copy, Debug)]
pub struct BookConfig {
    /// Evidence entries kept per alert.
    pub max_evidence: usize,
    /// Episodes open at once; beyond it the least recently extended closes early.
    pub max_open: usize,
    /// Keep a copy of every alert when it opens (for live sinks).
    pub report_opened: bool,
}

#[derive(Debug)]
struct Episode {
    alert: Alert,
    /// Fact values beyond those kept, per name.
    fact_overflow: BTreeMap<String, u64>,
    /// For distinct-count rules: the values counted so far (the count is
    /// their number), up to [`MAX_DISTINCT`].
    distinct: Option<rustc_hash::FxHashSet<Box<str>>>,
    last_micros: i64,
    quiet_micros: i64,
    seq: u64,
}

/// A fact to record with a hit: name and value.
pub(crate) type Fact<'a> = (&'static str, &'a str);

/// What the book knows of a rule: what its alerts say, and its quiet period.
/// The engine's rule table holds the built-ins, then the user rules.
#[derive(Clone, Debug)]
pub(crate) struct RuleMeta {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) severity: AlertSeverity,
    pub(crate) attack: Vec<String>,
    /// Seconds without a match after which an episode closes.
    pub(crate) quiet_secs: i64,
}

/// The open episodes of every rule, and the alerts ready to hand out.
#[derive(Debug)]
pub(crate) struct Book {
    cfg: BookConfig,
    rules: Vec<RuleMeta>,
    open: Vec<FxHashMap<Box<str>, Episode>>,
    open_count: usize,
    seq: u64,
    closed: Vec<Alert>,
    opened: Vec<Alert>,
    quiet_micros: Vec<i64>,
    pub(crate) opened_total: u64,
    pub(crate) closed_early: u64,
}

impl Book {
    /// A book for the rules of `rules` (numbered by their index).
    pub(crate) fn new(cfg: BookConfig, rules: Vec<RuleMeta>) -> Book {
        Book {
            cfg,
            open: rules.iter().map(|_| FxHashMap::default()).collect(),
            open_count: 0,
            seq: 0,
            closed: Vec::new(),
            opened: Vec::new(),
            quiet_micros: rules
                .iter()
                .map(|r| r.quiet_secs.saturating_mul(1_000_000))
                .collect(),
            rules,
            opened_total: 0,
            closed_early: 0,
        }
    }

    /// Whether `rule` has an open episode for `key` that an event at `ts`
    /// belongs to. An episode whose quiet period lies between it and `ts`
    /// (later, or earlier for out-of-order input) is closed first: the event
    /// starts a new count.
    pub(crate) fn active(&mut self, rule: usize, key: &str, ts: Timestamp) -> bool {
        let Some(ep) = self.open[rule].get(key) else {
            return false;
        };
        let t = ts.unix_micros;
        let stale = t > ep.last_micros.saturating_add(ep.quiet_micros)
            || t < ep.alert.first.unix_micros.saturating_sub(ep.quiet_micros);
        if stale {
            self.close(rule, key, None);
            return false;
        }
        true
    }

    /// Extends the open episode of `rule` for `key`, if there is one.
    pub(crate) fn extend(
        &mut self,
        rule: usize,
        key: &str,
        ts: Timestamp,
        weight: u64,
        evidence: impl FnOnce() -> Evidence,
        facts: &[Fact<'_>],
    ) -> bool {
        let max_evidence = self.cfg.max_evidence;
        let Some(ep) = self.open[rule].get_mut(key) else {
            return false;
        };
        let t = ts.unix_micros;
        if t > ep.last_micros {
            ep.last_micros = t;
            ep.alert.last = ts;
        }
        if t < ep.alert.first.unix_micros {
            ep.alert.first = ts;
        }
        ep.alert.count = ep.alert.count.saturating_add(weight);
        if ep.alert.evidence.len() < max_evidence {
            push_evidence(&mut ep.alert, evidence(), max_evidence);
        } else {
            ep.alert.evidence_omitted += 1;
        }
        add_facts(ep, facts);
        true
    }

    /// Opens an episode of `rule` for `key` (or extends the open one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        &mut self,
        rule: usize,
        key: &str,
        first: Timestamp,
        last: Timestamp,
        count: u64,
        message: String,
        evidence: Vec<Evidence>,
        facts: &[Fact<'_>],
    ) {
        if let Some(ep) = self.open[rule].get_mut(key) {
            ep.last_micros = ep.last_micros.max(last.unix_micros);
            if last > ep.alert.last {
                ep.alert.last = last;
            }
            ep.alert.count = ep.alert.count.saturating_add(count);
            for e in evidence {
                push_evidence(&mut ep.alert, e, self.cfg.max_evidence);
            }
            add_facts(ep, facts);
            return;
        }
        if self.open_count >= self.cfg.max_open {
            self.close_oldest();
        }
        let info = &self.rules[rule];
        let mut alert = Alert {
            rule: info.id.clone(),
            title: info.title.clone(),
            severity: info.severity,
            attack: info.attack.clone(),
            key: key.to_owned(),
            first,
            last,
            count,
            message,
            facts: BTreeMap::new(),
            evidence: Vec::new(),
            evidence_omitted: 0,
        };
        // More than fit: the first ones (how it started) and the last ones
        // (what made it fire).
        let max = self.cfg.max_evidence;
        let mut evidence = evidence;
        if evidence.len() > max {
            let tail = max / 2;
            let head = max - tail;
            alert.evidence_omitted = (evidence.len() - max) as u64;
            evidence.drain(head..evidence.len() - tail);
        }
        for e in evidence {
            push_evidence(&mut alert, e, max);
        }
        self.seq += 1;
        let mut ep = Episode {
            alert,
            fact_overflow: BTreeMap::new(),
            distinct: None,
            last_micros: last.unix_micros,
            quiet_micros: self.quiet_micros[rule],
            seq: self.seq,
        };
        add_facts(&mut ep, facts);
        if self.cfg.report_opened {
            self.opened.push(ep.alert.clone());
        }
        self.open[rule].insert(key.into(), ep);
        self.open_count += 1;
        self.opened_total += 1;
    }

    /// Makes the open episode of `rule` for `key` count distinct values,
    /// starting with `values`.
    pub(crate) fn count_distinct<'v>(
        &mut self,
        rule: usize,
        key: &str,
        values: impl Iterator<Item = &'v str>,
    ) {
        if let Some(ep) = self.open[rule].get_mut(key) {
            let set: rustc_hash::FxHashSet<Box<str>> = values.take(MAX_DISTINCT).map(Into::into).collect();
            ep.alert.count = set.len() as u64;
            ep.distinct = Some(set);
        }
    }

    /// Extends the open episode of a distinct-count rule: the count grows
    /// only when `value` is new to it.
    pub(crate) fn extend_distinct(
        &mut self,
        rule: usize,
        key: &str,
        value: &str,
        ts: Timestamp,
        evidence: impl FnOnce() -> Evidence,
        facts: &[Fact<'_>],
    ) {
        let new = match self.open[rule].get_mut(key).and_then(|ep| ep.distinct.as_mut()) {
            Some(set) if set.contains(value) => false,
            Some(set) => {
                if set.len() < MAX_DISTINCT {
                    set.insert(value.into());
                }
                true
            }
            None => true,
        };
        self.extend(rule, key, ts, u64::from(new), evidence, facts);
    }

    /// Extends the open episode of `rule` for `key` to `ts` and raises its
    /// count to `count` if that is higher (gauges: queue size, minutes silent).
    pub(crate) fn raise(&mut self, rule: usize, key: &str, ts: Timestamp, count: u64) -> bool {
        let Some(ep) = self.open[rule].get_mut(key) else {
            return false;
        };
        if ts.unix_micros > ep.last_micros {
            ep.last_micros = ts.unix_micros;
            ep.alert.last = ts;
        }
        ep.alert.count = ep.alert.count.max(count);
        true
    }

    /// Closes the open episode of `rule` for `key` now (absence rules close
    /// when the source is back).
    pub(crate) fn close(&mut self, rule: usize, key: &str, at: Option<Timestamp>) {
        if let Some(mut ep) = self.open[rule].remove(key) {
            if let Some(t) = at
                && t.unix_micros > ep.alert.last.unix_micros
            {
                ep.alert.last = t;
            }
            self.open_count -= 1;
            self.closed.push(finish(ep));
        }
    }

    /// Closes episodes whose quiet period has passed at `now`.
    pub(crate) fn close_quiet(&mut self, now: i64) {
        if self.open_count == 0 {
            return;
        }
        let mut batch: Vec<Alert> = Vec::new();
        for map in &mut self.open {
            batch.extend(
                map.extract_if(|_, ep| ep.last_micros.saturating_add(ep.quiet_micros) < now)
                    .map(|(_, ep)| finish(ep)),
            );
        }
        self.open_count -= batch.len();
        // Hash order must not leak into the output.
        sort_alerts(&mut batch);
        self.closed.extend(batch);
    }

    /// Closes every open episode (end of input).
    pub(crate) fn close_all(&mut self) {
        let mut batch: Vec<Alert> = Vec::new();
        for map in &mut self.open {
            batch.extend(map.drain().map(|(_, ep)| finish(ep)));
        }
        self.open_count = 0;
        sort_alerts(&mut batch);
        self.closed.extend(batch);
    }

    fn close_oldest(&mut self) {
        let mut oldest: Option<(i64, u64, usize, Box<str>)> = None;
        for (rule, map) in self.open.iter().enumerate() {
            for (k, ep) in map {
                let cand = (ep.last_micros, ep.seq);
                if oldest.as_ref().is_none_or(|o| cand < (o.0, o.1)) {
                    oldest = Some((cand.0, cand.1, rule, k.clone()));
                }
            }
        }
        if let Some((_, _, rule, key)) = oldest {
            self.close(rule, &key, None);
            self.closed_early += 1;
        }
    }

    pub(crate) fn take_closed(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.closed)
    }

    pub(crate) fn take_opened(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.opened)
    }

    pub(crate) fn open_count(&self) -> usize {
        self.open_count
    }
}

fn finish(mut ep: Episode) -> Alert {
    for (name, extra) in ep.fact_overflow {
        if let Some(v) = ep.alert.facts.get_mut(&name) {
            v.push(format!("… and {extra} more"));
        }
    }
    ep.alert
}

fn push_evidence(alert: &mut Alert, e: Evidence, max: usize) {
    if alert
        .evidence
        .iter()
        .any(|x| x.position == e.position && x.kind == e.kind)
    {
        return;
    }
    if alert.evidence.len() < max {
        alert.evidence.push(e);
    } else {
        alert.evidence_omitted += 1;
    }
}

fn add_facts(ep: &mut Episode, facts: &[Fact<'_>]) {
    for (name, value) in facts {
        if value.is_empty() {
            continue;
        }
        let list = ep.alert.facts.entry((*name).to_owned()).or_default();
        if list.iter().any(|v| v == value) {
            continue;
        }
        if list.len() < MAX_FACT_VALUES {
            list.push(cut(value, 256).to_owned());
        } else {
            *ep.fact_overflow.entry((*name).to_owned()).or_default() += 1;
        }
    }
}

/// Sorts alerts by first time, rule and key: the order output uses.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        a.first
            .cmp(&b.first)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.last.cmp(&b.last))
    });
}
