//! `mailwarden alerts`: the stored alerts — list them, show one with its
//! evidence, acknowledge them, and suppress a rule (or some of its keys) for
//! a while.
//!
//! State changes go through [`AlertStore`], which does not need the store's
//! writer lock: `ack` and `suppress` work while `serve` runs. Everything
//! taken from the logs (keys, messages, facts, evidence) is escaped for the
//! terminal. Exit codes: 0 done (also an empty list), 2 errors (an unknown
//! id, a store that cannot be opened, a bad option).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use mailwarden_core::detect::AlertSeverity;
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::time::Timestamp;
use mailwarden_io::pipeline::now;
use mailwarden_store::alerts::{MAX_NAME_BYTES, MAX_NOTE_BYTES};
use mailwarden_store::{AlertQuery, AlertState, AlertStore, StoredAlert, Suppression};

use super::inputs::{parse_time_arg, zone};
use crate::cli::parse_duration_secs;
use crate::output::{json_line, stdout};

/// Flags of `mailwarden alerts`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mailwarden alerts list\n  \
    mailwarden alerts list --state all --since 7d --min-severity high\n  \
    mailwarden alerts show 12\n  \
    mailwarden alerts ack 12 13 --note \"blocked 203.0.113.5 at the firewall\"\n  \
    mailwarden alerts suppress --rule auth-bruteforce-ip --key 'ip=192.0.2.*' --for 7d --note \"our scanner\"\n  \
    mailwarden alerts suppressions --all\n  \
    mailwarden alerts unsuppress 3")]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AlertsCommand,

    /// The data directory holding the store (default: /var/lib/mailwarden as
    /// root, else ~/.local/share/mailwarden).
    #[arg(long, value_name = "DIR", env = "MAILWARDEN_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// `mailwarden alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List stored alerts (default: the open ones), the latest first.
    ///
    /// One line per alert: id, severity, rule, key, first and last event,
    /// count, occurrences (episodes merged into the alert) and state. Exits 0
    /// also when nothing matches.
    List(ListArgs),
    /// Show one alert with its facts and evidence.
    ///
    /// Everything stored: message, facts, the latest episode's evidence
    /// (file:line or store:DAY#ROW, with sample lines), occurrences, when it
    /// was stored and notified, and who acknowledged it. Text from the logs
    /// is escaped for the terminal (--json keeps it exactly).
    Show(ShowArgs),
    /// Acknowledge alerts ("seen, being handled"); repeats then merge silently.
    ///
    /// An acknowledged alert leaves the default `list` and stops notifying:
    /// repeats of the same rule and key merge into it silently (its count,
    /// last event and occurrences grow) during the acknowledgement window —
    /// 24 hours after the ack by default — and as long as they continue it
    /// without a pause of more than the de-dup window (1 hour of event time).
    /// A repeat after that opens a new alert, which notifies again; so does
    /// a repeat with a higher severity, which reopens the alert.
    /// Acknowledging again renews the window. Works while `serve` runs.
    Ack(AckArgs),
    /// Suppress a rule's alerts (all keys, or those matching --key) for a while.
    ///
    /// Matching alerts are still stored — state `suppressed`, visible with
    /// `list --state suppressed` — but never notified. Alerts stored before
    /// keep their state. Works while `serve` runs.
    Suppress(SuppressArgs),
    /// End a suppression now (it stays listed with `suppressions --all`).
    Unsuppress(UnsuppressArgs),
    /// List the active suppressions (with --all, the expired ones too).
    Suppressions(SuppressionsArgs),
}

/// Which states `list` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Not acknowledged yet.
    Open,
    /// Acknowledged.
    #[value(alias = "ack")]
    Acknowledged,
    /// Stored while a suppression matched.
    Suppressed,
    /// Every state.
    All,
}

/// `alerts list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only alerts in this state.
    #[arg(long, value_enum, default_value = "open", value_name = "STATE")]
    pub state: StateFilter,
    /// Only alerts whose last event is not before: RFC 3339,
    /// `YYYY-MM-DD[ HH:MM[:SS]]` (local time), or a duration back from now
    /// (`2h`, `7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only alerts whose last event is not after; same forms as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this rule (`mailwarden detect --list-rules` lists the ids).
    #[arg(long, value_name = "ID")]
    pub rule: Option<String>,
    /// Only keys containing this text, e.g. an address or `alice@`.
    #[arg(long, value_name = "TEXT")]
    pub key: Option<String>,
    /// Only this severity or higher: informational, low, medium, high, critical.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub min_severity: Option<AlertSeverity>,
    /// At most this many alerts (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// One JSON object per alert (JSON lines), with everything `show --json` has.
    #[arg(long)]
    pub json: bool,
}

