//! `mailwarden rules`: the detection rules — the built-in ones and the
//! user's YAML rules — listed, shown, checked and tried on logs.
//!
//! Rule files are read here (the core does no I/O) and compiled by
//! [`RuleSet::parse_files`]; every mistake comes back with its file, line,
//! column and the fix. `detect --rules` uses the same loader.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mailwarden_core::detect::user::MAX_FILE_BYTES;
use mailwarden_core::detect::{
    AlertSeverity, DetectConfig, Engine, RULES, RuleErrors, RuleInfo, RuleSet, RuleSource, UserRule,
};
use mailwarden_core::escape::escape_for_terminal;
use serde::Serialize;

use super::detect::{Replay, render_table, replay_files};
use crate::cli::InputArgs;
use crate::output::{json_line, stdout};

/// `mailwarden rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules: every built-in rule and the user rules of --rules,
    /// with severity, ATT&CK techniques and where each comes from.
    #[command(after_help = "Examples:\n  \
        mailwarden rules list\n  \
        mailwarden rules list --rules /etc/mailwarden/rules.d --json")]
    List(ListArgs),
    /// Show everything about one rule. A built-in rule: what it looks at,
    /// why, the logs it needs, and its parameters with defaults and ranges
    /// (tuned with `detect --set RULE.PARAM=VALUE`). A user rule: its
    /// settings, the file and line it comes from, and its YAML text.
    #[command(after_help = "Examples:\n  \
        mailwarden rules show auth-bruteforce-ip\n  \
        mailwarden rules show sogo-login-watched-network --rules examples/rules/example.yaml")]
    Show(ShowArgs),
    /// Check rule files without running them. Every mistake is printed as
    /// FILE:LINE:COL: what is wrong; fix: what to do (YAML syntax, unknown
    /// keys, fields and modifiers, bad regular expressions, networks and
    /// durations, duplicate ids, conditions naming no selection …). Exits 0
    /// when every rule is valid, 1 when there are mistakes, 2 when a file
    /// cannot be read.
    #[command(after_help = "Examples:\n  \
        mailwarden rules check examples/rules/example.yaml\n  \
        mailwarden rules check /etc/mailwarden/rules.d")]
    Check(CheckArgs),
    /// Try the rules of one file (or directory) on log files: only those
    /// rules run (no built-in rule), with the same replay as `detect`, and
    /// their alerts are printed. With --expect N, exits 1 unless exactly N
    /// alerts were raised — a regression test for a rule and a log excerpt.
    /// Exits 2 when a file cannot be read or a rule is invalid.
    #[command(after_help = "Examples:\n  \
        mailwarden rules test my-rules.yaml --events /var/log/mail.log\n  \
        mailwarden rules test my-rules.yaml --events incident.log --expect 3 --timezone UTC --year 2024")]
    Test(TestArgs),
}

/// Flags of `rules list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// User rules to list after the built-in ones (repeatable): a YAML file,
    /// or a directory whose *.yaml and *.yml files are read in name order.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Print one JSON array of rules (id, title, severity, attack, origin,
    /// and for user rules file, line and settings).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `rules show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The rule's id, built-in or from --rules.
    #[arg(value_name = "ID")]
    pub id: String,

    /// User rules to look the id up in (repeatable): a file or a directory
    /// of *.yaml/*.yml files.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Print the rule as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `rules check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files, or directories whose *.yaml and *.yml files are checked.
    /// Ids must be unique across all of them (as when `detect --rules` loads
    /// them together).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Print each mistake as one JSON object (file, line, column, message,
    /// fix) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `rules test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The rule file (or directory of *.yaml/*.yml files) whose rules run.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Log files to run the rules over (plain, .gz, .bz2, .xz; - for
    /// stdin), read in the order given: oldest first.
    #[arg(long = "events", value_name = "LOGFILE", num_args = 1.., required = true)]
    pub events: Vec<PathBuf>,

    /// The number of alerts the rules must raise; any other number exits 1.
    #[arg(long, value_name = "N")]
    pub expect: Option<usize>,

    /// Print one JSON object per alert (JSON lines).
    #[arg(long)]
    pub json: bool,

    /// How the lines are read.
    #[command(flatten)]
    pub read: crate::cli::ReadArgs,
}

