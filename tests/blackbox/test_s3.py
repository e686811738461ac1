"""objstore caching a real S3 bucket: moto_server with signature checking on.

Run from the repository root:
    python3 -m unittest tests/blackbox/test_s3.py -v

Needs moto_server and boto3 for the python3 that runs the tests (the image's
python3 has both). Only 127.0.0.1 is used. Environment: OBJSTORE_BIN,
OBJSTORE_TEST_TMP, OBJSTORE_KEEP_TMP (see harness.py), OBJSTORE_S3_BIG_BYTES
(size of the multipart round-trip object, default 200 MiB).
"""

import hashlib
import http.client
import json
import os
import re
import struct
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, RssSampler  # noqa: E402
from moto_fixture import S3TestCase, botocore  # noqa: E402

MiB = 1024 * 1024
BIG_SIZE = int(os.environ.get("OBJSTORE_S3_BIG_BYTES", 200 * MiB))
RSS_LIMIT_KIB = 64 * 1024
FETCH = {"X-Meta-Fetch": "1"}

UNICODE_NAME = "Quarterly report — Ärger & Übermut 2024 (final).txt"
USER_META = {"OwnerName": "Ann", "mixedCASEKey": "Value With Spaces", "unicode": "naïve café ☕"}


def payload(n, seed=b"x"):
    h = hashlib.sha256(seed).digest()
    out = bytearray()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def hdr_text(h, key):
    """A header value that may carry raw UTF-8 (http.client decodes it as latin-1)."""
    v = h.get(key)
    if v is None:
        return None
    try:
        return v.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return v


def sha(b):
    return hashlib.sha256(b).hexdigest()




class S3Base(S3TestCase):
    def setUp(self):
        super().setUp()
        self.moto = self.start_moto()
        self.bucket = self.new_bucket(self.moto)

    # ------------------------------------------------------------ helpers
    def put_ok(self, node, oid, body, level=1, name=None, **kw):
        # non-ASCII names go as raw UTF-8 header bytes (http.client would use latin-1)
        if isinstance(name, str):
            name = name.encode("utf-8")
        st, h, b = node.put(oid, body, level=level, name=name, **kw)
        self.assertEqual(st, 200, "PUT %s level %d: %d %r" % (oid, level, st, b[:400]))
        return h

    def s3_object(self, key):
        obj = self.moto.client().get_object(Bucket=self.bucket, Key=key)
        return obj, obj["Body"].read()

    def meta_json(self, node, oid):
        st, _h, js = node.meta(oid)
        self.assertEqual(st, 200, "meta %s" % oid)
        return js

    def stats(self, node):
        st, _h, b = node.request("GET", "/api/v1/stats")
        self.assertEqual(st, 200)
        return json.loads(b)

    def assert_s3_metadata(self, key, body, name, level, user_meta, node_meta):
        obj, data = self.s3_object(key)
        self.assertEqual(sha(data), sha(body), "bytes in the bucket differ")
        self.assertEqual(len(data), len(body))
        md = obj["Metadata"]
        for k in ("name", "level", "timestamp", "version", "etag", "user-meta"):
            self.assertIn(k, md, "x-amz-meta-%s missing: %r" % (k, md))
        dec = {k: urllib.parse.unquote(v) for k, v in md.items()}
        self.assertEqual(dec["name"], name)
        self.assertEqual(dec["level"], str(level))
        self.assertEqual(dec["timestamp"], str(node_meta["timestamp"]))
        # the bucket has the HLC stamp in decimal, meta JSON in hex: same number
        self.assertEqual(int(dec["version"], 10), int(str(node_meta["version"]), 16))
        self.assertEqual(dec["etag"].strip('"'), node_meta["etag"].strip('"'))
        self.assertEqual(json.loads(dec["user-meta"]), user_meta)
        self.assertEqual(obj["ContentType"], node_meta["content_type"])
        return obj


