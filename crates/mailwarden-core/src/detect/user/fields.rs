//! The fields a user rule can test, and cheap access to them.
//!
//! An event's fields are the keys of its JSON form (`mailwarden logs parse`),
//! nested objects addressed with dots (`client.ip`, `symbols.name`; an array
//! gives each of its elements), plus aliases that exist for every event and
//! cost no serialization: `kind`, `event`, `program`, `host`, `client_ip`,
//! `user`, `sender`, `recipient`, `queue_id`, `message_id` and `line` (the raw
//! line). An alias wins over a JSON key of the same name (netfilter's
//! `line`, the matched log line, is only reachable through the raw line).
//!
//! Cost: `kind`, `program`, `host` and `line` are read from the event as it
//! is; `event` is found by a serializer that stops at the `event` key (no
//! allocation); the other aliases come from [`Event::index_fields`]. Only a
//! JSON field serializes the event, once per event, and only when a rule
//! asks for it after its cheaper conditions held.
//!
//! A stitched message ([`MessageRecord`]) has its own fields
//! ([`MESSAGE_FIELDS`]), computed from the record without serializing it.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::event::{Event, EventKind, IndexFields};
use crate::parse::amavis::{Addresses, AmavisEvent};
use crate::parse::mariadb::MariadbEvent;
use crate::parse::netfilter::NetfilterEvent;
use crate::parse::nginx::NginxEvent;
use crate::stitch::{MessageRecord, RecipientOutcome};

/// A field alias every event has (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alias {
    Kind,
    Event,
    Program,
    Host,
    ClientIp,
    User,
    Sender,
    Recipient,
    QueueId,
    MessageId,
    Line,
}

/// The aliases every event has: name, what it is.
pub const EVENT_ALIASES: &[(&str, &str)] = &[
    (
        "kind",
        "the family: postfix, dovecot, rspamd, amavis, sogo, nginx, netfilter, mariadb, unparsed",
    ),
    (
        "event",
        "what the line says within its family (connect, sasl_auth_failed, login, login_succeeded, …)",
    ),
    (
        "program",
        "the syslog tag as written (postfix/submission/smtpd, dovecot, sogod, …)",
    ),
    ("host", "the host that logged the line (from the framing)"),
    (
        "client_ip",
        "the remote address: SMTP client, login's rip, SOGo/nginx client, Rspamd/amavis ip, netfilter address",
    ),
    (
        "user",
        "the login name: SASL user name, IMAP/POP3 user, SOGo user, MariaDB user, Rspamd user",
    ),
    (
        "sender",
        "the envelope sender (qmgr from=, NOQUEUE from=, pickup, Rspamd/amavis sender)",
    ),
    (
        "recipient",
        "the envelope recipient (delivery to=, NOQUEUE to=, amavis recipients)",
    ),
    (
        "queue_id",
        "the Postfix queue id the line is about (also Rspamd's and amavis' Queue-ID)",
    ),
    (
        "message_id",
        "the Message-ID (cleanup, Dovecot deliveries, Rspamd, amavis)",
    ),
    ("line", "the raw line as read (framing included)"),
];

fn alias_of(name: &str) -> Option<Alias> {
    Some(match name {
        "kind" => Alias::Kind,
        "event" => Alias::Event,
        "program" => Alias::Program,
        "host" => Alias::Host,
        "client_ip" => Alias::ClientIp,
        "user" => Alias::User,
        "sender" => Alias::Sender,
        "recipient" => Alias::Recipient,
        "queue_id" => Alias::QueueId,
        "message_id" => Alias::MessageId,
        "line" => Alias::Line,
        _ => return None,
    })
}

