//! "Sent by us, or spoofed?" — the verdict about one sender address, from the
//! message records and account events the logs hold, weighed against how much
//! time the logs really cover.
//!
//! Pure logic: the caller gathers the records (from the store or from files),
//! the account events, the coverage, and optionally directory facts, and
//! [`investigate`] classifies every message and decides. Absence of records
//! counts as evidence only inside covered time.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::event::{Event, EventKind};
use crate::parse::dovecot::{DovecotEvent, LoginAbortReason};
use crate::parse::postfix::{DeliveryStatus, PostfixMsg};
use crate::sample::{Entry, SampleAnalysis};
use crate::stitch::{MessageRecord, Origin};
use crate::time::{Timestamp, civil_from_days};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The advice when our domain is being spoofed.
const STRICT_DMARC: &str = "Publish a strict DMARC policy (p=reject) with SPF -all and DKIM for the domain so receivers reject the spoofs.";

/// Delivery agents that put mail into a local mailbox.
const LOCAL_AGENTS: &[&str] = &["lmtp", "virtual", "local", "pipe"];

/// How much time the available logs cover.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    /// Earliest timestamp seen.
    pub first: Option<Timestamp>,
    /// Latest timestamp seen.
    pub last: Option<Timestamp>,
    /// Lines per UTC day (days since the epoch → lines).
    #[serde(skip)]
    pub lines_per_day: BTreeMap<i64, u64>,
    /// Where the lines came from (files, or the store).
    pub sources: Vec<String>,
}

impl Coverage {
    /// Counts one line at `ts`.
    pub fn add(&mut self, ts: Timestamp) {
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        *self.lines_per_day.entry(day_of(ts)).or_default() += 1;
    }

    /// Counts `lines` lines on a UTC day (days since the epoch), for sources
    /// that know only per-day totals (the store).
    pub fn add_day(&mut self, day: i64, lines: u64) {
        if lines == 0 {
            return;
        }
        *self.lines_per_day.entry(day).or_default() += lines;
        let start = Timestamp::from_unix_micros(day * MICROS_PER_DAY);
        let end = Timestamp::from_unix_micros((day + 1) * MICROS_PER_DAY - 1);
        self.first = Some(self.first.map_or(start, |f| f.min(start)));
        self.last = Some(self.last.map_or(end, |l| l.max(end)));
    }

