//! The native engine: the Extism plugin ABI implemented directly on wasmtime.
//!
//! Compared with the extism crate it keeps kernel memory on the host instead of in a second
//! wasm module, looks exports up once per instance, enforces timeouts with per-store epoch
//! deadlines driven by one ticker thread, and counts fuel and memory over the whole instance.
//! Packs built with packhost-pdk also export a bulk I/O pair (see [`BULK_INPUT_EXPORT`]) that
//! moves input and output with one copy each; every other Extism plugin runs unchanged.

mod abi;
mod code;
mod host_fn;
mod http;
mod kernel;
mod state;
mod wasi;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Instance as WasmInstance, InstancePre, Linker, Memory, Store, Trap, TypedFunc};

use super::{catch_panic, InstanceSpec, LogBuffer, RawOutcome};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{InterpreterLock, HOLD_AT_MOST};
use state::{Grants, HeldLock, HostFailure, HostState};

pub use code::forget_compiled_code;

/// packhost-pdk's bulk input export: `(len: i32) -> i32` returns the address of a guest
/// buffer of `len` bytes that the host fills with the input before calling the action. Its
/// presence tells the PDK the host delivers input (and collects output) in bulk.
pub(crate) const BULK_INPUT_EXPORT: &str = "__packhost_io_input";

/// packhost-pdk's bulk output export: `() -> i64` returns `address << 32 | length` of the
/// output the action kept in guest memory, or -1 when it set output through `output_set`.
pub(crate) const BULK_OUTPUT_EXPORT: &str = "__packhost_io_output";

/// A compiled, linked pack: everything instances share.
pub(crate) struct PackCode {
    pre: InstancePre<HostState>,
    grants: Arc<Grants>,
    wasi: bool,
}

impl std::fmt::Debug for PackCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackCode")
            .field("wasi", &self.wasi)
            .finish()
    }
}

impl PackCode {
    fn new(spec: &InstanceSpec) -> Result<Self> {
        let module = code::compiled_module(&spec.id, &spec.wasm)?;
        let mut linker = Linker::new(code::engine());
        abi::link(&mut linker).map_err(internal("linking the Extism ABI"))?;
        host_fn::link(&mut linker, &spec.host_functions)
            .map_err(internal("linking host functions"))?;
        if spec.wasi {
            wasi_common::sync::add_to_linker(&mut linker, |state: &mut HostState| {
                state
                    .wasi
                    .as_mut()
                    .expect("instances of WASI packs carry a WASI context")
            })
            .map_err(internal("linking WASI"))?;
        }
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|err| Error::invalid_pack(format!("could not link the pack: {err:#}")))?;
        let grants = Grants {
            config: spec.config.clone(),
            http: spec.http.clone(),
        };
        Ok(PackCode {
            pre,
            grants: Arc::new(grants),
            wasi: spec.wasi,
        })
    }
}

fn internal(doing: &'static str) -> impl Fn(wasmtime::Error) -> Error {
    move |err| {
        Error::new(
            ErrorKind::Internal,
            format!("packhost bug {doing}: {err:#}"),
        )
    }
}

/// An export that can be called as an action: `() -> i32` (a return code) or `() -> ()`.
#[derive(Clone)]
enum Action {
    WithCode(TypedFunc<(), i32>),
    Void(TypedFunc<(), ()>),
}

/// A live wasm instance with its store and the handles calls need.
struct Live {
    store: Store<HostState>,
    memory: Option<Memory>,
    actions: HashMap<String, Action>,
    bulk: Option<(TypedFunc<i32, i32>, TypedFunc<(), i64>)>,
}

/// One instance slot of a pack on the native engine.
pub(crate) struct Instance {
    code: Arc<PackCode>,
    live: Live,
    fuel: Option<u64>,
    timeout: Duration,
    log_level: crate::options::LogLevel,
    memory_limit: u64,
}

