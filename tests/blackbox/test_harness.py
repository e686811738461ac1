"""Tests of the harness's own checks, on directories made by hand (no node).

leftover_temp_files decides whether a crash, disk-full or eviction test left an
unfinished write behind; a rule that let too much through would make those
tests unable to fail. Run: python3 -m unittest -v tests/blackbox/test_harness.py
"""

import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class LeftoverTempFilesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="objstore-harness-")
        self.root = self._tmp.name
        os.makedirs(os.path.join(self.root, "tmp"))
        os.makedirs(os.path.join(self.root, "ab", "cd"))

    def tearDown(self):
        self._tmp.cleanup()

    def put(self, rel, data=b""):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return rel

    def test_the_spare_count_is_the_node_s(self):
        header = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "..", "..", "src", "store", "body_store.h")
        with open(header) as f:
            m = re.search(r"kSpareBodies = (\d+);", f.read())
        self.assertIsNotNone(m, "kSpareBodies not found in " + header)
        self.assertEqual(harness.SPARE_BODIES, int(m.group(1)))

    def test_committed_bodies_are_not_leftovers(self):
        self.put("ab/cd/01M898QMGXGV8MJZMG8BSY4GCM@01a23bbde0ab0000", b"body")
        self.assertEqual(harness.leftover_temp_files(self.root), [])

    def test_up_to_the_node_s_number_of_empty_spares_are_not_leftovers(self):
        for i in range(harness.SPARE_BODIES):
            self.put(f"tmp/{i:024x}.spare")
        self.assertEqual(harness.leftover_temp_files(self.root), [])

    def test_one_spare_too_many_flags_every_spare(self):
        made = [self.put(f"tmp/{i:024x}.spare") for i in range(harness.SPARE_BODIES + 1)]
        self.assertEqual(sorted(harness.leftover_temp_files(self.root)), sorted(made))

    def test_a_spare_holding_bytes_is_an_unfinished_write(self):
        empty = self.put(f"tmp/{1:024x}.spare")
        written = self.put(f"tmp/{2:024x}.spare", b"half a body")
        self.assertEqual(harness.leftover_temp_files(self.root), [written])
        self.assertNotIn(empty, harness.leftover_temp_files(self.root))

    def test_a_spare_outside_the_top_tmp_dir_is_not_exempt(self):
        nested = self.put(f"tmp/tmp/{1:024x}.spare")
        self.assertEqual(harness.leftover_temp_files(self.root), [nested])

    def test_part_files_and_anything_in_a_tmp_dir_are_leftovers(self):
        made = [
            self.put(f"tmp/{1:024x}.part", b"x"),
            self.put("tmp/other"),
            self.put("ab/cd/body.tmp"),
            self.put("ab/cd/.tmp.body"),
        ]
        self.assertEqual(sorted(harness.leftover_temp_files(self.root)), sorted(made))


if __name__ == "__main__":
    unittest.main()
