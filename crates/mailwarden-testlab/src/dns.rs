//! [`DnsServer`]: a private authoritative DNS server (Knot DNS, `knotd`) on
//! 127.0.0.1 serving test zones ([`DnsZone`]) over UDP and TCP.
//!
//! Everything the server touches lives in its own temporary directory: the
//! configuration file, the zone files, the run directory (pid file and control
//! socket) and the database storage (timers, journal). The machine's own Knot
//! service and `/etc/knot` are never used. The server only answers for its
//! zones and never recurses, so tests that point a resolver at
//! [`DnsServer::addr`] cannot reach the internet.
//!
//! [`DnsFront`] sits between a client and the server and leaves queries for
//! chosen names unanswered, so tests can meet real DNS timeouts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The zone's apex, e.g. `lab.test` (a trailing dot is allowed), or `.`
    /// for the root zone (which can hold any name, so a test can serve
    /// names under several top-level domains from one zone).
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

    /// Adds a TXT record at `name` made of exactly these character-strings,
    /// in this order (unlike [`txt`](Self::txt), which splits one value
    /// itself). Strings may hold any bytes: quotes, backslashes, control
    /// and non-ASCII bytes are escaped. A string longer than 255 bytes cannot
    /// be one character-string and is split into 255-byte pieces. An empty
    /// list gives one empty string: RDATA of zero strings has no master-file
    /// form.
    #[must_use]
    pub fn txt_parts<S: AsRef<[u8]>>(self, name: &str, parts: &[S]) -> Self {
        self.character_strings(name, "TXT", parts)
    }

    /// Like [`txt_parts`](Self::txt_parts) for the SPF record type (RR type
    /// 99, RFC 4408; obsoleted by RFC 7208 but still seen).
    #[must_use]
    pub fn spf_parts<S: AsRef<[u8]>>(self, name: &str, parts: &[S]) -> Self {
        self.character_strings(name, "SPF", parts)
    }

    fn character_strings<S: AsRef<[u8]>>(mut self, name: &str, rtype: &str, parts: &[S]) -> Self {
        let mut rdata = String::new();
        for part in parts {
            if !rdata.is_empty() {
                rdata.push(' ');
            }
            rdata.push_str(&txt_strings(part.as_ref()));
        }
        if rdata.is_empty() {
            rdata.push_str("\"\"");
        }
        self.records.push(format!("{name} IN {rtype} {rdata}"));
        self
    }
}

