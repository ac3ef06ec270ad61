//! The sandbox under attack: hostile packs hit their limits on time, the host survives, the
//! next call works, one call's timeout never cuts another short, the host can cancel a call
//! without touching its neighbours, mounted directories hold (read-only stays read-only, a
//! planted symlink leads nowhere), and usage is measured. HTTP has its own file, `http.rs`.

mod support;

use std::time::{Duration, Instant};

use packhost::{CallOptions, CancelToken, Pack};
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

/// The napper, a WASI pack, under a `timeout_ms` time limit.
fn napper(timeout_ms: u64) -> Pack {
    let wasm = wat::parse_str(NAPPER).expect("the napper assembles");
    let options_json =
        format!(r#"{{"allow_wasi": true, "limits": {{"timeout_ms": {timeout_ms}}}}}"#);
    Pack::load(&wasm, options(&options_json)).expect("the napper loads")
}

#[test]
fn a_wasi_sleep_past_the_deadline_ends_with_timeout_on_time() {
    let pack = napper(200);
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

/// Runs `action` on another thread with a fresh cancel token, cancels it after `after`, and
/// returns the error and how long the call took to end once cancelled.
fn cancel_after(pack: &Pack, action: &str, after: Duration) -> (packhost::Error, Duration) {
    let token = CancelToken::new();
    let options = CallOptions {
        cancel: Some(token.clone()),
        ..CallOptions::default()
    };
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let result = pack.call_with_options(action, b"", &options);
            done.send((result, Instant::now())).ok();
        });
        std::thread::sleep(after);
        let cancelled_at = Instant::now();
        token.cancel();
        let (result, ended_at) = ended
            .recv_timeout(Duration::from_secs(10))
            .expect("a cancelled call ends within 10 s");
        let err = result.expect_err("a cancelled call fails");
        (err, ended_at.saturating_duration_since(cancelled_at))
    })
}

