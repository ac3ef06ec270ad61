//! Component packs on the native engine: a WebAssembly component whose top-level functions
//! of the action shape are its actions (`wit/component.wit`), run in the same store, under
//! the same limits, ticker, usage record and error codes as a module's calls.
//!
//! What differs from a module is only how a call crosses: the input is lowered into the
//! component's memory by its own allocator (so it counts against `memory_bytes` like any
//! growth), and the output or error message is copied out through the canonical ABI.
//! packhost lends a component its `packhost:pack/host` instance (logging, config), HTTP and,
//! when it imports them, key-value storage and secrets (`component_caps.rs`); nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{
    types::ComponentItem, ComponentExportIndex, ComponentType, Func,
    Instance as WasmComponentInstance, InstancePre, Lift, Linker, WasmStr,
};
use wasmtime::{Store, StoreContextMut};

use super::state::{Grants, HostState};
use super::{
    catch_panic, code, internal, new_store, start_error, start_up, CallLimits, Code,
    ComponentInstance, MeteredCall,
};
use crate::engine::{InstanceSpec, RawOutcome, StartupCost};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::InterpreterLock;
use crate::module::{component_action_name, COMPONENT_HOST};
use crate::options::{CallOptions, LogLevel};

/// A compiled, linked component pack: everything its instances share.
pub(crate) struct ComponentCode {
    pre: InstancePre<HostState>,
    /// The component's top-level function exports by action name (snake_case), with their
    /// position in an
    /// instance's function table. Whether one has the action shape is checked as it is
    /// first called.
    functions: HashMap<String, (usize, ComponentExportIndex)>,
    grants: Arc<Grants>,
}

impl std::fmt::Debug for ComponentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCode")
            .field("functions", &self.functions.len())
            .finish()
    }
}

impl ComponentCode {
    /// Compiles (or finds compiled) the component of `spec` and links it.
    ///
    /// # Errors
    /// `invalid_pack` when it cannot be compiled, or imports something packhost's host
    /// instance does not provide with that type.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        let component = code::compiled_component(&spec.id, &spec.wasm)?;
        let mut linker = Linker::new(code::engine());
        link_host(&mut linker).map_err(internal("linking packhost's host instance"))?;
        super::component_caps::link(&mut linker, &spec.host_functions)
            .map_err(internal("linking packhost's capabilities"))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|err| Error::invalid_pack(format!("could not link the component: {err:#}")))?;
        let names: Vec<String> = component
            .component_type()
            .exports(code::engine())
            .filter(|(_, item)| matches!(item, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let functions = names
            .into_iter()
            .filter_map(|name| {
                let index = component.get_export_index(None, &name)?;
                Some((component_action_name(&name), index))
            })
            .enumerate()
            .map(|(position, (name, index))| (name, (position, index)))
            .collect();
        Ok(ComponentCode {
            pre,
            functions,
            grants: Arc::new(Grants {
                config: spec.config.clone(),
                http: spec.http.clone(),
            }),
        })
    }
}

/// The levels of `packhost:pack/host`'s `log`, as the component model lifts them.
// The variants are made by the canonical ABI's lift, never named in code.
#[allow(dead_code)]
#[derive(ComponentType, Lift, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
enum WitLogLevel {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

impl From<WitLogLevel> for LogLevel {
    fn from(level: WitLogLevel) -> Self {
        match level {
            WitLogLevel::Trace => LogLevel::Trace,
            WitLogLevel::Debug => LogLevel::Debug,
            WitLogLevel::Info => LogLevel::Info,
            WitLogLevel::Warn => LogLevel::Warn,
            WitLogLevel::Error => LogLevel::Error,
        }
    }
}

/// Defines `packhost:pack/host` (`wit/component.wit`) in `linker`. Strings are read in
/// place from the component's memory; only what is kept is copied.
fn link_host(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut host = linker.instance(COMPONENT_HOST)?;
    host.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, HostState>, (level, message): (WitLogLevel, WasmStr)| {
            let level = LogLevel::from(level);
            if !store.data().logs.wants(level) {
                return Ok(());
            }
            let message = message.to_str(&store)?;
            // Only the part of the line that can be kept is copied out of the component.
            let considered = store.data().logs.considered(message.len());
            let message = message.as_bytes()[..considered].to_vec();
            // As for a module's log line: kept when its kept part fits under the memory
            // limit, dropped otherwise.
            let kept = message.len().min(crate::usage::MAX_LOG_MESSAGE_BYTES) as u64;
            let state = store.data_mut();
            if state.limiter.hold_if_room(kept) {
                state.logs.record(level, &message);
            }
            Ok(())
        },
    )?;
    host.func_wrap(
        "config",
        |store: StoreContextMut<'_, HostState>, (key,): (WasmStr,)| {
            let key = key.to_str(&store)?;
            Ok((store.data().grants.config.get(key.as_ref()).cloned(),))
        },
    )?;
    Ok(())
}

