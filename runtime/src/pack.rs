//! A loaded pack: validation at load, a pool of instances (one per concurrent caller),
//! and calls that return output with their usage.
//!
//! A [`Pack`] is cheap to clone and safe to share across threads. Each call borrows an idle
//! instance or makes one. Which idle instances a call may borrow is the `isolation` option:
//! under `"call"` (the default) every instance is renewed (a fresh store and wasm instance)
//! right after its call, so none serves two; under `"context"` an instance serves only calls
//! for the tenant it last served; under `"pack"` any call. Under every mode an instance that
//! failed in a way that may have left it broken (trap, timeout, a limit) is renewed before it
//! returns to the pool, never reused as it was.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::cancel::CancelToken;
use crate::capabilities::audit::AuditEntry;
use crate::capabilities::builtin_functions;
use crate::capabilities::files;
use crate::capabilities::host_fn::{
    check_registrations, component_callable, is_packhost_namespace, HostFunction, HostFunctions,
    EXTISM_USER,
};
use crate::capabilities::http::HttpGrant;
use crate::capabilities::kv;
use crate::capabilities::secrets::{Redactor, SecretGrant};
use crate::engine::{refuse_what_extism_cannot_bound, Instance, InstanceSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::extism_manifest::{ExtismManifest, ResolvedManifest};
use crate::hosts::effective_hosts;
use crate::link::{LinkedModule, Linking};
use crate::lock::{CallLengths, InterpreterLock};
use crate::manifest::PackManifest;
use crate::module::{ModuleInfo, COMPONENT_FUNCTIONS};
use crate::options::{tenant_of, CallOptions, EngineKind, Isolation, PackOptions};
use crate::pool::Pool;
use crate::usage::{CallOutput, CallReport, PackStats, Usage};

/// A loaded, validated pack. Clones share the compiled pack and its instances.
#[derive(Clone)]
pub struct Pack {
    inner: Arc<PackInner>,
}

struct PackInner {
    id: String,
    manifest: PackManifest,
    manifest_embedded: bool,
    module: Arc<ModuleInfo>,
    options: PackOptions,
    spec: InstanceSpec,
    idle: Pool<Idle>,
    /// Which actions' calls hand an interpreter lock over ([`Pack::call_locked`]).
    lengths: CallLengths,
    /// Every call since load, summed.
    stats: Mutex<PackStats>,
    /// Where each call's usage record is appended, when the host asked.
    usage_log: Option<JsonLines>,
    /// Where each call's audit entries are appended, when the host asked.
    audit_log: Option<JsonLines>,
    /// The functions the host lent at load, as it gave them: what the next version
    /// ([`Pack::load_next`]) is lent (it may import ones this version does not).
    lent: Vec<HostFunction>,
}

/// One audit entry as `audit_log` holds it: which call it belongs to, then the entry.
#[derive(serde::Serialize)]
struct AuditLine<'a> {
    pack_name: &'a str,
    pack_version: &'a str,
    pack_id: &'a str,
    action: &'a str,
    context: &'a serde_json::Value,
    #[serde(flatten)]
    entry: &'a AuditEntry,
}

/// A JSON Lines file a pack appends one record per line to. Each line goes out in one
/// `write` on a file opened for appending, so lines from several processes never
/// interleave and a crash loses at most the line being written.
struct JsonLines {
    path: String,
    file: std::fs::File,
}

impl JsonLines {
    fn open(path: &str) -> Result<Self> {
        let mut open = std::fs::OpenOptions::new();
        open.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let file = open
            .open(path)
            .map_err(|err| Error::new(ErrorKind::Io, format!("{path}: {err}")))?;
        Ok(JsonLines {
            path: path.to_string(),
            file,
        })
    }

    fn append(&self, record: &impl serde::Serialize) {
        use std::io::Write;
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        if let Err(err) = (&self.file).write_all(&line) {
            tracing::warn!(path = %self.path, "could not append to the log: {err}");
        }
    }
}

/// An instance waiting for its next call, with the tenant whose calls it may serve under
/// `isolation: "context"` (`null` under `"pack"`).
struct Idle {
    instance: Instance,
    tenant: serde_json::Value,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("name", &self.inner.manifest.name)
            .field("version", &self.inner.manifest.version)
            .field("id", &self.inner.id)
            .finish()
    }
}

impl Pack {
    /// Loads a pack from module bytes.
    ///
    /// # Errors
    /// `invalid_pack` for bytes that are not a valid module or that import what packhost
    /// does not provide; `invalid_manifest` for a bad manifest section; `invalid_options`
    /// for bad options; `host_denied` for a WASI pack when WASI is not allowed;
    /// `untrusted_pack` when the options' trust policy refuses it.
    pub fn load(bytes: &[u8], options: PackOptions) -> Result<Pack> {
        Self::load_with(bytes, options, Vec::new())
    }

