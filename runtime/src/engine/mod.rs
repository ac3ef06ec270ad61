//! The execution engine: the only module that touches extism (and, through it, wasmtime).
//!
//! It turns an [`InstanceSpec`] into a running [`Instance`] and one call into a
//! [`RawOutcome`]; everything above it deals in packhost types only, so the engine can be
//! replaced without touching callers.
//!
//! Two things here work around extism 1.30 rather than with it:
//! - **One engine per instance.** extism times calls out by bumping the wasmtime engine's
//!   epoch, and every plugin made from one compiled plugin shares that engine, so one call's
//!   timeout would cut every concurrent call short. Each instance therefore owns its engine;
//!   compiled code is shared through wasmtime's on-disk cache, so only the first instance
//!   of a pack pays for compilation.
//! - **Host functions shadowed.** The `log_*` and `get_log_level` imports are replaced by
//!   ours, so log lines are captured per call at the host's level instead of going to
//!   extism's global subscriber.

mod classify;
mod memory;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use extism::{CurrentPlugin, Function, UserData, Val, ValType, PTR};

use crate::error::{Error, ErrorKind, Result};
use crate::module::EXTISM_ENV;
use crate::options::{Limits, LogLevel};
use crate::usage::{LogRecord, MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES};

pub(crate) use classify::classify;
use memory::{MemoryMeter, MeteredMemoryCreator};

/// Everything needed to make instances of one pack, fixed at load.
#[derive(Debug, Clone)]
pub(crate) struct InstanceSpec {
    /// The module bytes.
    pub(crate) wasm: Arc<Vec<u8>>,
    /// Host patterns the pack may reach (already the pack ∩ host intersection).
    pub(crate) allowed_hosts: Vec<String>,
    /// Config the pack may read (already filtered to keys it declared).
    pub(crate) config: BTreeMap<String, String>,
    /// The call limits.
    pub(crate) limits: Limits,
    /// Lowest log level recorded.
    pub(crate) log_level: LogLevel,
    /// Whether WASI is linked.
    pub(crate) wasi: bool,
}

/// What one call produced, before packhost turns it into a result.
pub(crate) struct RawOutcome {
    pub(crate) result: Result<Vec<u8>>,
    pub(crate) fuel_consumed: u64,
    pub(crate) peak_memory_bytes: u64,
    pub(crate) wall_time: Duration,
    pub(crate) logs: Vec<LogRecord>,
}

/// One instance slot: a compiled plugin with an engine of its own, and the live plugin
/// (store and wasm instance) made from it. After a failure only the live plugin is replaced
/// ([`Instance::renew`]); the engine and its compiled code stay, so recovering costs no
/// compilation and starts no new threads.
pub(crate) struct Instance {
    compiled: extism::CompiledPlugin,
    plugin: Option<extism::Plugin>,
    meter: Arc<MemoryMeter>,
    logs: UserData<LogBuffer>,
}

/// Log lines a pack writes during one call, kept at or above `level`.
#[derive(Debug, Default)]
struct LogBuffer {
    level: Option<LogLevel>,
    lines: Vec<LogRecord>,
}

impl Instance {
    /// Compiles (or loads from the code cache) and links a fresh instance.
    ///
    /// # Errors
    /// `invalid_pack` when wasmtime rejects the module or linking fails.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        let meter = Arc::new(MemoryMeter::with_limit(spec.limits.memory_bytes));
        let logs = UserData::new(LogBuffer {
            level: (spec.log_level != LogLevel::Off).then_some(spec.log_level),
            lines: Vec::new(),
        });

        let manifest = extism::Manifest::new([extism::Wasm::data(spec.wasm.as_slice())])
            .with_timeout(Duration::from_millis(spec.limits.timeout_ms))
            .with_memory_options(
                extism_manifest::MemoryOptions::new()
                    .with_max_pages(spec.limits.memory_pages())
                    .with_max_http_response_bytes(spec.limits.memory_bytes),
            )
            .with_allowed_hosts(spec.allowed_hosts.iter().cloned())
            .with_config(spec.config.iter());

        let mut wasmtime_config = wasmtime::Config::new();
        // Copy-on-write memory images assume wasmtime's own mmap memories, so they are off
        // with ours; data segments are copied in at instantiation instead.
        wasmtime_config
            .memory_init_cow(false)
            .with_host_memory(Arc::new(MeteredMemoryCreator {
                meter: meter.clone(),
            }));

