//! `mailwarden detect`: runs the detection rules over past logs (files or the
//! store) and prints the alerts they would have raised — how an admin checks
//! what happened last week and tunes thresholds (`--set RULE.PARAM=VALUE`).
//!
//! Lines are framed, parsed and stitched exactly as for `logs`; every event
//! and every finished message record goes to the core's
//! [`Engine`]. Exit codes: 0 no alert,
//! 1 alerts, 2 errors (an unreadable input, a bad option).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use mailwarden_core::detect::{
    Alert, DEFAULT_HONEYPOT_USERS, DetectConfig, Engine, Params, RULES, RuleSet, sort_alerts,
};
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::event::Position;
use mailwarden_core::stitch::Stitcher;
use mailwarden_core::time::{Timestamp, civil_from_days, days_from_civil};
use serde::Serialize;

use super::inputs::{parse_time_arg, pipeline_config, resolve, zone};
use super::logs::{read_lines, stitch_config};
use crate::cli::InputArgs;
use crate::output::{json_line, stdout};

/// Flags of `mailwarden detect`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mailwarden detect --replay /var/log/mail.log.1 /var/log/mail.log\n  \
    mailwarden detect --store --since 7d --json\n  \
    mailwarden detect --replay mail.log --rule auth-bruteforce-ip --set auth-bruteforce-ip.failures=20\n  \
    mailwarden detect --replay mail.log --rules /etc/mailwarden/rules.d\n  \
    mailwarden detect --list-rules")]
pub struct DetectArgs {
    /// Log files to replay (plain, .gz, .bz2, .xz; - for stdin), read in the
    /// order given: oldest first. A single merged log (or --store) lets the
    /// silence rule compare sources; files read one after the other are not
    /// judged against each other.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 1..,
        conflicts_with = "store",
        required_unless_present_any = ["store", "list_rules"]
    )]
    pub replay: Vec<PathBuf>,

    /// Replay the lines kept by `serve`/`ingest` in the store, in event-time order.
    #[arg(long)]
    pub store: bool,

    /// The data directory of the store (with --store).
    #[arg(long, value_name = "DIR", env = "MAILWARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Only lines not before: RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]` (in
    /// --timezone), or a duration back from now (`2h`, `7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only lines not after; same forms as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Print one JSON object per alert (JSON lines); with --list-rules, the
    /// rules with descriptions, rationale and parameters (user rules with
    /// their file and settings) as one JSON array.
    #[arg(long)]
    pub json: bool,

    /// Run only this rule (repeatable): a built-in id or the id of a user
    /// rule from --rules. Default: every built-in rule and every user rule.
    #[arg(long = "rule", value_name = "ID")]
    pub rules: Vec<String>,

    /// User rules to run beside the built-ins (repeatable): a YAML rule
    /// file, or a directory whose *.yaml and *.yml files are read in name
    /// order. Every mistake in them is reported as FILE:LINE:COL with the
    /// fix, and nothing runs until they are fixed. The format is in
    /// docs/rules.md; `mailwarden rules check` validates files alone.
    #[arg(long = "rules", value_name = "PATH")]
    pub rule_files: Vec<PathBuf>,

    /// Print the rules: id, severity, ATT&CK techniques and thresholds (with
    /// --set applied), and the user rules of --rules.
    #[arg(long)]
    pub list_rules: bool,

    /// Override a rule parameter (repeatable), e.g.
    /// `--set auth-bruteforce-ip.failures=20`; --list-rules shows them.
    #[arg(long = "set", value_name = "RULE.PARAM=VALUE")]
    pub settings: Vec<String>,

    /// One of our mail domains (repeatable). More are learned from SASL user
    /// names and local deliveries; name them all to judge relaying, DMARC
    /// waves and senders from the first line on.
    #[arg(long = "our-domain", value_name = "DOMAIN")]
    pub our_domains: Vec<String>,

    /// The address directory for the sender-not-mailbox rule (its domains
    /// count as ours). Default: Mailcow's database when Mailcow is found;
    /// without one the rule judges no sender.
    #[command(flatten)]
    pub dir: crate::cli::DirectoryArgs,

    /// A honeypot login name (repeatable; replaces the built-in list):
    /// `admin` matches the bare login, `admin@example.org` the address,
    /// `admin@` the local part in any domain.
    #[arg(long = "honeypot-user", value_name = "NAME")]
    pub honeypot_users: Vec<String>,

    /// A client allowed to send without authentication (repeatable; IP or
    /// CIDR), e.g. a scanner appliance in mynetworks. 127.0.0.1 and ::1
    /// always are.
    #[arg(long = "trusted-relay", value_name = "NET")]
    pub trusted_relays: Vec<String>,

    /// Print the engine's counters (keys per rule, evictions) on stderr at the end.
    #[arg(long)]
    pub stats: bool,

    /// How the lines are read.
    #[command(flatten)]
    pub read: crate::cli::ReadArgs,

    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `mailwarden detect`.
