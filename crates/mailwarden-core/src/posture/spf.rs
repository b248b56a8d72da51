//! SPF (RFC 7208): the record parser, the checks of one record, and the
//! lookup tree — every term that costs a DNS lookup, nested through
//! `include` and `redirect`, with its count against the limit of 10
//! (§4.6.4) and its void lookups (limit 2).
//!
//! The tree's nodes are filled in by the DNS walker in `mailwarden-io`;
//! this module decides which terms need lookups ([`lookup_terms`]), expands
//! the macros that can be expanded without a message ([`expand`]), adds up
//! the counts ([`SpfNode::finish`]), turns the tree into findings
//! ([`check_tree`]) and draws it ([`render_tree`]).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::tags::clip;
use super::{Area, Finding, Severity};

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups.
pub const LOOKUP_LIMIT: u32 = 10;
/// RFC 7208 §4.6.4: at most 2 void lookups (SHOULD).
pub const VOID_LIMIT: u32 = 2;
/// RFC 7208 §4.6.4: at most 10 MX (or PTR) names per `mx` (`ptr`) term.
pub const NAME_LIMIT: usize = 10;
/// Above this size the TXT answer may not fit a 512-byte UDP reply.
pub const LONG_RECORD: usize = 450;
/// Most terms read from one record; the rest is reported as an error.
pub const MAX_TERMS: usize = 128;

/// A mechanism's qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qualifier {
    /// `+` (the default).
    Pass,
    /// `-`.
    Fail,
    /// `~`.
    SoftFail,
    /// `?`.
    Neutral,
}

impl Qualifier {
    fn from_char(c: char) -> Option<Qualifier> {
        Some(match c {
            '+' => Qualifier::Pass,
            '-' => Qualifier::Fail,
            '~' => Qualifier::SoftFail,
            '?' => Qualifier::Neutral,
            _ => return None,
        })
    }

    /// The qualifier character.
    pub fn symbol(self) -> char {
        match self {
            Qualifier::Pass => '+',
            Qualifier::Fail => '-',
            Qualifier::SoftFail => '~',
            Qualifier::Neutral => '?',
        }
    }
}

/// A mechanism with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mechanism {
    /// `all`.
    All,
    /// `include:domain-spec`.
    Include {
        /// The domain-spec (macros unexpanded).
        domain: String,
    },
    /// `a[:domain-spec][/cidr4][//cidr6]`.
    A {
        /// The domain-spec; `None` is the current domain.
        domain: Option<String>,
        /// IPv4 prefix length.
        cidr4: Option<u8>,
        /// IPv6 prefix length.
        cidr6: Option<u8>,
    },
    /// `mx[:domain-spec][/cidr4][//cidr6]`.
    Mx {
        /// The domain-spec; `None` is the current domain.
        domain: Option<String>,
        /// IPv4 prefix length.
        cidr4: Option<u8>,
        /// IPv6 prefix length.
        cidr6: Option<u8>,
    },
    /// `ptr[:domain-spec]` (deprecated).
    Ptr {
        /// The domain-spec; `None` is the current domain.
        domain: Option<String>,
    },
    /// `ip4:network[/prefix]`.
    Ip4 {
        /// The address.
        network: Ipv4Addr,
        /// Prefix length (32 when not written).
        prefix: u8,
    },
    /// `ip6:network[/prefix]`.
    Ip6 {
        /// The address.
        network: Ipv6Addr,
        /// Prefix length (128 when not written).
        prefix: u8,
    },
    /// `exists:domain-spec`.
    Exists {
        /// The domain-spec.
        domain: String,
    },
}

/// One term of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Term {
    /// A mechanism.
    Mechanism {
        /// The qualifier (`+` when not written).
        qualifier: Qualifier,
        /// The mechanism.
        mechanism: Mechanism,
        /// The term as written.
        text: String,
    },
    /// A modifier (`name=value`).
    Modifier {
        /// Lower-cased name.
        name: String,
        /// The value.
        value: String,
        /// The term as written.
        text: String,
    },
}

impl Term {
    /// The term as written.
    pub fn text(&self) -> &str {
        match self {
            Term::Mechanism { text, .. } | Term::Modifier { text, .. } => text,
        }
    }
}

/// A syntax error in one term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfError {
    /// The term as written (clipped).
    pub term: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed record: the terms that parsed, and the errors of the others.
/// Any error makes receivers return `permerror` for the whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpfRecord {
    /// The well-formed terms in order.
    pub terms: Vec<Term>,
    /// Syntax errors.
    pub errors: Vec<SpfError>,
}

