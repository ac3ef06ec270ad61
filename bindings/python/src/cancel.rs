//! `CancelToken`: the core's [`packhost::CancelToken`] as a Python object, passed to
//! `NativePack.call` and cancelled from any thread (or by an asyncio task being cancelled).

use pyo3::prelude::*;

use crate::errors::{catch_panic, to_py_err};

/// Cancels the calls made with it: each one running ends with `packhost.Cancelled` at its
/// engine's next check (a millisecond on the native engine), and one started after
/// `cancel()` does not run. `cancel()` may be called from any thread; a cancelled token
/// stays cancelled.
// Frozen: the core token's clones share one atomic state, so no Python-side borrow (and no
// lock) stands between a thread cancelling and the call reading it.
#[pyclass(module = "packhost._native", frozen)]
#[derive(Default)]
pub struct CancelToken {
    token: packhost::CancelToken,
}

impl CancelToken {
    /// The core token, for a call's `CallOptions`.
    pub fn token(&self) -> &packhost::CancelToken {
        &self.token
    }
}

#[pymethods]
impl CancelToken {
    /// A token nothing has cancelled yet.
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Cancels every call running with this token and every later call made with it.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        // Cancelling runs hooks the engines registered (extism's cancel handle): a panic
        // there is packhost's bug and must reach Python as `Internal`, like a call's.
        catch_panic(|| {
            self.token.cancel();
            Ok(())
        })
        .map_err(|err| to_py_err(py, &err))
    }

    /// Whether `cancel()` has been called.
    #[getter]
    fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    fn __repr__(&self) -> String {
        let cancelled = if self.cancelled() { "True" } else { "False" };
        format!("CancelToken(cancelled={cancelled})")
    }
}
