// The text-tools pack in C, on packhost's C PDK (pdk/c/packhost.h): the actions of the Rust
// pack (plugins/text-tools) that need no JSON tree, passing the same conformance cases
// (tests/conformance/cases/text_tools.json, the cases that list "c_text_tools").

#include <wctype.h>

#include "packhost.h"

PH_MANIFEST("{"
  "\"name\": \"text-tools-c\", \"version\": \"0.1.0\","
  "\"description\": \"Text utilities in C: the text-tools actions that need no JSON tree\","
  "\"capabilities\": {\"config\": [\"greeting\"]},"
  "\"actions\": ["
  "{\"name\": \"count_vowels\","
  " \"description\": \"Counts the vowels (a, e, i, o, u, either case) in a text.\","
  " \"input\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"text\": {\"type\": \"string\"}}, \"required\": [\"text\"]}},"
  " \"output\": {\"encoding\": \"json\", \"schema\": {\"type\": \"object\","
  "   \"properties\": {\"count\": {\"type\": \"integer\", \"minimum\": 0},"
  "   \"vowels\": {\"type\": \"string\"}}, \"required\": [\"count\", \"vowels\"]}}},"
  "{\"name\": \"uppercase\", \"description\": \"Upper-cases text.\","
  " \"input\": {\"encoding\": \"text\"}, \"output\": {\"encoding\": \"text\"}},"
  "{\"name\": \"greet\","
  " \"description\": \"Greets someone, using the `greeting` config value the host granted (or \\\"Hello\\\").\","
  " \"input\": {\"encoding\": \"text\"}, \"output\": {\"encoding\": \"text\"}},"
  "{\"name\": \"echo\", \"description\": \"Returns its input unchanged.\","
  " \"input\": {\"encoding\": \"bytes\"}, \"output\": {\"encoding\": \"bytes\"}},"
  "{\"name\": \"fail_with\","
  " \"description\": \"Always fails with the input as its message, to show how a pack reports errors.\","
  " \"input\": {\"encoding\": \"text\"}, \"output\": {\"encoding\": \"none\"}},"
  "{\"name\": \"chatty\", \"description\": \"Logs one line at every level, then returns \\\"logged\\\".\","
  " \"input\": {\"encoding\": \"none\"}, \"output\": {\"encoding\": \"text\"}}"
  "]}");

// Ends the call with `message` and the input it could not read.
static int32_t bad_input(ph_bytes input, const char *message) {
  ph_bytes_free(input);
  return ph_fail(message);
}

PH_ACTION(count_vowels) {
  ph_bytes input = ph_input();
  ph_bytes text;
  switch (ph_json_string_field(input, "text", &text)) {
  case PH_JSON_FOUND: break;
  case PH_JSON_MISSING: return bad_input(input, "invalid input: missing field `text`");
  case PH_JSON_NOT_A_STRING: return bad_input(input, "invalid input: `text` is not a string");
  default: return bad_input(input, "invalid input: expected a JSON object");
  }
  ph_bytes_free(input);
  ph_buffer vowels = {0};
  for (uint64_t at = 0; at < text.length; at++) {
    if (text.data[at] && strchr("aeiouAEIOU", text.data[at])) {
      ph_buffer_append(&vowels, &text.data[at], 1);
    }
  }
  ph_bytes_free(text);
  ph_buffer out = {0};
  ph_buffer_text(&out, "{\"count\":");
  ph_buffer_number(&out, vowels.length);
  ph_buffer_text(&out, ",\"vowels\":");
  ph_buffer_json_string(&out, vowels.data, vowels.length);
  ph_buffer_text(&out, "}");
  free(vowels.data);
  ph_output_buffer(&out);
  return 0;
}

// Decodes the UTF-8 character at `text[*at]`, moving `*at` past it; a malformed byte reads
// as U+FFFD, one byte long.
static uint32_t next_char(ph_bytes text, uint64_t *at) {
  uint8_t lead = text.data[*at];
  int extra = lead < 0x80 ? 0 : lead >> 5 == 6 ? 1 : lead >> 4 == 14 ? 2 : lead >> 3 == 30 ? 3 : -1;
  if (extra < 0 || *at + (uint64_t)extra >= text.length + (extra == 0)) {
    *at += 1;
    return extra == 0 ? lead : 0xFFFD;
  }
  uint32_t code = extra == 0 ? lead : lead & (0x3F >> extra);
  for (int i = 1; i <= extra; i++) {
    uint8_t next = text.data[*at + (uint64_t)i];
    if (next >> 6 != 2) {
      *at += 1;
      return 0xFFFD;
    }
    code = code << 6 | (next & 0x3F);
  }
  *at += (uint64_t)extra + 1;
  return code;
}

// Upper-cases UTF-8 text by wasi-libc's Unicode case table, and ß (which has no capital of
// one character) as "SS", as Rust's to_uppercase does.
PH_ACTION(uppercase) {
  ph_bytes text = ph_input();
  ph_buffer out = {0};
  for (uint64_t at = 0; at < text.length;) {
    uint32_t code = next_char(text, &at);
    if (code == 0xDF) {
      ph_buffer_text(&out, "SS");
    } else {
      ph_buffer_utf8(&out, (uint32_t)towupper((wint_t)code));
    }
  }
  ph_bytes_free(text);
  ph_output_buffer(&out);
  return 0;
}

PH_ACTION(greet) {
  ph_bytes name = ph_input();
  ph_bytes greeting;
  bool configured = ph_config("greeting", &greeting);
  ph_buffer out = {0};
  if (configured) {
    ph_buffer_append(&out, greeting.data, greeting.length);
    ph_bytes_free(greeting);
  } else {
    ph_buffer_text(&out, "Hello");
  }
  ph_buffer_text(&out, ", ");
  ph_buffer_append(&out, name.data, name.length);
  ph_buffer_text(&out, "!");
  ph_bytes_free(name);
  ph_output_buffer(&out);
  return 0;
}

PH_ACTION(echo) {
  ph_bytes input = ph_input();
  ph_output(input.data, input.length);
  ph_bytes_free(input);
  return 0;
}

PH_ACTION(fail_with) {
  ph_bytes message = ph_input();
  ph_buffer text = {0};
  ph_buffer_append(&text, message.data, message.length);
  ph_buffer_append(&text, "", 1);
  ph_bytes_free(message);
  int32_t code = ph_fail((const char *)text.data);
  free(text.data);
  return code;
}

PH_ACTION(chatty) {
  ph_log(PH_TRACE, "trace line");
  ph_log(PH_DEBUG, "debug line");
  ph_log(PH_INFO, "info line");
  ph_log(PH_WARN, "warn line");
  ph_log(PH_ERROR, "error line");
  ph_output_text("logged");
  return 0;
}
