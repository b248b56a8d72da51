//! The XML repair pass: any bytes in, well-formed UTF-8 XML out, streaming.
//!
//! Real DMARC reports are often broken: Latin-1 text in a document that
//! says UTF-8, `<` and `&` written raw in addresses, junk before `<?xml` or
//! after `</feedback>`, end tags that do not match, files cut short. A
//! strict parser (quick-xml) stops at the first of these. [`XmlRepair`]
//! sits between the raw bytes and quick-xml and rewrites the stream so that
//! what quick-xml sees is always well-formed:
//!
//! - the encoding comes from the BOM or the XML declaration (UTF-8, UTF-16,
//!   Latin-1, Windows-1252); bytes that are not valid UTF-8 in a UTF-8
//!   document are read as Latin-1, the usual cause;
//! - output has no XML declaration, DOCTYPE, comment or processing
//!   instruction; CDATA becomes escaped text;
//! - a `<` that does not begin a well-formed tag is text (`&lt;`), as is an
//!   `&` that does not begin one of the five predefined entities or a
//!   character reference (`&amp;`). No other entity exists for the reader:
//!   a DOCTYPE that declares entities fails the report (entity expansion and
//!   external entities are never processed), any other DOCTYPE is dropped;
//! - bytes before the root element and after it closes are skipped;
//! - an end tag closes the open elements above its match, an end tag that
//!   matches nothing is dropped, and at the end of input the open elements
//!   are closed after the marker `<?mailwarden truncated?>` (a processing
//!   instruction, which cannot come from the input), so the reader knows
//!   the last element is incomplete;
//! - nesting is bounded and text runs are cut at a limit, so quick-xml's
//!   buffers stay small whatever the input.
//!
//! Every repair is counted in [`RepairStats`] with the input line where it
//! first happened; [`RepairStats::notes`] says it in words.
//!
//! Hand-written rather than a crate: no streaming XML reader in Rust repairs
//! (quick-xml, xml-rs and roxmltree all stop at the first error; lxml's
//! "recover" mode is C), and the rules above are the ones that matter for
//! DMARC reports.

use std::io::{self, BufRead, Read};

use super::ReportError;
use super::model::{Note, NoteKind};

/// Bytes read from the inner reader at once.
const READ_CHUNK: usize = 64 * 1024;
/// Longest tag (start or end) recognised as markup; longer ones are text.
pub const MAX_TAG: usize = 8 * 1024;
/// Longest DOCTYPE accepted (then dropped).
const MAX_DOCTYPE: usize = 64 * 1024;
/// How far ahead the tokenizer looks.
const LOOKAHEAD: usize = MAX_TAG + 64;
/// Output produced per refill before handing it out.
const OUT_TARGET: usize = 16 * 1024;
/// Bytes examined for a BOM and an XML declaration.
const SNIFF: usize = 1024;
/// The marker put before synthesised end tags at a premature end of input.
pub const TRUNCATED_PI: &[u8] = b"<?mailwarden truncated?>";

/// Options of the repair pass.
#[derive(Clone, Debug)]
pub struct RepairOptions {
    /// The bytes are UTF-8 whatever the declaration says (a mail part
    /// already converted from its charset).
    pub force_utf8: bool,
    /// Deepest nesting; deeper fails with [`ReportError::TooDeep`].
    pub max_depth: usize,
    /// Longest run of text between two tags; the rest is cut.
    pub max_text: usize,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            force_utf8: false,
            max_depth: 32,
            max_text: 16 * 1024,
        }
    }
}

/// The character encoding the input is decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (invalid bytes read as Latin-1).
    Utf8,
    /// ISO-8859-1 (and US-ASCII).
    Latin1,
    /// Windows-1252.
    Windows1252,
    /// UTF-16, little endian.
    Utf16Le,
    /// UTF-16, big endian.
    Utf16Be,
}

