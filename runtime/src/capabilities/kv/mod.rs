//! Key-value storage lent to packs: the `packhost:host/kv` imports, the grant check, key and
//! value caps, per-tenant quotas and per-call operation counts, all here once for both
//! engines; the backends (`memory`, `sqlite`, and any a separate crate registers, such as
//! packhost-redis) only store what this module has already checked.
//!
//! Every key lives under a [`Scope`]: the tenant of the call's `context` and the calling
//! pack's name. Backends keep the scope apart from the key bytes, so no key a pack sends can
//! name another tenant's or another pack's entry.

pub(crate) mod memory;
pub(crate) mod sqlite;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::audit::{AuditEntry, Capability};
use super::host_fn::{BuiltinCall, HostFunction, WasmValue};
use crate::error::{Error, ErrorKind, Result};
use crate::module::{env, EnvFunction, ModuleInfo};
use crate::options::tenant_of;

/// The import module of the key-value functions.
pub const KV_NAMESPACE: &str = "packhost:host/kv";

/// What a host grants a pack's key-value storage: where it is kept and how much a tenant
/// and a call may use. Present in the options means granted (to a pack whose manifest asks
/// for `kv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvOptions {
    /// Where entries are kept: `sqlite` (the default: a file that survives restarts and may
    /// be opened by several processes at once), `memory` (this process only, for tests), or
    /// a backend a separate crate registers (`redis`, from packhost-redis).
    pub backend: String,
    /// `sqlite`: the database file, created when missing. `memory`: the store's name in
    /// this process; loads naming the same store share it while any of them is alive.
    pub path: String,
    /// A network backend's address, e.g. `redis://127.0.0.1:6379/0`. A password in it is
    /// shown as `[redacted]` when the options are serialized (as bindings show them).
    #[serde(serialize_with = "url_without_password")]
    pub url: String,
    /// The name the pack's keys are kept under, beside the tenant. Default: the pack's
    /// manifest name, which the pack itself chooses; a host that loads packs it does not
    /// trust to name themselves sets one per pack, so no pack can claim another's keys.
    pub namespace: String,
    /// Longest key, in bytes of UTF-8. Default 256.
    pub max_key_bytes: u64,
    /// Largest value, in bytes. Default 1 MiB.
    pub max_value_bytes: u64,
    /// Most bytes (keys plus values, over all packs) one tenant may keep. Default 64 MiB.
    pub max_bytes_per_tenant: u64,
    /// Most keys (over all packs) one tenant may keep. Default 10,000.
    pub max_keys_per_tenant: u64,
    /// Most key-value operations one call may make. Default 1,000.
    pub max_ops_per_call: u64,
    /// Most keys one `list` returns; a pack pages on with `after`. Default 1,000.
    pub max_list_keys: u64,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions {
            backend: "sqlite".to_string(),
            path: String::new(),
            url: String::new(),
            namespace: String::new(),
            max_key_bytes: 256,
            max_value_bytes: 1 << 20,
            max_bytes_per_tenant: 64 << 20,
            max_keys_per_tenant: 10_000,
            max_ops_per_call: 1_000,
            max_list_keys: 1_000,
        }
    }
}

fn url_without_password<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(crate::capabilities::secrets::REDACTED));
            serializer.serialize_str(parsed.as_str())
        }
        _ => serializer.serialize_str(url),
    }
}

/// Where a key lives: the tenant of the call (its `context`'s tenant as JSON text, `null`
/// without one) and the calling pack's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope<'a> {
    /// The tenant, as the JSON text of [`tenant_of`] the call's context.
    pub tenant: &'a str,
    /// The calling pack's manifest name.
    pub pack: &'a str,
}

/// What a write requires of the entry it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// Anything, or nothing: a plain `set`.
    Any,
    /// No live entry.
    Absent,
    /// A live entry holding exactly these bytes.
    Value(&'a [u8]),
}

/// One write: `value` `None` removes the entry.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The key (checked: non-empty UTF-8 within the cap).
    pub key: &'a str,
    /// The new value, or `None` to remove the entry.
    pub value: Option<&'a [u8]>,
    /// When the new entry stops being visible, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// What the current entry must be for the write to happen.
    pub expect: Expect<'a>,
}

/// When an operation happens, and when the call it serves must end.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Now, in milliseconds since the Unix epoch: entries that expire at or before it are
    /// gone.
    pub now_ms: u64,
    /// The call's deadline: a backend waits for a lock or a server no longer than this.
    pub deadline: Option<Instant>,
}

