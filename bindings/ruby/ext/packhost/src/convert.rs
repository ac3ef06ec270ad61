//! Turning core values (serde data) into plain Ruby objects: `nil`, booleans, numbers,
//! UTF-8 strings, Arrays and Hashes with String keys.
//!
//! Usage records and log lines cross as serde data rather than field by field, so a field
//! the core adds reaches Ruby without a change here.

use magnus::{value::ReprValue, Error, IntoValue, Ruby, Value};
use serde::Serialize;

/// Converts any serde value into Ruby objects.
pub(crate) fn to_ruby<T: Serialize>(ruby: &Ruby, data: &T) -> Result<Value, Error> {
    let json = serde_json::to_value(data).map_err(|err| {
        Error::new(
            ruby.exception_runtime_error(),
            format!("packhost: cannot convert a core value: {err}"),
        )
    })?;
    json_to_ruby(ruby, &json)
}

fn json_to_ruby(ruby: &Ruby, json: &serde_json::Value) -> Result<Value, Error> {
    use serde_json::Value as Json;
    Ok(match json {
        Json::Null => ruby.qnil().as_value(),
        Json::Bool(flag) => flag.into_value_with(ruby),
        Json::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                unsigned.into_value_with(ruby)
            } else if let Some(signed) = number.as_i64() {
                signed.into_value_with(ruby)
            } else {
                number.as_f64().unwrap_or(f64::NAN).into_value_with(ruby)
            }
        }
        Json::String(text) => ruby.str_new(text).as_value(),
        Json::Array(items) => {
            let array = ruby.ary_new_capa(items.len());
            for item in items {
                array.push(json_to_ruby(ruby, item)?)?;
            }
            array.as_value()
        }
        Json::Object(fields) => {
            let hash = ruby.hash_new();
            for (key, value) in fields {
                hash.aset(ruby.str_new(key), json_to_ruby(ruby, value)?)?;
            }
            hash.as_value()
        }
    })
}
