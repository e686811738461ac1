#!/usr/bin/env bash
# Journal anti-entropy between two nodes holding 1,000,000 records that differ in 1%
# (issue 4 §7; targets: converged in < 5 s, < 5% of a full export's bytes).
#
# Generates both state/journal.db files directly with python3's sqlite3 (schema of
# docs/FORMATS.md, distinct node_id settings; level-1 records, no local body, cold
# stored), starts node A, then node B with -N A and --sync-interval 1, and polls both
# /api/v1/stats until cluster.digest and cluster.records are equal. Bytes are the
# nodes' own counters (stats cluster.sync.bytes_sent / bytes_received, A + B); the
# full export is the JSON of all records of the converged journal in the R format
# of docs/CLUSTER.md.
# The helper is bench/cluster_sync.py.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/cluster_sync.sh [options]

  --records N        distinct keys in all (default 1000000); mode missing: each journal
                     holds N - N*F/2 of them, the versions mode N each
  --diff F           fraction that differs (default 0.01)
  --mode M           missing  : the differing records exist only on one side (half A, half B) (default)
                     versions : same keys, different versions (half newer on A, half on B)
                     mixed    : half of each
                     all      : run the three modes one after another
  --timeout S        give up waiting for convergence after S seconds (default 120)
  --node-args "ARGS" extra flags for both nodes, e.g. "--peer-timeout 30"
  --objstore PATH    objstore binary (default: <repo>/build/objstore)
  --tmp-parent DIR   where the node dirs go (default /work/tmp-bench, else /tmp)
  --keep             keep the node dirs (journals, logs)
  -h, --help         this help

Output: a markdown table row per mode and a line
  RESULT records=.. differ=.. mode=.. converged=.. seconds=.. (from B ready) sync_bytes=.. private_bytes=..
         export_bytes=.. ratio_pct=.. targets_met=..
(sync bytes: requests and answers of the anti-entropy rounds, counted by the node
that started each round, summed over A and B; private traffic: every private call
incl. gossip and pushes, as counted by the callers)
USAGE
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDS=1000000
DIFF=0.01
MODE=missing
TIMEOUT=120
NODE_ARGS=""
OBJSTORE_BIN="$REPO/build/objstore"
if [ -d /work ]; then TMP_PARENT=/work/tmp-bench; else TMP_PARENT=/tmp; fi
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --diff) DIFF="$2"; shift 2 ;;
        --mode) MODE="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --node-args) NODE_ARGS="$2"; shift 2 ;;
        --objstore) OBJSTORE_BIN="$2"; shift 2 ;;
        --tmp-parent) TMP_PARENT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cluster_sync: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -x "$OBJSTORE_BIN" ] || { echo "cluster_sync: no objstore binary at $OBJSTORE_BIN" >&2; exit 1; }
mkdir -p "$TMP_PARENT"
export OBJSTORE_BIN OBJSTORE_TEST_TMP="$TMP_PARENT"
[ -n "$KEEP" ] && export OBJSTORE_KEEP_TMP=1
export BENCH_RECORDS="$RECORDS" BENCH_DIFF="$DIFF" BENCH_TIMEOUT="$TIMEOUT" BENCH_NODE_ARGS="$NODE_ARGS"

modes="$MODE"
[ "$MODE" = all ] && modes="missing versions mixed"
rc=0
for m in $modes; do
    # hard bound per run: generation + two starts + the wait
    BENCH_MODE="$m" timeout -k 10 $((TIMEOUT + 300)) python3 "$REPO/bench/cluster_sync.py" || rc=$?
done
exit $rc
