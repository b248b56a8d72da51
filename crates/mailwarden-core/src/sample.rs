//! Sample-message analysis: given a spam sample (an `.eml`, an mbox, or a
//! pasted header block), tell where the message entered our infrastructure,
//! or show that it never touched us.
//!
//! Pure: no I/O, no clock, no DNS. Everything is bounded by
//! [`SampleConfig`], and no input makes it panic.
//!
//! Trust model: `Received` headers are read top-down (newest first). The
//! *trusted* part is the contiguous run of hops written by our hosts,
//! starting at the top, where each hop but the lowest says it got the message
//! from one of us (loopback, `our_ips`, our rDNS name, or for LMTP/local
//! hops without an IP our HELO name). So a line the client forged to look
//! like ours, right below our MX's, is not believed. The lowest hop of that
//! run is where the message
//! entered us ([`Entry::Ours`]); its client IP is who handed it to us.
//! Everything below is only reported, never believed.
//!
//! Header splitting is done here, `mail-parser` decodes the `From` and
//! `Subject` fields (RFC 2047 encoded words, display names). The `Received`
//! and `Authentication-Results` tokenizers are written by hand: no crate
//! parses the many real-world variants of those two headers tolerantly
//! enough (Postfix, Exim, Sendmail, Dovecot LMTP, Exchange, Gmail, Rspamd).

use std::collections::BTreeMap;
use std::net::IpAddr;

use mail_parser::{HeaderName, MessageParser};
use serde::Serialize;

#[cfg(test)]
mod tests;

/// Longest `raw` kept per hop, in bytes.
const MAX_RAW_HOP: usize = 1000;
/// Most `Authentication-Results` headers parsed.
const MAX_AUTH_RESULTS_HEADERS: usize = 100;
/// Most result entries kept across all `Authentication-Results` headers.
const MAX_AUTH_RESULTS: usize = 500;
/// Most warnings kept.
const MAX_WARNINGS: usize = 100;

/// What the analysis knows about our own infrastructure, and its bounds.
#[derive(Clone, Debug)]
pub struct SampleConfig {
    /// Our hostnames, e.g. `mail.example.org`. A hop is ours when its `by`
    /// host equals one of these or is a subdomain of one (case-insensitive).
    pub our_hosts: Vec<String>,
    /// Our IP addresses or CIDR blocks (`192.0.2.10`, `2001:db8::/32`). A
    /// `by` written as an IP literal inside these also counts as ours, and
    /// these IPs are never reported as an external origin.
    pub our_ips: Vec<String>,
    /// Header bytes examined; anything beyond is ignored with a warning.
    /// Default 1 MiB.
    pub max_header_bytes: usize,
    /// `Received` headers parsed; more set
    /// [`SampleAnalysis::received_truncated`]. Default 100.
    pub max_received: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            our_hosts: Vec::new(),
            our_ips: Vec::new(),
            max_header_bytes: 1 << 20,
            max_received: 100,
        }
    }
}

/// The result of [`analyze`] on one message.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SampleAnalysis {
    /// The `From` header's address, lowercased.
    pub from: Option<String>,
    /// The `From` header's display name, RFC 2047-decoded.
    pub from_name: Option<String>,
    /// The (topmost) `Return-Path` address, lowercased, without `<>`; an
    /// empty string for the null sender `<>`.
    pub return_path: Option<String>,
    /// The `Message-ID`, without `<>`.
    pub message_id: Option<String>,
    /// The `Subject`, RFC 2047-decoded.
    pub subject: Option<String>,
    /// The `Date` header as written.
    pub date: Option<String>,
    /// `Received` headers, top (newest) first.
    pub hops: Vec<Hop>,
    /// True when there were more than [`SampleConfig::max_received`]
    /// `Received` headers; the rest were not parsed.
    pub received_truncated: bool,
    /// Where the message entered our infrastructure.
    pub entry: Entry,
    /// Queue ids from `Received` lines whose `by` host is ours (trusted hops
    /// first, then lower hops that claim our hosts), to join with our logs.
    pub our_queue_ids: Vec<String>,
    /// For [`Entry::Ours`]: the client IP recorded by our lowest trusted hop
    /// (who handed the message to us). For [`Entry::ClaimsOurs`]: the client
    /// IP that claimed hop recorded. For [`Entry::NeverTouchedUs`]: the
    /// earliest (lowest) public IP in the chain not in `our_ips`; unverified.
    pub first_external_ip: Option<String>,
    /// Parsed `Authentication-Results` headers (RFC 8601), one entry per
    /// method result, in header order.
    pub auth_results: Vec<AuthResult>,
    /// Suspicious inconsistencies between identity headers.
    pub mismatches: Vec<String>,
    /// Things that were cut, broken or missing.
    pub warnings: Vec<String>,
}

