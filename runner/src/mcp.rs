//! Packs' actions as Model Context Protocol tools: the tool list from the manifests (names,
//! descriptions, input schemas), `tools/call` to a call, and the JSON-RPC around them,
//! shared by the stdio transport (`packhost mcp`) and the runner's HTTP one (`POST /mcp`).

use std::io::{BufRead, Write};

use base64::Engine as _;
use packhost::{CallOptions, CallOutput, Encoding, Result};
use serde_json::{json, Map, Value};

use crate::catalogue::{Catalogue, Served};
use crate::config::RunnerConfig;
use crate::execute::Failure;

/// The protocol revisions this server speaks through the `initialize` handshake, newest
/// first; a client asking for another gets the newest. (Not 2025-03-26, whose JSON-RPC
/// batches this server does not take.)
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18"];

// JSON-RPC's error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// One action offered as a tool.
pub(crate) struct Tool {
    pub name: String,
    pub served: Served,
    pub action: String,
    input_encoding: Encoding,
    output_encoding: Encoding,
    /// Whether the action's input is the tool's `input` argument rather than all of its
    /// arguments (MCP's arguments are always an object; an input that is not one is wrapped).
    wrapped: bool,
    description: String,
    input_schema: Value,
}

/// Every tool of a set of packs: each served name's newest version, each of its actions.
#[derive(Default)]
pub(crate) struct Toolbox {
    tools: Vec<Tool>,
}

impl Toolbox {
    pub fn new(catalogue: &Catalogue) -> Toolbox {
        let mut tools = Vec::new();
        for served in catalogue.newest() {
            for spec in &served.pack.manifest().actions {
                let (wrapped, input_schema) =
                    input_schema(spec.input.encoding, spec.input.schema.as_ref());
                let description = if spec.description.is_empty() {
                    format!("{} of the {} pack", spec.name, served.name)
                } else {
                    spec.description.clone()
                };
                tools.push(Tool {
                    name: spec.name.clone(),
                    served: served.clone(),
                    action: spec.name.clone(),
                    input_encoding: spec.input.encoding,
                    output_encoding: spec.output.encoding,
                    wrapped,
                    description,
                    input_schema,
                });
            }
        }
        // An action name two packs share is told apart by its pack: `pack.action`.
        let names: Vec<String> = tools.iter().map(|tool| tool.name.clone()).collect();
        for tool in &mut tools {
            if names.iter().filter(|name| **name == tool.name).count() > 1 {
                tool.name = format!("{}.{}", tool.served.name, tool.action);
            }
        }
        Toolbox { tools }
    }

    fn find(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    fn list(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "inputSchema": tool.input_schema,
                })
            })
            .collect();
        json!({ "tools": tools })
    }
}

/// MCP wants an object schema for a tool's arguments: an action taking a JSON object keeps
/// its own; any other input becomes the argument `input` (the schema's definitions moved
/// up, so its references still resolve).
fn input_schema(encoding: Encoding, schema: Option<&Value>) -> (bool, Value) {
    let takes_object = schema
        .and_then(|schema| schema.get("type"))
        .is_some_and(|kind| kind == "object");
    match encoding {
        Encoding::Json if takes_object => (false, schema.cloned().unwrap_or_default()),
        Encoding::None => (false, json!({"type": "object", "properties": {}})),
        _ => {
            let mut inner = match (encoding, schema) {
                (Encoding::Json, Some(schema)) => schema.clone(),
                (Encoding::Json, None) => json!({}),
                _ => json!({"type": "string"}),
            };
            let mut wrapper = Map::new();
            wrapper.insert("type".into(), "object".into());
            if let Some(inner) = inner.as_object_mut() {
                inner.remove("$schema");
                for key in ["$defs", "definitions"] {
                    if let Some(definitions) = inner.remove(key) {
                        wrapper.insert(key.into(), definitions);
                    }
                }
            }
            wrapper.insert("properties".into(), json!({ "input": inner }));
            wrapper.insert("required".into(), json!(["input"]));
            (true, Value::Object(wrapper))
        }
    }
}

