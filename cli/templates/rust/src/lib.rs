//! {{name}}: a packhost pack with one action (`greet`) and the two hooks a host runs
//! around an HTTP exchange (`pre` over the request, `post` over the response).
//!
//! `packhost build` compiles it and embeds the manifest `pack!` generates; `packhost test`
//! runs the cases in `tests/`.

use packhost_pdk::prelude::*;

/// Greets whoever the input names.
#[action]
fn greet(name: String) -> Result<String, Error> {
    if name.is_empty() {
        return Err(fail("nothing to greet: the input is empty"));
    }
    Ok(format!("Hello, {name}!"))
}

/// The request a host is about to send; fields the hook does not need are ignored.
#[derive(Deserialize, JsonSchema)]
struct Request {
    url: String,
}

/// Whether the request may go out, and why not.
#[derive(Serialize, JsonSchema)]
struct Verdict {
    allow: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Allows requests to https URLs only.
#[pre]
fn check_request(request: Request) -> Result<Verdict, Error> {
    if request.url.starts_with("https://") {
        return Ok(Verdict { allow: true, reason: None });
    }
    Ok(Verdict {
        allow: false,
        reason: Some("only https URLs are allowed".to_string()),
    })
}

/// The response the host received.
#[derive(Deserialize, JsonSchema)]
struct Response {
    body: String,
}

/// What the hook makes of a response.
#[derive(Serialize, JsonSchema)]
struct Finding {
    looks_like_error: bool,
}

/// Flags a response whose body mentions an error.
#[post]
fn check_response(response: Response) -> Result<Finding, Error> {
    Ok(Finding {
        looks_like_error: response.body.contains("error"),
    })
}

packhost_pdk::pack! {
    actions: [greet, check_request, check_response],
}