    /// Loads a pack from module bytes, lending it `functions`. Each function the pack
    /// imports must be among them, with the same signature; functions it does not import
    /// are ignored.
    ///
    /// # Errors
    /// As [`Pack::load`]; `invalid_pack` naming an import that no function matches;
    /// `invalid_options` for two functions under one name or one in `extism:host/env`.
    pub fn load_with(
        bytes: &[u8],
        options: PackOptions,
        functions: Vec<HostFunction>,
    ) -> Result<Pack> {
        Self::load_named(bytes, &[], options, functions, "unnamed")
    }

    /// Loads a pack from a `.wasm` file. A pack without a manifest is named after the file.
    /// Under a trust policy (`trusted_keys`), its signature is the `signature` option or
    /// else the file's `.sig` beside it (`pack.wasm.sig`), as `packhost sign` writes it.
    ///
    /// # Errors
    /// `io` when the file cannot be read, else as [`Pack::load`].
    pub fn load_file(path: impl AsRef<Path>, options: PackOptions) -> Result<Pack> {
        Self::load_file_with(path, options, Vec::new())
    }

    /// Loads a pack from a `.wasm` file, lending it `functions` (see [`Pack::load_with`]).
    ///
    /// # Errors
    /// `io` when the file cannot be read, else as [`Pack::load_with`].
    pub fn load_file_with(
        path: impl AsRef<Path>,
        options: PackOptions,
        functions: Vec<HostFunction>,
    ) -> Result<Pack> {
        let path = path.as_ref();
        let stem = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".to_string());
        Self::load_file_named(path, None, options, functions, &stem)
    }

    /// Loads a pack by reference: `oci://registry/name:tag` (or `…@sha256:…`) through the
    /// source registered for its scheme (packhost-oci's `register()`), from the local store
    /// when it holds the pack ([`PackStore`](crate::PackStore)); anything without a scheme is
    /// a file path, as for [`Pack::load_file_with`]. The store's copy is checked against
    /// the digest the reference resolved to, and its signature, if one came with it, is the
    /// one a trust policy checks.
    ///
    /// # Errors
    /// `io` for a scheme no crate registered, or a registry that cannot be reached, refuses
    /// the credentials or has no such reference; `invalid_pack` when bytes differ from their
    /// digest; else as [`Pack::load_file_with`].
    pub fn load_reference(
        reference: impl AsRef<Path>,
        options: PackOptions,
        functions: Vec<HostFunction>,
    ) -> Result<Pack> {
        let reference = reference.as_ref();
        // A path that is not text has no scheme: it is a file.
        let source = match reference.to_str() {
            Some(text) => crate::store::source_for(text)?.map(|source| (source, text)),
            None => None,
        };
        match source {
            None => Self::load_file_with(reference, options, functions),
            Some((source, reference)) => {
                let resolved = source(reference)?;
                Self::load_file_named(
                    &resolved.path,
                    Some(&resolved.digest),
                    options,
                    functions,
                    &resolved.name,
                )
            }
        }
    }

    /// Loads the file at `path`, whose bytes must be `expected_digest` when given.
    fn load_file_named(
        path: &Path,
        expected_digest: Option<&str>,
        mut options: PackOptions,
        functions: Vec<HostFunction>,
        fallback_name: &str,
    ) -> Result<Pack> {
        let bytes = std::fs::read(path)
            .map_err(|err| Error::new(ErrorKind::Io, format!("{}: {err}", path.display())))?;
        if let Some(expected) = expected_digest {
            let actual = crate::store::digest_of(&bytes);
            if actual != expected {
                return Err(Error::new(
                    ErrorKind::InvalidPack,
                    format!(
                        "digest mismatch: {} should be {expected} but is {actual}; it was \
                         altered after it was stored",
                        path.display()
                    ),
                ));
            }
        }
        if !options.trusted_keys.is_empty() && options.signature.is_none() {
            options.signature = signature_beside(path)?;
        }
        Self::load_named(&bytes, &[], options, functions, fallback_name)
    }

    /// Loads the plugin an Extism manifest describes (JSON text, as Extism's SDKs take it):
    /// its modules by path, inline data or URL, each checked against its `hash`, the main
    /// one linked with the others by name, and the manifest's memory, config, hosts, paths
    /// and timeout mapped onto `options` (README, "Coming from Extism").
    ///
    /// # Errors
    /// `invalid_options` for a malformed manifest or a field that `options` sets to
    /// something else; `invalid_pack` when a module's hash differs, or modules that do not
    /// link (an import no module or host provides, naming it; a circle of imports); `io`
    /// when a module cannot be read or downloaded; else as [`Pack::load_with`].
    pub fn load_extism_manifest(
        manifest_json: &str,
        options: PackOptions,
        functions: Vec<HostFunction>,
    ) -> Result<Pack> {
        let resolved = ExtismManifest::from_json(manifest_json)?.resolve(options)?;
        Self::load_resolved(resolved, functions)
    }

