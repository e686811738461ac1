"""A real S3 endpoint for black-box tests: moto_server with signature checking on.

MotoServer   starts `moto_server -H 127.0.0.1 -p PORT` (the one on PATH) with
             INITIAL_NO_AUTH_ACTION_COUNT small, spends those unauthenticated
             requests on an IAM user + allow-* policy + access key, then creates
             buckets with the new keys. Every later request must be SigV4-signed
             with those keys, so a badly signing node fails the tests.
             moto logs one line per request to stderr; requests() / count()
             parse that log to count origin requests.
FaultProxy   a threaded TCP proxy between the node and moto that can be switched
             to "down" (connections refused, open ones cut) and back "up": moto
             keeps its state in memory, so "S3 down, then back" is simulated here
             instead of by restarting moto (a restarted moto is empty and has new
             random keys).
S3Node       harness.Node with full control of the environment (AWS credentials
             set or removed, HOME pointing to an empty directory so ~/.aws of the
             machine never leaks in) and S3 command-line options.
S3TestCase   harness.NodeTestCase plus start_moto(), start_proxy(),
             start_s3_node(), wipe_local(); everything started is stopped by
             addCleanup.

Standard library + boto3 (installed with the image's python3, like moto).
"""

import http.client
import json
import os
import re
import shutil
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import HOST, Node, NodeTestCase, free_port  # noqa: E402

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # pragma: no cover - reported by the tests
    boto3 = None

REGION = "us-east-1"
MOTO_BIN = os.environ.get("MOTO_SERVER_BIN") or shutil.which("moto_server") or "moto_server"

# werkzeug's request log line: 127.0.0.1 - - [date] "GET /bkt/key?x HTTP/1.1" 200 -
LOG_RE = re.compile(r'"([A-Z]+) (\S+) HTTP/1\.[01]" (\d{3})')


def _boto_config():
    return botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5, read_timeout=120)


