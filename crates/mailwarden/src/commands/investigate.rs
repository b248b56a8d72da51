//! `mailwarden investigate --sender ADDR`: gathers the evidence (from the
//! store's indexes, or by reading log files) and hands it to the core's
//! `investigate`, then prints it for people, as JSON, or as a Markdown
//! incident note.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use mailwarden_core::escape::escape_for_terminal;
use mailwarden_core::investigate::{
    Coverage, DirectoryFacts, Input, Investigation, PostureFacts, Reverification, SampleEvidence,
    account_event, gap_text, investigate as decide,
};
use mailwarden_core::sample::{Entry, SampleConfig, analyze, split_messages};
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::Stitcher;
use mailwarden_core::time::{Timestamp, days_from_civil};
use mailwarden_io::directory::{AddressInfo, AddressKind, ApiConfig, DbConfig, DirectorySource};
use mailwarden_io::mailcow::{MailcowConf, find_install};
use mailwarden_io::pipeline::now;

use super::inputs::{parse_time_arg, pipeline_config, resolve};
use super::logs::{read_lines, stitch_config};
use crate::cli::InvestigateArgs;

/// Most messages and account lines taken from the store.
const LIMIT: usize = 100_000;
/// Most bytes read of one sample file (only the headers matter).
const MAX_SAMPLE_BYTES: u64 = 64 << 20;

/// The directory to consult: an explicit list, the Mailcow API, else
/// Mailcow's database (when Mailcow is found). Shared with `detect`.
pub(crate) fn directory_source(
    dir: &crate::cli::DirectoryArgs,
) -> anyhow::Result<(Option<DirectorySource>, Option<MailcowConf>)> {
    let mailcow = find_install(dir.mailcow_dir.as_deref())
        .map(|d| MailcowConf::load(&d))
        .transpose()
        .context("reading mailcow.conf")?;
    if dir.mailcow_dir.is_some() && mailcow.is_none() {
        anyhow::bail!("no mailcow.conf in the --mailcow-dir given; fix the path");
    }
    if let Some(list) = &dir.directory {
        return Ok((Some(DirectorySource::ListFile(list.clone())), mailcow));
    }
    if let Some(url) = &dir.mailcow_api {
        let key = match &dir.mailcow_api_key_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("reading the Mailcow API key from {}", f.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            None => std::env::var("MAILCOW_API_KEY").unwrap_or_default(),
        };
        return Ok((
            Some(DirectorySource::MailcowApi(ApiConfig {
                url: url.clone(),
                key,
                ca_file: dir.mailcow_api_ca.clone(),
                connect_to: None,
                timeout: std::time::Duration::from_secs(30),
            })),
            mailcow,
        ));
    }
    let src = match &mailcow {
        Some(c) => Some(DirectorySource::MailcowDb(DbConfig::from_mailcow(c)?)),
        None => None,
    };
    Ok((src, mailcow))
}

fn facts_of(info: &AddressInfo) -> DirectoryFacts {
    let (kind, detail) = match &info.kind {
        AddressKind::Mailbox { active } => (
            "mailbox",
            if *active {
                String::new()
            } else {
                "inactive".to_owned()
            },
        ),
        AddressKind::Alias { targets, active } => (
            "alias",
            format!(
                "of {}{}",
                targets.join(", "),
                if *active { "" } else { ", inactive" }
            ),
        ),
        AddressKind::DomainAlias {
            alias_domain,
            target_domain,
            ..
        } => ("domain_alias", format!("{alias_domain} → {target_domain}")),
        AddressKind::CatchAll { targets } => ("catch_all", format!("delivered to {}", targets.join(", "))),
        AddressKind::Unknown => ("unknown", String::new()),
    };
    let mut detail = detail;
    for n in &info.notes {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(n);
    }
    DirectoryFacts {
        kind: kind.to_owned(),
        detail,
        domain_known: info.domain_known,
        may_send_as: info.may_send_as.clone(),
        source: info.source.clone(),
    }
}

