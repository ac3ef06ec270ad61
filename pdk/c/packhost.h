// packhost's C PDK: write a pack in C on the Extism plugin ABI, in one header.
//
// Build with clang and wasi-libc as a WASI reactor (Debian: clang, lld, wasi-libc):
//
//   clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all \
//     -I pdk/c -o my_pack.wasm my_pack.c
//   packhost embed my_pack.wasm -o my_pack.wasm
//
// A pack exports its actions with PH_ACTION, describes itself with PH_MANIFEST (the JSON a
// packhost manifest holds, which `packhost embed` puts in the pack), reads its
// input with ph_input and answers with ph_output, or fails with ph_fail. Everything else the
// host lends goes through functions here: logs, config, vars, HTTP, host functions,
// key-value storage and secrets. Every function is `static inline`, so a pack carries only
// what it calls, and imports only what it uses.
//
// Bytes the PDK hands out (`ph_bytes`) come from malloc; release them with ph_bytes_free.
// A pack that runs out of memory traps rather than write through NULL (a valid address in
// wasm).

#ifndef PACKHOST_H
#define PACKHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------
// Declaring a pack

// An action: `PH_ACTION(count_vowels) { ... return 0; }`. It returns 0 on success, or the
// non-zero code of ph_fail.
#define PH_ACTION(name) __attribute__((export_name(#name))) int32_t name(void)

// The pack's manifest, a JSON string literal: name, version, description, actions with
// their schemas, and the capabilities it asks for (README, "Manifest"). It becomes the
// `__packhost_manifest` export, as with packhost-pdk for Rust, which `packhost embed`
// runs to put the manifest in the pack's `packhost/manifest` section (clang has no way to
// write a custom section from C).
#define PH_MANIFEST(json)                                                                  \
  __attribute__((export_name("__packhost_manifest"))) int32_t ph__manifest(void) {        \
    static const char manifest[] = json;                                                   \
    ph_output(manifest, sizeof(manifest) - 1);                                             \
    return 0;                                                                              \
  }

// A function the host lends in `extism:host/user` (where every Extism PDK puts them), with
// the bytes-in, bytes-out shape: `PH_HOST_FUNCTION(host_reverse, "reverse");` declares
// `uint64_t host_reverse(uint64_t)`, which ph_call_host calls.
#define PH_HOST_FUNCTION(c_name, import)                                                   \
  __attribute__((import_module("extism:host/user"), import_name(import)))                \
  uint64_t c_name(uint64_t input)

// ---------------------------------------------------------------------------------------
// The Extism ABI (`extism:host/env`)

#define PH__ENV(name) __attribute__((import_module("extism:host/env"), import_name(#name)))

// An offset in kernel memory, the host's side of the ABI; 0 is "no block".
typedef uint64_t ph_block;

PH__ENV(input_length) uint64_t ph__input_length(void);
PH__ENV(input_load_u8) uint8_t ph__input_load_u8(uint64_t index);
PH__ENV(input_load_u64) uint64_t ph__input_load_u64(uint64_t index);
PH__ENV(alloc) ph_block ph__alloc(uint64_t length);
PH__ENV(free) void ph__free(ph_block block);
PH__ENV(length) uint64_t ph__length(ph_block block);
PH__ENV(load_u8) uint8_t ph__load_u8(ph_block offset);
PH__ENV(load_u64) uint64_t ph__load_u64(ph_block offset);
PH__ENV(store_u8) void ph__store_u8(ph_block offset, uint8_t byte);
PH__ENV(store_u64) void ph__store_u64(ph_block offset, uint64_t word);
PH__ENV(output_set) void ph__output_set(ph_block block, uint64_t length);
PH__ENV(error_set) void ph__error_set(ph_block block);
PH__ENV(config_get) ph_block ph__config_get(ph_block key);
PH__ENV(var_get) ph_block ph__var_get(ph_block key);
PH__ENV(var_set) void ph__var_set(ph_block key, ph_block value);
PH__ENV(http_request) ph_block ph__http_request(ph_block request, ph_block body);
PH__ENV(http_status_code) int32_t ph__http_status_code(void);
PH__ENV(log_trace) void ph__log_trace(ph_block message);
PH__ENV(log_debug) void ph__log_debug(ph_block message);
PH__ENV(log_info) void ph__log_info(ph_block message);
PH__ENV(log_warn) void ph__log_warn(ph_block message);
PH__ENV(log_error) void ph__log_error(ph_block message);

