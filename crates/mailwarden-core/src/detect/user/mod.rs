//! User-defined detection rules: a YAML format inspired by Sigma, its
//! compiler with positioned errors, and its evaluation inside the engine.
//!
//! ```yaml
//! rules:
//!   - id: sogo-login-watched-net       # lowercase a-z, 0-9 and -, no built-in id
//!     title: SOGo logins from a watched network
//!     severity: high                   # informational | low | medium | high | critical
//!     attack: [T1078]
//!     detection:
//!       selection:                     # a mapping: every condition holds
//!         kind: sogo
//!         event: login_succeeded
//!         client_ip|cidr: [203.0.113.0/24, 198.51.100.0/24]
//!       filter:
//!         user|endswith: "@example.org"
//!       condition: selection and not filter
//!     group_by: [client_ip]            # the alert's key
//!     timeframe: 10m                   # s, m, h, d
//!     threshold: 5                     # matches within the timeframe (default 1)
//!     distinct: user                   # count distinct values instead
//!     quiet: 30m                       # episode quiet period (default: timeframe, at least 60 s)
//!     source: events                   # events (default) or messages
//! ```
//!
//! A selection is a mapping (all of its `field|modifiers: value` entries
//! hold), a list of mappings (any of them holds) or a list of keywords (the
//! raw line contains one). Values compare case-insensitively; a list of
//! values holds when any value matches (every one with `|all`). Modifiers:
//! `contains`, `startswith`, `endswith`, `re`, `cidr`, `gt`, `gte`, `lt`,
//! `lte`, `all`, `exists`; without one, `*` and `?` are wildcards. The
//! condition combines selections with `and`, `or`, `not`, parentheses,
//! `1 of PATTERN`, `all of PATTERN` and `them` (see `cond`). Fields are
//! listed in [`EVENT_FIELDS`], [`EVENT_ALIASES`] and [`MESSAGE_FIELDS`];
//! `docs/rules.md` is the full reference.
//!
//! The core does no I/O: callers read the files and hand their text to
//! [`RuleSet::parse_files`]. Every mistake in a file is reported, each with
//! its file, line and column, what is wrong and the fix ([`RuleError`]).

mod cond;
mod eval;
mod fields;
mod locate;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

use self::cond::Expr;
pub(crate) use self::eval::UserRules;
use self::eval::{CmpOp, Cond, Detection, GlobTok, NamedField, Pattern, Selection, Test};
use self::fields::Field;
pub use self::fields::{EVENT_ALIASES, EVENT_FIELDS, MESSAGE_FIELDS, RuleSource};
use self::locate::{Seg, locate};
use super::catalog::{AlertSeverity, RULES};

/// Largest rule file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Most rules in one rule set.
pub const MAX_RULES: usize = 1000;
/// Largest threshold (a key's window keeps at most this many entries).
pub const MAX_THRESHOLD: u64 = 100_000;
/// Longest timeframe and quiet period, in seconds (366 days).
pub const MAX_SECS: i64 = 366 * 86_400;
/// Shortest quiet period, in seconds.
pub const MIN_QUIET_SECS: i64 = 60;
/// Most values in one field condition.
const MAX_VALUES: usize = 10_000;
/// Most selections in one rule.
const MAX_SELECTIONS: usize = 64;
/// Most fields in `group_by` and in `facts`.
const MAX_KEY_FIELDS: usize = 8;
/// Longest regular expression, in bytes.
const MAX_REGEX_BYTES: usize = 4096;
/// Compiled size limit of one regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest id.
const MAX_ID: usize = 64;
/// Timeframe when none is given.
const DEFAULT_TIMEFRAME: i64 = 600;

/// One mistake in a rule file: where, what, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// The file as the caller named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}; fix: {}",
            self.file, self.line, self.column, self.message, self.fix
        )
    }
}

impl std::error::Error for RuleError {}

/// Every mistake found in the rule files, in file and line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// A compiled user rule.
#[derive(Clone, Debug)]
pub struct UserRule {
    /// Stable id (lowercase letters, digits, `-`).
    pub id: String,
    /// One line for people.
    pub title: String,
    /// Severity of its alerts.
    pub severity: AlertSeverity,
    /// MITRE ATT&CK technique ids.
    pub attack: Vec<String>,
    /// What it detects and why (free text).
    pub description: String,
    /// Who wrote it.
    pub author: Option<String>,
    /// Where to read more.
    pub references: Vec<String>,
    /// Known harmless causes.
    pub falsepositives: Vec<String>,
    /// What it reads.
    pub source: RuleSource,
    /// The fields of the alert key.
    pub group_by: Vec<String>,
    /// Window length in seconds.
    pub timeframe_secs: i64,
    /// Matches (or distinct values) within the window that raise an alert.
    pub threshold: u64,
    /// The field whose distinct values are counted, if any.
    pub distinct: Option<String>,
    /// Seconds without a match after which an alert closes.
    pub quiet_secs: i64,
    /// Fields whose values the alert lists.
    pub facts: Vec<String>,
    /// The file it came from.
    pub file: String,
    /// The line it starts on.
    pub line: usize,
    /// Its text in the file (comments included).
    pub text: String,
    pub(crate) detection: Detection,
    pub(crate) group_fields: Vec<NamedField>,
    pub(crate) distinct_field: Option<NamedField>,
    pub(crate) fact_fields: Vec<NamedField>,
}

