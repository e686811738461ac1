"""Faults of the environment (docs/TESTING-FAULTS.md), beyond what test_s3.py (S3 down,
hung, 500/503 SlowDown/403 answers), test_diskfull.py (one node's disk full) and
test_cluster.py (SIGSTOP pauses) already cover:

- S3 connections dropped in the middle of a body, both ways, and a slow S3
  (moto with signature checks behind moto_fixture.FaultProxy): retried or a clear
  error, never a stored truncated object, nothing lost;
- a replica whose disk is full (8 MiB tmpfs): no crash, no partial file, every
  object still reads back whole from that node, journals converge;
- a real network partition between groups of nodes (network namespaces joined by
  veth pairs, netns_fixture.NetLab) with writes, deletes and conflicting writes on
  both sides, then healing: journals converge and every acknowledged write and
  delete holds on every node.
"""

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_fixture import ClusterTestCase, body_files, wait_for  # noqa: E402
from harness import leftover_temp_files, mount_tmpfs, payload, sha  # noqa: E402
from moto_fixture import S3TestCase  # noqa: E402
from netns_fixture import NetLab  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
FETCH = {"X-Meta-Fetch": "1"}


# ------------------------------------------------------------------------ S3
class S3FaultTest(S3TestCase):
    def setUp(self):
        super().setUp()
        self.moto = self.start_moto()
        self.bucket = self.new_bucket(self.moto)
        self.proxy = self.start_proxy(self.moto.port)
        self.node = self.start_s3_node(self.moto, self.bucket, endpoint=self.proxy.endpoint)

    def bucket_sha(self, key):
        obj = self.moto.client().get_object(Bucket=self.bucket, Key=key)
        return sha(obj["Body"].read())

    def stats(self):
        st, _h, b = self.node.request("GET", "/api/v1/stats")
        self.assertEqual(st, 200)
        return json.loads(b)

    def test_upload_connection_dropped_mid_body_is_retried(self):
        body = payload(600 * KiB, b"up")
        oid = self.node.new_id()
        retries = self.stats()["cold_store"]["retries"]
        # three connections: the upload's HEAD (which sends no body) and two PUTs
        self.proxy.cut_after(3, 200 * KiB, "up")
        st, _h, b = self.node.put(oid, body, level=1)
        self.assertEqual(st, 200, b[:300])
        self.assertEqual(self.proxy.cut, 2, "the uploads were not cut")
        self.assertGreaterEqual(self.stats()["cold_store"]["retries"], retries + 2)
        self.assertEqual(self.bucket_sha(oid), sha(body))
        # a drop on every attempt: a clear 503, the body kept and uploaded later
        oid2 = self.node.new_id()
        body2 = payload(300 * KiB, b"up2")
        self.proxy.cut_after(1000, 100 * KiB, "up")
        self.assertJsonError(self.node.put(oid2, body2, level=1), 503, "cold_store_unavailable")
        st, _h, b = self.node.get(oid2)
        self.assertEqual((st, sha(b)), (200, sha(body2)))
        self.proxy.cut_after(0, 0)
        wait_for(lambda: self.stats()["cold_store"]["queue"] == 0, 30, "the upload queue to drain")
        self.assertEqual(self.bucket_sha(oid2), sha(body2))

    def test_download_connection_dropped_mid_body_stores_nothing_partial(self):
        body = payload(900 * KiB, b"down")
        oid = self.node.new_id()
        self.assertEqual(self.node.put(oid, body, level=1)[0], 200)
        self.node.wipe_local()
        self.node.start(timeout=15)
        self.proxy.cut_after(1000, 300 * KiB, "down")
        for _ in range(2):
            try:
                st, _h, b = self.node.get(oid, headers=FETCH)
            except (OSError, http.client.HTTPException):  # cut after the answer began
                continue
            # an answer is either a clear error or (if the node retried) the whole body
            if st == 200:
                self.assertEqual(sha(b), sha(body), "a 200 with other bytes")
            else:
                self.assertJsonError((st, _h, b), (502, 503, 504))
        self.assertGreaterEqual(self.proxy.cut, 1)
        self.assertEqual(leftover_temp_files(self.node.files_dir), [])
        self.proxy.cut_after(0, 0)
        st, _h, b = self.node.get(oid, headers=FETCH)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.node.restart()
        st, _h, b = self.node.get(oid)
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertEqual(leftover_temp_files(self.node.files_dir), [])

    def test_slow_s3_still_completes(self):
        body = payload(768 * KiB, b"slow")
        oid = self.node.new_id()
        self.proxy.slow(384 * KiB)
        t0 = time.monotonic()
        st, _h, b = self.node.put(oid, body, level=1)
        up = time.monotonic() - t0
        self.assertEqual(st, 200, b[:300])
        self.assertGreater(up, 1.5, "the proxy did not slow the upload")
        self.assertEqual(self.bucket_sha(oid), sha(body))
        self.node.wipe_local()
        self.node.start(timeout=15)
        t0 = time.monotonic()
        st, _h, b = self.node.get(oid, headers=FETCH)
        down = time.monotonic() - t0
        self.assertEqual((st, sha(b)), (200, sha(body)))
        self.assertGreater(down, 1.5, "the proxy did not slow the download")
        sys.stderr.write("\n768 KiB through a 384 KiB/s S3: PUT %.1f s, fetch %.1f s\n" % (up, down))

    def test_slow_uploads_leave_the_blocking_pool_free(self):
        # More level-1 PUTs than blocking threads, each upload slowed to ~4 s:
        # a level-0 PUT, a DELETE and a hit of other keys must not wait for them.
        self.node.stop()
        node = self.start_s3_node(self.moto, self.bucket, endpoint=self.proxy.endpoint,
                                  extra=["--blocking-threads", "2"])
        hit_id, gone_id = node.new_id(), node.new_id()
        hit_body = payload(64 * KiB, b"hit")
        self.assertEqual(node.put(hit_id, hit_body)[0], 200)
        self.assertEqual(node.put(gone_id, b"soon deleted")[0], 200)
        slow = {node.new_id(): payload(256 * KiB, b"slow%d" % i) for i in range(4)}
        answers = {}
        heads = self.moto.mark()
        self.proxy.slow(64 * KiB)
        t0 = time.monotonic()

        def put_slow(oid):
            st, _h, b = node.put(oid, slow[oid], level=1)
            answers[oid] = (st, b[:300], time.monotonic() - t0)

        threads = [threading.Thread(target=put_slow, args=(oid,), daemon=True) for oid in slow]
        for t in threads:
            t.start()
        # Two uploads have started once S3 saw two HEADs (each first reads the stored
        # version): with uploads on the blocking pool, both its threads are held then.
        wait_for(lambda: self.moto.count("HEAD", since=heads) >= 2, 10, "two uploads to start")
        fast_id = node.new_id()
        fast_body = payload(64 * KiB, b"fast")
        timed = {}

        def time_it(what, request):
            t1 = time.monotonic()
            answer = request()
            timed[what] = (answer, time.monotonic() - t1)

        others = [threading.Thread(target=time_it, args=args, daemon=True) for args in (
            ("level-0 PUT", lambda: node.put(fast_id, fast_body)),
            ("DELETE", lambda: node.delete(gone_id)),
            ("hit", lambda: node.get(hit_id)))]
        for t in others:
            t.start()
        for t in others + threads:
            t.join(timeout=60)
            self.assertFalse(t.is_alive(), "a request did not answer in 60 s")
        slowest = max(a[2] for a in answers.values())
        sys.stderr.write("\n4 level-1 PUTs of 256 KiB through a 64 KiB/s S3, 2 blocking threads: "
                         "slowest %.1f s; meanwhile %s\n" % (slowest, ", ".join(
                             "%s %.2f s" % (what, took) for what, (_a, took) in timed.items())))
        self.assertGreater(slowest, 3.0, "the proxy did not slow the uploads")
        self.assertEqual(timed["level-0 PUT"][0][0], 200, timed["level-0 PUT"][0][2][:300])
        self.assertEqual(timed["DELETE"][0][0], 200, timed["DELETE"][0][2][:300])
        self.assertEqual(timed["hit"][0][0], 200)
        self.assertEqual(sha(timed["hit"][0][2]), sha(hit_body))
        for what, (_answer, took) in timed.items():
            self.assertLess(took, 1.5, "a %s of another key waited for the uploads" % what)
        self.proxy.slow(None)
        for oid, body in slow.items():
            self.assertEqual(answers[oid][0], 200, answers[oid][1])
            self.assertEqual(self.bucket_sha(oid), sha(body))
            st, _h, b = node.get(oid)
            self.assertEqual((st, sha(b)), (200, sha(body)))


