"""The text-tools pack in Python, built into a WebAssembly component by componentize-py
(`packhost build`): the actions of the Rust pack (plugins/text-tools), passing the same
conformance cases (tests/conformance/cases/component_text_tools.json). Its world is
plugins/component-text-tools/world.wit.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import LogLevel


def text_field(data: bytes) -> str:
    """The `text` field of the JSON object in `data`, or the call fails as the Rust pack's."""
    try:
        value = json.loads(data)
    except ValueError as err:
        raise Err(f"invalid input: {err}")
    if not isinstance(value, dict):
        raise Err("invalid input: expected a JSON object")
    if "text" not in value:
        raise Err("invalid input: missing field `text`")
    if not isinstance(value["text"], str):
        raise Err("invalid input: `text` is not a string")
    return value["text"]


def output(value) -> bytes:
    """`value` as compact JSON, as serde_json writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def pointer_target(document, pointer: str):
    """The value RFC 6901's `pointer` names in `document`, or the call fails."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise Err(f"nothing at {pointer}")
    target = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and (token == "0" or not token.startswith("0")) and int(token) < len(target):
            target = target[int(token)]
        else:
            raise Err(f"nothing at {pointer}")
    return target


def lines_of(text: str) -> int:
    """How many lines Rust's `str::lines` finds: a last line ending in a newline is not
    followed by an empty one."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


class WitWorld(wit_world.WitWorld):
    def count_vowels(self, input: bytes) -> bytes:
        vowels = "".join(c for c in text_field(input) if c in "aeiouAEIOU")
        return output({"count": len(vowels), "vowels": vowels})

    def uppercase(self, input: bytes) -> bytes:
        return input.decode("utf-8", errors="replace").upper().encode()

    def word_stats(self, input: bytes) -> bytes:
        text = text_field(input)
        words = text.split()
        longest = None
        for word in words:
            if longest is None or len(word) > len(longest):
                longest = word
        return output(
            {"chars": len(text), "words": len(words), "lines": lines_of(text), "longest_word": longest}
        )

    def json_pick(self, input: bytes) -> bytes:
        try:
            pick = json.loads(input)
        except ValueError as err:
            raise Err(f"invalid input: {err}")
        if not isinstance(pick, dict) or "document" not in pick or not isinstance(pick.get("pointer"), str):
            raise Err("invalid input: expected a JSON object with `document` and a string `pointer`")
        return output(pointer_target(pick["document"], pick["pointer"]))

    def greet(self, input: bytes) -> bytes:
        greeting = host.config("greeting")
        name = input.decode("utf-8", errors="replace")
        return f"{greeting if greeting is not None else 'Hello'}, {name}!".encode()

    def echo(self, input: bytes) -> bytes:
        return input

    def fail_with(self, input: bytes) -> bytes:
        message = input.decode("utf-8", errors="replace")
        raise Err(message or "the pack failed")

    def chatty(self, input: bytes) -> bytes:
        host.log(LogLevel.TRACE, "trace line")
        host.log(LogLevel.DEBUG, "debug line")
        host.log(LogLevel.INFO, "info line")
        host.log(LogLevel.WARN, "warn line")
        host.log(LogLevel.ERROR, "error line")
        return b"logged"