impl UserRule {
    /// The top-level JSON keys the rule reads (conditions, key, distinct
    /// count and facts), each once.
    pub(crate) fn json_keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let conds = self
            .detection
            .selections
            .iter()
            .flat_map(|s| s.alts.iter().flatten())
            .map(|c| &c.field);
        let named = self
            .group_fields
            .iter()
            .chain(&self.distinct_field)
            .chain(&self.fact_fields)
            .map(|f| &f.field);
        for f in conds.chain(named) {
            if let Some(k) = f.json_key()
                && !out.contains(&k)
            {
                out.push(k);
            }
        }
        out
    }
}

/// Compiled user rules from one or more files, in file order.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<UserRule>,
}

impl RuleSet {
    /// An empty set.
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// Compiles one file (`name` is used in errors and listings).
    pub fn parse(name: &str, text: &str) -> Result<RuleSet, RuleErrors> {
        RuleSet::parse_files([(name, text)])
    }

    /// Compiles several files into one set; ids must be unique across them.
    /// Returns every mistake of every file.
    pub fn parse_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RuleSet, RuleErrors> {
        let mut rules: Vec<UserRule> = Vec::new();
        let mut errors: Vec<RuleError> = Vec::new();
        let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for (name, text) in files {
            let file = compile_file(name, text);
            let mut errs = file.errors;
            // Ids of every rule (compiled or not) must be unique.
            let mut dup: Vec<usize> = Vec::new();
            for (i, id, line) in &file.ids {
                if let Some((first, first_line)) = seen.get(id) {
                    let at = locate(text, &key(&index(&key(&[], "rules"), *i), "id"));
                    errs.push(RuleError {
                        file: name.to_owned(),
                        line: at.line,
                        column: at.column,
                        message: format!("the id `{id}` is already used by the rule at {first}:{first_line}"),
                        fix: "give every rule its own id (ids are stable names: alerts refer to them)".into(),
                    });
                    dup.push(*i);
                } else {
                    seen.insert(id.clone(), (name.to_owned(), *line));
                }
            }
            errs.sort_by_key(|e| (e.line, e.column));
            errors.extend(errs);
            rules.extend(
                file.rules
                    .into_iter()
                    .filter(|(i, _)| !dup.contains(i))
                    .map(|(_, r)| r),
            );
        }
        if rules.len() > MAX_RULES {
            errors.push(RuleError {
                file: rules[MAX_RULES].file.clone(),
                line: rules[MAX_RULES].line,
                column: 1,
                message: format!("more than {MAX_RULES} rules"),
                fix: format!("keep at most {MAX_RULES} rules; merge similar ones with lists of values"),
            });
        }
        if errors.is_empty() {
            Ok(RuleSet { rules })
        } else {
            Err(RuleErrors(errors))
        }
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[UserRule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&UserRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// An error found while compiling, before its position is known.
struct Pending {
    path: Vec<Seg>,
    /// For condition errors: the byte offset inside the condition string.
    offset: Option<usize>,
    message: String,
    fix: String,
}

/// Collects the errors of one file.
#[derive(Default)]
struct Ctx {
    errs: Vec<Pending>,
}

impl Ctx {
    fn err(&mut self, path: &[Seg], message: impl Into<String>, fix: impl Into<String>) {
        self.errs.push(Pending {
            path: path.to_vec(),
            offset: None,
            message: message.into(),
            fix: fix.into(),
        });
    }
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_owned()));
    p
}

fn key_name(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::KeyName(k.to_owned()));
    p
}

fn index(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// The YAML type of a value, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A serde_yaml_ng message without its trailing ` at line N column M`.
fn bare_message(e: &serde_yaml_ng::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains(" column ") => s[..i].to_owned(),
        _ => s,
    }
}

/// Most mistakes reported per file (each is located by reading the file
/// again).
const MAX_ERRORS: usize = 100;

/// What compiling one file gave.
struct FileResult {
    /// The rules that compiled, with their number in the file.
    rules: Vec<(usize, UserRule)>,
    errors: Vec<RuleError>,
    /// Every rule's id that is a string: number, id, first line.
    ids: Vec<(usize, String, usize)>,
}