/// What to do with one incoming message.
pub(crate) enum Step<'a> {
    /// Answer this at once.
    Reply(Value),
    /// Run the tool with this input, then answer with [`call_result`].
    Call {
        id: Value,
        tool: &'a Tool,
        input: Vec<u8>,
    },
    /// A notification or a response: nothing to answer.
    Nothing,
}

/// Reads one JSON-RPC message (already parsed) against the toolbox.
pub(crate) fn dispatch<'a>(toolbox: &'a Toolbox, message: &Value) -> Step<'a> {
    let Some(object) = message.as_object() else {
        return Step::Reply(error(
            Value::Null,
            INVALID_REQUEST,
            "a message is a JSON object",
        ));
    };
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        // A response to something we never asked, or not JSON-RPC at all.
        return match object.get("id") {
            Some(id) if !object.contains_key("result") && !object.contains_key("error") => {
                Step::Reply(error(id.clone(), INVALID_REQUEST, "no method"))
            }
            _ => Step::Nothing,
        };
    };
    let Some(id) = object.get("id").cloned() else {
        return Step::Nothing; // notifications/initialized, cancellations: nothing to say
    };
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = PROTOCOL_VERSIONS
                .iter()
                .find(|known| Some(**known) == asked)
                .unwrap_or(&PROTOCOL_VERSIONS[0]);
            Step::Reply(result(
                id,
                json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": false}},
                    "serverInfo": {"name": "packhost", "version": packhost::build_info().version},
                }),
            ))
        }
        "ping" => Step::Reply(result(id, json!({}))),
        "tools/list" => Step::Reply(result(id, toolbox.list())),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return Step::Reply(error(id, INVALID_PARAMS, "tools/call needs a name"));
            };
            let Some(tool) = toolbox.find(name) else {
                return Step::Reply(error(id, INVALID_PARAMS, &format!("no tool {name:?}")));
            };
            let arguments = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            match tool_input(tool, arguments) {
                Ok(input) => Step::Call { id, tool, input },
                Err(why) => Step::Reply(error(id, INVALID_PARAMS, &why)),
            }
        }
        _ => Step::Reply(error(
            id,
            METHOD_NOT_FOUND,
            &format!("no method {method:?}"),
        )),
    }
}

/// The input bytes of a tool call's arguments.
fn tool_input(tool: &Tool, arguments: Value) -> std::result::Result<Vec<u8>, String> {
    if !tool.wrapped {
        return Ok(match tool.input_encoding {
            Encoding::None => Vec::new(),
            _ => serde_json::to_vec(&arguments).unwrap_or_default(),
        });
    }
    match arguments.get("input") {
        Some(Value::String(text)) if tool.input_encoding != Encoding::Json => {
            Ok(text.clone().into_bytes())
        }
        Some(value) if tool.input_encoding == Encoding::Json => {
            Ok(serde_json::to_vec(value).unwrap_or_default())
        }
        _ => Err(format!(
            "{} takes its input as the string argument `input`",
            tool.name
        )),
    }
}

/// The answer to a `tools/call`: the output as text (and as structured content when it is
/// a JSON object), or the failure as a tool error, `error[code] message`, which MCP clients
/// show the model rather than treat as a broken server.
pub(crate) fn call_result(
    id: Value,
    tool: &Tool,
    outcome: std::result::Result<CallOutput, Failure>,
) -> Value {
    match outcome {
        Ok(output) => {
            let structured = (tool.output_encoding == Encoding::Json)
                .then(|| serde_json::from_slice::<Value>(&output.output).ok())
                .flatten()
                .filter(Value::is_object);
            let text = match String::from_utf8(output.output) {
                Ok(text) => text,
                Err(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes()),
            };
            let mut answer = json!({
                "content": [{"type": "text", "text": text}],
                "isError": false,
            });
            if let Some(structured) = structured {
                answer["structuredContent"] = structured;
            }
            result(id, answer)
        }
        Err(failure) => result(
            id,
            json!({
                "content": [{"type": "text", "text": format!("error[{}] {}", failure.code, failure.message)}],
                "isError": true,
            }),
        ),
    }
}

