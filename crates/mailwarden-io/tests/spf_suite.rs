//! The OpenSPF RFC 7208 conformance suite (pyspf's `rfc7208-tests.yml`,
//! release 2014.04 with the 2019.08 additions) run through
//! [`mailwarden_io::spf_eval::check_spf`], with every scenario's zone data
//! served by a real private Knot server.
//!
//! How the suite's zone data is served (the pyspf test driver's rules):
//!
//! * all names of a scenario go into one root zone `.`, replaced per
//!   scenario, so every other name is a genuine NXDOMAIN;
//! * `SPF` entries are served as RR type 99 and, unless the name has a
//!   `TXT` entry, also as TXT ("auto-magic duplication"); `TXT: NONE` only
//!   stops that duplication;
//! * strings are the UTF-8 encoding of the YAML text (YAML's `"\x96"` is
//!   U+0096, so two bytes), one character-string per list item;
//! * `TIMEOUT` makes every query for the name whose type has no record
//!   listed before the marker go unanswered: the resolver asks a
//!   [`DnsFront`] that relays to Knot and drops those queries, so the
//!   resolver's own timeout fires;
//! * identical records are merged (DNS has no duplicate RRs, RFC 2181 §5).
//!
//! The test fails on any result that differs from [`KNOWN_FAILURES`] —
//! a new failure or a known failure that now passes. Run it with
//! `cargo test -p mailwarden-io --test spf_suite -- --nocapture` to see the
//! per-scenario table. The suite file is found at
//! `../shared/corpus/auth/pyspf/test/rfc7208-tests.yml` beside the checkout,
//! or wherever `MAILWARDEN_SPF_SUITE` points.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mailwarden_io::spf_eval::{SpfOutcome, SpfResult, check_spf};
use mailwarden_io::verify::VerifyConfig;
use mailwarden_testlab::{DnsFront, DnsServer, DnsZone, SilentName, master_file_name};
use proptest::prelude::*;
use serde_yaml_ng::Value;

/// Tests that fail, each with the reason (explained in `bench/spf-suite.md`).
/// None is caused by the harness: all are `mail-auth` 0.13.3 behaviour.
const KNOWN_FAILURES: &[(&str, &str)] = &[
    // Record syntax accepted that RFC 7208 rejects.
    ("control-char-policy", "M1: CR/LF/TAB accepted as term separators"),
    ("badip4", "M1: CR/LF/TAB accepted as term separators"),
    ("non-ascii-policy", "M2: non-ASCII record text not rejected"),
    ("non-ascii-mech", "M2: non-ASCII record text not rejected"),
    ("multitxt1", "M3: first of several SPF records used, no permerror"),
    ("multitxt2", "M3: first of several SPF records used, no permerror"),
    ("invalid-modifier", "M4: modifier name syntax not checked"),
    (
        "empty-modifier-name",
        "M4: an empty term name silently ends the record",
    ),
    (
        "modifier-charset-good",
        "M4: valid modifier with `.`/`-`/`_` and `/` rejected",
    ),
    (
        "redirect-after-mechanisms2",
        "M4: redirect target uses a valid modifier mail-auth rejects",
    ),
    ("invalid-domain", "M5: domain-spec toplabel not validated"),
    ("a-numeric", "M5: domain-spec toplabel not validated"),
    ("a-numeric-toplabel", "M5: domain-spec toplabel not validated"),
    ("a-only-toplabel", "M5: domain-spec toplabel not validated"),
    (
        "a-only-toplabel-trailing-dot",
        "M5: domain-spec toplabel not validated",
    ),
    ("mx-numeric-top-label", "M5: domain-spec toplabel not validated"),
    ("redirect-syntax-error", "M5: domain-spec toplabel not validated"),
    ("exp-syntax-error", "M5: domain-spec toplabel not validated"),
    ("a-colon-domain", "M6: `:`/`/` inside a domain-spec"),
    ("a-colon-domain-ip4mapped", "M6: `:`/`/` inside a domain-spec"),
    ("mx-colon-domain", "M6: `:`/`/` inside a domain-spec"),
    ("mx-colon-domain-ip4mapped", "M6: `:`/`/` inside a domain-spec"),
    ("a-bad-cidr4", "M7: bad CIDR length clamped, not rejected"),
    ("a-bad-cidr6", "M7: bad CIDR length clamped, not rejected"),
    ("mx-bad-cidr4", "M7: bad CIDR length clamped, not rejected"),
    ("mx-bad-cidr6", "M7: bad CIDR length clamped, not rejected"),
    ("cidr4-33", "M7: bad CIDR length clamped, not rejected"),
    ("cidr4-032", "M7: bad CIDR length clamped, not rejected"),
    ("cidr6-129", "M7: bad CIDR length clamped, not rejected"),
    ("a-dual-cidr-ip4-err", "M7: `a/24/64` read as a dual CIDR"),
    // Names the resolver cannot query.
    (
        "invalid-domain-empty-label",
        "M8: unqueryable target name is temperror",
    ),
    ("invalid-domain-long", "M8: unqueryable target name is temperror"),
    (
        "invalid-domain-long-via-macro",
        "M8: unqueryable target name is temperror",
    ),
    ("a-bad-domain", "M8: unqueryable target name is temperror"),
    ("mx-bad-domain", "M8: unqueryable target name is temperror"),
    ("a-null", "M8: unqueryable target name is temperror"),
    ("mx-null", "M8: unqueryable target name is temperror"),
    ("a-bad-toplabel", "M8: unqueryable target name is temperror"),
    ("mx-bad-toplab", "M8: unqueryable target name is temperror"),
    ("invalid-hello-macro", "M8: unqueryable target name is temperror"),
    ("hello-domain-literal", "M8: unqueryable target name is temperror"),
    (
        "macro-mania-in-domain",
        "M8: name with `%`/spaces cannot be queried",
    ),
    // Evaluation.
    ("cidr6-0-ip4", "M9: ip6 mechanism matches an IPv4 client"),
    ("cidr6-ip4", "M9: ip6 mechanism matches an IPv4 client"),
    ("exists-ip6only", "M10: exists also queries AAAA"),
    ("ptr-match-implicit", "M11: PTR names keep their trailing dot"),
    ("ptr-match-ip6", "M11: PTR names keep their trailing dot"),
    ("p-macro-multiple", "M11: PTR names keep their trailing dot"),
    ("p-macro-ip4-novalid", "M12: %{p} empty in explanations"),
    ("p-macro-ip4-valid", "M12: %{p} empty in explanations"),
    ("p-macro-ip6-novalid", "M12: %{p} empty in explanations"),
    ("p-macro-ip6-valid", "M12: %{p} empty in explanations"),
    ("void-over-limit", "M13: no void-lookup limit"),
    (
        "exp-multiple-txt",
        "M14: exp= with several TXT records uses the first",
    ),
    (
        "two-exp-records",
        "M14: exp= with several TXT records uses the first",
    ),
    (
        "domain-name-truncation",
        "M15: expanded names over 253 bytes not truncated",
    ),
    ("v-macro-ip6", "M16: lower-case hex in %{i} (text only)"),
    ("upper-macro", "M16: lower-case hex in URL escapes (text only)"),
];

