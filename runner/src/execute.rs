//! The runner's HTTP handlers: a request's JSON to a call of the core and back, each error
//! code to the HTTP status that fits it, and the operational endpoints.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use packhost::{
    CallOptions, CallOutput, CallReport, CancelToken, Encoding, Error, FlowOutput, InterpreterLock,
    Pack,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalogue::Catalogue;
use crate::metrics::CallLabels;
use crate::tenants::Tenant;
use crate::Shared;

/// The codes the runner answers with besides the core's (`packhost::ERROR_CODES`):
/// `bad_request` (a body that is not a valid request), `unauthorized` (no or an unknown
/// token), `pack_not_found` (no served pack by that reference), `flow_not_found` (no served
/// flow by that name) and `unavailable` (the runner is draining; try another replica).
pub const RUNNER_ERROR_CODES: &[&str] = &[
    "bad_request",
    "unauthorized",
    "pack_not_found",
    "flow_not_found",
    "unavailable",
];

/// The HTTP status of an answer with error `code`: the caller's mistakes are 4xx, limits
/// the pack hit or failures of its own are 422 (retrying elsewhere would not help), a
/// timeout is 504, a draining runner 503 (a balancer retries elsewhere), the host's own
/// failures 500.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "bad_request" | "invalid_options" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "pack_not_found" | "flow_not_found" | "action_not_found" => StatusCode::NOT_FOUND,
        "input_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded" => StatusCode::TOO_MANY_REQUESTS,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "unavailable" | "cancelled" => StatusCode::SERVICE_UNAVAILABLE,
        "plugin_error"
        | "trap"
        | "out_of_fuel"
        | "memory_limit"
        | "output_too_large"
        | "host_denied"
        | "host_function_error" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The body of `POST /v1/execute`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteRequest {
    /// `name`, `name@version` or `sha256:HEX`.
    pack: String,
    action: String,
    /// For an action whose manifest says its input is JSON, any JSON value, passed as its
    /// JSON text; otherwise a string is passed as its UTF-8 bytes, and any other value as
    /// its JSON text. `null` is a value (absent is no input at all).
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    /// Raw input bytes, in base64 (instead of `input`).
    #[serde(default)]
    input_base64: Option<String>,
    #[serde(default)]
    context: Value,
}

/// Reads a field that is present, `null` included, as `Some` (serde reads `null` as `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A call that did not produce an output.
pub(crate) struct Failure {
    pub code: String,
    pub message: String,
    pub return_code: Option<i32>,
    /// For a flow: the id of the step that failed.
    pub step: Option<String>,
    /// Boxed: a report is large, and most failures have none.
    pub report: Option<Box<CallReport>>,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: code.to_string(),
            message: message.into(),
            return_code: None,
            step: None,
            report: None,
        }
    }

    /// The fuel the failed call burnt, 0 when it never ran.
    pub fn fuel(&self) -> u64 {
        self.report
            .as_ref()
            .map_or(0, |report| report.usage.fuel_consumed)
    }

    pub fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(return_code) = self.return_code {
            error["return_code"] = return_code.into();
        }
        if let Some(step) = &self.step {
            error["step"] = step.as_str().into();
        }
        // A tenant's own limits refuse before the call runs, so they come without a report.
        let tenant_limit = self.code == "quota_exceeded" && self.report.is_none();
        let mut body = json!({ "error": error });
        if let Some(report) = &self.report {
            attach_report(&mut body, report);
        }
        let mut response = (status_of(&self.code), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self.code.as_str() {
            // The next request goes to a fresh connection, which a balancer sends elsewhere.
            "unavailable" => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // What a client (an MCP client among them) needs to know to authenticate.
            "unauthorized" => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // A tenant's limits free up within a second (a slot, a token of the rate).
            "quota_exceeded" if tenant_limit => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure {
            code: err.code().to_string(),
            message: err.message().to_string(),
            return_code: err.return_code(),
            step: err.flow_step().map(str::to_string),
            report: err.report().cloned().map(Box::new),
        }
    }
}

