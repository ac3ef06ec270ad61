//! `http_request` for the native engine: moves the request out of kernel memory, hands it to
//! the shared HTTP capability (`capabilities::http`), and the response back in.

use wasmtime::Caller;

use super::kernel;
use super::state::{HostFailure, HostState};
use crate::capabilities::http::HttpResponse;
use crate::error::{Error, ErrorKind};

/// Runs the request in kernel block `request` (with the body in block `body`, or none when
/// 0) and returns the response body's block. Status and headers are kept for
/// `http_status_code` and `http_headers`.
pub(super) fn request(
    cx: &mut Caller<'_, HostState>,
    request: i64,
    body: i64,
) -> wasmtime::Result<i64> {
    cx.data_mut().call.http_status = 0;
    cx.data_mut().call.http_headers = None;
    let request_json = take_block(cx, request, "http request")?;
    let body_bytes = if body == 0 {
        Vec::new()
    } else {
        take_block(cx, body, "http body")?
    };

    let state = cx.data_mut();
    let response = perform(state, &request_json, body_bytes)?;
    state.call.http_status = i32::from(response.status);
    state.call.http_headers = response.headers_json;
    let offset = kernel::alloc_bytes(&mut *cx, &response.body);
    if offset == 0 && !response.body.is_empty() {
        return Err(HostFailure::error(Error::new(
            ErrorKind::MemoryLimit,
            "the HTTP response does not fit in the pack's memory limit",
        )));
    }
    Ok(offset as i64)
}

/// Runs the pack's request (`request_json`, with `body`) through its HTTP grant as its call's
/// next request, reading no more of the body than the instance may still hold: the pack
/// takes all of it into its memory next. Shared by modules and components.
pub(super) fn perform(
    state: &mut HostState,
    request_json: &[u8],
    body: Vec<u8>,
) -> wasmtime::Result<HttpResponse> {
    let grant = state.grants.http.clone();
    let room = state.limiter.remaining();
    grant
        .perform(
            &mut state.call.http_requests,
            request_json,
            body,
            state.call.deadline,
            room,
            &state.audit,
        )
        .map_err(HostFailure::error)
}

/// Copies out and frees the kernel block the pack handed over (it owns it no longer).
fn take_block(
    cx: &mut Caller<'_, HostState>,
    offset: i64,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    let bytes = kernel::block(cx, offset as u64)
        .ok_or_else(|| HostFailure::trap(format!("{what} is not a valid block: {offset}")))?
        .to_vec();
    kernel::free(&mut *cx, offset as u64);
    Ok(bytes)
}
