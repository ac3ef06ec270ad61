//! The local store of packs: pack bytes on disk by SHA-256, shared by the CLI and every
//! host, the references that were pulled pinned to the digest they resolved to, and the
//! schemes (`oci://`) through which a host loads a pack by reference.
//!
//! Several processes may write at once: a blob is written to a temporary file of its own and
//! renamed into place, so two processes storing the same pack both succeed and leave one
//! copy, and no reader ever sees half a pack. A pull's writes (pack, manifest, pins) happen
//! under one shared lock on the store and `gc` takes it exclusively, so a collection never
//! removes a pack between its write and the pin that keeps it. Bytes read from the store are
//! checked against the digest that named them: a pack or manifest planted or altered there is
//! refused, and a digest reference (`…@sha256:…`) is followed through its stored manifest,
//! never through a pin. Pins of tags are trusted as the store's owner wrote them; the store
//! refuses a folder other users may write to.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::pack::module_id;
use crate::trust::signature_path;

/// A content-addressed folder of packs (see the module docs).
#[derive(Debug, Clone)]
pub struct PackStore {
    root: PathBuf,
}

/// One pack in the store, as [`PackStore::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPack {
    /// `sha256:` and the hex digest of the pack's bytes.
    pub digest: String,
    /// Where its bytes are.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Whether a signature came with it (`PATH.sig`).
    pub signed: bool,
    /// The references pinned to it, sorted.
    pub references: Vec<String>,
}

/// What [`PackStore::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Packs no reference was pinned to.
    pub removed: usize,
    /// The bytes they and their signatures (and leftovers of interrupted writes) took.
    pub freed_bytes: u64,
}

/// A pin: the reference as the user wrote it, the pack it resolved to and, for a pull, the
/// image manifest that named the pack.
#[derive(Serialize, Deserialize)]
struct Pin {
    reference: String,
    digest: String,
    #[serde(default)]
    manifest: Option<String>,
}

/// A pack as a registry served it, for [`PackStore::add_pulled`].
#[derive(Debug, Clone, Copy)]
pub struct IncomingPack<'a> {
    /// The pack's bytes.
    pub bytes: &'a [u8],
    /// The digest the manifest names the pack by; bytes that differ are not stored.
    pub digest: &'a str,
    /// The signature document that came with it, if any.
    pub signature: Option<&'a str>,
    /// The image manifest, as served.
    pub manifest: &'a [u8],
    /// The references to pin to the pack.
    pub references: &'a [String],
}

