//! The runner over real HTTP on loopback: calls and their answers, every error code's
//! status, tenants and their limits, metrics, and a drain that lets calls in flight finish.

use std::time::{Duration, Instant};

mod support;

use packhost_runner::{RunnerConfig, RunningRunner};
use serde_json::{json, Value};
use support::{agent, post, sample};

const ACME_TOKEN: &str = "acme-0123456789abcdef";
const BETA_TOKEN: &str = "beta-0123456789abcdef";

/// A runner on a free loopback port serving text-tools and hostile (whose calls time out
/// after 300 ms), with the given tenants.
fn start(tenants: Value) -> RunningRunner {
    start_with(tenants, 300)
}

fn start_with(tenants: Value, hostile_timeout_ms: u64) -> RunningRunner {
    let config = json!({
        "listen": "127.0.0.1:0",
        "packs": [sample("text_tools"), sample("hostile")],
        "pack_options": {"hostile": {"limits": {"timeout_ms": hostile_timeout_ms, "fuel": null}}},
        "tenants": tenants,
        "max_request_bytes": 65536,
        "drain_timeout_ms": 5000,
    });
    let config = RunnerConfig::from_json(&config.to_string())
        .unwrap()
        .finish(None)
        .unwrap();
    RunningRunner::start(config).unwrap()
}

fn execute(runner: &RunningRunner, token: Option<&str>, request: Value) -> (u16, Value) {
    post(runner, "/v1/execute", token, &request.to_string())
}

fn get(runner: &RunningRunner, path: &str) -> (u16, String) {
    let mut response = agent()
        .get(format!("http://{}{path}", runner.address()))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

#[test]
fn a_call_answers_the_output_with_its_usage_and_logs() {
    let runner = start(json!([]));
    let (status, answer) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "count_vowels", "input": {"text": "hello world"},
               "context": {"request": 7}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"], json!({"count": 3, "vowels": "eoo"}));
    assert!(answer["usage"]["fuel_consumed"].as_u64().unwrap() > 0);
    assert_eq!(answer["usage"]["context"], json!({"request": 7}));
    assert_eq!(answer["usage"]["action"], "count_vowels");

    // A text action takes a string as its bytes and answers text; raw bytes go as base64.
    let (_, answer) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "uppercase", "input": "grüße"}),
    );
    assert_eq!(answer["output"], "GRÜSSE");
    let (_, answer) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "echo", "input_base64": "AP8="}),
    );
    assert_eq!(answer["output_base64"], "AP8=", "{answer}");
    let (_, answer) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "chatty"}),
    );
    assert!(!answer["logs"].as_array().unwrap().is_empty(), "{answer}");

    // By digest and by name@version, as /v1/packs lists them.
    let (status, listing) = get(&runner, "/v1/packs");
    assert_eq!(status, 200);
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let text_tools = listing["packs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pack| pack["name"] == "text-tools")
        .unwrap()
        .clone();
    assert!(text_tools["actions"].as_array().unwrap().len() >= 8);
    for reference in [
        text_tools["digest"].as_str().unwrap().to_string(),
        format!("text-tools@{}", text_tools["version"].as_str().unwrap()),
    ] {
        let (status, answer) = execute(
            &runner,
            None,
            json!({"pack": reference, "action": "greet", "input": "runner"}),
        );
        assert_eq!(status, 200, "{reference}: {answer}");
    }
    runner.stop().unwrap();
}

#[test]
fn each_error_code_gets_its_status_and_the_failed_call_its_usage() {
    let runner = start(json!([]));
    let cases = [
        (
            json!({"pack": "nope", "action": "greet"}),
            404,
            "pack_not_found",
        ),
        (
            json!({"pack": "text-tools", "action": "nope"}),
            404,
            "action_not_found",
        ),
        (json!({"pack": "text-tools"}), 400, "bad_request"),
        (
            json!({"pack": "text-tools", "action": "greet", "inptu": "x"}),
            400,
            "bad_request",
        ),
        (
            json!({"pack": "text-tools", "action": "fail_with", "input": "no thanks"}),
            422,
            "plugin_error",
        ),
        (json!({"pack": "hostile", "action": "trap"}), 422, "trap"),
        (json!({"pack": "hostile", "action": "spin"}), 504, "timeout"),
    ];
    for (request, status, code) in cases {
        let (got_status, answer) = execute(&runner, None, request.clone());
        assert_eq!(
            (got_status, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{request}: {answer}"
        );
    }
    let (_, answer) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "fail_with", "input": "no thanks"}),
    );
    assert_eq!(answer["error"]["message"], "no thanks");
    let (_, answer) = execute(&runner, None, json!({"pack": "hostile", "action": "spin"}));
    assert!(
        answer["usage"]["wall_time_us"].as_u64().unwrap() >= 250_000,
        "a timed-out call reports what it cost: {answer}"
    );

    let (status, answer) = post(&runner, "/v1/execute", None, "{not json");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let huge = json!({"pack": "text-tools", "action": "echo", "input": "x".repeat(70_000)});
    let (status, answer) = execute(&runner, None, huge);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("input_too_large")),
        "{answer}"
    );
    // The runner survives all of it.
    let (status, _) = execute(
        &runner,
        None,
        json!({"pack": "text-tools", "action": "greet", "input": "still here"}),
    );
    assert_eq!(status, 200);
    runner.stop().unwrap();
}

