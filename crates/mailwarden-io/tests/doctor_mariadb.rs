//! `doctor mariadb` on real data directories: `mariadb-install-db` of the
//! machine's MariaDB makes one, and copies of it, changed per the documented
//! formats (see `mailwarden_core::doctor::mariadb`), make the downgrade,
//! upgrade-pending, unclean and failed-recovery cases. Skips (with a message)
//! where MariaDB is not installed.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailwarden_core::doctor::mariadb::{RECOVERY_PLAYBOOK, classify, crc32, crc32c};
use mailwarden_core::doctor::{Finding, Severity};
use mailwarden_io::doctor::mariadb::{
    MariadbConfig, check, ids, local_server_on, mariadbd_version, read_datadir,
};

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A fresh data directory from `mariadb-install-db`; `None` (skipped) when
/// the tools are missing.
fn install_db(root: &Path) -> Option<PathBuf> {
    if !Path::new(MARIADBD).exists() {
        eprintln!("SKIPPED: {MARIADBD} not installed");
        return None;
    }
    let dir = root.join("data");
    let mut cmd = Command::new("mariadb-install-db");
    // --no-defaults: the system's my.cnf (log paths, datadir) is not touched.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db");
    if is_root() {
        cmd.arg("--user=root");
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Some(dir),
        Ok(o) => {
            eprintln!(
                "SKIPPED: mariadb-install-db failed: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: mariadb-install-db: {e}");
            None
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Copies the version files of `src` to `dst`; `ib_logfile0` keeps its
/// first 64 KiB (the header and both checkpoint blocks) and its size, sparse.
fn copy_datadir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for name in ["mysql_upgrade_info", "aria_log_control"] {
        fs::copy(src.join(name), dst.join(name)).unwrap();
    }
    let log = fs::read(src.join("ib_logfile0")).unwrap();
    let mut f = fs::File::create(dst.join("ib_logfile0")).unwrap();
    f.write_all(&log[..65536]).unwrap();
    f.set_len(log.len() as u64).unwrap();
}

fn patch(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut b = fs::read(path).unwrap();
    edit(&mut b);
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all(&b)
        .unwrap();
}

/// Sets the redo log creator (bytes 16–47) and, optionally, the format id,
/// recomputing the header block's CRC-32C (bytes 508–511).
fn set_creator(dir: &Path, creator: &str, format: Option<&[u8; 4]>) {
    patch(&dir.join("ib_logfile0"), |b| {
        b[16..48].fill(0);
        b[16..16 + creator.len()].copy_from_slice(creator.as_bytes());
        if let Some(f) = format {
            b[..4].copy_from_slice(f);
        }
        let c = crc32c(&b[..508]);
        b[508..512].copy_from_slice(&c.to_be_bytes());
    });
}

/// Makes the newest checkpoint block record log beyond itself (unclean).
fn set_unclean(dir: &Path) {
    patch(&dir.join("ib_logfile0"), |b| {
        for off in [4096usize, 8192] {
            let lsn = u64::from_be_bytes(b[off..off + 8].try_into().unwrap());
            b[off + 8..off + 16].copy_from_slice(&(lsn + 0x154).to_be_bytes());
            let c = crc32c(&b[off..off + 60]);
            b[off + 60..off + 64].copy_from_slice(&c.to_be_bytes());
        }
    });
}

/// Writes a pre-10.8 redo log's two checkpoint blocks (at 512 and 1536:
/// number, LSN, offset, CRC-32C at 508) and the log block that holds the
/// checkpoint offset, whose data length ends exactly at the checkpoint
/// (clean) or 0x154 bytes later (records after the checkpoint: unclean).
fn set_old_checkpoint(dir: &Path, clean: bool) {
    let lsn: u64 = 0x0c3a_5e2b;
    let offset: u64 = 2048 + 3 * 512 + 100;
    patch(&dir.join("ib_logfile0"), |b| {
        for (off, number) in [(512usize, 41u64), (1536, 42)] {
            b[off..off + 512].fill(0);
            b[off..off + 8].copy_from_slice(&number.to_be_bytes());
            b[off + 8..off + 16].copy_from_slice(&(lsn - 42 + number).to_be_bytes());
            b[off + 16..off + 24].copy_from_slice(&offset.to_be_bytes());
            let c = crc32c(&b[off..off + 508]);
            b[off + 508..off + 512].copy_from_slice(&c.to_be_bytes());
        }
        let at = (offset & !511) as usize;
        b[at..at + 512].fill(0);
        b[at..at + 4].copy_from_slice(&((lsn / 512) as u32 | 0x8000_0000).to_be_bytes());
        let len = (offset & 511) as u16 + if clean { 0 } else { 0x154 };
        b[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
        b[at + 6..at + 8].copy_from_slice(&12u16.to_be_bytes());
        b[at + 8..at + 12].copy_from_slice(&42u32.to_be_bytes());
        let c = crc32c(&b[at..at + 508]);
        b[at + 508..at + 512].copy_from_slice(&c.to_be_bytes());
    });
}

/// Sets Aria's failed-recovery counter, recomputing the changeable part's CRC-32.
fn set_aria_failures(dir: &Path, n: u8) {
    patch(&dir.join("aria_log_control"), |b| {
        let fixed = usize::from(u16::from_le_bytes([b[20], b[21]]));
        let ch = usize::from(u16::from_le_bytes([b[22], b[23]]));
        b[fixed + 21] = n;
        let c = crc32(&b[fixed + 4..fixed + ch]);
        b[fixed..fixed + 4].copy_from_slice(&c.to_le_bytes());
    });
}

fn ids_of(f: &[Finding]) -> Vec<(&'static str, Severity)> {
    f.iter().map(|x| (x.id, x.severity)).collect()
}

fn classify_dir(dir: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut o = read_datadir(dir, &mut findings);
    o.server = mariadbd_version(Path::new(MARIADBD));
    assert!(o.server.is_some(), "mariadbd --version");
    findings.extend(classify(&o));
    findings
}

#[test]
fn fresh_datadir_matches_mariadbd_version() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dir) = install_db(tmp.path()) else { return };
    let mut findings = Vec::new();
    let o = read_datadir(&dir, &mut findings);
    assert!(findings.is_empty(), "{findings:#?}");
    let server = mariadbd_version(Path::new(MARIADBD)).expect("mariadbd --version");
    let info = o.upgrade_info.as_ref().unwrap().1.as_ref().unwrap();
    assert_eq!(info.version, server.version, "upgrade info vs mariadbd --version");
    let redo = o.redo.as_ref().unwrap().1.as_ref().unwrap();
    assert_eq!(redo.creator_version, Some(server.version));
    assert_eq!(redo.header_crc_ok, Some(true));
    let aria = o.aria.as_ref().unwrap().1.as_ref().unwrap();
    assert_eq!((aria.recovery_failures, aria.checksums_ok), (0, true));
    assert_eq!(
        ids_of(&classify_dir(&dir)),
        vec![("mariadb.datadir.consistent", Severity::Pass)]
    );
}

#[test]
fn changed_copies_give_downgrade_upgrade_and_crash_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dir) = install_db(tmp.path()) else { return };
    let server = mariadbd_version(Path::new(MARIADBD)).unwrap().version;
    let next = format!("{}.{}.2", server.major, server.minor + 1);

    // Data newer than the server: a later version wrote both files.
    let down = tmp.path().join("down");
    copy_datadir(&dir, &down);
    fs::write(down.join("mysql_upgrade_info"), format!("{next}-MariaDB")).unwrap();
    set_creator(&down, &format!("MariaDB {next}"), None);
    let f = classify_dir(&down);
    assert_eq!(
        ids_of(&f),
        vec![("mariadb.datadir.newer-than-server", Severity::Fail)],
        "{f:#?}"
    );
    assert_eq!(f[0].fix.as_deref(), Some(RECOVERY_PLAYBOOK));
    assert!(f[0].evidence.iter().any(|e| e.contains(&next)), "{f:#?}");

    // Only the redo creator newer (upgrade info untouched): still a downgrade.
    let down2 = tmp.path().join("down2");
    copy_datadir(&dir, &down2);
    set_creator(&down2, &format!("MariaDB {next}"), None);
    assert_eq!(
        ids_of(&classify_dir(&down2))[0].0,
        "mariadb.datadir.newer-than-server"
    );

    // Upgrade pending: written by 10.8.8 (same Phys format), shut down cleanly.
    let up = tmp.path().join("up");
    copy_datadir(&dir, &up);
    fs::write(up.join("mysql_upgrade_info"), "10.8.8-MariaDB\0").unwrap();
    set_creator(&up, "MariaDB 10.8.8", None);
    assert_eq!(
        ids_of(&classify_dir(&up)),
        vec![("mariadb.datadir.upgrade-pending", Severity::Warning)]
    );

    // Upgrade pending from 10.6 (PHYS format, checkpoints at 512 and 1536),
    // shut down cleanly: nothing logged after the last checkpoint.
    let up6 = tmp.path().join("up6");
    copy_datadir(&dir, &up6);
    fs::write(up6.join("mysql_upgrade_info"), "10.6.16-MariaDB\n").unwrap();
    set_creator(&up6, "MariaDB 10.6.16", Some(b"PHYS"));
    set_old_checkpoint(&up6, true);
    let f = classify_dir(&up6);
    assert_eq!(
        ids_of(&f),
        vec![("mariadb.datadir.upgrade-pending", Severity::Warning)]
    );
    assert!(!f[0].message.contains("could not be read"), "{f:#?}");

    // The incident's case: 10.5's log left unclean, 10.11 about to start.
    let crash5 = tmp.path().join("crash5");
    copy_datadir(&dir, &crash5);
    fs::write(crash5.join("mysql_upgrade_info"), "10.5.27-MariaDB\n").unwrap();
    set_creator(&crash5, "MariaDB 10.5.27", Some(b"PHYS"));
    set_old_checkpoint(&crash5, false);
    let f = classify_dir(&crash5);
    assert_eq!(
        ids_of(&f),
        vec![
            ("mariadb.redo.unclean-shutdown", Severity::Warning),
            ("mariadb.datadir.upgrade-after-crash", Severity::Fail)
        ],
        "{f:#?}"
    );
    assert!(f[0].evidence[0].contains("block data length 440"), "{f:#?}");

    // PHYS without any valid checkpoint block: damaged, said so.
    let nocp = tmp.path().join("nocp");
    copy_datadir(&dir, &nocp);
    set_creator(&nocp, "MariaDB 10.6.16", Some(b"PHYS"));
    let f = classify_dir(&nocp);
    assert_eq!(f[0].id, "mariadb.redo.no-checkpoint", "{f:#?}");
    assert!(f[0].evidence[0].contains("512 and 1536"), "{f:#?}");

    // Upgrade after an unclean shutdown.
    let crash = tmp.path().join("crash");
    copy_datadir(&up, &crash);
    set_unclean(&crash);
    assert_eq!(
        ids_of(&classify_dir(&crash)),
        vec![
            ("mariadb.redo.unclean-shutdown", Severity::Warning),
            ("mariadb.datadir.upgrade-after-crash", Severity::Fail)
        ]
    );

    // Aria's failed recoveries, same version.
    let aria = tmp.path().join("aria");
    copy_datadir(&dir, &aria);
    set_aria_failures(&aria, 2);
    assert_eq!(
        ids_of(&classify_dir(&aria)),
        vec![
            ("mariadb.aria.recovery-failed", Severity::Fail),
            ("mariadb.datadir.consistent", Severity::Pass)
        ]
    );
}

