//! The extism engine's `http_request`, `http_status_code` and `http_headers`, shadowing
//! extism's own so that HTTP goes through the shared capability (`capabilities::http`) with
//! the same checks and limits as on the native engine.

use std::sync::Arc;
use std::time::Instant;

use extism::{CurrentPlugin, Function, UserData, Val, ValType, PTR};

use super::memory::MemoryMeter;
use super::{kernel, LinkGate};
use crate::capabilities::audit::AuditTrail;
use crate::capabilities::http::HttpGrant;
use crate::error::{Error, ErrorKind};
use crate::module::EXTISM_ENV;

/// One instance's HTTP state: the grant, and what the current call has done.
pub(crate) struct HttpCall {
    grant: Arc<HttpGrant>,
    audit: AuditTrail,
    requests: u32,
    status: i32,
    headers: Option<Vec<u8>>,
}

impl HttpCall {
    pub(crate) fn new(grant: Arc<HttpGrant>, audit: AuditTrail) -> Self {
        HttpCall {
            grant,
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
pub(crate) fn functions(
    http: &UserData<HttpCall>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    let (for_request, for_headers) = (meter.clone(), meter.clone());
    vec![
        gate.function(
            "http_request",
            [PTR, PTR],
            [PTR],
            http.clone(),
            move |plugin, inputs, outputs, http| {
                outputs[0] = request(plugin, &for_request, &inputs[0], &inputs[1], &http)?;
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
            move |plugin, _, outputs, http| {
                let shared = http.get()?;
                let headers = shared.lock().map_err(|_| poisoned())?.headers.clone();
                outputs[0] = match headers {
                    Some(json) => kernel::new_block(plugin, &for_headers, &json)?,
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
fn take_block(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    value: &Val,
    what: &str,
) -> Result<Vec<u8>, Error> {
    kernel::read_block(plugin, meter, value, what, true)
}

fn request(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    request: &Val,
    body: &Val,
    http: &UserData<HttpCall>,
) -> Result<Val, extism::Error> {
    let request_json = take_block(plugin, meter, request, "http request")?;
    let body = match body.i64() {
        Some(0) | None => Vec::new(),
        Some(_) => take_block(plugin, meter, body, "http body")?,
    };
    let deadline = plugin.time_remaining().map(|left| Instant::now() + left);
    let shared = http.get()?;
    let mut state = shared.lock().map_err(|_| poisoned())?;
    state.status = 0;
    state.headers = None;
    let room = meter.remaining();
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
    kernel::new_block(plugin, meter, &response.body).map_err(|err| {
        if meter.refused_growth() {
            extism::Error::new(Error::new(
                ErrorKind::MemoryLimit,
                "the HTTP response does not fit in the pack's memory limit",
            ))
        } else {
            err
        }
    })
}
