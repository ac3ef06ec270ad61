"""The Python example in examples/python runs and prints what its comments promise."""

from __future__ import annotations

import subprocess
import sys

from conftest import DIST, REPO_ROOT


def test_quickstart_example_runs() -> None:
    example = REPO_ROOT / "examples" / "python" / "quickstart.py"
    result = subprocess.run(
        [sys.executable, str(example), str(DIST)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stripe said card_declined" in result.stdout
    assert "stopped: timeout" in result.stdout
    assert "failed: plugin_error (return code 1): bad input" in result.stdout
    assert "['ONE', 'TWO', 'THREE']" in result.stdout
    assert "desserts" in result.stdout
    assert "{'tenant': 'acme', 'pack': 'host_calls'}" in result.stdout
    assert "failed: host_function_error in fail (LookupError): no customer c42" in result.stdout
    # The pack's own log line went through the logging module.
    assert "[packhost.plugin.api-errors INFO] stripe error: card_error card_declined" in result.stderr
