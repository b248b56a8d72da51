//! `mailwarden logs summary|search|parse`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::event::{Event, EventKind, Position};
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::{MessageRecord, StitchConfig, Stitcher};
use mailwarden_core::summary::{Summarizer, SummaryConfig, render_text};
use mailwarden_io::pipeline::{self, InputReport, PipelineConfig};
use serde::Serialize;

use super::inputs::{ProgressUi, ResolvedInputs, parse_time_arg, pipeline_config, resolve};
use crate::cli::{InputArgs, ParseArgs, SearchArgs, SummaryArgs};
use crate::output::{json_line, stdout};

pub(crate) fn stitch_config(args: &InputArgs, capture: bool) -> StitchConfig {
    StitchConfig {
        horizon_secs: args.horizon,
        max_open: args.max_open.max(1),
        capture_lines: capture,
        ..StitchConfig::default()
    }
}

/// Reports input failures on stderr; returns whether any input failed.
fn report_inputs(reports: &[InputReport]) -> bool {
    let mut failed = false;
    for r in reports {
        if let Some(e) = &r.error {
            eprintln!("mailwarden: {e}");
            failed = true;
        }
    }
    failed
}

fn exit_for(failed: bool, found: bool) -> ExitCode {
    if failed {
        ExitCode::from(2)
    } else if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `logs summary`.
pub fn summary(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.input);
    let cfg = pipeline_config(&args.input, resolved.using_sample)?;
    let mut stitcher = Stitcher::new(stitch_config(&args.input, false));
    let mut sum = Summarizer::new(SummaryConfig {
        top: args.top.max(1),
        local_domains: args.local_domains.clone(),
        ..SummaryConfig::default()
    });
    let reports = read_lines(&args.input, &cfg, resolved, |_input, pos, raw, ev| {
        sum.on_event(pos, raw, ev);
        stitcher.feed(pos, raw, ev);
        while let Some(rec) = stitcher.pop() {
            sum.on_message(&rec);
        }
    })?;
    stitcher.finish();
    while let Some(rec) = stitcher.pop() {
        sum.on_message(&rec);
    }
    sum.set_stitch_stats(stitcher.stats().clone());
    let report = sum.finish();
    let failed = report_inputs(&reports);
    let mut out = stdout();
    if args.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            inputs: Vec<InputDoc<'a>>,
            #[serde(flatten)]
            summary: &'a mailwarden_core::summary::Summary,
        }
        let doc = Doc {
            inputs: input_docs(&reports),
            summary: &report,
        };
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render_text(&report).as_bytes())?;
        out.write_all(inputs_footer(&reports).as_bytes())?;
    }
    out.flush()?;
    Ok(exit_for(failed, true))
}

#[derive(Serialize)]
struct InputDoc<'a> {
    name: &'a str,
    lines: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn input_docs(reports: &[InputReport]) -> Vec<InputDoc<'_>> {
    reports
        .iter()
        .map(|r| InputDoc {
            name: &r.name,
            lines: r.lines,
            error: r.error.as_ref().map(|e| e.to_string()),
        })
        .collect()
}

fn inputs_footer(reports: &[InputReport]) -> String {
    let mut s = String::from("\nInputs\n------\n");
    for (i, r) in reports.iter().enumerate() {
        let _ = write!(s, "  {i}: {} ({} lines", escape_for_terminal(&r.name), r.lines);
        if let Some(e) = &r.error {
            let _ = write!(s, "; FAILED: {e}");
        }
        s.push_str(")\n");
    }
    s
}

/// A search result.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Hit<'a> {
    Message {
        #[serde(flatten)]
        record: &'a MessageRecord,
    },
    Rejection {
        input: &'a str,
        line: u64,
        #[serde(flatten)]
        event: &'a Event<'a>,
    },
}

