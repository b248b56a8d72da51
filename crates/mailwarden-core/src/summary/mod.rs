//! The traffic summary: everything pflogsumm reports, counted correctly under
//! content-filter re-injection, plus what it lacks (postscreen and DNSBL
//! statistics, outbound volume per SASL user, senders that never
//! authenticated, unauthenticated relaying, unparsed-line accounting).
//!
//! Two feeds: [`Summarizer::on_event`] sees every line (connections, rejects,
//! postscreen, SASL failures, warnings, unparsed lines) and
//! [`Summarizer::on_message`] sees every stitched message (received, delivered,
//! deferred, bounced, sizes, senders, recipients). Message-level figures come
//! from stitched records so a re-injected message counts once and a delivery to
//! the content filter is not a delivery.
//!
//! Memory grows with the number of distinct keys (senders, clients, reasons),
//! not with the number of lines.

mod render;

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use render::render_text;

use crate::escape::escape_for_terminal;
use crate::event::{Event, EventKind, Position, UnparsedReason};
use crate::parse::FAMILIES;
use crate::parse::postfix::{AbortReason, Action, DeliveryStatus, PostfixMsg};
use crate::parse::text::domain_of;
use crate::stitch::{MessageRecord, Origin, StitchStats, host_key};
use crate::time::{Date, Timestamp};

/// What the summary shows.
#[derive(Clone, Debug)]
pub struct SummaryConfig {
    /// Rows in each top list.
    pub top: usize,
    /// Domains we host. Added to the ones inferred from local deliveries and
    /// SASL user names; used to flag unauthenticated senders claiming them.
    pub local_domains: Vec<String>,
    /// Unparsed-line samples kept per reason.
    pub unparsed_samples: usize,
}

impl Default for SummaryConfig {
    fn default() -> SummaryConfig {
        SummaryConfig {
            top: 10,
            local_domains: Vec::new(),
            unparsed_samples: 5,
        }
    }
}

/// A key with a count and a byte total.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counted {
    /// What is counted.
    pub key: String,
    /// How often.
    pub count: u64,
    /// Bytes, where meaningful.
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Line accounting: every input line is an event or an unparsed record.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LineCounts {
    /// Lines read.
    pub total: u64,
    /// Lines that became typed events.
    pub events: u64,
    /// Lines kept as unparsed records.
    pub unparsed: u64,
    /// Typed events per family.
    pub by_family: BTreeMap<String, u64>,
}

/// Unparsed lines of one reason, with samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnparsedGroup {
    /// The reason.
    pub reason: UnparsedReason,
    /// What it means.
    pub description: &'static str,
    /// How many lines.
    pub count: u64,
    /// The first few lines (escaped, truncated) with their positions.
    pub samples: Vec<UnparsedSample>,
}

/// One sample unparsed line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnparsedSample {
    /// Where.
    pub position: Position,
    /// The program, when the framing found one.
    pub program: String,
    /// The line, truncated to 300 characters.
    pub text: String,
}

/// Grand totals (pflogsumm's first section, with corrected semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Messages that entered the queue over SMTP or local submission (a
    /// re-injected copy is the same message and is not counted again).
    pub received: u64,
    /// Of which submitted locally (sendmail/pickup).
    pub received_local: u64,
    /// Recipients delivered (final hops only; hand-offs to a content filter excluded).
    pub delivered: u64,
    /// Of which handed to another server (smtp).
    pub delivered_remote: u64,
    /// Recipients expanded by local(8) into a new message (`forwarded as`).
    pub forwarded: u64,
    /// Messages with at least one deferred attempt.
    pub deferred: u64,
    /// Deferred delivery attempts.
    pub deferrals: u64,
    /// Recipients bounced.
    pub bounced: u64,
    /// Messages that expired in the queue.
    pub expired: u64,
    /// Rejections of all kinds (smtpd, postscreen, cleanup/milter).
    pub rejected: u64,
    /// … by smtpd access restrictions.
    pub rejected_smtpd: u64,
    /// … by postscreen.
    pub rejected_postscreen: u64,
    /// … by cleanup (milters, header/body checks) after DATA.
    pub rejected_content: u64,
    /// `reject_warning` (would have rejected).
    pub reject_warnings: u64,
    /// Messages placed on hold.
    pub held: u64,
    /// Messages discarded.
    pub discarded: u64,
    /// Delivery status notifications Postfix generated (bounces, delay warnings).
    pub notifications: u64,
    /// Bytes of received messages.
    pub bytes_received: u64,
    /// Bytes delivered (size × delivered recipients).
    pub bytes_delivered: u64,
    /// Distinct envelope senders of received mail.
    pub senders: u64,
    /// Distinct sender domains.
    pub sending_domains: u64,
    /// Distinct recipients.
    pub recipients: u64,
    /// Distinct recipient domains.
    pub recipient_domains: u64,
    /// Re-injected copies merged into their message (what pflogsumm double-counts).
    pub reinjections_merged: u64,
    /// Messages still open at the end of input or evicted before completion.
    pub incomplete: u64,
    /// Sessions that got a queue id (`client=`) but left before DATA: nothing
    /// was queued (recipient probes, sender-verification callouts).
    pub abandoned: u64,
}

/// Traffic in one day (local time of the log).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayTraffic {
    /// The date.
    pub date: Option<Date>,
    /// Received messages.
    pub received: u64,
    /// Delivered recipients.
    pub delivered: u64,
    /// Deferred attempts.
    pub deferred: u64,
    /// Bounced recipients.
    pub bounced: u64,
    /// Rejections.
    pub rejected: u64,
}

/// Per-recipient-domain delivery figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DomainDelivery {
    /// Recipient domain.
    pub domain: String,
    /// Recipients delivered.
    pub sent: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Deferred attempts.
    pub deferred: u64,
    /// Bounced recipients.
    pub bounced: u64,
    /// Average delay of delivered recipients (seconds).
    pub avg_delay: f64,
    /// Maximum delay (seconds).
    pub max_delay: f64,
}

