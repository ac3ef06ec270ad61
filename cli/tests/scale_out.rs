//! Scaling out: two `packhost serve` replicas behind Debian's haproxy, all on loopback,
//! sharing a Redis key-value store and serving a pack from a local OCI registry. Under a
//! steady load, each replica in turn gets SIGTERM and is started again (a rolling restart):
//! no call may be lost or fail, and the shared counter must count every call.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use packhost_oci::testing::LocalRegistry;
use packhost_redis::LocalServer;
use serde_json::{json, Value};

const CLIENTS: usize = 4;

/// A port below the ephemeral range: a replica restarted on it must find it free, though
/// haproxy and the clients open connections from ephemeral ports all the while.
fn free_port() -> u16 {
    packhost::testing::unused_loopback_port().unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// Polls `url` until it answers 200, for at most a minute.
fn wait_until_ready(url: &str, process: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = agent().get(url).call() {
            if response.status() == 200 {
                return;
            }
        }
        assert!(
            process.try_wait().unwrap().is_none(),
            "{url}: the process exited"
        );
        assert!(Instant::now() < deadline, "{url} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Replica {
    port: u16,
    process: Child,
}

fn start_replica(port: u16, reference: &str, config: &Path, store: &Path) -> Replica {
    let mut process = Command::new(env!("CARGO_BIN_EXE_packhost"))
        .args(["serve", reference, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(config)
        .env("PACKHOST_STORE", store)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(&format!("http://127.0.0.1:{port}/readyz"), &mut process);
    Replica { port, process }
}

impl Replica {
    /// SIGTERM, as a supervisor sends it, then waits (at most a minute) for a clean exit.
    fn terminate(mut self) {
        let pid = i32::try_from(self.process.id()).unwrap();
        // SAFETY: signalling a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                assert!(status.success(), "the replica exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the replica did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// haproxy in front of the replicas: it stops sending calls to a replica whose `/readyz`
/// fails, and resends a call that a draining replica refused (503) or whose connection
/// closed, to the other one.
struct Balancer {
    port: u16,
    process: Child,
    _folder: PathBuf,
}

impl Balancer {
    fn start(replicas: &[u16]) -> Balancer {
        let port = free_port();
        let folder =
            std::env::temp_dir().join(format!("packhost-haproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let servers: String = replicas
            .iter()
            .enumerate()
            .map(|(at, replica)| {
                format!(
                    "    server runner{at} 127.0.0.1:{replica} check inter 100ms fall 1 rise 2\n"
                )
            })
            .collect();
        let config = format!(
            "global\n    maxconn 256\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
             \x20   retries 5\n    option redispatch 1\n\
             \x20   retry-on conn-failure empty-response 503\n\
             frontend calls\n    bind 127.0.0.1:{port}\n    default_backend runners\n\
             backend runners\n    balance roundrobin\n\
             \x20   option httpchk GET /readyz\n    http-check expect status 200\n{servers}"
        );
        let file = folder.join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let mut process = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .expect("haproxy runs (`make setup` installs Debian's haproxy)");
        wait_until_ready(&format!("http://127.0.0.1:{port}/readyz"), &mut process);
        Balancer {
            port,
            process,
            _folder: folder,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self._folder);
    }
}

/// One call of kv_probe's `count` through the balancer: its status and answer.
fn count(balancer_port: u16) -> (u16, Value) {
    let body = json!({"pack": "kv_probe", "action": "count", "input": "hits"}).to_string();
    match agent()
        .post(format!("http://127.0.0.1:{balancer_port}/v1/execute"))
        .header("content-type", "application/json")
        .send(&body)
    {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(err) => (0, Value::String(err.to_string())),
    }
}

#[test]
fn a_rolling_restart_under_load_loses_no_call() {
    let redis = LocalServer::start().expect("redis-server runs (`make setup` installs it)");
    let registry = LocalRegistry::start().unwrap();
    let pack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/kv_probe.wasm");
    let reference = format!("{}/packs/kv-probe:1", registry.address());
    packhost_oci::push(&pack, &reference, None).unwrap();
    let reference = format!("oci://{reference}");
    let store = std::env::temp_dir().join(format!("packhost-scale-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    // A replica told to stop keeps serving for half a second after its /readyz fails: five
    // of haproxy's check intervals, so calls stop coming before any is refused.
    let config = store.with_extension("json");
    let runner_config = json!({
        "options": {"kv": {"backend": "redis", "url": redis.url(), "path": "scale-out"}},
        "drain_grace_ms": 500,
    });
    std::fs::write(&config, runner_config.to_string()).unwrap();

    let ports = [free_port(), free_port()];
    let mut replicas: Vec<Option<Replica>> = ports
        .iter()
        .map(|port| Some(start_replica(*port, &reference, &config, &store)))
        .collect();
    let balancer = Balancer::start(&ports);

    let stop = AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(|| {
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        answers.push(count(balancer.port));
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    answers
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        for slot in &mut replicas {
            let replica = slot.take().unwrap();
            let port = replica.port;
            replica.terminate();
            *slot = Some(start_replica(port, &reference, &config, &store));
            std::thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, Ordering::SeqCst);
        clients
            .into_iter()
            .flat_map(|client| client.join().unwrap())
            .collect::<Vec<_>>()
    });

    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed during the rolling restart, e.g. {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(
        answers.len() > 50,
        "the load was too light: {}",
        answers.len()
    );
    // Every call counted once, in the one store both replicas share.
    let (status, last) = count(balancer.port);
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["output"], json!(answers.len() + 1), "{last}");
    drop(balancer);
    drop(replicas);
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_file(&config);
}
