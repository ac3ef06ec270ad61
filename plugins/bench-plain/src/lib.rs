//! The benchmark pack written with plain extism-pdk: the same three actions as `bench`, so
//! the cost of the PDK itself shows beside the cost of the host.

use extism_pdk::*;

/// Reads the whole input and returns its length in bytes, as decimal text.
#[plugin_fn]
pub fn length(input: Vec<u8>) -> FnResult<String> {
    Ok(input.len().to_string())
}

/// Returns its input unchanged.
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Counts the ASCII vowels of a text, as decimal text.
#[plugin_fn]
pub fn count_vowels(text: String) -> FnResult<String> {
    Ok(text
        .bytes()
        .filter(|b| b"aeiouAEIOU".contains(b))
        .count()
        .to_string())
}
