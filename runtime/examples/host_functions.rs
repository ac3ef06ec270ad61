//! Host functions from Rust: lend a pack the application's own services, pass a tenant as
//! the call's context, and see a failing handler end the call (never the host).
//!
//! Run with `cargo run -p packhost --example host_functions` after `make packs`.

use packhost::{CallOptions, HostFnError, HostFunction, Pack, PackOptions};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // START host functions
    // Bytes in, bytes out: the shape every Extism PDK's `host_fn!` imports from
    // `extism:host/user`. Closures may capture anything `Send + Sync`.
    let functions = vec![
        HostFunction::bytes("reverse", |_, input| {
            Ok(input.iter().rev().copied().collect())
        }),
        HostFunction::bytes("add", |_, input| {
            let args: serde_json::Value = serde_json::from_slice(input)?;
            let sum = args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0);
            Ok(serde_json::to_vec(&json!({ "sum": sum }))?)
        }),
        // A failing handler ends the call with `host_function_error`; the pack is not resumed.
        HostFunction::bytes("fail", |_, input| {
            Err(HostFnError::with_class(
                format!("no customer {}", String::from_utf8_lossy(input)),
                "LookupError",
            ))
        }),
        // One function serves every tenant: the caller's `context` comes with each call.
        HostFunction::bytes("context_echo", |call, _| {
            Ok(serde_json::to_vec(&json!({
                "tenant": call.context["tenant"],
                "pack": call.pack_name,
            }))?)
        }),
    ];
    let pack = Pack::load_file_with(
        root.join("plugins/dist/host_calls.wasm"),
        PackOptions::default(),
        functions,
    )?;

    let out = pack.call("reverse_via_host", b"stressed")?;
    println!("{}", out.text().unwrap_or_default()); // desserts

    let acme = CallOptions {
        context: json!({ "tenant": "acme" }),
        ..CallOptions::default()
    };
    let out = pack.call_with_options("context_via_host", b"", &acme)?;
    println!("{}", out.text().unwrap_or_default()); // {"pack":"host_calls","tenant":"acme"}
    println!("{}", out.usage.context); // {"tenant":"acme"}: the usage record names the tenant

    let err = pack.call("fail_via_host", b"c42").unwrap_err();
    println!("{}: {:?}", err.code(), err.host_function()); // host_function_error: Some(("fail", Some("LookupError")))
                                                           // END host functions
    Ok(())
}