pub fn detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let settings = parse_settings(&args.settings)?;
    let user_rules = super::rules::load(&args.rule_files)?;
    if args.list_rules {
        return list_rules(&args, &settings, &user_rules);
    }
    let mut our_domains = args.our_domains.clone();
    let directory = match super::investigate::directory_source(&args.dir)?.0 {
        Some(src) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let snap = rt
                .block_on(mailwarden_io::directory::snapshot(&src))
                .context("reading the address directory")?;
            for s in snap.skipped() {
                eprintln!("mailwarden: directory: skipped {s}");
            }
            eprintln!(
                "mailwarden: directory: {} entries from {}",
                snap.len(),
                escape_for_terminal(snap.source())
            );
            our_domains.extend(snap.domains());
            Some(Arc::new(snap) as Arc<dyn mailwarden_core::detect::SenderDirectory>)
        }
        None => None,
    };
    let cfg = DetectConfig {
        rules: (!args.rules.is_empty()).then(|| args.rules.clone()),
        user_rules,
        settings,
        our_domains,
        honeypot_users: if args.honeypot_users.is_empty() {
            DEFAULT_HONEYPOT_USERS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            args.honeypot_users.clone()
        },
        trusted_relays: args.trusted_relays.clone(),
        directory,
        ..DetectConfig::default()
    };
    let mut engine = Engine::new(cfg)?;
    let input = input_args(&args);
    let started = Instant::now();
    let Replay {
        alerts,
        lines,
        failed,
    } = if args.store {
        let mut stitcher = Stitcher::new(stitch_config(&input, false));
        let mut alerts: Vec<Alert> = Vec::new();
        let mut lines = 0u64;
        let failed = replay_store(&args, &input, &mut |pos, raw, ev| {
            lines += 1;
            feed(&mut engine, &mut stitcher, &mut alerts, pos, raw, ev);
        })?;
        Replay {
            alerts: finish(&mut engine, stitcher, alerts, &Names::Store),
            lines,
            failed,
        }
    } else {
        replay_files(&mut engine, &input)?
    };
    let elapsed = started.elapsed().as_secs_f64();

    let mut out = stdout();
    if args.json {
        for a in &alerts {
            json_line(&mut out, a)?;
        }
    } else {
        out.write_all(render_table(&alerts).as_bytes())?;
    }
    out.flush()?;
    eprintln!(
        "mailwarden: {} alert{} from {lines} lines in {elapsed:.2} s ({:.0} lines/s)",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        if elapsed > 0.0 {
            lines as f64 / elapsed
        } else {
            0.0
        }
    );
    if args.stats {
        eprintln!("{}", serde_json::to_string_pretty(&engine.stats())?);
    }
    Ok(if failed {
        ExitCode::from(2)
    } else if alerts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a replay gave.
pub(crate) struct Replay {
    /// Every alert, sorted, evidence named `file:line`.
    pub(crate) alerts: Vec<Alert>,
    /// Lines read.
    pub(crate) lines: u64,
    /// Whether an input could not be read (reported on stderr).
    pub(crate) failed: bool,
}

/// Replays log files through `engine`: framed, parsed and stitched as for
/// `logs`, every event and finished message fed to the rules. An input that
/// fails is reported on stderr and the next one read.
pub(crate) fn replay_files(engine: &mut Engine, input: &InputArgs) -> anyhow::Result<Replay> {
    let mut stitcher = Stitcher::new(stitch_config(input, false));
    let mut alerts: Vec<Alert> = Vec::new();
    let mut lines = 0u64;
    let resolved = resolve(input);
    let cfg = pipeline_config(input, resolved.using_sample)?;
    let names: Vec<String> = resolved.sources.iter().map(|s| s.display()).collect();
    let reports = read_lines(input, &cfg, resolved, |_, pos, raw, ev| {
        lines += 1;
        feed(engine, &mut stitcher, &mut alerts, pos, raw, ev);
    })?;
    let mut failed = false;
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!("mailwarden: {e}");
            failed = true;
        }
    }
    Ok(Replay {
        alerts: finish(engine, stitcher, alerts, &Names::Files(names)),
        lines,
        failed,
    })
}

