"""Warm workers and the two isolation settings (issue 10).

A module runs in a child forked from a warm worker: whatever it does to its
interpreter, its environment, its network, /tmp or its copy of the project
must not reach the next module, nor the worker itself. With isolation
"project" the modules of a project share a pytest session, and a module
that crashes, hangs or stops the session is run again alone while its
session-mates keep their results.

Every project is generated here; every expected number is a literal."""

import os
import re
import signal
import time

import pytest

from conftest import get_results, wait_done
from test_real import by_project, modules_of, submit, write


def one_slot(make_node, *extra):
    return make_node(["--slots", "1", *extra])


def started_at(m):
    return m["finished_at"] - m["duration"]


def counts(m):
    return (m["outcome"], m["passed"], m["failed"], m["skipped"])


def worker_starts(node):
    """Pythons of the warm workers the node started, in order."""
    return re.findall(r"runner: slot \d+ has a warm worker for (\S+)", node.log_text())


# ------------------------------------------------------------ module mode

def module_mode(make_node, tmp_path, name, files):
    """One slot, isolation "module", one project (files: {path: text});
    the node and its modules' results once it is done."""
    node = one_slot(make_node)
    src = tmp_path / "src"
    for rel, text in files.items():
        write(src / name, rel, text)
    eid = submit(node, src, tmp_path, {"isolation": "module"})
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    return node, modules_of(by_project(get_results(node, eid))[name])


POLLUTER = """
    import builtins
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading


    def test_pollute_everything():
        os.environ["MESHTEST_POLLUTED"] = "1"
        sys.modules["json"] = "not json"
        json.polluted = True
        builtins.polluted = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open("/tmp/left-by-a.txt", "w") as f:
            f.write("left")
        with open("left-in-project.txt", "w") as f:
            f.write("left")
        if os.path.isdir("/dev/shm"):
            with open("/dev/shm/left-by-a", "w") as f:
                f.write("left")
        s = socket.socket()
        s.bind(("127.0.0.1", 5000))
        s.listen(1)
        threading.Thread(target=s.accept, daemon=True).start()
        # a process left behind, holding the port and nothing else
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        os.chdir("/")


    def test_two():
        assert True


    def test_three():
        assert True


    def test_four():
        assert True
    """

# The same pollution, but nothing left running: the next module is forked
# from the same start of pytest (a zygote), and still sees none of it.
LEAVE_PROCESS = """\
        # a process left behind, holding the port and nothing else
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
"""
assert LEAVE_PROCESS in POLLUTER
POLLUTER_IN_PROCESS = POLLUTER.replace(LEAVE_PROCESS, "")

CHECKER = """
    import builtins
    import json
    import os
    import signal
    import socket
    import sys


    def test_environment_is_clean():
        assert "MESHTEST_POLLUTED" not in os.environ


    def test_interpreter_is_clean():
        assert not hasattr(builtins, "polluted")
        assert not hasattr(json, "polluted")
        assert sys.modules["json"] is json
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


    def test_files_are_clean():
        assert not os.path.exists("/tmp/left-by-a.txt")
        assert not os.path.exists("/dev/shm/left-by-a")
        assert not os.path.exists("left-in-project.txt")
        assert os.path.exists("tests/test_b_check.py")  # the working folder


    def test_port_is_free():
        s = socket.socket()
        s.bind(("127.0.0.1", 5000))
        s.close()
    """


@pytest.mark.timeout(180)
def test_module_isolation_leaves_nothing_for_the_next(make_node, tmp_path):
    node, mods = module_mode(make_node, tmp_path, "dirty", {
        "tests/test_a_pollute.py": POLLUTER, "tests/test_b_check.py": CHECKER})
    a, b = mods["tests/test_a_pollute.py"], mods["tests/test_b_check.py"]
    assert counts(a) == ("finished", 4, 0, 0), a
    assert counts(b) == ("finished", 4, 0, 0), b
    # on one slot, the polluter ran first (it has more tests), then the checker
    assert a["finished_at"] <= started_at(b) + 0.01, (a, b)
    assert "session" not in a and "session" not in b
    # the process it left behind ended with its module's run
    assert processes_of(slot_uid(node), "time.sleep(600)") == []


