//! WASI for native instances: wasi-common's preview 1 context with a scheduler that never
//! blocks past the running call's deadline, and wakes when the call is cancelled.
//!
//! Epochs interrupt wasm code, not a host function that sleeps: without this, a pack with
//! `allow_wasi` could ask `poll_oneoff` for an hour's sleep and hold its host thread that
//! long. A wait that would end after the deadline sleeps until the deadline and then ends
//! the call with `timeout`, as the epoch would have; a wait the host cancels ends at once
//! with `cancelled`. (The instance has no sockets, and its only files are those of the
//! directories mounted from `allowed_paths`, which are always ready: clocks are the only
//! thing `poll_oneoff` can wait on.) Read-only mounts are wrapped in [`ReadOnlyDir`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasi_common::dir::{OpenResult, ReaddirCursor, ReaddirEntity, WasiDir};
use wasi_common::file::{FdFlags, FileType, Filestat, OFlags, WasiFile};
use wasi_common::sync::{clocks_ctx, random_ctx};
use wasi_common::{Poll, WasiSched};
use wasi_common::{Table, WasiCtx};

use super::state::HostFailure;
use crate::cancel::CancelToken;
use crate::capabilities::files::Mount;
use crate::error::{Error, ErrorKind};

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

/// A WASI context whose waits end at `deadline`, with `mounts` preopened (from fd 3, in
/// order).
///
/// # Errors
/// `io` when a mounted directory cannot be opened (it was a directory at load).
pub(super) fn context(deadline: Arc<CallDeadline>, mounts: &[Mount]) -> Result<WasiCtx, Error> {
    let ctx = WasiCtx::new(
        random_ctx(),
        clocks_ctx(),
        Box::new(BoundedSched { deadline }),
        Table::new(),
    );
    for mount in mounts {
        let opened = wasi_common::sync::Dir::open_ambient_dir(
            &mount.host,
            wasi_common::sync::ambient_authority(),
        )
        .map_err(|err| {
            Error::new(
                ErrorKind::Io,
                format!("allowed_paths: cannot open {}: {err}", mount.host.display()),
            )
        })?;
        let dir = wasi_common::sync::dir::Dir::from_cap_std(opened);
        let dir: Box<dyn WasiDir> = if mount.read_only {
            Box::new(ReadOnlyDir(Box::new(dir)))
        } else {
            Box::new(dir)
        };
        ctx.push_preopened_dir(dir, &mount.guest).map_err(|err| {
            Error::new(
                ErrorKind::Internal,
                format!("allowed_paths: cannot mount {}: {err}", mount.guest),
            )
        })?;
    }
    Ok(ctx)
}

/// A mounted directory the pack may read but not change: opening for writing, creating,
/// truncating or appending, and every call that changes the tree, fail with `EROFS`.
/// Directories opened inside it are read-only too, and files are [`ReadOnlyFile`]s.
struct ReadOnlyDir(Box<dyn WasiDir>);

/// A file of a read-only mount. The host opened it for reading only, so the system refuses
/// writes, but not everything: its times, for one, change through any handle its owner
/// holds. Whatever would change it fails with `EROFS` here.
struct ReadOnlyFile(Box<dyn WasiFile>);

#[async_trait::async_trait]
impl WasiFile for ReadOnlyFile {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn get_filetype(&self) -> Result<FileType, wasi_common::Error> {
        self.0.get_filetype().await
    }

    #[cfg(unix)]
    fn pollable(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.0.pollable()
    }

    fn isatty(&self) -> bool {
        self.0.isatty()
    }

    async fn datasync(&self) -> Result<(), wasi_common::Error> {
        self.0.datasync().await
    }

    async fn sync(&self) -> Result<(), wasi_common::Error> {
        self.0.sync().await
    }

    async fn get_fdflags(&self) -> Result<FdFlags, wasi_common::Error> {
        self.0.get_fdflags().await
    }

    async fn set_fdflags(&mut self, flags: FdFlags) -> Result<(), wasi_common::Error> {
        if flags.contains(FdFlags::APPEND) {
            return Err(read_only());
        }
        self.0.set_fdflags(flags).await
    }

    async fn get_filestat(&self) -> Result<Filestat, wasi_common::Error> {
        self.0.get_filestat().await
    }

    async fn set_filestat_size(&self, _size: u64) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn advise(
        &self,
        offset: u64,
        len: u64,
        advice: wasi_common::file::Advice,
    ) -> Result<(), wasi_common::Error> {
        self.0.advise(offset, len, advice).await
    }

