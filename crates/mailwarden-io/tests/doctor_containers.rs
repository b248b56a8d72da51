//! `doctor containers` against real components:
//!
//! 1. Podman's Docker-compatible API (a private `podman system service`, all
//!    state in a temporary directory, as in `collect_docker.rs`): images
//!    imported from rootfs tarballs this test builds and tagged like
//!    Mailcow's (`mariadb:10.11`, `ghcr.io/mailcow/postfix:1.80`), containers
//!    created (never started: they cannot run in this sandbox) with compose
//!    labels; compose pins compared with them; a tag re-imported (as a
//!    re-pull does) is found as a moved tag; an auto-updater is found.
//! 2. Running, crash-looping, unhealthy and OOM-killed containers and a
//!    running Watchtower, from inspect answers in the Docker API's shape.
//! 3. The real Mailcow compose files (the 10.5 → 10.11 pin change), when
//!    /work/shared is present.
//!
//! Part 1 needs root and `podman`; a missing requirement fails the test with
//! that hint, it is never skipped.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bollard::models::ContainerInspectResponse;
use mailwarden_core::doctor::container::{self, ids};
use mailwarden_core::doctor::{Finding, Severity};
use mailwarden_io::doctor::docker::{self, ContainersConfig};
use mailwarden_testlab::podman::{Podman, podman_available};

const PROJECT: &str = "mailcowdockerized";
const MYSQL: &str = "mailcowdockerized-mysql-mailcow-1";
const POSTFIX: &str = "mailcowdockerized-postfix-mailcow-1";
/// 2024-03-14T12:00:00Z
const NOW: i64 = 1_710_417_600;

/// Our own small compose project (the Mailcow shape, three services).
const COMPOSE: &str = "\
services:
  mysql-mailcow:
    image: mariadb:${MARIADB_TAG:-10.11}
    labels:
      ofelia.enabled: \"$${NOT_A_VAR}\"
  postfix-mailcow:
    image: ghcr.io/mailcow/postfix:${POSTFIX_TAG}
  redis-mailcow:
    image: redis:7.4.6-alpine
";

fn find<'a>(f: &'a [Finding], id: &str, subject: &str) -> Option<&'a Finding> {
    f.iter().find(|f| f.id == id && f.subject == subject)
}

fn expect<'a>(f: &'a [Finding], id: &str, subject: &str, sev: Severity) -> &'a Finding {
    let got = find(f, id, subject).unwrap_or_else(|| panic!("no {id} for {subject} in {f:#?}"));
    assert_eq!(got.severity, sev, "{got:#?}");
    got
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn compose_project(
    dir: &Path,
    compose: &str,
    env: &str,
) -> (
    Option<mailwarden_core::doctor::compose::ComposeProject>,
    Vec<Finding>,
) {
    let file = dir.join("docker-compose.yml");
    fs::write(&file, compose).unwrap();
    fs::write(dir.join(".env"), env).unwrap();
    let mut findings = Vec::new();
    let vars = docker::read_env_files(&[dir.join(".env"), dir.join("absent.conf")], &mut findings);
    let p = docker::load_compose(&[file], &vars, &mut findings);
    (p, findings)
}

