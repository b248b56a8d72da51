//! [`MailLab`]: a temporary directory with a private Postfix mail server, a
//! private Postfix "sink" for remote.test and a private Dovecot, plus helpers
//! to drive them (swaks, IMAP logins) and to wait on their logs and queues.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::dovecot::{DovecotInstance, DovecotParams};
use crate::error::LabError;
use crate::https::TestCa;
use crate::postfix::{self, PostfixInstance};
use crate::swaks::SwaksRun;
use crate::sys;
use crate::{DEFERRED_DOMAIN, LOCAL_DOMAIN, LabUser, MAIL_HOSTNAME, REMOTE_DOMAIN, SINK_HOSTNAME, USERS};

/// Prefix of every lab directory (used to find labs left behind by killed test runs).
const DIR_PREFIX: &str = "mailwarden-lab-";
/// File in the lab directory naming the owning process (`pid starttime`).
const OWNER_FILE: &str = "owner.pid";

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Directory in which the lab's temporary directory is created. It must be
    /// traversable by the `postfix`, `dovecot` and `mail` users and short
    /// (Unix socket paths are limited to 107 bytes). Default: `/tmp`.
    pub parent_dir: PathBuf,
    /// Keep the lab directory after the lab stops (for debugging). Default:
    /// true if the environment variable `MAILWARDEN_LAB_KEEP` is set to a
    /// non-empty value other than `0`.
    pub keep_dir: bool,
    /// How long to wait for all instances to come up. Default: 30 s.
    pub startup_timeout: Duration,
    /// Default timeout of [`MailLab::wait_idle`]. Default: 30 s.
    pub idle_timeout: Duration,
    /// Log every message's `From:` header on the mail server
    /// (`header_checks` with `/^From:/ INFO`, as the README recommends for
    /// investigations). Default: false.
    pub log_header_from: bool,
    /// Offer STARTTLS on the mail server's smtp and submission listeners
    /// (`smtpd_tls_security_level = may`, `smtpd_tls_loglevel = 1`, so the
    /// log shows each TLS connection), with a certificate for
    /// [`MAIL_HOSTNAME`], `localhost` and 127.0.0.1 from a test CA made for
    /// this lab ([`MailLab::tls_ca_pem`]). The sink never offers TLS.
    /// Default: false.
    pub smtpd_tls: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        let keep = std::env::var("MAILWARDEN_LAB_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");
        LabOptions {
            parent_dir: PathBuf::from("/tmp"),
            keep_dir: keep,
            startup_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            log_header_from: false,
            smtpd_tls: false,
        }
    }
}

/// The loopback TCP ports of a lab (all on 127.0.0.1, picked at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabPorts {
    /// Mail server smtpd "smtp" listener (inbound MX traffic, no AUTH).
    pub smtp: u16,
    /// Mail server smtpd "submission" listener (SASL required).
    pub submission: u16,
    /// Sink instance smtpd (accepts remote.test and discards it).
    pub sink: u16,
    /// A port nobody listens on: deferred.test is routed here.
    pub closed: u16,
    /// Dovecot IMAP.
    pub imap: u16,
}

/// A network service of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The mail server's port-25-style listener.
    Smtp,
    /// The mail server's submission listener (AUTH required).
    Submission,
    /// The sink's SMTP listener.
    Sink,
    /// Dovecot IMAP.
    Imap,
}

impl Service {
    /// A short lowercase name (`smtp`, `submission`, `sink`, `imap`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Sink => "sink",
            Service::Imap => "imap",
        }
    }
}

/// Which log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// The mail server's Postfix `maillog_file`.
    Mail,
    /// The sink's Postfix `maillog_file`.
    Sink,
    /// Dovecot's `log_path`.
    Dovecot,
}

/// Paths of the lab's log files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// The mail server's Postfix log (`maillog_file`).
    pub mail: PathBuf,
    /// The sink's Postfix log.
    pub sink: PathBuf,
    /// Dovecot's log (`log_path` = `info_log_path`).
    pub dovecot: PathBuf,
}

