#!/usr/bin/env bash
# Creates .venv at the repository root with the Python binding's pinned tools (maturin,
# pytest, mypy) and prints its path; reinstalls only when the pinned list changed. Used by
# ci.sh, scripts/release.sh and scripts/bench.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/bindings/python/requirements-dev.txt"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "$PYTHON is older than Python 3.9, the oldest packhost supports" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing python3-venv" >&2
  apt-get update >&2 && apt-get install -y python3-venv >&2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.packhost-dev-requirements"
if ! cmp -s "$REQUIREMENTS" "$STAMP"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
  cp "$REQUIREMENTS" "$STAMP"
fi
echo "$VENV"
