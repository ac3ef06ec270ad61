//! Key-value storage as an application running several processes uses it: counters that
//! processes race on through the embedded backend, a write that survives its process being
//! killed (on SQLite, and on Redis with the server killed too), expiry, and the load-time
//! failures of a store that cannot be opened.
//!
//! The child processes are this test binary run again with `PACKHOST_KV_CHILD` set, which
//! makes `child_process` do one child's work and every other test return at once.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use packhost::{CallOptions, Pack, PackOptions};
use serde_json::json;

const CHILD: &str = "PACKHOST_KV_CHILD";

/// What a `set-then-wait` child prints once its set has returned.
const SET_MARK: &str = "packhost-kv-child: set returned";

fn kv_pack(backend: &str, path: &str) -> Pack {
    kv_pack_at(json!({"backend": backend, "path": path}))
}

fn kv_pack_at(kv: serde_json::Value) -> Pack {
    packhost_redis::register();
    let options = PackOptions::from_value(json!({ "kv": kv })).expect("kv options are valid");
    Pack::load_file(support::pack_path("kv_probe"), options).expect("kv_probe loads")
}

/// The store a child process uses: the sqlite file, or the Redis server's URL.
fn child_store() -> serde_json::Value {
    let database = std::env::var("PACKHOST_KV_DATABASE").expect("the parent names the store");
    match database.strip_prefix("redis:") {
        Some(url) => json!({"backend": "redis", "url": url}),
        None => json!({"backend": "sqlite", "path": database}),
    }
}

fn for_tenant(tenant: &str) -> CallOptions {
    CallOptions {
        context: json!({"tenant": tenant}),
        ..CallOptions::default()
    }
}

fn run(pack: &Pack, tenant: &str, script: serde_json::Value) -> serde_json::Value {
    let out = pack
        .call_with_options("run", script.to_string().as_bytes(), &for_tenant(tenant))
        .expect("the script runs");
    serde_json::from_slice(&out.output).expect("run returns JSON")
}

/// This test binary, running only `child_process`, with the child's task in the env and the
/// store it uses (a database file, or `redis:` and a server's URL).
fn child(task: &str, database: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, task)
        .env("PACKHOST_KV_DATABASE", database)
        .stdout(Stdio::piped());
    command
}

/// One child's work, when this binary runs as a child: `count:N` adds one to the shared
/// counter N times; `set-then-wait` stores a value, says so on stdout, and waits to be killed.
#[test]
fn child_process() {
    let Ok(task) = std::env::var(CHILD) else {
        return;
    };
    let pack = kv_pack_at(child_store());
    if let Some(times) = task.strip_prefix("count:") {
        let times: u32 = times.parse().expect("a count");
        for _ in 0..times {
            pack.call_with_options("count", b"shared", &for_tenant("racers"))
                .expect("an increment succeeds");
        }
    } else if task == "set-then-wait" {
        run(
            &pack,
            "durable",
            json!([{"set": {"key": "k", "value": "kept"}}]),
        );
        println!("{SET_MARK}");
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn processes_counting_through_compare_and_set_lose_no_increment() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    const PROCESSES: u32 = 4;
    const INCREMENTS: u32 = 50;
    let folder = support::scratch_folder("kv-race");
    let database = folder.join("kv.sqlite3");
    // The parent opens the store first, so the children race on the counter, not the schema.
    let pack = kv_pack("sqlite", &database.display().to_string());
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            child(&format!("count:{INCREMENTS}"), &database)
                .spawn()
                .expect("a child starts")
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("the child ends");
        assert!(status.success(), "a counting child failed: {status}");
    }
    let out = pack
        .call_with_options("get_value", b"shared", &for_tenant("racers"))
        .unwrap();
    assert_eq!(
        out.text(),
        Some((PROCESSES * INCREMENTS).to_string().as_str())
    );
}

/// Starts a `set-then-wait` child on `store` and kills it with SIGKILL (no destructor, no
/// flush, no checkpoint runs in it) as soon as it says its set returned.
fn kill_a_child_once_it_has_set(store: &Path) {
    let mut process = child("set-then-wait", store)
        .spawn()
        .expect("a child starts");
    // The test harness prints its own text around the child's mark.
    let said_set = BufReader::new(process.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(SET_MARK));
    assert!(said_set, "the child reports its set");
    process.kill().unwrap();
    process.wait().unwrap();
}