class MotoServer:
    """One moto_server process on a free loopback port, with signature checks on."""

    def __init__(self, port=None, no_auth_count=4, log_dir=None, part_min_size=None, tls=False):
        self.port = port or free_port()
        self.no_auth_count = no_auth_count
        self.part_min_size = part_min_size
        self.dir = tempfile.mkdtemp(prefix="objstore-moto-", dir=log_dir)
        self.log_path = os.path.join(self.dir, "moto.log")
        self.proc = None
        self._log = None
        self.user = "objstore-test"
        self.access_key = None
        self.secret_key = None
        self.buckets = []
        # tls: https with a certificate made for 127.0.0.1 and signed by itself,
        # so the one file is both the server's certificate and the CA to trust.
        self.ca_file = None
        if tls:
            self.ca_file = os.path.join(self.dir, "cert.pem")
            self.key_file = os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", self.key_file, "-out", self.ca_file, "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True, timeout=60)

    @property
    def endpoint(self):
        return "%s://%s:%d" % ("https" if self.ca_file else "http", HOST, self.port)

    # ------------------------------------------------------------ process
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30.0, bucket=None):
        """Start moto (empty: state is in memory), create user, policy, key and
        (optionally) a bucket. Returns self."""
        if self.alive():
            raise RuntimeError("moto already running")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_") and k != "AWS_CA_BUNDLE":
                del env[k]
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.no_auth_count)
        env["PYTHONUNBUFFERED"] = "1"
        if self.part_min_size:
            env["S3_UPLOAD_PART_MIN_SIZE"] = str(self.part_min_size)
        self._log = open(self.log_path, "ab")
        self._log.write(("===== moto start %s port %d\n" % (time.strftime("%H:%M:%S"), self.port)).encode())
        self._log.flush()
        tls = ["-c", self.ca_file, "-k", self.key_file] if self.ca_file else []
        self.proc = subprocess.Popen([MOTO_BIN, "-H", HOST, "-p", str(self.port)] + tls,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait_ready(timeout)
        self._setup_iam()
        self.buckets = []
        if bucket:
            self.create_bucket(bucket)
        return self

    def _wait_ready(self, timeout):
        # /moto-api/ is not an AWS action: it does not use up the unauthenticated budget
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited with %s\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
                with urllib.request.urlopen(self.endpoint + "/moto-api/data.json", timeout=1.0,
                                            context=context) as r:
                    r.read()
                    return
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                last = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto_server not ready after %.0f s (%r)\n%s" % (timeout, last, self.log_tail()))

    def _setup_iam(self):
        # these requests run unauthenticated (the INITIAL_NO_AUTH_ACTION_COUNT budget)
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
                           verify=self.ca_file, config=botocore.config.Config(retries={"max_attempts": 1}))
        iam.create_user(UserName=self.user)
        iam.put_user_policy(UserName=self.user, PolicyName="allow-all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName=self.user)["AccessKey"]
        self.access_key = key["AccessKeyId"]
        self.secret_key = key["SecretAccessKey"]

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self, bucket=None):
        """Stop and start on the same port. moto forgets everything: new keys, no buckets."""
        self.stop()
        return self.start(bucket=bucket)

    def cleanup(self):
        self.stop()
        if not os.environ.get("OBJSTORE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------- clients
    def client(self, access_key=None, secret_key=None):
        """A boto3 S3 client (path-style); by default with the good keys."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key,
                            verify=self.ca_file, config=_boto_config())

    @property
    def s3(self):
        return self.client()

    def create_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def credentials_env(self):
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    # ----------------------------------------------------------------- log
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def requests(self):
        """[(method, path-with-query, status)] of every request moto logged, in order."""
        return [(m.group(1), m.group(2), int(m.group(3))) for m in LOG_RE.finditer(self.log_text())]

    def mark(self):
        """Current number of logged requests; pass to count(since=...)."""
        return len(self.requests())

    def count(self, method=None, path=None, path_re=None, query=None, since=0, status=None):
        """How many logged requests match: method (e.g. "GET"), exact path without the
        query (e.g. "/bkt/KEY"), or a regex on path-with-query, or a substring of the
        query (e.g. "partNumber="), and optionally a status."""
        n = 0
        for m, p, st in self.requests()[since:]:
            base, _, q = p.partition("?")
            if method and m != method:
                continue
            if path is not None and base != path:
                continue
            if path_re is not None and not re.search(path_re, p):
                continue
            if query is not None and query not in q:
                continue
            if status is not None and st != status:
                continue
            n += 1
        return n


class FaultProxy:
    """TCP proxy 127.0.0.1:port -> 127.0.0.1:target_port.

    up():    accept and forward.
    down():  stop listening (connections are refused) and cut every open connection.
    mode "reset" (down(mode="reset")): keep listening but reset each connection at once.
    mode "hang"  (down(mode="hang")):  accept and never answer (a black hole).
    throttle(n, status, code): the next n connections each get one HTTP error
                 answer (e.g. 503 SlowDown) after their request was read, then
                 the proxy forwards again.
    slow(rate):  forward at most `rate` bytes/s per direction and connection
                 (None: full speed again).
    cut_after(n, nbytes, direction): the next n connections are reset after
                 nbytes went through in `direction` ("down": S3's answer, "up":
                 the request), i.e. in the middle of a body.
    most_open:   the most connections forwarded at once since the last slow(),
                 throttle() or cut_after() (each cuts the open ones).
    """

    def __init__(self, target_port, port=None):
        self.target_port = target_port
        self.port = port or free_port()
        self.mode = "down"
        self._lock = threading.Lock()
        self._listener = None
        self._accept_thread = None
        self._conns = set()
        self.accepted = 0
        self.rate = None
        self._cut_left = 0
        self._cut = None
        self.cut = 0
        self.open_now = 0
        self.most_open = 0

    @property
    def endpoint(self):
        return "http://%s:%d" % (HOST, self.port)

    def _listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                s.bind((HOST, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    s.close()
                    raise
                time.sleep(0.1)
        s.listen(128)
        self._listener = s
        t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
        self._accept_thread = t
        t.start()

    def _close_listener(self):
        s = self._listener
        self._listener = None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None

    def up(self):
        with self._lock:
            if self._listener is None:
                self._listen()
            self.mode = "up"
        return self

    start = up

    def down(self, mode="refuse"):
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                self._close_listener()
            elif self._listener is None:
                self._listen()
            self._cut_all()
        return self

    def throttle(self, n, status=503, code="SlowDown"):
        with self._lock:
            self._throttle_left = n
            self._throttle_answer = (status, code)
            self.throttled = 0
            self._cut_all()  # kept-alive connections would bypass the throttle
        return self

    def slow(self, rate):
        with self._lock:
            self.rate = rate
            self._cut_all()
        return self

    def cut_after(self, n, nbytes, direction="down"):
        with self._lock:
            self._cut_left = n
            self._cut = (direction, nbytes)
            self.cut = 0
            self._cut_all()
        return self

    def _answer_error(self, client, status, code):
        """Reads one request (header and Content-Length body), answers an S3 error."""
        try:
            client.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            left = (int(m.group(1)) if m else 0) - len(rest)
            while left > 0:
                chunk = client.recv(min(left, 262144))
                if not chunk:
                    break
                left -= len(chunk)
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
                    "<Message>injected by the test proxy</Message></Error>" % code).encode()
            client.sendall(b"HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\n"
                           b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                           % (status, len(body), body))
        except OSError:
            pass
        finally:
            client.close()

    def stop(self):
        with self._lock:
            self.mode = "down"
            self._close_listener()
            self._cut_all()

    def _cut_all(self):
        self.most_open = 0
        for c in list(self._conns):
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._conns.clear()

    def _accept_loop(self, listener):
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return
            self.accepted += 1
            mode = self.mode
            if mode == "reset":
                try:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
                client.close()
                continue
            if mode == "hang":
                self._conns.add(client)
                continue
            with self._lock:
                throttled = getattr(self, "_throttle_left", 0) > 0
                if throttled:
                    self._throttle_left -= 1
                    self.throttled += 1
            if throttled:
                status, code = self._throttle_answer
                threading.Thread(target=self._answer_error, args=(client, status, code),
                                 daemon=True).start()
                continue
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._conns.add(client)
            self._conns.add(upstream)
            limits = {"up": None, "down": None}
            with self._lock:
                if self._cut_left > 0:
                    self._cut_left -= 1
                    limits[self._cut[0]] = self._cut[1]
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
            for a, b, way in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump, args=(a, b, limits[way], way == "down"),
                                 daemon=True).start()

    def _pump(self, src, dst, limit=None, counts_close=False):
        passed = 0
        try:
            while True:
                rate = self.rate
                data = src.recv(max(1024, rate // 20) if rate else 262144)
                if not data:
                    break
                if limit is not None and passed + len(data) >= limit:
                    dst.sendall(data[:limit - passed])
                    self.cut += 1
                    for s in (src, dst):  # a reset, as a dropped connection looks
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    break
                passed += len(data)
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            for s in (src, dst):
                self._conns.discard(s)
                try:
                    s.close()
                except OSError:
                    pass
            if counts_close:
                with self._lock:
                    self.open_now -= 1


class S3Node(Node):
    """harness.Node whose environment is fully controlled.

    env_set:    variables added (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
    AWS_* / S3_* variables of the test runner are always removed, and HOME points
    to an empty directory in the node dir (unless home= is given), so neither the
    machine's environment nor ~/.aws can supply credentials by accident.
    quiet:      debug level 0 instead of the harness's 1, which logs every S3
                canonical request (for benchmarks)."""

    def __init__(self, *a, env_set=None, home=None, quiet=False, **kw):
        super().__init__(*a, **kw)
        self.env_set = dict(env_set or {})
        self.home = home or os.path.join(self.dir, "home")
        self.quiet = quiet
        os.makedirs(self.home, exist_ok=True)

    def command(self):
        cmd = super().command()
        if self.quiet and "-d" in cmd:
            cmd[cmd.index("-d") + 1] = "0"
        return cmd

    def environment(self):
        env = super().environment()
        for k in list(env):
            if (k.startswith("AWS_") and k != "AWS_CA_BUNDLE") or k.startswith("S3_"):
                del env[k]
        env["HOME"] = self.home
        env.update(self.env_set)
        return env

    def wipe_local(self):
        """Stop the node and remove its state and files (its journal and bodies):
        what is left of the objects is in the bucket only. Does not restart."""
        self.stop()
        for d in (self.state_dir, self.files_dir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d, exist_ok=True)


def s3_args(bucket, endpoint, retry_interval=1, extra=()):
    return ["-B", bucket, "--s3-endpoint", endpoint, "--s3-path-style", "-R", REGION,
            "--cold-retry-interval", str(retry_interval)] + list(extra)


class S3TestCase(NodeTestCase):
    """NodeTestCase with moto, a fault proxy and S3-backed nodes, all cleaned up."""

    def setUp(self):
        super().setUp()
        # CI (.ci/run) must not pass without its S3 tests: there they fail.
        missing = self.fail if os.environ.get("OBJSTORE_REQUIRE_S3") else self.skipTest
        if boto3 is None:
            missing("boto3 not importable by %s" % sys.executable)
        if not shutil.which(MOTO_BIN) and not os.path.exists(MOTO_BIN):
            missing("moto_server not found")

    def start_moto(self, bucket=None, **kw):
        moto = MotoServer(log_dir=os.environ.get("OBJSTORE_TEST_TMP") or None, **kw)
        self.addCleanup(self._cleanup_moto, moto)
        moto.start(bucket=bucket)
        return moto

    def _cleanup_moto(self, moto):
        if harness._test_failed(self):
            sys.stderr.write("\n----- moto log tail -----\n%s\n-----\n" % moto.log_tail())
        moto.cleanup()

    def start_proxy(self, target_port, up=True):
        proxy = FaultProxy(target_port)
        self.addCleanup(proxy.stop)
        if up:
            proxy.up()
        return proxy

    def new_bucket(self, moto):
        name = "objstore-%s-%d" % (re.sub(r"[^a-z0-9]", "", self._testMethodName.lower())[:30],
                                    int(time.time() * 1000) % 100000000)
        return moto.create_bucket(name)

    def start_s3_node(self, moto, bucket, endpoint=None, credentials="good", extra=(),
                      retry_interval=1, start=True, name=None, base_dir=None, timeout=15.0):
        """credentials: "good", None (no credentials at all), or (access, secret)."""
        if credentials == "good":
            env = moto.credentials_env()
        elif credentials is None:
            env = {}
        else:
            env = {"AWS_ACCESS_KEY_ID": credentials[0], "AWS_SECRET_ACCESS_KEY": credentials[1]}
        node = S3Node(extra_args=s3_args(bucket, endpoint or moto.endpoint, retry_interval, extra),
                      base_dir=base_dir, name=name or self._testMethodName[:20], env_set=env)
        self.addCleanup(self._cleanup_node, node)
        if start:
            node.start(timeout=timeout)
        return node

    def wipe_and_restart(self, node):
        node.wipe_local()
        node.start(timeout=15.0)
        return node

    def wait_for(self, pred, timeout, what, period=0.1):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(period)
        self.fail("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))

    def head_or_none(self, moto, bucket, key):
        try:
            return moto.client().head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
