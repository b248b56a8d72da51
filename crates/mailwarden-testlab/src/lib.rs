//! # mailwarden-testlab
//!
//! A throw-away but *real* mail system for end-to-end tests: [`MailLab::start`]
//! creates a temporary directory and starts, all bound to 127.0.0.1 on free
//! high ports,
//!
//! * a private **Postfix mail server** instance (`postfix -c DIR`) for the
//!   domain `lab.test`, with an `smtp` listener (inbound mail, no AUTH) and a
//!   `submission` listener (SASL via Dovecot required); local mail goes to
//!   Dovecot over LMTP, `remote.test` is relayed to the sink and
//!   `deferred.test` to a closed port;
//! * a private **Postfix sink** instance that accepts `remote.test` and
//!   discards it;
//! * a private **Dovecot** with IMAP, LMTP and the SASL auth socket, users
//!   from [`USERS`].
//!
//! Each instance writes its own log file ([`MailLab::log_paths`]), which is
//! what mailwarden parses. [`Scenario`] sends scripted traffic with swaks and
//! records what each step should leave in the logs as [`Expectation`]s.
//! Dropping the lab stops every process and removes the directory, also
//! when a test panics; labs left behind by killed test runs are cleaned up
//! by the next [`MailLab::start`].
//!
//! [`DnsServer`] is a private authoritative DNS server (Knot DNS) on a free
//! loopback port serving test [`DnsZone`]s over UDP and TCP, for SPF, DKIM
//! and DMARC checks without the internet; it needs the Debian package `knot`.
//! [`HttpsServer`] serves fixed HTTPS responses per SNI name on a free
//! loopback port, with certificates from a test CA made by `rcgen`.
//!
//! Requirements: root, and the Debian packages `postfix`, `dovecot-core`,
//! `dovecot-imapd`, `dovecot-lmtpd` and `swaks`. The system's own Postfix
//! and Dovecot services and their configuration are never touched. A missing
//! requirement is a [`LabError`] with a fix hint, never a silent skip.
//!
//! ```no_run
//! use mailwarden_testlab::{LabOptions, MailLab, Scenario};
//!
//! let lab = MailLab::start(LabOptions::default())?;
//! let expectations = Scenario::run_standard(&lab)?;
//! lab.wait_idle()?;
//! let log = std::fs::read_to_string(lab.mail_log()).unwrap();
//! assert!(log.contains("Relay access denied"));
//! # Ok::<(), mailwarden_testlab::LabError>(())
//! ```

mod dkim;
mod dns;
mod dovecot;
mod error;
pub mod https;
mod lab;
pub mod podman;
mod postfix;
mod redis;
mod rsyslog;
mod scenario;
mod swaks;
mod sys;

pub use dkim::LabSigner;
pub use dns::{DnsFront, DnsServer, DnsZone, SilentName, master_file_name};
pub use error::LabError;
pub use https::{HttpsRequest, HttpsRoute, HttpsServer, HttpsSite, SiteCertificate};
pub use lab::{LabOptions, LabPorts, LogKind, LogPaths, MailLab, Service};
pub use redis::RedisServer;
pub use rsyslog::{Rsyslog, rsyslogd_path};
pub use scenario::{
    CLIENT_ATTACKER, CLIENT_EXTERNAL_MX, CLIENT_PARTNER, CLIENT_RELAY_PROBE, CLIENT_SHOP, CLIENT_SPOOFER,
    CLIENT_USERS, Expectation, Message, Outcome, RecipientExpectation, Scenario, ScenarioKind,
};
pub use swaks::{END_OF_DATA, SmtpExchange, SwaksRun};

/// The mail server's domain (virtual mailbox domain delivered to Dovecot).
pub const LOCAL_DOMAIN: &str = "lab.test";
/// The domain relayed to the sink instance.
pub const REMOTE_DOMAIN: &str = "remote.test";
/// The domain routed to a closed port, so its mail is deferred.
pub const DEFERRED_DOMAIN: &str = "deferred.test";
/// The mail server's `myhostname`.
pub const MAIL_HOSTNAME: &str = "mail.lab.test";
/// The sink's `myhostname`.
pub const SINK_HOSTNAME: &str = "mx.remote.test";

/// A mailbox user of the lab (Dovecot passwd-file entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabUser {
    /// Login name and address, e.g. `alice@lab.test`.
    pub address: &'static str,
    /// Cleartext password.
    pub password: &'static str,
}

/// The lab's mailbox users. Every other `@lab.test` address is unknown.
pub const USERS: &[LabUser] = &[
    LabUser {
        address: "alice@lab.test",
        password: "Alice-Lab-Pass-1",
    },
    LabUser {
        address: "bob@lab.test",
        password: "Bob-Lab-Pass-2",
    },
    LabUser {
        address: "carol@lab.test",
        password: "Carol-Lab-Pass-3",
    },
    LabUser {
        address: "dave@lab.test",
        password: "Dave-Lab-Pass-4",
    },
];
