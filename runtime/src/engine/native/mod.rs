//! The native engine: the Extism plugin ABI implemented directly on wasmtime.
//!
//! Compared with the extism crate it keeps kernel memory in a second memory of the pack
//! itself, read and written by wasm injected into the pack at compile time for the hot calls
//! and by the host for the rest (`kernel.rs`, `kernel_wasm.rs`), looks exports up once per
//! instance, enforces timeouts with per-store epoch deadlines driven by one ticker thread,
//! and counts fuel and memory over the whole instance.
//! Packs built with packhost-pdk also export a bulk I/O pair (see [`BULK_INPUT_EXPORT`]) that
//! moves input and output with one copy each; every other Extism plugin runs unchanged.

mod abi;
mod cache;
mod code;
mod component;
mod component_caps;
mod host_fn;
mod http;
mod kernel;
mod kernel_wasm;
mod state;
mod wasi;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{
    ExternType, Instance as WasmInstance, InstancePre, Linker, Memory, Module, ModuleExport, Store,
    Trap, TypedFunc, ValType, WasmParams, WasmResults,
};

use super::fuel::{CpuMark, FuelRates};
use super::{
    catch_panic, settle_fuel, start_failed, InstanceSpec, LogBuffer, RawOutcome, StartupCost,
};
use crate::capabilities::files::Mount;
use crate::capabilities::host_fn::HostFunctions;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{InterpreterLock, HOLD_AT_MOST};
use crate::options::CallOptions;
use state::{Grants, HeldLock, HostFailure, HostState};

pub(crate) use code::calibrated_fuel_rate;
pub use code::{forget_compiled_code, instance_pool, InstancePool};
pub(crate) use component::ComponentCode;

/// One instance slot of a component pack.
pub(crate) type ComponentInstance = Instance<ComponentCode>;

/// packhost-pdk's bulk input export: `(len: i32) -> i32` returns the address of a guest
/// buffer of `len` bytes that the host fills with the input before calling the action. Its
/// presence tells the PDK the host delivers input (and collects output) in bulk.
pub(crate) const BULK_INPUT_EXPORT: &str = "__packhost_io_input";

/// packhost-pdk's bulk output export: `() -> i64` returns `address << 32 | length` of the
/// output the action kept in guest memory, or -1 when it set output through `output_set`.
pub(crate) const BULK_OUTPUT_EXPORT: &str = "__packhost_io_output";

/// A compiled, linked pack: everything instances share.
pub(crate) struct PackCode {
    start: Start,
    /// How the module gets onto the pooled engine, for a module alone whose limit the pool's
    /// slots hold.
    pool: Option<PoolPlan>,
    grants: Arc<Grants>,
    /// With WASI linked, the directories each instance's WASI mounts.
    wasi: Option<Arc<Vec<Mount>>>,
    exports: Exports,
}

/// A pack's module linked on the pooled engine, with where its exports are (a module's
/// export handles are its own).
struct Pooled {
    pre: InstancePre<HostState>,
    exports: Exports,
}

/// Fresh instances of a pack come from the pooled engine (`code::pooled_engine`) while it
/// has a free slot, from its second instance on: the copy of the module that takes is made
/// then, so a pack that keeps one warm instance (and a process's first call) never pays for
/// it.
struct PoolPlan {
    id: String,
    module: Module,
    host_functions: Arc<HostFunctions>,
    wasi: bool,
    /// Set once an instance was made; the next ones make and use `pooled`.
    first_made: std::sync::atomic::AtomicBool,
    /// `None` once made: no pooled engine, or the module does not fit its slots.
    pooled: std::sync::OnceLock<Option<Pooled>>,
}

impl PoolPlan {
    /// The pooled module, unless this is the pack's first instance.
    fn for_next_instance(&self) -> Option<&Pooled> {
        use std::sync::atomic::Ordering;
        if !self.first_made.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.pooled
            .get_or_init(|| {
                let copy = code::pooled_module(&self.id, &self.module)?;
                let linked = linker_on(copy.engine(), &self.host_functions, self.wasi)
                    .and_then(|linker| linker.instantiate_pre(&copy).map_err(link_failed));
                match linked {
                    Ok(pre) => Some(Pooled {
                        pre,
                        exports: Exports::new(&copy),
                    }),
                    Err(err) => {
                        tracing::debug!("pack {} runs without pooled instances: {err}", self.id);
                        None
                    }
                }
            })
            .as_ref()
    }
}

