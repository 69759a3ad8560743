"""Real projects as students and libraries write them (issue 6): services
before tests, fixed ports, src/ layouts, the project's pytest configuration,
files runs write, messy repositories, flaky tests and instructor tests.

Every project is generated here; every expected number is a literal."""

import json
import os
import re
import subprocess
import textwrap
import time

import pytest

import corpus
from conftest import get_results, stray_processes, wait_done
from expect import approx

SERVER = """
    import socket
    import sys

    NAME = open("name.txt").read().strip()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 5000))  # a fixed port, as students write it
    s.listen(16)
    while True:
        c, _ = s.accept()
        data = c.recv(100)
        c.sendall(NAME.encode() + b":" + data)
        c.close()
    """

CHAT_TEST = """
    import socket
    import time


    def ask(text):
        with socket.create_connection(("127.0.0.1", 5000), timeout=5) as c:
            c.sendall(text.encode())
            return c.recv(100).decode()


    def test_hello():
        time.sleep(1.0)  # modules of both projects overlap on the 2 slots
        assert ask("hello") == "{name}:hello"


    def test_again():
        assert ask("again") == "{name}:again"


    def test_third():
        time.sleep(0.5)
        assert ask("{mod}") == "{name}:{mod}"
    """


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))


def write_chat(root, name):
    p = os.path.join(root, name)
    write(p, "server.py", SERVER)
    write(p, "name.txt", name + "\n")
    for mod in ("test_chat_a", "test_chat_b"):
        write(p, f"tests/{mod}.py", CHAT_TEST.replace("{name}", name)
              .replace("{mod}", mod))
    return p


def by_project(res):
    return {p["project_id"]: p for p in res["projects"]}


def modules_of(proj):
    return {m["path"]: m for m in proj["modules"]}


def submit(node, src, tmp_path, fields, name="sub.zip"):
    zp = corpus.zip_dir(str(src), str(tmp_path / name))
    st, js = node.post_zip(zp, {k: (v if isinstance(v, str) else json.dumps(v))
                                for k, v in fields.items()})
    assert st == 201, (st, js)
    return js["id"]


# --------------------------------------------------------------- items 1+2

@pytest.mark.timeout(240)
def test_services_on_a_fixed_port_in_parallel(node, tmp_path):
    """Two chat projects whose tests need `python3 server.py` on port 5000
    (the evaluation's set-up), graded at once on 2 slots; one project adds
    set-up commands of its own (run ONCE, after fetching, not per module), one
    a service that never gets ready, and one a set-up command that fails (the
    project's error; the others are graded as usual)."""
    src = tmp_path / "src"
    write_chat(str(src), "alice")
    bob = write_chat(str(src), "bob")
    # bob's own file: commands run once after fetching, before any module
    write(bob, "meshtest.toml", """
        commands = ["python3 -c \\"open('generated.txt', 'w').write('made')\\"",
                    "echo x >> once.txt",
                    "id -u > setup_uid.txt"]
        """)
    write(bob, "tests/test_generated.py", """
        import os


        def test_generated():
            assert open("generated.txt").read() == "made"
            # appended by a set-up command: once in all, not once per module
            assert open("once.txt").read() == "x\\n"
            # the set-up uid (uid base + slots) is none of the slots' uids
            assert int(open("setup_uid.txt").read()) != os.getuid()
        """)
    write(bob, "tests/test_once.py", """
        def test_once():
            assert open("once.txt").read().splitlines() == ["x"]
        """)
    broken = str(src / "broken")
    write(broken, "meshtest.toml", """
        commands = ["echo fine > fine.txt",
                    "echo 'gen.py: no such input' >&2; exit 1",
                    "echo never > never.txt"]
        """)
    write(broken, "tests/test_ok.py", "def test_ok():\n    assert True\n")
    stuck = write_chat(str(src), "stuck")
    os.remove(os.path.join(stuck, "tests", "test_chat_b.py"))
    write(stuck, "meshtest.json", json.dumps({"services": [
        {"name": "never", "command": "sleep 300", "ready": {"port": 6000},
         "timeout": 2}]}))
    setup = {"services": [{"name": "chat", "command": "python3 server.py",
                           "ready": {"port": 5000}, "timeout": 20}]}
    eid = submit(node, src, tmp_path, {"setup": setup})
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    assert js["nota_final_per_project"] == {"alice": approx(20.0), "bob": approx(20.0),
                                            "stuck": approx(0.0), "broken": 0}
    b = js["projects"]["broken"]
    assert b["error"] == "set-up command 2 failed (exit 1): gen.py: no such input", b
    assert (b["grade"], b["passed"], b["failed"]) == (0, 0, 0), b
    assert js["projects"]["bob"]["error"] is None
    res = by_project(get_results(node, eid))
    assert (res["alice"]["passed"], res["alice"]["failed"]) == (6, 0)
    assert (res["bob"]["passed"], res["bob"]["failed"]) == (8, 0)
    assert sorted(modules_of(res["bob"])) == [
        "tests/test_chat_a.py", "tests/test_chat_b.py", "tests/test_generated.py",
        "tests/test_once.py"]
    (m,) = res["stuck"]["modules"]
    assert (m["passed"], m["failed"], m["errors"]) == (0, 1, 1)
    assert m["outcome"] == "infra_error"
    assert m["message"] == ("service 'never' not ready after 2 s (nothing accepts "
                            "connections on port 6000)"), m
    assert m["setup_failed"] is True
    # the module really ran at once on both slots
    log = node.log_text()
    assert "slot 0 runs" in log and "slot 1 runs" in log
    # set-up commands ran as uid base + slots, once per project that may have
    # commands: bob, broken and stuck (its meshtest.json, which only Python reads)
    first, last, setup_uid = map(int, re.search(
        r"slots run as uids (\d+)\.\.(\d+), set-up commands as uid (\d+)", log).groups())
    assert (last - first, setup_uid) == (1, last + 1)
    assert log.count("running the set-up commands of ") == 3
    assert len(re.findall(r"running the set-up commands of \S+ as uid %d\n" % setup_uid,
                          log)) == 3