/// Counts a call as running while it lives; the last one out wakes a waiting drain.
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        shared.metrics.in_flight().inc();
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight().dec();
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Cancels the call when dropped before [`CancelWhenAbandoned::finished`]: when the client
/// goes away, axum drops the handler, and the pack stops at its next check.
struct CancelWhenAbandoned(Option<CancelToken>);

impl CancelWhenAbandoned {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelWhenAbandoned {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            token.cancel();
        }
    }
}

pub(crate) async fn execute(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut labels = CallLabels::default();
    let answer = run_call(&shared, &headers, body, &mut labels).await;
    record_call(
        &shared,
        labels,
        started,
        answer
            .as_ref()
            .map(|(_, report)| report.usage.fuel_consumed),
    );
    match answer {
        Ok((mut body, report)) => {
            attach_report(&mut body, &report);
            axum::Json(body).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

/// Adds a call's usage, log lines and audit trail to its JSON answer.
fn attach_report(body: &mut Value, report: &CallReport) {
    body["usage"] = json!(report.usage);
    body["logs"] = json!(report.logs);
    body["audit"] = json!(report.audit);
}

/// Logs and counts one answered call (`/v1/execute`, a flow, an MCP tool call): its result
/// code (`ok` or the error's), latency since `started` and fuel (all its steps', for a flow).
pub(crate) fn record_call(
    shared: &Shared,
    labels: CallLabels,
    started: Instant,
    outcome: std::result::Result<u64, &Failure>,
) {
    let (code, fuel) = match outcome {
        Ok(fuel) => ("ok", fuel),
        Err(failure) => (failure.code.as_str(), failure.fuel()),
    };
    tracing::debug!(
        tenant = %labels.tenant, pack = %labels.pack, action = %labels.action, code,
        micros = started.elapsed().as_micros() as u64, "call"
    );
    if code == "internal" {
        tracing::warn!(pack = %labels.pack, action = %labels.action, "call failed inside the host");
    }
    shared
        .metrics
        .record(labels, code, started.elapsed().as_secs_f64(), fuel);
}

/// Authenticates, reads the request, admits it under the tenant's limits and runs it off
/// the async threads. `labels` is filled in as far as the request got, for the metrics.
async fn run_call(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
    labels: &mut CallLabels,
) -> std::result::Result<(Value, CallReport), Failure> {
    let (tenant, in_flight) = admit_request(shared, headers)?;
    labels.tenant.clone_from(&tenant.name);
    let body = read_body(shared, body).await?;
    let request: ExecuteRequest = serde_json::from_slice(&body)
        .map_err(|err| Failure::new("bad_request", format!("request: {err}")))?;
    let catalogue = shared.catalogue();
    let served = catalogue.find(&request.pack).ok_or_else(|| {
        Failure::new(
            "pack_not_found",
            format!("no pack {:?} is served here", request.pack),
        )
    })?;
    labels.pack.clone_from(&served.name);
    let spec = served.pack.manifest().action(&request.action);
    // An action the manifest does not list gets no label of its own: a caller's typos must
    // not grow the metrics.
    let (input_encoding, output_encoding) = match spec {
        Some(spec) => {
            labels.action.clone_from(&spec.name);
            (spec.input.encoding, spec.output.encoding)
        }
        None => (Encoding::Bytes, Encoding::Bytes),
    };
    let input = input_bytes(request.input, request.input_base64, input_encoding)?;
    let context = tenant
        .context_for(request.context)
        .map_err(|why| Failure::new("bad_request", why))?;
    let output = invoke(
        in_flight,
        &tenant,
        served.pack.clone(),
        request.action,
        input,
        context,
    )
    .await?;
    let report = CallReport {
        usage: output.usage,
        logs: output.logs,
        audit: output.audit,
    };
    Ok((output_json(output.output, output_encoding), report))
}

/// Runs one call for a tenant: admitted under its limits and counted in flight (for a
/// drain). A call the core expects to end within microseconds, on an instance idle for its
/// tenant, runs in place on the async worker ([`InPlace`]), where the hop to the blocking
/// pool and back would cost it several times over; any other runs on the blocking pool,
/// cancelled if the request is abandoned.
pub(crate) async fn invoke(
    in_flight: InFlight,
    tenant: &Tenant,
    pack: Pack,
    action: String,
    input: Vec<u8>,
    context: Value,
) -> std::result::Result<CallOutput, Failure> {
    let permit = admit(tenant)?;
    let mut context = context;
    let shared = Arc::clone(&in_flight.0);
    if let Some(_slot) = InPlace::enter(&shared) {
        // Nothing could cancel it: the handler cannot be dropped while it runs.
        let options = CallOptions {
            context,
            cancel: None,
        };
        let done = pack.call_in_place(&action, &input, &options, &mut AsyncWorker, <[u8]>::to_vec);
        if let Some(done) = done {
            drop((permit, in_flight));
            let (output, report) = done.map_err(Failure::from)?;
            return Ok(CallOutput {
                output,
                usage: report.usage,
                logs: report.logs,
                audit: report.audit,
            });
        }
        context = options.context;
    }
    on_blocking_pool((permit, in_flight), context, move |options| {
        pack.call_with_options(&action, &input, &options)
    })
    .await
}

/// The tenant's admission (a concurrency slot, a token of its rate), or `quota_exceeded`.
fn admit(tenant: &Tenant) -> std::result::Result<impl Send + 'static, Failure> {
    tenant
        .admit()
        .map_err(|why| Failure::new("quota_exceeded", why))
}

/// A call running in place on an async worker. At most one fewer than the runtime has
/// workers run so at once: however long a call judged short turns out to take (its input
/// may cost more than the last ones did, up to its timeout), a worker stays free for the
/// rest (health checks, other tenants, answers from the blocking pool). None on a runtime
/// with one worker.
struct InPlace<'a>(&'a Shared);

impl<'a> InPlace<'a> {
    fn enter(shared: &'a Shared) -> Option<InPlace<'a>> {
        let most =
            *shared
                .in_place_most
                .get_or_init(|| match tokio::runtime::Handle::try_current() {
                    Ok(runtime)
                        if runtime.runtime_flavor()
                            == tokio::runtime::RuntimeFlavor::MultiThread =>
                    {
                        runtime.metrics().num_workers().saturating_sub(1)
                    }
                    _ => 0,
                });
        shared
            .in_place
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < most).then_some(now + 1)
            })
            .ok()?;
        Some(InPlace(shared))
    }
}

