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
    /// Calls run through `run_released`.
    released_calls: usize,
    /// Times the core released the lock in the middle of a call.
    released_midway: usize,
    /// Whether the lock is held right now, as a host would track it.
    held: bool,
}

impl InterpreterLock for Recorder {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        assert!(
            self.held,
            "the lock is released only by the thread holding it"
        );
        self.released_calls += 1;
        self.held = false;
        call();
        self.held = true;
    }

    fn release_for_rest_of_call(&mut self) {
        assert!(self.held, "a call released the lock it did not hold");
        self.released_midway += 1;
        self.held = false;
    }
}

impl Recorder {
    fn holding() -> Self {
        Recorder {
            held: true,
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
        let result = pack
            .call_locked("work", input, &CallOptions::default(), self, |_| ())
            .map(|_| ());
        self.held = true;
        result
    }
}

fn worker(options_json: &str) -> Pack {
    let wasm = wat::parse_str(WORKER).expect("the worker assembles");
    Pack::load(&wasm, options(options_json)).expect("the worker loads")
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
