"""The shipped type information matches the package: ``_native.pyi`` against the compiled
module (mypy's stubtest compares names, kinds and parameter names), and the whole package
passes ``mypy --strict`` as a user's type checker would see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import packhost

PACKAGE_DIR = Path(packhost.__file__).parent


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, check=False
    )


def test_native_stubs_match_the_compiled_module() -> None:
    result = run_mypy("mypy.stubtest", "packhost")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_type_checks_strictly() -> None:
    # By module name, as installed (ci.sh runs the suite against the installed wheel): a
    # path inside site-packages would make mypy read the whole folder as the user's code.
    result = run_mypy("mypy", "--strict", "--no-incremental", "-p", "packhost")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_and_typed_marker_ship_with_the_package() -> None:
    assert (PACKAGE_DIR / "_native.pyi").is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()
