//! The native engine's process-wide pieces: the wasmtime engines (the one everything is
//! compiled on, and the pooled one fresh module instances come from), the epoch ticker that
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

/// The engine every pack is compiled on, and that instances run on when the pooled engine
/// cannot hold them. One engine means compiled code is shared by every instance of a pack;
/// timeouts are per store (an epoch deadline each), so one call's timeout never cuts
/// another short.
pub(super) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine =
            Engine::new(&base_config()).expect("packhost's wasmtime configuration is valid");
        start_ticker(&engine);
        watch_for_fork();
        engine
    })
}

/// What both engines are: equal in everything but where instances' memory comes from, so
/// that code compiled on one is accepted by the other.
fn base_config() -> Config {
    let mut config = Config::new();
    config.consume_fuel(true).epoch_interruption(true);
    // A trap's wasm backtrace is never shown (errors carry the trap's kind), and
    // capturing one made every failed call pay for a stack walk.
    config.wasm_backtrace_max_frames(None);
    config
}

/// The environment variable that sizes the pool of module instances (see
/// [`pooled_engine`]); `0` turns the pool off.
pub(crate) const POOLED_INSTANCES_ENV: &str = "PACKHOST_POOLED_INSTANCES";

/// Module instances the pool holds at once unless [`POOLED_INSTANCES_ENV`] says otherwise.
/// Each reserves address space for three memories (the pack's, its kernel memory and a GC
/// heap's) of 4 GiB plus guard pages, and a table: about 1.5 TiB of address space in all,
/// none of it memory until used.
const DEFAULT_POOLED_INSTANCES: u32 = 128;

/// The largest `memory_bytes` limit whose packs take pooled instances: a pooled slot holds a
/// table of at most this many bytes of elements (tables count against the limit), where an
/// instance of its own grows one as far as the limit allows.
pub(super) const POOLED_LIMIT_MAX: u64 = 64 << 20;

/// Pooled slots kept warm (mapped, with the image of the module that last used them) for
/// other packs while unused.
const POOLED_UNUSED_WARM_SLOTS: u32 = 8;

/// The engine fresh module instances come from when it has a free slot: wasmtime's pooling
/// allocator, which keeps every slot's mappings and resets a returned slot in place (its
/// written pages dropped with `madvise`, the module's image left mapped for its next
/// instance), where an instance of [`engine`] maps its memories anew and unmaps them after.
/// That makes a fresh instance per call (`isolation: "call"`) and the renewal after a failed
/// call about 30% cheaper. `None` when [`POOLED_INSTANCES_ENV`] is `0`, on 32-bit platforms,
/// or when the pool's address space cannot be reserved.
pub(super) fn pooled_engine() -> Option<&'static Engine> {
    POOLED_ENGINE
        .get_or_init(make_pooled_engine)
        .as_ref()
        .map(|pooled| &pooled.engine)
}

/// The pooled engine, once made, with the slot count it was made with.
static POOLED_ENGINE: OnceLock<Option<PooledEngine>> = OnceLock::new();

struct PooledEngine {
    engine: Engine,
    slots: u32,
}

/// How full the pool of module instances is (see [`crate::PackOptions`]'s `isolation`):
/// what an operator watches to size `PACKHOST_POOLED_INSTANCES`. Once `in_use` reaches
/// `slots`, further instances are made on their own, at about 1.5x the cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstancePool {
    /// Module instances the pool holds at once; 0 when there is no pool (not needed yet,
    /// turned off with `PACKHOST_POOLED_INSTANCES=0`, a 32-bit platform, or no address
    /// space for it).
    pub slots: u64,
    /// Module instances alive in the pool now.
    pub in_use: u64,
}

/// The pool's size and occupancy now: all zeros until a pack first needs a second instance,
/// which is when the pool is made (looking does not make it), and when there is none.
pub fn instance_pool() -> InstancePool {
    let Some(Some(pooled)) = POOLED_ENGINE.get() else {
        return InstancePool::default();
    };
    InstancePool {
        slots: u64::from(pooled.slots),
        in_use: pooled
            .engine
            .pooling_allocator_metrics()
            .map_or(0, |metrics| metrics.core_instances()),
    }
}

/// Pooled copies of compiled modules by pack id (`None`: the module does not fit the pool).
fn pooled_modules_in_memory() -> &'static Mutex<HashMap<String, Option<Module>>> {
    static POOLED_MODULES: OnceLock<Mutex<HashMap<String, Option<Module>>>> = OnceLock::new();
    POOLED_MODULES.get_or_init(Default::default)
}