/// Every JSON key an event can have (dotted for nested objects), with the
/// families that write it (`*`: every family). Postfix's per-command counters
/// are `stats.CMD` (`stats.auth`, `stats.rcpt`: `[ok, total]`), any command.
///
/// Kept in step with the parsers by a test that serializes events of every
/// family and checks each key is listed here.
pub const EVENT_FIELDS: &[(&str, &str)] = &[
    ("abnormal", "rspamd"),
    ("action", "amavis,dovecot,postfix,rspamd"),
    ("addr", "netfilter"),
    ("after", "postfix"),
    ("alert", "amavis"),
    ("app", "nginx"),
    ("at", "postfix"),
    ("attempts", "dovecot,netfilter"),
    ("authenticator", "sogo"),
    ("autolearn", "amavis"),
    ("backend", "netfilter"),
    ("bound", "sogo"),
    ("build", "dovecot"),
    ("build_id", "rspamd"),
    ("by_pid", "dovecot"),
    ("bytes", "nginx,postfix"),
    ("cache", "postfix"),
    ("category", "amavis"),
    ("cause", "mariadb"),
    ("chain", "netfilter"),
    ("checksum", "rspamd"),
    ("child", "nginx"),
    ("cipher", "dovecot,postfix"),
    ("class", "sogo"),
    ("client", "mariadb,nginx,postfix,sogo"),
    ("client.ip", "postfix"),
    ("client.name", "postfix"),
    ("client.port", "postfix"),
    ("client_ip", "amavis"),
    ("client_port", "amavis"),
    ("code", "dovecot,mariadb,postfix"),
    ("command", "postfix"),
    ("comment", "mariadb"),
    ("connection", "nginx"),
    ("context", "amavis"),
    ("continued", "amavis"),
    ("core_dumps_disabled", "dovecot"),
    ("corrupted", "mariadb"),
    ("count", "postfix"),
    ("created_with", "mariadb"),
    ("daemon", "postfix"),
    ("delay", "postfix"),
    ("delays", "postfix"),
    ("detail", "dovecot,postfix"),
    ("digest", "rspamd"),
    ("direction", "postfix"),
    ("disabled", "rspamd"),
    ("disconnect", "dovecot"),
    ("dns_requests", "rspamd"),
    ("domain", "postfix"),
    ("driver", "dovecot"),
    ("dropped", "postfix"),
    ("dsn", "postfix"),
    ("duration", "sogo"),
    ("elapsed_ms", "amavis"),
    ("encrypted", "mariadb"),
    ("engine", "mariadb"),
    ("enhanced", "postfix"),
    ("entries", "netfilter"),
    ("errno", "mariadb"),
    ("error", "dovecot,mariadb"),
    (
        "event",
        "amavis,dovecot,mariadb,netfilter,nginx,postfix,rspamd,sogo",
    ),
    ("expire", "sogo"),
    ("family", "netfilter"),
    ("file", "mariadb"),
    ("forced", "rspamd"),
    ("forwarded_as", "postfix"),
    ("forwarded_for", "nginx"),
    ("from", "postfix,rspamd"),
    ("from_header", "amavis"),
    ("function", "rspamd"),
    ("grace", "sogo"),
    ("helo", "amavis,postfix"),
    ("hits", "amavis"),
    ("host", "*"),
    ("hostname", "netfilter,postfix"),
    ("how", "rspamd"),
    ("http_host", "nginx"),
    ("in_bytes", "dovecot"),
    ("in_reply_to", "postfix"),
    ("initiated_by", "mariadb"),
    ("ip", "postfix,rspamd"),
    ("is_spam", "rspamd"),
    ("kind", "*"),
    ("least", "rspamd"),
    ("len", "rspamd"),
    ("level", "dovecot,mariadb,nginx,sogo"),
    ("limit", "postfix"),
    ("line", "netfilter"),
    ("lip", "dovecot"),
    ("list", "netfilter,postfix"),
    ("local", "amavis"),
    ("log_id", "amavis"),
    ("lport", "dovecot"),
    ("mail_id", "amavis"),
    ("mailbox", "dovecot"),
    ("master", "dovecot"),
    ("matched", "postfix"),
    ("mechanism", "dovecot"),
    ("message", "rspamd"),
    ("message_id", "amavis,postfix,rspamd"),
    ("method", "dovecot,nginx,postfix,sogo"),
    ("metric", "postfix"),
    ("milter", "postfix"),
    ("mime_rcpts", "rspamd"),
    ("minutes", "netfilter"),
    ("module", "rspamd"),
    ("mpid", "dovecot"),
    ("msgid", "dovecot"),
    ("name", "sogo"),
    ("net", "netfilter"),
    ("new", "postfix"),
    ("new_queue_id", "postfix"),
    ("next_db", "dovecot"),
    ("notification", "postfix"),
    ("nrcpt", "postfix"),
    ("orig_client", "postfix"),
    ("orig_client.ip", "postfix"),
    ("orig_client.name", "postfix"),
    ("orig_client.port", "postfix"),
    ("orig_queue_id", "postfix"),
    ("orig_to", "postfix"),
    ("origin_ip", "amavis"),
    ("out_bytes", "dovecot"),
    ("outcome", "sogo"),
    ("output", "nginx"),
    ("password_sha1", "dovecot"),
    ("path", "nginx,sogo"),
    ("peer", "postfix"),
    ("peer.ip", "postfix"),
    ("peer.name", "postfix"),
    ("peer.port", "postfix"),
    ("permanent", "netfilter"),
    ("pid", "*"),
    ("plugin", "mariadb"),
    ("policy", "sogo"),
    ("policy_banks", "amavis"),
    ("pool", "nginx"),
    ("port", "mariadb,postfix"),
    ("position", "netfilter"),
    ("priority", "rspamd"),
    ("process", "dovecot,rspamd"),
    ("process_pid", "dovecot"),
    ("product", "mariadb"),
    ("program", "*"),
    ("proto", "postfix"),
    ("protocol", "amavis,nginx,postfix,sogo"),
    ("protocols", "dovecot"),
    ("proxy_to", "dovecot"),
    ("quarantine", "amavis"),
    ("queue_id", "amavis,postfix,rspamd"),
    ("queued_as", "amavis,postfix"),
    ("rank", "postfix"),
    ("rcpts", "rspamd"),
    ("reason", "amavis,dovecot,postfix,sogo,unparsed"),
    ("recipients", "amavis"),
    ("referer", "nginx"),
    ("referrer", "nginx"),
    ("relay", "postfix"),
    ("remote", "dovecot"),
    ("removed", "netfilter"),
    ("reply", "postfix"),
    ("request", "nginx,sogo"),
    ("request_bytes", "sogo"),
    ("required_score", "rspamd"),
    ("resent", "postfix"),
    ("resent_message_id", "amavis"),
    ("response_bytes", "sogo"),
    ("retained", "postfix"),
    ("revision", "mariadb"),
    ("rip", "dovecot"),
    ("rport", "dovecot"),
    ("rule", "netfilter"),
    ("rule_id", "netfilter"),
    ("running", "mariadb"),
    ("sasl_method", "postfix"),
    ("sasl_sender", "postfix"),
    ("sasl_username", "postfix"),
    ("score", "rspamd"),
    ("seconds", "netfilter"),
    ("secs", "dovecot"),
    ("secured", "dovecot"),
    ("sender", "amavis"),
    ("server", "mariadb,nginx"),
    ("server_ip", "postfix"),
    ("server_pid", "mariadb"),
    ("server_port", "postfix"),
    ("service", "dovecot,postfix"),
    ("session", "dovecot"),
    ("settings_id", "rspamd"),
    ("severity", "*"),
    ("sieve", "dovecot"),
    ("signal", "dovecot,mariadb"),
    ("size", "amavis,postfix,rspamd"),
    ("skipped", "rspamd"),
    ("socket", "mariadb"),
    ("source", "netfilter,rspamd"),
    ("stage", "postfix"),
    ("state", "dovecot"),
    ("stats", "dovecot,postfix"),
    ("status", "nginx,postfix,sogo"),
    ("step", "mariadb"),
    ("stream", "nginx"),
    ("subject", "amavis"),
    ("subsystem", "mariadb"),
    ("symbols", "rspamd"),
    ("symbols.name", "rspamd"),
    ("symbols.options", "rspamd"),
    ("symbols.score", "rspamd"),
    ("table", "mariadb"),
    ("tag", "rspamd"),
    ("tags", "amavis"),
    ("tail", "nginx,sogo"),
    ("target", "dovecot,netfilter"),
    ("tests", "amavis"),
    (
        "text",
        "amavis,dovecot,mariadb,netfilter,nginx,postfix,rspamd,sogo",
    ),
    ("thread", "mariadb"),
    ("time_real_ms", "rspamd"),
    ("time_virtual_ms", "rspamd"),
    ("tls", "dovecot"),
    ("tls_error", "dovecot"),
    ("to", "postfix"),
    ("trace", "amavis"),
    ("trust", "postfix"),
    ("ts", "*"),
    ("uid", "postfix"),
    ("untracked", "netfilter"),
    ("upstream", "nginx"),
    ("user", "dovecot,mariadb,nginx,rspamd,sogo"),
    ("user_agent", "nginx"),
    ("using_password", "mariadb"),
    ("value", "postfix"),
    ("version", "dovecot,mariadb,postfix,rspamd"),
    ("violation", "postfix"),
    ("what", "postfix"),
    ("worker_pid", "nginx,rspamd"),
    ("worker_tid", "nginx"),
];

