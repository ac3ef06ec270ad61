"""Live version swaps: ``Pack.reload`` loads the next version with the same options and host
functions, calls already running finish on the old one, and a failed reload keeps the old
version serving."""

from __future__ import annotations

import threading

import pytest

import packhost
from conftest import pack_path


def test_a_reload_swaps_the_next_version_in_with_the_same_options() -> None:
    pack = packhost.Pack(pack_path("text_tools"), limits={"timeout_ms": 5000})
    assert pack.call("greet", "x").usage.pack_version == "0.1.0"
    assert pack.reload(pack_path("text_tools_next")) is pack
    assert pack.version == "9.0.0"
    assert pack.manifest["version"] == "9.0.0"
    assert pack.options["limits"]["timeout_ms"] == 5000
    assert pack.call("greet", "after").usage.pack_version == "9.0.0"

    # From bytes too, back to the first version.
    pack.reload(pack_path("text_tools").read_bytes())
    assert pack.call("greet", "x").usage.pack_version == "0.1.0"


def test_calls_on_other_threads_keep_working_through_reloads() -> None:
    pack = packhost.Pack(pack_path("text_tools"))
    failures: list[BaseException] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            try:
                assert pack.call("greet", "t").text == "Hello, t!"
            except Exception as err:  # noqa: BLE001 - collected for the assertion below
                failures.append(err)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        pack.reload(pack_path("text_tools_next"))
        pack.reload(pack_path("text_tools"))
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_reload_that_fails_leaves_the_old_version_serving() -> None:
    pack = packhost.Pack(pack_path("text_tools"))
    with pytest.raises(packhost.InvalidPack):
        pack.reload(b"not wasm")
    with pytest.raises(packhost.InvalidPack, match='next version of "text-tools" must be "text-tools", not "hostile"'):
        pack.reload(pack_path("hostile"))
    with pytest.raises(TypeError):
        pack.reload({"wasm": []})  # type: ignore[arg-type]
    assert pack.call("greet", "still").text == "Hello, still!"
    assert pack.version == "0.1.0"
