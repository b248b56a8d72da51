//! `mailwarden dns`: the DNS audit of one or more domains' mail
//! authentication (SPF, DKIM, DMARC, TLS-RPT, BIMI, MX and reverse DNS,
//! DNSBL, MTA-STS). Flags become an [`AuditConfig`]; the audit itself lives
//! in `mailwarden_io::audit`; this module prints the reports (grouped by
//! area, worst first, the SPF lookup tree drawn) or JSON lines, and maps
//! the outcome to the exit code.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::posture::spf::render_tree;
use mailwarden_core::posture::{Area, Finding, Severity, domain};
use mailwarden_io::audit::dnsbl::DnsblConfig;
use mailwarden_io::audit::domain::{AuditConfig, DomainReport, audit_domains};
use mailwarden_io::audit::mta_sts::{HttpsConfig, tls_client_config};
use mailwarden_io::dns::{DnsConfig, parse_server};

use crate::output;

const EXAMPLES: &str = "\
Examples:
  mailwarden dns example.com
      Full audit with the system's resolver; DKIM keys are looked up at the
      common selectors (dkim, default, selector1, selector2, google, k1, s1,
      s2, mail).
  mailwarden dns example.com --selector dkim --selector 2024a
      Also check the keys of these selectors (the s= tag of a DKIM-Signature
      header of a mail you sent).
  mailwarden dns example.com example.org shop.example.com --json | jq .score
      Several domains at once; one JSON object per line.
  mailwarden dns example.com --resolver 9.9.9.9 --no-dnsbl
      Ask one resolver; skip the blocklists (public resolvers are refused by
      most of them).
  mailwarden dns example.com --dnsbl zen.spamhaus.org --dnsbl bl.spamcop.net
      Check the MX addresses against these blocklists only.

Severities: fail (broken or spoofable: receivers will not enforce, or mail
fails), warning (weakens protection; fix it), info (worth knowing), pass
(verified). Every finding has a stable id (spf.lookups.exceeded,
dmarc.policy.none, dkim.key.short, ...) usable in scripts.

The score is 100 minus a penalty per failure and warning, weighted by area
(SPF and DMARC weigh most).

Exit status: 0 no failures, 1 at least one finding is `fail`, 2 errors (bad
flags, a resolver that does not answer, unreadable --ca-file).";

/// Flags of `mailwarden dns`.
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct DnsArgs {
    /// The domains to audit: the domains in your From: addresses.
    /// Internationalized names may be given in Unicode.
    #[arg(value_name = "DOMAIN", required = true)]
    pub domains: Vec<String>,
    /// A DKIM selector to check (repeatable, or comma-separated): the s= tag
    /// of the DKIM-Signature header of a mail you sent. A given selector
    /// without key is a failure; the common selectors are probed as well.
    #[arg(
        long = "selector",
        short = 's',
        value_name = "SELECTOR",
        value_delimiter = ','
    )]
    pub selectors: Vec<String>,
    /// Look up only the selectors given with --selector, not the common ones.
    #[arg(long)]
    pub no_common_selectors: bool,
    /// The DNS server to ask (a recursive resolver), IP or IP:PORT.
    /// Default: the resolvers in /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_server)]
    pub resolver: Option<SocketAddr>,
    /// One JSON object per domain and line: domain, score, worst, findings,
    /// and the parsed records (SPF lookup tree included).
    #[arg(long)]
    pub json: bool,
    /// A DNS blocklist zone to check the MX addresses in (repeatable); the
    /// list given replaces the default one.
    #[arg(long = "dnsbl", value_name = "ZONE", conflicts_with = "no_dnsbl")]
    pub dnsbl: Vec<String>,
    /// Do not check blocklists.
    #[arg(long)]
    pub no_dnsbl: bool,
    /// A PEM file with extra CA certificates to trust when fetching MTA-STS
    /// policies (repeatable), e.g. a private CA.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// The HTTPS port of MTA-STS policy hosts (tests only).
    #[arg(long, hide = true, default_value_t = 443)]
    pub mta_sts_port: u16,
    /// Timeout per DNS query and for each MTA-STS fetch, e.g. 5s or 800ms.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Domains audited at the same time.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

