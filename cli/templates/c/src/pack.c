// {{name}}: a packhost pack in C with one action (`greet`) and the two hooks a host runs
// around an HTTP exchange (`pre` over the request, `post` over the response).
//
// `packhost build` compiles it with clang for wasm32-wasi and embeds the manifest below;
// `packhost test` runs the cases in tests/. include/packhost.h is the whole PDK.

#include "packhost.h"

// What the pack says about itself. `packhost embed` runs the `__packhost_manifest` export
// this declares and stores the JSON in the .wasm; every action needs a description, and
// every JSON input and output a schema, for `packhost check` to pass.
PH_MANIFEST("{"
  "\"name\": \"{{name}}\", \"version\": \"0.1.0\","
  "\"description\": \"A packhost pack: one action and the pre and post hooks\","
  "\"actions\": ["
  "{\"name\": \"greet\", \"description\": \"Greets whoever the input names.\","
  " \"input\": {\"encoding\": \"text\"}, \"output\": {\"encoding\": \"text\"}},"
  "{\"name\": \"pre\", \"description\": \"Allows requests to https URLs only.\","
  " \"input\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"url\": {\"type\": \"string\"}}, \"required\": [\"url\"]}},"
  " \"output\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"allow\": {\"type\": \"boolean\"}, \"reason\": {\"type\": \"string\"}},"
  "   \"required\": [\"allow\"]}}},"
  "{\"name\": \"post\", \"description\": \"Flags a response whose body mentions an error.\","
  " \"input\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"body\": {\"type\": \"string\"}}, \"required\": [\"body\"]}},"
  " \"output\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"looks_like_error\": {\"type\": \"boolean\"}},"
  "   \"required\": [\"looks_like_error\"]}}}"
  "]}");

// Fails the call with `before`, `name` and `after` joined: ph_fail takes one C string, and
// printf would weigh more than the rest of the pack.
static int32_t fail_naming(const char *before, const char *name, const char *after) {
  ph_buffer message = {0};
  ph_buffer_text(&message, before);
  ph_buffer_text(&message, name);
  ph_buffer_append(&message, after, strlen(after) + 1); // with its NUL
  int32_t code = ph_fail((const char *)message.data);
  free(message.data);
  return code;
}

// Reads the string field `name` of the JSON object the input holds into `value` (free it
// with ph_bytes_free) and returns 0; on any other input, fails the call and returns its
// code, leaving nothing to free.
static int32_t input_string_field(const char *name, ph_bytes *value) {
  ph_bytes input = ph_input();
  ph_json_result found = ph_json_string_field(input, name, value);
  // `value` is a copy, so the input can go whatever the outcome.
  ph_bytes_free(input);
  switch (found) {
  case PH_JSON_FOUND: return 0;
  case PH_JSON_MISSING: return fail_naming("invalid input: missing field `", name, "`");
  case PH_JSON_NOT_A_STRING: return fail_naming("invalid input: `", name, "` is not a string");
  default:
    return fail_naming("invalid input: expected a JSON object with a string field `", name, "`");
  }
}

// Whether `text` holds `word`. The text is not NUL-terminated (and JSON may put a NUL in
// it), so strstr will not do.
static bool contains(ph_bytes text, const char *word) {
  uint64_t length = strlen(word);
  for (uint64_t at = 0; at + length <= text.length; at++) {
    if (memcmp(text.data + at, word, length) == 0) {
      return true;
    }
  }
  return false;
}

// Greets whoever the input names.
PH_ACTION(greet) {
  // Checked before reading, so an empty input costs no copy.
  if (ph_input_length() == 0) {
    return ph_fail("nothing to greet: the input is empty");
  }
  ph_bytes name = ph_input();
  ph_buffer out = {0};
  ph_buffer_text(&out, "Hello, ");
  ph_buffer_append(&out, name.data, name.length);
  ph_buffer_text(&out, "!");
  ph_bytes_free(name);
  ph_output_buffer(&out); // sets the output and frees the buffer
  return 0;
}

// Allows requests to https URLs only; the request's other fields (method, headers, ...)
// do not matter here.
PH_ACTION(pre) {
  ph_bytes url;
  int32_t failed = input_string_field("url", &url);
  if (failed) {
    return failed;
  }
  bool https = url.length >= 8 && memcmp(url.data, "https://", 8) == 0;
  ph_bytes_free(url);
  ph_output_text(https ? "{\"allow\":true}"
                       : "{\"allow\":false,\"reason\":\"only https URLs are allowed\"}");
  return 0;
}

// Flags a response whose body mentions an error.
PH_ACTION(post) {
  ph_bytes body;
  int32_t failed = input_string_field("body", &body);
  if (failed) {
    return failed;
  }
  bool error = contains(body, "error");
  ph_bytes_free(body);
  ph_output_text(error ? "{\"looks_like_error\":true}" : "{\"looks_like_error\":false}");
  return 0;
}
