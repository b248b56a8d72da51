//! Postfix log messages, every daemon, into typed events.
//!
//! The syslog tag names the daemon and the service it runs as:
//! `postfix/smtpd` (port 25), `postfix/submission/smtpd`, `postfix/10025/smtpd`
//! (a content filter's re-injection port), Mailcow's
//! `postfix/submission-haproxy/smtpd` and `haproxy/postscreen`. The last path
//! component is the daemon; everything before it is the service (the
//! `syslog_name`). Queue ids come in the short (hex) and the long form.
//!
//! The parser knows the shapes Postfix 2.x–3.9 writes for the lines that matter
//! to traffic accounting and security (sessions, SASL, rejects, postscreen,
//! queue and delivery records), and types the remaining well-known lines
//! (statistics, TLS, master) generically. A message of an unknown shape gives
//! `None`, which the caller records as `unrecognized_postfix` — never a guess.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::text::{
    angle_field, angle_value, parse_bracket_addr, parse_client, parse_client_prefix, plain_field,
    rsplit_once, split_once, word_colon,
};
use crate::event::{Client, QueueId};

/// A parsed Postfix line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PostfixEvent<'a> {
    /// The syslog name in front of the daemon, e.g. `postfix` or `postfix/submission`.
    pub service: &'a str,
    /// The daemon, e.g. `smtpd`, `qmgr`, `postscreen`.
    pub daemon: &'a str,
    /// The queue id the line is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<QueueId<'a>>,
    /// What the line says.
    #[serde(flatten)]
    pub msg: PostfixMsg<'a>,
}

/// The outcome Postfix records for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the next hop or delivered locally.
    Sent,
    /// Temporary failure; will be retried.
    Deferred,
    /// Permanent failure; a bounce is sent.
    Bounced,
    /// Gave up after `maximal_queue_lifetime`.
    Expired,
    /// Address verification: would fail.
    Undeliverable,
    /// Address verification: would succeed.
    Deliverable,
    /// `soft_bounce = yes` turned a bounce into a deferral.
    Softbounce,
}

impl DeliveryStatus {
    fn parse(s: &str) -> Option<DeliveryStatus> {
        Some(match s {
            "sent" => DeliveryStatus::Sent,
            "deferred" => DeliveryStatus::Deferred,
            "bounced" => DeliveryStatus::Bounced,
            "expired" => DeliveryStatus::Expired,
            "undeliverable" | "undeliverable-but-not-cached" => DeliveryStatus::Undeliverable,
            "deliverable" | "deliverable-but-not-cached" => DeliveryStatus::Deliverable,
            "SOFTBOUNCE" | "softbounce" => DeliveryStatus::Softbounce,
            _ => return None,
        })
    }

    /// The lower-case name Postfix writes.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::Undeliverable => "undeliverable",
            DeliveryStatus::Deliverable => "deliverable",
            DeliveryStatus::Softbounce => "softbounce",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an access restriction, header/body check or milter did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `reject` (and `milter-reject`).
    Reject,
    /// `reject_warning`: would have rejected (warn_if_reject).
    RejectWarning,
    /// `hold`: placed on the hold queue.
    Hold,
    /// `discard`: accepted and thrown away.
    Discard,
    /// `filter`: routed to a content filter.
    Filter,
    /// `redirect`: sent to another address.
    Redirect,
    /// `warning`: a header/body check in WARN mode.
    Warning,
    /// `info`: a header/body check in INFO mode.
    Info,
    /// `replace`: a header was replaced.
    Replace,
    /// `prepend`: a header was prepended.
    Prepend,
    /// `bcc`: a recipient was added.
    Bcc,
    /// `proxy-accept`: the before-queue filter (smtpd_proxy_filter) accepted.
    ProxyAccept,
    /// `proxy-reject`: the before-queue filter rejected.
    ProxyReject,
}

impl Action {
    fn parse(s: &str) -> Option<(Action, bool)> {
        let (milter, s) = match s.strip_prefix("milter-") {
            // Milters may also act on one header: `milter-header-redirect`.
            Some(rest) => (true, rest.strip_prefix("header-").unwrap_or(rest)),
            None => (false, s),
        };
        let a = match s {
            "reject" => Action::Reject,
            "reject_warning" => Action::RejectWarning,
            "hold" => Action::Hold,
            "discard" => Action::Discard,
            "filter" => Action::Filter,
            "redirect" => Action::Redirect,
            "warning" => Action::Warning,
            "info" => Action::Info,
            "replace" => Action::Replace,
            "prepend" => Action::Prepend,
            "bcc" => Action::Bcc,
            "proxy-accept" => Action::ProxyAccept,
            "proxy-reject" => Action::ProxyReject,
            _ => return None,
        };
        Some((a, milter))
    }

    /// The name as Postfix writes it (without a `milter-` prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::RejectWarning => "reject_warning",
            Action::Hold => "hold",
            Action::Discard => "discard",
            Action::Filter => "filter",
            Action::Redirect => "redirect",
            Action::Warning => "warning",
            Action::Info => "info",
            Action::Replace => "replace",
            Action::Prepend => "prepend",
            Action::Bcc => "bcc",
            Action::ProxyAccept => "proxy-accept",
            Action::ProxyReject => "proxy-reject",
        }
    }
}

/// The per-command counters of an smtpd `disconnect` line, e.g.
/// `ehlo=1 auth=0/1 mail=1 rcpt=1 data=1 quit=1 commands=5/6`, kept as written
/// and read on demand (most consumers look at one or two counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandStats<'a>(pub &'a str);

/// One counter of [`CommandStats`]: successes and attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandCount {
    /// Successful executions.
    pub ok: u32,
    /// All attempts (equal to `ok` when Postfix writes a single number).
    pub total: u32,
}