impl PackStore {
    /// The store every host and the CLI share: `$PACKHOST_STORE`, else
    /// `$XDG_DATA_HOME/packhost/store`, else `$HOME/.local/share/packhost/store`.
    ///
    /// # Errors
    /// `io` when none of those is set or the folder cannot be created.
    pub fn open_default() -> Result<PackStore> {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        let root = env_dir("PACKHOST_STORE")
            .or_else(|| env_dir("XDG_DATA_HOME").map(|dir| dir.join("packhost").join("store")))
            .or_else(|| {
                env_dir("HOME").map(|dir| dir.join(".local/share").join("packhost").join("store"))
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Io,
                    "no folder for the pack store: set PACKHOST_STORE (or HOME)",
                )
            })?;
        PackStore::at(root)
    }

    /// The store in `root`, created (private to this user on unix) when missing.
    ///
    /// # Errors
    /// `io` when the folder cannot be created.
    pub fn at(root: impl Into<PathBuf>) -> Result<PackStore> {
        let root = std::path::absolute(root.into()).map_err(|err| io_error(Path::new("."), err))?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        for dir in ["blobs/sha256", "pins", "tmp"] {
            let dir = root.join(dir);
            builder.create(&dir).map_err(|err| io_error(&dir, err))?;
        }
        // Whoever may write here decides what a pinned tag loads.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let mode = std::fs::metadata(&root)
                .map_err(|err| io_error(&root, err))?
                .mode();
            if mode & 0o022 != 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "{}: the pack store is writable by other users (mode {:o}); make it \
                         the user's only (chmod go-w)",
                        root.display(),
                        mode & 0o7777
                    ),
                ));
            }
        }
        Ok(PackStore { root })
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the pack `digest` is, if the store has it.
    ///
    /// # Errors
    /// `invalid_options` for a digest that is not `sha256:` and 64 lowercase hex digits.
    pub fn path_of(&self, digest: &str) -> Result<Option<PathBuf>> {
        let path = self.blob_path(digest)?;
        Ok(path.is_file().then_some(path))
    }

    /// Stores `bytes` (and the signature document that came with them, if any), returning
    /// their digest. When `expected_digest` is given and the bytes do not match it, nothing is
    /// stored.
    ///
    /// # Errors
    /// `invalid_pack` when the bytes are not those `expected_digest` names; `io` when the
    /// store cannot be written.
    pub fn add(
        &self,
        bytes: &[u8],
        expected_digest: Option<&str>,
        signature: Option<&str>,
    ) -> Result<String> {
        let _lock = self.lock(false)?;
        self.add_locked(bytes, expected_digest, signature)
            .map(|(digest, _)| digest)
    }

    /// Stores a pack as a registry served it, its manifest, and pins `references` to it,
    /// all under one lock (so `gc` cannot come between); returns the pack's file.
    ///
    /// # Errors
    /// As [`PackStore::add`] and [`PackStore::pin`].
    pub fn add_pulled(&self, incoming: &IncomingPack<'_>) -> Result<PathBuf> {
        let _lock = self.lock(false)?;
        let (digest, path) =
            self.add_locked(incoming.bytes, Some(incoming.digest), incoming.signature)?;
        let manifest = digest_of(incoming.manifest);
        let manifest_path = self.manifest_path(&manifest)?;
        if !manifest_path.is_file() {
            self.write_atomically(&manifest_path, incoming.manifest)?;
        }
        for reference in incoming.references {
            self.pin_locked(reference, &digest, Some(&manifest))?;
        }
        Ok(path)
    }

    /// The image manifest `digest` names, if the store has it, checked against the digest.
    ///
    /// # Errors
    /// `invalid_pack` when the stored bytes are not those the digest names; `io` when they
    /// cannot be read; `invalid_options` for a malformed digest.
    pub fn manifest(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let path = self.manifest_path(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) if digest_of(&bytes) == digest => Ok(Some(bytes)),
            Ok(_) => Err(Error::new(
                ErrorKind::InvalidPack,
                format!(
                    "digest mismatch: {} is not {digest}; it was altered",
                    path.display()
                ),
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(&path, err)),
        }
    }

    fn add_locked(
        &self,
        bytes: &[u8],
        expected_digest: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(String, PathBuf)> {
        let digest = digest_of(bytes);
        if let Some(expected) = expected_digest {
            if expected != digest {
                return Err(Error::new(
                    ErrorKind::InvalidPack,
                    format!("digest mismatch: expected {expected}, the bytes are {digest}"),
                ));
            }
        }
        let path = self.blob_path(&digest)?;
        // A copy already there is kept only when it is intact: storing a pack again (a
        // `packhost pull`) repairs one that was altered on disk.
        let intact = std::fs::read(&path).is_ok_and(|stored| digest_of(&stored) == digest);
        if !intact {
            self.write_atomically(&path, bytes)?;
        }
        if let Some(signature) = signature {
            self.write_atomically(&signature_path(&path), signature.as_bytes())?;
        }
        Ok((digest, path))
    }

    /// Pins `reference` to `digest`: later loads of the reference use that pack without
    /// asking the registry again, until it is pinned anew (`packhost pull`).
    ///
    /// # Errors
    /// `io` when the pin cannot be written.
    pub fn pin(&self, reference: &str, digest: &str) -> Result<()> {
        let _lock = self.lock(false)?;
        self.pin_locked(reference, digest, None)
    }

    fn pin_locked(&self, reference: &str, digest: &str, manifest: Option<&str>) -> Result<()> {
        self.blob_path(digest)?;
        let pin = serde_json::to_vec(&Pin {
            reference: reference.to_string(),
            digest: digest.to_string(),
            manifest: manifest.map(str::to_string),
        })
        .map_err(|err| Error::new(ErrorKind::Internal, err.to_string()))?;
        self.write_atomically(&self.pin_path(reference), &pin)
    }

    /// The digest `reference` is pinned to, if it is.
    ///
    /// # Errors
    /// `io` when the pin cannot be read.
    pub fn pinned(&self, reference: &str) -> Result<Option<String>> {
        let path = self.pin_path(reference);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice::<Pin>(&bytes)
                .ok()
                .filter(|pin| pin.reference == reference && is_digest(&pin.digest))
                .map(|pin| pin.digest)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(&path, err)),
        }
    }

    /// Removes the pin of `reference`; `false` when there was none. The pack stays until
    /// [`PackStore::gc`].
    ///
    /// # Errors
    /// `io` when the pin cannot be removed.
    pub fn unpin(&self, reference: &str) -> Result<bool> {
        let path = self.pin_path(reference);
        let _lock = self.lock(false)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(io_error(&path, err)),
        }
    }

    /// Every pack in the store, by digest, with the references pinned to it.
    ///
    /// # Errors
    /// `io` when the store cannot be read.
    pub fn list(&self) -> Result<Vec<StoredPack>> {
        let mut pins: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pin in self.pins()? {
            pins.entry(pin.digest).or_default().push(pin.reference);
        }
        let mut packs = Vec::new();
        for (digest, path) in self.blobs()? {
            let size = std::fs::metadata(&path)
                .map_err(|err| io_error(&path, err))?
                .len();
            let mut references = pins.get(&digest).cloned().unwrap_or_default();
            references.sort();
            packs.push(StoredPack {
                signed: signature_path(&path).is_file(),
                digest,
                path,
                size,
                references,
            });
        }
        Ok(packs)
    }

    /// Removes every pack no reference is pinned to, with its signature, and what
    /// interrupted writes left behind. Waits for writes in progress to finish first.
    ///
    /// # Errors
    /// `io` when the store cannot be read or a file cannot be removed.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock(true)?;
        let mut kept = std::collections::BTreeSet::new();
        for pin in self.pins()? {
            kept.extend(pin.manifest);
            kept.insert(pin.digest);
        }
        let mut report = GcReport::default();
        let mut remove = |path: &Path| -> Result<()> {
            match std::fs::symlink_metadata(path) {
                Ok(meta) => {
                    std::fs::remove_file(path).map_err(|err| io_error(path, err))?;
                    report.freed_bytes += meta.len();
                    Ok(())
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(io_error(path, err)),
            }
        };
        for (digest, path) in self.blobs()? {
            if !kept.contains(&digest) {
                remove(&path)?;
                remove(&signature_path(&path))?;
                report.removed += 1;
            }
        }
        let manifests = self.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&manifests).map_err(|err| io_error(&manifests, err))? {
            let path = entry.map_err(|err| io_error(&manifests, err))?.path();
            let digest = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".json"))
                .map(|hex| format!("sha256:{hex}"));
            if digest.is_some_and(|digest| is_digest(&digest) && !kept.contains(&digest)) {
                remove(&path)?;
            }
        }
        // Under the exclusive lock no write is in progress: whatever is here was abandoned.
        let tmp = self.root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(|err| io_error(&tmp, err))? {
            let entry = entry.map_err(|err| io_error(&tmp, err))?;
            remove(&entry.path())?;
        }
        Ok(report)
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        self.path_in_blobs(digest, "wasm")
    }

    fn manifest_path(&self, digest: &str) -> Result<PathBuf> {
        self.path_in_blobs(digest, "json")
    }

    fn path_in_blobs(&self, digest: &str, extension: &str) -> Result<PathBuf> {
        if !is_digest(digest) {
            return Err(Error::invalid_options(format!(
                "{digest:?} is not a digest packhost stores (sha256: and 64 lowercase hex digits)"
            )));
        }
        Ok(self
            .root
            .join("blobs/sha256")
            .join(format!("{}.{extension}", &digest["sha256:".len()..])))
    }

    /// A pin's file is named by the hash of its reference, so that no reference, whatever
    /// it holds, names a path outside `pins/`.
    fn pin_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("pins")
            .join(format!("{}.json", module_id(reference.as_bytes())))
    }

    /// The packs on disk by digest; anything else in the folder is passed over.
    fn blobs(&self) -> Result<Vec<(String, PathBuf)>> {
        let dir = self.root.join("blobs/sha256");
        let mut blobs = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|err| io_error(&dir, err))? {
            let path = entry.map_err(|err| io_error(&dir, err))?.path();
            let Some(hex) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            let Some(hex) = hex.strip_suffix(".wasm") else {
                continue;
            };
            let digest = format!("sha256:{hex}");
            if is_digest(&digest) {
                blobs.push((digest, path));
            }
        }
        blobs.sort();
        Ok(blobs)
    }

    /// Every readable pin.
    fn pins(&self) -> Result<Vec<Pin>> {
        let dir = self.root.join("pins");
        let mut pins = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|err| io_error(&dir, err))? {
            let path = entry.map_err(|err| io_error(&dir, err))?.path();
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            if let Ok(pin) = serde_json::from_slice::<Pin>(&bytes) {
                if is_digest(&pin.digest) {
                    pins.push(pin);
                }
            }
        }
        Ok(pins)
    }

    /// Writes `bytes` to `path` so that readers see the old file or the whole new one: a
    /// private temporary file in the store, flushed to disk, then renamed over `path`.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce)
            .map_err(|err| Error::new(ErrorKind::Io, format!("no randomness: {err}")))?;
        let temp = self
            .root
            .join("tmp")
            .join(format!("{}.part", crate::pack::hex(&nonce)));
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let written = open.open(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&temp, path));
        if let Err(err) = renamed {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error(path, err));
        }
        Ok(())
    }

    /// Holds the store's lock until dropped: shared for writers, exclusive for `gc`.
    fn lock(&self, exclusive: bool) -> Result<std::fs::File> {
        let path = self.root.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| io_error(&path, err))?;
        let result = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        result.map_err(|err| io_error(&path, err))?;
        Ok(file)
    }
}

