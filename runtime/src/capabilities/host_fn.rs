//! Host functions: what an application lends its packs, the same on both engines. A host
//! function is registered at load beside the options; both engines' import trampolines
//! only move values in and out and call [`HostFunction::invoke`], which owns the rest:
//! catching panics, timing and counting the call, the call's deadline and the error a
//! failed handler becomes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::audit::{name_excerpt, AuditEntry, AuditTrail, Capability};
use crate::error::{Error, ErrorKind};

/// The import module every Extism PDK's host-function helper uses, and so the default.
pub const EXTISM_USER: &str = "extism:host/user";

/// A WebAssembly value type a general host function takes or returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer (kernel-memory offsets are these).
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl ValueType {
    /// The type's name in the WebAssembly text format, as `ModuleInfo` reports imports.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::I32 => "i32",
            ValueType::I64 => "i64",
            ValueType::F32 => "f32",
            ValueType::F64 => "f64",
        }
    }
}

/// A WebAssembly value passed to or returned from a general host function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WasmValue {
    /// 32-bit integer.
    I32(i32),
    /// 64-bit integer.
    I64(i64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit float.
    F64(f64),
}

impl WasmValue {
    /// The value's type.
    pub fn ty(&self) -> ValueType {
        match self {
            WasmValue::I32(_) => ValueType::I32,
            WasmValue::I64(_) => ValueType::I64,
            WasmValue::F32(_) => ValueType::F32,
            WasmValue::F64(_) => ValueType::F64,
        }
    }

    /// A zero of type `ty`, the value results start from.
    pub fn zero(ty: ValueType) -> Self {
        match ty {
            ValueType::I32 => WasmValue::I32(0),
            ValueType::I64 => WasmValue::I64(0),
            ValueType::F32 => WasmValue::F32(0.0),
            ValueType::F64 => WasmValue::F64(0.0),
        }
    }
}

/// How a handler failed: its message and, where the host language has one, the class of
/// the exception it raised. The call ends with `host_function_error` carrying both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFnError {
    /// What went wrong, for people.
    pub message: String,
    /// The exception's class name (`KeyError`, `TypeError`), when there is one.
    pub class: Option<String>,
}

impl HostFnError {
    /// A failure with a message and no exception class.
    pub fn new(message: impl Into<String>) -> Self {
        HostFnError {
            message: message.into(),
            class: None,
        }
    }

    /// A failure raised as an exception of class `class`.
    pub fn with_class(message: impl Into<String>, class: impl Into<String>) -> Self {
        HostFnError {
            message: message.into(),
            class: Some(class.into()),
        }
    }
}

impl fmt::Display for HostFnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.class {
            Some(class) => write!(f, "{class}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl<E: std::error::Error> From<E> for HostFnError {
    fn from(err: E) -> Self {
        HostFnError::new(err.to_string())
    }
}

/// Kernel memory as a general host function sees it: the blocks the pack passes by offset,
/// and new blocks for what the function hands back.
pub trait KernelMemory {
    /// The bytes of the block at `offset`, or `None` when no block starts there.
    fn block(&mut self, offset: u64) -> Option<&[u8]>;
    /// Allocates a block holding `data` and returns its offset.
    ///
    /// # Errors
    /// When the block would take the pack past its memory limit.
    fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64, HostFnError>;
}

/// What a handler knows about the call it serves: which pack and function, the caller's
/// `context`, and the pack's kernel memory.
pub struct HostCall<'a> {
    /// The calling pack's name (from its manifest).
    pub pack_name: &'a str,
    /// The calling pack's id (SHA-256 of its module, hex).
    pub pack_id: &'a str,
    /// The host function's import name.
    pub function: &'a str,
    /// The `context` the caller passed to this call (`null` when none).
    pub context: &'a Value,
    /// The pack's kernel memory.
    pub memory: &'a mut dyn KernelMemory,
}

/// A capability packhost itself lends (key-value storage, secrets) as it sees one import
/// call: the pack's call as a host function sees it, plus the call's tally and deadline,
/// which the capability's own limits need.
pub(crate) struct BuiltinCall<'c, 'm> {
    pub(crate) call: &'c mut HostCall<'m>,
    pub(crate) tally: &'c mut HostTally,
    pub(crate) deadline: Option<Instant>,
    pub(crate) audit: &'c AuditTrail,
    /// False while an instance's start-up code runs: there is no caller, so no tenant.
    pub(crate) in_call: bool,
}