#[test]
fn podman_pins_retag_and_updaters() {
    if !podman_available() {
        panic!("doctor_containers cannot run: `podman` is not installed; fix: apt-get install podman");
    }
    if !is_root() {
        panic!("doctor_containers cannot run: needs root (a private rootful podman service)");
    }
    let rt = rt();
    let mut pm = Podman::new();
    let id1 = pm.import("docker.io/library/mariadb:10.11", "10.11.6");
    pm.run(&[
        "tag",
        "docker.io/library/mariadb:10.11",
        "docker.io/library/mariadb:10.11.6",
    ]);
    let postfix_img = pm.import("ghcr.io/mailcow/postfix:1.80", "postfix-1.80");
    pm.run(&[
        "tag",
        "ghcr.io/mailcow/postfix:1.80",
        "docker.io/containrrr/watchtower:latest",
    ]);
    let compose_labels = |svc: &'static str| {
        [
            ("com.docker.compose.project", PROJECT),
            ("com.docker.compose.service", svc),
        ]
    };
    pm.create(
        MYSQL,
        "docker.io/library/mariadb:10.11",
        &compose_labels("mysql-mailcow"),
        &[],
    );
    pm.create(
        POSTFIX,
        "ghcr.io/mailcow/postfix:1.80",
        &compose_labels("postfix-mailcow"),
        &[],
    );
    pm.create(
        "other-db-1",
        "docker.io/library/mariadb:10.11",
        &[("com.docker.compose.project", "other")],
        &[],
    );
    pm.create(
        "watchtower",
        "docker.io/containrrr/watchtower:latest",
        &[],
        &[
            "--env",
            "WATCHTOWER_CLEANUP=true",
            "--env",
            "WATCHTOWER_NOTIFICATION_URL=secret",
        ],
    );
    pm.start_service();
    let cfg = ContainersConfig {
        socket: pm.socket(),
        project: PROJECT.into(),
    };
    let work = pm.path("compose");
    fs::create_dir_all(&work).unwrap();
    let (compose, cf) = compose_project(
        &work,
        COMPOSE,
        "POSTFIX_TAG=1.80\nCOMPOSE_PROJECT_NAME=mailcowdockerized\n",
    );
    assert!(cf.is_empty(), "{cf:#?}");
    let compose = compose.unwrap();

    // 1. As created: pins against the images the containers run.
    let f = rt.block_on(docker::check(&cfg, Some(&compose), NOW));
    let never = expect(&f, ids::STOPPED, MYSQL, Severity::Info);
    assert!(never.message.contains("never started"), "{never:#?}");
    expect(&f, ids::PIN_FLOATING, "mysql-mailcow", Severity::Warning);
    let m = expect(&f, ids::IMAGE_MATCHES, MYSQL, Severity::Pass);
    assert!(m.evidence[0].contains(&id1[..12]), "{m:#?}");
    expect(&f, ids::PIN_FIXED, "postfix-mailcow", Severity::Pass);
    expect(&f, ids::IMAGE_MATCHES, POSTFIX, Severity::Pass);
    expect(&f, ids::SERVICE_MISSING, "redis-mailcow", Severity::Info);
    assert!(find(&f, ids::IMAGE_NOT_PIN, MYSQL).is_none(), "{f:#?}");
    assert!(
        f.iter().all(|f| !f.subject.contains("other-db")),
        "another project's container: {f:#?}"
    );
    // The auto-updater is found (outside the project); it is not running, so info.
    let w = expect(&f, container::ids::AUTOUPDATER, "watchtower", Severity::Info);
    assert!(
        w.evidence.iter().any(|e| e == "env WATCHTOWER_CLEANUP=true"),
        "{w:#?}"
    );
    assert!(w.evidence.iter().all(|e| !e.contains("secret")), "{w:#?}");
    assert!(
        w.evidence.iter().any(|e| e.contains(MYSQL)),
        "the DB is in its scope: {w:#?}"
    );
    let _ = postfix_img;

    // 2. `docker pull mariadb:10.11` brought a new patch level: the tag moved,
    // the container was not re-created.
    let id2 = pm.import("docker.io/library/mariadb:10.11", "10.11.9");
    assert_ne!(id1, id2);
    let f = rt.block_on(docker::check(&cfg, Some(&compose), NOW));
    let moved = expect(&f, ids::TAG_MOVED, MYSQL, Severity::Warning);
    assert!(
        moved.message.contains(&id2[..12]) && moved.message.contains(&id1[..12]),
        "{moved:#?}"
    );
    assert!(
        moved
            .evidence
            .iter()
            .any(|e| e.contains("MARIADB_VERSION=10.11.9")),
        "{moved:#?}"
    );
    assert!(find(&f, ids::IMAGE_MATCHES, MYSQL).is_none());

    // 3. The compose file pins another version than the container runs.
    let (older, _) = compose_project(&work, COMPOSE, "MARIADB_TAG=10.5\nPOSTFIX_TAG=1.80\n");
    let f = rt.block_on(docker::check(&cfg, older.as_ref(), NOW));
    let d = expect(&f, ids::IMAGE_NOT_PIN, MYSQL, Severity::Warning);
    assert!(d.message.contains("pins mariadb:10.5"), "{d:#?}");

    // 4. The real Mailcow compose files: the 10.11 pin matches, the 10.5 one not.
    let corpus = Path::new("/work/shared/corpus/host/mailcow");
    if corpus.is_dir() {
        let mut ff = Vec::new();
        let vars = BTreeMap::from([("COMPOSE_PROJECT_NAME".to_owned(), PROJECT.to_owned())]);
        for (file, differs) in [
            ("docker-compose.4ac541f67-parent.mariadb-10.5.yml", true),
            ("docker-compose.4ac541f67.mariadb-10.11.yml", false),
        ] {
            let p = docker::load_compose(&[corpus.join(file)], &vars, &mut ff).unwrap();
            let f = rt.block_on(docker::check(&cfg, Some(&p), NOW));
            assert_eq!(
                find(&f, ids::IMAGE_NOT_PIN, MYSQL).is_some(),
                differs,
                "{file}: {f:#?}"
            );
            expect(&f, ids::PIN_FLOATING, "mysql-mailcow", Severity::Warning);
            expect(&f, ids::PIN_FLOATING, "ofelia-mailcow", Severity::Info);
            expect(&f, ids::SERVICE_MISSING, "dovecot-mailcow", Severity::Info);
        }
    } else {
        eprintln!(
            "SKIPPED: the real Mailcow compose files ({} is absent)",
            corpus.display()
        );
    }

    // 5. No compose file: the container's own reference is the pin.
    let f = rt.block_on(docker::check(&cfg, None, NOW));
    expect(&f, ids::TAG_MOVED, MYSQL, Severity::Warning);
    expect(&f, ids::PIN_FLOATING, "mysql-mailcow", Severity::Warning);

    // 6. Another project name: nothing of ours, said so.
    let f = rt.block_on(docker::check(
        &ContainersConfig {
            project: "nothing-here".into(),
            ..cfg.clone()
        },
        None,
        NOW,
    ));
    expect(&f, docker::ids::PROJECT_EMPTY, "nothing-here", Severity::Warning);
}

