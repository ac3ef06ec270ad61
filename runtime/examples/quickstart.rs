//! The README's quickstart: load the API-error pack and run its hooks around a failed
//! Stripe request, with limits, then print what it found and what the call cost.
//!
//! Run with `cargo run -p packhost --example quickstart` after `make packs`; from another
//! crate (CI builds it as a user's crate), pass the repository's root as the argument.

use packhost::{Pack, PackOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    // START quickstart
    let options =
        PackOptions::from_json(r#"{"limits": {"timeout_ms": 250, "memory_bytes": 16777216}}"#)?;
    let pack = Pack::load_file(root.join("plugins/dist/api_errors.wasm"), options)?;
    println!(
        "loaded {} {} ({})",
        pack.manifest().name,
        pack.manifest().version,
        &pack.id()[..12]
    );

    let request = r#"{"method": "POST", "url": "https://api.stripe.com/v1/charges"}"#;
    let before = pack.pre(request.as_bytes())?;
    println!("pre:  {}", before.text().unwrap_or_default());

    let exchange = std::fs::read(root.join("examples/data/stripe_card_declined.json"))?;
    let after = pack.post(&exchange)?;
    println!("post: {}", after.text().unwrap_or_default());
    for line in &after.logs {
        println!("log:  [{}] {}", line.level.as_str(), line.message);
    }
    let usage = &after.usage;
    println!(
        "cost: {} fuel, {} us, {} KiB peak memory",
        usage.fuel_consumed,
        usage.wall_time_us,
        usage.peak_memory_bytes / 1024
    );
    // END quickstart

    match pack.call("no_such_action", b"") {
        Err(err) => println!(
            "errors are data: code={} message={:?}",
            err.code(),
            err.message()
        ),
        Ok(_) => unreachable!("the pack has no such action"),
    }
    let build = packhost::build_info();
    println!(
        "packhost {}: {} profile, opt-level {}, debug assertions {}, wasmtime {}",
        build.version, build.profile, build.opt_level, build.debug_assertions, build.wasmtime
    );
    Ok(())
}
