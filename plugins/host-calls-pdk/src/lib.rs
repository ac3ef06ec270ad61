//! The conformance suite's host-function pack written with packhost-pdk: the same imports
//! as `host-calls` (plain extism-pdk), declared with typed input and output and listed in
//! the manifest, so `packhost inspect` shows what a host must lend.

use packhost_pdk::prelude::*;

/// Two integers to add.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Terms {
    a: i64,
    b: i64,
}

/// Their sum.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Sum {
    sum: i64,
}

#[host_functions]
extern "ExtismHost" {
    /// Returns its input with the bytes in reverse order.
    fn reverse(data: Vec<u8>) -> Vec<u8>;
    /// Adds two integers.
    fn add(terms: Terms) -> Sum;
    /// Fails with its input as the message.
    fn fail(message: String) -> Vec<u8>;
    /// The call's context and the calling pack's name.
    fn context_echo(nothing: ()) -> Value;
}

/// The input, reversed by the host.
#[action]
fn reverse_via_host(input: Vec<u8>) -> Result<Vec<u8>, Error> {
    reverse(input)
}

/// The host's sum of `a` and `b`.
#[action]
fn add_via_host(input: Terms) -> Result<Sum, Error> {
    info!("asking the host to add");
    add(input)
}

/// Asks the host to fail; reaching the line after the call would be a bug in the host.
#[action]
fn fail_via_host(message: String) -> Result<String, Error> {
    fail(message)?;
    Ok("the pack was resumed after a failed host call".to_string())
}

/// The call's context, as the host sees it.
#[action]
fn context_via_host() -> Result<Value, Error> {
    context_echo(())
}

packhost_pdk::pack! {
    actions: [reverse_via_host, add_via_host, fail_via_host, context_via_host],
    host_functions: [reverse, add, fail, context_echo],
}
