//! How this copy of packhost was built, so a user can check that what they installed is the
//! optimised build the benchmarks measure.

use serde::Serialize;

/// How the running packhost was compiled. Every host reports the same record
/// (`packhost.build_info()` in Python, `buildInfo()` in Node, `Packhost.build_info` in Ruby, `Packhost.buildInfo()` on the JVM,
/// `packhost --version --verbose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// packhost's version.
    pub version: &'static str,
    /// The cargo profile the core was compiled with: `release` for every package users
    /// install, `dev` for the test suite.
    pub profile: &'static str,
    /// rustc's optimisation level for the core (`0` to `3`, `s`, `z`).
    pub opt_level: &'static str,
    /// Whether debug assertions are compiled in. Never true in an installed package.
    pub debug_assertions: bool,
    /// The wasmtime release that compiles and runs packs.
    pub wasmtime: &'static str,
}

impl BuildInfo {
    /// True when the core is optimised and carries no debug assertions: the build that
    /// `BENCHMARKS.md` measures.
    pub fn is_optimized(&self) -> bool {
        self.opt_level != "0" && !self.debug_assertions
    }
}

/// How this copy of packhost was built.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        profile: env!("PACKHOST_BUILD_PROFILE"),
        opt_level: env!("PACKHOST_BUILD_OPT_LEVEL"),
        debug_assertions: cfg!(debug_assertions),
        wasmtime: wasmtime_environ::VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_profile_it_was_built_with() {
        let info = build_info();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(info.wasmtime.starts_with("43."), "{}", info.wasmtime);
        assert_eq!(info.debug_assertions, cfg!(debug_assertions));
        // A plain `cargo test` runs the dev profile: unoptimised own code, debug assertions
        // on (`make test` runs release, checked by every binding's CI on its package).
        if cfg!(debug_assertions) {
            assert_eq!((info.profile, info.opt_level), ("dev", "0"));
            assert!(!info.is_optimized());
        }
    }
}
