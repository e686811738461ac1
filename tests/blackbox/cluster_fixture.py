"""Cluster helpers for black-box tests and benchmarks (docs/CLUSTER.md).

Cluster(n, ...)   n objstore processes (harness.Node) on loopback. Node 0 starts
                  solo; node i joins with `-N <seed private addr>` (node 0's, or
                  node i-1's with seed="chain"). All nodes share one directory
                  cold store (as every node of a real cluster shares one bucket).
                  start() waits until every node's /api/v1/stats shows
                  cluster.alive == n.
                  Helpers: stats(i), cstats(i), wait_alive(), wait_converged(),
                  kill9(i), sigstop(i), sigcont(i), restart(i), add_node(...).
ClusterTestCase   harness.NodeTestCase + start_cluster(): every process is
                  stopped by addCleanup whatever happens (paused ones are
                  SIGCONTed first), failing tests print every node's log tail.
Private API       sign_headers() computes the X-Cluster-* headers of docs/CLUSTER.md
                  (HMAC-SHA256 over method, target, tag, node, time, nonce and the
                  body's SHA-256, joined by newlines); private_request() sends one
                  request to a node's private port.
wait_for()        a polling loop bounded in time AND iterations.

Standard library only.
"""

import hashlib
import hmac
import http.client
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import HOST, Node, NodeTestCase, list_files  # noqa: E402

# Small timings so failure detection and anti-entropy happen within a test.
FAST_TIMINGS = ("--gossip-interval", "0.2", "--suspect-timeout", "1.5",
                "--sync-interval", "1", "--peer-timeout", "1")

CLOCK_ENV = "OBJSTORE_CLOCK_OFFSET_MS"


def _thread_state(pid, tid):
    """The state letter of one thread (R, S, T...) from /proc."""
    with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class WaitTimeout(AssertionError):
    pass


def wait_for(pred, timeout, what="condition", interval=0.1, max_iter=None):
    """Poll pred() until it returns a truthy value; return that value.
    Bounded by `timeout` seconds and by max_iter polls (default timeout/interval*2+10).
    Raises WaitTimeout (an AssertionError) with the last value/exception."""
    if max_iter is None:
        max_iter = int(timeout / interval * 2) + 10
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(max_iter):
        try:
            v = pred()
            if v:
                return v
            last = v
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as e:
            last = repr(e)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise WaitTimeout("timed out after %.1f s waiting for %s (last: %s)"
                      % (timeout, what, str(last)[:1500]))


def body_files(node, oid):
    """Committed body files of `oid` under the node's files dir (tmp/ excluded)."""
    return [f for f in list_files(node.files_dir)
            if not f.startswith("tmp" + os.sep) and os.path.basename(f).startswith(oid + "@")]


# ------------------------------------------------------------------ private API
def sign_headers(secret, method, target, body=b"", tag="default", node="", time_ms=None,
                 nonce=None):
    """X-Cluster-* request headers per docs/CLUSTER.md § Authentication."""
    if time_ms is None:
        time_ms = int(time.time() * 1000)
    if nonce is None:
        nonce = os.urandom(16).hex()
    body_hash = hashlib.sha256(body or b"").hexdigest()
    msg = "\n".join([method, target, tag, node, str(time_ms), nonce, body_hash])
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    return {"X-Cluster-Tag": tag, "X-Cluster-Node": node, "X-Cluster-Time": str(time_ms),
            "X-Cluster-Nonce": nonce, "X-Cluster-Signature": sig}


