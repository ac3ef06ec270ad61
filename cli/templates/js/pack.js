// {{name}}: a packhost pack in JavaScript with one action (`greet`) and the two hooks a host
// runs around an HTTP exchange (`pre` over the request, `post` over the response).
//
// `packhost build` makes it a WebAssembly component with componentize-js (installed into
// node_modules/ on the first build), its world in wit/, and embeds manifest.json;
// `packhost test` runs the cases in tests/. Each action takes the input bytes (a
// Uint8Array) and returns the output bytes; throwing fails the call with the error's
// message. The pack runs without WASI, so console output is dropped: log through `log`,
// read config through `config`.

import { log } from "packhost:pack/host@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Wraps an action so that anything it throws fails the call with a message (a thrown Error
// would otherwise trap).
function action(run) {
  return (input) => {
    try {
      return run(input);
    } catch (error) {
      throw error instanceof Error ? error.message : String(error);
    }
  };
}

// The string field `name` of the JSON object in `input`, or the call fails.
function stringField(input, name) {
  let value;
  try {
    value = JSON.parse(decoder.decode(input));
  } catch {
    value = null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw `invalid input: expected a JSON object with a string field \`${name}\``;
  }
  if (!(name in value)) throw `invalid input: missing field \`${name}\``;
  if (typeof value[name] !== "string") throw `invalid input: \`${name}\` is not a string`;
  return value[name];
}

export const greet = action((input) => {
  const name = decoder.decode(input);
  if (name.length === 0) throw "nothing to greet: the input is empty";
  log("debug", `greeting ${name}`);
  return encoder.encode(`Hello, ${name}!`);
});

export const pre = action((input) => {
  const url = stringField(input, "url");
  const verdict = url.startsWith("https://")
    ? { allow: true }
    : { allow: false, reason: "only https URLs are allowed" };
  return encoder.encode(JSON.stringify(verdict));
});

export const post = action((input) => {
  const body = stringField(input, "body");
  return encoder.encode(JSON.stringify({ looks_like_error: body.includes("error") }));
});