/// Compiles one file: its rules, and every mistake found.
fn compile_file(name: &str, text: &str) -> FileResult {
    let error = |line: usize, column: usize, message: String, fix: &str| RuleError {
        file: name.to_owned(),
        line,
        column,
        message,
        fix: fix.to_owned(),
    };
    let failed = |e: RuleError| FileResult {
        rules: Vec::new(),
        errors: vec![e],
        ids: Vec::new(),
    };
    if text.len() > MAX_FILE_BYTES {
        return failed(error(
            1,
            1,
            format!("the file is {} bytes long", text.len()),
            "keep rule files under 1 MiB; split them into several files in one directory",
        ));
    }
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            return failed(error(
                line,
                column,
                format!("YAML: {}", bare_message(&e)),
                "correct the YAML there (indentation, a missing `:`, an unclosed quote or bracket, a key \
                 given twice)",
            ));
        }
    };
    let mut cx = Ctx::default();
    let mut rules: Vec<(usize, UserRule)> = Vec::new();
    let list: &[Value] = match &doc {
        Value::Mapping(top) => {
            for (k, _) in top {
                match k.as_str() {
                    Some("rules") => {}
                    Some(other) => cx.err(
                        &key_name(&[], other),
                        format!("unknown top-level key `{other}`"),
                        "a rule file has one key, `rules:`, holding a list of rules",
                    ),
                    None => cx.err(
                        &[],
                        format!("a top-level key is {}", type_name(k)),
                        "a rule file has one key, `rules:`, holding a list of rules",
                    ),
                }
            }
            match top.get("rules") {
                Some(Value::Sequence(list)) => list,
                Some(Value::Null) => &[],
                Some(other) => {
                    cx.err(
                        &key(&[], "rules"),
                        format!("`rules` is {}", type_name(other)),
                        "make `rules:` a list: each rule starts with `- id: …`",
                    );
                    &[]
                }
                None => {
                    cx.err(
                        &[],
                        "the file has no `rules:` key",
                        "start the file with `rules:` and a list of rules (see docs/rules.md)",
                    );
                    &[]
                }
            }
        }
        Value::Null => {
            cx.err(
                &[],
                "the file holds no rules",
                "start the file with `rules:` and a list of rules (see docs/rules.md)",
            );
            &[]
        }
        other => {
            cx.err(
                &[],
                format!("the file is {}, not a mapping", type_name(other)),
                "start the file with `rules:` and a list of rules (see docs/rules.md)",
            );
            &[]
        }
    };
    let spans = rule_spans(text, list.len());
    let mut ids = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let path = index(&key(&[], "rules"), i);
        if let Some(id) = v.get("id").and_then(Value::as_str) {
            ids.push((i, id.trim().to_owned(), spans[i].0));
        }
        if let Some(mut r) = compile_rule(&mut cx, &path, v, name) {
            r.line = spans[i].0;
            r.text = rule_text(text, v, spans[i]);
            rules.push((i, r));
        }
    }
    // Positions: only for errors.
    let extra = cx.errs.len().saturating_sub(MAX_ERRORS);
    let mut errors: Vec<RuleError> = cx
        .errs
        .iter()
        .take(MAX_ERRORS)
        .map(|p| {
            let pos = locate(text, &p.path);
            let column = match p.offset {
                Some(off) => pos.column + offset_in_scalar(text, pos.index, off),
                None => pos.column,
            };
            error(pos.line, column, p.message.clone(), &p.fix)
        })
        .collect();
    if extra > 0 {
        let (line, column) = errors.last().map_or((1, 1), |e| (e.line, e.column));
        errors.push(error(
            line,
            column,
            format!("… and {extra} more mistakes"),
            "correct the ones above first",
        ));
    }
    FileResult { rules, errors, ids }
}

/// The lines of each of `n` rules: first line and the line after the last.
/// Rules written as block items (`- id: …`) are found in the text; others
/// (flow style) are located through the parser.
fn rule_spans(text: &str, n: usize) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut starts: Vec<usize> = Vec::new();
    let mut end = lines.len() + 1;
    let mut in_rules = false;
    let mut indent: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = line.len() - t.len();
        let dash = t == "-" || t.starts_with("- ");
        if !in_rules {
            if ind == 0 && t.starts_with("rules:") {
                in_rules = true;
            }
            continue;
        }
        match indent {
            None if dash => indent = Some(ind),
            None => break,
            Some(d) if ind == d && dash => {}
            Some(d) if ind > d => continue,
            Some(_) => {
                end = i + 1;
                break;
            }
        }
        starts.push(i + 1);
    }
    if starts.len() == n {
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(n);
        for (k, s) in starts.iter().enumerate() {
            spans.push((*s, starts.get(k + 1).copied().unwrap_or(end)));
        }
        return spans;
    }
    let starts: Vec<usize> = (0..n)
        .map(|i| locate(text, &index(&key(&[], "rules"), i)).line)
        .collect();
    (0..n)
        .map(|i| (starts[i], starts.get(i + 1).copied().unwrap_or(lines.len() + 1)))
        .collect()
}

/// Columns from a scalar's start to byte `off` of its value, when the value
/// is written on one line as it is (plain) or quoted; else 0.
fn offset_in_scalar(text: &str, index: usize, off: usize) -> usize {
    let Some(rest) = text.get(index..) else {
        return 0;
    };
    let line = rest.lines().next().unwrap_or("");
    let (skip, body) = match line.chars().next() {
        Some(q @ ('"' | '\'')) => (1, &line[q.len_utf8()..]),
        _ => (0, line),
    };
    match body.get(..off) {
        Some(prefix) => skip + prefix.chars().count(),
        None => 0,
    }
}

/// The text of a rule: its lines (without trailing blank lines and
/// comments), or the rule serialized again when it shares its lines with
/// others (flow style).
fn rule_text(text: &str, v: &Value, (start, end): (usize, usize)) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if start == 0 || end <= start || start > lines.len() {
        return serde_yaml_ng::to_string(v).unwrap_or_default();
    }
    let mut chunk: Vec<&str> = lines[start - 1..(end - 1).min(lines.len())].to_vec();
    while chunk
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        chunk.pop();
    }
    // Without the list's indentation.
    let indent = chunk
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut s = String::new();
    for l in chunk {
        s.push_str(l.get(indent..).unwrap_or_else(|| l.trim_start()));
        s.push('\n');
    }
    s
}

const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "severity",
    "attack",
    "description",
    "author",
    "references",
    "falsepositives",
    "detection",
    "group_by",
    "timeframe",
    "threshold",
    "distinct",
    "quiet",
    "source",
    "facts",
];

fn unknown_key_fix(k: &str, known: &[&str]) -> String {
    let mut near: Vec<(usize, &str)> = known.iter().map(|n| (fields::edit_distance(k, n), *n)).collect();
    near.sort();
    match near.first() {
        Some((d, n)) if *d <= 2 => format!("did you mean `{n}`? (the keys are: {})", known.join(", ")),
        _ => format!("use one of: {}", known.join(", ")),
    }
}

