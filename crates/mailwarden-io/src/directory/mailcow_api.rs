//! The directory read through Mailcow's HTTP API (read-only key).
//!
//! Four `GET` requests — `/api/v1/get/domain/all`, `mailbox/all`,
//! `alias/all` and `alias-domain/all` — with the key in the `X-API-Key`
//! header. The answer is turned into an [`AddressList`] (same lookup order
//! and send-as semantics as the list file and the database source), plus
//! what the list format cannot hold: inactive entries (reported in the
//! notes, as the database source does) and the mailboxes' `sender_acl`
//! (returned by the API since mailcow PR #7348, July 2026; older releases
//! omit it, and the notes say that send-as rights beyond aliases and
//! catch-alls are then unknown).
//!
//! **An authentication failure is never retried**: Mailcow's netfilter
//! counts failed API logins and bans the caller's address. The first 401 or
//! 403 (or an error body saying the key was refused) stops all requests.
//!
//! The HTTP exchange uses hyper's client connection over a plain TCP or a
//! rustls stream: the request is a handful of fixed GETs, and the crate
//! avoids a second TLS stack and connection pool for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;

use super::{Addr, AddressInfo, AddressList, DirectoryError};

/// Largest API answer read (a big installation's alias list fits easily).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How to reach the Mailcow API.
#[derive(Clone, Serialize)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://mail.example.com` (a path prefix is kept).
    pub url: String,
    /// The API key (read-only is enough). Never serialized or printed.
    #[serde(skip_serializing)]
    pub key: String,
    /// Extra PEM trust anchors (a self-signed Mailcow certificate).
    pub ca_file: Option<PathBuf>,
    /// Connect to this address instead of resolving the URL's host (the TLS
    /// name and `Host:` stay the URL's).
    pub connect_to: Option<std::net::SocketAddr>,
    /// Per-request time limit.
    pub timeout: Duration,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("connect_to", &self.connect_to)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Everything fetched, ready for lookups.
#[derive(Debug, Clone)]
pub(super) struct ApiDirectory {
    list: AddressList,
    /// Inactive entries: address or `@domain` → what it was.
    inactive: BTreeMap<String, String>,
    /// Mailbox → its `sender_acl` (`None`: the API did not say).
    sender_acl: BTreeMap<String, Option<Vec<String>>>,
    source: String,
}

pub(super) async fn lookup(cfg: &ApiConfig, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
    fetch(cfg).await?.lookup(addr)
}

pub(super) async fn our_domains(cfg: &ApiConfig) -> Result<Vec<String>, DirectoryError> {
    Ok(fetch(cfg).await?.list.domains())
}

impl ApiDirectory {
    /// The address list and the source's name.
    pub(super) fn into_list(self) -> (AddressList, String) {
        (self.list, self.source)
    }

    fn lookup(&self, addr: &Addr) -> Result<AddressInfo, DirectoryError> {
        let mut info = self.list.lookup_addr(addr)?;
        info.source = self.source.clone();
        for key in [addr.full.clone(), format!("@{}", addr.domain)] {
            if let Some(what) = self.inactive.get(&key) {
                info.notes.push(format!("{what} exists but is inactive"));
            }
        }
        let mut extra = BTreeSet::new();
        let mut unknown_acl = false;
        for (mailbox, acl) in &self.sender_acl {
            match acl {
                None => unknown_acl = true,
                Some(entries) => {
                    if entries.iter().any(|e| acl_covers(e, addr)) {
                        extra.insert(mailbox.clone());
                    }
                }
            }
        }
        for m in extra {
            if !info.may_send_as.contains(&m) {
                info.notes
                    .push(format!("{m} may send as it through its sender_acl"));
                info.may_send_as.push(m);
            }
        }
        info.may_send_as.sort();
        if unknown_acl {
            info.notes.push(
                "this Mailcow API does not return sender_acl (added in July 2026): accounts allowed to send as the address through sender ACLs are not listed; use the database source (--mailcow-dir) for them"
                    .to_owned(),
            );
        }
        Ok(info)
    }
}

/// Whether a `sender_acl.send_as` entry lets its owner send as `addr`.
fn acl_covers(entry: &str, addr: &Addr) -> bool {
    let e = entry.trim().to_ascii_lowercase();
    e == "*" || e == addr.full || e.strip_prefix('@') == Some(addr.domain.as_str())
}

