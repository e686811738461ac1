"""Failpoints (docs/TESTING-FAULTS.md): the node kills itself (SIGKILL) at a named
place armed through OBJSTORE_FAILPOINTS, and after a restart

- every acknowledged object reads back byte-identical,
- the object in flight at the kill is either absent or whole (never a 200 with
  other bytes), and no temporary file is left visible,
- every acknowledged delete is still a tombstone (404 + X-Meta-Deleted),
- at level >= 1 the cold store ends up with exactly the bytes (moto with signature
  checks for the S3 points),
- for the cluster points, every journal digest is equal after convergence and every
  level-2 body is on every node.

Each case checks in the node's log that its failpoint really fired, so a point
that is never reached fails the test instead of passing it silently.
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_fixture import ClusterTestCase, body_files, wait_for  # noqa: E402
import moto_fixture  # noqa: E402
from harness import NodeTestCase, leftover_temp_files, payload, sha  # noqa: E402
from moto_fixture import S3TestCase  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
ENV = "OBJSTORE_FAILPOINTS"


def fired(node, point):
    with open(node.log_path, "rb") as f:
        return ("failpoint %s reached" % point).encode() in f.read()


class Workload:
    """Sequential PUTs and DELETEs against one node until it dies (or `limit` ops).
    acked: id -> sha256 of the acknowledged body; deleted: ids whose delete was
    acknowledged; in_flight: id -> sha256 of a body sent without an answer."""

    def __init__(self, size_of, level_of):
        self.size_of = size_of
        self.level_of = level_of
        self.acked = {}
        self.levels = {}
        self.deleted = set()
        self.in_flight = {}
        self.delete_in_flight = None

    def run(self, node, limit, seed=b"w"):
        for i in range(limit):
            oid = node.new_id() if node.alive() else None
            if oid is None:
                return
            body = payload(self.size_of(i), seed + b"%d" % i)
            try:
                st, _h, b = node.put(oid, body, level=self.level_of(i))
            except OSError:
                self.in_flight[oid] = sha(body)
                return
            if st != 200:
                raise AssertionError("PUT %d answered %d %r" % (i, st, b[:300]))
            self.acked[oid] = sha(body)
            self.levels[oid] = self.level_of(i)
            if i % 4 == 3:
                victim = sorted(set(self.acked) - self.deleted)[0]
                try:
                    st, _h, b = node.delete(victim)
                except OSError:
                    self.delete_in_flight = victim
                    return
                if st != 200:
                    raise AssertionError("DELETE answered %d %r" % (st, b[:300]))
                self.deleted.add(victim)

    def live(self):
        return {k: v for k, v in self.acked.items()
                if k not in self.deleted and k != self.delete_in_flight}

    def check(self, tc, node, where=""):
        for oid, digest in self.live().items():
            st, _h, b = node.get(oid)
            tc.assertEqual(st, 200, "%sacknowledged %s lost" % (where, oid))
            tc.assertEqual(sha(b), digest, "%sacknowledged %s has other bytes" % (where, oid))
        for oid in self.deleted:
            st, h, _b = node.get(oid)
            tc.assertEqual(st, 404, "%stombstone of %s lost" % (where, oid))
            tc.assertEqual(h.get("x-meta-deleted"), "true", where + oid)
        if self.delete_in_flight:
            st, _h, b = node.get(self.delete_in_flight)
            tc.assertIn(st, (200, 404), where)
            if st == 200:
                tc.assertEqual(sha(b), self.acked[self.delete_in_flight], where)
        for oid, digest in self.in_flight.items():
            st, _h, b = node.get(oid)
            tc.assertIn(st, (200, 404), "%sin-flight %s" % (where, oid))
            if st == 200:
                tc.assertEqual(sha(b), digest, "%spartial object %s visible" % (where, oid))


def wait_dead(tc, node, timeout=20.0):
    wait_for(lambda: not node.alive(), timeout, "the node to kill itself at its failpoint")
    node.kill9()                # reaps it and closes its log
    node.last_exit_code = None  # a deliberate kill: not a crash for the harness' cleanup


# ------------------------------------------------------------------ one node
class FailpointBodyTest(NodeTestCase):
    """body.after_write / after_fsync / after_rename on one node (directory cold store)."""

    def run_point(self, point, count):
        node = self.start_node(name=point[5:15], start=False)
        node.extra_env[ENV] = "%s:%d" % (point, count)
        node.start()
        w = Workload(size_of=lambda i: (i * 37 * KiB) % (300 * KiB), level_of=lambda i: i % 2)
        w.run(node, limit=60)
        wait_dead(self, node)
        self.assertTrue(fired(node, point), "%s never fired\n%s" % (point, node.log_tail()))
        self.assertGreater(len(w.acked), 0)
        self.assertEqual(len(w.in_flight), 1, "the kill did not land in a PUT")
        self.assertGreater(len(w.deleted), 0, "no delete before the kill")
        del node.extra_env[ENV]
        node.start()
        w.check(self, node, point + ": ")
        self.assertEqual(leftover_temp_files(node.files_dir), [], point)
        self.assertEqual(leftover_temp_files(node.cold_dir), [], point)
        node.restart()
        w.check(self, node, point + " (second restart): ")

    def test_after_write(self):
        self.run_point("body.after_write", 17)

    def test_after_fsync(self):
        self.run_point("body.after_fsync", 18)

    def test_after_rename(self):
        self.run_point("body.after_rename", 19)


class FailpointS3Test(S3TestCase):
    """s3.upload.mid_body / s3.multipart.after_part with moto checking signatures."""

    def setUp(self):
        super().setUp()
        self.moto = self.start_moto()
        self.bucket = self.new_bucket(self.moto)

    def bucket_sha(self, key):
        try:
            obj = self.moto.client().get_object(Bucket=self.bucket, Key=key)
        except moto_fixture.botocore.exceptions.ClientError:
            return None
        return sha(obj["Body"].read())

    def run_point(self, point, count, size_of):
        node = self.start_s3_node(self.moto, self.bucket, retry_interval=1,
                                  extra=("--s3-multipart-threshold", "6M", "--s3-part-size", "5M"))
        node.extra_env[ENV] = "%s:%d" % (point, count)
        node.restart()
        w = Workload(size_of=size_of, level_of=lambda i: 1 if i % 3 else 0)
        w.run(node, limit=12, seed=point.encode())
        wait_dead(self, node)
        self.assertTrue(fired(node, point), "%s never fired\n%s" % (point, node.log_tail()))
        self.assertEqual(len(w.in_flight), 1, "the kill did not land in a PUT")
        del node.extra_env[ENV]
        node.start()
        w.check(self, node, point + ": ")
        self.assertEqual(leftover_temp_files(node.files_dir), [], point)

        # the durable queue finishes the interrupted upload: the bucket gets exactly the
        # bytes of every level-1 object the node has, and no deleted one
        def queue_empty():
            st, _h, b = node.request("GET", "/api/v1/stats")
            return st == 200 and json.loads(b)["cold_store"]["queue"] == 0
        wait_for(queue_empty, 30, "the cold-store queue to drain")
        want = {k: v for k, v in w.live().items() if w.levels[k] == 1}
        for oid, digest in w.in_flight.items():
            if node.get(oid)[0] == 200:
                want[oid] = digest
        self.assertGreater(len(want), 0)
        for oid, digest in want.items():
            self.assertEqual(self.bucket_sha(oid), digest, "bucket copy of %s" % oid)
        for oid in w.deleted:
            self.assertIsNone(self.bucket_sha(oid), "deleted %s still in the bucket" % oid)
        # the killed process could not abort its multipart upload: at most that one is
        # left for the bucket's AbortIncompleteMultipartUpload rule (docs/TESTING-FAULTS.md)
        uploads = self.moto.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        self.assertLessEqual(len(uploads), 1 if point == "s3.multipart.after_part" else 0, uploads)

    def test_single_put_killed_mid_body(self):
        self.run_point("s3.upload.mid_body", 30, lambda i: 700 * KiB + i * KiB)

    def test_multipart_killed_after_parts(self):
        self.run_point("s3.multipart.after_part", 4, lambda i: 11 * MiB + i * KiB)


# ------------------------------------------------------------------- cluster
class FailpointClusterTest(ClusterTestCase):
    """journal.mid_transaction / replica.mid_body on the third node of three."""

    def run_point(self, point):
        c = self.start_cluster(3, env={2: {ENV: point}})
        victim = c.nodes[2]
        w = Workload(size_of=lambda i: 300 * KiB + i * 1000, level_of=lambda i: 2 if i % 2 else 0)
        w.run(c.nodes[0], limit=8, seed=b"a")
        wait_dead(self, victim)
        self.assertTrue(fired(victim, point), "%s never fired\n%s" % (point, victim.log_tail()))
        # writes and deletes on the other side while the victim is down
        w2 = Workload(size_of=lambda i: 280 * KiB + i, level_of=lambda i: 2)
        w2.run(c.nodes[1], limit=8, seed=b"b")
        self.assertEqual(w.in_flight, {})
        self.assertEqual(w2.in_flight, {})
        del victim.extra_env[ENV]
        c.restart(2)
        c.wait_alive(3, timeout=20)
        digests = c.wait_converged(timeout=30)
        self.assertEqual(len(set(digests.values())), 1, digests)
        level2 = {k for wl in (w, w2) for k in wl.live() if wl.levels[k] == 2}
        self.assertGreater(len(level2), 0)

        def replicated():
            return all(body_files(c.nodes[i], k) for i in range(3) for k in level2)
        wait_for(replicated, 30, "every level-2 body on every node")
        for i in range(3):
            w.check(self, c.nodes[i], "node %d: " % i)
            w2.check(self, c.nodes[i], "node %d: " % i)
            self.assertEqual(leftover_temp_files(c.nodes[i].files_dir), [], "node %d" % i)
        # the replicas the victim holds are whole copies, read from its own disk
        for k in level2:
            st, h, b = victim.get(k)
            self.assertEqual(st, 200)
            self.assertNotEqual(h.get("x-meta-symlink"), "true", k)
            self.assertEqual(sha(b), w.acked.get(k) or w2.acked.get(k))
        c.wait_converged(timeout=10)

    def test_journal_killed_mid_transaction(self):
        self.run_point("journal.mid_transaction")

    def test_replica_killed_mid_body(self):
        self.run_point("replica.mid_body")


if __name__ == "__main__":
    unittest.main()