/// A required or optional string.
fn string(cx: &mut Ctx, m: &Mapping, path: &[Seg], k: &str, required: bool, fix: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        None if !required => None,
        None => {
            cx.err(path, format!("the rule has no `{k}`"), fix);
            None
        }
        Some(Value::String(_)) | Some(Value::Null) => {
            cx.err(&key(path, k), format!("`{k}` is empty"), fix);
            None
        }
        Some(other) => {
            cx.err(
                &key(path, k),
                format!("`{k}` is {}, not a string", type_name(other)),
                fix,
            );
            None
        }
    }
}

/// A string or a list of strings.
fn strings(cx: &mut Ctx, m: &Mapping, path: &[Seg], k: &str, fix: &str) -> Vec<String> {
    match m.get(k) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.trim().to_owned()],
        Some(Value::Sequence(list)) => {
            let mut out = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match v {
                    Value::String(s) => out.push(s.trim().to_owned()),
                    Value::Number(n) => out.push(n.to_string()),
                    other => cx.err(
                        &index(&key(path, k), i),
                        format!("an entry of `{k}` is {}", type_name(other)),
                        fix,
                    ),
                }
            }
            out
        }
        Some(other) => {
            cx.err(
                &key(path, k),
                format!("`{k}` is {}, not a string or a list of strings", type_name(other)),
                fix,
            );
            Vec::new()
        }
    }
}

/// `10m`, `1h30m`, `90s`, `2d`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if c.is_whitespace() && num.is_empty() {
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: i64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
        any = true;
    }
    (num.is_empty() && any).then_some(total)
}

fn duration(cx: &mut Ctx, m: &Mapping, path: &[Seg], k: &str, min: i64) -> Option<i64> {
    let fix = format!(
        "write a duration such as 90s, 10m, 1h or 2d (from {} to 366d)",
        super::primitive::span_text(min).replace(' ', "")
    );
    let v = m.get(k)?;
    let secs = match v {
        Value::String(s) => parse_duration(s),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    match secs {
        Some(s) if (min..=MAX_SECS).contains(&s) => Some(s),
        Some(s) => {
            cx.err(&key(path, k), format!("`{k}` is {s} seconds, out of range"), fix);
            None
        }
        None => {
            let shown = match v {
                Value::String(s) => format!("`{s}`"),
                other => type_name(other).to_owned(),
            };
            cx.err(&key(path, k), format!("`{k}` is {shown}, not a duration"), fix);
            None
        }
    }
}

fn field_name_list(
    cx: &mut Ctx,
    m: &Mapping,
    path: &[Seg],
    k: &str,
    source: RuleSource,
) -> (Vec<String>, Vec<NamedField>) {
    let names = strings(cx, m, path, k, "write a field name or a list of field names");
    if names.len() > MAX_KEY_FIELDS {
        cx.err(
            &key(path, k),
            format!("`{k}` names {} fields", names.len()),
            format!("name at most {MAX_KEY_FIELDS}"),
        );
        return (names, Vec::new());
    }
    let single = matches!(m.get(k), Some(Value::String(_)));
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let p = if single {
            key(path, k)
        } else {
            index(&key(path, k), i)
        };
        match fields::resolve(source, n) {
            Ok((field, name)) => out.push(NamedField { name, field }),
            Err(fix) => cx.err(
                &p,
                format!(
                    "`{k}` names the unknown field `{n}` (source: {})",
                    source.as_str()
                ),
                fix,
            ),
        }
    }
    (names, out)
}

