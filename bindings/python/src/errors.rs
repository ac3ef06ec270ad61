//! Turns a core [`packhost::Error`] into the Python exception class of its code.
//!
//! The classes live in Python (`packhost/errors.py`, the one place they are declared) so
//! users read and catch plain Python classes; this file only looks a class up by code and
//! fills in what the core error carries. Panics caught at the boundary become `internal`.

use packhost::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyMapping};

use crate::host_fn::take_handler_exception;
use crate::result::{audit_entries, log_records, Usage};

/// `packhost.errors.ERROR_CLASSES`, the code-to-class table, imported on first use.
static ERROR_CLASSES: PyOnceLock<Py<PyMapping>> = PyOnceLock::new();

/// Builds the Python exception for `error`: the class registered for its code (the base
/// `PackError` for a code this package does not know yet), with message, code, usage,
/// logs, audit trail and return code as attributes.
pub fn to_py_err(py: Python<'_>, error: &Error) -> PyErr {
    match build_exception(py, error) {
        Ok(exception) => PyErr::from_value(exception),
        // Only a broken installation (packhost.errors missing or edited) gets here; the
        // core's own text still reaches the user.
        Err(lookup_failure) => {
            let fallback = PyRuntimeError::new_err(error.to_string());
            fallback.set_cause(py, Some(lookup_failure));
            fallback
        }
    }
}

fn build_exception<'py>(py: Python<'py>, error: &Error) -> PyResult<Bound<'py, PyAny>> {
    let classes = ERROR_CLASSES.import(py, "packhost.errors", "ERROR_CLASSES")?;
    let class = match classes.get_item(error.code()) {
        Ok(class) => class,
        Err(_) => py.import("packhost.errors")?.getattr("PackError")?,
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("code", error.code())?;
    if let Some(return_code) = error.return_code() {
        kwargs.set_item("return_code", return_code)?;
    }
    if let Some((function, class)) = error.host_function() {
        kwargs.set_item("function", function)?;
        kwargs.set_item("error_class", class)?;
    }
    if let Some(report) = error.report() {
        kwargs.set_item("usage", Usage::from(report.usage.clone()))?;
        kwargs.set_item("logs", log_records(py, &report.logs)?)?;
        kwargs.set_item("audit", audit_entries(py, &report.audit)?)?;
    }
    let exception = class.call((error.message(),), Some(&kwargs))?;
    if error.host_function().is_some() {
        if let Some(cause) = take_handler_exception() {
            exception.setattr("__cause__", cause.value(py))?;
        }
    }
    Ok(exception)
}

/// Runs `work`, turning a panic inside it into an `internal` error so a packhost bug
/// surfaces as a catchable `packhost.Internal` rather than tearing through Python.
pub fn catch_panic<T>(work: impl FnOnce() -> packhost::Result<T>) -> packhost::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(Error::new(
            ErrorKind::Internal,
            format!(
                "packhost panicked: {}",
                packhost::panic_message(payload.as_ref()).unwrap_or("no message")
            ),
        ))
    })
}
