//! The execution engines: everything that runs WebAssembly sits below this module.
//!
//! Two engines implement the same Extism plugin ABI behind one [`Instance`] type:
//! - `native`: packhost's own implementation on wasmtime (the default, and the fast one);
//! - `extism`: the `extism` crate, kept as the reference the conformance suite checks the
//!   native engine against.
//!
//! Everything above this module deals in packhost types only: an [`InstanceSpec`] in, a
//! [`RawOutcome`] per call out.

mod extism;
mod fuel;
mod native;
mod vars;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::capabilities::audit::{AuditEntry, HttpTotals};
use crate::capabilities::files::Mount;
use crate::capabilities::host_fn::{HostFunctions, HostTally, ValueType, WasmValue};
use crate::capabilities::http::HttpGrant;
use crate::capabilities::secrets::Redactor;
use crate::error::{Error, ErrorKind, Result};
use crate::link::LinkedCode;
use crate::lock::InterpreterLock;
use crate::options::{CallOptions, EngineKind, Limits, LogLevel};
use crate::usage::{LogRecord, MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES};

pub(crate) use extism::refuse_unbounded as refuse_what_extism_cannot_bound;
pub(crate) use fuel::FuelRates;
pub use native::{forget_compiled_code, instance_pool, InstancePool};

/// Everything needed to make instances of one pack, fixed at load.
#[derive(Debug, Clone)]
pub(crate) struct InstanceSpec {
    /// The pack's identity (SHA-256 of `wasm`, hex, or over it and the linked modules):
    /// the key of every code cache of the main module.
    pub(crate) id: String,
    /// The main module's bytes.
    pub(crate) wasm: Arc<Vec<u8>>,
    /// The modules it links with (an Extism manifest's other modules), each after those it
    /// imports from.
    pub(crate) linked: Arc<Vec<LinkedCode>>,
    /// Which engine runs the calls.
    pub(crate) engine: EngineKind,
    /// Host patterns the pack may reach (already the pack ∩ host intersection).
    pub(crate) allowed_hosts: Vec<String>,
    /// What the pack may do over HTTP; both engines' `http_request` go through it.
    pub(crate) http: Arc<HttpGrant>,
    /// Config the pack may read (already filtered to keys it declared).
    pub(crate) config: BTreeMap<String, String>,
    /// The call limits.
    pub(crate) limits: Limits,
    /// Lowest log level recorded.
    pub(crate) log_level: LogLevel,
    /// Hides the host's secret values in the pack's log lines.
    pub(crate) redactor: Arc<Redactor>,
    /// Whether WASI is linked.
    pub(crate) wasi: bool,
    /// Host directories the pack's WASI sees (already narrowed to what it asked for).
    pub(crate) mounts: Arc<Vec<Mount>>,
    /// The functions the host lends this pack, all checked against its imports.
    pub(crate) host_functions: Arc<HostFunctions>,
    /// The pack's measured fuel rates, which bill calls that time out (see `engine::fuel`).
    pub(crate) fuel_rates: Arc<fuel::FuelRates>,
    /// The native engine's compiled, linked pack, made by the first instance and shared by
    /// the rest (and by clones of the spec).
    pub(crate) native_code: Arc<OnceLock<Arc<native::PackCode>>>,
    /// True when the pack is a component (`wit/component.wit`), which the native engine
    /// runs.
    pub(crate) component: bool,
    /// The compiled, linked component, as `native_code` for modules.
    pub(crate) component_code: Arc<OnceLock<Arc<native::ComponentCode>>>,
}

/// What one call produced, before packhost turns it into a result. `R` is what the caller's
/// reader made of the output bytes.
pub(crate) struct RawOutcome<R> {
    pub(crate) result: Result<R>,
    pub(crate) fuel_consumed: u64,
    pub(crate) peak_memory_bytes: u64,
    pub(crate) wall_time: Duration,
    pub(crate) host: HostTally,
    pub(crate) logs: Vec<LogRecord>,
    /// Every capability the call used, in order.
    pub(crate) audit: Vec<AuditEntry>,
    /// The HTTP it made, counted from every request (the trail keeps only so many entries).
    pub(crate) http: HttpTotals,
    /// The part of `wall_time` that was the instance's start-up, billed to this call.
    pub(crate) startup_time: Duration,
    /// The pack ended the call with WASI's `proc_exit` (its exit path ran, so its instance
    /// is not reused). Only the native engine can tell.
    pub(crate) exited: bool,
    /// The instance is so close to its memory limit that its next call may not fit: less
    /// room is left than twice the most any of its calls (after its first) grew its linear
    /// memory. Only the native engine can tell.
    pub(crate) memory_crowded: bool,
}

