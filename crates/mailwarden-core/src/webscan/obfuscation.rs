//! The obfuscation layer: statistics of the code bytes (entropy, index of
//! coincidence, the longest base64-alphabet word, the share of
//! non-alphanumerics, very long lines), names of dangerous functions
//! assembled from pieces, and nested decoder chains.
//!
//! The thresholds sit far outside what the benign trees (WordPress,
//! Roundcube, Mailcow's web UI with its vendored libraries) show, so a
//! statistic alone is only weak or medium evidence.

use serde::Serialize;

use super::code::{Code, DECODERS, HIDDEN_NAMES, is_in};
use super::lex::{LONG_LINE, RawStats, Tk};
use super::{Collector, Layer, Strength};

/// The obfuscation statistics of a file's PHP code (comments and HTML
/// excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TextStats {
    /// Bytes of PHP code measured.
    pub code_bytes: u64,
    /// Shannon entropy in bits per byte (0–8).
    pub entropy: f64,
    /// Index of coincidence over the code bytes (about 0.06–0.08 for source
    /// code; lower for encoded blobs).
    pub ioc: f64,
    /// Share of bytes that are neither alphanumeric, `_`, `$` nor space.
    pub non_alnum: f64,
    /// Share of letters among the non-space code bytes outside string
    /// literals (1.0 when there are too few to say).
    pub letters: f64,
    /// The longest run of base64-alphabet bytes.
    pub longest_word: u32,
    /// The longest line in bytes (whole file).
    pub longest_line: u32,
    /// Lines longer than 2000 bytes.
    pub long_lines: u32,
}

impl TextStats {
    pub(crate) fn from_raw(r: &RawStats) -> Self {
        let n = r.code_bytes as f64;
        let (mut h, mut ic) = (0.0, 0.0);
        if r.code_bytes > 1 {
            for &c in &r.hist {
                if c > 0 {
                    let p = c as f64 / n;
                    h -= p * p.log2();
                    ic += (c as f64) * (c as f64 - 1.0);
                }
            }
            ic /= n * (n - 1.0);
        }
        TextStats {
            code_bytes: r.code_bytes,
            entropy: h,
            ioc: ic,
            non_alnum: if r.code_bytes > 0 {
                r.non_alnum as f64 / n
            } else {
                0.0
            },
            letters: if r.bare_solid >= 100 {
                r.bare_letters as f64 / r.bare_solid as f64
            } else {
                1.0
            },
            longest_word: r.longest_word,
            longest_line: r.longest_line,
            long_lines: r.long_lines,
        }
    }
}

/// Below this much code the statistics say nothing.
const MIN_CODE: u64 = 200;
/// A base64-alphabet run this long is an encoded payload.
pub(crate) const BLOB_WORD: u32 = 2000;
/// Entropy of code this high means most of it is encoded data.
pub(crate) const HIGH_ENTROPY: f64 = 5.75;
/// Share of letters of code written without names.
pub(crate) const FEW_LETTERS: f64 = 0.02;
/// Share of punctuation of code written without letters.
pub(crate) const NON_ALNUM: f64 = 0.55;

/// Reasons from the statistics.
pub(crate) fn stats_reasons(s: &TextStats, out: &mut Collector) {
    if s.code_bytes < MIN_CODE {
        return;
    }
    if s.longest_word >= BLOB_WORD {
        let n = s.longest_word;
        out.add(
            "obfuscation.encoded-blob",
            Layer::Obfuscation,
            Strength::Weak,
            u32::MAX,
            || format!("an encoded run of {n} base64-alphabet characters"),
        );
    }
    if s.entropy >= HIGH_ENTROPY {
        let e = s.entropy;
        out.add(
            "obfuscation.high-entropy",
            Layer::Obfuscation,
            Strength::Weak,
            u32::MAX,
            || format!("code entropy {e:.2} bits/byte (encoded data, not source)"),
        );
    }
    if s.letters <= FEW_LETTERS {
        let p = s.letters * 100.0;
        out.add(
            "obfuscation.no-letters",
            Layer::Obfuscation,
            Strength::Medium,
            u32::MAX,
            || format!("only {p:.0}% of the code is letters (code written without names)"),
        );
    }
    if s.non_alnum >= NON_ALNUM {
        let p = s.non_alnum * 100.0;
        out.add(
            "obfuscation.non-alphanumeric",
            Layer::Obfuscation,
            Strength::Medium,
            u32::MAX,
            || format!("{p:.0}% of the code is punctuation (code written without letters)"),
        );
    }
    if s.long_lines > 0 && s.longest_line > 20 * LONG_LINE {
        let l = s.longest_line;
        out.add(
            "obfuscation.long-line",
            Layer::Obfuscation,
            Strength::Weak,
            u32::MAX,
            || format!("a line of {l} bytes"),
        );
    }
}

