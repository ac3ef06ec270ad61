//! Host functions lent from JavaScript: moves each call the core makes into the wrapper's
//! dispatcher (`dispatchHostCall` in `packhost.js`) on the JavaScript thread, and the
//! handler's answer back, whichever thread the pack runs on.
//!
//! Handlers are JavaScript, so they run on the JavaScript thread. Under `callSync` the pack
//! already runs there, so the dispatcher is called in place and returns the answer: the
//! output bytes, or the failure as `{message, errorClass}`. An async call runs on a libuv
//! pool thread, which queues the call on the JavaScript thread through a threadsafe function
//! with a `HostReply` to answer through, and waits; the JavaScript thread is free meanwhile
//! (it is awaiting that very call), so the handler runs, and may await other calls, without
//! a deadlock.
//!
//! A call in place creates as little as it can on the JavaScript side, as a host call's cost
//! is mostly that: the function by its index, the input as one copied Buffer, and the call's
//! facts as JSON only for a handler that reads them.
//!
//! The wrapper turns handler values into bytes and thrown values into a message and a
//! class; this module only moves bytes and text. It holds no reference to a pack's own
//! JavaScript objects: the dispatcher is one module-level function that finds the pack's
//! handlers by table id, so a handler that closes over its pack forms no cycle through a
//! native reference the collector cannot see.

use std::cell::Cell;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use napi::bindgen_prelude::{
    Buffer, BufferSlice, FnArgs, FromNapiValue, Function, FunctionRef, JsValue, Null, ToNapiValue,
};
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{sys, Env, Status};
use napi_derive::napi;
use packhost::{Error, ErrorKind, HostCall, HostFnError, HostFunction, PackOptions};

/// How much longer than the pack's call timeout a pool thread waits for a handler to settle.
/// The core ends a call that outlived its limit with `timeout` once the handler returns, so
/// this wait only bounds a handler that never settles (a promise nobody resolves): without
/// it that call would hold its pool thread forever.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// One host function the JavaScript side lends: its import name and module.
#[napi(object)]
pub struct NativeHostImport {
    /// The import name, e.g. `reverse`.
    pub name: String,
    /// The import module; absent for the core's default, `extism:host/user`.
    pub namespace: Option<String>,
    /// Whether the handler reads the call's facts (context, pack, function); they are not
    /// sent to one that does not. Absent means it does.
    pub wants_call: Option<bool>,
}

/// The host functions one pack is loaded with.
#[napi(object)]
pub struct NativeHostFunctions {
    /// The id of the wrapper's table holding the handlers, passed back with every call.
    pub table: u32,
    /// The imports lent.
    pub imports: Vec<NativeHostImport>,
}

/// What one handler call ends with: its output bytes or its failure.
type Answer = Result<Vec<u8>, HostFnError>;

/// The reply slot of one host call, handed to the dispatcher with the call: the handler's
/// outcome comes back through `ok` or `fail`, and only the first one counts. A reply
/// collected unanswered ends the wait with an error instead of leaving the pack blocked.
#[napi]
pub struct HostReply {
    answer: Mutex<Option<Sender<Answer>>>,
}

#[napi]
impl HostReply {
    /// Answers the call with the handler's output.
    #[napi]
    pub fn ok(&self, output: Buffer) {
        self.send(Ok(output.to_vec()));
    }

    /// Fails the call with the handler's message and the class of what it threw.
    #[napi]
    pub fn fail(&self, message: String, error_class: Option<String>) {
        self.send(Err(HostFailure {
            message,
            error_class,
        }
        .into()));
    }
}

impl HostReply {
    fn new(answer: Sender<Answer>) -> Self {
        HostReply {
            answer: Mutex::new(Some(answer)),
        }
    }

    fn send(&self, answer: Answer) {
        let sender = self
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            // The waiting side may have given up (its patience ran out); nothing to do then.
            sender.send(answer).ok();
        }
    }
}