/// The overall budget of one evaluation; each DNS query gets a quarter (so
/// a `TIMEOUT` name costs about 2 s).
const EVAL_TIMEOUT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------
// The suite file.

/// One YAML document of the suite: a scenario with its tests and zone data.
#[derive(Debug, Clone)]
struct Scenario {
    description: String,
    tests: Vec<TestCase>,
    /// Owner name → entries, in file order.
    zonedata: Vec<(String, Vec<ZoneEntry>)>,
}

#[derive(Debug, Clone)]
struct TestCase {
    name: String,
    spec: String,
    helo: String,
    host: IpAddr,
    mailfrom: String,
    /// Any of these results is acceptable.
    results: Vec<SpfResult>,
    /// Expected explanation; `DEFAULT` means "no exp= text".
    explanation: Option<String>,
}

/// One entry of a name's zone data.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ZoneEntry {
    /// Queries of types not listed before this marker go unanswered.
    Timeout,
    /// `TXT: NONE` / `SPF: NONE`: no record, but counts as "has TXT".
    None(RecordKind),
    Txt(Vec<Vec<u8>>),
    Spf(Vec<Vec<u8>>),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
    Cname(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RecordKind {
    Txt,
    Spf,
    A,
    Aaaa,
    Mx,
    Ptr,
    Cname,
}

impl RecordKind {
    fn from_name(name: &str) -> Option<RecordKind> {
        Some(match name {
            "TXT" => RecordKind::Txt,
            "SPF" => RecordKind::Spf,
            "A" => RecordKind::A,
            "AAAA" => RecordKind::Aaaa,
            "MX" => RecordKind::Mx,
            "PTR" => RecordKind::Ptr,
            "CNAME" => RecordKind::Cname,
            _ => return None,
        })
    }

    /// The RR type number.
    fn code(self) -> u16 {
        match self {
            RecordKind::A => 1,
            RecordKind::Cname => 5,
            RecordKind::Ptr => 12,
            RecordKind::Mx => 15,
            RecordKind::Txt => 16,
            RecordKind::Aaaa => 28,
            RecordKind::Spf => 99,
        }
    }
}

impl ZoneEntry {
    fn kind(&self) -> Option<RecordKind> {
        Some(match self {
            ZoneEntry::Timeout | ZoneEntry::None(_) => return None,
            ZoneEntry::Txt(_) => RecordKind::Txt,
            ZoneEntry::Spf(_) => RecordKind::Spf,
            ZoneEntry::A(_) => RecordKind::A,
            ZoneEntry::Aaaa(_) => RecordKind::Aaaa,
            ZoneEntry::Mx(..) => RecordKind::Mx,
            ZoneEntry::Ptr(_) => RecordKind::Ptr,
            ZoneEntry::Cname(_) => RecordKind::Cname,
        })
    }
}

/// Reads every YAML document of the suite. Errors name the document, the
/// test or owner name and the field.
fn parse_suite(text: &str) -> Result<Vec<Scenario>, String> {
    let mut scenarios = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("YAML document {}: {e}", i + 1))?;
        scenarios.push(parse_scenario(&value).map_err(|e| format!("YAML document {}: {e}", i + 1))?);
    }
    if scenarios.is_empty() {
        return Err("no YAML documents (is this the suite file?)".into());
    }
    Ok(scenarios)
}

