#!/usr/bin/env bash
# Instructions per cache hit, counted by valgrind's callgrind: repeatable on a
# loaded machine where wrk figures are not (issue 6's profile).
#
# Starts the node under callgrind with instrumentation off, PUTs 50 objects of
# --size bytes, warms up with wrk, then counts instructions (every thread, user
# space) over --duration seconds of wrk GET hits (1 thread, 4 connections) and
# prints Ir per request and the profile file for callgrind_annotate.
#
# Usage: bench/callgrind_hit.sh [--objstore PATH] [--size BYTES] [--duration S] [--keep]
# Needs: valgrind, wrk, curl, python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$REPO/build/objstore"
SIZE=4096
DURATION=8
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --objstore) BIN=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "callgrind_hit: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in valgrind callgrind_control callgrind_annotate wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "callgrind_hit: $tool not found" >&2; exit 1; }
done
[[ -x $BIN ]] || { echo "callgrind_hit: no binary at $BIN" >&2; exit 1; }

if [[ -d /work ]]; then mkdir -p /work/tmp-bench; PARENT=/work/tmp-bench; else PARENT=/tmp; fi
D=$(mktemp -d "$PARENT/callgrind-hit.XXXXXX")
VG_PID=""
cleanup() {
    if [[ -n $VG_PID ]] && kill -0 "$VG_PID" 2>/dev/null; then
        kill "$VG_PID" 2>/dev/null || true
        wait "$VG_PID" 2>/dev/null || true
    fi
    [[ $KEEP == 1 ]] || rm -rf "$D/state" "$D/files" "$D/cold"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PRIV=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$D/callgrind.out" \
    "$BIN" --public-addr "127.0.0.1:$PORT" --private-addr "127.0.0.1:$PRIV" --state-dir "$D/state" \
    --files-dir "$D/files" --cold-dir "$D/cold" --threads 2 >"$D/node.log" 2>&1 &
VG_PID=$!
for ((i = 0; i < 120; i++)); do
    curl -s -o /dev/null "127.0.0.1:$PORT/api/v1/ping" && break
    sleep 0.5
done
python3 - "$PORT" "$D" "$SIZE" <<'PY'
import http.client, os, sys
port, d, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
paths = []
for i in range(50):
    c.request("GET", "/api/v1/id")
    oid = c.getresponse().read().decode().strip()
    c.request("POST", "/api/v1/put", body=os.urandom(size),
              headers={"X-Meta-ID": oid, "X-Meta-Name": "b%d.bin" % i})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    paths.append("/api/v1/get/" + oid)
open(os.path.join(d, "paths.txt"), "w").write("\n".join(paths) + "\n")
PY
export BENCH_PATHS_FILE="$D/paths.txt" BENCH_WRK_THREADS=1
wrk -t1 -c4 -d2s -s "$REPO/bench/wrk_roundrobin.lua" "http://127.0.0.1:$PORT/" >/dev/null
callgrind_control -i on "$VG_PID" >/dev/null 2>&1
wrk -t1 -c4 -d"${DURATION}s" -s "$REPO/bench/wrk_roundrobin.lua" "http://127.0.0.1:$PORT/" >"$D/wrk.txt"
callgrind_control -i off "$VG_PID" >/dev/null 2>&1
callgrind_control -d "$VG_PID" >/dev/null 2>&1
kill "$VG_PID"
wait "$VG_PID" 2>/dev/null || true
VG_PID=""
REQ=$(sed -n 's/.*WRKSTATS requests=\([0-9]*\).*/\1/p' "$D/wrk.txt")
PROFILE="$D/callgrind.out.1"   # the dump taken right after the timed run
IR=$(callgrind_annotate "$PROFILE" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
[[ -n $REQ && $REQ -gt 0 && -n $IR ]] || { echo "callgrind_hit: no requests or no profile (see $D)" >&2; exit 1; }
echo "RESULT callgrind size=$SIZE requests=$REQ ir=$IR ir_per_request=$(( IR / REQ )) profile=$PROFILE"