/// True if `txt` is an SPF record: `v=spf1` (any case) alone or followed by
/// a space (RFC 7208 §4.5). `v=spf10` is not.
pub fn is_spf_record(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// Parses an SPF record. Never fails: errors are collected per term.
pub fn parse_spf(text: &str) -> SpfRecord {
    let mut record = SpfRecord::default();
    if !is_spf_record(text) {
        record.errors.push(SpfError {
            term: clip(text.split(' ').next().unwrap_or_default()),
            reason: "an SPF record starts with `v=spf1` followed by a space".into(),
        });
        return record;
    }
    for token in text[6..].split(' ').filter(|t| !t.is_empty()) {
        if record.terms.len() + record.errors.len() >= MAX_TERMS {
            record.errors.push(SpfError {
                term: clip(token),
                reason: format!("more than {MAX_TERMS} terms: the rest was not read"),
            });
            break;
        }
        match parse_term(token) {
            Ok(term) => {
                if let Term::Modifier { name, .. } = &term
                    && (name == "redirect" || name == "exp")
                    && record
                        .terms
                        .iter()
                        .any(|t| matches!(t, Term::Modifier { name: n, .. } if n == name))
                {
                    record.errors.push(SpfError {
                        term: clip(token),
                        reason: format!("`{name}` appears more than once (RFC 7208 §6)"),
                    });
                    continue;
                }
                record.terms.push(term);
            }
            Err(reason) => record.errors.push(SpfError {
                term: clip(token),
                reason,
            }),
        }
    }
    record
}

fn parse_term(token: &str) -> Result<Term, String> {
    if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "holds `{}`: terms are printable ASCII separated by single spaces",
            bad.escape_default()
        ));
    }
    // A modifier is `name=value` where name has no `:` or `/`.
    if let Some((name, value)) = token.split_once('=')
        && is_modifier_name(name)
    {
        let lname = name.to_ascii_lowercase();
        if lname == "v" {
            return Err("a second version tag: two records merged into one?".into());
        }
        if lname == "redirect" || lname == "exp" {
            check_domain_spec(value, false).map_err(|e| format!("`{lname}=` needs a domain: {e}"))?;
        } else {
            check_macro_string(value, true)?;
        }
        return Ok(Term::Modifier {
            name: lname,
            value: value.to_owned(),
            text: token.to_owned(),
        });
    }
    let (qualifier, body) = match token.chars().next().and_then(Qualifier::from_char) {
        Some(q) => (q, &token[1..]),
        None => (Qualifier::Pass, token),
    };
    let name_end = body.find([':', '/']).unwrap_or(body.len());
    let name = body[..name_end].to_ascii_lowercase();
    let rest = &body[name_end..];
    let arg = rest.strip_prefix(':');
    let mechanism = match name.as_str() {
        "all" => {
            if !rest.is_empty() {
                return Err("`all` takes no argument".into());
            }
            Mechanism::All
        }
        "include" | "exists" => {
            let Some(spec) = arg else {
                return Err(format!("`{name}` needs a domain: `{name}:example.com`"));
            };
            check_domain_spec(spec, false)?;
            if name == "include" {
                Mechanism::Include {
                    domain: spec.to_owned(),
                }
            } else {
                Mechanism::Exists {
                    domain: spec.to_owned(),
                }
            }
        }
        "a" | "mx" => {
            let (head, cidr4, cidr6) = split_dual_cidr(rest)?;
            let domain = match head.strip_prefix(':') {
                Some(spec) => {
                    check_domain_spec(spec, false)?;
                    Some(spec.to_owned())
                }
                None if head.is_empty() => None,
                None => return Err(format!("unexpected `{}` after `{name}`", clip(head))),
            };
            if name == "a" {
                Mechanism::A { domain, cidr4, cidr6 }
            } else {
                Mechanism::Mx { domain, cidr4, cidr6 }
            }
        }
        "ptr" => {
            let domain = match arg {
                Some(spec) => {
                    check_domain_spec(spec, false)?;
                    Some(spec.to_owned())
                }
                None if rest.is_empty() => None,
                None => return Err("`ptr` takes no CIDR length".into()),
            };
            Mechanism::Ptr { domain }
        }
        "ip4" => {
            let Some(arg) = arg else {
                return Err("`ip4` needs an address: `ip4:192.0.2.0/24`".into());
            };
            let (addr, prefix) = match arg.split_once('/') {
                Some((a, p)) => (a, Some(parse_cidr(p, 32)?)),
                None => (arg, None),
            };
            let network: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("`{}` is not an IPv4 address", clip(addr)))?;
            Mechanism::Ip4 {
                network,
                prefix: prefix.unwrap_or(32),
            }
        }
        "ip6" => {
            let Some(arg) = arg else {
                return Err("`ip6` needs an address: `ip6:2001:db8::/32`".into());
            };
            let (addr, prefix) = match arg.rsplit_once('/') {
                Some((a, p)) => (a, Some(parse_cidr(p, 128)?)),
                None => (arg, None),
            };
            let network: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{}` is not an IPv6 address", clip(addr)))?;
            Mechanism::Ip6 {
                network,
                prefix: prefix.unwrap_or(128),
            }
        }
        "" => return Err("a qualifier without a mechanism".into()),
        other => {
            let hint = match other {
                "ip" => " (did you mean ip4 or ip6?)",
                "inlcude" | "incude" | "includes" => " (did you mean include?)",
                "spf2.0" | "v" => " (a second version tag: two records merged into one?)",
                _ => "",
            };
            return Err(format!(
                "unknown mechanism `{}`{hint}: receivers return permerror",
                clip(other)
            ));
        }
    };
    Ok(Term::Mechanism {
        qualifier,
        mechanism,
        text: token.to_owned(),
    })
}

fn is_modifier_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits `[:spec][/cidr4][//cidr6]` into the head and the lengths.
fn split_dual_cidr(rest: &str) -> Result<(&str, Option<u8>, Option<u8>), String> {
    let mut head = rest;
    let mut cidr6 = None;
    let mut cidr4 = None;
    if let Some(pos) = head.rfind("//") {
        let digits = &head[pos + 2..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr6 = Some(parse_cidr(digits, 128)?);
            head = &head[..pos];
        }
    }
    if let Some(pos) = head.rfind('/') {
        let digits = &head[pos + 1..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr4 = Some(parse_cidr(digits, 32)?);
            head = &head[..pos];
        }
    }
    Ok((head, cidr4, cidr6))
}

fn parse_cidr(digits: &str, max: u8) -> Result<u8, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return Err(format!("`/{}` is not a prefix length (0–{max})", clip(digits)));
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(format!("prefix length `/{digits}` has a leading zero"));
    }
    match digits.parse::<u8>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("prefix length /{digits} is out of range (0–{max})")),
    }
}

