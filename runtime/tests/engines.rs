//! The two engines side by side: the same packs give the same bytes through the native
//! engine's bulk path, its plain Extism path and the extism crate, and the native engine's
//! own promises (return codes, the code cache) hold.

mod support;

use packhost::Pack;
use support::{options, pack_bytes};

const ENGINES: [&str; 2] = ["native", "extism"];

fn load(name: &str, engine: &str) -> Pack {
    Pack::load(
        &pack_bytes(name),
        options(&format!(r#"{{"engine": "{engine}"}}"#)),
    )
    .expect("sample pack loads")
}

/// ASCII input of `len` bytes, as the benchmarks use.
fn text(len: usize) -> Vec<u8> {
    b"hello world ".iter().copied().cycle().take(len).collect()
}

#[test]
fn bulk_and_plain_packs_agree_on_every_engine_and_size() {
    for len in [0, 1, 7, 8, 9, 1024, 100 * 1024, 1 << 20] {
        let input = text(len);
        for engine in ENGINES {
            // `bench` (packhost-pdk) takes the bulk path on the native engine; `bench_plain`
            // (extism-pdk alone) and `c_bench` (C, no PDK) always go through the ABI's 8-byte
            // loads and stores, inlined into the pack on the native engine.
            for pack in ["bench", "bench_plain", "c_bench"] {
                let pack_handle = load(pack, engine);
                let echoed = pack_handle.call("echo", &input).expect("echo");
                assert_eq!(echoed.output, input, "{pack} on {engine}, {len} bytes");
                let length = pack_handle.call("length", &input).expect("length");
                assert_eq!(length.text(), Some(len.to_string().as_str()));
                // The instance is reused: a second call must not see the first one's data.
                let again = pack_handle.call("echo", b"x").expect("echo again");
                assert_eq!(again.output, b"x");
            }
        }
    }
}

/// A pack that returns the code 7 without setting an error message.
const SILENT_FAILURE: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "fail_quietly") (result i32) (i32.const 7)))
"#;

#[test]
fn a_nonzero_return_code_without_a_message_is_a_plugin_error_on_the_native_engine() {
    let wasm = wat::parse_str(SILENT_FAILURE).unwrap();
    let pack = Pack::load(&wasm, options("{}")).expect("loads");
    let err = pack.call("fail_quietly", b"").unwrap_err();
    assert_eq!(err.code(), "plugin_error");
    assert_eq!(err.return_code(), Some(7));
    assert!(err.message().contains("code 7"), "{}", err.message());
}

