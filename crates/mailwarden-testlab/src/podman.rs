//! [`Podman`]: a private Podman for tests of code that talks to the Docker
//! API — all state (storage, run root, networks, volumes, the runtime's
//! state) in a temporary directory, a `podman system service` on a socket
//! in it, images imported from tiny rootfs tarballs built on the spot, and
//! containers created (never started: they cannot run in every sandbox)
//! with the labels a test needs. Needs root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Podman instance; dropping it stops its service.
pub struct Podman {
    dir: tempfile::TempDir,
    service: Option<Child>,
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

impl Podman {
    /// A private instance: all state under a new temporary directory.
    pub fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("mailwarden-podman-doctor")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["tmp", "imgtmp", "net", "vol", "bin", "logs"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let crun = d.join("bin/crun");
        fs::write(
            &crun,
            format!(
                "#!/bin/sh\nexec crun --root '{}' \"$@\"\n",
                d.join("crun-state").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&crun, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fs::write(
            d.join("containers.conf"),
            format!(
                "[engine]\nlock_type = \"file\"\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n\
                 [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\n",
                d.join("net").display()
            ),
        )
        .unwrap();
        Podman { dir, service: None }
    }

    /// A path inside the instance's directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The API socket (after [`Podman::start_service`]).
    pub fn socket(&self) -> PathBuf {
        self.path("podman.sock")
    }

    /// `podman` with this instance's storage and configuration.
    pub fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("TMPDIR", d.join("imgtmp"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .arg("--volumepath")
            .arg(d.join("vol"))
            .arg("--runtime")
            .arg(d.join("bin/crun"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        c
    }

    /// Runs `podman ARGS`; panics with its stderr when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Builds a minimal rootfs tarball (one file saying `what`) and imports
    /// it as `reference`; returns the image id.
    pub fn import(&self, reference: &str, what: &str) -> String {
        let root = self.path(&format!("rootfs-{what}"));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/image-release"), format!("{what}\n")).unwrap();
        let tar = self.path(&format!("{what}.tar"));
        let st = Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let out = self.run(&[
            "import",
            "--change",
            &format!("ENV MARIADB_VERSION={what}"),
            "--change",
            "CMD [\"/etc/image-release\"]",
            tar.to_str().unwrap(),
            reference,
        ]);
        out.lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("sha256:")
            .to_owned()
    }

    /// Creates (never starts) a container from `image`, its k8s-file log in
    /// `logs/NAME.log`; `extra` goes before the image (e.g. `-v SRC:DST`).
    pub fn create(&self, name: &str, image: &str, labels: &[(&str, &str)], extra: &[&str]) -> String {
        let log = self.path(&format!("logs/{name}.log"));
        let tail: Vec<&str> = extra.iter().copied().chain([image]).collect();
        self.create_with(name, labels, &log, &tail)
    }

    /// Creates (never starts) a container without an image, from a plain
    /// directory (`--rootfs`), whose k8s-file log is `log`.
    pub fn create_rootfs(&self, name: &str, labels: &[(&str, &str)], log: &Path) -> String {
        let rootfs = self.path("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        fs::write(rootfs.join("hello"), "hello from a container that never runs\n").unwrap();
        let rootfs = rootfs.display().to_string();
        self.create_with(name, labels, log, &["--rootfs", &rootfs, "/hello"])
    }

    /// `podman create` with no network, a k8s-file log at `log`, the labels,
    /// then `tail` (what to run: an image, or `--rootfs DIR CMD`).
    fn create_with(&self, name: &str, labels: &[(&str, &str)], log: &Path, tail: &[&str]) -> String {
        let log_opt = format!("path={}", log.display());
        let label_args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec![
            "create",
            "--name",
            name,
            "--network",
            "none",
            "--log-driver",
            "k8s-file",
            "--log-opt",
            &log_opt,
        ];
        for l in &label_args {
            args.extend(["--label", l.as_str()]);
        }
        args.extend_from_slice(tail);
        self.run(&args)
    }

    /// Stops the API service; the engine's containers and images stay.
    pub fn kill_service(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts `podman system service` on [`Podman::socket`] and waits for it.
    pub fn start_service(&mut self) {
        let sock = self.socket();
        let _ = fs::remove_file(&sock);
        let log = fs::File::create(self.path("service.log")).unwrap();
        let child = self
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start podman system service");
        self.service = Some(child);
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "podman service did not come up: {}",
                fs::read_to_string(self.path("service.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `podman` is installed.
pub fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
