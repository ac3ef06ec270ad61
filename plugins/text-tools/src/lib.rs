//! The text/JSON pack: several small typed actions, each with JSON Schemas in the manifest,
//! plus one that reads granted config, one that logs, and one that fails on purpose.

use packhost_pdk::prelude::*;

/// A piece of text.
#[derive(Deserialize, JsonSchema)]
struct Text {
    text: String,
}

/// How many vowels a text holds, and which.
#[derive(Serialize, JsonSchema)]
struct VowelCount {
    count: usize,
    vowels: String,
}

/// Counts the vowels (a, e, i, o, u, either case) in a text.
#[action]
fn count_vowels(input: Text) -> Result<VowelCount, Error> {
    let vowels: String = input
        .text
        .chars()
        .filter(|c| "aeiouAEIOU".contains(*c))
        .collect();
    Ok(VowelCount {
        count: vowels.chars().count(),
        vowels,
    })
}

/// Upper-cases text.
#[action]
fn uppercase(text: String) -> String {
    text.to_uppercase()
}

/// Counts of a text's parts.
#[derive(Serialize, JsonSchema)]
struct WordStats {
    chars: usize,
    words: usize,
    lines: usize,
    longest_word: Option<String>,
}

/// Counts characters, words and lines, and finds the longest word.
#[action]
fn word_stats(input: Text) -> Result<WordStats, Error> {
    let longest_word = input
        .text
        .split_whitespace()
        .fold(None::<&str>, |best, word| match best {
            Some(b) if b.chars().count() >= word.chars().count() => Some(b),
            _ => Some(word),
        })
        .map(str::to_string);
    Ok(WordStats {
        chars: input.text.chars().count(),
        words: input.text.split_whitespace().count(),
        lines: input.text.lines().count(),
        longest_word,
    })
}

/// A JSON document and an RFC 6901 pointer into it.
#[derive(Deserialize, JsonSchema)]
struct Pick {
    document: Value,
    pointer: String,
}

/// Returns the value a JSON Pointer names inside a document.
#[action]
fn json_pick(input: Pick) -> Result<Value, Error> {
    input
        .document
        .pointer(&input.pointer)
        .cloned()
        .ok_or_else(|| fail(format!("nothing at {}", input.pointer)))
}

/// Greets someone, using the `greeting` config value the host granted (or "Hello").
#[action]
fn greet(name: String) -> String {
    let greeting = config("greeting").unwrap_or_else(|| "Hello".to_string());
    format!("{greeting}, {name}!")
}

/// Returns its input unchanged.
#[action]
fn echo(input: Vec<u8>) -> Vec<u8> {
    input
}

/// Always fails with the input as its message, to show how a pack reports errors.
#[action]
fn fail_with(message: String) -> Result<(), Error> {
    Err(fail(message))
}

/// Logs one line at every level, then returns "logged".
#[action]
fn chatty() -> String {
    trace!("trace line");
    debug!("debug line");
    info!("info line");
    warn!("warn line");
    error!("error line");
    "logged".to_string()
}

packhost_pdk::pack! {
    actions: [count_vowels, uppercase, word_stats, json_pick, greet, echo, fail_with, chatty],
    config: ["greeting"],
}
