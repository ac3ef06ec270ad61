#!/usr/bin/env bash
# CI for the Python binding: sets up .venv at the repository root, builds packhost._native
# with maturin (dev profile, shared target dir), runs the pytest suite, then installs the
# built wheel into a fresh virtualenv outside the repository and runs the example there.
# Idempotent; run from anywhere: `bash bindings/python/ci.sh`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/bindings/python/requirements-dev.txt"

step() { printf '\n==> %s\n' "$*"; }

for pack in text_tools api_errors hostile plain; do
  if [[ ! -f "plugins/dist/$pack.wasm" ]]; then
    echo "plugins/dist/$pack.wasm is missing: build the sample packs first (make packs)" >&2
    exit 1
  fi
done

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "$PYTHON is older than Python 3.9, the oldest packhost supports" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  step "installing python3-venv"
  apt-get update && apt-get install -y python3-venv
fi

step "virtualenv $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the pinned tool list changed since the last run.
STAMP="$VENV/.packhost-dev-requirements"
if ! cmp -s "$REQUIREMENTS" "$STAMP"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$STAMP"
fi

step "building packhost._native (maturin develop, dev profile)"
# The profile comes from [tool.maturin] in pyproject.toml; CARGO_TARGET_DIR is honoured.
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop

step "pytest"
"$VENV/bin/python" -m pytest bindings/python/tests -q -ra --durations=5

step "benchmark smoke run (tiny counts; make bench runs it for real)"
"$VENV/bin/python" bindings/python/bench/bench.py plugins/dist/bench.wasm --smoke

step "wheel in a fresh virtualenv outside the repository"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
"$VENV/bin/maturin" build --quiet --out "$SCRATCH/wheels"
# The wheel is abi3 for CPython 3.9+: install it into the oldest Python available.
OLDEST="$PYTHON"
for candidate in python3.9 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python; do
  # pyenv shims exist for versions that are installed but not selected: try, don't trust.
  if "$candidate" -c 'import venv' >/dev/null 2>&1; then OLDEST="$candidate"; break; fi
done
"$OLDEST" -m venv "$SCRATCH/venv"
"$SCRATCH/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$SCRATCH"/wheels/*.whl
(cd "$SCRATCH" && "$SCRATCH/venv/bin/python" "$ROOT/examples/python/quickstart.py" "$ROOT/plugins/dist")
echo "wheel $(basename "$SCRATCH"/wheels/*.whl) ran the example on $("$SCRATCH/venv/bin/python" --version)"