/// A macro found in a domain-spec or `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacroUse {
    /// The macro as written, e.g. `%{ir}`.
    pub text: String,
    /// The macro letter, lower-cased.
    pub letter: char,
}

/// Finds the macros of a macro-string, or says what is wrong with it.
/// `exp_letters` allows `c`, `r` and `t` (only valid in `exp` text).
pub fn check_macro_string(spec: &str, exp_letters: bool) -> Result<Vec<MacroUse>, String> {
    let b = spec.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let start = i;
                    let close = spec[i..]
                        .find('}')
                        .map(|p| i + p)
                        .ok_or_else(|| format!("macro `{}` is not closed with `}}`", clip(&spec[i..])))?;
                    let inner = &spec[i + 2..close];
                    let mut chars = inner.chars();
                    let letter = chars
                        .next()
                        .ok_or_else(|| "empty macro `%{}`".to_owned())?
                        .to_ascii_lowercase();
                    let allowed = if exp_letters { "slodiphcrtv" } else { "slodiphv" };
                    if !allowed.contains(letter) {
                        return Err(if "crt".contains(letter) {
                            format!("macro letter `{letter}` is only allowed in `exp` text")
                        } else {
                            format!("unknown macro letter `{}`", letter.escape_default())
                        });
                    }
                    let rest = chars.as_str();
                    let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                    let mut rest = &rest[digits_end..];
                    if let Some(r) = rest.strip_prefix(['r', 'R']) {
                        rest = r;
                    }
                    if let Some(bad) = rest.chars().find(|c| !".-+,/_=".contains(*c)) {
                        return Err(format!(
                            "macro `{}` has `{}` where a delimiter (.-+,/_=) belongs",
                            clip(&spec[start..=close]),
                            bad.escape_default()
                        ));
                    }
                    out.push(MacroUse {
                        text: spec[start..=close].to_owned(),
                        letter,
                    });
                    i = close + 1;
                }
                _ => {
                    return Err("`%` starts a macro: write `%%` for a literal percent sign".into());
                }
            }
        } else if (0x21..=0x7e).contains(&c) {
            i += 1;
        } else {
            return Err("holds a character that is not printable ASCII".into());
        }
    }
    Ok(out)
}

