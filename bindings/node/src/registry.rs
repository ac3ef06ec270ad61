//! `push` and `pull` for Node: packhost-oci's, on the libuv thread pool, what they did
//! handed back as JSON text and their failures as a [`NativeError`].

use napi::bindgen_prelude::AsyncTask;
use napi::{Either, Env, Task};
use napi_derive::napi;

use crate::outcome::{guarded, NativeError};

/// One registry operation, run off the JavaScript thread.
pub enum RegistryTask {
    /// Publish the pack at `path` to `reference`, with `signature` (else `PATH.sig`).
    Push {
        /// The .wasm file.
        path: String,
        /// `registry/name:tag`, `oci://` optional.
        reference: String,
        /// The signature file to publish, if not `PATH.sig`.
        signature: Option<String>,
    },
    /// Pull `reference` into the shared store.
    Pull {
        /// `registry/name:tag` or `…@sha256:…`, `oci://` optional.
        reference: String,
    },
}

impl Task for RegistryTask {
    type Output = packhost::Result<String>;
    type JsValue = Either<String, NativeError>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guarded("registry", || match self {
            RegistryTask::Push {
                path,
                reference,
                signature,
            } => packhost_oci::push(
                path.as_ref(),
                reference,
                signature.as_deref().map(std::path::Path::new),
            )
            .map(|pushed| pushed.to_json()),
            RegistryTask::Pull { reference } => {
                packhost_oci::pull_to_default_store(reference).map(|pulled| pulled.to_json())
            }
        }))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Ok(json) => Either::A(json),
            Err(err) => Either::B(NativeError::from(&err)),
        })
    }
}

/// Publishes a pack to an OCI registry; resolves to what was pushed, as JSON text.
#[napi(ts_return_type = "Promise<string | NativeError>")]
pub fn push_pack(
    path: String,
    reference: String,
    signature: Option<String>,
) -> AsyncTask<RegistryTask> {
    AsyncTask::new(RegistryTask::Push {
        path,
        reference,
        signature,
    })
}

/// Pulls a pack into the local store and pins the reference; resolves to what was pulled,
/// as JSON text.
#[napi(ts_return_type = "Promise<string | NativeError>")]
pub fn pull_pack(reference: String) -> AsyncTask<RegistryTask> {
    AsyncTask::new(RegistryTask::Pull { reference })
}
