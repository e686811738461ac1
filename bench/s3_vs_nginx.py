"""The S3 part of bench/vs_nginx.sh: objstore in front of moto_server against
nginx as an S3 caching proxy (proxy_cache + proxy_cache_lock) in front of the
same moto, for cold misses and for hits, and both against a direct GET from
moto. Run by vs_nginx.sh (which writes nginx's config and starts nginx); the
settings arrive in BENCH_* environment variables.

Per round: the node's state and files are wiped and nginx is sent another
X-Bench-Round value (part of its cache key), so both caches start cold. The
first BENCH_FIRST objects (64 KiB) are reported apart, as "64K-first": the
first two fetches on each of the node's 16 blocking threads fault their
transfer buffers in, which costs 0.4-1.5 ms per miss on this machine
(docs/BENCHMARKS.md, 2026-12-03), a cost of the first misses after a start
and not of a running node. Per object, in turn:
  direct        signed GET of the key straight from moto (keep-alive)
  relay         the same GET through nginx without a cache (proxy_pass, no
                buffering): what one hop costs on this machine, the floor of
                any proxy's cold miss
  objstore cold GET /api/v1/get/ID with X-Meta-Fetch: 1 (the node fetches)
  nginx cold    the signed GET through nginx (it fetches, caches, serves)
  objstore hit, nginx hit   the same GETs again
Then, per round, the tails of evicted bodies: BENCH_TAIL more objects of 64
MiB; the node restarts without its bodies but with its journal and GETs the
last 64 KiB of each (Range: bytes=-65536; the node reads the range on its own
while the body's fetch runs), against the same ranged GET straight from moto
(rows "64M-tail"). With 4 MiB objects the two are equal on this machine: the
range and the body's fetch share moto's one process and the two CPUs.
objstore and nginx alternate which goes first, object by object. Every body is
checked byte for byte. Then wrk drives hits of the 64 KiB objects through both
and appends WRKSTATS lines to $BENCH_RESULTS for vs_nginx.sh's table.
Prints a latency table and RESULT lines.
"""
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

import moto_fixture as mf
from harness import HOST

E = os.environ
SMALL, LARGE, ROUNDS = int(E["BENCH_SMALL"]), int(E["BENCH_LARGE"]), int(E["BENCH_ROUNDS"])
FIRST = int(E.get("BENCH_FIRST", "0"))
TAIL_OBJECTS = int(E.get("BENCH_TAIL", "0"))
MOTO_PORT, PROXY_PORT = int(E["BENCH_MOTO_PORT"]), int(E["BENCH_PROXY_PORT"])
RELAY_PORT = int(E["BENCH_RELAY_PORT"])
WORK, RESULTS = E["BENCH_WORK"], E["BENCH_RESULTS"]
KiB, MiB = 1024, 1024 * 1024
TAIL, TAIL_OBJECT = 64 * KiB, 64 * MiB  # the range of the tail GETs, their objects' size
BUCKET = "objstore-bench"


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def pct(xs, p):
    xs = sorted(xs)
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
                self.head_dt = time.perf_counter() - t0  # the status line and headers are in
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


def run_wrk(label, server, port, paths, secs, headers=()):
    paths_file = os.path.join(WORK, "paths-%s-%s.txt" % (label, server))
    with open(paths_file, "w") as f:
        f.write("\n".join(paths) + "\n")
    cmd = ["wrk", "-t", E["BENCH_WRK_THREADS"], "-c", E["BENCH_CONNECTIONS"], "-d", "%ds" % secs,
           "--latency", "-s", E["BENCH_LUA"]]
    for h in headers:
        cmd += ["-H", h]
    env = dict(E, BENCH_PATHS_FILE=paths_file)
    out = subprocess.run(cmd + ["http://%s:%d/" % (HOST, port)], env=env, capture_output=True,
                         text=True, timeout=secs + 60).stdout
    stats = [l for l in out.splitlines() if l.startswith("WRKSTATS ")]
    if not stats:
        raise SystemExit("wrk against %s gave no WRKSTATS line:\n%s" % (server, out))
    return stats[-1][len("WRKSTATS "):]


