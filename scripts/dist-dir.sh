#!/usr/bin/env bash
# Prints (and creates) the folder the packages users install are built into:
# $PACKHOST_DIST, else <cargo target dir>/dist. Shared by every package script.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${PACKHOST_DIST:-${CARGO_TARGET_DIR:-$root/target}/dist}"
mkdir -p "$dist"
cd "$dist" && pwd
