//! Login rules: brute force per address (fast and slow), password spraying,
//! distributed guessing per account, honeypot and unknown user names, a
//! success after failures, and logins from networks an account never used.
//!
//! Every login family feeds one shape of observation ([`AuthObs`]):
//!
//! - failures at the front door — Postfix `SASL … authentication failed`,
//!   Dovecot `auth failed, N attempts` disconnects (IMAP, POP3, submission,
//!   ManageSieve), SOGo `Login … might not have worked` and DAV wrong
//!   passwords — counted for the per-address thresholds;
//! - the auth service's own verdicts (`Password mismatch`, `unknown user`),
//!   which repeat a front-door failure, so they feed only the rules that count
//!   *distinct* names or addresses (a repeat changes nothing there) and the
//!   unknown-user rule;
//! - successes — Dovecot logins, SOGo logins, authenticated Postfix
//!   submissions.

use rustc_hash::FxHashSet;

use super::Cx;
use super::alert::{Book, Evidence, Fact};
use super::catalog::{Params, ids};
use super::primitive::{DistinctCount, Hit, Threshold, span_text};
use super::state::{Keyed, MICROS, client_ip, lower, network_of};
use crate::event::{Event, EventKind};
use crate::parse::dovecot::{AuthFailReason, DovecotEvent, LoginAbortReason};
use crate::parse::postfix::PostfixMsg;
use crate::parse::sogo::{AuthFailureReason, SogoEvent};

/// Attempts one line may stand for at most (Dovecot's `N attempts` is
/// attacker-influenced; a forged huge number must not swamp the counts).
const MAX_WEIGHT: u64 = 100;

/// A login observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthObs<'a> {
    /// A failed attempt.
    Fail {
        ip: Option<&'a str>,
        user: Option<&'a str>,
        service: &'a str,
        weight: u64,
        /// Seen at the front door (counts); else the auth service's verdict.
        frontend: bool,
        unknown_user: bool,
    },
    /// A successful login.
    Success {
        ip: Option<&'a str>,
        user: &'a str,
        service: &'a str,
    },
}

