"""Black-box test harness for objstore.

Starts the real binary (env OBJSTORE_BIN, default /work/main/build/objstore) on
free loopback ports in a fresh temporary directory, talks HTTP to it, and always
stops it again (SIGTERM, then SIGKILL after 10 s).

Standard library only. Environment knobs:
  OBJSTORE_BIN       path of the binary
  OBJSTORE_TEST_TMP  parent directory for the per-node temp dirs (default: system tmp)
  OBJSTORE_KEEP_TMP  if set (non-empty), node directories are not removed
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import sys
import tempfile
import time
import traceback
import unittest

DEFAULT_BIN = "/work/main/build/objstore"
HOST = "127.0.0.1"

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def binary_path():
    return os.environ.get("OBJSTORE_BIN", DEFAULT_BIN)


def make_ulid(ts_ms=None):
    """A syntactically valid ULID generated locally (unknown to any node)."""
    if ts_ms is None:
        ts_ms = int(time.time() * 1000)
    value = (ts_ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


_ports_handed_out = set()
_ports_lock = threading.Lock()


def free_port():
    """A loopback port nobody listens on now (the kernel's pick for port 0) and
    not handed out before by this process: nodes made before any of them starts
    must not share one. Another process may still take it before the node binds
    it; Node.start then fails clearly rather than talk to that process."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        with _ports_lock:
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return list(ports)


def list_files(root):
    """All regular files under root (relative paths), sorted."""
    out = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for f in filenames:
            full = os.path.join(dirpath, f)
            out.append(os.path.relpath(full, root))
    return sorted(out)


def tree_size(root):
    total = 0
    for dirpath, _d, filenames in os.walk(root):
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue
            if not os.path.islink(os.path.join(dirpath, f)):
                total += st.st_size
    return total


TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".temp", ".inprogress", ".incomplete")
SPARE_BODIES = 4  # BodyStore::kSpareBodies


def _empty(path):
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def leftover_temp_files(root):
    """Files that look like unfinished writes: *.tmp / *.part ... anywhere under
    root, and anything inside a directory named tmp/temp/.tmp/incoming.
    Not counted: the empty bodies a running node makes ahead,
    <files-dir>/tmp/*.spare (docs/FORMATS.md), as long as there are at most
    SPARE_BODIES of them; one that holds bytes is an unfinished write."""
    bad, spares = [], []
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        parts = [] if rel_dir == "." else rel_dir.split(os.sep)
        in_tmp_dir = any(p.lower() in ("tmp", ".tmp", "temp", ".temp", "incoming", "partial")
                         for p in parts)
        for f in filenames:
            low = f.lower()
            path = os.path.join(rel_dir, f)
            if rel_dir == "tmp" and low.endswith(".spare") and _empty(os.path.join(dirpath, f)):
                spares.append(path)
            elif in_tmp_dir or low.endswith(TEMP_SUFFIXES) or ".tmp." in low or low.startswith(".tmp"):
                bad.append(path)
    if len(spares) > SPARE_BODIES:
        bad += spares
    return bad


