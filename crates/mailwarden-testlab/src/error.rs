//! The lab's error type: every failure names what was attempted, what the
//! system said, and how to fix it.

use std::fmt;
use std::io;

/// Everything that can go wrong while building, running or stopping the lab.
///
/// The `Display` output is meant to be read by a human in a failing test: it
/// carries the failing command, its stderr and a fix hint.
#[derive(Debug)]
pub enum LabError {
    /// A required program is not installed.
    MissingBinary {
        /// Program name, e.g. `postfix`.
        name: String,
        /// How to install it.
        hint: String,
    },
    /// The lab needs root privileges (Postfix and Dovecot drop privileges themselves).
    NotRoot {
        /// The effective uid we run as.
        euid: u32,
    },
    /// A filesystem or socket operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An external command failed (non-zero exit or could not be spawned).
    Command {
        /// The command line, shell-quoted for copy and paste.
        command: String,
        /// Its exit code, if it exited normally.
        status: Option<i32>,
        /// Its standard output.
        stdout: String,
        /// Its standard error.
        stderr: String,
        /// A hint for fixing the problem.
        hint: String,
    },
    /// An instance did not come up correctly.
    Startup {
        /// Which instance (`postfix mail server`, `postfix sink`, `dovecot`).
        instance: String,
        /// What was wrong.
        problem: String,
        /// Relevant log tails and a hint.
        details: String,
    },
    /// Waiting for something timed out.
    Timeout {
        /// What was awaited.
        what: String,
        /// Queue listing and log tails at the time of the timeout.
        details: String,
    },
    /// A scenario step did not behave as the scenario expects.
    Scenario {
        /// The step (e.g. `relay denied`).
        step: String,
        /// What differed from the expectation.
        problem: String,
        /// The client transcript.
        transcript: String,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    /// True if the failure looks like a port that someone else grabbed between
    /// our probe and the server's bind (the lab retries in that case).
    pub fn is_port_conflict(&self) -> bool {
        let text = match self {
            LabError::Command { stderr, stdout, .. } => format!("{stderr}{stdout}"),
            LabError::Startup { problem, details, .. } => format!("{problem}{details}"),
            _ => return false,
        };
        text.contains("Address already in use")
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::MissingBinary { name, hint } => {
                write!(
                    f,
                    "mail lab: `{name}` is not installed (looked in PATH and /usr/sbin); fix: {hint}"
                )
            }
            LabError::NotRoot { euid } => write!(
                f,
                "mail lab: must run as root (effective uid is {euid}): private Postfix and Dovecot \
                 instances need root to start; run the tests as root, e.g. in the CI container"
            ),
            LabError::Io { context, source } => write!(f, "mail lab: {context}: {source}"),
            LabError::Command {
                command,
                status,
                stdout,
                stderr,
                hint,
            } => {
                let status = status.map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string());
                write!(f, "mail lab: command failed (exit status {status}): {command}")?;
                if !stderr.trim().is_empty() {
                    write!(f, "\n--- stderr ---\n{}", stderr.trim_end())?;
                }
                if !stdout.trim().is_empty() {
                    write!(f, "\n--- stdout ---\n{}", stdout.trim_end())?;
                }
                write!(f, "\nhint: {hint}")
            }
            LabError::Startup {
                instance,
                problem,
                details,
            } => {
                write!(
                    f,
                    "mail lab: {instance} failed to start: {problem}\n{}",
                    details.trim_end()
                )
            }
            LabError::Timeout { what, details } => {
                write!(
                    f,
                    "mail lab: timed out waiting for {what}\n{}",
                    details.trim_end()
                )
            }
            LabError::Scenario {
                step,
                problem,
                transcript,
            } => write!(
                f,
                "mail lab: scenario step `{step}` did not behave as expected: {problem}\n--- client transcript ---\n{}",
                transcript.trim_end()
            ),
        }
    }
}

impl std::error::Error for LabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LabError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