#[test]
fn a_set_that_returned_survives_its_process_being_killed() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let folder = support::scratch_folder("kv-kill");
    let database = folder.join("kv.sqlite3");
    kill_a_child_once_it_has_set(&database);
    let pack = kv_pack("sqlite", &database.display().to_string());
    assert_eq!(
        run(&pack, "durable", json!([{"get": {"key": "k"}}])),
        json!(["kept"])
    );
}

#[test]
fn a_set_that_returned_survives_its_process_and_the_redis_server_being_killed() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let mut server = packhost_redis::LocalServer::start().expect("redis-server runs");
    kill_a_child_once_it_has_set(Path::new(&format!("redis:{}", server.url())));
    // The server goes down hard too: only its append-only file (fsynced per write) remains.
    server.kill_and_restart().expect("redis-server restarts");
    let pack = kv_pack_at(json!({"backend": "redis", "url": server.url()}));
    assert_eq!(
        run(&pack, "durable", json!([{"get": {"key": "k"}}])),
        json!(["kept"])
    );
}

#[test]
fn entries_expire_after_their_time_to_live_on_every_backend() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let folder = support::scratch_folder("kv-ttl");
    let sqlite = folder.join("kv.sqlite3").display().to_string();
    for (backend, path) in [("memory", "kv-ttl"), ("sqlite", sqlite.as_str())] {
        let pack = kv_pack(backend, path);
        let script = json!([
            {"set": {"key": "short", "value": "soon gone", "ttl_ms": 150}},
            {"set": {"key": "long", "value": "stays"}},
            {"get": {"key": "short"}}
        ]);
        assert_eq!(run(&pack, "t", script)[2], json!("soon gone"), "{backend}");
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        assert!(started.elapsed() >= Duration::from_millis(150));
        let after = run(
            &pack,
            "t",
            json!([{"get": {"key": "short"}}, {"list": {}}, {"compare_and_set": {"key": "short", "expected": null, "value": "again"}}]),
        );
        assert_eq!(after, json!([null, ["long"], true]), "{backend}");
    }
}

#[test]
fn expired_entries_give_their_quota_back() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let folder = support::scratch_folder("kv-sweep");
    let sqlite = folder.join("kv.sqlite3").display().to_string();
    for (backend, path) in [("memory", "kv-sweep"), ("sqlite", sqlite.as_str())] {
        let options = PackOptions::from_value(
            json!({"kv": {"backend": backend, "path": path, "max_keys_per_tenant": 2}}),
        )
        .unwrap();
        let pack = Pack::load_file(support::pack_path("kv_probe"), options).unwrap();
        run(
            &pack,
            "t",
            json!([{"set": {"key": "a", "value": "1", "ttl_ms": 50}}, {"set": {"key": "b", "value": "2", "ttl_ms": 50}}]),
        );
        std::thread::sleep(Duration::from_millis(100));
        let after = run(
            &pack,
            "t",
            json!([{"set": {"key": "c", "value": "3"}}, {"set": {"key": "d", "value": "4"}}, {"list": {}}]),
        );
        assert_eq!(after, json!([null, null, ["c", "d"]]), "{backend}");
    }
}

#[test]
fn a_store_that_cannot_be_opened_fails_the_load() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let load = |kv: serde_json::Value| {
        let options = PackOptions::from_value(json!({ "kv": kv })).unwrap();
        Pack::load_file(support::pack_path("kv_probe"), options).unwrap_err()
    };
    let err = load(json!({"path": "/nonexistent/folder/kv.sqlite3"}));
    assert_eq!(err.code(), "io", "{err}");
    assert!(err.message().contains("/nonexistent/folder"), "{err}");
    let err = load(json!({}));
    assert_eq!(err.code(), "invalid_options", "{err}");
    assert!(err.message().contains("kv.path"), "{err}");
}

#[test]
fn hosts_cannot_register_functions_in_packhost_modules() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let impostor = packhost::HostFunction::bytes("get", |_, input| Ok(input.to_vec()))
        .with_namespace(packhost::KV_NAMESPACE);
    let err = Pack::load_file_with(
        support::pack_path("kv_probe"),
        PackOptions::default(),
        vec![impostor],
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_options", "{err}");
}