/// Checks a domain-spec (RFC 7208 §7.1): a valid macro-string ending in a
/// macro or in `.toplabel`; without macros, a valid domain name.
pub fn check_domain_spec(spec: &str, exp_letters: bool) -> Result<Vec<MacroUse>, String> {
    if spec.is_empty() {
        return Err("the domain is empty".into());
    }
    let macros = check_macro_string(spec, exp_letters)?;
    if spec.ends_with('}') && !macros.is_empty() {
        return Ok(macros);
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    let Some((_, top)) = trimmed.rsplit_once('.') else {
        return Err(format!(
            "`{}` is not a fully qualified domain (it needs a dot)",
            clip(spec)
        ));
    };
    let top_ok = !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && top.bytes().any(|b| b.is_ascii_alphabetic())
        && !top.starts_with('-')
        && !top.ends_with('-');
    if !top_ok {
        return Err(format!(
            "`{}` does not end in a valid top-level label",
            clip(spec)
        ));
    }
    if macros.is_empty() {
        super::domain::check_name(trimmed).map_err(|e| format!("`{}`: {e}", clip(spec)))?;
    }
    Ok(macros)
}

/// Expands the macros that do not depend on a message: `%{d}` (the
/// current domain) and `%{o}` (the audited domain), with their
/// transformers, and the escapes `%%`, `%_`, `%-`. Returns `None` when any
/// other macro is present (the name depends on the sender's address).
pub fn expand(spec: &str, current: &str, audited: &str) -> Option<String> {
    let mut out = String::with_capacity(spec.len());
    let mut rest = spec;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match after.as_bytes().first() {
            Some(b'%') => {
                out.push('%');
                rest = &after[1..];
            }
            Some(b'_') => {
                out.push(' ');
                rest = &after[1..];
            }
            Some(b'-') => {
                out.push_str("%20");
                rest = &after[1..];
            }
            Some(b'{') => {
                let close = after.find('}')?;
                let inner = &after[1..close];
                let mut chars = inner.chars();
                let value = match chars.next()?.to_ascii_lowercase() {
                    'd' => current,
                    'o' => audited,
                    _ => return None,
                };
                let t = chars.as_str();
                let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let keep: usize = t[..digits_end].parse().unwrap_or(0);
                let mut t = &t[digits_end..];
                let reverse = if let Some(r) = t.strip_prefix(['r', 'R']) {
                    t = r;
                    true
                } else {
                    false
                };
                let delims: &str = if t.is_empty() { "." } else { t };
                let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
                if reverse {
                    parts.reverse();
                }
                if keep > 0 && keep < parts.len() {
                    parts.drain(..parts.len() - keep);
                }
                out.push_str(&parts.join("."));
                rest = &after[close + 1..];
            }
            _ => return None,
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Every macro used in the record's terms.
pub fn macros(record: &SpfRecord) -> Vec<MacroUse> {
    let mut out = Vec::new();
    for term in &record.terms {
        let spec = match term {
            Term::Mechanism { mechanism, .. } => match mechanism {
                Mechanism::Include { domain } | Mechanism::Exists { domain } => Some(domain.as_str()),
                Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } | Mechanism::Ptr { domain } => {
                    domain.as_deref()
                }
                _ => None,
            },
            Term::Modifier { value, .. } => Some(value.as_str()),
        };
        if let Some(spec) = spec
            && let Ok(found) = check_macro_string(spec, true)
        {
            out.extend(found);
        }
    }
    out
}

/// What kind of DNS work a term needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupKind {
    /// The audited domain itself (the root of the tree; not counted).
    Root,
    /// `include`: the target's SPF record, evaluated recursively.
    Include,
    /// `redirect=`: the target's SPF record replaces this one.
    Redirect,
    /// `a`: the target's addresses.
    A,
    /// `mx`: the target's MX names, then their addresses.
    Mx,
    /// `ptr`: depends on the client's address; counted, not resolved.
    Ptr,
    /// `exists`: an A query of the (usually macro-built) name.
    Exists,
}

/// A term that costs one DNS lookup, with the name it looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupTerm {
    /// The kind.
    pub kind: LookupKind,
    /// The term as written.
    pub text: String,
    /// The domain-spec as written (`None`: the current domain).
    pub spec: Option<String>,
}

/// The terms of `record` that cost a DNS lookup, in record order. A
/// `redirect` is listed only when the record has no `all` (otherwise it is
/// never used).
pub fn lookup_terms(record: &SpfRecord) -> Vec<LookupTerm> {
    let has_all = has_all(record);
    let mut out = Vec::new();
    for term in &record.terms {
        let (kind, spec) = match term {
            Term::Mechanism { mechanism, .. } => match mechanism {
                Mechanism::Include { domain } => (LookupKind::Include, Some(domain.clone())),
                Mechanism::A { domain, .. } => (LookupKind::A, domain.clone()),
                Mechanism::Mx { domain, .. } => (LookupKind::Mx, domain.clone()),
                Mechanism::Ptr { domain } => (LookupKind::Ptr, domain.clone()),
                Mechanism::Exists { domain } => (LookupKind::Exists, Some(domain.clone())),
                Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => continue,
            },
            Term::Modifier { name, value, .. } if name == "redirect" && !has_all => {
                (LookupKind::Redirect, Some(value.clone()))
            }
            Term::Modifier { .. } => continue,
        };
        out.push(LookupTerm {
            kind,
            text: term.text().to_owned(),
            spec,
        });
    }
    out
}

fn has_all(record: &SpfRecord) -> bool {
    record.terms.iter().any(|t| {
        matches!(
            t,
            Term::Mechanism {
                mechanism: Mechanism::All,
                ..
            }
        )
    })
}

