#!/usr/bin/env bash
# Builds the Python package users install: one abi3 wheel (CPython 3.9+, manylinux tag)
# with the release profile, into $PACKHOST_DIST (default <cargo target dir>/dist), and prints
# its path. `pip install .` builds the same wheel through the same backend (maturin).
# Needs maturin on PATH (bindings/python/ci.sh puts .venv/bin there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DIST="$(bash scripts/dist-dir.sh)"
rm -f "$DIST"/packhost-*.whl

# maturin's progress goes to stderr; stdout carries only the wheel's path.
maturin build --release --quiet --out "$DIST" >&2
ls "$DIST"/packhost-*.whl
