//! The typed event every log line becomes, and the `unparsed` record for the
//! lines that cannot become one.
//!
//! Events borrow from the line they were parsed from (`'a`), so the common case
//! (a postscreen or connect line) costs no allocation. Whoever needs to keep an
//! event beyond the line (the stitcher, the store) copies the fields it keeps.
//!
//! The JSON form of an event (`mailwarden logs parse`) is part of the product's
//! interface: fields are snake_case, the family is in `kind` and the message type
//! in `event`.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::parse::amavis::AmavisEvent;
use crate::parse::dovecot::DovecotEvent;
use crate::parse::mariadb::MariadbEvent;
use crate::parse::netfilter::NetfilterEvent;
use crate::parse::nginx::NginxEvent;
use crate::parse::postfix::PostfixEvent;
use crate::parse::rspamd::RspamdEvent;
use crate::parse::sogo::SogoEvent;
use crate::time::Timestamp;

/// Where a line came from: the input (an index into the run's list of inputs)
/// and the 1-based line number inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Position {
    /// Index of the input in the run (0 for the first file named).
    pub source: u32,
    /// 1-based line number in that input (after decompression).
    pub line: u64,
}

/// Syslog severity, when the framing carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 0
    Emerg,
    /// 1
    Alert,
    /// 2
    Crit,
    /// 3
    Err,
    /// 4
    Warning,
    /// 5
    Notice,
    /// 6
    Info,
    /// 7
    Debug,
}

impl Severity {
    /// From the numeric syslog severity (the low three bits of PRI).
    pub fn from_code(code: u8) -> Option<Severity> {
        Some(match code {
            0 => Severity::Emerg,
            1 => Severity::Alert,
            2 => Severity::Crit,
            3 => Severity::Err,
            4 => Severity::Warning,
            5 => Severity::Notice,
            6 => Severity::Info,
            7 => Severity::Debug,
            _ => return None,
        })
    }

    /// From a name as journald, Mailcow and others spell it.
    pub fn from_name(name: &str) -> Option<Severity> {
        Some(match name.to_ascii_lowercase().as_str() {
            "emerg" | "emergency" | "panic" => Severity::Emerg,
            "alert" => Severity::Alert,
            "crit" | "critical" | "fatal" => Severity::Crit,
            "err" | "error" => Severity::Err,
            "warning" | "warn" => Severity::Warning,
            "notice" => Severity::Notice,
            "info" | "informational" => Severity::Info,
            "debug" => Severity::Debug,
            _ => return None,
        })
    }
}

/// A Postfix queue id, short (hex, `4F3A21C0B2`) or long (`4PbC4x469Jz3tBr`,
/// with `enable_long_queue_ids`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct QueueId<'a>(&'a str);

impl<'a> QueueId<'a> {
    /// Accepts `s` if it has the shape of a short or long queue id.
    ///
    /// Short ids are 6 to 24 upper-case hex digits (microseconds plus the
    /// queue file's inode, which is up to 16 hex digits on 64-bit systems). Long ids are 6 base-52
    /// seconds digits, 4 microsecond digits, the separator `z` and the inode
    /// number: at least 12 alphanumerics with `z` at index 10.
    pub fn parse(s: &'a str) -> Option<QueueId<'a>> {
        let b = s.as_bytes();
        let short =
            (6..=24).contains(&b.len()) && b.iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c));
        let long =
            (12..=24).contains(&b.len()) && b[10] == b'z' && b.iter().all(|c| c.is_ascii_alphanumeric());
        (short || long).then_some(QueueId(s))
    }

    /// The id as written.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for QueueId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A remote peer as Postfix writes it: `name[ip]` or `name[ip]:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Client<'a> {
    /// Reverse name, or `unknown` when it did not resolve (or did not confirm).
    pub name: &'a str,
    /// The address as written (IPv4, IPv6, or `unknown` for some failures).
    pub ip: &'a str,
    /// Remote port, when the line has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One parsed log line.