/// What an engine knows about the call an import serves, beside the pack's view of it.
pub(crate) struct CallFrame<'a> {
    /// When the call (or start-up) must end.
    pub(crate) deadline: Option<Instant>,
    /// Its counts so far.
    pub(crate) tally: &'a mut HostTally,
    /// Its audit trail.
    pub(crate) audit: &'a AuditTrail,
    /// False during start-up code, which runs for no caller.
    pub(crate) in_call: bool,
}

impl BuiltinCall<'_, '_> {
    /// The bytes of the kernel block at `offset` the pack passed as `what` (0 is the empty
    /// block, as in every Extism kernel).
    ///
    /// # Errors
    /// `trap` when no block starts there.
    pub(crate) fn block(&mut self, offset: i64, what: &str) -> Result<Vec<u8>, Error> {
        if offset == 0 {
            return Ok(Vec::new());
        }
        let function = self.call.function;
        self.call
            .memory
            .block(offset as u64)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Trap,
                    format!("the pack passed {function:?} no valid block for {what}: {offset}"),
                )
            })
    }

    /// Hands `data` to the pack as a new block (0 for no bytes, as in every Extism kernel).
    ///
    /// # Errors
    /// `memory_limit` when the block does not fit in the pack's memory limit.
    pub(crate) fn give(&mut self, data: &[u8]) -> Result<i64, Error> {
        if data.is_empty() {
            return Ok(0);
        }
        let function = self.call.function;
        self.call
            .memory
            .alloc_bytes(data)
            .map(|offset| offset as i64)
            .map_err(|_| {
                Error::new(
                    ErrorKind::MemoryLimit,
                    format!(
                        "the {} bytes {function:?} returns do not fit in the pack's memory limit",
                        data.len()
                    ),
                )
            })
    }
}

type BuiltinHandler = dyn Fn(&mut BuiltinCall<'_, '_>, &[WasmValue], &mut [WasmValue]) -> Result<(), Error>
    + Send
    + Sync;

type BytesHandler = dyn Fn(&mut HostCall<'_>, &[u8]) -> Result<Vec<u8>, HostFnError> + Send + Sync;
type GeneralHandler = dyn Fn(&mut HostCall<'_>, &[WasmValue], &mut [WasmValue]) -> Result<(), HostFnError>
    + Send
    + Sync;

/// The two shapes a host function comes in.
#[derive(Clone)]
pub(crate) enum Shape {
    /// One kernel block in, one out: `(i64) -> i64`, what every PDK's helper produces.
    Bytes(Arc<BytesHandler>),
    /// Any values in and out, with kernel memory.
    General {
        params: Vec<ValueType>,
        results: Vec<ValueType>,
        handler: Arc<GeneralHandler>,
    },
    /// One of packhost's own capabilities: its failures are packhost errors with their own
    /// codes (`host_denied`, `quota_exceeded`), and it is not counted as a host call.
    Builtin {
        params: Vec<ValueType>,
        results: Vec<ValueType>,
        handler: Arc<BuiltinHandler>,
    },
}

/// A function the host lends its packs, imported by `namespace` and `name`.
#[derive(Clone)]
pub struct HostFunction {
    name: String,
    namespace: String,
    pub(crate) shape: Shape,
}

impl fmt::Debug for HostFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (params, results) = self.signature();
        f.debug_struct("HostFunction")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("params", &params)
            .field("results", &results)
            .finish()
    }
}

impl HostFunction {
    /// A bytes-in, bytes-out function, as every Extism PDK declares them (`host_fn!` in
    /// Rust, `//go:wasmimport` in Go): the pack passes a kernel block, and gets back a new
    /// block holding what `handler` returns. Imported from `extism:host/user`.
    pub fn bytes(
        name: impl Into<String>,
        handler: impl Fn(&mut HostCall<'_>, &[u8]) -> Result<Vec<u8>, HostFnError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        HostFunction {
            name: name.into(),
            namespace: EXTISM_USER.to_string(),
            shape: Shape::Bytes(Arc::new(handler)),
        }
    }

    /// A function of any WebAssembly signature. `handler` gets the arguments and fills the
    /// results (which start as zeros of their types); it reaches blocks through
    /// [`HostCall::memory`]. Imported from `extism:host/user`.
    pub fn general(
        name: impl Into<String>,
        params: impl Into<Vec<ValueType>>,
        results: impl Into<Vec<ValueType>>,
        handler: impl Fn(&mut HostCall<'_>, &[WasmValue], &mut [WasmValue]) -> Result<(), HostFnError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        HostFunction {
            name: name.into(),
            namespace: EXTISM_USER.to_string(),
            shape: Shape::General {
                params: params.into(),
                results: results.into(),
                handler: Arc::new(handler),
            },
        }
    }