/// Ends the input: the stitcher's last messages, every open alert; sorts the
/// alerts and names their evidence.
fn finish(engine: &mut Engine, mut stitcher: Stitcher, mut alerts: Vec<Alert>, names: &Names) -> Vec<Alert> {
    stitcher.finish();
    while let Some(rec) = stitcher.pop() {
        engine.feed_record(&rec);
    }
    engine.finish();
    alerts.extend(engine.take_alerts());
    sort_alerts(&mut alerts);
    for a in &mut alerts {
        for e in &mut a.evidence {
            e.at = Some(names.at(e.position));
        }
    }
    alerts
}

/// One line into the stitcher and the engine, and the stitcher's finished
/// messages into the engine.
fn feed(
    engine: &mut Engine,
    stitcher: &mut Stitcher,
    alerts: &mut Vec<Alert>,
    pos: Position,
    raw: &str,
    ev: &mailwarden_core::event::Event<'_>,
) {
    engine.feed_event(pos, raw, ev);
    stitcher.feed(pos, raw, ev);
    while let Some(rec) = stitcher.pop() {
        engine.feed_record(&rec);
    }
    alerts.extend(engine.take_alerts());
}

/// `RULE.PARAM=VALUE` settings, checked against the catalogue.
fn parse_settings(settings: &[String]) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut map = BTreeMap::new();
    let mut check = Params::default();
    for s in settings {
        check.set_from_str(s).with_context(|| format!("--set {s}"))?;
        if let Some((name, value)) = s.split_once('=')
            && let Ok(v) = value.trim().parse::<i64>()
        {
            map.insert(name.trim().to_owned(), v);
        }
    }
    Ok(map)
}

fn input_args(args: &DetectArgs) -> InputArgs {
    InputArgs {
        files: args.replay.clone(),
        read: args.read.clone(),
        horizon: 86_400,
        max_open: 200_000,
        no_progress: args.no_progress,
        sample: false,
        store: false,
        data_dir: None,
        since: args.since.clone(),
        until: args.until.clone(),
    }
}

/// How evidence positions are shown.
enum Names {
    /// Input index → file name; `name:line`.
    Files(Vec<String>),
    /// Store lines: the source is the day (days since 1970), the line the row
    /// id; `store:DAY#ROW`.
    Store,
}

impl Names {
    fn at(&self, pos: Position) -> String {
        match self {
            Names::Files(names) => {
                let name = names.get(pos.source as usize).map_or("?", String::as_str);
                format!("{name}:{}", pos.line)
            }
            Names::Store => {
                let (y, m, d) = civil_from_days(i64::from(pos.source));
                format!("store:{y:04}-{m:02}-{d:02}#{}", pos.line)
            }
        }
    }
}

/// Replays the store in event-time order; returns whether it failed.
fn replay_store(
    args: &DetectArgs,
    input: &InputArgs,
    sink: &mut dyn FnMut(Position, &str, &mailwarden_core::event::Event<'_>),
) -> anyhow::Result<bool> {
    let zone = zone(input.read.timezone.as_deref())?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time_arg(s, &zone))
        .transpose()
        .context("--since")?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time_arg(s, &zone))
        .transpose()
        .context("--until")?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::config::default_data_dir);
    let store = mailwarden_store::Store::open_read_only(&dir)?;
    let spinner = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!("replaying the store in {}", dir.display()));
        s
    });
    let in_window = |t: Option<Timestamp>| match t {
        Some(t) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u),
        None => true,
    };
    let mut n = 0u64;
    store.replay_in_time_order(since, until, |line| {
        n += 1;
        if n & 0xFFFF == 0
            && let Some(s) = &spinner
        {
            s.set_message(format!("replaying the store: {n} lines"));
            s.tick();
        }
        let ev = line.event();
        if !in_window(ev.ts) {
            return;
        }
        let day = days_from_civil(line.day.year, line.day.month, line.day.day);
        let pos = Position {
            source: u32::try_from(day).unwrap_or(0),
            line: u64::try_from(line.rowid).unwrap_or(0),
        };
        sink(pos, line.raw, &ev);
    })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if n == 0 {
        eprintln!(
            "mailwarden: the store in {} holds no lines in that window",
            dir.display()
        );
    }
    Ok(false)
}