/// The answer to a message that is not JSON.
pub(crate) fn parse_error(why: &str) -> Value {
    error(Value::Null, PARSE_ERROR, why)
}

fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// `packhost mcp`: serves the configured packs' actions as tools over stdio (one JSON-RPC
/// message per line in, one per line out) until stdin closes. Calls run one at a time,
/// under the packs' own limits; log lines go to stderr, never stdout.
///
/// # Errors
/// As loading the packs; `io` when stdout goes away.
pub fn serve_stdio(config: RunnerConfig) -> Result<()> {
    let config = config.finish(None)?;
    let catalogue = Catalogue::load(&config)?;
    let toolbox = Toolbox::new(&catalogue);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(err) => Some(parse_error(&err.to_string())),
            Ok(message) => match dispatch(&toolbox, &message) {
                Step::Reply(answer) => Some(answer),
                Step::Nothing => None,
                Step::Call { id, tool, input } => {
                    let outcome = tool
                        .served
                        .pack
                        .call_with_options(&tool.action, &input, &CallOptions::default())
                        .map_err(Failure::from);
                    Some(call_result(id, tool, outcome))
                }
            },
        };
        if let Some(answer) = answer {
            writeln!(stdout, "{answer}")
                .and_then(|()| stdout.flush())
                .map_err(|err| {
                    packhost::Error::new(packhost::ErrorKind::Io, format!("stdout: {err}"))
                })?;
        }
    }
    Ok(())
}

/// `POST /mcp`: MCP's HTTP transport (one JSON-RPC message per request, answered with
/// JSON; no server-initiated stream). Admitted like `/v1/execute` (draining, web pages,
/// token), and a tool call runs as a call of the tenant, under its limits, in the metrics.
pub(crate) async fn http(
    axum::extract::State(shared): axum::extract::State<std::sync::Arc<crate::Shared>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let (tenant, in_flight) = match crate::execute::admit_request(&shared, &headers) {
        Ok(admitted) => admitted,
        Err(failure) => return failure.into_response(),
    };
    let body = match crate::execute::read_body(&shared, body).await {
        Ok(body) => body,
        Err(failure) => return failure.into_response(),
    };
    let message = match serde_json::from_slice::<Value>(&body) {
        Ok(message) => message,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(parse_error(&err.to_string())),
            )
                .into_response()
        }
    };
    let catalogue = shared.catalogue();
    match dispatch(catalogue.tools(), &message) {
        Step::Reply(answer) => axum::Json(answer).into_response(),
        Step::Nothing => StatusCode::ACCEPTED.into_response(),
        Step::Call { id, tool, input } => {
            let started = std::time::Instant::now();
            let context = tenant.context_for(Value::Null).unwrap_or_default();
            let outcome = crate::execute::invoke(
                in_flight,
                &tenant,
                tool.served.pack.clone(),
                tool.action.clone(),
                input,
                context,
            )
            .await;
            let labels = crate::metrics::CallLabels {
                tenant: tenant.name.clone(),
                pack: tool.served.name.clone(),
                action: tool.action.clone(),
            };
            let fuel = outcome.as_ref().map(|output| output.usage.fuel_consumed);
            crate::execute::record_call(&shared, labels, started, fuel);
            axum::Json(call_result(id, tool, outcome)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_that_are_not_objects_become_the_input_argument() {
        let (wrapped, schema) = input_schema(Encoding::Text, None);
        assert!(wrapped);
        assert_eq!(schema["properties"]["input"]["type"], "string");
        let object = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        assert_eq!(
            input_schema(Encoding::Json, Some(&object)),
            (false, object.clone())
        );
        let list = json!({"$schema": "x", "type": "array", "items": {"$ref": "#/$defs/Item"},
                          "$defs": {"Item": {"type": "string"}}});
        let (wrapped, schema) = input_schema(Encoding::Json, Some(&list));
        assert!(wrapped);
        assert_eq!(schema["$defs"]["Item"]["type"], "string", "{schema}");
        assert_eq!(schema["properties"]["input"]["type"], "array");
        assert!(schema["properties"]["input"].get("$schema").is_none());
    }
}
