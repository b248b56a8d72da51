//! Test support shared by the family parsers' test modules: the JSON table
//! check and the line mutations their `proptest!` robustness tests feed to
//! `parse`.

use serde::Serialize;
use serde_json::Value;

/// The byte offset of the `n`-th char boundary of `line`, `n` taken modulo the
/// number of boundaries (the char count + 1, the end of the line included).
fn boundary(line: &str, n: usize) -> usize {
    let n = n % (line.chars().count() + 1);
    line.char_indices().nth(n).map_or(line.len(), |(i, _)| i)
}

/// Variants of `line` for robustness tests, in this order: the prefix and the
/// suffix cut at the `cut`-th char boundary, then `line` with `c` inserted at
/// the `at`-th boundary, with the char there replaced by `c`, and with that
/// char deleted. Boundaries are counted in chars (modulo the char count + 1), so
/// no variant splits a UTF-8 char; at the end of the line replacing appends and
/// deleting leaves the line as it is.
pub(crate) fn mutations(line: &str, cut: usize, at: usize, c: char) -> Vec<String> {
    let cut = boundary(line, cut);
    let at = boundary(line, at);
    let (head, tail) = line.split_at(at);
    let after = tail.chars().next().map_or(tail, |ch| &tail[ch.len_utf8()..]);
    vec![
        line[..cut].to_owned(),
        line[cut..].to_owned(),
        format!("{head}{c}{tail}"),
        format!("{head}{c}{after}"),
        format!("{head}{after}"),
    ]
}

/// Compares the JSON form of a parse result (`null` for `None`) with
/// `expected`; on a mismatch the panic names the input (`context`) and shows
/// both sides as JSON.
#[track_caller]
pub(crate) fn check_json<T: Serialize>(got: Option<T>, expected: &Value, context: &str) {
    let (got, shown) = match got {
        Some(v) => {
            let v = serde_json::to_value(v)
                .unwrap_or_else(|e| panic!("cannot serialize the parse of\n{context}\n{e}"));
            let shown = v.to_string();
            (v, shown)
        }
        None => (Value::Null, "(no parse)".to_owned()),
    };
    if got != *expected {
        panic!("parse mismatch for\n{context}\n     got: {shown}\nexpected: {expected}");
    }
}

/// Table check for a family: parses `message` as written by `program` with the
/// family's `parse` and compares the result with `expected` (see [`check_json`]).
#[track_caller]
pub(crate) fn check<'a, T: Serialize>(
    parse: impl FnOnce(&'a str, &'a str) -> Option<T>,
    program: &'a str,
    message: &'a str,
    expected: Value,
) {
    check_json(
        parse(program, message),
        &expected,
        &format!("program: {program}\nmessage: {message}"),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mutations_of_ascii() {
        assert_eq!(mutations("abc", 1, 2, 'X'), ["a", "bc", "abXc", "abX", "ab"]);
        // Indices wrap modulo the char count + 1; the end is a boundary.
        assert_eq!(mutations("abc", 4, 3, 'X'), ["", "abc", "abcX", "abcX", "abc"]);
        assert_eq!(mutations("abc", 3, 4, 'X'), ["abc", "", "Xabc", "Xbc", "bc"]);
        assert_eq!(mutations("", 5, 9, 'X'), ["", "", "X", "X", ""]);
    }

    #[test]
    fn mutations_never_split_a_char() {
        // Slicing off a char boundary would panic; check the sizes too.
        let line = "dü€𝄞x";
        let n = line.chars().count();
        for cut in 0..2 * (n + 1) {
            for at in 0..2 * (n + 1) {
                let m = mutations(line, cut, at, 'é');
                let count = |i: usize| m[i].chars().count();
                let at_end = at % (n + 1) == n;
                assert_eq!(m[0].chars().count() + m[1].chars().count(), n, "{m:?}");
                assert_eq!(format!("{}{}", m[0], m[1]), line);
                assert_eq!(count(2), n + 1, "{m:?}");
                assert_eq!(count(3), if at_end { n + 1 } else { n }, "{m:?}");
                assert_eq!(count(4), if at_end { n } else { n - 1 }, "{m:?}");
            }
        }
        assert_eq!(
            mutations(line, 2, 2, 'é'),
            ["dü", "€𝄞x", "düé€𝄞x", "düé𝄞x", "dü𝄞x"]
        );
        assert_eq!(
            mutations(line, 3, 3, '\u{0}'),
            ["dü€", "𝄞x", "dü€\u{0}𝄞x", "dü€\u{0}x", "dü€x"]
        );
    }

    #[test]
    fn check_json_compares_json_forms() {
        check_json(Some(("a", 1)), &json!(["a", 1]), "tuple");
        check_json(None::<u8>, &Value::Null, "nothing");
        check(|p, m| Some(format!("{p}:{m}")), "prog", "msg", json!("prog:msg"));
    }

    #[test]
    #[should_panic(expected = "parse mismatch for\nprogram: prog\nmessage: msg\n     got: (no parse)")]
    fn check_names_the_input() {
        check(|_, _| None::<u8>, "prog", "msg", json!(1));
    }
}
