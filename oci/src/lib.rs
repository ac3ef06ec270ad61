//! Packs in OCI registries: push a pack (and its signature) as a Wasm OCI artifact, pull one
//! into the local [`PackStore`] with every digest checked, and, once [`register`] has run,
//! load `oci://registry/name:tag` references from any host.
//!
//! A pack is published in the layout of the CNCF Wasm OCI artifact (the one `wkg`, wasmCloud
//! and `oras` tooling reads): an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the module, `application/wasm`.
//! Its signature (`packhost sign`) rides along as the manifest annotation
//! [`SIGNATURE_ANNOTATION`], so a pull brings it into the store beside the pack, where a
//! host's trust policy checks it at load.
//!
//! The registry protocol is oci-client's (token and basic authentication, the registry's
//! error documents); this crate adds the pack layout, bounds, digests and the store. Its own
//! crate keeps tokio, hyper and reqwest out of hosts that embed packhost without registries.

pub mod testing;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use packhost::{
    Error, ErrorKind, IncomingPack, Pack, PackOptions, PackSignature, PackStore, ResolvedReference,
    Result,
};
use serde::Serialize;

/// The media type of a pack's config blob (Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer that holds the pack's module.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The manifest annotation that carries the pack's signature document (JSON).
pub const SIGNATURE_ANNOTATION: &str = "dev.packhost.signature";
/// The largest pack a pull accepts, in bytes: a registry cannot make the host hold more.
pub const MAX_PACK_BYTES: u64 = 256 * 1024 * 1024;
/// How long one push or pull may take in all, however slowly a registry answers.
const WHOLE_OPERATION: Duration = Duration::from_secs(300);
/// The scheme of references hosts load.
const SCHEME: &str = "oci://";

/// Makes `oci://` references loadable by [`Pack::load_reference`] in this process. Hosts
/// call it once; calling it again is harmless.
pub fn register() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| packhost::register_pack_source("oci", resolve));
}

/// What [`push`] published.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The reference pushed to, without `oci://`.
    pub reference: String,
    /// The digest of the image manifest, to pin: `REFERENCE@DIGEST` names these bytes forever.
    pub manifest_digest: String,
    /// The pack's own digest (the layer's), the same as its id.
    pub pack_digest: String,
    /// Whether a signature went with it.
    pub signed: bool,
}

impl Pushed {
    /// As JSON text, for the host bindings.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What [`pull`] brought into the store.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    /// The reference pulled, without `oci://`.
    pub reference: String,
    /// The digest of the image manifest the registry served.
    pub manifest_digest: String,
    /// The pack's digest: its name in the store.
    pub pack_digest: String,
    /// The pack's file in the store.
    pub path: PathBuf,
    /// Whether a signature came with it (stored beside it as `PATH.sig`).
    pub signed: bool,
}

