// {{name}}: a packhost pack in AssemblyScript with one action (`greet`) and the two hooks a
// host runs around an HTTP exchange (`pre` over the request, `post` over the response).
//
// `packhost build` compiles it with asc (the options are in asconfig.json) and embeds the
// manifest below; `packhost test` runs the cases in tests/.

import {
  fail,
  inputString,
  JsonField,
  JsonReader,
  manifest,
  outputString,
} from "packhost-pdk/assembly";

// What the pack says about itself. `packhost embed` runs this export and stores the JSON in
// the .wasm; every action needs a description, and every JSON input and output a schema,
// for `packhost check` to pass.
export function __packhost_manifest(): i32 {
  return manifest(`{
    "name": "{{name}}", "version": "0.1.0",
    "description": "A packhost pack: one action and the pre and post hooks",
    "actions": [
      {"name": "greet", "description": "Greets whoever the input names.",
       "input": {"encoding": "text"}, "output": {"encoding": "text"}},
      {"name": "pre", "description": "Allows requests to https URLs only.",
       "input": {"encoding": "json", "schema": {"type": "object",
         "properties": {"url": {"type": "string"}}, "required": ["url"]}},
       "output": {"encoding": "json", "schema": {"type": "object",
         "properties": {"allow": {"type": "boolean"}, "reason": {"type": "string"}},
         "required": ["allow"]}}},
      {"name": "post", "description": "Flags a response whose body mentions an error.",
       "input": {"encoding": "json", "schema": {"type": "object",
         "properties": {"body": {"type": "string"}}, "required": ["body"]}},
       "output": {"encoding": "json", "schema": {"type": "object",
         "properties": {"looks_like_error": {"type": "boolean"}},
         "required": ["looks_like_error"]}}}
    ]}`);
}

// Reads the string field `name` of the JSON object in `reader` into `reader.value` and
// returns 0; on any other input, fails the call and returns its code.
function readStringField(reader: JsonReader, name: string): i32 {
  const found = reader.field(name);
  if (found == JsonField.Found) return 0;
  if (found == JsonField.Missing) return fail("invalid input: missing field `" + name + "`");
  if (found == JsonField.NotAString) return fail("invalid input: `" + name + "` is not a string");
  return fail("invalid input: expected a JSON object with a string field `" + name + "`");
}

// Greets whoever the input names.
export function greet(): i32 {
  const name = inputString();
  if (name.length == 0) return fail("nothing to greet: the input is empty");
  outputString("Hello, " + name + "!");
  return 0;
}

// Allows requests to https URLs only; the request's other fields (method, headers, ...)
// do not matter here.
export function pre(): i32 {
  const request = new JsonReader(inputString());
  const failed = readStringField(request, "url");
  if (failed != 0) return failed;
  if (request.value.startsWith("https://")) {
    outputString(`{"allow":true}`);
  } else {
    outputString(`{"allow":false,"reason":"only https URLs are allowed"}`);
  }
  return 0;
}

// Flags a response whose body mentions an error.
export function post(): i32 {
  const response = new JsonReader(inputString());
  const failed = readStringField(response, "body");
  if (failed != 0) return failed;
  const error = response.value.includes("error");
  outputString(`{"looks_like_error":${error}}`);
  return 0;
}
