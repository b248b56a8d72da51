//! DKIM key records (RFC 6376 §3.6.1, RFC 8463 for Ed25519): the parser,
//! the public key's type and size, and the checks of one selector.
//!
//! The key size comes from the key itself: `p=` is base64 of a DER
//! SubjectPublicKeyInfo (or, as some signers publish it, a bare PKCS#1
//! RSAPublicKey). Reading the length of one INTEGER needs only a few lines
//! of DER, so a small bounded reader lives here rather than an ASN.1 or RSA
//! crate (which would bring big-number arithmetic and much more surface
//! for input we only measure). Every length is checked against the bytes
//! that remain; nothing is allocated from a length field.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;

use super::tags::{Tag, clip, parse_tag_list};
use super::{Area, Finding, Severity};

/// Selectors probed on every audit, besides the ones given: Mailcow's
/// `dkim`, the usual defaults of common signers and hosted services.
pub const COMMON_SELECTORS: &[&str] = &[
    "dkim",
    "default",
    "selector1",
    "selector2",
    "google",
    "k1",
    "s1",
    "s2",
    "mail",
];

/// Longest `p=` value read (base64 of a 16384-bit RSA key is ~2.8 KB).
pub const MAX_KEY_TEXT: usize = 8192;

/// A parsed DKIM key record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DkimKey {
    /// All tags as written.
    pub tags: Vec<Tag>,
    /// `k=`, lower-cased (`rsa` when absent).
    pub key_type: String,
    /// `h=`: acceptable hash algorithms (empty: all).
    pub hashes: Vec<String>,
    /// `s=`: service types (empty: `*`).
    pub services: Vec<String>,
    /// `t=` flags.
    pub flags: Vec<String>,
    /// `p=` with whitespace removed (empty: revoked).
    pub public_key: String,
    /// Errors that make verifiers reject the key.
    pub errors: Vec<String>,
    /// Tags that are not DKIM key tags (verifiers ignore them).
    pub unknown: Vec<String>,
}

/// True if `txt` looks like a DKIM key record (it has a `p=` tag, or starts
/// with `v=DKIM1`).
pub fn is_dkim_key(txt: &str) -> bool {
    let list = parse_tag_list(txt);
    list.get("p").is_some()
        || list
            .tags
            .first()
            .is_some_and(|t| t.name == "v" && t.value == "DKIM1")
}

/// Parses a key record. Never fails: problems are collected.
pub fn parse_dkim_key(text: &str) -> DkimKey {
    let list = parse_tag_list(text);
    let mut k = DkimKey {
        key_type: "rsa".into(),
        errors: list.problems.clone(),
        ..DkimKey::default()
    };
    let mut saw_p = false;
    for (i, tag) in list.tags.iter().enumerate() {
        let v = tag.value.as_str();
        let colon_list = |v: &str| -> Vec<String> {
            v.split(':')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        match tag.name.as_str() {
            "v" => {
                if i != 0 {
                    k.errors.push("`v=` must be the first tag".into());
                }
                if v != "DKIM1" {
                    k.errors
                        .push(format!("`v={}`: the only version is DKIM1", clip(v)));
                }
            }
            "k" => k.key_type = v.to_ascii_lowercase(),
            "h" => k.hashes = colon_list(v),
            "s" => k.services = colon_list(v),
            "t" => k.flags = colon_list(v),
            "n" | "g" => {}
            "p" => {
                saw_p = true;
                let compact: String = v
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .take(MAX_KEY_TEXT + 1)
                    .collect();
                if compact.len() > MAX_KEY_TEXT {
                    k.errors
                        .push(format!("`p=` is longer than {MAX_KEY_TEXT} characters"));
                }
                k.public_key = compact;
            }
            _ => k.unknown.push(tag.name.clone()),
        }
    }
    if !saw_p {
        k.errors
            .push("no `p=` tag: the record holds no public key".into());
    }
    k
}

/// What the public key is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyInfo {
    /// `p=` is empty: the key was revoked.
    Revoked,
    /// An RSA key.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// An Ed25519 key (RFC 8463).
    Ed25519,
    /// The key could not be read.
    Invalid {
        /// Why.
        reason: String,
    },
    /// A `k=` type DKIM does not define.
    Unsupported {
        /// The `k=` value.
        key_type: String,
    },
}

