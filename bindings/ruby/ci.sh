#!/usr/bin/env bash
# CI entry point of the Ruby binding: installs what is missing (Ruby headers, minitest,
# libclang for rb-sys's bindgen), builds the extension through extconf.rb with the
# workspace's dev profile, then runs the minitest suite twice: normally, then under
# GC.stress (timing and memory tests are left out of that pass).
#
# Runs from anywhere: `bash bindings/ruby/ci.sh`. Exits non-zero on any failure.
# The full `gem build` + `gem install` check is slow (it compiles wasmtime) and lives in
# gem-check.sh instead.
set -euo pipefail

ruby_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$ruby_dir/../.." && pwd)"

missing=()
for package in ruby-dev ruby-minitest libclang-dev; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "ci.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! ls "$repo_root"/plugins/dist/*.wasm >/dev/null 2>&1; then
  echo "ci.sh: no sample packs in $repo_root/plugins/dist; build them first (make packs)" >&2
  exit 1
fi

echo "ci.sh: building the extension (cargo dev profile)"
build_dir="$ruby_dir/tmp/build"
mkdir -p "$build_dir"
(
  cd "$build_dir"
  PACKHOST_CARGO_PROFILE=dev ruby "$ruby_dir/ext/packhost/extconf.rb"
  make install sitearchdir="$ruby_dir/lib"
)

run_suite() {
  (cd "$ruby_dir" && ruby -w -Itest -e 'Dir["test/**/*_test.rb"].sort.each { |file| require_relative file }')
}

echo "ci.sh: running the test suite"
run_suite
echo "ci.sh: benchmark smoke run (tiny counts; make bench runs it for real)"
ruby -I"$ruby_dir/lib" "$ruby_dir/bench/bench.rb" "$repo_root/plugins/dist/bench.wasm" --smoke
echo "ci.sh: running the test suite again under GC.stress"
PACKHOST_GC_STRESS=1 run_suite
