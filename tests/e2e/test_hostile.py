"""Hostile submitted code (SPEC section 6): it runs unprivileged, cannot
kill the node nor read its data, its output is capped, and the processes it
leaves behind do not outlive the module."""

import os
import secrets
import signal
import socket
import textwrap
import threading
import time
import uuid

import pytest

import corpus
import hostile_corpus
from conftest import encode_multipart, get_results, http_request, wait_done
from expect import approx


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))


def find_marker(marker):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.timeout(120)
def test_hostile_code_is_contained(node, tmp_path):
    marker = "meshtest-e2e-orphan-" + uuid.uuid4().hex
    src = tmp_path / "src"
    p = str(src / "hostile")
    write(p, "tests/test_kill_node.py", f"""
        import os
        import signal

        import pytest


        def test_cannot_kill_node():
            with pytest.raises((PermissionError, ProcessLookupError)):
                os.kill({node.proc.pid}, signal.SIGKILL)
        """)
    # in the sandbox the data folder's path may exist as an empty mount
    # point skeleton; what matters is that none of its contents show
    write(p, "tests/test_read_data.py", f"""
        import os

        import pytest


        def test_cannot_read_node_data():
            with pytest.raises(OSError):
                open(os.path.join({node.data_dir!r}, "meshtest.db"), "rb")
            try:
                names = os.listdir({node.data_dir!r})
            except OSError:
                names = []
            assert "meshtest.db" not in names and "projects" not in names
        """)
    write(p, "tests/test_flood.py", """
        import sys


        def test_flood_output():
            line = "x" * 1023 + "\\n"
            for _ in range(16 * 1024):  # 16 MiB
                sys.stdout.write(line)
            sys.stdout.flush()
        """)
    write(p, "tests/test_orphan.py", f"""
        import subprocess
        import sys


        def test_leaves_a_daemon_behind():
            subprocess.Popen([sys.executable, "-c",
                              "import time; time.sleep(300)", {marker!r}],
                             start_new_session=True,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        """)
    z = corpus.zip_dir(str(src), str(tmp_path / "hostile.zip"))
    try:
        eid = node.submit_zip(z, module_timeout=60)
        js = wait_done(node, eid, timeout=100)
        assert js["status"] == "done", js
        assert node.proc.poll() is None, "the node died"
        res = get_results(node, eid)
        (proj,) = res["projects"]
        mods = {m["path"]: (m["passed"], m["failed"], m["outcome"])
                for m in proj["modules"]}
        assert mods == {
            "tests/test_kill_node.py": (1, 0, "finished"),
            "tests/test_read_data.py": (1, 0, "finished"),
            "tests/test_flood.py": (1, 0, "finished"),
            "tests/test_orphan.py": (1, 0, "finished"),
        }, [(m["path"], m["message"], m["tests"]) for m in proj["modules"]]
        assert js["nota_final"] == approx(20.0)
        flood = [m for m in proj["modules"]
                 if m["path"] == "tests/test_flood.py"][0]
        assert len(flood["stdout"]) < 4 * 1024 * 1024, \
            f"stdout not capped: {len(flood['stdout'])} bytes kept"
        st, _ = node.get("/stats")
        assert st == 200
        # whatever a module starts dies with the module
        deadline = time.monotonic() + 5
        while find_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert find_marker(marker) == [], \
            "a process started by a test module outlived its module"
    finally:
        for pid in find_marker(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --------------------------------------------------------------------------
# the hostile corpus: one evaluation, a project per attack, plus a good one
# --------------------------------------------------------------------------

class StatsPoller(threading.Thread):
    """GET /stats every 0.2 s; records how long each answer took."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.times = []
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                st, js, _ = http_request(self.port, "GET", "/stats", timeout=5)
                if st != 200 or not isinstance(js, dict) or "all" not in js:
                    self.errors.append(f"status {st}: {js}")
            except OSError as e:
                self.errors.append(repr(e))
            self.times.append(time.monotonic() - t0)
            self.halt.wait(0.2)


def submit_with_token(node, zip_path, token, module_timeout):
    """Each module alone: every hostile module's outcome is the one it has
    on its own (in a shared session a memory hog may leave its session-mate
    without memory, or a MemoryError may land in a test instead)."""
    with open(zip_path, "rb") as f:
        data = f.read()
    body, ctype = encode_multipart(
        {"module_timeout": str(module_timeout), "isolation": "module"},
        {"file": (os.path.basename(zip_path), data, "application/zip")})
    st, js, raw = node.request("POST", "/evaluation", body,
                               {"Content-Type": ctype,
                                "Authorization": f"Bearer {token}"}, 60)
    assert st == 201, f"POST /evaluation -> {st} {raw[:300]!r}"
    return js["id"]


def module_table(res):
    return {f"{p['project_id']}/{m['path']}": m
            for p in res["projects"] for m in p["modules"]}


def summary(mods):
    return {k: (m["outcome"], m["passed"], m["failed"])
            for k, m in sorted(mods.items())}


@pytest.mark.timeout(240)
def test_hostile_corpus(make_node, tmp_path, monkeypatch):
    key = secrets.token_hex(32)
    token = secrets.token_hex(32)
    # secrets reach the node through its environment only; the procscan
    # project looks for them in every /proc it can read
    monkeypatch.setenv("MESHTEST_CLUSTER_KEY", key)
    monkeypatch.setenv("MESHTEST_API_TOKEN", token)
    node = make_node()
    st, health = node.get("/health")
    assert st == 200
    assert (health["sandbox"], health["isolated"]) == ("bwrap", True), health

    # a listener on the host's loopback that no test may reach
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    src = tmp_path / "src"
    loop_src = tmp_path / "loopsrc"
    data = os.path.realpath(node.data_dir)
    hostile_corpus.write_all(str(src), data, os.path.join(data, "projects"),
                             key, token, port)
    hostile_corpus.write_loop(str(loop_src))
    z = corpus.zip_dir(str(src), str(tmp_path / "hostile.zip"))
    lz = corpus.zip_dir(str(loop_src), str(tmp_path / "loop.zip"))

    poller = StatsPoller(node.port)
    poller.start()
    try:
        eid = submit_with_token(node, z, token, module_timeout=60)
        lid = submit_with_token(node, lz, token, module_timeout=3)
        js = wait_done(node, eid, timeout=150)
        ljs = wait_done(node, lid, timeout=60)
    finally:
        poller.halt.set()
        poller.join(10)
    listener_hit = True
    try:
        conn, _ = listener.accept()
        conn.close()
    except BlockingIOError:
        listener_hit = False
    finally:
        listener.close()

    assert node.proc.poll() is None, "the node died"
    assert js["status"] == "done", js
    assert ljs["status"] == "done", ljs
    res = get_results(node, eid)
    mods = module_table(res)
    assert summary(mods) == dict(sorted(hostile_corpus.EXPECTED.items())), \
        {k: (m["outcome"], m.get("message"),
             [(t["nodeid"], t["outcome"], (t.get("message") or "")[-600:])
              for t in m["tests"] if t["counted"] != "passed"],
             (m.get("stderr") or "")[-600:])
         for k, m in mods.items()
         if (m["outcome"], m["passed"], m["failed"])
         != hostile_corpus.EXPECTED.get(k)}
    lmods = module_table(get_results(node, lid))
    assert summary(lmods) == hostile_corpus.LOOP_EXPECTED, lmods
    loop = lmods["loop/tests/test_loop.py"]
    assert loop["message"] == ("timed out after 3 s during "
                               "tests/test_loop.py::test_endless"), loop

    # the good project's numbers are exact
    assert js["nota_final_per_project"]["good"] == approx(hostile_corpus.GOOD_GRADE)
    assert js["percent_passed_per_project"]["good"] == approx(75.0)
    assert js["percent_failed_per_project"]["good"] == approx(25.0)
    good = mods["good/tests/test_good.py"]
    assert (good["passed"], good["failed"], good["skipped"]) == (3, 1, 1)

    # memory: the hog that left pytest no memory is "oom", with its message
    total = mods["memhog/tests/test_hog_total.py"]
    assert total["message"].startswith("out of memory (MemoryError)"), total

    # 1 GiB of output: kept up to the cap, the rest counted
    flood = mods["flood/tests/test_flood.py"]
    assert len(flood["stdout"]) <= 64 * 1024
    assert flood["stdout_dropped"] >= hostile_corpus.FLOOD_BYTES - 64 * 1024
    assert flood["stdout_dropped"] + len(flood["stdout"]) >= hostile_corpus.FLOOD_BYTES

    # nothing reached the host's loopback, the data folder or an environment
    assert not listener_hit, "a test connected to the host's loopback"
    assert not os.path.exists(os.path.join(data, "evil.txt"))
    with open(os.path.join(data, "meshtest.db"), "rb") as f:
        assert b"pwned" not in f.read()
    venvs = os.path.join(data, "venvs")
    planted = [os.path.join(d, f) for d, _, files in os.walk(venvs)
               for f in files if f in ("sitecustomize.py", "evil.txt")]
    assert planted == []

    # the node answered /stats within a second all along
    assert poller.errors == [], poller.errors[:5]
    assert len(poller.times) >= 5
    assert max(poller.times) < 1.0, sorted(poller.times)[-5:]
    st, _ = node.get("/stats")
    assert st == 200