    /// Loads the modules of an Extism manifest already resolved (for a host that wants the
    /// modules' bytes first, as the `packhost` command does to lend stand-ins).
    ///
    /// # Errors
    /// As [`Pack::load_extism_manifest`].
    pub fn load_resolved(resolved: ResolvedManifest, functions: Vec<HostFunction>) -> Result<Pack> {
        Self::load_named(
            &resolved.bytes,
            &resolved.linked,
            resolved.options,
            functions,
            &resolved.name,
        )
    }

    fn load_named(
        bytes: &[u8],
        linked: &[LinkedModule],
        options: PackOptions,
        functions: Vec<HostFunction>,
        fallback_name: &str,
    ) -> Result<Pack> {
        let main_id = module_id(bytes);
        let span =
            tracing::info_span!("packhost.load", pack_id = %&main_id[..12], size = bytes.len());
        let _entered = span.enter();

        options.validate()?;
        check_registrations(&functions)?;
        let module = read_module_cached(&main_id, bytes)?;
        let linking = Linking::new(&module, linked, read_module_cached)?;
        let id = linking.plugin_id(&main_id);
        // What the host side sees of the plugin: the imports no linked module serves.
        let plugin = &linking.host_view;
        let (manifest, manifest_embedded) = match &module.manifest_section {
            Some(section) => (PackManifest::parse(section, plugin)?, true),
            None => (PackManifest::synthesize(fallback_name, plugin), false),
        };
        crate::trust::enforce(
            &options.trusted_keys,
            options.require_signature,
            options.signature.as_ref(),
            &id,
            &manifest.name,
            &manifest.version,
        )?;
        // A pack with a manifest gets what it asks for, narrowed by the host's grant. A
        // plugin without one (any Extism PDK's) asks for nothing itself: as in Extism, the
        // host's grant is then the whole policy.
        let host_grant;
        let asked = if manifest_embedded {
            &manifest.capabilities
        } else {
            host_grant = options.granted_capabilities(&manifest.capabilities.host_functions);
            &host_grant
        };
        let secrets = Arc::new(SecretGrant::new(&asked.secrets, &options.secrets));
        let redactor = Arc::new(Redactor::new(&options.secrets));
        // A pack may import key-value functions without being granted them; its calls are
        // then refused one by one, as HTTP to a host outside the grant is.
        let lent_by_host = functions.clone();
        // What a component may call by name; a module's imports are checked just below.
        let component_calls = if module.component && module.imports_from(COMPONENT_FUNCTIONS) {
            component_callable(
                manifest_embedded.then_some(&manifest.capabilities.host_functions[..]),
                &lent_by_host,
            )?
        } else {
            Vec::new()
        };
        let mut functions = functions;
        let lent = functions.len();
        functions.extend(builtin_functions(plugin, None, secrets.clone()));
        linking.check_imports(&module, options.allow_wasi, &functions)?;
        let mounts = files::granted(
            files::parse(&options.allowed_paths, options.allow_wasi)?,
            &asked.paths,
        );
        if options.engine == EngineKind::Extism {
            refuse_what_extism_cannot_bound(plugin, options.allow_wasi, &options.limits, &mounts)?;
        }
        // Only a pack that will load opens its store (creates a file, dials a server).
        if let (Some(kv_options), true) = (&options.kv, asked.kv) {
            let grant = Arc::new(kv::KvGrant::open(kv_options, &manifest.name)?);
            functions.truncate(lent);
            functions.extend(builtin_functions(plugin, Some(grant), secrets));
        }

        let hosts = effective_hosts(&asked.http_hosts, &options.allowed_hosts);
        let spec =
            InstanceSpec {
                id: id.clone(),
                wasm: Arc::new(bytes.to_vec()),
                linked: Arc::new(linking.order.iter().map(|(code, _)| code.clone()).collect()),
                engine: options.engine,
                allowed_hosts: hosts.iter().map(ToString::to_string).collect(),
                http: Arc::new(HttpGrant::new(hosts, &options.http)),
                config: options
                    .config
                    .iter()
                    .filter(|(key, _)| asked.config.contains(key))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
                limits: options.limits.clone(),
                log_level: options.log_level,
                redactor: redactor.clone(),
                wasi: options.allow_wasi && plugin.imports_wasi(),
                mounts: Arc::new(mounts),
                host_functions: Arc::new(HostFunctions {
                    // Only what the pack imports is linked: the rest would be dead weight in
                    // every instance. A component imports packhost's capabilities as whole
                    // instances, whose functions are made only when it imports them, and
                    // calls the host's own by name: only those it may call are kept.
                    functions: functions
                        .into_iter()
                        .filter(|f| {
                            plugin.imports.iter().any(|import| {
                                import.module == f.namespace() && import.name == f.name()
                            }) || (module.component
                                && (is_packhost_namespace(f.namespace())
                                    || (f.namespace() == EXTISM_USER
                                        && component_calls.iter().any(|name| name == f.name()))))
                        })
                        .collect(),
                    pack_name: manifest.name.clone(),
                    pack_id: id.clone(),
                }),
                fuel_rates: crate::engine::FuelRates::shared(&id, options.engine),
                native_code: Default::default(),
                component: module.component,
                component_code: Default::default(),
            };
        // Instances (and compilation) wait for the first call: everything that could stop a
        // pack from linking (imports by name and signature, the manifest) was checked above,
        // so load stays cheap for hosts that load many packs and call few.
        tracing::debug!(name = %manifest.name, version = %manifest.version, "pack loaded");
        let manifest_actions = manifest.actions.len();
        let usage_log = options
            .usage_log
            .as_deref()
            .map(JsonLines::open)
            .transpose()?;
        let audit_log = options
            .audit_log
            .as_deref()
            .map(JsonLines::open)
            .transpose()?;

        Ok(Pack {
            inner: Arc::new(PackInner {
                id,
                manifest,
                manifest_embedded,
                module,
                options,
                spec,
                idle: Pool::default(),
                lengths: CallLengths::new(manifest_actions),
                stats: Mutex::new(PackStats::default()),
                usage_log,
                audit_log,
                lent: lent_by_host,
            }),
        })
    }

