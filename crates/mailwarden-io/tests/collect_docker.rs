//! The Docker collector against real components:
//!
//! 1. A Docker data root in the on-disk format Docker writes (`config.v2.json`,
//!    `<id>-json.log` with a rotated `.1` and a compressed `.2.gz` carrying
//!    Docker's gzip header, a torn line), read with `read_data_root`: every line
//!    once, oldest first; nothing again when resumed from the emitted
//!    checkpoints; only the newer lines of a re-created container.
//! 2. Podman's Docker-compatible API service as the engine: a private
//!    `podman system service` (own storage, locks, network config and socket
//!    under a temporary directory; nothing of the machine's is touched) with
//!    containers that are created, never started — their logs are k8s-file logs
//!    the test writes, which Podman serves through the logs endpoint. `run`
//!    follows them, skips another project's container, resumes from its
//!    checkpoints, follows a re-created container from the name's checkpoint,
//!    falls back to the data root when the service is killed and recovers when
//!    a new service is started on the same socket.
//!
//! Part 2 needs root and `podman` (Debian: `apt-get install podman`, as
//! `.ci/run` does); a missing requirement fails the test with that hint, it is
//! never skipped.

use mailwarden_testlab::podman::Podman;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::{Compression, GzBuilder};
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::time::{TimeContext, Timestamp};
use mailwarden_io::collect::docker::{self, DockerConfig, DockerError, DockerStats, DockerStatsSnapshot};
use mailwarden_io::collect::{Checkpoint, SourceRecord};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "mailcowdockerized";
const POSTFIX: &str = "mailcowdockerized-postfix-mailcow-1";
const DOVECOT: &str = "mailcowdockerized-dovecot-mailcow-1";
const RSPAMD: &str = "mailcowdockerized-rspamd-mailcow-1";

// ---------------------------------------------------------------------------
// Writing a data root the way Docker does

/// A string as Docker's json-file writer escapes it.
fn docker_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One json-file line (with its newline) as Docker writes it.
fn json_line(text: &str, stream: &str, time: &str) -> String {
    format!(
        "{{\"log\":\"{}\\n\",\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n",
        docker_escape(text)
    )
}

