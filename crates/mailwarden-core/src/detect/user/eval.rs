//! Evaluation of compiled user rules: field conditions, selections, the
//! condition, and the rules' counting state in the engine.
//!
//! Each rule counts with the engine's own primitives ([`Threshold`],
//! [`DistinctCount`] over [`Keyed`](super::super::state::Keyed) state): the
//! same key cap, deterministic eviction, event time, episodes and evidence
//! as the built-in rules.

use std::borrow::Cow;
use std::sync::Arc;

use memchr::memmem::Finder;

use super::super::Cx;
use super::super::alert::{Book, Fact};
use super::super::primitive::{DistinctCount, Threshold, span_text};
use super::super::state::{Keyed, MICROS, lower};
use super::cond::Expr;
use super::fields::{EventView, Field, MsgView, Record, RuleSource};
use super::{RuleSet, UserRule};
use crate::event::Event;
use crate::stitch::MessageRecord;

/// How a numeric modifier compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// `*`/`?` wildcard pattern pieces (lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GlobTok {
    Lit(Box<str>),
    One,
    Star,
}

/// One value a field is compared with, compiled.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// Equal, ignoring ASCII case; numerically equal when `num` is set and
    /// the value is a number.
    Eq { text: Box<str>, num: Option<f64> },
    /// Equal with `*` and `?` wildcards, ignoring ASCII case.
    Glob(Vec<GlobTok>),
    /// Contains (lowercase needle; boxed: a finder is large).
    Contains(Box<Finder<'static>>),
    /// Starts with (lowercase).
    StartsWith(Box<str>),
    /// Ends with (lowercase).
    EndsWith(Box<str>),
    /// A regular expression (case-sensitive unless `(?i)`).
    Re(regex::Regex),
    /// An address inside the network.
    Cidr(ipnet::IpNet),
    /// A number compared with the value.
    Cmp(CmpOp, f64),
}

impl Pattern {
    /// Whether `raw` matches; `low` caches its lowercase form, made only
    /// for the patterns that search lowercase text.
    fn matches<'v>(&self, raw: &'v str, low: &mut Option<Cow<'v, str>>) -> bool {
        match self {
            Pattern::Eq { text, num } => {
                if let Some(n) = num
                    && let Ok(v) = raw.trim().parse::<f64>()
                {
                    return v == *n;
                }
                raw.eq_ignore_ascii_case(text)
            }
            Pattern::Glob(toks) => glob(toks, low.get_or_insert_with(|| lower(raw))),
            Pattern::Contains(f) => f.find(low.get_or_insert_with(|| lower(raw)).as_bytes()).is_some(),
            Pattern::StartsWith(p) => raw
                .as_bytes()
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes())),
            Pattern::EndsWith(p) => raw
                .len()
                .checked_sub(p.len())
                .and_then(|start| raw.as_bytes().get(start..))
                .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes())),
            Pattern::Re(re) => re.is_match(raw),
            Pattern::Cidr(net) => ip_of(raw).is_some_and(|ip| net.contains(&ip)),
            Pattern::Cmp(op, n) => match raw.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => match op {
                    CmpOp::Gt => v > *n,
                    CmpOp::Gte => v >= *n,
                    CmpOp::Lt => v < *n,
                    CmpOp::Lte => v <= *n,
                },
                _ => false,
            },
        }
    }
}

/// An address as logs write it (`192.0.2.1`, `[2001:db8::1]`,
/// `::ffff:192.0.2.1` counts as the IPv4 address).
fn ip_of(s: &str) -> Option<std::net::IpAddr> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = s.parse().ok()?;
    Some(match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    })
}