/// Where a sample entered our infrastructure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The trusted run of our hops at the top ends at `hop_index`: that hop
    /// is where the message entered us.
    Ours {
        /// Index into [`SampleAnalysis::hops`] (0 = top).
        hop_index: usize,
        /// Our host that accepted the message.
        by_host: String,
        /// The client IP that handed the message to us.
        from_ip: Option<String>,
        /// The SASL user (`Authenticated sender: x`) when recorded, else the
        /// authenticated protocol (`ESMTPSA`, …); `None` if unauthenticated.
        authenticated: Option<String>,
        /// The queue id our host assigned.
        queue_id: Option<String>,
    },
    /// The top hop is not ours, but a lower hop claims to be written by our
    /// host (e.g. a sample reported by an outside recipient). Headers alone
    /// cannot prove it: look `queue_id` up in our logs.
    ClaimsOurs {
        /// Index of the lowest hop claiming one of our hosts.
        hop_index: usize,
        /// The claimed host.
        by_host: String,
        /// The client IP that hop recorded.
        from_ip: Option<String>,
        /// As in [`Entry::Ours`].
        authenticated: Option<String>,
        /// The queue id to look up.
        queue_id: Option<String>,
    },
    /// There are `Received` headers and none claims our hosts.
    NeverTouchedUs,
    /// No `Received` header at all: nothing to decide on.
    #[default]
    Unknown,
}

/// One parsed `Received` header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The name the client gave (HELO/EHLO), as recorded.
    pub from_helo: Option<String>,
    /// The client's reverse-DNS name, as recorded (`unknown` → `None`).
    pub from_rdns: Option<String>,
    /// The client's IP address (canonical form).
    pub from_ip: Option<String>,
    /// The receiving host.
    pub by: Option<String>,
    /// The protocol (`ESMTPS`, `LMTP`, `Microsoft SMTP Server`, …).
    pub with: Option<String>,
    /// The queue id the receiving host assigned.
    pub id: Option<String>,
    /// The envelope recipient, without `<>`.
    pub for_addr: Option<String>,
    /// The timestamp after the last `;`.
    pub date: Option<String>,
    /// The SASL user or authenticated protocol, as in [`Entry::Ours`].
    pub authenticated: Option<String>,
    /// True when this hop is part of the trusted run of our hops at the top.
    pub ours: bool,
    /// The header value: unfolded, control characters removed, cut to 1000
    /// bytes.
    pub raw: String,
}

/// One method result from an `Authentication-Results` header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthResult {
    /// The authserv-id (the host that did the check); `None` when the
    /// writer omitted it (Microsoft does).
    pub authserv_id: Option<String>,
    /// True when `authserv_id` is one of our hosts, i.e. we wrote it.
    pub ours: bool,
    /// The method, lowercased (`spf`, `dkim`, `dmarc`, `arc`, `compauth`, …).
    pub method: String,
    /// The result, lowercased (`pass`, `fail`, `softfail`, `none`, …).
    pub result: String,
    /// `ptype.property=value` and other `key=value` pairs, keys lowercased
    /// (`smtp.mailfrom`, `header.d`, `header.from`, `action`, …).
    pub properties: BTreeMap<String, String>,
    /// `reason=` value, when given.
    pub reason: Option<String>,
    /// Comments, joined with `; ` (e.g. Gmail's SPF explanation).
    pub comment: Option<String>,
}

