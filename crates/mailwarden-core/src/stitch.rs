//! Stitching: from per-line events to one record per message.
//!
//! Postfix logs a message across many lines and daemons, tied by the queue id:
//! smtpd (`client=`, SASL user), cleanup (`message-id=`, milter actions), qmgr
//! (`from=`, `size=`, `removed`), the delivery agents (`to=`, `status=`), and
//! the content filters around it (Rspamd, amavis). The [`Stitcher`] follows the
//! queue ids and emits a [`MessageRecord`] when a message is finished.
//!
//! Content-filter re-injection (amavis on 10024 → `postfix/10025/smtpd`) gives
//! one message two queue ids. They are linked by the filter delivery's
//! `queued as NEWID`, by smtpd's `orig_queue_id=`, by amavis' `Queue-ID`/
//! `queued_as`, and by an identical Message-ID arriving from a loopback client
//! while the first copy is still in the queue. The linked copy is merged into
//! the first record, so a message counts once (pflogsumm counts it twice).
//!
//! Memory is bounded: records idle longer than the horizon (in event time) or
//! beyond the open-record cap are emitted as `evicted`, never dropped. At the
//! end of input, [`Stitcher::finish`] emits everything still open.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, Position};
use crate::parse::postfix::{Action, DeliveryStatus, PostfixEvent, PostfixMsg};
use crate::time::Timestamp;

/// How long and how many messages the stitcher keeps open.
#[derive(Clone, Debug)]
pub struct StitchConfig {
    /// A message with no new line for this many seconds (event time) is emitted
    /// as evicted. Postfix retries deferred mail for up to five days; the
    /// default keeps a day, which covers retries of a normal backoff while
    /// bounding memory.
    pub horizon_secs: i64,
    /// Most messages kept open at once; beyond it, the oldest are evicted.
    pub max_open: usize,
    /// Keep the raw lines of each message (for `logs search --lines`).
    pub capture_lines: bool,
    /// Most lines kept per message when capturing.
    pub max_lines_per_message: usize,
}

impl Default for StitchConfig {
    fn default() -> StitchConfig {
        StitchConfig {
            horizon_secs: 24 * 3600,
            max_open: 200_000,
            capture_lines: false,
            max_lines_per_message: 500,
        }
    }
}

/// How a message entered the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Received over SMTP by smtpd (any port/service).
    Smtp,
    /// Submitted locally through sendmail/postdrop (pickup).
    Pickup,
    /// A delivery status notification made by Postfix's bounce daemon.
    Notification,
    /// Created by local(8) alias/.forward expansion (`forwarded as`).
    Forwarded,
    /// Only later lines were seen (the input starts mid-message).
    Unknown,
}

impl Origin {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Smtp => "smtp",
            Origin::Pickup => "pickup",
            Origin::Notification => "notification",
            Origin::Forwarded => "forwarded",
            Origin::Unknown => "unknown",
        }
    }
}

/// Why a record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordEnd {
    /// qmgr removed it (all recipients done).
    Removed,
    /// Rejected or discarded before it was queued for delivery (milter reject).
    Rejected,
    /// No line for longer than the horizon, or the open-record cap was reached.
    Evicted,
    /// smtpd accepted a recipient (`client=` line) but the client left before
    /// DATA completed: nothing was queued (address probes, sender callouts).
    Abandoned,
    /// Still open when the input ended.
    Open,
}

impl RecordEnd {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordEnd::Removed => "removed",
            RecordEnd::Rejected => "rejected",
            RecordEnd::Evicted => "evicted",
            RecordEnd::Abandoned => "abandoned",
            RecordEnd::Open => "open",
        }
    }
}

/// The SMTP client that submitted a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Reverse name (`unknown` when unresolved).
    pub name: String,
    /// Address.
    pub ip: String,
}

/// One delivery attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// When.
    pub ts: Option<Timestamp>,
    /// Recipient.
    pub to: String,
    /// Original recipient before rewriting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_to: Option<String>,
    /// Next hop.
    pub relay: String,
    /// Delivery agent (`smtp`, `lmtp`, `virtual`, `pipe`, …).
    pub agent: String,
    /// Outcome.
    pub status: DeliveryStatus,
    /// DSN code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// Total delay (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<f64>,
    /// Text in parentheses after the status.
    pub detail: String,
}

