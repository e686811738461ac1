#!/usr/bin/env python3
"""Soak (issue 7 §6): a cluster under mixed load with random kill -9 and pauses.

Processes: --nodes objstore nodes (tests/blackbox/cluster_fixture.Cluster) whose
cold store is moto_server with signature checks (tests/blackbox/moto_fixture),
all on loopback.

Load: --clients threads. Each owns its own keys (--keys per client), so the
order of the operations on one key is known: the client's own. Every operation
goes to a random node: PUT (level 0, 1 or 2; 0 B .. 64 KiB, sometimes 1 MiB),
GET, ranged GET, HEAD, DELETE. The client keeps, per key, every body it ever
sent, the last acknowledged state (a body or "deleted"), and the operations sent
after it whose outcome is unknown (no answer, or an error answer: a 503 PUT keeps
its body and may well take effect later).

Nemesis: every 1-4 s one node is disturbed: kill -9 then a restart after
0.5-4 s, or SIGSTOP then SIGCONT after 0.5-4 s. One node at a time.

Checks while running: a 200/206 whose bytes are no version ever written to that
key is a corrupt read (a stale version, or 404 before replication catches up,
is eventual consistency, counted apart).

At the end: every node resumed and restarted, wait until all are alive, the
journal digests equal and the replication and cold-store queues empty; then
every key is read on every node:
  lost write     the last acknowledged op was a PUT and the node answers
                 something else, not explained by a later unknown op;
  revived delete the last acknowledged op was a DELETE and a body is served,
                 not explained by a later unknown op.
Both must be 0. Prints a table per op (count, ok, 4xx, 5xx, no answer, p50,
p99 of the answered ones) and a RESULT line; exits 1 if anything was lost,
revived or corrupt, or the cluster did not converge.

Usage: bench/soak.sh [--seconds 600] [--nodes 3] [--clients 6] [--keys 40]
       [--seed 1] [--objstore build/objstore]
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "blackbox"))

from cluster_fixture import Cluster, WaitTimeout, wait_for  # noqa: E402
from harness import NodeStartError, make_ulid, sha  # noqa: E402
from moto_fixture import MotoServer, s3_args  # noqa: E402

OPS = ("PUT", "GET", "RANGE", "HEAD", "DELETE")
WEIGHTS = (35, 30, 12, 10, 13)
TIMEOUT = 5.0
DELETED = "deleted"


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Key:
    """One key's history, as its single client knows it."""

    def __init__(self):
        self.versions = {}      # sha -> body, every body ever sent
        self.acked = None       # None (never acknowledged), a sha, or DELETED
        self.unknown = []       # states of ops sent after `acked` with no known outcome
        self.late = set()       # states of timed-out ops: the node may apply them any time later
        self.level = 0
        self.history = []       # (seconds, op, node, outcome, state[:8]) for the report

    def allowed(self):
        return {self.acked} | set(self.unknown) | self.late


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {op: {"n": 0, "ok": 0, "4xx": 0, "5xx": 0, "refused": 0, "cut": 0,
                          "timeout": 0, "lat": []} for op in OPS}
        self.corrupt = []
        self.stale = 0

    def add(self, op, status, seconds):
        """status: an HTTP status, or "refused" / "cut" / "timeout" when no answer came."""
        with self.lock:
            r = self.rows[op]
            r["n"] += 1
            if isinstance(status, str):
                r[status] += 1
                return
            r["lat"].append(seconds)
            if status < 300 or status == 304:
                r["ok"] += 1
            elif status < 500:
                r["4xx"] += 1
            else:
                r["5xx"] += 1


