"""Long-running hosts: many calls and many load/drop cycles do not grow resident memory.

Growth is measured after a warm-up (allocator pools, the instance pool and the module cache
fill first), and compared with a bound far below what a per-call or per-load leak would add.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

import pytest

import packhost

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MIB = 1 << 20


def resident_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import resource

    return pages * resource.getpagesize()


def drop_everything(record: logging.LogRecord) -> bool:
    return False


def test_100000_calls_do_not_grow_resident_memory(text_tools_path: Path) -> None:
    pack = packhost.Pack(text_tools_path, log_level="trace")
    # The pack's lines are still forwarded, then dropped: pytest keeps every record that
    # reaches a handler, which would look like a leak here.
    plugin_logger = logging.getLogger(f"packhost.plugin.{pack.name}")
    plugin_logger.addFilter(drop_everything)
    payload = {"text": "the quick brown fox"}
    for _ in range(10_000):
        pack.call("count_vowels", payload)
    before = resident_bytes()
    for index in range(100_000):
        result = pack.call("count_vowels", payload) if index % 2 else pack.call("chatty")
        assert result.usage.fuel_consumed
    growth = resident_bytes() - before
    plugin_logger.removeFilter(drop_everything)
    # A leak of even 100 bytes per call would show as 10 MB.
    assert growth < 8 * MIB, f"resident memory grew {growth / MIB:.1f} MiB over 100,000 calls"


def test_10000_load_drop_cycles_do_not_grow_resident_memory(text_tools_path: Path) -> None:
    data = text_tools_path.read_bytes()
    for _ in range(1_000):
        packhost.Pack(data)
    before = resident_bytes()
    for index in range(10_000):
        pack = packhost.Pack(data, limits={"timeout_ms": 1000 + index % 7})
        del pack
    growth = resident_bytes() - before
    # Each load copies the 200+ KiB module, so a leaked pack would add gigabytes.
    assert growth < 16 * MIB, f"resident memory grew {growth / MIB:.1f} MiB over 10,000 loads"


def test_failed_calls_release_their_instances(hostile_path: Path) -> None:
    pack = packhost.Pack(hostile_path, limits={"fuel": 100_000})
    for _ in range(100):
        with pytest.raises(packhost.OutOfFuel):
            pack.call("spin")
    before = resident_bytes()
    for _ in range(500):
        with pytest.raises(packhost.OutOfFuel):
            pack.call("spin")
    growth = resident_bytes() - before
    assert growth < 32 * MIB, f"resident memory grew {growth / MIB:.1f} MiB over 500 failed calls"