/// Where the exports calls need are, found once per pack so that making an instance looks
/// up nothing by name: an instance per call (`isolation: "call"`) must cost microseconds.
struct Exports {
    /// Callable exports by name, with their position in an instance's action table.
    actions: HashMap<String, (usize, ModuleExport, ActionShape)>,
    memory: Option<ModuleExport>,
    /// packhost-pdk's bulk I/O pair, when the pack has both with the right types.
    bulk: Option<(ModuleExport, ModuleExport)>,
    /// The guest language's initialisers, in the order they run.
    initializers: Vec<Initializer>,
}

/// The two export types an action may have.
#[derive(Clone, Copy)]
enum ActionShape {
    /// `() -> i32`: a return code.
    WithCode,
    /// `() -> ()`.
    Void,
}

/// A start-up export the official hosts call after instantiation.
#[derive(Clone)]
enum Initializer {
    /// `() -> ()`: `_initialize`, `__wasm_call_ctors`.
    Plain(ModuleExport),
    /// Haskell's `hs_init(argc, argv)`, called with `(0, 0)`.
    HsInit(ModuleExport),
}

/// How instances come to be.
enum Start {
    /// A module alone, linked once for every instance.
    Alone(InstancePre<HostState>),
    /// A main module with the modules it links with: each store makes the linked modules,
    /// in order, into its own copy of `linker`, then the main module. Their instances
    /// belong to the store, so nothing can be linked ahead of it.
    Linked {
        linker: Linker<HostState>,
        modules: Vec<LinkedModuleCode>,
        main: Module,
    },
}

/// A compiled linked module and what makes an instance of it ready.
struct LinkedModuleCode {
    name: String,
    module: Module,
    initializers: Vec<Initializer>,
}

impl Start {
    /// Makes the main module's instance in `store`, with its linked modules' made and
    /// started first.
    ///
    /// # Errors
    /// As [`start_error`], for linking or any linked module's start-up.
    fn instantiate(&self, store: &mut Store<HostState>) -> Result<WasmInstance> {
        match self {
            Start::Alone(pre) => pre
                .instantiate(&mut *store)
                .map_err(|err| start_error(store, err)),
            Start::Linked {
                linker,
                modules,
                main,
            } => {
                let mut linker = linker.clone();
                for linked in modules {
                    let failed = |store: &Store<HostState>, err: wasmtime::Error| {
                        start_error(
                            store,
                            err.context(format!("linked module {:?}", linked.name)),
                        )
                    };
                    let instance = linker
                        .instantiate(&mut *store, &linked.module)
                        .map_err(|err| failed(store, err))?;
                    kernel::offer(&mut *store, &instance);
                    run_initializers(store, &instance, &linked.initializers)
                        .map_err(|err| crate::link::in_module(&linked.name, err))?;
                    linker
                        .instance(&mut *store, &linked.name, instance)
                        .map_err(|err| failed(store, err))?;
                }
                linker
                    .instantiate(&mut *store, main)
                    .map_err(|err| start_error(store, err))
            }
        }
    }
}

/// What a module exports, by name and type.
struct ExportTypes<'a>(&'a Module);

impl ExportTypes<'_> {
    fn func_type(&self, name: &str) -> Option<wasmtime::FuncType> {
        match self.0.get_export(name) {
            Some(ExternType::Func(ty)) => Some(ty),
            _ => None,
        }
    }

    fn has_shape(&self, name: &str, params: &[ValType], results: &[ValType]) -> bool {
        let same = |found: &mut dyn ExactSizeIterator<Item = ValType>, wanted: &[ValType]| {
            found.len() == wanted.len()
                && found
                    .zip(wanted)
                    .all(|(found, wanted)| ValType::eq(&found, wanted))
        };
        self.func_type(name)
            .is_some_and(|ty| same(&mut ty.params(), params) && same(&mut ty.results(), results))
    }

    fn index(&self, name: &str) -> Option<ModuleExport> {
        self.0.get_export_index(name)
    }

    /// The guest language's initialisers, in the order the official hosts run them:
    /// Haskell's `hs_init` (after `_initialize`), else `__wasm_call_ctors`, else a WASI
    /// reactor's `_initialize`.
    fn initializers(&self) -> Vec<Initializer> {
        let plain = |name: &str| {
            self.has_shape(name, &[], &[])
                .then(|| self.index(name))
                .flatten()
                .map(Initializer::Plain)
        };
        if self.has_shape("hs_init", &[ValType::I32, ValType::I32], &[]) {
            plain("_initialize")
                .into_iter()
                .chain(self.index("hs_init").map(Initializer::HsInit))
                .collect()
        } else if self.func_type("__wasm_call_ctors").is_some() {
            // As in extism: constructors exported with another type mean no start-up at all.
            plain("__wasm_call_ctors").into_iter().collect()
        } else {
            plain("_initialize").into_iter().collect()
        }
    }
}

