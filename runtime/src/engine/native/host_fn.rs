//! The native engine's side of host functions: each registered function linked as a
//! wasmtime import that moves values in and out of the shared [`HostFunction::invoke`].

use std::sync::Arc;

use wasmtime::{Caller, FuncType, Linker};

use super::kernel;
use super::state::{HostFailure, HostState};
use crate::capabilities::host_fn::{
    CallFrame, HostFnError, HostFunction, HostFunctions, KernelMemory, Shape, WasmValue,
};
use crate::engine::{wasm_value, wasmtime_type, wasmtime_val};

/// Links every function in `functions` into `linker`.
pub(super) fn link(
    linker: &mut Linker<HostState>,
    functions: &Arc<HostFunctions>,
) -> wasmtime::Result<()> {
    for function in &functions.functions {
        let (namespace, name) = (function.namespace(), function.name());
        let lent = (functions.clone(), function.clone());
        match &function.shape {
            // The shape every PDK uses gets a typed import: no value vectors per call.
            Shape::Bytes(_) => {
                linker.func_wrap(
                    namespace,
                    name,
                    move |mut cx: Caller<'_, HostState>, offset: i64| -> wasmtime::Result<i64> {
                        let mut results = [WasmValue::I64(0)];
                        invoke(&mut cx, &lent, &[WasmValue::I64(offset)], &mut results)?;
                        Ok(match results[0] {
                            WasmValue::I64(offset) => offset,
                            _ => 0,
                        })
                    },
                )?;
            }
            Shape::General {
                params, results, ..
            }
            | Shape::Builtin {
                params, results, ..
            } => {
                let ty = FuncType::new(
                    linker.engine(),
                    params.iter().map(wasmtime_type),
                    results.iter().map(wasmtime_type),
                );
                let result_types = results.clone();
                linker.func_new(namespace, name, ty, move |mut cx, args, out| {
                    let args: Vec<WasmValue> = args.iter().map(wasm_value).collect();
                    let mut results: Vec<WasmValue> =
                        result_types.iter().map(|ty| WasmValue::zero(*ty)).collect();
                    invoke(&mut cx, &lent, &args, &mut results)?;
                    for (slot, value) in out.iter_mut().zip(results) {
                        *slot = wasmtime_val(value);
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

/// Runs one host function for the call in progress on the calling instance.
fn invoke(
    cx: &mut Caller<'_, HostState>,
    (pack, function): &(Arc<HostFunctions>, HostFunction),
    args: &[WasmValue],
    results: &mut [WasmValue],
) -> wasmtime::Result<()> {
    // The context is lent out for the handler's duration, so the handler may have the
    // store's kernel memory mutably at the same time.
    let state = cx.data_mut();
    let context = std::mem::take(&mut state.call.context);
    let mut tally = state.call.host;
    let deadline = state.call.deadline;
    let audit = state.audit.clone();
    let in_call = state.call.started.is_some();
    let outcome = pack.invoke(
        function,
        &context,
        &mut StoreKernel(cx),
        args,
        results,
        CallFrame {
            deadline,
            tally: &mut tally,
            audit: &audit,
            in_call,
        },
    );
    let state = cx.data_mut();
    state.call.context = context;
    state.call.host = tally;
    outcome.map_err(HostFailure::error)
}

/// The calling instance's kernel memory, as host functions see it.
struct StoreKernel<'s, 'c>(&'s mut Caller<'c, HostState>);

/// Offset 0 is the empty block, as in every Extism kernel: what `alloc(0)` returns, and
/// what a host function returns for empty output.
impl KernelMemory for StoreKernel<'_, '_> {
    fn block(&mut self, offset: u64) -> Option<&[u8]> {
        if offset == 0 {
            return Some(&[]);
        }
        kernel::block(&*self.0, offset)
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64, HostFnError> {
        if data.is_empty() {
            return Ok(0);
        }
        match kernel::alloc_bytes(&mut *self.0, data) {
            0 => Err(HostFnError::new(format!(
                "{} bytes do not fit in the pack's memory limit",
                data.len()
            ))),
            offset => Ok(offset),
        }
    }
}