#[test]
fn tenants_need_their_token_and_cannot_pose_as_another() {
    let runner = start(json!([
        {"name": "acme", "token": ACME_TOKEN},
        {"name": "beta", "token": BETA_TOKEN},
    ]));
    let request = json!({"pack": "text-tools", "action": "greet", "input": "x",
                         "context": {"tenant": "beta", "trace": "t1"}});
    for token in [None, Some("acme-0123456789abcdeX"), Some("")] {
        let (status, answer) = execute(&runner, token, request.clone());
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
    }
    let response = agent()
        .post(format!("http://{}/v1/execute", runner.address()))
        .send(request.to_string())
        .unwrap();
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    let (status, answer) = execute(&runner, Some(ACME_TOKEN), request);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["usage"]["context"],
        json!({"tenant": "acme", "trace": "t1"}),
        "the token decides the tenant, not the caller's context"
    );
    let (status, _) = get(&runner, "/v1/packs");
    assert_eq!(status, 401, "the pack list needs a token too");
    runner.stop().unwrap();
}

#[test]
fn a_tenants_calls_share_warm_instances_and_no_other_tenant_sees_them() {
    let runner = start(json!([
        {"name": "acme", "token": ACME_TOKEN},
        {"name": "beta", "token": BETA_TOKEN},
    ]));
    // `remember` answers what its instance was given last (in its memory and in a var).
    let remember = |token, input: &str| {
        let request = json!({"pack": "hostile", "action": "remember", "input": input});
        let (status, answer) = execute(&runner, Some(token), request);
        assert_eq!(status, 200, "{answer}");
        answer["output"].as_str().unwrap().to_string()
    };
    assert_eq!(remember(ACME_TOKEN, "acme secret"), "|");
    assert_eq!(
        remember(BETA_TOKEN, "beta"),
        "|",
        "beta never gets acme's instance"
    );
    assert_eq!(remember(ACME_TOKEN, "again"), "acme secret|acme secret");
    // Many more calls of acme's, most on the async worker: all on acme's warm instance.
    for round in 0..20 {
        assert_eq!(
            remember(ACME_TOKEN, "again"),
            "again|again",
            "round {round}"
        );
    }
    assert_eq!(remember(BETA_TOKEN, "beta again"), "beta|beta");
    runner.stop().unwrap();
}

#[test]
fn a_tenant_over_its_concurrency_gets_429_while_others_still_run() {
    let runner = start_with(
        json!([
            {"name": "acme", "token": ACME_TOKEN, "max_concurrent": 1},
            {"name": "beta", "token": BETA_TOKEN},
        ]),
        2000,
    );
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            execute(
                &runner,
                Some(ACME_TOKEN),
                json!({"pack": "hostile", "action": "spin"}),
            )
        });
        wait_for_a_call_in_flight(&runner);
        let response = agent()
            .post(format!("http://{}/v1/execute", runner.address()))
            .header("authorization", format!("Bearer {ACME_TOKEN}"))
            .send(json!({"pack": "text-tools", "action": "greet", "input": "x"}).to_string())
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let (status, _) = execute(
            &runner,
            Some(BETA_TOKEN),
            json!({"pack": "text-tools", "action": "greet", "input": "x"}),
        );
        assert_eq!(status, 200, "another tenant is not held up");
        assert_eq!(slow.join().unwrap().0, 504);
    });
    runner.stop().unwrap();
}