/// The qualifier of the record's `all`, if it has one.
pub fn all_qualifier(record: &SpfRecord) -> Option<Qualifier> {
    record.terms.iter().find_map(|t| match t {
        Term::Mechanism {
            qualifier,
            mechanism: Mechanism::All,
            ..
        } => Some(*qualifier),
        _ => None,
    })
}

/// The record's `redirect` target, if any.
pub fn redirect(record: &SpfRecord) -> Option<&str> {
    record.terms.iter().find_map(|t| match t {
        Term::Modifier { name, value, .. } if name == "redirect" => Some(value.as_str()),
        _ => None,
    })
}

/// What happened at one node of the lookup tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Resolved.
    Ok,
    /// `include`/`redirect` target without an SPF record (permerror).
    NoRecord,
    /// The target publishes more than one SPF record (permerror).
    MultipleRecords,
    /// The target's record has syntax errors (permerror).
    Invalid,
    /// The target is already being evaluated higher up (permerror).
    Loop,
    /// The lookup failed (timeout, SERVFAIL): receivers return temperror.
    LookupFailed,
    /// Not resolved: the name depends on the message (macros, `ptr`).
    NotFollowed,
    /// More than 10 MX names behind one `mx` term (permerror).
    TooManyNames,
    /// The walk stopped here (depth or lookup budget reached).
    Truncated,
}

/// One node of the lookup tree: the root (the audited domain) or a term
/// that costs a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfNode {
    /// What kind of term.
    pub kind: LookupKind,
    /// The term as written (the domain for the root).
    pub term: String,
    /// The name looked up, macros expanded (`None` when not expandable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lookups this term costs against the limit (0 for the root, else 1).
    pub lookups: u32,
    /// The lookup found nothing (NXDOMAIN or no records).
    pub void: bool,
    /// What happened.
    pub status: NodeStatus,
    /// The SPF record found (root, include, redirect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// A short note: MX names and addresses found, why not followed, the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Syntax errors of the record found here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SpfError>,
    /// The qualifier of the `all` in the record found here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<Qualifier>,
    /// Terms of the record found here that cost lookups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<SpfNode>,
    /// Lookups of this node and everything below it.
    pub total_lookups: u32,
    /// Void lookups of this node and everything below it.
    pub total_voids: u32,
}

impl SpfNode {
    /// A node for `term` with nothing resolved yet.
    pub fn new(kind: LookupKind, term: impl Into<String>, name: Option<String>) -> SpfNode {
        SpfNode {
            kind,
            term: term.into(),
            name,
            lookups: u32::from(kind != LookupKind::Root),
            void: false,
            status: NodeStatus::Ok,
            record: None,
            detail: None,
            errors: Vec::new(),
            all: None,
            children: Vec::new(),
            total_lookups: 0,
            total_voids: 0,
        }
    }

    /// Sets the status and detail.
    pub fn with_status(mut self, status: NodeStatus, detail: impl Into<String>) -> SpfNode {
        self.status = status;
        self.detail = Some(detail.into());
        self
    }

    /// Computes `total_lookups` and `total_voids` bottom-up.
    pub fn finish(&mut self) {
        let mut lookups = self.lookups;
        let mut voids = u32::from(self.void);
        for child in &mut self.children {
            child.finish();
            lookups = lookups.saturating_add(child.total_lookups);
            voids = voids.saturating_add(child.total_voids);
        }
        self.total_lookups = lookups;
        self.total_voids = voids;
    }

    /// Every node below this one, depth first, with its depth (1 = child).
    pub fn descendants(&self) -> Vec<(usize, &SpfNode)> {
        let mut out = Vec::new();
        fn walk<'a>(node: &'a SpfNode, depth: usize, out: &mut Vec<(usize, &'a SpfNode)>) {
            for child in &node.children {
                out.push((depth, child));
                walk(child, depth + 1, out);
            }
        }
        walk(self, 1, &mut out);
        out
    }
}

fn spf(id: &'static str, severity: Severity, domain: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::Spf, severity, domain, message)
}

/// Checks the SPF records found at `domain` (all TXT strings that are SPF
/// records): none, several, the syntax and content of the one.
pub fn check_records(domain: &str, records: &[String]) -> Vec<Finding> {
    match records {
        [] => vec![
            spf(
                "spf.missing",
                Severity::Fail,
                domain,
                "no SPF record: receivers cannot tell which servers may send as this domain",
            )
            .fix(format!(
                "publish a TXT record at {domain}: `v=spf1 mx -all` (your MX hosts send), \
                     or `v=spf1 -all` if the domain sends no mail"
            )),
        ],
        [one] => check_record(domain, one, &parse_spf(one)),
        many => {
            let mut f = spf(
                "spf.multiple",
                Severity::Fail,
                domain,
                format!(
                    "{} SPF records: receivers return permerror (RFC 7208 §4.5), so SPF fails for every mail",
                    many.len()
                ),
            )
            .fix("merge them into one TXT record starting with `v=spf1` and delete the others");
            for r in many {
                f = f.evidence(format!("TXT {domain}: {r}"));
            }
            vec![f]
        }
    }
}

