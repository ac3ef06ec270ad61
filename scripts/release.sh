#!/usr/bin/env bash
# `make release`: builds every package users install, with the release profile, into
# <cargo target dir>/dist: the abi3 wheel, the npm tarball (prebuilt addon inside), the gem,
# the JVM's JAR (native library inside), the four crates' archives and the `packhost` binary. One target dir serves them all, so
# wasmtime is compiled once. `make test` builds and installs the same artifacts (each
# binding's ci.sh and scripts/crates-check.sh); this verb only collects them.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export PACKHOST_DIST="${PACKHOST_DIST:-$CARGO_TARGET_DIR/dist}"
mkdir -p "$PACKHOST_DIST"
step() { printf '\n== %s\n' "$*"; }

step "Python wheel"
venv="$(bash bindings/python/setup-venv.sh)"
PATH="$venv/bin:$PATH" bash bindings/python/package.sh

step "npm tarball"
[ -x node_modules/.bin/napi ] || npm install --no-audit --no-fund
bash bindings/node/package.sh

step "gem"
gem_file="$(ruby bindings/ruby/script/stage_gem.rb)"
cp "$gem_file" "$PACKHOST_DIST/"
echo "$PACKHOST_DIST/$(basename "$gem_file")"

step "JVM JAR"
bash bindings/kotlin/package.sh

step "crates and the packhost binary"
cargo package --locked --no-verify --allow-dirty -p packhost -p packhost-pdk -p packhost-pdk-macros -p packhost-cli
cp "$CARGO_TARGET_DIR"/package/*.crate "$PACKHOST_DIST/"
cargo build --locked --release -p packhost-cli
cp "$CARGO_TARGET_DIR/release/packhost" "$PACKHOST_DIST/"
"$PACKHOST_DIST/packhost" --version --verbose

step "dist"
ls -l "$PACKHOST_DIST"
