"""ZIP submissions: exact counting on the corpus, project discovery, hostile
members, live counters."""

import os
import time

import pytest

import corpus
from conftest import get_results, stray_processes, wait_done
from expect import approx, check_results_doc, check_status_doc, outcomes_by_nodeid


@pytest.fixture(scope="module")
def corpus_zip(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    corpus.write_corpus(str(d / "src"))
    return corpus.zip_dir(str(d / "src"), str(d / "corpus.zip"))


@pytest.mark.asan
@pytest.mark.timeout(150)
def test_corpus_zip_exact_numbers(node, corpus_zip):
    eid = node.submit_zip(corpus_zip, corpus.CORPUS_MODULE_TIMEOUT)
    js = wait_done(node, eid, timeout=120)
    assert js["status"] == "done", js
    assert js["id"] == eid
    check_status_doc(js, corpus.CORPUS_PROJECTS, corpus.CORPUS_MODULES)
    # the literal totals, as derived by hand
    assert (js["passed"], js["failed"], js["skipped"]) == (21, 8, 1)
    assert js["executed"] == 11
    assert js["percent_passed"] == approx(72.41)
    assert js["percent_failed"] == approx(27.59)
    assert js["nota_final"] == approx(15.5556)
    assert js["nota_final_per_project"]["alpha"] == approx(13.3333)
    assert js["nota_final_per_project"]["beta"] == approx(13.3333)
    assert js["nota_final_per_project"]["gamma"] == approx(20.0)

    res = get_results(node, eid)
    assert res["status"] == "done"
    by_pid = check_results_doc(res, eid, corpus.CORPUS_PROJECTS,
                               corpus.CORPUS_MODULES, node.addr)
    alpha = {m["path"]: m for m in by_pid["alpha"]["modules"]}
    beta = {m["path"]: m for m in by_pid["beta"]["modules"]}
    fails = [t for t in alpha["tests/test_basic.py"]["tests"]
             if t["outcome"] == "failed"]
    assert "assert 1 == 2" in fails[0]["message"], fails[0]
    # the timed-out module really was cut at the limit, not run for 600 s,
    # and its whole process group is gone
    assert beta["tests/test_hang.py"]["duration"] < 30
    assert stray_processes(node, "test_hang") == []

    st, lst = node.get("/evaluation")
    assert st == 200 and lst["evaluations"] == [eid]

    st, stats = node.get("/stats")
    assert st == 200
    assert stats == {
        "all": {"failed": 8, "passed": 21, "projects": 3, "evaluations": 1},
        "nodes": [{"address": node.addr, "failed": 8, "passed": 21,
                   "projects": 3, "modules": 11, "evaluations": [eid]}],
    }
    st, net = node.get("/network")
    assert st == 200 and net == {node.addr: []}
    # every per-test outcome of the interesting modules, in one comparison
    got = {}
    want = {}
    for mods, path, expected in (
            (alpha, "tests/test_skip_xfail.py", corpus.ALPHA_SKIP_XFAIL_TESTS),
            (beta, "tests/test_hang.py", corpus.BETA_HANG_TESTS),
            (beta, "tests/test_exit.py", corpus.BETA_EXIT_TESTS),
            (alpha, "tests/test_teardown.py", {
                "tests/test_teardown.py::test_passes_then_teardown_errors":
                    "error",
                "tests/test_teardown.py::test_setup_error": "error"}),
            (alpha, "tests/test_basic.py", {
                "tests/test_basic.py::test_one": "passed",
                "tests/test_basic.py::test_two": "passed",
                "tests/test_basic.py::test_three": "passed",
                "tests/test_basic.py::test_fails": "failed"})):
        got.update(outcomes_by_nodeid(mods[path]))
        want.update(expected)
    assert got == want, "per-test outcomes"


@pytest.mark.timeout(60)
def test_zip_root_is_one_project(module_node, tmp_path):
    corpus.write_simple(str(tmp_path / "src"), "solo", passed=3, failed=1)
    z = corpus.zip_dir(str(tmp_path / "src" / "solo"), str(tmp_path / "solo.zip"))
    eid = module_node.submit_zip(z)
    js = wait_done(module_node, eid, timeout=50)
    assert js["status"] == "done", js
    assert len(js["projects"]) == 1, js["projects"]
    (pid, p), = js["projects"].items()
    assert isinstance(pid, str) and pid
    assert (p["passed"], p["failed"], p["skipped"]) == (3, 1, 0)
    assert p["grade"] == approx(15.0)
    assert js["nota_final"] == approx(15.0)
    assert js["executed"] == 1
    assert set(js["percent_passed_per_module"]) == {f"{pid}/tests/test_mod1.py"}


@pytest.mark.timeout(60)
def test_zip_bulk_download_wrapper(module_node, tmp_path):
    src = tmp_path / "src"
    corpus.write_simple(str(src), "p_one", passed=5, failed=0)
    corpus.write_simple(str(src), "p_two", passed=1, failed=1, modules=2)
    z = corpus.zip_dir(str(src), str(tmp_path / "bulk.zip"),
                       prefix="submissions/")
    # a macOS archive also carries __MACOSX/ and hidden folders: ignored
    corpus.zip_add_raw(z, "__MACOSX/submissions/._p_one", b"\x00\x05\x16\x07")
    corpus.zip_add_raw(z, "submissions/.hidden/tests/test_h.py",
                       b"def test_h():\n    assert False\n")
    eid = module_node.submit_zip(z)
    js = wait_done(module_node, eid, timeout=50)
    assert js["status"] == "done", js
    projects = {"p_one": {"passed": 5, "failed": 0, "skipped": 0, "grade": 20.0},
                "p_two": {"passed": 2, "failed": 2, "skipped": 0, "grade": 10.0}}
    modules = {"p_one": {"tests/test_mod1.py": (5, 0, 0, "finished")},
               "p_two": {"tests/test_mod1.py": (1, 1, 0, "finished"),
                         "tests/test_mod2.py": (1, 1, 0, "finished")}}
    assert set(js["projects"]) == {"p_one", "p_two"}
    check_status_doc(js, projects, modules)
    assert js["nota_final"] == approx(15.0)


@pytest.mark.timeout(60)
def test_zip_hostile_members(module_node, tmp_path):
    src = tmp_path / "src"
    p = src / "safe"
    (p / "tests").mkdir(parents=True)
    (p / "tests" / "test_safe.py").write_text(
        "import os\n\n\n"
        "def test_ok():\n    assert True\n\n\n"
        "def test_link_dropped():\n"
        "    assert not os.path.lexists('tests/passwd_link')\n"
        "    assert not os.path.lexists('passwd_link')\n")
    z = corpus.zip_dir(str(src), str(tmp_path / "evil.zip"))
    abs_target = tmp_path / "abs" / "evil.txt"
    corpus.zip_add_raw(z, "../evil.txt", b"escaped\n")
    corpus.zip_add_raw(z, "safe/../../evil.txt", b"escaped\n")
    corpus.zip_add_raw(z, str(abs_target), b"escaped\n")
    corpus.zip_add_symlink(z, "safe/tests/passwd_link", "/etc/passwd")
    corpus.zip_add_symlink(z, "safe/passwd_link", "../../../../etc/passwd")

    eid = module_node.submit_zip(z)
    js = wait_done(module_node, eid, timeout=50)
    assert js["status"] == "done", js
    assert set(js["projects"]) == {"safe"}
    p = js["projects"]["safe"]
    assert (p["passed"], p["failed"], p["skipped"]) == (2, 0, 0), p
    assert p["error"] is None
    assert p["grade"] == approx(20.0)
    res = get_results(module_node, eid)
    (proj,) = res["projects"]
    assert proj["project_id"] == "safe"
    assert isinstance(proj["warnings"], list) and proj["warnings"], proj
    assert all(isinstance(w, str) and w for w in proj["warnings"])

    assert not abs_target.exists()
    found = []
    for dirpath, _dirs, files in os.walk(tmp_path.parent):
        if "evil.txt" in files:
            found.append(os.path.join(dirpath, "evil.txt"))
    assert found == [], f"escaped ZIP member written: {found}"


@pytest.mark.timeout(60)
def test_live_counters_while_running(module_node, tmp_path):
    corpus.write_simple(str(tmp_path / "src"), "slowp", passed=1, failed=0,
                        sleep=2.0, modules=4)
    z = corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "slow.zip"))
    eid = module_node.submit_zip(z)
    st, js = module_node.get(f"/evaluation/{eid}")
    assert st == 200
    assert js["status"] == "running", js
    assert js["pending"] > 0, js
    assert js["executed"] + js["in_progress"] + js["pending"] == 4, js
    # a slot holds a batch of a project's modules for one session: in
    # progress are the modules the two slots hold, never all four before the
    # first finishes (the batch is at most each slot's share)
    assert js["in_progress"] <= 4
    e1 = js["elapsed_seconds"]
    time.sleep(1.0)
    st, js2 = module_node.get(f"/evaluation/{eid}")
    assert st == 200 and js2["status"] == "running", js2
    assert js2["elapsed_seconds"] >= e1 + 0.5, (e1, js2["elapsed_seconds"])
    assert js2["executed"] + js2["in_progress"] + js2["pending"] == 4, js2
    final = wait_done(module_node, eid, timeout=50)
    assert final["status"] == "done"
    assert (final["passed"], final["failed"], final["executed"]) == (4, 0, 4)
    assert final["nota_final"] == approx(20.0)
    # elapsed is frozen once done
    time.sleep(0.6)
    st, again = module_node.get(f"/evaluation/{eid}")
    assert again["elapsed_seconds"] == approx(final["elapsed_seconds"])