/// Checks the syntax and content of one SPF record.
pub fn check_record(domain: &str, text: &str, record: &SpfRecord) -> Vec<Finding> {
    let mut out = Vec::new();
    let evidence = format!("TXT {domain}: {text}");
    if record.errors.is_empty() {
        out.push(
            spf(
                "spf.syntax.valid",
                Severity::Pass,
                domain,
                "the SPF record is valid",
            )
            .evidence(&evidence),
        );
    } else {
        let mut f = spf(
            "spf.syntax.invalid",
            Severity::Fail,
            domain,
            format!(
                "{} syntax error{} in the SPF record: receivers return permerror, so SPF fails for every mail",
                record.errors.len(),
                if record.errors.len() == 1 { "" } else { "s" }
            ),
        )
        .fix("correct the terms named here (RFC 7208 §5 lists the mechanisms)")
        .evidence(&evidence);
        for e in &record.errors {
            f = f.evidence(format!("`{}`: {}", e.term, e.reason));
        }
        out.push(f);
    }
    if text.len() > LONG_RECORD {
        out.push(
            spf(
                "spf.record.long",
                Severity::Warning,
                domain,
                format!(
                    "the SPF record is {} bytes: with the other TXT records the answer may exceed 512 bytes \
                     and need TCP, which some receivers do not retry",
                    text.len()
                ),
            )
            .fix("shorten it: merge ip4/ip6 ranges, drop unused includes, or move senders to an include"),
        );
    }

    let all_pos = record.terms.iter().position(|t| {
        matches!(
            t,
            Term::Mechanism {
                mechanism: Mechanism::All,
                ..
            }
        )
    });
    let redirect = redirect(record);
    match all_qualifier(record) {
        Some(Qualifier::Pass) => out.push(
            spf(
                "spf.all.pass",
                Severity::Fail,
                domain,
                "`+all` authorizes every server on the Internet to send as this domain",
            )
            .fix("end the record with `-all` (or `~all`) after listing your real senders"),
        ),
        Some(Qualifier::Neutral) => out.push(
            spf(
                "spf.all.neutral",
                Severity::Warning,
                domain,
                "`?all` says nothing about other servers: spoofed mail gets a neutral result",
            )
            .fix("end the record with `-all` (or `~all` while you collect DMARC reports)"),
        ),
        Some(Qualifier::SoftFail) => out.push(spf(
            "spf.all.softfail",
            Severity::Info,
            domain,
            "`~all`: other servers soft-fail. With DMARC at quarantine or reject this is enough (receivers \
             apply DMARC); `-all` also protects where only SPF is checked",
        )),
        Some(Qualifier::Fail) => {
            out.push(spf(
                "spf.all.fail",
                Severity::Pass,
                domain,
                "`-all`: mail from any other server fails SPF",
            ));
        }
        None if redirect.is_none() => out.push(
            spf(
                "spf.all.missing",
                Severity::Warning,
                domain,
                "no `all` and no `redirect`: mail from other servers gets a neutral result",
            )
            .fix("end the record with `-all` or `~all`"),
        ),
        None => {}
    }
    if let Some(pos) = all_pos {
        let after: Vec<&str> = record.terms[pos + 1..]
            .iter()
            .filter(|t| matches!(t, Term::Mechanism { .. }))
            .map(Term::text)
            .collect();
        if !after.is_empty() {
            out.push(
                spf(
                    "spf.terms.after-all",
                    Severity::Warning,
                    domain,
                    format!(
                        "{} after `all` {} never evaluated",
                        after.join(" "),
                        if after.len() == 1 { "is" } else { "are" }
                    ),
                )
                .fix("move these mechanisms before `all`"),
            );
        }
        if let Some(target) = redirect {
            out.push(
                spf(
                    "spf.redirect.ignored",
                    Severity::Warning,
                    domain,
                    format!("`redirect={target}` is ignored because the record has `all` (RFC 7208 §6.1)"),
                )
                .fix("remove either `all` or the `redirect`"),
            );
        }
    }
    for term in &record.terms {
        let Term::Mechanism {
            qualifier,
            mechanism,
            text,
        } = term
        else {
            if let Term::Modifier { name, .. } = term
                && name != "redirect"
                && name != "exp"
            {
                out.push(
                    spf(
                        "spf.modifier.unknown",
                        Severity::Info,
                        domain,
                        format!("unknown modifier `{}` is ignored by receivers", term.text()),
                    )
                    .fix("remove it, or correct its name if it was meant as `redirect` or `exp`"),
                );
            }
            continue;
        };
        match mechanism {
            Mechanism::Ptr { .. } => out.push(
                spf(
                    "spf.ptr.deprecated",
                    Severity::Warning,
                    domain,
                    format!("`{text}` is deprecated (RFC 7208 §5.5): slow, unreliable, and some receivers ignore it"),
                )
                .fix("replace it with ip4/ip6 ranges or `a`/`mx` of your servers"),
            ),
            Mechanism::Ip4 { prefix, .. } | Mechanism::Ip6 { prefix, .. } if *qualifier == Qualifier::Pass => {
                let v4 = matches!(mechanism, Mechanism::Ip4 { .. });
                if *prefix == 0 {
                    out.push(
                        spf(
                            "spf.ip.everything",
                            Severity::Fail,
                            domain,
                            format!("`{text}` authorizes every {} address, like `+all`", if v4 { "IPv4" } else { "IPv6" }),
                        )
                        .fix("list your servers' addresses or networks instead"),
                    );
                } else if (v4 && *prefix <= 8) || (!v4 && *prefix <= 24) {
                    out.push(
                        spf(
                            "spf.ip.wide",
                            Severity::Warning,
                            domain,
                            format!("`{text}` authorizes a very large network"),
                        )
                        .fix("narrow it to the networks your mail servers are in"),
                    );
                }
            }
            _ => {}
        }
    }
    let macros = macros(record);
    if !macros.is_empty() {
        let mut list: Vec<&str> = macros.iter().map(|m| m.text.as_str()).collect();
        list.dedup();
        let mut f = spf(
            "spf.macros",
            Severity::Info,
            domain,
            format!(
                "the record uses macros ({}): terms built from them depend on each message and are counted, \
                 not resolved, by this audit",
                list.join(" ")
            ),
        );
        if macros.iter().any(|m| m.letter == 'p') {
            f = f.fix("avoid `%{p}`: it needs slow reverse lookups and RFC 7208 §7.3 discourages it");
            f.severity = Severity::Warning;
        }
        out.push(f);
    }
    out
}

