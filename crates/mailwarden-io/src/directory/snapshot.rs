//! The whole directory in memory, for detection rules that ask about every
//! message (`sender-not-mailbox`): one lookup per message must not be a
//! database round trip, and a rule engine cannot wait for one.
//!
//! [`snapshot`] reads every entry of a source once — a list file, Mailcow's
//! database (mailboxes, aliases, spam aliases, alias domains, domains, as
//! Postfix's maps would accept them now) or Mailcow's API — into an
//! [`AddressList`], which answers with the same semantics as a lookup. The
//! caller refreshes it as often as it likes (`serve` does every few
//! minutes). Postfix's own maps cannot be listed (`postmap -q` answers one
//! key), so that source has no snapshot; write a list file instead.

use std::collections::BTreeSet;
use std::path::PathBuf;

use mailwarden_core::detect::{SenderDirectory, SenderStatus};

use super::{
    AddressInfo, AddressKind, AddressList, DirectoryError, DirectorySource, mailcow_api, mailcow_db,
};

/// Raw entries of a directory, as a source returns them (any case; `goto`
/// lists as written).
#[derive(Debug, Default)]
pub(super) struct Entries {
    pub(super) mailboxes: Vec<String>,
    /// Address (or `@domain` for a catch-all) → its `goto` list.
    pub(super) aliases: Vec<(String, String)>,
    /// Alias domain → target domain.
    pub(super) alias_domains: Vec<(String, String)>,
    pub(super) domains: Vec<String>,
}

/// A directory held in memory. See the module documentation.
#[derive(Clone, Debug)]
pub struct Snapshot {
    list: AddressList,
    source: String,
    entries: usize,
    skipped: Vec<String>,
}

/// Most skipped entries named in [`Snapshot::skipped`].
const MAX_SKIPPED_NAMED: usize = 20;

impl Snapshot {
    /// What `address` is for the `sender-not-mailbox` rule: a mailbox or an
    /// alias exists ([`SenderStatus::Known`]); an address of one of our
    /// domains that only a catch-all covers, or nothing, is no mailbox
    /// ([`SenderStatus::Unknown`]); other domains are not judged.
    pub fn sender_status(&self, address: &str) -> SenderStatus {
        match self.list.lookup(address) {
            Ok(info) => status_of(&info),
            Err(_) => SenderStatus::NotOurs,
        }
    }

    /// The full answer for one address (as [`super::lookup`] gives it).
    pub fn lookup(&self, address: &str) -> Result<AddressInfo, DirectoryError> {
        let mut info = self.list.lookup(address)?;
        info.source = self.source.clone();
        Ok(info)
    }

    /// Our domains, sorted.
    pub fn domains(&self) -> Vec<String> {
        self.list.domains()
    }

