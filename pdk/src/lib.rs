//! packhost-pdk: write packhost packs in Rust.
//!
//! A pack is an Extism plugin whose exports are typed Rust functions:
//!
//! ```ignore
//! use packhost_pdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Text { text: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Count { count: usize }
//!
//! /// Counts the vowels in a text.
//! #[action]
//! fn count_vowels(input: Text) -> Result<Count, Error> {
//!     Ok(Count { count: input.text.chars().filter(|c| "aeiouAEIOU".contains(*c)).count() })
//! }
//!
//! packhost_pdk::pack! { actions: [count_vowels] }
//! ```
//!
//! Inputs and outputs spelled `String` travel as text, `Vec<u8>` as bytes, `()` as nothing,
//! and anything else as JSON through serde, with a JSON Schema from schemars in the
//! manifest. Returning `Err` makes the call fail with `plugin_error` carrying the message.
//!
//! `pack!` adds the `__packhost_manifest` export; `packhost embed` runs it once after the
//! build and stores the result in the module's `packhost/manifest` section, so the built
//! `.wasm` is the whole pack.

#![deny(missing_docs)]

pub use extism_pdk;
pub use packhost_pdk_macros::{action, host_functions, post, pre};
pub use schemars::{self, JsonSchema};
pub use serde::{self, Deserialize, Serialize};
pub use serde_json::{self, json, Value};

/// The error an action returns; anything that converts into it (every `std` error,
/// `String` through [`fail`]) works with `?`.
pub type Error = extism_pdk::Error;

/// Makes an [`Error`] from a message, for `return Err(fail("card declined"))`.
pub fn fail(message: impl std::fmt::Display) -> Error {
    extism_pdk::Error::msg(message.to_string())
}

/// Reads a config value the host granted; `None` when absent or not granted.
pub fn config(key: &str) -> Option<String> {
    extism_pdk::config::get(key).ok().flatten()
}

pub mod kv;

#[link(wasm_import_module = "packhost:host/secrets")]
extern "C" {
    #[link_name = "get"]
    fn secrets_get(name: u64) -> i64;
}

/// Reads the secret `name`, which the pack must declare (`secrets: [...]` in [`pack!`]) and
/// the host must supply; otherwise the call ends with `host_denied`. Never log it: packhost
/// replaces the value with `[redacted]` in log lines and errors, but not in the output.
pub fn secret(name: &str) -> Result<String, Error> {
    let block = extism_pdk::Memory::from_bytes(name)?;
    // SAFETY: the import is packhost's `packhost:host/secrets::get`; the block outlives it.
    let offset = unsafe { secrets_get(block.offset()) };
    block.free();
    let value = match offset {
        0 => Vec::new(),
        offset => match extism_pdk::Memory::find(offset as u64) {
            Some(memory) => {
                let bytes = memory.to_vec();
                memory.free();
                bytes
            }
            None => Vec::new(),
        },
    };
    String::from_utf8(value).map_err(|_| fail(format!("secret {name:?} is not UTF-8")))
}

/// Bulk I/O with packhost's native engine, used by the macros; not a stable API.
#[doc(hidden)]
pub mod bulk;

/// Everything a pack usually needs, in one import.
pub mod prelude {
    pub use crate::{
        action, config, fail, host_functions, json, post, pre, Error, JsonSchema, Value,
    };
    pub use extism_pdk::{debug, error, info, trace, warn, HttpRequest};
    pub use serde::{Deserialize, Serialize};
}

/// Support code for the macros; not a stable API.
#[doc(hidden)]
pub mod __private {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    pub use crate::bulk;
    use crate::Error;

    /// One action, as the manifest describes it.
    #[derive(Serialize)]
    pub struct ActionSpec {
        /// The export name.
        pub name: &'static str,
        /// The doc comment.
        #[serde(skip_serializing_if = "str::is_empty")]
        pub description: &'static str,
        /// The input's shape.
        pub input: PayloadSpec,
        /// The output's shape.
        pub output: PayloadSpec,
    }

