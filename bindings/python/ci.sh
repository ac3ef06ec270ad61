#!/usr/bin/env bash
# CI for the Python binding, on the package users install: builds the abi3 wheel with the
# release profile (bindings/python/package.sh), installs it into .venv at the repository
# root and runs the pytest suite against that installed copy, then installs packhost into
# fresh virtualenvs the two ways the README gives (`pip install .` and the wheel), checks
# that both report an optimised build, and runs the example there.
# Idempotent; run from anywhere: `bash bindings/python/ci.sh`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

for pack in text_tools api_errors hostile plain kv_probe webhook_guard; do
  if [[ ! -f "plugins/dist/$pack.wasm" ]]; then
    echo "plugins/dist/$pack.wasm is missing: build the sample packs first (make packs)" >&2
    exit 1
  fi
done

PYTHON="${PYTHON:-python3}"
step "virtualenv with the binding's tools"
VENV="$(bash bindings/python/setup-venv.sh)"
echo "$VENV"

step "wheel (release profile)"
WHEEL="$(PATH="$VENV/bin:$PATH" bash bindings/python/package.sh)"
echo "$WHEEL"

step "the wheel installed into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"

step "pytest, against the installed wheel"
PACKHOST_EXPECT_RELEASE=1 "$VENV/bin/python" -m pytest bindings/python/tests -q -ra --durations=5

step "benchmark smoke run (tiny counts; make bench runs it for real)"
"$VENV/bin/python" bindings/python/bench/bench.py plugins/dist/bench.wasm --smoke

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# Both installs run the example from outside the repository, so only the installed package
# can be imported, and fail unless it reports the optimised build BENCHMARKS.md measures.
check_install() {
  local venv="$1"
  (cd "$SCRATCH" && "$venv/bin/python" - <<'PY'
import packhost
info = packhost.build_info()
print(f"packhost {packhost.__version__} from {packhost.__file__}: {info}")
assert info["profile"] == "release" and info["opt_level"] == "3", info
assert info["debug_assertions"] is False, info
PY
  )
  (cd "$SCRATCH" && "$venv/bin/python" "$ROOT/examples/python/quickstart.py" "$ROOT/plugins/dist" >/dev/null)
  (cd "$SCRATCH" && "$venv/bin/python" "$ROOT/examples/python/webhook_guard.py" "$ROOT/plugins/dist" >/dev/null)
  echo "$("$venv/bin/python" --version): installed build is optimised, the example ran"
}

step "pip install . into a fresh virtualenv (the README's command)"
"$PYTHON" -m venv "$SCRATCH/source-venv"
"$SCRATCH/source-venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ROOT"
check_install "$SCRATCH/source-venv"

step "the wheel in a fresh virtualenv of the oldest Python available"
# The wheel is abi3 for CPython 3.9+: install it into the oldest Python available.
OLDEST="$PYTHON"
for candidate in python3.9 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python; do
  # pyenv shims exist for versions that are installed but not selected: try, don't trust.
  if "$candidate" -c 'import venv' >/dev/null 2>&1; then OLDEST="$candidate"; break; fi
done
"$OLDEST" -m venv "$SCRATCH/wheel-venv"
"$SCRATCH/wheel-venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WHEEL"
check_install "$SCRATCH/wheel-venv"
