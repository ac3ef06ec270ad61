//! The `extism:host/env` functions, implemented on the host: memory, input, output, error,
//! config, vars, logging and HTTP, as typed wasmtime host functions over [`HostState`].
//!
//! The names and signatures are [`EXTISM_ENV_FUNCTIONS`](crate::module::EXTISM_ENV_FUNCTIONS);
//! a test checks that this linker defines exactly that table.

use wasmtime::{Caller, Linker};

use super::http;
use super::state::{HostFailure, HostState};
use crate::engine::LOG_IMPORTS;
use crate::module::EXTISM_ENV;

type Cx<'a> = Caller<'a, HostState>;

/// Defines every `extism:host/env` function in `linker`.
pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_memory(linker)?;
    link_io(linker)?;
    link_services(linker)?;
    Ok(())
}

fn out_of_range(what: &str, offset: i64) -> wasmtime::Error {
    HostFailure::trap(format!("{what} out of bounds of kernel memory: {offset}"))
}

fn link_memory(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        EXTISM_ENV,
        "alloc",
        |mut cx: Cx, len: i64| -> wasmtime::Result<i64> {
            // A negative size is the pack misusing the ABI, not a huge request to refuse.
            let len = u64::try_from(len)
                .map_err(|_| HostFailure::trap(format!("alloc of a negative size: {len}")))?;
            Ok(cx.data_mut().alloc(len) as i64)
        },
    )?;
    linker.func_wrap(EXTISM_ENV, "free", |mut cx: Cx, offset: i64| {
        cx.data_mut().free_block(offset as u64);
    })?;
    for name in ["length", "length_unsafe"] {
        linker.func_wrap(EXTISM_ENV, name, |cx: Cx, offset: i64| {
            cx.data().kernel.length(offset as u64) as i64
        })?;
    }
    linker.func_wrap(EXTISM_ENV, "load_u8", |cx: Cx, offset: i64| {
        cx.data()
            .kernel
            .load_u8(offset as u64)
            .map(i32::from)
            .ok_or_else(|| out_of_range("load_u8", offset))
    })?;
    linker.func_wrap(EXTISM_ENV, "load_u64", |cx: Cx, offset: i64| {
        cx.data()
            .kernel
            .load_u64(offset as u64)
            .map(|word| word as i64)
            .ok_or_else(|| out_of_range("load_u64", offset))
    })?;
    linker.func_wrap(
        EXTISM_ENV,
        "store_u8",
        |mut cx: Cx, offset: i64, byte: i32| {
            cx.data_mut()
                .kernel
                .store_u8(offset as u64, byte as u8)
                .ok_or_else(|| out_of_range("store_u8", offset))
        },
    )?;
    linker.func_wrap(
        EXTISM_ENV,
        "store_u64",
        |mut cx: Cx, offset: i64, word: i64| {
            cx.data_mut()
                .kernel
                .store_u64(offset as u64, word as u64)
                .ok_or_else(|| out_of_range("store_u64", offset))
        },
    )?;
    linker.func_wrap(EXTISM_ENV, "memory_bytes", |cx: Cx| {
        cx.data().kernel.size() as i64
    })?;
    Ok(())
}

fn link_io(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(EXTISM_ENV, "input_length", |cx: Cx| {
        cx.data().call.input.len() as i64
    })?;
    linker.func_wrap(EXTISM_ENV, "input_load_u8", |cx: Cx, index: i64| {
        cx.data()
            .call
            .input
            .bytes()
            .get(index as usize)
            .map(|byte| i32::from(*byte))
            .ok_or_else(|| HostFailure::trap(format!("input_load_u8 past the input: {index}")))
    })?;
    linker.func_wrap(EXTISM_ENV, "input_load_u64", |cx: Cx, index: i64| {
        let input = cx.data().call.input.bytes();
        let start = index as usize;
        input
            .get(start..start.saturating_add(8))
            .and_then(|word| word.try_into().ok())
            .map(|word| u64::from_le_bytes(word) as i64)
            .ok_or_else(|| HostFailure::trap(format!("input_load_u64 past the input: {index}")))
    })?;
    linker.func_wrap(EXTISM_ENV, "input_offset", |mut cx: Cx| {
        let state = cx.data_mut();
        if let Some(offset) = state.call.input_offset {
            return offset as i64;
        }
        // Some PDKs read the input as a kernel block instead of through input_load_*; the
        // copy is made only for them, once per call.
        let input = state.call.input.bytes().to_vec();
        let offset = state.alloc_bytes(&input);
        state.call.input_offset = Some(offset);
        offset as i64
    })?;
    linker.func_wrap(
        EXTISM_ENV,
        "output_set",
        |mut cx: Cx, offset: i64, len: i64| {
            let call = &mut cx.data_mut().call;
            call.output_offset = offset as u64;
            call.output_length = len as u64;
        },
    )?;
    linker.func_wrap(EXTISM_ENV, "output_length", |cx: Cx| {
        cx.data().call.output_length as i64
    })?;
    linker.func_wrap(EXTISM_ENV, "output_offset", |cx: Cx| {
        cx.data().call.output_offset as i64
    })?;
    linker.func_wrap(EXTISM_ENV, "error_set", |mut cx: Cx, offset: i64| {
        cx.data_mut().call.error_offset = offset as u64;
    })?;
    linker.func_wrap(EXTISM_ENV, "error_get", |cx: Cx| {
        cx.data().call.error_offset as i64
    })?;
    Ok(())
}

