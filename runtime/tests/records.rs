//! What a host keeps of its packs' calls: the usage and audit JSON Lines files, the pack's
//! stats since load, and that no secret value reaches any of them (or a result's logs,
//! errors and audit entries).

mod support;

use packhost::{CallOptions, Pack, PackOptions};
use serde_json::{json, Value};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON record"))
        .collect()
}

#[test]
fn every_call_appends_its_usage_and_audit_entries_as_json_lines() {
    let folder = support::scratch_folder("records-logs");
    let usage_log = folder.join("usage.jsonl");
    let audit_log = folder.join("audit.jsonl");
    let options = PackOptions::from_value(json!({
        "kv": {"backend": "memory", "path": "records-logs"},
        "usage_log": usage_log,
        "audit_log": audit_log,
    }))
    .unwrap();
    let pack = Pack::load_file(support::pack_path("kv_probe"), options).unwrap();
    let tenant = CallOptions {
        context: json!({"tenant": "acme"}),
        ..CallOptions::default()
    };
    pack.call_with_options("count", b"visits", &tenant).unwrap();
    pack.call_with_options("run", br#"[{"get":{"key":"visits"}}]"#, &tenant)
        .unwrap();
    let err = pack.call("run", b"not json").unwrap_err();
    assert_eq!(err.code(), "plugin_error");

    let usage = lines(&usage_log);
    assert_eq!(usage.len(), 3, "one line per call, failed ones included");
    assert_eq!(usage[0]["pack_name"], "kv_probe");
    assert_eq!(usage[0]["action"], "count");
    assert_eq!(usage[0]["pack_id"], pack.id());
    assert_eq!(usage[0]["context"], json!({"tenant": "acme"}));
    assert_eq!(usage[0]["kv_ops"], 2, "count reads, then compare-and-sets");
    assert_eq!(usage[2]["context"], Value::Null);

    let audit = lines(&audit_log);
    let operations: Vec<&str> = audit
        .iter()
        .map(|entry| entry["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["get", "compare_and_set", "get"]);
    assert_eq!(audit[2]["action"], "run");
    assert_eq!(audit[2]["target"], "visits");
    assert_eq!(audit[2]["context"], json!({"tenant": "acme"}));
}

#[test]
fn stats_count_every_call_since_load_across_clones() {
    let pack = Pack::load_file(support::pack_path("text_tools"), PackOptions::default()).unwrap();
    let clone = pack.clone();
    pack.call("uppercase", b"abc").unwrap();
    clone.call("uppercase", b"de").unwrap();
    pack.call("fail_with", br#"{"message":"no","code":7}"#)
        .unwrap_err();
    let stats = pack.stats();
    assert_eq!(stats.calls, 3);
    assert_eq!(stats.errors.get("plugin_error"), Some(&1));
    assert_eq!(stats.output_bytes, 5);
    assert_eq!(
        stats.input_bytes,
        5 + br#"{"message":"no","code":7}"#.len() as u64
    );
    assert!(stats.fuel_consumed > 0);
}

#[test]
fn no_secret_value_reaches_a_log_error_usage_record_or_audit_entry() {
    const SECRET: &str = "sk_live_do_not_print";
    let folder = support::scratch_folder("records-secrets");
    let usage_log = folder.join("usage.jsonl");
    let audit_log = folder.join("audit.jsonl");
    let options = PackOptions::from_value(json!({
        "secrets": {"api_key": SECRET},
        "usage_log": usage_log,
        "audit_log": audit_log,
    }))
    .unwrap();
    let pack = Pack::load_file(support::pack_path("hostile"), options).unwrap();
    let err = pack.call("leak_secret", b"api_key").unwrap_err();
    let report = err.report().expect("a failed call carries its report");
    let everything = format!(
        "{err} {:?} {} {} {} {:?}",
        err,
        serde_json::to_string(report).unwrap(),
        std::fs::read_to_string(&usage_log).unwrap(),
        std::fs::read_to_string(&audit_log).unwrap(),
        pack.options(),
    );
    assert!(!everything.contains(SECRET), "{everything}");
    assert!(everything.contains("[redacted]"), "{everything}");
    assert_eq!(report.audit.len(), 1);
    assert_eq!(report.audit[0].target, "api_key");
}

#[test]
fn a_log_file_that_cannot_be_opened_fails_the_load() {
    let options =
        PackOptions::from_value(json!({"usage_log": "/nonexistent/folder/usage.jsonl"})).unwrap();
    let err = Pack::load_file(support::pack_path("text_tools"), options).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
}
