//! Running Rust work with Ruby's global VM lock released, so other Ruby threads keep running
//! (and can run packs of their own) while a plugin call blocks this one; and taking the lock
//! back for a moment inside such work, which is how a host function's Ruby handler runs.
//! [`Gvl`] lends the first to the core, which decides which calls release the lock.
//!
//! Ruby delivers an interrupt (`Thread#raise`, `Thread#kill`, `Timeout.timeout`, Ctrl-C) by
//! longjmp. None may cross the Rust frames between a native method and the work it runs:
//! the jump skips their destructors, so the pack call's input and result would leak, and
//! any guard in the binding or the core would be skipped. So [`without_gvl`] releases the
//! GVL in a way where Ruby raises no interrupt: those that arrive are caught (or left
//! pending), and the native method raises them as it returns ([`Interrupts::deliver`]), as
//! if they had arrived just then. [`with_gvl`] cannot turn Ruby's check off; its doc says
//! what guards it.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use magnus::value::BoxValue;
use magnus::Exception;
use packhost::InterpreterLock;

/// How many times [`without_gvl`] lets Ruby serve this thread's interrupts and asks again
/// for the GVL to be released, before it runs the work holding it.
const SERVINGS_BEFORE_HOLDING: usize = 3;

/// The interrupts a native method's work left to raise: the first one [`without_gvl`]
/// caught while it let Ruby serve them, and any still pending when the work ends. Lives on
/// the native method's stack, one per method call, so nothing caught for one call can reach
/// another (a pack a host function calls has its own).
#[derive(Default)]
pub(crate) struct Interrupts {
    /// The caught interrupt; the box keeps its exception alive for the GC meanwhile.
    caught: Option<(magnus::Error, Option<BoxValue<Exception>>)>,
}

impl Interrupts {
    /// Keeps `interrupt` unless one is kept already (Ruby raises the first too).
    fn catch(&mut self, interrupt: magnus::Error) {
        if self.caught.is_none() {
            let alive = match interrupt.error_type() {
                magnus::error::ErrorType::Exception(exception) => Some(BoxValue::new(*exception)),
                _ => None,
            };
            self.caught = Some((interrupt, alive));
        }
    }

    /// Delivers, as an `Err`, the interrupt caught or held back while the work ran
    /// (`Thread#raise`, `Timeout.timeout`, `Thread#kill`). A native method calls this as
    /// soon as the work returns, before it runs any Ruby code of its own: that code would
    /// otherwise receive the interrupt, and a protected call there would swallow it.
    /// Returning the `Err` makes Ruby raise (or throw) it as the method returns, replacing
    /// the work's result, as the interrupt would have if it had arrived in Ruby code.
    pub(crate) fn deliver(self) -> Result<(), magnus::Error> {
        if let Some((interrupt, _alive)) = self.caught {
            return Err(interrupt);
        }
        serve()
    }
}

/// The GVL of the Ruby thread making a call, as the core's [`InterpreterLock`], with the
/// interrupts its released parts leave. Ruby has no way to release the GVL in the middle of
/// a call, so a call the core expects to be short holds it to its end.
#[derive(Default)]
pub(crate) struct Gvl {
    pub(crate) interrupts: Interrupts,
}

impl InterpreterLock for Gvl {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        // The core catches panics inside `call`, so a panic here would be a core bug; and
        // `without_gvl` always runs the work, so the core never sees a call that did not.
        let _ = without_gvl(&mut self.interrupts, call);
    }
}

/// Lets Ruby serve this thread's pending interrupts (switching threads when its time slice
/// is up, running postponed jobs and finalizers, raising a pending exception), catching
/// whatever is raised.
fn serve() -> Result<(), magnus::Error> {
    magnus::rb_sys::protect(|| {
        // SAFETY: on a Ruby thread holding the GVL (a native method's, or `without_gvl`'s
        // before it releases it); an interrupt unwinds only as far as `protect`.
        unsafe { rb_sys::rb_thread_check_ints() };
        rb_sys::Qnil as rb_sys::VALUE
    })
    .map(|_| ())
}

/// The work to run and, once it ran, its result (or the panic it raised).
struct Job<F, R> {
    work: Option<F>,
    outcome: Option<std::thread::Result<R>>,
}

impl<F, R> Job<F, R>
where
    F: FnOnce() -> R,
{
    fn new(work: F) -> Self {
        Job {
            work: Some(work),
            outcome: None,
        }
    }

    /// Runs the work unless it already ran, keeping its result or the payload of its panic:
    /// a panic must never unwind into Ruby's C frames.
    fn run(&mut self) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(catch_unwind(AssertUnwindSafe(work)));
        }
    }

    fn ran(&self) -> bool {
        self.work.is_none()
    }

    /// The work's result, or the payload of its panic.
    fn into_outcome(self) -> std::thread::Result<R> {
        self.outcome
            .unwrap_or_else(|| Err(Box::new("the work never ran")))
    }
}