def payload(n, seed=b"x"):
    """n deterministic pseudo-random bytes (a SHA-256 chain from seed)."""
    out = bytearray()
    h = hashlib.sha256(seed).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def parse_responses(data, head_flags=None):
    """Parse one or more HTTP/1.x responses from raw bytes.

    Returns a list of dicts {status, reason, version, headers (lower-cased, dict),
    header_list, body}. head_flags[i] true means response i answers a HEAD (no body).
    Stops at the first incomplete response (its dict gets 'incomplete': True).
    """
    out = []
    pos = 0
    idx = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            out.append({"incomplete": True, "raw": data[pos:]})
            break
        head = data[pos:end].decode("latin-1")
        lines = head.split("\r\n")
        status_line = lines[0]
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", status_line)
        if not m:
            out.append({"incomplete": True, "bad_status_line": status_line, "raw": data[pos:]})
            break
        headers = {}
        header_list = []
        for line in lines[1:]:
            if ":" not in line:
                continue
            k, v = line.split(":", 1)
            k = k.strip().lower()
            v = v.strip()
            header_list.append((k, v))
            headers[k] = (headers[k] + ", " + v) if k in headers else v
        status = int(m.group(2))
        pos = end + 4
        is_head = bool(head_flags and idx < len(head_flags) and head_flags[idx])
        body = b""
        incomplete = False
        if is_head or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                le = data.find(b"\r\n", pos)
                if le < 0:
                    incomplete = True
                    break
                size = int(data[pos:le].split(b";")[0].strip() or b"0", 16)
                pos = le + 2
                if size == 0:
                    te = data.find(b"\r\n\r\n", pos - 2)
                    pos = te + 4 if te >= 0 else len(data)
                    break
                chunks.append(data[pos:pos + size])
                pos += size + 2
            body = b"".join(chunks)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body = data[pos:pos + n]
            if len(body) < n:
                incomplete = True
            pos += n
        else:
            body = data[pos:]
            pos = len(data)
        out.append({"status": status, "reason": m.group(3) or "", "version": m.group(1),
                    "headers": headers, "header_list": header_list, "body": body,
                    "incomplete": incomplete})
        idx += 1
    return out


class NodeStartError(Exception):
    pass


