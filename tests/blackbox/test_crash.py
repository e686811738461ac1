"""Crash safety: kill -9 during concurrent PUTs loses no acknowledged object and exposes
no partial one (SPEC.md §2: "Nothing a client sends can ... leave a half-written object
visible"; a 200 means the object is stored)."""

import hashlib
import http.client
import os
import random
import shutil
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, NodeTestCase, leftover_temp_files, make_ulid  # noqa: E402

THREADS = 8
MAX_SIZE = 256 * 1024
RUN_SECONDS = 3.0
MAX_PUTS_PER_THREAD = 2000


class Writer(threading.Thread):
    def __init__(self, port, seed, stop):
        super().__init__(daemon=True)
        self.port = port
        self.rnd = random.Random(seed)
        self.stop_ev = stop
        self.acked = {}     # id -> (sha256, size, level)
        self.sent = {}      # id -> sha256 of the body sent (acknowledged or not)
        self.errors = []    # unexpected non-200 statuses while the node was up
        self.conn_errors = 0

    def run(self):
        conn = None
        for _ in range(MAX_PUTS_PER_THREAD):
            if self.stop_ev.is_set():
                break
            size = self.rnd.randint(0, MAX_SIZE)
            if self.rnd.random() < 0.1:
                size = self.rnd.choice([0, 1, 4095, 4096, 4097, 65536])
            body = self.rnd.randbytes(size)
            level = self.rnd.choice([0, 1])
            oid = make_ulid()
            digest = hashlib.sha256(body).hexdigest()
            self.sent[oid] = digest
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=20)
                conn.request("POST", "/api/v1/put", body=body,
                             headers={"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": str(level),
                                      "X-Meta-Name": "crash-%d.bin" % size,
                                      "Content-Length": str(size)})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    self.acked[oid] = (digest, size, level)
                else:
                    self.errors.append((oid, resp.status, data[:200]))
            except (OSError, http.client.HTTPException):
                self.conn_errors += 1
                if conn is not None:
                    conn.close()
                    conn = None
                if self.stop_ev.is_set():
                    break
                time.sleep(0.01)
                if self.conn_errors > 50:
                    break
        if conn is not None:
            conn.close()


class CrashTest(NodeTestCase):

    def run_writers(self, node, seed_base, how="kill9"):
        stop = threading.Event()
        writers = [Writer(node.public_port, seed_base + i, stop) for i in range(THREADS)]
        for w in writers:
            w.start()
        time.sleep(RUN_SECONDS)
        if how == "kill9":
            node.kill9()            # while the writers are busy
        else:
            t0 = time.monotonic()
            code = node.stop()      # SIGTERM while the writers are busy
            self.assertIn(code, (0, -15), "exit status after SIGTERM under load")
            self.assertLess(time.monotonic() - t0, 10.5)
        stop.set()
        for w in writers:
            w.join(timeout=30)
            self.assertFalse(w.is_alive(), "writer thread hung")
        return writers

    def verify(self, node, acked, sent):
        bad = []
        for oid, (digest, size, level) in acked.items():
            st, h, body = node.get(oid)
            if st != 200:
                bad.append("acked %s (size %d, level %d): GET %d %r" % (oid, size, level, st, body[:100]))
                continue
            if hashlib.sha256(body).hexdigest() != digest:
                bad.append("acked %s: body differs (got %d bytes, want %d)" % (oid, len(body), size))
            elif h.get("content-length") != str(size):
                bad.append("acked %s: Content-Length %s, want %d" % (oid, h.get("content-length"), size))
        self.assertEqual(bad[:20], [], "%d of %d acknowledged objects lost or damaged" % (len(bad), len(acked)))
        # Objects that were sent but not acknowledged: absent, or complete.
        partial = []
        for oid, digest in sent.items():
            if oid in acked:
                continue
            st, h, body = node.get(oid)
            if st == 404:
                continue
            if st == 200 and hashlib.sha256(body).hexdigest() == digest:
                continue
            partial.append("unacked %s: GET %d, %d bytes" % (oid, st, len(body)))
        self.assertEqual(partial[:20], [], "half-written objects visible after the crash")

    def test_kill9_during_puts(self):
        node = self.start_node()
        node_id = node.ping()
        all_acked = {}
        all_sent = {}
        for cycle in range(2):
            writers = self.run_writers(node, seed_base=1000 * (cycle + 1))
            acked = {}
            sent = {}
            errors = []
            for w in writers:
                acked.update(w.acked)
                sent.update(w.sent)
                errors.extend(w.errors)
            self.assertEqual(errors[:10], [], "non-200 answers while the node was healthy")
            self.assertGreater(len(acked), 20, "too few PUTs acknowledged in %.0f s" % RUN_SECONDS)
            all_acked.update(acked)
            all_sent.update(sent)
            sys.stderr.write("\ncycle %d: %d PUTs acknowledged, %d sent without an answer before kill -9\n"
                             % (cycle + 1, len(acked), len(sent) - len(acked)))
            node.start()
            self.assertEqual(node.ping(), node_id, "node id changed after kill -9")
            self.verify(node, all_acked, all_sent)
            # meta agrees with what was acknowledged
            for oid in list(acked)[:50]:
                st, _h, js = node.meta(oid)
                self.assertEqual(st, 200)
                self.assertEqual(js["size"], acked[oid][1])
                self.assertEqual(js["consistency"], acked[oid][2])
            # no unfinished-write files left behind once the node has recovered
            leftovers = leftover_temp_files(node.files_dir)
            self.assertEqual(leftovers[:20], [], "temporary files left under the files dir")
            self.assertEqual(leftover_temp_files(node.cold_dir)[:20], [],
                             "temporary files left in the (directory) cold store")
        # and after a clean restart everything is still there
        node.restart()
        self.assertEqual(node.ping(), node_id)
        self.verify(node, all_acked, all_sent)
        self.assertEqual(leftover_temp_files(node.files_dir)[:20], [])

        # A 200 at level 1 means the cold store had acknowledged the body: a node that lost
        # its state and files fetches every one of them back intact.
        level1 = [(oid, v) for oid, v in all_acked.items() if v[2] == 1]
        self.assertGreater(len(level1), 0)
        node.stop()
        for d in (node.state_dir, node.files_dir):
            shutil.rmtree(d)
            os.makedirs(d)
        node.start()
        bad = []
        for oid, (digest, size, _level) in level1[:400]:
            st, _h, body = node.get(oid, headers={"X-Meta-Fetch": "1"})
            if st != 200 or hashlib.sha256(body).hexdigest() != digest:
                bad.append("level-1 %s: GET with fetch %d, %d bytes (want %d)" % (oid, st, len(body), size))
        self.assertEqual(bad[:20], [], "%d acknowledged level-1 objects missing from the cold store" % len(bad))

    def test_sigterm_during_puts(self):
        node = self.start_node()
        node_id = node.ping()
        writers = self.run_writers(node, seed_base=9000, how="term")
        acked, sent, errors = {}, {}, []
        for w in writers:
            acked.update(w.acked)
            sent.update(w.sent)
            errors.extend(w.errors)
        # during shutdown a server may refuse new work with 503; nothing else
        self.assertEqual([e for e in errors if e[1] != 503][:10], [])
        self.assertGreater(len(acked), 20)
        node.start()
        self.assertEqual(node.ping(), node_id)
        self.verify(node, acked, sent)
        self.assertEqual(leftover_temp_files(node.files_dir)[:20], [])


if __name__ == "__main__":
    unittest.main()