/// A stitched message's fields: name, what it is. Lists give one value per
/// element (a condition holds when any value matches).
pub const MESSAGE_FIELDS: &[(&str, &str)] = &[
    ("queue_id", "the queue id the message entered with"),
    ("host", "the host that logged it"),
    (
        "origin",
        "how it entered: smtp, pickup, notification, forwarded, unknown",
    ),
    (
        "service",
        "the submitting Postfix service (postfix/submission, postfix, …)",
    ),
    ("client_ip", "the SMTP client's address"),
    (
        "client_name",
        "the SMTP client's reverse name (unknown when unresolved)",
    ),
    (
        "sasl_username",
        "the SASL user that submitted it (absent when not authenticated)",
    ),
    ("user", "same as sasl_username"),
    ("sasl_method", "the SASL mechanism"),
    (
        "authenticated",
        "true when submitted with SASL authentication, else false",
    ),
    ("uid", "the local submitter's uid (pickup)"),
    ("message_id", "the Message-ID header"),
    (
        "header_from",
        "the From: header address, when a header check logged it",
    ),
    ("header_from_domain", "the domain of header_from"),
    ("sender", "the envelope sender (empty for the null sender <>)"),
    ("sender_domain", "the domain of the envelope sender"),
    ("size", "the size in bytes"),
    ("nrcpt", "the recipient count qmgr logged"),
    (
        "recipient",
        "list: every recipient (final outcome per recipient, first-seen order)",
    ),
    (
        "recipient_domain",
        "list: the recipients' domains (lowercase, each once)",
    ),
    ("recipient_count", "the number of distinct recipients"),
    (
        "status",
        "list: each recipient's final status (sent, deferred, bounced, expired, …)",
    ),
    (
        "relay",
        "list: each recipient's last relay (mx.example.net[192.0.2.1]:25, dovecot, …)",
    ),
    ("dsn", "list: each recipient's last DSN code (2.0.0, 5.1.1, …)"),
    ("sent", "the number of recipients whose final status is sent"),
    (
        "bounced",
        "the number of recipients whose final status is bounced",
    ),
    (
        "deferred",
        "the number of recipients whose final status is deferred",
    ),
    (
        "action",
        "list: cleanup/milter actions (reject, hold, discard, warning, …)",
    ),
    ("action_text", "list: the text of those actions"),
    ("scanner", "list: scanners that judged it (rspamd, amavis)"),
    (
        "scan_action",
        "list: their actions or categories (no action, reject, Passed CLEAN, …)",
    ),
    ("score", "the highest scanner score"),
    ("symbol", "list: the Rspamd symbols that fired"),
    ("expired", "true when it expired in the queue"),
    (
        "end",
        "why the record ended: removed, rejected, evicted, abandoned, open",
    ),
    ("lines", "the number of log lines that made the record"),
];

/// A field of a stitched message (see [`MESSAGE_FIELDS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MsgField {
    QueueId,
    Host,
    Origin,
    Service,
    ClientIp,
    ClientName,
    SaslUsername,
    SaslMethod,
    Authenticated,
    Uid,
    MessageId,
    HeaderFrom,
    HeaderFromDomain,
    Sender,
    SenderDomain,
    Size,
    Nrcpt,
    Recipient,
    RecipientDomain,
    RecipientCount,
    Status,
    Relay,
    Dsn,
    Sent,
    Bounced,
    Deferred,
    Action,
    ActionText,
    Scanner,
    ScanAction,
    Score,
    Symbol,
    Expired,
    End,
    Lines,
}

