//! `NativePack`: a loaded core [`packhost::Pack`], with the GIL released around loading and
//! around every call but the short ones (see `gil.rs`), so Python threads run packs in
//! parallel.
//!
//! Options arrive as JSON text for `PackOptions::from_json`; this file never looks inside
//! them. The public `packhost.Pack` (Python) wraps this class.

use std::borrow::Cow;
use std::path::PathBuf;

use packhost::{CallOptions, HostFunction, Pack, PackOptions};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::cancel::CancelToken;
use crate::errors::{catch_panic, to_py_err};
use crate::gil::Gil;
use crate::host_fn::host_function;
use crate::result::CallResult;

/// A loaded pack. Frozen: calls share it across threads without locking.
#[pyclass(module = "packhost._native", frozen)]
pub struct NativePack {
    pack: Pack,
}

impl NativePack {
    /// The core pack, for a flow's steps (`flow.rs`).
    pub fn pack(&self) -> &Pack {
        &self.pack
    }
}

#[pymethods]
impl NativePack {
    /// Loads a pack from module bytes with options given as JSON text, lending it
    /// `functions`: `(name, namespace, adapter)` triples made by the Python half.
    #[staticmethod]
    #[pyo3(signature = (data, options_json, functions=Vec::new()))]
    fn load_bytes(
        py: Python<'_>,
        data: &[u8],
        options_json: &str,
        functions: Vec<(String, String, Py<PyAny>)>,
    ) -> PyResult<Self> {
        load(py, options_json, functions, |options, functions| {
            Pack::load_with(data, options, functions)
        })
    }

    /// Loads a pack from a `.wasm` file or an `oci://` reference with options given as JSON
    /// text, lending it `functions` as [`NativePack::load_bytes`] does.
    #[staticmethod]
    #[pyo3(signature = (path, options_json, functions=Vec::new()))]
    fn load_file(
        py: Python<'_>,
        path: PathBuf,
        options_json: &str,
        functions: Vec<(String, String, Py<PyAny>)>,
    ) -> PyResult<Self> {
        load(py, options_json, functions, |options, functions| {
            Pack::load_reference(&path, options, functions)
        })
    }

