// The text-tools pack in JavaScript, built into a WebAssembly component by componentize-js
// (`packhost build`): the actions of the Rust pack (plugins/text-tools), passing the same
// conformance cases (tests/conformance/cases/component_text_tools.json). Its world is
// plugins/component-text-tools/world.wit.

import { config, log } from "packhost:pack/host@0.1.0";

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

function parse(input) {
  try {
    return JSON.parse(decoder.decode(input));
  } catch (error) {
    throw `invalid input: ${error.message}`;
  }
}

// The `text` field of the JSON object in `input`, or the call fails as the Rust pack's.
function textField(input) {
  const value = parse(input);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw "invalid input: expected a JSON object";
  }
  if (!("text" in value)) throw "invalid input: missing field `text`";
  if (typeof value.text !== "string") throw "invalid input: `text` is not a string";
  return value.text;
}

const json = (value) => encoder.encode(JSON.stringify(value));

// The value RFC 6901's `pointer` names in `document`, or the call fails.
function pointerTarget(document, pointer) {
  if (pointer === "") return document;
  if (!pointer.startsWith("/")) throw `nothing at ${pointer}`;
  let target = document;
  for (const raw of pointer.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(target)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token) || Number(token) >= target.length) {
        throw `nothing at ${pointer}`;
      }
      target = target[Number(token)];
    } else if (target !== null && typeof target === "object" && Object.hasOwn(target, token)) {
      target = target[token];
    } else {
      throw `nothing at ${pointer}`;
    }
  }
  return target;
}

// Code points, as Rust's `chars().count()` counts them.
const length = (text) => [...text].length;

export const countVowels = action((input) => {
  const vowels = [...textField(input)].filter((c) => "aeiouAEIOU".includes(c)).join("");
  return json({ count: length(vowels), vowels });
});

export const uppercase = action((input) => encoder.encode(decoder.decode(input).toUpperCase()));

export const wordStats = action((input) => {
  const text = textField(input);
  const words = text.split(/\s+/u).filter((word) => word.length > 0);
  let longest = null;
  for (const word of words) {
    if (longest === null || length(word) > length(longest)) longest = word;
  }
  const lines = text.length === 0 ? 0 : text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  return json({ chars: length(text), words: words.length, lines, longest_word: longest });
});

export const jsonPick = action((input) => {
  const pick = parse(input);
  if (pick === null || typeof pick !== "object" || !("document" in pick) || typeof pick.pointer !== "string") {
    throw "invalid input: expected a JSON object with `document` and a string `pointer`";
  }
  return json(pointerTarget(pick.document, pick.pointer));
});

export const greet = action((input) => {
  const greeting = config("greeting");
  return encoder.encode(`${greeting ?? "Hello"}, ${decoder.decode(input)}!`);
});

export const echo = action((input) => input);

export const failWith = action((input) => {
  throw decoder.decode(input) || "the pack failed";
});

export const chatty = action(() => {
  log("trace", "trace line");
  log("debug", "debug line");
  log("info", "info line");
  log("warn", "warn line");
  log("error", "error line");
  return encoder.encode("logged");
});
