//! The native engine's process-wide pieces: the one wasmtime engine, the epoch ticker that
//! enforces call timeouts, and the in-memory compiled-code cache (the on-disk one is
//! `cache.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, Module};

use super::cache;
use crate::error::{Error, Result};

/// How often the ticker advances the engine's epoch: the resolution of call timeouts.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// Idle ticks after which the ticker sleeps until the next call, so a host that loaded a
/// pack and went quiet has no thread waking a thousand times a second.
const IDLE_TICKS_BEFORE_PARKING: u32 = 1000;

/// Most compiled modules kept in memory; past this the map is cleared and refilled.
const MAX_MODULES_IN_MEMORY: usize = 256;

/// The engine every native instance runs on. One engine means compiled code is shared by
/// every instance of a pack; timeouts are per store (an epoch deadline each), so one call's
/// timeout never cuts another short.
pub(super) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        // A trap's wasm backtrace is never shown (errors carry the trap's kind), and
        // capturing one made every failed call pay for a stack walk.
        config.wasm_backtrace_max_frames(None);
        let engine = Engine::new(&config).expect("packhost's wasmtime configuration is valid");
        start_ticker(&engine);
        watch_for_fork();
        engine
    })
}

fn start_ticker(engine: &Engine) {
    let ticking = engine.clone();
    std::thread::Builder::new()
        .name("packhost-epoch".into())
        .spawn(move || run_ticker(&ticking))
        .expect("cannot start packhost's timeout thread");
}

/// Set in a child process after `fork`: threads do not survive a fork, so the child has no
/// ticker and its calls would never time out until one is started again. Python servers
/// that load packs before forking workers (gunicorn `--preload`, multiprocessing) rely on it.
static TICKER_LOST: AtomicBool = AtomicBool::new(false);

/// The ticker's locks, held by the forking thread from just before `fork` until just after
/// it in both processes. A lock that the parent's ticker held at the instant of the fork
/// would stay locked forever in the child, whose restarted ticker would then stop at its
/// first tick and let the child's calls run without a time limit.
type TickerLocks = (
    std::sync::MutexGuard<'static, ()>,
    std::sync::MutexGuard<'static, Vec<Arc<ThreadCalls>>>,
);

thread_local! {
    static HELD_ACROSS_FORK: std::cell::RefCell<Option<TickerLocks>> =
        const { std::cell::RefCell::new(None) };
}

fn watch_for_fork() {
    extern "C" fn before_fork() {
        // The ticker's own order: `lock`, then `threads`.
        let wake = lock(&TICKER.lock);
        let threads = lock(&TICKER.threads);
        HELD_ACROSS_FORK.with(|held| *held.borrow_mut() = Some((wake, threads)));
    }
    extern "C" fn after_fork_in_parent() {
        HELD_ACROSS_FORK.with(|held| drop(held.borrow_mut().take()));
    }
    extern "C" fn after_fork_in_child() {
        // Unlocking is one atomic store each; nothing here allocates.
        HELD_ACROSS_FORK.with(|held| drop(held.borrow_mut().take()));
        TICKER_LOST.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handlers take and release two of packhost's own locks in the forking
    // thread and store to an atomic; none of them can panic.
    #[cfg(unix)]
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        );
    }
}

/// Starts a ticker in a forked child, once, before its first call runs.
fn restart_ticker_after_fork() {
    if TICKER_LOST.swap(false, Ordering::SeqCst) {
        // The parent's ticker may have been parked; the child's starts awake.
        TICKER.parked.store(false, Ordering::SeqCst);
        start_ticker(engine());
    }
}

/// Coordination between calls and the ticker thread.
///
/// Each thread counts its own running calls on a cache line of its own, so calls on
/// different threads never write to shared memory; the ticker reads every thread's count
/// once per tick to decide whether it may sleep.
struct Ticker {
    /// True while the ticker sleeps on `wake`.
    parked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    /// The call counters of every thread that has called a pack.
    threads: Mutex<Vec<Arc<ThreadCalls>>>,
}

/// One thread's count of calls in progress, alone on its cache line.
#[repr(align(128))]
#[derive(Default)]
struct ThreadCalls(AtomicUsize);

static TICKER: Ticker = Ticker {
    parked: AtomicBool::new(false),
    lock: Mutex::new(()),
    wake: Condvar::new(),
    threads: Mutex::new(Vec::new()),
};