@pytest.mark.timeout(120)
def test_bad_setup_is_refused(node, tmp_path):
    src = tmp_path / "src"
    corpus.write_simple(str(src), "p", passed=1, failed=0)
    zp = corpus.zip_dir(str(src), str(tmp_path / "a.zip"))
    bad = {"services": [{"name": "x", "command": "true", "ready": {"port": 70000}}]}
    st, js = node.post_zip(zp, {"setup": json.dumps(bad)})
    assert st == 400
    assert js == {"error": "setup: service 'x': ready must be {\"port\": 1..65535} "
                           "or {\"delay\": 0..600 seconds}"}
    st, js = node.post_zip(zp, {"reruns": "9"})
    assert (st, js) == (400, {"error": "reruns must be a whole number from 0 to 5"})


# ------------------------------------------------------------------ item 3

@pytest.mark.timeout(120)
def test_src_layout_shadowing_a_system_module(node, tmp_path):
    """A src/ layout package named yaml (python3-yaml is installed on the
    node): the tests, and `python3` started through PATH, import the
    submitted one; a root module imports without tests/__init__.py."""
    r = subprocess.run(["/usr/bin/python3", "-c", "import yaml"])
    assert r.returncode == 0, "the node must have python3-yaml for this test"
    src = tmp_path / "src"
    p = str(src / "shadow")
    write(p, "pyproject.toml", """
        [project]
        name = "yaml"
        version = "0.1"
        dependencies = []
        """)
    write(p, "src/yaml/__init__.py", 'WHO = "student"\n')
    write(p, "helper.py", "def twice(x):\n    return 2 * x\n")
    write(p, "tests/test_shadow.py", """
        import subprocess

        import helper
        import yaml


        def test_imports_the_submitted_package():
            assert yaml.WHO == "student"


        def test_python_on_path_sees_it_too():
            out = subprocess.run(["python3", "-c", "import yaml; print(yaml.WHO)"],
                                 capture_output=True, text=True)
            assert out.stdout.strip() == "student", out.stderr


        def test_root_module():
            assert helper.twice(21) == 42
        """)
    eid = submit(node, src, tmp_path, {})
    js = wait_done(node, eid, timeout=100)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    assert (res["shadow"]["passed"], res["shadow"]["failed"]) == (3, 0), res


# ------------------------------------------------------------------ item 4

@pytest.mark.timeout(120)
def test_pytest_configuration_is_honoured(node, tmp_path):
    src = tmp_path / "src"
    # setup.cfg renames the test functions: without it nothing is collected
    cfg = str(src / "cfg")
    write(cfg, "setup.cfg", """
        [tool:pytest]
        python_functions = check_*
        """)
    write(cfg, "tests/test_cfg.py", """
        def check_one():
            assert True


        def check_two():
            assert 1 == 2


        def test_not_collected():
            assert False
        """)
    # tox.ini names an option of a plugin that exists nowhere
    tox = str(src / "toxy")
    write(tox, "tox.ini", """
        [pytest]
        addopts = --meshtest-imaginary-plugin-level=3
        """)
    write(tox, "tests/test_a.py", "def test_a():\n    assert True\n")
    write(tox, "tests/test_b.py", "def test_b():\n    assert True\n")
    eid = submit(node, src, tmp_path, {})
    js = wait_done(node, eid, timeout=100)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    assert (res["cfg"]["passed"], res["cfg"]["failed"]) == (1, 1), res["cfg"]
    assert res["toxy"]["error"] == (
        "pytest configuration names an option no plugin provides: "
        "--meshtest-imaginary-plugin-level=3 (addopts in tox.ini); the environment "
        "lacks that plugin"), res["toxy"]
    assert js["nota_final_per_project"]["toxy"] == approx(0.0)


