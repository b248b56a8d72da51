//! Scenarios: scripted SMTP and IMAP traffic against a [`MailLab`], each
//! step recorded as an [`Expectation`] that says what was sent and what the
//! logs should therefore show.
//!
//! Every step is checked against the client-side transcript as it runs, so
//! a misconfigured lab fails at the step that went wrong instead of later in
//! a log assertion.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::LabError;
use crate::lab::{MailLab, Service};
use crate::{DEFERRED_DOMAIN, LOCAL_DOMAIN, REMOTE_DOMAIN, USERS};

/// Client address used for authenticated users and IMAP (the only address in `mynetworks`).
pub const CLIENT_USERS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Client address of the "external" MX that delivers inbound mail.
pub const CLIENT_EXTERNAL_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Client address that probes for an open relay.
pub const CLIENT_RELAY_PROBE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Client address of a second external sender (sample scenario).
pub const CLIENT_PARTNER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// Client address of a third external sender (sample scenario).
pub const CLIENT_SHOP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// Client address that sends mail with a forged lab.test sender (sample scenario).
pub const CLIENT_SPOOFER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// Client address of the SASL brute-force attacker (sample scenario).
pub const CLIENT_ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

/// What a scenario step exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// Authenticated submission relayed to the sink.
    AuthenticatedSubmission,
    /// Unauthenticated inbound mail to a local mailbox.
    InboundDelivery,
    /// Unauthenticated attempt to relay to a foreign domain.
    RelayDenied,
    /// Inbound mail to a local address that does not exist.
    UnknownRecipient,
    /// Submission with a wrong password.
    SaslFailure,
    /// Authenticated submission to a domain whose server refuses connections.
    DeferredDelivery,
    /// One message, several recipients with different routes.
    MultiRecipient,
    /// IMAP LOGIN (good or bad password).
    ImapLogin,
    /// Unauthenticated mail claiming a lab.test sender, accepted for a local recipient.
    SpoofedSender,
    /// Many messages from one (compromised) account in a short time.
    CompromisedBurst,
    /// Repeated SASL failures from one client address.
    BruteForce,
}

impl ScenarioKind {
    /// A stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::AuthenticatedSubmission => "authenticated-submission",
            ScenarioKind::InboundDelivery => "inbound-delivery",
            ScenarioKind::RelayDenied => "relay-denied",
            ScenarioKind::UnknownRecipient => "unknown-recipient",
            ScenarioKind::SaslFailure => "sasl-failure",
            ScenarioKind::DeferredDelivery => "deferred-delivery",
            ScenarioKind::MultiRecipient => "multi-recipient",
            ScenarioKind::ImapLogin => "imap-login",
            ScenarioKind::SpoofedSender => "spoofed-sender",
            ScenarioKind::CompromisedBurst => "compromised-burst",
            ScenarioKind::BruteForce => "brute-force",
        }
    }
}

/// The expected fate of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted and delivered to a local mailbox via Dovecot LMTP (Postfix `status=sent`).
    Delivered,
    /// Accepted and relayed to the sink (Postfix `status=sent`, `relay=127.0.0.1[127.0.0.1]:<sink port>`).
    Relayed,
    /// Accepted, first delivery attempt failed with "Connection refused" (`status=deferred`).
    Deferred,
    /// Refused at `RCPT TO` with a reply of this class (4 or 5), logged as `NOQUEUE: reject`.
    Rejected {
        /// First digit of the SMTP reply code.
        code_class: u8,
    },
    /// Never reached `RCPT TO` because SASL authentication failed.
    AuthFailed,
}

