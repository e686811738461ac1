"""A real network for partition tests: every node in its own network namespace.

NetLab(n) builds, as root, with iproute2:

    root namespace (the test)          namespace i (node i)
    veth r<i>  10.B.2.4i+1/30  <---->  veth h<i> 10.B.2.4i+2/30   public API
                                       lo: 10.B.1.i+1/32                private API
    namespace i  veth m<i><j>  <---->  veth m<j><i>  namespace j     one per pair

The test reaches node i's public API on its root link (10.B.2.4i+2). Node i
reaches node j's private address only through the pair link m<i><j> (a /32
route per peer): namespaces have no default route, and the root namespace
neither forwards (net.ipv4.ip_forward is 0 there; checked) nor knows the
private addresses. So cut(a, b) -- setting the pair links between the groups
down -- really partitions the private network while the test still talks to
every node; heal() sets them up and puts the routes back (a link going down
drops its routes).

Names carry a random tag and B is a free second octet, so two runs at once do
not collide; close() deletes the namespaces, which deletes every veth with them.
Skip reasons (not root, no `ip`, forwarding on) come from NetLab.unavailable().
"""

import os
import random
import shutil
import subprocess


def _run(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("%s -> %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r.stdout


class NetLab:
    def __init__(self, n):
        self.n = n
        self.tag = "%04x" % random.randrange(1 << 16)
        used = _run("ip", "-4", "-o", "addr", "show")
        octets = [b for b in range(64, 250) if (" 10.%d." % b) not in used]
        self.b = random.choice(octets)
        self.ns = ["os%sn%d" % (self.tag, i) for i in range(n)]
        self.created = []

    @staticmethod
    def unavailable():
        """Why this machine cannot run a NetLab, or None."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "iproute2 (`ip`) is not installed"
        try:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                if f.read().strip() != "0":
                    return "the root namespace forwards IPv4: a cut link could be bypassed"
        except OSError as e:
            return "cannot read ip_forward: %r" % e
        return None

    def private(self, i):
        return "10.%d.1.%d" % (self.b, i + 1)

    def public(self, i):
        return "10.%d.2.%d" % (self.b, 4 * i + 2)

    def _mesh(self, i, j):
        return "os%sm%d%d" % (self.tag, i, j)

    def start(self):
        for i, ns in enumerate(self.ns):
            _run("ip", "netns", "add", ns)
            self.created.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", self.private(i) + "/32", "dev", "lo")
            root_if, ns_if = "os%sr%d" % (self.tag, i), "os%sh%d" % (self.tag, i)
            _run("ip", "link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
            _run("ip", "addr", "add", "10.%d.2.%d/30" % (self.b, 4 * i + 1), "dev", root_if)
            _run("ip", "link", "set", root_if, "up")
            _run("ip", "-n", ns, "addr", "add", self.public(i) + "/30", "dev", ns_if)
            _run("ip", "-n", ns, "link", "set", ns_if, "up")
        for i in range(self.n):
            for j in range(i + 1, self.n):
                _run("ip", "-n", self.ns[i], "link", "add", self._mesh(i, j), "type", "veth",
                     "peer", "name", self._mesh(j, i), "netns", self.ns[j])
        self.heal()
        return self

    def _link(self, i, j, up):
        _run("ip", "-n", self.ns[i], "link", "set", self._mesh(i, j), "up" if up else "down")

    def cut(self, group_a, group_b):
        for i in group_a:
            for j in group_b:
                self._link(i, j, False)
                self._link(j, i, False)

    def heal(self):
        for i in range(self.n):
            for j in range(self.n):
                if i != j:
                    self._link(i, j, True)
        for i in range(self.n):
            for j in range(self.n):
                if i != j:
                    _run("ip", "-n", self.ns[i], "route", "replace", self.private(j) + "/32",
                         "dev", self._mesh(i, j), "src", self.private(i))

    def node_setup(self, i, node):
        """cluster_fixture.Cluster's node_setup hook: run node i in namespace i."""
        node.command_prefix = ["ip", "netns", "exec", self.ns[i]]
        node.public_host = self.public(i)
        node.private_host = self.private(i)

    def close(self):
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.created = []
