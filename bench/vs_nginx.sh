#!/usr/bin/env bash
# objstore against nginx on this machine, in one run (issue 6). Parts, each
# selectable with --parts:
#   static  GET hits: objstore vs nginx serving the same bytes as static files
#           (2 workers, sendfile on, access_log off), wrk keep-alive, per size:
#           req/s, MB/s, p50, p99 and the ratios objstore/nginx.
#   put     PUT throughput of 1 MiB objects (level 0) vs dd writing the same
#           bytes with O_SYNC (oflag=sync) into the same file system: one client
#           vs one dd, and --put-clients clients vs as many dd processes.
#   idle    RSS of the node with N idle keep-alive connections (nginx's for
#           reference).
#   s3      objstore in front of moto_server vs nginx as an S3 caching proxy
#           (proxy_cache + proxy_cache_lock) in front of the same moto: cold
#           misses and hits against a direct GET from moto and against nginx
#           as a plain relay (no cache: the floor of any proxy's miss), and
#           wrk hits (bench/s3_vs_nginx.py).
# Servers are measured alternately (never concurrently), and for GETs nginx and
# objstore are first checked to return identical bytes.
#
# Needs: build/objstore (already built), nginx, wrk, curl, python3, sha256sum, dd;
# for the s3 part moto_server and boto3 in the image's python3.
# Run `bench/vs_nginx.sh --help` for options.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/vs_nginx.sh [options]

  --parts LIST           which parts: static,put,idle,s3 (default: all)
  --size LIST            object sizes for the static part, repeatable or comma list:
                         4K, 64K, 1M, 512, 2M ... (K/M = 1024/1048576 bytes).
                         Default: 4K,64K,1M
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
  --put-objects N        1 MiB PUTs (and dd blocks) in the put part (default 200)
  --put-clients N        concurrent clients (and dd processes) of the put part's
                         second figure (default 4)
  --idle-connections N   idle keep-alive connections in the idle part (default 1000)
  --s3-small N           64 KiB objects in the s3 part (default 100)
  --s3-large N           4 MiB objects in the s3 part (default 10)
  --s3-rounds R          cold/hit passes in the s3 part (default 2)
  --s3-tail N            64 MiB objects whose last 64 KiB the s3 part GETs with
                         their bodies evicted, objstore vs a ranged GET from
                         moto, once per round (default 4; 0 = none)
  --s3-first N           64 KiB cold misses made at the start of each s3 round,
                         before the measured ones and reported on their own: the
                         node's first fetches after a start (default 32, twice
                         its 16 blocking threads; 0 = none)
  --s3-receive-buffer SIZE
                         the node's --s3-receive-buffer in the s3 part (default
                         0: the node's default, the kernel's autotuning)
  --objstore PATH        objstore binary (default: <repo>/build/objstore)
  --tmp-parent DIR       where the temp dir goes (default /work/tmp-bench if /work
                         exists, else /tmp; the put part writes there)
  --keep                 keep the temp dir (logs, configs, wrk output) at the end
  -h, --help             this help

A quick run: --duration 3 --warmup 0 --put-objects 50 --s3-small 30 --s3-large 3 --s3-rounds 1

Output: a table (size, server, req/s, MB/s, p50, p99, ratios objstore/nginx) and
per size a line
  RESULT size=4K objects=.. objstore_rps=.. nginx_rps=.. ratio_rps=.. \
         objstore_mbps=.. nginx_mbps=.. objstore_p50_ms=.. nginx_p50_ms=.. \
         objstore_p99_ms=.. nginx_p99_ms=.. ratio_p99=.. objstore_errors=.. nginx_errors=..
Rows S3HIT-64K: hits through the two S3 caches (the s3 part).
Then "RESULT put ...", "RESULT idle ..." and "RESULT s3 ..." lines.
ratio_rps > 1: objstore serves more requests/s; ratio_p99 > 1: objstore's p99 is
higher (worse). MB/s counts every byte wrk read (headers included), 10^6 bytes.
wrk, objstore and nginx share the machine's cores: numbers are relative.
EOF
}