    /// Loads the next version of this pack from module bytes, with its options and host
    /// functions (the GIL released); the Python half swaps it in for `Pack.reload`.
    fn load_next_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        load_detached(py, || self.pack.load_next_bytes(data))
    }

    /// [`NativePack::load_next_bytes`] from a `.wasm` file or an `oci://` reference.
    fn load_next_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        load_detached(py, || self.pack.load_next(&path))
    }

    /// Loads the plugin an Extism manifest (JSON text) describes, with options given as
    /// JSON text, lending it `functions` as [`NativePack::load_bytes`] does.
    #[staticmethod]
    #[pyo3(signature = (manifest_json, options_json, functions=Vec::new()))]
    fn load_extism_manifest(
        py: Python<'_>,
        manifest_json: &str,
        options_json: &str,
        functions: Vec<(String, String, Py<PyAny>)>,
    ) -> PyResult<Self> {
        load(py, options_json, functions, |options, functions| {
            Pack::load_extism_manifest(manifest_json, options, functions)
        })
    }

    /// The SHA-256 of the module bytes, in lowercase hex.
    #[getter]
    fn id(&self) -> &str {
        self.pack.id()
    }

    /// The manifest's name (the file name for a pack without a manifest).
    #[getter]
    fn name(&self) -> &str {
        &self.pack.manifest().name
    }

    /// The manifest's version.
    #[getter]
    fn version(&self) -> &str {
        &self.pack.manifest().version
    }

    /// Action names, `pre` and `post` included, in manifest order.
    #[getter]
    fn actions(&self) -> Vec<&str> {
        self.pack.actions()
    }

    /// True when the manifest came from the module itself rather than from its exports.
    #[getter]
    fn has_embedded_manifest(&self) -> bool {
        self.pack.has_embedded_manifest()
    }

    /// The manifest as JSON text.
    fn manifest_json(&self) -> PyResult<String> {
        serde_json::to_string(self.pack.manifest())
            .map_err(|err| PyTypeError::new_err(format!("manifest does not serialize: {err}")))
    }

    /// The options in force, defaults filled in, as JSON text.
    fn options_json(&self) -> PyResult<String> {
        serde_json::to_string(self.pack.options())
            .map_err(|err| PyTypeError::new_err(format!("options do not serialize: {err}")))
    }

    /// Counts and totals of this pack's calls since it was loaded (`packhost::PackStats`),
    /// as JSON text.
    fn stats_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.pack.stats())
            .map_err(|err| PyTypeError::new_err(format!("stats do not serialize: {err}")))
    }

    /// Runs `action` on `input` (`bytes`, or `str` sent as UTF-8), with call options
    /// (the `context`) as JSON text when given, cancelled through `cancel` when given.
    #[pyo3(signature = (action, input, call_options_json=None, cancel=None))]
    fn call(
        &self,
        py: Python<'_>,
        action: &str,
        input: &Bound<'_, PyAny>,
        call_options_json: Option<&str>,
        cancel: Option<&CancelToken>,
    ) -> PyResult<CallResult> {
        let input = payload(input)?;
        let bytes: &[u8] = &input;
        let mut call_options = match call_options_json {
            Some(json) => CallOptions::from_json(json).map_err(|err| to_py_err(py, &err))?,
            None => CallOptions::default(),
        };
        call_options.cancel = cancel.map(|cancel| cancel.token().clone());
        // The output is copied into this thread's reused buffer (the call may have released
        // the GIL by then), then into a `bytes` object once the GIL is held again.
        // Allocating a fresh buffer per call instead makes glibc return and refetch the
        // memory of large outputs on every call, which costs more than the copy. The buffer
        // is taken out for the call, so a host function that calls a pack again on this
        // thread finds a buffer of its own.
        let mut output = OUTPUT.take();
        let mut gil = Gil::held(py);
        let outcome = catch_panic(|| {
            self.pack
                .call_locked(action, bytes, &call_options, &mut gil, |out| {
                    output.clear();
                    output.extend_from_slice(out);
                })
        });
        gil.take_back();
        let result = match outcome {
            Ok(((), report)) => CallResult::new(py, &output, report),
            Err(err) => Err(to_py_err(py, &err)),
        };
        if output.capacity() <= KEEP_OUTPUT_BUFFER_UP_TO {
            OUTPUT.set(output);
        }
        result
    }

    fn __repr__(&self) -> String {
        let manifest = self.pack.manifest();
        format!(
            "NativePack({} {}, id={})",
            manifest.name,
            manifest.version,
            &self.pack.id()[..12]
        )
    }
}

/// Runs one of the core's loads without the GIL (validating a module takes milliseconds),
/// with the options parsed and the host functions made, and maps its error.
fn load(
    py: Python<'_>,
    options_json: &str,
    functions: Vec<(String, String, Py<PyAny>)>,
    load: impl FnOnce(PackOptions, Vec<HostFunction>) -> packhost::Result<Pack> + Send,
) -> PyResult<NativePack> {
    let functions = host_functions(functions);
    packhost_oci::register();
    load_detached(py, || {
        load(PackOptions::from_json(options_json)?, functions)
    })
}

/// Runs a load without the GIL, catching a panic, and wraps the pack or maps its error.
fn load_detached(
    py: Python<'_>,
    load: impl FnOnce() -> packhost::Result<Pack> + Send,
) -> PyResult<NativePack> {
    py.detach(|| catch_panic(load))
        .map(|pack| NativePack { pack })
        .map_err(|err| to_py_err(py, &err))
}

fn host_functions(functions: Vec<(String, String, Py<PyAny>)>) -> Vec<HostFunction> {
    functions
        .into_iter()
        .map(|(name, namespace, adapter)| host_function(name, namespace, adapter))
        .collect()
}

thread_local! {
    /// Each thread's output buffer, reused from call to call.
    static OUTPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A thread keeps its output buffer up to this capacity; a larger one is freed after use.
const KEEP_OUTPUT_BUFFER_UP_TO: usize = 1 << 20;

/// The bytes of a call input, borrowed from a `bytes` object when possible so a large
/// input is not copied before the call.
fn payload<'a>(input: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = input.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = input.cast::<PyString>() {
        return Ok(match text.to_cow()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        });
    }
    Err(PyTypeError::new_err(format!(
        "input must be bytes or str, not {}",
        input.get_type().name()?
    )))
}
