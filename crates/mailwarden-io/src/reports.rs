//! Finding and opening DMARC aggregate and SMTP TLS reports: files and
//! directories (walked recursively; Maildir folders read as mail), gzip and
//! zip (with expansion limits), single mails (`.eml`), mbox files, and the
//! attachments of mails — all recognised by content, never by name.
//!
//! Each report found is handed to a [`ReportSink`] as a stream
//! ([`DmarcInput`], read one record at a time) or, for the small TLS
//! reports, parsed. Whatever cannot be read is reported to the sink as a
//! failure with its origin ([`Origin`]: file, message, attachment, archive
//! entry) and the reason, and reading goes on with the next one. Files met
//! while walking a directory that are not reports are reported as
//! skipped; files named explicitly that are not reports are failures.
//!
//! Bounds: every decompressed stream is limited in size and in expansion
//! ratio ([`ExpansionLimits`]), and every input file has a total budget over
//! all its layers, so zip and gzip bombs stop early; mails are read whole
//! only up to [`ReadConfig::max_mail_bytes`]; archives are read up to
//! [`ReadConfig::max_zip_entries`] entries; containers nest at most
//! [`ReadConfig::max_nesting`] deep. mbox files are split here rather than
//! with mail-parser's iterator, which has no bound on a message's size.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailwarden_core::report::sniff::SNIFF_BYTES;
use mailwarden_core::report::tls::read_tls;
use mailwarden_core::report::{
    AggregateReader, ContentKind, Note, NoteKind, Record, ReportError, ReportHeader, ReportLimits, TlsReport,
    sniff,
};

/// Limits on one decompressed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// Most bytes one decompressed report may have.
    pub max_bytes: u64,
    /// Most output bytes per compressed byte (checked once past `ratio_floor`).
    pub max_ratio: u64,
    /// Output below which the ratio is not checked.
    pub ratio_floor: u64,
    /// Most decompressed bytes over all layers and entries of one input file.
    pub max_total: u64,
}

impl Default for ExpansionLimits {
    fn default() -> Self {
        ExpansionLimits {
            max_bytes: 100 << 20,
            max_ratio: 250,
            ratio_floor: 1 << 20,
            max_total: 1 << 30,
        }
    }
}

/// How to read inputs.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// Limits of the report readers.
    pub limits: ReportLimits,
    /// Decompression limits.
    pub expansion: ExpansionLimits,
    /// Largest mail read (mails are parsed whole).
    pub max_mail_bytes: u64,
    /// Most entries read from one zip archive.
    pub max_zip_entries: usize,
    /// Deepest nesting of containers (a zip in a mail in a gzip …).
    pub max_nesting: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            limits: ReportLimits::default(),
            expansion: ExpansionLimits::default(),
            max_mail_bytes: 64 << 20,
            max_zip_entries: 1000,
            max_nesting: 4,
        }
    }
}

/// Where a report (or a failure) came from: the file, then the parts
/// inside it (`message 3`, `attachment "x.zip"`, `entry "y.xml"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The input file (`-` for standard input).
    pub file: PathBuf,
    /// The way into the file.
    pub parts: Vec<String>,
}

impl Origin {
    fn new(file: &Path) -> Origin {
        Origin {
            file: file.to_path_buf(),
            parts: Vec::new(),
        }
    }

    fn child(&self, part: String) -> Origin {
        let mut o = self.clone();
        o.parts.push(part);
        o
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        for p in &self.parts {
            write!(f, ": {p}")?;
        }
        Ok(())
    }
}

/// Receives what [`read_reports`] finds.
pub trait ReportSink {
    /// An input file is about to be read (for progress displays).
    fn file_started(&mut self, _index: usize, _total: usize, _path: &Path, _size: Option<u64>) {}
    /// A DMARC aggregate report: read its header and records from `report`.
    /// An error fails the report (it is then passed to [`failed`](Self::failed)).
    fn dmarc(&mut self, origin: &Origin, report: &mut DmarcInput<'_>) -> Result<(), ReportError>;
    /// An SMTP TLS report, with the repairs made while reading it.
    fn tls(&mut self, origin: &Origin, report: TlsReport, notes: Vec<Note>);
    /// Something that should hold a report could not be read.
    fn failed(&mut self, origin: &Origin, reason: &str);
    /// Something met while walking that is not a report.
    fn skipped(&mut self, origin: &Origin, reason: &str);
}

/// An aggregate report being read: the header, then records one by one.
pub struct DmarcInput<'a> {
    reader: AggregateReader<Box<dyn Read + 'a>>,
    container: Rc<RefCell<Vec<Note>>>,
}

impl DmarcInput<'_> {
    /// The report's header (read up to the first record).
    pub fn header(&mut self) -> Result<&ReportHeader, ReportError> {
        self.reader.header()
    }

    /// The next record, `None` after the last.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReportError> {
        self.reader.next_record()
    }

    /// Records handed out.
    pub fn records(&self) -> u64 {
        self.reader.records()
    }

    /// Messages of the records handed out.
    pub fn messages(&self) -> u64 {
        self.reader.messages()
    }

    /// Repairs and oddities: the container's (gzip, attachment) and the
    /// report's. Complete once the last record was read.
    pub fn notes(&self) -> Vec<Note> {
        let mut n = self.container.borrow().clone();
        n.extend(self.reader.notes());
        n
    }
}

/// What [`collect_inputs`] found.
#[derive(Debug, Default)]
pub struct InputList {
    /// Files to read, in order.
    pub files: Vec<InputFile>,
    /// Paths that could not be listed or opened, with the reason.
    pub errors: Vec<(PathBuf, String)>,
    /// Entries deliberately not read (with the reason).
    pub skipped: Vec<(PathBuf, String)>,
}

