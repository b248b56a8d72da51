//! Reading SMTP TLS reports (RFC 8460 §4, JSON).
//!
//! Lenient where reporters differ and the meaning is clear: counts may be
//! numbers or numeric strings, `mx-host` and `policy-string` a string or a
//! list, a date without a zone is UTC, a report id may be a number. Bytes
//! before the JSON object and after it are skipped and noted; invalid UTF-8
//! is read as Latin-1 (noted). Failure details and policies are bounded by
//! [`ReportLimits`]; the excess is counted, not kept.
//!
//! serde_json reads from the stream, so the report is never held as text.
//! mail-auth's `TlsReport::parse_json` was not used: it needs the whole
//! report in memory, rejects a report where any field has an unexpected
//! type, and keeps no count of what it drops.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::model::{Note, NoteKind, TlsFailure, TlsPolicy, TlsReport};
use super::{ReportError, ReportLimits};

/// Reads one TLS report from `input`. Returns the report and the notes.
pub fn read_tls<R: Read>(input: R, limits: &ReportLimits) -> Result<(TlsReport, Vec<Note>), ReportError> {
    let mut fix = BufReader::with_capacity(64 * 1024, Utf8Fix::new(input));
    let mut notes = Vec::new();
    // Skip to the first '{'.
    let mut skipped = 0u64;
    loop {
        let buf = fix.fill_buf()?;
        if buf.is_empty() {
            return Err(ReportError::NotTls("no JSON object found".into()));
        }
        match memchr::memchr(b'{', buf) {
            Some(i) => {
                skipped += buf[..i].iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
                fix.consume(i);
                break;
            }
            None => {
                let n = buf.len();
                skipped += buf.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
                fix.consume(n);
            }
        }
    }
    if skipped > 0 {
        notes.push(Note::new(
            NoteKind::StrayPrefix,
            format!("skipped {skipped} byte(s) before the JSON object"),
        ));
    }
    let ctx = Ctx {
        max_details: limits.max_tls_details,
        max_policies: limits.max_tls_policies,
    };
    let raw = {
        let mut de = serde_json::Deserializer::from_reader(&mut fix);
        ReportSeed(ctx).deserialize(&mut de).map_err(|e| {
            if e.is_io() {
                ReportError::Io(io::Error::other(e.to_string()))
            } else {
                ReportError::Json {
                    line: e.line(),
                    column: e.column(),
                    detail: e.to_string(),
                }
            }
        })?
    };
    // Whatever follows the object.
    let mut trailing = 0u64;
    loop {
        let buf = fix.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        trailing += buf.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
        let n = buf.len();
        fix.consume(n);
    }
    if trailing > 0 {
        notes.push(Note::new(
            NoteKind::TrailingData,
            format!("ignored {trailing} byte(s) after the JSON object"),
        ));
    }
    let invalid = fix.get_ref().invalid;
    if invalid > 0 {
        notes.push(Note::new(
            NoteKind::Encoding,
            format!("{invalid} byte(s) that are not valid UTF-8 read as Latin-1"),
        ));
    }
    raw.into_report(notes)
}

/// Strips a UTF-8 BOM and decodes bytes that are not UTF-8 as Latin-1.
struct Utf8Fix<R> {
    inner: R,
    raw: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    started: bool,
    invalid: u64,
}