/// A hop through a content filter that re-injected the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterHop {
    /// The filter's address (`127.0.0.1[127.0.0.1]:10024`).
    pub relay: String,
    /// Queue id of the message before the filter.
    pub from_queue_id: String,
    /// Queue id of the re-injected copy.
    pub queue_id: String,
}

/// A milter, header/body check or cleanup action on the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// What was done.
    pub action: Action,
    /// Whether a milter did it.
    pub milter: bool,
    /// Stage or check type.
    pub stage: String,
    /// Reply or reason.
    pub text: String,
}

/// A content scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scanner {
    /// Rspamd.
    Rspamd,
    /// amavisd-new.
    Amavis,
}

impl Scanner {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scanner::Rspamd => "rspamd",
            Scanner::Amavis => "amavis",
        }
    }
}

/// A content scanner's verdict joined to the message by queue id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanVerdict {
    /// Which scanner.
    pub scanner: Scanner,
    /// Action or category (`no action`, `reject`, `Passed CLEAN`, `Blocked SPAM`, …).
    pub action: String,
    /// Score, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Symbol or test names that fired (Rspamd symbols).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<String>,
    /// Authenticated user the scanner saw, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A raw line that belongs to the message (capture mode only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedLine {
    /// Where it came from.
    pub position: Position,
    /// The line as read (lossily decoded).
    pub text: String,
}

/// Everything known about one message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Host that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The queue id the message entered with.
    pub queue_id: String,
    /// Further queue ids of re-injected copies (content filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reinjected_as: Vec<String>,
    /// How it entered.
    pub origin: Origin,
    /// For notifications and forwarded copies: the queue id they came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_queue_id: Option<String>,
    /// First line seen.
    pub first_seen: Option<Timestamp>,
    /// Last line seen.
    pub last_seen: Option<Timestamp>,
    /// The submitting service (`postfix/submission`, `postfix`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// SMTP client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientInfo>,
    /// SASL mechanism, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_method: Option<String>,
    /// SASL user, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// Local submitter's uid (pickup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Message-ID header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The address in the `From:` header, when a Postfix header check logged
    /// it (`header_checks` with `/^From:/ INFO`; see the README). Postfix
    /// does not log the header sender otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_from: Option<String>,
    /// Envelope sender (empty string for the null sender `<>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Size in bytes (qmgr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Recipient count (qmgr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nrcpt: Option<u32>,
    /// Every delivery attempt to a final destination, in order.
    pub deliveries: Vec<Delivery>,
    /// Content-filter hops (re-injection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_hops: Vec<FilterHop>,
    /// Cleanup/milter actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionRecord>,
    /// Scanner verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<ScanVerdict>,
    /// Queue id of the notification (bounce/delay DSN) Postfix sent about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_queue_id: Option<String>,
    /// Whether the message expired in the queue.
    pub expired: bool,
    /// Why the record was emitted.
    pub end: RecordEnd,
    /// Number of log lines that contributed.
    pub line_count: u32,
    /// Position of the first contributing line.
    pub first_position: Position,
    /// The raw lines (capture mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<CapturedLine>,
}

/// A recipient's final state: the last attempt for each recipient.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipientOutcome<'r> {
    /// Recipient.
    pub to: &'r str,
    /// Last status.
    pub status: DeliveryStatus,
    /// The last attempt.
    pub last: &'r Delivery,
    /// Number of attempts seen.
    pub attempts: u32,
}

/// The address of a logged `From:` header line (`From: Name <a@b>`,
/// `From: a@b`), lowercased; `None` for other headers or no address.
pub fn header_from_address(line: &str) -> Option<String> {
    let (name, value) = line.split_once(':')?;
    if !name.trim().eq_ignore_ascii_case("from") {
        return None;
    }
    let value = value.trim();
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split_whitespace().find(|w| w.contains('@'))?,
    };
    let addr = addr.trim().trim_matches(|c| c == '"' || c == ',');
    (addr.contains('@') && !addr.contains(char::is_whitespace)).then(|| addr.to_ascii_lowercase())
}

