"""Public API black-box tests for objstore (SPEC.md §2, docs/API.md)."""

import email.utils
import hashlib
import json
import os
import re
import resource
import shutil
import threading
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ULID_RE, NodeTestCase, lower_headers, make_ulid, parse_responses  # noqa: E402

ETAG_RE = re.compile(r'^(W/)?"[^"]+"$')


def header_json(h, key):
    """Parse a JSON header value. Raw UTF-8 in a header arrives latin-1-decoded from
    http.client; accept it as well as ASCII-escaped JSON."""
    v = h.get(key)
    if v is None:
        return None
    try:
        v = v.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return json.loads(v)


def wipe_files(node):
    """Delete every regular file under the files dir (the bodies), keep directories."""
    removed = 0
    for dirpath, _d, filenames in os.walk(node.files_dir):
        for f in filenames:
            os.unlink(os.path.join(dirpath, f))
            removed += 1
    return removed


def wipe_state_and_files(node):
    for d in (node.state_dir, node.files_dir):
        shutil.rmtree(d)
        os.makedirs(d)


class ApiTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()

    # ------------------------------------------------------------ README flow
    def test_readme_flow(self):
        n = self.node
        oid = n.new_id()
        self.assertRegex(oid, ULID_RE)
        body = b"It works!\n"
        st, h, b = n.put(oid, body, level=2, name="test.txt")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-id"), oid)
        self.assertEqual(h.get("x-meta-name"), "test.txt")
        self.assertEqual(h.get("x-meta-consistencylevel"), "2")
        self.assertEqual(h.get("x-meta-size"), "10")
        self.assertIn("x-meta-version", h)
        self.assertRegex(h.get("etag", ""), ETAG_RE)
        put_etag = h["etag"]
        put_meta = json.loads(b)
        self.assertEqual(put_meta["id"], oid)
        self.assertEqual(put_meta["size"], 10)

        st, h, b = n.get(oid)
        self.assertEqual(st, 200)
        self.assertEqual(b, body)
        self.assertEqual(h.get("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(h.get("content-length"), "10")
        self.assertEqual(h.get("accept-ranges"), "bytes")
        self.assertRegex(h.get("etag", ""), ETAG_RE)
        self.assertEqual(h["etag"], put_etag)
        self.assertIn("last-modified", h)
        self.assertRegex(h["last-modified"], r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$")
        lm = email.utils.parsedate_to_datetime(h["last-modified"])
        self.assertLess(abs(lm.timestamp() - time.time()), 120, h["last-modified"])
        self.assertEqual(h.get("x-meta-id"), oid)
        self.assertEqual(h.get("x-meta-name"), "test.txt")
        self.assertEqual(h.get("x-meta-consistencylevel"), "2")
        self.assertNotIn("x-meta-fetched", h)

        st, h, js = n.meta(oid)
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type", "").startswith("application/json"))
        self.assertEqual(js["id"], oid)
        self.assertEqual(js["name"], "test.txt")
        self.assertEqual(js["size"], 10)
        self.assertEqual(js["etag"], put_etag)
        self.assertEqual(js["content_type"], "text/plain; charset=utf-8")
        self.assertIsInstance(js["timestamp"], int)
        self.assertLess(abs(js["timestamp"] / 1e9 - time.time()), 120, js["timestamp"])
        self.assertIsInstance(js["last_modified"], str)
        self.assertIn("version", js)
        self.assertEqual(js["consistency"], 2)
        self.assertEqual(js["user_meta"], {})
        self.assertIs(js["deleted"], False)
        self.assertIs(js["local_body"], True)
        self.assertEqual(js["cold"], "stored")

        st, h, b = n.delete(oid, method="POST")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-deleted"), "true")

        resp = n.get(oid)
        self.assertJsonError(resp, 404, "deleted")
        self.assertEqual(resp[1].get("x-meta-deleted"), "true")

        st, h, js = n.meta(oid)
        self.assertEqual(st, 200)
        self.assertIs(js["deleted"], True)
        self.assertEqual(js["id"], oid)

    def test_delete_with_delete_method(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"bye", level=0, name="bye.txt"))
        st, h, b = n.delete(oid, method="DELETE")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-deleted"), "true")
        resp = n.get(oid)
        self.assertJsonError(resp, 404, "deleted")
        self.assertEqual(resp[1].get("x-meta-deleted"), "true")
        # HEAD of a tombstone: 404 too
        st, h, b = n.get(oid, method="HEAD")
        self.assertEqual(st, 404)
        self.assertEqual(b, b"")

    def test_delete_unknown_id_404(self):
        self.assertJsonError(self.node.delete(make_ulid()), 404, "not_found")
        self.assertJsonError(self.node.delete(make_ulid(), method="DELETE"), 404, "not_found")

    def test_put_after_delete_is_new_object(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"one", level=1))
        self.assertOk(n.delete(oid))
        self.assertOk(n.put(oid, b"two", level=0))
        st, h, b = n.get(oid)
        self.assertEqual((st, b), (200, b"two"))
        self.assertNotEqual(h.get("x-meta-deleted"), "true")
        st, _h, js = n.meta(oid)
        self.assertIs(js["deleted"], False)

    # ----------------------------------------------------------- misc endpoints
    def test_ping_stable_across_restart(self):
        n = self.node
        p1 = n.ping()
        self.assertTrue(p1)
        self.assertEqual(n.ping(), p1)
        # a client holding a keep-alive connection must not stop the restart on the same port
        conn = n.connection()
        self.addCleanup(conn.close)
        conn.request("GET", "/api/v1/ping")
        conn.getresponse().read()
        n.restart()
        self.assertEqual(n.ping(), p1)
        n.kill9()
        n.start()
        self.assertEqual(n.ping(), p1)

    def test_id_endpoint(self):
        n = self.node
        ids = []
        for _ in range(50):
            st, h, b = n.request("GET", "/api/v1/id")
            self.assertEqual(st, 200)
            self.assertTrue(h.get("content-type", "").startswith("text/plain"), h.get("content-type"))
            ids.append(b.decode().strip())
        for i in ids:
            self.assertEqual(len(i), 26, i)
            self.assertRegex(i, ULID_RE)
        self.assertEqual(len(set(ids)), len(ids), "duplicate ids")
        self.assertEqual(ids, sorted(ids), "ids not increasing")
        # timestamp part is close to now
        ts = 0
        for c in ids[0][:10]:
            ts = ts * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(c)
        self.assertLess(abs(ts / 1000 - time.time()), 120)
        # randomness: the random part differs between two ids more than in the last char
        self.assertNotEqual(ids[0][10:20], ids[-1][10:20])

    def test_version(self):
        st, h, b = self.node.request("GET", "/api/v1/version")
        self.assertEqual(st, 200)
        js = json.loads(b)
        self.assertIsInstance(js, dict)
        self.assertIn("version", js)
        self.assertIn("build", js)
        self.assertTrue(str(js["version"]))

    def test_stats_shape(self):
        n = self.node
        st, h, b = n.request("GET", "/api/v1/stats")
        self.assertEqual(st, 200)
        s0 = json.loads(b)
        ds = s0["disk_stats"]
        for unit in ("bytes", "kb", "mb", "gb"):
            for what in ("all", "used", "free"):
                key = "%s_%s" % (unit, what)
                self.assertIn(key, ds)
                self.assertIsInstance(ds[key], (int, float), key)
                self.assertGreaterEqual(ds[key], 0, key)
        self.assertGreater(ds["bytes_all"], 0)
        self.assertLessEqual(ds["bytes_used"], ds["bytes_all"])
        self.assertLessEqual(ds["bytes_free"], ds["bytes_all"])
        self.assertLessEqual(ds["bytes_used"] + ds["bytes_free"], ds["bytes_all"] * 1.0001 + 4096)
        self.assertLessEqual(abs(ds["kb_all"] - ds["bytes_all"] / 1024), 1.0)
        self.assertLessEqual(abs(ds["mb_all"] - ds["bytes_all"] / 1024 ** 2), 1.0)
        self.assertLessEqual(abs(ds["gb_all"] - ds["bytes_all"] / 1024 ** 3), 1.0)
        for key in ("objects", "bytes", "hits", "misses", "peer_fetches", "cold_fetches",
                    "pending_uploads", "members"):
            self.assertIn(key, s0)
        for key in ("objects", "bytes", "hits", "misses", "peer_fetches", "cold_fetches",
                    "pending_uploads"):
            self.assertIsInstance(s0[key], int, key)

        oid = n.new_id()
        self.assertOk(n.put(oid, b"x" * 1000, level=0))
        self.assertOk(n.get(oid))
        s1 = json.loads(n.request("GET", "/api/v1/stats")[2])
        self.assertEqual(s1["objects"], s0["objects"] + 1)
        self.assertEqual(s1["bytes"], s0["bytes"] + 1000)
        self.assertGreaterEqual(s1["hits"], s0["hits"] + 1)

    def test_metrics_prometheus(self):
        n = self.node
        self.assertOk(n.put(n.new_id(), b"m"))
        st, h, b = n.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h.get("content-type"))
        text = b.decode("utf-8")
        self.assertTrue(text.endswith("\n"), "exposition must end with a newline")
        name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
        sample_re = re.compile(r"^(%s)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?\d+)?$" % name_re)
        types = {}
        samples = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# HELP "):
                self.assertRegex(line, r"^# HELP %s( .*)?$" % name_re)
            elif line.startswith("# TYPE "):
                m = re.match(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % name_re, line)
                self.assertIsNotNone(m, line)
                self.assertNotIn(m.group(1), types, "duplicate TYPE for " + m.group(1))
                types[m.group(1)] = m.group(2)
            elif line.startswith("#"):
                continue
            else:
                m = sample_re.match(line)
                self.assertIsNotNone(m, "bad sample line: %r" % line)
                name = m.group(1)
                base = re.sub(r"_(bucket|sum|count|total|created)$", "", name)
                self.assertTrue(name in types or base in types,
                                "sample %s has no # TYPE" % name)
                samples += 1
        self.assertGreater(samples, 0)

    # ------------------------------------------------------------------ HEAD
    def test_head_get_and_meta(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"It works!\n", level=0, name="test.txt"))
        st, hg, bg = n.get(oid)
        st, h, b = n.get(oid, method="HEAD")
        self.assertEqual(st, 200)
        self.assertEqual(b, b"")
        self.assertEqual(h.get("content-length"), "10")
        self.assertEqual(h.get("etag"), hg.get("etag"))
        self.assertEqual(h.get("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(h.get("x-meta-id"), oid)
        self.assertEqual(h.get("x-meta-name"), "test.txt")
        self.assertEqual(h.get("accept-ranges"), "bytes")
        st, h, b = n.request("HEAD", "/api/v1/meta/" + oid)
        self.assertEqual(st, 200)
        self.assertEqual(b, b"")
        # On the wire: a HEAD response carries no body, so the next pipelined response
        # starts right after its header block.
        req = ("HEAD /api/v1/get/%s HTTP/1.1\r\nHost: x\r\n\r\n"
               "HEAD /api/v1/meta/%s HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (oid, oid)).encode()
        data = n.raw(req, timeout=5)
        rs = parse_responses(data, head_flags=[True, True, False])
        self.assertEqual(len(rs), 3, data[:2000])
        self.assertEqual([r.get("status") for r in rs], [200, 200, 200], data[:2000])
        self.assertEqual(rs[0]["headers"].get("content-length"), "10")
        self.assertEqual(rs[2]["body"].decode().strip(), n.ping())

    # -------------------------------------------------------------- metadata
    def test_user_meta_round_trip(self):
        n = self.node
        oid = n.new_id()
        um = {"Foo-Bar": "baz", "camelCase": "Value", "lower": "x y z", "UPPER": "",
              "unicode": "h\u00e9llo \u2603", "quote": "a\"b\\c"}
        st, h, b = n.put(oid, b"data", level=0, name="d.bin", user_meta=um)
        self.assertEqual(st, 200, b)
        self.assertEqual(header_json(h, "x-meta-usermeta"), um)
        st, h, b = n.get(oid)
        self.assertEqual(st, 200)
        self.assertEqual(header_json(h, "x-meta-usermeta"), um)
        st, h, js = n.meta(oid)
        self.assertEqual(js["user_meta"], um)
        # empty object is fine
        oid2 = n.new_id()
        self.assertOk(n.put(oid2, b"d", user_meta={}))
        self.assertEqual(n.meta(oid2)[2]["user_meta"], {})

    def test_content_type_from_extension(self):
        n = self.node
        cases = [("a.json", "application/json"), ("b.png", "image/png"),
                 ("c.txt", "text/plain"), ("photo.JPG", "image/jpeg"),
                 ("d.unknownext", "application/octet-stream"),
                 ("noextension", "application/octet-stream"),
                 (None, "application/octet-stream")]
        for name, ctype in cases:
            with self.subTest(name=name):
                oid = n.new_id()
                self.assertOk(n.put(oid, b"{}", level=0, name=name))
                st, h, b = n.get(oid)
                self.assertEqual(st, 200)
                self.assertEqual(h.get("content-type", "").split(";")[0].strip(), ctype)
                self.assertEqual(n.meta(oid)[2]["content_type"].split(";")[0].strip(), ctype)

    def test_overwrite_new_body_new_etag(self):
        n = self.node
        oid = n.new_id()
        st, h1, _ = n.put(oid, b"version one", level=0, name="v.txt")
        self.assertEqual(st, 200)
        v1 = n.meta(oid)[2]
        st, h2, _ = n.put(oid, b"version two, longer", level=0, name="v2.txt")
        self.assertEqual(st, 200)
        self.assertNotEqual(h1["etag"], h2["etag"])
        st, h, b = n.get(oid)
        self.assertEqual(b, b"version two, longer")
        self.assertEqual(h["etag"], h2["etag"])
        self.assertEqual(h["x-meta-name"], "v2.txt")
        self.assertEqual(h["content-length"], str(len(b"version two, longer")))
        v2 = n.meta(oid)[2]
        self.assertNotEqual(v1["version"], v2["version"])
        self.assertEqual(v2["size"], len(b"version two, longer"))
        # same body twice -> same etag (content hash)
        oid2 = n.new_id()
        st, h3, _ = n.put(oid2, b"version two, longer", level=0)
        self.assertEqual(h3["etag"], h2["etag"])
        # overwrite survives a restart
        n.restart()
        st, h, b = n.get(oid)
        self.assertEqual((st, b), (200, b"version two, longer"))

    def test_concurrent_overwrites_consistent(self):
        """Writers overwrite one id while readers GET it: every answer is one complete
        version, with the ETag and Content-Length of that same version."""
        n = self.node
        oid = n.new_id()
        bodies = {}
        for w in range(4):
            for k in range(15):
                b = (b"writer %d version %d " % (w, k)) * (1000 + 397 * k)
                bodies[hashlib.sha256(b).hexdigest()] = b
        first = next(iter(bodies.values()))
        st, h, _ = n.put(oid, first)
        self.assertEqual(st, 200)
        etags = {}           # sha256 -> etag reported by the PUT
        lock = threading.Lock()
        problems = []
        stop = threading.Event()

        def writer(w):
            for k in range(15):
                b = (b"writer %d version %d " % (w, k)) * (1000 + 397 * k)
                st, h, body = n.put(oid, b)
                with lock:
                    if st != 200:
                        problems.append("PUT %d %r" % (st, body[:100]))
                    else:
                        etags[hashlib.sha256(b).hexdigest()] = h.get("etag")

        reads = [0]

        def reader():
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                st, h, body = n.get(oid)
                digest = hashlib.sha256(body).hexdigest()
                with lock:
                    reads[0] += 1
                    if st != 200:
                        problems.append("GET %d %r" % (st, body[:200]))
                    elif digest not in bodies:
                        problems.append("GET returned a body that was never written (%d bytes)" % len(body))
                    elif h.get("content-length") != str(len(body)):
                        problems.append("Content-Length %s for %d bytes" % (h.get("content-length"), len(body)))
                    elif digest in etags and etags[digest] != h.get("etag"):
                        problems.append("ETag %s does not belong to the body served" % h.get("etag"))

        writers = [self.spawn(writer, w) for w in range(4)]
        readers = [self.spawn(reader) for _ in range(3)]
        try:
            self.join_all(writers, timeout=60)
        finally:
            stop.set()
        self.join_all(readers, timeout=60)
        self.assertEqual(problems[:10], [])
        self.assertGreater(reads[0], 5)
        st, h, body = n.get(oid)
        st2, _h, js = n.meta(oid)
        self.assertEqual(js["size"], len(body))
        self.assertEqual(js["etag"], h["etag"])

    def test_delete_racing_overwrites_leaves_nothing_behind(self):
        """DELETE while PUTs of the same id commit: whichever wins, a deleted object
        keeps no body file and no bytes in the budget (/stats capacity)."""
        n = self.node
        leftovers = []
        for i in range(150):
            oid = n.new_id()
            self.assertOk(n.put(oid, b"v1 " * 3000))
            answers = []

            def delete_soon(delay=(i % 10) * 0.0003):  # across the PUT's commit
                time.sleep(delay)
                answers.append(n.delete(oid)[0])

            threads = [self.spawn(lambda: answers.append(n.put(oid, b"v2 " * 4000)[0])),
                       self.spawn(delete_soon)]
            self.join_all(threads, timeout=30)
            self.assertEqual(sorted(answers), [200, 200], "round %d" % i)
            if n.meta(oid)[0] == 200:  # the PUT came after the delete: live again
                self.assertEqual(n.delete(oid)[0], 200)
        st, _h, b = n.request("GET", "/api/v1/stats")
        self.assertEqual(st, 200)
        cap = json.loads(b)["capacity"]
        for dirpath, _d, filenames in os.walk(n.files_dir):
            if os.path.basename(dirpath) != "tmp":
                leftovers += [os.path.join(dirpath, f) for f in filenames]
        self.assertEqual(leftovers, [], "bodies left of deleted objects")
        self.assertEqual((cap["bodies"], cap["used_bytes"]), (0, 0), cap)

    def test_overwrite_and_delete_across_restarts(self):
        """Versions keep increasing across restarts (clean and kill -9): a write made right
        after a restart beats the one made before it."""
        n = self.node
        oid = n.new_id()
        for k in range(4):
            body = b"generation %d" % k
            self.assertOk(n.put(oid, body, level=1))
            if k % 2:
                n.kill9()
                n.start()
            else:
                n.restart()
            st, h, b = n.get(oid)
            self.assertEqual((st, b), (200, body), "after restart #%d" % k)
        self.assertOk(n.delete(oid))
        n.kill9()
        n.start()
        self.assertJsonError(n.get(oid), 404, "deleted")
        self.assertOk(n.put(oid, b"reborn", level=1))
        n.restart()
        self.assertEqual(n.get(oid)[:3:2], (200, b"reborn"))

    def test_overwrite_lower_level_refused(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"level one", level=1))
        self.assertJsonError(n.put(oid, b"level zero", level=0), 409, "level_lowered")
        st, h, b = n.get(oid)
        self.assertEqual((st, b), (200, b"level one"))
        self.assertEqual(h["x-meta-consistencylevel"], "1")
        # same or higher level is fine
        self.assertOk(n.put(oid, b"level two", level=2))
        self.assertJsonError(n.put(oid, b"level one again", level=1), 409, "level_lowered")
        self.assertEqual(n.get(oid)[2], b"level two")

    def test_raise_level_via_meta(self):
        n = self.node
        oid = n.new_id()
        um = {"Owner": "me"}
        self.assertOk(n.put(oid, b"raise me", level=0, name="r.json", user_meta=um))
        st, h, js = n.meta(oid)
        self.assertEqual(js["consistency"], 0)
        self.assertEqual(js["cold"], "none")
        etag = js["etag"]

        st, h, b = n.request("POST", "/api/v1/meta/" + oid, headers={"X-Meta-ConsistencyLevel": "1"})
        self.assertEqual(st, 200, b)
        st, h, js = n.meta(oid)
        self.assertEqual(js["consistency"], 1)
        self.assertEqual(js["cold"], "stored")
        self.assertEqual(js["etag"], etag)
        st, h, b = n.get(oid)
        self.assertEqual(b, b"raise me")
        self.assertEqual(h["x-meta-consistencylevel"], "1")

        # same level: no-op 200; lower: 409
        st, h, b = n.request("POST", "/api/v1/meta/" + oid, headers={"X-Meta-ConsistencyLevel": "1"})
        self.assertEqual(st, 200, b)
        self.assertJsonError(n.request("POST", "/api/v1/meta/" + oid,
                                       headers={"X-Meta-ConsistencyLevel": "0"}), 409, "level_lowered")
        self.assertJsonError(n.request("POST", "/api/v1/meta/" + oid,
                                       headers={"X-Meta-ConsistencyLevel": "7"}), 400, "bad_level")
        self.assertOk(n.request("POST", "/api/v1/meta/" + oid, headers={"X-Meta-ConsistencyLevel": "2"}))
        self.assertEqual(n.meta(oid)[2]["consistency"], 2)
        self.assertJsonError(n.request("POST", "/api/v1/meta/" + make_ulid(),
                                       headers={"X-Meta-ConsistencyLevel": "1"}), 404, "not_found")

        # the raise really uploaded the body: it comes back from the cold store alone
        n.stop()
        wipe_state_and_files(n)
        n.start()
        st, h, b = n.get(oid, headers={"X-Meta-Fetch": "1"})
        self.assertEqual(st, 200, b)
        self.assertEqual(b, b"raise me")
        self.assertEqual(h.get("x-meta-name"), "r.json")
        self.assertEqual(h.get("x-meta-consistencylevel"), "2")
        self.assertEqual(json.loads(h.get("x-meta-usermeta", "null")), um)

    def test_zero_byte_object(self):
        n = self.node
        oid = n.new_id()
        st, h, b = n.put(oid, b"", level=0, name="empty.txt")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-size"), "0")
        st, h, b = n.get(oid)
        self.assertEqual(st, 200)
        self.assertEqual(b, b"")
        self.assertEqual(h.get("content-length"), "0")
        self.assertRegex(h.get("etag", ""), ETAG_RE)
        self.assertEqual(n.meta(oid)[2]["size"], 0)
        # a level-1 empty object also works
        oid1 = n.new_id()
        self.assertOk(n.put(oid1, b"", level=1))
        self.assertEqual(n.get(oid1)[:1], (200,))

    def test_chunked_request_body(self):
        n = self.node
        oid = n.new_id()
        parts = [b"hello ", b"chunked " * 100, b"w" * 5000, b"!\n"]
        payload = b"".join(parts)
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts[:2])
        wire += b"%X;ext=1\r\n%s\r\n" % (len(parts[2]), parts[2])  # upper-case hex + extension
        wire += b"%x\r\n%s\r\n0\r\n\r\n" % (len(parts[3]), parts[3])
        req = ("POST /api/v1/put HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Meta-ID: %s\r\n"
               "X-Meta-Name: chunked.txt\r\nX-Meta-ConsistencyLevel: 1\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % oid).encode() + wire
        data = n.raw(req, timeout=10)
        rs = parse_responses(data)
        self.assertTrue(rs, data)
        self.assertEqual(rs[0].get("status"), 200, data[:500])
        self.assertEqual(rs[0]["headers"].get("x-meta-size"), str(len(payload)))
        st, h, b = n.get(oid)
        self.assertEqual(st, 200)
        self.assertEqual(b, payload)
        self.assertEqual(h["content-length"], str(len(payload)))
        self.assertEqual(n.meta(oid)[2]["size"], len(payload))
        # via http.client's own chunked encoder, with a generator body
        oid2 = n.new_id()

        def gen():
            for p in parts:
                yield p
        st, h, b = n.request("POST", "/api/v1/put", body=gen(),
                             headers={"X-Meta-ID": oid2})  # http.client sends it chunked
        self.assertEqual(st, 200, b)
        self.assertEqual(n.get(oid2)[2], payload)
        self.assertEqual(n.meta(oid2)[2]["size"], len(payload))
        # an empty chunked body
        oid3 = n.new_id()
        req = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n" % oid3).encode()
        rs = parse_responses(n.raw(req, timeout=5))
        self.assertEqual(rs[0].get("status"), 200)
        self.assertEqual(n.meta(oid3)[2]["size"], 0)

    def test_put_method_put_and_lowercase_id(self):
        n = self.node
        oid = n.new_id()
        st, h, b = n.put(oid.lower(), b"lower", method="PUT")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-id"), oid)  # echoed upper-case
        st, h, b = n.get(oid)
        self.assertEqual((st, b), (200, b"lower"))
        st, h, b = n.get(oid.lower())
        self.assertEqual((st, b), (200, b"lower"))
        self.assertEqual(h.get("x-meta-id"), oid)

    def test_starts_with_missing_dirs(self):
        node = self.start_node(start=False, precreate_dirs=False, name="nodirs")
        node.start()
        oid = node.new_id()
        self.assertOk(node.put(oid, b"abc", level=1))
        self.assertEqual(node.get(oid)[2], b"abc")

    def test_configuration_from_environment(self):
        """SPEC §6: every flag has an environment variable (NET_PUBLIC_ADDR, APP_STATE_DIR...)."""
        node = self.start_node(start=False, name="envcfg")
        node.config_via_env = True
        node.extra_env["APP_MAX_BODY_SIZE"] = "1K"
        node.start()
        oid = node.new_id()
        self.assertOk(node.put(oid, b"configured by env", level=1))
        self.assertJsonError(node.put(node.new_id(), b"x" * 2000), 413, "body_too_large")
        self.assertTrue(os.listdir(node.state_dir), "APP_STATE_DIR not used")
        self.assertTrue(any(os.scandir(node.files_dir)), "APP_FILES_DIR not used")

    def test_out_of_range_flags_refuse_to_start(self):
        """A negative number for an unsigned flag (read as 2^64 - 1 by the parser: no
        body limit, 2^64 threads), a duration past the clock's range (a "never"
        such as 1e10 s, which wrapped into the past) or a floating-point value that is
        not finite (NaN passed every range check and became a huge negative duration:
        empty replies, a spinning retry thread) is refused with an error that names
        the flag, from the command line and from the environment alike."""
        node = self.start_node(start=False, name="badflags")
        # Every floating-point option, by kind of check: a range, a positive or
        # non-negative number, a duration.
        float_flags = {"--gossip-interval": "APP_GOSSIP_INTERVAL",
                       "--suspect-timeout": "APP_SUSPECT_TIMEOUT",
                       "--sync-interval": "APP_SYNC_INTERVAL",
                       "--peer-timeout": "APP_PEER_TIMEOUT",
                       "--tombstone-purge-after": "APP_TOMBSTONE_PURGE_AFTER",
                       "--rate-limit": "NET_RATE_LIMIT",
                       "--rate-burst": "NET_RATE_BURST",
                       "--header-timeout": "NET_HEADER_TIMEOUT",
                       "--idle-timeout": "NET_IDLE_TIMEOUT",
                       "--shutdown-grace": "APP_SHUTDOWN_GRACE",
                       "--cold-retry-interval": "APP_COLD_RETRY_INTERVAL"}
        not_finite = ["-nan", "NaN(1)", "inf", "-inf", "1e400", "0x1p99999"]
        for i, (flag, env) in enumerate(sorted(float_flags.items())):
            for value in ("nan", not_finite[i % len(not_finite)]):
                with self.subTest(flag=flag, value=value):
                    node.extra_args, node.extra_env = [flag, value], {}
                    self.assertStartRefused(node, flag + ": expected a finite number")
                with self.subTest(env=env, value=value):
                    node.extra_args, node.extra_env = [], {env: value}
                    self.assertStartRefused(node, flag + ": expected a finite number")
        cases = [(["--max-body-size", "-1"], {}, "--max-body-size"),
                 ([], {"APP_MAX_BODY_SIZE": "-1"}, "--max-body-size"),
                 (["--threads", "-1"], {}, "--threads"),
                 ([], {"APP_THREADS": "-1"}, "--threads"),
                 (["--max-size", "-5M"], {}, "--max-size"),
                 (["--max-connections", "-1"], {}, "--max-connections"),
                 (["--idle-timeout", "1e10"], {}, "--idle-timeout"),
                 ([], {"NET_HEADER_TIMEOUT": "1e12"}, "--header-timeout"),
                 (["--cold-retry-interval", "1e9"], {}, "--cold-retry-interval")]
        for args, env, flag in cases:
            with self.subTest(args=args, env=env):
                node.extra_args, node.extra_env = list(args), dict(env)
                self.assertStartRefused(node, flag)
        node.extra_args, node.extra_env = ["--idle-timeout", "1e8"], {}  # three years: fine
        node.start()
        self.assertTrue(node.ping())

    def test_listen_addresses(self):
        """A listen address may name its host (resolved at start, as the original's Go
        listener did); a port that is not a number in 0..65535, or a name that does not
        resolve (not tried here: it needs DNS), stops the node at start with an error naming
        the flag."""
        node = self.start_node(start=False, name="listen")
        node.config_via_env = True
        for bad in ("127.0.0.1:10999abc", "127.0.0.1:70000", "127.0.0.1:", "[::1]:-1"):
            with self.subTest(addr=bad):
                node.extra_env["NET_PUBLIC_ADDR"] = bad
                self.assertStartRefused(node, "bad --public-addr")
        node.extra_env["NET_PUBLIC_ADDR"] = "localhost:%d" % node.public_port
        node.start()
        self.assertTrue(node.ping())

    def test_sigterm_stops_node_promptly(self):
        n = self.node
        self.assertOk(n.put(n.new_id(), b"x"))
        t0 = time.monotonic()
        code = n.stop()
        self.assertNotEqual(code, "killed-after-timeout", "node ignored SIGTERM for 10 s")
        self.assertIn(code, (0, -15), "exit status after SIGTERM")
        self.assertLess(time.monotonic() - t0, 10)

    # ------------------------------------------------------- cold store paths
    def test_refetch_after_files_wiped(self):
        n = self.node
        objs = {}
        for level in (1, 2):
            oid = n.new_id()
            body = os.urandom(3000 + level)
            st, h, b = n.put(oid, body, level=level, name="f%d.png" % level, user_meta={"L": str(level)})
            self.assertEqual(st, 200, b)
            objs[oid] = (level, body)
        oid0 = n.new_id()
        self.assertOk(n.put(oid0, b"level zero only", level=0))
        n.stop()
        self.assertGreater(wipe_files(n), 0, "no body files found under the files dir")
        n.start()
        for oid, (level, body) in objs.items():
            st, h, b = n.get(oid)
            self.assertEqual(st, 200, b)
            self.assertEqual(b, body)
            self.assertEqual(h.get("x-meta-fetched"), "true")
            self.assertEqual(h.get("x-meta-consistencylevel"), str(level))
            self.assertEqual(h.get("x-meta-name"), "f%d.png" % level)
            self.assertEqual(h.get("content-type"), "image/png")
            # second read is local again
            st, h, b = n.get(oid)
            self.assertEqual((st, b), (200, body))
            self.assertNotEqual(h.get("x-meta-fetched"), "true")
        # level 0 body gone and nowhere else: 503 body_unavailable (docs/API.md)
        self.assertJsonError(n.get(oid0), 503, "body_unavailable")

    def test_body_that_cannot_be_opened_is_kept(self):
        """A level-0 body whose file is there but cannot be opened (the node out of
        descriptors) is answered 503 and kept: not forgotten as vanished, served once
        descriptors are free again, and after a restart."""
        n = self.node
        oid = n.new_id()
        body = os.urandom(5000)
        self.assertOk(n.put(oid, body, level=0))
        n.restart()  # no descriptor of the body kept open from the PUT
        conn = n.connection()
        try:
            conn.request("GET", "/api/v1/ping")
            conn.getresponse().read()
            soft, hard = resource.prlimit(n.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(n.pid, resource.RLIMIT_NOFILE, (0, hard))  # every open fails
            try:
                conn.request("GET", "/api/v1/get/" + oid)
                r = conn.getresponse()
                resp = (r.status, lower_headers(r), r.read())
            finally:
                resource.prlimit(n.pid, resource.RLIMIT_NOFILE, (soft, hard))
        finally:
            conn.close()
        self.assertJsonError(resp, 503, "body_unavailable")
        self.assertEqual(n.get(oid)[:3:2], (200, body))
        n.restart()
        self.assertEqual(n.get(oid)[:3:2], (200, body))

    def put_and_evict(self, body, name):
        """PUTs `body` at level 1, then restarts the node without its bodies: the
        object is known, its body in the cold store only. Returns the id."""
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, body, level=1, name=name))
        n.stop()
        wipe_files(n)
        n.start()
        return oid

    def test_range_ahead_of_a_cold_fetch_is_read_on_its_own(self):
        """docs/ARCHITECTURE.md: a range starting 1 MiB or more past what the body's
        fetch has brought is read from the cold store on its own."""
        n = self.node
        body = os.urandom(3 * 1024 * 1024)
        oid = self.put_and_evict(body, "clip.mp4")
        st, h, b = n.get(oid, headers={"Range": "bytes=2500000-2600000"})
        self.assertEqual(st, 206, b[:300])
        self.assertEqual(b, body[2500000:2600001])
        self.assertEqual(h.get("content-range"), "bytes 2500000-2600000/%d" % len(body))
        self.assertEqual(h.get("content-type"), "video/mp4")
        st, h, b = n.get(oid)  # the body's fetch ran beside it
        self.assertEqual((st, b), (200, body))
        deadline = time.monotonic() + 10  # the fetch counts itself after serving its readers
        while True:
            stats = json.loads(n.request("GET", "/api/v1/stats")[2])
            if stats["cold_fetches"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual((stats["cold_range_reads"], stats["cold_fetches"]), (1, 1))

    def test_concurrent_misses_fetch_once(self):
        """SPEC §2: concurrent misses for one id cause exactly one cold-store fetch."""
        n = self.node
        body = os.urandom(4 * 1024 * 1024)
        oid = self.put_and_evict(body, "big.bin")
        before = json.loads(n.request("GET", "/api/v1/stats")[2])["cold_fetches"]
        results = [None] * 12
        barrier = threading.Barrier(len(results))

        def worker(i):
            try:
                barrier.wait(timeout=10)
                st, h, b = n.get(oid)
                results[i] = (st, hashlib.sha256(b).hexdigest())
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = ("exception", repr(e))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        want = (200, hashlib.sha256(body).hexdigest())
        self.assertEqual(results, [want] * len(results))
        after = json.loads(n.request("GET", "/api/v1/stats")[2])["cold_fetches"]
        self.assertEqual(after - before, 1, "cold-store fetches for 12 concurrent misses of one id")

    def test_fetch_unknown_id_from_cold_store(self):
        n = self.node
        objs = []
        for level, name, um in ((1, "photo.png", {"Camera": "X100", "iso": "200"}),
                                (2, "doc.json", {"k": "v"})):
            oid = n.new_id()
            body = os.urandom(5000) + name.encode()
            st, h, b = n.put(oid, body, level=level, name=name, user_meta=um)
            self.assertEqual(st, 200, b)
            etag = h["etag"]
            objs.append((oid, level, name, um, body, etag))
        lvl0 = n.new_id()
        self.assertOk(n.put(lvl0, b"only here", level=0))
        n.stop()
        wipe_state_and_files(n)
        n.start()
        for oid, level, name, um, body, etag in objs:
            self.assertJsonError(n.get(oid), 404, "not_found")
            for fetch_value in ("1", "true"):
                st, h, b = n.get(oid, headers={"X-Meta-Fetch": fetch_value})
                self.assertEqual(st, 200, b)
                self.assertEqual(b, body)
                if fetch_value == "1":
                    self.assertEqual(h.get("x-meta-fetched"), "true")
                self.assertEqual(h.get("x-meta-name"), name)
                self.assertEqual(h.get("x-meta-consistencylevel"), str(level))
                self.assertEqual(json.loads(h.get("x-meta-usermeta", "null")), um)
                self.assertEqual(h.get("content-type").split(";")[0],
                                 "image/png" if name.endswith(".png") else "application/json")
                self.assertEqual(h.get("etag"), etag)
            st, h, js = n.meta(oid)
            self.assertEqual(st, 200)
            self.assertEqual(js["name"], name)
            self.assertEqual(js["consistency"], level)
            self.assertEqual(js["user_meta"], um)
            self.assertEqual(js["size"], len(body))
        # a level-0 object never reached the cold store
        self.assertJsonError(n.get(lvl0, headers={"X-Meta-Fetch": "1"}), 404, "not_found")
        self.assertJsonError(n.get(make_ulid(), headers={"X-Meta-Fetch": "1"}), 404, "not_found")

    def test_deleted_not_revived_by_fetch(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"to be deleted", level=1, name="gone.txt"))
        self.assertOk(n.delete(oid))
        for _ in range(2):
            resp = n.get(oid, headers={"X-Meta-Fetch": "1"})
            self.assertJsonError(resp, 404, "deleted")
            self.assertEqual(resp[1].get("x-meta-deleted"), "true")
        # after a restart and with the files wiped: still deleted
        n.stop()
        wipe_files(n)
        n.start()
        resp = n.get(oid, headers={"X-Meta-Fetch": "1"})
        self.assertJsonError(resp, 404, "deleted")
        self.assertEqual(resp[1].get("x-meta-deleted"), "true")
        self.assertIs(n.meta(oid)[2]["deleted"], True)
        # deletes reach the cold store too (SPEC §1/§7): once the queue drained, a node
        # with no memory of the object cannot fetch it back.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = json.loads(n.request("GET", "/api/v1/stats")[2])
            if stats.get("pending_uploads", 0) == 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        n.stop()
        wipe_state_and_files(n)
        n.start()
        resp = n.get(oid, headers={"X-Meta-Fetch": "1"})
        self.assertJsonError(resp, 404, ("not_found", "deleted"),
                             "deleted object came back from the cold store")


class StartupDirectoriesTest(NodeTestCase):
    """What a node does at start with its directories: it refuses flags that would
    put one of its stores inside another, or at the filesystem's root, and its
    start-up sweep of orphan bodies touches only files named as bodies in the
    body store's shard directories."""

    def test_cold_or_state_dir_inside_the_files_dir_is_refused(self):
        """A level-1 PUT's cold copy (<cold>/<xx>/<id>@<stamp>, .meta) under
        --files-dir was swept away as orphans at the next start."""
        node = self.start_node(start=False, name="nested")
        files, cold, state = node.files_dir, node.cold_dir, node.state_dir
        overlap, inside = "overlap (one is inside the other)", "is inside --files-dir"
        cases = [(files, state, os.path.join(files, "cold"), overlap),
                 (files, state, files + "/", overlap),
                 (files, state, os.path.join(files, "ab"), overlap),
                 (os.path.join(cold, "files"), state, cold, overlap),
                 (files, os.path.join(files, "state"), cold, inside),
                 (files, files, cold, inside)]
        for f, st, c, why in cases:
            with self.subTest(files=f, state=st, cold=c):
                node.files_dir, node.state_dir, node.cold_dir = f, st, c
                self.assertStartRefused(node, why)
                self.assertFalse(os.path.exists(os.path.join(files, "cold")), "made before refusing")
        node.files_dir, node.state_dir, node.cold_dir = files, state, cold
        node.start()
        self.assertOk(node.put(node.new_id(), b"separate directories", level=1))

    def test_empty_or_root_dirs_are_refused(self):
        """--files-dir "" became the root: the node made /00../ff there before failing."""
        node = self.start_node(start=False, name="rootdirs")
        dirs = {"--files-dir": "files_dir", "--state-dir": "state_dir", "--cold-dir": "cold_dir"}
        root_before = sorted(os.listdir("/"))
        for flag, attr in dirs.items():
            for value, why in (("", "is empty"), ("/", "/ is the filesystem's root")):
                with self.subTest(flag=flag, value=value):
                    good = getattr(node, attr)
                    setattr(node, attr, value)
                    self.assertStartRefused(node, "%s %s" % (flag, why))
                    setattr(node, attr, good)
                    self.assertEqual(sorted(os.listdir("/")), root_before, "made at the root")
        node.start()
        self.assertTrue(node.ping())

    def test_what_is_not_a_body_under_the_files_dir_survives_a_restart(self):
        """--files-dir may hold other data: start-up used to delete every file three
        levels down that no record named, whatever its name or directory."""
        node = self.start_node(name="foreign")
        oid = node.new_id()
        self.assertOk(node.put(oid, b"a body", level=1))
        node.stop()
        foreign = ["ab/cd/notes.txt", "ab/cd/%s@zz" % oid, "other/app/data.bin",
                   "cold/3f/%s@0000000000000001" % oid, "cold/3f/%s.meta" % oid]
        for rel in foreign:
            path = os.path.join(node.files_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("not a body: " + rel)
        orphan = os.path.join(node.files_dir, "00/00/%s@0000000000000001" % make_ulid())
        os.makedirs(os.path.dirname(orphan), exist_ok=True)
        open(orphan, "w").close()
        node.start()
        for rel in foreign:
            with open(os.path.join(node.files_dir, rel)) as f:
                self.assertEqual(f.read(), "not a body: " + rel)
        self.assertFalse(os.path.exists(orphan), "an orphan body survived the start")
        self.assertEqual(node.get(oid)[2], b"a body")

    def test_an_entry_that_cannot_be_read_does_not_stop_the_start(self):
        """A symbolic link loop in --files-dir: is_directory threw from the start-up
        sweep and the node died on an uncaught exception (exit 134)."""
        node = self.start_node(start=False, name="symloop")
        os.symlink("loop", os.path.join(node.files_dir, "loop"))
        os.makedirs(os.path.join(node.files_dir, "ab"))
        os.symlink("cd", os.path.join(node.files_dir, "ab", "cd"))  # a leaf's name
        node.start()
        oid = node.new_id()
        self.assertOk(node.put(oid, b"still works", level=1))
        node.restart()
        self.assertEqual(node.get(oid)[2], b"still works")
        self.assertIn("left alone", node.log_tail())


class ColdOutageTest(NodeTestCase):
    """SPEC §1: cold store unreachable -> 503, body kept locally, durable retry queue,
    `meta` shows the pending state. The outage is simulated by putting a regular file
    where the cold directory was (no write below it can succeed)."""

    def wait_for(self, fn, limit, what):
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.2)
        self.fail("%s not reached within %.0f s (last: %r)" % (what, limit, last))

    def test_fetch_during_outage_is_503(self):
        """A read that needs the cold store while it is down is a 503, not a 404 (a 404
        would tell the client the object does not exist)."""
        n = self.start_node()
        known = n.new_id()
        unknown = n.new_id()
        self.assertOk(n.put(unknown, b"only in the cold store", level=1))
        n.stop()
        wipe_state_and_files(n)          # `unknown` now exists only in the cold store
        n.start()
        self.assertOk(n.put(known, b"known, body will vanish", level=1))
        n.stop()
        wipe_files(n)                    # `known`: metadata here, body only in the cold store
        n.start()                        # (a directory cold store must exist at start-up)
        backup = n.cold_dir + ".away"
        os.rename(n.cold_dir, backup)
        with open(n.cold_dir, "w") as f:
            f.write("not a directory")
        try:
            self.assertJsonError(n.get(known), 503, ("cold_store_unavailable", "body_unavailable"))
            self.assertJsonError(n.get(unknown, headers={"X-Meta-Fetch": "1"}), 503,
                                 "cold_store_unavailable")
            n.stop()
        finally:
            if os.path.isfile(n.cold_dir):
                os.unlink(n.cold_dir)
            os.rename(backup, n.cold_dir)
        n.start()
        self.assertEqual(n.get(known)[2], b"known, body will vanish")
        self.assertEqual(n.get(unknown, headers={"X-Meta-Fetch": "1"})[2], b"only in the cold store")

    def test_cold_store_down_then_back(self):
        n = self.start_node("--cold-retry-interval", "0.5")
        a = n.new_id()
        self.assertOk(n.put(a, b"stored before the outage", level=1))
        backup = n.cold_dir + ".away"
        os.rename(n.cold_dir, backup)
        with open(n.cold_dir, "w") as f:
            f.write("not a directory")
        try:
            b = n.new_id()
            body_b = os.urandom(20000)
            resp = n.put(b, body_b, level=1, name="b.bin", user_meta={"during": "outage"})
            self.assertJsonError(resp, 503, "cold_store_unavailable")
            st, h, got = n.get(b)
            self.assertEqual((st, got), (200, body_b), "503'd body not kept locally")
            st, h, js = n.meta(b)
            self.assertEqual(st, 200)
            self.assertEqual(js["cold"], "pending")
            self.assertEqual(js["consistency"], 1)
            stats = json.loads(n.request("GET", "/api/v1/stats")[2])
            self.assertGreaterEqual(stats["pending_uploads"], 1)
            # level 0 does not need the cold store
            c = n.new_id()
            self.assertOk(n.put(c, b"level zero during the outage", level=0))
            # a delete during the outage is accepted locally
            self.assertOk(n.delete(a))
            # the queue must survive a restart
            n.stop()
        finally:
            if os.path.isfile(n.cold_dir):
                os.unlink(n.cold_dir)
            os.rename(backup, n.cold_dir)
        n.start()
        self.wait_for(lambda: n.meta(b)[2].get("cold") == "stored", 20, "pending upload retried")
        self.wait_for(lambda: json.loads(n.request("GET", "/api/v1/stats")[2])["pending_uploads"] == 0,
                      20, "pending queue drained")
        time.sleep(0.5)
        # the cold store now has b (and not a): a node without memory sees exactly that
        n.stop()
        wipe_state_and_files(n)
        n.start()
        st, h, got = n.get(b, headers={"X-Meta-Fetch": "1"})
        self.assertEqual((st, got), (200, body_b))
        self.assertEqual(h.get("x-meta-name"), "b.bin")
        self.assertEqual(header_json(h, "x-meta-usermeta"), {"during": "outage"})
        self.assertJsonError(n.get(a, headers={"X-Meta-Fetch": "1"}), 404, ("not_found", "deleted"),
                             "delete made during the outage never reached the cold store")


if __name__ == "__main__":
    unittest.main()
