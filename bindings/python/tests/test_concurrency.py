"""Calls release the GIL (all but short ones, which keep it for at most a millisecond or two):
threads run one pack in parallel, and asyncio stays responsive."""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

import packhost
from conftest import Ticker

UNCAPPED = {"limits": {"fuel": None, "timeout_ms": 60000}}
CALLS = 8


def timed(work: Callable[[], object], threads: int) -> float:
    """Seconds to run ``work`` CALLS times spread over ``threads`` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda _: work(), range(CALLS)))
    return time.perf_counter() - start


def speedup(work: Callable[[], object]) -> float:
    return timed(work, threads=1) / timed(work, threads=2)


def test_two_threads_finish_cpu_bound_work_at_least_1_6x_faster(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, UNCAPPED)
    # Size one call to about 0.1 s so thread start-up and timer noise do not matter.
    rounds = 1_000_000
    while True:
        start = time.perf_counter()
        expected = pack.call("busy", {"rounds": rounds}).output
        if time.perf_counter() - start > 0.1:
            break
        rounds *= 2

    def busy() -> None:
        assert pack.call("busy", {"rounds": rounds}).output == expected

    timed(busy, threads=2)  # the second concurrent caller gets its own instance: warm it
    speedups = []
    for _ in range(3):
        speedups.append(speedup(busy))
        if speedups[-1] >= 1.6:
            return
    # Other processes may be using the second core. Hashing a large buffer releases the GIL
    # too, so it shows what parallelism the machine offers right now; only when it reaches
    # 1.6x and the pack does not is the binding at fault.
    data = b"x" * (64 << 20)
    reference = max(speedup(lambda: hashlib.sha256(data).digest()) for _ in range(2))
    if reference < 1.6:
        pytest.skip(f"machine too busy to measure: reference speed-up {reference:.2f}, pack {speedups}")
    assert max(speedups) >= 1.6, f"speed-ups {speedups} (reference {reference:.2f}): calls do not run in parallel"


def test_a_thread_blocked_in_a_call_does_not_block_other_python_threads(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, limits={"timeout_ms": 300, "fuel": None})
    with Ticker(0.005) as ticker, pytest.raises(packhost.Timeout):
        pack.call("spin")
    assert ticker.ticks >= 20


def test_a_call_expected_to_be_short_releases_the_gil_once_it_runs_long(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, UNCAPPED)
    rounds = 1_000_000
    while True:
        start = time.perf_counter()
        pack.call("busy", {"rounds": rounds})
        if time.perf_counter() - start > 0.3:
            break
        rounds *= 2
    # Short calls of the same action: the next one keeps the GIL, until the engine
    # releases it after a millisecond or two.
    for _ in range(10):
        pack.call("busy", {"rounds": 1})
    with Ticker(0.005) as ticker:
        pack.call("busy", {"rounds": rounds})
    assert ticker.ticks >= 20


def test_a_looping_pack_times_out_in_asyncio_while_other_coroutines_run(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, limits={"timeout_ms": 300, "fuel": None})

    async def scenario() -> int:
        ticks = 0
        call = asyncio.ensure_future(pack.acall("spin"))
        while not call.done():
            ticks += 1
            await asyncio.sleep(0.005)
        with pytest.raises(packhost.Timeout):
            await call
        return ticks

    started = time.perf_counter()
    ticks = asyncio.run(scenario())
    assert time.perf_counter() - started < 5
    # 300 ms of 5 ms sleeps is ~60 ticks; a blocked loop would manage one.
    assert ticks >= 20


def test_async_variants_return_what_the_blocking_ones_do(text_tools_path: Path) -> None:
    api_errors = Path(text_tools_path).with_name("api_errors.wasm")
    hooks = packhost.Pack(api_errors)
    pack = packhost.Pack(text_tools_path)

    async def scenario() -> None:
        results = await asyncio.gather(*(pack.acall("uppercase", f"x{i}") for i in range(16)))
        assert [result.text for result in results] == [f"X{i}" for i in range(16)]
        request = {"method": "GET", "url": "https://example.org/"}
        assert (await hooks.apre(request)).json() == hooks.pre(request).json()
        response = {"response": {"status": 503}}
        assert (await hooks.apost(response)).json() == hooks.post(response).json()
        with pytest.raises(packhost.PluginError):
            await pack.acall("fail_with", "no")

    asyncio.run(scenario())


def test_a_worker_forked_after_loading_still_times_out(hostile_path: Path) -> None:
    # Servers load packs, then fork workers (gunicorn --preload, multiprocessing): threads do
    # not survive a fork, and the timeout thread must come back in the child.
    import os

    pack = packhost.Pack(hostile_path, limits={"timeout_ms": 300, "fuel": None})
    pack.call("busy", {"rounds": 10})
    child = os.fork()
    if child == 0:
        code = 1
        try:
            pack.call("spin")
        except packhost.Timeout:
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        finished, status = os.waitpid(child, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(status) == 0, "the child's call did not end in Timeout"
            return
        time.sleep(0.05)
    threads = _thread_states(child)
    os.kill(child, 9)
    os.waitpid(child, 0)
    pytest.fail(f"the forked child's looping call never timed out; its threads: {threads}")


def _thread_states(pid: int) -> str:
    """Each thread of ``pid`` with its scheduler state and kernel wait channel, so that a
    hang shows whether the timeout thread is missing, blocked on a lock, or running."""
    states = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            name = (task / "comm").read_text().strip()
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = (task / "wchan").read_text().strip() or "-"
        except OSError:
            continue
        states.append(f"{name} {state} {wchan}")
    return "; ".join(states) or "unreadable"