/// Runs `work` without the GVL and returns its result, or the payload of its panic.
///
/// `work` must not touch any Ruby object except inside [`with_gvl`]: without the GVL another
/// thread may be running the garbage collector. Callers copy what they need out of Ruby
/// values first.
///
/// No unblocking function is given: an interrupt does not cut a plugin call short (only the
/// call's `Packhost::CancelToken` does, and cancelling one is the host's explicit choice,
/// not something an interrupt may decide for it), so an interrupt waits for the call to
/// end, which the pack's own timeout bounds.
///
/// Ruby's `rb_thread_call_without_gvl` checks for interrupts before the work and again after
/// it, and raises a pending one there, by a longjmp through this function and every Rust
/// frame up to the native method: the call's input and result leaked, the host-function
/// frame never popped. So this calls `rb_nogvl` with `RB_NOGVL_INTR_FAIL`, which checks for
/// none: the work returns here normally, the method returns normally, and Ruby raises the
/// interrupt at its next safe point, in Ruby code.
///
/// With that flag Ruby also declines to release the GVL while any interrupt flag of this
/// thread is set, and then does not run the work at all. That flag is not only a pending
/// exception: the scheduler's time-slice timer and its postponed jobs set it too (often,
/// under a busy GC), and running the work holding the GVL then would stall every other Ruby
/// thread for the whole call, the one that would cancel it among them. So Ruby is let serve
/// the interrupts ([`serve`]: it may switch threads, run finalizers, raise a pending
/// exception, which is caught into `interrupts` for the method to raise as it returns) and
/// is asked again, up to [`SERVINGS_BEFORE_HOLDING`] times. Should it still decline, the
/// work runs here, holding the GVL, as a call the core expects to be short does: the call
/// runs as it would have, only the other Ruby threads wait for it, and what is pending
/// still reaches Ruby as the method returns. Host-function handlers notice that the GVL is
/// held (`magnus::Ruby::get`) and do not take it again.
pub(crate) fn without_gvl<F, R>(interrupts: &mut Interrupts, work: F) -> std::thread::Result<R>
where
    F: FnOnce() -> R,
{
    let mut job = Job::new(work);
    for servings in 0..=SERVINGS_BEFORE_HOLDING {
        // SAFETY: `run_job::<F, R>` receives a pointer to `job`, which outlives the call;
        // `rb_nogvl` runs it at most once, on this thread, before returning. The caller
        // holds the GVL, as every native method does. `RB_NOGVL_INTR_FAIL` (a small bindgen
        // constant) fits the C `int` the flags are.
        unsafe {
            rb_sys::rb_nogvl(
                Some(run_job::<F, R>),
                (&mut job as *mut Job<F, R>).cast::<c_void>(),
                None,
                null_mut(),
                rb_sys::RB_NOGVL_INTR_FAIL as _,
            );
        }
        if job.ran() || servings == SERVINGS_BEFORE_HOLDING {
            break;
        }
        if let Err(interrupt) = serve() {
            interrupts.catch(interrupt);
        }
    }
    // Ruby declined to release the GVL (see above): run the work holding it.
    job.run();
    job.into_outcome()
}

/// Runs `work` with the GVL taken back, from inside [`without_gvl`] on the same thread, and
/// returns its result or the payload of its panic. The GVL is released again on return.
///
/// Only for a Ruby thread that released the GVL through [`without_gvl`]: Ruby aborts the
/// process when any other thread calls `rb_thread_call_with_gvl`, and reports a bug when
/// the caller still holds the GVL (as it does when `without_gvl` ran its work holding it).
/// Callers check with `magnus::Ruby::get` first.
///
/// `work` must not let a Ruby exception or `throw` unwind out of it (it calls Ruby only
/// through magnus's protected calls): the longjmp would cross the Rust and wasm frames
/// between here and [`without_gvl`] without running their destructors.
///
/// Unlike [`without_gvl`], Ruby checks for interrupts as `rb_thread_call_with_gvl` releases
/// the GVL again after `work`, with no flag to turn that off, and raises a pending one
/// there, through those frames. The Ruby half guards against it: a call that lends host
/// functions runs under `Thread.handle_interrupt(Object => :never)`, and each handler under
/// `:immediate` (`lib/packhost/host_function.rb`), so `Thread#raise` and `#kill` reach a
/// handler or wait for the call to end. Ruby does not apply that mask to signals on the
/// main thread (its default Ctrl-C handler and `trap` handlers), so one arriving after a
/// handler's last Ruby code and before the GVL is released again is still raised there.
pub(crate) fn with_gvl<F, R>(work: F) -> std::thread::Result<R>
where
    F: FnOnce() -> R,
{
    let mut job = Job::new(work);
    // SAFETY: as in `without_gvl`: `run_job::<F, R>` receives a pointer to `job`, which
    // outlives the call, and `rb_thread_call_with_gvl` runs it once, on this thread, holding
    // the GVL, before it returns.
    unsafe {
        rb_sys::rb_thread_call_with_gvl(
            Some(run_job::<F, R>),
            (&mut job as *mut Job<F, R>).cast::<c_void>(),
        );
    }
    job.into_outcome()
}

/// The C-callable trampoline of both directions.
unsafe extern "C" fn run_job<F, R>(data: *mut c_void) -> *mut c_void
where
    F: FnOnce() -> R,
{
    // SAFETY: `data` is the `&mut Job<F, R>` that `without_gvl` or `with_gvl` passed in.
    let job = unsafe { &mut *data.cast::<Job<F, R>>() };
    job.run();
    null_mut()
}
