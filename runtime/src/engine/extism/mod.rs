//! The reference engine: runs packs through the `extism` crate. It is the only module that
//! touches extism; the conformance suite holds the native engine to what this one does.
//!
//! Two things here work around extism 1.30 rather than with it:
//! - **One engine per instance.** extism times calls out by bumping the wasmtime engine's
//!   epoch, and every plugin made from one compiled plugin shares that engine, so one call's
//!   timeout would cut every concurrent call short. Each instance therefore owns its engine;
//!   compiled code is shared through wasmtime's on-disk cache, so only the first instance
//!   of a pack pays for compilation.
//! - **Host functions shadowed.** The `log_*` and `get_log_level` imports are replaced by
//!   ours, so log lines are captured per call at the host's level instead of going to
//!   extism's global subscriber; `http_request`, `http_status_code` and `http_headers` are
//!   replaced by the shared HTTP capability (`capabilities::http`), so both engines apply
//!   the same grant checks, address rules and limits; `var_get` and `var_set` by the shared
//!   `Vars`, so vars have one cap and count against the memory limit on both;
//!   `output_offset`, `output_length` and `reset` by `kernel.rs`, which keeps extism from
//!   reading a call's output or error, or writing its input, outside the kernel's memory.

mod classify;
mod host_fn;
mod http;
mod kernel;
mod memory;
mod vars;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use extism::{CurrentPlugin, Function, UserData, Val, ValType, PTR};

use super::fuel::thread_cpu_time;
use super::{
    cache_dir, catch_panic, settle_fuel, start_failed, InstanceSpec, LogBuffer, RawOutcome,
    StartupCost, LOG_IMPORTS, TABLE_ELEMENT_BYTES,
};
use crate::cancel::{CancelToken, HookGuard};
use crate::capabilities::audit::AuditTrail;
use crate::capabilities::files::Mount;
use crate::error::{Error, ErrorKind, Result};
use crate::link::MAIN_MODULE;
use crate::module::{ModuleInfo, EXTISM_ENV};
use crate::options::{CallOptions, Limits, LogLevel};

use classify::{classify, Facts};
use memory::{MemoryMeter, MeteredMemoryCreator};

/// Refuses, at load, a pack the extism engine could not hold to the limits the native engine
/// enforces, naming the native engine as the way out:
/// - a WASI pack importing `poll_oneoff`: extism's WASI scheduler sleeps as long as the pack
///   asks, out of reach of any deadline, and extism 1.30 offers no way to replace it;
/// - tables that can grow without a declared maximum, or past `memory_bytes` (one host
///   pointer an element): extism's limiter lets any table grow;
/// - start-up code with `fuel: null`: extism starts its timer only after start-up, so fuel
///   is start-up's only bound there;
/// - a read-only mount (`ro:`): extism's read-only directory refuses only opening a file for
///   writing, so a pack could still create files through a subdirectory it opens, truncate
///   through a create flag, or rename files in from a writable mount.
///
/// # Errors
/// `invalid_options` saying which and why.
pub(crate) fn refuse_unbounded(
    module: &ModuleInfo,
    wasi: bool,
    limits: &Limits,
    mounts: &[Mount],
) -> Result<()> {
    if module.component {
        return Err(Error::invalid_options(
            "the extism engine runs core modules only; a component pack runs on the native engine (the default)",
        ));
    }
    let refuse = |why: &str| {
        Err(Error::invalid_options(format!(
            "the extism engine cannot bound {why}; the native engine (the default) can"
        )))
    };
    if wasi && module.imports_wasi_function("poll_oneoff") {
        return refuse("a WASI pack's waits (poll_oneoff) by the call's time limit");
    }
    let table_bytes = module
        .table_elements_max
        .map(|elements| elements.saturating_mul(TABLE_ELEMENT_BYTES));
    if table_bytes.is_none_or(|bytes| bytes > limits.memory_bytes) {
        return refuse("this pack's tables (one without a maximum, or larger than memory_bytes)");
    }
    if wasi && module.imports_wasi() && mounts.iter().any(|mount| mount.read_only) {
        return refuse("a read-only mount (ro:) as read-only");
    }
    if limits.fuel.is_none() && module.has_start_up_code() {
        return refuse(
            "start-up code without fuel (its timer starts after start-up); set limits.fuel",
        );
    }
    Ok(())
}