/// Rejections with one (normalised) reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReasonGroup {
    /// Where: `smtpd RCPT`, `postscreen`, `cleanup END-OF-MESSAGE`, a relay domain…
    pub scope: String,
    /// The reason, with addresses and client IPs generalised.
    pub reason: String,
    /// How often.
    pub count: u64,
    /// The top clients, senders or recipients behind it.
    pub top: Vec<Counted>,
}

/// smtpd connection statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SmtpdStats {
    /// `connect from` lines.
    pub connections: u64,
    /// Of which from loopback (content-filter re-injection, local
    /// applications); pflogsumm leaves the re-injection listener out.
    pub loopback_connections: u64,
    /// Distinct client hosts.
    pub hosts: u64,
    /// Sum of connect→disconnect time (seconds).
    pub total_seconds: f64,
    /// Average session length (seconds).
    pub avg_seconds: f64,
    /// Longest session (seconds).
    pub max_seconds: f64,
    /// Per day.
    pub per_day: Vec<ConnectionDay>,
    /// Per hour of the day, averaged over the days covered: (connections, seconds connected).
    pub per_hour: Vec<(f64, f64)>,
    /// Top client hosts by connections.
    pub top_hosts: Vec<ConnectionHost>,
    /// Sessions that ended early, by reason and last command.
    pub aborted: Vec<Counted>,
    /// Non-SMTP commands (HTTP probes and the like) by client.
    pub non_smtp_commands: Vec<Counted>,
    /// TLS sessions established (inbound).
    pub tls_sessions: u64,
}

/// Connections in one day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConnectionDay {
    /// Date.
    pub date: Option<Date>,
    /// Connections.
    pub connections: u64,
    /// Total seconds connected.
    pub total_seconds: f64,
    /// Longest session.
    pub max_seconds: f64,
}

/// Connections from one client host.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConnectionHost {
    /// Host (reverse name, or the address when unknown).
    pub host: String,
    /// Connections.
    pub connections: u64,
    /// Total seconds connected.
    pub total_seconds: f64,
    /// Longest session.
    pub max_seconds: f64,
}

/// postscreen and dnsblog statistics (pflogsumm ignores postscreen).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PostscreenStats {
    /// `CONNECT from` lines.
    pub connections: u64,
    /// Clients that passed tests now.
    pub pass_new: u64,
    /// Clients that passed from cache.
    pub pass_old: u64,
    /// Clients that talked before the greeting.
    pub pregreet: u64,
    /// Clients with a DNSBL score.
    pub dnsbl_ranked: u64,
    /// Hangups during tests.
    pub hangups: u64,
    /// Rejections (DNSBL, protocol errors, too many connections).
    pub rejected: u64,
    /// Protocol violations by kind.
    pub violations: Vec<Counted>,
    /// Allow/deny-list verdicts.
    pub listed: Vec<Counted>,
    /// dnsblog listings per DNSBL zone.
    pub dnsbl_zones: Vec<Counted>,
    /// Addresses most often listed.
    pub top_listed_clients: Vec<Counted>,
    /// Clients with the highest DNSBL rank.
    pub top_ranked_clients: Vec<Counted>,
}

/// Outbound and authenticated traffic of one SASL user.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SaslUserVolume {
    /// The SASL user name.
    pub user: String,
    /// Messages submitted.
    pub messages: u64,
    /// Recipients of those messages.
    pub recipients: u64,
    /// Recipients delivered to other servers.
    pub remote_recipients: u64,
    /// Distinct recipient domains.
    pub recipient_domains: u64,
    /// Bytes submitted.
    pub bytes: u64,
    /// Distinct client addresses used.
    pub client_ips: u64,
    /// Distinct envelope senders used.
    pub envelope_senders: u64,
}

/// SASL authentication statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SaslStats {
    /// Authenticated submissions per user.
    pub users: Vec<SaslUserVolume>,
    /// Failed SASL attempts (`SASL … authentication failed`).
    pub failures: u64,
    /// Failed attempts per client address.
    pub failures_by_client: Vec<Counted>,
    /// Failed attempts per user name tried (when Postfix logs it).
    pub failures_by_user: Vec<Counted>,
    /// Sessions whose `disconnect` line shows failed AUTH (`auth=0/N`), per
    /// client; catches failures Postfix logs nowhere else.
    pub failed_auth_sessions: Vec<Counted>,
}

/// An envelope sender seen on mail that was not SASL-authenticated.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UnauthSender {
    /// The envelope sender.
    pub sender: String,
    /// Messages.
    pub messages: u64,
    /// Whether the sender's domain is one we host: mail claiming to be from
    /// us that did not log in — a spoofing attempt, or a relay through
    /// `mynetworks`.
    pub claims_local_domain: bool,
    /// Client addresses it came from (up to five).
    pub clients: Vec<String>,
}

/// One unauthenticated message that left for another server.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UnauthRelay {
    /// Client address.
    pub client: String,
    /// Envelope sender.
    pub sender: String,
    /// Messages relayed.
    pub messages: u64,
    /// Remote recipients.
    pub recipients: u64,
}

