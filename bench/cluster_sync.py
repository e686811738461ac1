#!/usr/bin/env python3
"""Journal anti-entropy between two nodes whose journals differ in 1% (issue 4 §7).

Writes two state/journal.db files directly (docs/FORMATS.md schema): RECORDS records
in each, of which RECORDS*(1-DIFF) are identical in both; the rest differ:
  mode "missing"  : half of the difference only in A, half only in B (new keys)
  mode "versions" : the same keys in both with different versions (half newer in A,
                    half newer in B)
  mode "mixed"    : half of each
Records are level 1, no local body, cold-stored (cold_state 2), so nothing but
journal records has to travel. Then starts A, then B with -N A and
--sync-interval 1, and measures until both stats.cluster.digest are equal (and the
record counts match), and the bytes both sent (stats.cluster.sync.bytes_*)
against the size of a full export: the JSON of all records (the converged
journal, 1,000,000 by default) in the `R` format of docs/CLUSTER.md
({"records": [R...]}).

Environment (set by bench/cluster_sync.sh): OBJSTORE_BIN, OBJSTORE_TEST_TMP,
OBJSTORE_KEEP_TMP, BENCH_RECORDS, BENCH_DIFF, BENCH_MODE, BENCH_TIMEOUT, BENCH_NODE_ARGS.
"""

import base64
import json
import os
import random
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "blackbox"))

from harness import Node  # noqa: E402

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