    /// Loads the next version of this pack from a file or reference (as
    /// [`Pack::load_reference`]) with this pack's options and host functions: what a host
    /// swaps in for a live update (`reload` in the Node, Python and Ruby hosts). This pack is
    /// unchanged, so calls running on it, or made on it later, keep the old version.
    ///
    /// A signature is looked for again (the new file's `.sig`), never carried over.
    ///
    /// # Errors
    /// As [`Pack::load_reference`]; `invalid_pack` when both carry manifests and the new one
    /// names another pack (a version of `text-tools` cannot be replaced by `hostile`).
    pub fn load_next(&self, source: impl AsRef<Path>) -> Result<Pack> {
        let next = Pack::load_reference(source, self.next_options(), self.host_functions())?;
        self.check_next(next)
    }

    /// [`Pack::load_next`] from module bytes.
    ///
    /// # Errors
    /// As [`Pack::load_next`].
    pub fn load_next_bytes(&self, bytes: &[u8]) -> Result<Pack> {
        let next = Pack::load_with(bytes, self.next_options(), self.host_functions())?;
        self.check_next(next)
    }

    fn next_options(&self) -> PackOptions {
        PackOptions {
            signature: None,
            ..self.inner.options.clone()
        }
    }

    fn host_functions(&self) -> Vec<HostFunction> {
        self.inner.lent.clone()
    }

    fn check_next(&self, next: Pack) -> Result<Pack> {
        let (old, new) = (&self.inner.manifest.name, &next.inner.manifest.name);
        // A module without a manifest would get every granted capability, so a pack that
        // asked for what it uses cannot be replaced by one that does not say.
        if self.inner.manifest_embedded && !next.inner.manifest_embedded {
            return Err(Error::invalid_pack(format!(
                "the next version of {old:?} must carry a manifest, as it did"
            )));
        }
        if self.inner.manifest_embedded && old != new {
            return Err(Error::invalid_pack(format!(
                "the next version of {old:?} must be {old:?}, not {new:?}"
            )));
        }
        Ok(next)
    }

    /// The SHA-256 of the module bytes, in lowercase hex: the pack's identity. A plugin with
    /// linked modules is identified by the SHA-256 over its main module's and each linked
    /// module's name and SHA-256.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The pack's manifest (synthesized from its exports when it carries none).
    pub fn manifest(&self) -> &PackManifest {
        &self.inner.manifest
    }

    /// True when the manifest came from the module's own section.
    pub fn has_embedded_manifest(&self) -> bool {
        self.inner.manifest_embedded
    }

    /// Static facts about the module: size, imports, exports.
    pub fn module_info(&self) -> &ModuleInfo {
        &self.inner.module
    }

    /// The options the pack was loaded with.
    pub fn options(&self) -> &PackOptions {
        &self.inner.options
    }

