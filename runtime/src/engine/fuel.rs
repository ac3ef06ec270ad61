//! The fuel a timed-out call really burnt. wasmtime keeps a running function's fuel count in
//! a register and writes it back only at calls, returns and fuel checks that run out, not
//! when an epoch deadline interrupts it (wasmtime issue 13802), so a pack spinning in one
//! function until its timeout would be billed the few units counted before the loop. The
//! engines bill such a call at its action's measured rate (fuel per CPU nanosecond, learnt
//! from calls of that action that ended with an exact count) for the CPU time the call
//! spent in wasm, or at this machine's calibrated rate before the action has a measurement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::options::EngineKind;

/// Calls shorter than this give no rate sample: the clocks' resolution would dominate.
const SHORTEST_SAMPLE: Duration = Duration::from_millis(1);

/// Most packs whose rates are remembered; past this the memory is cleared and refilled.
const MAX_REMEMBERED_PACKS: usize = 256;

/// A module (its id) on one engine.
type PackOnEngine = (String, EngineKind);

/// The fuel rates of one pack's actions on one engine, in fuel per CPU nanosecond. Shared
/// by every load of the same module on that engine: a rate is a property of the code and
/// the machine, and hosts load one pack many times (per tenant, per request). Only calls
/// that last a millisecond or more touch it.
#[derive(Debug, Default)]
pub(crate) struct FuelRates(Mutex<HashMap<String, f64>>);

impl FuelRates {
    /// The rates of module `id` on `engine`, shared with every other load of it.
    pub(crate) fn shared(id: &str, engine: EngineKind) -> Arc<FuelRates> {
        static KNOWN: OnceLock<Mutex<HashMap<PackOnEngine, Arc<FuelRates>>>> = OnceLock::new();
        let mut known = KNOWN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_REMEMBERED_PACKS {
            known.clear();
        }
        known.entry((id.to_string(), engine)).or_default().clone()
    }

    /// Learns from a call of `action` that ended with an exact fuel count after `cpu` in
    /// wasm. Each sample replaces half of the rate, so one odd call does not set it.
    pub(crate) fn observe(&self, action: &str, fuel: u64, cpu: Duration) {
        if cpu < SHORTEST_SAMPLE || fuel == 0 {
            return;
        }
        let sample = fuel as f64 / cpu.as_nanos() as f64;
        let mut rates = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rate = rates.entry(action.to_string()).or_insert(sample);
        *rate = (*rate + sample) / 2.0;
    }

    /// The fuel of a call of `action` interrupted after `cpu` in wasm, of which the engine
    /// counted `counted`: the larger of the count and the estimate from the action's rate
    /// (`calibrated` when it has none yet).
    pub(crate) fn bill(
        &self,
        action: &str,
        counted: u64,
        cpu: Duration,
        calibrated: impl FnOnce() -> f64,
    ) -> u64 {
        let known = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(action)
            .copied();
        let rate = known.unwrap_or_else(calibrated);
        let estimate = (rate * cpu.as_nanos() as f64) as u64;
        counted.max(estimate)
    }
}

/// CPU time this thread has used so far, or `None` where the clock is missing.
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the valid pointer given.
        let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        (read == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    None
}

/// CPU time of a span of a call on this thread, from a wall-clock start: spans that end
/// early (most calls) cost no clock reads, and a long one reads the CPU clock at `mark` and
/// at its end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    /// The thread's CPU time when the mark was taken.
    cpu: Duration,
    /// Wall time from the call's start to the mark, counted as CPU (the call was running).
    before: Duration,
}

impl CpuMark {
    /// Marks now, `since_start` into the call.
    pub(crate) fn take(since_start: Duration) -> Option<Self> {
        Some(CpuMark {
            cpu: thread_cpu_time()?,
            before: since_start,
        })
    }

    /// CPU time from the call's start until now.
    pub(crate) fn elapsed(self) -> Duration {
        let now = thread_cpu_time().unwrap_or(self.cpu);
        self.before + now.saturating_sub(self.cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_rate_bills_an_interrupted_call_for_its_cpu_time() {
        let rates = FuelRates::default();
        let bill =
            |action, counted, ms| rates.bill(action, counted, Duration::from_millis(ms), || 2.0);
        // Before any measurement the calibrated rate applies.
        assert_eq!(bill("spin", 10, 1), 2_000_000);
        rates.observe("spin", 3_000_000, Duration::from_millis(1));
        assert_eq!(bill("spin", 10, 2), 6_000_000);
        // What the engine counted is never lowered; other actions keep their own rate.
        assert_eq!(bill("spin", 9_000_000, 2), 9_000_000);
        assert_eq!(bill("other", 0, 1), 2_000_000);
        // Calls too short to measure teach nothing.
        rates.observe("spin", 1, Duration::from_micros(10));
        assert_eq!(bill("spin", 0, 1), 3_000_000);
    }

    #[test]
    fn loads_of_one_module_on_one_engine_share_their_rates() {
        let first = FuelRates::shared("feed", EngineKind::Native);
        first.observe("spin", 4_000_000, Duration::from_millis(1));
        let again = FuelRates::shared("feed", EngineKind::Native);
        assert_eq!(
            again.bill("spin", 0, Duration::from_millis(1), || 1.0),
            4_000_000
        );
        let other_engine = FuelRates::shared("feed", EngineKind::Extism);
        assert_eq!(
            other_engine.bill("spin", 0, Duration::from_millis(1), || 1.0),
            1_000_000
        );
    }

    #[test]
    fn the_thread_cpu_clock_advances_with_work() {
        let before = thread_cpu_time().expect("unix has a thread CPU clock");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_time().unwrap() > before, "{x}");
    }
}
