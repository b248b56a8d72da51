//! `mailwarden webscan`: the PHP backdoor and webshell scanner. Flags become
//! a `WebscanConfig`; the I/O crate walks and reads, the core judges; this
//! file prints a table, JSON lines or SARIF 2.1.0, and maps the outcome to
//! the exit code (0 clean, 1 findings, 2 errors).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::webscan::{Reason, ScanOptions, Scanner, Verdict};
use mailwarden_io::webscan::{
    AllowList, BaselineMode, FileReport, IntegritySource, Manifest, ScanProgress, ScanReport, WebscanConfig,
};
use serde::Serialize;
use serde_json::json;

use crate::output::{json_line, stdout};

/// Most reasons printed per file in the table (JSON and SARIF have them all).
const MAX_TABLE_REASONS: usize = 12;
/// Most line numbers printed per reason in the table.
const MAX_TABLE_LINES: usize = 8;
/// Most characters of a reason's message printed in the table.
const MAX_TABLE_MESSAGE: usize = 200;
/// Most missing files listed in the table.
const MAX_TABLE_MISSING: usize = 50;

/// The lowest verdict reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MinVerdict {
    /// Everything with any reason (modified tracked files, weak signals).
    Info,
    /// Files that need a human look, and worse.
    Suspicious,
    /// Only strong or combined evidence.
    Malicious,
}

impl MinVerdict {
    fn verdict(self) -> Verdict {
        match self {
            MinVerdict::Info => Verdict::Info,
            MinVerdict::Suspicious => Verdict::Suspicious,
            MinVerdict::Malicious => Verdict::Malicious,
        }
    }
}

/// Flags of `mailwarden webscan`.
#[derive(Debug, Args)]
#[command(after_help = "Detection layers:
  code         dangerous sinks fed by request data, decoder chains, known webshell families
  obfuscation  entropy, index of coincidence, very long tokens and lines, assembled names
  placement    PHP inside images or text files, .htaccess handlers, .user.ini prepends
  context      timestamps against siblings and the install time, timestomping, web-owned
               scripts, writable upload directories
  integrity    modified and untracked files against git's HEAD (no git binary needed), or
               changed and new files against a baseline manifest

Every reported file gets a verdict (malicious, suspicious, info) and a score from its
reasons; each reason has a stable id and the line numbers it points at. \"malicious\" needs
strong or combined evidence. Nothing is modified: files are opened read-only. .gitignore is
not honoured (attackers hide in ignored directories); .git internals are skipped (files PHP
would run are scanned there too); symbolic links are not followed.

Exit status: 0 when no reported file is suspicious or worse, 1 when some are (findings),
2 on errors (a bad directory, baseline or allow file; or, when nothing was found, files
that could not be read).

Examples:
  mailwarden webscan /opt/mailcow-dockerized/data/web
  mailwarden webscan /var/www/html --write-baseline /root/www.baseline.json
  mailwarden webscan /var/www/html --baseline /root/www.baseline.json --min-verdict suspicious
  mailwarden webscan /srv/site --allow /etc/mailwarden/webscan.allow --json > findings.jsonl
  mailwarden webscan /opt/mailcow-dockerized --sarif > webscan.sarif

Allow file (--allow), one entry per line:
  # reviewed 2025-03-01: the vendor's installer
  sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  path:vendor/**/*.php")]
pub struct WebscanArgs {
    /// Directories to scan (a web root, a Mailcow checkout, a CMS).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// What files are compared with: `git` (HEAD of the checkout holding
    /// DIR; an error outside a checkout) or a manifest FILE written by
    /// --write-baseline. Default: git when DIR is inside a checkout, else
    /// nothing.
    #[arg(long, value_name = "git|FILE")]
    pub baseline: Option<String>,
    /// After the scan, write a baseline manifest of every file read (path,
    /// size, SHA-256, mode) to FILE, for later runs with --baseline FILE.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// One JSON object per reported file (`"type":"file"`), error and
    /// missing file, then a `"type":"summary"` record.
    #[arg(long, conflicts_with = "sarif")]
    pub json: bool,
    /// SARIF 2.1.0 for code-scanning tools.
    #[arg(long)]
    pub sarif: bool,
    /// The lowest verdict reported.
    #[arg(long, value_enum, value_name = "VERDICT", default_value = "info")]
    pub min_verdict: MinVerdict,
    /// Most bytes of each file scanned (suffixes K, M, G); larger files are
    /// scanned from the start, noted as truncated, and still hashed whole.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    pub max_size: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Files not to report: lines `sha256:HEX` or `path:GLOB` (relative to
    /// DIR; `*` stays in a directory, `**` crosses them). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub allow: Vec<PathBuf>,
    /// When the tree was installed (RFC 3339, e.g. 2024-05-01T00:00:00Z):
    /// scripts changed after it stand out. Default: the time of the HEAD
    /// commit in a git checkout.
    #[arg(long, value_name = "RFC3339")]
    pub install_time: Option<String>,
    /// No progress bar (it is shown on a terminal only, on stderr).
    #[arg(long)]
    pub no_progress: bool,
    /// The system root whose /etc/passwd names the web server's users
    /// (www-data, nginx, apache, http; uids 82 and 101 always count).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// Parses `8388608`, `64K`, `8M`, `1G` (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("{s:?}: use a byte count, optionally with K, M or G")),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: use a byte count, optionally with K, M or G"))?;
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{s:?}: must be between 1 byte and 16 EiB")),
        Some(v) => Ok(v),
    }
}

