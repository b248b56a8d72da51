//! A deliberately small PHP tokenizer.
//!
//! Why our own: the detectors need to know whether `eval` is a call in code
//! or a word in a comment, a string literal or the HTML around the PHP, and
//! they need the values of string literals (escapes decoded) to see names
//! assembled from pieces. A full PHP parser would be far more than that and
//! would reject the broken, half-valid files webshells often are; this lexer
//! never fails: every byte sequence gives some token stream, and unknown
//! bytes become `Other` tokens.
//!
//! It also computes the obfuscation statistics in the same pass over the
//! code bytes (PHP mode, outside comments), so each file is walked once.

use memchr::memmem;

/// Token kinds the detectors care about; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tk {
    /// `$name` (also inside double-quoted strings and heredocs).
    Var,
    /// `$$name` or `${…}`: a variable variable.
    VarVar,
    /// A name: function, constant, keyword, class (namespaces included).
    Ident,
    /// A string literal; the index into [`Lexed::strs`].
    Str(u32),
    /// A backtick (shell execution) literal; the index into [`Lexed::strs`].
    Backtick(u32),
    /// A number.
    Num,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Semi,
    Comma,
    Dot,
    /// `=`
    Assign,
    /// `.=`
    ConcatAssign,
    /// `+=`, `-=`, `??=` …
    OpAssign,
    /// `->` or `?->`
    Arrow,
    /// `::`
    DColon,
    /// `=>`
    DArrow,
    /// `?>`: ends a statement like `;`.
    CloseTag,
    Other,
}

/// One token: kind and byte span in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Tk,
    pub start: u32,
    pub end: u32,
}

/// A string literal with its value (escapes decoded for double quotes and
/// heredocs; interpolated variables are left in as written).
#[derive(Debug, Clone)]
pub(crate) struct StrLit {
    pub value: Vec<u8>,
    /// It used `\x..`, octal or `\u{..}` escapes (a way to hide names).
    pub escaped: bool,
}

/// Statistics over the code bytes (PHP mode, outside comments).
#[derive(Debug, Clone, Default)]
pub(crate) struct RawStats {
    pub hist: Vec<u64>,
    pub code_bytes: u64,
    pub non_alnum: u64,
    pub longest_word: u32,
    pub longest_line: u32,
    pub long_lines: u32,
    /// Letters outside string literals (bytes ≥ 0x80 count as letters).
    pub bare_letters: u64,
    /// Non-whitespace bytes outside string literals.
    pub bare_solid: u64,
}

/// The tokenizer's output for one file.
#[derive(Debug, Default)]
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    pub strs: Vec<StrLit>,
    /// Byte spans of the HTML outside PHP tags.
    pub html: Vec<(u32, u32)>,
    /// How many PHP open tags the file has.
    pub open_tags: u32,
    pub stats: RawStats,
}

/// A line longer than this (bytes) counts as "very long".
pub(crate) const LONG_LINE: u32 = 2000;

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Byte classes for the statistics: not whitespace; a letter (non-ASCII
/// bytes count as letters); ASCII punctuation other than `_` and `$`; the
/// base64 alphabet.
const C_SOLID: u8 = 1;
const C_LETTER: u8 = 2;
const C_PUNCT: u8 = 4;
const C_B64: u8 = 8;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if !b.is_ascii_whitespace() {
            c |= C_SOLID;
            if !b.is_ascii_alphanumeric() && b < 0x80 && b != b'_' && b != b'$' {
                c |= C_PUNCT;
            }
        }
        if b.is_ascii_alphabetic() || b >= 0x80 {
            c |= C_LETTER;
        }
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
            c |= C_B64;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Finds the next PHP open tag at or after `from`; returns (tag start, code
/// start). `<?xml` is not a tag (XML prologs in templates).
fn next_open_tag(src: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    while let Some(i) = memmem::find(&src[at..], b"<?") {
        let p = at + i;
        let rest = &src[p + 2..];
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"php") {
            return Some((p, p + 5));
        }
        if rest.first() == Some(&b'=') {
            return Some((p, p + 3));
        }
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"xml") {
            at = p + 2;
            continue;
        }
        return Some((p, p + 2));
    }
    None
}

