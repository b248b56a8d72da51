//! The pure half of `mailwarden webscan`: what makes a PHP file (or a file
//! that should not hold PHP) a backdoor, and how sure we are.
//!
//! The I/O crate walks the trees, reads each file (size-capped) and its
//! metadata, and compares it with git's HEAD or a baseline; everything that
//! decides lives here and is a function of bytes and numbers:
//!
//! - [`Scanner::scan_content`] — code patterns (dangerous sinks fed by request
//!   data, decoder chains, known families), obfuscation statistics and
//!   placement (PHP in an image, `.htaccess` handlers, `auto_prepend_file`);
//! - [`context_reasons`] — timestamps against siblings and the install date,
//!   timestomping, ownership and writable upload directories;
//! - [`score`] — the verdict. "Malicious" needs strong or combined evidence;
//!   weak signals alone give "suspicious" or "info".
//!
//! Every [`Reason`] has a stable id, the layer it comes from, its weight and
//! the 1-based line numbers it points at.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;

mod code;
mod lex;
mod markers;
mod obfuscation;
mod placement;

pub use obfuscation::TextStats;

/// How bad a file looks, worst last (so `max()` picks the worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing worth reporting.
    Clean,
    /// Worth knowing (a modified tracked file, a weak signal), not an alarm.
    Info,
    /// Needs a human look.
    Suspicious,
    /// Strong or combined evidence of a backdoor or webshell.
    Malicious,
}

impl Verdict {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Info => "info",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

/// Which detection layer a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Code patterns: sinks, sources, decoder chains, family markers.
    Code,
    /// Obfuscation statistics: entropy, index of coincidence, long tokens.
    Obfuscation,
    /// Where the code sits: PHP in a non-PHP file, handler tricks.
    Placement,
    /// File context: timestamps, owner, writable directories.
    Context,
    /// Integrity: differs from git's HEAD or from a baseline.
    Integrity,
}

/// How much one reason alone says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strength {
    /// Common in benign code; only counts in combination.
    Weak,
    /// Unusual in benign code; suspicious alone.
    Medium,
    /// Enough alone for "malicious".
    Strong,
}

/// One piece of evidence about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable id, e.g. `code.exec-request` or `integrity.modified`.
    pub id: &'static str,
    /// The layer that found it.
    pub layer: Layer,
    /// How much it says alone.
    pub strength: Strength,
    /// Its contribution to the score.
    pub weight: u32,
    /// What was found, for people (may quote the file: escape before
    /// printing).
    pub message: String,
    /// 1-based line numbers it points at (sorted, at most a few).
    pub lines: Vec<u32>,
}

/// Options of the content scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// At most this many reasons per file (the worst are kept).
    pub max_reasons: usize,
    /// At most this many line numbers per reason.
    pub max_lines: usize,
    /// At most this many characters quoted from the file per reason.
    pub quote_chars: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_reasons: 24,
            max_lines: 10,
            quote_chars: 120,
        }
    }
}

/// What the content scan found in one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContentScan {
    /// Whether the file holds PHP code (`<?php`, `<?=`, or a `.php`-like name).
    pub has_php: bool,
    /// The evidence found, strongest first, then by id (deterministic).
    pub reasons: Vec<Reason>,
    /// Whether the code was tokenized and analysed (false when the
    /// prefilter found none of the anchors, or the file is not a script).
    pub analysed: bool,
    /// The obfuscation statistics, when the code was analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<TextStats>,
}

/// Prefilter groups: which analyses a file needs.
const PF_CODE: u8 = 1;
const PF_MARKER: u8 = 2;
const PF_FOREIGN: u8 = 4;