impl Moment {
    /// Now, for a call ending at `deadline`.
    pub fn now(deadline: Option<Instant>) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .unwrap_or(0);
        Moment { now_ms, deadline }
    }

    /// Time left before the deadline, at most `cap`.
    pub fn remaining(&self, cap: std::time::Duration) -> std::time::Duration {
        match self.deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(cap),
            None => cap,
        }
    }
}

/// How much one tenant may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Keys plus values, in bytes.
    pub max_bytes: u64,
    /// Entries.
    pub max_keys: u64,
}

/// What a tenant keeps: the figures its quota is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Keys plus values, in bytes.
    pub bytes: u64,
    /// Entries.
    pub keys: u64,
}

impl TenantUsage {
    /// The usage after an entry of `old` bytes (key plus value; `None` when there was none)
    /// becomes one of `new` bytes (`None` when removed), or `quota_exceeded` when that
    /// would pass `quota`. Shrinking is always allowed, even past a quota lowered since.
    ///
    /// # Errors
    /// `quota_exceeded` naming the figure and its limit.
    pub fn replace(self, old: Option<u64>, new: Option<u64>, quota: &Quota) -> Result<Self> {
        let bytes = self.bytes - old.unwrap_or(0).min(self.bytes) + new.unwrap_or(0);
        let keys = self.keys - u64::from(old.is_some()).min(self.keys) + u64::from(new.is_some());
        if bytes > self.bytes && bytes > quota.max_bytes {
            return Err(quota_exceeded(format!(
                "the tenant would keep {bytes} bytes; its quota is {}",
                quota.max_bytes
            )));
        }
        if keys > self.keys && keys > quota.max_keys {
            return Err(quota_exceeded(format!(
                "the tenant would keep {keys} keys; its quota is {}",
                quota.max_keys
            )));
        }
        Ok(TenantUsage { bytes, keys })
    }
}

/// What a [`KvStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// The expectation held and the write happened.
    pub applied: bool,
    /// A live entry was there before.
    pub existed: bool,
}

/// A key-value backend. Every method gets checked arguments (scope, key sizes, quota) and
/// must keep scopes apart, apply each write atomically (a compare-and-set that two
/// processes race on succeeds for one of them), treat entries past their expiry as absent,
/// and wait no longer than `at.deadline`.
pub trait KvStore: Send + Sync {
    /// The live value under `key`.
    ///
    /// # Errors
    /// `io` when the backend fails; `timeout` when it cannot answer before the deadline.
    fn get(&self, scope: Scope<'_>, key: &str, at: Moment) -> Result<Option<Vec<u8>>>;

    /// Applies `write` if its expectation holds, keeping the tenant within `quota`. A
    /// removal that finds no live entry is still applied.
    ///
    /// # Errors
    /// `quota_exceeded` when the write would take the tenant past `quota` (after entries
    /// past their expiry are dropped); as [`KvStore::get`].
    fn put(&self, scope: Scope<'_>, write: Write<'_>, quota: &Quota, at: Moment) -> Result<Put>;

    /// Up to `limit` live keys starting with `prefix`, after `after` when given, in byte
    /// order.
    ///
    /// # Errors
    /// As [`KvStore::get`].
    fn list(
        &self,
        scope: Scope<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        at: Moment,
    ) -> Result<Vec<String>>;
}

/// Makes a `quota_exceeded` error.
pub fn quota_exceeded(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::QuotaExceeded, message)
}

/// Makes the error a backend failure becomes: `io`, naming the backend.
pub fn backend_failed(backend: &str, err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("kv backend {backend}: {err}"))
}

/// Opens a backend for options naming it, or fails.
pub type KvBackendFactory = fn(&KvOptions) -> Result<Arc<dyn KvStore>>;

fn factories() -> &'static Mutex<HashMap<String, KvBackendFactory>> {
    static FACTORIES: OnceLock<Mutex<HashMap<String, KvBackendFactory>>> = OnceLock::new();
    FACTORIES.get_or_init(Default::default)
}

/// Makes the backend `name` available to `kv.backend`, for crates that keep a heavy client
/// out of the core (packhost-redis registers `redis`). Registering a name again replaces it.
pub fn register_kv_backend(name: &str, factory: KvBackendFactory) {
    if let Ok(mut factories) = factories().lock() {
        factories.insert(name.to_string(), factory);
    }
}