/// Runs `mailwarden rules …`.
pub fn rules(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::List(a) => list(&a),
        RulesCommand::Show(a) => show(&a),
        RulesCommand::Check(a) => check(&a),
        RulesCommand::Test(a) => test(&a),
    }
}

// --- Loading. ---

/// The rule files a path stands for: the file, or a directory's *.yaml and
/// *.yml files in name order.
fn expand(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read the rules at {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list the directory {}", path.display()))?
    {
        let p = entry?.path();
        let yaml = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "the directory {} holds no *.yaml or *.yml file; put rule files there or name a file",
            path.display()
        );
    }
    Ok(files)
}

/// Reads the rule files of `paths`: (name as shown in errors, text).
fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for p in paths {
        for f in expand(p)? {
            let len = std::fs::metadata(&f)
                .with_context(|| format!("cannot read the rule file {}", f.display()))?
                .len();
            if len > MAX_FILE_BYTES as u64 {
                bail!(
                    "the rule file {} is {len} bytes long; keep rule files under 1 MiB (split them into several \
                     files in one directory)",
                    f.display()
                );
            }
            let bytes =
                std::fs::read(&f).with_context(|| format!("cannot read the rule file {}", f.display()))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "the rule file {} is not UTF-8 text; save it as UTF-8",
                    f.display()
                )
            })?;
            out.push((f.display().to_string(), text));
        }
    }
    Ok(out)
}

fn compile(sources: &[(String, String)]) -> Result<RuleSet, RuleErrors> {
    RuleSet::parse_files(sources.iter().map(|(n, t)| (n.as_str(), t.as_str())))
}

/// Loads and compiles the user rules of `paths` (none: an empty set). Any
/// mistake is an error listing all of them.
pub(crate) fn load(paths: &[PathBuf]) -> anyhow::Result<Arc<RuleSet>> {
    if paths.is_empty() {
        return Ok(Arc::new(RuleSet::new()));
    }
    let sources = read_sources(paths)?;
    match compile(&sources) {
        Ok(set) => Ok(Arc::new(set)),
        Err(e) => {
            let lines: Vec<String> =
                e.0.iter()
                    .map(|x| escape_for_terminal(&x.to_string()).into_owned())
                    .collect();
            bail!(
                "the rule files have {} mistake{} (nothing ran):\n{}",
                e.0.len(),
                if e.0.len() == 1 { "" } else { "s" },
                lines.join("\n")
            )
        }
    }
}

// --- Descriptions. ---

/// A user rule as JSON.
#[derive(Serialize)]
pub(crate) struct UserRuleDoc<'a> {
    id: &'a str,
    title: &'a str,
    severity: AlertSeverity,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    attack: &'a [String],
    origin: &'static str,
    file: &'a str,
    line: usize,
    source: RuleSource,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    references: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    falsepositives: &'a [String],
    group_by: &'a [String],
    timeframe_secs: i64,
    threshold: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    distinct: Option<&'a str>,
    quiet_secs: i64,
    facts: &'a [String],
    text: &'a str,
}

impl<'a> UserRuleDoc<'a> {
    pub(crate) fn new(r: &'a UserRule) -> UserRuleDoc<'a> {
        UserRuleDoc {
            id: &r.id,
            title: &r.title,
            severity: r.severity,
            attack: &r.attack,
            origin: "user",
            file: &r.file,
            line: r.line,
            source: r.source,
            description: &r.description,
            author: r.author.as_deref(),
            references: &r.references,
            falsepositives: &r.falsepositives,
            group_by: &r.group_by,
            timeframe_secs: r.timeframe_secs,
            threshold: r.threshold,
            distinct: r.distinct.as_deref(),
            quiet_secs: r.quiet_secs,
            facts: &r.facts,
            text: &r.text,
        }
    }
}

/// A built-in rule as JSON.
#[derive(Serialize)]
struct BuiltinDoc<'a> {
    #[serde(flatten)]
    info: &'a RuleInfo,
    origin: &'static str,
}

