//! [`DnsServer`]: a private authoritative DNS server (Knot DNS, `knotd`) on
//! 127.0.0.1 serving test zones ([`DnsZone`]) over UDP and TCP.
//!
//! Everything the server touches lives in its own temporary directory: the
//! configuration file, the zone files, the run directory (pid file and control
//! socket) and the database storage (timers, journal). The machine's own Knot
//! service and `/etc/knot` are never used. The server only answers for its
//! zones and never recurses, so tests that point a resolver at
//! [`DnsServer::addr`] cannot reach the internet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::error::LabError;
use crate::sys;

/// Prefix of every DNS server directory (used to find servers left behind by
/// killed test runs).
const DIR_PREFIX: &str = "mailwarden-dns-";
/// Where server directories are created (short, so the control socket path
/// stays well below the Unix socket limit).
const PARENT_DIR: &str = "/tmp";
/// File in the server directory naming the owning process (`pid starttime`).
const OWNER_FILE: &str = "owner.pid";
/// File in the server directory holding knotd's pid (written by us).
const KNOTD_PID_FILE: &str = "knotd.pid";
/// knotd's standard output and error (its log target is stderr).
const LOG_FILE: &str = "knotd.log";
/// Default TTL of generated zone files and generated records.
const DEFAULT_TTL: u32 = 300;
/// How long to wait for knotd to serve its zones.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long knotd gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often [`DnsServer::start`] retries when its port was taken.
const START_ATTEMPTS: usize = 5;
/// Install hint for a missing knotd/knotc.
const INSTALL_HINT: &str = "apt-get install -y --no-install-recommends knot \
     (with a /usr/sbin/policy-rc.d that exits 101 so the package's own service does not start, as .ci/run does)";

/// A DNS zone to serve: an origin and zone-file lines.
///
/// Records use master-file syntax (RFC 1035) as Knot reads it, with
/// `$ORIGIN` set to [`origin`](Self::origin) and `$TTL` 300, so names may be
/// relative (`mail`, `@`) or absolute (`mail.lab.test.`). A line that starts
/// with a blank inherits the owner of the line before it. An entry may span
/// several lines (parentheses, embedded newlines).
///
/// An SOA record and an apex NS record are added when the records have none
/// (`ns1.<origin>`, with an A record 127.0.0.1 for `ns1` unless the records
/// already own that name). The SOA serial is always managed by the server: a
/// serial in a supplied SOA record is replaced.
///
/// ```
/// use mailwarden_testlab::DnsZone;
///
/// let zone = DnsZone::new("lab.test")
///     .record("@ 300 IN MX 10 mail")
///     .record("mail 300 IN A 127.0.0.1")
///     .txt("@", "v=spf1 ip4:127.0.0.0/8 -all");
/// assert_eq!(zone.records.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsZone {
    /// The zone's apex, e.g. `lab.test` (a trailing dot is allowed).
    pub origin: String,
    /// Zone-file lines, e.g. `@ 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`.
    pub records: Vec<String>,
}

impl DnsZone {
    /// An empty zone for `origin` (SOA and NS are generated when served).
    pub fn new(origin: impl Into<String>) -> Self {
        DnsZone {
            origin: origin.into(),
            records: Vec::new(),
        }
    }

    /// Adds one zone-file line (or a multi-line entry).
    #[must_use]
    pub fn record(mut self, line: impl Into<String>) -> Self {
        self.records.push(line.into());
        self
    }

    /// Adds a TXT record at `name` (relative, absolute or `@`) whose value is
    /// `text`, with the zone's default TTL.
    ///
    /// DNS limits one character-string to 255 bytes, so a longer value (such
    /// as a DKIM key) is split into consecutive 255-byte strings; consumers
    /// such as SPF, DKIM and DMARC verifiers concatenate them again. Quotes,
    /// backslashes and non-printable bytes are escaped.
    #[must_use]
    pub fn txt(mut self, name: &str, text: &str) -> Self {
        let line = format!("{name} IN TXT {}", txt_strings(text.as_bytes()));
        self.records.push(line);
        self
    }
}