    /// Names of the actions the pack can be called with, `pre` and `post` included.
    pub fn actions(&self) -> Vec<&str> {
        self.inner
            .manifest
            .actions
            .iter()
            .map(|action| action.name.as_str())
            .collect()
    }

    /// What hides the host's secret values (`options.secrets`) in text from this pack; the
    /// `packhost` command runs a call's output through it before printing.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.spec.redactor
    }

    /// HTTP host patterns the pack may reach: what it asked for, narrowed by the host's grant.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.inner.spec.allowed_hosts
    }

    /// Runs the `pre` hook (conventionally over an outgoing request as JSON).
    ///
    /// # Errors
    /// As [`Pack::call`]; `action_not_found` when the pack has no `pre`.
    pub fn pre(&self, input: &[u8]) -> Result<CallOutput> {
        self.call("pre", input)
    }

    /// Runs the `post` hook (conventionally over a response as JSON).
    ///
    /// # Errors
    /// As [`Pack::call`]; `action_not_found` when the pack has no `post`.
    pub fn post(&self, input: &[u8]) -> Result<CallOutput> {
        self.call("post", input)
    }

    /// Runs `action` on `input` and returns its output with the call's usage and logs.
    ///
    /// # Errors
    /// `action_not_found`, `input_too_large` (before running anything), then whatever the
    /// call hit: `timeout`, `out_of_fuel`, `memory_limit`, `output_too_large`,
    /// `host_denied`, `trap`, `plugin_error` or `host_function_error`. Errors from a call
    /// carry its report.
    pub fn call(&self, action: &str, input: &[u8]) -> Result<CallOutput> {
        self.call_with_options(action, input, &CallOptions::default())
    }

    /// Like [`Pack::call`], with call options: the `context` host functions see.
    ///
    /// # Errors
    /// As [`Pack::call`], and `host_function_error` when a host function fails.
    pub fn call_with_options(
        &self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
    ) -> Result<CallOutput> {
        let (output, report) = self.call_reading(action, input, options, <[u8]>::to_vec)?;
        Ok(CallOutput {
            output,
            usage: report.usage,
            logs: report.logs,
            audit: report.audit,
        })
    }

    /// Like [`Pack::call`], but hands the output bytes to `read` where the engine holds them
    /// (in the pack's memory) instead of returning a copy: a binding builds its host
    /// language's bytes object straight from them, with one copy in all. `read` runs only
    /// for a successful call whose output is within `limits.max_output_bytes`.
    ///
    /// # Errors
    /// As [`Pack::call`].
    pub fn call_with<R>(
        &self,
        action: &str,
        input: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, CallReport)> {
        self.call_reading(action, input, &CallOptions::default(), read)
    }

    /// [`Pack::call_with`] with call options: what bindings call.
    ///
    /// # Errors
    /// As [`Pack::call_with_options`].
    pub fn call_reading<R>(
        &self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, CallReport)> {
        let index = self.action_index(action)?;
        self.run(None, index, input, options, None, read)
    }

    /// [`Pack::call_reading`] for a host whose interpreter has a global lock, held by the
    /// calling thread: a call expected to be short runs holding it (and releases it through
    /// `lock` if it runs past [`HOLD_AT_MOST`](crate::HOLD_AT_MOST)); any other call runs
    /// inside [`InterpreterLock::run_released`]. What to expect is learnt per action from
    /// the calls made this way. `read` runs in either state, so it must not need the lock.
    ///
    /// Work that can take long outside the pack's own code never runs holding the lock: a
    /// pack that may block in the host (HTTP, WASI) always releases it, and so does a call
    /// that needs a new instance; a failed instance is rebuilt with the lock released.
    ///
    /// # Errors
    /// As [`Pack::call_with_options`].
    pub fn call_locked<R>(
        &self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        lock: &mut dyn InterpreterLock,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, CallReport)> {
        let index = self.action_index(action)?;
        let inner = &*self.inner;
        let lengths = &inner.lengths;
        // Only the native engine hands the lock over in the middle of a call, and only an
        // idle instance is ready without running start-up code.
        // A call its host may cancel keeps the lock only where the lock can be handed over
        // midway: the thread that would cancel it may need the lock to do so.
        let keep_lock = inner.spec.engine == EngineKind::Native
            && !inner.spec.may_block()
            && (options.cancel.is_none() || lock.releases_midway())
            && lengths.expect_short(index, lock.releases_midway());
        let idle = if keep_lock {
            self.idle_instance(&options.context)
        } else {
            None
        };
        if let Some(instance) = idle {
            self.run(Some(instance), index, input, options, Some(lock), read)
        } else {
            let mut read = Some(read);
            let mut result = None;
            lock.run_released(&mut || {
                if let Some(read) = read.take() {
                    result = Some(self.run(None, index, input, options, None, read));
                }
            });
            result.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Internal,
                    "packhost bug: the host's lock never ran the call",
                ))
            })
        }
    }

    /// [`Pack::call_reading`] for a host with an event loop (the runner's async workers):
    /// runs the call on the calling thread only when it is expected to end within
    /// microseconds and an instance for its context is idle, so no start-up code runs
    /// first; otherwise returns `None` without running anything, for the host to run the
    /// call where blocking is fine (a thread pool). Start-up code needed again after a failed
    /// call runs through `lock`'s [`InterpreterLock::run_released`], where the host moves
    /// its other work off the thread first.
    ///
    /// Expected short: several calls of the action were short (20 us at most) and no two in
    /// a row were long nor any past [`HOLD_AT_MOST`](crate::HOLD_AT_MOST) since; the pack
    /// cannot wait in the host (no HTTP, WASI, host-lent functions or key-value storage,
    /// whose store may be a server); the native engine; instances reused (`isolation` other
    /// than `"call"`). The call cannot be cancelled (it holds the thread anything would
    /// cancel it from), so `options.cancel` should be `None`; it still ends at its timeout.
    pub fn call_in_place<R>(
        &self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        lock: &mut dyn InterpreterLock,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Option<Result<(R, CallReport)>> {
        let index = self.inner.manifest.action_index(action)?;
        if !self.short_in_place(index) {
            return None;
        }
        let instance = self.idle_instance(&options.context)?;
        Some(self.run(Some(instance), index, input, options, Some(lock), read))
    }

    /// What [`Pack::call_in_place`] asks of the pack and of the action at `index`.
    fn short_in_place(&self, index: usize) -> bool {
        let inner = &*self.inner;
        let spec = &inner.spec;
        spec.engine == EngineKind::Native
            && inner.options.isolation != Isolation::Call
            && !spec.may_block()
            && inner.lent.is_empty()
            && inner.options.kv.is_none()
            && inner.lengths.expect_short_on_event_loop(index)
    }

    /// Where `action` is in the manifest, or `action_not_found`.
    fn action_index(&self, action: &str) -> Result<usize> {
        let manifest = &self.inner.manifest;
        manifest.action_index(action).ok_or_else(|| {
            Error::new(
                ErrorKind::ActionNotFound,
                format!("pack {:?} has no action {action:?}", manifest.name),
            )
        })
    }

    /// One call of the manifest's action at `index`, on `instance` or a pooled (or new) one.
    /// A call given the caller's `lock` holds it; a failed instance is rebuilt with the lock
    /// released. The call's own length (its instance's start-up aside) is recorded for
    /// [`Pack::call_locked`].
    fn run<R>(
        &self,
        instance: Option<Instance>,
        index: usize,
        input: &[u8],
        options: &CallOptions,
        mut lock: Option<&mut dyn InterpreterLock>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, CallReport)> {
        let inner = &*self.inner;
        let action = inner.manifest.actions[index].name.as_str();
        let span = tracing::debug_span!("packhost.call", pack = %inner.manifest.name, action);
        let _entered = span.enter();

        let limits = &inner.spec.limits;
        if input.len() as u64 > limits.max_input_bytes {
            return Err(Error::new(
                ErrorKind::InputTooLarge,
                format!(
                    "input is {} bytes; the limit is {}",
                    input.len(),
                    limits.max_input_bytes
                ),
            ));
        }

        if options
            .cancel
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
        {
            return Err(CancelToken::error());
        }
        let mut instance = match instance.or_else(|| self.idle_instance(&options.context)) {
            Some(instance) => instance,
            None => Instance::new(&inner.spec).map_err(|mut err| {
                // A start-up that failed reports its cost as this call's.
                let code = err.code();
                if let Some(report) = err.report_mut() {
                    report.usage.input_bytes = input.len() as u64;
                    report.usage.context = options.context.clone();
                    self.name_usage(&mut report.usage, action);
                    self.account(&report.usage, &report.audit, Some(code));
                }
                err.redacted(&inner.spec.redactor)
            })?,
        };
        let mut output_bytes = 0;
        // Lent to the call for its duration only: the renewal below may need it again.
        let held: Option<&mut dyn InterpreterLock> = match lock.as_mut() {
            Some(lock) => Some(&mut **lock),
            None => None,
        };
        let outcome = instance.call(action, input, options, held, |output| {
            if output.len() as u64 > limits.max_output_bytes {
                return Err(Error::new(
                    ErrorKind::OutputTooLarge,
                    format!(
                        "output is {} bytes; the limit is {}",
                        output.len(),
                        limits.max_output_bytes
                    ),
                ));
            }
            output_bytes = output.len() as u64;
            Ok(read(output))
        });
        inner.lengths.record(
            index,
            outcome.wall_time.saturating_sub(outcome.startup_time),
        );
        let mut usage = Usage {
            wall_time_us: u64::try_from(outcome.wall_time.as_micros()).unwrap_or(u64::MAX),
            fuel_consumed: outcome.fuel_consumed,
            peak_memory_bytes: outcome.peak_memory_bytes,
            input_bytes: input.len() as u64,
            output_bytes,
            host_calls: outcome.host.calls,
            host_time_us: u64::try_from(outcome.host.time.as_micros()).unwrap_or(u64::MAX),
            kv_ops: outcome.host.kv_ops,
            http_requests: outcome.http.requests,
            http_bytes_sent: outcome.http.bytes_sent,
            http_bytes_received: outcome.http.bytes_received,
            context: options.context.clone(),
            ..Usage::default()
        };
        self.name_usage(&mut usage, action);
        // A pack that returned normally (even with its own error) left its instance sound;
        // any other failure may have left it mid-way, so its store and wasm instance are
        // replaced before anyone uses it again. Under `isolation: "call"` every instance is
        // replaced after its call, so none serves two calls.
        // A command's `_start` runs its `main` to the end (Go's runtime cannot be entered
        // again after it), and a pack that called `proc_exit` ran its exit path: neither
        // instance is reused (Extism resets after `_start` too).
        let sound = action != "_start"
            && !outcome.exited
            && match &outcome.result {
                Ok(_) => true,
                Err(err) => matches!(
                    err.kind(),
                    ErrorKind::PluginError { .. } | ErrorKind::OutputTooLarge
                ),
            };
        // Linear memory never shrinks, so an instance too close to its limit for its calls'
        // growth is renewed now rather than left to fail a later caller's call with
        // `memory_limit`: the Python and JavaScript toolchains' components keep a little of
        // every call. One whose memory stays put after its first call, however high, is kept
        // warm.
        let reusable =
            (sound && !outcome.memory_crowded && inner.options.isolation != Isolation::Call) || {
                let mut renewed = false;
                let mut renew = || renewed = instance.renew().is_ok();
                match lock {
                    // Start-up code runs again: not with the caller's lock held.
                    Some(lock) => lock.run_released(&mut renew),
                    None => renew(),
                }
                renewed
            };
        if reusable {
            self.checkin(instance, &options.context);
        }
        let audit = outcome
            .audit
            .into_iter()
            .map(|entry| {
                let entry = redact_entry(entry, &inner.spec.redactor);
                emit_audit(&inner.manifest, action, &options.context, &entry);
                entry
            })
            .collect();
        let report = CallReport {
            usage,
            logs: outcome.logs,
            audit,
        };
        let failed = outcome.result.as_ref().err().map(Error::code);
        self.account(&report.usage, &report.audit, failed);
        match outcome.result {
            Ok(output) => Ok((output, report)),
            Err(err) => {
                // The pack's own error text may quote a secret it read.
                let err = err.redacted(&inner.spec.redactor);
                tracing::debug!(code = err.code(), "call failed: {}", err.message());
                Err(err.with_report(report))
            }
        }
    }

    /// Names the pack and the action in a call's usage record.
    fn name_usage(&self, usage: &mut Usage, action: &str) {
        let inner = &*self.inner;
        usage.pack_name.clone_from(&inner.manifest.name);
        usage.pack_version.clone_from(&inner.manifest.version);
        usage.pack_id.clone_from(&inner.id);
        usage.action = action.to_string();
    }

    /// Counts a finished call in the pack's stats and appends it to the host's logs
    /// (`usage_log`, `audit_log`), one JSON line each.
    fn account(&self, usage: &Usage, audit: &[AuditEntry], error: Option<&str>) {
        let inner = &*self.inner;
        if let Ok(mut stats) = inner.stats.lock() {
            stats.add(usage, error);
        }
        if let Some(log) = &inner.usage_log {
            log.append(usage);
        }
        if let Some(log) = &inner.audit_log {
            for entry in audit {
                log.append(&AuditLine {
                    pack_name: &usage.pack_name,
                    pack_version: &usage.pack_version,
                    pack_id: &usage.pack_id,
                    action: &usage.action,
                    context: &usage.context,
                    entry,
                });
            }
        }
    }

    /// Counts and totals of this pack's calls since it was loaded, across its clones.
    pub fn stats(&self) -> PackStats {
        self.inner
            .stats
            .lock()
            .map(|stats| stats.clone())
            .unwrap_or_default()
    }

    /// An idle instance this call may use: one tagged with the call's tenant under
    /// `isolation: "context"`; any under `"pack"`, and any under `"call"`, where every idle
    /// instance is a fresh one no call has run on.
    fn idle_instance(&self, context: &serde_json::Value) -> Option<Instance> {
        let tag = self.instance_tag(context);
        let idle = self.inner.idle.take_if(|idle| idle.tenant == *tag)?;
        Some(idle.instance)
    }

    /// Keeps `instance` for the next call that may use it (see [`Pack::idle_instance`]).
    fn checkin(&self, instance: Instance, context: &serde_json::Value) {
        let tenant = self.instance_tag(context).clone();
        self.inner.idle.give(Idle { instance, tenant });
    }

    /// The tag of the idle instances a call for `context` may take, and that it leaves its
    /// instance under: its tenant under `isolation: "context"`, `null` (one tag for all)
    /// under the other modes.
    fn instance_tag<'a>(&self, context: &'a serde_json::Value) -> &'a serde_json::Value {
        static ANY_CALL: serde_json::Value = serde_json::Value::Null;
        match self.inner.options.isolation {
            Isolation::Context => tenant_of(context),
            Isolation::Call | Isolation::Pack => &ANY_CALL,
        }
    }
}

