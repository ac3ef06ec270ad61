//! `Pack::load_next`: the next version of a pack, loaded with its options and the functions
//! its host lent, refused when it is another pack or drops its manifest.

mod support;

use packhost::Pack;
use support::{conformance_functions, options, pack_bytes, pack_path};

#[test]
fn the_next_version_keeps_the_options_and_the_old_pack_keeps_serving() {
    let pack = Pack::load_file(
        pack_path("text_tools"),
        options(r#"{"limits": {"timeout_ms": 4321}}"#),
    )
    .unwrap();
    let next = pack.load_next(pack_path("text_tools_next")).unwrap();
    assert_eq!(next.manifest().version, "9.0.0");
    assert_eq!(next.options().limits.timeout_ms, 4321);
    assert_eq!(
        pack.call("greet", b"old").unwrap().usage.pack_version,
        "0.1.0"
    );
    assert_eq!(
        next.call("greet", b"new").unwrap().usage.pack_version,
        "9.0.0"
    );
    let back = next.load_next_bytes(&pack_bytes("text_tools")).unwrap();
    assert_eq!(back.id(), pack.id());
}

#[test]
fn a_pack_using_key_value_storage_and_host_functions_reloads() {
    // Its storage functions are packhost's own, linked again for the next version, never
    // passed on as if the host had lent them.
    let kv = Pack::load_file(
        pack_path("kv_probe"),
        options(r#"{"kv": {"backend": "memory", "path": "reload"}}"#),
    )
    .unwrap();
    let next = kv.load_next(pack_path("kv_probe")).unwrap();
    assert_eq!(next.call("count", b"hits").unwrap().text(), Some("1"));
    let host_calls = Pack::load_file_with(
        pack_path("host_calls_pdk"),
        options("{}"),
        conformance_functions(),
    )
    .unwrap();
    host_calls.load_next(pack_path("host_calls_pdk")).unwrap();
}

#[test]
fn another_pack_or_one_without_a_manifest_is_refused() {
    let pack = Pack::load_file(pack_path("text_tools"), options("{}")).unwrap();
    let err = pack.load_next(pack_path("hostile")).unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(
        err.message()
            .contains(r#"must be "text-tools", not "hostile""#),
        "{}",
        err.message()
    );
    // A module without a manifest would get every granted capability.
    let err = pack.load_next(pack_path("plain")).unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(
        err.message().contains("must carry a manifest"),
        "{}",
        err.message()
    );
    assert!(pack.load_next_bytes(b"not wasm").is_err());
}