# ------------------------------------------------------------------ disk full
class ReplicaDiskFullTest(ClusterTestCase):
    def test_replica_with_full_disk_stays_whole(self):
        files = os.path.join(mount_tmpfs(self, "8m"), "files")
        os.makedirs(files)

        def setup(i, node):
            if i == 2:
                node.files_dir = files
        c = self.start_cluster(3, node_setup=setup, extra_args=("--max-size", "1G"))
        objs = {}
        for i in range(12):
            oid = c.nodes[0].new_id()
            body = payload(MiB, b"full%d" % i)
            st, _h, b = c.nodes[0].put(oid, body, level=2)
            self.assertEqual(st, 200, b[:300])
            objs[oid] = sha(body)
        c.wait_converged(timeout=30)
        wait_for(lambda: all(body_files(c.nodes[1], k) for k in objs), 30,
                 "every body on the node with room")
        full = c.nodes[2]
        held = wait_for(lambda: len([k for k in objs if body_files(full, k)]) >= 4 or None, 30,
                        "the full node to hold what fits")
        self.assertTrue(held)
        self.assertTrue(full.alive())
        # a pull that is being retried may have its temporary file open for a moment;
        # a failed one must not leave it behind
        wait_for(lambda: leftover_temp_files(files) == [], 10, "no temporary file on the full disk",
                 interval=0.02)
        for i in range(3):
            for oid, digest in objs.items():
                st, _h, b = c.nodes[i].get(oid)
                self.assertEqual((st, sha(b)), (200, digest), "node %d, %s" % (i, oid))
        # its own level-0 PUT gets the clean 507 of a full disk. The node may answer
        # before it has read the body and close, so the client's send can break
        # (EPIPE/ECONNRESET) before it reads the answer: a few attempts, one must answer.
        resp = None
        for _ in range(5):
            try:
                resp = full.put(full.new_id(), payload(2 * MiB, b"more"), level=0)
                break
            except (BrokenPipeError, ConnectionResetError):
                time.sleep(0.2)
        self.assertIsNotNone(resp, "every PUT on the full node broke before its answer")
        self.assertJsonError(resp, 507, "disk_full")
        full.kill9()
        full.last_exit_code = None
        c.restart(2)
        c.wait_converged(timeout=30)
        for oid, digest in objs.items():
            st, _h, b = full.get(oid)
            self.assertEqual((st, sha(b)), (200, digest), oid)
        self.assertEqual(leftover_temp_files(files), [])


