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
# The Redis key-value backend's tests talk to a real server, which they start themselves on a
# free loopback port; only the binary is needed.
if ! command -v redis-server >/dev/null 2>&1; then
  if ! dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "ok installed"; then
    apt-get update && apt-get install -y redis-server
  fi
fi