/// Alerts as text: one header line per alert, then the message, the facts and
/// the evidence, everything from the logs escaped for the terminal.
pub(crate) fn render_table(alerts: &[Alert]) -> String {
    let e = |s: &str| escape_for_terminal(s).into_owned();
    let mut s = String::new();
    if alerts.is_empty() {
        s.push_str("No alerts.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<9} {:<25} {:<28} {:<30} {:>7}",
        "SEVERITY", "FIRST", "RULE", "KEY", "COUNT"
    );
    for a in alerts {
        let _ = writeln!(
            s,
            "{:<9} {:<25} {:<28} {:<30} {:>7}",
            a.severity.as_str(),
            short_time(a.first),
            a.rule,
            e(&a.key),
            a.count
        );
        let _ = writeln!(s, "          {}", e(&a.message));
        let counts = mailwarden_core::detect::rule(&a.rule).map_or("events", |r| r.counts);
        let _ = writeln!(
            s,
            "          {} {counts}, {} … {}{}",
            a.count,
            short_time(a.first),
            short_time(a.last),
            if a.attack.is_empty() {
                String::new()
            } else {
                format!("   ATT&CK {}", a.attack.join(", "))
            }
        );
        for (name, values) in &a.facts {
            let _ = writeln!(s, "          {name}: {}", e(&values.join(", ")));
        }
        for ev in &a.evidence {
            let at = ev.at.as_deref().unwrap_or("");
            match &ev.text {
                Some(t) => {
                    let _ = writeln!(s, "          > {}  {}", e(at), e(t));
                }
                None => {
                    let _ = writeln!(s, "          > {}", e(at));
                }
            }
        }
        if a.evidence_omitted > 0 {
            let _ = writeln!(s, "          > … {} more", a.evidence_omitted);
        }
        s.push('\n');
    }
    s
}

/// `2023-03-14 02:14:05+01:00`.
fn short_time(t: Timestamp) -> String {
    let full = t.to_string();
    // `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM` or `…Z`.
    let (date_time, zone) = match full.find('.') {
        Some(dot) => (&full[..dot], &full[dot + 7..]),
        None => (full.as_str(), ""),
    };
    format!("{}{zone}", date_time.replacen('T', " ", 1))
}

#[derive(Serialize)]
struct RuleDoc<'a> {
    #[serde(flatten)]
    info: &'a mailwarden_core::detect::RuleInfo,
    values: BTreeMap<&'a str, i64>,
}

fn list_rules(
    args: &DetectArgs,
    settings: &BTreeMap<String, i64>,
    user: &RuleSet,
) -> anyhow::Result<ExitCode> {
    let params = Params::with_overrides(settings)?;
    for id in &args.rules {
        if mailwarden_core::detect::rule(id).is_none() && user.get(id).is_none() {
            bail!("unknown rule {id:?}; the ids are listed by `mailwarden detect --list-rules`");
        }
    }
    let selected = |id: &str| args.rules.is_empty() || args.rules.iter().any(|r| r == id);
    let mut out = stdout();
    if args.json {
        let mut docs: Vec<serde_json::Value> = Vec::new();
        for r in RULES.iter().filter(|r| selected(r.id)) {
            docs.push(serde_json::to_value(RuleDoc {
                info: r,
                values: r
                    .params
                    .iter()
                    .map(|p| (p.name, params.value(r.id, p.name).unwrap_or(p.default)))
                    .collect(),
            })?);
        }
        for r in user.rules().iter().filter(|r| selected(&r.id)) {
            docs.push(serde_json::to_value(super::rules::UserRuleDoc::new(r))?);
        }
        serde_json::to_writer_pretty(&mut out, &docs).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        let _ = writeln!(
            out,
            "{:<28} {:<9} {:<22} PARAMETERS",
            "RULE", "SEVERITY", "ATT&CK"
        );
        for r in RULES.iter().filter(|r| selected(r.id)) {
            let values: Vec<String> = r
                .params
                .iter()
                .map(|p| {
                    let v = params.value(r.id, p.name).unwrap_or(p.default);
                    format!("{}={v}{}", p.name, p.unit.suffix().trim_start())
                })
                .collect();
            writeln!(
                out,
                "{:<28} {:<9} {:<22} {}",
                r.id,
                r.severity.as_str(),
                if r.attack.is_empty() {
                    "-".to_owned()
                } else {
                    r.attack.join(",")
                },
                values.join(" ")
            )?;
            writeln!(out, "    {}", r.title)?;
        }
        for r in user.rules().iter().filter(|r| selected(&r.id)) {
            writeln!(
                out,
                "{:<28} {:<9} {:<22} {}",
                escape_for_terminal(&r.id),
                r.severity.as_str(),
                if r.attack.is_empty() {
                    "-".to_owned()
                } else {
                    escape_for_terminal(&r.attack.join(",")).into_owned()
                },
                super::rules::counting(r)
            )?;
            writeln!(
                out,
                "    {}  ({}:{})",
                escape_for_terminal(&r.title),
                escape_for_terminal(&r.file),
                r.line
            )?;
        }
        writeln!(
            out,
            "\nUnits: s seconds, d days, % percent, x factor. Change a value with --set RULE.PARAM=VALUE;\n\
             `--list-rules --json` adds each rule's description, rationale and the logs it needs."
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
