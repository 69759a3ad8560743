"""Hostile projects for tests/e2e/test_hostile.py (SPEC section 6).

Each write_* function writes one project (a folder with tests/) under root.
The hostile tests are written so that they PASS when the sandbox holds: an
evaluation whose numbers match EXPECTED proves the isolation. Whatever the
code tries is bounded here too (the fork bomb stops at 3000 children), so a
broken sandbox fails the test instead of taking the machine down. Nothing is
ever aimed at an address outside this machine.

EXPECTED maps "<project>/<module>" to (outcome, passed, failed); a module
missing from it is not part of the evaluation.
"""

import os
import textwrap


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))


# (outcome, passed, failed) per module of the main evaluation
EXPECTED = {
    "good/tests/test_good.py": ("finished", 3, 1),
    "forkbomb/tests/test_forkbomb.py": ("finished", 1, 0),
    "memhog/tests/test_hog.py": ("finished", 0, 1),
    "memhog/tests/test_hog_total.py": ("oom", 0, 1),
    "flood/tests/test_flood.py": ("finished", 1, 0),
    "reader/tests/test_reader.py": ("finished", 2, 0),
    "procscan/tests/test_procscan.py": ("finished", 1, 0),
    "netout/tests/test_netout.py": ("finished", 1, 0),
    "writer/tests/test_writer.py": ("finished", 2, 0),
    "scwriter/tests/test_scwriter.py": ("finished", 1, 0),
    "screader/tests/test_screader.py": ("finished", 1, 0),
    "sigparent/tests/test_sigparent.py": ("finished", 2, 0),
    "creds/tests/test_creds.py": ("finished", 1, 0),
}

# the endless loop runs in its own evaluation with module_timeout 3
LOOP_EXPECTED = {"loop/tests/test_loop.py": ("timeout", 1, 2)}

# 1 GiB written to the real stdout by the flood project
FLOOD_BYTES = 1 << 30

# the good project: 3 passed, 1 failed, 1 skipped -> 20 * 3 / 4
GOOD_GRADE = 15.0


def write_good(root):
    p = os.path.join(root, "good")
    _write(p, "tests/test_good.py", """
        import pytest


        def test_a():
            assert 1 + 1 == 2


        def test_b():
            assert "x" * 3 == "xxx"


        def test_c():
            assert sorted([3, 1, 2]) == [1, 2, 3]


        def test_d_fails():
            assert 2 + 2 == 5


        @pytest.mark.skip(reason="not counted")
        def test_e_skipped():
            assert False
        """)


def write_forkbomb(root):
    p = os.path.join(root, "forkbomb")
    _write(p, "tests/test_forkbomb.py", """
        import os
        import time

        CAP = 3000  # never more children than this, whatever the sandbox does


        def test_fork_bomb_is_bounded():
            kids = []
            refused = None
            while len(kids) < CAP:
                try:
                    pid = os.fork()
                except OSError as e:  # EAGAIN: the slot user's process limit
                    refused = e
                    break
                if pid == 0:
                    time.sleep(60)  # left behind: the sandbox must reap them
                    os._exit(0)
                kids.append(pid)
            assert refused is not None, f"{len(kids)} children and no limit"
            assert len(kids) < 600, len(kids)
        """)


def write_memhog(root):
    p = os.path.join(root, "memhog")
    _write(p, "tests/test_hog.py", """
        def test_memory_hog():
            # 16 MiB blocks, written to: the address-space limit stops it and
            # pytest has room left to report a failed test
            hoard = []
            while True:
                hoard.append(bytearray(16 << 20))
        """)
    _write(p, "tests/test_hog_total.py", """
        _hoard = []


        def test_memory_hog_total():
            # big blocks, then ever smaller ones, kept for good: nothing is
            # left for pytest itself, whose interpreter dies of MemoryError
            size = 64 << 20
            while size >= 64:
                try:
                    _hoard.append(bytes(size))
                except MemoryError:
                    size //= 2
            while True:
                _hoard.append(object())
        """)


def write_flood(root):
    p = os.path.join(root, "flood")
    # -s: straight to the node's pipe, not into pytest's capture file
    _write(p, "pytest.ini", """
        [pytest]
        addopts = -s
        """)
    _write(p, "tests/test_flood.py", f"""
        import os


        def test_one_gib_of_output():
            block = b"y" * (1 << 20)
            for _ in range({FLOOD_BYTES} >> 20):
                view = memoryview(block)
                while view:
                    view = view[os.write(1, view):]
        """)


def write_loop(root):
    p = os.path.join(root, "loop")
    _write(p, "tests/test_loop.py", """
        def test_before():
            assert True


        def test_endless():
            while True:
                pass


        def test_after():
            assert True
        """)


def write_reader(root, data_dir, other_project_dir):
    """data_dir: the node's data folder; other_project_dir: the folder
    holding the stored projects of every evaluation."""
    p = os.path.join(root, "reader")
    _write(p, "tests/test_reader.py", f"""
        import os

        import pytest

        DB = {os.path.join(data_dir, "meshtest.db")!r}
        PROJECTS = {other_project_dir!r}


        def test_cannot_read_the_node_database():
            with pytest.raises(OSError):
                with open(DB, "rb") as f:
                    f.read(16)
            with pytest.raises(OSError):
                with open(DB + "-wal", "rb") as f:
                    f.read(16)


        def test_cannot_list_other_projects():
            with pytest.raises(OSError):
                os.listdir(PROJECTS)
            with pytest.raises(OSError):
                with open(os.path.join(PROJECTS, "..", "meshtest.db"), "rb"):
                    pass
        """)