def each_runs(node):
    """How many runs of several modules, each in a process of its own."""
    return len(re.findall(r"runner: slot \d+ runs \d+ modules, each in a process of its own",
                          node.log_text()))


@pytest.mark.timeout(180)
def test_module_isolation_forked_from_one_start_leaves_nothing(make_node, tmp_path):
    node, mods = module_mode(make_node, tmp_path, "dirty", {
        "tests/test_a_pollute.py": POLLUTER_IN_PROCESS, "tests/test_b_check.py": CHECKER})
    assert counts(mods["tests/test_a_pollute.py"]) == ("finished", 4, 0, 0), mods
    assert counts(mods["tests/test_b_check.py"]) == ("finished", 4, 0, 0), mods
    # both in one run of the worker, pytest started once: nothing to recycle
    assert each_runs(node) == 1, node.log_text()
    assert len(worker_starts(node)) == 1, worker_starts(node)


# A module that dies (SESSION_CRASH), one that stops at its first failure
# (-x), and one that forges events for another module of the run (the key
# is in its memory): each counts as it counts alone, and the forged events
# change nothing.
FORGER = """
    import json
    import os

    import meshtest_plugin


    def test_forge():
        v = "tests/test_d_victim.py"
        meshtest_plugin.emit({"ev": "module_exit", "path": "tests/test_c_forger.py",
                              "status": 0, "signal": None})
        # the same marker spelt with an escape, straight to the pipe
        os.write(3, ('{"ev": "module\\\\u005fexit", "path": "tests/test_c_forger.py",'
                     ' "status": 0, "signal": null, "k": %s}\\n'
                     % json.dumps(meshtest_plugin._KEY)).encode())
        meshtest_plugin.emit({"ev": "collect_start", "path": v})
        meshtest_plugin.emit({"ev": "collected", "nodeids": [v + "::test_real"]})
        for when in ("setup", "call", "teardown"):
            meshtest_plugin.emit({"ev": "report", "nodeid": v + "::test_real", "when": when,
                                  "outcome": "passed", "duration": 0.0, "wasxfail": False,
                                  "strict_xpass": False})
        meshtest_plugin.emit({"ev": "finish", "nodeid": v + "::test_real"})
        meshtest_plugin.emit({"ev": "module_exit", "path": v, "status": 0, "signal": None})
        assert True
    """

VICTIM = """
    def test_real():
        assert 1 == 2


    def test_other():
        assert True
    """


@pytest.mark.timeout(240)
def test_module_isolation_forked_counts_as_alone(make_node, tmp_path):
    node = one_slot(make_node)
    files = {"tests/test_a_crash.py": SESSION_CRASH, "tests/test_b_fails.py": SESSION_FAILS,
             "tests/test_c_forger.py": FORGER, "tests/test_d_victim.py": VICTIM}
    src = tmp_path / "src"
    for rel, text in files.items():
        write(src / "each", rel, text)
    write(src / "each", "pytest.ini", "[pytest]\naddopts = -x\n")
    eid = submit(node, src, tmp_path, {"isolation": "module"}, name="each.zip")
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    together = modules_of(by_project(get_results(node, eid))["each"])
    assert each_runs(node) == 1, node.log_text()
    # the same modules, one evaluation each: run alone
    alone = {}
    for i, (rel, text) in enumerate(files.items()):
        one = tmp_path / f"one{i}"
        write(one / "each", rel, text)
        write(one / "each", "pytest.ini", "[pytest]\naddopts = -x\n")
        e = submit(node, one, tmp_path, {"isolation": "module"}, name=f"one{i}.zip")
        assert wait_done(node, e, timeout=120)["status"] == "done"
        alone[rel] = modules_of(by_project(get_results(node, e))["each"])[rel]
    for rel in files:
        assert counts(together[rel]) == counts(alone[rel]), (rel, together[rel], alone[rel])
        assert [(t["nodeid"], t["outcome"]) for t in together[rel]["tests"]] == \
            [(t["nodeid"], t["outcome"]) for t in alone[rel]["tests"]], rel
    assert counts(together["tests/test_a_crash.py"])[:2] == ("crashed", 1)
    assert counts(together["tests/test_b_fails.py"]) == ("finished", 1, 1, 0)
    # its first test fails for real, and -x leaves the second unrun (failed)
    victim = together["tests/test_d_victim.py"]
    assert counts(victim) == ("finished", 0, 2, 0)
    # each module has its own output, as alone: pytest's report of its own tests only
    assert "test_d_victim.py::test_real" in victim["stdout"], victim["stdout"]
    assert "test_b_fails" not in victim["stdout"], victim["stdout"]
    assert "test_d_victim" not in together["tests/test_b_fails.py"]["stdout"]
    assert "output_in" not in victim