/// What the repair pass changed, with the first input line of each kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// The encoding used.
    pub encoding: Option<Encoding>,
    /// The `encoding` of the XML declaration, when it was not understood.
    pub unsupported_encoding: Option<String>,
    /// Bytes not valid UTF-8, read as Latin-1.
    pub invalid_utf8: u64,
    /// Line of the first.
    pub invalid_utf8_line: u64,
    /// Invalid UTF-16 code units replaced by U+FFFD.
    pub invalid_utf16: u64,
    /// Bytes (not whitespace) before the root element.
    pub stray_prefix: u64,
    /// Bytes (not whitespace) after the root element closed.
    pub trailing: u64,
    /// `<` read as text.
    pub escaped_lt: u64,
    /// Line of the first.
    pub escaped_lt_line: u64,
    /// `&` read as text.
    pub escaped_amp: u64,
    /// Line of the first.
    pub escaped_amp_line: u64,
    /// Elements closed by a later end tag.
    pub auto_closed: u64,
    /// End tags that matched no open element, dropped.
    pub stray_end: u64,
    /// Line of the first mismatch.
    pub mismatch_line: u64,
    /// The open elements when the input ended early (`feedback/record`).
    pub truncated_inside: Option<String>,
    /// A DOCTYPE was dropped.
    pub doctype: bool,
    /// Text bytes cut.
    pub text_cut: u64,
    /// Line of the first cut.
    pub text_cut_line: u64,
    /// The text limit in force.
    pub max_text: usize,
}

impl RepairStats {
    /// Whether anything was repaired.
    pub fn is_clean(&self) -> bool {
        self.notes().is_empty()
    }

    /// The repairs in words, one note per kind.
    pub fn notes(&self) -> Vec<Note> {
        let mut n = Vec::new();
        if let Some(enc) = &self.unsupported_encoding {
            n.push(Note::new(
                NoteKind::Encoding,
                format!("declared encoding {enc:?} is not supported; read as UTF-8"),
            ));
        }
        if self.invalid_utf8 > 0 {
            n.push(Note::new(
                NoteKind::Encoding,
                format!(
                    "{} byte(s) that are not valid UTF-8 read as Latin-1 (first at line {})",
                    self.invalid_utf8, self.invalid_utf8_line
                ),
            ));
        }
        if self.invalid_utf16 > 0 {
            n.push(Note::new(
                NoteKind::Encoding,
                format!(
                    "{} invalid UTF-16 code unit(s) replaced with U+FFFD",
                    self.invalid_utf16
                ),
            ));
        }
        if self.stray_prefix > 0 {
            n.push(Note::new(
                NoteKind::StrayPrefix,
                format!("skipped {} byte(s) before the root element", self.stray_prefix),
            ));
        }
        if self.trailing > 0 {
            n.push(Note::new(
                NoteKind::TrailingData,
                format!(
                    "ignored {} byte(s) after the end of the root element",
                    self.trailing
                ),
            ));
        }
        if self.escaped_lt > 0 {
            n.push(Note::new(
                NoteKind::UnescapedLt,
                format!(
                    "read {} stray '<' as text (first at line {})",
                    self.escaped_lt, self.escaped_lt_line
                ),
            ));
        }
        if self.escaped_amp > 0 {
            n.push(Note::new(
                NoteKind::UnescapedAmp,
                format!(
                    "read {} stray '&' as text (first at line {})",
                    self.escaped_amp, self.escaped_amp_line
                ),
            ));
        }
        if self.auto_closed > 0 || self.stray_end > 0 {
            n.push(Note::new(
                NoteKind::MismatchedTags,
                format!(
                    "fixed mismatched end tags: closed {} element(s) left open, dropped {} end tag(s) that matched nothing (first at line {})",
                    self.auto_closed, self.stray_end, self.mismatch_line
                ),
            ));
        }
        if let Some(inside) = &self.truncated_inside {
            n.push(Note::new(
                NoteKind::Truncated,
                format!("the XML ends early, inside <{inside}> (truncated); the complete part was read"),
            ));
        }
        if self.doctype {
            n.push(Note::new(
                NoteKind::Doctype,
                "removed a <!DOCTYPE> declaration (it declared no entities)",
            ));
        }
        if self.text_cut > 0 {
            n.push(Note::new(
                NoteKind::TextCut,
                format!(
                    "cut {} byte(s) of text longer than {} bytes (first at line {})",
                    self.text_cut, self.max_text, self.text_cut_line
                ),
            ));
        }
        n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    Prolog,
    Content,
    Epilog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Comment,
    Pi,
    Cdata,
}

/// The open elements' names, in one buffer (no allocation per element).
#[derive(Default)]
struct NameStack {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl NameStack {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    fn last(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    fn push(&mut self, name: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
    }

    /// Writes `</name>` of the top element to `out` and removes it.
    fn pop_into(&mut self, out: &mut Vec<u8>) {
        if let Some(i) = self.len().checked_sub(1) {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            out.extend_from_slice(b"</");
            out.extend_from_slice(&self.bytes[start..]);
            out.push(b'>');
            self.bytes.truncate(start);
            self.ends.pop();
        }
    }

    /// The index of the innermost open element called `name`.
    fn rposition(&self, name: &[u8]) -> Option<usize> {
        (0..self.len()).rev().find(|&i| self.get(i) == name)
    }
}

/// The streaming repair pass over any reader; read the repaired XML from it
/// ([`BufRead`]).
pub struct XmlRepair<R> {
    inner: R,
    opts: RepairOptions,
    rbuf: Vec<u8>,
    raw: Vec<u8>,
    inner_eof: bool,
    sniffed: bool,
    encoding: Encoding,
    src: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    out_pos: usize,
    ctx: Ctx,
    mode: Mode,
    stack: NameStack,
    scratch: Vec<u8>,
    text_run: usize,
    line: u64,
    stats: RepairStats,
    done: bool,
    fatal: Option<ReportError>,
    fatal_msg: Option<String>,
}

impl<R: Read> XmlRepair<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, opts: RepairOptions) -> XmlRepair<R> {
        let max_text = opts.max_text.max(64);
        XmlRepair {
            inner,
            opts: RepairOptions { max_text, ..opts },
            rbuf: Vec::new(),
            raw: Vec::new(),
            inner_eof: false,
            sniffed: false,
            encoding: Encoding::Utf8,
            src: Vec::new(),
            pos: 0,
            out: Vec::new(),
            out_pos: 0,
            ctx: Ctx::Prolog,
            mode: Mode::Normal,
            stack: NameStack::default(),
            scratch: Vec::new(),
            text_run: 0,
            line: 1,
            stats: RepairStats {
                max_text,
                ..RepairStats::default()
            },
            done: false,
            fatal: None,
            fatal_msg: None,
        }
    }