fn msg_field_of(name: &str) -> Option<MsgField> {
    use MsgField as M;
    Some(match name {
        "queue_id" => M::QueueId,
        "host" => M::Host,
        "origin" => M::Origin,
        "service" => M::Service,
        "client_ip" => M::ClientIp,
        "client_name" => M::ClientName,
        "sasl_username" | "user" => M::SaslUsername,
        "sasl_method" => M::SaslMethod,
        "authenticated" => M::Authenticated,
        "uid" => M::Uid,
        "message_id" => M::MessageId,
        "header_from" => M::HeaderFrom,
        "header_from_domain" => M::HeaderFromDomain,
        "sender" => M::Sender,
        "sender_domain" => M::SenderDomain,
        "size" => M::Size,
        "nrcpt" => M::Nrcpt,
        "recipient" => M::Recipient,
        "recipient_domain" => M::RecipientDomain,
        "recipient_count" => M::RecipientCount,
        "status" => M::Status,
        "relay" => M::Relay,
        "dsn" => M::Dsn,
        "sent" => M::Sent,
        "bounced" => M::Bounced,
        "deferred" => M::Deferred,
        "action" => M::Action,
        "action_text" => M::ActionText,
        "scanner" => M::Scanner,
        "scan_action" => M::ScanAction,
        "score" => M::Score,
        "symbol" => M::Symbol,
        "expired" => M::Expired,
        "end" => M::End,
        "lines" => M::Lines,
        _ => return None,
    })
}

/// A resolved field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// An alias every event has.
    Alias(Alias),
    /// A key path into the event's JSON form.
    Json(Box<[Box<str>]>),
    /// A field of a stitched message.
    Msg(MsgField),
}

impl Field {
    /// Relative cost of reading the field: conditions on cheap fields are
    /// tested first.
    pub(crate) fn cost(&self) -> u8 {
        match self {
            Field::Alias(Alias::Kind | Alias::Program | Alias::Host) => 0,
            Field::Alias(Alias::Event) => 1,
            Field::Alias(_) => 2,
            Field::Msg(_) => 2,
            Field::Json(_) => 4,
        }
    }

    /// Whether the field is the raw line (its tests scan the whole line).
    pub(crate) fn is_line(&self) -> bool {
        matches!(self, Field::Alias(Alias::Line))
    }
}

/// Which records a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// Every parsed line (default).
    Events,
    /// Stitched messages.
    Messages,
}

impl RuleSource {
    /// The lower-case name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::Events => "events",
            RuleSource::Messages => "messages",
        }
    }
}

/// Resolves a field name for `source`: the field and the name as a static
/// string (for alert facts). `Err` carries the fix.
pub(crate) fn resolve(source: RuleSource, name: &str) -> Result<(Field, &'static str), String> {
    match source {
        RuleSource::Events => {
            if let Some(a) = alias_of(name) {
                let stat = EVENT_ALIASES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("field", |(n, _)| *n);
                return Ok((Field::Alias(a), stat));
            }
            if let Ok(i) = EVENT_FIELDS.binary_search_by(|(n, _)| (*n).cmp(name)) {
                let stat = EVENT_FIELDS[i].0;
                return Ok((Field::Json(split_path(name)), stat));
            }
            if let Some(cmd) = name.strip_prefix("stats.")
                && !cmd.is_empty()
                && cmd.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Ok((Field::Json(split_path(name)), "stats"));
            }
            let known = EVENT_ALIASES
                .iter()
                .map(|(n, _)| *n)
                .chain(EVENT_FIELDS.iter().map(|(n, _)| *n));
            Err(unknown_fix(name, known, "events"))
        }
        RuleSource::Messages => match msg_field_of(name) {
            Some(f) => {
                let stat = MESSAGE_FIELDS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("field", |(n, _)| *n);
                Ok((Field::Msg(f), stat))
            }
            None => Err(unknown_fix(
                name,
                MESSAGE_FIELDS.iter().map(|(n, _)| *n),
                "messages",
            )),
        },
    }
}

fn split_path(name: &str) -> Box<[Box<str>]> {
    name.split('.').map(Into::into).collect()
}

/// "use one of …" with the closest known names first.
fn unknown_fix<'k>(name: &str, known: impl Iterator<Item = &'k str>, source: &str) -> String {
    let mut near: Vec<(usize, &str)> = known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 1.max(name.len() / 3))
        .collect();
    near.sort();
    near.dedup();
    let doc = "docs/rules.md lists every field";
    if near.is_empty() {
        format!("use a field of `source: {source}` ({doc})")
    } else {
        let names: Vec<String> = near.iter().take(3).map(|(_, k)| format!("`{k}`")).collect();
        format!("did you mean {}? ({doc})", names.join(" or "))
    }
}

/// Levenshtein distance (names are short).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The values of a field in one event or message: none, one, or several (a
/// list field, a JSON array).
#[derive(Debug)]
pub(crate) enum Values<'v> {
    None,
    One(Cow<'v, str>),
    Many(Vec<Cow<'v, str>>),
}

impl<'v> Values<'v> {
    fn opt(v: Option<&'v str>) -> Values<'v> {
        match v {
            Some(s) => Values::One(Cow::Borrowed(s)),
            None => Values::None,
        }
    }

    fn owned(v: Option<String>) -> Values<'v> {
        match v {
            Some(s) => Values::One(Cow::Owned(s)),
            None => Values::None,
        }
    }

    /// Whether the field has no value.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Values::None => true,
            Values::One(_) => false,
            Values::Many(v) => v.is_empty(),
        }
    }

    /// The values in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Cow<'v, str>]) = match self {
            Values::None => (None, &[]),
            Values::One(s) => (Some(s), &[]),
            Values::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().map(|c| &**c))
    }
}

