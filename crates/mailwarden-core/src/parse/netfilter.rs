//! Mailcow's `netfilter-mailcow` container: its fail2ban-like daemon reads
//! the other containers' log lines from Redis, matches them against its rules
//! and bans networks in the `MAILCOW` iptables/nftables chain. Its messages
//! (Redis list `NETFILTER_LOG` and the container's stdout) are parsed here:
//! rule matches, attempt counters, bans and unbans, permanent deny-list
//! (formerly blacklist) changes, allow-list (formerly whitelist) hits,
//! startup, chain-order errors and SNAT rule maintenance.
//!
//! For security monitoring these are the brute-force defence's own record:
//! who attacked (rule matches with the offending log line), who got banned
//! and for how long, what was lifted, and whether the defence itself is
//! healthy (a missing or misplaced `MAILCOW` chain means bans are not
//! enforced; `Clearing all bans` on restart lifts every ban).
//!
//! Wording follows `data/Dockerfiles/netfilter` of mailcow-dockerized from the
//! Python 2 `server.py` (2017) through `main.py` and `modules/*.py` (2023–).
//! Lines that are not netfilter's own wording (Python tracebacks, pip notices)
//! are left unparsed.

use serde::Serialize;

use crate::parse::text::split_once;

/// A parsed netfilter message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NetfilterEvent<'a> {
    /// `Banning 203.0.113.0/24 for 30 minutes`, or a permanent deny-list entry
    /// `Added host/network 198.51.100.7 to denylist`.
    Ban {
        /// The banned network (`1.2.3.4/32`, `2001:db8::/64`) or host.
        net: &'a str,
        /// Ban duration in minutes, when logged.
        #[serde(skip_serializing_if = "Option::is_none")]
        minutes: Option<u64>,
        /// A deny-list (blacklist) entry: no expiry.
        #[serde(skip_serializing_if = "is_false")]
        permanent: bool,
    },
    /// `Unbanning 203.0.113.0/24`, or `Removed host/network … from denylist`.
    Unban {
        /// The network.
        net: &'a str,
        /// A deny-list entry was removed.
        #[serde(skip_serializing_if = "is_false")]
        permanent: bool,
        /// `(not in local bans dict)`: the daemon had no record of the ban
        /// (e.g. after a restart, or a ban made by another node).
        #[serde(skip_serializing_if = "is_false")]
        untracked: bool,
    },
    /// `… is not banned, skipping unban and deleting from queue (if any)`.
    UnbanSkipped {
        /// The network.
        net: &'a str,
    },
    /// `Safeguard: purging expired active ban … (expire=…, now=…, left=…s)`.
    ExpiredBanPurged {
        /// The network.
        net: &'a str,
    },
    /// `203.0.113.5 matched rule id 3 (warning: …: SASL LOGIN authentication failed: …)`.
    RuleMatch {
        /// The offending address.
        addr: &'a str,
        /// The rule id (Mailcow's default rules are numbered from 1).
        rule_id: &'a str,
        /// The log line that matched (absent in the 2017 wording).
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<&'a str>,
    },
    /// `9 more attempts in the next 600 seconds until 203.0.113.0/24 is banned`.
    AttemptsLeft {
        /// Attempts left before the ban.
        attempts: u32,
        /// Length of the retry window in seconds.
        seconds: u64,
        /// The network that will be banned.
        net: &'a str,
    },
    /// `Address 192.0.2.5/32 is allowlisted by rule 192.0.2.0/24` (older:
    /// `whitelisted`): a match that was not counted.
    Allowlisted {
        /// The address (as a network).
        addr: &'a str,
        /// The allow-list entry that covers it.
        rule: &'a str,
    },
    /// `Allowlist was changed, it has 3 entries` (older: `Whitelist`/`Blacklist`).
    ListChanged {
        /// Which list.
        list: ListKind,
        /// Number of entries now.
        entries: u64,
    },
    /// `Clearing all bans`: every ban is lifted (startup and shutdown).
    ClearAll {},
    /// `Using NFTables backend` / `Using IPTables backend`.
    Backend {
        /// The backend as written (`NFTables`, `IPTables`).
        backend: &'a str,
    },
    /// `Error in FORWARD chain: MAILCOW target not found, restarting container`
    /// and the nftables and older forms: bans are not enforced until fixed.
    ChainError {
        /// The chain (`FORWARD`, `INPUT`, `input`, `forward`), when named.
        #[serde(skip_serializing_if = "Option::is_none")]
        chain: Option<&'a str>,
        /// Address family (`ip`, `ip6`), for nftables.
        #[serde(skip_serializing_if = "Option::is_none")]
        family: Option<&'a str>,
        /// Position of the MAILCOW jump; `None` when it was not found.
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
    },
    /// SNAT rule maintenance: `Added POSTROUTING rule for source network … to
    /// SNAT target …` / `Remove rule for source network … to SNAT target …`.
    Snat {
        /// The rule was removed (else added).
        #[serde(skip_serializing_if = "is_false")]
        removed: bool,
        /// Source network.
        source: &'a str,
        /// SNAT target address.
        target: &'a str,
    },
    /// `Hostname mx.example.org timedout on resolve` (allow/deny list entry).
    ResolveTimeout {
        /// The host name.
        hostname: &'a str,
    },
    /// Startup and maintenance lines without fields (`Initializing mailcow
    /// netfilter chain`, `Watching Redis channel F2B_CHANNEL`, `Setting MAILCOW
    /// isolation`, `Clear completed: ip`, the iptables deprecation notice, …).
    Startup {
        /// The line.
        text: &'a str,
    },
    /// Netfilter's own error lines (`Error loading F2B options: …`,
    /// `Firewall unban failed for …: …`, `autopurge tick failed, continuing: …`).
    Error {
        /// The network concerned, when the line names one.
        #[serde(skip_serializing_if = "Option::is_none")]
        net: Option<&'a str>,
        /// The line.
        text: &'a str,
    },
    /// `DEBUG: …` lines of a debug build.
    Debug {
        /// The text after `DEBUG: `.
        text: &'a str,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The two lists of the netfilter daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Never banned (`F2B_WHITELIST`; "whitelist", "allowlist").
    Allowlist,
    /// Permanently banned (`F2B_BLACKLIST`; "blacklist", "denylist").
    Denylist,
}