/// A scalar (string, number, boolean) as text; the suite's `spec: 4.6` is
/// a YAML float.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_scenario(doc: &Value) -> Result<Scenario, String> {
    let map = doc.as_mapping().ok_or("the document is not a mapping")?;
    let mut description = String::new();
    let mut tests = Vec::new();
    let mut zonedata = Vec::new();
    for (key, value) in map {
        let key = key.as_str().ok_or("a top-level key is not a string")?;
        match key {
            "description" => description = scalar(value).ok_or("`description` is not text")?,
            "comment" => {}
            "tests" => {
                let cases = value.as_mapping().ok_or("`tests` is not a mapping")?;
                for (name, case) in cases {
                    let name = scalar(name).ok_or("a test name is not text")?;
                    tests.push(parse_test(&name, case).map_err(|e| format!("test `{name}`: {e}"))?);
                }
            }
            "zonedata" => {
                let names = value.as_mapping().ok_or("`zonedata` is not a mapping")?;
                for (name, entries) in names {
                    let name = scalar(name).ok_or("a zonedata name is not text")?;
                    let list = entries
                        .as_sequence()
                        .ok_or_else(|| format!("zonedata `{name}`: not a list of entries"))?;
                    let parsed = list
                        .iter()
                        .enumerate()
                        .map(|(j, e)| {
                            parse_entry(e).map_err(|err| format!("zonedata `{name}`, entry {}: {err}", j + 1))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    zonedata.push((name, parsed));
                }
            }
            other => {
                return Err(format!(
                    "unknown top-level key `{other}` (expected description, comment, tests, zonedata)"
                ));
            }
        }
    }
    if tests.is_empty() {
        return Err(format!("scenario `{description}` has no tests"));
    }
    Ok(Scenario {
        description,
        tests,
        zonedata,
    })
}

fn parse_test(name: &str, case: &Value) -> Result<TestCase, String> {
    let map = case.as_mapping().ok_or("not a mapping")?;
    let mut fields: BTreeMap<&str, &Value> = BTreeMap::new();
    for (k, v) in map {
        let k = k.as_str().ok_or("a field name is not a string")?;
        match k {
            "description" | "comment" | "strict" | "spec" | "helo" | "host" | "mailfrom" | "result"
            | "explanation" => {
                fields.insert(k, v);
            }
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    let text = |field: &str| -> Result<String, String> {
        let v = fields
            .get(field)
            .ok_or_else(|| format!("field `{field}` is missing"))?;
        scalar(v).ok_or_else(|| format!("field `{field}` is not text"))
    };
    let host_text = text("host")?;
    let host = host_text
        .parse::<IpAddr>()
        .map_err(|e| format!("field `host`: `{host_text}` is not an IP address ({e})"))?;
    let result_value = fields.get("result").ok_or("field `result` is missing")?;
    let result_texts: Vec<String> = match result_value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| scalar(v).ok_or("field `result`: a list item is not text".to_owned()))
            .collect::<Result<_, _>>()?,
        v => vec![scalar(v).ok_or("field `result` is not text or a list")?],
    };
    let results = result_texts
        .iter()
        .map(|r| r.parse::<SpfResult>().map_err(|e| format!("field `result`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if results.is_empty() {
        return Err("field `result` is an empty list".into());
    }
    let spec = match fields.get("spec") {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect::<Vec<_>>().join(", "),
        Some(v) => scalar(v).unwrap_or_default(),
        None => String::new(),
    };
    Ok(TestCase {
        name: name.to_owned(),
        spec,
        helo: text("helo")?,
        host,
        mailfrom: text("mailfrom")?,
        results,
        explanation: fields.get("explanation").and_then(|v| scalar(v)),
    })
}

/// One zonedata entry: `TIMEOUT`, or a one-key mapping `TYPE: value`.
fn parse_entry(entry: &Value) -> Result<ZoneEntry, String> {
    if let Value::String(s) = entry {
        return if s == "TIMEOUT" {
            Ok(ZoneEntry::Timeout)
        } else {
            Err(format!(
                "`{s}` is not an entry (expected TIMEOUT or `TYPE: value`)"
            ))
        };
    }
    let map = entry
        .as_mapping()
        .ok_or("expected TIMEOUT or a `TYPE: value` mapping")?;
    if map.len() != 1 {
        return Err(format!(
            "a mapping with {} keys; expected exactly one `TYPE: value`",
            map.len()
        ));
    }
    let (key, value) = map.iter().next().ok_or("empty mapping")?;
    let type_name = key.as_str().ok_or("the record type is not a string")?;
    let kind = RecordKind::from_name(type_name).ok_or_else(|| {
        format!("unknown record type `{type_name}` (expected TXT, SPF, A, AAAA, MX, PTR, CNAME)")
    })?;
    let text = || scalar(value).ok_or_else(|| format!("{type_name}: the value is not text"));
    Ok(match kind {
        RecordKind::Txt | RecordKind::Spf => {
            let strings: Vec<Vec<u8>> = match value {
                Value::String(s) if s == "NONE" => return Ok(ZoneEntry::None(kind)),
                Value::Sequence(items) => items
                    .iter()
                    .map(|v| scalar(v).map(String::into_bytes))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("{type_name}: a list item is not text"))?,
                v => vec![
                    scalar(v)
                        .ok_or_else(|| format!("{type_name}: the value is not text or a list"))?
                        .into_bytes(),
                ],
            };
            if kind == RecordKind::Txt {
                ZoneEntry::Txt(strings)
            } else {
                ZoneEntry::Spf(strings)
            }
        }
        RecordKind::A => {
            let t = text()?;
            ZoneEntry::A(
                t.parse()
                    .map_err(|e| format!("A: `{t}` is not an IPv4 address ({e})"))?,
            )
        }
        RecordKind::Aaaa => {
            let t = text()?;
            ZoneEntry::Aaaa(
                t.parse()
                    .map_err(|e| format!("AAAA: `{t}` is not an IPv6 address ({e})"))?,
            )
        }
        RecordKind::Mx => {
            let pair = value
                .as_sequence()
                .filter(|s| s.len() == 2)
                .ok_or("MX: expected [preference, exchange]")?;
            let pref = pair[0]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("MX: the preference is not a number from 0 to 65535")?;
            let exchange = scalar(&pair[1]).ok_or("MX: the exchange is not text")?;
            ZoneEntry::Mx(pref, exchange)
        }
        RecordKind::Ptr => ZoneEntry::Ptr(text()?),
        RecordKind::Cname => ZoneEntry::Cname(text()?),
    })
}

// ---------------------------------------------------------------------------
// Serving a scenario.

/// What one scenario looks like on the wire: the root zone and the names
/// the front leaves unanswered.
struct Served {
    zone: DnsZone,
    silent: Vec<SilentName>,
    /// Things DNS cannot express exactly, for the report.
    notes: Vec<String>,
}

/// One record as served, for deduplication: (kind, rendered rdata).
type Rr = (RecordKind, String);

fn serve(zonedata: &[(String, Vec<ZoneEntry>)]) -> Served {
    let mut zone = DnsZone::new(".");
    let mut silent = Vec::new();
    let mut notes = Vec::new();
    // Names are case-insensitive: merge entries of names differing in case.
    let mut by_name: BTreeMap<String, Vec<&ZoneEntry>> = BTreeMap::new();
    for (name, entries) in zonedata {
        by_name
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .extend(entries.iter());
    }
    for (name, entries) in &by_name {
        let owner = master_file_name(name);
        let has_txt = entries
            .iter()
            .any(|e| matches!(e, ZoneEntry::Txt(_) | ZoneEntry::None(RecordKind::Txt)));
        let mut records: Vec<Rr> = Vec::new();
        let mut answered_before_timeout: Option<Vec<u16>> = None;
        let mut seen_kinds: Vec<u16> = Vec::new();
        for entry in entries {
            let rr = match entry {
                ZoneEntry::Timeout => {
                    answered_before_timeout.get_or_insert_with(|| seen_kinds.clone());
                    continue;
                }
                ZoneEntry::None(_) => continue,
                ZoneEntry::Txt(s) | ZoneEntry::Spf(s) => {
                    if s.is_empty() {
                        notes.push(format!(
                            "{name}: a record of zero strings is served as one empty string"
                        ));
                    }
                    (entry.kind().unwrap_or(RecordKind::Txt), strings_rdata(s))
                }
                ZoneEntry::A(ip) => (RecordKind::A, ip.to_string()),
                ZoneEntry::Aaaa(ip) => (RecordKind::Aaaa, ip.to_string()),
                ZoneEntry::Mx(pref, exchange) => {
                    (RecordKind::Mx, format!("{pref} {}", master_file_name(exchange)))
                }
                ZoneEntry::Ptr(target) => (RecordKind::Ptr, master_file_name(target)),
                ZoneEntry::Cname(target) => (RecordKind::Cname, master_file_name(target)),
            };
            seen_kinds.push(rr.0.code());
            push_rr(&mut records, rr, name, &mut notes);
        }
        if !has_txt {
            let generated: Vec<Rr> = records
                .iter()
                .filter(|(k, _)| *k == RecordKind::Spf)
                .map(|(_, data)| (RecordKind::Txt, data.clone()))
                .collect();
            for rr in generated {
                push_rr(&mut records, rr, name, &mut notes);
            }
        }
        for (kind, data) in &records {
            let type_name = match kind {
                RecordKind::Txt => "TXT",
                RecordKind::Spf => "SPF",
                RecordKind::A => "A",
                RecordKind::Aaaa => "AAAA",
                RecordKind::Mx => "MX",
                RecordKind::Ptr => "PTR",
                RecordKind::Cname => "CNAME",
            };
            zone = zone.record(format!("{owner} IN {type_name} {data}"));
        }
        if let Some(answered) = answered_before_timeout {
            silent.push(SilentName {
                name: name.clone(),
                answered_types: answered,
            });
        }
    }
    Served { zone, silent, notes }
}

fn push_rr(records: &mut Vec<Rr>, rr: Rr, name: &str, notes: &mut Vec<String>) {
    if records.contains(&rr) {
        notes.push(format!(
            "{name}: identical {:?} records merged (DNS has no duplicate RRs)",
            rr.0
        ));
    } else {
        records.push(rr);
    }
}

/// The rdata of a TXT/SPF record with exactly these strings (rendered by
/// the lab's escaping, so both builders agree).
fn strings_rdata(strings: &[Vec<u8>]) -> String {
    let zone = DnsZone::new(".").txt_parts("x", strings);
    zone.records[0]
        .strip_prefix("x IN TXT ")
        .map(str::to_owned)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Running it.

/// What an evaluator returned for one test.
struct Got {
    result: SpfResult,
    /// `None` when the evaluator does not expose explanations at all.
    explanation: Option<Option<String>>,
}

struct Row {
    scenario: usize,
    elapsed: Duration,
    case: TestCase,
    got: Got,
    /// Result and (where expected and exposed) explanation match.
    passed: bool,
    /// The result alone matches.
    result_ok: bool,
    dropped: u64,
}

/// Whether `got` passes `case`; the explanation is compared when the test
/// gives one and the evaluator exposes explanations (`DEFAULT` means "no
/// exp= text").
fn judge(case: &TestCase, got: &Got) -> bool {
    if !case.results.contains(&got.result) {
        return false;
    }
    match (case.explanation.as_deref(), &got.explanation) {
        (None, _) | (_, None) => true,
        (Some("DEFAULT"), Some(exp)) => exp.is_none(),
        (Some(expected), Some(exp)) => exp.as_deref() == Some(expected),
    }
}

fn suite_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MAILWARDEN_SPF_SUITE") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/auth/pyspf/test/rfc7208-tests.yml")
}

/// The suite, or `None` when it is not beside the checkout: it is public
/// data the project does not ship (see `../shared/corpus/README.md`), so a
/// clone without it skips this conformance check and says so.
fn load_suite() -> Option<Vec<Scenario>> {
    let path = suite_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("MAILWARDEN_SPF_SUITE").is_none() =>
        {
            eprintln!(
                "SKIPPED: the RFC 7208 suite is not at {} (check out ../shared beside the repository, or set \
                 MAILWARDEN_SPF_SUITE to the path of rfc7208-tests.yml)",
                path.display()
            );
            return None;
        }
        Err(e) => panic!(
            "reading the RFC 7208 suite {}: {e}\nfix: check out ../shared beside the repository, or set \
             MAILWARDEN_SPF_SUITE to the path of rfc7208-tests.yml",
            path.display()
        ),
    };
    Some(parse_suite(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Everything one run of the suite produced.
struct Run {
    scenarios: Vec<Scenario>,
    rows: Vec<Row>,
    notes: BTreeMap<usize, Vec<String>>,
}

/// Serves every scenario from a fresh Knot server behind a fresh front and
/// runs `evaluate` on each test, one at a time.
fn run_suite(
    timeout: Duration,
    evaluate: impl Fn(&tokio::runtime::Runtime, &VerifyConfig, &TestCase) -> Got,
) -> Option<Run> {
    let scenarios = load_suite()?;
    let mut dns = DnsServer::start(vec![DnsZone::new(".")]).expect("starting the private DNS server (knotd)");
    let front = DnsFront::start(dns.addr()).expect("starting the DNS front");
    let cfg = VerifyConfig {
        resolver: Some(front.addr()),
        timeout,
    };
    let rt = runtime();
    let mut rows = Vec::new();
    let mut notes = BTreeMap::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let served = serve(&scenario.zonedata);
        dns.set_zone(served.zone.clone()).unwrap_or_else(|e| {
            panic!(
                "scenario {} ({}): Knot rejected the zone: {e}\nzone: {:#?}",
                i + 1,
                scenario.description,
                served.zone.records
            )
        });
        front.set_silent(served.silent.clone());
        if !served.notes.is_empty() {
            notes.insert(i, served.notes.clone());
        }
        for case in &scenario.tests {
            let before = front.dropped_queries();
            let started = Instant::now();
            let got = evaluate(&rt, &cfg, case);
            let elapsed = started.elapsed();
            let dropped = front.dropped_queries() - before;
            rows.push(Row {
                scenario: i,
                elapsed,
                case: case.clone(),
                passed: judge(case, &got),
                result_ok: case.results.contains(&got.result),
                got,
                dropped,
            });
        }
    }
    Some(Run {
        scenarios,
        rows,
        notes,
    })
}

fn results_text(results: &[SpfResult]) -> String {
    results.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("|")
}

/// Renders the per-scenario table and the failures as Markdown.
fn report(title: &str, run: &Run, known: &[(&str, &str)]) -> String {
    let known: BTreeMap<&str, &str> = known.iter().copied().collect();
    let rows = &run.rows;
    let mut out = String::new();
    let passed = rows.iter().filter(|r| r.passed).count();
    let result_ok = rows.iter().filter(|r| r.result_ok).count();
    let total: Duration = rows.iter().map(|r| r.elapsed).sum();
    let _ = writeln!(
        out,
        "{title}: {passed}/{n} passed ({result_ok}/{n} on the result alone); the evaluations took {:.2} s\n",
        total.as_secs_f64(),
        n = rows.len(),
    );
    let _ = writeln!(
        out,
        "| # | scenario | tests | passed | failed | eval time | failing tests |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (i, scenario) in run.scenarios.iter().enumerate() {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.scenario == i).collect();
        let failing: Vec<&str> = mine
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.case.name.as_str())
            .collect();
        let elapsed: Duration = mine.iter().map(|r| r.elapsed).sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} s | {} |",
            i + 1,
            scenario.description,
            mine.len(),
            mine.len() - failing.len(),
            failing.len(),
            elapsed.as_secs_f64(),
            failing.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n| test | spec | expected | got | explanation (expected / got) | dropped queries | known reason |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for row in rows.iter().filter(|r| !r.passed) {
        let got_explanation = match &row.got.explanation {
            None => "(not exposed)".to_owned(),
            Some(None) => "(none)".to_owned(),
            Some(Some(e)) => e.escape_debug().to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} |",
            row.case.name,
            row.case.spec,
            results_text(&row.case.results),
            row.got.result,
            row.case.explanation.as_deref().unwrap_or("-").escape_debug(),
            got_explanation,
            row.dropped,
            known.get(row.case.name.as_str()).copied().unwrap_or("-"),
        );
    }
    let timeouts: Vec<String> = rows
        .iter()
        .filter(|r| r.dropped > 0)
        .map(|r| format!("{} ({} dropped, got {})", r.case.name, r.dropped, r.got.result))
        .collect();
    let _ = writeln!(
        out,
        "\nTests that met a genuine DNS timeout: {}",
        timeouts.join(", ")
    );
    for (i, list) in &run.notes {
        for note in list {
            let _ = writeln!(out, "note (scenario {}): {note}", i + 1);
        }
    }
    out
}