struct Lexer<'a> {
    src: &'a [u8],
    out: Lexed,
    word: u32,
    /// Inside a string literal (for the bare-code counters).
    in_str: bool,
}

/// Tokenizes `src`. Like PHP itself, it starts in HTML mode and switches to
/// code at an open tag.
pub(crate) fn lex(src: &[u8]) -> Lexed {
    let mut lx = Lexer {
        src,
        out: Lexed::default(),
        word: 0,
        in_str: false,
    };
    lx.out.stats.hist = vec![0; 256];
    lx.run();
    lx.line_stats();
    lx.out
}

impl Lexer<'_> {
    fn push(&mut self, kind: Tk, start: usize, end: usize) {
        self.out.tokens.push(Token {
            kind,
            start: start as u32,
            end: end as u32,
        });
    }

    /// Counts one code byte in the statistics. This runs for every code
    /// byte of every analysed file, so the byte's classes come from one
    /// table look-up instead of a chain of tests.
    #[inline]
    fn stat(&mut self, b: u8) {
        let class = BYTE_CLASS[b as usize];
        let s = &mut self.out.stats;
        if let Some(h) = s.hist.get_mut(b as usize) {
            *h += 1;
        }
        s.code_bytes += 1;
        if !self.in_str && class & C_SOLID != 0 {
            s.bare_solid += 1;
            s.bare_letters += u64::from(class & C_LETTER != 0);
        }
        s.non_alnum += u64::from(class & C_PUNCT != 0);
        if class & C_B64 != 0 {
            self.word += 1;
            s.longest_word = s.longest_word.max(self.word);
        } else {
            self.word = 0;
        }
    }

    /// Counts a string literal's bytes.
    fn stat_str(&mut self, a: usize, b: usize) {
        self.in_str = true;
        self.stat_span(a, b);
        self.in_str = false;
    }

    fn stat_span(&mut self, a: usize, b: usize) {
        for i in a..b {
            self.stat(self.src[i]);
        }
    }

    fn line_stats(&mut self) {
        let mut longest = 0u32;
        let mut long = 0u32;
        let mut start = 0usize;
        for end in memchr::memchr_iter(b'\n', self.src).chain(std::iter::once(self.src.len())) {
            let n = u32::try_from(end - start).unwrap_or(u32::MAX);
            longest = longest.max(n);
            if n > LONG_LINE {
                long += 1;
            }
            start = end + 1;
        }
        self.out.stats.longest_line = longest;
        self.out.stats.long_lines = long;
    }

    fn run(&mut self) {
        let src = self.src;
        let mut i = 0usize;
        // HTML mode until an open tag.
        loop {
            let Some((tag, code)) = next_open_tag(src, i) else {
                if i < src.len() {
                    self.out.html.push((i as u32, src.len() as u32));
                }
                return;
            };
            if tag > i {
                self.out.html.push((i as u32, tag as u32));
            }
            self.out.open_tags += 1;
            i = self.code(code);
            if i >= src.len() {
                return;
            }
        }
    }

    /// Lexes PHP code from `i` until `?>` or the end; returns where HTML
    /// mode resumes.
    fn code(&mut self, mut i: usize) -> usize {
        let src = self.src;
        let n = src.len();
        while i < n {
            let b = src[i];
            let next = src.get(i + 1).copied().unwrap_or(0);
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.stat(b);
                    i += 1;
                }
                b'#' if next != b'[' => match self.line_comment(i + 1) {
                    (j, true) => return j,
                    (j, false) => i = j,
                },
                b'/' if next == b'/' => match self.line_comment(i + 2) {
                    (j, true) => return j,
                    (j, false) => i = j,
                },
                b'/' if next == b'*' => {
                    i = match memmem::find(&src[i + 2..], b"*/") {
                        Some(k) => i + 2 + k + 2,
                        None => n,
                    };
                    self.word = 0;
                }
                b'?' if next == b'>' => {
                    self.push(Tk::CloseTag, i, i + 2);
                    let mut j = i + 2;
                    // PHP eats one newline after `?>`.
                    if src.get(j) == Some(&b'\n') {
                        j += 1;
                    } else if src.get(j) == Some(&b'\r') && src.get(j + 1) == Some(&b'\n') {
                        j += 2;
                    }
                    return j;
                }
                b'$' => {
                    self.stat(b);
                    if is_ident_start(next) {
                        let e = self.ident_end(i + 1);
                        self.stat_span(i + 1, e);
                        self.push(Tk::Var, i, e);
                        i = e;
                    } else if next == b'$' || next == b'{' {
                        self.push(Tk::VarVar, i, i + 1);
                        i += 1;
                    } else {
                        self.push(Tk::Other, i, i + 1);
                        i += 1;
                    }
                }
                b'\'' => i = self.single(i),
                b'"' => i = self.double(i, b'"'),
                b'`' => i = self.double(i, b'`'),
                b'<' if src[i..].starts_with(b"<<<") => i = self.heredoc(i),
                _ if is_ident_start(b) || (b == b'\\' && is_ident_start(next)) => {
                    let e = self.ident_end(i + 1);
                    self.stat_span(i, e);
                    self.push(Tk::Ident, i, e);
                    i = e;
                }
                b'0'..=b'9' => {
                    let mut e = i + 1;
                    while e < n && (src[e].is_ascii_alphanumeric() || src[e] == b'_' || src[e] == b'.') {
                        e += 1;
                    }
                    self.stat_span(i, e);
                    self.push(Tk::Num, i, e);
                    i = e;
                }
                _ => {
                    let (kind, len) = punct(b, next, src.get(i + 2).copied().unwrap_or(0));
                    self.stat_span(i, i + len);
                    self.push(kind, i, i + len);
                    i += len;
                }
            }
        }
        n
    }

    fn ident_end(&self, mut e: usize) -> usize {
        let src = self.src;
        while e < src.len()
            && (is_ident(src[e]) || (src[e] == b'\\' && src.get(e + 1).is_some_and(|&c| is_ident_start(c))))
        {
            e += 1;
        }
        e
    }

    /// Skips a `//` or `#` comment from `i`; `?>` ends it and PHP mode.
    fn line_comment(&mut self, mut i: usize) -> (usize, bool) {
        let src = self.src;
        self.word = 0;
        while i < src.len() {
            match src[i] {
                b'\n' => return (i, false),
                b'?' if src.get(i + 1) == Some(&b'>') => {
                    self.push(Tk::CloseTag, i, i + 2);
                    return (i + 2, true);
                }
                _ => i += 1,
            }
        }
        (i, false)
    }

    fn single(&mut self, start: usize) -> usize {
        let src = self.src;
        let mut value = Vec::new();
        let mut i = start + 1;
        while i < src.len() {
            match src[i] {
                b'\\' if matches!(src.get(i + 1), Some(b'\\' | b'\'')) => {
                    value.push(src[i + 1]);
                    i += 2;
                }
                b'\'' => {
                    i += 1;
                    break;
                }
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        self.stat_str(start, i);
        let idx = self.out.strs.len() as u32;
        self.out.strs.push(StrLit {
            value,
            escaped: false,
        });
        self.push(Tk::Str(idx), start, i);
        i
    }

    /// A double-quoted or backtick literal: escapes decoded, `$name`
    /// interpolations emitted as `Var` tokens after the string token.
    fn double(&mut self, start: usize, quote: u8) -> usize {
        let (value, escaped, vars, end) =
            self.interpolated(start + 1, |src, i| (src[i] == quote).then_some(i + 1));
        self.stat_str(start, end);
        let idx = self.out.strs.len() as u32;
        self.out.strs.push(StrLit { value, escaped });
        let kind = if quote == b'`' {
            Tk::Backtick(idx)
        } else {
            Tk::Str(idx)
        };
        self.push(kind, start, end);
        for (a, b) in vars {
            self.push(Tk::Var, a, b);
        }
        end
    }

    /// Decodes an interpolating literal body from `i` until `end_at` says it
    /// ends (returning the index after the terminator).
    fn interpolated(
        &self,
        mut i: usize,
        end_at: impl Fn(&[u8], usize) -> Option<usize>,
    ) -> (Vec<u8>, bool, Vec<(usize, usize)>, usize) {
        let src = self.src;
        let mut value = Vec::new();
        let mut escaped = false;
        let mut vars = Vec::new();
        while i < src.len() {
            if let Some(e) = end_at(src, i) {
                return (value, escaped, vars, e);
            }
            let c = src[i];
            if c == b'\\' && i + 1 < src.len() {
                let (bytes, used, hidden) = unescape(&src[i + 1..]);
                value.extend_from_slice(&bytes);
                escaped |= hidden;
                i += 1 + used;
                continue;
            }
            if c == b'$' && src.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
                let e = self.ident_end(i + 1);
                vars.push((i, e));
                value.extend_from_slice(&src[i..e]);
                i = e;
                continue;
            }
            value.push(c);
            i += 1;
        }
        (value, escaped, vars, src.len())
    }

    fn heredoc(&mut self, start: usize) -> usize {
        let src = self.src;
        let mut i = start + 3;
        while i < src.len() && (src[i] == b' ' || src[i] == b'\t') {
            i += 1;
        }
        let quote = src.get(i).copied().filter(|&q| q == b'\'' || q == b'"');
        if quote.is_some() {
            i += 1;
        }
        let ls = i;
        while i < src.len() && is_ident(src[i]) {
            i += 1;
        }
        let label = &src[ls..i];
        if label.is_empty() {
            self.push(Tk::Other, start, start + 3);
            return start + 3;
        }
        if quote.is_some() {
            i += 1;
        }
        // The body starts on the next line.
        let body = match memchr::memchr(b'\n', &src[i.min(src.len())..]) {
            Some(k) => i + k + 1,
            None => src.len(),
        };
        // The closing label: at a line start (after indentation), not
        // followed by an identifier character.
        let ends_here = |s: &[u8], j: usize| -> Option<usize> {
            if j != body && s.get(j.wrapping_sub(1)) != Some(&b'\n') {
                return None;
            }
            let mut k = j;
            while k < s.len() && (s[k] == b' ' || s[k] == b'\t') {
                k += 1;
            }
            if s[k..].starts_with(label) && !s.get(k + label.len()).is_some_and(|&c| is_ident(c)) {
                Some(k + label.len())
            } else {
                None
            }
        };
        let (value, escaped, vars, end) = if quote == Some(b'\'') {
            let mut j = body;
            let mut end = src.len();
            while j < src.len() {
                if let Some(e) = ends_here(src, j) {
                    end = e;
                    break;
                }
                j += 1;
            }
            (src[body.min(end)..end].to_vec(), false, Vec::new(), end)
        } else {
            self.interpolated(body, ends_here)
        };
        self.stat_str(start, end);
        let idx = self.out.strs.len() as u32;
        self.out.strs.push(StrLit { value, escaped });
        self.push(Tk::Str(idx), start, end);
        for (a, b) in vars {
            self.push(Tk::Var, a, b);
        }
        end
    }
}