fn engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Decodes the key of a record and says what it is.
pub fn key_info(key: &DkimKey) -> KeyInfo {
    if key.public_key.is_empty() {
        return KeyInfo::Revoked;
    }
    if key.public_key.len() > MAX_KEY_TEXT {
        return KeyInfo::Invalid {
            reason: format!("the key is longer than {MAX_KEY_TEXT} characters"),
        };
    }
    let bytes = match engine().decode(key.public_key.as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            return KeyInfo::Invalid {
                reason: format!("`p=` is not valid base64 ({e})"),
            };
        }
    };
    match key.key_type.as_str() {
        "rsa" => match rsa_modulus_bits(&bytes) {
            Ok(bits) => KeyInfo::Rsa { bits },
            Err(reason) => KeyInfo::Invalid { reason },
        },
        "ed25519" => {
            if bytes.len() == 32 || is_ed25519_spki(&bytes) {
                KeyInfo::Ed25519
            } else {
                KeyInfo::Invalid {
                    reason: format!("an Ed25519 key is 32 bytes, this one is {}", bytes.len()),
                }
            }
        }
        other => KeyInfo::Unsupported {
            key_type: other.to_owned(),
        },
    }
}

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// 1.2.840.113549.1.1.1 (rsaEncryption).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.3.101.112 (Ed25519).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Reads one DER element: its tag, its contents and the bytes after it.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("the key ends early")?;
    let (&first, mut rest) = rest.split_first().ok_or("the key ends early")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || n > rest.len() {
            return Err("a DER length is malformed".into());
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if len > rest.len() {
        return Err("a DER length runs past the end of the key".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (tag, body, rest) = read_tlv(input)?;
    if tag != want {
        return Err(format!("expected {what} in the key's DER, found tag 0x{tag:02x}"));
    }
    Ok((body, rest))
}

fn is_ed25519_spki(der: &[u8]) -> bool {
    let parse = || -> Result<bool, String> {
        let (spki, _) = expect(der, TAG_SEQUENCE, "a SEQUENCE")?;
        let (alg, _) = expect(spki, TAG_SEQUENCE, "an AlgorithmIdentifier")?;
        let (oid, _) = expect(alg, TAG_OID, "an OID")?;
        Ok(oid == OID_ED25519)
    };
    parse().unwrap_or(false)
}

/// The modulus size of an RSA public key given as DER SubjectPublicKeyInfo
/// or PKCS#1 RSAPublicKey.
pub fn rsa_modulus_bits(der: &[u8]) -> Result<u32, String> {
    let (outer, _) = expect(der, TAG_SEQUENCE, "a SEQUENCE")?;
    let (tag, first, after_first) = read_tlv(outer)?;
    let rsa_key = match tag {
        // PKCS#1: SEQUENCE { INTEGER n, INTEGER e }.
        TAG_INTEGER => outer,
        // SPKI: SEQUENCE { SEQUENCE { OID, params }, BIT STRING }.
        TAG_SEQUENCE => {
            let (oid, _) = expect(first, TAG_OID, "the algorithm OID")?;
            if oid == OID_ED25519 {
                return Err("this is an Ed25519 key: the record needs `k=ed25519`".into());
            }
            if oid != OID_RSA {
                return Err("the key's algorithm is not rsaEncryption".into());
            }
            let (bits, _) = expect(after_first, TAG_BIT_STRING, "a BIT STRING")?;
            let (&unused, key) = bits.split_first().ok_or("the key's BIT STRING is empty")?;
            if unused != 0 {
                return Err("the key's BIT STRING is malformed".into());
            }
            let (inner, _) = expect(key, TAG_SEQUENCE, "an RSAPublicKey SEQUENCE")?;
            inner
        }
        _ => return Err(format!("unexpected tag 0x{tag:02x} in the key's DER")),
    };
    let (modulus, rest) = expect(rsa_key, TAG_INTEGER, "the modulus INTEGER")?;
    let (exponent, _) = expect(rest, TAG_INTEGER, "the exponent INTEGER")?;
    if exponent.is_empty() {
        return Err("the public exponent is empty".into());
    }
    let start = modulus
        .iter()
        .position(|&b| b != 0)
        .ok_or("the modulus is zero")?;
    let m = &modulus[start..];
    let bits = (m.len() - 1) * 8 + (8 - m[0].leading_zeros() as usize);
    u32::try_from(bits).map_err(|_| "the modulus is absurdly large".to_owned())
}

/// One selector's lookup result, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectorLookup {
    /// The selector.
    pub selector: String,
    /// `selector._domainkey.domain`.
    pub name: String,
    /// CNAME hops from `name` to where the key lives (empty: no CNAME).
    pub cname_chain: Vec<String>,
    /// The TXT records found (after following CNAMEs).
    pub records: Vec<String>,
    /// The name (or the end of the CNAME chain) does not exist.
    pub nxdomain: bool,
    /// The selector was given by the user (not one of the common ones probed).
    pub requested: bool,
}

/// The checked key of one selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectorReport {
    /// The selector.
    pub selector: String,
    /// The DNS name of the key.
    pub name: String,
    /// CNAME hops, if the key is delegated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cname_chain: Vec<String>,
    /// The key record text.
    pub record: String,
    /// The parsed record.
    pub parsed: DkimKey,
    /// The key.
    pub key: KeyInfo,
}