/// Renders `data` as one or more quoted zone-file character-strings of at
/// most 255 bytes each.
fn txt_strings(data: &[u8]) -> String {
    if data.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::new();
    for chunk in data.chunks(255) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for &b in chunk {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('"');
    }
    out
}

/// Paths of the external programs.
#[derive(Debug, Clone)]
struct KnotBinaries {
    knotd: PathBuf,
    knotc: PathBuf,
}

impl KnotBinaries {
    fn find() -> Result<Self, LabError> {
        Ok(KnotBinaries {
            knotd: sys::find_binary("knotd", INSTALL_HINT)?,
            knotc: sys::find_binary("knotc", INSTALL_HINT)?,
        })
    }
}

/// A running private Knot DNS server on `127.0.0.1:<port>` (UDP and TCP),
/// authoritative for its [`DnsZone`]s and nothing else.
///
/// Dropping it stops knotd and removes its directory (also while a test
/// panics); servers left behind by killed test runs are cleaned up by the
/// next [`DnsServer::start`].
///
/// ```no_run
/// use mailwarden_testlab::{DnsServer, DnsZone};
///
/// let zone = DnsZone::new("lab.test").txt("@", "v=spf1 ip4:127.0.0.0/8 -all");
/// let mut dns = DnsServer::start(vec![zone])?;
/// println!("query {} for lab.test", dns.addr());
/// dns.set_zone(DnsZone::new("lab.test").txt("@", "v=spf1 -all"))?;
/// # Ok::<(), mailwarden_testlab::LabError>(())
/// ```
#[derive(Debug)]
pub struct DnsServer {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    bins: KnotBinaries,
    addr: SocketAddr,
    child: Option<Child>,
    /// Served zones: normalized origin → SOA serial.
    zones: BTreeMap<String, u32>,
    last_serial: u32,
}