/// The literal anchors of the prefilter and the analyses each one wakes.
/// A script that contains none of them cannot reach a sink we know, so it
/// gets no further work.
const ANCHORS: &[(&str, u8)] = &[
    ("eval", PF_CODE | PF_MARKER),
    ("assert", PF_CODE),
    ("system", PF_CODE),
    ("exec", PF_CODE),
    ("shell_exec", PF_CODE),
    ("pcntl_exec", PF_CODE),
    ("getenv", PF_CODE),
    ("passthru", PF_CODE),
    ("popen", PF_CODE),
    ("proc_open", PF_CODE),
    ("create_function", PF_CODE),
    // Callback takers (array_map, usort, call_user_func, ob_start, …) are
    // no anchors of their own: a backdoor through them still needs request
    // data, a decoder, an escape-built name or a quoted sink name
    // ('assert'), which are anchors. Alone they woke a quarter of WordPress
    // for nothing. preg_replace counts only with a literal /e pattern.
    ("preg_replace", PF_CODE),
    ("preg_filter", PF_CODE),
    ("base64_decode", PF_CODE),
    ("gzinflate", PF_CODE),
    ("gzuncompress", PF_CODE),
    ("str_rot13", PF_CODE),
    ("hex2bin", PF_CODE),
    ("strrev", PF_CODE),
    ("convert_uudecode", PF_CODE),
    ("$_get", PF_CODE),
    ("$_post", PF_CODE),
    ("$_request", PF_CODE),
    ("$_cookie", PF_CODE),
    ("$_files", PF_CODE),
    ("$_server", PF_CODE),
    ("$http_", PF_CODE),
    ("getallheaders", PF_CODE),
    ("php://", PF_CODE),
    ("data:", PF_CODE),
    ("move_uploaded_file", PF_CODE),
    ("mail", PF_CODE),
    ("chr(", PF_CODE),
    ("\\x", PF_CODE),
    ("$$", PF_CODE),
    ("${", PF_CODE),
    // Variables named only with underscores: code written without letters.
    ("$_[", PF_CODE),
    ("$__", PF_CODE),
    ("extract", PF_CODE),
    (".ico", PF_CODE),
    (".png", PF_CODE),
    (".jpg", PF_CODE),
    (".gif", PF_CODE),
    (".htaccess", PF_CODE),
    ("php.ini", PF_CODE),
    (".user.ini", PF_CODE),
    ("filesman", PF_MARKER),
    ("wso", PF_MARKER),
    ("c99", PF_MARKER),
    ("r57", PF_MARKER),
    ("b374k", PF_MARKER),
    ("payloadname", PF_MARKER),
    ("$k[$i", PF_MARKER),
    ("e45e329feb5d925b", PF_MARKER),
    ("__invoke", PF_MARKER),
    ("$kh", PF_MARKER),
    ("shell", PF_MARKER),
    ("backdoor", PF_MARKER),
    ("back door", PF_MARKER),
    ("hacked", PF_MARKER),
    ("defaced", PF_MARKER),
    ("defacer", PF_MARKER),
    ("bypass", PF_MARKER),
    ("priv8", PF_MARKER),
    ("c0ded", PF_MARKER),
    ("obfusc", PF_MARKER),
    ("ioncube", PF_MARKER),
    ("<%", PF_FOREIGN),
    ("#!", PF_FOREIGN),
];

/// Anchors that are function names: they count only as a call or a
/// callback name — at a word start (not a method, not part of a longer
/// name such as `email` or `wp_mail`) and followed by `(` or a closing
/// quote. Benign code says "mail", "system" and "exec" in other senses
/// all the time; without this test nearly every Roundcube file woke the
/// full analysis. A backtick is no anchor at all: SQL and doc comments are
/// full of them, and a backtick shell needs request data, whose anchors
/// remain.
const CALL_ANCHORS: &[&str] = &[
    "eval",
    "assert",
    "system",
    "exec",
    "shell_exec",
    "pcntl_exec",
    "getenv",
    "passthru",
    "popen",
    "proc_open",
    "create_function",
    "preg_replace",
    "preg_filter",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "str_rot13",
    "hex2bin",
    "strrev",
    "convert_uudecode",
    "getallheaders",
    "move_uploaded_file",
    "mail",
    "extract",
];

/// Whether `preg_replace(`/`preg_filter(` at `end` (just after the name)
/// starts with a literal pattern carrying the `e` modifier (code
/// evaluation, PHP < 7).
fn preg_e_like(bytes: &[u8], end: usize) -> bool {
    let rest = &bytes[end.min(bytes.len())..];
    let rest = &rest[..rest.len().min(512)];
    let Some(open) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if rest[open] != b'(' {
        return false;
    }
    let Some(q) = rest[open + 1..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|k| open + 1 + k)
    else {
        return false;
    };
    if !matches!(rest[q], b'\'' | b'"') {
        return false;
    }
    // The literal runs to the next unescaped quote of the same kind; the
    // code layer's own modifier test then reads it.
    let mut escaped = false;
    let Some(len) = rest[q + 1..].iter().position(|&b| {
        let close = b == rest[q] && !escaped;
        escaped = b == b'\\' && !escaped;
        close
    }) else {
        return false;
    };
    code::has_e_modifier(&rest[q + 1..q + 1 + len])
}

