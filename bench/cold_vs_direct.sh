#!/usr/bin/env bash
# Cold GET through objstore vs a direct signed GET from the same S3 (moto_server),
# and hit vs miss latency through objstore.
#
# One run: start moto_server (signature checking on: IAM user, allow-* policy and
# access key created at setup, see tests/blackbox/moto_fixture.py) and one objstore
# node caching a bucket there; PUT the objects through the node at level 1; stop
# the node, wipe its state and files, restart it; then per object, in turn:
#   direct  GET of the key straight from moto (SigV4-signed with the same keys,
#           signed before the clock starts, over a keep-alive connection)
#   miss    GET /api/v1/get/ID with X-Meta-Fetch: 1 through the node (cold: the
#           node fetches from moto, stores, serves)
#   hit     the same GET again (the body is now local)
# Every response is checked byte for byte. Prints a table (p50/p99/mean per size
# and kind, ratios) and RESULT lines.
#
# Needs: build/objstore, the image's python3 with boto3 and moto_server on PATH.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/cold_vs_direct.sh [options]

  --small N          number of 64 KiB objects (default 200)
  --large N          number of 4 MiB objects (default 20)
  --rounds R         repeat the wipe + cold/hit/direct pass R times (default 3)
  --objstore PATH    objstore binary (default: <repo>/build/objstore)
  --tmp-parent DIR   where the temp dirs go (default: /work/tmp-bench if /work exists, else /tmp)
  --keep             keep the temp dirs (node log, moto log)
  -h, --help         this help

Output: a table and lines
  RESULT size=64K objects=.. direct_p50_ms=.. direct_p99_ms=.. cold_p50_ms=.. cold_p99_ms=..
         hit_p50_ms=.. hit_p99_ms=.. ratio_cold_direct_p50=.. ratio_cold_direct_p99=..
         ratio_hit_miss_p50=.. ratio_hit_direct_p50=..
  RESULT errors=.. s3_gets_per_cold_get=.. [s3_heads_per_cold_get=..]
ratio_cold_direct > 1: a cold GET through the node is slower than going to S3
directly (the node fetches, writes to disk and serves); ratio_hit_miss < 1: a hit
is that fraction of a miss. Client, node and moto share the machine's 2 cores and
moto is a Python server: numbers are relative.
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMALL=200
LARGE=20
ROUNDS=3
OBJSTORE_BIN="$REPO/build/objstore"
if [ -d /work ]; then TMP_PARENT=/work/tmp-bench; else TMP_PARENT=/tmp; fi
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --small) SMALL="$2"; shift 2 ;;
        --large) LARGE="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --objstore) OBJSTORE_BIN="$2"; shift 2 ;;
        --tmp-parent) TMP_PARENT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cold_vs_direct: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -x "$OBJSTORE_BIN" ] || { echo "cold_vs_direct: no objstore binary at $OBJSTORE_BIN" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "cold_vs_direct: moto_server not on PATH" >&2; exit 1; }
python3 -c "import boto3" 2>/dev/null || { echo "cold_vs_direct: python3 has no boto3" >&2; exit 1; }
mkdir -p "$TMP_PARENT"

export OBJSTORE_BIN OBJSTORE_TEST_TMP="$TMP_PARENT"
[ -n "$KEEP" ] && export OBJSTORE_KEEP_TMP=1
export BENCH_SMALL="$SMALL" BENCH_LARGE="$LARGE" BENCH_ROUNDS="$ROUNDS"
export PYTHONPATH="$REPO/tests/blackbox${PYTHONPATH:+:$PYTHONPATH}"

# hard bound: the whole run must not outlive ~4 minutes even if something hangs
exec timeout -k 10 240 python3 - <<'PYEOF'
import hashlib
import http.client
import os
import statistics
import sys
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

import moto_fixture as mf
from harness import HOST

