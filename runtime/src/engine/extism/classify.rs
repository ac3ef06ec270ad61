//! Turns extism's failures, which arrive mostly as message strings, into packhost error kinds.
//!
//! extism 1.30 reports a timeout as the message `timeout`, a memory-limit hit as `oom`, fuel
//! exhaustion as `plugin ran out of fuel`, and marks wasm traps with return code 134. A pack
//! can set any of those strings as its own error message, so a limit's string counts only
//! together with what the engine measured itself ([`Facts`]): a pack that fails saying
//! `timeout` before its time is up has failed, not timed out. (For `oom` the return code
//! also counts: a pack that returns -1 after saying `oom` is reported as at its memory
//! limit, which it could as well reach for real.) Each mapping is pinned by a test
//! below, so an extism upgrade that changes a string fails loudly instead of mislabelling.

use crate::error::{Error, ErrorKind};

/// The return code extism substitutes when the call ended in a wasm trap.
const TRAP_RETURN_CODE: i32 = 134;

/// What the engine measured about a failed call, independently of extism's message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Facts {
    /// The call ran for at least its time limit.
    pub(crate) deadline_passed: bool,
    /// The memory meter refused a growth during the call.
    pub(crate) memory_refused: bool,
    /// The call burnt all the fuel it was given.
    pub(crate) fuel_exhausted: bool,
    /// The host cancelled the call's token (extism's cancel also reads `timeout`).
    pub(crate) cancelled: bool,
}

/// Classifies one failed extism call. `return_code` is what extism reported alongside.
pub(crate) fn classify(err: &extism::Error, return_code: i32, facts: Facts) -> Error {
    // Host functions of our own (the shadowed HTTP ones) fail with a packhost error, which
    // is already classified.
    if let Some(ours) = err.chain().find_map(|cause| cause.downcast_ref::<Error>()) {
        return Error::new(ours.kind().clone(), ours.message());
    }
    // A WASI command's `proc_exit` with a non-zero code and no error message of its own.
    if let Some(exit) = err.downcast_ref::<wasi_common::I32Exit>() {
        return Error::new(
            ErrorKind::PluginError {
                return_code: exit.0,
            },
            crate::engine::exited_with(exit.0),
        );
    }
    let top = err.to_string();
    let root = err.root_cause().to_string();
    let chain = format!("{err:#}");
    // An interrupt (extism says `timeout` for a timeout and a cancel alike) is a trap; a
    // pack's own `timeout` message comes with its own return code. The deadline is looked
    // at first, as the native engine's epoch callback does.
    let interrupted = top == "timeout" && return_code == TRAP_RETURN_CODE;
    let kind = if interrupted && facts.deadline_passed {
        ErrorKind::Timeout
    } else if interrupted && facts.cancelled {
        ErrorKind::Cancelled
    } else if (top == "oom" || root == "oom")
        && (facts.memory_refused || return_code == TRAP_RETURN_CODE || return_code == -1)
    {
        // Our meter sees ordinary growth first; a single growth past the limit is refused
        // by extism's own limiter before it, and fails the call outside the guest's control
        // flow (code -1). A pack's own "oom" comes with the code its export returned.
        ErrorKind::MemoryLimit
    } else if chain.contains("plugin ran out of fuel") && facts.fuel_exhausted {
        ErrorKind::OutOfFuel
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
        ErrorKind::Cancelled => crate::cancel::CancelToken::error().message().to_string(),
        ErrorKind::MemoryLimit => "the pack tried to grow its memory past the limit".to_string(),
        ErrorKind::OutOfFuel => "the call used up its fuel".to_string(),
        ErrorKind::PluginError { .. } => top,
        // wasmtime puts the backtrace on top and the reason ("wasm trap: …") at the root of
        // the chain.
        _ => root.trim().to_string(),
    };
    Error::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEASURED: Facts = Facts {
        deadline_passed: true,
        memory_refused: true,
        fuel_exhausted: true,
        cancelled: false,
    };

    fn code_of(message: &str, return_code: i32, facts: Facts) -> &'static str {
        classify(&extism::Error::msg(message.to_string()), return_code, facts).code()
    }

    #[test]
    fn extism_timeout_message_is_timeout_once_the_deadline_passed() {
        assert_eq!(code_of("timeout", 134, MEASURED), "timeout");
        // A pack's own error message "timeout", before its time was up.
        assert_eq!(code_of("timeout", 1, Facts::default()), "plugin_error");
    }

    #[test]
    fn extism_timeout_message_is_cancelled_when_the_host_cancelled() {
        let cancelled = Facts {
            cancelled: true,
            ..Facts::default()
        };
        assert_eq!(code_of("timeout", 134, cancelled), "cancelled");
        // A pack's own "timeout" with its own code, whenever the host cancelled.
        assert_eq!(code_of("timeout", 1, cancelled), "plugin_error");
        // Past its deadline the call timed out, cancelled or not.
        let both = Facts {
            deadline_passed: true,
            ..cancelled
        };
        assert_eq!(code_of("timeout", 134, both), "timeout");
    }

    #[test]
    fn extism_oom_message_is_memory_limit_when_growth_was_refused() {
        assert_eq!(code_of("oom", 134, MEASURED), "memory_limit");
        assert_eq!(code_of("oom", -1, Facts::default()), "memory_limit");
        let wrapped = extism::Error::msg("oom").context("error while executing");
        assert_eq!(classify(&wrapped, 134, MEASURED).code(), "memory_limit");
        assert_eq!(code_of("oom", 1, Facts::default()), "plugin_error");
    }

    #[test]
    fn extism_fuel_message_is_out_of_fuel_when_the_fuel_is_gone() {
        assert_eq!(
            code_of("plugin ran out of fuel", -1, MEASURED),
            "out_of_fuel"
        );
        assert_eq!(
            code_of("plugin ran out of fuel", 1, Facts::default()),
            "plugin_error"
        );
    }

    #[test]
    fn our_own_host_function_errors_keep_their_kind() {
        let ours = Error::new(ErrorKind::HostDenied, "HTTP request to x is not allowed: y");
        let err = extism::Error::new(ours).context("error while executing at wasm backtrace");
        let classified = classify(&err, 134, Facts::default());
        assert_eq!(classified.code(), "host_denied");
        assert_eq!(classified.message(), "HTTP request to x is not allowed: y");
    }

    #[test]
    fn missing_function_is_action_not_found() {
        assert_eq!(
            code_of("Function not found: nope", -1, Facts::default()),
            "action_not_found"
        );
    }

    #[test]
    fn trap_return_code_is_trap() {
        let err = classify(
            &extism::Error::msg("wasm trap: wasm `unreachable` instruction executed").context(
                "error while executing at wasm backtrace:\n    0: 0x108e5 - hostile.wasm!trap",
            ),
            134,
            Facts::default(),
        );
        assert_eq!(err.code(), "trap");
        assert_eq!(
            err.message(),
            "wasm trap: wasm `unreachable` instruction executed"
        );
    }

    #[test]
    fn other_return_codes_are_the_plugins_own_errors() {
        let err = classify(&extism::Error::msg("card declined"), 1, Facts::default());
        assert_eq!(err.code(), "plugin_error");
        assert_eq!(err.message(), "card declined");
        assert_eq!(err.return_code(), Some(1));
    }
}