/// Decodes one escape after a backslash; returns (bytes, bytes used after
/// the backslash, whether it was a hiding escape: hex, octal, unicode).
fn unescape(s: &[u8]) -> (Vec<u8>, usize, bool) {
    let hex = |c: u8| (c as char).to_digit(16);
    match s[0] {
        b'n' => (vec![b'\n'], 1, false),
        b't' => (vec![b'\t'], 1, false),
        b'r' => (vec![b'\r'], 1, false),
        b'v' => (vec![0x0b], 1, false),
        b'e' => (vec![0x1b], 1, false),
        b'f' => (vec![0x0c], 1, false),
        b'\\' | b'$' | b'"' | b'`' => (vec![s[0]], 1, false),
        b'x' => {
            let mut v = 0u32;
            let mut k = 1;
            while k < 3 && k < s.len() {
                match hex(s[k]) {
                    Some(d) => v = v * 16 + d,
                    None => break,
                }
                k += 1;
            }
            if k == 1 {
                (vec![b'\\', b'x'], 1, false)
            } else {
                (vec![v as u8], k, true)
            }
        }
        b'0'..=b'7' => {
            let mut v = 0u32;
            let mut k = 0;
            while k < 3 && k < s.len() && (b'0'..=b'7').contains(&s[k]) {
                v = v * 8 + u32::from(s[k] - b'0');
                k += 1;
            }
            (vec![(v & 0xff) as u8], k, true)
        }
        b'u' if s.get(1) == Some(&b'{') => {
            let mut v = 0u32;
            let mut k = 2;
            while k < s.len() && k < 10 {
                match hex(s[k]) {
                    Some(d) => v = v.saturating_mul(16).saturating_add(d),
                    None => break,
                }
                k += 1;
            }
            if s.get(k) == Some(&b'}') {
                let c = char::from_u32(v).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                (c.encode_utf8(&mut buf).as_bytes().to_vec(), k + 1, true)
            } else {
                (vec![b'\\', b'u'], 1, false)
            }
        }
        c => (vec![b'\\', c], 1, false),
    }
}