    /// An input or output shape.
    #[derive(Serialize)]
    pub struct PayloadSpec {
        encoding: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        schema: Option<serde_json::Value>,
    }

    impl PayloadSpec {
        /// No payload.
        pub fn none() -> Self {
            PayloadSpec {
                encoding: "none",
                schema: None,
            }
        }
        /// UTF-8 text.
        pub fn text() -> Self {
            PayloadSpec {
                encoding: "text",
                schema: None,
            }
        }
        /// Opaque bytes.
        pub fn bytes() -> Self {
            PayloadSpec {
                encoding: "bytes",
                schema: None,
            }
        }
        /// JSON with the schema of `T`.
        pub fn json<T: schemars::JsonSchema>() -> Self {
            let schema = schemars::schema_for!(T);
            PayloadSpec {
                encoding: "json",
                schema: serde_json::to_value(schema).ok(),
            }
        }
    }

    /// One host function the pack imports, as the manifest describes it.
    #[derive(Serialize)]
    pub struct HostFunctionSpec {
        /// The import name.
        pub name: &'static str,
        /// The import module.
        pub namespace: &'static str,
        /// The doc comment.
        #[serde(skip_serializing_if = "str::is_empty")]
        pub description: &'static str,
        /// The input's shape.
        pub input: PayloadSpec,
        /// The output's shape.
        pub output: PayloadSpec,
    }

    /// Calls a host function import: `input` goes in a kernel block, and the block the host
    /// returns comes back as bytes (both blocks are freed).
    pub fn call_host(import: impl FnOnce(u64) -> u64, input: &[u8]) -> Result<Vec<u8>, Error> {
        let block = extism_pdk::Memory::from_bytes(input)?;
        let returned = import(block.offset());
        block.free();
        // Offset 0 is the empty block, which `find` does not know.
        if returned == 0 {
            return Ok(Vec::new());
        }
        let output = extism_pdk::Memory::find(returned)
            .ok_or_else(|| Error::msg("the host function returned an invalid block"))?;
        let bytes = output.to_vec();
        output.free();
        Ok(bytes)
    }

    /// The whole manifest, as `pack!` assembles it.
    #[derive(Serialize)]
    pub struct Manifest {
        /// Pack name.
        pub name: &'static str,
        /// Pack version.
        pub version: &'static str,
        /// Pack description.
        #[serde(skip_serializing_if = "str::is_empty")]
        pub description: &'static str,
        /// Actions.
        pub actions: Vec<ActionSpec>,
        /// Capabilities asked for.
        pub capabilities: Capabilities,
    }

    /// Capabilities asked for.
    #[derive(Serialize)]
    pub struct Capabilities {
        /// HTTP host patterns.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub http_hosts: Vec<&'static str>,
        /// Config keys.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub config: Vec<&'static str>,
        /// Host functions the pack imports.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub host_functions: Vec<HostFunctionSpec>,
        /// Key-value storage.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub kv: bool,
        /// Secret names.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub secrets: Vec<&'static str>,
    }

    /// Runs one export: reads the input, applies `body`, writes the output or the error.
    pub fn run(body: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, Error>) -> i32 {
        let input = bulk::take_input().unwrap_or_else(extism_pdk::input_bytes);
        match body(input).and_then(bulk::send_output) {
            Ok(()) => 0,
            Err(err) => {
                set_error(&format!("{err:#}"));
                1
            }
        }
    }

    fn set_error(message: &str) {
        // An empty message would be no error at all (an empty block is offset 0).
        let message = if message.is_empty() {
            "the pack failed"
        } else {
            message
        };
        if let Ok(memory) = extism_pdk::Memory::from_bytes(message) {
            // SAFETY: the handle was just allocated through the Extism ABI and is handed over.
            unsafe { extism_pdk::extism::error_set(memory.offset()) };
        }
    }

