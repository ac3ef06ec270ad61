//! packhost for Ruby: the native extension behind `Packhost::Pack`, `Packhost::Flow` and
//! `Packhost::CancelToken`.
//!
//! This crate only converts values and maps errors; every behaviour (limits, grants,
//! defaults, error codes) lives in the `packhost` core crate. The Ruby half of the gem
//! (`lib/packhost/*.rb`) defines the error classes, the result objects, the logger and the
//! host-function adapters, and wraps the few native methods defined here in an idiomatic API.

mod cancel;
mod convert;
mod errors;
mod flow;
mod gvl;
mod host_fn;
mod pack;
mod registry;

/// The entry point Ruby calls; a private module, so the generated `Init_packhost` (which
/// cannot carry a doc comment) is not part of any Rust API.
mod entry {
    use magnus::{prelude::*, Error, Ruby};

    /// Defines `Packhost::Pack` and `Packhost::Flow` (native methods only),
    /// `Packhost::CancelToken` and the constants the Ruby half checks itself against, when
    /// `require "packhost/packhost"` loads the library.
    #[magnus::init(name = "packhost")]
    fn init(ruby: &Ruby) -> Result<(), Error> {
        let module = ruby.define_module("Packhost")?;
        // The Ruby half compares this with `Packhost::VERSION`, so a stale build of the
        // extension next to newer Ruby files is caught at once.
        module.const_set("NATIVE_VERSION", env!("CARGO_PKG_VERSION"))?;
        let codes = ruby.ary_from_iter(packhost::ERROR_CODES.iter().copied());
        codes.freeze();
        module.const_set("ERROR_CODES", codes)?;
        module.define_module_function("build_info", magnus::function!(build_info, 0))?;
        crate::pack::init(ruby, module)?;
        crate::flow::init(ruby, module)?;
        crate::cancel::init(ruby, module)?;
        crate::errors::init(ruby, module)?;
        crate::registry::init(module)?;
        Ok(())
    }

    /// `Packhost.build_info`: how the core was built, as a Hash with String keys.
    fn build_info(ruby: &Ruby) -> Result<magnus::Value, Error> {
        crate::convert::to_ruby(ruby, &packhost::build_info())
    }
}
