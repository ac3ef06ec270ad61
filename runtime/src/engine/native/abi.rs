//! The `extism:host/env` functions, implemented on the host: memory, input, output, error,
//! config, vars, logging and HTTP, as typed wasmtime host functions over [`HostState`].
//!
//! The names and signatures are [`EXTISM_ENV_FUNCTIONS`](crate::module::EXTISM_ENV_FUNCTIONS);
//! a test checks that this linker defines exactly that table.

use wasmtime::{Caller, Linker};

use super::http;
use super::kernel;
use super::state::{block_text, record_log, HostFailure, HostState};
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
            Ok(kernel::alloc(&mut cx, len) as i64)
        },
    )?;
    linker.func_wrap(EXTISM_ENV, "free", |mut cx: Cx, offset: i64| {
        kernel::free(&mut cx, offset as u64);
    })?;
    for name in ["length", "length_unsafe"] {
        linker.func_wrap(EXTISM_ENV, name, |cx: Cx, offset: i64| {
            cx.data().kernel.length(offset as u64) as i64
        })?;
    }
    // The pack's own copies of load_* and store_* (`kernel_wasm.rs`) serve every offset
    // inside the bytes in use; these serve the rest, which is mostly refusing it.
    linker.func_wrap(EXTISM_ENV, "load_u8", |cx: Cx, offset: i64| {
        kernel::bytes_at(&cx, offset as u64, 1)
            .map(|byte| i32::from(byte[0]))
            .ok_or_else(|| out_of_range("load_u8", offset))
    })?;
    linker.func_wrap(EXTISM_ENV, "load_u64", |cx: Cx, offset: i64| {
        kernel::bytes_at(&cx, offset as u64, 8)
            .and_then(|word| word.try_into().ok())
            .map(|word| u64::from_le_bytes(word) as i64)
            .ok_or_else(|| out_of_range("load_u64", offset))
    })?;
    linker.func_wrap(
        EXTISM_ENV,
        "store_u8",
        |mut cx: Cx, offset: i64, byte: i32| {
            kernel::write(&mut cx, offset as u64, &[byte as u8])
                .ok_or_else(|| out_of_range("store_u8", offset))
        },
    )?;
    linker.func_wrap(
        EXTISM_ENV,
        "store_u64",
        |mut cx: Cx, offset: i64, word: i64| {
            kernel::write(&mut cx, offset as u64, &word.to_le_bytes())
                .ok_or_else(|| out_of_range("store_u64", offset))
        },
    )?;
    linker.func_wrap(EXTISM_ENV, "memory_bytes", |cx: Cx| {
        cx.data().kernel.size() as i64
    })?;
    Ok(())
}

/// Reads `width` bytes of the input at `index`, for an `input_load_*` the pack's own copy
/// sent to the host: the first of a call, which copies the input into kernel memory so
/// that the rest stay in wasm, or one past the input.
fn input_bytes<const WIDTH: usize>(
    cx: &mut Cx,
    index: i64,
    name: &str,
) -> wasmtime::Result<[u8; WIDTH]> {
    kernel::input_block(&mut *cx);
    let input = cx.data().call.input.bytes();
    let start = index as usize;
    input
        .get(start..start.saturating_add(WIDTH))
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| HostFailure::trap(format!("{name} past the input: {index}")))
}

fn link_io(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(EXTISM_ENV, "input_length", |cx: Cx| {
        cx.data().call.input.len() as i64
    })?;
    linker.func_wrap(EXTISM_ENV, "input_load_u8", |mut cx: Cx, index: i64| {
        input_bytes::<1>(&mut cx, index, "input_load_u8").map(|[byte]| i32::from(byte))
    })?;
    linker.func_wrap(EXTISM_ENV, "input_load_u64", |mut cx: Cx, index: i64| {
        input_bytes::<8>(&mut cx, index, "input_load_u64")
            .map(|word| u64::from_le_bytes(word) as i64)
    })?;
    linker.func_wrap(EXTISM_ENV, "input_offset", |mut cx: Cx| {
        // Some PDKs read the input as a kernel block instead of through input_load_*; the
        // copy is made once per call, and the same block serves input_load_*.
        kernel::input_block(&mut cx) as i64
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
        let key_offset = key as u64;
        let key = block_text(&cx, key_offset, "config key")?;
        // The pack hands the key's block over, as Extism's hosts take it (the extism engine
        // too), so a PDK that frees it after the call frees it twice on either engine.
        kernel::free(&mut cx, key_offset);
        let grants = cx.data().grants.clone();
        Ok(match grants.config.get(&key) {
            Some(value) => kernel::alloc_bytes(&mut cx, value.as_bytes()) as i64,
            None => 0,
        })
    })?;
    linker.func_wrap(EXTISM_ENV, "var_get", |mut cx: Cx, key: i64| {
        let key_offset = key as u64;
        let key = block_text(&cx, key_offset, "var key")?;
        // The pack hands the key's block over, as Extism's hosts take it.
        kernel::free(&mut cx, key_offset);
        let Some(value) = cx.data().vars.get(&key) else {
            return Ok(0);
        };
        let value = value.to_vec();
        Ok(kernel::alloc_bytes(&mut cx, &value) as i64)
    })?;
    linker.func_wrap(EXTISM_ENV, "var_set", |mut cx: Cx, key: i64, value: i64| {
        let (key_offset, value_offset) = (key as u64, value as u64);
        let key = block_text(&cx, key_offset, "var key")?;
        let value = match value {
            0 => None,
            value => Some(
                kernel::block(&cx, value as u64)
                    .ok_or_else(|| {
                        HostFailure::trap(format!("var value is not a valid block: {value}"))
                    })?
                    .to_vec(),
            ),
        };
        // The pack hands both blocks over, as Extism's hosts take them.
        kernel::free(&mut cx, key_offset);
        if value_offset != 0 {
            kernel::free(&mut cx, value_offset);
        }
        cx.data_mut().set_var(key, value)
    })?;
    for (name, level) in LOG_IMPORTS {
        linker.func_wrap(EXTISM_ENV, name, move |mut cx: Cx, offset: i64| {
            // The pack hands the message's block over to the host, which frees it.
            record_log(&mut cx, level, offset as u64);
        })?;
    }
    linker.func_wrap(EXTISM_ENV, "get_log_level", |cx: Cx| {
        cx.data().logs.level_number()
    })?;
    linker.func_wrap(
        EXTISM_ENV,
        "http_request",
        |mut cx: Cx, request: i64, body: i64| http::request(&mut cx, request, body),
    )?;
    linker.func_wrap(EXTISM_ENV, "http_status_code", |cx: Cx| {
        cx.data().call.http_status
    })?;
    linker.func_wrap(EXTISM_ENV, "http_headers", |mut cx: Cx| {
        match cx.data_mut().call.http_headers.take() {
            Some(json) => {
                let offset = kernel::alloc_bytes(&mut cx, &json);
                cx.data_mut().call.http_headers = Some(json);
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
