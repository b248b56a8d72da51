//! The engine's bounded state: keyed maps with deterministic eviction, and
//! the counting primitives the rules are built from.
//!
//! - [`Keyed`]: per-key state with a cap. At the cap the least recently
//!   touched keys (by event time, ties by insertion order) are evicted in a
//!   batch and counted; nothing depends on hash order.
//! - [`Window`]: "at least N within S seconds" with weights. It keeps only the
//!   newest entries needed to reach N, so a key costs at most N entries
//!   however many events arrive.
//! - [`Distinct`]: "at least N distinct values within S seconds"; keeps the N
//!   values seen most recently — enough to decide, never more.
//! - [`HourRing`]: hourly counts over 14 days for baselines.
//! - [`MinuteBuckets`]: sums over a window in one-minute buckets (ratios).

use std::borrow::Cow;
use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::alert::{Sample, TextRef};
use crate::time::Timestamp;

pub(crate) const MICROS: i64 = 1_000_000;

/// Per-key state with a key cap and deterministic eviction.
#[derive(Debug)]
pub(crate) struct Keyed<V> {
    map: FxHashMap<Box<str>, Slot<V>>,
    cap: usize,
    seq: u64,
    pub(crate) evictions: u64,
    pub(crate) peak: usize,
}

#[derive(Debug)]
struct Slot<V> {
    v: V,
    last: i64,
    seq: u64,
}

impl<V> Keyed<V> {
    pub(crate) fn new(cap: usize) -> Keyed<V> {
        Keyed {
            map: FxHashMap::default(),
            cap: cap.max(1),
            seq: 0,
            evictions: 0,
            peak: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The state of `key`, created with `make` when absent; marks it used at `t`.
    pub(crate) fn entry(&mut self, key: &str, t: i64, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(key) {
            if self.map.len() >= self.cap {
                self.evict();
            }
            self.seq += 1;
            self.map.insert(
                key.into(),
                Slot {
                    v: make(),
                    last: t,
                    seq: self.seq,
                },
            );
            self.peak = self.peak.max(self.map.len());
        }
        let slot = self.map.get_mut(key).expect("inserted above");
        slot.last = slot.last.max(t);
        &mut slot.v
    }

    /// The state of `key`, if present, marked used at `t`.
    pub(crate) fn touch(&mut self, key: &str, t: i64) -> Option<&mut V> {
        self.map.get_mut(key).map(|s| {
            s.last = s.last.max(t);
            &mut s.v
        })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|s| &s.v)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key).map(|s| s.v)
    }

    /// Drops keys not used since `cutoff` (their state has expired: this is
    /// not eviction and is not counted as such).
    pub(crate) fn expire(&mut self, cutoff: i64) {
        self.map.retain(|_, s| s.last >= cutoff);
    }

    /// Evicts the least recently used sixteenth (at least one key).
    fn evict(&mut self) {
        let n = (self.cap / 16).max(1).min(self.map.len());
        if n == 0 {
            return;
        }
        let mut ages: Vec<(i64, u64)> = self.map.values().map(|s| (s.last, s.seq)).collect();
        let (_, nth, _) = ages.select_nth_unstable(n - 1);
        let limit = *nth;
        let before = self.map.len();
        // (last, seq) is unique per key, so exactly n keys go.
        self.map.retain(|_, s| (s.last, s.seq) > limit);
        self.evictions += (before - self.map.len()) as u64;
    }

