//! Push, pull and load by reference against a real registry (Debian's `docker-registry` on
//! loopback): signatures travel with the pack, every digest is checked, pins hold offline.

use std::path::PathBuf;
use std::sync::Once;

use packhost::{Pack, PackOptions, PackStore};
use packhost_oci::testing::LocalRegistry;

const TRUSTED_KEY: &str = "ed25519:0sLITBOFnLRkcIZCvSK4e6fXBIs8B7VBadXrC+4Sh6k=";

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"))
}

/// Every test of this process shares one store (hosts find it through `PACKHOST_STORE`),
/// set before any test reads it; each test pushes to a registry of its own, so references
/// never collide.
fn store() -> PackStore {
    static SET: Once = Once::new();
    let root = std::env::temp_dir().join(format!("packhost-oci-store-{}", std::process::id()));
    SET.call_once(|| {
        let _ = std::fs::remove_dir_all(&root);
        // SAFETY (edition 2021: not unsafe): set once, before any thread reads it.
        std::env::set_var("PACKHOST_STORE", &root);
        packhost_oci::register();
    });
    PackStore::at(root).unwrap()
}

fn trusting(require_signature: bool) -> PackOptions {
    PackOptions::from_json(
        &serde_json::json!({"trusted_keys": [TRUSTED_KEY], "require_signature": require_signature})
            .to_string(),
    )
    .unwrap()
}

#[test]
fn a_signed_pack_pushed_then_loaded_by_reference_runs_under_a_trust_policy() {
    let store = store();
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/text-tools:1.0", registry.address());
    let pushed = packhost_oci::push(&sample("text_tools"), &reference, None).unwrap();
    assert!(pushed.signed, "text_tools.wasm.sig went with it");
    assert!(pushed.manifest_digest.starts_with("sha256:"));

    let pack =
        Pack::load_reference(format!("oci://{reference}"), trusting(true), Vec::new()).unwrap();
    assert_eq!(format!("sha256:{}", pack.id()), pushed.pack_digest);
    assert_eq!(pack.call("uppercase", b"signed").unwrap().output, b"SIGNED");
    let stored = store
        .path_of(&pushed.pack_digest)
        .unwrap()
        .expect("pulled into the store");
    assert!(packhost::signature_path(&stored).is_file());
}

#[test]
fn packs_signed_by_an_untrusted_key_or_unsigned_are_refused_after_the_pull() {
    store();
    let registry = LocalRegistry::start().unwrap();
    let other = format!("{}/packs/hostile:1", registry.address());
    packhost_oci::push(&sample("hostile"), &other, None).unwrap();
    let err =
        Pack::load_reference(format!("oci://{other}"), trusting(false), Vec::new()).unwrap_err();
    assert_eq!(err.code(), "untrusted_pack", "{err}");
    assert!(err.message().contains("not among trusted_keys"), "{err}");

    let unsigned = format!("{}/packs/api-errors:1", registry.address());
    assert!(
        !packhost_oci::push(&sample("api_errors"), &unsigned, None)
            .unwrap()
            .signed
    );
    let err =
        Pack::load_reference(format!("oci://{unsigned}"), trusting(true), Vec::new()).unwrap_err();
    assert_eq!(err.code(), "untrusted_pack", "{err}");
    assert!(err.message().contains("not signed"), "{err}");
}

