//! Ruby callables lent to packs as host functions. The Ruby half
//! (`lib/packhost/host_function.rb`) wraps each handler in an adapter that takes the input
//! bytes and the call's facts as JSON and returns a String, doing every conversion; this
//! file takes the GVL back for the adapter only, turns what it raised into the core's
//! `HostFnError`, and keeps the exception (or the `throw`) for the binding to raise once the
//! call is over.
//!
//! No Ruby object is stored on the Rust side between calls. A pack keeps its adapters in a
//! frozen Array (`@host_adapters`) and passes it to every call; the call's frame on this
//! thread holds it, and a handler finds its adapter there by index. The Array is a method
//! argument for the whole call, so Ruby's GC neither frees nor moves it, and the adapter is
//! read from it afresh each time.
//!
//! A flow run calls several packs, so its frame holds an Array of their adapter Arrays
//! instead, and each pack's functions carry the number of the load that lent them (its
//! "lender"): a handler finds its pack's Array by that number, then its adapter by index.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use magnus::error::{ErrorType, RubyUnavailableError, Tag};
use magnus::value::{BoxValue, Opaque};
use magnus::{prelude::*, Error, Exception, RArray, RString, Ruby, Value};
use packhost::{HostCall, HostFnError, HostFunction};
use serde::Serialize;

use crate::errors::panic_message;
use crate::gvl::with_gvl;

/// How a handler ended other than by returning a String, kept until its call is over.
pub(crate) enum Failure {
    /// It raised this exception. `BoxValue` makes it a GC root (one Ruby never moves), as
    /// other threads may collect garbage before the call returns.
    Raised(BoxValue<Exception>),
    /// It left by `throw`, or its thread was killed: a jump that must not cross the pack's
    /// frames, resumed once the call is over. Holds no Ruby object.
    Jumped(Error),
}

/// One pack call (or flow run) in progress on this thread.
struct Frame {
    /// For a pack call, the pack's adapters, in the order its functions were registered.
    /// For a flow run, an Array holding each of its packs' adapter Arrays (nil for a pack
    /// that lends none), in the order of `lenders`.
    adapters: Option<Opaque<RArray>>,
    /// For a flow run, the lender number of each of its packs; `None` for a pack call,
    /// whose handlers are all its own pack's.
    lenders: Option<Vec<u64>>,
    /// How a handler failed, if one did; the first failure ends the call.
    failure: Option<Failure>,
}

/// The next lender number: each load's functions get their own, kept through reloads
/// (the next version lends the same functions), so a handler called in a flow run finds
/// its own pack's adapters among the run's.
static NEXT_LENDER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The pack calls (and flow runs) in progress on this thread, innermost last. The core
    /// runs a handler on the thread of the call that invoked it, so the innermost frame is
    /// always the handler's own call's (or its flow run's); calls nest when a handler calls
    /// a pack.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The core functions for `(namespace, name)` pairs, the N-th running the N-th adapter of
/// the calls it serves, and the lender number they carry (see [`scope_flow`]).
pub(crate) fn host_functions(specs: Vec<(String, String)>) -> (u64, Vec<HostFunction>) {
    let lender = NEXT_LENDER.fetch_add(1, Ordering::Relaxed);
    let functions = specs
        .into_iter()
        .enumerate()
        .map(|(index, (namespace, name))| {
            HostFunction::bytes(name, move |call, input| run(lender, index, call, input))
                .with_namespace(namespace)
        })
        .collect();
    (lender, functions)
}

/// Runs `call`, one pack call, as the innermost call on this thread,
/// whose handlers find their adapters in `adapters`. Returns its result, or the panic it
/// raised, and how a handler failed, if one did. Nothing here needs the GVL: the failure is
/// moved out, and dropped by the caller once it holds the GVL again.
pub(crate) fn scope<T>(
    adapters: Option<Opaque<RArray>>,
    call: impl FnOnce() -> T,
) -> (std::thread::Result<T>, Option<Failure>) {
    enter(adapters, None, call)
}

/// [`scope`] for a flow run: `adapters` holds the adapter Array (or nil) of each pack the
/// flow calls, in the order of `lenders`, their lender numbers. Only steps that run on this
/// thread find them: a step in a `parallel` branch other than the first runs on a thread
/// Ruby does not know, where no handler can run.
pub(crate) fn scope_flow<T>(
    adapters: Option<Opaque<RArray>>,
    lenders: Vec<u64>,
    call: impl FnOnce() -> T,
) -> (std::thread::Result<T>, Option<Failure>) {
    enter(adapters, Some(lenders), call)
}

fn enter<T>(
    adapters: Option<Opaque<RArray>>,
    lenders: Option<Vec<u64>>,
    call: impl FnOnce() -> T,
) -> (std::thread::Result<T>, Option<Failure>) {
    FRAMES.with(|frames| {
        frames.borrow_mut().push(Frame {
            adapters,
            lenders,
            failure: None,
        })
    });
    // Caught here so the frame always comes off, whatever `call` does.
    let result = catch_unwind(AssertUnwindSafe(call));
    let frame = FRAMES.with(|frames| frames.borrow_mut().pop());
    (result, frame.and_then(|frame| frame.failure))
}

/// The facts a handler's `Packhost::HostCall` reads, as JSON.
#[derive(Serialize)]
struct CallInfo<'a> {
    pack_name: &'a str,
    pack_id: &'a str,
    function: &'a str,
    context: &'a serde_json::Value,
}