/// Waits until the runner reports one call running.
fn wait_for_a_call_in_flight(runner: &RunningRunner) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(runner, "/metrics")
        .1
        .contains("packhost_runner_calls_in_flight 1")
    {
        assert!(Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn metrics_count_calls_by_tenant_pack_action_and_code() {
    let runner = start(json!([{"name": "acme", "token": ACME_TOKEN}]));
    for _ in 0..2 {
        execute(
            &runner,
            Some(ACME_TOKEN),
            json!({"pack": "text-tools", "action": "greet", "input": "x"}),
        );
    }
    execute(
        &runner,
        Some(ACME_TOKEN),
        json!({"pack": "text-tools", "action": "fail_with", "input": "no"}),
    );
    // A caller's made-up names get no series of their own.
    execute(
        &runner,
        Some(ACME_TOKEN),
        json!({"pack": "text-tools", "action": "made-up-action"}),
    );
    let (status, text) = get(&runner, "/metrics");
    assert_eq!(status, 200);
    for line in [
        r#"packhost_runner_calls_total{tenant="acme",pack="text-tools",action="greet",code="ok"} 2"#,
        r#"packhost_runner_calls_total{tenant="acme",pack="text-tools",action="fail_with",code="plugin_error"} 1"#,
        r#"packhost_runner_calls_total{tenant="acme",pack="text-tools",action="",code="action_not_found"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    assert!(!text.contains("made-up-action"));
    assert!(text.contains("packhost_runner_call_duration_seconds_bucket"));
    assert!(text.contains("packhost_runner_fuel_consumed_total{"));
    // The core's pool: made (at its default size) once some pack needed a second instance,
    // which other tests in this process may or may not have done yet.
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("packhost_runner_{name} ")))
            .unwrap_or_else(|| panic!("{name} is reported"))
            .parse()
            .unwrap()
    };
    let slots = gauge("pooled_instance_slots");
    assert!(slots == 0 || slots == 128, "{slots}");
    assert!(gauge("pooled_instances_in_use") <= slots);
    runner.stop().unwrap();
}

#[test]
fn a_drain_refuses_new_calls_and_lets_running_ones_finish() {
    // The call in flight spins until its own timeout, 2 s: long enough to look at the
    // draining runner meanwhile, within the drain's 5 s.
    let runner = start_with(json!([]), 2000);
    assert_eq!(get(&runner, "/readyz").0, 200);
    std::thread::scope(|scope| {
        let spin = json!({"pack": "hostile", "action": "spin"});
        let running = scope.spawn(|| execute(&runner, None, spin));
        wait_for_a_call_in_flight(&runner);
        runner.begin_drain();
        let (status, answer) = get(&runner, "/readyz");
        assert_eq!(status, 503, "{answer}");
        let late = json!({"pack": "text-tools", "action": "greet", "input": "late"});
        let (status, answer) = execute(&runner, None, late);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "{answer}"
        );
        let (status, answer) = running.join().unwrap();
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (504, Some("timeout")),
            "the call in flight ran to its own end: {answer}"
        );
        assert!(answer["usage"]["wall_time_us"].as_u64().unwrap() >= 1_900_000);
    });
    runner.stop().unwrap();
}

