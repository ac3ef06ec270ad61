"""Failures arrive as ``packhost.PackError`` subclasses carrying the core's code and report."""

from __future__ import annotations

from pathlib import Path

import pytest

import packhost


def test_one_class_per_core_code_all_under_pack_error() -> None:
    assert list(packhost.ERROR_CLASSES) == list(packhost.ERROR_CODES)
    for code, cls in packhost.ERROR_CLASSES.items():
        assert issubclass(cls, packhost.PackError)
        assert cls.code == code
        assert getattr(packhost, cls.__name__) is cls


def test_a_plugin_error_carries_message_return_code_and_usage(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    with pytest.raises(packhost.PluginError) as caught:
        pack.call("fail_with", "the input was wrong")
    error = caught.value
    assert error.code == "plugin_error"
    assert error.message == str(error) == "the input was wrong"
    assert error.return_code == 1
    assert error.usage is not None and error.usage.fuel_consumed > 0
    assert error.usage.output_bytes == 0
    assert error.usage.action == "fail_with"
    assert error.audit == []


def test_a_timeout_is_catchable_by_class_and_the_pack_stays_usable(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, limits={"timeout_ms": 100, "fuel": None})
    with pytest.raises(packhost.Timeout) as caught:
        pack.call("spin")
    assert caught.value.usage is not None
    assert caught.value.return_code is None
    assert pack.call("busy", {"rounds": 10}).json() == 1845767244449711


def test_out_of_fuel_and_memory_limit(hostile_path: Path) -> None:
    with pytest.raises(packhost.OutOfFuel):
        packhost.Pack(hostile_path, limits={"fuel": 1_000_000}).call("spin")
    with pytest.raises(packhost.MemoryLimit):
        packhost.Pack(hostile_path, limits={"memory_bytes": 16 << 20}).call("memory_bomb")


def test_load_errors_have_no_call_report(tmp_path: Path) -> None:
    with pytest.raises(packhost.Io) as missing:
        packhost.Pack(tmp_path / "nothing.wasm")
    assert missing.value.usage is None and missing.value.logs == ()
    assert missing.value.audit == []
    with pytest.raises(packhost.InvalidPack):
        packhost.Pack(b"definitely not wasm")


def test_unknown_action_and_oversized_input(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path, limits={"max_input_bytes": 4})
    with pytest.raises(packhost.ActionNotFound):
        pack.call("no_such_action")
    with pytest.raises(packhost.InputTooLarge):
        pack.call("echo", b"12345")


def test_a_wrong_input_type_is_a_type_error_not_a_pack_error(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path)
    with pytest.raises(TypeError):
        pack.call("echo", {1, 2})  # a set is not JSON


def test_a_code_from_a_newer_core_still_raises_a_pack_error() -> None:
    error = packhost.PackError("something new", code="brand_new_code")
    assert error.code == "brand_new_code"
    assert packhost.Timeout("slow").code == "timeout"


def test_a_panic_in_rust_becomes_internal_not_a_crash() -> None:
    from packhost import _native

    with pytest.raises(packhost.Internal) as caught:
        _native._panic_for_tests("deliberate")
    assert caught.value.code == "internal"
    assert "deliberate" in caught.value.message