/// Wildcard match of lowercase text (`?` is one character).
fn glob(toks: &[GlobTok], s: &str) -> bool {
    let (mut t, mut i) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    let char_len = |i: usize| s[i..].chars().next().map_or(1, char::len_utf8);
    loop {
        if t < toks.len() {
            match &toks[t] {
                GlobTok::Star => {
                    back = Some((t + 1, i));
                    t += 1;
                    continue;
                }
                GlobTok::One if i < s.len() => {
                    i += char_len(i);
                    t += 1;
                    continue;
                }
                GlobTok::Lit(l) if s[i..].starts_with(&**l) => {
                    i += l.len();
                    t += 1;
                    continue;
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        match back {
            Some((bt, bi)) if bi < s.len() => {
                let ni = bi + char_len(bi);
                back = Some((bt, ni));
                t = bt;
                i = ni;
            }
            _ => return false,
        }
    }
}

/// What a field condition tests.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    /// Any value matches any pattern (`all`: every pattern matches a value).
    Match { patterns: Vec<Pattern>, all: bool },
    /// The field has a value (`exists: true`) or none.
    Exists(bool),
    /// The field has no value, or a value matching one of the patterns
    /// (`field: null` in a list of values).
    NullOr(Vec<Pattern>),
}

/// One `field|modifiers: values` entry.
#[derive(Clone, Debug)]
pub(crate) struct Cond {
    pub(crate) field: Field,
    pub(crate) test: Test,
}

impl Cond {
    /// Relative cost (see [`Field::cost`]); tests of the whole raw line and
    /// regular expressions cost more.
    pub(crate) fn cost(&self) -> u8 {
        let mut c = self.field.cost();
        if self.field.is_line() {
            c += 1;
        }
        if let Test::Match { patterns, .. } = &self.test
            && patterns.iter().any(|p| matches!(p, Pattern::Re(_)))
        {
            c += 1;
        }
        c
    }

    fn holds(&self, r: &impl Record) -> bool {
        let values = r.values(&self.field);
        match &self.test {
            Test::Exists(want) => values.is_empty() != *want,
            Test::NullOr(patterns) => values.is_empty() || any_match(patterns, &values),
            Test::Match { patterns, all: false } => any_match(patterns, &values),
            Test::Match { patterns, all: true } => patterns
                .iter()
                .all(|p| values.iter().any(|v| p.matches(v, &mut None))),
        }
    }
}

fn any_match(patterns: &[Pattern], values: &super::fields::Values<'_>) -> bool {
    values.iter().any(|v| {
        let mut low = None;
        patterns.iter().any(|p| p.matches(v, &mut low))
    })
}

/// A named selection: any of its alternatives, each a list of conditions
/// that must all hold (cheapest first).
#[derive(Clone, Debug)]
pub(crate) struct Selection {
    pub(crate) alts: Vec<Vec<Cond>>,
}

impl Selection {
    /// The cost to decide it, for ordering (see [`Expr::order_by`]).
    pub(crate) fn cost(&self) -> u8 {
        self.alts
            .iter()
            .map(|a| a.first().map_or(0, Cond::cost))
            .max()
            .unwrap_or(0)
    }

    fn holds(&self, r: &impl Record) -> bool {
        self.alts.iter().any(|alt| alt.iter().all(|c| c.holds(r)))
    }
}

/// A rule's detection: selections and the condition over them.
#[derive(Clone, Debug)]
pub(crate) struct Detection {
    pub(crate) selections: Vec<Selection>,
    pub(crate) expr: Expr,
    /// The event kinds the condition can hold for (a bit per kind, see
    /// [`kind_bit`]): events of other kinds skip the rule at once.
    pub(crate) kinds: u16,
}

/// Every kind.
pub(crate) const ALL_KINDS: u16 = u16::MAX;

/// The bit of a kind name (`postfix` …), or 0 for a name no event has.
pub(crate) fn kind_bit(name: &str) -> u16 {
    const KINDS: [&str; 9] = [
        "postfix",
        "dovecot",
        "rspamd",
        "amavis",
        "sogo",
        "nginx",
        "netfilter",
        "mariadb",
        "unparsed",
    ];
    KINDS
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .map_or(0, |i| 1 << i)
}

impl Selection {
    /// The kinds an alternative allows: those its `kind` conditions name
    /// (plain values, any of them), else every kind.
    fn kinds(&self) -> u16 {
        let mut mask = 0;
        for alt in &self.alts {
            let mut m = ALL_KINDS;
            for c in alt {
                if c.field != Field::Alias(super::fields::Alias::Kind) {
                    continue;
                }
                if let Test::Match { patterns, all: false } = &c.test
                    && patterns
                        .iter()
                        .all(|p| matches!(p, Pattern::Eq { num: None, .. }))
                {
                    let named = patterns.iter().fold(0, |acc, p| match p {
                        Pattern::Eq { text, .. } => acc | kind_bit(text),
                        _ => acc,
                    });
                    m &= named;
                }
            }
            mask |= m;
        }
        mask
    }
}

impl Expr {
    /// The kinds the expression can hold for, given each selection's.
    fn kinds(&self, sel: &[u16]) -> u16 {
        match self {
            Expr::Sel(i) => sel.get(*i).copied().unwrap_or(ALL_KINDS),
            // `not a` may hold for any kind.
            Expr::Not(_) => ALL_KINDS,
            Expr::And(v) => v.iter().fold(ALL_KINDS, |m, e| m & e.kinds(sel)),
            Expr::Or(v) | Expr::AtLeast(_, v) => v.iter().fold(0, |m, e| m | e.kinds(sel)),
        }
    }
}

impl Detection {
    /// A detection, with its kind filter worked out.
    pub(crate) fn new(selections: Vec<Selection>, expr: Expr) -> Detection {
        let sel: Vec<u16> = selections.iter().map(Selection::kinds).collect();
        let kinds = expr.kinds(&sel);
        Detection {
            selections,
            expr,
            kinds,
        }
    }

    /// Whether the record matches. `memo` is scratch space (one slot per
    /// selection: 0 not yet decided, 1 false, 2 true).
    pub(crate) fn matches(&self, r: &impl Record, memo: &mut Vec<u8>) -> bool {
        memo.clear();
        memo.resize(self.selections.len(), 0);
        self.expr.eval(&mut |i| match memo[i] {
            1 => false,
            2 => true,
            _ => {
                let v = self.selections[i].holds(r);
                memo[i] = if v { 2 } else { 1 };
                v
            }
        })
    }
}

/// A field the rule reads for its key, distinct count or facts.
#[derive(Clone, Debug)]
pub(crate) struct NamedField {
    /// The name as written.
    pub(crate) name: &'static str,
    pub(crate) field: Field,
}

/// Longest value of a group-by field kept in a key, in bytes.
const MAX_KEY_VALUE: usize = 200;
/// Most values of one list field counted by a distinct rule per record.
const MAX_DISTINCT_VALUES: usize = 100;

/// A user rule's counter.
#[derive(Debug)]
enum Counter {
    Threshold(Threshold),
    Distinct(DistinctCount),
}

/// The user rules inside the engine.
pub(crate) struct UserRules {
    set: Arc<RuleSet>,
    /// Engine number of the first user rule.
    base: usize,
    on: Vec<bool>,
    counters: Vec<Counter>,
    events: bool,
    messages: bool,
    memo: Vec<u8>,
    /// The top-level JSON keys any event rule reads.
    json_keys: Vec<Box<str>>,
}

impl std::fmt::Debug for UserRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRules")
            .field("rules", &self.set.len())
            .finish_non_exhaustive()
    }
}

