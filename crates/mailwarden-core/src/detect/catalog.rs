//! The built-in rules as data: stable id, title, severity, ATT&CK techniques,
//! what each one looks at, why, and its tunable parameters with defaults.
//!
//! Ids are stable and never reused: alerts, suppressions and user overrides
//! refer to them. A parameter is addressed as `RULE.PARAM`
//! (`auth-bruteforce-ip.failures`); every rule has a `quiet` parameter, the
//! seconds without a new matching event after which an alert episode closes
//! (a later match opens a new alert).
//!
//! Default thresholds follow what the field uses (see DESIGN.md, C5 facts):
//! Mailcow's netfilter bans after 10 failures in 600 s; CrowdSec's slow SASL
//! scenario looks over hours and reacts to honeypot user names at once.
//! Nobody publishes numbers for outbound volume per account; ours are set so
//! that a person at a keyboard stays well below them (see each rationale).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad an alert is (Sigma's levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Worth knowing; no action expected.
    Informational,
    /// Probably noise of the internet, or a weak signal.
    Low,
    /// Look at it today.
    Medium,
    /// Look at it now: an attack in progress or an account misused.
    High,
    /// Mail is being abused through us, or the server is broken.
    Critical,
}

impl AlertSeverity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Informational => "informational",
            AlertSeverity::Low => "low",
            AlertSeverity::Medium => "medium",
            AlertSeverity::High => "high",
            AlertSeverity::Critical => "critical",
        }
    }
}

impl fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit of a parameter, for display and validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A number of events, recipients, addresses …
    Count,
    /// Seconds of event time.
    Seconds,
    /// A percentage (0–100 and more for growth).
    Percent,
    /// A multiplier.
    Factor,
    /// Days of event time.
    Days,
}

impl Unit {
    /// The short suffix shown after a value.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Count => "",
            Unit::Seconds => " s",
            Unit::Percent => " %",
            Unit::Factor => "x",
            Unit::Days => " d",
        }
    }
}

/// One tunable parameter of a rule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ParamInfo {
    /// Its name inside the rule (`failures`, `window`, …).
    pub name: &'static str,
    /// The default value.
    pub default: i64,
    /// Its unit.
    pub unit: Unit,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
    /// What it means.
    pub doc: &'static str,
}

/// A built-in rule's description.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RuleInfo {
    /// Stable id, e.g. `auth-bruteforce-ip`.
    pub id: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// Severity of its alerts.
    pub severity: AlertSeverity,
    /// MITRE ATT&CK technique ids, when one fits.
    pub attack: &'static [&'static str],
    /// What the rule looks at and when it fires.
    pub description: &'static str,
    /// Why this matters and where the defaults come from.
    pub rationale: &'static str,
    /// The logs it needs.
    pub needs: &'static str,
    /// What an alert's `count` counts (`failed logins`, `recipients` …).
    pub counts: &'static str,
    /// Tunable parameters.
    pub params: &'static [ParamInfo],
}

impl RuleInfo {
    /// The default of a parameter, if the rule has it.
    pub fn param(&self, name: &str) -> Option<&ParamInfo> {
        self.params.iter().find(|p| p.name == name)
    }
}

const fn p(name: &'static str, default: i64, unit: Unit, min: i64, max: i64, doc: &'static str) -> ParamInfo {
    ParamInfo {
        name,
        default,
        unit,
        min,
        max,
        doc,
    }
}

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
const MAX_SECS: i64 = 366 * DAY;
const MAX_COUNT: i64 = 10_000_000;

const fn window(default: i64) -> ParamInfo {
    p(
        "window",
        default,
        Unit::Seconds,
        1,
        MAX_SECS,
        "length of the sliding window (event time)",
    )
}

const fn quiet(default: i64) -> ParamInfo {
    p(
        "quiet",
        default,
        Unit::Seconds,
        1,
        MAX_SECS,
        "an alert closes after this long without a new matching event",
    )
}

