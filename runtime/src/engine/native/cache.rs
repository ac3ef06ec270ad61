//! The native engine's on-disk code cache: `<cache>/native/<engine hash>/<pack id>.cwasm`
//! files, each bound by a keyed hash to this user and to its pack, kept under a size cap that
//! evicts the least recently used.
//!
//! Loading a cached file runs the machine code in it, so a file that another local user or a
//! compromised process could plant, swap or edit would be code execution in every host that
//! loads packs. The cache therefore trusts nothing it cannot tie to this user:
//!
//! * every directory level is created `0700`, and used only while it is a real directory (not
//!   a symbolic link) owned by the effective user with no group or other permission bits;
//!   packhost never loosens or repairs one, it refuses the disk cache and compiles in memory;
//! * files are written to an unpredictable temporary name opened with `O_EXCL | O_NOFOLLOW`
//!   and mode `0600`, then renamed into place, so a reader never sees half a file and nobody
//!   can pre-create or redirect the file being written; a file is never written in place;
//! * each file ends with a trailer holding a keyed BLAKE3 hash, under a per-user secret kept
//!   in `<cache>/key`, over a magic, the pack id and the code: a file written by anyone
//!   without the key, edited after it was written, or copied to another pack's name is
//!   refused and the pack recompiled.
//!
//! The code comes first and the trailer last so that wasmtime can map the file itself: the
//! code is checked where it lies in the page cache, then runs from a mapping of that same
//! file, and a pack's initial memory is mapped copy-on-write from it, with no copy into the
//! heap (a Python pack's code is ~55 MB). The check holds for the bytes as they were when
//! the file was loaded; a file is never written in place, so only its owner could change it
//! after, and the owner can already sign files with the key. Where running code straight
//! from the file is impossible or unsafe (a `noexec` mount, a network or FUSE filesystem,
//! where another client's eviction or an I/O error would surface as `SIGBUS` when a page is
//! first read), or fails (no `/dev/fd`, no file descriptors left), the checked bytes are
//! copied into memory instead, as wasmtime's `deserialize` does.
//!
//! On other platforms there is no disk cache: packs are compiled in every process.

use std::fs::File;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// Compiled code the cache holds: a core module or a component. Their serialized forms
/// differ, and so do the packs (ids) they were compiled from, so one directory holds both.
pub(super) trait CompiledCode: Sized {
    fn engine(&self) -> &Engine;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// As `Module::deserialize`: `bytes` must be what `serialize` produced.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// # Safety
    /// As `Module::deserialize_open_file`: `file` must start with what `serialize` produced
    /// (wasmtime's reader ignores what follows it, the trailer here) and stay unchanged
    /// for as long as the code lives.
    unsafe fn deserialize_file(engine: &Engine, file: &File) -> wasmtime::Result<Self>;
}

impl CompiledCode for Module {
    fn engine(&self) -> &Engine {
        Module::engine(self)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise.
        unsafe { Module::deserialize(engine, bytes) }
    }
    unsafe fn deserialize_file(engine: &Engine, file: &File) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise.
        unsafe { Module::deserialize_open_file(engine, file.try_clone()?) }
    }
}

impl CompiledCode for Component {
    fn engine(&self) -> &Engine {
        Component::engine(self)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise.
        unsafe { Component::deserialize(engine, bytes) }
    }
    #[cfg(unix)]
    unsafe fn deserialize_file(engine: &Engine, file: &File) -> wasmtime::Result<Self> {
        use std::os::fd::AsRawFd;
        // wasmtime 43 takes an open file for modules only; `/dev/fd/N` opens the very file
        // that was checked (never the path again, which could be renamed over meanwhile).
        let same_file = format!("/dev/fd/{}", file.as_raw_fd());
        // SAFETY: the caller's promise, about the same file.
        unsafe { Component::deserialize_file(engine, same_file) }
    }
    #[cfg(not(unix))]
    unsafe fn deserialize_file(_engine: &Engine, _file: &File) -> wasmtime::Result<Self> {
        wasmtime::bail!("there is no disk cache on this platform")
    }
}

/// The compiled code for pack `id` from the disk cache, or `None` when it is not cached,
/// fails a check (then a warning names the file and the caller recompiles, and `store`
/// replaces the file), or there is no usable disk cache.
#[cfg(unix)]
pub(super) fn load<C: CompiledCode>(id: &str, engine: &Engine) -> Option<C> {
    disk::shared(engine)?.load(id, engine)
}

/// Without the unix permission and `O_NOFOLLOW` checks there is no safe disk cache.
#[cfg(not(unix))]
pub(super) fn load<C: CompiledCode>(_id: &str, _engine: &Engine) -> Option<C> {
    None
}

/// As [`load`], for a second engine of the same configuration (the pooled one): wasmtime
/// maps the same file again, so the two engines share its pages. That wasmtime refuses the
/// code is no news here (one engine's limits may refuse code the other runs), so that is
/// not warned of; every other refusal is, as by [`load`].
#[cfg(unix)]
pub(super) fn load_again<C: CompiledCode>(id: &str, engine: &Engine) -> Option<C> {
    disk::shared(engine)?.load_quietly(id, engine, true)
}

/// Without the unix permission and `O_NOFOLLOW` checks there is no safe disk cache.
#[cfg(not(unix))]
pub(super) fn load_again<C: CompiledCode>(_id: &str, _engine: &Engine) -> Option<C> {
    None
}

