//! The idle instances of one pack: a fixed set of slots where each thread has a slot of its
//! own to try first, so concurrent callers on different threads touch different cache lines
//! and never wait for each other's lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most idle instances a pack keeps; more concurrent callers get instances that are dropped
/// after their call.
pub(crate) const SLOTS: usize = 16;

/// One slot, alone on its cache line (128 bytes covers adjacent-line prefetching), so two
/// threads using neighbouring slots do not slow each other down.
#[repr(align(128))]
struct Slot<T>(Mutex<Option<T>>);

/// Idle items, at most one per slot.
pub(crate) struct Pool<T> {
    slots: Box<[Slot<T>]>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            slots: (0..SLOTS).map(|_| Slot(Mutex::new(None))).collect(),
        }
    }
}

impl<T> Pool<T> {
    /// An idle item, preferring the one this thread left in its own slot.
    #[cfg(test)]
    pub(crate) fn take(&self) -> Option<T> {
        self.take_if(|_| true)
    }

    /// An idle item that `fits`, preferring the one this thread left in its own slot.
    pub(crate) fn take_if(&self, fits: impl Fn(&T) -> bool) -> Option<T> {
        let home = home_slot();
        (0..SLOTS).find_map(|step| {
            let slot = &self.slots[(home + step) % SLOTS];
            let mut held = slot.0.try_lock().ok()?;
            if held.as_ref().is_some_and(&fits) {
                held.take()
            } else {
                None
            }
        })
    }

    /// Keeps `item` for a later call, in this thread's slot when it is free, else in any
    /// free slot; when every slot is taken it replaces the item in this thread's slot (which
    /// is dropped), so a newer item (a tenant calling now) wins over an older one.
    pub(crate) fn give(&self, item: T) {
        let home = home_slot();
        let mut item = Some(item);
        for step in 0..SLOTS {
            let slot = &self.slots[(home + step) % SLOTS];
            if let Ok(mut held) = slot.0.try_lock() {
                if held.is_none() {
                    *held = item.take();
                    return;
                }
            }
        }
        let replaced = match self.slots[home].0.try_lock() {
            Ok(mut held) => std::mem::replace(&mut *held, item),
            Err(_) => item,
        };
        // Dropped outside the slot's lock: dropping an instance unmaps its memory.
        drop(replaced);
    }
}

/// This thread's preferred slot: threads are numbered as they first call, so the first
/// sixteen callers of a process never share a slot.
fn home_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    HOME.with(|home| *home)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_comes_back_to_the_thread_that_left_it() {
        let pool = Pool::default();
        pool.give(1);
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }

    #[test]
    fn the_pool_keeps_at_most_one_item_per_slot_and_the_newest_wins() {
        let pool = Pool::default();
        for item in 0..SLOTS + 5 {
            pool.give(item);
        }
        let kept: Vec<usize> = std::iter::from_fn(|| pool.take()).collect();
        assert_eq!(kept.len(), SLOTS);
        assert!(
            kept.contains(&(SLOTS + 4)),
            "the last item given is kept: {kept:?}"
        );
    }

    #[test]
    fn only_an_item_that_fits_is_taken() {
        let pool = Pool::default();
        pool.give(("acme", 1));
        assert_eq!(pool.take_if(|(tenant, _)| *tenant == "globex"), None);
        assert_eq!(
            pool.take_if(|(tenant, _)| *tenant == "acme"),
            Some(("acme", 1))
        );
    }

    #[test]
    fn another_thread_finds_an_item_left_elsewhere() {
        let pool = Pool::default();
        pool.give("left here");
        std::thread::scope(|scope| {
            scope.spawn(|| assert_eq!(pool.take(), Some("left here")));
        });
    }
}