/// Splits `bytes` into messages: an mbox (the input starts with a `From `
/// separator line; later separators must follow an empty line) gives one
/// slice per message, without the separator lines; anything else (one
/// `.eml`, a pasted header block) is one message. Empty input gives none.
pub fn split_messages(bytes: &[u8]) -> Vec<&[u8]> {
    let start = skip_blank_lines(bytes);
    let bytes = &bytes[start..];
    if bytes.is_empty() {
        return Vec::new();
    }
    if !is_mbox_separator(bytes) {
        return vec![bytes];
    }
    let mut out = Vec::new();
    let mut msg_start: Option<usize> = None;
    let mut pos = 0;
    let mut prev_blank = true;
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..end];
        if prev_blank && is_mbox_separator(line) {
            if let Some(s) = msg_start {
                push_message(&mut out, &bytes[s..pos]);
            }
            msg_start = Some(end);
        }
        prev_blank = trim_eol(line).is_empty();
        pos = end;
    }
    if let Some(s) = msg_start {
        push_message(&mut out, &bytes[s..]);
    }
    out
}

fn push_message<'a>(out: &mut Vec<&'a [u8]>, mut msg: &'a [u8]) {
    // Drop the blank line that precedes the next separator.
    if let Some(m) = msg.strip_suffix(b"\n") {
        let m = m.strip_suffix(b"\r").unwrap_or(m);
        if m.ends_with(b"\n") {
            msg = m;
        }
    }
    if !msg.iter().all(u8::is_ascii_whitespace) {
        out.push(msg);
    }
}

fn is_mbox_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ") && !line[5..].trim_ascii_start().starts_with(b":")
}

fn skip_blank_lines(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        if !bytes[pos..end].iter().all(u8::is_ascii_whitespace) {
            break;
        }
        pos = end;
    }
    pos
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Analyzes one message (as given by [`split_messages`], or a bare header
/// block). Only the header block is read.
pub fn analyze(raw: &[u8], cfg: &SampleConfig) -> SampleAnalysis {
    let mut a = SampleAnalysis::default();
    let mut w = Warnings::default();
    let nets: Vec<Net> = cfg.our_ips.iter().filter_map(|s| Net::parse(s)).collect();
    if nets.len() != cfg.our_ips.len() {
        w.push("some our_ips entries are not IPs or CIDRs and were ignored".into());
    }

    let fields = split_header_fields(raw, cfg.max_header_bytes, &mut w);

    // Identity headers.
    let first = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let count = |name: &str| {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    let from_raw = first("from").map(|(_, v)| v.clone());
    let subject_raw = first("subject").map(|(_, v)| v.clone());
    decode_from_subject(from_raw.as_deref(), subject_raw.as_deref(), &mut a, &mut w);
    if from_raw.is_none() {
        w.push("missing From header".into());
    } else if a.from.is_none() {
        w.push("From header has no parsable address".into());
    }
    if count("from") > 1 {
        w.push("more than one From header".into());
    }
    a.return_path = first("return-path").map(|(_, v)| {
        let v = v.trim();
        let v = strip_angle(v).unwrap_or(v);
        v.trim().to_ascii_lowercase()
    });
    a.message_id = first("message-id").and_then(|(_, v)| {
        let v = v.trim();
        let v = strip_angle(v).unwrap_or(v).trim();
        (!v.is_empty()).then(|| v.to_string())
    });
    if a.message_id.is_none() {
        w.push("missing Message-ID header".into());
    }
    a.date = first("date").map(|(_, v)| v.trim().to_string());
    if a.date.is_none() {
        w.push("missing Date header".into());
    }

    // Received chain.
    let mut n_received = 0usize;
    for (name, value) in &fields {
        if !name.eq_ignore_ascii_case("received") {
            continue;
        }
        n_received += 1;
        if a.hops.len() >= cfg.max_received {
            a.received_truncated = true;
            continue;
        }
        let hop = parse_received(value);
        if hop.by.is_none() {
            w.push(format!("Received header {} has no `by` host", a.hops.len() + 1));
        }
        a.hops.push(hop);
    }
    if a.received_truncated {
        w.push(format!(
            "{n_received} Received headers; only the first {} were parsed",
            cfg.max_received
        ));
    }
    decide_entry(&mut a, cfg, &nets, &mut w);

    // Authentication-Results.
    let ar: Vec<&String> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authentication-results"))
        .map(|(_, v)| v)
        .collect();
    if ar.len() > MAX_AUTH_RESULTS_HEADERS {
        w.push(format!(
            "{} Authentication-Results headers; only the first {MAX_AUTH_RESULTS_HEADERS} were parsed",
            ar.len()
        ));
    }
    for v in ar.into_iter().take(MAX_AUTH_RESULTS_HEADERS) {
        for mut r in parse_auth_results(v) {
            if a.auth_results.len() >= MAX_AUTH_RESULTS {
                break;
            }
            r.ours = r
                .authserv_id
                .as_deref()
                .is_some_and(|h| host_is_ours(h, &cfg.our_hosts));
            a.auth_results.push(r);
        }
    }

    a.mismatches = find_mismatches(&a);
    a.warnings = w.0;
    a
}

#[derive(Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn push(&mut self, s: String) {
        if self.0.len() < MAX_WARNINGS && !self.0.contains(&s) {
            self.0.push(s);
        }
    }
}