    /// Values in key order (for deterministic sweeps that may emit).
    pub(crate) fn sorted_keys(&self) -> Vec<Box<str>> {
        let mut keys: Vec<Box<str>> = self.map.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Facts one windowed event carries (text in the arena).
pub(crate) type ItemFacts = [Option<(&'static str, TextRef)>; 2];

/// One counted event in a [`Window`].
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) ts: Timestamp,
    pub(crate) weight: u64,
    pub(crate) sample: Sample,
    /// Values worth reporting with the alert (the user tried, the service).
    pub(crate) facts: ItemFacts,
}

/// "At least `need` within `span`": the newest items whose weights reach
/// `need`, in time order.
#[derive(Debug, Default)]
pub(crate) struct Window {
    items: VecDeque<Item>,
    sum: u64,
}

impl Window {
    /// Adds an item; returns whether the items within `span` of the newest
    /// reach `need`.
    pub(crate) fn push(&mut self, item: Item, need: u64, span: i64) -> bool {
        let t = item.ts.unix_micros;
        let at = match self.items.back() {
            Some(b) if b.ts.unix_micros > t => self.items.partition_point(|x| x.ts.unix_micros <= t),
            _ => self.items.len(),
        };
        self.sum = self.sum.saturating_add(item.weight);
        self.items.insert(at, item);
        let newest = self.items.back().map_or(t, |b| b.ts.unix_micros);
        while let Some(f) = self.items.front() {
            let stale = f.ts.unix_micros < newest.saturating_sub(span);
            let surplus = self.items.len() > 1 && self.sum.saturating_sub(f.weight) >= need;
            if !(stale || surplus) {
                break;
            }
            self.sum -= f.weight;
            self.items.pop_front();
        }
        self.sum >= need
    }

    /// The weight of the items within `[t - span, t]`.
    pub(crate) fn sum_before(&self, t: i64, span: i64) -> u64 {
        self.items
            .iter()
            .filter(|x| x.ts.unix_micros <= t && x.ts.unix_micros >= t.saturating_sub(span))
            .map(|x| x.weight)
            .sum()
    }

    pub(crate) fn sum(&self) -> u64 {
        self.sum
    }

    pub(crate) fn first_ts(&self) -> Option<Timestamp> {
        self.items.front().map(|x| x.ts)
    }

    /// Takes the items and empties the window.
    pub(crate) fn take(&mut self) -> Vec<Item> {
        self.sum = 0;
        self.items.drain(..).collect()
    }

    /// A window that holds one item without growing (most keys never see a
    /// second event).
    pub(crate) fn small() -> Window {
        Window {
            items: VecDeque::with_capacity(1),
            sum: 0,
        }
    }
}

/// One value of a [`Distinct`] set.
#[derive(Debug)]
pub(crate) struct Value {
    pub(crate) value: Box<str>,
    pub(crate) ts: Timestamp,
    pub(crate) sample: Sample,
}

/// "At least `need` distinct values within `span`": the `need` values seen
/// most recently, each with its last time and evidence.
#[derive(Debug, Default)]
pub(crate) struct Distinct {
    values: Vec<Value>,
}

impl Distinct {
    /// Records `value` at `ts`; returns the number of distinct values seen
    /// within `span` before `ts` (this one included).
    pub(crate) fn add(
        &mut self,
        value: &str,
        ts: Timestamp,
        sample: Sample,
        need: usize,
        span: i64,
    ) -> usize {
        let t = ts.unix_micros;
        if let Some(v) = self.values.iter_mut().find(|v| &*v.value == value) {
            if t >= v.ts.unix_micros {
                v.ts = ts;
                v.sample = sample;
            }
        } else if self.values.len() < need.max(1) {
            self.values.push(Value {
                value: value.into(),
                ts,
                sample,
            });
        } else if let Some(oldest) = self.values.iter_mut().min_by_key(|v| v.ts.unix_micros)
            && oldest.ts.unix_micros < t
        {
            *oldest = Value {
                value: value.into(),
                ts,
                sample,
            };
        }
        let since = t.saturating_sub(span);
        self.values
            .iter()
            .filter(|v| v.ts.unix_micros >= since && v.ts.unix_micros <= t)
            .count()
    }

    /// Takes the values (oldest first) and empties the set.
    pub(crate) fn take(&mut self) -> Vec<Value> {
        let mut v = std::mem::take(&mut self.values);
        v.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.value.cmp(&b.value)));
        v
    }
}

/// Hourly counts over the last 15 days (14 previous days and today), indexed
/// by local hour number.
#[derive(Debug)]
pub(crate) struct HourRing {
    counts: Box<[u16; HourRing::SLOTS]>,
    /// The newest hour seen.
    current: i64,
    /// The first hour with data.
    first: i64,
}

impl HourRing {
    pub(crate) const SLOTS: usize = 15 * 24;

    pub(crate) fn new(hour: i64) -> HourRing {
        HourRing {
            counts: Box::new([0; HourRing::SLOTS]),
            current: hour,
            first: hour,
        }
    }

    fn slot(hour: i64) -> usize {
        hour.rem_euclid(HourRing::SLOTS as i64) as usize
    }

