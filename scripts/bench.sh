#!/usr/bin/env bash
# `make bench`: times packhost in every host and its anchors (the official Extism SDKs, the
# extism crate, bare wasmtime) on the benchmark pack in one run, then writes BENCHMARKS.md.
# Everything is built with the release profile (cargo's `bench` profile for the Rust
# benchmarks), once, in the shared target dir. Absolute times drift on shared machines; the
# ratios between columns measured in this same run are the result.
#
# Besides the in-tree release builds, each binding is also timed as users install it: the
# wheel from `pip install .`, the npm tarball from `npm pack` installed into an empty project,
# and the gem from `gem install`. With PACKHOST_BENCH_INSTALL_FROM_SCRATCH=1 (the default)
# `pip install .`, `gem install` and `cargo install --path cli` each start from an empty
# target dir, as on a user's machine, and their wall time is reported (each compiles
# wasmtime: about ten minutes on two cores); with 0 they reuse this run's target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
results="$target_dir/bench-results"
installs="$target_dir/bench-installs"
from_scratch="${PACKHOST_BENCH_INSTALL_FROM_SCRATCH:-1}"
rm -rf "$results" "$installs" "$target_dir/criterion"
mkdir -p "$results" "$installs"
# Users do not run with it, and it slows libextism's calls (see the anchors' README). The
# backtrace comparison below sets it explicitly for one run.
unset RUST_BACKTRACE
step() { printf '\n== %s\n' "$*"; }

step "host toolchains (installed only when missing)"
if [ ! -x node_modules/.bin/napi ]; then npm install --no-audit --no-fund; fi
bash bindings/python/setup-venv.sh >/dev/null
missing=()
for package in ruby-dev libclang-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then apt-get update && apt-get install -y "${missing[@]}"; fi

step "release builds: the core's benchmarks, then each binding"
cargo bench -p packhost --no-run
npm run --silent build
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

# Runs "$@" and appends `install host=HOST seconds=S` to the results.
timed_install() {
  local host="$1"
  shift
  local began=$SECONDS
  "$@"
  echo "install host=$host from_scratch=$from_scratch seconds=$((SECONDS - began))" | tee -a "$results/install.txt"
}
# A target dir for one install: empty (a user's first install) or this run's.
install_target() {
  if [ "$from_scratch" = 1 ]; then
    rm -rf "$installs/target-$1"
    echo "$installs/target-$1"
  else
    echo "$target_dir"
  fi
}

jar="$(bash bindings/kotlin/package.sh)"
kotlin_home="$root/bindings/kotlin/node_modules/kotlin-compiler"
kotlin_classpath="$jar:/usr/share/java/jna.jar:/usr/share/java/gson.jar:$kotlin_home/lib/kotlin-stdlib.jar"
"$kotlin_home/bin/kotlinc" -jvm-target 17 -cp "$kotlin_classpath" -d "$results/kotlin-bench.jar" bindings/kotlin/bench/Bench.kt

step "installed packages: pip install ., the npm tarball, gem install, cargo install"
python3 -m venv "$installs/venv"
timed_install python env CARGO_TARGET_DIR="$(install_target python)" \
  "$installs/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$root"
tarball="$(PACKHOST_DIST="$installs" bash bindings/node/package.sh)"
mkdir -p "$installs/npm-app"
echo '{"name": "packhost-bench", "private": true}' > "$installs/npm-app/package.json"
timed_install node npm install --prefix "$installs/npm-app" --no-audit --no-fund --silent "$tarball"
gem_file="$(ruby bindings/ruby/script/stage_gem.rb)"
timed_install ruby env CARGO_TARGET_DIR="$(install_target ruby)" GEM_HOME="$installs/gems" \
  gem install --local --no-document --silent "$gem_file"
timed_install cli env CARGO_TARGET_DIR="$(install_target cli)" \
  cargo install --quiet --locked --path cli --root "$installs/cli"
"$installs/cli/bin/packhost" --version --verbose | sed 's/^/cli /' | tee "$results/cli-build.txt"
# The from-scratch target dirs are only for timing; they hold a few GB each.
[ "$from_scratch" = 1 ] && rm -rf "$installs"/target-*

step "bindings: in-tree release builds and the installed packages, alternating"
in_tree() {
  node bindings/node/bench/bench.js "plugins/dist/$1.wasm"
  .venv/bin/python bindings/python/bench/bench.py "plugins/dist/$1.wasm"
  ruby -Ibindings/ruby/lib bindings/ruby/bench/bench.rb "plugins/dist/$1.wasm"
  java -cp "$results/kotlin-bench.jar:$kotlin_classpath" BenchKt "plugins/dist/$1.wasm"
}
# Same scripts and packs, loading only what was installed (run from outside the
# repository's load paths); lines are labelled `<host>-installed`.
installed() {
  PACKHOST_MODULE="$installs/npm-app/node_modules/packhost" node bindings/node/bench/bench.js "plugins/dist/$1.wasm"
  (cd "$installs" && "$installs/venv/bin/python" "$root/bindings/python/bench/bench.py" "$root/plugins/dist/$1.wasm")
  GEM_HOME="$installs/gems" ruby bindings/ruby/bench/bench.rb "plugins/dist/$1.wasm"
}
# Sub-microsecond figures drift between processes by more than the 1.2x the comparison
# allows (the Node addon is the same file in both places, and still differed by 1.4x in
# one pass, and by 1.34x as the median of three), so the two alternate over five passes and
# the report takes each figure's median.
for pass in 1 2 3 4 5; do
  in_tree bench | sed "s/^/bench /" | tee -a "$results/hosts.txt"
  installed bench | sed -E "s/^(packhost-[a-z]+) /\1-installed /; s/^/bench /" | tee -a "$results/hosts.txt"
done
in_tree bench_plain | sed "s/^/bench_plain /" | tee -a "$results/hosts.txt"

step "anchors: the official SDKs on the same packs and inputs"
anchors="${PACKHOST_ANCHORS:-../shared/anchors}"
if [ -f "$anchors/run.sh" ]; then
  for pack in bench bench_plain; do
    for export_name in length echo; do
      bash "$anchors/run.sh" "plugins/dist/$pack.wasm" "$export_name" "0 1024 102400" \
        | sed "s/^/$pack $export_name /" | tee -a "$results/anchors.txt"
    done
  done
  # Host functions: the same SDKs lending `reverse` to host_calls.wasm, by scripts of ours
  # (the shared anchors call exports only), with the same timing as the host scripts.
  eval "$(bash "$anchors/setup.sh" | sed 's/^/export /')"
  host_calls="plugins/dist/host_calls.wasm"
  {
    "$ANCHORS_HOME/venv/bin/python" bindings/python/bench/extism_host_fn.py "$host_calls"
    NODE_PATH="$ANCHORS_HOME/node/node_modules" node --no-warnings bindings/node/bench/extism_host_fn.mjs "$host_calls"
    LIBEXTISM="$LIBEXTISM" ruby bindings/ruby/bench/extism_host_fn.rb "$host_calls"
  } | sed "s/^/host_calls reverse_via_host /" | tee -a "$results/anchors.txt"
else
  echo "no anchors at $anchors: BENCHMARKS.md will lack the official SDK columns" >&2
  touch "$results/anchors.txt"
fi

step "runner: packhost serve against a bare endpoint of the same HTTP stack (wrk)"
bash scripts/bench_runner.sh "$results/runner.txt"

python3 scripts/bench_report.py "$target_dir/criterion" "$results" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
