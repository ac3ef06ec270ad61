//! The `NativePack` class and the load and call tasks that run on the libuv thread pool.

use napi::bindgen_prelude::{AsyncTask, Buffer, BufferSlice, Either, Float64ArraySlice};
use napi::{Env, Task};
use napi_derive::napi;
use packhost::{CallOutput, Pack, PackOptions};

use crate::outcome::{guarded, NativeCallOutcome, NativeError};

/// A loaded pack. Wraps the core's `Pack`, which is cheap to clone and safe to call from
/// many pool threads at once.
#[napi]
pub struct NativePack {
    pack: Pack,
    /// Log lines of the last sync call, kept until JavaScript takes them.
    waiting_logs: std::sync::Mutex<Option<String>>,
}

/// Where to load a pack from: a file path or the module's bytes.
enum Source {
    Path(String),
    Bytes(Vec<u8>),
}

impl From<Either<String, Buffer>> for Source {
    fn from(source: Either<String, Buffer>) -> Self {
        match source {
            Either::A(path) => Source::Path(path),
            Either::B(bytes) => Source::Bytes(bytes.to_vec()),
        }
    }
}

fn load(source: &Source, options_json: Option<&str>) -> packhost::Result<Pack> {
    guarded("load", || {
        // An empty object is the core's own way of saying "the defaults".
        let options = PackOptions::from_json(options_json.unwrap_or("{}"))?;
        match source {
            Source::Path(path) => Pack::load_file(path, options),
            Source::Bytes(bytes) => Pack::load(bytes, options),
        }
    })
}

fn loaded(result: packhost::Result<Pack>) -> Either<NativePack, NativeError> {
    match result {
        Ok(pack) => Either::A(NativePack {
            pack,
            waiting_logs: Default::default(),
        }),
        Err(err) => Either::B(NativeError::from(&err)),
    }
}

/// Loads a pack on the calling thread. `options_json` is the options object as JSON text,
/// absent for the defaults.
#[napi]
pub fn load_pack_sync(
    source: Either<String, Buffer>,
    options_json: Option<String>,
) -> Either<NativePack, NativeError> {
    loaded(load(&Source::from(source), options_json.as_deref()))
}

/// Loads a pack on the libuv thread pool.
#[napi(ts_return_type = "Promise<NativePack | NativeError>")]
pub fn load_pack(
    source: Either<String, Buffer>,
    options_json: Option<String>,
) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask {
        source: Source::from(source),
        options_json,
    })
}

/// A load running on the thread pool.
pub struct LoadTask {
    source: Source,
    options_json: Option<String>,
}

impl Task for LoadTask {
    type Output = packhost::Result<Pack>;
    type JsValue = Either<NativePack, NativeError>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(load(&self.source, self.options_json.as_deref()))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(loaded(output))
    }
}

fn input_bytes(input: Either<String, Buffer>) -> Vec<u8> {
    match input {
        Either::A(text) => text.into_bytes(),
        Either::B(bytes) => bytes.to_vec(),
    }
}

/// How many numbers `call_sync` writes into its `usage` array: the five usage fields, the
/// log flag and the output length.
const USAGE_FIELDS: usize = 7;

fn write_usage(usage: &packhost::Usage, into: &mut [f64]) {
    // Counters stay exact as f64 up to 2^53, far beyond any one call's fuel or bytes.
    into[0] = usage.wall_time_us as f64;
    into[1] = usage.fuel_consumed as f64;
    into[2] = usage.peak_memory_bytes as f64;
    into[3] = usage.input_bytes as f64;
    into[4] = usage.output_bytes as f64;
}

fn call(pack: &Pack, action: &str, input: &[u8]) -> packhost::Result<CallOutput> {
    guarded("call", || pack.call(action, input))
}

#[napi]
impl NativePack {
    /// The SHA-256 of the module bytes, in lowercase hex.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.pack.id().to_string()
    }

    /// The pack's manifest as JSON text, as the core serializes it.
    #[napi(getter)]
    pub fn manifest_json(&self) -> String {
        serde_json::to_string(self.pack.manifest()).unwrap_or_else(|_| "null".to_string())
    }

    /// The names of the actions the pack can be called with, in manifest order.
    #[napi(getter)]
    pub fn actions(&self) -> Vec<String> {
        self.pack
            .actions()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Calls `action` on the calling thread, blocking it for up to the call's timeout. On
    /// success the usage goes into `usage` (wall_time_us, fuel_consumed, peak_memory_bytes,
    /// input_bytes, output_bytes, 1 when log lines wait in `takeLogsJson`, then the output
    /// length) and the output into `scratch` when it fits, in which case nothing is returned:
    /// the hot path creates no JavaScript object at all. A larger output comes back as a
    /// Buffer, a failure as the full outcome.
    #[napi(ts_return_type = "Buffer | NativeCallOutcome | undefined")]
    pub fn call_sync<'env>(
        &self,
        env: &'env Env,
        action: String,
        input: Either<String, BufferSlice<'env>>,
        mut usage: Float64ArraySlice<'env>,
        mut scratch: BufferSlice<'env>,
    ) -> napi::Result<Option<Either<BufferSlice<'env>, NativeCallOutcome>>> {
        // SAFETY: the array belongs to the JavaScript wrapper and cannot be touched while
        // this synchronous call runs on its thread.
        let usage = unsafe { usage.as_mut() };
        if usage.len() < USAGE_FIELDS {
            return Err(napi::Error::from_reason("the usage array is too short"));
        }
        let bytes: &[u8] = match &input {
            Either::A(text) => text.as_bytes(),
            Either::B(buffer) => buffer,
        };
        let scratch: &mut [u8] = &mut scratch;
        let called = guarded("call", || {
            self.pack.call_with(&action, bytes, |output| {
                if let Some(room) = scratch.get_mut(..output.len()) {
                    room.copy_from_slice(output);
                    None
                } else {
                    Some(BufferSlice::copy_from(env, output))
                }
            })
        });
        match called {
            Ok((output, report)) => {
                write_usage(&report.usage, usage);
                usage[5] = if report.logs.is_empty() {
                    0.0
                } else {
                    let logs = serde_json::to_string(&report.logs).unwrap_or_default();
                    *self.waiting_logs.lock().unwrap_or_else(|e| e.into_inner()) = Some(logs);
                    1.0
                };
                usage[6] = report.usage.output_bytes as f64;
                output.transpose().map(|buffer| buffer.map(Either::A))
            }
            Err(err) => Ok(Some(Either::B(Err(err).into()))),
        }
    }

    /// The log lines of the last sync call, as JSON, when its usage said some were waiting.
    #[napi]
    pub fn take_logs_json(&self) -> Option<String> {
        self.waiting_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Calls `action` on the libuv thread pool; the promise resolves with the outcome.
    #[napi(ts_return_type = "Promise<NativeCallOutcome>")]
    pub fn call(&self, action: String, input: Either<String, Buffer>) -> AsyncTask<CallTask> {
        AsyncTask::new(CallTask {
            pack: self.pack.clone(),
            action,
            input: input_bytes(input),
        })
    }
}

/// A call running on the thread pool. It holds its own handle on the pack, so the JS object
/// may be collected while the call runs.
pub struct CallTask {
    pack: Pack,
    action: String,
    input: Vec<u8>,
}

impl Task for CallTask {
    type Output = packhost::Result<CallOutput>;
    type JsValue = NativeCallOutcome;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(call(&self.pack, &self.action, &self.input))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.into())
    }
}
