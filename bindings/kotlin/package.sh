#!/usr/bin/env bash
# Builds the JAR a Kotlin or Java application puts on its classpath (next to JNA, Gson and
# the Kotlin standard library): the Kotlin layer and the uniffi-generated bindings, compiled,
# with the release build of the native library inside at linux-x86-64/ (where JNA looks for
# it on the classpath). Prints the JAR's path (in scripts/dist-dir.sh's folder).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
source bindings/kotlin/toolchain.sh
cargo build --release -p packhost-uniffi >&2
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
jar_path="$(bash scripts/dist-dir.sh)/packhost-kotlin-$version.jar"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$KOTLINC" -Werror -jvm-target 17 -cp "$JVM_DEPENDENCIES:$KOTLIN_COROUTINES" -d "$work/classes" \
    bindings/kotlin/src bindings/kotlin/generated >&2
mkdir -p "$work/classes/linux-x86-64"
cp "${CARGO_TARGET_DIR:-$root/target}/release/libpackhost_uniffi.so" "$work/classes/linux-x86-64/"
rm -f "$jar_path"
jar --create --file "$jar_path" -C "$work/classes" .
echo "$jar_path"
