//! Compose files and image pins: what `docker compose up` would run.
//!
//! - [`parse_env`] reads `KEY=VALUE` files (`.env`, Mailcow's `mailcow.conf`,
//!   which Mailcow links as `.env`).
//! - [`interpolate`] expands Compose's variables: `${VAR}`, `$VAR`,
//!   `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//!   `${VAR:?message}` / `${VAR?message}` (an error when missing),
//!   `${VAR:+alt}` / `${VAR+alt}`, and `$$` for a literal `$`. Defaults may
//!   hold further variables (nesting is bounded).
//! - [`parse_compose`] reads the services of one compose file (their image and
//!   labels, interpolated); [`ComposeProject::merge`] applies override files
//!   in order, as `docker compose -f a.yml -f b.yml` does. `include` paths,
//!   `extends` and `profiles` are read; [`ComposeProject::resolve_extends`]
//!   resolves `extends` within a project (the caller reads other files).
//! - [`ImageRef`] splits an image reference and [`ImageRef::pin`] classifies
//!   how firmly it is pinned: by digest, by a full version (`mariadb:10.11.6`),
//!   or floating (`mariadb:10.11`, `:latest`, no tag, `alpine`).
//!
//! Everything here is pure: the caller reads the files and passes their text.

use std::collections::BTreeMap;

/// Deepest nesting of `${A:-${B:-…}}` expanded; deeper input is an error.
const MAX_NESTING: usize = 8;
/// Longest result of one interpolation (a bound on hostile input).
const MAX_EXPANDED: usize = 1 << 20;

/// Parses `KEY=VALUE` lines (`.env`, `mailcow.conf`): blank lines and `#`
/// comments are skipped, an `export ` prefix is allowed, values in single
/// quotes are taken literally, values in double quotes have `\"`, `\\` and
/// `\n` unescaped; an unquoted value ends at ` #`. Lines without `=` or with a
/// key that is not `[A-Za-z_][A-Za-z0-9_.-]*` are skipped. Later lines win.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for raw in text.lines() {
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim_end();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            continue;
        }
        out.insert(key.to_owned(), env_value(value.trim_start()));
    }
    out
}

fn env_value(v: &str) -> String {
    if let Some(rest) = v.strip_prefix('\'') {
        return rest.split_once('\'').map_or(rest, |(inner, _)| inner).to_owned();
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut s = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some(o) => s.push(o),
                    None => break,
                },
                c => s.push(c),
            }
        }
        return s;
    }
    let end = v.find(" #").unwrap_or(v.len());
    v[..end].trim_end().to_owned()
}

/// The result of [`interpolate`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interpolated {
    /// The text with every variable expanded.
    pub text: String,
    /// Variables that were referenced without a default and are not set
    /// (Compose substitutes an empty string and warns), in order, each once.
    pub missing: Vec<String>,
}

/// Why a text could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${` without its `}`.
    #[error("unclosed \"${{\" at byte {0}")]
    Unclosed(usize),
    /// `${}` or a name that is not a variable name.
    #[error("invalid variable reference {0:?}")]
    BadName(String),
    /// `${VAR?message}` / `${VAR:?message}` with `VAR` missing.
    #[error("required variable {name} is missing: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message the file gives.
        message: String,
    },
    /// Defaults nested deeper than the bound, or a result too long.
    #[error("interpolation nested too deeply or expanded too far")]
    TooDeep,
}

/// Expands Compose variables in `s` (see the module documentation), looking
/// values up with `lookup`.
pub fn interpolate(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolateError> {
    let mut out = Interpolated::default();
    out.text = expand(s, lookup, 0, &mut out.missing)?;
    Ok(out)
}

fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    missing: &mut Vec<String>,
) -> Result<String, InterpolateError> {
    if depth > MAX_NESTING {
        return Err(InterpolateError::TooDeep);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&s[lit..i]);
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = matching_brace(b, i + 2).ok_or(InterpolateError::Unclosed(i))?;
                let inner = &s[i + 2..close];
                out.push_str(&braced(inner, lookup, depth, missing)?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let n = b[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                let name = &s[i + 1..i + 1 + n];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => note_missing(missing, name),
                }
                i += 1 + n;
            }
            // A lone `$` (end of text, `$ `, `$1`) stays as it is.
            _ => {
                out.push('$');
                i += 1;
            }
        }
        lit = i;
        if out.len() > MAX_EXPANDED {
            return Err(InterpolateError::TooDeep);
        }
    }
    out.push_str(&s[lit..]);
    if out.len() > MAX_EXPANDED {
        return Err(InterpolateError::TooDeep);
    }
    Ok(out)
}

