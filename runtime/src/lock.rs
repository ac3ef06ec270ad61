//! Calls from hosts whose interpreter has one global lock (CPython's GIL, Ruby's GVL): which
//! calls keep the lock and which hand it over, decided here once for every such host.
//!
//! Handing the lock over and taking it back costs a few microseconds and, when another
//! thread is waiting, a wake-up each way. A call of a microsecond or two is cheaper run
//! holding the lock: two threads then take turns at full speed instead of spending their
//! time waking each other (0.4x-0.5x of one thread when every call hands the lock over). A
//! long call releases it, so threads run packs in parallel. A call is expected to be short
//! when the last locked call of the same action was; a call expected short that runs past
//! [`HOLD_AT_MOST`] releases the lock from the engine's epoch callback, where the host can
//! (CPython), so a misjudged call holds it for a millisecond or two, not to its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A host's global interpreter lock, held by the thread that calls
/// [`Pack::call_locked`](crate::Pack::call_locked).
pub trait InterpreterLock {
    /// Runs `call` with the lock released, and takes the lock back before returning. The
    /// host catches nothing: `call` never panics (the core catches inside it).
    fn run_released(&mut self, call: &mut dyn FnMut());

    /// Releases the lock for the rest of a call that was expected to be short and has run
    /// for [`HOLD_AT_MOST`]. Called at most once per call, on the calling thread, from inside
    /// the call; the host takes the lock back after `call_locked` returns, and host-function
    /// handlers that run after this take it for themselves. A host that cannot release the
    /// lock in the middle of a call (Ruby has no API for it) keeps this default, and such a
    /// call holds the lock to its end.
    fn release_for_rest_of_call(&mut self) {}
}

/// How long a call expected to be short may hold the lock before it is released (on the
/// native engine; the epoch ticks in milliseconds, so it is released 1-2 ms in).
pub const HOLD_AT_MOST: Duration = Duration::from_millis(1);

/// Calls that took at most this long count as short: well under the cost of the wake-ups
/// that handing the lock over costs two threads, and far under what running in parallel
/// gains on a longer call.
pub(crate) const SHORT_CALL: Duration = Duration::from_micros(20);

/// Per action of a pack, whether its last locked call was long. Written only when the
/// answer changes, so threads calling the same short action share the line read-only.
#[derive(Debug)]
pub(crate) struct CallLengths {
    long: Box<[AtomicBool]>,
}

impl CallLengths {
    /// Every action starts as long: a first call releases the lock, since nothing yet says
    /// it is short.
    pub(crate) fn new(actions: usize) -> Self {
        CallLengths {
            long: (0..actions).map(|_| AtomicBool::new(true)).collect(),
        }
    }

    /// Whether the next call of the action at `index` should keep the lock.
    pub(crate) fn expect_short(&self, index: usize) -> bool {
        self.long
            .get(index)
            .is_some_and(|long| !long.load(Ordering::Relaxed))
    }

    /// Records how long a call of the action at `index` took.
    pub(crate) fn record(&self, index: usize, wall_time: Duration) {
        if let Some(long) = self.long.get(index) {
            let was_long = wall_time > SHORT_CALL;
            if long.load(Ordering::Relaxed) != was_long {
                long.store(was_long, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_expected_short_only_after_a_short_call() {
        let lengths = CallLengths::new(2);
        assert!(!lengths.expect_short(0));
        lengths.record(0, Duration::from_micros(3));
        assert!(lengths.expect_short(0));
        assert!(!lengths.expect_short(1), "actions are judged apart");
        lengths.record(0, Duration::from_millis(2));
        assert!(!lengths.expect_short(0));
        assert!(!lengths.expect_short(7), "an unknown index is never short");
    }
}
