"""objstore-sim black-box tests: bad arguments, bad traces and a workload larger than
the memory end with one line on stderr and the documented exit status (2 for bad
arguments or a bad trace, 1 for out of memory), never with an abort or a silently
different run.

The simulator is taken from OBJSTORE_SIM, else next to OBJSTORE_BIN."""

import os
import resource
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import binary_path  # noqa: E402

# objstore-sim's exit statuses (its --help).
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def sim_path():
    return os.environ.get("OBJSTORE_SIM") or os.path.join(os.path.dirname(binary_path()),
                                                          "objstore-sim")


class SimTest(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(sim_path()):
            self.fail("objstore-sim not found at %s (build it or set OBJSTORE_SIM)" % sim_path())
        tmp = tempfile.TemporaryDirectory(prefix="objstore-sim-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def sim(self, *args, memory_limit=None):
        """Runs objstore-sim -> (exit status, stdout, stderr); a signal is a negative
        status (-6: aborted)."""
        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        proc = subprocess.run([sim_path()] + list(args), capture_output=True, timeout=120,
                              preexec_fn=limit if memory_limit else None)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def assertRefused(self, args, status, mention, **kw):
        code, out, err = self.sim(*args, **kw)
        self.assertEqual(code, status, "%s: status %d, stdout %r, stderr %r"
                         % (args, code, out[-300:], err[-300:]))
        self.assertEqual(len(err.splitlines()), 1, "%s: %r" % (args, err))
        self.assertIn(mention, err)

    def test_counts_out_of_range_are_refused_naming_the_flag(self):
        """--requests 2^64-1 aborted with std::length_error and --objects 4000000000 with
        std::bad_alloc; --key-col 4294967298 narrowed to column 2 and ran."""
        csv = self.write("t.csv", "ts,key,size\n1,x,100\n2,x,100\n")
        cases = [(["--zipf", "1", "--requests", "18446744073709551615", "--objects", "10"],
                  "--requests"),
                 (["--zipf", "1", "--requests", "1000000001", "--objects", "10"], "--requests"),
                 (["--zipf", "1", "--objects", "4000000000", "--requests", "10"], "--objects"),
                 (["--zipf", "1", "--objects", "0"], "--objects"),
                 (["--zipf", "1", "--objects", "-1"], "--objects"),
                 (["--trace", csv, "--csv", "--key-col", "4294967298"], "--key-col"),
                 (["--trace", csv, "--csv", "--size-col", "0"], "--size-col")]
        for args, flag in cases:
            with self.subTest(args=args):  # memory bounded: an accepted count may be huge
                self.assertRefused(args, EXIT_BAD_INPUT, flag, memory_limit=1 << 30)
        code, out, err = self.sim("--trace", csv, "--csv", "--key-col", "2", "--size-col", "3",
                                  "--capacity", "100", "--no-belady")
        self.assertEqual(code, EXIT_OK, err)
        self.assertIn("requests: 2, objects: 1, distinct bytes: 100 ", out)

    def test_alpha_must_be_a_finite_positive_number(self):
        for alpha in ("nan", "-nan", "inf", "1e400", "0", "-1"):
            with self.subTest(alpha=alpha):
                self.assertRefused(["--zipf", alpha, "--objects", "10", "--requests", "10"],
                                   EXIT_BAD_INPUT, "--zipf: bad alpha")

    def test_trace_whose_sizes_overflow_is_refused_naming_the_line(self):
        """Two objects of 2^64 - 1 bytes were "distinct bytes: 18446744073709551614"."""
        trace = self.write("big.trace", "1 a 18446744073709551615\n2 b 18446744073709551615\n")
        self.assertRefused(["--trace", trace], EXIT_BAD_INPUT,
                           "trace line 2: the sizes of the requests add up to more than")

    def test_workload_larger_than_the_memory_is_one_line_and_status_1(self):
        """Within the bounds of --help, but more than the 1 GiB of address space the
        simulator is given here: std::bad_alloc aborted it."""
        self.assertRefused(["--zipf", "1", "--objects", "100000000", "--requests", "10",
                            "--no-belady"], EXIT_FAILURE, "out of memory",
                           memory_limit=1 << 30)


if __name__ == "__main__":
    unittest.main()
