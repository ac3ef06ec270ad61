//! What a host grants a pack: limits, allowed HTTP hosts, config and log level.
//!
//! [`PackOptions`] is plain serde data so every binding passes the host language's own
//! object (a JS object, a Python dict, a Ruby Hash) through as JSON, unchanged: a new
//! option needs no binding change. Unknown fields are rejected so a typo never silently
//! loosens a limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capabilities::kv::KvOptions;
use crate::capabilities::secrets::Secrets;
use crate::error::{Error, Result};
use crate::hosts::HostPattern;
use crate::manifest::{Capabilities, HostFunctionSpec};

/// Hard limits on one call of a pack. The defaults are meant for untrusted code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Cap on all linear memory of one instance (the pack's and the ABI's), in bytes.
    /// Rounded down to whole 64 KiB WebAssembly pages. Default 64 MiB.
    pub memory_bytes: u64,
    /// Wall-clock limit of one call, in milliseconds. Default 1000.
    pub timeout_ms: u64,
    /// Instruction budget of one call, in fuel units (about one per WebAssembly
    /// instruction); `null` meters without a cap. Default 1,000,000,000.
    pub fuel: Option<u64>,
    /// Largest input a call accepts, in bytes. Default 8 MiB.
    pub max_input_bytes: u64,
    /// Largest output a call may return, in bytes. Default 8 MiB.
    pub max_output_bytes: u64,
    /// Most bytes of vars (keys and values) one instance keeps, Extism's
    /// `memory.max_var_bytes`; they count against `memory_bytes` too. Default 1 MiB.
    pub max_var_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout_ms: 1000,
            fuel: Some(1_000_000_000),
            max_input_bytes: 8 << 20,
            max_output_bytes: 8 << 20,
            max_var_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The memory cap in whole WebAssembly pages, at least one.
    pub(crate) fn memory_pages(&self) -> u32 {
        let pages = self.memory_bytes / 65536;
        pages.clamp(1, u64::from(u32::MAX)) as u32
    }
}

/// The level of plugin log lines a host wants; lower levels are never formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal progress.
    #[default]
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
    /// No plugin log lines at all.
    Off,
}

impl LogLevel {
    /// The level's lowercase name, as it appears in options and log records.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// Which engine runs a pack's calls. Both implement the same Extism ABI and give the same
/// outputs and error codes; fuel counts differ, because extism's kernel is itself WebAssembly
/// and burns the pack's fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// packhost's own implementation of the ABI on wasmtime: the fast one.
    #[default]
    Native,
    /// The `extism` crate, kept as the reference implementation.
    Extism,
}

impl EngineKind {
    /// The engine's lowercase name, as it appears in options.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::Extism => "extism",
        }
    }
}

/// Which calls may share an instance (its linear memory, globals, vars and WASI state),
/// and so see what an earlier call left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Every call runs on a fresh instance: nothing of one call (its input, what it wrote
    /// to memory, vars) can reach the next. The default, because a pack serving several
    /// callers could otherwise hand one caller's data to another; fresh instances come from
    /// copy-on-write memory images, so this costs microseconds.
    #[default]
    Call,
    /// Instances are reused only between calls for the same tenant: the call `context`'s
    /// `tenant` field, or the whole `context` when it has none (see [`tenant_of`]).
    Context,
    /// Instances are reused by any call (warm state kept, as the official Extism hosts do):
    /// for trusted packs that want caches or counters to outlive a call.
    Pack,
}

impl Isolation {
    /// The mode's lowercase name, as it appears in options.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Call => "call",
            Isolation::Context => "context",
            Isolation::Pack => "pack",
        }
    }
}

/// The tenant a call is for: its `context`'s `tenant` field when the context is an object
/// that has one, else the whole context (`null` when there is none). Instances under
/// `isolation: "context"` are shared only between calls with equal tenants.
pub fn tenant_of(context: &serde_json::Value) -> &serde_json::Value {
    context.get("tenant").unwrap_or(context)
}

/// How far a pack's HTTP may go beyond which hosts it reaches (`allowed_hosts`). The
/// defaults refuse everything a pack could use to reach the host's own network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Redirects followed per request, each hop checked like the first. Default 0: a
    /// redirect response is handed to the pack as it is.
    pub max_redirects: u32,
    /// Ports a URL may name (its scheme's default counts when it names none). Default 80
    /// and 443.
    pub allowed_ports: Vec<u16>,
    /// Hosts (patterns as in `allowed_hosts`) that may resolve to loopback, private,
    /// link-local or other non-public addresses. Default none: such addresses are refused
    /// for every host, whatever its name or DNS answer.
    pub allow_private_hosts: Vec<String>,
    /// Requests one call may make. Default 16.
    pub max_requests_per_call: u32,
    /// Largest decoded response body, in bytes (Extism's `memory.max_http_response_bytes`);
    /// a body is also never larger than the memory the pack may still hold. Default `null`:
    /// only that memory caps it.
    pub max_response_bytes: Option<u64>,
    /// Whether packs may read the response headers of their requests (the ABI's
    /// `http_headers`; Extism's `http_response_headers`). Default `false`, as in Extism: a
    /// pack sees none.
    pub response_headers: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_redirects: 0,
            allowed_ports: vec![80, 443],
            allow_private_hosts: Vec::new(),
            max_requests_per_call: 16,
            max_response_bytes: None,
            response_headers: false,
        }
    }
}