/// Fetches the four lists; stops at the first authentication failure.
pub(super) async fn fetch(cfg: &ApiConfig) -> Result<ApiDirectory, DirectoryError> {
    let client = Client::new(cfg)?;
    let domains = client.get_list("domain/all").await?;
    let mailboxes = client.get_list("mailbox/all").await?;
    let aliases = client.get_list("alias/all").await?;
    let alias_domains = client.get_list("alias-domain/all").await?;
    build(&client.base, &domains, &mailboxes, &aliases, &alias_domains)
}

/// Turns the API's JSON into an address list (as list-file text, so that
/// the list file's parser and checks apply unchanged) and the extras.
fn build(
    base: &str,
    domains: &[Value],
    mailboxes: &[Value],
    aliases: &[Value],
    alias_domains: &[Value],
) -> Result<ApiDirectory, DirectoryError> {
    let mut text = String::new();
    let mut inactive = BTreeMap::new();
    let mut sender_acl = BTreeMap::new();
    let mut mailbox_set = BTreeSet::new();
    // `@domain` may be defined once in a list: a domain with a catch-all is
    // declared by it, the others alone at the end.
    let mut active_domains = BTreeSet::new();
    let mut defined_at = BTreeSet::new();
    for d in domains {
        if let Some(name) = str_field(d, &["domain_name", "domain"]) {
            if is_active(d) {
                active_domains.insert(name);
            } else {
                inactive.insert(format!("@{name}"), format!("domain {name}"));
            }
        }
    }
    for m in mailboxes {
        let Some(user) = str_field(m, &["username"]) else {
            continue;
        };
        // Mailcow's mailbox `active`: 1 active, 2 receives but cannot log
        // in, 0 disabled; the maps accept 1 and 2.
        if active_value(m) == Some(0) {
            inactive.insert(user.clone(), format!("mailbox {user}"));
            continue;
        }
        mailbox_set.insert(user.clone());
        text.push_str(&format!("{user}\n"));
        let acl = m.get("sender_acl").map(|v| match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => s
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        });
        sender_acl.insert(user, acl);
    }
    for a in aliases {
        let Some(address) = str_field(a, &["address"]) else {
            continue;
        };
        let targets = str_field(a, &["goto"]).unwrap_or_default();
        // A mailbox's own alias row (with forwarding targets) is not an alias.
        if mailbox_set.contains(&address) {
            continue;
        }
        if !is_active(a) {
            inactive.insert(address.clone(), format!("alias {address}"));
            continue;
        }
        let targets: Vec<&str> = targets
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if targets.is_empty() {
            continue;
        }
        text.push_str(&format!("{address}: {}\n", targets.join(", ")));
        defined_at.insert(address);
    }
    for d in alias_domains {
        let (Some(alias), Some(target)) = (str_field(d, &["alias_domain"]), str_field(d, &["target_domain"]))
        else {
            continue;
        };
        if is_active(d) && defined_at.insert(format!("@{alias}")) {
            text.push_str(&format!("@{alias}: {target}\n"));
        } else if !is_active(d) {
            inactive.insert(format!("@{alias}"), format!("alias domain {alias}"));
        }
    }
    for d in active_domains {
        if !defined_at.contains(&format!("@{d}")) {
            text.push_str(&format!("@{d}\n"));
        }
    }
    let source = format!("mailcow-api {base}");
    let list =
        AddressList::parse(&PathBuf::from(&source), text.as_bytes()).map_err(|e| DirectoryError::Api {
            url: base.to_owned(),
            problem: format!("the API's directory is inconsistent: {e}"),
            fix: "check the entry in the Mailcow UI".to_owned(),
        })?;
    Ok(ApiDirectory {
        list,
        inactive,
        sender_acl,
        source,
    })
}

