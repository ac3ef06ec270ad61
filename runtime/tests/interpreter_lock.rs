//! `Pack::call_locked`, as Python and Ruby use it: a short action keeps the caller's lock,
//! any other call releases it, and a call that was expected to be short but runs long has
//! the lock released from inside the call, and still ends at its own deadline.

mod support;

use packhost::{CallOptions, InterpreterLock, Pack};
use support::options;

/// `work` loops ten million times per input byte: empty input returns at once, one byte
/// takes milliseconds, a hundred bytes takes far longer than any test's timeout.
const WORKER: &str = r#"
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  (func (export "work") (result i32)
    (local $left i64)
    (local.set $left (i64.mul (call $input_length) (i64.const 10000000)))
    (block $done
      (loop $again
        (br_if $done (i64.eqz (local.get $left)))
        (local.set $left (i64.sub (local.get $left) (i64.const 1)))
        (br $again)))
    (i32.const 0)))
"#;

/// A lock that records what the core did with it.
#[derive(Default)]
struct Recorder {
    /// Whether it can be released in the middle of a call (CPython's can, Ruby's cannot).
    midway: bool,
    /// Calls run through `run_released`.
    released_calls: usize,
    /// Times the core released the lock in the middle of a call.
    released_midway: usize,
    /// Whether the lock is held right now, as a host would track it.
    held: bool,
}

impl InterpreterLock for Recorder {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        if !self.held {
            // Released midway already (the core rebuilding the call's instance).
            return call();
        }
        self.released_calls += 1;
        self.held = false;
        call();
        self.held = true;
    }

    fn release_for_rest_of_call(&mut self) {
        assert!(self.held, "a call released the lock it did not hold");
        if self.midway {
            self.released_midway += 1;
            self.held = false;
        }
    }

    fn releases_midway(&self) -> bool {
        self.midway
    }
}

impl Recorder {
    fn holding() -> Self {
        Recorder {
            held: true,
            midway: true,
            ..Default::default()
        }
    }

    /// A fresh lock for `pack` once its last call of `work` was short: calls are made until
    /// one keeps the lock. (A first call sets its instance up, and a busy machine can stall
    /// any call, so one call is not enough to be sure.)
    fn after_short_calls(pack: &Pack) -> Self {
        let mut lock = Recorder::holding();
        for _ in 0..100 {
            let released_before = lock.released_calls;
            lock.call(pack, b"").unwrap();
            if lock.released_calls == released_before {
                return Recorder::holding();
            }
        }
        panic!("no empty call of `work` ever counted as short");
    }

    /// Calls `work` on `input` and takes the lock back as a host does afterwards.
    fn call(&mut self, pack: &Pack, input: &[u8]) -> packhost::Result<()> {
        self.call_action(pack, "work", input)
    }

    /// Calls `action` on `input` and takes the lock back as a host does afterwards.
    fn call_action(&mut self, pack: &Pack, action: &str, input: &[u8]) -> packhost::Result<()> {
        let result = pack
            .call_locked(action, input, &CallOptions::default(), self, |_| ())
            .map(|_| ());
        self.held = true;
        result
    }
}

/// The worker with one warm instance serving every call (`isolation: "pack"`): only an
/// instance that is ready can run a call holding the lock.
fn worker(options_json: &str) -> Pack {
    let wasm = wat::parse_str(WORKER).expect("the worker assembles");
    let mut options = options(options_json);
    options.isolation = packhost::Isolation::Pack;
    Pack::load(&wasm, options).expect("the worker loads")
}

#[test]
fn under_call_isolation_the_next_instance_is_prepared_with_the_lock_released() {
    let wasm = wat::parse_str(WORKER).expect("the worker assembles");
    let pack = Pack::load(&wasm, options("{}")).expect("the worker loads");
    let mut lock = Recorder::holding();
    for _ in 0..5 {
        lock.call(&pack, b"").unwrap();
    }
    assert_eq!(
        lock.released_calls, 5,
        "one hand-over per call, for its new instance"
    );
}

#[test]
fn a_short_action_keeps_the_lock_once_a_call_was_short() {
    let pack = worker("{}");
    let mut lock = Recorder::holding();
    lock.call(&pack, b"").unwrap();
    assert_eq!(lock.released_calls, 1, "nothing says a first call is short");
    let mut lock = Recorder::after_short_calls(&pack);
    for _ in 0..20 {
        lock.call(&pack, b"").unwrap();
    }
    // A stalled call (a busy machine) makes the next one release the lock; no more.
    assert!(
        lock.released_calls <= 2,
        "{} of 20 short calls handed the lock over",
        lock.released_calls
    );
    assert_eq!(lock.released_midway, 0);
}

#[test]
fn a_call_expected_short_that_runs_long_releases_the_lock_once_midway() {
    let pack = worker("{}");
    let mut lock = Recorder::after_short_calls(&pack);
    lock.call(&pack, b"x").unwrap();
    assert_eq!(lock.released_midway, 1, "released once, after HOLD_AT_MOST");
    assert_eq!(lock.released_calls, 0);
    // Having seen a long call, the next one releases the lock up front.
    lock.call(&pack, b"").unwrap();
    assert_eq!(lock.released_calls, 1);
    assert_eq!(lock.released_midway, 1);
}