thread_local! {
    static THREAD_CALLS: Arc<ThreadCalls> = {
        let calls = Arc::new(ThreadCalls::default());
        lock(&TICKER.threads).push(calls.clone());
        calls
    };
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when any thread is inside a call. Threads that have ended are forgotten here.
fn any_call_running() -> bool {
    let mut threads = lock(&TICKER.threads);
    threads.retain(|calls| Arc::strong_count(calls) > 1);
    threads
        .iter()
        .any(|calls| calls.0.load(Ordering::SeqCst) > 0)
}

fn run_ticker(engine: &Engine) {
    let mut idle_ticks = 0;
    loop {
        std::thread::sleep(TICK);
        engine.increment_epoch();
        if any_call_running() {
            idle_ticks = 0;
            continue;
        }
        idle_ticks += 1;
        if idle_ticks < IDLE_TICKS_BEFORE_PARKING {
            continue;
        }
        // Parked is announced before the counts are read again, and a call raises its count
        // before reading `parked`: with both sequentially consistent, either the ticker sees
        // the call or the call sees the ticker parked and wakes it.
        let mut guard = lock(&TICKER.lock);
        TICKER.parked.store(true, Ordering::SeqCst);
        while TICKER.parked.load(Ordering::SeqCst) && !any_call_running() {
            guard = TICKER.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        TICKER.parked.store(false, Ordering::SeqCst);
        idle_ticks = 0;
    }
}

/// Marks one call as running for as long as it lives, keeping the ticker awake.
pub(super) struct RunningCall(());

impl RunningCall {
    pub(super) fn begin() -> Self {
        if TICKER_LOST.load(Ordering::Relaxed) {
            restart_ticker_after_fork();
        }
        THREAD_CALLS.with(|calls| calls.0.fetch_add(1, Ordering::SeqCst));
        if TICKER.parked.load(Ordering::SeqCst) {
            let _guard = lock(&TICKER.lock);
            TICKER.parked.store(false, Ordering::SeqCst);
            TICKER.wake.notify_one();
        }
        RunningCall(())
    }
}

impl Drop for RunningCall {
    fn drop(&mut self) {
        THREAD_CALLS.with(|calls| calls.0.fetch_sub(1, Ordering::SeqCst));
    }
}

/// Epoch ticks that cover `timeout`, plus one because the call may start just before a tick.
pub(super) fn deadline_ticks(timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos());
    u64::try_from(ticks).unwrap_or(u64::MAX - 1) + 1
}

fn modules_in_memory() -> &'static Mutex<HashMap<String, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<String, Module>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

/// Drops the compiled modules and components this process keeps in memory. Packs already loaded keep
/// theirs; the next load of other bytes, or of the same bytes, reads the on-disk code cache
/// (or compiles). For hosts that cycle through many distinct packs, and for measuring.
pub fn forget_compiled_code() {
    if let Ok(mut modules) = modules_in_memory().lock() {
        modules.clear();
    }
    if let Ok(mut components) = components_in_memory().lock() {
        components.clear();
    }
}

/// The compiled module for pack `id`: from memory, else from the on-disk cache, else
/// compiled now (and then written to both).
///
/// # Errors
/// `invalid_pack` when wasmtime cannot compile the module.
pub(super) fn compiled_module(id: &str, wasm: &[u8]) -> Result<Module> {
    compiled(id, modules_in_memory(), || {
        let prepared = super::kernel_wasm::inject(wasm)?;
        Module::new(engine(), prepared.as_deref().unwrap_or(wasm))
            .map_err(|err| Error::invalid_pack(format!("could not compile the pack: {err:#}")))
    })
}

fn components_in_memory() -> &'static Mutex<HashMap<String, Component>> {
    static COMPONENTS: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    COMPONENTS.get_or_init(Default::default)
}

/// The compiled component for pack `id`, found as [`compiled_module`] finds a module.
/// Components get no injected kernel: they speak the component model, not the Extism ABI.
///
/// # Errors
/// `invalid_pack` when wasmtime cannot compile the component.
pub(super) fn compiled_component(id: &str, wasm: &[u8]) -> Result<Component> {
    compiled(id, components_in_memory(), || {
        Component::new(engine(), wasm)
            .map_err(|err| Error::invalid_pack(format!("could not compile the component: {err:#}")))
    })
}

/// The code for pack `id` from `in_memory`, else from the on-disk cache, else from
/// `compile` (and then written to both).
fn compiled<C: cache::CompiledCode + Clone>(
    id: &str,
    in_memory: &Mutex<HashMap<String, C>>,
    compile: impl FnOnce() -> Result<C>,
) -> Result<C> {
    if let Some(code) = in_memory.lock().ok().and_then(|m| m.get(id).cloned()) {
        return Ok(code);
    }
    let code = match cache::load(id, engine()) {
        Some(code) => code,
        None => {
            let code = compile()?;
            cache::store(id, &code);
            code
        }
    };
    if let Ok(mut kept) = in_memory.lock() {
        if kept.len() >= MAX_MODULES_IN_MEMORY {
            kept.clear();
        }
        kept.insert(id.to_string(), code.clone());
    }
    Ok(code)
}

/// Fuel per nanosecond of CPU that plain wasm code burns on this machine, measured once per
/// process on a counting loop (loads, adds, a store, a branch): the rate a timed-out call is
/// billed at before its pack has a measured rate of its own (`engine::fuel`).
pub(crate) fn calibrated_fuel_rate() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    // A machine where the measurement fails is billed at a rate typical of today's CPUs.
    *RATE.get_or_init(|| measure_fuel_rate().unwrap_or(1.0))
}

fn measure_fuel_rate() -> Option<f64> {
    const BUDGET: u64 = 20_000_000;
    // wasmtime reads the text format through its default `wat` feature, which extism's
    // `wasmtime-default-features` enables.
    const COUNTING_LOOP: &str = r#"(module (memory 1)
        (func (export "spin") (local $i i32)
          (loop $again
            (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $again))))"#;
    let module = Module::new(engine(), COUNTING_LOOP).ok()?;
    let mut store = wasmtime::Store::new(engine(), ());
    store.set_fuel(BUDGET).ok()?;
    // Epoch deadlines are relative: a thousand seconds is never reached.
    store.set_epoch_deadline(1_000_000);
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).ok()?;
    let spin = instance.get_typed_func::<(), ()>(&mut store, "spin").ok()?;
    let started = super::super::fuel::thread_cpu_time()?;
    let _ = spin.call(&mut store, ());
    let spent = super::super::fuel::thread_cpu_time()?.saturating_sub(started);
    (!spent.is_zero()).then(|| BUDGET as f64 / spent.as_nanos() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_add_a_tick() {
        assert_eq!(deadline_ticks(Duration::from_millis(1000)), 1001);
        assert_eq!(deadline_ticks(Duration::from_micros(1500)), 3);
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
    }
}
