//! WASI for native instances: wasi-common's preview 1 context with a scheduler that never
//! blocks past the running call's deadline, and wakes when the call is cancelled.
//!
//! Epochs interrupt wasm code, not a host function that sleeps: without this, a pack with
//! `allow_wasi` could ask `poll_oneoff` for an hour's sleep and hold its host thread that
//! long. A wait that would end after the deadline sleeps until the deadline and then ends
//! the call with `timeout`, as the epoch would have; a wait the host cancels ends at once
//! with `cancelled`. (The instance has no files, sockets or preopened directories, so
//! clocks are the only thing `poll_oneoff` can wait on.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasi_common::sync::{clocks_ctx, random_ctx};
use wasi_common::{Poll, WasiSched};
use wasi_common::{Table, WasiCtx};

use super::state::HostFailure;
use crate::cancel::CancelToken;
use crate::error::ErrorKind;

/// The deadline and cancel token of the call an instance is running, shared with its WASI
/// scheduler. The store's data and the WASI context are separate values, so the scheduler
/// reads them here.
#[derive(Debug, Default)]
pub(super) struct CallDeadline {
    /// Nanoseconds after [`base`], or 0 for none.
    nanos: AtomicU64,
    cancel: Mutex<Option<CancelToken>>,
}

/// The instant deadlines are counted from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl CallDeadline {
    /// Sets the deadline and cancel token of the call (or start-up) about to run.
    pub(super) fn set(&self, deadline: Instant, cancel: Option<CancelToken>) {
        let nanos = deadline.saturating_duration_since(base()).as_nanos();
        self.nanos.store(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = cancel;
    }

    /// Drops the finished call's cancel token.
    pub(super) fn forget_cancel(&self) {
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Sleeps for `wait`, or until the call is cancelled, which ends it with `cancelled`.
    fn sleep(&self, wait: Duration) -> Result<(), wasi_common::Error> {
        let cancel = self
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match cancel {
            Some(token) if token.sleep(wait) => {
                Err(wasi_common::Error::trap(HostFailure::cancelled()))
            }
            Some(_) => Ok(()),
            None => {
                std::thread::sleep(wait);
                Ok(())
            }
        }
    }

    /// Time left before the deadline; `None` when no deadline is set.
    fn left(&self) -> Option<Duration> {
        match self.nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(
                (base() + Duration::from_nanos(nanos)).saturating_duration_since(Instant::now()),
            ),
        }
    }
}

/// A WASI context whose waits end at `deadline`.
pub(super) fn context(deadline: Arc<CallDeadline>) -> WasiCtx {
    WasiCtx::new(
        random_ctx(),
        clocks_ctx(),
        Box::new(BoundedSched { deadline }),
        Table::new(),
    )
}

/// wasi-common's synchronous scheduler, bounded by the call's deadline.
struct BoundedSched {
    deadline: Arc<CallDeadline>,
}

impl BoundedSched {
    /// Sleeps out `wait`, or until the deadline and then ends the call, whichever is first.
    fn sleep_within_deadline(&self, wait: Duration) -> Result<(), wasi_common::Error> {
        match self.deadline.left() {
            Some(left) if left < wait => {
                self.deadline.sleep(left)?;
                Err(timed_out())
            }
            _ => self.deadline.sleep(wait),
        }
    }
}

/// The call's time ran out while it waited.
fn timed_out() -> wasi_common::Error {
    wasi_common::Error::trap(wasmtime::Error::new(HostFailure {
        kind: ErrorKind::Timeout,
        message: "the call ran past its time limit (waiting in poll_oneoff)".into(),
    }))
}

#[async_trait::async_trait]
impl WasiSched for BoundedSched {
    async fn poll_oneoff<'a>(&self, poll: &mut Poll<'a>) -> Result<(), wasi_common::Error> {
        let wait = poll
            .earliest_clock_deadline()
            .map(|clock| clock.duration_until().unwrap_or(Duration::ZERO));
        let clocks_only = poll.rw_subscriptions().next().is_none();
        if let (Some(wait), true) = (wait, clocks_only) {
            // Nothing else can become ready first (the instance has no files or sockets, so
            // clocks are all it can wait on): the wait is ours to bound and to cut short.
            // Once it is over, the clock has passed and wasi-common reports it at once.
            self.sleep_within_deadline(wait)?;
        }
        wasi_common::sync::sched::poll_oneoff(poll).await
    }

    async fn sched_yield(&self) -> Result<(), wasi_common::Error> {
        std::thread::yield_now();
        Ok(())
    }

    async fn sleep(&self, duration: Duration) -> Result<(), wasi_common::Error> {
        self.sleep_within_deadline(duration)
    }
}