class Node:
    """One objstore process with its own directories and ports."""

    def __init__(self, extra_args=(), base_dir=None, files_dir=None, name="node",
                 binary=None, precreate_dirs=True):
        self.binary = binary or binary_path()
        parent = base_dir or os.environ.get("OBJSTORE_TEST_TMP") or None
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="objstore-bb-%s-" % name, dir=parent)
        self.state_dir = os.path.join(self.dir, "state")
        self.files_dir = files_dir or os.path.join(self.dir, "files")
        self.cold_dir = os.path.join(self.dir, "cold")
        self.log_path = os.path.join(self.dir, "node.log")
        if precreate_dirs:
            for d in (self.state_dir, self.files_dir, self.cold_dir):
                os.makedirs(d, exist_ok=True)
        self.extra_args = list(extra_args)
        self.extra_env = {}       # added to the environment of the process
        self.config_via_env = False  # True: addresses and dirs as environment variables (SPEC §6)
        self.public_port, self.private_port = free_ports(2)
        # A node in a network namespace (test_faults.py) listens on other addresses
        # and runs under `ip netns exec NS`.
        self.public_host = HOST
        self.private_host = HOST
        self.command_prefix = []
        self.proc = None
        self._log = None
        self.last_exit_code = None

    # ---------------------------------------------------------------- process
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def environment(self):
        env = dict(os.environ)
        if self.config_via_env:
            env.update({"NET_PUBLIC_ADDR": "%s:%d" % (self.public_host, self.public_port),
                        "NET_PRIVATE_ADDR": "%s:%d" % (self.private_host, self.private_port),
                        "APP_STATE_DIR": self.state_dir, "APP_FILES_DIR": self.files_dir,
                        "APP_DEBUG_LEVEL": "1"})
        env.update(self.extra_env)
        return env

    def command(self):
        if self.config_via_env:
            return self.command_prefix + [self.binary, "--cold-dir", self.cold_dir] + self.extra_args
        return self.command_prefix + [
                self.binary,
                "--public-addr", "%s:%d" % (self.public_host, self.public_port),
                "--private-addr", "%s:%d" % (self.private_host, self.private_port),
                "--state-dir", self.state_dir,
                "--files-dir", self.files_dir,
                "--cold-dir", self.cold_dir,
                "-d", "1"] + self.extra_args

    def start(self, timeout=10.0):
        if self.alive():
            raise RuntimeError("node already running")
        if not os.path.exists(self.binary):
            raise NodeStartError("objstore binary not found at %s (set OBJSTORE_BIN)" % self.binary)
        self._log = open(self.log_path, "ab")
        log_start = self._log.tell()
        self._log.write(("\n===== start %s: %s\n" % (time.strftime("%H:%M:%S"),
                                                     " ".join(self.command()))).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, env=self.environment(),
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.last_exit_code = code
                self.proc = None
                self._close_log()
                raise NodeStartError("objstore exited during startup with code %s\n%s"
                                     % (code, self.log_tail()))
            try:
                st, _h, _b = self.request("GET", "/api/v1/ping", timeout=1.0)
                if st == 200 and self._logged_since(log_start, b"listening on %s:%d " % (
                        self.public_host.encode(), self.public_port)):
                    return self
                # A 200 before the node says it listens came from another process.
                last_err = "ping status %d" % st
            except (OSError, http.client.HTTPException) as e:
                last_err = repr(e)
            time.sleep(0.05)
        self.stop()
        raise NodeStartError("objstore not ready after %.0f s (last: %s)\n%s"
                             % (timeout, last_err, self.log_tail()))

    def stop(self, term_timeout=10.0):
        """SIGTERM, then SIGKILL after term_timeout. Returns the exit code (or None)."""
        if self.proc is None:
            return self.last_exit_code
        proc = self.proc
        code = None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                code = proc.wait(timeout=term_timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=30)
                code = "killed-after-timeout"
        else:
            code = proc.returncode
        self.last_exit_code = code
        self.proc = None
        self._close_log()
        return code

    def kill9(self):
        if self.proc is None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.last_exit_code = self.proc.returncode
        self.proc = None
        self._close_log()

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout=timeout)

    def _close_log(self):
        if self._log:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None

    def remove_dirs(self):
        if os.environ.get("OBJSTORE_KEEP_TMP"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def _logged_since(self, offset, text):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return text in f.read()

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "----- %s (last %d lines) -----\n%s\n-----" % (self.log_path, n, "\n".join(lines[-n:]))

    def rss_kib(self):
        """Current VmRSS of the node in KiB (None if unavailable)."""
        return self._status_kib("VmRSS")

    def peak_rss_kib(self):
        """Peak RSS (VmHWM) of the node in KiB (None if unavailable)."""
        return self._status_kib("VmHWM")

    def _status_kib(self, field):
        if not self.pid:
            return None
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.remove_dirs()
        return False

    # ------------------------------------------------------------------- HTTP
    def connection(self, timeout=30.0, port=None):
        return http.client.HTTPConnection(self.public_host, port or self.public_port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30.0, port=None):
        """One request over a fresh connection -> (status, headers lower-cased, body bytes)."""
        conn = self.connection(timeout=timeout, port=port)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, lower_headers(resp), data
        finally:
            conn.close()

    def new_id(self):
        st, _h, body = self.request("GET", "/api/v1/id")
        if st != 200:
            raise AssertionError("GET /api/v1/id -> %d %r" % (st, body[:200]))
        return body.decode().strip()

    def put(self, oid, body, level=0, name=None, user_meta=None, headers=None, method="POST"):
        h = {"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": str(level)}
        if name is not None:
            h["X-Meta-Name"] = name
        if user_meta is not None:
            h["X-Meta-UserMeta"] = user_meta if isinstance(user_meta, str) else json.dumps(user_meta)
        if headers:
            h.update(headers)
        if isinstance(body, (bytes, bytearray)) and not any(k.lower() == "transfer-encoding" for k in h):
            h.setdefault("Content-Length", str(len(body)))
        return self.request(method, "/api/v1/put", body=body, headers=h)

    def get(self, oid, headers=None, method="GET"):
        return self.request(method, "/api/v1/get/" + oid, headers=headers)

    def meta(self, oid, headers=None):
        st, h, body = self.request("GET", "/api/v1/meta/" + oid, headers=headers)
        js = None
        if body:
            try:
                js = json.loads(body)
            except ValueError:
                js = None
        return st, h, js

    def delete(self, oid, method="POST"):
        return self.request(method, "/api/v1/delete/" + oid)

    def ping(self):
        st, _h, body = self.request("GET", "/api/v1/ping", timeout=5.0)
        if st != 200:
            raise AssertionError("ping -> %d" % st)
        return body.decode().strip()

    def raw(self, data, timeout=3.0, return_closed=False, port=None, shutdown_write=False):
        """Send raw bytes on a new connection; return what comes back until the server
        closes or `timeout` seconds pass without the connection closing.
        With return_closed=True returns (bytes, closed_by_server)."""
        s = socket.create_connection((self.public_host, port or self.public_port), timeout=timeout)
        chunks = []
        closed = False
        try:
            try:
                s.sendall(data)
                if shutdown_write:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # server may close early (e.g. 413/431); read what it sent
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not b:
                    closed = True
                    break
                chunks.append(b)
        finally:
            s.close()
        out = b"".join(chunks)
        return (out, closed) if return_closed else out

    def wait_closed(self, sock, limit):
        """Read from sock until EOF/reset or `limit` seconds. Returns (seconds, data, closed)."""
        t0 = time.monotonic()
        data = []
        while True:
            left = limit - (time.monotonic() - t0)
            if left <= 0:
                return time.monotonic() - t0, b"".join(data), False
            sock.settimeout(left)
            try:
                b = sock.recv(65536)
            except socket.timeout:
                return time.monotonic() - t0, b"".join(data), False
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - t0, b"".join(data), True
            if not b:
                return time.monotonic() - t0, b"".join(data), True
            data.append(b)


def lower_headers(resp):
    out = {}
    for k, v in resp.getheaders():
        k = k.lower()
        out[k] = (out[k] + ", " + v) if k in out else v
    return out


def _test_failed(tc):
    """True when the running test has already recorded a failure or error (read from
    inside a cleanup; Python 3.11 reports failures to the result immediately)."""
    outcome = getattr(tc, "_outcome", None)
    if outcome is None:
        return False
    result = getattr(outcome, "result", None)
    if result is None:
        return not getattr(outcome, "success", True)
    for test, _tb in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
        if test is tc or getattr(test, "test_case", None) is tc:
            return True
    return False


class NodeTestCase(unittest.TestCase):
    """TestCase with start_node(): a node that is stopped and cleaned up whatever happens,
    whose log tail is printed when the test fails."""

    maxDiff = 4000

    def start_node(self, *extra_args, base_dir=None, files_dir=None, name=None,
                   start=True, precreate_dirs=True):
        if not os.path.exists(binary_path()):
            self.fail("objstore binary not found at %s (build it or set OBJSTORE_BIN)" % binary_path())
        node = Node(extra_args=extra_args, base_dir=base_dir, files_dir=files_dir,
                    name=name or self._testMethodName[:20], precreate_dirs=precreate_dirs)
        self.addCleanup(self._cleanup_node, node)
        if start:
            node.start()
        return node

    def _cleanup_node(self, node):
        """Stop the node; fail the test if it died on its own (crash after the last
        request) or did not shut down cleanly on SIGTERM."""
        failed = _test_failed(self)
        problem = None
        try:
            if node.proc is not None:
                # a crash right after the last response shows up a moment later
                time.sleep(0.15)
                if node.proc.poll() is None:
                    try:
                        node.request("GET", "/api/v1/ping", timeout=5.0)
                    except (OSError, http.client.HTTPException):
                        pass
                    time.sleep(0.05)
                if node.proc.poll() is not None:
                    problem = "objstore died during the test (exit status %s)" % node.proc.returncode
            code = node.stop()
            if problem is None and code not in (0, -signal.SIGTERM, None):
                problem = "objstore did not stop cleanly on SIGTERM (exit status %s)" % (code,)
        finally:
            if failed or problem:
                sys.stderr.write("\n" + node.log_tail() + "\n")
                sys.stderr.write("(node dir %s%s)\n" % (node.dir, "" if os.environ.get("OBJSTORE_KEEP_TMP") else ", removed; set OBJSTORE_KEEP_TMP=1 to keep it"))
            node.remove_dirs()
        if problem and not failed:
            raise AssertionError(problem)

    # ---------------------------------------------------------- threads
    def spawn(self, target, *args):
        """Starts target(*args) in a daemon thread whose exception fails the test: a
        plain thread that raises (e.g. IncompleteRead on a body cut short) only dies,
        and whatever it was checking is silently never checked. Join with join_all."""
        if "_thread_failures" not in self.__dict__:
            self._thread_failures = []
            self.addCleanup(self._assert_no_thread_failed)
        failures = self._thread_failures

        def run():
            try:
                target(*args)
            except BaseException:  # noqa: BLE001 - reported by join_all or the cleanup
                failures.append("%s: %s" % (threading.current_thread().name,
                                            traceback.format_exc(limit=8)))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def join_all(self, threads, timeout):
        """Joins threads started by spawn within `timeout` seconds in all; fails the
        test if one is still running or any raised."""
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        self.assertEqual(alive, [], "threads still running after %.0f s" % timeout)
        self._assert_no_thread_failed()

    def _assert_no_thread_failed(self):
        failures = self.__dict__.get("_thread_failures", [])
        self.assertEqual(failures, [], "a test thread raised:\n" + "\n".join(failures))

    # ---------------------------------------------------------- assertions
    def assertStartRefused(self, node, mention=None, msg=None):
        """`node` (not running) fails to start: it exits non-zero and, when given, its
        log mentions `mention`. A node that did start is stopped, so that the next
        case (a subTest) is checked on its own."""
        try:
            with self.assertRaises(NodeStartError, msg=msg):
                node.start(timeout=5)
        except AssertionError:
            node.stop()
            raise
        self.assertNotEqual(node.last_exit_code, 0, msg)
        if mention is not None:
            self.assertIn(mention, node.log_tail(), msg)
        node.last_exit_code = None  # expected: not a failed stop for the cleanup

    def assertJsonError(self, resp, status, code=None, msg=None):
        st, h, body = resp
        ctx = "%s: got %d %r" % (msg or "", st, body[:300])
        if isinstance(status, (tuple, list, set)):
            self.assertIn(st, status, ctx)
        else:
            self.assertEqual(st, status, ctx)
        self.assertTrue(h.get("content-type", "").startswith("application/json"),
                        "%s: error Content-Type %r" % (ctx, h.get("content-type")))
        try:
            js = json.loads(body)
        except ValueError:
            self.fail("%s: error body is not JSON" % ctx)
        self.assertIsInstance(js, dict, ctx)
        self.assertIsInstance(js.get("error"), str, ctx)
        self.assertTrue(js["error"].strip(), ctx + ": empty error text")
        self.assertIsInstance(js.get("code"), str, ctx)
        if code is not None:
            if isinstance(code, (tuple, list, set)):
                self.assertIn(js["code"], code, ctx)
            else:
                self.assertEqual(js["code"], code, ctx)
        return js

    def assertOk(self, resp, msg=None):
        st, _h, body = resp
        self.assertEqual(st, 200, "%s: got %d %r" % (msg or "", st, body[:300]))
        return resp


def mount_tmpfs(tc, size="8m"):
    """A tmpfs of `size` mounted for test case `tc` (skips it without root); unmounted
    after the test's nodes stopped."""
    if os.geteuid() != 0:
        tc.skipTest("disk-full test needs root to mount a tmpfs")
    d = tempfile.mkdtemp(prefix="objstore-bb-tmpfs-")
    tc.addCleanup(os.rmdir, d)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", d],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        tc.skipTest("cannot mount a tmpfs: %r" % e)
    if r.returncode != 0:
        tc.skipTest("cannot mount a tmpfs (mount exit %d: %s)" % (r.returncode, r.stderr.strip()))
    # cleanups run last-in first-out: the node (registered later) stops before the unmount
    tc.addCleanup(subprocess.run, ["umount", "-l", d], capture_output=True, timeout=30)
    return d


def put_raw(node, oid, body, level=0, chunked=False):
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


class PeakSampler(threading.Thread):
    """Calls read() every `period` seconds until stop(); keeps the peak of what it
    returns (None: no sample)."""

    def __init__(self, read, period=0.05):
        super().__init__(daemon=True)
        self.read = read
        self.period = period
        self.peak = 0
        self.samples = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            v = self.read()
            if v is not None:
                self.samples += 1
                self.peak = max(self.peak, v)
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=5)


class RssSampler(PeakSampler):
    """Samples a node's VmRSS (KiB)."""

    def __init__(self, node, period=0.05):
        super().__init__(node.rss_kib, period)

    @property
    def max_kib(self):
        return self.peak