#[derive(Clone, Debug, Serialize)]
pub struct Event<'a> {
    /// When the line was logged; `None` only for framings without time (raw).
    pub ts: Option<Timestamp>,
    /// Host that logged the line, when the framing carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    /// Program (syslog tag) as written, e.g. `postfix/submission/smtpd`.
    pub program: &'a str,
    /// Process id, when the framing carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Severity, when the framing carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What the line says.
    #[serde(flatten)]
    pub kind: EventKind<'a>,
}

/// The family of the event and its typed content.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind<'a> {
    /// Postfix daemons (smtpd, postscreen, qmgr, smtp, …).
    Postfix(PostfixEvent<'a>),
    /// Dovecot (logins, auth failures, LMTP delivery, quota).
    Dovecot(DovecotEvent<'a>),
    /// Rspamd scan results (boxed: the scan line is large and rare, and every
    /// event would otherwise carry its size).
    Rspamd(Box<RspamdEvent<'a>>),
    /// amavisd-new content-filter results (boxed, as Rspamd).
    Amavis(Box<AmavisEvent<'a>>),
    /// SOGo groupware logins.
    Sogo(SogoEvent<'a>),
    /// nginx access and error lines (Mailcow's web front).
    Nginx(NginxEvent<'a>),
    /// Mailcow's netfilter container (bans and unbans).
    Netfilter(NetfilterEvent<'a>),
    /// MariaDB server error-log lines.
    Mariadb(MariadbEvent<'a>),
    /// The line could not be turned into an event; it is kept and counted.
    Unparsed(Unparsed),
}

impl EventKind<'_> {
    /// The family of a typed event; `None` for an `unparsed` record.
    pub fn family(&self) -> Option<crate::parse::Family> {
        use crate::parse::Family;
        Some(match self {
            EventKind::Postfix(_) => Family::Postfix,
            EventKind::Dovecot(_) => Family::Dovecot,
            EventKind::Rspamd(_) => Family::Rspamd,
            EventKind::Amavis(_) => Family::Amavis,
            EventKind::Sogo(_) => Family::Sogo,
            EventKind::Nginx(_) => Family::Nginx,
            EventKind::Netfilter(_) => Family::Netfilter,
            EventKind::Mariadb(_) => Family::Mariadb,
            EventKind::Unparsed(_) => return None,
        })
    }

    /// Whether this is an `unparsed` record.
    pub fn is_unparsed(&self) -> bool {
        matches!(self, EventKind::Unparsed(_))
    }
}

/// Why a line is kept as `unparsed`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Unparsed {
    /// The reason, a stable machine-readable value.
    pub reason: UnparsedReason,
}

/// The stable reasons a line becomes an `unparsed` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnparsedReason {
    /// The line is empty or only whitespace.
    Empty,
    /// Longer than the configured line limit; kept truncated.
    TooLong,
    /// Contains NUL or other binary control bytes.
    Binary,
    /// No framing (syslog, JSON, native) matches the line.
    Framing,
    /// The framing matched but its timestamp is invalid.
    BadTimestamp,
    /// The framing matched but a JSON envelope lacks the message field.
    NoMessage,
    /// The program is not one mailwarden parses.
    UnknownProgram,
    /// A Postfix line of a shape not (yet) known to the parser.
    UnrecognizedPostfix,
    /// A Dovecot line of a shape not known to the parser.
    UnrecognizedDovecot,
    /// An Rspamd line of a shape not known to the parser.
    UnrecognizedRspamd,
    /// An amavis line of a shape not known to the parser.
    UnrecognizedAmavis,
    /// A SOGo line of a shape not known to the parser.
    UnrecognizedSogo,
    /// An nginx line of a shape not known to the parser.
    UnrecognizedNginx,
    /// A netfilter line of a shape not known to the parser.
    UnrecognizedNetfilter,
    /// A MariaDB line of a shape not known to the parser.
    UnrecognizedMariadb,
}

impl UnparsedReason {
    /// The stable snake_case name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            UnparsedReason::Empty => "empty",
            UnparsedReason::TooLong => "too_long",
            UnparsedReason::Binary => "binary",
            UnparsedReason::Framing => "framing",
            UnparsedReason::BadTimestamp => "bad_timestamp",
            UnparsedReason::NoMessage => "no_message",
            UnparsedReason::UnknownProgram => "unknown_program",
            UnparsedReason::UnrecognizedPostfix => "unrecognized_postfix",
            UnparsedReason::UnrecognizedDovecot => "unrecognized_dovecot",
            UnparsedReason::UnrecognizedRspamd => "unrecognized_rspamd",
            UnparsedReason::UnrecognizedAmavis => "unrecognized_amavis",
            UnparsedReason::UnrecognizedSogo => "unrecognized_sogo",
            UnparsedReason::UnrecognizedNginx => "unrecognized_nginx",
            UnparsedReason::UnrecognizedNetfilter => "unrecognized_netfilter",
            UnparsedReason::UnrecognizedMariadb => "unrecognized_mariadb",
        }
    }

    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            UnparsedReason::Empty => "empty line",
            UnparsedReason::TooLong => "line longer than the limit (kept truncated)",
            UnparsedReason::Binary => "binary data (NUL or control bytes)",
            UnparsedReason::Framing => "no known log framing (syslog, JSON, native) matches",
            UnparsedReason::BadTimestamp => "timestamp out of range",
            UnparsedReason::NoMessage => "JSON envelope without a message field",
            UnparsedReason::UnknownProgram => "program is not a mail component mailwarden parses",
            UnparsedReason::UnrecognizedPostfix => "Postfix message of an unknown shape",
            UnparsedReason::UnrecognizedDovecot => "Dovecot message of an unknown shape",
            UnparsedReason::UnrecognizedRspamd => "Rspamd message of an unknown shape",
            UnparsedReason::UnrecognizedAmavis => "amavis message of an unknown shape",
            UnparsedReason::UnrecognizedSogo => "SOGo message of an unknown shape",
            UnparsedReason::UnrecognizedNginx => "nginx message of an unknown shape",
            UnparsedReason::UnrecognizedNetfilter => "netfilter message of an unknown shape",
            UnparsedReason::UnrecognizedMariadb => "MariaDB message of an unknown shape",
        }
    }

    /// Every reason, in report order.
    pub const ALL: [UnparsedReason; 15] = [
        UnparsedReason::Empty,
        UnparsedReason::TooLong,
        UnparsedReason::Binary,
        UnparsedReason::Framing,
        UnparsedReason::BadTimestamp,
        UnparsedReason::NoMessage,
        UnparsedReason::UnknownProgram,
        UnparsedReason::UnrecognizedPostfix,
        UnparsedReason::UnrecognizedDovecot,
        UnparsedReason::UnrecognizedRspamd,
        UnparsedReason::UnrecognizedAmavis,
        UnparsedReason::UnrecognizedSogo,
        UnparsedReason::UnrecognizedNginx,
        UnparsedReason::UnrecognizedNetfilter,
        UnparsedReason::UnrecognizedMariadb,
    ];
}