/// Whether an anchor found at `start..end` of `bytes` is a call or a
/// callback name (see [`CALL_ANCHORS`]).
fn call_like(bytes: &[u8], start: usize, end: usize) -> bool {
    if let Some(&b) = start.checked_sub(1).and_then(|i| bytes.get(i))
        && (b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'>' | b':') || b >= 0x80)
    {
        return false;
    }
    let end = end.min(bytes.len());
    let next = bytes[end..].iter().take(8).position(|b| !b.is_ascii_whitespace());
    match next.map(|k| bytes[end + k]) {
        Some(b'(') => true,
        // A callback name: the whole string literal is the name (`'system'`),
        // in lower case, and no array key (`['mail']`, `'mail' =>`).
        Some(q @ (b'\'' | b'"')) if next == Some(0) => {
            let opened = start.checked_sub(1).and_then(|i| bytes.get(i)) == Some(&q);
            let before = bytes[..start.saturating_sub(1)]
                .iter()
                .rev()
                .take(8)
                .find(|b| !b.is_ascii_whitespace());
            let after = bytes[end + 1..].iter().take(8).find(|b| !b.is_ascii_whitespace());
            // Lower case, as code names functions; `'Mail'` is a label.
            let lower = !bytes[start..end].iter().any(u8::is_ascii_uppercase);
            opened && lower && before != Some(&b'[') && !matches!(after, Some(b'=' | b']'))
        }
        _ => false,
    }
}

/// The compiled detection rules; build once, share between threads.
#[derive(Debug)]
pub struct Scanner {
    opts: ScanOptions,
    prefilter: AhoCorasick,
    /// Per anchor: whether it must look like a call ([`CALL_ANCHORS`]).
    call_anchor: Vec<bool>,
    markers: markers::Markers,
}

impl Scanner {
    /// Compiles the built-in rules.
    pub fn new(opts: ScanOptions) -> Self {
        // The anchors are constants; building them cannot fail at run time
        // unless the table above is broken, which the unit tests catch.
        // Leftmost-longest without overlaps: `shell_exec` is one match, not
        // also `shell` and `exec`; a DFA, since this pass reads every byte
        // of every script.
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(ANCHORS.iter().map(|(a, _)| a))
            .unwrap_or_else(|e| panic!("webscan prefilter anchors: {e}"));
        let call_anchor = ANCHORS.iter().map(|(a, _)| CALL_ANCHORS.contains(a)).collect();
        Scanner {
            opts,
            prefilter,
            call_anchor,
            markers: markers::Markers::new(),
        }
    }

    /// Which analyses the file needs (one pass over the bytes).
    fn prefilter(&self, bytes: &[u8]) -> u8 {
        let mut flags = 0u8;
        for m in self.prefilter.find_iter(bytes) {
            let i = m.pattern().as_usize();
            if self.call_anchor[i] && !call_like(bytes, m.start(), m.end()) {
                continue;
            }
            if ANCHORS[i].0.starts_with("preg_") && !preg_e_like(bytes, m.end()) {
                continue;
            }
            flags |= ANCHORS[i].1;
            if flags == PF_CODE | PF_MARKER | PF_FOREIGN {
                break;
            }
        }
        flags
    }

    /// Scans one file's bytes. `name` is the file's name (for placement
    /// checks: PHP in a `.jpg`, `.htaccess`, `.user.ini`); `bytes` may be a
    /// size-capped prefix of the file.
    pub fn scan_content(&self, name: &str, bytes: &[u8]) -> ContentScan {
        let mut out = Collector::new(bytes, &self.opts);
        let base = placement::base_name(name);
        let php_name = placement::is_php_name(base.as_bytes());
        let php_in_data = placement::check(name, bytes, &mut out);
        let data_name = placement::is_non_php_ext(base.as_bytes());
        let has_php = php_name || php_in_data || (!data_name && placement::php_tag(bytes).is_some());
        let script = has_php || placement::is_script_name(base.as_bytes());
        let mut scan = ContentScan {
            has_php,
            ..ContentScan::default()
        };
        // Binary sniffing: a data file without PHP gets no further work.
        if script {
            let flags = self.prefilter(bytes);
            if flags & PF_FOREIGN != 0 {
                self.markers.foreign(php_name, bytes, &mut out);
            }
            if flags & PF_MARKER != 0 {
                self.markers.families(bytes, &mut out);
            }
            if flags & PF_CODE != 0 && has_php {
                let lx = lex::lex(bytes);
                let fields = form_fields(bytes);
                let mut c = code::Code::new(bytes, &lx, fields);
                c.run(&mut out);
                obfuscation::token_reasons(&c, &mut out);
                toolkit(c.caps, &mut out);
                let stats = TextStats::from_raw(&lx.stats);
                obfuscation::stats_reasons(&stats, &mut out);
                scan.stats = Some(stats);
                scan.analysed = true;
            }
        }
        scan.reasons = out.finish();
        scan
    }
}

/// Names of HTML form fields (`name="cmd"`): under `register_globals` (the
/// PHP 4 era many webshells still assume) they arrive as `$cmd`.
fn form_fields(bytes: &[u8]) -> rustc_hash::FxHashSet<Vec<u8>> {
    let mut out = rustc_hash::FxHashSet::default();
    let finder = memchr::memmem::Finder::new(b"name=");
    let form_tag = memchr::memchr_iter(b'<', bytes).any(|i| {
        let rest = &bytes[i + 1..];
        [&b"input"[..], b"textarea", b"select"]
            .iter()
            .any(|t| rest.get(..t.len()).is_some_and(|w| w.eq_ignore_ascii_case(t)))
    });
    if !form_tag {
        return out;
    }
    for p in finder.find_iter(bytes).take(2000) {
        let mut i = p + 5;
        while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b'\\') {
            i += 1;
        }
        let s = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') && i - s < 40 {
            i += 1;
        }
        if i > s && !bytes[s].is_ascii_digit() {
            out.insert(bytes[s..i].to_vec());
        }
    }
    out
}

