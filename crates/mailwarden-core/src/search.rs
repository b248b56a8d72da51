//! Search criteria over stitched messages and single events.
//!
//! A message matches when every given criterion matches (AND). Addresses match
//! case-insensitively and whole, or by domain when written `@domain` or
//! `*@domain`. Client addresses match exactly or by prefix ending in `.` or `:`
//! (`192.0.2.`). Lines that belong to no message — rejections before queueing,
//! connections, failed logins — are matched by [`SearchQuery::matches_event`].

use serde::Serialize;

use crate::event::{Client, Event, EventKind};
use crate::parse::postfix::{Action, DeliveryStatus, PostfixMsg};
use crate::stitch::MessageRecord;
use crate::time::Timestamp;

/// What a message's outcome must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Some recipient was delivered.
    Sent,
    /// Some attempt was deferred.
    Deferred,
    /// Some recipient bounced.
    Bounced,
    /// The message expired in the queue.
    Expired,
    /// Rejected (before queueing, or by a milter/content check).
    Rejected,
    /// Held or discarded by a check.
    Held,
}

impl std::str::FromStr for StatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<StatusFilter, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sent" | "delivered" => StatusFilter::Sent,
            "deferred" => StatusFilter::Deferred,
            "bounced" => StatusFilter::Bounced,
            "expired" => StatusFilter::Expired,
            "rejected" | "reject" => StatusFilter::Rejected,
            "held" | "hold" | "discarded" => StatusFilter::Held,
            _ => {
                return Err(format!(
                    "unknown status {s:?}; expected sent, deferred, bounced, expired, rejected or held"
                ));
            }
        })
    }
}

/// Search criteria; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// Envelope sender (or `@domain`).
    pub sender: Option<String>,
    /// A recipient, original or rewritten (or `@domain`).
    pub recipient: Option<String>,
    /// SASL user name.
    pub sasl_user: Option<String>,
    /// Client address or prefix.
    pub client_ip: Option<String>,
    /// Any of the message's queue ids.
    pub queue_id: Option<String>,
    /// Message-ID (with or without angle brackets).
    pub message_id: Option<String>,
    /// Outcome.
    pub status: Option<StatusFilter>,
    /// Not before.
    pub since: Option<Timestamp>,
    /// Not after.
    pub until: Option<Timestamp>,
}

/// Address comparison: whole address, or domain for `@domain`/`*@domain`.
pub fn address_matches(pattern: &str, addr: &str) -> bool {
    let p = pattern.trim().trim_start_matches('<').trim_end_matches('>');
    let p = p.strip_prefix('*').unwrap_or(p);
    if let Some(dom) = p.strip_prefix('@') {
        return addr
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(dom));
    }
    if p.is_empty() && pattern.contains("<>") {
        return addr.is_empty();
    }
    p.eq_ignore_ascii_case(addr)
}

/// Client address comparison: exact, or prefix when the pattern ends in `.` or `:`.
pub fn ip_matches(pattern: &str, ip: &str) -> bool {
    if pattern.ends_with('.') || pattern.ends_with(':') {
        ip.starts_with(pattern)
    } else {
        pattern.eq_ignore_ascii_case(ip)
    }
}

fn strip_angles(s: &str) -> &str {
    s.trim().trim_start_matches('<').trim_end_matches('>')
}