# ------------------------------------------------------------------ partition
class PartitionTest(ClusterTestCase):
    def setUp(self):
        super().setUp()
        why = NetLab.unavailable()
        if why:
            self.skipTest(why)
        self.lab = NetLab(4)
        self.addCleanup(self.lab.close)
        self.lab.start()

    def test_partition_between_groups_heals(self):
        c = self.start_cluster(4, node_setup=self.lab.node_setup)
        acked, deleted = {}, set()

        def put(i, level, seed, oid=None):
            oid = oid or c.nodes[i].new_id()
            body = payload(100 * KiB + len(seed), seed)
            st, _h, b = c.nodes[i].put(oid, body, level=level)
            self.assertEqual(st, 200, "PUT on node %d: %r" % (i, b[:300]))
            return oid, sha(body)

        for k in range(6):
            oid, d = put(k % 4, k % 3, b"before%d" % k)
            acked[oid] = d
        c.wait_converged(timeout=20)
        shared = list(acked)

        self.lab.cut([0, 1], [2, 3])
        c.wait_alive(2, nodes=[0, 1], timeout=20)
        c.wait_alive(2, nodes=[2, 3], timeout=20)
        # both sides keep taking writes and deletes
        for k in range(8):
            for side in (0, 2):
                oid, d = put(side + k % 2, k % 3, b"side%d-%d" % (side, k))
                acked[oid] = d
        for side, victim in ((0, shared[0]), (2, shared[1])):
            st, _h, b = c.nodes[side].delete(victim)
            self.assertEqual(st, 200, b[:300])
            deleted.add(victim)
        # the same id written on both sides: one winner everywhere after healing
        contested = c.nodes[0].new_id()
        bodies = {}
        for side in (0, 2):
            _oid, d = put(side, 1, b"contested%d" % side, oid=contested)
            bodies[side] = d
        self.assertNotEqual(c.digests([0])[0], c.digests([2])[2])

        self.lab.heal()
        c.wait_alive(4, timeout=30)
        c.wait_converged(timeout=30)
        for i in range(4):
            for oid, digest in acked.items():
                if oid in deleted:
                    continue
                st, _h, b = c.nodes[i].get(oid)
                self.assertEqual((st, sha(b)), (200, digest), "node %d lost %s" % (i, oid))
            for oid in deleted:
                st, h, _b = c.nodes[i].get(oid)
                self.assertEqual((st, h.get("x-meta-deleted")), (404, "true"), "node %d, %s" % (i, oid))
        winners = set()
        for i in range(4):
            st, _h, b = c.nodes[i].get(contested)
            self.assertEqual(st, 200)
            winners.add(sha(b))
        self.assertEqual(len(winners), 1, "different winners of one id")
        self.assertIn(winners.pop(), bodies.values())


if __name__ == "__main__":
    unittest.main()
