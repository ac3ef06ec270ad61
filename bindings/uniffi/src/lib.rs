//! packhost for the JVM (and Swift): the core's packs, flows, cancel tokens and errors,
//! exported through uniffi's proc macros. The Kotlin package (`bindings/kotlin`) wraps the
//! code uniffi generates from this library; no policy lives here.
//!
//! Options, call options, flow definitions and results that are open-ended cross as JSON
//! text the core reads (`PackOptions::from_json`, `CallOptions::from_json`,
//! `Flow::run_json`), so a new option needs no change here.

// `PackFailure` carries the failed call's report by value, as uniffi errors must cross; it
// is the cold path, so its size costs nothing a call would notice.
#![allow(clippy::result_large_err)]

uniffi::setup_scaffolding!();

mod error;
mod fast;
mod flow;
mod host_fn;
mod pack;

pub use error::{CallReport, CallUsage, LogLine, PackFailure};
pub use fast::NativeOutcome;
pub use flow::NativeFlow;
pub use host_fn::{NativeHostFunction, Reply};
pub use pack::{CallResult, NativeCancelToken, NativePack};

/// How this library was built (`packhost::build_info`) as JSON text: the Kotlin tests check
/// that the JAR carries the optimised release build.
#[uniffi::export]
pub fn build_info_json() -> String {
    serde_json::to_string(&packhost::build_info()).unwrap_or_else(|_| "{}".to_string())
}

/// Every error code a call or load can end with, in the core's order (`packhost::ERROR_CODES`):
/// the Kotlin layer checks it has one exception class per code.
#[uniffi::export]
pub fn error_codes() -> Vec<String> {
    packhost::ERROR_CODES
        .iter()
        .map(|code| code.to_string())
        .collect()
}
