//! The `CancelToken` class: the wrapper's handle on the core's cancel token, which it
//! cancels when a call's `AbortSignal` aborts.

use napi_derive::napi;

/// Cancels the async calls made with it. Cancelled on the JavaScript thread while the calls
/// run on the thread pool, which the core's token allows; cancelling is sticky.
#[napi]
#[derive(Default)]
pub struct CancelToken {
    token: packhost::CancelToken,
}

#[napi]
impl CancelToken {
    /// A token nothing has cancelled yet.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every call running with this token, and every later call made with it: each
    /// ends with `cancelled`.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel` has been called.
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The core's token, shared with the calls it is handed to.
    pub(crate) fn token(&self) -> &packhost::CancelToken {
        &self.token
    }
}
