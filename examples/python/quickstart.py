"""A tour of packhost from Python: load packs, call them, read usage, handle limits.

Run from the repository root after `make packs` and installing the package
(`pip install .`):

    python examples/python/quickstart.py            # packs from plugins/dist
    python examples/python/quickstart.py DIR        # packs from another folder
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import packhost

REPO = Path(__file__).resolve().parents[2]


def main(packs: Path) -> None:
    # Plugin log lines arrive through the standard logging module.
    logging.basicConfig(level=logging.INFO, format="  [%(name)s %(levelname)s] %(message)s")

    # START quickstart
    # Options are the core's PackOptions, as keywords or a dict; limits apply to every call.
    api_errors = packhost.Pack(packs / "api_errors.wasm", limits={"timeout_ms": 500})
    response = json.loads((REPO / "examples/data/stripe_card_declined.json").read_text())
    result = api_errors.post(response)  # dicts are sent as JSON
    error = result.json()
    print(f"{error['provider']} said {error['code']}: {error['message']}")
    print(f"  fuel {result.usage.fuel_consumed}, {result.usage.wall_time_us} µs")
    # END quickstart

    text_tools = packhost.Pack(packs / "text_tools.wasm", config={"greeting": "Bonjour"})
    print(text_tools.call("greet", "Ada").text)
    print(text_tools.call("count_vowels", {"text": "hello world"}).json())

    # START errors
    hostile = packhost.Pack(packs / "hostile.wasm", limits={"timeout_ms": 200, "fuel": None})
    try:
        hostile.call("spin")  # an endless loop
    except packhost.Timeout as stopped:
        print(f"stopped: {stopped.code} after {stopped.usage.wall_time_us // 1000} ms")
    try:
        text_tools.call("fail_with", "bad input")
    except packhost.PackError as failed:
        print(f"failed: {failed.code} (return code {failed.return_code}): {failed.message}")
    # END errors

    # START async
    async def many() -> list[str]:
        calls = [text_tools.acall("uppercase", word) for word in ("one", "two", "three")]
        return [result.text for result in await asyncio.gather(*calls)]

    print(asyncio.run(many()))
    # END async

    # START host functions
    # Host functions lend a pack the application's own data and services. Handlers get the
    # input (bytes, str or JSON, as declared) and, if they take a second argument, the call:
    # its `context` (a tenant, a request id) and the calling pack.
    def lookup_customer(customer_id: str) -> bytes:
        raise LookupError(f"no customer {customer_id}")  # fails the call, never the host

    def whoami(_: bytes, call: packhost.HostCall) -> dict:
        return {"tenant": call.context["tenant"], "pack": call.pack_name}

    lent = packhost.Pack(packs / "host_calls.wasm", functions={
        "reverse": lambda data: data[::-1],
        "add": packhost.host_fn(lambda args: {"sum": args["a"] + args["b"]}, input="json", output="json"),
        "fail": packhost.host_fn(lookup_customer, input="str"),
        "context_echo": packhost.host_fn(whoami, output="json"),
    })
    print(lent.call("reverse_via_host", "stressed").text)
    print(lent.call("context_via_host", context={"tenant": "acme"}).json())
    try:
        lent.call("fail_via_host", "c42")
    except packhost.HostFunctionError as failed:
        print(f"failed: {failed.code} in {failed.function} ({failed.error_class}): {failed.__cause__}")
    # END host functions


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "plugins" / "dist")