#[test]
fn rfc7208_suite() {
    let Some(run) = run_suite(EVAL_TIMEOUT, |rt, cfg, case| {
        let out: SpfOutcome = rt.block_on(check_spf(case.host, &case.helo, &case.mailfrom, cfg));
        Got {
            result: out.result,
            explanation: Some(out.explanation),
        }
    }) else {
        return;
    };
    let table = report("check_spf on the RFC 7208 suite", &run, KNOWN_FAILURES);
    println!("{table}");

    let rows = &run.rows;
    assert!(
        rows.iter().any(|r| r.dropped > 0),
        "no test met a TIMEOUT name: the front's silent names are not working\n{table}"
    );
    let failing: BTreeSet<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.case.name.as_str())
        .collect();
    let known: BTreeSet<&str> = KNOWN_FAILURES.iter().map(|(n, _)| *n).collect();
    let all: BTreeSet<&str> = rows.iter().map(|r| r.case.name.as_str()).collect();
    let stale: Vec<&&str> = known.difference(&all).collect();
    let new_failures: Vec<&&str> = failing.difference(&known).collect();
    let now_passing: Vec<&&str> = known.difference(&failing).filter(|n| all.contains(**n)).collect();
    assert!(
        stale.is_empty() && new_failures.is_empty() && now_passing.is_empty(),
        "the suite no longer matches KNOWN_FAILURES\n  new failures: {new_failures:?}\n  \
         now passing (remove from KNOWN_FAILURES and bench/spf-suite.md): {now_passing:?}\n  \
         not in the suite: {stale:?}\n{table}"
    );
}

