#!/usr/bin/env bash
# Builds the npm package users install: `npm pack` (whose prepack script builds the addon
# with the release profile) into $PACKHOST_DIST (default <cargo target dir>/dist), and
# prints the tarball's path. Needs the npm dev dependencies installed (bindings/node/ci.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
dist="$(bash scripts/dist-dir.sh)"
rm -f "$dist"/packhost-*.tgz

# npm prints the prepack build's output and then the tarball's name on stdout: the build's
# output goes on to stderr, the name alone to stdout.
output="$(npm pack --pack-destination "$dist")"
printf '%s\n' "$output" | sed '$d' >&2
echo "$dist/$(printf '%s\n' "$output" | tail -n 1)"
