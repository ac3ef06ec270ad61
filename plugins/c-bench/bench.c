// The benchmark pack in C on the plain Extism ABI, with no PDK: the same three actions as
// `bench` and `bench-plain`, its input read and its output written 8 bytes (then 1 byte)
// per call, as Extism's C PDK does. Built by `make packs` into dist/c_bench.wasm; timed by
// runtime/benches/calls.rs against the `extism` crate on the same module.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXTISM(name) __attribute__((import_module("extism:host/env"), import_name(#name)))
#define ACTION(name) __attribute__((export_name(#name))) int32_t name(void)

EXTISM(input_length) uint64_t extism_input_length(void);
EXTISM(input_load_u8) uint8_t extism_input_load_u8(uint64_t index);
EXTISM(input_load_u64) uint64_t extism_input_load_u64(uint64_t index);
EXTISM(alloc) uint64_t extism_alloc(uint64_t length);
EXTISM(store_u8) void extism_store_u8(uint64_t offset, uint8_t byte);
EXTISM(store_u64) void extism_store_u64(uint64_t offset, uint64_t word);
EXTISM(output_set) void extism_output_set(uint64_t block, uint64_t length);

// The input, in a buffer the caller frees; NULL (a trap follows) when it does not fit.
static uint8_t *read_input(uint64_t *length) {
  *length = extism_input_length();
  uint8_t *bytes = malloc(*length > 0 ? (size_t)*length : 1);
  if (bytes == NULL) {
    __builtin_trap();
  }
  uint64_t i = 0;
  for (; i + 8 <= *length; i += 8) {
    uint64_t word = extism_input_load_u64(i);
    memcpy(bytes + i, &word, 8);
  }
  for (; i < *length; i++) {
    bytes[i] = extism_input_load_u8(i);
  }
  return bytes;
}

static void write_output(const uint8_t *bytes, uint64_t length) {
  uint64_t block = extism_alloc(length);
  uint64_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t word;
    memcpy(&word, bytes + i, 8);
    extism_store_u64(block + i, word);
  }
  for (; i < length; i++) {
    extism_store_u8(block + i, bytes[i]);
  }
  extism_output_set(block, length);
}

// Writes `value` in decimal as the output.
static void write_decimal(uint64_t value) {
  uint8_t digits[20];
  int start = sizeof digits;
  do {
    digits[--start] = (uint8_t)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  write_output(digits + start, sizeof digits - start);
}

// Reads the whole input and returns its length in bytes, as decimal text.
ACTION(length) {
  uint64_t length;
  free(read_input(&length));
  write_decimal(length);
  return 0;
}

// Returns its input unchanged.
ACTION(echo) {
  uint64_t length;
  uint8_t *input = read_input(&length);
  write_output(input, length);
  free(input);
  return 0;
}

// Counts the ASCII vowels of a text, as decimal text.
ACTION(count_vowels) {
  uint64_t length, vowels = 0;
  uint8_t *input = read_input(&length);
  for (uint64_t i = 0; i < length; i++) {
    vowels += strchr("aeiouAEIOU", input[i]) != NULL && input[i] != 0;
  }
  free(input);
  write_decimal(vowels);
  return 0;
}