# ---------------------------------------------------------------- item 5+6

@pytest.mark.timeout(120)
def test_files_a_run_writes_stay_in_that_run(node, tmp_path):
    src = tmp_path / "src"
    p = str(src / "writer")
    for i in range(4):
        write(p, f"tests/test_w{i}.py", f"""
            import os
            import time


            def test_fresh_and_own():
                for leftover in (".coverage", ".hypothesis", "run.log",
                                 "tests/__pycache__/marker"):
                    assert not os.path.exists(leftover), leftover
                with open(".coverage", "w") as f:
                    f.write("w{i}")
                os.makedirs(".hypothesis/examples")
                os.makedirs("tests/__pycache__", exist_ok=True)
                open("tests/__pycache__/marker", "w").close()
                open("run.log", "w").write("w{i}")
                time.sleep(0.7)
                assert open(".coverage").read() == "w{i}"
            """)
    # each module alone: with shared sessions (the default) modules of one
    # session see each other's files, as under plain pytest
    eid = submit(node, src, tmp_path, {"isolation": "module"})
    js = wait_done(node, eid, timeout=100)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    assert (res["writer"]["passed"], res["writer"]["failed"]) == (4, 0), res


@pytest.mark.timeout(120)
def test_messy_repository(node, tmp_path):
    src = tmp_path / "src"
    p = str(src / "messy")
    write(p, "venv/pyvenv.cfg", "home = /usr/bin\n")
    write(p, "venv/lib/python3.11/site-packages/evil/tests/test_evil.py",
          "def test_evil():\n    assert False\n")
    write(p, "node_modules/pkg/tests/test_js.py", "def test_js():\n    assert False\n")
    write(p, ".git/HEAD", "ref: refs/heads/main\n")
    write(p, "README.md", "hello\n")
    with open(os.path.join(p, "blob.bin"), "wb") as f:
        f.write(os.urandom(3 << 20))
    write(p, "tests/test_ok.py", """
        import os


        def test_inside_link():
            assert open("docs/readme").read() == "hello\\n"


        def test_outside_links_are_gone():
            assert not os.path.lexists("venv/bin/python")
            assert not os.path.lexists("venv/lib/escape")


        def test_big_file_is_there():
            assert os.path.getsize("blob.bin") == 3 << 20
        """)
    zp = corpus.zip_dir(str(src), str(tmp_path / "messy.zip"))
    corpus.zip_add_symlink(zp, "messy/docs/readme", "../README.md")
    corpus.zip_add_symlink(zp, "messy/venv/bin/python", "/usr/bin/python3")
    corpus.zip_add_symlink(zp, "messy/venv/lib/escape", "../../../../../etc")
    st, js = node.post_zip(zp)
    assert st == 201, js
    eid = js["id"]
    js = wait_done(node, eid, timeout=100)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    proj = res["messy"]
    assert [m["path"] for m in proj["modules"]] == ["tests/test_ok.py"]
    assert (proj["passed"], proj["failed"]) == (3, 0), proj
    assert sorted(proj["warnings"]) == [
        "dropped venv/bin/python: link points outside the project",
        "dropped venv/lib/escape: link points outside the project"], proj["warnings"]


# ------------------------------------------------------------------ item 7

@pytest.mark.timeout(180)
def test_flaky_module_is_rerun(node, tmp_path):
    """A test that passes only on its second try: its first run sleeps to a
    deadline and fails, every later run (after the deadline) passes."""
    deadline = time.time() + 15
    src = tmp_path / "src"
    p = str(src / "flaky")
    write(p, "tests/test_flaky.py", f"""
        import time


        def test_steady():
            assert True


        def test_second_try():
            now = time.time()
            if now < {deadline!r}:
                time.sleep({deadline!r} - now)
                assert False, "first try"
        """)
    write(p, "tests/test_broken.py", "def test_broken():\n    assert 1 == 2\n")
    eid = submit(node, src, tmp_path, {"reruns": "2"})
    js = wait_done(node, eid, timeout=150)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    mods = modules_of(res["flaky"])
    fl = mods["tests/test_flaky.py"]
    assert fl["flaky"] is True
    assert (fl["passed"], fl["failed"]) == (2, 0)
    assert [(r["passed"], r["failed"]) for r in fl["runs"]] == [(1, 1), (2, 0)]
    assert (fl["first_result"]["passed"], fl["first_result"]["failed"]) == (1, 1)
    firsts = {t["nodeid"]: t["outcome"] for t in fl["first_result"]["tests"]}
    assert firsts["tests/test_flaky.py::test_second_try"] == "failed"
    br = mods["tests/test_broken.py"]
    assert br["flaky"] is False
    assert [(r["passed"], r["failed"]) for r in br["runs"]] == [(0, 1)] * 3
    assert (res["flaky"]["passed"], res["flaky"]["failed"]) == (2, 1)
    assert js["nota_final"] == approx(20 * 2 / 3)


