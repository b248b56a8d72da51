//! Tests against a real, private `redis-server` per test (never the machine's
//! own instance): lists filled exactly as Mailcow's syslog-ng, netfilter and
//! trim job fill them.

use mailwarden_core::framing::{Framer, FramerConfig};
use mailwarden_core::parse::{Family, parse_framed};
use mailwarden_core::time::TimeContext;
use tokio::task::JoinHandle;

use super::*;

const PASSWORD: &str = "t3st-Redis-Pass-4711";
const POSTFIX: &str = "POSTFIX_MAILLOG";
const NETFILTER: &str = "NETFILTER_LOG";
const T0: i64 = 1_733_300_000;

// ---------------------------------------------------------------------------
// A private redis-server.

/// The testlab's private redis-server, with this module's helpers.
struct PrivateRedis {
    server: mailwarden_testlab::RedisServer,
    port: u16,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let server = mailwarden_testlab::RedisServer::start(PASSWORD).expect("a private redis-server");
        let port = server.port();
        assert_ne!(port, 6379, "never the machine's own Redis");
        PrivateRedis { server, port }
    }

    /// Kills and starts it again on the same port: the data is gone.
    fn restart(&mut self) {
        self.server.restart().expect("redis-server restarts");
    }

    fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    fn config(&self) -> RedisConfig {
        RedisConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            password: Some(PASSWORD.into()),
            lists: vec![
                ListSpec::new(POSTFIX, Some("postfix")),
                ListSpec::new(NETFILTER, Some("netfilter")),
            ],
            poll_interval: Duration::from_secs(60),
            min_wake_gap: Duration::from_millis(5),
            chunk_size: 4,
            echo_grace: Duration::from_millis(300),
            timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(500),
            ..RedisConfig::default()
        }
    }

    async fn conn(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("test connection")
    }
}

// ---------------------------------------------------------------------------
// Filling lists as Mailcow does.

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// syslog-ng's `$(format-json time="$S_UNIXTIME" priority=… program=… message=…)\n`.
fn syslog_entry(time: i64, program: &str, message: &str) -> String {
    format!(
        "{{\"time\":\"{time}\",\"priority\":\"info\",\"program\":{},\"message\":{}}}\n",
        json_str(program),
        json_str(message)
    )
}

/// netfilter's `json.dumps({'time': int, 'priority': …, 'message': …})`.
fn netfilter_entry(time: i64, priority: &str, message: &str) -> String {
    format!(
        "{{\"time\": {time}, \"priority\": {}, \"message\": {}}}",
        json_str(priority),
        json_str(message)
    )
}

/// A distinct Postfix line number `i`.
fn postfix(i: usize) -> String {
    syslog_entry(
        T0 + i as i64 / 3,
        "postfix/smtpd",
        &format!("connect from unknown[203.0.113.{}]", i % 250),
    )
    .replace("connect from", &format!("[{i}] connect from"))
}

/// syslog-ng's `$(sanitize $MESSAGE)` for the channel.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect()
}

async fn lpush(c: &mut MultiplexedConnection, key: &str, value: &str) {
    redis::cmd("LPUSH")
        .arg(key)
        .arg(value)
        .query_async::<i64>(c)
        .await
        .expect("LPUSH");
}

async fn lpush_all(c: &mut MultiplexedConnection, key: &str, values: &[String]) {
    for v in values {
        lpush(c, key, v).await;
    }
}

/// Mailcow's `trim_logs.sh`: `LTRIM <list> 0 ${LOG_LINES}`.
async fn ltrim(c: &mut MultiplexedConnection, key: &str, log_lines: i64) {
    redis::cmd("LTRIM")
        .arg(key)
        .arg(0)
        .arg(log_lines)
        .query_async::<()>(c)
        .await
        .expect("LTRIM");
}

/// What syslog-ng does for one log line: LPUSH the entry to the list, then
/// PUBLISH the sanitized message on the channel.
async fn log_line(c: &mut MultiplexedConnection, key: &str, entry: &str) {
    lpush(c, key, entry).await;
    let message = entry_info(entry.as_bytes())
        .message
        .expect("entry with a message");
    publish(c, &sanitize(&message)).await;
}

async fn publish(c: &mut MultiplexedConnection, message: &str) {
    redis::cmd("PUBLISH")
        .arg(MAILCOW_CHANNEL)
        .arg(message)
        .query_async::<i64>(c)
        .await
        .expect("PUBLISH");
}