    /// The parts of `[since, until]` no line covers, as whole UTC days
    /// (inclusive ranges of `YYYY-MM-DD`): before the first line, days
    /// without a single line, after the last line.
    pub fn gaps(&self, since: Timestamp, until: Timestamp) -> Vec<(String, String)> {
        let (from, to) = (day_of(since), day_of(until));
        let mut gaps = Vec::new();
        let mut open: Option<i64> = None;
        for d in from..=to {
            let covered = self.lines_per_day.get(&d).is_some_and(|n| *n > 0);
            match (covered, open) {
                (false, None) => open = Some(d),
                (true, Some(s)) => {
                    gaps.push((day_name(s), day_name(d - 1)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(s) = open {
            gaps.push((day_name(s), day_name(to)));
        }
        gaps
    }
}

fn day_of(ts: Timestamp) -> i64 {
    ts.unix_micros.div_euclid(MICROS_PER_DAY)
}

/// A gap as text: `2026-12-01`, or `2026-12-01 .. 2026-12-03`.
pub fn gap_text(first: &str, last: &str) -> String {
    if first == last {
        first.to_owned()
    } else {
        format!("{first} .. {last}")
    }
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn day_name(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A login or an authentication failure of an account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountEvent {
    /// When.
    pub ts: Option<Timestamp>,
    /// The account (as logged).
    pub user: String,
    /// `login` or `auth_failure`.
    pub what: &'static str,
    /// Service (`imap`, `pop3`, `submission`, `smtp` …).
    pub service: String,
    /// Client address, when logged.
    pub ip: Option<String>,
    /// Failed attempts the line stands for (1 for a login).
    pub attempts: u32,
    /// Where the line is (`file:line`, or the store).
    pub source: String,
}

/// The account event a parsed line stands for, if any: Dovecot logins and
/// `auth failed` disconnects, Postfix SASL failures that name the user.
pub fn account_event(ev: &Event<'_>, source: &str) -> Option<AccountEvent> {
    let mk = |user: &str, what, service: &str, ip: Option<&str>, attempts| AccountEvent {
        ts: ev.ts,
        user: user.to_ascii_lowercase(),
        what,
        service: service.to_owned(),
        ip: ip.map(str::to_owned),
        attempts,
        source: source.to_owned(),
    };
    match &ev.kind {
        EventKind::Dovecot(DovecotEvent::Login {
            user: Some(u),
            service,
            rip,
            ..
        }) => Some(mk(u, "login", service, *rip, 1)),
        EventKind::Dovecot(DovecotEvent::LoginAborted {
            reason: LoginAbortReason::AuthFailed,
            user: Some(u),
            service,
            rip,
            attempts,
            ..
        }) => Some(mk(u, "auth_failure", service, *rip, attempts.unwrap_or(1).max(1))),
        EventKind::Postfix(p) => match &p.msg {
            PostfixMsg::SaslAuthFailed {
                client,
                sasl_username: Some(u),
                ..
            } => Some(mk(u, "auth_failure", p.service, Some(client.ip), 1)),
            _ => None,
        },
        _ => None,
    }
}

/// What the directory (Mailcow's database, Postfix maps, a list) says of the
/// address, as the caller found it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DirectoryFacts {
    /// `mailbox`, `alias`, `domain_alias`, `catch_all` or `unknown`.
    pub kind: String,
    /// A readable detail (alias targets, the domain alias's target …).
    pub detail: String,
    /// Whether the address's domain is one of ours.
    pub domain_known: bool,
    /// Accounts allowed to send as the address.
    pub may_send_as: Vec<String>,
    /// Where this came from.
    pub source: String,
}

/// A sample message (a received spam copy) and what the logs say of it.
#[derive(Clone, Debug, Serialize)]
pub struct SampleEvidence {
    /// Where it came from (`spam.eml`, `box.mbox #2`).
    pub name: String,
    /// The header analysis.
    pub analysis: SampleAnalysis,
    /// Queue ids from our `Received` lines that the logs hold a record of.
    pub matched_queue_ids: Vec<String>,
    /// DKIM/SPF/DMARC checked again against DNS, when that was possible.
    pub reverified: Option<Reverification>,
}

/// The caller's re-verification of a sample against DNS (the io crate's
/// verifier), reduced to what the decision needs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reverification {
    /// The client address SPF was checked for (the first external hop).
    pub ip: String,
    /// SPF result.
    pub spf: Option<String>,
    /// DKIM results (`pass d=example.com s=sel`).
    pub dkim: Vec<String>,
    /// DMARC result.
    pub dmarc: Option<String>,
    /// The DMARC policy the domain publishes (`none`, `quarantine`, `reject`).
    pub dmarc_policy: Option<String>,
    /// ARC chain result with its sets (`pass (i=1 d=relay.example s=arc cv=none)`);
    /// `None` when not checked.
    pub arc: Option<String>,
    /// DNS or parse problems.
    pub errors: Vec<String>,
}

/// What the caller hands over.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// Sample messages, analysed, with the queue ids the logs know.
    pub samples: Vec<SampleEvidence>,
    /// The address investigated (lowercased by [`investigate`]).
    pub address: String,
    /// The window asked about.
    pub since: Option<Timestamp>,
    /// End of the window (normally now).
    pub until: Option<Timestamp>,
    /// Messages with the address as envelope sender.
    pub messages: Vec<(MessageRecord, String)>,
    /// Logins and failures of the accounts involved.
    pub account_events: Vec<AccountEvent>,
    /// What the logs cover.
    pub coverage: Coverage,
    /// Directory facts, when a directory was consulted.
    pub directory: Option<DirectoryFacts>,
    /// Our domains (from the directory or configuration); when empty, the
    /// domains the logs show local deliveries for are used.
    pub our_domains: Vec<String>,
    /// The sender domain's SPF and DMARC as published in DNS (the posture
    /// audit of `mailwarden dns`), when DNS was asked.
    pub posture: Option<PostureFacts>,
}

/// The sender domain's published SPF and DMARC, reduced to what decides
/// whether receivers reject a spoof.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PostureFacts {
    /// The domain of the address.
    pub domain: String,
    /// Its SPF record (`None`: none published).
    pub spf: Option<String>,
    /// The SPF record's final `all` (`-all`, `~all`, `?all`, `+all`), or
    /// `None` for no `all` / a `redirect`.
    pub spf_all: Option<String>,
    /// The DMARC record that applies (its own or the organisational
    /// domain's).
    pub dmarc: Option<String>,
    /// Where the DMARC record was found.
    pub dmarc_domain: Option<String>,
    /// The policy that applies to the domain (`p`, or `sp` for a subdomain
    /// covered by its organisational domain's record).
    pub dmarc_policy: Option<String>,
    /// `pct` (100 when absent).
    pub dmarc_pct: Option<u8>,
    /// The SPF and DMARC findings of warning or fail severity.
    pub problems: Vec<crate::posture::Finding>,
    /// Lookups that failed (the assessment is then partial).
    pub errors: Vec<String>,
}

/// Would receivers have rejected a spoof of the domain?
#[derive(Clone, Debug, Serialize)]
pub struct PostureAssessment {
    /// The domain.
    pub domain: String,
    /// `reject` (receivers enforcing DMARC reject it), `partial` (pct <
    /// 100), `quarantine` (spam folder), `accept` (nothing tells receivers
    /// to refuse it), `unknown` (DNS failed).
    pub spoofs: &'static str,
    /// One sentence a manager can read.
    pub explanation: String,
    /// The records to change, most important first.
    pub changes: Vec<String>,
    /// The facts it was decided from.
    pub facts: PostureFacts,
}

/// Decides from published SPF and DMARC whether a spoof of `facts.domain`
/// (mail with it in `From:` that passes neither aligned SPF nor aligned
/// DKIM) is rejected by receivers that follow DMARC (RFC 7489 §6.6).
pub fn assess_posture(facts: PostureFacts) -> PostureAssessment {
    let d = facts.domain.clone();
    let pct = facts.dmarc_pct.unwrap_or(100);
    let mut changes = Vec::new();
    let policy = facts.dmarc_policy.as_deref();
    let (spoofs, explanation) = match (facts.dmarc.as_deref(), policy) {
        (None, _) if !facts.errors.is_empty() => (
            "unknown",
            format!(
                "The DMARC record of {d} could not be read ({}); whether receivers reject spoofs is unknown.",
                facts.errors.join("; ")
            ),
        ),
        (None, _) => {
            changes.push(format!(
                "Publish DMARC: TXT record _dmarc.{d} \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{d}\", then p=reject once the reports show your own mail passing."
            ));
            (
                "accept",
                format!(
                    "{d} publishes no DMARC record: receivers have no instruction to reject mail that falsely claims {d}, so spoofs are usually delivered."
                ),
            )
        }
        (Some(_), Some("reject")) if pct >= 100 => (
            "reject",
            format!(
                "{d} publishes DMARC p=reject: receivers that enforce DMARC reject spoofs that pass neither aligned SPF nor aligned DKIM."
            ),
        ),
        (Some(_), Some("reject")) => {
            changes.push(format!(
                "DMARC of {d}: remove pct={pct} (or set pct=100) so the reject policy applies to all mail."
            ));
            (
                "partial",
                format!(
                    "{d} publishes p=reject but pct={pct}: only {pct}% of failing mail is rejected; the rest is quarantined."
                ),
            )
        }
        (Some(_), Some("quarantine")) => {
            changes.push(format!("DMARC of {d}: change p=quarantine to p=reject."));
            (
                "quarantine",
                format!(
                    "{d} publishes p=quarantine: spoofs land in spam folders but are not rejected{}.",
                    if pct < 100 {
                        format!(" (and only {pct}% of them)")
                    } else {
                        String::new()
                    }
                ),
            )
        }
        (Some(_), _) => {
            changes.push(format!("DMARC of {d}: change p=none to p=quarantine, then p=reject once your own mail passes DMARC (watch the aggregate reports: mailwarden dmarc)."));
            (
                "accept",
                format!(
                    "{d} publishes DMARC p=none: receivers were told to deliver mail that fails DMARC, so this spoof was accepted."
                ),
            )
        }
    };
    match facts.spf_all.as_deref() {
        _ if facts.spf.is_none() && facts.errors.is_empty() => changes.push(format!(
            "Publish SPF for {d}: TXT \"v=spf1 mx -all\" (listing every server that sends for {d})."
        )),
        Some("+all") | Some("?all") => changes.push(format!(
            "SPF of {d} ends in {}: it authorizes every host; end it with -all (or ~all).",
            facts.spf_all.as_deref().unwrap_or_default()
        )),
        _ => {}
    }
    for f in &facts.problems {
        if let Some(fix) = &f.fix {
            let line = format!("{} ({}): {fix}", f.message, f.id);
            if !changes.contains(&line) {
                changes.push(line);
            }
        }
    }
    PostureAssessment {
        domain: d,
        spoofs,
        explanation,
        changes,
        facts,
    }
}

/// How a message with the address as sender entered and left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// Submitted by an authenticated account (SASL).
    Authenticated,
    /// Submitted by a local process (sendmail/pickup: a script, a web app).
    LocalSubmission,
    /// Accepted without authentication and sent on to other domains.
    UnauthenticatedRelay,
    /// Accepted without authentication for our own mailboxes (inbound).
    Inbound,
    /// Bounces, forwards, partial records.
    Other,
}

impl MessageClass {
    /// The snake_case name (as in JSON and in `counts`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageClass::Authenticated => "authenticated",
            MessageClass::LocalSubmission => "local_submission",
            MessageClass::UnauthenticatedRelay => "unauthenticated_relay",
            MessageClass::Inbound => "inbound",
            MessageClass::Other => "other",
        }
    }
}