impl Instance {
    /// Compiles (or finds compiled) the pack and makes a ready instance.
    ///
    /// # Errors
    /// `invalid_pack` when the module cannot be compiled, linked or started.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        let code = match spec.native_code.get() {
            Some(code) => code.clone(),
            None => {
                let code = Arc::new(catch_panic("compiling", || PackCode::new(spec))??);
                spec.native_code.get_or_init(|| code).clone()
            }
        };
        let memory_limit = spec.limits.memory_pages() as u64 * 65536;
        let live = instantiate(&code, memory_limit, spec.log_level)?;
        Ok(Instance {
            code,
            live,
            fuel: spec.limits.fuel,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            log_level: spec.log_level,
            memory_limit,
        })
    }

    /// Replaces the store and wasm instance with fresh ones from the same compiled code.
    ///
    /// # Errors
    /// `invalid_pack` when the pack's start-up code fails.
    pub(crate) fn renew(&mut self) -> Result<()> {
        self.live = instantiate(&self.code, self.memory_limit, self.log_level)?;
        Ok(())
    }

    /// Runs one export on `input` and hands its output, read in place from guest or kernel
    /// memory, to `read`.
    pub(crate) fn call<R>(
        &mut self,
        action: &str,
        input: &[u8],
        context: &serde_json::Value,
        lock: Option<&mut dyn InterpreterLock>,
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> RawOutcome<R> {
        let Some(func) = self.live.actions.get(action).cloned() else {
            return RawOutcome::failed(Error::new(
                ErrorKind::ActionNotFound,
                format!("the pack exports no callable {action:?}"),
            ));
        };
        let fuel_limit = self.fuel.unwrap_or(u64::MAX);
        let live = &mut self.live;
        let state = live.store.data_mut();
        state.kernel.reset();
        state.limiter.begin_call(state.kernel.size());
        state.logs.lines.clear();
        state.call = Default::default();
        if !context.is_null() {
            state.call.context = context.clone();
        }
        // SAFETY: `input` outlives this function, and the view is cleared below before it
        // returns, on every path (a panic is caught inside `run_action`).
        unsafe { state.call.input.set(input) };
        let mut ticks = code::deadline_ticks(self.timeout);
        if let Some(lock) = lock {
            // SAFETY: the lock is cleared below, before this function returns, on every
            // path (a panic is caught inside `run_action`).
            state.call.lock = Some(unsafe { HeldLock::new(lock) });
            ticks = ticks.min(code::deadline_ticks(HOLD_AT_MOST));
        }
        let started = Instant::now();
        state.set_deadline(started + self.timeout);

        let running = code::RunningCall::begin();
        let result = live
            .store
            .set_fuel(fuel_limit)
            .map_err(internal("setting fuel"))
            .and_then(|()| {
                live.store.set_epoch_deadline(ticks);
                catch_panic("calling", || run_action(live, func, input, read))?
            });
        drop(running);
        let wall_time = started.elapsed();

        let fuel_consumed = fuel_limit.saturating_sub(live.store.get_fuel().unwrap_or(0));
        let state = live.store.data_mut();
        state.call.input.clear();
        state.call.lock = None;
        let host = state.call.host;
        let result = result.map_err(|err| {
            // A pack whose memory growth was refused usually aborts (Rust's allocator traps);
            // that trap is the memory limit at work, and is reported as such.
            if *err.kind() == ErrorKind::Trap && state.limiter.refused() {
                memory_limit_error(state.limiter.limit())
            } else {
                err
            }
        });
        RawOutcome {
            result,
            fuel_consumed,
            peak_memory_bytes: state.limiter.peak(),
            wall_time,
            host,
            logs: std::mem::take(&mut state.logs.lines),
        }
    }
}

fn memory_limit_error(limit: u64) -> Error {
    Error::new(
        ErrorKind::MemoryLimit,
        format!("the pack tried to grow its memory past the {limit} byte limit"),
    )
}

/// Delivers the input, runs the action and collects its output or error.
fn run_action<R>(
    live: &mut Live,
    func: Action,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let Live {
        store,
        memory,
        bulk,
        ..
    } = live;
    let bulk = bulk.as_ref().zip(*memory);
    if let Some(((bulk_input, _), memory)) = bulk {
        let len = i32::try_from(input.len())
            .map_err(|_| Error::new(ErrorKind::InputTooLarge, "input exceeds 2 GiB"))?;
        let address = bulk_input.call(&mut *store, len).map_err(call_error)?;
        memory
            .write(&mut *store, address as u32 as usize, input)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Trap,
                    "the pack's input buffer lies outside its memory",
                )
            })?;
    }
    let return_code = match func {
        Action::WithCode(func) => func.call(&mut *store, ()).map_err(call_error)?,
        Action::Void(func) => func.call(&mut *store, ()).map(|()| 0).map_err(call_error)?,
    };

    let state = store.data();
    if state.call.error_offset != 0 {
        let message = state
            .kernel
            .block(state.call.error_offset)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| Error::new(ErrorKind::Trap, "error_set was given an invalid block"))?;
        return Err(Error::new(ErrorKind::PluginError { return_code }, message));
    }
    if return_code != 0 {
        return Err(Error::new(
            ErrorKind::PluginError { return_code },
            format!("the pack returned code {return_code} without an error message"),
        ));
    }

    if let Some(((_, bulk_output), memory)) = bulk {
        let kept = bulk_output.call(&mut *store, ()).map_err(call_error)?;
        if kept != -1 {
            let address = (kept as u64 >> 32) as usize;
            let len = (kept as u64 & 0xffff_ffff) as usize;
            let output = memory
                .data(&*store)
                .get(address..address.saturating_add(len))
                .ok_or_else(|| {
                    Error::new(ErrorKind::Trap, "the pack's output lies outside its memory")
                })?;
            return read(output);
        }
    }
    let call = &store.data().call;
    let output = store
        .data()
        .kernel
        .bytes_at(call.output_offset, call.output_length)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Trap,
                format!(
                    "output_set was given {} bytes at {}, outside kernel memory",
                    call.output_length, call.output_offset
                ),
            )
        })?;
    read(output)
}

