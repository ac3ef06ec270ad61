// packhost's AssemblyScript PDK: the Extism plugin ABI as plain functions (input, output,
// errors, logs, config, vars, HTTP, host functions through blocks, key-value storage,
// secrets) and enough JSON for a pack's input and output. AssemblyScript compiles only what
// a pack reaches, so a pack imports only the host functions it uses.

// ---------------------------------------------------------------------------------------
// The Extism ABI (`extism:host/env`) and packhost's capabilities

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
@external("extism:host/env", "http_request")
declare function http_request(request: u64, body: u64): u64;
@external("extism:host/env", "http_status_code")
declare function http_status_code(): i32;
@external("extism:host/env", "log_trace")
declare function log_trace(message: u64): void;
@external("extism:host/env", "log_debug")
declare function log_debug(message: u64): void;
@external("extism:host/env", "log_info")
declare function log_info(message: u64): void;
@external("extism:host/env", "log_warn")
declare function log_warn(message: u64): void;
@external("extism:host/env", "log_error")
declare function log_error(message: u64): void;
@external("packhost:host/kv", "get")
declare function kv_get(key: u64): i64;
@external("packhost:host/kv", "set")
declare function kv_set(key: u64, value: u64, ttlMs: i64): void;
@external("packhost:host/kv", "delete")
declare function kv_delete(key: u64): i32;
@external("packhost:host/secrets", "get")
declare function secret_get(name: u64): u64;

// ---------------------------------------------------------------------------------------
// Blocks: the host's side of the ABI

// A new kernel block holding `data` (0 for none), written 8 bytes at a time. Hand it to a
// host function you import from `extism:host/user`.
export function toBlock(data: Uint8Array): u64 {
  if (data.length == 0) return 0;
  const offset = alloc(data.length);
  // The host refused the memory: writing from 0 would overwrite its reserved bytes.
  if (offset == 0) unreachable();
  let at = 0;
  for (; at + 8 <= data.length; at += 8) {
    store_u64(offset + at, load<u64>(data.dataStart + at));
  }
  for (; at < data.length; at++) {
    store_u8(offset + at, data[at]);
  }
  return offset;
}

// Frees a block the pack made with `toBlock` and no longer needs (a host function's input:
// the host reads it and leaves it to the pack).
export function freeBlock(block: u64): void {
  if (block != 0) free(block);
}

function textBlock(text: string): u64 {
  return toBlock(Uint8Array.wrap(String.UTF8.encode(text)));
}

// The bytes of the kernel block at `offset`, which is then freed; empty for 0. Read a host
// function's answer with it.
export function fromBlock(offset: u64): Uint8Array {
  if (offset == 0) return new Uint8Array(0);
  const bytes = new Uint8Array(<i32>length(offset));
  let at = 0;
  for (; at + 8 <= bytes.length; at += 8) {
    store<u64>(bytes.dataStart + at, load_u64(offset + at));
  }
  for (; at < bytes.length; at++) {
    bytes[at] = load_u8(offset + at);
  }
  free(offset);
  return bytes;
}

function utf8(bytes: Uint8Array): string {
  return String.UTF8.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

// ---------------------------------------------------------------------------------------
// Input, output, errors, the manifest

// The call's input.
export function input(): Uint8Array {
  const bytes = new Uint8Array(<i32>input_length());
  let at = 0;
  for (; at + 8 <= bytes.length; at += 8) {
    store<u64>(bytes.dataStart + at, input_load_u64(at));
  }
  for (; at < bytes.length; at++) {
    bytes[at] = input_load_u8(at);
  }
  return bytes;
}

// The call's input as UTF-8 text.
export function inputString(): string {
  return utf8(input());
}

// Sets the call's output.
export function output(data: Uint8Array): void {
  output_set(toBlock(data), data.length);
}

export function outputString(text: string): void {
  output(Uint8Array.wrap(String.UTF8.encode(text)));
}

// Ends the action with `message` as the call's error: `return fail("declined")`. The host
// reports `plugin_error` with the message and return code 1. An empty message would be no
// error at all (an empty block is offset 0), so it becomes "the pack failed".
export function fail(message: string): i32 {
  error_set(textBlock(message.length == 0 ? "the pack failed" : message));
  return 1;
}

// The body of the `__packhost_manifest` export the pack declares, which `packhost embed`
// runs to store the manifest (JSON text) in the pack.
export function manifest(json: string): i32 {
  outputString(json);
  return 0;
}

// AssemblyScript's runtime reports a failed assertion or an out-of-bounds access here
// (`--use abort=~lib/packhost-pdk/assembly/index/abort`), since no Extism host lends
// `env.abort`: the message becomes the call's error.
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  error_set(textBlock((message == null ? "abort" : message) + " at " +
    (file == null ? "?" : file) + ":" + line.toString() + ":" + column.toString()));
  unreachable();
}