impl<R: Read> Utf8Fix<R> {
    fn new(inner: R) -> Self {
        Utf8Fix {
            inner,
            raw: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            started: false,
            invalid: 0,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() && !(self.eof && self.raw.is_empty()) {
            if !self.eof {
                let mut chunk = [0u8; 16 * 1024];
                let n = loop {
                    match self.inner.read(&mut chunk) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    self.eof = true;
                } else {
                    self.raw.extend_from_slice(&chunk[..n]);
                }
            }
            if !self.started {
                if self.raw.len() < 3 && !self.eof {
                    continue;
                }
                if self.raw.starts_with(b"\xEF\xBB\xBF") {
                    self.raw.drain(..3);
                }
                self.started = true;
            }
            let mut i = 0;
            while i < self.raw.len() {
                match std::str::from_utf8(&self.raw[i..]) {
                    Ok(s) => {
                        self.out.extend_from_slice(s.as_bytes());
                        i = self.raw.len();
                    }
                    Err(e) => {
                        let v = e.valid_up_to();
                        self.out.extend_from_slice(&self.raw[i..i + v]);
                        i += v;
                        let bad = match e.error_len() {
                            Some(n) => n,
                            None if self.eof => self.raw.len() - i,
                            None => break,
                        };
                        for &b in &self.raw[i..i + bad] {
                            let mut tmp = [0u8; 4];
                            self.out
                                .extend_from_slice(char::from(b).encode_utf8(&mut tmp).as_bytes());
                        }
                        self.invalid += bad as u64;
                        i += bad;
                    }
                }
            }
            self.raw.drain(..i);
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf8Fix<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos >= self.out.len() {
            self.refill()?;
        }
        let n = (self.out.len() - self.out_pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[derive(Clone, Copy)]
struct Ctx {
    max_details: usize,
    max_policies: usize,
}

/// A string, a number (written as text) or null.
#[derive(Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.chars().take(4096).collect())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                // A list where a string belongs: keep the first string.
                let mut first = None;
                while let Some(Texts(v)) = seq.next_element::<Texts>()? {
                    if first.is_none() {
                        first = v.into_iter().next();
                    }
                }
                Ok(Text(first))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of strings, or one string.
#[derive(Default)]
struct Texts(Vec<String>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Texts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Texts, E> {
                Ok(Texts(vec![v.chars().take(4096).collect()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Texts, E> {
                Ok(Texts(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Texts, E> {
                Ok(Texts(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Texts, E> {
                Ok(Texts(vec![v.to_string()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Texts, E> {
                Ok(Texts(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Texts, E> {
                Ok(Texts(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(t)) = seq.next_element::<Text>()? {
                    if let Some(t) = t
                        && out.len() < 256
                    {
                        out.push(t);
                    }
                }
                Ok(Texts(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Texts, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Texts(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A count: a number, a numeric string, or null. `Err(text)` when
/// unreadable.
#[derive(Default)]
struct Count(Option<Result<u64, String>>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text(t) = Text::deserialize(d)?;
        Ok(Count(t.map(|s| {
            let s = s.trim();
            s.parse::<u64>()
                .or_else(|_| match s.parse::<f64>() {
                    Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e18 => Ok(f as u64),
                    _ => Err(()),
                })
                .map_err(|_| s.chars().take(40).collect())
        })))
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawRange {
    #[serde(rename = "start-datetime")]
    start: Text,
    #[serde(rename = "end-datetime")]
    end: Text,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawPolicyDesc {
    #[serde(rename = "policy-type")]
    policy_type: Text,
    #[serde(rename = "policy-string")]
    policy_string: Texts,
    #[serde(rename = "policy-domain")]
    policy_domain: Text,
    #[serde(rename = "mx-host")]
    mx_host: Texts,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawSummary {
    #[serde(rename = "total-successful-session-count")]
    successful: Count,
    #[serde(rename = "total-failure-session-count")]
    failed: Count,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawFailure {
    #[serde(rename = "result-type")]
    result_type: Text,
    #[serde(rename = "sending-mta-ip")]
    sending_mta_ip: Text,
    #[serde(rename = "receiving-mx-hostname")]
    receiving_mx_hostname: Text,
    #[serde(rename = "receiving-mx-helo")]
    receiving_mx_helo: Text,
    #[serde(rename = "receiving-ip")]
    receiving_ip: Text,
    #[serde(rename = "failed-session-count")]
    failed_session_count: Count,
    #[serde(rename = "additional-information")]
    additional_information: Text,
    #[serde(rename = "failure-reason-code")]
    failure_reason_code: Text,
}

struct RawPolicy {
    policy: RawPolicyDesc,
    summary: Option<RawSummary>,
    details: Vec<RawFailure>,
    dropped: u64,
}

#[derive(Default)]
struct RawReport {
    organization_name: Text,
    date_range: Option<RawRange>,
    contact_info: Text,
    report_id: Text,
    policies: Option<Vec<RawPolicy>>,
    policies_dropped: u64,
}

/// A bounded list: keeps `max` elements (each read by `seed`), counts the rest.
struct Capped<S> {
    max: usize,
    seed: S,
}

impl<'de, S, T> DeserializeSeed<'de> for Capped<S>
where
    S: DeserializeSeed<'de, Value = T> + Copy,
{
    type Value = (Vec<T>, u64);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V<S> {
            max: usize,
            seed: S,
        }
        impl<'de, S, T> Visitor<'de> for V<S>
        where
            S: DeserializeSeed<'de, Value = T> + Copy,
        {
            type Value = (Vec<T>, u64);
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                let mut dropped = 0u64;
                loop {
                    if out.len() < self.max {
                        match seq.next_element_seed(self.seed)? {
                            Some(v) => out.push(v),
                            None => break,
                        }
                    } else {
                        match seq.next_element::<IgnoredAny>()? {
                            Some(_) => dropped += 1,
                            None => break,
                        }
                    }
                }
                Ok((out, dropped))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // One object where a list belongs.
                let v = self
                    .seed
                    .deserialize(de::value::MapAccessDeserializer::new(&mut map))?;
                Ok((vec![v], 0))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok((Vec::new(), 0))
            }
        }
        d.deserialize_any(V {
            max: self.max,
            seed: self.seed,
        })
    }
}

#[derive(Clone, Copy)]
struct FailureSeed;

impl<'de> DeserializeSeed<'de> for FailureSeed {
    type Value = RawFailure;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawFailure, D::Error> {
        RawFailure::deserialize(d)
    }
}

#[derive(Clone, Copy)]
struct PolicySeed(Ctx);

impl<'de> DeserializeSeed<'de> for PolicySeed {
    type Value = RawPolicy;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawPolicy, D::Error> {
        struct V(Ctx);
        impl<'de> Visitor<'de> for V {
            type Value = RawPolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a policy object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPolicy, A::Error> {
                let mut p = RawPolicy {
                    policy: RawPolicyDesc::default(),
                    summary: None,
                    details: Vec::new(),
                    dropped: 0,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "policy" => p.policy = map.next_value()?,
                        "summary" => p.summary = Some(map.next_value()?),
                        "failure-details" => {
                            let (d, dropped) = map.next_value_seed(Capped {
                                max: self.0.max_details,
                                seed: FailureSeed,
                            })?;
                            p.details = d;
                            p.dropped = dropped;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

struct ReportSeed(Ctx);

impl<'de> DeserializeSeed<'de> for ReportSeed {
    type Value = RawReport;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawReport, D::Error> {
        struct V(Ctx);
        impl<'de> Visitor<'de> for V {
            type Value = RawReport;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an SMTP TLS report object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawReport, A::Error> {
                let mut r = RawReport::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "organization-name" => r.organization_name = map.next_value()?,
                        "date-range" => r.date_range = Some(map.next_value()?),
                        "contact-info" => r.contact_info = map.next_value()?,
                        "report-id" => r.report_id = map.next_value()?,
                        "policies" => {
                            let (p, dropped) = map.next_value_seed(Capped {
                                max: self.0.max_policies,
                                seed: PolicySeed(self.0),
                            })?;
                            r.policies = Some(p);
                            r.policies_dropped = dropped;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

/// An address in its canonical form (`2001:db8:0012::1` → `2001:db8:12::1`);
/// anything else as written.
fn normalize_ip(s: String) -> String {
    match s.trim().parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => s,
    }
}

/// RFC 3339, or the same without a zone (read as UTC, noted).
fn parse_datetime(s: &str, what: &str, notes: &mut Vec<Note>) -> i64 {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return ts.as_second();
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>()
        && let Ok(ts) = jiff::tz::TimeZone::UTC.to_timestamp(dt)
    {
        notes.push(Note::new(
            NoteKind::BadValue,
            format!("{what} {s:?} has no time zone; read as UTC"),
        ));
        return ts.as_second();
    }
    if let Ok(n) = s.parse::<i64>() {
        notes.push(Note::new(
            NoteKind::BadValue,
            format!("{what} {s:?} is a number; read as a Unix time"),
        ));
        return n;
    }
    notes.push(Note::new(
        NoteKind::BadValue,
        format!(
            "{what} {:?} is not a date; read as 0",
            s.chars().take(40).collect::<String>()
        ),
    ));
    0
}

fn count(c: Count, what: &str, notes: &mut Vec<Note>) -> u64 {
    match c.0 {
        Some(Ok(n)) => n,
        Some(Err(text)) => {
            notes.push(Note::new(
                NoteKind::BadValue,
                format!("{what} {text:?} is not a count; read as 0"),
            ));
            0
        }
        None => 0,
    }
}

impl RawReport {
    fn into_report(self, mut notes: Vec<Note>) -> Result<(TlsReport, Vec<Note>), ReportError> {
        let Some(policies) = self.policies else {
            return Err(ReportError::NotTls(
                "the JSON object has no \"policies\" list (RFC 8460 §4.4)".into(),
            ));
        };
        let (begin, end) = match self.date_range {
            Some(r) => (
                r.start
                    .0
                    .map_or(0, |s| parse_datetime(&s, "date-range start-datetime", &mut notes)),
                r.end
                    .0
                    .map_or(0, |s| parse_datetime(&s, "date-range end-datetime", &mut notes)),
            ),
            None => {
                notes.push(Note::new(NoteKind::Missing, "date-range missing"));
                (0, 0)
            }
        };
        let organization_name = self.organization_name.0.unwrap_or_default();
        let report_id = self.report_id.0.unwrap_or_default();
        if organization_name.is_empty() {
            notes.push(Note::new(NoteKind::Missing, "organization-name missing"));
        }
        if report_id.is_empty() {
            notes.push(Note::new(NoteKind::Missing, "report-id missing"));
        }
        if self.policies_dropped > 0 {
            notes.push(Note::new(
                NoteKind::Dropped,
                format!(
                    "{} policies beyond the limit counted and dropped",
                    self.policies_dropped
                ),
            ));
        }
        let mut out = Vec::with_capacity(policies.len());
        for p in policies {
            let domain = p
                .policy
                .policy_domain
                .0
                .unwrap_or_default()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let (successful, failed) = match p.summary {
                Some(s) => (
                    count(s.successful, "total-successful-session-count", &mut notes),
                    count(s.failed, "total-failure-session-count", &mut notes),
                ),
                None => {
                    notes.push(Note::new(
                        NoteKind::Missing,
                        format!("policy {domain:?} has no summary; counts read as 0"),
                    ));
                    (0, 0)
                }
            };
            if p.dropped > 0 {
                notes.push(Note::new(
                    NoteKind::Dropped,
                    format!(
                        "{} failure details of {domain:?} beyond the limit counted and dropped",
                        p.dropped
                    ),
                ));
            }
            let failure_details = p
                .details
                .into_iter()
                .map(|f| TlsFailure {
                    result_type: f.result_type.0.unwrap_or_default().trim().to_ascii_lowercase(),
                    sending_mta_ip: f.sending_mta_ip.0.map(normalize_ip),
                    receiving_mx_hostname: f.receiving_mx_hostname.0.map(|h| h.to_ascii_lowercase()),
                    receiving_mx_helo: f.receiving_mx_helo.0,
                    receiving_ip: f.receiving_ip.0.map(normalize_ip),
                    failed_sessions: count(f.failed_session_count, "failed-session-count", &mut notes),
                    additional_information: f.additional_information.0,
                    failure_reason_code: f.failure_reason_code.0,
                })
                .collect();
            out.push(TlsPolicy {
                policy_type: p
                    .policy
                    .policy_type
                    .0
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase(),
                policy_domain: domain,
                policy_string: p.policy.policy_string.0,
                mx_host: p.policy.mx_host.0,
                successful,
                failed,
                failure_details,
                failure_details_dropped: p.dropped,
            });
        }
        Ok((
            TlsReport {
                organization_name,
                contact_info: self.contact_info.0.unwrap_or_default(),
                report_id,
                begin,
                end,
                policies: out,
            },
            notes,
        ))
    }
}
