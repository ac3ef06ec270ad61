//! Host functions written in Kotlin or Java. The Kotlin layer registers one dispatcher (two
//! C callbacks, through JNA) at start-up and a handler id per function; `NativeHostFunction`
//! binds an id to its import name, and each call of it from a pack crosses as one callback
//! with primitive arguments, its answer handed back through `packhost_jvm_reply_output` or
//! `packhost_jvm_reply_failure`. (uniffi's foreign traits would allocate a JNA structure per
//! argument, about 85 us a call.) The handler runs on the thread of the call that made the
//! pack call it; a flow's parallel branch runs it on the branch's thread, which JNA attaches
//! to the JVM. When the core drops the last copy of a function, the dispatcher's release
//! callback lets the Kotlin layer forget the handler.

use std::sync::{Arc, OnceLock};

use packhost::{HostFnError, HostFunction};

use crate::fast::bytes;

/// Calls handler `handler` on `input`, with the call's context as JSON text (a null pointer
/// when it has none), the calling pack's name and id and the import's name, all as UTF-8
/// pointers and lengths valid only during the call. It answers through `reply` and returns
/// 0, or returns non-zero when it could not run at all.
pub type Dispatch = unsafe extern "C" fn(
    handler: i64,
    input: *const u8,
    input_length: i32,
    context: *const u8,
    context_length: i32,
    pack_name: *const u8,
    pack_name_length: i32,
    pack_id: *const u8,
    pack_id_length: i32,
    function: *const u8,
    function_length: i32,
    reply: *mut Reply,
) -> i32;

/// Tells the Kotlin layer that no pack holds handler `handler` any more.
pub type Release = unsafe extern "C" fn(handler: i64);

/// The two callbacks, registered once per process.
struct Dispatcher {
    dispatch: Dispatch,
    release: Release,
}

static DISPATCHER: OnceLock<Dispatcher> = OnceLock::new();

/// Registers the Kotlin layer's dispatcher; a second registration (a second class loader)
/// keeps the first, whose handlers the ids refer to.
#[no_mangle]
pub extern "C" fn packhost_jvm_set_dispatcher(dispatch: Dispatch, release: Release) {
    let _ = DISPATCHER.set(Dispatcher { dispatch, release });
}

/// What a handler answered.
#[derive(Default)]
pub struct Reply {
    output: Vec<u8>,
    /// The class and message of what the handler threw.
    failure: Option<(String, String)>,
}

/// The handler's output.
///
/// # Safety
/// `reply` is the pointer the dispatcher was given; `data` points at `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_reply_output(
    reply: *mut Reply,
    data: *const u8,
    length: i32,
) {
    // SAFETY: as the function's contract says; the reply lives until the dispatch returns.
    unsafe { (*reply).output = bytes(data, length).to_vec() };
}

/// What the handler threw: its class and message, as UTF-8.
///
/// # Safety
/// `reply` is the pointer the dispatcher was given; each pointer points at its length.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_reply_failure(
    reply: *mut Reply,
    class: *const u8,
    class_length: i32,
    message: *const u8,
    message_length: i32,
) {
    // SAFETY: as the function's contract says.
    unsafe {
        let text = |data, length| String::from_utf8_lossy(bytes(data, length)).into_owned();
        (*reply).failure = Some((text(class, class_length), text(message, message_length)));
    }
}

/// A handler id the core's host function holds: the Kotlin layer forgets the handler when
/// the last copy goes.
struct Registered(i64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(dispatcher) = DISPATCHER.get() {
            // SAFETY: the Kotlin layer registered a callback that takes an id.
            unsafe { (dispatcher.release)(self.0) };
        }
    }
}

/// A handler (by the Kotlin layer's id) lent under an import name and namespace.
#[derive(uniffi::Object)]
pub struct NativeHostFunction {
    name: String,
    namespace: String,
    handler: Arc<Registered>,
}

#[uniffi::export]
impl NativeHostFunction {
    /// Lends handler `handler` (an id the Kotlin layer registered with its dispatcher) as the
    /// import `namespace`.`name` (Extism PDKs import from `extism:host/user`).
    #[uniffi::constructor]
    pub fn new(name: String, namespace: String, handler: i64) -> Arc<Self> {
        Arc::new(NativeHostFunction {
            name,
            namespace,
            handler: Arc::new(Registered(handler)),
        })
    }
}

/// A length as the callbacks take it (inputs are bounded by `max_input_bytes` far below).
fn length(bytes: &[u8]) -> i32 {
    i32::try_from(bytes.len()).unwrap_or(i32::MAX)
}

impl NativeHostFunction {
    /// The core host function that calls this handler through the dispatcher.
    pub(crate) fn core(&self) -> HostFunction {
        let handler = Arc::clone(&self.handler);
        HostFunction::bytes(self.name.clone(), move |call, input| {
            let dispatcher = DISPATCHER
                .get()
                .ok_or_else(|| HostFnError::new("no JVM dispatcher is registered"))?;
            let context = (!call.context.is_null()).then(|| call.context.to_string());
            let context = context.as_deref().map(str::as_bytes);
            let mut reply = Reply::default();
            // SAFETY: every pointer and length describes memory alive for the call, and the
            // dispatcher answers through `reply` before it returns.
            let status = unsafe {
                (dispatcher.dispatch)(
                    handler.0,
                    input.as_ptr(),
                    length(input),
                    context.map_or(std::ptr::null(), <[u8]>::as_ptr),
                    context.map_or(0, length),
                    call.pack_name.as_ptr(),
                    length(call.pack_name.as_bytes()),
                    call.pack_id.as_ptr(),
                    length(call.pack_id.as_bytes()),
                    call.function.as_ptr(),
                    length(call.function.as_bytes()),
                    &mut reply,
                )
            };
            match reply.failure {
                Some((class, message)) => Err(HostFnError::with_class(message, class)),
                None if status == 0 => Ok(reply.output),
                None => Err(HostFnError::new("the JVM handler could not run")),
            }
        })
        .with_namespace(self.namespace.clone())
    }
}
