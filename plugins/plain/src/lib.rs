//! A plugin written against plain extism-pdk, with no packhost manifest: proof that any
//! Extism plugin loads as a pack (its exports become its actions and it is granted nothing).

use extism_pdk::*;

/// Greets the input name.
#[plugin_fn]
pub fn greet(name: String) -> FnResult<String> {
    Ok(format!("Hello, {name}!"))
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