/// "every match", "5 matches within 10 min", "8 distinct user within 30 min",
/// with the key.
pub(crate) fn counting(r: &UserRule) -> String {
    let tf = span(r.timeframe_secs);
    let mut s = match (&r.distinct, r.threshold) {
        (Some(d), n) => format!("{n} distinct {d} within {tf}"),
        (None, 1) => "every match".to_owned(),
        (None, n) => format!("{n} matches within {tf}"),
    };
    if !r.group_by.is_empty() {
        let _ = write!(s, " per {}", r.group_by.join("+"));
    }
    escape_for_terminal(&s).into_owned()
}

/// A duration for people: `90 s`, `10 min`, `2 h`, `1 d`.
fn span(secs: i64) -> String {
    if secs >= 86_400 && secs % 86_400 == 0 {
        format!("{} d", secs / 86_400)
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `text` wrapped at `width` columns, each line indented by `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
                let _ = writeln!(out, "{indent}{line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
    out
}

// --- Commands. ---

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let user = load(&args.rules)?;
    let mut out = stdout();
    if args.json {
        let mut docs: Vec<serde_json::Value> = Vec::new();
        for r in &RULES {
            docs.push(serde_json::to_value(BuiltinDoc {
                info: r,
                origin: "built-in",
            })?);
        }
        for r in user.rules() {
            docs.push(serde_json::to_value(UserRuleDoc::new(r))?);
        }
        serde_json::to_writer_pretty(&mut out, &docs).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<30} {:<13} {:<18} {:<24} TITLE",
        "RULE", "SEVERITY", "ATT&CK", "ORIGIN"
    )?;
    let attack = |a: &[String]| {
        if a.is_empty() { "-".to_owned() } else { a.join(",") }
    };
    for r in &RULES {
        let a: Vec<String> = r.attack.iter().map(|s| (*s).to_owned()).collect();
        writeln!(
            out,
            "{:<30} {:<13} {:<18} {:<24} {}",
            r.id,
            r.severity.as_str(),
            attack(&a),
            "built-in",
            r.title
        )?;
    }
    for r in user.rules() {
        writeln!(
            out,
            "{:<30} {:<13} {:<18} {:<24} {}",
            escape_for_terminal(&r.id),
            r.severity.as_str(),
            escape_for_terminal(&attack(&r.attack)),
            escape_for_terminal(&format!("{}:{}", r.file, r.line)),
            escape_for_terminal(&r.title)
        )?;
    }
    writeln!(
        out,
        "\n{} built-in rule{}, {} user rule{}. `mailwarden rules show ID` tells more about one.",
        RULES.len(),
        if RULES.len() == 1 { "" } else { "s" },
        user.len(),
        if user.len() == 1 { "" } else { "s" }
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let user = load(&args.rules)?;
    let mut out = stdout();
    if let Some(r) = mailwarden_core::detect::rule(&args.id) {
        if args.json {
            json_line(
                &mut out,
                &BuiltinDoc {
                    info: r,
                    origin: "built-in",
                },
            )?;
        } else {
            out.write_all(show_builtin(r).as_bytes())?;
        }
    } else if let Some(r) = user.get(&args.id) {
        if args.json {
            json_line(&mut out, &UserRuleDoc::new(r))?;
        } else {
            out.write_all(show_user(r).as_bytes())?;
        }
    } else {
        let hint = if args.rules.is_empty() {
            "; for a user rule, name its file with --rules PATH"
        } else {
            ""
        };
        bail!(
            "no rule has the id {:?}; `mailwarden rules list` shows the ids{hint}",
            escape_for_terminal(&args.id)
        );
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn show_builtin(r: &RuleInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.id, r.title);
    let _ = writeln!(s, "  severity  {}", r.severity);
    let _ = writeln!(
        s,
        "  ATT&CK    {}",
        if r.attack.is_empty() {
            "-".to_owned()
        } else {
            r.attack.join(", ")
        }
    );
    let _ = writeln!(s, "  origin    built-in");
    let _ = writeln!(s, "  needs     {}", r.needs);
    let _ = writeln!(s, "  counts    {}", r.counts);
    let _ = writeln!(s, "\nWhat it does:");
    s.push_str(&wrap(r.description, "  ", 80));
    let _ = writeln!(s, "\nWhy:");
    s.push_str(&wrap(r.rationale, "  ", 80));
    let _ = writeln!(
        s,
        "\nParameters (change with `detect --set {}.PARAM=VALUE`):",
        r.id
    );
    let _ = writeln!(s, "  {:<16} {:>12}  {:<24} MEANING", "PARAM", "DEFAULT", "RANGE");
    for p in r.params {
        let unit = p.unit.suffix();
        let _ = writeln!(
            s,
            "  {:<16} {:>12}  {:<24} {}",
            p.name,
            format!("{}{unit}", p.default),
            format!("{} … {}{unit}", p.min, p.max),
            p.doc
        );
    }
    s
}

fn show_user(r: &UserRule) -> String {
    let e = |t: &str| escape_for_terminal(t).into_owned();
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", e(&r.id), e(&r.title));
    let _ = writeln!(s, "  severity  {}", r.severity);
    let _ = writeln!(
        s,
        "  ATT&CK    {}",
        if r.attack.is_empty() {
            "-".to_owned()
        } else {
            e(&r.attack.join(", "))
        }
    );
    let _ = writeln!(s, "  origin    {}:{}", e(&r.file), r.line);
    let _ = writeln!(s, "  source    {}", r.source.as_str());
    let _ = writeln!(s, "  alerts    {}", counting(r));
    let _ = writeln!(
        s,
        "  key       {}",
        if r.group_by.is_empty() {
            "one for the rule".to_owned()
        } else {
            e(&r.group_by.join(", "))
        }
    );
    let _ = writeln!(
        s,
        "  quiet     {} without a match closes an alert",
        span(r.quiet_secs)
    );
    if let Some(a) = &r.author {
        let _ = writeln!(s, "  author    {}", e(a));
    }
    if !r.description.is_empty() {
        let _ = writeln!(s, "\nWhat it does:");
        s.push_str(&wrap(&e(&r.description), "  ", 80));
    }
    if !r.falsepositives.is_empty() {
        let _ = writeln!(s, "\nKnown false positives:");
        for f in &r.falsepositives {
            let _ = writeln!(s, "  - {}", e(f));
        }
    }
    if !r.references.is_empty() {
        let _ = writeln!(s, "\nReferences:");
        for f in &r.references {
            let _ = writeln!(s, "  - {}", e(f));
        }
    }
    let _ = writeln!(s, "\nAs written in {}:", e(&r.file));
    for l in r.text.lines() {
        let _ = writeln!(s, "  {}", e(l));
    }
    s
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let sources = read_sources(&args.paths)?;
    let mut out = stdout();
    match compile(&sources) {
        Ok(set) => {
            if !args.json {
                for (name, _) in &sources {
                    let n = set.rules().iter().filter(|r| &r.file == name).count();
                    writeln!(
                        out,
                        "{}: {n} rule{} OK",
                        escape_for_terminal(name),
                        if n == 1 { "" } else { "s" }
                    )?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                if args.json {
                    json_line(&mut out, e)?;
                } else {
                    writeln!(out, "{}", escape_for_terminal(&e.to_string()))?;
                }
            }
            out.flush()?;
            let files: std::collections::BTreeSet<&str> = errors.0.iter().map(|e| e.file.as_str()).collect();
            eprintln!(
                "mailwarden: {} mistake{} in {} file{}",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let set = load(std::slice::from_ref(&args.file))?;
    if set.is_empty() {
        bail!(
            "{} holds no rules; add rules under `rules:` (see docs/rules.md)",
            args.file.display()
        );
    }
    let ids: Vec<String> = set.rules().iter().map(|r| r.id.clone()).collect();
    let mut engine = Engine::new(DetectConfig {
        rules: Some(ids),
        user_rules: set,
        ..DetectConfig::default()
    })?;
    let input = InputArgs {
        files: args.events.clone(),
        read: args.read.clone(),
        horizon: 86_400,
        max_open: 200_000,
        no_progress: true,
        sample: false,
        store: false,
        data_dir: None,
        since: None,
        until: None,
    };
    let Replay {
        alerts,
        lines,
        failed,
    } = replay_files(&mut engine, &input)?;
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
        "mailwarden: {} alert{} from the rules of {} over {lines} lines",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        args.file.display()
    );
    if failed {
        return Ok(ExitCode::from(2));
    }
    if let Some(n) = args.expect
        && n != alerts.len()
    {
        eprintln!(
            "mailwarden: expected {n} alert{}, got {}",
            if n == 1 { "" } else { "s" },
            alerts.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
