"""Disk full: a PUT that cannot fit answers 507 disk_full, leaves nothing behind, and
nothing already stored is lost (SPEC.md §5, docs/API.md)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import NodeTestCase, leftover_temp_files, parse_responses, tree_size  # noqa: E402

MiB = 1024 * 1024


class DiskFullTest(NodeTestCase):

    def mount_tmpfs(self, size="8m"):
        if os.geteuid() != 0:
            self.skipTest("disk-full test needs root to mount a tmpfs")
        d = tempfile.mkdtemp(prefix="objstore-bb-tmpfs-")
        self.addCleanup(os.rmdir, d)
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", d],
                               capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.skipTest("cannot mount a tmpfs: %r" % e)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs (mount exit %d: %s)" % (r.returncode, r.stderr.strip()))
        # cleanups run last-in first-out: the node (registered later) stops before the unmount
        self.addCleanup(subprocess.run, ["umount", "-l", d], capture_output=True, timeout=30)
        return d

    def put_raw(self, node, oid, body, level=0, chunked=False):
        """PUT over a raw socket so an early 507 answer (server stops reading) is still seen.
        chunked=True sends no length up front, so the server only learns of the full disk
        while writing."""
        head = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nX-Meta-ConsistencyLevel: %d\r\n"
                "Connection: close\r\n" % (oid, level)).encode()
        if chunked:
            step = 64 * 1024
            wire = b"".join(b"%x\r\n" % len(body[i:i + step]) + body[i:i + step] + b"\r\n"
                            for i in range(0, len(body), step)) + b"0\r\n\r\n"
            data = head + b"Transfer-Encoding: chunked\r\n\r\n" + wire
        else:
            data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        out = node.raw(data, timeout=20)
        rs = parse_responses(out)
        if not rs or "status" not in rs[0]:
            return None, {}, out
        return rs[0]["status"], rs[0]["headers"], rs[0]["body"]

    def test_disk_full_507(self):
        files = self.mount_tmpfs("8m")
        files_sub = os.path.join(files, "files")
        os.makedirs(files_sub)
        node = self.start_node(files_dir=files_sub)
        stored = {}
        got_507 = None
        for i in range(24):
            oid = node.new_id()
            body = hashlib.sha256(b"seed%d" % i).digest() * (MiB // 32)
            st, h, b = self.put_raw(node, oid, body)
            if st == 200:
                stored[oid] = hashlib.sha256(body).hexdigest()
                continue
            self.assertEqual(st, 507, "PUT #%d on a filling disk: %r %r" % (i, st, b[:300]))
            js = json.loads(b)
            self.assertEqual(js.get("code"), "disk_full")
            self.assertTrue(js.get("error"))
            got_507 = oid
            break
        self.assertIsNotNone(got_507, "8 MiB filesystem took 24 MiB without a 507")
        self.assertGreater(len(stored), 0, "not even one 1 MiB object fit on an 8 MiB disk")
        self.assertTrue(node.alive())
        self.assertTrue(node.ping())

        # the refused object left nothing visible, and no partial file
        self.assertEqual(node.get(got_507)[0], 404)
        self.assertEqual(leftover_temp_files(files_sub), [], "temporary files left after 507")
        used = tree_size(files_sub)
        self.assertLessEqual(used, len(stored) * MiB + 64 * 1024,
                             "files dir holds %d bytes for %d stored 1 MiB objects: partial body left?"
                             % (used, len(stored)))

        # the same with a chunked body: the server finds out while writing
        oid = node.new_id()
        st, h, b = self.put_raw(node, oid, os.urandom(2 * MiB), chunked=True)
        self.assertEqual(st, 507, b[:300])
        self.assertEqual(json.loads(b).get("code"), "disk_full")
        self.assertEqual(node.get(oid)[0], 404)
        self.assertEqual(leftover_temp_files(files_sub), [], "temporary files left after a chunked 507")
        self.assertLessEqual(tree_size(files_sub), len(stored) * MiB + 64 * 1024)
        sys.stderr.write("\n%d x 1 MiB stored on an 8 MiB tmpfs before 507\n" % len(stored))

        # everything acknowledged reads back intact
        for oid, digest in stored.items():
            st, h, b = node.get(oid)
            self.assertEqual(st, 200)
            self.assertEqual(hashlib.sha256(b).hexdigest(), digest)

        # a second attempt fails the same clean way (no crash, no leak)
        oid = node.new_id()
        st, h, b = self.put_raw(node, oid, b"q" * MiB)
        self.assertEqual(st, 507, b[:300])
        self.assertEqual(node.get(oid)[0], 404)

        # deleting frees room again (bounded wait for asynchronous reclamation)
        victim = next(iter(stored))
        self.assertOk(node.delete(victim))
        del stored[victim]
        ok = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            oid = node.new_id()
            st, h, b = self.put_raw(node, oid, b"r" * (MiB // 2))
            if st == 200:
                ok = True
                stored[oid] = hashlib.sha256(b"r" * (MiB // 2)).hexdigest()
                break
            self.assertEqual(st, 507, b[:300])
            time.sleep(0.5)
        self.assertTrue(ok, "no space came back after deleting a 1 MiB object")

        # a restart keeps everything
        node.restart()
        for oid, digest in stored.items():
            st, h, b = node.get(oid)
            self.assertEqual(st, 200)
            self.assertEqual(hashlib.sha256(b).hexdigest(), digest)
        self.assertEqual(leftover_temp_files(files_sub), [])


if __name__ == "__main__":
    unittest.main()