impl DnsServer {
    /// Writes the configuration and zone files into a new temporary
    /// directory, starts knotd in the foreground on a free loopback port and
    /// waits until every zone answers an SOA query with its serial.
    ///
    /// Fails with a [`LabError`] if knotd or knotc are missing (with the
    /// `apt-get` fix), if a zone does not load (with Knot's message and the
    /// numbered zone file), or if the server does not come up. A port grabbed
    /// by someone else between probing and binding causes a retry with a new
    /// port.
    pub fn start(zones: Vec<DnsZone>) -> Result<DnsServer, LabError> {
        let bins = KnotBinaries::find()?;
        reap_stale_servers(Path::new(PARENT_DIR));

        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(PARENT_DIR)
            .map_err(|e| LabError::io(format!("creating a DNS server directory in {PARENT_DIR}"), e))?;
        let root = dir.path().to_path_buf();
        write_owner_file(&root)?;
        for sub in ["run", "db", "zones"] {
            let path = root.join(sub);
            fs::create_dir_all(&path).map_err(|e| LabError::io(format!("creating {}", path.display()), e))?;
        }

        let mut server = DnsServer {
            dir: Some(dir),
            root,
            bins,
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            child: None,
            zones: BTreeMap::new(),
            last_serial: 0,
        };
        for zone in zones {
            let origin = normalize_origin(&zone.origin)?;
            if server.zones.contains_key(&origin) {
                return Err(invalid_zone(&zone.origin, "the zone is listed twice"));
            }
            let serial = server.next_serial();
            server.write_zone_file(&origin, &zone, serial)?;
            server.zones.insert(origin, serial);
        }

        let mut attempt = 0;
        loop {
            attempt += 1;
            server.addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_udp_tcp_port()?));
            server.write_config()?;
            if attempt == 1 {
                server.check_zones(None)?;
            }
            match server.spawn_and_wait() {
                Err(_) if attempt < START_ATTEMPTS && server.port_was_taken() => server.stop(),
                Err(e) => {
                    server.stop();
                    return Err(e);
                }
                Ok(()) => return Ok(server),
            }
        }
    }

    /// The server's address, `127.0.0.1:<port>`; it answers on UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's temporary directory (configuration, zone files, log).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// knotd's log (its standard error), for failure messages.
    pub fn log_path(&self) -> PathBuf {
        self.root.join(LOG_FILE)
    }

    /// Replaces the zone with the same origin, or adds a new zone, and
    /// reloads the server with a higher SOA serial. Returns once the server
    /// answers with the new serial, so the change is visible to the next
    /// query (a resolver's cache aside).
    ///
    /// A zone that does not load is a [`LabError`] with Knot's message; the
    /// server then keeps serving the previous version.
    pub fn set_zone(&mut self, zone: DnsZone) -> Result<(), LabError> {
        if self.child.is_none() {
            return Err(LabError::Startup {
                instance: "knot dns server".into(),
                problem: format!("cannot set zone {}: the server is stopped", zone.origin),
                details: String::new(),
            });
        }
        let origin = normalize_origin(&zone.origin)?;
        let serial = self.next_serial();
        let previous = self.zones.get(&origin).copied();
        let zone_path = self.zone_path(&origin);
        let old_text = fs::read_to_string(&zone_path).ok();

        self.write_zone_file(&origin, &zone, serial)?;
        self.zones.insert(origin.clone(), serial);
        let result = self.write_config().and_then(|()| {
            self.check_zones(Some(&origin))?;
            if previous.is_some() {
                self.knotc(&["-b", "zone-reload", &origin])
            } else {
                self.knotc(&["-b", "reload"])
            }
        });
        if let Err(e) = result {
            // Restore the previous state on disk, so a later reload does not
            // pick up the rejected zone.
            match previous {
                Some(prev) => {
                    self.zones.insert(origin.clone(), prev);
                    if let Some(text) = old_text {
                        let _ = fs::write(&zone_path, text);
                    }
                }
                None => {
                    self.zones.remove(&origin);
                    let _ = fs::remove_file(&zone_path);
                }
            }
            let _ = self.write_config();
            return Err(e);
        }
        self.wait_served(&origin, serial, Instant::now() + READY_TIMEOUT)
    }

    /// Stops knotd (SIGTERM, then SIGKILL after a grace period) and waits for
    /// it to exit, which releases the port. The directory stays until the
    /// server is dropped. Stopping twice is harmless.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            sys::signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("mail lab: knotd {} ignored SIGTERM; killing it", child.id());
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        let _ = fs::remove_file(self.root.join(KNOTD_PID_FILE));
    }

    fn next_serial(&mut self) -> u32 {
        self.last_serial += 1;
        self.last_serial
    }

    fn zone_path(&self, origin: &str) -> PathBuf {
        self.root.join("zones").join(format!("{origin}.zone"))
    }

    fn config_path(&self) -> PathBuf {
        self.root.join("knot.conf")
    }

    fn socket_path(&self) -> PathBuf {
        self.root.join("run/knot.sock")
    }

    fn write_zone_file(&self, origin: &str, zone: &DnsZone, serial: u32) -> Result<(), LabError> {
        let path = self.zone_path(origin);
        fs::write(&path, render_zone(origin, &zone.records, serial))
            .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
    }

    fn write_config(&self) -> Result<(), LabError> {
        let root = self.root.display();
        let mut conf = format!(
            "# knotd configuration written by mailwarden-testlab\n\
             server:\n\
             \x20   rundir: \"{root}/run\"\n\
             \x20   pidfile: \"{root}/run/knot.pid\"\n\
             \x20   listen: {ip}@{port}\n\
             \x20   udp-workers: 1\n\
             \x20   tcp-workers: 1\n\
             \x20   background-workers: 1\n",
            ip = self.addr.ip(),
            port = self.addr.port(),
        );
        if sys::effective_uid() == Some(0) {
            // Keep root: the directory belongs to root and is not readable by a `knot` user.
            conf.push_str("    user: root:root\n");
        }
        let _ = write!(
            conf,
            "log:\n\
             \x20 - target: stderr\n\
             \x20   any: info\n\
             database:\n\
             \x20   storage: \"{root}/db\"\n\
             control:\n\
             \x20   listen: \"{root}/run/knot.sock\"\n\
             template:\n\
             \x20 - id: default\n\
             \x20   storage: \"{root}/zones\"\n\
             \x20   zonefile-sync: -1\n\
             \x20   zonefile-load: whole\n\
             \x20   journal-content: none\n\
             zone:\n"
        );
        for origin in self.zones.keys() {
            let _ = writeln!(conf, "  - domain: \"{origin}.\"\n    file: \"{origin}.zone\"");
        }
        let path = self.config_path();
        fs::write(&path, conf).map_err(|e| LabError::io(format!("writing {}", path.display()), e))
    }

    /// Runs `knotc zone-check` (offline, from the configuration file) for one
    /// zone or all; a failure carries Knot's message and the zone file.
    fn check_zones(&self, origin: Option<&str>) -> Result<(), LabError> {
        let mut cmd = Command::new(&self.bins.knotc);
        cmd.arg("-c").arg(self.config_path()).arg("zone-check");
        if let Some(origin) = origin {
            cmd.arg(origin);
        }
        let out = sys::run(&mut cmd, INSTALL_HINT)?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() && !stderr.contains("error:") {
            return Ok(());
        }
        let mut listing = String::new();
        let origins: Vec<&String> = match origin {
            Some(o) => self.zones.keys().filter(|k| k.as_str() == o).collect(),
            None => self.zones.keys().collect(),
        };
        for o in origins {
            if !stderr.contains(&format!("[{o}.]")) {
                continue;
            }
            let path = self.zone_path(o);
            let _ = writeln!(listing, "--- {} ---", path.display());
            for (i, line) in sys::read_log(&path).lines().enumerate() {
                let _ = writeln!(listing, "{:4}  {line}", i + 1);
            }
        }
        Err(LabError::Command {
            command: sys::describe(&cmd),
            status: out.status.code(),
            stdout: listing,
            stderr,
            hint: "a DnsZone does not load: fix the record on the line Knot names \
                   (zone files are listed under stdout)"
                .into(),
        })
    }

    /// Runs a knotc command against the running server's control socket.
    fn knotc(&self, args: &[&str]) -> Result<(), LabError> {
        let mut cmd = Command::new(&self.bins.knotc);
        cmd.arg("-c")
            .arg(self.config_path())
            .arg("-s")
            .arg(self.socket_path())
            .args(["-t", "10"])
            .args(args);
        let out = sys::run(&mut cmd, INSTALL_HINT)?;
        if out.status.success() {
            return Ok(());
        }
        // Read the log only now, so the hint shows what knotd said about this command.
        let hint = format!(
            "knotd rejected the command; the server keeps serving the previous zones. {}",
            self.log_details()
        );
        Err(sys::command_error(&cmd, &out, &hint))
    }

    fn spawn_and_wait(&mut self) -> Result<(), LabError> {
        let log_path = self.log_path();
        let log = fs::File::create(&log_path)
            .map_err(|e| LabError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| LabError::io(format!("duplicating {}", log_path.display()), e))?;
        let mut cmd = Command::new(&self.bins.knotd);
        cmd.arg("-c").arg(self.config_path());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| LabError::Command {
                command: sys::describe(&cmd),
                status: None,
                stdout: String::new(),
                stderr: format!("could not spawn: {e}"),
                hint: INSTALL_HINT.into(),
            })?;
        let pid_path = self.root.join(KNOTD_PID_FILE);
        let pid = child.id();
        self.child = Some(child);
        fs::write(&pid_path, format!("{pid}\n"))
            .map_err(|e| LabError::io(format!("writing {}", pid_path.display()), e))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        let origins: Vec<(String, u32)> = self.zones.iter().map(|(o, s)| (o.clone(), *s)).collect();
        for (origin, serial) in &origins {
            self.wait_served(origin, *serial, deadline)?;
        }
        // knotd binds UDP and TCP together, but make sure TCP answers too.
        if let Some((origin, serial)) = origins.first() {
            match query_soa_serial(self.addr, origin, Transport::Tcp) {
                Ok(Some(s)) if s == *serial => {}
                other => {
                    return Err(LabError::Startup {
                        instance: "knot dns server".into(),
                        problem: format!("UDP works but a TCP query for {origin} SOA gave {other:?}"),
                        details: self.log_details(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Polls the zone's SOA over UDP until it carries `serial`.
    fn wait_served(&mut self, origin: &str, serial: u32, deadline: Instant) -> Result<(), LabError> {
        let mut last;
        loop {
            match query_soa_serial(self.addr, origin, Transport::Udp) {
                Ok(Some(s)) if s == serial => return Ok(()),
                Ok(Some(s)) => last = format!("SOA serial {s}"),
                Ok(None) => last = "no SOA in the answer".into(),
                Err(e) => last = e,
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(LabError::Startup {
                    instance: "knot dns server".into(),
                    problem: format!("knotd exited ({status})"),
                    details: self.log_details(),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "knotd on {} to serve {origin} with SOA serial {serial}",
                        self.addr
                    ),
                    details: format!("last answer: {last}\n{}", self.log_details()),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_details(&self) -> String {
        let log = self.log_path();
        format!("--- tail of {} ---\n{}", log.display(), sys::tail(&log, 20))
    }

    /// True if knotd's log says its port was taken.
    fn port_was_taken(&self) -> bool {
        sys::read_log(&self.log_path())
            .to_ascii_lowercase()
            .contains("address already in use")
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Picks a port that is free on 127.0.0.1 for both UDP and TCP (probe
/// sockets are released before knotd binds; a race is handled by retrying).
fn free_udp_tcp_port() -> Result<u16, LabError> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| LabError::io("binding UDP 127.0.0.1:0 to find a free port", e))?;
        let port = udp
            .local_addr()
            .map_err(|e| LabError::io("reading a probe socket's port", e))?
            .port();
        match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            Ok(_tcp) => return Ok(port),
            Err(e) => last_err = Some(e),
        }
    }
    Err(LabError::io(
        "finding a port free for both UDP and TCP on 127.0.0.1",
        last_err.unwrap_or_else(|| std::io::Error::other("no port found")),
    ))
}

/// Lowercases and strips the trailing dot; rejects names Knot or our zone
/// file naming would trip over.
fn normalize_origin(origin: &str) -> Result<String, LabError> {
    let name = origin.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(invalid_zone(
            origin,
            "the origin must be a domain name of letters, digits, `-` and `_`",
        ));
    }
    Ok(name)
}

fn invalid_zone(origin: &str, problem: &str) -> LabError {
    LabError::Startup {
        instance: "knot dns server".into(),
        problem: format!("invalid zone `{origin}`: {problem}"),
        details: "hint: use DnsZone::new(\"lab.test\") with master-file records".into(),
    }
}

/// One logical zone-file entry (a record or a directive).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The entry started with a blank: the owner is inherited.
    blank_owner: bool,
    /// Tokens, quoted strings kept with their quotes and escapes.
    tokens: Vec<String>,
}

/// Splits master-file text into logical entries: handles comments, quoted
/// strings, backslash escapes and parentheses that continue an entry over
/// several lines.
fn parse_entries(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut token = String::new();
    let mut in_token = false;
    let mut blank_owner = false;
    let mut at_line_start = true;
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();

    fn end_token(tokens: &mut Vec<String>, token: &mut String, in_token: &mut bool) {
        if *in_token {
            tokens.push(std::mem::take(token));
            *in_token = false;
        }
    }

    while let Some(c) = chars.next() {
        let line_start = std::mem::replace(&mut at_line_start, false);
        match c {
            '\n' => {
                end_token(&mut tokens, &mut token, &mut in_token);
                if depth == 0 {
                    if !tokens.is_empty() {
                        entries.push(Entry {
                            blank_owner,
                            tokens: std::mem::take(&mut tokens),
                        });
                    }
                    blank_owner = false;
                }
                at_line_start = true;
            }
            ' ' | '\t' | '\r' => {
                if line_start && depth == 0 && tokens.is_empty() {
                    blank_owner = true;
                }
                end_token(&mut tokens, &mut token, &mut in_token);
            }
            ';' => {
                end_token(&mut tokens, &mut token, &mut in_token);
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '(' => {
                end_token(&mut tokens, &mut token, &mut in_token);
                depth += 1;
            }
            ')' => {
                end_token(&mut tokens, &mut token, &mut in_token);
                depth = depth.saturating_sub(1);
            }
            '"' => {
                in_token = true;
                token.push('"');
                while let Some(q) = chars.next() {
                    token.push(q);
                    if q == '\\' {
                        if let Some(escaped) = chars.next() {
                            token.push(escaped);
                        }
                    } else if q == '"' {
                        break;
                    }
                }
            }
            '\\' => {
                in_token = true;
                token.push('\\');
                if let Some(escaped) = chars.next() {
                    token.push(escaped);
                }
            }
            _ => {
                in_token = true;
                token.push(c);
            }
        }
    }
    end_token(&mut tokens, &mut token, &mut in_token);
    if !tokens.is_empty() {
        entries.push(Entry { blank_owner, tokens });
    }
    entries
}

/// The index of the record type token of a record entry (after owner, TTL
/// and class), or `None` for directives and malformed entries.
fn type_index(entry: &Entry) -> Option<usize> {
    if !entry.blank_owner && entry.tokens.first().is_some_and(|t| t.starts_with('$')) {
        return None;
    }
    let start = usize::from(!entry.blank_owner);
    entry
        .tokens
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, t)| {
            let upper = t.to_ascii_uppercase();
            let is_ttl = t.starts_with(|c: char| c.is_ascii_digit());
            let is_class = matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS") || upper.starts_with("CLASS");
            !is_ttl && !is_class
        })
        .map(|(i, _)| i)
}

/// Makes an owner name absolute (lowercase, without trailing dot).
fn absolute_name(name: &str, origin: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "@" {
        origin.to_owned()
    } else if let Some(abs) = lower.strip_suffix('.') {
        abs.to_owned()
    } else {
        format!("{lower}.{origin}")
    }
}

/// Facts about a zone's records that decide what is generated.
#[derive(Debug, Default)]
struct ZoneFacts {
    has_soa: bool,
    has_apex_ns: bool,
    owns_ns1: bool,
}

/// Writes the zone file text: the records (SOA serial replaced), followed by
/// a generated SOA, apex NS and glue where the records lack them. Generated
/// lines use absolute names, explicit TTL and class, so they do not depend
/// on any `$ORIGIN`/`$TTL` the records set.
fn render_zone(origin: &str, records: &[String], serial: u32) -> String {
    let mut out =
        format!("; zone {origin} written by mailwarden-testlab\n$ORIGIN {origin}.\n$TTL {DEFAULT_TTL}\n");
    let mut facts = ZoneFacts::default();
    let mut current_origin = origin.to_owned();
    let mut last_owner = origin.to_owned();
    let ns1 = format!("ns1.{origin}");
    for record in records {
        let mut entries = parse_entries(record);
        let mut rewritten = false;
        for entry in &mut entries {
            if !entry.blank_owner
                && let Some(first) = entry.tokens.first()
                && first.eq_ignore_ascii_case("$ORIGIN")
            {
                if let Some(o) = entry.tokens.get(1) {
                    current_origin = absolute_name(o, &current_origin);
                }
                continue;
            }
            let Some(ti) = type_index(entry) else { continue };
            let owner = if entry.blank_owner {
                last_owner.clone()
            } else {
                absolute_name(&entry.tokens[0], &current_origin)
            };
            last_owner.clone_from(&owner);
            if owner == ns1 {
                facts.owns_ns1 = true;
            }
            match entry.tokens[ti].to_ascii_uppercase().as_str() {
                "SOA" => {
                    facts.has_soa = true;
                    if let Some(s) = entry.tokens.get_mut(ti + 3) {
                        *s = serial.to_string();
                        rewritten = true;
                    }
                }
                "NS" if owner == origin => facts.has_apex_ns = true,
                _ => {}
            }
        }
        if rewritten {
            for entry in &entries {
                let lead = if entry.blank_owner { " " } else { "" };
                let _ = writeln!(out, "{lead}{}", entry.tokens.join(" "));
            }
        } else {
            out.push_str(record);
            if !record.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    if !facts.has_soa {
        let _ = writeln!(
            out,
            "{origin}. {DEFAULT_TTL} IN SOA ns1.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 60"
        );
    }
    if !facts.has_apex_ns {
        let _ = writeln!(out, "{origin}. {DEFAULT_TTL} IN NS ns1.{origin}.");
        if !facts.owns_ns1 {
            let _ = writeln!(out, "ns1.{origin}. {DEFAULT_TTL} IN A 127.0.0.1");
        }
    }
    out
}

/// How a probe query is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Asks `addr` for the SOA of `origin`. `Ok(Some(serial))` for an
/// authoritative answer, `Ok(None)` for an answer without SOA (zone not
/// loaded yet: REFUSED, SERVFAIL), `Err` when nothing usable came back.
fn query_soa_serial(addr: SocketAddr, origin: &str, transport: Transport) -> Result<Option<u32>, String> {
    let name = Name::from_ascii(format!("{origin}.")).map_err(|e| format!("bad name {origin}: {e}"))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(name, RecordType::SOA));
    let id = query.metadata.id;
    let wire = query.to_vec().map_err(|e| format!("encoding the query: {e}"))?;
    let timeout = Duration::from_millis(500);

    let reply = match transport {
        Transport::Udp => {
            let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| format!("UDP bind: {e}"))?;
            sock.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            sock.connect(addr).map_err(|e| format!("UDP connect: {e}"))?;
            sock.send(&wire).map_err(|e| format!("UDP send: {e}"))?;
            let mut buf = vec![0u8; 65535];
            let n = sock.recv(&mut buf).map_err(|e| format!("UDP receive: {e}"))?;
            buf.truncate(n);
            buf
        }
        Transport::Tcp => {
            let mut stream =
                TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("TCP connect: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_owned())?;
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&wire);
            stream.write_all(&framed).map_err(|e| format!("TCP send: {e}"))?;
            let mut len_buf = [0u8; 2];
            stream
                .read_exact(&mut len_buf)
                .map_err(|e| format!("TCP receive: {e}"))?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len_buf))];
            stream
                .read_exact(&mut buf)
                .map_err(|e| format!("TCP receive: {e}"))?;
            buf
        }
    };
    let reply = Message::from_vec(&reply).map_err(|e| format!("undecodable reply: {e}"))?;
    if reply.metadata.id != id {
        return Err(format!(
            "reply id {} does not match query id {id}",
            reply.metadata.id
        ));
    }
    if reply.metadata.response_code != ResponseCode::NoError || !reply.metadata.authoritative {
        return Ok(None);
    }
    Ok(reply.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }))
}

