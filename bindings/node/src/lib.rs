//! packhost for Node, native half: loads packs and calls them through the core, handing
//! results and failures to the JavaScript wrapper (`packhost.js`) as plain data.
//!
//! Nothing here decides anything. Options and call options arrive as JSON text for
//! [`packhost::PackOptions::from_json`] and [`packhost::CallOptions::from_json`]; outputs
//! leave as bytes, and usage, logs, audit trails, stats and manifests leave as JSON text the
//! core serialized. Core failures are never thrown from Rust: they come back as a
//! [`outcome::NativeError`] so the wrapper turns every one into a `PackError` in one place,
//! with its usage, logs and audit trail attached. Host functions cross as bytes in and bytes
//! out (`host_fn`); the wrapper owns their encodings and reads what a handler threw. An
//! async call may carry a `CancelToken` (`cancel`), which the wrapper cancels when the
//! call's `AbortSignal` aborts. `push` and `pull` reach OCI registries through packhost-oci
//! (`registry`), which also makes `oci://` references loadable. A flow (`flow`) is read and
//! checked by the core against the packs it is bound to, and runs on the thread pool like an
//! async call, its result leaving as JSON text.

mod cancel;
mod flow;
mod host_fn;
mod outcome;
mod pack;
mod registry;

use napi_derive::napi;

pub use cancel::CancelToken;
pub use flow::{create_flow, FlowRunTask, NativeFlow};
pub use host_fn::{HostReply, NativeHostFunctions, NativeHostImport};
pub use outcome::{NativeCallOutcome, NativeError};
pub use pack::{load_pack, load_pack_sync, CallTask, LoadTask, NativePack};
pub use registry::{pull_pack, push_pack, RegistryTask};

/// How the core was built (`packhost::build_info`), as JSON text the wrapper parses.
#[napi]
pub fn build_info_json() -> String {
    serde_json::to_string(&packhost::build_info()).unwrap_or_else(|_| "{}".to_string())
}

/// Every error code the core can report, in the core's order; the wrapper checks it has
/// an error class for each.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    packhost::ERROR_CODES.to_vec()
}