fn compile_rule(cx: &mut Ctx, path: &[Seg], v: &Value, file: &str) -> Option<UserRule> {
    let Value::Mapping(m) = v else {
        cx.err(
            path,
            format!("a rule is {}, not a mapping", type_name(v)),
            "write each rule as `- id: …` followed by title, severity and detection",
        );
        return None;
    };
    let before = cx.errs.len();
    for (k, _) in m {
        match k.as_str() {
            Some(s) if RULE_KEYS.contains(&s) => {}
            Some(s) => cx.err(
                &key_name(path, s),
                format!("unknown key `{s}` in a rule"),
                unknown_key_fix(s, RULE_KEYS),
            ),
            None => cx.err(
                path,
                format!("a key of the rule is {}", type_name(k)),
                "keys are names such as id, title, detection",
            ),
        }
    }
    let id = string(
        cx,
        m,
        path,
        "id",
        true,
        "give the rule an id: lowercase letters, digits and -, e.g. `id: sogo-login-watched-net`",
    );
    if let Some(id) = &id {
        let ok = id.len() <= MAX_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-')
            && !id.ends_with('-');
        if !ok {
            cx.err(
                &key(path, "id"),
                format!("the id `{id}` is not of lowercase letters, digits and -"),
                format!("write it like `{}` (at most {MAX_ID} characters)", suggest_id(id)),
            );
        } else if RULES.iter().any(|r| r.id == id) {
            cx.err(
                &key(path, "id"),
                format!("`{id}` is the id of a built-in rule"),
                "choose another id (`mailwarden rules list` shows the built-in ones); to tune the built-in \
                 rule use --set",
            );
        }
    }
    let title = string(
        cx,
        m,
        path,
        "title",
        true,
        "give the rule a title: one line that says what an alert means",
    );
    let severity = match m.get("severity") {
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(AlertSeverity::Informational),
            "low" => Some(AlertSeverity::Low),
            "medium" => Some(AlertSeverity::Medium),
            "high" => Some(AlertSeverity::High),
            "critical" => Some(AlertSeverity::Critical),
            other => {
                cx.err(
                    &key(path, "severity"),
                    format!("unknown severity `{other}`"),
                    "use informational, low, medium, high or critical",
                );
                None
            }
        },
        None => {
            cx.err(
                path,
                "the rule has no `severity`",
                "add `severity:` informational, low, medium, high or critical",
            );
            None
        }
        Some(other) => {
            cx.err(
                &key(path, "severity"),
                format!("`severity` is {}", type_name(other)),
                "use informational, low, medium, high or critical",
            );
            None
        }
    };
    let attack = strings(
        cx,
        m,
        path,
        "attack",
        "write ATT&CK technique ids such as [T1078, T1110.003]",
    );
    for (i, a) in attack.iter().enumerate() {
        if !is_technique(a) {
            let p = if matches!(m.get("attack"), Some(Value::String(_))) {
                key(path, "attack")
            } else {
                index(&key(path, "attack"), i)
            };
            cx.err(
                &p,
                format!("`{a}` is no ATT&CK technique id"),
                "write T followed by four digits, optionally .NNN for a sub-technique (T1078, T1110.003)",
            );
        }
    }
    let attack: Vec<String> = attack.into_iter().map(|a| a.to_ascii_uppercase()).collect();
    let description =
        string(cx, m, path, "description", false, "write the description as text").unwrap_or_default();
    let author = string(cx, m, path, "author", false, "write the author as text");
    let references = strings(
        cx,
        m,
        path,
        "references",
        "write references as a list of URLs or texts",
    );
    let falsepositives = strings(
        cx,
        m,
        path,
        "falsepositives",
        "write known false positives as a list of texts",
    );
    let source = match m.get("source") {
        None => RuleSource::Events,
        Some(Value::String(s)) if s.trim() == "events" => RuleSource::Events,
        Some(Value::String(s)) if s.trim() == "messages" => RuleSource::Messages,
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| type_name(other).to_owned(), |s| format!("`{s}`"));
            cx.err(
                &key(path, "source"),
                format!("`source` is {shown}"),
                "use `events` (every parsed line, the default) or `messages` (stitched messages)",
            );
            RuleSource::Events
        }
    };
    let detection = match m.get("detection") {
        Some(d) => compile_detection(cx, &key(path, "detection"), d, source),
        None => {
            cx.err(
                path,
                "the rule has no `detection`",
                "add `detection:` with a selection (`selection: {kind: postfix, event: …}`) and a condition",
            );
            None
        }
    };
    let (group_by, group_fields) = field_name_list(cx, m, path, "group_by", source);
    let (facts, mut fact_fields) = field_name_list(cx, m, path, "facts", source);
    let distinct_name = string(
        cx,
        m,
        path,
        "distinct",
        false,
        "name one field, e.g. `distinct: user`",
    );
    let distinct_field = distinct_name
        .as_ref()
        .and_then(|n| match fields::resolve(source, n) {
            Ok((field, name)) => Some(NamedField { name, field }),
            Err(fix) => {
                cx.err(
                    &key(path, "distinct"),
                    format!(
                        "`distinct` names the unknown field `{n}` (source: {})",
                        source.as_str()
                    ),
                    fix,
                );
                None
            }
        });
    let threshold = match m.get("threshold") {
        None => Some(1),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => {
                cx.err(
                    &key(path, "threshold"),
                    "`threshold` is 0: the rule could never count to it",
                    "use 1 (every match alerts) or more",
                );
                None
            }
            Some(t) if t <= MAX_THRESHOLD => Some(t),
            _ => {
                cx.err(
                    &key(path, "threshold"),
                    format!("`threshold` is {n}"),
                    format!("use a whole number from 1 to {MAX_THRESHOLD}"),
                );
                None
            }
        },
        Some(other) => {
            cx.err(
                &key(path, "threshold"),
                format!("`threshold` is {}", type_name(other)),
                format!("use a whole number from 1 to {MAX_THRESHOLD}"),
            );
            None
        }
    };
    let timeframe = duration(cx, m, path, "timeframe", 1);
    let quiet = duration(cx, m, path, "quiet", MIN_QUIET_SECS);
    if m.get("timeframe").is_none() && (threshold.is_some_and(|t| t > 1) || distinct_name.is_some()) {
        cx.err(
            path,
            "the rule counts matches but has no `timeframe`",
            "add `timeframe:` (e.g. 10m): the window the threshold is counted in",
        );
    }
    // Facts: the named ones, else the usual suspects not in the key.
    if m.get("facts").is_none() {
        let defaults: &[&str] = match source {
            RuleSource::Events => &["client_ip", "user"],
            RuleSource::Messages => &["sasl_username", "client_ip"],
        };
        for n in defaults {
            if !group_by.iter().any(|g| g == n)
                && distinct_name.as_deref() != Some(*n)
                && let Ok((field, name)) = fields::resolve(source, n)
            {
                fact_fields.push(NamedField { name, field });
            }
        }
    }
    if cx.errs.len() > before {
        return None;
    }
    let timeframe_secs = timeframe.unwrap_or(DEFAULT_TIMEFRAME);
    Some(UserRule {
        id: id?,
        title: title?,
        severity: severity?,
        attack,
        description,
        author,
        references,
        falsepositives,
        source,
        group_by,
        timeframe_secs,
        threshold: threshold?,
        distinct: distinct_name,
        quiet_secs: quiet.unwrap_or(timeframe_secs.max(MIN_QUIET_SECS)),
        facts,
        file: file.to_owned(),
        line: 0,
        text: String::new(),
        detection: detection?,
        group_fields,
        distinct_field,
        fact_fields,
    })
}