/// Something whose fields rules read: an event or a message.
pub(crate) trait Record {
    /// The values of `field` (`Values::None` when absent).
    fn values(&self, field: &Field) -> Values<'_>;
}

/// An event name of at most 47 bytes, kept without allocating.
#[derive(Clone, Copy)]
struct Name {
    len: u8,
    buf: [u8; 47],
}

impl Name {
    fn new(s: &str) -> Option<Name> {
        let mut buf = [0u8; 47];
        let b = s.as_bytes();
        if b.len() > buf.len() {
            return None;
        }
        buf[..b.len()].copy_from_slice(b);
        Some(Name {
            len: b.len() as u8,
            buf,
        })
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

/// One event as rules see it: its fields, computed when first asked for.
pub(crate) struct EventView<'e, 'a> {
    ev: &'e Event<'a>,
    raw: &'e str,
    /// The top-level JSON keys the rules read (their values are made in one
    /// pass over the event, the first time one is asked for).
    wanted: &'e [Box<str>],
    name: OnceCell<Option<Name>>,
    cheap: OnceCell<Cheap<'a>>,
    json: OnceCell<Vec<Option<serde_json::Value>>>,
}

/// The aliases that come from the typed event.
#[derive(Default)]
struct Cheap<'a> {
    idx: IndexFields<'a>,
    /// amavis' recipient list.
    rcpts: Option<Addresses<'a>>,
}

impl<'e, 'a> EventView<'e, 'a> {
    /// A view of `ev` (read from `raw`) for rules that read the top-level
    /// JSON keys `wanted`.
    pub(crate) fn new(ev: &'e Event<'a>, raw: &'e str, wanted: &'e [Box<str>]) -> EventView<'e, 'a> {
        EventView {
            ev,
            raw,
            wanted,
            name: OnceCell::new(),
            cheap: OnceCell::new(),
            json: OnceCell::new(),
        }
    }

    /// The `event` of the event (`connect`, `login`, …), if it has one.
    pub(crate) fn event_name(&self) -> Option<&str> {
        self.name
            .get_or_init(|| event_name(&self.ev.kind))
            .as_ref()
            .map(Name::as_str)
    }

    fn cheap(&self) -> &Cheap<'a> {
        self.cheap.get_or_init(|| cheap_fields(self.ev))
    }

    /// The JSON value of the wanted top-level key `top` (the event is
    /// serialized at most once, and only the wanted keys' values are made).
    fn json(&self, top: &str) -> Option<&serde_json::Value> {
        let i = self.wanted.iter().position(|w| **w == *top)?;
        self.json
            .get_or_init(|| json_fields(self.ev, self.wanted))
            .get(i)?
            .as_ref()
    }

    /// Whether JSON values were made (for tests of the laziness).
    #[cfg(test)]
    pub(crate) fn serialized(&self) -> bool {
        self.json.get().is_some()
    }
}

impl Record for EventView<'_, '_> {
    fn values(&self, field: &Field) -> Values<'_> {
        match field {
            Field::Alias(a) => match a {
                Alias::Kind => Values::One(Cow::Borrowed(kind_name(&self.ev.kind))),
                Alias::Event => Values::opt(self.event_name()),
                Alias::Program => Values::One(Cow::Borrowed(self.ev.program)),
                Alias::Host => Values::opt(self.ev.host),
                Alias::ClientIp => Values::opt(self.cheap().idx.client_ip),
                Alias::User => Values::opt(self.cheap().idx.user),
                Alias::Sender => Values::opt(self.cheap().idx.sender),
                Alias::Recipient => {
                    let c = self.cheap();
                    match c.rcpts {
                        Some(list) => Values::Many(list.iter().map(Cow::Borrowed).collect()),
                        None => Values::opt(c.idx.recipient),
                    }
                }
                Alias::QueueId => Values::opt(self.cheap().idx.queue_id),
                Alias::MessageId => Values::opt(self.cheap().idx.message_id),
                Alias::Line => Values::One(Cow::Borrowed(self.raw)),
            },
            Field::Json(path) => match path.split_first() {
                Some((top, rest)) => match self.json(top) {
                    Some(v) => json_values(v, rest),
                    None => Values::None,
                },
                None => Values::None,
            },
            Field::Msg(_) => Values::None,
        }
    }
}

