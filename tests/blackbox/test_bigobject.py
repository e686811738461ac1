"""A 1 GiB object streams through the node in both directions with bounded memory."""

import hashlib
import http.client
import os
import shutil
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, NodeTestCase, RssSampler  # noqa: E402

GiB = 1024 ** 3
SIZE = int(os.environ.get("OBJSTORE_BIG_BYTES", GiB))  # smaller only to debug the test itself
CHUNK = 1024 * 1024
RSS_LIMIT_KIB = 64 * 1024
BIG_DIR = os.environ.get("OBJSTORE_BIG_TMP", "/work/tmp-tests")


def block():
    # a fixed pseudo-random 1 MiB block; each chunk gets its index stamped in so that
    # no two chunks are equal (a dedup or offset bug changes the hash)
    h = hashlib.sha256(b"objstore-big").digest()
    out = bytearray()
    while len(out) < CHUNK:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:CHUNK])


BLOCK = block()


def chunk_at(i):
    return struct.pack(">Q", i) + BLOCK[8:]




def on_tmpfs(path):
    path = os.path.realpath(path)
    best, fstype = "", None
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt, typ = parts[1], parts[2]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, typ
    return fstype in ("tmpfs", "ramfs")


class BigObjectTest(NodeTestCase):

    def test_1gib_streaming_put_get(self):
        os.makedirs(BIG_DIR, exist_ok=True)
        if on_tmpfs(BIG_DIR):
            self.skipTest("%s is a tmpfs; set OBJSTORE_BIG_TMP to a real disk" % BIG_DIR)
        free = shutil.disk_usage(BIG_DIR).free
        if free < 3 * GiB:
            self.skipTest("need 3 GiB free under %s, have %d MiB" % (BIG_DIR, free // 2 ** 20))
        node = self.start_node(base_dir=BIG_DIR)
        oid = node.new_id()
        n_chunks = SIZE // CHUNK
        t_start = time.monotonic()

        # ---- PUT, chunked transfer encoding from a generator
        sent_hash = hashlib.sha256()

        def gen():
            for i in range(n_chunks):
                c = chunk_at(i)
                sent_hash.update(c)
                yield c

        sampler = RssSampler(node)
        sampler.start()
        try:
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=120)
            conn.request("POST", "/api/v1/put", body=gen(),
                         headers={"X-Meta-ID": oid, "X-Meta-Name": "big.bin"})
            # (http.client frames a generator body with Transfer-Encoding: chunked itself)
            resp = conn.getresponse()
            put_body = resp.read()
            conn.close()
        finally:
            sampler.stop()
        put_rss = sampler.max_kib
        t_put = time.monotonic() - t_start
        self.assertEqual(resp.status, 200, put_body[:300])
        self.assertEqual(resp.getheader("X-Meta-Size"), str(SIZE))
        self.assertGreater(sampler.samples, 10)

        # ---- GET, streamed and hashed while reading
        sampler = RssSampler(node)
        sampler.start()
        got_hash = hashlib.sha256()
        got = 0
        t1 = time.monotonic()
        try:
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=120)
            conn.request("GET", "/api/v1/get/" + oid)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Length"), str(SIZE))
            while True:
                b = resp.read(CHUNK)
                if not b:
                    break
                got += len(b)
                got_hash.update(b)
            conn.close()
        finally:
            sampler.stop()
        get_rss = sampler.max_kib
        t_get = time.monotonic() - t1
        sys.stderr.write("\n%d MiB PUT %.1f s (max RSS %d KiB), GET %.1f s (max RSS %d KiB)\n"
                         % (SIZE >> 20, t_put, put_rss, t_get, get_rss))
        self.assertEqual(got, SIZE)
        self.assertEqual(got_hash.hexdigest(), sent_hash.hexdigest())
        self.assertLess(put_rss, RSS_LIMIT_KIB, "RSS during the 1 GiB PUT: %d KiB" % put_rss)
        self.assertLess(get_rss, RSS_LIMIT_KIB, "RSS during the 1 GiB GET: %d KiB" % get_rss)

        # ---- a Range near the end (offsets past 2^29, no 32-bit truncation)
        start = SIZE - 3 * CHUNK + 12345
        st, h, b = node.get(oid, headers={"Range": "bytes=%d-%d" % (start, start + 99)})
        self.assertEqual(st, 206)
        self.assertEqual(h.get("content-range"), "bytes %d-%d/%d" % (start, start + 99, SIZE))
        want = chunk_at(start // CHUNK)[start % CHUNK:start % CHUNK + 100]
        self.assertEqual(b, want)
        st, h, js = node.meta(oid)
        self.assertEqual(js["size"], SIZE)


if __name__ == "__main__":
    unittest.main()