impl<R> RawOutcome<R> {
    /// An outcome for a call that never reached the pack.
    fn failed(err: Error) -> Self {
        RawOutcome {
            result: Err(err),
            fuel_consumed: 0,
            peak_memory_bytes: 0,
            wall_time: Duration::ZERO,
            host: HostTally::default(),
            logs: Vec::new(),
            audit: Vec::new(),
            http: HttpTotals::default(),
            memory_crowded: false,
            startup_time: Duration::ZERO,
            exited: false,
        }
    }
}

/// Settles the fuel of a call of `action` that spent `cpu` on its thread, under a fuel
/// limit of `fuel_limit`: a call its timeout (or its host's cancel) interrupted is billed
/// for that time at the action's rate, at most the limit (wasmtime does not count the last
/// stretch of an interrupted function). A call whose count is exact and that called no host function
/// (whose CPU time would count as the pack's) teaches the rate; a trap's count is not exact.
fn settle_fuel<R>(
    outcome: &mut RawOutcome<R>,
    rates: &fuel::FuelRates,
    action: &str,
    cpu: Duration,
    fuel_limit: Option<u64>,
) {
    match outcome.result.as_ref().map_err(Error::kind) {
        Err(ErrorKind::Timeout | ErrorKind::Cancelled) => {
            let billed = rates.bill(
                action,
                outcome.fuel_consumed,
                cpu,
                native::calibrated_fuel_rate,
            );
            outcome.fuel_consumed = billed.min(fuel_limit.unwrap_or(u64::MAX));
        }
        Ok(_) | Err(ErrorKind::PluginError { .. } | ErrorKind::OutOfFuel)
            if outcome.host.calls == 0 =>
        {
            rates.observe(action, outcome.fuel_consumed, cpu);
        }
        _ => {}
    }
}

/// The message of a WASI command that exited (`proc_exit`) with a non-zero code and no error
/// message, the same on both engines.
fn exited_with(code: i32) -> String {
    format!("the pack exited with code {code}")
}

/// Bytes the host holds per table element: wasmtime keeps one pointer per element. Both
/// engines count tables against `memory_bytes` by it.
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// The error of a start-up that failed with `err`, already classified as a call's failure
/// would be: a limit keeps its code and says it was hit while the pack started; anything
/// else means the pack cannot start, with `detail` saying why.
fn start_failed(err: Error, detail: impl std::fmt::Display) -> Error {
    match err.kind() {
        ErrorKind::Timeout | ErrorKind::OutOfFuel => Error::new(
            err.kind().clone(),
            format!("{} while the pack started", err.message()),
        ),
        _ => Error::invalid_pack(format!("the pack failed to start: {detail}")),
    }
}

/// What making an instance cost: its start-up code (constructors, `_initialize`) runs under
/// the call limits, and the first call on the instance reports it as part of its own usage.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StartupCost {
    pub(crate) fuel: u64,
    pub(crate) wall_time: Duration,
    pub(crate) peak_memory_bytes: u64,
}

impl StartupCost {
    /// Bills this start-up to `outcome`, the first call on the instance.
    fn add_to<R>(self, outcome: &mut RawOutcome<R>) {
        outcome.fuel_consumed = outcome.fuel_consumed.saturating_add(self.fuel);
        outcome.wall_time += self.wall_time;
        outcome.startup_time = self.wall_time;
        outcome.peak_memory_bytes = outcome.peak_memory_bytes.max(self.peak_memory_bytes);
    }

    /// `err`, a failed start-up, carrying what that start-up cost and logged.
    fn report_on(self, err: Error, logs: Vec<LogRecord>) -> Error {
        let usage = crate::usage::Usage {
            wall_time_us: u64::try_from(self.wall_time.as_micros()).unwrap_or(u64::MAX),
            fuel_consumed: self.fuel,
            peak_memory_bytes: self.peak_memory_bytes,
            ..Default::default()
        };
        err.with_report(crate::usage::CallReport {
            usage,
            logs,
            audit: Vec::new(),
        })
    }
}

/// One instance slot of a pack, on either engine.
// The variants differ in size, but an instance is made once and then only moved in and out
// of its pack's pool, so boxing either side would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Instance {
    Native(native::Instance),
    Extism(extism::Instance),
    /// A component pack, on the native engine.
    Component(native::ComponentInstance),
}

impl InstanceSpec {
    /// Whether an instance may wait in the host outside its handlers' control: granted HTTP
    /// hosts, or WASI (its sleeps).
    pub(crate) fn may_block(&self) -> bool {
        !self.allowed_hosts.is_empty() || self.wasi
    }
}