/// One file to read.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The path (`-`: standard input).
    pub path: PathBuf,
    /// Named on the command line (not found by walking a directory).
    pub explicit: bool,
    /// Size in bytes, when known.
    pub size: Option<u64>,
}

/// Expands the named paths: files as they are, directories walked
/// recursively in name order (hidden entries and symbolic links to
/// directories are not followed), Maildir folders (`cur/`, `new/`) read
/// as mail, including Maildir++ subfolders.
pub fn collect_inputs(paths: &[PathBuf]) -> InputList {
    let mut list = InputList::default();
    for p in paths {
        if p.as_os_str() == "-" {
            list.files.push(InputFile {
                path: p.clone(),
                explicit: true,
                size: None,
            });
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut list, 0),
            Ok(m) => list.files.push(InputFile {
                path: p.clone(),
                explicit: true,
                size: Some(m.len()),
            }),
            Err(e) => list.errors.push((p.clone(), open_error(&e))),
        }
    }
    list
}

fn open_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied (run as a user that may read it)".into(),
        _ => e.to_string(),
    }
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

fn sorted_entries(dir: &Path, list: &mut InputList) -> Vec<std::fs::DirEntry> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.filter_map(Result::ok).collect();
            v.sort_by_key(|e| e.file_name());
            v
        }
        Err(e) => {
            list.errors.push((dir.to_path_buf(), open_error(&e)));
            Vec::new()
        }
    }
}

fn walk(dir: &Path, list: &mut InputList, depth: usize) {
    if depth > 64 {
        list.skipped.push((
            dir.to_path_buf(),
            "directories nested deeper than 64 levels".into(),
        ));
        return;
    }
    if is_maildir(dir) {
        for sub in ["cur", "new"] {
            let d = dir.join(sub);
            for e in sorted_entries(&d, list) {
                push_file(&e.path(), false, list);
            }
        }
        // Maildir++ folders.
        for e in sorted_entries(dir, list) {
            let name = e.file_name();
            let path = e.path();
            if name.to_string_lossy().starts_with('.')
                && name != "."
                && name != ".."
                && e.file_type().is_ok_and(|t| t.is_dir())
                && is_maildir(&path)
            {
                walk(&path, list, depth + 1);
            }
        }
        return;
    }
    for e in sorted_entries(dir, list) {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&path, list, depth + 1);
        } else if ft.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => list
                    .skipped
                    .push((path, "symbolic link to a directory (not followed)".into())),
                Ok(_) => push_file(&path, false, list),
                Err(e) => list.errors.push((path, open_error(&e))),
            }
        } else if ft.is_file() {
            push_file(&path, false, list);
        }
    }
}

fn push_file(path: &Path, explicit: bool, list: &mut InputList) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => list.files.push(InputFile {
            path: path.to_path_buf(),
            explicit,
            size: Some(m.len()),
        }),
        Ok(_) => {}
        Err(e) => list.errors.push((path.to_path_buf(), open_error(&e))),
    }
}

/// Reads every file of `inputs` and hands what it finds to `sink`.
pub fn read_reports(inputs: &InputList, cfg: &ReadConfig, sink: &mut dyn ReportSink) {
    for (p, e) in &inputs.errors {
        sink.failed(&Origin::new(p), e);
    }
    for (p, why) in &inputs.skipped {
        sink.skipped(&Origin::new(p), why);
    }
    let total = inputs.files.len();
    for (i, f) in inputs.files.iter().enumerate() {
        sink.file_started(i, total, &f.path, f.size);
        read_file(f, cfg, sink);
    }
}

/// Reads one file.
pub fn read_file(f: &InputFile, cfg: &ReadConfig, sink: &mut dyn ReportSink) {
    let origin = Origin::new(&f.path);
    let r = Reading {
        cfg,
        budget: Rc::new(Cell::new(cfg.expansion.max_total)),
    };
    if f.path.as_os_str() == "-" {
        let stdin = io::stdin();
        let lock = stdin.lock();
        r.stream(
            &origin,
            Box::new(lock),
            0,
            true,
            Rc::new(RefCell::new(Vec::new())),
            sink,
        );
        return;
    }
    let file = match File::open(&f.path) {
        Ok(file) => file,
        Err(e) => {
            sink.failed(&origin, &open_error(&e));
            return;
        }
    };
    let mut file = file;
    let head = match read_head(&mut file) {
        Ok(h) => h,
        Err(e) => {
            sink.failed(&origin, &format!("reading: {e}"));
            return;
        }
    };
    let fresh = Rc::new(RefCell::new(Vec::new()));
    match sniff(&head) {
        // Seekable: the archive is read in place.
        ContentKind::Zip => r.zip(&origin, file, 0, sink),
        ContentKind::Mbox => r.mbox(&origin, BufReader::with_capacity(64 * 1024, file), 0, sink),
        _ => r.stream(&origin, Box::new(file), 0, f.explicit, fresh, sink),
    }
}