/// The index of the `}` closing a `${` whose content starts at `from`.
fn matching_brace(b: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn note_missing(missing: &mut Vec<String>, name: &str) {
    if !missing.iter().any(|m| m == name) && missing.len() < 64 {
        missing.push(name.to_owned());
    }
}

fn braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    missing: &mut Vec<String>,
) -> Result<String, InterpolateError> {
    let n = inner
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
        .count();
    let name = &inner[..n];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(InterpolateError::BadName(inner.chars().take(40).collect()));
    }
    let rest = &inner[n..];
    let value = lookup(name);
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        return Err(InterpolateError::BadName(inner.chars().take(40).collect()));
    };
    let set = value.is_some();
    let set_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        "" => Ok(value.unwrap_or_else(|| {
            note_missing(missing, name);
            String::new()
        })),
        ":-" | "-" => {
            let use_default = if op == ":-" { !set_non_empty } else { !set };
            if use_default {
                expand(arg, lookup, depth + 1, missing)
            } else {
                Ok(value.unwrap_or_default())
            }
        }
        ":?" | "?" => {
            let ok = if op == ":?" { set_non_empty } else { set };
            if ok {
                Ok(value.unwrap_or_default())
            } else {
                Err(InterpolateError::Required {
                    name: name.to_owned(),
                    message: expand(arg, lookup, depth + 1, missing)?,
                })
            }
        }
        _ => {
            let alt = if op == ":+" { set_non_empty } else { set };
            if alt {
                expand(arg, lookup, depth + 1, missing)
            } else {
                Ok(String::new())
            }
        }
    }
}

/// How firmly an image reference is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinKind {
    /// `@sha256:…`: exactly one image, forever.
    Digest,
    /// A full version tag (`mariadb:10.11.6`, `redis:7.4.6-alpine`,
    /// `ghcr.io/mailcow/clamd:1.71`, whose publisher never re-pushes a tag).
    Version,
    /// A tag that names a line of releases (`mariadb:10.11`, `postgres:16`):
    /// a pull brings the newest patch (or minor) level.
    FloatingVersion,
    /// `:latest`, no tag at all, or a name like `alpine`, `stable`, `lts`:
    /// a pull may bring any version.
    Floating,
}

impl PinKind {
    /// Short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Digest => "pinned by digest",
            PinKind::Version => "pinned to a full version",
            PinKind::FloatingVersion => "a floating version tag",
            PinKind::Floating => "a floating tag",
        }
    }
}

/// Registries and namespaces whose tags are release versions pushed once
/// (Mailcow builds its images per release: `ghcr.io/mailcow/dovecot:2.3.21.1-2`,
/// `ghcr.io/mailcow/clamd:1.71`), so a two-part tag there is a pin.
const RELEASE_TAG_NAMESPACES: &[&str] = &["ghcr.io/mailcow/", "docker.io/mailcow/"];

/// Images whose data outlives the container and rejects a downgrade or an
/// unprepared upgrade: a floating tag there is a risk, not a convenience.
const DATABASE_IMAGES: &[&str] = &[
    "mariadb", "mysql", "percona", "postgres", "postgis", "mongo", "redis", "valkey",
];

