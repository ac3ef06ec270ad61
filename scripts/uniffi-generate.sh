#!/usr/bin/env bash
# Generates the Kotlin and Swift sources of bindings/uniffi from its built library (uniffi's
# library mode) into bindings/kotlin/generated and bindings/swift/generated. With --check,
# generates into a temporary folder and fails when the committed files differ (the drift
# check CI runs, like the Node and Python bindings' own). Needs `cargo build --release -p
# packhost-uniffi` and `cargo build --release -p packhost-uniffi-bindgen` first
# (bindings/kotlin/ci.sh does both).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
release="${CARGO_TARGET_DIR:-$root/target}/release"
bindgen() {
    # --no-format: the output must not depend on whether ktlint or swiftformat is installed.
    "$release/uniffi-bindgen" generate "$release/libpackhost_uniffi.so" --no-format \
        --metadata-no-deps "$@"
}
generate_into() {
    rm -rf "$1/kotlin" "$1/swift"
    bindgen --language kotlin --out-dir "$1/kotlin"
    bindgen --language swift --out-dir "$1/swift"
}
if [ "${1:-}" = "--check" ]; then
    fresh="$(mktemp -d)"
    trap 'rm -rf "$fresh"' EXIT
    generate_into "$fresh"
    if diff -ru "$fresh/kotlin" bindings/kotlin/generated && diff -ru "$fresh/swift" bindings/swift/generated; then
        echo "bindings/kotlin/generated and bindings/swift/generated match what uniffi generates"
    else
        echo "the generated bindings changed: run scripts/uniffi-generate.sh and commit them" >&2
        exit 1
    fi
else
    staging="$(mktemp -d)"
    trap 'rm -rf "$staging"' EXIT
    generate_into "$staging"
    rm -rf bindings/kotlin/generated bindings/swift/generated
    mkdir -p bindings/swift
    mv "$staging/kotlin" bindings/kotlin/generated
    mv "$staging/swift" bindings/swift/generated
    echo "wrote bindings/kotlin/generated and bindings/swift/generated"
fi