impl NetfilterEvent<'_> {
    /// Whether the event puts a ban in place.
    pub fn is_ban(&self) -> bool {
        matches!(self, NetfilterEvent::Ban { .. })
    }

    /// Whether the event signals that the ban mechanism itself is impaired.
    pub fn is_health_problem(&self) -> bool {
        matches!(
            self,
            NetfilterEvent::ChainError { .. } | NetfilterEvent::Error { .. }
        )
    }
}

/// Parses the message part of a Netfilter line; `None` when its shape is unknown.
pub fn parse<'a>(_program: &'a str, message: &'a str) -> Option<NetfilterEvent<'a>> {
    let m = message.trim();
    if m.is_empty() {
        return None;
    }
    if let Some(text) = m.strip_prefix("DEBUG: ") {
        return Some(NetfilterEvent::Debug { text });
    }
    bans(m)
        .or_else(|| matches_and_lists(m))
        .or_else(|| maintenance(m))
        .or_else(|| errors(m))
}

/// An IP address or network as netfilter prints it: hex digits, `.`, `:`, `/`.
fn is_net(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':' | b'/'))
}

fn net(s: &str) -> Option<&str> {
    is_net(s).then_some(s)
}

/// A deny-list (blacklist) word → list kind.
fn list_word(s: &str) -> Option<ListKind> {
    match s {
        "blacklist" | "denylist" | "Blacklist" | "Denylist" => Some(ListKind::Denylist),
        "whitelist" | "allowlist" | "Whitelist" | "Allowlist" => Some(ListKind::Allowlist),
        _ => None,
    }
}