/// Splits the header block into unfolded `(name, value)` fields, values
/// cleaned of control characters. Bounded by `max` bytes.
fn split_header_fields(raw: &[u8], max: usize, w: &mut Warnings) -> Vec<(String, String)> {
    let mut bytes = &raw[skip_blank_lines(raw)..];
    // An mbox envelope line left in front of a single message.
    if is_mbox_separator(bytes) {
        let end = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |i| i + 1);
        bytes = &bytes[end..];
    }
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let mut garbage = 0usize;
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        if end > max {
            w.push(format!("header block exceeds {max} bytes; the rest was ignored"));
            break;
        }
        let line = trim_eol(&bytes[pos..end]);
        pos = end;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some((_, v)) => v.extend_from_slice(line),
                None => garbage += 1,
            }
            continue;
        }
        match memchr::memchr(b':', line) {
            Some(c) if c > 0 && line[..c].trim_ascii_end().iter().all(|b| b.is_ascii_graphic()) => {
                let name = String::from_utf8_lossy(line[..c].trim_ascii_end()).into_owned();
                fields.push((name, line[c + 1..].to_vec()));
            }
            _ => garbage += 1,
        }
    }
    if garbage > 0 {
        w.push(format!(
            "{garbage} header line(s) were not `Name: value` and were ignored"
        ));
    }
    let mut bad_utf8 = false;
    let out = fields
        .into_iter()
        .map(|(n, v)| {
            let s = match String::from_utf8(v) {
                Ok(s) => s,
                Err(e) => {
                    bad_utf8 = true;
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            (n, clean(&s))
        })
        .collect();
    if bad_utf8 {
        w.push("header bytes that are not UTF-8 were replaced".into());
    }
    out
}

/// Tabs become spaces, other control characters are dropped, ends trimmed.
fn clean(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect::<String>()
        .trim()
        .to_string()
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn strip_angle(s: &str) -> Option<&str> {
    let start = s.find('<')?;
    let rest = &s[start + 1..];
    Some(&rest[..rest.find('>').unwrap_or(rest.len())])
}

/// Decodes `From` and `Subject` with mail-parser, on a synthetic header block
/// holding only those two cleaned values.
fn decode_from_subject(from: Option<&str>, subject: Option<&str>, a: &mut SampleAnalysis, w: &mut Warnings) {
    let mut block = String::new();
    if let Some(f) = from {
        block.push_str("From: ");
        block.push_str(f);
        block.push_str("\r\n");
    }
    if let Some(s) = subject {
        block.push_str("Subject: ");
        block.push_str(s);
        block.push_str("\r\n");
    }
    block.push_str("\r\n");
    let parser = MessageParser::new()
        .header_address(HeaderName::From)
        .header_text(HeaderName::Subject)
        .default_header_ignore();
    let msg = parser.parse_headers(block.as_bytes());
    if let Some(s) = subject {
        let decoded = msg
            .as_ref()
            .and_then(|m| m.subject())
            .map(clean)
            .unwrap_or_else(|| s.to_string());
        if looks_encoded(&decoded) {
            w.push("Subject has an encoded word that could not be decoded".into());
        }
        a.subject = Some(decoded);
    }
    if let Some(f) = from {
        let addr = msg.as_ref().and_then(|m| m.from()).and_then(|x| x.first());
        a.from = addr
            .and_then(|x| x.address.as_deref())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .or_else(|| fallback_address(f));
        a.from_name = addr
            .and_then(|x| x.name.as_deref())
            .map(clean)
            .filter(|s| !s.is_empty());
        if a.from_name.as_deref().is_some_and(looks_encoded) {
            w.push("From display name has an encoded word that could not be decoded".into());
        }
    }
}

fn looks_encoded(s: &str) -> bool {
    s.find("=?").is_some_and(|i| s[i..].contains("?="))
}

/// `<addr>` or a bare `x@y` token from a header the parser did not take.
fn fallback_address(v: &str) -> Option<String> {
    let cand = strip_angle(v).map(str::to_string).or_else(|| {
        v.split_whitespace()
            .find(|t| t.contains('@'))
            .map(|t| t.trim_matches(|c: char| "<>\"',;()".contains(c)).to_string())
    })?;
    let cand = cand.trim().to_ascii_lowercase();
    cand.contains('@').then_some(cand)
}

// ---------------------------------------------------------------------------
// Received (hand-written tokenizer)

#[derive(Debug)]
enum Tok {
    Word(String),
    Comment(String),
}

/// Words (runs of non-space, non-paren) and comments (balanced, nested
/// parens; an unclosed one runs to the end). Quoted strings are kept inside
/// words.
fn tokenize(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            let mut depth = 1usize;
            let mut text = String::new();
            for c in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                text.push(c);
            }
            toks.push(Tok::Comment(text.trim().to_string()));
        } else if c == ')' {
            chars.next();
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            toks.push(Tok::Word(word));
        }
    }
    toks
}