/// An image reference split into its parts, normalized like Docker does
/// (`mariadb` is `docker.io/library/mariadb`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageRef {
    /// Registry host (`docker.io` when none is given).
    pub registry: String,
    /// Repository path (`library/mariadb`, `mailcow/dovecot`).
    pub repository: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits a reference; `None` for an empty one or one with spaces or
    /// control characters (not an image reference).
    pub fn parse(s: &str) -> Option<ImageRef> {
        let s = s.trim();
        if s.is_empty() || s.len() > 512 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(c) => (
                &name[..last_slash + c],
                Some(name[last_slash + c + 1..].to_owned()),
            ),
            None => (name, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") || digest.as_deref() == Some("") {
            return None;
        }
        let (registry, repo) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            "docker.io".to_owned()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        Some(ImageRef {
            registry,
            repository: repository.to_ascii_lowercase(),
            tag,
            digest,
        })
    }

    /// The normalized name with tag (`latest` when none) and digest: two
    /// references that pull the same thing have the same canonical form.
    pub fn canonical(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if self.digest.is_none() || self.tag.is_some() {
            s.push(':');
            s.push_str(self.tag.as_deref().unwrap_or("latest"));
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The last path component (`mariadb`, `dovecot`, `watchtower`).
    pub fn short_name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or(&self.repository)
    }

    /// Whether this is a database image (MariaDB, MySQL, PostgreSQL, Redis, …).
    pub fn is_database(&self) -> bool {
        DATABASE_IMAGES.contains(&self.short_name())
    }

    /// How firmly the reference is pinned.
    pub fn pin(&self) -> PinKind {
        if self.digest.is_some() {
            return PinKind::Digest;
        }
        let Some(tag) = self.tag.as_deref() else {
            return PinKind::Floating;
        };
        // The leading version: digits separated by dots (`10.11.6` of
        // `10.11.6-jammy`, `7.4.6` of `7.4.6-alpine`).
        let version = tag.trim_start_matches('v');
        let parts = version
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or("");
        let numbers = parts.split('.').filter(|p| !p.is_empty()).count();
        if numbers == 0 || !version.starts_with(|c: char| c.is_ascii_digit()) {
            return PinKind::Floating;
        }
        let full = format!("{}/{}/", self.registry, self.repository);
        let release_ns = RELEASE_TAG_NAMESPACES.iter().any(|ns| full.starts_with(ns));
        // A build suffix after the version (`1.25.1-1`) also pins.
        if numbers >= 3 || (release_ns && numbers >= 1) {
            PinKind::Version
        } else {
            PinKind::FloatingVersion
        }
    }
}

/// One service of a compose project, after interpolation and overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ComposeService {
    /// The service name (`mysql-mailcow`).
    pub name: String,
    /// The image as written, interpolated (`mariadb:10.11`); `None` for a
    /// service built from a Dockerfile only.
    pub image: Option<String>,
    /// `container_name`, when set.
    pub container_name: Option<String>,
    /// Labels (mapping or `KEY=VALUE` list form), interpolated.
    pub labels: BTreeMap<String, String>,
    /// Where the image was set: `file:line`.
    pub image_source: Option<String>,
    /// `profiles`: the service only starts when one of them is active.
    pub profiles: Vec<String>,
    /// `extends`: the service it inherits from, and the file that defines it
    /// (`None`: this project). Cleared once resolved.
    pub extends: Option<(String, Option<String>)>,
}

impl ComposeService {
    /// Whether `docker compose up` starts it with these profiles active
    /// (`COMPOSE_PROFILES`, comma-separated; `*` enables all).
    pub fn enabled(&self, active: &[String]) -> bool {
        self.profiles.is_empty() || active.iter().any(|a| a == "*" || self.profiles.contains(a))
    }