#[test]
fn bad_files_become_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dir) = install_db(tmp.path()) else { return };
    let bad = tmp.path().join("bad");
    copy_datadir(&dir, &bad);
    fs::write(bad.join("mysql_upgrade_info"), "").unwrap();
    fs::write(bad.join("ib_logfile0"), b"Phys\0\0").unwrap();
    fs::write(
        bad.join("aria_log_control"),
        b"\x00garbage garbage garbage garbage",
    )
    .unwrap();
    let f = classify_dir(&bad);
    let unreadable = f
        .iter()
        .filter(|x| x.id == "mariadb.datadir.unreadable-file")
        .count();
    assert_eq!(unreadable, 3, "{f:#?}");
    assert!(f.iter().all(|x| !x.evidence.is_empty()), "{f:#?}");

    // A damaged checkpoint: no valid checkpoint block.
    let cp = tmp.path().join("cp");
    copy_datadir(&dir, &cp);
    patch(&cp.join("ib_logfile0"), |b| {
        b[4096] ^= 0xff;
        b[8192] ^= 0xff;
    });
    assert!(ids_of(&classify_dir(&cp)).contains(&("mariadb.redo.no-checkpoint", Severity::Warning)));

    let mut f = Vec::new();
    let o = read_datadir(&tmp.path().join("missing"), &mut f);
    assert_eq!(ids_of(&f), vec![(ids::DATADIR_UNREADABLE, Severity::Warning)]);
    assert_eq!(
        ids_of(&classify(&o)),
        vec![("mariadb.datadir.not-a-datadir", Severity::Warning)]
    );
}