# pytest's own fixtures, each used by a test in two modules: the warm worker
# scans the plugin modules that define them once, and every session (and,
# with isolation "module", every module) must still find each of them, as an
# autouse fixture of a conftest and one that overrides a plugin's by name.
PLUGIN_FIXTURE_TESTS = '''
import logging
import warnings


def test_tmp_path(tmp_path, tmp_path_factory):
    (tmp_path / "f").write_text("x")
    assert (tmp_path / "f").read_text() == "x"
    assert tmp_path_factory.mktemp("d").is_dir()


def test_capsys(capsys):
    print("hello")
    assert capsys.readouterr().out == "hello\\n"


def test_monkeypatch(monkeypatch):
    monkeypatch.setenv("MESHTEST_PROBE_VAR", "1")
    import os
    assert os.environ["MESHTEST_PROBE_VAR"] == "1"


def test_caplog(caplog):
    logging.getLogger("p").warning("careful")
    assert "careful" in caplog.text


def test_recwarn(recwarn):
    warnings.warn("w", UserWarning)
    assert len(recwarn) == 1


def test_request_and_config(request, pytestconfig):
    assert request.node.name == "test_request_and_config"
    assert pytestconfig is request.config


def test_autouse_from_conftest(marked):
    assert marked == ["conftest"]


def test_overridden_by_name(capfd):
    assert capfd == "the project's own"


def test_fails_on_purpose(tmp_path):
    assert not tmp_path.is_dir()
'''

