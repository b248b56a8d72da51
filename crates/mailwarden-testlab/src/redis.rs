//! A private `redis-server` for tests: its own loopback port (never the
//! machine's 6379), its own directory, a password, nothing saved to disk.
//! Killed when dropped. Used for Mailcow-shaped Redis lists and channels.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LabError;

/// A running private Redis.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: String,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port with `password`
    /// (`requirepass`) and waits until it answers `PING`.
    pub fn start(password: &str) -> Result<RedisServer, LabError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| LabError::io("picking a free loopback port", e))?
            .port();
        let mut r = RedisServer {
            child: None,
            port,
            password: password.to_owned(),
            dir: tempfile::tempdir().map_err(|e| LabError::io("creating a Redis directory", e))?,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<(), LabError> {
        let dir = self.dir.path();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--requirepass", &self.password])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LabError::MissingBinary {
                    name: "redis-server".into(),
                    hint: "apt-get install redis-server (with a policy-rc.d that keeps its service from starting, as .ci/run does)".into(),
                },
                _ => LabError::io("starting redis-server", e),
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                return Err(LabError::Startup {
                    instance: "redis-server".into(),
                    problem: format!("no PONG on 127.0.0.1:{} within 10 s", self.port),
                    details: log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `AUTH` + `PING` in RESP over a plain socket.
    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let cmd = format!(
            "*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n*1\r\n$4\r\nPING\r\n",
            self.password.len(),
            self.password
        );
        if s.write_all(cmd.as_bytes()).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"+PONG\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Its directory (working directory and log file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts it again on the same port: the data is gone (nothing
    /// is saved), as after a Redis restart without persistence.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
