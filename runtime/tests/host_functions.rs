//! Host functions from Rust, on both engines: bytes and general shapes, the call's context,
//! failures that end the call without resuming the pack, time limits that include the
//! handler, usage, load-time checks of what a pack imports, and re-entrant calls.

mod support;

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use packhost::{CallOptions, HostFnError, HostFunction, Pack, ValueType, WasmValue};
use serde_json::{json, Value};
use support::{conformance_functions, options, pack_path};

const ENGINES: [&str; 2] = ["native", "extism"];

fn engine(name: &str) -> packhost::PackOptions {
    options(&format!(r#"{{"engine": "{name}"}}"#))
}

fn host_calls(engine_name: &str) -> Pack {
    Pack::load_file_with(
        pack_path("host_calls"),
        engine(engine_name),
        conformance_functions(),
    )
    .expect("host_calls loads with the conformance functions")
}

#[test]
fn bytes_round_trip_through_the_host_and_count_in_usage() {
    for name in ENGINES {
        let pack = host_calls(name);
        let out = pack.call("reverse_via_host", b"hello").unwrap();
        assert_eq!(out.output, b"olleh", "{name}");
        assert_eq!(out.usage.host_calls, 1, "{name}");
        let out = pack.call("reverse_repeatedly", b"abcde").unwrap();
        assert_eq!(out.output, b"edcba", "{name}: five reversals");
        assert_eq!(
            out.usage.host_calls, 5,
            "{name}: counted per call, not per instance"
        );
        let out = pack.call("reverse_via_host", b"").unwrap();
        assert_eq!(out.output, b"", "{name}: the empty block both ways");
    }
}

#[test]
fn json_crosses_as_bytes_and_the_pack_keeps_logging() {
    for name in ENGINES {
        let out = host_calls(name)
            .call("add_via_host", br#"{"a": 2, "b": 40}"#)
            .unwrap();
        let sum: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(sum, json!({"sum": 42}), "{name}");
        assert_eq!(out.logs.len(), 1, "{name}");
    }
}

#[test]
fn context_reaches_the_handler_and_the_usage_record_and_defaults_to_null() {
    for name in ENGINES {
        let pack = host_calls(name);
        let tenant = CallOptions {
            context: json!({"tenant": "acme", "request": 7}),
            ..CallOptions::default()
        };
        let out = pack
            .call_with_options("context_via_host", b"", &tenant)
            .unwrap();
        let seen: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(seen["context"], tenant.context, "{name}");
        assert_eq!(seen["pack"], "host_calls", "{name}");
        assert_eq!(
            out.usage.context, tenant.context,
            "{name}: the usage record names it"
        );
        let err = pack
            .call_with_options("fail_via_host", b"gone", &tenant)
            .unwrap_err();
        assert_eq!(
            err.report().unwrap().usage.context,
            tenant.context,
            "{name}: so does a failed call's"
        );
        let out = pack.call("context_via_host", b"").unwrap();
        assert_eq!(out.usage.context, Value::Null, "{name}");
        let seen: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(
            seen["context"],
            Value::Null,
            "{name}: the next call does not inherit it"
        );
    }
}

#[test]
fn a_failing_handler_ends_the_call_without_resuming_the_pack() {
    for name in ENGINES {
        let pack = host_calls(name);
        let err = pack.call("fail_via_host", b"no such customer").unwrap_err();
        assert_eq!(err.code(), "host_function_error", "{name}: {err}");
        assert!(err.message().contains("no such customer"), "{name}: {err}");
        assert_eq!(
            err.host_function(),
            Some(("fail", Some("LookupError"))),
            "{name}"
        );
        assert_eq!(err.report().unwrap().usage.host_calls, 1, "{name}");
        let out = pack.call("reverse_via_host", b"ok").unwrap();
        assert_eq!(
            out.output, b"ko",
            "{name}: the pack works after the failure"
        );
    }
}

#[test]
fn a_panicking_handler_is_an_error_not_a_crash() {
    let functions = vec![HostFunction::bytes("reverse", |_, _| panic!("handler bug"))];
    for name in ENGINES {
        let pack = load_replacing(name, functions.clone());
        let err = pack.call("reverse_via_host", b"x").unwrap_err();
        assert_eq!(err.code(), "host_function_error", "{name}");
        assert_eq!(
            err.host_function(),
            Some(("reverse", Some("panic"))),
            "{name}"
        );
        assert!(err.message().contains("handler bug"), "{name}: {err}");
    }
}

#[test]
fn a_handler_that_returns_after_the_deadline_ends_the_call_with_timeout() {
    let functions = vec![HostFunction::bytes("reverse", |_, input| {
        std::thread::sleep(Duration::from_millis(150));
        Ok(input.to_vec())
    })];
    for name in ENGINES {
        let pack = Pack::load_file_with(
            pack_path("host_calls"),
            options(&format!(
                r#"{{"engine": "{name}", "limits": {{"timeout_ms": 100}}}}"#
            )),
            with_replaced(functions.clone()),
        )
        .unwrap();
        let err = pack.call("reverse_repeatedly", b"abc").unwrap_err();
        assert_eq!(err.code(), "timeout", "{name}: {err}");
        let usage = &err.report().unwrap().usage;
        assert_eq!(
            usage.host_calls, 1,
            "{name}: no guest code ran after the late return"
        );
        assert!(usage.host_time_us >= 150_000, "{name}: {usage:?}");
    }
}

#[test]
fn an_import_the_host_did_not_register_fails_at_load_naming_it() {
    for name in ENGINES {
        let err = Pack::load_file(pack_path("host_calls"), engine(name)).unwrap_err();
        assert_eq!(err.code(), "invalid_pack", "{name}");
        assert!(err.message().contains("\"reverse\""), "{name}: {err}");
        assert!(err.message().contains("did not register"), "{name}: {err}");

        let wrong_shape = with_replaced(vec![HostFunction::general(
            "reverse",
            [ValueType::I32],
            [ValueType::I32],
            |_, _, _| Ok(()),
        )]);
        let err =
            Pack::load_file_with(pack_path("host_calls"), engine(name), wrong_shape).unwrap_err();
        assert_eq!(err.code(), "invalid_pack", "{name}");
        assert!(err.message().contains("(i64) -> (i64)"), "{name}: {err}");
    }
}

#[test]
fn registrations_that_could_shadow_the_abi_or_each_other_are_refused() {
    let noop = || HostFunction::bytes("reverse", |_, input| Ok(input.to_vec()));
    let err = Pack::load_file_with(
        pack_path("host_calls"),
        engine("native"),
        vec![noop(), noop()],
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_options", "{err}");
    let err = Pack::load_file_with(
        pack_path("host_calls"),
        engine("native"),
        vec![HostFunction::bytes("alloc", |_, _| Ok(Vec::new())).with_namespace("extism:host/env")],
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_options", "{err}");
}

#[test]
fn a_result_too_large_for_the_memory_limit_is_memory_limit() {
    let functions = vec![HostFunction::bytes("reverse", |_, _| Ok(vec![7; 8 << 20]))];
    for name in ENGINES {
        let pack = Pack::load_file_with(
            pack_path("host_calls"),
            options(&format!(
                r#"{{"engine": "{name}", "limits": {{"memory_bytes": 4194304}}}}"#
            )),
            with_replaced(functions.clone()),
        )
        .unwrap();
        let err = pack.call("reverse_via_host", b"x").unwrap_err();
        assert_eq!(err.code(), "memory_limit", "{name}: {err}");
    }
}

#[test]
fn a_handler_may_call_the_same_pack_again() {
    for name in ENGINES {
        let this_pack: Arc<OnceLock<Pack>> = Arc::default();
        let inner = this_pack.clone();
        let functions = with_replaced(vec![HostFunction::bytes("add", move |_, input| {
            // Answers `add` by asking the same pack to reverse the input through the host.
            let pack = inner.get().expect("set before the first call");
            let out = pack
                .call("reverse_via_host", input)
                .map_err(|err| HostFnError::new(err.to_string()))?;
            Ok(serde_json::to_vec(
                &json!({"sum": String::from_utf8_lossy(&out.output)}),
            )?)
        })]);
        let pack = Pack::load_file_with(pack_path("host_calls"), engine(name), functions).unwrap();
        this_pack.set(pack.clone()).ok();
        let out = within_seconds(10, move || pack.call("add_via_host", br#"{"a":1}"#));
        let out = out.unwrap();
        let sum: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(sum, json!({"sum": "}1:\"a\"{"}), "{name}");
    }
}

/// Runs `work` on a thread and fails the test if it has not finished in `seconds`: a
/// deadlock fails instead of hanging the suite.
fn within_seconds<T: Send + 'static>(seconds: u64, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(work()).ok());
    finished
        .recv_timeout(Duration::from_secs(seconds))
        .expect("the call deadlocked: no result within the watchdog's time")
}

/// A WAT pack that multiplies 6 by 7 through a general host function, and traps unless
/// the host answered 42.
const MULTIPLY_WAT: &str = r#"(module
  (import "extism:host/user" "mul" (func $mul (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "product") (result i32)
    (if (i32.ne (call $mul (i32.const 6) (i32.const 7)) (i32.const 42)) (then unreachable))
    (i32.const 0)))"#;

#[test]
fn general_functions_take_and_return_any_values() {
    let mul = |result_type| {
        HostFunction::general(
            "mul",
            [ValueType::I32, ValueType::I32],
            [ValueType::I32],
            move |_, args, results| {
                let (WasmValue::I32(a), WasmValue::I32(b)) = (args[0], args[1]) else {
                    return Err(HostFnError::new("expected two i32"));
                };
                results[0] = match result_type {
                    ValueType::I32 => WasmValue::I32(a * b),
                    _ => WasmValue::I64(i64::from(a * b)),
                };
                Ok(())
            },
        )
    };
    let wasm = wat::parse_str(MULTIPLY_WAT).unwrap();
    for name in ENGINES {
        let pack = Pack::load_with(&wasm, engine(name), vec![mul(ValueType::I32)]).unwrap();
        let out = pack.call("product", b"");
        assert!(out.is_ok(), "{name}: the host answered 42: {out:?}");

        let pack = Pack::load_with(&wasm, engine(name), vec![mul(ValueType::I64)]).unwrap();
        let err = pack.call("product", b"").unwrap_err();
        assert_eq!(err.code(), "host_function_error", "{name}: {err}");
        assert_eq!(
            err.host_function(),
            Some(("mul", Some("TypeError"))),
            "{name}"
        );
    }
}

/// The conformance functions with those named in `replacements` swapped in.
fn with_replaced(replacements: Vec<HostFunction>) -> Vec<HostFunction> {
    let mut functions: Vec<HostFunction> = conformance_functions()
        .into_iter()
        .filter(|f| !replacements.iter().any(|r| r.name() == f.name()))
        .collect();
    functions.extend(replacements);
    functions
}

fn load_replacing(engine_name: &str, replacements: Vec<HostFunction>) -> Pack {
    Pack::load_file_with(
        pack_path("host_calls"),
        engine(engine_name),
        with_replaced(replacements),
    )
    .unwrap()
}

#[test]
fn manifests_list_the_host_functions_a_pack_imports() {
    let names = |pack: &Pack| {
        let mut names: Vec<String> = pack
            .manifest()
            .capabilities
            .host_functions
            .iter()
            .map(|f| format!("{}::{}", f.namespace, f.name))
            .collect();
        names.sort();
        names
    };
    let expected =
        ["add", "context_echo", "fail", "reverse"].map(|n| format!("extism:host/user::{n}"));
    // A plain extism-pdk pack: listed from its imports.
    let plain = host_calls("native");
    assert!(!plain.has_embedded_manifest());
    assert_eq!(names(&plain), expected);
    // A packhost-pdk pack: declared, with types and descriptions.
    let typed = Pack::load_file_with(
        pack_path("host_calls_pdk"),
        engine("native"),
        conformance_functions(),
    )
    .unwrap();
    assert!(typed.has_embedded_manifest());
    assert_eq!(names(&typed), expected);
    let add = typed
        .manifest()
        .capabilities
        .host_functions
        .iter()
        .find(|f| f.name == "add")
        .unwrap();
    assert_eq!(add.description, "Adds two integers.");
    assert_eq!(add.input.encoding, packhost::Encoding::Json);
    assert!(
        add.input.schema.is_some(),
        "the input's JSON Schema is in the manifest"
    );
}