    /// Input as UTF-8 text.
    pub fn decode_text(input: Vec<u8>) -> Result<String, Error> {
        String::from_utf8(input).map_err(|_| Error::msg("input is not valid UTF-8 text"))
    }

    /// Input as JSON of type `T`.
    pub fn decode_json<T: DeserializeOwned>(input: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(input).map_err(|err| Error::msg(format!("invalid input: {err}")))
    }

    /// Output as JSON.
    pub fn encode_json<T: Serialize>(output: &T) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(output).map_err(|err| Error::msg(format!("cannot encode output: {err}")))
    }

    /// Any displayable error as the pack's error; `{:#}` keeps an anyhow chain readable.
    pub fn into_error<E: std::fmt::Display>(err: E) -> Error {
        Error::msg(format!("{err:#}"))
    }

    /// Writes the manifest as the export's output.
    pub fn emit_manifest(manifest: Manifest) -> i32 {
        run(|_| encode_json(&manifest))
    }
}

/// Declares the pack: which actions it exports and what it asks the host for. Name,
/// version and description come from Cargo.toml unless given.
///
/// ```ignore
/// packhost_pdk::pack! {
///     actions: [pre, post, lookup],
///     http_hosts: ["api.example.com"],
///     config: ["api_key"],
///     host_functions: [lookup_customer],
///     kv: true,
///     secrets: ["api_key"],
/// }
/// ```
#[macro_export]
macro_rules! pack {
    (
        $(name: $name:expr,)?
        $(description: $description:expr,)?
        actions: [$($action:ident),* $(,)?]
        $(, http_hosts: [$($host:expr),* $(,)?])?
        $(, config: [$($key:expr),* $(,)?])?
        $(, host_functions: [$($host_function:ident),* $(,)?])?
        $(, kv: $kv:expr)?
        $(, secrets: [$($secret:expr),* $(,)?])?
        $(,)?
    ) => {
        #[doc(hidden)]
        #[export_name = "__packhost_io_input"]
        pub extern "C" fn __packhost_io_input(len: i32) -> i32 {
            $crate::__private::bulk::reserve_input(len)
        }

        #[doc(hidden)]
        #[export_name = "__packhost_io_output"]
        pub extern "C" fn __packhost_io_output() -> i64 {
            $crate::__private::bulk::kept_output()
        }

        $crate::__manifest_export! {
        #[doc(hidden)]
        #[export_name = "__packhost_manifest"]
        pub extern "C" fn __packhost_manifest() -> i32 {
            #[allow(unused_variables)]
            let name = env!("CARGO_PKG_NAME");
            $(let name = $name;)?
            #[allow(unused_variables)]
            let description = env!("CARGO_PKG_DESCRIPTION");
            $(let description = $description;)?
            $crate::__private::emit_manifest($crate::__private::Manifest {
                name,
                version: env!("CARGO_PKG_VERSION"),
                description,
                actions: vec![$($action::__packhost_describe()),*],
                capabilities: $crate::__private::Capabilities {
                    http_hosts: vec![$($($host),*)?],
                    config: vec![$($($key),*)?],
                    host_functions: vec![$($($host_function::__packhost_describe_host_function()),*)?],
                    kv: false $(|| $kv)?,
                    secrets: vec![$($($secret),*)?],
                },
            })
        }
        }
    };
}

/// Keeps the `__packhost_manifest` export [`pack!`] writes: `packhost embed` runs it.
#[doc(hidden)]
#[cfg(not(feature = "omit-manifest-export"))]
#[macro_export]
macro_rules! __manifest_export {
    ($($export:tt)*) => { $($export)* };
}

/// Drops the `__packhost_manifest` export: `packhost build --release` builds the module it
/// ships a second time with this feature, once the manifest is embedded, so the schemas and
/// the code that writes them are not dead weight in the pack (about a third of a small one).
#[doc(hidden)]
#[cfg(feature = "omit-manifest-export")]
#[macro_export]
macro_rules! __manifest_export {
    ($($export:tt)*) => {};
}