/// Findings from the lookup tree: the lookup and void counts, and problems
/// of included records.
pub fn check_tree(domain: &str, root: &SpfNode) -> Vec<Finding> {
    let mut out = Vec::new();
    let total = root.total_lookups;
    let breakdown: Vec<String> = root
        .children
        .iter()
        .map(|c| format!("{} → {}", c.term, c.total_lookups))
        .collect();
    if total > LOOKUP_LIMIT {
        let mut f = spf(
            "spf.lookups.exceeded",
            Severity::Fail,
            domain,
            format!(
                "{total} DNS lookups: RFC 7208 §4.6.4 allows {LOOKUP_LIMIT}, so receivers return permerror \
                 and SPF fails for every mail"
            ),
        )
        .fix(
            "cut lookups: replace `a`/`mx`/`ptr` of your own servers with ip4/ip6, drop includes of \
             services you no longer use, or send some mail from a subdomain with its own record",
        );
        for b in breakdown {
            f = f.evidence(b);
        }
        out.push(f);
    } else {
        out.push(spf(
            "spf.lookups.ok",
            Severity::Pass,
            domain,
            format!("{total} of {LOOKUP_LIMIT} DNS lookups"),
        ));
    }
    let voids: Vec<&SpfNode> = root
        .descendants()
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| n.void)
        .collect();
    if !voids.is_empty() {
        let n = root.total_voids;
        let (id, severity, message) = if n > VOID_LIMIT {
            (
                "spf.void.exceeded",
                Severity::Fail,
                format!(
                    "{n} void lookups (names without records): more than {VOID_LIMIT} makes receivers return permerror (RFC 7208 §4.6.4)"
                ),
            )
        } else {
            (
                "spf.void.present",
                Severity::Warning,
                format!(
                    "{n} void lookup{} (names without records); a third one makes receivers return permerror",
                    if n == 1 { "" } else { "s" }
                ),
            )
        };
        let mut f =
            spf(id, severity, domain, message).fix("remove terms that point at names without records");
        for v in voids {
            f = f.evidence(format!("{} ({})", v.term, v.name.as_deref().unwrap_or("?")));
        }
        out.push(f);
    }
    for (_, node) in root.descendants() {
        let target = node.name.as_deref().unwrap_or(&node.term);
        match node.status {
            NodeStatus::Loop => out.push(
                spf(
                    "spf.include.loop",
                    Severity::Fail,
                    domain,
                    format!("`{}` leads back to {target}, which is already being evaluated: receivers return permerror", node.term),
                )
                .fix("remove the include or redirect that closes the loop"),
            ),
            NodeStatus::NoRecord => {
                let (id, what) = if node.kind == LookupKind::Redirect {
                    ("spf.redirect.missing", "redirect")
                } else {
                    ("spf.include.missing", "include")
                };
                out.push(
                    spf(
                        id,
                        Severity::Fail,
                        domain,
                        format!("`{}`: {target} has no SPF record, so receivers return permerror for this {what}", node.term),
                    )
                    .fix(format!("remove `{}`, or correct the name (check the provider's documentation)", node.term)),
                );
            }
            NodeStatus::MultipleRecords => out.push(
                spf(
                    "spf.include.multiple",
                    Severity::Fail,
                    domain,
                    format!("`{}`: {target} publishes several SPF records: receivers return permerror", node.term),
                )
                .fix(format!("the owner of {target} must merge them into one")),
            ),
            NodeStatus::Invalid => {
                let mut f = spf(
                    "spf.include.invalid",
                    Severity::Fail,
                    domain,
                    format!("`{}`: the SPF record of {target} has syntax errors: receivers return permerror", node.term),
                )
                .fix(format!("correct the record of {target}, or stop including it"));
                for e in &node.errors {
                    f = f.evidence(format!("`{}`: {}", e.term, e.reason));
                }
                out.push(f);
            }
            NodeStatus::TooManyNames => out.push(
                spf(
                    "spf.mx.too-many",
                    Severity::Fail,
                    domain,
                    format!("`{}`: {} — more than {NAME_LIMIT} MX names makes receivers return permerror", node.term, node.detail.as_deref().unwrap_or("")),
                )
                .fix("list the sending servers with ip4/ip6 instead of `mx`"),
            ),
            NodeStatus::LookupFailed => out.push(
                spf(
                    "spf.lookup-failed",
                    Severity::Warning,
                    domain,
                    format!("`{}`: the lookup failed ({}); receivers would return temperror", node.term, node.detail.as_deref().unwrap_or("")),
                )
                .fix("check that the name's DNS servers answer"),
            ),
            NodeStatus::Truncated => out.push(spf(
                "spf.tree.truncated",
                Severity::Info,
                domain,
                format!("the lookup tree was not followed below `{}` ({})", node.term, node.detail.as_deref().unwrap_or("")),
            )),
            NodeStatus::Ok | NodeStatus::NotFollowed => {}
        }
        // A redirect target's record is the domain's policy: check it like
        // the domain's own (its `all`, `ptr`, macros…).
        if node.kind == LookupKind::Redirect
            && node.status == NodeStatus::Ok
            && let Some(text) = &node.record
        {
            for mut f in check_record(domain, text, &parse_spf(text)) {
                if f.id == "spf.syntax.valid" {
                    continue;
                }
                f.message = format!("{} (in the record of {target}, reached by redirect)", f.message);
                out.push(f);
            }
        }
        if node.kind == LookupKind::Include && node.all == Some(Qualifier::Pass) {
            out.push(
                spf(
                    "spf.include.pass-all",
                    Severity::Fail,
                    domain,
                    format!(
                        "`{}`: the included record ends in `+all`, so the include matches every server",
                        node.term
                    ),
                )
                .fix(format!("stop including {target}")),
            );
        }
    }
    out
}

