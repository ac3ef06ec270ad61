//! Python callables lent to packs as host functions. The Python half wraps each user
//! function in an adapter that takes `(input: bytes, context_json, pack_name, pack_id,
//! function)` and returns `bytes`, doing every conversion (text, JSON, the `HostCall`
//! object); this file only holds the GIL for the adapter and turns an exception into the
//! core's `HostFnError`.

use std::cell::RefCell;

use packhost::{HostFnError, HostFunction};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::gil::holding_gil;

thread_local! {
    /// The exception the last failed handler on this thread raised, kept so the
    /// `HostFunctionError` the call ends with can carry it as `__cause__`: a handler's
    /// exception is never lost. The call and its handlers run on the caller's thread.
    static HANDLER_EXCEPTION: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The core function for one `(name, namespace, adapter)` the Python half registered.
pub fn host_function(name: String, namespace: String, adapter: Py<PyAny>) -> HostFunction {
    HostFunction::bytes(name, move |call, input| {
        // The GIL is taken back for the handler if the call released it.
        holding_gil(|| {
            Python::attach(|py| {
                let context = (!call.context.is_null()).then(|| call.context.to_string());
                let outcome = adapter.call1(
                    py,
                    (
                        PyBytes::new(py, input),
                        context,
                        call.pack_name,
                        call.pack_id,
                        call.function,
                    ),
                );
                let returned = outcome.and_then(|value| {
                    value
                        .bind(py)
                        .cast::<PyBytes>()
                        .map(|bytes| bytes.as_bytes().to_vec())
                        .map_err(PyErr::from)
                });
                returned.map_err(|exception| {
                    let class = exception
                        .get_type(py)
                        .name()
                        .map(|name| name.to_string())
                        .unwrap_or_else(|_| "Exception".to_string());
                    let message = exception
                        .value(py)
                        .str()
                        .map(|text| text.to_string())
                        .unwrap_or_default();
                    HANDLER_EXCEPTION.with_borrow_mut(|kept| *kept = Some(exception));
                    HostFnError::with_class(message, class)
                })
            })
        })
    })
    .with_namespace(namespace)
}

/// Takes the exception the last failed handler on this thread raised, if any.
pub fn take_handler_exception() -> Option<PyErr> {
    HANDLER_EXCEPTION.with_borrow_mut(Option::take)
}
