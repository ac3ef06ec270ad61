//! Host functions written in Kotlin or Java: `HostHandler`, the foreign trait the Kotlin
//! layer implements for each function, and `NativeHostFunction`, one handler bound to its
//! import name. The handler runs on the thread of the call that made the pack call it (a
//! flow's parallel branch runs it on the branch's thread, which JNA attaches to the JVM).

use std::sync::Arc;

use packhost::{HostFnError, HostFunction};

/// What a host function sees of the call that reached it.
#[derive(uniffi::Record)]
pub struct HostCallInfo {
    /// The caller's `context` as JSON text; absent when the call had none.
    pub context_json: Option<String>,
    /// The calling pack's name (from its manifest).
    pub pack_name: String,
    /// The calling pack's id.
    pub pack_id: String,
    /// The host function's import name.
    pub function: String,
}

/// A host function's handler failed; the call ends with `host_function_error`.
#[derive(Debug, uniffi::Error)]
pub enum HostHandlerFailure {
    /// The handler threw.
    Raised {
        /// The class of what it threw (`simpleName`).
        class_name: String,
        /// Its message.
        reason: String,
    },
}

impl std::fmt::Display for HostHandlerFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let HostHandlerFailure::Raised { class_name, reason } = self;
        write!(formatter, "{class_name}: {reason}")
    }
}

impl std::error::Error for HostHandlerFailure {}

impl From<uniffi::UnexpectedUniFFICallbackError> for HostHandlerFailure {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HostHandlerFailure::Raised {
            class_name: "UnexpectedUniFFICallbackError".to_string(),
            reason: error.reason,
        }
    }
}

/// One host function's body, implemented on the JVM: bytes in, bytes out.
#[uniffi::export(with_foreign)]
pub trait HostHandler: Send + Sync {
    /// Handles one call from a pack.
    fn handle(&self, input: Vec<u8>, call: HostCallInfo) -> Result<Vec<u8>, HostHandlerFailure>;
}

/// A handler lent under an import name and namespace.
#[derive(uniffi::Object)]
pub struct NativeHostFunction {
    name: String,
    namespace: String,
    handler: Arc<dyn HostHandler>,
}

#[uniffi::export]
impl NativeHostFunction {
    /// Lends `handler` as the import `namespace`.`name` (Extism PDKs import from
    /// `extism:host/user`).
    #[uniffi::constructor]
    pub fn new(name: String, namespace: String, handler: Arc<dyn HostHandler>) -> Arc<Self> {
        Arc::new(NativeHostFunction {
            name,
            namespace,
            handler,
        })
    }
}

impl NativeHostFunction {
    /// The core host function that calls this handler.
    pub(crate) fn core(&self) -> HostFunction {
        let handler = Arc::clone(&self.handler);
        HostFunction::bytes(self.name.clone(), move |call, input| {
            let info = HostCallInfo {
                context_json: (!call.context.is_null()).then(|| call.context.to_string()),
                pack_name: call.pack_name.to_string(),
                pack_id: call.pack_id.to_string(),
                function: call.function.to_string(),
            };
            handler.handle(input.to_vec(), info).map_err(
                |HostHandlerFailure::Raised { class_name, reason }| {
                    HostFnError::with_class(reason, class_name)
                },
            )
        })
        .with_namespace(self.namespace.clone())
    }
}
