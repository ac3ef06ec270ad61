//! The `NativePack` class and the load and call tasks that run on the libuv thread pool.

use napi::bindgen_prelude::{
    AsyncTask, Buffer, BufferSlice, Either, Either3, Float64ArraySlice, FromNapiValue, TypeName,
};
use napi::{sys, Env, Task, ValueType};
use napi_derive::napi;
use packhost::{CallOptions, CallOutput, CallReport, Pack, PackOptions};

use crate::cancel::CancelToken;
use crate::host_fn::{Dispatcher, HostBridge, NativeHostFunctions, SyncCall};
use crate::outcome::{guarded, NativeCallOutcome, NativeError};

/// A loaded pack. Wraps the core's `Pack`, which is cheap to clone and safe to call from
/// many pool threads at once.
#[napi]
pub struct NativePack {
    pack: Pack,
    /// Log lines and audit entries of the last sync call, kept until JavaScript takes them.
    waiting_report: std::sync::Mutex<Option<String>>,
}

/// A sync call's input: text (sent as UTF-8) or a Buffer, told apart by one type check. An
/// `Either` would try each type in turn, and a failed try formats an error message: a cost
/// on every call whose input is of the second type.
pub enum CallInput<'env> {
    Text(String),
    Bytes(BufferSlice<'env>),
}

impl FromNapiValue for CallInput<'_> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut kind = 0;
        // SAFETY: `env` and `value` are the arguments napi-rs received for this call.
        let status = unsafe { sys::napi_typeof(env, value, &mut kind) };
        if status == sys::Status::napi_ok && ValueType::from(kind) == ValueType::String {
            // SAFETY: as above; the value is a string.
            unsafe { String::from_napi_value(env, value) }.map(CallInput::Text)
        } else {
            // SAFETY: as above; anything but a Buffer is refused with napi's own error.
            unsafe { BufferSlice::from_napi_value(env, value) }.map(CallInput::Bytes)
        }
    }
}

impl TypeName for CallInput<'_> {
    fn type_name() -> &'static str {
        "string | Buffer"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

/// An Extism manifest as the wrapper hands it over: JSON text, read by the core.
#[napi(object)]
pub struct ExtismManifestSource {
    /// The manifest object as JSON text.
    pub extism_manifest: String,
}

/// Where to load a pack from: a file path, the module's bytes, or an Extism manifest.
enum Source {
    Path(String),
    Bytes(Vec<u8>),
    ExtismManifest(String),
}

impl From<Either3<String, Buffer, ExtismManifestSource>> for Source {
    fn from(source: Either3<String, Buffer, ExtismManifestSource>) -> Self {
        match source {
            Either3::A(path) => Source::Path(path),
            Either3::B(bytes) => Source::Bytes(bytes.to_vec()),
            Either3::C(manifest) => Source::ExtismManifest(manifest.extism_manifest),
        }
    }
}

fn load(
    source: &Source,
    options_json: Option<&str>,
    host: Option<HostBridge>,
) -> packhost::Result<Pack> {
    guarded("load", || {
        // An empty object is the core's own way of saying "the defaults".
        let options = PackOptions::from_json(options_json.unwrap_or("{}"))?;
        packhost_oci::register();
        let functions = host
            .map(|host| host.functions(&options))
            .unwrap_or_default();
        match source {
            Source::Path(path) => Pack::load_reference(path, options, functions),
            Source::Bytes(bytes) => Pack::load_with(bytes, options, functions),
            Source::ExtismManifest(json) => Pack::load_extism_manifest(json, options, functions),
        }
    })
}

fn loaded(result: packhost::Result<Pack>) -> Either<NativePack, NativeError> {
    match result {
        Ok(pack) => Either::A(NativePack {
            pack,
            waiting_report: Default::default(),
        }),
        Err(err) => Either::B(NativeError::from(&err)),
    }
}