#[cfg(target_pointer_width = "64")]
fn make_pooled_engine() -> Option<PooledEngine> {
    use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};
    // The ticker, which advances both engines' epochs, runs once the first engine exists.
    engine();
    let instances = number_from_env(
        POOLED_INSTANCES_ENV,
        DEFAULT_POOLED_INSTANCES,
        "pooled instances",
    );
    if instances == 0 {
        return None;
    }
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(instances)
        // Each instance has at most two memories (the pack's and its kernel memory), and its
        // store at most one GC heap (made as the instance is, for a module with reference
        // types), whose storage is a memory slot too. With as many heap slots as memory
        // slots, the memory slots always run out first, which is `PoolConcurrencyLimitError`
        // and falls back, never the heap pool's plain error.
        .total_memories(instances.saturating_mul(3))
        .total_gc_heaps(instances.saturating_mul(3))
        .max_memories_per_module(2)
        .total_tables(instances)
        .table_elements((POOLED_LIMIT_MAX / super::super::TABLE_ELEMENT_BYTES) as usize)
        // A 32-bit memory's whole range: the pack's `memory_bytes` limit is what bounds it.
        .max_memory_size(1 << 32)
        // Components and linked modules always run on `engine`, and nothing runs async.
        .total_component_instances(0)
        .total_stacks(0)
        // wasmtime 43's `PAGEMAP_SCAN` reset skips written pages that are swapped out, which
        // the next instance in the slot would read; every slot is reset with `madvise` instead.
        .pagemap_scan(Enabled::No)
        .max_unused_warm_slots(POOLED_UNUSED_WARM_SLOTS);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)
        .map_err(|err| {
            tracing::warn!("no pooled instances (every instance is mapped on its own): {err:#}");
        })
        .ok()?;
    Some(PooledEngine {
        engine,
        slots: instances,
    })
}

#[cfg(not(target_pointer_width = "64"))]
fn make_pooled_engine() -> Option<PooledEngine> {
    None
}

/// A copy of `module` (compiled on [`engine`]) on the pooled engine, made once per pack id;
/// `None` when there is no pooled engine or the module does not fit its slots (more than one
/// table, say).
pub(super) fn pooled_module(id: &str, module: &Module) -> Option<Module> {
    let pooled = pooled_engine()?;
    let kept = pooled_modules_in_memory();
    if let Some(known) = lock(kept).get(id) {
        return known.clone();
    }
    // From the cached file where there is one, so that both engines map the same code; else
    // a copy made here.
    let copy = cache::load_again(id, pooled).or_else(|| {
        module
            .serialize()
            // SAFETY: the bytes are what `serialize` just produced, on an engine of the same
            // configuration; wasmtime checks that configuration again.
            .and_then(|bytes| unsafe { Module::deserialize(pooled, bytes) })
            .map_err(|err| {
                tracing::debug!("pack {id} runs without pooled instances: {err:#}");
            })
            .ok()
    });
    keep_in_memory(kept, id, copy.clone());
    copy
}

/// Keeps `code` for pack `id` in `kept`, which is emptied first once it holds
/// [`MAX_MODULES_IN_MEMORY`] entries.
fn keep_in_memory<C>(kept: &Mutex<HashMap<String, C>>, id: &str, code: C) {
    let mut kept = lock(kept);
    if kept.len() >= MAX_MODULES_IN_MEMORY {
        kept.clear();
    }
    kept.insert(id.to_string(), code);
}

/// The number environment variable `name` holds, else `default`: when it is unset or
/// empty, and, with a warning that says what the number counts (`what`), when it is no
/// number.
pub(super) fn number_from_env<T>(name: &str, default: T, what: &str) -> T
where
    T: std::str::FromStr + std::fmt::Display,
{
    let Some(value) = std::env::var_os(name).filter(|value| !value.is_empty()) else {
        return default;
    };
    match value.to_str().and_then(|text| text.trim().parse().ok()) {
        Some(number) => number,
        None => {
            tracing::warn!(
                "{name}={value:?} is not a number; keeping the default, {default} {what}"
            );
            default
        }
    }
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
        if let Some(Some(pooled)) = POOLED_ENGINE.get() {
            pooled.engine.increment_epoch();
        }
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
    if let Ok(mut pooled) = pooled_modules_in_memory().lock() {
        pooled.clear();
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
    keep_in_memory(in_memory, id, code.clone());
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
