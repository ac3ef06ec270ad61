//! Per-call time of packhost against its anchors, on the benchmark pack: the `extism` crate
//! calling the same pack, and bare wasmtime (input copied straight into guest memory, a
//! plain export called) as the physical limit. Host functions get a group of their own: a
//! 64-byte round trip through one, on the plain extism-pdk `host_calls` pack, against the
//! extism crate's `Function`. `make bench` runs this with the `bench`
//! profile and turns criterion's estimates into BENCHMARKS.md; `cargo test --benches` runs
//! each benchmark once as a smoke test.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use packhost::{Pack, PackOptions};

/// The calls every host is timed on: action and input size.
const CASES: &[(&str, usize)] = &[
    ("length", 0),
    ("length", 1024),
    ("length", 102400),
    ("echo", 0),
    ("echo", 1024),
    ("echo", 102400),
    ("count_vowels", 1024),
];

/// The anchors' input: "hello world " repeated, cut to `n` bytes.
fn payload(n: usize) -> Vec<u8> {
    "hello world ".repeat(n / 12 + 1).as_bytes()[..n].to_vec()
}

fn dist(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: run `make packs`",
        path.display()
    );
    path
}

/// Options on `engine` with one warm instance shared by calls, as the extism crate keeps its
/// plugin: the like-for-like comparison.
fn warm(engine: &str) -> PackOptions {
    PackOptions::from_json(&format!(r#"{{"engine": "{engine}", "isolation": "pack"}}"#))
        .expect("bench options are valid")
}

/// The bare-wasmtime baseline: memory write, typed call, and for echo the read back.
struct Bare {
    store: wasmtime::Store<()>,
    memory: wasmtime::Memory,
    length: wasmtime::TypedFunc<i32, i32>,
    echo: wasmtime::TypedFunc<i32, i32>,
    out: Vec<u8>,
}

impl Bare {
    fn new() -> Self {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::from_file(
            &engine,
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bare.wat"),
        )
        .expect("bare.wat compiles");
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instantiates");
        Bare {
            memory: instance.get_memory(&mut store, "memory").unwrap(),
            length: instance.get_typed_func(&mut store, "length").unwrap(),
            echo: instance.get_typed_func(&mut store, "echo").unwrap(),
            out: vec![0; 102400],
            store,
        }
    }

    fn call(&mut self, action: &str, input: &[u8]) -> usize {
        self.memory.write(&mut self.store, 0, input).unwrap();
        let len = input.len() as i32;
        match action {
            "echo" => {
                let n = self.echo.call(&mut self.store, len).unwrap() as usize;
                self.memory
                    .read(&self.store, 131072, &mut self.out[..n])
                    .unwrap();
                n
            }
            _ => self.length.call(&mut self.store, len).unwrap() as usize,
        }
    }
}

fn per_call(c: &mut Criterion) {
    // packhost on its default (native) engine and on the extism engine, each on the pack
    // built with packhost-pdk and on the same pack built with extism-pdk alone.
    let packs = [
        ("packhost", "bench.wasm", "native"),
        ("packhost-extism-pdk", "bench_plain.wasm", "native"),
        ("packhost-extism-engine", "bench.wasm", "extism"),
    ]
    .map(|(label, file, engine)| {
        let options = warm(engine);
        (
            label,
            Pack::load_file(dist(file), options).expect("bench pack loads"),
        )
    });
    // The extism crate itself, the anchor of the Rust column, on both builds of the pack.
    let mut extism_plugins = [
        ("extism-crate", "bench.wasm"),
        ("extism-crate-extism-pdk", "bench_plain.wasm"),
    ]
    .map(|(label, file)| {
        let bytes = std::fs::read(dist(file)).unwrap();
        let plugin = extism::Plugin::new(&bytes, [], false).expect("extism loads the pack");
        (label, plugin)
    });
    let mut bare = Bare::new();

    for &(action, size) in CASES {
        let input = payload(size);
        let mut group = c.benchmark_group(format!("{action}/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        for (label, pack) in &packs {
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter(|| {
                    pack.call(action, &input)
                        .expect("call succeeds")
                        .output
                        .len()
                })
            });
        }
        for (label, plugin) in &mut extism_plugins {
            group.bench_function(BenchmarkId::from_parameter(*label), |b| {
                b.iter(|| {
                    plugin
                        .call::<&[u8], &[u8]>(action, &input)
                        .expect("call succeeds")
                        .len()
                })
            });
        }
        if action != "count_vowels" {
            group.bench_function(BenchmarkId::from_parameter("bare-wasmtime"), |b| {
                b.iter(|| bare.call(action, &input))
            });
        }
        group.finish();
    }
}

/// The four imports of `host_calls`, for the extism crate: `reverse` does the work timed,
/// the others only have to exist for the pack to link.
fn extism_host_functions() -> Vec<extism::Function> {
    use extism::{Function, UserData, PTR};
    let reverse = Function::new(
        "reverse",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin, inputs, outputs, _| {
            let input: Vec<u8> = plugin.memory_get_val::<&[u8]>(&inputs[0])?.to_vec();
            let reversed: Vec<u8> = input.into_iter().rev().collect();
            let handle = plugin.memory_new(&reversed)?;
            outputs[0] = plugin.memory_to_val(handle);
            Ok(())
        },
    );
    let unused = |name: &str| {
        Function::new(name, [PTR], [PTR], UserData::new(()), |_, _, _, _| {
            Err(extism::Error::msg("not part of the benchmark"))
        })
    };
    vec![
        reverse,
        unused("add"),
        unused("fail"),
        unused("context_echo"),
    ]
}

/// The same four for packhost.
fn packhost_host_functions() -> Vec<packhost::HostFunction> {
    use packhost::{HostFnError, HostFunction};
    let unused = |name: &str| {
        HostFunction::bytes(name, |_, _| {
            Err(HostFnError::new("not part of the benchmark"))
        })
    };
    vec![
        HostFunction::bytes("reverse", |_, input| {
            Ok(input.iter().rev().copied().collect())
        }),
        unused("add"),
        unused("fail"),
        unused("context_echo"),
    ]
}

fn host_function_round_trip(c: &mut Criterion) {
    let input = payload(64);
    let mut group = c.benchmark_group("host_fn/64");
    group.throughput(Throughput::Bytes(64));
    for (label, engine) in [("packhost", "native"), ("packhost-extism-engine", "extism")] {
        let options = warm(engine);
        let pack =
            Pack::load_file_with(dist("host_calls.wasm"), options, packhost_host_functions())
                .expect("host_calls loads");
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                pack.call("reverse_via_host", &input)
                    .expect("call succeeds")
                    .output
                    .len()
            })
        });
    }
    let bytes = std::fs::read(dist("host_calls.wasm")).unwrap();
    let mut plugin = extism::Plugin::new(&bytes, extism_host_functions(), false)
        .expect("extism loads host_calls");
    group.bench_function(BenchmarkId::from_parameter("extism-crate"), |b| {
        b.iter(|| {
            plugin
                .call::<&[u8], &[u8]>("reverse_via_host", &input)
                .expect("call succeeds")
                .len()
        })
    });
    group.finish();
}

/// What isolation costs, on the hostile pack (about 1 MiB of linear memory): a good call
/// (`busy` with no rounds) on a warm instance (`isolation: "pack"`) and on a fresh one per
/// call (`"call"`), and a call that traps, after which the instance is replaced.
fn isolation(c: &mut Criterion) {
    let mut group = c.benchmark_group("isolation/hostile");
    let good = br#"{"rounds":0}"#.as_slice();
    for mode in ["pack", "call"] {
        let options = PackOptions::from_json(&format!(r#"{{"isolation": "{mode}"}}"#))
            .expect("bench options are valid");
        let pack = Pack::load_file(dist("hostile.wasm"), options).expect("hostile loads");
        group.bench_function(BenchmarkId::from_parameter(format!("{mode}-good")), |b| {
            b.iter(|| pack.call("busy", good).expect("busy succeeds").output.len())
        });
        group.bench_function(BenchmarkId::from_parameter(format!("{mode}-failed")), |b| {
            b.iter(|| pack.call("trap", b"").expect_err("trap fails").code())
        });
    }
    group.finish();
}

criterion_group!(benches, per_call, host_function_round_trip, isolation);
criterion_main!(benches);
