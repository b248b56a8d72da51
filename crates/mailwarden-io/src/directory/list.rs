//! The address list file: a directory written by hand.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{
    Addr, AddressInfo, AddressKind, DirectoryError, extension_note, sorted, split_targets, valid_domain,
};

/// A directory read from a text file, one entry per line:
///
/// ```text
/// # Comments start with # (at the start of a line, or after white space).
/// alice@example.com                           # a mailbox
/// team@example.com: alice@example.com, bob@example.com  # an alias and its targets
/// @example.org: eve@example.org               # the catch-all of example.org
/// @example.net: example.com                   # example.net is an alias domain of example.com
/// @example.info                               # a domain of ours with no other entry
/// ```
///
/// - A mailbox is an address alone on its line.
/// - An alias is `address: target, target, …` (targets separated by commas
///   and/or white space; targets may be outside our domains).
/// - `@domain: address, …` is the catch-all of `domain`; `@domain: other.domain`
///   (or `@other.domain`) makes `domain` an alias domain of `other.domain`.
/// - `@domain` alone declares a domain as ours.
///
/// Everything is case-insensitive (stored lowercased). An address or
/// `@domain` may be defined once; a second definition is an error naming both
/// lines. Every error names the file, the line and the fix.
///
/// The entries mean what they mean in Mailcow (see the module
/// documentation): lookups follow the same order (exact address, then without
/// `+extension`, then the catch-all), an alias domain maps only the mailboxes
/// of its target domain, and `may_send_as` is what Mailcow would allow with an
/// empty `sender_acl` table — a mailbox sends as itself, alias targets as the
/// alias, catch-all targets as every address of the domain without an entry,
/// a mailbox `local@target` as `local@alias-domain` — counting only owners
/// that are mailboxes of the list. A list has no sender ACLs and no inactive
/// entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressList {
    path: PathBuf,
    /// Mailbox → line.
    mailboxes: BTreeMap<String, usize>,
    /// Alias address → (targets, line).
    aliases: BTreeMap<String, (Vec<String>, usize)>,
    /// Domain → (catch-all targets, line).
    catch_alls: BTreeMap<String, (Vec<String>, usize)>,
    /// Alias domain → (target domain, line).
    alias_domains: BTreeMap<String, (String, usize)>,
    /// Domains declared alone → line.
    declared: BTreeMap<String, usize>,
}

impl AddressList {
    /// Reads and parses a list file.
    pub async fn load(path: &Path) -> Result<AddressList, DirectoryError> {
        let bytes = tokio::fs::read(path).await.map_err(|source| {
            let fix = match source.kind() {
                io::ErrorKind::NotFound => "check the path of the address list",
                io::ErrorKind::PermissionDenied => {
                    "make the address list readable by the user running mailwarden"
                }
                _ => "check that the address list is a readable file",
            };
            DirectoryError::ListRead {
                path: path.to_path_buf(),
                source,
                fix,
            }
        })?;
        AddressList::parse(path, &bytes)
    }