/// Parses `5s`, `800ms`, `2` (seconds).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 5s or 800ms"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err(format!("`{s}`: the timeout must be between 1ms and 10m"));
    }
    Ok(d)
}

/// Turns a domain as typed into its normalized ASCII form.
fn normalize_domain(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim().trim_end_matches('.');
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed)
            .map_err(|_| anyhow::anyhow!("`{text}` is not a valid internationalized domain name"))?
    };
    domain::normalize(&ascii).map_err(|e| anyhow::anyhow!("`{text}` is not a domain name: {e}"))
}

/// Runs `mailwarden dns`.
pub fn dns(args: DnsArgs) -> anyhow::Result<ExitCode> {
    let mut domains = Vec::new();
    for d in &args.domains {
        let d = normalize_domain(d)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    for s in &args.selectors {
        let s = s.trim();
        if s.is_empty() || domain::check_name(&s.to_ascii_lowercase()).is_err() {
            anyhow::bail!(
                "--selector `{s}` is not a valid selector (letters, digits, `-`, `_`, dots between labels)"
            );
        }
    }
    let https = HttpsConfig {
        extra_roots: args.ca_files.clone(),
        port: args.mta_sts_port,
        timeout: args.timeout.max(Duration::from_secs(1)),
        ..HttpsConfig::default()
    };
    // Reject unreadable CA files before any lookup.
    tls_client_config(&https).context("--ca-file")?;
    let dnsbl = if args.no_dnsbl {
        None
    } else if args.dnsbl.is_empty() {
        Some(DnsblConfig::default())
    } else {
        let mut zones = Vec::new();
        for z in &args.dnsbl {
            zones.push(domain::normalize(z).map_err(|e| anyhow::anyhow!("--dnsbl `{z}`: {e}"))?);
        }
        Some(DnsblConfig { zones })
    };
    let cfg = AuditConfig {
        selectors: args
            .selectors
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        common_selectors: !args.no_common_selectors,
        dnsbl,
        https,
    };
    let dns_cfg = DnsConfig {
        server: args.resolver,
        timeout: args.timeout,
        attempts: 2,
    };
    // Several domains keep more than one core busy (a UDP socket per query,
    // TLS for MTA-STS); one domain does not need more than one thread.
    let threads = if domains.len() > 1 {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = rt
        .block_on(audit_domains(
            &dns_cfg,
            &domains,
            &cfg,
            usize::from(args.concurrency),
        ))
        .context("the DNS resolver")?;

    let mut out = output::stdout();
    let mut errors = 0;
    let mut failed = false;
    let mut summary = Vec::new();
    for (domain, result) in domains.iter().zip(results) {
        match result {
            Ok(report) => {
                failed |= report.worst == Severity::Fail;
                summary.push((
                    report.domain.clone(),
                    report.score,
                    report.worst,
                    report.dns_queries,
                ));
                if args.json {
                    output::json_line(&mut out, &report)?;
                } else {
                    out.write_all(render_report(&report).as_bytes())?;
                }
            }
            Err(e) => {
                errors += 1;
                if args.json {
                    output::json_line(
                        &mut out,
                        &serde_json::json!({ "domain": domain, "error": e.to_string() }),
                    )?;
                }
                eprintln!("mailwarden: error: {e}");
            }
        }
    }
    if !args.json && summary.len() > 1 {
        out.write_all(render_summary(&summary).as_bytes())?;
    }
    out.flush()?;
    Ok(if errors > 0 {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The short label of a severity in text reports (shared with `doctor`).
pub(crate) fn label(s: Severity) -> &'static str {
    match s {
        Severity::Fail => "FAIL",
        Severity::Warning => "WARN",
        Severity::Info => "info",
        Severity::Pass => "ok",
    }
}

fn area_title(a: Area) -> &'static str {
    match a {
        Area::Spf => "SPF",
        Area::Dkim => "DKIM",
        Area::Dmarc => "DMARC",
        Area::MtaSts => "MTA-STS",
        Area::TlsRpt => "TLS-RPT",
        Area::Mx => "MX",
        Area::Ptr => "Reverse DNS",
        Area::Dnsbl => "Blocklists",
        Area::Bimi => "BIMI",
        Area::Dnssec => "DNSSEC / DANE",
        Area::Dns => "DNS",
    }
}

/// Most evidence lines shown per finding in the text report.
const MAX_EVIDENCE: usize = 6;
/// Longest evidence line shown (a TXT record can be 64 KiB); JSON has it whole.
const MAX_EVIDENCE_CHARS: usize = 400;

fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} bytes, see --json)", &text[..cut], text.len()).into(),
        None => text.into(),
    }
}