#[test]
fn missing_socket_is_an_info_finding() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let f = rt().block_on(docker::check(
        &ContainersConfig {
            socket: socket.clone(),
            project: PROJECT.into(),
        },
        None,
        NOW,
    ));
    assert_eq!(f.len(), 1);
    let u = expect(
        &f,
        docker::ids::API_UNAVAILABLE,
        &socket.display().to_string(),
        Severity::Info,
    );
    assert!(u.message.contains("no Docker API socket at"), "{u:#?}");
    assert!(u.fix.as_deref().is_some_and(|x| x.contains("--socket")));
    // The pins are still classified: they need no engine.
    let (compose, _) = compose_project(dir.path(), COMPOSE, "POSTFIX_TAG=1.80\n");
    let f = rt().block_on(docker::check(
        &ContainersConfig {
            socket: socket.clone(),
            project: PROJECT.into(),
        },
        compose.as_ref(),
        NOW,
    ));
    expect(&f, ids::PIN_FLOATING, "mysql-mailcow", Severity::Warning);
    expect(&f, ids::PIN_FIXED, "redis-mailcow", Severity::Pass);
    assert!(f.iter().all(|f| f.id != ids::SERVICE_MISSING), "{f:#?}");
    // A path that is not a socket.
    fs::write(&socket, "").unwrap();
    let f = rt().block_on(docker::check(
        &ContainersConfig {
            socket: socket.clone(),
            project: PROJECT.into(),
        },
        None,
        NOW,
    ));
    expect(
        &f,
        docker::ids::API_UNAVAILABLE,
        &socket.display().to_string(),
        Severity::Info,
    );
}

