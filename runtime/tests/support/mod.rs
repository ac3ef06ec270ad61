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