/// The progress bar, on stderr, only on a terminal.
struct Bar(ProgressBar);

impl ScanProgress for Bar {
    fn walked(&self, n: u64) {
        if n.is_multiple_of(256) {
            self.0.set_message(format!("walking: {n} entries"));
        }
    }
    fn scanning(&self, files: u64) {
        self.0.set_length(files);
        self.0.set_position(0);
        self.0.set_message("scanning");
        self.0.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} files ({per_sec}, {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    fn file_done(&self, _bytes: u64) {
        self.0.inc(1);
    }
}

/// Runs `mailwarden webscan`.
pub fn webscan(args: WebscanArgs) -> anyhow::Result<ExitCode> {
    let mut allow = AllowList::default();
    for path in &args.allow {
        allow.extend(AllowList::load(path)?);
    }
    let install_time = match &args.install_time {
        None => None,
        Some(s) => Some(
            s.parse::<jiff::Timestamp>()
                .with_context(|| {
                    format!("--install-time {s:?}: not an RFC 3339 time (write e.g. 2024-05-01T00:00:00Z)")
                })?
                .as_second(),
        ),
    };
    let baseline = match args.baseline.as_deref() {
        None => BaselineMode::Auto,
        Some("git") => BaselineMode::Git,
        Some(p) => BaselineMode::Manifest(PathBuf::from(p)),
    };
    let cfg = WebscanConfig {
        roots: args.dirs.clone(),
        baseline,
        max_read: args.max_size,
        threads: args.threads.map(usize::from),
        allow,
        install_time,
        system_root: args.root.clone(),
    };

    let scanner = Scanner::new(ScanOptions::default());
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_message("walking");
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar(b)
    });
    let result = match &bar {
        Some(b) => mailwarden_io::webscan::scan(&cfg, &scanner, b),
        None => mailwarden_io::webscan::scan(&cfg, &scanner, &mailwarden_io::webscan::NoProgress),
    };
    if let Some(b) = &bar {
        b.0.finish_and_clear();
    }
    let report = result?;

    if let Some(path) = &args.write_baseline {
        let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        Manifest::from_report(&report, created).write(path)?;
        eprintln!(
            "mailwarden: baseline of {} files written to {}",
            report.files.len(),
            escape_for_terminal(&path.display().to_string())
        );
    }

    let min = args.min_verdict.verdict();
    let mut out = stdout();
    if args.json {
        write_json(&mut out, &report, min)?;
    } else if args.sarif {
        let sarif = sarif(&report, min);
        serde_json::to_writer_pretty(&mut out, &sarif).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render_table(&report, min).as_bytes())?;
    }
    out.flush()?;

    let findings = report.reported(min.max(Verdict::Suspicious)).next().is_some();
    Ok(if findings {
        ExitCode::from(1)
    } else if !report.errors.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Bytes per second as MB/s (10^6).
fn rates(report: &ScanReport) -> (f64, f64) {
    let secs = report.seconds.max(1e-9);
    (
        report.files.len() as f64 / secs,
        report.bytes_read as f64 / 1e6 / secs,
    )
}

fn esc(s: &str) -> String {
    escape_for_terminal(s).into_owned()
}

fn esc_path(p: &Path) -> String {
    esc(&p.to_string_lossy())
}

/// Cuts a string to at most `max` characters, marking the cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn lines_text(lines: &[u32]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from(if lines.len() == 1 { "line " } else { "lines " });
    for (i, l) in lines.iter().take(MAX_TABLE_LINES).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{l}");
    }
    if lines.len() > MAX_TABLE_LINES {
        let _ = write!(s, ", … ({} in all)", lines.len());
    }
    s
}

fn integrity_text(r: &mailwarden_io::webscan::RootSummary) -> String {
    match &r.integrity {
        IntegritySource::None => "integrity: not checked (no git checkout, no --baseline FILE)".to_string(),
        IntegritySource::Git { workdir, head } => format!(
            "integrity: git HEAD {} of {}",
            &head[..head.len().min(12)],
            esc_path(workdir)
        ),
        IntegritySource::Manifest { path } => format!("integrity: baseline {}", esc_path(path)),
    }
}

