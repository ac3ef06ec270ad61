//! The native half of the Python package: `packhost._native`, a thin layer over the
//! `packhost` core. The Python half (`python/packhost/`) owns the public API, the error
//! classes and logging; this module only converts values, calls the core (which releases
//! the GIL for all but short calls), and raises the error class Python defines per code.

mod cancel;
mod errors;
mod flow;
mod gil;
mod host_fn;
mod pack;
mod result;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// The module Python imports as `packhost._native`.
#[pymodule(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<pack::NativePack>()?;
    module.add_class::<flow::NativeFlow>()?;
    module.add_class::<cancel::CancelToken>()?;
    module.add_class::<result::CallResult>()?;
    module.add_class::<result::Usage>()?;
    module.add_class::<result::LogRecord>()?;
    module.add("ERROR_CODES", PyTuple::new(py, packhost::ERROR_CODES)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_function(wrap_pyfunction!(build_info_json, module)?)?;
    module.add_function(wrap_pyfunction!(push_json, module)?)?;
    module.add_function(wrap_pyfunction!(pull_json, module)?)?;
    module.add_function(wrap_pyfunction!(panic_for_tests, module)?)?;
    Ok(())
}

/// Publishes a pack to an OCI registry (`packhost_oci::push`) without the GIL; what was
/// pushed, as JSON text for `packhost.push()`.
#[pyfunction]
#[pyo3(signature = (path, reference, signature=None))]
fn push_json(
    py: Python<'_>,
    path: std::path::PathBuf,
    reference: &str,
    signature: Option<std::path::PathBuf>,
) -> PyResult<String> {
    py.detach(|| errors::catch_panic(|| packhost_oci::push(&path, reference, signature.as_deref())))
        .map(|pushed| pushed.to_json())
        .map_err(|err| errors::to_py_err(py, &err))
}

/// Pulls a pack into the local store (`packhost_oci::pull_to_default_store`) without the
/// GIL; what was pulled, as JSON text for `packhost.pull()`.
#[pyfunction]
fn pull_json(py: Python<'_>, reference: &str) -> PyResult<String> {
    py.detach(|| errors::catch_panic(|| packhost_oci::pull_to_default_store(reference)))
        .map(|pulled| pulled.to_json())
        .map_err(|err| errors::to_py_err(py, &err))
}

/// How the core was built (`packhost::build_info`), as JSON text for `packhost.build_info()`.
#[pyfunction]
fn build_info_json() -> String {
    serde_json::to_string(&packhost::build_info()).unwrap_or_else(|_| "{}".to_string())
}

/// Panics inside the same guard every core call runs in, so tests can show that a panic
/// reaches Python as `packhost.Internal` instead of aborting or escaping as
/// `PanicException`. Not part of the API.
#[pyfunction(name = "_panic_for_tests")]
fn panic_for_tests(py: Python<'_>, message: &str) -> PyResult<()> {
    let outcome =
        py.detach(|| errors::catch_panic(|| -> packhost::Result<()> { panic!("{message}") }));
    outcome.map_err(|err| errors::to_py_err(py, &err))
}
