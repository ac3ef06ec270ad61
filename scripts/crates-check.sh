#!/usr/bin/env bash
# The Rust packages as users get them (`make test-crates`, part of `make test`):
#
# 1. `cargo package` of the seven published crates (packhost, packhost-pdk,
#    packhost-pdk-macros, packhost-oci, packhost-redis, packhost-runner, packhost-cli): each
#    archive holds what crates.io would get.
# 2. `cargo install --locked --path cli` into an empty root: the installed `packhost` must
#    report an optimised build (`--version --verbose`) and run a pack.
# 3. A user's crate: a fresh cargo project that depends on packhost as unpacked from its
#    archive (what `cargo add packhost` fetches), with the README's quickstart as its main,
#    built with `--release` and run; it must report an optimised build.
#
# Every build shares the workspace's target dir, so the release build of wasmtime that the
# bindings' packages made is reused. Run from anywhere after `make packs`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
step() { printf '\n== %s\n' "$*"; }

[ -f plugins/dist/api_errors.wasm ] || { echo "build the sample packs first (make packs)" >&2; exit 1; }

# Requires the optimised build: `release` profile, opt-level 3, no debug assertions.
expect_release() {
    local what="$1" text="$2"
    echo "$text"
    if ! grep -q 'release' <<<"$text" || ! grep -q 'opt-level:\{0,1\} 3' <<<"$text" \
        || grep -qi 'debug.assertions:\{0,1\} true' <<<"$text"; then
        echo "$what is not the optimised release build" >&2
        exit 1
    fi
}

step "cargo package: the seven crates as crates.io would receive them"
# --no-verify: verifying would compile each crate a second time, with the default dev
# profile (wasmtime unoptimised); steps 2 and 3 build them the way users do instead.
cargo package --locked --no-verify --allow-dirty \
    -p packhost -p packhost-pdk -p packhost-pdk-macros -p packhost-oci -p packhost-redis -p packhost-runner -p packhost-cli
version="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "packhost"))')"
for crate in packhost packhost-pdk packhost-pdk-macros packhost-oci packhost-redis packhost-runner packhost-cli; do
    archive="$CARGO_TARGET_DIR/package/$crate-$version.crate"
    [ -s "$archive" ] || { echo "missing $archive" >&2; exit 1; }
    echo "$crate-$version.crate: $(tar tzf "$archive" | wc -l) files, $(du -k "$archive" | cut -f1) KiB"
done
# The core's archive must build on its own: nothing it needs may live outside it.
listing="$(tar tzf "$CARGO_TARGET_DIR/package/packhost-$version.crate")"
grep -qx "packhost-$version/build.rs" <<<"$listing"
# The CLI's archive carries every template `packhost new` compiles in: the C header as a file
# (a symlink to pdk/c in the repository) and the Rust one, whose Cargo.toml is spelled
# Cargo.toml.tmpl because cargo leaves folders with a Cargo.toml out of a package.
cli_listing="$(tar tvzf "$CARGO_TARGET_DIR/package/packhost-cli-$version.crate")"
for template in $(grep -o 'templates/[^"]*' cli/src/scaffold.rs); do
    grep -q "^-.* packhost-cli-$version/$template\$" <<<"$cli_listing" \
        || { echo "the packhost-cli archive lacks $template (as a file)" >&2; exit 1; }
done

step "cargo install --locked --path cli, into an empty root"
cargo install --quiet --locked --path cli --root "$scratch/cli"
expect_release "the installed CLI" "$("$scratch/cli/bin/packhost" --version --verbose)"
"$scratch/cli/bin/packhost" call plugins/dist/api_errors.wasm post \
    --input-file examples/data/stripe_card_declined.json >/dev/null
echo "the installed packhost ran a pack"

step "a user's crate depending on packhost as published, built with --release"
tar xzf "$CARGO_TARGET_DIR/package/packhost-$version.crate" -C "$scratch"
app="$scratch/app"
mkdir -p "$app/src"
cat >"$app/Cargo.toml" <<TOML
[package]
name = "packhost-user"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
packhost = { path = "$scratch/packhost-$version" }

[workspace]
TOML
cp runtime/examples/quickstart.rs "$app/src/main.rs"
# The repository's lock file, so the user's crate resolves the versions CI tested (and the
# compiled dependencies are reused); cargo drops the entries it does not need.
cp Cargo.lock "$app/Cargo.lock"
(cd "$app" && cargo build --quiet --release)
output="$("$CARGO_TARGET_DIR/release/packhost-user" "$root" 2>&1)"
expect_release "packhost in a user's crate" "$(grep '^packhost ' <<<"$output")"
grep -q '"code":"card_declined"' <<<"$output" || { echo "$output" >&2; exit 1; }
echo "a user's crate built packhost as published and ran the quickstart"