# ------------------------------------------------------------------ item 8

@pytest.mark.timeout(150)
def test_instructor_tests_replace_the_students(make_node, tmp_path):
    node = make_node(extra_args=("--allow-file-urls",))
    # the instructor's repository: tests/ with two modules
    inst = tmp_path / "instructor"
    write(str(inst), "tests/test_grade.py", """
        from calc import add


        def test_add():
            assert add(2, 3) == 5


        def test_add_negative():
            assert add(-2, -3) == -5
        """)
    write(str(inst), "tests/test_more.py", """
        from calc import add


        def test_zero():
            assert add(0, 0) == 0
        """)
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "t"]):
        subprocess.run(["git", *args], cwd=str(inst), env=env, check=True)
    src = tmp_path / "src"
    good = str(src / "good")
    write(good, "calc.py", "def add(a, b):\n    return a + b\n")
    write(good, "tests/test_mine.py", "def test_always():\n    assert True\n")
    lazy = str(src / "lazy")
    write(lazy, "calc.py", "def add(a, b):\n    return abs(a) + abs(b)\n")
    # the student's always-passing tests must not count
    for i in range(5):
        write(lazy, f"tests/test_pass{i}.py", "def test_ok():\n    assert True\n")
    eid = submit(node, src, tmp_path, {"instructor_tests": "file://" + str(inst)})
    js = wait_done(node, eid, timeout=120)
    assert js["status"] == "done", js
    res = by_project(get_results(node, eid))
    for pid in ("good", "lazy"):
        assert sorted(modules_of(res[pid])) == ["tests/test_grade.py",
                                                "tests/test_more.py"], res[pid]
    assert (res["good"]["passed"], res["good"]["failed"]) == (3, 0)
    assert (res["lazy"]["passed"], res["lazy"]["failed"]) == (2, 1)
    assert js["nota_final_per_project"] == {"good": approx(20.0),
                                            "lazy": approx(20 * 2 / 3)}


@pytest.mark.timeout(120)
def test_deaths_under_a_set_up_read_as_without(node, tmp_path):
    """With the supervisor between the sandbox and pytest, a signal, an
    os._exit and the time limit still read as they do without it, and the
    services are gone afterwards."""
    src = tmp_path / "src"
    p = str(src / "dying")
    write(p, "meshtest.toml", """
        [[services]]
        name = "idle"
        command = "sleep 1000"
        ready = { delay = 0 }
        """)
    write(p, "tests/test_kill.py", """
        import os
        import signal


        def test_ok():
            assert True


        def test_kill():
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    write(p, "tests/test_exit.py", "import os\n\n\ndef test_exit():\n    os._exit(7)\n")
    write(p, "tests/test_hang.py", "import time\n\n\ndef test_hang():\n    time.sleep(60)\n")
    eid = submit(node, src, tmp_path, {"module_timeout": "4"})
    js = wait_done(node, eid, timeout=100)
    assert js["status"] == "done", js
    mods = modules_of(by_project(get_results(node, eid))["dying"])
    k = mods["tests/test_kill.py"]
    assert (k["outcome"], k["passed"], k["failed"], k["signal"]) == ("crashed", 1, 1, 9)
    assert k["message"] == ("killed by signal 9 (SIGKILL) during "
                            "tests/test_kill.py::test_kill"), k
    e = mods["tests/test_exit.py"]
    assert (e["outcome"], e["failed"], e["exit_code"]) == ("crashed", 1, 7)
    assert e["message"] == ("interpreter died (exit status 7) during "
                            "tests/test_exit.py::test_exit"), e
    h = mods["tests/test_hang.py"]
    assert (h["outcome"], h["failed"]) == ("timeout", 1)
    assert h["message"] == "timed out after 4 s during tests/test_hang.py::test_hang", h
    assert stray_processes(node, "sleep 1000") == []