/// A message for the anchor run: its From domain does not exist, so DMARC
/// costs one NXDOMAIN and no DKIM signature is checked.
const ANCHOR_MESSAGE: &[u8] = b"From: anchor@anchor.invalid\r\nSubject: anchor\r\n\r\nanchor\r\n";

/// Tests the anchor passes on the result alone (it exposes no explanation).
/// Update it, and `bench/spf-suite.md`, when `verify.rs` changes.
const ANCHOR_RESULT_PASSES: usize = 148;

/// The anchor, measured in the same way: the SPF part of
/// `verify::verify_message` (mail-auth's `verify_spf` with both identities:
/// HELO first, its result kept when it fails; one timeout for each query and
/// for the whole check), which is how mailwarden evaluated SPF before
/// `check_spf`.
#[test]
fn anchor_verify_message_spf() {
    let Some(run) = run_suite(Duration::from_secs(4), |rt, cfg, case| {
        let report = rt.block_on(mailwarden_io::verify::verify_message(
            ANCHOR_MESSAGE,
            case.host,
            &case.helo,
            &case.mailfrom,
            cfg,
        ));
        let result = report
            .spf
            .and_then(|s| s.result.parse().ok())
            .unwrap_or(SpfResult::TempError);
        Got {
            result,
            explanation: None,
        }
    }) else {
        return;
    };
    let table = report("anchor: verify_message's SPF on the RFC 7208 suite", &run, &[]);
    println!("{table}");
    let passes = run.rows.iter().filter(|r| r.result_ok).count();
    assert_eq!(
        passes, ANCHOR_RESULT_PASSES,
        "the anchor's score changed: update ANCHOR_RESULT_PASSES and bench/spf-suite.md\n{table}"
    );
}

