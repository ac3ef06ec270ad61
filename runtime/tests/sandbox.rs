//! The sandbox under attack: hostile packs hit their limits on time, the host survives, the
//! next call works, one call's timeout never cuts another short, and usage is measured.
//! HTTP has its own file, `http.rs`.

mod support;

use std::time::{Duration, Instant};

use packhost::Pack;
use support::{options, pack_path};

fn hostile(options_json: &str) -> Pack {
    Pack::load_file(pack_path("hostile"), options(options_json)).expect("hostile pack loads")
}

const BUSY_10: &[u8] = br#"{"rounds":10}"#;

#[test]
fn endless_loop_ends_with_timeout_within_one_and_a_half_times_the_limit() {
    let pack = hostile(r#"{"limits": {"timeout_ms": 400, "fuel": null}}"#);
    pack.call("busy", BUSY_10).expect("warm-up call");
    let started = Instant::now();
    let err = pack.call("spin", b"").unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), "timeout");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed <= Duration::from_millis(600),
        "timeout after {elapsed:?}, limit 400 ms"
    );
    let usage = &err
        .report()
        .expect("a failed call carries its report")
        .usage;
    assert!(usage.fuel_consumed > 0, "the loop burnt metered fuel");
    pack.call("busy", BUSY_10).expect("the next call succeeds");
}

