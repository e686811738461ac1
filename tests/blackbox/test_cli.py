"""objstore-cli black-box tests: every command through a real node, the progress
bar only on a terminal, errors as documented exit codes with the node's message.

The CLI is taken from OBJSTORE_CLI, else next to OBJSTORE_BIN."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ULID_RE, NodeTestCase, binary_path, free_port, make_ulid  # noqa: E402

# objstore-cli's documented exit codes (README, --help).
EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_NO_NODE, EXIT_LOCAL = range(6)

PROGRESS_BYTES = 8 << 20  # past the bar's 4 MiB threshold


def cli_path():
    return os.environ.get("OBJSTORE_CLI") or os.path.join(os.path.dirname(binary_path()),
                                                          "objstore-cli")


class CliTest(NodeTestCase):

    def setUp(self):
        if not os.path.exists(cli_path()):
            self.fail("objstore-cli not found at %s (build it or set OBJSTORE_CLI)" % cli_path())
        self.node = self.start_node()
        self.work = os.path.join(self.node.dir, "cli")
        os.makedirs(self.work)

    def cli(self, *args, stdin=None, env=None, node=True, timeout=60):
        """Runs objstore-cli -> (exit code, stdout bytes, stderr text)."""
        cmd = [cli_path()]
        if node:
            cmd += ["--node", "http://127.0.0.1:%d" % self.node.public_port]
        proc = subprocess.run(cmd + list(args), input=stdin, capture_output=True, timeout=timeout,
                              env=env or dict(os.environ, OBJSTORE_URL=""))
        return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")

    def ok(self, *args, **kw):
        code, out, err = self.cli(*args, **kw)
        self.assertEqual(code, EXIT_OK, "objstore-cli %s: %s" % (" ".join(args), err))
        return out

    def write(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, name):
        with open(os.path.join(self.work, name), "rb") as f:
            return f.read()

    # ------------------------------------------------------------ round trips
    def test_put_get_meta_delete(self):
        body = os.urandom(300_000)
        src = self.write("photo.jpg", body)
        oid = self.ok("put", src, "--level", "1", "--meta", "owner=ops", "--meta", "k=a=b")
        oid = oid.decode().strip()
        self.assertRegex(oid, ULID_RE)

        self.assertEqual(self.ok("get", oid), body)
        out = os.path.join(self.work, "copy.jpg")
        self.assertEqual(self.ok("get", oid, "-o", out), b"")
        self.assertEqual(self.read("copy.jpg"), body)
        self.assertEqual(self.ok("get", oid, "--range", "100-199"), body[100:200])
        self.assertEqual(self.ok("get", oid, "--range", "299990-"), body[299990:])
        self.assertEqual(self.ok("get", oid, "--range", "-7"), body[-7:])

        meta = json.loads(self.ok("meta", oid))
        self.assertEqual(meta["id"], oid)
        self.assertEqual(meta["name"], "photo.jpg")
        self.assertEqual(meta["content_type"], "image/jpeg")
        self.assertEqual(meta["size"], len(body))
        self.assertEqual(meta["consistency"], 1)
        self.assertEqual(meta["user_meta"], {"owner": "ops", "k": "a=b"})

        self.assertEqual(self.ok("delete", oid), b"")
        code, out, err = self.cli("get", oid)
        self.assertEqual(code, EXIT_NOT_FOUND, err)
        self.assertEqual(out, b"")
        self.assertIn("deleted", err)
        self.assertTrue(json.loads(self.ok("meta", oid))["deleted"])

    def test_put_from_stdin_named_and_with_a_chosen_id(self):
        oid = make_ulid()
        body = os.urandom(123_457)
        out = self.ok("put", "-", "--name", "data.json", "--id", oid, "--level", "0", stdin=body)
        self.assertEqual(out.decode().strip(), oid)
        self.assertEqual(self.ok("get", oid), body)
        meta = json.loads(self.ok("meta", oid))
        self.assertEqual(meta["name"], "data.json")
        self.assertEqual(meta["size"], len(body))

    def test_put_from_a_pipe_named_on_the_command_line(self):
        # `objstore-cli put <(cmd)`: a named pipe has no size; its bytes go chunked
        fifo = os.path.join(self.work, "pipe")
        os.mkfifo(fifo)
        body = os.urandom(300_001)

        def feed():
            with open(fifo, "wb") as f:
                f.write(body)
        writer = threading.Thread(target=feed)
        writer.start()
        try:
            oid = self.ok("put", fifo).decode().strip()
        finally:
            writer.join(30)
        self.assertEqual(self.ok("get", oid), body)
        self.assertEqual(json.loads(self.ok("meta", oid))["name"], "pipe")

    def test_id_ping_stats_level(self):
        ids = {self.ok("id").decode().strip() for _ in range(3)}
        self.assertEqual(len(ids), 3)
        for oid in ids:
            self.assertRegex(oid, ULID_RE)
        self.assertEqual(self.ok("ping").decode().strip(), self.node.ping())
        oid = self.ok("put", self.write("a.txt", b"abc")).decode().strip()
        stats = json.loads(self.ok("stats"))
        self.assertIn("disk_stats", stats)
        self.assertGreaterEqual(stats["objects"], 1)
        self.assertEqual(json.loads(self.ok("level", oid, "2"))["consistency"], 2)
        code, _out, err = self.cli("level", oid, "1")
        self.assertEqual(code, EXIT_REFUSED)
        self.assertIn("level_lowered", err)

    def test_fetch_restores_from_the_cold_store(self):
        body = os.urandom(50_000)
        oid = self.ok("put", self.write("notes.txt", body), "--level", "1").decode().strip()
        # Same cold store, empty state and files: the node no longer knows the id.
        self.node.stop()
        for d in (self.node.state_dir, self.node.files_dir):
            shutil.rmtree(d)
            os.makedirs(d)
        self.node.start()
        code, _out, err = self.cli("get", oid)
        self.assertEqual(code, EXIT_NOT_FOUND, err)
        self.assertIn("not_found", err)
        self.assertEqual(self.ok("get", oid, "--fetch"), body)
        self.assertEqual(json.loads(self.ok("meta", oid))["name"], "notes.txt")

    def test_node_from_the_environment(self):
        env = dict(os.environ, OBJSTORE_URL="http://127.0.0.1:%d" % self.node.public_port)
        code, out, err = self.cli("ping", env=env, node=False)
        self.assertEqual(code, EXIT_OK, err)
        self.assertEqual(out.decode().strip(), self.node.ping())

    def test_large_transfers_stream_in_constant_memory(self):
        size = 192 << 20
        src = os.path.join(self.work, "large.bin")
        with open(src, "wb") as f:  # sparse: reads as zeros, costs no disk here
            f.truncate(size)
        oid = self.ok("id").decode().strip()
        out = os.path.join(self.work, "large.out")
        for args in (["put", src, "--id", oid], ["get", oid, "-o", out]):
            rss_kib = self.peak_rss_kib(args)
            self.assertLess(rss_kib, 32 * 1024, "%s: peak RSS %d KiB for %d MiB"
                            % (args[0], rss_kib, size >> 20))
        self.assertEqual(os.path.getsize(out), size)

    def peak_rss_kib(self, args):
        """Runs the CLI as the only child of a fresh Python; returns its peak RSS."""
        probe = ("import resource, subprocess, sys\n"
                 "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
                 "assert code == 0, code\n"
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        cmd = [sys.executable, "-c", probe, cli_path(),
               "--node", "http://127.0.0.1:%d" % self.node.public_port] + args
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return int(proc.stdout.strip())

    # ------------------------------------------------------------ errors
    def test_errors_exit_codes_and_messages(self):
        code, _o, err = self.cli("get", "notaulid")
        self.assertEqual(code, EXIT_REFUSED)
        self.assertIn("bad_id", err)
        self.assertIn("ULID", err, "the node's own message is printed")
        # an id that would change the request is refused before anything is sent
        for bad in ("not-a-ulid", "a b", "x\r\nHost: y"):
            code, _o, err = self.cli("meta", bad)
            self.assertEqual(code, EXIT_USAGE, "%r: %s" % (bad, err))
            self.assertIn("bad id", err)

        code, _o, err = self.cli("meta", make_ulid())
        self.assertEqual(code, EXIT_NOT_FOUND)
        self.assertIn("not_found", err)

        code, _o, err = self.cli("put", self.write("x", b"x"), "--level", "5")
        self.assertEqual(code, EXIT_REFUSED)
        self.assertIn("bad_level", err)

        self.assertEqual(self.ok("--version").decode().count("."), 2)
        for args in (["get", make_ulid(), "--range", "9-1"], ["put", "x", "--meta", "novalue"],
                     [], ["frobnicate"], ["get"], ["put", "x", "--level", "high"]):
            code, _o, err = self.cli(*args)
            self.assertEqual(code, EXIT_USAGE, "%s: %s" % (args, err))
            self.assertTrue(err.strip(), "%s: no message" % args)
        # a timeout that is not a finite number (NaN passed the positive-number check)
        for flag, value in (("--timeout", "nan"), ("--connect-timeout", "nan"),
                            ("--timeout", "inf"), ("--connect-timeout", "1e400")):
            code, _o, err = self.cli(flag, value, "ping")
            self.assertEqual(code, EXIT_USAGE, "%s %s: %s" % (flag, value, err))
            self.assertIn(flag + ": expected a finite number", err)

        code, _o, err = self.cli("put", os.path.join(self.work, "missing.bin"))
        self.assertEqual(code, EXIT_LOCAL)
        self.assertIn("missing.bin", err)
        # the input is checked before the node is asked for an id
        code, _o, err = self.cli("--node", "http://127.0.0.1:%d" % free_port(), "put",
                                 os.path.join(self.work, "missing.bin"), node=False)
        self.assertEqual(code, EXIT_LOCAL, err)

        oid = self.ok("put", self.write("y", b"yyy")).decode().strip()
        code, _o, err = self.cli("get", oid, "-o", os.path.join(self.work, "no", "such", "dir"))
        self.assertEqual(code, EXIT_LOCAL, err)

        code, _o, err = self.cli("--node", "http://127.0.0.1:%d" % free_port(), "id", node=False)
        self.assertEqual(code, EXIT_NO_NODE)
        self.assertIn("connect", err)
        self.node.stop()
        code, _o, err = self.cli("get", oid)
        self.assertEqual(code, EXIT_NO_NODE, err)

    # ------------------------------------------------------------ progress
    def run_with_stderr(self, args, terminal):
        """Runs the CLI with stderr on a pseudo-terminal (terminal=True) or a pipe;
        returns (exit code, everything written to stderr)."""
        cmd = [cli_path(), "--node", "http://127.0.0.1:%d" % self.node.public_port] + args
        if not terminal:
            proc = subprocess.run(cmd, capture_output=True, timeout=60)
            return proc.returncode, proc.stderr.decode("utf-8", "replace")
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave,
                                    stdin=subprocess.DEVNULL)
            os.close(slave)
            slave = None
            chunks = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ready, _w, _x = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the child closed its end
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break
            code = proc.wait(timeout=10)
            return code, b"".join(chunks).decode("utf-8", "replace")
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)

    def test_progress_bar_only_on_a_terminal(self):
        src = self.write("big.bin", os.urandom(PROGRESS_BYTES))
        code, bar = self.run_with_stderr(["put", src], terminal=True)
        self.assertEqual(code, EXIT_OK, bar)
        self.assertIn("100%", bar)
        self.assertIn("8.0 MiB / 8.0 MiB", bar)
        self.assertRegex(bar, r"MiB/s +ETA \d+:\d\d")
        oid = self.ok("id").decode().strip()
        self.ok("put", src, "--id", oid)

        out = os.path.join(self.work, "out.bin")
        code, bar = self.run_with_stderr(["get", oid, "-o", out], terminal=True)
        self.assertEqual(code, EXIT_OK, bar)
        self.assertIn("100%", bar)

        for args in (["put", src], ["get", oid, "-o", out]):
            code, err = self.run_with_stderr(args, terminal=False)
            self.assertEqual(code, EXIT_OK, err)
            self.assertEqual(err, "", "no progress output when stderr is not a terminal")

        small = self.write("small.txt", b"tiny")
        code, err = self.run_with_stderr(["put", small], terminal=True)
        self.assertEqual(code, EXIT_OK, err)
        self.assertNotIn("%", err, "no bar for a small transfer")


if __name__ == "__main__":
    unittest.main()