/// One message in the evidence.
#[derive(Clone, Debug, Serialize)]
pub struct MessageEvidence {
    /// Classification.
    pub class: MessageClass,
    /// Queue id.
    pub queue_id: String,
    /// First seen.
    pub ts: Option<Timestamp>,
    /// SASL user, if any.
    pub sasl_username: Option<String>,
    /// Client address and name.
    pub client: Option<String>,
    /// Service that accepted it (`postfix/submission`, …).
    pub service: Option<String>,
    /// Recipients.
    pub recipients: usize,
    /// Recipient domains.
    pub recipient_domains: Vec<String>,
    /// Delivery outcomes: status → count.
    pub outcomes: BTreeMap<String, u32>,
    /// Scanner verdicts (`rspamd: reject 15.2`).
    pub verdicts: Vec<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Why the message is in the evidence: `envelope-sender`,
    /// `header-from` (the logged `From:` header names the address, the
    /// envelope sender differs), or `sample` (a sample's queue id).
    pub matched_by: &'static str,
    /// The envelope sender, when the match was not by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope_sender: Option<String>,
    /// Where the record is (`file:line`, or the store).
    pub source: String,
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// An account of ours (or a local process) sent it.
    SentByUsAuthenticated,
    /// Our server relayed it without authentication: open relay / mynetworks.
    RelayedByUsUnauthenticated,
    /// No outgoing record inside fully covered time: someone else sent it.
    SpoofedExternally,
    /// The logs do not allow a decision; `missing` says what would.
    Inconclusive,
}

