//! Doctor (C6): is this mail server healthy and untampered? The pure half of
//! `mailwarden doctor` — decoders of what the checks read (MariaDB data-dir
//! headers, login records, compose files) and the findings they produce.
//! The reading (files, the Docker API, procfs) is in `mailwarden-io`.
//!
//! A [`Finding`] has a stable id (`mariadb.datadir.newer-than-server`,
//! `container.restarting`, …) that scripts can rely on, a severity (the
//! posture audit's scale: pass, info, warning, fail), what was seen, the fix
//! and the evidence it rests on (paths, log lines, values read).

use serde::Serialize;

pub use crate::posture::Severity;

pub mod compose;
pub mod container;
pub mod hardening;
pub mod host_files;
pub mod logins;
pub mod mariadb;

/// What part of the server a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    /// The compose project's containers and images.
    Containers,
    /// MariaDB's data directory against the server that runs it.
    Mariadb,
    /// Host triage: logins, sessions, users, shell history, cron, ports.
    Host,
    /// Hardening: firewall, brute-force protection, SSH, logging.
    Hardening,
    /// The doctor itself: a check that could not run.
    Doctor,
}

impl Area {
    /// Short name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Containers => "containers",
            Area::Mariadb => "mariadb",
            Area::Host => "host",
            Area::Hardening => "hardening",
            Area::Doctor => "doctor",
        }
    }
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, `area.subject.condition`.
    pub id: &'static str,
    /// Area.
    pub area: Area,
    /// Severity.
    pub severity: Severity,
    /// What the finding is about: a container, a path, a user, a port.
    pub subject: String,
    /// What was seen, one line.
    pub message: String,
    /// How to fix it; `None` for passes and pure information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What it rests on: values read, with where they were read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding without fix or evidence.
    pub fn new(
        id: &'static str,
        area: Area,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            id,
            area,
            severity,
            subject: subject.into(),
            message: message.into(),
            fix: None,
            evidence: Vec::new(),
        }
    }

    /// Adds the fix.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// Adds a piece of evidence.
    #[must_use]
    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence.push(e.into());
        self
    }
}

/// Sorts findings for output: by area, worst first, then id and subject.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        a.area
            .cmp(&b.area)
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.id.cmp(b.id))
            .then_with(|| a.subject.cmp(&b.subject))
    });
}
