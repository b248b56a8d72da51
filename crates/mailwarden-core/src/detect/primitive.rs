//! The two rule shapes most built-ins share, over [`Keyed`] state:
//! a threshold in a sliding window with group-by ([`Threshold`]) and a
//! distinct count in a sliding window ([`DistinctCount`]). While a key has an
//! open alert, further matches extend it instead of being counted again; when
//! a key fires its window is cleared, so the next alert needs a full new
//! threshold.

use super::Cx;
use super::alert::{Book, Evidence, Fact, Sample};
use super::catalog::Params;
use super::state::{Distinct, Item, ItemFacts, Keyed, MICROS, Value, Window};

/// What a hit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    /// Counted toward the threshold; no alert yet.
    Counted,
    /// Reached the threshold: an alert opened.
    Opened,
    /// The key's alert was already open and was extended.
    Extended,
}

/// "At least N (weighted) events within S seconds, per key."
#[derive(Debug)]
pub(crate) struct Threshold {
    pub(crate) rule: usize,
    pub(crate) need: u64,
    pub(crate) span: i64,
    pub(crate) keys: Keyed<Window>,
}

/// The facts of a windowed event, their text kept in the arena (the first two).
fn item_facts(cx: &Cx<'_>, facts: &[Fact<'_>]) -> ItemFacts {
    let mut out: ItemFacts = [None, None];
    for (slot, (name, value)) in out.iter_mut().zip(facts.iter().filter(|(_, v)| !v.is_empty())) {
        *slot = Some((*name, cx.intern(value)));
    }
    out
}

/// Evidence and facts of the items of a window that fired.
fn resolve_items(cx: &Cx<'_>, items: &[Item]) -> (Vec<Evidence>, Vec<(&'static str, String)>) {
    let evidence = items.iter().map(|i| cx.resolve(&i.sample)).collect();
    let facts = items
        .iter()
        .flat_map(|i| i.facts.iter().flatten())
        .filter_map(|(name, r)| cx.text(*r).map(|t| (*name, t)))
        .collect();
    (evidence, facts)
}

impl Threshold {
    /// Reads `count_param` and `window` of `rule`.
    pub(crate) fn new(rule: usize, params: &Params, count_param: &str, cap: usize) -> Threshold {
        Threshold {
            rule,
            need: params.get(rule, count_param).max(1) as u64,
            span: params.get(rule, "window").saturating_mul(MICROS),
            keys: Keyed::new(cap),
        }
    }

    /// The window length in seconds.
    pub(crate) fn window_secs(&self) -> i64 {
        self.span / MICROS
    }

    /// Counts an event of `weight` for `key` at the time of `cx`, with
    /// `sample` as its evidence. `message(sum)` is asked for only when an
    /// alert opens.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hit(
        &mut self,
        book: &mut Book,
        cx: Cx<'_>,
        key: &str,
        weight: u64,
        sample: Sample,
        facts: &[Fact<'_>],
        message: impl FnOnce(u64) -> String,
    ) -> Hit {
        let ts = cx.ts;
        if book.active(self.rule, key, ts) {
            book.extend(self.rule, key, ts, weight, || cx.resolve(&sample), facts);
            return Hit::Extended;
        }
        let w = self.keys.entry(key, ts.unix_micros, Window::small);
        let item = Item {
            ts,
            weight,
            sample,
            facts: item_facts(&cx, facts),
        };
        if !w.push(item, self.need, self.span) {
            return Hit::Counted;
        }
        let sum = w.sum();
        let first = w.first_ts().unwrap_or(ts);
        // The window's items include this one, with its facts.
        let items = w.take();
        self.keys.remove(key);
        let (evidence, owned) = resolve_items(&cx, &items);
        let all: Vec<Fact<'_>> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        book.open(self.rule, key, first, ts, sum, message(sum), evidence, &all);
        Hit::Opened
    }

    /// Counts an event without ever opening an alert (the first half of a
    /// sequence); returns the weight now within the window.
    pub(crate) fn count(&mut self, key: &str, cx: Cx<'_>, weight: u64) -> u64 {
        let w = self.keys.entry(key, cx.ts.unix_micros, Window::small);
        w.push(
            Item {
                ts: cx.ts,
                weight,
                sample: cx.sample(),
                facts: [None, None],
            },
            self.need,
            self.span,
        );
        w.sum()
    }

    pub(crate) fn expire(&mut self, now: i64) {
        self.keys.expire(now.saturating_sub(self.span));
    }
}

/// "At least N distinct values within S seconds, per key."
#[derive(Debug)]
pub(crate) struct DistinctCount {
    pub(crate) rule: usize,
    pub(crate) need: usize,
    pub(crate) span: i64,
    pub(crate) keys: Keyed<Distinct>,
}

impl DistinctCount {
    /// Reads `count_param` and `window` of `rule`.
    pub(crate) fn new(rule: usize, params: &Params, count_param: &str, cap: usize) -> DistinctCount {
        DistinctCount {
            rule,
            need: usize::try_from(params.get(rule, count_param).max(1)).unwrap_or(usize::MAX),
            span: params.get(rule, "window").saturating_mul(MICROS),
            keys: Keyed::new(cap),
        }
    }

    /// The window length in seconds.
    pub(crate) fn window_secs(&self) -> i64 {
        self.span / MICROS
    }

    /// Records `value` for `key` at the time of `cx`; the values become the
    /// facts named `value_name`. `message(values)` is asked for only when an
    /// alert opens.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hit(
        &mut self,
        book: &mut Book,
        cx: Cx<'_>,
        key: &str,
        value: &str,
        value_name: &'static str,
        facts: &[Fact<'_>],
        message: impl FnOnce(&[Value]) -> String,
    ) -> Hit {
        let ts = cx.ts;
        if book.active(self.rule, key, ts) {
            let mut all: Vec<Fact<'_>> = Vec::with_capacity(facts.len() + 1);
            all.push((value_name, value));
            all.extend_from_slice(facts);
            book.extend_distinct(self.rule, key, value, ts, || cx.evidence(), &all);
            return Hit::Extended;
        }
        let d = self.keys.entry(key, ts.unix_micros, Distinct::default);
        let n = d.add(value, ts, cx.sample(), self.need, self.span);
        if n < self.need {
            return Hit::Counted;
        }
        let values = d.take();
        self.keys.remove(key);
        let first = values.first().map_or(ts, |v| v.ts);
        let mut all: Vec<Fact<'_>> = values.iter().map(|v| (value_name, &*v.value)).collect();
        all.extend_from_slice(facts);
        let msg = message(&values);
        let evidence: Vec<Evidence> = values.iter().map(|v| cx.resolve(&v.sample)).collect();
        book.open(self.rule, key, first, ts, n as u64, msg, evidence, &all);
        book.count_distinct(self.rule, key, values.iter().map(|v| &*v.value));
        Hit::Opened
    }

    pub(crate) fn expire(&mut self, now: i64) {
        self.keys.expire(now.saturating_sub(self.span));
    }
}

/// "N s" / "N min" / "N h" / "N d" for a window length.
pub(crate) fn span_text(secs: i64) -> String {
    if secs % 86_400 == 0 && secs >= 86_400 {
        format!("{} d", secs / 86_400)
    } else if secs % 3600 == 0 && secs >= 3600 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 && secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