impl Verdict {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::SentByUsAuthenticated => "sent-by-us-authenticated",
            Verdict::RelayedByUsUnauthenticated => "relayed-by-us-unauthenticated",
            Verdict::SpoofedExternally => "spoofed-externally",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// How sure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Weak.
    Low,
    /// Likely.
    Medium,
    /// Established by records.
    High,
}

/// An account's activity in the window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AccountActivity {
    /// Messages it submitted with the address as sender.
    pub messages: u32,
    /// Successful logins (IMAP/POP3/…).
    pub logins: u32,
    /// Failed authentication attempts.
    pub auth_failures: u32,
    /// Client addresses it logged in or submitted from.
    pub client_ips: BTreeSet<String>,
    /// Client addresses that failed to log in as it.
    pub failing_ips: BTreeSet<String>,
    /// Whether the directory allows it to send as the address (`None`: not known).
    pub may_send_as: Option<bool>,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct Investigation {
    /// The address.
    pub address: String,
    /// The window.
    pub since: Option<Timestamp>,
    /// End of the window.
    pub until: Option<Timestamp>,
    /// The decision.
    pub verdict: Verdict,
    /// How sure.
    pub confidence: Confidence,
    /// One sentence a manager can read.
    pub summary: String,
    /// The reasons, each citing its evidence.
    pub reasons: Vec<String>,
    /// What to do now.
    pub recommendations: Vec<String>,
    /// What is missing for a firmer answer.
    pub missing: Vec<String>,
    /// Directory facts, if consulted.
    pub directory: Option<DirectoryFacts>,
    /// Coverage of the logs.
    pub coverage: Coverage,
    /// Uncovered days inside the window.
    pub coverage_gaps: Vec<(String, String)>,
    /// Counts per class.
    pub counts: BTreeMap<String, u32>,
    /// Accounts that submitted as the address, with their login history.
    pub accounts: BTreeMap<String, AccountActivity>,
    /// Messages per hour (`YYYY-MM-DD HH` UTC).
    pub timeline: BTreeMap<String, u32>,
    /// Every message, oldest first.
    pub messages: Vec<MessageEvidence>,
    /// Logins and failures of the accounts involved, oldest first.
    pub account_events: Vec<AccountEvent>,
    /// Our domains as used for the classification.
    pub our_domains: Vec<String>,
    /// Sample messages and what they show.
    pub samples: Vec<SampleEvidence>,
    /// Whether the sender domain's SPF/DMARC would have made receivers
    /// reject a spoof, and what to change (when DNS was asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posture: Option<PostureAssessment>,
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

fn classify(rec: &MessageRecord, ours: &BTreeSet<String>) -> MessageClass {
    if rec.sasl_username.is_some() {
        return MessageClass::Authenticated;
    }
    match rec.origin {
        Origin::Pickup => MessageClass::LocalSubmission,
        Origin::Smtp => {
            let leaves = rec.deliveries.iter().any(|d| {
                !LOCAL_AGENTS.contains(&d.agent.as_str())
                    && !ours.contains(&domain_of(&d.to).to_ascii_lowercase())
            });
            if leaves {
                MessageClass::UnauthenticatedRelay
            } else {
                MessageClass::Inbound
            }
        }
        _ => MessageClass::Other,
    }
}

fn status_name(s: DeliveryStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{s:?}").to_ascii_lowercase())
}

fn hour_key(ts: Timestamp) -> String {
    let day = day_of(ts);
    let hour = ts.unix_micros.rem_euclid(MICROS_PER_DAY) / 3_600_000_000;
    format!("{} {hour:02}", day_name(day))
}

/// Decides about `input.address`.
pub fn investigate(mut input: Input) -> Investigation {
    let address = input.address.trim().to_ascii_lowercase();
    let posture = input.posture.take().map(assess_posture);
    // Our domains: given, else those the logs deliver locally for.
    let mut ours: BTreeSet<String> = input.our_domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if ours.is_empty() {
        for (rec, _) in &input.messages {
            for d in &rec.deliveries {
                if LOCAL_AGENTS.contains(&d.agent.as_str()) {
                    ours.insert(domain_of(&d.to).to_ascii_lowercase());
                }
            }
        }
    }
    input.messages.sort_by_key(|(r, _)| r.first_seen);

    let mut messages = Vec::new();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut accounts: BTreeMap<String, AccountActivity> = BTreeMap::new();
    let mut relay_clients: BTreeSet<String> = BTreeSet::new();
    let mut timeline: BTreeMap<String, u32> = BTreeMap::new();
    let may_send: Option<BTreeSet<String>> = input
        .directory
        .as_ref()
        .map(|d| d.may_send_as.iter().map(|a| a.to_ascii_lowercase()).collect());
    for (rec, source) in &input.messages {
        let class = classify(rec, &ours);
        *counts.entry(class.as_str().to_owned()).or_default() += 1;
        let client = rec.client.as_ref().map(|c| format!("{}[{}]", c.name, c.ip));
        match class {
            MessageClass::Authenticated | MessageClass::LocalSubmission => {
                let who = match (&rec.sasl_username, rec.uid) {
                    (Some(u), _) => u.to_ascii_lowercase(),
                    (None, Some(uid)) => format!("local uid {uid} (sendmail)"),
                    (None, None) => "local submission (sendmail)".to_owned(),
                };
                let a = accounts.entry(who.clone()).or_default();
                a.messages += 1;
                if let Some(c) = &rec.client {
                    a.client_ips.insert(c.ip.clone());
                }
                if let Some(set) = &may_send {
                    a.may_send_as = Some(set.contains(&who) || who == address);
                }
            }
            MessageClass::UnauthenticatedRelay => {
                if let Some(c) = &rec.client {
                    relay_clients.insert(format!("{}[{}]", c.name, c.ip));
                }
            }
            _ => {}
        }
        if let Some(ts) = rec.first_seen {
            *timeline.entry(hour_key(ts)).or_default() += 1;
        }
        let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
        let mut domains: BTreeSet<String> = BTreeSet::new();
        for d in &rec.deliveries {
            *outcomes.entry(status_name(d.status)).or_default() += 1;
            domains.insert(domain_of(&d.to).to_ascii_lowercase());
        }
        let matched_by = if rec
            .from
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(&address))
        {
            "envelope-sender"
        } else if rec
            .header_from
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(&address))
        {
            "header-from"
        } else {
            "sample"
        };
        messages.push(MessageEvidence {
            matched_by,
            envelope_sender: (matched_by != "envelope-sender")
                .then(|| rec.from.clone())
                .flatten(),
            class,
            queue_id: rec.queue_id.clone(),
            ts: rec.first_seen,
            sasl_username: rec.sasl_username.clone(),
            client,
            service: rec.service.clone(),
            recipients: rec
                .deliveries
                .iter()
                .map(|d| d.to.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            recipient_domains: domains.into_iter().collect(),
            outcomes,
            verdicts: rec
                .verdicts
                .iter()
                .map(|v| match v.score {
                    Some(s) => format!("{}: {} {s}", v.scanner.as_str(), v.action),
                    None => format!("{}: {}", v.scanner.as_str(), v.action),
                })
                .collect(),
            message_id: rec.message_id.clone(),
            source: source.clone(),
        });
    }

    // Account history of the accounts that submitted.
    let mut account_events: Vec<AccountEvent> = input
        .account_events
        .into_iter()
        .filter(|e| accounts.contains_key(&e.user) || e.user == address)
        .collect();
    account_events.sort_by_key(|e| e.ts);
    for e in &account_events {
        let a = accounts.entry(e.user.clone()).or_default();
        match e.what {
            "login" => {
                a.logins += 1;
                if let Some(ip) = &e.ip {
                    a.client_ips.insert(ip.clone());
                }
            }
            _ => {
                a.auth_failures += e.attempts;
                if let Some(ip) = &e.ip {
                    a.failing_ips.insert(ip.clone());
                }
            }
        }
    }

    let gaps = match (input.since, input.until) {
        (Some(s), Some(u)) if s <= u => input.coverage.gaps(s, u),
        _ => Vec::new(),
    };
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let mut reasons = Vec::new();
    let mut recommendations = Vec::new();
    let mut missing = Vec::new();
    let cite = |class: MessageClass| -> String {
        let v: Vec<String> = messages
            .iter()
            .filter(|m| m.class == class)
            .take(3)
            .map(|m| format!("{} ({})", m.queue_id, m.source))
            .collect();
        v.join(", ")
    };

    if let Some(d) = &input.directory {
        reasons.push(format!(
            "directory ({}): {} is {}{}",
            d.source,
            address,
            d.kind.replace('_', " "),
            if d.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.detail)
            }
        ));
    }
    // What the samples' headers show.
    let mut foreign_samples = Vec::new();
    let mut our_auth_samples = Vec::new();
    for smp in &input.samples {
        let a = &smp.analysis;
        match &a.entry {
            Entry::Ours {
                by_host,
                from_ip,
                authenticated,
                queue_id,
                ..
            } => {
                reasons.push(format!(
                    "sample {}: entered our server {} from {}{}{}",
                    smp.name,
                    by_host,
                    from_ip.as_deref().unwrap_or("an unrecorded address"),
                    authenticated
                        .as_deref()
                        .map(|u| format!(", authenticated ({u})"))
                        .unwrap_or_default(),
                    queue_id
                        .as_deref()
                        .map(|q| format!(", queue id {q}"))
                        .unwrap_or_default()
                ));
                if authenticated.is_some() {
                    our_auth_samples.push(smp);
                }
            }
            Entry::ClaimsOurs {
                by_host, queue_id, ..
            } => {
                let q = queue_id.as_deref().unwrap_or("");
                if !q.is_empty() && smp.matched_queue_ids.iter().any(|m| m == q) {
                    reasons.push(format!(
                        "sample {}: its Received line from {by_host} (queue id {q}) matches our logs",
                        smp.name
                    ));
                } else {
                    reasons.push(format!(
                        "sample {}: a Received line claims our host {by_host}{} but our logs hold no such message — a forged header",
                        smp.name,
                        if q.is_empty() { String::new() } else { format!(" (queue id {q})") }
                    ));
                    foreign_samples.push(smp);
                }
            }
            Entry::NeverTouchedUs => {
                reasons.push(format!(
                    "sample {}: its Received chain never passes our servers{}",
                    smp.name,
                    a.first_external_ip
                        .as_deref()
                        .map(|ip| format!("; it came from {ip}"))
                        .unwrap_or_default()
                ));
                foreign_samples.push(smp);
            }
            Entry::Unknown => missing.push(format!("sample {}: no Received header to trace", smp.name)),
        }
        for r in a.auth_results.iter().filter(|r| !r.ours) {
            if matches!(r.method.as_str(), "spf" | "dkim" | "dmarc") {
                let subject = ["header.from", "smtp.mailfrom", "header.d", "header.i"]
                    .iter()
                    .find_map(|k| r.properties.get(*k).map(|v| format!(" {k}={v}")))
                    .unwrap_or_default();
                reasons.push(format!(
                    "sample {}: {} said {}={}{}",
                    smp.name,
                    r.authserv_id.as_deref().unwrap_or("the receiver"),
                    r.method,
                    r.result,
                    subject
                ));
            }
        }
        for m in &a.mismatches {
            reasons.push(format!("sample {}: {m}", smp.name));
        }
        if let Some(rv) = &smp.reverified {
            let dkim = if rv.dkim.is_empty() {
                "none".to_owned()
            } else {
                rv.dkim.join(", ")
            };
            reasons.push(format!(
                "sample {}: checked again against DNS for {}: spf={}, dkim={dkim}, dmarc={}{}, arc={}",
                smp.name,
                rv.ip,
                rv.spf.as_deref().unwrap_or("not checked"),
                rv.dmarc.as_deref().unwrap_or("not checked"),
                rv.dmarc_policy
                    .as_deref()
                    .map(|p| format!(" (policy p={p})"))
                    .unwrap_or_default(),
                rv.arc.as_deref().unwrap_or("not checked")
            ));
            for e in &rv.errors {
                missing.push(format!("sample {}: {e}", smp.name));
            }
            // With the posture audited, its assessment says this (once).
            if rv.dmarc.as_deref() == Some("fail") && posture.is_none() {
                match rv.dmarc_policy.as_deref() {
                    Some("reject") => reasons.push(format!(
                        "sample {}: DMARC fails and the domain publishes p=reject: receivers that honour DMARC reject such spoofs",
                        smp.name
                    )),
                    Some("quarantine") => recommendations.push(
                        "DMARC is p=quarantine: spoofs land in spam folders; publish p=reject once your own mail passes DMARC.".to_owned(),
                    ),
                    _ => recommendations.push(
                        "DMARC fails but the domain's policy is p=none (or missing): receivers were told to accept this spoof. Publish p=quarantine, then p=reject, once your own mail passes DMARC.".to_owned(),
                    ),
                }
            }
        }
    }

    let header_only: Vec<&MessageEvidence> = messages
        .iter()
        .filter(|m| m.matched_by == "header-from")
        .collect();
    if let Some(first) = header_only.first() {
        reasons.push(format!(
            "{} message(s) carry {address} only in their From: header (logged by a Postfix header check), with another envelope sender, e.g. queue id {} from <{}> ({})",
            header_only.len(),
            first.queue_id,
            first.envelope_sender.as_deref().unwrap_or(""),
            first.source
        ));
    }

    let (verdict, confidence, summary);
    if n("unauthenticated_relay") > 0 {
        verdict = Verdict::RelayedByUsUnauthenticated;
        confidence = Confidence::High;
        summary = format!(
            "Our server relayed {} message(s) from {address} to other domains WITHOUT authentication, from {}. This is an open relay or an over-broad mynetworks.",
            n("unauthenticated_relay"),
            relay_clients.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        reasons.push(format!(
            "{} message(s) accepted without SASL and delivered to foreign domains, e.g. {}",
            n("unauthenticated_relay"),
            cite(MessageClass::UnauthenticatedRelay)
        ));
        recommendations.push(
            "Critical: restrict mynetworks to hosts you control (postconf mynetworks) and keep reject_unauth_destination in smtpd_relay_restrictions; then find the listed clients."
                .to_owned(),
        );
    } else if n("authenticated") + n("local_submission") > 0 {
        verdict = Verdict::SentByUsAuthenticated;
        confidence = Confidence::High;
        let names: Vec<String> = accounts
            .iter()
            .filter(|(_, a)| a.messages > 0)
            .map(|(u, a)| format!("{u} ({} messages)", a.messages))
            .collect();
        summary = format!(
            "Mail from {address} was sent through our server by: {}. The sender is ours, not spoofed.",
            names.join(", ")
        );
        reasons.push(format!(
            "{} message(s) submitted after authentication, e.g. {}",
            n("authenticated") + n("local_submission"),
            cite(if n("authenticated") > 0 {
                MessageClass::Authenticated
            } else {
                MessageClass::LocalSubmission
            })
        ));
        if let Some(d) = &input.directory
            && d.kind == "unknown"
        {
            reasons.push(format!(
                "{address} is no mailbox or alias, yet an account sent as it: the server does not tie senders to logins (smtpd_sender_login_maps / reject_sender_login_mismatch)"
            ));
            recommendations.push(
                "Enforce sender ownership: reject_sender_login_mismatch with smtpd_sender_login_maps (Mailcow: sender_acl).".to_owned(),
            );
        }
        for (u, a) in &accounts {
            if a.messages == 0 {
                continue;
            }
            if a.may_send_as == Some(false) {
                reasons.push(format!(
                    "{u} is not allowed to send as {address} by the directory, but did"
                ));
            }
            if a.auth_failures > 0 {
                reasons.push(format!(
                    "{u}: {} failed logins from {} address(es) before/around the sending — password guessing",
                    a.auth_failures,
                    a.failing_ips.len()
                ));
            }
            if u.starts_with("local ") {
                recommendations.push(
                    "A local process sent the mail (sendmail/pickup): look for a compromised web application or script (mailwarden's web-directory audit, crontabs, PHP mail() logs).".to_owned(),
                );
            } else {
                recommendations.push(format!(
                    "{u}: likely stolen credentials — reset the password, revoke app passwords, end active sessions, review logins from {}.",
                    a.client_ips.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    } else if let Some(smp) = our_auth_samples.first() {
        verdict = Verdict::SentByUsAuthenticated;
        confidence = Confidence::Medium;
        let who = match &smp.analysis.entry {
            Entry::Ours {
                authenticated: Some(u),
                ..
            } => u.clone(),
            _ => String::new(),
        };
        summary = format!(
            "The sample's own headers show it was submitted to our server after authentication ({who}); our logs do not hold the message, so the account is named only by the header."
        );
        missing
            .push("the mail logs of the sending time, to name the account and its client address".to_owned());
        recommendations.push(
            "Treat the account as compromised: reset its password, revoke app passwords, end sessions; recover the logs of the sending time.".to_owned(),
        );
    } else if !foreign_samples.is_empty() {
        verdict = Verdict::SpoofedExternally;
        let covered = input.since.is_some()
            && input.until.is_some()
            && gaps.is_empty()
            && !input.coverage.lines_per_day.is_empty();
        confidence = if covered {
            Confidence::High
        } else {
            Confidence::Medium
        };
        summary = format!(
            "The sample never passed through our servers and no message from {address} left through them{}: someone else sent it (spoofing).",
            if covered {
                " in the covered window"
            } else {
                " in the logs we have"
            }
        );
        if !covered {
            for (a, b) in &gaps {
                missing.push(format!("logs for {}", gap_text(a, b)));
            }
        }
        spoof_advice(posture.as_ref(), &mut reasons, &mut recommendations);
    } else {
        let window_known = input.since.is_some() && input.until.is_some();
        let no_lines = input.coverage.lines_per_day.is_empty();
        if no_lines || !window_known || !gaps.is_empty() {
            verdict = Verdict::Inconclusive;
            confidence = Confidence::Low;
            summary = format!(
                "No message from {address} left through our server in the logs we have, but the logs do not cover the whole window, so that proves nothing."
            );
            if no_lines {
                missing.push(
                    "any mail log for the window: none was found (store empty, logs deleted?)".to_owned(),
                );
            }
            for (a, b) in &gaps {
                missing.push(format!("logs for {}", gap_text(a, b)));
            }
            recommendations.push(
                "Recover the missing logs (rotated files, Docker data root: mailwarden ingest --docker-data-root) and run again; keep them from now on with mailwarden serve.".to_owned(),
            );
        } else {
            verdict = Verdict::SpoofedExternally;
            confidence = if n("inbound") > 0 {
                Confidence::High
            } else {
                Confidence::Medium
            };
            summary = format!(
                "No message from {address} left through our server in the covered window: mail with this sender was sent by someone else (spoofing)."
            );
            reasons.push(
                "the logs cover every day of the window and hold no outgoing message from this sender"
                    .to_owned(),
            );
            if n("inbound") > 0 {
                reasons.push(format!(
                    "{} message(s) claiming {address} came IN from outside without authentication (spoofing attempts against us), e.g. {}",
                    n("inbound"),
                    cite(MessageClass::Inbound)
                ));
            }
            if input.samples.is_empty() {
                missing.push(
                    "a received spam sample (--eml) would show its foreign origin and failing SPF/DKIM/DMARC"
                        .to_owned(),
                );
            }
            spoof_advice(posture.as_ref(), &mut reasons, &mut recommendations);
        }
    }
    Investigation {
        address,
        since: input.since,
        until: input.until,
        verdict,
        confidence,
        summary,
        reasons,
        recommendations,
        missing,
        directory: input.directory,
        coverage: input.coverage,
        coverage_gaps: gaps,
        counts,
        accounts,
        timeline,
        messages,
        account_events,
        our_domains: ours.into_iter().collect(),
        samples: input.samples,
        posture,
    }
}

/// What to tell about spoofs: the domain's posture when it was audited,
/// else the general advice.
fn spoof_advice(
    posture: Option<&PostureAssessment>,
    reasons: &mut Vec<String>,
    recommendations: &mut Vec<String>,
) {
    let Some(p) = posture else {
        recommendations.push(STRICT_DMARC.to_owned());
        return;
    };
    reasons.push(format!("posture: {}", p.explanation));
    for c in &p.changes {
        if !recommendations.contains(c) {
            recommendations.push(c.clone());
        }
    }
}

#[cfg(test)]
mod tests;
