#!/usr/bin/env bash
# `make bench`: times packhost and its anchors on the benchmark pack in one run, then writes
# BENCHMARKS.md with per-call times and ratios. Uses cargo's `bench` profile (a release build,
# made once, only here). Absolute times drift on shared machines; the ratios are the result.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
results="$target_dir/bench-results"
rm -rf "$results" "$target_dir/criterion"
mkdir -p "$results"
unset RUST_BACKTRACE  # users do not run with it, and it slows libextism's calls (see the anchors)

cargo bench -p packhost --bench calls -- --warm-up-time 1 --measurement-time 3 | tee "$results/criterion.log"

anchors="${PACKHOST_ANCHORS:-../shared/anchors}"
if [ -x "$anchors/run.sh" ] || [ -f "$anchors/run.sh" ]; then
  for spec in "length:0 1024 102400" "echo:1024 102400" "count_vowels:1024"; do
    export_name="${spec%%:*}"; sizes="${spec#*:}"
    bash "$anchors/run.sh" plugins/dist/bench.wasm "$export_name" "$sizes" \
      | sed "s/^/$export_name /" | tee -a "$results/anchors.txt"
  done
else
  echo "no anchors at $anchors: BENCHMARKS.md will lack the official SDK columns" >&2
fi

python3 scripts/bench_report.py "$target_dir/criterion" "$results/anchors.txt" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