/// Reads the first [`SNIFF_BYTES`] of a file and rewinds it.
fn read_head(file: &mut File) -> io::Result<Vec<u8>> {
    use std::io::Seek;
    let mut head = vec![0u8; SNIFF_BYTES];
    let mut n = 0;
    while n < head.len() {
        let k = read_some(file, &mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    head.truncate(n);
    file.seek(io::SeekFrom::Start(0))?;
    Ok(head)
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads up to [`SNIFF_BYTES`] from a stream and gives them back with a
/// reader that yields them again before the rest.
fn peek_stream<'a>(mut r: Box<dyn Read + 'a>) -> io::Result<(Vec<u8>, Box<dyn Read + 'a>)> {
    let mut head = vec![0u8; SNIFF_BYTES];
    let mut n = 0;
    while n < head.len() {
        let k = read_some(&mut r, &mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    head.truncate(n);
    let again = Cursor::new(head.clone()).chain(r);
    Ok((head, Box::new(again)))
}

/// Counts the bytes consumed from a buffered reader.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.set(self.count.get() + amt as u64);
        self.inner.consume(amt);
    }
}

/// Enforces [`ExpansionLimits`] on a decompressed stream.
struct Limited<R> {
    inner: R,
    what: &'static str,
    out: u64,
    input: Rc<Cell<u64>>,
    budget: Rc<Cell<u64>>,
    limits: ExpansionLimits,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let l = &self.limits;
        if self.out > l.max_bytes {
            return Err(io::Error::other(format!(
                "the {} data expands to more than {} MiB: a decompression bomb? (raise --max-report-bytes to read it)",
                self.what,
                l.max_bytes >> 20
            )));
        }
        let input = self.input.get().max(1);
        if self.out > l.ratio_floor && self.out > input.saturating_mul(l.max_ratio) {
            return Err(io::Error::other(format!(
                "the {} data expands more than {}:1 ({input} bytes to over {} so far): a decompression bomb?",
                self.what, l.max_ratio, self.out
            )));
        }
        let left = self.budget.get();
        if (n as u64) > left {
            return Err(io::Error::other(format!(
                "this input decompresses to more than {} MiB in total: a decompression bomb?",
                l.max_total >> 20
            )));
        }
        self.budget.set(left - n as u64);
        Ok(n)
    }
}

/// Turns a damaged gzip ending (bad CRC, cut stream, junk after the data)
/// into the end of the data, with a note, once something was decoded.
struct GzTolerant<R> {
    inner: R,
    out: u64,
    notes: Rc<RefCell<Vec<Note>>>,
}

impl<R: Read> Read for GzTolerant<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.out += n as u64;
                Ok(n)
            }
            Err(e) if self.out > 0 && e.kind() != io::ErrorKind::Interrupted => {
                self.notes.borrow_mut().push(Note::new(
                    NoteKind::Container,
                    format!(
                        "the gzip data is damaged or followed by other bytes after {} decompressed bytes ({e}); what was decoded was used",
                        self.out
                    ),
                ));
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }
}

struct Reading<'c> {
    cfg: &'c ReadConfig,
    budget: Rc<Cell<u64>>,
}