def main():
    moto = mf.MotoServer(port=MOTO_PORT, log_dir=WORK)
    node = None
    try:
        moto.start(bucket=BUCKET)
        extra = ("--s3-receive-buffer", E.get("BENCH_S3_RECEIVE_BUFFER", "0"),
                 "--threads", E["BENCH_SERVER_THREADS"])
        node = mf.S3Node(extra_args=mf.s3_args(BUCKET, moto.endpoint, 1, extra), name="bench",
                         env_set=moto.credentials_env(), quiet=True)
        node.start(timeout=15)
        objs = []  # (size label, id, bytes)
        seed = hashlib.sha256(b"s3-vs-nginx").digest()
        for label, size, count in (("64K-first", 64 * KiB, FIRST), ("64K", 64 * KiB, SMALL),
                                   ("4M", 4 * MiB, LARGE)):
            for i in range(count):
                block = hashlib.sha256(seed + label.encode() + i.to_bytes(4, "big")).digest()
                body = (block * (size // len(block) + 1))[:size]
                objs.append((label, node.new_id(), i.to_bytes(8, "big") + body[8:]))
        t0 = time.monotonic()
        for label, oid, body in objs:
            st, _h, b = node.put(oid, body, level=1, name="obj-%s.bin" % label)
            if st != 200:
                raise SystemExit("PUT %s -> %d %r" % (oid, st, b[:300]))
        log("put %d objects (%.1f MiB) at level 1 through the node in %.1f s" % (
            len(objs), sum(len(o[2]) for o in objs) / MiB, time.monotonic() - t0))

        creds = botocore.credentials.Credentials(moto.access_key, moto.secret_key)
        signer = botocore.auth.S3SigV4Auth(creds, "s3", mf.REGION)

        def signed_headers(key, extra=None):
            req = botocore.awsrequest.AWSRequest(method="GET", url="%s/%s/%s" % (moto.endpoint, BUCKET, key),
                                                 headers=dict(extra or {}))
            req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
            signer.add_auth(req)
            return dict(req.headers.items())

        res = {}  # (label, kind) -> [seconds]
        heads = {}  # (label, "direct" or "objstore cold") -> [seconds to the headers]
        errors = 0
        ids = set(o[1] for o in objs)
        origin_gets = {"objstore": 0, "nginx": 0}
        cold_gets = 0

        def check(kind, oid, st, hh, b, body, want_fetched=None):
            nonlocal errors
            bad = st != 200 or b != body
            if want_fetched is not None:
                bad = bad or (hh.get("x-meta-fetched") == "true") != want_fetched
            if bad:
                errors += 1
                log("%s GET %s -> %d (%d bytes)" % (kind, oid, st, len(b)))

        for rnd in range(ROUNDS):
            node.wipe_local()
            node.start(timeout=15)
            tag = {"X-Bench-Round": "%d-%d" % (os.getpid(), rnd)}
            direct, through, proxy = Conn(moto.port), Conn(node.public_port), Conn(PROXY_PORT)
            relay = Conn(RELAY_PORT)
            t0 = time.monotonic()
            for i, (label, oid, body) in enumerate(objs):
                h = signed_headers(oid)
                st, hh, b, dt = direct.get("/%s/%s" % (BUCKET, oid), h)
                check("direct", oid, st, hh, b, body)
                res.setdefault((label, "direct"), []).append(dt)
                heads.setdefault((label, "direct"), []).append(direct.head_dt)
                st, hh, b, dt = relay.get("/%s/%s" % (BUCKET, oid), h)  # signed for moto's host
                check("relay", oid, st, hh, b, body)
                res.setdefault((label, "relay"), []).append(dt)
                for server in (("objstore", "nginx") if i % 2 == 0 else ("nginx", "objstore")):
                    mark = moto.mark()
                    if server == "objstore":
                        st, hh, b, dt = through.get("/api/v1/get/" + oid, {"X-Meta-Fetch": "1"})
                        check("objstore cold", oid, st, hh, b, body, True)
                        heads.setdefault((label, "objstore cold"), []).append(through.head_dt)
                    else:
                        st, hh, b, dt = proxy.get("/%s/%s" % (BUCKET, oid), dict(signed_headers(oid), **tag))
                        check("nginx cold", oid, st, hh, b, body)
                    res.setdefault((label, server + " cold"), []).append(dt)
                    origin_gets[server] += sum(1 for m, p, _s in moto.requests()[mark:]
                                               if m == "GET" and p.rsplit("/", 1)[-1] in ids)
                cold_gets += 1
                st, hh, b, dt = through.get("/api/v1/get/" + oid, {})
                check("objstore hit", oid, st, hh, b, body, False)
                res.setdefault((label, "objstore hit"), []).append(dt)
                mark = moto.mark()
                st, hh, b, dt = proxy.get("/%s/%s" % (BUCKET, oid), dict(signed_headers(oid), **tag))
                check("nginx hit", oid, st, hh, b, body)
                if moto.requests()[mark:]:
                    errors += 1
                    log("nginx hit of %s went to moto: not cached" % oid)
                res.setdefault((label, "nginx hit"), []).append(dt)
            log("round %d: %d objects x (direct, 2 cold, 2 hits) in %.1f s" % (
                rnd + 1, len(objs), time.monotonic() - t0))

        # Throughput of hits, 64 KiB objects, both caches warm from the last round.
        small = [o[1] for o in objs if o[0] == "64K"]
        if small:
            secs, warm = int(E["BENCH_DURATION"]), int(E["BENCH_WARMUP"])
            with open(RESULTS, "a") as out:
                for r in range(int(E["BENCH_WRK_ROUNDS"])):
                    order = ("objstore", "nginx") if r % 2 == 0 else ("nginx", "objstore")
                    for server in order:
                        if server == "objstore":
                            port, paths, hdr = node.public_port, ["/api/v1/get/" + k for k in small], ()
                        else:
                            port, paths = PROXY_PORT, ["/%s/%s" % (BUCKET, k) for k in small]
                            hdr = ("X-Bench-Round: " + tag["X-Bench-Round"],)
                        if r == 0 and warm > 0:
                            run_wrk("S3HIT-64K", server, port, paths, warm, hdr)
                        line = run_wrk("S3HIT-64K", server, port, paths, secs, hdr)
                        out.write("S3HIT-64K\t%d\t%d\t%s\t%s\n" % (64 * KiB, len(small), server, line))
                        log("  S3HIT-64K %s round %d: %s" % (server, r + 1, line.split()[0]))

        # Tails of evicted bodies: the node restarts without its bodies but with
        # its journal (every object known, its body in the bucket only), and
        # GETs the last 64 KiB of each 64 MiB object, against the same ranged
        # GET straight from moto. After each, the body's own fetch is waited
        # for, so it does not run into the next measurement.
        large = []
        for i in range(TAIL_OBJECTS):
            oid, body = node.new_id(), os.urandom(TAIL_OBJECT)
            st, _h, b = node.put(oid, body, level=1, name="tail-%d.parquet" % i)
            if st != 200:
                raise SystemExit("PUT %s -> %d %r" % (oid, st, b[:300]))
            large.append(("64M", oid, body))
        tail = {"direct": [], "objstore cold": []}
        for rnd in range(ROUNDS if large else 0):
            node.stop()
            for dirpath, _d, files in os.walk(node.files_dir):
                for f in files:
                    os.unlink(os.path.join(dirpath, f))
            node.start(timeout=15)
            direct, through = Conn(moto.port), Conn(node.public_port)
            for i, (_label, oid, body) in enumerate(large):
                want = body[-TAIL:]
                for kind in (("direct", "objstore cold") if i % 2 == 0 else ("objstore cold", "direct")):
                    if kind == "direct":
                        h = signed_headers(oid, {"Range": "bytes=-%d" % TAIL})
                        st, hh, b, dt = direct.get("/%s/%s" % (BUCKET, oid), h)
                    else:
                        st, hh, b, dt = through.get("/api/v1/get/" + oid, {"Range": "bytes=-%d" % TAIL})
                    if st != 206 or b != want:
                        errors += 1
                        log("%s tail GET %s -> %d (%d bytes)" % (kind, oid, st, len(b)))
                    tail[kind].append(dt)
                deadline = time.monotonic() + 30
                while not json.loads(through.get("/api/v1/meta/" + oid, {})[2])["local_body"]:
                    if time.monotonic() > deadline:
                        raise SystemExit("the fetch of %s did not commit" % oid)
                    time.sleep(0.002)

        ms = lambda x: x * 1000.0
        print()
        print("S3 through a cache vs direct: moto_server (signatures on), objstore and nginx "
              "proxy_cache in front of it; sequential keep-alive GETs, %d round(s)" % ROUNDS)
        if FIRST:
            print("(64K-first: the %d misses after each start, before the measured ones)" % FIRST)
        print("%-9s %-14s %6s %9s %9s %9s %9s" % ("size", "kind", "n", "p50 ms", "p99 ms", "mean ms", "/direct"))
        labels = [l for l in ("64K-first", "64K", "4M") if (l, "direct") in res]
        kinds = ("direct", "relay", "objstore cold", "nginx cold", "objstore hit", "nginx hit")
        for label in labels:
            d50 = pct(res[(label, "direct")], 50)
            for kind in kinds:
                xs = res[(label, kind)]
                print("%-9s %-14s %6d %9.2f %9.2f %9.2f %9.2f" % (
                    label, kind, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)), ms(statistics.mean(xs)),
                    pct(xs, 50) / d50))
        print()
        for label in labels:
            # Where a cold miss spends its time beyond a direct GET: before the
            # headers (request, S3 request, first bytes) or after (the body).
            hd, ho = (pct(heads[(label, k)], 50) for k in ("direct", "objstore cold"))
            bd = pct(res[(label, "direct")], 50) - hd
            bo = pct(res[(label, "objstore cold")], 50) - ho
            print("%-9s cold miss p50: headers after %.2f ms (direct %.2f), body in %.2f ms "
                  "(direct %.2f)" % (label, ms(ho), ms(hd), ms(bo), ms(bd)))
        print()
        for label in labels:
            p = {k: pct(res[(label, k)], 50) for k in kinds}
            p99 = {k: pct(res[(label, k)], 99) for k in kinds}
            print("RESULT s3 size=%s objects=%d rounds=%d direct_p50_ms=%.2f objstore_cold_p50_ms=%.2f "
                  "nginx_cold_p50_ms=%.2f objstore_hit_p50_ms=%.2f nginx_hit_p50_ms=%.2f "
                  "ratio_cold_direct_p50=%.2f ratio_cold_direct_p99=%.2f nginx_cold_direct_p50=%.2f "
                  "relay_direct_p50=%.2f "
                  "ratio_cold_objstore_nginx_p50=%.2f ratio_hit_objstore_nginx_p50=%.2f" % (
                      label, len(res[(label, "direct")]) // ROUNDS, ROUNDS, ms(p["direct"]),
                      ms(p["objstore cold"]), ms(p["nginx cold"]), ms(p["objstore hit"]), ms(p["nginx hit"]),
                      p["objstore cold"] / p["direct"], p99["objstore cold"] / p99["direct"],
                      p["nginx cold"] / p["direct"], p["relay"] / p["direct"],
                      p["objstore cold"] / p["nginx cold"],
                      p["objstore hit"] / p["nginx hit"]))
        if tail["direct"]:
            print("Last %d KiB of each %d MiB object, its body evicted (the node knows the object): "
                  "objstore vs a ranged GET from moto" % (TAIL // KiB, TAIL_OBJECT // MiB))
            d50 = pct(tail["direct"], 50)
            for kind in ("direct", "objstore cold"):
                xs = tail[kind]
                print("%-9s %-14s %6d %9.2f %9.2f %9.2f %9.2f" % (
                    "64M-tail", kind, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)),
                    ms(statistics.mean(xs)), pct(xs, 50) / d50))
            print("RESULT s3 size=64M-tail objects=%d rounds=%d direct_p50_ms=%.2f "
                  "objstore_cold_p50_ms=%.2f ratio_cold_direct_p50=%.2f ratio_cold_direct_p99=%.2f" % (
                      len(large), ROUNDS, ms(d50), ms(pct(tail["objstore cold"], 50)),
                      pct(tail["objstore cold"], 50) / d50,
                      pct(tail["objstore cold"], 99) / pct(tail["direct"], 99)))
        print("RESULT s3 errors=%d origin_gets_per_cold_get objstore=%.3f nginx=%.3f" % (
            errors, origin_gets["objstore"] / max(cold_gets, 1), origin_gets["nginx"] / max(cold_gets, 1)))
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