    /// Where it was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Entries read.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry was read.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Entries that could not be used (an address that is none, a second
    /// definition of the same key), the first few named.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

impl SenderDirectory for Snapshot {
    fn status(&self, address: &str) -> SenderStatus {
        self.sender_status(address)
    }
}

/// What a directory answer means for the sender rule.
fn status_of(info: &AddressInfo) -> SenderStatus {
    match &info.kind {
        AddressKind::Mailbox { .. } | AddressKind::Alias { .. } => SenderStatus::Known,
        AddressKind::DomainAlias { resolved, .. } => status_of(resolved),
        AddressKind::CatchAll { .. } | AddressKind::Unknown => {
            if info.domain_known {
                SenderStatus::Unknown
            } else {
                SenderStatus::NotOurs
            }
        }
    }
}

/// Reads the whole directory of `src` into memory.
pub async fn snapshot(src: &DirectorySource) -> Result<Snapshot, DirectoryError> {
    match src {
        DirectorySource::ListFile(path) => {
            let list = AddressList::load(path).await?;
            let entries = list.len();
            Ok(Snapshot {
                list,
                source: format!("list {}", path.display()),
                entries,
                skipped: Vec::new(),
            })
        }
        DirectorySource::MailcowApi(cfg) => {
            let dir = mailcow_api::fetch(cfg).await?;
            let (list, source) = dir.into_list();
            let entries = list.len();
            Ok(Snapshot {
                list,
                source,
                entries,
                skipped: Vec::new(),
            })
        }
        DirectorySource::MailcowDb(cfg) => {
            let (entries, source) = mailcow_db::entries(cfg).await?;
            Ok(from_entries(entries, source))
        }
        DirectorySource::Postfix { .. } => Err(DirectoryError::Postfix {
            problem: "Postfix's maps cannot be listed (postmap answers one key at a time), so the detection rules cannot hold them in memory".to_owned(),
            fix: "write the addresses into a list file (see `investigate --help`, --directory) or use Mailcow's database or API".to_owned(),
        }),
    }
}

/// Builds the list from raw entries, skipping (and naming) entries the list
/// format cannot hold instead of failing the whole directory over one.
pub(super) fn from_entries(e: Entries, source: String) -> Snapshot {
    let mut text = String::new();
    let mut skipped = Vec::new();
    let mut skipped_total = 0usize;
    let mut skip = |what: String| {
        skipped_total += 1;
        if skipped.len() < MAX_SKIPPED_NAMED {
            skipped.push(what);
        }
    };
    let mut defined: BTreeSet<String> = BTreeSet::new();
    let mailboxes: BTreeSet<String> = e.mailboxes.iter().map(|m| m.trim().to_lowercase()).collect();
    for m in &mailboxes {
        if !plain_address(m) {
            skip(format!("mailbox {m:?}: not an address"));
        } else if defined.insert(m.clone()) {
            text.push_str(m);
            text.push('\n');
        }
    }
    for (address, goto) in &e.aliases {
        let a = address.trim().to_lowercase();
        // Every Mailcow mailbox has an alias row to itself.
        if mailboxes.contains(&a) {
            continue;
        }
        let targets: Vec<String> = goto
            .split([',', ' ', '\t', '\n'])
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let valid = if let Some(d) = a.strip_prefix('@') {
            plain_domain(d) && targets.iter().all(|t| plain_address(t))
        } else {
            plain_address(&a) && targets.iter().all(|t| plain_address(t) || plain_domain(t))
        };
        if !valid || targets.is_empty() {
            skip(format!("alias {a:?}: not an address with targets"));
            continue;
        }
        if !defined.insert(a.clone()) {
            skip(format!("alias {a:?}: defined twice"));
            continue;
        }
        text.push_str(&format!("{a}: {}\n", targets.join(", ")));
    }
    for (alias, target) in &e.alias_domains {
        let (a, t) = (alias.trim().to_lowercase(), target.trim().to_lowercase());
        if !plain_domain(&a) || !plain_domain(&t) {
            skip(format!("alias domain {a:?} → {t:?}: not a domain"));
            continue;
        }
        if !defined.insert(format!("@{a}")) {
            skip(format!("alias domain {a:?}: it also has a catch-all"));
            continue;
        }
        text.push_str(&format!("@{a}: {t}\n"));
    }
    for d in &e.domains {
        let d = d.trim().to_lowercase();
        if plain_domain(&d) && defined.insert(format!("@{d}")) {
            text.push_str(&format!("@{d}\n"));
        }
    }
    let list = match AddressList::parse(&PathBuf::from(&source), text.as_bytes()) {
        Ok(list) => list,
        Err(err) => {
            // The checks above keep the text parseable; if one was missed,
            // say so rather than judge senders against half a directory.
            skip(format!("the directory could not be read as a whole: {err}"));
            AddressList::default()
        }
    };
    if skipped_total > skipped.len() {
        let more = skipped_total - skipped.len();
        skipped.push(format!("… and {more} more"));
    }
    let entries = list.len();
    Snapshot {
        list,
        source,
        entries,
        skipped,
    }
}

/// An address the list format holds: `local@domain`, no white space,
/// no list syntax.
fn plain_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local.contains(['@', ':', '#', ','])
                && !local.chars().any(|c| c.is_whitespace() || c.is_control())
                && plain_domain(domain)
        }
        None => false,
    }
}

fn plain_domain(d: &str) -> bool {
    super::valid_domain(d) && !d.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn entries_become_sender_answers() {
        let e = Entries {
            mailboxes: vec![s("Alice@Example.com"), s("bob@example.com")],
            aliases: vec![
                (s("alice@example.com"), s("alice@example.com")),
                (s("team@example.com"), s("alice@example.com, bob@example.com")),
                (s("@example.org"), s("alice@example.com")),
                (s("bad address@example.com"), s("alice@example.com")),
                (s("team@example.com"), s("bob@example.com")),
            ],
            alias_domains: vec![(s("example.net"), s("example.com"))],
            domains: vec![
                s("example.com"),
                s("example.org"),
                s("example.net"),
                s("empty.example"),
            ],
        };
        let snap = from_entries(e, s("test"));
        assert_eq!(snap.sender_status("alice@example.com"), SenderStatus::Known);
        assert_eq!(snap.sender_status("TEAM@example.com"), SenderStatus::Known);
        assert_eq!(snap.sender_status("alice+tag@example.com"), SenderStatus::Known);
        // Only a catch-all covers it: the incident's case.
        assert_eq!(snap.sender_status("xyovt@example.org"), SenderStatus::Unknown);
        assert_eq!(snap.sender_status("nobody@example.com"), SenderStatus::Unknown);
        assert_eq!(snap.sender_status("bob@example.net"), SenderStatus::Known);
        assert_eq!(snap.sender_status("team@example.net"), SenderStatus::Unknown);
        assert_eq!(snap.sender_status("x@empty.example"), SenderStatus::Unknown);
        assert_eq!(
            snap.sender_status("someone@elsewhere.test"),
            SenderStatus::NotOurs
        );
        assert_eq!(snap.sender_status("not an address"), SenderStatus::NotOurs);
        assert_eq!(snap.skipped().len(), 2, "{:?}", snap.skipped());
        assert!(snap.domains().contains(&s("empty.example")));
    }

    #[test]
    fn skipped_entries_are_bounded() {
        let e = Entries {
            aliases: (0..100)
                .map(|i| (format!("a{i}@x y"), s("t@example.com")))
                .collect(),
            domains: vec![s("example.com")],
            ..Entries::default()
        };
        let snap = from_entries(e, s("test"));
        assert_eq!(snap.skipped().len(), MAX_SKIPPED_NAMED + 1);
        assert!(snap.skipped().last().unwrap().contains("80 more"));
    }
}