/// The login observation an event stands for, if any.
pub(crate) fn observe<'a>(ev: &Event<'a>) -> Option<AuthObs<'a>> {
    match &ev.kind {
        EventKind::Postfix(p) => match &p.msg {
            PostfixMsg::SaslAuthFailed {
                client,
                sasl_username,
                ..
            } => Some(AuthObs::Fail {
                ip: client_ip(client.ip),
                user: *sasl_username,
                service: p.service,
                weight: 1,
                frontend: true,
                unknown_user: false,
            }),
            PostfixMsg::ClientAccepted {
                client,
                sasl_username: Some(u),
                ..
            } => Some(AuthObs::Success {
                ip: client_ip(client.ip),
                user: u,
                service: p.service,
            }),
            _ => None,
        },
        EventKind::Dovecot(d) => match d {
            DovecotEvent::LoginAborted {
                reason: LoginAbortReason::AuthFailed,
                service,
                user,
                rip,
                attempts,
                ..
            } => Some(AuthObs::Fail {
                ip: rip.and_then(client_ip),
                user: *user,
                service,
                weight: u64::from(attempts.unwrap_or(1)).clamp(1, MAX_WEIGHT),
                frontend: true,
                unknown_user: false,
            }),
            DovecotEvent::AuthFailure {
                user,
                rip,
                reason: reason @ (AuthFailReason::PasswordMismatch | AuthFailReason::UnknownUser),
                ..
            } => Some(AuthObs::Fail {
                ip: rip.and_then(client_ip),
                user: *user,
                service: "auth",
                weight: 1,
                frontend: false,
                unknown_user: *reason == AuthFailReason::UnknownUser,
            }),
            DovecotEvent::Login {
                user: Some(u),
                rip,
                service,
                ..
            } => Some(AuthObs::Success {
                ip: rip.and_then(client_ip),
                user: u,
                service,
            }),
            _ => None,
        },
        EventKind::Sogo(s) => match s {
            // `bound: 1` with a policy error: the password was right.
            SogoEvent::LoginFailed {
                bound: Some(true), ..
            } => None,
            SogoEvent::LoginFailed { client, user, .. } => Some(AuthObs::Fail {
                ip: client.and_then(client_ip),
                user: Some(user),
                service: "sogo",
                weight: 1,
                frontend: true,
                unknown_user: false,
            }),
            SogoEvent::AuthFailed {
                user,
                reason: AuthFailureReason::WrongPassword,
                ..
            } => Some(AuthObs::Fail {
                ip: None,
                user: *user,
                service: "sogo-dav",
                weight: 1,
                frontend: true,
                unknown_user: false,
            }),
            SogoEvent::LoginSucceeded { client, user, .. } => Some(AuthObs::Success {
                ip: client.and_then(client_ip),
                user,
                service: "sogo",
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Honeypot names, split by how they match.
#[derive(Debug)]
struct Honeypot {
    /// Bare names and whole addresses.
    exact: FxHashSet<Box<str>>,
    /// `name@`: the local part in any domain.
    local_parts: FxHashSet<Box<str>>,
}

impl Honeypot {
    fn new(names: Vec<String>) -> Honeypot {
        let mut h = Honeypot {
            exact: FxHashSet::default(),
            local_parts: FxHashSet::default(),
        };
        for n in names {
            match n.strip_suffix('@') {
                Some(local) => h.local_parts.insert(local.into()),
                None => h.exact.insert(n.into_boxed_str()),
            };
        }
        h
    }

    fn matches(&self, user: &str) -> bool {
        self.exact.contains(user)
            || user
                .split_once('@')
                .is_some_and(|(local, _)| self.local_parts.contains(local))
    }
}

/// What an account has logged in from.
#[derive(Debug)]
struct Account {
    first: i64,
    nets: Vec<(Box<str>, i64)>,
}

const MAX_NETS: usize = 32;

/// The login rules' state.
pub(crate) struct AuthRules {
    bruteforce: Option<Threshold>,
    slow: Option<Threshold>,
    /// Address → until when the slow rule keeps quiet (the fast one fired).
    fast_until: Keyed<i64>,
    spraying: Option<DistinctCount>,
    distributed: Option<DistinctCount>,
    honeypot: Option<Honeypot>,
    unknown: Option<DistinctCount>,
    after: Option<Threshold>,
    new_network: Option<(i64, Keyed<Account>)>,
}

impl AuthRules {
    pub(crate) fn new(
        params: &Params,
        on: &dyn Fn(usize) -> bool,
        cap: usize,
        honeypot: Vec<String>,
    ) -> AuthRules {
        let th = |rule: usize, count: &str| on(rule).then(|| Threshold::new(rule, params, count, cap));
        let dc = |rule: usize, count: &str| on(rule).then(|| DistinctCount::new(rule, params, count, cap));
        AuthRules {
            bruteforce: th(ids::AUTH_BRUTEFORCE_IP, "failures"),
            slow: th(ids::AUTH_SLOW_GUESSING, "failures"),
            fast_until: Keyed::new(cap),
            spraying: dc(ids::AUTH_SPRAYING_IP, "users"),
            distributed: dc(ids::AUTH_DISTRIBUTED_ACCOUNT, "ips"),
            honeypot: (on(ids::AUTH_HONEYPOT_USER) && !honeypot.is_empty()).then(|| Honeypot::new(honeypot)),
            unknown: dc(ids::AUTH_UNKNOWN_USER, "users"),
            after: th(ids::AUTH_SUCCESS_AFTER_FAILURES, "failures"),
            new_network: on(ids::ACCOUNT_NEW_NETWORK).then(|| {
                (
                    params
                        .get(ids::ACCOUNT_NEW_NETWORK, "learn")
                        .saturating_mul(MICROS),
                    Keyed::new(cap),
                )
            }),
        }
    }

    pub(crate) fn on_event(&mut self, ev: &Event<'_>, cx: Cx<'_>, book: &mut Book) {
        match observe(ev) {
            Some(AuthObs::Fail {
                ip,
                user,
                service,
                weight,
                frontend,
                unknown_user,
            }) => {
                let user = user.map(lower);
                self.on_fail(
                    ip,
                    user.as_deref(),
                    service,
                    weight,
                    frontend,
                    unknown_user,
                    cx,
                    book,
                );
            }
            Some(AuthObs::Success { ip, user, service }) => {
                let user = lower(user);
                self.on_success(ip, &user, service, cx, book);
            }
            None => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_fail(
        &mut self,
        ip: Option<&str>,
        user: Option<&str>,
        service: &str,
        weight: u64,
        frontend: bool,
        unknown_user: bool,
        cx: Cx<'_>,
        book: &mut Book,
    ) {
        let ts = cx.ts;
        let t = ts.unix_micros;
        if let (Some(h), Some(u)) = (&self.honeypot, user)
            && h.matches(u)
        {
            honeypot_hit(book, ip, u, service, cx, "failed login");
        }
        let svc: Fact<'_> = ("service", service);
        let facts: [Fact<'_>; 2] = [("user", user.unwrap_or("")), svc];
        if frontend && let Some(ip) = ip {
            if let Some(bf) = &mut self.bruteforce {
                let span = bf.window_secs();
                let hit = bf.hit(book, cx, ip, weight, cx.sample(), &facts, |n| {
                    format!("{n} failed logins from {ip} within {}", span_text(span))
                });
                if hit == Hit::Opened
                    && let Some(slow) = &self.slow
                {
                    *self.fast_until.entry(ip, t, || i64::MIN) = t.saturating_add(slow.span);
                }
            }
            if let Some(slow) = &mut self.slow {
                let quiet = self.fast_until.get(ip).is_some_and(|until| *until >= t);
                if !quiet {
                    let span = slow.window_secs();
                    slow.hit(book, cx, ip, weight, cx.sample(), &facts, |n| {
                        format!(
                            "{n} failed logins from {ip} within {}, paced below the brute-force threshold",
                            span_text(span)
                        )
                    });
                }
            }
            if let Some(after) = &mut self.after {
                after.count(ip, cx, weight);
            }
        }
        if let (Some(ip), Some(u)) = (ip, user) {
            if let Some(sp) = &mut self.spraying {
                let span = sp.window_secs();
                sp.hit(book, cx, ip, u, "user", &[svc], |v| {
                    format!(
                        "{ip} failed to log in as {} different users within {}",
                        v.len(),
                        span_text(span)
                    )
                });
            }
            if let Some(d) = &mut self.distributed {
                let span = d.window_secs();
                d.hit(book, cx, u, ip, "ip", &[svc], |v| {
                    format!(
                        "logins as {u} failed from {} different addresses within {}",
                        v.len(),
                        span_text(span)
                    )
                });
            }
            if unknown_user && let Some(un) = &mut self.unknown {
                let span = un.window_secs();
                un.hit(book, cx, ip, u, "user", &[], |v| {
                    format!(
                        "{ip} tried {} user names that do not exist within {}",
                        v.len(),
                        span_text(span)
                    )
                });
            }
        }
    }

    fn on_success(&mut self, ip: Option<&str>, user: &str, service: &str, cx: Cx<'_>, book: &mut Book) {
        let ts = cx.ts;
        let t = ts.unix_micros;
        if let Some(h) = &self.honeypot
            && h.matches(user)
        {
            honeypot_hit(book, ip, user, service, cx, "successful login");
        }
        let Some(ip) = ip else {
            return;
        };
        if let Some(after) = &mut self.after {
            let key = format!("{ip} {user}");
            let facts: [Fact<'_>; 3] = [("ip", ip), ("user", user), ("service", service)];
            if book.active(after.rule, &key, ts) {
                book.extend(after.rule, &key, ts, 0, || cx.evidence(), &facts);
            } else if let Some(w) = after.keys.touch(ip, t) {
                let failures = w.sum_before(t, after.span);
                if failures >= after.need {
                    let first = w.first_ts().unwrap_or(ts);
                    let items = w.take();
                    after.keys.remove(ip);
                    let mut evidence: Vec<Evidence> = items.iter().map(|i| cx.resolve(&i.sample)).collect();
                    evidence.push(cx.evidence());
                    let msg = format!(
                        "{user} logged in ({service}) from {ip} after {failures} failed attempts from that address \
                         within {}",
                        span_text(after.window_secs())
                    );
                    book.open(after.rule, &key, first, ts, failures, msg, evidence, &facts);
                }
            }
        }
        if let Some((learn, accounts)) = &mut self.new_network
            && let Some(net) = network_of(ip)
        {
            let acct = accounts.entry(user, t, || Account {
                first: t,
                nets: Vec::new(),
            });
            acct.first = acct.first.min(t);
            if let Some(n) = acct.nets.iter_mut().find(|(n, _)| **n == *net) {
                n.1 = n.1.max(t);
                return;
            }
            let known_for = t.saturating_sub(acct.first);
            let before: Vec<String> = acct.nets.iter().map(|(n, _)| n.to_string()).collect();
            if acct.nets.len() >= MAX_NETS
                && let Some(i) = acct
                    .nets
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (n, last))| (*last, n.clone()))
                    .map(|(i, _)| i)
            {
                acct.nets.swap_remove(i);
            }
            acct.nets.push((net.clone().into_boxed_str(), t));
            if known_for >= *learn && !before.is_empty() {
                let rule = ids::ACCOUNT_NEW_NETWORK;
                let facts: [Fact<'_>; 3] = [("network", &net), ("ip", ip), ("service", service)];
                if book.active(rule, user, ts) {
                    book.extend(rule, user, ts, 1, || cx.evidence(), &facts);
                } else {
                    let days = known_for / (86_400 * MICROS);
                    let msg = format!(
                        "{user} logged in ({service}) from {ip}, network {net}, not used by the account in {days} d \
                         of history (known: {})",
                        before.join(", ")
                    );
                    book.open(rule, user, ts, ts, 1, msg, vec![cx.evidence()], &facts);
                }
            }
        }
    }

    pub(crate) fn expire(&mut self, now: i64) {
        for t in [&mut self.bruteforce, &mut self.slow, &mut self.after]
            .into_iter()
            .flatten()
        {
            t.expire(now);
        }
        for d in [&mut self.spraying, &mut self.distributed, &mut self.unknown]
            .into_iter()
            .flatten()
        {
            d.expire(now);
        }
        self.fast_until.expire(now.saturating_sub(86_400 * MICROS));
        if let Some((learn, accounts)) = &mut self.new_network {
            // An account idle for a month (or the learning period, if longer)
            // is learned again from scratch.
            accounts.expire(now.saturating_sub((*learn).max(30 * 86_400 * MICROS)));
        }
    }

    pub(crate) fn state(&self, add: &mut dyn FnMut(usize, usize, usize, u64)) {
        for t in [&self.bruteforce, &self.slow, &self.after].into_iter().flatten() {
            add(t.rule, t.keys.len(), t.keys.peak, t.keys.evictions);
        }
        for d in [&self.spraying, &self.distributed, &self.unknown]
            .into_iter()
            .flatten()
        {
            add(d.rule, d.keys.len(), d.keys.peak, d.keys.evictions);
        }
        if self.slow.is_some() {
            add(
                ids::AUTH_SLOW_GUESSING,
                self.fast_until.len(),
                self.fast_until.peak,
                self.fast_until.evictions,
            );
        }
        if let Some((_, a)) = &self.new_network {
            add(ids::ACCOUNT_NEW_NETWORK, a.len(), a.peak, a.evictions);
        }
    }
}

/// A honeypot name was used: one alert per address (or per name when the
/// address is unknown), open at the first attempt.
fn honeypot_hit(book: &mut Book, ip: Option<&str>, user: &str, service: &str, cx: Cx<'_>, what: &str) {
    let rule = ids::AUTH_HONEYPOT_USER;
    let key = ip.map_or_else(|| format!("user {user}"), str::to_owned);
    let facts: [Fact<'_>; 3] = [("user", user), ("service", service), ("ip", ip.unwrap_or(""))];
    if book.active(rule, &key, cx.ts) {
        book.extend(rule, &key, cx.ts, 1, || cx.evidence(), &facts);
    } else {
        let from = ip.map(|i| format!(" from {i}")).unwrap_or_default();
        let msg = format!("{what} as honeypot user {user} ({service}){from}");
        book.open(
            rule,
            &key,
            cx.ts,
            cx.ts,
            1,
            msg,
            vec![Evidence::line(cx.pos, cx.ts, cx.raw)],
            &facts,
        );
    }
}