impl LogPaths {
    /// The path of one log.
    pub fn get(&self, which: LogKind) -> &Path {
        match which {
            LogKind::Mail => &self.mail,
            LogKind::Sink => &self.sink,
            LogKind::Dovecot => &self.dovecot,
        }
    }
}

/// Absolute paths of the external programs the lab uses.
#[derive(Clone)]
struct Binaries {
    postfix: PathBuf,
    postqueue: PathBuf,
    dovecot: PathBuf,
    swaks: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, LabError> {
        Ok(Binaries {
            postfix: sys::find_binary("postfix", "apt-get install postfix")?,
            postqueue: sys::find_binary("postqueue", "apt-get install postfix")?,
            dovecot: sys::find_binary(
                "dovecot",
                "apt-get install dovecot-core dovecot-imapd dovecot-lmtpd",
            )?,
            swaks: sys::find_binary("swaks", "apt-get install swaks")?,
        })
    }
}

/// A running private mail system. Everything is stopped and the temporary
/// directory removed when the value is dropped (also while a test panics).
pub struct MailLab {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    opts: LabOptions,
    bins: Binaries,
    ports: LabPorts,
    logs: LogPaths,
    mta: PostfixInstance,
    sink: PostfixInstance,
    dovecot: DovecotInstance,
    stopped: bool,
}