    /// Takes what this service does not set itself from the one it extends.
    pub fn inherit(&mut self, base: &ComposeService) {
        if self.image.is_none() {
            self.image.clone_from(&base.image);
            self.image_source.clone_from(&base.image_source);
        }
        for (k, v) in &base.labels {
            self.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The services of a compose project (one file, or several merged).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ComposeProject {
    /// Services by name.
    pub services: BTreeMap<String, ComposeService>,
    /// The files read, in order.
    pub files: Vec<String>,
    /// Variables referenced without a default that are not set, with where.
    pub missing_variables: Vec<String>,
    /// Paths of the top-level `include` list, as written (relative to the
    /// including file's directory), for the caller to read and merge.
    pub includes: Vec<String>,
    /// The active profiles (`COMPOSE_PROFILES`), set by the caller.
    pub active_profiles: Vec<String>,
}

/// Deepest chain of `extends` followed.
pub const MAX_EXTENDS: usize = 8;

impl ComposeProject {
    /// Applies an override file: its services' image, container name and
    /// labels replace (labels: are added to) the base's; new services are added.
    pub fn merge(&mut self, over: ComposeProject) {
        for (name, s) in over.services {
            match self.services.get_mut(&name) {
                Some(base) => {
                    if s.image.is_some() {
                        base.image = s.image;
                        base.image_source = s.image_source;
                    }
                    if s.container_name.is_some() {
                        base.container_name = s.container_name;
                    }
                    base.labels.extend(s.labels);
                }
                None => {
                    self.services.insert(name, s);
                }
            }
        }
        self.files.extend(over.files);
        for m in over.missing_variables {
            if !self.missing_variables.contains(&m) {
                self.missing_variables.push(m);
            }
        }
    }

    /// Resolves `extends` between services of this project (chains up to
    /// [`MAX_EXTENDS`]); returns the services whose base could not be found
    /// here (another file's, missing, or in a loop), with their base's name.
    pub fn resolve_extends(&mut self) -> Vec<(String, String)> {
        let mut unresolved = Vec::new();
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            let mut chain = Vec::new();
            let mut cur = name.clone();
            let mut ok = true;
            while let Some((base, None)) = self.services.get(&cur).and_then(|s| s.extends.clone()) {
                if chain.len() >= MAX_EXTENDS || chain.contains(&base) || base == name {
                    unresolved.push((name.clone(), base));
                    ok = false;
                    break;
                }
                if !self.services.contains_key(&base) {
                    unresolved.push((name.clone(), base));
                    ok = false;
                    break;
                }
                chain.push(base.clone());
                cur = base;
            }
            if let Some((base, Some(_))) = self.services.get(&cur).and_then(|s| s.extends.clone()) {
                unresolved.push((name.clone(), base));
            }
            // Apply nearest base first, then its bases.
            for base in &chain {
                let b = self.services.get(base).cloned().unwrap_or_default();
                if let Some(svc) = self.services.get_mut(&name) {
                    svc.inherit(&b);
                }
            }
            if ok
                && let Some(svc) = self.services.get_mut(&name)
                && matches!(svc.extends, Some((_, None)))
            {
                svc.extends = None;
            }
        }
        unresolved
    }
}

/// Why a compose file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// Not YAML, or YAML of the wrong shape.
    #[error("{file}{}: {problem}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The file, as given by the caller.
        file: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },
    /// A variable could not be interpolated.
    #[error("{file}: service {service}: {source}")]
    Interpolate {
        /// The file.
        file: String,
        /// The service.
        service: String,
        /// What went wrong.
        source: InterpolateError,
    },
}