const fn learn(default: i64) -> ParamInfo {
    p(
        "learn",
        default,
        Unit::Seconds,
        0,
        MAX_SECS,
        "learning period: nothing is new before this much history was seen",
    )
}

/// Indexes of the built-in rules in [`RULES`] (the engine's rule numbers).
pub(crate) mod ids {
    pub const OUTBOUND_BURST_ACCOUNT: usize = 0;
    pub const OUTBOUND_BURST_SENDER: usize = 1;
    pub const OUTBOUND_RATE_CHANGE: usize = 2;
    pub const OUTBOUND_NEW_SENDER: usize = 3;
    pub const SENDER_NOT_MAILBOX: usize = 4;
    pub const RECIPIENT_DOMAINS_SPREAD: usize = 5;
    pub const BOUNCE_RATIO: usize = 6;
    pub const BLOCKLISTED_OUR_IP: usize = 7;
    pub const OPEN_RELAY: usize = 8;
    pub const AUTH_BRUTEFORCE_IP: usize = 9;
    pub const AUTH_SLOW_GUESSING: usize = 10;
    pub const AUTH_SPRAYING_IP: usize = 11;
    pub const AUTH_DISTRIBUTED_ACCOUNT: usize = 12;
    pub const AUTH_HONEYPOT_USER: usize = 13;
    pub const AUTH_UNKNOWN_USER: usize = 14;
    pub const AUTH_SUCCESS_AFTER_FAILURES: usize = 15;
    pub const ACCOUNT_NEW_NETWORK: usize = 16;
    pub const RELAY_ATTEMPT: usize = 17;
    pub const DEFERRED_QUEUE_GROWTH: usize = 18;
    pub const SPOOFED_UNAUTH_WAVE: usize = 19;
    pub const DMARC_REJECT_WAVE: usize = 20;
    pub const CRASH_LOOP: usize = 21;
    pub const MARIADB_VERSION_MISMATCH: usize = 22;
    pub const SOURCE_SILENT: usize = 23;
    pub const OWN_DOMAIN_UNAUTHENTICATED: usize = 24;
}