/// The human report.
fn render_table(report: &ScanReport, min: Verdict) -> String {
    let mut s = String::new();
    for r in &report.roots {
        let _ = writeln!(s, "{}: {}", esc_path(&r.path), integrity_text(r));
        if let Some(n) = &r.note {
            let _ = writeln!(s, "  note: {}", esc(n));
        }
    }
    let reported: Vec<&FileReport> = report.reported(min).collect();
    if !reported.is_empty() {
        let _ = writeln!(s, "\n{:<11} {:>6}  PATH", "VERDICT", "SCORE");
        let mut sorted = reported;
        sorted.sort_by(|a, b| {
            b.verdict
                .cmp(&a.verdict)
                .then(b.score.cmp(&a.score))
                .then(a.path.cmp(&b.path))
        });
        for f in sorted {
            let _ = writeln!(
                s,
                "{:<11} {:>6}  {}",
                f.verdict.as_str(),
                f.score,
                esc_path(&f.path)
            );
            for r in f.reasons.iter().take(MAX_TABLE_REASONS) {
                let lines = lines_text(&r.lines);
                let _ = writeln!(
                    s,
                    "{:20}{}{}{}: {}",
                    "",
                    r.id,
                    if lines.is_empty() { "" } else { " " },
                    lines,
                    esc(&cut(&r.message, MAX_TABLE_MESSAGE))
                );
            }
            if f.reasons.len() > MAX_TABLE_REASONS {
                let _ = writeln!(
                    s,
                    "{:20}… {} more reasons (--json has all)",
                    "",
                    f.reasons.len() - MAX_TABLE_REASONS
                );
            }
            for n in &f.notes {
                let _ = writeln!(s, "{:20}note: {}", "", esc(n));
            }
        }
    }
    if !report.errors.is_empty() {
        let _ = writeln!(s, "\nnot scanned:");
        for e in &report.errors {
            let _ = writeln!(s, "  {}: {}", esc_path(&e.path), esc(&e.message));
        }
    }
    if !report.missing.is_empty() {
        let _ = writeln!(s, "\nmissing since the baseline:");
        for m in report.missing.iter().take(MAX_TABLE_MISSING) {
            let _ = writeln!(s, "  {}/{}", esc_path(&m.root), esc(&m.path));
        }
        if report.missing.len() > MAX_TABLE_MISSING {
            let _ = writeln!(
                s,
                "  … {} more (--json has all)",
                report.missing.len() - MAX_TABLE_MISSING
            );
        }
    }
    let (fps, mbps) = rates(report);
    let _ = writeln!(
        s,
        "\n{} files seen, {} scanned, {} skipped, {} errors, {} allowed{}; {} malicious, {} suspicious, {} info; {:.2} s, {:.0} files/s, {:.1} MB/s",
        report.seen,
        report.files.len(),
        report.skipped,
        report.errors.len(),
        report.allowed(),
        if report.missing.is_empty() {
            String::new()
        } else {
            format!(", {} missing", report.missing.len())
        },
        report.count(Verdict::Malicious),
        report.count(Verdict::Suspicious),
        report.count(Verdict::Info),
        report.seconds,
        fps,
        mbps
    );
    s
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One `--json` record per reported file (fields in this order).
#[derive(Serialize)]
struct FileRecord<'a> {
    r#type: &'static str,
    path: String,
    verdict: Verdict,
    score: u32,
    reasons: &'a [Reason],
    size: u64,
    mtime: i64,
    sha256: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

/// The final `--json` record.
#[derive(Serialize)]
struct SummaryRecord {
    r#type: &'static str,
    roots: Vec<serde_json::Value>,
    files_seen: u64,
    files_scanned: usize,
    skipped: u64,
    errors: usize,
    allowed: usize,
    missing: usize,
    malicious: usize,
    suspicious: usize,
    info: usize,
    reported: usize,
    bytes: u64,
    seconds: f64,
    files_per_second: f64,
    mb_per_second: f64,
}

/// JSON lines: files, errors, missing files, then the summary.
fn write_json(out: &mut impl std::io::Write, report: &ScanReport, min: Verdict) -> anyhow::Result<()> {
    for f in report.reported(min) {
        json_line(
            out,
            &FileRecord {
                r#type: "file",
                path: path_string(&f.path),
                verdict: f.verdict,
                score: f.score,
                reasons: &f.reasons,
                size: f.meta.size,
                mtime: f.meta.mtime,
                sha256: &f.sha256,
                notes: &f.notes,
            },
        )?;
    }
    for e in &report.errors {
        json_line(
            out,
            &json!({"type": "error", "path": path_string(&e.path), "message": e.message}),
        )?;
    }
    for m in &report.missing {
        json_line(
            out,
            &json!({"type": "missing", "root": path_string(&m.root), "path": m.path}),
        )?;
    }
    let (fps, mbps) = rates(report);
    let roots: Vec<_> = report
        .roots
        .iter()
        .map(|r| {
            let (kind, against) = match &r.integrity {
                IntegritySource::None => ("none", None),
                IntegritySource::Git { head, .. } => ("git", Some(head.clone())),
                IntegritySource::Manifest { path } => ("baseline", Some(path_string(path))),
            };
            json!({"path": path_string(&r.path), "integrity": kind, "against": against,
                   "install_time": r.install_time, "note": r.note})
        })
        .collect();
    json_line(
        out,
        &SummaryRecord {
            r#type: "summary",
            roots,
            files_seen: report.seen,
            files_scanned: report.files.len(),
            skipped: report.skipped,
            errors: report.errors.len(),
            allowed: report.allowed(),
            missing: report.missing.len(),
            malicious: report.count(Verdict::Malicious),
            suspicious: report.count(Verdict::Suspicious),
            info: report.count(Verdict::Info),
            reported: report.reported(min).count(),
            bytes: report.bytes_read,
            seconds: report.seconds,
            files_per_second: fps,
            mb_per_second: mbps,
        },
    )?;
    Ok(())
}

/// Percent-encodes a relative path for a URI (RFC 3986 unreserved and `/`
/// stay as they are).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A rule's short description, from its id (`code.exec-request` →
/// "code: exec request"), since reason messages may quote the file.
fn rule_description(r: &Reason) -> String {
    let (layer, rest) = r.id.split_once('.').unwrap_or(("", r.id));
    let words = rest.replace(['-', '_', '.'], " ");
    if layer.is_empty() {
        words
    } else {
        format!("{layer}: {words}")
    }
}

/// The SARIF 2.1.0 log.
fn sarif(report: &ScanReport, min: Verdict) -> serde_json::Value {
    let mut rules: BTreeMap<&str, String> = BTreeMap::new();
    for f in report.reported(min) {
        for r in &f.reasons {
            rules.entry(r.id).or_insert_with(|| rule_description(r));
        }
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut results = Vec::new();
    for f in report.reported(min) {
        // Reasons are sorted strongest first.
        let Some(top) = f.reasons.first() else { continue };
        let level = match f.verdict {
            Verdict::Malicious => "error",
            Verdict::Suspicious => "warning",
            _ => "note",
        };
        let others: Vec<&str> = f.reasons.iter().skip(1).map(|r| r.id).collect();
        let text = format!(
            "{} (score {}): {}{}",
            f.verdict.as_str(),
            f.score,
            top.message,
            if others.is_empty() {
                String::new()
            } else {
                format!("; also {}", others.join(", "))
            }
        );
        let mut location = json!({
            "physicalLocation": {
                "artifactLocation": {
                    "uri": percent_encode(&f.rel),
                    "uriBaseId": format!("ROOT{}", f.root),
                }
            }
        });
        if let Some(line) = top
            .lines
            .first()
            .or_else(|| f.reasons.iter().find_map(|r| r.lines.first()))
        {
            location["physicalLocation"]["region"] = json!({ "startLine": line });
        }
        results.push(json!({
            "ruleId": top.id,
            "ruleIndex": index.get(top.id),
            "level": level,
            "message": { "text": text },
            "locations": [location],
            "properties": {
                "verdict": f.verdict,
                "score": f.score,
                "sha256": f.sha256,
                "reasons": f.reasons.iter().map(|r| json!({"id": r.id, "lines": r.lines})).collect::<Vec<_>>(),
            },
        }));
    }
    let bases: serde_json::Map<String, serde_json::Value> = report
        .roots
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let uri = format!(
                "file://{}/",
                percent_encode(&r.canonical.to_string_lossy()).trim_end_matches('/')
            );
            (format!("ROOT{i}"), json!({ "uri": uri }))
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "mailwarden",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/mailwarden/mailwarden",
                    "rules": rules.iter().map(|(id, d)| json!({
                        "id": id,
                        "shortDescription": { "text": d },
                    })).collect::<Vec<_>>(),
                }
            },
            "originalUriBaseIds": bases,
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("8X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn uris() {
        assert_eq!(percent_encode("a b/ü%.php"), "a%20b/%C3%BC%25.php");
        assert_eq!(percent_encode("x\n#?.php"), "x%0A%23%3F.php");
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("ééé", 2), "éé…");
        assert_eq!(cut("ab", 2), "ab");
    }
}