/// Reads and analyses the samples (headers only, bounded).
/// A sample: its name, its header analysis and its bytes (for DNS re-verification).
type Sample = (String, mailwarden_core::sample::SampleAnalysis, Vec<u8>);

fn read_samples(args: &InvestigateArgs, cfg: &SampleConfig) -> anyhow::Result<Vec<Sample>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    for path in &args.eml {
        let mut buf = Vec::new();
        std::fs::File::open(path)
            .with_context(|| format!("cannot open the sample {}", path.display()))?
            .take(MAX_SAMPLE_BYTES)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read the sample {}", path.display()))?;
        let msgs = split_messages(&buf);
        if msgs.is_empty() {
            anyhow::bail!(
                "{}: empty; give a .eml file, an mbox or a pasted header block",
                path.display()
            );
        }
        let many = msgs.len() > 1;
        for (i, m) in msgs.into_iter().enumerate() {
            let name = if many {
                format!("{} #{}", path.display(), i + 1)
            } else {
                path.display().to_string()
            };
            out.push((name, analyze(m, cfg), m.to_vec()));
        }
    }
    Ok(out)
}

/// DKIM/SPF/DMARC of a sample checked again against DNS, for the client that
/// handed it to the first trusted server (or the earliest external hop).
fn reverify(
    rt: &tokio::runtime::Runtime,
    a: &mailwarden_core::sample::SampleAnalysis,
    raw: &[u8],
    cfg: &mailwarden_io::verify::VerifyConfig,
) -> Option<Reverification> {
    let ip: std::net::IpAddr = a.first_external_ip.as_deref()?.parse().ok()?;
    let hop = match &a.entry {
        Entry::Ours { hop_index, .. } | Entry::ClaimsOurs { hop_index, .. } => a.hops.get(*hop_index),
        _ => a
            .hops
            .iter()
            .rev()
            .find(|h| h.from_ip.as_deref() == a.first_external_ip.as_deref()),
    };
    let helo = hop.and_then(|h| h.from_helo.clone()).unwrap_or_default();
    let mail_from = a.return_path.clone().unwrap_or_default();
    let r = rt.block_on(mailwarden_io::verify::verify_message(
        raw, ip, &helo, &mail_from, cfg,
    ));
    Some(Reverification {
        ip: ip.to_string(),
        spf: r.spf.as_ref().map(|s| s.result.clone()),
        dkim: r
            .dkim
            .iter()
            .map(|d| format!("{} d={} s={}", d.result, d.domain, d.selector))
            .collect(),
        dmarc: r.dmarc.as_ref().map(|d| d.result.clone()),
        dmarc_policy: r.dmarc.as_ref().map(|d| d.policy.clone()),
        arc: r.arc.as_ref().map(|a| {
            if a.sets.is_empty() {
                a.result.clone()
            } else {
                format!("{} ({})", a.result, a.sets.join("; "))
            }
        }),
        errors: r.errors,
    })
}

/// Whether `address` is the message's envelope sender or its logged
/// header `From:` (case-insensitive, exact: a domain never matches).
fn sender_is(rec: &mailwarden_core::stitch::MessageRecord, address: &str) -> bool {
    [rec.from.as_deref(), rec.header_from.as_deref()]
        .into_iter()
        .flatten()
        .any(|f| f.eq_ignore_ascii_case(address))
}

