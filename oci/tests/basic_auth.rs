//! A registry behind basic authentication (htpasswd): refused without credentials, served
//! with them. Its own test binary: the credentials are process-wide environment variables.

use std::path::PathBuf;

use packhost::PackStore;
use packhost_oci::testing::LocalRegistry;

#[test]
fn a_registry_behind_basic_authentication_takes_the_credentials_from_the_environment() {
    let registry = LocalRegistry::start_with_basic_auth("publisher", "s3cret-pass").unwrap();
    let pack = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/text_tools.wasm");
    let reference = format!("{}/packs/private:1", registry.address());
    let store = PackStore::at(
        std::env::temp_dir().join(format!("packhost-oci-auth-{}", std::process::id())),
    )
    .unwrap();

    let err = packhost_oci::push(&pack, &reference, None).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
    let err = packhost_oci::pull(&reference, &store).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");

    // SAFETY (edition 2021: not unsafe): the only test of this process.
    std::env::set_var("PACKHOST_REGISTRY_USERNAME", "publisher");
    std::env::set_var("PACKHOST_REGISTRY_PASSWORD", "s3cret-pass");
    // Credentials without the registry they are for go nowhere.
    let err = packhost_oci::push(&pack, &reference, None).unwrap_err();
    assert!(err.message().contains("PACKHOST_REGISTRY_HOST"), "{err}");
    // Credentials for another registry are not sent to this one.
    std::env::set_var("PACKHOST_REGISTRY_HOST", "registry.example:5000");
    let err = packhost_oci::push(&pack, &reference, None).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");

    std::env::set_var("PACKHOST_REGISTRY_HOST", registry.address());
    std::env::set_var("PACKHOST_REGISTRY_PASSWORD", "not-the-password-7x");
    for err in [
        packhost_oci::push(&pack, &reference, None).unwrap_err(),
        packhost_oci::pull(&reference, &store).unwrap_err(),
    ] {
        assert_eq!(err.code(), "io", "{err}");
        assert!(
            !err.message().contains("not-the-password-7x"),
            "no password in messages: {err}"
        );
    }

    std::env::set_var("PACKHOST_REGISTRY_PASSWORD", "s3cret-pass");
    let pushed = packhost_oci::push(&pack, &reference, None).unwrap();
    let pulled = packhost_oci::pull(&reference, &store).unwrap();
    assert_eq!(pulled.pack_digest, pushed.pack_digest);
    assert!(pulled.signed);
}