fn suggest_id(id: &str) -> String {
    let mut s: String = id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let s: String = s.chars().take(MAX_ID).collect();
    if s.is_empty() { "my-rule".into() } else { s }
}

fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let main = b.len() >= 5 && (b[0] == b'T' || b[0] == b't') && b[1..5].iter().all(u8::is_ascii_digit);
    main && (b.len() == 5 || (b.len() == 9 && b[5] == b'.' && b[6..9].iter().all(u8::is_ascii_digit)))
}

fn is_selection_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
        && !["and", "or", "not", "of", "them", "all", "any"]
            .iter()
            .any(|k| s.eq_ignore_ascii_case(k))
}

fn compile_detection(cx: &mut Ctx, path: &[Seg], v: &Value, source: RuleSource) -> Option<Detection> {
    let Value::Mapping(m) = v else {
        cx.err(
            path,
            format!("`detection` is {}, not a mapping", type_name(v)),
            "write selections (`selection: {kind: …}`) and a `condition` under `detection:`",
        );
        return None;
    };
    let before = cx.errs.len();
    // Every well-named selection, compiled or not: the condition is checked
    // against the names even when a selection has mistakes.
    let mut selections: Vec<(String, Option<Selection>)> = Vec::new();
    let mut condition: Option<&str> = None;
    for (k, v) in m {
        let Some(name) = k.as_str() else {
            cx.err(
                path,
                format!("a key under `detection` is {}", type_name(k)),
                "name selections with letters, digits and _ (selection, filter_admins)",
            );
            continue;
        };
        if name == "condition" {
            match v {
                Value::String(s) => condition = Some(s),
                other => cx.err(
                    &key(path, "condition"),
                    format!("`condition` is {}", type_name(other)),
                    "write the condition as text, e.g. `condition: selection and not filter`",
                ),
            }
            continue;
        }
        if !is_selection_name(name) {
            cx.err(
                &key_name(path, name),
                format!("`{name}` cannot name a selection"),
                "start with a letter or _, then letters, digits, _ or -; and, or, not, of, them, all, any are \
                 keywords",
            );
            continue;
        }
        let sel = compile_selection(cx, &key(path, name), name, v, source);
        selections.push((name.to_owned(), sel));
    }
    if selections.is_empty() {
        if cx.errs.len() == before {
            cx.err(
                path,
                "`detection` has no selection",
                "add a selection such as `selection: {kind: dovecot, event: login}`",
            );
        }
        return None;
    }
    if selections.len() > MAX_SELECTIONS {
        cx.err(
            path,
            format!("`detection` has {} selections", selections.len()),
            format!("use at most {MAX_SELECTIONS}; lists of values match any of them"),
        );
        return None;
    }
    let names: Vec<String> = selections.iter().map(|(n, _)| n.clone()).collect();
    let expr = match condition {
        Some(c) => match cond::parse(c, &names) {
            Ok(e) => Some(e),
            Err(e) => {
                cx.errs.push(Pending {
                    path: key(path, "condition"),
                    offset: Some(e.offset),
                    message: e.message,
                    fix: e.fix,
                });
                None
            }
        },
        None if selections.len() == 1 => Some(Expr::Sel(0)),
        None => {
            if m.get("condition").is_none() {
                cx.err(
                    path,
                    format!(
                        "`detection` has {} selections but no `condition`",
                        selections.len()
                    ),
                    format!(
                        "add `condition:` that combines them, e.g. `{}`",
                        default_condition(&names)
                    ),
                );
            }
            None
        }
    };
    if let Some(e) = &expr {
        let mut used = Vec::new();
        e.selections(&mut used);
        for (i, n) in names.iter().enumerate() {
            if !used.contains(&i) {
                cx.err(
                    &key_name(path, n),
                    format!("the selection `{n}` is not used by the condition"),
                    "use it in `condition:` or remove it",
                );
            }
        }
    }
    if cx.errs.len() > before {
        return None;
    }
    let mut expr = expr?;
    let selections: Vec<Selection> = selections.into_iter().filter_map(|(_, s)| s).collect();
    if selections.len() != names.len() {
        return None;
    }
    let costs: Vec<u8> = selections.iter().map(Selection::cost).collect();
    expr.order_by(&|i| costs.get(i).copied().unwrap_or(0));
    Some(Detection::new(selections, expr))
}

fn default_condition(names: &[String]) -> String {
    match names {
        [a, b, ..] => format!("{a} and not {b}"),
        [a] => a.clone(),
        [] => "selection".into(),
    }
}