/// The breadth of webshell capabilities in one file (commands, recon, file
/// manager, uploads, database, sockets, stealth, request-driven). Benign
/// code has a few of these; a webshell kit has most.
fn toolkit(caps: u32, out: &mut Collector) {
    use code::cap;
    // A reverse or bind shell: a socket, a shell binary and a command
    // runner in one file (the published PHP reverse-shell layout).
    if caps & (cap::SOCKET | cap::SHELL_PATH | cap::EXEC_ANY) == cap::SOCKET | cap::SHELL_PATH | cap::EXEC_ANY
    {
        out.add(
            "code.reverse-shell",
            Layer::Code,
            Strength::Strong,
            u32::MAX,
            || "opens a socket and runs a shell (/bin/sh, cmd.exe) over it".into(),
        );
    }
    let caps = caps & cap::BREADTH;
    let n = caps.count_ones();
    let request = caps & code::cap::REQUEST != 0;
    let runs = caps & (code::cap::EXEC_VAR | code::cap::EVAL_VAR) != 0;
    if n < TOOLKIT_WEAK {
        return;
    }
    let strength = if request && runs && n >= TOOLKIT_STRONG {
        Strength::Strong
    } else if request && (n >= TOOLKIT_MEDIUM || (runs && n >= TOOLKIT_MEDIUM - 1)) {
        Strength::Medium
    } else {
        Strength::Weak
    };
    let names: Vec<&str> = code::cap::NAMES
        .iter()
        .filter(|(b, _)| caps & b != 0)
        .map(|(_, s)| *s)
        .collect();
    out.add("code.shell-toolkit", Layer::Code, strength, u32::MAX, || {
        format!("{n} webshell capabilities together: {}", names.join(", "))
    });
}

/// Capability counts for the toolkit rule (measured on the benign trees).
const TOOLKIT_WEAK: u32 = 3;
const TOOLKIT_MEDIUM: u32 = 5;
const TOOLKIT_STRONG: u32 = 6;

/// The weight of a reason of each strength; [`score`] sums them.
pub fn weight_of(strength: Strength) -> u32 {
    match strength {
        Strength::Weak => 10,
        Strength::Medium => 40,
        Strength::Strong => 100,
    }
}

/// Gathers reasons for one file: one reason per id, its line numbers
/// merged, sizes bounded.
pub(crate) struct Collector<'a> {
    src: &'a [u8],
    opts: &'a ScanOptions,
    line_starts: Option<Vec<u32>>,
    reasons: Vec<Reason>,
}

impl<'a> Collector<'a> {
    fn new(src: &'a [u8], opts: &'a ScanOptions) -> Self {
        Collector {
            src,
            opts,
            line_starts: None,
            reasons: Vec::new(),
        }
    }

    /// The 1-based line of byte offset `pos`.
    fn line_of(&mut self, pos: u32) -> u32 {
        let src = self.src;
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', src).map(|i| i as u32 + 1))
                .collect()
        });
        starts.partition_point(|&s| s <= pos) as u32
    }

    /// The line at `pos`, trimmed and cut to the quote limit.
    fn quote(&self, pos: u32) -> String {
        let p = (pos as usize).min(self.src.len());
        let start = self.src[..p]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let end = self.src[p..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.src.len(), |i| p + i);
        // Start near the hit on very long lines.
        let start = if p - start > self.opts.quote_chars / 2 {
            p.saturating_sub(20)
        } else {
            start
        };
        let line = String::from_utf8_lossy(&self.src[start..end]);
        let line = line.trim();
        let mut q: String = line.chars().take(self.opts.quote_chars).collect();
        if q.len() < line.len() {
            q.push('…');
        }
        q
    }

    /// Adds evidence `id` at byte offset `pos` (`u32::MAX`: the whole file).
    pub(crate) fn add(
        &mut self,
        id: &'static str,
        layer: Layer,
        strength: Strength,
        pos: u32,
        msg: impl FnOnce() -> String,
    ) {
        let line = if pos == u32::MAX || self.src.is_empty() {
            None
        } else {
            Some(self.line_of(pos))
        };
        let max_lines = self.opts.max_lines;
        if let Some(r) = self.reasons.iter_mut().find(|r| r.id == id) {
            if strength > r.strength {
                r.strength = strength;
                r.weight = weight_of(strength);
            }
            if let Some(l) = line
                && !r.lines.contains(&l)
                && r.lines.len() < max_lines
            {
                r.lines.push(l);
                r.lines.sort_unstable();
            }
            return;
        }
        let mut message = msg();
        if line.is_some() {
            let q = self.quote(pos);
            if !q.is_empty() {
                message.push_str(": ");
                message.push_str(&q);
            }
        }
        self.reasons.push(Reason {
            id,
            layer,
            strength,
            weight: weight_of(strength),
            message,
            lines: line.into_iter().collect(),
        });
    }

    /// The reasons, strongest first, then by id; at most `max_reasons`.
    fn finish(mut self) -> Vec<Reason> {
        self.reasons
            .sort_by(|a, b| b.strength.cmp(&a.strength).then(a.id.cmp(b.id)));
        self.reasons.truncate(self.opts.max_reasons);
        self.reasons
    }
}

