"""Requirements are best effort (issue 9, part 2).

A requirement a node cannot install is a warning on the project, with pip's
reason, and the tests run; lines that would choose the node's package
sources are dropped, never obeyed; the node that prepares a project pins
what installed, and every node runs the project against exactly that set.

PyPI is out of reach here, so packages come from wheels built in the test
(a wheel is a ZIP with its metadata) and served through the node's own pip
configuration: PIP_FIND_LINKS and PIP_NO_INDEX in the node's environment.
Every expected number is a literal."""

import base64
import hashlib
import http.server
import os
import re
import threading
import zipfile

import pytest

from conftest import Node, close_all, get_results, run_cli, wait_converged, wait_done
from test_real import by_project, modules_of, submit, write


def build_wheel(folder, name, version, files):
    """A pure-Python wheel of files {path: text} (what `pip wheel` would make)."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    dist = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\n"
                                   f"Version: {version}\n")
    members[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: meshtest-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    members[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, text in members.items():
            z.writestr(p, text)
    os.chmod(path, 0o644)
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def demo_wheel(folder, version):
    return build_wheel(folder, "meshdemo", version,
                       {"meshdemo/__init__.py": f"VERSION = {version!r}\n"})


class PipNode(Node):
    """A node whose own pip configuration serves a local folder of wheels."""

    def __init__(self, base_dir, wheels, **kw):
        super().__init__(base_dir, **kw)
        self.wheels = wheels

    def env_extra(self):
        return {"PIP_FIND_LINKS": self.wheels, "PIP_NO_INDEX": "1"}


@pytest.fixture
def pip_nodes(tmp_path):
    nodes = []

    def factory(wheels, name, extra_args=()):
        n = PipNode(tmp_path, wheels, name=name, extra_args=list(extra_args))
        nodes.append(n)
        n.start()
        return n

    yield factory
    close_all(nodes)


class Trap(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):
        Trap.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def trap():
    """An index that a requirement file names: nothing may ever ask it."""
    Trap.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


DEMO_TESTS = """
    def test_the_good_package_installed():
        import meshdemo
        assert meshdemo.VERSION == "1.0"


    def test_plain():
        assert 1 + 1 == 2


    def test_needs_what_could_not_install():
        import mockselector  # noqa: F401
    """


def messy_requirements(port):
    return (f"mockselector\n"
            f"--index-url http://127.0.0.1:{port}/simple\n"
            f"--extra-index-url=http://127.0.0.1:{port}/extra\n"
            f"-r ../../etc/x\n"
            f"pkg-resources==0.0.0\n"
            f"meshdemo==1.0 \\\n"
            f"    ; python_version >= '3'\n"
            f"git+http://127.0.0.1:{port}/repo.git\n"
            f"-e .\n")


def expected_warnings(port):
    return [
        f"requirements.txt:2: dropped '--index-url http://127.0.0.1:{port}/simple': a"
        " project's requirements never choose where the node installs from or what it"
        " trusts",
        f"requirements.txt:3: dropped '--extra-index-url=http://127.0.0.1:{port}/extra':"
        " a project's requirements never choose where the node installs from or what it"
        " trusts",
        "requirements.txt:4: dropped the include of '../../etc/x': '..' leaves the folder"
        " of the file that includes it",
        f"requirements.txt:8: dropped 'git+http://127.0.0.1:{port}/repo.git': a VCS"
        " requirement would choose where the node installs from",
        "requirements.txt:9: skipped the editable requirement '.': environments are"
        " shared, so a project's own code never goes into one (the project's root and"
        " src/ are on the import path already)",
        "requirements: 'mockselector' was not installed: No matching distribution found"
        " for mockselector",
        "requirements: 'pkg-resources==0.0.0' was not installed: No matching distribution"
        " found for pkg-resources==0.0.0",
    ]


@pytest.mark.timeout(300)
def test_uninstallable_lines_are_warnings_and_the_tests_run(pip_nodes, tmp_path, trap):
    wheels = str(tmp_path / "wheels")
    demo_wheel(wheels, "1.0")
    node = pip_nodes(wheels, "n")
    src = tmp_path / "src"
    for name in ("alice", "bob"):
        write(src / name, "requirements.txt", messy_requirements(trap))
        write(src / name, "tests/test_demo.py", DEMO_TESTS)
    eid = submit(node, src, tmp_path, {})
    js = wait_done(node, eid, timeout=240)
    assert js["status"] == "done", js
    assert (js["passed"], js["failed"], js["skipped"]) == (4, 2, 0), js
    want = expected_warnings(trap)
    for name in ("alice", "bob"):
        p = js["projects"][name]
        assert (p["error"], p["passed"], p["failed"], p["grade"]) == (None, 2, 1,
                                                                         pytest.approx(13.33, abs=0.01)), p
        assert p["warnings"] == want, p["warnings"]
    res = by_project(get_results(node, eid))
    for name in ("alice", "bob"):
        assert res[name]["warnings"] == want
        tests = {t["nodeid"].split("::")[-1]: t["outcome"]
                 for t in modules_of(res[name])["tests/test_demo.py"]["tests"]}
        assert tests == {"test_the_good_package_installed": "passed", "test_plain": "passed",
                         "test_needs_what_could_not_install": "failed"}, tests
    # the two projects share one requirement set: resolved once, one environment
    log = node.log_text()
    assert len(re.findall(r"runner: resolving requirement set", log)) == 1, log
    venvs = os.path.join(node.data_dir, "venvs")
    resolved = [f for f in os.listdir(venvs) if f.endswith(".resolved")]
    assert len(resolved) == 1, os.listdir(venvs)
    # nothing ever asked the index the requirement file named
    assert Trap.hits == []
    # the CLI table says it too, in full
    out = run_cli("status", eid, "--node", node.addr)
    assert out.returncode == 1, out
    for w in want:
        assert f"warning: alice: {w}\n" in out.stdout, out.stdout
    # a second evaluation of the same set: remembered with its warnings, not rebuilt
    eid2 = submit(node, src, tmp_path, {}, name="again.zip")
    js2 = wait_done(node, eid2, timeout=120)
    assert (js2["passed"], js2["failed"]) == (4, 2), js2
    assert js2["projects"]["alice"]["warnings"] == want
    assert len(re.findall(r"runner: resolving requirement set", node.log_text())) == 1


@pytest.mark.timeout(300)
def test_every_node_runs_the_pinned_set(pip_nodes, tmp_path):
    """The preparing node has meshdemo 1.0 only; the other node's sources
    also offer 2.0. `meshdemo>=1.0` resolves to 1.0 where the project is
    prepared, and every module, wherever it runs, sees 1.0. A third node
    whose sources have no meshdemo at all reports an infrastructure error
    for what it runs, never a different set."""
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    demo_wheel(old, "1.0")
    demo_wheel(new, "1.0")
    demo_wheel(new, "2.0")
    a = pip_nodes(old, "a")
    b = pip_nodes(new, "b", ["--seeds", a.addr])
    wait_converged([a, b], timeout=20)
    src = tmp_path / "src"
    body = """
        import time

        import meshdemo


        def test_version():
            time.sleep(0.4)
            assert meshdemo.VERSION == "1.0"
        """
    write(src / "pinned", "requirements.txt", "meshdemo>=1.0\n")
    for i in range(12):
        write(src / "pinned", f"tests/test_m{i:02d}.py", body)
    eid = submit(a, src, tmp_path, {"isolation": "module"})
    js = wait_done(a, eid, timeout=240)
    assert js["status"] == "done", js
    assert (js["passed"], js["failed"]) == (12, 0), js
    res = by_project(get_results(a, eid))["pinned"]
    ran_on = {m["node"] for m in res["modules"]}
    assert b.addr in ran_on, ran_on
    assert res["warnings"] == []
    assert "runner: resolving requirement set" not in b.log_text()


@pytest.mark.timeout(300)
def test_a_node_that_cannot_install_the_pins_reports_infrastructure_errors(pip_nodes,
                                                                          tmp_path):
    have, empty = str(tmp_path / "have"), str(tmp_path / "empty")
    demo_wheel(have, "1.0")
    os.makedirs(empty)
    os.chmod(empty, 0o755)
    a = pip_nodes(have, "a", ["--slots", "1"])
    b = pip_nodes(empty, "b", ["--seeds", a.addr])
    wait_converged([a, b], timeout=20)
    src = tmp_path / "src"
    write(src / "pinned", "requirements.txt", "meshdemo\n")
    for i in range(8):
        write(src / "pinned", f"tests/test_m{i}.py", """
            import time

            import meshdemo


            def test_version():
                time.sleep(0.5)
                assert meshdemo.VERSION == "1.0"
            """)
    eid = submit(a, src, tmp_path, {"isolation": "module"})
    js = wait_done(a, eid, timeout=240)
    assert js["status"] == "done", js
    mods = by_project(get_results(a, eid))["pinned"]["modules"]
    on_b = [m for m in mods if m["node"] == b.addr]
    on_a = [m for m in mods if m["node"] == a.addr]
    assert on_b and on_a, [(m["path"], m["node"]) for m in mods]
    for m in on_a:
        assert (m["outcome"], m["passed"], m["failed"]) == ("finished", 1, 0), m
    for m in on_b:
        assert m["outcome"] == "infra_error", m
        assert m["tests"][0]["message"].startswith(
            "cannot install the project's packages on this node: No matching"
            " distribution found for meshdemo==1.0"), m["tests"][0]
    assert (js["passed"], js["failed"]) == (len(on_a), len(on_b)), js


@pytest.mark.timeout(240)
def test_an_environment_without_pytest_is_the_projects_error(pip_nodes, tmp_path):
    """A requirement that installs a `pytest` that cannot be imported: no
    environment can run the tests, which is the project's error; the other
    project goes on."""
    wheels = str(tmp_path / "wheels")
    build_wheel(wheels, "pytest", "99.0", {"pytest/__init__.py": "raise ImportError('no')\n"})
    node = pip_nodes(wheels, "n")
    src = tmp_path / "src"
    write(src / "broken", "requirements.txt", "pytest==99.0\n")
    write(src / "broken", "tests/test_x.py", "def test_x():\n    pass\n")
    write(src / "fine", "tests/test_x.py", "def test_x():\n    pass\n")
    eid = submit(node, src, tmp_path, {})
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    broken, fine = js["projects"]["broken"], js["projects"]["fine"]
    assert broken["error"].startswith(
        "pytest is not available in the project's environment: "), broken
    assert (broken["passed"], broken["failed"], broken["grade"]) == (0, 0, 0.0), broken
    assert (fine["error"], fine["passed"], fine["grade"]) == (None, 1, 20.0), fine


@pytest.mark.timeout(240)
def test_hashes_and_includes_are_honoured(pip_nodes, tmp_path):
    """A wrong --hash keeps its package out (a warning); a right one lets it
    in; an include inside the project is followed and is part of the set."""
    wheels = str(tmp_path / "wheels")
    good = demo_wheel(wheels, "1.0")
    build_wheel(wheels, "otherdemo", "3.0", {"otherdemo/__init__.py": "X = 3\n"})
    node = pip_nodes(wheels, "n")
    src = tmp_path / "src"
    write(src / "right", "requirements.txt", "-r req/base.txt\n")
    write(src / "right", "req/base.txt", f"meshdemo==1.0 --hash={good}\n")
    write(src / "wrong", "requirements.txt", "-r req/base.txt\n")
    write(src / "wrong", "req/base.txt",
          "meshdemo==1.0 --hash=sha256:" + "0" * 64 + "\n")
    for p in ("right", "wrong"):
        write(src / p, "tests/test_x.py", """
            def test_demo():
                import meshdemo
                assert meshdemo.VERSION == "1.0"
            """)
    eid = submit(node, src, tmp_path, {})
    js = wait_done(node, eid, timeout=200)
    assert js["status"] == "done", js
    right, wrong = js["projects"]["right"], js["projects"]["wrong"]
    assert (right["passed"], right["failed"], right["warnings"]) == (1, 0, []), right
    assert (wrong["passed"], wrong["failed"]) == (0, 1), wrong
    assert len(wrong["warnings"]) == 1, wrong
    assert wrong["warnings"][0].startswith(
        "requirements: 'meshdemo==1.0' was not installed: "), wrong