/// The dispatcher's arguments when the addon calls it in place, under `callSync`: the
/// error-first slot (always null), the table id, the function's index in the table, the
/// input, the call as JSON text (`{context, packName, packId, function}`, null when the
/// handler does not read it) and no reply: the dispatcher returns the answer.
type DirectArgs = FnArgs<(Null, u32, u32, InputCopy, Option<String>, Null)>;

/// The same arguments queued from a pool thread, with the reply to answer through; the
/// threadsafe function adds the error-first slot itself, filled only when it could not build
/// the rest.
type QueuedArgs = FnArgs<(u32, u32, Buffer, Option<String>, HostReply)>;

/// A host call's input for a call in place: a Buffer holding a copy of the bytes, which
/// costs less to make than an external Buffer over a vector for the small inputs host calls
/// carry.
pub struct InputCopy(sys::napi_value);

impl ToNapiValue for InputCopy {
    unsafe fn to_napi_value(_: sys::napi_env, input: Self) -> napi::Result<sys::napi_value> {
        Ok(input.0)
    }
}

/// What the dispatcher returns for a call in place: a Buffer of output bytes, or the
/// failure.
pub struct DirectAnswer(Answer);

/// A handler's failure as the dispatcher returns it.
#[napi(object)]
pub struct HostFailure {
    /// What the handler threw, as text.
    pub message: String,
    /// The class of what it threw, when it was an object.
    pub error_class: Option<String>,
}

impl FromNapiValue for DirectAnswer {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: `env` and `value` come from the dispatcher's return, on this thread.
        if let Ok(output) = unsafe { BufferSlice::from_napi_value(env, value) } {
            return Ok(DirectAnswer(Ok(output.to_vec())));
        }
        // SAFETY: as above.
        let failure = unsafe { HostFailure::from_napi_value(env, value) }?;
        Ok(DirectAnswer(Err(failure.into())))
    }
}

impl From<HostFailure> for HostFnError {
    fn from(failure: HostFailure) -> Self {
        match failure.error_class {
            Some(class) => HostFnError::with_class(failure.message, class),
            None => HostFnError::new(failure.message),
        }
    }
}

/// The wrapper's `dispatchHostCall`, as the load functions receive it.
pub type Dispatcher<'env> = Function<'env, DirectArgs, UnknownReturnValue>;

/// The dispatcher as pool threads reach it: weak, so an idle pack never keeps Node's event
/// loop alive, and error-first, so a failure to build the arguments reaches the dispatcher
/// as a value instead of becoming an uncaught exception.
type Queue = ThreadsafeFunction<HostRequest, UnknownReturnValue, QueuedArgs, Status, true, true>;

/// One host call queued for the dispatcher from a pool thread.
struct HostRequest {
    table: u32,
    index: u32,
    input: Vec<u8>,
    call_json: Option<String>,
    reply: Sender<Answer>,
}

impl HostRequest {
    fn queued_args(self) -> QueuedArgs {
        FnArgs::from((
            self.table,
            self.index,
            Buffer::from(self.input),
            self.call_json,
            HostReply::new(self.reply),
        ))
    }
}

thread_local! {
    /// The env of the `callSync` running on this thread, null when none is: the only
    /// place a host call on the JavaScript thread can come from, and the env to call the
    /// dispatcher with (an env may not be cached beyond the call that received it).
    static SYNC_ENV: Cell<sys::napi_env> = const { Cell::new(std::ptr::null_mut()) };
}

/// Marks a `callSync` running on this thread for as long as it lives; nested `callSync`s
/// (a handler calling a pack synchronously) restore the outer one's mark when they end.
pub(crate) struct SyncCall {
    outer: sys::napi_env,
}

impl SyncCall {
    pub(crate) fn enter(env: &Env) -> Self {
        SyncCall {
            outer: SYNC_ENV.with(|current| current.replace(env.raw())),
        }
    }
}

impl Drop for SyncCall {
    fn drop(&mut self) {
        SYNC_ENV.with(|current| current.set(self.outer));
    }
}