fn dkim(id: &'static str, severity: Severity, subject: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::Dkim, severity, subject, message)
}

/// Checks one selector. Returns `None` (and no findings) for a common
/// selector that is not published; a requested one that is missing is a
/// finding.
pub fn check_selector(domain: &str, lookup: &SelectorLookup) -> (Option<SelectorReport>, Vec<Finding>) {
    let mut out = Vec::new();
    let name = &lookup.name;
    let keys: Vec<&String> = lookup.records.iter().filter(|r| is_dkim_key(r)).collect();
    let chain = || lookup.cname_chain.join(" → ");
    if keys.is_empty() {
        if !lookup.cname_chain.is_empty() && lookup.nxdomain {
            out.push(
                dkim(
                    "dkim.cname.dangling",
                    Severity::Fail,
                    domain,
                    format!(
                        "selector {}: {name} is a CNAME to a name that does not exist, so signatures with it fail",
                        lookup.selector
                    ),
                )
                .fix("point the CNAME at the key your provider publishes, or remove it if the selector is unused")
                .evidence(format!("CNAME {name} → {}", chain())),
            );
        } else if lookup.requested {
            let mut f = dkim(
                "dkim.selector.missing",
                Severity::Fail,
                domain,
                format!(
                    "selector {}: no DKIM key at {name}, so signatures with it fail",
                    lookup.selector
                ),
            )
            .fix(format!(
                "publish the key of selector {} at {name} (Mailcow: Configuration → ARC/DKIM keys)",
                lookup.selector
            ));
            for r in &lookup.records {
                f = f.evidence(format!("TXT {name}: {r} (not a DKIM key)"));
            }
            out.push(f);
        }
        return (None, out);
    }
    let subject = format!("{}._domainkey.{domain}", lookup.selector);
    if keys.len() > 1 {
        let mut f = dkim(
            "dkim.multiple",
            Severity::Warning,
            &subject,
            format!(
                "{} key records at {name}: verifiers pick one at random (RFC 6376 §3.6.2.2)",
                keys.len()
            ),
        )
        .fix("keep one key record per selector");
        for k in &keys {
            f = f.evidence(format!("TXT {name}: {k}"));
        }
        out.push(f);
    }
    let record = keys[0].clone();
    let parsed = parse_dkim_key(&record);
    let key = if parsed.errors.is_empty() {
        key_info(&parsed)
    } else {
        KeyInfo::Invalid {
            reason: parsed.errors.join("; "),
        }
    };
    let evidence = format!("TXT {name}: {}", clip_key(&record));
    if !lookup.cname_chain.is_empty() {
        out.push(
            dkim(
                "dkim.cname.delegated",
                Severity::Info,
                &subject,
                format!("the key is delegated by CNAME: {name} → {}", chain()),
            )
            .evidence(format!("CNAME {name} → {}", chain())),
        );
    }
    match &key {
        KeyInfo::Revoked => out.push(
            dkim("dkim.revoked", Severity::Info, &subject, "the key is revoked (empty `p=`): signatures with this selector fail")
                .evidence(&evidence),
        ),
        KeyInfo::Invalid { reason } => out.push(
            dkim("dkim.invalid", Severity::Fail, &subject, format!("the key record is unusable: {reason}"))
                .fix("publish the key record exactly as your signer (Mailcow, Rspamd, OpenDKIM) prints it")
                .evidence(&evidence),
        ),
        KeyInfo::Unsupported { key_type } => out.push(
            dkim("dkim.key.type", Severity::Fail, &subject, format!("k={} is not a DKIM key type (rsa or ed25519)", clip(key_type)))
                .fix("use k=rsa (or omit k=) or k=ed25519")
                .evidence(&evidence),
        ),
        KeyInfo::Rsa { bits } if *bits < 1024 => out.push(
            dkim(
                "dkim.key.weak",
                Severity::Fail,
                &subject,
                format!("RSA {bits}-bit key: breakable, and receivers reject signatures with keys under 1024 bits (RFC 8301)"),
            )
            .fix("generate a 2048-bit key, publish it under a new selector, switch the signer to it, then revoke this one")
            .evidence(&evidence),
        ),
        KeyInfo::Rsa { bits } if *bits < 2048 => out.push(
            dkim(
                "dkim.key.short",
                Severity::Warning,
                &subject,
                format!("RSA {bits}-bit key: below the 2048 bits recommended today"),
            )
            .fix("generate a 2048-bit key under a new selector, switch the signer, then revoke this one")
            .evidence(&evidence),
        ),
        KeyInfo::Rsa { bits } => out.push(
            dkim("dkim.key.ok", Severity::Pass, &subject, format!("RSA {bits}-bit key")).evidence(&evidence),
        ),
        KeyInfo::Ed25519 => out.push(dkim("dkim.key.ok", Severity::Pass, &subject, "Ed25519 key").evidence(&evidence)),
    }
    if parsed.flags.iter().any(|f| f == "y") {
        out.push(
            dkim(
                "dkim.testing",
                Severity::Warning,
                &subject,
                "t=y: the domain is testing DKIM — verifiers may treat failing signatures as unsigned",
            )
            .fix("remove t=y once signing works"),
        );
    }
    if !parsed.hashes.is_empty() && !parsed.hashes.iter().any(|h| h == "sha256") {
        out.push(
            dkim(
                "dkim.hash.sha1",
                Severity::Warning,
                &subject,
                format!(
                    "h={}: SHA-1 signatures are no longer accepted (RFC 8301)",
                    parsed.hashes.join(":")
                ),
            )
            .fix("allow sha256 (h=sha256, or remove h=) and sign with rsa-sha256"),
        );
    }
    if !parsed.services.is_empty() && !parsed.services.iter().any(|s| s == "*" || s == "email") {
        out.push(
            dkim(
                "dkim.service.not-email",
                Severity::Fail,
                &subject,
                format!(
                    "s={}: the key is not for e-mail, so verifiers ignore it",
                    parsed.services.join(":")
                ),
            )
            .fix("remove s= (or set s=email)"),
        );
    }
    if !parsed.unknown.is_empty() {
        out.push(dkim(
            "dkim.tag.unknown",
            Severity::Info,
            &subject,
            format!(
                "unknown tag{} {} (ignored by verifiers)",
                if parsed.unknown.len() == 1 { "" } else { "s" },
                parsed.unknown.join(", ")
            ),
        ));
    }
    let report = SelectorReport {
        selector: lookup.selector.clone(),
        name: name.clone(),
        cname_chain: lookup.cname_chain.clone(),
        record,
        parsed,
        key,
    };
    (Some(report), out)
}

