//! `CancelToken`: how a host stops calls that are running, from any thread.
//!
//! A token is shared by the caller that passes it in [`CallOptions`](crate::CallOptions)
//! and whoever may cancel (another thread, an `AbortSignal`, an asyncio task being
//! cancelled). Cancelling is sticky: every call running with the token ends with
//! `cancelled` at its next check, and a call started with a cancelled token does not run.
//! The native engine checks on every epoch tick (1 ms) and wakes a WASI sleep at once; the
//! extism engine forwards the cancellation to extism's own cancel handle.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};

/// A handle that cancels the calls made with it; clones share one state.
#[derive(Clone, Default)]
pub struct CancelToken {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    cancelled: AtomicBool,
    /// Hooks engines registered to hear of the cancellation, by registration number.
    hooks: Mutex<Hooks>,
    /// Woken by `cancel`, for waits inside the host (WASI sleeps).
    woken: Condvar,
}

#[derive(Default)]
struct Hooks {
    next: u64,
    registered: Vec<(u64, Box<dyn Fn() + Send>)>,
}

impl CancelToken {
    /// A token nothing has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every call running with this token, and every later call made with it.
    pub fn cancel(&self) {
        let shared = &*self.shared;
        shared.cancelled.store(true, Ordering::SeqCst);
        let hooks = lock(&shared.hooks);
        for (_, hook) in &hooks.registered {
            hook();
        }
        drop(hooks);
        shared.woken.notify_all();
    }

    /// Whether [`CancelToken::cancel`] has been called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// The error a call stopped by this token ends with.
    pub(crate) fn error() -> Error {
        Error::new(ErrorKind::Cancelled, "the call was cancelled by its host")
    }

    /// Sleeps for `wait`, or until the token is cancelled; true when it was.
    pub(crate) fn sleep(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut hooks = lock(&self.shared.hooks);
        loop {
            if self.is_cancelled() {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            hooks = match self.shared.woken.wait_timeout(hooks, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Runs `hook` when the token is cancelled (at once if it already is), until the guard
    /// is dropped.
    pub(crate) fn on_cancel(&self, hook: impl Fn() + Send + 'static) -> HookGuard {
        let mut hooks = lock(&self.shared.hooks);
        let id = hooks.next;
        hooks.next += 1;
        if self.is_cancelled() {
            hook();
        }
        hooks.registered.push((id, Box::new(hook)));
        HookGuard {
            token: self.clone(),
            id,
        }
    }
}

/// Removes a hook registered with [`CancelToken::on_cancel`] when dropped.
pub(crate) struct HookGuard {
    token: CancelToken,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        lock(&self.token.shared.hooks)
            .registered
            .retain(|(id, _)| *id != self.id);
    }
}

/// The hooks, even after a hook panicked while they were held: cancelling must still work.
fn lock(hooks: &Mutex<Hooks>) -> MutexGuard<'_, Hooks> {
    hooks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tokens are equal when they are clones of one another.
impl PartialEq for CancelToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn cancel_wakes_a_sleep_and_runs_hooks_until_their_guard_drops() {
        let token = CancelToken::new();
        let heard = Arc::new(AtomicUsize::new(0));
        let counter = heard.clone();
        let guard = token.on_cancel(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let sleeper = token.clone();
        let started = Instant::now();
        let waker = std::thread::spawn(move || sleeper.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        token.cancel();
        assert!(waker.join().unwrap(), "the sleep reports the cancellation");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(heard.load(Ordering::SeqCst), 1);
        drop(guard);
        token.cancel();
        assert_eq!(heard.load(Ordering::SeqCst), 1, "a dropped hook is not run");
        assert!(
            token.sleep(Duration::from_secs(30)),
            "a cancelled token never sleeps"
        );
    }

    #[test]
    fn a_hook_registered_after_cancel_runs_at_once() {
        let token = CancelToken::new();
        token.cancel();
        let heard = Arc::new(AtomicBool::new(false));
        let flag = heard.clone();
        let _guard = token.on_cancel(move || flag.store(true, Ordering::SeqCst));
        assert!(heard.load(Ordering::SeqCst));
        assert!(!CancelToken::new().sleep(Duration::from_millis(1)));
    }
}
