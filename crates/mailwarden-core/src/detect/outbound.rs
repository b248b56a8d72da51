//! Outbound rules: bursts per account and per envelope sender, the hourly
//! baseline, new senders, senders that are no mailbox, recipient-domain
//! spread, bounce ratio, and unauthenticated relaying.
//!
//! Submissions are seen as they are queued, without waiting for delivery:
//! smtpd's `QID: client=…, sasl_username=U` (or pickup's `QID: uid=N
//! from=<…>`) is remembered until qmgr's `QID: from=<F>, size=…, nrcpt=N
//! (queue active)`, which makes one submission of N recipients by U as F.
//! Only authenticated and local submissions are remembered: inbound mail
//! from the internet never is. qmgr logs `queue active` again on every retry
//! of a deferred message; the submission counts once, at the first.
//!
//! Rules that need the deliveries (recipient domains, bounces, relaying) read
//! the stitched [`MessageRecord`], in which content-filter copies are merged
//! into the message they came from.

use super::alert::{Book, Evidence, Fact, Sample, cut};
use super::catalog::{Params, ids};
use super::primitive::{DistinctCount, Threshold, span_text};
use super::state::{HourRing, Keyed, MICROS, MinuteBuckets, client_ip, domain_of, lower, median};
use super::{Cx, Env, SenderStatus};
use crate::parse::postfix::{DeliveryStatus, PostfixEvent, PostfixMsg};
use crate::stitch::{MessageRecord, Origin};

/// Delivery agents and next hops that deliver on this server.
pub(crate) fn is_local_delivery(agent: &str, relay: &str) -> bool {
    matches!(agent, "local" | "virtual" | "lmtp" | "pipe")
        || relay.contains("dovecot")
        || relay.contains("[private/")
        || relay.contains("[public/")
        || relay.starts_with('/')
}

/// Recipients one submission may count for at most (qmgr's `nrcpt` is
/// bounded by Postfix, but a forged line must not overflow a window).
const MAX_RCPT: u64 = 100_000;

/// A submission whose qmgr line has not arrived yet.
#[derive(Debug)]
struct Pending {
    user: Option<Box<str>>,
    ip: Option<Box<str>>,
    uid: Option<u32>,
    line: Sample,
}

/// A queued submission, as the rules see it.
struct Submission<'a> {
    user: Option<&'a str>,
    uid: Option<u32>,
    ip: Option<&'a str>,
    from: &'a str,
    nrcpt: u64,
    client_line: &'a Sample,
}

struct RateChange {
    floor: u64,
    factor: u64,
    history: i64,
    min_history: usize,
    rings: Keyed<HourRing>,
}

struct NewSender {
    learn: i64,
    start: i64,
    seen: Keyed<()>,
}

struct Bounce {
    min: u64,
    ratio: u64,
    span: i64,
    keys: Keyed<MinuteBuckets>,
}

/// The outbound rules' state.
pub(crate) struct OutboundRules {
    pending: Keyed<Pending>,
    track_submissions: bool,
    burst_account: Option<Threshold>,
    burst_sender: Option<Threshold>,
    rate: Option<RateChange>,
    new_sender: Option<NewSender>,
    not_mailbox: bool,
    spread: Option<DistinctCount>,
    bounce: Option<Bounce>,
    open_relay: bool,
    own_domain: Option<Threshold>,
}