impl Exports {
    fn new(module: &Module) -> Self {
        let types = ExportTypes(module);
        let has_shape = |name: &str, params: &[ValType], results: &[ValType]| {
            types.has_shape(name, params, results)
        };
        let index = |name: &str| types.index(name);
        let mut actions = HashMap::new();
        for export in module.exports() {
            let name = export.name();
            let shape = if has_shape(name, &[], &[ValType::I32]) {
                ActionShape::WithCode
            } else if has_shape(name, &[], &[]) {
                ActionShape::Void
            } else {
                continue;
            };
            if let Some(at) = index(name) {
                let position = actions.len();
                actions.insert(name.to_string(), (position, at, shape));
            }
        }
        let memory = matches!(module.get_export("memory"), Some(ExternType::Memory(_)))
            .then(|| index("memory"))
            .flatten();
        let bulk = (has_shape(BULK_INPUT_EXPORT, &[ValType::I32], &[ValType::I32])
            && has_shape(BULK_OUTPUT_EXPORT, &[], &[ValType::I64]))
        .then(|| index(BULK_INPUT_EXPORT).zip(index(BULK_OUTPUT_EXPORT)))
        .flatten();
        Exports {
            actions,
            memory,
            bulk,
            initializers: types.initializers(),
        }
    }
}

impl std::fmt::Debug for PackCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackCode")
            .field("wasi", &self.wasi.is_some())
            .finish()
    }
}

impl PackCode {
    fn new(spec: &InstanceSpec) -> Result<Self> {
        let module = code::compiled_module(&spec.id, &spec.wasm)?;
        let linker = linker_on(code::engine(), &spec.host_functions, spec.wasi)?;
        let (start, pool) = if spec.linked.is_empty() {
            let pool = (CallLimits::of(spec).memory <= code::POOLED_LIMIT_MAX).then(|| PoolPlan {
                id: spec.id.clone(),
                module: module.clone(),
                host_functions: spec.host_functions.clone(),
                wasi: spec.wasi,
                first_made: Default::default(),
                pooled: Default::default(),
            });
            let alone = Start::Alone(linker.instantiate_pre(&module).map_err(link_failed)?);
            (alone, pool)
        } else {
            let modules = spec
                .linked
                .iter()
                .map(|linked| {
                    let module = code::compiled_module(&linked.id, &linked.wasm)?;
                    Ok(LinkedModuleCode {
                        name: linked.name.clone(),
                        initializers: ExportTypes(&module).initializers(),
                        module,
                    })
                })
                .collect::<Result<_>>()?;
            let linked = Start::Linked {
                linker,
                modules,
                main: module.clone(),
            };
            (linked, None)
        };
        let grants = Grants {
            config: spec.config.clone(),
            http: spec.http.clone(),
        };
        Ok(PackCode {
            exports: Exports::new(&module),
            start,
            pool,
            grants: Arc::new(grants),
            wasi: spec.wasi.then(|| spec.mounts.clone()),
        })
    }
}

/// A linker on `engine` with everything a pack's instances import: the Extism ABI, the host
/// functions, and WASI when the pack has it.
fn linker_on(
    engine: &wasmtime::Engine,
    host_functions: &Arc<HostFunctions>,
    wasi: bool,
) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    abi::link(&mut linker).map_err(internal("linking the Extism ABI"))?;
    host_fn::link(&mut linker, host_functions).map_err(internal("linking host functions"))?;
    if wasi {
        wasi_common::sync::add_to_linker(&mut linker, |state: &mut HostState| {
            state
                .wasi
                .as_mut()
                .expect("instances of WASI packs carry a WASI context")
        })
        .map_err(internal("linking WASI"))?;
    }
    Ok(linker)
}

