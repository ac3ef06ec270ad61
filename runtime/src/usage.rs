//! What a call cost and what it logged: the record usage-based billing is built on.

use serde::{Deserialize, Serialize};

use crate::capabilities::audit::AuditEntry;
use crate::options::LogLevel;

/// The cost of one call, and whom it was for. The first call on an instance also pays for
/// that instance's start-up code (its fuel, time and memory are included), which runs under
/// the same limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Wall-clock time inside the engine, in microseconds.
    pub wall_time_us: u64,
    /// Fuel burnt by the call: the pack's instructions plus the Extism ABI's. A call ended by
    /// its timeout is billed at least its CPU time in wasm at the fuel rate its action was
    /// measured to burn (wasmtime does not count an interrupted function's last stretch).
    pub fuel_consumed: u64,
    /// Largest total linear memory of the instance during the call, in bytes.
    pub peak_memory_bytes: u64,
    /// Size of the input, in bytes.
    pub input_bytes: u64,
    /// Size of the output, in bytes (0 when the call failed).
    pub output_bytes: u64,
    /// Host functions the pack called.
    pub host_calls: u64,
    /// Time spent inside host functions' handlers, in microseconds (part of
    /// `wall_time_us`).
    pub host_time_us: u64,
    /// Key-value operations the pack made (`get`, `set`, `delete`, `list`,
    /// `compare_and_set`), refused ones included.
    #[serde(default)]
    pub kv_ops: u64,
    /// HTTP requests the pack made, refused ones included.
    #[serde(default)]
    pub http_requests: u64,
    /// Bytes of HTTP request bodies the pack sent.
    #[serde(default)]
    pub http_bytes_sent: u64,
    /// Bytes of HTTP response bodies the pack received.
    #[serde(default)]
    pub http_bytes_received: u64,
    /// The `context` the caller passed (a tenant, a request id), `null` when none: a usage
    /// record names whom the call was for, so billing needs nothing joined back to it.
    #[serde(default)]
    pub context: serde_json::Value,
    /// The pack's name, from its manifest.
    #[serde(default)]
    pub pack_name: String,
    /// The pack's version, from its manifest.
    #[serde(default)]
    pub pack_version: String,
    /// The pack's id: the SHA-256 of its module, in lowercase hex.
    #[serde(default)]
    pub pack_id: String,
    /// The action called.
    #[serde(default)]
    pub action: String,
}

impl Usage {
    /// How many numbers [`Usage::counters`] gives.
    pub const COUNTERS: usize = 11;

    /// The counters in field order (wall time to HTTP bytes received), for bindings that hand
    /// a call's usage to their host as plain numbers instead of an object.
    pub fn counters(&self) -> [u64; Usage::COUNTERS] {
        [
            self.wall_time_us,
            self.fuel_consumed,
            self.peak_memory_bytes,
            self.input_bytes,
            self.output_bytes,
            self.host_calls,
            self.host_time_us,
            self.kv_ops,
            self.http_requests,
            self.http_bytes_sent,
            self.http_bytes_received,
        ]
    }
}

/// Counts and totals of a loaded pack's calls since it was loaded (shared by its clones):
/// what [`Pack::stats`](crate::Pack::stats) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackStats {
    /// Calls made, failed ones included.
    pub calls: u64,
    /// Calls that failed, by error code.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Sum of the calls' `wall_time_us`.
    pub wall_time_us: u64,
    /// Sum of the calls' `fuel_consumed`.
    pub fuel_consumed: u64,
    /// Sum of the calls' `input_bytes`.
    pub input_bytes: u64,
    /// Sum of the calls' `output_bytes`.
    pub output_bytes: u64,
    /// Sum of the calls' `host_calls`.
    pub host_calls: u64,
    /// Sum of the calls' `kv_ops`.
    pub kv_ops: u64,
    /// Sum of the calls' `http_requests`.
    pub http_requests: u64,
    /// Sum of the calls' `http_bytes_sent`.
    pub http_bytes_sent: u64,
    /// Sum of the calls' `http_bytes_received`.
    pub http_bytes_received: u64,
}

impl PackStats {
    /// Adds one call: its usage, and its error code when it failed.
    pub(crate) fn add(&mut self, usage: &Usage, error: Option<&str>) {
        self.calls += 1;
        if let Some(code) = error {
            *self.errors.entry(code.to_string()).or_default() += 1;
        }
        self.wall_time_us = self.wall_time_us.saturating_add(usage.wall_time_us);
        self.fuel_consumed = self.fuel_consumed.saturating_add(usage.fuel_consumed);
        self.input_bytes = self.input_bytes.saturating_add(usage.input_bytes);
        self.output_bytes = self.output_bytes.saturating_add(usage.output_bytes);
        self.host_calls = self.host_calls.saturating_add(usage.host_calls);
        self.kv_ops = self.kv_ops.saturating_add(usage.kv_ops);
        self.http_requests = self.http_requests.saturating_add(usage.http_requests);
        self.http_bytes_sent = self.http_bytes_sent.saturating_add(usage.http_bytes_sent);
        self.http_bytes_received = self
            .http_bytes_received
            .saturating_add(usage.http_bytes_received);
    }
}

/// One line a pack logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The level the pack logged it at.
    pub level: LogLevel,
    /// The text, cut to [`MAX_LOG_MESSAGE_BYTES`].
    pub message: String,
}

/// Most log lines one call keeps; later lines are dropped so a chatty pack cannot exhaust
/// host memory.
pub const MAX_LOG_LINES: usize = 1000;

/// Longest log message kept, in bytes; longer ones are cut on a character boundary.
pub const MAX_LOG_MESSAGE_BYTES: usize = 16 * 1024;

/// Usage, log lines and audit trail of one call, successful or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReport {
    /// What the call cost.
    pub usage: Usage,
    /// What the pack logged at or above the configured level, in order.
    pub logs: Vec<LogRecord>,
    /// Every capability the pack used (HTTP, key-value, secrets, host functions), refusals
    /// included, in order.
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// A successful call: the pack's output and its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    /// The bytes the pack returned.
    pub output: Vec<u8>,
    /// What the call cost.
    pub usage: Usage,
    /// What the pack logged.
    pub logs: Vec<LogRecord>,
    /// Every capability the pack used, in order.
    pub audit: Vec<AuditEntry>,
}

impl CallOutput {
    /// The output as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.output).ok()
    }
}
