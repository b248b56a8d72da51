//! Detection: a streaming rule engine over typed events and stitched message
//! records, and the built-in rules for mail-server anomalies.
//!
//! The engine is fed the same things every other consumer gets — each
//! [`Event`] with its [`Position`] and raw line, and each [`MessageRecord`]
//! the [`Stitcher`](crate::stitch::Stitcher) emits — and raises [`Alert`]s.
//! It reads no clock: time is the events' own (event time), so replaying last
//! week gives the alerts last week would have raised, and tests need no
//! sleeping.
//!
//! # Primitives
//!
//! Rules are built from a few bounded primitives (module `state`):
//! a threshold in a sliding window with group-by, a distinct count (distinct
//! recipient domains per account, distinct addresses per account …), a
//! baseline (this hour against the median of the same hour over 14 days, with
//! a floor), first-seen sets with a learning period, a sequence (failures then
//! a success from the same address), and absence (a source silent while
//! others log). Every per-key state lives in a map with a key cap; at the cap
//! the least recently used keys are evicted (and counted in
//! [`EngineStats`]). No output depends on hash order: sweeps that may emit
//! sort their keys first, alerts are sorted by time, rule and key.
//!
//! # Alerts
//!
//! A rule that fires opens an episode for its key; further matches extend it
//! until its `quiet` period passes without one (see `alert`). In replay
//! (the default) an episode closes when the key's next match comes later than
//! the quiet period, or at the end of the input — files read one after the
//! other (`mail.log`, then `dovecot.log`) do not split alerts. With
//! [`DetectConfig::live`] episodes also close when the event clock passes
//! their quiet period, and [`Engine::take_opened`] hands out each alert when
//! it opens.
//!
//! Evidence is a bounded list of positions (`file:line`, or a store id set by
//! the caller) with sample lines. While a rule is still counting, a windowed
//! event holds only a 16-byte reference into one shared ring of recent sample
//! texts ([`DetectConfig::sample_bytes`]); an alert copies the texts when it
//! opens. Evidence older than the ring keeps its position without a sample.
//!
//! # Rules as data
//!
//! The built-ins are described in [`catalog::RULES`] (stable ids, severity,
//! ATT&CK ids, parameters with defaults); parameters are overridden as
//! `RULE.PARAM=VALUE` and checked against their ranges.
//!
//! Users add their own rules in YAML ([`user`], `docs/rules.md`): field
//! conditions over events or stitched messages, a threshold or distinct
//! count in a window, group-by. They run after the built-ins on the same
//! primitives ([`DetectConfig::user_rules`]); the engine numbers them after
//! the built-ins, and their alerts look like the built-ins' ones.
//!
//! # Limits
//!
//! Inputs given as separate files are read one after the other: the silence
//! rule compares sources as they arrive, so a source read after another is
//! never judged silent against it (replay from the store, which merges
//! sources in time order, or give one merged log). Rules that need message
//! facts (recipient domains, bounces, relaying) see a message when the
//! stitcher finishes it, usually seconds after it left; deferred mail is seen
//! when it leaves the queue or after the stitcher's horizon.

mod alert;
mod auth;
pub mod catalog;
mod outbound;
mod primitive;
mod server;
mod state;
#[cfg(test)]
mod tests;
pub mod user;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde::Serialize;

pub use self::alert::{Alert, Evidence, EvidenceKind, MAX_FACT_VALUES, MAX_SAMPLE_BYTES, sort_alerts};
use self::alert::{Arena, Book, BookConfig, RuleMeta, Sample, TextRef};
pub use self::catalog::{AlertSeverity, ConfigError, Params, RULES, RuleInfo, rule};
use self::state::MICROS;
pub use self::user::{RuleError, RuleErrors, RuleSet, RuleSource, UserRule};
use crate::event::{Event, EventKind, Position};
use crate::parse::postfix::PostfixMsg;
use crate::stitch::MessageRecord;
use crate::time::Timestamp;