impl MessageRecord {
    fn new(queue_id: &str, host: Option<&str>, ts: Option<Timestamp>, pos: Position) -> MessageRecord {
        MessageRecord {
            host: host.map(str::to_owned),
            queue_id: queue_id.to_owned(),
            reinjected_as: Vec::new(),
            origin: Origin::Unknown,
            parent_queue_id: None,
            first_seen: ts,
            last_seen: ts,
            service: None,
            client: None,
            sasl_method: None,
            sasl_username: None,
            uid: None,
            message_id: None,
            header_from: None,
            from: None,
            size: None,
            nrcpt: None,
            deliveries: Vec::new(),
            filter_hops: Vec::new(),
            actions: Vec::new(),
            verdicts: Vec::new(),
            notification_queue_id: None,
            expired: false,
            end: RecordEnd::Open,
            line_count: 0,
            first_position: pos,
            lines: Vec::new(),
        }
    }

    /// The final outcome per recipient, in first-seen order.
    pub fn outcomes(&self) -> Vec<RecipientOutcome<'_>> {
        let mut out: Vec<RecipientOutcome<'_>> = Vec::new();
        for d in &self.deliveries {
            match out.iter_mut().find(|o| o.to == d.to) {
                Some(o) => {
                    o.status = d.status;
                    o.last = d;
                    o.attempts += 1;
                }
                None => out.push(RecipientOutcome {
                    to: &d.to,
                    status: d.status,
                    last: d,
                    attempts: 1,
                }),
            }
        }
        out
    }

    /// Whether the message was submitted with SASL authentication.
    pub fn authenticated(&self) -> bool {
        self.sasl_username.is_some()
    }

    /// Every queue id of the message (the entry id and re-injected copies).
    pub fn all_queue_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.queue_id.as_str()).chain(self.reinjected_as.iter().map(String::as_str))
    }
}

/// An open message and its bookkeeping.
#[derive(Debug)]
struct Open {
    rec: MessageRecord,
    removed: bool,
    /// The copy this one was re-injected from (it merges into it when done).
    parent: Option<String>,
    /// Re-injected copies still open.
    pending_children: u32,
    /// Last activity (event time, micros) for horizon eviction.
    last_micros: i64,
    /// Sequence number of the last activity, for eviction by age when time is absent.
    last_seq: u64,
}

/// Counters the stitcher keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StitchStats {
    /// Records emitted because Postfix finished them.
    pub completed: u64,
    /// Records emitted by horizon or cap eviction.
    pub evicted: u64,
    /// Records still open at the end of input.
    pub open_at_end: u64,
    /// Re-injected copies merged into their first record.
    pub merged_reinjections: u64,
    /// Highest number of messages open at once.
    pub peak_open: u64,
}

/// Follows queue ids across lines; see the module docs.
#[derive(Debug)]
pub struct Stitcher {
    cfg: StitchConfig,
    open: FxHashMap<String, Open>,
    /// `queued as` ids announced by a loopback filter delivery before the
    /// re-injected copy showed up: child id → parent id.
    pending_links: FxHashMap<String, String>,
    /// Message-ID → queue id of open messages, for Message-ID linking.
    by_message_id: FxHashMap<String, String>,
    /// smtpd process (host, daemon pid) → the queue id it last opened, to
    /// detect messages abandoned before DATA when the session ends.
    sessions: FxHashMap<(u64, u32), String>,
    seq: u64,
    now_micros: i64,
    last_sweep_micros: i64,
    out: VecDeque<MessageRecord>,
    stats: StitchStats,
}

/// A hash of the logging host, to key per-process state without allocating.
pub(crate) fn host_key(host: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    host.hash(&mut h);
    h.finish()
}

fn is_loopback_relay(relay: &str) -> bool {
    // `127.0.0.1[127.0.0.1]:10024`, `localhost[::1]:10024`, `[private/amavis]`, unix sockets.
    let ip = relay
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .map(|(ip, _)| ip)
        .unwrap_or(relay);
    ip.starts_with("127.")
        || ip == "::1"
        || ip.starts_with('/')
        || ip.starts_with("private/")
        || ip.starts_with("public/")
}

fn is_loopback_ip(ip: &str) -> bool {
    ip.starts_with("127.") || ip == "::1" || ip == "localhost"
}