#define PH__KV(name) __attribute__((import_module("packhost:host/kv"), import_name(#name)))
PH__KV(get) int64_t ph__kv_get(ph_block key);
PH__KV(set) void ph__kv_set(ph_block key, ph_block value, int64_t ttl_ms);
PH__KV(delete) int32_t ph__kv_delete(ph_block key);

__attribute__((import_module("packhost:host/secrets"), import_name("get")))
ph_block ph__secret_get(ph_block name);

// ---------------------------------------------------------------------------------------
// Bytes

// Bytes the pack owns (malloc); `data` is NULL only when `length` is 0.
typedef struct {
  uint8_t *data;
  uint64_t length;
} ph_bytes;

static inline void *ph__malloc(uint64_t size) {
  void *memory = size < SIZE_MAX ? malloc(size ? (size_t)size : 1) : NULL;
  if (memory == NULL) {
    __builtin_trap();
  }
  return memory;
}

static inline void ph_bytes_free(ph_bytes bytes) { free(bytes.data); }

// Copies `length` bytes of kernel memory at `offset` into `out`, 8 bytes at a time.
static inline void ph__load(ph_block offset, uint8_t *out, uint64_t length) {
  uint64_t at = 0;
  for (; at + 8 <= length; at += 8) {
    uint64_t word = ph__load_u64(offset + at);
    memcpy(out + at, &word, 8);
  }
  for (; at < length; at++) {
    out[at] = ph__load_u8(offset + at);
  }
}

// A new block holding `length` bytes of `data`, or 0 for none.
static inline ph_block ph__block(const void *data, uint64_t length) {
  if (length == 0) {
    return 0;
  }
  ph_block block = ph__alloc(length);
  if (block == 0) {
    __builtin_trap();
  }
  const uint8_t *bytes = data;
  uint64_t at = 0;
  for (; at + 8 <= length; at += 8) {
    uint64_t word;
    memcpy(&word, bytes + at, 8);
    ph__store_u64(block + at, word);
  }
  for (; at < length; at++) {
    ph__store_u8(block + at, bytes[at]);
  }
  return block;
}

static inline ph_block ph__text_block(const char *text) { return ph__block(text, strlen(text)); }