/// The store `options` name, shared with every live load that names the same one: one
/// connection pool per database file or server, one map per memory store.
///
/// # Errors
/// `invalid_options` for an unknown backend or a missing path or URL; `io` when the store
/// cannot be opened.
pub(crate) fn open_store(options: &KvOptions) -> Result<Arc<dyn KvStore>> {
    type Open = Mutex<HashMap<(String, String, String), Weak<dyn KvStore>>>;
    static OPEN: OnceLock<Open> = OnceLock::new();
    let identity = (
        options.backend.clone(),
        options.path.clone(),
        options.url.clone(),
    );
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| Error::new(ErrorKind::Internal, "kv store registry poisoned"))?;
    if let Some(store) = open.get(&identity).and_then(Weak::upgrade) {
        return Ok(store);
    }
    let store: Arc<dyn KvStore> = match options.backend.as_str() {
        "memory" => Arc::new(memory::MemoryStore::default()),
        "sqlite" => Arc::new(sqlite::SqliteStore::open(&options.path)?),
        other => {
            let factory = factories().lock().ok().and_then(|f| f.get(other).copied());
            let factory = factory.ok_or_else(|| {
                Error::invalid_options(format!(
                    "kv.backend {other:?} is not available: packhost has \"sqlite\" and \
                     \"memory\"; \"redis\" comes with the packhost-redis crate"
                ))
            })?;
            factory(options)?
        }
    };
    open.retain(|_, store| store.strong_count() > 0);
    open.insert(identity, Arc::downgrade(&store));
    Ok(store)
}

/// The key-value storage one loaded pack may use: `None` when the host did not grant it or
/// the manifest did not ask.
pub(crate) struct KvGrant {
    store: Arc<dyn KvStore>,
    options: KvOptions,
    pack: String,
}

impl KvGrant {
    /// Opens the store the options name, for the pack named `pack` (its keys are kept under
    /// `kv.namespace` instead when the host set one).
    ///
    /// # Errors
    /// As [`open_store`].
    pub(crate) fn open(options: &KvOptions, pack: &str) -> Result<Self> {
        let scope = if options.namespace.is_empty() {
            pack
        } else {
            &options.namespace
        };
        Ok(KvGrant {
            store: open_store(options)?,
            options: options.clone(),
            pack: scope.to_string(),
        })
    }

    /// Where this pack's keys for `tenant` live.
    fn scope<'a>(&'a self, tenant: &'a str) -> Scope<'a> {
        Scope {
            tenant,
            pack: &self.pack,
        }
    }

    fn quota(&self) -> Quota {
        Quota {
            max_bytes: self.options.max_bytes_per_tenant,
            max_keys: self.options.max_keys_per_tenant,
        }
    }
}

/// Every `packhost:host/kv` function, with its WebAssembly signature; `wit/` states the same
/// table, and a test keeps the two from drifting.
pub const KV_FUNCTIONS: &[EnvFunction] = &[
    env("get", &["i64"], &["i64"]),
    env("set", &["i64", "i64", "i64"], &[]),
    env("delete", &["i64"], &["i32"]),
    env("list", &["i64", "i64"], &["i64"]),
    env("compare_and_set", &["i64", "i64", "i64", "i64"], &["i32"]),
];

/// One operation; it names its target (and the bytes it moved) in the call's audit entry.
type Operation = fn(
    &KvGrant,
    &mut BuiltinCall<'_, '_>,
    &mut AuditEntry,
    &[WasmValue],
    &mut [WasmValue],
) -> Result<()>;

/// What runs each of [`KV_FUNCTIONS`], in the same order.
const OPERATIONS: [Operation; 5] = [get, set, delete, list, compare_and_set];

/// The sentinel a pack passes or gets back for "no entry": not a block offset.
const NONE: i64 = -1;

/// The `packhost:host/kv` functions for `module`, none when it imports none of them (or,
/// for a component, does not import `packhost:pack/kv`, which serves them): bound to `grant`,
/// or refusing every call with `host_denied` when it is `None`.
pub(crate) fn functions_for(module: &ModuleInfo, grant: Option<Arc<KvGrant>>) -> Vec<HostFunction> {
    if module.imports_from(KV_NAMESPACE) || module.imports_from(crate::module::COMPONENT_KV) {
        functions(grant)
    } else {
        Vec::new()
    }
}

