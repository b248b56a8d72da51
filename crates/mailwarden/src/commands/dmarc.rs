//! `mailwarden dmarc`: DMARC aggregate and SMTP TLS report analysis — who
//! sends as our domains, and which of them fail.
//!
//! Inputs are found and opened by `mailwarden_io::reports`, read by the
//! core's streaming readers, folded into `mailwarden_core::report::Analysis`
//! one report at a time (a report that fails half-way counts nowhere), and
//! with `--store` kept in the store (once per organisation, report id and
//! domain). Without FILEs, `--store` analyses the stored reports.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Seek, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::report::analysis::{ReportInfo, ReportStatus, reporter_name};
use mailwarden_core::report::render::{CSV_HEADER, RenderOptions, csv_row, render_text};
use mailwarden_core::report::{
    Analysis, AnalysisConfig, DmarcAnalysis, Note, ReportError, ReportHeader, ReportLimits, TlsReport,
};
use mailwarden_io::dns::{Answer, DnsClient, DnsConfig, parse_server};
use mailwarden_io::reports::{
    DmarcInput, ExpansionLimits, Origin, ReadConfig, ReportSink, collect_inputs, read_reports,
};
use mailwarden_store::{ReportQuery, Store, StoreConfig};
use serde::Serialize;

use super::inputs::{parse_time_arg, zone};
use crate::output::stdout;

const EXAMPLES: &str = "\
Examples:
  # Every report in a folder (xml, xml.gz, zip, .eml, mbox, Maildir):
  mailwarden dmarc ~/dmarc-reports/

  # The reports in a mailbox, for one domain, last 30 days:
  mailwarden dmarc --domain example.com --since 30d /var/vmail/example.com/dmarc/Maildir

  # Keep them in the store (each report once), then look again later:
  mailwarden dmarc --store ~/dmarc-reports/
  mailwarden dmarc --store --since 2024-03-01

  # One CSV row per record, or everything as JSON:
  mailwarden dmarc --csv reports/ > records.csv
  mailwarden dmarc --json reports/ | jq '.domains[].failing_sources[:5]'

  # With the reverse names of the senders:
  mailwarden dmarc --resolve --resolver 192.0.2.53 reports/

Exit status: 0 all inputs read, 1 some inputs (files, mails, attachments)
could not be read (each is listed on stderr; the others were analysed),
2 usage or fatal errors (such as a store that cannot be opened).";

