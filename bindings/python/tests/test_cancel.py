"""Cancelling calls: a ``packhost.CancelToken`` stops a running call from another thread
within milliseconds, leaves the pack's other calls alone, and is what cancelling an asyncio
task awaiting ``acall`` uses to stop the pack."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest

import packhost
from conftest import pack_path

# Only the token can end ``spin`` within the test: no fuel cap, and a time limit far off.
SPIN = {"limits": {"timeout_ms": 30000, "fuel": None}}
BUSY_INPUT = '{"rounds":10}'
BUSY_OUTPUT = 1845767244449711
# Long enough for a thread to be inside the pack's loop before the test cancels it.
LET_IT_SPIN = 0.1


class Spinning:
    """``spin`` called with ``token`` on a thread of its own, noting when it returned and
    what it raised."""

    def __init__(self, pack: packhost.Pack, token: packhost.CancelToken) -> None:
        self.error: Optional[BaseException] = None
        self.returned_at = 0.0
        self._pack = pack
        self._token = token
        # A daemon, so a build whose cancel is broken fails the test instead of holding
        # the interpreter open for the 30 s time limit.
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._pack.call("spin", cancel=self._token)
        except BaseException as error:
            self.error = error
        finally:
            self.returned_at = time.perf_counter()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"spin still running {timeout} s after cancel()"


def test_a_token_stops_a_looping_call_from_another_thread_within_milliseconds(
    hostile_path: Path,
) -> None:
    pack = packhost.Pack(hostile_path, SPIN)
    # The process's first interrupted call measures the engine's fuel rate once (tens of
    # milliseconds); that one-time cost is not the cancel's, so it is left out of the trials.
    warm_up = packhost.CancelToken()
    spinning = Spinning(pack, warm_up)
    time.sleep(LET_IT_SPIN)
    warm_up.cancel()
    spinning.join(5)
    latencies = []
    for _ in range(5):
        token = packhost.CancelToken()
        spinning = Spinning(pack, token)
        time.sleep(LET_IT_SPIN)
        cancelled_at = time.perf_counter()
        token.cancel()
        spinning.join(5)
        latencies.append(spinning.returned_at - cancelled_at)
        error = spinning.error
        assert isinstance(error, packhost.Cancelled), repr(error)
        assert error.code == "cancelled"
        # A report means the call was running when cancelled, not refused at its start.
        assert error.usage is not None and error.usage.action == "spin"
        assert token.cancelled
    assert max(latencies) < 1, f"latencies {latencies}"
    assert statistics.median(latencies) <= 0.010, f"latencies {latencies}"
    assert pack.call("busy", BUSY_INPUT).json() == BUSY_OUTPUT


def test_cancelling_one_call_leaves_a_concurrent_call_on_the_same_pack_alone(
    hostile_path: Path,
) -> None:
    pack = packhost.Pack(hostile_path, SPIN)
    token = packhost.CancelToken()
    other = packhost.CancelToken()
    spinning = Spinning(pack, token)
    time.sleep(LET_IT_SPIN)
    outputs: List[Any] = []
    failures: List[BaseException] = []
    stop = threading.Event()

    def busy() -> None:
        # Calls back to back from before the cancel until spin has returned, so some run
        # while it lands.
        try:
            while not stop.is_set():
                outputs.append(pack.call("busy", BUSY_INPUT, cancel=other).json())
        except BaseException as error:
            failures.append(error)

    caller = threading.Thread(target=busy, daemon=True)
    caller.start()
    time.sleep(0.02)
    token.cancel()
    spinning.join(5)
    stop.set()
    caller.join(5)
    assert isinstance(spinning.error, packhost.Cancelled), repr(spinning.error)
    assert not failures, failures
    assert outputs and all(output == BUSY_OUTPUT for output in outputs), outputs[:5]
    assert not other.cancelled


async def errors_soon(pack: packhost.Pack, expected: Any) -> Any:
    """``pack.stats()["errors"]`` once it equals ``expected``, or as it is after 2 s."""
    deadline = time.monotonic() + 2
    while pack.stats()["errors"] != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return pack.stats()["errors"]


def test_cancelling_the_task_awaiting_acall_stops_the_pack(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, SPIN)

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pack.acall("spin"), 0.05)
        # Only a call the token stopped counts as cancelled; one left spinning counts
        # nothing for 30 s.
        assert await errors_soon(pack, {"cancelled": 1}) == {"cancelled": 1}

        token = packhost.CancelToken()
        task = asyncio.ensure_future(pack.acall("spin", cancel=token))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert token.cancelled, "the caller's own token is the one cancelled"
        assert await errors_soon(pack, {"cancelled": 2}) == {"cancelled": 2}

    started = time.monotonic()
    asyncio.run(scenario())
    # asyncio.run waits for its worker threads: a pack still spinning would hold it 30 s.
    assert time.monotonic() - started < 10


def test_a_token_cancelled_before_the_call_fails_it_at_once(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, SPIN)
    token = packhost.CancelToken()
    assert not token.cancelled
    assert repr(token) == "CancelToken(cancelled=False)"
    token.cancel()
    assert token.cancelled
    assert repr(token) == "CancelToken(cancelled=True)"
    started = time.perf_counter()
    with pytest.raises(packhost.Cancelled) as caught:
        pack.call("spin", cancel=token)
    assert time.perf_counter() - started < 1
    assert caught.value.code == "cancelled"
    assert caught.value.usage is None, "the pack never ran"
    # Sticky: the token cancels every later call made with it, and only those.
    with pytest.raises(packhost.Cancelled):
        pack.call("busy", BUSY_INPUT, cancel=token)
    assert pack.call("busy", BUSY_INPUT).json() == BUSY_OUTPUT


def test_hooks_and_async_calls_take_a_token_too() -> None:
    hooks = packhost.Pack(pack_path("api_errors"))
    request = {"method": "GET", "url": "https://example.org/"}
    token = packhost.CancelToken()
    assert hooks.pre(request, cancel=token).json() == hooks.pre(request).json()
    token.cancel()
    with pytest.raises(packhost.Cancelled):
        hooks.pre(request, cancel=token)
    with pytest.raises(packhost.Cancelled):
        hooks.post({"response": {"status": 503}}, cancel=token)

    async def scenario() -> None:
        with pytest.raises(packhost.Cancelled):
            await hooks.apre(request, cancel=token)
        with pytest.raises(packhost.Cancelled):
            await hooks.apost({"response": {"status": 503}}, cancel=token)
        with pytest.raises(packhost.Cancelled):
            await hooks.acall("pre", request, cancel=token)
        fresh = packhost.CancelToken()
        assert (await hooks.apre(request, cancel=fresh)).json() == hooks.pre(request).json()
        assert not fresh.cancelled, "a call that finished leaves its token alone"

    asyncio.run(scenario())


def test_a_wrong_cancel_argument_is_a_type_error(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    with pytest.raises(TypeError):
        pack.call("echo", "x", cancel=threading.Event())  # type: ignore[arg-type]
