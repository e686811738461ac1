"""Misses of large objects from an S3 whose connections each run at a limited
rate (as a real bucket's do), through objstore, against the clients a user
would otherwise run. Run by bench/cold_parts.sh (settings in BENCH_*).

moto_server (signature checks on) sits behind the tests' FaultProxy, which
holds every connection to BENCH_RATE bytes/s each way. A node in front of
that proxy stores BENCH_OBJECTS objects of BENCH_SIZE bytes at level 1. Per
round, and object by object:
  direct        one signed GET straight from the proxy: a client without a
                cache (one connection)
  boto3         boto3's download_fileobj with its default TransferConfig
                (8 MiB ranged GETs over up to 10 threads), what `aws s3 cp`
                does: the best a client of S3 gets
  objstore      GET /api/v1/get/ID of an object the node knows, its body
                evicted (the node restarted without its bodies), with the
                node's --cold-fetch-streams BENCH_STREAMS
  objstore-1    the same with --cold-fetch-streams 1 (one GET: before parts)
Each time is to the last byte, checked byte for byte; after each objstore GET
the fetch's commit is waited for. Prints a table and RESULT lines.
"""
import hashlib
import http.client
import io
import json
import os
import statistics
import sys
import time

import boto3.s3.transfer
import botocore.auth
import botocore.awsrequest
import botocore.credentials

import moto_fixture as mf
from harness import HOST