    /// A function of packhost's own, imported from `namespace` (one of packhost's) with the
    /// name and signature of its table entry.
    pub(crate) fn builtin(
        namespace: &str,
        function: &crate::module::EnvFunction,
        handler: impl Fn(&mut BuiltinCall<'_, '_>, &[WasmValue], &mut [WasmValue]) -> Result<(), Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        let types = |names: &[&str]| {
            names
                .iter()
                .filter_map(|name| ValueType::parse(name))
                .collect()
        };
        HostFunction {
            name: function.name.to_string(),
            namespace: namespace.to_string(),
            shape: Shape::Builtin {
                params: types(function.params),
                results: types(function.results),
                handler: Arc::new(handler),
            },
        }
    }

    /// The same function imported from another module name.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The import name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The import module.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Parameter and result types.
    pub fn signature(&self) -> (Vec<ValueType>, Vec<ValueType>) {
        match &self.shape {
            Shape::Bytes(_) => (vec![ValueType::I64], vec![ValueType::I64]),
            Shape::General {
                params, results, ..
            }
            | Shape::Builtin {
                params, results, ..
            } => (params.clone(), results.clone()),
        }
    }

    /// Runs the handler for one import call: `args` in, `results` filled. Counts the call
    /// in `tally` and records it in `audit`, turns a failure or a panic into
    /// `host_function_error`, and a return after `deadline` into `timeout`, so that no more
    /// guest code runs either way. A builtin records its own audit entry.
    pub(crate) fn invoke(
        &self,
        call: &mut HostCall<'_>,
        args: &[WasmValue],
        results: &mut [WasmValue],
        frame: CallFrame<'_>,
    ) -> Result<(), Error> {
        let CallFrame {
            deadline,
            tally,
            audit,
            in_call,
        } = frame;
        if let Shape::Builtin {
            results: types,
            handler,
            ..
        } = &self.shape
        {
            for (slot, ty) in results.iter_mut().zip(types) {
                *slot = WasmValue::zero(*ty);
            }
            let mut builtin = BuiltinCall {
                call,
                tally,
                deadline,
                audit,
                in_call,
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(&mut builtin, args, results)
            }));
            // As for a host function: no more guest code runs once the deadline has passed.
            if outcome.as_ref().is_ok_and(Result::is_ok)
                && deadline.is_some_and(|deadline| Instant::now() >= deadline)
            {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "the call ran past its time limit",
                ));
            }
            return outcome.unwrap_or_else(|payload| {
                Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "packhost bug: {}::{} panicked: {}",
                        self.namespace,
                        self.name,
                        panic_text(&payload)
                    ),
                ))
            });
        }
        let started = Instant::now();
        tally.calls += 1;
        let mut ended = Ended {
            started,
            deadline,
            time: &mut tally.time,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(call, args, results, &mut ended)
        }));
        let outcome = outcome.unwrap_or_else(|payload| {
            tally.time += started.elapsed();
            Err(self.failure(HostFnError::with_class(panic_text(&payload), "panic")))
        });
        audit.record(AuditEntry::new(Capability::HostFunction, "call", &self.name).ended(&outcome));
        outcome
    }

    /// Runs the handler; a late return is checked before anything is written back into the
    /// pack, whose engine may refuse to run its allocator once the deadline has passed.
    fn run(
        &self,
        call: &mut HostCall<'_>,
        args: &[WasmValue],
        results: &mut [WasmValue],
        ended: &mut Ended<'_>,
    ) -> Result<(), Error> {
        match &self.shape {
            Shape::Bytes(handler) => {
                let Some(WasmValue::I64(offset)) = args.first() else {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        "a bytes host function got no i64",
                    ));
                };
                let input = call
                    .memory
                    .block(*offset as u64)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Trap,
                            format!("the pack passed {:?} no valid block: {offset}", self.name),
                        )
                    })?
                    .to_vec();
                let output = handler(call, &input);
                let in_time = ended.handler_returned();
                let output = output.map_err(|err| self.failure(err))?;
                in_time?;
                let offset = call.memory.alloc_bytes(&output).map_err(|_| {
                    Error::new(
                        ErrorKind::MemoryLimit,
                        format!(
                            "the result of host function {:?} does not fit in the pack's memory limit",
                            self.name
                        ),
                    )
                })?;
                results[0] = WasmValue::I64(offset as i64);
                Ok(())
            }
            Shape::Builtin { .. } => Err(Error::new(
                ErrorKind::Internal,
                "packhost bug: a builtin ran as a host function",
            )),
            Shape::General {
                results: types,
                handler,
                ..
            } => {
                for (slot, ty) in results.iter_mut().zip(types) {
                    *slot = WasmValue::zero(*ty);
                }
                let returned = handler(call, args, results);
                let in_time = ended.handler_returned();
                returned.map_err(|err| self.failure(err))?;
                in_time?;
                match results
                    .iter()
                    .zip(types)
                    .find(|(value, ty)| value.ty() != **ty)
                {
                    Some((value, ty)) => Err(self.failure(HostFnError::with_class(
                        format!(
                            "returned a {} where the signature has {}",
                            value.ty().as_str(),
                            ty.as_str()
                        ),
                        "TypeError",
                    ))),
                    None => Ok(()),
                }
            }
        }
    }

    fn failure(&self, err: HostFnError) -> Error {
        Error::new(
            ErrorKind::HostFunctionError {
                function: self.name.clone(),
                class: err.class.clone(),
            },
            format!("host function {:?} failed: {err}", self.name),
        )
    }
}