fn write_owner_file(root: &Path) -> Result<(), LabError> {
    let pid = std::process::id();
    let start = sys::proc_stat(pid).map_or(0, |s| s.start_time);
    let path = root.join(OWNER_FILE);
    fs::write(&path, format!("{pid} {start}\n"))
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

/// Stops knotd and removes the directories of servers whose owning process
/// is gone (a test run killed before its `Drop` ran).
fn reap_stale_servers(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
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
        if let Some(knotd) = sys::read_pid_file(&root.join(KNOTD_PID_FILE))
            && is_knotd_of(knotd, &root)
        {
            sys::signal(knotd, "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while sys::alive(knotd) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if sys::alive(knotd) {
                sys::signal(knotd, "KILL");
            }
        }
        eprintln!(
            "mail lab: removed stale DNS server {} (owner process {pid} is gone)",
            root.display()
        );
        let _ = fs::remove_dir_all(&root);
    }
}

/// True if `pid` is a knotd started with the configuration in `root` (so a
/// recycled pid is never signalled).
fn is_knotd_of(pid: u32, root: &Path) -> bool {
    if sys::proc_comm(pid).as_deref() != Some("knotd") {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let conf = root.join("knot.conf");
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == conf.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_long_txt_into_255_byte_strings() {
        let value = "a".repeat(600);
        let rendered = txt_strings(value.as_bytes());
        let parts: Vec<&str> = rendered.split(' ').collect();
        assert_eq!(parts.len(), 3, "{rendered}");
        assert_eq!(parts[0].len(), 255 + 2);
        assert_eq!(parts[1].len(), 255 + 2);
        assert_eq!(parts[2].len(), 90 + 2);
        assert_eq!(txt_strings(b""), "\"\"");
    }

    #[test]
    fn escapes_txt_bytes_and_splits_on_raw_bytes() {
        assert_eq!(txt_strings(b"a\"b\\c\x01"), r#""a\"b\\c\001""#);
        // 254 plain bytes and a quote: the quote is byte 255 and stays in the first string.
        let mut value = "x".repeat(254);
        value.push('"');
        value.push('y');
        let rendered = txt_strings(value.as_bytes());
        assert!(rendered.ends_with(r#"\"" "y""#), "{rendered}");
    }

    #[test]
    fn parses_entries_with_comments_parens_and_blank_owners() {
        let entries = parse_entries(
            "@ IN SOA ns1 host ( 7 ; serial\n 3600 600 86400 60 )\n  IN TXT \"a ; b\" \"c\\\"d\"\nmx 60 IN MX 10 mail\n",
        );
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(
            entries[0].tokens,
            ["@", "IN", "SOA", "ns1", "host", "7", "3600", "600", "86400", "60"]
        );
        assert!(entries[1].blank_owner);
        assert_eq!(entries[1].tokens, ["IN", "TXT", "\"a ; b\"", "\"c\\\"d\""]);
        assert_eq!(type_index(&entries[1]), Some(1));
        assert_eq!(type_index(&entries[2]), Some(3));
    }

    #[test]
    fn generates_soa_ns_and_glue_when_missing() {
        let text = render_zone("lab.test", &["@ IN TXT \"x\"".to_owned()], 42);
        assert!(
            text.contains("lab.test. 300 IN SOA ns1.lab.test. hostmaster.lab.test. 42 "),
            "{text}"
        );
        assert!(text.contains("lab.test. 300 IN NS ns1.lab.test."), "{text}");
        assert!(text.contains("ns1.lab.test. 300 IN A 127.0.0.1"), "{text}");
    }

    #[test]
    fn keeps_supplied_soa_and_ns_but_replaces_the_serial() {
        let records = [
            "@ 60 IN SOA ns.other.test. admin.lab.test. ( 2024010101 7200 900 1209600 30 )".to_owned(),
            "lab.test. IN NS ns.other.test.".to_owned(),
        ];
        let text = render_zone("lab.test", &records, 9);
        assert!(
            text.contains("@ 60 IN SOA ns.other.test. admin.lab.test. 9 7200 900 1209600 30\n"),
            "{text}"
        );
        assert_eq!(text.matches(" SOA ").count(), 1, "{text}");
        assert_eq!(text.matches(" NS ").count(), 1, "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
    }

    #[test]
    fn no_glue_when_ns1_is_defined() {
        let text = render_zone("lab.test", &["ns1 IN AAAA ::1".to_owned()], 1);
        assert!(text.contains("IN NS ns1.lab.test."), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
    }

    #[test]
    fn normalizes_and_rejects_origins() {
        assert_eq!(normalize_origin("Lab.Test.").unwrap(), "lab.test");
        assert!(normalize_origin("").is_err());
        assert!(normalize_origin("bad name.test").is_err());
        assert!(normalize_origin("../etc").is_err());
    }

    #[test]
    fn finds_a_port_free_for_udp_and_tcp() {
        let port = free_udp_tcp_port().unwrap();
        assert!(port >= 1024);
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