/// The `packhost:host/kv` functions, for a pack granted `grant` (or denied, when `None`).
/// Their signatures are in `wit/deps/packhost-host/kv.wit`.
fn functions(grant: Option<Arc<KvGrant>>) -> Vec<HostFunction> {
    let op = |function: &EnvFunction, run: Operation| {
        let grant = grant.clone();
        let name = function.name;
        HostFunction::builtin(KV_NAMESPACE, function, move |call, args, results| {
            call.tally.kv_ops += 1;
            let mut entry = AuditEntry::new(Capability::Kv, name, "");
            let outcome = match &grant {
                // Start-up code runs before any caller (and between callers, when an
                // instance is renewed): it has no tenant whose keys it could use.
                _ if !call.in_call => Err(Error::new(
                    ErrorKind::HostDenied,
                    "kv is not available to start-up code, which runs for no caller",
                )),
                None => Err(Error::new(
                    ErrorKind::HostDenied,
                    "kv is not granted: the pack's manifest must ask for it and the host \
                         must set the kv option",
                )),
                Some(grant) if call.tally.kv_ops > grant.options.max_ops_per_call => {
                    Err(quota_exceeded(format!(
                        "the call made more than {} kv operations",
                        grant.options.max_ops_per_call
                    )))
                }
                Some(grant) => run(grant, call, &mut entry, args, results),
            };
            call.audit.record(entry.ended(&outcome));
            outcome
        })
    };
    KV_FUNCTIONS
        .iter()
        .zip(OPERATIONS)
        .map(|(function, run)| op(function, run))
        .collect()
}

fn get(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    out: &mut [WasmValue],
) -> Result<()> {
    let key = key_arg(grant, call, args, 0)?;
    entry.target.clone_from(&key);
    let tenant = call.tenant();
    let scope = grant.scope(&tenant);
    let value = grant.store.get(scope, &key, Moment::now(call.deadline))?;
    out[0] = WasmValue::I64(match value {
        Some(value) => {
            entry.bytes_received = value.len() as u64;
            call.give(&value)?
        }
        None => NONE,
    });
    Ok(())
}

fn set(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    _: &mut [WasmValue],
) -> Result<()> {
    let key = key_arg(grant, call, args, 0)?;
    entry.target.clone_from(&key);
    let value = value_arg(grant, call, args, 1)?.ok_or_else(|| bad_arg("set", "a value"))?;
    entry.bytes_sent = value.len() as u64;
    write(
        grant,
        call,
        &key,
        Some(&value),
        int_arg(args, 2),
        Expect::Any,
    )?;
    Ok(())
}

fn delete(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    out: &mut [WasmValue],
) -> Result<()> {
    let key = key_arg(grant, call, args, 0)?;
    entry.target.clone_from(&key);
    let put = write(grant, call, &key, None, 0, Expect::Any)?;
    out[0] = WasmValue::I32(i32::from(put.existed));
    Ok(())
}

fn list(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    out: &mut [WasmValue],
) -> Result<()> {
    let prefix = text_arg(grant, call, args, 0, "prefix")?.unwrap_or_default();
    entry.target.clone_from(&prefix);
    let after = text_arg(grant, call, args, 1, "after")?;
    let tenant = call.tenant();
    let scope = grant.scope(&tenant);
    let limit = usize::try_from(grant.options.max_list_keys).unwrap_or(usize::MAX);
    let keys = grant.store.list(
        scope,
        &prefix,
        after.as_deref(),
        limit,
        Moment::now(call.deadline),
    )?;
    let json = serde_json::to_vec(&keys)
        .map_err(|err| Error::new(ErrorKind::Internal, err.to_string()))?;
    entry.bytes_received = json.len() as u64;
    out[0] = WasmValue::I64(call.give(&json)?);
    Ok(())
}

fn compare_and_set(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    entry: &mut AuditEntry,
    args: &[WasmValue],
    out: &mut [WasmValue],
) -> Result<()> {
    let key = key_arg(grant, call, args, 0)?;
    entry.target.clone_from(&key);
    let expected = value_arg(grant, call, args, 1)?;
    let value = value_arg(grant, call, args, 2)?;
    entry.bytes_sent = value.as_ref().map_or(0, |value| value.len() as u64);
    let expect = match &expected {
        Some(bytes) => Expect::Value(bytes),
        None => Expect::Absent,
    };
    let put = write(
        grant,
        call,
        &key,
        value.as_deref(),
        int_arg(args, 3),
        expect,
    )?;
    out[0] = WasmValue::I32(i32::from(put.applied));
    Ok(())
}