impl Drop for InPlace<'_> {
    fn drop(&mut self) {
        self.0.in_place.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The async worker, as the core's host lock: what the core does with it released (start-up
/// code run again after a failed call) runs in `block_in_place`, which first hands the
/// worker's other tasks to another thread. Only used on a multi-thread runtime ([`InPlace`]).
struct AsyncWorker;

impl InterpreterLock for AsyncWorker {
    fn run_released(&mut self, call: &mut dyn FnMut()) {
        tokio::task::block_in_place(call);
    }
}

/// Runs `work` (a call, a flow) on tokio's blocking pool, holding `held` (the tenant's
/// admission, the in-flight count) until it ends, with call options holding `context` and a
/// token that cancels it if the request is abandoned.
async fn on_blocking_pool<T: Send + 'static>(
    held: impl Send + 'static,
    context: Value,
    work: impl FnOnce(CallOptions) -> packhost::Result<T> + Send + 'static,
) -> std::result::Result<T, Failure> {
    let cancel = CancelToken::new();
    let abandoned = CancelWhenAbandoned(Some(cancel.clone()));
    let done = tokio::task::spawn_blocking(move || {
        let _held = held;
        work(CallOptions {
            context,
            cancel: Some(cancel),
        })
    })
    .await;
    abandoned.finished();
    done.map_err(|_| Failure::new("internal", "the call panicked"))?
        .map_err(Failure::from)
}

/// The body of `POST /v1/flows/NAME/execute`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowRequest {
    /// The flow's input, any JSON.
    #[serde(default)]
    input: Value,
    #[serde(default)]
    context: Value,
}

