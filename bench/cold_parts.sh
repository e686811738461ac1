#!/usr/bin/env bash
# Misses of large objects from an S3 whose connections each run at a limited
# rate: objstore (parts over parallel connections, and one GET as before)
# against a direct GET and against boto3's parallel download (what `aws s3 cp`
# does), all in one run. The work is done by bench/cold_parts.py.
#
# Needs: build/objstore, moto_server, python3 with boto3.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/cold_parts.sh [options]

  --size BYTES        object size, K/M suffixes (default 32M)
  --objects N         objects (default 3)
  --rounds R          rounds; each restarts the node without its bodies (default 2)
  --rate BYTES        per-connection rate of the S3 proxy, bytes/s, K/M (default 8M;
                      0: full speed)
  --streams N         objstore --cold-fetch-streams (default 4)
  --part-size BYTES   objstore --cold-fetch-part-size (default 8M)
  --objstore PATH     objstore binary (default: <repo>/build/objstore)
  -h, --help          this help

Output: a table and
  RESULT cold_parts ... objstore_vs_direct=.. objstore_vs_boto3=.. objstore_vs_one_stream=..
(ratios of p50 times to the last byte; < 1: objstore is faster).
USAGE
}

die() { echo "cold_parts: $*" >&2; exit 1; }
bytes() {  # 8M -> 8388608
    local v=$1
    case $v in
        *K) echo $(( ${v%K} * 1024 )) ;;
        *M) echo $(( ${v%M} * 1024 * 1024 )) ;;
        *G) echo $(( ${v%G} * 1024 * 1024 * 1024 )) ;;
        *) echo "$v" ;;
    esac
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE=32M OBJECTS=3 ROUNDS=2 RATE=8M STREAMS=4 PART=8M OBJSTORE_BIN="$REPO/build/objstore"
while [[ $# -gt 0 ]]; do
    [[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
    [[ $# -ge 2 ]] || die "option $1 needs a value"
    case $1 in
        --size) SIZE=$2 ;;
        --objects) OBJECTS=$2 ;;
        --rounds) ROUNDS=$2 ;;
        --rate) RATE=$2 ;;
        --streams) STREAMS=$2 ;;
        --part-size) PART=$2 ;;
        --objstore) OBJSTORE_BIN=$2 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift 2
done
command -v moto_server >/dev/null || die "moto_server is not on PATH"
[[ -x $OBJSTORE_BIN ]] || die "no objstore binary at $OBJSTORE_BIN (build it first)"

WORK=$(mktemp -d /tmp/objstore-parts-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BENCH_SIZE=$(bytes "$SIZE") BENCH_OBJECTS=$OBJECTS BENCH_ROUNDS=$ROUNDS \
BENCH_RATE=$(bytes "$RATE") BENCH_STREAMS=$STREAMS BENCH_PART_SIZE=$PART BENCH_WORK="$WORK" \
OBJSTORE_BIN="$OBJSTORE_BIN" OBJSTORE_TEST_TMP="$WORK" \
PYTHONPATH="$REPO/tests/blackbox${PYTHONPATH:+:$PYTHONPATH}" \
    timeout -k 10 1800 python3 "$REPO/bench/cold_parts.py"
