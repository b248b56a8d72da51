//! Escaping attacker-controlled text before it reaches a terminal.
//!
//! Mail logs carry text chosen by strangers (HELO names, addresses, SMTP
//! commands, PREGREET bytes). Printed raw, control characters could move the
//! cursor, rewrite the screen or set the window title. Everything printed for
//! people goes through [`escape_for_terminal`] first.

use std::borrow::Cow;

/// Replaces C0/C1 control characters (except tab) and DEL with visible escapes
/// (`\x1b`, `\u{9b}`); returns the input unchanged (borrowed) when clean.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    let needs = s.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}');
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\t' {
            out.push(c);
        } else if (c as u32) < 0x20 || c == '\u{7f}' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_only() {
        assert!(matches!(
            escape_for_terminal("plain text\twith tab"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_for_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_for_terminal("x\u{9b}y\u{7f}"), "x\\u{9b}y\\x7f");
        assert_eq!(escape_for_terminal("ünïcødé"), "ünïcødé");
    }
}