/// What load prepares on the JavaScript thread for a pack's host functions. The functions
/// themselves are made by [`HostBridge::functions`] once the options are read, which for an
/// async load happens on a pool thread.
pub(crate) struct HostBridge {
    table: u32,
    imports: Vec<NativeHostImport>,
    dispatcher: FunctionRef<DirectArgs, DirectAnswer>,
    queue: Queue,
    js_thread: ThreadId,
}

impl HostBridge {
    /// Prepares `host` on the JavaScript thread; `None` when the pack is lent nothing.
    ///
    /// # Errors
    /// `internal` when functions come without the dispatcher, or Node cannot reference it.
    pub(crate) fn prepare(
        host: Option<NativeHostFunctions>,
        dispatcher: Option<Dispatcher<'_>>,
    ) -> packhost::Result<Option<Self>> {
        let Some(host) = host.filter(|host| !host.imports.is_empty()) else {
            return Ok(None);
        };
        let Some(dispatcher) = dispatcher else {
            return Err(Error::new(
                ErrorKind::Internal,
                "host functions came without the dispatcher",
            ));
        };
        let failed = |err: napi::Error| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot prepare the host functions: {}", err.reason),
            )
        };
        let queue = dispatcher
            .build_threadsafe_function::<HostRequest>()
            .weak::<true>()
            .callee_handled::<true>()
            .build_callback(|ctx: ThreadsafeCallContext<HostRequest>| Ok(ctx.value.queued_args()))
            .map_err(failed)?;
        // The same function, called in place, returns the answer.
        let raw = dispatcher.value();
        // SAFETY: `raw` is the dispatcher function, on the JavaScript thread that passed it.
        let answering =
            unsafe { Function::<DirectArgs, DirectAnswer>::from_napi_value(raw.env, raw.value) }
                .map_err(failed)?;
        Ok(Some(HostBridge {
            table: host.table,
            imports: host.imports,
            dispatcher: answering.create_ref().map_err(failed)?,
            queue,
            js_thread: std::thread::current().id(),
        }))
    }

    /// The core's host functions for the imports, sharing one way to the dispatcher.
    pub(crate) fn functions(self, options: &PackOptions) -> Vec<HostFunction> {
        let HostBridge {
            table,
            imports,
            dispatcher,
            queue,
            js_thread,
        } = self;
        let lent = Arc::new(Lent {
            table,
            dispatcher,
            queue,
            js_thread,
            patience: Duration::from_millis(options.limits.timeout_ms)
                .saturating_add(SETTLE_MARGIN),
        });
        imports
            .into_iter()
            .zip(0..)
            .map(|(import, index)| {
                let lent = Arc::clone(&lent);
                let wants_call = import.wants_call.unwrap_or(true);
                let function = HostFunction::bytes(import.name, move |call, input| {
                    lent.run(index, wants_call.then(|| call_json(call)), input)
                });
                match import.namespace {
                    Some(namespace) => function.with_namespace(namespace),
                    None => function,
                }
            })
            .collect()
    }
}

/// The way from a pack's host functions to the dispatcher, shared by all of them.
struct Lent {
    table: u32,
    /// For calls on the JavaScript thread. Released on that thread whichever thread drops
    /// it (napi routes the release back), and it holds only the module-level dispatcher.
    dispatcher: FunctionRef<DirectArgs, DirectAnswer>,
    /// For calls on pool threads; released from any thread when the pack goes.
    queue: Queue,
    js_thread: ThreadId,
    /// How long a pool thread waits for a handler to settle.
    patience: Duration,
}

impl Lent {
    /// Runs the `index`-th handler of the table on `input`, with the call's facts as JSON
    /// when the handler reads them.
    fn run(&self, index: u32, call_json: Option<String>, input: &[u8]) -> Answer {
        if std::thread::current().id() == self.js_thread {
            self.run_here(index, call_json, input)
        } else {
            let (reply, answer) = mpsc::channel();
            let request = HostRequest {
                table: self.table,
                index,
                input: input.to_vec(),
                call_json,
                reply,
            };
            self.run_on_js_thread(request, &answer)
        }
    }

