//! Allow-lists: files the operator has judged benign, by content hash
//! (`sha256:HEX`, survives moves) or by path (`path:GLOB`, relative to the
//! scanned directory, survives updates). Allowed files are still read and
//! hashed (a baseline needs them) but not reported.

use std::path::Path;

use glob::{MatchOptions, Pattern};

use super::WebscanError;

/// Most bytes read from an allow file (it is a short hand-written list).
const MAX_ALLOW_BYTES: u64 = 16 << 20;

/// A parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    sha256: std::collections::HashSet<String>,
    paths: Vec<Pattern>,
}

impl AllowList {
    /// Reads an allow file: one entry per line, `sha256:HEX` or
    /// `path:GLOB`; blank lines and `#` comments are ignored.
    pub fn load(path: &Path) -> Result<AllowList, WebscanError> {
        use std::io::Read;
        let err = |message: String| WebscanError::Allow {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_ALLOW_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| err(e.to_string()))?;
        AllowList::parse(&text).map_err(|(line, m)| err(format!("line {line}: {m}")))
    }

    /// Parses allow-list text; an error names the 1-based line.
    pub fn parse(text: &str) -> Result<AllowList, (usize, String)> {
        let mut list = AllowList::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(hex) = line.strip_prefix("sha256:") {
                let hex = hex.trim();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((
                        i + 1,
                        "sha256: needs 64 hex digits (the output of sha256sum)".into(),
                    ));
                }
                list.sha256.insert(hex.to_ascii_lowercase());
            } else if let Some(glob) = line.strip_prefix("path:") {
                let glob = glob.trim().trim_start_matches("./");
                let p = Pattern::new(glob).map_err(|e| (i + 1, format!("bad glob {glob:?}: {e}")))?;
                list.paths.push(p);
            } else {
                return Err((
                    i + 1,
                    "expected `sha256:HEX` or `path:GLOB` (relative to the scanned directory)".into(),
                ));
            }
        }
        Ok(list)
    }

    /// Adds another list's entries (several `--allow` files).
    pub fn extend(&mut self, other: AllowList) {
        self.sha256.extend(other.sha256);
        self.paths.extend(other.paths);
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.paths.is_empty()
    }

    /// Whether a path (relative to its scanned directory, `/`-separated)
    /// is allowed.
    pub fn allows_path(&self, rel: &str) -> bool {
        // `*` stays inside one directory; `**` crosses them.
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.paths.iter().any(|p| p.matches_with(rel, opts))
    }

    /// Whether a content hash (lowercase hex) is allowed.
    pub fn allows_sha256(&self, hex: &str) -> bool {
        self.sha256.contains(hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let l = AllowList::parse(
            "# ours\n\nsha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\npath:vendor/**/*.php\npath:./tmp/*.txt\n",
        )
        .unwrap();
        assert!(l.allows_sha256("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"));
        assert!(l.allows_path("vendor/a/b/c.php"));
        assert!(l.allows_path("tmp/x.txt"));
        assert!(!l.allows_path("tmp/sub/x.txt"));
        assert!(!l.allows_path("web/x.php"));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(AllowList::parse("path:a\nfoo\n").unwrap_err().0, 2);
        assert_eq!(AllowList::parse("sha256:abc\n").unwrap_err().0, 1);
        assert_eq!(AllowList::parse("path:[\n").unwrap_err().0, 1);
    }

    proptest::proptest! {
        /// Any text parses or names a line inside it; a parsed list answers
        /// any path without panicking.
        #[test]
        fn parse_never_panics(text in "\\PC{0,300}", path in "\\PC{0,80}") {
            match AllowList::parse(&text) {
                Ok(l) => {
                    let _ = l.allows_path(&path);
                }
                Err((line, msg)) => {
                    proptest::prop_assert!(line >= 1 && line <= text.lines().count());
                    proptest::prop_assert!(!msg.is_empty());
                }
            }
        }
    }
}