class TestS3Mapping(S3Base):
    def test_fixture_checks_signatures(self):
        """Sanity: moto really checks signatures (otherwise the node's signing is untested)."""
        bad = self.moto.client(secret_key="definitely-wrong-secret")
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            bad.list_objects_v2(Bucket=self.bucket)
        self.assertIn(cm.exception.response["Error"]["Code"], ("SignatureDoesNotMatch", "403"))

    def test_level1_and_level2_put_store_object_and_metadata(self):
        node = self.start_s3_node(self.moto, self.bucket)
        cases = [
            (1, UNICODE_NAME, USER_META, payload(70000, b"l1"), "text/plain"),
            (2, "holiday photo.jpg", {"OwnerName": "Ann"}, payload(1234, b"l2"), "image/jpeg"),
            (1, "no-meta.bin", None, b"", "application/octet-stream"),
        ]
        for level, name, um, body, ctype in cases:
            with self.subTest(level=level, name=name):
                oid = node.new_id()
                h = self.put_ok(node, oid, body, level=level, name=name, user_meta=um)
                self.assertEqual(h.get("x-meta-consistencylevel"), str(level))
                m = self.meta_json(node, oid)
                self.assertEqual(m["cold"], "stored", m)
                self.assertTrue(m["content_type"].startswith(ctype), m)
                self.assert_s3_metadata(oid, body, name, level, um or {}, m)

    def test_level0_put_does_not_touch_bucket(self):
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        self.put_ok(node, oid, b"local only", level=0, name="a.txt")
        self.assertEqual(self.meta_json(node, oid)["cold"], "none")
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))

    def test_raise_level_uploads_to_bucket(self):
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        body = payload(9000, b"raise")
        self.put_ok(node, oid, body, level=0, name="raise me.txt", user_meta={"OwnerName": "Ann"})
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))
        st, _h, b = node.request("POST", "/api/v1/meta/" + oid, headers={"X-Meta-ConsistencyLevel": "1"})
        self.assertEqual(st, 200, b[:300])
        m = self.meta_json(node, oid)
        self.assertEqual((m["consistency"], m["cold"]), (1, "stored"), m)
        self.assert_s3_metadata(oid, body, "raise me.txt", 1, {"OwnerName": "Ann"}, m)

    def test_metadata_s3_cannot_keep_is_refused_before_the_body(self):
        # S3 keeps 2 KB of user metadata; percent-encoded (spaces and
        # punctuation take three bytes each), 1,400 bytes of prose take more.
        # Acknowledged at level 1, the upload would fail for good.
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        prose = {"description": "a long line of words, with spaces; " * 40}
        resp = node.put(oid, b"body", level=1, name="big meta.txt", user_meta=prose)
        js = self.assertJsonError(resp, 400, "bad_request")
        self.assertIn("2048 bytes of object metadata", js["error"])
        self.assertEqual(node.get(oid)[0], 404)
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))
        # Level 0 never goes to S3: taken. Raising it is refused the same way.
        self.put_ok(node, oid, b"body", level=0, name="big meta.txt", user_meta=prose)
        self.assertJsonError(node.request("POST", "/api/v1/meta/" + oid,
                                          headers={"X-Meta-ConsistencyLevel": "1"}),
                             400, "bad_request")
        self.assertEqual(self.meta_json(node, oid)["consistency"], 0)
        # What fits goes up.
        fits = {"description": "a long line of words, with spaces; " * 10}
        oid2 = node.new_id()
        self.put_ok(node, oid2, b"body", level=1, name="fits.txt", user_meta=fits)
        self.assertEqual(self.meta_json(node, oid2)["cold"], "stored")

    def test_overwrite_replaces_bucket_copy(self):
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        self.put_ok(node, oid, b"version one", level=1, name="one.txt", user_meta={"V": "1"})
        self.put_ok(node, oid, b"version two!", level=1, name="two.json", user_meta={"V": "2"})
        m = self.meta_json(node, oid)
        self.assert_s3_metadata(oid, b"version two!", "two.json", 1, {"V": "2"}, m)

    def test_stats_and_metrics_show_cold_store(self):
        node = self.start_s3_node(self.moto, self.bucket)
        _st, _h, m0 = node.request("GET", "/metrics")
        oid = node.new_id()
        self.put_ok(node, oid, payload(5000), level=1, name="c.bin")
        st, h, m1 = node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        cold0 = {l.split()[0]: l.split()[-1] for l in m0.decode().splitlines()
                 if l and not l.startswith("#") and "cold" in l.split()[0]}
        cold1 = {l.split()[0]: l.split()[-1] for l in m1.decode().splitlines()
                 if l and not l.startswith("#") and "cold" in l.split()[0]}
        self.assertTrue(cold1, "no cold-store metric in /metrics:\n%s" % m1.decode()[:3000])
        # One level-1 PUT: exactly one upload counted, no error, nothing pending.
        puts = "objstore_cold_puts_total"
        self.assertEqual(float(cold1[puts]) - float(cold0.get(puts, 0)), 1.0, cold1)
        self.assertEqual(float(cold1["objstore_cold_put_errors_total"]), 0.0, cold1)
        self.assertEqual(float(cold1['objstore_cold_pending{op="upload"}']), 0.0, cold1)
        s = self.stats(node)
        self.assertIn("pending_uploads", s)
        self.assertEqual(s["pending_uploads"], 0)
        self.assertIn("cold_fetches", s)