PLUGIN_FIXTURE_CONFTEST = '''
import pytest

SEEN = []


@pytest.fixture(autouse=True)
def _mark():
    SEEN.append("conftest")
    yield
    SEEN.clear()


@pytest.fixture
def marked():
    return list(SEEN)


@pytest.fixture
def capfd():
    return "the project's own"
'''


@pytest.mark.timeout(90)
def test_pytest_fixtures_in_every_module(module_node, tmp_path):
    src = tmp_path / "src" / "fixt"
    (src / "tests").mkdir(parents=True)
    (src / "conftest.py").write_text(PLUGIN_FIXTURE_CONFTEST)
    for m in ("test_one.py", "test_two.py", "test_three.py"):
        (src / "tests" / m).write_text(PLUGIN_FIXTURE_TESTS)
    z = corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "fixt.zip"))
    eid = module_node.submit_zip(z)
    js = wait_done(module_node, eid, timeout=80)
    assert (js["passed"], js["failed"], js["skipped"]) == (24, 3, 0), js
    res = get_results(module_node, eid)
    for m in res["projects"][0]["modules"]:
        outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in m["tests"]}
        assert outcomes == {**{n: "passed" for n in (
            "test_tmp_path", "test_capsys", "test_monkeypatch", "test_caplog",
            "test_recwarn", "test_request_and_config", "test_autouse_from_conftest",
            "test_overridden_by_name")}, "test_fails_on_purpose": "failed"}, m
