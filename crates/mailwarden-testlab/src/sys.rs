//! Small operating-system helpers built on std only: locating programs,
//! running commands with good error messages, reading `/proc`, sending
//! signals through `kill(1)`, picking free loopback ports and reading logs.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// Directories searched after `PATH` (root's sbin dirs are often missing from
/// a test runner's `PATH`).
const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// Finds an executable by name, or explains how to install it.
pub(crate) fn find_binary(name: &str, hint: &str) -> Result<PathBuf, LabError> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var).chain(EXTRA_DIRS.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(LabError::MissingBinary {
        name: name.to_owned(),
        hint: hint.to_owned(),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a command to completion; a non-zero exit becomes a [`LabError::Command`].
pub(crate) fn run_checked(cmd: &mut Command, hint: &str) -> Result<Output, LabError> {
    let out = run(cmd, hint)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_error(cmd, &out, hint))
    }
}

/// Runs a command to completion and returns its output whatever its exit status.
pub(crate) fn run(cmd: &mut Command, hint: &str) -> Result<Output, LabError> {
    cmd.stdin(std::process::Stdio::null());
    cmd.output().map_err(|e| spawn_error(cmd, &e, hint))
}

/// Like [`run`], for commands that start a daemon: the daemon may keep the
/// inherited stdout/stderr open, so they go to files in `scratch_dir`
/// instead of pipes (whose EOF would never come).
pub(crate) fn run_daemonizing(cmd: &mut Command, scratch_dir: &Path, hint: &str) -> Result<Output, LabError> {
    let open = |name: &str| {
        let path = scratch_dir.join(name);
        fs::File::create(&path)
            .map(|f| (f, path))
            .map_err(|e| spawn_error(cmd, &e, hint))
    };
    let (out_file, out_path) = open("start.stdout")?;
    let (err_file, err_path) = open("start.stderr")?;
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .status()
        .map_err(|e| spawn_error(cmd, &e, hint))?;
    Ok(Output {
        status,
        stdout: fs::read(out_path).unwrap_or_default(),
        stderr: fs::read(err_path).unwrap_or_default(),
    })
}

fn spawn_error(cmd: &Command, e: &std::io::Error, hint: &str) -> LabError {
    LabError::Command {
        command: describe(cmd),
        status: None,
        stdout: String::new(),
        stderr: format!("could not spawn: {e}"),
        hint: hint.to_owned(),
    }
}

/// Builds a [`LabError::Startup`] for a daemon start command that failed:
/// the command, its output, the instance's log tail and a hint.
pub(crate) fn startup_error(instance: &str, cmd: &Command, out: &Output, log: &Path, hint: &str) -> LabError {
    let mut details = String::new();
    for (name, bytes) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
        let text = String::from_utf8_lossy(bytes);
        if !text.trim().is_empty() {
            details.push_str(&format!("--- {name} ---\n{}\n", text.trim_end()));
        }
    }
    details.push_str(&format!("--- tail of {} ---\n{}\n", log.display(), tail(log, 20)));
    let log_text = read_log(log);
    if log_text.contains("Permission denied") {
        details.push_str(
            "hint: \"Permission denied\" usually means a parent of the lab directory is not traversable \
             by the postfix, dovecot and mail users; use a LabOptions::parent_dir such as /tmp\n",
        );
    }
    details.push_str(&format!("hint: {hint}"));
    let status = out
        .status
        .code()
        .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
    LabError::Startup {
        instance: instance.to_owned(),
        problem: format!("`{}` exited with {status}", describe(cmd)),
        details,
    }
}

/// Builds a [`LabError::Command`] from a finished command.
pub(crate) fn command_error(cmd: &Command, out: &Output, hint: &str) -> LabError {
    LabError::Command {
        command: describe(cmd),
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        hint: hint.to_owned(),
    }
}

/// The effective uid of this process, from `/proc/self/status`.
pub(crate) fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Looks up `(uid, gid)` of a system account in `/etc/passwd`.
pub(crate) fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// Process facts from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStat {
    pub(crate) state: char,
    pub(crate) session: u32,
    pub(crate) start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); session is field 6, starttime field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// True if the process exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// The executable name of a process (from `/proc/<pid>/comm`).
pub(crate) fn proc_comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// All live (non-zombie) processes whose session id is `sid`.
pub(crate) fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|s| s.session == sid && s.state != 'Z' && s.state != 'X'))
        .collect()
}

/// Sends a signal (e.g. `TERM`, `KILL`) to one process via `kill(1)`.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Waits until no live process remains in session `sid`; after `grace`,
/// SIGKILLs the survivors. Returns the pids that had to be killed.
pub(crate) fn drain_session(sid: u32, grace: Duration) -> Vec<u32> {
    let deadline = Instant::now() + grace;
    loop {
        let members = session_members(sid);
        if members.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            for &pid in &members {
                signal(pid, "KILL");
            }
            thread::sleep(Duration::from_millis(100));
            return members;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a pid file (Postfix pads the number with spaces).
pub(crate) fn read_pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Picks `n` distinct free TCP ports on 127.0.0.1 by binding port 0 and
/// releasing the sockets again.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, LabError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::io("binding 127.0.0.1:0 to find a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::io("reading a probe socket's port", e))
}

/// True if something listens on `127.0.0.1:port` (probed by trying to bind
/// it, which does not disturb the server or its logs).
pub(crate) fn port_in_use(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err()
}

/// Current length of a file, 0 if it does not exist yet.
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Reads a whole log file as text (lossy), empty if missing.
pub(crate) fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("({} does not exist)", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return format!("({} is unreadable)", path.display());
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    if all.is_empty() {
        "(empty)".to_owned()
    } else {
        all[from..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc_stat() {
        let me = proc_stat(std::process::id()).expect("/proc/self exists");
        assert!(me.state == 'R' || me.state == 'S', "state {}", me.state);
        assert!(me.start_time > 0);
        assert!(alive(std::process::id()));
        assert!(session_members(me.session).contains(&std::process::id()));
    }

    #[test]
    fn picks_distinct_free_ports() {
        let ports = free_ports(5).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5, "{ports:?}");
        assert!(ports.iter().all(|&p| p >= 1024), "{ports:?}");
    }

    #[test]
    fn describes_commands_shell_quoted() {
        let mut cmd = Command::new("swaks");
        cmd.args(["--header", "Message-Id: <a@b>", "--to", "x@y.test"]);
        assert_eq!(describe(&cmd), "swaks --header 'Message-Id: <a@b>' --to x@y.test");
    }
}