/// `config.v2.json` of a compose container, shaped like Docker 24's.
fn config_v2(id: &str, name: &str, project: &str, service: &str, created: &str) -> String {
    r#"{"StreamConfig":{},"State":{"Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"RemovalInProgress":false,"Dead":false,"Pid":2345,"ExitCode":0,"Error":"","StartedAt":"@CREATED@","FinishedAt":"0001-01-01T00:00:00Z","Health":null},"ID":"@ID@","Created":"@CREATED@","Managed":false,"Path":"/docker-entrypoint.sh","Args":["/usr/local/sbin/supervisord.sh"],"Config":{"Hostname":"@SHORT@","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"ExposedPorts":{"25/tcp":{},"465/tcp":{},"587/tcp":{},"588/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["LOG_LINES=9999","TZ=Europe/Berlin","MAILCOW_HOSTNAME=mail.example.org","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/usr/local/sbin/supervisord.sh"],"Image":"ghcr.io/mailcow/postfix:1.80","Volumes":null,"WorkingDir":"","Entrypoint":["/docker-entrypoint.sh"],"OnBuild":null,"Labels":{"com.docker.compose.config-hash":"0c3b0e1f6d1c4a7f0a1e7f3c5b0d2e9a8c6f4b2d1e0f9a8b7c6d5e4f3a2b1c0d","com.docker.compose.container-number":"1","com.docker.compose.depends_on":"","com.docker.compose.image":"sha256:3f1e2d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071","com.docker.compose.oneoff":"False","com.docker.compose.project":"@PROJECT@","com.docker.compose.project.config_files":"/opt/mailcow-dockerized/docker-compose.yml","com.docker.compose.project.working_dir":"/opt/mailcow-dockerized","com.docker.compose.service":"@SERVICE@","com.docker.compose.version":"2.24.5"},"StopSignal":"SIGTERM"},"Image":"sha256:3f1e2d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071","ImageManifest":null,"NetworkSettings":{"Bridge":"","SandboxID":"","SandboxKey":"","HairpinMode":false,"LinkLocalIPv6Address":"","LinkLocalIPv6PrefixLen":0,"Networks":{"mailcowdockerized_mailcow-network":{"IPAMConfig":{"IPv4Address":"172.22.1.253"},"Links":null,"Aliases":["postfix","@SHORT@"],"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null}},"Service":null,"Ports":null,"SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"IsAnonymousEndpoint":false,"HasSwarmEndpoint":false},"LogPath":"/var/lib/docker/containers/@ID@/@ID@-json.log","Name":"/@NAME@","Driver":"overlay2","OS":"linux","RestartCount":0,"HasBeenStartedBefore":true,"HasBeenManuallyStopped":false,"MountPoints":{},"SecretReferences":null,"ConfigReferences":null,"MountLabel":"","ProcessLabel":"","AppArmorProfile":"docker-default","SeccompProfile":"","NoNewPrivileges":false,"HostnamePath":"/var/lib/docker/containers/@ID@/hostname","HostsPath":"/var/lib/docker/containers/@ID@/hosts","ShmPath":"","ResolvConfPath":"/var/lib/docker/containers/@ID@/resolv.conf","LocalLogCacheMeta":{"HaveNotifyEnabled":false}}"#
        .replace("@ID@", id)
        .replace("@SHORT@", &id[..12])
        .replace("@CREATED@", created)
        .replace("@NAME@", name)
        .replace("@PROJECT@", project)
        .replace("@SERVICE@", service)
}

/// A container directory of a data root (config, hostconfig, no logs yet).
fn add_container(root: &Path, id: &str, name: &str, project: &str, service: &str, created: &str) -> PathBuf {
    let dir = root.join("containers").join(id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.v2.json"),
        config_v2(id, name, project, service, created),
    )
    .unwrap();
    fs::write(
        dir.join("hostconfig.json"),
        r#"{"LogConfig":{"Type":"json-file","Config":{"max-file":"3","max-size":"10m","compress":"true"}},"NetworkMode":"mailcowdockerized_mailcow-network","RestartPolicy":{"Name":"always","MaximumRetryCount":0}}"#,
    )
    .unwrap();
    dir
}