/// Writes `code`, compiled for pack `id`, to the disk cache when there is a usable one,
/// then evicts the least recently used files past the cap. Failures only cost the cache.
#[cfg(unix)]
pub(super) fn store(id: &str, code: &impl CompiledCode) {
    if let Some(cache) = disk::shared(code.engine()) {
        cache.store(id, code);
    }
}

/// Without the unix permission and `O_NOFOLLOW` checks there is no safe disk cache.
#[cfg(not(unix))]
pub(super) fn store(_id: &str, _code: &impl CompiledCode) {}

/// The cache itself; unix only, because its safety rests on file ownership, permission bits
/// and `O_NOFOLLOW`.
#[cfg(unix)]
mod disk {
    use std::fs::{self, DirBuilder, File, OpenOptions};
    use std::hash::{Hash, Hasher};
    use std::io::{self, Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime};

    use memmap2::Mmap;
    use wasmtime::Engine;

    use super::CompiledCode;

    use crate::engine::cache_dir;

    /// The first bytes of every cached file's trailer. Its version byte changes with the
    /// layout, which also renames the directory (`engine_tag`), so files of an older layout
    /// are never even looked at.
    pub(super) const MAGIC: &[u8] = b"packhost-cwasm\x02";

    /// Length of a pack id: the SHA-256 of the module bytes in lowercase hex.
    const ID_LEN: usize = 64;

    /// Length of the keyed BLAKE3 tag.
    const TAG_LEN: usize = blake3::OUT_LEN;

    /// Bytes after the serialized code: magic, pack id, tag.
    pub(super) const TRAILER_LEN: usize = MAGIC.len() + ID_LEN + TAG_LEN;

    /// Length of the per-user secret.
    pub(super) const KEY_LEN: usize = 32;

    /// The per-user secret's file name in the cache root.
    pub(super) const KEY_FILE: &str = "key";

    /// Default cap on the cached files of one engine directory: 1 GiB.
    const DEFAULT_MAX_BYTES: u64 = 1 << 30;

    /// Environment variable that overrides the cap, in bytes.
    const MAX_BYTES_VAR: &str = "PACKHOST_CACHE_MAX_BYTES";

    /// Reads of a key file shorter than a key before giving up: it may be another process's,
    /// created an instant ago and not yet written. Bounded so a truncated key never hangs.
    const KEY_READ_ATTEMPTS: u32 = 10;

    /// Pause between those reads.
    const KEY_READ_PAUSE: Duration = Duration::from_millis(5);

    /// Age past which a temporary file is taken for one a crashed writer left behind.
    const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

    /// How long another engine's directory (another packhost or wasmtime build, other CPU
    /// features) may go without a file of it being read or written before it is removed.
    const STALE_ENGINE_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

    /// Why a file whose tag does not match is refused.
    const TAMPERED: &str =
        "its keyed hash does not match: it was changed after it was written, or written \
         without this user's key";