#[test]
fn a_cancelled_call_ends_within_10_ms_and_a_concurrent_call_is_untouched() {
    for engine in ["native", "extism"] {
        let pack = hostile(&format!(
            r#"{{"engine": "{engine}", "limits": {{"timeout_ms": 30000, "fuel": null}}}}"#
        ));
        // Two idle instances, so neither the spin nor its neighbour waits for one to be
        // made (on the extism engine that loads a compiled module) while the clock runs.
        std::thread::scope(|scope| {
            let other = scope.spawn(|| pack.call("busy", BUSY_10));
            pack.call("busy", BUSY_10).expect("warm-up call");
            other.join().unwrap().expect("warm-up call");
        });
        let mut latencies = Vec::new();
        for _ in 0..5 {
            let (err, latency) = std::thread::scope(|scope| {
                let neighbour = scope.spawn(|| pack.call("busy", br#"{"rounds":30000000}"#));
                let cancelled = cancel_after(&pack, "spin", Duration::from_millis(20));
                let neighbour = neighbour.join().unwrap();
                assert!(
                    neighbour.is_ok(),
                    "[{engine}] the concurrent call finished normally: {neighbour:?}"
                );
                cancelled
            });
            assert_eq!(err.code(), "cancelled", "[{engine}] {err}");
            let report = err.report().expect("a cancelled call carries its report");
            assert!(
                report.usage.fuel_consumed > 0,
                "[{engine}] the spin is billed"
            );
            latencies.push(latency);
        }
        latencies.sort();
        assert!(
            latencies[2] <= Duration::from_millis(10),
            "[{engine}] cancelled calls ended {latencies:?} after the cancel; median over 10 ms"
        );
        pack.call("busy", BUSY_10).expect("the next call succeeds");
        let stats = pack.stats();
        assert_eq!(
            stats.errors.get("cancelled"),
            Some(&5),
            "[{engine}] {stats:?}"
        );
    }
}

#[test]
fn a_cancelled_token_stops_a_wasi_sleep_and_every_later_call_made_with_it() {
    let pack = napper(30000);
    let (err, latency) = cancel_after(&pack, "nap_an_hour", Duration::from_millis(20));
    assert_eq!(err.code(), "cancelled", "{err}");
    assert!(
        latency < Duration::from_secs(1),
        "the nap ended {latency:?} after the cancel"
    );

    let token = CancelToken::new();
    token.cancel();
    let options = CallOptions {
        cancel: Some(token),
        ..CallOptions::default()
    };
    let err = pack
        .call_with_options("nap", &[0; 20], &options)
        .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    assert!(
        err.report().is_none(),
        "a call cancelled before it starts never runs"
    );
    assert_eq!(pack.stats().calls, 1, "only the nap that ran is counted");
}

/// The conformance suite's WASI files pack (`read` hello.txt, `write` note.txt), with the
/// host folder `folder` mounted at `/data` (`ro:` for read-only) on `engine`.
fn files_pack(engine: &str, folder: &std::path::Path, read_only: bool) -> Pack {
    let source = format!("{}{}", if read_only { "ro:" } else { "" }, folder.display());
    let options = serde_json::json!({
        "engine": engine,
        "allow_wasi": true,
        "allowed_paths": { source: "/data" },
    });
    let wasm = support::repo_root().join("tests/conformance/fixtures/wasi_files.wasm");
    Pack::load_file(wasm, support::options(&options.to_string())).expect("the files pack loads")
}

#[test]
fn a_read_only_mount_stays_unchanged_a_writable_one_changes_and_symlinks_stay_inside() {
    // Read-only mounts on the native engine (the extism engine refuses them at load).
    let folder = support::scratch_folder("mounts-read-only");
    std::fs::write(folder.join("hello.txt"), "hi").unwrap();
    let before = std::fs::metadata(folder.join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let read_only = files_pack("native", &folder, true);
    assert_eq!(read_only.call("read", b"").unwrap().output, b"hi");
    for attack in ["write", "write_in_subdir", "truncate", "touch"] {
        let err = read_only.call(attack, b"").unwrap_err();
        assert_eq!(err.return_code(), Some(1), "{attack}: {err}");
    }
    assert!(
        !folder.join("note.txt").exists(),
        "a read-only mount was written"
    );
    assert_eq!(std::fs::read(folder.join("hello.txt")).unwrap(), b"hi");
    let after = std::fs::metadata(folder.join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a read-only file's times changed");
    let refused = serde_json::json!({
        "engine": "extism", "allow_wasi": true,
        "allowed_paths": { format!("ro:{}", folder.display()): "/data" },
    });
    let wasm = support::repo_root().join("tests/conformance/fixtures/wasi_files.wasm");
    let err = Pack::load_file(wasm, support::options(&refused.to_string())).unwrap_err();
    assert_eq!(err.code(), "invalid_options", "{err}");

    for engine in ["native", "extism"] {
        let folder = support::scratch_folder(&format!("mounts-{engine}"));
        std::fs::write(folder.join("hello.txt"), "hi").unwrap();
        let writable = files_pack(engine, &folder, false);
        // The same calls that a read-only mount refuses work on a writable one.
        for call in ["write", "write_in_subdir", "touch"] {
            writable.call(call, b"").expect(call);
        }
        assert_eq!(std::fs::read(folder.join("note.txt")).unwrap(), b"written");

        // A file planted outside the mount and a symlink to it inside: never followed out.
        let outside = support::scratch_folder(&format!("outside-{engine}"));
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::fs::remove_file(folder.join("hello.txt")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), folder.join("hello.txt")).unwrap();
        let err = writable.call("read", b"").unwrap_err();
        assert_eq!(err.code(), "plugin_error", "[{engine}] {err}");
    }
}

/// Grows a table by ten million entries (80 MB of host pointers) and keeps two 600 KB vars
/// (trapping when the host has no room for a value's block):
/// host memory a pack makes the host hold outside its linear memory.
const HOARDER: &str = r#"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (memory (export "memory") 1)
  (table $hoard 0 funcref)
  (func (export "grow_table") (result i32)
    (if (result i32)
        (i32.eq (table.grow $hoard (ref.null func) (i32.const 10000000)) (i32.const -1))
      (then (i32.const 7))
      (else (i32.const 0))))
  (func (export "keep_var") (result i32)
    (local $value i64)
    (local.set $value (call $alloc (i64.const 600000)))
    (if (i64.eqz (local.get $value)) (then unreachable))
    (call $var_set (call $alloc (i64.const 1)) (local.get $value))
    (local.set $value (call $alloc (i64.const 600000)))
    (if (i64.eqz (local.get $value)) (then unreachable))
    (call $var_set (call $alloc (i64.const 2)) (local.get $value))
    (i32.const 0)))
"#;

#[test]
fn tables_and_vars_count_against_the_memory_limit() {
    // Both engines count vars; tables are the native engine's (extism refuses packs whose
    // tables could grow past the limit).
    let wasm = wat::parse_str(HOARDER).expect("the hoarder assembles");
    let one_mib = r#"{"limits": {"memory_bytes": 1048576, "max_var_bytes": 4194304}}"#;
    let pack = Pack::load(&wasm, options(one_mib)).expect("the hoarder loads");
    // table.grow past the cap returns -1 to the pack, which reports it with code 7.
    let refused = pack.call("grow_table", b"").unwrap_err();
    assert_eq!(refused.return_code(), Some(7), "{refused}");
    // 64 KiB of memory and two 600 KB vars (each block the pack handed over is freed):
    // past 1 MiB.
    let err = pack.call("keep_var", b"").unwrap_err();
    assert_eq!(err.code(), "memory_limit", "{err}");
    // On the extism engine too: its kernel's memory keeps the room the blocks took, and the
    // vars come on top.
    // (The hoarder without its table, which extism would refuse as unbounded.)
    let keeper = wat::parse_str(HOARDER.replace("(table $hoard 0 funcref)", "").replace(
        "(i32.eq (table.grow $hoard (ref.null func) (i32.const 10000000)) (i32.const -1))",
        "(i32.const 0)",
    ))
    .expect("the var keeper assembles");
    let extism =
        r#"{"engine": "extism", "limits": {"memory_bytes": 1048576, "max_var_bytes": 4194304}}"#;
    let pack = Pack::load(&keeper, options(extism)).expect("the var keeper loads");
    let err = pack.call("keep_var", b"").unwrap_err();
    assert_eq!(err.code(), "memory_limit", "[extism] {err}");
    let extism_roomy =
        r#"{"engine": "extism", "limits": {"memory_bytes": 4194304, "max_var_bytes": 4194304}}"#;
    let pack = Pack::load(&keeper, options(extism_roomy)).expect("the var keeper loads");
    pack.call("keep_var", b"")
        .expect("[extism] the var fits in 4 MiB");
    // With room for them, both succeed.
    let roomy = r#"{"limits": {"memory_bytes": 134217728, "max_var_bytes": 4194304}}"#;
    let pack = Pack::load(&wasm, options(roomy)).expect("the hoarder loads");
    pack.call("grow_table", b"")
        .expect("80 MB of table fits in 128 MiB");
    pack.call("keep_var", b"").expect("the var fits");
    // A hundred tables of a million entries each cannot even start within 64 MiB.
    let tables: String = (0..100)
        .map(|_| "(table 1000000 funcref)")
        .collect::<Vec<_>>()
        .join(" ");
    let wasm = wat::parse_str(format!(
        r#"(module {tables} (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"#
    ))
    .expect("the table bomb assembles");
    let pack = Pack::load(&wasm, options("{}")).expect("the table bomb loads");
    let err = pack.call("run", b"").unwrap_err();
    assert_eq!(err.code(), "memory_limit", "{err}");
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the valid pointer given.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) },
        0
    );
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Fuel per CPU nanosecond of one call of `spin` that fails with `code`, after a call of
/// `warm_up` has compiled the pack and readied an instance.
fn spin_rate(pack: &Pack, warm_up: (&str, &[u8]), code: &str) -> f64 {
    pack.call(warm_up.0, warm_up.1)
        .expect("the warm-up call succeeds");
    let before = thread_cpu();
    let err = pack.call("spin", b"").unwrap_err();
    let spent = thread_cpu() - before;
    assert_eq!(err.code(), code, "{err}");
    let fuel = err
        .report()
        .expect("a failed call reports")
        .usage
        .fuel_consumed;
    fuel as f64 / spent.as_nanos() as f64
}

