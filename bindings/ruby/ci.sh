#!/usr/bin/env bash
# CI entry point of the Ruby binding, on the gem users install: installs what is missing
# (Ruby headers, minitest, libclang for rb-sys's bindgen), builds the gem
# (script/stage_gem.rb), installs it with `gem install --local` into an empty GEM_HOME (which
# compiles the extension with the release profile, as for a user), then runs the minitest
# suite against that installed gem twice: normally, then under GC.stress (timing and memory
# tests are left out of that pass, and conformance cases run once each instead of per engine
# and backend). Last, from outside the repository, it checks that the
# installed gem reports an optimised build and runs the example.
#
# Runs from anywhere: `bash bindings/ruby/ci.sh`. Exits non-zero on any failure.
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

# The gem's build shares the workspace's target dir, so the release build of wasmtime the
# other packages made is reused; without CARGO_TARGET_DIR a user's `gem install` builds in
# a scratch dir of its own and removes it afterwards.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_root/target}"

echo "ci.sh: building the gem"
gem_file="$(ruby "$ruby_dir/script/stage_gem.rb")"
echo "ci.sh: built $gem_file"

gem_home="$ruby_dir/tmp/gem-home"
rm -rf "$gem_home"
mkdir -p "$gem_home"
echo "ci.sh: gem install into the empty GEM_HOME $gem_home (compiles the extension, release profile)"
# Only the local file may be used: the gems registry is not needed (and may be unreachable).
GEM_HOME="$gem_home" gem install --local --no-document "$gem_file"

# Everything below loads packhost from the installed gem only: the suite's helper leaves
# lib/ off the load path when PACKHOST_TEST_INSTALLED_GEM is set. (GEM_PATH stays unset, so
# Debian's minitest is still found beside the gem.) PACKHOST_EXPECT_RELEASE makes the suite
# require the optimised build.
export GEM_HOME="$gem_home" PACKHOST_TEST_INSTALLED_GEM=1 PACKHOST_EXPECT_RELEASE=1

run_suite() {
  (cd "$ruby_dir" && ruby -w -Itest -e 'Dir["test/**/*_test.rb"].sort.each { |file| require_relative file }')
}

echo "ci.sh: running the test suite against the installed gem"
run_suite
echo "ci.sh: benchmark smoke run (tiny counts; make bench runs it for real)"
ruby "$ruby_dir/bench/bench.rb" "$repo_root/plugins/dist/bench.wasm" --smoke
echo "ci.sh: running the test suite again under GC.stress"
PACKHOST_GC_STRESS=1 run_suite

echo "ci.sh: the installed gem, from outside the repository"
cd "$(mktemp -d)"
ruby -e '
  require "packhost"
  info = Packhost.build_info
  puts "ci.sh: packhost #{Packhost::VERSION} from #{$LOADED_FEATURES.grep(/packhost\.so/).first}: #{info}"
  unless info["profile"] == "release" && info["opt_level"] == "3" && info["debug_assertions"] == false
    abort "ci.sh: the installed gem is not the optimised release build"
  end
'
ruby "$repo_root/examples/ruby/quickstart.rb" "$repo_root/plugins/dist" >/dev/null
ruby "$repo_root/examples/ruby/webhook_guard.rb" "$repo_root/plugins/dist" >/dev/null
echo "ci.sh: the installed gem is optimised and ran the example"