/// A rotated generation compressed the way Docker does it (the last stamp as
/// JSON in the gzip header's extra field).
fn write_gz(path: &Path, content: &str, last_time: &str) {
    let extra = format!("{{\"LastTime\":\"{last_time}\"}}");
    let f = fs::File::create(path).unwrap();
    let mut gz = GzBuilder::new()
        .extra(extra.into_bytes())
        .write(f, Compression::default());
    gz.write_all(content.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn stamp(day: u32, sec: u32, nanos: u32) -> String {
    let (h, m, s) = (sec / 3600, sec / 60 % 60, sec % 60);
    // Go's RFC3339Nano: the fraction without trailing zeros, none if zero.
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    format!("2024-03-{day:02}T{h:02}:{m:02}:{s:02}{dot}{frac}Z")
}

/// Mailcow postfix's output for one delivery, as syslog-ng writes it to stdout.
fn postfix_text(i: u32) -> String {
    let (m, s) = (i / 60 % 60, i % 60);
    [
        format!("Mar 14 00:{m:02}:{s:02} a1b2c3d4e5f6 postfix/smtpd[{}]: connect from mail-ej1-f41.google.com[209.85.218.41]", 300 + i),
        format!("Mar 14 00:{m:02}:{s:02} a1b2c3d4e5f6 postfix/smtpd[{}]: 4TvX{i:04}Lz: client=mail-ej1-f41.google.com[209.85.218.41]", 300 + i),
        format!("Mar 14 00:{m:02}:{s:02} a1b2c3d4e5f6 postfix/cleanup[{}]: 4TvX{i:04}Lz: message-id=<CAF{i}x@mail.gmail.com>", 400 + i),
        format!("Mar 14 00:{m:02}:{s:02} a1b2c3d4e5f6 postfix/qmgr[341]: 4TvX{i:04}Lz: from=<alice@gmail.com>, size=4321, nrcpt=1 (queue active)"),
        format!("Mar 14 00:{m:02}:{s:02} a1b2c3d4e5f6 postfix/lmtp[{}]: 4TvX{i:04}Lz: to=<bob@example.org>, relay=dovecot[172.22.1.250]:24, delay=0.41, delays=0.3/0/0/0.11, dsn=2.0.0, status=sent (250 2.0.0 <bob@example.org> Saved)", 500 + i),
    ][(i % 5) as usize]
        .clone()
}

struct Generation {
    /// The file's content.
    content: String,
    /// The texts of its valid lines, with the garbage lines as they are.
    lines: Vec<String>,
}

/// Postfix lines `from..from + n`, two per second: every other pair shares
/// one stamp (as lines logged within a clock tick do), the others differ in
/// their nanoseconds.
fn generation(from: u32, n: u32) -> Generation {
    let mut content = String::new();
    let mut lines = Vec::new();
    for k in 0..n {
        let i = from + k;
        let nanos = if i % 4 < 2 {
            500_000_000
        } else {
            (i % 2) * 250_000_000 + 123
        };
        let text = postfix_text(i);
        let stream = if i.is_multiple_of(7) { "stderr" } else { "stdout" };
        content += &json_line(&text, stream, &stamp(14, i / 2, nanos));
        lines.push(text);
    }
    Generation { content, lines }
}

/// The log text of a record (the `log` field without its newline), or the raw
/// line for a record that is not valid JSON.
fn text_of(r: &SourceRecord) -> String {
    match serde_json::from_str::<serde_json::Value>(&r.line) {
        Ok(v) => v["log"].as_str().unwrap().trim_end_matches('\n').to_owned(),
        Err(_) => r.line.clone(),
    }
}

fn read_root(
    root: &Path,
    resume: &BTreeMap<String, Checkpoint>,
) -> (Vec<SourceRecord>, docker::DataRootSummary) {
    let mut out = Vec::new();
    let sum = docker::read_data_root(root, Some(PROJECT), resume, 64 * 1024, &mut |r| {
        out.push(r);
        true
    })
    .unwrap();
    (out, sum)
}

fn last_checkpoints(recs: &[SourceRecord]) -> BTreeMap<String, Checkpoint> {
    recs.iter()
        .map(|r| (r.source.to_string(), r.checkpoint.clone()))
        .collect()
}

fn of_source<'a>(recs: &'a [SourceRecord], name: &str) -> Vec<&'a SourceRecord> {
    let key = format!("docker:{name}");
    recs.iter().filter(|r| *r.source == *key).collect()
}