/// `alerts show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The alert's id (from `alerts list`).
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Print the alert as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `alerts ack` options.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// The alerts' ids (from `alerts list`). Nothing is changed when one of
    /// them is unknown.
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    pub ids: Vec<i64>,
    /// Why, or what was done (kept with the alert; at most 1024 bytes).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Who acknowledges (default: $SUDO_USER, else $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

/// `alerts suppress` options.
#[derive(Debug, Args)]
pub struct SuppressArgs {
    /// The rule whose alerts to suppress.
    #[arg(long, value_name = "ID")]
    pub rule: String,
    /// Only alerts whose key matches: the exact key (`ip=203.0.113.5`,
    /// `user=alice@example.org`) or a pattern where `*` matches any run of
    /// characters (`ip=192.0.2.*`). Default: every key of the rule.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// For how long, from now: 90m, 24h, 7d, 2w.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration_secs)]
    pub duration: i64,
    /// Why (kept with the suppression; at most 1024 bytes).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Who suppresses (default: $SUDO_USER, else $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

/// `alerts unsuppress` options.
#[derive(Debug, Args)]
pub struct UnsuppressArgs {
    /// The suppression's id (from `alerts suppressions`).
    #[arg(value_name = "ID")]
    pub id: i64,
}

/// `alerts suppressions` options.
#[derive(Debug, Args)]
pub struct SuppressionsArgs {
    /// Also the expired and lifted ones.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per suppression (JSON lines).
    #[arg(long)]
    pub json: bool,
}

fn parse_severity(s: &str) -> Result<AlertSeverity, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "informational" | "info" => Ok(AlertSeverity::Informational),
        "low" => Ok(AlertSeverity::Low),
        "medium" => Ok(AlertSeverity::Medium),
        "high" => Ok(AlertSeverity::High),
        "critical" => Ok(AlertSeverity::Critical),
        _ => Err(format!(
            "unknown severity {s:?}; use informational, low, medium, high or critical"
        )),
    }
}

/// Runs `mailwarden alerts`.
pub fn alerts(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::config::default_data_dir);
    let open_ro = || AlertStore::open_read_only(&dir).with_context(|| format!("alerts in {}", dir.display()));
    let open_rw = || AlertStore::open(&dir).with_context(|| format!("alerts in {}", dir.display()));
    match args.command {
        AlertsCommand::List(a) => list(&open_ro()?, &a),
        AlertsCommand::Show(a) => show(&open_ro()?, &a),
        AlertsCommand::Ack(a) => ack(&open_rw()?, &a),
        AlertsCommand::Suppress(a) => suppress(&open_rw()?, &a),
        AlertsCommand::Unsuppress(a) => {
            let store = open_rw()?;
            let active = store.unsuppress(a.id, now())?;
            let mut out = stdout();
            if active {
                writeln!(out, "suppression {} lifted; its rule's alerts notify again", a.id)?;
            } else {
                writeln!(out, "suppression {} had already expired", a.id)?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Suppressions(a) => suppressions(&open_ro()?, &a),
    }
}

fn list(store: &AlertStore, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let zone = zone(None)?;
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time_arg(s, &zone))
            .transpose()
            .with_context(|| flag.to_owned())
    };
    let q = AlertQuery {
        states: match args.state {
            StateFilter::Open => vec![AlertState::Open],
            StateFilter::Acknowledged => vec![AlertState::Acknowledged],
            StateFilter::Suppressed => vec![AlertState::Suppressed],
            StateFilter::All => Vec::new(),
        },
        since: time("--since", &args.since)?,
        until: time("--until", &args.until)?,
        rule: args.rule.clone(),
        min_severity: args.min_severity,
        key_contains: args.key.clone(),
        limit: args.limit,
    };
    let alerts = store.list(&q)?;
    let mut out = stdout();
    if args.json {
        for a in &alerts {
            json_line(&mut out, a)?;
        }
    } else if alerts.is_empty() {
        let which = match args.state {
            StateFilter::All => String::new(),
            s => format!("{} ", state_name(s)),
        };
        writeln!(out, "No {which}alerts.")?;
    } else {
        out.write_all(render_table(&alerts).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn state_name(s: StateFilter) -> &'static str {
    match s {
        StateFilter::Open => "open",
        StateFilter::Acknowledged => "acknowledged",
        StateFilter::Suppressed => "suppressed",
        StateFilter::All => "",
    }
}

fn esc(s: &str) -> String {
    escape_for_terminal(s).into_owned()
}

/// The alerts as a table, one line each.
fn render_table(alerts: &[StoredAlert]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:<13} {:<28} {:<32} {:<45} {:>7} {:>4} STATE",
        "ID", "SEVERITY", "RULE", "KEY", "FIRST – LAST", "COUNT", "OCC"
    );
    for a in alerts {
        let _ = writeln!(
            s,
            "{:>5} {:<13} {:<28} {:<32} {:<45} {:>7} {:>4} {}",
            a.id,
            a.alert.severity.as_str(),
            esc(&a.alert.rule),
            esc(&a.alert.key),
            span(a.alert.first, a.alert.last),
            a.alert.count,
            a.occurrences,
            a.state
        );
    }
    s
}