impl UserRules {
    /// The rules of `set`, numbered from `base`; `on(n)` says whether engine
    /// rule `n` runs; `cap` is the key cap per rule.
    pub(crate) fn new(set: Arc<RuleSet>, base: usize, on: &dyn Fn(usize) -> bool, cap: usize) -> UserRules {
        let on: Vec<bool> = (0..set.len()).map(|i| on(base + i)).collect();
        let counters = set
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let span = r.timeframe_secs.saturating_mul(MICROS);
                if r.distinct.is_some() {
                    Counter::Distinct(DistinctCount {
                        rule: base + i,
                        need: usize::try_from(r.threshold).unwrap_or(usize::MAX),
                        span,
                        keys: Keyed::new(cap),
                    })
                } else {
                    Counter::Threshold(Threshold {
                        rule: base + i,
                        need: r.threshold,
                        span,
                        keys: Keyed::new(cap),
                    })
                }
            })
            .collect();
        let runs = |src: RuleSource| set.rules().iter().zip(&on).any(|(r, o)| *o && r.source == src);
        let mut json_keys: Vec<Box<str>> = Vec::new();
        for r in set.rules().iter().filter(|r| r.source == RuleSource::Events) {
            for k in r.json_keys() {
                if !json_keys.iter().any(|x| **x == *k) {
                    json_keys.push(k.into());
                }
            }
        }
        UserRules {
            json_keys,
            events: runs(RuleSource::Events),
            messages: runs(RuleSource::Messages),
            base,
            on,
            counters,
            set,
            memo: Vec::new(),
        }
    }

    /// The rules' ids, in engine order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.set.rules().iter().map(|r| r.id.as_str())
    }

    /// Whether any enabled rule reads stitched messages.
    pub(crate) fn wants_messages(&self) -> bool {
        self.messages
    }

    /// Runs the event rules over one event.
    pub(crate) fn on_event(&mut self, ev: &Event<'_>, cx: Cx<'_>, book: &mut Book) {
        if !self.events {
            return;
        }
        let view = EventView::new(ev, cx.raw, &self.json_keys);
        let kind = kind_bit(super::fields::kind_name(&ev.kind));
        for (i, rule) in self.set.rules().iter().enumerate() {
            if !self.on[i] || rule.source != RuleSource::Events || rule.detection.kinds & kind == 0 {
                continue;
            }
            if rule.detection.matches(&view, &mut self.memo) {
                hit(rule, &mut self.counters[i], &view, cx, book);
            }
        }
    }

    /// The message rules the record matches (numbers within the set).
    pub(crate) fn match_record(&mut self, rec: &MessageRecord) -> Vec<usize> {
        if !self.messages {
            return Vec::new();
        }
        let view = MsgView::new(rec);
        let mut out = Vec::new();
        for (i, rule) in self.set.rules().iter().enumerate() {
            if self.on[i]
                && rule.source == RuleSource::Messages
                && rule.detection.matches(&view, &mut self.memo)
            {
                out.push(i);
            }
        }
        out
    }

    /// Counts a record for the rules `matched` returned by
    /// [`UserRules::match_record`].
    pub(crate) fn on_record(&mut self, rec: &MessageRecord, matched: &[usize], cx: Cx<'_>, book: &mut Book) {
        let view = MsgView::new(rec);
        for &i in matched {
            if let (Some(rule), Some(counter)) = (self.set.rules().get(i), self.counters.get_mut(i)) {
                hit(rule, counter, &view, cx, book);
            }
        }
    }

    /// Drops state that expired before `now`.
    pub(crate) fn expire(&mut self, now: i64) {
        for c in &mut self.counters {
            match c {
                Counter::Threshold(t) => t.expire(now),
                Counter::Distinct(d) => d.expire(now),
            }
        }
    }

    /// Reports each rule's state size as `(engine rule number, keys, peak, evictions)`.
    pub(crate) fn state(&self, add: &mut dyn FnMut(usize, usize, usize, u64)) {
        for (i, c) in self.counters.iter().enumerate() {
            let (keys, peak, ev) = match c {
                Counter::Threshold(t) => (t.keys.len(), t.keys.peak, t.keys.evictions),
                Counter::Distinct(d) => (d.keys.len(), d.keys.peak, d.keys.evictions),
            };
            add(self.base + i, keys, peak, ev);
        }
    }
}