/// One instance slot: a compiled plugin with an engine of its own, and the live plugin
/// (store and wasm instance) made from it. After a failure only the live plugin is replaced
/// ([`Instance::renew`]); the engine and its compiled code stay, so recovering costs no
/// compilation and starts no new threads.
pub(crate) struct Instance {
    compiled: extism::CompiledPlugin,
    plugin: Option<extism::Plugin>,
    meter: Arc<MemoryMeter>,
    logs: UserData<LogBuffer>,
    http: UserData<http::HttpCall>,
    vars: UserData<vars::InstanceVars>,
    host: UserData<host_fn::HostCallState>,
    /// What the seal found at the end of the current call.
    seal: UserData<kernel::Seal>,
    /// What the instance's HTTP and host functions record, taken by each call.
    audit: AuditTrail,
    /// The call limits, to check extism's failure messages against what happened.
    timeout: Duration,
    fuel_limit: Option<u64>,
    /// What the live plugin's start-up cost, until a call is billed for it.
    startup: Option<StartupCost>,
    fuel_rates: Arc<super::fuel::FuelRates>,
    /// Closed to host calls while extism links a new plugin.
    gate: LinkGate,
}

impl Instance {
    /// Compiles (or loads from the code cache) and links a fresh instance.
    ///
    /// # Errors
    /// `invalid_pack` when wasmtime rejects the module or linking fails.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        let meter = Arc::new(MemoryMeter::with_limit(spec.limits.memory_bytes));
        let logs =
            UserData::new(LogBuffer::new(spec.log_level).with_redactor(spec.redactor.clone()));
        let audit = AuditTrail::default();
        let http = UserData::new(http::HttpCall::new(spec.http.clone(), audit.clone()));
        let seal = UserData::new(kernel::Seal::default());
        let host = UserData::new(host_fn::HostCallState::recording_into(audit.clone()));
        let gate = LinkGate::default();
        let vars = UserData::new(vars::InstanceVars::new(
            spec.limits.max_var_bytes,
            meter.clone(),
        ));

        // Linked modules by name, the main module last (extism links every module it is
        // given; packhost checked at load that they link without a circle).
        let modules = spec
            .linked
            .iter()
            .map(|linked| extism::Wasm::data(linked.wasm.as_slice()).with_name(&linked.name))
            .chain([extism::Wasm::data(spec.wasm.as_slice()).with_name(MAIN_MODULE)]);
        let manifest = extism::Manifest::new(modules)
            .with_timeout(Duration::from_millis(spec.limits.timeout_ms))
            .with_memory_options(
                extism_manifest::MemoryOptions::new()
                    .with_max_pages(spec.limits.memory_pages())
                    .with_max_http_response_bytes(spec.limits.memory_bytes),
            )
            .with_allowed_hosts(spec.allowed_hosts.iter().cloned())
            .with_allowed_paths(
                spec.mounts
                    .iter()
                    .map(|mount| (mount.extism_source(), PathBuf::from(&mount.guest))),
            )
            .with_config(spec.config.iter());

        let mut wasmtime_config = wasmtime::Config::new();
        // Copy-on-write memory images assume wasmtime's own mmap memories, so they are off
        // with ours; data segments are copied in at instantiation instead.
        wasmtime_config
            .memory_init_cow(false)
            .with_host_memory(Arc::new(MeteredMemoryCreator {
                meter: meter.clone(),
            }));