# A conftest that starts a server for the session: a zygote with a process
# beside it must not fork (the modules' own network namespaces could not
# reach it); the modules run alone, each with its own server, and pass.
SERVER_CONFTEST = """
    import subprocess
    import sys
    import time


    def pytest_sessionstart(session):
        subprocess.Popen([sys.executable, "-c",
                          "import socket, time\\n"
                          "s = socket.socket()\\n"
                          "s.bind(('127.0.0.1', 5050))\\n"
                          "s.listen(5)\\n"
                          "while True:\\n"
                          "    c, _ = s.accept()\\n"
                          "    c.sendall(b'hi')\\n"
                          "    c.close()\\n"])
        time.sleep(0.5)
    """

SERVER_CLIENT = """
    import socket


    def test_server_answers():
        s = socket.create_connection(("127.0.0.1", 5050), timeout=5)
        assert s.recv(2) == b"hi"
    """


@pytest.mark.timeout(180)
def test_module_isolation_with_a_session_server_runs_alone(make_node, tmp_path):
    node = one_slot(make_node)
    src = tmp_path / "src"
    write(src / "srv", "conftest.py", SERVER_CONFTEST)
    for m in ("a", "b", "c"):
        write(src / "srv", f"tests/test_{m}.py", SERVER_CLIENT)
    eid = submit(node, src, tmp_path, {"isolation": "module"})
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    assert (js["passed"], js["failed"]) == (3, 0), js


WORKER_PROBE = """
    import ctypes
    import os
    import signal


    def test_cannot_read_the_worker():
        parent = os.getppid()
        assert parent == 1            # the worker is pid 1 of the sandbox
        for name in ("mem", "environ", "maps"):
            try:
                with open("/proc/%d/%s" % (parent, name), "rb") as f:
                    f.read(64)
            except OSError:
                continue
            raise AssertionError("read the worker's " + name)


    def test_cannot_trace_or_signal_the_worker():
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.ptrace(16, 1, 0, 0) == -1          # PTRACE_ATTACH
        for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
            os.kill(1, sig)                            # ignored: pid 1
    """

AFTER_PROBE = """
    def test_runs_after_the_probe():
        assert True
    """


@pytest.mark.timeout(180)
def test_a_module_cannot_reach_its_worker(make_node, tmp_path):
    node, mods = module_mode(make_node, tmp_path, "probe", {
        "tests/test_a_probe.py": WORKER_PROBE, "tests/test_b_after.py": AFTER_PROBE})
    assert counts(mods["tests/test_a_probe.py"]) == ("finished", 2, 0, 0), mods
    assert counts(mods["tests/test_b_after.py"]) == ("finished", 1, 0, 0), mods
    # one worker served both: the probe neither killed nor stopped it
    assert len(worker_starts(node)) == 1, worker_starts(node)


# ----------------------------------------------------------- project mode

SESSION_OK = """
    def test_one():
        assert True


    def test_two():
        assert 1 + 1 == 2
    """