/// A file's metadata as the context checks need it (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileMeta {
    /// Modification time.
    pub mtime: i64,
    /// Status change time.
    pub ctime: i64,
    /// Owner's uid.
    pub uid: u32,
    /// Permission bits and type (st_mode).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
}

/// What the context checks compare a file with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirContext {
    /// Median modification time of the other files in the same directory
    /// (None when it has no other files).
    pub sibling_mtime_median: Option<i64>,
    /// When the tree was installed, if known: what the user said
    /// (`--install-time`), else the HEAD commit's time of a git checkout.
    pub install_time: Option<i64>,
    /// The web server's uids (www-data, nginx, apache, 82 in Mailcow's
    /// php-fpm image …).
    pub web_uids: Vec<u32>,
    /// Whether the directory is writable by the web server or everyone
    /// (an upload directory).
    pub dir_writable_by_web: bool,
}

/// A file changed this long after its siblings is an outlier (seconds).
const MTIME_OUTLIER: i64 = 7 * 86_400;
/// Slack for installs and copies (seconds).
const DAY: i64 = 86_400;

/// Context evidence for one script file.
pub fn context_reasons(meta: &FileMeta, ctx: &DirContext) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut push = |id: &'static str, strength: Strength, message: String| {
        out.push(Reason {
            id,
            layer: Layer::Context,
            strength,
            weight: weight_of(strength),
            message,
            lines: Vec::new(),
        });
    };
    let after_install = ctx.install_time.is_none_or(|t| meta.mtime > t + DAY);
    if let Some(median) = ctx.sibling_mtime_median
        && meta.mtime - median > MTIME_OUTLIER
        && after_install
    {
        {
            let days = (meta.mtime - median) / DAY;
            push(
                "context.mtime-outlier",
                Strength::Weak,
                format!("modified {days} days after the median of its directory"),
            );
        }
    }
    // Timestomping: the status change (which `touch -d` cannot set) is well
    // after installation, while the modification time claims to be older.
    // An unpacked archive also has ctime ≫ mtime, but then ctime is the
    // install time, not later.
    if meta.ctime - meta.mtime > DAY {
        match ctx.install_time {
            Some(t) if meta.ctime > t + DAY => push(
                "context.timestomp",
                Strength::Medium,
                format!(
                    "changed {} days after installation but dated {} days earlier (mtime set back)",
                    (meta.ctime - t) / DAY,
                    (meta.ctime - meta.mtime) / DAY
                ),
            ),
            _ => {}
        }
    }
    if ctx.web_uids.contains(&meta.uid) {
        push(
            "context.web-owner",
            Strength::Weak,
            format!("owned by the web server (uid {})", meta.uid),
        );
    }
    if ctx.dir_writable_by_web {
        push(
            "context.writable-dir",
            Strength::Weak,
            "in a directory the web server can write (uploads)".into(),
        );
    }
    if meta.mode & 0o002 != 0 {
        push(
            "context.world-writable",
            Strength::Weak,
            "writable by everyone".into(),
        );
    }
    out
}

