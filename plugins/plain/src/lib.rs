//! A plugin written against plain extism-pdk, with no packhost manifest: proof that any
//! Extism plugin loads as a pack (its exports become its actions) and, as in Extism, gets
//! what the host grants (config, HTTP hosts) without asking.

use extism_pdk::*;

/// Greets the input name, with the host's `greeting` config when it sets one.
#[plugin_fn]
pub fn greet(name: String) -> FnResult<String> {
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_string());
    Ok(format!("{greeting}, {name}!"))
}

/// Fetches the URL in the input and returns the response's status code.
#[plugin_fn]
pub fn fetch(url: String) -> FnResult<String> {
    let response = http::request::<()>(&HttpRequest::new(&url), None)?;
    Ok(response.status_code().to_string())
}

/// Fetches the URL in the input and returns the response's headers as a JSON object:
/// empty unless the host lets packs read response headers.
#[plugin_fn]
pub fn fetch_headers(url: String) -> FnResult<Json<std::collections::BTreeMap<String, String>>> {
    let response = http::request::<()>(&HttpRequest::new(&url), None)?;
    Ok(Json(response.headers().clone().into_iter().collect()))
}

/// Returns the input's length in bytes, as decimal text.
#[plugin_fn]
pub fn length(input: Vec<u8>) -> FnResult<String> {
    Ok(input.len().to_string())
}

/// Fails with return code 42, as plugins of other PDKs may.
#[plugin_fn]
pub fn fail_with_code(message: String) -> FnResult<()> {
    Err(WithReturnCode::new(Error::msg(message), 42))
}
