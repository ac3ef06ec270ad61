//! Running Rust work with Ruby's global VM lock released, so other Ruby threads keep running
//! (and can run packs of their own) while a plugin call blocks this one; and taking the lock
//! back for a moment inside such work, which is how a host function's Ruby handler runs.
//! [`Gvl`] lends the first to the core, which decides which calls release the lock.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use packhost::InterpreterLock;

/// The GVL of the Ruby thread making a call, as the core's [`InterpreterLock`]. Ruby has no
/// way to release the GVL in the middle of a call, so a call the core expects to be short
/// holds it to its end.
pub(crate) struct Gvl;

impl InterpreterLock for Gvl {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        // The core catches panics inside `call`; a panic here would be a core bug, and the
        // core reports a call that never ran as an internal error.
        let _ = without_gvl(call);
    }
}

/// The work to run and, once it ran, its result (or the panic it raised).
struct Job<F, R> {
    work: Option<F>,
    outcome: Option<std::thread::Result<R>>,
}

/// Runs `work` without the GVL and returns its result, or the payload of its panic.
///
/// `work` must not touch any Ruby object except inside [`with_gvl`]: without the GVL another
/// thread may be running the garbage collector. Callers copy what they need out of Ruby
/// values first.
///
/// No unblocking function is given: a plugin call cannot be cut short from outside, so a
/// `Thread#kill` or an interrupt waits for the call to end, which the pack's own timeout
/// bounds.
pub(crate) fn without_gvl<F, R>(work: F) -> std::thread::Result<R>
where
    F: FnOnce() -> R,
{
    let mut job = Job {
        work: Some(work),
        outcome: None,
    };
    // SAFETY: `run_job::<F, R>` receives a pointer to `job`, which outlives the call;
    // `rb_thread_call_without_gvl` runs it once, on this thread, before returning.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(run_job::<F, R>),
            (&mut job as *mut Job<F, R>).cast::<c_void>(),
            None,
            null_mut(),
        );
    }
    job.outcome
        .unwrap_or_else(|| Err(Box::new("the work never ran")))
}

/// Runs `work` with the GVL taken back, from inside [`without_gvl`] on the same thread, and
/// returns its result or the payload of its panic. The GVL is released again on return.
///
/// Only for a Ruby thread that released the GVL through [`without_gvl`]: Ruby aborts the
/// process when any other thread calls `rb_thread_call_with_gvl`, and reports a bug when
/// the caller still holds the GVL. Callers check with `magnus::Ruby::get` first.
///
/// `work` must not let a Ruby exception or `throw` unwind out of it (it calls Ruby only
/// through magnus's protected calls): the longjmp would cross the Rust and wasm frames
/// between here and [`without_gvl`] without running their destructors.
pub(crate) fn with_gvl<F, R>(work: F) -> std::thread::Result<R>
where
    F: FnOnce() -> R,
{
    let mut job = Job {
        work: Some(work),
        outcome: None,
    };
    // SAFETY: as in `without_gvl`: `run_job::<F, R>` receives a pointer to `job`, which
    // outlives the call, and `rb_thread_call_with_gvl` runs it once, on this thread, holding
    // the GVL, before it returns.
    unsafe {
        rb_sys::rb_thread_call_with_gvl(
            Some(run_job::<F, R>),
            (&mut job as *mut Job<F, R>).cast::<c_void>(),
        );
    }
    job.outcome
        .unwrap_or_else(|| Err(Box::new("the work never ran")))
}

/// The C-callable trampoline of both directions. A panic must never unwind into Ruby's C
/// frames, so it is caught here and carried back as data.
unsafe extern "C" fn run_job<F, R>(data: *mut c_void) -> *mut c_void
where
    F: FnOnce() -> R,
{
    // SAFETY: `data` is the `&mut Job<F, R>` that `without_gvl` or `with_gvl` passed in.
    let job = unsafe { &mut *data.cast::<Job<F, R>>() };
    if let Some(work) = job.work.take() {
        job.outcome = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    null_mut()
}