/// Draws the lookup tree, one line per node, with each node's lookups (its
/// own and those below it) and flags.
pub fn render_tree(root: &SpfNode) -> Vec<String> {
    let mut lines = Vec::new();
    let mut head = format!(
        "{}  [{} lookup{}",
        root.term,
        root.total_lookups,
        if root.total_lookups == 1 { "" } else { "s" }
    );
    if root.total_voids > 0 {
        let _ = write!(head, ", {} void", root.total_voids);
    }
    head.push(']');
    lines.push(head);
    fn walk(node: &SpfNode, prefix: &str, lines: &mut Vec<String>) {
        let n = node.children.len();
        for (i, child) in node.children.iter().enumerate() {
            let last = i + 1 == n;
            let mut line = format!("{prefix}{}{}", if last { "└─ " } else { "├─ " }, child.term);
            if let Some(name) = &child.name
                && !child.term.ends_with(name.as_str())
            {
                let _ = write!(line, " → {name}");
            }
            let _ = write!(line, "  ({})", child.total_lookups);
            let flag = match child.status {
                NodeStatus::Ok => None,
                NodeStatus::NoRecord => Some("NO SPF RECORD"),
                NodeStatus::MultipleRecords => Some("MULTIPLE RECORDS"),
                NodeStatus::Invalid => Some("INVALID"),
                NodeStatus::Loop => Some("LOOP"),
                NodeStatus::LookupFailed => Some("LOOKUP FAILED"),
                NodeStatus::NotFollowed => Some("not followed"),
                NodeStatus::TooManyNames => Some("TOO MANY MX"),
                NodeStatus::Truncated => Some("truncated"),
            };
            if child.void {
                line.push_str("  void");
            }
            if let Some(flag) = flag {
                let _ = write!(line, "  {flag}");
            }
            if let Some(detail) = &child.detail {
                let _ = write!(line, "  {detail}");
            }
            lines.push(line);
            let next = format!("{prefix}{}", if last { "   " } else { "│  " });
            walk(child, &next, lines);
        }
    }
    walk(root, "", &mut lines);
    lines
}

#[cfg(test)]
mod tests;