    /// This process's disk cache, built once from `cache_dir()`, or `None` when there is no
    /// cache directory or a check failed (then one warning says why). There is one engine per
    /// process, so the engine of the first call names the directory for all of them.
    pub(super) fn shared(engine: &Engine) -> Option<&'static DiskCache> {
        static CACHE: OnceLock<Option<DiskCache>> = OnceLock::new();
        CACHE
            .get_or_init(|| {
                let root = cache_dir()?;
                match DiskCache::open(root, engine, max_bytes_from_env()) {
                    Ok(cache) => Some(cache),
                    Err(why) => {
                        tracing::warn!(
                            "not caching compiled code on disk, packs are compiled in every \
                             process: {why}"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The cap from `PACKHOST_CACHE_MAX_BYTES`, else 1 GiB; read once, with the cache.
    fn max_bytes_from_env() -> u64 {
        super::super::code::number_from_env(
            MAX_BYTES_VAR,
            DEFAULT_MAX_BYTES,
            "bytes of cached code",
        )
    }

    /// One engine's directory of the disk cache, with the key that signs its files.
    ///
    /// The process uses one, built by [`shared`]; tests build their own on scratch
    /// directories, so nothing here depends on process-wide state.
    pub(super) struct DiskCache {
        /// `<root>/native/<engine hash>`: where the `.cwasm` files live.
        pub(super) dir: PathBuf,
        /// The per-user secret from `<root>/key`.
        pub(super) key: [u8; KEY_LEN],
        /// Cap on the total size of the `.cwasm` files in `dir`.
        pub(super) max_bytes: u64,
        /// Whether wasmtime runs code straight from the files ([`can_run_from_files`]),
        /// else from a copy.
        pub(super) run_from_files: bool,
    }

    impl DiskCache {
        /// Creates (level by level, `0700`) and checks `root`, `root/native` and
        /// `root/native/<engine hash>`, then reads or creates the key in `root`.
        ///
        /// The engine hash covers wasmtime's version, the compiler settings, the host CPU
        /// features and packhost's version, so code compiled by another build or another
        /// machine is never offered to this one.
        ///
        /// # Errors
        /// Why the disk cache must not be used: a level that is a symbolic link, not a
        /// directory, owned by another user, or open to group or others; a key that cannot
        /// be made or read, or fails its own checks.
        pub(super) fn open(root: &Path, engine: &Engine, max_bytes: u64) -> Result<Self, String> {
            let native = root.join("native");
            let dir = native.join(engine_tag(engine));
            for level in [root, native.as_path(), dir.as_path()] {
                make_private_dir(level)?;
            }
            let key = read_or_create_key(&root.join(KEY_FILE))?;
            let run_from_files = can_run_from_files(&dir);
            Ok(DiskCache {
                dir,
                key,
                max_bytes,
                run_from_files,
            })
        }

        /// Where pack `id`'s compiled code is kept.
        pub(super) fn path(&self, id: &str) -> PathBuf {
            self.dir.join(format!("{id}.cwasm"))
        }

        /// The code cached for pack `id`, or `None` when there is none or the file fails a
        /// check (warned, with its path). A file that loads gets its modification time set
        /// to now, so that eviction reads mtime as "last used".
        pub(super) fn load<C: CompiledCode>(&self, id: &str, engine: &Engine) -> Option<C> {
            self.load_quietly(id, engine, false)
        }

        /// As [`DiskCache::load`]; code that `engine` refuses is logged at debug level only
        /// when `quiet`.
        pub(super) fn load_quietly<C: CompiledCode>(
            &self,
            id: &str,
            engine: &Engine,
            quiet: bool,
        ) -> Option<C> {
            if !is_pack_id(id) {
                return None;
            }
            let path = self.path(id);
            // Group-readable would be harmless, group-writable is what lets code be planted.
            let file = match open_for_reading(&path, 0o022) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
                Err(err) => {
                    refuse_file(&path, &err.to_string());
                    return None;
                }
            };
            // SAFETY: a read-only view of a file only this user can write, which packhost
            // never writes in place (`store` renames a new file over it, which leaves this
            // one as it is), so it does not change under the slice.
            let mapped = match unsafe { Mmap::map(&file) } {
                Ok(mapped) => mapped,
                Err(err) => {
                    refuse_file(&path, &format!("it cannot be read: {err}"));
                    return None;
                }
            };
            let checked = match self.verify(id, &mapped) {
                Ok(checked) => checked,
                Err(why) => {
                    refuse_file(&path, why);
                    return None;
                }
            };
            // SAFETY (both calls): wasmtime requires what `serialize` produced, and for the
            // file, that it stays unchanged while the code lives. This carries a valid tag
            // under this user's secret, which only `store` uses, over code that an engine of
            // this very configuration (the directory's hash) compiled from the pack whose id
            // it names; packs never supply precompiled code. wasmtime maps this same open
            // file, not the path, and the file stays unchanged as above (on the local
            // filesystems `run_from_files` allows, eviction's unlink leaves a mapped file
            // intact). wasmtime still checks its own header and engine compatibility.
            let from_file = if self.run_from_files {
                unsafe { C::deserialize_file(engine, &file) }
                    .map_err(|err| {
                        tracing::debug!(
                            path = %path.display(),
                            "running cached code from a copy, not the file: {err:#}"
                        );
                    })
                    .ok()
            } else {
                None
            };
            let code = match from_file {
                Some(code) => Ok(code),
                None => unsafe { C::deserialize(engine, checked) },
            };
            let code = match code {
                Ok(code) => code,
                Err(err) if quiet => {
                    tracing::debug!(path = %path.display(), "cached code not used here: {err:#}");
                    return None;
                }
                Err(err) => {
                    refuse_file(&path, &format!("wasmtime cannot use it: {err:#}"));
                    return None;
                }
            };
            // Failing only makes the file look older to eviction.
            let _ = file.set_modified(SystemTime::now());
            Some(code)
        }

        /// The serialized code in `bytes` (all but the trailer), or why the file is not one
        /// `store` wrote for pack `id` with this key. The id is compared before the tag so the
        /// warning can say which check failed; both must pass.
        pub(super) fn verify<'a>(
            &self,
            id: &str,
            bytes: &'a [u8],
        ) -> Result<&'a [u8], &'static str> {
            let Some(code_len) = bytes.len().checked_sub(TRAILER_LEN) else {
                return Err("it is shorter than its trailer");
            };
            let (code, trailer) = bytes.split_at(code_len);
            let (magic, rest) = trailer.split_at(MAGIC.len());
            if magic != MAGIC {
                return Err("it does not end with packhost's cache trailer");
            }
            let (stored_id, tag) = rest.split_at(ID_LEN);
            if stored_id != id.as_bytes() {
                return Err("it was stored for another pack");
            }
            let tag = <[u8; TAG_LEN]>::try_from(tag).expect("the trailer's last TAG_LEN bytes");
            // `blake3::Hash` compares in constant time, so timing tells nothing about the tag.
            if self.tag(id, code) != blake3::Hash::from_bytes(tag) {
                return Err(TAMPERED);
            }
            Ok(code)
        }

        /// Writes `module` for pack `id`, then evicts past the cap. The file goes to a random
        /// temporary name first and is renamed over the final one, so readers see the old
        /// file or the new one, never half of one. Any failure removes the temporary file and
        /// leaves the pack uncached.
        pub(super) fn store(&self, id: &str, module: &impl CompiledCode) {
            if !is_pack_id(id) {
                return;
            }
            let code = match module.serialize() {
                Ok(code) => code,
                Err(err) => {
                    tracing::debug!("cannot serialize compiled code for the cache: {err:#}");
                    return;
                }
            };
            let tag = self.tag(id, &code);
            let path = self.path(id);
            let Some(staged) = self.temp_path(id) else {
                return;
            };
            let mut file = match create_private_file(&staged) {
                Ok(file) => file,
                Err(err) => {
                    // Not ours to remove: create_new failed, so we did not make it.
                    tracing::debug!(path = %staged.display(), "cannot cache compiled code: {err}");
                    return;
                }
            };
            // No fsync: a file torn by a crash fails its tag and is recompiled.
            let written = [&code[..], MAGIC, id.as_bytes(), tag.as_bytes()]
                .iter()
                .try_for_each(|part| file.write_all(part));
            drop(file);
            if let Err(err) = written.and_then(|()| fs::rename(&staged, &path)) {
                let _ = fs::remove_file(&staged);
                tracing::debug!(path = %path.display(), "cannot cache compiled code: {err}");
                return;
            }
            self.evict();
        }

        /// Removes the least recently used `.cwasm` files (oldest mtime first) until the rest
        /// fit in `max_bytes`, temporary files that crashed writers left behind, and other
        /// engines' directories gone stale ([`DiskCache::remove_stale_engines`]). Errors are
        /// ignored: another process may be evicting or storing at the same moment.
        pub(super) fn evict(&self) {
            self.remove_stale_engines();
            let Ok(entries) = fs::read_dir(&self.dir) else {
                return;
            };
            let now = SystemTime::now();
            let mut files = Vec::new();
            for entry in entries.flatten() {
                // Does not follow symbolic links, which are never counted or removed.
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if name.ends_with(".cwasm") {
                    files.push((modified, meta.len(), entry.path()));
                } else if name.ends_with(".tmp")
                    && now
                        .duration_since(modified)
                        .is_ok_and(|age| age > STALE_TEMP_AGE)
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
            let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
            files.sort();
            for (_, len, path) in files {
                if total <= self.max_bytes {
                    break;
                }
                let _ = fs::remove_file(path);
                total = total.saturating_sub(len);
            }
        }

        /// Removes the directories beside this one that other engines wrote (an upgrade of
        /// packhost or wasmtime leaves its predecessor's) once none of their files has been
        /// read or written for [`STALE_ENGINE_AGE`] (a load marks a file used), so builds
        /// that share the cache and load packs keep theirs. Only this user's directories
        /// with an engine directory's name and nothing but files in them are removed, and a
        /// symbolic link is never followed. A build still running that has not loaded from
        /// its directory for that long loses it, and compiles again.
        fn remove_stale_engines(&self) {
            let Some(native) = self.dir.parent() else {
                return;
            };
            let Ok(entries) = fs::read_dir(native) else {
                return;
            };
            let now = SystemTime::now();
            let stale = |time: SystemTime| {
                now.duration_since(time)
                    .is_ok_and(|age| age > STALE_ENGINE_AGE)
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let named_as_engine = entry.file_name().to_str().is_some_and(|name| {
                    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
                });
                // `DirEntry::metadata` does not follow a symbolic link.
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if path == self.dir || !named_as_engine || !meta.is_dir() || meta.uid() != euid() {
                    continue;
                }
                let Ok(files) = fs::read_dir(&path) else {
                    continue;
                };
                let mut last_used = meta.modified().unwrap_or(now);
                let mut doomed = Vec::new();
                for file in files.flatten() {
                    match file.metadata() {
                        Ok(file_meta) if file_meta.is_file() => {
                            last_used = last_used.max(file_meta.modified().unwrap_or(now));
                            doomed.push(file.path());
                        }
                        // Anything else in there is not the cache's: leave the directory.
                        _ => last_used = now,
                    }
                    if !stale(last_used) {
                        break;
                    }
                }
                if stale(last_used) {
                    for file in doomed {
                        let _ = fs::remove_file(file);
                    }
                    let _ = fs::remove_dir(&path);
                }
            }
        }

        /// The keyed BLAKE3 hash over magic, pack id and code, keyed by this user's secret:
        /// what ties a file to both the user and the pack.
        fn tag(&self, id: &str, code: &[u8]) -> blake3::Hash {
            blake3::Hasher::new_keyed(&self.key)
                .update(MAGIC)
                .update(id.as_bytes())
                .update(code)
                .finalize()
        }

        /// A fresh temporary name next to pack `id`'s file, random so that nobody can
        /// predict it, or `None` without randomness (then the pack is not cached).
        fn temp_path(&self, id: &str) -> Option<PathBuf> {
            let mut nonce = [0u8; 8];
            getrandom::getrandom(&mut nonce).ok()?;
            let nonce = u64::from_ne_bytes(nonce);
            Some(self.dir.join(format!("{id}.{nonce:016x}.tmp")))
        }
    }

    /// True for a pack id as packhost makes them, 64 lowercase hex digits; anything else is
    /// never turned into a file name (no separators, no `..`).
    fn is_pack_id(id: &str) -> bool {
        id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// Whether wasmtime may run code straight from files in `dir`. Not on a `noexec` mount
    /// (the kernel refuses to make such a mapping executable), nor on a network or FUSE
    /// filesystem, where a file another client evicts, or a read error, would surface as
    /// `SIGBUS` when a page of code is first read, long after the file was checked.
    #[cfg(target_os = "linux")]
    fn can_run_from_files(dir: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        // Filesystem magic numbers (statfs(2)) of remote and user-space filesystems.
        const SHARED_OR_USER_SPACE: [i64; 7] = [
            0x6969,      // NFS
            0x517B,      // SMB
            0xFF53_4D42, // CIFS
            0xFE53_4D42, // SMB2
            0x6573_5546, // FUSE
            0x0102_1997, // 9P
            0x0BD0_0BD0, // Lustre
        ];
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        let mut vfs = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: a NUL-terminated path and buffers of the types the calls fill.
        let (vfs, fs) = unsafe {
            if libc::statvfs(path.as_ptr(), vfs.as_mut_ptr()) != 0
                || libc::statfs(path.as_ptr(), fs.as_mut_ptr()) != 0
            {
                return false;
            }
            (vfs.assume_init(), fs.assume_init())
        };
        let noexec = vfs.f_flag & libc::ST_NOEXEC != 0;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
        let kind = fs.f_type as i64;
        !noexec && !SHARED_OR_USER_SPACE.contains(&kind)
    }

    /// Elsewhere wasmtime runs cached code from a copy; a failed attempt would cost the
    /// same copy and a warning.
    #[cfg(not(target_os = "linux"))]
    fn can_run_from_files(_dir: &Path) -> bool {
        false
    }

    /// The directory name for `engine`: a hash of its compatibility hash, packhost's version,
    /// the version of the rewrite that adds kernel memory to packs and the file layout's magic.
    fn engine_tag(engine: &Engine) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        // Cached code is of the module as the native engine rewrote it.
        super::super::kernel_wasm::REWRITE_VERSION.hash(&mut hasher);
        MAGIC.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// The effective user, who must own everything the cache uses.
    fn euid() -> libc::uid_t {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    /// Creates `path` with mode `0700` unless it exists, then checks it with
    /// [`check_private_dir`]. An existing directory is never chmodded: one that is loose was
    /// open to others already, and what they may have left inside cannot be known.
    fn make_private_dir(path: &Path) -> Result<(), String> {
        match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(format!("cannot create {}: {err}", path.display())),
        }
        check_private_dir(path)
    }

    /// Checks that `path` itself (not what a symbolic link there points to) is a directory
    /// owned by the effective user with no group or other permission bits, so only this user
    /// can put files in it or swap the ones there.
    fn check_private_dir(path: &Path) -> Result<(), String> {
        let shown = path.display();
        let meta =
            fs::symlink_metadata(path).map_err(|err| format!("cannot inspect {shown}: {err}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{shown} is a symbolic link; the code cache uses only real directories"
            ));
        }
        if !meta.is_dir() {
            return Err(format!("{shown} is not a directory"));
        }
        let me = euid();
        if meta.uid() != me {
            return Err(format!(
                "{shown} is owned by uid {}, not by this user (uid {me})",
                meta.uid()
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{shown} is open to other users (mode {:o}); run `chmod 700 {shown}` to cache \
                 compiled code there",
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }

    /// Creates `path` for writing, failing if anything exists there (`O_EXCL`), a symbolic
    /// link included (`O_NOFOLLOW`), readable and writable by this user only.
    fn create_private_file(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    /// Opens `path` for reading without following a symbolic link, and checks that what was
    /// opened is a regular file owned by the effective user with none of `forbidden_mode`'s
    /// bits. The checks are made on the open file, so the path cannot be swapped between
    /// check and read.
    fn open_for_reading(path: &Path, forbidden_mode: u32) -> io::Result<File> {
        // O_NONBLOCK so that a FIFO left here cannot hang the open; only regular files pass
        // the checks below, and on them the flag changes nothing.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|err| {
                if err.raw_os_error() == Some(libc::ELOOP) {
                    io::Error::other("it is a symbolic link")
                } else {
                    err
                }
            })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other("it is not a regular file"));
        }
        let me = euid();
        if meta.uid() != me {
            return Err(io::Error::other(format!(
                "it is owned by uid {}, not by this user (uid {me})",
                meta.uid()
            )));
        }
        if meta.mode() & forbidden_mode != 0 {
            return Err(io::Error::other(format!(
                "its mode {:o} opens it to other users",
                meta.mode() & 0o7777
            )));
        }
        Ok(file)
    }

    /// Warns that the cached file at `path` is not loaded, and why; the pack is recompiled
    /// and the file replaced.
    fn refuse_file(path: &Path, why: &str) {
        tracing::warn!(
            path = %path.display(),
            "ignoring cached compiled code, compiling the pack again: {why}"
        );
    }

    /// The per-user secret at `path`: created with 32 random bytes when missing, else read
    /// and checked like a cached file but stricter (no group or other bits at all, since
    /// whoever reads it can sign code). When two processes create it at once, the loser reads
    /// the winner's, waiting briefly for it to be written.
    fn read_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key)
            .map_err(|err| format!("no randomness for the code cache's key: {err}"))?;
        match create_private_file(path) {
            Ok(mut file) => match file.write_all(&key).and_then(|()| file.sync_all()) {
                Ok(()) => Ok(key),
                Err(err) => {
                    let _ = fs::remove_file(path);
                    Err(format!("cannot write {}: {err}", path.display()))
                }
            },
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => read_key(path),
            Err(err) => Err(format!("cannot create {}: {err}", path.display())),
        }
    }

    /// Reads an existing key file, retrying a bounded number of times while it is shorter
    /// than a key (another process may still be writing it).
    fn read_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
        let refuse = |why: String| {
            format!(
                "the code cache's key {} {why}; delete it to start a new cache",
                path.display()
            )
        };
        let mut attempts = 0;
        loop {
            let mut bytes = Vec::with_capacity(KEY_LEN + 1);
            open_for_reading(path, 0o077)
                .and_then(|file| file.take(KEY_LEN as u64 + 1).read_to_end(&mut bytes))
                .map_err(|err| refuse(format!("cannot be used: {err}")))?;
            if let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
                return Ok(key);
            }
            attempts += 1;
            if bytes.len() > KEY_LEN || attempts >= KEY_READ_ATTEMPTS {
                return Err(refuse(format!(
                    "holds {} bytes instead of {KEY_LEN}",
                    bytes.len()
                )));
            }
            std::thread::sleep(KEY_READ_PAUSE);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs::{self, File};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use wasmtime::component::Component;
    use wasmtime::Module;

    use super::super::code::engine;
    use super::disk::{DiskCache, KEY_FILE, KEY_LEN, MAGIC, TRAILER_LEN};

    /// A small module with an export, so a round trip can be checked for more than loading.
    const WAT: &str = r#"(module (func (export "answer") (result i32) i32.const 42))"#;

    /// A directory under the system's temp dir, unique to the test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        /// A fresh path (not yet created) named after the test.
        fn new(name: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "packhost-cache-test-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A cache with no size cap in a fresh root.
    fn cache_in(scratch: &Scratch) -> DiskCache {
        DiskCache::open(&scratch.0, engine(), u64::MAX).expect("a fresh root makes a usable cache")
    }

    /// The test module, compiled.
    fn module() -> Module {
        Module::new(engine(), wat::parse_str(WAT).unwrap()).unwrap()
    }

    /// A valid pack id made of one repeated hex digit.
    fn id(digit: char) -> String {
        digit.to_string().repeat(64)
    }

    /// Why `open` refused `root`; panics if it did not.
    fn refusal(root: &Path) -> String {
        match DiskCache::open(root, engine(), u64::MAX) {
            Ok(_) => panic!("{} was accepted", root.display()),
            Err(why) => why,
        }
    }

    /// Sets the modification time of `path` to `ago` before now.
    fn age(path: &Path, ago: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - ago).unwrap();
    }

    #[test]
    fn a_stored_module_loads_back() {
        let scratch = Scratch::new("round-trip");
        let cache = cache_in(&scratch);
        let pack = id('a');
        assert!(
            cache.load::<Module>(&pack, engine()).is_none(),
            "nothing cached yet"
        );
        cache.store(&pack, &module());

        let loaded = cache
            .load::<Module>(&pack, engine())
            .expect("the stored module loads");
        let exports: Vec<&str> = loaded.exports().map(|export| export.name()).collect();
        assert_eq!(exports, ["answer"]);
        let meta = fs::metadata(cache.path(&pack)).unwrap();
        assert_eq!(meta.mode() & 0o077, 0, "cached files are the user's only");
        for dir in [&scratch.0, &scratch.0.join("native"), &cache.dir] {
            assert_eq!(fs::metadata(dir).unwrap().mode() & 0o777, 0o700, "{dir:?}");
        }
    }

    #[test]
    fn other_engines_directories_go_once_unused_for_a_month() {
        let scratch = Scratch::new("engines");
        let cache = cache_in(&scratch);
        let native = scratch.0.join("native");
        let month_and_a_day = Duration::from_secs(31 * 24 * 3600);
        let sibling = |name: &str, file_age: Duration| {
            let dir = native.join(name);
            fs::create_dir(&dir).unwrap();
            let file = dir.join(format!("{}.cwasm", id('1')));
            fs::write(&file, b"old code").unwrap();
            age(&file, file_age);
            File::open(&dir)
                .unwrap()
                .set_modified(SystemTime::now() - month_and_a_day)
                .unwrap();
            dir
        };
        let unused = sibling("0123456789abcdef", month_and_a_day);
        let in_use = sibling("fedcba9876543210", Duration::from_secs(3600));
        let not_an_engine = sibling("my-notes", month_and_a_day);
        let holding_a_folder = sibling("00000000000000aa", month_and_a_day);
        fs::create_dir(holding_a_folder.join("someone's")).unwrap();
        // A link named as an engine, to an old folder elsewhere: neither is touched.
        let elsewhere = sibling("my-old-code", month_and_a_day);
        std::os::unix::fs::symlink(&elsewhere, native.join("00000000000000bb")).unwrap();
        cache.store(&id('2'), &module());
        assert!(!unused.exists(), "an engine unused for a month is removed");
        assert!(in_use.exists(), "an engine used within the month stays");
        assert!(
            not_an_engine.exists(),
            "a directory the cache did not name stays"
        );
        assert!(
            holding_a_folder.exists(),
            "one holding more than files stays"
        );
        assert!(
            fs::read_dir(&elsewhere).unwrap().count() == 1,
            "a link is not followed"
        );
        assert!(fs::symlink_metadata(native.join("00000000000000bb")).is_ok());
        assert!(
            cache.load::<Module>(&id('2'), engine()).is_some(),
            "this engine's own files stay"
        );
    }

    /// Calls the test module's `answer` in a fresh store.
    fn answer(module: &Module) -> i32 {
        let mut store = wasmtime::Store::new(engine(), ());
        store.set_fuel(1_000_000).unwrap();
        store.set_epoch_deadline(1 << 40);
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        let answer = instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap();
        answer.call(&mut store, ()).unwrap()
    }

    #[test]
    fn code_run_from_its_file_outlives_the_file_being_replaced_and_removed() {
        let scratch = Scratch::new("replaced");
        let cache = cache_in(&scratch);
        let pack = id('8');
        cache.store(&pack, &module());
        let loaded = cache.load::<Module>(&pack, engine()).expect("loads");
        // What another process's store and eviction do meanwhile.
        cache.store(&pack, &module());
        fs::remove_file(cache.path(&pack)).unwrap();
        assert_eq!(answer(&loaded), 42);
    }

    #[test]
    fn code_is_run_from_a_copy_where_files_cannot_serve() {
        let scratch = Scratch::new("copied");
        let cache = DiskCache {
            run_from_files: false,
            ..cache_in(&scratch)
        };
        let pack = id('7');
        cache.store(&pack, &module());
        let loaded = cache.load::<Module>(&pack, engine()).expect("loads");
        fs::remove_file(cache.path(&pack)).unwrap();
        assert_eq!(answer(&loaded), 42);
        // A changed file is refused on this path too.
        cache.store(&pack, &module());
        let mut changed = fs::read(cache.path(&pack)).unwrap();
        let middle = (changed.len() - TRAILER_LEN) / 2;
        changed[middle] ^= 1;
        fs::write(cache.path(&pack), &changed).unwrap();
        assert!(cache.load::<Module>(&pack, engine()).is_none());
    }

    #[test]
    fn a_stored_component_loads_back_from_the_same_file() {
        let scratch = Scratch::new("component");
        let cache = cache_in(&scratch);
        let pack = id('9');
        let wat = r#"(component
            (core module $m (func (export "answer") (result i32) i32.const 42))
            (core instance $i (instantiate $m))
            (func (export "answer") (result s32) (canon lift (core func $i "answer"))))"#;
        let component = Component::new(engine(), wat::parse_str(wat).unwrap()).unwrap();
        cache.store(&pack, &component);
        let loaded = cache
            .load::<Component>(&pack, engine())
            .expect("the stored component loads");
        let exports: Vec<String> = loaded
            .component_type()
            .exports(engine())
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(exports, ["answer"], "it is the component that was stored");
    }

    #[test]
    fn a_changed_file_or_one_keyed_by_another_user_is_refused() {
        let scratch = Scratch::new("tampered");
        let cache = cache_in(&scratch);
        let pack = id('b');
        let path = cache.path(&pack);
        cache.store(&pack, &module());
        let stored = fs::read(&path).unwrap();
        let trailer = stored.len() - TRAILER_LEN;
        assert_eq!(&stored[trailer..trailer + MAGIC.len()], MAGIC);

        // One bit of the code flipped, then one bit of the tag, then the file cut short.
        for position in [trailer / 2, stored.len() - 1] {
            let mut changed = stored.clone();
            changed[position] ^= 1;
            fs::write(&path, &changed).unwrap();
            assert!(
                cache.load::<Module>(&pack, engine()).is_none(),
                "byte {position} changed"
            );
        }
        fs::write(&path, &stored[..stored.len() - 1]).unwrap();
        assert!(cache.load::<Module>(&pack, engine()).is_none(), "cut short");

        // Written by someone holding another key: a well-formed file with a valid-looking tag.
        let stranger = DiskCache {
            dir: cache.dir.clone(),
            key: [7; KEY_LEN],
            max_bytes: u64::MAX,
            run_from_files: cache.run_from_files,
        };
        stranger.store(&pack, &module());
        assert!(
            stranger.load::<Module>(&pack, engine()).is_some(),
            "valid under its own key"
        );
        assert!(cache.load::<Module>(&pack, engine()).is_none());

        // Storing again (what the caller does after recompiling) repairs the entry.
        cache.store(&pack, &module());
        assert!(cache.load::<Module>(&pack, engine()).is_some());
    }

    #[test]
    fn a_file_stored_for_one_pack_is_refused_for_another() {
        let scratch = Scratch::new("other-pack");
        let cache = cache_in(&scratch);
        let (first, second) = (id('c'), id('d'));
        cache.store(&first, &module());

        // Copied as it is: its trailer still names the first pack.
        fs::copy(cache.path(&first), cache.path(&second)).unwrap();
        assert!(cache.load::<Module>(&second, engine()).is_none());

        // With the trailer rewritten to name the second pack: the tag covers the id.
        let mut renamed = fs::read(cache.path(&first)).unwrap();
        let id_at = renamed.len() - TRAILER_LEN + MAGIC.len();
        renamed[id_at..id_at + second.len()].copy_from_slice(second.as_bytes());
        fs::write(cache.path(&second), &renamed).unwrap();
        assert!(cache.load::<Module>(&second, engine()).is_none());

        assert!(
            cache.load::<Module>(&first, engine()).is_some(),
            "the original still loads"
        );
    }

    #[test]
    fn a_cache_directory_open_to_other_users_is_refused() {
        let scratch = Scratch::new("loose");
        fs::create_dir(&scratch.0).unwrap();
        fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o755)).unwrap();
        let why = refusal(&scratch.0);
        assert!(why.contains("chmod 700"), "{why}");
        assert_eq!(
            fs::metadata(&scratch.0).unwrap().mode() & 0o777,
            0o755,
            "packhost never changes the mode of a directory it did not create"
        );
        assert!(
            fs::read_dir(&scratch.0).unwrap().next().is_none(),
            "nothing (no key, no native/) is created in a refused root"
        );

