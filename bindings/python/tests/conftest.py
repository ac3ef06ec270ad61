"""Shared fixtures for the Python binding's tests: where the repository's packs live."""

from __future__ import annotations

from pathlib import Path

import pytest

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
