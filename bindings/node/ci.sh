#!/usr/bin/env bash
# CI for the Node binding: installs the npm tooling into the repository's node_modules/,
# builds the addon with the release profile users get (shared target dir), checks the
# generated loader and types for drift, runs the Node test suite on that build, type-checks
# the declarations, then packs the package (bindings/node/package.sh), installs the tarball
# into an empty npm project outside the repository, checks that it reports an optimised
# build, and runs the example there. Safe to run again; run from anywhere.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt-get update && apt-get install -y nodejs npm
fi
echo "node $(node --version), npm $(npm --version 2>/dev/null), $(cargo --version)"

missing=()
for pack in api_errors hostile plain text_tools host_calls host_calls_pdk kv_probe webhook_guard; do
    [ -f "plugins/dist/$pack.wasm" ] || missing+=("plugins/dist/$pack.wasm")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing sample packs: ${missing[*]}" >&2
    echo "build them first with \`make packs\`" >&2
    exit 1
fi

step "npm dependencies"
# Installs the locked versions. Not `npm ci`: npm 11 leaves the other platforms' optional
# packages of @napi-rs/cli's dependencies out of the lock file and `npm ci` then refuses it.
# Skipped while node_modules/ is newer than the lock file.
if [ ! -x node_modules/.bin/napi ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm install --no-audit --no-fund
else
    echo "node_modules/ is up to date"
fi

step "build (release profile)"
generated=(bindings/node/index.js bindings/node/index.d.ts)
snapshot="$(mktemp -d)"
trap 'rm -rf "$snapshot"' EXIT
cp "${generated[@]}" "$snapshot/"
npm run --silent build

step "drift check of the generated loader and types"
drift=0
for file in "${generated[@]}"; do
    if ! diff -u "$snapshot/$(basename "$file")" "$file"; then
        echo "$file changed when regenerated: commit the regenerated file" >&2
        drift=1
    fi
done
[ "$drift" -eq 0 ] && echo "index.js and index.d.ts match what napi generates"

step "tests"
PACKHOST_EXPECT_RELEASE=1 node --test bindings/node/test/*.test.js bindings/node/test/*.test.mjs

step "benchmark smoke run (tiny counts; make bench runs it for real)"
node bindings/node/bench/bench.js plugins/dist/bench.wasm --smoke

step "type check of the published declarations"
npx --no-install tsc -p bindings/node/test/types && echo "packhost.d.ts type-checks against test/types/usage.mts"

step "the npm pack tarball, installed into an empty project outside the repository"
tarball="$(bash bindings/node/package.sh)"
echo "$tarball"
app="$snapshot/app"
mkdir -p "$app"
cp examples/node/api_errors.mjs examples/node/webhook_guard.mjs plugins/dist/api_errors.wasm plugins/dist/webhook_guard.wasm "$app/"
(
    cd "$app"
    echo '{"name": "packhost-example", "private": true, "type": "module"}' >package.json
    npm install --no-audit --no-fund --prefer-offline "$tarball" >/dev/null
    node --input-type=module -e '
        import { buildInfo } from "packhost"
        const info = buildInfo()
        console.log("installed packhost:", JSON.stringify(info))
        if (info.profile !== "release" || info.opt_level !== "3" || info.debug_assertions !== false) {
            console.error("the installed addon is not the optimised release build")
            process.exit(1)
        }'
    node api_errors.mjs ./api_errors.wasm >/dev/null
    node webhook_guard.mjs . >/dev/null
    echo "the installed tarball is optimised and ran the example"
)

exit "$drift"