fn bans(m: &str) -> Option<NetfilterEvent<'_>> {
    if let Some(rest) = m.strip_prefix("Banning ") {
        // `Banning NET for N minutes` (2019–) or `Banning NET` (2017 Redis log).
        let (n, minutes) = match rest.split_once(" for ") {
            Some((n, dur)) => (n, Some(dur.strip_suffix(" minutes")?.parse().ok()?)),
            None => (rest, None),
        };
        return Some(NetfilterEvent::Ban {
            net: net(n)?,
            minutes,
            permanent: false,
        });
    }
    if let Some(rest) = m.strip_prefix("Unbanning ") {
        let (n, untracked) = match rest.strip_suffix(" (not in local bans dict)") {
            Some(n) => (n, true),
            None => (rest, false),
        };
        return Some(NetfilterEvent::Unban {
            net: net(n)?,
            permanent: false,
            untracked,
        });
    }
    // `Add`/`Added host/network NET to blacklist|denylist`.
    if let Some(rest) = m
        .strip_prefix("Added host/network ")
        .or_else(|| m.strip_prefix("Add host/network "))
    {
        let (n, list) = rest.split_once(" to ")?;
        if list_word(list)? != ListKind::Denylist {
            return None;
        }
        return Some(NetfilterEvent::Ban {
            net: net(n)?,
            minutes: None,
            permanent: true,
        });
    }
    if let Some(rest) = m
        .strip_prefix("Removed host/network ")
        .or_else(|| m.strip_prefix("Remove host/network "))
    {
        let (n, list) = rest.split_once(" from ")?;
        if list_word(list)? != ListKind::Denylist {
            return None;
        }
        return Some(NetfilterEvent::Unban {
            net: net(n)?,
            permanent: true,
            untracked: false,
        });
    }
    if let Some(n) = m.strip_suffix(" is not banned, skipping unban and deleting from queue (if any)") {
        return Some(NetfilterEvent::UnbanSkipped { net: net(n)? });
    }
    if let Some(rest) = m.strip_prefix("Safeguard: purging expired active ban ") {
        let n = rest.split(' ').next().unwrap_or(rest);
        return Some(NetfilterEvent::ExpiredBanPurged { net: net(n)? });
    }
    None
}

fn matches_and_lists(m: &str) -> Option<NetfilterEvent<'_>> {
    // `ADDR matched rule id ID (LINE)` / `ADDR matched rule id ID`.
    if let Some((addr, rest)) = split_once(m, " matched rule id ") {
        let addr = net(addr)?;
        let (rule_id, line) = match rest.split_once(' ') {
            Some((id, l)) => {
                let l = l.strip_prefix('(')?;
                (id, Some(l.strip_suffix(')').unwrap_or(l)))
            }
            None => (rest, None),
        };
        if rule_id.is_empty() {
            return None;
        }
        return Some(NetfilterEvent::RuleMatch { addr, rule_id, line });
    }
    // `N more attempts in the next S seconds until NET is banned`.
    if let Some((attempts, rest)) = split_once(m, " more attempts in the next ") {
        let (seconds, rest) = split_once(rest, " seconds until ")?;
        let n = rest.strip_suffix(" is banned")?;
        return Some(NetfilterEvent::AttemptsLeft {
            attempts: attempts.parse().ok()?,
            seconds: seconds.parse().ok()?,
            net: net(n)?,
        });
    }
    // `Address A is allowlisted|whitelisted by rule R`.
    if let Some(rest) = m.strip_prefix("Address ") {
        let (addr, rest) = rest
            .split_once(" is allowlisted by rule ")
            .or_else(|| rest.split_once(" is whitelisted by rule "))?;
        return Some(NetfilterEvent::Allowlisted {
            addr: net(addr)?,
            rule: net(rest)?,
        });
    }
    // `Allowlist|Whitelist|Denylist|Blacklist was changed, it has N entries`.
    if let Some((word, rest)) = split_once(m, " was changed, it has ") {
        let list = list_word(word)?;
        let entries = rest.strip_suffix(" entries")?.parse().ok()?;
        return Some(NetfilterEvent::ListChanged { list, entries });
    }
    if let Some(h) = m.strip_prefix("Hostname ")
        && let Some(hostname) = h.strip_suffix(" timedout on resolve")
    {
        return Some(NetfilterEvent::ResolveTimeout { hostname });
    }
    None
}

/// Fixed startup/maintenance lines (`Startup`).
const STARTUP: &[&str] = &[
    "Initializing mailcow netfilter chain",
    "Watching Redis channel F2B_CHANNEL",
    "Subscribing to Redis channel F2B_CHANNEL",
];

