// A test pack written in C on the plain Extism ABI, with no PDK: the imports are declared
// here, and input and output move through kernel memory 8 bytes and then 1 byte at a time,
// as Extism's C PDK does. Built with Debian's clang, lld and wasi-libc as a WASI reactor
// (`make packs`), so it also checks that libc (malloc, snprintf, stdout) works in a pack.
//
// Actions: greet (config), count (vars), shout (logs), fail (errors), fetch (HTTP),
// reverse (a host function), hello_stdout (WASI output). Cases: tests/conformance/cases/c.json.

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXTISM(name) __attribute__((import_module("extism:host/env"), import_name(#name)))
#define ACTION(name) __attribute__((export_name(#name))) int32_t name(void)

// An offset in kernel memory; 0 is "no block".
typedef uint64_t block_t;

EXTISM(input_length) uint64_t extism_input_length(void);
EXTISM(input_load_u8) uint8_t extism_input_load_u8(uint64_t index);
EXTISM(input_load_u64) uint64_t extism_input_load_u64(uint64_t index);
EXTISM(alloc) block_t extism_alloc(uint64_t length);
EXTISM(free) void extism_free(block_t block);
EXTISM(length) uint64_t extism_length(block_t block);
EXTISM(load_u8) uint8_t extism_load_u8(block_t offset);
EXTISM(load_u64) uint64_t extism_load_u64(block_t offset);
EXTISM(store_u8) void extism_store_u8(block_t offset, uint8_t byte);
EXTISM(store_u64) void extism_store_u64(block_t offset, uint64_t word);
EXTISM(output_set) void extism_output_set(block_t block, uint64_t length);
EXTISM(error_set) void extism_error_set(block_t block);
EXTISM(config_get) block_t extism_config_get(block_t key);
EXTISM(var_get) block_t extism_var_get(block_t key);
EXTISM(var_set) void extism_var_set(block_t key, block_t value);
EXTISM(log_info) void extism_log_info(block_t message);
EXTISM(log_warn) void extism_log_warn(block_t message);
EXTISM(http_request) block_t extism_http_request(block_t request, block_t body);

// Lent by the host under the namespace the conformance suite uses for host functions.
__attribute__((import_module("extism:host/user"), import_name("reverse")))
block_t host_reverse(block_t input);

// Bytes and their length, owned by the pack (malloc).
typedef struct {
  uint8_t *bytes;
  uint64_t length;
} bytes_t;

// `size` bytes from malloc; a pack out of memory traps rather than write through NULL,
// which is a valid address in wasm.
static void *checked_malloc(uint64_t size) {
  void *memory = size < SIZE_MAX ? malloc((size_t)size) : NULL;
  if (memory == NULL) {
    __builtin_trap();
  }
  return memory;
}

// printf into a new string the caller frees, as long as it needs to be.
static char *format(const char *pattern, ...) {
  va_list args;
  va_start(args, pattern);
  int length = vsnprintf(NULL, 0, pattern, args);
  va_end(args);
  char *text = checked_malloc((uint64_t)length + 1);
  va_start(args, pattern);
  vsnprintf(text, (size_t)length + 1, pattern, args);
  va_end(args);
  return text;
}

// Copies `length` bytes of kernel memory at `offset` into `out`, 8 bytes at a time.
static void load_block(block_t offset, uint8_t *out, uint64_t length) {
  uint64_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t word = extism_load_u64(offset + i);
    memcpy(out + i, &word, 8);
  }
  for (; i < length; i++) {
    out[i] = extism_load_u8(offset + i);
  }
}

// A new kernel block holding `length` bytes of `data`, written 8 bytes at a time.
static block_t store_block(const void *data, uint64_t length) {
  block_t offset = extism_alloc(length);
  const uint8_t *bytes = data;
  uint64_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t word;
    memcpy(&word, bytes + i, 8);
    extism_store_u64(offset + i, word);
  }
  for (; i < length; i++) {
    extism_store_u8(offset + i, bytes[i]);
  }
  return offset;
}

static block_t store_text(const char *text) { return store_block(text, strlen(text)); }

// The bytes of the kernel block at `offset`, NUL-terminated for use as text, which the
// caller frees (the block is left alone); no bytes for offset 0.
static bytes_t block_bytes(block_t offset) {
  bytes_t block = {NULL, 0};
  if (offset == 0) {
    return block;
  }
  block.length = extism_length(offset);
  block.bytes = checked_malloc(block.length + 1);
  load_block(offset, block.bytes, block.length);
  block.bytes[block.length] = '\0';
  return block;
}

static char *block_text(block_t offset) { return (char *)block_bytes(offset).bytes; }

static bytes_t input(void) {
  bytes_t in;
  in.length = extism_input_length();
  in.bytes = checked_malloc(in.length + 1);
  uint64_t i = 0;
  for (; i + 8 <= in.length; i += 8) {
    uint64_t word = extism_input_load_u64(i);
    memcpy(in.bytes + i, &word, 8);
  }
  for (; i < in.length; i++) {
    in.bytes[i] = extism_input_load_u8(i);
  }
  in.bytes[in.length] = '\0';
  return in;
}

static void output(const void *data, uint64_t length) {
  extism_output_set(store_block(data, length), length);
}

static void output_text(const char *text) { output(text, strlen(text)); }

// "<greeting>, <input>!", the greeting from config key `greeting` (default "Hello").
ACTION(greet) {
  bytes_t name = input();
  // The host takes the key's block.
  char *greeting = block_text(extism_config_get(store_text("greeting")));
  char *text = format("%s, %s!", greeting ? greeting : "Hello", (char *)name.bytes);
  output_text(text);
  free(text);
  free(greeting);
  free(name.bytes);
  return 0;
}

// Counts its calls in var `count` (kept while the instance is) and returns the count.
ACTION(count) {
  char *previous = block_text(extism_var_get(store_text("count")));
  long count = (previous ? strtol(previous, NULL, 10) : 0) + 1;
  free(previous);
  char text[32];
  snprintf(text, sizeof text, "%ld", count);
  extism_var_set(store_text("count"), store_text(text));
  output_text(text);
  return 0;
}

// Logs its input at info, a warning after it, and returns the input in capitals.
ACTION(shout) {
  bytes_t in = input();
  extism_log_info(store_block(in.bytes, in.length));
  extism_log_warn(store_text("shouting"));
  for (uint64_t i = 0; i < in.length; i++) {
    if (in.bytes[i] >= 'a' && in.bytes[i] <= 'z') {
      in.bytes[i] -= 'a' - 'A';
    }
  }
  output(in.bytes, in.length);
  free(in.bytes);
  return 0;
}

// Fails with return code 3 and the message "refused: <input>".
ACTION(fail) {
  bytes_t in = input();
  char *text = format("refused: %s", (char *)in.bytes);
  extism_error_set(store_text(text));
  free(text);
  free(in.bytes);
  return 3;
}

// GETs the URL in the input and returns the response body.
ACTION(fetch) {
  bytes_t url = input();
  char *request = format("{\"url\":\"%s\",\"method\":\"GET\"}", (char *)url.bytes);
  bytes_t body = block_bytes(extism_http_request(store_text(request), 0));
  output(body.bytes, body.length);
  free(body.bytes);
  free(request);
  free(url.bytes);
  return 0;
}

// Returns what the host's `reverse` makes of the input.
ACTION(reverse) {
  bytes_t in = input();
  bytes_t reversed = block_bytes(host_reverse(store_block(in.bytes, in.length)));
  output(reversed.bytes, reversed.length);
  free(reversed.bytes);
  free(in.bytes);
  return 0;
}

// Writes a line to WASI's stdout (wherever the host sends it) and says so.
ACTION(hello_stdout) {
  int written = printf("hello from C\n");
  fflush(stdout);
  char text[64];
  snprintf(text, sizeof text, "printf returned %d", written);
  output_text(text);
  return 0;
}