die() { echo "vs_nginx: $*" >&2; exit 1; }
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
PARTS=static,put,idle,s3
PUT_OBJECTS=200
PUT_CLIENTS=4
IDLE_CONNECTIONS=1000
S3_SMALL=100
S3_LARGE=10
S3_ROUNDS=2
S3_FIRST=32
S3_TAIL=4
S3_RECEIVE_BUFFER=0
OBJSTORE_BIN="$REPO/build/objstore"
if [[ -d /work ]]; then TMP_PARENT=/work/tmp-bench; else TMP_PARENT=/tmp; fi
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
        --parts) need_arg "$@"; PARTS=$2; shift 2 ;;
        --parts=*) PARTS=${1#*=}; shift ;;
        --put-objects) need_arg "$@"; PUT_OBJECTS=$2; shift 2 ;;
        --put-objects=*) PUT_OBJECTS=${1#*=}; shift ;;
        --put-clients) need_arg "$@"; PUT_CLIENTS=$2; shift 2 ;;
        --put-clients=*) PUT_CLIENTS=${1#*=}; shift ;;
        --idle-connections) need_arg "$@"; IDLE_CONNECTIONS=$2; shift 2 ;;
        --idle-connections=*) IDLE_CONNECTIONS=${1#*=}; shift ;;
        --s3-small) need_arg "$@"; S3_SMALL=$2; shift 2 ;;
        --s3-small=*) S3_SMALL=${1#*=}; shift ;;
        --s3-large) need_arg "$@"; S3_LARGE=$2; shift 2 ;;
        --s3-large=*) S3_LARGE=${1#*=}; shift ;;
        --s3-rounds) need_arg "$@"; S3_ROUNDS=$2; shift 2 ;;
        --s3-rounds=*) S3_ROUNDS=${1#*=}; shift ;;
        --s3-tail) need_arg "$@"; S3_TAIL=$2; shift 2 ;;
        --s3-tail=*) S3_TAIL=${1#*=}; shift ;;
        --s3-first) need_arg "$@"; S3_FIRST=$2; shift 2 ;;
        --s3-first=*) S3_FIRST=${1#*=}; shift ;;
        --s3-receive-buffer) need_arg "$@"; S3_RECEIVE_BUFFER=$2; shift 2 ;;
        --s3-receive-buffer=*) S3_RECEIVE_BUFFER=${1#*=}; shift ;;
        --objstore) need_arg "$@"; OBJSTORE_BIN=$2; shift 2 ;;
        --objstore=*) OBJSTORE_BIN=${1#*=}; shift ;;
        --tmp-parent) need_arg "$@"; TMP_PARENT=$2; shift 2 ;;
        --tmp-parent=*) TMP_PARENT=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(4K 64K 1M)
[[ $PARTS == *static* ]] || SIZES=()
has_part() { [[ ,$PARTS, == *,$1,* ]]; }
for p in ${PARTS//,/ }; do
    [[ $p =~ ^(static|put|idle|s3)$ ]] || die "unknown part '$p' (static, put, idle, s3)"
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in DURATION WARMUP ROUNDS CONNECTIONS WRK_THREADS SERVER_THREADS PUT_OBJECTS PUT_CLIENTS \
         IDLE_CONNECTIONS S3_SMALL S3_LARGE S3_ROUNDS S3_FIRST S3_TAIL; do
    is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
[[ -z $OBJECTS ]] || { is_uint "$OBJECTS" && [[ $OBJECTS -ge 1 ]]; } || die "--objects must be >= 1"
[[ $PUT_CLIENTS -ge 1 && $PUT_CLIENTS -le $PUT_OBJECTS ]] || die "--put-clients must be 1 .. --put-objects"
[[ $PUT_OBJECTS -ge 1 && $S3_ROUNDS -ge 1 && $(( S3_SMALL + S3_LARGE )) -ge 1 ]] \
    || die "--put-objects, --s3-rounds and --s3-small + --s3-large must be >= 1"
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

for tool in nginx wrk curl python3 sha256sum dd; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup installs nginx and wrk)"
done
NGINX=$(command -v nginx)
[[ -x $OBJSTORE_BIN ]] || die "objstore binary not found at $OBJSTORE_BIN (build it first)"
if has_part s3; then
    command -v moto_server >/dev/null || die "moto_server not on PATH (needed by the s3 part)"
    python3 -c "import boto3" 2>/dev/null || die "python3 has no boto3 (needed by the s3 part)"
