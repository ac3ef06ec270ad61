//! Turns core results into the plain objects handed to JavaScript, and keeps panics from
//! crossing the FFI boundary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use packhost::{CallOutput, CallReport, Error, ErrorKind};

/// A core failure as data: the wrapper builds the matching `PackError` subclass from it.
#[napi(object)]
pub struct NativeError {
    /// The core's stable snake_case code, e.g. `timeout`.
    pub code: String,
    /// The core's message for people.
    pub message: String,
    /// The export's own non-zero return code, for `plugin_error`.
    pub return_code: Option<i32>,
    /// The host function that failed, for `host_function_error`.
    pub function: Option<String>,
    /// The class of what its handler threw (`TypeError`, a custom error's name), for
    /// `host_function_error` when there was one.
    pub error_class: Option<String>,
    /// `{"usage": ..., "logs": [...], "audit": [...]}` of the failed call, when the failure
    /// happened in one.
    pub report_json: Option<String>,
}

impl From<&Error> for NativeError {
    fn from(err: &Error) -> Self {
        let host_function = err.host_function();
        NativeError {
            code: err.code().to_string(),
            message: err.message().to_string(),
            return_code: err.return_code(),
            function: host_function.map(|(function, _)| function.to_string()),
            error_class: host_function.and_then(|(_, class)| class.map(str::to_string)),
            report_json: err.report().map(report_json),
        }
    }
}

/// One finished call: the output and report on success, the error on failure.
#[napi(object)]
pub struct NativeCallOutcome {
    /// The bytes the pack returned; absent when the call failed.
    pub output: Option<Buffer>,
    /// `{"usage": ..., "logs": [...], "audit": [...]}` of a successful call.
    pub report_json: Option<String>,
    /// What went wrong; absent when the call succeeded.
    pub error: Option<NativeError>,
}

impl From<packhost::Result<CallOutput>> for NativeCallOutcome {
    fn from(result: packhost::Result<CallOutput>) -> Self {
        match result {
            Ok(out) => {
                let report = CallReport {
                    usage: out.usage,
                    logs: out.logs,
                    audit: out.audit,
                };
                NativeCallOutcome {
                    output: Some(out.output.into()),
                    report_json: Some(report_json(&report)),
                    error: None,
                }
            }
            Err(err) => NativeCallOutcome {
                output: None,
                report_json: None,
                error: Some(NativeError::from(&err)),
            },
        }
    }
}

fn report_json(report: &CallReport) -> String {
    // Serializing plain structs of numbers and strings cannot fail; an empty object keeps
    // the wrapper working should it ever.
    serde_json::to_string(report).unwrap_or_else(|_| "{}".to_string())
}

/// Runs `work`, turning a panic inside packhost or this crate into an `internal` error so it
/// never unwinds into Node (which would abort the process).
pub fn guarded<T>(what: &str, work: impl FnOnce() -> packhost::Result<T>) -> packhost::Result<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let detail = packhost::panic_message(payload.as_ref()).unwrap_or("no message");
        Err(Error::new(
            ErrorKind::Internal,
            format!("packhost panicked during {what}: {detail}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_instead_of_unwinding_into_node() {
        let err = guarded("a test", || -> packhost::Result<()> { panic!("boom") }).unwrap_err();
        assert_eq!(err.code(), "internal");
        assert_eq!(err.message(), "packhost panicked during a test: boom");
    }

    #[test]
    fn a_core_error_keeps_its_code_return_code_and_report() {
        let failure = NativeError::from(&Error::new(
            ErrorKind::PluginError { return_code: 7 },
            "declined",
        ));
        assert_eq!(failure.code, "plugin_error");
        assert_eq!(failure.message, "declined");
        assert_eq!(failure.return_code, Some(7));
        assert!(failure.report_json.is_none());
        assert!(failure.function.is_none() && failure.error_class.is_none());
    }

    #[test]
    fn a_successful_outcome_reports_usage_logs_and_audit_trail() {
        let entry = packhost::AuditEntry {
            capability: packhost::Capability::Kv,
            operation: "get".into(),
            target: "a".into(),
            outcome: packhost::AuditOutcome::Ok,
            status: None,
            bytes_sent: 0,
            bytes_received: 3,
            reason: None,
        };
        let called: packhost::Result<CallOutput> = Ok(CallOutput {
            output: b"xyz".to_vec(),
            usage: packhost::Usage {
                action: "run".into(),
                ..Default::default()
            },
            logs: Vec::new(),
            audit: vec![entry],
        });
        let outcome = NativeCallOutcome::from(called);
        let report: serde_json::Value =
            serde_json::from_str(outcome.report_json.as_deref().unwrap()).unwrap();
        assert_eq!(report["usage"]["action"], "run");
        assert_eq!(report["logs"], serde_json::json!([]));
        assert_eq!(
            report["audit"],
            serde_json::json!([{
                "capability": "kv", "operation": "get", "target": "a", "outcome": "ok",
                "bytes_sent": 0, "bytes_received": 3
            }])
        );
    }

    #[test]
    fn a_host_function_error_names_the_function_and_the_class_its_handler_threw() {
        let failure = NativeError::from(&Error::new(
            ErrorKind::HostFunctionError {
                function: "lookup".into(),
                class: Some("LookupError".into()),
            },
            "host function \"lookup\" failed: LookupError: no such customer",
        ));
        assert_eq!(failure.code, "host_function_error");
        assert_eq!(failure.function.as_deref(), Some("lookup"));
        assert_eq!(failure.error_class.as_deref(), Some("LookupError"));
    }
}