fn link_services(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(EXTISM_ENV, "config_get", |mut cx: Cx, key: i64| {
        let state = cx.data_mut();
        let key = state.block_text(key as u64, "config key")?;
        let grants = state.grants.clone();
        Ok(match grants.config.get(&key) {
            Some(value) => state.alloc_bytes(value.as_bytes()) as i64,
            None => 0,
        })
    })?;
    linker.func_wrap(EXTISM_ENV, "var_get", |mut cx: Cx, key: i64| {
        let key_offset = key as u64;
        let state = cx.data_mut();
        let key = state.block_text(key as u64, "var key")?;
        // The pack hands the key's block over, as Extism's hosts take it.
        state.free_block(key_offset);
        let Some(value) = state.vars.get(&key) else {
            return Ok(0);
        };
        let value = value.to_vec();
        Ok(state.alloc_bytes(&value) as i64)
    })?;
    linker.func_wrap(EXTISM_ENV, "var_set", |mut cx: Cx, key: i64, value: i64| {
        let (key_offset, value_offset) = (key as u64, value as u64);
        let state = cx.data_mut();
        let key = state.block_text(key as u64, "var key")?;
        let value = match value {
            0 => None,
            value => Some(
                state
                    .kernel
                    .block(value as u64)
                    .ok_or_else(|| {
                        HostFailure::trap(format!("var value is not a valid block: {value}"))
                    })?
                    .to_vec(),
            ),
        };
        // The pack hands both blocks over, as Extism's hosts take them.
        state.free_block(key_offset);
        if value_offset != 0 {
            state.free_block(value_offset);
        }
        state.set_var(key, value)
    })?;
    for (name, level) in LOG_IMPORTS {
        linker.func_wrap(EXTISM_ENV, name, move |mut cx: Cx, offset: i64| {
            // The pack hands the message's block over to the host, which frees it.
            cx.data_mut().record_log(level, offset as u64);
        })?;
    }
    linker.func_wrap(EXTISM_ENV, "get_log_level", |cx: Cx| {
        cx.data().logs.level_number()
    })?;
    linker.func_wrap(
        EXTISM_ENV,
        "http_request",
        |mut cx: Cx, request: i64, body: i64| http::request(cx.data_mut(), request, body),
    )?;
    linker.func_wrap(EXTISM_ENV, "http_status_code", |cx: Cx| {
        cx.data().call.http_status
    })?;
    linker.func_wrap(EXTISM_ENV, "http_headers", |mut cx: Cx| {
        let state = cx.data_mut();
        match state.call.http_headers.take() {
            Some(json) => {
                let offset = state.alloc_bytes(&json);
                state.call.http_headers = Some(json);
                offset as i64
            }
            None => 0,
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use wasmtime::{ExternType, Store, ValType};

    use super::*;
    use crate::engine::native::code;
    use crate::engine::native::state::Grants;
    use crate::engine::LogBuffer;
    use crate::module::EXTISM_ENV_FUNCTIONS;
    use crate::options::LogLevel;

    fn type_name(ty: &ValType) -> &'static str {
        match ty {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            _ => "other",
        }
    }

    #[test]
    fn the_linker_defines_exactly_the_abi_table() {
        let mut linker = Linker::new(code::engine());
        link(&mut linker).unwrap();
        let grants = Grants {
            config: Default::default(),
            http: std::sync::Arc::new(crate::capabilities::http::HttpGrant::new(
                Vec::new(),
                &Default::default(),
            )),
        };
        let state =
            HostState::new(0, 0, grants.into(), LogBuffer::new(LogLevel::Off), None).unwrap();
        let mut store = Store::new(code::engine(), state);
        let items: Vec<_> = linker
            .iter(&mut store)
            .map(|(module, name, item)| (module.to_string(), name.to_string(), item))
            .collect();
        let mut defined: Vec<(String, Vec<&str>, Vec<&str>)> = items
            .into_iter()
            .map(|(module, name, item)| {
                assert_eq!(module, EXTISM_ENV);
                let ExternType::Func(func) = item.ty(&store) else {
                    panic!("{name} is not a function");
                };
                (
                    name.to_string(),
                    func.params().map(|ty| type_name(&ty)).collect(),
                    func.results().map(|ty| type_name(&ty)).collect(),
                )
            })
            .collect();
        defined.sort();
        let mut table: Vec<(String, Vec<&str>, Vec<&str>)> = EXTISM_ENV_FUNCTIONS
            .iter()
            .map(|f| (f.name.to_string(), f.params.to_vec(), f.results.to_vec()))
            .collect();
        table.sort();
        assert_eq!(defined, table);
    }
}
