#!/bin/bash
# What the security features cost on the hit path, in instructions (callgrind
# counts them repeatably even on a busy machine; docs/SECURITY.md has results).
#
# For each configuration: one node (one event loop) under callgrind with
# instrumentation off; a 1 KiB object is stored and read 50 times to warm up;
# then instrumentation goes on for BENCH_GETS keep-alive GETs of it and off
# again. Printed: instructions per GET, counted over every thread of the node.
# Differences under ~300 per GET are noise (timers and background threads).
#
# Usage: bench/security_overhead.sh   (OBJSTORE_BIN, BENCH_GETS=2000)
set -euo pipefail
bin=$(realpath "${OBJSTORE_BIN:-build/objstore}")
gets=${BENCH_GETS:-2000}
work=$(mktemp -d /tmp/objstore-secbench-XXXXXX)
trap 'rm -rf "$work"' EXIT
token=bench-token-0123456789abcdef
echo "$token" > "$work/tokens"

run() {
  local name=$1; shift
  local dir="$work/$name" port=$((20000 + RANDOM % 20000))
  mkdir -p "$dir"
  (cd "$dir" && exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cg.out \
      "$bin" --public-addr 127.0.0.1:$port --private-addr 127.0.0.1:$((port + 1)) --threads 1 \
      "$@" > log 2>&1) &
  local pid=$!
  for _ in $(seq 1 240); do curl -s -o /dev/null 127.0.0.1:$port/api/v1/ping && break; sleep 0.5; done
  # valgrind runs the node as its own process: find it for callgrind_control
  local node_pid
  node_pid=$(pgrep -n -f "callgrind.*127.0.0.1:$port" || echo "$pid")
  python3 - "$port" "$token" "$gets" "$dir" "$node_pid" <<'PY'
import http.client, subprocess, sys
port, token, gets, d, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
h = {"Authorization": "Bearer " + token}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
def req(method, path, body=None, extra=None):
    c.request(method, path, body=body, headers=dict(h, **(extra or {})))
    r = c.getresponse(); data = r.read()
    assert r.status == 200, (r.status, data[:200])
    return data
oid = req("GET", "/api/v1/id").decode()
req("POST", "/api/v1/put", b"x" * 1024, {"X-Meta-ID": oid})
for _ in range(50):
    req("GET", "/api/v1/get/" + oid)
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
for _ in range(gets):
    req("GET", "/api/v1/get/" + oid)
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
PY
  kill "$pid"; wait "$pid" || true
  local ir
  ir=$(grep -h '^totals' "$dir"/cg.out* | head -1 | awk '{print $2}')
  printf '%-40s %8d instructions per GET\n' "$name" $((ir / gets))
}

run "all limits off (--max-connections 0)" --max-connections 0
run "defaults (--max-connections 10000)"
run "per-client cap + rate limit" --max-connections-per-client 1000 --rate-limit 1000000
run "bearer tokens" --auth-tokens-file "$work/tokens"
