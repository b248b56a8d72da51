//! The analysis for people (aligned text tables) and records as CSV.
//!
//! Everything that came from a report is attacker-controlled: text output
//! passes it through [`escape_for_terminal`] and cuts long cells; CSV
//! quotes fields and defuses spreadsheet formulas (a field starting with
//! `=`, `+`, `-`, `@`, tab or CR gets a leading `'`).

use std::fmt::Write as _;

use super::analysis::{Count, DmarcAnalysis, DomainReport, ReportStatus, SourceRow};
use super::model::{Record, ReportHeader};
use crate::escape::escape_for_terminal;

/// How much to print.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Rows per source table.
    pub top: usize,
    /// Reports listed (all repairs are listed regardless).
    pub max_reports: usize,
    /// Widest cell, in characters.
    pub max_cell: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            top: 20,
            max_reports: 50,
            max_cell: 36,
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn date(ts: i64) -> String {
    match jiff::Timestamp::from_second(ts) {
        Ok(t) => t.strftime("%Y-%m-%d").to_string(),
        Err(_) => ts.to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time.
pub fn rfc3339(ts: i64) -> String {
    match jiff::Timestamp::from_second(ts) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => ts.to_string(),
    }
}

fn range(begin: Option<i64>, end: Option<i64>) -> String {
    match (begin, end) {
        (Some(b), Some(e)) if date(b) == date(e) => date(b),
        (Some(b), Some(e)) => format!("{} .. {}", date(b), date(e)),
        (Some(b), None) => format!("from {}", date(b)),
        (None, Some(e)) => format!("until {}", date(e)),
        (None, None) => "no dates".into(),
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Escapes and cuts one cell.
fn cell(s: &str, max: usize) -> String {
    let s = escape_for_terminal(s);
    if s.chars().count() <= max {
        s.into_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn counts(c: &[Count], max_items: usize) -> String {
    if c.len() == 1 {
        return c[0].value.to_string();
    }
    let mut parts: Vec<String> = c
        .iter()
        .take(max_items)
        .map(|x| format!("{} {}", x.value, x.count))
        .collect();
    if c.len() > max_items {
        parts.push(format!("+{}", c.len() - max_items));
    }
    parts.join(", ")
}

fn names(c: &[Count], max_items: usize) -> String {
    let mut parts: Vec<&str> = c.iter().take(max_items).map(|x| &*x.value).collect();
    let more;
    if c.len() > max_items {
        more = format!("+{}", c.len() - max_items);
        parts.push(&more);
    }
    parts.join(", ")
}

fn result_cell(results: &[Count], aligned: u64, total: u64) -> String {
    let r = counts(results, 3);
    let any_pass = results.iter().any(|c| &*c.value == "pass");
    if total > 0 && aligned >= total {
        format!("{r}, aligned")
    } else if aligned == 0 {
        if any_pass { format!("{r}, unaligned") } else { r }
    } else {
        format!("{r}, aligned {aligned}")
    }
}

/// A table: header and rows, right-aligned where `numeric`.
struct Table {
    head: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[(&'static str, bool)]) -> Table {
        Table {
            head: head.iter().map(|h| h.0).collect(),
            numeric: head.iter().map(|h| h.1).collect(),
            rows: Vec::new(),
        }
    }

    fn write(&self, out: &mut String, indent: &str) {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |out: &mut String, cells: &[String]| {
            let mut s = String::from(indent);
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i].saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if self.numeric[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        let head: Vec<String> = self.head.iter().map(|h| (*h).to_owned()).collect();
        line(out, &head);
        for r in &self.rows {
            line(out, r);
        }
    }
}

fn source_table(out: &mut String, rows: &[SourceRow], o: &RenderOptions) {
    let mut t = Table::new(&[
        ("SOURCE", false),
        ("MESSAGES", true),
        ("SPF", false),
        ("DKIM", false),
        ("DISPOSITION", false),
        ("ENVELOPE FROM", false),
        ("DKIM DOMAINS", false),
        ("REPORTED BY", false),
    ]);
    for s in rows.iter().take(o.top) {
        let source = match &s.reverse_name {
            Some(n) => format!("{} ({n})", s.source_ip),
            None => s.source_ip.clone(),
        };
        t.rows.push(vec![
            cell(&source, o.max_cell + 16),
            s.messages.to_string(),
            cell(&result_cell(&s.spf, s.spf_aligned, s.messages), o.max_cell),
            cell(&result_cell(&s.dkim, s.dkim_aligned, s.messages), o.max_cell),
            cell(&counts(&s.dispositions, 3), o.max_cell),
            cell(&names(&s.envelope_from, 2), o.max_cell),
            cell(&names(&s.dkim_domains, 2), o.max_cell),
            cell(&names(&s.reporters, 3), o.max_cell),
        ]);
    }
    t.write(out, "    ");
    if rows.len() > o.top {
        let rest: u64 = rows[o.top..].iter().map(|s| s.messages).sum();
        let _ = writeln!(
            out,
            "    … and {} more source(s) with {rest} message(s) (--top N, or --json for all)",
            rows.len() - o.top
        );
    }
}

fn domain_section(out: &mut String, d: &DomainReport, o: &RenderOptions) {
    let dom = escape_for_terminal(&d.domain);
    let policy = d.policy.as_ref().map(|p| p.summary()).unwrap_or_default();
    let _ = writeln!(
        out,
        "{dom}{}",
        if policy.is_empty() {
            String::new()
        } else {
            format!(" — {}", escape_for_terminal(&policy))
        }
    );
    let _ = writeln!(
        out,
        "  {} report(s) from {} organisation(s) ({}), {} (UTC)",
        d.reports,
        d.reporters.len(),
        cell(&names(&d.reporters, 4), 80),
        range(d.begin, d.end)
    );
    let _ = writeln!(
        out,
        "  messages {}: authorized {} ({}), failing {} ({}); disposition: {}",
        d.messages,
        d.authorized,
        pct(d.authorized, d.messages),
        d.failing,
        pct(d.failing, d.messages),
        cell(&counts(&d.dispositions, 4), 80)
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "  Failing DMARC — sending as {dom} without aligned SPF or DKIM (largest first)"
    );
    if d.failing_sources.is_empty() {
        out.push_str("    (none)\n");
    } else {
        source_table(out, &d.failing_sources, o);
    }
    let _ = writeln!(out, "  Authorized — DMARC pass (largest first)");
    if d.authorized_sources.is_empty() {
        out.push_str("    (none)\n");
    } else {
        source_table(out, &d.authorized_sources, o);
    }
    if !d.days.is_empty() {
        let _ = writeln!(out, "  Per day (UTC, by report start)");
        let mut t = Table::new(&[
            ("DAY", false),
            ("MESSAGES", true),
            ("AUTHORIZED", true),
            ("FAILING", true),
        ]);
        for day in &d.days {
            t.rows.push(vec![
                day.date.clone(),
                day.messages.to_string(),
                day.authorized.to_string(),
                day.failing.to_string(),
            ]);
        }
        t.write(out, "    ");
    }
    out.push('\n');
}

/// The whole analysis as text.
pub fn render_text(a: &DmarcAnalysis, o: &RenderOptions) -> String {
    let mut out = String::new();
    let t = &a.totals;
    let _ = writeln!(
        out,
        "DMARC aggregate reports: {} report(s), {} record(s), {} message(s): authorized {} ({}), failing {} ({})",
        t.reports,
        t.records,
        t.messages,
        t.authorized,
        pct(t.authorized, t.messages),
        t.failing,
        pct(t.failing, t.messages)
    );
    out.push('\n');
    for d in &a.domains {
        domain_section(&mut out, d, o);
    }
    if !a.tls.is_empty() {
        let _ = writeln!(out, "SMTP TLS reports: {}", t.tls_reports);
        for d in &a.tls {
            let _ = writeln!(
                out,
                "  {} — {} report(s) from {}, {} (UTC); policy {}",
                escape_for_terminal(&d.policy_domain),
                d.reports,
                cell(&names(&d.reporters, 4), 80),
                range(d.begin, d.end),
                cell(&names(&d.policy_types, 3), 40)
            );
            let total = d.successful.saturating_add(d.failed);
            let _ = writeln!(
                out,
                "    sessions {total}: successful {}, failed {} ({})",
                d.successful,
                d.failed,
                pct(d.failed, total)
            );
            if !d.failure_types.is_empty() {
                let _ = writeln!(
                    out,
                    "    failure types: {}",
                    cell(&counts(&d.failure_types, 8), 200)
                );
                let mut tb = Table::new(&[
                    ("SESSIONS", true),
                    ("RESULT", false),
                    ("RECEIVING MX", false),
                    ("RECEIVING IP", false),
                    ("SENDING IP", false),
                    ("CODE", false),
                ]);
                for f in d.failures.iter().take(o.top) {
                    tb.rows.push(vec![
                        f.sessions.to_string(),
                        cell(&f.result_type, o.max_cell),
                        cell(f.receiving_mx_hostname.as_deref().unwrap_or("-"), o.max_cell),
                        cell(f.receiving_ip.as_deref().unwrap_or("-"), o.max_cell),
                        cell(f.sending_mta_ip.as_deref().unwrap_or("-"), o.max_cell),
                        cell(f.failure_reason_code.as_deref().unwrap_or("-"), o.max_cell),
                    ]);
                }
                tb.write(&mut out, "    ");
                if d.failures.len() > o.top {
                    let _ = writeln!(out, "    … and {} more row(s)", d.failures.len() - o.top);
                }
            }
        }
        out.push('\n');
    }
    if !a.reports.is_empty() {
        let _ = writeln!(out, "Reports read");
        let mut tb = Table::new(&[
            ("KIND", false),
            ("ORG", false),
            ("REPORT ID", false),
            ("DOMAIN", false),
            ("RANGE (UTC)", false),
            ("RECORDS", true),
            ("MESSAGES", true),
            ("STATUS", false),
        ]);
        for r in a.reports.iter().take(o.max_reports) {
            let quality = if r.notes.iter().any(|n| n.kind.is_repair()) {
                "repaired"
            } else if r.notes.is_empty() {
                "ok"
            } else {
                "noted"
            };
            let status = match (&r.status, r.stored) {
                (ReportStatus::Duplicate { .. }, _) => "duplicate".to_owned(),
                (ReportStatus::Counted, Some(s)) => format!("{quality}, {s}"),
                (ReportStatus::Counted, None) => quality.to_owned(),
            };
            tb.rows.push(vec![
                r.kind.to_owned(),
                cell(&r.org, 24),
                cell(&r.report_id, 28),
                cell(&r.domains.join(","), 28),
                range((r.begin > 0).then_some(r.begin), (r.end > 0).then_some(r.end)),
                r.records.to_string(),
                r.messages.to_string(),
                status,
            ]);
        }
        tb.write(&mut out, "  ");
        if a.reports.len() > o.max_reports {
            let _ = writeln!(
                out,
                "  … and {} more (--json lists all)",
                a.reports.len() - o.max_reports
            );
        }
        let noted: Vec<_> = a.reports.iter().filter(|r| !r.notes.is_empty()).collect();
        if !noted.is_empty() {
            let _ = writeln!(out, "  Repairs and notes:");
            for r in noted.iter().take(200) {
                for n in &r.notes {
                    let _ = writeln!(
                        out,
                        "    {}: {}",
                        cell(&r.source, 120),
                        escape_for_terminal(&n.detail)
                    );
                }
            }
            if noted.len() > 200 {
                let _ = writeln!(
                    out,
                    "    … and {} more report(s) with notes (--json)",
                    noted.len() - 200
                );
            }
        }
        let dups: Vec<_> = a
            .reports
            .iter()
            .filter_map(|r| match &r.status {
                ReportStatus::Duplicate { of } => Some((r, of)),
                ReportStatus::Counted => None,
            })
            .collect();
        if !dups.is_empty() {
            let _ = writeln!(out, "  Read twice, counted once:");
            for (r, of) in dups.iter().take(50) {
                let _ = writeln!(
                    out,
                    "    {} (same report as {})",
                    cell(&r.source, 120),
                    cell(of, 120)
                );
            }
            if dups.len() > 50 {
                let _ = writeln!(out, "    … and {} more", dups.len() - 50);
            }
        }
    }
    out
}

/// The CSV columns.
pub const CSV_HEADER: &str = "report_org,report_id,begin,end,domain,source_ip,count,disposition,dkim,spf,header_from,envelope_from,dkim_domains,dkim_results,spf_domains,spf_results";

fn csv_field(out: &mut String, s: &str) {
    let defuse = s
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let quote = defuse || s.contains([',', '"', '\n', '\r']);
    if !quote {
        out.push_str(s);
        return;
    }
    out.push('"');
    if defuse {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends one CSV row (with its newline) for a record of a report.
pub fn csv_row(out: &mut String, h: &ReportHeader, r: &Record) {
    let join = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(";");
    let fields: [String; 16] = [
        super::analysis::reporter_name(h),
        h.metadata.report_id.clone(),
        rfc3339(h.metadata.begin),
        rfc3339(h.metadata.end),
        h.policy.domain.clone(),
        r.source_ip.clone(),
        r.count.to_string(),
        r.disposition.clone().unwrap_or_default(),
        r.dkim.clone().unwrap_or_default(),
        r.spf.clone().unwrap_or_default(),
        r.header_from.clone().unwrap_or_default(),
        r.envelope_from.clone().unwrap_or_default(),
        join(&mut r.dkim_results.iter().map(|d| d.domain.as_str())),
        join(&mut r.dkim_results.iter().map(|d| d.result.as_str())),
        join(&mut r.spf_results.iter().map(|d| d.domain.as_str())),
        join(&mut r.spf_results.iter().map(|d| d.result.as_str())),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push('\n');
}