impl<'a> CommandStats<'a> {
    /// Every `name=ok[/total]` pair in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, CommandCount)> + 'a {
        self.0.split(' ').filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let (ok, total) = match v.split_once('/') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let n = v.parse().ok()?;
                    (n, n)
                }
            };
            Some((k, CommandCount { ok, total }))
        })
    }

    /// The counter for one command (`auth`, `rcpt`, `commands`, …).
    pub fn get(&self, name: &str) -> Option<CommandCount> {
        self.iter().find(|(k, _)| *k == name).map(|(_, c)| c)
    }

    /// Failed AUTH attempts in the session (`auth=0/3` → 3).
    pub fn auth_failures(&self) -> u32 {
        self.get("auth")
            .map(|c| c.total.saturating_sub(c.ok))
            .unwrap_or(0)
    }
}

impl Serialize for CommandStats<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, c) in self.iter() {
            m.serialize_entry(k, &[c.ok, c.total])?;
        }
        m.end()
    }
}

/// Postfix message types.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PostfixMsg<'a> {
    /// smtpd: `connect from name[ip]`.
    Connect {
        /// The SMTP client.
        client: Client<'a>,
    },
    /// smtpd: `disconnect from name[ip] ehlo=1 … commands=N/M`.
    Disconnect {
        /// The SMTP client.
        client: Client<'a>,
        /// Per-command counters (Postfix ≥ 3.0).
        stats: CommandStats<'a>,
    },
    /// smtpd: `lost connection after CMD from …`, `timeout after CMD from …`,
    /// `too many errors after CMD from …`.
    SessionAbort {
        /// `lost_connection`, `timeout` or `too_many_errors`.
        reason: AbortReason,
        /// The last command (`CONNECT`, `EHLO`, `AUTH`, `DATA`, `UNKNOWN`, …).
        after: &'a str,
        /// Extra detail such as `(0 bytes)`.
        #[serde(skip_serializing_if = "str::is_empty")]
        detail: &'a str,
        /// The SMTP client.
        client: Client<'a>,
    },
    /// smtpd: `warning: non-SMTP command from name[ip]: GET / HTTP/1.1`.
    NonSmtpCommand {
        /// The SMTP client.
        client: Client<'a>,
        /// The offending command text.
        command: &'a str,
    },
    /// smtpd: `improper command pipelining after CMD from name[ip]: text`.
    ImproperPipelining {
        /// The command after which data arrived early.
        after: &'a str,
        /// The SMTP client.
        client: Client<'a>,
        /// The pipelined text.
        text: &'a str,
    },
    /// smtpd: `warning: name[ip]: SASL METHOD authentication failed: reason`.
    SaslAuthFailed {
        /// The SMTP client.
        client: Client<'a>,
        /// SASL mechanism (`PLAIN`, `LOGIN`, …).
        method: &'a str,
        /// The text after `failed:` (often base64 of the prompt).
        #[serde(skip_serializing_if = "str::is_empty")]
        reason: &'a str,
        /// The user name tried (Postfix ≥ 3.?, `sasl_username=` suffix).
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_username: Option<&'a str>,
    },
    /// smtpd: `warning: Connection rate limit exceeded: 31 from name[ip] for service smtp`.
    RateLimit {
        /// Which limit (`Connection rate`, `Connection concurrency`, `Message delivery request rate`, …).
        limit: &'a str,
        /// The count that exceeded it.
        count: u32,
        /// The SMTP client.
        client: Client<'a>,
        /// The master.cf service.
        service: &'a str,
    },
    /// smtpd: `warning: hostname NAME does not resolve to address IP…` and
    /// `warning: IP: address not listed for hostname NAME` (FCrDNS failures).
    ReverseDnsMismatch {
        /// The reverse name.
        hostname: &'a str,
        /// The client address.
        ip: &'a str,
        /// The rest of the text.
        detail: &'a str,
    },
    /// TLS session established (smtpd/tlsproxy: `from`; smtp/lmtp: `to`).
    TlsEstablished {
        /// `Anonymous`, `Untrusted`, `Trusted` or `Verified`.
        trust: &'a str,
        /// `from` (inbound) or `to` (outbound).
        direction: &'a str,
        /// The peer.
        peer: Client<'a>,
        /// Protocol, e.g. `TLSv1.3`.
        protocol: &'a str,
        /// Cipher, e.g. `TLS_AES_256_GCM_SHA384`.
        cipher: &'a str,
    },
    /// TLS failures: `SSL_accept error from …`, tlsproxy `TLS handshake failed for …`.
    TlsFailed {
        /// The peer (when written as `name[ip]` or `[ip]:port`).
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<Client<'a>>,
        /// The text.
        text: &'a str,
    },
    /// smtpd: `QID: client=name[ip], sasl_method=…, sasl_username=…`.
    ClientAccepted {
        /// The SMTP client.
        client: Client<'a>,
        /// SASL mechanism when authenticated.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_method: Option<&'a str>,
        /// SASL user name when authenticated.
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_username: Option<&'a str>,
        /// `sasl_sender` (AUTH= parameter of MAIL FROM).
        #[serde(skip_serializing_if = "Option::is_none")]
        sasl_sender: Option<&'a str>,
        /// Original queue id (smtpd behind a proxy / XFORWARD).
        #[serde(skip_serializing_if = "Option::is_none")]
        orig_queue_id: Option<&'a str>,
        /// Original client (XFORWARD from a content filter).
        #[serde(skip_serializing_if = "Option::is_none")]
        orig_client: Option<Client<'a>>,
    },
    /// An access-restriction, milter or header/body-check action
    /// (`NOQUEUE: reject: RCPT from …`, `QID: milter-reject: END-OF-MESSAGE …`,
    /// `QID: warning: header Subject: …`, `QID: hold: …`).
    Action {
        /// What was done.
        action: Action,
        /// Whether a milter decided it.
        milter: bool,
        /// SMTP stage (`CONNECT`, `RCPT`, `DATA`, `END-OF-MESSAGE`) or check type (`header`, `body`).
        stage: &'a str,
        /// The SMTP client.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<Client<'a>>,
        /// Three-digit SMTP reply code.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// Enhanced status code (`5.7.1`).
        #[serde(skip_serializing_if = "Option::is_none")]
        enhanced: Option<&'a str>,
        /// The reply or reason text.
        text: &'a str,
        /// For header/body checks: the header or body line that matched.
        #[serde(skip_serializing_if = "Option::is_none")]
        matched: Option<&'a str>,
        /// Envelope sender.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// Envelope recipient.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
        /// `SMTP`/`ESMTP`.
        #[serde(skip_serializing_if = "Option::is_none")]
        proto: Option<&'a str>,
        /// HELO/EHLO name.
        #[serde(skip_serializing_if = "Option::is_none")]
        helo: Option<&'a str>,
    },
    /// cleanup: `QID: message-id=<…>` (and `resent-message-id=`).
    MessageId {
        /// The Message-ID without angle brackets.
        message_id: &'a str,
        /// Whether it was a `Resent-Message-ID`.
        resent: bool,
    },
    /// qmgr: `QID: from=<…>, size=N, nrcpt=N (queue active)`.
    QueueActive {
        /// Envelope sender (empty for bounces).
        from: &'a str,
        /// Message size in bytes.
        size: u64,
        /// Recipient count.
        nrcpt: u32,
    },
    /// qmgr: `QID: removed` (and postsuper's removal).
    Removed,
    /// qmgr: `QID: from=<…>, status=expired, returned to sender`.
    Expired {
        /// Envelope sender.
        from: &'a str,
        /// The text after `status=expired, `.
        detail: &'a str,
    },
    /// One recipient's delivery attempt (smtp, lmtp, local, virtual, pipe, error, discard, …).
    Delivery {
        /// Recipient after rewriting.
        to: &'a str,
        /// Original recipient before aliasing.
        #[serde(skip_serializing_if = "Option::is_none")]
        orig_to: Option<&'a str>,
        /// Next hop (`mx.example[ip]:25`, `local`, `dovecot`, `none`).
        relay: &'a str,
        /// Total delay in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        delay: Option<f64>,
        /// `a/b/c/d` delay breakdown.
        #[serde(skip_serializing_if = "Option::is_none")]
        delays: Option<&'a str>,
        /// DSN status code.
        #[serde(skip_serializing_if = "Option::is_none")]
        dsn: Option<&'a str>,
        /// Outcome.
        status: DeliveryStatus,
        /// The text in parentheses after the status.
        detail: &'a str,
        /// Queue id reported by the next hop (`250 … queued as X`); for a
        /// content filter on this host, the re-injected copy's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        queued_as: Option<&'a str>,
        /// local(8): `forwarded as QID` (alias expansion to a new message).
        #[serde(skip_serializing_if = "Option::is_none")]
        forwarded_as: Option<&'a str>,
    },
    /// smtp/lmtp: `connect to name[ip]:port: reason` (no queue id).
    ConnectFailed {
        /// The server tried.
        peer: Client<'a>,
        /// Why (`Connection refused`, `Connection timed out`, …).
        reason: &'a str,
    },
    /// smtp/lmtp: `QID: host name[ip] said: reply (in reply to CMD command)`.
    RemoteReply {
        /// The remote server.
        peer: Client<'a>,
        /// The server's reply.
        reply: &'a str,
        /// The command it answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<&'a str>,
    },
    /// smtp/lmtp: `QID: lost connection with …`/`conversation with … timed out while …`.
    RemoteFailure {
        /// The remote server.
        peer: Client<'a>,
        /// `lost connection` or `timed out`.
        what: &'a str,
        /// The stage (`receiving the initial server greeting`, `sending RCPT TO`, …).
        stage: &'a str,
    },
    /// bounce: `QID: sender non-delivery notification: NEWQID`.
    Notification {
        /// `sender non-delivery`, `sender delay`, `sender delivery status`, `postmaster non-delivery`, …
        /// (named `notification`: `kind` is the event family's key).
        notification: &'a str,
        /// The queue id of the notification message.
        new_queue_id: &'a str,
    },
    /// pickup: `QID: uid=N from=<…>` (local submission via sendmail).
    Pickup {
        /// Unix uid of the submitter.
        uid: u32,
        /// Envelope sender.
        from: &'a str,
    },
    /// postsuper: `QID: placed on hold` etc., or `Deleted: N messages`.
    Postsuper {
        /// `removed`, `placed on hold`, `released from hold`, `requeued`, `expired`, or the summary word.
        action: &'a str,
        /// Count, for summary lines.
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
    },
    /// postscreen: `CONNECT from [ip]:port to [ip]:port`.
    ScreenConnect {
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
        /// Server address.
        server_ip: &'a str,
        /// Server port.
        server_port: Option<u16>,
    },
    /// postscreen: `PASS NEW`/`PASS OLD [ip]:port`.
    ScreenPass {
        /// Whether the client passed the tests just now (`NEW`) or from cache (`OLD`).
        new: bool,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
    },
    /// postscreen: `PREGREET N after S from [ip]:port: text`.
    ScreenPregreet {
        /// Bytes sent before the greeting.
        bytes: u32,
        /// Seconds after connect.
        after: f64,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
        /// What the client sent.
        text: &'a str,
    },
    /// postscreen: `DNSBL rank N for [ip]:port`.
    ScreenDnsblRank {
        /// Combined DNSBL score.
        rank: i32,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
    },
    /// postscreen: `HANGUP after S from [ip]:port in STAGE`.
    ScreenHangup {
        /// Seconds after connect.
        after: f64,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
        /// The test stage.
        stage: &'a str,
    },
    /// postscreen/tlsproxy: `DISCONNECT [ip]:port`.
    ScreenDisconnect {
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
    },
    /// tlsproxy: `CONNECT from [ip]:port`.
    ProxyConnect {
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
    },
    /// postscreen protocol violations: `COMMAND PIPELINING`, `NON-SMTP COMMAND`,
    /// `BARE NEWLINE`, `COMMAND TIME LIMIT`, `COMMAND COUNT LIMIT`, `COMMAND LENGTH LIMIT`.
    ScreenViolation {
        /// The violation, as written.
        violation: &'a str,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
        /// The stage it happened after (`CONNECT`, `EHLO`, …) and any text.
        after: &'a str,
    },
    /// postscreen: `WHITELISTED`/`ALLOWLISTED`/`BLACKLISTED`/`DENYLISTED`/`… VETO` `[ip]:port`.
    ScreenListed {
        /// The verdict as written.
        list: &'a str,
        /// Client address.
        ip: &'a str,
        /// Client port.
        port: Option<u16>,
    },
    /// dnsblog: `addr IP listed by domain ZONE as REPLY`.
    DnsblListed {
        /// The listed address.
        ip: &'a str,
        /// The DNSBL zone.
        domain: &'a str,
        /// The A record returned.
        reply: &'a str,
    },
    /// `cache btree:/…/postscreen_cache full cleanup: retained=N dropped=N entries`.
    CacheCleanup {
        /// The cache table.
        cache: &'a str,
        /// Entries kept.
        retained: u64,
        /// Entries dropped.
        dropped: u64,
    },
    /// anvil: `statistics: max connection rate 1/60s for (smtp:1.2.3.4) at Mar 14 00:08:03`.
    AnvilMax {
        /// `connection rate`, `connection count`, `message rate`, `cache size`, …
        metric: &'a str,
        /// The value as written (`1/60s`, `3`).
        value: &'a str,
        /// `service:address`, when per client.
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<&'a str>,
        /// When the maximum was reached, as written.
        at: &'a str,
    },
    /// Other `statistics:` lines (scache, smtp connection cache).
    Statistics {
        /// The text after `statistics: `.
        text: &'a str,
    },
    /// master: `daemon started -- version 3.7.11, configuration /etc/postfix`,
    /// `reload -- …`, `terminating on signal 15`; postfix-script start/stop lines.
    Master {
        /// `started`, `reload`, `terminating`, or the script's text.
        what: &'a str,
        /// The Postfix version, when written.
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
        /// The whole text.
        text: &'a str,
    },
    /// Informational lines of a known shape that carry no further fields
    /// (`discarding EHLO keywords`, `enabling PIX workarounds`, …).
    Info {
        /// The text.
        text: &'a str,
    },
    /// `warning: …` not typed more specifically.
    Warning {
        /// The text after `warning: `.
        text: &'a str,
    },
    /// `error: …`.
    Error {
        /// The text after `error: `.
        text: &'a str,
    },
    /// `fatal: …`: the daemon exits.
    Fatal {
        /// The text after `fatal: `.
        text: &'a str,
    },
    /// `panic: …`: an internal error.
    Panic {
        /// The text after `panic: `.
        text: &'a str,
    },
}

