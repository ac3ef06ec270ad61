//! Drives `packhost:host/kv` from inside a pack: a script of operations for the conformance
//! suite, a compare-and-set counter for the concurrency tests, and repeated gets and sets
//! for the benchmarks.

use packhost_pdk::kv;
use packhost_pdk::prelude::*;

/// One key-value operation. Values are UTF-8 text here, so cases stay readable.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    /// Reads a key.
    Get { key: String },
    /// Writes a key, with an optional time to live.
    Set {
        key: String,
        value: String,
        #[serde(default)]
        ttl_ms: u64,
    },
    /// Removes a key.
    Delete { key: String },
    /// Lists keys by prefix, after a key.
    List {
        #[serde(default)]
        prefix: String,
        after: Option<String>,
    },
    /// Writes only if the entry is still `expected` (`null`: absent); `value` `null` removes.
    CompareAndSet {
        key: String,
        expected: Option<String>,
        value: Option<String>,
    },
    /// Adds one to a decimal counter, with compare-and-set.
    Increment { key: String },
    /// Writes values of `size` bytes under `prefix0`, `prefix1`, ... `count` times.
    Fill {
        prefix: String,
        size: usize,
        count: usize,
    },
}

/// Runs a list of operations and returns one result per operation: the value (or `null`)
/// for `get`, whether something was there for `delete`, the keys for `list`, whether it was
/// applied for `compare_and_set`, the new count for `increment`, `null` otherwise.
#[action]
fn run(ops: Vec<Op>) -> Result<Vec<Value>, Error> {
    ops.into_iter().map(apply).collect()
}

fn text(bytes: Option<Vec<u8>>) -> Value {
    match bytes {
        Some(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        None => Value::Null,
    }
}

fn apply(op: Op) -> Result<Value, Error> {
    Ok(match op {
        Op::Get { key } => text(kv::get(&key)?),
        Op::Set { key, value, ttl_ms } => {
            let ttl = (ttl_ms > 0).then(|| std::time::Duration::from_millis(ttl_ms));
            kv::set_with_ttl(&key, value.as_bytes(), ttl)?;
            Value::Null
        }
        Op::Delete { key } => Value::Bool(kv::delete(&key)?),
        Op::List { prefix, after } => json!(kv::list(&prefix, after.as_deref())?),
        Op::CompareAndSet {
            key,
            expected,
            value,
        } => Value::Bool(kv::compare_and_set(
            &key,
            expected.as_deref().map(str::as_bytes),
            value.as_deref().map(str::as_bytes),
            None,
        )?),
        Op::Increment { key } => json!(increment(&key)?),
        Op::Fill {
            prefix,
            size,
            count,
        } => {
            let value = vec![b'x'; size];
            for index in 0..count {
                kv::set(&format!("{prefix}{index}"), &value)?;
            }
            Value::Null
        }
    })
}

fn increment(key: &str) -> Result<u64, Error> {
    let written = kv::update(key, |old| {
        let count: u64 = old
            .and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse().ok())
            .unwrap_or(0);
        Some((count + 1).to_string().into_bytes())
    })?;
    Ok(written
        .and_then(|bytes| String::from_utf8(bytes).ok()?.parse().ok())
        .unwrap_or(0))
}

/// Adds one to the counter under the input key and returns the new count.
#[action]
fn count(key: String) -> Result<u64, Error> {
    increment(&key)
}

/// The value under the input key, empty when there is none.
#[action]
fn get_value(key: String) -> Result<Vec<u8>, Error> {
    Ok(kv::get(&key)?.unwrap_or_default())
}

/// Stores the input under the key `bench`.
#[action]
fn set_value(value: Vec<u8>) -> Result<(), Error> {
    kv::set("bench", &value)
}

/// Reads the key `bench` as many times as the input says and returns the bytes read: one
/// call times many operations, for the benchmarks' per-operation figures.
#[action]
fn get_repeatedly(times: String) -> Result<u64, Error> {
    let mut read = 0;
    for _ in 0..times.trim().parse::<u32>()? {
        read += kv::get("bench")?.map_or(0, |value| value.len() as u64);
    }
    Ok(read)
}

/// Writes 64 bytes under the key `bench` as many times as the input says.
#[action]
fn set_repeatedly(times: String) -> Result<(), Error> {
    let value = [b'v'; 64];
    for _ in 0..times.trim().parse::<u32>()? {
        kv::set("bench", &value)?;
    }
    Ok(())
}

packhost_pdk::pack! {
    name: "kv_probe",
    actions: [run, count, get_value, set_value, get_repeatedly, set_repeatedly],
    kv: true,
}