    /// What was repaired so far.
    pub fn stats(&self) -> &RepairStats {
        &self.stats
    }

    /// The input line the tokenizer has reached (it reads ahead of the
    /// consumer by up to a buffer).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The fatal error that stopped the pass, if any (taken once).
    pub fn take_fatal(&mut self) -> Option<ReportError> {
        self.fatal.take()
    }

    /// Whether the root element was found and the pass is past its end.
    pub fn root_closed(&self) -> bool {
        self.ctx == Ctx::Epilog
    }

    // ---- stage 1: bytes → UTF-8 ----

    fn read_inner(&mut self) -> io::Result<usize> {
        if self.rbuf.len() != READ_CHUNK {
            self.rbuf.resize(READ_CHUNK, 0);
        }
        loop {
            match self.inner.read(&mut self.rbuf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes one more chunk of input into `src`.
    fn fill_src(&mut self) -> io::Result<()> {
        if self.pos > 0 && self.pos * 2 >= self.src.len() {
            self.src.drain(..self.pos);
            self.pos = 0;
        }
        if !self.sniffed {
            while self.raw.len() < SNIFF && !self.inner_eof {
                let n = self.read_inner()?;
                if n == 0 {
                    self.inner_eof = true;
                } else {
                    self.raw.extend_from_slice(&self.rbuf[..n]);
                }
            }
            self.sniff();
            self.sniffed = true;
        } else if !self.inner_eof {
            let n = self.read_inner()?;
            if n == 0 {
                self.inner_eof = true;
            } else {
                self.raw.extend_from_slice(&self.rbuf[..n]);
            }
        }
        self.decode();
        Ok(())
    }

    fn src_eof(&self) -> bool {
        self.inner_eof && self.raw.is_empty()
    }

    fn sniff(&mut self) {
        let head = &self.raw[..];
        let (enc, bom) = if head.starts_with(b"\xEF\xBB\xBF") {
            (Encoding::Utf8, 3)
        } else if head.starts_with(b"\xFF\xFE") {
            (Encoding::Utf16Le, 2)
        } else if head.starts_with(b"\xFE\xFF") {
            (Encoding::Utf16Be, 2)
        } else if head.starts_with(b"<\0?\0") {
            (Encoding::Utf16Le, 0)
        } else if head.starts_with(b"\0<\0?") {
            (Encoding::Utf16Be, 0)
        } else {
            (self.declared_encoding(), 0)
        };
        let enc = if self.opts.force_utf8 { Encoding::Utf8 } else { enc };
        self.raw.drain(..bom);
        self.encoding = enc;
        self.stats.encoding = Some(enc);
    }

    /// The encoding named by an XML declaration in the first bytes.
    fn declared_encoding(&mut self) -> Encoding {
        let head = &self.raw[..self.raw.len().min(SNIFF)];
        let Some(start) = memchr::memmem::find(head, b"<?xml") else {
            return Encoding::Utf8;
        };
        let rest = &head[start..];
        let end = memchr::memmem::find(rest, b"?>").unwrap_or(rest.len());
        let decl = &rest[..end];
        let Some(at) = memchr::memmem::find(decl, b"encoding") else {
            return Encoding::Utf8;
        };
        let after = &decl[at + 8..];
        let after = after.trim_ascii_start();
        let Some(after) = after.strip_prefix(b"=") else {
            return Encoding::Utf8;
        };
        let after = after.trim_ascii_start();
        let Some(&q) = after.first() else {
            return Encoding::Utf8;
        };
        if q != b'"' && q != b'\'' {
            return Encoding::Utf8;
        }
        let Some(close) = memchr::memchr(q, &after[1..]) else {
            return Encoding::Utf8;
        };
        let name = String::from_utf8_lossy(&after[1..1 + close]).to_ascii_lowercase();
        match name.trim() {
            "utf-8" | "utf8" | "" => Encoding::Utf8,
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1" | "us-ascii"
            | "ascii" => Encoding::Latin1,
            "windows-1252" | "cp1252" | "x-cp1252" => Encoding::Windows1252,
            // An 8-bit document whose declaration says UTF-16 (the
            // declaration itself was found as ASCII): it is not UTF-16.
            "utf-16" | "utf16" => Encoding::Utf8,
            other => {
                self.stats.unsupported_encoding = Some(other.chars().take(40).collect());
                Encoding::Utf8
            }
        }
    }

    fn decode(&mut self) {
        let eof = self.inner_eof;
        match self.encoding {
            Encoding::Utf8 => self.decode_utf8(eof),
            Encoding::Latin1 | Encoding::Windows1252 => {
                let w1252 = self.encoding == Encoding::Windows1252;
                for i in 0..self.raw.len() {
                    let b = self.raw[i];
                    let c = if w1252 { windows_1252(b) } else { char::from(b) };
                    push_char(&mut self.src, c);
                }
                self.raw.clear();
            }
            Encoding::Utf16Le | Encoding::Utf16Be => self.decode_utf16(eof),
        }
    }

    fn decode_utf8(&mut self, eof: bool) {
        let mut i = 0;
        let data = std::mem::take(&mut self.raw);
        loop {
            match std::str::from_utf8(&data[i..]) {
                Ok(s) => {
                    self.src.extend_from_slice(s.as_bytes());
                    i = data.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.src.extend_from_slice(&data[i..i + valid]);
                    i += valid;
                    let bad = match e.error_len() {
                        Some(n) => n,
                        None if eof => data.len() - i,
                        None => break,
                    };
                    if self.stats.invalid_utf8 == 0 {
                        self.stats.invalid_utf8_line =
                            self.line + memchr::memchr_iter(b'\n', &self.src[self.pos..]).count() as u64;
                    }
                    for &b in &data[i..i + bad] {
                        push_char(&mut self.src, char::from(b));
                    }
                    self.stats.invalid_utf8 += bad as u64;
                    i += bad;
                }
            }
        }
        self.raw = data;
        self.raw.drain(..i);
    }

    fn decode_utf16(&mut self, eof: bool) {
        let le = self.encoding == Encoding::Utf16Le;
        let mut units: Vec<u16> = self
            .raw
            .chunks_exact(2)
            .map(|p| {
                if le {
                    u16::from_le_bytes([p[0], p[1]])
                } else {
                    u16::from_be_bytes([p[0], p[1]])
                }
            })
            .collect();
        let mut keep = self.raw.len() % 2;
        // A high surrogate at the end waits for its partner.
        if !eof && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            units.pop();
            keep += 2;
        }
        for r in char::decode_utf16(units.iter().copied()) {
            match r {
                Ok(c) => push_char(&mut self.src, c),
                Err(_) => {
                    self.stats.invalid_utf16 += 1;
                    push_char(&mut self.src, '\u{FFFD}');
                }
            }
        }
        if eof && keep > 0 {
            self.stats.invalid_utf16 += 1;
            push_char(&mut self.src, '\u{FFFD}');
            keep = 0;
        }
        let n = self.raw.len() - keep;
        self.raw.drain(..n);
    }

    // ---- stage 2: tokens ----

    /// Makes at least `n` bytes available after `pos` unless the input ends
    /// first. Returns the bytes available.
    fn need(&mut self, n: usize) -> io::Result<usize> {
        while self.src.len() - self.pos < n && !self.src_eof() {
            let before = self.src.len() - self.pos;
            self.fill_src()?;
            if self.src.len() - self.pos == before && self.inner_eof && self.raw.is_empty() {
                break;
            }
        }
        Ok(self.src.len() - self.pos)
    }

    fn advance(&mut self, n: usize) {
        let end = self.pos + n;
        self.line += memchr::memchr_iter(b'\n', &self.src[self.pos..end]).count() as u64;
        self.pos = end;
    }

    fn emit_text_from_src(&mut self, len: usize) {
        let start = self.pos;
        let room = self.opts.max_text.saturating_sub(self.text_run);
        let mut keep = len.min(room);
        while keep > 0 && keep < len && (self.src[start + keep] & 0xC0) == 0x80 {
            keep -= 1;
        }
        self.out.extend_from_slice(&self.src[start..start + keep]);
        self.text_run += len;
        if keep < len {
            if self.stats.text_cut == 0 {
                self.stats.text_cut_line = self.line;
            }
            self.stats.text_cut += (len - keep) as u64;
        }
        self.advance(len);
    }

    fn emit_escaped_text(&mut self, s: &[u8]) {
        let room = self.opts.max_text.saturating_sub(self.text_run);
        self.text_run += s.len();
        if room == 0 {
            if self.stats.text_cut == 0 {
                self.stats.text_cut_line = self.line;
            }
            self.stats.text_cut += s.len() as u64;
            return;
        }
        self.out.extend_from_slice(s);
    }

    fn escape_lt(&mut self) {
        if self.stats.escaped_lt == 0 {
            self.stats.escaped_lt_line = self.line;
        }
        self.stats.escaped_lt += 1;
        self.emit_escaped_text(b"&lt;");
        self.advance(1);
    }

    fn fail(&mut self, err: ReportError) -> io::Error {
        let msg = err.to_string();
        self.fatal = Some(err);
        self.fatal_msg = Some(msg.clone());
        self.done = true;
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    /// Runs the tokenizer until enough output is ready or the input ends.
    fn produce(&mut self) -> io::Result<()> {
        while self.out.len() < OUT_TARGET && !self.done {
            match self.mode {
                Mode::Normal => match self.ctx {
                    Ctx::Prolog => self.step_prolog()?,
                    Ctx::Content => self.step_content()?,
                    Ctx::Epilog => self.step_epilog()?,
                },
                Mode::Comment => self.step_skip(b"-->")?,
                Mode::Pi => self.step_skip(b"?>")?,
                Mode::Cdata => self.step_cdata()?,
            }
        }
        Ok(())
    }

    fn at_eof(&mut self) {
        if self.ctx == Ctx::Content {
            let path: Vec<String> = (0..self.stack.len())
                .map(|i| String::from_utf8_lossy(self.stack.get(i)).into_owned())
                .collect();
            self.stats.truncated_inside = Some(path.join("/"));
            self.out.extend_from_slice(TRUNCATED_PI);
            while !self.stack.is_empty() {
                self.stack.pop_into(&mut self.out);
            }
            self.ctx = Ctx::Epilog;
        }
        self.mode = Mode::Normal;
        self.done = true;
    }

    fn step_prolog(&mut self) -> io::Result<()> {
        let avail = self.need(LOOKAHEAD)?;
        if avail == 0 {
            self.at_eof();
            return Ok(());
        }
        let a = &self.src[self.pos..];
        if a[0] != b'<' {
            let stop = memchr::memchr(b'<', a).unwrap_or(a.len());
            self.stats.stray_prefix += a[..stop].iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
            self.advance(stop);
            return Ok(());
        }
        if a.starts_with(b"<?") {
            self.mode = Mode::Pi;
            self.advance(2);
        } else if a.starts_with(b"<!--") {
            self.mode = Mode::Comment;
            self.advance(4);
        } else if a.len() >= 9 && a[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
            self.doctype()?;
        } else if let Some(tag) = parse_start(a) {
            let empty = tag.empty;
            self.emit_start(&tag)?;
            self.ctx = if empty { Ctx::Epilog } else { Ctx::Content };
        } else {
            self.stats.stray_prefix += 1;
            self.advance(1);
        }
        Ok(())
    }

    fn doctype(&mut self) -> io::Result<()> {
        let start_line = self.line;
        self.need(MAX_DOCTYPE + 1)?;
        let a = &self.src[self.pos..];
        let mut i = 9;
        let mut depth = 0usize;
        let mut quote = 0u8;
        let mut end = None;
        while i < a.len() && i <= MAX_DOCTYPE {
            let b = a[i];
            if quote != 0 {
                if b == quote {
                    quote = 0;
                }
            } else if b == b'"' || b == b'\'' {
                quote = b;
            } else if b == b'[' {
                depth += 1;
            } else if b == b']' {
                depth = depth.saturating_sub(1);
            } else if b == b'<' && a[i..].len() >= 8 && a[i..i + 8].eq_ignore_ascii_case(b"<!ENTITY") {
                let line = start_line + memchr::memchr_iter(b'\n', &a[..i]).count() as u64;
                return Err(self.fail(ReportError::Entities { line }));
            } else if b == b'>' && depth == 0 {
                end = Some(i + 1);
                break;
            }
            i += 1;
        }
        match end {
            Some(n) => {
                self.stats.doctype = true;
                self.advance(n);
                Ok(())
            }
            None if i > MAX_DOCTYPE => Err(self.fail(ReportError::DoctypeTooLong {
                limit: MAX_DOCTYPE,
                line: start_line,
            })),
            None => {
                // The input ends inside the DOCTYPE: nothing after it.
                let n = a.len();
                self.stats.doctype = true;
                self.advance(n);
                Ok(())
            }
        }
    }

    fn emit_start(&mut self, tag: &StartTag) -> io::Result<()> {
        if !tag.empty && self.stack.len() >= self.opts.max_depth {
            let line = self.line;
            return Err(self.fail(ReportError::TooDeep {
                limit: self.opts.max_depth,
                line,
            }));
        }
        let a = &self.src[self.pos..];
        let name = &a[tag.name.0..tag.name.1];
        self.out.push(b'<');
        self.out.extend_from_slice(name);
        let mut seen: Vec<&[u8]> = Vec::new();
        let mut lt = 0u64;
        let mut amp = 0u64;
        for at in &tag.attrs {
            let an = &a[at.name.0..at.name.1];
            if seen.contains(&an) {
                continue;
            }
            seen.push(an);
            self.out.push(b' ');
            self.out.extend_from_slice(an);
            self.out.extend_from_slice(b"=\"");
            let v = &a[at.value.0..at.value.1];
            let mut j = 0;
            while j < v.len() {
                match v[j] {
                    b'<' => {
                        self.out.extend_from_slice(b"&lt;");
                        lt += 1;
                    }
                    b'"' => self.out.extend_from_slice(b"&quot;"),
                    b'&' => match parse_ref(&v[j..]) {
                        Some(n) => {
                            self.out.extend_from_slice(&v[j..j + n]);
                            j += n;
                            continue;
                        }
                        None => {
                            self.out.extend_from_slice(b"&amp;");
                            amp += 1;
                        }
                    },
                    b => self.out.push(b),
                }
                j += 1;
            }
            self.out.push(b'"');
        }
        if tag.empty {
            self.out.extend_from_slice(b"/>");
        } else {
            self.out.push(b'>');
            self.stack.push(name);
        }
        if lt > 0 {
            if self.stats.escaped_lt == 0 {
                self.stats.escaped_lt_line = self.line;
            }
            self.stats.escaped_lt += lt;
        }
        if amp > 0 {
            if self.stats.escaped_amp == 0 {
                self.stats.escaped_amp_line = self.line;
            }
            self.stats.escaped_amp += amp;
        }
        self.text_run = 0;
        self.advance(tag.len);
        Ok(())
    }

    fn handle_end(&mut self, name: &[u8]) {
        if self.stack.last() == Some(name) {
            self.stack.pop_into(&mut self.out);
        } else if let Some(k) = self.stack.rposition(name) {
            if self.stats.auto_closed == 0 && self.stats.stray_end == 0 {
                self.stats.mismatch_line = self.line;
            }
            while self.stack.len() > k {
                if self.stack.len() > k + 1 {
                    self.stats.auto_closed += 1;
                }
                self.stack.pop_into(&mut self.out);
            }
        } else {
            if self.stats.auto_closed == 0 && self.stats.stray_end == 0 {
                self.stats.mismatch_line = self.line;
            }
            self.stats.stray_end += 1;
        }
        self.text_run = 0;
        if self.stack.is_empty() {
            self.ctx = Ctx::Epilog;
        }
    }

    fn step_content(&mut self) -> io::Result<()> {
        let avail = self.need(LOOKAHEAD)?;
        if avail == 0 {
            self.at_eof();
            return Ok(());
        }
        let a = &self.src[self.pos..];
        match memchr::memchr2(b'<', b'&', a) {
            None => {
                self.emit_text_from_src(avail);
                return Ok(());
            }
            Some(i) if i > 0 => {
                self.emit_text_from_src(i);
                return Ok(());
            }
            Some(_) => {}
        }
        if a[0] == b'&' {
            match parse_ref(a) {
                Some(n) => self.emit_text_from_src(n),
                None => {
                    if self.stats.escaped_amp == 0 {
                        self.stats.escaped_amp_line = self.line;
                    }
                    self.stats.escaped_amp += 1;
                    self.emit_escaped_text(b"&amp;");
                    self.advance(1);
                }
            }
            return Ok(());
        }
        if a.starts_with(b"<!--") {
            self.mode = Mode::Comment;
            self.advance(4);
        } else if a.starts_with(b"<![CDATA[") {
            self.mode = Mode::Cdata;
            self.advance(9);
        } else if a.starts_with(b"<?") {
            self.mode = Mode::Pi;
            self.advance(2);
        } else if a.get(1) == Some(&b'/') {
            match parse_end(a) {
                Some((len, s, e)) => {
                    let mut name = std::mem::take(&mut self.scratch);
                    name.clear();
                    name.extend_from_slice(&a[s..e]);
                    self.handle_end(&name);
                    self.scratch = name;
                    self.advance(len);
                }
                None => self.escape_lt(),
            }
        } else if let Some(tag) = parse_start(a) {
            self.emit_start(&tag)?;
        } else {
            self.escape_lt();
        }
        Ok(())
    }

    fn step_epilog(&mut self) -> io::Result<()> {
        let avail = self.need(LOOKAHEAD)?;
        if avail == 0 {
            self.at_eof();
            return Ok(());
        }
        let a = &self.src[self.pos..];
        if a.starts_with(b"<!--") {
            self.mode = Mode::Comment;
            self.advance(4);
            return Ok(());
        }
        if a.starts_with(b"<?") && !a.starts_with(b"<?xml") {
            self.mode = Mode::Pi;
            self.advance(2);
            return Ok(());
        }
        // Count up to the next possible comment.
        let stop = memchr::memchr(b'<', &a[1..]).map_or(a.len(), |i| i + 1);
        self.stats.trailing += a[..stop].iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
        self.advance(stop);
        Ok(())
    }

    /// Skips a comment or processing instruction up to `term`.
    fn step_skip(&mut self, term: &[u8]) -> io::Result<()> {
        let avail = self.need(term.len())?;
        let a = &self.src[self.pos..];
        match memchr::memmem::find(a, term) {
            Some(i) => {
                self.advance(i + term.len());
                self.mode = Mode::Normal;
            }
            None if self.src_eof() => {
                self.advance(avail);
                self.at_eof();
            }
            None => {
                let n = avail.saturating_sub(term.len() - 1);
                self.advance(n);
                self.fill_src()?;
            }
        }
        Ok(())
    }

    fn step_cdata(&mut self) -> io::Result<()> {
        let avail = self.need(3)?;
        let a = &self.src[self.pos..];
        let (text_len, done) = match memchr::memmem::find(a, b"]]>") {
            Some(i) => (i, true),
            None if self.src_eof() => (avail, true),
            None => {
                let mut n = avail.saturating_sub(2);
                while n > 0 && (a[n] & 0xC0) == 0x80 {
                    n -= 1;
                }
                (n, false)
            }
        };
        let mut esc = Vec::with_capacity(text_len + 16);
        for &b in &a[..text_len] {
            match b {
                b'<' => esc.extend_from_slice(b"&lt;"),
                b'&' => esc.extend_from_slice(b"&amp;"),
                b'>' => esc.extend_from_slice(b"&gt;"),
                _ => esc.push(b),
            }
        }
        self.emit_escaped_text(&esc);
        self.advance(text_len);
        if done {
            if avail >= text_len + 3 {
                self.advance(3);
                self.mode = Mode::Normal;
            } else {
                self.at_eof();
            }
        } else {
            self.fill_src()?;
        }
        Ok(())
    }
}

impl<R: Read> BufRead for XmlRepair<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(msg) = &self.fatal_msg {
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg.clone()));
        }
        while self.out_pos >= self.out.len() && !self.done {
            self.out.clear();
            self.out_pos = 0;
            self.produce()?;
        }
        Ok(&self.out[self.out_pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.out_pos = (self.out_pos + amt).min(self.out.len());
    }
}

impl<R: Read> Read for XmlRepair<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// Windows-1252's 0x80–0x9F; the rest is Latin-1.
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
        '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}', '\u{017D}', '\u{FFFD}',
        '\u{FFFD}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
        '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    if (0x80..0xA0).contains(&b) {
        HIGH[usize::from(b - 0x80)]
    } else {
        char::from(b)
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':')
}

