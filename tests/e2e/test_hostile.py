"""Hostile submitted code (SPEC section 6): it runs unprivileged, cannot
kill the node nor read its data, its output is capped, and the processes it
leaves behind do not outlive the module."""

import os
import signal
import textwrap
import time
import uuid

import pytest

import corpus
from conftest import get_results, wait_done
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
    write(p, "tests/test_read_data.py", f"""
        import os

        import pytest


        def test_cannot_list_node_data():
            with pytest.raises(OSError):
                os.listdir({node.data_dir!r})
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
