//! The benchmark figures criterion does not fit: calls per second with one and two threads,
//! time to first call from raw bytes and from the compiled-code cache, resident memory per
//! loaded pack with one idle instance, a per-call time to compare with and without
//! `RUST_BACKTRACE`, and the text-tools pack in Rust, C, AssemblyScript, and Python and
//! JavaScript as components. Prints one `figure key=value ...` line per measurement for
//! `scripts/bench_report.py`.
//!
//! `make bench` runs it with `--bench`; `cargo test --benches` runs it without, as a smoke
//! test with tiny counts. `PACKHOST_BENCH_ONLY=per_call` limits it to the per-call lines
//! (`make bench` runs that part a second time with `RUST_BACKTRACE=1`), and
//! `PACKHOST_BENCH_ONLY=language_packs` to the text-tools pack in three languages.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use packhost::{Pack, PackOptions};

fn dist(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(file)
}

/// The anchors' input: "hello world " repeated, cut to `n` bytes.
fn payload(n: usize) -> Vec<u8> {
    b"hello world ".iter().copied().cycle().take(n).collect()
}

/// Options on `engine` with one warm instance shared by calls, as the official SDKs keep
/// their plugin: the like-for-like comparison.
fn options(engine: &str) -> PackOptions {
    PackOptions::from_json(&format!(r#"{{"engine": "{engine}", "isolation": "pack"}}"#))
        .expect("valid options")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// How hard to measure: full counts under `cargo bench`, a quick pass under `cargo test`.
struct Effort {
    rounds: usize,
    scale: f64,
}

impl Effort {
    fn calls(&self, full: usize) -> usize {
        ((full as f64 * self.scale) as usize).max(1)
    }
}

/// Median over rounds of the per-call time of `action` on `size` bytes, in microseconds.
fn per_call_us(pack: &Pack, action: &str, size: usize, effort: &Effort) -> f64 {
    per_call_on_us(pack, action, &payload(size), effort)
}

/// Median over rounds of the per-call time of `action` on `input`, in microseconds.
fn per_call_on_us(pack: &Pack, action: &str, input: &[u8], effort: &Effort) -> f64 {
    let calls = effort.calls((20_000_000 / input.len().max(1000)).clamp(20, 20_000));
    pack.call(action, input).expect("warm-up call");
    let rounds = (0..effort.rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                pack.call(action, input).expect("call succeeds");
            }
            started.elapsed().as_secs_f64() * 1e6 / calls as f64
        })
        .collect();
    median(rounds)
}

/// Calls per second of `threads` threads calling one pack for `duration`.
fn calls_per_second(
    pack: &Pack,
    action: &str,
    size: usize,
    threads: usize,
    duration: Duration,
) -> f64 {
    let input = payload(size);
    let start = Barrier::new(threads);
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    pack.call(action, &input).expect("warm-up call");
                    start.wait();
                    let began = Instant::now();
                    let mut calls = 0;
                    while began.elapsed() < duration {
                        for _ in 0..16 {
                            pack.call(action, &input).expect("call succeeds");
                        }
                        calls += 16;
                    }
                    calls
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / duration.as_secs_f64()
}

/// Calls per second of bare wasmtime (`bare.wat`'s `length` on input written into guest
/// memory) with fuel and epochs on, as packhost's engine has them, one store per thread on
/// a shared engine: what the hardware gives two threads for calls this small.
fn bare_calls_per_second(threads: usize, duration: Duration) -> f64 {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true).epoch_interruption(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let module = wasmtime::Module::from_file(
        &engine,
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bare.wat"),
    )
    .unwrap();
    let input = payload(1024);
    let start = Barrier::new(threads);
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut store = wasmtime::Store::new(&engine, ());
                    store.set_fuel(u64::MAX).unwrap();
                    store.set_epoch_deadline(u64::MAX / 2);
                    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                    let memory = instance.get_memory(&mut store, "memory").unwrap();
                    let length = instance
                        .get_typed_func::<i32, i32>(&mut store, "length")
                        .unwrap();
                    start.wait();
                    let began = Instant::now();
                    let mut calls = 0;
                    while began.elapsed() < duration {
                        for _ in 0..16 {
                            memory.write(&mut store, 0, &input).unwrap();
                            length.call(&mut store, input.len() as i32).unwrap();
                        }
                        calls += 16;
                    }
                    calls
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / duration.as_secs_f64()
}

/// Milliseconds from bytes to the end of the first call. A fresh custom section makes the
/// bytes new to every cache (`cold`), unless `forget` only empties the in-memory one so the
/// on-disk cache answers.
fn first_call_ms(bytes: &[u8], engine: &str) -> f64 {
    first_call_of_ms(bytes, engine, "length", b"x")
}

fn first_call_of_ms(bytes: &[u8], engine: &str, action: &str, input: &[u8]) -> f64 {
    let started = Instant::now();
    let pack = Pack::load(bytes, options(engine)).expect("pack loads");
    pack.call(action, input).expect("first call");
    started.elapsed().as_secs_f64() * 1e3
}

/// The text-tools pack as written in Rust, C and AssemblyScript (issue 15) and, as
/// WebAssembly components with their interpreter inside, Python and JavaScript (issue 18):
/// each one's size, first call from raw bytes and from the code cache, per-call times on the
/// same inputs (on one warm instance, and on a fresh instance per call), and the resident
/// memory one loaded pack with one idle instance adds; native engine.
fn language_packs(effort: &Effort, runs: usize) {
    let text = String::from_utf8(payload(1024)).expect("ASCII");
    let json = format!(r#"{{"text": "{text}"}}"#);
    for (language, file) in [
        ("rust", "text_tools.wasm"),
        ("c", "c_text_tools.wasm"),
        ("assemblyscript", "as_text_tools.wasm"),
        ("python", "py_text_tools.wasm"),
        ("javascript", "js_text_tools.wasm"),
    ] {
        let bytes = std::fs::read(dist(file)).expect("run `make packs` first");
        let first = median(
            (0..runs)
                .map(|run| {
                    let fresh = salted(&bytes, &format!("lang-{run}-{}", std::process::id()));
                    first_call_of_ms(&fresh, "native", "count_vowels", json.as_bytes())
                })
                .collect(),
        );
        // Compiled once, then each first call finds the code in the disk cache only.
        let cached_bytes = salted(&bytes, &format!("lang-cached-{}", std::process::id()));
        first_call_of_ms(&cached_bytes, "native", "count_vowels", json.as_bytes());
        let cached = median(
            (0..runs)
                .map(|_| {
                    packhost::forget_compiled_code();
                    first_call_of_ms(&cached_bytes, "native", "count_vowels", json.as_bytes())
                })
                .collect(),
        );
        let pack = Pack::load(&bytes, options("native")).expect("pack loads");
        let vowels = per_call_on_us(&pack, "count_vowels", json.as_bytes(), effort);
        let upper = per_call_on_us(&pack, "uppercase", text.as_bytes(), effort);
        let small = per_call_on_us(&pack, "uppercase", b"hi", effort);
        let isolated = Pack::load(&bytes, PackOptions::default()).expect("pack loads");
        let fresh_small = per_call_on_us(&isolated, "uppercase", b"hi", effort);
        let idle_kib = resident_per_idle_instance_kib(&bytes, "native", "uppercase", 4);
        println!(
            "figure language_pack language={language} size={} first_call_ms={first:.2} \
             cached_first_call_ms={cached:.2} count_vowels_1k_us={vowels:.3} \
             uppercase_1k_us={upper:.3} uppercase_2_us={small:.3} \
             fresh_uppercase_2_us={fresh_small:.3} idle_kib={idle_kib:.0}",
            bytes.len()
        );
    }
}

/// `bytes` with a custom section named `salt` appended: the same pack, a new identity.
fn salted(bytes: &[u8], salt: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut section = vec![salt.len() as u8];
    section.extend_from_slice(salt.as_bytes());
    out.push(0);
    out.push(section.len() as u8);
    out.extend(section);
    out
}

fn resident_kib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0.0);
    pages * 4.0
}

