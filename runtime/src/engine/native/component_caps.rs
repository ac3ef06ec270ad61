//! The capabilities packhost lends component packs beside logging and config: key-value
//! storage (`packhost:pack/kv`), secrets (`packhost:pack/secrets`), HTTP
//! (`packhost:pack/http`) and the host's own functions (`packhost:pack/functions`),
//! `wit/component.wit`.
//!
//! They are the very functions modules import from `packhost:host/kv`,
//! `packhost:host/secrets` and `extism:host/user`, and the HTTP grant behind modules'
//! `http_request` (`capabilities/`), so the grant check, caps, quotas, audit entry and usage
//! count stay in one place. The kv, secrets and host functions take and return blocks of the Extism
//! kernel, which a component has none of: each call here puts its arguments, lifted by the
//! canonical ABI, in a small block table of its own, and lowers what comes back into the
//! component's memory through the component's own allocator (so it counts as the
//! component's memory).

use std::sync::Arc;

use wasmtime::component::{ComponentType, Linker, LinkerInstance, Lower, WasmStr};
use wasmtime::StoreContextMut;

use super::state::{HostFailure, HostState};
use crate::capabilities::host_fn::{
    CallFrame, HostFnError, HostFunction, HostFunctions, KernelMemory, WasmValue,
};
use crate::capabilities::kv::KV_NAMESPACE;
use crate::capabilities::secrets::SECRETS_NAMESPACE;
use crate::module::{COMPONENT_FUNCTIONS, COMPONENT_HTTP, COMPONENT_KV, COMPONENT_SECRETS};

/// The kernel functions' "no entry" sentinel, where a block offset or `-1` is expected.
const NONE: i64 = -1;

/// Defines `packhost:pack/http` in `linker`, and `packhost:pack/kv` and
/// `packhost:pack/secrets` when the pack imports them (then `functions` holds their
/// functions, granted or refusing every call).
pub(super) fn link(
    linker: &mut Linker<HostState>,
    functions: &Arc<HostFunctions>,
) -> wasmtime::Result<()> {
    let find = |namespace: &str, name: &str| {
        functions
            .functions
            .iter()
            .find(|function| function.namespace() == namespace && function.name() == name)
            .map(|function| Lent(functions.clone(), function.clone()))
    };
    if let (Some(get), Some(set), Some(delete), Some(list), Some(compare_and_set)) = (
        find(KV_NAMESPACE, "get"),
        find(KV_NAMESPACE, "set"),
        find(KV_NAMESPACE, "delete"),
        find(KV_NAMESPACE, "list"),
        find(KV_NAMESPACE, "compare_and_set"),
    ) {
        link_kv(
            &mut linker.instance(COMPONENT_KV)?,
            [get, set, delete, list, compare_and_set],
        )?;
    }
    linker
        .instance(COMPONENT_HTTP)?
        .func_wrap("request", request)?;
    let lent = functions.clone();
    linker.instance(COMPONENT_FUNCTIONS)?.func_wrap(
        "call",
        move |mut store: StoreContextMut<'_, HostState>, (name, input): (WasmStr, Vec<u8>)| {
            // The name is compared where it lies in the component's memory, never copied.
            let function = {
                let name = name.to_str(&store)?;
                lent.callable_by_name(&name, &store.data().audit)
            }
            .map_err(HostFailure::error)?;
            let mut blocks = CallBlocks::new(&store);
            let args = [blocks.put(input)];
            let mut results = [WasmValue::I64(0)];
            invoke(
                &lent,
                function,
                &mut store,
                &mut blocks,
                &args,
                &mut results,
            )?;
            Ok((blocks.take(&results[0]),))
        },
    )?;
    if let Some(get) = find(SECRETS_NAMESPACE, "get") {
        linker.instance(COMPONENT_SECRETS)?.func_wrap(
            "get",
            move |mut store: StoreContextMut<'_, HostState>, (name,): (String,)| {
                let mut blocks = CallBlocks::new(&store);
                let name = blocks.put(name.into_bytes());
                let mut results = [WasmValue::I64(0)];
                get.invoke(&mut store, &mut blocks, &[name], &mut results)?;
                let secret = blocks.take(&results[0]);
                // Secrets are text in the host's options, so this holds.
                Ok((String::from_utf8(secret).unwrap_or_default(),))
            },
        )?;
    }
    Ok(())
}

