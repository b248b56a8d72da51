//! The directory in Postfix's own maps, asked with `postconf` and `postmap`
//! (semantics and limits: the parent module's documentation). Blocking: run
//! it off the async threads.

use std::path::Path;
use std::process::Command;

use super::{Addr, AddressInfo, AddressKind, DirectoryError, extension_note, sorted, split_targets};

/// Map types that need a server or Postfix's proxy: never asked.
const SERVER_TYPES: [&str; 9] = [
    "proxy",
    "mysql",
    "pgsql",
    "ldap",
    "memcache",
    "tcp",
    "socketmap",
    "nis",
    "nisplus",
];

/// Answers [`super::lookup`] from Postfix's maps.
pub(super) fn lookup(config_dir: Option<&Path>, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
    let pf = Postfix::open(config_dir)?;
    let mut notes = pf.skipped_notes();
    let mut found = pf.exact(addr, &mut notes)?;
    if found.is_none()
        && let Some(base) = addr.without_extension()
    {
        found = pf.exact(&base, &mut notes)?;
        if found.is_some() {
            notes.push(extension_note(addr, &base));
        }
    }
    let (kind, map) = match found {
        Some(f) => f,
        None => match pf.query_first(&pf.alias_maps, &addr.catch_all_key())? {
            Some((value, map)) => {
                let targets = split_targets(&value);
                match targets.as_slice() {
                    [only] if only.starts_with('@') => {
                        let target_domain = only.trim_start_matches('@').to_owned();
                        let target = addr.in_domain(&target_domain);
                        let mut resolved_notes = Vec::new();
                        let kind = pf
                            .exact(&target, &mut resolved_notes)?
                            .map_or(AddressKind::Unknown, |f| f.0);
                        let may_send_as = pf.senders(&target)?;
                        let resolved = AddressInfo {
                            address: target.full.clone(),
                            kind,
                            domain_known: pf.domain_known(&target_domain)?,
                            may_send_as,
                            source: pf.source(Some(&map)),
                            notes: resolved_notes,
                        };
                        let kind = AddressKind::DomainAlias {
                            alias_domain: addr.domain.clone(),
                            target_domain,
                            resolved: Box::new(resolved),
                        };
                        (kind, Some(map))
                    }
                    _ => (AddressKind::CatchAll { targets }, Some(map)),
                }
            }
            None => (AddressKind::Unknown, None),
        },
    };
    Ok(AddressInfo {
        address: addr.full.clone(),
        kind,
        domain_known: pf.domain_known(&addr.domain)?,
        may_send_as: pf.senders(addr)?,
        source: pf.source(map.as_deref()),
        notes,
    })
}

/// Answers [`super::our_domains`] from Postfix's settings.
pub(super) fn our_domains(config_dir: Option<&Path>) -> Result<Vec<String>, DirectoryError> {
    let pf = Postfix::open(config_dir)?;
    let mut out: Vec<String> = pf.literal_domains.clone();
    for map in &pf.domain_maps {
        // `postmap -s` dumps the maps that can be listed; others say nothing.
        if let Ok(o) = pf.command("postmap").arg("-s").arg(map).output()
            && o.status.success()
        {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some(key) = line.split_whitespace().next() {
                    out.push(key.to_lowercase());
                }
            }
        }
    }
    Ok(sorted(out))
}

/// The maps of one Postfix configuration.
struct Postfix {
    config_dir: Option<std::path::PathBuf>,
    alias_maps: Vec<String>,
    mailbox_maps: Vec<String>,
    sender_maps: Vec<String>,
    literal_domains: Vec<String>,
    domain_maps: Vec<String>,
    skipped: Vec<String>,
}

impl Postfix {
    fn open(config_dir: Option<&Path>) -> Result<Postfix, DirectoryError> {
        let mut pf = Postfix {
            config_dir: config_dir.map(Path::to_path_buf),
            alias_maps: Vec::new(),
            mailbox_maps: Vec::new(),
            sender_maps: Vec::new(),
            literal_domains: Vec::new(),
            domain_maps: Vec::new(),
            skipped: Vec::new(),
        };
        let params = [
            "virtual_alias_maps",
            "virtual_mailbox_maps",
            "smtpd_sender_login_maps",
            "virtual_mailbox_domains",
            "virtual_alias_domains",
            "mydestination",
        ];
        let out = pf.run(pf.command("postconf").args(["-x", "-h"]).args(params), "postconf")?;
        let values: Vec<&str> = out.lines().collect();
        if values.len() != params.len() {
            return Err(DirectoryError::Postfix {
                problem: format!(
                    "postconf printed {} values for {} parameters",
                    values.len(),
                    params.len()
                ),
                fix: "check the Postfix configuration with postconf -n".to_owned(),
            });
        }
        pf.alias_maps = pf.usable(values[0]);
        pf.mailbox_maps = pf.usable(values[1]);
        pf.sender_maps = pf.usable(values[2]);
        for value in &values[3..] {
            for item in split_list(value) {
                if item.contains(':') {
                    if !is_server_map(&item) {
                        pf.domain_maps.push(item);
                    }
                } else if !item.starts_with('/') && !item.starts_with('$') {
                    pf.literal_domains.push(item.to_lowercase());
                }
            }
        }
        Ok(pf)
    }