/// Honeypot login names used when none are configured: names scanners try
/// and that no person logs in with on a server whose logins are addresses.
pub const DEFAULT_HONEYPOT_USERS: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "test",
    "guest",
    "user",
    "oracle",
    "postgres",
    "mysql",
    "ftp",
    "ubuntu",
    "support",
    "webmaster",
    "sales",
    "info",
    "office",
    "backup",
];

/// What the directory says about a sender address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderStatus {
    /// A mailbox, an alias, or otherwise an address that exists.
    Known,
    /// An address in one of our domains that the directory does not know.
    Unknown,
    /// Not one of our domains (the rule does not judge it).
    NotOurs,
}

/// The address directory the `sender-not-mailbox` rule asks. The binary
/// builds one from Mailcow's database, a list file or Postfix maps; tests and
/// simple setups use an [`AddressSet`]. Any `Fn(&str) -> SenderStatus` is one.
pub trait SenderDirectory: Send + Sync {
    /// What `address` (lowercased) is.
    fn status(&self, address: &str) -> SenderStatus;
}

impl<F: Fn(&str) -> SenderStatus + Send + Sync> SenderDirectory for F {
    fn status(&self, address: &str) -> SenderStatus {
        self(address)
    }
}

/// A plain directory: known addresses and our domains.
#[derive(Clone, Debug, Default)]
pub struct AddressSet {
    /// Addresses that exist (lowercase).
    pub addresses: BTreeSet<String>,
    /// Our domains (lowercase); an address of these not in `addresses` is unknown.
    pub domains: BTreeSet<String>,
}

impl SenderDirectory for AddressSet {
    fn status(&self, address: &str) -> SenderStatus {
        if self.addresses.contains(address) {
            return SenderStatus::Known;
        }
        match state::domain_of(address) {
            Some(d) if self.domains.contains(d) => SenderStatus::Unknown,
            _ => SenderStatus::NotOurs,
        }
    }
}

/// How the engine is set up. Built by the binary from flags or a config file.
#[derive(Clone)]
pub struct DetectConfig {
    /// Only these rule ids run, built-in or user rules (`None`: every rule).
    pub rules: Option<Vec<String>>,
    /// User rules, run after the built-ins (see [`user`]).
    pub user_rules: Arc<RuleSet>,
    /// Parameter overrides, `RULE.PARAM` → value.
    pub settings: BTreeMap<String, i64>,
    /// Our mail domains; more are learned from the logs when `learn_domains`.
    pub our_domains: Vec<String>,
    /// Learn our domains from SASL user names and local deliveries.
    pub learn_domains: bool,
    /// Honeypot login names: a bare name matches a bare login, `name@dom` the
    /// whole address, `name@` the local part in any domain.
    pub honeypot_users: Vec<String>,
    /// Clients allowed to send without authentication (IP or CIDR);
    /// 127.0.0.1 and ::1 always are.
    pub trusted_relays: Vec<String>,
    /// The address directory, for `sender-not-mailbox`.
    pub directory: Option<Arc<dyn SenderDirectory>>,
    /// Most keys each rule tracks.
    pub max_keys: usize,
    /// Evidence entries kept per alert.
    pub max_evidence: usize,
    /// Alerts open at once.
    pub max_open_alerts: usize,
    /// Bytes of recent sample lines kept for evidence (a ring; older samples
    /// keep only their position).
    pub sample_bytes: usize,
    /// Events arrive as they happen: alerts close on the event clock and are
    /// also reported when they open (see the module docs).
    pub live: bool,
}

impl Default for DetectConfig {
    fn default() -> DetectConfig {
        DetectConfig {
            rules: None,
            user_rules: Arc::new(RuleSet::new()),
            settings: BTreeMap::new(),
            our_domains: Vec::new(),
            learn_domains: true,
            honeypot_users: DEFAULT_HONEYPOT_USERS.iter().map(|s| (*s).to_owned()).collect(),
            trusted_relays: Vec::new(),
            directory: None,
            max_keys: 50_000,
            max_evidence: 10,
            max_open_alerts: 10_000,
            sample_bytes: 4 << 20,
            live: false,
        }
    }
}