fi

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
        echo "vs_nginx: $name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL" >&2
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
        echo "vs_nginx: kept $WORK" >&2
    elif [[ $rc -ne 0 ]]; then
        # keep the logs of a failed run, drop the bulky data
        rm -rf "$WORK/objstore/files" "$WORK/objstore/state" "$WORK/objstore/cold" "$WORK/www" 2>/dev/null || true
        echo "vs_nginx: failed; logs are in $WORK" >&2
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
# Bind six sockets at once so the ports differ; the tiny race before the
# servers bind them is acceptable for a benchmark.
read -r OS_PORT OS_PRIV_PORT NGINX_PORT PROXY_PORT RELAY_PORT MOTO_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(6):
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
# What the figures depend on beyond the binaries: over loopback the kernel's
# congestion control decides how fast one connection moves a large body (BBR
# paces; docs/BENCHMARKS.md, 2026-12-03), and the put part's syncs depend on
# the temp dir's file system.
log "machine: kernel $(uname -r), $(nproc) CPUs," \
    "tcp_congestion_control $(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo '?')," \
    "temp dir on $(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || echo '?')"
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
(( WORKER_CONNECTIONS >= IDLE_CONNECTIONS + 1024 )) || WORKER_CONNECTIONS=$(( IDLE_CONNECTIONS + 1024 ))
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
    # The s3 part: a caching proxy in front of moto. Clients sign their GETs
    # for moto's host; nginx passes the signature on and keeps connections to
    # moto alive. X-Bench-Round is in the key so every round starts cold.
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=s3:10m max_size=4g inactive=1h use_temp_path=off;
    upstream moto {
        server 127.0.0.1:$MOTO_PORT;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        # nginx's default here: with the http block's tcp_nopush on, every
        # 64 KiB answer from its cache stalled ~40 ms (2026-12-02: S3HIT-64K
        # 1,622 req/s with it, 20,017 without; a sequential hit 42 ms with
        # it, 0.57 ms without).
        tcp_nopush off;
        location = /ping { return 200 "ok\n"; }
        location / {
            proxy_pass http://moto;
            proxy_http_version 1.1;
            proxy_set_header Host 127.0.0.1:$MOTO_PORT;
            proxy_set_header Connection "";
            proxy_cache s3;
            proxy_cache_key "\$http_x_bench_round\$uri";
            proxy_cache_lock on;
            proxy_cache_valid 200 1h;
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
        }
    }
    # The s3 part's floor: the same hop without a cache (no disk, bytes
    # passed on as they arrive). What any proxy on this machine pays at least.
    server {
        listen 127.0.0.1:$RELAY_PORT;
        tcp_nopush off;
        location / {
            proxy_pass http://moto;
            proxy_http_version 1.1;
            proxy_set_header Host 127.0.0.1:$MOTO_PORT;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
        }
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

# ---------------------------------------------------------------- put
# PUTs of 1 MiB objects at level 0 (each is durable when answered: body,
# directory and journal synced) against dd writing the same bytes in 1 MiB
# blocks with O_SYNC to the same file system: one client over one keep-alive
# connection against one dd, then --put-clients clients, each over its own
# connection with its share of the objects, against as many dd processes at
# once, each writing its share to its own file. Alternating, --rounds times;
# medians.
EXTRA="$WORK/extra.txt"
: >"$EXTRA"
if has_part put; then
    log "put: $PUT_OBJECTS x 1 MiB, objstore PUT vs dd oflag=sync, 1 and $PUT_CLIENTS client(s), $ROUNDS round(s)"
    head -c $(( PUT_OBJECTS * 1048576 )) /dev/urandom >"$WORK/put-src.bin"
    : >"$WORK/put.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        for clients in 1 "$PUT_CLIENTS"; do
            python3 - "$OS_PORT" "$WORK/put-src.bin" "$PUT_OBJECTS" "$clients" >>"$WORK/put.tsv" <<'PY' \
                || die "the PUT run failed"
import http.client, sys, threading, time
port, src, n, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Slices of a memoryview: a bytes slice would copy 1 MiB into fresh memory per
# PUT (page faults included), a client cost of ~2 ms per PUT measured here that
# dd, reading into one reused buffer, does not pay.
data = memoryview(open(src, "rb").read())
conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(clients)]
ids = []
for _ in range(n):
    conns[0].request("GET", "/api/v1/id")
    ids.append(conns[0].getresponse().read().decode().strip())
