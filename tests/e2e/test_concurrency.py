"""Three evaluations submitted at once: all finish with exact numbers and
the node never runs more at once than it has slots: never more projects (a
slot runs one project's batch at a time, in either isolation)."""

import threading
import time

import pytest

import corpus
from conftest import SLOTS, wait_done
from expect import approx, check_status_doc

# evaluation i: project "c<i>" with i+1 modules of (2 passed, i failed),
# every test sleeping 0.3 s
SPECS = {0: (2, 0), 1: (2, 1), 2: (2, 2)}


def expected(i):
    p, f = SPECS[i]
    mods = i + 1
    projects = {f"c{i}": {"passed": p * mods, "failed": f * mods,
                          "skipped": 0, "grade": 20 * p / (p + f)}}
    modules = {f"c{i}": {f"tests/test_mod{m}.py": (p, f, 0, "finished")
                         for m in range(1, mods + 1)}}
    return projects, modules


@pytest.mark.timeout(120)
def test_three_concurrent_evaluations(node, tmp_path):
    zips = {}
    for i, (p, f) in SPECS.items():
        src = tmp_path / f"src{i}"
        corpus.write_simple(str(src), f"c{i}", passed=p, failed=f,
                            sleep=0.3, modules=i + 1)
        zips[i] = corpus.zip_dir(str(src), str(tmp_path / f"c{i}.zip"))

    ids, errors = {}, []
    barrier = threading.Barrier(3)

    def submit(i):
        try:
            barrier.wait(5)
            ids[i] = node.submit_zip(zips[i], module_timeout=20)
        except BaseException as e:  # reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=submit, args=(i,)) for i in SPECS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(set(ids.values())) == 3

    # sample the running modules across the three evaluations (one project
    # each: a slot runs one project's batch at a time, so at most SLOTS of
    # them have modules in progress)
    max_running, samples = 0, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        docs = [node.get(f"/evaluation/{ids[i]}")[1] for i in SPECS]
        running = sum(d["in_progress"] for d in docs)
        projects = sum(1 for d in docs if d["in_progress"] > 0)
        samples += 1
        assert projects <= SLOTS, (projects, docs)
        for d in docs:
            assert d["in_progress"] >= 0 and d["pending"] >= 0
        max_running = max(max_running, running)
        if all(d["status"] != "running" for d in docs):
            break
        time.sleep(0.1)
    assert samples > 3
    assert max_running >= 1, "never saw a module in progress"

    for i in SPECS:
        js = wait_done(node, ids[i], timeout=30)
        assert js["status"] == "done", js
        projects, modules = expected(i)
        check_status_doc(js, projects, modules)
    # literal totals: c0 2/0, c1 4/2, c2 6/6
    docs = {i: node.get(f"/evaluation/{ids[i]}")[1] for i in SPECS}
    assert [(docs[i]["passed"], docs[i]["failed"]) for i in SPECS] == \
        [(2, 0), (4, 2), (6, 6)]
    assert docs[2]["nota_final"] == approx(10.0)

    st, lst = node.get("/evaluation")
    assert st == 200 and sorted(lst["evaluations"]) == sorted(ids.values())
    st, stats = node.get("/stats")
    assert stats["all"] == {"failed": 8, "passed": 12, "projects": 3,
                            "evaluations": 3}
    (n,) = stats["nodes"]
    assert n["address"] == node.addr and n["modules"] == 6
    assert sorted(n["evaluations"]) == sorted(ids.values())