/// Why an smtpd session ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// `lost connection after …`.
    LostConnection,
    /// `timeout after …`.
    Timeout,
    /// `too many errors after …`.
    TooManyErrors,
}

/// Splits `postfix/submission/smtpd` into (`postfix/submission`, `smtpd`).
pub fn split_program(program: &str) -> (&str, &str) {
    // A plain loop: tags are a few bytes, too short for memrchr to pay off.
    match program.bytes().rposition(|b| b == b'/') {
        Some(i) => (&program[..i], &program[i + 1..]),
        None => ("", program),
    }
}

/// Parses the message of a Postfix line.
pub fn parse<'a>(program: &'a str, message: &'a str) -> Option<PostfixEvent<'a>> {
    let (service, daemon) = split_program(program);
    let (queue_id, body) = match word_colon(message) {
        Some((w, rest)) => match QueueId::parse(w) {
            Some(q) => (Some(q), rest),
            None => (None, message),
        },
        None => (None, message),
    };
    let msg = match queue_id {
        Some(_) => parse_queued(daemon, body)?,
        None => parse_unqueued(daemon, body)?,
    };
    Some(PostfixEvent {
        service,
        daemon,
        queue_id,
        msg,
    })
}

/// Lines that start with a queue id.
fn parse_queued<'a>(daemon: &str, body: &'a str) -> Option<PostfixMsg<'a>> {
    if let Some(rest) = body.strip_prefix("to=") {
        return parse_delivery(rest);
    }
    if let Some(rest) = body.strip_prefix("client=") {
        return parse_client_accepted(rest);
    }
    if let Some(rest) = body.strip_prefix("message-id=") {
        return Some(PostfixMsg::MessageId {
            message_id: unangle(rest),
            resent: false,
        });
    }
    if let Some(rest) = body.strip_prefix("resent-message-id=") {
        return Some(PostfixMsg::MessageId {
            message_id: unangle(rest),
            resent: true,
        });
    }
    if body == "removed" {
        return Some(PostfixMsg::Removed);
    }
    if let Some(rest) = body.strip_prefix("from=<") {
        let (from, rest) = angle_value(rest)?;
        if let Some(detail) = rest.strip_prefix(", status=expired, ") {
            return Some(PostfixMsg::Expired { from, detail });
        }
        let size = plain_field(rest, "size")?.parse().ok()?;
        let nrcpt = plain_field(rest, "nrcpt")?.parse().ok()?;
        return Some(PostfixMsg::QueueActive { from, size, nrcpt });
    }
    if let Some(rest) = body.strip_prefix("uid=") {
        let (uid, rest) = rest.split_once(' ')?;
        let from = unangle(rest.strip_prefix("from=")?);
        return Some(PostfixMsg::Pickup {
            uid: uid.parse().ok()?,
            from,
        });
    }
    if let Some((head, rest)) = split_once(body, ": ")
        && let Some((action, milter)) = Action::parse(head)
    {
        return parse_action(action, milter, rest);
    }
    if let Some(rest) = body.strip_prefix("host ")
        && let Some((peer, rest)) = parse_client_prefix(rest)
        && let Some(rest) = rest.strip_prefix(" said: ")
    {
        let (reply, in_reply_to) = match rsplit_once(rest, " (in reply to ") {
            Some((r, cmd)) => (r, Some(cmd.trim_end_matches(')').trim_end_matches(" command"))),
            None => (rest, None),
        };
        return Some(PostfixMsg::RemoteReply {
            peer,
            reply,
            in_reply_to,
        });
    }
    if let Some(rest) = body.strip_prefix("host ")
        && let Some((peer, rest)) = parse_client_prefix(rest)
        && let Some(reply) = rest.strip_prefix(" refused to talk to me: ")
    {
        return Some(PostfixMsg::RemoteReply {
            peer,
            reply,
            in_reply_to: None,
        });
    }
    if let Some(rest) = body.strip_prefix("lost connection with ") {
        let (peer, rest) = parse_client_prefix(rest)?;
        return Some(PostfixMsg::RemoteFailure {
            peer,
            what: "lost connection",
            stage: rest.strip_prefix(" while ").unwrap_or(rest.trim_start()),
        });
    }
    if let Some(rest) = body.strip_prefix("conversation with ") {
        let (peer, rest) = parse_client_prefix(rest)?;
        let stage = rest.strip_prefix(" timed out while ")?;
        return Some(PostfixMsg::RemoteFailure {
            peer,
            what: "timed out",
            stage,
        });
    }
    if daemon == "bounce"
        && let Some((kind, new_qid)) = rsplit_once(body, " notification: ")
    {
        return Some(PostfixMsg::Notification {
            notification: kind,
            new_queue_id: new_qid,
        });
    }
    if matches!(
        body,
        "placed on hold" | "released from hold" | "requeued" | "expired" | "skipped, still being delivered"
    ) {
        return Some(PostfixMsg::Postsuper {
            action: body,
            count: None,
        });
    }
    if let Some(text) = body.strip_prefix("warning: ") {
        return Some(PostfixMsg::Warning { text });
    }
    for info in [
        "enabling PIX workarounds",
        "breaking line",
        "sender delivery status notification",
        "Cannot start TLS",
        "TLS is required, but",
        "delivery temporarily suspended",
        "SASL authentication failed; ",
        "TLS is required, but was not offered",
    ] {
        if body.starts_with(info) {
            return Some(PostfixMsg::Info { text: body });
        }
    }
    None
}

