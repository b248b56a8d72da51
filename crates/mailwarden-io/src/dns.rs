//! A small DNS client for the posture audit (`mailwarden dns`) and the
//! DNSBL checks: typed lookups that keep the difference between "the name
//! does not exist" (NXDOMAIN), "the name exists but has no such record"
//! (NODATA) and "the lookup failed" (timeout, SERVFAIL, REFUSED) — the
//! audit needs all three apart (SPF void lookups count NXDOMAIN and NODATA;
//! a failed lookup is never read as "no record").
//!
//! Built on hickory-resolver; the resolver is the system's, or exactly one
//! configured server (`--resolver IP[:PORT]`), which is how tests point at a
//! private authoritative server on loopback. Every query is counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

/// How to reach DNS.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// One server to ask (recursion desired); `None` reads /etc/resolv.conf.
    pub server: Option<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Attempts per query (1 = no retry).
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            server: None,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// Parses `IP` or `IP:PORT` (`[v6]:PORT` too); port 53 by default.
pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "`{text}` is not a resolver address: give IP or IP:PORT, e.g. 127.0.0.1:5353 or [::1]:53"
    ))
}

/// The outcome of a lookup that reached an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// At least one record of the asked type.
    Records(Vec<T>),
    /// The name exists but holds no record of this type (NOERROR, empty).
    NoData,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
}

impl<T> Answer<T> {
    /// The records, empty for NODATA and NXDOMAIN.
    pub fn records(&self) -> &[T] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }

    /// Consumes the answer into its records.
    pub fn into_records(self) -> Vec<T> {
        match self {
            Answer::Records(r) => r,
            _ => Vec::new(),
        }
    }

    /// True for NODATA and NXDOMAIN: a "void lookup" in RFC 7208's terms.
    pub fn is_void(&self) -> bool {
        !matches!(self, Answer::Records(r) if !r.is_empty())
    }

    fn map<U>(self, f: impl FnMut(T) -> Option<U>) -> Answer<U> {
        match self {
            Answer::Records(r) => {
                let out: Vec<U> = r.into_iter().filter_map(f).collect();
                if out.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Records(out)
                }
            }
            Answer::NoData => Answer::NoData,
            Answer::NxDomain => Answer::NxDomain,
        }
    }
}

/// A lookup that got no usable answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// No answer within the timeout.
    #[error("{name} {rtype}: no answer within the timeout (is the resolver reachable?)")]
    Timeout {
        /// The queried name.
        name: String,
        /// The record type.
        rtype: String,
    },
    /// The server answered with an error code (SERVFAIL, REFUSED, …).
    #[error("{name} {rtype}: the server answered {code}")]
    Server {
        /// The queried name.
        name: String,
        /// The record type.
        rtype: String,
        /// The response code.
        code: String,
    },
    /// The name is not a valid domain name.
    #[error("`{name}` is not a valid domain name: {reason}")]
    BadName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Anything else (network errors, malformed answers).
    #[error("{name} {rtype}: {reason}")]
    Other {
        /// The queried name.
        name: String,
        /// The record type.
        rtype: String,
        /// Why.
        reason: String,
    },
}

/// Could not create a resolver.
#[derive(Debug, thiserror::Error)]
#[error("creating the DNS resolver: {0}")]
pub struct ResolverError(String);

/// The DNS client. Cheap to share by reference across concurrent lookups.
pub struct DnsClient {
    resolver: TokioResolver,
    queries: AtomicU64,
}

