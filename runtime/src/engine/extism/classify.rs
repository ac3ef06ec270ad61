//! Turns extism's failures, which arrive mostly as message strings, into packhost error kinds.
//!
//! extism 1.30 reports a timeout as the message `timeout`, a memory-limit hit as `oom`,
//! fuel exhaustion as `plugin ran out of fuel`, a denied HTTP host as `HTTP request to … is
//! not allowed`, and marks wasm traps with return code 134. Each mapping is pinned by a test
//! below, so an extism upgrade that changes a string fails loudly instead of mislabelling.

use crate::error::{Error, ErrorKind};

/// The return code extism substitutes when the call ended in a wasm trap.
const TRAP_RETURN_CODE: i32 = 134;

/// Classifies one failed extism call. `return_code` is what extism reported alongside.
pub(crate) fn classify(err: &extism::Error, return_code: i32) -> Error {
    let top = err.to_string();
    let root = err.root_cause().to_string();
    let chain = format!("{err:#}");
    let kind = if top == "timeout" {
        ErrorKind::Timeout
    } else if top == "oom" || root == "oom" {
        ErrorKind::MemoryLimit
    } else if chain.contains("plugin ran out of fuel") {
        ErrorKind::OutOfFuel
    } else if is_denied_http(&chain) {
        ErrorKind::HostDenied
    } else if top.starts_with("Function not found") {
        ErrorKind::ActionNotFound
    } else if return_code == TRAP_RETURN_CODE || return_code == -1 {
        // -1 is a failure outside the guest's own control flow, such as a host function
        // rejecting a bad pointer: the pack misbehaved, so it is reported as a trap.
        ErrorKind::Trap
    } else {
        ErrorKind::PluginError { return_code }
    };
    let message = match kind {
        ErrorKind::Timeout => "the call ran past its time limit".to_string(),
        ErrorKind::MemoryLimit => "the pack tried to grow its memory past the limit".to_string(),
        ErrorKind::OutOfFuel => "the call used up its fuel".to_string(),
        ErrorKind::PluginError { .. } => top,
        // wasmtime puts the backtrace on top and the reason ("wasm trap: …", "HTTP request
        // to … is not allowed") at the root of the chain.
        _ => root.trim().to_string(),
    };
    Error::new(kind, message)
}

fn is_denied_http(chain: &str) -> bool {
    (chain.contains("HTTP request to") && chain.contains("is not allowed"))
        || chain.contains("http_request is not enabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(message: &str, return_code: i32) -> &'static str {
        classify(&extism::Error::msg(message.to_string()), return_code).code()
    }

    #[test]
    fn extism_timeout_message_is_timeout() {
        assert_eq!(code_of("timeout", 0), "timeout");
    }

    #[test]
    fn extism_oom_message_is_memory_limit() {
        assert_eq!(code_of("oom", 134), "memory_limit");
        let wrapped = extism::Error::msg("oom").context("error while executing");
        assert_eq!(classify(&wrapped, 134).code(), "memory_limit");
    }

    #[test]
    fn extism_fuel_message_is_out_of_fuel() {
        assert_eq!(code_of("plugin ran out of fuel", -1), "out_of_fuel");
    }

    #[test]
    fn extism_http_denial_is_host_denied() {
        assert_eq!(
            code_of("HTTP request to https://evil.test/ is not allowed", 134),
            "host_denied"
        );
        assert_eq!(
            code_of(
                "http_request is not enabled, request to https://x.test/ is not allowed",
                134
            ),
            "host_denied"
        );
    }

    #[test]
    fn missing_function_is_action_not_found() {
        assert_eq!(code_of("Function not found: nope", -1), "action_not_found");
    }

    #[test]
    fn trap_return_code_is_trap() {
        let err = classify(
            &extism::Error::msg("wasm trap: wasm `unreachable` instruction executed").context(
                "error while executing at wasm backtrace:\n    0: 0x108e5 - hostile.wasm!trap",
            ),
            134,
        );
        assert_eq!(err.code(), "trap");
        assert_eq!(
            err.message(),
            "wasm trap: wasm `unreachable` instruction executed"
        );
    }

    #[test]
    fn other_return_codes_are_the_plugins_own_errors() {
        let err = classify(&extism::Error::msg("card declined"), 1);
        assert_eq!(err.code(), "plugin_error");
        assert_eq!(err.message(), "card declined");
        assert_eq!(err.return_code(), Some(1));
    }
}
