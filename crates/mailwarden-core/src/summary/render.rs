//! The summary as text for people: pflogsumm's sections in pflogsumm's order,
//! then the sections it lacks. Every string that came from a log is escaped
//! for the terminal.

use std::fmt::Write;

use super::{Counted, LevelGroup, ReasonGroup, Summary};
use crate::escape::escape_for_terminal;

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    escape_for_terminal(s)
}

/// Bytes the way pflogsumm prints them: plain below 100 kB, then `k`, `m`, `g`.
pub fn human_bytes(b: u64) -> String {
    if b < 100_000 {
        b.to_string()
    } else if b < 100_000_000 {
        format!("{}k", b / 1024)
    } else if b < 100_000_000_000 {
        format!("{}m", b / (1024 * 1024))
    } else {
        format!("{}g", b / (1024 * 1024 * 1024))
    }
}

fn human_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} m", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn hms(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "-".repeat(title.chars().count()));
}

fn counted_list(out: &mut String, title: &str, rows: &[Counted], with_bytes: bool) {
    heading(out, title);
    if rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    for r in rows {
        if with_bytes {
            let _ = writeln!(
                out,
                "  {:>7}  {:>8}  {}",
                r.count,
                human_bytes(r.bytes),
                esc(&r.key)
            );
        } else {
            let _ = writeln!(out, "  {:>7}  {}", r.count, esc(&r.key));
        }
    }
}

fn bytes_list(out: &mut String, title: &str, rows: &[Counted]) {
    heading(out, title);
    if rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    for r in rows {
        let _ = writeln!(out, "  {:>8}  {}", human_bytes(r.bytes), esc(&r.key));
    }
}

fn reason_list(out: &mut String, title: &str, rows: &[ReasonGroup], top: usize) {
    heading(out, title);
    if rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    for g in rows.iter().take(top.max(1) * 2) {
        let _ = writeln!(out, "  {:>7}  {}: {}", g.count, esc(&g.scope), esc(&g.reason));
        for c in &g.top {
            let _ = writeln!(out, "  {:>15}  {}", c.count, esc(&c.key));
        }
    }
}

fn level_list(out: &mut String, title: &str, rows: &[LevelGroup]) {
    heading(out, title);
    if rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let mut last = "";
    let mut shown = 0;
    for g in rows {
        if g.program != last {
            let _ = writeln!(out, "  {}", esc(&g.program));
            last = &g.program;
            shown = 0;
        }
        if shown < 10 {
            let _ = writeln!(out, "  {:>9}  {}", g.count, esc(&g.text));
        }
        shown += 1;
    }
}

