//! What a call hands back to Python: `CallResult` (output, usage, logs, audit trail),
//! `Usage` and `LogRecord`, all immutable.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// The result of a successful call: the pack's output with the call's usage, logs and
/// audit trail.
#[pyclass(module = "packhost._native", frozen)]
pub struct CallResult {
    output: Py<PyBytes>,
    /// Kept as plain Rust values: the Python `Usage` object is made only when asked for,
    /// which keeps one allocation off every call.
    usage: Usage,
    logs: Py<PyTuple>,
    /// Kept as the core's entries: they become dicts only when asked for (most calls use
    /// no capability, and most callers never read the trail).
    audit: Vec<packhost::AuditEntry>,
}

impl CallResult {
    /// Converts a call's output and report into Python objects, once, while the GIL is held.
    pub fn new(py: Python<'_>, output: &[u8], report: packhost::CallReport) -> PyResult<Self> {
        Ok(CallResult {
            output: PyBytes::new(py, output).unbind(),
            usage: Usage::from(report.usage),
            logs: log_records(py, &report.logs)?.unbind(),
            audit: report.audit,
        })
    }
}

#[pymethods]
impl CallResult {
    /// The bytes the pack returned.
    #[getter]
    fn output(&self, py: Python<'_>) -> Py<PyBytes> {
        self.output.clone_ref(py)
    }

    /// The output decoded as UTF-8; raises `UnicodeDecodeError` when it is not text.
    #[getter]
    fn text<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        let bytes = self.output.bind(py).as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(PyString::new(py, text)),
            // Let Python build the error so it carries the usual position and reason.
            Err(_) => Ok(self
                .output
                .bind(py)
                .call_method1("decode", ("utf-8",))?
                .cast_into()?),
        }
    }

    /// The output parsed as JSON (with Python's `json.loads`).
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_loads(py, self.output.bind(py))
    }

    /// What the call cost.
    #[getter]
    fn usage(&self) -> Usage {
        self.usage.clone()
    }

    /// What the pack logged, in order (also sent to the `logging` module).
    #[getter]
    fn logs(&self, py: Python<'_>) -> Py<PyTuple> {
        self.logs.clone_ref(py)
    }

    /// Every capability the pack used (HTTP, key-value, secrets, host functions), refusals
    /// included, in order: a fresh list of plain dicts each time.
    #[getter]
    fn audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        audit_entries(py, &self.audit)
    }

    fn __bytes__(&self, py: Python<'_>) -> Py<PyBytes> {
        self.output.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let usage = &self.usage;
        format!(
            "CallResult(output_bytes={}, fuel_consumed={}, wall_time_us={}, logs={})",
            usage.output_bytes,
            usage.fuel_consumed,
            usage.wall_time_us,
            self.logs.bind(py).len()
        )
    }
}

/// The cost of one call, as the core measured it, and the context it was for.
#[pyclass(module = "packhost._native", frozen, eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct Usage {
    /// Wall-clock time inside the engine, in microseconds.
    #[pyo3(get)]
    wall_time_us: u64,
    /// Fuel burnt by the call.
    #[pyo3(get)]
    fuel_consumed: u64,
    /// Largest total linear memory of the instance during the call, in bytes.
    #[pyo3(get)]
    peak_memory_bytes: u64,
    /// Size of the input, in bytes.
    #[pyo3(get)]
    input_bytes: u64,
    /// Size of the output, in bytes (0 when the call failed).
    #[pyo3(get)]
    output_bytes: u64,
    /// Host functions the pack called.
    #[pyo3(get)]
    host_calls: u64,
    /// Time inside host functions' handlers, in microseconds.
    #[pyo3(get)]
    host_time_us: u64,
    /// Key-value operations the pack made, refused ones included.
    #[pyo3(get)]
    kv_ops: u64,
    /// HTTP requests the pack made, refused ones included.
    #[pyo3(get)]
    http_requests: u64,
    /// Bytes of HTTP request bodies the pack sent.
    #[pyo3(get)]
    http_bytes_sent: u64,
    /// Bytes of HTTP response bodies the pack received.
    #[pyo3(get)]
    http_bytes_received: u64,
    /// The call's context as JSON text, `None` when it had none: parsed only when read.
    context_json: Option<Arc<str>>,
    /// The pack's name, from its manifest.
    #[pyo3(get)]
    pack_name: String,
    /// The pack's version, from its manifest.
    #[pyo3(get)]
    pack_version: String,
    /// The pack's id: the SHA-256 of its module, in lowercase hex.
    #[pyo3(get)]
    pack_id: String,
    /// The action called.
    #[pyo3(get)]
    action: String,
}

