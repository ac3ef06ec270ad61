#!/usr/bin/env bash
# The gem's install check: `gem build` (through script/stage_gem.rb), `gem install` into an
# empty GEM_HOME with no gem source but the file itself, then the Ruby example run against
# the installed gem only (from outside the repository, without -I).
#
#   bash bindings/ruby/gem-check.sh          # what a user gets: release build, scratch target
#   bash bindings/ruby/gem-check.sh --fast   # dev profile into the shared target dir
#
# The default compiles wasmtime from scratch (10+ minutes on 2 cores), which is why ci.sh
# does not run this. --fast reuses the dependencies the workspace already compiled; it
# checks the same gem, files and install steps, only with the dev profile.
set -euo pipefail

ruby_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$ruby_dir/../.." && pwd)"

if [[ "${1:-}" == "--fast" ]]; then
  export PACKHOST_CARGO_PROFILE=dev
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_root/target}"
fi

gem_file="$(ruby "$ruby_dir/script/stage_gem.rb")"
echo "gem-check.sh: built $gem_file"

gem_home="$(mktemp -d "${TMPDIR:-/tmp}/packhost-gem-home.XXXXXX")"
trap 'rm -rf "$gem_home"' EXIT
export GEM_HOME="$gem_home" GEM_PATH="$gem_home"
# Only the local file may be used: the gems registry is not needed (and may be unreachable).
gem install --local --no-document --verbose "$gem_file"

echo "gem-check.sh: installed gems: $(gem list --local --no-versions | tr '\n' ' ')"
cd "$(mktemp -d)"
ruby -e 'require "packhost"; puts "gem-check.sh: packhost #{Packhost::VERSION} loaded from #{$LOADED_FEATURES.grep(/packhost\.so/).first}"'
ruby "$repo_root/examples/ruby/quickstart.rb" "$repo_root/plugins/dist"
echo "gem-check.sh: OK"