impl fmt::Debug for DetectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectConfig")
            .field("rules", &self.rules)
            .field("user_rules", &self.user_rules.len())
            .field("settings", &self.settings)
            .field("our_domains", &self.our_domains)
            .field("learn_domains", &self.learn_domains)
            .field("honeypot_users", &self.honeypot_users)
            .field("trusted_relays", &self.trusted_relays)
            .field("directory", &self.directory.as_ref().map(|_| "…"))
            .field("max_keys", &self.max_keys)
            .field("max_evidence", &self.max_evidence)
            .field("max_open_alerts", &self.max_open_alerts)
            .field("sample_bytes", &self.sample_bytes)
            .field("live", &self.live)
            .finish()
    }
}

/// Counters of one rule's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// The rule id.
    pub rule: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Keys tracked now.
    pub keys: usize,
    /// Most keys tracked at once.
    pub peak_keys: usize,
    /// Keys evicted at the cap.
    pub evictions: u64,
}

/// What the engine did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Events fed.
    pub events: u64,
    /// Events without a time (not judged).
    pub untimed: u64,
    /// Message records fed.
    pub records: u64,
    /// Alerts opened.
    pub alerts: u64,
    /// Alerts closed early because too many were open.
    pub alerts_closed_early: u64,
    /// Domains learned as ours.
    pub learned_domains: usize,
    /// Per rule.
    pub rules: Vec<RuleStats>,
}

/// Shared facts the rules consult.
pub(crate) struct Env {
    pub(crate) configured: FxHashSet<Box<str>>,
    pub(crate) learned: FxHashSet<Box<str>>,
    pub(crate) learn: bool,
    pub(crate) directory: Option<Arc<dyn SenderDirectory>>,
    pub(crate) trusted: Vec<ipnet::IpNet>,
}

impl Env {
    const MAX_LEARNED: usize = 10_000;

    /// Whether `domain` (any case) is ours.
    pub(crate) fn is_ours(&self, domain: &str) -> bool {
        let d = state::lower(domain);
        self.configured.contains(&*d) || self.learned.contains(&*d)
    }

    /// Whether any domain is known as ours (configured or learned).
    pub(crate) fn knows_domains(&self) -> bool {
        !self.configured.is_empty() || !self.learned.is_empty()
    }

    pub(crate) fn learn_domain(&mut self, domain: &str) {
        if !self.learn || domain.is_empty() || self.learned.len() >= Env::MAX_LEARNED {
            return;
        }
        let d = state::lower(domain);
        if !self.configured.contains(&*d) && !self.learned.contains(&*d) && d.contains('.') {
            self.learned.insert(d.into_owned().into_boxed_str());
        }
    }

    /// Whether a client may send without authentication by configuration:
    /// 127.0.0.1 and ::1 (local programs) and the trusted relays. Other
    /// loopback addresses are not trusted (test labs use them as clients).
    pub(crate) fn is_trusted(&self, ip: &str) -> bool {
        if matches!(ip, "127.0.0.1" | "::1" | "localhost" | "::ffff:127.0.0.1") {
            return true;
        }
        match ip.parse::<std::net::IpAddr>() {
            Ok(a) => self.trusted.iter().any(|n| n.contains(&a)),
            Err(_) => false,
        }
    }
}

/// Where an event is: time, position, raw line (or a message's summary),
/// and the text arena its sample goes to.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) kind: EvidenceKind,
    pub(crate) ts: Timestamp,
    pub(crate) pos: Position,
    pub(crate) raw: &'a str,
    /// The line's place in the arena, once stored (at most once per event).
    stored: &'a Cell<Option<TextRef>>,
    arena: &'a RefCell<Arena>,
}