impl Pulled {
    /// As JSON text, for the host bindings.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Publishes the pack at `path` to `reference` (`registry/name:tag`, `oci://` optional),
/// with its signature when `signature` names one or `PATH.sig` exists. The pack is loaded
/// first, so only a valid pack is published.
///
/// # Errors
/// `io` when the registry cannot be reached or refuses (credentials, permissions);
/// `untrusted_pack` for a signature of other bytes; else as loading the pack fails.
pub fn push(path: &Path, reference: &str, signature: Option<&Path>) -> Result<Pushed> {
    let image = parse_reference(reference)?;
    let bytes = std::fs::read(path)
        .map_err(|err| Error::new(ErrorKind::Io, format!("{}: {err}", path.display())))?;
    let pack = load_for_publishing(&bytes)?;
    let signature = signature_for(path, signature, &pack)?;
    let pack_digest = format!("sha256:{}", pack.id());

    let manifest = pack.manifest();
    let mut annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            manifest.name.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            manifest.version.clone(),
        ),
    ]);
    if !manifest.description.is_empty() {
        annotations.insert(
            "org.opencontainers.image.description".to_string(),
            manifest.description.clone(),
        );
    }
    if let Some(signature) = &signature {
        annotations.insert(SIGNATURE_ANNOTATION.to_string(), signature.clone());
    }
    let config = serde_json::json!({
        "architecture": "wasm",
        // The Wasm OCI layout's name for a core module (a component would be wasip2).
        "os": "wasip1",
        "layerDigests": [pack_digest],
    });
    let config = Config {
        data: serde_json::to_vec(&config).unwrap_or_default().into(),
        media_type: WASM_CONFIG_MEDIA_TYPE.to_string(),
        annotations: None,
    };
    let layers = [ImageLayer::new(
        bytes,
        WASM_LAYER_MEDIA_TYPE.to_string(),
        None,
    )];
    let image_manifest = OciImageManifest::build(&layers, &config, Some(annotations));

    let registry = Registry::for_image(&image)?;
    let manifest_digest = registry.run(async {
        registry
            .client
            .push(
                &image,
                &layers,
                config,
                &registry.auth,
                Some(image_manifest),
            )
            .await
            .map_err(|err| registry_error(&image, "push", err))?;
        registry
            .client
            .fetch_manifest_digest(&image, &registry.auth)
            .await
            .map_err(|err| registry_error(&image, "push", err))
    })?;
    Ok(Pushed {
        reference: image.whole(),
        manifest_digest,
        pack_digest,
        signed: signature.is_some(),
    })
}

/// Pulls `reference` into `store` and pins it there to the pack's digest, replacing an
/// earlier pin (a tag that moved is followed here, and only here). The manifest is stored
/// too, so that `REFERENCE@MANIFEST-DIGEST` loads offline afterwards.
///
/// # Errors
/// `io` when the registry cannot be reached, refuses the credentials or has no such
/// reference, or the store cannot be written; `invalid_pack` when the artifact holds no
/// Wasm layer, is larger than [`MAX_PACK_BYTES`], or any digest does not match its bytes.
pub fn pull(reference: &str, store: &PackStore) -> Result<Pulled> {
    let image = parse_reference(reference)?;
    let registry = Registry::for_image(&image)?;
    // One runtime for the whole pull: the client's pooled connections belong to it.
    let (manifest_digest, manifest_bytes, manifest, bytes) = registry.run(async {
        let (digest, bytes, manifest) = registry.manifest(&image).await?;
        let layer = wasm_layer(&manifest, &image)?;
        let pack = registry.blob(&image, layer).await?;
        Ok((digest, bytes, manifest, pack))
    })?;
    let pack_digest = wasm_layer(&manifest, &image)?.digest.clone();
    // A signature that is not for these bytes is not kept: it could only ever refuse them.
    let signature = manifest
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(SIGNATURE_ANNOTATION))
        .filter(|text| {
            PackSignature::from_json(text.as_bytes())
                .is_ok_and(|signature| format!("sha256:{}", signature.sha256) == pack_digest)
        });
    let path = store.add_pulled(&IncomingPack {
        bytes: &bytes,
        digest: &pack_digest,
        signature: signature.map(String::as_str),
        manifest: &manifest_bytes,
        references: &[canonical(&image)],
    })?;
    Ok(Pulled {
        reference: image.whole(),
        manifest_digest,
        pack_digest,
        path,
        signed: signature.is_some(),
    })
}

/// The layer that holds the pack: the Wasm OCI layout's `application/wasm`, or the older
/// `application/vnd.wasm.content.layer.v1+wasm`; named by a sha256 digest.
fn wasm_layer<'m>(
    manifest: &'m OciImageManifest,
    image: &Reference,
) -> Result<&'m oci_client::manifest::OciDescriptor> {
    let layer = manifest
        .layers
        .iter()
        .find(|layer| {
            layer.media_type == WASM_LAYER_MEDIA_TYPE
                || layer.media_type == oci_client::manifest::WASM_LAYER_MEDIA_TYPE
        })
        .ok_or_else(|| {
            let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
            Error::new(
                ErrorKind::InvalidPack,
                format!(
                    "{} is not a pack: it has no {WASM_LAYER_MEDIA_TYPE} layer (its layers: {types:?})",
                    image.whole()
                ),
            )
        })?;
    if !packhost::is_digest(&layer.digest) {
        return Err(Error::new(
            ErrorKind::InvalidPack,
            format!(
                "{} names its pack by {:?}, not a sha256 digest",
                image.whole(),
                layer.digest
            ),
        ));
    }
    Ok(layer)
}