/// Warnings, errors, fatals or panics grouped by program and text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LevelGroup {
    /// Program or daemon.
    pub program: String,
    /// The message text (truncated).
    pub text: String,
    /// How often.
    pub count: u64,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// First event time.
    pub first: Option<Timestamp>,
    /// Last event time.
    pub last: Option<Timestamp>,
    /// Line accounting.
    pub lines: LineCounts,
    /// Unparsed lines by reason.
    pub unparsed: Vec<UnparsedGroup>,
    /// Grand totals.
    pub totals: Totals,
    /// Per-day traffic.
    pub per_day: Vec<DayTraffic>,
    /// Per-hour traffic, daily average (index = hour).
    pub per_hour: Vec<HourTraffic>,
    /// Delivery by recipient domain.
    pub delivery_domains: Vec<DomainDelivery>,
    /// Received messages by sender domain.
    pub received_domains: Vec<Counted>,
    /// Top senders by messages.
    pub top_senders: Vec<Counted>,
    /// Top senders by bytes.
    pub top_senders_by_size: Vec<Counted>,
    /// Top recipients by messages.
    pub top_recipients: Vec<Counted>,
    /// Top recipients by bytes.
    pub top_recipients_by_size: Vec<Counted>,
    /// Rejections by reason.
    pub rejects: Vec<ReasonGroup>,
    /// Rejections by client.
    pub reject_clients: Vec<Counted>,
    /// Deferrals by reason.
    pub deferrals: Vec<ReasonGroup>,
    /// Bounces by reason.
    pub bounces: Vec<ReasonGroup>,
    /// smtpd connections.
    pub smtpd: SmtpdStats,
    /// postscreen and DNSBLs.
    pub postscreen: PostscreenStats,
    /// SASL.
    pub sasl: SaslStats,
    /// Domains considered ours (configured and inferred).
    pub local_domains: Vec<String>,
    /// Envelope senders of mail that was not authenticated, local-domain
    /// claims first.
    pub unauthenticated_senders: Vec<UnauthSender>,
    /// Unauthenticated mail that left for other servers (open-relay check).
    pub unauthenticated_relay: Vec<UnauthRelay>,
    /// Dovecot: successful logins per user.
    pub dovecot_logins: Vec<Counted>,
    /// Dovecot: authentication failures per client address.
    pub dovecot_failures_by_client: Vec<Counted>,
    /// Dovecot: authentication failures per user name tried.
    pub dovecot_failures_by_user: Vec<Counted>,
    /// Dovecot auth-process rejections (`Password mismatch`, `unknown user`;
    /// logged with `auth_verbose`), per user and reason.
    pub dovecot_auth_rejects: Vec<Counted>,
    /// Content-scanner verdicts (Rspamd actions, amavis categories).
    pub scanner_verdicts: Vec<Counted>,
    /// Warnings by program and text.
    pub warnings: Vec<LevelGroup>,
    /// Errors.
    pub errors: Vec<LevelGroup>,
    /// Fatal errors.
    pub fatals: Vec<LevelGroup>,
    /// Panics.
    pub panics: Vec<LevelGroup>,
    /// Postfix master starts, reloads and stops.
    pub master: Vec<LevelGroup>,
    /// Stitcher counters.
    pub stitch: StitchStats,
}

/// Traffic in one hour of the day, averaged over the days covered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HourTraffic {
    /// 0..=23.
    pub hour: u8,
    /// Received per day.
    pub received: f64,
    /// Delivered per day.
    pub delivered: f64,
    /// Deferred per day.
    pub deferred: f64,
    /// Bounced per day.
    pub bounced: f64,
    /// Rejected per day.
    pub rejected: f64,
}

#[derive(Default)]
struct Tally {
    map: FxHashMap<Box<str>, (u64, u64)>,
}

impl Tally {
    #[inline]
    fn add(&mut self, key: &str, count: u64, bytes: u64) {
        if let Some(v) = self.map.get_mut(key) {
            v.0 += count;
            v.1 += bytes;
        } else {
            self.map.insert(key.into(), (count, bytes));
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    /// The `n` largest entries by count (ties: bytes, then key).
    fn top_by_count(&self, n: usize) -> Vec<Counted> {
        self.top(n, |a, b| {
            b.count.cmp(&a.count).then_with(|| b.bytes.cmp(&a.bytes))
        })
    }

    /// The `n` largest entries by bytes (ties: count, then key).
    fn top_by_bytes(&self, n: usize) -> Vec<Counted> {
        self.top(n, |a, b| {
            b.bytes.cmp(&a.bytes).then_with(|| b.count.cmp(&a.count))
        })
    }

    fn top(&self, n: usize, order: fn(&Counted, &Counted) -> std::cmp::Ordering) -> Vec<Counted> {
        let mut v: Vec<Counted> = self
            .map
            .iter()
            .map(|(k, (c, b))| Counted {
                key: k.to_string(),
                count: *c,
                bytes: *b,
            })
            .collect();
        v.sort_by(|a, b| order(a, b).then_with(|| a.key.cmp(&b.key)));
        v.truncate(n);
        v
    }
}

#[derive(Default)]
struct ReasonTally {
    groups: FxHashMap<(String, String), (u64, Tally)>,
}

impl ReasonTally {
    fn add(&mut self, scope: &str, reason: String, who: &str) {
        let entry = self.groups.entry((scope.to_owned(), reason)).or_default();
        entry.0 += 1;
        entry.1.add(who, 1, 0);
    }

    fn finish(&self, top: usize) -> Vec<ReasonGroup> {
        let mut v: Vec<ReasonGroup> = self
            .groups
            .iter()
            .map(|((scope, reason), (count, who))| ReasonGroup {
                scope: scope.clone(),
                reason: reason.clone(),
                count: *count,
                top: who.top_by_count(top),
            })
            .collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.scope.cmp(&b.scope))
                .then_with(|| a.reason.cmp(&b.reason))
        });
        v
    }
}

#[derive(Default)]
struct UserAcc {
    messages: u64,
    recipients: u64,
    remote: u64,
    bytes: u64,
    domains: FxHashSet<String>,
    ips: FxHashSet<String>,
    senders: FxHashSet<String>,
}

#[derive(Default)]
struct SenderAcc {
    messages: u64,
    clients: Vec<String>,
}

#[derive(Default, Clone, Copy)]
struct ConnAcc {
    connections: u64,
    total: f64,
    max: f64,
}

/// Accumulates a [`Summary`].
pub struct Summarizer {
    cfg: SummaryConfig,
    summary: Summary,
    unparsed: BTreeMap<UnparsedReason, (u64, Vec<UnparsedSample>)>,
    by_family: [u64; FAMILIES.len()],
    /// The last local date computed, by offset-adjusted day number.
    day_cache: Option<(i64, Date)>,
    days: BTreeMap<Date, DayTraffic>,
    hours: [[u64; 5]; 24],
    domains: FxHashMap<String, DomainDelivery>,
    received_domains: Tally,
    senders: Tally,
    recipients: Tally,
    recipient_domains: FxHashSet<String>,
    rejects: ReasonTally,
    reject_clients: Tally,
    deferrals: ReasonTally,
    bounces: ReasonTally,
    sessions: FxHashMap<(u64, u32), Timestamp>,
    conn_days: BTreeMap<Date, ConnAcc>,
    conn_hours: [(u64, f64); 24],
    conn_hosts: FxHashMap<String, ConnAcc>,
    aborted: Tally,
    non_smtp: Tally,
    ps_violations: Tally,
    ps_listed: Tally,
    dnsbl_zones: Tally,
    listed_clients: Tally,
    ranked_clients: FxHashMap<String, i32>,
    sasl_fail_client: Tally,
    sasl_fail_user: Tally,
    failed_auth_sessions: Tally,
    users: FxHashMap<String, UserAcc>,
    unauth: FxHashMap<String, SenderAcc>,
    unauth_relay: FxHashMap<(String, String), (u64, u64)>,
    inferred_local: FxHashSet<String>,
    dovecot_logins: Tally,
    dovecot_fail_client: Tally,
    dovecot_fail_user: Tally,
    dovecot_auth_rejects: Tally,
    verdicts: Tally,
    levels: [FxHashMap<(String, String), u64>; 5],
}