impl Serialize for UnparsedReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for UnparsedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_id_shapes() {
        for ok in [
            "A785B308622AB",
            "4F3A21",
            "4PbC4x469Jz3tBr",
            "4PbC4x469Jz3tBrX",
            "ED06590130AA1C9D6D862",
        ] {
            assert!(QueueId::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "NOQUEUE",
            "warning",
            "statistics",
            "4f3a21",
            "ABC",
            "4PbC4x469Jx3tBr",
            "connect",
        ] {
            assert!(QueueId::parse(bad).is_none(), "{bad}");
        }
    }
}

/// The fields of an event that searches and the store index: who, from where,
/// about which message. Empty for events that carry none of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexFields<'a> {
    /// Postfix queue id.
    pub queue_id: Option<&'a str>,
    /// Client (or remote peer) address.
    pub client_ip: Option<&'a str>,
    /// Envelope sender.
    pub sender: Option<&'a str>,
    /// Envelope recipient.
    pub recipient: Option<&'a str>,
    /// Login name (SASL, IMAP/POP3, SOGo), successful or tried.
    pub user: Option<&'a str>,
    /// Message-ID.
    pub message_id: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// The indexable fields of this event.
    pub fn index_fields(&self) -> IndexFields<'a> {
        use crate::parse::dovecot::DovecotEvent;
        use crate::parse::postfix::PostfixMsg;
        use crate::parse::sogo::SogoEvent;
        let mut f = IndexFields::default();
        match &self.kind {
            EventKind::Postfix(p) => {
                f.queue_id = p.queue_id.map(|q| q.as_str());
                match &p.msg {
                    PostfixMsg::Connect { client }
                    | PostfixMsg::Disconnect { client, .. }
                    | PostfixMsg::SessionAbort { client, .. }
                    | PostfixMsg::NonSmtpCommand { client, .. }
                    | PostfixMsg::ImproperPipelining { client, .. }
                    | PostfixMsg::RateLimit { client, .. } => f.client_ip = Some(client.ip),
                    PostfixMsg::SaslAuthFailed {
                        client,
                        sasl_username,
                        ..
                    } => {
                        f.client_ip = Some(client.ip);
                        f.user = *sasl_username;
                    }
                    PostfixMsg::ClientAccepted {
                        client,
                        sasl_username,
                        ..
                    } => {
                        f.client_ip = Some(client.ip);
                        f.user = *sasl_username;
                    }
                    PostfixMsg::Action { client, from, to, .. } => {
                        f.client_ip = client.map(|c| c.ip);
                        f.sender = *from;
                        f.recipient = *to;
                    }
                    PostfixMsg::MessageId { message_id, .. } => f.message_id = Some(message_id),
                    PostfixMsg::QueueActive { from, .. } | PostfixMsg::Expired { from, .. } => {
                        f.sender = Some(from)
                    }
                    PostfixMsg::Pickup { from, .. } => f.sender = Some(from),
                    PostfixMsg::Delivery { to, .. } => f.recipient = Some(to),
                    PostfixMsg::ScreenConnect { ip, .. }
                    | PostfixMsg::ScreenPass { ip, .. }
                    | PostfixMsg::ScreenPregreet { ip, .. }
                    | PostfixMsg::ScreenDnsblRank { ip, .. }
                    | PostfixMsg::ScreenHangup { ip, .. }
                    | PostfixMsg::ScreenDisconnect { ip, .. }
                    | PostfixMsg::ScreenViolation { ip, .. }
                    | PostfixMsg::ScreenListed { ip, .. }
                    | PostfixMsg::DnsblListed { ip, .. } => f.client_ip = Some(ip),
                    _ => {}
                }
            }
            EventKind::Dovecot(d) => match d {
                DovecotEvent::Login { user, rip, .. } | DovecotEvent::LoginAborted { user, rip, .. } => {
                    f.user = *user;
                    f.client_ip = *rip;
                }
                DovecotEvent::AuthFailure { user, rip, .. } => {
                    f.user = *user;
                    f.client_ip = *rip;
                }
                DovecotEvent::Delivered { user, msgid, .. } => {
                    f.user = *user;
                    f.message_id = msgid.map(|m| m.trim_start_matches('<').trim_end_matches('>'));
                }
                _ => {}
            },
            EventKind::Sogo(SogoEvent::LoginSucceeded { client, user, .. })
            | EventKind::Sogo(SogoEvent::LoginFailed { client, user, .. }) => {
                f.user = Some(user);
                f.client_ip = *client;
            }
            EventKind::Rspamd(r) => {
                if let crate::parse::rspamd::RspamdEvent::Task {
                    queue_id,
                    ip,
                    user,
                    from,
                    message_id,
                    ..
                } = &**r
                {
                    f.queue_id = *queue_id;
                    f.client_ip = *ip;
                    f.user = *user;
                    f.sender = *from;
                    f.message_id = *message_id;
                }
            }
            _ => {}
        }
        f
    }
}