/// Long keys are shortened in evidence lines: the first and last characters
/// of `p=` are enough to recognise a key.
fn clip_key(record: &str) -> String {
    if record.len() <= 120 {
        return record.to_owned();
    }
    let head = record.floor_char_boundary(60);
    let tail = record.ceil_char_boundary(record.len() - 20);
    format!("{}…{}", &record[..head], &record[tail..])
}

/// Domain-level DKIM findings from the selectors found.
pub fn check_domain(domain: &str, probed: &[String], found: &[SelectorReport]) -> Vec<Finding> {
    let mut out = Vec::new();
    if found.is_empty() {
        out.push(
            dkim(
                "dkim.none-found",
                Severity::Warning,
                domain,
                format!(
                    "no DKIM key at the selectors tried ({}): DKIM cannot be verified from DNS alone without the selector",
                    probed.join(", ")
                ),
            )
            .fix(
                "give the selector with --selector (it is the s= tag of the DKIM-Signature header of a mail you sent); \
                 if you do not sign yet, enable DKIM signing (Mailcow: Configuration → ARC/DKIM keys)",
            ),
        );
        return out;
    }
    let usable: Vec<&SelectorReport> = found
        .iter()
        .filter(|s| matches!(s.key, KeyInfo::Rsa { .. } | KeyInfo::Ed25519))
        .collect();
    if !usable.is_empty() && usable.iter().all(|s| s.key == KeyInfo::Ed25519) {
        out.push(dkim(
            "dkim.ed25519.only",
            Severity::Info,
            domain,
            "only Ed25519 keys found: many receivers verify only RSA signatures, so sign with an RSA key as well",
        ));
    }
    out
}

#[cfg(test)]
mod tests;
