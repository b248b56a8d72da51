//! The `tag=value; tag=value` lists that DKIM keys (RFC 6376 §3.2), DMARC
//! (RFC 7489 §6.4), TLS-RPT (RFC 8460 §3) and BIMI records share.
//!
//! The parser is tolerant: it keeps every well-formed tag and lists what is
//! wrong with the rest, so a report can show all problems of a record at
//! once instead of stopping at the first.

use serde::Serialize;

/// Most tags kept from one record; the rest is reported, not parsed.
pub const MAX_TAGS: usize = 64;

/// One `name=value` pair, whitespace around both removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// The tag name as written.
    pub name: String,
    /// The value, with surrounding whitespace removed.
    pub value: String,
}

/// A parsed tag list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TagList {
    /// The well-formed tags, in record order (duplicates included).
    pub tags: Vec<Tag>,
    /// What was wrong, one sentence each (empty for a clean list).
    pub problems: Vec<String>,
}

impl TagList {
    /// The value of the first tag called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .map(|t| t.value.as_str())
    }

    /// Position (0-based) of the first tag called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// True for RFC 6376 folding whitespace (space, tab, CR, LF).
fn is_fws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits `text` into tags. Empty specs (`;;`, a trailing `;`) are allowed;
/// a spec without `=`, a bad tag name and a repeated tag name are problems.
/// Tag names compare ASCII case-insensitively for the duplicate check.
pub fn parse_tag_list(text: &str) -> TagList {
    let mut out = TagList::default();
    for (index, spec) in text.split(';').enumerate() {
        let spec = spec.trim_matches(is_fws);
        if spec.is_empty() {
            continue;
        }
        if out.tags.len() >= MAX_TAGS {
            out.problems.push(format!(
                "more than {MAX_TAGS} tags: the rest of the record (from tag {}) was not read",
                index + 1
            ));
            break;
        }
        let Some((name, value)) = spec.split_once('=') else {
            out.problems.push(format!(
                "`{}` has no `=`: every tag is written name=value",
                clip(spec)
            ));
            continue;
        };
        let name = name.trim_matches(is_fws);
        let value = value.trim_matches(is_fws);
        if !valid_tag_name(name) {
            out.problems.push(format!(
                "`{}` is not a valid tag name (a letter, then letters, digits or `_`)",
                clip(name)
            ));
            continue;
        }
        if out.tags.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
            out.problems.push(format!(
                "tag `{name}` appears more than once: the record is invalid"
            ));
            continue;
        }
        out.tags.push(Tag {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }
    out
}

fn valid_tag_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Shortens attacker-controlled text quoted in a message to 80 characters.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(list: &TagList) -> Vec<(&str, &str)> {
        list.tags
            .iter()
            .map(|t| (t.name.as_str(), t.value.as_str()))
            .collect()
    }

    #[test]
    fn parses_tags_with_whitespace_and_trailing_semicolon() {
        let list = parse_tag_list(" v = DMARC1 ;p=reject;\r\n\trua=mailto:a@b.test ; ");
        assert_eq!(
            names(&list),
            [("v", "DMARC1"), ("p", "reject"), ("rua", "mailto:a@b.test")]
        );
        assert!(list.problems.is_empty(), "{:?}", list.problems);
        assert_eq!(list.get("P"), Some("reject"));
        assert_eq!(list.position("rua"), Some(2));
    }

    #[test]
    fn reports_missing_equals_bad_names_and_duplicates() {
        let list = parse_tag_list("v=DKIM1; oops; 9x=1; p=abc; P=def");
        assert_eq!(names(&list), [("v", "DKIM1"), ("p", "abc")]);
        assert_eq!(list.problems.len(), 3, "{:?}", list.problems);
        assert!(list.problems[0].contains("`oops` has no `=`"));
        assert!(list.problems[1].contains("`9x`"));
        assert!(list.problems[2].contains("more than once"));
    }

    #[test]
    fn values_may_contain_equals_signs() {
        let list = parse_tag_list("p=MIIB+/==");
        assert_eq!(names(&list), [("p", "MIIB+/==")]);
    }

    #[test]
    fn bounds_the_number_of_tags() {
        let text: String = (0..200).map(|i| format!("t{i}=x;")).collect();
        let list = parse_tag_list(&text);
        assert_eq!(list.tags.len(), MAX_TAGS);
        assert_eq!(list.problems.len(), 1);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let list = parse_tag_list(&text);
            prop_assert!(list.tags.len() <= MAX_TAGS);
        }

        #[test]
        fn round_trips_clean_lists(pairs in proptest::collection::vec(("[a-z][a-z0-9_]{0,6}", "[!-:<-~]{0,20}"), 0..10)) {
            let mut seen = std::collections::HashSet::new();
            let pairs: Vec<_> = pairs.into_iter().filter(|(n, _)| seen.insert(n.to_ascii_lowercase())).collect();
            let text: String = pairs.iter().map(|(n, v)| format!("{n}={v}; ")).collect();
            let list = parse_tag_list(&text);
            prop_assert!(list.problems.is_empty(), "{:?}", list.problems);
            let got: Vec<(String, String)> = list.tags.into_iter().map(|t| (t.name, t.value)).collect();
            prop_assert_eq!(got, pairs);
        }
    }
}