    /// Parses the bytes of a list file; `path` is used in messages and in
    /// [`AddressInfo::source`].
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<AddressList, DirectoryError> {
        let mut list = AddressList {
            path: path.to_path_buf(),
            ..AddressList::default()
        };
        // Where each address or `@domain` was defined.
        let mut defined: BTreeMap<String, usize> = BTreeMap::new();
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let line_no = i + 1;
            let err = |problem: String, fix: &str| DirectoryError::ListSyntax {
                path: path.to_path_buf(),
                line: line_no,
                problem,
                fix: fix.to_owned(),
            };
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(err(
                    "the line is not valid UTF-8".to_owned(),
                    "save the address list as UTF-8",
                ));
            };
            let line = strip_comment(text).trim();
            if line.is_empty() {
                continue;
            }
            let (key, entry) = parse_line(line).map_err(|(problem, fix)| err(problem, fix))?;
            if let Some(first) = defined.get(&key) {
                return Err(err(
                    format!("{key:?} is already defined on line {first}"),
                    "define each address and each @domain on one line only",
                ));
            }
            defined.insert(key, line_no);
            match entry {
                Entry::Mailbox(a) => {
                    list.mailboxes.insert(a, line_no);
                }
                Entry::Alias(a, targets) => {
                    list.aliases.insert(a, (targets, line_no));
                }
                Entry::CatchAll(d, targets) => {
                    list.catch_alls.insert(d, (targets, line_no));
                }
                Entry::AliasDomain(d, target) => {
                    list.alias_domains.insert(d, (target, line_no));
                }
                Entry::Domain(d) => {
                    list.declared.insert(d, line_no);
                }
            }
        }
        // Alias domains point at real domains, as Mailcow requires.
        for (domain, (target, line)) in &list.alias_domains {
            if list.alias_domains.contains_key(target) {
                return Err(DirectoryError::ListSyntax {
                    path: path.to_path_buf(),
                    line: *line,
                    problem: format!(
                        "the alias domain {domain:?} points at {target:?}, which is an alias domain too"
                    ),
                    fix:
                        "point an alias domain at a domain that holds mailboxes (alias domains do not chain)"
                            .to_owned(),
                });
            }
        }
        Ok(list)
    }

    /// Answers what `address` is and who may send as it.
    pub fn lookup(&self, address: &str) -> Result<AddressInfo, DirectoryError> {
        self.lookup_addr(&Addr::parse(address)?)
    }

    /// Entries in the list (mailboxes, aliases, catch-alls, alias domains,
    /// declared domains).
    pub fn len(&self) -> usize {
        self.mailboxes.len()
            + self.aliases.len()
            + self.catch_alls.len()
            + self.alias_domains.len()
            + self.declared.len()
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every domain the list names (declared, of mailboxes, aliases and
    /// catch-alls, alias domains and their targets), sorted.
    pub fn domains(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let domain_of = |a: &String| a.rsplit_once('@').map(|(_, d)| d.to_owned());
        out.extend(self.mailboxes.keys().filter_map(domain_of));
        out.extend(self.aliases.keys().filter_map(domain_of));
        out.extend(self.catch_alls.keys().cloned());
        for (d, (t, _)) in &self.alias_domains {
            out.push(d.clone());
            out.push(t.clone());
        }
        out.extend(self.declared.keys().cloned());
        sorted(out)
    }

    pub(super) fn lookup_addr(&self, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
        let mut notes = Vec::new();
        let mut found = self.exact(addr, &mut notes);
        if found.is_none()
            && let Some(base) = addr.without_extension()
        {
            let mut base_notes = Vec::new();
            found = self.exact(&base, &mut base_notes);
            if found.is_some() {
                // What the full address lacked no longer matters.
                notes = vec![extension_note(addr, &base)];
                notes.extend(base_notes);
            }
        }
        let (kind, line) = match found {
            Some(f) => f,
            None => match self.catch_alls.get(&addr.domain) {
                Some((targets, line)) => (
                    AddressKind::CatchAll {
                        targets: targets.clone(),
                    },
                    Some(*line),
                ),
                None => (AddressKind::Unknown, None),
            },
        };
        let may_send_as = self.senders(addr, &mut notes);
        Ok(AddressInfo {
            address: addr.full.clone(),
            kind,
            domain_known: self.domain_known(&addr.domain),
            may_send_as,
            source: self.source(line),
            notes,
        })
    }

    fn source(&self, line: Option<usize>) -> String {
        match line {
            Some(l) => format!("list {}:{l}", self.path.display()),
            None => format!("list {}", self.path.display()),
        }
    }

    fn domain_known(&self, domain: &str) -> bool {
        let suffix = format!("@{domain}");
        self.declared.contains_key(domain)
            || self.catch_alls.contains_key(domain)
            || self.alias_domains.contains_key(domain)
            || self.alias_domains.values().any(|(t, _)| t == domain)
            || self.mailboxes.keys().any(|a| a.ends_with(&suffix))
            || self.aliases.keys().any(|a| a.ends_with(&suffix))
    }

    /// The entry for exactly this address, with the line that defines it.
    fn exact(&self, a: &Addr, notes: &mut Vec<String>) -> Option<(AddressKind, Option<usize>)> {
        if let Some(line) = self.mailboxes.get(&a.full) {
            return Some((AddressKind::Mailbox { active: true }, Some(*line)));
        }
        if let Some((targets, line)) = self.aliases.get(&a.full) {
            let kind = AddressKind::Alias {
                targets: targets.clone(),
                active: true,
            };
            return Some((kind, Some(*line)));
        }
        let (target_domain, line) = self.alias_domains.get(&a.domain)?;
        let target = a.in_domain(target_domain);
        let Some(target_line) = self.mailboxes.get(&target.full) else {
            notes.push(format!(
                "{:?} is an alias domain of {:?}, which has no mailbox {:?}; like Mailcow, only mailboxes are mapped through alias domains",
                a.domain, target_domain, target.full
            ));
            return None;
        };
        let mut resolved_notes = Vec::new();
        let may_send_as = self.senders(&target, &mut resolved_notes);
        let resolved = AddressInfo {
            address: target.full.clone(),
            kind: AddressKind::Mailbox { active: true },
            domain_known: true,
            may_send_as,
            source: self.source(Some(*target_line)),
            notes: resolved_notes,
        };
        let kind = AddressKind::DomainAlias {
            alias_domain: a.domain.clone(),
            target_domain: target_domain.clone(),
            resolved: Box::new(resolved),
        };
        Some((kind, Some(*line)))
    }

    /// Mailcow's sender-login semantics without `sender_acl` rows.
    fn senders(&self, a: &Addr, notes: &mut Vec<String>) -> Vec<String> {
        let mut owners = self.owners(a);
        if owners.is_empty()
            && let Some(base) = a.without_extension()
        {
            owners = self.owners(&base);
        }
        let (kept, dropped): (Vec<String>, Vec<String>) =
            owners.into_iter().partition(|o| self.mailboxes.contains_key(o));
        if !dropped.is_empty() {
            notes.push(format!(
                "not counted as senders of {:?}, because they are no mailboxes and so cannot log in: {}",
                a.full,
                dropped.join(", ")
            ));
        }
        sorted(kept)
    }

    fn owners(&self, a: &Addr) -> Vec<String> {
        let mut owners = if self.mailboxes.contains_key(&a.full) {
            vec![a.full.clone()]
        } else if let Some((targets, _)) = self.aliases.get(&a.full) {
            targets.clone()
        } else if let Some((targets, _)) = self.catch_alls.get(&a.domain) {
            targets.clone()
        } else {
            Vec::new()
        };
        if let Some((target_domain, _)) = self.alias_domains.get(&a.domain) {
            let target = a.in_domain(target_domain);
            if self.mailboxes.contains_key(&target.full) && !owners.contains(&target.full) {
                owners.push(target.full);
            }
        }
        owners
    }
}

/// One parsed line.
enum Entry {
    Mailbox(String),
    Alias(String, Vec<String>),
    CatchAll(String, Vec<String>),
    AliasDomain(String, String),
    Domain(String),
}

/// Cuts a `#` comment: at the start of the line or after white space.
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

type LineProblem = (String, &'static str);

/// Parses one non-empty line without comment into its key (the address or
/// `@domain` it defines) and entry.
fn parse_line(line: &str) -> Result<(String, Entry), LineProblem> {
    let Some((left, right)) = line.split_once(':') else {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if words.next().is_some() {
            return Err((
                format!("several words but no colon in {:?}", shorten(line)),
                "write a mailbox alone on its line, an alias as ALIAS: TARGET, TARGET",
            ));
        }
        if let Some(domain) = first.strip_prefix('@') {
            let domain = domain_of(domain)?;
            return Ok((format!("@{domain}"), Entry::Domain(domain)));
        }
        let a = address(first)?;
        return Ok((a.clone(), Entry::Mailbox(a)));
    };
    let left = left.trim();
    if left.is_empty() || left.split_whitespace().nth(1).is_some() {
        return Err((
            format!(
                "{:?} before the colon is not one address or @domain",
                shorten(left)
            ),
            "write ALIAS: TARGET, … or @DOMAIN: TARGET, … with one address or @domain before the colon",
        ));
    }
    let targets = split_targets(right);
    if targets.is_empty() {
        return Err((
            format!("nothing after the colon of {:?}", shorten(left)),
            "list the targets after the colon, or remove the colon for a mailbox",
        ));
    }
    if let Some(domain) = left.strip_prefix('@') {
        let domain = domain_of(domain)?;
        let key = format!("@{domain}");
        if let [only] = targets.as_slice()
            && (only.starts_with('@') || !only.contains('@'))
        {
            let target = domain_of(only.trim_start_matches('@'))?;
            if target == domain {
                return Err((
                    format!("{domain:?} is made an alias domain of itself"),
                    "name another domain after the colon",
                ));
            }
            return Ok((key, Entry::AliasDomain(domain, target)));
        }
        let mut addrs = Vec::with_capacity(targets.len());
        for t in &targets {
            if t.starts_with('@') || !t.contains('@') {
                return Err((
                    format!(
                        "the catch-all of {domain:?} lists {:?}, which is no address",
                        shorten(t)
                    ),
                    "a catch-all lists addresses (@DOMAIN: user@example.com, …); an alias domain names exactly one domain (@DOMAIN: example.com)",
                ));
            }
            addrs.push(address(t)?);
        }
        return Ok((key, Entry::CatchAll(domain, addrs)));
    }
    let a = address(left)?;
    let mut addrs = Vec::with_capacity(targets.len());
    for t in &targets {
        if t.starts_with('@') {
            return Err((
                format!("the alias {a:?} lists {:?}, which is no address", shorten(t)),
                "an alias lists addresses; for a whole domain write @DOMAIN: …",
            ));
        }
        addrs.push(address(t)?);
    }
    Ok((a.clone(), Entry::Alias(a, addrs)))
}

/// A full address, lowercased.
fn address(s: &str) -> Result<String, LineProblem> {
    match Addr::parse(s) {
        Ok(a) => Ok(a.full),
        Err(DirectoryError::InvalidAddress { problem, .. }) => Err((
            format!("{:?} is not an address: {problem}", shorten(s)),
            "write addresses as user@example.com",
        )),
        Err(e) => Err((e.to_string(), "write addresses as user@example.com")),
    }
}

/// A domain, lowercased.
fn domain_of(s: &str) -> Result<String, LineProblem> {
    if valid_domain(s) {
        Ok(s.to_lowercase())
    } else {
        Err((
            format!("{:?} is not a domain", shorten(s)),
            "write domains as example.com (after an @ where the line names a domain)",
        ))
    }
}

/// At most 60 characters, for messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(57).collect();
        t.push_str("...");
        t
    }
}

#[cfg(test)]
mod tests;