fn maintenance(m: &str) -> Option<NetfilterEvent<'_>> {
    if m == "Clearing all bans" {
        return Some(NetfilterEvent::ClearAll {});
    }
    if let Some(rest) = m.strip_prefix("Using ")
        && let Some(backend) = rest.strip_suffix(" backend")
        && !backend.is_empty()
        && !backend.contains(' ')
    {
        return Some(NetfilterEvent::Backend { backend });
    }
    let startup = STARTUP.contains(&m)
        || m.starts_with("DEPRECATION: iptables")
        || ((m.starts_with("Setting ") || m.starts_with("Skipping ")) && m.ends_with(" isolation"))
        || m.starts_with("Clear completed: ")
        || (m.starts_with("MAILCOW ") && m.ends_with(" chain created successfully."));
    if startup {
        return Some(NetfilterEvent::Startup { text: m });
    }
    if let Some(ev) = chain_error(m) {
        return Some(ev);
    }
    snat(m)
}

/// The chain-order checks of server.py, IPTables.py and NFTables.py.
fn chain_error(m: &str) -> Option<NetfilterEvent<'_>> {
    // 2017: `Error in chain order, restarting container`.
    if m.starts_with("Error in chain order, restarting container") {
        return Some(NetfilterEvent::ChainError {
            chain: None,
            family: None,
            position: None,
        });
    }
    if let Some(rest) = m.strip_prefix("Error in ") {
        // `Error in CHAIN chain order: MAILCOW on position N, restarting container`
        if let Some((chain, r)) = rest.split_once(" chain order: ") {
            let pos = r.split_once(" on position ")?.1.split(',').next()?;
            return Some(NetfilterEvent::ChainError {
                chain: Some(chain),
                family: None,
                position: Some(pos.parse().ok()?),
            });
        }
        // `Error in CHAIN chain: NAME target not found, restarting container`
        let (chain, r) = rest.split_once(" chain: ")?;
        if !r.contains("target not found") {
            return None;
        }
        return Some(NetfilterEvent::ChainError {
            chain: Some(chain),
            family: None,
            position: None,
        });
    }
    // nftables: `MAILCOW target not found in ip input table, restarting …` and
    // `MAILCOW target is in position N in the ip6 forward table, restarting …`.
    let rest = m.strip_prefix("MAILCOW target ")?;
    if let Some(r) = rest.strip_prefix("not found in ") {
        let (fam_chain, _) = r.split_once(" table")?;
        let (family, chain) = fam_chain.split_once(' ')?;
        return Some(NetfilterEvent::ChainError {
            chain: Some(chain),
            family: Some(family),
            position: None,
        });
    }
    let r = rest.strip_prefix("is in position ")?;
    let (pos, r) = r.split_once(" in the ")?;
    let (fam_chain, _) = r.split_once(" table")?;
    let (family, chain) = fam_chain.split_once(' ')?;
    Some(NetfilterEvent::ChainError {
        chain: Some(chain),
        family: Some(family),
        position: Some(pos.parse().ok()?),
    })
}

fn snat(m: &str) -> Option<NetfilterEvent<'_>> {
    // iptables: `Added POSTROUTING rule for source network S to SNAT target T`.
    if let Some(rest) = m.strip_prefix("Added POSTROUTING rule for source network ") {
        let (source, target) = rest.split_once(" to SNAT target ")?;
        return Some(NetfilterEvent::Snat {
            removed: false,
            source: net(source)?,
            target: net(target)?,
        });
    }
    // nftables: `Added ip nat CHAIN rule for source network S to T`.
    if let Some(rest) = m.strip_prefix("Added ")
        && let Some((_, r)) = split_once(rest, " rule for source network ")
    {
        let (source, target) = r.split_once(" to ")?;
        return Some(NetfilterEvent::Snat {
            removed: false,
            source: net(source)?,
            target: net(target)?,
        });
    }
    // Both: `Remove rule for source network S to SNAT target T from …`.
    if let Some(rest) = m.strip_prefix("Remove rule for source network ") {
        let (source, r) = rest.split_once(" to SNAT target ")?;
        let target = r.split(' ').next()?;
        return Some(NetfilterEvent::Snat {
            removed: true,
            source: net(source)?,
            target: net(target)?,
        });
    }
    None
}

