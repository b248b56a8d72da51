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
#[cfg(test)]
pub(crate) mod test_support;
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

/// Every family, in report order.
pub const FAMILIES: [Family; 8] = [
    Family::Postfix,
    Family::Dovecot,
    Family::Rspamd,
    Family::Amavis,
    Family::Sogo,
    Family::Nginx,
    Family::Netfilter,
    Family::Mariadb,
];

impl Family {
    /// The lower-case name used in JSON and reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Postfix => "postfix",
            Family::Dovecot => "dovecot",
            Family::Rspamd => "rspamd",
            Family::Amavis => "amavis",
            Family::Sogo => "sogo",
            Family::Nginx => "nginx",
            Family::Netfilter => "netfilter",
            Family::Mariadb => "mariadb",
        }
    }

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
    if program.starts_with("postfix/") {
        // The common case, decided without searching.
        return Some(Family::Postfix);
    }
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
        Family::Rspamd => EventKind::Rspamd(Box::new(rspamd::parse(program, message)?)),
        Family::Amavis => EventKind::Amavis(Box::new(amavis::parse(program, message)?)),
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
    use std::collections::HashSet;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{IgnoredAny, MapAccess, Visitor};

    use super::*;
    use crate::framing::{Format, Framer, FramerConfig};
    use crate::time::{TimeContext, Timestamp};

    /// A JSON object whose deserialization fails on a repeated key.
    struct UniqueKeys;

    impl<'de> Deserialize<'de> for UniqueKeys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UniqueKeys;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<UniqueKeys, A::Error> {
                    let mut seen = HashSet::new();
                    while let Some(k) = m.next_key::<String>()? {
                        if !seen.insert(k.clone()) {
                            return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                        }
                        m.next_value::<IgnoredAny>()?;
                    }
                    Ok(UniqueKeys)
                }
            }
            d.deserialize_map(V)
        }
    }

    #[test]
    fn event_json_has_no_duplicate_keys() {
        // Family fields are flattened beside the envelope's (`kind`, `pid`,
        // `host`, `program`…); a clash would silently lose one value.
        let lines = [
            "Mar 14 00:00:31 mx postfix/bounce[9]: 17CCA8044: sender non-delivery notification: ADD2F8052",
            "Mar 14 00:00:31 mx postfix/submission/smtpd[9]: 4PbC4x469Jz3tBr: client=a[192.0.2.1], sasl_method=PLAIN, sasl_username=u",
            "Mar 14 00:00:31 mx postfix/smtp[9]: 4PbC4x469Jz3tBr: to=<a@b>, orig_to=<c@d>, relay=x[192.0.2.2]:25, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (250 ok queued as X1)",
            "Mar 14 00:00:31 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b> to=<x@y> proto=ESMTP helo=<h>",
            "Mar 14 00:00:31 mx dovecot[9]: imap-login: Login: user=<a@b>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=5, TLS, session=<x>",
            "Mar 14 00:00:31 mx dovecot[9]: imap-login: Disconnected (auth failed, 3 attempts in 15 secs): user=<a@b>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, TLS, session=<x>",
            "Mar 14 00:00:31 mx dovecot[9]: auth: passwd-file(a@b,192.0.2.1,<x>): Password mismatch",
            "Mar 14 00:00:31 mx dovecot[9]: lmtp(a@b)<5><x>: msgid=<m@x>: saved mail to INBOX",
            "Mar 14 00:00:31 mx dovecot[9]: master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, lmtp",
            "May 15 02:05:03 mail rspamd[27538]: <8ae27d>; proxy; rspamd_task_write_log: id: <m@x>, qid: <A785B308622AB>, ip: 10.154.200.17, user: a@b, from: <a@b>, (default: F (no action): [-0.64/20.00] [BAYES_HAM(-3.00){100.00%;}]), len: 2348, time: 750.636ms real, 5.680ms virtual, dns req: 47, digest: <b1035f4fb07162ba88053d9e38df9c93>, rcpts: <j@x>, mime_rcpts: <j@x>",
            "2023-03-14T00:08:35.940347+01:00 helga amavis[237978]: (237978-11) Passed CLEAN {RelayedInbound}, [185.31.160.120]:41695 [45.141.85.146] ESMTP/ESMTP <a@b> -> <c@d>, Queue-ID: 4PbC4x469Jz3tBr, Message-ID: <m@x>, mail_id: VQ, Hits: 2.9, size: 175061, queued_as: 4PbC4z6W5Qz3tG3, 2131 ms",
            "Mar 14 00:00:31 mx sogod[9]: SOGoRootPage successful login from '192.0.2.1' for user 'a@b' - expire = -1  grace = -1",
            "Mar 14 00:00:31 mx nginx[9]: 192.0.2.1 - a [14/Mar/2023:00:00:31 +0100] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"",
            "2023/03/14 00:00:31 [error] 12#12: *1 open() \"/x\" failed, client: 192.0.2.1, server: mx, request: \"GET /x HTTP/1.1\", host: \"mx\"",
            "2023-03-14  0:00:31 0 [Note] Starting MariaDB 10.11.6-MariaDB source revision x as process 1",
            r#"{"time":1678748431,"priority":"crit","program":"netfilter","message":"Banning 192.0.2.7/32 for 30 minutes"}"#,
        ];
        let mut framer = Framer::new(FramerConfig {
            format: Format::Auto,
            program_hint: None,
            time: TimeContext::utc(Timestamp::from_unix_seconds(1_700_000_000)),
        });
        for line in lines {
            with_event(&mut framer, line, |ev| {
                assert!(!ev.kind.is_unparsed(), "{line}: {:?}", ev.kind);
                let json = serde_json::to_string(ev).unwrap();
                if let Err(e) = serde_json::from_str::<UniqueKeys>(&json) {
                    panic!("{e} in {json}");
                }
            });
        }
    }

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