SESSION_CRASH = """
    import os


    def test_before():
        assert True


    def test_dies():
        os._exit(3)


    def test_never():
        assert True
    """

SESSION_HANG = """
    import time


    def test_fine():
        assert True


    def test_forever():
        time.sleep(600)
    """

SESSION_FAILS = """
    def test_good():
        assert True


    def test_bad():
        assert 1 == 2
    """


@pytest.mark.timeout(240)
def test_session_crash_and_hang_keep_the_mates_results(make_node, tmp_path):
    node = one_slot(make_node)
    src = tmp_path / "src"
    p = src / "mixed"
    # first in pytest's order, which the session keeps: it runs before the crash
    write(p, "tests/test_a_ok.py", SESSION_OK + """

    def test_three():
        assert True


    def test_four():
        assert True
    """)
    write(p, "tests/test_ok_b.py", SESSION_OK)
    write(p, "tests/test_crash.py", SESSION_CRASH)
    write(p, "tests/test_hang.py", SESSION_HANG)
    write(p, "tests/test_fails.py", SESSION_FAILS)
    eid = submit(node, src, tmp_path, {"isolation": "project", "module_timeout": "5"})
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    mods = modules_of(by_project(get_results(node, eid))["mixed"])
    # each counts as it would alone
    assert counts(mods["tests/test_a_ok.py"]) == ("finished", 4, 0, 0)
    assert counts(mods["tests/test_ok_b.py"]) == ("finished", 2, 0, 0)
    assert counts(mods["tests/test_fails.py"]) == ("finished", 1, 1, 0)
    crash = mods["tests/test_crash.py"]
    assert counts(crash) == ("crashed", 1, 2, 0), crash
    assert crash["message"].startswith("interpreter died (exit status 3) during "
                                       "tests/test_crash.py::test_dies"), crash
    hang = mods["tests/test_hang.py"]
    assert counts(hang) == ("timeout", 1, 1, 0), hang
    assert hang["message"] == ("timed out after 5 s during "
                               "tests/test_hang.py::test_forever"), hang
    # the crash and the hang ran alone in the end; the module that finished
    # before the crash kept its result from the shared session
    assert "session" not in crash and "session" not in hang
    assert mods["tests/test_a_ok.py"]["session"]["modules"] == 5, mods
    assert js["nota_final_per_project"]["mixed"] == pytest.approx(20 * 9 / 13)


@pytest.mark.timeout(180)
def test_x_in_addopts_still_grades_every_module(make_node, tmp_path):
    node = one_slot(make_node)
    src = tmp_path / "src"
    p = src / "stopper"
    write(p, "pytest.ini", """
        [pytest]
        addopts = -x
        """)
    for i in range(4):
        write(p, f"tests/test_m{i}.py", SESSION_FAILS.replace("test_good", f"test_good{i}"))
    eid = submit(node, src, tmp_path, {"isolation": "project"})
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    mods = modules_of(by_project(get_results(node, eid))["stopper"])
    # -x stops each module at its first failure, as pytest on it alone does
    assert {k: counts(m) for k, m in mods.items()} == {
        f"tests/test_m{i}.py": ("finished", 1, 1, 0) for i in range(4)}
    assert js["executed"] == 4


# ------------------------------------------------------------- the worker

SLOW = """
    import time


    def test_quick():
        assert True


    def test_slow():
        time.sleep(4)
    """


def processes_of(uid, needle):
    """Host pids of uid's processes whose command line holds needle."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/status") as f:
                st = f.read()
        except OSError:
            continue
        m = re.search(r"^Uid:\t(\d+)", st, re.M)
        if m and int(m.group(1)) == uid and needle in cmd:
            out.append(int(pid))
    return out


def worker_pids(uid):
    """Host pids of the warm workers running as uid: pid 1 of their sandbox."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/status") as f:
                st = f.read()
        except OSError:
            continue
        uid_m = re.search(r"^Uid:\t(\d+)", st, re.M)
        ns_m = re.search(r"^NSpid:\t(.*)$", st, re.M)
        if (b"meshtest_worker.py" in cmd and uid_m and int(uid_m.group(1)) == uid
                and ns_m and ns_m.group(1).split()[-1] == "1"):
            out.append(int(pid))
    return out