def write_procscan(root, key, token):
    p = os.path.join(root, "procscan")
    # the secrets are only compared with what /proc shows
    _write(p, "tests/test_procscan.py", f"""
        import os

        SECRETS = [{key!r}.encode(), {token!r}.encode()]


        def test_no_secret_in_proc():
            readable = 0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("environ", "cmdline"):
                    try:
                        with open(f"/proc/{{pid}}/{{what}}", "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    readable += 1
                    for s in SECRETS:
                        assert s not in data, f"secret found in /proc/{{pid}}/{{what}}"
            assert readable >= 2  # at least our own environ and cmdline
        """)


def write_netout(root, port):
    p = os.path.join(root, "netout")
    _write(p, "tests/test_netout.py", f"""
        import socket

        import pytest


        def test_cannot_reach_the_hosts_loopback():
            with pytest.raises(OSError):
                s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
                s.close()
            # the sandbox's own loopback works
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            c = socket.create_connection(srv.getsockname(), timeout=3)
            c.close()
            srv.close()
        """)


def write_writer(root, data_dir):
    """The writes into the node's data folder are only attempted: the e2e
    test checks on the host that none of them landed."""
    p = os.path.join(root, "writer")
    _write(p, "tests/test_writer.py", f"""
        import os
        import sys

        import pytest

        DATA = {data_dir!r}


        def targets():
            lib = os.environ.get("PYTHONPATH", "")
            return [
                os.path.join(lib, "meshtest_plugin.py"),
                os.path.join(lib, "evil.py"),
                os.path.join(sys.prefix, "evil.txt"),
                "/usr/lib/python3/dist-packages/evil.py",
                "/etc/evil",
                "/evil",
            ]


        @pytest.mark.parametrize("which", ["plugin", "elsewhere"])
        def test_cannot_write_outside(which):
            paths = targets()
            paths = paths[:1] if which == "plugin" else paths[1:]
            for t in paths:
                with pytest.raises(OSError):
                    with open(t, "a") as f:
                        f.write("pwned\\n")
            for t in ("evil.txt", "meshtest.db"):
                try:
                    with open(os.path.join(DATA, t), "a") as f:
                        f.write("pwned\\n")
                except OSError:
                    pass
            # its own folder and /tmp are writable
            with open("mine.txt", "w") as f:
                f.write("ok")
            with open("/tmp/mine.txt", "w") as f:
                f.write("ok")
        """)


def write_sitecustomize(root):
    """Two projects with the same (empty, but present) requirement set:
    they share one environment."""
    reqs = "# nothing to install\n"
    w = os.path.join(root, "scwriter")
    _write(w, "requirements.txt", reqs)
    _write(w, "tests/test_scwriter.py", """
        import os
        import site
        import sys

        import pytest


        def test_cannot_plant_sitecustomize():
            dirs = [d for d in site.getsitepackages() if d.startswith(sys.prefix)]
            assert dirs, site.getsitepackages()
            for d in dirs + [os.path.join(sys.prefix, "lib")]:
                with pytest.raises(OSError):
                    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
                        f.write("import os; os.environ['MESHTEST_PWNED'] = '1'\\n")
        """)
    r = os.path.join(root, "screader")
    _write(r, "requirements.txt", reqs)
    _write(r, "tests/test_screader.py", """
        import os
        import site
        import sys


        def test_environment_is_clean():
            assert "MESHTEST_PWNED" not in os.environ
            for d in site.getsitepackages():
                if d.startswith(sys.prefix):
                    assert not os.path.exists(os.path.join(d, "sitecustomize.py"))
        """)


def write_sigparent(root):
    p = os.path.join(root, "sigparent")
    _write(p, "tests/test_sigparent.py", """
        import os
        import signal
        import time


        def test_signal_parent_and_init():
            for pid in (os.getppid(), 1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:  # not ours to signal
                    pass
            time.sleep(0.5)


        def test_still_running():
            assert True
        """)


def write_creds(root):
    p = os.path.join(root, "creds")
    _write(p, "tests/test_creds.py", """
        import os


        def test_no_capabilities_not_root():
            status = {}
            with open("/proc/self/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    status[k] = v.strip()
            assert int(status["CapEff"], 16) == 0
            assert int(status["CapPrm"], 16) == 0
            assert int(status["CapAmb"], 16) == 0
            assert os.getuid() != 0 and os.geteuid() != 0
            assert os.getgid() != 0
            assert 0 not in os.getgroups()
            assert status["NoNewPrivs"] == "1"
        """)


def write_all(root, data_dir, projects_dir, key, token, port):
    write_good(root)
    write_forkbomb(root)
    write_memhog(root)
    write_flood(root)
    write_reader(root, data_dir, projects_dir)
    write_procscan(root, key, token)
    write_netout(root, port)
    write_writer(root, data_dir)
    write_sitecustomize(root)
    write_sigparent(root)
    write_creds(root)