    /// Adds `n` to `hour`; returns that hour's count. Hours older than the
    /// ring are ignored (0 is returned).
    pub(crate) fn add(&mut self, hour: i64, n: u64) -> u64 {
        if hour > self.current {
            let steps = (hour - self.current).min(HourRing::SLOTS as i64);
            for h in (hour - steps + 1)..=hour {
                self.counts[HourRing::slot(h)] = 0;
            }
            self.current = hour;
        }
        if hour <= self.current - HourRing::SLOTS as i64 {
            return 0;
        }
        self.first = self.first.min(hour);
        let c = &mut self.counts[HourRing::slot(hour)];
        *c = c.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
        u64::from(*c)
    }

    /// The counts of the same hour of day on each of the previous `days`
    /// days that lie after the first hour with data.
    pub(crate) fn same_hour(&self, hour: i64, days: i64) -> Vec<u64> {
        (1..=days.min(14))
            .map(|d| hour - 24 * d)
            .take_while(|h| *h >= self.first && *h > self.current - HourRing::SLOTS as i64)
            .map(|h| u64::from(self.counts[HourRing::slot(h)]))
            .collect()
    }
}

/// The median of `v` (the lower middle for an even count); 0 when empty.
pub(crate) fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

/// Sums of two counters over a window, in one-minute buckets.
#[derive(Debug, Default)]
pub(crate) struct MinuteBuckets {
    buckets: VecDeque<(i64, u64, u64)>,
}

impl MinuteBuckets {
    /// Adds `(a, b)` at `t`; returns the sums within `span` of the newest bucket.
    pub(crate) fn add(&mut self, t: i64, a: u64, b: u64, span: i64) -> (u64, u64) {
        let minute = t.div_euclid(60 * MICROS);
        match self.buckets.iter_mut().rev().find(|x| x.0 == minute) {
            Some(x) => {
                x.1 = x.1.saturating_add(a);
                x.2 = x.2.saturating_add(b);
            }
            None => {
                let at = self.buckets.partition_point(|x| x.0 < minute);
                self.buckets.insert(at, (minute, a, b));
            }
        }
        let newest = self.buckets.back().map_or(minute, |x| x.0);
        let oldest = newest - span.div_euclid(60 * MICROS);
        while self.buckets.front().is_some_and(|x| x.0 < oldest) {
            self.buckets.pop_front();
        }
        self.buckets.iter().fold((0, 0), |(s1, s2), x| {
            (s1.saturating_add(x.1), s2.saturating_add(x.2))
        })
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }
}

/// `s` lowercased, borrowed when it already is.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The domain of an address (after the last `@`), if any.
pub(crate) fn domain_of(addr: &str) -> Option<&str> {
    addr.rsplit_once('@').map(|(_, d)| d).filter(|d| !d.is_empty())
}

/// A client address as logged, or `None` for `unknown`/empty.
pub(crate) fn client_ip(ip: &str) -> Option<&str> {
    let ip = ip.trim();
    (!ip.is_empty() && ip != "unknown").then_some(ip)
}

