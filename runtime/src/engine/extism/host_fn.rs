//! The extism engine's side of host functions: each registered function as an extism
//! `Function` that moves values in and out of the shared [`HostFunction::invoke`].

use std::sync::Arc;
use std::time::Instant;

use extism::{CurrentPlugin, Function, UserData, ValType};

use super::memory::MemoryMeter;
use super::{kernel, LinkGate};
use crate::capabilities::audit::AuditTrail;
use crate::capabilities::host_fn::{
    CallFrame, HostCall, HostFnError, HostFunctions, KernelMemory, WasmValue,
};
use crate::engine::{wasm_value, wasmtime_type, wasmtime_val};
use crate::error::{Error, ErrorKind};

/// What host functions need to know about the call in progress on one instance.
#[derive(Default)]
pub(crate) struct HostCallState {
    context: serde_json::Value,
    deadline: Option<Instant>,
    pub(crate) tally: crate::capabilities::host_fn::HostTally,
    /// The instance's audit trail, shared with its HTTP state.
    audit: AuditTrail,
}

impl HostCallState {
    /// State for an instance whose host functions record into `audit`.
    pub(crate) fn recording_into(audit: AuditTrail) -> Self {
        HostCallState {
            audit,
            ..Default::default()
        }
    }
}

/// Starts a call: its context and deadline, and a fresh count.
pub(crate) fn begin_call(
    state: &UserData<HostCallState>,
    context: &serde_json::Value,
    deadline: Instant,
) {
    if let Ok(shared) = state.get() {
        if let Ok(mut state) = shared.lock() {
            state.context = context.clone();
            state.deadline = Some(deadline);
            state.tally = Default::default();
        }
    }
}

/// Ends a call: returns its count and forgets its caller, so that start-up code the
/// instance runs before its next call (a renewal) acts for no caller and no tenant.
pub(crate) fn end_call(state: &UserData<HostCallState>) -> crate::capabilities::host_fn::HostTally {
    let Some(shared) = state.get().ok() else {
        return Default::default();
    };
    let Ok(mut state) = shared.lock() else {
        return Default::default();
    };
    state.context = serde_json::Value::Null;
    state.deadline = None;
    std::mem::take(&mut state.tally)
}

/// One extism `Function` per registered host function, bound to one instance's state.
pub(crate) fn functions(
    lent: &Arc<HostFunctions>,
    state: &UserData<HostCallState>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    lent.functions
        .iter()
        .map(|function| {
            let (params, results) = function.signature();
            let result_types = results.clone();
            let lent = lent.clone();
            let function_for_call = function.clone();
            let gate = gate.clone();
            let meter = meter.clone();
            // Not `gate.function`: a handler may run at start-up (packhost's own refuse there,
            // with their own message), and only its reach into memory must wait for linking.
            Function::new(
                function.name(),
                params.iter().map(|ty| ValType::from(wasmtime_type(ty))),
                results.iter().map(|ty| ValType::from(wasmtime_type(ty))),
                state.clone(),
                move |plugin, inputs, outputs, state| {
                    let args: Vec<WasmValue> = inputs.iter().map(wasm_value).collect();
                    let mut results: Vec<WasmValue> =
                        result_types.iter().map(|ty| WasmValue::zero(*ty)).collect();
                    let shared = state.get()?;
                    // The state stays unlocked while the handler runs: a handler that calls
                    // another action of the same pack uses another instance, but must not
                    // find anything of this one held.
                    let (context, deadline, mut tally, audit) = {
                        let mut state = shared.lock().map_err(|_| poisoned())?;
                        (
                            std::mem::take(&mut state.context),
                            state.deadline,
                            state.tally,
                            state.audit.clone(),
                        )
                    };
                    let outcome = function_for_call.invoke(
                        &mut HostCall {
                            pack_name: &lent.pack_name,
                            pack_id: &lent.pack_id,
                            function: function_for_call.name(),
                            context: &context,
                            memory: &mut PluginMemory {
                                plugin,
                                meter: &meter,
                                linking: gate.is_linking(),
                            },
                        },
                        &args,
                        &mut results,
                        CallFrame {
                            deadline,
                            tally: &mut tally,
                            audit: &audit,
                            // Cleared when a call ends, so start-up code runs with none.
                            in_call: deadline.is_some(),
                        },
                    );
                    {
                        let mut state = shared.lock().map_err(|_| poisoned())?;
                        state.context = context;
                        state.tally = tally;
                    }
                    outcome.map_err(extism::Error::new)?;
                    for (slot, value) in outputs.iter_mut().zip(results) {
                        *slot = wasmtime_val(value);
                    }
                    Ok(())
                },
            )
            .with_namespace(function.namespace())
        })
        .collect()
}

fn poisoned() -> extism::Error {
    extism::Error::new(Error::new(
        ErrorKind::Internal,
        "host call state lock poisoned",
    ))
}

/// extism's kernel memory, as host functions see it: out of reach while extism links the
/// plugin (see [`LinkGate`]).
struct PluginMemory<'a> {
    plugin: &'a mut CurrentPlugin,
    meter: &'a MemoryMeter,
    linking: bool,
}

impl KernelMemory for PluginMemory<'_> {
    fn block(&mut self, offset: u64) -> Option<&[u8]> {
        if self.linking {
            return None;
        }
        kernel::block(self.plugin, self.meter, offset)
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64, HostFnError> {
        if self.linking {
            return Err(HostFnError::new(LinkGate::REFUSAL));
        }
        let block = kernel::new_block(self.plugin, self.meter, data).map_err(|err| match err
            .downcast_ref::<Error>()
        {
            Some(broken) => HostFnError::new(broken.message()),
            None => HostFnError::new(format!(
                "{} bytes do not fit in the pack's memory limit",
                data.len()
            )),
        })?;
        Ok(block.i64().unwrap_or(0) as u64)
    }
}
