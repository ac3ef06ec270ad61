//! A plugin written against plain extism-pdk that calls the host functions of the
//! conformance suite, declared with `host_fn!` the way every Extism plugin declares them:
//! proof that such plugins run as packs once their host lends the functions.

use extism_pdk::*;
use serde_json::Value;

#[host_fn]
extern "ExtismHost" {
    /// Returns its input with the bytes in reverse order.
    fn reverse(input: Vec<u8>) -> Vec<u8>;
    /// Takes `{"a": x, "b": y}` and returns `{"sum": x + y}`.
    fn add(input: Json<Value>) -> Json<Value>;
    /// Fails with its input as the message.
    fn fail(message: String) -> Vec<u8>;
    /// Returns the call's context as JSON.
    fn context_echo(input: Vec<u8>) -> Vec<u8>;
}

/// The input, reversed by the host.
#[plugin_fn]
pub fn reverse_via_host(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(unsafe { reverse(input)? })
}

/// The host's sum of the input's `a` and `b`, logged on the way.
#[plugin_fn]
pub fn add_via_host(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    info!("asking the host to add");
    Ok(unsafe { add(Json(input))? })
}

/// Asks the host to fail; reaching the line after the call would be a bug in the host.
#[plugin_fn]
pub fn fail_via_host(message: String) -> FnResult<String> {
    unsafe { fail(message)? };
    Ok("the pack was resumed after a failed host call".to_string())
}

/// The call's context, as the host sees it.
#[plugin_fn]
pub fn context_via_host(_: ()) -> FnResult<Vec<u8>> {
    Ok(unsafe { context_echo(Vec::new())? })
}

/// Reverses the input through the host as many times as the input's length, and returns
/// the final text: a pack that calls its host in a loop.
#[plugin_fn]
pub fn reverse_repeatedly(input: String) -> FnResult<Vec<u8>> {
    let mut text = input.clone().into_bytes();
    for _ in 0..input.len() {
        text = unsafe { reverse(text)? };
    }
    Ok(text)
}