    /// The maps of a parameter that can be asked; the others are remembered.
    fn usable(&mut self, value: &str) -> Vec<String> {
        let mut out = Vec::new();
        for item in split_list(value) {
            if is_server_map(&item) {
                if !self.skipped.contains(&item) {
                    self.skipped.push(item);
                }
            } else if item.contains(':') {
                out.push(item);
            }
        }
        out
    }

    fn skipped_notes(&self) -> Vec<String> {
        if self.skipped.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "not asked, because they need a server or Postfix's proxy: {}",
                self.skipped.join(", ")
            )]
        }
    }

    fn source(&self, map: Option<&str>) -> String {
        let dir = self
            .config_dir
            .as_deref()
            .map_or_else(|| "/etc/postfix".to_owned(), |d| d.display().to_string());
        match map {
            Some(m) => format!("postfix {dir}: {m}"),
            None => format!("postfix {dir}"),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        if let Some(dir) = &self.config_dir {
            c.arg("-c").arg(dir);
        }
        c
    }

    /// Runs a command that must succeed; returns its standard output.
    fn run(&self, cmd: &mut Command, program: &str) -> Result<String, DirectoryError> {
        let out = cmd.output().map_err(|e| DirectoryError::Postfix {
            problem: format!("cannot run {program}: {e}"),
            fix: "install Postfix (apt-get install postfix) or choose another directory source".to_owned(),
        })?;
        if !out.status.success() {
            return Err(DirectoryError::Postfix {
                problem: format!("{program} failed: {}", fatal_line(&out.stderr)),
                fix: "check the Postfix configuration directory (it must hold main.cf)".to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `postmap -q key map`: the value, `None` when the key is absent.
    fn query(&self, map: &str, key: &str) -> Result<Option<String>, DirectoryError> {
        let out = self
            .command("postmap")
            .arg("-q")
            .arg(key)
            .arg(map)
            .output()
            .map_err(|e| DirectoryError::Postfix {
                problem: format!("cannot run postmap: {e}"),
                fix: "install Postfix (apt-get install postfix) or choose another directory source"
                    .to_owned(),
            })?;
        if out.status.success() {
            return Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("fatal:") {
            return Err(DirectoryError::Postfix {
                problem: format!("postmap -q on {map}: {}", fatal_line(&out.stderr)),
                fix: "check that the map exists and is built (postmap TYPE:FILE after each change)"
                    .to_owned(),
            });
        }
        Ok(None)
    }

    /// The first of `maps` that has `key`: its value and name.
    fn query_first(&self, maps: &[String], key: &str) -> Result<Option<(String, String)>, DirectoryError> {
        for map in maps {
            if let Some(v) = self.query(map, key)? {
                return Ok(Some((v, map.clone())));
            }
        }
        Ok(None)
    }

    /// The alias or mailbox entry of exactly this address.
    fn exact(
        &self,
        a: &Addr,
        notes: &mut Vec<String>,
    ) -> Result<Option<(AddressKind, Option<String>)>, DirectoryError> {
        let alias = self.query_first(&self.alias_maps, &a.full)?;
        let mailbox = self.query_first(&self.mailbox_maps, &a.full)?;
        match (alias, mailbox) {
            (Some((value, _)), Some((_, map))) => {
                let targets = split_targets(&value);
                if targets != [a.full.clone()] {
                    notes.push(format!("mail to {:?} goes to: {}", a.full, targets.join(", ")));
                }
                Ok(Some((AddressKind::Mailbox { active: true }, Some(map))))
            }
            (None, Some((_, map))) => Ok(Some((AddressKind::Mailbox { active: true }, Some(map)))),
            (Some((value, map)), None) => Ok(Some((
                AddressKind::Alias {
                    targets: split_targets(&value),
                    active: true,
                },
                Some(map),
            ))),
            (None, None) => Ok(None),
        }
    }

    fn domain_known(&self, domain: &str) -> Result<bool, DirectoryError> {
        if self.literal_domains.iter().any(|d| d == domain) {
            return Ok(true);
        }
        Ok(self.query_first(&self.domain_maps, domain)?.is_some())
    }

    /// What the sender-login maps return, in Postfix's order of keys.
    fn senders(&self, a: &Addr) -> Result<Vec<String>, DirectoryError> {
        let mut keys = vec![a.full.clone()];
        if let Some(base) = a.without_extension() {
            keys.push(base.full);
        }
        keys.push(a.catch_all_key());
        for key in keys {
            if let Some((value, _)) = self.query_first(&self.sender_maps, &key)? {
                return Ok(sorted(split_targets(&value)));
            }
        }
        Ok(Vec::new())
    }
}

/// Splits a Postfix list at commas and white space, keeping `{…}` together.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if depth == 0 && (c == ',' || c.is_whitespace()) => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_server_map(map: &str) -> bool {
    map.split_once(':')
        .is_some_and(|(kind, _)| SERVER_TYPES.contains(&kind.to_ascii_lowercase().as_str()))
}

/// The `fatal:` line of a Postfix tool's error output (or its last line).
fn fatal_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    s.lines()
        .find(|l| l.contains("fatal:"))
        .or_else(|| s.lines().last())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests;
