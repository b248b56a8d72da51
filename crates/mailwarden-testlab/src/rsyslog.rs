//! A private `rsyslogd` for tests: its own configuration, work directory and
//! pid file under a directory the test owns, no local inputs (imuxsock,
//! imklog), so it never touches the machine's logging. Used as a sender into
//! mailwarden's syslog listener and as the central collector of its forwarder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `rsyslogd` is; panics with the install hint when it is missing (a
/// missing component fails the test, it never skips it).
pub fn rsyslogd_path() -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        let p = Path::new(dir).join("rsyslogd");
        if p.exists() {
            return p;
        }
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("rsyslogd"))
        .find(|p| p.exists())
    {
        return p;
    }
    panic!(
        "rsyslogd is not installed; fix: apt-get install rsyslog rsyslog-gnutls \
         (with a policy-rc.d that keeps its service from starting, as .ci/run does)"
    );
}

/// A private rsyslogd, killed when dropped.
pub struct Rsyslog {
    child: Option<Child>,
    dir: PathBuf,
    name: String,
}

impl Rsyslog {
    /// Starts rsyslogd with `body` after a `global()` line that gives it its own
    /// work directory and turns DNS off.
    pub fn start(dir: &Path, name: &str, body: &str) -> Rsyslog {
        let work = dir.join(format!("{name}.work"));
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join(format!("{name}.conf"));
        let text = format!(
            "global(workDirectory=\"{}\" net.enableDNS=\"off\" maxMessageSize=\"64k\" parser.permitSlashInProgramName=\"on\")\n{body}\n",
            work.display()
        );
        std::fs::write(&conf, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
        let child = Command::new(rsyslogd_path())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join(format!("{name}.pid")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Rsyslog {
            child: Some(child),
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// What rsyslogd printed so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.stderr", self.name))).unwrap_or_default()
    }

    /// Waits for the port rsyslog wrote with `listenPortFileName`.
    pub fn port(&mut self, file: &Path) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(s) = std::fs::read_to_string(file)
                && let Ok(p) = s.trim().parse::<u16>()
                && p != 0
            {
                return p;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(st)) = child.try_wait()
            {
                panic!("rsyslogd {} exited ({st}): {}", self.name, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd {} wrote no port: {}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills rsyslogd (SIGKILL: a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops rsyslogd cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