const POSTFIX_ID: &str = "8d2b3a1c9e7f60514b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
const POSTFIX_ID2: &str = "1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";
const DOVECOT_ID: &str = "c0ffee00aa11bb22cc33dd44ee55ff66778899aabbccddeeff00112233445566";
const RSPAMD_ID: &str = "5a5a5a5a6b6b6b6b7c7c7c7c8d8d8d8d9e9e9e9eafafafafb0b0b0b0c1c1c1c1";
const OTHER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn data_root_every_line_once_oldest_first_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pdir = add_container(
        root,
        POSTFIX_ID,
        POSTFIX,
        PROJECT,
        "postfix-mailcow",
        "2024-03-13T22:10:03.5Z",
    );
    let oldest = generation(0, 40);
    let older = generation(40, 40);
    let mut live = generation(80, 20);
    // A line torn by a crash (no newline before the next record), and an empty one.
    let torn = r#"{"log":"Mar 14 00:01:40 a1b2c3d4e5f6 postfix/smtpd[380]: disconn{"log":"Mar 14 00:01:40 a1b2c3d4e5f6 postfix/anvil[120]: statistics","stream":"stdout","time":"2024-03-14T00:00:50.1Z"}"#;
    live.content += torn;
    live.content += "\n";
    live.lines.push(torn.to_owned());
    let tail = generation(100, 5);
    live.content += &tail.content;
    live.lines.extend(tail.lines);
    write_gz(
        &pdir.join(format!("{POSTFIX_ID}-json.log.2.gz")),
        &oldest.content,
        "2024-03-14T00:00:19.5Z",
    );
    fs::write(pdir.join(format!("{POSTFIX_ID}-json.log.1")), &older.content).unwrap();
    fs::write(pdir.join(format!("{POSTFIX_ID}-json.log")), &live.content).unwrap();

    let ddir = add_container(
        root,
        DOVECOT_ID,
        DOVECOT,
        PROJECT,
        "dovecot-mailcow",
        "2024-03-13T22:10:02Z",
    );
    let dovecot_text = "Mar 14 00:00:05 mail dovecot: imap-login: Login: user=<bob@example.org>, method=PLAIN, rip=192.0.2.7, lip=172.22.1.250, mpid=4242, TLS, session=<aBcDeF>";
    fs::write(
        ddir.join(format!("{DOVECOT_ID}-json.log")),
        json_line(dovecot_text, "stdout", "2024-03-14T00:00:05.000000001Z"),
    )
    .unwrap();
    // Another project's container: not read.
    let odir = add_container(
        root,
        OTHER_ID,
        "nextcloud-app-1",
        "nextcloud",
        "app",
        "2024-03-13T22:00:00Z",
    );
    fs::write(
        odir.join(format!("{OTHER_ID}-json.log")),
        json_line("GET /status.php", "stdout", "2024-03-14T00:00:01Z"),
    )
    .unwrap();

    let t0 = Instant::now();
    let (recs, sum) = read_root(root, &BTreeMap::new());
    let expected: Vec<String> = [&oldest.lines, &older.lines, &live.lines]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(sum.containers, 2);
    assert_eq!(sum.files, 4);
    assert_eq!(sum.bad_lines, 1);
    assert_eq!(sum.skipped, 0);
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert_eq!(sum.lines, expected.len() as u64 + 1);
    // Containers by name: dovecot first, then postfix — every line once, oldest first.
    let d = of_source(&recs, DOVECOT);
    assert_eq!(d.len(), 1);
    assert_eq!(text_of(d[0]), dovecot_text);
    assert_eq!(d[0].program_hint.as_deref(), Some("dovecot"));
    let p = of_source(&recs, POSTFIX);
    assert_eq!(p.iter().map(|r| text_of(r)).collect::<Vec<_>>(), expected);
    assert!(recs.iter().all(|r| !r.source.contains("nextcloud")));
    for r in &p {
        assert_eq!(r.format, Format::Docker);
        assert_eq!(r.program_hint.as_deref(), Some("postfix"));
        assert!(!r.truncated);
        assert!(
            matches!(&r.checkpoint, Checkpoint::Docker { container_id, .. } if container_id == POSTFIX_ID)
        );
    }
    // Data-root lines are the file's lines as they are, and `received` is the stamp.
    assert_eq!(
        format!("{}\n", p[0].line),
        json_line(&oldest.lines[0], "stderr", "2024-03-14T00:00:00.5Z")
    );
    assert_eq!(p[0].received.to_string(), "2024-03-14T00:00:00.500000Z");
    // The core's framing reads them as postfix lines stamped by Docker.
    let mut framer = Framer::new(FramerConfig {
        format: Format::Docker,
        program_hint: Some("postfix".into()),
        time: TimeContext::utc(Timestamp::from_unix_seconds(1_800_000_000)),
    });
    let f = framer.frame(&p[4].line).unwrap();
    assert_eq!(f.program, "postfix/lmtp");
    assert!(
        f.message.starts_with("4TvX0004Lz: to=<bob@example.org>"),
        "{}",
        f.message
    );

    // Resumed from the checkpoints of what was emitted: nothing new.
    let cps = last_checkpoints(&recs);
    let (again, sum2) = read_root(root, &cps);
    assert!(again.is_empty(), "{} lines emitted twice", again.len());
    assert_eq!(sum2.skipped, sum.lines);

    // Resumed from the middle of the rotated `.1`.
    let mid = &p[55];
    let (rest, _) = read_root(
        root,
        &BTreeMap::from([(mid.source.to_string(), mid.checkpoint.clone())]),
    );
    let rest: Vec<String> = of_source(&rest, POSTFIX).iter().map(|r| text_of(r)).collect();
    assert_eq!(rest, expected[56..]);

    // `docker compose up` re-created postfix: same name, new id, a new log
    // with lines both older and newer than the checkpoint.
    fs::remove_dir_all(&pdir).unwrap();
    let p2 = add_container(
        root,
        POSTFIX_ID2,
        POSTFIX,
        PROJECT,
        "postfix-mailcow",
        "2024-03-14T00:01:00Z",
    );
    let mut content = json_line(
        "stale line older than the checkpoint",
        "stdout",
        "2024-03-14T00:00:10Z",
    );
    let newer = [
        "Mar 14 00:02:00 f6e5d4c3b2a1 postfix/master[1]: daemon started -- version 3.7.10, configuration /etc/postfix",
        "Mar 14 00:02:01 f6e5d4c3b2a1 postfix/smtpd[77]: connect from unknown[198.51.100.23]",
    ];
    content += &json_line(newer[0], "stdout", "2024-03-14T00:02:00.000001Z");
    content += &json_line(newer[1], "stdout", "2024-03-14T00:02:01Z");
    fs::write(p2.join(format!("{POSTFIX_ID2}-json.log")), content).unwrap();
    let (recreated, sum3) = read_root(root, &cps);
    let texts: Vec<String> = recreated.iter().map(text_of).collect();
    assert_eq!(texts, newer);
    assert_eq!(sum3.skipped, 2, "the stale line and dovecot's line");
    assert!(
        matches!(&recreated[1].checkpoint, Checkpoint::Docker { container_id, .. } if container_id == POSTFIX_ID2)
    );
    eprintln!("data-root test: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// Podman as the engine

/// Creates (never starts) a container of compose `project`/`service` whose
/// logs are the k8s-file `log`.
fn create(pm: &Podman, name: &str, project: &str, service: &str, log: &Path) -> String {
    pm.create_rootfs(
        name,
        &[
            ("com.docker.compose.project", project),
            ("com.docker.compose.service", service),
        ],
        log,
    )
}

/// A k8s-file log line (Podman's format; its stamp must have all nine
/// fraction digits), with its newline.
fn k8s_line(time: &str, stream: &str, text: &str) -> String {
    format!("{time} {stream} F {text}\n")
}

fn append(path: &Path, data: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data.as_bytes()).unwrap();
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running collector and what it has sent so far.
struct Running {
    token: CancellationToken,
    task: JoinHandle<Result<(), DockerError>>,
    stats: Arc<DockerStats>,
    store: Arc<Mutex<Vec<SourceRecord>>>,
}

impl Running {
    fn start(rt: &Runtime, cfg: DockerConfig, resume: BTreeMap<String, Checkpoint>) -> Running {
        let (tx, mut rx) = mpsc::channel::<SourceRecord>(8);
        let token = CancellationToken::new();
        let stats = Arc::new(DockerStats::default());
        let store = Arc::new(Mutex::new(Vec::new()));
        let task = rt.spawn(docker::run(cfg, resume, tx, stats.clone(), token.clone()));
        let s = store.clone();
        rt.spawn(async move {
            while let Some(r) = rx.recv().await {
                s.lock().unwrap().push(r);
            }
        });
        Running {
            token,
            task,
            stats,
            store,
        }
    }

    fn records(&self) -> Vec<SourceRecord> {
        self.store.lock().unwrap().clone()
    }

    fn stats(&self) -> DockerStatsSnapshot {
        self.stats.snapshot()
    }

    fn wait(&self, what: &str, mut cond: impl FnMut(&[SourceRecord], &DockerStatsSnapshot) -> bool) {
        let ok = wait_for(Duration::from_secs(20), || cond(&self.records(), &self.stats()));
        assert!(
            ok,
            "timed out waiting for {what}; stats {:?}; records {:#?}",
            self.stats(),
            self.records()
                .iter()
                .map(|r| (r.source.to_string(), r.line.clone()))
                .collect::<Vec<_>>()
        );
    }

    /// Cancels and checks the collector ends promptly with Ok.
    fn stop(self, rt: &Runtime) -> Vec<SourceRecord> {
        let t = Instant::now();
        self.token.cancel();
        let res = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(3), self.task).await })
            .expect("collector did not stop within 3 s of the cancel")
            .expect("collector task panicked");
        assert!(res.is_ok(), "{res:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
        self.store.lock().unwrap().clone()
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn missing(why: &str) -> ! {
    panic!("collect_docker::podman_api cannot run: {why}");
}

#[test]
fn podman_api_follow_resume_recreate_fallback_recover() {
    if !podman_available() {
        missing("`podman` is not installed; fix: apt-get install podman");
    }
    if !is_root() {
        missing("needs root (a private rootful podman service)");
    }
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut pm = Podman::new();
    let postfix_log = pm.path("logs/postfix.log");
    let dovecot_log = pm.path("logs/dovecot.log");
    let other_log = pm.path("logs/other.log");
    let mut postfix_texts = Vec::new();
    let mut content = String::new();
    for i in 0..12 {
        // Pairs of lines share a second (Podman's API has whole seconds).
        let text = postfix_text(i);
        content += &k8s_line(
            &format!("2024-03-14T00:00:{:02}.{:09}+00:00", i / 2, i * 1000 + 7),
            "stdout",
            &text,
        );
        postfix_texts.push(text);
    }
    fs::write(&postfix_log, content).unwrap();
    let dovecot_text = "Mar 14 00:00:09 mail dovecot: lmtp(bob@example.org)<4242><aBcD>: msgid=<CAF0x@mail.gmail.com>: saved mail to INBOX";
    fs::write(
        &dovecot_log,
        k8s_line("2024-03-14T00:00:09.500000000+00:00", "stderr", dovecot_text),
    )
    .unwrap();
    fs::write(
        &other_log,
        k8s_line("2024-03-14T00:00:01.000000000+00:00", "stdout", "another project"),
    )
    .unwrap();
    let postfix_id = create(&pm, POSTFIX, PROJECT, "postfix-mailcow", &postfix_log);
    create(&pm, DOVECOT, PROJECT, "dovecot-mailcow", &dovecot_log);
    create(&pm, "nextcloud-app-1", "nextcloud", "app", &other_log);
    pm.start_service();

    // The fallback's data root: a Docker root with rspamd's log, and another
    // project's container.
    let droot = pm.path("docker-root");
    let rdir = add_container(
        &droot,
        RSPAMD_ID,
        RSPAMD,
        PROJECT,
        "rspamd-mailcow",
        "2024-03-13T22:10:02Z",
    );
    let rspamd_text = "2024-03-14 00:03:00 #27538(normal) <8ae27d>; task; rspamd_task_write_log: id: <CAF0x@mail.gmail.com>, qid: <4TvX0000Lz>, ip: 209.85.218.41, from: <alice@gmail.com>, (default: F (no action): [-0.10/15.00] [BAYES_HAM(-3.00){99.99%;}]), len: 4321, time: 87.310ms, dns req: 21, digest: <9f0e8d7c>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>";
    fs::write(
        rdir.join(format!("{RSPAMD_ID}-json.log")),
        json_line(rspamd_text, "stdout", "2024-03-14T00:03:00.25Z"),
    )
    .unwrap();
    let odir = add_container(
        &droot,
        OTHER_ID,
        "nextcloud-db-1",
        "nextcloud",
        "db",
        "2024-03-13T22:00:00Z",
    );
    fs::write(
        odir.join(format!("{OTHER_ID}-json.log")),
        json_line("ready", "stdout", "2024-03-14T00:00:01Z"),
    )
    .unwrap();

    let cfg = DockerConfig {
        socket: pm.socket(),
        project: Some(PROJECT.into()),
        data_root: droot.clone(),
        poll_interval: Duration::from_millis(100),
        max_line_bytes: 64 * 1024,
    };

    // 1. Follow through the API.
    let c = Running::start(&rt, cfg.clone(), BTreeMap::new());
    c.wait("all lines through the API", |r, s| {
        r.len() >= 13 && s.mode == "api"
    });
    let s = c.stats();
    assert_eq!((s.mode.as_str(), s.containers), ("api", 2), "{s:?}");
    let recs = c.records();
    let p = of_source(&recs, POSTFIX);
    assert_eq!(p.iter().map(|r| text_of(r)).collect::<Vec<_>>(), postfix_texts);
    for (i, r) in p.iter().enumerate() {
        assert_eq!(r.format, Format::Docker);
        assert_eq!(r.program_hint.as_deref(), Some("postfix"));
        // A json-file line as Docker would have stored it (Podman's API gives
        // whole seconds).
        assert_eq!(
            format!("{}\n", r.line),
            json_line(
                &postfix_texts[i],
                "stdout",
                &format!("2024-03-14T00:00:{:02}Z", i / 2)
            )
        );
        assert!(
            matches!(&r.checkpoint, Checkpoint::Docker { container_id, same_stamp_seen, .. }
            if *container_id == postfix_id && *same_stamp_seen == (i % 2 + 1) as u32)
        );
    }
    let d = of_source(&recs, DOVECOT);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].program_hint.as_deref(), Some("dovecot"));
    assert_eq!(
        format!("{}\n", d[0].line),
        json_line(dovecot_text, "stderr", "2024-03-14T00:00:09Z")
    );
    assert!(
        recs.iter().all(|r| !r.source.contains("nextcloud")),
        "another project's container was read"
    );
    assert_eq!(recs.len(), 13);
    // New lines of a container are picked up (stopped containers are looked
    // at again every 12 polls), without repeating the old ones.
    let more = "Mar 14 00:00:06 a1b2c3d4e5f6 postfix/smtpd[320]: disconnect from mail-ej1-f41.google.com[209.85.218.41] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7";
    append(
        &postfix_log,
        &k8s_line("2024-03-14T00:00:05.900000000+00:00", "stdout", more),
    );
    c.wait("an appended line", |r, _| r.len() >= 14);
    std::thread::sleep(Duration::from_millis(300));
    let recs = c.stop(&rt);
    assert_eq!(recs.len(), 14, "{:#?}", &recs[13..]);
    assert_eq!(text_of(&recs[13]), more);
    postfix_texts.push(more.to_owned());

    // 2. Restarted from the checkpoints: nothing again; then a re-created
    // postfix container (same name, new id) is followed from the checkpoint.
    let cps = last_checkpoints(&recs);
    let c = Running::start(&rt, cfg.clone(), cps.clone());
    c.wait("listing after the restart", |_, s| {
        s.mode == "api" && s.containers == 2
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(c.records().is_empty(), "re-sent: {:#?}", c.records());
    pm.run(&["rm", "-f", POSTFIX]);
    let postfix_log2 = pm.path("logs/postfix2.log");
    let newer = [
        "Mar 14 00:01:00 f6e5d4c3b2a1 postfix/master[1]: daemon started -- version 3.7.10, configuration /etc/postfix",
        "Mar 14 00:01:00 f6e5d4c3b2a1 postfix/smtpd[90]: connect from unknown[198.51.100.23]",
    ];
    let mut content = k8s_line(
        "2024-03-14T00:00:02.000000000+00:00",
        "stdout",
        "older than the checkpoint",
    );
    content += &k8s_line("2024-03-14T00:01:00.100000000+00:00", "stdout", newer[0]);
    content += &k8s_line("2024-03-14T00:01:00.200000000+00:00", "stdout", newer[1]);
    fs::write(&postfix_log2, content).unwrap();
    let postfix_id2 = create(&pm, POSTFIX, PROJECT, "postfix-mailcow", &postfix_log2);
    assert_ne!(postfix_id, postfix_id2);
    c.wait("the re-created container's new lines", |r, _| r.len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let recs = c.records();
    assert_eq!(recs.iter().map(text_of).collect::<Vec<_>>(), newer);
    assert!(
        matches!(&recs[1].checkpoint, Checkpoint::Docker { container_id, same_stamp_seen: 2, .. }
        if *container_id == postfix_id2)
    );

    // 3. The service dies: the collector reports it, reads the data root once,
    // retries with backoff (no busy loop), never panics.
    pm.kill_service();
    let killed = Instant::now();
    c.wait("the fallback to the data root", |r, s| {
        s.mode == "data_root" && r.iter().any(|r| *r.source == *format!("docker:{RSPAMD}"))
    });
    let rs = of_source(&c.records(), RSPAMD)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        format!("{}\n", rs[0].line),
        json_line(rspamd_text, "stdout", "2024-03-14T00:03:00.25Z")
    );
    assert_eq!(rs[0].program_hint.as_deref(), Some("rspamd"));
    assert!(c.records().iter().all(|r| !r.source.contains("nextcloud")));
    c.wait("reconnect attempts", |_, s| s.reconnects >= 2);
    std::thread::sleep(Duration::from_millis(700));
    let s = c.stats();
    assert_eq!(s.mode, "data_root");
    assert!(s.errors >= 1, "{s:?}");
    let sock = pm.socket().display().to_string();
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains(&sock)),
        "{s:?}"
    );
    assert_eq!(s.catchups, 1, "the data root is read once per outage");
    assert_eq!(s.containers, 1, "rspamd, not the other project's container");
    let secs = killed.elapsed().as_secs_f64();
    assert!(
        s.reconnects <= 8,
        "{} reconnects in {secs:.1} s: busy loop? {s:?}",
        s.reconnects
    );
    assert!(!c.task.is_finished(), "the collector gave up");

    // 4. A new service on the same socket: back to the API.
    pm.start_service();
    c.wait("the API again", |_, s| s.mode == "api" && s.containers == 2);
    let later = "Mar 14 00:05:00 mail dovecot: imap(bob@example.org)<4300><xYz>: Disconnected: Logged out in=120 out=2345";
    append(
        &dovecot_log,
        &k8s_line("2024-03-14T00:05:00.000000000+00:00", "stdout", later),
    );
    c.wait("a new line after the recovery", |r, _| {
        r.iter().any(|r| text_of(r) == later)
    });
    std::thread::sleep(Duration::from_millis(300));
    let recs = c.stop(&rt);
    let texts: Vec<String> = recs.iter().map(text_of).collect();
    assert_eq!(texts.iter().filter(|t| *t == later).count(), 1);
    assert_eq!(recs.len(), 4, "{texts:#?}");
    eprintln!("podman test: {:?}", t0.elapsed());
}