/// Everything a host grants one loaded pack. Deny by default: a pack gets an HTTP host or
/// a config key only when both its manifest asks for it and these options grant it. A
/// plugin without a manifest cannot ask, and gets every granted config key and HTTP host
/// ([`PackOptions::granted_capabilities`]), as in Extism.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackOptions {
    /// Limits applied to every call.
    pub limits: Limits,
    /// HTTP hosts the pack may reach: exact names (`api.example.com`), a wildcard over
    /// subdomains (`*.example.com`, which never matches `example.com` or `evilexample.com`)
    /// or `*`, any host.
    pub allowed_hosts: Vec<String>,
    /// Limits on HTTP to those hosts: redirects, ports, private addresses, requests.
    pub http: HttpOptions,
    /// Config values; a pack sees only keys its manifest declares (a plugin without a
    /// manifest sees them all, as in Extism).
    pub config: BTreeMap<String, String>,
    /// Secret values by name, kept apart from `config`: a pack reads one (through
    /// `packhost:host/secrets`) only when its manifest declares the name, and every value
    /// is replaced by `[redacted]` in the log lines and error messages of its calls.
    pub secrets: Secrets,
    /// Lowest plugin log level recorded. Default `info`.
    pub log_level: LogLevel,
    /// Let the pack import WASI (`wasi_snapshot_preview1`), needed by some guest languages.
    /// It gets no environment and no network through WASI, and no files but the
    /// `allowed_paths` it is granted. Default false.
    pub allow_wasi: bool,
    /// Host directories the pack may open through WASI, host path → guest path, as in
    /// Extism (`ro:` before the host path mounts it read-only). Needs `allow_wasi`. A pack
    /// with a manifest gets only the guest paths its manifest names under `paths`; a plugin
    /// without one gets them all. Default none.
    pub allowed_paths: BTreeMap<String, String>,
    /// The engine that runs calls. Default `native`.
    pub engine: EngineKind,
    /// Which calls may share an instance. Default `call`: none.
    pub isolation: Isolation,
    /// Key-value storage for packs whose manifest asks for `kv`: where it is kept and its
    /// quotas. Default `null`: not granted.
    pub kv: Option<KvOptions>,
    /// A JSON Lines file each call's usage record is appended to (created `0600` when
    /// missing), for billing without wrapping every call. Default `null`: none.
    pub usage_log: Option<String>,
    /// A JSON Lines file each call's audit entries are appended to, one per line with the
    /// pack, action and context. Default `null`: none.
    pub audit_log: Option<String>,
    /// Public keys (`ed25519:BASE64`, as `packhost keygen` prints them) whose signatures this
    /// host trusts. With any set, a signed pack must be signed by one of them, validly, for
    /// its own bytes, name and version, or it is refused with `untrusted_pack`. Default
    /// none: signatures are not looked at.
    pub trusted_keys: Vec<String>,
    /// Refuse unsigned packs too (`untrusted_pack`); needs `trusted_keys`. Default false.
    pub require_signature: bool,
    /// The pack's signature (a `packhost sign` document). Default: for a pack loaded from a
    /// file, the `FILE.sig` beside it, if any.
    pub signature: Option<crate::trust::PackSignature>,
}

impl PackOptions {
    /// Reads options from JSON text, as bindings pass them.
    ///
    /// # Errors
    /// `invalid_options` for malformed JSON, unknown fields, wrong types or bad host patterns.
    pub fn from_json(text: &str) -> Result<Self> {
        let options: PackOptions = serde_json::from_str(text)
            .map_err(|err| Error::invalid_options(format!("options: {err}")))?;
        options.validate()?;
        Ok(options)
    }