#[test]
fn a_drain_grace_serves_new_calls_while_readyz_already_refuses() {
    const GRACE: Duration = Duration::from_secs(3);
    let config = json!({
        "listen": "127.0.0.1:0",
        "packs": [sample("text_tools")],
        "drain_grace_ms": GRACE.as_millis(),
    });
    let config = RunnerConfig::from_json(&config.to_string())
        .unwrap()
        .finish(None)
        .unwrap();
    let runner = RunningRunner::start(config).unwrap();
    let greet = json!({"pack": "text-tools", "action": "greet", "input": "late"});
    let began = Instant::now();
    runner.begin_drain();
    // The drain starts on the runner's own thread: wait (bounded) until /readyz shows it.
    while get(&runner, "/readyz").0 != 503 {
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "/readyz never refused"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, answer) = execute(&runner, None, greet.clone());
    assert!(
        began.elapsed() < GRACE,
        "the machine was too slow to call within the grace"
    );
    assert_eq!(status, 200, "a call within the grace is served: {answer}");
    // After the grace, new calls are refused (503, or no connection once the runner, with
    // nothing in flight, has stopped); never before it.
    let url = format!("http://{}/v1/execute", runner.address());
    let refused = loop {
        let Ok(mut response) = agent().post(&url).send(&greet.to_string()) else {
            break None;
        };
        if response.status() != 200 {
            let text = response.body_mut().read_to_string().unwrap();
            break Some((
                response.status().as_u16(),
                serde_json::from_str::<Value>(&text).unwrap(),
            ));
        }
        assert!(
            began.elapsed() < GRACE + Duration::from_secs(10),
            "calls were still served long after the grace"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(began.elapsed() >= GRACE, "refused within the grace");
    if let Some((status, answer)) = refused {
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "{answer}"
        );
    }
    runner.stop().unwrap();
}

#[test]
fn web_pages_are_refused() {
    let runner = start(json!([]));
    let request = json!({"pack": "text-tools", "action": "greet", "input": "x"}).to_string();
    let call = |name: &str, value: &str| {
        let mut response = agent()
            .post(format!("http://{}/v1/execute", runner.address()))
            .header(name, value)
            .send(&request)
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    // A cross-site page's POST carries its Origin.
    let (status, text) = call("origin", "https://evil.example");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("allowed_origins"), "{text}");
    // A page that rebinds its own name to 127.0.0.1 sends that name as the Host.
    let (status, text) = call("host", "evil.example:8080");
    assert_eq!(status, 401, "{text}");
    let (status, _) = call("host", "localhost:8080");
    assert_eq!(status, 200);
    runner.stop().unwrap();
}

const ADMIN_TOKEN: &str = "admin-0123456789abcdef";

#[test]
fn a_reload_swaps_in_a_new_version_under_load_without_failing_a_call() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let folder = std::env::temp_dir().join(format!("packhost-runner-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("text_tools.wasm");
    let first = std::fs::read(sample("text_tools")).unwrap();
    let mut manifest = packhost::Pack::load(&first, packhost::PackOptions::default())
        .unwrap()
        .manifest()
        .clone();
    let old_version = manifest.version.clone();
    manifest.version = "9.0.0".into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let second = packhost::embed_manifest(&first, &manifest).unwrap();
    std::fs::write(&file, &first).unwrap();
    let config = json!({
        "listen": "127.0.0.1:0",
        "packs": [file.to_string_lossy()],
        "admin_token": ADMIN_TOKEN,
    });
    let config = RunnerConfig::from_json(&config.to_string())
        .unwrap()
        .finish(None)
        .unwrap();
    let runner = RunningRunner::start(config).unwrap();

    let (status, _) = post(&runner, "/v1/packs/reload", None, "");
    assert_eq!(status, 401, "reloading needs the admin token");
    let stop = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    // Calls until told to stop, each of which must succeed; the versions they ran on.
    let client = || {
        let mut seen: Vec<String> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let request = json!({"pack": "text-tools", "action": "greet", "input": "swap"});
            let (status, answer) = execute(&runner, None, request);
            assert_eq!(status, 200, "a call failed during the swap: {answer}");
            if seen.is_empty() {
                started.fetch_add(1, Ordering::SeqCst);
            }
            seen.push(
                answer["usage"]["pack_version"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        seen
    };
    let versions_seen = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4).map(|_| scope.spawn(client)).collect();
        // Every client has a call on the old version behind it before the swap.
        let deadline = Instant::now() + Duration::from_secs(30);
        while started.load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline, "the clients never got going");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Replaced as a deployment would: a new file renamed over the old one.
        let staged = folder.join("text_tools.wasm.new");
        std::fs::write(&staged, &second).unwrap();
        std::fs::rename(&staged, &file).unwrap();
        let (status, report) = post(&runner, "/v1/packs/reload", Some(ADMIN_TOKEN), "");
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["changed"], true, "{report}");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        let seen: Vec<Vec<String>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        seen
    });
    for seen in &versions_seen {
        // Each client sees the old version, then only the new one: never back.
        let switched = seen.iter().position(|version| *version == "9.0.0");
        let switched = switched.expect("every client reached the new version");
        assert!(switched > 0, "no call ran on the old version");
        assert!(seen[..switched]
            .iter()
            .all(|version| *version == old_version));
        assert!(seen[switched..].iter().all(|version| *version == "9.0.0"));
    }
    let (_, report) = post(&runner, "/v1/packs/reload", Some(ADMIN_TOKEN), "");
    assert_eq!(report["changed"], false, "nothing changed since: {report}");
    runner.stop().unwrap();
    let _ = std::fs::remove_dir_all(&folder);
}