    /// Calls the dispatcher in place: this is the JavaScript thread, inside `callSync`.
    fn run_here(&self, index: u32, call_json: Option<String>, input: &[u8]) -> Answer {
        let env = SYNC_ENV.with(Cell::get);
        if env.is_null() {
            // Queuing the call would wait for this very thread: fail instead of deadlocking.
            return Err(HostFnError::new(
                "a host function was called on the JavaScript thread outside callSync",
            ));
        }
        let env = Env::from_raw(env);
        let _scope = HandleScope::open(&env);
        let answered = BufferSlice::copy_from(&env, input).and_then(|input| {
            let args = (
                Null,
                self.table,
                index,
                InputCopy(input.value().value),
                call_json,
                Null,
            );
            self.dispatcher
                .borrow_back(&env)
                .and_then(|dispatch| dispatch.call(FnArgs::from(args)))
        });
        match answered {
            Ok(DirectAnswer(answer)) => answer,
            Err(err) => Err(dispatcher_failed(&err)),
        }
    }

    /// Queues the call on the JavaScript thread and waits for the handler to settle.
    fn run_on_js_thread(&self, request: HostRequest, answer: &Receiver<Answer>) -> Answer {
        let fallback = request.reply.clone();
        let status = self.queue.call_with_return_value(
            Ok(request),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |returned: napi::Result<UnknownReturnValue>, _: Env| {
                if let Err(err) = returned {
                    // The dispatcher answers every failure itself; should it throw anyway,
                    // the call fails with what it threw instead of waiting out its patience.
                    fallback.send(Err(dispatcher_failed(&err))).ok();
                }
                Ok(())
            },
        );
        if status != Status::Ok {
            return Err(HostFnError::new(format!(
                "the JavaScript thread takes no more host calls ({status:?})"
            )));
        }
        match answer.recv_timeout(self.patience) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(HostFnError::with_class(
                format!(
                    "the handler did not settle within {} ms (the call's time limit and a margin)",
                    self.patience.as_millis()
                ),
                "Timeout",
            )),
            Err(RecvTimeoutError::Disconnected) => Err(HostFnError::new(
                "the handler's reply was collected without an answer",
            )),
        }
    }
}

/// What a handler learns about its call, as the JSON text the wrapper parses into the
/// `call` argument.
fn call_json(call: &HostCall<'_>) -> String {
    serde_json::json!({
        "context": call.context,
        "packName": call.pack_name,
        "packId": call.pack_id,
        "function": call.function,
    })
    .to_string()
}

fn dispatcher_failed(err: &napi::Error) -> HostFnError {
    HostFnError::new(format!(
        "the host-function dispatcher failed: {}",
        err.reason
    ))
}

/// A handle scope around one call of the dispatcher in place, so a pack that calls its
/// host in a loop under `callSync` does not keep every call's JavaScript values alive until
/// `callSync` returns.
struct HandleScope {
    env: sys::napi_env,
    scope: sys::napi_handle_scope,
}

impl HandleScope {
    fn open(env: &Env) -> Option<Self> {
        let mut scope = std::ptr::null_mut();
        // SAFETY: `env` is the env of the callSync running on this thread, so Node-API may
        // be called with it here.
        let status = unsafe { sys::napi_open_handle_scope(env.raw(), &mut scope) };
        (status == sys::Status::napi_ok).then_some(HandleScope {
            env: env.raw(),
            scope,
        })
    }
}

impl Drop for HandleScope {
    fn drop(&mut self) {
        // SAFETY: opened by `open` on this env and thread, closed once; scopes opened while
        // it was open (by nested calls) are closed before it, as their frames end first.
        unsafe { sys::napi_close_handle_scope(self.env, self.scope) };
    }
}
