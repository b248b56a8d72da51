//! Reading a DMARC aggregate report (RFC 7489 appendix C, RFC 9990), one
//! record at a time.
//!
//! [`AggregateReader`] puts the [`XmlRepair`] pass in front of quick-xml,
//! reads the header ([`AggregateReader::header`]), then hands out records
//! ([`AggregateReader::next_record`]) without keeping them, so a report of
//! any size is read in memory bounded by one record.
//!
//! Written on quick-xml rather than with mail-auth's `Report::parse_xml`
//! (also quick-xml): that one needs the whole report in memory, collects
//! every record into a `Vec`, maps values it does not know to defaults
//! (an unknown disposition becomes "unspecified"), stops at the first
//! syntax error and cannot say what it skipped. Here unknown values are
//! kept, repairs are reported, and elements are matched by local name, so
//! both the RFC 7489 and the RFC 9990 vocabulary (and any namespace
//! prefix) are read by one reader.
//!
//! Element names are compared in lower case. Unknown elements are skipped
//! and listed in the notes; `<extensions>` is skipped silently (RFC 9990
//! defines it as the place for them).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::IpAddr;

use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use super::model::{
    DkimAuth, Note, NoteKind, PolicyPublished, PolicyReason, Record, ReportHeader, ReportMetadata, Schema,
    SpfAuth,
};
use super::xml::{RepairOptions, XmlRepair};
use super::{ReportError, ReportLimits};

/// The RFC 9990 namespace.
pub const NS_DMARC2: &str = "urn:ietf:params:xml:ns:dmarc-2.0";
/// The namespace of RFC 7489's published schema.
pub const NS_DMARC_XML: &str = "http://dmarc.org/dmarc-xml/0.1";

/// Most distinct examples kept per kind of odd value.
const MAX_EXAMPLES: usize = 3;
/// Longest value quoted in a note.
const MAX_QUOTE: usize = 60;

/// An element name: the known vocabulary without allocating.
type Name = Cow<'static, str>;

/// Every element name the reader knows (RFC 7489 and RFC 9990).
const KNOWN: &[&str] = &[
    "record",
    "row",
    "source_ip",
    "count",
    "policy_evaluated",
    "disposition",
    "dkim",
    "spf",
    "identifiers",
    "header_from",
    "envelope_from",
    "envelope_to",
    "auth_results",
    "domain",
    "result",
    "selector",
    "scope",
    "human_result",
    "reason",
    "type",
    "comment",
    "feedback",
    "version",
    "report_metadata",
    "org_name",
    "email",
    "extra_contact_info",
    "report_id",
    "date_range",
    "begin",
    "end",
    "error",
    "generator",
    "policy_published",
    "adkim",
    "aspf",
    "p",
    "sp",
    "np",
    "pct",
    "fo",
    "testing",
    "discovery_method",
    "version_published",
    "extensions",
    "extension",
];

fn name_of(local: &str) -> Name {
    if let Some(k) = KNOWN.iter().find(|k| **k == local) {
        return Cow::Borrowed(k);
    }
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(local)) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(local.to_ascii_lowercase()),
    }
}

/// A simplified XML event (text is in `AggregateReader::text`).
enum Ev {
    Start(Name),
    End,
    Text,
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Header,
    Done,
}

/// Oddities seen while reading, folded into [`Note`]s at the end.
#[derive(Default)]
struct NoteBag {
    unknown: BTreeMap<String, u64>,
    stray_text: u64,
    stray_text_example: Option<String>,
    bad: BTreeMap<&'static str, (u64, Vec<String>)>,
    missing: BTreeMap<&'static str, u64>,
    dropped: BTreeMap<&'static str, u64>,
    markup_in_text: u64,
    other: Vec<Note>,
}