/// Names of dangerous functions assembled from pieces (`'ba'.'se64_decode'`,
/// `chr(101).chr(118)…`, `"\x65\x76\x61\x6c"`, `str_replace('x','',…)`),
/// and decoder calls nested in each other.
pub(crate) fn token_reasons(c: &Code<'_>, out: &mut Collector) {
    let t = c.t;
    let n = t.len();
    for i in 0..n {
        let prev_dot = i > 0 && t[i - 1].kind == Tk::Dot;
        let starts_chain = match t[i].kind {
            Tk::Str(_) => !prev_dot,
            Tk::Ident => !prev_dot && t.get(i + 1).is_some_and(|x| x.kind == Tk::LParen),
            _ => false,
        };
        if !starts_chain {
            continue;
        }
        if let Tk::Ident = t[i].kind {
            let name = &c.src[t[i].start as usize..t[i].end as usize];
            if is_in(name, DECODERS) {
                nested_decoders(c, i, out);
            }
            if !is_in(
                name,
                &[
                    "chr",
                    "str_replace",
                    "strrev",
                    "str_rot13",
                    "base64_decode",
                    "hex2bin",
                    "urldecode",
                    "rawurldecode",
                ],
            ) {
                continue;
            }
        }
        // The longest foldable chain from here.
        let mut end = i + 1;
        let mut best = None;
        let mut j = i;
        while j < n && j < i + 400 {
            let e = chain_term_end(c, j);
            let Some(e) = e else { break };
            if let Some(f) = c.fold(i, e) {
                best = Some(f);
                end = e;
            } else {
                break;
            }
            if t.get(e).is_some_and(|x| x.kind == Tk::Dot) {
                j = e + 1;
            } else {
                break;
            }
        }
        let Some(f) = best else { continue };
        let _ = end;
        let v = f.value.trim_ascii();
        if f.tricky && v.len() <= 32 && is_in(v, HIDDEN_NAMES) {
            let name = String::from_utf8_lossy(v).into_owned();
            out.add(
                "obfuscation.assembled-name",
                Layer::Obfuscation,
                Strength::Medium,
                t[i].start,
                || format!("the name {name} is assembled from pieces or escapes"),
            );
        }
    }
}

/// The end (exclusive) of one fold term starting at `j`.
fn chain_term_end(c: &Code<'_>, j: usize) -> Option<usize> {
    let t = c.t;
    match t.get(j)?.kind {
        Tk::Str(_) => {
            let end = t[j].end;
            let mut k = j + 1;
            while t.get(k).is_some_and(|x| x.kind == Tk::Var && x.start < end) {
                k += 1;
            }
            Some(k)
        }
        Tk::Ident if t.get(j + 1).is_some_and(|x| x.kind == Tk::LParen) => {
            let mut depth = 0i32;
            for (k, tok) in t.iter().enumerate().skip(j + 1).take(2000) {
                match tok.kind {
                    Tk::LParen | Tk::LBracket | Tk::LBrace => depth += 1,
                    Tk::RParen | Tk::RBracket | Tk::RBrace => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(k + 1);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => None,
    }
}

/// `gzinflate(base64_decode(…))`: a decoder whose argument starts with
/// another decoder.
fn nested_decoders(c: &Code<'_>, i: usize, out: &mut Collector) {
    let t = c.t;
    let mut k = i + 2;
    // Skip `@` and casts between the parentheses.
    while t.get(k).is_some_and(|x| x.kind == Tk::Other) {
        k += 1;
    }
    let Some(inner) = t.get(k) else { return };
    if inner.kind != Tk::Ident || t.get(k + 1).is_none_or(|x| x.kind != Tk::LParen) {
        return;
    }
    let name = &c.src[inner.start as usize..inner.end as usize];
    if is_in(name, DECODERS) {
        let outer = String::from_utf8_lossy(&c.src[t[i].start as usize..t[i].end as usize]).into_owned();
        let inner = String::from_utf8_lossy(name).into_owned();
        out.add(
            "obfuscation.decoder-chain",
            Layer::Obfuscation,
            Strength::Medium,
            t[i].start,
            || format!("decoder chain {outer}({inner}(…))"),
        );
    }
}