#[test]
fn a_call_that_released_the_lock_midway_still_ends_at_its_deadline() {
    let pack = worker(r#"{"limits": {"timeout_ms": 40}}"#);
    let mut lock = Recorder::after_short_calls(&pack);
    let started = std::time::Instant::now();
    let err = lock.call(&pack, &[b'x'; 100]).unwrap_err();
    assert_eq!(err.code(), "timeout", "{err}");
    assert_eq!(lock.released_midway, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2000),
        "the call ran {:?} past a 40 ms timeout",
        started.elapsed()
    );
}

#[test]
fn the_extism_engine_always_releases_the_lock() {
    let pack = worker(r#"{"engine": "extism"}"#);
    let mut lock = Recorder::holding();
    for _ in 0..3 {
        lock.call(&pack, b"").unwrap();
    }
    assert_eq!(lock.released_calls, 3);
    assert_eq!(lock.released_midway, 0);
}

#[test]
fn a_lock_that_cannot_be_released_midway_is_not_kept_again_once_a_call_ran_long() {
    let pack = worker("{}");
    let mut lock = Recorder::after_short_calls(&pack);
    lock.midway = false;
    lock.call(&pack, b"x").unwrap();
    assert_eq!(
        lock.released_calls, 0,
        "expected short, so the lock was kept"
    );
    let mut lock = Recorder {
        midway: false,
        ..Recorder::holding()
    };
    for _ in 0..5 {
        lock.call(&pack, b"").unwrap();
    }
    assert_eq!(
        lock.released_calls, 5,
        "a pack may hold a Ruby host's threads up only once per action"
    );
}

#[test]
fn packs_that_may_block_in_the_host_and_calls_without_an_idle_instance_release_the_lock() {
    // A WASI pack (it may sleep in poll_oneoff) ...
    let wasi_worker = WORKER.replacen(
        "(memory",
        r#"(import "wasi_snapshot_preview1" "sched_yield" (func (result i32))) (memory"#,
        1,
    );
    let wasm = wat::parse_str(wasi_worker).expect("the WASI worker assembles");
    let pack = Pack::load(&wasm, options(r#"{"allow_wasi": true}"#)).expect("it loads");
    let mut lock = Recorder::holding();
    for _ in 0..5 {
        lock.call(&pack, b"").unwrap();
    }
    assert_eq!(lock.released_calls, 5, "a WASI pack");
    // ... and one granted HTTP (it may wait on a server) never keep the lock.
    let granted = r#"{"allowed_hosts": ["*.example.com"]}"#;
    let pack = Pack::load_file(support::pack_path("hostile"), options(granted)).expect("loads");
    let mut lock = Recorder::holding();
    for _ in 0..5 {
        lock.call_action(&pack, "busy", br#"{"rounds":1}"#).unwrap();
    }
    assert_eq!(lock.released_calls, 5, "a pack granted HTTP");
    // A second thread finds no idle instance: its first call makes one, lock released.
    let pack = worker("{}");
    let mut lock = Recorder::after_short_calls(&pack);
    let (started, starting) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| {
            let mut other = Recorder::holding();
            started.send(()).unwrap();
            // Tens of milliseconds: the idle instance is this call's meanwhile.
            other.call(&pack, &[b'x'; 4]).unwrap();
        });
        starting.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        lock.call(&pack, b"").unwrap();
        busy.join().unwrap();
    });
    assert_eq!(
        lock.released_calls, 1,
        "the instance was busy: a new one was made"
    );
}

#[test]
fn an_event_loop_runs_in_place_only_what_ran_short_on_an_idle_instance() {
    let wasm = wat::parse_str(WORKER).expect("the worker assembles");
    let warm = Pack::load(&wasm, options(r#"{"isolation": "context"}"#)).unwrap();
    let in_place = |pack: &Pack, input: &[u8]| {
        let mut lock = Recorder::holding();
        let options = CallOptions::default();
        pack.call_in_place("work", input, &options, &mut lock, <[u8]>::len)
            .map(|done| done.map(|(length, _)| length))
    };
    assert!(
        in_place(&warm, b"").is_none(),
        "nothing is known before a first call"
    );
    // Calls preempted mid-way may run long; within a few dozen, the short ones prevail.
    let mut calls = 0;
    while in_place(&warm, b"").is_none() {
        warm.call("work", b"").unwrap();
        calls += 1;
        assert!(calls < 100, "an empty input never came to count as short");
    }
    assert!(matches!(in_place(&warm, b""), Some(Ok(0))));
    warm.call("work", b"x").unwrap();
    assert!(
        in_place(&warm, b"").is_none(),
        "ten million rounds send the next calls to the pool"
    );
    assert!(in_place(&warm, b"").is_none(), "and not for one call only");

    let fresh = Pack::load(&wasm, options(r#"{"isolation": "call"}"#)).unwrap();
    for _ in 0..100 {
        fresh.call("work", b"").unwrap();
    }
    assert!(
        in_place(&fresh, b"").is_none(),
        "a fresh instance per call costs tens of microseconds"
    );
}