/// Renders the summary as a text report.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(out, "mailwarden log summary");
    match (s.first, s.last) {
        (Some(f), Some(l)) => {
            let _ = writeln!(out, "period: {f} .. {l}");
        }
        _ => out.push_str("period: (no timestamps)\n"),
    }
    let _ = writeln!(
        out,
        "lines: {} read, {} events, {} unparsed",
        s.lines.total, s.lines.events, s.lines.unparsed
    );
    if !s.lines.by_family.is_empty() {
        let fams: Vec<String> = s
            .lines
            .by_family
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        let _ = writeln!(out, "events by family: {}", fams.join(", "));
    }

    let t = &s.totals;
    heading(&mut out, "Grand Totals");
    out.push_str("messages\n\n");
    let pct = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 * 100.0 / d as f64 };
    let _ = writeln!(
        out,
        "  {:>7}   received ({} submitted locally)",
        t.received, t.received_local
    );
    let _ = writeln!(
        out,
        "  {:>7}   delivered ({} to other servers)",
        t.delivered, t.delivered_remote
    );
    let _ = writeln!(out, "  {:>7}   forwarded", t.forwarded);
    let _ = writeln!(out, "  {:>7}   deferred  ({} deferrals)", t.deferred, t.deferrals);
    let _ = writeln!(out, "  {:>7}   bounced", t.bounced);
    let _ = writeln!(
        out,
        "  {:>7}   rejected ({:.0}%): {} smtpd, {} postscreen, {} content (milter/header checks)",
        t.rejected,
        pct(t.rejected, t.rejected + t.received),
        t.rejected_smtpd,
        t.rejected_postscreen,
        t.rejected_content
    );
    let _ = writeln!(out, "  {:>7}   reject warnings", t.reject_warnings);
    let _ = writeln!(out, "  {:>7}   held", t.held);
    let _ = writeln!(out, "  {:>7}   discarded", t.discarded);
    let _ = writeln!(out, "  {:>7}   expired", t.expired);
    let _ = writeln!(
        out,
        "  {:>7}   notifications generated (bounce/delay DSNs)",
        t.notifications
    );
    out.push('\n');
    let _ = writeln!(out, "  {:>7}   bytes received", human_bytes(t.bytes_received));
    let _ = writeln!(out, "  {:>7}   bytes delivered", human_bytes(t.bytes_delivered));
    let _ = writeln!(out, "  {:>7}   senders", t.senders);
    let _ = writeln!(out, "  {:>7}   sending hosts/domains", t.sending_domains);
    let _ = writeln!(out, "  {:>7}   recipients", t.recipients);
    let _ = writeln!(out, "  {:>7}   recipient hosts/domains", t.recipient_domains);
    out.push('\n');
    let _ = writeln!(
        out,
        "  {:>7}   re-injected copies merged (content filter; pflogsumm counts these twice)",
        t.reinjections_merged
    );
    let _ = writeln!(
        out,
        "  {:>7}   messages still queued or cut off when the input ended (or evicted)",
        t.incomplete
    );
    let _ = writeln!(
        out,
        "  {:>7}   abandoned before DATA (client= logged, nothing queued; pflogsumm counts these as received)",
        t.abandoned
    );

    let sm = &s.smtpd;
    out.push_str("\nsmtpd\n\n");
    let _ = writeln!(
        out,
        "  {:>7}   connections ({} from loopback)",
        sm.connections, sm.loopback_connections
    );
    let _ = writeln!(out, "  {:>7}   hosts/domains", sm.hosts);
    let _ = writeln!(out, "  {:>7.1}   avg. connect time (seconds)", sm.avg_seconds);
    let _ = writeln!(out, "  {:>7}   total connect time", hms(sm.total_seconds));
    let _ = writeln!(out, "  {:>7}   TLS sessions", sm.tls_sessions);

    heading(&mut out, "Per-Day Traffic Summary");
    let _ = writeln!(
        out,
        "    {:<12} {:>9} {:>10} {:>9} {:>8} {:>9}",
        "date", "received", "delivered", "deferred", "bounced", "rejected"
    );
    for d in &s.per_day {
        let date = d
            .date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "(no time)".into());
        let _ = writeln!(
            out,
            "    {:<12} {:>9} {:>10} {:>9} {:>8} {:>9}",
            date, d.received, d.delivered, d.deferred, d.bounced, d.rejected
        );
    }

    heading(&mut out, "Per-Hour Traffic Daily Average");
    let _ = writeln!(
        out,
        "    {:<12} {:>9} {:>10} {:>9} {:>8} {:>9}",
        "time", "received", "delivered", "deferred", "bounced", "rejected"
    );
    for h in &s.per_hour {
        let _ = writeln!(
            out,
            "    {:02}00-{:02}00    {:>9.0} {:>10.0} {:>9.0} {:>8.0} {:>9.0}",
            h.hour,
            h.hour + 1,
            h.received,
            h.delivered,
            h.deferred,
            h.bounced,
            h.rejected
        );
    }

    heading(&mut out, "Host/Domain Summary: Message Delivery");
    if s.delivery_domains.is_empty() {
        out.push_str("  none\n");
    } else {
        let _ = writeln!(
            out,
            "  {:>8} {:>8} {:>7} {:>7} {:>9} {:>9}  domain",
            "sent", "bytes", "defers", "bounce", "avg dly", "max dly"
        );
        for d in &s.delivery_domains {
            let _ = writeln!(
                out,
                "  {:>8} {:>8} {:>7} {:>7} {:>9} {:>9}  {}",
                d.sent,
                human_bytes(d.bytes),
                d.deferred,
                d.bounced,
                human_secs(d.avg_delay),
                human_secs(d.max_delay),
                esc(&d.domain)
            );
        }
    }
    counted_list(
        &mut out,
        "Host/Domain Summary: Messages Received",
        &s.received_domains,
        true,
    );
    heading(&mut out, "Per-Day SMTPD Connection Summary");
    let _ = writeln!(
        out,
        "    {:<12} {:>11} {:>12} {:>10} {:>9}",
        "date", "connections", "time conn.", "avg./conn.", "max. time"
    );
    for d in &sm.per_day {
        let date = d
            .date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "(no time)".into());
        let avg = if d.connections > 0 {
            d.total_seconds / d.connections as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "    {:<12} {:>11} {:>12} {:>9.0}s {:>8.0}s",
            date,
            d.connections,
            hms(d.total_seconds),
            avg,
            d.max_seconds
        );
    }
    heading(&mut out, "Per-Hour SMTPD Connection Daily Average");
    let _ = writeln!(
        out,
        "    {:<12} {:>11} {:>12}",
        "hour", "connections", "time conn."
    );
    for (h, (c, t)) in sm.per_hour.iter().enumerate() {
        let _ = writeln!(
            out,
            "    {:02}00-{:02}00    {:>11.0} {:>12}",
            h,
            h + 1,
            c,
            hms(*t)
        );
    }
    heading(&mut out, "Host/Domain Summary: SMTPD Connections");
    let _ = writeln!(
        out,
        "  {:>11} {:>11} {:>11} {:>10}  host/domain",
        "connections", "time conn.", "avg./conn.", "max. time"
    );
    for h in &sm.top_hosts {
        let avg = if h.connections > 0 {
            h.total_seconds / h.connections as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "  {:>11} {:>11} {:>10.0}s {:>9.0}s  {}",
            h.connections,
            hms(h.total_seconds),
            avg,
            h.max_seconds,
            esc(&h.host)
        );
    }
    counted_list(&mut out, "Top Senders by message count", &s.top_senders, false);
    counted_list(
        &mut out,
        "Top Recipients by message count",
        &s.top_recipients,
        false,
    );
    bytes_list(&mut out, "Top Senders by message size", &s.top_senders_by_size);
    bytes_list(
        &mut out,
        "Top Recipients by message size",
        &s.top_recipients_by_size,
    );
    reason_list(
        &mut out,
        "Message deferral detail (by recipient domain)",
        &s.deferrals,
        10,
    );
    reason_list(&mut out, "Message bounce detail (by relay)", &s.bounces, 10);
    reason_list(&mut out, "Message reject detail", &s.rejects, 10);
    counted_list(&mut out, "Rejects by client", &s.reject_clients, false);
    counted_list(&mut out, "SMTP sessions ended early", &sm.aborted, false);
    counted_list(
        &mut out,
        "Non-SMTP commands (probes) by client",
        &sm.non_smtp_commands,
        false,
    );
    level_list(&mut out, "Warnings", &s.warnings);
    level_list(&mut out, "Errors", &s.errors);
    level_list(&mut out, "Fatal Errors", &s.fatals);
    level_list(&mut out, "Panics", &s.panics);
    level_list(&mut out, "Master daemon messages", &s.master);

    // What pflogsumm lacks.
    let ps = &s.postscreen;
    heading(&mut out, "postscreen and DNSBLs");
    let _ = writeln!(out, "  {:>7}   connections", ps.connections);
    let _ = writeln!(
        out,
        "  {:>7}   passed new tests, {} passed from cache",
        ps.pass_new, ps.pass_old
    );
    let _ = writeln!(
        out,
        "  {:>7}   talked before the greeting (PREGREET)",
        ps.pregreet
    );
    let _ = writeln!(out, "  {:>7}   scored by DNSBLs", ps.dnsbl_ranked);
    let _ = writeln!(out, "  {:>7}   hung up during tests", ps.hangups);
    let _ = writeln!(out, "  {:>7}   rejected", ps.rejected);
    for v in &ps.violations {
        let _ = writeln!(out, "  {:>7}   {}", v.count, esc(&v.key));
    }
    for v in &ps.listed {
        let _ = writeln!(out, "  {:>7}   {}", v.count, esc(&v.key));
    }
    counted_list(
        &mut out,
        "DNSBL listings by zone (dnsblog)",
        &ps.dnsbl_zones,
        false,
    );
    counted_list(
        &mut out,
        "Most-listed client addresses",
        &ps.top_listed_clients,
        false,
    );

    heading(&mut out, "Authenticated submission by SASL user");
    if s.sasl.users.is_empty() {
        out.push_str("  none\n");
    } else {
        let _ = writeln!(
            out,
            "  {:>8} {:>10} {:>8} {:>8} {:>8} {:>5} {:>7}  user",
            "messages", "recipients", "remote", "domains", "bytes", "IPs", "senders"
        );
        for u in &s.sasl.users {
            let _ = writeln!(
                out,
                "  {:>8} {:>10} {:>8} {:>8} {:>8} {:>5} {:>7}  {}",
                u.messages,
                u.recipients,
                u.remote_recipients,
                u.recipient_domains,
                human_bytes(u.bytes),
                u.client_ips,
                u.envelope_senders,
                esc(&u.user)
            );
        }
    }
    let _ = writeln!(out, "\n  {} failed SASL attempts", s.sasl.failures);
    counted_list(
        &mut out,
        "Failed SASL attempts by client",
        &s.sasl.failures_by_client,
        false,
    );
    counted_list(
        &mut out,
        "Failed SASL attempts by user name",
        &s.sasl.failures_by_user,
        false,
    );
    counted_list(
        &mut out,
        "Sessions with failed AUTH (disconnect auth=0/N) by client",
        &s.sasl.failed_auth_sessions,
        false,
    );

    heading(&mut out, "Senders that never authenticated");
    let locals = if s.local_domains.is_empty() {
        "none known; pass --local-domain".to_owned()
    } else {
        s.local_domains
            .iter()
            .map(|d| esc(d).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  local domains: {locals}");
    if s.unauthenticated_senders.is_empty() {
        out.push_str("  none\n");
    }
    for u in &s.unauthenticated_senders {
        let flag = if u.claims_local_domain {
            "  << claims a local domain without login"
        } else {
            ""
        };
        let clients: Vec<_> = u.clients.iter().map(|c| esc(c).into_owned()).collect();
        let _ = writeln!(
            out,
            "  {:>7}  {}  from {}{}",
            u.messages,
            esc(&u.sender),
            clients.join(", "),
            flag
        );
    }
    heading(&mut out, "Unauthenticated mail relayed to other servers");
    if s.unauthenticated_relay.is_empty() {
        out.push_str("  none (no open-relay indication)\n");
    }
    for r in &s.unauthenticated_relay {
        let _ = writeln!(
            out,
            "  {:>7} messages, {:>5} recipients  client {}  sender {}",
            r.messages,
            r.recipients,
            esc(&r.client),
            esc(&r.sender)
        );
    }
    counted_list(&mut out, "Dovecot logins by user", &s.dovecot_logins, false);
    counted_list(
        &mut out,
        "Dovecot authentication failures by client",
        &s.dovecot_failures_by_client,
        false,
    );
    counted_list(
        &mut out,
        "Dovecot authentication failures by user name",
        &s.dovecot_failures_by_user,
        false,
    );
    counted_list(
        &mut out,
        "Dovecot auth-process rejections by user",
        &s.dovecot_auth_rejects,
        false,
    );
    counted_list(&mut out, "Content-scanner verdicts", &s.scanner_verdicts, false);

    heading(&mut out, "Unparsed lines");
    if s.unparsed.is_empty() {
        out.push_str("  none: every line became a typed event\n");
    }
    for g in &s.unparsed {
        let _ = writeln!(out, "  {:>7}  {} ({})", g.count, g.reason, g.description);
        for smp in &g.samples {
            let _ = writeln!(
                out,
                "           input {} line {}: {}",
                smp.position.source, smp.position.line, smp.text
            );
        }
    }
    out
}
