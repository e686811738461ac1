"""Capacity and eviction (SPEC.md §5, issue 5): the --max-size budget holds on disk under
concurrent PUTs and GETs; a budget full of level-0 bodies answers 507 and loses nothing;
an evicted body comes back from the cold store byte-identical; a restart keeps the
policy's idea of what is hot.

The files directory sits on its own tmpfs so that its used bytes (statvfs) are an atomic
snapshot of every body and temporary file; bodies are multiples of 4 KiB, the tmpfs page,
so the snapshot is exactly the sum of the file sizes."""

import hashlib
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (HOST, NodeTestCase, PeakSampler,  # noqa: E402
                     leftover_temp_files, mount_tmpfs, parse_responses, put_raw)

KiB = 1024
MiB = 1024 * KiB
PAGE = 4 * KiB


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def sha(b):
    return hashlib.sha256(b).hexdigest()


class EvictionTest(NodeTestCase):

    def node_on_tmpfs(self, *args, tmpfs_size="32m"):
        mnt = mount_tmpfs(self, tmpfs_size)
        files = os.path.join(mnt, "files")
        os.makedirs(files)
        return self.start_node(*args, files_dir=files), mnt

    def stats(self, node):
        st, _h, body = node.request("GET", "/api/v1/stats")
        self.assertEqual(st, 200)
        return json.loads(body)

    def put_ok(self, node, body, level=1):
        oid = node.new_id()
        self.assertOk(node.put(oid, body, level=level), "PUT level %d" % level)
        return oid

    def wait_until(self, cond, timeout=10.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.02)
        self.fail("timed out waiting for " + what)

    def local(self, node, oid):
        st, _h, js = node.meta(oid)
        self.assertEqual(st, 200)
        return js["local_body"]

    # ------------------------------------------------------------------ flags
    def test_flags_environment_and_bad_values(self):
        node = self.start_node(start=False)
        node.extra_env.update({"APP_MAX_SIZE": "3M", "APP_EVICTION": "sieve"})
        node.start()
        s = self.stats(node)["capacity"]
        self.assertEqual((s["max_bytes"], s["policy"]), (3 * MiB, "sieve"))
        node.stop()
        node.extra_env.clear()
        node.extra_args = ["--max-size", "1G", "--eviction", "none"]
        node.start()
        s = self.stats(node)["capacity"]
        self.assertEqual((s["max_bytes"], s["policy"]), (1 << 30, "none"))
        node.stop()
        for bad in (["--eviction", "mru"], ["--max-size", "12Q"]):
            node.extra_args = bad
            self.assertStartRefused(node, msg=str(bad))
        node.extra_args = []  # and it starts again with good values
        node.start()

    # ------------------------------------------------------------------ default budget
    def test_default_budget_leaves_room_for_cold_copies_on_the_same_disk(self):
        """Files and the embedded cold store on one disk (the packaged layout), no
        --max-size: each level-1 body is stored twice there. A budget of 90% of the
        disk filled it (507) at half the budget with nothing evicted; the default
        budget now leaves the cold copies half the room, so the cache evicts and PUTs
        go on until the cold copies alone hold more than half the disk."""
        mnt = mount_tmpfs(self, "20m")
        node = self.start_node(start=False, files_dir=os.path.join(mnt, "files"))
        node.cold_dir = os.path.join(mnt, "cold")
        node.start()
        fs = os.statvfs(mnt)
        disk = fs.f_blocks * fs.f_frsize
        body = os.urandom(64 * PAGE)
        accepted = 0
        for i in range(2 * disk // len(body)):  # the cold copies alone fill it before
            st, _h, b = node.put(node.new_id(), body, level=1)
            if st != 200:
                # 503: the body is here but its cold copy did not fit
                self.assertIn(st, (503, 507), "PUT #%d: %r" % (i, b[:300]))
                break
            accepted += 1
        cap = self.stats(node)["capacity"]
        self.assertGreater(cap["evictions"], 0, cap)
        self.assertGreater(accepted * len(body), disk // 2,
                           "%d PUTs of %d bytes on a %d-byte disk: full before its half held "
                           "level-1 data (%r)" % (accepted, len(body), disk, cap))
        self.assertLessEqual(cap["max_bytes"], disk // 2, cap)

    # ------------------------------------------------------------------ budget
    def test_budget_holds_on_disk_under_concurrent_puts_and_gets(self):
        budget = 2 * MiB
        node, mnt = self.node_on_tmpfs("--max-size", str(budget))
        acked = {}  # id -> sha256
        lock = threading.Lock()
        stop = threading.Event()
        failures = []
        counts = {"put": 0, "get": 0, "507": 0}

        def writer(seed):
            rnd = random.Random(seed)
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=30)
            while not stop.is_set():
                body = os.urandom(rnd.randint(1, 64) * PAGE)  # 4 KiB .. 256 KiB
                oid = node.new_id()
                conn.request("POST", "/api/v1/put", body=body,
                             headers={"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": "1"})
                resp = conn.getresponse()
                data = resp.read()
                with lock:
                    if resp.status == 200:
                        acked[oid] = sha(body)
                        counts["put"] += 1
                    elif resp.status == 507:
                        counts["507"] += 1
                        conn.close()
                        conn = http.client.HTTPConnection(HOST, node.public_port, timeout=30)
                    else:
                        failures.append(("PUT", resp.status, data[:200]))
            conn.close()

        def reader(seed):
            rnd = random.Random(seed)
            conn = http.client.HTTPConnection(HOST, node.public_port, timeout=30)
            while not stop.is_set():
                with lock:
                    if not acked:
                        pick = None
                    else:
                        pick = rnd.choice(list(acked.items()))
                if pick is None:
                    time.sleep(0.01)
                    continue
                conn.request("GET", "/api/v1/get/" + pick[0])
                resp = conn.getresponse()
                data = resp.read()
                with lock:
                    counts["get"] += 1
                    if resp.status != 200:  # the error says what the budget held
                        failures.append(("GET", resp.status, pick[0], data[:400]))
                    elif sha(data) != pick[1]:
                        failures.append(("GET", "wrong bytes", pick[0]))
            conn.close()

        sampler = PeakSampler(lambda: used_bytes(mnt), period=0.001)
        sampler.start()
        threads = [self.spawn(writer, i) for i in range(4)]
        threads += [self.spawn(reader, 100 + i) for i in range(2)]
        time.sleep(4.0)
        stop.set()
        try:
            self.join_all(threads, timeout=60)
        finally:
            sampler.stop()

        self.assertEqual(failures, [])
        if os.environ.get("OBJSTORE_TEST_VERBOSE"):
            print("counts %s, disk peak %d of %d" % (counts, sampler.peak, budget))
        self.assertGreater(sampler.samples, 100)
        self.assertLessEqual(sampler.peak, budget,
                             "the files directory reached %d bytes, budget %d" % (sampler.peak, budget))
        written = counts["put"]
        self.assertGreater(written, 30, counts)
        s = self.stats(node)["capacity"]
        self.assertGreater(s["evictions"], 0, s)
        self.assertLessEqual(s["used_bytes"], budget, s)
        self.assertLessEqual(used_bytes(mnt), budget)
        # Nothing acknowledged is lost: every object reads back, evicted or not.
        for oid, digest in acked.items():
            st, _h, data = node.get(oid)
            self.assertEqual(st, 200, oid)
            self.assertEqual(sha(data), digest, oid)
        self.assertLessEqual(sampler.peak, budget)

    # ------------------------------------------------------------------ 507
    def test_budget_full_of_level0_bodies_answers_507_and_keeps_them(self):
        budget = 1 * MiB
        node, mnt = self.node_on_tmpfs("--max-size", str(budget))
        # One level-1 body: evictable, it must make way for level-0 ones.
        evictable = os.urandom(64 * KiB)
        cold_id = self.put_ok(node, evictable, level=1)
        stored = {}
        for _ in range(16):  # 16 x 64 KiB = the whole budget
            body = os.urandom(64 * KiB)
            stored[self.put_ok(node, body, level=0)] = body
        self.assertFalse(self.local(node, cold_id), "the level-1 body was not evicted")

        one_more = os.urandom(64 * KiB)
        js = self.assertJsonError(node.put(node.new_id(), one_more, level=0), 507, "disk_full")
        self.assertIn("--max-size", js["error"])
        # A chunked body learns of the full budget while it streams.
        st, _h, body = put_raw(node, node.new_id(), os.urandom(128 * KiB), level=0, chunked=True)
        self.assertEqual(st, 507, body[:200])
        self.assertLessEqual(used_bytes(mnt), budget)
        self.assertEqual(leftover_temp_files(node.files_dir), [])

        for oid, body in stored.items():
            st, _h, data = node.get(oid)
            self.assertEqual(st, 200)
            self.assertEqual(data, body, oid)
        # The evicted level-1 object cannot come back while the budget is full of level 0
        # (its HEAD is answered from the record)...
        st, h, _ = node.get(cold_id, method="HEAD")
        self.assertEqual((st, h.get("content-length")), (200, str(len(evictable))))
        self.assertJsonError(node.get(cold_id), 507, "disk_full")
        # ...and can once a level-0 object is deleted.
        self.assertOk(node.delete(next(iter(stored))))
        st, h, data = node.get(cold_id)
        self.assertEqual(st, 200)
        self.assertEqual(data, evictable)
        s = self.stats(node)["capacity"]
        self.assertGreaterEqual(s["refused_reservations"], 3, s)

    # ------------------------------------------------------------------ fetch back
    def test_evicted_body_is_fetched_back_byte_identical(self):
        node, _mnt = self.node_on_tmpfs("--max-size", str(512 * KiB))
        first = os.urandom(100 * KiB + 123)  # any size is fine here
        first_id = self.put_ok(node, first, level=1)
        others = [self.put_ok(node, os.urandom(100 * KiB), level=1) for _ in range(5)]
        self.wait_until(lambda: not self.local(node, first_id), what="eviction of the first body")
        st, _h, js = node.meta(first_id)
        self.assertEqual((js["local_body"], js["cold"], js["size"]), (False, "stored", len(first)))

        st, h, data = node.get(first_id)
        self.assertEqual(st, 200)
        self.assertEqual(h.get("x-meta-fetched"), "true")
        self.assertEqual(data, first)
        self.assertTrue(self.local(node, first_id))
        st, h, data = node.get(first_id)  # now a hit
        self.assertEqual((st, h.get("x-meta-fetched"), data), (200, None, first))
        self.assertGreater(self.stats(node)["cold_fetches"], 0)
        for oid in others:
            self.assertEqual(node.get(oid)[0], 200)

    def test_head_of_an_evicted_body_is_answered_from_its_record(self):
        """A HEAD of a level-1 object whose body left this node (and no peer has it) is
        answered from the record (docs/API.md): no cold fetch starts, the body stays away;
        conditionals and Range as for a GET."""
        node = self.start_node("--max-size", str(512 * KiB))
        first = os.urandom(100 * KiB + 5)
        first_id = node.new_id()
        st, put_h, b = node.put(first_id, first, level=1, name="evicted.png", user_meta={"k": "v"})
        self.assertEqual(st, 200, b)
        for _ in range(5):
            self.put_ok(node, os.urandom(100 * KiB), level=1)
        self.wait_until(lambda: not self.local(node, first_id), what="eviction of the first body")
        _st, _h, js = node.meta(first_id)
        fetches = self.stats(node)["cold_fetches"]

        st, h, data = node.get(first_id, method="HEAD")
        self.assertEqual((st, data), (200, b""))
        self.assertEqual(h.get("content-length"), str(len(first)))
        self.assertEqual(h.get("etag"), put_h["etag"])
        self.assertEqual(h.get("last-modified"), js["last_modified"])
        self.assertEqual(h.get("content-type"), "image/png")
        self.assertEqual((h.get("x-meta-name"), h.get("x-meta-usermeta")), ("evicted.png", '{"k":"v"}'))
        self.assertNotIn("x-meta-fetched", h)
        etag = put_h["etag"]
        self.assertEqual(node.get(first_id, {"If-None-Match": etag}, method="HEAD")[0], 304)
        self.assertEqual(node.get(first_id, {"If-Match": '"other"'}, method="HEAD")[0], 412)
        st, h, _ = node.get(first_id, {"Range": "bytes=10-19"}, method="HEAD")
        self.assertEqual((st, h.get("content-range"), h.get("content-length")),
                         (206, "bytes 10-19/%d" % len(first), "10"))
        self.assertEqual(node.get(first_id, {"Range": "bytes=%d-" % len(first)}, method="HEAD")[0],
                         416)
        time.sleep(0.3)  # a fetch started by one of them would have ended by now
        self.assertEqual(self.stats(node)["cold_fetches"], fetches)
        self.assertFalse(self.local(node, first_id))
        # A GET still brings the body back.
        st, h, data = node.get(first_id)
        self.assertEqual((st, h.get("x-meta-fetched"), data), (200, "true", first))

    def test_level_of_an_evicted_body_is_raised(self):
        """SPEC §1: a level is raised without re-sending the body, also once the body
        left this node: it is fetched back from the cold store first."""
        node, _mnt = self.node_on_tmpfs("--max-size", str(512 * KiB))
        first = os.urandom(100 * KiB + 7)
        first_id = self.put_ok(node, first, level=1)
        for _ in range(5):
            self.put_ok(node, os.urandom(100 * KiB), level=1)
        self.wait_until(lambda: not self.local(node, first_id), what="eviction of the first body")
        st, _h, body = node.request("POST", "/api/v1/meta/" + first_id,
                                    headers={"X-Meta-ConsistencyLevel": "2"})
        self.assertEqual(st, 200, body[:300])
        st, _h, js = node.meta(first_id)
        self.assertEqual((js["consistency"], js["cold"]), (2, "stored"), js)
        self.assertEqual(node.get(first_id)[2], first)

    def test_a_declared_length_alone_does_not_empty_the_cache(self):
        """A PUT's Content-Length is reserved only kPutReserveAhead (64 MiB) ahead of
        the bytes that arrived: a client that declares 150 MiB and sends two bytes no
        longer evicts 150 MiB of bodies; one that declares more than the whole budget
        is refused before its body."""
        node = self.start_node("--max-size", str(200 * MiB), "--eviction", "lru")
        ids = [self.put_ok(node, os.urandom(40 * MiB), level=1) for _ in range(3)]
        s = socket.create_connection((HOST, node.public_port), timeout=10)
        try:
            oid = node.new_id()
            s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                       "X-Meta-ConsistencyLevel: 1\r\nContent-Length: %d\r\n\r\nab"
                       % (oid, 150 * MiB)).encode())
            time.sleep(1.0)
            cap = self.stats(node)["capacity"]
            self.assertEqual(cap["evictions"], 0, cap)
            for oid in ids:
                self.assertTrue(self.local(node, oid))
        finally:
            s.close()
        st, h, body = node.request("POST", "/api/v1/put", body=None, headers={
            "X-Meta-ID": node.new_id(), "Content-Length": str(300 * MiB)})
        self.assertEqual(st, 507, body[:300])
        self.assertEqual(json.loads(body)["code"], "disk_full")

    def test_one_blocking_thread_answers_a_put_that_finds_no_room_at_once(self):
        """With --blocking-threads 1 a reservation waiting for a write in flight to settle
        held the only blocking thread, which that write needed to commit: both PUTs took
        the whole 10 s reserve timeout. With one thread no reservation waits for writes
        in flight: the second PUT gets 507 at once and the first, sent slowly over about
        2 s, commits as soon as its body is in."""
        node = self.start_node("--max-size", str(MiB), "--blocking-threads", "1")
        size, step = 600 * 1000, 60 * 1000
        slow_body, slow_id = os.urandom(size), node.new_id()
        answered = {}

        def slow_put():
            started = time.monotonic()
            s = socket.create_connection((HOST, node.public_port), timeout=30)
            try:
                s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                           "Content-Length: %d\r\nConnection: close\r\n\r\n"
                           % (slow_id, size)).encode())
                for off in range(0, size, step):  # 300 KB/s
                    s.sendall(slow_body[off:off + step])
                    time.sleep(0.2)
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            finally:
                s.close()
            answered["slow"] = (parse_responses(answer)[0].get("status"),
                                time.monotonic() - started)

        slow = self.spawn(slow_put)
        time.sleep(0.5)  # the slow PUT has reserved its 600 KB of the 1 MiB budget
        started = time.monotonic()
        st, _h, body = put_raw(node, node.new_id(), os.urandom(size))
        seconds = time.monotonic() - started
        self.assertEqual(st, 507, body[:300])
        self.assertLess(seconds, 5.0, "the PUT that found no room waited for the slow one")
        self.join_all([slow], 20)
        status, seconds = answered["slow"]
        self.assertEqual(status, 200)
        self.assertLess(seconds, 6.0, "the slow PUT's commit waited for the blocked thread")
        self.assertEqual(node.get(slow_id)[2], slow_body)

    # ------------------------------------------------------------------ restart
    def test_restart_keeps_hot_bodies(self):
        # LRU makes the expectation exact: the three oldest bodies are the hot ones,
        # so without the saved state they would be the first to go (and a rebuilt
        # order is the journal's hash order: they survive by luck ~18% of the time).
        node, _mnt = self.node_on_tmpfs("--max-size", str(1 * MiB), "--eviction", "lru")
        ids = [self.put_ok(node, os.urandom(100 * KiB), level=1) for _ in range(8)]
        hot = ids[:3]
        for _ in range(3):
            for oid in hot:
                self.assertEqual(node.get(oid)[0], 200)
        node.stop()
        node.start()
        self.assertIn("8 keys restored", node.log_tail(200))
        new = [self.put_ok(node, os.urandom(100 * KiB), level=1) for _ in range(3)]
        self.wait_until(lambda: self.stats(node)["capacity"]["evictions"] >= 2,
                        what="evictions after the restart")
        time.sleep(0.2)
        for oid in hot:
            self.assertTrue(self.local(node, oid), "hot object %s was evicted" % oid)
        evicted = [oid for oid in ids[3:] if not self.local(node, oid)]
        self.assertGreaterEqual(len(evicted), 2)
        self.assertEqual(evicted, ids[3:3 + len(evicted)], "LRU order not kept")
        for oid in new:
            self.assertTrue(self.local(node, oid))


if __name__ == "__main__":
    unittest.main()