/// Every built-in rule, in a stable order (the engine numbers rules by it).
pub static RULES: [RuleInfo; 25] = [
    RuleInfo {
        id: "outbound-burst-account",
        title: "Outbound burst from one authenticated account",
        severity: AlertSeverity::High,
        attack: &["T1078", "T1566"],
        description: "Recipients of mail submitted by one SASL user (Postfix `sasl_username=`, counted \
                      from qmgr's `nrcpt=` when the message is queued) reach `recipients` within `window`.",
        rationale: "A stolen mailbox password is mostly used to send spam through the server, where the \
                    mail inherits its SPF/DKIM reputation. People write to a few dozen recipients an hour; \
                    200 in an hour is a mailing or a spam run. Neither Mailcow's netfilter nor fail2ban or \
                    CrowdSec watch outbound volume per account.",
        needs: "Postfix (smtpd client= with sasl_username, qmgr)",
        counts: "recipients",
        params: &[
            p(
                "recipients",
                200,
                Unit::Count,
                1,
                MAX_COUNT,
                "recipients within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "outbound-burst-sender",
        title: "Outbound burst under one envelope sender",
        severity: AlertSeverity::High,
        attack: &["T1566"],
        description: "Recipients of mail we send (authenticated submissions and local `sendmail`/pickup) \
                      with one envelope sender reach `recipients` within `window`.",
        rationale: "Catches bursts that no SASL user explains: a compromised web application calling \
                    sendmail, or many accounts sending as one address. Same numbers as the per-account burst.",
        needs: "Postfix (smtpd client= with sasl_username or pickup, qmgr)",
        counts: "recipients",
        params: &[
            p(
                "recipients",
                200,
                Unit::Count,
                1,
                MAX_COUNT,
                "recipients within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "outbound-rate-change",
        title: "Account sends far more than usual for this hour",
        severity: AlertSeverity::Medium,
        attack: &["T1078"],
        description: "Recipients one SASL user sent to in the current hour exceed `factor` times the \
                      median of the same hour of day over the last `history` days (days without mail count \
                      as zero), and at least `floor`. Needs `min_history` days of the account's history.",
        rationale: "A fixed threshold misses an account that normally sends 5 mails an hour and now sends \
                    150; the median of the same hour resists single busy days. The floor keeps quiet \
                    accounts from alerting on a handful of mails.",
        needs: "Postfix (smtpd client= with sasl_username, qmgr) over at least min_history days",
        counts: "recipients in the hour",
        params: &[
            p(
                "floor",
                50,
                Unit::Count,
                1,
                MAX_COUNT,
                "never alert below this many recipients in the hour",
            ),
            p(
                "factor",
                5,
                Unit::Factor,
                1,
                1000,
                "times the median of the same hour",
            ),
            p(
                "history",
                14,
                Unit::Days,
                1,
                14,
                "days of history the median is taken over",
            ),
            p(
                "min_history",
                7,
                Unit::Days,
                1,
                14,
                "days of history needed before the rule judges",
            ),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "outbound-new-sender",
        title: "First mail under a new envelope sender",
        severity: AlertSeverity::Low,
        attack: &["T1566"],
        description: "An authenticated or local submission uses an envelope sender of our domains not \
                      seen in our outbound mail before, after `learn` seconds of history (senders of other \
                      domains are mail users forward through sendmail).",
        rationale: "The incident this product comes from: spam left as `xyovt@company.com`, an address \
                    nobody had ever sent from. A new sender is often legitimate (a new colleague), hence low.",
        needs: "Postfix (smtpd client= with sasl_username or pickup, qmgr)",
        counts: "messages",
        params: &[learn(WEEK), quiet(DAY)],
    },
    RuleInfo {
        id: "sender-not-mailbox",
        title: "Mail leaves under an address of ours that is no mailbox or alias",
        severity: AlertSeverity::High,
        attack: &["T1566", "T1656"],
        description: "An authenticated or local submission (or a logged `From:` header of one) uses an \
                      address in one of our domains that the directory does not know. Needs a directory \
                      (`--directory`); without one the rule stays silent.",
        rationale: "Mailcow lets catch-all targets and `sender_acl` entries send as any address of a \
                    domain: a password for one mailbox can send as `xyovt@company.com`. Receivers see a \
                    valid DKIM signature of our domain.",
        needs: "Postfix (submissions) and an address directory",
        counts: "messages",
        params: &[quiet(DAY)],
    },
    RuleInfo {
        id: "recipient-domains-spread",
        title: "One account mails many different domains",
        severity: AlertSeverity::High,
        attack: &["T1566"],
        description: "Distinct recipient domains (outside ours) of messages one SASL user sent reach \
                      `domains` within `window` (from the stitched message records).",
        rationale: "Spam runs address harvested lists across thousands of domains; people write to a \
                    handful of domains an hour. Counts distinct domains, so one big mailing to one \
                    partner does not fire.",
        needs: "Postfix (submissions and deliveries)",
        counts: "distinct recipient domains",
        params: &[
            p(
                "domains",
                30,
                Unit::Count,
                1,
                100_000,
                "distinct recipient domains within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "bounce-ratio",
        title: "High bounce/deferral ratio for an account",
        severity: AlertSeverity::Medium,
        attack: &["T1566"],
        description: "Of the external recipients of one SASL user's messages within `window`, at least \
                      `ratio` percent ended bounced, expired or still deferred, with at least `min_recipients`.",
        rationale: "Spam to harvested or guessed addresses bounces (unknown user) and gets deferred \
                    (greylisting, reputation); normal mail mostly arrives.",
        needs: "Postfix (submissions and deliveries)",
        counts: "failed recipients",
        params: &[
            p(
                "min_recipients",
                20,
                Unit::Count,
                1,
                MAX_COUNT,
                "external recipients needed before judging",
            ),
            p("ratio", 30, Unit::Percent, 1, 100, "failed recipients, percent"),
            window(6 * 3600),
            quiet(6 * 3600),
        ],
    },
    RuleInfo {
        id: "blocklisted-our-ip",
        title: "Remote servers reject us citing a blocklist",
        severity: AlertSeverity::High,
        attack: &[],
        description: "An outbound delivery is deferred or bounced with a reply that cites a DNS blocklist \
                      or a block list of a large provider (Spamhaus, Spamcop, Barracuda, UCEPROTECT, \
                      Microsoft S3150 …). Grouped by the list named.",
        rationale: "Our address on a blocklist means mail we send is being refused — usually because \
                    spam already left through us. Often the first visible sign of a compromised account.",
        needs: "Postfix (smtp delivery lines)",
        counts: "refused deliveries",
        params: &[quiet(DAY)],
    },
    RuleInfo {
        id: "open-relay",
        title: "Unauthenticated mail relayed to other domains",
        severity: AlertSeverity::Critical,
        attack: &["T1496"],
        description: "A message accepted over SMTP without authentication from a client other than \
                      127.0.0.1/::1 and the trusted relays is delivered (or attempted) to a domain that is not ours, not as \
                      alias forwarding. A sender in our own domains is named in the message.",
        rationale: "Either `mynetworks` covers an address it should not (a Docker network with a \
                    compromised container, a too-wide range) or the server is an open relay. The incident \
                    pattern: a web shell in a container sends through Postfix without logging in.",
        needs: "Postfix (smtpd client=, deliveries)",
        counts: "relayed messages",
        params: &[quiet(DAY)],
    },
    RuleInfo {
        id: "auth-bruteforce-ip",
        title: "Password brute force from one address",
        severity: AlertSeverity::High,
        attack: &["T1110.001"],
        description: "Failed logins (Postfix SASL, Dovecot IMAP/POP3/submission/ManageSieve, SOGo) from \
                      one client address reach `failures` within `window`. Dovecot's `N attempts` counts N.",
        rationale: "Parity with Mailcow's netfilter, which bans after 10 failures in 600 s (fail2ban's \
                    usual 5 in 600 s is stricter). An alert here means the ban should have happened.",
        needs: "Postfix, Dovecot or SOGo logins",
        counts: "failed logins",
        params: &[
            p(
                "failures",
                10,
                Unit::Count,
                1,
                MAX_COUNT,
                "failed attempts within the window",
            ),
            window(600),
            quiet(600),
        ],
    },
    RuleInfo {
        id: "auth-slow-guessing",
        title: "Slow password guessing from one address",
        severity: AlertSeverity::Medium,
        attack: &["T1110.001"],
        description: "Failed logins from one client address reach `failures` within `window` (a day), \
                      from addresses that never tripped the fast brute-force rule in that time.",
        rationale: "Attackers pace themselves below fail2ban/netfilter thresholds (one try every few \
                    minutes); CrowdSec's slow SASL scenario looks over two hours. 15 a day is far above \
                    a user with an old password on one phone, which shows as a few failures an hour only \
                    while the phone polls — raise it if such phones are common.",
        needs: "Postfix, Dovecot or SOGo logins",
        counts: "failed logins",
        params: &[
            p(
                "failures",
                15,
                Unit::Count,
                1,
                MAX_COUNT,
                "failed attempts within the window",
            ),
            window(DAY),
            quiet(DAY),
        ],
    },
    RuleInfo {
        id: "auth-spraying-ip",
        title: "Password spraying: one address tries many accounts",
        severity: AlertSeverity::High,
        attack: &["T1110.003"],
        description: "One client address fails to log in as `users` different user names within `window`.",
        rationale: "Spraying tries one or two common passwords against many accounts, staying under \
                    per-account lockouts. A person mistypes their own name, not five others.",
        needs: "Dovecot, SOGo or Postfix (with sasl_username) logins",
        counts: "distinct user names",
        params: &[
            p(
                "users",
                5,
                Unit::Count,
                2,
                100_000,
                "distinct user names within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "auth-distributed-account",
        title: "Distributed guessing: one account fails from many addresses",
        severity: AlertSeverity::High,
        attack: &["T1110.001", "T1110.004"],
        description: "Logins as one user name fail from `ips` different client addresses within `window`.",
        rationale: "Botnets spread guesses for one account over many addresses so that no per-address \
                    ban triggers. A user has a phone and a laptop, not five networks in an hour.",
        needs: "Dovecot, SOGo or Postfix (with sasl_username) logins",
        counts: "distinct client addresses",
        params: &[
            p(
                "ips",
                5,
                Unit::Count,
                2,
                100_000,
                "distinct client addresses within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "auth-honeypot-user",
        title: "Login attempt with a honeypot user name",
        severity: AlertSeverity::High,
        attack: &["T1110.003"],
        description: "A login (failed or not) uses one of the configured honeypot names (`admin`, `root`, \
                      `test` … or a list of your own; an entry with `@` must match the whole address). \
                      Fires at the first attempt.",
        rationale: "No person logs in as `admin` on a mail server whose logins are addresses; only \
                    scanners do. CrowdSec bans on honeypot user names at once.",
        needs: "Dovecot, SOGo or Postfix (with sasl_username) logins",
        counts: "attempts",
        params: &[quiet(DAY)],
    },
    RuleInfo {
        id: "auth-unknown-user",
        title: "Logins for user names that do not exist",
        severity: AlertSeverity::Medium,
        attack: &["T1110.003"],
        description: "The auth service answers `unknown user` for `users` different names from one client \
                      address within `window`.",
        rationale: "Guessing account names is the step before spraying; a person mistypes their own \
                    name once.",
        needs: "Dovecot auth lines (auth_verbose)",
        counts: "distinct unknown user names",
        params: &[
            p(
                "users",
                3,
                Unit::Count,
                1,
                100_000,
                "distinct unknown user names within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "auth-success-after-failures",
        title: "Successful login after repeated failures from the same address",
        severity: AlertSeverity::High,
        attack: &["T1110", "T1078"],
        description: "A successful login (Dovecot, SOGo, or an authenticated Postfix submission) from an \
                      address that failed `failures` times within the `window` before it.",
        rationale: "The guessing worked: the account is now in someone else's hands. Also fires when a \
                    user fixes a wrong password on a device after many retries — check the account.",
        needs: "Postfix, Dovecot or SOGo logins",
        counts: "failures before the login",
        params: &[
            p(
                "failures",
                5,
                Unit::Count,
                1,
                MAX_COUNT,
                "failures before the success",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "account-new-network",
        title: "Account logs in from a network it never used",
        severity: AlertSeverity::Medium,
        attack: &["T1078"],
        description: "A successful login of an account known for at least `learn` seconds comes from a \
                      network (IPv4 /24, IPv6 /48) not seen for that account before.",
        rationale: "A stolen password is used from the attacker's infrastructure. Mobile users roam, so \
                    this is a medium signal; combined with an outbound burst it is decisive.",
        needs: "Dovecot, SOGo or Postfix logins",
        counts: "logins from new networks",
        params: &[learn(WEEK), quiet(DAY)],
    },
    RuleInfo {
        id: "relay-attempt",
        title: "Relay attempts from one address",
        severity: AlertSeverity::Low,
        attack: &["T1496"],
        description: "Postfix answers `Relay access denied` to one client address `attempts` times within \
                      `window`.",
        rationale: "Open-relay scanners probe every MX; the server refused, so this is low — but a \
                    client that keeps trying is testing for a mistake, and a refused relay from an \
                    internal address means a local process is trying to send.",
        needs: "Postfix (smtpd reject lines)",
        counts: "refused relay attempts",
        params: &[
            p(
                "attempts",
                5,
                Unit::Count,
                1,
                MAX_COUNT,
                "refused relay attempts within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "deferred-queue-growth",
        title: "The deferred queue is growing",
        severity: AlertSeverity::Medium,
        attack: &[],
        description: "The number of messages with a deferred delivery that have not left the queue \
                      (estimated from `status=deferred` and `removed` lines) is at least `min_queue` and \
                      grew by `growth` percent within `window`.",
        rationale: "Remote servers deferring a lot of our mail means a reputation problem (spam left) or \
                    a broken route; either way mail is late.",
        needs: "Postfix (delivery and qmgr lines)",
        counts: "deferred messages at the peak",
        params: &[
            p(
                "min_queue",
                50,
                Unit::Count,
                1,
                MAX_COUNT,
                "deferred messages at least",
            ),
            p(
                "growth",
                100,
                Unit::Percent,
                1,
                100_000,
                "growth within the window, percent",
            ),
            window(3600),
            quiet(3 * 3600),
        ],
    },
    RuleInfo {
        id: "spoofed-unauth-wave",
        title: "Wave of unauthenticated mail claiming our domain",
        severity: AlertSeverity::High,
        attack: &["T1566", "T1656"],
        description: "Rspamd flags `SPOOFED_UNAUTH` (Mailcow: a From of our domain without \
                      authentication) `count` times within `window`, grouped by the envelope sender's domain.",
        rationale: "A phishing campaign impersonating us, aimed at our own users. Single hits happen \
                    (misconfigured scanners, forwarders); a wave is a campaign.",
        needs: "Rspamd (Mailcow's symbols)",
        counts: "flagged messages",
        params: &[
            p(
                "count",
                10,
                Unit::Count,
                1,
                MAX_COUNT,
                "flagged messages within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "dmarc-reject-wave",
        title: "Wave of DMARC rejects for our own domains",
        severity: AlertSeverity::High,
        attack: &["T1566", "T1656"],
        description: "Rspamd's `DMARC_POLICY_REJECT` for a domain of ours `count` times within `window`.",
        rationale: "Someone sends mail as our domain that fails DMARC: a spoofing campaign, or our own \
                    mail broke (a new sending service without SPF/DKIM).",
        needs: "Rspamd (DMARC module)",
        counts: "rejected messages",
        params: &[
            p(
                "count",
                10,
                Unit::Count,
                1,
                MAX_COUNT,
                "rejects within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "crash-loop",
        title: "A mail service keeps restarting",
        severity: AlertSeverity::High,
        attack: &["T1499"],
        description: "Start banners and crashes of one service on one host (Postfix master, Dovecot, \
                      Rspamd, MariaDB; Rspamd workers terminated abnormally, MariaDB signals, Postfix \
                      panics) reach `starts` within `window`.",
        rationale: "A container in a restart loop (the MariaDB downgrade of the incident) takes mail \
                    down. A planned restart is one start; Docker's restart back-off still gives many an hour.",
        needs: "service logs (Postfix, Dovecot, Rspamd, MariaDB)",
        counts: "starts and crashes",
        params: &[
            p(
                "starts",
                5,
                Unit::Count,
                2,
                MAX_COUNT,
                "starts and crashes within the window",
            ),
            window(1800),
            quiet(3600),
        ],
    },
    RuleInfo {
        id: "mariadb-version-mismatch",
        title: "MariaDB cannot use its data directory (version mismatch)",
        severity: AlertSeverity::Critical,
        attack: &[],
        description: "MariaDB reports a data directory written by another version: unsupported redo log \
                      format, upgrade/downgrade after a crash, a MySQL tablespace, system tables needing \
                      `mariadb-upgrade`, or the entrypoint skipping a needed upgrade.",
        rationale: "Mailcow keeps every mailbox and alias in MariaDB; a downgraded image (a floating tag \
                    moved back) leaves the database down and all logins failing.",
        needs: "MariaDB error log",
        counts: "error lines",
        params: &[quiet(DAY)],
    },
    RuleInfo {
        id: "source-silent",
        title: "A log source went silent",
        severity: AlertSeverity::Medium,
        attack: &["T1562.006"],
        description: "A source (one program family on one host) that logged at least `min_lines` lines \
                      over at least `learn` seconds has been silent for `silence` seconds — and longer \
                      than twice its longest quiet gap so far — while other sources kept logging.",
        rationale: "A stopped service, a broken log pipeline, or an intruder turning logging off. Judged \
                    on the other sources' event time, never the wall clock; the learned gap keeps \
                    quiet nights from alerting.",
        needs: "at least two sources in the same input",
        counts: "minutes silent",
        params: &[
            p(
                "silence",
                3600,
                Unit::Seconds,
                60,
                MAX_SECS,
                "silence that alerts, at least",
            ),
            p(
                "min_lines",
                100,
                Unit::Count,
                1,
                MAX_COUNT,
                "lines the source must have logged",
            ),
            learn(DAY),
            quiet(60),
        ],
    },
    RuleInfo {
        id: "own-domain-unauthenticated",
        title: "Unauthenticated mail claiming our domain was accepted",
        severity: AlertSeverity::Medium,
        attack: &["T1566", "T1656"],
        description: "Messages with an envelope sender of our domains, accepted over SMTP without \
                      authentication from a non-trusted client and delivered to our mailboxes, reach \
                      `count` within `window` per sender domain. A client in a private or loopback network \
                      (what `mynetworks` usually covers) counts as `count` at once.",
        rationale: "Our own users authenticate. Mail as our domain from outside is spoofing aimed at our \
                    users (Rspamd calls it SPOOFED_UNAUTH; this rule sees it in Postfix alone). From an \
                    internal address it means a host or container in mynetworks sends as us without a \
                    login — the incident's web-shell pattern — and fires at the first message.",
        needs: "Postfix (smtpd client=, qmgr, local deliveries)",
        counts: "messages",
        params: &[
            p(
                "count",
                5,
                Unit::Count,
                1,
                MAX_COUNT,
                "messages within the window",
            ),
            window(3600),
            quiet(3600),
        ],
    },
];

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No rule has this id.
    #[error("unknown rule {id:?}; fix: use one of the ids `mailwarden detect --list-rules` prints")]
    UnknownRule {
        /// The id given.
        id: String,
    },
    /// A `RULE.PARAM` setting names a parameter the rule does not have.
    #[error("rule {rule:?} has no parameter {param:?}; fix: use one of {known}")]
    UnknownParam {
        /// The rule.
        rule: String,
        /// The parameter given.
        param: String,
        /// The rule's parameters, comma-separated.
        known: String,
    },
    /// A setting is not of the form `RULE.PARAM=VALUE`.
    #[error(
        "cannot read setting {setting:?}; fix: write RULE.PARAM=VALUE, e.g. auth-bruteforce-ip.failures=20"
    )]
    BadSetting {
        /// The setting as given.
        setting: String,
    },
    /// A value lies outside the parameter's range.
    #[error("{rule}.{param} = {value} is out of range; fix: use a value from {min} to {max}")]
    OutOfRange {
        /// The rule.
        rule: String,
        /// The parameter.
        param: String,
        /// The value given.
        value: i64,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// A trusted network or honeypot entry could not be read.
    #[error("cannot read {what} {value:?}; fix: {fix}")]
    BadValue {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: String,
        /// How to write it.
        fix: &'static str,
    },
}

/// Parameter values for every rule: defaults with overrides applied.
#[derive(Clone, Debug)]
pub struct Params {
    values: Vec<Vec<i64>>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            values: RULES
                .iter()
                .map(|r| r.params.iter().map(|p| p.default).collect())
                .collect(),
        }
    }
}

impl Params {
    /// Defaults with `overrides` (`RULE.PARAM` → value) applied and checked.
    pub fn with_overrides(overrides: &BTreeMap<String, i64>) -> Result<Params, ConfigError> {
        let mut params = Params::default();
        for (name, value) in overrides {
            params.set(name, *value)?;
        }
        Ok(params)
    }

    /// Sets `RULE.PARAM` to `value` after checking both exist and the range.
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), ConfigError> {
        let (rule_id, param) = name.rsplit_once('.').ok_or_else(|| ConfigError::BadSetting {
            setting: name.to_owned(),
        })?;
        let ri = RULES
            .iter()
            .position(|r| r.id == rule_id)
            .ok_or_else(|| ConfigError::UnknownRule {
                id: rule_id.to_owned(),
            })?;
        let info = &RULES[ri];
        let pi =
            info.params
                .iter()
                .position(|p| p.name == param)
                .ok_or_else(|| ConfigError::UnknownParam {
                    rule: rule_id.to_owned(),
                    param: param.to_owned(),
                    known: info.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                })?;
        let p = &info.params[pi];
        if !(p.min..=p.max).contains(&value) {
            return Err(ConfigError::OutOfRange {
                rule: rule_id.to_owned(),
                param: param.to_owned(),
                value,
                min: p.min,
                max: p.max,
            });
        }
        self.values[ri][pi] = value;
        Ok(())
    }

    /// Parses `RULE.PARAM=VALUE` and sets it.
    pub fn set_from_str(&mut self, setting: &str) -> Result<(), ConfigError> {
        let bad = || ConfigError::BadSetting {
            setting: setting.to_owned(),
        };
        let (name, value) = setting.split_once('=').ok_or_else(bad)?;
        let value: i64 = value.trim().parse().map_err(|_| bad())?;
        self.set(name.trim(), value)
    }

    /// The value of a parameter of rule number `rule`.
    ///
    /// # Panics
    /// When the rule has no such parameter: a programming error the catalogue
    /// tests catch (every rule is built in them).
    pub(crate) fn get(&self, rule: usize, name: &str) -> i64 {
        let pi = RULES[rule]
            .params
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| panic!("rule {} has no parameter {name}", RULES[rule].id));
        self.values[rule][pi]
    }

    /// The value of a parameter by names, for display.
    pub fn value(&self, rule_id: &str, param: &str) -> Option<i64> {
        let ri = RULES.iter().position(|r| r.id == rule_id)?;
        let pi = RULES[ri].params.iter().position(|p| p.name == param)?;
        Some(self.values[ri][pi])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_indexed() {
        let mut seen = std::collections::BTreeSet::new();
        for r in &RULES {
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
            assert!(r.param("quiet").is_some(), "{} lacks quiet", r.id);
            for p in r.params {
                assert!(p.min <= p.default && p.default <= p.max, "{}.{}", r.id, p.name);
            }
            assert!(
                r.id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                r.id
            );
        }
        assert_eq!(RULES[ids::SOURCE_SILENT].id, "source-silent");
        assert_eq!(RULES[ids::AUTH_BRUTEFORCE_IP].id, "auth-bruteforce-ip");
        assert_eq!(RULES[ids::OPEN_RELAY].id, "open-relay");
        assert_eq!(RULES[ids::DMARC_REJECT_WAVE].id, "dmarc-reject-wave");
        assert_eq!(
            RULES[ids::OWN_DOMAIN_UNAUTHENTICATED].id,
            "own-domain-unauthenticated"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut p = Params::default();
        assert_eq!(p.value("auth-bruteforce-ip", "failures"), Some(10));
        p.set_from_str("auth-bruteforce-ip.failures=20").unwrap();
        assert_eq!(p.value("auth-bruteforce-ip", "failures"), Some(20));
        assert!(matches!(
            p.set_from_str("nope.failures=1"),
            Err(ConfigError::UnknownRule { .. })
        ));
        assert!(matches!(
            p.set_from_str("auth-bruteforce-ip.nope=1"),
            Err(ConfigError::UnknownParam { .. })
        ));
        assert!(matches!(
            p.set_from_str("auth-bruteforce-ip.failures=0"),
            Err(ConfigError::OutOfRange { .. })
        ));
        assert!(matches!(
            p.set_from_str("auth-bruteforce-ip.failures"),
            Err(ConfigError::BadSetting { .. })
        ));
        let msg = p
            .set_from_str("auth-bruteforce-ip.nope=1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("failures, window, quiet"), "{msg}");
    }
}