SCHEMA = """
CREATE TABLE objects (
  key          TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  size         INTEGER NOT NULL,
  etag         TEXT NOT NULL,
  timestamp_ns INTEGER NOT NULL,
  version      INTEGER NOT NULL,
  version_node TEXT NOT NULL,
  consistency  INTEGER NOT NULL,
  user_meta    TEXT NOT NULL,
  deleted      INTEGER NOT NULL,
  local_body   INTEGER NOT NULL,
  cold_state   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


B32_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD)


_HEADS = {}


def ulid(rnd, ts_ms):
    """A ULID: 10 characters of millisecond time, 16 random ones."""
    head = _HEADS.get(ts_ms)
    if head is None:
        ts = ts_ms & ((1 << 48) - 1)
        out = []
        for _ in range(10):
            out.append(CROCKFORD[ts & 31])
            ts >>= 5
        head = _HEADS[ts_ms] = "".join(reversed(out))
    return head + base64.b32encode(rnd.randbytes(10)).decode().translate(B32_TO_CROCKFORD)


def make_records(rnd, n, base_ms, node_ids):
    """n record tuples in key order (rows of `objects`)."""
    keys = sorted({ulid(rnd, base_ms - 1000 * int(rnd.random() * 86400)) for _ in range(n + n // 100 + 10)})
    keys = keys[:n]
    rows = []
    for k, key in enumerate(keys):
        ms = base_ms - int(rnd.random() * 86400000)
        rows.append(record(rnd, key, ms, node_ids[k % len(node_ids)]))
    return rows


def record(rnd, key, ms, node):
    size = 1 + int(rnd.random() * (1 << 20))
    return (key, "obj-%s.bin" % key[-8:], size, '"%s"' % rnd.randbytes(16).hex(),
            ms * 1000000, (ms << 16) | (k_counter(key)), node, 1, "{}", 0, 0, 2)


def k_counter(key):
    return ord(key[-1]) & 3


def write_journal(path, node_id, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO settings VALUES (?, ?)",
                   [("schema_version", "1"), ("node_id", node_id)])
    db.executemany("INSERT INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def r_len(row):
    """len(r_json(row)) for the generated rows (plain ASCII, etag quotes escaped), fast."""
    key, name, size, etag, ts, v, vn, level, um, deleted, _local, cold = row
    return len('{"key":"%s","name":"%s","size":%d,"etag":"\\"%s\\"","ts":%d,"v":%d,"vn":"%s",'
               '"level":%d,"um":{},"del":false,"cold":"stored"}'
               % (key, name, size, etag[1:-1], ts, v, vn, level))


def r_json(row):
    key, name, size, etag, ts, v, vn, level, um, deleted, _local, cold = row
    return json.dumps({"key": key, "name": name, "size": size, "etag": etag, "ts": ts, "v": v,
                       "vn": vn, "level": level, "um": json.loads(um), "del": bool(deleted),
                       "cold": "stored" if cold == 2 else ("pending" if cold == 1 else "none")},
                      separators=(",", ":"))


def stats(node):
    st, _h, body = node.request("GET", "/api/v1/stats", timeout=10)
    if st != 200:
        raise RuntimeError("stats -> %d" % st)
    return json.loads(body)["cluster"]


def main():
    n = int(os.environ.get("BENCH_RECORDS", "1000000"))
    diff = float(os.environ.get("BENCH_DIFF", "0.01"))
    mode = os.environ.get("BENCH_MODE", "missing")
    timeout = float(os.environ.get("BENCH_TIMEOUT", "120"))
    rnd = random.Random(20261125)
    base_ms = int(time.time() * 1000) - 3600 * 1000
    id_a, id_b = ulid(rnd, base_ms), ulid(rnd, base_ms + 1)
    ndiff = int(round(n * diff))
    common = n - ndiff
    t = time.monotonic()
    rows = make_records(rnd, n, base_ms, [id_a, id_b])
    rnd.shuffle(rows)
    if mode == "missing":
        shared, only_a, only_b = rows[:common], rows[common:common + ndiff // 2], rows[common + ndiff // 2:]
        a_rows, b_rows = shared + only_a, shared + only_b
    elif mode == "versions":
        a_rows, b_rows = list(rows), list(rows)
        for k in range(common, n):
            r = rows[k]
            newer = r[:5] + (r[5] + (1 << 16),) + r[6:]
            if k % 2:
                a_rows[k] = newer[:6] + (id_a,) + newer[7:]
            else:
                b_rows[k] = newer[:6] + (id_b,) + newer[7:]
    elif mode == "mixed":
        h = ndiff // 2
        shared = rows[:common]
        changed = rows[common:common + h]
        only_a = rows[common + h:common + h + h // 2]
        only_b = rows[common + h + h // 2:common + h + 2 * (h // 2)]
        a_rows, b_rows = shared + only_a, shared + only_b
        for k, r in enumerate(changed):
            newer = r[:5] + (r[5] + (1 << 16),) + (id_a if k % 2 else id_b,) + r[7:]
            a_rows.append(newer if k % 2 else r)
            b_rows.append(r if k % 2 else newer)
    else:
        raise SystemExit("unknown BENCH_MODE %s" % mode)
    a_rows.sort()
    b_rows.sort()
    log("generated %d + %d records (mode %s, %d differ) in %.1f s"
        % (len(a_rows), len(b_rows), mode, ndiff, time.monotonic() - t))

    a = Node(name="sync-a")
    b = Node(name="sync-b")
    b.cold_dir = a.cold_dir
    try:
        t = time.monotonic()
        write_journal(os.path.join(a.state_dir, "journal.db"), id_a, a_rows)
        write_journal(os.path.join(b.state_dir, "journal.db"), id_b, b_rows)
        log("journals written in %.1f s (%.0f MB each)"
            % (time.monotonic() - t, os.path.getsize(os.path.join(a.state_dir, "journal.db")) / 1e6))
        t = time.monotonic()
        union = {r[0]: r for r in a_rows}
        for r in b_rows:
            if r[0] not in union or (r[5], r[6]) > (union[r[0]][5], union[r[0]][6]):
                union[r[0]] = r
        export_bytes = len('{"records":[]}') + sum(map(r_len, union.values())) + len(union) - 1
        log("full export (R format, all %d records after convergence) = %d bytes, computed in %.1f s"
            % (len(union), export_bytes, time.monotonic() - t))
        del union

        timings = ["--sync-interval", "1"] + os.environ.get("BENCH_NODE_ARGS", "").split()
        log("node flags: %s" % " ".join(timings))
        a.extra_args = timings
        t = time.monotonic()
        a.start(timeout=120)
        start_a = time.monotonic() - t
        b.extra_args = timings + ["-N", "127.0.0.1:%d" % a.private_port]
        t0 = time.monotonic()
        b.start(timeout=120)
        start_b = time.monotonic() - t0
        sa, sb = stats(a), stats(b)
        log("A ready in %.2f s (%d records), B ready in %.2f s (%d records); digests %s / %s"
            % (start_a, sa["records"], start_b, sb["records"], sa["digest"][:16], sb["digest"][:16]))
        deadline = time.monotonic() + timeout
        converged = None
        polls = 0
        while time.monotonic() < deadline and polls < timeout * 20 + 10:
            polls += 1
            sa, sb = stats(a), stats(b)
            if sa["digest"] == sb["digest"] and sa["records"] == sb["records"]:
                converged = time.monotonic()
                break
            time.sleep(0.05)
        if converged is None:
            log("NOT converged within %.0f s: A %s %d, B %s %d" % (timeout, sa["digest"], sa["records"],
                                                                   sb["digest"], sb["records"]))
        time.sleep(1.5)   # let the last answers be counted; nothing more should move
        sa, sb = stats(a), stats(b)
        # sync.bytes_* are counted by the node that started an anti-entropy round (its
        # requests and the answers); the sum over both nodes is the sync traffic.
        sent = sa["sync"]["bytes_sent"] + sb["sync"]["bytes_sent"]
        recv = sa["sync"]["bytes_received"] + sb["sync"]["bytes_received"]
        total = sent + recv
        priv = sum(s.get("private_calls", {}).get(k, 0) for s in (sa, sb)
                   for k in ("bytes_sent", "bytes_received"))
        ratio = 100.0 * total / export_bytes
        print()
        print("| records per node (A / B) | differ | mode | converged after B's launch | after B ready "
              "| sync bytes (requests + answers) | all private traffic | full export | sync / export |")
        print("|---|---|---|---|---|---|---|---|---|")
        conv = ("%.2f s" % (converged - t0)) if converged else "not in %.0f s" % timeout
        conv_ready = ("%.2f s" % (converged - t0 - start_b)) if converged else "-"
        print("| %d / %d | %d (%.1f%%) | %s | %s | %s | %d + %d = %d | %d | %d | %.2f%% |"
              % (len(a_rows), len(b_rows), ndiff, 100.0 * diff, mode, conv, conv_ready,
                 sent, recv, total, priv, export_bytes, ratio))
        print()
        print("node A start %.2f s, node B start %.2f s (journal load); final records A %d B %d; "
              "sync rounds A %d B %d; records sent A %d B %d, received A %d B %d"
              % (start_a, start_b, sa["records"], sb["records"], sa["sync"]["rounds"], sb["sync"]["rounds"],
                 sa["sync"]["records_sent"], sb["sync"]["records_sent"],
                 sa["sync"]["records_received"], sb["sync"]["records_received"]))
        # the < 5 s target is judged from B ready (both journals loaded) to equal digests
        print("RESULT records=%d differ=%d mode=%s converged=%s seconds=%s sync_bytes=%d "
              "private_bytes=%d export_bytes=%d ratio_pct=%.3f targets_met=%s"
              % (n, ndiff, mode, converged is not None,
                 "%.3f" % (converged - t0 - start_b) if converged else "-", total, priv, export_bytes, ratio,
                 bool(converged and converged - t0 - start_b < 5 and total < 0.05 * export_bytes)))
        return 0 if converged else 1
    finally:
        for node in (a, b):
            code = node.stop()
            if code not in (0, None, -15):
                log("node %s exited with %s; log %s" % (node.dir, code, node.log_path))
        if os.environ.get("OBJSTORE_KEEP_TMP"):
            log("kept %s and %s" % (a.dir, b.dir))
        else:
            a.remove_dirs()
            b.remove_dirs()


if __name__ == "__main__":
    sys.exit(main())
