#!/usr/bin/env bash
# A 10-node cluster on one machine (issue 4 §7): join time (until every node sees 10
# alive members) and convergence time of 100 PUTs spread over the nodes (until every
# node's journal digest is equal). Node 0 starts solo, nodes 1..9 join with -N <node 0>.
# The helper is bench/cluster_join.py (uses tests/blackbox/cluster_fixture.py).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/cluster_join.sh [options]

  --nodes N          cluster size (default 10)
  --puts N           PUTs after the join, level 1, 1 KiB, round robin (default 100)
  --clients N        client threads doing the PUTs (default 4)
  --rounds R         repeat the whole thing R times (default 3)
  --timings "ARGS"   cluster timing flags for every node, e.g. "--gossip-interval 0.2"
                     (default: none, i.e. the defaults of docs/CLUSTER.md)
  --timeout S        give up a wait after S seconds (default 60)
  --objstore PATH    objstore binary (default: <repo>/build/objstore)
  --tmp-parent DIR   where the node dirs go (default /work/tmp-bench, else /tmp)
  --keep             keep the node dirs
  -h, --help         this help

Output: a markdown table (one row per round) and a line
  RESULT nodes=.. puts=.. rounds=.. join_median_s=.. converge_after_first_put_median_s=..
         converge_after_last_ack_median_s=.. errors=..
USAGE
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=10; PUTS=100; CLIENTS=4; ROUNDS=3; TIMINGS=""; TIMEOUT=60
OBJSTORE_BIN="$REPO/build/objstore"
if [ -d /work ]; then TMP_PARENT=/work/tmp-bench; else TMP_PARENT=/tmp; fi
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES="$2"; shift 2 ;;
        --puts) PUTS="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --timings) TIMINGS="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --objstore) OBJSTORE_BIN="$2"; shift 2 ;;
        --tmp-parent) TMP_PARENT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cluster_join: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -x "$OBJSTORE_BIN" ] || { echo "cluster_join: no objstore binary at $OBJSTORE_BIN" >&2; exit 1; }
mkdir -p "$TMP_PARENT"
export OBJSTORE_BIN OBJSTORE_TEST_TMP="$TMP_PARENT"
[ -n "$KEEP" ] && export OBJSTORE_KEEP_TMP=1
export BENCH_NODES="$NODES" BENCH_PUTS="$PUTS" BENCH_CLIENTS="$CLIENTS" BENCH_ROUNDS="$ROUNDS" \
       BENCH_TIMINGS="$TIMINGS" BENCH_TIMEOUT="$TIMEOUT"
exec timeout -k 10 $(( (TIMEOUT * 3 + 60) * ROUNDS )) python3 "$REPO/bench/cluster_join.py"
