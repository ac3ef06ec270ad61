//! Failed calls replace their instance's store, not its engine: hundreds of failures in a
//! row must not grow resident memory or the thread count. (A test binary of its own, so the
//! process's memory and threads are this test's alone.)

mod support;

use packhost::Pack;

fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("linux /proc");
    let kib: u64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .expect("VmRSS line");
    kib / 1024
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("linux /proc")
        .count()
}

#[test]
fn repeated_failures_do_not_grow_memory_or_threads() {
    let pack = Pack::load_file(support::pack_path("hostile"), Default::default()).unwrap();
    let fail = || assert_eq!(pack.call("trap", b"").unwrap_err().code(), "trap");
    for _ in 0..50 {
        fail();
    }
    let (memory_before, threads_before) = (resident_mib(), threads());
    for _ in 0..400 {
        fail();
    }
    let (memory_after, threads_after) = (resident_mib(), threads());
    assert!(
        memory_after <= memory_before + 16,
        "resident memory went from {memory_before} to {memory_after} MiB over 400 failed calls"
    );
    assert!(
        threads_after <= threads_before + 1,
        "threads went from {threads_before} to {threads_after} over 400 failed calls"
    );
    pack.call("busy", br#"{"rounds": 10}"#)
        .expect("the pack still works");
}