/// The family name of an event kind (its JSON `kind`).
pub(crate) fn kind_name(kind: &EventKind<'_>) -> &'static str {
    match kind {
        EventKind::Postfix(_) => "postfix",
        EventKind::Dovecot(_) => "dovecot",
        EventKind::Rspamd(_) => "rspamd",
        EventKind::Amavis(_) => "amavis",
        EventKind::Sogo(_) => "sogo",
        EventKind::Nginx(_) => "nginx",
        EventKind::Netfilter(_) => "netfilter",
        EventKind::Mariadb(_) => "mariadb",
        EventKind::Unparsed(_) => "unparsed",
    }
}

/// [`Event::index_fields`], and the same facts for the families it does not
/// cover (amavis, nginx, MariaDB, netfilter).
fn cheap_fields<'a>(ev: &Event<'a>) -> Cheap<'a> {
    let mut c = Cheap {
        idx: ev.index_fields(),
        rcpts: None,
    };
    match &ev.kind {
        EventKind::Amavis(a) => {
            if let AmavisEvent::Verdict {
                client_ip,
                sender,
                recipients,
                queue_id,
                message_id,
                ..
            } = &**a
            {
                c.idx.client_ip = *client_ip;
                c.idx.sender = Some(sender);
                c.idx.queue_id = *queue_id;
                c.idx.message_id = *message_id;
                c.rcpts = Some(*recipients);
            }
        }
        EventKind::Nginx(n) => match n {
            NginxEvent::Access { client, user, .. } | NginxEvent::FpmAccess { client, user, .. } => {
                c.idx.client_ip = Some(client);
                c.idx.user = *user;
            }
            NginxEvent::UiLoginFailed { client, user, .. } => {
                c.idx.client_ip = Some(client);
                c.idx.user = *user;
            }
            NginxEvent::Error { client, .. } => c.idx.client_ip = *client,
            _ => {}
        },
        EventKind::Mariadb(MariadbEvent::AccessDenied { user, client, .. }) => {
            c.idx.user = Some(user);
            c.idx.client_ip = Some(client);
        }
        EventKind::Netfilter(n) => match n {
            NetfilterEvent::RuleMatch { addr, .. } | NetfilterEvent::Allowlisted { addr, .. } => {
                c.idx.client_ip = Some(addr);
            }
            NetfilterEvent::Ban { net, .. }
            | NetfilterEvent::Unban { net, .. }
            | NetfilterEvent::AttemptsLeft { net, .. } => {
                let host = net
                    .strip_suffix("/32")
                    .or_else(|| net.strip_suffix("/128"))
                    .unwrap_or(net);
                if host.parse::<std::net::IpAddr>().is_ok() {
                    c.idx.client_ip = Some(host);
                }
            }
            _ => {}
        },
        _ => {}
    }
    c
}

/// The values at `path` in `v`: arrays give each element, `null` none,
/// numbers and booleans their JSON text.
fn json_values<'v>(v: &'v serde_json::Value, path: &[Box<str>]) -> Values<'v> {
    let mut out: Vec<Cow<'v, str>> = Vec::new();
    collect(v, path, &mut out, 0);
    match out.len() {
        0 => Values::None,
        1 => Values::One(out.pop().unwrap_or_default()),
        _ => Values::Many(out),
    }
}

fn collect<'v>(v: &'v serde_json::Value, path: &[Box<str>], out: &mut Vec<Cow<'v, str>>, depth: usize) {
    use serde_json::Value as J;
    if depth > 8 || out.len() >= 1024 {
        return;
    }
    match (v, path.split_first()) {
        (J::Array(items), _) => {
            for i in items {
                collect(i, path, out, depth + 1);
            }
        }
        (J::Object(map), Some((first, rest))) => {
            if let Some(x) = map.get(&**first) {
                collect(x, rest, out, depth + 1);
            }
        }
        (_, Some(_)) | (J::Object(_) | J::Null, None) => {}
        (J::String(s), None) => out.push(Cow::Borrowed(s)),
        (J::Number(n), None) => out.push(Cow::Owned(n.to_string())),
        (J::Bool(b), None) => out.push(Cow::Borrowed(if *b { "true" } else { "false" })),
    }
}

/// One stitched message as rules see it.
pub(crate) struct MsgView<'r> {
    rec: &'r MessageRecord,
    outcomes: OnceCell<Vec<RecipientOutcome<'r>>>,
}

impl<'r> MsgView<'r> {
    pub(crate) fn new(rec: &'r MessageRecord) -> MsgView<'r> {
        MsgView {
            rec,
            outcomes: OnceCell::new(),
        }
    }

    fn outcomes(&self) -> &[RecipientOutcome<'r>] {
        self.outcomes.get_or_init(|| self.rec.outcomes())
    }

    fn count(&self, status: crate::parse::postfix::DeliveryStatus) -> Values<'_> {
        let n = self.outcomes().iter().filter(|o| o.status == status).count();
        Values::One(Cow::Owned(n.to_string()))
    }
}

fn list(v: Vec<Cow<'_, str>>) -> Values<'_> {
    if v.is_empty() {
        Values::None
    } else {
        Values::Many(v)
    }
}

fn domain(addr: &str) -> Option<Cow<'_, str>> {
    super::super::state::domain_of(addr).map(super::super::state::lower)
}

