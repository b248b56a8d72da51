//! The code-pattern layer: dangerous sinks fed by request data (with a
//! simple in-file taint), decoder chains feeding code execution, hidden
//! call names, upload droppers, mass mailers and the breadth of webshell
//! capabilities.
//!
//! It works on the token stream of [`super::lex`], so `eval` in a comment or
//! a string is not a call. The taint is flow-insensitive on purpose: a
//! variable assigned request data anywhere in the file is request data
//! everywhere. That over-approximates in big files, which is why a tainted
//! sink needs the source to reach the sink's own argument.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::lex::{Lexed, Tk, Token};
use super::{Collector, Layer, Strength};

/// Request data reached it.
pub(crate) const REQ: u8 = 1;
/// Decoder output reached it (base64_decode, gzinflate …).
pub(crate) const DEC: u8 = 2;

const EXEC: &[&str] = &[
    "system",
    "exec",
    "passthru",
    "shell_exec",
    "popen",
    "proc_open",
    "pcntl_exec",
    "expect_popen",
];
const EVAL: &[&str] = &["eval", "assert", "create_function"];
const INCLUDE: &[&str] = &["include", "include_once", "require", "require_once"];
pub(crate) const DECODERS: &[&str] = &[
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "hex2bin",
    "strrev",
    "convert_uudecode",
    "bzdecompress",
    "openssl_decrypt",
    "mcrypt_decrypt",
];
/// Functions taking a callback, with the callback's argument position.
const CALLBACKS: &[(&str, usize)] = &[
    ("call_user_func", 0),
    ("call_user_func_array", 0),
    ("array_map", 0),
    ("array_filter", 1),
    ("array_walk", 1),
    ("array_walk_recursive", 1),
    ("array_reduce", 1),
    ("usort", 1),
    ("uasort", 1),
    ("uksort", 1),
    ("register_shutdown_function", 0),
    ("register_tick_function", 0),
    ("forward_static_call", 0),
    ("forward_static_call_array", 0),
    ("iterator_apply", 1),
    ("preg_replace_callback", 1),
    ("ob_start", 0),
];
/// Names whose assembly from pieces means someone hides them.
pub(crate) const HIDDEN_NAMES: &[&str] = &[
    "eval",
    "assert",
    "create_function",
    "system",
    "exec",
    "passthru",
    "shell_exec",
    "popen",
    "proc_open",
    "pcntl_exec",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "str_rot13",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "move_uploaded_file",
    "file_put_contents",
    "fwrite",
];
/// Functions whose result still carries their argument's request data.
const PASS: &[&str] = &[
    "stripslashes",
    "stripcslashes",
    "trim",
    "ltrim",
    "rtrim",
    "urldecode",
    "rawurldecode",
    "html_entity_decode",
    "htmlspecialchars_decode",
    "str_replace",
    "str_ireplace",
    "substr",
    "strtolower",
    "strtoupper",
    "implode",
    "join",
    "sprintf",
    "vsprintf",
    "strval",
    "array_values",
    "reset",
    "current",
    "end",
    "array_shift",
    "array_pop",
    "unserialize",
    "json_decode",
    "file_get_contents",
    "stream_get_contents",
    "fgets",
    "fread",
    "pack",
    "ucfirst",
    "iconv",
    "mb_convert_encoding",
    "utf8_decode",
    "addslashes",
    "chr",
    "array",
    "str_pad",
    "strtr",
    "explode",
    "urlencode",
    "base64_encode",
    "gzdeflate",
    "gzcompress",
    "gzencode",
    "bin2hex",
];
/// Wrappers that make request data safe enough for a command line.
const SANITIZERS: &[&str] = &[
    "escapeshellarg",
    "escapeshellcmd",
    "intval",
    "floatval",
    "basename",
    "md5",
    "sha1",
];

pub(crate) fn is_in(name: &[u8], set: &[&str]) -> bool {
    set.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(name))
}

/// A constant string value folded from literals, `chr()`, concatenation and
/// simple string functions, and whether folding took tricks (anything but
/// one plain literal).
#[derive(Debug, Clone)]
pub(crate) struct Folded {
    pub value: Vec<u8>,
    pub tricky: bool,
}

const FOLD_MAX: usize = 4096;

/// A variable: its function scope and name.
type Key<'a> = (u32, &'a [u8]);

