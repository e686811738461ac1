#!/usr/bin/env bash
# GET hit throughput with eviction bookkeeping on (--eviction s3fifo or another
# policy) versus off (--eviction none: no pin, no policy access, no lock on a hit).
#
# One run: for each round, start objstore with the policy, PUT N level-1 objects
# (evictable: every hit pays the policy's bookkeeping), GET them all with wrk
# over keep-alive connections, stop it; then the same with --eviction none.
# Rounds alternate on/off/on/off...; medians are reported. The budget is large
# enough that nothing is evicted: this measures the hit path only.
#
# Needs: build/objstore, wrk, python3. Run `bench/eviction_on_off.sh --help`.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/eviction_on_off.sh [options]

  --policy NAME          the "on" policy: s3fifo, lru, sieve, fifo (default s3fifo)
  --size BYTES           object size (default 4096)
  --objects N            objects (default 1000)
  --duration S           seconds per timed wrk run (default 8)
  --rounds R             timed runs per mode, alternating (default 2)
  --connections C        wrk connections (default 64)
  --threads T            wrk threads (default 2)
  --server-threads N     objstore --threads (default 2)
  --objstore PATH        objstore binary (default: <repo>/build/objstore)
  -h, --help             this help

Output: one line per run and
  RESULT policy=.. size=.. on_rps=.. off_rps=.. ratio_rps=.. on_p99_ms=.. off_p99_ms=..
ratio_rps < 1: the bookkeeping costs throughput. wrk and objstore share the cores.
EOF
}

die() { echo "eviction_on_off: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POLICY=s3fifo SIZE=4096 OBJECTS=1000 DURATION=8 ROUNDS=2 CONNECTIONS=64 WRK_THREADS=2
SERVER_THREADS=2 OBJSTORE_BIN="$REPO/build/objstore"
while [[ $# -gt 0 ]]; do
    [[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
    [[ $# -ge 2 ]] || die "option $1 needs a value"
    case $1 in
        --policy) POLICY=$2 ;;
        --size) SIZE=$2 ;;
        --objects) OBJECTS=$2 ;;
        --duration) DURATION=$2 ;;
        --rounds) ROUNDS=$2 ;;
        --connections) CONNECTIONS=$2 ;;
        --threads) WRK_THREADS=$2 ;;
        --server-threads) SERVER_THREADS=$2 ;;
        --objstore) OBJSTORE_BIN=$2 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift 2
done
for tool in wrk python3; do command -v $tool >/dev/null || die "$tool is not installed"; done
[[ -x $OBJSTORE_BIN ]] || die "no objstore binary at $OBJSTORE_BIN (build it first)"

WORK=$(mktemp -d /tmp/objstore-evict-bench.XXXXXX)
PID=""
cleanup() {
    local rc=$?
    if [[ -n $PID ]]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [[ $rc -eq 0 ]]; then rm -rf "$WORK"; else echo "eviction_on_off: logs in $WORK" >&2; fi
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PRIV=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

# run_mode POLICY ROUND: start a fresh node, load it, run wrk, print "rps p99_ms".
run_mode() {
    local mode=$1 round=$2 dir="$WORK/$1-$2"
    mkdir -p "$dir"
    "$OBJSTORE_BIN" --public-addr "127.0.0.1:$PORT" --private-addr "127.0.0.1:$PRIV" \
        --state-dir "$dir/state" --files-dir "$dir/files" --cold-dir "$dir/cold" \
        --threads "$SERVER_THREADS" --eviction "$mode" --max-size 4G >"$dir/log" 2>&1 &
    PID=$!
    python3 - "$URL" "$OBJECTS" "$SIZE" "$dir/paths.txt" <<'PY'
import http.client, os, sys, time, urllib.parse
url, n, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host = urllib.parse.urlparse(url)
for _ in range(200):
    try:
        c = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        c.request("GET", "/api/v1/ping"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.05)
paths = []
for _ in range(n):
    c.request("GET", "/api/v1/id"); oid = c.getresponse().read().decode()
    c.request("POST", "/api/v1/put", body=os.urandom(size),
              headers={"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": "1"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    paths.append("/api/v1/get/" + oid)
open(out, "w").write("\n".join(paths) + "\n")
PY
    BENCH_PATHS_FILE="$dir/paths.txt" BENCH_WRK_THREADS=$WRK_THREADS \
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d 1s -s "$REPO/bench/wrk_roundrobin.lua" "$URL/" >/dev/null
    BENCH_PATHS_FILE="$dir/paths.txt" BENCH_WRK_THREADS=$WRK_THREADS \
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency \
            -s "$REPO/bench/wrk_roundrobin.lua" "$URL/" >"$dir/wrk.txt"
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    python3 - "$dir/wrk.txt" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]) if l.startswith("WRKSTATS ")][0]
kv = dict(re.findall(r"(\w+)=([\d.]+)", line))
errors = sum(int(kv[k]) for k in kv if k.startswith("err_"))
assert errors == 0, "wrk errors: " + line
print("%.0f %.2f" % (int(kv["requests"]) / (int(kv["duration_us"]) / 1e6), int(kv["p99_us"]) / 1000))
PY
}

declare -a ON_RPS OFF_RPS ON_P99 OFF_P99
for ((r = 1; r <= ROUNDS; r++)); do
    read -r rps p99 < <(run_mode "$POLICY" "$r")
    log "round $r $POLICY: $rps req/s, p99 $p99 ms"; ON_RPS+=("$rps"); ON_P99+=("$p99")
    read -r rps p99 < <(run_mode none "$r")
    log "round $r none: $rps req/s, p99 $p99 ms"; OFF_RPS+=("$rps"); OFF_P99+=("$p99")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
on=$(median "${ON_RPS[@]}"); off=$(median "${OFF_RPS[@]}")
echo "RESULT policy=$POLICY size=$SIZE on_rps=$on off_rps=$off" \
     "ratio_rps=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')" \
     "on_p99_ms=$(median "${ON_P99[@]}") off_p99_ms=$(median "${OFF_P99[@]}")"