/// Defines the five functions of `packhost:pack/kv` on the kernel's `get`, `set`, `delete`,
/// `list` and `compare_and_set`.
fn link_kv(
    kv: &mut LinkerInstance<'_, HostState>,
    [get, set, delete, list, compare_and_set]: [Lent; 5],
) -> wasmtime::Result<()> {
    kv.func_wrap(
        "get",
        move |mut store: StoreContextMut<'_, HostState>, (key,): (String,)| {
            let mut blocks = CallBlocks::new(&store);
            let key = blocks.put(key.into_bytes());
            let mut results = [WasmValue::I64(0)];
            get.invoke(&mut store, &mut blocks, &[key], &mut results)?;
            let found = !matches!(results[0], WasmValue::I64(NONE));
            Ok((found.then(|| blocks.take(&results[0])),))
        },
    )?;
    kv.func_wrap(
        "set",
        move |mut store: StoreContextMut<'_, HostState>,
              (key, value, ttl_ms): (String, Vec<u8>, i64)| {
            let mut blocks = CallBlocks::new(&store);
            let args = [
                blocks.put(key.into_bytes()),
                blocks.put(value),
                WasmValue::I64(ttl_ms),
            ];
            set.invoke(&mut store, &mut blocks, &args, &mut [])
        },
    )?;
    kv.func_wrap(
        "delete",
        move |mut store: StoreContextMut<'_, HostState>, (key,): (String,)| {
            let mut blocks = CallBlocks::new(&store);
            let key = blocks.put(key.into_bytes());
            let mut results = [WasmValue::I32(0)];
            delete.invoke(&mut store, &mut blocks, &[key], &mut results)?;
            Ok((!matches!(results[0], WasmValue::I32(0)),))
        },
    )?;
    kv.func_wrap(
        "list",
        move |mut store: StoreContextMut<'_, HostState>,
              (prefix, after): (String, Option<String>)| {
            let mut blocks = CallBlocks::new(&store);
            let args = [
                blocks.put(prefix.into_bytes()),
                blocks.put_option(after.map(String::into_bytes)),
            ];
            let mut results = [WasmValue::I64(0)];
            list.invoke(&mut store, &mut blocks, &args, &mut results)?;
            // The kernel function answers a JSON array of the keys, which it wrote itself.
            let keys: Vec<String> = serde_json::from_slice(&blocks.take(&results[0]))?;
            Ok((keys,))
        },
    )?;
    kv.func_wrap(
        "compare-and-set",
        move |mut store: StoreContextMut<'_, HostState>,
              (key, expected, value, ttl_ms): (String, Option<Vec<u8>>, Option<Vec<u8>>, i64)| {
            let mut blocks = CallBlocks::new(&store);
            let args = [
                blocks.put(key.into_bytes()),
                blocks.put_option(expected),
                blocks.put_option(value),
                WasmValue::I64(ttl_ms),
            ];
            let mut results = [WasmValue::I32(0)];
            compare_and_set.invoke(&mut store, &mut blocks, &args, &mut results)?;
            Ok((!matches!(results[0], WasmValue::I32(0)),))
        },
    )?;
    Ok(())
}

/// `packhost:pack/http`'s `response`, as the canonical ABI lowers it.
#[derive(ComponentType, Lower)]
#[component(record)]
struct WitResponse {
    status: u16,
    headers: Option<String>,
    body: Vec<u8>,
}