/// The sender domain's SPF and DMARC, audited as `mailwarden dns` does.
async fn posture_of(domain: &str, resolver: Option<std::net::SocketAddr>) -> PostureFacts {
    use mailwarden_core::posture::Severity;
    use mailwarden_io::audit::{dmarc::check_dmarc, spf::check_spf};
    let mut facts = PostureFacts {
        domain: domain.to_owned(),
        ..PostureFacts::default()
    };
    let cfg = mailwarden_io::dns::DnsConfig {
        server: resolver,
        ..mailwarden_io::dns::DnsConfig::default()
    };
    let dns = match mailwarden_io::dns::DnsClient::new(&cfg) {
        Ok(d) => d,
        Err(e) => {
            facts.errors.push(e.to_string());
            return facts;
        }
    };
    let apex = dns.txt(domain).await;
    let ((spf, spf_findings), (dmarc, dmarc_findings)) =
        tokio::join!(check_spf(&dns, domain, &apex), check_dmarc(&dns, domain));
    if let [record] = spf.records.as_slice() {
        facts.spf = Some(record.clone());
    }
    facts.spf_all = spf
        .parsed
        .as_ref()
        .and_then(mailwarden_core::posture::spf::all_qualifier)
        .map(|q| format!("{}all", q.symbol()));
    if let Some(record) = &dmarc.record {
        facts.dmarc = dmarc.source.records.first().cloned();
        facts.dmarc_domain = dmarc.source.record_domain.clone();
        let own = dmarc.source.record_domain.as_deref() == Some(domain);
        let policy = if own {
            record.policy
        } else {
            record.subdomain_policy.or(record.policy)
        };
        facts.dmarc_policy = policy.map(|p| p.as_str().to_owned());
        facts.dmarc_pct = record.pct;
    }
    for f in spf_findings.into_iter().chain(dmarc_findings) {
        if f.id.ends_with("lookup-failed") {
            facts.errors.push(f.message.clone());
        }
        if f.severity >= Severity::Warning {
            facts.problems.push(f);
        }
    }
    facts
}

/// Queue ids a sample's Received lines attribute to our servers.
fn sample_queue_ids(a: &mailwarden_core::sample::SampleAnalysis) -> Vec<String> {
    let mut ids: Vec<String> = a.our_queue_ids.clone();
    if let Entry::Ours {
        queue_id: Some(q), ..
    }
    | Entry::ClaimsOurs {
        queue_id: Some(q), ..
    } = &a.entry
    {
        ids.push(q.clone());
    }
    ids.sort();
    ids.dedup();
    ids
}