impl OutboundRules {
    pub(crate) fn new(params: &Params, on: &dyn Fn(usize) -> bool, cap: usize) -> OutboundRules {
        let th = |rule: usize| on(rule).then(|| Threshold::new(rule, params, "recipients", cap));
        let rules = OutboundRules {
            pending: Keyed::new(cap),
            track_submissions: false,
            burst_account: th(ids::OUTBOUND_BURST_ACCOUNT),
            burst_sender: th(ids::OUTBOUND_BURST_SENDER),
            rate: on(ids::OUTBOUND_RATE_CHANGE).then(|| {
                let r = ids::OUTBOUND_RATE_CHANGE;
                RateChange {
                    floor: params.get(r, "floor") as u64,
                    factor: params.get(r, "factor") as u64,
                    history: params.get(r, "history"),
                    min_history: params.get(r, "min_history") as usize,
                    rings: Keyed::new(cap),
                }
            }),
            new_sender: on(ids::OUTBOUND_NEW_SENDER).then(|| NewSender {
                learn: params
                    .get(ids::OUTBOUND_NEW_SENDER, "learn")
                    .saturating_mul(MICROS),
                start: i64::MAX,
                seen: Keyed::new(cap),
            }),
            not_mailbox: on(ids::SENDER_NOT_MAILBOX),
            spread: on(ids::RECIPIENT_DOMAINS_SPREAD)
                .then(|| DistinctCount::new(ids::RECIPIENT_DOMAINS_SPREAD, params, "domains", cap)),
            bounce: on(ids::BOUNCE_RATIO).then(|| {
                let r = ids::BOUNCE_RATIO;
                Bounce {
                    min: params.get(r, "min_recipients") as u64,
                    ratio: params.get(r, "ratio") as u64,
                    span: params.get(r, "window").saturating_mul(MICROS),
                    keys: Keyed::new(cap),
                }
            }),
            open_relay: on(ids::OPEN_RELAY),
            own_domain: on(ids::OWN_DOMAIN_UNAUTHENTICATED)
                .then(|| Threshold::new(ids::OWN_DOMAIN_UNAUTHENTICATED, params, "count", cap)),
        };
        OutboundRules {
            track_submissions: rules.burst_account.is_some()
                || rules.burst_sender.is_some()
                || rules.rate.is_some()
                || rules.new_sender.is_some()
                || rules.not_mailbox,
            ..rules
        }
    }

    pub(crate) fn on_postfix(&mut self, p: &PostfixEvent<'_>, cx: Cx<'_>, book: &mut Book, env: &Env) {
        if !self.track_submissions {
            return;
        }
        let Some(qid) = p.queue_id else {
            return;
        };
        let t = cx.ts.unix_micros;
        match &p.msg {
            PostfixMsg::ClientAccepted {
                client,
                sasl_username: Some(user),
                ..
            } => {
                self.pending.entry(qid.as_str(), t, || Pending {
                    user: Some(lower(user).into_owned().into_boxed_str()),
                    ip: client_ip(client.ip).map(Into::into),
                    uid: None,
                    line: cx.sample(),
                });
            }
            PostfixMsg::Pickup { uid, .. } => {
                self.pending.entry(qid.as_str(), t, || Pending {
                    user: None,
                    ip: None,
                    uid: Some(*uid),
                    line: cx.sample(),
                });
            }
            PostfixMsg::QueueActive { from, nrcpt, .. } => {
                if let Some(pending) = self.pending.remove(qid.as_str()) {
                    let from = lower(from);
                    let sub = Submission {
                        user: pending.user.as_deref(),
                        uid: pending.uid,
                        ip: pending.ip.as_deref(),
                        from: &from,
                        nrcpt: u64::from(*nrcpt).clamp(1, MAX_RCPT),
                        client_line: &pending.line,
                    };
                    self.on_submission(&sub, cx, book, env);
                }
            }
            _ => {}
        }
    }

