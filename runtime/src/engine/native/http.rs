//! `http_request` for the native engine: the grant check, then one blocking request with
//! ureq, bounded by the call's remaining time and the response size limit.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;

use super::state::{HostFailure, HostState};
use crate::error::ErrorKind;

/// The request a pack sends, as JSON in a kernel block (the Extism PDKs' format).
#[derive(Deserialize)]
struct PackRequest {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Runs the request in kernel block `request` (with the body in block `body`, or none when
/// 0) and returns the response body's block. Status and headers are kept for
/// `http_status_code` and `http_headers`.
pub(super) fn request(state: &mut HostState, request: i64, body: i64) -> wasmtime::Result<i64> {
    state.http_status = 0;
    state.http_headers = 0;
    let text = state.block_text(request as u64, "http request")?;
    state.kernel.free(request as u64);
    let request: PackRequest = serde_json::from_str(&text)
        .map_err(|err| HostFailure::trap(format!("http request is not valid JSON: {err}")))?;

    let url = url::Url::parse(&request.url)
        .map_err(|err| HostFailure::trap(format!("invalid URL {:?}: {err}", request.url)))?;
    let host = url.host_str().unwrap_or_default();
    if !state
        .grants
        .allowed_hosts
        .iter()
        .any(|pattern| pattern.matches(host))
    {
        return Err(HostFailure::denied(format!(
            "HTTP request to {} is not allowed",
            request.url
        )));
    }

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

    let remaining = state
        .call
        .deadline
        .map(|deadline| deadline.saturating_duration_since(Instant::now()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(remaining)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(
            request
                .method
                .as_deref()
                .unwrap_or("GET")
                .to_uppercase()
                .as_str(),
        )
        .uri(url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let outgoing = builder
        .body(body_bytes)
        .map_err(|err| HostFailure::trap(format!("invalid http request: {err}")))?;
    let max = state.grants.max_http_response_bytes;
    let mut response = agent.run(outgoing).map_err(|err| {
        let out_of_time =
            remaining.is_some_and(|left| left.is_zero()) || matches!(err, ureq::Error::Timeout(_));
        if out_of_time {
            wasmtime::Error::new(HostFailure {
                kind: ErrorKind::Timeout,
                message: "the call ran past its time limit".to_string(),
            })
        } else {
            HostFailure::trap(format!("HTTP request to {} failed: {err}", request.url))
        }
    })?;

    state.http_status = i32::from(response.status().as_u16());
    let headers: BTreeMap<&str, &str> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let headers = serde_json::to_vec(&headers).unwrap_or_default();
    let received = response
        .body_mut()
        .with_config()
        .limit(max)
        .read_to_vec()
        .map_err(|err| {
            HostFailure::trap(format!(
                "HTTP response from {} could not be read within {max} bytes: {err}",
                request.url
            ))
        })?;
    state.http_headers = state.alloc_bytes(&headers);
    Ok(state.alloc_bytes(&received) as i64)
}