/// `logs search`.
pub fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.input);
    let cfg = pipeline_config(&args.input, resolved.using_sample)?;
    let query = SearchQuery {
        sender: args.sender.clone(),
        recipient: args.recipient.clone(),
        sasl_user: args.sasl_user.clone(),
        client_ip: args.client_ip.clone(),
        queue_id: args.queue_id.clone(),
        message_id: args.message_id.clone(),
        status: args.status,
        since: args
            .input
            .since
            .as_deref()
            .map(|s| parse_time_arg(s, &cfg.zone))
            .transpose()
            .context("--since")?,
        until: args
            .input
            .until
            .as_deref()
            .map(|s| parse_time_arg(s, &cfg.zone))
            .transpose()
            .context("--until")?,
    };
    let limit = args.limit.unwrap_or(usize::MAX);
    if args.input.store {
        return search_store(&args, &query, limit);
    }
    let mut source_names: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    let mut stitcher = Stitcher::new(stitch_config(&args.input, args.lines));
    let mut out = stdout();
    let mut found = 0usize;
    let (mut read, mut unparsed) = (0u64, 0u64);
    let mut lines: Vec<(Position, String)> = Vec::new();
    let mut write_err: Option<std::io::Error> = None;

    let emit_record = |rec: &MessageRecord,
                       out: &mut dyn Write,
                       lines: &mut Vec<(Position, String)>,
                       found: &mut usize|
     -> std::io::Result<()> {
        if *found >= limit || !query.matches_record(rec) {
            return Ok(());
        }
        *found += 1;
        if args.lines {
            lines.extend(rec.lines.iter().map(|l| (l.position, l.text.clone())));
            Ok(())
        } else if args.json {
            json_line(out, &Hit::Message { record: rec })
        } else {
            out.write_all(render_record(rec).as_bytes())
        }
    };

    let reports = read_lines(&args.input, &cfg, resolved, |input, pos, raw, ev| {
        source_names.entry(pos.source).or_insert_with(|| input.to_owned());
        read += 1;
        unparsed += u64::from(ev.kind.is_unparsed());
        if write_err.is_some() {
            return;
        }
        stitcher.feed(pos, raw, ev);
        while let Some(rec) = stitcher.pop() {
            if let Err(e) = emit_record(&rec, &mut out, &mut lines, &mut found) {
                write_err = Some(e);
                return;
            }
        }
        if found < limit && query.matches_event(ev) {
            let is_rejection = matches!(&ev.kind, EventKind::Postfix(p)
                    if matches!(p.msg, mailwarden_core::parse::postfix::PostfixMsg::Action { .. }));
            if args.lines {
                found += 1;
                lines.push((pos, raw.to_owned()));
            } else if is_rejection {
                found += 1;
                let name = input;
                let res = if args.json {
                    json_line(
                        &mut out,
                        &Hit::Rejection {
                            input: name,
                            line: pos.line,
                            event: ev,
                        },
                    )
                } else {
                    out.write_all(render_rejection(name, pos, raw).as_bytes())
                };
                if let Err(e) = res {
                    write_err = Some(e);
                }
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    stitcher.finish();
    while let Some(rec) = stitcher.pop() {
        emit_record(&rec, &mut out, &mut lines, &mut found)?;
    }
    if args.lines {
        lines.sort_by_key(|(p, _)| *p);
        lines.dedup_by_key(|(p, _)| *p);
        for (pos, text) in &lines {
            if args.json {
                #[derive(Serialize)]
                struct L<'a> {
                    input: &'a str,
                    line: u64,
                    text: &'a str,
                }
                let name = source_names.get(&pos.source).map(String::as_str).unwrap_or("");
                json_line(
                    &mut out,
                    &L {
                        input: name,
                        line: pos.line,
                        text,
                    },
                )?;
            } else {
                writeln!(out, "{}", escape_for_terminal(text))?;
            }
        }
    }
    out.flush()?;
    let failed = report_inputs(&reports);
    // Absence of a match only means something for the lines that were read.
    eprintln!(
        "mailwarden: {found} result{} from {read} lines ({unparsed} unparsed; see `logs parse --unparsed`)",
        if found == 1 { "" } else { "s" }
    );
    if found == 0 && !failed {
        eprintln!("mailwarden: no match");
    }
    Ok(exit_for(failed, found > 0))
}

fn render_rejection(input: &str, pos: Position, raw: &str) -> String {
    format!(
        "REJECTED  {}:{}\n  {}\n\n",
        escape_for_terminal(input),
        pos.line,
        escape_for_terminal(raw)
    )
}

/// A message record as a block of text.
fn render_record(r: &MessageRecord) -> String {
    let e = |s: &str| escape_for_terminal(s).into_owned();
    let mut s = String::new();
    let when = r
        .first_seen
        .map(|t| t.to_string())
        .unwrap_or_else(|| "(no time)".into());
    let _ = write!(s, "{when}  {}", e(&r.queue_id));
    if !r.reinjected_as.is_empty() {
        let _ = write!(s, " (re-injected as {})", e(&r.reinjected_as.join(", ")));
    }
    let _ = writeln!(s, "  [{}]", r.end.as_str());
    let from = match r.from.as_deref() {
        Some("") => "<>".to_owned(),
        Some(f) => format!("<{}>", e(f)),
        None => "(unknown)".into(),
    };
    let _ = write!(s, "  from {from}");
    if let Some(size) = r.size {
        let _ = write!(s, "  size {size}");
    }
    if let Some(m) = &r.message_id {
        let _ = write!(s, "  message-id <{}>", e(m));
    }
    s.push('\n');
    match (&r.client, r.uid) {
        (Some(c), _) => {
            let _ = write!(s, "  client {}[{}]", e(&c.name), e(&c.ip));
            if let Some(svc) = &r.service {
                let _ = write!(s, " via {}", e(svc));
            }
        }
        (None, Some(uid)) => {
            let _ = write!(s, "  local submission by uid {uid}");
        }
        _ => {
            let _ = write!(s, "  origin {}", r.origin.as_str());
        }
    }
    match &r.sasl_username {
        Some(u) => {
            let _ = writeln!(
                s,
                "  authenticated as {} ({})",
                e(u),
                e(r.sasl_method.as_deref().unwrap_or("?"))
            );
        }
        None => s.push_str("  not authenticated\n"),
    }
    for h in &r.filter_hops {
        let _ = writeln!(s, "  filter {} -> {}", e(&h.relay), e(&h.queue_id));
    }
    for v in &r.verdicts {
        let _ = write!(s, "  {} {}", v.scanner.as_str(), e(&v.action));
        if let Some(score) = v.score {
            let _ = write!(s, " score {score}");
        }
        if !v.symbols.is_empty() {
            let _ = write!(s, " [{}]", e(&v.symbols.join(",")));
        }
        s.push('\n');
    }
    for a in &r.actions {
        let _ = writeln!(
            s,
            "  {}{} at {}: {}",
            if a.milter { "milter-" } else { "" },
            a.action.as_str(),
            e(&a.stage),
            e(&a.text)
        );
    }
    for d in &r.deliveries {
        let _ = write!(s, "  -> {}", e(&d.to));
        if let Some(o) = &d.orig_to {
            let _ = write!(s, " (for {})", e(o));
        }
        let _ = write!(s, "  {}  relay={}", d.status, e(&d.relay));
        if let Some(delay) = d.delay {
            let _ = write!(s, "  delay={delay}s");
        }
        let _ = writeln!(s, "  ({})", e(&d.detail));
    }
    if let Some(n) = &r.notification_queue_id {
        let _ = writeln!(s, "  notification sent as {}", e(n));
    }
    s.push('\n');
    s
}

/// `logs parse`.
pub fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.input);
    let cfg = pipeline_config(&args.input, resolved.using_sample)?;
    let mut out = stdout();
    let started = Instant::now();

    #[derive(Serialize)]
    struct Line<'a> {
        input: &'a str,
        line: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(flatten)]
        event: &'a Event<'a>,
    }

    let mut counts_lines = 0u64;
    let mut by_family: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut stitcher = Stitcher::new(stitch_config(&args.input, false));
    let mut messages = 0u64;
    let mut write_err: Option<std::io::Error> = None;
    let raw_to_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let reports = read_lines(&args.input, &cfg, resolved, |input, pos, raw, ev| {
        counts_lines += 1;
        if args.count {
            let fam = family_name(&ev.kind);
            *by_family.entry(fam).or_default() += 1;
            if let EventKind::Unparsed(u) = &ev.kind {
                *by_reason.entry(u.reason.to_string()).or_default() += 1;
            }
            stitcher.feed(pos, raw, ev);
            while stitcher.pop().is_some() {
                messages += 1;
            }
            return;
        }
        if write_err.is_some() || (args.unparsed && !ev.kind.is_unparsed()) {
            return;
        }
        if args.raw {
            let res = if raw_to_terminal {
                writeln!(out, "{}", mailwarden_core::escape::escape_for_terminal(raw))
            } else {
                writeln!(out, "{raw}")
            };
            if let Err(e) = res {
                write_err = Some(e);
            }
            return;
        }
        let line = Line {
            input,
            line: pos.line,
            text: ev.kind.is_unparsed().then_some(raw),
            event: ev,
        };
        if let Err(e) = json_line(&mut out, &line) {
            write_err = Some(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if args.count {
        stitcher.finish();
        while stitcher.pop().is_some() {
            messages += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let doc = serde_json::json!({
            "inputs": input_docs(&reports),
            "lines": counts_lines,
            "events_by_family": by_family,
            "unparsed_by_reason": by_reason,
            "messages": messages,
            "stitch": stitcher.stats(),
            "elapsed_secs": elapsed,
            "lines_per_sec": if elapsed > 0.0 { counts_lines as f64 / elapsed } else { 0.0 },
        });
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let failed = report_inputs(&reports);
    Ok(exit_for(failed, true))
}

fn family_name(k: &EventKind<'_>) -> &'static str {
    k.family().map_or("unparsed", |f| f.name())
}

/// Feeds every line of the inputs to `sink(input name, position, raw, event)`:
/// the files (or stdin, or the sample) through the pipeline, or the store
/// (`--store`) by replay; with `--since`/`--until`, only lines in the window.
pub(crate) fn read_lines(
    input: &InputArgs,
    cfg: &PipelineConfig,
    resolved: ResolvedInputs,
    mut sink: impl FnMut(&str, Position, &str, &Event<'_>),
) -> anyhow::Result<Vec<InputReport>> {
    let since = input
        .since
        .as_deref()
        .map(|s| parse_time_arg(s, &cfg.zone))
        .transpose()
        .context("--since")?;
    let until = input
        .until
        .as_deref()
        .map(|s| parse_time_arg(s, &cfg.zone))
        .transpose()
        .context("--until")?;
    let in_window = |ev: &Event<'_>| match ev.ts {
        Some(t) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u),
        None => true,
    };
    if input.store {
        let dir = input
            .data_dir
            .clone()
            .unwrap_or_else(crate::config::default_data_dir);
        let store = mailwarden_store::Store::open_read_only(&dir)?;
        let mut lines = 0u64;
        store.replay(since, until, |line| {
            let ev = line.event();
            if in_window(&ev) {
                lines += 1;
                sink(line.source, line.position, line.raw, &ev);
            }
        })?;
        return Ok(vec![InputReport {
            name: format!("store {}", dir.display()),
            lines,
            compression: None,
            error: None,
        }]);
    }
    let names: Vec<String> = resolved.sources.iter().map(|s| s.display()).collect();
    let ui = ProgressUi::new(resolved.sources.len(), input.no_progress);
    let reports = pipeline::run(
        &resolved.sources,
        cfg,
        |p| ui.start(p),
        |pos, raw, ev| {
            ui.tick(pos.line);
            if in_window(ev) {
                let name = names.get(pos.source as usize).map(String::as_str).unwrap_or("");
                sink(name, pos, raw, ev);
            }
        },
    );
    ui.finish();
    Ok(reports)
}

/// `logs search --store`: the store's indexes find the candidates; each is
/// confirmed with the same matching as a file search.
fn search_store(args: &SearchArgs, query: &SearchQuery, limit: usize) -> anyhow::Result<ExitCode> {
    let dir = args
        .input
        .data_dir
        .clone()
        .unwrap_or_else(crate::config::default_data_dir);
    let store = mailwarden_store::Store::open_read_only(&dir)?;
    let mut out = stdout();
    let mut found = 0usize;
    let mut raw_lines: Vec<(mailwarden_store::StoredLine, bool)> = Vec::new();
    for rec in store.search_messages(query, limit)? {
        found += 1;
        if args.lines {
            raw_lines.extend(store.message_lines(&rec, 10_000)?.into_iter().map(|l| (l, true)));
        } else if args.json {
            json_line(&mut out, &Hit::Message { record: &rec })?;
        } else {
            out.write_all(render_record(&rec).as_bytes())?;
        }
    }
    for line in store.search_lines(query, limit.saturating_sub(found))? {
        let rejection = line.with_event(|ev| {
            matches!(&ev.kind, EventKind::Postfix(p)
                if matches!(p.msg, mailwarden_core::parse::postfix::PostfixMsg::Action { .. }))
        });
        if args.lines {
            found += 1;
            raw_lines.push((line, false));
        } else if rejection {
            found += 1;
            let pos = Position {
                source: 0,
                line: line.rowid as u64,
            };
            if args.json {
                line.with_event(|ev| {
                    json_line(
                        &mut out,
                        &Hit::Rejection {
                            input: &line.source,
                            line: pos.line,
                            event: ev,
                        },
                    )
                })?;
            } else {
                out.write_all(render_rejection(&line.source, pos, &line.raw).as_bytes())?;
            }
        }
    }
    if args.lines {
        raw_lines.sort_by_key(|(a, _)| (a.ts, a.day, a.rowid));
        raw_lines.dedup_by(|(a, _), (b, _)| a.day == b.day && a.rowid == b.rowid);
        for (l, _) in &raw_lines {
            if args.json {
                #[derive(Serialize)]
                struct L<'a> {
                    input: &'a str,
                    line: i64,
                    text: &'a str,
                }
                json_line(
                    &mut out,
                    &L {
                        input: &l.source,
                        line: l.rowid,
                        text: &l.raw,
                    },
                )?;
            } else {
                writeln!(out, "{}", escape_for_terminal(&l.raw))?;
            }
        }
    }
    out.flush()?;
    eprintln!(
        "mailwarden: {found} result{} from the store in {}",
        if found == 1 { "" } else { "s" },
        dir.display()
    );
    if found == 0 {
        eprintln!("mailwarden: no match");
    }
    Ok(exit_for(false, found > 0))
}
