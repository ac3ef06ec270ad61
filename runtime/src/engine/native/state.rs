//! What a native instance's store holds besides the pack: the kernel's block table, the
//! current call's input, output and error, vars, grants, logs, the memory limiter and WASI.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use wasmtime::{AsContext, AsContextMut, ResourceLimiter};

use super::kernel::{self, Kernel};
use super::wasi::CallDeadline;
use crate::capabilities::files::Mount;
use crate::capabilities::host_fn::HostTally;
use crate::capabilities::http::HttpGrant;
use crate::engine::vars::{MemoryAccount, Vars};
use crate::engine::{LogBuffer, TABLE_ELEMENT_BYTES};
use crate::error::ErrorKind;
use crate::lock::InterpreterLock;

/// What a pack was granted at load; shared by all its instances.
#[derive(Debug)]
pub(super) struct Grants {
    pub(super) config: BTreeMap<String, String>,
    pub(super) http: Arc<HttpGrant>,
}

/// The store's data.
pub(crate) struct HostState {
    pub(super) limiter: MemoryLimiter,
    pub(super) kernel: Kernel,
    pub(super) call: CallState,
    pub(super) vars: Vars,
    pub(super) grants: Arc<Grants>,
    pub(super) logs: LogBuffer,
    /// Every capability the instance used since its last call ended (its start-up's uses
    /// are its first call's); per instance, so starting a call allocates nothing for it.
    pub(super) audit: crate::capabilities::audit::AuditTrail,
    pub(super) wasi: Option<wasi_common::WasiCtx>,
    /// The running call's deadline as the WASI scheduler sees it (WASI packs only).
    pub(super) wasi_deadline: Option<Arc<CallDeadline>>,
    /// The most linear memory one call on this instance grew, its first call aside (whose
    /// growth is its working set being reached, not a leak).
    pub(super) largest_growth: u64,
}

impl HostState {
    pub(super) fn new(
        limit: u64,
        max_var_bytes: u64,
        grants: Arc<Grants>,
        logs: LogBuffer,
        wasi: Option<&[Mount]>,
    ) -> crate::error::Result<Self> {
        let wasi_deadline = wasi.map(|_| Arc::new(CallDeadline::default()));
        let wasi = match (wasi, &wasi_deadline) {
            (Some(mounts), Some(deadline)) => Some(super::wasi::context(deadline.clone(), mounts)?),
            _ => None,
        };
        Ok(HostState {
            limiter: MemoryLimiter::new(limit),
            kernel: Kernel::default(),
            call: CallState::default(),
            vars: Vars::new(max_var_bytes),
            grants,
            logs,
            audit: Default::default(),
            wasi,
            wasi_deadline,
            largest_growth: 0,
        })
    }

    /// Sets when the call (or start-up) about to run runs out of time, for every host
    /// function that can block: HTTP, host functions and WASI's waits.
    /// `cancel` is the caller's token (none for start-up, which runs for no caller).
    pub(super) fn set_deadline(
        &mut self,
        deadline: std::time::Instant,
        cancel: Option<&crate::cancel::CancelToken>,
    ) {
        self.call.deadline = Some(deadline);
        self.call.cancel = cancel.cloned();
        if let Some(wasi) = &self.wasi_deadline {
            wasi.set(deadline, cancel.cloned());
        }
    }

    /// Drops the finished call's cancel token, so the idle instance holds none.
    pub(super) fn forget_cancel(&mut self) {
        self.call.cancel = None;
        if let Some(wasi) = &self.wasi_deadline {
            wasi.forget_cancel();
        }
    }

    /// Sets var `key` to `value` (`None` removes it) within `max_var_bytes` and the
    /// memory limit, which counts every byte vars hold.
    pub(super) fn set_var(&mut self, key: String, value: Option<Vec<u8>>) -> wasmtime::Result<()> {
        self.vars
            .set(key, value, &mut self.limiter)
            .map_err(HostFailure::error)
    }
}

/// Records a log line the pack wrote, when its level is kept and its bytes fit under the
/// memory limit (a line that does not fit is dropped), and frees its block: the pack hands
/// the message over to the host.
pub(super) fn record_log(
    mut store: impl AsContextMut<Data = HostState>,
    level: crate::options::LogLevel,
    offset: u64,
) {
    let mut store = store.as_context_mut();
    if store.data().logs.wants(level) {
        kernel::with_block(&mut store, offset, |message, state| {
            if let Some(message) = message {
                let kept = message.len().min(crate::usage::MAX_LOG_MESSAGE_BYTES) as u64;
                if state.limiter.hold_if_room(kept) {
                    state.logs.record(level, message);
                }
            }
        });
    }
    kernel::free(&mut store, offset);
}