fn write(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    key: &str,
    value: Option<&[u8]>,
    ttl_ms: i64,
    expect: Expect<'_>,
) -> Result<Put> {
    let tenant = call.tenant();
    let scope = grant.scope(&tenant);
    let at = Moment::now(call.deadline);
    // Capped where every backend can store it (SQLite keeps an i64).
    let expires_at_ms =
        (ttl_ms > 0).then(|| at.now_ms.saturating_add(ttl_ms as u64).min(i64::MAX as u64));
    let write = Write {
        key,
        value,
        expires_at_ms,
        expect,
    };
    grant.store.put(scope, write, &grant.quota(), at)
}

fn int_arg(args: &[WasmValue], index: usize) -> i64 {
    match args.get(index) {
        Some(WasmValue::I64(value)) => *value,
        _ => 0,
    }
}

fn bad_arg(function: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Trap,
        format!("the pack passed {KV_NAMESPACE}::{function} no valid block for {what}"),
    )
}

/// The bytes of the block argument `index`, `None` for the `-1` sentinel.
fn block_arg(
    call: &mut BuiltinCall<'_, '_>,
    args: &[WasmValue],
    index: usize,
) -> Result<Option<Vec<u8>>> {
    let offset = int_arg(args, index);
    if offset == NONE {
        return Ok(None);
    }
    call.block(offset, &format!("argument {index}")).map(Some)
}

fn value_arg(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    args: &[WasmValue],
    index: usize,
) -> Result<Option<Vec<u8>>> {
    let value = block_arg(call, args, index)?;
    if let Some(value) = &value {
        if value.len() as u64 > grant.options.max_value_bytes {
            return Err(quota_exceeded(format!(
                "a value of {} bytes is over the {}-byte limit",
                value.len(),
                grant.options.max_value_bytes
            )));
        }
    }
    Ok(value)
}

fn text_arg(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    args: &[WasmValue],
    index: usize,
    what: &str,
) -> Result<Option<String>> {
    let Some(bytes) = block_arg(call, args, index)? else {
        return Ok(None);
    };
    if bytes.len() as u64 > grant.options.max_key_bytes {
        return Err(quota_exceeded(format!(
            "a {what} of {} bytes is over the {}-byte key limit",
            bytes.len(),
            grant.options.max_key_bytes
        )));
    }
    let function = call.call.function;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::Trap,
            format!("the pack passed {KV_NAMESPACE}::{function} a {what} that is not UTF-8"),
        )
    })
}

fn key_arg(
    grant: &KvGrant,
    call: &mut BuiltinCall<'_, '_>,
    args: &[WasmValue],
    index: usize,
) -> Result<String> {
    match text_arg(grant, call, args, index, "key")? {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(bad_arg(call.call.function, "a non-empty key")),
    }
}

impl BuiltinCall<'_, '_> {
    /// The call's tenant as scope text: the JSON of [`tenant_of`] its context.
    fn tenant(&self) -> String {
        serde_json::to_string(tenant_of(self.call.context)).unwrap_or_else(|_| "null".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        max_bytes: 100,
        max_keys: 2,
    };

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let options = KvOptions {
            url: "redis://:hunter2@cache.internal:6379/0".to_string(),
            ..KvOptions::default()
        };
        let shown = serde_json::to_string(&options).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache.internal"), "{shown}");
    }

    #[test]
    fn usage_grows_within_the_quota_and_shrinks_past_a_lowered_one() {
        let empty = TenantUsage::default();
        let one = empty.replace(None, Some(60), &QUOTA).unwrap();
        assert_eq!(one, TenantUsage { bytes: 60, keys: 1 });
        let err = one.replace(None, Some(41), &QUOTA).unwrap_err();
        assert_eq!(err.code(), "quota_exceeded");
        let two = one.replace(None, Some(40), &QUOTA).unwrap();
        assert_eq!(
            two.replace(None, Some(1), &QUOTA).unwrap_err().code(),
            "quota_exceeded"
        );
        // Replacing an entry with a bigger one counts only the difference.
        assert_eq!(two.replace(Some(40), Some(40), &QUOTA).unwrap(), two);
        let over = TenantUsage {
            bytes: 500,
            keys: 9,
        };
        assert_eq!(
            over.replace(Some(50), Some(10), &QUOTA).unwrap(),
            TenantUsage {
                bytes: 460,
                keys: 9
            }
        );
        assert_eq!(
            over.replace(Some(50), None, &QUOTA).unwrap(),
            TenantUsage {
                bytes: 450,
                keys: 8
            }
        );
    }
}