impl SearchQuery {
    /// Whether no criterion is set.
    pub fn is_empty(&self) -> bool {
        self.sender.is_none()
            && self.recipient.is_none()
            && self.sasl_user.is_none()
            && self.client_ip.is_none()
            && self.queue_id.is_none()
            && self.message_id.is_none()
            && self.status.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    fn time_ok(&self, first: Option<Timestamp>, last: Option<Timestamp>) -> bool {
        if let (Some(since), Some(last)) = (self.since, last.or(first))
            && last < since
        {
            return false;
        }
        if let (Some(until), Some(first)) = (self.until, first.or(last))
            && first > until
        {
            return false;
        }
        true
    }

    /// Whether a stitched message matches.
    pub fn matches_record(&self, r: &MessageRecord) -> bool {
        // The logged `From:` header (Postfix header_checks INFO) counts as a
        // sender too: the store indexes it under the same key.
        if let Some(s) = &self.sender
            && ![r.from.as_deref(), r.header_from.as_deref()]
                .into_iter()
                .flatten()
                .any(|f| address_matches(s, f))
        {
            return false;
        }
        if let Some(p) = &self.recipient
            && !r.deliveries.iter().any(|d| {
                address_matches(p, &d.to) || d.orig_to.as_deref().is_some_and(|o| address_matches(p, o))
            })
        {
            return false;
        }
        if let Some(u) = &self.sasl_user
            && !r
                .sasl_username
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(u))
        {
            return false;
        }
        if let Some(ip) = &self.client_ip
            && !r.client.as_ref().is_some_and(|c| ip_matches(ip, &c.ip))
        {
            return false;
        }
        if let Some(q) = &self.queue_id
            && !r.all_queue_ids().any(|x| x == q)
            && r.notification_queue_id.as_deref() != Some(q.as_str())
        {
            return false;
        }
        if let Some(m) = &self.message_id
            && r.message_id.as_deref().map(strip_angles) != Some(strip_angles(m))
        {
            return false;
        }
        if let Some(st) = self.status {
            let ok = match st {
                StatusFilter::Sent => r.deliveries.iter().any(|d| d.status == DeliveryStatus::Sent),
                StatusFilter::Deferred => r.deliveries.iter().any(|d| d.status == DeliveryStatus::Deferred),
                StatusFilter::Bounced => r.deliveries.iter().any(|d| d.status == DeliveryStatus::Bounced),
                StatusFilter::Expired => r.expired,
                StatusFilter::Rejected => r.actions.iter().any(|a| a.action == Action::Reject),
                StatusFilter::Held => r
                    .actions
                    .iter()
                    .any(|a| matches!(a.action, Action::Hold | Action::Discard)),
            };
            if !ok {
                return false;
            }
        }
        self.time_ok(r.first_seen, r.last_seen)
    }

    /// Whether a line that belongs to no message matches: a rejection before
    /// queueing (`NOQUEUE: reject`), or — for `--lines` — a connection or a
    /// failed login of a matching client or user. Criteria the line cannot
    /// answer (a queue id, a Message-ID) make it not match.
    pub fn matches_event(&self, ev: &Event<'_>) -> bool {
        if self.queue_id.is_some() || self.message_id.is_some() {
            return false;
        }
        if !self.time_ok(ev.ts, ev.ts) {
            return false;
        }
        let EventKind::Postfix(p) = &ev.kind else {
            return false;
        };
        if p.queue_id.is_some() {
            return false;
        }
        let (client, from, to, user, rejected): (
            Option<&Client<'_>>,
            Option<&str>,
            Option<&str>,
            Option<&str>,
            bool,
        ) = match &p.msg {
            PostfixMsg::Action {
                action,
                client,
                from,
                to,
                ..
            } => (
                client.as_ref(),
                *from,
                *to,
                None,
                matches!(action, Action::Reject),
            ),
            PostfixMsg::SaslAuthFailed {
                client,
                sasl_username,
                ..
            } => (Some(client), None, None, *sasl_username, false),
            PostfixMsg::Connect { client }
            | PostfixMsg::Disconnect { client, .. }
            | PostfixMsg::SessionAbort { client, .. }
            | PostfixMsg::NonSmtpCommand { client, .. } => (Some(client), None, None, None, false),
            _ => return false,
        };
        if let Some(st) = self.status
            && !(st == StatusFilter::Rejected && rejected)
        {
            return false;
        }
        if let Some(s) = &self.sender
            && !from.is_some_and(|f| address_matches(s, f))
        {
            return false;
        }
        if let Some(r) = &self.recipient
            && !to.is_some_and(|t| address_matches(r, t))
        {
            return false;
        }
        if let Some(u) = &self.sasl_user
            && !user.is_some_and(|x| x.eq_ignore_ascii_case(u))
        {
            return false;
        }
        if let Some(ip) = &self.client_ip
            && !client.is_some_and(|c| ip_matches(ip, c.ip))
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains() {
        assert!(address_matches("Alice@Example.org", "alice@example.org"));
        assert!(address_matches("@example.org", "bob@EXAMPLE.org"));
        assert!(address_matches("*@example.org", "bob@example.org"));
        assert!(!address_matches("@example.org", "bob@example.org.evil"));
        assert!(!address_matches("alice@example.org", "malice@example.org"));
        assert!(address_matches("<>", ""));
    }

    #[test]
    fn ip_prefixes() {
        assert!(ip_matches("192.0.2.", "192.0.2.17"));
        assert!(!ip_matches("192.0.2.1", "192.0.2.17"));
        assert!(ip_matches("2001:db8:", "2001:db8::1"));
    }

    #[test]
    fn status_names() {
        assert_eq!("Delivered".parse::<StatusFilter>(), Ok(StatusFilter::Sent));
        assert!("nope".parse::<StatusFilter>().unwrap_err().contains("expected"));
    }
}