fn link_failed(err: wasmtime::Error) -> Error {
    Error::invalid_pack(format!("could not link the pack: {err:#}"))
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
pub(crate) struct Live {
    store: Store<HostState>,
    instance: WasmInstance,
    memory: Option<Memory>,
    /// Action handles by [`Exports::actions`] position, looked up on first use.
    actions: Vec<Option<Action>>,
    bulk: Option<BulkIo>,
    /// Made on the pooled engine (its export handles are [`Pooled::exports`]).
    pooled: bool,
}

/// packhost-pdk's bulk I/O pair: [`BULK_INPUT_EXPORT`] and [`BULK_OUTPUT_EXPORT`].
type BulkIo = (TypedFunc<i32, i32>, TypedFunc<(), i64>);

/// The exported function at `at` of `instance` with the signature `P -> R`, or `None`.
fn typed_export<P: WasmParams, R: WasmResults>(
    instance: &WasmInstance,
    store: &mut Store<HostState>,
    at: &ModuleExport,
) -> Option<TypedFunc<P, R>> {
    let func = instance.get_module_export(&mut *store, at)?.into_func()?;
    func.typed(&*store).ok()
}

impl Live {
    /// The handle of the action at `position` of `at`, looked up once per instance.
    fn action(&mut self, position: usize, at: &ModuleExport, shape: ActionShape) -> Option<Action> {
        if let Some(action) = self.actions.get(position).cloned().flatten() {
            return Some(action);
        }
        let (instance, store) = (&self.instance, &mut self.store);
        let action = match shape {
            ActionShape::WithCode => Action::WithCode(typed_export(instance, store, at)?),
            ActionShape::Void => Action::Void(typed_export(instance, store, at)?),
        };
        if let Some(slot) = self.actions.get_mut(position) {
            *slot = Some(action.clone());
        }
        Some(action)
    }
}

/// Makes an instance in a store, or answers `None` when its engine has no room for one.
type StartWith<'a> = dyn Fn(&mut Store<HostState>) -> Result<Option<WasmInstance>> + 'a;

/// What native instances are made from: a module's [`PackCode`] or a component's
/// [`ComponentCode`], compiled once per pack and shared by its instances.
pub(crate) trait Code: Sized {
    /// A live instance with its store.
    type Live;
    /// Where `spec` keeps this pack's compiled code once the first instance made it.
    fn cell(spec: &InstanceSpec) -> &std::sync::OnceLock<Arc<Self>>;
    /// Compiles (or finds compiled) and links the pack.
    fn compile(spec: &InstanceSpec) -> Result<Self>;
    /// Makes a live instance and runs its start-up under `limits`.
    fn instantiate(
        code: &Arc<Self>,
        limits: CallLimits,
        log_level: crate::options::LogLevel,
        redactor: &Arc<crate::capabilities::secrets::Redactor>,
    ) -> Result<(Self::Live, StartupCost)>;
}

impl Code for PackCode {
    type Live = Live;
    fn cell(spec: &InstanceSpec) -> &std::sync::OnceLock<Arc<Self>> {
        &spec.native_code
    }
    fn compile(spec: &InstanceSpec) -> Result<Self> {
        PackCode::new(spec)
    }
    /// Makes a store and instance and runs the pack's start-up code under the same limits as a
    /// call (fuel, deadline, memory), returning what it cost so the next call can report it.
    /// The instance comes from the pooled engine while it has a free slot, else from the
    /// engine the pack was compiled on.
    fn instantiate(
        code: &Arc<Self>,
        limits: CallLimits,
        log_level: crate::options::LogLevel,
        redactor: &Arc<crate::capabilities::secrets::Redactor>,
    ) -> Result<(Live, StartupCost)> {
        let make = |engine: &wasmtime::Engine, pooled: bool, start: &StartWith<'_>| {
            let store = new_store(
                engine,
                &code.grants,
                code.wasi.as_deref().map(Vec::as_slice),
                limits,
                log_level,
                redactor,
            )?;
            code.live(store, limits, pooled, start)
        };
        let pooled = code.pool.as_ref().and_then(PoolPlan::for_next_instance);
        if let Some(Pooled { pre, .. }) = pooled {
            let made = make(pre.module().engine(), true, &|store| {
                match pre.instantiate(&mut *store) {
                    Ok(instance) => Ok(Some(instance)),
                    // Every slot is taken: this instance is mapped on its own instead.
                    Err(err) if err.is::<wasmtime::PoolConcurrencyLimitError>() => Ok(None),
                    Err(err) => Err(start_error(store, err)),
                }
            })?;
            if let Some(made) = made {
                return Ok(made);
            }
        }
        make(code::engine(), false, &|store| {
            code.start.instantiate(store).map(Some)
        })?
        .ok_or_else(|| Error::new(ErrorKind::Internal, "packhost bug: no instance was made"))
    }
}