impl NoteBag {
    fn bad(&mut self, what: &'static str, value: &str, record: u64) {
        let e = self.bad.entry(what).or_default();
        e.0 += 1;
        if e.1.len() < MAX_EXAMPLES {
            let v: String = value.chars().take(MAX_QUOTE).collect();
            e.1.push(if record > 0 {
                format!("{v:?} in record {record}")
            } else {
                format!("{v:?}")
            });
        }
    }

    fn notes(&self) -> Vec<Note> {
        let mut n = self.other.clone();
        if !self.unknown.is_empty() {
            let list: Vec<String> = self
                .unknown
                .iter()
                .take(12)
                .map(|(k, c)| {
                    if *c > 1 {
                        format!("<{k}> ×{c}")
                    } else {
                        format!("<{k}>")
                    }
                })
                .collect();
            let more = self.unknown.len().saturating_sub(12);
            n.push(Note::new(
                NoteKind::UnknownElement,
                format!(
                    "ignored elements the format does not define: {}{}",
                    list.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if self.stray_text > 0 {
            n.push(Note::new(
                NoteKind::StrayText,
                format!(
                    "ignored {} piece(s) of text between elements (first: {:?})",
                    self.stray_text,
                    self.stray_text_example.as_deref().unwrap_or("")
                ),
            ));
        }
        if self.markup_in_text > 0 {
            n.push(Note::new(
                NoteKind::UnescapedLt,
                format!(
                    "read {} tag(s) inside text-only elements as text",
                    self.markup_in_text
                ),
            ));
        }
        for (what, (count, examples)) in &self.bad {
            n.push(Note::new(
                NoteKind::BadValue,
                format!("{count} unreadable {what} value(s): {}", examples.join(", ")),
            ));
        }
        for (what, count) in &self.missing {
            n.push(Note::new(NoteKind::Missing, format!("{what} missing ({count}×)")));
        }
        for (what, count) in &self.dropped {
            n.push(Note::new(
                NoteKind::Dropped,
                format!("{count} {what} beyond the limit counted and dropped"),
            ));
        }
        n
    }
}

/// Reads one aggregate report: [`header`](Self::header) first, then
/// [`next_record`](Self::next_record) until `None`, then
/// [`notes`](Self::notes).
pub struct AggregateReader<R: Read> {
    xml: Reader<XmlRepair<R>>,
    buf: Vec<u8>,
    text: String,
    limits: ReportLimits,
    state: State,
    header: ReportHeader,
    have_policy: bool,
    have_metadata: bool,
    pending: VecDeque<Record>,
    record_started: bool,
    truncated: bool,
    records: u64,
    messages: u64,
    seen_records: u64,
    bag: NoteBag,
}

impl<R: Read> AggregateReader<R> {
    /// A reader over `input` (raw bytes; the repair pass is applied here).
    /// `force_utf8`: the bytes are UTF-8 whatever the XML declaration says
    /// (a mail part already converted from its charset).
    pub fn new(input: R, limits: &ReportLimits, force_utf8: bool) -> AggregateReader<R> {
        let repair = XmlRepair::new(
            input,
            RepairOptions {
                force_utf8,
                max_depth: limits.max_depth,
                max_text: limits.max_text,
            },
        );
        let mut xml = Reader::from_reader(repair);
        let cfg = xml.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.trim_text(false);
        AggregateReader {
            xml,
            buf: Vec::with_capacity(1024),
            text: String::new(),
            limits: limits.clone(),
            state: State::Start,
            header: ReportHeader::default(),
            have_policy: false,
            have_metadata: false,
            pending: VecDeque::new(),
            record_started: false,
            truncated: false,
            records: 0,
            messages: 0,
            seen_records: 0,
            bag: NoteBag::default(),
        }
    }

    /// Records handed out so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Messages (sum of `count`) of the records handed out so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The repairs made and oddities met so far.
    pub fn notes(&self) -> Vec<Note> {
        let mut n = self.xml.get_ref().stats().notes();
        n.extend(self.bag.notes());
        n
    }

    fn line(&self) -> u64 {
        self.xml.get_ref().line()
    }

    fn map_err(&mut self, e: quick_xml::Error) -> ReportError {
        if let Some(fatal) = self.xml.get_mut().take_fatal() {
            return fatal;
        }
        match e {
            quick_xml::Error::Io(io) => ReportError::Io(std::io::Error::new(io.kind(), io.to_string())),
            other => ReportError::Xml {
                line: self.line(),
                detail: other.to_string(),
            },
        }
    }

    fn next(&mut self) -> Result<Ev, ReportError> {
        loop {
            self.buf.clear();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.map_err(e)),
            };
            return Ok(match ev {
                Event::Start(s) => Ev::Start(name_of(s.local_name().as_ref())),
                Event::End(_) => Ev::End,
                Event::Text(t) => {
                    self.text.clear();
                    self.text.push_str(&t.xml10_content());
                    Ev::Text
                }
                Event::GeneralRef(r) => {
                    self.text.clear();
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => self.text.push(c),
                        _ => match r.xml10_content().as_ref() {
                            "amp" => self.text.push('&'),
                            "lt" => self.text.push('<'),
                            "gt" => self.text.push('>'),
                            "quot" => self.text.push('"'),
                            "apos" => self.text.push('\''),
                            other => {
                                self.text.push('&');
                                self.text.push_str(other);
                                self.text.push(';');
                            }
                        },
                    }
                    Ev::Text
                }
                Event::CData(c) => {
                    self.text.clear();
                    self.text.push_str(&c.xml10_content());
                    Ev::Text
                }
                Event::PI(p) => {
                    if p.target() == "mailwarden" {
                        self.truncated = true;
                    }
                    continue;
                }
                Event::Eof => Ev::Eof,
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::DocType(_) => continue,
            });
        }
    }

    /// Reads the text of the element whose start was just read, up to its
    /// end; markup inside is kept as text.
    fn leaf(&mut self) -> Result<String, ReportError> {
        let mut s = String::new();
        let mut depth = 0usize;
        let mut cut = false;
        loop {
            match self.next()? {
                Ev::Text => {
                    if s.len() + self.text.len() <= self.limits.max_text {
                        s.push_str(&self.text);
                    } else {
                        cut = true;
                    }
                }
                Ev::Start(name) => {
                    depth += 1;
                    self.bag.markup_in_text += 1;
                    if s.len() + name.len() + 2 <= self.limits.max_text {
                        s.push('<');
                        s.push_str(&name);
                        s.push('>');
                    }
                }
                Ev::End if depth > 0 => depth -= 1,
                Ev::End | Ev::Eof => break,
            }
        }
        if cut {
            self.bag
                .dropped
                .entry("bytes of over-long text")
                .and_modify(|c| *c += 1)
                .or_insert(1);
        }
        let end = s.trim_end().len();
        s.truncate(end);
        let start = s.len() - s.trim_start().len();
        if start > 0 {
            s.drain(..start);
        }
        Ok(s)
    }

    /// Skips the element whose start was just read.
    fn skip(&mut self) -> Result<(), ReportError> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Ev::Start(_) => depth += 1,
                Ev::End if depth > 0 => depth -= 1,
                Ev::End | Ev::Eof => return Ok(()),
                Ev::Text => {}
            }
        }
    }

    fn unknown(&mut self, parent: &str, name: &str) -> Result<(), ReportError> {
        let key: String = format!("{parent}/{name}").chars().take(80).collect();
        if self.bag.unknown.len() < 100 || self.bag.unknown.contains_key(&key) {
            *self.bag.unknown.entry(key).or_default() += 1;
        }
        self.skip()
    }

    /// The next child element of the current element (its start consumed),
    /// or `None` at the current element's end.
    fn child(&mut self) -> Result<Option<Name>, ReportError> {
        loop {
            match self.next()? {
                Ev::Start(name) => return Ok(Some(name)),
                Ev::End | Ev::Eof => return Ok(None),
                Ev::Text => {
                    let t = self.text.trim();
                    if !t.is_empty() {
                        self.bag.stray_text += 1;
                        if self.bag.stray_text_example.is_none() {
                            self.bag.stray_text_example = Some(t.chars().take(MAX_QUOTE).collect());
                        }
                    }
                }
            }
        }
    }

    fn opt_leaf(&mut self) -> Result<Option<String>, ReportError> {
        let s = self.leaf()?;
        Ok((!s.is_empty()).then_some(s))
    }

    fn lower_leaf(&mut self) -> Result<Option<String>, ReportError> {
        Ok(self.opt_leaf()?.map(|mut s| {
            s.make_ascii_lowercase();
            s
        }))
    }

    fn domain_leaf(&mut self) -> Result<Option<String>, ReportError> {
        Ok(self.lower_leaf()?.map(|mut s| {
            let keep = s.trim_end_matches('.').len();
            s.truncate(keep);
            s
        }))
    }

    /// Finds the root element.
    fn start(&mut self) -> Result<(), ReportError> {
        loop {
            self.buf.clear();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.map_err(e)),
            };
            match ev {
                Event::Start(s) => {
                    let local = s.local_name().as_ref().to_ascii_lowercase();
                    if local != "feedback" {
                        let root: String = s.name().as_ref().chars().take(60).collect();
                        return Err(ReportError::NotAggregate { root });
                    }
                    let prefix = s.name().prefix().map(|p| p.as_ref().to_owned());
                    let want = match &prefix {
                        Some(p) => format!("xmlns:{p}"),
                        None => "xmlns".to_owned(),
                    };
                    let mut ns = None;
                    for attr in s.attributes().with_checks(false).flatten() {
                        if attr.key.as_ref() == want {
                            ns = attr
                                .normalized_value(XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.trim().chars().take(200).collect::<String>());
                        }
                    }
                    if let Some(ns) = &ns {
                        if ns == NS_DMARC2 {
                            self.header.schema = Schema::Rfc9990;
                        } else if ns != NS_DMARC_XML && !ns.is_empty() {
                            self.bag.other.push(Note::new(
                                NoteKind::Namespace,
                                format!("unexpected namespace {ns:?}; read as a DMARC aggregate report"),
                            ));
                        }
                    }
                    self.header.namespace = ns.filter(|n| !n.is_empty());
                    return Ok(());
                }
                Event::Eof => {
                    return Err(ReportError::NotXml {
                        skipped: self.xml.get_ref().stats().stray_prefix,
                    });
                }
                _ => {}
            }
        }
    }

    /// Reads up to the first record and returns the header. Records that
    /// come before `<policy_published>` are read and kept (bounded by the
    /// record limit) until it appears.
    pub fn header(&mut self) -> Result<&ReportHeader, ReportError> {
        if self.state == State::Start {
            self.start()?;
            self.state = State::Header;
            let mut early = 0u64;
            loop {
                let Some(name) = self.child()? else {
                    self.state = State::Done;
                    break;
                };
                match name.as_ref() {
                    "record" if self.have_policy => {
                        self.record_started = true;
                        break;
                    }
                    "record" => {
                        if let Some(r) = self.record()? {
                            early += 1;
                            self.pending.push_back(r);
                        }
                    }
                    other => self.feedback_child(other)?,
                }
            }
            if early > 0 {
                self.bag.other.push(Note::new(
                    NoteKind::Missing,
                    format!("{early} record(s) came before <policy_published>"),
                ));
            }
            if !self.have_policy {
                return Err(ReportError::NoPolicy);
            }
            if !self.have_metadata {
                self.bag.missing.insert("<report_metadata>", 1);
            } else {
                if self.header.metadata.report_id.is_empty() {
                    self.bag.missing.insert("report_id", 1);
                }
                if self.header.metadata.org_name.is_empty() {
                    self.bag.missing.insert("org_name", 1);
                }
            }
            if self.header.policy.domain.is_empty() {
                self.bag.missing.insert("policy_published/domain", 1);
            }
            if self.state == State::Done {
                self.drain()?;
            }
        }
        Ok(&self.header)
    }

    /// The header read so far (complete once [`header`](Self::header) returned).
    pub fn current_header(&self) -> &ReportHeader {
        &self.header
    }

    /// Reads the rest of the input so trailing bytes are counted.
    fn drain(&mut self) -> Result<(), ReportError> {
        while !matches!(self.next()?, Ev::Eof) {}
        Ok(())
    }

    fn feedback_child(&mut self, name: &str) -> Result<(), ReportError> {
        match name {
            "version" => self.header.version = self.opt_leaf()?,
            "report_metadata" => {
                if self.records > 0 {
                    self.bag.other.push(Note::new(
                        NoteKind::Missing,
                        "<report_metadata> came after records; it applies to the whole report",
                    ));
                }
                self.metadata()?;
                self.have_metadata = true;
            }
            "policy_published" => {
                if self.have_policy {
                    self.bag.other.push(Note::new(
                        NoteKind::UnknownElement,
                        "a second <policy_published> was ignored",
                    ));
                    return self.skip();
                }
                self.policy()?;
                self.have_policy = true;
            }
            "extensions" => self.skip()?,
            other => self.unknown("feedback", other)?,
        }
        Ok(())
    }

    fn metadata(&mut self) -> Result<(), ReportError> {
        let mut m = ReportMetadata::default();
        while let Some(name) = self.child()? {
            match name.as_ref() {
                "org_name" => m.org_name = self.leaf()?,
                "email" => m.email = self.leaf()?,
                "extra_contact_info" => m.extra_contact_info = self.opt_leaf()?,
                "report_id" => m.report_id = self.leaf()?,
                "date_range" => {
                    while let Some(n) = self.child()? {
                        match n.as_ref() {
                            "begin" => m.begin = self.time_leaf("date_range/begin")?,
                            "end" => m.end = self.time_leaf("date_range/end")?,
                            other => self.unknown("date_range", other)?,
                        }
                    }
                }
                "error" => {
                    let e = self.leaf()?;
                    if !e.is_empty() && m.errors.len() < 20 {
                        m.errors.push(e);
                    }
                }
                "generator" => {
                    m.generator = self.opt_leaf()?;
                    self.header.schema = Schema::Rfc9990;
                }
                "extensions" => self.skip()?,
                other => self.unknown("report_metadata", other)?,
            }
        }
        self.header.metadata = m;
        Ok(())
    }

    fn time_leaf(&mut self, what: &'static str) -> Result<i64, ReportError> {
        let s = self.leaf()?;
        if let Ok(n) = s.parse::<i64>() {
            return Ok(n);
        }
        if let Ok(f) = s.parse::<f64>()
            && f.is_finite()
            && f.abs() < 1e15
        {
            return Ok(f as i64);
        }
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            self.bag.bad(what, &s, 0);
            return Ok(ts.as_second());
        }
        if s.is_empty() {
            *self.bag.missing.entry(what).or_default() += 1;
        } else {
            self.bag.bad(what, &s, 0);
        }
        Ok(0)
    }

    fn policy(&mut self) -> Result<(), ReportError> {
        let mut p = PolicyPublished::default();
        while let Some(name) = self.child()? {
            match name.as_ref() {
                "domain" => p.domain = self.domain_leaf()?.unwrap_or_default(),
                "adkim" => p.adkim = self.lower_leaf()?,
                "aspf" => p.aspf = self.lower_leaf()?,
                "p" => p.p = self.lower_leaf()?,
                "sp" => p.sp = self.lower_leaf()?,
                "np" => {
                    p.np = self.lower_leaf()?;
                    self.header.schema = Schema::Rfc9990;
                }
                "pct" => p.pct = self.opt_leaf()?,
                "fo" => p.fo = self.opt_leaf()?,
                "testing" => {
                    p.testing = self.lower_leaf()?;
                    self.header.schema = Schema::Rfc9990;
                }
                "discovery_method" => {
                    p.discovery_method = self.lower_leaf()?;
                    self.header.schema = Schema::Rfc9990;
                }
                // RFC 7489 drafts had version_published; harmless.
                "version_published" | "extensions" => self.skip()?,
                other => self.unknown("policy_published", other)?,
            }
        }
        self.header.policy = p;
        Ok(())
    }

    /// Returns the next record, or `None` after the last.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReportError> {
        if self.state == State::Start {
            self.header()?;
        }
        loop {
            if let Some(r) = self.pending.pop_front() {
                return self.hand_out(r).map(Some);
            }
            if self.state == State::Done {
                return Ok(None);
            }
            if self.record_started {
                self.record_started = false;
                if let Some(r) = self.record()? {
                    return self.hand_out(r).map(Some);
                }
                continue;
            }
            match self.child()? {
                None => {
                    self.state = State::Done;
                    self.drain()?;
                }
                Some(name) if name == "record" => self.record_started = true,
                Some(name) => self.feedback_child(&name)?,
            }
        }
    }

    fn hand_out(&mut self, r: Record) -> Result<Record, ReportError> {
        self.records += 1;
        if self.records > self.limits.max_records {
            return Err(ReportError::TooManyRecords {
                limit: self.limits.max_records,
            });
        }
        self.messages = self.messages.saturating_add(r.count);
        Ok(r)
    }

    /// Reads one `<record>` (its start consumed). `None` when the input
    /// ended inside it.
    fn record(&mut self) -> Result<Option<Record>, ReportError> {
        self.seen_records += 1;
        if self.seen_records > self.limits.max_records.saturating_add(1) {
            return Err(ReportError::TooManyRecords {
                limit: self.limits.max_records,
            });
        }
        let n = self.seen_records;
        let mut r = Record::default();
        let mut have_ip = false;
        let mut have_count = false;
        while let Some(name) = self.child()? {
            match name.as_ref() {
                "row" => {
                    while let Some(c) = self.child()? {
                        self.row_child(&c, &mut r, n, &mut have_ip, &mut have_count)?;
                    }
                }
                "source_ip" | "count" | "policy_evaluated" => {
                    self.bag.other.push(Note::new(
                        NoteKind::UnknownElement,
                        format!("<{name}> directly inside <record> (no <row>) accepted"),
                    ));
                    self.row_child(&name, &mut r, n, &mut have_ip, &mut have_count)?;
                }
                "identifiers" => {
                    while let Some(c) = self.child()? {
                        match c.as_ref() {
                            "envelope_to" => r.envelope_to = self.domain_leaf()?,
                            "envelope_from" => r.envelope_from = self.domain_leaf()?,
                            "header_from" => r.header_from = self.domain_leaf()?,
                            other => self.unknown("identifiers", other)?,
                        }
                    }
                }
                "auth_results" => self.auth_results(&mut r)?,
                "extensions" => self.skip()?,
                other => self.unknown("record", other)?,
            }
        }
        if self.truncated {
            self.bag.other.push(Note::new(
                NoteKind::Truncated,
                format!("record {n} was cut off by the end of input and not counted"),
            ));
            self.state = State::Done;
            return Ok(None);
        }
        if !have_ip {
            *self.bag.missing.entry("record source_ip").or_default() += 1;
        }
        if !have_count {
            *self.bag.missing.entry("record count (read as 0)").or_default() += 1;
        }
        Ok(Some(r))
    }

    fn row_child(
        &mut self,
        name: &str,
        r: &mut Record,
        n: u64,
        have_ip: &mut bool,
        have_count: &mut bool,
    ) -> Result<(), ReportError> {
        match name {
            "source_ip" => {
                let s = self.leaf()?;
                let bare = s.trim_matches(|c| c == '[' || c == ']');
                match bare.parse::<IpAddr>() {
                    Ok(ip) => r.source_ip = ip.to_string(),
                    Err(_) if s.is_empty() => {}
                    Err(_) => {
                        self.bag.bad("source_ip", &s, n);
                        r.source_ip = s.chars().take(100).collect();
                    }
                }
                *have_ip = !r.source_ip.is_empty();
            }
            "count" => {
                let s = self.leaf()?;
                match s.parse::<u64>() {
                    Ok(c) => r.count = c,
                    Err(_) => match s.parse::<f64>() {
                        Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e18 => {
                            r.count = f as u64
                        }
                        _ => self.bag.bad("count (read as 0)", &s, n),
                    },
                }
                *have_count = true;
            }
            "policy_evaluated" => {
                while let Some(c) = self.child()? {
                    match c.as_ref() {
                        "disposition" => r.disposition = self.lower_leaf()?,
                        "dkim" => r.dkim = self.lower_leaf()?,
                        "spf" => r.spf = self.lower_leaf()?,
                        "reason" => {
                            let mut reason = PolicyReason::default();
                            while let Some(x) = self.child()? {
                                match x.as_ref() {
                                    "type" => reason.kind = self.lower_leaf()?.unwrap_or_default(),
                                    "comment" => reason.comment = self.opt_leaf()?,
                                    other => self.unknown("reason", other)?,
                                }
                            }
                            if r.reasons.len() < 16 {
                                r.reasons.push(reason);
                            } else {
                                *self.bag.dropped.entry("policy override reasons").or_default() += 1;
                            }
                        }
                        other => self.unknown("policy_evaluated", other)?,
                    }
                }
            }
            other => self.unknown("row", other)?,
        }
        Ok(())
    }

    fn auth_results(&mut self, r: &mut Record) -> Result<(), ReportError> {
        while let Some(c) = self.child()? {
            match c.as_ref() {
                "dkim" => {
                    let mut d = DkimAuth::default();
                    while let Some(x) = self.child()? {
                        match x.as_ref() {
                            "domain" => d.domain = self.domain_leaf()?.unwrap_or_default(),
                            "selector" => d.selector = self.opt_leaf()?,
                            "result" => d.result = self.lower_leaf()?.unwrap_or_default(),
                            "human_result" => d.human_result = self.opt_leaf()?,
                            other => self.unknown("auth_results/dkim", other)?,
                        }
                    }
                    if r.dkim_results.len() < self.limits.max_auth_results {
                        r.dkim_results.push(d);
                    } else {
                        *self.bag.dropped.entry("DKIM results").or_default() += 1;
                    }
                }
                "spf" => {
                    let mut s = SpfAuth::default();
                    while let Some(x) = self.child()? {
                        match x.as_ref() {
                            "domain" => s.domain = self.domain_leaf()?.unwrap_or_default(),
                            "scope" => s.scope = self.lower_leaf()?,
                            "result" => s.result = self.lower_leaf()?.unwrap_or_default(),
                            "human_result" => s.human_result = self.opt_leaf()?,
                            other => self.unknown("auth_results/spf", other)?,
                        }
                    }
                    if r.spf_results.len() < self.limits.max_auth_results {
                        r.spf_results.push(s);
                    } else {
                        *self.bag.dropped.entry("SPF results").or_default() += 1;
                    }
                }
                other => self.unknown("auth_results", other)?,
            }
        }
        Ok(())
    }
}

/// Reads a whole report held in memory: header, records and notes.
pub fn read_all(
    input: &[u8],
    limits: &ReportLimits,
) -> Result<(ReportHeader, Vec<Record>, Vec<Note>), ReportError> {
    let mut r = AggregateReader::new(input, limits, false);
    let header = r.header()?.clone();
    let mut records = Vec::new();
    while let Some(rec) = r.next_record()? {
        records.push(rec);
    }
    Ok((header, records, r.notes()))
}