#[test]
fn a_blob_tampered_with_in_the_registry_is_refused_with_a_digest_error() {
    let store = store();
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/tampered:1", registry.address());
    let pushed = packhost_oci::push(&sample("text_tools"), &reference, None).unwrap();
    std::fs::write(
        registry.blob_file(&pushed.pack_digest),
        std::fs::read(sample("hostile")).unwrap(),
    )
    .unwrap();

    let err = packhost_oci::pull(&reference, &store).unwrap_err();
    assert_eq!(err.code(), "invalid_pack", "{err}");
    assert!(err.message().contains("digest"), "{err}");
    let err = Pack::load_reference(
        format!("oci://{reference}"),
        PackOptions::default(),
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_pack", "{err}");
    assert!(store
        .pinned(&format!("oci://{reference}"))
        .unwrap()
        .is_none());
}

#[test]
fn a_pinned_reference_keeps_its_pack_when_the_tag_moves_and_loads_offline() {
    let store = store();
    let mut registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/moving:latest", registry.address());
    let first = packhost_oci::push(&sample("text_tools"), &reference, None).unwrap();
    let by_tag = format!("oci://{reference}");
    let loaded = Pack::load_reference(&by_tag, PackOptions::default(), Vec::new()).unwrap();
    assert_eq!(format!("sha256:{}", loaded.id()), first.pack_digest);

    // The tag moves on; loads stay on the pinned pack until it is pulled again.
    let second = packhost_oci::push(&sample("api_errors"), &reference, None).unwrap();
    let loaded = Pack::load_reference(&by_tag, PackOptions::default(), Vec::new()).unwrap();
    assert_eq!(format!("sha256:{}", loaded.id()), first.pack_digest);
    let pulled = packhost_oci::pull(&reference, &store).unwrap();
    assert_eq!(pulled.pack_digest, second.pack_digest);
    assert_eq!(pulled.manifest_digest, second.manifest_digest);

    // With the registry gone, the tag and the manifest digest both load from the store.
    registry.stop();
    let by_digest = format!(
        "oci://{}/packs/moving@{}",
        registry.address(),
        second.manifest_digest
    );
    for reference in [&by_tag, &by_digest] {
        let loaded = Pack::load_reference(reference, PackOptions::default(), Vec::new())
            .unwrap_or_else(|err| panic!("{reference}: {err}"));
        assert_eq!(format!("sha256:{}", loaded.id()), second.pack_digest);
    }
    let never_pulled = format!("oci://{}/packs/moving:other", registry.address());
    let err = Pack::load_reference(&never_pulled, PackOptions::default(), Vec::new()).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
}

#[test]
fn a_pack_altered_in_the_store_is_refused_at_load() {
    let store = store();
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/planted:1", registry.address());
    // A pack no other test of this process stores: the store is shared.
    packhost_oci::push(&sample("plain"), &reference, None).unwrap();
    let pulled = packhost_oci::pull(&reference, &store).unwrap();
    std::fs::write(&pulled.path, std::fs::read(sample("hostile")).unwrap()).unwrap();
    let by_reference = format!("oci://{reference}");
    let err = Pack::load_reference(&by_reference, PackOptions::default(), Vec::new()).unwrap_err();
    assert_eq!(err.code(), "invalid_pack", "{err}");
    assert!(err.message().contains("digest mismatch"), "{err}");

    // Pulling again repairs the store's copy.
    packhost_oci::pull(&reference, &store).unwrap();
    let pack = Pack::load_reference(&by_reference, PackOptions::default(), Vec::new()).unwrap();
    assert_eq!(format!("sha256:{}", pack.id()), pulled.pack_digest);
}

#[test]
fn what_the_registry_lacks_or_is_not_a_pack_is_a_clear_error() {
    let store = store();
    let registry = LocalRegistry::start().unwrap();
    let missing = format!("{}/packs/nothing:1", registry.address());
    let err = packhost_oci::pull(&missing, &store).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
    assert!(err.message().contains("packs/nothing"), "{err}");
    let err = Pack::load_reference("oci://not a reference", PackOptions::default(), Vec::new())
        .unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
    assert!(err.message().contains("not an OCI reference"), "{err}");
}

#[test]
fn a_digest_reference_follows_its_stored_manifest_and_refuses_an_altered_one() {
    let store = store();
    let registry = LocalRegistry::start().unwrap();
    let reference = format!("{}/packs/by-digest:1", registry.address());
    let pushed = packhost_oci::push(&sample("kv_probe"), &reference, None).unwrap();
    packhost_oci::pull(&reference, &store).unwrap();
    let by_digest = format!(
        "oci://{}/packs/by-digest@{}",
        registry.address(),
        pushed.manifest_digest
    );
    let pack = Pack::load_reference(&by_digest, PackOptions::default(), Vec::new()).unwrap();
    assert_eq!(format!("sha256:{}", pack.id()), pushed.pack_digest);

    // The stored manifest rewritten to name another pack: refused, not followed.
    let manifest = store.root().join("blobs/sha256").join(format!(
        "{}.json",
        &pushed.manifest_digest["sha256:".len()..]
    ));
    let altered = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(&pushed.pack_digest, &format!("sha256:{}", "0".repeat(64)));
    std::fs::write(&manifest, altered).unwrap();
    let err = Pack::load_reference(&by_digest, PackOptions::default(), Vec::new()).unwrap_err();
    assert_eq!(err.code(), "invalid_pack", "{err}");
    assert!(err.message().contains("altered"), "{err}");
}