impl<'a> Cx<'a> {
    /// The current line as evidence for an alert.
    pub(crate) fn evidence(&self) -> Evidence {
        match self.kind {
            EvidenceKind::Line => Evidence::line(self.pos, self.ts, self.raw),
            EvidenceKind::Message => Evidence::message(self.pos, Some(self.ts), self.raw.to_owned()),
        }
    }

    /// The current line as a sample for a window (its text stored once).
    pub(crate) fn sample(&self) -> Sample {
        let text = match self.stored.get() {
            Some(t) => t,
            None => {
                let t = self.arena.borrow_mut().store(self.raw);
                self.stored.set(Some(t));
                t
            }
        };
        Sample {
            kind: self.kind,
            pos: self.pos,
            ts: self.ts,
            text,
        }
    }

    /// Keeps a short value (a user name) for a window's facts.
    pub(crate) fn intern(&self, s: &str) -> TextRef {
        self.arena.borrow_mut().store(s)
    }

    /// The evidence a stored sample stands for.
    pub(crate) fn resolve(&self, s: &Sample) -> Evidence {
        self.arena.borrow().evidence(s)
    }

    /// A stored value, if still in the arena.
    pub(crate) fn text(&self, r: TextRef) -> Option<String> {
        self.arena.borrow().get(r).map(str::to_owned)
    }
}

/// The rule engine. See the module documentation.
pub struct Engine {
    /// Sample texts; shared (read and appended) while the core is mutated.
    arena: RefCell<Arena>,
    core: Core,
}

/// Everything of the engine but the arena.
struct Core {
    book: Book,
    env: Env,
    auth: auth::AuthRules,
    out: outbound::OutboundRules,
    srv: server::ServerRules,
    user: user::UserRules,
    live: bool,
    enabled: Vec<bool>,
    now: i64,
    last_tick: i64,
    last_sweep: i64,
    stats: EngineStats,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("stats", &self.core.stats)
            .finish_non_exhaustive()
    }
}

const TICK: i64 = 60 * MICROS;
const SWEEP: i64 = 600 * MICROS;

