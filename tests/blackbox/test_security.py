"""Security black-box tests (docs/SECURITY.md): client limits of the public API,
bearer tokens, the private API's signatures against a raw-socket replay, and
ids/keys that try to reach outside the data directories through both APIs.

Per-client limits are told apart by source address: Linux routes all of
127.0.0.0/8 to loopback, so a socket bound to 127.0.0.2 is another client of the
node on 127.0.0.1 than one bound to 127.0.0.3.

What test_http_edges.py (malformed HTTP, header size and count, body size,
slow headers) and test_cluster.py (wrong secret or tag, tampered body or path,
stale time, replay through http.client, unsigned calls) already cover is not
repeated here.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, NodeTestCase, list_files, make_ulid  # noqa: E402
from cluster_fixture import (ClusterTestCase, private_request, sign_headers,  # noqa: E402
                             wait_for)

SECRET = "security-test-secret-0123456789"
RW = "rw-token-AAAAAAAAAAAAAAAAAAAAAAAA"
RO = "ro-token-BBBBBBBBBBBBBBBBBBBBBBBB"
RW2 = "rw-token-CCCCCCCCCCCCCCCCCCCCCCCC"


def connect_from(src, port, timeout=5.0):
    """A TCP connection to the node from source address `src` (another client)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((HOST, port))
    return s