impl Outcome {
    /// The Postfix delivery `status=` value this outcome produces, if any.
    pub fn postfix_status(self) -> Option<&'static str> {
        match self {
            Outcome::Delivered | Outcome::Relayed => Some("sent"),
            Outcome::Deferred => Some("deferred"),
            Outcome::Rejected { .. } | Outcome::AuthFailed => None,
        }
    }

    /// True if the server accepted the recipient (it got a queue id).
    pub fn accepted(self) -> bool {
        self.postfix_status().is_some()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered => f.write_str("delivered"),
            Outcome::Relayed => f.write_str("relayed"),
            Outcome::Deferred => f.write_str("deferred"),
            Outcome::Rejected { code_class } => write!(f, "rejected-{code_class}xx"),
            Outcome::AuthFailed => f.write_str("auth-failed"),
        }
    }
}

/// One recipient of a step and its expected (and client-verified) fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientExpectation {
    /// The envelope recipient.
    pub address: String,
    /// What should happen to it.
    pub outcome: Outcome,
    /// The server's final reply line to `RCPT TO` (or to `AUTH` for
    /// [`Outcome::AuthFailed`]), e.g. `554 5.7.1 <x@elsewhere.test>: Relay access denied`.
    pub reply: Option<String>,
}

/// What one scenario step sent and what the logs should show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Position in the scenario, from 1.
    pub index: usize,
    /// What the step exercises.
    pub kind: ScenarioKind,
    /// The listener that was contacted.
    pub service: Service,
    /// The client's source address (Postfix logs it as `unknown[ADDR]`, Dovecot as `rip=ADDR`).
    pub client_addr: Ipv4Addr,
    /// The HELO/EHLO name used (SMTP only).
    pub helo: Option<String>,
    /// The SASL/IMAP login name, if the step authenticated.
    pub sasl_user: Option<String>,
    /// Whether authentication should succeed (`None` if no authentication was attempted).
    pub auth_ok: Option<bool>,
    /// The envelope sender (SMTP only).
    pub sender: Option<String>,
    /// The `Message-Id` header value including angle brackets (SMTP only). It
    /// reaches the logs (Postfix `cleanup`, Dovecot `lmtp` `msgid=`) only if
    /// the message was accepted.
    pub message_id: Option<String>,
    /// The `Subject` header (SMTP only).
    pub subject: Option<String>,
    /// Recipients and their expected fates (empty for IMAP).
    pub recipients: Vec<RecipientExpectation>,
    /// The mail server's queue id if the message was accepted.
    pub queue_id: Option<String>,
    /// When the client started the step.
    pub started_at: SystemTime,
}

impl Expectation {
    /// Recipients the server accepted (delivered, relayed or deferred).
    pub fn accepted_recipients(&self) -> impl Iterator<Item = &RecipientExpectation> {
        self.recipients.iter().filter(|r| r.outcome.accepted())
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{:03} {} {} {}",
            self.index,
            self.kind.as_str(),
            self.service.as_str(),
            self.client_addr
        )?;
        if let Some(user) = &self.sasl_user {
            write!(
                f,
                " user={user} auth={}",
                if self.auth_ok == Some(true) { "ok" } else { "fail" }
            )?;
        }
        if let Some(sender) = &self.sender {
            write!(f, " from=<{sender}>")?;
        }
        for r in &self.recipients {
            write!(f, " to=<{}>:{}", r.address, r.outcome)?;
        }
        if let Some(id) = &self.message_id {
            write!(f, " msgid={id}")?;
        }
        if let Some(q) = &self.queue_id {
            write!(f, " queue={q}")?;
        }
        Ok(())
    }
}

/// A message to send with swaks: build with [`Message::submission`] or
/// [`Message::inbound`], then add recipients with [`Message::to`].
#[derive(Debug, Clone)]
pub struct Message {
    kind: ScenarioKind,
    service: Service,
    client_addr: Ipv4Addr,
    helo: String,
    auth: Option<(String, String)>,
    from: String,
    to: Vec<(String, Outcome)>,
    subject: String,
    body: String,
}

