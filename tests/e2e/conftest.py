"""Fixtures for the meshtest end-to-end suite.

Starts real `meshtest serve` processes on loopback with data directories
inside pytest's tmp_path, and talks to them over HTTP with urllib/http.client
only (no third-party packages).
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
pytest.register_assert_rewrite("expect")

MESHTEST_BIN = os.environ.get("MESHTEST_BIN",
                              os.path.join(REPO, "build", "meshtest"))
ASAN = os.environ.get("MESHTEST_ASAN") == "1"
# make e2e-module: the same tests with every evaluation's modules each alone
ISOLATION = os.environ.get("MESHTEST_E2E_ISOLATION", "project")
SLOTS = 2
ASAN_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                 "runtime error:")

# Nodes alive right now; their logs are attached to the report of a failing
# test.
_LIVE_NODES = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "asan: subset also run against the ASan/UBSan build")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for n in list(_LIVE_NODES):
            rep.sections.append((f"meshtest log {n.addr} ({n.log_path})",
                                 n.log_tail(200)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

def encode_multipart(fields=None, files=None):
    """fields: {name: str}; files: {name: (filename, bytes, content_type)}.
    Returns (body, content_type)."""
    boundary = "----meshtest" + uuid.uuid4().hex
    out = []
    for name, value in (fields or {}).items():
        out.append(f"--{boundary}\r\n".encode())
        out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                   .encode())
        out.append(str(value).encode() + b"\r\n")
    for name, (filename, data, ctype) in (files or {}).items():
        out.append(f"--{boundary}\r\n".encode())
        out.append((f'Content-Disposition: form-data; name="{name}"; '
                    f'filename="{filename}"\r\n').encode())
        out.append(f"Content-Type: {ctype}\r\n\r\n".encode())
        out.append(data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def http_request(port, method, path, body=None, headers=None, timeout=30):
    """Raw request on 127.0.0.1:port. Returns (status, parsed json or None,
    raw bytes). A server that answers before reading the whole body (413)
    is tolerated."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        try:
            conn.putrequest(method, path)
            if body is not None:
                hdrs.setdefault("Content-Length", str(len(body)))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body:
                view = memoryview(body)
                for i in range(0, len(body), 65536):
                    conn.send(view[i:i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(conn)
    finally:
        conn.close()


def read_response(conn):
    """(status, parsed JSON or None, raw bytes) of conn's response."""
    resp = conn.getresponse()
    raw = resp.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return resp.status, parsed, raw


class Node:
    """One `meshtest serve` process."""

    def __init__(self, base_dir, extra_args=(), port=None, name="node",
                 module_timeout=30):
        self.module_timeout = module_timeout
        self.base_dir = str(base_dir)
        self.port = port or free_port()
        self.port_chosen_here = port is None
        self.addr = f"127.0.0.1:{self.port}"
        self.data_dir = os.path.join(self.base_dir, f"{name}-data")
        self.log_path = os.path.join(self.base_dir, f"{name}.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0

    # ---- lifecycle ------------------------------------------------------
    def cmd(self):
        return [MESHTEST_BIN, "serve", "--listen", self.addr,
                "--data-dir", self.data_dir, "--slots", str(SLOTS),
                "--module-timeout", str(self.module_timeout), "--log-level", "debug",
                "--isolation", ISOLATION, *self.extra_args]

    def _make_reachable(self):
        """The node's slot users must traverse to the data dir (the node
        refuses to start otherwise); pytest's tmp folders are 0700, so add
        o+x (search only, no listing) from the base dir up to /tmp."""
        top = os.path.realpath(tempfile.gettempdir())
        d = os.path.realpath(self.base_dir)
        while d.startswith(top + "/"):
            mode = os.stat(d).st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
            d = os.path.dirname(d)

    def env_extra(self):
        """Variables added to the node's environment (none here)."""
        return {}

    def start(self, ready_timeout=10.0):
        assert self.proc is None, "node already running"
        os.makedirs(self.base_dir, exist_ok=True)
        self._make_reachable()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"==== start #{self.starts}: {' '.join(self.cmd())}\n"
                  .encode())
        log.flush()
        env = dict(os.environ)
        env.update(self.env_extra())
        if ASAN:
            env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, env=env,
                                     start_new_session=True)
        log.close()
        if self not in _LIVE_NODES:
            _LIVE_NODES.append(self)
        deadline = time.monotonic() + ready_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # free_port() races with the other test workers: another
                # process may have taken the port between its check and
                # our bind; a port picked here can be picked again
                if (self.port_chosen_here and self.starts < 4 and
                        f"cannot listen on {self.addr}" in self.log_tail(20)):
                    self.proc = None
                    self.port = free_port()
                    self.addr = f"127.0.0.1:{self.port}"
                    return self.start(ready_timeout)
                raise AssertionError(
                    f"meshtest exited with {self.proc.returncode} during "
                    f"startup:\n{self.log_tail(80)}")
            try:
                st, _, _ = self.request("GET", "/health", timeout=2)
                if st == 200:
                    return self
                last = f"status {st}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError(f"node {self.addr} not healthy after "
                             f"{ready_timeout}s ({last}):\n"
                             f"{self.log_tail(80)}")

    def stop(self, timeout=10.0):
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                self._kill_group(p)
                raise AssertionError(
                    f"node {self.addr} ignored SIGTERM for {timeout}s:\n"
                    f"{self.log_tail(60)}")
        self._kill_group(p)
        self.check_asan()
        return p.returncode

    def kill9(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def restart(self, ready_timeout=10.0):
        self.stop()
        return self.start(ready_timeout)

    @staticmethod
    def _kill_group(p):
        # the node's own session; leftovers of a stopped node (none
        # expected) must not outlive the test
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self):
        try:
            self.stop()
        finally:
            if self in _LIVE_NODES:
                _LIVE_NODES.remove(self)

    # ---- logs -----------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=100):
        return "\n".join(self.log_text().splitlines()[-n:])

    def check_asan(self):
        if not ASAN:
            return
        bad = [ln for ln in self.log_text().splitlines()
               if any(pat in ln for pat in ASAN_PATTERNS)]
        assert not bad, (f"sanitizer reports in {self.log_path}:\n"
                         + "\n".join(bad[:20]) + "\n" + self.log_tail(150))

    # ---- HTTP -----------------------------------------------------------
    def api_token(self):
        """The API token the node was started with (its environment), if any."""
        env = dict(os.environ)
        env.update(self.env_extra())
        return env.get("MESHTEST_API_TOKEN") or None

    def auth(self, headers):
        """headers plus the node's API token, as a client that holds it
        sends; a test that sets Authorization itself (or None: no token)
        keeps its own."""
        hdrs = dict(headers or {})
        if "Authorization" not in hdrs and self.api_token():
            hdrs["Authorization"] = "Bearer " + self.api_token()
        return {k: v for k, v in hdrs.items() if v is not None}

    def request(self, method, path, body=None, headers=None, timeout=30):
        return http_request(self.port, method, path, body, self.auth(headers), timeout)

    def get(self, path, timeout=30):
        st, js, _ = self.request("GET", path, timeout=timeout)
        return st, js

    def post_json(self, path, obj, timeout=60):
        body = json.dumps(obj).encode()
        st, js, _ = self.request("POST", path, body,
                                 {"Content-Type": "application/json"},
                                 timeout)
        return st, js

    def post(self, path, obj, timeout=60):
        return self.post_json(path, obj, timeout)

    def post_zip(self, zip_path_or_bytes, fields=None, filename=None,
                 timeout=60):
        if isinstance(zip_path_or_bytes, (bytes, bytearray)):
            data = bytes(zip_path_or_bytes)
            filename = filename or "projects.zip"
        else:
            with open(zip_path_or_bytes, "rb") as f:
                data = f.read()
            filename = filename or os.path.basename(zip_path_or_bytes)
        body, ctype = encode_multipart(
            fields, {"file": (filename, data, "application/zip")})
        st, js, _ = self.request("POST", "/evaluation", body,
                                 {"Content-Type": ctype}, timeout)
        return st, js

    def submit_zip(self, zip_path, module_timeout=None, isolation=None):
        """POST the ZIP, assert 201 and return the id."""
        fields = {}
        if module_timeout is not None:
            fields["module_timeout"] = str(module_timeout)
        if isolation is not None:
            fields["isolation"] = isolation
        st, js = self.post_zip(zip_path, fields)
        assert st == 201, f"POST /evaluation -> {st} {js}"
        assert isinstance(js, dict) and isinstance(js.get("id"), str), js
        uuid.UUID(js["id"])
        return js["id"]