/// Loads a pack on the calling thread. `options_json` is the options object as JSON text,
/// absent for the defaults; `host` lists the host functions the wrapper lends, whose calls
/// go to `dispatcher` (the wrapper's `dispatchHostCall`).
#[napi]
pub fn load_pack_sync(
    source: Either3<String, Buffer, ExtismManifestSource>,
    options_json: Option<String>,
    host: Option<NativeHostFunctions>,
    #[napi(
        ts_arg_type = "((err: Error | null, table: number, index: number, input: Buffer, callJson: string | null, reply: HostReply | null) => Buffer | HostFailure | undefined) | undefined | null"
    )]
    dispatcher: Option<Dispatcher<'_>>,
) -> Either<NativePack, NativeError> {
    let source = Source::from(source);
    loaded(prepare(host, dispatcher).and_then(|host| load(&source, options_json.as_deref(), host)))
}

/// Loads a pack on the libuv thread pool; the host functions are prepared here, on the
/// JavaScript thread, where Node lets the dispatcher be referenced.
#[napi(ts_return_type = "Promise<NativePack | NativeError>")]
pub fn load_pack(
    source: Either3<String, Buffer, ExtismManifestSource>,
    options_json: Option<String>,
    host: Option<NativeHostFunctions>,
    #[napi(
        ts_arg_type = "((err: Error | null, table: number, index: number, input: Buffer, callJson: string | null, reply: HostReply | null) => Buffer | HostFailure | undefined) | undefined | null"
    )]
    dispatcher: Option<Dispatcher<'_>>,
) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask {
        source: Source::from(source),
        options_json,
        host: prepare(host, dispatcher),
    })
}

/// Prepares the host functions on the JavaScript thread (see [`HostBridge::prepare`]).
fn prepare(
    host: Option<NativeHostFunctions>,
    dispatcher: Option<Dispatcher<'_>>,
) -> packhost::Result<Option<HostBridge>> {
    guarded("load", || HostBridge::prepare(host, dispatcher))
}

/// A load running on the thread pool.
pub struct LoadTask {
    source: Source,
    options_json: Option<String>,
    /// The host functions, prepared on the JavaScript thread, or why they could not be.
    host: packhost::Result<Option<HostBridge>>,
}

