//! Live alerting end to end: `mailwarden serve` follows the real lab's mail
//! log while an attacker guesses a password and a stolen account sends as
//! an address that is no mailbox; the built-in rules and a user rule fire
//! as the lines arrive, the
//! alerts are stored, and a signed webhook reaches a real HTTP server that
//! verifies the signature. Then `alerts list` and `alerts ack` work on what
//! serve stored.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailwarden_io::notify::webhook::verify;
use mailwarden_testlab::{
    HttpsRequest, HttpsRoute, HttpsServer, LabOptions, MailLab, Message, Outcome, Scenario, ScenarioKind as K,
};

use crate::support::mailwarden;

const SECRET: &[u8] = b"lab-webhook-secret-0123456789";

struct Serve {
    child: Child,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(dir: &Path, config: &Path) -> Serve {
        let log = dir.join("serve.stderr");
        let err = std::fs::File::create(&log).expect("serve log");
        let child = Command::new(env!("CARGO_BIN_EXE_mailwarden"))
            .args(["serve", "--no-mailcow", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn mailwarden serve");
        Serve { child, log }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "serve did not stop:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hooks(server: &HttpsServer) -> Vec<(HttpsRequest, serde_json::Value)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .map(|r| {
            let v = serde_json::from_slice(&r.body).expect("webhook body is JSON");
            (r, v)
        })
        .collect()
}

fn wait_for(what: &str, serve: &Serve, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; serve said:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serve_raises_stores_and_sends_alerts_as_lines_arrive() {
    let lab = MailLab::start(LabOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let server = HttpsServer::start_plain(vec![HttpsRoute::new("/hook", 204)]).expect("webhook server");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::write(d.join("hook.secret"), SECRET).unwrap();
    // The directory: the lab's mailboxes.
    std::fs::write(
        d.join("addresses.txt"),
        "alice@lab.test\nbob@lab.test\ncarol@lab.test\ndave@lab.test\n",
    )
    .unwrap();
    // A user rule runs live beside the built-ins.
    std::fs::write(
        d.join("rules.yaml"),
        "rules:\n  - id: lab-bob-guessed\n    title: Someone guesses bob's password\n    severity: medium\n\
         \x20   detection:\n      selection:\n        kind: postfix\n        user: bob@lab.test\n\
         \x20       line|contains: authentication failed\n      condition: selection\n\
         \x20   group_by: [user]\n    timeframe: 10m\n    threshold: 5\n",
    )
    .unwrap();
    let config = d.join("mailwarden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\
             [[files]]\npath = {log:?}\n\
             [detect]\nour_domains = [\"lab.test\"]\ndirectory = {list:?}\nwarmup = \"0s\"\n\
             rules = [{rules:?}]\n\
             [alerts]\n[[alerts.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             secret_file = {secret:?}\nmin_severity = \"medium\"\n",
            data = data.display().to_string(),
            log = lab.mail_log().display().to_string(),
            list = d.join("addresses.txt").display().to_string(),
            rules = d.join("rules.yaml").display().to_string(),
            port = server.port(),
            secret = d.join("hook.secret").display().to_string(),
        ),
    )
    .unwrap();
    let mut serve = Serve::start(d, &config);
    wait_for("serve to start", &serve, Duration::from_secs(60), || {
        serve.stderr().contains("detection on")
    });

    let mut s = Scenario::new(&lab, "live", true);
    // A stolen account sends as an address that is no mailbox.
    s.send(
        Message::submission(K::AuthenticatedSubmission, "alice@lab.test")
            .from("payroll@lab.test")
            .to("victim@remote.test", Outcome::Relayed),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Twelve guesses from one address.
    for n in 0..12 {
        s.send(
            Message::submission(K::BruteForce, "bob@lab.test")
                .auth("bob@lab.test", &format!("guess-{n}"))
                .client(Ipv4Addr::new(127, 0, 0, 30))
                .helo("kali")
                .to("target@remote.test", Outcome::AuthFailed),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    lab.wait_idle().unwrap_or_else(|e| panic!("{e}"));

    wait_for("three webhooks", &serve, Duration::from_secs(90), || {
        let got: Vec<String> = hooks(&server)
            .iter()
            .map(|(_, v)| v["alert"]["rule"].as_str().unwrap_or_default().to_owned())
            .collect();
        ["auth-bruteforce-ip", "sender-not-mailbox", "lab-bob-guessed"]
            .iter()
            .all(|want| got.iter().any(|r| r == want))
    });
    // Give a duplicate the chance to show up, then stop.
    std::thread::sleep(Duration::from_secs(3));
    serve.stop();

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let got = hooks(&server);
    for (req, body) in &got {
        let ts = req.header("x-mailwarden-timestamp").expect("timestamp header");
        let sig = req.header("x-mailwarden-signature").expect("signature header");
        verify(SECRET, ts, &req.body, sig, now, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
        assert!(
            verify(b"wrong secret", ts, &req.body, sig, now, Duration::from_secs(600)).is_err(),
            "a wrong secret must not verify"
        );
        assert_eq!(body["type"], "mailwarden.alert");
        assert_eq!(body["event"], "opened");
        assert!(body["alert_id"].as_i64().is_some(), "{body:#}");
    }
    let rules: Vec<&str> = got
        .iter()
        .map(|(_, v)| v["alert"]["rule"].as_str().unwrap_or_default())
        .collect();
    // One notice per alert: the closing update is merged, not sent again.
    let mut sorted = rules.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["auth-bruteforce-ip", "lab-bob-guessed", "sender-not-mailbox"],
        "{got:#?}"
    );
    let brute = &got
        .iter()
        .find(|(_, v)| v["alert"]["rule"] == "auth-bruteforce-ip")
        .expect("brute-force notice")
        .1;
    assert_eq!(brute["alert"]["key"], "127.0.0.30");
    let spoof = &got
        .iter()
        .find(|(_, v)| v["alert"]["rule"] == "sender-not-mailbox")
        .expect("sender notice")
        .1;
    assert!(
        spoof["alert"]["key"]
            .as_str()
            .unwrap_or_default()
            .contains("payroll@lab.test"),
        "{spoof:#}"
    );

    // What serve stored.
    let data_s = data.display().to_string();
    let r = mailwarden(d, &["alerts", "list", "--json", "--data-dir", &data_s]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed = r.json_lines();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let id = brute["alert_id"].as_i64().expect("id");
    let stored = listed
        .iter()
        .find(|a| a["id"] == id)
        .expect("the notified id is stored");
    assert_eq!(stored["rule"], "auth-bruteforce-ip");
    assert_eq!(stored["state"], "open");
    let r = mailwarden(
        d,
        &[
            "alerts",
            "ack",
            &id.to_string(),
            "--note",
            "blocked",
            "--data-dir",
            &data_s,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = mailwarden(d, &["alerts", "list", "--json", "--data-dir", &data_s]);
    assert_eq!(
        r.json_lines().len(),
        2,
        "the acknowledged alert is no longer listed as open"
    );
    let r = mailwarden(
        d,
        &[
            "alerts",
            "list",
            "--json",
            "--state",
            "acknowledged",
            "--data-dir",
            &data_s,
        ],
    );
    let acked = r.json_lines();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["id"], id);
    assert_eq!(acked[0]["ack_note"], "blocked");
}