impl Message {
    /// An authenticated submission by a lab user (correct password) from
    /// 127.0.0.1 on the submission port; the envelope sender is the user.
    pub fn submission(kind: ScenarioKind, user: &str) -> Message {
        let password = password_of(user).unwrap_or("no-such-user").to_owned();
        let local = user.split('@').next().unwrap_or(user);
        Message {
            kind,
            service: Service::Submission,
            client_addr: CLIENT_USERS,
            helo: format!("{local}-laptop.{LOCAL_DOMAIN}"),
            auth: Some((user.to_owned(), password)),
            from: user.to_owned(),
            to: Vec::new(),
            subject: format!("{} test", kind.as_str()),
            body: "Hello from the mailwarden test lab.".to_owned(),
        }
    }

    /// Unauthenticated mail on the smtp port from `client` (an address in
    /// 127.0.0.0/8 other than 127.0.0.1, so that it is not in `mynetworks`).
    pub fn inbound(kind: ScenarioKind, client: Ipv4Addr, helo: &str, from: &str) -> Message {
        Message {
            kind,
            service: Service::Smtp,
            client_addr: client,
            helo: helo.to_owned(),
            auth: None,
            from: from.to_owned(),
            to: Vec::new(),
            subject: format!("{} test", kind.as_str()),
            body: "Hello from the mailwarden test lab.".to_owned(),
        }
    }

    /// Adds a recipient and its expected fate.
    pub fn to(mut self, address: &str, outcome: Outcome) -> Message {
        self.to.push((address.to_owned(), outcome));
        self
    }

    /// Authenticates with these credentials (right or wrong) instead.
    pub fn auth(mut self, user: &str, password: &str) -> Message {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Connects from this source address.
    pub fn client(mut self, addr: Ipv4Addr) -> Message {
        self.client_addr = addr;
        self
    }

    /// Uses this HELO name.
    pub fn helo(mut self, helo: &str) -> Message {
        self.helo = helo.to_owned();
        self
    }

    /// Sets the envelope sender (and From header).
    pub fn from(mut self, from: &str) -> Message {
        self.from = from.to_owned();
        self
    }

    /// Sets the Subject header.
    pub fn subject(mut self, subject: &str) -> Message {
        self.subject = subject.to_owned();
        self
    }

    /// Sets the body text.
    pub fn body(mut self, body: &str) -> Message {
        self.body = body.to_owned();
        self
    }
}

fn password_of(user: &str) -> Option<&'static str> {
    USERS
        .iter()
        .find(|u| u.address.eq_ignore_ascii_case(user))
        .map(|u| u.password)
}

/// Runs steps against a lab and collects their [`Expectation`]s.
#[derive(Debug)]
pub struct Scenario<'a> {
    lab: &'a MailLab,
    id_prefix: String,
    nonce: Option<String>,
    expectations: Vec<Expectation>,
}