impl PackCode {
    /// Where the exports of an instance of the pooled module (else of the compiled one) are.
    fn exports_of(&self, pooled: bool) -> &Exports {
        let on_pool = self.pool.as_ref().and_then(|plan| plan.pooled.get());
        match on_pool {
            Some(Some(on_pool)) if pooled => &on_pool.exports,
            _ => &self.exports,
        }
    }

    /// Runs `start` (which makes the instance, or answers `None` when its engine has no room)
    /// and the pack's start-up code in `store` under `limits`, and gathers the handles calls
    /// need.
    fn live(
        &self,
        mut store: Store<HostState>,
        limits: CallLimits,
        pooled: bool,
        start: &StartWith<'_>,
    ) -> Result<Option<(Live, StartupCost)>> {
        let exports = self.exports_of(pooled);
        let (instance, startup) = start_up(&mut store, limits, |store| {
            let Some(instance) = catch_panic("instantiating", || start(store))?? else {
                return Ok(None);
            };
            kernel::offer(&mut *store, &instance);
            run_initializers(store, &instance, &exports.initializers)?;
            Ok(Some(instance))
        })?;
        let Some(instance) = instance else {
            return Ok(None);
        };
        let memory = exports
            .memory
            .as_ref()
            .and_then(|at| instance.get_module_export(&mut store, at))
            .and_then(wasmtime::Extern::into_memory);
        let bulk = exports.bulk.as_ref().and_then(|(input, output)| {
            let input = typed_export(&instance, &mut store, input)?;
            Some((input, typed_export(&instance, &mut store, output)?))
        });
        let live = Live {
            store,
            instance,
            memory,
            actions: vec![None; exports.actions.len()],
            bulk,
            pooled,
        };
        Ok(Some((live, startup)))
    }
}

/// One instance slot of a pack on the native engine: of a module by default, of a
/// component as [`ComponentInstance`].
pub(crate) struct Instance<C: Code = PackCode> {
    code: Arc<C>,
    live: C::Live,
    limits: CallLimits,
    log_level: crate::options::LogLevel,
    redactor: Arc<crate::capabilities::secrets::Redactor>,
    /// What the current live instance's start-up cost, until a call is billed for it.
    startup: Option<StartupCost>,
    fuel_rates: Arc<FuelRates>,
}

/// The limits every call, and every start-up, runs under.
#[derive(Clone, Copy)]
pub(crate) struct CallLimits {
    fuel: Option<u64>,
    timeout: Duration,
    memory: u64,
    max_var_bytes: u64,
}

impl CallLimits {
    fn of(spec: &InstanceSpec) -> Self {
        CallLimits {
            fuel: spec.limits.fuel,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            memory: spec.limits.memory_pages() as u64 * 65536,
            max_var_bytes: spec.limits.max_var_bytes,
        }
    }
}

impl<C: Code> Instance<C> {
    /// Compiles (or finds compiled) the pack and makes a ready instance.
    ///
    /// # Errors
    /// `invalid_pack` when the pack cannot be compiled, linked or started; `timeout`,
    /// `out_of_fuel` or `memory_limit` when its start-up code breaks the call limits.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        let code = match C::cell(spec).get() {
            Some(code) => code.clone(),
            None => {
                let code = Arc::new(catch_panic("compiling", || C::compile(spec))??);
                C::cell(spec).get_or_init(|| code).clone()
            }
        };
        let limits = CallLimits::of(spec);
        let (live, startup) = C::instantiate(&code, limits, spec.log_level, &spec.redactor)?;
        Ok(Instance {
            code,
            live,
            limits,
            log_level: spec.log_level,
            redactor: spec.redactor.clone(),
            startup: Some(startup),
            fuel_rates: spec.fuel_rates.clone(),
        })
    }

    /// Replaces the store and wasm instance with fresh ones from the same compiled code.
    ///
    /// # Errors
    /// As [`Instance::new`], for the pack's start-up code.
    pub(crate) fn renew(&mut self) -> Result<()> {
        let (live, startup) =
            C::instantiate(&self.code, self.limits, self.log_level, &self.redactor)?;
        self.live = live;
        self.startup = Some(startup);
        Ok(())
    }

    /// What the live instance's start-up cost, once: the first call on it reports it.
    pub(crate) fn take_startup(&mut self) -> Option<StartupCost> {
        self.startup.take()
    }
}