    fn on_submission(&mut self, s: &Submission<'_>, cx: Cx<'_>, book: &mut Book, env: &Env) {
        let ts = cx.ts;
        let t = ts.unix_micros;
        let who = match (s.user, s.uid) {
            (Some(u), _) => format!("user {u}"),
            (None, Some(uid)) => format!("local uid {uid}"),
            (None, None) => "an unknown submitter".to_owned(),
        };
        let ip_fact: Fact<'_> = ("ip", s.ip.unwrap_or(""));
        if let (Some(b), Some(user)) = (&mut self.burst_account, s.user) {
            let span = b.window_secs();
            b.hit(
                book,
                cx,
                user,
                s.nrcpt,
                *s.client_line,
                &[("sender", s.from), ip_fact],
                |n| {
                    format!(
                        "{user} submitted mail to {n} recipients within {}",
                        span_text(span)
                    )
                },
            );
        }
        if let Some(b) = &mut self.burst_sender
            && !s.from.is_empty()
        {
            let span = b.window_secs();
            let from = s.from;
            let by = s.user.unwrap_or(&who);
            b.hit(
                book,
                cx,
                from,
                s.nrcpt,
                cx.sample(),
                &[("user", by), ip_fact],
                |n| format!("mail from <{from}> to {n} recipients within {}", span_text(span)),
            );
        }
        if let (Some(r), Some(user)) = (&mut self.rate, s.user) {
            rate_change(r, book, user, s.nrcpt, cx, s.client_line);
        }
        // Only senders of our domains: mail a local user forwards through
        // sendmail (pickup) keeps its original, foreign sender.
        if let Some(ns) = &mut self.new_sender
            && !s.from.is_empty()
            && (!env.knows_domains() || domain_of(s.from).is_some_and(|d| env.is_ours(d)))
        {
            ns.start = ns.start.min(t);
            let known = ns.seen.touch(s.from, t).is_some();
            if !known {
                ns.seen.entry(s.from, t, || ());
                if t.saturating_sub(ns.start) >= ns.learn {
                    let rule = ids::OUTBOUND_NEW_SENDER;
                    let facts: [Fact<'_>; 2] = [("submitted_by", &who), ip_fact];
                    if book.active(rule, s.from, ts) {
                        book.extend(rule, s.from, ts, 1, || cx.evidence(), &facts);
                    } else {
                        let days = t.saturating_sub(ns.start) / (86_400 * MICROS);
                        let msg = format!(
                            "first mail from <{}> ({who}) in {days} d of outbound history",
                            s.from
                        );
                        book.open(
                            rule,
                            s.from,
                            ts,
                            ts,
                            1,
                            msg,
                            vec![cx.resolve(s.client_line), cx.evidence()],
                            &facts,
                        );
                    }
                }
            }
        }
        if self.not_mailbox && !s.from.is_empty() {
            not_mailbox(env, book, s.from, &who, s.ip, cx, || {
                vec![cx.resolve(s.client_line), cx.evidence()]
            });
        }
    }

    pub(crate) fn on_record(&mut self, rec: &MessageRecord, cx: Cx<'_>, book: &mut Book, env: &Env) {
        if let (true, Some(hf)) = (self.not_mailbox, rec.header_from.as_deref())
            && (rec.authenticated() || rec.origin == Origin::Pickup)
        {
            let who = rec
                .sasl_username
                .as_deref()
                .map_or_else(|| "a local submission".to_owned(), |u| format!("user {u}"));
            let ip = rec.client.as_ref().map(|c| c.ip.as_str());
            not_mailbox(env, book, &lower(hf), &who, ip, cx, || vec![cx.evidence()]);
        }
        if let Some(user) = rec.sasl_username.as_deref() {
            let user = lower(user);
            if let Some(spread) = &mut self.spread {
                let mut domains: Vec<String> = rec
                    .deliveries
                    .iter()
                    .filter(|d| !is_local_delivery(&d.agent, &d.relay))
                    .filter_map(|d| domain_of(&d.to).map(|x| x.to_ascii_lowercase()))
                    .filter(|d| !env.is_ours(d))
                    .collect();
                domains.sort();
                domains.dedup();
                let span = spread.window_secs();
                for d in &domains {
                    spread.hit(book, cx, &user, d, "domain", &[], |v| {
                        format!(
                            "{user} sent mail to {} different domains within {}",
                            v.len(),
                            span_text(span)
                        )
                    });
                }
            }
            if let Some(b) = &mut self.bounce {
                bounce_ratio(b, book, &user, rec, cx, env);
            }
        }
        if self.open_relay {
            open_relay(book, rec, cx, env);
        }
        if let Some(th) = &mut self.own_domain {
            own_domain(th, book, rec, cx, env);
        }
    }

    pub(crate) fn expire(&mut self, now: i64) {
        // A submission whose qmgr line did not come within an hour was
        // rejected or abandoned.
        self.pending.expire(now.saturating_sub(3600 * MICROS));
        for t in [&mut self.burst_account, &mut self.burst_sender]
            .into_iter()
            .flatten()
        {
            t.expire(now);
        }
        if let Some(s) = &mut self.spread {
            s.expire(now);
        }
        if let Some(t) = &mut self.own_domain {
            t.expire(now);
        }
        if let Some(r) = &mut self.rate {
            r.rings.expire(now.saturating_sub(15 * 86_400 * MICROS));
        }
        if let Some(b) = &mut self.bounce {
            b.keys.expire(now.saturating_sub(b.span));
        }
    }

    pub(crate) fn state(&self, add: &mut dyn FnMut(usize, usize, usize, u64)) {
        for t in [&self.burst_account, &self.burst_sender].into_iter().flatten() {
            add(t.rule, t.keys.len(), t.keys.peak, t.keys.evictions);
        }
        if let Some(s) = &self.spread {
            add(s.rule, s.keys.len(), s.keys.peak, s.keys.evictions);
        }
        if let Some(t) = &self.own_domain {
            add(t.rule, t.keys.len(), t.keys.peak, t.keys.evictions);
        }
        if let Some(r) = &self.rate {
            add(
                ids::OUTBOUND_RATE_CHANGE,
                r.rings.len(),
                r.rings.peak,
                r.rings.evictions,
            );
        }
        if let Some(n) = &self.new_sender {
            add(
                ids::OUTBOUND_NEW_SENDER,
                n.seen.len(),
                n.seen.peak,
                n.seen.evictions,
            );
        }
        if let Some(b) = &self.bounce {
            add(ids::BOUNCE_RATIO, b.keys.len(), b.keys.peak, b.keys.evictions);
        }
        // Pending submissions serve the burst rules; count them there.
        let owner = if self.burst_account.is_some() {
            Some(ids::OUTBOUND_BURST_ACCOUNT)
        } else if self.burst_sender.is_some() {
            Some(ids::OUTBOUND_BURST_SENDER)
        } else {
            None
        };
        if let Some(o) = owner {
            add(o, self.pending.len(), self.pending.peak, self.pending.evictions);
        }
    }
}

fn rate_change(r: &mut RateChange, book: &mut Book, user: &str, n: u64, cx: Cx<'_>, line: &Sample) {
    let ts = cx.ts;
    let local = ts.unix_micros.div_euclid(MICROS) + i64::from(ts.offset_secs);
    let hour = local.div_euclid(3600);
    let ring = r.rings.entry(user, ts.unix_micros, || HourRing::new(hour));
    let count = ring.add(hour, n);
    let base = ring.same_hour(hour, r.history);
    if base.len() < r.min_history {
        return;
    }
    let days = base.len();
    let med = median(base);
    let limit = r.floor.max(med.saturating_mul(r.factor));
    if count < limit {
        return;
    }
    let rule = ids::OUTBOUND_RATE_CHANGE;
    if book.active(rule, user, ts) {
        book.extend(rule, user, ts, n, || cx.resolve(line), &[]);
    } else {
        let h = hour.rem_euclid(24);
        let msg = format!(
            "{user} sent to {count} recipients in the hour {h:02}:00–{h:02}:59; the median for that hour over \
             the last {days} days is {med} (alert at {limit})",
        );
        book.open(rule, user, ts, ts, count, msg, vec![cx.resolve(line)], &[]);
    }
}

#[allow(clippy::too_many_arguments)]
fn not_mailbox(
    env: &Env,
    book: &mut Book,
    sender: &str,
    who: &str,
    ip: Option<&str>,
    cx: Cx<'_>,
    evidence: impl FnOnce() -> Vec<Evidence>,
) {
    let ts = cx.ts;
    let Some(dir) = &env.directory else {
        return;
    };
    if dir.status(sender) != SenderStatus::Unknown {
        return;
    }
    let rule = ids::SENDER_NOT_MAILBOX;
    let facts: [Fact<'_>; 2] = [("submitted_by", who), ("ip", ip.unwrap_or(""))];
    if book.active(rule, sender, ts) {
        if let Some(e) = evidence().pop() {
            book.extend(rule, sender, ts, 1, || e, &facts);
        }
    } else {
        let from = ip.map(|i| format!(" from {i}")).unwrap_or_default();
        let msg = format!(
            "mail left as <{sender}> ({who}{from}), an address of our domain that is no mailbox or alias"
        );
        book.open(rule, sender, ts, ts, 1, msg, evidence(), &facts);
    }
}

const FAILED: [DeliveryStatus; 5] = [
    DeliveryStatus::Bounced,
    DeliveryStatus::Expired,
    DeliveryStatus::Deferred,
    DeliveryStatus::Softbounce,
    DeliveryStatus::Undeliverable,
];

fn bounce_ratio(b: &mut Bounce, book: &mut Book, user: &str, rec: &MessageRecord, cx: Cx<'_>, env: &Env) {
    let ts = cx.ts;
    let mut total = 0u64;
    let mut failed = 0u64;
    for o in rec.outcomes() {
        if is_local_delivery(&o.last.agent, &o.last.relay) || domain_of(o.to).is_some_and(|d| env.is_ours(d))
        {
            continue;
        }
        total += 1;
        if FAILED.contains(&o.status) {
            failed += 1;
        }
    }
    if total == 0 {
        return;
    }
    let rule = ids::BOUNCE_RATIO;
    if book.active(rule, user, ts) {
        if failed > 0 {
            book.extend(rule, user, ts, failed, || cx.evidence(), &[]);
        }
        return;
    }
    let k = b.keys.entry(user, ts.unix_micros, MinuteBuckets::default);
    let (all, bad) = k.add(ts.unix_micros, total, failed, b.span);
    if all >= b.min && bad.saturating_mul(100) >= b.ratio.saturating_mul(all) {
        k.clear();
        let msg = format!(
            "{bad} of {all} external recipients of {user}'s mail within {} bounced, expired or stayed deferred ({}%)",
            span_text(b.span / MICROS),
            bad * 100 / all
        );
        book.open(rule, user, ts, ts, bad, msg, vec![cx.evidence()], &[]);
    }
}

fn open_relay(book: &mut Book, rec: &MessageRecord, cx: Cx<'_>, env: &Env) {
    let ts = cx.ts;
    if rec.sasl_username.is_some() || rec.origin != Origin::Smtp || rec.uid.is_some() {
        return;
    }
    let Some(client) = &rec.client else {
        return;
    };
    let Some(ip) = client_ip(&client.ip) else {
        return;
    };
    if env.is_trusted(ip) {
        return;
    }
    let mut relayed: Vec<&str> = Vec::new();
    for d in &rec.deliveries {
        if is_local_delivery(&d.agent, &d.relay) {
            continue;
        }
        let ours = |a: &str| domain_of(a).is_some_and(|x| env.is_ours(x));
        // Alias forwarding: the original recipient is ours.
        if ours(&d.to) || d.orig_to.as_deref().is_some_and(ours) {
            continue;
        }
        if !relayed.contains(&d.to.as_str()) {
            relayed.push(&d.to);
        }
    }
    if relayed.is_empty() {
        return;
    }
    let from = rec.from.as_deref().unwrap_or("");
    let claims_ours = domain_of(from).is_some_and(|d| env.is_ours(d));
    let rule = ids::OPEN_RELAY;
    let facts: Vec<Fact<'_>> = std::iter::once(("sender", from))
        .chain(relayed.iter().map(|r| ("recipient", *r)))
        .collect();
    if book.active(rule, ip, ts) {
        book.extend(rule, ip, ts, 1, || cx.evidence(), &facts);
    } else {
        let mut msg = format!(
            "{ip} ({}) had a message from <{from}> relayed without authentication to {} recipient{} outside our \
             domains",
            client.name,
            relayed.len(),
            if relayed.len() == 1 { "" } else { "s" }
        );
        if claims_ours {
            msg.push_str("; the sender claims one of our domains");
        }
        book.open(rule, ip, ts, ts, 1, msg, vec![cx.evidence()], &facts);
    }
}

fn own_domain(th: &mut Threshold, book: &mut Book, rec: &MessageRecord, cx: Cx<'_>, env: &Env) {
    if rec.sasl_username.is_some() || rec.origin != Origin::Smtp {
        return;
    }
    let Some(client) = &rec.client else {
        return;
    };
    let Some(ip) = client_ip(&client.ip) else {
        return;
    };
    let from = rec.from.as_deref().map(lower).unwrap_or_default();
    let Some(domain) = domain_of(&from) else {
        return;
    };
    if env.is_trusted(ip) || !env.is_ours(domain) {
        return;
    }
    let local = rec
        .deliveries
        .iter()
        .any(|d| is_local_delivery(&d.agent, &d.relay));
    if !local {
        return;
    }
    let domain = domain.to_owned();
    let facts: [Fact<'_>; 2] = [("sender", &from), ("ip", ip)];
    if is_internal(ip) {
        // From inside (mynetworks), one message is enough.
        let rule = th.rule;
        if book.active(rule, &domain, cx.ts) {
            book.extend(rule, &domain, cx.ts, 1, || cx.evidence(), &facts);
        } else {
            let msg = format!("{ip}, an internal address, sent mail as <{from}> without authentication");
            book.open(rule, &domain, cx.ts, cx.ts, 1, msg, vec![cx.evidence()], &facts);
        }
        return;
    }
    let span = th.window_secs();
    th.hit(book, cx, &domain, 1, cx.sample(), &facts, |n| {
        format!(
            "{n} unauthenticated messages claiming {domain} were accepted within {}",
            span_text(span)
        )
    });
}

/// Private, loopback, link-local, shared (CGNAT) and unique-local addresses.
fn is_internal(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xC0) == 64)
        }
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00 || (a.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

/// A one-line summary of a message, for evidence (with the position of its
/// first line).
pub(crate) fn record_summary(rec: &MessageRecord) -> String {
    let mut s = format!("message {}", rec.queue_id);
    if let Some(f) = &rec.from {
        s.push_str(&format!(" from <{f}>"));
    }
    if let Some(u) = &rec.sasl_username {
        s.push_str(&format!(" by {u}"));
    }
    if let Some(c) = &rec.client {
        s.push_str(&format!(" via {}[{}]", c.name, c.ip));
    }
    let outcomes = rec.outcomes();
    s.push_str(&format!(" to {} recipient(s):", outcomes.len()));
    for o in outcomes.iter().take(5) {
        s.push_str(&format!(" {} {} ({});", o.to, o.status, cut(&o.last.detail, 80)));
    }
    if outcomes.len() > 5 {
        s.push_str(" …");
    }
    s
}

/// Whether any outbound rule can use the record (the summary is built only
/// for these).
pub(crate) fn record_matters(rec: &MessageRecord, env: &Env) -> bool {
    rec.sasl_username.is_some()
        || rec.header_from.is_some()
        || (rec.origin == Origin::Smtp
            && (rec
                .deliveries
                .iter()
                .any(|d| !is_local_delivery(&d.agent, &d.relay))
                || rec
                    .from
                    .as_deref()
                    .and_then(domain_of)
                    .is_some_and(|d| env.is_ours(d))))
}