        // A loose level below a private root is refused as well.
        fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o700)).unwrap();
        let native = scratch.0.join("native");
        fs::create_dir(&native).unwrap();
        fs::set_permissions(&native, fs::Permissions::from_mode(0o775)).unwrap();
        let why = refusal(&scratch.0);
        assert!(why.contains("native"), "{why}");

        // So is a symbolic link where a directory should be, even to a private directory.
        fs::remove_dir(&native).unwrap();
        let elsewhere = Scratch::new("elsewhere");
        fs::create_dir(&elsewhere.0).unwrap();
        fs::set_permissions(&elsewhere.0, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere.0, &native).unwrap();
        let why = refusal(&scratch.0);
        assert!(why.contains("symbolic link"), "{why}");
    }

    #[test]
    fn a_symbolic_link_in_place_of_a_cached_file_is_refused() {
        let scratch = Scratch::new("symlink");
        let cache = cache_in(&scratch);
        let (real, linked) = (id('e'), id('f'));
        cache.store(&real, &module());
        // The target is a valid file of this cache, so only the link itself can be refused.
        let copy = scratch.0.join("outside.cwasm");
        fs::copy(cache.path(&real), &copy).unwrap();
        fs::remove_file(cache.path(&real)).unwrap();
        std::os::unix::fs::symlink(&copy, cache.path(&real)).unwrap();
        assert!(cache.load::<Module>(&real, engine()).is_none());

        std::os::unix::fs::symlink(&copy, cache.path(&linked)).unwrap();
        assert!(cache.load::<Module>(&linked, engine()).is_none());
    }

    #[test]
    fn eviction_removes_the_least_recently_used_until_under_the_cap() {
        let scratch = Scratch::new("evict");
        let cache = cache_in(&scratch);
        let packs = ['a', 'b', 'c', 'd'].map(id);
        for pack in &packs {
            cache.store(pack, &module());
        }
        let size = fs::metadata(cache.path(&packs[0])).unwrap().len();
        // 'a' was used longest ago, 'd' most recently.
        for (rank, pack) in packs.iter().enumerate() {
            age(
                &cache.path(pack),
                Duration::from_secs(600 - 100 * rank as u64),
            );
        }

        let capped = DiskCache {
            dir: cache.dir.clone(),
            key: cache.key,
            max_bytes: 2 * size + size / 2,
            run_from_files: cache.run_from_files,
        };
        capped.evict();
        let kept: Vec<bool> = packs.iter().map(|p| capped.path(p).exists()).collect();
        assert_eq!(kept, [false, false, true, true]);
        let total: u64 = fs::read_dir(&capped.dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.metadata().unwrap().len())
            .sum();
        assert!(total <= capped.max_bytes, "{total} > {}", capped.max_bytes);
    }

    #[test]
    fn a_load_marks_the_file_as_recently_used() {
        let scratch = Scratch::new("touch");
        let cache = cache_in(&scratch);
        let pack = id('a');
        cache.store(&pack, &module());
        let path = cache.path(&pack);
        age(&path, Duration::from_secs(86_400));
        assert!(cache.load::<Module>(&pack, engine()).is_some());
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let since = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        assert!(since < Duration::from_secs(3600), "mtime is {since:?} old");
    }

    #[test]
    fn storing_never_leaves_temporary_files_behind() {
        let scratch = Scratch::new("temp");
        let cache = cache_in(&scratch);
        for digit in ['1', '2', '3'] {
            cache.store(&id(digit), &module());
        }
        // A store whose rename fails (a directory holds the final name) cleans up as well.
        fs::create_dir(cache.path(&id('4'))).unwrap();
        cache.store(&id('4'), &module());

        let leftovers: Vec<PathBuf> = fs::read_dir(&cache.dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(cache.path(&id('3')).is_file());
    }

    #[test]
    fn the_key_is_private_and_shared_by_every_open() {
        let scratch = Scratch::new("key");
        let first = cache_in(&scratch);
        let second = cache_in(&scratch);
        assert_eq!(first.key, second.key);
        let meta = fs::metadata(scratch.0.join(KEY_FILE)).unwrap();
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(meta.mode() & 0o077, 0);
    }

    #[test]
    fn a_key_open_to_others_or_of_the_wrong_size_is_refused() {
        let scratch = Scratch::new("bad-key");
        cache_in(&scratch);
        let key = scratch.0.join(KEY_FILE);

        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let why = refusal(&scratch.0);
        assert!(why.contains("delete it"), "{why}");

        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        for length in [0, KEY_LEN / 2, KEY_LEN + 1] {
            fs::write(&key, vec![1; length]).unwrap();
            let why = refusal(&scratch.0);
            assert!(why.contains("bytes instead of"), "{length}: {why}");
        }
    }
}
