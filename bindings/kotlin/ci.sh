#!/usr/bin/env bash
# CI for the JVM host: builds the uniffi library and its generator with the release profile,
# checks the committed Kotlin and Swift bindings for drift, builds the JAR
# (bindings/kotlin/package.sh), runs the Kotlin tests (the shared conformance cases and the
# layer's own) on it, runs the Java and Kotlin examples against it, and a benchmark smoke run.
# Everything comes from Debian and npm packages (`make setup`); no Gradle, no Maven.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
source bindings/kotlin/toolchain.sh

step() { printf '\n== %s\n' "$*"; }

missing=()
for pack in api_errors hostile text_tools text_tools_next host_calls bench; do
    [ -f "plugins/dist/$pack.wasm" ] || missing+=("plugins/dist/$pack.wasm")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing sample packs: ${missing[*]}; build them first with \`make packs\`" >&2
    exit 1
fi

step "build (release profile): the library and uniffi-bindgen"
# Two selections: the generator's own dependencies enable features (serde_json's
# unbounded_depth) that would make cargo build the core a second time if resolved together.
cargo build --release -p packhost-uniffi
cargo build --release -p packhost-uniffi-bindgen

step "drift check of the generated Kotlin and Swift bindings"
bash scripts/uniffi-generate.sh --check

step "the JAR"
jar_path="$(bash bindings/kotlin/package.sh)"
echo "$jar_path"
classpath="$jar_path:$JVM_DEPENDENCIES:$KOTLIN_STDLIB:$KOTLIN_COROUTINES"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "tests: the conformance cases and the Kotlin layer's own"
"$KOTLINC" -Werror -jvm-target 17 -cp "$classpath" -d "$work/tests.jar" bindings/kotlin/test
PACKHOST_EXPECT_RELEASE=1 java -cp "$work/tests.jar:$classpath" dev.packhost.test.HarnessKt "$root"

step "examples: Java and Kotlin mains on the JAR"
javac -Werror -cp "$classpath" -d "$work/java" examples/jvm/PackhostExample.java
java -cp "$work/java:$classpath" PackhostExample plugins/dist
"$KOTLINC" -Werror -jvm-target 17 -cp "$classpath" -d "$work/quickstart.jar" examples/jvm/Quickstart.kt
java -cp "$work/quickstart.jar:$classpath" QuickstartKt plugins/dist

step "benchmark smoke run (tiny counts; make bench runs it for real)"
"$KOTLINC" -Werror -jvm-target 17 -cp "$classpath" -d "$work/bench.jar" bindings/kotlin/bench/Bench.kt
java -cp "$work/bench.jar:$classpath" BenchKt plugins/dist/bench.wasm --smoke
