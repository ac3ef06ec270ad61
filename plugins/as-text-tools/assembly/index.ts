// The text-tools pack in AssemblyScript, on packhost's AssemblyScript PDK
// (pdk/assemblyscript): the actions of the Rust pack (plugins/text-tools) that need no JSON
// tree, passing the same conformance cases (tests/conformance/cases/text_tools.json, the
// cases that list "as_text_tools"). Built by `make packs` with the compiler plugins/as-plain
// installs.

import {
  abort,
  config,
  fail,
  input,
  inputString,
  jsonString,
  JsonField,
  JsonReader,
  log,
  LogLevel,
  manifest,
  output,
  outputString,
} from "../../../pdk/assemblyscript/assembly/index";

export function __packhost_manifest(): i32 {
  return manifest(`{
    "name": "text-tools-as", "version": "0.1.0",
    "description": "Text utilities in AssemblyScript: the text-tools actions that need no JSON tree",
    "capabilities": {"config": ["greeting"]},
    "actions": [
      {"name": "count_vowels",
       "description": "Counts the vowels (a, e, i, o, u, either case) in a text.",
       "input": {"encoding": "json", "schema": {"type": "object",
         "properties": {"text": {"type": "string"}}, "required": ["text"]}},
       "output": {"encoding": "json", "schema": {"type": "object",
         "properties": {"count": {"type": "integer", "minimum": 0}, "vowels": {"type": "string"}},
         "required": ["count", "vowels"]}}},
      {"name": "uppercase", "description": "Upper-cases text.",
       "input": {"encoding": "text"}, "output": {"encoding": "text"}},
      {"name": "greet",
       "description": "Greets someone, using the \`greeting\` config value the host granted (or \\"Hello\\").",
       "input": {"encoding": "text"}, "output": {"encoding": "text"}},
      {"name": "echo", "description": "Returns its input unchanged.",
       "input": {"encoding": "bytes"}, "output": {"encoding": "bytes"}},
      {"name": "fail_with",
       "description": "Always fails with the input as its message, to show how a pack reports errors.",
       "input": {"encoding": "text"}, "output": {"encoding": "none"}},
      {"name": "chatty", "description": "Logs one line at every level, then returns \\"logged\\".",
       "input": {"encoding": "none"}, "output": {"encoding": "text"}}
    ]}`);
}

export function count_vowels(): i32 {
  const reader = new JsonReader(inputString());
  const found = reader.field("text");
  if (found == JsonField.Missing) return fail("invalid input: missing field `text`");
  if (found == JsonField.NotAString) return fail("invalid input: `text` is not a string");
  if (found == JsonField.Invalid) return fail("invalid input: expected a JSON object");
  const units = new Array<i32>();
  const text = reader.value;
  for (let at = 0; at < text.length; at++) {
    const c = text.charCodeAt(at);
    if ("aeiouAEIOU".indexOf(String.fromCharCode(c)) >= 0) units.push(c);
  }
  const vowels = String.fromCharCodes(units);
  outputString(`{"count":${vowels.length},"vowels":${jsonString(vowels)}}`);
  return 0;
}

export function uppercase(): i32 {
  outputString(inputString().toUpperCase());
  return 0;
}

export function greet(): i32 {
  const greeting = config("greeting");
  outputString((greeting == null ? "Hello" : greeting) + ", " + inputString() + "!");
  return 0;
}

export function echo(): i32 {
  output(input());
  return 0;
}

export function fail_with(): i32 {
  return fail(inputString());
}

export function chatty(): i32 {
  log(LogLevel.Trace, "trace line");
  log(LogLevel.Debug, "debug line");
  log(LogLevel.Info, "info line");
  log(LogLevel.Warn, "warn line");
  log(LogLevel.Error, "error line");
  outputString("logged");
  return 0;
}

// The runtime's failures become the call's error (`--use abort=assembly/index/packAbort`).
function packAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  abort(message, file, line, column);
}