/// `POST /v1/flows/NAME/execute`: runs a served flow, answering its output, each step's
/// usage and the totals, or the failing step's error (`error.step` names it) with that
/// step's report.
pub(crate) async fn execute_flow(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut labels = CallLabels::default();
    let answer = run_flow(&shared, name, &headers, body, &mut labels).await;
    record_call(
        &shared,
        labels,
        started,
        answer.as_ref().map(|output| output.usage.fuel_consumed),
    );
    match answer {
        Ok(output) => axum::Json(output).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn run_flow(
    shared: &Arc<Shared>,
    name: String,
    headers: &HeaderMap,
    body: Body,
    labels: &mut CallLabels,
) -> std::result::Result<FlowOutput, Failure> {
    let (tenant, in_flight) = admit_request(shared, headers)?;
    labels.tenant.clone_from(&tenant.name);
    let body = read_body(shared, body).await?;
    let request: FlowRequest = serde_json::from_slice(&body)
        .map_err(|err| Failure::new("bad_request", format!("request: {err}")))?;
    let catalogue = shared.catalogue();
    let flow = catalogue.flow(&name).cloned().ok_or_else(|| {
        Failure::new("flow_not_found", format!("no flow {name:?} is served here"))
    })?;
    // Flows are named by the configuration, so their names may label metrics.
    labels.pack = format!("flow:{name}");
    labels.action = "run".to_string();
    let context = tenant
        .context_for(request.context)
        .map_err(|why| Failure::new("bad_request", why))?;
    // A flow makes several calls and may start threads (branches, deadlines): never in
    // place.
    let permit = admit(&tenant)?;
    on_blocking_pool((permit, in_flight), context, move |options| {
        flow.run(&*catalogue, request.input, &options)
    })
    .await
}

/// `GET /v1/flows`: the flows served, with the packs each names.
pub(crate) async fn list_flows(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    listing(&shared, &headers, Catalogue::describe_flows)
}

/// The first checks of every call: counted in flight at once (so a drain that starts after
/// this waits for it), refused while draining, refused from web pages, then authenticated.
pub(crate) fn admit_request(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
) -> std::result::Result<(Arc<Tenant>, InFlight), Failure> {
    let in_flight = InFlight::enter(shared);
    if shared.refusing_calls.load(Ordering::SeqCst) {
        return Err(Failure::new("unavailable", "this runner is draining"));
    }
    refuse_web_pages(shared, headers)?;
    let tenant = authenticate(shared, headers)?;
    Ok((tenant, in_flight))
}

/// Reads a request body of at most `max_request_bytes`, after the caller was admitted, so
/// one without a token cannot make the runner hold its body.
pub(crate) async fn read_body(shared: &Shared, body: Body) -> std::result::Result<Bytes, Failure> {
    let limit = shared.config.max_request_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let over_limit = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over_limit {
            Failure::new(
                "input_too_large",
                format!("the request is larger than this runner's max_request_bytes ({limit})"),
            )
        } else {
            Failure::new("bad_request", format!("reading the request: {err}"))
        }
    })
}

/// Refuses what a web page could send: a request with an `Origin` the configuration does
/// not allow (browsers send one with every cross-site POST), and, on a loopback address, a
/// `Host` that is not a loopback name (a page that rebinds its own name to 127.0.0.1).
pub(crate) fn refuse_web_pages(
    shared: &Shared,
    headers: &HeaderMap,
) -> std::result::Result<(), Failure> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|origin| {
            shared
                .config
                .allowed_origins
                .iter()
                .any(|known| known == origin)
        });
        if !allowed {
            return Err(Failure::new(
                "unauthorized",
                "requests from web pages are refused unless allowed_origins names their origin",
            ));
        }
    }
    if shared.loopback_only {
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let loopback = name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        if !loopback {
            return Err(Failure::new(
                "unauthorized",
                format!(
                    "this runner listens on loopback and answers only loopback names, not {name:?}"
                ),
            ));
        }
    }
    Ok(())
}

/// The tenant of a request's `Authorization` header, or the `unauthorized` failure.
pub(crate) fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
) -> std::result::Result<Arc<Tenant>, Failure> {
    shared
        .tenants
        .authenticate(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
        .map_err(|why| Failure::new("unauthorized", why))
}

/// The bytes a request's input stands for.
fn input_bytes(
    input: Option<Value>,
    input_base64: Option<String>,
    encoding: Encoding,
) -> std::result::Result<Vec<u8>, Failure> {
    match (input, input_base64) {
        (Some(_), Some(_)) => Err(Failure::new(
            "bad_request",
            "give input or input_base64, not both",
        )),
        (None, Some(text)) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|err| Failure::new("bad_request", format!("input_base64: {err}"))),
        (Some(value), None) => Ok(encoding.input_from_value(&value)),
        (None, None) => Ok(Vec::new()),
    }
}

