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
//! (CPython), so a misjudged call holds it for a millisecond or two, not to its end. Where
//! the host cannot (Ruby), an action that has once run past `HOLD_AT_MOST` never keeps the
//! lock again, so a pack can hold the host's other threads up at most once per action.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

    /// Whether [`InterpreterLock::release_for_rest_of_call`] really releases the lock.
    fn releases_midway(&self) -> bool {
        false
    }
}

/// How long a call expected to be short may hold the lock before it is released (on the
/// native engine; the epoch ticks in milliseconds, so it is released 1-2 ms in).
pub const HOLD_AT_MOST: Duration = Duration::from_millis(1);

/// Calls that took at most this long count as short: well under the cost of the wake-ups
/// that handing the lock over costs two threads, and far under what running in parallel
/// gains on a longer call.
pub(crate) const SHORT_CALL: Duration = Duration::from_micros(20);

/// How an event loop judges an action ([`CallLengths::expect_short_on_event_loop`]): a
/// score that a long call raises by [`LONG_CALL_SCORE`], a call past [`HOLD_AT_MOST`] sets
/// to [`MAX_SCORE`], and a short call lowers by one; the action is short while the score is
/// at most [`SHORT_SCORE`]. Unlike a host's lock, it forgives: one call stretched by the
/// scheduler (its thread preempted mid-call, as under load many are) must not send every
/// later call the long way round, while a truly long action is sent there after one call
/// and comes back only after several short ones.
const SHORT_SCORE: u8 = 2;
const LONG_CALL_SCORE: u8 = 2;
const MAX_SCORE: u8 = 8;

/// Per action of a pack, whether its last locked call was long, and whether any ran past
/// [`HOLD_AT_MOST`]. Written only when an answer changes, so threads calling the same short
/// action share the line read-only.
#[derive(Debug)]
pub(crate) struct CallLengths {
    actions: Box<[ActionLengths]>,
}

/// What [`CallLengths`] knows of one action.
#[derive(Debug)]
struct ActionLengths {
    last_was_long: AtomicBool,
    ran_past_hold: AtomicBool,
    /// The event loop's score, from 0 (short) to [`MAX_SCORE`].
    event_loop_score: AtomicU8,
}

impl CallLengths {
    /// Every action starts as long: a first call releases the lock, since nothing yet says
    /// it is short.
    pub(crate) fn new(actions: usize) -> Self {
        CallLengths {
            actions: (0..actions)
                .map(|_| ActionLengths {
                    last_was_long: AtomicBool::new(true),
                    ran_past_hold: AtomicBool::new(false),
                    event_loop_score: AtomicU8::new(MAX_SCORE),
                })
                .collect(),
        }
    }

    /// Whether the next call of the action at `index` should keep a lock that the host
    /// can (`releases_midway`) or cannot release in the middle of the call.
    pub(crate) fn expect_short(&self, index: usize, releases_midway: bool) -> bool {
        self.actions.get(index).is_some_and(|action| {
            !action.last_was_long.load(Ordering::Relaxed)
                && (releases_midway || !action.ran_past_hold.load(Ordering::Relaxed))
        })
    }

    /// Whether the next call of the action at `index` may run on an event loop's thread
    /// instead of a thread pool's, by its score (see [`SHORT_SCORE`]).
    pub(crate) fn expect_short_on_event_loop(&self, index: usize) -> bool {
        self.actions
            .get(index)
            .is_some_and(|action| action.event_loop_score.load(Ordering::Relaxed) <= SHORT_SCORE)
    }

    /// Records how long a call of the action at `index` took.
    pub(crate) fn record(&self, index: usize, wall_time: Duration) {
        if let Some(action) = self.actions.get(index) {
            let long = wall_time > SHORT_CALL;
            store_if_changed(&action.last_was_long, long);
            // Read-modify-write, so that a short call finishing beside a long one never
            // writes back a score from before the long one; a short action's score stays 0
            // and is only read.
            let score = &action.event_loop_score;
            if wall_time > HOLD_AT_MOST {
                score.fetch_max(MAX_SCORE, Ordering::Relaxed);
            } else if long {
                let _ = score.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                    Some(now.saturating_add(LONG_CALL_SCORE).min(MAX_SCORE))
                });
            } else if score.load(Ordering::Relaxed) != 0 {
                let _ = score.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                    Some(now.saturating_sub(1))
                });
            }
            if wall_time > HOLD_AT_MOST {
                store_if_changed(&action.ran_past_hold, true);
            }
        }
    }
}

/// Writes `value` only when it differs, so readers on other cores keep their copy of the
/// line.
fn store_if_changed(flag: &AtomicBool, value: bool) {
    if flag.load(Ordering::Relaxed) != value {
        flag.store(value, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_expected_short_only_after_a_short_call() {
        let lengths = CallLengths::new(2);
        assert!(!lengths.expect_short(0, true));
        lengths.record(0, Duration::from_micros(3));
        assert!(lengths.expect_short(0, true));
        assert!(lengths.expect_short(0, false));
        assert!(!lengths.expect_short(1, true), "actions are judged apart");
        lengths.record(0, Duration::from_micros(300));
        assert!(!lengths.expect_short(0, true));
        assert!(
            !lengths.expect_short(7, true),
            "an unknown index is never short"
        );
    }

    #[test]
    fn a_lock_that_cannot_release_midway_is_never_kept_again_after_a_long_call() {
        let lengths = CallLengths::new(1);
        lengths.record(0, Duration::from_micros(3));
        lengths.record(0, Duration::from_millis(5));
        lengths.record(0, Duration::from_micros(3));
        assert!(
            lengths.expect_short(0, true),
            "CPython can release it midway"
        );
        assert!(
            !lengths.expect_short(0, false),
            "Ruby cannot: once is enough"
        );
    }
}
