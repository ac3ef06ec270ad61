//! Shared helpers for the integration tests: where the repository, the built sample packs
//! and the conformance data live.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ sits in the repository root")
        .to_path_buf()
}

/// Path of a built sample pack; panics with the fix when packs were not built.
pub fn pack_path(name: &str) -> PathBuf {
    let path = repo_root()
        .join("plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the sample packs first with `make packs`",
        path.display()
    );
    path
}

/// The bytes of a built sample pack.
pub fn pack_bytes(name: &str) -> Vec<u8> {
    std::fs::read(pack_path(name)).expect("pack is readable")
}

/// Options from a JSON literal.
pub fn options(json: &str) -> packhost::PackOptions {
    packhost::PackOptions::from_json(json).expect("test options are valid")
}

/// The conformance suite's host functions (`tests/conformance/README.md`), as every host's
/// runner implements them.
pub fn conformance_functions() -> Vec<packhost::HostFunction> {
    use packhost::{HostFnError, HostFunction};
    use serde_json::{json, Value};
    vec![
        HostFunction::bytes("reverse", |_, input| {
            Ok(input.iter().rev().copied().collect())
        }),
        HostFunction::bytes("add", |_, input| {
            let args: Value = serde_json::from_slice(input)?;
            let term = |key: &str| {
                args[key].as_i64().ok_or_else(|| {
                    HostFnError::with_class(format!("{key} is not an integer"), "TypeError")
                })
            };
            Ok(serde_json::to_vec(
                &json!({"sum": term("a")? + term("b")?}),
            )?)
        }),
        HostFunction::bytes("fail", |_, input| {
            Err(HostFnError::with_class(
                String::from_utf8_lossy(input),
                "LookupError",
            ))
        }),
        HostFunction::bytes("context_echo", |call, _| {
            Ok(serde_json::to_vec(
                &json!({"context": call.context, "pack": call.pack_name}),
            )?)
        }),
    ]
}

/// A new, empty folder for one test's files under cargo's temporary folder for integration
/// tests (inside the target dir), named after `label` and this process.
pub fn scratch_folder(label: &str) -> PathBuf {
    let folder =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder can be made");
    folder
}