/// `entry` with secret values hidden: a pack can put one in a key or a failed request.
fn redact_entry(mut entry: AuditEntry, redactor: &Redactor) -> AuditEntry {
    if !redactor.is_empty() {
        entry.operation = redactor.redact(&entry.operation);
        entry.target = redactor.redact(&entry.target);
        entry.reason = entry.reason.map(|reason| redactor.redact(&reason));
    }
    entry
}

/// Sends one audit entry to `tracing` (target `packhost::audit`), with whom it was for.
fn emit_audit(
    manifest: &PackManifest,
    action: &str,
    context: &serde_json::Value,
    entry: &AuditEntry,
) {
    tracing::info!(
        target: "packhost::audit",
        pack = %manifest.name,
        version = %manifest.version,
        action,
        context = %context,
        capability = ?entry.capability,
        operation = %entry.operation,
        subject = %entry.target,
        outcome = ?entry.outcome,
        status = entry.status,
        bytes_sent = entry.bytes_sent,
        bytes_received = entry.bytes_received,
        reason = entry.reason.as_deref(),
        "capability used"
    );
}

/// Most validated modules remembered; past this the memory is cleared and refilled.
const MAX_REMEMBERED_MODULES: usize = 256;

/// Reads and validates a module, remembering the result by its hash. Full validation costs
/// milliseconds for a typical pack, and hosts often load the same pack again and again
/// (per request, per tenant); identical bytes always give the identical verdict.
pub(crate) fn read_module_cached(id: &str, bytes: &[u8]) -> Result<Arc<ModuleInfo>> {
    static REMEMBERED: OnceLock<Mutex<HashMap<String, Arc<ModuleInfo>>>> = OnceLock::new();
    let remembered = REMEMBERED.get_or_init(Default::default);
    if let Some(info) = remembered.lock().ok().and_then(|map| map.get(id).cloned()) {
        return Ok(info);
    }
    let info = Arc::new(ModuleInfo::read(bytes)?);
    if let Ok(mut map) = remembered.lock() {
        if map.len() >= MAX_REMEMBERED_MODULES {
            map.clear();
        }
        map.insert(id.to_string(), info.clone());
    }
    Ok(info)
}

