"""Disk full: a PUT that cannot fit answers 507 disk_full, leaves nothing behind, and
nothing already stored is lost (SPEC.md §5, docs/API.md)."""

import hashlib
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (NodeTestCase, leftover_temp_files, list_files, mount_tmpfs,  # noqa: E402
                     parse_responses, put_raw, tree_size)

MiB = 1024 * 1024


class DiskFullTest(NodeTestCase):

    def mount_tmpfs(self, size="8m"):
        return mount_tmpfs(self, size)

    def put_raw(self, node, oid, body, level=0, chunked=False):
        return put_raw(node, oid, body, level, chunked)

    def test_disk_full_507(self):
        files = self.mount_tmpfs("8m")
        files_sub = os.path.join(files, "files")
        os.makedirs(files_sub)
        # A budget beyond the tmpfs: the disk itself fills (ENOSPC), not the
        # --max-size budget (test_eviction covers that one).
        node = self.start_node("--max-size", "1G", files_dir=files_sub)
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

    def test_a_full_disk_without_max_size_refuses_to_start_saying_so(self):
        """With no --max-size the budget is taken from the free space: on a full disk
        it came to 0, and the node refused to start with "the byte budget (--max-size)
        must be > 0", a flag it was never given. The refusal names the full disk."""
        mnt = self.mount_tmpfs("4m")
        node = self.start_node(start=False, files_dir=os.path.join(mnt, "files"))
        with open(os.path.join(mnt, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (64 * 1024))
                    f.flush()
            except OSError:
                pass
        self.assertStartRefused(node, "is full")
        os.unlink(os.path.join(mnt, "filler"))
        node.start()
        self.assertOk(node.put(node.new_id(), b"room again"))

    def test_journal_on_a_full_disk_answers_507(self):
        # Journal and bodies on one small disk: once the bodies fill it, a small
        # PUT's body still fits in a page but the journal's WAL cannot grow, and
        # its COMMIT fails. That is a full disk too: 507, not 500, and nothing
        # is left of the refused PUT.
        d = self.mount_tmpfs("4m")
        node = self.start_node("--max-size", "1G", base_dir=d)
        stored = {}
        refused = []
        for i in range(4000):
            oid = node.new_id()
            body = os.urandom(700 * 1024 if i < 4 else 200)
            st, _h, b = self.put_raw(node, oid, body)
            if st == 200:
                stored[oid] = body
                continue
            self.assertEqual(st, 507, "PUT #%d on a full disk: %r" % (i, b[:300]))
            self.assertEqual(json.loads(b).get("code"), "disk_full", b[:300])
            refused.append(oid)
            if len(refused) == 20:
                break
        self.assertEqual(len(refused), 20, "a 4 MiB disk took 4000 PUTs")
        self.assertTrue(node.alive())
        for oid in refused:
            self.assertEqual(node.get(oid)[0], 404)
        self.assertEqual(leftover_temp_files(node.files_dir), [])
        bodies = [f for f in list_files(node.files_dir) if not f.startswith("tmp")]
        self.assertEqual(len(bodies), len(stored), "body files of refused PUTs left behind")
        # A delete frees a large body's pages: PUTs fit again.
        big = next(iter(stored))
        self.assertOk(node.delete(big))
        del stored[big]
        oid = node.new_id()
        st, _h, b = self.put_raw(node, oid, b"after the delete")
        self.assertEqual(st, 200, b[:300])
        stored[oid] = b"after the delete"
        node.restart()
        for oid, body in stored.items():
            st, _h, b = node.get(oid)
            self.assertEqual((st, b), (200, body))


if __name__ == "__main__":
    unittest.main()
