//! packhost: load WebAssembly plugins ("packs") on the Extism plugin ABI and call them in a
//! sandbox with hard limits, with the same results from every host language.
//!
//! ```no_run
//! use packhost::{Pack, PackOptions};
//!
//! let options = PackOptions::from_json(r#"{"limits": {"timeout_ms": 250}}"#)?;
//! let pack = Pack::load_file("plugins/dist/text_tools.wasm", options)?;
//! let out = pack.call("count_vowels", br#"{"text": "hello"}"#)?;
//! println!("{} ({} fuel)", out.text().unwrap_or(""), out.usage.fuel_consumed);
//! # Ok::<(), packhost::Error>(())
//! ```
//!
//! Everything here is policy; the Node, Python and Ruby bindings only convert values and
//! map [`Error::code`] onto their own exception types.

#![deny(missing_docs)]

mod build_info;
mod cancel;
mod capabilities;
mod embed;
mod engine;
mod error;
mod extism_manifest;
mod flow;
pub mod hosts;
mod link;
mod lock;
pub mod manifest;
pub mod module;
mod options;
mod pack;
mod pool;
mod store;
#[doc(hidden)]
pub mod testing;
mod trust;
mod usage;

pub use build_info::{build_info, BuildInfo};
pub use cancel::CancelToken;
pub use capabilities::audit::{AuditEntry, AuditOutcome, Capability, MAX_AUDIT_ENTRIES};
pub use capabilities::host_fn::{
    unavailable_host_functions, HostCall, HostFnError, HostFunction, KernelMemory, ValueType,
    WasmValue, EXTISM_USER,
};
pub use capabilities::kv::{
    backend_failed, quota_exceeded, register_kv_backend, Expect, KvBackendFactory, KvOptions,
    KvStore, Moment, Put, Quota, Scope, TenantUsage, Write, KV_FUNCTIONS, KV_NAMESPACE,
};
pub use capabilities::secrets::{
    Redactor, Secrets, REDACTED, SECRETS_FUNCTIONS, SECRETS_NAMESPACE,
};
pub use embed::embed_generated_manifest;
pub use engine::{forget_compiled_code, instance_pool, InstancePool};
pub use error::{panic_message, Error, ErrorKind, Result, ERROR_CODES};
pub use extism_manifest::{ExtismManifest, ExtismMemory, ResolvedManifest, WasmSource};
pub use flow::{Flow, FlowOutput, FlowPacks, FlowUsage, StepRecord, StepStatus, MAX_FLOW_STEPS};
pub use link::{LinkedModule, MAIN_MODULE};
pub use lock::{InterpreterLock, HOLD_AT_MOST};
pub use manifest::{
    ActionSpec, Capabilities, Encoding, HostFunctionSpec, PackManifest, PayloadSpec,
};
pub use module::{embed_manifest, ModuleInfo, EXTISM_ENV};
pub use options::{
    tenant_of, CallOptions, EngineKind, HttpOptions, Isolation, Limits, LogLevel, PackOptions,
};
pub use pack::Pack;
pub use store::{
    digest_of, is_digest, register_pack_source, GcReport, IncomingPack, PackSource, PackStore,
    ResolvedReference, StoredPack,
};
pub use trust::{signature_path, KeyPair, PackSignature, SIGNATURE_FORMAT};
pub use usage::{CallOutput, CallReport, LogRecord, PackStats, Usage};
