//! Calls in a process forked after packs were loaded: the child has no timeout thread until
//! packhost starts one, and must not inherit a lock the parent's thread held mid-tick.
//! A binary of its own, because forking beside other tests' threads is not safe.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use packhost::Pack;
use support::{options, pack_path};

/// Forks enough times, with the parent's timeout thread ticking, that a child forked while
/// that thread held one of its locks is all but certain to occur.
const FORKS: usize = 150;

#[test]
fn every_child_forked_while_the_timeout_thread_ticks_still_times_out() {
    let pack = Pack::load_file(
        pack_path("hostile"),
        options(r#"{"limits": {"timeout_ms": 20, "fuel": null}}"#),
    )
    .expect("hostile pack loads");
    for round in 0..FORKS {
        // A call keeps the parent's ticker awake, so the fork lands at any point of its tick.
        pack.call("busy", br#"{"rounds":1}"#)
            .expect("the parent's call");
        // SAFETY: the child only calls the pack and leaves with `_exit`, running no test
        // harness code and no destructors of the parent's state.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let timed_out = matches!(pack.call("spin", b""), Err(e) if e.code() == "timeout");
            // SAFETY: ends the child at once, as a forked child of a threaded process must.
            unsafe { libc::_exit(if timed_out { 0 } else { 1 }) };
        }
        assert_eq!(
            wait_for(child, Duration::from_secs(5)),
            Some(0),
            "child {round} of {FORKS}: its looping call did not end in timeout"
        );
    }
}

/// The child's exit code, or None when it had to be killed after `limit`.
fn wait_for(child: libc::pid_t, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    let mut status = 0;
    while started.elapsed() < limit {
        // SAFETY: waits for our own child, without blocking.
        let finished = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if finished == child {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kills and reaps the child that overran.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, &mut status, 0);
    }
    None
}
