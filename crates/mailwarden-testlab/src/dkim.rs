//! DKIM signing for lab mail: a fresh Ed25519 key (RFC 8463) per signer,
//! the TXT record to publish in the lab's DNS zone, and signing of raw
//! messages with mail-auth — so mail the lab sends carries a genuine
//! signature that a verifier checks against the private DNS server.
//!
//! The lab signs in the harness (the way a submitting client or a signing
//! milter would) before the message is handed to Postfix with swaks; the
//! Received lines Postfix adds later are outside the signed header set.

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;

use crate::LabError;

/// Headers the lab signs (RFC 6376 §5.4.1's recommended core set).
const SIGNED_HEADERS: [&str; 6] = ["From", "To", "Subject", "Date", "Message-ID", "Reply-To"];

/// A DKIM signing identity: domain, selector and an Ed25519 key pair.
pub struct LabSigner {
    domain: String,
    selector: String,
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for LabSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl LabSigner {
    /// A new random key for `d=domain`, `s=selector`.
    pub fn generate(domain: &str, selector: &str) -> Result<LabSigner, LabError> {
        let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| dkim_error("generating a key", e))?;
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| dkim_error("loading the key", e))?;
        Ok(LabSigner {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            public_key: key.public_key(),
            pkcs8,
        })
    }

    /// The record's owner name relative to the signing domain's zone
    /// (`SELECTOR._domainkey`), for [`crate::DnsZone::txt`].
    pub fn record_name(&self) -> String {
        format!("{}._domainkey", self.selector)
    }

    /// The DKIM key record text (`v=DKIM1; k=ed25519; p=…`).
    pub fn record_text(&self) -> String {
        format!("v=DKIM1; k=ed25519; p={}", base64(&self.public_key))
    }

    /// `raw` (a complete message, CRLF line ends) with a `DKIM-Signature`
    /// header prepended.
    pub fn sign(&self, raw: &str) -> Result<String, LabError> {
        let key = Ed25519Key::from_pkcs8_der(&self.pkcs8).map_err(|e| dkim_error("loading the key", e))?;
        let signature = DkimSigner::from_key(key)
            .domain(self.domain.as_str())
            .selector(self.selector.as_str())
            .headers(SIGNED_HEADERS)
            .sign(raw.as_bytes())
            .map_err(|e| dkim_error("signing", e))?;
        Ok(format!("{}{raw}", signature.to_header()))
    }
}

fn dkim_error(step: &str, e: mail_auth::Error) -> LabError {
    LabError::Scenario {
        step: format!("dkim: {step}"),
        problem: e.to_string(),
        transcript: String::new(),
    }
}

/// Standard base64 with padding (RFC 4648 §4). Written out because the lab
/// needs it for one 32-byte key and should not pull a crate for that.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn signs_with_a_fresh_key() {
        let signer = LabSigner::generate("lab.test", "mw").unwrap();
        assert!(signer.record_text().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(signer.record_name(), "mw._domainkey");
        let signed = signer
            .sign("From: a@lab.test\r\nTo: b@remote.test\r\nSubject: x\r\n\r\nbody\r\n")
            .unwrap();
        assert!(
            signed.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{signed}"
        );
        assert!(signed.contains("d=lab.test"), "{signed}");
        assert!(signed.ends_with("\r\n\r\nbody\r\n"));
    }
}