impl std::fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsClient")
            .field("queries", &self.queries.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl DnsClient {
    /// Builds the client. Needs a Tokio runtime when queries run.
    pub fn new(cfg: &DnsConfig) -> Result<DnsClient, ResolverError> {
        let (config, mut opts) = resolver_setup(cfg.server).map_err(ResolverError)?;
        opts.timeout = if cfg.timeout.is_zero() {
            Duration::from_millis(1)
        } else {
            cfg.timeout
        };
        opts.attempts = cfg.attempts.max(1);
        // Names are always asked fully qualified: no search-list expansion.
        opts.ndots = 0;
        opts.cache_size = 1024;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| ResolverError(e.to_string()))?;
        Ok(DnsClient {
            resolver,
            queries: AtomicU64::new(0),
        })
    }

    /// A client sharing this one's resolver (connections and cache) with a
    /// query counter of its own: one per audited domain, so each counts its
    /// own queries, while the resolver is built once (building one loads the
    /// platform's TLS roots, which costs more than a whole domain's lookups).
    pub fn fork(&self) -> DnsClient {
        DnsClient {
            resolver: self.resolver.clone(),
            queries: AtomicU64::new(0),
        }
    }

    /// How many queries this client has sent (cache hits included).
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Any record type, answers filtered to that type (CNAMEs followed).
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Answer<Record>, LookupError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let fqdn = fully_qualified(name);
        let rtype_text = rtype.to_string();
        let parsed =
            hickory_resolver::proto::rr::Name::from_ascii(&fqdn).map_err(|e| LookupError::BadName {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        match self.resolver.lookup(parsed, rtype).await {
            Ok(lookup) => {
                let records: Vec<Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect();
                if records.is_empty() {
                    Ok(Answer::NoData)
                } else {
                    Ok(Answer::Records(records))
                }
            }
            Err(e) => classify(e, name, &rtype_text),
        }
    }

    /// TXT records, each one's character-strings joined (RFC 7208 §3.3).
    /// Strings that are not UTF-8 are decoded lossily.
    pub async fn txt(&self, name: &str) -> Result<Answer<String>, LookupError> {
        Ok(self.lookup(name, RecordType::TXT).await?.map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        }))
    }

    /// The deprecated SPF RR type (99), as joined strings.
    pub async fn spf_rr(&self, name: &str) -> Result<Answer<String>, LookupError> {
        Ok(self
            .lookup(name, RecordType::Unknown(99))
            .await?
            .map(|r| match &r.data {
                RData::Unknown { rdata, .. } => Some(character_strings(&rdata.anything)),
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            }))
    }

    /// MX records as (preference, exchange without the trailing dot).
    pub async fn mx(&self, name: &str) -> Result<Answer<(u16, String)>, LookupError> {
        Ok(self.lookup(name, RecordType::MX).await?.map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange))),
            _ => None,
        }))
    }

    /// IPv4 addresses.
    pub async fn a(&self, name: &str) -> Result<Answer<IpAddr>, LookupError> {
        Ok(self.lookup(name, RecordType::A).await?.map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        }))
    }

    /// IPv6 addresses.
    pub async fn aaaa(&self, name: &str) -> Result<Answer<IpAddr>, LookupError> {
        Ok(self.lookup(name, RecordType::AAAA).await?.map(|r| match &r.data {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        }))
    }

    /// A and AAAA together; NXDOMAIN only when both say so.
    pub async fn addresses(&self, name: &str) -> Result<Answer<IpAddr>, LookupError> {
        let (v4, v6) = tokio::join!(self.a(name), self.aaaa(name));
        let (v4, v6) = (v4?, v6?);
        if matches!(v4, Answer::NxDomain) && matches!(v6, Answer::NxDomain) {
            return Ok(Answer::NxDomain);
        }
        let mut all = v4.into_records();
        all.extend(v6.into_records());
        Ok(if all.is_empty() {
            Answer::NoData
        } else {
            Answer::Records(all)
        })
    }

    /// The CNAME target of `name` itself, if it is an alias.
    pub async fn cname(&self, name: &str) -> Result<Option<String>, LookupError> {
        let answer = self.lookup(name, RecordType::CNAME).await?;
        Ok(answer.records().iter().find_map(|r| match &r.data {
            RData::CNAME(c) => Some(name_text(&c.0)),
            _ => None,
        }))
    }

    /// Reverse names (PTR) of an address.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Answer<String>, LookupError> {
        let name = reverse_name(ip);
        Ok(self.lookup(&name, RecordType::PTR).await?.map(|r| match &r.data {
            RData::PTR(p) => Some(name_text(&p.0)),
            _ => None,
        }))
    }
}