        let mut builder = extism::PluginBuilder::new(manifest)
            .with_wasi(spec.wasi)
            .with_functions(log_functions(&logs, &meter, &gate))
            .with_functions([config_function(&spec.config, &meter, &gate)])
            .with_functions(http::functions(&http, &meter, &gate))
            .with_functions(vars::functions(&vars, &meter, &gate))
            .with_functions(host_fn::functions(
                &spec.host_functions,
                &host,
                &meter,
                &gate,
            ))
            .with_functions(kernel::shadowed_functions(&seal, &meter, &gate))
            .with_fuel_limit(spec.limits.fuel.unwrap_or(u64::MAX))
            .with_wasmtime_config(wasmtime_config);
        builder = match code_cache_config() {
            Some(path) => builder.with_cache_config(path),
            None => builder.with_cache_disabled(),
        };
        let compiled = catch_panic("compiling", || builder.compile())?
            .map_err(|err| Error::invalid_pack(format!("could not compile the pack: {err:#}")))?;
        let mut instance = Instance {
            compiled,
            plugin: None,
            meter,
            logs,
            http,
            vars,
            host,
            seal,
            audit,
            timeout: Duration::from_millis(spec.limits.timeout_ms),
            fuel_limit: spec.limits.fuel,
            startup: None,
            fuel_rates: spec.fuel_rates.clone(),
            gate,
        };
        instance.renew()?;
        Ok(instance)
    }

    /// Replaces the live plugin with a fresh one (new store, new wasm instance) from the same
    /// compiled code. The old one is dropped first, so one engine never holds two stores.
    ///
    /// # Errors
    /// `invalid_pack` when linking or the pack's start-up code fails.
    pub(crate) fn renew(&mut self) -> Result<()> {
        self.plugin = None;
        vars::clear(&self.vars);
        self.meter.reset_peak();
        let started = Instant::now();
        let compiled = &self.compiled;
        // Linking already runs a reactor's `_initialize` (wasmtime's linker does).
        self.gate.linking(true);
        let linked = catch_panic("instantiating", || {
            extism::Plugin::new_from_compiled(compiled)
        });
        self.gate.linking(false);
        let linked = linked?;
        let plugin = match linked {
            Ok(plugin) => plugin,
            Err(err) => {
                let ran_out = format!("{err:#}").contains(WASMTIME_OUT_OF_FUEL);
                let cost = StartupCost {
                    fuel: if ran_out {
                        self.fuel_limit.unwrap_or(0)
                    } else {
                        0
                    },
                    wall_time: started.elapsed(),
                    peak_memory_bytes: self.meter.peak(),
                };
                return Err(self.start_failure(&err, cost));
            }
        };
        self.startup = Some(instantiate_now(self, plugin, started)?);
        Ok(())
    }

    /// The error of a start-up that failed with `err` after costing `cost`, classified as a
    /// call's would be, and carrying that cost.
    fn start_failure(&self, err: &extism::Error, cost: StartupCost) -> Error {
        let facts = Facts {
            deadline_passed: cost.wall_time + Duration::from_millis(2) >= self.timeout,
            memory_refused: self.meter.refused_growth(),
            fuel_exhausted: self.fuel_limit.is_some_and(|limit| cost.fuel >= limit),
            cancelled: false,
        };
        // extism's limiter fails a refused `memory.grow` with a trap saying "oom" where the
        // native engine lets `memory.grow` return -1; in start-up code, as in a call, that
        // is the memory limit at work, not a broken pack. So is a module whose initial
        // memory alone is past the limit (our meter refused to create it).
        let error = if err.root_cause().to_string() == "oom" || facts.memory_refused {
            Error::new(
                ErrorKind::MemoryLimit,
                "the pack tried to grow its memory past the limit while starting",
            )
        } else if facts.fuel_exhausted && format!("{err:#}").contains(WASMTIME_OUT_OF_FUEL) {
            // A reactor's `_initialize` runs while linking, where extism does not rename
            // wasmtime's trap.
            start_failed(
                Error::new(ErrorKind::OutOfFuel, "the call used up its fuel"),
                "",
            )
        } else {
            start_failed(classify(err, -1, facts), format_args!("{err:#}"))
        };
        cost.report_on(error, self.take_logs())
    }

    /// The log lines recorded since the buffer was last emptied.
    fn take_logs(&self) -> Vec<crate::usage::LogRecord> {
        self.logs
            .get()
            .ok()
            .and_then(|buffer| buffer.lock().ok().map(|mut b| std::mem::take(&mut b.lines)))
            .unwrap_or_default()
    }

    /// What the live plugin's start-up cost, once: the first call on it reports it.
    pub(crate) fn take_startup(&mut self) -> Option<StartupCost> {
        self.startup.take()
    }

    /// Runs one export on `input`.
    pub(crate) fn call<R>(
        &mut self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> RawOutcome<R> {
        let context = &options.context;
        if let Ok(buffer) = self.logs.get() {
            if let Ok(mut buffer) = buffer.lock() {
                buffer.lines.clear();
            }
        }
        http::begin_call(&self.http);
        kernel::begin_call(&self.seal);
        self.meter.reset_peak();
        let started = Instant::now();
        let cpu_at_start = thread_cpu_time();
        host_fn::begin_call(&self.host, context, started + self.timeout);
        let Some(plugin) = self.plugin.as_mut() else {
            return RawOutcome::failed(Error::new(
                ErrorKind::Internal,
                "instance has no live plugin",
            ));
        };
        let cancel = options.cancel.as_ref();
        let forwarding = cancel.map(|token| ForwardCancel::new(token, plugin.cancel_handle()));
        if cancel.is_some_and(CancelToken::is_cancelled) {
            drop(forwarding);
            return RawOutcome::failed(CancelToken::error());
        }
        let (timeout, fuel_limit, meter, seal) =
            (self.timeout, self.fuel_limit, &self.meter, &self.seal);
        // A call whose seal withdrew its output or error ended in kernel state the host must
        // not read: a trap, as on the native engine, whatever the pack returned.
        let broken = |violation: String| Err(Error::new(ErrorKind::Trap, violation));
        let result = catch_panic("calling", || {
            match plugin.call_get_error_code::<&[u8], &[u8]>(action, input) {
                Ok(output) => match kernel::violation(seal) {
                    Some(violation) => broken(violation),
                    None => read(output),
                },
                Err((err, return_code)) => {
                    // extism's timer starts after `started`, so a real timeout has always
                    // taken the whole limit by this clock (a little slack for rounding).
                    let facts = Facts {
                        deadline_passed: started.elapsed() + Duration::from_millis(2) >= timeout,
                        memory_refused: meter.refused_growth(),
                        fuel_exhausted: fuel_limit
                            .is_some_and(|limit| plugin.fuel_consumed().unwrap_or(0) >= limit),
                        cancelled: cancel.is_some_and(CancelToken::is_cancelled),
                    };
                    let err = classify(&err, return_code, facts);
                    match kernel::violation(seal) {
                        Some(violation) if matches!(err.kind(), ErrorKind::PluginError { .. }) => {
                            broken(violation)
                        }
                        _ => Err(err),
                    }
                }
            }
        })
        .and_then(|result| result);
        // Stopped (and its resender joined) before the instance can serve another call.
        drop(forwarding);
        let result = result.map_err(|err| {
            // A pack whose memory growth was refused usually aborts (Rust's allocator traps);
            // that trap is the memory limit at work, and is reported as such.
            if *err.kind() == ErrorKind::Trap && self.meter.refused_growth() {
                Error::new(
                    ErrorKind::MemoryLimit,
                    format!(
                        "the pack tried to grow its memory past the {} byte limit",
                        self.meter.limit()
                    ),
                )
            } else {
                err
            }
        });
        let wall_time = started.elapsed();
        let fuel_consumed = plugin.fuel_consumed().unwrap_or(0);
        let logs = self.take_logs();
        let (audit, http) = self.audit.take();
        let mut outcome = RawOutcome {
            result,
            fuel_consumed,
            peak_memory_bytes: self.meter.peak(),
            wall_time,
            host: host_fn::end_call(&self.host),
            logs,
            audit,
            http,
            startup_time: Duration::ZERO,
            exited: false,
            memory_crowded: false,
        };
        if let Some((start, end)) = cpu_at_start.zip(thread_cpu_time()) {
            let cpu = end.saturating_sub(start);
            settle_fuel(&mut outcome, &self.fuel_rates, action, cpu, self.fuel_limit);
        }
        outcome
    }
}

