//! Domain names as the audit needs them: normalizing what the user typed,
//! checking the syntax of names found in records, and the organizational
//! domain (RFC 7489 §3.2) from the Public Suffix List.
//!
//! The list comes from the `psl` crate, which compiles a recent copy of the
//! Public Suffix List into code (no file to load, no network).

/// Longest domain name in text form (RFC 1035 §2.3.4, without the root dot).
pub const MAX_NAME: usize = 253;
/// Longest label.
pub const MAX_LABEL: usize = 63;

/// Lower-cases `name`, removes one trailing dot, and checks its syntax
/// (LDH labels of 1–63 bytes, `_` allowed for service names, at most 253
/// bytes in all). Returns why the name is not usable.
pub fn normalize(name: &str) -> Result<String, String> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower).to_owned();
    check_name(&lower)?;
    Ok(lower)
}

/// Checks the syntax of a host or domain name (no trailing dot).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the name is {} bytes long (at most {MAX_NAME})",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("the name has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "label `{}…` is {} bytes long (at most {MAX_LABEL})",
                &label[..label.floor_char_boundary(20)],
                label.len()
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "label `{}` holds `{}`: only letters, digits, `-` and `_` are allowed \
                 (write internationalized names in their xn-- form)",
                crate::posture::tags::clip(label),
                bad.escape_default()
            ));
        }
    }
    Ok(())
}

/// The organizational domain of `name` (RFC 7489 §3.2): the registrable
/// domain one label below the longest public suffix. A name that is itself
/// a public suffix (or has no known suffix) is its own organizational
/// domain. `name` is expected normalized (lower case, no trailing dot).
pub fn org_domain(name: &str) -> String {
    psl::domain_str(name).unwrap_or(name).to_owned()
}

/// True if `a` and `b` have the same organizational domain.
pub fn same_org(a: &str, b: &str) -> bool {
    org_domain(&a.to_ascii_lowercase()) == org_domain(&b.to_ascii_lowercase())
}

/// The parent domains of `name`, nearest first, stopping before the last
/// label (`a.b.example.com` → `b.example.com`, `example.com`).
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (_, parent) = rest.split_once('.')?;
        if !parent.contains('.') {
            return None;
        }
        rest = parent;
        Some(parent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize(" _dmarc.x.test ").unwrap(), "_dmarc.x.test");
        assert!(normalize("").is_err());
        assert!(normalize("a..b").unwrap_err().contains("empty label"));
        assert!(normalize("bad name.test").unwrap_err().contains("` `"));
        assert!(normalize("bücher.de").unwrap_err().contains("xn--"));
        assert!(
            normalize(&format!("{}.test", "a".repeat(64)))
                .unwrap_err()
                .contains("63")
        );
        assert!(normalize(&"a.".repeat(130)).unwrap_err().contains("253"));
    }

    #[test]
    fn organizational_domains() {
        assert_eq!(org_domain("mail.example.com"), "example.com");
        assert_eq!(org_domain("example.com"), "example.com");
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        // Unknown suffixes fall back to the "*" rule: the last label.
        assert_eq!(org_domain("x.y.lab.test"), "lab.test");
        assert_eq!(org_domain("test"), "test");
        assert!(same_org("a.example.com", "B.Example.com"));
        assert!(!same_org("example.com", "example.net"));
    }

    #[test]
    fn parent_walk() {
        let p: Vec<&str> = parents("a.b.example.com").collect();
        assert_eq!(p, ["b.example.com", "example.com"]);
        assert_eq!(parents("example.com").count(), 0);
    }

    proptest! {
        #[test]
        fn never_panics(name in "\\PC{0,300}") {
            if let Ok(n) = normalize(&name) {
                prop_assert!(n.len() <= MAX_NAME);
                let _ = org_domain(&n);
                let _ = parents(&n).count();
            }
        }
    }
}
