#!/usr/bin/env python3
"""A BENCH_NODES-node cluster on one machine (issue 4 §7): join time and convergence.

Node 0 starts solo; nodes 1..N-1 are launched one after another with -N <node 0>
(each launch waits only until the node answers /api/v1/ping). Join time: from the
launch of node 1 until every node's stats show cluster.alive == N. Then BENCH_PUTS
PUTs (level 1, 1 KiB, round robin over the nodes, from BENCH_CLIENTS threads), and the
time from the first PUT until every node's cluster.digest is equal (and from the last
acknowledgement). Timings are the defaults of docs/CLUSTER.md unless BENCH_TIMINGS
(e.g. "--gossip-interval 0.2 --sync-interval 1") is set.

Environment (set by bench/cluster_join.sh): OBJSTORE_BIN, OBJSTORE_TEST_TMP,
OBJSTORE_KEEP_TMP, BENCH_NODES, BENCH_PUTS, BENCH_ROUNDS, BENCH_TIMINGS, BENCH_TIMEOUT.
"""

import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "blackbox"))

from harness import HOST, make_ulid  # noqa: E402
from cluster_fixture import Cluster  # noqa: E402


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def cstats(node):
    st, _h, body = node.request("GET", "/api/v1/stats", timeout=5)
    if st != 200:
        raise RuntimeError("stats -> %d" % st)
    return json.loads(body)["cluster"]


def poll(nodes, pred, timeout, interval=0.05):
    """Poll every node's cluster stats until pred(list) holds; return (ok, last)."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) * 2 + 10):
        try:
            last = [cstats(n) for n in nodes]
            if pred(last):
                return True, last
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            last = repr(e)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return False, last


def one_round(r, n, puts, clients, timings, timeout):
    c = Cluster(n, timings=timings, name="join%d-" % r)
    try:
        seed = None
        launch = []
        for i in range(n):
            node = c.new_node([] if i == 0 else [seed])
            c.nodes.append(node)
            if i == 1:
                t0 = time.monotonic()
            node.start(timeout=30)
            launch.append(time.monotonic())
            if i == 0:
                seed = c.private_addr(0)
        launched = time.monotonic() - t0
        ok, last = poll(c.nodes, lambda ss: all(s["alive"] == n for s in ss), timeout)
        t_join = time.monotonic() - t0
        if not ok:
            log("round %d: join NOT complete after %.0f s; alive per node: %s"
                % (r, timeout, [s["alive"] for s in last] if isinstance(last, list) else last))
            return None
        # PUTs
        body = b"x" * 1024
        oids = [make_ulid() for _ in range(puts)]
        errors = []
        lock = threading.Lock()
        last_ack = [0.0]

        def client(k):
            conns = {}
            for j in range(k, puts, clients):
                i = j % n
                conn = conns.get(i) or http.client.HTTPConnection(HOST, c.nodes[i].public_port, timeout=10)
                conns[i] = conn
                try:
                    conn.request("POST", "/api/v1/put", body=body,
                                 headers={"X-Meta-ID": oids[j], "X-Meta-ConsistencyLevel": "1",
                                          "Content-Length": str(len(body))})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        with lock:
                            errors.append(resp.status)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        errors.append(repr(e))
                    conns.pop(i).close()
                with lock:
                    last_ack[0] = max(last_ack[0], time.monotonic())
            for conn in conns.values():
                conn.close()
        p0 = time.monotonic()
        ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ok, last = poll(c.nodes, lambda ss: len({(s["digest"], s["records"]) for s in ss}) == 1
                        and ss[0]["records"] == puts, timeout, interval=0.02)
        t_conv = time.monotonic()
        if not ok:
            log("round %d: NOT converged after %.0f s; records per node: %s"
                % (r, timeout, [s["records"] for s in last] if isinstance(last, list) else last))
            return None
        res = {"launch_s": launched, "join_s": t_join, "put_s": last_ack[0] - p0,
               "conv_from_first_s": t_conv - p0, "conv_from_last_ack_s": t_conv - last_ack[0],
               "errors": len(errors)}
        log("round %d: %s" % (r, res))
        return res
    finally:
        c.close()


def main():
    n = int(os.environ.get("BENCH_NODES", "10"))
    puts = int(os.environ.get("BENCH_PUTS", "100"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    clients = int(os.environ.get("BENCH_CLIENTS", "4"))
    timeout = float(os.environ.get("BENCH_TIMEOUT", "60"))
    timings = os.environ.get("BENCH_TIMINGS", "").split()
    results = []
    for r in range(rounds):
        res = one_round(r, n, puts, clients, timings, timeout)
        if res is None:
            print("RESULT round=%d failed" % r)
            return 1
        results.append(res)
    print()
    print("timings: %s" % (" ".join(timings) or "defaults (gossip 0.5 s, suspect 3 s, sync 10 s)"))
    print("| round | nodes | launch of nodes 1..%d | join (all see %d alive) | %d PUTs (%d clients) | converged after first PUT | after last ack | PUT errors |"
          % (n - 1, n, puts, clients))
    print("|---|---|---|---|---|---|---|---|")
    for r, res in enumerate(results):
        print("| %d | %d | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %d |"
              % (r, n, res["launch_s"], res["join_s"], res["put_s"], res["conv_from_first_s"],
                 res["conv_from_last_ack_s"], res["errors"]))
    med = lambda k: sorted(x[k] for x in results)[len(results) // 2]  # noqa: E731
    print()
    print("RESULT nodes=%d puts=%d rounds=%d join_median_s=%.3f converge_after_first_put_median_s=%.3f "
          "converge_after_last_ack_median_s=%.3f errors=%d"
          % (n, puts, rounds, med("join_s"), med("conv_from_first_s"), med("conv_from_last_ack_s"),
             sum(x["errors"] for x in results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
