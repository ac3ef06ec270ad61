//! Secrets lent to packs: the `packhost:host/secrets` import, which hands a pack the value
//! of a secret its manifest declares and its host supplies, and the [`Redactor`] that keeps
//! every supplied value out of what a call reports (log lines, error messages) and out of
//! what the `packhost` command prints.
//!
//! Secrets travel apart from `config`: a pack never finds one among its config keys, and a
//! host that prints its options prints no value ([`Secrets`]' `Debug` hides them).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::audit::{name_excerpt, AuditEntry, Capability};
use super::host_fn::{BuiltinCall, HostFunction, WasmValue};
use crate::error::{Error, ErrorKind, Result};
use crate::module::{env, EnvFunction, ModuleInfo};

/// The import module of the secrets function.
pub const SECRETS_NAMESPACE: &str = "packhost:host/secrets";

/// Every `packhost:host/secrets` function, with its WebAssembly signature; `wit/` states the
/// same table, and a test keeps the two from drifting.
pub const SECRETS_FUNCTIONS: &[EnvFunction] = &[env("get", &["i64"], &["i64"])];

/// What replaces a secret's value wherever packhost reports text from a pack.
pub const REDACTED: &str = "[redacted]";

/// Secret values by name, as a host supplies them in the options. Its `Debug` and its
/// serialized form (what a binding shows as the pack's options) give names only, each
/// mapped to `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, String>);

impl Serialize for Secrets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.keys().map(|name| (name, REDACTED)))
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, REDACTED)))
            .finish()
    }
}

/// Replaces every supplied secret value in text a pack produced. Longer values go first, so
/// a value that contains another is replaced whole.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// A redactor for every value in `secrets` (empty values are no secret to hide), also
    /// in lower and upper case: a pack can put a value where packhost normalises its case
    /// before reporting it (a URL's host name, an HTTP method).
    pub fn new(secrets: &Secrets) -> Self {
        let mut values: Vec<String> = secrets
            .0
            .values()
            .filter(|value| !value.is_empty())
            .flat_map(|value| [value.clone(), value.to_lowercase(), value.to_uppercase()])
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    /// True when there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The length in bytes of the longest value hidden.
    pub(crate) fn longest(&self) -> usize {
        self.values.first().map_or(0, String::len)
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in &self.values {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), REDACTED);
            }
        }
        text
    }

    /// `bytes` with every secret value replaced by [`REDACTED`], for output that need not
    /// be text.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for value in &self.values {
            let needle = value.as_bytes();
            let mut kept = Vec::with_capacity(out.len());
            let mut rest = &out[..];
            while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
                kept.extend_from_slice(&rest[..at]);
                kept.extend_from_slice(REDACTED.as_bytes());
                rest = &rest[at + needle.len()..];
            }
            kept.extend_from_slice(rest);
            out = kept;
        }
        out
    }
}

/// The secrets one loaded pack may read: those its manifest declares that the host supplied.
pub(crate) struct SecretGrant {
    granted: BTreeMap<String, String>,
    declared: Vec<String>,
}

impl SecretGrant {
    /// The grant for a pack declaring `declared`, from what the host supplied.
    pub(crate) fn new(declared: &[String], supplied: &Secrets) -> Self {
        SecretGrant {
            granted: supplied
                .0
                .iter()
                .filter(|(name, _)| declared.contains(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            declared: declared.to_vec(),
        }
    }
}

/// The `packhost:host/secrets` functions for `module`, none when it imports none (or, for a
/// component, does not import `packhost:pack/secrets`, which serves them).
pub(crate) fn functions_for(module: &ModuleInfo, grant: Arc<SecretGrant>) -> Vec<HostFunction> {
    if !(module.imports_from(SECRETS_NAMESPACE)
        || module.imports_from(crate::module::COMPONENT_SECRETS))
    {
        return Vec::new();
    }
    vec![HostFunction::builtin(
        SECRETS_NAMESPACE,
        &SECRETS_FUNCTIONS[0],
        move |call, args, out| {
            let mut entry = AuditEntry::new(Capability::Secret, "read", "");
            let outcome = get(&grant, call, &mut entry, args, out);
            call.audit.record(entry.ended(&outcome));
            outcome
        },
    )]
}

fn get(
    grant: &SecretGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    out: &mut [WasmValue],
) -> Result<()> {
    let offset = match args.first() {
        Some(WasmValue::I64(offset)) => *offset,
        _ => 0,
    };
    let name = call.block(offset, "the secret's name")?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let shown = name_excerpt(&name);
    entry.target.clone_from(&shown);
    let value = match grant.granted.get(&name) {
        Some(value) => value,
        None if grant.declared.contains(&name) => {
            return Err(Error::new(
                ErrorKind::HostDenied,
                format!("secret {shown:?} is not granted: the host supplied no such secret"),
            ))
        }
        None => {
            return Err(Error::new(
                ErrorKind::HostDenied,
                format!("secret {shown:?} is not granted: the pack's manifest does not declare it"),
            ))
        }
    };
    out[0] = WasmValue::I64(call.give(value.as_bytes())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        )
    }

    #[test]
    fn every_value_is_replaced_longest_first_in_text_and_bytes() {
        let redactor = Redactor::new(&secrets(&[
            ("short", "abc"),
            ("long", "abcdef"),
            ("none", ""),
        ]));
        assert_eq!(
            redactor.redact("x abcdef y abc z"),
            "x [redacted] y [redacted] z"
        );
        assert_eq!(
            redactor.redact_bytes(b"\x00abcdef\xffabc"),
            b"\x00[redacted]\xff[redacted]".to_vec()
        );
        assert_eq!(redactor.redact("nothing here"), "nothing here");
    }

    #[test]
    fn debug_and_serialized_forms_show_names_and_never_values() {
        let supplied = secrets(&[("api_key", "sk_live_123")]);
        for text in [
            format!("{supplied:?}"),
            serde_json::to_string(&supplied).unwrap(),
        ] {
            assert!(text.contains("api_key"), "{text}");
            assert!(!text.contains("sk_live_123"), "{text}");
        }
    }

    #[test]
    fn a_value_is_found_whatever_case_it_was_put_in() {
        let redactor = Redactor::new(&secrets(&[("token", "AbC123xyz")]));
        assert_eq!(
            redactor.redact("host abc123xyz.example.com"),
            "host [redacted].example.com"
        );
        assert_eq!(redactor.redact("method ABC123XYZ"), "method [redacted]");
    }
}
