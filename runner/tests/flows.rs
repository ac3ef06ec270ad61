//! Flows in the runner: every flow case of the conformance suite
//! (`tests/conformance/cases/flows.json`) served by a runner on each engine and run over
//! `POST /v1/flows/NAME/execute`, then what only the runner has: YAML definitions,
//! `GET /v1/flows`, `error.step`, a reload that picks up an edited flow.

mod support;

use std::path::{Path, PathBuf};

use packhost::Pack;
use packhost_runner::{status_of, RunnerConfig, RunningRunner};
use serde_json::{json, Map, Value};
use support::{agent, post, sample};

const ENGINES: [&str; 2] = ["native", "extism"];

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A folder of its own for each test's flow files.
fn scratch(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!(
        "packhost-runner-flows-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// The flow's steps with each pack name the case maps to a sample pack replaced by that
/// pack's manifest name: a runner finds packs by the names they give themselves.
fn with_served_names(steps: &mut Value, names: &Map<String, Value>) {
    for step in steps.as_array_mut().into_iter().flatten() {
        if let Some(branches) = step.get_mut("parallel") {
            for branch in branches.as_array_mut().into_iter().flatten() {
                with_served_names(branch, names);
            }
        } else if let Some(name) = step.get("pack").and_then(Value::as_str) {
            if let Some(served) = names.get(name) {
                step["pack"] = served.clone();
            }
        }
    }
}

/// A runner serving `packs` loaded with `options` and the flows in `flows`.
fn start(packs: Vec<String>, options: Value, flows: &Path) -> packhost::Result<RunningRunner> {
    let config = json!({
        "listen": "127.0.0.1:0",
        "packs": packs,
        "options": options,
        "flows": [flows],
    });
    RunnerConfig::from_json(&config.to_string())?
        .finish(None)
        .and_then(RunningRunner::start)
}

/// Runs one flow case on `engine` through a runner of its own; what did not match.
fn run_case(case: &Value, engine: &str, fuel: &Value, folder: &Path) -> Vec<String> {
    let name = case["name"].as_str().unwrap();
    let mut options = case.get("options").cloned().unwrap_or_else(|| json!({}));
    if options.get("engine").is_none() {
        options["engine"] = json!(engine);
    }
    // The hosts load with the core's default isolation; the runner's own default
    // ("context") would reuse instances between steps and bill start-up code once.
    if options.get("isolation").is_none() {
        options["isolation"] = json!("call");
    }
    let mut names = Map::new();
    let mut packs = Vec::new();
    for (alias, sample_name) in case["flow_packs"].as_object().unwrap() {
        let path = sample(sample_name.as_str().unwrap());
        let pack = Pack::load_file(&path, packhost::PackOptions::default()).unwrap();
        names.insert(alias.clone(), json!(pack.manifest().name));
        packs.push(path);
    }
    let mut flow = case["flow"].clone();
    with_served_names(&mut flow["steps"], &names);
    let file = folder.join(format!("{}.json", name.replace('/', "_")));
    std::fs::write(&file, flow.to_string()).unwrap();
    let expected_error = case.get("error").and_then(Value::as_str);
    let wanted_fragment = case.get("message_contains").and_then(Value::as_str);
    let runner = match start(packs, options, &file) {
        Ok(runner) => runner,
        // A flow the runner cannot serve fails its start, as it fails a host's construction.
        Err(err) => {
            let mut problems = Vec::new();
            if expected_error != Some(err.code()) {
                problems.push(format!(
                    "start failed with {err}, expected {expected_error:?}"
                ));
            }
            if let Some(fragment) = wanted_fragment {
                if !err.message().contains(fragment) {
                    problems.push(format!("message {:?} lacks {fragment:?}", err.message()));
                }
            }
            return problems;
        }
    };
    let flow_name = flow["name"].as_str().unwrap();
    let context = case.get("context").cloned().unwrap_or(Value::Null);
    let request = json!({"input": case.get("flow_input").cloned().unwrap_or(Value::Null), "context": context});
    let (status, answer) = post(
        &runner,
        &format!("/v1/flows/{flow_name}/execute"),
        None,
        &request.to_string(),
    );
    runner.stop().unwrap();
    let mut problems = Vec::new();
    if let Some(code) = expected_error {
        if answer["error"]["code"] != code || status != status_of(code).as_u16() {
            problems.push(format!("answered {status} {answer}, expected error {code}"));
        }
        if let Some(fragment) = wanted_fragment {
            let message = answer["error"]["message"].as_str().unwrap_or("");
            if !message.contains(fragment) {
                problems.push(format!("message {message:?} lacks {fragment:?}"));
            }
        }
        return problems;
    }
    if status != 200 {
        return vec![format!("answered {status} {answer}, expected success")];
    }
    if let Some(expected) = case.get("output_json") {
        if answer["output"] != *expected {
            problems.push(format!("output {}, expected {expected}", answer["output"]));
        }
    }
    if let Some(expected) = case.get("steps") {
        let actual: Vec<Value> = answer["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| json!({"id": step["id"], "status": step["status"]}))
            .collect();
        if Value::Array(actual.clone()) != *expected {
            problems.push(format!("steps {actual:?}, expected {expected}"));
        }
    }
    if answer["usage"]["context"] != context {
        problems.push(format!(
            "usage context {}, expected {context}",
            answer["usage"]["context"]
        ));
    }
    if answer["usage"]["fuel_consumed"] != fuel[engine][name] {
        problems.push(format!(
            "fuel {}, expected {}",
            answer["usage"]["fuel_consumed"], fuel[engine][name]
        ));
    }
    problems
}

#[test]
fn every_flow_case_of_the_conformance_suite_passes_in_the_runner() {
    let cases = read_json(&conformance_dir().join("cases/flows.json"));
    let fuel = read_json(&conformance_dir().join("fuel.json"));
    let folder = scratch("conformance");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases["cases"].as_array().unwrap() {
        // A runner lends packs no host functions, so cases that need them are the hosts'.
        if case.get("host_functions") == Some(&Value::Bool(true)) {
            continue;
        }
        for engine in ENGINES {
            ran += 1;
            for problem in run_case(case, engine, &fuel, &folder) {
                failures.push(format!("{} [{engine}]: {problem}", case["name"]));
            }
        }
    }
    assert!(ran >= 20, "only {ran} flow cases ran");
    assert!(
        failures.is_empty(),
        "flow failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_yaml_flow_is_listed_run_and_reloaded_when_edited() {
    let folder = scratch("yaml");
    let file = folder.join("shout.yaml");
    let write = |action: &str| {
        let yaml = format!(
            "name: shout_count\ndescription: Upper-cases, then counts vowels.\nsteps:\n  - id: shout\n    pack: text-tools\n    action: uppercase\n    input: {{$from: /input/text}}\n  - id: count\n    pack: text-tools\n    action: {action}\n    input:\n      text: {{$from: /steps/shout/output}}\n"
        );
        std::fs::write(&file, yaml).unwrap();
    };
    write("count_vowels");
    let config = json!({
        "listen": "127.0.0.1:0",
        "packs": [sample("text_tools")],
        "flows": [folder],
        "admin_token": "admin-0123456789abcdef",
    });
    let config = RunnerConfig::from_json(&config.to_string())
        .unwrap()
        .finish(None)
        .unwrap();
    let runner = RunningRunner::start(config).unwrap();

    let mut listing = agent()
        .get(format!("http://{}/v1/flows", runner.address()))
        .call()
        .unwrap();
    let listing: Value =
        serde_json::from_str(&listing.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        listing,
        json!({"flows": [{"name": "shout_count", "description": "Upper-cases, then counts vowels.", "packs": ["text-tools"]}]})
    );

    let run = |input: Value| {
        post(
            &runner,
            "/v1/flows/shout_count/execute",
            None,
            &json!({ "input": input }).to_string(),
        )
    };
    let (status, answer) = run(json!({"text": "hello world"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"], json!({"count": 3, "vowels": "EOO"}));
    assert_eq!(answer["usage"]["steps_run"], 2);
    assert_eq!(answer["steps"][1]["usage"]["pack_name"], "text-tools");

    // The failing step is named apart from the message, with its own report.
    let (status, answer) = run(json!({"nothing": true}));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_options");

    write("word_stats");
    let (status, reloaded) = post(
        &runner,
        "/v1/packs/reload",
        Some("admin-0123456789abcdef"),
        "",
    );
    assert_eq!(status, 200, "{reloaded}");
    let (status, answer) = run(json!({"text": "hello world"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["output"]["words"], 2,
        "the edited flow runs: {answer}"
    );

    let (status, answer) = post(&runner, "/v1/flows/nowhere/execute", None, "{}");
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("flow_not_found"))
    );
    runner.stop().unwrap();
}

#[test]
fn a_failing_step_is_named_in_the_answer() {
    let folder = scratch("failing");
    let flow = json!({
        "name": "doomed",
        "steps": [
            {"id": "shout", "pack": "text-tools", "action": "uppercase", "input": "fine"},
            {"id": "boom", "pack": "text-tools", "action": "fail_with", "input": {"$from": "/steps/shout/output"}}
        ]
    });
    std::fs::write(folder.join("doomed.json"), flow.to_string()).unwrap();
    let runner = start(vec![sample("text_tools")], json!({}), &folder).unwrap();
    let (status, answer) = post(&runner, "/v1/flows/doomed/execute", None, "{}");
    runner.stop().unwrap();
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "plugin_error");
    assert_eq!(answer["error"]["step"], "boom");
    assert_eq!(
        answer["usage"]["action"], "fail_with",
        "the step's report: {answer}"
    );
}
