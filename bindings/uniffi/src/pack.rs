//! `NativePack`: a loaded core [`packhost::Pack`] with its loads and calls, `CallResult`, and
//! `NativeCancelToken`. A call runs on the calling JVM thread and holds no lock the JVM
//! needs (JNA calls release nothing and take nothing), so JVM threads run packs in parallel.

use std::sync::Arc;

use packhost::{CallOptions, HostFunction, Pack, PackOptions};

use crate::error::{catch_panic, CallReport, PackFailure};
use crate::host_fn::NativeHostFunction;

/// A loaded pack. Calls share it across threads.
#[derive(uniffi::Object)]
pub struct NativePack {
    pack: Pack,
}

impl NativePack {
    /// The core pack, for a flow's steps (`flow.rs`).
    pub(crate) fn pack(&self) -> &Pack {
        &self.pack
    }
}

/// A successful call: the pack's output and what the call reported.
#[derive(uniffi::Record)]
pub struct CallResult {
    /// The bytes the pack returned.
    pub output: Vec<u8>,
    /// Usage, logs and audit trail.
    pub report: CallReport,
}

#[uniffi::export]
impl NativePack {
    /// Loads a pack from a `.wasm` file or an `oci://` reference, with options as JSON text
    /// (`PackOptions::from_json`), lending it `functions`.
    #[uniffi::constructor]
    pub fn load_file(
        path: String,
        options_json: String,
        functions: Vec<Arc<NativeHostFunction>>,
    ) -> Result<Arc<Self>, PackFailure> {
        load(&options_json, functions, |options, functions| {
            Pack::load_reference(&path, options, functions)
        })
    }

    /// Loads a pack from module bytes, as [`NativePack::load_file`] does.
    #[uniffi::constructor]
    pub fn load_bytes(
        bytes: Vec<u8>,
        options_json: String,
        functions: Vec<Arc<NativeHostFunction>>,
    ) -> Result<Arc<Self>, PackFailure> {
        load(&options_json, functions, |options, functions| {
            Pack::load_with(&bytes, options, functions)
        })
    }

    /// Loads the plugin an Extism manifest (JSON text) describes, as
    /// [`NativePack::load_file`] does.
    #[uniffi::constructor]
    pub fn load_extism_manifest(
        manifest_json: String,
        options_json: String,
        functions: Vec<Arc<NativeHostFunction>>,
    ) -> Result<Arc<Self>, PackFailure> {
        load(&options_json, functions, |options, functions| {
            Pack::load_extism_manifest(&manifest_json, options, functions)
        })
    }

    /// Loads the next version of this pack from a `.wasm` file or an `oci://` reference,
    /// with this pack's options and host functions.
    pub fn load_next_file(&self, path: String) -> Result<Arc<Self>, PackFailure> {
        wrap(catch_panic(|| self.pack.load_next(&path)))
    }

    /// [`NativePack::load_next_file`] from module bytes.
    pub fn load_next_bytes(&self, bytes: Vec<u8>) -> Result<Arc<Self>, PackFailure> {
        wrap(catch_panic(|| self.pack.load_next_bytes(&bytes)))
    }

    /// The SHA-256 of the module bytes, in lowercase hex.
    pub fn id(&self) -> String {
        self.pack.id().to_string()
    }

    /// The manifest's name (the file name for a pack without a manifest).
    pub fn name(&self) -> String {
        self.pack.manifest().name.clone()
    }

    /// The manifest's version.
    pub fn version(&self) -> String {
        self.pack.manifest().version.clone()
    }

    /// Action names, `pre` and `post` included, in manifest order.
    pub fn actions(&self) -> Vec<String> {
        self.pack
            .actions()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// True when the manifest came from the module itself rather than from its exports.
    pub fn has_embedded_manifest(&self) -> bool {
        self.pack.has_embedded_manifest()
    }

    /// The manifest as JSON text.
    pub fn manifest_json(&self) -> String {
        to_json(self.pack.manifest())
    }

    /// The options in force, defaults filled in, as JSON text.
    pub fn options_json(&self) -> String {
        to_json(self.pack.options())
    }

    /// Counts and totals of this pack's calls since it was loaded, as JSON text.
    pub fn stats_json(&self) -> String {
        to_json(&self.pack.stats())
    }

    /// Runs `action` on `input`, with call options (the `context`) as JSON text when given,
    /// cancelled through `cancel` when given.
    pub fn call(
        &self,
        action: String,
        input: Vec<u8>,
        call_options_json: Option<String>,
        cancel: Option<Arc<NativeCancelToken>>,
    ) -> Result<CallResult, PackFailure> {
        catch_panic(|| {
            let mut options = match call_options_json {
                Some(json) => CallOptions::from_json(&json)?,
                None => CallOptions::default(),
            };
            options.cancel = cancel.map(|cancel| cancel.token.clone());
            let (output, report) =
                self.pack
                    .call_reading(&action, &input, &options, <[u8]>::to_vec)?;
            Ok(CallResult {
                output,
                report: report.into(),
            })
        })
    }
}

/// Parses the options, makes the host functions and runs one of the core's loads, catching
/// a panic.
fn load(
    options_json: &str,
    functions: Vec<Arc<NativeHostFunction>>,
    load: impl FnOnce(PackOptions, Vec<HostFunction>) -> packhost::Result<Pack>,
) -> Result<Arc<NativePack>, PackFailure> {
    packhost_oci::register();
    let functions = functions.iter().map(|function| function.core()).collect();
    wrap(catch_panic(|| {
        load(PackOptions::from_json(options_json)?, functions)
    }))
}

fn wrap(loaded: Result<Pack, PackFailure>) -> Result<Arc<NativePack>, PackFailure> {
    loaded.map(|pack| Arc::new(NativePack { pack }))
}

/// Serialises what the core made; its types always serialise, so a failure is packhost's bug
/// and reads as an empty object rather than a crash.
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

/// Cancels the calls made with it: each one running ends with `cancelled` at its engine's
/// next check, and one started after `cancel()` does not run. Any thread may cancel it.
#[derive(uniffi::Object, Default)]
pub struct NativeCancelToken {
    pub(crate) token: packhost::CancelToken,
}

#[uniffi::export]
impl NativeCancelToken {
    /// A token nothing has cancelled yet.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cancels every call running with this token and every later call made with it.
    pub fn cancel(&self) -> Result<(), PackFailure> {
        // Cancelling runs hooks the engines registered: a panic there is packhost's bug.
        catch_panic(|| {
            self.token.cancel();
            Ok(())
        })
    }

    /// Whether `cancel()` has been called.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}