class Client(threading.Thread):
    def __init__(self, idx, cluster, args, stats, stop):
        super().__init__(daemon=True)
        self.rnd = random.Random(args.seed * 1000 + idx)
        self.c = cluster
        self.stats = stats
        self.stop_ev = stop
        self.keys = {make_ulid(): Key() for _ in range(args.keys)}
        for k, key in enumerate(self.keys.values()):
            key.level = k % 3  # fixed per key: a PUT never asks to lower the level
        self.conns = {}

    def request(self, i, method, path, body=None, headers=None):
        """-> (status, headers, body), or why no answer came: "refused" (node down),
        "cut" (connection closed or reset: killed meanwhile), "timeout" (paused: the
        node may still apply the request later)."""
        node = self.c.nodes[i]
        try:
            conn = self.conns.get(i)
            if conn is None:
                conn = self.conns[i] = node.connection(timeout=TIMEOUT)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except (OSError, http.client.HTTPException) as e:
            conn = self.conns.pop(i, None)
            if conn is not None:
                conn.close()
            if isinstance(e, TimeoutError):
                return "timeout"
            return "refused" if isinstance(e, ConnectionRefusedError) else "cut"

    def run(self):
        oids = list(self.keys)
        while not self.stop_ev.is_set():
            op = self.rnd.choices(OPS, WEIGHTS)[0]
            oid = self.rnd.choice(oids)
            key = self.keys[oid]
            i = self.rnd.randrange(len(self.c.nodes))
            t0 = time.monotonic()
            if op == "PUT":
                size = 1 << 20 if self.rnd.random() < 0.02 else self.rnd.randint(0, 64 * 1024)
                body = self.rnd.randbytes(size)
                digest = sha(body)
                key.versions[digest] = body
                r = self.request(i, "POST", "/api/v1/put", body,
                                 {"X-Meta-ID": oid, "X-Meta-ConsistencyLevel": str(key.level),
                                  "Content-Length": str(size)})
                self.settle(key, digest, r, "PUT", i)
            elif op == "DELETE":
                if key.acked is None and not key.unknown:
                    continue
                r = self.request(i, "POST", "/api/v1/delete/" + oid, b"", {"Content-Length": "0"})
                self.settle(key, DELETED, r, "DELETE", i)
            elif op == "HEAD":
                r = self.request(i, "HEAD", "/api/v1/get/" + oid)
            else:
                headers = {}
                lo = hi = None
                if op == "RANGE":
                    lo = self.rnd.randint(0, 70000)
                    hi = lo + self.rnd.randint(0, 20000)
                    headers["Range"] = "bytes=%d-%d" % (lo, hi)
                r = self.request(i, "GET", "/api/v1/get/" + oid, None, headers)
                if isinstance(r, tuple):
                    self.check_read(oid, key, r, lo, hi)
            self.stats.add(op, r[0] if isinstance(r, tuple) else r, time.monotonic() - t0)
        for conn in self.conns.values():
            conn.close()

    def settle(self, key, state, r, op, i):
        outcome = r[0] if isinstance(r, tuple) else r
        key.history.append(("%.3f" % time.monotonic(), op, i, outcome, state[:8]))
        if outcome == 200:
            key.acked = state
            key.unknown = []
        elif outcome == "refused":
            pass  # never reached the node
        elif outcome == "timeout":
            key.late.add(state)
        elif not isinstance(outcome, int) or outcome >= 500:
            key.unknown.append(state)
        # a 4xx was refused (a 404 DELETE: this node does not know the key yet): no effect

    def check_read(self, oid, key, r, lo, hi):
        status, _h, data = r
        if status == 200:
            ok = sha(data) in key.versions
        elif status == 206:
            ok = any(body[lo:hi + 1] == data for body in key.versions.values())
        else:
            if status == 404 and key.acked not in (None, DELETED):
                with self.stats.lock:
                    self.stats.stale += 1
            return
        if not ok:
            with self.stats.lock:
                self.stats.corrupt.append("%s: %d with %d bytes matching no version" %
                                          (oid, status, len(data)))


class Nemesis(threading.Thread):
    def __init__(self, cluster, seed, stop):
        super().__init__(daemon=True)
        self.c = cluster
        self.rnd = random.Random(seed)
        self.stop_ev = stop
        self.kills = self.pauses = 0
        self.errors = []

    def run(self):
        while not self.stop_ev.wait(self.rnd.uniform(1, 4)):
            i = self.rnd.randrange(len(self.c.nodes))
            down = self.rnd.uniform(0.5, 4)
            if self.rnd.random() < 0.5:
                self.kills += 1
                self.c.kill9(i)
                self.stop_ev.wait(down)
                try:
                    self.c.restart(i, timeout=30)
                except NodeStartError as e:
                    self.errors.append("restart of node %d: %s" % (i, str(e)[:300]))
            else:
                self.pauses += 1
                self.c.sigstop(i)
                self.stop_ev.wait(down)
                self.c.sigcont(i)


def settle_cluster(c, timeout):
    """All nodes running and resumed, converged, queues empty."""
    c.resume_all()
    for i, node in enumerate(c.nodes):
        if not node.alive():
            c.restart(i, timeout=30)
    c.wait_alive(len(c.nodes), timeout=timeout)
    c.wait_converged(timeout=timeout, interval=0.5)

    def queues_empty():
        for i in range(len(c.nodes)):
            s = c.stats(i)
            if s["cold_store"]["queue"] or s["cluster"].get("replication_queue", 0):
                return False
        return True
    wait_for(queues_empty, timeout, "empty cold-store and replication queues", interval=0.5)
    return c.wait_converged(timeout=timeout, interval=0.5)


