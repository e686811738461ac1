"""HTTP edge cases: ranges, conditionals, error codes, malformed HTTP, path traversal,
keep-alive and timeouts (SPEC.md §2, docs/API.md)."""

import json
import os
import random
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, NodeTestCase, leftover_temp_files, make_ulid, parse_responses, payload  # noqa: E402

BODY100 = bytes(range(100))


def first_response(data):
    rs = parse_responses(data)
    return rs[0] if rs and "status" in rs[0] else None


class RangeAndConditionalTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()
        self.oid = self.node.new_id()
        st, h, b = self.node.put(self.oid, BODY100, level=0, name="hundred.bin")
        self.assertEqual(st, 200, b)
        self.etag = h["etag"]

    def rng(self, spec, oid=None):
        return self.node.get(oid or self.oid, headers={"Range": spec})

    def test_ranges_satisfiable(self):
        cases = [("bytes=0-0", 0, 0), ("bytes=0-99", 0, 99), ("bytes=0-1000", 0, 99),
                 ("bytes=50-", 50, 99), ("bytes=-10", 90, 99), ("bytes=-1000", 0, 99),
                 ("bytes=99-99", 99, 99), ("bytes=10-19", 10, 19), ("bytes=99-", 99, 99)]
        for spec, a, b in cases:
            with self.subTest(range=spec):
                st, h, body = self.rng(spec)
                self.assertEqual(st, 206, body[:200])
                self.assertEqual(body, BODY100[a:b + 1])
                self.assertEqual(h.get("content-range"), "bytes %d-%d/100" % (a, b))
                self.assertEqual(h.get("content-length"), str(b - a + 1))
                self.assertEqual(h.get("etag"), self.etag)
                self.assertEqual(h.get("accept-ranges"), "bytes")
                self.assertEqual(h.get("content-type"), "application/octet-stream")

    def test_range_unsatisfiable(self):
        for spec in ("bytes=100-", "bytes=100-200", "bytes=1000-1001"):
            with self.subTest(range=spec):
                resp = self.rng(spec)
                self.assertJsonError(resp, 416, "range_not_satisfiable")
                self.assertEqual(resp[1].get("content-range"), "bytes */100")

    def test_range_ignored(self):
        for spec in ("bytes=5-2", "items=0-5", "bytes=0-1,5-6", "bytes=abc", "bytes=", "garbage",
                     "bytes=--5", "bytes=1-2-3"):
            with self.subTest(range=spec):
                st, h, body = self.rng(spec)
                self.assertEqual(st, 200, body[:200])
                self.assertEqual(body, BODY100)
                self.assertNotIn("content-range", h)
                self.assertEqual(h.get("content-length"), "100")

    def test_range_on_zero_byte_object(self):
        oid = self.node.new_id()
        self.assertOk(self.node.put(oid, b"", level=0))
        for spec in ("bytes=0-0", "bytes=0-"):
            with self.subTest(range=spec):
                resp = self.rng(spec, oid)
                self.assertJsonError(resp, 416, "range_not_satisfiable")
                self.assertEqual(resp[1].get("content-range"), "bytes */0")

    def test_range_with_head(self):
        st, h, b = self.node.get(self.oid, headers={"Range": "bytes=10-19"}, method="HEAD")
        self.assertIn(st, (200, 206))
        self.assertEqual(b, b"")
        if st == 206:
            self.assertEqual(h.get("content-range"), "bytes 10-19/100")
            self.assertEqual(h.get("content-length"), "10")

    def test_if_none_match(self):
        n = self.node
        weak = "W/" + self.etag
        for value in (self.etag, "*", weak, '"nope", ' + self.etag, '"a","b", ' + self.etag + ' , "c"'):
            with self.subTest(inm=value):
                st, h, b = n.get(self.oid, headers={"If-None-Match": value})
                self.assertEqual(st, 304, b[:200])
                self.assertEqual(b, b"")
                self.assertEqual(h.get("etag"), self.etag)
        for value in ('"nope"', '"nope", "other"', 'W/"nope"'):
            with self.subTest(inm=value):
                st, h, b = n.get(self.oid, headers={"If-None-Match": value})
                self.assertEqual(st, 200)
                self.assertEqual(b, BODY100)
        st, h, b = n.get(self.oid, headers={"If-None-Match": self.etag}, method="HEAD")
        self.assertEqual(st, 304)

    def test_if_modified_since(self):
        n = self.node
        st, h, b = n.get(self.oid)
        lm = h["last-modified"]
        future = "Fri, 01 Jan 2100 00:00:00 GMT"
        past = "Mon, 01 Jan 1990 00:00:00 GMT"
        self.assertEqual(n.get(self.oid, headers={"If-Modified-Since": future})[0], 304)
        self.assertEqual(n.get(self.oid, headers={"If-Modified-Since": lm})[0], 304)
        st, h, b = n.get(self.oid, headers={"If-Modified-Since": past})
        self.assertEqual((st, b), (200, BODY100))
        # an invalid date is ignored
        st, h, b = n.get(self.oid, headers={"If-Modified-Since": "not a date"})
        self.assertEqual((st, b), (200, BODY100))
        # If-None-Match takes precedence: a non-matching etag means 200 even with IMS in the future
        st, h, b = n.get(self.oid, headers={"If-None-Match": '"nope"', "If-Modified-Since": future})
        self.assertEqual((st, b), (200, BODY100))

    def test_if_match_and_if_unmodified_since(self):
        # RFC 9110 §13.1.1, §13.1.4: strong comparison; 412 when the condition fails.
        n = self.node
        lm = n.get(self.oid)[1]["last-modified"]
        for method in ("GET", "HEAD"):
            for value in (self.etag, "*", '"nope", ' + self.etag):
                with self.subTest(method=method, im=value):
                    st, h, b = n.get(self.oid, headers={"If-Match": value}, method=method)
                    self.assertEqual(st, 200, b[:200])
                    self.assertEqual(b, BODY100 if method == "GET" else b"")
            for value in ('"nope"', "W/" + self.etag):
                with self.subTest(method=method, im=value):
                    resp = n.get(self.oid, headers={"If-Match": value}, method=method)
                    if method == "GET":
                        self.assertJsonError(resp, 412, "precondition_failed")
                    self.assertEqual(resp[0], 412)
                    self.assertEqual(resp[1].get("etag"), self.etag)
        past = "Mon, 01 Jan 1990 00:00:00 GMT"
        self.assertJsonError(n.get(self.oid, headers={"If-Unmodified-Since": past}), 412,
                             "precondition_failed")
        for value in (lm, "Fri, 01 Jan 2100 00:00:00 GMT", "not a date"):
            with self.subTest(ius=value):
                self.assertEqual(n.get(self.oid, headers={"If-Unmodified-Since": value})[2], BODY100)
        # If-Match wins over If-Unmodified-Since; the range still applies after it
        st, h, b = n.get(self.oid, headers={"If-Match": self.etag, "If-Unmodified-Since": past,
                                            "Range": "bytes=0-9"})
        self.assertEqual((st, b), (206, BODY100[:10]))

    def test_conditional_writes_are_refused(self):
        n = self.node
        for cond in ({"If-Match": self.etag}, {"If-None-Match": "*"},
                     {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}):
            with self.subTest(cond=cond):
                self.assertJsonError(n.put(self.oid, b"overwritten", headers=cond), 501,
                                     "conditional_write_unsupported")
                self.assertJsonError(n.request("POST", "/api/v1/delete/" + self.oid, headers=cond),
                                     501, "conditional_write_unsupported")
                self.assertJsonError(n.request("POST", "/api/v1/meta/" + self.oid,
                                               headers=dict(cond, **{"X-Meta-ConsistencyLevel": "0"})),
                                     501, "conditional_write_unsupported")
        self.assertEqual(n.get(self.oid)[2], BODY100, "a refused conditional write changed the object")


class ErrorCodeTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()

    def test_missing_id(self):
        n = self.node
        resp = n.request("POST", "/api/v1/put", body=b"abc", headers={"Content-Length": "3"})
        js = self.assertJsonError(resp, 400, "missing_id")
        self.assertIn("/api/v1/id", js["error"])

    def test_bad_ids_on_put(self):
        n = self.node
        good = n.new_id()
        bad = {
            "too short": good[:25],
            "27 chars": good + "0",
            "letter U": good[:10] + "U" + good[11:],
            "first char 8": "8" + good[1:],
            "first char Z": "Z" + good[1:],
            "punctuation": good[:25] + "-",
            "empty": "",
            "traversal": "../../etc/passwd",
            "slash": good[:13] + "/" + good[14:],
        }
        for what, bid in bad.items():
            with self.subTest(what=what):
                if bid == "":
                    resp = n.request("POST", "/api/v1/put", body=b"x",
                                     headers={"Content-Length": "1", "X-Meta-ID": ""})
                    self.assertJsonError(resp, 400, ("bad_id", "missing_id"))
                else:
                    self.assertJsonError(n.put(bid, b"x"), 400, "bad_id")

    def test_bad_ids_on_get_meta_delete(self):
        n = self.node
        good = n.new_id()
        for bid in (good[:25], good + "0", good[:10] + "U" + good[11:], "8" + good[1:]):
            with self.subTest(id=bid):
                self.assertJsonError(n.get(bid), 400, "bad_id")
                self.assertJsonError(n.request("GET", "/api/v1/meta/" + bid), 400, "bad_id")
                self.assertJsonError(n.delete(bid), 400, "bad_id")

    def test_crockford_aliases(self):
        n = self.node
        oid = n.new_id()
        # replace some 0/1 in the random part with O / I / L (Crockford aliases)
        alias = oid[:10] + "OIL" + oid[13:]
        canonical = oid[:10] + "011" + oid[13:]
        st, h, b = n.put(alias, b"alias")
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-meta-id"), canonical)
        self.assertEqual(n.get(canonical)[2], b"alias")
        self.assertEqual(n.get(alias.lower())[2], b"alias")

    def test_bad_level(self):
        n = self.node
        for lvl in ("3", "-1", "abc", "1.5", "2x", " ", "99999999999999999999"):
            with self.subTest(level=lvl):
                resp = n.request("POST", "/api/v1/put", body=b"x",
                                 headers={"X-Meta-ID": n.new_id(), "X-Meta-ConsistencyLevel": lvl,
                                          "Content-Length": "1"})
                if lvl.strip() == "":
                    # an empty header may mean "default"; it must not be an error other than bad_level
                    if resp[0] != 200:
                        self.assertJsonError(resp, 400, "bad_level")
                    continue
                self.assertJsonError(resp, 400, "bad_level")

    def test_bad_user_meta(self):
        n = self.node
        for um in ("not json", "[1,2]", '{"a":1}', '{"a":null}', '{"a":{"b":"c"}}', '"str"',
                   "{", '{"a":"b"} trailing', "123", "null"):
            with self.subTest(user_meta=um):
                oid = n.new_id()
                self.assertJsonError(n.put(oid, b"x", user_meta=um), 400, "bad_user_meta")
                self.assertJsonError(n.get(oid), 404, "not_found")

    def test_not_found(self):
        n = self.node
        oid = n.new_id()
        self.assertJsonError(n.get(oid), 404, "not_found")
        self.assertJsonError(n.request("GET", "/api/v1/meta/" + oid), 404, "not_found")
        st, h, b = n.request("HEAD", "/api/v1/get/" + oid)
        self.assertEqual((st, b), (404, b""))

    def test_unknown_paths(self):
        n = self.node
        for path in ("/", "/api/v1/nope", "/api/v2/get/" + make_ulid(), "/api/v1/getx/" + make_ulid(),
                     "/favicon.ico", "/api/v1/get/%s/extra" % make_ulid()):
            with self.subTest(path=path):
                self.assertJsonError(n.request("GET", path), (404, 400))
        self.assertJsonError(n.request("GET", "/api/v1/nope"), 404)
        self.assertJsonError(n.request("GET", "/api/v1/get/"), (400, 404))

    def test_wrong_method(self):
        n = self.node
        oid = make_ulid()
        for method, path in (("DELETE", "/api/v1/id"), ("GET", "/api/v1/put"),
                             ("POST", "/api/v1/ping"), ("PATCH", "/api/v1/get/" + oid),
                             ("PUT", "/api/v1/get/" + oid), ("GET", "/api/v1/delete/" + oid),
                             ("DELETE", "/api/v1/meta/" + oid), ("POST", "/metrics")):
            with self.subTest(method=method, path=path):
                resp = n.request(method, path)
                self.assertJsonError(resp, 405, "method_not_allowed")
                self.assertIn("allow", resp[1], "405 without an Allow header (RFC 9110 §15.5.6)")


class MalformedHttpTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()

    def expect_400_closed(self, data, statuses=(400,), codes=None, timeout=3.0):
        out, closed = self.node.raw(data, timeout=timeout, return_closed=True)
        r = first_response(out)
        self.assertIsNotNone(r, "no HTTP response to %r: got %r" % (data[:80], out[:200]))
        self.assertIn(r["status"], statuses, out[:300])
        self.assertTrue(closed, "connection not closed after a malformed request %r" % data[:80])
        if r["body"]:
            js = json.loads(r["body"])
            self.assertIn("error", js)
            self.assertIn("code", js)
            if codes:
                self.assertIn(js["code"], codes)
        self.assertTrue(self.node.alive())
        return r

    def test_garbage_request_line(self):
        for data in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\x03\r\n\r\n", b"GET\r\n\r\n",
                     b"GET /api/v1/ping\r\n\r\n", b"GET /api/v1/ping HTTP/1.1 extra\r\n\r\n",
                     b"GET /api/v1/ping FOO/1.1\r\nHost: x\r\n\r\n"):
            with self.subTest(data=data):
                self.expect_400_closed(data)
        self.assertTrue(self.node.ping())

    def test_bad_header_lines(self):
        for data in (b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.1\r\nHost : x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.1\r\n: novalue\r\n\r\n"):
            with self.subTest(data=data):
                self.expect_400_closed(data)

    def test_host_missing_or_repeated(self):
        """RFC 9112 §3.2: an HTTP/1.1 request without Host, and any request with more
        than one, is answered 400; HTTP/1.0 may leave it out."""
        for data in (b"GET /api/v1/ping HTTP/1.1\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n"):
            with self.subTest(data=data):
                r = self.expect_400_closed(data, codes=("bad_request",))
                self.assertIn(b"Host", r["body"])
        out = self.node.raw(b"GET /api/v1/ping HTTP/1.0\r\n\r\n")
        self.assertEqual(first_response(out)["status"], 200)

    def test_unsupported_http_version(self):
        """A well-formed version other than HTTP/1.0 and 1.1 gets 505 (Beast parses no
        other); a malformed one stays 400 (test_garbage_request_line)."""
        for data in (b"GET /api/v1/ping HTTP/2.0\r\nHost: x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/3.0\r\nHost: x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/0.9\r\nHost: x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/1.2\r\nHost: x\r\n\r\n",
                     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):  # HTTP/2's connection preface
            with self.subTest(data=data):
                r = self.expect_400_closed(data, statuses=(505,),
                                           codes=("http_version_not_supported",))
                self.assertIn(data.split(b"\r\n")[0][-8:], r["body"])
        for data in (b"GET /api/v1/ping HTTP/2.0 x\r\nHost: x\r\n\r\n",
                     b"GET /api/ v1 HTTP/2.0\r\nHost: x\r\n\r\n",
                     b"GET /api/v1/ping HTTP/20\r\nHost: x\r\n\r\n"):
            with self.subTest(data=data):
                self.expect_400_closed(data, codes=("bad_request",))

    def test_header_section_too_large(self):
        data = (b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        self.expect_400_closed(data, statuses=(400, 431), codes=("headers_too_large", "bad_request"))
        # a long request line too
        data = b"GET /api/v1/get/" + b"A" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.expect_400_closed(data, statuses=(400, 414, 431))
        self.assertTrue(self.node.ping())
        # just under the limit is fine
        data = (b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
                + b"a" * 12000 + b"\r\n\r\n")
        r = first_response(self.node.raw(data))
        self.assertEqual(r and r["status"], 200)

    def test_too_many_headers(self):
        hdrs = b"".join(b"X-H-%d: v\r\n" % i for i in range(200))
        data = b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n"
        self.expect_400_closed(data, statuses=(400, 431), codes=("headers_too_large", "bad_request"))
        hdrs = b"".join(b"X-H-%d: v\r\n" % i for i in range(50))
        data = b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + hdrs + b"\r\n"
        r = first_response(self.node.raw(data))
        self.assertEqual(r and r["status"], 200)

    def test_te_and_cl(self):
        oid = self.node.new_id()
        data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % oid).encode()
        self.expect_400_closed(data)
        self.assertJsonError(self.node.get(oid), 404, "not_found")

    def test_bad_content_length(self):
        for cl in (b"abc", b"-1", b"1.5", b"5, 6", b"99999999999999999999999"):
            with self.subTest(cl=cl):
                oid = self.node.new_id()
                data = (b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: " + oid.encode()
                        + b"\r\nContent-Length: " + cl + b"\r\n\r\nhello")
                self.expect_400_closed(data, statuses=(400, 413))
                self.assertEqual(self.node.get(oid)[0], 404)
        oid = self.node.new_id()
        data = (b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: " + oid.encode()
                + b"\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        self.expect_400_closed(data)

    def test_bad_chunked_body(self):
        for wire in (b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n",
                     b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"):
            with self.subTest(wire=wire):
                oid = self.node.new_id()
                data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n" % oid).encode() + wire
                self.expect_400_closed(data, statuses=(400, 413))
                self.assertJsonError(self.node.get(oid), 404, "not_found")
        self.assertTrue(self.node.ping())

    def test_chunk_framing_is_bounded(self):
        """A chunk-size line that never ends (a 32 MiB extension) or a trailer section
        that never ends is refused after a bounded amount of buffering: 400 and
        close, nothing stored, the node's peak memory not grown by what was sent."""
        mib = 1 << 20
        for name, framing in (("extension", b"1;" + b"e" * (32 * mib)),
                              ("trailers", b"1\r\nx\r\n0\r\n" + b"T: t\r\n" * (32 * mib // 6))):
            with self.subTest(name):
                before = self.node.peak_rss_kib()
                oid = self.node.new_id()
                s = socket.create_connection((HOST, self.node.public_port), timeout=5)
                try:
                    s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n" % oid).encode())
                    try:
                        s.sendall(framing)
                        s.sendall(b"\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError, socket.timeout):
                        pass  # refused before the end: what is wanted
                    _t, out, _closed = self.node.wait_closed(s, 5.0)
                finally:
                    s.close()
                r = first_response(out)
                self.assertIsNotNone(r, out[:200])
                self.assertIn(r["status"], (400, 431), out[:300])
                self.assertLess(self.node.peak_rss_kib() - before, 16 * 1024, "the framing was buffered")
                self.assertJsonError(self.node.get(oid), 404, "not_found")
        self.assertTrue(self.node.ping())

    def test_unsupported_transfer_encoding(self):
        # RFC 9112 §6.1: chunked not last -> 400 and close; an unknown coding -> 501.
        # Storing the still-encoded bytes as the object would silently corrupt it.
        for te, wire in (("gzip", b"xxxx"), ("gzip, chunked", b"4\r\nxxxx\r\n0\r\n\r\n"),
                         ("chunked, gzip", b"4\r\nxxxx\r\n0\r\n\r\n"), ("identity", b"xxxx")):
            with self.subTest(te=te):
                oid = self.node.new_id()
                data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                        "Transfer-Encoding: %s\r\n\r\n" % (oid, te)).encode() + wire
                out, closed = self.node.raw(data, return_closed=True)
                r = first_response(out)
                self.assertIsNotNone(r, out)
                self.assertIn(r["status"], (400, 501), out[:300])
                self.assertEqual(self.node.get(oid)[0], 404)

    def test_truncated_body_not_visible(self):
        n = self.node
        oid = n.new_id()
        data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nContent-Length: 100000\r\n\r\n"
                % oid).encode() + b"x" * 50000
        n.raw(data, timeout=2, shutdown_write=True)
        time.sleep(0.3)
        self.assertJsonError(n.get(oid), 404, "not_found")
        self.assertEqual(n.meta(oid)[0], 404)
        oid2 = n.new_id()
        data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                "1000\r\n" % oid2).encode() + b"y" * 4096 + b"\r\n10\r\nabc"
        n.raw(data, timeout=2, shutdown_write=True)
        time.sleep(0.3)
        self.assertJsonError(n.get(oid2), 404, "not_found")
        self.assertTrue(n.alive())

    def test_random_garbage_does_not_crash(self):
        rnd = random.Random(4242)
        n = self.node
        templates = [
            b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: 01ARZ3NDEKTSV4RRFFQ69G5FAV\r\n"
            b"Content-Length: 5\r\n\r\nhello",
            b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: 01ARZ3NDEKTSV4RRFFQ69G5FAW\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"GET /api/v1/get/01ARZ3NDEKTSV4RRFFQ69G5FAV HTTP/1.1\r\nRange: bytes=1-2\r\n\r\n",
        ]
        deadline = time.monotonic() + 20
        for i in range(300):
            if time.monotonic() > deadline:
                break
            t = bytearray(rnd.choice(templates))
            for _ in range(rnd.randint(1, 6)):
                op = rnd.random()
                pos = rnd.randrange(len(t))
                if op < 0.4:
                    t[pos] = rnd.randrange(256)
                elif op < 0.7:
                    del t[pos:pos + rnd.randint(1, 10)]
                else:
                    t[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20)))
            try:
                n.raw(bytes(t), timeout=0.3, shutdown_write=True)
            except OSError:
                pass
            if i % 50 == 0:
                self.assertTrue(n.alive(), "node died on fuzz input #%d: %r" % (i, bytes(t)))
        self.assertTrue(n.alive())
        self.assertTrue(n.ping())


class MaxBodySizeTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node("--max-body-size", "1K")

    def test_body_too_large(self):
        n = self.node
        oid = n.new_id()
        self.assertJsonError(n.put(oid, b"z" * 2000), 413, "body_too_large")
        self.assertJsonError(n.get(oid), 404, "not_found")
        self.assertJsonError(n.put(n.new_id(), b"z" * 1025), 413, "body_too_large")
        oid_ok = n.new_id()
        self.assertOk(n.put(oid_ok, b"k" * 1024))
        self.assertEqual(n.get(oid_ok)[2], b"k" * 1024)

    def test_chunked_body_too_large(self):
        n = self.node
        oid = n.new_id()
        wire = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
        data = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % oid).encode() + wire
        r = first_response(n.raw(data, timeout=3))
        self.assertIsNotNone(r)
        self.assertEqual(r["status"], 413, r)
        self.assertEqual(json.loads(r["body"])["code"], "body_too_large")
        self.assertJsonError(n.get(oid), 404, "not_found")

    def test_large_body_answered_early(self):
        """A 50 MiB Content-Length over the limit is refused without waiting for the body."""
        n = self.node
        oid = n.new_id()
        s = socket.create_connection((HOST, n.public_port), timeout=5)
        try:
            s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                       "Content-Length: 52428800\r\n\r\n" % oid).encode() + b"a" * 1000)
            _t, out, _closed = n.wait_closed(s, 3.0)
        finally:
            s.close()
        r = first_response(out)
        self.assertIsNotNone(r, out)
        self.assertEqual(r["status"], 413)
        self.assertTrue(n.ping())

    def test_answer_survives_a_client_still_sending(self):
        """A client that sends its whole 4 MiB body before reading gets the 413, not a
        reset: the node reads and discards the rest before it closes (lingering close)."""
        n = self.node
        for attempt in range(5):
            oid = n.new_id()
            s = socket.create_connection((HOST, n.public_port), timeout=5)
            try:
                s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                           "Content-Length: 4194304\r\n\r\n" % oid).encode())
                sent_all = True
                try:
                    s.sendall(b"b" * 4194304)
                except (BrokenPipeError, ConnectionResetError) as e:
                    sent_all = e
                _t, out, closed = n.wait_closed(s, 3.0)
            finally:
                s.close()
            self.assertIs(sent_all, True, "attempt %d: the node cut the body off" % attempt)
            self.assertTrue(closed, "attempt %d: the node kept the connection" % attempt)
            r = first_response(out)
            self.assertIsNotNone(r, "attempt %d: no answer: %r" % (attempt, out[:200]))
            self.assertEqual(r["status"], 413)
            self.assertEqual(json.loads(r["body"])["code"], "body_too_large")
        self.assertJsonError(n.get(oid), 404, "not_found")


class TraversalTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()

    def snapshot_outside(self):
        n = self.node
        parent = os.path.dirname(n.dir)
        top = sorted(os.listdir(n.dir))
        return top, os.path.exists(os.path.join(parent, "x")), os.path.exists("/x")

    def assert_nothing_escaped(self, before):
        n = self.node
        top, px, rx = self.snapshot_outside()
        self.assertEqual(top, before[0], "new entries next to the data dirs")
        if not before[1]:
            self.assertFalse(os.path.exists(os.path.join(os.path.dirname(n.dir), "x")))
        if not before[2]:
            self.assertFalse(os.path.exists("/x"))
        for root in (n.files_dir, n.state_dir, n.cold_dir):
            for dirpath, dirnames, filenames in os.walk(root):
                for f in filenames + dirnames:
                    self.assertNotIn(f, ("x", "passwd", "a%00b", "a\x00b"),
                                     "a client-chosen name became a path: %s" % os.path.join(dirpath, f))

    def test_traversal_ids(self):
        n = self.node
        before = self.snapshot_outside()
        paths = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "%2e%2e/%2e%2e/etc/passwd", "..\\..\\etc\\passwd", make_ulid() + "%00",
                 make_ulid()[:25] + "%00", "%00", "....//....//etc/passwd",
                 "%252e%252e%252fetc%252fpasswd", make_ulid() + "/../../../etc/passwd"]
        for p in paths:
            for prefix in ("/api/v1/get/", "/api/v1/meta/", "/api/v1/delete/"):
                with self.subTest(path=prefix + p):
                    method = "POST" if "delete" in prefix else "GET"
                    st, h, b = n.request(method, prefix + p)
                    self.assertIn(st, (400, 404), b[:200])
                    self.assertNotIn(b"root:", b)
                    js = json.loads(b)
                    self.assertIn(js.get("code"), ("bad_id", "not_found"))
        # the same through X-Meta-ID
        for bad in ("../../x", "/etc/passwd", "..%2F..%2Fx", "a%00b"):
            with self.subTest(put_id=bad):
                self.assertJsonError(n.put(bad, b"escaped?"), 400, "bad_id")
        # raw NUL inside the path
        out = n.raw(b"GET /api/v1/get/" + make_ulid().encode() + b"\x00/../x HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
        r = first_response(out)
        self.assertIsNotNone(r, out)
        self.assertIn(r["status"], (400, 404))
        self.assert_nothing_escaped(before)
        self.assertTrue(n.alive())

    def test_names_are_metadata_only(self):
        n = self.node
        before = self.snapshot_outside()
        for name in ("../../x", "/etc/passwd", "a%00b", "..\\..\\x", "../../../../../../../../x",
                     "dir/sub/x", "C:\\x", ".", "..", "x"):
            with self.subTest(name=name):
                oid = n.new_id()
                st, h, b = n.put(oid, b"name test " + name.encode(), level=1, name=name)
                self.assertEqual(st, 200, b)
                self.assertEqual(h.get("x-meta-name"), name)
                st, h, b = n.get(oid)
                self.assertEqual(b, b"name test " + name.encode())
                self.assertEqual(h.get("x-meta-name"), name)
                self.assertEqual(n.meta(oid)[2]["name"], name)
        with open("/etc/passwd", "rb") as f:
            self.assertNotIn(b"name test", f.read())
        self.assert_nothing_escaped(before)

    def test_utf8_name(self):
        n = self.node
        oid = n.new_id()
        name = "h\u00e9llo w\u00f6rld \u2603.txt"
        st, h, b = n.request("POST", "/api/v1/put", body=b"u",
                             headers={"X-Meta-ID": oid, "X-Meta-Name": name.encode("utf-8"),
                                      "Content-Length": "1"})
        self.assertEqual(st, 200, b)
        self.assertEqual(n.meta(oid)[2]["name"], name)
        self.assertTrue(n.get(oid)[1]["content-type"].startswith("text/plain"))

    def test_path_not_utf8(self):
        # The error JSON quotes the path: a byte that is not UTF-8 made it 500.
        r = first_response(self.node.raw(b"GET /x\xff HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n"))
        self.assertIsNotNone(r)
        self.assertEqual(r["status"], 404, r)
        self.assertEqual(json.loads(r["body"])["code"], "not_found")

    def test_bad_names(self):
        n = self.node
        # Not UTF-8 (a lone byte, a cut sequence, an overlong form, a surrogate):
        # names live in JSON, where such bytes made every later read answer 500.
        for raw_name in (b"a\x00b", b"a\x01b", b"a\x1fb", b"a\x7fb", b"a\tb", b"a\xffb",
                         b"a\xc3", b"a\xc0\xafb", b"a\xed\xa0\x80b"):
            with self.subTest(name=raw_name):
                oid = n.new_id()
                data = (b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: " + oid.encode()
                        + b"\r\nX-Meta-Name: " + raw_name + b"\r\nContent-Length: 2\r\n"
                        b"Connection: close\r\n\r\nok")
                r = first_response(n.raw(data))
                self.assertIsNotNone(r)
                self.assertEqual(r["status"], 400, r)
                self.assertIn(json.loads(r["body"])["code"], ("bad_name", "bad_request"))
                self.assertEqual(n.get(oid)[0], 404)
        self.assertJsonError(n.put(n.new_id(), b"l", name="n" * 1025), 400, "bad_name")
        self.assertOk(n.put(n.new_id(), b"l", name="n" * 1024))
        self.assertTrue(n.alive())


class KeepAliveTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node()

    def test_many_requests_one_connection(self):
        n = self.node
        conn = n.connection()
        try:
            conn.request("GET", "/api/v1/ping")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            sock = conn.sock
            self.assertIsNotNone(sock)
            oid = n.new_id()
            steps = [("GET", "/api/v1/id", None, {}),
                     ("POST", "/api/v1/put", b"keep", {"X-Meta-ID": oid}),
                     ("GET", "/api/v1/get/" + oid, None, {}),
                     ("HEAD", "/api/v1/get/" + oid, None, {}),
                     ("GET", "/api/v1/meta/" + oid, None, {}),
                     ("GET", "/api/v1/get/" + make_ulid(), None, {}),  # 404 keeps the connection
                     ("GET", "/api/v1/get/" + oid, None, {"Range": "bytes=1-2"}),
                     ("GET", "/api/v1/stats", None, {})]
            expect = [200, 200, 200, 200, 200, 404, 206, 200]
            for (method, path, body, hdrs), want in zip(steps, expect):
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, want, (method, path, data[:200]))
                self.assertIs(conn.sock, sock, "server closed the keep-alive connection after %s %s"
                              % (method, path))
                if path.startswith("/api/v1/get/" + oid) and method == "GET" and want == 200:
                    self.assertEqual(data, b"keep")
        finally:
            conn.close()

    def test_pipelined_requests(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"pipelined body"))
        req = ("GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /api/v1/get/%s HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nContent-Length: 3\r\n\r\nnew"
               "GET /api/v1/get/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % (oid, oid, oid)).encode()
        out, closed = n.raw(req, timeout=5, return_closed=True)
        rs = parse_responses(out)
        self.assertEqual([r.get("status") for r in rs], [200, 200, 200, 200], out[:1000])
        self.assertEqual(rs[1]["body"], b"pipelined body")
        self.assertEqual(rs[3]["body"], b"new")
        self.assertTrue(closed)

    def test_pipelined_answers_outrun_the_socket_buffers(self):
        """Small bodies (at most 16 KiB) are answered from memory with the header in one
        sendmsg, larger ones by sendfile. Pipelined requests whose answers far exceed the
        socket buffers, read only later, make both paths stop half-way and resume: every
        answer must still be whole and in order."""
        n = self.node
        small, large = payload(16 * 1024, b"small"), payload(16 * 1024 + 1, b"large")
        small_id, large_id = n.new_id(), n.new_id()
        self.assertOk(n.put(small_id, small))
        self.assertOk(n.put(large_id, large))
        cycle = [("GET", small_id, None, 200, small),
                 ("GET", small_id, "bytes=100-8291", 206, small[100:8292]),
                 ("HEAD", small_id, None, 200, b""),
                 ("GET", large_id, None, 200, large),
                 ("GET", large_id, "bytes=-5000", 206, large[-5000:])]
        plan = cycle * 150
        reqs = []
        for i, (method, oid, rng, _st, _body) in enumerate(plan):
            req = "%s /api/v1/get/%s HTTP/1.1\r\nHost: x\r\n" % (method, oid)
            if rng:
                req += "Range: %s\r\n" % rng
            if i == len(plan) - 1:
                req += "Connection: close\r\n"
            reqs.append(req + "\r\n")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        # A small receive buffer (no autotuning): the answers, ~7 MB, cannot all be
        # in flight, so the node's sends stop part-way and wait for the socket.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(10)
        s.connect((HOST, n.public_port))
        s.sendall("".join(reqs).encode())
        time.sleep(1.0)
        _t, out, closed = n.wait_closed(s, 30)
        self.assertTrue(closed, "the node did not finish the pipelined answers")
        rs = parse_responses(out, head_flags=[m == "HEAD" for m, *_ in plan])
        self.assertEqual(len(rs), len(plan))
        for i, (r, (method, oid, rng, st, body)) in enumerate(zip(rs, plan)):
            self.assertEqual(r.get("status"), st, (i, method, oid, rng))
            self.assertEqual(r["body"], body, (i, method, oid, rng))
            if method == "HEAD":
                self.assertEqual(r["headers"]["content-length"], str(len(small)))

    def test_large_body_read_past_the_parser_then_a_pipelined_request(self):
        """A body of known length is read from the socket straight into the node's buffer
        once the bytes that came with the header are used: such reads must stop at the
        body's end, so the request sent right behind it is answered, not eaten."""
        n = self.node
        oid = n.new_id()
        body = os.urandom(3 * 1024 * 1024 + 123)
        s = socket.create_connection((HOST, n.public_port), timeout=10)
        self.addCleanup(s.close)
        head = ("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nContent-Length: %d\r\n\r\n"
                % (oid, len(body))).encode()
        s.sendall(head + body[:1000])  # some of the body arrives with the header...
        time.sleep(0.2)
        # ...the rest later, with the next request right behind its last byte.
        s.sendall(body[1000:] + ("GET /api/v1/get/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                 % oid).encode())
        _t, out, closed = n.wait_closed(s, 10)
        rs = parse_responses(out)
        self.assertEqual([r.get("status") for r in rs], [200, 200], out[:600])
        self.assertEqual(rs[1]["body"], body)
        self.assertTrue(closed)

    def test_query_string_ignored(self):
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"query"))
        st, h, b = n.request("GET", "/api/v1/get/%s?download=1&x=%%2F" % oid)
        self.assertEqual((st, b), (200, b"query"))
        st, h, b = n.request("GET", "/api/v1/ping?x=1")
        self.assertEqual(st, 200)

    def test_absolute_form_target(self):
        """RFC 9112 §3.2.2: a server accepts the absolute-form (what a client sends to a
        proxy) and routes it by its path and query."""
        n = self.node
        oid = n.new_id()
        self.assertOk(n.put(oid, b"absolute"))
        st, _h, body = n.request("GET", "http://x/api/v1/ping")  # http.client sends it as given
        self.assertEqual((st, body.decode().strip()), (200, n.ping()))
        st, _h, body = n.request("GET", "HTTP://127.0.0.1:%d/api/v1/get/%s?x=1" % (n.public_port, oid))
        self.assertEqual((st, body), (200, b"absolute"))
        js = self.assertJsonError(n.request("GET", "https://x?y=1"), 404, "not_found")
        self.assertEqual(js["error"], "no such endpoint: /")

    def test_answer_during_shutdown_closes_the_connection(self):
        """A request in flight when SIGTERM arrives is still answered, and the answer says
        Connection: close: the node closes the connection after it, so it must not
        promise to keep it open."""
        n = self.node
        oid = n.new_id()
        body = os.urandom(100000)
        s = socket.create_connection((HOST, n.public_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (oid, len(body))).encode() + body[:1000])
        time.sleep(0.3)  # the node reads the body
        os.kill(n.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "finishing requests in flight" not in n.log_tail(20):
            self.assertLess(time.monotonic(), deadline, "no sign of the SIGTERM in the log")
            time.sleep(0.05)
        s.sendall(body[1000:])
        _elapsed, out, closed = n.wait_closed(s, 8.0)
        r = first_response(out)
        self.assertEqual(r and r["status"], 200, out[:300])
        self.assertEqual(r["headers"].get("connection"), "close", out[:300])
        self.assertTrue(closed)
        self.assertIn(n.stop(), (0, -signal.SIGTERM))

    def test_request_body_on_get_keeps_framing(self):
        """A body on a GET must be consumed (or the connection closed), never parsed as
        the next request."""
        n = self.node
        smuggled = b"GET /api/v1/id HTTP/1.1\r\nHost: x\r\n\r\n"
        req = (b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
               + smuggled + b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = n.raw(req, timeout=3)
        rs = [r for r in parse_responses(out) if "status" in r]
        node_id = n.ping()
        self.assertGreaterEqual(len(rs), 1, out)
        for r in rs:
            self.assertEqual(r["status"], 200, out[:500])
            self.assertEqual(r["body"].decode().strip(), node_id,
                             "a request hidden in a GET body was executed: %r" % out[:500])

    def test_error_with_unread_body_no_smuggling(self):
        """An early error (bad level, bad id) on a PUT with a body must not let the body be
        parsed as further requests."""
        n = self.node
        node_id = n.ping()
        for bad_header in (b"X-Meta-ConsistencyLevel: 9", b"X-Meta-UserMeta: [", b"X-Meta-Nothing: 1"):
            with self.subTest(header=bad_header):
                smuggled = b"GET /api/v1/id HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                body = smuggled + b"z" * 20000
                oid = make_ulid().encode() if b"Nothing" not in bad_header else b"not-an-id"
                req = (b"POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: " + oid + b"\r\n" + bad_header
                       + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                       + b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                out = n.raw(req, timeout=3)
                rs = [r for r in parse_responses(out) if "status" in r]
                self.assertGreaterEqual(len(rs), 1, out[:300])
                self.assertEqual(rs[0]["status"], 400, out[:300])
                for r in rs[1:]:
                    self.assertEqual(r["status"], 200, out[:600])
                    self.assertEqual(r["body"].decode().strip(), node_id,
                                     "bytes of a refused body were executed as a request: %r" % out[:600])
                self.assertLessEqual(len(rs), 2, out[:600])

    def test_expect_100_continue(self):
        n = self.node
        oid = n.new_id()
        body = b"e" * 100000
        s = socket.create_connection((HOST, n.public_port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nExpect: 100-continue\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n" % (oid, len(body))).encode())
        # docs/API.md: the node answers 100 Continue before the body is sent (a client
        # such as curl otherwise waits a second for it on every PUT).
        s.settimeout(10)
        first = b""
        while b"\r\n\r\n" not in first:
            got = s.recv(4096)
            self.assertTrue(got, "closed before 100 Continue: %r" % first[:200])
            first += got
        self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n"), first[:200])
        s.sendall(body)
        _t, out, _closed = n.wait_closed(s, 5)
        out = first + out
        if out.startswith(b"HTTP/1.1 100"):
            out = out[out.index(b"\r\n\r\n") + 4:]
        r = first_response(out)
        self.assertIsNotNone(r, out[:300])
        self.assertEqual(r["status"], 200, out[:300])
        self.assertEqual(n.get(oid)[2], body)

    def test_expect_100_continue_is_ignored_for_http10(self):
        # RFC 9110 §10.1.1: a server must ignore an HTTP/1.0 request's expectation.
        n = self.node
        oid = n.new_id()
        out = n.raw(("POST /api/v1/put HTTP/1.0\r\nX-Meta-ID: %s\r\nExpect: 100-continue\r\n"
                     "Content-Length: 1\r\n\r\nx" % oid).encode())
        self.assertFalse(out.startswith(b"HTTP/1.1 100"), out[:200])
        r = first_response(out)
        self.assertIsNotNone(r, out[:300])
        self.assertEqual(r["status"], 200, out[:300])
        self.assertEqual(n.get(oid)[2], b"x")

    def test_user_meta_with_del_stays_a_valid_header(self):
        # DEL is legal in JSON text but not in a header value (RFC 9110 §5.5).
        n = self.node
        oid = n.new_id()
        put = n.raw(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                     "X-Meta-UserMeta: {\"k\": \"a\\u007fb\"}\r\nContent-Length: 1\r\n"
                     "Connection: close\r\n\r\nx" % oid).encode())
        self.assertEqual(first_response(put)["status"], 200, put[:300])
        for method in ("GET", "HEAD"):
            out = n.raw(("%s /api/v1/get/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         % (method, oid)).encode())
            head = out[:out.index(b"\r\n\r\n")]
            self.assertNotIn(b"\x7f", head, head)
            self.assertIn(b'X-Meta-UserMeta: {"k":"a\\u007fb"}', head, head)
        self.assertNotIn(b"\x7f", put[:put.index(b"\r\n\r\n")])
        self.assertEqual(n.meta(oid)[2]["user_meta"], {"k": "a\x7fb"})

    def test_connection_close_and_http10(self):
        n = self.node
        out, closed = n.raw(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            return_closed=True)
        self.assertEqual(first_response(out)["status"], 200)
        self.assertTrue(closed, "Connection: close not honoured")
        out, closed = n.raw(b"GET /api/v1/ping HTTP/1.0\r\n\r\n", return_closed=True)
        r = first_response(out)
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["body"].decode().strip(), n.ping())
        self.assertTrue(closed, "HTTP/1.0 without keep-alive not closed")


class ManyConnectionsTest(NodeTestCase):

    def test_many_parallel_connections(self):
        n = self.node = self.start_node()
        oid = n.new_id()
        self.assertOk(n.put(oid, b"p" * 10000))
        socks = []
        try:
            for _ in range(200):
                s = socket.create_connection((HOST, n.public_port), timeout=10)
                socks.append(s)
            for s in socks:
                s.sendall(("GET /api/v1/get/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                           % oid).encode())
            deadline = time.monotonic() + 20
            ok = 0
            for s in socks:
                buf = b""
                while time.monotonic() < deadline:
                    s.settimeout(max(0.1, deadline - time.monotonic()))
                    try:
                        b = s.recv(65536)
                    except socket.timeout:
                        break
                    if not b:
                        break
                    buf += b
                r = first_response(buf)
                if r and r["status"] == 200 and r["body"] == b"p" * 10000:
                    ok += 1
            self.assertEqual(ok, len(socks))
        finally:
            for s in socks:
                s.close()
        self.assertTrue(n.ping())


class TimeoutTest(NodeTestCase):

    def setUp(self):
        self.node = self.start_node("--header-timeout", "1", "--idle-timeout", "1")

    def connect(self):
        s = socket.create_connection((HOST, self.node.public_port), timeout=5)
        self.addCleanup(s.close)
        return s

    def assert_request_timeout(self, out):
        """docs/API.md: a header not received in time is answered 408 before the close."""
        r = first_response(out)
        self.assertIsNotNone(r, "no answer to an incomplete header, got %r" % out[:200])
        self.assertEqual(r["status"], 408, out[:300])
        self.assertEqual(r["headers"].get("connection"), "close")
        self.assertEqual(json.loads(r["body"])["code"], "request_timeout")

    def test_partial_request_line_closed(self):
        s = self.connect()
        s.sendall(b"GET /api/v1/pi")
        elapsed, out, closed = self.node.wait_closed(s, 6.0)
        self.assertTrue(closed, "stalled partial request line still open after 6 s")
        self.assertLess(elapsed, 3.5)
        self.assert_request_timeout(out)

    def test_partial_headers_closed(self):
        s = self.connect()
        s.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elapsed, out, closed = self.node.wait_closed(s, 6.0)
        self.assertTrue(closed)
        self.assertLess(elapsed, 3.5)
        self.assert_request_timeout(out)

    def test_dribbling_headers_closed(self):
        """Slowloris: one byte every 0.25 s must not keep the header timer alive."""
        s = self.connect()
        payload = b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        t0 = time.monotonic()
        closed = False
        for i in range(len(payload)):
            if time.monotonic() - t0 > 8:
                break
            try:
                s.sendall(payload[i:i + 1])
            except OSError:
                closed = True
                break
            s.settimeout(0.25)
            try:
                b = s.recv(4096)
                if not b:
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, "dribbling client kept the connection open for %.1f s" % elapsed)
        self.assertLess(elapsed, 4.0)

    def test_silent_connection_closed(self):
        s = self.connect()
        elapsed, out, closed = self.node.wait_closed(s, 6.0)
        self.assertTrue(closed, "connection that never sent a byte still open after 6 s")
        self.assertLess(elapsed, 3.5)

    def test_idle_keepalive_closed(self):
        s = self.connect()
        s.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        # read the full response
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            s.settimeout(1)
            b = s.recv(4096)
            if not b:
                break
            buf += b
            rs = parse_responses(buf)
            if rs and "status" in rs[0] and not rs[0]["incomplete"]:
                break
        self.assertEqual(first_response(buf)["status"], 200)
        elapsed, out, closed = self.node.wait_closed(s, 6.0)
        self.assertTrue(closed, "idle keep-alive connection still open after 6 s")
        self.assertEqual(out, b"")
        self.assertLess(elapsed, 3.5)
        self.assertGreater(elapsed, 0.5, "closed the keep-alive connection right after the response")

    def test_stalled_request_body_closed(self):
        """--idle-timeout also bounds a stalled upload; the partial object never appears."""
        n = self.node
        oid = n.new_id()
        s = self.connect()
        s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\nContent-Length: 100000\r\n\r\n"
                   % oid).encode() + b"s" * 1000)
        elapsed, out, closed = n.wait_closed(s, 8.0)
        self.assertTrue(closed, "stalled upload still open after 8 s")
        self.assertLess(elapsed, 4.0)
        self.assertEqual(n.get(oid)[0], 404)
        self.assertEqual(leftover_temp_files(n.files_dir), [])

    def test_stalled_reader_closed(self):
        """A client that stops reading a large body is dropped after the idle timeout
        instead of pinning the transfer forever."""
        n = self.node
        oid = n.new_id()
        size = 32 * 1024 * 1024
        st, _h, b = n.request("POST", "/api/v1/put", body=b"r" * size,
                              headers={"X-Meta-ID": oid, "Content-Length": str(size)})
        self.assertEqual(st, 200, b)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(5)
        s.connect((HOST, n.public_port))
        self.addCleanup(s.close)
        s.sendall(("GET /api/v1/get/%s HTTP/1.1\r\nHost: x\r\n\r\n" % oid).encode())
        time.sleep(4.0)  # do not read
        self.assertTrue(n.alive())
        t_ping = time.monotonic()
        self.assertTrue(n.ping())
        self.assertLess(time.monotonic() - t_ping, 1.0, "a stalled reader blocked other requests")
        got = 0
        s.settimeout(2)
        while True:
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += len(chunk)
        self.assertLess(got, size, "the server kept a stalled transfer open for 4 s (idle timeout 1 s)")

    def test_active_connection_not_cut(self):
        """Requests spaced below the idle timeout keep one connection alive beyond it."""
        conn = self.node.connection()
        self.addCleanup(conn.close)
        conn.request("GET", "/api/v1/ping")
        r = conn.getresponse()
        r.read()
        sock = conn.sock
        for _ in range(5):
            time.sleep(0.4)
            conn.request("GET", "/api/v1/ping")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertIs(conn.sock, sock)

    def test_slow_client_does_not_block_others(self):
        stalled = [self.connect() for _ in range(20)]
        for s in stalled:
            s.sendall(b"GET /api/v1/pi")
        t0 = time.monotonic()
        self.assertTrue(self.node.ping())
        self.assertLess(time.monotonic() - t0, 1.0)


if __name__ == "__main__":
    unittest.main()