impl<'a> Scenario<'a> {
    /// A scenario whose Message-Ids look like `<PREFIX.0001.NONCE@domain>`;
    /// with `unique = false` the nonce is left out, making the traffic
    /// byte-for-byte reproducible apart from dates, pids and queue ids.
    pub fn new(lab: &'a MailLab, id_prefix: &str, unique: bool) -> Scenario<'a> {
        let nonce = unique.then(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff_ffff)
        });
        Scenario {
            lab,
            id_prefix: id_prefix.to_owned(),
            nonce,
            expectations: Vec::new(),
        }
    }

    /// The steps run so far.
    pub fn expectations(&self) -> &[Expectation] {
        &self.expectations
    }

    /// Ends the scenario and returns its expectations.
    pub fn finish(self) -> Vec<Expectation> {
        self.expectations
    }

    /// Sends one message with swaks and checks the SMTP replies against the
    /// expected outcomes (AUTH 235/535, RCPT class, `queued as` after DATA).
    pub fn send(&mut self, msg: Message) -> Result<&Expectation, LabError> {
        let index = self.expectations.len() + 1;
        let domain = msg
            .from
            .rsplit('@')
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or(LOCAL_DOMAIN);
        let message_id = match &self.nonce {
            Some(n) => format!("<{}.{index:04}.{n}@{domain}>", self.id_prefix),
            None => format!("<{}.{index:04}@{domain}>", self.id_prefix),
        };
        let recipients: Vec<&str> = msg.to.iter().map(|(a, _)| a.as_str()).collect();
        let to = recipients.join(",");
        let client = msg.client_addr.to_string();
        let id_header = format!("Message-Id: {message_id}");
        let subject_header = format!("Subject: {}", msg.subject);
        let mut args: Vec<&str> = vec![
            "--local-interface",
            &client,
            "--helo",
            &msg.helo,
            "--from",
            &msg.from,
            "--to",
            &to,
            "--header",
            &id_header,
            "--header",
            &subject_header,
            "--body",
            &msg.body,
        ];
        if let Some((user, password)) = &msg.auth {
            args.extend([
                "--auth",
                "PLAIN",
                "--auth-user",
                user,
                "--auth-password",
                password,
            ]);
        }
        let started_at = SystemTime::now();
        let run = self.lab.swaks(msg.service, &args)?;
        let step = format!("#{index} {}", msg.kind.as_str());
        let fail = |problem: String| LabError::Scenario {
            step: step.clone(),
            problem,
            transcript: run.transcript(),
        };

        if msg.to.is_empty() {
            return Err(fail("a message needs at least one recipient".into()));
        }
        let auth_ok = msg.auth.as_ref().map(|(u, p)| password_of(u) == Some(p.as_str()));
        let mut out = Vec::new();
        if let Some(expect_ok) = auth_ok {
            let reply = run
                .reply_to("AUTH")
                .ok_or_else(|| fail("no reply to AUTH".into()))?;
            match (expect_ok, reply.code) {
                (true, 235) => {}
                (false, 535) => {
                    for (address, _) in &msg.to {
                        out.push(RecipientExpectation {
                            address: address.clone(),
                            outcome: Outcome::AuthFailed,
                            reply: Some(format!("{} {}", reply.code, reply.text)),
                        });
                    }
                    return Ok(self.record(&msg, index, auth_ok, message_id, out, None, started_at));
                }
                (_, code) => return Err(fail(format!("AUTH got {code}, expected success={expect_ok}"))),
            }
        }
        for (address, outcome) in &msg.to {
            let reply = run
                .rcpt_reply(address)
                .ok_or_else(|| fail(format!("no reply to RCPT TO:<{address}>")))?;
            let ok = match outcome {
                Outcome::Delivered | Outcome::Relayed | Outcome::Deferred => reply.code / 100 == 2,
                Outcome::Rejected { code_class } => reply.code / 100 == u16::from(*code_class),
                Outcome::AuthFailed => false,
            };
            if !ok {
                return Err(fail(format!(
                    "RCPT TO:<{address}> got {} {}, expected {outcome}",
                    reply.code, reply.text
                )));
            }
            out.push(RecipientExpectation {
                address: address.clone(),
                outcome: *outcome,
                reply: Some(format!("{} {}", reply.code, reply.text)),
            });
        }
        let queue_id = run.queue_id();
        let any_accepted = out.iter().any(|r| r.outcome.accepted());
        if any_accepted != queue_id.is_some() {
            return Err(fail(format!(
                "accepted recipients: {any_accepted}, but queue id: {queue_id:?}"
            )));
        }
        Ok(self.record(&msg, index, auth_ok, message_id, out, queue_id, started_at))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        msg: &Message,
        index: usize,
        auth_ok: Option<bool>,
        message_id: String,
        recipients: Vec<RecipientExpectation>,
        queue_id: Option<String>,
        started_at: SystemTime,
    ) -> &Expectation {
        self.expectations.push(Expectation {
            index,
            kind: msg.kind,
            service: msg.service,
            client_addr: msg.client_addr,
            helo: Some(msg.helo.clone()),
            sasl_user: msg.auth.as_ref().map(|(u, _)| u.clone()),
            auth_ok,
            sender: Some(msg.from.clone()),
            message_id: Some(message_id),
            subject: Some(msg.subject.clone()),
            recipients,
            queue_id,
            started_at,
        });
        self.expectations.last().expect("just pushed")
    }

    /// Logs in over IMAP (from 127.0.0.1) and checks that the result matches
    /// the lab's user table.
    pub fn imap(&mut self, user: &str, password: &str) -> Result<&Expectation, LabError> {
        let index = self.expectations.len() + 1;
        let expect_ok = password_of(user) == Some(password);
        let started_at = SystemTime::now();
        let ok = self.lab.imap_login(user, password)?;
        if ok != expect_ok {
            return Err(LabError::Scenario {
                step: format!("#{index} imap-login"),
                problem: format!("LOGIN {user} returned ok={ok}, expected {expect_ok}"),
                transcript: String::new(),
            });
        }
        self.expectations.push(Expectation {
            index,
            kind: ScenarioKind::ImapLogin,
            service: Service::Imap,
            client_addr: CLIENT_USERS,
            helo: None,
            sasl_user: Some(user.to_owned()),
            auth_ok: Some(expect_ok),
            sender: None,
            message_id: None,
            subject: None,
            recipients: Vec::new(),
            queue_id: None,
            started_at,
        });
        Ok(self.expectations.last().expect("just pushed"))
    }

    /// The standard end-to-end scenario, one step per case:
    ///
    /// 1. alice submits (AUTH PLAIN) to bob@remote.test → relayed to the sink;
    /// 2. sender@example.net (127.0.0.2) → bob@lab.test → delivered via LMTP;
    /// 3. 127.0.0.3 tries to relay to someone@elsewhere.test → 554 Relay access denied;
    /// 4. 127.0.0.2 → nobody@lab.test → 550 User unknown;
    /// 5. alice with a wrong password on submission → 535 SASL failure;
    /// 6. alice → x@deferred.test → deferred (connection refused);
    /// 7. alice → carol@lab.test + dave@remote.test in one message;
    /// 8. IMAP: bob logs in, carol fails with a wrong password.
    pub fn run_standard(lab: &MailLab) -> Result<Vec<Expectation>, LabError> {
        use ScenarioKind as K;
        let mut s = Scenario::new(lab, "std", true);
        let remote = |l: &str| format!("{l}@{REMOTE_DOMAIN}");
        let local = |l: &str| format!("{l}@{LOCAL_DOMAIN}");
        s.send(
            Message::submission(K::AuthenticatedSubmission, &local("alice"))
                .to(&remote("bob"), Outcome::Relayed)
                .subject("Quarterly report"),
        )?;
        s.send(
            Message::inbound(
                K::InboundDelivery,
                CLIENT_EXTERNAL_MX,
                "mx.example.net",
                "sender@example.net",
            )
            .to(&local("bob"), Outcome::Delivered)
            .subject("Hello Bob"),
        )?;
        s.send(
            Message::inbound(
                K::RelayDenied,
                CLIENT_RELAY_PROBE,
                "probe.example.org",
                "spam@example.org",
            )
            .to("someone@elsewhere.test", Outcome::Rejected { code_class: 5 }),
        )?;
        s.send(
            Message::inbound(
                K::UnknownRecipient,
                CLIENT_EXTERNAL_MX,
                "mx.example.net",
                "sender@example.net",
            )
            .to(&local("nobody"), Outcome::Rejected { code_class: 5 }),
        )?;
        s.send(
            Message::submission(K::SaslFailure, &local("alice"))
                .auth(&local("alice"), "wrong-password")
                .to(&remote("bob"), Outcome::AuthFailed),
        )?;
        s.send(
            Message::submission(K::DeferredDelivery, &local("alice"))
                .to(&format!("x@{DEFERRED_DOMAIN}"), Outcome::Deferred),
        )?;
        s.send(
            Message::submission(K::MultiRecipient, &local("alice"))
                .to(&local("carol"), Outcome::Delivered)
                .to(&remote("dave"), Outcome::Relayed)
                .subject("Lunch?"),
        )?;
        s.imap(&local("bob"), password_of(&local("bob")).unwrap_or_default())?;
        s.imap(&local("carol"), "not-carols-password")?;
        Ok(s.finish())
    }

    /// The richer, reproducible scenario behind the bundled demo logs
    /// (94 steps: 86 SMTP sessions with 68 accepted messages, and 8 IMAP logins):
    ///
    /// * normal traffic: alice and bob send to remote.test and to each
    ///   other, three external senders (127.0.0.2/.4/.5) mail local users;
    /// * IMAP logins by alice, bob and carol, and some bad passwords;
    /// * a multi-recipient message and a deferred delivery (deferred.test);
    /// * unknown local recipients and relay attempts from 127.0.0.3;
    /// * forged `ceo@lab.test` senders from 127.0.0.6 on port smtp,
    ///   accepted because the recipients are local ("spoofed sender");
    /// * a SASL brute force from 127.0.0.9: 12 wrong passwords for several
    ///   user names, some of which do not exist;
    /// * then carol's account, now "compromised", sends 30 messages to 60
    ///   remote.test recipients from 127.0.0.9 within seconds;
    /// * a little normal traffic afterwards.
    pub fn run_sample(lab: &MailLab) -> Result<Vec<Expectation>, LabError> {
        use ScenarioKind as K;
        let mut s = Scenario::new(lab, "sample", false);
        let remote = |l: &str| format!("{l}@{REMOTE_DOMAIN}");
        let local = |l: &str| format!("{l}@{LOCAL_DOMAIN}");
        let externals = [
            (
                CLIENT_EXTERNAL_MX,
                "mx1.example.net",
                "newsletter@example.net",
                "Weekly digest",
            ),
            (
                CLIENT_PARTNER,
                "smtp.partner.example.org",
                "jane@partner.example.org",
                "Contract draft",
            ),
            (
                CLIENT_SHOP,
                "mail.shop.example.com",
                "orders@shop.example.com",
                "Your order has shipped",
            ),
        ];
        let locals = ["alice", "bob", "carol", "dave"];

        // Normal traffic.
        for i in 0..10 {
            s.send(
                Message::submission(K::AuthenticatedSubmission, &local("alice"))
                    .to(&remote(&format!("friend{}", i % 4 + 1)), Outcome::Relayed)
                    .subject(&format!("Re: plans #{i}")),
            )?;
            let bob = Message::submission(K::AuthenticatedSubmission, &local("bob"));
            let bob = if i % 2 == 0 {
                bob.to(&local("alice"), Outcome::Delivered)
                    .subject(&format!("Team notes {i}"))
            } else {
                bob.to(&remote(&format!("partner{i}")), Outcome::Relayed)
                    .subject(&format!("Offer {i}"))
            };
            s.send(bob)?;
            let (client, helo, from, subject) = externals[i % externals.len()];
            s.send(
                Message::inbound(K::InboundDelivery, client, helo, from)
                    .to(&local(locals[i % locals.len()]), Outcome::Delivered)
                    .subject(&format!("{subject} ({i})")),
            )?;
            if i == 3 || i == 7 {
                s.send(
                    Message::submission(K::AuthenticatedSubmission, &local("carol"))
                        .to(&remote("friend1"), Outcome::Relayed)
                        .subject(&format!("Photos {i}")),
                )?;
            }
            if i == 4 {
                for user in ["alice", "bob", "carol"] {
                    let address = local(user);
                    s.imap(&address, password_of(&address).unwrap_or_default())?;
                }
            }
        }
        s.send(
            Message::submission(K::MultiRecipient, &local("alice"))
                .to(&local("bob"), Outcome::Delivered)
                .to(&remote("friend1"), Outcome::Relayed)
                .to(&remote("friend2"), Outcome::Relayed)
                .subject("Party on Saturday"),
        )?;
        s.send(
            Message::submission(K::DeferredDelivery, &local("bob"))
                .to(&format!("archive@{DEFERRED_DOMAIN}"), Outcome::Deferred)
                .subject("Monthly archive"),
        )?;
        // Mistakes and probes.
        for (i, user) in ["nobody", "info", "sales"].into_iter().enumerate() {
            let (client, helo, from, _) = externals[i % externals.len()];
            s.send(
                Message::inbound(K::UnknownRecipient, client, helo, from)
                    .to(&local(user), Outcome::Rejected { code_class: 5 }),
            )?;
        }
        for target in ["user@elsewhere.test", "victim@bigcorp.example", "x@example.com"] {
            s.send(
                Message::inbound(
                    K::RelayDenied,
                    CLIENT_RELAY_PROBE,
                    "probe.example.org",
                    "promo@cheap-pills.example",
                )
                .to(target, Outcome::Rejected { code_class: 5 }),
            )?;
        }
        for user in ["alice", "dave"] {
            s.send(
                Message::inbound(K::SpoofedSender, CLIENT_SPOOFER, LOCAL_DOMAIN, &local("ceo"))
                    .to(&local(user), Outcome::Delivered)
                    .subject("Urgent: wire transfer needed today"),
            )?;
        }
        s.imap(&local("dave"), "dave123")?;
        s.imap(&local("alice"), "alice-typo")?;
        s.imap(&local("alice"), password_of(&local("alice")).unwrap_or_default())?;
        s.imap(&local("admin"), "admin")?;

        // SASL brute force from one address.
        let attempts = [
            ("admin@lab.test", "123456"),
            ("alice@lab.test", "password"),
            ("info@lab.test", "info2024"),
            ("carol@lab.test", "carol1"),
            ("test", "test"),
            ("bob@lab.test", "qwerty"),
            ("webmaster@lab.test", "webmaster"),
            ("carol@lab.test", "Carol2024"),
            ("postmaster@lab.test", "postmaster"),
            ("carol@lab.test", "Summer2024!"),
            ("admin", "admin"),
            ("carol@lab.test", "letmein"),
        ];
        for (user, password) in attempts {
            s.send(
                Message::submission(K::BruteForce, user)
                    .auth(user, password)
                    .from(&format!(
                        "{}@{LOCAL_DOMAIN}",
                        user.split('@').next().unwrap_or(user)
                    ))
                    .client(CLIENT_ATTACKER)
                    .helo("WIN-3KQ8C2F1")
                    .to(&remote("target"), Outcome::AuthFailed),
            )?;
        }
        // The attacker found carol's password: a burst of spam from her account.
        for n in 0..30 {
            s.send(
                Message::submission(K::CompromisedBurst, &local("carol"))
                    .client(CLIENT_ATTACKER)
                    .helo("WIN-3KQ8C2F1")
                    .to(&remote(&format!("target{:02}", 2 * n + 1)), Outcome::Relayed)
                    .to(&remote(&format!("target{:02}", 2 * n + 2)), Outcome::Relayed)
                    .subject(&format!("Invoice overdue #{}", 4711 + n))
                    .body("Please pay the attached invoice immediately."),
            )?;
        }
        // Life goes on.
        s.send(
            Message::submission(K::AuthenticatedSubmission, &local("alice"))
                .to(&remote("friend3"), Outcome::Relayed)
                .subject("See you tomorrow"),
        )?;
        s.send(
            Message::inbound(
                K::InboundDelivery,
                CLIENT_PARTNER,
                "smtp.partner.example.org",
                "jane@partner.example.org",
            )
            .to(&local("carol"), Outcome::Delivered)
            .subject("Did you send me an invoice?"),
        )?;
        s.imap(&local("carol"), password_of(&local("carol")).unwrap_or_default())?;
        Ok(s.finish())
    }
}