E = os.environ
SIZE, OBJECTS, ROUNDS = int(E["BENCH_SIZE"]), int(E["BENCH_OBJECTS"]), int(E["BENCH_ROUNDS"])
RATE, STREAMS, PART = int(E["BENCH_RATE"]), E["BENCH_STREAMS"], E["BENCH_PART_SIZE"]
MiB = 1024 * 1024
BUCKET = "objstore-parts-bench"


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def get(port, path, headers):
    """One GET on a new connection: (status, body, seconds to the last byte)."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(HOST, port, timeout=300)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.perf_counter() - t0
    finally:
        c.close()


def main():
    moto = mf.MotoServer(log_dir=E["BENCH_WORK"])
    proxy, node = None, None
    try:
        moto.start(bucket=BUCKET)
        proxy = mf.FaultProxy(moto.port).up()
        base = mf.s3_args(BUCKET, proxy.endpoint, 1, ("--cold-fetch-part-size", PART))
        node = mf.S3Node(extra_args=base, name="parts-bench", env_set=moto.credentials_env(),
                         quiet=True)
        node.start(timeout=15)
        objs = []
        for i in range(OBJECTS):
            seed = hashlib.sha256(b"cold-parts" + i.to_bytes(4, "big")).digest()
            body = (seed * (SIZE // len(seed) + 1))[:SIZE]
            body = i.to_bytes(8, "big") + os.urandom(4096) + body[4104:]
            oid = node.new_id()
            st, _h, b = node.put(oid, body, level=1, name="big-%d.bin" % i)
            if st != 200:
                raise SystemExit("PUT %s -> %d %r" % (oid, st, b[:300]))
            objs.append((oid, body))
        log("put %d objects of %d MiB at level 1" % (OBJECTS, SIZE // MiB))

        creds = botocore.credentials.Credentials(moto.access_key, moto.secret_key)
        signer = botocore.auth.S3SigV4Auth(creds, "s3", mf.REGION)

        def signed_headers(key):
            req = botocore.awsrequest.AWSRequest(
                method="GET", url="%s/%s/%s" % (proxy.endpoint, BUCKET, key))
            req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
            signer.add_auth(req)
            return dict(req.headers.items())

        s3 = boto3.client("s3", endpoint_url=proxy.endpoint, region_name=mf.REGION,
                          aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key,
                          config=mf._boto_config())
        transfer = boto3.s3.transfer.TransferConfig()  # the AWS CLI's defaults
        proxy.slow(RATE or None)  # 0: full speed
        res = {k: [] for k in ("direct", "boto3", "objstore", "objstore-1")}
        errors = 0

        def restart_without_bodies(streams):
            node.stop()
            for dirpath, _d, files in os.walk(node.files_dir):
                for f in files:
                    os.unlink(os.path.join(dirpath, f))
            node.extra_args = base + ["--cold-fetch-streams", streams]
            node.start(timeout=15)

        def through_node(kind, oid, body):
            nonlocal errors
            st, b, dt = get(node.public_port, "/api/v1/get/" + oid, {})
            if st != 200 or b != body:
                errors += 1
                log("%s GET %s -> %d (%d bytes)" % (kind, oid, st, len(b)))
            res[kind].append(dt)
            deadline = time.monotonic() + 120
            while not json.loads(get(node.public_port, "/api/v1/meta/" + oid, {})[1])["local_body"]:
                if time.monotonic() > deadline:
                    raise SystemExit("the fetch of %s did not commit" % oid)
                time.sleep(0.01)

        for rnd in range(ROUNDS):
            t0 = time.monotonic()
            order = ("objstore", "objstore-1") if rnd % 2 == 0 else ("objstore-1", "objstore")
            for kind in order:
                restart_without_bodies(STREAMS if kind == "objstore" else "1")
                for oid, body in objs:
                    through_node(kind, oid, body)
            for oid, body in objs:
                st, b, dt = get(proxy.port, "/%s/%s" % (BUCKET, oid), signed_headers(oid))
                if st != 200 or b != body:
                    errors += 1
                    log("direct GET %s -> %d (%d bytes)" % (oid, st, len(b)))
                res["direct"].append(dt)
                out = io.BytesIO()
                t1 = time.perf_counter()
                s3.download_fileobj(BUCKET, oid, out, Config=transfer)
                res["boto3"].append(time.perf_counter() - t1)
                if out.getvalue() != body:
                    errors += 1
                    log("boto3 download of %s differs" % oid)
            log("round %d in %.1f s" % (rnd + 1, time.monotonic() - t0))

        p50 = {k: statistics.median(v) for k, v in res.items()}
        print()
        print("Misses of %d MiB objects, S3 (moto) held to %.1f MiB/s per connection; objstore "
              "--cold-fetch-streams %s --cold-fetch-part-size %s; %d objects x %d rounds"
              % (SIZE // MiB, RATE / MiB, STREAMS, PART, OBJECTS, ROUNDS))
        print("%-11s %4s %9s %9s %9s %9s %10s" % ("kind", "n", "p50 s", "min s", "max s", "MiB/s",
                                                  "/objstore"))
        for kind in ("direct", "boto3", "objstore", "objstore-1"):
            xs = res[kind]
            print("%-11s %4d %9.2f %9.2f %9.2f %9.1f %10.2f" % (
                kind, len(xs), p50[kind], min(xs), max(xs), SIZE / MiB / p50[kind],
                p50[kind] / p50["objstore"]))
        print("RESULT cold_parts size_mib=%d rate_mib_s=%.1f streams=%s objstore_p50_s=%.3f "
              "direct_p50_s=%.3f boto3_p50_s=%.3f objstore_1_p50_s=%.3f "
              "objstore_vs_direct=%.2f objstore_vs_boto3=%.2f objstore_vs_one_stream=%.2f errors=%d" % (
                  SIZE // MiB, RATE / MiB, STREAMS, p50["objstore"], p50["direct"], p50["boto3"],
                  p50["objstore-1"], p50["objstore"] / p50["direct"],
                  p50["objstore"] / p50["boto3"], p50["objstore"] / p50["objstore-1"], errors))
        return 1 if errors else 0
    finally:
        if node is not None:
            if node.alive():
                node.stop()
            else:
                log("objstore is not running at the end (crashed?):\n" + node.log_tail(20))
            node.remove_dirs()
        if proxy is not None:
            proxy.stop()
        moto.cleanup()


sys.exit(main())
