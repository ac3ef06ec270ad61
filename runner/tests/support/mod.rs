//! What the runner's integration tests share: sample pack paths and an HTTP client.

use std::path::PathBuf;
use std::time::Duration;

use packhost_runner::RunningRunner;
use serde_json::Value;

/// The path of a sample pack, `plugins/dist/NAME.wasm`.
pub fn sample(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

/// A client that reads every status as an answer and gives up after 20 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// POSTs `body` (JSON) to `path`, with a bearer token when given: the status and the JSON
/// answer.
pub fn post(runner: &RunningRunner, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = agent()
        .post(format!("http://{}{path}", runner.address()))
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