/// Reads the services of one compose file. `file` names it in errors and
/// evidence; `lookup` gives the variables (see [`interpolate`]).
pub fn parse_compose(
    file: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ComposeProject, ComposeError> {
    use serde_yaml_ng::Value;
    let syntax = |line: Option<usize>, problem: String| ComposeError::Syntax {
        file: file.to_owned(),
        line,
        problem,
    };
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        syntax(line, e.to_string())
    })?;
    let mut project = ComposeProject {
        files: vec![file.to_owned()],
        ..ComposeProject::default()
    };
    if let Value::Mapping(m) = &doc {
        // `include:` - a list of paths, or of mappings whose `path` is a
        // path or a list of them.
        if let Some(Value::Sequence(items)) = m.get("include") {
            for it in items {
                match it {
                    Value::String(p) => project.includes.push(p.clone()),
                    Value::Mapping(im) => match im.get("path") {
                        Some(Value::String(p)) => project.includes.push(p.clone()),
                        Some(Value::Sequence(ps)) => project
                            .includes
                            .extend(ps.iter().filter_map(|p| p.as_str().map(str::to_owned))),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
    }
    let services = match &doc {
        Value::Mapping(m) => match m.get("services") {
            Some(Value::Mapping(s)) => s.clone(),
            Some(Value::Null) | None => return Ok(project),
            Some(_) => {
                return Err(syntax(
                    line_of_key(text, "services", 0),
                    "`services` is not a mapping".into(),
                ));
            }
        },
        Value::Null => return Ok(project),
        _ => {
            return Err(syntax(
                Some(1),
                "the file is not a mapping of top-level keys".into(),
            ));
        }
    };
    for (k, v) in services {
        let Some(name) = k.as_str().map(str::to_owned) else {
            return Err(syntax(None, format!("a service name is not a string: {k:?}")));
        };
        let svc_line = line_of_key(text, &name, 1);
        let Value::Mapping(body) = v else {
            if v.is_null() {
                continue;
            }
            return Err(syntax(svc_line, format!("service {name} is not a mapping")));
        };
        let interp = |s: &str, missing: &mut Vec<String>| {
            interpolate(s, lookup)
                .map(|r| {
                    for m in r.missing {
                        let m = format!("{m} (service {name})");
                        if !missing.contains(&m) {
                            missing.push(m);
                        }
                    }
                    r.text
                })
                .map_err(|source| ComposeError::Interpolate {
                    file: file.to_owned(),
                    service: name.clone(),
                    source,
                })
        };
        let mut svc = ComposeService {
            name: name.clone(),
            ..ComposeService::default()
        };
        match body.get("image") {
            Some(Value::String(s)) => {
                svc.image = Some(interp(s, &mut project.missing_variables)?);
                let line = svc_line.and_then(|l| line_of_key_after(text, "image", l));
                svc.image_source = Some(match line {
                    Some(l) => format!("{file}:{l}"),
                    None => file.to_owned(),
                });
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(syntax(
                    svc_line,
                    format!("service {name}: `image` is not a string"),
                ));
            }
        }
        if let Some(Value::String(s)) = body.get("container_name") {
            svc.container_name = Some(interp(s, &mut project.missing_variables)?);
        }
        match body.get("labels") {
            Some(Value::Mapping(m)) => {
                for (lk, lv) in m {
                    let Some(lk) = lk.as_str() else { continue };
                    let lv = match lv {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => String::new(),
                    };
                    let lv = interp(&lv, &mut project.missing_variables)?;
                    svc.labels.insert(lk.to_owned(), lv);
                }
            }
            Some(Value::Sequence(items)) => {
                for it in items {
                    if let Some(s) = it.as_str() {
                        let (lk, lv) = s.split_once('=').unwrap_or((s, ""));
                        let lv = interp(lv, &mut project.missing_variables)?;
                        svc.labels.insert(lk.to_owned(), lv);
                    }
                }
            }
            _ => {}
        }
        match body.get("profiles") {
            Some(Value::Sequence(ps)) => {
                for p in ps.iter().filter_map(Value::as_str) {
                    svc.profiles.push(interp(p, &mut project.missing_variables)?);
                }
            }
            Some(Value::String(p)) => svc.profiles.push(interp(p, &mut project.missing_variables)?),
            _ => {}
        }
        match body.get("extends") {
            Some(Value::String(base)) => svc.extends = Some((base.clone(), None)),
            Some(Value::Mapping(em)) => {
                if let Some(base) = em.get("service").and_then(Value::as_str) {
                    let file = em
                        .get("file")
                        .and_then(Value::as_str)
                        .map(|f| interp(f, &mut project.missing_variables))
                        .transpose()?;
                    svc.extends = Some((base.to_owned(), file));
                }
            }
            _ => {}
        }
        project.services.insert(name, svc);
    }
    Ok(project)
}

/// The 1-based line of `key:` indented more than `min_indent - 1` spaces
/// (0: any indentation), for evidence; `None` when not found.
fn line_of_key(text: &str, key: &str, min_indent: usize) -> Option<usize> {
    text.lines().enumerate().find_map(|(i, l)| {
        let t = l.trim_start();
        let indent = l.len() - t.len();
        let k = t.trim_start_matches(['"', '\'']);
        (indent >= min_indent
            && k.starts_with(key)
            && k[key.len()..].trim_start_matches(['"', '\'']).starts_with(':'))
        .then_some(i + 1)
    })
}

/// The first line after `after` (1-based) holding `key:`.
fn line_of_key_after(text: &str, key: &str, after: usize) -> Option<usize> {
    let pat = format!("{key}:");
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.trim_start().starts_with(&pat))
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn interpolation_table() {
        let v = vars(&[
            ("TZ", "Europe/Berlin"),
            ("EMPTY", ""),
            ("NET", "172.22.1"),
            ("X", "x$y"),
        ]);
        for (input, want) in [
            ("${TZ}", "Europe/Berlin"),
            ("$TZ/zone", "Europe/Berlin/zone"),
            ("${NET:-10.0.0}.254", "172.22.1.254"),
            ("${UNSET:-172.22.1}.254", "172.22.1.254"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${UNSET-dflt}", "dflt"),
            ("${UNSET:-}", ""),
            ("${UNSET:-${TZ}}", "Europe/Berlin"),
            ("${UNSET:-${ALSO:-deep}}", "deep"),
            ("${TZ:+set}", "set"),
            ("${EMPTY:+set}", ""),
            ("${EMPTY+set}", "set"),
            ("$${MASTER} == y", "${MASTER} == y"),
            ("$$", "$"),
            ("cost: 5$", "cost: 5$"),
            ("$1 $ x", "$1 $ x"),
            ("${X}", "x$y"),
            ("no vars", "no vars"),
        ] {
            let got = interpolate(input, &v).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.text, want, "{input}");
        }
        let r = interpolate("${A}-${B:-b}-${A}", &v).unwrap();
        assert_eq!((r.text.as_str(), r.missing), ("-b-", vec!["A".to_owned()]));
        assert_eq!(interpolate("${TZ", &v), Err(InterpolateError::Unclosed(0)));
        assert!(matches!(
            interpolate("${}", &v),
            Err(InterpolateError::BadName(_))
        ));
        assert!(matches!(
            interpolate("${A B}", &v),
            Err(InterpolateError::BadName(_))
        ));
        assert_eq!(
            interpolate("${DBPASS:?set DBPASS in mailcow.conf}", &v),
            Err(InterpolateError::Required {
                name: "DBPASS".into(),
                message: "set DBPASS in mailcow.conf".into()
            })
        );
        assert!(interpolate("${EMPTY?x}", &v).is_ok());
        let deep = "${A:-".repeat(20) + &"}".repeat(20);
        assert_eq!(interpolate(&deep, &v), Err(InterpolateError::TooDeep));
    }

    #[test]
    fn env_files() {
        let e = parse_env(
            "# mailcow.conf\nMAILCOW_HOSTNAME=mail.example.org\nexport TZ=Europe/Berlin\n\
             DBPASS='se cr#et'\nQ=\"a \\\"b\\\"\" # c\nU=plain # comment\nbad line\n1X=no\nTZ=UTC\n",
        );
        assert_eq!(e["MAILCOW_HOSTNAME"], "mail.example.org");
        assert_eq!(e["TZ"], "UTC");
        assert_eq!(e["DBPASS"], "se cr#et");
        assert_eq!(e["Q"], "a \"b\"");
        assert_eq!(e["U"], "plain");
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn image_references_and_pins() {
        use PinKind::*;
        for (r, canonical, kind, db) in [
            (
                "mariadb:10.11",
                "docker.io/library/mariadb:10.11",
                FloatingVersion,
                true,
            ),
            (
                "mariadb:10.11.6",
                "docker.io/library/mariadb:10.11.6",
                Version,
                true,
            ),
            (
                "mariadb:10.11.6-jammy",
                "docker.io/library/mariadb:10.11.6-jammy",
                Version,
                true,
            ),
            ("mariadb", "docker.io/library/mariadb:latest", Floating, true),
            (
                "mariadb:latest",
                "docker.io/library/mariadb:latest",
                Floating,
                true,
            ),
            (
                "docker.io/library/mariadb:10.5",
                "docker.io/library/mariadb:10.5",
                FloatingVersion,
                true,
            ),
            ("alpine", "docker.io/library/alpine:latest", Floating, false),
            ("redis:alpine", "docker.io/library/redis:alpine", Floating, true),
            (
                "redis:7.4.6-alpine",
                "docker.io/library/redis:7.4.6-alpine",
                Version,
                true,
            ),
            (
                "postgres:16",
                "docker.io/library/postgres:16",
                FloatingVersion,
                true,
            ),
            (
                "ghcr.io/mailcow/clamd:1.71",
                "ghcr.io/mailcow/clamd:1.71",
                Version,
                false,
            ),
            (
                "ghcr.io/mailcow/unbound:1.25.1-1",
                "ghcr.io/mailcow/unbound:1.25.1-1",
                Version,
                false,
            ),
            (
                "mcuadros/ofelia:latest",
                "docker.io/mcuadros/ofelia:latest",
                Floating,
                false,
            ),
            (
                "containrrr/watchtower",
                "docker.io/containrrr/watchtower:latest",
                Floating,
                false,
            ),
            (
                "localhost:5000/db/mariadb:10.11",
                "localhost:5000/db/mariadb:10.11",
                FloatingVersion,
                true,
            ),
            (
                "mariadb@sha256:0123456789abcdef",
                "docker.io/library/mariadb@sha256:0123456789abcdef",
                Digest,
                true,
            ),
            (
                "mariadb:10.11@sha256:0123",
                "docker.io/library/mariadb:10.11@sha256:0123",
                Digest,
                true,
            ),
        ] {
            let i = ImageRef::parse(r).unwrap_or_else(|| panic!("{r}"));
            assert_eq!(i.canonical(), canonical, "{r}");
            assert_eq!(i.pin(), kind, "{r}");
            assert_eq!(i.is_database(), db, "{r}");
        }
        for bad in ["", " ", "a b", "mariadb:", "@sha256:1", "x@"] {
            assert_eq!(ImageRef::parse(bad), None, "{bad:?}");
        }
    }

    /// A small compose project of our own: variables, labels in both forms,
    /// a service without image, an override.
    const SNIPPET: &str = "\
services:
  mysql-mailcow:
    image: mariadb:${MARIADB_TAG:-10.11}
    labels:
      com.centurylinklabs.watchtower.enable: \"false\"
      ofelia.job: \"$${MASTER}\"
  redis-mailcow:
    image: redis:7.4.6-alpine
    labels:
      - \"project=${COMPOSE_PROJECT_NAME}\"
  built:
    build: ./x
networks:
  n: {}
";

    #[test]
    fn compose_snippet_with_override() {
        let v = vars(&[("COMPOSE_PROJECT_NAME", "mailcowdockerized")]);
        let mut p = parse_compose("docker-compose.yml", SNIPPET, &v).unwrap();
        let db = &p.services["mysql-mailcow"];
        assert_eq!(db.image.as_deref(), Some("mariadb:10.11"));
        assert_eq!(db.image_source.as_deref(), Some("docker-compose.yml:3"));
        assert_eq!(db.labels["com.centurylinklabs.watchtower.enable"], "false");
        assert_eq!(db.labels["ofelia.job"], "${MASTER}");
        assert_eq!(p.services["redis-mailcow"].labels["project"], "mailcowdockerized");
        assert_eq!(p.services["built"].image, None);
        let over = parse_compose(
            "docker-compose.override.yml",
            "services:\n  mysql-mailcow:\n    image: mariadb:10.11.6\n  extra:\n    image: ${IMG}\n",
            &v,
        )
        .unwrap();
        p.merge(over);
        let db = &p.services["mysql-mailcow"];
        assert_eq!(db.image.as_deref(), Some("mariadb:10.11.6"));
        assert_eq!(db.image_source.as_deref(), Some("docker-compose.override.yml:3"));
        assert_eq!(db.labels.len(), 2, "labels of the base are kept");
        assert_eq!(p.services["extra"].image.as_deref(), Some(""));
        assert_eq!(p.missing_variables, vec!["IMG (service extra)".to_owned()]);
        assert_eq!(p.files.len(), 2);
    }

    #[test]
    fn extends_chains_and_loops() {
        let text = "services:\n  a:\n    extends: b\n  b:\n    extends: {service: c}\n  c:\n    image: redis:7.2.4\n    labels: [x=1]\n  l1:\n    extends: l2\n  l2:\n    extends: l1\n  f:\n    extends: {service: web, file: other.yml}\n";
        let mut p = parse_compose("c.yml", text, &|_| None).unwrap();
        let mut un = p.resolve_extends();
        un.sort();
        assert_eq!(p.services["a"].image.as_deref(), Some("redis:7.2.4"));
        assert_eq!(p.services["a"].labels["x"], "1");
        assert_eq!(p.services["a"].extends, None);
        assert_eq!(p.services["l1"].image, None);
        assert!(p.services["l1"].extends.is_some(), "a loop stays unresolved");
        let pairs: Vec<(&str, &str)> = un.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(pairs, [("f", "web"), ("l1", "l1"), ("l2", "l2")]);
        assert_eq!(
            p.services["f"].extends,
            Some(("web".to_owned(), Some("other.yml".to_owned())))
        );
    }

    #[test]
    fn compose_errors_name_file_and_line() {
        let v = vars(&[]);
        let e = parse_compose("dc.yml", "services:\n  a:\n    image: [x\n  b: 1\n", &v).unwrap_err();
        let ComposeError::Syntax { file, line, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(file, "dc.yml");
        assert!(line.is_some_and(|l| (3..=5).contains(&l)), "{e}");
        assert!(e.to_string().starts_with("dc.yml:"), "{e}");
        let e = parse_compose("dc.yml", "services:\n  a:\n    image: [x]\n", &v).unwrap_err();
        assert_eq!(e.to_string(), "dc.yml:2: service a: `image` is not a string");
        let e = parse_compose("dc.yml", "services:\n  a:\n    image: ${X\n", &v).unwrap_err();
        assert!(matches!(e, ComposeError::Interpolate { .. }), "{e}");
        assert!(parse_compose("dc.yml", "- a\n", &v).is_err());
        assert!(parse_compose("dc.yml", "", &v).unwrap().services.is_empty());
        assert!(parse_compose("dc.yml", "services: 3\n", &v).is_err());
    }

    #[test]
    fn real_mailcow_compose_files() {
        let dir = std::path::Path::new("/work/shared/corpus/host/mailcow");
        if !dir.is_dir() {
            eprintln!("SKIPPED: {} is absent", dir.display());
            return;
        }
        let conf = parse_env("COMPOSE_PROJECT_NAME=mailcowdockerized\nTZ=Europe/Berlin\nDBPASS=x\n");
        let v = move |k: &str| conf.get(k).cloned();
        let read = |f: &str| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            parse_compose(f, &text, &v).unwrap()
        };
        let old = read("docker-compose.4ac541f67-parent.mariadb-10.5.yml");
        let new = read("docker-compose.4ac541f67.mariadb-10.11.yml");
        let head = read("docker-compose.HEAD-06424670.yml");
        let pin = |p: &ComposeProject| p.services["mysql-mailcow"].image.clone().unwrap();
        assert_eq!(pin(&old), "mariadb:10.5");
        assert_eq!(pin(&new), "mariadb:10.11");
        assert_eq!(pin(&head), "mariadb:10.11");
        assert_eq!(
            head.services["mysql-mailcow"].image_source.as_deref(),
            Some("docker-compose.HEAD-06424670.yml:20")
        );
        for p in [&old, &new] {
            let i = ImageRef::parse(&pin(p)).unwrap();
            assert_eq!((i.pin(), i.is_database()), (PinKind::FloatingVersion, true));
        }
        // Every service's image parses; memcached:alpine and ofelia:latest float besides MariaDB.
        let floating: Vec<&str> = head
            .services
            .values()
            .filter(|s| {
                let i = ImageRef::parse(s.image.as_deref().unwrap()).unwrap();
                i.pin() >= PinKind::FloatingVersion
            })
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(floating, ["memcached-mailcow", "mysql-mailcow", "ofelia-mailcow"]);
        assert!(head.services.len() > 15);
        // `$${MASTER}` in ofelia's labels stays a literal for the shell.
        let sogo = &head.services["sogo-mailcow"];
        assert!(
            sogo.labels.values().any(|l| l.contains("[[ ${MASTER} == y ]]")),
            "{:?}",
            sogo.labels
        );
    }

    proptest! {
        #[test]
        fn interpolate_never_panics(s in "\\PC{0,80}", t in proptest::collection::vec(prop_oneof![
            Just("$"), Just("{"), Just("}"), Just(":-"), Just("-"), Just("?"), Just(":+"),
            Just("A"), Just("B_1"), Just("$$"), Just("${"), Just("é")], 0..40)) {
            let v = vars(&[("A", "${B_1}"), ("B_1", "")]);
            let _ = interpolate(&s, &v);
            let _ = interpolate(&t.concat(), &v);
            let _ = parse_env(&s);
        }

        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]{0,100}") {
            let r = interpolate(&s, &vars(&[])).unwrap();
            prop_assert_eq!(r.text, s);
        }

        #[test]
        fn escaped_dollars_round_trip(s in "\\PC{0,60}") {
            // Escaping every `$` as `$$` gives back the text exactly.
            let r = interpolate(&s.replace('$', "$$"), &vars(&[("A", "z")])).unwrap();
            prop_assert_eq!(r.text, s);
        }

        #[test]
        fn defaults_apply_only_when_missing(name in "[A-Z_][A-Z0-9_]{0,8}", val in "[a-z0-9.]{0,8}", d in "[a-z0-9.]{0,8}") {
            let set = vars(&[(name.as_str(), val.as_str())]);
            let none = vars(&[]);
            let colon = format!("${{{name}:-{d}}}");
            let plain = format!("${{{name}-{d}}}");
            prop_assert_eq!(interpolate(&colon, &none).unwrap().text, d.clone());
            prop_assert_eq!(interpolate(&plain, &none).unwrap().text, d.clone());
            let want = if val.is_empty() { d.clone() } else { val.clone() };
            prop_assert_eq!(interpolate(&colon, &set).unwrap().text, want);
            prop_assert_eq!(interpolate(&plain, &set).unwrap().text, val);
        }

        #[test]
        fn compose_and_image_parsers_never_panic(s in "\\PC{0,200}", b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let v = vars(&[]);
            let _ = parse_compose("f.yml", &s, &v);
            let _ = parse_compose("f.yml", &String::from_utf8_lossy(&b), &v);
            if let Some(i) = ImageRef::parse(&s) {
                let _ = (i.pin(), i.canonical());
            }
        }
    }
}