impl Instance {
    /// Runs one export on `input` and hands its output, read in place from guest or kernel
    /// memory, to `read`.
    pub(crate) fn call<R>(
        &mut self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        lock: Option<&mut dyn InterpreterLock>,
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> RawOutcome<R> {
        let found = self.code.exports_of(self.live.pooled).actions.get(action);
        let Some(func) =
            found.and_then(|(position, at, shape)| self.live.action(*position, at, *shape))
        else {
            return RawOutcome::failed(Error::new(
                ErrorKind::ActionNotFound,
                format!("the pack exports no callable {action:?}"),
            ));
        };
        // The first call on an instance also reports its start-up's log lines, as it does
        // its cost.
        let metered = MeteredCall {
            limits: self.limits,
            fuel_rates: &self.fuel_rates,
            action,
            first_call: self.startup.is_some(),
        };
        let live = &mut self.live;
        kernel::reset(&mut live.store);
        let Live {
            store,
            memory,
            bulk,
            ..
        } = live;
        metered.run(store, input, options, lock, |store| {
            run_action(store, *memory, bulk.as_ref(), func, input, read)
        })
    }
}

/// One call of an action as every native instance runs it, module or component: under the
/// pack's limits, with its usage collected and its fuel settled.
struct MeteredCall<'a> {
    limits: CallLimits,
    fuel_rates: &'a FuelRates,
    action: &'a str,
    /// True for the first call on an instance, which also reports its start-up's log lines.
    first_call: bool,
}

impl MeteredCall<'_> {
    /// Runs `run` in `store`, with `input` in view of the Extism ABI's input functions.
    fn run<R>(
        self,
        store: &mut Store<HostState>,
        input: &[u8],
        options: &CallOptions,
        lock: Option<&mut dyn InterpreterLock>,
        run: impl FnOnce(&mut Store<HostState>) -> Result<R>,
    ) -> RawOutcome<R> {
        let context = &options.context;
        let fuel_limit = self.limits.fuel.unwrap_or(u64::MAX);
        let timeout = self.limits.timeout;
        let state = store.data_mut();
        if !self.first_call {
            state.logs.lines.clear();
        }
        state
            .limiter
            .begin_call(state.kernel.size(), state.vars.bytes());
        let linear_before = state.limiter.linear();
        state.call = Default::default();
        if !context.is_null() {
            state.call.context = context.clone();
        }
        // SAFETY: `input` outlives this function, and the view is cleared below before it
        // returns, on every path (a panic is caught around `run`).
        unsafe { state.call.input.set(input) };
        // The first epoch callback comes after a millisecond whatever the timeout: it marks
        // the thread's CPU clock (a call that times out is billed by it) and releases the
        // caller's lock once the call has held it for `HOLD_AT_MOST`.
        let ticks = code::deadline_ticks(timeout).min(code::deadline_ticks(CPU_MARK_AFTER));
        if let Some(lock) = lock {
            // SAFETY: the lock is cleared below, before this function returns, on every
            // path (a panic is caught around `run`).
            state.call.lock = Some(unsafe { HeldLock::new(lock) });
        }
        let started = Instant::now();
        state.call.started = Some(started);
        state.set_deadline(started + timeout, options.cancel.as_ref());

        let running = code::RunningCall::begin();
        let result = store
            .set_fuel(fuel_limit)
            .map_err(internal("setting fuel"))
            .and_then(|()| {
                store.set_epoch_deadline(ticks);
                catch_panic("calling", || run(&mut *store))?
            });
        drop(running);
        let wall_time = started.elapsed();

        let fuel_consumed = fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data_mut();
        state.call.input.clear();
        state.call.lock = None;
        state.forget_cancel();
        let host = state.call.host;
        let exited = state.call.exited;
        let result = result.map_err(|err| {
            // A pack whose memory growth was refused usually aborts (Rust's allocator traps);
            // that trap is the memory limit at work, and is reported as such.
            if *err.kind() == ErrorKind::Trap && state.limiter.refused() {
                memory_limit_error(state.limiter.limit())
            } else {
                err
            }
        });
        let (audit, http) = state.audit.take();
        if !self.first_call {
            let growth = state.limiter.linear().saturating_sub(linear_before);
            state.largest_growth = state.largest_growth.max(growth);
        }
        let memory_crowded = state.largest_growth > 0
            && state.limiter.remaining() < state.largest_growth.saturating_mul(2);
        let mut outcome = RawOutcome {
            result,
            fuel_consumed,
            peak_memory_bytes: state.limiter.peak(),
            wall_time,
            host,
            logs: std::mem::take(&mut state.logs.lines),
            audit,
            http,
            startup_time: Duration::ZERO,
            exited,
            memory_crowded,
        };
        // Calls that ended before the first epoch callback are too short to need it.
        if let Some(mark) = state.call.cpu_mark {
            let cpu = mark.elapsed();
            settle_fuel(
                &mut outcome,
                self.fuel_rates,
                self.action,
                cpu,
                self.limits.fuel,
            );
        }
        outcome
    }
}

