#!/usr/bin/env bash
# GET throughput/latency of objstore versus nginx serving the same bytes as
# static files, driven by wrk over keep-alive connections on 127.0.0.1.
#
# One run: start objstore and nginx on free loopback ports, PUT N random objects
# per size into objstore and write the same bytes as files that nginx serves at
# the same URL path (/api/v1/get/<ID>), check that both return identical bytes,
# then run wrk against objstore and nginx alternately (never concurrently) and
# print a table plus one machine-readable RESULT line per size.
#
# Needs: build/objstore (already built), nginx, wrk, curl, python3, sha256sum.
# nginx and wrk come from Debian (scripts/setup installs them).
# Run `bench/get_vs_nginx.sh --help` for options.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/get_vs_nginx.sh [options]

  --size LIST            object sizes, repeatable or comma list: 4K, 64K, 1M, 512,
                         2M ... (K/M = 1024/1048576 bytes). Default: 4K,1M
  --objects N            objects per size (default by size: <=4K 1000, <=64K 500,
                         <=1M 100, larger 20)
  --duration S           seconds per timed wrk run (default 10)
  --warmup S             seconds of untimed wrk warm-up per server and size, 0 = none
                         (default 1)
  --rounds R             timed runs per server and size, alternating
                         objstore/nginx/objstore/...; medians are reported (default 1)
  --connections C        wrk connections (default 64)
  --threads T            wrk threads (default 2)
  --server-threads N     objstore --threads and nginx worker_processes (default 2)
  --objstore PATH        objstore binary (default: <repo>/build/objstore)
  --tmp-parent DIR       where the temp dir goes (default /tmp)
  --keep                 keep the temp dir (logs, configs, wrk output) at the end
  -h, --help             this help

Output: a table (size, server, req/s, MB/s, p50, p99, ratios objstore/nginx) and
per size a line
  RESULT size=4K objects=.. objstore_rps=.. nginx_rps=.. ratio_rps=.. \
         objstore_mbps=.. nginx_mbps=.. objstore_p50_ms=.. nginx_p50_ms=.. \
         objstore_p99_ms=.. nginx_p99_ms=.. ratio_p99=.. objstore_errors=.. nginx_errors=..
ratio_rps > 1: objstore serves more requests/s; ratio_p99 > 1: objstore's p99 is
higher (worse). MB/s counts every byte wrk read (headers included), 10^6 bytes.
wrk, objstore and nginx share the machine's cores: numbers are relative.
EOF
}

die() { echo "get_vs_nginx: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=()
OBJECTS=""
DURATION=10
WARMUP=1
ROUNDS=1
CONNECTIONS=64
WRK_THREADS=2
SERVER_THREADS=2
OBJSTORE_BIN="$REPO/build/objstore"
TMP_PARENT=/tmp
KEEP=0

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size|--sizes) need_arg "$@"; IFS=',' read -r -a _s <<<"$2"; SIZES+=("${_s[@]}"); shift 2 ;;
        --size=*|--sizes=*) IFS=',' read -r -a _s <<<"${1#*=}"; SIZES+=("${_s[@]}"); shift ;;
        --objects) need_arg "$@"; OBJECTS=$2; shift 2 ;;
        --objects=*) OBJECTS=${1#*=}; shift ;;
        --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
        --warmup=*) WARMUP=${1#*=}; shift ;;
        --rounds) need_arg "$@"; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --connections) need_arg "$@"; CONNECTIONS=$2; shift 2 ;;
        --connections=*) CONNECTIONS=${1#*=}; shift ;;
        --threads) need_arg "$@"; WRK_THREADS=$2; shift 2 ;;
        --threads=*) WRK_THREADS=${1#*=}; shift ;;
        --server-threads) need_arg "$@"; SERVER_THREADS=$2; shift 2 ;;
        --server-threads=*) SERVER_THREADS=${1#*=}; shift ;;
        --objstore) need_arg "$@"; OBJSTORE_BIN=$2; shift 2 ;;
        --objstore=*) OBJSTORE_BIN=${1#*=}; shift ;;
        --tmp-parent) need_arg "$@"; TMP_PARENT=$2; shift 2 ;;
        --tmp-parent=*) TMP_PARENT=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(4K 1M)

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP ROUNDS CONNECTIONS WRK_THREADS SERVER_THREADS; do
    is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
