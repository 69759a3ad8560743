"""kill -9 and restart on the same port and data dir: accepted evaluations
still finish with exact numbers, each module counted once, state survives."""

import time

import pytest

import corpus
from conftest import wait_done
from expect import approx, check_status_doc

PROJECTS = {"rproj": {"passed": 10, "failed": 2, "skipped": 0,
                      "grade": 20 * 10 / 12}}
MODULES = {"rproj": {f"tests/test_m{m}.py":
                     (1 if m % 3 == 0 else 2, 1 if m % 3 == 0 else 0, 0,
                      "finished") for m in range(1, 7)}}


@pytest.fixture
def restart_zip(tmp_path):
    corpus.write_restart_project(str(tmp_path / "src"))
    return corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "r.zip"))


def check_exact(js):
    assert js["status"] == "done", js
    check_status_doc(js, PROJECTS, MODULES)
    assert (js["passed"], js["failed"], js["executed"]) == (10, 2, 6)
    assert js["nota_final"] == approx(16.6667)


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_kill9_right_after_accept(node, restart_zip):
    eid = node.submit_zip(restart_zip, module_timeout=20)
    node.kill9()
    node.start()
    js = wait_done(node, eid, timeout=90)
    check_exact(js)
    st, lst = node.get("/evaluation")
    assert st == 200 and lst["evaluations"] == [eid]
    st, stats = node.get("/stats")
    assert stats["all"] == {"failed": 2, "passed": 10, "projects": 1,
                            "evaluations": 1}


@pytest.mark.timeout(150)
def test_kill9_mid_run_then_clean_restart(node, restart_zip):
    # isolation "module", so that results are recorded one by one, as each
    # module's process ends (a shared session records its modules together
    # when it ends)
    eid = node.submit_zip(restart_zip, module_timeout=20, isolation="module")
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        st, js = node.get(f"/evaluation/{eid}")
        assert st == 200
        seen = js
        if 2 <= js["executed"] < 6:
            break
        assert js["status"] == "running", js
        time.sleep(0.05)
    else:
        raise AssertionError(f"never saw 2 to 5 modules executed: {seen}")
    executed_before = seen["executed"]
    node.kill9()
    node.start()
    st, js = node.get(f"/evaluation/{eid}")
    assert st == 200
    # results recorded before the kill are kept
    assert js["executed"] >= executed_before, (executed_before, js)
    js = wait_done(node, eid, timeout=90)
    check_exact(js)
    assert js["executed"] == 6

    st, lst_before = node.get("/evaluation")
    st, stats_before = node.get("/stats")
    assert lst_before["evaluations"] == [eid]
    assert stats_before == {
        "all": {"failed": 2, "passed": 10, "projects": 1, "evaluations": 1},
        "nodes": [{"address": node.addr, "failed": 2, "passed": 10,
                   "projects": 1, "modules": 6, "evaluations": [eid]}],
    }

    rc = node.stop()
    assert rc == 0, f"clean shutdown exit code {rc}"
    node.start()
    st, lst_after = node.get("/evaluation")
    assert st == 200 and lst_after == lst_before
    st, stats_after = node.get("/stats")
    assert st == 200 and stats_after == stats_before
    st, again = node.get(f"/evaluation/{eid}")
    check_exact(again)
    assert again["elapsed_seconds"] == approx(js["elapsed_seconds"])
