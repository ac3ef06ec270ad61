#!/usr/bin/env bash
# Installs what building packhost needs and a fresh machine may lack; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
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
# and clang's wasm32 runtime library for the packs written in C (plugins/c-*), binaryen,
# whose wasm-opt makes `packhost build --release` packs smaller, and docker-registry (the
# distribution project's OCI registry) with apache2-utils' htpasswd and openssl (the test
# token server's key) for the push, pull and oci:// tests, which start the registry
# themselves on a free loopback port, and haproxy, the balancer of the runner's scale-out
# test (started by the test on loopback too), and for the JVM host (bindings/kotlin) the JDK
# with JNA, which the uniffi-generated Kotlin calls the native library through, and Gson,
# which reads and writes the JSON the Kotlin layer passes, and python3-venv, in which
# `packhost build` installs componentize-py for the Python packs (plugins/py-text-tools and
# `packhost new --lang python` projects).
missing=()
for package in redis-server clang lld wasi-libc libclang-rt-14-dev-wasm32 binaryen docker-registry apache2-utils openssl haproxy openjdk-17-jdk-headless libjna-java libgoogle-gson-java python3-venv; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update && apt-get install -y "${missing[@]}"
fi
# The Zig compiler for plugins/zig-plain, from PyPI, into a folder of the project.
ZIG_VERSION=0.14.1
if ! PYTHONPATH=.tools/ziglang python3 -m ziglang version 2>/dev/null | grep -qx "$ZIG_VERSION"; then
  python3 -m pip install --quiet --upgrade --target .tools/ziglang "ziglang==$ZIG_VERSION"
fi
# AssemblyScript's compiler for plugins/as-plain, from npm, into that folder's node_modules.
if [ ! -x plugins/as-plain/node_modules/.bin/asc ] ||
  [ plugins/as-plain/package-lock.json -nt plugins/as-plain/node_modules/.package-lock.json ]; then
  npm ci --prefix plugins/as-plain --no-audit --no-fund
fi
# componentize-js for plugins/js-text-tools, from npm, into that folder's node_modules.
if [ ! -x plugins/js-text-tools/node_modules/.bin/componentize-js ] ||
  [ plugins/js-text-tools/package-lock.json -nt plugins/js-text-tools/node_modules/.package-lock.json ]; then
  npm ci --prefix plugins/js-text-tools --no-audit --no-fund
fi
# The Kotlin compiler for bindings/kotlin, from npm (the full kotlinc distribution; Maven
# Central is not reachable and Debian's kotlin is too old), into that folder's node_modules.
if [ ! -x bindings/kotlin/node_modules/kotlin-compiler/bin/kotlinc ] ||
  [ bindings/kotlin/package-lock.json -nt bindings/kotlin/node_modules/.package-lock.json ]; then
  npm ci --prefix bindings/kotlin --no-audit --no-fund
fi