fn describe_head(head: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&head[..head.len().min(24)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("{shown:?}")
}

impl Reading<'_> {
    fn gzip<'a>(&self, input: Box<dyn BufRead + 'a>, notes: Rc<RefCell<Vec<Note>>>) -> Box<dyn Read + 'a> {
        let count = Rc::new(Cell::new(0u64));
        let counted = Counting {
            inner: input,
            count: count.clone(),
        };
        Box::new(Limited {
            inner: GzTolerant {
                inner: MultiGzDecoder::new(counted),
                out: 0,
                notes,
            },
            what: "gzip",
            out: 0,
            input: count,
            budget: self.budget.clone(),
            limits: self.cfg.expansion.clone(),
        })
    }

    /// Reads a stream of unknown kind.
    fn stream<'a>(
        &self,
        origin: &Origin,
        input: Box<dyn Read + 'a>,
        depth: usize,
        explicit: bool,
        notes: Rc<RefCell<Vec<Note>>>,
        sink: &mut dyn ReportSink,
    ) {
        let (head, input) = match peek_stream(input) {
            Ok(x) => x,
            Err(e) => {
                sink.failed(origin, &format!("reading: {e}"));
                return;
            }
        };
        let kind = sniff(&head);
        if depth > self.cfg.max_nesting
            && matches!(
                kind,
                ContentKind::Gzip | ContentKind::Zip | ContentKind::Mail | ContentKind::Mbox
            )
        {
            sink.failed(
                origin,
                &format!(
                    "containers nested more than {} deep; not read",
                    self.cfg.max_nesting
                ),
            );
            return;
        }
        match kind {
            ContentKind::Gzip => {
                // Damage notes made while decoding land in `notes`, which the
                // report reader shares.
                let inner = self.gzip(Box::new(BufReader::new(input)), notes.clone());
                self.stream(origin, inner, depth + 1, true, notes, sink);
            }
            ContentKind::Zip => {
                let data = match self.read_bounded(input, "zip archive") {
                    Ok(d) => d,
                    Err(e) => {
                        sink.failed(origin, &e);
                        return;
                    }
                };
                self.zip_with(origin, Cursor::new(data), depth, &notes.borrow(), sink);
            }
            ContentKind::Xml => self.dmarc(origin, input, false, notes, sink),
            ContentKind::Json => self.tls(origin, input, notes, sink),
            ContentKind::Mail => match self.read_bounded_mail(input) {
                Ok(bytes) => self.mail(origin, &bytes, depth, explicit, sink),
                Err(e) => sink.failed(origin, &e),
            },
            ContentKind::Mbox => self.mbox(origin, BufReader::new(input), depth, sink),
            ContentKind::Unknown => {
                let why = if head.is_empty() {
                    "empty".to_owned()
                } else {
                    format!(
                        "not a DMARC or TLS report (not XML, JSON, gzip, zip or a mail; starts with {})",
                        describe_head(&head)
                    )
                };
                if explicit {
                    sink.failed(origin, &why);
                } else {
                    sink.skipped(origin, &why);
                }
            }
        }
    }

    fn read_bounded<'a>(&self, mut input: Box<dyn Read + 'a>, what: &str) -> Result<Vec<u8>, String> {
        let max = self.cfg.expansion.max_bytes;
        let mut data = Vec::new();
        (&mut input)
            .take(max + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("reading the {what}: {e}"))?;
        if data.len() as u64 > max {
            return Err(format!(
                "the {what} is larger than {} MiB; not read (raise --max-report-bytes)",
                max >> 20
            ));
        }
        Ok(data)
    }

    fn read_bounded_mail<'a>(&self, mut input: Box<dyn Read + 'a>) -> Result<Vec<u8>, String> {
        let max = self.cfg.max_mail_bytes;
        let mut data = Vec::new();
        (&mut input)
            .take(max + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("reading the mail: {e}"))?;
        if data.len() as u64 > max {
            return Err(format!("the mail is larger than {} MiB; not read", max >> 20));
        }
        Ok(data)
    }

    fn dmarc<'a>(
        &self,
        origin: &Origin,
        input: Box<dyn Read + 'a>,
        force_utf8: bool,
        notes: Rc<RefCell<Vec<Note>>>,
        sink: &mut dyn ReportSink,
    ) {
        let mut di = DmarcInput {
            reader: AggregateReader::new(input, &self.cfg.limits, force_utf8),
            container: notes,
        };
        if let Err(e) = sink.dmarc(origin, &mut di) {
            sink.failed(origin, &e.to_string());
        }
    }

    fn tls<'a>(
        &self,
        origin: &Origin,
        input: Box<dyn Read + 'a>,
        notes: Rc<RefCell<Vec<Note>>>,
        sink: &mut dyn ReportSink,
    ) {
        match read_tls(input, &self.cfg.limits) {
            Ok((report, mut n)) => {
                let mut all = notes.borrow().clone();
                all.append(&mut n);
                sink.tls(origin, report, all);
            }
            Err(e) => sink.failed(origin, &e.to_string()),
        }
    }

    fn zip<R: Read + io::Seek>(&self, origin: &Origin, reader: R, depth: usize, sink: &mut dyn ReportSink) {
        self.zip_with(origin, reader, depth, &[], sink);
    }

    fn zip_with<R: Read + io::Seek>(
        &self,
        origin: &Origin,
        reader: R,
        depth: usize,
        inherited: &[Note],
        sink: &mut dyn ReportSink,
    ) {
        let mut archive = match zip::ZipArchive::new(reader) {
            Ok(a) => a,
            Err(e) => {
                sink.failed(origin, &format!("not a readable zip archive: {e}"));
                return;
            }
        };
        let n = archive.len();
        if n > self.cfg.max_zip_entries {
            sink.failed(
                origin,
                &format!(
                    "the zip archive has {n} entries; only the first {} were read",
                    self.cfg.max_zip_entries
                ),
            );
        }
        let mut any = false;
        for i in 0..n.min(self.cfg.max_zip_entries) {
            let entry = match archive.by_index(i) {
                Ok(e) => e,
                Err(e) => {
                    sink.failed(
                        &origin.child(format!("entry {}", i + 1)),
                        &format!("cannot read: {e}"),
                    );
                    continue;
                }
            };
            if entry.is_dir() {
                continue;
            }
            any = true;
            let name: String = entry.name().chars().take(200).collect();
            let child = origin.child(format!("entry {name:?}"));
            let input = Rc::new(Cell::new(entry.compressed_size()));
            let limited = Limited {
                inner: entry,
                what: "zip entry",
                out: 0,
                input,
                budget: self.budget.clone(),
                limits: self.cfg.expansion.clone(),
            };
            let notes = Rc::new(RefCell::new(inherited.to_vec()));
            self.stream(&child, Box::new(limited), depth + 1, true, notes, sink);
        }
        if !any {
            sink.failed(origin, "the zip archive holds no files");
        }
    }

    /// Splits an mbox file at `From ` lines that follow an empty line (or
    /// start the file) and reads each message as a mail.
    fn mbox<R: BufRead>(&self, origin: &Origin, mut r: R, depth: usize, sink: &mut dyn ReportSink) {
        let max = self.cfg.max_mail_bytes as usize;
        let mut msg: Vec<u8> = Vec::new();
        let mut too_big = false;
        let mut index = 0usize;
        let mut prev_blank = true;
        // The start of the current line (enough for the separator test) and its length.
        let mut line: Vec<u8> = Vec::with_capacity(64);
        let mut line_len = 0usize;
        loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) => {
                    sink.failed(origin, &format!("reading: {e}"));
                    return;
                }
            };
            if buf.is_empty() {
                break;
            }
            let (take, complete) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if line.len() < 8 {
                let room = 8 - line.len();
                line.extend_from_slice(&buf[..take.min(room)]);
            }
            line_len += take;
            if !too_big {
                if msg.len() + take > max {
                    too_big = true;
                    msg = Vec::new();
                } else {
                    msg.extend_from_slice(&buf[..take]);
                }
            }
            r.consume(take);
            if !complete {
                continue;
            }
            if prev_blank && line.starts_with(b"From ") {
                if !too_big {
                    msg.truncate(msg.len().saturating_sub(line_len));
                }
                self.mbox_message(origin, index, &mut msg, &mut too_big, depth, sink);
                index += 1;
            }
            prev_blank = line_len <= 2 && (line.as_slice() == b"\n" || line.as_slice() == b"\r\n");
            line.clear();
            line_len = 0;
        }
        self.mbox_message(origin, index, &mut msg, &mut too_big, depth, sink);
        if index == 0 {
            sink.failed(origin, "not an mbox file: no \"From \" separator line");
        }
    }

    fn mbox_message(
        &self,
        origin: &Origin,
        index: usize,
        msg: &mut Vec<u8>,
        too_big: &mut bool,
        depth: usize,
        sink: &mut dyn ReportSink,
    ) {
        if index > 0 {
            let child = origin.child(format!("message {index}"));
            if *too_big {
                sink.failed(
                    &child,
                    &format!(
                        "the message is larger than {} MiB; not read",
                        self.cfg.max_mail_bytes >> 20
                    ),
                );
            } else if !msg.iter().all(u8::is_ascii_whitespace) {
                self.mail(&child, msg, depth + 1, false, sink);
            }
        }
        msg.clear();
        *too_big = false;
    }

    fn mail(&self, origin: &Origin, bytes: &[u8], depth: usize, explicit: bool, sink: &mut dyn ReportSink) {
        let Some(msg) = MessageParser::new().parse(bytes) else {
            let why = "not a mail: no header could be read";
            if explicit {
                sink.failed(origin, why);
            } else {
                sink.skipped(origin, why);
            }
            return;
        };
        let mut found = 0usize;
        for (i, part) in msg.parts.iter().enumerate() {
            let ct = part.content_type();
            let ctype = ct.map(|c| c.ctype().to_ascii_lowercase()).unwrap_or_default();
            let subtype = ct
                .and_then(|c| c.subtype())
                .map(|s| s.to_ascii_lowercase())
                .unwrap_or_default();
            let mime = format!("{ctype}/{subtype}");
            let name = part
                .attachment_name()
                .map(|n| n.chars().take(200).collect::<String>());
            let label = match &name {
                Some(n) => format!("attachment {n:?}"),
                None => format!("part {} ({mime})", i + 1),
            };
            let (data, text): (&[u8], bool) = match &part.body {
                PartType::Multipart(_) | PartType::Html(_) => continue,
                PartType::Message(inner) => {
                    if depth + 1 > self.cfg.max_nesting {
                        continue;
                    }
                    let before = found;
                    let child = origin.child(format!("attached message {}", i + 1));
                    let mut counter = CountingSink {
                        inner: sink,
                        reports: 0,
                    };
                    self.mail(&child, inner.raw_message(), depth + 1, false, &mut counter);
                    found = before + counter.reports;
                    continue;
                }
                PartType::Text(t) => (t.as_bytes(), true),
                PartType::Binary(b) | PartType::InlineBinary(b) => (b.as_ref(), false),
            };
            let claims = claimed_kind(&mime, name.as_deref());
            let kind = sniff(&data[..data.len().min(SNIFF_BYTES)]);
            let usable = match kind {
                ContentKind::Gzip | ContentKind::Zip => true,
                ContentKind::Xml | ContentKind::Json => {
                    claims.is_some()
                        || !text
                        || memchr::memmem::find(&data[..data.len().min(SNIFF_BYTES)], b"<feedback").is_some()
                        || memchr::memmem::find(&data[..data.len().min(SNIFF_BYTES)], b"\"policies\"")
                            .is_some()
                }
                _ => false,
            };
            let child = origin.child(label);
            if !usable {
                if claims.is_some() {
                    found += 1;
                    sink.failed(
                        &child,
                        &format!(
                            "declared as {mime} but is not a report (starts with {})",
                            describe_head(data)
                        ),
                    );
                }
                continue;
            }
            found += 1;
            let mut notes = Vec::new();
            if let Some(claim) = claims
                && claim != kind
            {
                notes.push(Note::new(
                    NoteKind::Container,
                    format!(
                        "the attachment is declared {mime}{} but is {}; read as {}",
                        name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
                        kind.name(),
                        kind.name()
                    ),
                ));
            }
            if part.is_encoding_problem {
                notes.push(Note::new(
                    NoteKind::Container,
                    "the attachment's transfer encoding (base64 / quoted-printable) was damaged; what could be decoded was used",
                ));
            }
            match kind {
                ContentKind::Zip => self.zip_with(&child, Cursor::new(data), depth + 1, &notes, sink),
                ContentKind::Gzip => {
                    let shared = Rc::new(RefCell::new(notes));
                    let inner = self.gzip(Box::new(data), shared.clone());
                    self.stream(&child, inner, depth + 1, true, shared, sink);
                }
                ContentKind::Xml => {
                    self.dmarc(&child, Box::new(data), text, Rc::new(RefCell::new(notes)), sink)
                }
                ContentKind::Json => self.tls(&child, Box::new(data), Rc::new(RefCell::new(notes)), sink),
                _ => {}
            }
        }
        if found == 0 {
            let why = format!(
                "no DMARC or TLS report in this mail ({} MIME parts)",
                msg.parts.len()
            );
            if explicit {
                sink.failed(origin, &why);
            } else {
                sink.skipped(origin, &why);
            }
        }
    }
}