impl std::fmt::Debug for MailLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailLab")
            .field("root", &self.root)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl MailLab {
    /// Creates the lab directory, writes all configuration and starts the
    /// Postfix mail server, the Postfix sink and Dovecot.
    ///
    /// Fails with a descriptive [`LabError`] (command, stderr, hint) if a
    /// program is missing, we are not root, or an instance does not start.
    /// A port grabbed by someone else between probing and binding causes a
    /// retry with fresh ports (up to three attempts).
    pub fn start(opts: LabOptions) -> Result<MailLab, LabError> {
        let bins = Binaries::find()?;
        let euid = sys::effective_uid().unwrap_or(u32::MAX);
        if euid != 0 {
            return Err(LabError::NotRoot { euid });
        }
        reap_stale_labs(&opts.parent_dir, &bins);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(opts.clone(), bins.clone()) {
                Err(e) if attempt < 3 && e.is_port_conflict() => continue,
                other => return other,
            }
        }
    }

    fn start_once(opts: LabOptions, bins: Binaries) -> Result<MailLab, LabError> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&opts.parent_dir)
            .map_err(|e| {
                LabError::io(
                    format!("creating a lab directory in {}", opts.parent_dir.display()),
                    e,
                )
            })?;
        let root = dir.path().to_path_buf();
        // Postfix and Dovecot drop privileges: they must be able to traverse the lab directory.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(format!("chmod 755 {}", root.display()), e))?;
        write_owner_file(&root)?;

        let [smtp, submission, sink, closed, imap] = sys::free_ports(5)?[..] else {
            unreachable!("free_ports(5) returns five ports")
        };
        let ports = LabPorts {
            smtp,
            submission,
            sink,
            closed,
            imap,
        };
        let log_dir = root.join("logs");
        fs::create_dir_all(&log_dir)
            .map_err(|e| LabError::io(format!("creating {}", log_dir.display()), e))?;
        let logs = LogPaths {
            mail: log_dir.join("mail.log"),
            sink: log_dir.join("sink.log"),
            dovecot: log_dir.join("dovecot.log"),
        };
        let mta = PostfixInstance::new(
            "postfix mail server",
            &root.join("postfix"),
            logs.mail.clone(),
            bins.postfix.clone(),
            bins.postqueue.clone(),
        );
        let sink_instance = PostfixInstance::new(
            "postfix sink",
            &root.join("sink"),
            logs.sink.clone(),
            bins.postfix.clone(),
            bins.postqueue.clone(),
        );
        let dovecot = DovecotInstance::new(
            &root.join("dovecot"),
            root.join("vmail"),
            mta.queue_dir.join("private"),
            logs.dovecot.clone(),
            bins.dovecot.clone(),
        );
        let socket_len = dovecot.base_dir.join("token-login/tokenlogin").as_os_str().len();
        if socket_len > 100 {
            return Err(LabError::Startup {
                instance: "dovecot".into(),
                problem: format!(
                    "lab directory {} is too long for Unix socket paths",
                    root.display()
                ),
                details: "hint: use a shorter LabOptions::parent_dir such as /tmp".into(),
            });
        }
        let mut lab = MailLab {
            dir: Some(dir),
            root,
            opts,
            bins,
            ports,
            logs,
            mta,
            sink: sink_instance,
            dovecot,
            stopped: false,
        };
        // From here on, dropping `lab` stops whatever was started.
        lab.write_configs()?;
        lab.start_instances()?;
        Ok(lab)
    }

    fn write_configs(&self) -> Result<(), LabError> {
        let (mail_uid, mail_gid) = sys::passwd_ids("mail").ok_or_else(|| LabError::Startup {
            instance: "dovecot".into(),
            problem: "there is no `mail` user in /etc/passwd to own the lab's mailboxes".into(),
            details: "hint: the base-passwd package provides it (uid 8 on Debian)".into(),
        })?;
        let (postfix_uid, _) = sys::passwd_ids("postfix").ok_or_else(|| LabError::Startup {
            instance: "postfix mail server".into(),
            problem: "there is no `postfix` user in /etc/passwd".into(),
            details: "hint: apt-get install postfix".into(),
        })?;
        self.dovecot.write_config(&DovecotParams {
            imap_port: self.ports.imap,
            mail_uid,
            mail_gid,
            postfix_uid,
            users: USERS,
        })?;

        let mut vmailbox = String::new();
        for u in USERS {
            vmailbox.push_str(&format!("{} OK\n", u.address));
        }
        // Subdomains of remote.test go to the sink too: scenarios that mail
        // many different domains (a spam burst) use them.
        let transport = format!(
            "{REMOTE_DOMAIN} smtp:[127.0.0.1]:{sink}\n.{REMOTE_DOMAIN} smtp:[127.0.0.1]:{sink}\n{DEFERRED_DOMAIN} smtp:[127.0.0.1]:{}\n",
            self.ports.closed,
            sink = self.ports.sink,
        );
        let etc = &self.mta.config_dir;
        let mut mta_params: Vec<(&str, String)> = vec![
            ("myhostname", MAIL_HOSTNAME.into()),
            ("mydomain", LOCAL_DOMAIN.into()),
            ("myorigin", "$mydomain".into()),
            // Only the server itself is trusted; lab clients use other 127/8 addresses.
            ("mynetworks", "127.0.0.1/32".into()),
            ("smtpd_banner", "$myhostname ESMTP".into()),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination".into(),
            ),
            ("virtual_mailbox_domains", LOCAL_DOMAIN.into()),
            (
                "virtual_mailbox_maps",
                format!("texthash:{}", etc.join("vmailbox").display()),
            ),
            ("virtual_transport", "lmtp:unix:private/dovecot-lmtp".into()),
            (
                "transport_maps",
                format!("texthash:{}", etc.join("transport").display()),
            ),
            ("smtpd_sasl_type", "dovecot".into()),
            ("smtpd_sasl_path", "private/auth".into()),
            ("smtpd_sasl_auth_enable", "no".into()),
            ("smtpd_sasl_authenticated_header", "no".into()),
        ];
        if self.opts.smtpd_tls {
            let chain = self.write_tls_files()?;
            mta_params.extend([
                ("smtpd_tls_security_level", "may".to_owned()),
                ("smtpd_tls_chain_files", chain),
                ("smtpd_tls_loglevel", "1".to_owned()),
            ]);
        }
        let mut tables = vec![("vmailbox", vmailbox), ("transport", transport)];
        if self.opts.log_header_from {
            mta_params.push((
                "header_checks",
                format!("regexp:{}", etc.join("header_checks").display()),
            ));
            tables.push(("header_checks", "/^From:/ INFO\n".to_owned()));
        }
        let submission_overrides: Vec<(String, String)> = [
            ("syslog_name", "postfix/submission"),
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_tls_auth_only", "no"),
            ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
            ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        self.mta.write_config(
            &mta_params,
            &[
                postfix::Listener {
                    port: self.ports.smtp,
                    overrides: Vec::new(),
                },
                postfix::Listener {
                    port: self.ports.submission,
                    overrides: submission_overrides,
                },
            ],
            &tables,
        )?;

        let sink_etc = &self.sink.config_dir;
        let sink_params: Vec<(&str, String)> = vec![
            ("myhostname", SINK_HOSTNAME.into()),
            ("mydomain", REMOTE_DOMAIN.into()),
            ("syslog_name", "postfix-sink".into()),
            ("mynetworks", "127.0.0.0/8".into()),
            ("relay_domains", REMOTE_DOMAIN.into()),
            (
                "transport_maps",
                format!("texthash:{}", sink_etc.join("transport").display()),
            ),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, reject_unauth_destination".into(),
            ),
        ];
        self.sink.write_config(
            &sink_params,
            &[postfix::Listener {
                port: self.ports.sink,
                overrides: Vec::new(),
            }],
            &[(
                "transport",
                format!(
                    "{REMOTE_DOMAIN} discard:remote.test sink\n.{REMOTE_DOMAIN} discard:remote.test sink\n"
                ),
            )],
        )
    }

    fn start_instances(&mut self) -> Result<(), LabError> {
        // The three start commands are independent: run them concurrently.
        let (mta, sink, dovecot) = thread::scope(|s| {
            let mta = s.spawn(|| self.mta.start());
            let sink = s.spawn(|| self.sink.start());
            let dovecot = s.spawn(|| self.dovecot.start());
            (join(mta), join(sink), join(dovecot))
        });
        dovecot?;
        mta?;
        sink?;
        self.wait_until_ready()
    }

    fn wait_until_ready(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + self.opts.startup_timeout;
        loop {
            let missing = self.readiness_problems();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Startup {
                    instance: "mail lab".into(),
                    problem: missing.join("; "),
                    details: self.diagnostics(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn readiness_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let checks = [
            (
                Service::Smtp,
                self.ports.smtp,
                self.mta.master_pid().is_some(),
                "postfix mail server",
            ),
            (
                Service::Submission,
                self.ports.submission,
                self.mta.master_pid().is_some(),
                "postfix mail server",
            ),
            (
                Service::Sink,
                self.ports.sink,
                self.sink.master_pid().is_some(),
                "postfix sink",
            ),
            (
                Service::Imap,
                self.ports.imap,
                self.dovecot.master_pid().is_some(),
                "dovecot",
            ),
        ];
        for (service, port, running, who) in checks {
            if !running {
                problems.push(format!("{who} is not running"));
            } else if !sys::port_in_use(port) {
                problems.push(format!(
                    "{who} does not listen on 127.0.0.1:{port} ({})",
                    service.as_str()
                ));
            }
        }
        for socket in [self.dovecot.lmtp_socket(), self.dovecot.auth_socket()] {
            if !socket.exists() {
                problems.push(format!("dovecot socket {} is missing", socket.display()));
            }
        }
        problems.dedup();
        problems
    }

    /// The lab's temporary directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The test CA (PEM) that issued the mail server's STARTTLS
    /// certificate, when the lab runs with [`LabOptions::smtpd_tls`].
    pub fn tls_ca_pem(&self) -> Option<PathBuf> {
        self.opts.smtpd_tls.then(|| self.root.join("tls/ca.pem"))
    }

    /// Writes the test CA and the server key and certificate under
    /// `tls/`; returns the `smtpd_tls_chain_files` value (key, then
    /// certificate).
    fn write_tls_files(&self) -> Result<String, LabError> {
        let dir = self.root.join("tls");
        fs::create_dir_all(&dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        let ca = TestCa::new()?;
        let names = [MAIL_HOSTNAME, "localhost", "127.0.0.1"].map(str::to_owned);
        let (cert, key) = ca.leaf_pem(&names)?;
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.join(name);
            fs::write(&path, text)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
                .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
            Ok::<_, LabError>(path)
        };
        write("ca.pem", &ca.pem, 0o644)?;
        // smtpd reads its key as root, before it drops privileges.
        let key = write("smtpd.key", &key, 0o600)?;
        let cert = write("smtpd.pem", &cert, 0o644)?;
        Ok(format!("{}, {}", key.display(), cert.display()))
    }

    /// The loopback ports in use.
    pub fn ports(&self) -> LabPorts {
        self.ports
    }

    /// The port of one service.
    pub fn port(&self, service: Service) -> u16 {
        match service {
            Service::Smtp => self.ports.smtp,
            Service::Submission => self.ports.submission,
            Service::Sink => self.ports.sink,
            Service::Imap => self.ports.imap,
        }
    }

    /// The mailbox users and their passwords.
    pub fn users(&self) -> &'static [LabUser] {
        USERS
    }

    /// All log file paths.
    pub fn log_paths(&self) -> LogPaths {
        self.logs.clone()
    }

    /// The mail server's Postfix log file.
    pub fn mail_log(&self) -> &Path {
        &self.logs.mail
    }

    /// The sink's Postfix log file.
    pub fn sink_log(&self) -> &Path {
        &self.logs.sink
    }

    /// Dovecot's log file.
    pub fn dovecot_log(&self) -> &Path {
        &self.logs.dovecot
    }

    /// The current content of a log file (empty if not yet created).
    pub fn read_log(&self, which: LogKind) -> String {
        sys::read_log(self.logs.get(which))
    }

    /// The mail server's Postfix configuration directory (for `postconf -c`, `postqueue -c`).
    pub fn postfix_config_dir(&self) -> &Path {
        &self.mta.config_dir
    }

    /// Runs swaks against one of the lab's SMTP listeners: `--server
    /// 127.0.0.1 --port <port> --timeout 20` are added before `args`.
    ///
    /// SMTP-level rejections are *not* errors (they are what most scenarios
    /// provoke); only a failure to run swaks at all is.
    pub fn swaks(&self, service: Service, args: &[&str]) -> Result<SwaksRun, LabError> {
        if service == Service::Imap {
            return Err(LabError::Scenario {
                step: "swaks".into(),
                problem: "swaks speaks SMTP; use imap_login for IMAP".into(),
                transcript: String::new(),
            });
        }
        let mut cmd = Command::new(&self.bins.swaks);
        cmd.args([
            "--server",
            "127.0.0.1",
            "--port",
            &self.port(service).to_string(),
            "--timeout",
            "20",
        ]);
        cmd.args(args);
        let out = sys::run(&mut cmd, "apt-get install swaks")?;
        Ok(SwaksRun {
            command: sys::describe(&cmd),
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Logs in to Dovecot IMAP from 127.0.0.1 with `LOGIN`, then `LOGOUT`.
    /// Returns whether the login was accepted; network trouble is an error.
    pub fn imap_login(&self, user: &str, password: &str) -> Result<bool, LabError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.imap));
        let io =
            |what: &str, e: std::io::Error| LabError::io(format!("IMAP {what} ({addr}, user {user})"), e);
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| io("connect", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .map_err(|e| io("set timeout", e))?;
        let mut writer = stream.try_clone().map_err(|e| io("clone socket", e))?;
        let mut reader = BufReader::new(stream);
        let greeting = read_line(&mut reader).map_err(|e| io("read greeting", e))?;
        if !greeting.starts_with("* OK") {
            return Err(LabError::Scenario {
                step: "imap login".into(),
                problem: format!("unexpected IMAP greeting {greeting:?}"),
                transcript: greeting,
            });
        }
        let login = format!("a1 LOGIN {} {}\r\n", imap_quote(user), imap_quote(password));
        writer
            .write_all(login.as_bytes())
            .map_err(|e| io("send LOGIN", e))?;
        let reply = read_tagged(&mut reader, "a1").map_err(|e| io("read LOGIN reply", e))?;
        let ok = reply.starts_with("a1 OK");
        writer
            .write_all(b"a2 LOGOUT\r\n")
            .map_err(|e| io("send LOGOUT", e))?;
        // The server closes the connection after LOGOUT; its reply is not needed.
        let _ = read_tagged(&mut reader, "a2");
        Ok(ok)
    }

    /// Polls a log file until a line contains `needle`; returns that line.
    /// On timeout the error shows the tail of the log.
    pub fn wait_for_log(&self, which: LogKind, needle: &str, timeout: Duration) -> Result<String, LabError> {
        let path = self.logs.get(which);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = sys::read_log(path).lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{needle:?} in {} after {timeout:?}", path.display()),
                    details: format!("--- tail of {} ---\n{}", path.display(), sys::tail(path, 30)),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`MailLab::wait_idle_for`] with [`LabOptions::idle_timeout`].
    pub fn wait_idle(&self) -> Result<(), LabError> {
        self.wait_idle_for(self.opts.idle_timeout)
    }

    /// Waits until the mail server's queue holds only deferred mail, the sink's
    /// queue is empty, and no log file has grown for half a second.
    pub fn wait_idle_for(&self, timeout: Duration) -> Result<(), LabError> {
        const QUIET: Duration = Duration::from_millis(500);
        let deadline = Instant::now() + timeout;
        let mut last_sizes = None;
        let mut quiet_since = Instant::now();
        loop {
            let queues_idle = self.queues_idle()?;
            let sizes = [&self.logs.mail, &self.logs.sink, &self.logs.dovecot].map(|p| sys::file_len(p));
            if last_sizes != Some(sizes) || !queues_idle {
                quiet_since = Instant::now();
                last_sizes = Some(sizes);
            } else if quiet_since.elapsed() >= QUIET {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("the lab to become idle within {timeout:?}"),
                    details: self.diagnostics(),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn queues_idle(&self) -> Result<bool, LabError> {
        let mta_busy = self.mta.queue()?.iter().any(|e| e.queue_name != "deferred");
        let sink_busy = !self.sink.queue()?.is_empty();
        Ok(!mta_busy && !sink_busy)
    }

    /// Queue listings and log tails, for error messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for (name, inst) in [("mail server", &self.mta), ("sink", &self.sink)] {
            let listing = match inst.queue() {
                Ok(entries) if entries.is_empty() => "(empty)".to_owned(),
                Ok(entries) => entries
                    .iter()
                    .map(|e| e.line.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(e) => format!("(postqueue failed: {e})"),
            };
            out.push_str(&format!("--- {name} queue ---\n{listing}\n"));
        }
        for (name, path) in [
            ("mail", &self.logs.mail),
            ("sink", &self.logs.sink),
            ("dovecot", &self.logs.dovecot),
        ] {
            out.push_str(&format!(
                "--- tail of {name} log {} ---\n{}\n",
                path.display(),
                sys::tail(path, 25)
            ));
        }
        out
    }

    /// Stops all instances (idempotent). The directory and logs stay until
    /// the lab is dropped, so logs can be copied after a clean shutdown.
    pub fn shutdown(&mut self) -> Result<(), LabError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let problems = stop_instances(&self.mta, &self.sink, &self.dovecot);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Timeout {
                what: "the lab to stop cleanly".into(),
                details: problems.join("\n"),
            })
        }
    }
}

impl Drop for MailLab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("{e}");
        }
        if let Some(dir) = self.dir.take() {
            if self.opts.keep_dir {
                // Without an owner file the directory is never reaped as stale.
                let _ = fs::remove_file(dir.path().join(OWNER_FILE));
                let path = dir.keep();
                eprintln!("mail lab: keeping {} (MAILWARDEN_LAB_KEEP)", path.display());
            } else {
                let _ = dir.close();
            }
        }
    }
}

