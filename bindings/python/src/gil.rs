//! The GIL as the core's [`InterpreterLock`]: the core decides whether a call keeps it, and
//! this file only releases and takes it back. A short call runs holding it, and a call that
//! outlives the core's `HOLD_AT_MOST` has it released from inside the call (by the native
//! engine's epoch callback, on this thread) until the call returns.
//!
//! pyo3 cannot see a release made that way: its own count still says this thread holds the
//! GIL. So while the GIL is released mid-call the thread state is kept here, and everything
//! that runs Python on this thread during the call (host-function handlers) goes through
//! [`holding_gil`], which takes the GIL back first.

use std::cell::Cell;
use std::ptr::null_mut;

use packhost::InterpreterLock;
use pyo3::ffi;
use pyo3::Python;

thread_local! {
    /// This thread's state, saved when the GIL was released in the middle of a call; null
    /// while the thread holds the GIL (or released it through pyo3).
    static RELEASED_MID_CALL: Cell<*mut ffi::PyThreadState> = const { Cell::new(null_mut()) };
}

/// The GIL of the thread making a call.
pub struct Gil<'py> {
    py: Python<'py>,
}

impl<'py> Gil<'py> {
    /// The GIL this thread holds, as `py` proves.
    pub fn held(py: Python<'py>) -> Self {
        Gil { py }
    }

    /// Takes the GIL back if the call released it midway. Called once the core returns.
    pub fn take_back(self) {
        let saved = RELEASED_MID_CALL.replace(null_mut());
        if !saved.is_null() {
            // SAFETY: `saved` is this thread's state, saved by `PyEval_SaveThread` on this
            // thread during the call that just returned.
            unsafe { ffi::PyEval_RestoreThread(saved) };
        }
    }
}

/// Moves a closure into `Python::detach`, which asks for `Send`; the closure runs on this
/// same thread, before `detach` returns.
struct SameThread<'a>(&'a mut dyn FnMut());

// SAFETY: `detach` runs the closure on the calling thread; nothing crosses threads.
unsafe impl Send for SameThread<'_> {}

impl SameThread<'_> {
    fn run(self) {
        (self.0)()
    }
}

impl InterpreterLock for Gil<'_> {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        if !RELEASED_MID_CALL.get().is_null() {
            // Released midway by the call this work follows (rebuilding its instance).
            return call();
        }
        let call = SameThread(call);
        self.py.detach(move || call.run());
    }

    fn release_for_rest_of_call(&mut self) {
        // SAFETY: the core calls this on the calling thread, which holds the GIL (the call
        // was made holding it and nothing released it since); `take_back` restores it.
        RELEASED_MID_CALL.set(unsafe { ffi::PyEval_SaveThread() });
    }

    fn releases_midway(&self) -> bool {
        true
    }
}

/// Runs `handler` holding the GIL: as it is when the call holds it or released it through
/// pyo3 (pyo3 takes it), and taken back for the handler when the call released it midway,
/// then released again.
pub fn holding_gil<R>(handler: impl FnOnce() -> R) -> R {
    /// Releases the GIL again when the handler is done, even if it panicked.
    struct ReleaseAgain;
    impl Drop for ReleaseAgain {
        fn drop(&mut self) {
            // SAFETY: the GIL was taken back below on this thread and is held here.
            RELEASED_MID_CALL.set(unsafe { ffi::PyEval_SaveThread() });
        }
    }
    let saved = RELEASED_MID_CALL.replace(null_mut());
    if saved.is_null() {
        return handler();
    }
    // SAFETY: `saved` is this thread's state, saved mid-call on this thread.
    unsafe { ffi::PyEval_RestoreThread(saved) };
    let _again = ReleaseAgain;
    handler()
}