impl Stitcher {
    /// A stitcher with the given limits.
    pub fn new(cfg: StitchConfig) -> Stitcher {
        Stitcher {
            cfg,
            open: FxHashMap::default(),
            pending_links: FxHashMap::default(),
            by_message_id: FxHashMap::default(),
            sessions: FxHashMap::default(),
            seq: 0,
            now_micros: i64::MIN,
            last_sweep_micros: i64::MIN,
            out: VecDeque::new(),
            stats: StitchStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &StitchStats {
        &self.stats
    }

    /// Messages currently open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Takes the next finished record, if any.
    pub fn pop(&mut self) -> Option<MessageRecord> {
        self.out.pop_front()
    }

    /// Feeds one event. Finished records become available through [`pop`](Self::pop).
    pub fn feed(&mut self, pos: Position, raw: &str, ev: &Event<'_>) {
        self.seq += 1;
        if let Some(ts) = ev.ts {
            self.now_micros = self.now_micros.max(ts.unix_micros);
        }
        match &ev.kind {
            EventKind::Postfix(p) => self.feed_postfix(pos, raw, ev, p),
            EventKind::Rspamd(r) => {
                if let Some((qid, verdict)) = rspamd_verdict(r)
                    && let Some(key) = self.resolve(qid)
                {
                    self.touch(&key, pos, raw, ev.ts, None);
                    if let Some(o) = self.open.get_mut(&key) {
                        o.rec.verdicts.push(verdict);
                    }
                }
            }
            EventKind::Amavis(a) => {
                if let Some(link) = amavis_link(a)
                    && let Some(key) = self.resolve(link.queue_id)
                {
                    self.touch(&key, pos, raw, ev.ts, None);
                    if let Some(o) = self.open.get_mut(&key) {
                        o.rec.verdicts.push(link.verdict);
                    }
                    for child in link.queued_as {
                        self.link_child(child, &key);
                    }
                }
            }
            _ => {}
        }
        self.maybe_sweep();
    }

    /// The open record a queue id belongs to (a re-injected copy resolves to
    /// itself; merging happens when it completes).
    fn resolve(&self, qid: &str) -> Option<String> {
        self.open.contains_key(qid).then(|| qid.to_owned())
    }

    fn feed_postfix(&mut self, pos: Position, raw: &str, ev: &Event<'_>, p: &PostfixEvent<'_>) {
        let Some(qid) = p.queue_id else {
            if matches!(
                p.msg,
                PostfixMsg::Disconnect { .. } | PostfixMsg::SessionAbort { .. } | PostfixMsg::Connect { .. }
            ) && let Some(pid) = ev.pid
            {
                self.end_session(ev.host, pid, pos, raw, ev.ts);
            }
            return;
        };
        let qid = qid.as_str();
        // A queue id reused on another host: finish the old record first.
        if let Some(o) = self.open.get(qid)
            && o.rec.host.as_deref() != ev.host
        {
            self.evict(qid.to_owned());
        }
        if !self.open.contains_key(qid) {
            // Postsuper lines about unknown ids, late qmgr lines after eviction:
            // starting a record for `removed` alone would only add noise.
            if matches!(p.msg, PostfixMsg::Removed) {
                return;
            }
            let rec = MessageRecord::new(qid, ev.host, ev.ts, pos);
            self.open.insert(
                qid.to_owned(),
                Open {
                    rec,
                    removed: false,
                    parent: None,
                    pending_children: 0,
                    last_micros: ev.ts.map(|t| t.unix_micros).unwrap_or(self.now_micros),
                    last_seq: self.seq,
                },
            );
            self.stats.peak_open = self.stats.peak_open.max(self.open.len() as u64);
            if let Some(parent) = self.pending_links.remove(qid) {
                self.link_child(qid, &parent);
            }
        }
        self.touch(qid, pos, raw, ev.ts, Some(p));
        // A delivery answered with `queued as X` is a content-filter hand-off
        // when X is a message open in this host's own log (the filter
        // re-injected it before answering); otherwise X is another server's id.
        let reinjected_child: Option<String> = match &p.msg {
            PostfixMsg::Delivery {
                status: DeliveryStatus::Sent,
                queued_as: Some(child),
                ..
            } if *child != qid
                && (self
                    .open
                    .get(*child)
                    .is_some_and(|c| c.rec.host.as_deref() == ev.host)
                    || self
                        .open
                        .get(qid)
                        .is_some_and(|o| o.rec.reinjected_as.iter().any(|r| r == child))) =>
            {
                Some((*child).to_owned())
            }
            _ => None,
        };
        let mut finished = false;
        let mut link: Option<(String, String)> = None; // (child, parent)
        {
            let Some(o) = self.open.get_mut(qid) else {
                return;
            };
            let rec = &mut o.rec;
            match &p.msg {
                PostfixMsg::ClientAccepted {
                    client,
                    sasl_method,
                    sasl_username,
                    orig_queue_id,
                    ..
                } => {
                    rec.origin = Origin::Smtp;
                    rec.service = Some(p.service.to_owned());
                    if let Some(pid) = ev.pid {
                        self.sessions.insert((host_key(ev.host), pid), qid.to_owned());
                    }
                    rec.client = Some(ClientInfo {
                        name: client.name.to_owned(),
                        ip: client.ip.to_owned(),
                    });
                    rec.sasl_method = sasl_method.map(str::to_owned);
                    rec.sasl_username = sasl_username.map(str::to_owned);
                    if let Some(orig) = orig_queue_id
                        && o.parent.is_none()
                        && *orig != qid
                    {
                        link = Some((qid.to_owned(), (*orig).to_owned()));
                    }
                }
                PostfixMsg::Pickup { uid, from } => {
                    rec.origin = Origin::Pickup;
                    rec.service = Some(p.service.to_owned());
                    rec.uid = Some(*uid);
                    rec.from.get_or_insert_with(|| (*from).to_owned());
                }
                PostfixMsg::MessageId {
                    message_id,
                    resent: false,
                } => {
                    rec.message_id = Some((*message_id).to_owned());
                    let from_loopback = rec.client.as_ref().is_some_and(|c| is_loopback_ip(&c.ip));
                    if !message_id.is_empty() {
                        match self.by_message_id.get(*message_id) {
                            Some(other) if other != qid && from_loopback && o.parent.is_none() => {
                                link = Some((qid.to_owned(), other.clone()));
                            }
                            Some(_) => {}
                            None => {
                                self.by_message_id
                                    .insert((*message_id).to_owned(), qid.to_owned());
                            }
                        }
                    }
                }
                PostfixMsg::QueueActive { from, size, nrcpt } => {
                    rec.from = Some((*from).to_owned());
                    rec.size = Some(*size);
                    rec.nrcpt = Some(*nrcpt);
                    if rec.origin == Origin::Unknown && p.daemon.contains("qmgr") && rec.client.is_none() {
                        // Notifications have no smtpd/pickup line; origin stays
                        // Unknown unless the bounce line named it (see Notification).
                    }
                }
                PostfixMsg::Removed => {
                    o.removed = true;
                    finished = true;
                }
                PostfixMsg::Expired { from, .. } => {
                    rec.expired = true;
                    rec.from.get_or_insert_with(|| (*from).to_owned());
                }
                PostfixMsg::Delivery {
                    to,
                    orig_to,
                    relay,
                    delay,
                    dsn,
                    status,
                    detail,
                    queued_as,
                    ..
                } => {
                    let filter_discarded = *status == DeliveryStatus::Sent
                        && is_loopback_relay(relay)
                        && queued_as.is_none()
                        && (detail.contains(", discarded, ") || detail.contains(" Ok, discarded"));
                    if filter_discarded {
                        // amavis answers `250 2.7.0 Ok, discarded, id=… - BANNED: …`:
                        // the content filter swallowed it; nothing was delivered.
                        rec.actions.push(ActionRecord {
                            action: Action::Discard,
                            milter: false,
                            stage: "content-filter".to_owned(),
                            text: (*detail).to_owned(),
                        });
                    } else if let Some(child) = reinjected_child {
                        rec.filter_hops.push(FilterHop {
                            relay: (*relay).to_owned(),
                            from_queue_id: qid.to_owned(),
                            queue_id: child.clone(),
                        });
                        link = Some((child, qid.to_owned()));
                    } else {
                        rec.deliveries.push(Delivery {
                            ts: ev.ts,
                            to: (*to).to_owned(),
                            orig_to: orig_to.map(str::to_owned),
                            relay: (*relay).to_owned(),
                            agent: p.daemon.to_owned(),
                            status: *status,
                            dsn: dsn.map(str::to_owned),
                            delay: *delay,
                            detail: (*detail).to_owned(),
                        });
                    }
                }
                PostfixMsg::Action {
                    action,
                    milter,
                    stage,
                    text,
                    matched,
                    ..
                } => {
                    if *stage == "header"
                        && rec.header_from.is_none()
                        && let Some(addr) = matched.and_then(header_from_address)
                    {
                        rec.header_from = Some(addr);
                    }
                    rec.actions.push(ActionRecord {
                        action: *action,
                        milter: *milter,
                        stage: (*stage).to_owned(),
                        text: (*text).to_owned(),
                    });
                    // A rejected or discarded message is never removed by qmgr.
                    if matches!(action, Action::Reject | Action::Discard | Action::ProxyReject)
                        && p.daemon == "cleanup"
                    {
                        rec.end = RecordEnd::Rejected;
                        finished = true;
                        o.removed = true;
                    }
                }
                PostfixMsg::Notification { new_queue_id, .. } => {
                    rec.notification_queue_id = Some((*new_queue_id).to_owned());
                    let parent = qid.to_owned();
                    let child = (*new_queue_id).to_owned();
                    self.mark_origin(&child, Origin::Notification, &parent);
                }
                _ => {}
            }
        }
        if let PostfixMsg::Delivery {
            forwarded_as: Some(fwd),
            ..
        } = &p.msg
        {
            self.mark_origin(fwd, Origin::Forwarded, qid);
        }
        if let Some((child, parent)) = link {
            self.link_child(&child, &parent);
        }
        if finished {
            self.try_finish(qid);
        }
    }

    /// An smtpd session ended (or its process took a new connection): a
    /// message it opened that never reached cleanup was abandoned before DATA.
    fn end_session(&mut self, host: Option<&str>, pid: u32, pos: Position, raw: &str, ts: Option<Timestamp>) {
        if self.sessions.is_empty() {
            return;
        }
        let Some(qid) = self.sessions.remove(&(host_key(host), pid)) else {
            return;
        };
        let abandoned = self.open.get(&qid).is_some_and(|o| {
            o.rec.message_id.is_none()
                && o.rec.size.is_none()
                && o.rec.deliveries.is_empty()
                && o.parent.is_none()
        });
        if abandoned {
            self.touch(&qid, pos, raw, ts, None);
            if let Some(o) = self.open.get_mut(&qid) {
                o.rec.end = RecordEnd::Abandoned;
                o.removed = true;
            }
            self.try_finish(&qid);
        }
    }

    /// Records that `child` was created from `parent` (bounce or forward); the
    /// child may not be open yet, so remember it until it appears.
    fn mark_origin(&mut self, child: &str, origin: Origin, parent: &str) {
        if let Some(o) = self.open.get_mut(child) {
            o.rec.origin = origin;
            o.rec.parent_queue_id = Some(parent.to_owned());
        } else {
            // Created before its first line: open it now with the origin set.
            let mut rec = MessageRecord::new(child, None, None, Position { source: 0, line: 0 });
            rec.origin = origin;
            rec.parent_queue_id = Some(parent.to_owned());
            if let Some(p) = self.open.get(parent) {
                rec.host = p.rec.host.clone();
                rec.first_seen = p.rec.last_seen;
                rec.first_position = p.rec.first_position;
            }
            self.open.insert(
                child.to_owned(),
                Open {
                    rec,
                    removed: false,
                    parent: None,
                    pending_children: 0,
                    last_micros: self.now_micros,
                    last_seq: self.seq,
                },
            );
        }
    }

    /// Links a re-injected copy to the message it came from.
    fn link_child(&mut self, child: &str, parent: &str) {
        if child == parent {
            return;
        }
        if !self.open.contains_key(child) {
            // Not seen yet: link when it appears.
            if self.open.contains_key(parent) {
                self.pending_links.insert(child.to_owned(), parent.to_owned());
            }
            return;
        }
        if !self.open.contains_key(parent) {
            return;
        }
        let Some(c) = self.open.get_mut(child) else {
            return;
        };
        if c.parent.is_some() {
            return;
        }
        c.parent = Some(parent.to_owned());
        if let Some(p) = self.open.get_mut(parent) {
            p.pending_children += 1;
            if !p.rec.reinjected_as.iter().any(|q| q == child) {
                p.rec.reinjected_as.push(child.to_owned());
            }
        }
    }

    /// Updates activity and captures the raw line.
    fn touch(
        &mut self,
        qid: &str,
        pos: Position,
        raw: &str,
        ts: Option<Timestamp>,
        _p: Option<&PostfixEvent<'_>>,
    ) {
        let capture = self.cfg.capture_lines;
        let max_lines = self.cfg.max_lines_per_message;
        let seq = self.seq;
        let now = self.now_micros;
        if let Some(o) = self.open.get_mut(qid) {
            o.rec.line_count += 1;
            if let Some(ts) = ts {
                if o.rec.first_seen.is_none() {
                    o.rec.first_seen = Some(ts);
                }
                o.rec.last_seen = Some(ts);
            }
            if o.rec.first_position.line == 0 {
                o.rec.first_position = pos;
            }
            o.last_micros = ts.map(|t| t.unix_micros).unwrap_or(now);
            o.last_seq = seq;
            if capture && o.rec.lines.len() < max_lines {
                o.rec.lines.push(CapturedLine {
                    position: pos,
                    text: raw.to_owned(),
                });
            }
        }
    }

    /// Emits `qid` if it is done and has no open re-injected copies; merges a
    /// finished copy into its parent.
    fn try_finish(&mut self, qid: &str) {
        let ready = match self.open.get(qid) {
            Some(o) => o.removed && o.pending_children == 0,
            None => false,
        };
        if !ready {
            return;
        }
        let Some(mut o) = self.open.remove(qid) else {
            return;
        };
        if o.rec.end == RecordEnd::Open {
            o.rec.end = RecordEnd::Removed;
        }
        self.forget_message_id(&o.rec);
        match o.parent.take() {
            Some(parent) if self.open.contains_key(&parent) => {
                self.merge_into(&parent, o.rec);
                self.stats.merged_reinjections += 1;
                if let Some(p) = self.open.get_mut(&parent) {
                    p.pending_children = p.pending_children.saturating_sub(1);
                }
                self.try_finish(&parent);
            }
            _ => {
                self.stats.completed += 1;
                self.out.push_back(o.rec);
            }
        }
    }

    fn forget_message_id(&mut self, rec: &MessageRecord) {
        if let Some(mid) = &rec.message_id
            && self.by_message_id.get(mid).is_some_and(|q| *q == rec.queue_id)
        {
            self.by_message_id.remove(mid);
        }
    }

    /// Folds a finished re-injected copy into the record it came from: its
    /// deliveries are the message's real deliveries.
    fn merge_into(&mut self, parent: &str, child: MessageRecord) {
        let Some(p) = self.open.get_mut(parent) else {
            return;
        };
        let rec = &mut p.rec;
        for q in std::iter::once(child.queue_id).chain(child.reinjected_as) {
            if !rec.reinjected_as.contains(&q) {
                rec.reinjected_as.push(q);
            }
        }
        rec.deliveries.extend(child.deliveries);
        rec.filter_hops.extend(child.filter_hops);
        rec.actions.extend(child.actions);
        rec.verdicts.extend(child.verdicts);
        rec.expired |= child.expired;
        if rec.message_id.is_none() {
            rec.message_id = child.message_id;
        }
        if rec.notification_queue_id.is_none() {
            rec.notification_queue_id = child.notification_queue_id;
        }
        if let Some(ts) = child.last_seen
            && rec.last_seen.is_none_or(|l| l < ts)
        {
            rec.last_seen = Some(ts);
        }
        rec.line_count += child.line_count;
        rec.lines.extend(child.lines);
        if child.end == RecordEnd::Rejected {
            rec.end = RecordEnd::Rejected;
        }
    }

    /// Emits an open record as evicted (with any open copies merged first).
    fn evict(&mut self, qid: String) {
        let Some(mut o) = self.open.remove(&qid) else {
            return;
        };
        self.forget_message_id(&o.rec);
        // Detach from a parent: the record is emitted on its own.
        if let Some(parent) = o.parent.take()
            && let Some(p) = self.open.get_mut(&parent)
        {
            p.pending_children = p.pending_children.saturating_sub(1);
            o.rec.parent_queue_id.get_or_insert(parent);
        }
        if o.rec.end == RecordEnd::Open {
            o.rec.end = RecordEnd::Evicted;
        }
        self.stats.evicted += 1;
        self.out.push_back(o.rec);
    }

    /// Evicts idle records (event time older than the horizon) and enforces the
    /// open-record cap. Runs at most once per simulated minute.
    fn maybe_sweep(&mut self) {
        let over_cap = self.open.len() > self.cfg.max_open;
        let due = self.now_micros != i64::MIN
            && self.now_micros.saturating_sub(self.last_sweep_micros) >= 60_000_000;
        if !over_cap && !due {
            return;
        }
        self.last_sweep_micros = self.now_micros;
        let horizon = self.cfg.horizon_secs.saturating_mul(1_000_000);
        let cutoff = self.now_micros.saturating_sub(horizon);
        let mut idle: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.last_micros < cutoff && o.pending_children == 0)
            .map(|(k, _)| k.clone())
            .collect();
        if self.open.len() - idle.len() > self.cfg.max_open {
            let mut by_age: Vec<(u64, &String)> = self.open.iter().map(|(k, o)| (o.last_seq, k)).collect();
            by_age.sort_unstable();
            let excess = self.open.len() - self.cfg.max_open + self.cfg.max_open / 10;
            idle.extend(by_age.into_iter().take(excess).map(|(_, k)| k.clone()));
            idle.sort_unstable();
            idle.dedup();
        }
        // Children before parents so a parent's pending count is released.
        idle.sort_by_key(|k| self.open.get(k).map(|o| o.parent.is_none()));
        for k in idle {
            self.evict(k);
        }
        self.pending_links
            .retain(|_, parent| self.open.contains_key(parent));
    }

    /// Ends the input: open re-injected copies merge into their first record,
    /// then every open record is emitted (`end = open`, or `removed` when qmgr
    /// finished it while a copy was still open).
    pub fn finish(&mut self) {
        let children: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.parent.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for k in children {
            let Some(mut o) = self.open.remove(&k) else {
                continue;
            };
            let parent = o.parent.take().unwrap_or_default();
            self.forget_message_id(&o.rec);
            if self.open.contains_key(&parent) {
                self.merge_into(&parent, o.rec);
                self.stats.merged_reinjections += 1;
                if let Some(p) = self.open.get_mut(&parent) {
                    p.pending_children = p.pending_children.saturating_sub(1);
                }
            } else {
                self.stats.open_at_end += 1;
                self.out.push_back(o.rec);
            }
        }
        let mut rest: Vec<(String, Open)> = self.open.drain().collect();
        rest.sort_by_key(|(_, o)| o.last_seq);
        for (_, mut o) in rest {
            if o.rec.end == RecordEnd::Open {
                o.rec.end = if o.removed {
                    RecordEnd::Removed
                } else {
                    RecordEnd::Open
                };
            }
            if o.rec.end == RecordEnd::Open {
                self.stats.open_at_end += 1;
            } else {
                self.stats.completed += 1;
            }
            self.out.push_back(o.rec);
        }
        self.pending_links.clear();
        self.by_message_id.clear();
    }
}

/// The queue id and verdict of an Rspamd scan result line.
fn rspamd_verdict<'e>(r: &'e crate::parse::rspamd::RspamdEvent<'_>) -> Option<(&'e str, ScanVerdict)> {
    use crate::parse::rspamd::RspamdEvent;
    let RspamdEvent::Task {
        queue_id: Some(qid),
        action,
        score,
        symbols,
        user,
        ..
    } = r
    else {
        return None;
    };
    Some((
        qid,
        ScanVerdict {
            scanner: Scanner::Rspamd,
            action: action.unwrap_or("").to_owned(),
            score: *score,
            symbols: symbols.iter().map(|s| s.name.to_owned()).collect(),
            user: user.map(str::to_owned),
        },
    ))
}

/// What an amavis result line says about a message: its queue id, the verdict
/// and the queue ids of the re-injected copies.
struct AmavisLink<'e> {
    queue_id: &'e str,
    verdict: ScanVerdict,
    queued_as: Vec<&'e str>,
}

fn amavis_link<'e>(a: &'e crate::parse::amavis::AmavisEvent<'_>) -> Option<AmavisLink<'e>> {
    use crate::parse::amavis::{AmavisEvent, Disposition};
    let AmavisEvent::Verdict {
        action,
        category,
        hits,
        queue_id: Some(qid),
        queued_as,
        ..
    } = a
    else {
        return None;
    };
    let disposition = match action {
        Disposition::Passed => "Passed",
        Disposition::Blocked => "Blocked",
    };
    Some(AmavisLink {
        queue_id: qid,
        verdict: ScanVerdict {
            scanner: Scanner::Amavis,
            action: match category {
                Some(c) => format!("{disposition} {c}"),
                None => disposition.to_owned(),
            },
            score: *hits,
            symbols: Vec::new(),
            user: None,
        },
        queued_as: queued_as.as_ref().map(|l| l.iter().collect()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