/// A module's identity: the SHA-256 of its bytes, in lowercase hex.
pub(crate) fn module_id(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The signature `packhost sign` wrote beside the pack at `path` (`PATH.sig`), if any.
///
/// # Errors
/// `untrusted_pack` for a file there that is no signature; `io` when it cannot be read.
fn signature_beside(path: &Path) -> Result<Option<crate::trust::PackSignature>> {
    use std::io::Read as _;
    /// Far more than a signature document takes; a bound on what a planted file costs.
    const MOST: u64 = 64 * 1024;
    let beside = crate::trust::signature_path(path);
    let io =
        |err: std::io::Error| Error::new(ErrorKind::Io, format!("{}: {err}", beside.display()));
    let refused = |why: &str| {
        Error::new(
            ErrorKind::UntrustedPack,
            format!("{} {why}", beside.display()),
        )
    };
    // A FIFO or a device there would hang or flood the load: only a file is a signature,
    // looked at before it is opened (opening a FIFO waits for a writer), and opened without
    // waiting in case it was swapped since.
    match std::fs::metadata(&beside) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(refused("is not a file")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    }
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NONBLOCK);
    let file = open.open(&beside).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(refused("is not a file"));
    }
    let mut text = Vec::new();
    file.take(MOST + 1).read_to_end(&mut text).map_err(io)?;
    if text.len() as u64 > MOST {
        return Err(refused("is larger than any signature"));
    }
    crate::trust::PackSignature::from_json(&text).map(Some)
}
