//! Pack signatures and the trust policy a host sets: an ed25519 signature over a pack's
//! SHA-256 and its manifest identity (name, version), kept beside the pack (`PACK.sig`), and
//! the options `trusted_keys` and `require_signature` that loading enforces with
//! `untrusted_pack`.
//!
//! What is signed is one line per field, after a format tag:
//! `packhost-signature-v1\nsha256:<hex>\nname:<name>\nversion:<version>\n`. Names and
//! versions with control characters are refused, so no field can spill into the next.
//! Keys travel as text: a public key is `ed25519:` and the base64 of its 32 bytes, a secret
//! key `ed25519-secret:` and the base64 of its 32-byte seed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The format tag of a signature document and the first line of what it signs.
pub const SIGNATURE_FORMAT: &str = "packhost-signature-v1";

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A pack's signature, as stored beside it (`PACK.sig`, JSON) or given in the `signature`
/// load option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSignature {
    /// [`SIGNATURE_FORMAT`].
    pub format: String,
    /// The pack's identity, [`crate::Pack::id`]: the SHA-256 of its module (of its modules,
    /// for a plugin with linked ones), lowercase hex.
    pub sha256: String,
    /// The name in the pack's manifest.
    pub name: String,
    /// The version in the pack's manifest.
    pub version: String,
    /// The public key that signed, `ed25519:BASE64`.
    pub key: String,
    /// The ed25519 signature, base64.
    pub signature: String,
}

/// A new key pair: the secret key and its public key, as text.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyPair {
    /// `ed25519-secret:BASE64`; keep it private.
    pub secret_key: String,
    /// `ed25519:BASE64`; what hosts list in `trusted_keys`.
    pub public_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("secret_key", &"[redacted]")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Where a pack file's signature is kept: beside it, `PACK.sig` (`pack.wasm.sig`), where
/// `packhost sign` writes it and [`crate::Pack::load_file`] reads it.
pub fn signature_path(pack: &std::path::Path) -> std::path::PathBuf {
    let mut path = pack.as_os_str().to_owned();
    path.push(".sig");
    std::path::PathBuf::from(path)
}

fn untrusted(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::UntrustedPack, message)
}

/// What a signature covers, or a message when a field could blur the line between two.
fn signed_text(sha256: &str, name: &str, version: &str) -> std::result::Result<String, String> {
    for (field, value) in [("sha256", sha256), ("name", name), ("version", version)] {
        if value.chars().any(char::is_control) {
            return Err(format!(
                "the pack's {field} {value:?} holds a control character"
            ));
        }
    }
    Ok(format!(
        "{SIGNATURE_FORMAT}\nsha256:{sha256}\nname:{name}\nversion:{version}\n"
    ))
}

/// The 32 bytes after `prefix`, or a message saying what is wrong.
fn key_bytes(text: &str, prefix: &str, what: &str) -> std::result::Result<[u8; 32], String> {
    let encoded = text
        .strip_prefix(prefix)
        .ok_or_else(|| format!("{what} must start with {prefix:?}"))?;
    let bytes = BASE64
        .decode(encoded.trim())
        .map_err(|err| format!("{what} is not base64: {err}"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("{what} holds {} bytes, not 32", bytes.len()))
}

/// Parses a public key (`ed25519:BASE64`).
///
/// # Errors
/// A message naming what is wrong with it.
pub(crate) fn public_key(text: &str) -> std::result::Result<VerifyingKey, String> {
    let bytes = key_bytes(text, PUBLIC_PREFIX, "a public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an ed25519 public key".to_string())
}

fn public_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", BASE64.encode(key.as_bytes()))
}

impl KeyPair {
    /// A new random key pair.
    ///
    /// # Errors
    /// `internal` when the system has no randomness to give.
    pub fn generate() -> Result<KeyPair> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|err| Error::new(ErrorKind::Internal, format!("randomness: {err}")))?;
        let secret = SigningKey::from_bytes(&seed);
        Ok(KeyPair {
            secret_key: format!("{SECRET_PREFIX}{}", BASE64.encode(seed)),
            public_key: public_text(&secret.verifying_key()),
        })
    }
}

