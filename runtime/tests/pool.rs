//! The pool fresh module instances come from (`PACKHOST_POOLED_INSTANCES`): when every slot
//! is taken, instances are made on their own instead, and a slot passed from one instance to
//! the next carries nothing over. (A test binary of its own: the pool is sized once per
//! process, before the first pack loads.)

mod support;

use packhost::{CallOptions, Pack, PackOptions};
use serde_json::json;

const TENANTS: usize = 6;

fn remember(pack: &Pack, tenant: usize, input: &str) -> String {
    let options = CallOptions {
        context: json!({ "tenant": format!("tenant-{tenant}") }),
        ..CallOptions::default()
    };
    let answer = pack
        .call_with_options("remember", input.as_bytes(), &options)
        .unwrap_or_else(|err| panic!("tenant {tenant}: {err}"));
    String::from_utf8(answer.output).unwrap()
}

#[test]
fn instances_are_made_on_their_own_once_the_pool_is_full() {
    // Set before any pack loads; this binary's only test, so no other thread reads the
    // environment meanwhile.
    std::env::set_var("PACKHOST_POOLED_INSTANCES", "2");
    let wasm = std::fs::read(support::pack_path("hostile")).unwrap();
    let options = PackOptions::from_json(r#"{"isolation": "context"}"#).unwrap();
    let pack = Pack::load(&wasm, options).unwrap();
    // Each tenant keeps a warm instance of its own, all at once: the pack's first instance
    // is made on its own, the next two take the pool's two slots, the rest cannot.
    for tenant in 0..TENANTS {
        assert_eq!(remember(&pack, tenant, &format!("secret {tenant}")), "|");
    }
    assert_eq!(
        packhost::instance_pool(),
        packhost::InstancePool {
            slots: 2,
            in_use: 2
        },
        "two tenants' instances hold the pool's two slots"
    );
    for tenant in 0..TENANTS {
        let secret = format!("secret {tenant}");
        assert_eq!(
            remember(&pack, tenant, "again"),
            format!("{secret}|{secret}"),
            "tenant {tenant} keeps its warm instance"
        );
    }
    // A failed call replaces its instance, limits hold, and the replacement is fresh,
    // whichever kind it is.
    let options = CallOptions {
        context: json!({ "tenant": "tenant-0" }),
        ..CallOptions::default()
    };
    let call = |action: &str| pack.call_with_options(action, b"", &options).unwrap_err();
    assert_eq!(call("trap").code(), "trap");
    assert_eq!(remember(&pack, 0, "after the trap"), "|");
    assert_eq!(call("memory_bomb").code(), "memory_limit");
    assert_eq!(remember(&pack, 0, "after the bomb"), "|");
    // Dropping the pack frees its slots for packs loaded later, whose instances after the
    // first come from them, fresh on every call.
    drop(pack);
    assert_eq!(
        packhost::instance_pool().in_use,
        0,
        "the pack's slots are free"
    );
    let later = Pack::load(&wasm, PackOptions::default()).unwrap();
    for round in 0..4 {
        let answer = later
            .call("remember", format!("round {round}").as_bytes())
            .unwrap();
        assert_eq!(answer.output, b"|");
        // Its first instance is its own; each one after comes from the pool.
        assert_eq!(packhost::instance_pool().in_use, 1, "round {round}");
    }
}