/// The verdict and score for a file's reasons (from every layer).
///
/// - any strong reason → malicious;
/// - two different medium reasons of code, obfuscation or placement, or
///   one backed by medium evidence of another layer, or three medium
///   reasons → malicious;
/// - a medium reason of code, obfuscation, placement or context →
///   suspicious; integrity alone (a modified or new file) stays info;
/// - weak reasons from two or more layers with weight ≥ 30 → suspicious;
/// - anything else → info (clean when there are no reasons).
pub fn score(reasons: &[Reason]) -> (Verdict, u32) {
    let total: u32 = reasons.iter().map(|r| r.weight).sum();
    if reasons.is_empty() {
        return (Verdict::Clean, 0);
    }
    let evidence = |l: Layer| matches!(l, Layer::Code | Layer::Obfuscation | Layer::Placement);
    if reasons.iter().any(|r| r.strength == Strength::Strong) {
        return (Verdict::Malicious, total);
    }
    let medium: Vec<&Reason> = reasons
        .iter()
        .filter(|r| r.strength == Strength::Medium)
        .collect();
    let medium_layers: HashSet<Layer> = medium.iter().map(|r| r.layer).collect();
    let medium_evidence = medium.iter().filter(|r| evidence(r.layer)).count();
    // Combined evidence: two different medium findings in the code itself
    // (reasons are one per id), or one backed by another layer.
    if medium_evidence >= 2 || (medium_evidence >= 1 && (medium_layers.len() >= 2 || medium.len() >= 3)) {
        return (Verdict::Malicious, total);
    }
    if medium.iter().any(|r| r.layer != Layer::Integrity) {
        return (Verdict::Suspicious, total);
    }
    let weak_layers: HashSet<Layer> = reasons
        .iter()
        .filter(|r| r.strength == Strength::Weak)
        .map(|r| r.layer)
        .collect();
    let weak_weight: u32 = reasons
        .iter()
        .filter(|r| r.strength == Strength::Weak && r.layer != Layer::Integrity)
        .map(|r| r.weight)
        .sum();
    if weak_layers.len() >= 2 && weak_weight >= 30 {
        return (Verdict::Suspicious, total);
    }
    (Verdict::Info, total)
}

/// How a file differs from what it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrityKind {
    /// A file tracked in git's HEAD whose content differs from the blob.
    ModifiedFromHead,
    /// A file inside a git checkout that HEAD does not track.
    UntrackedInRepo,
    /// A file whose content differs from the baseline manifest.
    ChangedFromBaseline,
    /// A file the baseline manifest does not list.
    NewSinceBaseline,
}

