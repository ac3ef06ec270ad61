#!/usr/bin/env bash
# Runs the README's runner example ("Runner service") as written, on a free port instead of
# 8080, and checks the answer: what `make demo` shows and CI proves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$target_dir/release:$PATH"
port="$(python3 "$root/scripts/free_port.py")"
example="$(python3 scripts/readme_snippet.py "Runner service" sh | sed "s/8080/$port/g")"
answer="$(bash -c "set -m; $example")"
echo "$answer"
case "$answer" in
    *'"output":{"count":3,"vowels":"eoo"}'*'"output":{"count":3,"vowels":"EOO"}'*)
        echo "runner example: ok (a call and a flow)" ;;
    *) echo "runner example: unexpected answers" >&2; exit 1 ;;
esac