/// Index of the last `;` outside comments, if any.
fn last_semicolon(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut last = None;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Clause {
    From,
    By,
    Via,
    With,
    Id,
    For,
}

fn clause_of(word: &str) -> Option<Clause> {
    Some(match word.to_ascii_lowercase().as_str() {
        "from" => Clause::From,
        "by" => Clause::By,
        "via" => Clause::Via,
        "with" => Clause::With,
        "id" => Clause::Id,
        "for" => Clause::For,
        _ => return None,
    })
}

/// Parses one unfolded `Received` value. Unknown shapes leave fields `None`.
pub(crate) fn parse_received(value: &str) -> Hop {
    let mut hop = Hop {
        raw: cut(value, MAX_RAW_HOP),
        ..Hop::default()
    };
    let (body, date) = match last_semicolon(value) {
        Some(i) => (&value[..i], Some(value[i + 1..].trim())),
        None => (value, None),
    };
    hop.date = date.filter(|d| !d.is_empty()).map(str::to_string);

    let mut from_val: Option<String> = None;
    let mut from_comments: Vec<String> = Vec::new();
    let mut auth_user: Option<String> = None;
    let mut pending: Option<Clause> = None;
    let mut last: Option<Clause> = None;
    let mut with_open = false;
    for tok in tokenize(body) {
        match tok {
            Tok::Comment(c) => {
                if auth_user.is_none() {
                    auth_user = authenticated_sender(&c);
                }
                if last == Some(Clause::From) && pending.is_none() {
                    from_comments.push(c);
                }
                with_open = false;
            }
            Tok::Word(word) => {
                if let Some(cl) = pending.take() {
                    last = Some(cl);
                    let slot = match cl {
                        Clause::From => &mut from_val,
                        Clause::By => &mut hop.by,
                        Clause::With => &mut hop.with,
                        Clause::Id => &mut hop.id,
                        Clause::For => &mut hop.for_addr,
                        Clause::Via => {
                            continue;
                        }
                    };
                    if slot.is_none() {
                        *slot = Some(word);
                        with_open = cl == Clause::With;
                    }
                } else if let Some(cl) = clause_of(&word) {
                    pending = Some(cl);
                    with_open = false;
                } else if with_open {
                    // "with Microsoft SMTP Server (…)"
                    if let Some(wv) = hop.with.as_mut() {
                        wv.push(' ');
                        wv.push_str(&word);
                    }
                }
            }
        }
    }

    hop.by = hop
        .by
        .map(|b| b.trim_end_matches('.').to_string())
        .filter(|b| !b.is_empty());
    hop.id = hop
        .id
        .map(|i| i.trim_end_matches([',', ';', '.']).to_string())
        .filter(|i| !i.is_empty());
    hop.for_addr = hop
        .for_addr
        .map(|f| {
            let f = f.trim_end_matches([',', ';']);
            strip_angle(f).unwrap_or(f).to_string()
        })
        .filter(|f| !f.is_empty());

    // The `from` clause: value, then its comments.
    if let Some(v) = from_val {
        let v_ip = bracket_ip(&v).or_else(|| bare_ip(&v));
        let mut helo_kw: Option<String> = None;
        let mut rdns: Option<String> = None;
        // The comment's IP is the connecting client; a bracketed `from`
        // value is only the HELO literal (Postfix), or the client where no
        // comment names one (Exim `from [ip] (helo=x)`).
        let mut ip: Option<IpAddr> = None;
        for c in &from_comments {
            let words: Vec<&str> = c.split_whitespace().collect();
            for (i, wd) in words.iter().enumerate() {
                let lw = wd.to_ascii_lowercase();
                if let Some(h) = lw.strip_prefix("helo=") {
                    if helo_kw.is_none() && !h.is_empty() {
                        helo_kw = Some(wd[5..].trim_end_matches(')').to_string());
                    }
                    continue;
                }
                if lw == "helo" || lw == "ehlo" {
                    if let Some(next) = words.get(i + 1) {
                        helo_kw.get_or_insert_with(|| next.to_string());
                    }
                    continue;
                }
                if ip.is_none()
                    && let Some(found) = bracket_ip(wd).or_else(|| bare_ip(wd))
                {
                    ip = Some(found);
                    // "rdns [ip]": the word before the IP is the rDNS.
                    if i > 0 && rdns.is_none() {
                        let prev = words[i - 1].trim_end_matches('.');
                        if is_hostname(prev) {
                            rdns = Some(prev.to_string());
                        }
                    }
                }
            }
        }
        let v_is_literal = v_ip.is_some();
        if let Some(h) = helo_kw {
            // Exim: "from rdns ([ip] helo=name)".
            hop.from_helo = Some(h);
            if !v_is_literal && rdns.is_none() {
                rdns = Some(v.trim_end_matches('.').to_string());
            }
        } else {
            hop.from_helo = Some(v);
        }
        hop.from_rdns = rdns.filter(|r| !r.eq_ignore_ascii_case("unknown"));
        hop.from_ip = ip.or(v_ip).map(|i| i.to_string());
    }

    hop.authenticated = auth_user.or_else(|| {
        let w = hop.with.as_deref()?;
        let first = w.split_whitespace().next()?;
        is_auth_protocol(first).then(|| first.to_string())
    });
    hop
}

/// `Authenticated sender: alice` → `alice`.
fn authenticated_sender(comment: &str) -> Option<String> {
    const KEY: &str = "authenticated sender:";
    let lower = comment.to_ascii_lowercase();
    let i = lower.find(KEY)?;
    let rest = comment[i + KEY.len()..].trim();
    let user = rest.split_whitespace().next()?.trim_end_matches([')', ',']);
    (!user.is_empty()).then(|| user.to_string())
}

/// RFC 3848 protocol types that say the client authenticated.
fn is_auth_protocol(p: &str) -> bool {
    matches!(
        p.to_ascii_uppercase().as_str(),
        "ESMTPA" | "ESMTPSA" | "LMTPA" | "LMTPSA" | "UTF8SMTPA" | "UTF8SMTPSA" | "UTF8LMTPA" | "UTF8LMTPSA"
    )
}

/// An IP inside `[...]` (optionally `IPv6:`-prefixed) within `word`.
fn bracket_ip(word: &str) -> Option<IpAddr> {
    let s = word.find('[')?;
    let rest = &word[s + 1..];
    let e = rest.find(']')?;
    let inner = rest[..e].trim();
    let inner = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .or_else(|| inner.strip_prefix("IPV6:"))
        .unwrap_or(inner);
    inner.parse().ok()
}

/// A bare IP word (Exchange writes `(2603:10a6:208:1::12)`).
fn bare_ip(word: &str) -> Option<IpAddr> {
    word.trim_matches(|c: char| c == ',' || c == ';').parse().ok()
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

// ---------------------------------------------------------------------------
// Trust decision

fn norm_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn host_is_ours(host: &str, our_hosts: &[String]) -> bool {
    let h = norm_host(host);
    !h.is_empty()
        && our_hosts.iter().any(|o| {
            let o = norm_host(o);
            !o.is_empty()
                && (h == o
                    || (h.len() > o.len() && h.ends_with(&o) && h.as_bytes()[h.len() - o.len() - 1] == b'.'))
        })
}

fn hop_is_ours(hop: &Hop, cfg: &SampleConfig, nets: &[Net]) -> bool {
    let Some(by) = hop.by.as_deref() else {
        return false;
    };
    if host_is_ours(by, &cfg.our_hosts) {
        return true;
    }
    bracket_ip(by)
        .or_else(|| bare_ip(by))
        .is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

fn decide_entry(a: &mut SampleAnalysis, cfg: &SampleConfig, nets: &[Net], w: &mut Warnings) {
    if a.hops.is_empty() {
        a.entry = Entry::Unknown;
        w.push("no Received headers: cannot tell where the message came from".into());
        return;
    }
    let claims: Vec<bool> = a.hops.iter().map(|h| hop_is_ours(h, cfg, nets)).collect();
    // The run continues downwards only while each of our hops says it got
    // the message from one of us: otherwise a line forged by the client
    // right below our MX's would be believed.
    let mut trusted = 0;
    for (i, &claim) in claims.iter().enumerate() {
        if !claim {
            break;
        }
        if i > 0 && !handed_over_by_us(&a.hops[i - 1], cfg, nets) {
            break;
        }
        trusted = i + 1;
    }
    for h in a.hops.iter_mut().take(trusted) {
        h.ours = true;
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, h) in a.hops.iter().enumerate() {
        if claims[i]
            && let Some(id) = &h.id
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
    }
    a.our_queue_ids = ids;

    let forged: Vec<usize> = (trusted..a.hops.len()).filter(|&i| claims[i]).collect();
    if trusted > 0 {
        let idx = trusted - 1;
        let h = &a.hops[idx];
        a.entry = Entry::Ours {
            hop_index: idx,
            by_host: h.by.clone().unwrap_or_default(),
            from_ip: h.from_ip.clone(),
            authenticated: h.authenticated.clone(),
            queue_id: h.id.clone(),
        };
        a.first_external_ip = h.from_ip.clone();
        for i in forged {
            w.push(format!(
                "Received header {} claims our host {} but is below the trusted hops: likely forged",
                i + 1,
                a.hops[i].by.as_deref().unwrap_or_default()
            ));
        }
    } else if let Some(&idx) = forged.last() {
        let h = &a.hops[idx];
        a.entry = Entry::ClaimsOurs {
            hop_index: idx,
            by_host: h.by.clone().unwrap_or_default(),
            from_ip: h.from_ip.clone(),
            authenticated: h.authenticated.clone(),
            queue_id: h.id.clone(),
        };
        a.first_external_ip = h.from_ip.clone();
        w.push(
            "the top Received header is not ours: lower hops naming our hosts are unverified; check their queue ids in our logs".into(),
        );
    } else {
        a.entry = Entry::NeverTouchedUs;
        a.first_external_ip = a
            .hops
            .iter()
            .rev()
            .filter_map(|h| h.from_ip.as_deref())
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .find(|ip| is_public(*ip) && !nets.iter().any(|n| n.contains(*ip)))
            .map(|ip| ip.to_string());
    }
}

/// Whether our hop `h` recorded one of us as its client: a loopback or
/// `our_ips` address, a (forward-confirmed) rDNS name among our hosts, or,
/// with no client IP at all (LMTP, local pickup), a HELO among our hosts.
fn handed_over_by_us(h: &Hop, cfg: &SampleConfig, nets: &[Net]) -> bool {
    let rdns_ours = h
        .from_rdns
        .as_deref()
        .is_some_and(|r| host_is_ours(r, &cfg.our_hosts));
    match h.from_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(ip) => ip.is_loopback() || nets.iter().any(|n| n.contains(ip)) || rdns_ours,
        None => {
            rdns_ours
                || h.from_helo
                    .as_deref()
                    .is_none_or(|x| host_is_ours(x, &cfg.our_hosts))
        }
    }
}

/// Not private, loopback, link-local, CGNAT, unspecified, multicast or ULA.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v.segments();
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// An IP network (`addr/prefix`; a bare address is a full-length prefix).
#[derive(Clone, Copy, Debug)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = p.unwrap_or(max);
        (prefix <= max).then_some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Authentication-Results (hand-written tokenizer, RFC 8601, tolerant)

/// Splits on `;` outside comments and quoted strings.
fn split_semicolons(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ';' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A `method=result` / `key=value` segment tokenized: words with any
/// `a = b` spacing rejoined, and comments.
fn ar_tokens(seg: &str) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    for t in tokenize(seg) {
        match t {
            Tok::Word(w) => {
                let w = w.replace('"', "");
                if let Some(Tok::Word(prev)) = out.last_mut()
                    && (prev.ends_with('=') || w.starts_with('='))
                {
                    prev.push_str(&w);
                    continue;
                }
                out.push(Tok::Word(w));
            }
            c => out.push(c),
        }
    }
    out
}

fn looks_like_resinfo(seg: &str) -> bool {
    let seg = seg.trim_start();
    let key: String = seg
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_/.".contains(*c))
        .collect();
    !key.is_empty() && seg[key.len()..].trim_start().starts_with('=')
}

/// Parses one unfolded `Authentication-Results` value into method results.
pub(crate) fn parse_auth_results(value: &str) -> Vec<AuthResult> {
    let mut segs = split_semicolons(value).into_iter();
    let mut out = Vec::new();
    let mut authserv_id = None;
    let mut pending_first = None;
    if let Some(first) = segs.next() {
        if looks_like_resinfo(first) {
            pending_first = Some(first);
        } else {
            authserv_id = ar_tokens(first).into_iter().find_map(|t| match t {
                Tok::Word(w) if !w.is_empty() => Some(w.to_ascii_lowercase()),
                _ => None,
            });
        }
    }
    for seg in pending_first.into_iter().chain(segs) {
        let mut cur: Option<AuthResult> = None;
        for t in ar_tokens(seg) {
            match t {
                Tok::Comment(c) => {
                    if let Some(r) = cur.as_mut()
                        && !c.is_empty()
                    {
                        match &mut r.comment {
                            Some(prev) => {
                                prev.push_str("; ");
                                prev.push_str(&c);
                            }
                            None => r.comment = Some(c),
                        }
                    }
                }
                Tok::Word(w) => {
                    let Some((k, v)) = w.split_once('=') else {
                        continue;
                    };
                    let k = k.to_ascii_lowercase();
                    let v = v.to_string();
                    match cur.as_mut() {
                        None => {
                            // method[/version]=result
                            let method = k.split('/').next().unwrap_or_default().to_string();
                            if method.is_empty() || method.contains('.') {
                                continue;
                            }
                            cur = Some(AuthResult {
                                authserv_id: authserv_id.clone(),
                                method,
                                result: v.to_ascii_lowercase(),
                                ..AuthResult::default()
                            });
                        }
                        Some(r) if k == "reason" => r.reason = Some(v),
                        Some(r) => {
                            r.properties.entry(k).or_insert(v);
                        }
                    }
                }
            }
        }
        out.extend(cur);
    }
    out
}

// ---------------------------------------------------------------------------
// Mismatches

fn domain_of(addr: &str) -> Option<String> {
    let (_, d) = addr.rsplit_once('@')?;
    let d = norm_host(d.trim_end_matches(['>', '"', '\'', ')', ',', ';']));
    (!d.is_empty()).then_some(d)
}

/// Equal, or one a subdomain of the other (relaxed, without a public suffix
/// list).
fn domains_related(a: &str, b: &str) -> bool {
    let sub =
        |x: &str, y: &str| x.len() > y.len() && x.ends_with(y) && x.as_bytes()[x.len() - y.len() - 1] == b'.';
    a == b || sub(a, b) || sub(b, a)
}

fn find_mismatches(a: &SampleAnalysis) -> Vec<String> {
    let mut out = Vec::new();
    let Some(from_dom) = a.from.as_deref().and_then(domain_of) else {
        return out;
    };
    if let Some(rp) = a.return_path.as_deref()
        && let Some(d) = domain_of(rp)
        && !domains_related(&d, &from_dom)
    {
        out.push(format!(
            "Return-Path domain {d} differs from From domain {from_dom}"
        ));
    }
    if let Some(mid) = a.message_id.as_deref()
        && let Some(d) = domain_of(mid)
        && !domains_related(&d, &from_dom)
    {
        out.push(format!(
            "Message-ID domain {d} differs from From domain {from_dom}"
        ));
    }
    if let Some(name) = a.from_name.as_deref() {
        for word in name.split(|c: char| c.is_whitespace() || "<>()[]\"',;:".contains(c)) {
            if let Some(d) = domain_of(word)
                && d.contains('.')
                && !domains_related(&d, &from_dom)
            {
                out.push(format!(
                    "From display name contains an address at {d}, but the From domain is {from_dom}"
                ));
                break;
            }
        }
    }
    out
}