/// The group key of a record: `name=value` per group-by field (the values
/// of a list field joined by `,`; `-` when absent), or `*` without group-by.
fn key_of(rule: &UserRule, r: &impl Record) -> String {
    if rule.group_fields.is_empty() {
        return "*".to_owned();
    }
    let mut key = String::new();
    for (n, f) in rule.group_fields.iter().enumerate() {
        if n > 0 {
            key.push(' ');
        }
        key.push_str(f.name);
        key.push('=');
        let values = r.values(&f.field);
        if values.is_empty() {
            key.push('-');
            continue;
        }
        let start = key.len();
        for (k, v) in values.iter().enumerate() {
            if k > 0 {
                key.push(',');
            }
            key.push_str(v);
            if key.len() - start > MAX_KEY_VALUE {
                break;
            }
        }
        if key.len() - start > MAX_KEY_VALUE {
            let mut end = start + MAX_KEY_VALUE;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
            key.push('…');
        }
    }
    key
}

fn hit(rule: &UserRule, counter: &mut Counter, r: &impl Record, cx: Cx<'_>, book: &mut Book) {
    let key = key_of(rule, r);
    // Facts: the first value of each fact field.
    let fact_values: Vec<(&'static str, super::fields::Values<'_>)> = rule
        .fact_fields
        .iter()
        .map(|f| (f.name, r.values(&f.field)))
        .collect();
    let facts: Vec<Fact<'_>> = fact_values
        .iter()
        .filter_map(|(n, v)| v.iter().next().map(|s| (*n, s)))
        .collect();
    match counter {
        Counter::Threshold(t) => {
            let need = t.need;
            let noun = match rule.source {
                RuleSource::Events => "events",
                RuleSource::Messages => "messages",
            };
            t.hit(book, cx, &key, 1, cx.sample(), &facts, |sum| {
                let what = (need > 1).then(|| format!("{sum} matching {noun}"));
                alert_message(rule, &key, what)
            });
        }
        Counter::Distinct(d) => {
            let Some(df) = &rule.distinct_field else {
                return;
            };
            let values = r.values(&df.field);
            for v in values.iter().take(MAX_DISTINCT_VALUES) {
                if v.is_empty() {
                    continue;
                }
                d.hit(book, cx, &key, v, df.name, &facts, |vals| {
                    alert_message(rule, &key, Some(format!("{} distinct {}", vals.len(), df.name)))
                });
            }
        }
    }
}

/// `TITLE: WHAT within TIMEFRAME (KEY)`, or `TITLE (KEY)` when every match
/// alerts; made only when an alert opens.
fn alert_message(rule: &UserRule, key: &str, what: Option<String>) -> String {
    let mut m = rule.title.clone();
    if let Some(w) = what {
        m.push_str(&format!(": {w} within {}", span_text(rule.timeframe_secs)));
    }
    if key != "*" {
        m.push_str(&format!(" ({key})"));
    }
    m
}