#[test]
fn compose_errors_become_findings_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("docker-compose.yml");
    fs::write(
        &bad,
        "services:\n  mysql-mailcow:\n    image: mariadb:10.11\n   bad: [\n",
    )
    .unwrap();
    let over = dir.path().join("docker-compose.override.yml");
    fs::write(&over, "services:\n  mysql-mailcow:\n    image: mariadb:10.11.6\n").unwrap();
    let absent = dir.path().join("absent.yml");
    let mut f = Vec::new();
    let p = docker::load_compose(&[bad.clone(), over, absent.clone()], &BTreeMap::new(), &mut f).unwrap();
    assert_eq!(
        p.services["mysql-mailcow"].image.as_deref(),
        Some("mariadb:10.11.6")
    );
    let e = expect(
        &f,
        docker::ids::COMPOSE_INVALID,
        &bad.display().to_string(),
        Severity::Warning,
    );
    assert!(e.message.contains(&format!("{}:", bad.display())), "{e:#?}");
    expect(
        &f,
        docker::ids::COMPOSE_INVALID,
        &absent.display().to_string(),
        Severity::Warning,
    );
    // Unset variables are reported once, with their service.
    let mut f = Vec::new();
    let one = dir.path().join("one.yml");
    fs::write(&one, "services:\n  a:\n    image: x:${TAG}\n").unwrap();
    docker::load_compose(&[one], &BTreeMap::new(), &mut f).unwrap();
    let u = &f[0];
    assert_eq!(
        (u.id, u.severity),
        (docker::ids::COMPOSE_UNSET_VARIABLES, Severity::Info)
    );
    assert_eq!(u.evidence, ["TAG (service a)"]);
}

/// `include` (read before the including file), `extends` within the file
/// and from another file, and `profiles` (COMPOSE_PROFILES from .env).
#[test]
fn compose_include_extends_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("extra")).unwrap();
    fs::write(
        d.join("extra/db.yml"),
        "services:\n  mysql-mailcow:\n    image: mariadb:${DBTAG}\n",
    )
    .unwrap();
    fs::write(
        d.join("common.yml"),
        "services:\n  base-php:\n    image: ghcr.io/mailcow/phpfpm:1.91\n    labels:\n      tier: web\n",
    )
    .unwrap();
    let main = d.join("docker-compose.yml");
    fs::write(
        &main,
        "include:\n  - extra/db.yml\n  - path: [missing.yml]\nservices:\n  php-fpm-mailcow:\n    extends:\n      file: common.yml\n      service: base-php\n    labels:\n      own: yes\n  sogo-mailcow:\n    image: ghcr.io/mailcow/sogo:1.133\n  sogo-debug:\n    extends: sogo-mailcow\n    profiles: [debug]\n  ghost:\n    extends: nowhere\n",
    )
    .unwrap();
    let vars = BTreeMap::from([
        ("DBTAG".to_owned(), "10.11".to_owned()),
        ("COMPOSE_PROFILES".to_owned(), "mail, other".to_owned()),
    ]);
    let mut f = Vec::new();
    let p = docker::load_compose(std::slice::from_ref(&main), &vars, &mut f).unwrap();
    assert_eq!(
        p.services["mysql-mailcow"].image.as_deref(),
        Some("mariadb:10.11")
    );
    assert!(
        p.services["mysql-mailcow"]
            .image_source
            .as_deref()
            .unwrap()
            .contains("extra/db.yml:3")
    );
    let php = &p.services["php-fpm-mailcow"];
    assert_eq!(php.image.as_deref(), Some("ghcr.io/mailcow/phpfpm:1.91"));
    assert_eq!(
        (php.labels["tier"].as_str(), php.labels["own"].as_str()),
        ("web", "yes")
    );
    let dbg = &p.services["sogo-debug"];
    assert_eq!(dbg.image.as_deref(), Some("ghcr.io/mailcow/sogo:1.133"));
    assert_eq!(p.active_profiles, ["mail", "other"]);
    assert!(!dbg.enabled(&p.active_profiles) && p.services["sogo-mailcow"].enabled(&p.active_profiles));
    assert!(dbg.enabled(&["debug".to_owned()]));
    // The missing include and the dangling extends are findings, not errors.
    assert!(
        f.iter()
            .any(|x| x.id == docker::ids::COMPOSE_INVALID && x.subject.ends_with("missing.yml")),
        "{f:#?}"
    );
    assert!(
        f.iter()
            .any(|x| x.id == docker::ids::COMPOSE_INVALID && x.message.contains("ghost extends nowhere")),
        "{f:#?}"
    );
}