/// `to=<…>, orig_to=<…>, relay=…, delay=…, delays=…, dsn=…, status=… (detail)`.
/// Old Postfix versions write addresses without angle brackets.
fn parse_delivery(rest: &str) -> Option<PostfixMsg<'_>> {
    let (to, mut rest) = field_value(rest)?;
    let mut orig_to = None;
    let mut relay = "";
    let mut delay = None;
    let mut delays = None;
    let mut dsn = None;
    loop {
        rest = rest.strip_prefix(", ")?;
        if let Some(s) = rest.strip_prefix("status=") {
            let end = s.find(' ').unwrap_or(s.len());
            let status = DeliveryStatus::parse(&s[..end])?;
            let tail = &s[end..];
            let detail = tail
                .strip_prefix(" (")
                .map(|d| d.strip_suffix(')').unwrap_or(d))
                .unwrap_or(tail.trim_start());
            let queued_as = match status {
                DeliveryStatus::Sent => after_token(detail, "queued as "),
                _ => None,
            };
            let forwarded_as = after_token(detail, "forwarded as ");
            return Some(PostfixMsg::Delivery {
                to,
                orig_to,
                relay,
                delay,
                delays,
                dsn,
                status,
                detail,
                queued_as,
                forwarded_as,
            });
        }
        let (key, value_and_rest) = rest.split_once('=')?;
        let (value, next) = field_value(value_and_rest)?;
        match key {
            "orig_to" => orig_to = Some(value),
            "relay" => relay = value,
            "delay" => delay = value.parse().ok(),
            "delays" => delays = Some(value),
            "dsn" => dsn = Some(value),
            _ => {} // conn_use and future fields
        }
        rest = next;
    }
}