/// `bytes`' digest as content-addressed stores write it: `sha256:` and the lowercase hex of
/// their SHA-256 (for a pack, `sha256:` and its [`Pack::id`](crate::Pack::id)).
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", module_id(bytes))
}

/// Whether `digest` is one packhost stores and follows: `sha256:` and 64 lowercase hex digits.
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn io_error(path: &Path, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {err}", path.display()))
}

/// A reference a [`PackSource`] resolved: the pack in the local store and what to call it.
#[derive(Debug, Clone)]
pub struct ResolvedReference {
    /// The pack's file, in the store.
    pub path: PathBuf,
    /// The digest the reference resolved to; the load refuses bytes that do not match it.
    pub digest: String,
    /// The name for a pack without a manifest (the repository's last segment, say).
    pub name: String,
}

/// Turns a reference such as `oci://registry/name:tag` into a pack in the local store,
/// pulling it when needed (packhost-oci registers `oci`).
pub type PackSource = fn(&str) -> Result<ResolvedReference>;

fn sources() -> &'static Mutex<HashMap<String, PackSource>> {
    static SOURCES: OnceLock<Mutex<HashMap<String, PackSource>>> = OnceLock::new();
    SOURCES.get_or_init(Default::default)
}

/// Makes references `SCHEME://…` loadable by [`Pack::load_reference`](crate::Pack::load_reference),
/// for crates that keep a heavy client out of the core (packhost-oci registers `oci`).
/// Registering a scheme again replaces it.
pub fn register_pack_source(scheme: &str, source: PackSource) {
    if let Ok(mut sources) = sources().lock() {
        sources.insert(scheme.to_string(), source);
    }
}