/// The end of one handler's run: its time goes into the call's tally, and a return at or
/// after the call's deadline is a timeout. One clock reading serves both.
struct Ended<'a> {
    started: Instant,
    deadline: Option<Instant>,
    time: &'a mut Duration,
}

impl Ended<'_> {
    fn handler_returned(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        *self.time += now - self.started;
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the call ran past its time limit",
            ));
        }
        Ok(())
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    crate::panic_message(payload.as_ref())
        .unwrap_or("the handler panicked")
        .to_string()
}

/// Host-function calls one pack call made, and the time spent in their handlers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostTally {
    pub(crate) calls: u64,
    pub(crate) time: Duration,
    /// Key-value operations, which count against `kv.max_ops_per_call`.
    pub(crate) kv_ops: u64,
}

/// The host functions lent to one pack, with the pack's name and id that their calls see.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostFunctions {
    pub(crate) functions: Vec<HostFunction>,
    pub(crate) pack_name: String,
    pub(crate) pack_id: String,
}

impl HostFunctions {
    /// Runs `function`, one of these, for a call whose caller passed `context`, with the
    /// calling pack's kernel `memory`.
    pub(crate) fn invoke(
        &self,
        function: &HostFunction,
        context: &Value,
        memory: &mut dyn KernelMemory,
        args: &[WasmValue],
        results: &mut [WasmValue],
        frame: CallFrame<'_>,
    ) -> Result<(), Error> {
        let mut call = HostCall {
            pack_name: &self.pack_name,
            pack_id: &self.pack_id,
            function: function.name(),
            context,
            memory,
        };
        function.invoke(&mut call, args, results, frame)
    }

    /// The bytes-in, bytes-out function `name` of `extism:host/user`, for a component calling
    /// the host's functions by name (`packhost:pack/functions`) rather than importing them.
    /// These functions hold only those the component may call ([`component_callable`]); any
    /// other name is refused with `host_denied`, and the refusal audited in `audit`.
    pub(crate) fn callable_by_name(
        &self,
        name: &str,
        audit: &AuditTrail,
    ) -> Result<&HostFunction, Error> {
        if let Some(function) = self
            .functions
            .iter()
            .find(|function| function.namespace == EXTISM_USER && function.name == name)
        {
            return Ok(function);
        }
        let shown = name_excerpt(name);
        let refused = Err(Error::new(
            ErrorKind::HostDenied,
            format!(
                "host function {shown:?} is not lent to this pack: its manifest must declare it \
                 and the host lend it"
            ),
        ));
        audit.record(AuditEntry::new(Capability::HostFunction, "call", shown).ended(&refused));
        refused
    }
}

/// True for the import modules of packhost's own capabilities (`packhost:host/kv`), which no
/// host may register functions in.
pub(crate) fn is_packhost_namespace(namespace: &str) -> bool {
    namespace.starts_with("packhost:")
}