/// The integrity evidence for one file; `detail` says against what (the
/// HEAD commit, the baseline file).
pub fn integrity_reason(kind: IntegrityKind, detail: &str) -> Reason {
    let detail: String = detail.chars().take(120).collect();
    let (id, strength, message) = match kind {
        IntegrityKind::ModifiedFromHead => (
            "integrity.modified",
            Strength::Medium,
            format!("differs from git HEAD ({detail})"),
        ),
        IntegrityKind::UntrackedInRepo => (
            "integrity.untracked",
            Strength::Weak,
            format!("not tracked by git ({detail})"),
        ),
        IntegrityKind::ChangedFromBaseline => (
            "integrity.changed",
            Strength::Medium,
            format!("differs from the baseline ({detail})"),
        ),
        IntegrityKind::NewSinceBaseline => (
            "integrity.new",
            Strength::Weak,
            format!("not in the baseline ({detail})"),
        ),
    };
    Reason {
        id,
        layer: Layer::Integrity,
        strength,
        weight: weight_of(strength),
        message,
        lines: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `src` as `name`; returns the verdict and the reason ids.
    fn check(name: &str, src: &str) -> (Verdict, Vec<&'static str>) {
        let r = Scanner::new(ScanOptions::default()).scan_content(name, src.as_bytes());
        (score(&r.reasons).0, r.reasons.iter().map(|r| r.id).collect())
    }

    proptest::proptest! {
        /// The memchr-based case-insensitive search agrees with the plain one.
        #[test]
        fn contains_ci_matches_naive(h in "[a-cA-C/ ]{0,40}", n in "[a-cA-C/]{0,4}") {
            let naive = n.is_empty()
                || h.as_bytes().windows(n.len()).any(|w| w.eq_ignore_ascii_case(n.as_bytes()));
            proptest::prop_assert_eq!(code::contains_ci(h.as_bytes(), n.as_bytes()), naive);
        }
    }

    #[test]
    fn function_anchors_count_only_as_calls() {
        let sc = Scanner::new(ScanOptions::default());
        let pf = |t: &str| sc.prefilter(t.as_bytes()) & PF_CODE != 0;
        for woke in [
            "mail($to, $s, $b);",
            "mail ($to);",
            "\\system('id');",
            "array_map('system', $a);",
            "usort($a, 'assert');",
            "preg_replace('/x/ie', $r, $s);",
            "preg_replace(\"#(a)#e\", $r, $s);",
            "$f = \"exec\";",
            "@Eval($x);",
            "shell_exec($c);",
        ] {
            assert!(pf(woke), "{woke}");
        }
        for quiet in [
            "$labels['mail'] = 'Mail';",
            "$email = 1; wp_mail($to);",
            "$db->exec($sql); Foo::system();",
            "// the file system; execute it",
            "SELECT `id` FROM `t`",
            "array_map('trim', $a); usort($a, $cmp);",
            "preg_replace('/e(x)/i', $r, $s); preg_replace($p, $r, $s);",
        ] {
            assert!(!pf(quiet), "{quiet}");
        }
    }

    #[test]
    fn code_layer() {
        let cases: &[(&str, &str, Verdict)] = &[
            (
                "<?php eval($_POST['a']);",
                "code.eval-request",
                Verdict::Malicious,
            ),
            (
                "<?php $c = $_GET['c']; $d = \"x $c\"; system($d);",
                "code.exec-request",
                Verdict::Malicious,
            ),
            (
                "<?php function run($w) { return shell_exec($w); } echo run($_REQUEST['q']);",
                "code.exec-request",
                Verdict::Malicious,
            ),
            (
                "<?php passthru(getenv('HTTP_X_CMD'));",
                "code.exec-request",
                Verdict::Malicious,
            ),
            (
                "<?php include $_GET['p'];",
                "code.include-request",
                Verdict::Malicious,
            ),
            (
                "<?php include 'data:text/plain;base64,PD9waHA=';",
                "code.include-wrapper",
                Verdict::Malicious,
            ),
            (
                "<?php include 'img/logo.ico';",
                "code.include-non-php",
                Verdict::Suspicious,
            ),
            (
                "<?php include __DIR__ . '/pages/' . $_GET['p'];",
                "code.include-request-path",
                Verdict::Suspicious,
            ),
            (
                "<?php array_map('assert', $_POST);",
                "code.eval-request",
                Verdict::Malicious,
            ),
            (
                "<?php $f = \"\\x73ys\" . 'tem'; $f('id');",
                "code.hidden-call",
                Verdict::Malicious,
            ),
            (
                "<?php $a = \"\\x65\\x76\\x61\\x6c\"; $b = $a;",
                "obfuscation.assembled-name",
                Verdict::Suspicious,
            ),
            (
                "<?php extract($_REQUEST); system($cmd);",
                "code.exec-request",
                Verdict::Malicious,
            ),
            (
                "<?php $f = fopen('up/.htaccess', 'w');",
                "code.writes-server-config",
                Verdict::Suspicious,
            ),
            (
                "<?php preg_replace('#x#e', 'strtoupper(\"\\1\")', $s);",
                "code.preg-e-modifier",
                Verdict::Suspicious,
            ),
        ];
        for (src, id, verdict) in cases {
            let (v, ids) = check("t.php", src);
            assert!(ids.contains(id), "{src}: {ids:?}");
            assert_eq!(v, *verdict, "{src}: {ids:?}");
        }
    }

    #[test]
    fn comments_strings_sanitizers_and_methods_are_not_sinks() {
        for src in [
            "<?php // eval($_POST['x'])\n/* system($_GET['c']) */ $s = 'exec($_GET[1])';",
            "<?php $db->exec($_POST['sql']);",
            "<?php exec('ls ' . escapeshellarg($_GET['d']));",
            "<?php $v = $_GET['v']; $x = strlen($v); eval('return 1;');",
            "<?php $h = $handlers[$_GET['h']]; call_user_func($h);",
            "<?php function a() { $c = $_GET['c']; } function b($c) { system($c); }",
            "<html><p>system($_GET['cmd'])</p></html>",
        ] {
            let (v, ids) = check("t.php", src);
            assert!(v < Verdict::Suspicious, "{src}: {ids:?}");
        }
    }

    #[test]
    fn placement_layer() {
        let (v, ids) = check("a/b.gif", "GIF89a\x01\x00<?php echo 1; ?>");
        assert_eq!((v, ids[0]), (Verdict::Malicious, "placement.php-in-image"));
        let (v, ids) = check("notes.txt", "<?php phpinfo(); ?>");
        assert_eq!((v, ids[0]), (Verdict::Suspicious, "placement.php-in-non-php"));
        let (v, _) = check("x.png", "\u{89}PNG <?xml <?phpx <?=1");
        assert_eq!(v, Verdict::Clean);
        let (v, ids) = check(
            ".htaccess",
            "<FilesMatch \"\\.jpg$\">\nSetHandler application/x-httpd-php\n</FilesMatch>\n",
        );
        assert_eq!((v, ids[0]), (Verdict::Malicious, "placement.htaccess-handler"));
        let (v, _) = check(".htaccess", "AddHandler php-script .php .phtml\n");
        assert_eq!(v, Verdict::Clean);
        let (v, ids) = check(".user.ini", "auto_prepend_file=/srv/waf/guard.php\n");
        assert_eq!((v, ids[0]), (Verdict::Suspicious, "placement.auto-prepend"));
        let (v, ids) = check(".htaccess", "php_value auto_append_file /tmp/x.txt\n");
        assert_eq!((v, ids[0]), (Verdict::Malicious, "placement.auto-prepend"));
    }

    #[test]
    fn obfuscation_layer() {
        let src = format!(
            "<?php $_=[]; $__=@\"{}\"; $___=$__[0].$__[1]; $___($_[0]);{}",
            "!".repeat(10),
            "$_[]=$__;".repeat(40)
        );
        let (_, ids) = check("n.php", &src);
        assert!(ids.contains(&"obfuscation.no-letters"), "{ids:?}");
        let blob = "QUJD".repeat(700);
        let r = Scanner::new(ScanOptions::default())
            .scan_content("b.php", format!("<?php $x = base64_decode('{blob}');").as_bytes());
        assert!(
            r.reasons.iter().any(|r| r.id == "obfuscation.encoded-blob"),
            "{:?}",
            r.reasons
        );
        let st = r.stats.expect("stats");
        assert!(st.longest_word >= 2800 && st.entropy > 0.0);
    }

    #[test]
    fn prefilter_skips_plain_scripts_and_binaries() {
        let r = Scanner::new(ScanOptions::default()).scan_content("a.php", b"<?php echo strlen('abc');");
        assert!(!r.analysed && r.has_php && r.reasons.is_empty());
        let r = Scanner::new(ScanOptions::default()).scan_content("a.jpg", b"\xff\xd8\xff eval($_POST[1])");
        assert!(!r.analysed && !r.has_php && r.reasons.is_empty());
    }

    #[test]
    fn quotes_and_lines_are_bounded() {
        let long = format!("<?php eval($_POST['a']); // {}\n", "x".repeat(5000)).repeat(30);
        let r = Scanner::new(ScanOptions::default()).scan_content("l.php", long.as_bytes());
        let reason = r
            .reasons
            .iter()
            .find(|r| r.id == "code.eval-request")
            .expect("reason");
        assert_eq!(reason.lines.len(), 10);
        assert!(reason.message.chars().count() < 200, "{}", reason.message);
    }

    #[test]
    fn context_layer() {
        let ctx = DirContext {
            sibling_mtime_median: Some(1_000_000),
            install_time: Some(900_000),
            web_uids: vec![33],
            dir_writable_by_web: true,
        };
        let meta = FileMeta {
            mtime: 1_000_000 + 30 * DAY,
            ctime: 1_000_000 + 30 * DAY,
            uid: 33,
            mode: 0o100666,
            size: 10,
        };
        let ids: Vec<_> = context_reasons(&meta, &ctx).iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [
                "context.mtime-outlier",
                "context.web-owner",
                "context.writable-dir",
                "context.world-writable"
            ]
        );
        // Dated back to the install, changed a month later.
        let stomped = FileMeta {
            mtime: 900_000,
            ctime: 900_000 + 30 * DAY,
            uid: 0,
            mode: 0o100644,
            size: 1,
        };
        let r = context_reasons(
            &stomped,
            &DirContext {
                install_time: Some(900_000),
                ..DirContext::default()
            },
        );
        assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), ["context.timestomp"]);
        // An unpacked archive: ctime ≫ mtime, but ctime is the install.
        let unpacked = FileMeta {
            mtime: 100,
            ctime: 900_000,
            uid: 0,
            mode: 0o100644,
            size: 1,
        };
        assert!(
            context_reasons(
                &unpacked,
                &DirContext {
                    install_time: Some(900_000),
                    ..DirContext::default()
                }
            )
            .is_empty()
        );
        assert_eq!(score(&context_reasons(&meta, &ctx)).0, Verdict::Info);
    }

    #[test]
    fn integrity_and_scoring() {
        let modified = integrity_reason(IntegrityKind::ModifiedFromHead, "HEAD abc123");
        let new = integrity_reason(IntegrityKind::NewSinceBaseline, "baseline.json");
        assert_eq!(
            (modified.id, modified.strength),
            ("integrity.modified", Strength::Medium)
        );
        assert_eq!((new.id, new.strength), ("integrity.new", Strength::Weak));
        assert_eq!(score(std::slice::from_ref(&modified)).0, Verdict::Info);
        assert_eq!(score(&[]).0, Verdict::Clean);
        let code_medium = Reason {
            id: "code.callback-sink",
            layer: Layer::Code,
            strength: Strength::Medium,
            weight: 40,
            message: String::new(),
            lines: vec![1],
        };
        assert_eq!(score(std::slice::from_ref(&code_medium)).0, Verdict::Suspicious);
        assert_eq!(score(&[code_medium.clone(), modified]).0, Verdict::Malicious);
        assert_eq!(score(&[code_medium, new.clone()]).0, Verdict::Suspicious);
        let weak_ctx = context_reasons(
            &FileMeta {
                uid: 33,
                ..FileMeta::default()
            },
            &DirContext {
                web_uids: vec![33],
                dir_writable_by_web: true,
                ..DirContext::default()
            },
        );
        let mut weak = weak_ctx.clone();
        weak.push(new);
        assert_eq!(score(&weak_ctx).0, Verdict::Info);
        assert_eq!(score(&weak).0, Verdict::Info);
    }

    #[test]
    fn scanner_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }
}