/// Forwards a call's cancellation to extism's cancel handle for as long as the call runs.
///
/// extism's timer thread drops a cancel for a call it has not yet been told started, so a
/// single cancel sent just before extism starts the call would be lost: once cancelled, the
/// handle is sent a cancel every millisecond until the call ends.
///
/// Worse, a cancel the timer reads in the instant between extism registering the call and
/// arming its interrupt is spent on nothing and takes the call's timeout with it: the call
/// then runs unbounded (a flow whose failing branch cancelled a sibling just starting hung
/// CI this way). So no cancel is sent before [`CANCEL_GRACE`] has passed since the call was
/// handed to extism, by which time extism has armed it unless its thread was descheduled
/// for that long inside those few instructions. A cancel in a call's first moments takes
/// that much longer on this engine; the native engine has no such gap.
struct ForwardCancel {
    done: Arc<AtomicBool>,
    resender: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    hook: Option<HookGuard>,
}

impl ForwardCancel {
    fn new(token: &CancelToken, handle: extism::CancelHandle) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let resender = Arc::new(Mutex::new(None));
        let armed_by = Instant::now() + CANCEL_GRACE;
        let hook = {
            let (done, resender) = (done.clone(), resender.clone());
            token.on_cancel(move || {
                let mut slot = resender.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.is_none() {
                    let (done, handle) = (done.clone(), handle.clone());
                    *slot = Some(std::thread::spawn(move || {
                        while !done.load(Ordering::SeqCst) {
                            if Instant::now() >= armed_by {
                                let _ = handle.cancel();
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }));
                }
            })
        };
        ForwardCancel {
            done,
            resender,
            hook: Some(hook),
        }
    }
}

impl Drop for ForwardCancel {
    fn drop(&mut self) {
        // No new resender after this; then the running one stops and is joined, so no stray
        // cancel reaches a later call on the same plugin.
        drop(self.hook.take());
        self.done.store(true, Ordering::SeqCst);
        let resender = self
            .resender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(resender) = resender {
            let _ = resender.join();
        }
    }
}

/// How long after handing a call to extism [`ForwardCancel`] waits before it forwards a
/// cancel, so that extism has armed the call's interrupt first.
const CANCEL_GRACE: Duration = Duration::from_millis(20);

/// How wasmtime describes its out-of-fuel trap.
const WASMTIME_OUT_OF_FUEL: &str = "all fuel consumed by WebAssembly";

/// Export name no module has: calling it makes extism instantiate the module and run its
/// start-up code, then fail to find the function.
const NO_SUCH_EXPORT: &str = "__packhost_instantiate";

/// Instantiates the module and runs its start-up code (constructors, language runtime
/// init) now, when the instance is made, under the call limits extism applies to every call
/// (fuel, timeout, memory), instead of inside its first real call; the first call reports
/// what it cost.
fn instantiate_now(
    instance: &mut Instance,
    mut plugin: extism::Plugin,
    started: Instant,
) -> Result<StartupCost> {
    // A reactor's `_initialize` already ran while linking; each extism call resets the fuel.
    let linking = plugin.fuel_consumed().unwrap_or(0);
    let outcome = catch_panic("instantiating", || {
        plugin.call::<&[u8], &[u8]>(NO_SUCH_EXPORT, &[]).map(|_| ())
    })?;
    let fuel = linking.saturating_add(plugin.fuel_consumed().unwrap_or(0));
    let mut cost = StartupCost {
        fuel,
        wall_time: started.elapsed(),
        peak_memory_bytes: instance.meter.peak(),
    };
    match outcome {
        Err(err) if !err.to_string().starts_with("Function not found") => {
            Err(instance.start_failure(&err, cost))
        }
        _ => {
            // Every extism call first runs its kernel's reset on the pack's fuel; a second
            // call on the started plugin burns only that, which is extism's, not the pack's.
            let probe = catch_panic("instantiating", || {
                plugin.call::<&[u8], &[u8]>(NO_SUCH_EXPORT, &[]).map(|_| ())
            });
            if let Ok(Err(_)) = probe {
                let overhead = plugin.fuel_consumed().unwrap_or(0);
                cost.fuel = cost.fuel.saturating_sub(overhead);
            }
            instance.plugin = Some(plugin);
            Ok(cost)
        }
    }
}

/// The `log_*` and `get_log_level` imports, bound to one instance's buffer.
fn log_functions(
    logs: &UserData<LogBuffer>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    let mut functions: Vec<Function> = LOG_IMPORTS
        .into_iter()
        .map(|(name, level)| {
            let meter = meter.clone();
            gate.function(
                name,
                [PTR],
                [],
                logs.clone(),
                move |plugin, inputs, _, logs| record_log(plugin, &meter, &inputs[0], level, &logs),
            )
            .with_namespace(EXTISM_ENV)
        })
        .collect();
    functions.push(
        gate.function(
            "get_log_level",
            [],
            [ValType::I32],
            logs.clone(),
            |_, _, outputs, logs| {
                let level = logs.get()?.lock().map_err(|_| poisoned())?.level_number();
                outputs[0] = Val::I32(level);
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
    );
    functions
}

/// `config_get`, shadowing extism's so that it too goes through the [`LinkGate`]: the
/// config the pack may read (already narrowed to its grant), by key.
fn config_function(
    config: &BTreeMap<String, String>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Function {
    let meter = meter.clone();
    gate.function(
        "config_get",
        [PTR],
        [PTR],
        UserData::new(config.clone()),
        move |plugin, inputs, outputs, config| {
            let key = kernel::read_block(plugin, &meter, &inputs[0], "config key", true)?;
            let config = config.get()?;
            let value = config
                .lock()
                .map_err(|_| extism::Error::msg("config lock poisoned"))?
                .get(&*String::from_utf8_lossy(&key))
                .cloned();
            outputs[0] = match value {
                Some(value) => kernel::new_block(plugin, &meter, value.as_bytes())?,
                None => Val::I64(0),
            };
            Ok(())
        },
    )
    .with_namespace(EXTISM_ENV)
}

/// Whether extism is linking the plugin. extism 1.30 runs a reactor's `_initialize` inside
/// `Plugin::new_from_compiled`, before the plugin's `CurrentPlugin` can reach its store: a
/// host function that touches memory then dereferences a null pointer and takes the whole
/// process down. Every function packhost lends through extism (all of `extism:host/env`
/// that is not kernel wasm) checks the gate first, and the host's functions reach memory
/// only through a gated `PluginMemory`, so such a start-up fails with `invalid_pack`
/// instead. The native engine serves start-up code like any call.
#[derive(Clone, Default)]
pub(super) struct LinkGate(Arc<AtomicBool>);

impl LinkGate {
    /// Why a host call made while extism links the plugin fails.
    pub(super) const REFUSAL: &str = "the pack calls the host from its start-up code, which \
         the extism engine cannot serve while it links the plugin; the native engine (the \
         default) can";

    /// `Function::new`, refusing calls while the plugin is being linked.
    pub(super) fn function<T: 'static>(
        &self,
        name: &str,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        data: UserData<T>,
        f: impl Fn(&mut CurrentPlugin, &[Val], &mut [Val], UserData<T>) -> Result<(), extism::Error>
            + Send
            + Sync
            + 'static,
    ) -> Function {
        let gate = self.clone();
        Function::new(
            name,
            params,
            results,
            data,
            move |plugin, inputs, outputs, data| {
                if gate.is_linking() {
                    return Err(extism::Error::msg(Self::REFUSAL));
                }
                f(plugin, inputs, outputs, data)
            },
        )
    }

    pub(super) fn is_linking(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn linking(&self, linking: bool) {
        self.0.store(linking, Ordering::Release);
    }
}

fn poisoned() -> extism::Error {
    extism::Error::msg("log buffer lock poisoned")
}

fn record_log(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    offset: &Val,
    level: LogLevel,
    logs: &UserData<LogBuffer>,
) -> std::result::Result<(), extism::Error> {
    // The pack hands the message's memory over to the host, which must free it.
    let at = offset.i64().unwrap_or(0) as u64;
    let buffer = logs.get()?;
    let mut buffer = buffer.lock().map_err(|_| poisoned())?;
    let message = kernel::block(plugin, meter, at)
        .filter(|_| at != 0)
        .ok_or_else(|| extism::Error::msg("log message handle is not a valid allocation"))?;
    let length = message.len() as u64;
    if buffer.wants(level) {
        buffer.record(level, message);
    }
    drop(buffer);
    // SAFETY: the kernel just named this block, `length` long.
    plugin.memory_free(unsafe { extism::convert::MemoryHandle::new(at, length) })?;
    Ok(())
}

/// Path of a wasmtime cache config pointing into packhost's cache directory, or `None` when
/// there is none (then every instance compiles for itself). wasmtime keys its entries by
/// module hash and engine configuration, so a stale or foreign entry is never loaded.
fn code_cache_config() -> Option<PathBuf> {
    static CONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = cache_dir()?;
            std::fs::create_dir_all(dir.join("code")).ok()?;
            let config = dir.join("wasmtime-cache.toml");
            let text = format!(
                "[cache]
directory = {}
",
                toml_string(&dir.join("code").to_string_lossy())
            );
            // Written aside and renamed so concurrent processes never read half a file.
            let staged = dir.join(format!("wasmtime-cache.toml.{}", std::process::id()));
            std::fs::write(&staged, text).ok()?;
            std::fs::rename(&staged, &config).ok()?;
            Some(config)
        })
        .clone()
}

/// A TOML basic string for `text` (quotes and backslashes escaped).
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
