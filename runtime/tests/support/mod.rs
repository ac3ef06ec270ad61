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

/// A component pack built from the conformance fixtures `NAME.core.wat` (its core module)
/// and `NAME.wit` (its world) against `wit/`, the way guest toolchains build one
/// (wit-component), with `manifest` (JSON) in its `packhost/manifest` section when given.
pub fn component_fixture(name: &str, manifest: Option<&str>) -> Vec<u8> {
    let fixtures = repo_root().join("tests/conformance/fixtures");
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(repo_root().join("wit"))
        .expect("wit/ parses");
    let package = resolve
        .push_file(fixtures.join(format!("{name}.wit")))
        .expect("the fixture's world parses against wit/");
    let world = resolve
        .select_world(&[package], None)
        .expect("the fixture's package has one world");
    let mut core = wat::parse_file(fixtures.join(format!("{name}.core.wat")))
        .expect("the fixture's core module parses");
    wit_component::embed_component_metadata(
        &mut core,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    let mut component = wit_component::ComponentEncoder::default()
        .module(&core)
        .expect("the core module fits the world")
        .validate(true)
        .encode()
        .expect("the component encodes");
    if let Some(manifest) = manifest {
        let mut section = Vec::new();
        leb128(&mut section, packhost::manifest::MANIFEST_SECTION.len());
        section.extend_from_slice(packhost::manifest::MANIFEST_SECTION.as_bytes());
        section.extend_from_slice(manifest.as_bytes());
        component.push(0);
        leb128(&mut component, section.len());
        component.extend_from_slice(&section);
    }
    component
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A loopback server that answers one request with `response` (a whole HTTP response) and
/// returns the request line it got.
pub fn serve_once(response: impl Into<Vec<u8>>) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let response = response.into();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request_line = String::new();
        BufReader::new(&stream)
            .read_line(&mut request_line)
            .unwrap();
        stream.write_all(&response).unwrap();
        request_line
    });
    (port, server)
}