/// `mailwarden investigate`.
pub fn investigate(mut args: InvestigateArgs) -> anyhow::Result<ExitCode> {
    let address = args.sender.trim().to_ascii_lowercase();
    if !address.contains('@') || address.starts_with('@') || address.ends_with('@') {
        anyhow::bail!(
            "--sender {:?} is not an address; give the full envelope sender, e.g. xyovt@example.com",
            args.sender
        );
    }
    if args.input.since.is_none() {
        args.input.since = Some("30d".to_owned());
    }
    let resolved = resolve(&args.input);
    let cfg = pipeline_config(&args.input, resolved.using_sample)?;
    let since = args
        .input
        .since
        .as_deref()
        .map(|s| parse_time_arg(s, &cfg.zone))
        .transpose()
        .context("--since")?;
    let until = match args.input.until.as_deref() {
        Some(u) => parse_time_arg(u, &cfg.zone).context("--until")?,
        None => now(),
    };
    let mut input = Input {
        address: address.clone(),
        since,
        until: Some(until),
        our_domains: args.our_domains.clone(),
        ..Input::default()
    };

    // The directory (Mailcow's database or a list), when there is one.
    let (dir_src, mailcow) = directory_source(&args.dir)?;
    if let Some(src) = &dir_src {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // After a failure the directory is not asked again: a refused
        // Mailcow API key must not be tried twice (netfilter bans).
        match rt.block_on(mailwarden_io::directory::lookup(src, &address)) {
            Ok(info) => {
                input.directory = Some(facts_of(&info));
                if input.our_domains.is_empty()
                    && let Ok(d) = rt.block_on(mailwarden_io::directory::our_domains(src))
                {
                    input.our_domains = d;
                }
            }
            Err(e) => eprintln!("mailwarden: directory not consulted: {e}"),
        }
    }

    // The samples.
    // Our hosts: given, else Mailcow's hostname, /etc/mailname and this
    // machine's name (Dovecot's LMTP writes the latter).
    let mut our_hosts = args.our_hosts.clone();
    if our_hosts.is_empty() {
        our_hosts.extend(mailcow.as_ref().and_then(|c| c.hostname()).map(str::to_owned));
        for f in ["/etc/mailname", "/proc/sys/kernel/hostname"] {
            if let Ok(h) = std::fs::read_to_string(f) {
                let h = h.trim();
                if !h.is_empty() && !our_hosts.iter().any(|o| o == h) {
                    our_hosts.push(h.to_owned());
                }
            }
        }
    }
    let sample_cfg = SampleConfig {
        our_hosts,
        our_ips: args.our_ips.clone(),
        ..SampleConfig::default()
    };
    let samples = read_samples(&args, &sample_cfg)?;
    let wanted_ids: BTreeSet<String> = samples.iter().flat_map(|(_, a, _)| sample_queue_ids(a)).collect();

    if args.input.store {
        let dir = args
            .input
            .data_dir
            .clone()
            .unwrap_or_else(crate::config::default_data_dir);
        let store = mailwarden_store::Store::open_read_only(&dir)?;
        let q = SearchQuery {
            sender: Some(address.clone()),
            since,
            until: Some(until),
            ..SearchQuery::default()
        };
        let source = format!("store {}", dir.display());
        for rec in store.search_messages(&q, LIMIT)? {
            // The index matches a domain too; investigate exact senders only.
            if sender_is(&rec, &address) {
                let s = format!("{source}, queue id {}", rec.queue_id);
                input.messages.push((rec, s));
            }
        }
        for q in &wanted_ids {
            let byq = SearchQuery {
                queue_id: Some(q.clone()),
                ..SearchQuery::default()
            };
            for rec in store.search_messages(&byq, 10)? {
                if !input.messages.iter().any(|(r, _)| r.queue_id == rec.queue_id) {
                    let s = format!("{source}, queue id {} (from the sample)", rec.queue_id);
                    input.messages.push((rec, s));
                }
            }
        }
        let mut users: BTreeSet<String> = input
            .messages
            .iter()
            .filter_map(|(r, _)| r.sasl_username.clone())
            .collect();
        users.insert(address.clone());
        for u in users {
            let q = SearchQuery {
                sasl_user: Some(u),
                since,
                until: Some(until),
                ..SearchQuery::default()
            };
            for line in store.search_lines(&q, LIMIT)? {
                let src = format!("{source}, {} row {}", line.day, line.rowid);
                if let Some(e) = line.with_event(|ev| account_event(ev, &src)) {
                    input.account_events.push(e);
                }
            }
        }
        let stats = store.stats()?;
        for d in &stats.days {
            let day = days_from_civil(d.date.year, d.date.month, d.date.day);
            input.coverage.add_day(day, d.lines);
        }
        input.coverage.sources.push(source);
    } else {
        let mut stitcher = Stitcher::new(stitch_config(&args.input, false));
        let mut names: Vec<String> = Vec::new();
        let mut pending = Vec::new();
        let mut coverage = Coverage::default();
        let mut accounts = Vec::new();
        let reports = read_lines(&args.input, &cfg, resolved, |name, pos, raw, ev| {
            if names.len() <= pos.source as usize {
                names.resize(pos.source as usize + 1, String::new());
            }
            if names[pos.source as usize].is_empty() {
                names[pos.source as usize] = name.to_owned();
            }
            if let Some(t) = ev.ts {
                coverage.add(t);
            }
            if let Some(e) = account_event(ev, &format!("{name}:{}", pos.line)) {
                accounts.push(e);
            }
            stitcher.feed(pos, raw, ev);
            while let Some(rec) = stitcher.pop() {
                pending.push(rec);
            }
        })?;
        stitcher.finish();
        while let Some(rec) = stitcher.pop() {
            pending.push(rec);
        }
        for r in &reports {
            if let Some(e) = &r.error {
                eprintln!("mailwarden: {}: {e}", r.name);
            }
        }
        for rec in pending {
            let by_sample = wanted_ids.contains(&rec.queue_id)
                || rec.reinjected_as.iter().any(|q| wanted_ids.contains(q));
            if by_sample || sender_is(&rec, &address) {
                let name = names
                    .get(rec.first_position.source as usize)
                    .cloned()
                    .unwrap_or_default();
                let s = format!("{name}:{}", rec.first_position.line);
                input.messages.push((rec, s));
            }
        }
        input.account_events = accounts;
        coverage.sources = reports.iter().map(|r| r.name.clone()).collect();
        input.coverage = coverage;
    }

    let known: BTreeSet<String> = input
        .messages
        .iter()
        .flat_map(|(r, _)| std::iter::once(r.queue_id.clone()).chain(r.reinjected_as.iter().cloned()))
        .collect();
    let verify_cfg = mailwarden_io::verify::VerifyConfig {
        resolver: args.resolver,
        ..mailwarden_io::verify::VerifyConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (name, analysis, raw) in samples {
        let matched_queue_ids = sample_queue_ids(&analysis)
            .into_iter()
            .filter(|q| known.contains(q))
            .collect();
        let reverified = if args.no_dns {
            None
        } else {
            reverify(&rt, &analysis, &raw, &verify_cfg)
        };
        input.samples.push(SampleEvidence {
            name,
            analysis,
            matched_queue_ids,
            reverified,
        });
    }
    if !args.no_dns
        && let Some((_, domain)) = address.rsplit_once('@')
    {
        input.posture = Some(rt.block_on(posture_of(domain, args.resolver)));
    }
    let inv = decide(input);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &inv).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render_text(&inv).as_bytes())?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, render_markdown(&inv))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        eprintln!("mailwarden: incident note written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn when(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "?".to_owned(), |t| t.to_string())
}