/// `2023-03-14 02:14:05+01:00`.
fn short_time(t: Timestamp) -> String {
    let full = t.to_string();
    // `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM` or `…Z`.
    let (date_time, zone) = match full.find('.') {
        Some(dot) => (&full[..dot], full.get(dot + 7..).unwrap_or("")),
        None => (full.as_str(), ""),
    };
    format!("{}{zone}", date_time.replacen('T', " ", 1))
}

/// First – last, the last without its date when it is the same day.
fn span(first: Timestamp, last: Timestamp) -> String {
    let (f, l) = (short_time(first), short_time(last));
    if f == l {
        return f;
    }
    match (f.split_once(' '), l.split_once(' ')) {
        (Some((fd, _)), Some((ld, lt))) if fd == ld && first.offset_secs == last.offset_secs => {
            format!("{f} – {lt}")
        }
        _ => format!("{f} – {l}"),
    }
}

fn show(store: &AlertStore, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let Some(a) = store.get(args.id)? else {
        bail!(
            "no alert with id {}; `mailwarden alerts list --state all` shows the ids",
            args.id
        );
    };
    let mut out = stdout();
    if args.json {
        json_line(&mut out, &a)?;
    } else {
        out.write_all(render_alert(&a).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One alert with everything stored, text from the logs escaped.
fn render_alert(a: &StoredAlert) -> String {
    let al = &a.alert;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "alert {}  {}  {}  {}",
        a.id,
        a.state,
        al.severity.as_str(),
        esc(&al.rule)
    );
    let _ = writeln!(s, "  title:       {}", esc(&al.title));
    let _ = writeln!(s, "  key:         {}", esc(&al.key));
    let counts = mailwarden_core::detect::rule(&al.rule).map_or("events", |r| r.counts);
    let _ = writeln!(
        s,
        "  events:      {} {counts}, {}",
        al.count,
        span(al.first, al.last)
    );
    let _ = writeln!(
        s,
        "  occurrences: {} (episodes merged into this alert)",
        a.occurrences
    );
    let _ = writeln!(s, "  message:     {}", esc(&al.message));
    if !al.attack.is_empty() {
        let _ = writeln!(s, "  ATT&CK:      {}", esc(&al.attack.join(", ")));
    }
    if !al.facts.is_empty() {
        s.push_str("  facts:\n");
        for (name, values) in &al.facts {
            let _ = writeln!(s, "    {}: {}", esc(name), esc(&values.join(", ")));
        }
    }
    if !al.evidence.is_empty() {
        s.push_str("  evidence (latest episode):\n");
        for ev in &al.evidence {
            let at = ev
                .at
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| format!("input {} line {}", ev.position.source, ev.position.line));
            match &ev.text {
                Some(t) => {
                    let _ = writeln!(s, "    > {at}  {}", esc(t));
                }
                None => {
                    let _ = writeln!(s, "    > {at}");
                }
            }
        }
        if al.evidence_omitted > 0 {
            let _ = writeln!(s, "    > … {} more", al.evidence_omitted);
        }
    }
    let _ = writeln!(
        s,
        "  stored:      {} ({}), updated {}",
        short_time(a.created),
        a.source.as_str(),
        short_time(a.updated)
    );
    if let Some(at) = a.notified_at {
        let _ = writeln!(s, "  notified:    {}", short_time(at));
    }
    if let Some(at) = a.ack_at {
        let _ = writeln!(
            s,
            "  acknowledged: {} by {}{}",
            short_time(at),
            esc(a.ack_by.as_deref().unwrap_or("?")),
            a.ack_note
                .as_deref()
                .map(|n| format!(": {}", esc(n)))
                .unwrap_or_default()
        );
    }
    if let Some(id) = a.suppression {
        let _ = writeln!(
            s,
            "  suppressed:  by suppression {id} (`mailwarden alerts suppressions --all`)"
        );
    }
    s
}

/// The name recorded with an acknowledgement or suppression.
fn who(by: &Option<String>) -> anyhow::Result<String> {
    let name = by
        .clone()
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    if name.len() > MAX_NAME_BYTES {
        bail!("--by is {} bytes long; give at most {MAX_NAME_BYTES}", name.len());
    }
    Ok(name)
}

fn check_note(note: &Option<String>) -> anyhow::Result<()> {
    if let Some(n) = note
        && n.len() > MAX_NOTE_BYTES
    {
        bail!("--note is {} bytes long; give at most {MAX_NOTE_BYTES}", n.len());
    }
    Ok(())
}

fn ack(store: &AlertStore, args: &AckArgs) -> anyhow::Result<ExitCode> {
    check_note(&args.note)?;
    let by = who(&args.by)?;
    let n = store.ack(&args.ids, &by, args.note.as_deref(), now())?;
    let mut ids: Vec<String> = args.ids.iter().map(i64::to_string).collect();
    ids.dedup();
    let mut out = stdout();
    writeln!(
        out,
        "acknowledged {} alert{} ({}) as {}; repeats merge into {} silently during the acknowledgement window",
        n,
        if n == 1 { "" } else { "s" },
        ids.join(", "),
        esc(&by),
        if n == 1 { "it" } else { "them" }
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn suppress(store: &AlertStore, args: &SuppressArgs) -> anyhow::Result<ExitCode> {
    check_note(&args.note)?;
    if args.duration <= 0 {
        bail!("--for must be a positive duration such as 90m, 24h or 7d");
    }
    let by = who(&args.by)?;
    if mailwarden_core::detect::rule(&args.rule).is_none() {
        eprintln!(
            "mailwarden: warning: {:?} is not a built-in rule id (`mailwarden detect --list-rules`); \
             the suppression applies to alerts of a rule with that id",
            esc(&args.rule)
        );
    }
    let start = now();
    let until = Timestamp::from_unix_micros(
        start
            .unix_micros
            .saturating_add(args.duration.saturating_mul(1_000_000)),
    );
    let id = store.suppress(
        &args.rule,
        args.key.as_deref(),
        until,
        args.note.as_deref(),
        &by,
        start,
    )?;
    let mut out = stdout();
    writeln!(
        out,
        "suppression {id}: {} {} until {}; matching alerts are stored as suppressed and not notified",
        esc(&args.rule),
        args.key
            .as_deref()
            .map(|k| format!("key {}", esc(k)))
            .unwrap_or_else(|| "(every key)".to_owned()),
        short_time(until)
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn suppressions(store: &AlertStore, args: &SuppressionsArgs) -> anyhow::Result<ExitCode> {
    let at = now();
    let list = store.suppressions(args.all, at)?;
    let mut out = stdout();
    if args.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            s: &'a Suppression,
            active: bool,
        }
        for s in &list {
            json_line(
                &mut out,
                &Doc {
                    s,
                    active: s.is_active(at),
                },
            )?;
        }
    } else if list.is_empty() {
        writeln!(out, "No {}suppressions.", if args.all { "" } else { "active " })?;
    } else {
        writeln!(
            out,
            "{:>4} {:<28} {:<32} {:<25} {:<8} {:<12} NOTE",
            "ID", "RULE", "KEY", "UNTIL", "STATE", "BY"
        )?;
        for s in &list {
            let line = format!(
                "{:>4} {:<28} {:<32} {:<25} {:<8} {:<12} {}",
                s.id,
                esc(&s.rule),
                s.key.as_deref().map(esc).unwrap_or_else(|| "*".to_owned()),
                short_time(s.until),
                if s.is_active(at) { "active" } else { "expired" },
                esc(&s.created_by),
                s.note.as_deref().map(esc).unwrap_or_default()
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_severities() {
        let t = |s: &str| {
            mailwarden_core::time::parse_rfc3339_prefix(s.as_bytes())
                .unwrap()
                .0
        };
        assert_eq!(
            span(t("2024-03-11T02:14:05+01:00"), t("2024-03-11T03:40:00.5+01:00")),
            "2024-03-11 02:14:05+01:00 – 03:40:00+01:00"
        );
        assert_eq!(
            span(t("2024-03-11T02:14:05Z"), t("2024-03-12T00:00:00Z")),
            "2024-03-11 02:14:05Z – 2024-03-12 00:00:00Z"
        );
        assert_eq!(
            span(t("2024-03-11T02:14:05Z"), t("2024-03-11T02:14:05Z")),
            "2024-03-11 02:14:05Z"
        );
        assert_eq!(parse_severity("HIGH"), Ok(AlertSeverity::High));
        assert_eq!(parse_severity("info"), Ok(AlertSeverity::Informational));
        assert!(parse_severity("severe").is_err());
    }
}