/// The function scope of every token: a `function` gets its own scope from
/// the keyword (so parameters belong to it) to its body's closing brace.
/// Arrow functions (`fn`) share their parent's scope, as in PHP.
fn scopes(t: &[Token], src: &[u8]) -> Vec<u32> {
    let mut out = vec![0u32; t.len()];
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut next_id = 1u32;
    let mut i = 0;
    while i < t.len() {
        while stack.last().is_some_and(|&(end, _)| i > end) {
            stack.pop();
        }
        if t[i].kind == Tk::Ident
            && src[t[i].start as usize..t[i].end as usize].eq_ignore_ascii_case(b"function")
        {
            // The body: the first `{` at parenthesis depth 0 before a `;`.
            let mut depth = 0i32;
            let mut body = None;
            for (j, tok) in t.iter().enumerate().skip(i + 1).take(2000) {
                match tok.kind {
                    Tk::LParen => depth += 1,
                    Tk::RParen => depth -= 1,
                    Tk::LBrace if depth == 0 => {
                        body = Some(j);
                        break;
                    }
                    Tk::Semi if depth == 0 => break,
                    _ => {}
                }
            }
            if let Some(b) = body {
                let mut d = 0i32;
                let mut end = t.len() - 1;
                for (j, tok) in t.iter().enumerate().skip(b) {
                    match tok.kind {
                        Tk::LBrace => d += 1,
                        Tk::RBrace => {
                            d -= 1;
                            if d == 0 {
                                end = j;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                stack.push((end, next_id));
                next_id += 1;
            }
        }
        out[i] = stack.last().map_or(0, |&(_, id)| id);
        i += 1;
    }
    out
}

/// The analysis of one file's tokens.
pub(crate) struct Code<'a> {
    pub src: &'a [u8],
    pub lx: &'a Lexed,
    pub t: &'a [Token],
    /// The function scope of each token (0: the file's top level).
    scope: Vec<u32>,
    taint: HashMap<Key<'a>, u8>,
    /// Every constant string a variable is assigned (a few).
    consts: HashMap<Key<'a>, Vec<Folded>>,
    /// Functions defined in the file: lowercase name → (scope, parameters).
    funcs: HashMap<Vec<u8>, (u32, Vec<&'a [u8]>)>,
    assigned: HashSet<Key<'a>>,
    form_fields: HashSet<Vec<u8>>,
    /// `extract($_GET)` and friends: every unassigned variable is request data.
    global_req: bool,
    loops: Vec<(usize, usize)>,
    /// Capability groups seen (bit per group), for the toolkit rule.
    pub caps: u32,
    /// For each opening bracket token, the index of the bracket closing it
    /// (the last token when none does); other tokens hold `u32::MAX`.
    pair: Vec<u32>,
    /// Token visits left for the range scans (taint, arguments, statement
    /// ends). A file built to make them quadratic (400,000 nested calls)
    /// runs out, and the analysis stops with what it found so far.
    budget: std::cell::Cell<u64>,
}

/// Token visits allowed per token of a file, plus a fixed allowance.
const BUDGET_PER_TOKEN: u64 = 64;
const BUDGET_BASE: u64 = 1_000_000;

/// The matching closer of every opening bracket (any kind, as the scans
/// treat them alike).
fn bracket_pairs(t: &[Token]) -> Vec<u32> {
    let mut pair = vec![u32::MAX; t.len()];
    let mut stack: Vec<usize> = Vec::new();
    for (i, tok) in t.iter().enumerate() {
        match tok.kind {
            Tk::LParen | Tk::LBracket | Tk::LBrace => stack.push(i),
            Tk::RParen | Tk::RBracket | Tk::RBrace => {
                if let Some(o) = stack.pop() {
                    pair[o] = u32::try_from(i).unwrap_or(u32::MAX);
                }
            }
            _ => {}
        }
    }
    let last = u32::try_from(t.len().saturating_sub(1)).unwrap_or(u32::MAX);
    for o in stack {
        pair[o] = last;
    }
    pair
}

/// Capability groups of the webshell-toolkit rule.
pub(crate) mod cap {
    pub const EXEC_VAR: u32 = 1;
    pub const RECON_CMD: u32 = 1 << 1;
    pub const PHP_RECON: u32 = 1 << 2;
    pub const FILE_MANAGER: u32 = 1 << 3;
    pub const UPLOAD: u32 = 1 << 4;
    pub const DB_CLIENT: u32 = 1 << 5;
    pub const NETWORK: u32 = 1 << 6;
    pub const STEALTH: u32 = 1 << 7;
    pub const REQUEST: u32 = 1 << 8;
    pub const EVAL_VAR: u32 = 1 << 9;
    pub const MAILER: u32 = 1 << 10;
    /// Not counted in the toolkit breadth: parts of the reverse-shell rule.
    pub const SOCKET: u32 = 1 << 16;
    pub const SHELL_PATH: u32 = 1 << 17;
    pub const EXEC_ANY: u32 = 1 << 18;
    pub const BREADTH: u32 = 0xffff;
    pub const NAMES: &[(u32, &str)] = &[
        (EXEC_VAR, "runs commands"),
        (RECON_CMD, "system recon commands"),
        (PHP_RECON, "PHP environment recon"),
        (FILE_MANAGER, "file manager"),
        (UPLOAD, "uploads"),
        (DB_CLIENT, "database client"),
        (NETWORK, "sockets/shells"),
        (STEALTH, "hides errors and time limits"),
        (REQUEST, "request-driven"),
        (EVAL_VAR, "evaluates code"),
        (MAILER, "sends mail"),
    ];
}

impl<'a> Code<'a> {
    pub(crate) fn new(src: &'a [u8], lx: &'a Lexed, form_fields: HashSet<Vec<u8>>) -> Self {
        Code {
            src,
            lx,
            t: &lx.tokens,
            scope: scopes(&lx.tokens, src),
            taint: HashMap::default(),
            consts: HashMap::default(),
            funcs: HashMap::default(),
            assigned: HashSet::default(),
            form_fields,
            global_req: false,
            loops: Vec::new(),
            caps: 0,
            pair: bracket_pairs(&lx.tokens),
            budget: std::cell::Cell::new(
                BUDGET_BASE.saturating_add(BUDGET_PER_TOKEN.saturating_mul(lx.tokens.len() as u64)),
            ),
        }
    }

    /// Takes `n` token visits from the budget.
    fn spend(&self, n: usize) {
        self.budget.set(self.budget.get().saturating_sub(n as u64));
    }

    /// Whether the range scans have used up their budget.
    pub(crate) fn exhausted(&self) -> bool {
        self.budget.get() == 0
    }

    /// The closer of the opener at `i`, when `i` is an opener.
    fn pair_of(&self, i: usize) -> Option<usize> {
        self.pair.get(i).filter(|&&p| p != u32::MAX).map(|&p| p as usize)
    }

    fn text(&self, i: usize) -> &'a [u8] {
        let t = self.t[i];
        &self.src[t.start as usize..t.end as usize]
    }

    /// A variable's name without `$`.
    fn var(&self, i: usize) -> &'a [u8] {
        let t = self.t[i];
        &self.src[t.start as usize + 1..t.end as usize]
    }

    /// A variable's name in its function scope.
    fn key(&self, i: usize) -> Key<'a> {
        (self.scope.get(i).copied().unwrap_or(0), self.var(i))
    }

    /// The taint of the variable token `i` (not a superglobal). At the top
    /// level, an unassigned variable named like a form field (or any, after
    /// `extract($_REQUEST)`) is request data, as under `register_globals`.
    fn var_taint(&self, i: usize) -> u8 {
        let key = self.key(i);
        let mut bits = self.taint.get(&key).copied().unwrap_or(0);
        if key.0 == 0
            && (self.form_fields.contains(key.1) || (self.global_req && !self.assigned.contains(&key)))
        {
            bits |= REQ;
        }
        bits
    }

    /// An identifier's name without its namespace.
    fn ident(&self, i: usize) -> &'a [u8] {
        let s = self.text(i);
        match s.iter().rposition(|&b| b == b'\\') {
            Some(p) => &s[p + 1..],
            None => s,
        }
    }

    fn kind(&self, i: usize) -> Tk {
        self.t.get(i).map_or(Tk::Other, |t| t.kind)
    }

    /// Token `i` is a plain function call `name(`: not a method, not a
    /// definition.
    fn is_call(&self, i: usize) -> bool {
        if self.kind(i) != Tk::Ident || self.kind(i + 1) != Tk::LParen {
            return false;
        }
        if i == 0 {
            return true;
        }
        match self.kind(i - 1) {
            Tk::Arrow | Tk::DColon => false,
            Tk::Ident => !is_in(
                self.ident(i - 1),
                &["function", "new", "fn", "const", "class", "interface"],
            ),
            _ => true,
        }
    }

    /// The index of the bracket closing the one at `open` (or the end).
    fn close(&self, open: usize) -> usize {
        if let Some(p) = self.pair_of(open) {
            return p.max(open);
        }
        let mut depth = 0i32;
        let limit = (open + 50_000).min(self.t.len());
        for j in open..limit {
            match self.t[j].kind {
                Tk::LParen | Tk::LBracket | Tk::LBrace => depth += 1,
                Tk::RParen | Tk::RBracket | Tk::RBrace => {
                    depth -= 1;
                    if depth <= 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
        limit.saturating_sub(1).max(open)
    }

    /// The argument token ranges of the call whose `(` is at `open`.
    fn args(&self, open: usize) -> Vec<(usize, usize)> {
        let end = self.close(open);
        let mut out = Vec::new();
        if self.exhausted() {
            return out;
        }
        let mut a = open + 1;
        let mut j = open + 1;
        let mut visited = 0usize;
        // Top-level commas only: nested groups are jumped over.
        while j < end {
            visited += 1;
            match self.t[j].kind {
                Tk::LParen | Tk::LBracket | Tk::LBrace => {
                    j = self.close(j) + 1;
                    continue;
                }
                Tk::Comma => {
                    out.push((a, j));
                    a = j + 1;
                }
                _ => {}
            }
            j += 1;
        }
        self.spend(visited);
        if a < end {
            out.push((a, end));
        }
        out
    }

    /// The end (exclusive) of the statement or expression starting at `i`:
    /// the next `;`, `?>` or `,`/closing bracket at depth 0.
    fn expr_end(&self, i: usize) -> usize {
        let limit = (i + 50_000).min(self.t.len());
        if self.exhausted() {
            return i.min(limit);
        }
        let mut j = i;
        let mut visited = 0usize;
        // Nested groups are jumped over, so this stays at depth 0.
        let end = loop {
            if j >= limit {
                break limit;
            }
            visited += 1;
            match self.t[j].kind {
                Tk::LParen | Tk::LBracket | Tk::LBrace => {
                    j = self.close(j) + 1;
                    continue;
                }
                Tk::RParen | Tk::RBracket | Tk::RBrace => break j,
                Tk::Semi | Tk::CloseTag | Tk::Comma => break j,
                _ => {}
            }
            j += 1;
        };
        self.spend(visited);
        end.min(limit)
    }

    fn is_source_var(&self, i: usize) -> bool {
        let name = self.var(i);
        if matches!(
            name,
            b"_GET"
                | b"_POST"
                | b"_REQUEST"
                | b"_COOKIE"
                | b"_FILES"
                | b"HTTP_GET_VARS"
                | b"HTTP_POST_VARS"
                | b"HTTP_COOKIE_VARS"
                | b"HTTP_POST_FILES"
                | b"HTTP_RAW_POST_DATA"
        ) {
            return true;
        }
        if name == b"_SERVER"
            && self.kind(i + 1) == Tk::LBracket
            && let Tk::Str(s) = self.kind(i + 2)
        {
            let v = &self.lx.strs[s as usize].value;
            return v.starts_with(b"HTTP_") || v == b"QUERY_STRING";
        }
        false
    }

    /// The taint of the tokens `[a, b)`. With `sanitize`, request data
    /// wrapped in `escapeshellarg()` and the like does not count.
    pub(crate) fn expr_taint(&self, a: usize, b: usize, sanitize: bool) -> u8 {
        let mut bits = 0u8;
        let mut j = a;
        let b = b.min(self.t.len());
        if self.exhausted() {
            return 0;
        }
        let mut visited = 0usize;
        while j < b {
            visited += 1;
            match self.t[j].kind {
                Tk::Var => {
                    if self.is_source_var(j) {
                        bits |= REQ;
                    } else {
                        bits |= self.var_taint(j);
                    }
                    // `$table[$key]`: the value comes from the table; a
                    // tainted key only picks an entry.
                    j += 1;
                    while j < b && self.t[j].kind == Tk::LBracket {
                        j = self.close(j) + 1;
                    }
                    continue;
                }
                Tk::Ident if self.kind(j + 1) == Tk::LParen => {
                    let name = self.ident(j);
                    if sanitize && is_in(name, SANITIZERS) {
                        j = self.close(j + 1) + 1;
                        continue;
                    }
                    if is_in(name, &["getallheaders", "apache_request_headers"]) {
                        bits |= REQ;
                    } else if is_in(name, &["getenv"]) {
                        if let Tk::Str(s) = self.kind(j + 2)
                            && self.lx.strs[s as usize].value.starts_with(b"HTTP_")
                        {
                            bits |= REQ;
                        }
                    } else if is_in(name, DECODERS) {
                        bits |= DEC;
                    } else if !is_in(name, PASS)
                        || (j > 0 && matches!(self.t[j - 1].kind, Tk::Arrow | Tk::DColon))
                    {
                        // What an unknown function or method makes of
                        // request data is its business (a sanitizer, a
                        // lookup); only known pass-through calls carry it.
                        j = self.close(j + 1) + 1;
                        continue;
                    }
                }
                Tk::Str(s) => {
                    let v = &self.lx.strs[s as usize].value;
                    if contains_ci(v, b"php://input") {
                        bits |= REQ;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        // Charged for the tokens looked at: nested calls the taint does not
        // pass through are jumped over in one step.
        self.spend(visited);
        bits
    }

    /// First pass: which variables are ever assigned (parameters, loop
    /// variables, `global`), the loops, and form field names in use.
    fn collect_assigned(&mut self) {
        let n = self.t.len();
        let mut i = 0;
        while i < n {
            match self.t[i].kind {
                Tk::Var => {
                    let name = self.key(i);
                    let mut j = i + 1;
                    while self.kind(j) == Tk::LBracket {
                        j = self.close(j) + 1;
                    }
                    if matches!(self.kind(j), Tk::Assign | Tk::ConcatAssign | Tk::OpAssign) {
                        self.assigned.insert(name);
                    }
                    // `as $k => $v`, `global $x`, `static $x`, `catch (E $e)`, `&$x`.
                    if i > 0
                        && self.kind(i - 1) == Tk::Ident
                        && is_in(self.ident(i - 1), &["as", "global", "static"])
                    {
                        self.assigned.insert(name);
                    }
                    if i > 0 && self.kind(i - 1) == Tk::DArrow {
                        self.assigned.insert(name);
                    }
                }
                Tk::Ident => {
                    let name = self.ident(i);
                    if is_in(name, &["function"])
                        && self.kind(i + 1) == Tk::Ident
                        && self.kind(i + 2) == Tk::LParen
                    {
                        let e = self.close(i + 2);
                        let params: Vec<&[u8]> = (i + 3..e)
                            .filter(|&k| self.t[k].kind == Tk::Var)
                            .map(|k| self.var(k))
                            .collect();
                        let scope = self.scope.get(i).copied().unwrap_or(0);
                        self.funcs
                            .insert(self.ident(i + 1).to_ascii_lowercase(), (scope, params));
                    }
                    if is_in(name, &["function", "fn", "catch", "list"]) {
                        // Parameters (or list targets): every variable up to `)`.
                        let mut j = i + 1;
                        while j < n && j < i + 8 && self.t[j].kind != Tk::LParen {
                            j += 1;
                        }
                        if self.kind(j) == Tk::LParen {
                            let e = self.close(j);
                            for k in j..e {
                                if self.t[k].kind == Tk::Var {
                                    self.assigned.insert(self.key(k));
                                }
                            }
                        }
                    } else if is_in(name, &["for", "foreach", "while"]) && self.kind(i + 1) == Tk::LParen {
                        let e = self.close(i + 1);
                        if self.kind(e + 1) == Tk::LBrace {
                            self.loops.push((e + 1, self.close(e + 1)));
                        } else {
                            self.loops.push((e + 1, self.expr_end(e + 1)));
                        }
                    } else if is_in(name, &["do"]) && self.kind(i + 1) == Tk::LBrace {
                        self.loops.push((i + 1, self.close(i + 1)));
                    } else if self.is_call(i)
                        && is_in(
                            name,
                            &["extract", "import_request_variables", "parse_str", "mb_parse_str"],
                        )
                    {
                        let args = self.args(i + 1);
                        if let Some(&(a, b)) = args.first()
                            && self.expr_taint(a, b, false) & REQ != 0
                            && (args.len() == 1 || !is_in(name, &["parse_str", "mb_parse_str"]))
                        {
                            self.global_req = true;
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Taint and constant propagation through assignments (twice, so a
    /// value assigned below its use in a loop still arrives).
    fn propagate(&mut self) {
        for _ in 0..2 {
            let n = self.t.len();
            let mut i = 0;
            while i < n {
                if self.t[i].kind == Tk::Var {
                    let name = self.key(i);
                    let mut j = i + 1;
                    let indexed = self.kind(j) == Tk::LBracket;
                    while self.kind(j) == Tk::LBracket {
                        j = self.close(j) + 1;
                    }
                    let op = self.kind(j);
                    if matches!(op, Tk::Assign | Tk::ConcatAssign | Tk::OpAssign)
                        && !(i > 0 && self.kind(i - 1) == Tk::Arrow)
                    {
                        let a = j + 1;
                        let b = self.expr_end(a);
                        // `$row['id'] = …` taints one field, not the whole
                        // array; other indexed stores taint the array.
                        let literal_key = indexed
                            && matches!(self.kind(i + 2), Tk::Str(_))
                            && self.kind(i + 3) == Tk::RBracket;
                        let bits = self.expr_taint(a, b, false);
                        if bits != 0 && !literal_key {
                            *self.taint.entry(name).or_insert(0) |= bits;
                        }
                        if op == Tk::Assign
                            && !indexed
                            && let Some(f) = self.fold(a, b)
                        {
                            let all = self.consts.entry(name).or_default();
                            if all.len() < 8 && !all.iter().any(|x| x.value == f.value) {
                                all.push(f);
                            }
                        }
                    }
                } else if !self.funcs.is_empty()
                    && self.is_call(i)
                    && self.funcs.contains_key(&self.ident(i).to_ascii_lowercase())
                {
                    // A call of a function defined in this file: its
                    // parameters get the taint of the arguments.
                    let args = self.args(i + 1);
                    let bits: Vec<u8> = args.iter().map(|&(a, b)| self.expr_taint(a, b, false)).collect();
                    if let Some((scope, params)) = self.funcs.get(&self.ident(i).to_ascii_lowercase()) {
                        for (k, p) in params.iter().enumerate() {
                            if let Some(&b) = bits.get(k).filter(|&&b| b != 0) {
                                *self.taint.entry((*scope, p)).or_insert(0) |= b;
                            }
                        }
                    }
                } else if self.t[i].kind == Tk::Ident
                    && is_in(self.ident(i), &["foreach"])
                    && self.kind(i + 1) == Tk::LParen
                {
                    let e = self.close(i + 1);
                    if let Some(as_at) =
                        (i + 2..e).find(|&k| self.kind(k) == Tk::Ident && is_in(self.ident(k), &["as"]))
                    {
                        let bits = self.expr_taint(i + 2, as_at, false);
                        if bits != 0 {
                            for k in as_at..e {
                                if self.t[k].kind == Tk::Var {
                                    *self.taint.entry(self.key(k)).or_insert(0) |= bits;
                                }
                            }
                        }
                    }
                }
                i += 1;
            }
        }
    }

    /// Folds the tokens `[a, b)` to a constant string when they are only
    /// literals, `chr()`, concatenation and simple string functions.
    pub(crate) fn fold(&self, a: usize, b: usize) -> Option<Folded> {
        let mut p = a;
        let f = self.fold_concat(&mut p, b, 0)?;
        (p == b).then_some(f)
    }

    fn fold_concat(&self, p: &mut usize, b: usize, depth: u32) -> Option<Folded> {
        let mut first = self.fold_term(p, b, depth)?;
        while *p < b && self.kind(*p) == Tk::Dot {
            *p += 1;
            let next = self.fold_term(p, b, depth)?;
            first.value.extend_from_slice(&next.value);
            first.tricky = true;
            if first.value.len() > FOLD_MAX {
                return None;
            }
        }
        Some(first)
    }

    fn fold_term(&self, p: &mut usize, b: usize, depth: u32) -> Option<Folded> {
        if depth > 8 || *p >= b {
            return None;
        }
        let i = *p;
        // `@` silences errors; skip it.
        if self.kind(i) == Tk::Other && self.text(i) == b"@" {
            *p += 1;
            return self.fold_term(p, b, depth);
        }
        match self.kind(i) {
            Tk::Str(s) => {
                let t = self.t[i];
                // An interpolated string is not constant.
                if self
                    .t
                    .get(i + 1)
                    .is_some_and(|n| n.kind == Tk::Var && n.start < t.end)
                {
                    return None;
                }
                *p += 1;
                let lit = &self.lx.strs[s as usize];
                Some(Folded {
                    value: lit.value.clone(),
                    tricky: lit.escaped,
                })
            }
            Tk::Var => {
                let f = self.consts.get(&self.key(i))?.first()?.clone();
                *p += 1;
                Some(Folded {
                    value: f.value,
                    tricky: true,
                })
            }
            Tk::LParen => {
                let e = self.close(i);
                if e >= b {
                    return None;
                }
                let mut q = i + 1;
                let f = self.fold_concat(&mut q, e, depth + 1)?;
                if q != e {
                    return None;
                }
                *p = e + 1;
                Some(f)
            }
            // A bare word PHP before 8 read as a string (`$f = passthru;`).
            Tk::Ident if self.kind(i + 1) != Tk::LParen && is_in(self.ident(i), HIDDEN_NAMES) => {
                *p += 1;
                Some(Folded {
                    value: self.ident(i).to_vec(),
                    tricky: true,
                })
            }
            Tk::Ident if self.kind(i + 1) == Tk::LParen => {
                let name = self.ident(i).to_ascii_lowercase();
                let e = self.close(i + 1);
                if e >= b {
                    return None;
                }
                let args = self.args(i + 1);
                *p = e + 1;
                if name == b"chr" {
                    let &(x, y) = args.first()?;
                    if y != x + 1 || self.kind(x) != Tk::Num {
                        return None;
                    }
                    let n = parse_int(self.text(x))?;
                    return Some(Folded {
                        value: vec![(n & 0xff) as u8],
                        tricky: true,
                    });
                }
                let mut vals = Vec::new();
                for &(x, y) in &args {
                    let mut q = x;
                    let f = self.fold_concat(&mut q, y, depth + 1)?;
                    if q != y {
                        return None;
                    }
                    vals.push(f.value);
                }
                let value = apply(&name, &vals)?;
                (value.len() <= FOLD_MAX).then_some(Folded { value, tricky: true })
            }
            _ => None,
        }
    }

    /// The analysis: sinks, taint, droppers, mailers, capabilities.
    pub(crate) fn run(&mut self, out: &mut Collector) {
        self.collect_assigned();
        self.propagate();
        let n = self.t.len();
        let mut fm_ops = 0u32;
        for i in 0..n {
            if self.exhausted() {
                out.add(
                    "obfuscation.analysis-limit",
                    Layer::Obfuscation,
                    Strength::Weak,
                    self.t[i].start,
                    || "the code nests so deeply that the analysis stopped here; later findings may be missing".into(),
                );
                break;
            }
            match self.t[i].kind {
                Tk::Ident => self.ident_at(i, out, &mut fm_ops),
                Tk::Var => {
                    if self.is_source_var(i) {
                        self.caps |= cap::REQUEST;
                    }
                    if self.kind(i + 1) == Tk::LParen
                        && !(i > 0 && matches!(self.kind(i - 1), Tk::Arrow | Tk::DColon))
                    {
                        self.var_call(i, out);
                    }
                }
                Tk::Backtick(s) => {
                    let t = self.t[i];
                    let mut j = i + 1;
                    let mut bits = 0;
                    while j < n && self.t[j].kind == Tk::Var && self.t[j].start < t.end {
                        bits |= self.expr_taint(j, j + 1, false);
                        j += 1;
                    }
                    if j > i + 1 {
                        self.caps |= cap::EXEC_VAR;
                    }
                    if recon_command(&self.lx.strs[s as usize].value) {
                        self.caps |= cap::RECON_CMD;
                    }
                    if bits & REQ != 0 {
                        out.add(
                            "code.exec-request",
                            Layer::Code,
                            Strength::Strong,
                            t.start,
                            || "shell command in backticks built from request data".into(),
                        );
                    }
                }
                Tk::Str(s) => {
                    let v = &self.lx.strs[s as usize].value;
                    let (recon, shell) = string_caps(v);
                    if recon {
                        self.caps |= cap::RECON_CMD;
                    }
                    if shell {
                        self.caps |= cap::NETWORK | cap::SHELL_PATH;
                    }
                }
                _ => {}
            }
        }
        if fm_ops >= 4 {
            self.caps |= cap::FILE_MANAGER;
        }
    }

    fn ident_at(&mut self, i: usize, out: &mut Collector, fm_ops: &mut u32) {
        let name = self.ident(i);
        let pos = self.t[i].start;
        // Lower-cased on the stack: this runs for every name in the file.
        let mut buf = [0u8; 48];
        let owned;
        let lname: &[u8] = if name.len() <= buf.len() {
            let b = &mut buf[..name.len()];
            b.copy_from_slice(name);
            b.make_ascii_lowercase();
            b
        } else {
            owned = name.to_ascii_lowercase();
            &owned
        };
        if is_in(lname, INCLUDE) {
            let b = self.expr_end(i + 1);
            self.include_at(i + 1, b, pos, out);
            return;
        }
        if !self.is_call(i) {
            return;
        }
        let args = self.args(i + 1);
        let arg = |k: usize| args.get(k).copied();
        if is_in(lname, EXEC) {
            self.caps |= cap::EXEC_ANY;
            let Some((a, b)) = arg(0) else { return };
            if self.fold(a, b).is_none() {
                self.caps |= cap::EXEC_VAR;
            }
            let bits = self.expr_taint(a, b, true);
            if bits & REQ != 0 {
                out.add("code.exec-request", Layer::Code, Strength::Strong, pos, || {
                    format!(
                        "{}() runs a command built from request data",
                        String::from_utf8_lossy(name)
                    )
                });
            } else if bits & DEC != 0 {
                out.add("code.decoder-exec", Layer::Code, Strength::Medium, pos, || {
                    format!("{}() runs a decoded command", String::from_utf8_lossy(name))
                });
            }
        } else if is_in(lname, EVAL) {
            let (a, b) = if lname == b"create_function" {
                match (arg(0), args.last()) {
                    (Some((a, _)), Some(&(_, b))) => (a, b),
                    _ => return,
                }
            } else {
                match arg(0) {
                    Some(r) => r,
                    None => return,
                }
            };
            let folded = self.fold(a, b);
            if folded.is_none() {
                self.caps |= cap::EVAL_VAR;
            }
            let bits = self.expr_taint(a, b, false);
            let nm = String::from_utf8_lossy(name).into_owned();
            if bits & REQ != 0 {
                out.add("code.eval-request", Layer::Code, Strength::Strong, pos, || {
                    format!("{nm}() evaluates request data as PHP")
                });
            } else if bits & DEC != 0 {
                out.add("code.decoder-exec", Layer::Code, Strength::Strong, pos, || {
                    format!("{nm}() evaluates decoded data (decoder chain)")
                });
            } else if let Some(f) = folded.filter(|f| f.tricky && looks_like_code(&f.value)) {
                let _ = f;
                out.add("code.decoder-exec", Layer::Code, Strength::Strong, pos, || {
                    format!("{nm}() evaluates code hidden in escaped or assembled strings")
                });
            }
        } else if lname == b"preg_replace" || lname == b"preg_filter" {
            let (Some((pa, pb)), Some((ra, rb))) = (arg(0), arg(1)) else {
                return;
            };
            let pattern = self.fold(pa, pb);
            let e_mod = pattern.as_ref().is_some_and(|p| has_e_modifier(&p.value));
            let rbits = self.expr_taint(ra, rb, false);
            let subject_bits = arg(2).map_or(0, |(a, b)| self.expr_taint(a, b, false));
            if e_mod {
                let repl = self.fold(ra, rb);
                let hidden = repl.as_ref().is_some_and(|r| looks_like_code(&r.value));
                if rbits & (REQ | DEC) != 0 || hidden || subject_bits & REQ != 0 {
                    out.add("code.preg-eval", Layer::Code, Strength::Strong, pos, || {
                        "preg_replace() with the /e modifier evaluates request or hidden code".into()
                    });
                } else {
                    out.add("code.preg-e-modifier", Layer::Code, Strength::Medium, pos, || {
                        "preg_replace() with the /e modifier (evaluates the replacement as PHP)".into()
                    });
                }
            } else if self.expr_taint(pa, pb, false) & REQ != 0 && rbits & REQ != 0 {
                out.add("code.preg-eval", Layer::Code, Strength::Strong, pos, || {
                    "preg_replace() with pattern and replacement from the request (/e injection)".into()
                });
            }
        } else if let Some(&(_, k)) = CALLBACKS.iter().find(|(n, _)| n.as_bytes() == lname) {
            self.callback_at(lname, &args, k, pos, out);
        } else if lname == b"move_uploaded_file" || lname == b"copy" {
            let (Some((sa, sb)), Some((da, db))) = (arg(0), arg(1)) else {
                return;
            };
            let from_upload = lname == b"move_uploaded_file"
                || (sa..sb).any(|k| self.kind(k) == Tk::Var && self.var(k) == b"_FILES");
            if !from_upload {
                return;
            }
            self.caps |= cap::UPLOAD;
            let dst = self.fold(da, db);
            if dst
                .as_ref()
                .is_some_and(|d| super::placement::is_php_name(&d.value))
            {
                out.add("code.upload-dropper", Layer::Code, Strength::Strong, pos, || {
                    "an uploaded file is saved under a PHP name".into()
                });
            } else {
                let dbits = self.expr_taint(da, db, false);
                let names_from_client = (da..db)
                    .any(|k| self.kind(k) == Tk::Var && (self.var(k) == b"_FILES" || self.is_source_var(k)));
                if dbits & REQ != 0 && names_from_client {
                    out.add("code.upload-anywhere", Layer::Code, Strength::Medium, pos, || {
                        "an uploaded file is saved where and as the request says".into()
                    });
                }
            }
        } else if (lname == b"fopen" || lname == b"file_put_contents") && self.writes_server_config(&args) {
            *fm_ops += 1;
            out.add(
                "code.writes-server-config",
                Layer::Code,
                Strength::Medium,
                pos,
                || "writes a .htaccess, php.ini or .user.ini (turns off protections or maps handlers)".into(),
            );
        } else if lname == b"mail" {
            self.caps |= cap::MAILER;
            let in_loop = self.loops.iter().any(|&(a, b)| a < i && i < b);
            let bits = args
                .iter()
                .fold(0, |acc, &(a, b)| acc | self.expr_taint(a, b, false));
            if in_loop && bits & REQ != 0 {
                out.add("code.mass-mailer", Layer::Code, Strength::Strong, pos, || {
                    "mail() in a loop with recipients or text from the request".into()
                });
            }
        } else {
            self.caps |= ident_caps(lname, self, i);
            if is_in(
                lname,
                &[
                    "unlink",
                    "rmdir",
                    "chmod",
                    "rename",
                    "opendir",
                    "scandir",
                    "fopen",
                    "file_put_contents",
                    "touch",
                    "chown",
                    "mkdir",
                    "readdir",
                    "filesize",
                    "fileperms",
                    "is_writable",
                ],
            ) {
                *fm_ops += 1;
            }
        }
    }

    /// `fopen('x/.htaccess', 'w')`, `file_put_contents($d . 'php.ini', …)`.
    fn writes_server_config(&self, args: &[(usize, usize)]) -> bool {
        let Some(&(a, b)) = args.first() else { return false };
        let target = (a..b).rev().find_map(|k| match self.kind(k) {
            Tk::Str(s) => Some(self.lx.strs[s as usize].value.to_ascii_lowercase()),
            _ => None,
        });
        let Some(t) = target else { return false };
        let config = t.ends_with(b".htaccess") || t.ends_with(b"php.ini") || t.ends_with(b".user.ini");
        let writes = args.len() >= 2
            && match self.kind(args[1].0) {
                Tk::Str(s) => self.lx.strs[s as usize]
                    .value
                    .iter()
                    .any(|&c| matches!(c, b'w' | b'a' | b'x' | b'c')),
                _ => true,
            };
        config && writes
    }

    fn include_at(&mut self, a: usize, b: usize, pos: u32, out: &mut Collector) {
        let bits = self.expr_taint(a, b, false);
        if bits & REQ != 0 {
            // With a fixed directory first, the request picks a file below
            // it (a path traversal at worst); when it controls the start,
            // it can name a stream (php://input, data:, http://) and run
            // its own code.
            let mut first = a;
            while first < b && matches!(self.kind(first), Tk::LParen | Tk::Other) {
                first += 1;
            }
            let fixed_prefix = match self.kind(first) {
                Tk::Str(_) => self
                    .t
                    .get(first + 1)
                    .is_none_or(|n| !(n.kind == Tk::Var && n.start < self.t[first].end)),
                Tk::Ident => {
                    self.kind(first + 1) != Tk::LParen || is_in(self.ident(first), &["dirname", "realpath"])
                }
                _ => false,
            };
            if fixed_prefix {
                out.add(
                    "code.include-request-path",
                    Layer::Code,
                    Strength::Medium,
                    pos,
                    || "include/require of a file below a fixed directory named by the request".into(),
                );
            } else {
                out.add("code.include-request", Layer::Code, Strength::Strong, pos, || {
                    "include/require of a path or stream from the request".into()
                });
            }
            return;
        }
        if bits & DEC != 0 {
            out.add("code.decoder-exec", Layer::Code, Strength::Strong, pos, || {
                "include/require of decoded data".into()
            });
            return;
        }
        for k in a..b {
            if let Tk::Str(s) = self.kind(k) {
                let v = &self.lx.strs[s as usize].value;
                let lv = v.to_ascii_lowercase();
                if lv.starts_with(b"data:")
                    || lv.starts_with(b"php://input")
                    || (lv.starts_with(b"php://filter") && contains_ci(&lv, b"data:"))
                {
                    out.add("code.include-wrapper", Layer::Code, Strength::Strong, pos, || {
                        "include/require of a data: or php://input stream".into()
                    });
                    return;
                }
                if k == a
                    && (lv.starts_with(b"http://")
                        || lv.starts_with(b"https://")
                        || lv.starts_with(b"ftp://"))
                {
                    out.add("code.include-remote", Layer::Code, Strength::Medium, pos, || {
                        "include/require of a remote URL".into()
                    });
                    return;
                }
                if k + 1 == b && super::placement::is_non_php_ext(&lv) {
                    out.add("code.include-non-php", Layer::Code, Strength::Medium, pos, || {
                        "include/require of a file with a non-PHP extension (image, text)".into()
                    });
                    return;
                }
            }
        }
    }

    fn callback_at(
        &mut self,
        lname: &[u8],
        args: &[(usize, usize)],
        k: usize,
        pos: u32,
        out: &mut Collector,
    ) {
        let Some(&(a, b)) = args.get(k) else { return };
        let cb_bits = self.expr_taint(a, b, false);
        let others = args
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .fold(0, |acc, (_, &(x, y))| acc | self.expr_taint(x, y, false));
        let nm = String::from_utf8_lossy(lname).into_owned();
        if cb_bits & REQ != 0 {
            out.add(
                "code.dynamic-call-request",
                Layer::Code,
                Strength::Strong,
                pos,
                || format!("{nm}() calls a function named by the request"),
            );
            return;
        }
        let Some(f) = self.fold(a, b) else { return };
        let target = trim_name(&f.value);
        if !is_in(target, EXEC) && !is_in(target, EVAL) && !is_in(target, INCLUDE) {
            return;
        }
        let t = String::from_utf8_lossy(target).into_owned();
        if others & (REQ | DEC) != 0 {
            out.add("code.eval-request", Layer::Code, Strength::Strong, pos, || {
                format!("{nm}() calls {t}() on request or decoded data")
            });
        } else if f.tricky {
            out.add("code.hidden-call", Layer::Code, Strength::Strong, pos, || {
                format!("{nm}() calls {t}(), its name assembled or escaped")
            });
        } else {
            out.add("code.callback-sink", Layer::Code, Strength::Medium, pos, || {
                format!("{nm}() calls {t}() as a callback")
            });
        }
    }

    fn var_call(&mut self, i: usize, out: &mut Collector) {
        if i > 0 && self.kind(i - 1) == Tk::Ident && is_in(self.ident(i - 1), &["new", "function"]) {
            return;
        }
        let name = self.var(i);
        let pos = self.t[i].start;
        let args = self.args(i + 1);
        let arg_bits = args
            .iter()
            .fold(0, |acc, &(a, b)| acc | self.expr_taint(a, b, false));
        let fbits = self.var_taint(i);
        let nm = String::from_utf8_lossy(name).into_owned();
        if fbits & REQ != 0 {
            out.add(
                "code.dynamic-call-request",
                Layer::Code,
                Strength::Strong,
                pos,
                || format!("${nm}(…) calls a function named by the request"),
            );
            return;
        }
        let Some(all) = self.consts.get(&self.key(i)) else {
            return;
        };
        let Some(f) = all.iter().find(|f| is_in(trim_name(&f.value), HIDDEN_NAMES)) else {
            return;
        };
        let target = trim_name(&f.value);
        let t = String::from_utf8_lossy(target).into_owned();
        let dangerous = is_in(target, EXEC) || is_in(target, EVAL);
        if dangerous && arg_bits & (REQ | DEC) != 0 {
            out.add(
                "code.dynamic-call-request",
                Layer::Code,
                Strength::Strong,
                pos,
                || format!("${nm}(…) is {t}() called on request or decoded data"),
            );
        } else if f.tricky {
            out.add("code.hidden-call", Layer::Code, Strength::Strong, pos, || {
                format!("${nm}(…) calls {t}(), its name assembled or escaped")
            });
        } else if dangerous {
            out.add("code.callback-sink", Layer::Code, Strength::Medium, pos, || {
                format!("${nm}(…) calls {t}() through a variable")
            });
        }
    }
}

/// Capability groups shown by a call to `name`.
fn ident_caps(name: &[u8], c: &Code<'_>, i: usize) -> u32 {
    let mut bits = 0;
    if is_in(
        name,
        &[
            "php_uname",
            "posix_getpwuid",
            "posix_getgrgid",
            "getmyuid",
            "get_current_user",
            "disk_free_space",
            "phpinfo",
            "posix_uname",
        ],
    ) {
        bits |= cap::PHP_RECON;
    }
    if is_in(name, &["ini_get"])
        && let Tk::Str(s) = c.kind(i + 2)
    {
        let v = &c.lx.strs[s as usize].value;
        if contains_ci(v, b"disable_functions")
            || contains_ci(v, b"safe_mode")
            || contains_ci(v, b"open_basedir")
        {
            bits |= cap::PHP_RECON;
        }
    }
    if is_in(
        name,
        &[
            "mysql_connect",
            "mysqli_connect",
            "mysql_query",
            "pg_connect",
            "mssql_connect",
            "oci_connect",
        ],
    ) {
        bits |= cap::DB_CLIENT;
    }
    if is_in(
        name,
        &[
            "fsockopen",
            "socket_create",
            "socket_bind",
            "stream_socket_server",
            "stream_socket_client",
            "pfsockopen",
        ],
    ) {
        bits |= cap::NETWORK | cap::SOCKET;
    }
    if is_in(name, &["ftp_connect", "ftp_login"]) {
        bits |= cap::NETWORK;
    }
    if is_in(name, &["ignore_user_abort", "set_magic_quotes_runtime"]) {
        bits |= cap::STEALTH;
    }
    if is_in(name, &["error_reporting", "set_time_limit"])
        && c.kind(i + 2) == Tk::Num
        && c.text(i + 2) == b"0"
    {
        bits |= cap::STEALTH;
    }
    bits
}

/// Shell commands a webshell runs to look around, then the shells a
/// reverse shell starts (pattern ids from [`RECON_CMDS`]'s length on).
const RECON_CMDS: &[&str] = &[
    "uname -a",
    "/etc/passwd",
    "netstat -an",
    "ps aux",
    "whoami",
    "cat /etc/",
    "ls -la",
    "/etc/shadow",
    "find / ",
    "-perm -04000",
    "id;",
    "ipconfig",
    "net user",
    "cat /proc/",
];
const SHELL_PATHS: &[&str] = &["/bin/sh", "/bin/bash", "cmd.exe"];

/// What a string literal says: (a recon command, a shell path). One
/// case-insensitive automaton pass: this runs on every string of every
/// analysed file, and a window-by-window compare per pattern was the
/// largest cost of the analysis.
fn string_caps(v: &[u8]) -> (bool, bool) {
    static AC: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    let ac = AC.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(RECON_CMDS.iter().chain(SHELL_PATHS))
            .ok()
    });
    let Some(ac) = ac else { return (false, false) };
    let (mut recon, mut shell) = (false, false);
    for m in ac.find_overlapping_iter(v) {
        if m.pattern().as_usize() < RECON_CMDS.len() {
            recon |= v.len() < 4096;
        } else {
            shell = true;
        }
        if recon && shell {
            break;
        }
    }
    (recon, shell)
}

/// Shell commands a webshell runs to look around.
fn recon_command(v: &[u8]) -> bool {
    string_caps(v).0
}

/// The function name in a folded callback (`'assert'`, `' system '`).
fn trim_name(v: &[u8]) -> &[u8] {
    let v = v.trim_ascii();
    v.strip_prefix(b"\\").unwrap_or(v)
}

/// Whether a folded string reads like PHP code that runs something.
fn looks_like_code(v: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[
        b"eval",
        b"base64_decode",
        b"gzinflate",
        b"gzuncompress",
        b"str_rot13",
        b"system",
        b"passthru",
        b"shell_exec",
        b"assert",
        b"$_post",
        b"$_get",
        b"$_request",
        b"$_cookie",
    ];
    WORDS.iter().any(|w| contains_ci(v, w))
}

/// Whether a regex literal (`/…/e`, `#…#ie`, `{…}e`) has the `e` modifier.
pub(crate) fn has_e_modifier(p: &[u8]) -> bool {
    let p = p.trim_ascii();
    let Some(&d) = p.first() else { return false };
    if d.is_ascii_alphanumeric() || d == b'\\' {
        return false;
    }
    let close = match d {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        b'<' => b'>',
        _ => d,
    };
    let Some(end) = p[1..].iter().rposition(|&b| b == close) else {
        return false;
    };
    let mods = &p[end + 2..];
    mods.iter().all(|b| b.is_ascii_alphabetic()) && mods.contains(&b'e')
}

/// Case-insensitive substring test: candidates from a memchr of the first
/// byte (either case), then one compare each.
pub(crate) fn contains_ci(h: &[u8], n: &[u8]) -> bool {
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    let Some(last_start) = h.len().checked_sub(n.len()) else {
        return false;
    };
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        &h[..=last_start],
    )
    .any(|i| h[i + 1..i + n.len()].eq_ignore_ascii_case(rest))
}

fn parse_int(s: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(s).ok()?;
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()) {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Applies a string function PHP would run, for constant folding.
fn apply(name: &[u8], v: &[Vec<u8>]) -> Option<Vec<u8>> {
    let one = || v.first().cloned();
    match name {
        b"strrev" => one().map(|mut s| {
            s.reverse();
            s
        }),
        b"strtolower" => one().map(|s| s.to_ascii_lowercase()),
        b"strtoupper" => one().map(|s| s.to_ascii_uppercase()),
        b"trim" if v.len() == 1 => one().map(|s| s.trim_ascii().to_vec()),
        b"str_rot13" => one().map(|s| s.iter().map(|&c| rot13(c)).collect()),
        b"base64_decode" => one().and_then(|s| b64_decode(&s)),
        b"hex2bin" => one().and_then(|s| hex_decode(&s)),
        b"urldecode" | b"rawurldecode" => one().map(|s| url_decode(&s)),
        b"str_replace" if v.len() == 3 => {
            let (from, to, s) = (&v[0], &v[1], &v[2]);
            if from.is_empty() {
                return Some(s.clone());
            }
            let mut out = Vec::with_capacity(s.len());
            let mut i = 0;
            while i < s.len() {
                if s[i..].starts_with(from) {
                    out.extend_from_slice(to);
                    i += from.len();
                } else {
                    out.push(s[i]);
                    i += 1;
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn rot13(c: u8) -> u8 {
    match c {
        b'a'..=b'z' => (c - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (c - b'A' + 13) % 26 + b'A',
        _ => c,
    }
}

/// PHP's forgiving base64_decode: skips bytes outside the alphabet.
pub(crate) fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| {
            let h = (p[0] as char).to_digit(16)?;
            let l = (p[1] as char).to_digit(16)?;
            Some((h * 16 + l) as u8)
        })
        .collect()
}

fn url_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let Some(b) = hex_decode(&s[i + 1..i + 3])
        {
            out.extend_from_slice(&b);
            i += 3;
            continue;
        }
        out.push(if s[i] == b'+' { b' ' } else { s[i] });
        i += 1;
    }
    out
}