fn window(inv: &Investigation) -> String {
    format!("{} .. {}", when(inv.since), when(inv.until))
}

fn coverage_line(inv: &Investigation) -> String {
    let c = &inv.coverage;
    let mut s = match (c.first, c.last) {
        (Some(a), Some(b)) => format!("logs cover {a} .. {b}"),
        _ => "no log lines found".to_owned(),
    };
    if inv.coverage_gaps.is_empty() {
        s.push_str("; no gap inside the window");
    } else {
        let g: Vec<String> = inv.coverage_gaps.iter().map(|(a, b)| gap_text(a, b)).collect();
        let _ = write!(s, "; NOT covered inside the window: {}", g.join(", "));
    }
    s
}

/// The report for people (terminal-escaped: log content is attacker-controlled).
fn render_text(inv: &Investigation) -> String {
    let e = |s: &str| escape_for_terminal(s).into_owned();
    let mut s = String::new();
    let _ = writeln!(s, "investigate {} ({})", e(&inv.address), window(inv));
    let _ = writeln!(
        s,
        "\nVERDICT: {} (confidence {})",
        inv.verdict.as_str(),
        format!("{:?}", inv.confidence).to_lowercase()
    );
    let _ = writeln!(s, "  {}", e(&inv.summary));
    if !inv.reasons.is_empty() {
        let _ = writeln!(s, "\nwhy:");
        for r in &inv.reasons {
            let _ = writeln!(s, "  - {}", e(r));
        }
    }
    if !inv.recommendations.is_empty() {
        let _ = writeln!(s, "\nwhat to do:");
        for r in &inv.recommendations {
            let _ = writeln!(s, "  - {}", e(r));
        }
    }
    if !inv.missing.is_empty() {
        let _ = writeln!(s, "\nmissing for a firmer answer:");
        for r in &inv.missing {
            let _ = writeln!(s, "  - {}", e(r));
        }
    }
    let _ = writeln!(s, "\ncoverage: {}", e(&coverage_line(inv)));
    let _ = writeln!(s, "  sources: {}", e(&inv.coverage.sources.join(", ")));
    if !inv.accounts.is_empty() {
        let _ = writeln!(s, "\naccounts:");
        for (u, a) in &inv.accounts {
            let _ = writeln!(
                s,
                "  {:<32} {} messages, {} logins, {} failed logins; from {}{}",
                e(u),
                a.messages,
                a.logins,
                a.auth_failures,
                e(&a.client_ips.iter().cloned().collect::<Vec<_>>().join(", ")),
                if a.failing_ips.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; failures from {}",
                        e(&a.failing_ips.iter().cloned().collect::<Vec<_>>().join(", "))
                    )
                }
            );
        }
    }
    let _ = writeln!(s, "\nmessages with this sender: {}", inv.messages.len());
    for m in inv.messages.iter().take(50) {
        let who = m
            .sasl_username
            .as_deref()
            .map(|u| format!("sasl={u}"))
            .or_else(|| m.client.clone())
            .unwrap_or_default();
        let outcomes: Vec<String> = m.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "  {} {:<14} {:<22} {} -> {} rcpt ({}) {}  [{}]",
            when(m.ts),
            e(&m.queue_id),
            m.class.as_str(),
            e(&who),
            m.recipients,
            e(&m.recipient_domains.join(",")),
            outcomes.join(" "),
            e(&m.source)
        );
    }
    if inv.messages.len() > 50 {
        let _ = writeln!(s, "  … {} more (--json has all)", inv.messages.len() - 50);
    }
    if !inv.timeline.is_empty() {
        let _ = writeln!(s, "\nmessages per hour (UTC):");
        for (h, n) in &inv.timeline {
            let _ = writeln!(s, "  {h}  {n:>6}  {}", "#".repeat((*n as usize).min(60)));
        }
    }
    s
}