// ---------------------------------------------------------------------------
// Running the collector.

struct Running {
    handle: JoinHandle<Result<(), CollectError>>,
    rx: mpsc::Receiver<SourceRecord>,
    stats: Arc<RedisStats>,
    shutdown: CancellationToken,
}

fn start(cfg: RedisConfig, resume: BTreeMap<String, Checkpoint>, capacity: usize) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let stats = Arc::new(RedisStats::default());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(run(cfg, resume, tx, Arc::clone(&stats), shutdown.clone()));
    Running {
        handle,
        rx,
        stats,
        shutdown,
    }
}

impl Running {
    async fn take(&mut self, n: usize, within: Duration) -> Vec<SourceRecord> {
        let deadline = Instant::now() + within;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => out.push(r),
                Ok(None) => panic!(
                    "collector ended after {} of {n} records: {:?}",
                    out.len(),
                    self.stats.snapshot()
                ),
                Err(_) => panic!(
                    "only {} of {n} records within {within:?}: {:?}\ngot: {:#?}",
                    out.len(),
                    self.stats.snapshot(),
                    out.iter().map(|r| &r.line).collect::<Vec<_>>()
                ),
            }
        }
        out
    }

    async fn quiet(&mut self, d: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(d, self.rx.recv()).await {
            panic!("unexpected record {r:#?}");
        }
    }

    async fn until(&self, what: &str, f: impl Fn(&RedisStatsSnapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.stats.snapshot();
            if f(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> RedisStatsSnapshot {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("collector stops promptly")
            .expect("collector task");
        r.expect("collector ends without error");
        self.stats.snapshot()
    }
}

fn by_source<'a>(records: &'a [SourceRecord], source: &str) -> Vec<&'a SourceRecord> {
    records.iter().filter(|r| &*r.source == source).collect()
}

fn lines(records: &[&SourceRecord]) -> Vec<String> {
    records.iter().map(|r| r.line.clone()).collect()
}

/// The checkpoints the ingest side would have stored after these records.
fn checkpoints(records: &[SourceRecord]) -> BTreeMap<String, Checkpoint> {
    let mut m = BTreeMap::new();
    for r in records {
        if r.checkpoint != Checkpoint::None {
            m.insert(r.source.to_string(), r.checkpoint.clone());
        }
    }
    m
}

fn trimmed(entry: &str) -> String {
    entry.trim_end_matches('\n').to_owned()
}