/// `{"output": VALUE}` for JSON output (as the manifest says), `{"output": TEXT}` for
/// other UTF-8, `{"output_base64": …}` for anything else.
fn output_json(output: Vec<u8>, encoding: Encoding) -> Value {
    if encoding == Encoding::Json {
        if let Ok(value) = serde_json::from_slice::<Value>(&output) {
            return json!({ "output": value });
        }
    }
    match String::from_utf8(output) {
        Ok(text) => json!({ "output": text }),
        Err(bytes) => json!({
            "output_base64": base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes())
        }),
    }
}

pub(crate) async fn list_packs(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    listing(&shared, &headers, Catalogue::describe)
}

/// A list of what the catalogue serves, for any caller that may call (not a web page, a
/// valid token when tenants are configured).
fn listing(shared: &Shared, headers: &HeaderMap, describe: fn(&Catalogue) -> Value) -> Response {
    match refuse_web_pages(shared, headers).and_then(|()| authenticate(shared, headers)) {
        Ok(_) => axum::Json(describe(&shared.catalogue())).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// `POST /v1/packs/reload`: for the admin token only, never a tenant's.
pub(crate) async fn reload(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(failure) = refuse_web_pages(&shared, &headers) {
        return failure.into_response();
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    let admitted = match (&shared.config.admin_token, presented) {
        (Some(token), Some(presented)) => {
            crate::tenants::constant_time_eq(token.as_bytes(), presented)
        }
        _ => false,
    };
    if !admitted {
        return Failure::new(
            "unauthorized",
            "reloading needs the runner's admin token (admin_token)",
        )
        .into_response();
    }
    match shared.reload().await {
        Ok(report) => axum::Json(report).into_response(),
        Err(err) => Failure::from(err).into_response(),
    }
}

pub(crate) async fn healthz() -> Response {
    axum::Json(json!({ "ok": true })).into_response()
}

pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.draining.load(Ordering::SeqCst) {
        Failure::new("unavailable", "this runner is draining").into_response()
    } else {
        axum::Json(json!({ "ready": true })).into_response()
    }
}

pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_fitting_status() {
        for code in packhost::ERROR_CODES.iter().chain(RUNNER_ERROR_CODES) {
            let status = status_of(code);
            let expected_server_side = matches!(
                *code,
                "internal"
                    | "io"
                    | "invalid_pack"
                    | "invalid_manifest"
                    | "untrusted_pack"
                    | "timeout"
                    | "unavailable"
                    | "cancelled"
            );
            assert_eq!(
                status.is_server_error(),
                expected_server_side,
                "{code}: {status}"
            );
        }
        assert_eq!(status_of("timeout"), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_of("quota_exceeded"), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn inputs_follow_the_manifest_encoding() {
        let text = Some(Value::String("hi".into()));
        assert_eq!(
            input_bytes(text.clone(), None, Encoding::Text)
                .ok()
                .unwrap(),
            b"hi"
        );
        assert_eq!(
            input_bytes(text, None, Encoding::Json).ok().unwrap(),
            b"\"hi\""
        );
        assert_eq!(
            input_bytes(None, Some("AAEC".into()), Encoding::Bytes)
                .ok()
                .unwrap(),
            [0, 1, 2]
        );
        assert!(input_bytes(Some(json!(1)), Some("AA==".into()), Encoding::Bytes).is_err());
        let request: ExecuteRequest =
            serde_json::from_str(r#"{"pack": "p", "action": "a", "input": null}"#).unwrap();
        assert_eq!(
            input_bytes(request.input, None, Encoding::Json)
                .ok()
                .unwrap(),
            b"null",
            "null is a JSON input, not a missing one"
        );
        assert_eq!(
            output_json(b"{\"a\":1}".to_vec(), Encoding::Json),
            json!({"output": {"a": 1}})
        );
        assert_eq!(
            output_json(vec![0xff], Encoding::Bytes),
            json!({"output_base64": "/w=="})
        );
    }
}