/// A Markdown incident note (log content is put in code spans).
fn render_markdown(inv: &Investigation) -> String {
    let code = |t: &str| format!("`{}`", t.replace('`', "'"));
    let mut s = String::new();
    let _ = writeln!(s, "# Incident note: sender {}\n", code(&inv.address));
    let _ = writeln!(s, "- Window: {}", window(inv));
    let _ = writeln!(
        s,
        "- **Verdict: {}** (confidence {})",
        inv.verdict.as_str(),
        format!("{:?}", inv.confidence).to_lowercase()
    );
    let _ = writeln!(s, "- Coverage: {}\n", coverage_line(inv));
    let _ = writeln!(s, "{}\n", inv.summary);
    for (title, items) in [
        ("Evidence", &inv.reasons),
        ("Recommended actions", &inv.recommendations),
        ("Missing evidence", &inv.missing),
    ] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## {title}\n");
        for i in items {
            let _ = writeln!(s, "- {i}");
        }
        s.push('\n');
    }
    if !inv.accounts.is_empty() {
        let _ = writeln!(
            s,
            "## Accounts\n\n| account | messages | logins | failed logins | client addresses |\n|---|---|---|---|---|"
        );
        for (u, a) in &inv.accounts {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                code(u),
                a.messages,
                a.logins,
                a.auth_failures,
                a.client_ips.iter().map(|i| code(i)).collect::<Vec<_>>().join(" ")
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "## Messages ({})\n\n| first seen | queue id | class | submitted by | recipients | outcomes | source |\n|---|---|---|---|---|---|---|",
        inv.messages.len()
    );
    for m in &inv.messages {
        let who = m
            .sasl_username
            .clone()
            .or_else(|| m.client.clone())
            .unwrap_or_default();
        let outcomes: Vec<String> = m.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:?} | {} | {} ({}) | {} | {} |",
            when(m.ts),
            code(&m.queue_id),
            m.class,
            code(&who),
            m.recipients,
            m.recipient_domains
                .iter()
                .map(|d| code(d))
                .collect::<Vec<_>>()
                .join(" "),
            outcomes.join(" "),
            code(&m.source)
        );
    }
    s
}
