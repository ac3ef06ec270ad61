//! Flows from Rust, beyond the conformance cases: a host's cancel token stops a whole run,
//! totals add up the steps, and a run's packs are looked up when it runs.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use packhost::{CallOptions, CancelToken, Flow, Pack, StepStatus};
use serde_json::json;

fn load(name: &str, options: &str) -> Pack {
    Pack::load_file(support::pack_path(name), support::options(options)).unwrap()
}

#[test]
fn a_hosts_cancel_stops_every_branch_of_a_run() {
    let mut packs = BTreeMap::new();
    packs.insert(
        "hostile".to_string(),
        load(
            "hostile",
            r#"{"limits": {"timeout_ms": 20000, "fuel": null}}"#,
        ),
    );
    let flow = Flow::from_value(json!({
        "name": "two_spins",
        "steps": [{"parallel": [
            [{"id": "left", "pack": "hostile", "action": "spin"}],
            [{"id": "right", "pack": "hostile", "action": "spin"}]
        ]}]
    }))
    .unwrap();
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let options = CallOptions {
        context: json!(null),
        cancel: Some(cancel),
    };
    let err = flow.run(&packs, json!(null), &options).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.code(), "cancelled", "{err}");
    assert!(err
        .flow_step()
        .is_some_and(|step| step == "left" || step == "right"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "both branches stopped long before their 20 s timeout"
    );
}

#[test]
fn totals_add_up_the_steps_and_skipped_steps_cost_nothing() {
    let mut packs = BTreeMap::new();
    packs.insert("text".to_string(), load("text_tools", "{}"));
    let flow = Flow::from_json(
        &json!({
            "name": "totals",
            "steps": [
                {"id": "shout", "pack": "text", "action": "uppercase", "input": "abc"},
                {"id": "never", "pack": "text", "action": "echo",
                 "if": {"pointer": "/steps/shout/output", "equals": "nope"}},
                {"id": "count", "pack": "text", "action": "count_vowels",
                 "input": {"text": {"$from": "/steps/shout/output"}}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(flow.pack_names(), ["text"]);
    let out = flow
        .run(&packs, json!(null), &CallOptions::default())
        .unwrap();
    assert_eq!(out.output, json!({"count": 1, "vowels": "A"}));
    let statuses: Vec<StepStatus> = out.steps.iter().map(|step| step.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Ok, StepStatus::Skipped, StepStatus::Ok]
    );
    let fuel: u64 = out
        .steps
        .iter()
        .filter_map(|step| step.usage.as_ref())
        .map(|usage| usage.fuel_consumed)
        .sum();
    assert!(fuel > 0);
    assert_eq!(out.usage.fuel_consumed, fuel);
    assert_eq!((out.usage.steps_run, out.usage.steps_skipped), (2, 1));
    assert_eq!(out.usage.input_bytes, 3 + r#"{"text":"ABC"}"#.len() as u64);
}

#[test]
fn packs_are_looked_up_when_the_flow_runs() {
    let flow = Flow::from_value(json!({
        "name": "late",
        "steps": [{"id": "echo", "pack": "text", "action": "echo", "input": "hi"}]
    }))
    .unwrap();
    let none = |_: &str| None::<Pack>;
    let err = flow
        .run(&none, json!(null), &CallOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    assert!(err.message().contains("no pack named \"text\""), "{err}");
    let text = load("text_tools", "{}");
    let found = move |name: &str| (name == "text").then(|| text.clone());
    let out = flow
        .run(&found, json!(null), &CallOptions::default())
        .unwrap();
    assert_eq!(out.output, json!("hi"));
}
