//! `packhost push`, `pull`, `store` and `oci://` references against a real registry
//! (Debian's `docker-registry` on loopback), each command run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use packhost_oci::testing::LocalRegistry;

const TRUSTED_KEY: &str = "ed25519:0sLITBOFnLRkcIZCvSK4e6fXBIs8B7VBadXrC+4Sh6k=";

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    path.to_string_lossy().into_owned()
}

fn scratch_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("packhost-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn packhost(store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_packhost"));
    command.args(args).env("PACKHOST_STORE", store);
    command
}

fn run(store: &Path, args: &[&str]) -> Output {
    packhost(store, args).output().expect("packhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_pack_is_pushed_pulled_verified_and_called_by_reference() {
    let store = scratch_store("publish");
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/text-tools:1.0", registry.address());
    let oci = format!("oci://{reference}");

    let out = run(&store, &["push", &sample("text_tools"), &reference]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("(signed)"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&store, &["pull", &oci]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("(signed)"));
    let out = run(&store, &["verify", &oci, "--trusted-key", TRUSTED_KEY]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains(&format!("is signed by {TRUSTED_KEY}")));
    let out = run(&store, &["call", &oci, "uppercase", "from the registry"]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "FROM THE REGISTRY");

    let out = run(&store, &["store", "ls"]);
    assert_ok(&out);
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&oci) && listing.contains("signed"),
        "{listing}"
    );

    // Unpinned, it is collected.
    let out = run(&store, &["store", "ls", "--json"]);
    let packs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(packs.as_array().unwrap().len(), 1);
    for pinned in packs[0]["references"].as_array().unwrap() {
        assert_ok(&run(&store, &["store", "rm", pinned.as_str().unwrap()]));
    }
    let out = run(&store, &["store", "gc"]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("removed 1 pack"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&store, &["store", "rm", &oci]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_pack_signed_by_another_key_fails_verification_from_the_registry() {
    let store = scratch_store("untrusted");
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/hostile:1", registry.address());
    assert_ok(&run(&store, &["push", &sample("hostile"), &reference]));
    let out = run(
        &store,
        &[
            "verify",
            &format!("oci://{reference}"),
            "--trusted-key",
            TRUSTED_KEY,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error[untrusted_pack]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_blob_tampered_with_in_the_registry_fails_the_pull_with_a_digest_error() {
    let store = scratch_store("tampered");
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/text-tools:1", registry.address());
    let out = run(&store, &["push", &sample("text_tools"), &reference]);
    assert_ok(&out);
    let pushed = text(&out.stdout);
    let digest = pushed
        .lines()
        .find_map(|line| line.strip_prefix("pack     "))
        .unwrap()
        .to_string();
    std::fs::write(registry.blob_file(&digest), b"\0asm\x01\0\0\0 not the pack").unwrap();
    let out = run(&store, &["pull", &reference]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[invalid_pack]") && stderr.contains("digest"),
        "{stderr}"
    );
}

#[test]
fn two_processes_pulling_one_reference_at_once_both_succeed_and_store_one_copy() {
    let store = scratch_store("concurrent");
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/text-tools:1", registry.address());
    assert_ok(&run(&store, &["push", &sample("text_tools"), &reference]));
    for round in 0..3 {
        // Both started before either is waited for, so they pull at the same time.
        let children: Vec<_> = (0..2)
            .map(|_| {
                packhost(&store, &["pull", &reference])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            assert_ok(&child.wait_with_output().unwrap());
        }
        let blobs: Vec<_> = std::fs::read_dir(store.join("blobs/sha256"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            blobs.iter().filter(|name| name.ends_with(".wasm")).count(),
            1,
            "round {round}: {blobs:?}"
        );
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "no leftovers"
        );
    }
}
