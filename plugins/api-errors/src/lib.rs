//! The API-error pack: `pre` and `post` hooks that an API client runs around each request,
//! recognising Stripe-style and OpenAI-style error bodies and pulling out what a developer
//! needs to act on them (type, code, message, doc URL, request-log URL, request id).

use std::collections::BTreeMap;

use packhost_pdk::prelude::*;

/// An outgoing HTTP request, as the client hands it to `pre`.
#[derive(Debug, Deserialize, JsonSchema)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// What `pre` makes of a request.
#[derive(Debug, Serialize, JsonSchema)]
struct PreReport {
    /// `stripe`, `openai`, or null when the host is neither.
    provider: Option<&'static str>,
    /// Problems worth fixing before the request goes out.
    warnings: Vec<String>,
}

/// A response, with the request it answers when the client has it.
#[derive(Debug, Deserialize, JsonSchema)]
struct Exchange {
    #[serde(default)]
    request: Option<Request>,
    response: Response,
}

/// An HTTP response as JSON; `body` may be JSON or text.
#[derive(Debug, Deserialize, JsonSchema)]
struct Response {
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// What `post` makes of a response.
#[derive(Debug, Default, Serialize, JsonSchema)]
struct ErrorReport {
    is_error: bool,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_log_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

fn provider_of_url(url: &str) -> Option<&'static str> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':', '?'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if is("stripe.com") {
        Some("stripe")
    } else if is("openai.com") {
        Some("openai")
    } else {
        None
    }
}

fn header<'a>(headers: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Names the API provider of an outgoing request and flags requests likely to go wrong.
#[pre]
fn inspect_request(request: Request) -> Result<PreReport, Error> {
    let provider = provider_of_url(&request.url);
    let mut warnings = Vec::new();
    let method = request.method.to_ascii_uppercase();
    if provider == Some("stripe")
        && method == "POST"
        && header(&request.headers, "idempotency-key").is_none()
    {
        warnings.push(
            "POST to Stripe without an Idempotency-Key header: a retry may charge twice"
                .to_string(),
        );
    }
    if provider.is_some() && header(&request.headers, "authorization").is_none() {
        warnings.push("no Authorization header: the API will answer 401".to_string());
    }
    if method == "GET" && request.body.as_ref().is_some_and(|body| !body.is_null()) {
        warnings.push("GET with a body: most APIs ignore it".to_string());
    }
    Ok(PreReport { provider, warnings })
}

/// Pulls type, code, message, doc URL and request-log URL out of an error response.
#[post]
fn explain_response(exchange: Exchange) -> Result<ErrorReport, Error> {
    let response = exchange.response;
    let mut report = ErrorReport {
        is_error: response.status >= 400,
        status: response.status,
        ..ErrorReport::default()
    };
    let error = response
        .body
        .as_ref()
        .and_then(|body| match body {
            // Some clients hand the body over as text; read it as JSON when it is.
            Value::String(text) => serde_json::from_str::<Value>(text).ok(),
            other => Some(other.clone()),
        })
        .and_then(|body| body.get("error").cloned());
    let Some(error) = error.filter(Value::is_object) else {
        return Ok(report);
    };
    report.is_error = true;

    let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
    let url_provider = exchange
        .request
        .as_ref()
        .and_then(|request| provider_of_url(&request.url));
    let stripe_shape = error.get("doc_url").is_some() || error.get("request_log_url").is_some();
    let openai_shape = error.get("param").is_some();
    report.provider = url_provider.or(if stripe_shape {
        Some("stripe")
    } else if openai_shape {
        Some("openai")
    } else {
        None
    });
    report.error_type = text("type");
    report.code = text("code").or_else(|| {
        error
            .get("code")
            .filter(|c| c.is_number())
            .map(Value::to_string)
    });
    report.message = text("message");
    report.param = text("param");
    report.doc_url = text("doc_url");
    report.request_log_url = text("request_log_url");
    report.request_id = header(&response.headers, "request-id")
        .or_else(|| header(&response.headers, "x-request-id"))
        .map(str::to_string);
    info!(
        "{} error: {} {}",
        report.provider.unwrap_or("unknown"),
        report.error_type.as_deref().unwrap_or("-"),
        report.code.as_deref().unwrap_or("-")
    );
    Ok(report)
}

packhost_pdk::pack! {
    actions: [inspect_request, explain_response],
}