def slot_uid(node):
    m = re.search(r"runner: \d+ slots run as uids (\d+)", node.log_text())
    assert m, "no slot uid in the log"
    return int(m.group(1))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("isolation", ["module", "project"])
@pytest.mark.serial
def test_worker_killed_mid_module_loses_nothing(make_node, tmp_path, isolation):
    """Twelve modules of equal size on one slot: claims of four, the slow
    one first. The worker dies (SIGKILL) during its slow test."""
    node = one_slot(make_node)
    src = tmp_path / "src"
    p = src / "victim"
    write(p, "tests/test_a_slow.py", SLOW)
    for i in range(11):
        write(p, f"tests/test_b_ok{i:02d}.py", SESSION_OK)
    eid = submit(node, src, tmp_path, {"isolation": isolation})
    uid = slot_uid(node)
    deadline = time.monotonic() + 60
    pids = []
    while time.monotonic() < deadline and not pids:
        if re.search(r"slot 0 runs \d+ modules? of victim", node.log_text()):
            time.sleep(1.5)          # inside test_slow by now
            pids = worker_pids(uid)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    assert pids, "no worker to kill"
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    assert js["executed"] == 12 and js["pending"] == 0
    mods = modules_of(by_project(get_results(node, eid))["victim"])
    for i in range(11):
        assert counts(mods[f"tests/test_b_ok{i:02d}.py"]) == ("finished", 2, 0, 0), mods
    slow = mods["tests/test_a_slow.py"]
    if isolation == "module":
        # the module the dead worker ran: crashed, its finished test kept
        assert counts(slow) == ("crashed", 1, 1, 0), slow
        assert "during tests/test_a_slow.py::test_slow" in slow["message"], slow
    else:
        # the session died: its modules ran again alone, in a new worker
        assert counts(slow) == ("finished", 2, 0, 0), slow
    assert len(worker_starts(node)) >= 2


SHADOW_TEST = """
    import attr


    def test_imports_the_checkout():
        assert attr.MARKER == "the student's attr"
        assert "/src/attr/" in attr.__file__
    """


@pytest.mark.timeout(180)
@pytest.mark.parametrize("isolation", ["module", "project"])
def test_checkout_wins_over_what_the_worker_imported(make_node, tmp_path, isolation):
    """pytest itself imports attr, so the worker has Debian's; a project
    that is attr runs in a fresh interpreter and imports its own."""
    node = make_node()
    src = tmp_path / "src"
    p = src / "attrs"
    # a working attr (pytest needs one), as the attrs repository is: the
    # system's code, extended by this checkout
    write(p, "src/attr/__init__.py", """
        import os
        _real = "/usr/lib/python3/dist-packages/attr"
        __path__.append(_real)
        with open(os.path.join(_real, "__init__.py")) as _f:
            exec(compile(_f.read(), os.path.join(_real, "__init__.py"), "exec"))
        MARKER = "the student's attr"
        """)
    write(p, "tests/test_shadow.py", SHADOW_TEST)
    write(p, "tests/test_other.py", SESSION_OK)
    eid = submit(node, src, tmp_path, {"isolation": isolation})
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    mods = modules_of(by_project(get_results(node, eid))["attrs"])
    assert counts(mods["tests/test_shadow.py"]) == ("finished", 1, 0, 0), mods
    assert counts(mods["tests/test_other.py"]) == ("finished", 2, 0, 0), mods


ENV_TEST = """
    import os
    import sys


    def test_runs_in_its_environment():
        assert sys.prefix == os.environ["VIRTUAL_ENV"]
        assert "/venvs/" in sys.prefix
    """