/// Length of the name starting at `i` (0 when none).
fn scan_name(a: &[u8], i: usize) -> usize {
    match a.get(i) {
        Some(&b) if is_name_start(b) => {}
        _ => return 0,
    }
    let mut j = i + 1;
    while j < a.len() && j < MAX_TAG && is_name_char(a[j]) {
        j += 1;
    }
    j - i
}

fn skip_ws(a: &[u8], mut i: usize) -> usize {
    while i < a.len() && a[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A recognised start tag: byte ranges into the slice it was parsed from.
struct StartTag {
    len: usize,
    name: (usize, usize),
    attrs: Vec<Attr>,
    empty: bool,
}

struct Attr {
    name: (usize, usize),
    value: (usize, usize),
}

/// Parses `<name attr="v" …>` or `…/>` at the start of `a`. Attribute
/// values may be unquoted (they are re-quoted); anything else that is not
/// well-formed, or a tag longer than [`MAX_TAG`], is not a tag.
fn parse_start(a: &[u8]) -> Option<StartTag> {
    let limit = a.len().min(MAX_TAG);
    let a = &a[..limit];
    let n = scan_name(a, 1);
    if n == 0 {
        return None;
    }
    let name = (1, 1 + n);
    let mut i = 1 + n;
    let mut attrs = Vec::new();
    let mut after_value = false;
    loop {
        let ws_start = i;
        i = skip_ws(a, i);
        let had_ws = i > ws_start;
        let &b = a.get(i)?;
        if b == b'>' {
            return Some(StartTag {
                len: i + 1,
                name,
                attrs,
                empty: false,
            });
        }
        if b == b'/' {
            return (a.get(i + 1) == Some(&b'>')).then_some(StartTag {
                len: i + 2,
                name,
                attrs,
                empty: true,
            });
        }
        if !had_ws && !after_value {
            return None;
        }
        let an = scan_name(a, i);
        if an == 0 || attrs.len() >= 64 {
            return None;
        }
        let aname = (i, i + an);
        i = skip_ws(a, i + an);
        if a.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(a, i + 1);
        let &q = a.get(i)?;
        let value = if q == b'"' || q == b'\'' {
            let close = memchr::memchr(q, &a[i + 1..])?;
            let v = (i + 1, i + 1 + close);
            i = i + 2 + close;
            v
        } else {
            let s = i;
            while i < a.len() && !a[i].is_ascii_whitespace() && a[i] != b'>' && !a[i..].starts_with(b"/>") {
                if matches!(a[i], b'<' | b'"' | b'\'' | b'=') {
                    return None;
                }
                i += 1;
            }
            if i == s {
                return None;
            }
            (s, i)
        };
        attrs.push(Attr { name: aname, value });
        after_value = true;
    }
}

/// Parses `</name>` (whitespace allowed before `>`): (length, name range).
fn parse_end(a: &[u8]) -> Option<(usize, usize, usize)> {
    let a = &a[..a.len().min(MAX_TAG)];
    let n = scan_name(a, 2);
    if n == 0 {
        return None;
    }
    let i = skip_ws(a, 2 + n);
    (a.get(i) == Some(&b'>')).then_some((i + 1, 2, 2 + n))
}

/// Length of a valid reference at the start of `a` (`&amp;`, `&#60;`,
/// `&#x3C;` …), or `None`.
fn parse_ref(a: &[u8]) -> Option<usize> {
    let semi = memchr::memchr(b';', &a[1..a.len().min(12)])? + 1;
    let body = &a[1..semi];
    let ok = match body {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => true,
        [b'#', b'x', hex @ ..]
            if !hex.is_empty() && hex.len() <= 6 && hex.iter().all(u8::is_ascii_hexdigit) =>
        {
            let v = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            xml_char(v)
        }
        [b'#', dec @ ..] if !dec.is_empty() && dec.len() <= 7 && dec.iter().all(u8::is_ascii_digit) => {
            let v: u32 = std::str::from_utf8(dec).ok()?.parse().ok()?;
            xml_char(v)
        }
        _ => false,
    };
    ok.then_some(semi + 1)
}

/// Whether `v` is a character XML 1.0 allows.
fn xml_char(v: u32) -> bool {
    matches!(v, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Repairs a whole document held in memory (tests and small inputs).
pub fn repair_all(input: &[u8], opts: RepairOptions) -> Result<(String, RepairStats), ReportError> {
    let mut r = XmlRepair::new(input, opts);
    let mut out = Vec::new();
    if let Err(e) = r.read_to_end(&mut out) {
        return Err(r.take_fatal().unwrap_or(ReportError::Io(e)));
    }
    let text = String::from_utf8(out).map_err(|e| ReportError::Xml {
        line: 0,
        detail: format!("repair produced invalid UTF-8: {e}"),
    })?;
    Ok((text, r.stats))
}
