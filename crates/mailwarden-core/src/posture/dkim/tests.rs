use super::*;
use proptest::prelude::*;

// Public keys made once with `openssl genpkey` and `openssl pkey -pubout -outform DER | base64`.
const RSA_512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALOeVn8Hd0PYoH1H8uWWShQ6ahLYM9cS7ymfLaC5cdMzW+Z8SLmCTOaaOQJwNXzaWGE0N+8vTn19AUV6nZYgatcCAwEAAQ==";
const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQ+ZvDxN4Qm4/Rf52frcNUM2cFw63eWA2oK4ZNr0Fo3AmYHTt3Ed28FSW5piEK4h6ViJzz4yo4AMqDukXTRT+ifihUOcbEXZA7z00udgd3Ds9pL03l+8zqSAagCQZXG3n0lYwEipziVAh0YoSFEMzSelzfuVq7txvXBhP8FtBQIwIDAQAB";
const RSA_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0bBUroth/M+UEvbM0cEkWHSqb00uxcRSrVIGrCVmUNcxP1uFlUiEJRIThePSSoa/3uU6mB9YheRFSskg2grmcCnpW1n2YZEswWSwzH1lX/LgKspDZg+5ylSQHNkagYLmy+bzurfW2TqzwkZTEJg/UANSBcCVkqtYxv4uY6fQdkJAtpUwhtjiC0kfu8m9GLN3xeqx4jiEvuhoz/iISVntGx4pv0yQEEMrGRRnymzzZrNQZnXuD9JBuAMgIIgJ6lGNM/jfGPfZrGOYWU5P1mRpmWMcE/1pYyknZtYEsFlKCJobNP4VXK9HH/WbmUCS7yWG6H/9ZzPrKjEVVHusHct3NwIDAQAB";
// The same 1024-bit key as a bare PKCS#1 RSAPublicKey (`openssl rsa -RSAPublicKey_out`).
const RSA_1024_PKCS1: &str = "MIGJAoGBAND5m8PE3hCbj9F/nZ+tw1QzZwXDrd5YDagrhk2vQWjcCZgdO3cR3bwVJbmmIQriHpWInPPjKjgAyoO6RdNFP6J+KFQ5xsRdkDvPTS52B3cOz2kvTeX7zOpIBqAJBlcbefSVjASKnOJUCHRihIUQzNJ6XN+5Wru3G9cGE/wW0FAjAgMBAAE=";
const ED25519_RAW: &str = "Djiv8Sdfi7lK4cUfKidfHEobbIb7LdNEl0HAMxDg5pM=";
const ED25519_SPKI: &str = "MCowBQYDK2VwAyEADjiv8Sdfi7lK4cUfKidfHEobbIb7LdNEl0HAMxDg5pM=";

fn info(record: &str) -> KeyInfo {
    let k = parse_dkim_key(record);
    assert!(k.errors.is_empty(), "{record}: {:?}", k.errors);
    key_info(&k)
}

#[test]
fn measures_rsa_keys() {
    assert_eq!(
        info(&format!("v=DKIM1; k=rsa; p={RSA_512}")),
        KeyInfo::Rsa { bits: 512 }
    );
    assert_eq!(
        info(&format!("v=DKIM1; p={RSA_1024}")),
        KeyInfo::Rsa { bits: 1024 }
    );
    assert_eq!(
        info(&format!("v=DKIM1; k=rsa; p={RSA_2048}")),
        KeyInfo::Rsa { bits: 2048 }
    );
    assert_eq!(info(&format!("p={RSA_1024_PKCS1}")), KeyInfo::Rsa { bits: 1024 });
    // Whitespace inside p= (as split TXT strings sometimes show) is folded.
    let (a, b) = RSA_2048.split_at(100);
    assert_eq!(
        info(&format!("v=DKIM1; p={a} \t{b}")),
        KeyInfo::Rsa { bits: 2048 }
    );
    // Missing padding is tolerated.
    assert_eq!(
        info(&format!("p={}", RSA_512.trim_end_matches('='))),
        KeyInfo::Rsa { bits: 512 }
    );
}

#[test]
fn recognizes_ed25519_and_revoked_keys() {
    assert_eq!(
        info(&format!("v=DKIM1; k=ed25519; p={ED25519_RAW}")),
        KeyInfo::Ed25519
    );
    assert_eq!(
        info(&format!("v=DKIM1; k=ed25519; p={ED25519_SPKI}")),
        KeyInfo::Ed25519
    );
    assert_eq!(info("v=DKIM1; p="), KeyInfo::Revoked);
    assert!(
        matches!(info(&format!("v=DKIM1; p={ED25519_SPKI}")), KeyInfo::Invalid { reason } if reason.contains("k=ed25519"))
    );
    assert!(matches!(
        info("v=DKIM1; k=dsa; p=AAAA"),
        KeyInfo::Unsupported { .. }
    ));
    assert!(matches!(info("v=DKIM1; p=!!!"), KeyInfo::Invalid { reason } if reason.contains("base64")));
    assert!(matches!(info("v=DKIM1; p=AAAA"), KeyInfo::Invalid { .. }));
}