fn run(cfg: &MariadbConfig) -> Vec<Finding> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(check(cfg))
}

/// Lines quoted from public reports of this failure (bitnami/charts#3028,
/// DietPi#4899, madock#14); the message texts match the format strings in
/// the 10.11.19 binary.
const REAL_LOG: &str = "\
2024-06-10 19:39:20+00:00 [Note] [Entrypoint]: MariaDB upgrade not required
2020-07-07  6:52:42 0 [Note] InnoDB: Completed initialization of buffer pool
2020-07-07  6:52:42 0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.5.4.
2020-07-07  6:52:42 0 [ERROR] InnoDB: Plugin initialization aborted with error Generic error
2021-10-30 22:05:27 0 [ERROR] Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\". Some plugins may be not loaded
2021-10-30 22:05:27 0 [ERROR] Unknown/unsupported storage engine: InnoDB
";

#[test]
fn check_with_log_and_without_docker() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("error.log");
    fs::write(&log, REAL_LOG).unwrap();
    let socket = tmp.path().join("no.sock");
    let datadir = install_db(tmp.path());
    let f = run(&MariadbConfig {
        datadir: datadir.clone(),
        server_version: Some("10.4.34".into()),
        log: Some(log.clone()),
        socket: socket.clone(),
        mariadbd: PathBuf::from(MARIADBD),
    });
    let got = ids_of(&f);
    assert!(
        got.contains(&("mariadb.log.unsupported-redo-format", Severity::Fail)),
        "{f:#?}"
    );
    assert!(
        got.contains(&(
            "mariadb.log.upgrade-not-required-is-not-compatible",
            Severity::Info
        )),
        "{f:#?}"
    );
    let fatal = f
        .iter()
        .find(|x| x.id == "mariadb.log.unsupported-redo-format")
        .unwrap();
    assert!(
        fatal.evidence[0].contains(":3: ") && fatal.evidence[0].contains("MariaDB 10.5.4"),
        "{fatal:#?}"
    );
    if datadir.is_some() {
        assert!(
            got.contains(&("mariadb.datadir.newer-than-server", Severity::Fail)),
            "{f:#?}"
        );
    }
    assert!(
        !got.iter().any(|(id, _)| *id == ids::DOCKER_UNAVAILABLE),
        "docker not needed: {f:#?}"
    );

    // Nothing given and no Docker socket: info findings saying what was not checked.
    let f = run(&MariadbConfig {
        datadir: None,
        server_version: None,
        log: None,
        socket,
        mariadbd: PathBuf::from(MARIADBD),
    });
    assert_eq!(
        ids_of(&f),
        vec![
            (ids::DOCKER_UNAVAILABLE, Severity::Info),
            (ids::DATADIR_NOT_FOUND, Severity::Info),
            (ids::LOG_NONE, Severity::Info)
        ]
    );

    // An unreadable log path is a finding naming it.
    let f = run(&MariadbConfig {
        datadir: Some(tmp.path().join("nothing")),
        server_version: Some("x".into()),
        log: Some(tmp.path().join("missing.log")),
        socket: tmp.path().join("no.sock"),
        mariadbd: PathBuf::from(MARIADBD),
    });
    let got = ids_of(&f);
    assert!(got.contains(&(ids::LOG_UNREADABLE, Severity::Warning)), "{f:#?}");
    assert!(
        got.contains(&("mariadb.server.version-invalid", Severity::Warning)),
        "{f:#?}"
    );
}