def wait_done(node, eval_id, timeout=120.0, interval=0.25):
    """Poll GET /evaluation/<id> until status != running; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            st, js = node.get(f"/evaluation/{eval_id}", timeout=10)
        except OSError as e:
            last = repr(e)
            time.sleep(interval)
            continue
        assert st == 200, f"GET /evaluation/{eval_id} -> {st} {js}"
        last = js
        if js.get("status") != "running":
            return js
        time.sleep(interval)
    raise AssertionError(f"evaluation {eval_id} still running after "
                         f"{timeout}s; last answer: {last}")


def get_results(node, eval_id):
    st, js = node.get(f"/evaluation/{eval_id}/results")
    assert st == 200, f"GET /evaluation/{eval_id}/results -> {st} {js}"
    return js


def stray_processes(node, needle):
    """Processes whose command line holds needle and that belong to the node:
    same session as the node, or working directory under its base dir."""
    base = os.path.realpath(node.base_dir)
    sid = node.proc.pid if node.proc is not None else None
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            if needle not in cmd:
                continue
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            psid = int(stat[stat.rindex(")") + 2:].split()[3])
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError, IndexError):
            continue
        if psid == sid or cwd == base or cwd.startswith(base + "/"):
            found.append((int(pid), cwd, cmd.strip()))
    return found


def assert_secret_nowhere(node, secret):
    """secret is in no file of the node's data dir (SQLite and its WAL too)
    and not in its log."""
    needle = secret.encode()
    hits = []
    for dirpath, _dirs, files in os.walk(node.data_dir):
        for fn in files:
            path = os.path.join(dirpath, fn)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as f:
                    if needle in f.read():
                        hits.append(path)
            except OSError:
                pass
    assert hits == [], f"secret written to {hits}"
    assert secret not in node.log_text(), "secret written to the node log"


def close_nodes(nodes):
    """Close every node (stop, ASan check); returns the errors."""
    errors = []
    for n in nodes:
        try:
            n.close()
        except AssertionError as e:
            errors.append(str(e))
    return errors


def close_all(nodes):
    """Close every node, then fail with all the errors, if any."""
    errors = close_nodes(nodes)
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------
# clusters (loopback; tests/e2e/netns.py builds on these)
# --------------------------------------------------------------------------

POLL = 0.1


def wait_for(pred, timeout, what, interval=POLL, explain=None):
    """Poll pred until true; returns the seconds it took. On timeout the
    AssertionError says explain() when given, else what."""
    t0 = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(explain() if explain is not None else
                                 f"{what}: not within {timeout:.1f} s")
        time.sleep(interval)


def peers_view(node, timeout=5):
    """GET /network/peers of a node, or None if it does not answer."""
    try:
        st, js, _ = node.request("GET", "/network/peers", timeout=timeout)
    except OSError:
        return None
    if st != 200 or not isinstance(js, dict):
        return None
    return js


def alive_peers(node):
    """The set of alive peers a node names, or None."""
    v = peers_view(node)
    return None if v is None else set(v.get("peers", []))


def peers_converged(nodes):
    """Every node names exactly the others as its alive peers."""
    everyone = {n.addr for n in nodes}
    return all(alive_peers(n) == everyone - {n.addr} for n in nodes)


def wait_converged(nodes, timeout=10.0, converged=peers_converged):
    """Wait until converged(nodes); returns the seconds it took."""
    return wait_for(
        lambda: converged(nodes), timeout, "convergence",
        explain=lambda: (f"no convergence within {timeout} s: " + json.dumps(
            {n.addr: peers_view(n) for n in nodes}, indent=1)))


def loop_nodes(base, n, prefix, seed_port=None, first=1):
    """n loopback Nodes (not started) named prefix+first, prefix+first+1,
    ..., all seeded with the first one (or with 127.0.0.1:seed_port)."""
    ports = [free_port() for _ in range(n)]
    seed = f"127.0.0.1:{seed_port or ports[0]}"
    return [Node(base, ["--seeds", seed], port=p, name=f"{prefix}{i + first}")
            for i, p in enumerate(ports)]


@contextlib.contextmanager
def running(nodes, converge=True):
    """Start the nodes (and wait for convergence); close them all after."""
    try:
        for n in nodes:
            n.start()
        if converge:
            wait_converged(nodes)
        yield nodes
    finally:
        close_all(nodes)


def eval_paths(eids):
    """/evaluation, /stats and every evaluation's status and results."""
    out = ["/evaluation", "/stats"]
    for e in eids:
        out += [f"/evaluation/{e}", f"/evaluation/{e}/results"]
    return out


def run_cli(*args, timeout=120):
    return subprocess.run([MESHTEST_BIN, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture
def make_node(tmp_path):
    """Factory: make_node(extra_args=(), name=...) -> started Node; all are
    stopped (and ASan-checked) at teardown."""
    nodes = []

    def factory(extra_args=(), name=None, start=True):
        n = Node(tmp_path, extra_args, name=name or f"node{len(nodes)}")
        nodes.append(n)
        if start:
            n.start()
        return n

    yield factory
    close_all(nodes)


@pytest.fixture
def node(make_node):
    return make_node()


@pytest.fixture(scope="module")
def module_node(tmp_path_factory):
    """One node shared by the tests of a module that do not kill it."""
    base = tmp_path_factory.mktemp("shared")
    n = Node(base, name="shared")
    n.start()
    yield n
    n.close()