// The bytes of `block`, which is then freed.
static inline ph_bytes ph__take(ph_block block) {
  ph_bytes bytes = {NULL, block ? ph__length(block) : 0};
  if (bytes.length) {
    bytes.data = ph__malloc(bytes.length);
    ph__load(block, bytes.data, bytes.length);
  }
  if (block) {
    ph__free(block);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------
// Input, output, errors

// The length of the call's input.
static inline uint64_t ph_input_length(void) { return ph__input_length(); }

// Copies up to `length` bytes of the input from `offset` into `into`; returns how many. A
// pack that reads its input in pieces this way needs no heap (and carries no allocator).
static inline uint64_t ph_input_read(uint64_t offset, void *into, uint64_t length) {
  uint64_t total = ph__input_length();
  uint64_t count = offset < total ? total - offset : 0;
  count = count < length ? count : length;
  uint8_t *out = into;
  uint64_t at = 0;
  for (; at + 8 <= count; at += 8) {
    uint64_t word = ph__input_load_u64(offset + at);
    memcpy(out + at, &word, 8);
  }
  for (; at < count; at++) {
    out[at] = ph__input_load_u8(offset + at);
  }
  return count;
}

// The call's input, whole.
static inline ph_bytes ph_input(void) {
  ph_bytes input = {NULL, ph__input_length()};
  if (input.length) {
    input.data = ph__malloc(input.length);
    ph_input_read(0, input.data, input.length);
  }
  return input;
}

// Sets the call's output.
static inline void ph_output(const void *data, uint64_t length) {
  ph__output_set(ph__block(data, length), length);
}

static inline void ph_output_text(const char *text) { ph_output(text, strlen(text)); }

// Ends the action with `message` as the call's error: `return ph_fail("declined");`. The
// host reports `plugin_error` with the message and return code 1. An empty message would be
// no error at all (an empty block is offset 0), so it becomes "the pack failed".
static inline int32_t ph_fail(const char *message) {
  ph__error_set(ph__text_block(message != NULL && *message ? message : "the pack failed"));
  return 1;
}

// ---------------------------------------------------------------------------------------
// Logs, config, vars

typedef enum { PH_TRACE, PH_DEBUG, PH_INFO, PH_WARN, PH_ERROR } ph_log_level;

// One log line at `level`; the host keeps it when its log level lets it through.
static inline void ph_log(ph_log_level level, const char *message) {
  ph_block block = ph__text_block(message);
  switch (level) {
  case PH_TRACE: ph__log_trace(block); break;
  case PH_DEBUG: ph__log_debug(block); break;
  case PH_INFO: ph__log_info(block); break;
  case PH_WARN: ph__log_warn(block); break;
  default: ph__log_error(block); break;
  }
}

// The config value under `key` into `value`; false when the host set none (or did not grant
// the key). The host takes the key's block, as with vars.
static inline bool ph_config(const char *key, ph_bytes *value) {
  ph_block found = ph__config_get(ph__text_block(key));
  if (found == 0) {
    return false;
  }
  *value = ph__take(found);
  return true;
}

// The var under `key` (kept by the instance between its calls) into `value`; false when
// there is none.
static inline bool ph_var_get(const char *key, ph_bytes *value) {
  ph_block found = ph__var_get(ph__text_block(key));
  if (found == 0) {
    return false;
  }
  *value = ph__take(found);
  return true;
}

// Sets the var under `key`; a NULL `data` removes it.
static inline void ph_var_set(const char *key, const void *data, uint64_t length) {
  ph__var_set(ph__text_block(key), data ? ph__block(data, length) : 0);
}

// ---------------------------------------------------------------------------------------
// HTTP, host functions, key-value storage, secrets

typedef struct {
  // The response's status, or 0 when no response came.
  int32_t status;
  ph_bytes body;
} ph_http_response;

// Sends the request `request_json` describes (`{"url": ..., "method": ..., "headers":
// {...}}`) with `body`, within the host's grant; a host that refuses it fails the call.
static inline ph_http_response ph_http_request(const char *request_json, const void *body,
                                               uint64_t body_length) {
  ph_block response =
      ph__http_request(ph__text_block(request_json), ph__block(body, body_length));
  ph_http_response result = {ph__http_status_code(), ph__take(response)};
  return result;
}

// Calls a host function declared with PH_HOST_FUNCTION on `length` bytes of `data`.
static inline ph_bytes ph_call_host(uint64_t (*function)(uint64_t), const void *data,
                                    uint64_t length) {
  ph_block input = ph__block(data, length);
  ph_block answer = function(input);
  // The host reads the input and leaves its block to the pack.
  if (input != 0 && input != answer) {
    ph__free(input);
  }
  return ph__take(answer);
}

// The value under `key` in the pack's key-value store (for the calling tenant) into
// `value`; false when there is none. Needs `"kv": true` in the manifest and the host's
// grant.
static inline bool ph_kv_get(const char *key, ph_bytes *value) {
  ph_block key_block = ph__text_block(key);
  int64_t found = ph__kv_get(key_block);
  ph__free(key_block);
  if (found < 0) {
    return false;
  }
  *value = ph__take((ph_block)found);
  return true;
}

// Stores `length` bytes of `data` under `key`, for `ttl_ms` milliseconds when positive.
static inline void ph_kv_set(const char *key, const void *data, uint64_t length,
                             int64_t ttl_ms) {
  ph_block key_block = ph__text_block(key);
  ph_block value = ph__block(data, length);
  ph__kv_set(key_block, value, ttl_ms);
  ph__free(key_block);
  if (value) {
    ph__free(value);
  }
}

// Removes `key`; true when it was there.
static inline bool ph_kv_delete(const char *key) {
  ph_block key_block = ph__text_block(key);
  bool removed = ph__kv_delete(key_block) == 1;
  ph__free(key_block);
  return removed;
}

// The secret named `name` (declared in the manifest's `secrets`, supplied by the host).
static inline ph_bytes ph_secret(const char *name) {
  ph_block name_block = ph__text_block(name);
  ph_bytes value = ph__take(ph__secret_get(name_block));
  ph__free(name_block);
  return value;
}

// ---------------------------------------------------------------------------------------
// Text and JSON, enough for a pack's input and output

// A growing buffer of bytes.
typedef struct {
  uint8_t *data;
  uint64_t length;
  uint64_t capacity;
} ph_buffer;

static inline void ph_buffer_append(ph_buffer *buffer, const void *data, uint64_t length) {
  if (buffer->length + length > buffer->capacity) {
    uint64_t capacity = buffer->capacity ? buffer->capacity : 64;
    while (capacity < buffer->length + length) {
      capacity *= 2;
    }
    uint8_t *grown = ph__malloc(capacity);
    if (buffer->length) {
      memcpy(grown, buffer->data, buffer->length);
    }
    free(buffer->data);
    buffer->data = grown;
    buffer->capacity = capacity;
  }
  if (length) {
    memcpy(buffer->data + buffer->length, data, length);
  }
  buffer->length += length;
}

static inline void ph_buffer_text(ph_buffer *buffer, const char *text) {
  ph_buffer_append(buffer, text, strlen(text));
}

// Writes `number` in decimal into `out` (20 bytes hold any); returns the length.
static inline uint64_t ph_decimal(char *out, uint64_t number) {
  char digits[20];
  uint64_t count = 0;
  do {
    digits[count++] = (char)('0' + number % 10);
    number /= 10;
  } while (number);
  for (uint64_t at = 0; at < count; at++) {
    out[at] = digits[count - 1 - at];
  }
  return count;
}

// Appends an unsigned number in decimal.
static inline void ph_buffer_number(ph_buffer *buffer, uint64_t number) {
  char digits[20];
  ph_buffer_append(buffer, digits, ph_decimal(digits, number));
}

// Appends `length` bytes of UTF-8 as a JSON string, quotes included.
static inline void ph_buffer_json_string(ph_buffer *buffer, const uint8_t *text,
                                         uint64_t length) {
  static const char hex[] = "0123456789abcdef";
  ph_buffer_append(buffer, "\"", 1);
  for (uint64_t at = 0; at < length; at++) {
    uint8_t byte = text[at];
    if (byte == '"' || byte == '\\') {
      char escaped[2] = {'\\', (char)byte};
      ph_buffer_append(buffer, escaped, 2);
    } else if (byte < 0x20) {
      char escaped[6] = {'\\', 'u', '0', '0', hex[byte >> 4], hex[byte & 15]};
      ph_buffer_append(buffer, escaped, 6);
    } else {
      ph_buffer_append(buffer, &byte, 1);
    }
  }
  ph_buffer_append(buffer, "\"", 1);
}

// Sets the call's output to the buffer's bytes and frees it.
static inline void ph_output_buffer(ph_buffer *buffer) {
  ph_output(buffer->data, buffer->length);
  free(buffer->data);
  *buffer = (ph_buffer){0};
}

static inline const uint8_t *ph__json_space(const uint8_t *at, const uint8_t *end) {
  while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r')) {
    at++;
  }
  return at;
}

static inline int ph__hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads four hex digits at `at`; -1 when they are not.
static inline int32_t ph__json_hex4(const uint8_t *at, const uint8_t *end) {
  if (end - at < 4) return -1;
  int32_t value = 0;
  for (int i = 0; i < 4; i++) {
    int digit = ph__hex_digit(at[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Appends the character `code` as UTF-8.
static inline void ph_buffer_utf8(ph_buffer *out, uint32_t code) {
  uint8_t bytes[4];
  uint64_t count;
  if (code < 0x80) {
    bytes[0] = (uint8_t)code;
    count = 1;
  } else if (code < 0x800) {
    bytes[0] = (uint8_t)(0xC0 | code >> 6);
    bytes[1] = (uint8_t)(0x80 | (code & 0x3F));
    count = 2;
  } else if (code < 0x10000) {
    bytes[0] = (uint8_t)(0xE0 | code >> 12);
    bytes[1] = (uint8_t)(0x80 | (code >> 6 & 0x3F));
    bytes[2] = (uint8_t)(0x80 | (code & 0x3F));
    count = 3;
  } else {
    bytes[0] = (uint8_t)(0xF0 | code >> 18);
    bytes[1] = (uint8_t)(0x80 | (code >> 12 & 0x3F));
    bytes[2] = (uint8_t)(0x80 | (code >> 6 & 0x3F));
    bytes[3] = (uint8_t)(0x80 | (code & 0x3F));
    count = 4;
  }
  ph_buffer_append(out, bytes, count);
}

// Reads the JSON string at `*at` (its opening quote) into `out` (when not NULL), leaving
// `*at` after its closing quote; false when it is not a well-formed string.
static inline bool ph__json_string(const uint8_t **at, const uint8_t *end, ph_buffer *out) {
  const uint8_t *p = *at;
  if (p >= end || *p != '"') return false;
  p++;
  ph_buffer scratch = {0};
  ph_buffer *into = out ? out : &scratch;
  while (p < end && *p != '"') {
    if (*p < 0x20) goto malformed;
    if (*p != '\\') {
      ph_buffer_append(into, p++, 1);
      continue;
    }
    if (++p >= end) goto malformed;
    uint8_t escaped = *p++;
    uint8_t simple;
    switch (escaped) {
    case '"': case '\\': case '/': simple = escaped; break;
    case 'b': simple = '\b'; break;
    case 'f': simple = '\f'; break;
    case 'n': simple = '\n'; break;
    case 'r': simple = '\r'; break;
    case 't': simple = '\t'; break;
    case 'u': simple = 0; break;
    default: goto malformed;
    }
    if (simple) {
      ph_buffer_append(into, &simple, 1);
      continue;
    }
    int32_t code = ph__json_hex4(p, end);
    if (code < 0) goto malformed;
    p += 4;
    if (code >= 0xD800 && code < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
      int32_t low = ph__json_hex4(p + 2, end);
      if (low >= 0xDC00 && low < 0xE000) {
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        p += 6;
      }
    }
    if (code >= 0xD800 && code < 0xE000) code = 0xFFFD;
    ph_buffer_utf8(into, (uint32_t)code);
  }
  free(scratch.data);
  if (p >= end) return false;
  *at = p + 1;
  return true;
malformed:
  free(scratch.data);
  return false;
}

// How deep JSON the reader follows: deeper input is refused, not a stack overflow.
#define PH__JSON_MAX_DEPTH 128

// Skips the JSON value at `*at`, `depth` levels down; false when it is not one.
static inline bool ph__json_skip(const uint8_t **at, const uint8_t *end, int depth) {
  if (depth > PH__JSON_MAX_DEPTH) return false;
  const uint8_t *p = ph__json_space(*at, end);
  if (p >= end) return false;
  if (*p == '"') {
    if (!ph__json_string(&p, end, NULL)) return false;
    *at = p;
    return true;
  }
  if (*p == '{' || *p == '[') {
    uint8_t close = *p == '{' ? '}' : ']';
    p = ph__json_space(p + 1, end);
    if (p < end && *p == close) {
      *at = p + 1;
      return true;
    }
    for (;;) {
      if (close == '}') {
        p = ph__json_space(p, end);
        if (!ph__json_string(&p, end, NULL)) return false;
        p = ph__json_space(p, end);
        if (p >= end || *p++ != ':') return false;
      }
      if (!ph__json_skip(&p, end, depth + 1)) return false;
      p = ph__json_space(p, end);
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      if (p < end && *p == close) {
        *at = p + 1;
        return true;
      }
      return false;
    }
  }
  // A number, true, false or null: the characters they are made of.
  const uint8_t *start = p;
  while (p < end && *p != 0 && strchr("0123456789+-.eEtruefalsn", *p) != NULL) p++;
  *at = p;
  return p > start;
}

typedef enum {
  // The field holds a string, now in `value`.
  PH_JSON_FOUND,
  // The input is a JSON object without the field.
  PH_JSON_MISSING,
  // The field holds something other than a string.
  PH_JSON_NOT_A_STRING,
  // The input is not a JSON object.
  PH_JSON_INVALID,
} ph_json_result;

// The string in field `name` of the JSON object in `json`, into `value` (UTF-8, unescaped).
static inline ph_json_result ph_json_string_field(ph_bytes json, const char *name,
                                                  ph_bytes *value) {
  const uint8_t *p = json.data, *end = json.data + json.length;
  ph_json_result result = PH_JSON_MISSING;
  if (json.length == 0) return PH_JSON_INVALID;
  p = ph__json_space(p, end);
  if (p >= end || *p++ != '{') return PH_JSON_INVALID;
  p = ph__json_space(p, end);
  if (p < end && *p == '}') {
    p++;
  } else {
    for (;;) {
      ph_buffer key = {0};
      p = ph__json_space(p, end);
      bool read = ph__json_string(&p, end, &key);
      bool wanted = read && key.length == strlen(name) && memcmp(key.data, name, key.length) == 0;
      free(key.data);
      if (!read) goto invalid;
      p = ph__json_space(p, end);
      if (p >= end || *p++ != ':') goto invalid;
      p = ph__json_space(p, end);
      if (wanted && result == PH_JSON_MISSING) {
        if (p < end && *p == '"') {
          ph_buffer text = {0};
          if (!ph__json_string(&p, end, &text)) {
            free(text.data);
            return PH_JSON_INVALID;
          }
          *value = (ph_bytes){text.data, text.length};
          result = PH_JSON_FOUND;
        } else if (!ph__json_skip(&p, end, 1)) {
          return PH_JSON_INVALID;
        } else {
          result = PH_JSON_NOT_A_STRING;
        }
      } else if (!ph__json_skip(&p, end, 1)) {
        goto invalid;
      }
      p = ph__json_space(p, end);
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      if (p < end && *p == '}') {
        p++;
        break;
      }
      goto invalid;
    }
  }
  if (ph__json_space(p, end) == end) {
    return result;
  }
invalid:
  // A value found before the input turned out malformed is not handed out.
  if (result == PH_JSON_FOUND) ph_bytes_free(*value);
  return PH_JSON_INVALID;
}

#endif