/// `packhost:pack/http`'s `request`: the pack's grant runs it, as it runs a module's
/// `http_request`; the body is read no further than the memory limit leaves room for, since
/// the component takes all of it into its memory next.
fn request(
    mut store: StoreContextMut<'_, HostState>,
    (request, body): (String, Vec<u8>),
) -> wasmtime::Result<(WitResponse,)> {
    let response = super::http::perform(store.data_mut(), request.as_bytes(), body)?;
    Ok((WitResponse {
        status: response.status,
        // The grant writes the headers as JSON itself.
        headers: response
            .headers_json
            .and_then(|json| String::from_utf8(json).ok()),
        body: response.body,
    },))
}

/// One kernel function as a component calls it, with the pack's functions it belongs to.
struct Lent(Arc<HostFunctions>, HostFunction);

impl Lent {
    /// Runs the function for the call in progress on `args`, its blocks in `blocks`; a
    /// refusal or failure ends the component's call with its code, as it ends a module's.
    fn invoke(
        &self,
        store: &mut StoreContextMut<'_, HostState>,
        blocks: &mut CallBlocks,
        args: &[WasmValue],
        results: &mut [WasmValue],
    ) -> wasmtime::Result<()> {
        let Lent(pack, function) = self;
        invoke(pack, function, store, blocks, args, results)
    }
}

/// Runs `function`, one of `pack`'s, for the component call in progress in `store` (its
/// context, deadline, host-call tally and audit trail), on `args` with its blocks in
/// `blocks`; a refusal or failure ends the call with its code.
fn invoke(
    pack: &HostFunctions,
    function: &HostFunction,
    store: &mut StoreContextMut<'_, HostState>,
    blocks: &mut CallBlocks,
    args: &[WasmValue],
    results: &mut [WasmValue],
) -> wasmtime::Result<()> {
    let state = store.data_mut();
    let in_call = state.call.started.is_some();
    let frame = CallFrame {
        deadline: state.call.deadline,
        tally: &mut state.call.host,
        audit: &state.audit,
        in_call,
    };
    pack.invoke(function, &state.call.context, blocks, args, results, frame)
        .map_err(HostFailure::error)
}

/// The blocks of one capability call: its arguments, then what the function hands back.
/// Offset `n` is the `n`th block; 0 is the empty block, as in every Extism kernel.
struct CallBlocks {
    blocks: Vec<Vec<u8>>,
    /// Bytes the function may still hand back: what the pack's memory limit leaves, since
    /// the component must take all of it into its own memory next.
    room: u64,
}

impl CallBlocks {
    fn new(store: &StoreContextMut<'_, HostState>) -> Self {
        CallBlocks {
            blocks: Vec::new(),
            room: store.data().limiter.remaining(),
        }
    }

    /// Adds an argument block and returns its offset as the argument.
    fn put(&mut self, bytes: Vec<u8>) -> WasmValue {
        self.blocks.push(bytes);
        WasmValue::I64(self.blocks.len() as i64)
    }

    /// As `put`, or the "no entry" sentinel for `None`.
    fn put_option(&mut self, bytes: Option<Vec<u8>>) -> WasmValue {
        match bytes {
            Some(bytes) => self.put(bytes),
            None => WasmValue::I64(NONE),
        }
    }

    /// The bytes of the block a function returned as `result` (none for the empty block).
    fn take(&mut self, result: &WasmValue) -> Vec<u8> {
        let WasmValue::I64(offset) = *result else {
            return Vec::new();
        };
        usize::try_from(offset)
            .ok()
            .and_then(|offset| offset.checked_sub(1))
            .and_then(|index| self.blocks.get_mut(index))
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl KernelMemory for CallBlocks {
    fn block(&mut self, offset: u64) -> Option<&[u8]> {
        if offset == 0 {
            return Some(&[]);
        }
        let index = usize::try_from(offset).ok()?.checked_sub(1)?;
        self.blocks.get(index).map(Vec::as_slice)
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<u64, HostFnError> {
        if data.len() as u64 > self.room {
            return Err(HostFnError::new(format!(
                "{} bytes do not fit in the pack's memory limit",
                data.len()
            )));
        }
        self.room -= data.len() as u64;
        self.blocks.push(data.to_vec());
        Ok(self.blocks.len() as u64)
    }
}
