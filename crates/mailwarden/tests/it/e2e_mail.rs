//! End-to-end test against a real mail system: a private Postfix mail
//! server, a Postfix sink and a Dovecot (see `mailwarden-testlab`) run the
//! standard scenario, and the raw log files are checked for the traces of
//! every step.
//!
//! These raw-log assertions are the first layer. Parser-level tests can
//! reuse the same run through [`standard_run`], which hands out the log paths
//! and the scenario's [`Expectation`]s and keeps the lab (and so its log
//! files) alive for as long as the returned `Arc` is held.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use mailwarden_testlab::{
    Expectation, LabOptions, LogKind, LogPaths, MailLab, Outcome, Scenario, ScenarioKind,
};

/// A finished run of [`Scenario::run_standard`] whose lab is idle.
pub struct StandardRun {
    /// The running lab; its temporary directory (with the logs) is removed when this is dropped.
    pub lab: MailLab,
    /// Where the lab's logs are.
    pub logs: LogPaths,
    /// What each scenario step sent and how it should show up in the logs.
    pub expectations: Vec<Expectation>,
}

impl StandardRun {
    /// The log paths and expectations, as parser-level tests need them.
    pub fn logs_and_expectations(&self) -> (&LogPaths, &[Expectation]) {
        (&self.logs, &self.expectations)
    }
}

static SHARED: Mutex<Weak<StandardRun>> = Mutex::new(Weak::new());

/// Starts a lab, runs the standard scenario and waits until the lab is idle.
///
/// Tests running at the same time share one run; once the last `Arc` is
/// dropped the lab is stopped and cleaned up (a later call starts a new one).
/// Panics with the lab's diagnostics if anything fails: a missing Postfix,
/// Dovecot or swaks is a test failure, never a skip.
pub fn standard_run() -> Arc<StandardRun> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(run) = shared.upgrade() {
        return run;
    }
    let started = Instant::now();
    let lab = MailLab::start(LabOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "e2e: lab up in {:.1?} at {} ({:?})",
        started.elapsed(),
        lab.dir().display(),
        lab.ports()
    );
    let expectations = Scenario::run_standard(&lab).unwrap_or_else(|e| panic!("{e}"));
    lab.wait_idle().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "e2e: standard scenario done and idle after {:.1?}",
        started.elapsed()
    );
    let run = Arc::new(StandardRun {
        logs: lab.log_paths(),
        lab,
        expectations,
    });
    *shared = Arc::downgrade(&run);
    run
}

/// One log file's content with assertion helpers that print the log on failure.
struct Log {
    name: &'static str,
    text: String,
}

impl Log {
    fn read(lab: &MailLab, which: LogKind, name: &'static str) -> Log {
        Log {
            name,
            text: lab.read_log(which),
        }
    }

    /// Lines containing every needle.
    fn lines_with<'a>(&'a self, needles: &[&str]) -> Vec<&'a str> {
        self.text
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    /// Asserts that some line contains every needle; returns the first such line.
    #[track_caller]
    fn line(&self, why: &str, needles: &[&str]) -> &str {
        match self.lines_with(needles).first() {
            Some(line) => line,
            None => panic!(
                "{why}: no line in the {} log contains all of {needles:?}\n--- {} log ---\n{}",
                self.name, self.name, self.text
            ),
        }
    }
}