impl Instance {
    /// Makes a ready instance (compiled, linked, start-up code run).
    ///
    /// # Errors
    /// `invalid_pack` when the module cannot be compiled, linked or started.
    pub(crate) fn new(spec: &InstanceSpec) -> Result<Self> {
        keep_heap_top_pad();
        if spec.component {
            return native::ComponentInstance::new(spec).map(Instance::Component);
        }
        match spec.engine {
            EngineKind::Native => native::Instance::new(spec).map(Instance::Native),
            EngineKind::Extism => extism::Instance::new(spec).map(Instance::Extism),
        }
    }

    /// Replaces the store and wasm instance after a failure that may have left them broken.
    ///
    /// # Errors
    /// As [`Instance::new`].
    pub(crate) fn renew(&mut self) -> Result<()> {
        match self {
            Instance::Native(instance) => instance.renew(),
            Instance::Extism(instance) => instance.renew(),
            Instance::Component(instance) => instance.renew(),
        }
    }

    /// Runs one export on `input` and hands the output bytes, where the engine holds them,
    /// to `read`; nothing is copied unless `read` copies. The first call on a new live
    /// instance also reports its start-up. Host functions the pack calls see
    /// `context`. A call given the caller's `lock` holds it, and the native engine releases
    /// it if the call runs past [`HOLD_AT_MOST`](crate::HOLD_AT_MOST); the extism engine is
    /// never given one.
    pub(crate) fn call<R>(
        &mut self,
        action: &str,
        input: &[u8],
        options: &CallOptions,
        lock: Option<&mut dyn InterpreterLock>,
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> RawOutcome<R> {
        let (mut outcome, startup) = match self {
            Instance::Native(instance) => (
                instance.call(action, input, options, lock, read),
                instance.take_startup(),
            ),
            Instance::Extism(instance) => (
                instance.call(action, input, options, read),
                instance.take_startup(),
            ),
            Instance::Component(instance) => (
                instance.call(action, input, options, lock, read),
                instance.take_startup(),
            ),
        };
        if let Some(startup) = startup {
            startup.add_to(&mut outcome);
        }
        outcome
    }
}

/// A wasmtime value as a host function sees it. Signatures are built from `ValueType`,
/// so no other kind of value can arrive.
fn wasm_value(value: &wasmtime::Val) -> WasmValue {
    match value {
        wasmtime::Val::I64(v) => WasmValue::I64(*v),
        wasmtime::Val::F32(bits) => WasmValue::F32(f32::from_bits(*bits)),
        wasmtime::Val::F64(bits) => WasmValue::F64(f64::from_bits(*bits)),
        wasmtime::Val::I32(v) => WasmValue::I32(*v),
        _ => WasmValue::I32(0),
    }
}

/// A host function's value type as wasmtime names it.
fn wasmtime_type(ty: &ValueType) -> wasmtime::ValType {
    match ty {
        ValueType::I32 => wasmtime::ValType::I32,
        ValueType::I64 => wasmtime::ValType::I64,
        ValueType::F32 => wasmtime::ValType::F32,
        ValueType::F64 => wasmtime::ValType::F64,
    }
}

/// A host function's value as wasmtime takes it.
fn wasmtime_val(value: WasmValue) -> wasmtime::Val {
    match value {
        WasmValue::I32(v) => wasmtime::Val::I32(v),
        WasmValue::I64(v) => wasmtime::Val::I64(v),
        WasmValue::F32(v) => wasmtime::Val::F32(v.to_bits()),
        WasmValue::F64(v) => wasmtime::Val::F64(v.to_bits()),
    }
}

/// Asks glibc's allocator to keep 1 MiB of free memory at the top of the heap instead of
/// returning it to the kernel at once. Every call allocates its output (and a host binding
/// its own copy) and frees it soon after; with outputs of around 100 KiB, glibc's default
/// gives the memory back after each call and faults it in again on the next, which measured
/// as five times the cost of the call itself. Process-wide, once, and only 1 MiB.
fn keep_heap_top_pad() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static DONE: std::sync::Once = std::sync::Once::new();
        DONE.call_once(|| {
            // SAFETY: mallopt only changes allocator tuning; M_TOP_PAD takes a byte count.
            unsafe { libc::mallopt(libc::M_TOP_PAD, 1 << 20) };
        });
    }
}

/// Log lines a pack writes during one call, kept at or above `level`, with the host's
/// secret values hidden.
#[derive(Debug, Default)]
struct LogBuffer {
    level: Option<LogLevel>,
    lines: Vec<LogRecord>,
    redactor: Arc<Redactor>,
}