def read_response(s, timeout=5.0):
    """Reads one response (header + Content-Length body) -> (status, headers, body);
    (None, {}, b"") when the connection closes first."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            return None, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


def get(s, path, headers=""):
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode())
    return read_response(s)


def closed_by_peer(s, timeout):
    """True when the server closes `s` within `timeout` seconds (answer or not)."""
    deadline = time.monotonic() + timeout
    s.settimeout(0.2)
    for _ in range(int(timeout / 0.2) + 5):
        if time.monotonic() > deadline:
            return False
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def metric(node, name, labels):
    st, _h, body = node.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + "{" + labels + "}"):
            return float(line.split()[-1])
    return None


# ---------------------------------------------------------------------- limits
class ClientLimitTest(NodeTestCase):

    def open_clients(self, src, n):
        socks = []
        for _ in range(n):
            s = connect_from(src, self.node.public_port)
            self.addCleanup(s.close)
            st, _h, _b = get(s, "/api/v1/ping")    # admitted and served: it counts
            self.assertEqual(st, 200)
            socks.append(s)
        return socks

    def assert_refused_connection(self, src, what):
        s = connect_from(src, self.node.public_port)
        self.addCleanup(s.close)
        s.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        st, h, body = read_response(s)
        self.assertEqual(st, 503, "%s: %r" % (what, body))
        self.assertEqual(json.loads(body)["code"], "too_many_connections", what)
        self.assertEqual(h.get("retry-after"), "1", what)
        self.assertEqual(h.get("connection"), "close", what)
        self.assertTrue(closed_by_peer(s, 3), what)

    def test_connections_per_client(self):
        self.node = self.start_node("--max-connections-per-client", "3")
        held = self.open_clients("127.0.0.2", 3)
        self.assert_refused_connection("127.0.0.2", "4th connection from one client")
        # another client is not affected
        self.open_clients("127.0.0.3", 3)
        # a slot freed is a slot usable again
        held[0].close()
        def reconnect():
            s = connect_from("127.0.0.2", self.node.public_port)
            try:
                return get(s, "/api/v1/ping")[0] == 200
            finally:
                s.close()
        wait_for(reconnect, 5, "a connection after one of three closed")
        self.assertGreaterEqual(metric(self.node, "objstore_http_limited_total",
                                       'reason="connections"'), 1)

    def test_connections_overall(self):
        self.node = self.start_node("--max-connections", "4")
        time.sleep(0.3)     # the start-up pings' connections are closed on the node too
        self.open_clients("127.0.0.2", 2)
        held = self.open_clients("127.0.0.3", 2)
        self.assert_refused_connection("127.0.0.4", "5th connection to the node")
        for s in held:
            s.close()
        wait_for(lambda: self.node.request("GET", "/api/v1/ping")[0] == 200, 5,
                 "the node serves again once connections closed")

    def test_rate_per_client(self):
        # 1 per second: however slowly the 12 requests go, refills cannot turn
        # most of the 8 past the burst into 200s.
        self.node = self.start_node("--rate-limit", "1", "--rate-burst", "4")
        s = connect_from("127.0.0.2", self.node.public_port)
        self.addCleanup(s.close)
        statuses = []
        for _ in range(12):
            st, h, body = get(s, "/api/v1/id")
            statuses.append(st)
            if st == 429:
                self.assertEqual(json.loads(body)["code"], "rate_limited")
                self.assertGreaterEqual(int(h["retry-after"]), 1)
                self.assertNotEqual(h.get("connection"), "close", "a 429 keeps the connection")
        self.assertEqual(statuses[:4], [200] * 4, statuses)
        self.assertGreaterEqual(statuses.count(429), 6, statuses)
        # another client has its own bucket
        other = connect_from("127.0.0.3", self.node.public_port)
        self.addCleanup(other.close)
        self.assertEqual(get(other, "/api/v1/id")[0], 200)
        # a write over the rate is refused and stores nothing
        oid = make_ulid()
        body = b"over the rate"
        s.sendall(("POST /api/v1/put HTTP/1.1\r\nHost: x\r\nX-Meta-ID: %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (oid, len(body))).encode() + body)
        self.assertEqual(read_response(s)[0], 429)
        self.assertEqual(get(other, "/api/v1/meta/" + oid)[0], 404)
        # the bucket refills: 1 per second (the PUT's connection was closed)
        time.sleep(1.1)
        again = connect_from("127.0.0.2", self.node.public_port)
        self.addCleanup(again.close)
        self.assertEqual(get(again, "/api/v1/id")[0], 200)
        self.assertGreaterEqual(metric(self.node, "objstore_http_limited_total",
                                       'reason="rate"'), 7)

    def test_requests_per_connection(self):
        self.node = self.start_node("--max-requests-per-connection", "3")
        req = b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
        out, closed = self.node.raw(req * 5, timeout=3, return_closed=True)
        answers = out.count(b"HTTP/1.1 200")
        self.assertEqual(answers, 3, out[:500])
        self.assertTrue(closed)
        self.assertIn(b"Connection: close", out.split(b"HTTP/1.1 200")[3])

    def test_long_target_and_header_flood(self):
        self.node = self.start_node("--max-header-size", "2048", "--max-header-count", "20")
        s = connect_from("127.0.0.2", self.node.public_port)
        self.addCleanup(s.close)
        st, _h, body = get(s, "/api/v1/get/" + "A" * 4096)
        self.assertEqual(st, 431, body)
        self.assertEqual(json.loads(body)["code"], "headers_too_large")
        s2 = connect_from("127.0.0.2", self.node.public_port)
        self.addCleanup(s2.close)
        st, _h, body = get(s2, "/api/v1/ping", "".join("X-F%d: v\r\n" % i for i in range(40)))
        self.assertEqual(st, 431, body)
        self.assertEqual(self.node.request("GET", "/api/v1/ping")[0], 200)

    def test_body_limit(self):
        self.node = self.start_node("--max-body-size", "1K")
        oid = make_ulid()
        st, h, body = self.node.put(oid, b"x" * 2048)
        self.assertJsonError((st, h, body), 413, "body_too_large")
        self.assertEqual(self.node.meta(oid)[0], 404)
        self.assertEqual(self.node.put(make_ulid(), b"x" * 1024)[0], 200)

    def test_slow_headers_cut_and_capped_while_others_are_served(self):
        """Slowloris from one address: its connections beyond the per-client cap are
        refused at once, the others are cut by the header timeout, and a client on
        another address is served without delay throughout."""
        self.node = self.start_node("--max-connections-per-client", "10",
                                    "--header-timeout", "1.5")
        slow = []
        for _ in range(10):
            s = connect_from("127.0.0.2", self.node.public_port)
            self.addCleanup(s.close)
            s.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            slow.append(s)
        time.sleep(0.2)     # every slow connection is admitted and counted
        self.assert_refused_connection("127.0.0.2", "11th slow connection")
        t0 = time.monotonic()
        other = connect_from("127.0.0.3", self.node.public_port)
        self.addCleanup(other.close)
        self.assertEqual(get(other, "/api/v1/ping")[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        for i, s in enumerate(slow):
            try:
                s.sendall(b"a")     # still dribbling
            except OSError:
                pass
        for i, s in enumerate(slow):
            self.assertTrue(closed_by_peer(s, 4), "slow connection %d still open" % i)
        # their slots are free again
        self.open_clients("127.0.0.2", 3)


# ---------------------------------------------------------------------- tokens
class TokenAuthTest(NodeTestCase):

    def setUp(self):
        self.tokens = os.path.join(self.make_dir(), "tokens")
        self.write_tokens("# test tokens\n%s\n%s ro\n" % (RW, RO))
        self.node = self.start_node("--auth-tokens-file", self.tokens)

    def make_dir(self):
        d = tempfile.mkdtemp(prefix="objstore-bb-tokens-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def write_tokens(self, text):
        tmp = self.tokens + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.tokens)

    def auth(self, token):
        return {"Authorization": "Bearer " + token}

    def test_none_wrong_right(self):
        n = self.node
        st, h, body = n.request("GET", "/api/v1/id")
        self.assertJsonError((st, h, body), 401, "unauthorized", "no token")
        self.assertEqual(h.get("www-authenticate"), 'Bearer realm="objstore"')
        st, h, body = n.request("GET", "/api/v1/id", headers=self.auth(RW + "x"))
        self.assertJsonError((st, h, body), 401, "unauthorized", "wrong token")
        self.assertIn('error="invalid_token"', h.get("www-authenticate", ""))
        st, h, body = n.request("GET", "/api/v1/id", headers={"Authorization": "Basic " + RW})
        self.assertJsonError((st, h, body), 401, "unauthorized", "another scheme")
        for path in ("/api/v1/stats", "/metrics", "/api/v1/version",
                     "/api/v1/get/" + make_ulid(), "/api/v1/meta/" + make_ulid()):
            self.assertEqual(n.request("GET", path)[0], 401, path)
        # liveness stays open
        self.assertEqual(n.request("GET", "/api/v1/ping")[0], 200)
        # a write without a token stores nothing
        oid = make_ulid()
        self.assertEqual(n.put(oid, b"no token")[0], 401)
        self.assertEqual(n.put(oid, b"wrong", headers=self.auth(RO[:-1] + "Z"))[0], 401)
        self.assertEqual(n.request("GET", "/api/v1/meta/" + oid, headers=self.auth(RW))[0], 404)
        # the right token
        st, _h, body = n.put(oid, b"with token", headers=self.auth(RW))
        self.assertEqual(st, 200, body)
        st, _h, body = n.request("GET", "/api/v1/get/" + oid, headers=self.auth(RW))
        self.assertEqual((st, body), (200, b"with token"))
        # read-only: reads yes, writes 403
        st, _h, body = n.request("GET", "/api/v1/get/" + oid, headers=self.auth(RO))
        self.assertEqual((st, body), (200, b"with token"))
        st, h, body = n.put(make_ulid(), b"ro write", headers=self.auth(RO))
        self.assertJsonError((st, h, body), 403, "forbidden", "write with a read-only token")
        self.assertIn("insufficient_scope", h.get("www-authenticate", ""))
        st, h, body = n.request("POST", "/api/v1/delete/" + oid, headers=self.auth(RO))
        self.assertEqual(st, 403)
        self.assertEqual(n.request("GET", "/api/v1/get/" + oid, headers=self.auth(RO))[0], 200)

    def test_reload_on_sighup_and_on_change(self):
        n = self.node
        self.write_tokens("%s\n" % RW2)
        os.kill(n.pid, signal.SIGHUP)
        wait_for(lambda: n.request("GET", "/api/v1/id", headers=self.auth(RW2))[0] == 200, 5,
                 "the new token accepted after SIGHUP")
        self.assertEqual(n.request("GET", "/api/v1/id", headers=self.auth(RW))[0], 401)
        # a broken file keeps the tokens in force
        self.write_tokens("not a valid token file\n")
        os.kill(n.pid, signal.SIGHUP)
        time.sleep(1.5)
        self.assertEqual(n.request("GET", "/api/v1/id", headers=self.auth(RW2))[0], 200)
        # no signal: the changed file is picked up on its own (checked once a second)
        self.write_tokens("%s ro\n" % RW)
        wait_for(lambda: n.request("GET", "/api/v1/id", headers=self.auth(RW))[0] == 200, 5,
                 "the changed file read without a signal")
        self.assertEqual(n.request("GET", "/api/v1/id", headers=self.auth(RW2))[0], 401)
        self.assertTrue(n.alive())

    def test_cli_sends_the_token(self):
        cli = os.path.join(os.path.dirname(self.node.binary), "objstore-cli")
        if not os.path.exists(cli):
            self.fail("objstore-cli not found next to %s" % self.node.binary)
        src = os.path.join(self.node.dir, "in.txt")
        with open(src, "wb") as f:
            f.write(b"cli with a token")
        url = "http://%s:%d" % (HOST, self.node.public_port)

        def run(*args, token=None):
            env = dict(os.environ, OBJSTORE_URL=url)
            env.pop("OBJSTORE_TOKEN", None)
            if token:
                env["OBJSTORE_TOKEN"] = token
            return subprocess.run([cli] + list(args), capture_output=True, timeout=30, env=env)

        r = run("put", src)
        self.assertEqual(r.returncode, 3, r.stderr)     # refused by the node
        self.assertIn(b"token", r.stderr)
        r = run("put", src, token=RW)
        self.assertEqual(r.returncode, 0, r.stderr)
        oid = r.stdout.decode().strip()
        r = run("--token", RO, "get", oid)
        self.assertEqual((r.returncode, r.stdout), (0, b"cli with a token"), r.stderr)

    def test_bad_token_file_refuses_to_start(self):
        with open(self.tokens, "w") as f:
            f.write("short\n")
        node = self.start_node("--auth-tokens-file", self.tokens, start=False)
        proc = subprocess.run(node.command(), capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr[-500:])
        self.assertIn(b"line 1", proc.stdout + proc.stderr)


# ---------------------------------------------------------------------- private API
class PrivateApiTest(ClusterTestCase):

    def test_raw_replay_of_a_captured_signed_call(self):
        """A signed body read captured byte for byte and sent again, on a new connection
        and on the same keep-alive one, is refused: the nonce was seen."""
        c = self.start_cluster(1, secret=SECRET, tag="sec")
        node = c.nodes[0]
        oid = node.new_id()
        self.assertEqual(node.put(oid, b"secret body")[0], 200)
        version = int(node.meta(oid)[2]["version"], 16)
        target = "/cluster/v1/body/%s?v=%016x" % (oid, version)
        h = sign_headers(SECRET, "GET", target, b"", tag="sec", node=make_ulid())
        captured = ("GET %s HTTP/1.1\r\nHost: x\r\n" % target +
                    "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n").encode()
        s = connect_from("127.0.0.2", node.private_port)
        self.addCleanup(s.close)
        s.sendall(captured)
        st, _h, body = read_response(s)
        self.assertEqual((st, body), (200, b"secret body"))
        s.sendall(captured)     # same connection
        st, _h, body = read_response(s)
        self.assertEqual(st, 401, body)
        self.assertEqual(json.loads(body)["code"], "replayed")
        s2 = connect_from("127.0.0.3", node.private_port)
        self.addCleanup(s2.close)
        s2.sendall(captured)    # another connection, another address
        st, _h, body = read_response(s2)
        self.assertEqual(st, 401, body)
        self.assertNotIn(b"secret body", body)

    def test_keys_never_become_paths_outside_the_data_dirs(self):
        """Signed (so past authentication) body reads and records whose keys try to
        climb out: answered 4xx or stored under an encoded name, never a file outside
        the node's directories and never a file named after the attack."""
        root = tempfile.mkdtemp(prefix="objstore-bb-escape-")    # holds nothing else
        self.addCleanup(shutil.rmtree, root, True)
        c = self.start_cluster(2, secret=SECRET, tag="sec", base_dir=root)
        a, b = c.nodes
        expected_root = {os.path.basename(n.dir) for n in c.nodes} | {os.path.basename(c.cold_dir)}
        before_a = sorted(os.listdir(a.dir))
        evil = ["../../../../tmp/objstore-escape", "/tmp/objstore-escape-abs", "..", ".",
                "%2e%2e%2f%2e%2e%2fescape", "a/../../escape", "escape\x00nul", "x" * 1025,
                "..\\..\\escape", "files/../../escape"]
        for key in evil:
            for v in (1 << 40, 0):
                target = "/cluster/v1/body/%s?v=%016x" % (quote(key, safe=""), v)
                h = sign_headers(SECRET, "GET", target, b"", tag="sec", node=c.ids[1])
                st, _h, body = private_request(a.private_port, "GET", target, headers=h)
                self.assertIn(st, (400, 404), "%r: %d %r" % (key, st, body[:200]))
        # records with those keys at level 2, as a peer gone rogue would send: B tries
        # to pull their bodies from A (which has none)
        records = []
        for i, key in enumerate(evil):
            records.append({"key": key, "name": "n", "size": 3, "etag": '"%032x"' % i,
                            "ts": time.time_ns(), "v": (int(time.time() * 1000) << 16) + i,
                            "vn": c.ids[0], "level": 2, "um": {}, "del": False,
                            "cold": "stored"})
        for r in records:   # one call each: a batch with one bad record is refused whole
            payload = json.dumps({"records": [r]}).encode()
            h = sign_headers(SECRET, "POST", "/cluster/v1/records", payload, tag="sec",
                             node=c.ids[0])
            st, _h, body = private_request(b.private_port, "POST", "/cluster/v1/records",
                                           payload, h)
            self.assertIn(st, (200, 400), body[:300])
        time.sleep(2.0)     # replication attempts and an anti-entropy round
        self.assertTrue(a.alive() and b.alive())
        self.assertFalse(os.path.exists("/tmp/objstore-escape"))
        self.assertFalse(os.path.exists("/tmp/objstore-escape-abs"))
        self.assertEqual(set(os.listdir(root)), expected_root,
                         "new entries next to the node directories")
        self.assertEqual(sorted(os.listdir(a.dir)), before_a)
        for node in c.nodes:
            for f in list_files(node.dir):
                self.assertNotIn("escape", f.split(os.sep)[0:-1],
                                 "a key became a directory: %s" % f)
                self.assertFalse(os.path.basename(f).startswith("escape"), f)


if __name__ == "__main__":
    unittest.main()