/// The human report of one domain: a header with the score, then the
/// areas, worst first, each with its findings worst first; the SPF lookup
/// tree under SPF.
pub fn render_report(report: &DomainReport) -> String {
    let mut s = String::new();
    let esc = |t: &str| escape_for_terminal(t).into_owned();
    let counts = |sev: Severity| report.findings.iter().filter(|f| f.severity == sev).count();
    let _ = writeln!(
        s,
        "{}  score {}/100  worst: {}  ({} fail, {} warning, {} DNS queries)",
        esc(&report.domain),
        report.score,
        report.worst.as_str(),
        counts(Severity::Fail),
        counts(Severity::Warning),
        report.dns_queries,
    );
    let mut areas: Vec<Area> = Vec::new();
    for f in &report.findings {
        if !areas.contains(&f.area) {
            areas.push(f.area);
        }
    }
    let worst_of = |a: Area| {
        report
            .findings
            .iter()
            .filter(|f| f.area == a)
            .map(|f| f.severity)
            .max()
    };
    // Worst area first; ties keep the audit order.
    areas.sort_by_key(|a| std::cmp::Reverse(worst_of(*a)));
    let has_tree = report.spf.tree.as_ref().is_some_and(|t| !t.children.is_empty());
    for area in areas {
        let _ = writeln!(s, "\n{}", area_title(area));
        let mut findings: Vec<&Finding> = report.findings.iter().filter(|f| f.area == area).collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in findings {
            let _ = write!(s, "  {:<4}  {}  {}", label(f.severity), f.id, esc(&f.message));
            if f.subject != report.domain {
                let _ = write!(s, "  [{}]", esc(&f.subject));
            }
            s.push('\n');
            if let Some(fix) = &f.fix
                && f.severity >= Severity::Warning
            {
                let _ = writeln!(s, "        fix: {}", esc(fix));
            }
            for e in f.evidence.iter().take(MAX_EVIDENCE) {
                let _ = writeln!(s, "        · {}", esc(&clip(e, MAX_EVIDENCE_CHARS)));
            }
            if f.evidence.len() > MAX_EVIDENCE {
                let _ = writeln!(
                    s,
                    "        · … {} more (see --json)",
                    f.evidence.len() - MAX_EVIDENCE
                );
            }
        }
        if area == Area::Spf
            && has_tree
            && let Some(tree) = &report.spf.tree
        {
            let _ = writeln!(s, "  lookup tree (DNS lookups per term, limit 10):");
            for line in render_tree(tree) {
                let _ = writeln!(s, "    {}", esc(&line));
            }
        }
    }
    s.push('\n');
    s
}

fn render_summary(rows: &[(String, u8, Severity, u64)]) -> String {
    let width = rows.iter().map(|(d, ..)| d.len()).max().unwrap_or(0);
    let queries: u64 = rows.iter().map(|r| r.3).sum();
    let mut s = format!("Summary ({} domains, {queries} DNS queries)\n", rows.len());
    for (d, score, worst, _) in rows {
        let _ = writeln!(
            s,
            "  {:<width$}  {:>3}/100  {}",
            escape_for_terminal(d),
            score,
            label(*worst)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("5h").unwrap_err().contains("unit"));
        assert!(parse_timeout("fast").is_err());
    }

    #[test]
    fn domains() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            normalize_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(normalize_domain("bad domain").is_err());
        assert!(normalize_domain("").is_err());
    }
}