[[ -z $OBJECTS ]] || { is_uint "$OBJECTS" && [[ $OBJECTS -ge 1 ]]; } || die "--objects must be >= 1"
[[ $DURATION -ge 1 && $ROUNDS -ge 1 && $CONNECTIONS -ge 1 && $WRK_THREADS -ge 1 && $SERVER_THREADS -ge 1 ]] \
    || die "--duration, --rounds, --connections, --threads, --server-threads must be >= 1"
[[ $CONNECTIONS -ge $WRK_THREADS ]] || die "--connections must be >= --threads (wrk requirement)"

# size label -> bytes
size_bytes() {
    local s=${1^^}
    s=${s%B}; s=${s%I}   # accept 4KB, 4KiB
    if [[ $s =~ ^([0-9]+)K$ ]]; then echo $(( BASH_REMATCH[1] * 1024 ))
    elif [[ $s =~ ^([0-9]+)M$ ]]; then echo $(( BASH_REMATCH[1] * 1048576 ))
    elif [[ $s =~ ^([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"
    else return 1; fi
}
default_objects() {
    local b=$1
    if   (( b <= 4096 ));    then echo 1000
    elif (( b <= 65536 ));   then echo 500
    elif (( b <= 1048576 )); then echo 100
    else echo 20; fi
}
declare -A BYTES NOBJ
LABELS=()
for s in "${SIZES[@]}"; do
    [[ -n $s ]] || continue
    b=$(size_bytes "$s") || die "bad --size '$s' (use e.g. 4K, 64K, 1M or a byte count)"
    [[ $b -ge 1 ]] || die "--size must be >= 1 byte"
    label=${s^^}
    [[ -z ${BYTES[$label]+x} ]] || continue
    BYTES[$label]=$b
    NOBJ[$label]=${OBJECTS:-$(default_objects "$b")}
    LABELS+=("$label")
done

for tool in nginx wrk curl python3 sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup installs nginx and wrk)"
done
NGINX=$(command -v nginx)
[[ -x $OBJSTORE_BIN ]] || die "objstore binary not found at $OBJSTORE_BIN (build it first)"

# ---------------------------------------------------------------- temp dir, cleanup
mkdir -p "$TMP_PARENT"
WORK=$(mktemp -d "$TMP_PARENT/objstore-bench.XXXXXX")
OBJSTORE_PID=""
NGINX_PID=""

stop_pid() {  # stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local pid=$1 name=$2 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "get_vs_nginx: $name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$OBJSTORE_PID" objstore
    stop_pid "$NGINX_PID" nginx
    if [[ $KEEP == 1 ]]; then
        echo "get_vs_nginx: kept $WORK" >&2
    elif [[ $rc -ne 0 ]]; then
        # keep the logs of a failed run, drop the bulky data
        rm -rf "$WORK/objstore/files" "$WORK/objstore/state" "$WORK/objstore/cold" "$WORK/www" 2>/dev/null || true
        echo "get_vs_nginx: failed; logs are in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- free ports
# Bind three sockets at once so the ports differ; the tiny race before the
# servers bind them is acceptable for a benchmark.
read -r OS_PORT OS_PRIV_PORT NGINX_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*[s.getsockname()[1] for s in socks])
PY
)
OS_URL="http://127.0.0.1:$OS_PORT"
NGINX_URL="http://127.0.0.1:$NGINX_PORT"

wait_ready() {  # wait_ready URL PID NAME LOG
    local url=$1 pid=$2 name=$3 logf=$4 i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $logf" >&2; tail -n 30 "$logf" >&2 || true
            die "$name exited during start-up"
        fi
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "--- $logf" >&2; tail -n 30 "$logf" >&2 || true
    die "$name not ready at $url after 20 s"
}

# ---------------------------------------------------------------- objstore
mkdir -p "$WORK/objstore"
log "temp dir $WORK"
log "starting objstore on 127.0.0.1:$OS_PORT (--threads $SERVER_THREADS)"
"$OBJSTORE_BIN" --public-addr "127.0.0.1:$OS_PORT" --private-addr "127.0.0.1:$OS_PRIV_PORT" \
    --state-dir "$WORK/objstore/state" --files-dir "$WORK/objstore/files" \
    --cold-dir "$WORK/objstore/cold" --threads "$SERVER_THREADS" --shutdown-grace 1 \
    >"$WORK/objstore.log" 2>&1 &
OBJSTORE_PID=$!
wait_ready "$OS_URL/api/v1/ping" "$OBJSTORE_PID" objstore "$WORK/objstore.log"

# ---------------------------------------------------------------- nginx
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp" "$WORK/www/api/v1/get"
echo ok >"$WORK/www/ping"
NGINX_USER=""
[[ $EUID -eq 0 ]] && NGINX_USER="user root;"   # workers must read the 0700 temp dir
WORKER_CONNECTIONS=$(( CONNECTIONS * 2 + 128 ))
(( WORKER_CONNECTIONS >= 1024 )) || WORKER_CONNECTIONS=1024
cat >"$WORK/nginx/nginx.conf" <<EOF
$NGINX_USER
worker_processes $SERVER_THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events {
    worker_connections $WORKER_CONNECTIONS;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    types { }
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        location / { }
    }
}
EOF
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$WORK/nginx/logs/configtest.log" 2>&1 \
    || { cat "$WORK/nginx/logs/configtest.log" >&2; die "nginx rejected its config"; }
log "starting nginx on 127.0.0.1:$NGINX_PORT (worker_processes $SERVER_THREADS)"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    -g 'daemon off;' >"$WORK/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_ready "$NGINX_URL/ping" "$NGINX_PID" nginx "$WORK/nginx/logs/error.log"

# ---------------------------------------------------------------- load objects
# For each size: N random bodies PUT to objstore (level 0) and written to
# www/api/v1/get/<ID>, so both servers answer the same path. paths-<size>.txt
# lists the paths for wrk.
load_objects() {  # load_objects LABEL BYTES N
    python3 - "$OS_PORT" "$WORK" "$1" "$2" "$3" <<'PY'
import http.client, os, sys
port, work, label, size, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
www = os.path.join(work, "www", "api", "v1", "get")
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

def call(method, path, body=None, headers={}):
    global conn
    for attempt in range(2):
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if attempt:
                raise

paths = []
for i in range(n):
    st, oid = call("GET", "/api/v1/id")
    oid = oid.decode().strip()
    if st != 200 or len(oid) != 26:
        sys.exit(f"GET /api/v1/id -> {st} {oid!r}")
    body = os.urandom(size)
    st, resp = call("POST", "/api/v1/put", body, {
        "X-Meta-ID": oid, "X-Meta-Name": f"bench-{label}-{i}",
        "X-Meta-ConsistencyLevel": "0", "Content-Length": str(size),
        "Content-Type": "application/octet-stream"})
    if st != 200:
        sys.exit(f"PUT {oid} -> {st} {resp[:300]!r}")
    with open(os.path.join(www, oid), "wb") as f:
        f.write(body)
    paths.append(f"/api/v1/get/{oid}")
with open(os.path.join(work, f"paths-{label}.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
PY
}
for label in "${LABELS[@]}"; do
    log "PUT ${NOBJ[$label]} objects of $label (${BYTES[$label]} bytes) to objstore, same bytes to nginx's root"
    load_objects "$label" "${BYTES[$label]}" "${NOBJ[$label]}" || die "loading $label objects failed"
done
sync

# ---------------------------------------------------------------- correctness
# First, middle and last object of each size: both servers must answer 200 with
# the bytes that were written (sha256 of both responses and of the file).
mkdir -p "$WORK/verify"
for label in "${LABELS[@]}"; do
    mapfile -t P <"$WORK/paths-$label.txt"
    n=${#P[@]}
    for idx in 0 $(( n / 2 )) $(( n - 1 )); do
        path=${P[$idx]}
        id=${path##*/}
        for srv in objstore nginx; do
            if [[ $srv == objstore ]]; then url="$OS_URL$path"; else url="$NGINX_URL$path"; fi
            code=$(curl -sS -o "$WORK/verify/$srv.body" -w '%{http_code}' "$url") \
                || die "verify: GET $url failed"
            [[ $code == 200 ]] || die "verify: GET $url answered $code"
        done
        h_os=$(sha256sum <"$WORK/verify/objstore.body" | cut -d' ' -f1)
        h_ng=$(sha256sum <"$WORK/verify/nginx.body" | cut -d' ' -f1)
        h_file=$(sha256sum <"$WORK/www/api/v1/get/$id" | cut -d' ' -f1)
        if ! [[ $h_os == "$h_ng" && $h_os == "$h_file" ]]; then
            die "verify: $label object $id differs: objstore sha256 $h_os, nginx $h_ng, written $h_file"
        fi
        sz=$(stat -c %s "$WORK/verify/objstore.body")
        [[ $sz == "${BYTES[$label]}" ]] || die "verify: $label object $id has $sz bytes, want ${BYTES[$label]}"
    done
    log "verified $label: objstore and nginx return identical bytes (sha256 ${h_os:0:16}..., 3 objects)"
done
rm -rf "$WORK/verify"

# ---------------------------------------------------------------- wrk script
# Each wrk thread round-robins over all paths, starting at its own offset.
# done() prints exact numbers (latencies in microseconds) for parsing.
cp "$REPO/bench/wrk_roundrobin.lua" "$WORK/roundrobin.lua"

run_wrk() {  # run_wrk SERVER LABEL SECONDS OUTFILE
    local srv=$1 label=$2 secs=$3 out=$4 base
    if [[ $srv == objstore ]]; then base=$OS_URL; else base=$NGINX_URL; fi
    BENCH_PATHS_FILE="$WORK/paths-$label.txt" BENCH_WRK_THREADS=$WRK_THREADS \
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${secs}s" --latency \
            -s "$WORK/roundrobin.lua" "$base/" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk against $srv failed"; }
    grep -q '^WRKSTATS ' "$out" || { cat "$out" >&2; die "no WRKSTATS line in wrk output"; }
    for p in "$OBJSTORE_PID" "$NGINX_PID"; do
        kill -0 "$p" 2>/dev/null || die "a server died during the run (see $WORK)"
    done
}

# ---------------------------------------------------------------- runs
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
mkdir -p "$WORK/wrk"
log "wrk: $WRK_THREADS threads, $CONNECTIONS connections, ${DURATION}s x $ROUNDS round(s) per server and size, warm-up ${WARMUP}s"
for label in "${LABELS[@]}"; do
    if [[ $WARMUP -gt 0 ]]; then
        for srv in objstore nginx; do
            run_wrk "$srv" "$label" "$WARMUP" "$WORK/wrk/warmup-$label-$srv.txt"
        done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        # alternate which server goes first from round to round
        if (( r % 2 == 1 )); then order="objstore nginx"; else order="nginx objstore"; fi
        for srv in $order; do
            out="$WORK/wrk/$label-$srv-$r.txt"
            run_wrk "$srv" "$label" "$DURATION" "$out"
            line=$(grep '^WRKSTATS ' "$out" | tail -n 1)
            printf '%s\t%s\t%s\t%s\t%s\n' "$label" "${BYTES[$label]}" "${NOBJ[$label]}" "$srv" "${line#WRKSTATS }" >>"$RESULTS"
            log "  $label $srv round $r: $(grep -E '^Requests/sec' "$out" | tr -s ' ')"
        done
    done
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$CONNECTIONS" "$WRK_THREADS" "$SERVER_THREADS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
results, conns, wthreads, sthreads, duration, rounds = sys.argv[1:7]
runs = {}   # (label, server) -> list of dicts
order = []
meta = {}
for line in open(results):
    label, nbytes, nobj, srv, kv = line.rstrip("\n").split("\t")
    d = dict(p.split("=", 1) for p in kv.split())
    d = {k: float(v) for k, v in d.items()}
    secs = d["duration_us"] / 1e6
    runs.setdefault((label, srv), []).append({
        "rps": d["requests"] / secs,
        "mbps": d["bytes"] / secs / 1e6,
        "p50": d["p50_us"] / 1000.0,
        "p99": d["p99_us"] / 1000.0,
        "errors": int(d["err_connect"] + d["err_read"] + d["err_write"] + d["err_status"] + d["err_timeout"]),
    })
    if label not in meta:
        order.append(label)
        meta[label] = (int(nbytes), int(nobj))

def agg(label, srv):
    rs = runs[(label, srv)]
    out = {k: statistics.median(r[k] for r in rs) for k in ("rps", "mbps", "p50", "p99")}
    out["errors"] = sum(r["errors"] for r in rs)
    return out

def ratio(a, b):
    return a / b if b else float("nan")

print()
print(f"GET benchmark: wrk -t{wthreads} -c{conns}, {duration}s x {rounds} round(s) "
      f"(median), server threads/workers {sthreads}, 127.0.0.1")
hdr = f"{'size':>6} {'objects':>7} {'server':<9} {'req/s':>11} {'MB/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
print(hdr)
print("-" * len(hdr))
lines = []
for label in order:
    nbytes, nobj = meta[label]
    o, n = agg(label, "objstore"), agg(label, "nginx")
    for srv, a in (("objstore", o), ("nginx", n)):
        print(f"{label:>6} {nobj:>7} {srv:<9} {a['rps']:>11.0f} {a['mbps']:>9.1f} "
              f"{a['p50']:>8.3f} {a['p99']:>8.3f} {a['errors']:>6d}")
    rr, rp = ratio(o["rps"], n["rps"]), ratio(o["p99"], n["p99"])
    print(f"{label:>6} {'':>7} {'ratio':<9} {rr:>11.3f} {ratio(o['mbps'], n['mbps']):>9.3f} "
          f"{ratio(o['p50'], n['p50']):>8.3f} {rp:>8.3f}   (objstore/nginx)")
    lines.append(
        f"RESULT size={label} bytes={nbytes} objects={nobj} connections={conns} wrk_threads={wthreads} "
        f"server_threads={sthreads} duration_s={duration} rounds={rounds} "
        f"objstore_rps={o['rps']:.1f} nginx_rps={n['rps']:.1f} ratio_rps={rr:.3f} "
        f"objstore_mbps={o['mbps']:.1f} nginx_mbps={n['mbps']:.1f} "
        f"objstore_p50_ms={o['p50']:.3f} nginx_p50_ms={n['p50']:.3f} "
        f"objstore_p99_ms={o['p99']:.3f} nginx_p99_ms={n['p99']:.3f} ratio_p99={rp:.3f} "
        f"objstore_errors={o['errors']} nginx_errors={n['errors']}")
print()
for l in lines:
    print(l)
if any(agg(l, s)["errors"] for l in order for s in ("objstore", "nginx")):
    print("WARNING: wrk counted errors (non-2xx/3xx answers, socket errors or timeouts); "
          "see the wrk output (--keep)", file=sys.stderr)
PY