impl Engine {
    /// Builds the engine, checking rule ids, settings and networks.
    pub fn new(cfg: DetectConfig) -> Result<Engine, ConfigError> {
        let params = Params::with_overrides(&cfg.settings)?;
        let users = cfg.user_rules.rules();
        let mut enabled = vec![cfg.rules.is_none(); RULES.len() + users.len()];
        if let Some(ids) = &cfg.rules {
            for id in ids {
                let i = RULES
                    .iter()
                    .map(|r| r.id)
                    .chain(users.iter().map(|r| r.id.as_str()))
                    .position(|r| r == id)
                    .ok_or_else(|| ConfigError::UnknownRule { id: id.clone() })?;
                enabled[i] = true;
            }
        }
        let mut trusted = Vec::new();
        for t in &cfg.trusted_relays {
            let net = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::BadValue {
                    what: "trusted relay",
                    value: t.clone(),
                    fix: "write an address or a network such as 192.0.2.10 or 172.22.1.0/24",
                })?;
            trusted.push(net);
        }
        let mut honeypot = Vec::new();
        for h in &cfg.honeypot_users {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty() || h.chars().any(char::is_whitespace) {
                return Err(ConfigError::BadValue {
                    what: "honeypot user",
                    value: h,
                    fix: "write a login name (admin), an address (admin@example.org) or a local part (admin@)",
                });
            }
            honeypot.push(h);
        }
        let cap = cfg.max_keys.max(16);
        // The rule table: the built-ins, then the user rules.
        let table: Vec<RuleMeta> = RULES
            .iter()
            .enumerate()
            .map(|(i, r)| RuleMeta {
                id: r.id.to_owned(),
                title: r.title.to_owned(),
                severity: r.severity,
                attack: r.attack.iter().map(|s| (*s).to_owned()).collect(),
                quiet_secs: params.get(i, "quiet"),
            })
            .chain(users.iter().map(|r| RuleMeta {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                attack: r.attack.clone(),
                quiet_secs: r.quiet_secs,
            }))
            .collect();
        let on = |i: usize| enabled[i];
        let core = Core {
            book: Book::new(
                BookConfig {
                    max_evidence: cfg.max_evidence.max(1),
                    max_open: cfg.max_open_alerts.max(1),
                    report_opened: cfg.live,
                },
                table,
            ),
            env: Env {
                configured: cfg
                    .our_domains
                    .iter()
                    .map(|d| {
                        d.trim()
                            .trim_start_matches('@')
                            .to_ascii_lowercase()
                            .into_boxed_str()
                    })
                    .filter(|d| !d.is_empty())
                    .collect(),
                learned: FxHashSet::default(),
                learn: cfg.learn_domains,
                directory: cfg.directory.clone(),
                trusted,
            },
            auth: auth::AuthRules::new(&params, &on, cap, honeypot),
            out: outbound::OutboundRules::new(&params, &on, cap),
            srv: server::ServerRules::new(&params, &on, cap),
            user: user::UserRules::new(cfg.user_rules.clone(), RULES.len(), &on, cap),
            live: cfg.live,
            enabled,
            now: i64::MIN,
            last_tick: i64::MIN,
            last_sweep: i64::MIN,
            stats: EngineStats::default(),
        };
        Ok(Engine {
            arena: RefCell::new(Arena::new(cfg.sample_bytes)),
            core,
        })
    }

    /// Feeds one event (any family; unparsed ones are only counted).
    pub fn feed_event(&mut self, pos: Position, raw: &str, ev: &Event<'_>) {
        let core = &mut self.core;
        core.stats.events += 1;
        let Some(ts) = ev.ts else {
            core.stats.untimed += 1;
            return;
        };
        let stored = Cell::new(None);
        let cx = Cx {
            kind: EvidenceKind::Line,
            ts,
            pos,
            raw,
            stored: &stored,
            arena: &self.arena,
        };
        core.feed_event(ev, cx);
    }

    /// Feeds one message record from the stitcher.
    pub fn feed_record(&mut self, rec: &MessageRecord) {
        let core = &mut self.core;
        core.stats.records += 1;
        let Some(ts) = rec.last_seen.or(rec.first_seen) else {
            return;
        };
        if let Some(sasl) = rec.sasl_username.as_deref()
            && let Some(d) = state::domain_of(sasl)
        {
            core.env.learn_domain(d);
        }
        let matters = outbound::record_matters(rec, &core.env);
        let users = if core.user.wants_messages() {
            core.user.match_record(rec)
        } else {
            Vec::new()
        };
        if !matters && users.is_empty() {
            return;
        }
        let summary = outbound::record_summary(rec);
        let stored = Cell::new(None);
        let cx = Cx {
            kind: EvidenceKind::Message,
            ts,
            pos: rec.first_position,
            raw: &summary,
            stored: &stored,
            arena: &self.arena,
        };
        if matters {
            core.out.on_record(rec, cx, &mut core.book, &core.env);
        }
        if !users.is_empty() {
            core.user.on_record(rec, &users, cx, &mut core.book);
        }
    }

    /// Ends the input: closes every open alert.
    pub fn finish(&mut self) {
        self.core.book.close_all();
    }

    /// Alerts that closed since the last call, in (first time, rule, key) order
    /// within each batch.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.core.book.take_closed()
    }

    /// With [`DetectConfig::live`], a copy of each alert as it opened, since
    /// the last call.
    pub fn take_opened(&mut self) -> Vec<Alert> {
        self.core.book.take_opened()
    }

    /// Alerts open now.
    pub fn open_alerts(&self) -> usize {
        self.core.book.open_count()
    }

    /// Counters, with each rule's state size.
    pub fn stats(&self) -> EngineStats {
        let core = &self.core;
        let mut s = core.stats.clone();
        s.alerts = core.book.opened_total;
        s.alerts_closed_early = core.book.closed_early;
        s.learned_domains = core.env.learned.len();
        let mut rules: Vec<RuleStats> = RULES
            .iter()
            .map(|r| r.id)
            .chain(core.user_ids())
            .enumerate()
            .map(|(i, id)| RuleStats {
                rule: id.to_owned(),
                enabled: core.enabled[i],
                ..RuleStats::default()
            })
            .collect();
        let mut add = |rule: usize, keys: usize, peak: usize, evictions: u64| {
            let r = &mut rules[rule];
            r.keys += keys;
            r.peak_keys += peak;
            r.evictions += evictions;
        };
        core.auth.state(&mut add);
        core.out.state(&mut add);
        core.srv.state(&mut add);
        core.user.state(&mut add);
        s.rules = rules;
        s
    }

    /// Keys tracked by all rules together (the engine's memory is bounded by
    /// it: at most `max_keys` per rule state).
    pub fn tracked_keys(&self) -> usize {
        self.stats().rules.iter().map(|r| r.keys).sum()
    }
}