SMALL = int(os.environ["BENCH_SMALL"])
LARGE = int(os.environ["BENCH_LARGE"])
ROUNDS = int(os.environ["BENCH_ROUNDS"])
KiB, MiB = 1024, 1024 * 1024
BUCKET = "objstore-bench"


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Conn:
    """A keep-alive HTTP/1.1 connection that reconnects when the server closed it."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def get(self, path, headers):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection(HOST, self.port, timeout=60)
            try:
                t0 = time.perf_counter()
                self.c.request("GET", path, headers=headers)
                r = self.c.getresponse()
                body = r.read()
                dt = time.perf_counter() - t0
                if r.getheader("Connection", "").lower() == "close":
                    self.c.close()
                    self.c = None
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body, dt
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


class QuietNode(mf.S3Node):
    """Debug level 0: level 1 logs every S3 canonical request."""

    def command(self):
        cmd = super().command()
        for i in range(len(cmd) - 1):
            if cmd[i] == "-d":
                cmd[i + 1] = "0"
        return cmd


def main():
    moto = mf.MotoServer(log_dir=os.environ.get("OBJSTORE_TEST_TMP"))
    node = None
    try:
        moto.start(bucket=BUCKET)
        node = QuietNode(extra_args=mf.s3_args(BUCKET, moto.endpoint, 1), name="bench",
                         env_set=moto.credentials_env())
        node.start(timeout=15)
        objs = []  # (size label, id, bytes)
        seed = hashlib.sha256(b"cold-vs-direct").digest()
        for label, size, count in (("64K", 64 * KiB, SMALL), ("4M", 4 * MiB, LARGE)):
            for i in range(count):
                block = hashlib.sha256(seed + label.encode() + i.to_bytes(4, "big")).digest()
                body = (block * (size // len(block) + 1))[:size]
                body = i.to_bytes(8, "big") + body[8:]
                objs.append((label, node.new_id(), body))
        t0 = time.monotonic()
        for label, oid, body in objs:
            st, _h, b = node.put(oid, body, level=1, name="obj-%s.bin" % label)
            if st != 200:
                raise SystemExit("PUT %s -> %d %r" % (oid, st, b[:300]))
        log("put %d objects (%.1f MiB) at level 1 in %.1f s" % (
            len(objs), sum(len(o[2]) for o in objs) / MiB, time.monotonic() - t0))

        creds = botocore.credentials.Credentials(moto.access_key, moto.secret_key)
        signer = botocore.auth.S3SigV4Auth(creds, "s3", mf.REGION)

        def signed_headers(key):
            req = botocore.awsrequest.AWSRequest(method="GET", url="%s/%s/%s" % (moto.endpoint, BUCKET, key))
            req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
            signer.add_auth(req)
            return dict(req.headers.items())

        res = {}  # (label, kind) -> [seconds]
        errors = 0
        s3_gets = 0
        s3_other = {}
        cold_gets = 0
        for rnd in range(ROUNDS):
            node.wipe_local()
            node.start(timeout=15)
            direct = Conn(moto.port)
            through = Conn(node.public_port)
            mark = moto.mark()
            t0 = time.monotonic()
            for label, oid, body in objs:
                h = signed_headers(oid)
                st, _hh, b, dt = direct.get("/%s/%s" % (BUCKET, oid), h)
                if st != 200 or b != body:
                    errors += 1
                res.setdefault((label, "direct"), []).append(dt)
                st, hh, b, dt = through.get("/api/v1/get/" + oid, {"X-Meta-Fetch": "1"})
                if st != 200 or b != body or hh.get("x-meta-fetched") != "true":
                    errors += 1
                    log("cold GET %s -> %d fetched=%s" % (oid, st, hh.get("x-meta-fetched")))
                res.setdefault((label, "cold"), []).append(dt)
                cold_gets += 1
                st, hh, b, dt = through.get("/api/v1/get/" + oid, {})
                if st != 200 or b != body or hh.get("x-meta-fetched") == "true":
                    errors += 1
                res.setdefault((label, "hit"), []).append(dt)
            reqs = moto.requests()[mark:]
            ids = set(o[1] for o in objs)
            # GETs of the keys minus the direct ones = the node's S3 GETs
            s3_gets += sum(1 for m, p, _s in reqs if m == "GET" and p.rsplit("/", 1)[-1] in ids) - len(objs)
            for m, p, _s in reqs:
                if m != "GET" and p.partition("?")[0].rsplit("/", 1)[-1] in ids:
                    s3_other[m] = s3_other.get(m, 0) + 1
            log("round %d: %d objects x (direct, cold, hit) in %.1f s" % (rnd + 1, len(objs), time.monotonic() - t0))

        ms = lambda x: x * 1000.0
        print()
        print("cold GET through objstore vs direct GET from moto (same keys, keep-alive, 127.0.0.1)")
        print("%-5s %-7s %6s %10s %10s %10s %10s" % ("size", "kind", "n", "p50 ms", "p99 ms", "mean ms", "MB/s"))
        labels = [l for l in ("64K", "4M") if (l, "cold") in res]
        for label in labels:
            for kind in ("direct", "cold", "hit"):
                xs = res[(label, kind)]
                size = 64 * KiB if label == "64K" else 4 * MiB
                print("%-5s %-7s %6d %10.2f %10.2f %10.2f %10.1f" % (
                    label, kind, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)), ms(statistics.mean(xs)),
                    size / statistics.mean(xs) / 1e6))
        print()
        for label in labels:
            d, c, h = res[(label, "direct")], res[(label, "cold")], res[(label, "hit")]
            print("RESULT size=%s objects=%d rounds=%d direct_p50_ms=%.2f direct_p99_ms=%.2f "
                  "cold_p50_ms=%.2f cold_p99_ms=%.2f hit_p50_ms=%.2f hit_p99_ms=%.2f "
                  "ratio_cold_direct_p50=%.2f ratio_cold_direct_p99=%.2f ratio_hit_miss_p50=%.3f "
                  "ratio_hit_direct_p50=%.3f" % (
                      label, len(c) // ROUNDS, ROUNDS, ms(pct(d, 50)), ms(pct(d, 99)),
                      ms(pct(c, 50)), ms(pct(c, 99)), ms(pct(h, 50)), ms(pct(h, 99)),
                      pct(c, 50) / pct(d, 50), pct(c, 99) / pct(d, 99), pct(h, 50) / pct(c, 50),
                      pct(h, 50) / pct(d, 50)))
        print("RESULT errors=%d s3_gets_per_cold_get=%.3f%s" % (
            errors, s3_gets / max(cold_gets, 1),
            "".join(" s3_%ss_per_cold_get=%.3f" % (m.lower(), n / max(cold_gets, 1))
                    for m, n in sorted(s3_other.items()))))
        return 1 if errors else 0
    finally:
        if node is not None:
            if node.alive():
                node.stop()
            else:
                log("objstore is not running at the end (crashed?):\n" + node.log_tail(20))
            node.remove_dirs()
        moto.cleanup()


sys.exit(main())
PYEOF
