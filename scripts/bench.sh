#!/usr/bin/env bash
# `make bench`: times packhost in every host and its anchors (the official Extism SDKs, the
# extism crate, bare wasmtime) on the benchmark pack in one run, then writes BENCHMARKS.md.
# Everything is built with the release profile (cargo's `bench` profile for the Rust
# benchmarks), once, in the shared target dir. Absolute times drift on shared machines; the
# ratios between columns measured in this same run are the result.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
results="$target_dir/bench-results"
rm -rf "$results" "$target_dir/criterion"
mkdir -p "$results"
# Users do not run with it, and it slows libextism's calls (see the anchors' README). The
# backtrace comparison below sets it explicitly for one run.
unset RUST_BACKTRACE
step() { printf '\n== %s\n' "$*"; }

step "host toolchains (installed only when missing)"
if [ ! -x node_modules/.bin/napi ]; then npm install --no-audit --no-fund; fi
if [ ! -x .venv/bin/maturin ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r bindings/python/requirements-dev.txt
fi
missing=()
for package in ruby-dev libclang-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then apt-get update && apt-get install -y "${missing[@]}"; fi

step "release builds: the core's benchmarks, then each binding"
cargo bench -p packhost --no-run
npm run --silent build -- --release
VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" .venv/bin/maturin develop --profile release
ruby_build="$root/bindings/ruby/tmp/bench-build"
mkdir -p "$ruby_build"
(cd "$ruby_build" && PACKHOST_CARGO_PROFILE=release ruby "$root/bindings/ruby/ext/packhost/extconf.rb" >/dev/null \
  && make install sitearchdir="$root/bindings/ruby/lib" >/dev/null)

step "Rust: per-call times (criterion)"
cargo bench -p packhost --bench calls -- --warm-up-time 1 --measurement-time 3 | tee "$results/criterion.log"

step "Rust: threads, first call, memory; per-call with and without RUST_BACKTRACE"
cargo bench -p packhost --bench figures | tee "$results/figures.txt"
RUST_BACKTRACE=1 PACKHOST_BENCH_ONLY=per_call cargo bench -p packhost --bench figures \
  | sed 's/^figure per_call/figure per_call_backtrace/' | tee -a "$results/figures.txt"

step "bindings"
for pack in bench bench_plain; do
  {
    node bindings/node/bench/bench.js "plugins/dist/$pack.wasm"
    .venv/bin/python bindings/python/bench/bench.py "plugins/dist/$pack.wasm"
    ruby -Ibindings/ruby/lib bindings/ruby/bench/bench.rb "plugins/dist/$pack.wasm"
  } | sed "s/^/$pack /" | tee -a "$results/hosts.txt"
done

step "anchors: the official SDKs on the same packs and inputs"
anchors="${PACKHOST_ANCHORS:-../shared/anchors}"
if [ -f "$anchors/run.sh" ]; then
  for pack in bench bench_plain; do
    for export_name in length echo; do
      bash "$anchors/run.sh" "plugins/dist/$pack.wasm" "$export_name" "0 1024 102400" \
        | sed "s/^/$pack $export_name /" | tee -a "$results/anchors.txt"
    done
  done
else
  echo "no anchors at $anchors: BENCHMARKS.md will lack the official SDK columns" >&2
  touch "$results/anchors.txt"
fi

python3 scripts/bench_report.py "$target_dir/criterion" "$results" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