impl Record for MsgView<'_> {
    fn values(&self, field: &Field) -> Values<'_> {
        use crate::parse::postfix::DeliveryStatus as S;
        let r = self.rec;
        let Field::Msg(f) = field else {
            return Values::None;
        };
        match f {
            MsgField::QueueId => Values::One(Cow::Borrowed(&r.queue_id)),
            MsgField::Host => Values::opt(r.host.as_deref()),
            MsgField::Origin => Values::One(Cow::Borrowed(r.origin.as_str())),
            MsgField::Service => Values::opt(r.service.as_deref()),
            MsgField::ClientIp => Values::opt(r.client.as_ref().map(|c| c.ip.as_str())),
            MsgField::ClientName => Values::opt(r.client.as_ref().map(|c| c.name.as_str())),
            MsgField::SaslUsername => Values::opt(r.sasl_username.as_deref()),
            MsgField::SaslMethod => Values::opt(r.sasl_method.as_deref()),
            MsgField::Authenticated => {
                Values::One(Cow::Borrowed(if r.authenticated() { "true" } else { "false" }))
            }
            MsgField::Uid => Values::owned(r.uid.map(|u| u.to_string())),
            MsgField::MessageId => Values::opt(r.message_id.as_deref()),
            MsgField::HeaderFrom => Values::opt(r.header_from.as_deref()),
            MsgField::HeaderFromDomain => match r.header_from.as_deref().and_then(domain) {
                Some(d) => Values::One(d),
                None => Values::None,
            },
            MsgField::Sender => Values::opt(r.from.as_deref()),
            MsgField::SenderDomain => match r.from.as_deref().and_then(domain) {
                Some(d) => Values::One(d),
                None => Values::None,
            },
            MsgField::Size => Values::owned(r.size.map(|s| s.to_string())),
            MsgField::Nrcpt => Values::owned(r.nrcpt.map(|s| s.to_string())),
            MsgField::Recipient => list(self.outcomes().iter().map(|o| Cow::Borrowed(o.to)).collect()),
            MsgField::RecipientDomain => {
                let mut v: Vec<Cow<'_, str>> = Vec::new();
                for d in self.outcomes().iter().filter_map(|o| domain(o.to)) {
                    if !v.contains(&d) {
                        v.push(d);
                    }
                }
                list(v)
            }
            MsgField::RecipientCount => Values::One(Cow::Owned(self.outcomes().len().to_string())),
            MsgField::Status => list(
                self.outcomes()
                    .iter()
                    .map(|o| Cow::Borrowed(o.status.as_str()))
                    .collect(),
            ),
            MsgField::Relay => list(
                self.outcomes()
                    .iter()
                    .map(|o| Cow::Borrowed(o.last.relay.as_str()))
                    .collect(),
            ),
            MsgField::Dsn => list(
                self.outcomes()
                    .iter()
                    .filter_map(|o| o.last.dsn.as_deref().map(Cow::Borrowed))
                    .collect(),
            ),
            MsgField::Sent => self.count(S::Sent),
            MsgField::Bounced => self.count(S::Bounced),
            MsgField::Deferred => self.count(S::Deferred),
            MsgField::Action => list(
                r.actions
                    .iter()
                    .map(|a| Cow::Borrowed(a.action.as_str()))
                    .collect(),
            ),
            MsgField::ActionText => list(r.actions.iter().map(|a| Cow::Borrowed(a.text.as_str())).collect()),
            MsgField::Scanner => list(
                r.verdicts
                    .iter()
                    .map(|v| Cow::Borrowed(v.scanner.as_str()))
                    .collect(),
            ),
            MsgField::ScanAction => list(
                r.verdicts
                    .iter()
                    .map(|v| Cow::Borrowed(v.action.as_str()))
                    .collect(),
            ),
            MsgField::Score => Values::owned(
                r.verdicts
                    .iter()
                    .filter_map(|v| v.score)
                    .reduce(f64::max)
                    .map(|s| s.to_string()),
            ),
            MsgField::Symbol => list(
                r.verdicts
                    .iter()
                    .flat_map(|v| v.symbols.iter().map(|s| Cow::Borrowed(s.as_str())))
                    .collect(),
            ),
            MsgField::Expired => Values::One(Cow::Borrowed(if r.expired { "true" } else { "false" })),
            MsgField::End => Values::One(Cow::Borrowed(r.end.as_str())),
            MsgField::Lines => Values::One(Cow::Owned(r.line_count.to_string())),
        }
    }
}

impl Field {
    /// The top-level JSON key the field reads, if it is a JSON field.
    pub(crate) fn json_key(&self) -> Option<&str> {
        match self {
            Field::Json(path) => path.first().map(|k| &**k),
            _ => None,
        }
    }
}

// --- Finding `event` without serializing the event. ---

/// The `event` value of an event kind, found by a serializer that reads the
/// keys as the derive emits them and stops at `event` (values of other keys
/// are never serialized).
fn event_name(kind: &EventKind<'_>) -> Option<Name> {
    match kind.serialize(Probe) {
        Err(Stop::Found(n)) => Some(n),
        _ => None,
    }
}

/// Why the probe stopped.
#[derive(Debug)]
enum Stop {
    Found(Name),
    Other,
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe stopped")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Stop {
        Stop::Other
    }
}

/// The top-level probe: only maps and structs have keys.
struct Probe;

/// The probe's map: looks at keys, skips values.
struct ProbeMap {
    next_is_event: bool,
}

impl ProbeMap {
    fn entry<V: Serialize + ?Sized>(&mut self, is_event: bool, value: &V) -> Result<(), Stop> {
        if !is_event {
            return Ok(());
        }
        match value.serialize(StrProbe) {
            Ok(n) => Err(Stop::Found(n)),
            Err(e) => Err(e),
        }
    }
}

impl ser::SerializeMap for ProbeMap {
    type Ok = ();
    type Error = Stop;

    fn serialize_key<K: Serialize + ?Sized>(&mut self, key: &K) -> Result<(), Stop> {
        self.next_is_event = key.serialize(KeyProbe)?;
        Ok(())
    }

