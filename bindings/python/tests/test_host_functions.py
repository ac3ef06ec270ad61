"""Host functions from Python: plain callables and ``@host_fn``, encodings, the call's
context, exceptions that become ``HostFunctionError`` without resuming the pack, the GIL
held for the handler whatever the call did with it, and handlers that call packs again."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import packhost
from conftest import SUITE_FUNCTIONS, Ticker

ENGINES = ("native", "extism")


def lend(path: Path, engine: str, **replacements: Any) -> packhost.Pack:
    """host_calls with the suite's four functions lent, some of them replaced."""
    functions: Dict[str, Any] = {function.name: function for function in SUITE_FUNCTIONS}
    functions.update(replacements)
    return packhost.Pack(path, engine=engine, functions=functions)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_plain_callable_and_a_decorated_one_serve_the_pack(host_calls_path: Path, engine: str) -> None:
    pack = lend(host_calls_path, engine, reverse=lambda data: data[::-1])
    result = pack.call("reverse_via_host", "hello")
    assert result.output == b"olleh"
    assert result.usage.host_calls == 1
    assert result.audit == [{
        "capability": "host_function", "operation": "call", "target": "reverse",
        "outcome": "ok", "bytes_sent": 0, "bytes_received": 0,
    }]
    assert pack.call("add_via_host", {"a": 2, "b": 40}).json() == {"sum": 42}


@pytest.mark.parametrize("engine", ENGINES)
def test_context_and_the_calling_pack_reach_the_handler_and_usage_records_the_context(host_calls_path: Path, engine: str) -> None:
    seen = []

    @packhost.host_fn(name="context_echo", output="str")
    def remember(_: bytes, call: packhost.HostCall) -> str:
        seen.append(call)
        return "ok"

    pack = lend(host_calls_path, engine, context_echo=remember)
    first = pack.call("context_via_host", context={"tenant": "acme"})
    second = pack.call("context_via_host")
    assert [call.context for call in seen] == [{"tenant": "acme"}, None]
    # The usage record names whom each call was for, a failed call's too.
    assert first.usage.context == {"tenant": "acme"} and second.usage.context is None
    assert first.usage.as_dict()["context"] == {"tenant": "acme"}
    with pytest.raises(packhost.HostFunctionError) as failed:
        pack.call("fail_via_host", "x", context=["req", 7])
    assert failed.value.usage.context == ["req", 7]
    assert seen[0].pack_name == "host_calls" and seen[0].pack_id == pack.id
    assert seen[0].function == "context_echo"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_exception_becomes_host_function_error_and_is_kept_as_its_cause(
    host_calls_path: Path, engine: str
) -> None:
    pack = lend(host_calls_path, engine)
    with pytest.raises(packhost.HostFunctionError) as caught:
        pack.call("fail_via_host", "no such customer")
    error = caught.value
    assert error.code == "host_function_error"
    assert error.function == "fail" and error.error_class == "LookupError"
    assert "no such customer" in error.message
    assert isinstance(error.__cause__, LookupError)
    assert error.usage is not None and error.usage.host_calls == 1
    # The failed call's audit trail records the function and why it failed.
    assert [(entry["target"], entry["outcome"]) for entry in error.audit] == [("fail", "failed")]
    assert "no such customer" in error.audit[0]["reason"]
    assert pack.call("reverse_via_host", "ok").output == b"ko"


@pytest.mark.parametrize("engine", ENGINES)
def test_returning_the_wrong_type_is_a_type_error(host_calls_path: Path, engine: str) -> None:
    pack = lend(host_calls_path, engine, reverse=lambda data: 42)
    with pytest.raises(packhost.HostFunctionError) as caught:
        pack.call("reverse_via_host", "x")
    assert caught.value.error_class == "TypeError"


def test_an_unlent_import_fails_at_load_naming_it(host_calls_path: Path) -> None:
    with pytest.raises(packhost.InvalidPack, match="did not register"):
        packhost.Pack(host_calls_path)
    with pytest.raises(TypeError):
        packhost.Pack(host_calls_path, functions=["not a host_fn"])  # type: ignore[list-item]


def within_seconds(seconds: float, work: Callable[[], Any]) -> Any:
    """Runs ``work`` on a thread and fails instead of hanging when it deadlocks."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the test thread below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail("the call deadlocked: no result within the watchdog's time")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_handler_may_call_the_same_pack_again(host_calls_path: Path, engine: str) -> None:
    packs: list = []

    def add_by_reversing(args: Dict[str, Any]) -> Dict[str, Any]:
        return {"sum": packs[0].call("reverse_via_host", str(args["a"])).text}

    pack = lend(host_calls_path, engine, add=packhost.host_fn(add_by_reversing, input="json", output="json"))
    packs.append(pack)
    result = within_seconds(10, lambda: pack.call("add_via_host", {"a": 123}))
    assert result.json() == {"sum": "321"}
    assert result.usage.host_calls == 1


def test_handlers_run_for_async_calls_and_other_threads_keep_running(host_calls_path: Path) -> None:
    def slow_reverse(data: bytes) -> bytes:
        # Sleeping releases the GIL: the ticker must keep running meanwhile.
        threading.Event().wait(0.2)
        return data[::-1]

    pack = lend(host_calls_path, "native", reverse=slow_reverse)
    with Ticker(0.002) as ticker:
        result = asyncio.run(pack.acall("reverse_via_host", "abc"))
    assert result.output == b"cba"
    assert ticker.ticks >= 20


def test_handlers_hold_the_gil_after_a_call_released_it_midway(host_calls_path: Path) -> None:
    def spinning_reverse(data: bytes) -> bytes:
        # Spins holding the GIL, so the calls outlast the millisecond a short call keeps it.
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:
            pass
        return data[::-1]

    pack = lend(host_calls_path, "native", reverse=spinning_reverse)
    # Short calls: the next call of the action keeps the GIL, until the engine releases it
    # midway; every handler after that takes it back for itself.
    for _ in range(5):
        assert pack.call("reverse_repeatedly", "").output == b""
    result = pack.call("reverse_repeatedly", "abcdefghi")
    assert result.output == b"ihgfedcba"
    assert result.usage.host_calls == 9
