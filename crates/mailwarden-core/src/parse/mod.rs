//! Message parsers: from a framed line (program + message text) to a typed
//! [`Event`].
//!
//! Dispatch is by program name first (the syslog tag, or the family a native
//! framing implies), then each family's parser looks at the message text. A
//! message whose shape a family parser does not know becomes an `unparsed`
//! record with that family's reason — never a guess.

pub mod amavis;
pub mod dovecot;
pub mod mariadb;
pub mod netfilter;
pub mod nginx;
pub mod postfix;
pub mod rspamd;
pub mod sogo;
pub mod text;

use serde::Serialize;

use crate::event::{Event, EventKind, Unparsed, UnparsedReason};
use crate::framing::Framed;

/// The software family a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Postfix.
    Postfix,
    /// Dovecot.
    Dovecot,
    /// Rspamd.
    Rspamd,
    /// amavisd-new.
    Amavis,
    /// SOGo.
    Sogo,
    /// nginx.
    Nginx,
    /// Mailcow netfilter.
    Netfilter,
    /// MariaDB / MySQL server.
    Mariadb,
}

impl Family {
    /// The `unparsed` reason for a message of this family whose shape is unknown.
    pub fn unrecognized(self) -> UnparsedReason {
        match self {
            Family::Postfix => UnparsedReason::UnrecognizedPostfix,
            Family::Dovecot => UnparsedReason::UnrecognizedDovecot,
            Family::Rspamd => UnparsedReason::UnrecognizedRspamd,
            Family::Amavis => UnparsedReason::UnrecognizedAmavis,
            Family::Sogo => UnparsedReason::UnrecognizedSogo,
            Family::Nginx => UnparsedReason::UnrecognizedNginx,
            Family::Netfilter => UnparsedReason::UnrecognizedNetfilter,
            Family::Mariadb => UnparsedReason::UnrecognizedMariadb,
        }
    }

    /// Parses a family name as given on the command line (`--program` hints).
    pub fn from_name(name: &str) -> Option<Family> {
        family_of_program(name).or(match name {
            "postfix" => Some(Family::Postfix),
            _ => None,
        })
    }
}

/// Daemon names that identify Postfix when they end a `prefix/daemon` tag.
const POSTFIX_DAEMONS: &[&str] = &[
    "smtpd",
    "smtp",
    "lmtp",
    "postscreen",
    "dnsblog",
    "tlsproxy",
    "cleanup",
    "qmgr",
    "oqmgr",
    "pickup",
    "local",
    "virtual",
    "pipe",
    "error",
    "retry",
    "discard",
    "bounce",
    "defer",
    "trace",
    "anvil",
    "scache",
    "verify",
    "flush",
    "proxymap",
    "proxywrite",
    "showq",
    "postlogd",
    "master",
    "postfix-script",
    "postsuper",
    "postdrop",
    "sendmail",
    "postqueue",
    "postmap",
    "postalias",
    "postconf",
    "postmulti",
    "postlog",
    "trivial-rewrite",
    "tlsmgr",
    "spawn",
    "qmqpd",
    "postkick",
    "postfix",
    "smtp-sink",
    "smtp-source",
    "cleanup-ng",
];

/// The family of a program name (syslog tag), or `None` when mailwarden does
/// not parse that program.
pub fn family_of_program(program: &str) -> Option<Family> {
    if let Some(slash) = program.rfind('/') {
        let daemon = &program[slash + 1..];
        let first = &program[..program.find('/').unwrap_or(slash)];
        if first.starts_with("postfix") || POSTFIX_DAEMONS.contains(&daemon) {
            return Some(Family::Postfix);
        }
        return None;
    }
    Some(match program {
        "postfix" | "postfix-script" | "postsuper" | "postdrop" | "sendmail" | "postqueue" | "postmap"
        | "postmulti" => Family::Postfix,
        "dovecot" | "imap-login" | "pop3-login" | "submission-login" | "managesieve-login" | "doveadm" => {
            Family::Dovecot
        }
        "rspamd" | "rspamd_proxy" => Family::Rspamd,
        "amavis" | "amavisd" | "amavisd-new" => Family::Amavis,
        "sogod" | "sogo" | "SOGo" => Family::Sogo,
        "nginx" | "php-fpm" => Family::Nginx,
        "netfilter" | "netfilter-mailcow" => Family::Netfilter,
        "mysqld" | "mariadbd" | "mariadb" | "mysql" => Family::Mariadb,
        _ => {
            if program.starts_with("postfix") {
                Family::Postfix
            } else if program.starts_with("dovecot") {
                Family::Dovecot
            } else {
                return None;
            }
        }
    })
}

