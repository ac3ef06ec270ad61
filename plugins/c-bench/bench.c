// The benchmark pack in C, on packhost's C PDK (pdk/c/packhost.h): the same three actions
// as `bench` and `bench-plain`, its input read and its output written 8 bytes (then 1 byte)
// per call through the plain Extism ABI, as Extism's C PDK does. Built by `make packs` into
// dist/c_bench.wasm; timed by runtime/benches/calls.rs against the `extism` crate on the
// same module.

#include "packhost.h"

// Writes `value` in decimal as the output.
static void output_decimal(uint64_t value) {
  char digits[20];
  ph_output(digits, ph_decimal(digits, value));
}

// Reads the whole input and returns its length in bytes, as decimal text.
PH_ACTION(length) {
  ph_bytes input = ph_input();
  output_decimal(input.length);
  ph_bytes_free(input);
  return 0;
}

// Returns its input unchanged.
PH_ACTION(echo) {
  ph_bytes input = ph_input();
  ph_output(input.data, input.length);
  ph_bytes_free(input);
  return 0;
}

// Counts the ASCII vowels of a text, as decimal text.
PH_ACTION(count_vowels) {
  ph_bytes input = ph_input();
  uint64_t vowels = 0;
  for (uint64_t at = 0; at < input.length; at++) {
    vowels += input.data[at] != 0 && strchr("aeiouAEIOU", input.data[at]) != NULL;
  }
  ph_bytes_free(input);
  output_decimal(vowels);
  return 0;
}
