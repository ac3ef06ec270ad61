#!/usr/bin/env bash
# The runner section of `make bench`: throughput and latency of `packhost serve`'s
# `POST /v1/execute` on bench.wasm's `echo` with a 1 KiB input, at 1, 16 and 64 concurrent
# connections, next to a bare endpoint of the same HTTP stack (runner/examples/bare_echo.rs,
# axum on tokio) that echoes the same 1 KiB, measured the same way in the same run with
# Debian's wrk. Appends `runner server=… connections=… rps=… p50_us=… p99_us=…` lines to
# the file given (bench_report.py renders them).
#
# Usage: bash scripts/bench_runner.sh RESULTS_FILE [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
results="$1"
seconds="${2:-10}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
cargo build --release -q -p packhost-cli -p packhost-runner --example bare_echo

scratch="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() {
  python3 "$root/scripts/free_port.py"
}
# Waits (at most a minute) until a POST of the request file answers 200.
wait_ready() {
  for _ in $(seq 600); do
    if curl -sf -o /dev/null -X POST --data-binary "@$2" "$1"; then return; fi
    sleep 0.1
  done
  echo "$1 never answered" >&2
  exit 1
}

input="$(python3 -c 'print("x" * 1024, end="")')"
printf '%s' "$input" >"$scratch/bare.body"
printf '{"pack": "bench", "action": "echo", "input": "%s"}' "$input" >"$scratch/runner.body"
# wrk sends each request file's bytes as the POST body.
for kind in bare runner; do
  python3 - "$scratch/$kind.body" >"$scratch/$kind.lua" <<'PY'
import json, sys
body = open(sys.argv[1]).read()
print('wrk.method = "POST"')
print('wrk.headers["Content-Type"] = "application/json"')
print("wrk.body = " + json.dumps(body))
PY
done

# Two runners: the defaults users get (the runner's isolation "context": a tenant's calls
# reuse warm instances) and isolation "call" (a fresh instance per call), logs off in both.
runner_port="$(free_port)"
"$target_dir/release/packhost" serve plugins/dist/bench.wasm --listen "127.0.0.1:$runner_port" \
  --options '{"log_level": "off"}' 2>"$scratch/runner.log" &
pids+=($!)
fresh_port="$(free_port)"
"$target_dir/release/packhost" serve plugins/dist/bench.wasm --listen "127.0.0.1:$fresh_port" \
  --options '{"log_level": "off", "isolation": "call"}' 2>"$scratch/fresh.log" &
pids+=($!)
bare_port="$(free_port)"
"$target_dir/release/examples/bare_echo" "127.0.0.1:$bare_port" 2>"$scratch/bare.log" &
pids+=($!)
wait_ready "http://127.0.0.1:$runner_port/v1/execute" "$scratch/runner.body"
wait_ready "http://127.0.0.1:$fresh_port/v1/execute" "$scratch/runner.body"
wait_ready "http://127.0.0.1:$bare_port/echo" "$scratch/bare.body"

# wrk's "Requests/sec" and its latency percentiles (--latency), as microseconds.
measure() {
  local kind="$1" url="$2" connections="$3"
  wrk -t "$(( connections < 2 ? 1 : 2 ))" -c "$connections" -d "${seconds}s" --latency \
    -s "$scratch/${kind%_fresh}.lua" "$url" >"$scratch/wrk.out"
  python3 - "$kind" "$connections" "$scratch/wrk.out" <<'PY'
import re, sys
kind, connections, path = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
units = {"us": 1, "ms": 1000, "s": 1_000_000}
def micros(label):
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(match.group(1)) * units[match.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"{kind}: {errors.group(1)} failed responses")
print(f"runner server={kind} connections={connections} rps={rps:.0f} p50_us={micros(50):.0f} p99_us={micros(99):.0f}")
PY
}

for connections in 1 16 64; do
  # Bare and runner alternate, so drift on a shared machine touches both alike.
  measure bare "http://127.0.0.1:$bare_port/echo" "$connections" | tee -a "$results"
  measure runner "http://127.0.0.1:$runner_port/v1/execute" "$connections" | tee -a "$results"
  measure runner_fresh "http://127.0.0.1:$fresh_port/v1/execute" "$connections" | tee -a "$results"
done