    async fn set_times(
        &self,
        _atime: Option<wasi_common::SystemTimeSpec>,
        _mtime: Option<wasi_common::SystemTimeSpec>,
    ) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn read_vectored<'a>(
        &self,
        bufs: &mut [std::io::IoSliceMut<'a>],
    ) -> Result<u64, wasi_common::Error> {
        self.0.read_vectored(bufs).await
    }

    async fn read_vectored_at<'a>(
        &self,
        bufs: &mut [std::io::IoSliceMut<'a>],
        offset: u64,
    ) -> Result<u64, wasi_common::Error> {
        self.0.read_vectored_at(bufs, offset).await
    }

    async fn write_vectored<'a>(
        &self,
        _bufs: &[std::io::IoSlice<'a>],
    ) -> Result<u64, wasi_common::Error> {
        Err(read_only())
    }

    async fn write_vectored_at<'a>(
        &self,
        _bufs: &[std::io::IoSlice<'a>],
        _offset: u64,
    ) -> Result<u64, wasi_common::Error> {
        Err(read_only())
    }

    async fn seek(&self, pos: std::io::SeekFrom) -> Result<u64, wasi_common::Error> {
        self.0.seek(pos).await
    }

    async fn peek(&self, buf: &mut [u8]) -> Result<u64, wasi_common::Error> {
        self.0.peek(buf).await
    }

    fn num_ready_bytes(&self) -> Result<u64, wasi_common::Error> {
        self.0.num_ready_bytes()
    }

    async fn readable(&self) -> Result<(), wasi_common::Error> {
        self.0.readable().await
    }
}

fn read_only() -> wasi_common::Error {
    wasi_common::snapshots::preview_1::types::Errno::Rofs.into()
}

#[async_trait::async_trait]
impl WasiDir for ReadOnlyDir {
    fn as_any(&self) -> &dyn std::any::Any {
        // Itself, not the directory inside: a rename or link into this directory from a
        // writable one finds no directory of its own kind here, and is refused.
        self
    }

    async fn open_file(
        &self,
        symlink_follow: bool,
        path: &str,
        oflags: OFlags,
        read: bool,
        write: bool,
        fdflags: FdFlags,
    ) -> Result<OpenResult, wasi_common::Error> {
        let changes = OFlags::CREATE | OFlags::TRUNCATE | OFlags::EXCLUSIVE;
        if write || oflags.intersects(changes) || fdflags.contains(FdFlags::APPEND) {
            return Err(read_only());
        }
        match self
            .0
            .open_file(symlink_follow, path, oflags, read, write, fdflags)
            .await?
        {
            OpenResult::Dir(dir) => Ok(OpenResult::Dir(Box::new(ReadOnlyDir(dir)))),
            OpenResult::File(file) => Ok(OpenResult::File(Box::new(ReadOnlyFile(file)))),
        }
    }

    async fn create_dir(&self, _path: &str) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn readdir(
        &self,
        cursor: ReaddirCursor,
    ) -> Result<
        Box<dyn Iterator<Item = Result<ReaddirEntity, wasi_common::Error>> + Send>,
        wasi_common::Error,
    > {
        self.0.readdir(cursor).await
    }

    async fn symlink(&self, _old_path: &str, _new_path: &str) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn remove_dir(&self, _path: &str) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn unlink_file(&self, _path: &str) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn read_link(&self, path: &str) -> Result<std::path::PathBuf, wasi_common::Error> {
        self.0.read_link(path).await
    }

    async fn get_filestat(&self) -> Result<Filestat, wasi_common::Error> {
        self.0.get_filestat().await
    }

    async fn get_path_filestat(
        &self,
        path: &str,
        follow_symlinks: bool,
    ) -> Result<Filestat, wasi_common::Error> {
        self.0.get_path_filestat(path, follow_symlinks).await
    }

    async fn rename(
        &self,
        _path: &str,
        _dest_dir: &dyn WasiDir,
        _dest_path: &str,
    ) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn hard_link(
        &self,
        _path: &str,
        _target_dir: &dyn WasiDir,
        _target_path: &str,
    ) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }

    async fn set_times(
        &self,
        _path: &str,
        _atime: Option<wasi_common::SystemTimeSpec>,
        _mtime: Option<wasi_common::SystemTimeSpec>,
        _follow_symlinks: bool,
    ) -> Result<(), wasi_common::Error> {
        Err(read_only())
    }
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
            // Only clocks are waited on (no file or socket subscription): the wait is ours
            // to bound and to cut short.
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