fn compile_selection(
    cx: &mut Ctx,
    path: &[Seg],
    name: &str,
    v: &Value,
    source: RuleSource,
) -> Option<Selection> {
    let before = cx.errs.len();
    let mut alts: Vec<Vec<Cond>> = Vec::new();
    match v {
        Value::Mapping(m) => {
            if let Some(a) = compile_alt(cx, path, m, source) {
                alts.push(a);
            }
        }
        Value::Sequence(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let p = index(path, i);
                match item {
                    Value::Mapping(m) => {
                        if let Some(a) = compile_alt(cx, &p, m, source) {
                            alts.push(a);
                        }
                    }
                    Value::String(_) | Value::Number(_) if source == RuleSource::Events => {
                        let text = scalar_text(item).unwrap_or_default();
                        if text.is_empty() {
                            cx.err(&p, "an empty keyword", "remove it: it would match every line");
                            continue;
                        }
                        alts.push(vec![Cond {
                            field: Field::Alias(fields::Alias::Line),
                            test: Test::Match {
                                patterns: vec![Pattern::Contains(Box::new(
                                    memchr::memmem::Finder::new(text.to_ascii_lowercase().as_bytes())
                                        .into_owned(),
                                ))],
                                all: false,
                            },
                        }]);
                    }
                    Value::String(_) | Value::Number(_) => cx.err(
                        &p,
                        "keywords search the raw line, and messages have none",
                        "test message fields instead, e.g. `- sender|endswith: \"@example.org\"`",
                    ),
                    other => cx.err(
                        &p,
                        format!("an entry of the selection `{name}` is {}", type_name(other)),
                        "write mappings of `field: value` (any of them holds) or keywords",
                    ),
                }
            }
        }
        other => {
            cx.err(
                path,
                format!("the selection `{name}` is {}", type_name(other)),
                "write a mapping of `field|modifier: value` (all hold) or a list of such mappings (any holds)",
            );
            return None;
        }
    }
    if cx.errs.len() > before {
        return None;
    }
    Some(Selection { alts })
}

fn compile_alt(cx: &mut Ctx, path: &[Seg], m: &Mapping, source: RuleSource) -> Option<Vec<Cond>> {
    if m.is_empty() {
        cx.err(
            path,
            "an empty selection",
            "add `field: value` entries; an empty selection would match everything",
        );
        return None;
    }
    let before = cx.errs.len();
    let mut conds = Vec::new();
    for (k, v) in m {
        let Some(spec) = k.as_str() else {
            cx.err(
                path,
                format!("a field name is {}", type_name(k)),
                "write `field: value` or `field|modifier: value`",
            );
            continue;
        };
        if let Some(c) = compile_cond(cx, path, spec, v, source) {
            conds.push(c);
        }
    }
    if cx.errs.len() > before {
        return None;
    }
    // Cheap fields first; stable, so equal costs keep the written order.
    conds.sort_by_key(Cond::cost);
    Some(conds)
}

/// A match modifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Re,
    Cidr,
    Cmp(CmpOp),
    Exists,
}

const MODIFIERS: &str = "contains, startswith, endswith, re, cidr, gt, gte, lt, lte, all, exists";

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compile_cond(cx: &mut Ctx, path: &[Seg], spec: &str, v: &Value, source: RuleSource) -> Option<Cond> {
    let kp = key_name(path, spec);
    let vp = key(path, spec);
    let mut parts = spec.split('|');
    let fname = parts.next().unwrap_or("").trim();
    let field = match fields::resolve(source, fname) {
        Ok((f, _)) => Some(f),
        Err(fix) => {
            let msg = if fname.is_empty() {
                "a condition without a field name".to_owned()
            } else {
                format!("unknown field `{fname}` (source: {})", source.as_str())
            };
            cx.err(&kp, msg, fix);
            None
        }
    };
    let mut op = Op::Eq;
    let mut all = false;
    for m in parts {
        let next = match m.trim() {
            "contains" => Op::Contains,
            "startswith" => Op::StartsWith,
            "endswith" => Op::EndsWith,
            "re" => Op::Re,
            "cidr" => Op::Cidr,
            "gt" => Op::Cmp(CmpOp::Gt),
            "gte" => Op::Cmp(CmpOp::Gte),
            "lt" => Op::Cmp(CmpOp::Lt),
            "lte" => Op::Cmp(CmpOp::Lte),
            "exists" => Op::Exists,
            "all" => {
                all = true;
                continue;
            }
            other => {
                let mut near: Vec<(usize, &str)> = MODIFIERS
                    .split(", ")
                    .map(|n| (fields::edit_distance(other, n), n))
                    .collect();
                near.sort();
                let fix = match near.first() {
                    Some((d, n)) if *d <= 2 => format!("did you mean `{n}`? (modifiers: {MODIFIERS})"),
                    _ => format!("use one of: {MODIFIERS}"),
                };
                cx.err(&kp, format!("unknown modifier `{other}` in `{spec}`"), fix);
                return None;
            }
        };
        if op != Op::Eq {
            cx.err(
                &kp,
                format!("`{spec}` has two match modifiers"),
                "use one of contains, startswith, endswith, re, cidr, gt, gte, lt, lte, exists (plus `all`)",
            );
            return None;
        }
        op = next;
    }
    let field = field?;
    if op == Op::Exists {
        return match v {
            Value::Bool(b) => Some(Cond {
                field,
                test: Test::Exists(*b),
            }),
            other => {
                cx.err(
                    &vp,
                    format!("`{spec}` is {}, not true or false", type_name(other)),
                    "write `field|exists: true` (has a value) or `false` (has none)",
                );
                None
            }
        };
    }
    let items: Vec<(Vec<Seg>, &Value)> = match v {
        Value::Sequence(list) => {
            if list.is_empty() {
                cx.err(
                    &vp,
                    format!("`{spec}` has an empty list"),
                    "give at least one value",
                );
                return None;
            }
            if list.len() > MAX_VALUES {
                cx.err(
                    &vp,
                    format!("`{spec}` has {} values", list.len()),
                    format!("give at most {MAX_VALUES}"),
                );
                return None;
            }
            list.iter().enumerate().map(|(i, x)| (index(&vp, i), x)).collect()
        }
        other => vec![(vp.clone(), other)],
    };
    let before = cx.errs.len();
    let mut patterns = Vec::new();
    let mut null = false;
    for (p, item) in items {
        if item.is_null() && op == Op::Eq {
            null = true;
            continue;
        }
        if field == Field::Alias(fields::Alias::Kind)
            && op == Op::Eq
            && let Value::String(k) = item
            && !k.contains(['*', '?'])
            && eval::kind_bit(k) == 0
        {
            cx.err(
                &p,
                format!("no event has the kind `{k}`"),
                "use postfix, dovecot, rspamd, amavis, sogo, nginx, netfilter, mariadb or unparsed",
            );
            continue;
        }
        if let Some(pat) = compile_pattern(cx, &p, spec, op, item) {
            patterns.push(pat);
        }
    }
    if cx.errs.len() > before {
        return None;
    }
    if null && all {
        cx.err(
            &vp,
            format!("`{spec}` combines `all` with null"),
            "drop `|all`, or the null: a field cannot be absent and match values at once",
        );
        return None;
    }
    let test = if null {
        if patterns.is_empty() {
            Test::Exists(false)
        } else {
            Test::NullOr(patterns)
        }
    } else {
        Test::Match { patterns, all }
    };
    Some(Cond { field, test })
}

