"""What a Python caller sees of ``packhost.Pack``: loading, inputs, outputs, options, logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

import packhost


def test_loads_from_a_path_a_string_or_bytes_alike(text_tools_path: Path) -> None:
    data = text_tools_path.read_bytes()
    for source in (text_tools_path, str(text_tools_path), data, bytearray(data), memoryview(data)):
        pack = packhost.Pack(source)
        assert pack.id == hashlib.sha256(data).hexdigest()
        assert "count_vowels" in pack.actions


def test_a_source_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="a path, bytes or an Extism manifest"):
        packhost.Pack(42)  # type: ignore[arg-type]


def test_manifest_and_identity_are_plain_data(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    assert pack.name == pack.manifest["name"]
    assert pack.version == pack.manifest["version"]
    assert [action["name"] for action in pack.manifest["actions"]] == pack.actions
    assert repr(pack).startswith(f"<packhost.Pack {pack.name} ")


def test_str_bytes_and_json_inputs_send_the_same_bytes(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    assert pack.call("echo", "héllo").output == "héllo".encode()
    assert pack.call("echo", b"\x00\xff").output == b"\x00\xff"
    assert pack.call("echo", bytearray(b"abc")).output == b"abc"
    assert pack.call("echo", {"text": "é", "n": [1, 2]}).output == '{"text":"é","n":[1,2]}'.encode()
    assert pack.call("echo").output == b""


def test_output_reads_as_bytes_text_or_json(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    result = pack.call("count_vowels", {"text": "hello world"})
    assert result.json() == {"count": 3, "vowels": "eoo"}
    assert json.loads(result.text) == result.json()
    assert bytes(result) == result.output == result.text.encode()
    with pytest.raises(UnicodeDecodeError):
        pack.call("echo", b"\xff\xfe").text


def test_usage_is_measured_for_every_call(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    result = pack.call("uppercase", "abc")
    usage = result.usage
    assert result.text == "ABC"
    assert usage.input_bytes == 3 and usage.output_bytes == 3
    assert usage.fuel_consumed > 0 and usage.peak_memory_bytes > 0
    assert usage.as_dict()["fuel_consumed"] == usage.fuel_consumed
    assert set(usage.as_dict()) == {
        "wall_time_us", "fuel_consumed", "peak_memory_bytes", "input_bytes", "output_bytes",
        "host_calls", "host_time_us", "kv_ops", "http_requests", "http_bytes_sent",
        "http_bytes_received", "context", "pack_name", "pack_version", "pack_id", "action",
    }
    assert usage.host_calls == 0 and usage.host_time_us == 0 and usage.kv_ops == 0
    assert usage.http_requests == 0 and usage.http_bytes_sent == 0 and usage.http_bytes_received == 0
    assert usage.context is None
    # The record names the pack and the action, so billing needs nothing joined back to it.
    assert usage.pack_name == pack.name == "text-tools"
    assert usage.pack_version == pack.version and usage.pack_id == pack.id
    assert usage.action == "uppercase"
    assert usage.as_dict()["action"] == "uppercase" and usage.as_dict()["pack_id"] == pack.id
    # A call that uses no capability leaves an empty audit trail.
    assert result.audit == []
    # Identical calls burn identical fuel: the number billing is built on is deterministic.
    # (A pack's first call also pays its instance's start-up, so compare like with like.)
    assert packhost.Pack(text_tools_path).call("uppercase", "abc").usage.fuel_consumed == usage.fuel_consumed
    warm = pack.call("uppercase", "abc").usage.fuel_consumed
    assert pack.call("uppercase", "abc").usage.fuel_consumed == warm


def test_stats_count_every_call_since_loading(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    assert pack.stats()["calls"] == 0
    pack.call("uppercase", "abc")
    pack.call("uppercase", "def")
    with pytest.raises(packhost.PluginError):
        pack.call("fail_with", "no")
    # An unknown action fails before the pack runs: not a call.
    with pytest.raises(packhost.ActionNotFound):
        pack.call("no_such_action")
    stats = pack.stats()
    assert set(stats) == {
        "calls", "errors", "wall_time_us", "fuel_consumed", "input_bytes", "output_bytes",
        "host_calls", "kv_ops", "http_requests", "http_bytes_sent", "http_bytes_received",
    }
    assert stats["calls"] == 3
    assert stats["errors"] == {"plugin_error": 1}
    assert stats["output_bytes"] > 0 and stats["fuel_consumed"] > 0
    assert stats["input_bytes"] == len("abc") + len("def") + len("no")
    assert stats["http_requests"] == 0
    # Another load of the same module starts from nothing.
    assert packhost.Pack(text_tools_path).stats()["calls"] == 0


def test_options_as_a_dict_keywords_or_both(text_tools_path: Path) -> None:
    by_dict = packhost.Pack(text_tools_path, {"config": {"greeting": "Hi"}})
    by_keyword = packhost.Pack(text_tools_path, config={"greeting": "Hi"})
    both = packhost.Pack(text_tools_path, {"config": {"greeting": "Hi"}}, limits={"timeout_ms": 50})
    for pack in (by_dict, by_keyword, both):
        assert pack.call("greet", "Ada").text.startswith("Hi")
    assert both.options["limits"]["timeout_ms"] == 50
    # Defaults come from the core, not from Python.
    assert by_dict.options["limits"]["timeout_ms"] == packhost.Pack(text_tools_path).options["limits"]["timeout_ms"]


def test_the_same_option_twice_is_refused(text_tools_path: Path) -> None:
    with pytest.raises(TypeError, match="limits"):
        packhost.Pack(text_tools_path, {"limits": {}}, limits={"timeout_ms": 5})


def test_bad_options_raise_invalid_options(text_tools_path: Path) -> None:
    with pytest.raises(packhost.InvalidOptions) as caught:
        packhost.Pack(text_tools_path, limits={"timeout": 5})
    assert caught.value.code == "invalid_options"
    assert "timeout" in caught.value.message
    with pytest.raises(packhost.InvalidOptions, match="JSON"):
        packhost.Pack(text_tools_path, config={"greeting": object()})


def test_plugin_log_lines_reach_the_logging_module(text_tools_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pack = packhost.Pack(text_tools_path, log_level="trace")
    with caplog.at_level(packhost.TRACE, logger="packhost.plugin"):
        result = pack.call("chatty")
    assert [record.level for record in result.logs] == ["trace", "debug", "info", "warn", "error"]
    forwarded = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert forwarded == [
        (f"packhost.plugin.{pack.name}", level, record.message)
        for level, record in zip(
            [packhost.TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR],
            result.logs,
        )
    ]
    assert all(r.packhost_action == "chatty" for r in caplog.records)  # type: ignore[attr-defined]


def test_the_log_level_option_filters_inside_the_core(text_tools_path: Path) -> None:
    quiet = packhost.Pack(text_tools_path, log_level="error")
    assert [record.level for record in quiet.call("chatty").logs] == ["error"]
    silent = packhost.Pack(text_tools_path, log_level="off")
    assert silent.call("chatty").logs == ()


def test_build_info_says_how_the_module_was_built() -> None:
    info = packhost.build_info()
    assert set(info) == {"version", "profile", "opt_level", "debug_assertions", "wasmtime"}
    assert info["version"] == packhost.__version__
    assert info["wasmtime"].startswith("43.")
    assert (info["opt_level"] == "0") == (info["profile"] == "dev")
    # ci.sh runs this suite against the installed wheel, built as `pip install .` builds it.
    if os.environ.get("PACKHOST_EXPECT_RELEASE") == "1":
        assert (info["profile"], info["opt_level"], info["debug_assertions"]) == ("release", "3", False)
