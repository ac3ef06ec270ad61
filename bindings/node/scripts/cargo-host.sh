#!/usr/bin/env bash
# Stands in for `cargo` under `napi build` (through the CLI's $CARGO override) so the addon
# shares the workspace's compiled dependencies.
#
# Why: `napi build` always passes `--target <host triple>`, and an explicit --target makes
# cargo build every dependency again under target/<triple>/ (wasmtime alone takes minutes on
# two cores) instead of reusing target/release/ that `make test` and the other bindings fill.
# For the host triple the output is the same library, so this drops the flag, builds, and
# copies the library to where the CLI looks for it.
set -euo pipefail

args=()
triple=""
profile_dir="debug"
while [ $# -gt 0 ]; do
    case "$1" in
        --target) triple="$2"; shift 2 ;;
        --target=*) triple="${1#--target=}"; shift ;;
        --release) profile_dir="release"; args+=("$1"); shift ;;
        --profile) profile_dir="$2"; [ "$2" = dev ] && profile_dir="debug"; args+=("$1" "$2"); shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

host="$(rustc -vV | sed -n 's/^host: //p')"
if [ -n "$triple" ] && [ "$triple" != "$host" ]; then
    # A real cross build: leave it to cargo as asked.
    exec cargo "${args[@]}" --target "$triple"
fi

cargo "${args[@]}"

if [ -n "$triple" ]; then
    target_dir="$(cargo metadata --format-version 1 --no-deps \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
    mkdir -p "$target_dir/$triple/$profile_dir"
    cp -f "$target_dir/$profile_dir/libpackhost_node.so" "$target_dir/$triple/$profile_dir/libpackhost_node.so"
fi