/// Stops the mail server first (no new deliveries), then the sink and Dovecot.
fn stop_instances(mta: &PostfixInstance, sink: &PostfixInstance, dovecot: &DovecotInstance) -> Vec<String> {
    let grace = Duration::from_secs(10);
    thread::scope(|s| {
        let a = s.spawn(|| mta.stop(grace));
        let b = s.spawn(|| sink.stop(grace));
        let c = s.spawn(|| dovecot.stop(grace));
        [a, b, c]
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T, LabError>>) -> Result<T, LabError> {
    h.join().unwrap_or_else(|_| {
        Err(LabError::Startup {
            instance: "mail lab".into(),
            problem: "a start thread panicked".into(),
            details: String::new(),
        })
    })
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end().to_owned())
}

/// Reads lines until the tagged response for `tag` (untagged lines are skipped).
fn read_tagged(reader: &mut impl BufRead, tag: &str) -> std::io::Result<String> {
    loop {
        let line = read_line(reader)?;
        if line.strip_prefix(tag).is_some_and(|rest| rest.starts_with(' ')) {
            return Ok(line);
        }
    }
}

/// IMAP quoted string.
fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write_owner_file(root: &Path) -> Result<(), LabError> {
    let pid = std::process::id();
    let start = sys::proc_stat(pid).map_or(0, |s| s.start_time);
    let path = root.join(OWNER_FILE);
    fs::write(&path, format!("{pid} {start}\n"))
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

/// Stops instances and removes directories of labs whose owning process is
/// gone (a test run killed before its `Drop` ran).
fn reap_stale_labs(parent: &Path, bins: &Binaries) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let root = entry.path();
        let Ok(owner) = fs::read_to_string(root.join(OWNER_FILE)) else {
            continue;
        };
        let mut it = owner.split_whitespace().map(|f| f.parse::<u64>().ok());
        let (Some(Some(pid)), Some(Some(start))) = (it.next(), it.next()) else {
            continue;
        };
        let owner_alive = u32::try_from(pid)
            .ok()
            .and_then(sys::proc_stat)
            .is_some_and(|s| s.start_time == start && s.state != 'Z');
        if owner_alive {
            continue;
        }
        let log = root.join("logs/stale.log");
        let (pf, pq) = (bins.postfix.clone(), bins.postqueue.clone());
        let mta = PostfixInstance::new(
            "stale postfix",
            &root.join("postfix"),
            log.clone(),
            pf.clone(),
            pq.clone(),
        );
        let sink = PostfixInstance::new("stale sink", &root.join("sink"), log.clone(), pf, pq);
        let dovecot = DovecotInstance::new(
            &root.join("dovecot"),
            root.join("vmail"),
            root.join("postfix/queue/private"),
            log,
            bins.dovecot.clone(),
        );
        let _ = stop_instances(&mta, &sink, &dovecot);
        eprintln!(
            "mail lab: removed stale lab {} (owner process {pid} is gone)",
            root.display()
        );
        let _ = fs::remove_dir_all(&root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_imap_strings() {
        assert_eq!(imap_quote("alice@lab.test"), r#""alice@lab.test""#);
        assert_eq!(imap_quote(r#"pa"ss\word"#), r#""pa\"ss\\word""#);
    }

    #[test]
    fn reads_tagged_reply_after_untagged_lines() {
        let mut input: &[u8] = b"* OK Waiting for authentication process to respond..\r\n* OK ready\r\na1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n";
        let reply = read_tagged(&mut input, "a1").unwrap();
        assert!(reply.starts_with("a1 NO"), "{reply}");
    }
}
