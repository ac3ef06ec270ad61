//! The extism engine's `http_request`, `http_status_code` and `http_headers`, shadowing
//! extism's own so that HTTP goes through the shared capability (`capabilities::http`) with
//! the same checks and limits as on the native engine.

use std::sync::Arc;
use std::time::Instant;

use extism::{CurrentPlugin, Function, UserData, Val, ValType, PTR};

use super::memory::MemoryMeter;
use super::LinkGate;
use crate::capabilities::audit::AuditTrail;
use crate::capabilities::http::HttpGrant;
use crate::error::{Error, ErrorKind};
use crate::module::EXTISM_ENV;

/// One instance's HTTP state: the grant, and what the current call has done.
pub(crate) struct HttpCall {
    grant: Arc<HttpGrant>,
    meter: Arc<MemoryMeter>,
    audit: AuditTrail,
    requests: u32,
    status: i32,
    headers: Option<Vec<u8>>,
}

impl HttpCall {
    pub(crate) fn new(grant: Arc<HttpGrant>, meter: Arc<MemoryMeter>, audit: AuditTrail) -> Self {
        HttpCall {
            grant,
            meter,
            audit,
            requests: 0,
            status: 0,
            headers: None,
        }
    }
}

/// Resets the per-call counts before a call.
pub(crate) fn begin_call(http: &UserData<HttpCall>) {
    if let Ok(state) = http.get() {
        if let Ok(mut state) = state.lock() {
            state.requests = 0;
            state.status = 0;
            state.headers = None;
        }
    }
}

/// The three HTTP imports, bound to one instance's state.
pub(crate) fn functions(http: &UserData<HttpCall>, gate: &LinkGate) -> Vec<Function> {
    vec![
        gate.function(
            "http_request",
            [PTR, PTR],
            [PTR],
            http.clone(),
            |plugin, inputs, outputs, http| {
                outputs[0] = request(plugin, &inputs[0], &inputs[1], &http)?;
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
        gate.function(
            "http_status_code",
            [],
            [ValType::I32],
            http.clone(),
            |_, _, outputs, http| {
                let shared = http.get()?;
                let status = shared.lock().map_err(|_| poisoned())?.status;
                outputs[0] = Val::I32(status);
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
        gate.function(
            "http_headers",
            [],
            [PTR],
            http.clone(),
            |plugin, _, outputs, http| {
                let shared = http.get()?;
                let headers = shared.lock().map_err(|_| poisoned())?.headers.clone();
                outputs[0] = match headers {
                    Some(json) => {
                        let handle = plugin.memory_new(&json)?;
                        plugin.memory_to_val(handle)
                    }
                    None => Val::I64(0),
                };
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
    ]
}

fn poisoned() -> extism::Error {
    extism::Error::msg("http state lock poisoned")
}

/// Takes the kernel block a handle value names (the pack hands ownership to the host).
fn take_block(plugin: &mut CurrentPlugin, value: &Val, what: &str) -> Result<Vec<u8>, Error> {
    read_block(plugin, value, what, true)
}

/// The bytes of the kernel block a handle value names, freeing the block when `free`.
pub(super) fn read_block(
    plugin: &mut CurrentPlugin,
    value: &Val,
    what: &str,
    free: bool,
) -> Result<Vec<u8>, Error> {
    let offset = value.i64().unwrap_or(0);
    let handle = plugin.memory_from_val(value).ok_or_else(|| {
        Error::new(
            ErrorKind::Trap,
            format!("{what} is not a valid block: {offset}"),
        )
    })?;
    let bytes = plugin
        .memory_bytes(handle)
        .map_err(|err| Error::new(ErrorKind::Trap, format!("{what}: {err}")))?
        .to_vec();
    if free {
        // Freeing a block the pack handed over cannot fail for a handle that was just read.
        let _ = plugin.memory_free(handle);
    }
    Ok(bytes)
}

fn request(
    plugin: &mut CurrentPlugin,
    request: &Val,
    body: &Val,
    http: &UserData<HttpCall>,
) -> Result<Val, extism::Error> {
    let request_json = take_block(plugin, request, "http request")?;
    let body = match body.i64() {
        Some(0) | None => Vec::new(),
        Some(_) => take_block(plugin, body, "http body")?,
    };
    let deadline = plugin.time_remaining().map(|left| Instant::now() + left);
    let shared = http.get()?;
    let mut state = shared.lock().map_err(|_| poisoned())?;
    state.status = 0;
    state.headers = None;
    let room = state.meter.remaining();
    let meter = state.meter.clone();
    let grant = state.grant.clone();
    let audit = state.audit.clone();
    let response = grant.perform(
        &mut state.requests,
        &request_json,
        body,
        deadline,
        room,
        &audit,
    )?;
    state.status = i32::from(response.status);
    state.headers = response.headers_json;
    drop(state);
    let handle = plugin.memory_new(&response.body).map_err(|err| {
        if meter.refused_growth() {
            extism::Error::new(Error::new(
                ErrorKind::MemoryLimit,
                "the HTTP response does not fit in the pack's memory limit",
            ))
        } else {
            err
        }
    })?;
    Ok(plugin.memory_to_val(handle))
}