/// The network an address belongs to for "new network" purposes: IPv4 /24,
/// IPv6 /48 (a site). `None` when it is no address.
pub(crate) fn network_of(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let o = v4.octets();
                return Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]));
            }
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::alert::EvidenceKind;
    use super::*;
    use crate::event::Position;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    fn sample(secs: i64) -> Sample {
        Sample {
            kind: EvidenceKind::Line,
            pos: Position {
                source: 0,
                line: secs as u64,
            },
            ts: ts(secs),
            text: TextRef::NONE,
        }
    }

    fn item(secs: i64, weight: u64) -> Item {
        Item {
            ts: ts(secs),
            weight,
            sample: sample(secs),
            facts: [None, None],
        }
    }

    #[test]
    fn window_edges() {
        let span = 600 * MICROS;
        let mut w = Window::default();
        // Nine in the window: not yet.
        for s in 0..9 {
            assert!(!w.push(item(s * 60, 1), 10, span));
        }
        // The tenth at exactly 600 s after the first: both edges inside.
        assert!(w.push(item(600, 1), 10, span));
        let mut w = Window::default();
        for s in 0..9 {
            w.push(item(s * 60, 1), 10, span);
        }
        // One microsecond too late: the first has left the window.
        let mut late = item(600, 1);
        late.ts = Timestamp::from_unix_micros(600 * MICROS + 1);
        assert!(!w.push(late, 10, span));
    }

    #[test]
    fn window_keeps_only_what_it_needs() {
        let mut w = Window::default();
        for s in 0..10_000 {
            w.push(item(s, 1), 10, 3600 * MICROS);
            assert!(w.items.len() <= 10);
        }
        // Weights: one heavy item reaches the threshold alone.
        let mut w = Window::default();
        assert!(w.push(item(0, 50), 10, 60 * MICROS));
        assert_eq!(w.items.len(), 1);
    }

    #[test]
    fn window_accepts_late_items_in_time_order() {
        let mut w = Window::default();
        w.push(item(100, 1), 3, 60 * MICROS);
        w.push(item(130, 1), 3, 60 * MICROS);
        // Late but inside the window of the newest.
        assert!(w.push(item(90, 1), 3, 60 * MICROS));
        let times: Vec<i64> = w.items.iter().map(|i| i.ts.unix_micros / MICROS).collect();
        assert_eq!(times, vec![90, 100, 130]);
        // Far too late: dropped at once.
        let mut w = Window::default();
        w.push(item(1000, 1), 3, 60 * MICROS);
        assert!(!w.push(item(10, 1), 3, 60 * MICROS));
        assert_eq!(w.items.len(), 1);
    }

    #[test]
    fn distinct_counts_recent_values_only() {
        let span = 3600 * MICROS;
        let mut d = Distinct::default();
        let ev = |s: i64| sample(s);
        assert_eq!(d.add("a", ts(0), ev(1), 3, span), 1);
        assert_eq!(d.add("a", ts(10), ev(2), 3, span), 1);
        assert_eq!(d.add("b", ts(20), ev(3), 3, span), 2);
        // "a" and "b" are more than an hour old at 4000.
        assert_eq!(d.add("c", ts(4000), ev(4), 3, span), 1);
        assert_eq!(d.add("d", ts(4001), ev(5), 3, span), 2);
        assert_eq!(d.add("e", ts(4002), ev(6), 3, span), 3);
        assert!(d.values.len() <= 3);
    }

    #[test]
    fn keyed_evicts_oldest_deterministically() {
        let mut k: Keyed<u32> = Keyed::new(32);
        for i in 0..100i64 {
            *k.entry(&format!("k{i}"), i, || 0) += 1;
            assert!(k.len() <= 32);
        }
        assert!(k.evictions >= 68);
        // The newest keys survive.
        assert!(k.get("k99").is_some());
        assert!(k.get("k0").is_none());
        // Same input, same survivors.
        let mut k2: Keyed<u32> = Keyed::new(32);
        for i in 0..100i64 {
            *k2.entry(&format!("k{i}"), i, || 0) += 1;
        }
        assert_eq!(k.sorted_keys(), k2.sorted_keys());
    }

    #[test]
    fn hour_ring_median_of_same_hour() {
        let mut r = HourRing::new(0);
        for day in 0..10 {
            r.add(day * 24 + 9, if day == 3 { 100 } else { 4 });
        }
        let now = 10 * 24 + 9;
        let prev = r.same_hour(now, 14);
        assert_eq!(prev.len(), 10);
        assert_eq!(median(prev), 4);
        // Hours far in the past are gone after two weeks.
        r.add(now + 15 * 24, 1);
        assert!(r.same_hour(now + 15 * 24, 14).iter().all(|c| *c == 0));
    }

    #[test]
    fn networks() {
        assert_eq!(network_of("192.0.2.77").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(
            network_of("2a02:8109:b240:41c8:9264:99a9:1b0d:15c8").as_deref(),
            Some("2a02:8109:b240::/48")
        );
        assert_eq!(network_of("::ffff:192.0.2.1").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(network_of("unknown"), None);
    }

    #[test]
    fn minute_buckets_sum_over_the_window() {
        let mut b = MinuteBuckets::default();
        let span = 3600 * MICROS;
        assert_eq!(b.add(0, 1, 0, span), (1, 0));
        assert_eq!(b.add(30 * MICROS, 1, 1, span), (2, 1));
        assert_eq!(b.add(3000 * MICROS, 2, 2, span), (4, 3));
        // Two hours later the first minute has left.
        assert_eq!(b.add(7200 * MICROS, 1, 0, span), (1, 0));
    }
}
