//! `PackFailure`, the one error every export throws: a core [`packhost::Error`] as data (its
//! stable code, message and what the failed call reported), plus the records a call's
//! report crosses as. Panics are caught here too, so none unwinds into the JVM.

use std::fmt;

use packhost::{Error, ErrorKind};

/// A load or call failed. The Kotlin layer turns it into the `PackException` subclass of
/// its `code`.
#[derive(Debug, uniffi::Error)]
pub enum PackFailure {
    /// The only variant: every failure carries the same fields.
    Failed {
        /// The stable snake_case code (`packhost::ERROR_CODES`).
        code: String,
        /// The message for people; for `plugin_error`, the pack's own.
        reason: String,
        /// The export's non-zero return code, for `plugin_error`.
        return_code: Option<i32>,
        /// The host function that failed, for `host_function_error`.
        host_function: Option<String>,
        /// The class of the exception that host function's handler threw.
        handler_class: Option<String>,
        /// For a failure inside a flow: the id of the step that failed.
        flow_step: Option<String>,
        /// Usage, logs and audit trail of the failed call, for failures during a call.
        report: Option<CallReport>,
    },
}

impl fmt::Display for PackFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PackFailure::Failed { code, reason, .. } = self;
        write!(formatter, "{code}: {reason}")
    }
}

impl std::error::Error for PackFailure {}

impl From<Error> for PackFailure {
    fn from(error: Error) -> Self {
        let (host_function, handler_class) = match error.host_function() {
            Some((function, class)) => (Some(function.to_string()), class.map(str::to_string)),
            None => (None, None),
        };
        PackFailure::Failed {
            code: error.code().to_string(),
            reason: error.message().to_string(),
            return_code: error.return_code(),
            host_function,
            handler_class,
            flow_step: error.flow_step().map(str::to_string),
            report: error.report().cloned().map(CallReport::from),
        }
    }
}

/// What one call cost, as the core measured it (`packhost::Usage`).
#[derive(Debug, Clone, uniffi::Record)]
pub struct CallUsage {
    /// Wall-clock time inside the engine, in microseconds.
    pub wall_time_us: u64,
    /// Fuel burnt by the call.
    pub fuel_consumed: u64,
    /// Largest total linear memory of the instance during the call, in bytes.
    pub peak_memory_bytes: u64,
    /// Size of the input, in bytes.
    pub input_bytes: u64,
    /// Size of the output, in bytes (0 when the call failed).
    pub output_bytes: u64,
    /// Host functions the pack called.
    pub host_calls: u64,
    /// Time inside host functions' handlers, in microseconds.
    pub host_time_us: u64,
    /// Key-value operations the pack made, refused ones included.
    pub kv_ops: u64,
    /// HTTP requests the pack made, refused ones included.
    pub http_requests: u64,
    /// Bytes of HTTP request bodies the pack sent.
    pub http_bytes_sent: u64,
    /// Bytes of HTTP response bodies the pack received.
    pub http_bytes_received: u64,
    /// The call's context as JSON text; absent when the call had none.
    pub context_json: Option<String>,
    /// The pack's name, from its manifest.
    pub pack_name: String,
    /// The pack's version, from its manifest.
    pub pack_version: String,
    /// The pack's id: the SHA-256 of its module, in lowercase hex.
    pub pack_id: String,
    /// The action called.
    pub action: String,
}

impl From<packhost::Usage> for CallUsage {
    fn from(usage: packhost::Usage) -> Self {
        CallUsage {
            wall_time_us: usage.wall_time_us,
            fuel_consumed: usage.fuel_consumed,
            peak_memory_bytes: usage.peak_memory_bytes,
            input_bytes: usage.input_bytes,
            output_bytes: usage.output_bytes,
            host_calls: usage.host_calls,
            host_time_us: usage.host_time_us,
            kv_ops: usage.kv_ops,
            http_requests: usage.http_requests,
            http_bytes_sent: usage.http_bytes_sent,
            http_bytes_received: usage.http_bytes_received,
            context_json: (!usage.context.is_null()).then(|| usage.context.to_string()),
            pack_name: usage.pack_name,
            pack_version: usage.pack_version,
            pack_id: usage.pack_id,
            action: usage.action,
        }
    }
}

/// One line the pack logged.
#[derive(Debug, Clone, uniffi::Record)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The text, as the core cut it.
    pub message: String,
}

/// What a call reported besides its output: usage, logs and the audit trail.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CallReport {
    /// What the call cost.
    pub usage: CallUsage,
    /// What the pack logged at or above the configured level, in order.
    pub logs: Vec<LogLine>,
    /// Every capability the pack used, refusals included, as a JSON array (most callers
    /// never read it, so it is parsed only on the Kotlin side, when asked for).
    pub audit_json: String,
}

impl From<packhost::CallReport> for CallReport {
    fn from(report: packhost::CallReport) -> Self {
        CallReport {
            usage: report.usage.into(),
            logs: report
                .logs
                .into_iter()
                .map(|record| LogLine {
                    level: record.level.as_str().to_string(),
                    message: record.message,
                })
                .collect(),
            audit_json: serde_json::to_string(&report.audit).unwrap_or_else(|_| "[]".to_string()),
        }
    }
}

/// Runs `work`, turning a panic inside it into an `internal` failure: a packhost bug reaches
/// the JVM as `PackException.Internal`, never as an unwind across the FFI.
pub fn catch_panic<T>(work: impl FnOnce() -> packhost::Result<T>) -> Result<T, PackFailure> {
    caught(work).map_err(PackFailure::from)
}

/// Runs `work`, turning a panic inside it into an `internal` error (for `fast.rs`, whose
/// failures cross later, through `outcome_failure`).
pub fn caught<T>(work: impl FnOnce() -> packhost::Result<T>) -> packhost::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(Error::new(
            ErrorKind::Internal,
            format!(
                "packhost panicked: {}",
                packhost::panic_message(payload.as_ref()).unwrap_or("no message")
            ),
        ))
    })
}