// ---------------------------------------------------------------------------------------
// Logs, config, vars

export enum LogLevel { Trace, Debug, Info, Warn, Error }

// One log line at `level`; the host keeps it when its log level lets it through.
export function log(level: LogLevel, message: string): void {
  const block = textBlock(message);
  switch (level) {
    case LogLevel.Trace: log_trace(block); break;
    case LogLevel.Debug: log_debug(block); break;
    case LogLevel.Info: log_info(block); break;
    case LogLevel.Warn: log_warn(block); break;
    default: log_error(block);
  }
}

// The config value under `key`, or null when the host set none (or did not grant the key).
export function config(key: string): string | null {
  // The host takes the key's block, as with vars.
  const found = config_get(textBlock(key));
  return found == 0 ? null : utf8(fromBlock(found));
}

// The var under `key` (kept by the instance between its calls), or null.
export function varGet(key: string): Uint8Array | null {
  const found = var_get(textBlock(key));
  return found == 0 ? null : fromBlock(found);
}

// Sets the var under `key`; null removes it.
export function varSet(key: string, value: Uint8Array | null): void {
  var_set(textBlock(key), value == null ? 0 : toBlock(value!));
}

// ---------------------------------------------------------------------------------------
// HTTP, key-value storage, secrets

export class HttpResponse {
  constructor(public status: i32, public body: Uint8Array) {}
}

// Sends the request `requestJson` describes (`{"url": ..., "method": ..., "headers":
// {...}}`) with `body`, within the host's grant; a host that refuses it fails the call.
export function httpRequest(requestJson: string, body: Uint8Array | null = null): HttpResponse {
  const response = http_request(textBlock(requestJson), body == null ? 0 : toBlock(body!));
  return new HttpResponse(http_status_code(), fromBlock(response));
}

// The value under `key` in the pack's key-value store (for the calling tenant), or null.
// Needs `"kv": true` in the manifest and the host's grant.
export function kvGet(key: string): Uint8Array | null {
  const keyBlock = textBlock(key);
  const found = kv_get(keyBlock);
  free(keyBlock);
  return found < 0 ? null : fromBlock(<u64>found);
}

// Stores `value` under `key`, for `ttlMs` milliseconds when positive.
export function kvSet(key: string, value: Uint8Array, ttlMs: i64 = 0): void {
  const keyBlock = textBlock(key);
  const valueBlock = toBlock(value);
  kv_set(keyBlock, valueBlock, ttlMs);
  free(keyBlock);
  if (valueBlock != 0) free(valueBlock);
}

// Removes `key`; true when it was there.
export function kvDelete(key: string): bool {
  const keyBlock = textBlock(key);
  const removed = kv_delete(keyBlock) == 1;
  free(keyBlock);
  return removed;
}

// The secret named `name` (declared in the manifest's `secrets`, supplied by the host).
export function secret(name: string): string {
  const nameBlock = textBlock(name);
  const value = utf8(fromBlock(secret_get(nameBlock)));
  free(nameBlock);
  return value;
}

// ---------------------------------------------------------------------------------------
// JSON, enough for a pack's input and output

// `text` as a JSON string, quotes included.
export function jsonString(text: string): string {
  // Pieces joined once: adding to a string one character at a time copies it each time.
  const pieces = new Array<string>();
  pieces.push("\"");
  let plain = 0;
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code != 0x22 && code != 0x5c && code >= 0x20) continue;
    pieces.push(text.substring(plain, at));
    if (code == 0x22) pieces.push("\\\"");
    else if (code == 0x5c) pieces.push("\\\\");
    else pieces.push("\\u00" + (code < 0x10 ? "0" : "") + code.toString(16));
    plain = at + 1;
  }
  pieces.push(text.substring(plain));
  pieces.push("\"");
  return pieces.join("");
}

export enum JsonField {
  // The field holds a string, now in `JsonReader.value`.
  Found,
  // The input is a JSON object without the field.
  Missing,
  // The field holds something other than a string.
  NotAString,
  // The input is not a JSON object.
  Invalid,
}

