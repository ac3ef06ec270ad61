"""Shared fixtures for the Python binding's tests: where the repository's packs live, the
conformance suite's host functions, and a ticker that shows other threads keep running."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Optional, Type

import pytest

import packhost

REPO_ROOT = Path(__file__).resolve().parents[3]
DIST = REPO_ROOT / "plugins" / "dist"
CONFORMANCE = REPO_ROOT / "tests" / "conformance"


def pack_path(name: str) -> Path:
    """The built sample pack ``name`` (``make packs`` builds them)."""
    path = DIST / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: build the sample packs first (make packs)")
    return path


@pytest.fixture(scope="session")
def text_tools_path() -> Path:
    return pack_path("text_tools")


@pytest.fixture(scope="session")
def hostile_path() -> Path:
    return pack_path("hostile")


@pytest.fixture(scope="session")
def host_calls_path() -> Path:
    return pack_path("host_calls")


def _add(args: Dict[str, Any]) -> Dict[str, Any]:
    return {"sum": args["a"] + args["b"]}


def _fail(message: str) -> bytes:
    # The suite's `fail` raises a LookupError; Python has that class built in.
    raise LookupError(message)


def _context_echo(_: bytes, call: packhost.HostCall) -> Dict[str, Any]:
    return {"context": call.context, "pack": call.pack_name}


# The suite's host functions (tests/conformance/README.md), written with the public API.
SUITE_FUNCTIONS = [
    packhost.host_fn(lambda data: data[::-1], name="reverse"),
    packhost.host_fn(_add, name="add", input="json", output="json"),
    packhost.host_fn(_fail, name="fail", input="str"),
    packhost.host_fn(_context_echo, name="context_echo", output="json"),
]


class Ticker:
    """Counts the turns a Python thread gets, every ``interval`` seconds, while the ``with``
    block runs: a call that held the GIL throughout would leave it near zero."""

    def __init__(self, interval: float) -> None:
        self.ticks = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ticks += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        self._stop.set()
        self._thread.join()