#[test]
fn a_timed_out_spin_reports_the_fuel_it_burnt() {
    for engine in ["native", "extism"] {
        let by_fuel = options(&format!(
            r#"{{"engine": "{engine}", "limits": {{"timeout_ms": 20000, "fuel": 300000000}}}}"#
        ));
        let by_time = options(&format!(
            r#"{{"engine": "{engine}", "limits": {{"timeout_ms": 150, "fuel": null}}}}"#
        ));
        // The same loop ended by its fuel, whose count is exact, then by its timeout: the
        // timed-out call is billed at the rate the loop was seen to burn.
        let hostile_pack = |options| Pack::load_file(pack_path("hostile"), options).unwrap();
        let busy = ("busy", BUSY_10);
        let exact = spin_rate(&hostile_pack(by_fuel.clone()), busy, "out_of_fuel");
        let timed = spin_rate(&hostile_pack(by_time.clone()), busy, "timeout");
        assert!(
            (timed / exact - 1.0).abs() <= 0.1,
            "[{engine}] {timed:.3} fuel/ns billed for the timed-out spin, {exact:.3} when it ran out of fuel"
        );
        // A loop no call has measured yet (a module of its own per engine) is billed at the
        // machine's calibrated rate (measured once per process), within a small factor of
        // what it really burns: on the 2-vCPU VM CI runs on, the same loop in one process,
        // even pinned to one vCPU, runs at ~4.5 and at ~11 fuel per CPU nanosecond from one
        // moment to the next (the host's doing), so a tighter bound only measures its luck.
        let wasm = wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "spin") (result i32) (local $i i64)
                   (loop $again
                     (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8)) (local.get $i)))
                     (local.set $i (i64.add (local.get $i) (i64.const 1)))
                     (br $again))
                   (i32.const 0))
                 (func (export "{engine}") (result i32) (i32.const 0)))"#
        ))
        .unwrap();
        let named = (engine, b"".as_slice());
        let fresh = spin_rate(&Pack::load(&wasm, by_time).unwrap(), named, "timeout");
        let exact = spin_rate(&Pack::load(&wasm, by_fuel).unwrap(), named, "out_of_fuel");
        let ratio = fresh / exact;
        assert!(
            (1.0 / 3.0..=3.0).contains(&ratio),
            "[{engine}] an unmeasured loop is billed {fresh:.3} fuel/ns, burns {exact:.3}"
        );
    }
}