/// A delivery-line value: `<…>` or plain up to the next `, `.
fn field_value(s: &str) -> Option<(&str, &str)> {
    if let Some(v) = s.strip_prefix('<') {
        return angle_value(v);
    }
    let end = s.find(", ").unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// The alphanumeric token after `marker` in `s`, e.g. the id in `queued as 4PbC…`.
fn after_token<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let (_, after) = split_once(s, marker)?;
    let end = after
        .bytes()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(after.len());
    (end > 0).then(|| &after[..end])
}

/// `name[ip], sasl_method=PLAIN, sasl_username=u, sasl_sender=s, orig_queue_id=Q, orig_client=n[i]`.
fn parse_client_accepted(rest: &str) -> Option<PostfixMsg<'_>> {
    let end = rest.find(", ").unwrap_or(rest.len());
    let client = parse_client(&rest[..end])?;
    let tail = &rest[end..];
    Some(PostfixMsg::ClientAccepted {
        client,
        sasl_method: plain_field(tail, "sasl_method"),
        sasl_username: plain_field(tail, "sasl_username"),
        sasl_sender: plain_field(tail, "sasl_sender"),
        orig_queue_id: plain_field(tail, "orig_queue_id"),
        orig_client: plain_field(tail, "orig_client").and_then(parse_client),
    })
}