// How deep JSON the reader follows.
const JSON_MAX_DEPTH = 128;

// Reads the string in one field of a JSON object: `reader.field("text")`, then
// `reader.value`.
export class JsonReader {
  private at: i32 = 0;
  value: string = "";

  constructor(private json: string) {}

  field(name: string): JsonField {
    this.at = 0;
    let result = JsonField.Missing;
    if (!this.take(0x7b)) return JsonField.Invalid;
    this.space();
    if (this.take(0x7d)) return this.end() ? result : JsonField.Invalid;
    while (true) {
      this.space();
      const key = this.string();
      if (key == null) return JsonField.Invalid;
      if (!this.take(0x3a)) return JsonField.Invalid;
      this.space();
      if (key == name && result == JsonField.Missing) {
        if (this.peek() == 0x22) {
          const text = this.string();
          if (text == null) return JsonField.Invalid;
          this.value = text;
          result = JsonField.Found;
        } else {
          if (!this.skip()) return JsonField.Invalid;
          result = JsonField.NotAString;
        }
      } else if (!this.skip()) {
        return JsonField.Invalid;
      }
      if (this.take(0x2c)) continue;
      if (this.take(0x7d)) return this.end() ? result : JsonField.Invalid;
      return JsonField.Invalid;
    }
  }

  private peek(): i32 {
    return this.at < this.json.length ? this.json.charCodeAt(this.at) : -1;
  }

  private space(): void {
    while (true) {
      const c = this.peek();
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
      this.at++;
    }
  }

  // Skips space, then takes `c` when it comes next.
  private take(c: i32): bool {
    this.space();
    if (this.peek() != c) return false;
    this.at++;
    return true;
  }

  private end(): bool {
    this.space();
    return this.at == this.json.length;
  }

  private string(): string | null {
    if (this.peek() != 0x22) return null;
    this.at++;
    // UTF-16 code units, made into a string once.
    const units = new Array<i32>();
    while (true) {
      const c = this.peek();
      if (c < 0x20) return null;
      this.at++;
      if (c == 0x22) return String.fromCharCodes(units);
      if (c != 0x5c) {
        units.push(c);
        continue;
      }
      const escaped = this.peek();
      this.at++;
      if (escaped == 0x22 || escaped == 0x5c || escaped == 0x2f) units.push(escaped);
      else if (escaped == 0x62) units.push(0x08);
      else if (escaped == 0x66) units.push(0x0c);
      else if (escaped == 0x6e) units.push(0x0a);
      else if (escaped == 0x72) units.push(0x0d);
      else if (escaped == 0x74) units.push(0x09);
      else if (escaped == 0x75) {
        const code = this.hex4();
        if (code < 0) return null;
        units.push(code);
      } else return null;
    }
  }

  // The four hex digits at the reader, as a number; -1 when they are not four hex digits.
  private hex4(): i32 {
    if (this.at + 4 > this.json.length) return -1;
    let code = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.json.charCodeAt(this.at + i);
      const digit = c >= 0x30 && c <= 0x39 ? c - 0x30
        : c >= 0x61 && c <= 0x66 ? c - 0x57
        : c >= 0x41 && c <= 0x46 ? c - 0x37
        : -1;
      if (digit < 0) return -1;
      code = code * 16 + digit;
    }
    this.at += 4;
    return code;
  }

  // Skips the value at the reader, `depth` levels down: deeper input than
  // JSON_MAX_DEPTH is refused, not a stack overflow.
  private skip(depth: i32 = 1): bool {
    if (depth > JSON_MAX_DEPTH) return false;
    this.space();
    const c = this.peek();
    if (c == 0x22) return this.string() != null;
    if (c == 0x7b || c == 0x5b) {
      const close = c == 0x7b ? 0x7d : 0x5d;
      this.at++;
      if (this.take(close)) return true;
      while (true) {
        if (close == 0x7d) {
          this.space();
          if (this.string() == null || !this.take(0x3a)) return false;
        }
        if (!this.skip(depth + 1)) return false;
        if (this.take(0x2c)) continue;
        return this.take(close);
      }
    }
    const start = this.at;
    while (this.at < this.json.length && "0123456789+-.eEtruefalsn".indexOf(this.json.charAt(this.at)) >= 0) {
      this.at++;
    }
    return this.at > start;
  }
}