/// A live component instance with its store.
pub(crate) struct Live {
    store: Store<HostState>,
    instance: WasmComponentInstance,
    /// Function handles by [`ComponentCode::functions`] position, looked up on first use.
    functions: Vec<Option<Func>>,
}

impl Live {
    fn function(&mut self, position: usize, index: &ComponentExportIndex) -> Option<Func> {
        if let Some(func) = self.functions.get(position).copied().flatten() {
            return Some(func);
        }
        let func = self.instance.get_func(&mut self.store, index)?;
        if let Some(slot) = self.functions.get_mut(position) {
            *slot = Some(func);
        }
        Some(func)
    }
}

impl Code for ComponentCode {
    type Live = Live;
    fn cell(spec: &InstanceSpec) -> &std::sync::OnceLock<Arc<Self>> {
        &spec.component_code
    }
    fn compile(spec: &InstanceSpec) -> Result<Self> {
        ComponentCode::new(spec)
    }
    /// Makes a store and component instance under the call limits, returning what its start-up
    /// cost so the next call can report it.
    fn instantiate(
        code: &Arc<Self>,
        limits: CallLimits,
        log_level: LogLevel,
        redactor: &Arc<crate::capabilities::secrets::Redactor>,
    ) -> Result<(Live, StartupCost)> {
        let mut store = new_store(
            code::engine(),
            &code.grants,
            None,
            limits,
            log_level,
            redactor,
        )?;
        let (instance, startup) = start_up(&mut store, limits, |store| {
            catch_panic("instantiating", || code.pre.instantiate(&mut *store))?
                .map_err(|err| start_error(store, err))
        })?;
        let live = Live {
            store,
            instance,
            functions: vec![None; code.functions.len()],
        };
        Ok((live, startup))
    }
}

impl ComponentInstance {
    /// Runs action `action` on `input` and hands its output, copied out of the component's
    /// memory, to `read`.
    pub(crate) fn call<R>(
        &mut self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        lock: Option<&mut dyn InterpreterLock>,
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> RawOutcome<R> {
        let found = self.code.functions.get(action);
        let Some(func) = found.and_then(|(position, index)| self.live.function(*position, index))
        else {
            return RawOutcome::failed(Error::new(
                ErrorKind::ActionNotFound,
                format!("the component exports no function {action:?}"),
            ));
        };
        let metered = MeteredCall {
            limits: self.limits,
            fuel_rates: &self.fuel_rates,
            action,
            first_call: self.startup.is_some(),
        };
        metered.run(&mut self.live.store, input, options, lock, |store| {
            run_action(store, func, action, input, read)
        })
    }
}

/// An action's type as the host calls it: the input lowered from a host slice, the output
/// or message copied out. (Not views into the component's memory: wasmtime runs the
/// component's post-return function, which frees them, before the call returns, and a
/// freed block's first bytes hold its allocator's bookkeeping.)
type ActionResult = (std::result::Result<Vec<u8>, String>,);

/// Calls `func` on `input` and collects its output or error.
fn run_action<R>(
    store: &mut Store<HostState>,
    func: Func,
    action: &str,
    input: &[u8],
    read: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let typed = func.typed::<(&[u8],), ActionResult>(&*store).map_err(|_| {
        Error::new(
            ErrorKind::ActionNotFound,
            format!(
                "the component's {action:?} is not an action: actions are \
                     func(input: list<u8>) -> result<list<u8>, string>"
            ),
        )
    })?;
    let (returned,) = typed
        .call(&mut *store, (input,))
        .map_err(super::call_error)?;
    match returned {
        Ok(output) => read(&output),
        Err(message) => Err(Error::new(
            ErrorKind::PluginError { return_code: 1 },
            message,
        )),
    }
}