        let mut builder = extism::PluginBuilder::new(manifest)
            .with_wasi(spec.wasi)
            .with_functions(log_functions(&logs))
            .with_fuel_limit(spec.limits.fuel.unwrap_or(u64::MAX))
            .with_wasmtime_config(wasmtime_config);
        builder = match code_cache_config() {
            Some(path) => builder.with_cache_config(path),
            None => builder.with_cache_disabled(),
        };
        let compiled = catch_panic("compiling", || builder.compile())?
            .map_err(|err| Error::invalid_pack(format!("could not compile the pack: {err:#}")))?;
        let mut instance = Instance {
            compiled,
            plugin: None,
            meter,
            logs,
        };
        instance.renew()?;
        Ok(instance)
    }

    /// Replaces the live plugin with a fresh one (new store, new wasm instance) from the same
    /// compiled code. The old one is dropped first, so one engine never holds two stores.
    ///
    /// # Errors
    /// `invalid_pack` when linking or the pack's start-up code fails.
    pub(crate) fn renew(&mut self) -> Result<()> {
        self.plugin = None;
        let compiled = &self.compiled;
        let mut plugin = catch_panic("instantiating", || {
            extism::Plugin::new_from_compiled(compiled)
        })?
        .map_err(|err| Error::invalid_pack(format!("could not link the pack: {err:#}")))?;
        instantiate_now(&mut plugin)?;
        self.plugin = Some(plugin);
        Ok(())
    }

    /// Runs one export on `input`.
    pub(crate) fn call(&mut self, action: &str, input: &[u8]) -> RawOutcome {
        if let Ok(buffer) = self.logs.get() {
            if let Ok(mut buffer) = buffer.lock() {
                buffer.lines.clear();
            }
        }
        self.meter.reset_peak();
        let started = Instant::now();
        let Some(plugin) = self.plugin.as_mut() else {
            return RawOutcome {
                result: Err(Error::new(
                    ErrorKind::Internal,
                    "instance has no live plugin",
                )),
                fuel_consumed: 0,
                peak_memory_bytes: 0,
                wall_time: Duration::ZERO,
                logs: Vec::new(),
            };
        };
        let result = catch_panic("calling", || {
            plugin
                .call_get_error_code::<&[u8], Vec<u8>>(action, input)
                .map_err(|(err, return_code)| classify(&err, return_code))
        })
        .and_then(|result| result)
        .map_err(|err| {
            // A pack whose memory growth was refused usually aborts (Rust's allocator traps);
            // that trap is the memory limit at work, and is reported as such.
            if *err.kind() == ErrorKind::Trap && self.meter.refused_growth() {
                Error::new(
                    ErrorKind::MemoryLimit,
                    format!(
                        "the pack tried to grow its memory past the {} byte limit",
                        self.meter.limit()
                    ),
                )
            } else {
                err
            }
        });
        let wall_time = started.elapsed();
        let fuel_consumed = plugin.fuel_consumed().unwrap_or(0);
        let logs = self
            .logs
            .get()
            .ok()
            .and_then(|buffer| buffer.lock().ok().map(|mut b| std::mem::take(&mut b.lines)))
            .unwrap_or_default();
        RawOutcome {
            result,
            fuel_consumed,
            peak_memory_bytes: self.meter.peak(),
            wall_time,
            logs,
        }
    }
}

/// Export name no module has: calling it makes extism instantiate the module and run its
/// start-up code, then fail to find the function.
const NO_SUCH_EXPORT: &str = "__packhost_instantiate";

/// Instantiates the module and runs its start-up code (constructors, language runtime
/// init) now, when the instance is made, instead of inside its first real call. That call
/// would otherwise pay for it, so a caller's fuel and time would depend on whether the pool
/// handed it a fresh instance or a used one.
fn instantiate_now(plugin: &mut extism::Plugin) -> Result<()> {
    let outcome = catch_panic("instantiating", || {
        plugin.call::<&[u8], &[u8]>(NO_SUCH_EXPORT, &[]).map(|_| ())
    })?;
    match outcome {
        Err(err) if err.to_string().starts_with("Function not found") => Ok(()),
        Err(err) => Err(Error::invalid_pack(format!(
            "the pack failed to start: {err:#}"
        ))),
        Ok(()) => Ok(()),
    }
}

/// Runs `work`, turning a panic inside extism or wasmtime into an `internal` error so a
/// bug below packhost never unwinds into the host application (or across an FFI boundary).
fn catch_panic<T>(doing: &str, work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::new(
            ErrorKind::Internal,
            format!("packhost bug while {doing}: {detail}"),
        )
    })
}