/// What a MIME type or file name says an attachment is.
fn claimed_kind(mime: &str, name: Option<&str>) -> Option<ContentKind> {
    let by_mime = match mime {
        "application/gzip"
        | "application/x-gzip"
        | "application/gzip-compressed"
        | "application/tlsrpt+gzip" => Some(ContentKind::Gzip),
        "application/zip" | "application/x-zip-compressed" | "application/x-zip" => Some(ContentKind::Zip),
        "text/xml" | "application/xml" => Some(ContentKind::Xml),
        "application/json" | "application/tlsrpt+json" | "text/json" => Some(ContentKind::Json),
        _ => None,
    };
    if by_mime.is_some() {
        return by_mime;
    }
    let n = name?.to_ascii_lowercase();
    if n.ends_with(".gz") || n.ends_with(".gzip") {
        Some(ContentKind::Gzip)
    } else if n.ends_with(".zip") {
        Some(ContentKind::Zip)
    } else if n.ends_with(".xml") {
        Some(ContentKind::Xml)
    } else if n.ends_with(".json") {
        Some(ContentKind::Json)
    } else {
        None
    }
}

/// Passes everything on and counts what was found in a nested message.
struct CountingSink<'s> {
    inner: &'s mut dyn ReportSink,
    reports: usize,
}