class TestS3Fetch(S3Base):
    def test_wiped_node_fetches_with_x_meta_fetch_only(self):
        node = self.start_s3_node(self.moto, self.bucket)
        objs = {}
        for level, name, um, n in ((1, UNICODE_NAME, USER_META, 300000),
                                   (2, "pic of me.png", {"OwnerName": "Ann"}, 4096)):
            oid = node.new_id()
            body = payload(n, name.encode())
            self.put_ok(node, oid, body, level=level, name=name, user_meta=um)
            st, h, _ = node.get(oid)
            self.assertEqual(st, 200)
            objs[oid] = (level, name, um, body, h.get("content-type"), h.get("etag"),
                         h.get("last-modified"), self.meta_json(node, oid)["timestamp"])
        self.wipe_and_restart(node)
        for oid, (level, name, um, body, ctype, etag, lastmod, ts) in objs.items():
            with self.subTest(oid=oid, level=level):
                st, h, b = node.get(oid)
                self.assertEqual(st, 404, "GET of a wiped id without X-Meta-Fetch must be 404: %r" % b[:200])
                self.assertNotEqual(h.get("x-meta-fetched"), "true")
                mark = self.moto.mark()
                st, h, b = node.get(oid, headers=FETCH)
                self.assertEqual(st, 200, b[:300])
                self.assertEqual(h.get("x-meta-fetched"), "true")
                self.assertEqual(sha(b), sha(body))
                self.assertEqual(h.get("content-length"), str(len(body)))
                self.assertEqual(hdr_text(h, "x-meta-name"), name,
                                 "X-Meta-Name %r" % h.get("x-meta-name"))
                self.assertEqual(h.get("content-type"), ctype)
                self.assertEqual(h.get("x-meta-consistencylevel"), str(level))
                self.assertEqual(json.loads(hdr_text(h, "x-meta-usermeta") or "null"), um)
                self.assertEqual(h.get("etag"), etag)
                self.assertEqual(h.get("last-modified"), lastmod)
                self.assertEqual(self.moto.count("GET", "/%s/%s" % (self.bucket, oid), since=mark), 1)
                m = self.meta_json(node, oid)
                self.assertEqual(m["timestamp"], ts, "creation timestamp not restored")
                self.assertEqual(m["name"], name)
                self.assertEqual(m["consistency"], level)
                self.assertEqual(m["user_meta"], um)
                self.assertEqual(m["cold"], "stored")
                self.assertTrue(m["local_body"])
                # now local: served without S3 and without the Fetched flag
                mark = self.moto.mark()
                st, h, b = node.get(oid)
                self.assertEqual(st, 200)
                self.assertNotEqual(h.get("x-meta-fetched"), "true")
                self.assertEqual(sha(b), sha(body))
                self.assertEqual(self.moto.count("GET", "/%s/%s" % (self.bucket, oid), since=mark), 0)

    def test_fetch_of_id_not_in_bucket_is_404(self):
        node = self.start_s3_node(self.moto, self.bucket)
        from harness import make_ulid
        st, h, b = node.get(make_ulid(), headers=FETCH)
        self.assertJsonError((st, h, b), 404)

    def test_50_concurrent_cold_gets_cause_one_s3_get(self):
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        body = payload(4 * MiB, b"single-flight")
        self.put_ok(node, oid, body, level=1, name="sf.bin")
        self.wipe_and_restart(node)
        n = 50
        barrier = threading.Barrier(n)
        results = [None] * n
        mark = self.moto.mark()

        def worker(i):
            try:
                barrier.wait(timeout=20)
                conn = http.client.HTTPConnection(HOST, node.public_port, timeout=60)
                try:
                    conn.request("GET", "/api/v1/get/" + oid, headers=FETCH)
                    r = conn.getresponse()
                    data = r.read()
                    results[i] = (r.status, sha(data), len(data))
                finally:
                    conn.close()
            except Exception as e:  # noqa: BLE001
                results[i] = ("exception", repr(e), 0)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        self.assertFalse(any(t.is_alive() for t in threads), "GETs hung")
        bad = [r for r in results if r != (200, sha(body), len(body))]
        self.assertFalse(bad, "%d of %d concurrent GETs wrong: %r" % (len(bad), n, bad[:5]))
        # moto logs a request once it has answered it: wait for the line, then for
        # any second one.
        def key_gets():
            return self.moto.count("GET", "/%s/%s" % (self.bucket, oid), since=mark)
        self.wait_for(lambda: key_gets() >= 1, 10, "moto's log of the GET")
        time.sleep(0.2)
        gets = key_gets()
        self.assertEqual(gets, 1, "S3 GETs of the key for %d concurrent misses: %r"
                         % (n, [r for r in self.moto.requests()[mark:] if oid in r[1]]))

    def evict_bodies(self, node):
        """Restart `node` without its bodies, journal kept: every object is known
        and its body in the bucket only (as after an eviction)."""
        node.stop()
        for dirpath, _d, files in os.walk(node.files_dir):
            for f in files:
                os.unlink(os.path.join(dirpath, f))
        node.start(timeout=15.0)

    def test_range_ahead_of_a_cold_fetch_is_read_on_its_own(self):
        """A GET of a range far past the start of a cold body is answered by a
        ranged S3 GET of that range, while the body's own fetch fills the cache."""
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        body = payload(6 * MiB, b"range-ahead")
        self.put_ok(node, oid, body, level=1, name="table.parquet")
        self.evict_bodies(node)
        path = "/%s/%s" % (self.bucket, oid)
        mark = self.moto.mark()
        first, last = 5 * MiB + 7, 6 * MiB - 2
        st, h, b = node.get(oid, headers={"Range": "bytes=%d-%d" % (first, last)})
        self.assertEqual(st, 206, b[:300])
        self.assertEqual(b, body[first:last + 1])
        self.assertEqual(h.get("content-range"), "bytes %d-%d/%d" % (first, last, len(body)))
        self.assertEqual(h.get("x-meta-fetched"), "true")
        # The body's fetch ran beside it: the next GET is a hit, whole and right.
        self.wait_for(lambda: self.meta_json(node, oid)["local_body"], 20, "the body's fetch to commit")
        self.wait_for(lambda: self.moto.count("GET", path, since=mark) == 2, 10, "moto's log")
        self.assertEqual(self.moto.count("GET", path, since=mark, status=206), 1,
                         "ranged S3 GETs: %r" % [r for r in self.moto.requests()[mark:] if oid in r[1]])
        mark = self.moto.mark()
        st, h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertNotEqual(h.get("x-meta-fetched"), "true")
        self.assertEqual(self.moto.count("GET", path, since=mark), 0)
        self.assertEqual(self.stats(node)["cold_range_reads"], 1)

    def test_range_ahead_cut_mid_body_resumes_where_it_stopped(self):
        """A range read far ahead of the body's fetch whose S3 answer is cut
        mid-body goes on from its first missing byte: the client gets the
        range whole in one 206."""
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        body = payload(6 * MiB, b"range-resume")
        self.put_ok(node, oid, body, level=1, name="video.mp4")
        self.evict_bodies(node)
        first, last = 2 * MiB + 5, 5 * MiB + 99
        # the range's answer and the body's fetch, each cut once after 1 MiB
        proxy.cut_after(2, 1 * MiB, "down")
        st, h, b = node.get(oid, headers={"Range": "bytes=%d-%d" % (first, last)})
        self.assertEqual(st, 206, b[:300])
        self.assertEqual(sha(b), sha(body[first:last + 1]))
        self.assertEqual(h.get("content-range"), "bytes %d-%d/%d" % (first, last, len(body)))
        self.assertEqual(self.stats(node)["cold_range_reads"], 1)
        self.wait_for(lambda: self.meta_json(node, oid)["local_body"], 20, "the body's fetch")
        self.assertEqual(proxy.cut, 2, "the answers were not cut")
        self.assertEqual(self.stats(node)["cold_fetch_resumes"], 2)
        st, _h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))

    def test_fetch_cut_mid_body_resumes_where_it_stopped(self):
        """S3's answer is cut mid-body twice: the fetch goes on with ranged GETs
        from the first missing byte, and the client gets the whole body in one
        answer. A store that cuts every answer fails the fetch after a bounded
        number of resumes, and nothing partial is kept."""
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        body = payload(3 * MiB, b"resume")
        self.put_ok(node, oid, body, level=1)
        self.evict_bodies(node)
        path = "/%s/%s" % (self.bucket, oid)
        mark = self.moto.mark()
        proxy.cut_after(2, 1 * MiB, "down")
        st, _h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertEqual(proxy.cut, 2, "the answers were not cut")
        self.assertEqual(self.stats(node)["cold_fetch_resumes"], 2)
        self.wait_for(lambda: self.moto.count("GET", path, since=mark) == 3, 10, "moto's log")
        self.assertEqual(self.moto.count("GET", path, since=mark, status=206), 2)
        self.wait_for(lambda: self.meta_json(node, oid)["local_body"], 20, "the fetch to commit")
        st, _h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))

        oid2 = node.new_id()
        body2 = payload(2 * MiB, b"cut-always")
        self.put_ok(node, oid2, body2, level=1)
        self.evict_bodies(node)
        proxy.cut_after(1000, 256 * 1024, "down")
        t0 = time.monotonic()
        try:
            st, _h, b = node.get(oid2)
            self.assertNotEqual(st, 200, "a 200 from a store that cuts every answer")
        except (OSError, http.client.HTTPException):
            pass  # the header went out with the first bytes; the rest never came
        self.assertLess(time.monotonic() - t0, 30)
        self.assertTrue(node.alive())
        # the first answer and three resumes (the bound), each cut
        self.assertEqual(self.stats(node)["cold_fetch_resumes"], 3)
        self.assertEqual(proxy.cut, 4)
        self.assertFalse(self.meta_json(node, oid2)["local_body"])
        proxy.cut_after(0, 0)
        st, _h, b = node.get(oid2)
        self.assertEqual((st, sha(b)), (200, sha(body2)))

    def test_large_miss_comes_in_parts_over_parallel_connections(self):
        """An evicted object larger than one part comes back over parallel ranged
        GETs, one per part (S3 held to 2 MiB/s per connection, as a real
        bucket's per-connection rate is limited), and the client gets the whole
        body in one answer."""
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint,
                                  extra=("--cold-fetch-part-size", "1M",
                                         "--cold-fetch-streams", "4"))
        oid = node.new_id()
        body = payload(6 * MiB + 12345, b"parts")
        self.put_ok(node, oid, body, level=1)
        self.evict_bodies(node)
        path = "/%s/%s" % (self.bucket, oid)
        proxy.slow(2 * MiB)
        mark = self.moto.mark()
        st, _h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        # (connections, not requests: the S3 client's pool keeps idle ones open)
        self.assertGreaterEqual(proxy.most_open, 3, "the parts did not come at once")
        # seven parts of 1 MiB (the last 12,345 bytes): the first, then six beside it
        self.assertEqual(self.stats(node)["cold_fetch_parts"], 6)
        self.wait_for(lambda: self.moto.count("GET", path, since=mark) == 7, 10, "moto's log")
        self.assertEqual(self.moto.count("GET", path, since=mark, status=206), 7)
        self.wait_for(lambda: self.meta_json(node, oid)["local_body"], 20, "the fetch to commit")
        proxy.slow(None)
        mark = self.moto.mark()
        st, _h, b = node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertEqual(self.moto.count("GET", path, since=mark), 0)

    def test_range_near_the_start_waits_for_the_fetch(self):
        """Ranges within the first MiB past what the fetch has, a suffix of a small
        body, HEAD and a stale If-Range make no second S3 request."""
        node = self.start_s3_node(self.moto, self.bucket)
        big, small = node.new_id(), node.new_id()
        big_body, small_body = payload(3 * MiB, b"near"), payload(300 * 1024, b"small")
        self.put_ok(node, big, big_body, level=1)
        self.put_ok(node, small, small_body, level=1)
        etag = node.get(big)[1].get("etag")
        cases = [(big, {"Range": "bytes=1000-1999"}, 206, big_body[1000:2000]),
                 (small, {"Range": "bytes=-1000"}, 206, small_body[-1000:]),
                 (big, {"Range": "bytes=%d-" % (2 * MiB), "If-Range": '"stale"'}, 200, big_body)]
        for oid, headers, want_status, want in cases:
            with self.subTest(headers=headers):
                self.evict_bodies(node)
                mark = self.moto.mark()
                st, _h, b = node.get(oid, headers=headers)
                self.assertEqual((st, sha(b)), (want_status, sha(want)))
                self.wait_for(lambda: self.meta_json(node, oid)["local_body"], 20, "the fetch")
                time.sleep(0.2)  # moto logs a request once it has answered it
                self.assertEqual(self.moto.count("GET", "/%s/%s" % (self.bucket, oid), since=mark), 1)
        self.evict_bodies(node)
        st, h, _b = node.request("HEAD", "/api/v1/get/" + big,
                                 headers={"Range": "bytes=%d-" % (2 * MiB), "If-Range": etag})
        self.assertEqual(st, 206)
        self.assertEqual(self.stats(node)["cold_range_reads"], 0)

    def test_range_ahead_comes_before_a_slow_fetch(self):
        """With S3 at 1 MiB/s, the last 64 KiB of an 8 MiB body come in well
        under the ~7 s the body's fetch needs to reach them."""
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        body = payload(8 * MiB, b"slow")
        self.put_ok(node, oid, body, level=1)
        self.evict_bodies(node)
        proxy.slow(1 * MiB)
        t0 = time.monotonic()
        st, _h, b = node.get(oid, headers={"Range": "bytes=-65536"})
        took = time.monotonic() - t0
        self.assertEqual((st, b), (206, body[-65536:]))
        self.assertLess(took, 3.5, "the range waited for the body's fetch")
        proxy.slow(None)  # cuts the slow fetch, which resumes at full speed

        def whole_body_sha():
            # Should the fetch fail instead (its resumes cut too), a GET that
            # joined it gets the header and then a closed connection: retried.
            try:
                return sha(node.get(oid)[2])
            except (OSError, http.client.HTTPException):
                return None

        self.wait_for(lambda: whole_body_sha() == sha(body), 30, "a whole GET after the cut")

    def test_concurrent_fetches_while_s3_down_all_fail_cleanly(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        self.put_ok(node, oid, payload(10000), level=1, name="x.bin")
        self.wipe_and_restart(node)
        proxy.down()
        n = 20
        results = [None] * n

        def worker(i):
            try:
                results[i] = node.get(oid, headers=FETCH)
            except Exception as e:  # noqa: BLE001
                results[i] = ("exception", repr(e), b"")

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        elapsed = time.monotonic() - t0
        self.assertFalse(any(t.is_alive() for t in threads), "GETs hung with S3 down")
        for r in results:
            self.assertNotEqual(r[0], "exception", r)
            js = self.assertJsonError(r, (502, 503, 504))
        self.assertLess(elapsed, 60)
        self.assertTrue(node.alive())
        # S3 back: the same GET works, the failure was not cached as "absent"
        proxy.up()
        st, h, b = node.get(oid, headers=FETCH)
        self.assertEqual(st, 200, b[:300])
        self.assertEqual(h.get("x-meta-fetched"), "true")


class TestS3Delete(S3Base):
    def test_delete_removes_from_bucket_and_is_not_revived(self):
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        self.put_ok(node, oid, payload(2000), level=1, name="d.txt")
        self.assertIsNotNone(self.head_or_none(self.moto, self.bucket, oid))
        st, h, b = node.delete(oid)
        self.assertEqual(st, 200, b[:300])
        self.assertEqual(h.get("x-meta-deleted"), "true")
        self.wait_for(lambda: self.head_or_none(self.moto, self.bucket, oid) is None, 15,
                      "the object to be deleted from the bucket")
        # tombstone still on the node: 404 deleted even with X-Meta-Fetch, no S3 GET
        mark = self.moto.mark()
        st, h, b = node.get(oid, headers=FETCH)
        self.assertJsonError((st, h, b), 404, "deleted")
        self.assertEqual(h.get("x-meta-deleted"), "true")
        self.assertEqual(self.moto.count("GET", "/%s/%s" % (self.bucket, oid), since=mark), 0)
        m = self.meta_json(node, oid)
        self.assertTrue(m["deleted"])
        # restart: still deleted
        node.restart(timeout=15)
        st, h, b = node.get(oid, headers=FETCH)
        self.assertJsonError((st, h, b), 404, "deleted")
        self.assertEqual(h.get("x-meta-deleted"), "true")
        # wiped node: the bucket no longer has it
        self.wipe_and_restart(node)
        st, h, b = node.get(oid, headers=FETCH)
        self.assertJsonError((st, h, b), 404)
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))

    def test_delete_while_s3_down_reaches_bucket_later(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        self.put_ok(node, oid, payload(3000), level=1, name="dd.txt")
        proxy.down()
        st, h, b = node.delete(oid)
        self.assertEqual(st, 200, b[:300])
        self.assertEqual(h.get("x-meta-deleted"), "true")
        st, h, b = node.get(oid, headers=FETCH)
        self.assertEqual(st, 404)
        self.assertEqual(h.get("x-meta-deleted"), "true")
        # survives a restart while S3 is still down
        node.restart(timeout=15)
        time.sleep(1.5)
        self.assertIsNotNone(self.head_or_none(self.moto, self.bucket, oid))
        proxy.up()
        self.wait_for(lambda: self.head_or_none(self.moto, self.bucket, oid) is None, 30,
                      "the queued delete to reach the bucket")
        st, h, b = node.get(oid, headers=FETCH)
        self.assertEqual(st, 404)
        self.assertEqual(h.get("x-meta-deleted"), "true")


class TestS3Outage(S3Base):
    def _put_during_outage(self, node, oid, body, level=1, name=None):
        t0 = time.monotonic()
        resp = node.put(oid, body, level=level, name=name)
        elapsed = time.monotonic() - t0
        js = self.assertJsonError(resp, 503, "cold_store_unavailable", "PUT %s with S3 down" % oid)
        self.assertLess(elapsed, 60, "PUT with S3 down took %.1f s" % elapsed)
        return js

    def _wait_drained(self, node, objs, timeout=45):
        def all_stored():
            return all(self.meta_json(node, oid).get("cold") == "stored" for oid in objs)
        self.wait_for(all_stored, timeout, "the upload queue to drain",
                      period=0.25)
        for oid, (body, name) in objs.items():
            obj, data = self.s3_object(oid)
            self.assertEqual(sha(data), sha(body), "bucket copy of %s differs" % oid)
            self.assertEqual(urllib.parse.unquote(obj["Metadata"].get("name", "")), name)
        self.wait_for(lambda: self.stats(node).get("pending_uploads") == 0, 10,
                      "stats pending_uploads == 0")

    def test_s3_down_during_puts_then_back(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        before = node.new_id()
        body0 = payload(1000, b"before")
        self.put_ok(node, before, body0, level=1, name="before.txt")
        proxy.down()
        objs = {}
        for i in range(4):
            oid = node.new_id()
            body = payload(50000 + i * 7777, b"outage%d" % i)
            name = "outage %d.txt" % i
            js = self._put_during_outage(node, oid, body, level=1 if i % 2 == 0 else 2, name=name)
            objs[oid] = (body, name)
        for oid, (body, name) in objs.items():
            st, h, b = node.get(oid)
            self.assertEqual(st, 200, "body of a 503'd PUT must stay readable: %r" % b[:200])
            self.assertEqual(sha(b), sha(body))
            m = self.meta_json(node, oid)
            self.assertEqual(m["cold"], "pending", m)
            self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))
        self.assertGreaterEqual(self.stats(node)["pending_uploads"], len(objs))
        # the object stored before the outage is still served locally
        st, _h, b = node.get(before)
        self.assertEqual((st, sha(b)), (200, sha(body0)))
        proxy.up()
        self._wait_drained(node, objs)
        self.assertTrue(node.alive())

    def test_slowdown_and_5xx_are_retried_with_backoff(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        for status, code in ((503, "SlowDown"), (500, "InternalError")):
            oid = node.new_id()
            body = payload(40000, code.encode())
            retries_before = self.stats(node)["cold_store"]["retries"]
            proxy.throttle(2, status, code)
            self.put_ok(node, oid, body, level=1, name="retry.bin")
            self.assertEqual(proxy.throttled, 2, "the node did not go through the injected errors")
            self.assertGreaterEqual(self.stats(node)["cold_store"]["retries"], retries_before + 2)
            self.assertEqual(self.meta_json(node, oid)["cold"], "stored")
            _obj, data = self.s3_object(oid)
            self.assertEqual(sha(data), sha(body))
        # An error S3 does not ask to retry (403) is not retried: one answer to
        # the upload's HEAD and one to the GET that names its cause, then 503.
        oid = node.new_id()
        proxy.throttle(5, 403, "AccessDenied")
        js = self.assertJsonError(node.put(oid, b"x", level=1), 503, "cold_store_unavailable")
        self.assertIn("AccessDenied", json.dumps(js))
        self.assertEqual(proxy.throttled, 2)
        proxy.throttle(0)

    def test_pending_uploads_survive_restart(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        proxy.down()
        objs = {}
        for i in range(3):
            oid = node.new_id()
            body = payload(20000 + i, b"restart%d" % i)
            name = "r%d.bin" % i
            self._put_during_outage(node, oid, body, name=name)
            objs[oid] = (body, name)
        node.restart(timeout=15)
        for oid, (body, _name) in objs.items():
            st, _h, b = node.get(oid)
            self.assertEqual((st, sha(b)), (200, sha(body)))
            self.assertEqual(self.meta_json(node, oid)["cold"], "pending")
        self.assertGreaterEqual(self.stats(node)["pending_uploads"], len(objs))
        # a kill -9 too, still with S3 down
        node.kill9()
        node.start(timeout=15)
        self.assertGreaterEqual(self.stats(node)["pending_uploads"], len(objs))
        proxy.up()
        self._wait_drained(node, objs)
        # nothing lost: wipe and fetch everything back from the bucket
        self.wipe_and_restart(node)
        for oid, (body, name) in objs.items():
            st, h, b = node.get(oid, headers=FETCH)
            self.assertEqual((st, sha(b)), (200, sha(body)))
            self.assertEqual(hdr_text(h, "x-meta-name"), name)

    def test_delete_while_upload_pending_never_reaches_bucket(self):
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        proxy.down()
        oid = node.new_id()
        self._put_during_outage(node, oid, b"pending, then deleted", name="pd.txt")
        # a second pending object makes sure the retry loop runs after S3 is back
        other = node.new_id()
        self._put_during_outage(node, other, b"other pending", name="other.txt")
        st, h, _b = node.delete(oid)
        self.assertEqual((st, h.get("x-meta-deleted")), (200, "true"))
        proxy.up()
        self._wait_drained(node, {other: (b"other pending", "other.txt")})
        time.sleep(2)
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid),
                          "a deleted object was uploaded by the retry queue")
        self.assertEqual(self.moto.count("PUT", "/%s/%s" % (self.bucket, oid)), 0)
        st, h, _b = node.get(oid, headers=FETCH)
        self.assertEqual((st, h.get("x-meta-deleted")), (404, "true"))

    def test_put_with_hung_s3_answers_in_bounded_time(self):
        """S3 accepts connections but never answers (black hole). The level-1 PUT must
        still answer 503 in bounded time (here: within the node's own 60 s default
        --idle-timeout), and the node keeps serving level 0 meanwhile."""
        proxy = self.start_proxy(self.moto.port)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        proxy.down(mode="hang")
        oid = node.new_id()
        out = {}

        def put():
            t0 = time.monotonic()
            try:
                out["resp"] = node.request("POST", "/api/v1/put", body=b"hung",
                                           headers={"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": "1",
                                                    "Content-Length": "4"}, timeout=70)
            except Exception as e:  # noqa: BLE001
                out["resp"] = ("exception", repr(e), b"")
            out["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=put, daemon=True)
        t.start()
        time.sleep(1)
        z = node.new_id()
        self.put_ok(node, z, b"level zero during the hang", level=0, name="z.txt")
        self.assertEqual(node.get(z)[0], 200)
        t.join(timeout=75)
        self.assertFalse(t.is_alive())
        self.assertNotEqual(out["resp"][0], "exception",
                            "no answer to a level-1 PUT within 70 s with a hung S3: %r" % (out["resp"],))
        self.assertJsonError(out["resp"], 503, "cold_store_unavailable")
        self.assertLess(out["elapsed"], 65)
        st, _h, b = node.get(oid)
        self.assertEqual((st, b), (200, b"hung"))
        proxy.up()
        self._wait_drained(node, {oid: (b"hung", "")})

    def test_node_starts_while_s3_unreachable(self):
        proxy = self.start_proxy(self.moto.port, up=False)
        node = self.start_s3_node(self.moto, self.bucket, endpoint=proxy.endpoint)
        oid = node.new_id()
        self.put_ok(node, oid, b"level zero while S3 is down", level=0, name="z.txt")
        st, _h, b = node.get(oid)
        self.assertEqual((st, b), (200, b"level zero while S3 is down"))
        self.assertEqual(self.stats(node)["objects"], 1)
        st, _h, _b = node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        proxy.up()
        oid1 = node.new_id()
        self.put_ok(node, oid1, b"level one after S3 came up", level=1, name="o.txt")
        _obj, data = self.s3_object(oid1)
        self.assertEqual(data, b"level one after S3 came up")


class TestS3Credentials(S3Base):
    def _level0_works(self, node):
        oid = node.new_id()
        self.put_ok(node, oid, b"zero", level=0, name="z.txt")
        st, _h, b = node.get(oid)
        self.assertEqual((st, b), (200, b"zero"))

    def _log_text(self, node):
        with open(node.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_wrong_secret_key(self):
        node = self.start_s3_node(self.moto, self.bucket,
                                  credentials=(self.moto.access_key, "wrong" + self.moto.secret_key[5:]))
        self._level0_works(node)
        oid = node.new_id()
        js = self.assertJsonError(node.put(oid, b"one", level=1, name="a.txt"), 503, "cold_store_unavailable")
        self.assertRegex(js["error"], r"SignatureDoesNotMatch|403", js)
        self.assertRegex(self._log_text(node), r"SignatureDoesNotMatch")
        st, _h, b = node.get(oid)
        self.assertEqual((st, b), (200, b"one"))
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))
        self._level0_works(node)

    def test_wrong_secret_key_fetch_is_503_not_404(self):
        good = self.start_s3_node(self.moto, self.bucket, name="good")
        oid = good.new_id()
        self.put_ok(good, oid, b"in the bucket", level=1, name="b.txt")
        bad = self.start_s3_node(self.moto, self.bucket, name="bad",
                                 credentials=(self.moto.access_key, "wrong" + self.moto.secret_key[5:]))
        js = self.assertJsonError(bad.get(oid, headers=FETCH), 503, "cold_store_unavailable",
                                  "an S3 403 must not look like 'no such object'")
        self.assertRegex(js["error"], r"SignatureDoesNotMatch|403")

    def test_unknown_access_key(self):
        node = self.start_s3_node(self.moto, self.bucket, credentials=("AKIAUNKNOWNKEY000000", "x" * 40))
        self._level0_works(node)
        js = self.assertJsonError(node.put(node.new_id(), b"one", level=1), 503, "cold_store_unavailable")
        self.assertRegex(js["error"], r"InvalidAccessKeyId|403", js)
        self.assertRegex(self._log_text(node), r"InvalidAccessKeyId")

    def test_no_credentials_at_all(self):
        node = self.start_s3_node(self.moto, self.bucket, credentials=None)
        self._level0_works(node)
        js = self.assertJsonError(node.put(node.new_id(), b"one", level=1), 503, "cold_store_unavailable")
        self.assertRegex(js["error"].lower(), r"credential", js)
        self.assertTrue(node.alive())

    def test_credentials_from_aws_files_in_home(self):
        node = self.start_s3_node(self.moto, self.bucket, credentials=None, start=False)
        os.makedirs(os.path.join(node.home, ".aws"), exist_ok=True)
        with open(os.path.join(node.home, ".aws", "credentials"), "w") as f:
            f.write("[default]\naws_access_key_id = bogus\naws_secret_access_key = bogus\n\n"
                    "[objstore]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (self.moto.access_key, self.moto.secret_key))
        node.env_set["AWS_PROFILE"] = "objstore"
        node.start(timeout=15)
        oid = node.new_id()
        self.put_ok(node, oid, b"from profile", level=1, name="p.txt")
        _obj, data = self.s3_object(oid)
        self.assertEqual(data, b"from profile")


class TestS3Tls(S3TestCase):
    """SPEC §4: an https endpoint, its certificate verified against --s3-ca-bundle
    (a private CA, as a MinIO in the same datacenter would have)."""

    def setUp(self):
        super().setUp()
        self.moto = self.start_moto(tls=True)
        self.bucket = self.new_bucket(self.moto)

    def test_round_trip_over_https_with_a_private_ca(self):
        node = self.start_s3_node(self.moto, self.bucket, extra=("--s3-ca-bundle", self.moto.ca_file))
        oid = node.new_id()
        body = payload(300_000, b"tls")
        st, _h, b = node.put(oid, body, level=1, name="t.bin")
        self.assertEqual(st, 200, b[:300])
        data = self.moto.client().get_object(Bucket=self.bucket, Key=oid)["Body"].read()
        self.assertEqual(sha(data), sha(body))
        self.wipe_and_restart(node)  # only the bucket has it now
        st, h, b = node.get(oid, headers=FETCH)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertEqual(h.get("x-meta-fetched"), "true")

    def test_an_unknown_authority_is_refused(self):
        # The system's store does not know the self-signed certificate: the
        # transfer fails as any S3 outage does (503, the upload queued), never
        # going on unverified.
        node = self.start_s3_node(self.moto, self.bucket)
        oid = node.new_id()
        self.assertJsonError(node.put(oid, b"kept here", level=1), 503, "cold_store_unavailable")
        self.assertEqual(node.get(oid)[2], b"kept here")
        self.assertIsNone(self.head_or_none(self.moto, self.bucket, oid))

    def test_a_missing_bundle_file_stops_the_start(self):
        node = self.start_s3_node(self.moto, self.bucket, start=False,
                                  extra=("--s3-ca-bundle", os.path.join(self.moto.dir, "none.pem")))
        self.assertStartRefused(node, "is not a readable file")

    def test_a_machine_wide_bundle_does_not_concern_a_node_without_a_bucket(self):
        node = self.start_node(start=False)
        node.extra_env = {"AWS_CA_BUNDLE": os.path.join(self.moto.dir, "none.pem")}
        node.start()
        self.assertEqual(node.put(node.new_id(), b"one", level=1)[0], 200)


class TestS3BigObject(S3Base):
    def test_multipart_round_trip_bounded_rss(self):
        node = self.start_s3_node(self.moto, self.bucket,
                                  extra=("--s3-multipart-threshold", "8M", "--s3-part-size", "8M"))
        oid = node.new_id()
        chunk = payload(MiB, b"big")
        nchunks = BIG_SIZE // MiB

        def gen():
            for i in range(nchunks):
                yield struct.pack(">Q", i) + chunk[8:]

        want = hashlib.sha256()
        for c in gen():
            want.update(c)
        want = want.hexdigest()

        sampler = RssSampler(node)
        sampler.start()
        mark = self.moto.mark()
        try:
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=300)
            conn.putrequest("POST", "/api/v1/put")
            for k, v in (("X-Meta-ID", oid), ("X-Meta-ConsistencyLevel", "1"),
                         ("X-Meta-Name", "big.bin"), ("Content-Length", str(nchunks * MiB))):
                conn.putheader(k, v)
            conn.endheaders()
            for c in gen():
                conn.send(c)
            r = conn.getresponse()
            rb = r.read()
            conn.close()
        finally:
            sampler.stop()
        self.assertEqual(r.status, 200, rb[:300])
        self.assertGreater(sampler.samples, 5)
        if os.environ.get("OBJSTORE_S3_VERBOSE"):
            sys.stderr.write("\nPUT of %d MiB: max RSS %d KiB over %d samples\n"
                             % (BIG_SIZE // MiB, sampler.max_kib, sampler.samples))
        self.assertLess(sampler.max_kib, RSS_LIMIT_KIB, "node RSS %d KiB during a %d MiB PUT"
                        % (sampler.max_kib, BIG_SIZE // MiB))
        reqs = self.moto.requests()[mark:]
        self.assertTrue(any(m == "POST" and "uploads" in p.partition("?")[2] for m, p, _ in reqs),
                        "no CreateMultipartUpload (?uploads) in moto's log")
        parts = self.moto.count("PUT", query="partNumber=", since=mark)
        self.assertGreaterEqual(parts, BIG_SIZE // (8 * MiB))
        self.assertEqual(self.moto.count("PUT", query="partNumber=", since=mark, status=200), parts)
        # the bucket's copy, streamed
        obj = self.moto.client().get_object(Bucket=self.bucket, Key=oid)
        self.assertEqual(obj["ContentLength"], nchunks * MiB)
        h = hashlib.sha256()
        for c in obj["Body"].iter_chunks(MiB):
            h.update(c)
        self.assertEqual(h.hexdigest(), want, "bucket copy differs")
        del obj
        # back from the bucket into a wiped node
        self.wipe_and_restart(node)
        sampler = RssSampler(node)
        sampler.start()
        try:
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=300)
            conn.request("GET", "/api/v1/get/" + oid, headers=FETCH)
            r = conn.getresponse()
            h = hashlib.sha256()
            n = 0
            while True:
                c = r.read(MiB)
                if not c:
                    break
                n += len(c)
                h.update(c)
            conn.close()
        finally:
            sampler.stop()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("X-Meta-Fetched"), "true")
        self.assertEqual(n, nchunks * MiB)
        self.assertEqual(h.hexdigest(), want, "fetched copy differs")
        if os.environ.get("OBJSTORE_S3_VERBOSE"):
            sys.stderr.write("fetch of %d MiB: max RSS %d KiB over %d samples\n"
                             % (BIG_SIZE // MiB, sampler.max_kib, sampler.samples))
        self.assertLess(sampler.max_kib, RSS_LIMIT_KIB, "node RSS %d KiB during the fetch" % sampler.max_kib)
        # committed locally, hash checked: a second GET is local and identical
        st, hd, _b = node.request("HEAD", "/api/v1/get/" + oid)
        self.assertEqual(st, 200)
        self.assertEqual(hd.get("content-length"), str(nchunks * MiB))
        self.assertTrue(self.meta_json(node, oid)["local_body"])


if __name__ == "__main__":
    unittest.main()