/// Parses a framed line into an event. Never fails: lines that cannot be typed
/// become `unparsed` events carrying the reason.
pub fn parse_framed<'b>(f: &'b Framed<'_>) -> Event<'b> {
    let program: &str = &f.program;
    let message: &str = &f.message;
    let family = f.family.or_else(|| family_of_program(program));
    let kind = match family {
        None => unparsed(UnparsedReason::UnknownProgram),
        Some(fam) => parse_family(fam, program, message).unwrap_or_else(|| unparsed(fam.unrecognized())),
    };
    Event {
        ts: f.ts,
        host: f.host.as_deref(),
        program,
        pid: f.pid,
        severity: f.severity,
        kind,
    }
}

/// Frames and parses one line and hands the event to `f`. The event borrows
/// from the line, so it is only available inside the callback.
pub fn with_event<R>(framer: &mut crate::framing::Framer, line: &str, f: impl FnOnce(&Event<'_>) -> R) -> R {
    match framer.frame(line) {
        Ok(framed) => f(&parse_framed(&framed)),
        Err(reason) => f(&unparsed_event(reason)),
    }
}

/// An `unparsed` event for a line that could not be framed.
pub fn unparsed_event(reason: UnparsedReason) -> Event<'static> {
    Event {
        ts: None,
        host: None,
        program: "",
        pid: None,
        severity: None,
        kind: unparsed(reason),
    }
}

fn parse_family<'b>(fam: Family, program: &'b str, message: &'b str) -> Option<EventKind<'b>> {
    Some(match fam {
        Family::Postfix => EventKind::Postfix(postfix::parse(program, message)?),
        Family::Dovecot => EventKind::Dovecot(dovecot::parse(program, message)?),
        Family::Rspamd => EventKind::Rspamd(rspamd::parse(program, message)?),
        Family::Amavis => EventKind::Amavis(amavis::parse(program, message)?),
        Family::Sogo => EventKind::Sogo(sogo::parse(program, message)?),
        Family::Nginx => EventKind::Nginx(nginx::parse(program, message)?),
        Family::Netfilter => EventKind::Netfilter(netfilter::parse(program, message)?),
        Family::Mariadb => EventKind::Mariadb(mariadb::parse(program, message)?),
    })
}

fn unparsed<'b>(reason: UnparsedReason) -> EventKind<'b> {
    EventKind::Unparsed(Unparsed { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let cases = [
            ("postfix/smtpd", Some(Family::Postfix)),
            ("postfix/submission/smtpd", Some(Family::Postfix)),
            ("postfix/submission-haproxy/smtpd", Some(Family::Postfix)),
            ("postfix-out/smtp", Some(Family::Postfix)),
            ("haproxy/postscreen", Some(Family::Postfix)),
            ("postfix/10025/smtpd", Some(Family::Postfix)),
            ("dovecot", Some(Family::Dovecot)),
            ("rspamd", Some(Family::Rspamd)),
            ("amavis", Some(Family::Amavis)),
            ("sogod", Some(Family::Sogo)),
            ("mysqld", Some(Family::Mariadb)),
            ("kernel", None),
            ("CRON", None),
            ("systemd/foo", None),
        ];
        for (p, want) in cases {
            assert_eq!(family_of_program(p), want, "{p}");
        }
    }
}
