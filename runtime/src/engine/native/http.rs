//! `http_request` for the native engine: moves the request out of kernel memory, hands it to
//! the shared HTTP capability (`capabilities::http`), and the response back in.

use super::state::{HostFailure, HostState};
use crate::error::{Error, ErrorKind};

/// Runs the request in kernel block `request` (with the body in block `body`, or none when
/// 0) and returns the response body's block. Status and headers are kept for
/// `http_status_code` and `http_headers`.
pub(super) fn request(state: &mut HostState, request: i64, body: i64) -> wasmtime::Result<i64> {
    state.call.http_status = 0;
    state.call.http_headers = None;
    let request_json = state
        .kernel
        .block(request as u64)
        .ok_or_else(|| HostFailure::trap(format!("http request is not a valid block: {request}")))?
        .to_vec();
    state.kernel.free(request as u64);
    let body_bytes = if body == 0 {
        Vec::new()
    } else {
        let bytes = state
            .kernel
            .block(body as u64)
            .ok_or_else(|| HostFailure::trap(format!("http body is not a valid block: {body}")))?
            .to_vec();
        state.kernel.free(body as u64);
        bytes
    };

    let grant = state.grants.http.clone();
    // The body ends up in kernel memory: the host reads no more than the instance may still
    // hold.
    let room = state.limiter.remaining();
    let response = grant
        .perform(
            &mut state.call.http_requests,
            &request_json,
            body_bytes,
            state.call.deadline,
            room,
        )
        .map_err(failure)?;

    state.call.http_status = i32::from(response.status);
    state.call.http_headers = Some(response.headers_json);
    let offset = state.alloc_bytes(&response.body);
    if offset == 0 && !response.body.is_empty() {
        return Err(failure(Error::new(
            ErrorKind::MemoryLimit,
            "the HTTP response does not fit in the pack's memory limit",
        )));
    }
    Ok(offset as i64)
}

fn failure(err: Error) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure {
        kind: err.kind().clone(),
        message: err.message().to_string(),
    })
}