errors = []

def client(c):  # objects c, c + clients, c + 2 * clients, ...
    conn = conns[c]
    for i in range(c, n, clients):
        conn.request("POST", "/api/v1/put", body=data[i << 20:(i + 1) << 20],
                     headers={"X-Meta-ID": ids[i], "X-Meta-ConsistencyLevel": "0"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            errors.append(f"PUT {ids[i]} -> {r.status} {body[:200]!r}")
            return

threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
t0 = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit(errors[0])
print(f"objstore-{clients}\t{time.perf_counter() - t0:.6f}")
PY
            # As many dd processes at once, each its share of the blocks into its own file.
            start=$(date +%s.%N)
            pids=()
            for ((c = 0; c < clients; c++)); do
                share=$(( PUT_OBJECTS / clients + (c < PUT_OBJECTS % clients ? 1 : 0) ))
                skip=$(( c * (PUT_OBJECTS / clients) + (c < PUT_OBJECTS % clients ? c : PUT_OBJECTS % clients) ))
                dd if="$WORK/put-src.bin" of="$WORK/objstore/dd.$c.out" bs=1M skip="$skip" \
                    count="$share" oflag=sync 2>"$WORK/dd.$c.txt" &
                pids+=($!)
            done
            for p in "${pids[@]}"; do wait "$p" || die "dd failed"; done
            printf 'dd-%s\t%s\n' "$clients" "$(echo "$(date +%s.%N) - $start" | bc)" >>"$WORK/put.tsv"
            rm -f "$WORK"/objstore/dd.*.out
        done
    done
    python3 - "$WORK/put.tsv" "$PUT_OBJECTS" "$PUT_CLIENTS" >>"$EXTRA" <<'PY'
import statistics, sys
secs = {}
for line in open(sys.argv[1]):
    who, t = line.split()
    secs.setdefault(who, []).append(float(t))
mib, clients = int(sys.argv[2]), int(sys.argv[3])
for c in sorted({1, clients}):
    o, d = (mib / statistics.median(secs[f"{k}-{c}"]) for k in ("objstore", "dd"))
    print(f"PUT of 1 MiB objects, {c} client(s): objstore {o:.1f} MiB/s, "
          f"{c} x dd oflag=sync {d:.1f} MiB/s, ratio {o / d:.2f} (goal >= 0.8)")
    print(f"RESULT put clients={c} objects={mib} rounds={len(secs[f'dd-{c}'])} "
          f"objstore_mibps={o:.1f} dd_sync_mibps={d:.1f} ratio={o / d:.3f}")
PY
fi

# ---------------------------------------------------------------- idle
# N keep-alive connections, each after one answered request, then idle; the
# RSS of the node (and of nginx's processes, for reference) is read while
# they stay open.
rss_kib() {  # rss_kib PID...: summed VmRSS in KiB
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$(( total + ${v:-0} ))
    done
    echo "$total"
}
if has_part idle; then
    log "idle: $IDLE_CONNECTIONS keep-alive connections to each server"
    cat >"$WORK/idle.py" <<'PY'
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit(f"idle connection got {got[:80]!r}")
    socks.append(s)
print("open", flush=True)
sys.stdin.readline()  # hold them until told
PY
    for srv in objstore nginx; do
        if [[ $srv == objstore ]]; then port=$OS_PORT path=/api/v1/ping pids=$OBJSTORE_PID
        else port=$NGINX_PORT path=/ping pids="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; fi
        before=$(rss_kib $pids)
        coproc IDLE { python3 "$WORK/idle.py" "$port" "$path" "$IDLE_CONNECTIONS"; }
        read -r _ <&"${IDLE[0]}" || die "opening $IDLE_CONNECTIONS connections to $srv failed"
        sleep 1
        after=$(rss_kib $pids)
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path") == 200 ]] \
            || die "$srv does not answer with $IDLE_CONNECTIONS idle connections open"
        echo >&"${IDLE[1]}"
        wait "$IDLE_PID" || true
        printf '%s %s %s\n' "$srv" "$before" "$after" >>"$WORK/idle.txt"
    done
    read -r _ ob oa < <(grep '^objstore ' "$WORK/idle.txt")
    read -r _ nb na < <(grep '^nginx ' "$WORK/idle.txt")
    {
        awk -v n="$IDLE_CONNECTIONS" -v oa="$oa" -v ob="$ob" -v na="$na" -v nb="$nb" 'BEGIN {
            printf "RSS with %d idle keep-alive connections: objstore %.1f MiB (%.1f before), " \
                   "nginx (master + workers) %.1f MiB (%.1f before); goal < 200 MiB\n",
                   n, oa / 1024, ob / 1024, na / 1024, nb / 1024 }'
        echo "RESULT idle connections=$IDLE_CONNECTIONS objstore_rss_kib=$oa objstore_rss_before_kib=$ob" \
             "nginx_rss_kib=$na nginx_rss_before_kib=$nb"
    } >>"$EXTRA"
fi

# ---------------------------------------------------------------- s3
if has_part s3; then
    log "s3: moto on port $MOTO_PORT, nginx proxy_cache on $PROXY_PORT, relay on $RELAY_PORT, $S3_SMALL x 64 KiB + $S3_LARGE x 4 MiB, $S3_FIRST first misses per round, $S3_TAIL x 64 MiB tails, node --s3-receive-buffer $S3_RECEIVE_BUFFER"
    BENCH_SMALL=$S3_SMALL BENCH_LARGE=$S3_LARGE BENCH_ROUNDS=$S3_ROUNDS BENCH_FIRST=$S3_FIRST \
    BENCH_TAIL=$S3_TAIL \
    BENCH_S3_RECEIVE_BUFFER=$S3_RECEIVE_BUFFER \
    BENCH_MOTO_PORT=$MOTO_PORT \
    BENCH_PROXY_PORT=$PROXY_PORT BENCH_RELAY_PORT=$RELAY_PORT BENCH_WORK=$WORK BENCH_RESULTS=$RESULTS \
    BENCH_SERVER_THREADS=$SERVER_THREADS BENCH_WRK_THREADS=$WRK_THREADS BENCH_CONNECTIONS=$CONNECTIONS \
    BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_WRK_ROUNDS=$ROUNDS \
    BENCH_LUA="$WORK/roundrobin.lua" OBJSTORE_BIN="$OBJSTORE_BIN" OBJSTORE_TEST_TMP="$WORK" \
    PYTHONPATH="$REPO/tests/blackbox${PYTHONPATH:+:$PYTHONPATH}" \
        timeout -k 10 900 python3 "$REPO/bench/s3_vs_nginx.py" >>"$EXTRA" || die "the s3 part failed"
fi

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
cat "$EXTRA"