    /// Reads options from a JSON value; `null` means the defaults.
    ///
    /// # Errors
    /// As [`PackOptions::from_json`].
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        if value.is_null() {
            return Ok(PackOptions::default());
        }
        let options: PackOptions = serde_json::from_value(value)
            .map_err(|err| Error::invalid_options(format!("options: {err}")))?;
        options.validate()?;
        Ok(options)
    }

    /// Checks what serde cannot: host patterns parse and limits are usable.
    ///
    /// # Errors
    /// `invalid_options` naming the offending value.
    pub fn validate(&self) -> Result<()> {
        for host in &self.allowed_hosts {
            HostPattern::parse(host)
                .map_err(|why| Error::invalid_options(format!("allowed_hosts: {host:?} {why}")))?;
        }
        for host in &self.http.allow_private_hosts {
            let pattern = HostPattern::parse(host).map_err(|why| {
                Error::invalid_options(format!("http.allow_private_hosts: {host:?} {why}"))
            })?;
            // `*` here would switch the address rules off for every host, the cloud
            // metadata endpoint included: the opt-in must name the hosts it trusts.
            if pattern == HostPattern::Any {
                return Err(Error::invalid_options(
                    "http.allow_private_hosts: \"*\" would let every host reach private and \
                     metadata addresses; name the hosts",
                ));
            }
        }
        crate::capabilities::files::parse(&self.allowed_paths, self.allow_wasi)?;
        // A key is named by its place, never quoted: a secret key put here by mistake must
        // not reach the host's logs through this message.
        for (at, key) in self.trusted_keys.iter().enumerate() {
            crate::trust::public_key(key)
                .map_err(|why| Error::invalid_options(format!("trusted_keys[{at}]: {why}")))?;
        }
        if self.trusted_keys.is_empty() && (self.require_signature || self.signature.is_some()) {
            return Err(Error::invalid_options(
                "require_signature and signature need trusted_keys: the public keys whose \
                 signatures count (without them nothing is verified)",
            ));
        }
        if self.limits.timeout_ms == 0 {
            return Err(Error::invalid_options(
                "limits.timeout_ms must be at least 1",
            ));
        }
        if self.limits.memory_bytes < 65536 {
            return Err(Error::invalid_options(
                "limits.memory_bytes must be at least one 64 KiB page",
            ));
        }
        Ok(())
    }

    /// What these options grant a plugin without a packhost manifest, which cannot ask: as
    /// in Extism, every config key, every granted HTTP host and every mounted directory. packhost's own capabilities
    /// (secrets, key-value storage) still need a manifest that names them, so stripping a
    /// pack's manifest never widens what it reads. `host_functions` are the module's own
    /// imports.
    pub fn granted_capabilities(&self, host_functions: &[HostFunctionSpec]) -> Capabilities {
        Capabilities {
            http_hosts: self.allowed_hosts.clone(),
            config: self.config.keys().cloned().collect(),
            host_functions: host_functions.to_vec(),
            kv: false,
            secrets: Vec::new(),
            paths: self.allowed_paths.values().cloned().collect(),
        }
    }
}

/// What one call carries besides its input, as plain data a binding passes through.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallOptions {
    /// Any JSON value the caller wants host functions to see (a tenant, a request id, a
    /// user): one function registered once can serve every tenant. Default `null`.
    pub context: serde_json::Value,
    /// Cancels the call when the host cancels this token from another thread: the call
    /// ends with `cancelled`. Not data: a binding sets it after reading the rest as JSON.
    #[serde(skip)]
    pub cancel: Option<crate::CancelToken>,
}

impl CallOptions {
    /// Reads call options from JSON text, as bindings pass them.
    ///
    /// # Errors
    /// `invalid_options` for malformed JSON or unknown fields.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|err| Error::invalid_options(format!("call options: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_safe_defaults() {
        let options = PackOptions::from_json("{}").unwrap();
        assert_eq!(options, PackOptions::default());
        assert_eq!(options.limits.timeout_ms, 1000);
        assert!(options.allowed_hosts.is_empty());
        assert!(!options.allow_wasi);
        assert_eq!(options.isolation, Isolation::Call);
    }

    #[test]
    fn isolation_is_named_in_lowercase_and_the_tenant_comes_from_the_context() {
        let options = PackOptions::from_json(r#"{"isolation": "context"}"#).unwrap();
        assert_eq!(options.isolation, Isolation::Context);
        let err = PackOptions::from_json(r#"{"isolation": "none"}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_options");
        let tenant = serde_json::json!({"tenant": "acme", "request": 7});
        assert_eq!(tenant_of(&tenant), "acme");
        let bare = serde_json::json!("acme");
        assert_eq!(tenant_of(&bare), &bare);
        assert!(tenant_of(&serde_json::Value::Null).is_null());
    }

    #[test]
    fn partial_limits_keep_the_other_defaults() {
        let options = PackOptions::from_json(r#"{"limits": {"timeout_ms": 50}}"#).unwrap();
        assert_eq!(options.limits.timeout_ms, 50);
        assert_eq!(options.limits.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn a_typo_is_an_error_not_a_silent_default() {
        let err = PackOptions::from_json(r#"{"limits": {"timeout": 50}}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_options");
        assert!(err.message().contains("timeout"), "{}", err.message());
    }

    #[test]
    fn bad_host_pattern_is_rejected() {
        let err = PackOptions::from_json(r#"{"allowed_hosts": ["*example.com"]}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_options");
    }

    #[test]
    fn http_defaults_refuse_redirects_private_addresses_and_odd_ports() {
        let http = PackOptions::from_json("{}").unwrap().http;
        assert_eq!(http.max_redirects, 0);
        assert_eq!(http.allowed_ports, [80, 443]);
        assert!(http.allow_private_hosts.is_empty());
        assert_eq!(http.max_requests_per_call, 16);
        let err =
            PackOptions::from_json(r#"{"http": {"allow_private_hosts": ["*bad"]}}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_options");
        assert!(err.message().contains("allow_private_hosts"), "{err}");
    }

    #[test]
    fn null_fuel_means_metered_without_cap() {
        let options = PackOptions::from_json(r#"{"limits": {"fuel": null}}"#).unwrap();
        assert_eq!(options.limits.fuel, None);
    }
}