#[test]
fn parses_tags() {
    let k = parse_dkim_key("v=DKIM1; k=RSA; h=sha1:SHA256; s=email; t=y:s; n=hello; x=1; p=");
    assert_eq!(k.key_type, "rsa");
    assert_eq!(k.hashes, ["sha1", "sha256"]);
    assert_eq!(k.services, ["email"]);
    assert_eq!(k.flags, ["y", "s"]);
    assert_eq!(k.unknown, ["x"]);
    assert!(k.errors.is_empty());
    assert!(parse_dkim_key("k=rsa; v=DKIM1; p=").errors[0].contains("first"));
    assert!(parse_dkim_key("v=DKIM2; p=").errors[0].contains("DKIM1"));
    assert!(parse_dkim_key("v=DKIM1; k=rsa").errors[0].contains("no `p=`"));
    assert!(is_dkim_key("v=DKIM1; p="));
    assert!(!is_dkim_key("v=spf1 -all"));
}

fn lookup(selector: &str, records: &[String], requested: bool) -> SelectorLookup {
    SelectorLookup {
        selector: selector.into(),
        name: format!("{selector}._domainkey.ex.test"),
        cname_chain: Vec::new(),
        records: records.to_vec(),
        nxdomain: records.is_empty(),
        requested,
    }
}

fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
    f.iter().map(|f| (f.id, f.severity)).collect()
}

#[test]
fn selector_checks() {
    let (r, f) = check_selector(
        "ex.test",
        &lookup("dkim", &[format!("v=DKIM1; p={RSA_2048}")], false),
    );
    assert_eq!(ids(&f), [("dkim.key.ok", Severity::Pass)]);
    assert_eq!(r.unwrap().key, KeyInfo::Rsa { bits: 2048 });
    let (_, f) = check_selector(
        "ex.test",
        &lookup("s1", &[format!("v=DKIM1; p={RSA_1024}")], false),
    );
    assert_eq!(ids(&f), [("dkim.key.short", Severity::Warning)]);
    let (_, f) = check_selector(
        "ex.test",
        &lookup(
            "s1",
            &[format!("v=DKIM1; t=y; h=sha1; s=tls; p={RSA_512}")],
            false,
        ),
    );
    assert_eq!(
        ids(&f),
        [
            ("dkim.key.weak", Severity::Fail),
            ("dkim.testing", Severity::Warning),
            ("dkim.hash.sha1", Severity::Warning),
            ("dkim.service.not-email", Severity::Fail),
        ]
    );
    let (_, f) = check_selector("ex.test", &lookup("old", &["v=DKIM1; p=".into()], false));
    assert_eq!(ids(&f), [("dkim.revoked", Severity::Info)]);
    // A common selector that is absent: nothing to say. A requested one: fail.
    assert_eq!(check_selector("ex.test", &lookup("default", &[], false)).1, []);
    assert_eq!(
        ids(&check_selector("ex.test", &lookup("mine", &[], true)).1),
        [("dkim.selector.missing", Severity::Fail)]
    );
    let mut l = lookup("mine", &[], false);
    l.cname_chain = vec!["mine.keys.provider.test".into()];
    assert_eq!(
        ids(&check_selector("ex.test", &l).1),
        [("dkim.cname.dangling", Severity::Fail)]
    );
    let mut l = lookup("s2", &[format!("p={RSA_2048}")], false);
    l.cname_chain = vec!["s2.keys.provider.test".into()];
    assert_eq!(
        ids(&check_selector("ex.test", &l).1),
        [
            ("dkim.cname.delegated", Severity::Info),
            ("dkim.key.ok", Severity::Pass)
        ]
    );
}

#[test]
fn domain_checks() {
    let probed: Vec<String> = COMMON_SELECTORS.iter().map(|s| (*s).to_owned()).collect();
    let f = check_domain("ex.test", &probed, &[]);
    assert_eq!(ids(&f), [("dkim.none-found", Severity::Warning)]);
    assert!(f[0].fix.as_deref().unwrap().contains("--selector"));
    let (ed, _) = check_selector(
        "ex.test",
        &lookup("ed", &[format!("v=DKIM1; k=ed25519; p={ED25519_RAW}")], false),
    );
    assert_eq!(
        ids(&check_domain("ex.test", &probed, &[ed.unwrap()])),
        [("dkim.ed25519.only", Severity::Info)]
    );
}

#[test]
fn der_reader_rejects_malformed_lengths() {
    assert!(rsa_modulus_bits(&[]).is_err());
    assert!(rsa_modulus_bits(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(rsa_modulus_bits(&[0x30, 0x80, 0x00, 0x00]).is_err());
    assert!(rsa_modulus_bits(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    assert_eq!(
        rsa_modulus_bits(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x03]),
        Ok(8)
    );
}

proptest! {
    #[test]
    fn der_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = rsa_modulus_bits(&bytes);
        let _ = is_ed25519_spki(&bytes);
    }

    #[test]
    fn der_reader_never_panics_on_mutated_keys(pos in 0usize..162, byte in any::<u8>(), cut in 0usize..162) {
        let mut der = engine().decode(RSA_1024).unwrap();
        der[pos] = byte;
        der.truncate(cut.max(1));
        let _ = rsa_modulus_bits(&der);
    }

    #[test]
    fn key_parser_never_panics(text in "\\PC{0,300}") {
        let k = parse_dkim_key(&text);
        let _ = key_info(&k);
        let _ = check_selector("ex.test", &lookup("x", std::slice::from_ref(&text), true));
    }
}