fn str_field(v: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| v.get(*n).and_then(Value::as_str))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// `active` as a number: Mailcow returns it as a number or a string.
fn active_value(v: &Value) -> Option<i64> {
    match v.get("active_int").or_else(|| v.get("active"))? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn is_active(v: &Value) -> bool {
    active_value(v).is_none_or(|a| a != 0)
}

/// One connection per request (four requests; no pool needed).
struct Client {
    base: String,
    scheme_https: bool,
    host: String,
    port: u16,
    prefix: String,
    key: String,
    connect_to: Option<std::net::SocketAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Client {
    fn new(cfg: &ApiConfig) -> Result<Client, DirectoryError> {
        let bad = |problem: String| DirectoryError::Config {
            problem,
            fix: "give the Mailcow URL like https://mail.example.com".to_owned(),
        };
        let uri: hyper::Uri = cfg
            .url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| bad(format!("--mailcow-api {:?} is not a URL: {e}", cfg.url)))?;
        let scheme_https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(bad(format!(
                    "--mailcow-api {:?}: use http:// or https://",
                    cfg.url
                )));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| bad(format!("--mailcow-api {:?} has no host", cfg.url)))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if scheme_https { 443 } else { 80 });
        if cfg.key.trim().is_empty() {
            return Err(DirectoryError::Config {
                problem: "no Mailcow API key".to_owned(),
                fix: "create a read-only API key in the Mailcow UI (System → Configuration → Access → API) and put it in MAILCOW_API_KEY or a file given with --mailcow-api-key-file".to_owned(),
            });
        }
        let tls = if scheme_https {
            let https = crate::audit::mta_sts::HttpsConfig {
                extra_roots: cfg.ca_file.iter().cloned().collect(),
                ..crate::audit::mta_sts::HttpsConfig::default()
            };
            Some(
                crate::audit::mta_sts::tls_client_config(&https).map_err(|e| DirectoryError::Config {
                    problem: format!("TLS trust anchors: {e}"),
                    fix: "give a readable PEM file with --mailcow-api-ca".to_owned(),
                })?,
            )
        } else {
            None
        };
        Ok(Client {
            base: format!(
                "{}://{}{}",
                if scheme_https { "https" } else { "http" },
                uri.authority().map(|a| a.as_str()).unwrap_or(&host),
                uri.path().trim_end_matches('/')
            ),
            scheme_https,
            host,
            port,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            key: cfg.key.trim().to_owned(),
            connect_to: cfg.connect_to,
            tls,
            timeout: if cfg.timeout.is_zero() {
                Duration::from_secs(30)
            } else {
                cfg.timeout
            },
        })
    }

    /// `GET /api/v1/get/WHAT`, as a list of objects.
    async fn get_list(&self, what: &str) -> Result<Vec<Value>, DirectoryError> {
        let path = format!("{}/api/v1/get/{what}", self.prefix);
        let url = format!("{}/api/v1/get/{what}", self.base);
        let fail = |problem: String, fix: &str| DirectoryError::Api {
            url: url.clone(),
            problem,
            fix: fix.to_owned(),
        };
        let (status, body) = tokio::time::timeout(self.timeout, self.get(&path))
            .await
            .map_err(|_| {
                fail(
                    format!("no answer within {} s", self.timeout.as_secs()),
                    "check that the Mailcow web server is up and reachable from here",
                )
            })?
            .map_err(|e| {
                fail(
                    e,
                    "check the URL and that the Mailcow web server is reachable from here",
                )
            })?;
        if status == 401 || status == 403 {
            return Err(DirectoryError::ApiAuth { url, status });
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            fail(
                format!("HTTP {status}, the answer is not JSON: {e}"),
                "check that the URL points at the Mailcow UI (not a proxy's error page)",
            )
        })?;
        if let Some(msg) = error_message(&value) {
            let lower = msg.to_ascii_lowercase();
            if lower.contains("authentication") || lower.contains("api") && lower.contains("denied") {
                return Err(DirectoryError::ApiAuth { url, status });
            }
            return Err(fail(
                format!("Mailcow answered an error: {msg}"),
                "see the Mailcow API log",
            ));
        }
        if !(200..300).contains(&status) {
            return Err(fail(
                format!("HTTP {status}"),
                "check the URL and the Mailcow version (API v1 is needed)",
            ));
        }
        Ok(match value {
            Value::Array(items) => items.into_iter().filter(Value::is_object).collect(),
            // An empty list comes back as `{}`; a single entry as an object.
            Value::Object(map) if map.is_empty() => Vec::new(),
            obj @ Value::Object(_) => vec![obj],
            _ => Vec::new(),
        })
    }

    async fn get(&self, path: &str) -> Result<(u16, Bytes), String> {
        let target = match self.connect_to {
            Some(addr) => addr,
            None => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("resolving {}: {e}", self.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", self.host))?,
        };
        let tcp = tokio::net::TcpStream::connect(target)
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        let host_header =
            if (self.scheme_https && self.port == 443) || (!self.scheme_https && self.port == 80) {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            };
        let request = hyper::Request::get(path)
            .header(HOST, host_header)
            .header("X-API-Key", &self.key)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("mailwarden/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        match &self.tls {
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("{}: not a TLS server name: {e}", self.host))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.host))?;
                exchange(TokioIo::new(stream), request).await
            }
            None => exchange(TokioIo::new(tcp), request).await,
        }
    }
}