/// Resident KiB each loaded pack with one idle instance adds (after its first call of
/// `action`).
fn resident_per_idle_instance_kib(bytes: &[u8], engine: &str, action: &str, count: usize) -> f64 {
    // One pack loaded and called first, so one-time costs (engine, ticker, code) are paid.
    let warm = Pack::load(bytes, options(engine)).unwrap();
    warm.call(action, b"x").unwrap();
    let before = resident_kib();
    let packs: Vec<Pack> = (0..count)
        .map(|_| {
            let pack = Pack::load(bytes, options(engine)).unwrap();
            pack.call(action, b"x").unwrap();
            pack
        })
        .collect();
    let after = resident_kib();
    drop(packs);
    (after - before) / count as f64
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let effort = if full {
        Effort {
            rounds: 5,
            scale: 1.0,
        }
    } else {
        Effort {
            rounds: 1,
            scale: 0.001,
        }
    };
    let runs = if full { 5 } else { 1 };
    if std::env::var("PACKHOST_BENCH_ONLY").as_deref() == Ok("language_packs") {
        language_packs(&effort, runs);
        return;
    }
    let bench = std::fs::read(dist("bench.wasm")).expect("run `make packs` first");
    let native = Pack::load(&bench, options("native")).unwrap();

    for (action, size) in [("length", 0), ("length", 1024), ("echo", 1024)] {
        let us = per_call_us(&native, action, size, &effort);
        println!("figure per_call action={action} bytes={size} us={us:.3}");
    }
    if std::env::var("PACKHOST_BENCH_ONLY").as_deref() == Ok("per_call") {
        return;
    }

    let duration = Duration::from_millis(if full { 2000 } else { 20 });
    for (action, size) in [("length", 1024), ("count_vowels", 102400)] {
        for threads in [1, 2] {
            let rate = calls_per_second(&native, action, size, threads, duration);
            println!("figure threads action={action} bytes={size} threads={threads} calls_per_s={rate:.0}");
        }
    }

    for threads in [1, 2] {
        let rate = bare_calls_per_second(threads, duration);
        println!("figure threads action=bare-wasmtime bytes=1024 threads={threads} calls_per_s={rate:.0}");
    }

    language_packs(&effort, runs);

    for engine in ["native", "extism"] {
        let cold = median(
            (0..runs)
                .map(|run| {
                    first_call_ms(
                        &salted(
                            &bench,
                            &format!("cold-{engine}-{run}-{}", std::process::id()),
                        ),
                        engine,
                    )
                })
                .collect(),
        );
        let cached_bytes = salted(&bench, &format!("cached-{engine}-{}", std::process::id()));
        first_call_ms(&cached_bytes, engine);
        let cached = median(
            (0..runs)
                .map(|_| {
                    packhost::forget_compiled_code();
                    first_call_ms(&cached_bytes, engine)
                })
                .collect(),
        );
        println!("figure first_call engine={engine} raw_ms={cold:.2} cached_ms={cached:.2}");
    }

    let count = if full { 16 } else { 2 };
    for engine in ["native", "extism"] {
        let kib = resident_per_idle_instance_kib(&bench, engine, "length", count);
        println!("figure idle_instance engine={engine} rss_kib={kib:.0}");
    }
}