#[test]
fn memory_bomb_ends_with_memory_limit_and_the_next_call_succeeds() {
    let pack = hostile(r#"{"limits": {"memory_bytes": 33554432}}"#);
    let err = pack.call("memory_bomb", b"").unwrap_err();
    assert_eq!(err.code(), "memory_limit");
    let peak = err.report().unwrap().usage.peak_memory_bytes;
    assert!(
        peak <= 32 << 20,
        "peak {peak} stayed within the 32 MiB cap, initial memory included"
    );
    assert!(
        peak >= 16 << 20,
        "peak {peak} shows the bomb really grew memory"
    );
    let out = pack.call("busy", BUSY_10).expect("the next call succeeds");
    assert!(
        out.usage.peak_memory_bytes < 16 << 20,
        "a fresh instance, not the bombed one"
    );
}

#[test]
fn every_hostile_behaviour_leaves_the_host_and_pack_usable() {
    let pack = hostile(
        r#"{"limits": {"timeout_ms": 300, "fuel": 50000000, "memory_bytes": 16777216, "max_output_bytes": 1024}}"#,
    );
    let attacks: [(&str, &[u8], &str); 6] = [
        ("spin", b"", "out_of_fuel"),
        ("memory_bomb", b"", "memory_limit"),
        ("recurse", b"", "trap"),
        ("trap", b"", "trap"),
        ("big_output", br#"{"bytes": 4096}"#, "output_too_large"),
        (
            "fetch",
            br#"{"url": "https://api.example.com/"}"#,
            "host_denied",
        ),
    ];
    for round in 0..2 {
        for (action, input, code) in attacks {
            let err = pack.call(action, input).unwrap_err();
            assert_eq!(err.code(), code, "round {round}, {action}: {err}");
            pack.call("busy", BUSY_10)
                .unwrap_or_else(|err| panic!("after {action}, the next call failed: {err}"));
        }
    }
}

/// extism 1.30 times calls out by bumping an epoch shared by every instance of a compiled
/// plugin, so a call started 0.7 s after an endless one was killed 0.3 s in. Each instance
/// owning its engine prevents that; this pins it.
#[test]
fn one_calls_timeout_never_cuts_a_concurrent_call_short() {
    let pack = hostile(r#"{"limits": {"timeout_ms": 1000, "fuel": null}}"#);
    let first = {
        let pack = pack.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let err = pack.call("spin", b"").unwrap_err();
            (err.code(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    let err = pack.call("spin", b"").unwrap_err();
    let second_elapsed = started.elapsed();
    let (first_code, first_elapsed) = first.join().unwrap();
    assert_eq!(first_code, "timeout");
    assert_eq!(err.code(), "timeout");
    assert!(
        first_elapsed >= Duration::from_millis(1000),
        "first call ran {first_elapsed:?}"
    );
    assert!(
        second_elapsed >= Duration::from_millis(950),
        "the second call was cut short after {second_elapsed:?} by the first one's timeout"
    );
}

#[test]
fn many_threads_share_one_pack() {
    let pack = Pack::load_file(pack_path("text_tools"), Default::default()).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|thread| {
            let pack = pack.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let text = format!("thread {thread} call {i}");
                    let out = pack.call("uppercase", text.as_bytes()).unwrap();
                    assert_eq!(out.text(), Some(text.to_uppercase().as_str()));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("no thread failed");
    }
}

#[test]
fn usage_reports_sizes_fuel_and_memory() {
    let pack = Pack::load_file(pack_path("text_tools"), Default::default()).unwrap();
    let out = pack.call("echo", b"hello").unwrap();
    let usage = out.usage;
    assert_eq!((usage.input_bytes, usage.output_bytes), (5, 5));
    assert!(usage.fuel_consumed > 0);
    assert!(
        usage.peak_memory_bytes >= 65536,
        "at least one page of linear memory"
    );
    // A fresh instance's first call costs the same every time; later calls may differ as
    // the pack's own allocator state evolves, but identical histories cost identical fuel.
    let twin = Pack::load_file(pack_path("text_tools"), Default::default()).unwrap();
    let twin_usage = twin.call("echo", b"hello").unwrap().usage;
    assert_eq!(
        twin_usage.fuel_consumed, usage.fuel_consumed,
        "fuel is deterministic"
    );
}

#[test]
fn oversize_input_is_refused_before_the_pack_runs() {
    let pack = Pack::load_file(
        pack_path("text_tools"),
        options(r#"{"limits": {"max_input_bytes": 4}}"#),
    )
    .unwrap();
    let err = pack.call("echo", b"12345").unwrap_err();
    assert_eq!(err.code(), "input_too_large");
    assert!(
        err.report().is_none(),
        "nothing ran, so there is no usage to report"
    );
}

/// Corrupted modules (every single-byte change at many positions of a real pack) must end
/// in `Ok` or a typed error, at load or at the first call; never in a panic.
#[test]
fn corrupted_packs_fail_cleanly() {
    let original = support::pack_bytes("text_tools");
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut rejected) = (0, 0);
    for _ in 0..40 {
        let mut bytes = original.clone();
        let position = (next() % bytes.len() as u64) as usize;
        bytes[position] ^= (next() % 255 + 1) as u8;
        match Pack::load(&bytes, Default::default()) {
            Ok(pack) => {
                loaded += 1;
                if let Err(err) = pack.call("uppercase", b"abc") {
                    assert_ne!(err.code(), "internal", "corruption at {position}: {err}");
                }
            }
            Err(err) => {
                rejected += 1;
                assert!(
                    ["invalid_pack", "invalid_manifest"].contains(&err.code()),
                    "corruption at {position}: {err}"
                );
            }
        }
    }
    assert!(loaded + rejected == 40 && rejected > 0);
}

/// A WASI pack that asks `poll_oneoff` to wait on the monotonic clock: `nap` for as many
/// milliseconds as the input has bytes, `nap_an_hour` for an hour. Each returns the errno.
const NAPPER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  ;; One relative clock subscription at 0 (48 bytes); the event goes to 64, the count to 128.
  (func $wait (param $nanos i64) (result i32)
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $nanos))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
  (func (export "nap") (result i32)
    (call $wait (i64.mul (call $input_length) (i64.const 1000000))))
  (func (export "nap_an_hour") (result i32)
    (call $wait (i64.const 3600000000000))))
"#;

#[test]
fn a_wasi_sleep_past_the_deadline_ends_with_timeout_on_time() {
    let wasm = wat::parse_str(NAPPER).expect("the napper assembles");
    let pack = Pack::load(
        &wasm,
        options(r#"{"allow_wasi": true, "limits": {"timeout_ms": 200}}"#),
    )
    .expect("the napper loads");
    // A wait within the call's time is served as asked.
    let started = Instant::now();
    pack.call("nap", &[0; 20]).expect("a 20 ms nap");
    assert!(started.elapsed() >= Duration::from_millis(20));
    // The call runs on another thread, so a sleep nobody bounds fails the test instead of
    // holding it for an hour.
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = pack.call("nap_an_hour", b"");
        done.send((result, started.elapsed())).ok();
    });
    let (result, elapsed) = outcome
        .recv_timeout(Duration::from_secs(10))
        .expect("a one-hour poll_oneoff ended within 10 s");
    let err = result.expect_err("the nap cannot outlast the call's limit");
    assert_eq!(err.code(), "timeout", "{err}");
    assert!(
        elapsed < Duration::from_millis(300),
        "timed out after {elapsed:?}, limit 200 ms"
    );
}