/// [`pull`] into the store every host shares ([`PackStore::open_default`]): what the host
/// bindings' `pull` runs.
///
/// # Errors
/// As [`PackStore::open_default`] and [`pull`].
pub fn pull_to_default_store(reference: &str) -> Result<Pulled> {
    pull(reference, &PackStore::open_default()?)
}

/// The `oci` pack source, [`register`]ed for [`Pack::load_reference`]: the pack pinned to
/// `reference` in the default store, else a pull into it. Only the first load of a tag
/// asks the registry; a pinned reference loads with no network at all.
///
/// # Errors
/// As [`pull`], when one is needed.
pub fn resolve(reference: &str) -> Result<ResolvedReference> {
    let image = parse_reference(reference)?;
    let store = PackStore::open_default()?;
    let name = image
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or("unnamed")
        .to_string();
    let stored = match image.digest() {
        // A digest names the manifest, which the store keeps checked against it: followed
        // to its pack, it cannot be redirected by anything written in the store.
        Some(manifest_digest) => match store.manifest(manifest_digest)? {
            Some(bytes) => {
                let manifest: OciImageManifest = serde_json::from_slice(&bytes).map_err(|err| {
                    Error::new(ErrorKind::InvalidPack, format!("{manifest_digest}: {err}"))
                })?;
                Some(wasm_layer(&manifest, &image)?.digest.clone())
            }
            None => None,
        },
        None => store.pinned(&canonical(&image))?,
    };
    if let Some(digest) = stored {
        if let Some(path) = store.path_of(&digest)? {
            return Ok(ResolvedReference { path, digest, name });
        }
    }
    let pulled = pull(reference, &store)?;
    Ok(ResolvedReference {
        path: pulled.path,
        digest: pulled.pack_digest,
        name,
    })
}

/// The store's key for `reference`: its canonical form, so that `oci://host/name:tag` and
/// `host/name:tag` share one pin.
///
/// # Errors
/// `io` when `reference` is not an OCI reference.
pub fn pin_key(reference: &str) -> Result<String> {
    parse_reference(reference).map(|image| canonical(&image))
}

fn canonical(image: &Reference) -> String {
    format!("{SCHEME}{}", image.whole())
}

/// `registry/name:tag` or `…@sha256:…`, with or without `oci://`.
fn parse_reference(reference: &str) -> Result<Reference> {
    let bare = reference.strip_prefix(SCHEME).unwrap_or(reference);
    let not_one = |why: String| {
        Error::new(
            ErrorKind::Io,
            format!(
                "{reference:?} is not an OCI reference (registry/name:tag or \
                 registry/name@sha256:...): {why}"
            ),
        )
    };
    let image = bare
        .parse::<Reference>()
        .map_err(|err| not_one(err.to_string()))?;
    if image
        .digest()
        .is_some_and(|digest| !packhost::is_digest(digest))
    {
        return Err(not_one(
            "packhost names packs by sha256 digests".to_string(),
        ));
    }
    Ok(image)
}

/// Loads `bytes` as a host that lends nothing would, to publish only packs that load and to
/// read their name and version: every host function the pack imports gets a stand-in.
fn load_for_publishing(bytes: &[u8]) -> Result<Pack> {
    let module = packhost::ModuleInfo::read(bytes)?;
    let mut stand_ins = packhost::unavailable_host_functions(&module, "publishing only");
    stand_ins.retain(|function| function.namespace() == packhost::EXTISM_USER);
    let options = PackOptions {
        allow_wasi: true,
        ..PackOptions::default()
    };
    Pack::load_with(bytes, options, stand_ins)
}