/// After `ACTION: `: `STAGE from CLIENT: CODE ENH text; from=<> to=<> proto=P helo=<>[: text]`
/// or, for header/body checks, `header Name: value from CLIENT; from=<>…: text`.
fn parse_action(action: Action, milter: bool, rest: &str) -> Option<PostfixMsg<'_>> {
    let (stage, after_stage) = rest.split_once(' ')?;
    // The envelope part starts at the last `; from=<` (or `; to=<` and so on
    // when the sender is not known yet, as after VRFY).
    let (left, envelope) = ["; from=<", "; to=<", "; proto=", "; helo=<"]
        .iter()
        .find_map(|marker| rsplit_once(after_stage, marker).map(|(l, _)| (l, &after_stage[l.len() + 2..])))
        .unwrap_or((after_stage, ""));
    let from = angle_field(envelope, "from");
    let to = angle_field(envelope, "to");
    let proto = plain_field(envelope, "proto");
    let helo = angle_field(envelope, "helo");
    if let Some(stage) = stage.strip_suffix(':') {
        // proxy-accept/proxy-reject: `END-OF-MESSAGE: reply; from=<…> …`.
        let (code, enhanced, text) = split_reply(left);
        return Some(PostfixMsg::Action {
            action,
            milter,
            stage,
            client: None,
            code,
            enhanced,
            text,
            matched: None,
            from,
            to,
            proto,
            helo,
        });
    }
    let (client, reply, matched) = if matches!(stage, "header" | "body" | "mime-header" | "nested-header") {
        // Header/body checks: the matched text, then ` from CLIENT`; the reply
        // text (if any) follows the envelope: `helo=<…>: 5.7.1 text`.
        let (matched, client) = match rsplit_once(left, " from ") {
            Some((t, "local")) => (t, None), // submitted with sendmail
            Some((t, c)) => match parse_client(c) {
                Some(c) => (t, Some(c)),
                None => (left, None),
            },
            None => (left, None),
        };
        (
            client,
            envelope_trailing_text(envelope).unwrap_or(""),
            Some(matched),
        )
    } else {
        let after_from = left.strip_prefix("from ")?;
        let (c, rest) = parse_client_prefix(after_from)?;
        (Some(c), rest.strip_prefix(": ").unwrap_or(rest), None)
    };
    let (code, enhanced, text) = split_reply(reply);
    Some(PostfixMsg::Action {
        action,
        milter,
        stage,
        client,
        code,
        enhanced,
        text,
        matched,
        from,
        to,
        proto,
        helo,
    })
}

/// The `: text` after `helo=<…>` in a cleanup action's envelope part.
fn envelope_trailing_text(envelope: &str) -> Option<&str> {
    let (_, after) = split_once(envelope, "helo=<")?;
    let (_, rest) = angle_value(after)?;
    rest.strip_prefix(": ")
}

/// Splits `554 5.7.1 text` into (code, enhanced, text); either number may be absent.
fn split_reply(s: &str) -> (Option<u16>, Option<&str>, &str) {
    let mut rest = s;
    let mut code = None;
    if rest.len() >= 4 && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit) && rest.as_bytes()[3] == b' ' {
        code = rest[..3].parse().ok();
        rest = &rest[4..];
    }
    let mut enhanced = None;
    if let Some((tok, after)) = rest.split_once(' ') {
        let b = tok.as_bytes();
        if b.len() >= 5
            && matches!(b[0], b'2' | b'4' | b'5')
            && b[1] == b'.'
            && tok.bytes().all(|c| c.is_ascii_digit() || c == b'.')
            && tok.matches('.').count() == 2
        {
            enhanced = Some(tok);
            rest = after;
        }
    }
    (code, enhanced, rest)
}

/// Strips `<…>` around a value if present.
fn unangle(s: &str) -> &str {
    s.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(s)
}

/// Lines without a queue id, dispatched on the daemon.
fn parse_unqueued<'a>(daemon: &str, body: &'a str) -> Option<PostfixMsg<'a>> {
    match daemon {
        "postscreen" => {
            if let Some(m) = parse_postscreen(body) {
                return Some(m);
            }
        }
        "dnsblog" => {
            if let Some(rest) = body.strip_prefix("addr ") {
                let (ip, rest) = split_once(rest, " listed by domain ")?;
                let (domain, reply) = split_once(rest, " as ")?;
                return Some(PostfixMsg::DnsblListed { ip, domain, reply });
            }
        }
        "tlsproxy" => {
            if let Some(rest) = body.strip_prefix("CONNECT from ") {
                let (ip, port, _) = parse_bracket_addr(rest)?;
                return Some(PostfixMsg::ProxyConnect { ip, port });
            }
            if let Some(rest) = body.strip_prefix("DISCONNECT ") {
                let (ip, port, _) = parse_bracket_addr(rest)?;
                return Some(PostfixMsg::ScreenDisconnect { ip, port });
            }
            if let Some(rest) = body.strip_prefix("TLS handshake failed for ") {
                let peer = split_once(rest, "peer=")
                    .and_then(|(_, p)| parse_bracket_addr(p))
                    .map(|(ip, port, _)| Client { name: "", ip, port });
                return Some(PostfixMsg::TlsFailed { peer, text: body });
            }
        }
        "anvil" => {
            if let Some(rest) = body.strip_prefix("statistics: max ") {
                return parse_anvil(rest);
            }
        }
        "master" => {
            if let Some(rest) = body.strip_prefix("daemon started -- version ") {
                return Some(PostfixMsg::Master {
                    what: "started",
                    version: rest.split(',').next(),
                    text: body,
                });
            }
            if let Some(rest) = body.strip_prefix("reload -- version ") {
                return Some(PostfixMsg::Master {
                    what: "reload",
                    version: rest.split(',').next(),
                    text: body,
                });
            }
            if body.starts_with("terminating on signal") {
                return Some(PostfixMsg::Master {
                    what: "terminating",
                    version: None,
                    text: body,
                });
            }
        }
        "postfix-script" | "postfix" | "postmulti"
            if body.starts_with("starting the Postfix mail system")
                || body.starts_with("stopping the Postfix mail system")
                || body.starts_with("refreshing the Postfix mail system")
                || body.starts_with("waiting for the Postfix mail system")
                || body.starts_with("the Postfix mail system is running") =>
        {
            return Some(PostfixMsg::Master {
                what: body.split(' ').next().unwrap_or(body),
                version: None,
                text: body,
            });
        }
        "postsuper" => {
            if let Some((word, n)) = split_once(body, ": ")
                && let Some(count) = n.strip_suffix(" messages").or_else(|| n.strip_suffix(" message"))
                && let Ok(count) = count.parse()
            {
                return Some(PostfixMsg::Postsuper {
                    action: word,
                    count: Some(count),
                });
            }
        }
        _ => {}
    }
    parse_common(body)
}