impl ReportSink for CountingSink<'_> {
    fn dmarc(&mut self, origin: &Origin, report: &mut DmarcInput<'_>) -> Result<(), ReportError> {
        self.reports += 1;
        self.inner.dmarc(origin, report)
    }
    fn tls(&mut self, origin: &Origin, report: TlsReport, notes: Vec<Note>) {
        self.reports += 1;
        self.inner.tls(origin, report, notes);
    }
    fn failed(&mut self, origin: &Origin, reason: &str) {
        self.reports += 1;
        self.inner.failed(origin, reason);
    }
    fn skipped(&mut self, _origin: &Origin, _reason: &str) {
        // A nested message without a report is not worth a line of its own.
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use mailwarden_core::report::Schema;

    use super::*;

    /// Everything a read produced.
    #[derive(Default)]
    struct Collect {
        dmarc: Vec<(String, ReportHeader, Vec<Record>, Vec<Note>)>,
        tls: Vec<(String, TlsReport, Vec<Note>)>,
        failed: Vec<(String, String)>,
        skipped: Vec<(String, String)>,
    }

    impl ReportSink for Collect {
        fn dmarc(&mut self, origin: &Origin, report: &mut DmarcInput<'_>) -> Result<(), ReportError> {
            let h = report.header()?.clone();
            let mut recs = Vec::new();
            while let Some(r) = report.next_record()? {
                recs.push(r);
            }
            self.dmarc.push((origin.to_string(), h, recs, report.notes()));
            Ok(())
        }
        fn tls(&mut self, origin: &Origin, report: TlsReport, notes: Vec<Note>) {
            self.tls.push((origin.to_string(), report, notes));
        }
        fn failed(&mut self, origin: &Origin, reason: &str) {
            self.failed.push((origin.to_string(), reason.to_owned()));
        }
        fn skipped(&mut self, origin: &Origin, reason: &str) {
            self.skipped.push((origin.to_string(), reason.to_owned()));
        }
    }

    fn read(paths: &[PathBuf], cfg: &ReadConfig) -> Collect {
        let mut c = Collect::default();
        read_reports(&collect_inputs(paths), cfg, &mut c);
        c
    }

    fn report_xml(org: &str, id: &str, records: usize) -> String {
        let mut x = format!(
            "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name><report_id>{id}</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>reject</p></policy_published>"
        );
        for i in 0..records {
            x.push_str(&format!(
                "<record><row><source_ip>192.0.2.{}</source_ip><count>{}</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers></record>",
                i % 250,
                i + 1
            ));
        }
        x.push_str("</feedback>\n");
        x
    }

    const TLS_JSON: &str = r#"{"organization-name":"Google Inc.","date-range":{"start-datetime":"2024-09-03T00:00:00Z","end-datetime":"2024-09-03T23:59:59Z"},"contact-info":"smtp-tls-reporting@google.com","report-id":"2024-09-03T00:00:00Z_example.com","policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":10,"total-failure-session-count":2},"failure-details":[{"result-type":"certificate-expired","failed-session-count":2}]}]}"#;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (i, c) in data.chunks(3).enumerate() {
            if i > 0 && i % 19 == 0 {
                out.push_str("\r\n");
            }
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= c.len() {
                    out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A mail with the given attachments (content type, file name, bytes).
    fn mail(subject: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
        let mut m = format!(
            "Return-Path: <noreply@reporter.example>\r\nFrom: noreply@reporter.example\r\nTo: dmarc@example.com\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\nThis is a report.\r\n--BOUND\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
        );
        for (ct, name, data) in parts {
            m.push_str(&format!(
                "--BOUND\r\nContent-Type: {ct}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                base64(data)
            ));
        }
        m.push_str("--BOUND--\r\n");
        m.into_bytes()
    }

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/auth/parsedmarc-samples")
    }

    #[test]
    fn every_parsedmarc_sample_is_read() {
        let dir = corpus();
        // The public corpus is not shipped with the project: skip, and say so.
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED: the public corpus is not beside the checkout at {}",
                dir.display()
            );
            return;
        }
        let c = read(&[dir], &ReadConfig::default());
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        let by_file = |name: &str| {
            c.dmarc.iter().find(|d| d.0.contains(name)).unwrap_or_else(|| {
                panic!(
                    "{name} not read: {:?}",
                    c.dmarc.iter().map(|d| &d.0).collect::<Vec<_>>()
                )
            })
        };
        // (file, org, records, messages, first source)
        let want: &[(&str, &str, usize, u64, &str)] = &[
            ("!example.com!1538204542", "", 1, 1, "12.20.127.122"),
            ("example.net!example.com", "example.net", 1, 1, "199.230.200.36"),
            (
                "fastmail.com!example.com",
                "FastMail Pty Ltd",
                1,
                1,
                "104.195.80.20",
            ),
            ("invalid_xml.xml", "veeam.com", 1, 1, "199.230.200.36"),
            ("protection.outlook.com", "Outlook.com", 1, 1, "100.24.188.149"),
            ("rfc9990-sample.xml", "Sample Reporter", 1, 123, "192.0.2.123"),
            ("twilight.eml", "google.com", 1, 1, ""),
        ];
        for (file, org, records, messages, ip) in want {
            let (origin, h, recs, _) = by_file(file);
            assert_eq!(&h.metadata.org_name, org, "{origin}");
            assert_eq!(recs.len(), *records, "{origin}");
            assert_eq!(recs.iter().map(|r| r.count).sum::<u64>(), *messages, "{origin}");
            if !ip.is_empty() {
                assert_eq!(recs[0].source_ip, *ip, "{origin}");
            }
        }
        assert_eq!(c.dmarc.len(), want.len());
        // What was repaired.
        let notes = |name: &str| -> Vec<NoteKind> { by_file(name).3.iter().map(|n| n.kind).collect() };
        assert_eq!(notes("invalid_xml.xml"), vec![NoteKind::UnescapedLt]);
        assert_eq!(
            by_file("invalid_xml.xml").1.metadata.email,
            "<bad-xml@bad-xml.net>"
        );
        assert_eq!(
            by_file("invalid_xml.xml").2[0].header_from.as_deref(),
            Some("bad<xml.net")
        );
        assert_eq!(notes("example.net!example.com"), vec![NoteKind::StrayText]);
        assert_eq!(
            notes("!example.com!1538204542"),
            vec![NoteKind::Missing],
            "{:?}",
            by_file("!example.com!1538204542").3
        );
        for clean in [
            "fastmail.com",
            "protection.outlook.com",
            "rfc9990-sample.xml",
            "twilight.eml",
        ] {
            assert!(by_file(clean).3.is_empty(), "{clean}: {:?}", by_file(clean).3);
        }
        assert_eq!(by_file("rfc9990-sample.xml").1.schema, Schema::Rfc9990);
        assert!(
            by_file("twilight.eml")
                .0
                .contains("attachment \"google.com!twlnet.com!1549756800!1549843199.zip\": entry")
        );
        // TLS reports.
        assert_eq!(c.tls.len(), 2);
        let g = c
            .tls
            .iter()
            .find(|t| t.0.contains("google.com_smtp_tls_report.eml"))
            .unwrap();
        assert_eq!(g.1.organization_name, "Google Inc.");
        assert_eq!(g.1.policies[0].policy_domain, "cardinalhealth.ca");
        assert!(g.2.is_empty(), "{:?}", g.2);
        let r = c.tls.iter().find(|t| t.0.contains("rfc8460.json")).unwrap();
        assert_eq!((r.1.policies[0].successful, r.1.policies[0].failed), (5326, 303));
    }

    #[test]
    fn maildir_and_mbox_with_several_reports() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        for sub in [
            "cur",
            "new",
            "tmp",
            ".Reports/cur",
            ".Reports/new",
            ".Reports/tmp",
        ] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        std::fs::write(md.join("dovecot-uidlist"), "3 V1 N4\n").unwrap();
        let r1 = report_xml("a.example", "1", 2);
        let r2 = report_xml("b.example", "2", 3);
        let r3 = report_xml("c.example", "3", 1);
        std::fs::write(
            md.join("cur/1.mail:2,S"),
            mail(
                "Report 1",
                &[("application/gzip", "a.xml.gz", &gzip(r1.as_bytes()))],
            ),
        )
        .unwrap();
        std::fs::write(
            md.join("new/2.mail"),
            mail(
                "Report 2",
                &[("application/zip", "b.zip", &zip(&[("b.xml", r2.as_bytes())]))],
            ),
        )
        .unwrap();
        std::fs::write(md.join("new/3.mail"), mail("Hello", &[])).unwrap();
        std::fs::write(
            md.join(".Reports/cur/4.mail"),
            mail(
                "TLS",
                &[("application/tlsrpt+json", "t.json", TLS_JSON.as_bytes())],
            ),
        )
        .unwrap();
        let mut mbox = Vec::new();
        for (i, (subject, parts)) in [
            ("one", vec![("text/xml", "c.xml", r3.as_bytes().to_vec())]),
            (
                "two",
                vec![("application/tlsrpt+gzip", "t.json.gz", gzip(TLS_JSON.as_bytes()))],
            ),
            (
                "three",
                vec![(
                    "application/octet-stream",
                    "d.zip",
                    gzip(report_xml("d.example", "4", 4).as_bytes()),
                )],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            mbox.extend_from_slice(
                format!("From reporter@example.net Mon Jan  {} 00:00:00 2024\n", i + 1).as_bytes(),
            );
            let parts: Vec<(&str, &str, &[u8])> =
                parts.iter().map(|(a, b, c)| (*a, *b, c.as_slice())).collect();
            let m = mail(subject, &parts);
            mbox.extend_from_slice(&m);
            mbox.extend_from_slice(b"From the desk of nobody (not a separator)\n\n");
        }
        std::fs::write(dir.path().join("reports.mbox"), &mbox).unwrap();

        let c = read(
            &[md.clone(), dir.path().join("reports.mbox")],
            &ReadConfig::default(),
        );
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        let orgs: Vec<(&str, usize)> = c
            .dmarc
            .iter()
            .map(|d| (d.1.metadata.org_name.as_str(), d.2.len()))
            .collect();
        assert_eq!(
            orgs,
            vec![
                ("a.example", 2),
                ("b.example", 3),
                ("c.example", 1),
                ("d.example", 4)
            ]
        );
        assert_eq!(c.tls.len(), 2);
        assert!(
            c.dmarc[2]
                .0
                .ends_with("reports.mbox: message 1: attachment \"c.xml\""),
            "{}",
            c.dmarc[2].0
        );
        assert!(c.tls[1].0.contains("message 2"), "{}", c.tls[1].0);
        assert_eq!(c.skipped.len(), 1, "{:?}", c.skipped);
        assert!(c.skipped[0].0.ends_with("new/3.mail"));
        assert!(c.skipped[0].1.contains("no DMARC or TLS report"));
        // The gzip named .zip is noted.
        assert!(
            c.dmarc[3].3.iter().any(|n| n.kind == NoteKind::Container),
            "{:?}",
            c.dmarc[3].3
        );
    }

    #[test]
    fn inputs_that_are_not_reports_are_failures_when_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("bad.eml"), mail("Hi", &[])).unwrap();
        std::fs::write(dir.path().join("fake.gz"), report_xml("x", "1", 1)).unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let c = read(
            &[
                dir.path().join("notes.txt"),
                dir.path().join("bad.eml"),
                dir.path().join("missing.xml"),
            ],
            &ReadConfig::default(),
        );
        let reasons: Vec<&str> = c.failed.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("no such file"), "{reasons:?}");
        assert!(reasons[1].starts_with("not a DMARC or TLS report"), "{reasons:?}");
        assert!(
            reasons[2].starts_with("no DMARC or TLS report in this mail"),
            "{reasons:?}"
        );
        // Walked: skipped instead, hidden files not read, content beats the name.
        let c = read(&[dir.path().to_path_buf()], &ReadConfig::default());
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
        assert_eq!(c.dmarc.len(), 1);
        assert!(c.dmarc[0].0.ends_with("fake.gz"));
    }

    fn small_limits() -> ReadConfig {
        ReadConfig {
            expansion: ExpansionLimits {
                max_bytes: 8 << 20,
                max_ratio: 250,
                ratio_floor: 1 << 20,
                max_total: 32 << 20,
            },
            ..ReadConfig::default()
        }
    }

    /// A report whose XML is mostly whitespace: compresses about 1000:1.
    fn bomb_xml(size: usize) -> Vec<u8> {
        let mut x = report_xml("bomb", "1", 1).into_bytes();
        x.truncate(x.len() - "</feedback>\n".len());
        x.resize(size, b' ');
        x.extend_from_slice(b"</feedback>");
        x
    }

    #[test]
    fn gzip_and_zip_bombs_stop_early() {
        let dir = tempfile::tempdir().unwrap();
        let big = bomb_xml(24 << 20);
        let gz = gzip(&big);
        assert!(gz.len() < 64 << 10, "{}", gz.len());
        std::fs::write(dir.path().join("bomb.xml.gz"), &gz).unwrap();
        std::fs::write(dir.path().join("bomb.zip"), zip(&[("bomb.xml", &big)])).unwrap();
        std::fs::write(
            dir.path().join("bomb.eml"),
            mail("bomb", &[("application/gzip", "b.xml.gz", &gz)]),
        )
        .unwrap();
        // Nested archives.
        let mut nested = zip(&[("r.xml", report_xml("n", "1", 1).as_bytes())]);
        for i in 0..6 {
            nested = zip(&[(&format!("level{i}.zip"), &nested)]);
        }
        std::fs::write(dir.path().join("nested.zip"), &nested).unwrap();
        let c = read(&[dir.path().to_path_buf()], &small_limits());
        assert!(
            c.dmarc.is_empty(),
            "{:?}",
            c.dmarc.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        assert_eq!(c.failed.len(), 4, "{:?}", c.failed);
        for (origin, reason) in &c.failed {
            if origin.contains("nested.zip") {
                assert!(reason.contains("nested more than 4 deep"), "{origin}: {reason}");
            } else {
                assert!(reason.contains("decompression bomb"), "{origin}: {reason}");
                assert!(reason.contains("expands more than 250:1"), "{origin}: {reason}");
            }
        }
        // Below the ratio, the size limit holds.
        let lim = ReadConfig {
            expansion: ExpansionLimits {
                max_ratio: 100_000,
                ..small_limits().expansion
            },
            ..small_limits()
        };
        let c = read(&[dir.path().join("bomb.xml.gz")], &lim);
        assert!(c.failed[0].1.contains("more than 8 MiB"), "{:?}", c.failed);
    }

    #[test]
    fn hostile_xml_is_refused_and_never_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&xxe;</org_name><report_id>1</report_id></report_metadata>
<policy_published><domain>example.com</domain></policy_published></feedback>"#;
        std::fs::write(dir.path().join("xxe.xml"), xxe).unwrap();
        let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 \"lol\">\n");
        for i in 1..10 {
            let prev = format!("&lol{};", i - 1);
            laughs.push_str(&format!("<!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
        }
        laughs.push_str(
            "]>\n<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>\n",
        );
        std::fs::write(dir.path().join("laughs.xml"), &laughs).unwrap();
        let c = read(&[dir.path().to_path_buf()], &ReadConfig::default());
        assert!(c.dmarc.is_empty());
        assert_eq!(c.failed.len(), 2, "{:?}", c.failed);
        for (_, reason) in &c.failed {
            assert!(reason.contains("declares entities"), "{reason}");
            assert!(!reason.contains("root:"), "{reason}");
        }
    }

    #[test]
    fn damaged_containers_are_repaired_with_notes() {
        let dir = tempfile::tempdir().unwrap();
        let xml = report_xml("r", "1", 3);
        // gzip without its CRC trailer, and with junk after the data.
        let mut cut = gzip(xml.as_bytes());
        cut.truncate(cut.len() - 8);
        std::fs::write(dir.path().join("cut.xml.gz"), &cut).unwrap();
        let mut junk = gzip(report_xml("r", "2", 3).as_bytes());
        junk.extend_from_slice(b"\r\n-- \r\nsignature");
        std::fs::write(dir.path().join("junk.xml.gz"), &junk).unwrap();
        // A zip sent as application/gzip.
        std::fs::write(
            dir.path().join("mislabelled.eml"),
            mail(
                "x",
                &[(
                    "application/gzip",
                    "r.xml.gz",
                    &zip(&[("r.xml", report_xml("r", "3", 3).as_bytes())]),
                )],
            ),
        )
        .unwrap();
        let c = read(&[dir.path().to_path_buf()], &ReadConfig::default());
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert_eq!(c.dmarc.len(), 3);
        for (origin, _, recs, notes) in &c.dmarc {
            assert_eq!(recs.len(), 3, "{origin}");
            assert!(
                notes.iter().any(|n| n.kind == NoteKind::Container),
                "{origin}: {notes:?}"
            );
        }
    }
}