def response_signature(secret, status, nonce, body):
    """Expected signature of a JSON answer: HMAC over "response", status, the request's
    nonce and the body's SHA-256, joined by newlines (docs/CLUSTER.md)."""
    msg = "\n".join(["response", str(status), nonce, hashlib.sha256(body or b"").hexdigest()])
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def private_request(port, method, target, body=None, headers=None, timeout=5.0):
    """One request to a private port -> (status, lower-cased headers, body bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, target, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, harness.lower_headers(resp), data
    finally:
        conn.close()


# ---------------------------------------------------------------------- cluster
class Cluster:
    """n nodes; see the module docstring. `testcase` (a NodeTestCase) gets every node
    registered for cleanup; without one, call close() yourself (benchmarks)."""

    def __init__(self, n, secret=None, tag=None, timings=FAST_TIMINGS, extra_args=(),
                 env=None, seed="first", testcase=None, base_dir=None, name="c",
                 shared_cold=True, node_setup=None):
        self.n = n
        self.secret = secret
        self.tag = tag
        self.timings = tuple(timings)
        self.extra_args = tuple(extra_args)
        self.env = env or {}          # {index: {VAR: value}}
        self.seed = seed
        self.tc = testcase
        self.name = name
        self.base_dir = base_dir or os.environ.get("OBJSTORE_TEST_TMP") or None
        self.nodes = []
        self.stopped = set()          # indexes currently SIGSTOPped
        self.cold_dir = None
        if self.base_dir:
            os.makedirs(self.base_dir, exist_ok=True)
        if shared_cold:
            self.cold_dir = tempfile.mkdtemp(prefix="objstore-bb-%s-cold-" % name,
                                             dir=self.base_dir)
        self.ids = {}                 # index -> node id (from /api/v1/ping)
        # node_setup(index, node) runs on each new node before its first start
        # (e.g. to place it in a network namespace)
        self.node_setup = node_setup

    # ---------------------------------------------------------------- process
    def private_addr(self, i):
        return "%s:%d" % (self.nodes[i].private_host, self.nodes[i].private_port)

    def args_for(self, i, seeds, secret, tag):
        args = list(self.timings)
        if seeds:
            args += ["-N", ",".join(seeds)]
        if tag is not None:
            args += ["-T", tag]
        if secret is not None:
            args += ["--cluster-secret", secret]
        return args + list(self.extra_args)

    def new_node(self, seeds, secret=None, tag=None, env=None, name=None, extra_args=()):
        """Create (not start) a node with the given seeds (list of 'host:port')."""
        args = self.args_for(len(self.nodes), seeds, secret, tag) + list(extra_args)
        nm = name or "%s%d" % (self.name, len(self.nodes))
        if self.tc is not None:
            node = self.tc.start_node(*args, name=nm, start=False, base_dir=self.base_dir)
        else:
            node = Node(extra_args=args, name=nm, base_dir=self.base_dir)
        if self.cold_dir:
            node.cold_dir = self.cold_dir
        node.extra_env.update(env or {})
        if self.node_setup is not None:
            self.node_setup(len(self.nodes), node)
        return node

    def start(self, wait=True, timeout=30.0):
        for i in range(self.n):
            if i == 0:
                seeds = []
            elif self.seed == "chain":
                seeds = [self.private_addr(i - 1)]
            else:
                seeds = [self.private_addr(0)]
            node = self.new_node(seeds, secret=self.secret, tag=self.tag,
                                 env=self.env.get(i))
            self.nodes.append(node)
            node.start()
            self.ids[i] = node.ping()
        if self.tc is not None:
            # LIFO: runs before the nodes' own cleanups, so no SIGTERM hits a paused node
            self.tc.addCleanup(self.resume_all)
        if wait:
            self.wait_alive(self.n, timeout=timeout)
        return self

    def add_node(self, seeds=None, secret="__same__", tag="__same__", env=None, start=True,
                 name=None):
        """An extra node (not counted in n) joining via `seeds` (default node 0)."""
        if seeds is None:
            seeds = [self.private_addr(0)]
        node = self.new_node(seeds, secret=self.secret if secret == "__same__" else secret,
                             tag=self.tag if tag == "__same__" else tag, env=env, name=name)
        if start:
            node.start()
        return node

    def kill9(self, i):
        if i in self.stopped:
            self.sigcont(i)
        self.nodes[i].kill9()
        # a deliberate kill: the harness' cleanup must not report exit status -9
        self.nodes[i].last_exit_code = None

    def sigstop(self, i):
        if not self.nodes[i].alive():
            return
        pid = self.nodes[i].pid
        os.kill(pid, signal.SIGSTOP)
        self.stopped.add(i)
        # SIGSTOP takes effect asynchronously: wait (bounded) until every thread
        # of the process is stopped, so the next request meets a hung peer.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                states = [_thread_state(pid, t) for t in os.listdir("/proc/%d/task" % pid)]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                break
            if all(st in ("T", "t") for st in states):
                break
            time.sleep(0.01)

    def sigcont(self, i):
        if self.nodes[i].pid:
            try:
                os.kill(self.nodes[i].pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped.discard(i)

    def resume_all(self):
        for i in list(self.stopped):
            self.sigcont(i)

    def restart(self, i, timeout=15.0):
        """Start node i again (same dirs, ports, flags); kills it first if running."""
        node = self.nodes[i]
        if i in self.stopped:
            self.sigcont(i)
        if node.alive():
            node.kill9()
            node.last_exit_code = None
        node.start(timeout=timeout)
        return node

    def close(self):
        """Stop everything and remove the dirs (benchmarks; tests use addCleanup)."""
        self.resume_all()
        for node in self.nodes:
            try:
                node.stop()
            finally:
                node.remove_dirs()
        if self.cold_dir and not os.environ.get("OBJSTORE_KEEP_TMP"):
            import shutil
            shutil.rmtree(self.cold_dir, ignore_errors=True)

    def running(self):
        return [i for i, nd in enumerate(self.nodes) if nd.alive() and i not in self.stopped]

    # ------------------------------------------------------------------ stats
    def stats(self, i, timeout=3.0):
        st, _h, body = self.nodes[i].request("GET", "/api/v1/stats", timeout=timeout)
        if st != 200:
            raise AssertionError("stats on node %d -> %d %r" % (i, st, body[:200]))
        return json.loads(body)

    def cstats(self, i, timeout=3.0):
        """The stats' "cluster" block (KeyError if the binary has none)."""
        return self.stats(i, timeout)["cluster"]

    def member_states(self, i):
        """{member id: state} as node i sees them."""
        return {m["id"]: m["state"] for m in self.cstats(i)["members"]}

    def wait_alive(self, n, nodes=None, timeout=20.0):
        """Every node in `nodes` (default: all running) reports alive == n."""
        idx = list(nodes) if nodes is not None else self.running()

        def check():
            seen = {}
            for i in idx:
                seen[i] = self.cstats(i)["alive"]
            if all(v == n for v in seen.values()):
                return True
            check.last = seen
            return False
        check.last = None
        try:
            return wait_for(check, timeout, "alive == %d on nodes %s" % (n, idx), interval=0.1)
        except WaitTimeout as e:
            raise WaitTimeout("%s; alive counts: %s; members: %s"
                              % (e, check.last, self._members_summary(idx)))

    def _members_summary(self, idx):
        out = {}
        for i in idx:
            try:
                out[i] = [(m.get("id", "?")[-6:], m.get("state"), m.get("inc"))
                          for m in self.cstats(i)["members"]]
            except Exception as e:  # noqa: BLE001 - diagnostic only
                out[i] = repr(e)
        return out

    def digests(self, nodes=None):
        idx = list(nodes) if nodes is not None else self.running()
        out = {}
        for i in idx:
            c = self.cstats(i)
            out[i] = (c["digest"], c["records"])
        return out

    def wait_converged(self, nodes=None, timeout=20.0, interval=0.2):
        """All digests and record counts equal; returns {i: (digest, records)}."""
        state = {"last": None}

        def check():
            d = self.digests(nodes)
            state["last"] = d
            return d if len(set(d.values())) == 1 else None
        try:
            return wait_for(check, timeout, "converged digests", interval=interval)
        except WaitTimeout as e:
            raise WaitTimeout("%s; digests/records per node: %s" % (e, state["last"]))

    def dump_logs(self, stream=sys.stderr, n=80):
        for node in self.nodes:
            stream.write("\n" + node.log_tail(n) + "\n")


class ClusterTestCase(NodeTestCase):
    """NodeTestCase with start_cluster(); all processes stopped by addCleanup."""

    def start_cluster(self, n, **kw):
        kw.setdefault("name", self._testMethodName[5:17])
        c = Cluster(n, testcase=self, **kw)
        if c.cold_dir:
            self.addCleanup(self._remove_cold, c.cold_dir)
        c.start()
        return c

    @staticmethod
    def _remove_cold(path):
        if not os.environ.get("OBJSTORE_KEEP_TMP"):
            import shutil
            shutil.rmtree(path, ignore_errors=True)