def final_check(c, clients):
    lost, revived, checked = [], [], 0
    for cl in clients:
        for oid, key in cl.keys.items():
            if key.acked is None and not key.unknown:
                continue
            allowed = key.allowed()
            for i, node in enumerate(c.nodes):
                st, _h, data = node.request("GET", "/api/v1/get/" + oid, timeout=30)
                checked += 1
                state = sha(data) if st == 200 else (DELETED if st == 404 else "status %d" % st)
                if st == 404 and key.acked is None:
                    continue  # never acknowledged, and absent: fine
                if state in allowed:
                    continue
                what = "%s on node %d: %s, acknowledged %s, unknown %s, late %s; history %s" % (
                    oid, i, state[:8], str(key.acked)[:8], [u[:8] for u in key.unknown],
                    [u[:8] for u in key.late], key.history[-6:])
                (revived if key.acked == DELETED else lost).append(what)
    return lost, revived, checked


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--keys", type=int, default=40, help="keys per client")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle-timeout", type=float, default=180)
    args = ap.parse_args()

    moto = MotoServer(log_dir=os.environ.get("OBJSTORE_TEST_TMP") or None)
    moto.start(bucket="objstore-soak")
    c = Cluster(args.nodes, name="soak", shared_cold=False,
                extra_args=s3_args("objstore-soak", moto.endpoint),
                env={i: moto.credentials_env() for i in range(args.nodes)})
    stop = threading.Event()
    ok = False
    try:
        c.start(timeout=60)
        log("%d nodes up, cold store moto (signature checks) at %s" % (args.nodes, moto.endpoint))
        stats = Stats()
        clients = [Client(k, c, args, stats, stop) for k in range(args.clients)]
        nemesis = Nemesis(c, args.seed, stop)
        t0 = time.monotonic()
        for t in clients + [nemesis]:
            t.start()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(min(30, max(0.1, args.seconds - (time.monotonic() - t0))))
            with stats.lock:
                done = sum(r["n"] for r in stats.rows.values())
            log("%.0f s: %d ops, %d kills, %d pauses" % (time.monotonic() - t0, done,
                                                          nemesis.kills, nemesis.pauses))
        stop.set()
        for t in clients + [nemesis]:
            t.join(timeout=60)
        ran = time.monotonic() - t0
        log("load stopped; healing")
        t_heal = time.monotonic()
        try:
            digests = settle_cluster(c, args.settle_timeout)
            converged = True
        except WaitTimeout as e:
            log("did not settle: %s" % e)
            digests, converged = c.digests(), False
        heal_s = time.monotonic() - t_heal
        lost, revived, checked = final_check(c, clients)

        keys_acked = sum(1 for cl in clients for k in cl.keys.values() if k.acked is not None)
        keys_open = sum(1 for cl in clients for k in cl.keys.values()
                        if k.acked is not None and (k.unknown or k.late))
        print("\nsoak: %d nodes, %d clients x %d keys, %.0f s, seed %d; %d kill -9, %d pauses"
              % (args.nodes, args.clients, args.keys, ran, args.seed, nemesis.kills, nemesis.pauses))
        print("\n| op | count | ok | 4xx | 5xx | refused | cut | timeout | error rate "
              "| error rate, node up | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        total_ok_puts = 0
        for op in OPS:
            r = stats.rows[op]
            bad = r["5xx"] + r["refused"] + r["cut"] + r["timeout"]
            up = r["n"] - r["refused"]  # a refused connection: the node was down
            if op == "PUT":
                total_ok_puts = r["ok"]
            print("| %s | %d | %d | %d | %d | %d | %d | %d | %.2f%% | %.2f%% | %.1f | %.1f |" % (
                op, r["n"], r["ok"], r["4xx"], r["5xx"], r["refused"], r["cut"], r["timeout"],
                100 * bad / max(1, r["n"]), 100 * (bad - r["refused"]) / max(1, up),
                1000 * pct(r["lat"], 50), 1000 * pct(r["lat"], 99)))
        print("\nacknowledged writes %d; keys with an acknowledged last state %d (%d of them with "
              "later ops of unknown outcome, either state accepted); lost writes %d; revived "
              "deletes %d; corrupt reads %d; stale/404 reads %d; reads checked after healing %d; "
              "healed in %.1f s; converged %s; restart errors %d"
              % (total_ok_puts, keys_acked, keys_open, len(lost), len(revived),
                 len(stats.corrupt), stats.stale, checked, heal_s, converged,
                 len(nemesis.errors)))
        for line in (lost + revived + stats.corrupt + nemesis.errors)[:20]:
            print("  " + line)
        print("digests: %s" % json.dumps({str(k): v for k, v in digests.items()}))
        print("RESULT seconds=%.0f acked_writes=%d lost=%d revived=%d corrupt=%d converged=%s"
              % (ran, total_ok_puts, len(lost), len(revived), len(stats.corrupt), converged))
        ok = converged and not lost and not revived and not stats.corrupt and not nemesis.errors
    finally:
        stop.set()
        c.close()
        moto.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
