"""Network namespaces for end-to-end tests: nodes with their own IP addresses.

A NetnsCluster makes N namespaces (mt-<hex>-a, -b, ...) plus one for a bridge
(mt-<hex>-br). Each node namespace gets lo and an eth0 (a veth pair whose
other end is a port of the bridge) with 10.213.<random>.<k>/24. Nothing is
created in the host's own namespace: the addresses exist only inside the
namespaces, and deleting the namespaces (teardown, always) removes every link.

The test process talks to a node from inside its namespace: a short-lived
thread enters it with setns(2) and opens the TCP connection there (a socket
keeps the namespace it was created in).

Needs root (CI and this machine run the suite as root).
"""

import contextlib
import ctypes
import http.client
import os
import random
import secrets
import signal
import subprocess
import threading

from conftest import (ISOLATION, MESHTEST_BIN, SLOTS, Node, close_nodes, read_response,
                      wait_converged)

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def run(*cmd, check=True):
    p = subprocess.run(list(cmd), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {p.returncode}: "
                           f"{p.stderr.strip()}")
    return p


def ns_connect(ns, host, port, timeout):
    """A TCP socket connected to host:port from inside namespace ns."""
    out = {}

    def enter_and_connect():
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns {ns}: {os.strerror(e)}")
            finally:
                os.close(fd)
            import socket
            out["sock"] = socket.create_connection((host, port), timeout)
        except OSError as e:
            out["err"] = e

    t = threading.Thread(target=enter_and_connect, daemon=True)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


def ns_http(ns, host, port, method, path, body=None, headers=None,
            timeout=10):
    """(status, parsed JSON or None, raw) of one request made inside ns."""
    sock = ns_connect(ns, host, port, timeout)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return read_response(conn)
    finally:
        conn.close()


class NetnsCluster:
    """n namespaces on one bridge, on a random private /24."""

    def __init__(self, n=3):
        tag = secrets.token_hex(3)
        self.subnet = random.randint(1, 254)
        self.bridge_ns = f"mt-{tag}-br"
        self.names = [f"mt-{tag}-{chr(ord('a') + i)}" for i in range(n)]
        self.ips = [f"10.213.{self.subnet}.{i + 1}" for i in range(n)]
        self.created = []

    def _add_ns(self, name):
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def setup(self):
        self._add_ns(self.bridge_ns)
        br = self.bridge_ns
        run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", br, "link", "set", "br0", "up")
        for i, (ns, ip) in enumerate(zip(self.names, self.ips)):
            self._add_ns(ns)
            run("ip", "-n", br, "link", "add", f"p{i}", "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            run("ip", "-n", br, "link", "set", f"p{i}", "master", "br0")
            run("ip", "-n", br, "link", "set", f"p{i}", "up")
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        return self

    def teardown(self):
        """Delete every namespace made (their veths go with them)."""
        errors = []
        for ns in reversed(self.created):
            p = run("ip", "netns", "del", ns, check=False)
            if p.returncode != 0:
                errors.append(f"{ns}: {p.stderr.strip()}")
        self.created = []
        return errors

    def blackhole(self, src, dst):
        """Drop everything namespace src sends to node dst's address."""
        run("ip", "-n", self.names[src], "route", "add", "blackhole",
            f"{self.ips[dst]}/32")

    def unblackhole(self, src, dst):
        run("ip", "-n", self.names[src], "route", "del", "blackhole",
            f"{self.ips[dst]}/32", check=False)


class NsNode(Node):
    """A meshtest node inside a namespace, listening on ip:port there.

    Beyond loopback a node needs a cluster key and an API token: random ones
    are passed in its environment (never on the command line)."""

    def __init__(self, base_dir, ns, ip, port=7000, extra_args=(),
                 name="nsnode", secrets_env=None, slots=SLOTS):
        super().__init__(base_dir, extra_args, port=port, name=name)
        self.slots = slots
        self.ns = ns
        self.ip = ip
        self.addr = f"{ip}:{port}"
        self.secrets_env = dict(secrets_env or {})

    def cmd(self):
        # `ip netns exec` execs the node: the pid is the node's own
        return ["ip", "netns", "exec", self.ns, MESHTEST_BIN, "serve",
                "--listen", self.addr, "--advertise", self.addr,
                "--data-dir", self.data_dir, "--slots", str(self.slots),
                "--module-timeout", str(self.module_timeout),
                "--log-level", "debug", "--isolation", ISOLATION, *self.extra_args]

    def request(self, method, path, body=None, headers=None, timeout=30):
        return ns_http(self.ns, self.ip, self.port, method, path, body,
                       self.auth(headers), timeout)

    def env_extra(self):
        return self.secrets_env


def cluster_secrets():
    """Fresh random secrets (64 hex characters each) for a test cluster."""
    return {"MESHTEST_CLUSTER_KEY": secrets.token_hex(32),
            "MESHTEST_API_TOKEN": secrets.token_hex(32)}


@contextlib.contextmanager
def ns_cluster(base, prefix, n=3, converge=False, slots=SLOTS):
    """n NsNodes in the n namespaces of a fresh NetnsCluster, listening on
    port 7000, all seeded with the first's address and sharing fresh
    cluster_secrets(), each with `slots` slots; named prefix + a, b, ....
    Yields (cluster, nodes, secrets) once every node is healthy (and, with
    converge, once they see each other); then closes the nodes and deletes
    the namespaces."""
    assert os.geteuid() == 0, "the namespace tests must run as root"
    cl = NetnsCluster(n)
    nodes = []
    sec = cluster_secrets()
    try:
        cl.setup()
        seed = f"{cl.ips[0]}:7000"
        for i, (ns, ip) in enumerate(zip(cl.names, cl.ips)):
            nodes.append(NsNode(base, ns, ip, 7000, ["--seeds", seed],
                                name=f"{prefix}{chr(ord('a') + i)}",
                                secrets_env=sec, slots=slots))
        for node in nodes:
            node.start()
        if converge:
            wait_converged(nodes)
        yield cl, nodes, sec
    finally:
        errors = close_nodes(nodes)
        errors += cl.teardown()
        assert not errors, "\n".join(errors)


class Busy:
    """Keep every core at 100 % with plain Python loops."""

    def __init__(self, n=None):
        self.n = n or os.cpu_count() or 2
        self.procs = []

    def start(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                ["/usr/bin/python3", "-c", "while True: pass"],
                stdin=subprocess.DEVNULL, start_new_session=True))
        return self

    def stop(self):
        for p in self.procs:
            try:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.procs = []