/// Lines any daemon may write (smtpd-style session lines, levels, TLS, statistics).
fn parse_common(body: &str) -> Option<PostfixMsg<'_>> {
    if let Some(rest) = body.strip_prefix("connect from ") {
        return Some(PostfixMsg::Connect {
            client: parse_client(rest)?,
        });
    }
    if let Some(rest) = body.strip_prefix("disconnect from ") {
        let (client, stats) = match rest.split_once(' ') {
            Some((c, s)) => (c, s),
            None => (rest, ""),
        };
        return Some(PostfixMsg::Disconnect {
            client: parse_client(client)?,
            stats: CommandStats(stats),
        });
    }
    for (prefix, reason) in [
        ("lost connection after ", AbortReason::LostConnection),
        ("timeout after ", AbortReason::Timeout),
        ("too many errors after ", AbortReason::TooManyErrors),
    ] {
        if let Some(rest) = body.strip_prefix(prefix) {
            let (head, client) = rsplit_once(rest, " from ")?;
            let (after, detail) = match head.split_once(' ') {
                Some((a, d)) => (a, d),
                None => (head, ""),
            };
            return Some(PostfixMsg::SessionAbort {
                reason,
                after,
                detail,
                client: parse_client(client)?,
            });
        }
    }
    if let Some(rest) = body.strip_prefix("NOQUEUE: ") {
        let (head, rest) = split_once(rest, ": ")?;
        let (action, milter) = Action::parse(head)?;
        return parse_action(action, milter, rest);
    }
    if body.starts_with("proxy-")
        && let Some((head, rest)) = split_once(body, ": ")
        && let Some((action, milter)) = Action::parse(head)
    {
        return parse_action(action, milter, rest);
    }
    if let Some(rest) = body.strip_prefix("improper command pipelining after ") {
        let (after, rest) = split_once(rest, " from ")?;
        let (client, rest) = parse_client_prefix(rest)?;
        return Some(PostfixMsg::ImproperPipelining {
            after,
            client,
            text: rest.strip_prefix(": ").unwrap_or(rest),
        });
    }
    if let Some(m) = parse_tls_established(body) {
        return Some(m);
    }
    if let Some(rest) = body
        .strip_prefix("SSL_accept error from ")
        .or_else(|| body.strip_prefix("SSL_connect error to "))
    {
        let (peer, _) = parse_client_prefix(rest)?;
        return Some(PostfixMsg::TlsFailed {
            peer: Some(peer),
            text: body,
        });
    }
    if let Some(rest) = body.strip_prefix("connect to ") {
        let (peer, rest) = parse_client_prefix(rest)?;
        return Some(PostfixMsg::ConnectFailed {
            peer,
            reason: rest.strip_prefix(": ").unwrap_or(rest),
        });
    }
    if let Some(rest) = body.strip_prefix("warning: ") {
        return Some(parse_warning(rest));
    }
    if let Some(text) = body.strip_prefix("error: ") {
        return Some(PostfixMsg::Error { text });
    }
    if let Some(text) = body.strip_prefix("fatal: ") {
        return Some(PostfixMsg::Fatal { text });
    }
    if let Some(text) = body.strip_prefix("panic: ") {
        return Some(PostfixMsg::Panic { text });
    }
    if let Some(text) = body.strip_prefix("statistics: ") {
        return Some(PostfixMsg::Statistics { text });
    }
    if let Some(m) = parse_cache_cleanup(body) {
        return Some(m);
    }
    for info in [
        "discarding EHLO keywords:",
        "setting up TLS connection",
        "Anonymous TLS connection established",
        "certificate verification failed",
        "server certificate verification failed",
        "looking up",
        "bare <LF> received after ",
        "bare <CR> received after ",
    ] {
        if body.starts_with(info) {
            return Some(PostfixMsg::Info { text: body });
        }
    }
    None
}

/// `Anonymous TLS connection established from name[ip]: TLSv1.3 with cipher X (…)`
/// and the outbound `Trusted TLS connection established to name[ip]:25: …`.
fn parse_tls_established(body: &str) -> Option<PostfixMsg<'_>> {
    let (trust, rest) = split_once(body, " TLS connection established ")?;
    if !matches!(trust, "Anonymous" | "Untrusted" | "Trusted" | "Verified") {
        return None;
    }
    let (direction, rest) = rest.split_once(' ')?;
    let (peer, rest) = match parse_client_prefix(rest) {
        Some(p) => p,
        None => {
            // tlsproxy writes `[ip]:port`.
            let (ip, port, rest) = parse_bracket_addr(rest)?;
            (Client { name: "", ip, port }, rest)
        }
    };
    let rest = rest.strip_prefix(": ")?;
    let (protocol, rest) = split_once(rest, " with cipher ")?;
    let cipher = rest.split(' ').next().unwrap_or(rest);
    Some(PostfixMsg::TlsEstablished {
        trust,
        direction,
        peer,
        protocol,
        cipher,
    })
}

/// `cache btree:/var/lib/postfix/postscreen_cache full cleanup: retained=1 dropped=0 entries`.
fn parse_cache_cleanup(body: &str) -> Option<PostfixMsg<'_>> {
    let rest = body.strip_prefix("cache ")?;
    let (cache, rest) =
        split_once(rest, " full cleanup: ").or_else(|| split_once(rest, " partial cleanup: "))?;
    Some(PostfixMsg::CacheCleanup {
        cache,
        retained: plain_field(rest, "retained")?.parse().ok()?,
        dropped: plain_field(rest, "dropped")?.parse().ok()?,
    })
}

