//! Small scanners shared by the message parsers: `name[ip]:port` peers,
//! `key=<value>` and `key=value` fields, and prefix splitting.
//!
//! They work on `&str` with byte searches (memchr) and never allocate; every
//! one returns `None` rather than panicking on short or odd input.

use crate::event::Client;

/// Byte offset of the first `needle` in `hay`.
///
/// Log lines are short and needles are a few bytes: scanning for the first
/// needle byte with memchr and comparing the rest beats building a substring
/// searcher per call (std's two-way searcher setup was 10% of the pipeline).
#[inline]
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let Some((&first, rest)) = needle.as_bytes().split_first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, h).find(|&i| h[i + 1..].starts_with(rest))
}

/// Byte offset of the last `needle` in `hay`.
#[inline]
pub fn rfind(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let Some((&first, rest)) = needle.as_bytes().split_first() else {
        return Some(h.len());
    };
    memchr::memrchr_iter(first, h).find(|&i| h[i + 1..].starts_with(rest))
}

/// Splits `s` at the first occurrence of `sep`: `(before, after)`.
#[inline]
pub fn split_once<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let i = find(s, sep)?;
    Some((&s[..i], &s[i + sep.len()..]))
}

/// Splits `s` at the last occurrence of `sep`: `(before, after)`.
#[inline]
pub fn rsplit_once<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let i = rfind(s, sep)?;
    Some((&s[..i], &s[i + sep.len()..]))
}

/// Parses a peer `name[ip]` or `name[ip]:port` that makes up all of `s`.
pub fn parse_client(s: &str) -> Option<Client<'_>> {
    let (c, rest) = parse_client_prefix(s)?;
    rest.is_empty().then_some(c)
}

/// Parses a peer `name[ip]` or `name[ip]:port` at the start of `s` and returns
/// the rest after it.
pub fn parse_client_prefix(s: &str) -> Option<(Client<'_>, &str)> {
    let open = memchr::memchr(b'[', s.as_bytes())?;
    let close = open + memchr::memchr(b']', &s.as_bytes()[open..])?;
    let name = &s[..open];
    if name.contains(' ') {
        return None;
    }
    let ip = &s[open + 1..close];
    let mut rest = &s[close + 1..];
    let mut port = None;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after.bytes().take_while(u8::is_ascii_digit).count();
        if end > 0 {
            port = after[..end].parse().ok();
            rest = &after[end..];
        }
    }
    Some((Client { name, ip, port }, rest))
}

/// Parses a postscreen-style peer `[ip]:port` at the start of `s` and returns
/// `(ip, port, rest)`.
pub fn parse_bracket_addr(s: &str) -> Option<(&str, Option<u16>, &str)> {
    let s = s.strip_prefix('[')?;
    let close = memchr::memchr(b']', s.as_bytes())?;
    let ip = &s[..close];
    let rest = &s[close + 1..];
    if let Some(after) = rest.strip_prefix(':') {
        let end = after.bytes().take_while(u8::is_ascii_digit).count();
        if end > 0 {
            return Some((ip, after[..end].parse().ok(), &after[end..]));
        }
    }
    Some((ip, None, rest))
}

/// The value of `key=<value>` anywhere in `s` (the first occurrence). The value
/// ends at the first `>` that is followed by the end, a comma, a space or `;`.
pub fn angle_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = find(&s[from..], key) {
        let at = from + i;
        let boundary = at == 0 || matches!(bytes[at - 1], b' ' | b',' | b';' | b'(' | b':');
        let vstart = at + key.len();
        if boundary && bytes.get(vstart) == Some(&b'=') && bytes.get(vstart + 1) == Some(&b'<') {
            return angle_value(&s[vstart + 2..]).map(|(v, _)| v);
        }
        from = at + key.len();
    }
    None
}