/// The source registered for `reference`'s scheme: `None` for a plain path, an error for a
/// scheme nobody registered.
pub(crate) fn source_for(reference: &str) -> Result<Option<PackSource>> {
    let Some((scheme, _)) = reference.split_once("://") else {
        return Ok(None);
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        return Ok(None);
    }
    let source = sources().lock().ok().and_then(|s| s.get(scheme).copied());
    source.map(Some).ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!(
                "{scheme}:// references cannot be loaded here: {}",
                if scheme == "oci" {
                    "they come with the packhost-oci crate (packhost_oci::register())"
                } else {
                    "packhost knows oci:// (with the packhost-oci crate) and file paths"
                }
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PackStore {
        let dir =
            std::env::temp_dir().join(format!("packhost-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        PackStore::at(dir).unwrap()
    }

    #[test]
    fn a_pack_is_stored_once_under_its_digest_and_pins_keep_it_from_gc() {
        let store = scratch("pins");
        let kept = store.add(b"\0asm kept", None, Some("{}")).unwrap();
        assert_eq!(store.add(b"\0asm kept", Some(&kept), None).unwrap(), kept);
        let dropped = store.add(b"\0asm dropped", None, None).unwrap();
        store.pin("oci://localhost/kept:1", &kept).unwrap();
        assert_eq!(
            store.pinned("oci://localhost/kept:1").unwrap(),
            Some(kept.clone())
        );
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 2);
        let entry = listed.iter().find(|p| p.digest == kept).unwrap();
        assert!(entry.signed);
        assert_eq!(entry.references, ["oci://localhost/kept:1"]);

        let report = store.gc().unwrap();
        assert_eq!(report.removed, 1);
        assert!(store.path_of(&dropped).unwrap().is_none());
        assert!(store.path_of(&kept).unwrap().is_some());
        assert!(store.unpin("oci://localhost/kept:1").unwrap());
        assert_eq!(store.gc().unwrap().removed, 1);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn bytes_that_are_not_what_their_digest_names_are_not_stored() {
        let store = scratch("mismatch");
        let named = digest_of(b"the real pack");
        let err = store
            .add(b"something else", Some(&named), None)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_pack");
        assert!(err.message().contains("digest mismatch"), "{err}");
        assert!(store.list().unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_store_other_users_may_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let store = scratch("shared");
        std::fs::set_permissions(store.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = PackStore::at(store.root()).unwrap_err();
        assert_eq!(err.code(), "io");
        assert!(err.message().contains("writable by other users"), "{err}");
    }

    #[test]
    fn a_malformed_digest_names_no_path() {
        let store = scratch("digest");
        for digest in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABC"] {
            assert_eq!(store.path_of(digest).unwrap_err().code(), "invalid_options");
        }
    }
}
