//! A registry behind token authentication (the flow of Docker Hub and GHCR): the client
//! trades the basic credentials from the environment for a bearer token at the registry's
//! token server. Its own test binary: the credentials are process-wide environment variables.

use std::path::PathBuf;

use packhost::PackStore;
use packhost_oci::testing::LocalRegistry;

#[test]
fn a_registry_behind_token_authentication_serves_a_client_with_the_right_credentials() {
    let registry = LocalRegistry::start_with_token_auth("publisher", "t0ken-pass").unwrap();
    let pack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/text_tools.wasm");
    let reference = format!("{}/packs/behind-tokens:1", registry.address());
    let store = PackStore::at(
        std::env::temp_dir().join(format!("packhost-oci-token-{}", std::process::id())),
    )
    .unwrap();

    // Anonymous: the token server refuses, so the registry is never let in.
    let err = packhost_oci::push(&pack, &reference, None).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");

    // SAFETY (edition 2021: not unsafe): the only test of this process.
    std::env::set_var("PACKHOST_REGISTRY_HOST", registry.address());
    std::env::set_var("PACKHOST_REGISTRY_USERNAME", "publisher");
    std::env::set_var("PACKHOST_REGISTRY_PASSWORD", "not-it-9q");
    let err = packhost_oci::pull(&reference, &store).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
    assert!(
        !err.message().contains("not-it-9q"),
        "no password in messages: {err}"
    );

    std::env::set_var("PACKHOST_REGISTRY_PASSWORD", "t0ken-pass");
    let pushed = packhost_oci::push(&pack, &reference, None).unwrap();
    let pulled = packhost_oci::pull(&reference, &store).unwrap();
    assert_eq!(pulled.pack_digest, pushed.pack_digest);
    assert!(pulled.signed);
}