/// Checks a host's registrations: no two under one import name, none in the ABI's own
/// module (a pack's `alloc` or `log_info` is packhost's, never the host's).
///
/// # Errors
/// `invalid_options` naming the offending function.
pub(crate) fn check_registrations(functions: &[HostFunction]) -> Result<(), Error> {
    for (index, function) in functions.iter().enumerate() {
        if function.namespace == crate::module::EXTISM_ENV {
            return Err(Error::invalid_options(format!(
                "host function {:?} cannot be registered in {:?}, the Extism ABI's own module",
                function.name, function.namespace
            )));
        }
        if is_packhost_namespace(&function.namespace) {
            return Err(Error::invalid_options(format!(
                "host function {:?} cannot be registered in {:?}: modules named packhost:* \
                 are packhost's own capabilities",
                function.name, function.namespace
            )));
        }
        if functions[..index]
            .iter()
            .any(|earlier| earlier.namespace == function.namespace && earlier.name == function.name)
        {
            return Err(Error::invalid_options(format!(
                "host function {:?} is registered twice in {:?}",
                function.name, function.namespace
            )));
        }
    }
    Ok(())
}

impl ValueType {
    /// The type named `name` in the WebAssembly text format, if a host function may use it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "i32" => Some(ValueType::I32),
            "i64" => Some(ValueType::I64),
            "f32" => Some(ValueType::F32),
            "f64" => Some(ValueType::F64),
            _ => None,
        }
    }
}

/// The names of the host's functions a component may call through `packhost:pack/functions`
/// (which reaches `extism:host/user` only): those its manifest declares (`declared`), or,
/// for a component without a manifest, every one of that module the host lends bytes in and
/// bytes out, as the host's grant is the whole policy for any plugin without one.
///
/// # Errors
/// `invalid_pack` when a declared function is not lent, or lent with another signature: the
/// component would fail when it calls it, so it fails to load, as a module importing it does.
pub(crate) fn component_callable(
    declared: Option<&[crate::manifest::HostFunctionSpec]>,
    lent: &[HostFunction],
) -> Result<Vec<String>, Error> {
    // A bytes function's answer is a block the component gets; a general function of the
    // same signature could answer any number, which would reach the component as nothing.
    let bytes = |function: &HostFunction| {
        function.namespace == EXTISM_USER && matches!(function.shape, Shape::Bytes(_))
    };
    let Some(declared) = declared else {
        return Ok(lent
            .iter()
            .filter(|function| bytes(function))
            .map(|function| function.name.clone())
            .collect());
    };
    declared
        .iter()
        .map(|spec| {
            match lent
                .iter()
                .find(|function| function.namespace == EXTISM_USER && function.name == spec.name)
            {
                Some(function) if bytes(function) => Ok(spec.name.clone()),
                Some(function) => {
                    let (params, results) = function.signature();
                    Err(Error::invalid_pack(format!(
                        "the component calls host function {:?}, bytes in and bytes out; the \
                         host registered it as a general function with params {params:?} and \
                         results {results:?}",
                        spec.name
                    )))
                }
                None => Err(Error::invalid_pack(format!(
                    "the component calls host function {:?} from {EXTISM_USER:?}, which the \
                     host did not register",
                    spec.name
                ))),
            }
        })
        .collect()
}

/// Stand-ins for every host function `module` imports (a component: that its manifest
/// declares), each failing with `reason` when called: for hosts that lend nothing but still
/// load such packs (the `packhost` command, or `packhost embed` running a pack's manifest
/// export).
pub fn unavailable_host_functions(
    module: &crate::module::ModuleInfo,
    reason: &str,
) -> Vec<HostFunction> {
    if module.component {
        // A component names the host's functions it calls in its manifest.
        let declared = module
            .manifest_section
            .as_deref()
            .and_then(|section| crate::manifest::PackManifest::parse(section, module).ok())
            .map(|manifest| manifest.capabilities.host_functions)
            .unwrap_or_default();
        return declared
            .into_iter()
            .map(|spec| {
                let reason = reason.to_string();
                HostFunction::bytes(spec.name, move |_, _| Err(HostFnError::new(reason.clone())))
            })
            .collect();
    }
    module
        .host_function_imports()
        .filter_map(|import| {
            let types = |names: &[String]| {
                names
                    .iter()
                    .map(|name| ValueType::parse(name))
                    .collect::<Option<Vec<_>>>()
            };
            let reason = reason.to_string();
            Some(
                HostFunction::general(
                    import.name.clone(),
                    types(&import.params)?,
                    types(&import.results)?,
                    move |_, _, _| Err(HostFnError::new(reason.clone())),
                )
                .with_namespace(import.module.clone()),
            )
        })
        .collect()
}