impl Task for LoadTask {
    type Output = packhost::Result<Pack>;
    type JsValue = Either<NativePack, NativeError>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let host = std::mem::replace(&mut self.host, Ok(None));
        Ok(host.and_then(|host| load(&self.source, self.options_json.as_deref(), host)))
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

/// How many numbers `call_sync` writes into its `usage` array: the eleven numeric usage
/// fields, the flag for a waiting report and the output length.
const USAGE_FIELDS: usize = 13;

/// Where `call_sync` writes the flag saying log lines or audit entries wait in
/// `take_report_json`.
const REPORT_WAITING: usize = 11;

/// Where `call_sync` writes the output's length.
const OUTPUT_LENGTH: usize = 12;

fn write_usage(usage: &packhost::Usage, into: &mut [f64]) {
    // Counters stay exact as f64 up to 2^53, far beyond any one call's fuel or bytes.
    for (slot, counter) in into.iter_mut().zip(usage.counters()) {
        *slot = counter as f64;
    }
}

/// A sync call's log lines and audit entries as the JSON object `take_report_json` hands
/// over, `{"logs": [...], "audit": [...]}`: the rest of its report (usage) crossed as numbers.
fn waiting_report_json(report: &CallReport) -> String {
    // Serializing plain structs of numbers and strings cannot fail; empty lists keep the
    // wrapper working should it ever.
    let logs = serde_json::to_string(&report.logs).unwrap_or_else(|_| "[]".to_string());
    let audit = serde_json::to_string(&report.audit).unwrap_or_else(|_| "[]".to_string());
    format!(r#"{{"logs":{logs},"audit":{audit}}}"#)
}

/// Call options from the JSON text the wrapper sends, absent for the defaults.
pub(crate) fn call_options(options_json: Option<&str>) -> packhost::Result<CallOptions> {
    options_json.map_or_else(|| Ok(CallOptions::default()), CallOptions::from_json)
}

fn call(
    pack: &Pack,
    action: &str,
    input: &[u8],
    options_json: Option<&str>,
    cancel: Option<packhost::CancelToken>,
) -> packhost::Result<CallOutput> {
    guarded("call", || {
        let mut options = call_options(options_json)?;
        // The token is not data, so it never crosses as JSON: it joins the options here.
        options.cancel = cancel;
        pack.call_with_options(action, input, &options)
    })
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
    /// input_bytes, output_bytes, host_calls, host_time_us, kv_ops, http_requests,
    /// http_bytes_sent, http_bytes_received, 1 when log lines or audit entries wait in
    /// `takeReportJson`, then the output length) and the output into `scratch` when it
    /// fits, in which case nothing is returned: the hot path creates no JavaScript object at
    /// all. The usage's context, pack names and action do not cross: the wrapper knows them.
    /// A larger output comes back as a Buffer, a failure as the full outcome. `options_json`
    /// is the call options as JSON text, absent for the defaults. Host functions the pack
    /// calls meanwhile run their handlers on this thread.
    #[napi(ts_return_type = "Buffer | NativeCallOutcome | undefined")]
    pub fn call_sync<'env>(
        &self,
        env: &'env Env,
        action: String,
        #[napi(ts_arg_type = "string | Buffer")] input: CallInput<'env>,
        mut usage: Float64ArraySlice<'env>,
        mut scratch: BufferSlice<'env>,
        options_json: Option<String>,
    ) -> napi::Result<Option<Either<BufferSlice<'env>, NativeCallOutcome>>> {
        // SAFETY: the array belongs to the JavaScript wrapper and cannot be touched while
        // this synchronous call runs on its thread: a handler that calls `callSync` again
        // meanwhile gets arrays of its own from the wrapper.
        let usage = unsafe { usage.as_mut() };
        if usage.len() < USAGE_FIELDS {
            return Err(napi::Error::from_reason("the usage array is too short"));
        }
        let bytes: &[u8] = match &input {
            CallInput::Text(text) => text.as_bytes(),
            CallInput::Bytes(buffer) => buffer,
        };
        let scratch: &mut [u8] = &mut scratch;
        let called = guarded("call", || {
            let options = call_options(options_json.as_deref())?;
            let _sync = SyncCall::enter(env);
            self.pack.call_reading(&action, bytes, &options, |output| {
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
                usage[REPORT_WAITING] = if report.logs.is_empty() && report.audit.is_empty() {
                    0.0
                } else {
                    let waiting = waiting_report_json(&report);
                    *self
                        .waiting_report
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(waiting);
                    1.0
                };
                usage[OUTPUT_LENGTH] = report.usage.output_bytes as f64;
                output.transpose().map(|buffer| buffer.map(Either::A))
            }
            Err(err) => Ok(Some(Either::B(Err(err).into()))),
        }
    }

    /// The log lines and audit entries of the last sync call, as JSON (`{"logs": [...],
    /// "audit": [...]}`), when its usage said some were waiting.
    #[napi]
    pub fn take_report_json(&self) -> Option<String> {
        self.waiting_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Calls `action` on the libuv thread pool; the promise resolves with the outcome.
    /// `options_json` is the call options as JSON text, absent for the defaults. Cancelling
    /// `cancel` ends the call with `cancelled` (at once when it already is). Host functions
    /// the pack calls meanwhile run their handlers on the JavaScript thread while the pool
    /// thread waits.
    #[napi(ts_return_type = "Promise<NativeCallOutcome>")]
    pub fn call(
        &self,
        action: String,
        input: Either<String, Buffer>,
        options_json: Option<String>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<CallTask> {
        AsyncTask::new(CallTask {
            pack: self.pack.clone(),
            action,
            input: input_bytes(input),
            options_json,
            // A clone shares the JavaScript token's state, and unlike a reference it may
            // travel to the pool thread.
            cancel: cancel.map(|token| token.token().clone()),
        })
    }

    /// Loads the next version of this pack (a path, an `oci://` reference or bytes) with
    /// its options and host functions, on the thread pool; the wrapper swaps it in. This
    /// pack is unchanged, so calls running on it finish on the old version.
    #[napi(ts_return_type = "Promise<NativePack | NativeError>")]
    pub fn load_next(&self, source: Either<String, Buffer>) -> AsyncTask<LoadNextTask> {
        AsyncTask::new(LoadNextTask {
            pack: self.pack.clone(),
            source: match source {
                Either::A(path) => Source::Path(path),
                Either::B(bytes) => Source::Bytes(bytes.to_vec()),
            },
        })
    }

    /// Counts and totals of this pack's calls since it was loaded (failed ones included, by
    /// error code), as JSON text the core serialized.
    #[napi]
    pub fn stats_json(&self) -> String {
        serde_json::to_string(&self.pack.stats()).unwrap_or_else(|_| "{}".to_string())
    }

    /// The core's pack, for the flows bound to it.
    pub(crate) fn pack(&self) -> &Pack {
        &self.pack
    }
}

/// A reload's load, running on the thread pool.
pub struct LoadNextTask {
    pack: Pack,
    source: Source,
}

impl Task for LoadNextTask {
    type Output = packhost::Result<Pack>;
    type JsValue = Either<NativePack, NativeError>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guarded("reload", || match &self.source {
            Source::Bytes(bytes) => self.pack.load_next_bytes(bytes),
            Source::Path(path) | Source::ExtismManifest(path) => self.pack.load_next(path),
        }))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(loaded(output))
    }
}

/// A call running on the thread pool. It holds its own handle on the pack, so the JS object
/// may be collected while the call runs.
pub struct CallTask {
    pack: Pack,
    action: String,
    input: Vec<u8>,
    options_json: Option<String>,
    /// The token the wrapper cancels when the call's `AbortSignal` aborts.
    cancel: Option<packhost::CancelToken>,
}

impl Task for CallTask {
    type Output = packhost::Result<CallOutput>;
    type JsValue = NativeCallOutcome;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(call(
            &self.pack,
            &self.action,
            &self.input,
            self.options_json.as_deref(),
            self.cancel.take(),
        ))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_numbers_fill_their_slots_in_order_before_the_flag_and_the_length() {
        let usage = packhost::Usage {
            wall_time_us: 1,
            fuel_consumed: 2,
            peak_memory_bytes: 3,
            input_bytes: 4,
            output_bytes: 5,
            host_calls: 6,
            host_time_us: 7,
            kv_ops: 8,
            http_requests: 9,
            http_bytes_sent: 10,
            http_bytes_received: 11,
            ..Default::default()
        };
        let mut slots = [0.0; USAGE_FIELDS];
        write_usage(&usage, &mut slots);
        let written: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(slots[..REPORT_WAITING], written[..]);
        assert_eq!(slots[REPORT_WAITING..], [0.0, 0.0]);
        assert_eq!(OUTPUT_LENGTH, USAGE_FIELDS - 1);
    }

    #[test]
    fn a_waiting_report_holds_the_logs_and_the_audit_trail() {
        let report = CallReport {
            logs: vec![packhost::LogRecord {
                level: packhost::LogLevel::Info,
                message: "hi".into(),
            }],
            ..Default::default()
        };
        let waiting: serde_json::Value =
            serde_json::from_str(&waiting_report_json(&report)).unwrap();
        assert_eq!(
            waiting,
            serde_json::json!({"logs": [{"level": "info", "message": "hi"}], "audit": []})
        );
    }
}