impl PackSignature {
    /// Signs a pack's identity with `secret_key` (`ed25519-secret:BASE64`).
    ///
    /// # Errors
    /// `invalid_options` for a malformed secret key.
    pub fn sign(sha256: &str, name: &str, version: &str, secret_key: &str) -> Result<Self> {
        let seed = key_bytes(secret_key, SECRET_PREFIX, "the secret key")
            .map_err(Error::invalid_options)?;
        let secret = SigningKey::from_bytes(&seed);
        let text = signed_text(sha256, name, version).map_err(Error::invalid_pack)?;
        let signature = secret.sign(text.as_bytes());
        Ok(PackSignature {
            format: SIGNATURE_FORMAT.to_string(),
            sha256: sha256.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            key: public_text(&secret.verifying_key()),
            signature: BASE64.encode(signature.to_bytes()),
        })
    }

    /// Reads a signature document (JSON).
    ///
    /// # Errors
    /// `untrusted_pack` when it is not one: a host that asked for signatures cannot use it.
    pub fn from_json(text: &[u8]) -> Result<Self> {
        serde_json::from_slice(text)
            .map_err(|err| untrusted(format!("the signature is not a packhost signature: {err}")))
    }

    /// Checks that this signature is by one of `trusted_keys` and covers the pack with
    /// identity `sha256`, `name` and `version`.
    ///
    /// # Errors
    /// `untrusted_pack` saying which part fails.
    pub fn verify(
        &self,
        sha256: &str,
        name: &str,
        version: &str,
        trusted_keys: &[String],
    ) -> Result<()> {
        if self.format != SIGNATURE_FORMAT {
            return Err(untrusted(format!(
                "the signature's format is {:?}, not {SIGNATURE_FORMAT:?}",
                self.format
            )));
        }
        // Checked before anything from the document is compared or shown.
        let text = signed_text(sha256, name, version).map_err(untrusted)?;
        if let Err(why) = signed_text(&self.sha256, &self.name, &self.version) {
            return Err(untrusted(format!("the signature: {why}")));
        }
        if self.sha256 != sha256 {
            return Err(untrusted(format!(
                "the signature is for the pack {:?}, not this one ({sha256})",
                self.sha256
            )));
        }
        if self.name != name || self.version != version {
            return Err(untrusted(format!(
                "the signature is for {:?} {:?}, not {name:?} {version:?}",
                self.name, self.version
            )));
        }
        let key = public_key(&self.key)
            .map_err(|why| untrusted(format!("the signature's key: {why}")))?;
        // Compared as keys, so spellings of one key that differ in surrounding whitespace agree.
        let trusted = trusted_keys
            .iter()
            .filter_map(|text| public_key(text).ok())
            .any(|candidate| candidate == key);
        if !trusted {
            return Err(untrusted(format!(
                "the pack is signed by {:?}, which is not among trusted_keys",
                self.key
            )));
        }
        let bytes: [u8; 64] = BASE64
            .decode(self.signature.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| untrusted("the signature is not 64 bytes of base64"))?;
        key.verify_strict(
            text.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| untrusted("the signature does not match the pack: it was altered or forged"))
    }
}