/// One call of the host function whose adapter is the `index`-th of the pack whose load
/// numbered its functions `lender`, from inside a pack call or a flow run.
fn run(
    lender: u64,
    index: usize,
    call: &HostCall<'_>,
    input: &[u8],
) -> Result<Vec<u8>, HostFnError> {
    // Written before the GVL is taken: the less done holding it, the better.
    let info = serde_json::to_string(&CallInfo {
        pack_name: call.pack_name,
        pack_id: call.pack_id,
        function: call.function,
        context: call.context,
    })?;
    match Ruby::get() {
        // A call the core did not expect to be short released the GVL: take it back for
        // the handler. A short call holds it, and the handler runs as it is (below).
        Err(RubyUnavailableError::GvlUnlocked) => with_gvl(|| {
            // SAFETY: `rb_thread_call_with_gvl` runs this on a Ruby thread holding the GVL.
            let ruby = unsafe { Ruby::get_unchecked() };
            run_adapter(&ruby, lender, index, input, &info)
        })
        .unwrap_or_else(|payload| Err(HostFnError::with_class(panic_message(&*payload), "panic"))),
        Ok(ruby) => run_adapter(&ruby, lender, index, input, &info),
        Err(RubyUnavailableError::NonRubyThread) => Err(HostFnError::new(
            "a Ruby handler was called on a thread Ruby does not know",
        )),
    }
}

/// Calls the adapter with the input (a binary String) and the call's facts (a JSON String),
/// holding the GVL, and returns the bytes of the String it returns.
fn run_adapter(
    ruby: &Ruby,
    lender: u64,
    index: usize,
    input: &[u8],
    info: &str,
) -> Result<Vec<u8>, HostFnError> {
    let adapter = adapters_of(ruby, lender)
        .and_then(|adapters| adapters.entry::<Value>(index as isize).ok())
        .filter(|adapter| !adapter.is_nil())
        .ok_or_else(|| HostFnError::new("the call carries no handler for this host function"))?;
    // A protected call: what the handler raises or throws comes back as an `Err`, never as a
    // longjmp through the frames of the pack.
    let returned =
        adapter.funcall::<_, _, Value>("call", (ruby.str_from_slice(input), ruby.str_new(info)));
    match returned {
        Ok(output) => match RString::from_value(output) {
            // SAFETY: the bytes are copied before any Ruby code can run.
            Some(bytes) => Ok(unsafe { bytes.as_slice() }.to_vec()),
            None => Err(HostFnError::with_class(
                // SAFETY: the name is copied before any Ruby code can run.
                format!("the handler's adapter returned {}, not a String", unsafe {
                    output.classname()
                }),
                "TypeError",
            )),
        },
        Err(err) => Err(failed(err)),
    }
}

/// The adapters of the pack whose functions `lender` numbered, from the innermost frame on
/// this thread: a pack call's own Array, or for a flow run, that pack's entry of the run's
/// Array (read afresh, as the GC may have moved it). No borrow of the frames is held once
/// this returns, so the handler may push frames of its own.
fn adapters_of(ruby: &Ruby, lender: u64) -> Option<RArray> {
    let (adapters, position) = FRAMES.with(|frames| {
        let frames = frames.borrow();
        let frame = frames.last()?;
        let position = match &frame.lenders {
            None => None,
            Some(lenders) => Some(lenders.iter().position(|&each| each == lender)?),
        };
        Some((frame.adapters?, position))
    })?;
    let adapters = ruby.get_inner(adapters);
    match position {
        None => Some(adapters),
        Some(position) => adapters
            .entry::<Value>(position as isize)
            .ok()
            .and_then(RArray::from_value),
    }
}

/// The core's error for what a handler raised or how it jumped out, keeping the exception
/// or the jump in the innermost frame for the binding to raise after the call.
fn failed(err: Error) -> HostFnError {
    let (failure, reported) = match err.error_type() {
        ErrorType::Exception(exception) => {
            let exception = *exception;
            // Rooted before anything else can run Ruby code (and so the GC).
            let kept = BoxValue::new(exception);
            // SAFETY: the name is copied before any Ruby code can run.
            let class = unsafe { exception.classname() }.into_owned();
            let message = exception
                .funcall::<_, _, Value>("message", ())
                .ok()
                .and_then(RString::from_value)
                // SAFETY: the bytes are copied before any Ruby code can run.
                .map(|text| String::from_utf8_lossy(unsafe { text.as_slice() }).into_owned())
                .unwrap_or_default();
            (
                Some(Failure::Raised(kept)),
                HostFnError::with_class(message, class),
            )
        }
        // magnus's own errors (a failed conversion) carry a class and a message, no object.
        ErrorType::Error(class, message) => (
            None,
            // SAFETY: the name is copied before any Ruby code can run.
            HostFnError::with_class(message.to_string(), unsafe { class.name() }.into_owned()),
        ),
        ErrorType::Jump(tag) => {
            let how = match tag {
                Tag::Throw => "by throw",
                Tag::Fatal => "as its thread was killed",
                _ => "by a jump (break, next, return or retry)",
            };
            (
                Some(Failure::Jumped(err.clone())),
                HostFnError::new(format!("the handler left {how}")),
            )
        }
    };
    if let Some(failure) = failure {
        FRAMES.with(|frames| {
            if let Some(frame) = frames.borrow_mut().last_mut() {
                frame.failure = Some(failure);
            }
        });
    }
    reported
}