/// Reads an angle-bracketed value whose `<` has been consumed: returns the value
/// and the rest after `>`.
pub fn angle_value(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'>', &bytes[from..]) {
        let at = from + i;
        match bytes.get(at + 1) {
            None | Some(b',' | b' ' | b';' | b':' | b')') => return Some((&s[..at], &s[at + 1..])),
            _ => from = at + 1,
        }
    }
    None
}

/// The value of `key=value` anywhere in `s`, ending at `, `, `,`, space or the
/// end. The key must start the text or follow a space, comma, `;` or `(`.
pub fn plain_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = find(&s[from..], key) {
        let at = from + i;
        let boundary = at == 0 || matches!(bytes[at - 1], b' ' | b',' | b';' | b'(');
        let vstart = at + key.len();
        if boundary && bytes.get(vstart) == Some(&b'=') {
            let v = &s[vstart + 1..];
            let end = v
                .bytes()
                .position(|b| matches!(b, b',' | b' ' | b';'))
                .unwrap_or(v.len());
            return Some(&v[..end]);
        }
        from = vstart;
    }
    None
}

/// Splits a `Word: rest` style prefix: returns `(word, rest)` when `s` starts
/// with a token of `[A-Za-z0-9_.-]` characters followed by `": "`.
pub fn word_colon(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))?;
    if end == 0 {
        return None;
    }
    let rest = s[end..].strip_prefix(": ")?;
    Some((&s[..end], rest))
}

/// The text inside the first balanced `( … )` that starts at `s[0]`, and the rest.
pub fn parenthesized(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('(')?;
    let mut depth = 1usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[..i], &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The domain part of an address (after the last `@`), lower-cased lazily by the caller.
pub fn domain_of(addr: &str) -> Option<&str> {
    let at = memchr::memrchr(b'@', addr.as_bytes())?;
    let d = &addr[at + 1..];
    (!d.is_empty()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients() {
        let c = parse_client("host1.uhu-banane.de[185.48.118.128]").unwrap();
        assert_eq!(
            (c.name, c.ip, c.port),
            ("host1.uhu-banane.de", "185.48.118.128", None)
        );
        let c = parse_client("unknown[2001:db8::1]:587").unwrap();
        assert_eq!((c.name, c.ip, c.port), ("unknown", "2001:db8::1", Some(587)));
        assert!(parse_client("no brackets").is_none());
        assert!(parse_client("a b[1.2.3.4]").is_none());
        let (c, rest) = parse_client_prefix("mx.example[1.2.3.4]:25: Connection refused").unwrap();
        assert_eq!((c.port, rest), (Some(25), ": Connection refused"));
    }

    #[test]
    fn fields() {
        let s = "to=<a@b.c>, orig_to=<x>, relay=local, delay=0.1, status=sent (ok)";
        assert_eq!(angle_field(s, "to"), Some("a@b.c"));
        assert_eq!(angle_field(s, "orig_to"), Some("x"));
        assert_eq!(plain_field(s, "relay"), Some("local"));
        assert_eq!(plain_field(s, "delay"), Some("0.1"));
        assert_eq!(plain_field(s, "lay"), None);
        assert_eq!(angle_field("from=<> to=<q>", "from"), Some(""));
        assert_eq!(angle_field("from=<a>b@c> to=<q>", "from"), Some("a>b@c"));
    }

    #[test]
    fn finding() {
        assert_eq!(find("a from b from c", " from "), Some(1));
        assert_eq!(rfind("a from b from c", " from "), Some(8));
        assert_eq!(find("abc", "abcd"), None);
        assert_eq!(find("abc", ""), Some(0));
        assert_eq!(
            rsplit_once("x; from=<a>; from=<b>", "; from=<"),
            Some(("x; from=<a>", "b>"))
        );
        assert_eq!(split_once("ümlaut: rest", ": "), Some(("ümlaut", "rest")));
    }

    #[test]
    fn parens() {
        assert_eq!(parenthesized("(a (b) c) rest"), Some(("a (b) c", " rest")));
        assert_eq!(parenthesized("(unclosed"), None);
    }
}
