#!/usr/bin/env bash
# A real OCI registry for the host bindings' tests: Debian's docker-registry (the
# distribution project's registry) on a free loopback port, its storage in a folder the
# caller gives and removes.
#
#   bash scripts/test-registry.sh start FOLDER   prints 127.0.0.1:PORT once it answers
#   bash scripts/test-registry.sh stop FOLDER    stops it
#
# The Rust tests start theirs through packhost_oci::testing::LocalRegistry, the same way.
set -euo pipefail
command="${1:?start or stop}"
folder="${2:?a folder for the registry}"
case "$command" in
start)
  mkdir -p "$folder/data"
  port="$(python3 "$(dirname "$0")/free_port.py")"
  cat >"$folder/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $folder/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$folder/config.yml" >/dev/null 2>&1 &
  echo $! >"$folder/pid"
  for _ in $(seq 1 500); do
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v2/', timeout=1)" 2>/dev/null; then
      echo "127.0.0.1:$port"
      exit 0
    fi
    sleep 0.02
  done
  echo "docker-registry did not answer on 127.0.0.1:$port within 10 s" >&2
  kill "$(cat "$folder/pid")" 2>/dev/null || true
  exit 1
  ;;
stop)
  if [ -f "$folder/pid" ]; then
    kill "$(cat "$folder/pid")" 2>/dev/null || true
    rm -f "$folder/pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop FOLDER" >&2
  exit 2
  ;;
esac