const WITHIN: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Catching up and following.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_emits_every_entry_once_oldest_first() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..30).map(postfix).collect();
    lpush_all(&mut c, POSTFIX, &pf).await;
    // LOG_LINES=19: the trim job keeps 20 entries, the newest.
    ltrim(&mut c, POSTFIX, 19).await;
    let nf: Vec<String> = (0..12)
        .map(|i| {
            netfilter_entry(
                T0 + i,
                "warn",
                &format!(
                    "{} more attempts in the next 600 seconds until 198.51.100.{i}/32 is banned",
                    9 - i % 9
                ),
            )
        })
        .collect();
    lpush_all(&mut c, NETFILTER, &nf).await;

    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let got = run.take(32, WITHIN).await;
    run.quiet(Duration::from_millis(300)).await;

    let p = by_source(&got, "redis:POSTFIX_MAILLOG");
    assert_eq!(lines(&p), pf[10..].iter().map(|e| trimmed(e)).collect::<Vec<_>>());
    let n = by_source(&got, "redis:NETFILTER_LOG");
    assert_eq!(lines(&n), nf.iter().map(|e| trimmed(e)).collect::<Vec<_>>());
    for r in &got {
        assert_eq!(r.format, Format::Mailcow);
        assert!(!r.truncated);
    }
    assert_eq!(p[0].program_hint.as_deref(), Some("postfix"));
    assert_eq!(n[0].program_hint.as_deref(), Some("netfilter"));
    // The checkpoint is the hash of the entry as stored (with syslog-ng's
    // trailing newline), its time (string in the postfix list, integer in
    // netfilter's), and the run.
    assert_eq!(
        p.last().map(|r| r.checkpoint.clone()),
        Some(Checkpoint::RedisList {
            newest_hash: fnv1a(pf[29].as_bytes()),
            newest_time: T0 + 9,
            run: 1
        })
    );
    assert_eq!(
        n.last().map(|r| r.checkpoint.clone()),
        Some(Checkpoint::RedisList {
            newest_hash: fnv1a(nf[11].as_bytes()),
            newest_time: T0 + 11,
            run: 1
        })
    );
    let s = run.stop().await;
    assert_eq!((s.entries, s.gaps, s.skipped), (32, 0, 0));
    assert!(s.polls >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_wakes_the_collector_and_channel_only_messages_are_kept() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    // Polling every minute: anything faster is the channel's doing.
    let mut run = start(redis.config(), BTreeMap::new(), 64);
    run.until("subscription and first poll", |s| {
        s.channel_connected && s.polls >= 1
    })
    .await;

    // As syslog-ng does: LPUSH to the list, PUBLISH the sanitized message.
    let msg = "NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 <a@example.net>: Relay access denied; from=<x@example.org> to=<a@example.net> proto=ESMTP helo=<a/b>";
    let entry = syslog_entry(T0, "postfix/smtpd", msg);
    let sent = Instant::now();
    lpush(&mut c, POSTFIX, &entry).await;
    publish(&mut c, &sanitize(msg)).await;
    let got = run.take(1, WITHIN).await;
    let latency = sent.elapsed();
    assert_eq!(got[0].line, trimmed(&entry));
    assert!(
        latency < Duration::from_secs(1),
        "woken by PUBLISH, took {latency:?}"
    );

    // The two syslog-ng destinations are independent: PUBLISH may come first.
    let msg2 = "disconnect from unknown[203.0.113.5] ehlo=1 auth=0/1 quit=1 commands=2/3";
    let entry2 = syslog_entry(T0 + 1, "postfix/submission/smtpd", msg2);
    publish(&mut c, &sanitize(msg2)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    lpush(&mut c, POSTFIX, &entry2).await;
    let got = run.take(1, WITHIN).await;
    assert_eq!(got[0].line, trimmed(&entry2));

    // A failed admin login is published only: it becomes a channel record.
    let ui = "mailcow UI: Invalid password for admin by 203.0.113.9";
    publish(&mut c, ui).await;
    let got = run.take(1, WITHIN).await;
    assert_eq!(&*got[0].source, "redis:F2B_CHANNEL");
    assert_eq!(got[0].line, ui);
    assert_eq!(got[0].format, Format::Raw);
    assert_eq!(got[0].program_hint.as_deref(), Some(CHANNEL_PROGRAM));
    assert_eq!(got[0].checkpoint, Checkpoint::None);

    // The copies of list entries were not stored twice.
    run.quiet(Duration::from_millis(800)).await;
    let s = run.stop().await;
    assert_eq!((s.entries, s.channel_only, s.channel_messages), (2, 1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_consecutive_entries_are_not_collapsed() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    // The same line three times in the same second (e.g. a client hammering).
    let e = syslog_entry(
        T0,
        "postfix/smtpd",
        "lost connection after AUTH from unknown[203.0.113.7]",
    );
    let x = syslog_entry(
        T0,
        "postfix/smtpd",
        "disconnect from unknown[203.0.113.7] ehlo=1 auth=0/1 commands=1/2",
    );
    lpush_all(&mut c, POSTFIX, &[e.clone(), e.clone(), e.clone()]).await;

    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let got = run.take(3, WITHIN).await;
    assert!(got.iter().all(|r| r.line == trimmed(&e)));
    let runs: Vec<u32> = got
        .iter()
        .map(|r| match r.checkpoint {
            Checkpoint::RedisList { run, .. } => run,
            _ => 0,
        })
        .collect();
    assert_eq!(runs, vec![1, 2, 3]);

    // One more identical one.
    log_line(&mut c, POSTFIX, &e).await;
    let got = run.take(1, WITHIN).await;
    assert_eq!(got[0].line, trimmed(&e));

    // A different line, then the same line again, between two polls: the old
    // `E` is not mistaken for the new one.
    lpush(&mut c, POSTFIX, &x).await;
    log_line(&mut c, POSTFIX, &e).await;
    let got = run.take(2, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        vec![trimmed(&x), trimmed(&e)]
    );

    // A longer run of the same line above another line, above the consumed
    // run: `X E E E E` arriving on top of `… A E E E` (A = x here).
    log_line(&mut c, POSTFIX, &e).await;
    log_line(&mut c, POSTFIX, &e).await;
    run.take(2, WITHIN).await;
    let burst = [x.clone(), e.clone(), e.clone(), e.clone(), e.clone()];
    lpush_all(&mut c, POSTFIX, &burst[..4]).await;
    log_line(&mut c, POSTFIX, &burst[4]).await;
    let got = run.take(5, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        burst.iter().map(|l| trimmed(l)).collect::<Vec<_>>()
    );
    let last = got[4].checkpoint.clone();
    assert!(matches!(last, Checkpoint::RedisList { run: 4, .. }), "{last:?}");
    run.quiet(Duration::from_millis(500)).await;
    run.stop().await;

    // After a restart (checkpoint only, run 4): `X E` on top is not taken for
    // the checkpoint (a run of 1 is shorter than the consumed 4)…
    lpush_all(&mut c, POSTFIX, &[x.clone(), e.clone()]).await;
    let stored = BTreeMap::from([("redis:POSTFIX_MAILLOG".to_owned(), last)]);
    let mut run = start(redis.config(), stored, 64);
    let got = run.take(2, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        vec![trimmed(&x), trimmed(&e)]
    );
    let last = got[1].checkpoint.clone();
    run.stop().await;

    // …and two more identical entries on top of the checkpointed one are new.
    lpush_all(&mut c, POSTFIX, &[e.clone(), e.clone()]).await;
    let mut run = start(
        redis.config(),
        BTreeMap::from([("redis:POSTFIX_MAILLOG".to_owned(), last)]),
        64,
    );
    let got = run.take(2, WITHIN).await;
    assert!(got.iter().all(|r| r.line == trimmed(&e)));
    assert!(matches!(got[1].checkpoint, Checkpoint::RedisList { run: 3, .. }));
    run.quiet(Duration::from_millis(300)).await;
    run.stop().await;
}

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bursts_of_repeated_lines_are_followed_exactly() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    // Three lines in the same second: long runs and repeats everywhere.
    let alphabet: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|m| {
            syslog_entry(
                T0,
                "postfix/smtpd",
                &format!("lost connection after AUTH from unknown[203.0.113.1] {m}"),
            )
        })
        .collect();
    let mut cfg = redis.config();
    cfg.lists.truncate(1);
    cfg.chunk_size = 3;
    let mut run = start(cfg, BTreeMap::new(), 256);
    run.until("the first poll", |s| s.polls >= 1 && s.channel_connected)
        .await;
    let mut rng = Lcg(42);
    let mut total = 0;
    for round in 0..60 {
        let k = 1 + rng.below(12) as usize;
        let burst: Vec<String> = (0..k).map(|_| alphabet[rng.below(3) as usize].clone()).collect();
        lpush_all(&mut c, POSTFIX, &burst[..k - 1]).await;
        log_line(&mut c, POSTFIX, &burst[k - 1]).await;
        let got = run.take(k, WITHIN).await;
        assert_eq!(
            lines(&got.iter().collect::<Vec<_>>()),
            burst.iter().map(|l| trimmed(l)).collect::<Vec<_>>(),
            "round {round}"
        );
        total += k;
        // The trim job now and then (only read entries are removed).
        if round % 7 == 6 {
            ltrim(&mut c, POSTFIX, 15).await;
        }
    }
    run.quiet(Duration::from_millis(500)).await;
    let s = run.stop().await;
    assert_eq!((s.entries, s.gaps), (total as u64, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_checkpoint_emits_nothing_twice_and_nothing_missing() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..25).map(postfix).collect();
    let nf: Vec<String> = (0..6)
        .map(|i| {
            netfilter_entry(
                T0 + i,
                "crit",
                &format!("Banning 198.51.100.{i}/32 for 30 minutes"),
            )
        })
        .collect();
    lpush_all(&mut c, POSTFIX, &pf[..10]).await;
    lpush_all(&mut c, NETFILTER, &nf[..3]).await;

    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let first = run.take(13, WITHIN).await;
    run.stop().await;
    let stored = checkpoints(&first);

    // While stopped: more of both, with identical entries across the boundary.
    lpush_all(&mut c, POSTFIX, &pf[10..]).await;
    lpush(&mut c, POSTFIX, &pf[24]).await;
    lpush_all(&mut c, NETFILTER, &nf[3..]).await;

    let mut run = start(redis.config(), stored, 64);
    let second = run.take(19, WITHIN).await;
    run.quiet(Duration::from_millis(300)).await;
    let s = run.stop().await;
    assert_eq!(s.gaps, 0);

    let mut want: Vec<String> = pf[10..].iter().map(|e| trimmed(e)).collect();
    want.push(trimmed(&pf[24]));
    assert_eq!(lines(&by_source(&second, "redis:POSTFIX_MAILLOG")), want);
    assert_eq!(
        lines(&by_source(&second, "redis:NETFILTER_LOG")),
        nf[3..].iter().map(|e| trimmed(e)).collect::<Vec<_>>()
    );

    // Nothing new: a third start emits nothing.
    let mut all = first.clone();
    all.extend(second);
    let mut run = start(redis.config(), checkpoints(&all), 64);
    run.until("a poll", |s| s.polls >= 1).await;
    run.quiet(Duration::from_millis(300)).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_past_the_checkpoint_is_reported_as_a_gap() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..40).map(postfix).collect();
    lpush_all(&mut c, POSTFIX, &pf[..10]).await;
    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let first = run.take(10, WITHIN).await;
    run.stop().await;

    // While stopped, 25 lines arrive and the trim job keeps 10 (LOG_LINES=9).
    lpush_all(&mut c, POSTFIX, &pf[10..35]).await;
    ltrim(&mut c, POSTFIX, 9).await;

    let mut run = start(redis.config(), checkpoints(&first), 64);
    let got = run.take(10, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        pf[25..35].iter().map(|e| trimmed(e)).collect::<Vec<_>>()
    );
    run.until("the gap", |s| s.gaps == 1).await;

    // Following on after the gap works normally, without another gap.
    log_line(&mut c, POSTFIX, &pf[35]).await;
    let got = run.take(1, WITHIN).await;
    assert_eq!(got[0].line, trimmed(&pf[35]));
    let s = run.stop().await;
    assert_eq!((s.gaps, s.entries), (1, 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_mid_run_is_survived() {
    let mut redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..10).map(postfix).collect();
    lpush_all(&mut c, POSTFIX, &pf[..3]).await;
    let mut cfg = redis.config();
    cfg.poll_interval = Duration::from_millis(200);
    let mut run = start(cfg, BTreeMap::new(), 64);
    run.take(3, WITHIN).await;
    run.until("the subscription", |s| s.channel_connected).await;

    redis.restart();
    run.until(
        "reconnected, channel resubscribed, and the empty list seen",
        |s| s.connected && s.channel_connected && s.reconnects >= 2 && s.resets == 1,
    )
    .await;
    assert!(run.stats.snapshot().last_error.is_some());

    let mut c = redis.conn().await;
    lpush_all(&mut c, POSTFIX, &pf[3..5]).await;
    let got = run.take(2, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        pf[3..5].iter().map(|e| trimmed(e)).collect::<Vec<_>>()
    );
    publish(&mut c, "Rspamd UI: Invalid password by 198.51.100.23").await;
    let got = run.take(1, WITHIN).await;
    assert_eq!(&*got[0].source, "redis:F2B_CHANNEL");
    run.quiet(Duration::from_millis(500)).await;
    let s = run.stop().await;
    assert_eq!((s.entries, s.gaps), (5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_password_is_a_clear_error_without_retrying() {
    let redis = PrivateRedis::start();
    for (password, says) in [
        (Some("not-the-password"), "REDISPASS"),
        (None, "requires a password"),
    ] {
        let mut cfg = redis.config();
        cfg.password = password.map(str::to_owned);
        let run = start(cfg, BTreeMap::new(), 8);
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(5), run.handle)
            .await
            .expect("returns instead of retrying")
            .expect("task");
        let err = result.expect_err("authentication fails");
        assert!(started.elapsed() < Duration::from_secs(3));
        let text = err.to_string();
        assert!(matches!(err, CollectError::Auth { .. }), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{}", redis.port)), "{text}");
        assert!(!text.contains("not-the-password"), "{text}");
        let s = run.stats.snapshot();
        assert!(s.last_error.as_deref().is_some_and(|e| e.contains(says)), "{s:?}");
        assert!(!s.connected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_frame_and_parse_as_typed_events() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let entries = [
        syslog_entry(
            T0,
            "postfix/smtpd",
            "4Y3kQw1Zz7z3tBr: client=unknown[203.0.113.5], sasl_method=LOGIN, sasl_username=info@example.net",
        ),
        syslog_entry(
            T0 + 1,
            "postfix/submission/smtpd",
            "warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        ),
        syslog_entry(
            T0 + 2,
            "postfix/smtp",
            "4Y3kQw1Zz7z3tBr: to=<bob@example.org>, relay=mx.example.org[192.0.2.25]:25, delay=0.6, delays=0.1/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
        ),
    ];
    lpush_all(&mut c, POSTFIX, &entries).await;
    lpush(
        &mut c,
        NETFILTER,
        &netfilter_entry(T0 + 3, "crit", "Banning 203.0.113.5/32 for 30 minutes"),
    )
    .await;
    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let mut got = run.take(4, WITHIN).await;
    publish(&mut c, "mailcow UI: Invalid password for admin by 203.0.113.9").await;
    got.extend(run.take(1, WITHIN).await);
    run.stop().await;

    let mut families = Vec::new();
    for r in &got {
        let mut framer = Framer::new(FramerConfig {
            format: r.format,
            program_hint: r.program_hint.as_deref().map(str::to_owned),
            time: TimeContext::utc(r.received),
        });
        let framed = framer
            .frame(&r.line)
            .unwrap_or_else(|e| panic!("{}: {e:?}", r.line));
        if &*r.source == "redis:F2B_CHANNEL" {
            // A bare message of the web UI's PHP. (The core's php-fpm parser
            // reads `mailcow UI: …` only inside php-fpm's or nginx's own
            // framing so far, so this one stays unparsed there.)
            assert_eq!((&*framed.program, &*framed.message), ("php-fpm", r.line.as_str()));
            continue;
        }
        assert!(framed.ts.is_some(), "{}", r.line);
        let ev = parse_framed(&framed);
        families.push((r.source.to_string(), ev.kind.family(), ev.program.to_owned()));
    }
    assert_eq!(
        families,
        vec![
            (
                "redis:POSTFIX_MAILLOG".into(),
                Some(Family::Postfix),
                "postfix/smtpd".into()
            ),
            (
                "redis:POSTFIX_MAILLOG".into(),
                Some(Family::Postfix),
                "postfix/submission/smtpd".into()
            ),
            (
                "redis:POSTFIX_MAILLOG".into(),
                Some(Family::Postfix),
                "postfix/smtp".into()
            ),
            (
                "redis:NETFILTER_LOG".into(),
                Some(Family::Netfilter),
                "netfilter".into()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_entries_are_cut_and_resume_after_them() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let big = syslog_entry(T0, "postfix/cleanup", &"A".repeat(5000));
    let small = postfix(1);
    lpush_all(&mut c, POSTFIX, &[small.clone(), big.clone()]).await;
    let mut cfg = redis.config();
    cfg.max_entry_bytes = 1024;
    let mut run = start(cfg.clone(), BTreeMap::new(), 64);
    let got = run.take(2, WITHIN).await;
    assert!(!got[0].truncated);
    assert!(got[1].truncated);
    assert_eq!(got[1].line.len(), 1024);
    assert!(big.starts_with(&got[1].line));
    let s = run.stop().await;
    assert_eq!(s.truncated, 1);

    // The cut entry is the checkpoint: resuming after it works.
    lpush(&mut c, POSTFIX, &postfix(2)).await;
    let mut run = start(cfg, checkpoints(&got), 64);
    let again = run.take(1, WITHIN).await;
    assert_eq!(again[0].line, trimmed(&postfix(2)));
    run.quiet(Duration::from_millis(300)).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_catch_up_reads_only_the_newest_entries() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..50).map(postfix).collect();
    lpush_all(&mut c, POSTFIX, &pf).await;
    let mut cfg = redis.config();
    cfg.max_catch_up = Some(10);
    let mut run = start(cfg, BTreeMap::new(), 64);
    let got = run.take(10, WITHIN).await;
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        pf[40..].iter().map(|e| trimmed(e)).collect::<Vec<_>>()
    );
    run.quiet(Duration::from_millis(300)).await;
    let s = run.stop().await;
    assert_eq!((s.skipped, s.gaps), (40, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_trims_during_catch_up_lose_and_repeat_nothing() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    let pf: Vec<String> = (0..60).map(postfix).collect();
    lpush_all(&mut c, POSTFIX, &pf[..40]).await;
    let mut cfg = redis.config();
    cfg.lists.truncate(1);
    // A channel of one record: the collector waits on the ingest side while
    // reading the list in chunks of 4.
    let mut run = start(cfg, BTreeMap::new(), 1);
    let mut got = run.take(12, WITHIN).await;

    // Meanwhile Mailcow goes on: 5 new lines, and the trim job removes the 5
    // oldest (already read) entries, which moves every index from the tail.
    lpush_all(&mut c, POSTFIX, &pf[40..45]).await;
    ltrim(&mut c, POSTFIX, 39).await;
    got.extend(run.take(8, WITHIN).await);
    // And again, while still catching up.
    lpush_all(&mut c, POSTFIX, &pf[45..49]).await;
    ltrim(&mut c, POSTFIX, 39).await;
    log_line(&mut c, POSTFIX, &pf[49]).await;
    got.extend(run.take(30, WITHIN).await);
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(500), run.rx.recv()).await {
        got.push(r);
    }
    let s = run.stop().await;

    let numbers: Vec<usize> = got
        .iter()
        .map(|r| {
            pf.iter()
                .position(|e| trimmed(e) == r.line)
                .expect("a known line")
        })
        .collect();
    assert_eq!(numbers, (0..50).collect::<Vec<_>>(), "{s:?}");
    assert_eq!(s.gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_does_not_stop_the_other_lists() {
    let redis = PrivateRedis::start();
    let mut c = redis.conn().await;
    redis::cmd("SET")
        .arg(NETFILTER)
        .arg("not a list")
        .query_async::<()>(&mut c)
        .await
        .expect("SET");
    lpush(&mut c, POSTFIX, &postfix(1)).await;
    let mut run = start(redis.config(), BTreeMap::new(), 64);
    let got = run.take(1, WITHIN).await;
    assert_eq!(&*got[0].source, "redis:POSTFIX_MAILLOG");
    run.until("the list error", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("NETFILTER_LOG") && e.contains("WRONGTYPE"))
    })
    .await;
    let s = run.stop().await;
    assert!(s.connected || s.errors >= 1);
}

// ---------------------------------------------------------------------------
// Pure helpers.

#[test]
fn entry_time_is_read_from_strings_and_integers() {
    let cases: &[(&str, i64, Option<&str>)] = &[
        (
            "{\"time\":\"1733300000\",\"message\":\"m\"}\n",
            1_733_300_000,
            Some("m"),
        ),
        (
            "{\"time\": 1733300001, \"priority\": \"warn\", \"message\": \"b\"}",
            1_733_300_001,
            Some("b"),
        ),
        (
            "{\"time\":1733300002.7,\"message\":\"c\"}",
            1_733_300_002,
            Some("c"),
        ),
        ("{\"time\":\" 1733300003 \"}", 1_733_300_003, None),
        ("{\"time\":null,\"message\":5}", 0, None),
        (
            "{\"uri\":\"/api/v1/get/logs\",\"time\":1733300004}",
            1_733_300_004,
            None,
        ),
        ("not json", 0, None),
    ];
    for (entry, time, message) in cases {
        let info = entry_info(entry.as_bytes());
        assert_eq!((info.time, info.message.as_deref()), (*time, *message), "{entry}");
    }
}

#[test]
fn channel_copies_match_their_list_messages() {
    let list = "warning: hostname mail/x does not resolve\ttab";
    let channel = sanitize(list);
    assert_ne!(list, channel);
    assert_eq!(echo_key(list.as_bytes()), echo_key(channel.as_bytes()));
    assert_ne!(echo_key(b"a"), echo_key(b"b"));

    let mut set = EchoSet::new(3);
    set.insert(1);
    set.insert(1);
    set.insert(2);
    assert!(set.take(1));
    set.insert(3);
    set.insert(4);
    // The oldest were forgotten; each insertion matches once.
    assert!(!set.take(1));
    assert!(set.take(3));
    assert!(!set.take(3));
    assert!(set.take(4));
    assert!(set.order.len() <= 3);
}

#[test]
fn cut_entries_hash_by_their_prefix_and_length() {
    let whole = RawEntry {
        bytes: b"abc".to_vec(),
        full_len: 3,
    };
    assert_eq!(whole.hash(), fnv1a(b"abc"));
    let cut = RawEntry {
        bytes: b"abc".to_vec(),
        full_len: 70_000,
    };
    let cut_other = RawEntry {
        bytes: b"abc".to_vec(),
        full_len: 70_001,
    };
    assert!(cut.truncated());
    assert_ne!(cut.hash(), whole.hash());
    assert_ne!(cut.hash(), cut_other.hash());
}

#[test]
fn config_from_mailcow_and_validation() {
    let conf = MailcowConf::parse(
        std::path::Path::new("/opt/mailcow-dockerized"),
        "REDISPASS=Zx9Wq\nREDIS_PORT=127.0.0.1:7654\n",
    )
    .expect("parses");
    let cfg = RedisConfig::from_mailcow(&conf).expect("config");
    assert_eq!((cfg.host.as_str(), cfg.port), ("127.0.0.1", 7654));
    assert_eq!(cfg.password.as_deref(), Some("Zx9Wq"));
    assert_eq!(cfg.lists.len(), 9);
    assert_eq!(cfg.channel.as_deref(), Some("F2B_CHANNEL"));
    assert!(cfg.validate().is_ok());
    assert!(!format!("{cfg:?}").contains("Zx9Wq"));
    let nf = cfg
        .lists
        .iter()
        .find(|l| l.key == "NETFILTER_LOG")
        .expect("netfilter list");
    assert_eq!(nf.program_hint.as_deref(), Some("netfilter"));

    let bad = RedisConfig {
        lists: Vec::new(),
        channel: None,
        ..RedisConfig::default()
    };
    assert!(matches!(bad.validate(), Err(CollectError::Config(_))));
    let bad = RedisConfig {
        chunk_size: 0,
        ..RedisConfig::default()
    };
    assert!(bad.validate().is_err());
    assert_eq!(RedisConfig::source_key("RL_LOG"), "redis:RL_LOG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_busy_list_with_concurrent_trims_is_followed_exactly() {
    use std::sync::atomic::AtomicUsize;

    let redis = PrivateRedis::start();
    let alphabet: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|m| syslog_entry(T0, "dovecot", &format!("imap-login: Disconnected: {m}")))
        .collect();
    let mut cfg = redis.config();
    cfg.lists.truncate(1);
    cfg.chunk_size = 3;
    cfg.poll_interval = Duration::from_millis(30);
    // A slow ingest side: the collector reads while the list moves.
    let mut run = start(cfg, BTreeMap::new(), 4);
    let received = Arc::new(AtomicUsize::new(0));

    let mut rng = Lcg(7);
    let pushed: Vec<String> = (0..400)
        .map(|_| alphabet[rng.below(3) as usize].clone())
        .collect();
    let producer = {
        let pushed = pushed.clone();
        let received = Arc::clone(&received);
        let mut c = redis.conn().await;
        tokio::spawn(async move {
            let mut rng = Lcg(11);
            let mut p = 0;
            let mut trims = 0;
            while p < pushed.len() {
                let k = (1 + rng.below(10) as usize).min(pushed.len() - p);
                for e in &pushed[p..p + k] {
                    lpush(&mut c, POSTFIX, e).await;
                }
                p += k;
                // The trim job, keeping everything not yet received plus a
                // margin of read entries.
                if rng.below(4) == 0 {
                    let keep = p - received.load(Ordering::SeqCst) + 20;
                    if keep < p {
                        ltrim(&mut c, POSTFIX, keep as i64 - 1).await;
                        trims += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(rng.below(4))).await;
            }
            trims
        })
    };
    let mut got = Vec::new();
    while got.len() < pushed.len() {
        let r = run.take(1, Duration::from_secs(10)).await;
        got.extend(r);
        received.store(got.len(), Ordering::SeqCst);
    }
    let trims = producer.await.expect("producer");
    run.quiet(Duration::from_millis(300)).await;
    let s = run.stop().await;
    assert!(trims > 5, "the list was trimmed while being read ({trims})");
    assert_eq!(
        lines(&got.iter().collect::<Vec<_>>()),
        pushed.iter().map(|l| trimmed(l)).collect::<Vec<_>>()
    );
    assert_eq!(s.gaps, 0);
}