/// An inspect answer in the Docker API's shape (Docker 24), for states a
/// container cannot reach in this sandbox.
fn inspect_json(
    name: &str,
    image: &str,
    state: &str,
    restart_count: i64,
    extra_config: &str,
    cmd: &str,
) -> String {
    format!(
        r#"{{"Id":"4f1c0d3e2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b3a291807","Created":"2024-03-13T22:10:03.5Z","Path":"docker-entrypoint.sh","Args":["mariadbd"],"State":{state},"Image":"sha256:3f1e2d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071","Name":"/{name}","RestartCount":{restart_count},"Driver":"overlay2","Platform":"linux","Config":{{"Hostname":"4f1c0d3e2b1a","Env":["TZ=Europe/Berlin","MYSQL_ROOT_PASSWORD=hunter2"{extra_config}],"Cmd":{cmd},"Image":"{image}","Labels":{{"com.docker.compose.project":"mailcowdockerized","com.docker.compose.service":"mysql-mailcow","com.docker.compose.version":"2.24.5"}}}},"HostConfig":{{"RestartPolicy":{{"Name":"always","MaximumRetryCount":0}}}}}}"#
    )
}

#[test]
fn captured_inspect_states() {
    let parse = |j: &str| -> container::ContainerFacts {
        let i: ContainerInspectResponse = serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}"));
        docker::facts_from_inspect(&i)
    };
    // MariaDB crash-looping on a data directory it cannot read.
    let looping = parse(&inspect_json(
        MYSQL,
        "mariadb:10.11",
        r#"{"Status":"restarting","Running":true,"Paused":false,"Restarting":true,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":1,"Error":"","StartedAt":"2024-03-14T11:59:51.2Z","FinishedAt":"2024-03-14T11:59:52.9Z"}"#,
        214,
        "",
        r#"["mariadbd"]"#,
    ));
    assert_eq!(looping.service.as_deref(), Some("mysql-mailcow"));
    assert!(looping.updater_env.is_empty(), "no secrets kept");
    let f = container::check_state(&looping, NOW);
    let c = expect(&f, ids::CRASH_LOOP, MYSQL, Severity::Fail);
    assert!(c.message.contains("214 times, last exit code 1"), "{c:#?}");
    assert!(c.fix.as_deref().is_some_and(|x| x.contains("doctor mariadb")));
    // Healthy and running for hours.
    let ok = parse(&inspect_json(
        MYSQL,
        "mariadb:10.11",
        r#"{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":4242,"ExitCode":0,"Error":"","StartedAt":"2024-03-14T02:00:00Z","FinishedAt":"0001-01-01T00:00:00Z","Health":{"Status":"healthy","FailingStreak":0,"Log":[]}}"#,
        0,
        "",
        r#"["mariadbd"]"#,
    ));
    assert_eq!(
        container::check_state(&ok, NOW)
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        [ids::RUNNING]
    );
    // Unhealthy, and killed by the OOM killer earlier.
    let sick = parse(&inspect_json(
        MYSQL,
        "mariadb:10.11",
        r#"{"Status":"exited","Running":false,"Paused":false,"Restarting":false,"OOMKilled":true,"Dead":false,"Pid":0,"ExitCode":137,"Error":"","StartedAt":"2024-03-14T02:00:00Z","FinishedAt":"2024-03-14T11:00:00Z","Health":{"Status":"unhealthy","FailingStreak":9,"Log":[]}}"#,
        3,
        "",
        r#"["mariadbd"]"#,
    ));
    let f = container::check_state(&sick, NOW);
    expect(&f, ids::EXITED, MYSQL, Severity::Warning);
    expect(&f, ids::OOM, MYSQL, Severity::Warning);
    expect(&f, ids::UNHEALTHY, MYSQL, Severity::Warning);
    // A running Watchtower without --label-enable updates the MariaDB container.
    let mut wt = parse(&inspect_json(
        "watchtower",
        "containrrr/watchtower",
        r#"{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":77,"ExitCode":0,"Error":"","StartedAt":"2024-03-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}"#,
        0,
        r#","WATCHTOWER_CLEANUP=true","WATCHTOWER_HTTP_API_TOKEN=t0ken""#,
        r#"["--interval","300","--cleanup"]"#,
    ));
    wt.project = None;
    let f = container::check_autoupdaters(std::slice::from_ref(&wt), std::slice::from_ref(&ok));
    let a = expect(&f, container::ids::AUTOUPDATER, "watchtower", Severity::Fail);
    assert!(a.evidence.iter().all(|e| !e.contains("t0ken")), "{a:#?}");
}