/// Read DMARC aggregate reports (RFC 7489 and RFC 9990) and SMTP TLS
/// reports (RFC 8460): who sends mail as your domains, which of those
/// sources pass DMARC (aligned SPF or DKIM) and which fail, per day; and
/// how many TLS sessions to your MX hosts failed, and why.
///
/// Reports may be XML or JSON files, gzip or zip compressed, or attached to
/// mails (.eml files, mbox files, Maildir folders). What a file is comes
/// from its content, not its name. Directories are read recursively
/// (hidden files and symbolic links to directories are skipped; a Maildir
/// folder is read as mail, subfolders included).
///
/// Broken reports are repaired where the data is recoverable (invalid
/// UTF-8, stray '<' or '&', junk before or after the XML, missing or wrong
/// namespace, truncated files, damaged gzip endings), and every repair is
/// listed. What cannot be read is reported one by one (file, message,
/// attachment, archive entry) with the reason, and the rest is still read.
/// A report read twice (the same organisation, report id and domain) is
/// counted once. XML entities are never expanded: a report that declares
/// any is refused. Decompression is bounded in size and ratio.
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct DmarcArgs {
    /// Report files or directories. With --store and none, the stored
    /// reports are analysed. `-` reads standard input.
    #[arg(value_name = "FILE|DIR")]
    pub inputs: Vec<PathBuf>,

    /// Print everything as one JSON document: per domain the authorized and
    /// failing sources with all their figures, the days, the TLS figures,
    /// every report read with its repairs, and the inputs that failed.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Print one CSV row per aggregate-report record instead: report org,
    /// report id, begin, end, domain, source ip, count, disposition, dkim,
    /// spf (the aligned results), header_from, envelope_from, and the DKIM
    /// and SPF domains and results (`;`-separated). Fields starting with =,
    /// +, - or @ are prefixed with ' so spreadsheets do not run them.
    #[arg(long)]
    pub csv: bool,

    /// Only reports about these policy domains (repeatable, or comma-separated).
    #[arg(long = "domain", value_name = "DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,

    /// Only reports whose period ends at or after TIME: RFC 3339,
    /// `YYYY-MM-DD[ HH:MM[:SS]]` (local time), or a duration back from now
    /// (`36h`, `30d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only reports whose period begins at or before TIME (same forms).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Keep the reports read in the store, each once (re-reading a folder
    /// adds nothing); with no FILE, analyse the reports kept there. Needs
    /// the store's writer lock when FILEs are given (not while `serve` runs).
    #[arg(long)]
    pub store: bool,

    /// The store's data directory (implies --store; default:
    /// $MAILWARDEN_DATA_DIR, /var/lib/mailwarden as root, else
    /// ~/.local/share/mailwarden).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Look up the reverse DNS name (PTR) of every source address.
    #[arg(long)]
    pub resolve: bool,

    /// The DNS server for --resolve (IP or IP:PORT, a recursive resolver).
    /// Default: the system's resolvers.
    #[arg(long, value_name = "IP[:PORT]", requires = "resolve", value_parser = parse_server)]
    pub resolver: Option<SocketAddr>,

    /// Sources listed per table in the text output.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// Most records read from one report; a report with more fails.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_records: u64,

    /// Largest decompressed report (bytes; K, M, G suffixes: 100M).
    /// Decompression that expands more than 250:1 stops too.
    #[arg(long, default_value = "100M", value_name = "SIZE", value_parser = parse_size)]
    pub max_report_bytes: u64,

    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Parses `123`, `64K`, `100M`, `1G` (binary multiples; `KiB`, `MB` … too).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 100M or 1G"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use K, M or G")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