/// Renders a domain name given as text (`Foo.example.com`, a trailing dot
/// optional) as an absolute master-file name, escaping every byte of a label
/// other than letters, digits, `-` and `_` as `\DDD`, so names with spaces,
/// `%`, `:` or `/` (which DNS allows, and test suites use) load as written.
/// A label that is exactly `*` stays a wildcard. The empty name and `.` are
/// the root, `.`.
///
/// ```
/// use mailwarden_testlab::master_file_name;
///
/// assert_eq!(master_file_name("a b.example.com"), "a\\032b.example.com.");
/// assert_eq!(master_file_name("*.lab.test."), "*.lab.test.");
/// assert_eq!(master_file_name(""), ".");
/// ```
pub fn master_file_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return ".".to_owned();
    }
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.split('.') {
        if label == "*" {
            out.push('*');
        } else {
            for &b in label.as_bytes() {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('.');
    }
    out
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
                self.knotc(&["-b", "zone-reload", &fqdn(&origin)])
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
        self.root.join("zones").join(zone_file_name(origin))
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
            let _ = writeln!(
                conf,
                "  - domain: \"{}\"\n    file: \"{}\"",
                fqdn(origin),
                zone_file_name(origin)
            );
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
            cmd.arg(fqdn(origin));
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
            if !stderr.contains(&format!("[{}]", fqdn(o))) {
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
/// file naming would trip over. The root zone `.` becomes the empty string.
fn normalize_origin(origin: &str) -> Result<String, LabError> {
    if origin.trim() == "." {
        return Ok(String::new());
    }
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

/// The absolute form of a normalized name (`lab.test` → `lab.test.`, the
/// root `""` → `.`).
fn fqdn(name: &str) -> String {
    if name.is_empty() {
        ".".to_owned()
    } else {
        format!("{name}.")
    }
}

/// `label` below the normalized `origin` (normalized, without trailing dot).
fn child(label: &str, origin: &str) -> String {
    if origin.is_empty() {
        label.to_owned()
    } else {
        format!("{label}.{origin}")
    }
}

/// The zone file's name for a normalized origin; the root zone gets `@.zone`
/// (an `@` never occurs in a normalized origin, so it cannot clash).
fn zone_file_name(origin: &str) -> String {
    if origin.is_empty() {
        "@.zone".to_owned()
    } else {
        format!("{origin}.zone")
    }
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
        child(&lower, origin)
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
    let apex = fqdn(origin);
    let mut out =
        format!("; zone {apex} written by mailwarden-testlab\n$ORIGIN {apex}\n$TTL {DEFAULT_TTL}\n");
    let mut facts = ZoneFacts::default();
    let mut current_origin = origin.to_owned();
    let mut last_owner = origin.to_owned();
    let ns1 = child("ns1", origin);
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
            "{apex} {DEFAULT_TTL} IN SOA {} {} {serial} 3600 600 86400 60",
            fqdn(&ns1),
            fqdn(&child("hostmaster", origin))
        );
    }
    if !facts.has_apex_ns {
        let _ = writeln!(out, "{apex} {DEFAULT_TTL} IN NS {}", fqdn(&ns1));
        if !facts.owns_ns1 {
            let _ = writeln!(out, "{} {DEFAULT_TTL} IN A 127.0.0.1", fqdn(&ns1));
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
    let name = Name::from_ascii(fqdn(origin)).map_err(|e| format!("bad name {origin}: {e}"))?;
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

/// A name that a [`DnsFront`] leaves unanswered, and the record types it
/// still answers for that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentName {
    /// The owner name (case-insensitive, trailing dot optional).
    pub name: String,
    /// Numeric record types (e.g. 16 for TXT) still passed to the server for
    /// this name; a query of any other type is dropped. Empty: every query
    /// for the name is dropped.
    pub answered_types: Vec<u16>,
}

impl SilentName {
    /// Every query for `name` is dropped.
    pub fn all(name: impl Into<String>) -> Self {
        SilentName {
            name: name.into(),
            answered_types: Vec::new(),
        }
    }
}

/// How long the front's threads block before looking at the stop flag.
const FRONT_POLL: Duration = Duration::from_millis(50);
/// How long the front waits for the upstream server's answer.
const FRONT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Most TCP connections the front serves at once (more are closed at once).
const FRONT_MAX_TCP: usize = 64;

/// A DNS front on `127.0.0.1:<port>` (UDP and TCP) that passes every query
/// to an upstream server — normally a [`DnsServer`] — and relays its answer,
/// except queries for [`SilentName`]s, which it reads and never answers.
///
/// Knot always answers for its zones, and a stub resolver treats a referral
/// to an unreachable name server as "no data" rather than as a timeout. A
/// client pointed at the front instead meets a real, unanswered query for
/// the silent names — exactly what a dead or firewalled authoritative server
/// looks like — and its own timeout fires. Nothing else is changed: answers
/// are relayed byte for byte.
///
/// UDP queries are relayed one at a time (Knot answers at once); each TCP
/// connection gets a thread, at most 64 at a time. Dropping the front stops
/// its threads (within about 50 ms).
///
/// ```no_run
/// use mailwarden_testlab::{DnsFront, DnsServer, DnsZone, SilentName};
///
/// let dns = DnsServer::start(vec![DnsZone::new("lab.test").txt("@", "v=spf1 -all")])?;
/// let front = DnsFront::start(dns.addr())?;
/// front.set_silent(vec![SilentName::all("slow.lab.test")]);
/// println!("ask {} — queries for slow.lab.test time out", front.addr());
/// # Ok::<(), mailwarden_testlab::LabError>(())
/// ```
#[derive(Debug)]
pub struct DnsFront {
    addr: SocketAddr,
    shared: Arc<FrontShared>,
    threads: Vec<thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct FrontShared {
    /// Lowercased name bytes (labels joined by `.`) → answered types.
    silent: Mutex<HashMap<Vec<u8>, Vec<u16>>>,
    stop: AtomicBool,
    dropped: AtomicU64,
    tcp_open: AtomicUsize,
    connections: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl DnsFront {
    /// Binds UDP and TCP on one free loopback port and starts relaying to
    /// `upstream`. Nothing is silent until [`set_silent`](Self::set_silent).
    pub fn start(upstream: SocketAddr) -> Result<DnsFront, LabError> {
        let (udp, tcp) = bind_udp_tcp_pair()?;
        let addr = udp
            .local_addr()
            .map_err(|e| LabError::io("reading the DNS front's address", e))?;
        udp.set_read_timeout(Some(FRONT_POLL))
            .map_err(|e| LabError::io("setting the DNS front's UDP timeout", e))?;
        tcp.set_nonblocking(true)
            .map_err(|e| LabError::io("making the DNS front's TCP listener non-blocking", e))?;
        let shared = Arc::new(FrontShared::default());
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map_err(|e| LabError::io(format!("spawning the {name} thread"), e))
        };
        let udp_shared = Arc::clone(&shared);
        let udp_thread = spawn(
            "dns-front-udp",
            Box::new(move || front_udp(&udp, upstream, &udp_shared)),
        )?;
        let tcp_shared = Arc::clone(&shared);
        let tcp_thread = match spawn(
            "dns-front-tcp",
            Box::new(move || front_tcp(&tcp, upstream, &tcp_shared)),
        ) {
            Ok(t) => t,
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                let _ = udp_thread.join();
                return Err(e);
            }
        };
        Ok(DnsFront {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        })
    }

    /// The front's address, `127.0.0.1:<port>`, for UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the set of silent names (an empty list makes the front a
    /// plain relay). Takes effect for the next query.
    pub fn set_silent(&self, names: Vec<SilentName>) {
        let map = names
            .into_iter()
            .map(|n| (name_key_from_text(&n.name), n.answered_types))
            .collect();
        *lock(&self.shared.silent) = map;
    }

    /// How many queries were dropped since the front started.
    pub fn dropped_queries(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for DnsFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for t in connections {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A name as the front compares it: ASCII-lowercased labels joined by `.`.
fn name_key_from_text(name: &str) -> Vec<u8> {
    name.trim().trim_end_matches('.').as_bytes().to_ascii_lowercase()
}

impl FrontShared {
    /// True if `query` asks for a silent name with a type not answered. A
    /// message that does not decode is passed on (the server answers it).
    fn is_silent(&self, query: &[u8]) -> bool {
        let Ok(msg) = Message::from_vec(query) else {
            return false;
        };
        let silent = lock(&self.silent);
        if silent.is_empty() {
            return false;
        }
        msg.queries.iter().any(|q| {
            let mut key = Vec::new();
            for label in q.name().iter() {
                if !key.is_empty() {
                    key.push(b'.');
                }
                key.extend(label.iter().map(u8::to_ascii_lowercase));
            }
            silent
                .get(&key)
                .is_some_and(|answered| !answered.contains(&u16::from(q.query_type())))
        })
    }
}

/// Binds UDP and TCP on the same free loopback port (both stay bound, so
/// nobody can take the port in between).
fn bind_udp_tcp_pair() -> Result<(UdpSocket, TcpListener), LabError> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| LabError::io("binding UDP 127.0.0.1:0 for the DNS front", e))?;
        let port = udp
            .local_addr()
            .map_err(|e| LabError::io("reading the DNS front's UDP port", e))?
            .port();
        match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(LabError::io(
        "finding a port free for both UDP and TCP on 127.0.0.1 for the DNS front",
        last_err.unwrap_or_else(|| std::io::Error::other("no port found")),
    ))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
    )
}

/// The UDP side: one datagram at a time (the upstream answers at once).
fn front_udp(sock: &UdpSocket, upstream: SocketAddr, shared: &FrontShared) {
    let mut buf = vec![0u8; 65535];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => continue,
            // ICMP errors from earlier replies surface here; keep serving.
            Err(_) => continue,
        };
        let query = &buf[..n];
        if shared.is_silent(query) {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if let Some(reply) = relay_udp(upstream, query) {
            let _ = sock.send_to(&reply, peer);
        }
    }
}

fn relay_udp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.set_read_timeout(Some(FRONT_UPSTREAM_TIMEOUT)).ok()?;
    sock.connect(upstream).ok()?;
    sock.send(query).ok()?;
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The TCP side: accepts connections, one thread each.
fn front_tcp(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<FrontShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.tcp_open.load(Ordering::SeqCst) >= FRONT_MAX_TCP {
                    continue; // dropping `stream` closes it
                }
                shared.tcp_open.fetch_add(1, Ordering::SeqCst);
                let conn_shared = Arc::clone(shared);
                let handle = thread::Builder::new()
                    .name("dns-front-conn".to_owned())
                    .spawn(move || {
                        front_tcp_connection(stream, upstream, &conn_shared);
                        conn_shared.tcp_open.fetch_sub(1, Ordering::SeqCst);
                    });
                match handle {
                    Ok(h) => {
                        let mut conns = lock(&shared.connections);
                        conns.retain(|t| !t.is_finished());
                        conns.push(h);
                    }
                    Err(_) => {
                        shared.tcp_open.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
            Err(e) if is_timeout(&e) => thread::sleep(FRONT_POLL / 5),
            Err(_) => thread::sleep(FRONT_POLL / 5),
        }
    }
}

/// Reads exactly `buf.len()` bytes, waking up to look at the stop flag.
/// `false` on end of stream, error or stop.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], shared: &FrontShared) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(n) => filled += n,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Serves one client connection: length-prefixed messages (RFC 1035
/// §4.2.2); silent queries are read and left unanswered.
fn front_tcp_connection(mut stream: TcpStream, upstream: SocketAddr, shared: &FrontShared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(FRONT_POLL)).is_err() {
        return;
    }
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut stream, &mut len, shared) {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_full(&mut stream, &mut query, shared) {
            return;
        }
        if shared.is_silent(&query) {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let Some(reply) = relay_tcp(upstream, &len, &query) else {
            return;
        };
        if stream.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Sends one framed query upstream over a new connection; returns the
/// framed reply.
fn relay_tcp(upstream: SocketAddr, len: &[u8; 2], query: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect_timeout(&upstream, FRONT_UPSTREAM_TIMEOUT).ok()?;
    up.set_read_timeout(Some(FRONT_UPSTREAM_TIMEOUT)).ok()?;
    let mut framed = len.to_vec();
    framed.extend_from_slice(query);
    up.write_all(&framed).ok()?;
    let mut reply_len = [0u8; 2];
    up.read_exact(&mut reply_len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(reply_len))];
    up.read_exact(&mut reply).ok()?;
    let mut out = reply_len.to_vec();
    out.extend_from_slice(&reply);
    Some(out)
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
    fn normalizes_the_root_origin() {
        assert_eq!(normalize_origin(".").unwrap(), "");
        assert_eq!(normalize_origin(" . ").unwrap(), "");
        assert_eq!(fqdn(""), ".");
        assert_eq!(fqdn("lab.test"), "lab.test.");
        assert_eq!(zone_file_name(""), "@.zone");
        assert_eq!(zone_file_name("lab.test"), "lab.test.zone");
        assert_eq!(absolute_name("mail", ""), "mail");
        assert_eq!(absolute_name("@", ""), "");
        assert_eq!(absolute_name(".", ""), "");
    }

    #[test]
    fn renders_a_root_zone() {
        let text = render_zone("", &["example.com. IN A 192.0.2.1".to_owned()], 3);
        assert!(text.contains("$ORIGIN .\n"), "{text}");
        assert!(
            text.contains(". 300 IN SOA ns1. hostmaster. 3 3600 600 86400 60\n"),
            "{text}"
        );
        assert!(text.contains(". 300 IN NS ns1.\n"), "{text}");
        assert!(text.contains("ns1. 300 IN A 127.0.0.1\n"), "{text}");
        assert!(!text.contains(".."), "{text}");
    }

    #[test]
    fn escapes_odd_owner_names() {
        assert_eq!(master_file_name("Mail.Example.com."), "Mail.Example.com.");
        assert_eq!(
            master_file_name("foo:bar/baz.example.com"),
            "foo\\058bar\\047baz.example.com."
        );
        assert_eq!(master_file_name("a%b  c.test"), "a\\037b\\032\\032c.test.");
        assert_eq!(master_file_name("x\"y;z(.test"), "x\\034y\\059z\\040.test.");
        assert_eq!(master_file_name("*.test"), "*.test.");
        assert_eq!(master_file_name("a*.test"), "a\\042.test.");
        assert_eq!(master_file_name("."), ".");
    }

    #[test]
    fn renders_explicit_character_strings() {
        let zone = DnsZone::new(".")
            .txt_parts("a", &["v=spf1 ip4:", "192.0.2.5 -all"])
            .txt_parts::<&str>("b", &[])
            .spf_parts("c", &[b"\x96\"\\".as_slice()])
            .txt_parts("d", &["x".repeat(300)]);
        assert_eq!(zone.records[0], r#"a IN TXT "v=spf1 ip4:" "192.0.2.5 -all""#);
        assert_eq!(zone.records[1], r#"b IN TXT """#);
        assert_eq!(zone.records[2], r#"c IN SPF "\150\"\\""#);
        assert!(
            zone.records[3].ends_with(&format!(r#"" "{}""#, "x".repeat(45))),
            "{}",
            zone.records[3]
        );
    }

    /// Sends one query for `labels`/`rtype` to `addr`; `None` when nothing
    /// came back within `wait`.
    fn ask(
        addr: SocketAddr,
        labels: &[&[u8]],
        rtype: RecordType,
        tcp: bool,
        wait: Duration,
    ) -> Option<Message> {
        let name = Name::from_labels(labels.iter().map(|l| l.to_vec())).unwrap();
        let mut query = Message::query();
        query.metadata.recursion_desired = false;
        query.add_query(Query::query(name, rtype));
        let wire = query.to_vec().unwrap();
        let reply = if tcp {
            let mut stream = TcpStream::connect_timeout(&addr, wait).ok()?;
            stream.set_read_timeout(Some(wait)).unwrap();
            let mut framed = u16::try_from(wire.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(&wire);
            stream.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).ok()?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut buf).ok()?;
            buf
        } else {
            let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
            sock.set_read_timeout(Some(wait)).unwrap();
            sock.connect(addr).unwrap();
            sock.send(&wire).unwrap();
            let mut buf = vec![0u8; 65535];
            let n = sock.recv(&mut buf).ok()?;
            buf.truncate(n);
            buf
        };
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, query.metadata.id);
        Some(reply)
    }

    fn txt_answers(reply: &Message) -> Vec<Vec<Vec<u8>>> {
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => None,
            })
            .collect()
    }

    /// The root zone holds names under several TLDs, odd owner names and
    /// explicit strings; the front relays it and drops silent names over
    /// UDP and TCP. Needs knotd (as the other DnsServer tests do).
    #[test]
    fn serves_a_root_zone_and_fronts_it_with_silent_names() {
        let zone = DnsZone::new(".")
            .txt_parts("multi.example.com.", &["v=spf1 ip4:", "192.0.2.5 -all"])
            .txt_parts("bytes.example.net.", &[b"a\x00\x96\"b".as_slice()])
            .record(format!(
                "{} IN A 192.0.2.7",
                master_file_name("odd%name  x.example.org")
            ))
            .txt_parts("slow.example.com.", &["v=spf1 -all"])
            .record("slow.example.com. IN A 192.0.2.9");
        let mut dns = DnsServer::start(vec![zone]).unwrap();
        let wait = Duration::from_secs(2);
        let direct = dns.addr();
        let multi = ask(
            direct,
            &[b"multi", b"example", b"com"],
            RecordType::TXT,
            false,
            wait,
        )
        .unwrap();
        assert_eq!(
            txt_answers(&multi),
            vec![vec![b"v=spf1 ip4:".to_vec(), b"192.0.2.5 -all".to_vec()]]
        );
        let bytes = ask(
            direct,
            &[b"bytes", b"example", b"net"],
            RecordType::TXT,
            true,
            wait,
        )
        .unwrap();
        assert_eq!(txt_answers(&bytes), vec![vec![b"a\x00\x96\"b".to_vec()]]);
        let odd = ask(
            direct,
            &[b"odd%name  x", b"example", b"org"],
            RecordType::A,
            false,
            wait,
        )
        .unwrap();
        assert_eq!(odd.answers.len(), 1, "{odd:?}");
        let missing = ask(direct, &[b"nowhere", b"test"], RecordType::A, false, wait).unwrap();
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);

        let front = DnsFront::start(direct).unwrap();
        front.set_silent(vec![SilentName {
            name: "Slow.Example.com.".into(),
            answered_types: vec![u16::from(RecordType::TXT)],
        }]);
        let short = Duration::from_millis(300);
        for tcp in [false, true] {
            let relayed = ask(
                front.addr(),
                &[b"multi", b"example", b"com"],
                RecordType::TXT,
                tcp,
                wait,
            )
            .unwrap();
            assert_eq!(relayed.answers, multi.answers);
            let txt = ask(
                front.addr(),
                &[b"slow", b"example", b"com"],
                RecordType::TXT,
                tcp,
                wait,
            )
            .unwrap();
            assert_eq!(txt_answers(&txt), vec![vec![b"v=spf1 -all".to_vec()]]);
            assert!(
                ask(
                    front.addr(),
                    &[b"slow", b"example", b"com"],
                    RecordType::A,
                    tcp,
                    short
                )
                .is_none()
            );
        }
        assert_eq!(front.dropped_queries(), 2);
        front.set_silent(vec![SilentName::all("multi.example.com")]);
        assert!(
            ask(
                front.addr(),
                &[b"multi", b"example", b"com"],
                RecordType::TXT,
                false,
                short
            )
            .is_none()
        );
        assert_eq!(front.dropped_queries(), 3);

        // The root zone is replaced like any other zone.
        dns.set_zone(DnsZone::new(".").txt("other.example.", "x"))
            .unwrap();
        let gone = ask(
            direct,
            &[b"multi", b"example", b"com"],
            RecordType::TXT,
            false,
            wait,
        )
        .unwrap();
        assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
        drop(front);
    }

    #[test]
    fn finds_a_port_free_for_udp_and_tcp() {
        let port = free_udp_tcp_port().unwrap();
        assert!(port >= 1024);
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