// ---------------------------------------------------------------------------
// The harness's own parsers and rendering.

#[test]
fn parses_entries_and_reports_bad_ones() {
    let yaml = |s: &str| serde_yaml_ng::from_str::<Value>(s).unwrap();
    assert_eq!(parse_entry(&yaml("TIMEOUT")), Ok(ZoneEntry::Timeout));
    assert_eq!(
        parse_entry(&yaml("{TXT: NONE}")),
        Ok(ZoneEntry::None(RecordKind::Txt))
    );
    assert_eq!(
        parse_entry(&yaml(r#"{SPF: "v=spf1 \x96all"}"#)),
        Ok(ZoneEntry::Spf(vec!["v=spf1 \u{96}all".as_bytes().to_vec()]))
    );
    assert_eq!(
        parse_entry(&yaml("{SPF: ['v=spf1', 'mx']}")),
        Ok(ZoneEntry::Spf(vec![b"v=spf1".to_vec(), b"mx".to_vec()]))
    );
    assert_eq!(parse_entry(&yaml("{SPF: []}")), Ok(ZoneEntry::Spf(vec![])));
    assert_eq!(
        parse_entry(&yaml("{MX: [0, '']}")),
        Ok(ZoneEntry::Mx(0, String::new()))
    );
    assert_eq!(
        parse_entry(&yaml("{AAAA: 'CAFE:BABE::1'}")),
        Ok(ZoneEntry::Aaaa("cafe:babe::1".parse().unwrap()))
    );
    let err = parse_entry(&yaml("{HINFO: x}")).unwrap_err();
    assert!(err.contains("unknown record type `HINFO`"), "{err}");
    let err = parse_entry(&yaml("{A: 1.2.3}")).unwrap_err();
    assert!(err.contains("`1.2.3` is not an IPv4 address"), "{err}");
    let err = parse_entry(&yaml("{MX: [70000, a.test]}")).unwrap_err();
    assert!(err.contains("0 to 65535"), "{err}");
    let err = parse_entry(&yaml("SLOW")).unwrap_err();
    assert!(err.contains("`SLOW` is not an entry"), "{err}");
    let err = parse_entry(&yaml("{A: 1.2.3.4, TXT: x}")).unwrap_err();
    assert!(err.contains("exactly one"), "{err}");
}

#[test]
fn suite_errors_name_the_document_test_and_field() {
    let err = parse_suite("description: x\ntests:\n  t1:\n    helo: h\n    host: 1.2.3.4\n    mailfrom: a@b\n    result: maybe\nzonedata: {}\n")
        .unwrap_err();
    assert!(
        err.contains("YAML document 1: test `t1`: field `result`: `maybe` is not an SPF result"),
        "{err}"
    );
    let err = parse_suite("---\ndescription: x\ntests: {t: {helo: h, host: 1.2.3.4, mailfrom: '', result: pass}}\nzonedata: {a.test: [TIMEOUT]}\n---\ndescription: y\ntests: {u: {helo: h, host: nope, mailfrom: '', result: pass}}\nzonedata: {}\n")
        .unwrap_err();
    assert!(
        err.contains("YAML document 2: test `u`: field `host`: `nope` is not an IP address"),
        "{err}"
    );
    let err = parse_suite("description: x\ntests: [\n").unwrap_err();
    assert!(err.contains("YAML document 1") && err.contains("line"), "{err}");
}

#[test]
fn serves_with_the_pyspf_driver_rules() {
    let data = vec![
        (
            "spfonly.test".to_owned(),
            vec![ZoneEntry::Spf(vec![b"v=spf1 -all".to_vec()])],
        ),
        (
            "both.test".to_owned(),
            vec![
                ZoneEntry::Spf(vec![b"v=spf1 +all".to_vec()]),
                ZoneEntry::Txt(vec![b"v=spf1 -all".to_vec()]),
            ],
        ),
        (
            "none.test".to_owned(),
            vec![
                ZoneEntry::Spf(vec![b"v=spf1 -all".to_vec()]),
                ZoneEntry::None(RecordKind::Txt),
                ZoneEntry::Timeout,
            ],
        ),
        (
            "Dup.test".to_owned(),
            vec![
                ZoneEntry::Spf(vec![b"a".to_vec()]),
                ZoneEntry::Spf(vec![b"a".to_vec()]),
            ],
        ),
        ("odd name.test".to_owned(), vec![ZoneEntry::Mx(0, String::new())]),
    ];
    let served = serve(&data);
    let r = &served.zone.records;
    assert!(
        r.contains(&r#"spfonly.test. IN SPF "v=spf1 -all""#.to_owned()),
        "{r:#?}"
    );
    assert!(
        r.contains(&r#"spfonly.test. IN TXT "v=spf1 -all""#.to_owned()),
        "{r:#?}"
    );
    assert!(
        r.contains(&r#"both.test. IN TXT "v=spf1 -all""#.to_owned()),
        "{r:#?}"
    );
    assert!(
        !r.contains(&r#"both.test. IN TXT "v=spf1 +all""#.to_owned()),
        "{r:#?}"
    );
    assert!(!r.iter().any(|l| l.starts_with("none.test. IN TXT")), "{r:#?}");
    assert_eq!(
        r.iter().filter(|l| l.starts_with("dup.test. IN SPF")).count(),
        1,
        "{r:#?}"
    );
    assert!(r.contains(&"odd\\032name.test. IN MX 0 .".to_owned()), "{r:#?}");
    assert_eq!(
        served.silent,
        vec![SilentName {
            name: "none.test".into(),
            answered_types: vec![99]
        }]
    );
    assert_eq!(served.notes.len(), 1, "{:?}", served.notes);
    assert!(
        served.notes[0].contains("dup.test: identical"),
        "{:?}",
        served.notes
    );
}

fn yaml_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn yaml_value() -> impl Strategy<Value = Value> {
    yaml_scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            proptest::collection::vec(("[A-Z]{1,5}", inner), 0..3).prop_map(|pairs| {
                Value::Mapping(pairs.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
            }),
        ]
    })
}

proptest! {
    /// Any YAML value as an entry is parsed or refused with a message; never a panic.
    #[test]
    fn entry_parser_is_total(v in yaml_value()) {
        if let Err(e) = parse_entry(&v) {
            prop_assert!(!e.is_empty());
        }
    }

    /// Any text given as TXT comes back as its UTF-8 bytes, one string per item.
    #[test]
    fn txt_entries_keep_their_text(items in proptest::collection::vec("\\PC{0,30}", 1..4)) {
        let value = Value::Mapping(
            [(Value::String("TXT".into()), Value::Sequence(items.iter().cloned().map(Value::String).collect()))]
                .into_iter()
                .collect(),
        );
        let expected: Vec<Vec<u8>> = items.iter().map(|s| s.as_bytes().to_vec()).collect();
        if items.len() == 1 && items[0] == "NONE" {
            return Ok(());
        }
        prop_assert_eq!(parse_entry(&value), Ok(ZoneEntry::Txt(expected)));
    }
}

/// Arbitrary bytes in TXT strings, and arbitrary owner names, survive the
/// lab's escaping and a real Knot server unchanged (the suite depends on
/// it for its control characters and non-ASCII records).
#[test]
fn arbitrary_strings_and_names_survive_knot() {
    use hickory_resolver::proto::op::{Message, Query};
    use hickory_resolver::proto::rr::{Name, RData, RecordType};
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;

    // The runner takes an `Fn` closure; the server is changed through a RefCell.
    let dns = std::cell::RefCell::new(DnsServer::start(vec![DnsZone::new(".")]).expect("starting knotd"));
    let addr = dns.borrow().addr();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
        proptest::collection::vec(any::<u8>(), 1..40),
    );
    runner
        .run(&strategy, |(strings, label)| {
            // A label of arbitrary bytes except `.`, which separates labels in the text form.
            let label: Vec<u8> = label
                .into_iter()
                .map(|b| if b == b'.' { b'x' } else { b })
                .collect();
            let text_label = String::from_utf8(label.clone()).unwrap_or_else(|_| "bin".into());
            let label = text_label.as_bytes().to_vec();
            let owner = master_file_name(&format!("{text_label}.example.test"));
            let zone = DnsZone::new(".").txt_parts(&owner, &strings);
            dns.borrow_mut()
                .set_zone(zone)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;

            let name = Name::from_labels(vec![label, b"example".to_vec(), b"test".to_vec()]).unwrap();
            let mut query = Message::query();
            query.add_query(Query::query(name, RecordType::TXT));
            // TCP: three 300-byte strings do not fit a 512-byte UDP answer.
            let wire = query.to_vec().unwrap();
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut framed = u16::try_from(wire.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(&wire);
            stream.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut buf).unwrap();
            let reply = Message::from_vec(&buf).unwrap();
            let got: Vec<Vec<u8>> = reply
                .answers
                .iter()
                .find_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
                    _ => None,
                })
                .ok_or_else(|| TestCaseError::fail(format!("no TXT answer: {reply:?}")))?;
            // Strings over 255 bytes are split by the lab; compare the concatenation
            // and that short strings keep their boundaries.
            if strings.iter().all(|s| s.len() <= 255) {
                prop_assert_eq!(got, strings);
            } else {
                prop_assert_eq!(got.concat(), strings.concat());
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