#[test]
fn postfix_dovecot_lab_logs_standard_scenario() {
    let started = Instant::now();
    let run = standard_run();
    let (logs, expectations) = run.logs_and_expectations();
    for path in [&logs.mail, &logs.sink, &logs.dovecot] {
        assert!(path.is_file(), "missing log file {}", path.display());
    }
    for e in expectations {
        eprintln!("e2e: {e}");
    }
    let lab = &run.lab;
    let mail = Log::read(lab, LogKind::Mail, "mail server");
    let sink = Log::read(lab, LogKind::Sink, "sink");
    let dovecot = Log::read(lab, LogKind::Dovecot, "dovecot");
    let ports = lab.ports();
    let sink_relay = format!("relay=127.0.0.1[127.0.0.1]:{}", ports.sink);
    let closed_port = format!("127.0.0.1[127.0.0.1]:{}: Connection refused", ports.closed);

    let kinds: Vec<ScenarioKind> = expectations.iter().map(|e| e.kind).collect();
    for kind in [
        ScenarioKind::AuthenticatedSubmission,
        ScenarioKind::InboundDelivery,
        ScenarioKind::RelayDenied,
        ScenarioKind::UnknownRecipient,
        ScenarioKind::SaslFailure,
        ScenarioKind::DeferredDelivery,
        ScenarioKind::MultiRecipient,
        ScenarioKind::ImapLogin,
    ] {
        assert!(
            kinds.contains(&kind),
            "standard scenario lacks a {kind:?} step: {kinds:?}"
        );
    }

    // Both Postfix instances and Dovecot announce themselves.
    mail.line(
        "mail server start",
        &["postfix/master[", "daemon started -- version 3."],
    );
    sink.line("sink start", &["postfix-sink/master[", "daemon started"]);
    dovecot.line(
        "dovecot start",
        &["master: Info: Dovecot v", "starting up for imap, lmtp"],
    );

    for e in expectations {
        let why = e.to_string();
        let client = format!("unknown[{}]", e.client_addr);
        if e.kind == ScenarioKind::ImapLogin {
            let user = e.sasl_user.as_deref().expect("IMAP step has a user");
            let user_field = format!("user=<{user}>");
            let rip = format!("rip={}", e.client_addr);
            if e.auth_ok == Some(true) {
                dovecot.line(
                    &why,
                    &["imap-login: Info: Login: ", &user_field, "method=PLAIN", &rip],
                );
                dovecot.line(&why, &[&format!("imap({user})<"), "Disconnected: Logged out"]);
            } else {
                dovecot.line(
                    &why,
                    &[
                        "imap-login: Info: ",
                        "(auth failed, 1 attempts",
                        &user_field,
                        &rip,
                    ],
                );
                dovecot.line(
                    &why,
                    &[
                        &format!("auth: Info: passwd-file({user},{}", e.client_addr),
                        "Password mismatch",
                    ],
                );
            }
            continue;
        }
        mail.line(&why, &["connect from ", &client]);
        if e.auth_ok == Some(false) {
            let user = e.sasl_user.as_deref().expect("auth step has a user");
            mail.line(
                &why,
                &[
                    "postfix/submission/smtpd[",
                    &format!("warning: {client}: SASL PLAIN authentication failed"),
                    &format!("sasl_username={user}"),
                ],
            );
            dovecot.line(
                &why,
                &[
                    &format!("auth: Info: passwd-file({user},{})", e.client_addr),
                    "Password mismatch",
                ],
            );
            assert!(
                e.queue_id.is_none(),
                "{why}: no message may be queued after a SASL failure"
            );
            continue;
        }
        let sender = e.sender.as_deref().expect("SMTP step has a sender");
        for r in &e.recipients {
            if let Outcome::Rejected { code_class } = r.outcome {
                let line = mail.line(
                    &why,
                    &[
                        "NOQUEUE: reject: RCPT from ",
                        &client,
                        &format!("from=<{sender}> to=<{}>", r.address),
                    ],
                );
                let code = format!("{client}: {code_class}");
                assert!(
                    line.contains(&code),
                    "{why}: expected a {code_class}xx reject, got {line}"
                );
            }
        }
        let Some(qid) = e.queue_id.as_deref() else {
            continue;
        };
        let msgid = e.message_id.as_deref().expect("SMTP step has a Message-Id");
        let q = format!("{qid}: ");
        let smtpd = if e.auth_ok == Some(true) {
            "postfix/submission/smtpd["
        } else {
            "postfix/smtpd["
        };
        let client_line = mail.line(&why, &[smtpd, &q, &format!("client={client}")]);
        if let Some(user) = e.sasl_user.as_deref() {
            assert!(
                client_line.contains(&format!("sasl_method=PLAIN, sasl_username={user}")),
                "{why}: {client_line}"
            );
        }
        mail.line(&why, &["postfix/cleanup[", &q, &format!("message-id={msgid}")]);
        let accepted = e.accepted_recipients().count();
        mail.line(
            &why,
            &[
                "postfix/qmgr[",
                &q,
                &format!("from=<{sender}>"),
                &format!("nrcpt={accepted}"),
            ],
        );
        for r in e.accepted_recipients() {
            let to = format!("to=<{}>", r.address);
            match r.outcome {
                Outcome::Relayed => {
                    mail.line(
                        &why,
                        &[
                            "postfix/smtp[",
                            &q,
                            &to,
                            &sink_relay,
                            "status=sent (250 2.0.0 Ok: queued as ",
                        ],
                    );
                    sink.line(&why, &["postfix-sink/discard[", &to, "relay=none", "status=sent"]);
                    sink.line(&why, &["postfix-sink/cleanup[", &format!("message-id={msgid}")]);
                }
                Outcome::Delivered => {
                    mail.line(
                        &why,
                        &[
                            "postfix/lmtp[",
                            &q,
                            &to,
                            "relay=mail.lab.test[private/dovecot-lmtp]",
                            "status=sent",
                            "Saved)",
                        ],
                    );
                    dovecot.line(
                        &why,
                        &[
                            &format!("lmtp({})<", r.address),
                            &format!("msgid={msgid}: saved mail to INBOX"),
                        ],
                    );
                }
                Outcome::Deferred => {
                    mail.line(
                        &why,
                        &[
                            "postfix/smtp[",
                            &q,
                            &to,
                            "dsn=4.4.1",
                            "status=deferred",
                            &closed_port,
                        ],
                    );
                }
                Outcome::Rejected { .. } | Outcome::AuthFailed => {
                    unreachable!("filtered by accepted_recipients")
                }
            }
        }
    }

    // The specific phrases mailwarden's parsers will key on.
    mail.line(
        "relay denied",
        &[
            "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1",
            "Relay access denied",
        ],
    );
    mail.line(
        "unknown recipient",
        &[
            "550 5.1.1 <nobody@lab.test>",
            "User unknown in virtual mailbox table",
        ],
    );
    mail.line(
        "SASL failure",
        &["SASL PLAIN authentication failed", "sasl_username=alice@lab.test"],
    );
    mail.line(
        "deferred",
        &["to=<x@deferred.test>", "status=deferred", "Connection refused"],
    );
    dovecot.line("local delivery", &["lmtp(bob@lab.test)<", "saved mail to INBOX"]);
    dovecot.line("IMAP login", &["imap-login: Info: Login: user=<bob@lab.test>"]);
    dovecot.line(
        "IMAP failure",
        &[
            "imap-login: Info: Disconnected",
            "auth failed",
            "user=<carol@lab.test>",
        ],
    );
    assert!(
        mail.lines_with(&["fatal:"]).is_empty(),
        "Postfix logged fatal errors:\n{}",
        mail.text
    );
    assert!(
        dovecot.lines_with(&["Fatal:"]).is_empty(),
        "Dovecot logged fatal errors:\n{}",
        dovecot.text
    );

    let elapsed = started.elapsed();
    eprintln!("e2e: assertions passed after {elapsed:.1?}");
    assert!(elapsed < Duration::from_secs(120), "the e2e run took {elapsed:?}");
}