/// The signature document to publish with `pack`: the file given, else `PATH.sig` when it
/// exists; checked to be a signature of these bytes, so no pack goes out with another's.
fn signature_for(path: &Path, given: Option<&Path>, pack: &Pack) -> Result<Option<String>> {
    let file = match given {
        Some(file) => file.to_path_buf(),
        None => {
            let beside = packhost::signature_path(path);
            if !beside.is_file() {
                return Ok(None);
            }
            beside
        }
    };
    let text = std::fs::read(&file)
        .map_err(|err| Error::new(ErrorKind::Io, format!("{}: {err}", file.display())))?;
    let signature = PackSignature::from_json(&text)?;
    if signature.sha256 != pack.id() {
        return Err(Error::new(
            ErrorKind::UntrustedPack,
            format!(
                "{} is the signature of other bytes (sha256 {}), not of {}",
                file.display(),
                signature.sha256,
                path.display()
            ),
        ));
    }
    // One line: annotations are single strings, and the document is small.
    Ok(Some(serde_json::to_string(&signature).unwrap_or_default()))
}

/// One registry's client and credentials, with a runtime to drive them.
struct Registry {
    client: Client,
    auth: RegistryAuth,
}

impl Registry {
    /// The client for `image`'s registry: plain HTTP for a registry on this machine (as
    /// docker treats `localhost`) or one listed in `PACKHOST_INSECURE_REGISTRIES`, HTTPS
    /// otherwise. Credentials go only to the registry `PACKHOST_REGISTRY_HOST` names:
    /// `PACKHOST_REGISTRY_USERNAME` and `PACKHOST_REGISTRY_PASSWORD` (basic, or exchanged for
    /// a token when the registry asks), or `PACKHOST_REGISTRY_TOKEN`; every other registry
    /// is asked anonymously, so a reference a user supplied cannot collect them.
    ///
    /// # Errors
    /// `io` when credentials are set but `PACKHOST_REGISTRY_HOST` is not.
    fn for_image(image: &Reference) -> Result<Registry> {
        install_crypto_provider();
        let registry = image.resolve_registry().to_string();
        let insecure = is_loopback(&registry)
            || std::env::var("PACKHOST_INSECURE_REGISTRIES")
                .unwrap_or_default()
                .split(',')
                .any(|listed| listed.trim() == registry);
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::HttpsExcept(vec![registry.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("packhost/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let credentials = match (
            env("PACKHOST_REGISTRY_USERNAME"),
            env("PACKHOST_REGISTRY_PASSWORD"),
            env("PACKHOST_REGISTRY_TOKEN"),
        ) {
            (Some(user), Some(password), _) => Some(RegistryAuth::Basic(user, password)),
            (_, _, Some(token)) => Some(RegistryAuth::Bearer(token)),
            _ => None,
        };
        let auth = match (credentials, env("PACKHOST_REGISTRY_HOST")) {
            (None, _) => RegistryAuth::Anonymous,
            (Some(auth), Some(host)) if host == registry => auth,
            (Some(_), Some(_)) => RegistryAuth::Anonymous,
            (Some(_), None) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    "registry credentials are set but PACKHOST_REGISTRY_HOST, the registry \
                     (host:port) they are for, is not",
                ))
            }
        };
        Ok(Registry {
            client: Client::new(config),
            auth,
        })
    }

    /// Runs `work` to its end on a runtime of its own, on a thread of its own, so that a
    /// caller already inside an async runtime (or holding a host's lock) is not disturbed.
    fn run<T: Send>(&self, work: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| Error::new(ErrorKind::Io, format!("no runtime: {err}")))?;
                    runtime.block_on(async {
                        tokio::time::timeout(WHOLE_OPERATION, work)
                            .await
                            .unwrap_or_else(|_| {
                                Err(Error::new(
                                    ErrorKind::Io,
                                    format!(
                                        "the registry took longer than {} s",
                                        WHOLE_OPERATION.as_secs()
                                    ),
                                ))
                            })
                    })
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Internal,
                        "the registry client panicked",
                    ))
                })
        })
    }

    /// The image manifest `image` names, and its digest computed here from its bytes (and
    /// checked against the reference's digest, when it has one).
    async fn manifest(&self, image: &Reference) -> Result<(String, Vec<u8>, OciImageManifest)> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(
                image,
                &self.auth,
                &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|err| registry_error(image, "pull", err))?;
        let digest = packhost::digest_of(&bytes);
        if let Some(expected) = image.digest() {
            if expected != digest {
                return Err(Error::new(
                    ErrorKind::InvalidPack,
                    format!(
                        "digest mismatch: {} served a manifest whose digest is {digest}",
                        image.whole()
                    ),
                ));
            }
        }
        let manifest = serde_json::from_slice(&bytes).map_err(|err| {
            Error::new(
                ErrorKind::InvalidPack,
                format!("{} is not an image manifest: {err}", image.whole()),
            )
        })?;
        Ok((digest, bytes.to_vec(), manifest))
    }

    /// The layer's bytes, at most [`MAX_PACK_BYTES`] whatever the registry sends. Their digest
    /// is checked where they are stored ([`PackStore::add`]).
    async fn blob(
        &self,
        image: &Reference,
        layer: &oci_client::manifest::OciDescriptor,
    ) -> Result<Vec<u8>> {
        use futures_util::TryStreamExt as _;
        let too_large = || {
            Error::new(
                ErrorKind::InvalidPack,
                format!(
                    "{} holds a pack larger than {MAX_PACK_BYTES} bytes",
                    image.whole()
                ),
            )
        };
        if u64::try_from(layer.size).unwrap_or(u64::MAX) > MAX_PACK_BYTES {
            return Err(too_large());
        }
        let mut stream = self
            .client
            .pull_blob_stream(image, layer)
            .await
            .map_err(|err| registry_error(image, "pull", err))?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        while let Some(chunk) = stream.try_next().await.map_err(|err| {
            // The stream checks the layer's digest as it goes and says so through io.
            let digest_failed = err
                .get_ref()
                .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
            let kind = if digest_failed {
                ErrorKind::InvalidPack
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("pull {}: {err}", image.whole()))
        })? {
            if (bytes.len() + chunk.len()) as u64 > MAX_PACK_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// rustls needs one crypto provider per process; the one ureq already brings (ring).
fn install_crypto_provider() {
    // Err only when one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// A registry's failure as packhost's error: a digest the registry's bytes do not match is
/// `invalid_pack`, anything else (unreachable, refused, unknown) is `io`, with what
/// oci-client said.
fn registry_error(
    image: &Reference,
    action: &str,
    err: oci_client::errors::OciDistributionError,
) -> Error {
    use oci_client::errors::OciDistributionError as Oci;
    let kind = match err {
        Oci::DigestError(_) => ErrorKind::InvalidPack,
        _ => ErrorKind::Io,
    };
    Error::new(kind, format!("{action} {}: {err}", image.whole()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_on_this_machine_are_reached_over_http_and_others_over_https() {
        for registry in [
            "localhost:5000",
            "127.0.0.1:41234",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(registry), "{registry}");
        }
        for registry in ["ghcr.io", "registry.example:5000", "10.0.0.1:5000"] {
            assert!(!is_loopback(registry), "{registry}");
        }
    }

    #[test]
    fn references_read_with_or_without_the_scheme_and_pin_under_one_key() {
        let with = pin_key("oci://127.0.0.1:5000/packs/text-tools:1.0").unwrap();
        let without = pin_key("127.0.0.1:5000/packs/text-tools:1.0").unwrap();
        assert_eq!(with, without);
        assert_eq!(with, "oci://127.0.0.1:5000/packs/text-tools:1.0");
        assert_eq!(
            parse_reference("oci://UPPER/Case").unwrap_err().code(),
            "io"
        );
    }
}
