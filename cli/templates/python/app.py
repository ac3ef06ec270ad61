"""{{name}}: a packhost pack in Python with one action (`greet`) and the two hooks a host
runs around an HTTP exchange (`pre` over the request, `post` over the response).

`packhost build` makes it a WebAssembly component with componentize-py (installed into
.venv/ on the first build), its world in wit/, and embeds manifest.json; `packhost test`
runs the cases in tests/. Each method takes the input bytes and returns the output bytes;
`raise Err(message)` fails the call with that message. The pack runs without WASI, so
print() and open() are unavailable: log through `host.log`, read config through
`host.config`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import LogLevel


def string_field(data: bytes, name: str) -> str:
    """The string field `name` of the JSON object in `data`, or the call fails."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Err(f"invalid input: expected a JSON object with a string field `{name}`")
    if name not in value:
        raise Err(f"invalid input: missing field `{name}`")
    if not isinstance(value[name], str):
        raise Err(f"invalid input: `{name}` is not a string")
    return value[name]


class WitWorld(wit_world.WitWorld):
    def greet(self, input: bytes) -> bytes:
        name = input.decode("utf-8", errors="replace")
        if not name:
            raise Err("nothing to greet: the input is empty")
        host.log(LogLevel.DEBUG, f"greeting {name}")
        return f"Hello, {name}!".encode()

    def pre(self, input: bytes) -> bytes:
        url = string_field(input, "url")
        if url.startswith("https://"):
            return json.dumps({"allow": True}).encode()
        return json.dumps({"allow": False, "reason": "only https URLs are allowed"}).encode()

    def post(self, input: bytes) -> bytes:
        body = string_field(input, "body")
        return json.dumps({"looks_like_error": "error" in body}).encode()