impl From<packhost::Usage> for Usage {
    fn from(usage: packhost::Usage) -> Self {
        Usage {
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
            context_json: (!usage.context.is_null()).then(|| usage.context.to_string().into()),
            pack_name: usage.pack_name,
            pack_version: usage.pack_version,
            pack_id: usage.pack_id,
            action: usage.action,
        }
    }
}

#[pymethods]
impl Usage {
    /// The `context` the call was made with (parsed from JSON, so a fresh object each
    /// time), `None` when none.
    #[getter]
    fn context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.context_json {
            Some(json) => json_loads(py, PyString::new(py, json).as_any()),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// The fields as a plain dict, e.g. for a billing record or `json.dumps`.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let fields = PyDict::new(py);
        for (name, value) in [
            ("wall_time_us", self.wall_time_us),
            ("fuel_consumed", self.fuel_consumed),
            ("peak_memory_bytes", self.peak_memory_bytes),
            ("input_bytes", self.input_bytes),
            ("output_bytes", self.output_bytes),
            ("host_calls", self.host_calls),
            ("host_time_us", self.host_time_us),
            ("kv_ops", self.kv_ops),
            ("http_requests", self.http_requests),
            ("http_bytes_sent", self.http_bytes_sent),
            ("http_bytes_received", self.http_bytes_received),
        ] {
            fields.set_item(name, value)?;
        }
        fields.set_item("context", self.context(py)?)?;
        for (name, value) in [
            ("pack_name", &self.pack_name),
            ("pack_version", &self.pack_version),
            ("pack_id", &self.pack_id),
            ("action", &self.action),
        ] {
            fields.set_item(name, value)?;
        }
        Ok(fields)
    }

    fn __repr__(&self) -> String {
        format!(
            "Usage(wall_time_us={}, fuel_consumed={}, peak_memory_bytes={}, input_bytes={}, output_bytes={}, host_calls={}, host_time_us={}, kv_ops={}, http_requests={}, http_bytes_sent={}, http_bytes_received={}, context={}, pack_name={:?}, pack_version={:?}, pack_id={:?}, action={:?})",
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
            self.context_json.as_deref().unwrap_or("null"),
            self.pack_name,
            self.pack_version,
            self.pack_id,
            self.action
        )
    }
}

/// `json.loads(text)`, with the function imported once.
fn json_loads<'py>(py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    JSON_LOADS.import(py, "json", "loads")?.call1((text,))
}

/// The core's audit entries as a new list of plain dicts, with the keys and values the
/// core's serde form gives them (`capability`, `operation`, `target`, `outcome`, `status`
/// when set, `bytes_sent`, `bytes_received`, `reason` when set).
pub fn audit_entries<'py>(
    py: Python<'py>,
    entries: &[packhost::AuditEntry],
) -> PyResult<Bound<'py, PyAny>> {
    if entries.is_empty() {
        return Ok(PyList::empty(py).into_any());
    }
    let json = serde_json::to_string(entries)
        .map_err(|err| PyTypeError::new_err(format!("audit trail does not serialize: {err}")))?;
    json_loads(py, PyString::new(py, &json).as_any())
}

/// One line a pack logged.
#[pyclass(module = "packhost._native", frozen, get_all, eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `"trace"`, `"debug"`, `"info"`, `"warn"` or `"error"`.
    level: &'static str,
    /// The text the pack logged.
    message: String,
}

#[pymethods]
impl LogRecord {
    fn __repr__(&self) -> String {
        format!(
            "LogRecord(level={:?}, message={:?})",
            self.level, self.message
        )
    }
}

/// The core's log records as a tuple of `LogRecord`.
pub fn log_records<'py>(
    py: Python<'py>,
    logs: &[packhost::LogRecord],
) -> PyResult<Bound<'py, PyTuple>> {
    let records = logs
        .iter()
        .map(|record| {
            Py::new(
                py,
                LogRecord {
                    level: record.level.as_str(),
                    message: record.message.clone(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, records)
}