/// Error lines netfilter writes, with the network they name when any.
fn errors(m: &str) -> Option<NetfilterEvent<'_>> {
    const PLAIN: &[&str] = &[
        "Error loading F2B options: ",
        "Error reading log line from pubsub",
        "Error clearing redis keys ",
        "Error running SNAT",
        "Error adding ",
    ];
    if PLAIN.iter().any(|p| m.starts_with(p)) {
        return Some(NetfilterEvent::Error { net: None, text: m });
    }
    // `… tick failed, continuing: …` (autopurge, mailcowChainOrder, list updates).
    if let Some((what, _)) = split_once(m, " tick failed, continuing") {
        if what.is_empty() || what.contains(' ') {
            return None;
        }
        return Some(NetfilterEvent::Error { net: None, text: m });
    }
    // `PREFIX NET: error` / `PREFIX NET (reason): error`.
    const WITH_NET: &[&str] = &[
        "Invalid or unparseable net ",
        "Redis hdel during unban failed for ",
        "Firewall unban failed for ",
        "safe_unban failed for ",
    ];
    for p in WITH_NET {
        if let Some(rest) = m.strip_prefix(p) {
            let end = rest.find([' ', ':']).unwrap_or(rest.len());
            return Some(NetfilterEvent::Error {
                net: net(&rest[..end]),
                text: m,
            });
        }
    }
    // Printed only: `ADDR is not a valid IPv4 address` (SNAT_TO_SOURCE), and the
    // Redis connection retry `… - trying again in 3 seconds`.
    if m.ends_with(" is not a valid IPv4 address")
        || m.ends_with(" is not a valid IPv6 address")
        || m.ends_with(" - trying again in 3 seconds")
    {
        return Some(NetfilterEvent::Error { net: None, text: m });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{self, check};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    // Shapes: the format strings of mailcow-dockerized data/Dockerfiles/netfilter
    // (server.py 2017–2023, main.py and modules/IPTables.py, NFTables.py 2023–),
    // filled in with documentation addresses.
    const SAMPLES: &[&str] = &[
        "Banning 203.0.113.0/24 for 30 minutes",
        "Unbanning 203.0.113.0/24",
        "203.0.113.5 matched rule id 3 (warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: UGFzc3dvcmQ6)",
        "9 more attempts in the next 600 seconds until 203.0.113.5/32 is banned",
        "Added host/network 198.51.100.0/24 to denylist",
        "Address 192.0.2.5/32 is whitelisted by rule 192.0.2.0/24",
        "MAILCOW target is in position 2 in the ip6 forward table, restarting container to fix it...",
    ];

    #[test]
    fn bans_and_matches() {
        let cases: Vec<(&str, Value)> = vec![
            (
                SAMPLES[0],
                json!({"event": "ban", "net": "203.0.113.0/24", "minutes": 30}),
            ),
            (
                "Banning 2001:db8:1::/64 for 60 minutes",
                json!({"event": "ban", "net": "2001:db8:1::/64", "minutes": 60}),
            ),
            // 2017 server.py wrote the duration to stdout only.
            (
                "Banning 203.0.113.0/24",
                json!({"event": "ban", "net": "203.0.113.0/24"}),
            ),
            (SAMPLES[1], json!({"event": "unban", "net": "203.0.113.0/24"})),
            (
                "Unbanning 203.0.113.7/32 (not in local bans dict)",
                json!({"event": "unban", "net": "203.0.113.7/32", "untracked": true}),
            ),
            (
                "203.0.113.9/32 is not banned, skipping unban and deleting from queue (if any)",
                json!({"event": "unban_skipped", "net": "203.0.113.9/32"}),
            ),
            (
                "Safeguard: purging expired active ban 203.0.113.0/24 (expire=1700000000, now=1700000100.0, left=-100.0s)",
                json!({"event": "expired_ban_purged", "net": "203.0.113.0/24"}),
            ),
            (
                SAMPLES[2],
                json!({"event": "rule_match", "addr": "203.0.113.5", "rule_id": "3",
                    "line": "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"}),
            ),
            (
                "2001:db8::5 matched rule id 9 (2001:db8::5 \"GET /SOGo/so/ HTTP/1.1\" 403 1234 \"-\" \"curl/8.0\")",
                json!({"event": "rule_match", "addr": "2001:db8::5", "rule_id": "9",
                    "line": "2001:db8::5 \"GET /SOGo/so/ HTTP/1.1\" 403 1234 \"-\" \"curl/8.0\""}),
            ),
            // 2017 wording without the line.
            (
                "203.0.113.5 matched rule id 1",
                json!({"event": "rule_match", "addr": "203.0.113.5", "rule_id": "1"}),
            ),
            (
                SAMPLES[3],
                json!({"event": "attempts_left", "attempts": 9, "seconds": 600, "net": "203.0.113.5/32"}),
            ),
            (
                SAMPLES[4],
                json!({"event": "ban", "net": "198.51.100.0/24", "permanent": true}),
            ),
            (
                "Add host/network 198.51.100.7 to blacklist",
                json!({"event": "ban", "net": "198.51.100.7", "permanent": true}),
            ),
            (
                "Added host/network 2001:db8::/48 to blacklist",
                json!({"event": "ban", "net": "2001:db8::/48", "permanent": true}),
            ),
            (
                "Removed host/network 198.51.100.0/24 from denylist",
                json!({"event": "unban", "net": "198.51.100.0/24", "permanent": true}),
            ),
            (
                "Remove host/network 198.51.100.7 from blacklist",
                json!({"event": "unban", "net": "198.51.100.7", "permanent": true}),
            ),
            (
                SAMPLES[5],
                json!({"event": "allowlisted", "addr": "192.0.2.5/32", "rule": "192.0.2.0/24"}),
            ),
            (
                "Address 2001:db8::5/128 is allowlisted by rule 2001:db8::/32",
                json!({"event": "allowlisted", "addr": "2001:db8::5/128", "rule": "2001:db8::/32"}),
            ),
            (
                "Whitelist was changed, it has 3 entries",
                json!({"event": "list_changed", "list": "allowlist", "entries": 3}),
            ),
            (
                "Allowlist was changed, it has 0 entries",
                json!({"event": "list_changed", "list": "allowlist", "entries": 0}),
            ),
            (
                "Blacklist was changed, it has 12 entries",
                json!({"event": "list_changed", "list": "denylist", "entries": 12}),
            ),
            (
                "Denylist was changed, it has 1 entries",
                json!({"event": "list_changed", "list": "denylist", "entries": 1}),
            ),
        ];
        for (msg, want) in cases {
            check(parse, "netfilter-mailcow", msg, want);
        }
    }

    #[test]
    fn maintenance_lines() {
        let cases: Vec<(&str, Value)> = vec![
            ("Clearing all bans", json!({"event": "clear_all"})),
            (
                "Using NFTables backend",
                json!({"event": "backend", "backend": "NFTables"}),
            ),
            (
                "Using IPTables backend",
                json!({"event": "backend", "backend": "IPTables"}),
            ),
            (
                "Initializing mailcow netfilter chain",
                json!({"event": "startup", "text": "Initializing mailcow netfilter chain"}),
            ),
            (
                "Watching Redis channel F2B_CHANNEL",
                json!({"event": "startup", "text": "Watching Redis channel F2B_CHANNEL"}),
            ),
            (
                "Setting MAILCOW isolation",
                json!({"event": "startup", "text": "Setting MAILCOW isolation"}),
            ),
            (
                "Skipping MAILCOW isolation",
                json!({"event": "startup", "text": "Skipping MAILCOW isolation"}),
            ),
            (
                "Clear completed: ip6",
                json!({"event": "startup", "text": "Clear completed: ip6"}),
            ),
            (
                "MAILCOW ip chain created successfully.",
                json!({"event": "startup", "text": "MAILCOW ip chain created successfully."}),
            ),
            (
                "DEPRECATION: iptables-legacy is deprecated and will be removed in future releases. Please switch to nftables on your host to ensure complete compatibility.",
                json!({"event": "startup", "text": "DEPRECATION: iptables-legacy is deprecated and will be removed in future releases. Please switch to nftables on your host to ensure complete compatibility."}),
            ),
            (
                "Error in FORWARD chain: MAILCOW target not found, restarting container",
                json!({"event": "chain_error", "chain": "FORWARD"}),
            ),
            (
                "Error in INPUT chain order: MAILCOW on position 4, restarting container",
                json!({"event": "chain_error", "chain": "INPUT", "position": 4}),
            ),
            (
                "Error in chain order, restarting container",
                json!({"event": "chain_error"}),
            ),
            (
                "MAILCOW target not found in ip input table, restarting container to fix it...",
                json!({"event": "chain_error", "chain": "input", "family": "ip"}),
            ),
            (
                SAMPLES[6],
                json!({"event": "chain_error", "chain": "forward", "family": "ip6", "position": 2}),
            ),
            (
                "Added POSTROUTING rule for source network 172.22.1.0/24 to SNAT target 198.51.100.1",
                json!({"event": "snat", "source": "172.22.1.0/24", "target": "198.51.100.1"}),
            ),
            (
                "Remove rule for source network 172.22.1.0/24 to SNAT target 198.51.100.1 from POSTROUTING chain at position 3",
                json!({"event": "snat", "removed": true, "source": "172.22.1.0/24", "target": "198.51.100.1"}),
            ),
            (
                "Added ip6 nat POSTROUTING rule for source network fd4d:6169:6c63:6f77::/64 to 2001:db8::1/128",
                json!({"event": "snat", "source": "fd4d:6169:6c63:6f77::/64", "target": "2001:db8::1/128"}),
            ),
            (
                "Remove rule for source network 172.22.1.0/24 to SNAT target 198.51.100.1/32 from ip nat POSTROUTING chain, rule does not match configured parameters",
                json!({"event": "snat", "removed": true, "source": "172.22.1.0/24", "target": "198.51.100.1/32"}),
            ),
            (
                "Hostname mx.example.org timedout on resolve",
                json!({"event": "resolve_timeout", "hostname": "mx.example.org"}),
            ),
            (
                "Error loading F2B options: F2B_OPTIONS is not json. Exception: Expecting value: line 1 column 1 (char 0)",
                json!({"event": "error", "text": "Error loading F2B options: F2B_OPTIONS is not json. Exception: Expecting value: line 1 column 1 (char 0)"}),
            ),
            (
                "Error running SNAT4, retrying...",
                json!({"event": "error", "text": "Error running SNAT4, retrying..."}),
            ),
            (
                "Firewall unban failed for 203.0.113.0/24: [Errno 2] No such file or directory",
                json!({"event": "error", "net": "203.0.113.0/24", "text": "Firewall unban failed for 203.0.113.0/24: [Errno 2] No such file or directory"}),
            ),
            (
                "safe_unban failed for 203.0.113.0/24 (expired): boom",
                json!({"event": "error", "net": "203.0.113.0/24", "text": "safe_unban failed for 203.0.113.0/24 (expired): boom"}),
            ),
            (
                "autopurge tick failed, continuing: Connection refused",
                json!({"event": "error", "text": "autopurge tick failed, continuing: Connection refused"}),
            ),
            (
                "Error 111 connecting to 172.22.1.249:6379. Connection refused. - trying again in 3 seconds",
                json!({"event": "error", "text": "Error 111 connecting to 172.22.1.249:6379. Connection refused. - trying again in 3 seconds"}),
            ),
            (
                "DEBUG: Ban net: 203.0.113.0/24",
                json!({"event": "debug", "text": "Ban net: 203.0.113.0/24"}),
            ),
        ];
        for (msg, want) in cases {
            check(parse, "netfilter", msg, want);
        }
        assert!(parse("netfilter", SAMPLES[0]).unwrap().is_ban());
        assert!(parse("netfilter", SAMPLES[6]).unwrap().is_health_problem());
    }

    #[test]
    fn unknown_shapes() {
        for msg in [
            "",
            "  ",
            "Traceback (most recent call last):",
            "  File \"/app/main.py\", line 10, in <module>",
            "Banning someone for a while",
            "Banning 203.0.113.0/24 for ever minutes",
            "Unbanning the world",
            "hello matched rule id 3 (x)",
            "many more attempts in the next 600 seconds until 1.2.3.4 is banned",
            "Added host/network 1.2.3.4 to allowlist",
            "Greylist was changed, it has 3 entries",
            "Using the force backend",
            "Error in the matrix",
        ] {
            assert_eq!(parse("netfilter", msg), None, "{msg:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse("netfilter", &s);
        }

        #[test]
        fn truncations_and_mutations(i in 0usize..7, cut in 0usize..200, at in 0usize..200, c in any::<char>()) {
            for m in test_support::mutations(SAMPLES[i], cut, at, c) {
                let _ = parse("netfilter", &m);
            }
        }
    }
}