/// The text of the kernel block at `offset`, or a failure naming `what` it should be.
pub(super) fn block_text(
    store: &impl AsContext<Data = HostState>,
    offset: u64,
    what: &str,
) -> wasmtime::Result<String> {
    let bytes = kernel::block(store, offset)
        .ok_or_else(|| HostFailure::trap(format!("{what} is not a valid block: {offset}")))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The input, output and error of the call in progress.
#[derive(Default)]
pub(super) struct CallState {
    pub(super) input: InputView,
    /// The kernel block holding the input's copy (`input_offset`, and `input_load_*` once
    /// the host has served one), once asked for; `Some(0)` when the copy did not fit.
    pub(super) input_offset: Option<u64>,
    pub(super) output_offset: u64,
    pub(super) output_length: u64,
    pub(super) error_offset: u64,
    /// When the call runs out of time, for host functions that block (HTTP).
    pub(super) deadline: Option<std::time::Instant>,
    /// When the call started (none during start-up).
    pub(super) started: Option<std::time::Instant>,
    /// The thread's CPU clock, read by the call's first epoch callback.
    pub(super) cpu_mark: Option<crate::engine::fuel::CpuMark>,
    /// HTTP requests the call has made so far.
    pub(super) http_requests: u32,
    /// The last HTTP response's status code, or 0.
    pub(super) http_status: i32,
    /// The last HTTP response's headers as JSON; `http_headers` copies them into a new
    /// block each time it is asked, as the other Extism hosts do.
    pub(super) http_headers: Option<Vec<u8>>,
    /// The caller's `context`, for host functions.
    pub(super) context: serde_json::Value,
    /// Host-function calls so far, and their time.
    pub(super) host: HostTally,
    /// The caller's interpreter lock, while the call holds it: the epoch callback releases
    /// it once the call has run past `HOLD_AT_MOST`.
    pub(super) lock: Option<HeldLock>,
    /// The caller's cancel token: with one, the epoch callback comes every tick to check it.
    pub(super) cancel: Option<crate::cancel::CancelToken>,
    /// The pack called WASI's `proc_exit`.
    pub(super) exited: bool,
}

/// The interpreter lock a call holds, borrowed for the duration of that call.
pub(super) struct HeldLock(*mut (dyn InterpreterLock + 'static));

// SAFETY: a `HeldLock` is set and used only by the thread running the call, which owns the
// lock; it moves with the store only between calls, when it is always `None`.
unsafe impl Send for HeldLock {}

impl HeldLock {
    /// Borrows `lock` for one call.
    ///
    /// # Safety
    /// The caller clears the `HeldLock` before `lock`'s borrow ends, on every path.
    pub(super) unsafe fn new(lock: &mut dyn InterpreterLock) -> Self {
        let lock: *mut (dyn InterpreterLock + '_) = lock;
        // SAFETY: only the lifetime is erased; the caller promises the borrow outlives us.
        HeldLock(unsafe {
            std::mem::transmute::<
                *mut (dyn InterpreterLock + '_),
                *mut (dyn InterpreterLock + 'static),
            >(lock)
        })
    }

    /// Releases the lock for the rest of the call.
    pub(super) fn release(self) {
        // SAFETY: by `new`'s contract the borrow is alive while the call runs, and the
        // epoch callback that calls this runs inside the call, on the caller's thread.
        unsafe { (*self.0).release_for_rest_of_call() }
    }
}

/// The caller's input bytes, readable by host functions during one call without copying.
pub(super) struct InputView {
    ptr: *const u8,
    len: usize,
}

impl Default for InputView {
    fn default() -> Self {
        InputView {
            ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
        }
    }
}

// SAFETY: the view only ever points at a slice that `Instance::call` borrows for the whole
// time the view is set, and the view is cleared before that call returns; the store (and
// so the view) is used by one thread at a time.
unsafe impl Send for InputView {}

impl InputView {
    /// Points the view at `input` for the duration of a call.
    ///
    /// # Safety
    /// The caller must keep `input` alive and unmodified until it calls [`InputView::clear`].
    pub(super) unsafe fn set(&mut self, input: &[u8]) {
        self.ptr = input.as_ptr();
        self.len = input.len();
    }

    pub(super) fn clear(&mut self) {
        *self = InputView::default();
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `set`'s contract keeps the slice alive while the view points at it; the
        // default view is an empty slice at a dangling, well-aligned address.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Counts every byte of memory an instance makes the host hold (its linear memories, its
/// tables, the kernel, vars and the call's log lines) against one limit, and remembers the
/// peak and whether growth was refused.
#[derive(Debug)]
pub(super) struct MemoryLimiter {
    limit: u64,
    linear: u64,
    tables: u64,
    kernel: u64,
    /// Vars and the call's log lines: host memory the pack fills through the ABI.
    held: u64,
    peak: u64,
    refused: bool,
    /// Set while the host grows kernel memory, whose bytes are counted exactly in `kernel`.
    pub(super) growing_kernel: bool,
}

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            linear: 0,
            tables: 0,
            kernel: 0,
            held: 0,
            peak: 0,
            refused: false,
            growing_kernel: false,
        }
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    fn total(&self) -> u64 {
        self.linear
            .saturating_add(self.tables)
            .saturating_add(self.kernel)
            .saturating_add(self.held)
    }

    /// Bytes of linear memory the instance holds (memories never shrink).
    pub(super) fn linear(&self) -> u64 {
        self.linear
    }

    /// Bytes the instance may still take before it reaches its limit.
    pub(super) fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.total())
    }

    /// Starts a call: the peak restarts from what is held now (the kernel is empty again,
    /// the last call's log lines are gone, vars stay).
    pub(super) fn begin_call(&mut self, kernel_size: u64, vars_bytes: u64) {
        self.kernel = kernel_size;
        self.held = vars_bytes;
        self.peak = self.total();
        self.refused = false;
    }

    pub(super) fn peak(&self) -> u64 {
        self.peak
    }

    pub(super) fn refused(&self) -> bool {
        self.refused
    }

    /// Puts back what [`MemoryLimiter::refused`] said before a growth the host attempted
    /// for itself.
    pub(super) fn set_refused(&mut self, refused: bool) {
        self.refused = refused;
    }

    /// Whether `growth` more bytes fit; refusing remembers the refusal.
    fn fits(&mut self, growth: u64) -> bool {
        if self.total().saturating_add(growth) > self.limit {
            self.refused = true;
            return false;
        }
        true
    }

    /// Whether the kernel may grow by `growth` from `kernel_size`.
    pub(super) fn admit(&mut self, growth: u64, kernel_size: u64) -> bool {
        self.kernel = kernel_size;
        self.fits(growth)
    }

    /// Records the kernel's new size.
    pub(super) fn observe(&mut self, kernel_size: u64) {
        self.kernel = kernel_size;
        self.peak = self.peak.max(self.total());
    }

    /// Takes `bytes` more of host memory for vars, when they fit; a refusal is remembered
    /// (the call fails at its memory limit).
    pub(super) fn hold(&mut self, bytes: u64) -> bool {
        self.fits(bytes) && self.hold_if_room(bytes)
    }

    /// Takes `bytes` more of host memory for a log line when there is room, and otherwise
    /// takes nothing and remembers nothing: a dropped log line fails nothing.
    pub(super) fn hold_if_room(&mut self, bytes: u64) -> bool {
        if self.total().saturating_add(bytes) > self.limit {
            return false;
        }
        self.held += bytes;
        self.peak = self.peak.max(self.total());
        true
    }

    /// Gives back `bytes` taken with [`MemoryLimiter::hold`].
    pub(super) fn release(&mut self, bytes: u64) {
        self.held = self.held.saturating_sub(bytes);
    }
}

impl MemoryAccount for MemoryLimiter {
    fn swap(&mut self, release: u64, claim: u64) -> bool {
        self.release(release);
        if self.hold(claim) {
            return true;
        }
        self.held += release;
        false
    }

    fn limit(&self) -> u64 {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.growing_kernel {
            return Ok(true);
        }
        let growth = desired.saturating_sub(current) as u64;
        if !self.fits(growth) {
            return Ok(false);
        }
        self.linear += growth;
        self.peak = self.peak.max(self.total());
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table elements are host memory too: counted under the same cap, so a hundred
        // tables of a million entries cannot hold gigabytes outside it.
        let growth = (desired.saturating_sub(current) as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        if !self.fits(growth) {
            return Ok(false);
        }
        self.tables += growth;
        self.peak = self.peak.max(self.total());
        Ok(true)
    }

    // Each core instance, memory and table costs the host its own bookkeeping (and a
    // memory its address space reservation) before any growth is counted, and a component
    // can instantiate a small module thousands of times: wasmtime's defaults are 10,000 of
    // each per store. Real packs need a few (an interpreter component some tens of
    // instances).
    fn instances(&self) -> usize {
        MAX_INSTANCES_PER_STORE
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_STORE
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_STORE
    }
}

/// Most core instances one pack instance (a store) may make.
const MAX_INSTANCES_PER_STORE: usize = 200;
/// Most linear memories one pack instance may hold (the native engine's kernel memory is one).
const MAX_MEMORIES_PER_STORE: usize = 32;
/// Most tables one pack instance may hold.
const MAX_TABLES_PER_STORE: usize = 200;

/// A host function's refusal, carried through wasmtime's error back to the call's result.
#[derive(Debug)]
pub(super) struct HostFailure {
    pub(super) kind: ErrorKind,
    pub(super) message: String,
}

impl HostFailure {
    /// The pack misused the ABI (a bad offset, an out-of-range read): reported as a trap.
    pub(super) fn trap(message: impl Into<String>) -> wasmtime::Error {
        wasmtime::Error::new(HostFailure {
            kind: ErrorKind::Trap,
            message: message.into(),
        })
    }
}

impl HostFailure {
    /// The host cancelled the call.
    pub(super) fn cancelled() -> wasmtime::Error {
        HostFailure::error(crate::cancel::CancelToken::error())
    }

    /// `err`, one of packhost's own errors a host function ends with, as the wasm call's
    /// error: the call fails with `err`'s code and message.
    pub(super) fn error(err: crate::error::Error) -> wasmtime::Error {
        wasmtime::Error::new(HostFailure::from(err))
    }
}

impl From<crate::error::Error> for HostFailure {
    fn from(err: crate::error::Error) -> Self {
        HostFailure {
            kind: err.kind().clone(),
            message: err.message().to_string(),
        }
    }
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostFailure {}
