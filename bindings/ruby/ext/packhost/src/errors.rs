//! The one place a core `packhost::Error` (or a panic) becomes a Ruby exception.
//!
//! The exception classes are defined in Ruby (`lib/packhost/error.rb`) so users read and
//! rescue plain Ruby classes; this module looks the class up by the core's stable code
//! through `Packhost::Error.for_code` and builds the exception with the call's report (its
//! usage, log lines and audit trail).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::error::ErrorType;
use magnus::{function, prelude::*, Error, Exception, KwArgs, RClass, RModule, Ruby, Value};
use packhost::ErrorKind;

use crate::convert::to_ruby;

/// Defines the test-only probe that proves panics become `Packhost::InternalError`.
pub(crate) fn init(_ruby: &Ruby, module: RModule) -> Result<(), Error> {
    module.define_module_function("__panic_probe", function!(panic_probe, 0))?;
    Ok(())
}

/// Panics inside a guarded native method. Used only by the test suite: a bug in the
/// extension must reach Ruby as an exception, never as a crash of the process.
fn panic_probe(ruby: &Ruby) -> Result<(), Error> {
    guard(ruby, |_| -> Result<(), Error> {
        panic!("panic probe: deliberate panic for the tests")
    })
}

/// Runs the body of a native method, turning a panic into `Packhost::InternalError`.
///
/// magnus catches panics too, but raises Ruby's `fatal`, which ends the process; a host
/// must never crash because of packhost.
pub(crate) fn guard<T>(
    ruby: &Ruby,
    body: impl FnOnce(&Ruby) -> Result<T, Error>,
) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(|| body(ruby))) {
        Ok(result) => result,
        Err(payload) => Err(raise(ruby, &panic_error(payload))),
    }
}

/// The core error that stands for a panic: `internal`, with the panic's message.
pub(crate) fn panic_error(payload: Box<dyn Any + Send>) -> packhost::Error {
    packhost::Error::new(
        ErrorKind::Internal,
        format!(
            "packhost panicked (a bug, please report it): {}",
            panic_message(&*payload)
        ),
    )
}

/// The message a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    packhost::panic_message(payload)
        .unwrap_or("a panic without a message")
        .to_string()
}

/// The Ruby exception for a core error, ready to return from a native method.
pub(crate) fn raise(ruby: &Ruby, err: &packhost::Error) -> Error {
    raise_with(ruby, err, None)
}

/// [`raise`] for a call a host function's handler failed by raising `handler_exception`:
/// the `Packhost::HostFunctionError` carries it, and `Pack#call` raises that error with it
/// as its `cause` (Ruby sets a cause only as an exception is raised).
pub(crate) fn raise_with(
    ruby: &Ruby,
    err: &packhost::Error,
    handler_exception: Option<Exception>,
) -> Error {
    match build_exception(ruby, err, handler_exception) {
        Ok(exception) => exception.into(),
        // An interrupt waiting for the call to end (`Timeout.timeout`'s throw) fired while
        // the exception was being built: it goes on, as it would have without packhost.
        Err(interrupted) if matches!(interrupted.error_type(), ErrorType::Jump(_)) => interrupted,
        // Building the exception failed (the Ruby half is not loaded, or is broken): still
        // raise something readable that names the code.
        Err(why) => Error::new(
            ruby.exception_runtime_error(),
            format!("{err} (and Packhost::Error could not be raised: {why})"),
        ),
    }
}

fn build_exception(
    ruby: &Ruby,
    err: &packhost::Error,
    handler_exception: Option<Exception>,
) -> Result<Exception, Error> {
    let module: RModule = ruby.class_object().const_get("Packhost")?;
    let base: RClass = module.const_get("Error")?;
    let class: RClass = base.funcall("for_code", (err.code(),))?;
    let details = ruby.hash_new();
    details.aset(ruby.to_symbol("return_code"), err.return_code())?;
    // Only `Packhost::HostFunctionError` takes these keywords.
    if let Some((function, error_class)) = err.host_function() {
        details.aset(ruby.to_symbol("function"), function)?;
        details.aset(ruby.to_symbol("error_class"), error_class)?;
        details.aset(ruby.to_symbol("handler_exception"), handler_exception)?;
    }
    if let Some(report) = err.report() {
        details.aset(ruby.to_symbol("usage"), to_ruby(ruby, &report.usage)?)?;
        details.aset(ruby.to_symbol("logs"), to_ruby(ruby, &report.logs)?)?;
        details.aset(ruby.to_symbol("audit"), to_ruby(ruby, &report.audit)?)?;
    }
    let exception: Value = class.funcall("new", (err.message(), KwArgs(details)))?;
    Exception::from_value(exception).ok_or_else(|| {
        Error::new(
            ruby.exception_type_error(),
            "Packhost::Error.for_code returned a class that is not an exception",
        )
    })
}
