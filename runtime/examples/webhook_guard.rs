//! The capabilities sample: the webhook_guard pack drops retried webhook deliveries and
//! rate-limits each tenant, keeping its state in key-value storage (an SQLite file that
//! outlives the process), with a secret it never leaks; every call reports its audit trail.
//!
//! Run with `cargo run -p packhost --example webhook_guard` after `make packs`.

use packhost::{CallOptions, Pack, PackOptions};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = std::env::temp_dir().join(format!("webhook-guard-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let options = PackOptions::from_value(json!({
        "kv": {"backend": "sqlite", "path": folder.join("state.sqlite3")},
        "config": {"per_minute": "2"},
        "secrets": {"endpoint_token": "tok_example"},
    }))?;
    let load = || {
        Pack::load_file(
            root.join("plugins/dist/webhook_guard.wasm"),
            options.clone(),
        )
    };
    let pack = load()?;
    let deliver = |pack: &Pack, tenant: &str, id: &str, at: u64| {
        let input = json!({"id": id, "timestamp": at, "payload": {"amount": 5}}).to_string();
        let context = CallOptions {
            context: json!({ "tenant": tenant }),
            ..CallOptions::default()
        };
        pack.call_with_options("deliver", input.as_bytes(), &context)
    };

    let first = deliver(&pack, "acme", "evt_1", 1_764_000_000)?;
    println!("acme   evt_1 -> {}", first.text().unwrap_or_default());
    for entry in &first.audit {
        println!(
            "  audit: {:?} {} {} {:?}",
            entry.capability, entry.operation, entry.target, entry.outcome
        );
    }
    for (tenant, id, at) in [
        ("acme", "evt_1", 1_764_000_001),
        ("acme", "evt_2", 1_764_000_002),
        ("acme", "evt_3", 1_764_000_003),
        ("globex", "evt_1", 1_764_000_004),
    ] {
        let out = deliver(&pack, tenant, id, at)?;
        println!("{tenant:<6} {id} -> {}", out.text().unwrap_or_default());
    }
    // A new load (as a restarted process would make) finds the state the calls left.
    let again = deliver(&load()?, "acme", "evt_1", 1_764_000_005)?;
    println!(
        "after reload, acme evt_1 -> {}",
        again.text().unwrap_or_default()
    );
    assert!(again.text().unwrap_or_default().contains("duplicate"));
    let stats = pack.stats();
    println!(
        "stats: {} calls, {} kv operations",
        stats.calls, stats.kv_ops
    );
    std::fs::remove_dir_all(&folder)?;
    Ok(())
}