#[test]
fn an_engine_name_outside_the_two_is_rejected() {
    let err = packhost::PackOptions::from_json(r#"{"engine": "v8"}"#).unwrap_err();
    assert_eq!(err.code(), "invalid_options");
}

#[test]
fn compiled_code_is_reused_from_memory_and_from_disk() {
    // Bytes no other run loads (a custom section naming this moment appended), so the
    // first load compiles and no older cache folder holds them.
    let mut wasm = pack_bytes("bench");
    let moment = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let name = b"engines";
    // A custom section (id 0): its size, the name's length and the name, then the payload.
    wasm.push(0);
    wasm.push((1 + name.len() + moment.len()) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(moment.as_bytes());
    let first = Pack::load(&wasm, options("{}")).unwrap();
    assert_eq!(first.call("length", b"abc").unwrap().text(), Some("3"));

    let cached = cache_files_named(&format!("{}.cwasm", first.id()));
    assert_eq!(
        cached.len(),
        1,
        "one cached module for the pack: {cached:?}"
    );

    packhost::forget_compiled_code();
    let second = Pack::load(&wasm, options("{}")).unwrap();
    assert_eq!(second.call("length", b"abcd").unwrap().text(), Some("4"));
    assert_eq!(first.id(), second.id());
    for file in cached {
        let _ = std::fs::remove_file(file);
    }
}

/// Files called `name` under the code cache's engine folders, found the way packhost finds
/// its cache directory (this test binary does not change it).
fn cache_files_named(name: &str) -> Vec<std::path::PathBuf> {
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    let Some(root) = env_dir("PACKHOST_CACHE_DIR")
        .or_else(|| env_dir("XDG_CACHE_HOME").map(|d| d.join("packhost")))
        .or_else(|| env_dir("HOME").map(|d| d.join(".cache/packhost")))
    else {
        return Vec::new();
    };
    let Ok(engines) = std::fs::read_dir(root.join("native")) else {
        return Vec::new();
    };
    engines
        .flatten()
        .map(|entry| entry.path().join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// A pack that asks the kernel for a negative and for an impossibly large block.
const HOSTILE_ALLOC: &str = r#"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "negative") (result i32)
    (drop (call $alloc (i64.const -1)))
    (i32.const 0))
  ;; Returns 0 when the kernel refused the block (the ABI's failure), 1 when it granted it.
  (func (export "huge") (result i32)
    (if (result i32) (i64.eqz (call $alloc (i64.const 0x7fffffffffffff00)))
      (then (i32.const 0))
      (else (i32.const 1)))))
"#;

#[test]
fn alloc_of_a_negative_or_huge_size_never_wraps_around() {
    let wasm = wat::parse_str(HOSTILE_ALLOC).unwrap();
    for engine in ENGINES {
        let pack = Pack::load(&wasm, options(&format!(r#"{{"engine": "{engine}"}}"#))).unwrap();
        // Refused: the native kernel answers with the ABI's "no block" and the call goes on;
        // extism's kernel fails the call at its memory limit.
        let huge = pack.call("huge", b"");
        assert!(
            huge.as_ref()
                .map_or_else(|err| err.code() == "memory_limit", |_| true),
            "{engine}: {huge:?}"
        );
        // Whatever the engine makes of a negative size, the host survives it.
        let _ = pack.call("negative", b"");
        assert!(
            pack.call("huge", b"").is_ok() || engine == "extism",
            "{engine}"
        );
    }
    // The native engine refuses a negative size as the ABI misuse it is, with a typed error
    // (extism's kernel, which is WebAssembly, wraps it around; it is not ours to change).
    let native = Pack::load(&wasm, options("{}")).unwrap();
    let err = native.call("negative", b"").unwrap_err();
    assert_eq!(err.code(), "trap");
    assert!(
        err.message().contains("alloc of a negative size: -1"),
        "{err}"
    );
    assert!(native.call("huge", b"").is_ok());
}

/// A pack that rewrites the kernel's bookkeeping so that the host would read or write past
/// the end of the kernel's memory: extism 1.30 keeps block lengths and the call's output and
/// error in memory the pack can write, and its host side trusted them.
const FORGED_KERNEL: &str = r#"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory (export "memory") 1)
  ;; Output 16 bytes long, then declared a mebibyte long in the kernel's root (its output
  ;; length, at address 57; extism's own `output_set` refuses a range past its heap).
  (func (export "long_output") (result i32)
    (call $output_set (call $alloc (i64.const 16)) (i64.const 16))
    (call $store_u64 (i64.const 57) (i64.const 1048576))
    (i32.const 0))
  ;; An error message whose block header claims almost 4 GiB (extism's header: a status
  ;; byte, then the block's size and used length as two u32s, right before the data).
  (func (export "long_error") (result i32)
    (local $message i64)
    (local.set $message (call $alloc (i64.const 16)))
    (call $store_u64
      (i64.sub (local.get $message) (i64.const 8))
      (i64.const 0xfffffff0fffffff0))
    (call $error_set (local.get $message))
    (i32.const 1))
  ;; The fuzzer's case: a negative size, which extism's kernel wraps into a huge block.
  (func (export "wrapped_error") (result i32)
    (call $error_set (call $alloc (i64.const -7)))
    (i32.const 1))
  (func (export "fine") (result i32)
    (call $output_set (call $alloc (i64.const 2)) (i64.const 2))
    (i32.const 0)))
"#;

#[test]
fn a_pack_that_forges_kernel_lengths_gets_a_trap_and_the_host_lives_on() {
    let wasm = wat::parse_str(FORGED_KERNEL).unwrap();
    // How each forgery ends, per engine. The native kernel keeps its bookkeeping outside
    // the pack's reach: there a forging store lands past the blocks handed out (a trap) or
    // in a block's data, leaving the message as it was set. On extism the seal withdraws
    // what lies outside memory.
    let expected = [
        ("long_output", "trap", "trap"),
        ("long_error", "plugin_error", "trap"),
        ("wrapped_error", "trap", "trap"),
    ];
    for (index, engine) in ENGINES.into_iter().enumerate() {
        let pack = Pack::load(&wasm, options(&format!(r#"{{"engine": "{engine}"}}"#))).unwrap();
        for (action, native, extism) in expected {
            let ended = pack
                .call(action, b"")
                .map_or_else(|err| err.code().to_string(), |_| "ok".to_string());
            assert_eq!(ended, [native, extism][index], "{engine} {action}");
            // A failed instance is replaced: the next call works.
            let fine = pack.call("fine", &vec![7u8; 1 << 20]).unwrap();
            assert_eq!(fine.output.len(), 2, "{engine} after {action}");
        }
    }
    let extism = Pack::load(&wasm, options(r#"{"engine": "extism"}"#)).unwrap();
    let err = extism.call("long_output", b"").unwrap_err();
    assert!(err.message().contains("outside kernel memory"), "{err}");
    for action in ["long_error", "wrapped_error"] {
        let err = extism.call(action, b"").unwrap_err();
        assert!(
            err.message()
                .contains("error_set was given an invalid block"),
            "{err}"
        );
    }
}

/// A pack whose start-up code makes extism's kernel write its own heap length: allocations
/// so large that the kernel wraps the block's address around onto its root, leaving the heap
/// claiming some 400 GiB in a kernel memory of 1 MiB. extism would write the next input by
/// that count, past the memory's end.
const FORGED_HEAP: &str = r#"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "_initialize")
    (drop (call $alloc (i64.const 0x1000000000ff74)))
    (drop (call $alloc (i64.const 0xffff0040)))
    (drop (call $alloc (i64.const 100))))
  (func (export "fine") (result i32)
    (call $output_set (call $alloc (i64.const 2)) (i64.const 2))
    (i32.const 0)))
"#;

#[test]
fn a_kernel_heap_the_pack_overwrote_fails_the_call_before_any_input_is_written() {
    let wasm = wat::parse_str(FORGED_HEAP).unwrap();
    let input = vec![7u8; 2 << 20];
    // The native kernel refuses the huge blocks (the ABI's 0) and keeps its own count.
    let native = Pack::load(&wasm, options("{}")).unwrap();
    assert_eq!(native.call("fine", &input).unwrap().output.len(), 2);
    // On extism the kernel is checked as it is reset for the first input, right after
    // start-up: the pack failed to start.
    let extism = Pack::load(&wasm, options(r#"{"engine": "extism"}"#)).unwrap();
    for _ in 0..2 {
        let err = extism.call("fine", &input).unwrap_err();
        assert_eq!(err.code(), "invalid_pack", "{err}");
        assert!(
            err.message().contains("overwrote the kernel's bookkeeping"),
            "{err}"
        );
    }
}

/// A module whose `_initialize` calls the host (a log line through the kernel) and whose
/// `run` outputs its memory's first byte, which `_initialize` sets.
const STARTUP_LOGS: &str = r#"(module
    (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
    (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
    (import "extism:host/env" "log_warn" (func $log (param i64)))
    (memory (export "memory") 1)
    (func (export "_initialize")
      (local $message i64)
      (local.set $message (call $alloc (i64.const 1)))
      (call $store_u8 (local.get $message) (i32.const 33))
      (call $log (local.get $message))
      (i32.store8 (i32.const 0) (i32.const 1)))
    (func (export "run") (result i32) (i32.load8_u (i32.const 0))))"#;

#[test]
fn start_up_code_calling_the_host_runs_natively_and_never_crashes_the_extism_engine() {
    use base64::Engine as _;
    let module = wat::parse_str(STARTUP_LOGS).unwrap();
    let linked_manifest = serde_json::json!({"wasm": [
        {"data": base64::engine::general_purpose::STANDARD.encode(&module), "name": "lib"},
        {"data": base64::engine::general_purpose::STANDARD.encode(
            wat::parse_str(r#"(module (import "lib" "run" (func $run (result i32)))
                (func (export "run") (result i32) (call $run)))"#).unwrap())},
    ]})
    .to_string();
    let alone =
        |engine: &str| Pack::load(&module, options(&format!(r#"{{"engine": "{engine}"}}"#)));
    let linked = |engine: &str| {
        Pack::load_extism_manifest(
            &linked_manifest,
            options(&format!(r#"{{"engine": "{engine}"}}"#)),
            Vec::new(),
        )
    };
    // The native engine serves start-up code like a call: the log line reaches the first
    // call's logs, and `run` sees what `_initialize` wrote (1, a plugin error code).
    let native = alone("native").unwrap();
    let err = native.call("run", b"").unwrap_err();
    assert_eq!(err.return_code(), Some(1), "{err}");
    let logs = &err.report().unwrap().logs;
    assert_eq!(
        logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["!"]
    );
    let err = linked("native").unwrap().call("run", b"").unwrap_err();
    assert_eq!(err.return_code(), Some(1), "{err}");
    // extism 1.30 would dereference a null pointer here and take the process down.
    for pack in [alone("extism").unwrap(), linked("extism").unwrap()] {
        let err = pack.call("run", b"").unwrap_err();
        assert_eq!(err.code(), "invalid_pack", "{err}");
        assert!(err.message().contains("start-up code"), "{err}");
    }
}