    fn serialize_value<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<(), Stop> {
        let is_event = std::mem::take(&mut self.next_is_event);
        self.entry(is_event, value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Stop> {
        let is_event = key.serialize(KeyProbe)?;
        self.entry(is_event, value)
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeStruct for ProbeMap {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<V: Serialize + ?Sized>(&mut self, key: &'static str, value: &V) -> Result<(), Stop> {
        self.entry(key == "event", value)
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

/// Serializer methods that refuse: the probe expects none of these shapes.
macro_rules! refuse {
    ($ok:ty; $($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ok, Stop> { Err(Stop::Other) })*
    };
}

/// The compound types a refusing serializer never returns.
macro_rules! no_compounds {
    ($ok:ty) => {
        type SerializeSeq = Impossible<$ok, Stop>;
        type SerializeTuple = Impossible<$ok, Stop>;
        type SerializeTupleStruct = Impossible<$ok, Stop>;
        type SerializeTupleVariant = Impossible<$ok, Stop>;
        type SerializeStructVariant = Impossible<$ok, Stop>;

        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<$ok, Stop> {
            Err(Stop::Other)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, Stop> {
            Err(Stop::Other)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, Stop> {
            Err(Stop::Other)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
            Err(Stop::Other)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
            Err(Stop::Other)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Stop> {
            Err(Stop::Other)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Stop> {
            Err(Stop::Other)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Stop> {
            Err(Stop::Other)
        }
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Stop;
    type SerializeMap = ProbeMap;
    type SerializeStruct = ProbeMap;
    no_compounds!(());
    refuse!((); serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64), serialize_char(char), serialize_str(&str),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str));

    fn serialize_map(self, _: Option<usize>) -> Result<ProbeMap, Stop> {
        Ok(ProbeMap { next_is_event: false })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ProbeMap, Stop> {
        Ok(ProbeMap { next_is_event: false })
    }
}

/// Reads a key: whether it is `event`.
struct KeyProbe;

impl ser::Serializer for KeyProbe {
    type Ok = bool;
    type Error = Stop;
    type SerializeMap = Impossible<bool, Stop>;
    type SerializeStruct = Impossible<bool, Stop>;
    no_compounds!(bool);
    refuse!(bool; serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str));

    fn serialize_str(self, v: &str) -> Result<bool, Stop> {
        Ok(v == "event")
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop::Other)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop::Other)
    }
}

/// Reads the `event` value: a string.
struct StrProbe;

impl ser::Serializer for StrProbe {
    type Ok = Name;
    type Error = Stop;
    type SerializeMap = Impossible<Name, Stop>;
    type SerializeStruct = Impossible<Name, Stop>;
    no_compounds!(Name);
    refuse!(Name; serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str));

    fn serialize_str(self, v: &str) -> Result<Name, Stop> {
        Name::new(v).ok_or(Stop::Other)
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<Name, Stop> {
        Name::new(variant).ok_or(Stop::Other)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop::Other)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop::Other)
    }
}

// --- Serializing only the wanted keys of an event. ---

/// The JSON values of the top-level keys `wanted` of `ev` (in that order;
/// `None` for absent keys): one pass of the event's serializer that skips
/// every other key's value. A key written twice keeps its last value, as in
/// the event's JSON form.
pub(crate) fn json_fields(ev: &Event<'_>, wanted: &[Box<str>]) -> Vec<Option<serde_json::Value>> {
    match ev.serialize(Pick { wanted }) {
        Ok(v) => v,
        Err(_) => vec![None; wanted.len()],
    }
}

/// A serializer that keeps the values of some top-level keys.
struct Pick<'w> {
    wanted: &'w [Box<str>],
}

/// Its map: which key came last, and the values kept so far.
struct PickMap<'w> {
    wanted: &'w [Box<str>],
    next: Option<usize>,
    out: Vec<Option<serde_json::Value>>,
}

impl PickMap<'_> {
    fn keep<V: Serialize + ?Sized>(&mut self, at: Option<usize>, value: &V) -> Result<(), Stop> {
        if let Some(i) = at {
            // A value that cannot be JSON (never for events) counts as absent.
            self.out[i] = serde_json::to_value(value).ok();
        }
        Ok(())
    }
}

impl ser::SerializeMap for PickMap<'_> {
    type Ok = Vec<Option<serde_json::Value>>;
    type Error = Stop;

    fn serialize_key<K: Serialize + ?Sized>(&mut self, key: &K) -> Result<(), Stop> {
        self.next = key.serialize(WhichKey { wanted: self.wanted })?;
        Ok(())
    }

    fn serialize_value<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<(), Stop> {
        let at = self.next.take();
        self.keep(at, value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Stop> {
        let at = key.serialize(WhichKey { wanted: self.wanted })?;
        self.keep(at, value)
    }

    fn end(self) -> Result<Self::Ok, Stop> {
        Ok(self.out)
    }
}

impl ser::SerializeStruct for PickMap<'_> {
    type Ok = Vec<Option<serde_json::Value>>;
    type Error = Stop;

    fn serialize_field<V: Serialize + ?Sized>(&mut self, key: &'static str, value: &V) -> Result<(), Stop> {
        let at = self.wanted.iter().position(|w| **w == *key);
        self.keep(at, value)
    }

    fn end(self) -> Result<Self::Ok, Stop> {
        Ok(self.out)
    }
}

impl<'w> ser::Serializer for Pick<'w> {
    type Ok = Vec<Option<serde_json::Value>>;
    type Error = Stop;
    type SerializeMap = PickMap<'w>;
    type SerializeStruct = PickMap<'w>;
    no_compounds!(Vec<Option<serde_json::Value>>);
    refuse!(Vec<Option<serde_json::Value>>; serialize_bool(bool), serialize_i8(i8), serialize_i16(i16),
        serialize_i32(i32), serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char), serialize_str(&str),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str));

    fn serialize_map(self, _: Option<usize>) -> Result<PickMap<'w>, Stop> {
        Ok(PickMap {
            wanted: self.wanted,
            next: None,
            out: vec![None; self.wanted.len()],
        })
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<PickMap<'w>, Stop> {
        let _ = (name, len);
        self.serialize_map(None)
    }
}

/// Reads a key: its place among the wanted ones.
struct WhichKey<'w> {
    wanted: &'w [Box<str>],
}

impl ser::Serializer for WhichKey<'_> {
    type Ok = Option<usize>;
    type Error = Stop;
    type SerializeMap = Impossible<Option<usize>, Stop>;
    type SerializeStruct = Impossible<Option<usize>, Stop>;
    no_compounds!(Option<usize>);
    refuse!(Option<usize>; serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str));

    fn serialize_str(self, v: &str) -> Result<Option<usize>, Stop> {
        Ok(self.wanted.iter().position(|w| **w == *v))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop::Other)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop::Other)
    }
}