impl LogBuffer {
    fn new(level: LogLevel) -> Self {
        LogBuffer {
            level: (level != LogLevel::Off).then_some(level),
            lines: Vec::new(),
            redactor: Arc::default(),
        }
    }

    /// The same buffer, replacing `redactor`'s secret values in every line it keeps.
    fn with_redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    /// True when a line at `level` would be kept, so the caller can skip reading it.
    fn wants(&self, level: LogLevel) -> bool {
        self.level.is_some_and(|min| level >= min) && self.lines.len() < MAX_LOG_LINES
    }

    /// How much of a line of `len` bytes is worth decoding, redacting and escaping: the
    /// part that can reach the kept prefix, with room for a secret that starts inside it.
    /// A pack's line can be as long as its memory; working on all of it would make the host
    /// allocate several times that, uncounted, for a line cut to 16 KiB anyway.
    fn considered(&self, len: usize) -> usize {
        len.min(MAX_LOG_MESSAGE_BYTES * 4 + self.redactor.longest())
    }

    /// Keeps one line (lossily decoded, secret values redacted, control characters escaped,
    /// truncated) and forwards it to `tracing`.
    fn record(&mut self, level: LogLevel, message: &[u8]) {
        if !self.wants(level) {
            return;
        }
        let message = &message[..self.considered(message.len())];
        let mut message = String::from_utf8_lossy(message).into_owned();
        if !self.redactor.is_empty() {
            message = self.redactor.redact(&message);
        }
        let mut message = escape_controls(message);
        truncate_on_char_boundary(&mut message, MAX_LOG_MESSAGE_BYTES);
        emit_tracing(level, &message);
        self.lines.push(LogRecord { level, message });
    }

    /// The level number `get_log_level` reports: the lowest level kept, or "nothing".
    fn level_number(&self) -> i32 {
        self.level.map_or(i32::MAX, log_level_number)
    }
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

/// The `log_*` imports and the level each records at.
const LOG_IMPORTS: [(&str, LogLevel); 5] = [
    ("log_trace", LogLevel::Trace),
    ("log_debug", LogLevel::Debug),
    ("log_info", LogLevel::Info),
    ("log_warn", LogLevel::Warn),
    ("log_error", LogLevel::Error),
];

/// Escapes control characters (other than tab) as `\n`, `\r` or `\u{..}`: a pack's log line
/// reaches terminals and log files, where an escape sequence could recolour or rewrite what
/// an operator sees, and a newline could forge a second log entry.
fn escape_controls(text: String) -> String {
    if !text.chars().any(needs_escape) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => escaped.push(c),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c if needs_escape(c) => escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Control characters other than tab, and the invisible characters that reorder or hide
/// text on screen (bidirectional overrides and isolates, zero-width marks).
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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

/// Runs `work`, turning a panic inside an engine or wasmtime into an `internal` error so a
/// bug below packhost never unwinds into the host application (or across an FFI boundary).
fn catch_panic<T>(doing: &str, work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let detail = crate::panic_message(payload.as_ref()).unwrap_or("unknown panic");
        Error::new(
            ErrorKind::Internal,
            format!("packhost bug while {doing}: {detail}"),
        )
    })
}

/// packhost's cache directory, created on first use, or `None` when none can be made (then
/// code is compiled in every process and never written to disk).
///
/// It is `$PACKHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/packhost`, else
/// `$HOME/.cache/packhost`, read once per process. Only code this process compiled goes in.
/// Missing levels are created `0700` on unix: the native engine's code cache refuses a root
/// that other users can enter, and a directory made private from the start is never open,
/// even for an instant. An existing directory is left as it is (the code cache checks it).
fn cache_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env_dir("PACKHOST_CACHE_DIR")
            .or_else(|| env_dir("XDG_CACHE_HOME").map(|d| d.join("packhost")))
            .or_else(|| env_dir("HOME").map(|d| d.join(".cache").join("packhost")))?;
        let dir = std::path::absolute(dir).ok()?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).ok()?;
        Some(dir)
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_cannot_carry_terminal_escapes_or_forge_lines() {
        let mut logs = LogBuffer::new(LogLevel::Info);
        logs.record(
            LogLevel::Info,
            b"\x1b[2J\x1b[31mpwned\r\nINFO fake entry\ttabbed",
        );
        logs.record(LogLevel::Info, "plain ünïcode".as_bytes());
        logs.record(LogLevel::Info, "invoice\u{202e}fdp.exe".as_bytes());
        let messages: Vec<&str> = logs.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "\\u{1b}[2J\\u{1b}[31mpwned\\r\\nINFO fake entry\ttabbed",
                "plain ünïcode",
                "invoice\\u{202e}fdp.exe"
            ]
        );
    }
}