/// Applies a host's trust policy to a pack being loaded. Without `trusted_keys` there is no
/// policy. With them, a signature that is present must be valid and by one of them (a
/// wrong one is refused even when signatures are optional), and `require_signature` refuses
/// an unsigned pack.
///
/// # Errors
/// `untrusted_pack`.
pub(crate) fn enforce(
    trusted_keys: &[String],
    require_signature: bool,
    signature: Option<&PackSignature>,
    sha256: &str,
    name: &str,
    version: &str,
) -> Result<()> {
    if trusted_keys.is_empty() {
        return Ok(());
    }
    match signature {
        Some(signature) => signature.verify(sha256, name, version, trusted_keys),
        None if require_signature => Err(untrusted(
            "the pack is not signed, and this host requires a signature (require_signature)",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab12";

    fn signed() -> (KeyPair, PackSignature) {
        let keys = KeyPair::generate().unwrap();
        let signature = PackSignature::sign(ID, "demo", "1.0.0", &keys.secret_key).unwrap();
        (keys, signature)
    }

    #[test]
    fn a_signature_verifies_against_its_key_only() {
        let (keys, signature) = signed();
        signature
            .verify(ID, "demo", "1.0.0", std::slice::from_ref(&keys.public_key))
            .unwrap();
        let other = KeyPair::generate().unwrap();
        let err = signature
            .verify(ID, "demo", "1.0.0", &[other.public_key])
            .unwrap_err();
        assert_eq!(err.code(), "untrusted_pack");
        assert!(
            err.message().contains("not among trusted_keys"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn every_signed_field_is_bound() {
        let (keys, signature) = signed();
        let trusted = [keys.public_key];
        for (id, name, version) in [
            ("ab13", "demo", "1.0.0"),
            (ID, "demo2", "1.0.0"),
            (ID, "demo", "1.0.1"),
        ] {
            let err = signature.verify(id, name, version, &trusted).unwrap_err();
            assert_eq!(err.code(), "untrusted_pack");
        }
        // A document edited to name another pack no longer matches its signature.
        let mut forged = signature.clone();
        forged.version = "9.9.9".to_string();
        let err = forged.verify(ID, "demo", "9.9.9", &trusted).unwrap_err();
        assert!(
            err.message().contains("altered or forged"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn the_policy_needs_keys_and_refuses_unsigned_packs_only_when_required() {
        let (keys, signature) = signed();
        let trusted = [keys.public_key];
        enforce(&[], false, None, ID, "demo", "1.0.0").unwrap();
        enforce(&trusted, false, None, ID, "demo", "1.0.0").unwrap();
        enforce(&trusted, true, Some(&signature), ID, "demo", "1.0.0").unwrap();
        let err = enforce(&trusted, true, None, ID, "demo", "1.0.0").unwrap_err();
        assert_eq!(err.code(), "untrusted_pack");
    }

    #[test]
    fn a_field_cannot_spill_into_the_next() {
        let keys = KeyPair::generate().unwrap();
        let err = PackSignature::sign(ID, "a\nversion:b", "c", &keys.secret_key).unwrap_err();
        assert!(
            err.message().contains("control character"),
            "{}",
            err.message()
        );
        assert!(
            !format!("{keys:?}").contains(&keys.secret_key),
            "Debug hides the secret"
        );
    }

    #[test]
    fn a_non_canonical_signature_is_refused() {
        // S + L (the group order) verifies under lax rules; strict verification refuses it.
        let (keys, mut signature) = signed();
        let mut bytes = BASE64.decode(&signature.signature).unwrap();
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (at, l) in L.iter().enumerate() {
            let sum = u16::from(bytes[32 + at]) + u16::from(*l) + carry;
            bytes[32 + at] = sum as u8;
            carry = sum >> 8;
        }
        signature.signature = BASE64.encode(&bytes);
        let err = signature
            .verify(ID, "demo", "1.0.0", &[keys.public_key])
            .unwrap_err();
        assert_eq!(err.code(), "untrusted_pack");
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        assert!(public_key("ed25519:!!").unwrap_err().contains("base64"));
        assert!(public_key("rsa:AAAA")
            .unwrap_err()
            .contains("must start with"));
        assert!(public_key("ed25519:AAAA").unwrap_err().contains("not 32"));
        let err = PackSignature::sign(ID, "demo", "1", "ed25519:AAAA").unwrap_err();
        assert_eq!(err.code(), "invalid_options");
    }
}
