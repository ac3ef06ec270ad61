#!/usr/bin/env bash
# Installs what building packhost needs and a fresh machine may lack; safe to run again.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
# Debian packages: redis-server for the Redis key-value backend's tests (which start it
# themselves on a free loopback port; only the binary is needed), and clang, lld, wasi-libc
# and clang's wasm32 runtime library for the pack written in C (plugins/c-plain).
missing=()
for package in redis-server clang lld wasi-libc libclang-rt-14-dev-wasm32; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update && apt-get install -y "${missing[@]}"
fi