async fn exchange<S>(io: TokioIo<S>, request: hyper::Request<Empty<Bytes>>) -> Result<(u16, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer (at most {MAX_BODY} bytes): {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

/// Mailcow's error objects: `{"type": "error", "msg": "…"}` (also in a list).
fn error_message(v: &Value) -> Option<String> {
    let obj = match v {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    if obj.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    Some(match obj.get("msg") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "unknown error".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ApiDirectory {
        build(
            "https://mail.example.com",
            &[json!({"domain_name": "example.com", "active": 1}), json!({"domain_name": "old.example", "active": "0"})],
            &[
                json!({"username": "alice@example.com", "active": 1, "sender_acl": ["@example.com"]}),
                json!({"username": "bob@example.com", "active": 2, "sender_acl": []}),
                json!({"username": "gone@example.com", "active": 0}),
            ],
            &[
                json!({"address": "team@example.com", "goto": "alice@example.com,bob@example.com", "active": 1}),
                json!({"address": "alice@example.com", "goto": "alice@example.com,alice@elsewhere.example", "active": 1}),
                json!({"address": "old@example.com", "goto": "bob@example.com", "active": 0}),
                json!({"address": "@example.com", "goto": "bob@example.com", "active": 1}),
            ],
            &[json!({"alias_domain": "example.net", "target_domain": "example.com", "active": 1})],
        )
        .unwrap()
    }

    #[test]
    fn api_answers_become_the_same_directory_semantics() {
        let dir = sample();
        let info = dir.lookup(&Addr::parse("team@example.com").unwrap()).unwrap();
        assert!(
            matches!(info.kind, super::super::AddressKind::Alias { .. }),
            "{info:?}"
        );
        assert_eq!(info.may_send_as, ["alice@example.com", "bob@example.com"]);
        assert_eq!(info.source, "mailcow-api https://mail.example.com");

        // No entry: the catch-all takes it; bob (its target) and alice
        // (sender_acl @example.com) may send as it.
        let info = dir.lookup(&Addr::parse("xyovt@example.com").unwrap()).unwrap();
        assert!(
            matches!(info.kind, super::super::AddressKind::CatchAll { .. }),
            "{info:?}"
        );
        assert_eq!(info.may_send_as, ["alice@example.com", "bob@example.com"]);
        assert!(
            info.notes
                .iter()
                .any(|n| n.contains("alice@example.com may send as it through its sender_acl"))
        );

        let info = dir.lookup(&Addr::parse("old@example.com").unwrap()).unwrap();
        assert!(
            info.notes
                .iter()
                .any(|n| n.contains("alias old@example.com exists but is inactive")),
            "{info:?}"
        );
        let info = dir.lookup(&Addr::parse("gone@example.com").unwrap()).unwrap();
        assert!(
            info.notes.iter().any(|n| n.contains("mailbox gone@example.com")),
            "{info:?}"
        );
        let info = dir.lookup(&Addr::parse("alice@example.net").unwrap()).unwrap();
        assert!(
            matches!(info.kind, super::super::AddressKind::DomainAlias { .. }),
            "{info:?}"
        );
    }

    #[test]
    fn missing_sender_acl_is_said() {
        let dir = build(
            "http://127.0.0.1:8080",
            &[json!({"domain_name": "example.com", "active": 1})],
            &[json!({"username": "alice@example.com", "active": 1})],
            &[],
            &[],
        )
        .unwrap();
        let info = dir.lookup(&Addr::parse("alice@example.com").unwrap()).unwrap();
        assert!(
            info.notes
                .iter()
                .any(|n| n.contains("does not return sender_acl")),
            "{info:?}"
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(&json!({"type": "error", "msg": "authentication failed"})).as_deref(),
            Some("authentication failed")
        );
        assert_eq!(
            error_message(&json!([{"type": "error", "msg": ["x"]}])).as_deref(),
            Some("[\"x\"]")
        );
        assert_eq!(error_message(&json!([])), None);
    }
}
