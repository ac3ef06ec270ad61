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
    // built with packhost-pdk, on the same pack built with extism-pdk alone, and on the
    // same actions written in C with no PDK.
    let packs = [
        ("packhost", "bench.wasm", "native"),
        ("packhost-extism-pdk", "bench_plain.wasm", "native"),
        ("packhost-c", "c_bench.wasm", "native"),
        ("packhost-extism-engine", "bench.wasm", "extism"),
    ]
    .map(|(label, file, engine)| {
        let options = warm(engine);
        (
            label,
            Pack::load_file(dist(file), options).expect("bench pack loads"),
        )
    });
    // The extism crate itself, the anchor of the Rust column, on every build of the pack.
    let mut extism_plugins = [
        ("extism-crate", "bench.wasm"),
        ("extism-crate-extism-pdk", "bench_plain.wasm"),
        ("extism-crate-c", "c_bench.wasm"),
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

/// Key-value operations per call in the `kv/<backend>` benchmarks: one call times this many.
const KV_OPS_PER_CALL: usize = 100;

/// A key-value get and set of 64 bytes from inside a pack (`kv_probe`, `KV_OPS_PER_CALL`
/// operations per call, so the call's own cost is spread thin), per backend, next to the
/// same operation done directly from Rust on the same store: rusqlite on the same database
/// file, the redis client on the same server, a locked map for memory.
fn key_value(c: &mut Criterion) {
    let folder = std::env::temp_dir().join(format!("packhost-kv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("bench folder");
    let database = folder.join("kv.sqlite3");
    let redis = packhost_redis::LocalServer::start().expect("redis-server runs");
    packhost_redis::register();
    let times = KV_OPS_PER_CALL.to_string();
    for backend in ["memory", "sqlite", "redis"] {
        let options = PackOptions::from_value(serde_json::json!({
            "isolation": "pack",
            "kv": {"backend": backend, "path": database, "url": redis.url()},
        }))
        .expect("bench options are valid");
        let pack = Pack::load_file(dist("kv_probe.wasm"), options).expect("kv_probe loads");
        pack.call("set_repeatedly", b"1").expect("the key is set");
        let mut group = c.benchmark_group(format!("kv/{backend}"));
        group.throughput(Throughput::Elements(KV_OPS_PER_CALL as u64));
        group.bench_function(BenchmarkId::from_parameter("pack-get"), |b| {
            b.iter(|| {
                pack.call("get_repeatedly", times.as_bytes())
                    .expect("gets")
                    .output
                    .len()
            })
        });
        group.bench_function(BenchmarkId::from_parameter("pack-set"), |b| {
            b.iter(|| {
                pack.call("set_repeatedly", times.as_bytes())
                    .expect("sets")
                    .output
                    .len()
            })
        });
        let mut direct = Direct::open(backend, &database, &redis.url());
        group.bench_function(BenchmarkId::from_parameter("direct-get"), |b| {
            b.iter(|| (0..KV_OPS_PER_CALL).map(|_| direct.get()).sum::<usize>())
        });
        group.bench_function(BenchmarkId::from_parameter("direct-set"), |b| {
            b.iter(|| (0..KV_OPS_PER_CALL).for_each(|_| direct.set()))
        });
        group.finish();
    }
    let _ = std::fs::remove_dir_all(&folder);
}

/// The reference: one get or set of 64 bytes done straight on a backend's store. The memory
/// reference takes a lock per operation, as the memory backend must.
#[allow(clippy::mut_mutex_lock)]
enum Direct {
    Memory(std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>),
    Sqlite(rusqlite::Connection),
    Redis(packhost_redis::redis::Connection),
}

#[allow(clippy::mut_mutex_lock)]
impl Direct {
    fn open(backend: &str, database: &std::path::Path, url: &str) -> Self {
        match backend {
            "sqlite" => {
                let connection = rusqlite::Connection::open(database).expect("sqlite opens");
                connection
                    .pragma_update(None, "journal_mode", "WAL")
                    .unwrap();
                connection
                    .pragma_update(None, "synchronous", "NORMAL")
                    .unwrap();
                connection
                    .execute_batch(
                        "CREATE TABLE IF NOT EXISTS direct (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                         INSERT OR REPLACE INTO direct VALUES ('bench', zeroblob(64));",
                    )
                    .unwrap();
                Direct::Sqlite(connection)
            }
            "redis" => {
                let client = packhost_redis::redis::Client::open(url).expect("redis url");
                let mut connection = client.get_connection().expect("redis connects");
                packhost_redis::redis::cmd("SET")
                    .arg("direct")
                    .arg([b'v'; 64].as_slice())
                    .query::<()>(&mut connection)
                    .unwrap();
                Direct::Redis(connection)
            }
            _ => Direct::Memory(std::sync::Mutex::new(
                [("bench".to_string(), vec![b'v'; 64])]
                    .into_iter()
                    .collect(),
            )),
        }
    }

    fn get(&mut self) -> usize {
        match self {
            Direct::Memory(map) => map.lock().unwrap().get("bench").map_or(0, Vec::len),
            Direct::Sqlite(connection) => connection
                .prepare_cached("SELECT value FROM direct WHERE key = ?1")
                .unwrap()
                .query_row(["bench"], |row| row.get::<_, Vec<u8>>(0))
                .unwrap()
                .len(),
            Direct::Redis(connection) => packhost_redis::redis::cmd("GET")
                .arg("direct")
                .query::<Vec<u8>>(connection)
                .unwrap()
                .len(),
        }
    }

    fn set(&mut self) {
        let value = [b'v'; 64];
        match self {
            Direct::Memory(map) => {
                map.lock()
                    .unwrap()
                    .insert("bench".to_string(), value.to_vec());
            }
            Direct::Sqlite(connection) => {
                connection
                    .prepare_cached(
                        "INSERT INTO direct (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .unwrap()
                    .execute(rusqlite::params!["bench", value.as_slice()])
                    .unwrap();
            }
            Direct::Redis(connection) => packhost_redis::redis::cmd("SET")
                .arg("direct")
                .arg(value.as_slice())
                .query::<()>(connection)
                .unwrap(),
        }
    }
}

criterion_group!(
    benches,
    per_call,
    host_function_round_trip,
    isolation,
    key_value
);
criterion_main!(benches);