/// smtpd/general warnings with known structure.
fn parse_warning(text: &str) -> PostfixMsg<'_> {
    if let Some(rest) = text.strip_prefix("non-SMTP command from ")
        && let Some((client, rest)) = parse_client_prefix(rest)
    {
        return PostfixMsg::NonSmtpCommand {
            client,
            command: rest.strip_prefix(": ").unwrap_or(rest),
        };
    }
    if let Some((client, rest)) = parse_client_prefix(text)
        && let Some(rest) = rest.strip_prefix(": SASL ")
        && let Some((method, rest)) = split_once(rest, " authentication failed")
    {
        let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
        let (reason, sasl_username) = match rsplit_once(rest, "sasl_username=") {
            Some((r, u)) => (r.trim_end_matches([',', ' ']), Some(u)),
            None => (rest, None),
        };
        return PostfixMsg::SaslAuthFailed {
            client,
            method,
            reason,
            sasl_username,
        };
    }
    if let Some(rest) = text.strip_prefix("hostname ")
        && let Some((hostname, rest)) = split_once(rest, " does not resolve to address ")
    {
        let (ip, detail) = split_once(rest, ": ").unwrap_or((rest, ""));
        return PostfixMsg::ReverseDnsMismatch { hostname, ip, detail };
    }
    if let Some((ip, rest)) = split_once(text, ": address not listed for hostname ") {
        return PostfixMsg::ReverseDnsMismatch {
            hostname: rest,
            ip,
            detail: "address not listed for hostname",
        };
    }
    if let Some((limit, rest)) = split_once(text, " limit exceeded: ")
        && let Some((count, rest)) = split_once(rest, " from ")
        && let Some((client, rest)) = parse_client_prefix(rest)
        && let Some(service) = rest.strip_prefix(" for service ")
        && let Ok(count) = count.parse()
    {
        return PostfixMsg::RateLimit {
            limit,
            count,
            client,
            service,
        };
    }
    PostfixMsg::Warning { text }
}

/// anvil: `connection rate 1/60s for (smtp:1.2.3.4) at Mar 14 00:08:03`,
/// `cache size 3 at Mar 14 00:08:03`.
fn parse_anvil(rest: &str) -> Option<PostfixMsg<'_>> {
    let (head, at) = rsplit_once(rest, " at ")?;
    let (head, client) = match split_once(head, " for (") {
        Some((h, c)) => (h, Some(c.trim_end_matches(')'))),
        None => (head, None),
    };
    let (metric, value) = head.rsplit_once(' ')?;
    Some(PostfixMsg::AnvilMax {
        metric,
        value,
        client,
        at,
    })
}

/// postscreen's upper-case verdict lines.
fn parse_postscreen(body: &str) -> Option<PostfixMsg<'_>> {
    // Verdict words start with capitals; others (warnings, cache lines) go
    // straight to the common shapes without trying every verdict.
    if !body.as_bytes().first().is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    if let Some(rest) = body.strip_prefix("CONNECT from ") {
        let (ip, port, rest) = parse_bracket_addr(rest)?;
        let (server_ip, server_port, _) = parse_bracket_addr(rest.strip_prefix(" to ")?)?;
        return Some(PostfixMsg::ScreenConnect {
            ip,
            port,
            server_ip,
            server_port,
        });
    }
    if let Some(rest) = body.strip_prefix("PASS ") {
        let (age, rest) = rest.split_once(' ')?;
        let (ip, port, _) = parse_bracket_addr(rest)?;
        return Some(PostfixMsg::ScreenPass {
            new: age == "NEW",
            ip,
            port,
        });
    }
    if let Some(rest) = body.strip_prefix("DISCONNECT ") {
        let (ip, port, _) = parse_bracket_addr(rest)?;
        return Some(PostfixMsg::ScreenDisconnect { ip, port });
    }
    if let Some(rest) = body.strip_prefix("DNSBL rank ") {
        let (rank, rest) = split_once(rest, " for ")?;
        let (ip, port, _) = parse_bracket_addr(rest)?;
        return Some(PostfixMsg::ScreenDnsblRank {
            rank: rank.parse().ok()?,
            ip,
            port,
        });
    }
    if let Some(rest) = body.strip_prefix("PREGREET ") {
        let (bytes, rest) = split_once(rest, " after ")?;
        let (after, rest) = split_once(rest, " from ")?;
        let (ip, port, rest) = parse_bracket_addr(rest)?;
        return Some(PostfixMsg::ScreenPregreet {
            bytes: bytes.parse().ok()?,
            after: after.parse().ok()?,
            ip,
            port,
            text: rest.strip_prefix(": ").unwrap_or(rest),
        });
    }
    if let Some(rest) = body.strip_prefix("HANGUP after ") {
        let (after, rest) = split_once(rest, " from ")?;
        let (ip, port, rest) = parse_bracket_addr(rest)?;
        return Some(PostfixMsg::ScreenHangup {
            after: after.parse().ok()?,
            ip,
            port,
            stage: rest.strip_prefix(" in ").unwrap_or(rest.trim_start()),
        });
    }
    for violation in [
        "COMMAND PIPELINING",
        "NON-SMTP COMMAND",
        "BARE NEWLINE",
        "COMMAND TIME LIMIT",
        "COMMAND COUNT LIMIT",
        "COMMAND LENGTH LIMIT",
    ] {
        if let Some(rest) = body.strip_prefix(violation)
            && let Some(rest) = rest.strip_prefix(" from ")
        {
            let (ip, port, rest) = parse_bracket_addr(rest)?;
            return Some(PostfixMsg::ScreenViolation {
                violation,
                ip,
                port,
                after: rest.strip_prefix(" after ").unwrap_or(rest.trim_start()),
            });
        }
    }
    for list in [
        "WHITELISTED",
        "ALLOWLISTED",
        "BLACKLISTED",
        "DENYLISTED",
        "WHITELIST VETO",
        "ALLOWLIST VETO",
    ] {
        if let Some(rest) = body.strip_prefix(list)
            && let Some(rest) = rest.strip_prefix(' ')
        {
            let (ip, port, _) = parse_bracket_addr(rest)?;
            return Some(PostfixMsg::ScreenListed { list, ip, port });
        }
    }
    if body.starts_with("reject: connect from ") || body.starts_with("NOQUEUE: reject: CONNECT from ") {
        let rest = split_once(body, " from ")?.1;
        let (ip, port, rest) = parse_bracket_addr(rest)?;
        let (code, enhanced, text) = split_reply(rest.strip_prefix(": ").unwrap_or(rest));
        return Some(PostfixMsg::Action {
            action: Action::Reject,
            milter: false,
            stage: "CONNECT",
            client: Some(Client { name: "", ip, port }),
            code,
            enhanced,
            text,
            matched: None,
            from: None,
            to: None,
            proto: None,
            helo: None,
        });
    }
    None
}

#[cfg(test)]
mod tests;