/// The machine's own MariaDB (started by .ci/run) is recognised as running
/// on its data directory, so its live redo log is not taken for a crash;
/// a copy of a data directory has no server.
#[test]
fn the_running_server_is_found_by_its_working_directory() {
    let live = Path::new("/var/lib/mysql");
    let up = Command::new("mysqladmin")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up || !live.is_dir() {
        eprintln!("SKIPPED: no local MariaDB running on /var/lib/mysql");
        return;
    }
    let found = local_server_on(live).expect("the running server");
    assert!(found.contains("runs on it"), "{found}");
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(local_server_on(tmp.path()), None);
}

/// Through a real Docker API (a private `podman system service`): the
/// `mysql-mailcow` container is found by its compose label, its data
/// directory by the mount at /var/lib/mysql, the server version from the
/// image's MARIADB_VERSION. The same real data directory mounted into a
/// container of an older image is a downgrade.
#[test]
fn the_data_directory_found_through_the_docker_api() {
    use mailwarden_testlab::podman::{Podman, podman_available};
    if !podman_available() || !is_root() {
        eprintln!("SKIPPED: needs root and podman (apt-get install podman)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(datadir) = install_db(tmp.path()) else {
        return;
    };
    let server = mariadbd_version(Path::new(MARIADBD)).expect("mariadbd --version");
    let mut podman = Podman::new();
    let labels = [
        ("com.docker.compose.project", "mailcowdockerized"),
        ("com.docker.compose.service", "mysql-mailcow"),
    ];
    let mount = format!("{}:/var/lib/mysql", datadir.display());
    podman.import("docker.io/library/mariadb:10.11", &server.version.to_string());
    podman.create(
        "mailcowdockerized-mysql-mailcow-1",
        "docker.io/library/mariadb:10.11",
        &labels,
        &["-v", &mount],
    );
    podman.start_service();
    let cfg = MariadbConfig {
        datadir: None,
        server_version: None,
        log: None,
        socket: podman.socket(),
        mariadbd: PathBuf::from(MARIADBD),
    };
    let f = run(&cfg);
    let got = ids_of(&f);
    assert!(
        got.contains(&("mariadb.datadir.consistent", Severity::Pass)),
        "{f:#?}"
    );
    let ok = f.iter().find(|x| x.id == "mariadb.datadir.consistent").unwrap();
    assert_eq!(ok.subject, datadir.display().to_string());
    assert!(
        ok.evidence.iter().any(|e| e.contains("MARIADB_VERSION=")),
        "the version came from the image: {ok:#?}"
    );

    // The same data directory under an older image: a downgrade.
    podman.run(&["rm", "mailcowdockerized-mysql-mailcow-1"]);
    podman.import("docker.io/library/mariadb:10.5", "10.5.27");
    podman.create(
        "mailcowdockerized-mysql-mailcow-1",
        "docker.io/library/mariadb:10.5",
        &labels,
        &["-v", &mount],
    );
    let f = run(&cfg);
    let down = f
        .iter()
        .find(|x| x.id == "mariadb.datadir.newer-than-server")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(down.severity, Severity::Fail);
    assert!(
        down.fix.as_deref().unwrap_or_default().contains("snapshot"),
        "{down:#?}"
    );
}
