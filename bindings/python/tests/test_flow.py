"""``packhost.Flow``: packs' actions composed as data, run from Python with the GIL released,
ended by a step's timeout or a ``CancelToken`` cancelled from another thread, following a
pack's reload, and refusing packs of the wrong type."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Dict

import pytest

import packhost
from conftest import Ticker, pack_path

SHOUT_THEN_COUNT: Dict[str, Any] = {
    "name": "shout_then_count",
    "steps": [
        {"id": "shout", "pack": "text", "action": "uppercase", "input": {"$from": "/input/text"}},
        {
            "id": "count",
            "pack": "text",
            "action": "count_vowels",
            "input": {"text": {"$from": "/steps/shout/output"}},
        },
    ],
}
# Only the step's timeout_ms (or a token) can end ``spin`` within the test: no fuel cap, and
# the pack's own time limit far off.
SPIN = {"limits": {"timeout_ms": 5000, "fuel": None}}


def spin_flow(**step: Any) -> Dict[str, Any]:
    return {
        "name": "spinning",
        "steps": [{"id": "spin", "pack": "hostile", "action": "spin", **step}],
    }


def test_a_step_reads_the_previous_steps_output(text_tools_path: Path) -> None:
    text = packhost.Pack(text_tools_path)
    flow = packhost.Flow(SHOUT_THEN_COUNT, {"text": text})
    assert flow.name == "shout_then_count"
    result = flow.run({"text": "hello world"}, context={"tenant": "acme"})
    assert result["output"] == {"count": 3, "vowels": "EOO"}
    assert [(step["id"], step["action"], step["status"]) for step in result["steps"]] == [
        ("shout", "uppercase", "ok"),
        ("count", "count_vowels", "ok"),
    ]
    assert all(step["usage"]["context"] == {"tenant": "acme"} for step in result["steps"])
    usage = result["usage"]
    assert usage["context"] == {"tenant": "acme"}
    assert (usage["steps_run"], usage["steps_skipped"]) == (2, 0)
    assert usage["fuel_consumed"] == sum(s["usage"]["fuel_consumed"] for s in result["steps"])

    # The definition as JSON text reads the same; no context is null.
    again = packhost.Flow(json.dumps(SHOUT_THEN_COUNT), {"text": text}).run({"text": "hello world"})
    assert again["output"] == result["output"]
    assert again["usage"]["context"] is None


def test_other_threads_run_while_a_step_spins_to_its_timeout(hostile_path: Path) -> None:
    hostile = packhost.Pack(hostile_path, SPIN)
    flow = packhost.Flow(spin_flow(timeout_ms=200), {"hostile": hostile})
    started = time.perf_counter()
    with Ticker(0.005) as ticker, pytest.raises(packhost.Timeout) as caught:
        flow.run()
    assert time.perf_counter() - started < 2, "the step's 200 ms ended it, not the pack's 5 s"
    # A run holding the GIL throughout would leave the ticker near zero.
    assert ticker.ticks >= 15
    error = caught.value
    assert error.code == "timeout"
    assert 'flow "spinning", step "spin"' in error.message
    assert "timeout_ms 200" in error.message
    # The cancelled call's report comes with the error.
    assert error.usage is not None and error.usage.action == "spin"


def test_a_token_cancelled_from_another_thread_stops_the_run(hostile_path: Path) -> None:
    hostile = packhost.Pack(hostile_path, SPIN)
    flow = packhost.Flow(spin_flow(), {"hostile": hostile})
    token = packhost.CancelToken()
    timer = threading.Timer(0.1, token.cancel)
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(packhost.Cancelled) as caught:
            flow.run(cancel=token)
    finally:
        timer.cancel()
        timer.join()
    assert time.perf_counter() - started < 2, "the token ended it, not the pack's 5 s"
    assert caught.value.code == "cancelled"
    assert 'step "spin"' in caught.value.message
    assert token.cancelled
    # The pack is still usable, and the flow with a fresh token.
    with pytest.raises(packhost.Timeout):
        packhost.Flow(spin_flow(timeout_ms=50), {"hostile": hostile}).run(
            cancel=packhost.CancelToken()
        )


def test_a_reloaded_pack_serves_the_flows_later_runs() -> None:
    text = packhost.Pack(pack_path("text_tools"))
    flow = packhost.Flow(SHOUT_THEN_COUNT, {"text": text})

    def versions() -> set[str]:
        steps = flow.run({"text": "hello world"})["steps"]
        return {step["usage"]["pack_version"] for step in steps}

    assert versions() == {"0.1.0"}
    text.reload(pack_path("text_tools_next"))
    assert versions() == {"9.0.0"}


def test_packs_and_definitions_of_the_wrong_type_are_invalid_options(
    text_tools_path: Path,
) -> None:
    text = packhost.Pack(text_tools_path)
    with pytest.raises(packhost.InvalidOptions, match="must be a packhost.Pack, not NativePack"):
        packhost.Flow(SHOUT_THEN_COUNT, {"text": text._native})  # type: ignore[dict-item]
    with pytest.raises(packhost.InvalidOptions, match="must be a packhost.Pack, not str"):
        packhost.Flow(SHOUT_THEN_COUNT, {"text": str(text_tools_path)})  # type: ignore[dict-item]
    with pytest.raises(packhost.InvalidOptions, match="dict of names"):
        packhost.Flow(SHOUT_THEN_COUNT, [("text", text)])  # type: ignore[arg-type]
    with pytest.raises(packhost.InvalidOptions, match="dict or JSON text"):
        packhost.Flow(42, {"text": text})  # type: ignore[arg-type]
    with pytest.raises(packhost.InvalidOptions, match="JSON-serialisable"):
        packhost.Flow({**SHOUT_THEN_COUNT, "description": object()}, {"text": text})
    with pytest.raises(packhost.InvalidOptions, match="JSON-serialisable"):
        packhost.Flow(SHOUT_THEN_COUNT, {"text": text}).run(object())
    # The core's own checks raise the same classes.
    with pytest.raises(packhost.InvalidOptions, match='no pack named "text"'):
        packhost.Flow(SHOUT_THEN_COUNT, {"other": text})
    with pytest.raises(packhost.InvalidOptions):
        packhost.Flow("not json", {"text": text})