fn truncate(s: &str, max: usize) -> String {
    let escaped = escape_for_terminal(s);
    if escaped.chars().count() <= max {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Generalises a reject or deferral reason: drops a leading `<address>: `,
/// replaces `[…]` address literals and angle-bracketed addresses so that
/// rejections of the same kind group together.
pub fn normalize_reason(text: &str) -> String {
    let mut t = text.trim();
    if t.starts_with('<')
        && let Some(i) = t.find(">: ")
    {
        t = &t[i + 3..];
    }
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find(['[', '<']) {
        out.push_str(&rest[..i]);
        let open = rest.as_bytes()[i];
        let close = if open == b'[' { ']' } else { '>' };
        let after = &rest[i + 1..];
        match after.find(close) {
            Some(j) => {
                let inner = &after[..j];
                let generic = if open == b'[' {
                    !inner.is_empty()
                        && inner
                            .chars()
                            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
                } else {
                    inner.contains('@')
                };
                if generic {
                    out.push_str(if open == b'[' { "[…]" } else { "<…>" });
                } else {
                    out.push_str(&rest[i..i + 2 + j]);
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    truncate(&out, 160)
}

fn is_local_agent(agent: &str, relay: &str) -> bool {
    matches!(agent, "local" | "virtual" | "lmtp" | "pipe")
        || relay.contains("dovecot")
        || relay.contains("lmtp")
        || relay.contains("[/")
        || relay.contains("[private/")
}

impl Summarizer {
    /// A summarizer with the given options.
    pub fn new(cfg: SummaryConfig) -> Summarizer {
        Summarizer {
            cfg,
            summary: Summary::default(),
            unparsed: BTreeMap::new(),
            by_family: [0; FAMILIES.len()],
            day_cache: None,
            days: BTreeMap::new(),
            hours: [[0; 5]; 24],
            domains: FxHashMap::default(),
            received_domains: Tally::default(),
            senders: Tally::default(),
            recipients: Tally::default(),
            recipient_domains: FxHashSet::default(),
            rejects: ReasonTally::default(),
            reject_clients: Tally::default(),
            deferrals: ReasonTally::default(),
            bounces: ReasonTally::default(),
            sessions: FxHashMap::default(),
            conn_days: BTreeMap::new(),
            conn_hours: [(0, 0.0); 24],
            conn_hosts: FxHashMap::default(),
            aborted: Tally::default(),
            non_smtp: Tally::default(),
            ps_violations: Tally::default(),
            ps_listed: Tally::default(),
            dnsbl_zones: Tally::default(),
            listed_clients: Tally::default(),
            ranked_clients: FxHashMap::default(),
            sasl_fail_client: Tally::default(),
            sasl_fail_user: Tally::default(),
            failed_auth_sessions: Tally::default(),
            users: FxHashMap::default(),
            unauth: FxHashMap::default(),
            unauth_relay: FxHashMap::default(),
            inferred_local: FxHashSet::default(),
            dovecot_logins: Tally::default(),
            dovecot_fail_client: Tally::default(),
            dovecot_fail_user: Tally::default(),
            dovecot_auth_rejects: Tally::default(),
            verdicts: Tally::default(),
            levels: Default::default(),
        }
    }

    /// The local date of a timestamp (cached: consecutive lines share a day).
    fn date_of(&mut self, ts: Option<Timestamp>) -> Date {
        let Some(t) = ts else {
            return Date {
                year: 0,
                month: 0,
                day: 0,
            };
        };
        let day = (t.unix_micros.div_euclid(1_000_000) + i64::from(t.offset_secs)).div_euclid(86_400);
        match self.day_cache {
            Some((d, date)) if d == day => date,
            _ => {
                let date = t.local_date();
                self.day_cache = Some((day, date));
                date
            }
        }
    }

    fn day(&mut self, ts: Option<Timestamp>) -> &mut DayTraffic {
        let date = ts.map(|t| t.local_date());
        let key = date.unwrap_or(Date {
            year: 0,
            month: 0,
            day: 0,
        });
        self.days.entry(key).or_insert_with(|| DayTraffic {
            date,
            ..DayTraffic::default()
        })
    }

    fn hour(&mut self, ts: Option<Timestamp>, col: usize) {
        if let Some(t) = ts {
            self.hours[t.local_hour() as usize][col] += 1;
        }
    }

    /// Counts one line. `raw` is the line as read, for unparsed samples.
    pub fn on_event(&mut self, pos: Position, raw: &str, ev: &Event<'_>) {
        let s = &mut self.summary;
        s.lines.total += 1;
        if let Some(ts) = ev.ts {
            if s.first.is_none_or(|f| ts < f) {
                s.first = Some(ts);
            }
            if s.last.is_none_or(|l| ts > l) {
                s.last = Some(ts);
            }
        }
        match &ev.kind {
            EventKind::Unparsed(u) => {
                s.lines.unparsed += 1;
                let samples = self.cfg.unparsed_samples;
                let entry = self.unparsed.entry(u.reason).or_default();
                entry.0 += 1;
                if entry.1.len() < samples {
                    entry.1.push(UnparsedSample {
                        position: pos,
                        program: truncate(ev.program, 60),
                        text: truncate(raw, 300),
                    });
                }
            }
            EventKind::Postfix(p) => {
                s.lines.events += 1;
                self.by_family[0] += 1;
                self.on_postfix(ev, p.daemon, &p.msg);
            }
            other => {
                s.lines.events += 1;
                let Some(fam) = other.family() else {
                    return;
                };
                if let Some(i) = FAMILIES.iter().position(|f| *f == fam) {
                    self.by_family[i] += 1;
                }
                self.on_other(ev);
            }
        }
    }

    fn level(&mut self, idx: usize, program: &str, text: &str) {
        *self.levels[idx]
            .entry((program.to_owned(), truncate(text, 100)))
            .or_default() += 1;
    }

    fn on_postfix(&mut self, ev: &Event<'_>, daemon: &str, msg: &PostfixMsg<'_>) {
        match msg {
            PostfixMsg::Connect { client } => {
                self.summary.smtpd.connections += 1;
                if client.ip.starts_with("127.") || client.ip == "::1" {
                    self.summary.smtpd.loopback_connections += 1;
                }
                if let (Some(ts), Some(pid)) = (ev.ts, ev.pid) {
                    self.sessions.insert((host_key(ev.host), pid), ts);
                }
                let host = if client.name == "unknown" {
                    client.ip
                } else {
                    client.name
                };
                match self.conn_hosts.get_mut(host) {
                    Some(e) => e.connections += 1,
                    None => {
                        let acc = ConnAcc {
                            connections: 1,
                            ..ConnAcc::default()
                        };
                        self.conn_hosts.insert(host.to_owned(), acc);
                    }
                }
                if let Some(ts) = ev.ts {
                    self.conn_hours[ts.local_hour() as usize].0 += 1;
                }
                let date = self.date_of(ev.ts);
                self.conn_days.entry(date).or_default().connections += 1;
            }
            PostfixMsg::Disconnect { client, stats } => {
                let failed = stats.auth_failures();
                if failed > 0 {
                    self.failed_auth_sessions.add(client.ip, 1, 0);
                }
                if let (Some(ts), Some(pid)) = (ev.ts, ev.pid)
                    && let Some(start) = self.sessions.remove(&(host_key(ev.host), pid))
                {
                    let secs = ts.seconds_since(&start).max(0.0);
                    let sm = &mut self.summary.smtpd;
                    sm.total_seconds += secs;
                    sm.max_seconds = sm.max_seconds.max(secs);
                    let host = if client.name == "unknown" {
                        client.ip
                    } else {
                        client.name
                    };
                    if let Some(h) = self.conn_hosts.get_mut(host) {
                        h.total += secs;
                        h.max = h.max.max(secs);
                    }
                    self.conn_hours[start.local_hour() as usize].1 += secs;
                    let d = self.conn_days.entry(start.local_date()).or_default();
                    d.total += secs;
                    d.max = d.max.max(secs);
                }
            }
            PostfixMsg::SessionAbort { reason, after, .. } => {
                let r = match reason {
                    AbortReason::LostConnection => "lost connection after ",
                    AbortReason::Timeout => "timeout after ",
                    AbortReason::TooManyErrors => "too many errors after ",
                };
                let mut key = String::with_capacity(r.len() + after.len());
                key.push_str(r);
                key.push_str(after);
                self.aborted.add(&key, 1, 0);
            }
            PostfixMsg::NonSmtpCommand { client, .. } => self.non_smtp.add(client.ip, 1, 0),
            PostfixMsg::SaslAuthFailed {
                client,
                sasl_username,
                ..
            } => {
                self.summary.sasl.failures += 1;
                self.sasl_fail_client.add(client.ip, 1, 0);
                if let Some(u) = sasl_username {
                    self.sasl_fail_user.add(u, 1, 0);
                }
            }
            PostfixMsg::TlsEstablished {
                direction: "from", ..
            } if daemon == "smtpd" => {
                self.summary.smtpd.tls_sessions += 1;
            }
            PostfixMsg::Action {
                action,
                stage,
                client,
                text,
                from,
                ..
            } => {
                let t = &mut self.summary.totals;
                match action {
                    Action::Reject | Action::ProxyReject => {
                        t.rejected += 1;
                        let scope = match daemon {
                            "postscreen" => {
                                t.rejected_postscreen += 1;
                                self.summary.postscreen.rejected += 1;
                                "postscreen".to_owned()
                            }
                            "cleanup" => {
                                t.rejected_content += 1;
                                format!("cleanup {stage}")
                            }
                            _ => {
                                t.rejected_smtpd += 1;
                                format!("{daemon} {stage}")
                            }
                        };
                        let who = client.map(|c| c.ip).or(*from).unwrap_or("");
                        self.rejects.add(&scope, normalize_reason(text), who);
                        if let Some(c) = client {
                            self.reject_clients.add(c.ip, 1, 0);
                        }
                        self.day(ev.ts).rejected += 1;
                        self.hour(ev.ts, 4);
                    }
                    Action::RejectWarning => t.reject_warnings += 1,
                    Action::Hold => t.held += 1,
                    Action::Discard => t.discarded += 1,
                    _ => {}
                }
            }
            PostfixMsg::ScreenConnect { .. } => self.summary.postscreen.connections += 1,
            PostfixMsg::ScreenPass { new, .. } => {
                if *new {
                    self.summary.postscreen.pass_new += 1;
                } else {
                    self.summary.postscreen.pass_old += 1;
                }
            }
            PostfixMsg::ScreenPregreet { .. } => self.summary.postscreen.pregreet += 1,
            PostfixMsg::ScreenDnsblRank { rank, ip, .. } => {
                self.summary.postscreen.dnsbl_ranked += 1;
                let e = self.ranked_clients.entry((*ip).to_owned()).or_default();
                *e = (*e).max(*rank);
            }
            PostfixMsg::ScreenHangup { .. } => self.summary.postscreen.hangups += 1,
            PostfixMsg::ScreenViolation { violation, .. } => self.ps_violations.add(violation, 1, 0),
            PostfixMsg::ScreenListed { list, .. } => self.ps_listed.add(list, 1, 0),
            PostfixMsg::DnsblListed { ip, domain, .. } => {
                self.dnsbl_zones.add(domain, 1, 0);
                self.listed_clients.add(ip, 1, 0);
            }
            PostfixMsg::Warning { text } => {
                self.level(0, daemon, text);
            }
            PostfixMsg::Error { text } => self.level(1, daemon, text),
            PostfixMsg::Fatal { text } => self.level(2, daemon, text),
            PostfixMsg::Panic { text } => self.level(3, daemon, text),
            PostfixMsg::Master { text, .. } => self.level(4, daemon, text),
            // Structured warnings are counted in their own sections, and listed
            // with the warnings as pflogsumm does.
            PostfixMsg::RateLimit { limit, client, .. } => {
                self.level(0, daemon, &format!("{limit} limit exceeded from {}", client.ip));
            }
            PostfixMsg::ReverseDnsMismatch { hostname, ip, .. } => {
                self.level(
                    0,
                    daemon,
                    &format!("hostname {hostname} does not resolve to address {ip}"),
                );
            }
            _ => {}
        }
    }

    fn on_other(&mut self, ev: &Event<'_>) {
        if let EventKind::Dovecot(d) = &ev.kind {
            dovecot_hook(self, d);
        }
        if let Some(v) = scanner_verdict_key(&ev.kind) {
            self.verdicts.add(&v, 1, 0);
        }
    }

    /// Counts one stitched message.
    pub fn on_message(&mut self, rec: &MessageRecord) {
        let size = rec.size.unwrap_or(0);
        let received = matches!(rec.origin, Origin::Smtp | Origin::Pickup);
        let t = &mut self.summary.totals;
        t.reinjections_merged += rec.reinjected_as.len() as u64;
        if matches!(
            rec.end,
            crate::stitch::RecordEnd::Open | crate::stitch::RecordEnd::Evicted
        ) {
            t.incomplete += 1;
        }
        if rec.origin == Origin::Notification {
            t.notifications += 1;
        }
        if rec.expired {
            t.expired += 1;
        }
        if rec.end == crate::stitch::RecordEnd::Abandoned {
            t.abandoned += 1;
        }
        if rec
            .actions
            .iter()
            .any(|a| a.action == Action::Discard && a.stage == "content-filter")
        {
            t.discarded += 1;
        }
        if received
            && !matches!(
                rec.end,
                crate::stitch::RecordEnd::Rejected | crate::stitch::RecordEnd::Abandoned
            )
        {
            t.received += 1;
            if rec.origin == Origin::Pickup {
                t.received_local += 1;
            }
            t.bytes_received += size;
            self.day(rec.first_seen).received += 1;
            self.hour(rec.first_seen, 0);
            let sender = match rec.from.as_deref() {
                Some("") => "from=<>",
                Some(s) => s,
                None => "(unknown)",
            };
            self.senders.add(sender, 1, size);
            let sdom = rec.from.as_deref().and_then(domain_of).unwrap_or("(none)");
            self.received_domains.add(&sdom.to_ascii_lowercase(), 1, size);
        }
        // SASL-authenticated volume.
        if let Some(user) = &rec.sasl_username {
            if let Some(d) = domain_of(user) {
                self.inferred_local.insert(d.to_ascii_lowercase());
            }
            let acc = self.users.entry(user.clone()).or_default();
            acc.messages += 1;
            acc.bytes += size;
            if let Some(c) = &rec.client {
                acc.ips.insert(c.ip.clone());
            }
            if let Some(f) = &rec.from {
                acc.senders.insert(f.clone());
            }
        }
        let mut deferred_msg = false;
        let mut remote_recipients = 0u64;
        for d in &rec.deliveries {
            let dom = domain_of(&d.to).unwrap_or("(local)").to_ascii_lowercase();
            if d.status == DeliveryStatus::Deferred {
                deferred_msg = true;
                self.summary.totals.deferrals += 1;
                self.day(d.ts).deferred += 1;
                self.hour(d.ts, 2);
                self.domains
                    .entry(dom.clone())
                    .or_insert_with(|| new_domain(&dom))
                    .deferred += 1;
                self.deferrals.add(&dom, normalize_reason(&d.detail), &d.to);
            }
        }
        for o in rec.outcomes() {
            let d = o.last;
            let dom = domain_of(o.to).unwrap_or("(local)").to_ascii_lowercase();
            if let Some(user) = &rec.sasl_username
                && let Some(acc) = self.users.get_mut(user)
            {
                acc.recipients += 1;
                acc.domains.insert(dom.clone());
                if !is_local_agent(&d.agent, &d.relay) {
                    acc.remote += 1;
                }
            }
            if !is_local_agent(&d.agent, &d.relay) && d.relay != "none" {
                remote_recipients += 1;
            }
            match o.status {
                DeliveryStatus::Sent if d.detail.starts_with("forwarded as ") => {
                    // Alias expansion: the new message's deliveries are counted
                    // with that message.
                    self.summary.totals.forwarded += 1;
                }
                DeliveryStatus::Sent => {
                    let t = &mut self.summary.totals;
                    t.delivered += 1;
                    t.bytes_delivered += size;
                    if !is_local_agent(&d.agent, &d.relay) {
                        t.delivered_remote += 1;
                    } else {
                        self.inferred_local.insert(dom.clone());
                    }
                    self.day(d.ts).delivered += 1;
                    self.hour(d.ts, 1);
                    self.recipients.add(&o.to.to_ascii_lowercase(), 1, size);
                    self.recipient_domains.insert(dom.clone());
                    let e = self
                        .domains
                        .entry(dom.clone())
                        .or_insert_with(|| new_domain(&dom));
                    e.sent += 1;
                    e.bytes += size;
                    let delay = d.delay.unwrap_or(0.0);
                    e.avg_delay += delay; // summed; divided at finish
                    e.max_delay = e.max_delay.max(delay);
                }
                DeliveryStatus::Bounced => {
                    self.summary.totals.bounced += 1;
                    self.day(d.ts).bounced += 1;
                    self.hour(d.ts, 3);
                    self.domains
                        .entry(dom.clone())
                        .or_insert_with(|| new_domain(&dom))
                        .bounced += 1;
                    self.bounces
                        .add(&d.relay_domain(), normalize_reason(&d.detail), o.to);
                }
                _ => {}
            }
        }
        if deferred_msg {
            self.summary.totals.deferred += 1;
        }
        // Unauthenticated mail: senders, and relaying to other servers.
        let client_ip = rec.client.as_ref().map(|c| c.ip.as_str());
        // Re-injected copies are merged into their message; an orphaned copy
        // (its first part was evicted) carries a parent id and is skipped here.
        if rec.origin == Origin::Smtp && rec.sasl_username.is_none() && rec.parent_queue_id.is_none() {
            let sender = match rec.from.as_deref() {
                Some("") => "<>".to_owned(),
                Some(s) => s.to_owned(),
                None => "(unknown)".to_owned(),
            };
            let acc = self.unauth.entry(sender.clone()).or_default();
            acc.messages += 1;
            if let Some(ip) = client_ip
                && acc.clients.len() < 5
                && !acc.clients.iter().any(|c| c == ip)
            {
                acc.clients.push(ip.to_owned());
            }
            if remote_recipients > 0 {
                let e = self
                    .unauth_relay
                    .entry((client_ip.unwrap_or("").to_owned(), sender))
                    .or_default();
                e.0 += 1;
                e.1 += remote_recipients;
            }
        }
    }

    /// Adds the stitcher's counters.
    pub fn set_stitch_stats(&mut self, stats: StitchStats) {
        self.summary.stitch = stats;
    }

    /// Produces the report.
    pub fn finish(mut self) -> Summary {
        let top = self.cfg.top;
        let mut s = std::mem::take(&mut self.summary);
        s.lines.by_family = FAMILIES
            .iter()
            .zip(self.by_family)
            .filter(|(_, n)| *n > 0)
            .map(|(f, n)| (f.name().to_owned(), n))
            .collect();
        s.unparsed = self
            .unparsed
            .iter()
            .map(|(reason, (count, samples))| UnparsedGroup {
                reason: *reason,
                description: reason.describe(),
                count: *count,
                samples: samples.clone(),
            })
            .collect();
        s.per_day = self.days.values().cloned().collect();
        let ndays = self.days.keys().filter(|d| d.year != 0).count().max(1) as f64;
        s.per_hour = (0..24)
            .map(|h| {
                let r = self.hours[h];
                HourTraffic {
                    hour: h as u8,
                    received: r[0] as f64 / ndays,
                    delivered: r[1] as f64 / ndays,
                    deferred: r[2] as f64 / ndays,
                    bounced: r[3] as f64 / ndays,
                    rejected: r[4] as f64 / ndays,
                }
            })
            .collect();
        let mut domains: Vec<DomainDelivery> = self
            .domains
            .drain()
            .map(|(_, mut d)| {
                if d.sent > 0 {
                    d.avg_delay /= d.sent as f64;
                }
                d
            })
            .collect();
        domains.sort_by(|a, b| {
            b.sent
                .cmp(&a.sent)
                .then(b.deferred.cmp(&a.deferred))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        domains.truncate(top);
        s.delivery_domains = domains;
        s.received_domains = self.received_domains.top_by_count(top);
        s.top_senders = self.senders.top_by_count(top);
        s.top_senders_by_size = self.senders.top_by_bytes(top);
        s.top_recipients = self.recipients.top_by_count(top);
        s.top_recipients_by_size = self.recipients.top_by_bytes(top);
        s.totals.senders = self.senders.len() as u64;
        s.totals.sending_domains = self.received_domains.len() as u64;
        s.totals.recipients = self.recipients.len() as u64;
        s.totals.recipient_domains = self.recipient_domains.len() as u64;
        s.rejects = self.rejects.finish(top);
        s.reject_clients = self.reject_clients.top_by_count(top);
        s.deferrals = self.deferrals.finish(top);
        s.bounces = self.bounces.finish(top);

        // smtpd
        let sm = &mut s.smtpd;
        sm.hosts = self.conn_hosts.len() as u64;
        sm.avg_seconds = if sm.connections > 0 {
            sm.total_seconds / sm.connections as f64
        } else {
            0.0
        };
        sm.per_day = self
            .conn_days
            .iter()
            .map(|(d, c)| ConnectionDay {
                date: (d.year != 0).then_some(*d),
                connections: c.connections,
                total_seconds: c.total,
                max_seconds: c.max,
            })
            .collect();
        let conn_days = self.conn_days.keys().filter(|d| d.year != 0).count().max(1) as f64;
        sm.per_hour = self
            .conn_hours
            .iter()
            .map(|(c, t)| (*c as f64 / conn_days, t / conn_days))
            .collect();
        let mut hosts: Vec<ConnectionHost> = self
            .conn_hosts
            .iter()
            .map(|(h, c)| ConnectionHost {
                host: h.clone(),
                connections: c.connections,
                total_seconds: c.total,
                max_seconds: c.max,
            })
            .collect();
        hosts.sort_by(|a, b| {
            b.connections
                .cmp(&a.connections)
                .then_with(|| a.host.cmp(&b.host))
        });
        hosts.truncate(top);
        sm.top_hosts = hosts;
        sm.aborted = self.aborted.top_by_count(top);
        sm.non_smtp_commands = self.non_smtp.top_by_count(top);

        // postscreen
        let ps = &mut s.postscreen;
        ps.violations = self.ps_violations.top_by_count(top);
        ps.listed = self.ps_listed.top_by_count(top);
        ps.dnsbl_zones = self.dnsbl_zones.top_by_count(top);
        ps.top_listed_clients = self.listed_clients.top_by_count(top);
        let mut ranked: Vec<Counted> = self
            .ranked_clients
            .iter()
            .map(|(ip, r)| Counted {
                key: ip.clone(),
                count: (*r).max(0) as u64,
                bytes: 0,
            })
            .collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked.truncate(top);
        ps.top_ranked_clients = ranked;

        // SASL
        let mut users: Vec<SaslUserVolume> = self
            .users
            .iter()
            .map(|(u, a)| SaslUserVolume {
                user: u.clone(),
                messages: a.messages,
                recipients: a.recipients,
                remote_recipients: a.remote,
                recipient_domains: a.domains.len() as u64,
                bytes: a.bytes,
                client_ips: a.ips.len() as u64,
                envelope_senders: a.senders.len() as u64,
            })
            .collect();
        users.sort_by(|a, b| {
            b.recipients
                .cmp(&a.recipients)
                .then(b.messages.cmp(&a.messages))
                .then_with(|| a.user.cmp(&b.user))
        });
        s.sasl.users = users;
        s.sasl.failures_by_client = self.sasl_fail_client.top_by_count(top);
        s.sasl.failures_by_user = self.sasl_fail_user.top_by_count(top);
        s.sasl.failed_auth_sessions = self.failed_auth_sessions.top_by_count(top);

        // Local domains: configured plus inferred.
        let mut local: Vec<String> = self
            .cfg
            .local_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .chain(self.inferred_local.iter().cloned())
            .collect();
        local.sort();
        local.dedup();
        let mut unauth: Vec<UnauthSender> = self
            .unauth
            .iter()
            .map(|(sender, a)| UnauthSender {
                sender: sender.clone(),
                messages: a.messages,
                claims_local_domain: domain_of(sender)
                    .is_some_and(|d| local.iter().any(|l| l.eq_ignore_ascii_case(d))),
                clients: a.clients.clone(),
            })
            .collect();
        unauth.sort_by(|a, b| {
            b.claims_local_domain
                .cmp(&a.claims_local_domain)
                .then(b.messages.cmp(&a.messages))
                .then_with(|| a.sender.cmp(&b.sender))
        });
        let claims = unauth.iter().filter(|u| u.claims_local_domain).count();
        unauth.truncate(top.max(claims));
        s.unauthenticated_senders = unauth;
        s.local_domains = local;
        let mut relay: Vec<UnauthRelay> = self
            .unauth_relay
            .iter()
            .map(|((client, sender), (m, r))| UnauthRelay {
                client: client.clone(),
                sender: sender.clone(),
                messages: *m,
                recipients: *r,
            })
            .collect();
        relay.sort_by(|a, b| {
            b.recipients
                .cmp(&a.recipients)
                .then_with(|| a.client.cmp(&b.client))
        });
        relay.truncate(top);
        s.unauthenticated_relay = relay;

        s.dovecot_logins = self.dovecot_logins.top_by_count(top);
        s.dovecot_failures_by_client = self.dovecot_fail_client.top_by_count(top);
        s.dovecot_failures_by_user = self.dovecot_fail_user.top_by_count(top);
        s.dovecot_auth_rejects = self.dovecot_auth_rejects.top_by_count(top);
        s.scanner_verdicts = self.verdicts.top_by_count(top);
        let levels = std::mem::take(&mut self.levels);
        let [w, e, f, p, m] = levels.map(|map| {
            let mut v: Vec<LevelGroup> = map
                .into_iter()
                .map(|((program, text), count)| LevelGroup { program, text, count })
                .collect();
            v.sort_by(|a, b| {
                a.program
                    .cmp(&b.program)
                    .then(b.count.cmp(&a.count))
                    .then_with(|| a.text.cmp(&b.text))
            });
            v
        });
        s.warnings = w;
        s.errors = e;
        s.fatals = f;
        s.panics = p;
        s.master = m;
        s
    }
}

fn new_domain(d: &str) -> DomainDelivery {
    DomainDelivery {
        domain: d.to_owned(),
        ..DomainDelivery::default()
    }
}

impl crate::stitch::Delivery {
    /// The domain part of the relay (`mx.example.com[1.2.3.4]:25` → `example.com`
    /// style grouping keeps the host name; `none`/`local` as written).
    pub fn relay_domain(&self) -> String {
        let host = self.relay.split('[').next().unwrap_or(&self.relay);
        host.to_ascii_lowercase()
    }
}

/// Dovecot logins and authentication failures. Failures are counted from the
/// login processes' `auth failed` lines (one per connection, weighted by the
/// attempts they report), which Dovecot always logs; the auth process's own
/// lines (`Password mismatch`, only with `auth_verbose`) are counted apart,
/// final verdicts only, so one attempt is never counted twice in one list.
fn dovecot_hook(s: &mut Summarizer, d: &crate::parse::dovecot::DovecotEvent<'_>) {
    use crate::parse::dovecot::{AuthFailReason, DovecotEvent, LoginAbortReason};
    match d {
        DovecotEvent::Login {
            user: Some(u),
            service,
            ..
        } => {
            s.dovecot_logins.add(&format!("{u} ({service})"), 1, 0);
        }
        DovecotEvent::LoginAborted {
            reason: LoginAbortReason::AuthFailed,
            user,
            rip,
            attempts,
            ..
        } => {
            let n = u64::from(attempts.unwrap_or(1).max(1));
            s.dovecot_fail_client.add(rip.unwrap_or("(unknown)"), n, 0);
            s.dovecot_fail_user.add(user.unwrap_or("(none given)"), n, 0);
        }
        DovecotEvent::AuthFailure {
            reason: reason @ (AuthFailReason::PasswordMismatch | AuthFailReason::UnknownUser),
            user,
            next_db: false,
            ..
        } => {
            let why = if *reason == AuthFailReason::UnknownUser {
                "unknown user"
            } else {
                "password mismatch"
            };
            s.dovecot_auth_rejects
                .add(&format!("{} ({why})", user.unwrap_or("(none)")), 1, 0);
        }
        _ => {}
    }
}

/// A scanner verdict label of an Rspamd/amavis result line, for the verdict tally.
fn scanner_verdict_key(k: &EventKind<'_>) -> Option<String> {
    use crate::parse::amavis::{AmavisEvent, Disposition};
    use crate::parse::rspamd::RspamdEvent;
    match k {
        EventKind::Rspamd(r) => match &**r {
            RspamdEvent::Task { action: Some(a), .. } => Some(format!("rspamd: {a}")),
            _ => None,
        },
        EventKind::Amavis(a) => match &**a {
            AmavisEvent::Verdict { action, category, .. } => {
                let d = match action {
                    Disposition::Passed => "Passed",
                    Disposition::Blocked => "Blocked",
                };
                Some(
                    format!("amavis: {d} {}", category.unwrap_or(""))
                        .trim_end()
                        .to_owned(),
                )
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;