impl Core {
    /// The ids of the user rules, in engine order.
    fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.user.ids()
    }

    fn feed_event(&mut self, ev: &Event<'_>, cx: Cx<'_>) {
        if cx.ts.unix_micros > self.now {
            self.now = cx.ts.unix_micros;
        }
        let Some(family) = ev.kind.family() else {
            self.advance(cx);
            self.user.on_event(ev, cx, &mut self.book);
            return;
        };
        // The source's own line first: a source that comes back is not
        // judged silent by the tick this line may trigger.
        self.srv.activity(ev.host, family, cx, &mut self.book);
        self.advance(cx);
        match &ev.kind {
            EventKind::Postfix(p) => {
                self.learn_postfix(&p.msg, p.daemon);
                self.auth.on_event(ev, cx, &mut self.book);
                self.out.on_postfix(p, cx, &mut self.book, &self.env);
                self.srv.on_postfix(ev.host, p, cx, &mut self.book);
            }
            EventKind::Dovecot(_) | EventKind::Sogo(_) => {
                self.auth.on_event(ev, cx, &mut self.book);
            }
            EventKind::Rspamd(r) => self.srv.on_rspamd(r, cx, &mut self.book, &self.env),
            EventKind::Mariadb(m) => {
                self.srv.on_mariadb(ev.host, m, cx, &mut self.book);
            }
            _ => {}
        }
        self.srv.on_start_or_crash(ev, cx, &mut self.book);
        self.user.on_event(ev, cx, &mut self.book);
    }

    fn advance(&mut self, cx: Cx<'_>) {
        let t = cx.ts.unix_micros;
        if self.last_tick == i64::MIN {
            self.last_tick = t;
            self.last_sweep = t;
            return;
        }
        // Ticks follow the events' own time, also backwards (the next file of
        // a replay starts earlier): each source is judged against its peers.
        if t.abs_diff(self.last_tick) >= TICK as u64 {
            self.last_tick = t;
            self.srv.tick(cx, &mut self.book);
            if self.live {
                self.book.close_quiet(self.now);
            }
        }
        if t.abs_diff(self.last_sweep) >= SWEEP as u64 {
            self.last_sweep = t;
            // Relative to this event's time, not the newest seen: keys of an
            // input read later but logged earlier must not expire at once.
            self.auth.expire(t);
            self.out.expire(t);
            self.srv.expire(t);
            self.user.expire(t);
        }
    }

    fn learn_postfix(&mut self, msg: &PostfixMsg<'_>, daemon: &str) {
        if !self.env.learn {
            return;
        }
        match msg {
            PostfixMsg::ClientAccepted {
                sasl_username: Some(u),
                ..
            } => {
                if let Some(d) = state::domain_of(u) {
                    self.env.learn_domain(d);
                }
            }
            PostfixMsg::Delivery {
                to, relay, status, ..
            } if outbound::is_local_delivery(daemon, relay)
                && *status == crate::parse::postfix::DeliveryStatus::Sent =>
            {
                if let Some(d) = state::domain_of(to) {
                    self.env.learn_domain(d);
                }
            }
            _ => {}
        }
    }
}
