"""The official ``extism`` Python SDK on the host-function row of ``make bench``: a 64-byte
round trip through ``reverse`` on ``host_calls.wasm``, timed as bench.py times packhost.
Runs in the anchors' virtualenv (../shared/anchors/setup.sh), not in the project's.

Usage: python extism_host_fn.py HOST_CALLS.wasm
"""
import statistics
import sys
import time

import extism


@extism.host_fn(name="reverse")
def reverse(data: bytes) -> bytes:
    return data[::-1]


@extism.host_fn(name="add")
def add(data: bytes) -> bytes:
    raise LookupError("not part of the benchmark")


@extism.host_fn(name="fail")
def fail(data: bytes) -> bytes:
    raise LookupError("not part of the benchmark")


@extism.host_fn(name="context_echo")
def context_echo(data: bytes) -> bytes:
    raise LookupError("not part of the benchmark")


def main():
    plugin = extism.Plugin({"wasm": [{"path": sys.argv[1]}]}, wasi=False,
                           functions=[reverse, add, fail, context_echo])
    data = ("hello world " * 6)[:64]
    calls = 20000
    plugin.call("reverse_via_host", data)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            plugin.call("reverse_via_host", data)
        rounds.append((time.perf_counter() - start) / calls)
    print(f"python-extism bytes=64 per_call_us={statistics.median(rounds) * 1e6:.2f}")


main()
