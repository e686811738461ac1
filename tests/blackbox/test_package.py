"""The Debian packages: `cpack` builds them from the build directory next to
OBJSTORE_BIN; their control data and contents are checked; the client library's
package compiles a program that talks to a node; and, as root, the server
package is installed into this machine with `dpkg -i`, its installed node is
started with the unit's own settings (ExecStart, EnvironmentFile, User, with a
temporary data directory and free ports), a PUT/GET goes through it, and the
package is purged again.

Installing into the machine is deliberate: only a real `dpkg -i` runs the
maintainer scripts (user, data directory, conffile permissions). CI runs as
root on a throwaway machine. The test leaves the machine as it found it: it
refuses to run when an objstore package is already installed, removes the
objstore user if it created it, and holds a lock file so that two test runs on
one machine do not install and purge under each other."""

import contextlib
import fcntl
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import HOST, Node, binary_path, free_ports  # noqa: E402

LOCK_PATH = "/tmp/objstore-package-test.lock"
UNIT = "/lib/systemd/system/objstore.service"


def run(cmd, timeout=120, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s -> %d\n%s%s" % (" ".join(cmd), proc.returncode, proc.stdout,
                                                 proc.stderr))
    return proc


def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg/apt holds the database lock."""
    deadline = time.monotonic() + 120
    while True:
        proc = run(["dpkg"] + list(args), check=False)
        if proc.returncode == 0 or "lock" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(2)


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def package_installed(name):
    proc = run(["dpkg-query", "-W", "-f=${Status}", name], check=False)
    return proc.returncode == 0 and "installed" in proc.stdout and "not-installed" not in proc.stdout


def parse_unit(path):
    """{key: [values]} of a systemd unit file (sections flattened)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def parse_environment_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip().strip('"')
    return env


class PackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.build_dir = os.path.dirname(os.path.abspath(binary_path()))
        config = os.path.join(cls.build_dir, "CPackConfig.cmake")
        if not os.path.exists(config):
            raise unittest.SkipTest("no %s: configure the build first" % config)
        cls.out = tempfile.mkdtemp(prefix="objstore-deb-")
        run(["cpack", "--config", config, "-B", cls.out], timeout=300)
        cls.server_deb = glob.glob(os.path.join(cls.out, "objstore_*.deb"))[0]
        cls.dev_deb = glob.glob(os.path.join(cls.out, "libobjstore-client-dev_*.deb"))[0]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def temp_dir(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    # ------------------------------------------------------------ the .deb files
    def test_server_package_control_and_contents(self):
        field = lambda name: run(["dpkg-deb", "-f", self.server_deb, name]).stdout.strip()
        self.assertEqual(field("Package"), "objstore")
        depends = field("Depends")
        for lib in ("adduser", "libc6", "libcurl4", "libsqlite3-0", "libssl3", "libstdc++6"):
            self.assertIn(lib, depends, "Depends computed by dpkg-shlibdeps")

        files = run(["dpkg-deb", "-c", self.server_deb]).stdout
        for path in ("./usr/bin/objstore", "./usr/bin/objstore-cli", "./usr/bin/objstore-sim",
                     "." + UNIT, "./etc/default/objstore"):
            self.assertIn(path + "\n", files + "\n")
        self.assertRegex(files, r"-rw-r----- root/root +\d+ .* \./etc/default/objstore")

        control = self.temp_dir("objstore-control-")
        run(["dpkg-deb", "-e", self.server_deb, control])
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/default/objstore"])
        for script in ("postinst", "prerm", "postrm"):
            mode = os.stat(os.path.join(control, script)).st_mode
            self.assertTrue(mode & stat.S_IXUSR, script + " is executable")
            run(["sh", "-n", os.path.join(control, script)])

    def test_client_package_builds_a_program_that_talks_to_a_node(self):
        root = self.temp_dir("objstore-dev-")
        run(["dpkg", "-x", self.dev_deb, root])
        include = os.path.join(root, "usr", "include")
        library = glob.glob(os.path.join(root, "usr", "lib", "**", "libobjstore_client.a"),
                            recursive=True)
        self.assertEqual(len(library), 1, "one static library in the package")
        source = os.path.join(root, "hello.cc")
        with open(source, "w") as f:
            f.write(r'''
#include <objstore/client.h>
#include <cstdio>
int main(int argc, char** argv) {
  objstore::client::Client client({argv[1]});
  auto id = client.NewId();
  if (!id.ok()) { std::fprintf(stderr, "%s\n", id.error().ToString().c_str()); return 1; }
  auto put = client.Put(*id, std::string_view("hello from the package"));
  if (!put.ok()) { std::fprintf(stderr, "%s\n", put.error().ToString().c_str()); return 1; }
  std::string body;
  auto got = client.Get(*id, [&](std::string_view b) { body.append(b); return true; });
  if (!got.ok()) { std::fprintf(stderr, "%s\n", got.error().ToString().c_str()); return 1; }
  std::printf("%s %s\n", id->c_str(), body.c_str());
  return 0;
}
''')
        program = os.path.join(root, "hello")
        run(["g++", "-std=c++20", "-I", include, source, library[0], "-pthread", "-o", program],
            timeout=180)
        node = Node(name="package-dev")
        self.addCleanup(node.remove_dirs)
        node.start()
        try:
            out = run([program, "http://%s:%d" % (HOST, node.public_port)], timeout=30).stdout
        finally:
            node.stop()
        self.assertRegex(out, r"^[0-7][0-9A-Z]{25} hello from the package\n$")

    # ------------------------------------------------------------ installed
    def test_install_start_with_the_units_settings_and_purge(self):
        if os.geteuid() != 0:
            self.skipTest("dpkg -i needs root (CI runs as root)")
        with open(LOCK_PATH, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if package_installed("objstore"):
                self.skipTest("an objstore package is already installed on this machine; "
                              "not touching it")
            user_existed = self.user_exists()
            data_existed = os.path.exists("/var/lib/objstore")
            try:
                proc = dpkg("-i", self.server_deb)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                self.check_installed()
                self.run_installed_node()
            finally:
                purge = dpkg("--purge", "objstore")
                if not user_existed and self.user_exists():
                    run(["userdel", "objstore"], check=False)
                    run(["groupdel", "objstore"], check=False)
                if not data_existed:
                    shutil.rmtree("/var/lib/objstore", ignore_errors=True)
            self.assertEqual(purge.returncode, 0, purge.stdout + purge.stderr)
            for path in ("/usr/bin/objstore", "/usr/bin/objstore-cli", UNIT,
                         "/etc/default/objstore"):
                self.assertFalse(os.path.exists(path), path + " left after purge")

    @staticmethod
    def user_exists():
        try:
            pwd.getpwnam("objstore")
            return True
        except KeyError:
            return False

    def check_installed(self):
        for path in ("/usr/bin/objstore", "/usr/bin/objstore-cli"):
            self.assertTrue(os.access(path, os.X_OK), path)
        user = pwd.getpwnam("objstore")
        self.assertLess(user.pw_uid, 1000, "a system user")
        self.assertEqual(user.pw_dir, "/var/lib/objstore")
        self.assertIn(user.pw_shell, ("/usr/sbin/nologin", "/sbin/nologin"))
        data = os.stat("/var/lib/objstore")
        self.assertEqual((data.st_uid, stat.S_IMODE(data.st_mode)), (user.pw_uid, 0o750))
        conf = os.stat("/etc/default/objstore")
        self.assertEqual((conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)),
                         (0, grp.getgrnam("objstore").gr_gid, 0o640))
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "objstore"]).stdout
        self.assertIn("/etc/default/objstore", conffiles)
        if shutil.which("systemd-analyze"):
            verify = run(["systemd-analyze", "verify", UNIT], check=False)
            self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""),
                             "systemd-analyze verify " + UNIT)

    def run_installed_node(self):
        unit = parse_unit(UNIT)
        self.assertEqual(unit["User"], ["objstore"])
        self.assertIn("/var/lib/objstore", unit["ReadWritePaths"][0].split())
        self.assertEqual(unit["NoNewPrivileges"], ["yes"])
        self.assertEqual(unit["Restart"], ["on-failure"])
        env_file = unit["EnvironmentFile"][0].lstrip("-")
        self.assertEqual(env_file, "/etc/default/objstore")
        env = parse_environment_file(env_file)
        # Every data directory the settings name is one the unit may write.
        for key in ("APP_STATE_DIR", "APP_FILES_DIR", "APP_COLD_DIR"):
            self.assertTrue(env[key].startswith("/var/lib/objstore/"), key)

        # The unit's settings, with the data under a temporary directory and free ports.
        data = self.temp_dir("objstore-installed-")
        user = pwd.getpwnam("objstore")
        os.chown(data, user.pw_uid, user.pw_gid)
        for key in ("APP_STATE_DIR", "APP_FILES_DIR", "APP_COLD_DIR"):
            env[key] = env[key].replace("/var/lib/objstore", data, 1)
        public_port, private_port = free_ports(2)
        env["NET_PUBLIC_ADDR"] = "%s:%d" % (HOST, public_port)
        env["NET_PRIVATE_ADDR"] = "%s:%d" % (HOST, private_port)
        exec_start = unit["ExecStart"][0].split()
        self.assertEqual(exec_start[0], "/usr/bin/objstore")
        log_path = os.path.join(data, "node.log")
        with open(log_path, "wb") as log:
            node = subprocess.Popen(
                ["setpriv", "--reuid", unit["User"][0], "--regid", str(user.pw_gid),
                 "--init-groups", "--no-new-privs", "--"] + exec_start,
                env=env, cwd=data, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            cli = ["/usr/bin/objstore-cli", "--node", "http://%s:%d" % (HOST, public_port)]
            deadline = time.monotonic() + 15
            while run(cli + ["ping"], check=False).returncode != 0:
                self.assertIsNone(node.poll(), "the installed node exited:\n" + read_text(log_path))
                self.assertLess(time.monotonic(), deadline, "no ping:\n" + read_text(log_path))
                time.sleep(0.1)
            payload = os.path.join(data, "payload.txt")
            with open(payload, "wb") as f:
                f.write(b"installed and running\n" * 1000)
            oid = run(cli + ["put", payload, "--level", "1"]).stdout.strip()
            got = subprocess.run(cli + ["get", oid], capture_output=True, timeout=30)
            self.assertEqual(got.returncode, 0, got.stderr)
            self.assertEqual(got.stdout, b"installed and running\n" * 1000)
            # The node wrote as the objstore user, inside the data directory only.
            bodies = [os.path.join(dp, f) for dp, _d, fs in os.walk(env["APP_FILES_DIR"])
                      for f in fs]
            self.assertTrue(bodies)
            self.assertTrue(all(os.stat(b).st_uid == user.pw_uid for b in bodies))
        finally:
            with contextlib.suppress(ProcessLookupError):
                node.send_signal(signal.SIGTERM)
            try:
                code = node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.kill()
                code = node.wait(timeout=10)
        self.assertEqual(code, 0, "clean stop on SIGTERM:\n" + read_text(log_path))


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ContainerFilesTest(unittest.TestCase):
    """The Dockerfile and compose file cannot be built here (no Docker engine):
    check what can be checked without one."""

    def documented_variables(self):
        text = read_text(os.path.join(REPO, "packaging", "objstore.default"))
        return set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, re.M))

    def test_dockerfile_stages_user_and_volume(self):
        text = read_text(os.path.join(REPO, "Dockerfile"))
        self.assertEqual(re.findall(r"^FROM (\S+)", text, re.M),
                         ["debian:bookworm", "debian:bookworm-slim"])
        self.assertRegex(text, r"(?m)^USER objstore$")
        self.assertRegex(text, r"(?m)^VOLUME /var/lib/objstore$")
        for name in re.findall(r"\b(APP_[A-Z_]+)=", text):
            self.assertIn(name, self.documented_variables())

    def test_compose_three_nodes_join_one_cluster(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3 yaml module not installed")
        with open(os.path.join(REPO, "deploy", "docker-compose.yml")) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        nodes = sorted(n for n in services if n.startswith("node"))
        self.assertEqual(nodes, ["node1", "node2", "node3"])
        documented = self.documented_variables()
        volumes = set()
        for name in nodes:
            svc = services[name]
            env = svc["environment"]
            self.assertEqual(set(env) - documented, set(), name + ": undocumented variables")
            self.assertEqual(env["APP_CLUSTER_TAGNAME"], "compose")
            self.assertIn("OBJSTORE_CLUSTER_SECRET", env["APP_CLUSTER_SECRET"])
            self.assertTrue(env["S3_ENDPOINT"].startswith("http://minio:"))
            (volume,) = svc["volumes"]
            self.assertTrue(volume.endswith(":/var/lib/objstore"), volume)
            volumes.add(volume)
            if name != "node1":
                private_port = services["node1"]["environment"]["NET_PRIVATE_ADDR"].split(":")[1]
                self.assertEqual(env["APP_CLUSTER_NODES"], "node1:" + private_port)
        self.assertEqual(len(volumes), 3, "a volume per node")
        self.assertEqual(len({services[n]["ports"][0] for n in nodes}), 3)


if __name__ == "__main__":
    unittest.main()