/// Runs `mailwarden dmarc`.
pub fn dmarc(args: DmarcArgs) -> anyhow::Result<ExitCode> {
    let use_store = args.store || args.data_dir.is_some();
    if args.inputs.is_empty() && !use_store {
        anyhow::bail!(
            "name report files or directories to read (or use --store to analyse the reports kept in the store)"
        );
    }
    let tz = zone(None)?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time_arg(s, &tz).map(|t| t.unix_micros.div_euclid(1_000_000)))
        .transpose()
        .context("--since")?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time_arg(s, &tz).map(|t| t.unix_micros.div_euclid(1_000_000)))
        .transpose()
        .context("--until")?;
    let domains: Vec<String> = args
        .domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    let analysis = Analysis::new(AnalysisConfig {
        domains: domains.clone(),
        since,
        until,
        ..AnalysisConfig::default()
    });
    let data_dir = use_store.then(|| {
        args.data_dir
            .clone()
            .or_else(|| {
                std::env::var_os("MAILWARDEN_DATA_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(crate::config::default_data_dir)
    });
    let mut out = stdout();
    let csv = args.csv.then(CsvOut::new);
    let (mut result, run) = if args.inputs.is_empty() {
        let dir = data_dir.as_deref().unwrap_or(Path::new("."));
        let store = Store::open_read_only(dir)?;
        stored(
            &store,
            analysis,
            csv,
            &mut out,
            &ReportQuery {
                domains,
                since,
                until,
            },
        )?
    } else {
        let store = match &data_dir {
            Some(dir) => Some(Store::open(StoreConfig::new(dir))?),
            None => None,
        };
        read_files(&args, store.as_ref(), analysis, csv, &mut out)?
    };

    if args.resolve && !args.csv {
        resolve(&mut result, args.resolver)?;
    }
    for (origin, reason) in &run.failed {
        eprintln!(
            "mailwarden: {}: {}",
            escape_for_terminal(origin),
            escape_for_terminal(reason)
        );
    }
    if !run.failed.is_empty() && !args.json {
        eprintln!(
            "mailwarden: {} input(s) could not be read; the rest was analysed",
            run.failed.len()
        );
    }
    if args.json {
        let doc = JsonDoc {
            inputs: InputsDoc {
                files: run.files,
                failed: run
                    .failed
                    .iter()
                    .map(|(i, r)| Failure { input: i, reason: r })
                    .collect(),
                skipped: run
                    .skipped
                    .iter()
                    .map(|(i, r)| Failure { input: i, reason: r })
                    .collect(),
            },
            store: data_dir.as_ref().map(|d| StoreDoc {
                dir: d.display().to_string(),
                new: run.stored_new,
                already_stored: run.stored_dup,
            }),
            analysis: &result,
        };
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else if !args.csv {
        let text = render_text(
            &result,
            &RenderOptions {
                top: args.top.max(1),
                ..RenderOptions::default()
            },
        );
        out.write_all(text.as_bytes())?;
        out.write_all(inputs_footer(&run, data_dir.as_deref()).as_bytes())?;
    }
    out.flush()?;
    Ok(if run.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What happened to the inputs.
#[derive(Default)]
struct RunInfo {
    files: usize,
    failed: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
    stored_new: u64,
    stored_dup: u64,
    from_store: bool,
}

fn inputs_footer(run: &RunInfo, data_dir: Option<&Path>) -> String {
    let mut s = String::new();
    if run.from_store {
        s.push_str(&format!(
            "Read from the store at {}\n",
            escape_for_terminal(&data_dir.map(|d| d.display().to_string()).unwrap_or_default())
        ));
        return s;
    }
    s.push_str(&format!(
        "Inputs: {} file(s); {} could not be read (listed on stderr); {} skipped\n",
        run.files,
        run.failed.len(),
        run.skipped.len()
    ));
    for (o, r) in run.skipped.iter().take(50) {
        s.push_str(&format!(
            "  skipped {}: {}\n",
            escape_for_terminal(o),
            escape_for_terminal(r)
        ));
    }
    if run.skipped.len() > 50 {
        s.push_str(&format!(
            "  … and {} more skipped (--json lists all)\n",
            run.skipped.len() - 50
        ));
    }
    if let Some(d) = data_dir {
        s.push_str(&format!(
            "Store {}: {} report(s) added, {} already stored\n",
            escape_for_terminal(&d.display().to_string()),
            run.stored_new,
            run.stored_dup
        ));
    }
    s
}

#[derive(Serialize)]
struct Failure<'a> {
    input: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct InputsDoc<'a> {
    files: usize,
    failed: Vec<Failure<'a>>,
    skipped: Vec<Failure<'a>>,
}

#[derive(Serialize)]
struct StoreDoc {
    dir: String,
    new: u64,
    already_stored: u64,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    inputs: InputsDoc<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<StoreDoc>,
    #[serde(flatten)]
    analysis: &'a DmarcAnalysis,
}

/// CSV rows, held per report until the report is complete (a failed
/// report prints nothing); beyond 32 MiB they spill to an unlinked file.
struct CsvOut {
    buf: String,
    spill: Option<File>,
    header_done: bool,
}

const CSV_SPILL: usize = 32 << 20;

impl CsvOut {
    fn new() -> CsvOut {
        CsvOut {
            buf: String::new(),
            spill: None,
            header_done: false,
        }
    }

    fn row(&mut self, h: &ReportHeader, r: &mailwarden_core::report::Record) -> std::io::Result<()> {
        csv_row(&mut self.buf, h, r);
        if self.buf.len() > CSV_SPILL {
            if self.spill.is_none() {
                self.spill = Some(anonymous_file()?);
            }
            if let Some(f) = &mut self.spill {
                f.write_all(self.buf.as_bytes())?;
            }
            self.buf.clear();
        }
        Ok(())
    }

    fn commit(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if !self.header_done {
            out.write_all(CSV_HEADER.as_bytes())?;
            out.write_all(b"\n")?;
            self.header_done = true;
        }
        if let Some(mut f) = self.spill.take() {
            f.seek(std::io::SeekFrom::Start(0))?;
            std::io::copy(&mut f, out)?;
        }
        out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }

    fn discard(&mut self) {
        self.buf.clear();
        self.spill = None;
    }
}

/// A temporary file that is already unlinked.
fn anonymous_file() -> std::io::Result<File> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let p = dir.join(format!("mailwarden-csv-{}-{i}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => {
                let _ = std::fs::remove_file(&p);
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("cannot create a temporary file"))
}

/// The sink: analysis, store and CSV for every report read.
struct Sink<'a, 'o> {
    analysis: Analysis,
    store: Option<&'a Store>,
    csv: Option<CsvOut>,
    out: &'o mut dyn Write,
    now: i64,
    run: RunInfo,
    fatal: Option<anyhow::Error>,
    bar: Option<ProgressBar>,
}

fn store_failure(e: impl std::fmt::Display) -> ReportError {
    ReportError::Io(std::io::Error::other(format!("storing the report: {e}")))
}

impl Sink<'_, '_> {
    fn set_fatal(&mut self, e: anyhow::Error) -> ReportError {
        let msg = format!("{e:#}");
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
        ReportError::Io(std::io::Error::other(msg))
    }
}

impl ReportSink for Sink<'_, '_> {
    fn file_started(&mut self, index: usize, total: usize, path: &Path, _size: Option<u64>) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(index as u64);
            b.set_message(escape_for_terminal(&path.display().to_string()).into_owned());
        }
    }

    fn dmarc(&mut self, origin: &Origin, input: &mut DmarcInput<'_>) -> Result<(), ReportError> {
        if self.fatal.is_some() {
            return Ok(());
        }
        let h = input.header()?.clone();
        let source = origin.to_string();
        if let Some(first) = self.analysis.first_seen(&h.key()).map(str::to_owned) {
            self.analysis.add_uncounted(info_of(
                &h,
                &source,
                0,
                0,
                0,
                0,
                Vec::new(),
                ReportStatus::Duplicate { of: first },
                None,
            ));
            return Ok(());
        }
        let wanted = self.analysis.config().wants(&h);
        let mut writer = match self.store {
            Some(s) => match s.begin_dmarc_report(&h, &source, self.now) {
                Ok(w) => {
                    if w.is_some() {
                        self.run.stored_new += 1;
                    } else {
                        self.run.stored_dup += 1;
                    }
                    w
                }
                Err(e) => return Err(self.set_fatal(anyhow::Error::new(e).context("storing a report"))),
            },
            None => None,
        };
        let stored = self
            .store
            .map(|_| if writer.is_some() { "new" } else { "already stored" });
        if !wanted && writer.is_none() {
            self.analysis.filtered();
            return Ok(());
        }
        let mut acc = self.analysis.start_dmarc(&h);
        let result = (|| -> Result<(), ReportError> {
            while let Some(r) = input.next_record()? {
                if let Some(w) = &mut writer {
                    w.add(&r).map_err(store_failure)?;
                }
                if wanted {
                    acc.add(&r);
                    if let Some(c) = &mut self.csv {
                        c.row(&h, &r)?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            if let Some(c) = &mut self.csv {
                c.discard();
            }
            if writer.is_some() {
                self.run.stored_new -= 1;
            }
            return Err(e);
        }
        let notes = input.notes();
        if let Some(w) = writer
            && let Err(e) = w.commit(&notes, input.messages())
        {
            return Err(self.set_fatal(anyhow::Error::new(e).context("storing a report")));
        }
        if !wanted {
            self.analysis.filtered();
            return Ok(());
        }
        if let Some(c) = &mut self.csv
            && let Err(e) = c.commit(self.out)
        {
            return Err(self.set_fatal(e.into()));
        }
        let info = info_of(
            &h,
            &source,
            input.records(),
            input.messages(),
            acc.authorized(),
            acc.failing(),
            notes,
            ReportStatus::Counted,
            stored,
        );
        self.analysis.add_dmarc(&h, acc, info);
        Ok(())
    }

    fn tls(&mut self, origin: &Origin, report: TlsReport, notes: Vec<Note>) {
        if self.fatal.is_some() {
            return;
        }
        let source = origin.to_string();
        let stored = match self.store {
            Some(s) => match s.add_tls_report(&report, &notes, &source, self.now) {
                Ok(true) => {
                    self.run.stored_new += 1;
                    Some("new")
                }
                Ok(false) => {
                    self.run.stored_dup += 1;
                    Some("already stored")
                }
                Err(e) => {
                    self.fatal = Some(anyhow::Error::new(e).context("storing a TLS report"));
                    return;
                }
            },
            None => None,
        };
        let mut info = tls_info(&report, &source, notes, stored);
        if let Some(first) = self.analysis.first_seen(&report.key()).map(str::to_owned) {
            info.status = ReportStatus::Duplicate { of: first };
            self.analysis.add_uncounted(info);
        } else if self.analysis.wants_tls(&report) {
            self.analysis.add_tls(&report, info);
        } else {
            self.analysis.filtered();
        }
    }

    fn failed(&mut self, origin: &Origin, reason: &str) {
        self.run.failed.push((origin.to_string(), reason.to_owned()));
    }

    fn skipped(&mut self, origin: &Origin, reason: &str) {
        self.run.skipped.push((origin.to_string(), reason.to_owned()));
    }
}

#[allow(clippy::too_many_arguments)]
fn info_of(
    h: &ReportHeader,
    source: &str,
    records: u64,
    messages: u64,
    passed: u64,
    failed: u64,
    notes: Vec<Note>,
    status: ReportStatus,
    stored: Option<&'static str>,
) -> ReportInfo {
    ReportInfo {
        kind: "dmarc",
        source: source.to_owned(),
        org: reporter_name(h),
        report_id: h.metadata.report_id.clone(),
        domains: vec![h.policy.domain.clone()],
        begin: h.metadata.begin,
        end: h.metadata.end,
        schema: Some(h.schema),
        records,
        messages,
        passed,
        failed,
        notes,
        status,
        stored,
    }
}

fn tls_info(r: &TlsReport, source: &str, notes: Vec<Note>, stored: Option<&'static str>) -> ReportInfo {
    ReportInfo {
        kind: "tls",
        source: source.to_owned(),
        org: if r.organization_name.is_empty() {
            r.contact_info.clone()
        } else {
            r.organization_name.clone()
        },
        report_id: r.report_id.clone(),
        domains: r.policies.iter().map(|p| p.policy_domain.clone()).collect(),
        begin: r.begin,
        end: r.end,
        schema: None,
        records: r.policies.len() as u64,
        messages: r
            .policies
            .iter()
            .map(|p| p.successful.saturating_add(p.failed))
            .fold(0u64, u64::saturating_add),
        passed: r
            .policies
            .iter()
            .map(|p| p.successful)
            .fold(0u64, u64::saturating_add),
        failed: r
            .policies
            .iter()
            .map(|p| p.failed)
            .fold(0u64, u64::saturating_add),
        notes,
        status: ReportStatus::Counted,
        stored,
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn read_files(
    args: &DmarcArgs,
    store: Option<&Store>,
    analysis: Analysis,
    csv: Option<CsvOut>,
    out: &mut dyn Write,
) -> anyhow::Result<(DmarcAnalysis, RunInfo)> {
    let inputs = collect_inputs(&args.inputs);
    let cfg = ReadConfig {
        limits: ReportLimits {
            max_records: args.max_records.max(1),
            ..ReportLimits::default()
        },
        expansion: ExpansionLimits {
            max_bytes: args.max_report_bytes,
            max_total: args
                .max_report_bytes
                .saturating_mul(10)
                .max(ExpansionLimits::default().max_total),
            ..ExpansionLimits::default()
        },
        ..ReadConfig::default()
    };
    let bar = (!args.no_progress && std::io::stderr().is_terminal() && inputs.files.len() > 1).then(|| {
        let b = ProgressBar::new(inputs.files.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} files {wide_msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut sink = Sink {
        analysis,
        store,
        csv,
        out,
        now: now_secs(),
        run: RunInfo {
            files: inputs.files.len(),
            ..RunInfo::default()
        },
        fatal: None,
        bar,
    };
    read_reports(&inputs, &cfg, &mut sink);
    if let Some(b) = &sink.bar {
        b.finish_and_clear();
    }
    if let Some(e) = sink.fatal {
        return Err(e);
    }
    if let Some(c) = &mut sink.csv
        && !c.header_done
    {
        c.commit(sink.out)?;
    }
    Ok((sink.analysis.finish(), sink.run))
}

fn stored(
    store: &Store,
    mut analysis: Analysis,
    mut csv: Option<CsvOut>,
    out: &mut dyn Write,
    q: &ReportQuery,
) -> anyhow::Result<(DmarcAnalysis, RunInfo)> {
    for r in store.dmarc_reports(q)? {
        if !analysis.config().wants(&r.header) {
            analysis.filtered();
            continue;
        }
        let mut acc = analysis.start_dmarc(&r.header);
        let mut csv_err = None;
        store.for_each_dmarc_record(r.id, |rec| {
            acc.add(&rec);
            if let Some(c) = &mut csv
                && let Err(e) = c.row(&r.header, &rec)
            {
                csv_err.get_or_insert(e);
            }
        })?;
        if let Some(e) = csv_err {
            return Err(e.into());
        }
        if let Some(c) = &mut csv {
            c.commit(out)?;
        }
        let info = info_of(
            &r.header,
            &r.source,
            r.records,
            r.messages,
            acc.authorized(),
            acc.failing(),
            r.notes.clone(),
            ReportStatus::Counted,
            None,
        );
        analysis.add_dmarc(&r.header, acc, info);
    }
    for t in store.tls_reports(q)? {
        if analysis.wants_tls(&t.report) {
            let info = tls_info(&t.report, &t.source, t.notes.clone(), None);
            analysis.add_tls(&t.report, info);
        } else {
            analysis.filtered();
        }
    }
    if let Some(c) = &mut csv
        && !c.header_done
    {
        c.commit(out)?;
    }
    Ok((
        analysis.finish(),
        RunInfo {
            from_store: true,
            ..RunInfo::default()
        },
    ))
}

/// Most addresses looked up with --resolve.
const MAX_RESOLVE: usize = 5000;
/// Lookups in flight at once.
const RESOLVE_PARALLEL: usize = 32;

fn resolve(result: &mut DmarcAnalysis, server: Option<SocketAddr>) -> anyhow::Result<()> {
    let ips: Vec<(String, IpAddr)> = result
        .source_ips()
        .into_iter()
        .filter_map(|s| s.parse::<IpAddr>().ok().map(|ip| (s, ip)))
        .take(MAX_RESOLVE)
        .collect();
    if ips.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the DNS runtime")?;
    let names = rt.block_on(async move {
        let client = Arc::new(DnsClient::new(&DnsConfig {
            server,
            timeout: Duration::from_secs(3),
            attempts: 2,
        })?);
        let sem = Arc::new(tokio::sync::Semaphore::new(RESOLVE_PARALLEL));
        let mut set = tokio::task::JoinSet::new();
        for (text, ip) in ips {
            let client = client.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.ok();
                (text, client.ptr(ip).await)
            });
        }
        let mut names = HashMap::new();
        let mut failed = 0usize;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((text, Ok(Answer::Records(r)))) => {
                    if let Some(n) = r.into_iter().next() {
                        names.insert(text, n.trim_end_matches('.').to_owned());
                    }
                }
                Ok((_, Ok(_))) => {}
                Ok((_, Err(_))) | Err(_) => failed += 1,
            }
        }
        if failed > 0 {
            eprintln!("mailwarden: {failed} reverse lookup(s) failed (timeout or server error); those sources show no name");
        }
        Ok::<_, anyhow::Error>(names)
    })?;
    result.set_reverse_names(&names);
    Ok(())
}
