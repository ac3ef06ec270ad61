//! The benchmark pack: the actions `make bench` times in every host and against the
//! official Extism SDKs. `bench-plain` is the same pack built with extism-pdk alone.

use packhost_pdk::prelude::*;

/// Reads the whole input and returns its length in bytes, as decimal text.
#[action]
fn length(input: Vec<u8>) -> String {
    input.len().to_string()
}

/// Returns its input unchanged.
#[action]
fn echo(input: Vec<u8>) -> Vec<u8> {
    input
}

/// Counts the ASCII vowels of a text, as decimal text.
#[action]
fn count_vowels(text: String) -> String {
    text.bytes()
        .filter(|b| b"aeiouAEIOU".contains(b))
        .count()
        .to_string()
}

packhost_pdk::pack! {
    actions: [length, echo, count_vowels],
}