/// The resolver configuration for one server (UDP with TCP fallback, no
/// hosts file), or the system's (`/etc/resolv.conf`) for `None`. Shared by
/// [`DnsClient`] and the mail-auth verifier.
pub(crate) fn resolver_setup(server: Option<SocketAddr>) -> Result<(ResolverConfig, ResolverOpts), String> {
    match server {
        None => hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("reading /etc/resolv.conf: {e} (give --resolver IP[:PORT])")),
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            let mut opts = ResolverOpts::default();
            opts.use_hosts_file = ResolveHosts::Never;
            Ok((ResolverConfig::from_name_servers(vec![server]), opts))
        }
    }
}

/// `4.3.2.1.in-addr.arpa` / nibble form for IPv6.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
                out.push('.');
                out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
                out.push('.');
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

/// The DNSBL query name for `ip` in `zone` (RFC 5782 §2.1, §2.4).
pub fn dnsbl_name(ip: IpAddr, zone: &str) -> String {
    let rev = reverse_name(ip);
    let stem = rev
        .strip_suffix(".in-addr.arpa")
        .or_else(|| rev.strip_suffix(".ip6.arpa"))
        .unwrap_or(&rev);
    format!("{stem}.{}", zone.trim_end_matches('.'))
}

fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn name_text(name: &hickory_resolver::proto::rr::Name) -> String {
    let text = name.to_ascii();
    text.strip_suffix('.').unwrap_or(&text).to_owned()
}

/// Decodes RFC 1035 character-strings (length-prefixed) and joins them.
fn character_strings(mut bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    while let Some((&len, rest)) = bytes.split_first() {
        let len = usize::from(len).min(rest.len());
        out.extend_from_slice(&rest[..len]);
        bytes = &rest[len..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn classify<T>(e: NetError, name: &str, rtype: &str) -> Result<Answer<T>, LookupError> {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(no)) => {
            if no.response_code == ResponseCode::NXDomain {
                Ok(Answer::NxDomain)
            } else if no.response_code == ResponseCode::NoError {
                Ok(Answer::NoData)
            } else {
                Err(LookupError::Server {
                    name: name.to_owned(),
                    rtype: rtype.to_owned(),
                    code: no.response_code.to_string(),
                })
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => {
            if code == ResponseCode::NXDomain {
                Ok(Answer::NxDomain)
            } else {
                Err(LookupError::Server {
                    name: name.to_owned(),
                    rtype: rtype.to_owned(),
                    code: code.to_string(),
                })
            }
        }
        NetError::Timeout => Err(LookupError::Timeout {
            name: name.to_owned(),
            rtype: rtype.to_owned(),
        }),
        other => Err(LookupError::Other {
            name: name.to_owned(),
            rtype: rtype.to_owned(),
            reason: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_and_dnsbl_names() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(reverse_name(v4), "99.2.0.192.in-addr.arpa");
        assert_eq!(dnsbl_name(v4, "zen.example."), "99.2.0.192.zen.example");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let rev = reverse_name(v6);
        assert!(rev.starts_with("1.0.0.0.0.0.0.0"), "{rev}");
        assert!(rev.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{rev}");
        assert!(dnsbl_name(v6, "bl.test").ends_with("8.b.d.0.1.0.0.2.bl.test"));
    }

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("127.0.0.1").unwrap().port(), 53);
        assert_eq!(parse_server("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_server("[::1]:54").unwrap().port(), 54);
        assert_eq!(parse_server("::1").unwrap().port(), 53);
        assert!(parse_server("dns.example").unwrap_err().contains("IP:PORT"));
    }

    #[test]
    fn character_strings_join() {
        assert_eq!(character_strings(b"\x03v=s\x04pf1 "), "v=spf1 ");
        // A length running past the end is clipped, never a panic.
        assert_eq!(character_strings(b"\x09ab"), "ab");
    }
}