/// The `log_*` and `get_log_level` imports, bound to one instance's buffer.
fn log_functions(logs: &UserData<LogBuffer>) -> Vec<Function> {
    let levels = [
        ("log_trace", LogLevel::Trace),
        ("log_debug", LogLevel::Debug),
        ("log_info", LogLevel::Info),
        ("log_warn", LogLevel::Warn),
        ("log_error", LogLevel::Error),
    ];
    let mut functions: Vec<Function> = levels
        .into_iter()
        .map(|(name, level)| {
            Function::new(
                name,
                [PTR],
                [],
                logs.clone(),
                move |plugin, inputs, _, logs| record_log(plugin, &inputs[0], level, &logs),
            )
            .with_namespace(EXTISM_ENV)
        })
        .collect();
    functions.push(
        Function::new(
            "get_log_level",
            [],
            [ValType::I32],
            logs.clone(),
            |_, _, outputs, logs| {
                let level = logs.get()?.lock().map_err(|_| poisoned())?.level;
                outputs[0] = Val::I32(level.map_or(i32::MAX, log_level_number));
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
    );
    functions
}

/// The Extism PDKs' numbering of log levels.
fn log_level_number(level: LogLevel) -> i32 {
    match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
        LogLevel::Off => i32::MAX,
    }
}

fn poisoned() -> extism::Error {
    extism::Error::msg("log buffer lock poisoned")
}

fn record_log(
    plugin: &mut CurrentPlugin,
    offset: &Val,
    level: LogLevel,
    logs: &UserData<LogBuffer>,
) -> std::result::Result<(), extism::Error> {
    // The pack hands the message's memory over to the host, which must free it.
    let handle = plugin
        .memory_from_val(offset)
        .ok_or_else(|| extism::Error::msg("log message handle is not a valid allocation"))?;
    let buffer = logs.get()?;
    let mut buffer = buffer.lock().map_err(|_| poisoned())?;
    let wanted = buffer.level.is_some_and(|min| level >= min);
    if wanted && buffer.lines.len() < MAX_LOG_LINES {
        let bytes = plugin.memory_bytes(handle)?;
        let mut message = String::from_utf8_lossy(bytes).into_owned();
        truncate_on_char_boundary(&mut message, MAX_LOG_MESSAGE_BYTES);
        emit_tracing(level, &message);
        buffer.lines.push(LogRecord { level, message });
    }
    drop(buffer);
    plugin.memory_free(handle)?;
    Ok(())
}

fn truncate_on_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Forwards a plugin log line to `tracing` at its own level.
fn emit_tracing(level: LogLevel, message: &str) {
    match level {
        LogLevel::Trace => tracing::trace!(target: "packhost::plugin", "{message}"),
        LogLevel::Debug => tracing::debug!(target: "packhost::plugin", "{message}"),
        LogLevel::Info => tracing::info!(target: "packhost::plugin", "{message}"),
        LogLevel::Warn => tracing::warn!(target: "packhost::plugin", "{message}"),
        LogLevel::Error => tracing::error!(target: "packhost::plugin", "{message}"),
        LogLevel::Off => {}
    }
}

/// Path of a wasmtime cache config pointing at packhost's code cache, or `None` when no
/// cache directory can be made (then every instance compiles for itself).
///
/// The directory is `$PACKHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/packhost`, else
/// `$HOME/.cache/packhost`. Only code this process compiled goes in; wasmtime keys entries by
/// module hash and engine configuration, so a stale or foreign entry is never loaded.
fn code_cache_config() -> Option<PathBuf> {
    static CONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let env_dir = |name: &str| {
                std::env::var_os(name)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            let dir = env_dir("PACKHOST_CACHE_DIR")
                .or_else(|| env_dir("XDG_CACHE_HOME").map(|d| d.join("packhost")))
                .or_else(|| env_dir("HOME").map(|d| d.join(".cache").join("packhost")))?;
            let dir = std::path::absolute(dir).ok()?;
            std::fs::create_dir_all(dir.join("code")).ok()?;
            let config = dir.join("wasmtime-cache.toml");
            let text = format!(
                "[cache]\ndirectory = {}\n",
                toml_string(&dir.join("code").to_string_lossy())
            );
            // Written aside and renamed so concurrent processes never read half a file.
            let staged = dir.join(format!("wasmtime-cache.toml.{}", std::process::id()));
            std::fs::write(&staged, text).ok()?;
            std::fs::rename(&staged, &config).ok()?;
            Some(config)
        })
        .clone()
}

/// A TOML basic string for `text` (quotes and backslashes escaped).
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