/// Classifies a failed wasm call: traps by their wasmtime code, refusals by our own type.
fn call_error(err: wasmtime::Error) -> Error {
    if let Some(failure) = err.downcast_ref::<HostFailure>() {
        return Error::new(failure.kind.clone(), failure.message.clone());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Error::new(ErrorKind::OutOfFuel, "the call used up its fuel"),
        Some(Trap::Interrupt) => Error::new(ErrorKind::Timeout, "the call ran past its time limit"),
        Some(trap) => Error::new(ErrorKind::Trap, trap.to_string()),
        None => Error::new(ErrorKind::Trap, format!("{:#}", err.root_cause())),
    }
}

/// Makes a store and instance, runs the pack's start-up code outside any call's metering,
/// and looks up every handle calls need.
fn instantiate(
    code: &Arc<PackCode>,
    memory_limit: u64,
    log_level: crate::options::LogLevel,
) -> Result<Live> {
    let state = HostState::new(
        memory_limit,
        code.grants.clone(),
        LogBuffer::new(log_level),
        code.wasi,
    );
    let mut store = Store::new(code::engine(), state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(epoch_deadline_reached);
    // Start-up code is the pack's, not a caller's: it runs under fixed generous limits.
    store.set_fuel(u64::MAX).map_err(internal("setting fuel"))?;
    store.set_epoch_deadline(code::deadline_ticks(STARTUP_TIMEOUT));
    // Host functions that block (HTTP, WASI's waits) honour the same bound during start-up.
    store
        .data_mut()
        .set_deadline(std::time::Instant::now() + STARTUP_TIMEOUT);
    let _running = code::RunningCall::begin();
    let instance = catch_panic("instantiating", || code.pre.instantiate(&mut store))?
        .map_err(|err| start_error(&store, err))?;
    run_initializers(&mut store, &instance)?;

    let memory = instance.get_memory(&mut store, "memory");
    let mut actions = HashMap::new();
    for export in code.pre.module().exports() {
        let name = export.name();
        if let Ok(func) = instance.get_typed_func::<(), i32>(&mut store, name) {
            actions.insert(name.to_string(), Action::WithCode(func));
        } else if let Ok(func) = instance.get_typed_func::<(), ()>(&mut store, name) {
            actions.insert(name.to_string(), Action::Void(func));
        }
    }
    let bulk = instance
        .get_typed_func::<i32, i32>(&mut store, BULK_INPUT_EXPORT)
        .ok()
        .zip(
            instance
                .get_typed_func::<(), i64>(&mut store, BULK_OUTPUT_EXPORT)
                .ok(),
        );
    Ok(Live {
        store,
        memory,
        actions,
        bulk,
    })
}

/// The store's epoch deadline came: either a call holding its caller's interpreter lock has
/// run past `HOLD_AT_MOST`, so the lock is released and the call goes on to its own
/// deadline, or the call (or start-up) is out of time.
fn epoch_deadline_reached(
    mut store: wasmtime::StoreContextMut<'_, HostState>,
) -> wasmtime::Result<wasmtime::UpdateDeadline> {
    let call = &mut store.data_mut().call;
    if let Some(lock) = call.lock.take() {
        lock.release();
        let left = call.deadline.map_or(Duration::ZERO, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        if !left.is_zero() {
            return Ok(wasmtime::UpdateDeadline::Continue(code::deadline_ticks(
                left,
            )));
        }
    }
    Ok(wasmtime::UpdateDeadline::Interrupt)
}

/// Time a pack's start-up code may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

fn start_error(store: &Store<HostState>, err: wasmtime::Error) -> Error {
    if store.data().limiter.refused() {
        return memory_limit_error(store.data().limiter.limit());
    }
    Error::invalid_pack(format!("the pack failed to start: {err:#}"))
}

/// Runs the guest language's initialisers the way the official hosts do: Haskell's
/// `hs_init` (after `_initialize`), else `__wasm_call_ctors`, else a WASI reactor's
/// `_initialize`.
fn run_initializers(store: &mut Store<HostState>, instance: &WasmInstance) -> Result<()> {
    if let Ok(hs_init) = instance.get_typed_func::<(i32, i32), ()>(&mut *store, "hs_init") {
        run_if_exported(store, instance, "_initialize")?;
        return hs_init
            .call(&mut *store, (0, 0))
            .map_err(|err| start_error(store, err));
    }
    if !run_if_exported(store, instance, "__wasm_call_ctors")? {
        run_if_exported(store, instance, "_initialize")?;
    }
    Ok(())
}

/// Calls the export `name` if the pack has it; true when it did.
fn run_if_exported(
    store: &mut Store<HostState>,
    instance: &WasmInstance,
    name: &str,
) -> Result<bool> {
    let Ok(func) = instance.get_typed_func::<(), ()>(&mut *store, name) else {
        return Ok(false);
    };
    func.call(&mut *store, ())
        .map(|()| true)
        .map_err(|err| start_error(store, err))
}
