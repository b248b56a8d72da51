//! Detection end to end on real traffic: a private Postfix + Dovecot lab
//! (see `mailwarden-testlab`) receives normal mail, then a compromised
//! account's burst to many domains, then a brute force from one address and
//! a distributed one against one account; `mailwarden detect` replays the
//! real logs after each phase and must raise exactly the alerts each phase
//! deserves, with the default thresholds.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use mailwarden_testlab::{LabOptions, MailLab, Message, Outcome, Scenario, ScenarioKind as K};

use crate::support::mailwarden;

/// The compromised account's client address.
const BURST_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 20);
/// The single-address brute forcer.
const GUESSER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 30);

/// Runs `detect --json` over the lab's logs; returns (rule, key) of every alert.
fn alerts(lab: &MailLab) -> (BTreeSet<(String, String)>, Vec<serde_json::Value>) {
    lab.wait_idle().unwrap_or_else(|e| panic!("{e}"));
    let mail = lab.mail_log().display().to_string();
    let dovecot = lab.dovecot_log().display().to_string();
    let r = mailwarden(
        lab.dir(),
        &[
            "detect",
            "--json",
            "--our-domain",
            "lab.test",
            "--replay",
            &mail,
            &dovecot,
        ],
    );
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let all = r.json_lines();
    let set = all
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or_default().to_owned(),
                a["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (set, all)
}

fn rules(set: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    set.iter().map(|(r, _)| r.as_str()).collect()
}

#[test]
fn rules_fire_on_real_attacks_and_stay_quiet_on_normal_mail() {
    let lab = MailLab::start(LabOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut s = Scenario::new(&lab, "det", true);
    let local = |u: &str| format!("{u}@lab.test");

    // Phase 1: an ordinary hour.
    for (n, user) in ["alice", "bob", "dave", "alice", "bob"].iter().enumerate() {
        s.send(
            Message::submission(K::AuthenticatedSubmission, &local(user))
                .to(&format!("friend{n}@remote.test"), Outcome::Relayed)
                .to(&local("carol"), Outcome::Delivered),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for user in ["alice", "bob"] {
        s.send(
            Message::inbound(
                K::InboundDelivery,
                Ipv4Addr::new(127, 0, 0, 2),
                "mx.partner.example",
                "news@partner.example",
            )
            .to(&local(user), Outcome::Delivered),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    s.imap(&local("bob"), "Bob-Lab-Pass-2")
        .unwrap_or_else(|e| panic!("{e}"));
    // A typo is not an attack.
    s.imap(&local("dave"), "dave-typo")
        .unwrap_or_else(|e| panic!("{e}"));
    s.imap(&local("dave"), "Dave-Lab-Pass-4")
        .unwrap_or_else(|e| panic!("{e}"));
    let (normal, all) = alerts(&lab);
    assert!(normal.is_empty(), "normal traffic raised alerts: {all:#?}");

    // Phase 2: carol's password is stolen; 5 messages × 45 recipients in 45
    // different domains leave from a new address.
    for m in 0..5 {
        let mut msg = Message::submission(K::CompromisedBurst, &local("carol"))
            .client(BURST_CLIENT)
            .helo("WIN-3KQ8C2F1")
            .subject(&format!("Invoice overdue #{}", 4711 + m));
        for d in 0..45 {
            msg = msg.to(&format!("buyer{m}@shop{d:02}.remote.test"), Outcome::Relayed);
        }
        s.send(msg).unwrap_or_else(|e| panic!("{e}"));
    }
    let (after_burst, all) = alerts(&lab);
    let want: BTreeSet<&str> = [
        "outbound-burst-account",
        "outbound-burst-sender",
        "recipient-domains-spread",
    ]
    .into();
    assert_eq!(rules(&after_burst), want, "{all:#?}");
    for (rule, key) in &after_burst {
        assert!(key.contains("carol@lab.test"), "{rule} {key}");
    }
    let burst = all
        .iter()
        .find(|a| a["rule"] == "outbound-burst-account")
        .expect("burst alert");
    assert_eq!(burst["count"], 225, "{burst:#}");
    assert!(!burst["evidence"].as_array().expect("evidence").is_empty());

    // Phase 3: one address guesses bob's password 12 times on submission.
    for n in 0..12 {
        s.send(
            Message::submission(K::BruteForce, &local("bob"))
                .auth(&local("bob"), &format!("guess-{n}"))
                .client(GUESSER)
                .helo("kali")
                .to("target@remote.test", Outcome::AuthFailed),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let (after_guess, all) = alerts(&lab);
    let new: BTreeSet<_> = after_guess.difference(&after_burst).cloned().collect();
    assert_eq!(
        new,
        [("auth-bruteforce-ip".to_owned(), GUESSER.to_string())].into(),
        "{all:#?}"
    );

    // Phase 4: six more addresses, two guesses each, all for bob.
    for host in 41..47u8 {
        for n in 0..2 {
            s.send(
                Message::submission(K::BruteForce, &local("bob"))
                    .auth(&local("bob"), &format!("botnet-{host}-{n}"))
                    .client(Ipv4Addr::new(127, 0, 0, host))
                    .helo("bot")
                    .to("target@remote.test", Outcome::AuthFailed),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let (after_spread, all) = alerts(&lab);
    let new: BTreeSet<_> = after_spread.difference(&after_guess).cloned().collect();
    assert_eq!(rules(&new), ["auth-distributed-account"].into(), "{all:#?}");
    let dist = all
        .iter()
        .find(|a| a["rule"] == "auth-distributed-account")
        .expect("distributed alert");
    assert!(
        dist["key"].as_str().unwrap_or_default().contains("bob@lab.test"),
        "{dist:#}"
    );
    assert!(dist["count"].as_u64().unwrap_or(0) >= 5, "{dist:#}");
}
