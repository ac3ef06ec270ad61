// A test pack written in AssemblyScript on the plain Extism ABI, with no PDK: the imports
// are declared here, and input and output move through kernel memory 8 bytes and then
// 1 byte at a time. Built by `make packs` with the `assemblyscript` package from npm
// (pinned in package.json, installed into this folder's node_modules), with its incremental
// garbage collector, so an instance that serves many calls does not grow.
//
// Actions: greet (config), count (vars), shout (logs), fail (errors), fetch (HTTP),
// reverse (a host function). Cases: tests/conformance/cases/assemblyscript.json.

@external("extism:host/env", "input_length")
declare function input_length(): u64;
@external("extism:host/env", "input_load_u8")
declare function input_load_u8(index: u64): u8;
@external("extism:host/env", "input_load_u64")
declare function input_load_u64(index: u64): u64;
@external("extism:host/env", "alloc")
declare function alloc(size: u64): u64;
@external("extism:host/env", "free")
declare function free(block: u64): void;
@external("extism:host/env", "length")
declare function length(block: u64): u64;
@external("extism:host/env", "load_u8")
declare function load_u8(offset: u64): u8;
@external("extism:host/env", "load_u64")
declare function load_u64(offset: u64): u64;
@external("extism:host/env", "store_u8")
declare function store_u8(offset: u64, byte: u8): void;
@external("extism:host/env", "store_u64")
declare function store_u64(offset: u64, word: u64): void;
@external("extism:host/env", "output_set")
declare function output_set(block: u64, size: u64): void;
@external("extism:host/env", "error_set")
declare function error_set(block: u64): void;
@external("extism:host/env", "config_get")
declare function config_get(key: u64): u64;
@external("extism:host/env", "var_get")
declare function var_get(key: u64): u64;
@external("extism:host/env", "var_set")
declare function var_set(key: u64, value: u64): void;
@external("extism:host/env", "log_info")
declare function log_info(message: u64): void;
@external("extism:host/env", "log_warn")
declare function log_warn(message: u64): void;
@external("extism:host/env", "http_request")
declare function http_request(request: u64, body: u64): u64;
// The suite's host function.
@external("extism:host/user", "reverse")
declare function host_reverse(input: u64): u64;

// A new kernel block holding `data`, written 8 bytes at a time.
function storeBlock(data: Uint8Array): u64 {
  const offset = alloc(data.length);
  let i = 0;
  for (; i + 8 <= data.length; i += 8) {
    store_u64(offset + i, load<u64>(data.dataStart + i));
  }
  for (; i < data.length; i++) {
    store_u8(offset + i, data[i]);
  }
  return offset;
}

function storeText(text: string): u64 {
  return storeBlock(Uint8Array.wrap(String.UTF8.encode(text)));
}

// The bytes of the kernel block at `offset`, 8 bytes at a time; null for offset 0.
function blockBytes(offset: u64): Uint8Array | null {
  if (offset == 0) return null;
  const bytes = new Uint8Array(<i32>length(offset));
  let i = 0;
  for (; i + 8 <= bytes.length; i += 8) {
    store<u64>(bytes.dataStart + i, load_u64(offset + i));
  }
  for (; i < bytes.length; i++) {
    bytes[i] = load_u8(offset + i);
  }
  return bytes;
}

function blockText(offset: u64): string | null {
  const bytes = blockBytes(offset);
  return bytes == null ? null : String.UTF8.decode(bytes.buffer);
}

function input(): Uint8Array {
  const bytes = new Uint8Array(<i32>input_length());
  let i = 0;
  for (; i + 8 <= bytes.length; i += 8) {
    store<u64>(bytes.dataStart + i, input_load_u64(i));
  }
  for (; i < bytes.length; i++) {
    bytes[i] = input_load_u8(i);
  }
  return bytes;
}

function inputText(): string {
  return String.UTF8.decode(input().buffer);
}

function output(data: Uint8Array): void {
  output_set(storeBlock(data), data.length);
}

function outputText(text: string): void {
  output(Uint8Array.wrap(String.UTF8.encode(text)));
}

// "<greeting>, <input>!", the greeting from config key `greeting` (default "Hello").
export function greet(): i32 {
  const name = inputText();
  // The host takes the key's block.
  const greeting = blockText(config_get(storeText("greeting")));
  outputText((greeting == null ? "Hello" : greeting) + ", " + name + "!");
  return 0;
}

// Counts its calls in var `count` (kept while the instance is) and returns the count.
export function count(): i32 {
  const previous = blockText(var_get(storeText("count")));
  const seen = previous == null ? 0 : I32.parseInt(previous);
  const text = (seen + 1).toString();
  var_set(storeText("count"), storeText(text));
  outputText(text);
  return 0;
}

// Logs its input at info, a warning after it, and returns the input with its ASCII
// letters in capitals (the bytes as they came, as the C and Zig packs do).
export function shout(): i32 {
  const bytes = input();
  log_info(storeBlock(bytes));
  log_warn(storeText("shouting"));
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte >= 0x61 && byte <= 0x7a) bytes[i] = byte - 0x20;
  }
  output(bytes);
  return 0;
}

// Fails with return code 3 and the message "refused: <input>".
export function fail(): i32 {
  error_set(storeText("refused: " + inputText()));
  return 3;
}

// GETs the URL in the input and returns the response body.
export function fetch(): i32 {
  const request = '{"url":"' + inputText() + '","method":"GET"}';
  const body = blockBytes(http_request(storeText(request), 0));
  output(body == null ? new Uint8Array(0) : body);
  return 0;
}

// Returns what the host's `reverse` makes of the input.
export function reverse(): i32 {
  const reversed = blockBytes(host_reverse(storeBlock(input())));
  output(reversed == null ? new Uint8Array(0) : reversed);
  return 0;
}

// AssemblyScript's runtime reports a failed assertion or an out-of-bounds access here
// instead of importing `env.abort`, which no Extism host provides (`--use abort=...` in the
// build): the message becomes the call's error.
function packAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  const text = (message == null ? "abort" : message) + " at " + (file == null ? "?" : file) +
    ":" + line.toString() + ":" + column.toString();
  error_set(storeText(text));
  unreachable();
}