/// Classifies punctuation starting with `b` (then `c`, `d`); returns the
/// kind and length.
fn punct(b: u8, c: u8, d: u8) -> (Tk, usize) {
    match (b, c) {
        (b'(', _) => (Tk::LParen, 1),
        (b')', _) => (Tk::RParen, 1),
        (b'[', _) => (Tk::LBracket, 1),
        (b']', _) => (Tk::RBracket, 1),
        (b'{', _) => (Tk::LBrace, 1),
        (b'}', _) => (Tk::RBrace, 1),
        (b';', _) => (Tk::Semi, 1),
        (b',', _) => (Tk::Comma, 1),
        (b'.', b'=') => (Tk::ConcatAssign, 2),
        (b'.', b'.') if d == b'.' => (Tk::Other, 3),
        (b'.', _) => (Tk::Dot, 1),
        (b'=', b'=') if d == b'=' => (Tk::Other, 3),
        (b'=', b'=') => (Tk::Other, 2),
        (b'=', b'>') => (Tk::DArrow, 2),
        (b'=', _) => (Tk::Assign, 1),
        (b'-', b'>') => (Tk::Arrow, 2),
        (b'?', b'-') if d == b'>' => (Tk::Arrow, 3),
        (b'?', b'?') if d == b'=' => (Tk::OpAssign, 3),
        (b':', b':') => (Tk::DColon, 2),
        (b'!' | b'<' | b'>', b'=') => (Tk::Other, 2),
        (b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^', b'=') => (Tk::OpAssign, 2),
        _ => (Tk::Other, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Tk, String)> {
        let l = lex(src.as_bytes());
        l.tokens
            .iter()
            .map(|t| (t.kind, src[t.start as usize..t.end as usize].to_string()))
            .collect()
    }

    #[test]
    fn comments_and_strings_are_not_calls() {
        let src = "<?php // eval($x)\n/* system($y) */ $a = 'eval(1)'; # exec\n";
        let idents: Vec<_> = kinds(src).into_iter().filter(|(k, _)| *k == Tk::Ident).collect();
        assert!(idents.is_empty(), "{idents:?}");
    }

    #[test]
    fn html_is_not_code_and_xml_is_not_a_tag() {
        let l = lex(b"<?xml version='1.0'?><p>eval(x)</p><?= $a ?>tail");
        assert_eq!(l.open_tags, 1);
        assert_eq!(l.tokens.iter().filter(|t| t.kind == Tk::Ident).count(), 0);
        assert_eq!(l.html.len(), 2);
    }

    #[test]
    fn double_quotes_decode_escapes_and_interpolate() {
        let l = lex(b"<?php \"\\x65\\166al $_POST[x]\";");
        assert_eq!(l.strs[0].value, b"eval $_POST[x]");
        assert!(l.strs[0].escaped);
        assert!(l.tokens.iter().any(|t| t.kind == Tk::Var && t.start == 18));
    }

    #[test]
    fn heredoc_and_nowdoc() {
        let src = "<?php $a = <<<EOT\nhi $b\n  EOT;\n$c = <<<'N'\nraw $d\nN;\nfoo();";
        let k = kinds(src);
        assert!(k.iter().any(|(t, s)| *t == Tk::Var && s == "$b"));
        assert!(!k.iter().any(|(t, s)| *t == Tk::Var && s == "$d"));
        assert!(k.iter().any(|(t, s)| *t == Tk::Ident && s == "foo"));
    }

    #[test]
    fn close_tag_in_line_comment_ends_php() {
        let k = kinds("<?php // x ?> eval(1) <?php y();");
        let idents: Vec<_> = k
            .iter()
            .filter(|(t, _)| *t == Tk::Ident)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(idents, ["y"]);
    }
}
