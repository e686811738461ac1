#!/usr/bin/env bash
# Soak (issue 7 §6): 3 nodes + moto (signature checks) under mixed load with random
# kill -9 and SIGSTOP pauses; prints acknowledged/lost writes, revived deletes, error
# rates and p99 latency per op. Not part of ctest. See bench/soak.py for the model
# and docs/TESTING-FAULTS.md for a recorded run.
#
#   bench/soak.sh --seconds 600            # options: bench/soak.py --help
#   OBJSTORE_BIN=path/to/objstore bench/soak.sh ...   (default <repo>/build/objstore)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OBJSTORE_BIN="${OBJSTORE_BIN:-$REPO/build/objstore}"
[ -x "$OBJSTORE_BIN" ] || { echo "soak: no objstore binary at $OBJSTORE_BIN" >&2; exit 1; }
if [ -z "${OBJSTORE_TEST_TMP:-}" ]; then
    if [ -d /work ]; then export OBJSTORE_TEST_TMP=/work/tmp-bench; else export OBJSTORE_TEST_TMP=/tmp; fi
fi
mkdir -p "$OBJSTORE_TEST_TMP"
SECONDS_ARG=60
args=("$@")
for ((k = 0; k < ${#args[@]}; k++)); do
    [ "${args[$k]}" = "--seconds" ] && SECONDS_ARG="${args[$((k + 1))]:-60}"
done
# bounded: the run, then at most 10 minutes of healing and checks
exec timeout -k 10 $(( ${SECONDS_ARG%.*} + 600 )) python3 "$REPO/bench/soak.py" "$@"