fn compile_pattern(cx: &mut Ctx, p: &[Seg], spec: &str, op: Op, v: &Value) -> Option<Pattern> {
    let Some(text) = scalar_text(v) else {
        cx.err(
            p,
            format!("a value of `{spec}` is {}", type_name(v)),
            "write a text, a number, true/false, or a list of them",
        );
        return None;
    };
    match op {
        Op::Eq => {
            let low = text.to_ascii_lowercase();
            let num = match v {
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            if num.is_none() && (low.contains('*') || low.contains('?')) {
                return Some(Pattern::Glob(glob_tokens(&low)));
            }
            Some(Pattern::Eq {
                text: unescape(&low).into(),
                num,
            })
        }
        Op::Contains | Op::StartsWith | Op::EndsWith => {
            if text.is_empty() {
                cx.err(
                    p,
                    format!("an empty value for `{spec}`"),
                    "remove it: it matches every value",
                );
                return None;
            }
            let low = text.to_ascii_lowercase();
            Some(match op {
                Op::Contains => {
                    Pattern::Contains(Box::new(memchr::memmem::Finder::new(low.as_bytes()).into_owned()))
                }
                Op::StartsWith => Pattern::StartsWith(low.into()),
                _ => Pattern::EndsWith(low.into()),
            })
        }
        Op::Re => {
            if text.len() > MAX_REGEX_BYTES {
                cx.err(
                    p,
                    format!("the regular expression is {} bytes long", text.len()),
                    format!("keep it under {MAX_REGEX_BYTES} bytes"),
                );
                return None;
            }
            match regex::RegexBuilder::new(&text)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => Some(Pattern::Re(re)),
                Err(e) => {
                    let msg = e.to_string();
                    let first = msg.lines().last().unwrap_or("").trim().to_owned();
                    cx.err(
                        p,
                        format!("bad regular expression `{text}`: {first}"),
                        "fix the pattern (Rust regex syntax, https://docs.rs/regex; `(?i)` ignores case)",
                    );
                    None
                }
            }
        }
        Op::Cidr => {
            let t = text.trim();
            let net = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(n) => Some(Pattern::Cidr(n.trunc())),
                Err(_) => {
                    cx.err(
                        p,
                        format!("`{t}` is no network"),
                        "write an address or a network such as 192.0.2.10, 203.0.113.0/24 or 2001:db8::/32",
                    );
                    None
                }
            }
        }
        Op::Cmp(c) => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n.is_finite() => Some(Pattern::Cmp(c, n)),
                _ => {
                    cx.err(
                        p,
                        format!("`{text}` is not a number, which `{spec}` compares with"),
                        "write a number such as 5 or 0.5",
                    );
                    None
                }
            }
        }
        Op::Exists => None,
    }
}

/// `\*`, `\?` and `\\` stand for themselves.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if !matches!(c, '*' | '?' | '\\') {
                out.push('\\');
            }
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    if esc {
        out.push('\\');
    }
    out
}

/// Wildcard pattern pieces: `*` any text, `?` one character, `\*` `\?`
/// `\\` themselves.
fn glob_tokens(s: &str) -> Vec<GlobTok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut esc = false;
    let flush = |lit: &mut String, out: &mut Vec<GlobTok>| {
        if !lit.is_empty() {
            out.push(GlobTok::Lit(std::mem::take(lit).into()));
        }
    };
    for c in s.chars() {
        if esc {
            if !matches!(c, '*' | '?' | '\\') {
                lit.push('\\');
            }
            lit.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '*' => {
                flush(&mut lit, &mut out);
                if out.last() != Some(&GlobTok::Star) {
                    out.push(GlobTok::Star);
                }
            }
            '?' => {
                flush(&mut lit, &mut out);
                out.push(GlobTok::One);
            }
            _ => lit.push(c),
        }
    }
    if esc {
        lit.push('\\');
    }
    flush(&mut lit, &mut out);
    out
}