/// When the first epoch callback of a call comes (within one more tick): the lock a call
/// holds is released then, and the CPU clock is marked.
const CPU_MARK_AFTER: Duration = HOLD_AT_MOST;

fn memory_limit_error(limit: u64) -> Error {
    Error::new(
        ErrorKind::MemoryLimit,
        format!("the pack tried to grow its memory past the {limit} byte limit"),
    )
}

/// Delivers the input, runs the action and collects its output or error.
fn run_action<R>(
    store: &mut Store<HostState>,
    memory: Option<Memory>,
    bulk: Option<&BulkIo>,
    func: Action,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let bulk = bulk.zip(memory);
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
    let called = match func {
        Action::WithCode(func) => func.call(&mut *store, ()),
        Action::Void(func) => func.call(&mut *store, ()).map(|()| 0),
    };
    // A WASI command ends with `proc_exit`: its exit code is its return code.
    let (return_code, exited) = match called {
        Ok(code) => (code, false),
        Err(err) => match err.downcast_ref::<wasi_common::I32Exit>() {
            Some(exit) => {
                store.data_mut().call.exited = true;
                (exit.0, true)
            }
            None => return Err(trap_error(store, err)),
        },
    };

    let error_offset = store.data().call.error_offset;
    if error_offset != 0 {
        let message = kernel::block(&*store, error_offset)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| Error::new(ErrorKind::Trap, "error_set was given an invalid block"))?;
        return Err(Error::new(ErrorKind::PluginError { return_code }, message));
    }
    if return_code != 0 {
        return Err(Error::new(
            ErrorKind::PluginError { return_code },
            if exited {
                super::exited_with(return_code)
            } else {
                format!("the pack returned code {return_code} without an error message")
            },
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
    let output =
        kernel::bytes_at(&*store, call.output_offset, call.output_length).ok_or_else(|| {
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

/// A failed call's error. A pack that traps after recording its error (AssemblyScript's
/// `abort` does) meant that message, so a wasm trap reports it, as extism does; a limit or
/// a host's refusal keeps its own.
fn trap_error(store: &Store<HostState>, err: wasmtime::Error) -> Error {
    let wasm_trap = matches!(
        err.downcast_ref::<Trap>(),
        Some(trap) if *trap != Trap::OutOfFuel && *trap != Trap::Interrupt
    );
    let error = call_error(err);
    let error_offset = store.data().call.error_offset;
    if !wasm_trap || error_offset == 0 {
        return error;
    }
    match kernel::block(store, error_offset) {
        Some(message) => Error::new(ErrorKind::Trap, String::from_utf8_lossy(message)),
        None => error,
    }
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

/// A store on `engine` for one instance of a pack granted `grants`, under `limits`, with
/// WASI over `wasi`'s mounts when the pack has WASI.
fn new_store(
    engine: &wasmtime::Engine,
    grants: &Arc<Grants>,
    wasi: Option<&[Mount]>,
    limits: CallLimits,
    log_level: crate::options::LogLevel,
    redactor: &Arc<crate::capabilities::secrets::Redactor>,
) -> Result<Store<HostState>> {
    let state = HostState::new(
        limits.memory,
        limits.max_var_bytes,
        grants.clone(),
        LogBuffer::new(log_level).with_redactor(redactor.clone()),
        wasi,
    )?;
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(epoch_deadline_reached);
    Ok(store)
}

/// Runs `make`, which instantiates the pack in `store` and runs its start-up code, under the
/// same limits as a call (fuel, deadline, memory), and says what that cost so the next call
/// can report it. A start-up that fails still burnt what it burnt: its error carries the
/// cost and the lines it logged.
fn start_up<T>(
    store: &mut Store<HostState>,
    limits: CallLimits,
    make: impl FnOnce(&mut Store<HostState>) -> Result<T>,
) -> Result<(T, StartupCost)> {
    let fuel_limit = limits.fuel.unwrap_or(u64::MAX);
    store
        .set_fuel(fuel_limit)
        .map_err(internal("setting fuel"))?;
    store.set_epoch_deadline(code::deadline_ticks(limits.timeout));
    let started = Instant::now();
    // Host functions that block (HTTP, WASI's waits) honour the same bound during start-up.
    store
        .data_mut()
        .set_deadline(started + limits.timeout, None);
    let running = code::RunningCall::begin();
    let made = make(store);
    drop(running);
    let startup = StartupCost {
        fuel: fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0)),
        wall_time: started.elapsed(),
        peak_memory_bytes: store.data().limiter.peak(),
    };
    let made = made
        .map_err(|err| startup.report_on(err, std::mem::take(&mut store.data_mut().logs.lines)))?;
    Ok((made, startup))
}

/// The store's epoch deadline came: either a call holding its caller's interpreter lock has
/// run past `HOLD_AT_MOST`, so the lock is released and the call goes on to its own
/// deadline, or the call (or start-up) is out of time.
fn epoch_deadline_reached(
    mut store: wasmtime::StoreContextMut<'_, HostState>,
) -> wasmtime::Result<wasmtime::UpdateDeadline> {
    let call = &mut store.data_mut().call;
    let now = Instant::now();
    if call.cpu_mark.is_none() {
        if let Some(started) = call.started {
            call.cpu_mark = CpuMark::take(now.saturating_duration_since(started));
        }
    }
    if let Some(lock) = call.lock.take() {
        lock.release();
    }
    let left = call.deadline.map_or(Duration::ZERO, |deadline| {
        deadline.saturating_duration_since(now)
    });
    if left.is_zero() {
        return Ok(wasmtime::UpdateDeadline::Interrupt);
    }
    let ticks = code::deadline_ticks(left);
    match &call.cancel {
        None => Ok(wasmtime::UpdateDeadline::Continue(ticks)),
        Some(cancel) if cancel.is_cancelled() => Err(HostFailure::cancelled()),
        // A call its host may cancel is looked at every tick.
        Some(_) => Ok(wasmtime::UpdateDeadline::Continue(ticks.min(1))),
    }
}

fn start_error(store: &Store<HostState>, err: wasmtime::Error) -> Error {
    if store.data().limiter.refused() {
        return memory_limit_error(store.data().limiter.limit());
    }
    let err = call_error(err);
    let detail = err.message().to_string();
    start_failed(err, detail)
}

/// Runs the guest language's initialisers the way the official hosts do.
fn run_initializers(
    store: &mut Store<HostState>,
    instance: &WasmInstance,
    initializers: &[Initializer],
) -> Result<()> {
    for initializer in initializers {
        // `Exports` found each with its type, so a lookup that fails means nothing to run.
        let ran = match initializer {
            Initializer::Plain(at) => {
                typed_export::<(), ()>(instance, store, at).map(|func| func.call(&mut *store, ()))
            }
            Initializer::HsInit(at) => typed_export::<(i32, i32), ()>(instance, store, at)
                .map(|func| func.call(&mut *store, (0, 0))),
        };
        if let Some(ran) = ran {
            ran.map_err(|err| start_error(store, err))?;
        }
    }
    Ok(())
}
