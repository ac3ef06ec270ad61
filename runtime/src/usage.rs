//! What a call cost and what it logged: the record usage-based billing is built on.

use serde::{Deserialize, Serialize};

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
    /// The `context` the caller passed (a tenant, a request id), `null` when none: a usage
    /// record names whom the call was for, so billing needs nothing joined back to it.
    #[serde(default)]
    pub context: serde_json::Value,
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

/// Usage and log lines of one call, successful or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReport {
    /// What the call cost.
    pub usage: Usage,
    /// What the pack logged at or above the configured level, in order.
    pub logs: Vec<LogRecord>,
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
}

impl CallOutput {
    /// The output as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.output).ok()
    }
}