@pytest.mark.timeout(300)
def test_changed_requirements_get_a_new_worker(make_node, tmp_path):
    node = one_slot(make_node)
    first = tmp_path / "first"
    write(first / "envy", "tests/test_env.py", ENV_TEST)
    eid = submit(node, first, tmp_path, {}, name="first.zip")
    assert wait_done(node, eid, timeout=150)["status"] == "done"
    # pytest is installed already: the new set installs from nothing
    second = tmp_path / "second"
    write(second / "envy", "tests/test_env.py", ENV_TEST)
    write(second / "envy", "requirements.txt", "pytest\n")
    eid2 = submit(node, second, tmp_path, {}, name="second.zip")
    js = wait_done(node, eid2, timeout=250)
    assert js["status"] == "done", js
    for e in (eid, eid2):
        mods = modules_of(by_project(get_results(node, e))["envy"])
        assert counts(mods["tests/test_env.py"]) == ("finished", 1, 0, 0), mods
    starts = worker_starts(node)
    assert len(starts) == 2 and starts[0] != starts[1], starts


@pytest.mark.timeout(240)
def test_no_copy_of_the_project_per_module(make_node, tmp_path):
    """A project with a 24 MB file and 6 modules: each slot keeps one
    pristine copy and every module sees the project through an overlay."""
    node = make_node()
    src = tmp_path / "src"
    p = src / "heavy"
    os.makedirs(p / "venv", exist_ok=True)
    with open(p / "venv" / "big.bin", "wb") as f:
        f.write(os.urandom(24 << 20))
    overlay_test = """
        import os


        def test_on_an_overlay():
            cwd = os.getcwd()
            with open("/proc/self/mountinfo") as f:
                mounts = [line.split() for line in f]
            mine = [m for m in mounts if m[4] == cwd]
            assert mine and mine[-1][mine[-1].index("-") + 1] == "overlay", mine
            assert os.path.getsize("venv/big.bin") == 24 << 20
        """
    for i in range(6):
        write(p, f"tests/test_m{i}.py", overlay_test)
    eid = submit(node, src, tmp_path, {"isolation": "module"})
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    assert (js["passed"], js["failed"]) == (6, 0), js
    # copies of the big file on the node: the unpacked project, one per slot
    work = os.path.realpath(node.data_dir)
    found = [os.path.join(d, f) for d, _, files in os.walk(work) for f in files
             if f == "big.bin"]
    assert 1 <= len(found) <= 1 + 2, found


# The slot's run folder is writable to runs (each run's scratch folder is in
# it): a module that plants the next runs' folders (their overlay upper
# layer, /tmp and home) must not reach them.
PLANTER = """
    import os


    def test_plant_the_next_runs():
        scratch = os.path.dirname(os.environ["HOME"])
        run, seq = os.path.split(scratch)
        for k in range(1, 4):
            for sub in ("upper", "tmp", "home"):
                d = os.path.join(run, str(int(seq) + k), sub)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "planted.txt"), "w") as f:
                    f.write("planted")
    """

PLANT_CHECK = """
    import os


    def test_nothing_planted():
        assert not os.path.exists("planted.txt")
        assert not os.path.exists("/tmp/planted.txt")
        assert not os.path.exists(os.path.join(os.environ["HOME"], "planted.txt"))
    """


@pytest.mark.timeout(180)
@pytest.mark.parametrize("isolation", ["project", "module"])
def test_a_run_cannot_plant_the_next_runs_folders(make_node, tmp_path, isolation):
    node = one_slot(make_node)
    got = {}
    for name, text in (("planter", PLANTER), ("checker", PLANT_CHECK)):
        src = tmp_path / name
        write(src / name, "tests/test_it.py", text)
        eid = submit(node, src, tmp_path, {"isolation": isolation}, name=f"{name}.zip")
        js = wait_done(node, eid, timeout=120)
        assert js["status"] == "done", js
        got[name] = modules_of(by_project(get_results(node, eid))[name])["tests/test_it.py"]
    assert counts(got["planter"]) == ("finished", 1, 0, 0), got["planter"]
    assert counts(got["checker"]) == ("finished", 1, 0, 0), got["checker"]
