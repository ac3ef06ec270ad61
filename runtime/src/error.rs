//! The one error type every packhost API returns, and its stable snake_case codes.
//!
//! Hosts (Rust, Node, Python, Ruby) and the conformance suite match on [`Error::code`],
//! never on message text, so a code once published never changes meaning.

use std::fmt;

use crate::usage::CallReport;

/// What went wrong, as a closed set of cases callers can match on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes are not a WebAssembly module packhost can run: malformed, failed
    /// validation, or importing something packhost does not provide.
    InvalidPack,
    /// The pack's embedded manifest is malformed or contradicts the module.
    InvalidManifest,
    /// The host's options could not be read (unknown field, wrong type, bad host pattern).
    InvalidOptions,
    /// The host's trust policy (`trusted_keys`, `require_signature`) refused the pack: it is
    /// unsigned where a signature is required, or its signature is invalid, for other bytes
    /// or by a key the host does not trust.
    UntrustedPack,
    /// The pack exports no action of that name.
    ActionNotFound,
    /// The call ran past its wall-clock limit.
    Timeout,
    /// The call used up its fuel (instruction budget).
    OutOfFuel,
    /// The host cancelled the call through its [`CancelToken`](crate::CancelToken).
    Cancelled,
    /// The pack tried to grow its linear memory past the limit.
    MemoryLimit,
    /// The input is larger than the configured cap; the pack was not called.
    InputTooLarge,
    /// The pack produced more output than the configured cap allows.
    OutputTooLarge,
    /// The pack used a capability the host did not grant (an HTTP host, for example).
    HostDenied,
    /// The pack trapped: `unreachable`, a stack overflow, an out-of-bounds access.
    Trap,
    /// The pack reported an error of its own.
    PluginError {
        /// The non-zero value the export returned.
        return_code: i32,
    },
    /// A host function the pack called failed: its handler raised, returned an error or a
    /// value of the wrong type, or panicked. The pack is not resumed.
    HostFunctionError {
        /// The host function's import name.
        function: String,
        /// The class of the exception the handler raised, where the host has one.
        class: Option<String>,
    },
    /// The pack went past a quota of a capability: a key or value too large, a tenant's
    /// storage full, too many operations in one call.
    QuotaExceeded,
    /// Reading a pack failed (from disk, or from a registry that cannot be reached, refuses
    /// the credentials or lacks the reference), or a capability's storage did.
    Io,
    /// A fault inside packhost itself; a bug to report, never the pack's doing.
    Internal,
}

impl ErrorKind {
    /// The stable snake_case code for this kind, shared by every host.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::InvalidPack => "invalid_pack",
            ErrorKind::InvalidManifest => "invalid_manifest",
            ErrorKind::InvalidOptions => "invalid_options",
            ErrorKind::UntrustedPack => "untrusted_pack",
            ErrorKind::ActionNotFound => "action_not_found",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::InputTooLarge => "input_too_large",
            ErrorKind::OutputTooLarge => "output_too_large",
            ErrorKind::HostDenied => "host_denied",
            ErrorKind::Trap => "trap",
            ErrorKind::PluginError { .. } => "plugin_error",
            ErrorKind::HostFunctionError { .. } => "host_function_error",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The text a panic was raised with (`panic!("...")`, formatted or not), `None` for any
/// other payload. The engines and every binding's FFI guard name a caught panic with it, so
/// a packhost bug reaches the host as an `internal` error saying what panicked.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Every code [`ErrorKind::code`] can return, in a fixed order; bindings and docs list these.
pub const ERROR_CODES: &[&str] = &[
    "invalid_pack",
    "invalid_manifest",
    "invalid_options",
    "untrusted_pack",
    "action_not_found",
    "timeout",
    "out_of_fuel",
    "cancelled",
    "memory_limit",
    "input_too_large",
    "output_too_large",
    "host_denied",
    "trap",
    "plugin_error",
    "host_function_error",
    "quota_exceeded",
    "io",
    "internal",
];

/// A packhost failure: a kind with a stable code, a message for people, and, for failures
/// during a call, the usage and log lines of that call.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    report: Option<Box<CallReport>>,
    /// The id of the flow step whose call failed, for failures of a flow's step.
    flow_step: Option<Box<str>>,
}

impl Error {
    /// The same error with every secret value in its message replaced by `[redacted]`.
    pub(crate) fn redacted(mut self, redactor: &crate::capabilities::secrets::Redactor) -> Self {
        if !redactor.is_empty() {
            self.message = redactor.redact(&self.message);
        }
        self
    }

    /// Makes an error of `kind` with a message for people.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            report: None,
            flow_step: None,
        }
    }

    /// The kind, for matching.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The stable snake_case code, e.g. `"timeout"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The message for people; for `plugin_error` it is the pack's own message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The non-zero return code of the export, for `plugin_error`.
    pub fn return_code(&self) -> Option<i32> {
        match self.kind {
            ErrorKind::PluginError { return_code } => Some(return_code),
            _ => None,
        }
    }

    /// For `host_function_error`: the host function that failed, and the class of the
    /// exception its handler raised (when the host language has one).
    pub fn host_function(&self) -> Option<(&str, Option<&str>)> {
        match &self.kind {
            ErrorKind::HostFunctionError { function, class } => {
                Some((function.as_str(), class.as_deref()))
            }
            _ => None,
        }
    }

    /// Usage and log lines of the failed call, when the failure happened during a call.
    pub fn report(&self) -> Option<&CallReport> {
        self.report.as_deref()
    }

    /// For a failure inside a flow: the id of the step that failed.
    pub fn flow_step(&self) -> Option<&str> {
        self.flow_step.as_deref()
    }

    /// The same error, its message naming the flow and the step it failed in.
    pub(crate) fn in_flow_step(mut self, flow: &str, step: &str) -> Self {
        self.message = format!("flow {flow:?}, step {step:?}: {}", self.message);
        self.flow_step = Some(step.into());
        self
    }

    pub(crate) fn with_report(mut self, report: CallReport) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    pub(crate) fn report_mut(&mut self) -> Option<&mut CallReport> {
        self.report.as_deref_mut()
    }

    pub(crate) fn invalid_pack(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidPack, message)
    }

    pub(crate) fn invalid_manifest(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidManifest, message)
    }

    pub(crate) fn invalid_options(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidOptions, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for Error {}

/// A `Result` whose error is packhost's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_belongs_to_a_kind_and_back() {
        let kinds = [
            ErrorKind::InvalidPack,
            ErrorKind::InvalidManifest,
            ErrorKind::InvalidOptions,
            ErrorKind::UntrustedPack,
            ErrorKind::ActionNotFound,
            ErrorKind::Timeout,
            ErrorKind::OutOfFuel,
            ErrorKind::Cancelled,
            ErrorKind::MemoryLimit,
            ErrorKind::InputTooLarge,
            ErrorKind::OutputTooLarge,
            ErrorKind::HostDenied,
            ErrorKind::Trap,
            ErrorKind::PluginError { return_code: 1 },
            ErrorKind::HostFunctionError {
                function: "lookup".into(),
                class: None,
            },
            ErrorKind::QuotaExceeded,
            ErrorKind::Io,
            ErrorKind::Internal,
        ];
        let codes: Vec<_> = kinds.iter().map(ErrorKind::code).collect();
        assert_eq!(codes, ERROR_CODES);
    }

    #[test]
    fn display_leads_with_the_code() {
        let err = Error::new(ErrorKind::Timeout, "call exceeded 100 ms");
        assert_eq!(err.to_string(), "timeout: call exceeded 100 ms");
    }
}
