"""Shared work, takeover and exactly-once results, end to end.

A generated corpus (3 projects x 6 modules; every module holds one test that
sleeps, so a run lasts long enough to kill things in the middle of it; some
tests fail, skip or xfail so the numbers are not trivial) runs on 3 nodes.
Every scenario ends with exactly the expected results on EVERY surviving
node: status done, exact passed/failed/skipped per project and per module,
executed == 18 (each module counted once), in_progress == pending == 0, the
same GET /evaluation/<id> and .../results on every node, and a GET /stats
whose per-node entries match the "node" of every module in the results.

Loopback (3 nodes seeded with the first):
  1. plain run: every node executed modules;
  2. kill -9 of a worker while it runs a module (then restarted: it agrees);
  3. kill -9 of the accepting node mid-run (then restarted: it agrees);
  4. kill -9 of the accepting node right after its 201;
  5. a fresh node joins mid-run and gets work;
  6. two evaluations submitted to two nodes at the same time;
  7. replays of a finished evaluation's sync document with a different
     outcome (same attempt and node, an older attempt, a higher address)
     change nothing on any node.
Network namespaces (tests/e2e/netns.py):
  8. one node's link is cut mid-run and restored 8 s later: exact results
     on all three after the heal.
"""

import copy
import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import (Node, close_all, encode_multipart, eval_paths,
                      loop_nodes, running, wait_converged, wait_for)
from expect import approx, check_status_doc
from netns import ns_cluster

MODULE_TIMEOUT = 60          # generous: a module takes about 1.5 s
SLEEP = 1.0                  # seconds the slow test of every module sleeps


# --------------------------------------------------------------------------
# corpus: 3 projects x 6 modules, literal expected numbers
# --------------------------------------------------------------------------

# Each module is a list of test kinds:
#   slow  passes after sleeping SLEEP s      pass   passes
#   fail  fails (assert)                     skip   skipped
#   xfail expected failure (counts passed)   error  error in fixture set-up
WORK_SPEC = {
    "north": [("slow", "pass"), ("slow", "fail"), ("slow", "pass", "pass"),
              ("slow", "skip"), ("slow", "xfail"),
              ("slow", "fail", "error")],
    "south": [("slow",), ("slow", "pass", "pass", "fail"),
              ("slow", "skip", "skip"), ("slow", "fail"), ("slow", "pass"),
              ("slow", "error")],
    "east": [("slow", "pass"), ("slow", "pass"), ("slow", "fail", "fail",
                                                   "fail"),
             ("slow", "pass"), ("slow", "pass"), ("slow", "xfail", "skip")],
}
WORK_PREFIX = {"north": "n", "south": "s", "east": "e"}

# (passed, failed, skipped, outcome) per module, derived by hand
WORK_MODULES = {
    "north": {
        "tests/test_n1.py": (2, 0, 0, "finished"),
        "tests/test_n2.py": (1, 1, 0, "finished"),
        "tests/test_n3.py": (3, 0, 0, "finished"),
        "tests/test_n4.py": (1, 0, 1, "finished"),
        "tests/test_n5.py": (2, 0, 0, "finished"),
        "tests/test_n6.py": (1, 2, 0, "finished"),
    },
    "south": {
        "tests/test_s1.py": (1, 0, 0, "finished"),
        "tests/test_s2.py": (3, 1, 0, "finished"),
        "tests/test_s3.py": (1, 0, 2, "finished"),
        "tests/test_s4.py": (1, 1, 0, "finished"),
        "tests/test_s5.py": (2, 0, 0, "finished"),
        "tests/test_s6.py": (1, 1, 0, "finished"),
    },
    "east": {
        "tests/test_e1.py": (2, 0, 0, "finished"),
        "tests/test_e2.py": (2, 0, 0, "finished"),
        "tests/test_e3.py": (1, 3, 0, "finished"),
        "tests/test_e4.py": (2, 0, 0, "finished"),
        "tests/test_e5.py": (2, 0, 0, "finished"),
        "tests/test_e6.py": (2, 0, 1, "finished"),
    },
}
WORK_PROJECTS = {
    "north": {"passed": 10, "failed": 3, "skipped": 1, "grade": 20 * 10 / 13},
    "south": {"passed": 9, "failed": 3, "skipped": 2, "grade": 20 * 9 / 12},
    "east": {"passed": 11, "failed": 3, "skipped": 1, "grade": 20 * 11 / 14},
}
WORK_TOTAL = {"passed": 30, "failed": 9, "skipped": 4, "modules": 18}

_KIND_COUNTS = {"slow": (1, 0, 0), "pass": (1, 0, 0), "fail": (0, 1, 0),
                "skip": (0, 0, 1), "xfail": (1, 0, 0), "error": (0, 1, 0)}


def _spec_counts(kinds):
    return tuple(sum(_KIND_COUNTS[k][i] for k in kinds) for i in range(3))


# the hand-derived tables and the generator must agree
for _pid, _mods in WORK_SPEC.items():
    for _m, _kinds in enumerate(_mods, 1):
        _path = f"tests/test_{WORK_PREFIX[_pid]}{_m}.py"
        assert _spec_counts(_kinds) == WORK_MODULES[_pid][_path][:3], _path
    _p = WORK_PROJECTS[_pid]
    assert tuple(sum(v[i] for v in WORK_MODULES[_pid].values())
                 for i in range(3)) == (_p["passed"], _p["failed"],
                                        _p["skipped"]), _pid
assert sum(p["passed"] for p in WORK_PROJECTS.values()) == 30
assert sum(p["failed"] for p in WORK_PROJECTS.values()) == 9
assert sum(p["skipped"] for p in WORK_PROJECTS.values()) == 4
assert sum(len(m) for m in WORK_MODULES.values()) == 18


def _module_source(kinds, sleep):
    lines = ["import time", "", "import pytest", "", ""]
    for i, k in enumerate(kinds):
        if k == "error":
            lines += ["@pytest.fixture", f"def broken_{i}():",
                      "    raise RuntimeError('set-up boom')", "", ""]
            lines += [f"def test_{i}_error(broken_{i}):", "    assert True"]
        elif k == "xfail":
            lines += ["@pytest.mark.xfail(reason='known bug', strict=True)",
                      f"def test_{i}_xfail():", "    assert 1 == 2"]
        elif k == "skip":
            lines += [f"def test_{i}_skip():", "    pytest.skip('not here')"]
        elif k == "slow":
            lines += [f"def test_{i}_slow():", f"    time.sleep({sleep})",
                      "    assert True"]
        elif k == "pass":
            lines += [f"def test_{i}_pass():", f"    assert {i} + 1 == {i + 1}"]
        else:
            lines += [f"def test_{i}_fail():",
                      f"    assert {i} == {i + 1}, 'planted failure'"]
        lines += ["", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_work_corpus(root, suffix="", sleep=SLEEP):
    """north, south and east (each name + suffix) side by side in root."""
    for pid, mods in WORK_SPEC.items():
        tdir = os.path.join(root, pid + suffix, "tests")
        os.makedirs(tdir, exist_ok=True)
        for m, kinds in enumerate(mods, 1):
            with open(os.path.join(tdir, f"test_{WORK_PREFIX[pid]}{m}.py"),
                      "w", encoding="utf-8") as f:
                f.write(_module_source(kinds, sleep))
    return root


def work_expect(suffix=""):
    """(projects, modules) tables for a corpus written with suffix."""
    return ({pid + suffix: dict(p) for pid, p in WORK_PROJECTS.items()},
            {pid + suffix: dict(m) for pid, m in WORK_MODULES.items()})


def make_work_zip(base, suffix="", sleep=SLEEP):
    import corpus
    src = os.path.join(str(base), f"work-src{suffix}-{sleep}")
    write_work_corpus(src, suffix, sleep)
    return corpus.zip_dir(src, os.path.join(str(base),
                                             f"work{suffix}-{sleep}.zip"))


# --------------------------------------------------------------------------
# cluster helpers
# --------------------------------------------------------------------------

def get(node, path, timeout=10):
    """(status, parsed JSON) or (None, None) when the node does not answer."""
    try:
        st, js, _ = node.request("GET", path, timeout=timeout)
        return st, js
    except OSError:
        return None, None


def submit(node, zip_path, token=None, isolation=None):
    """POST the ZIP (module_timeout MODULE_TIMEOUT, and isolation when
    given); returns (id, monotonic time of the 201)."""
    with open(zip_path, "rb") as f:
        data = f.read()
    fields = {"module_timeout": str(MODULE_TIMEOUT)}
    if isolation is not None:
        fields["isolation"] = isolation
    body, ctype = encode_multipart(
        fields, {"file": (os.path.basename(zip_path), data, "application/zip")})
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    st, js, raw = node.request("POST", "/evaluation", body, headers, 60)
    t201 = time.monotonic()
    assert st == 201, f"POST /evaluation on {node.addr} -> {st} {raw[:300]!r}"
    return js["id"], t201


def status_of(node, eid):
    st, js = get(node, f"/evaluation/{eid}")
    return js if st == 200 else None


def wait_status(node, eid, pred, timeout, what):
    last = [None]

    def ok():
        last[0] = status_of(node, eid)
        return last[0] is not None and pred(last[0])

    wait_for(ok, timeout, what,
             explain=lambda: (f"{what} on {node.addr} within {timeout} s; "
                              f"last answer: {last[0]}"))
    return last[0]


def wait_done_everywhere(nodes, eid, timeout):
    t0 = time.monotonic()
    for n in nodes:
        wait_status(n, eid, lambda d: d["status"] != "running",
                    max(1.0, timeout - (time.monotonic() - t0)),
                    f"evaluation {eid} finished")


def wait_identical(nodes, paths, timeout, what):
    """Poll until every path answers 200 and the same document on every
    node; returns {path: document}."""
    t0 = time.monotonic()
    while True:
        diffs = []
        docs = {}
        for p in paths:
            got = [get(n, p) for n in nodes]
            for n, (st, _) in zip(nodes, got):
                if st != 200:
                    diffs.append(f"{p} on {n.addr}: status {st}")
            if not diffs and any(js != got[0][1] for _, js in got[1:]):
                diffs.append(f"{p} differs:\n" + "\n".join(
                    f"  {n.addr}: {json.dumps(js, sort_keys=True)[:1500]}"
                    for n, (_, js) in zip(nodes, got)))
            docs[p] = got[0][1]
        if not diffs:
            return docs
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not identical on "
                                 f"{[n.addr for n in nodes]} within "
                                 f"{timeout} s:\n" + "\n".join(diffs))
        time.sleep(0.25)


def check_results(res, eid, projects, modules, nodes_allowed):
    """Exact per-module counts/outcomes; each module once, run by one of
    nodes_allowed. Returns {module key: module entry}."""
    assert res["id"] == eid
    assert res["status"] == "done", res.get("status")
    got = {p["project_id"]: {m.get("path"): (m.get("passed"), m.get("failed"),
                                            m.get("skipped"), m.get("outcome"))
                             for m in p.get("modules", [])}
           for p in res["projects"]}
    assert got == modules, "per-module (passed, failed, skipped, outcome)"
    by_key = {}
    for p in res["projects"]:
        exp = projects[p["project_id"]]
        assert (p["passed"], p["failed"], p["skipped"]) == (
            exp["passed"], exp["failed"], exp["skipped"]), p["project_id"]
        assert p["grade"] == approx(exp["grade"]), p["project_id"]
        assert p["error"] is None, (p["project_id"], p["error"])
        assert len(p["modules"]) == len(modules[p["project_id"]])
        for m in p["modules"]:
            assert m["module"] not in by_key, f"{m['module']} twice"
            by_key[m["module"]] = m
            assert m["node"] in nodes_allowed, (m["module"], m["node"])
            assert isinstance(m["attempt"], int) and m["attempt"] >= 1
            assert len(m["tests"]) == sum(modules[p["project_id"]][
                m["path"]][:3]), m["module"]
    return by_key


def node_stats_expected(addr, results_docs):
    """One /stats "nodes" entry, from the "node" of every module in the
    results documents and the evaluations addr accepted."""
    passed = failed = modules = 0
    sources = set()
    evals = []
    for res in sorted(results_docs, key=lambda r: (r["created_at"], r["id"])):
        took_part = res["accepted_by"] == addr
        for p in res["projects"]:
            for m in p["modules"]:
                if m.get("node") != addr or "outcome" not in m:
                    continue
                took_part = True
                passed += m["passed"]
                failed += m["failed"]
                modules += 1
                sources.add(p["source"])
        if took_part:
            evals.append(res["id"])
    return {"address": addr, "failed": failed, "passed": passed,
            "projects": len(sources), "modules": modules,
            "evaluations": evals}


def check_stats(stats, live_addrs, results_docs):
    """/stats against every evaluation's results document: "all" is the
    sum over all results, each live node's entry is what its modules give,
    and the modules of all nodes that ever ran (dead ones included) add up
    to the number of modules."""
    ran_on = {m["node"] for r in results_docs for p in r["projects"]
              for m in p["modules"]}
    expected = {a: node_stats_expected(a, results_docs)
                for a in ran_on | set(live_addrs)}
    total_modules = sum(len(p["modules"]) for r in results_docs
                        for p in r["projects"])
    assert sum(e["modules"] for e in expected.values()) == total_modules
    assert stats["all"] == {
        "failed": sum(p["failed"] for r in results_docs
                      for p in r["projects"]),
        "passed": sum(p["passed"] for r in results_docs
                      for p in r["projects"]),
        "projects": len({p["source"] for r in results_docs
                         for p in r["projects"]}),
        "evaluations": len(results_docs)}
    assert stats["all"]["passed"] == sum(e["passed"]
                                         for e in expected.values())
    assert stats["all"]["failed"] == sum(e["failed"]
                                         for e in expected.values())
    got = {x["address"]: x for x in stats["nodes"]}
    assert sorted(got) == sorted(live_addrs), "nodes listed in /stats"
    for a in live_addrs:
        assert got[a] == expected[a], a
    return expected


def check_everywhere(nodes, runs, all_addrs, timeout=15.0):
    """runs: [(eid, acceptor address, projects, modules)], every evaluation
    the network holds. Waits until /evaluation, /stats and each
    evaluation's documents are identical on every node of nodes, then checks
    them exactly. Returns ({eid: results doc}, expected /stats entries)."""
    eids = [r[0] for r in runs]
    docs = wait_identical(nodes, eval_paths(eids), timeout,
                          "documents after done")
    assert sorted(docs["/evaluation"]["evaluations"]) == sorted(eids)
    results = {}
    for eid, acceptor, projects, modules in runs:
        doc = docs[f"/evaluation/{eid}"]
        assert doc["status"] == "done", doc
        assert doc["id"] == eid
        assert doc["accepted_by"] == acceptor
        check_status_doc(doc, projects, modules)
        assert doc["executed"] == sum(len(m) for m in modules.values())
        res = docs[f"/evaluation/{eid}/results"]
        check_results(res, eid, projects, modules, set(all_addrs))
        results[eid] = res
    expected = check_stats(docs["/stats"], [n.addr for n in nodes],
                           list(results.values()))
    return results, expected


def ran_on(res):
    """{node address: modules it ran} of one results document."""
    out = {}
    for p in res["projects"]:
        for m in p["modules"]:
            out[m["node"]] = out.get(m["node"], 0) + 1
    return out


def check_rerun(res, held, survivors, later=True):
    """The modules of held (GET /task/running entries of a node killed
    while running them) have a result from a survivor, of a later attempt
    (later=False: of the same attempt or later: when the dead node was the
    coordinator, its claim may have died with it before it replicated, and
    the successor hands the module out under the same attempt number)."""
    mods = {m["module"]: m for p in res["projects"] for m in p["modules"]}
    pids = [p["project_id"] for p in res["projects"]]
    assert held
    for h in held:
        m = mods[f"{pids[h['project_idx']]}/{h['path']}"]
        assert m["node"] in {n.addr for n in survivors}, (m["module"],
                                                         m["node"])
        if later:
            assert m["attempt"] > h["attempt"], (m["module"], m["attempt"], h)
        else:
            assert m["attempt"] >= h["attempt"], (m["module"], m["attempt"],
                                                  h)


def running_on(node):
    """What node's slots run now (GET /task/running), or None."""
    st, js = get(node, "/task/running", timeout=3)
    if st != 200 or not isinstance(js, dict):
        return None
    return js.get("running")


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work_zip(tmp_path_factory):
    return make_work_zip(tmp_path_factory.mktemp("work-corpus"))


@pytest.fixture(scope="module")
def work_zip2(tmp_path_factory):
    return make_work_zip(tmp_path_factory.mktemp("work-corpus2"), "2")


@pytest.fixture(scope="module")
def shared3(tmp_path_factory):
    """3 loopback nodes shared by the scenarios that kill nothing; also
    remembers every evaluation submitted to it (for the /stats checks)."""
    nodes = loop_nodes(tmp_path_factory.mktemp("work-shared"), 3, "w")
    with running(nodes):
        yield {"nodes": nodes, "runs": []}


@pytest.fixture
def fresh3(tmp_path):
    """3 fresh loopback nodes for a scenario that kills one."""
    with running(loop_nodes(tmp_path, 3, "k")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def plain_run(shared3, work_zip):
    """The corpus submitted to the first shared node and finished."""
    nodes = shared3["nodes"]
    eid, _ = submit(nodes[0], work_zip)
    wait_done_everywhere(nodes, eid, 90)
    projects, modules = work_expect()
    shared3["runs"].append((eid, nodes[0].addr, projects, modules))
    return eid


# --------------------------------------------------------------------------
# loopback scenarios
# --------------------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.timeout(120)
def test_plain_run_every_node_executes_modules(shared3, plain_run):
    nodes = shared3["nodes"]
    addrs = [n.addr for n in nodes]
    results, expected = check_everywhere(nodes, shared3["runs"], addrs)
    spread = ran_on(results[plain_run])
    assert sum(spread.values()) == 18
    for a in addrs:
        assert spread.get(a, 0) > 0, f"{a} ran no module: {spread}"
        assert expected[a]["modules"] > 0
    # nothing was run twice: every module's first attempt is its result
    for p in results[plain_run]["projects"]:
        for m in p["modules"]:
            assert m["attempt"] == 1, (m["module"], m["attempt"], m["node"])


@pytest.mark.timeout(120)
def test_two_evaluations_on_two_nodes_at_once(shared3, plain_run, work_zip,
                                              work_zip2):
    nodes = shared3["nodes"]
    out = {}
    barrier = threading.Barrier(2)

    def go(i, z):
        barrier.wait()
        out[i] = submit(nodes[i], z)[0]

    ts = [threading.Thread(target=go, args=(0, work_zip)),
          threading.Thread(target=go, args=(1, work_zip2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(70)
    assert set(out) == {0, 1}, "a submission did not answer"
    for i in (0, 1):
        wait_done_everywhere(nodes, out[i], 120)
    p1, m1 = work_expect()
    p2, m2 = work_expect("2")
    shared3["runs"].append((out[0], nodes[0].addr, p1, m1))
    shared3["runs"].append((out[1], nodes[1].addr, p2, m2))
    results, _ = check_everywhere(nodes, shared3["runs"],
                                  [n.addr for n in nodes])
    # both ran on more than one node
    for i in (0, 1):
        assert len(ran_on(results[out[i]])) >= 2, ran_on(results[out[i]])


def _replay_everywhere(nodes, eid, doc):
    for n in nodes:
        st, js = n.post_json(f"/evaluation/sync_result/{eid}", doc)
        assert st == 200, (n.addr, st, js)
        assert js == {"changed": 0}, (n.addr, js)


@pytest.mark.timeout(120)
def test_replayed_result_with_another_outcome_changes_nothing(shared3,
                                                              plain_run):
    nodes = shared3["nodes"]
    eid = plain_run
    # every evaluation the shared cluster holds is settled: compare it all
    eids = [r[0] for r in shared3["runs"]]
    paths = eval_paths(eids) + [f"/sync/evaluation/{eid}", "/sync/digests"]
    before = wait_identical(nodes, paths, 15, "before the replays")
    sync = before[f"/sync/evaluation/{eid}"]
    assert len(sync["results"]) == 18
    # a module with passing tests, so that turning them into failures shows
    victim = next(r for r in sync["results"] if r["body"]["passed"] > 0)
    body = victim["body"]
    total = body["passed"] + body["failed"]
    key = (victim["project_idx"], victim["path"])

    def tampered(attempt_delta=0, node=None):
        doc = copy.deepcopy(sync)
        r = next(x for x in doc["results"]
                 if (x["project_idx"], x["path"]) == key)
        r["attempt"] += attempt_delta
        if node is not None:
            r["node"] = node
        b = r["body"]
        b["passed"], b["failed"] = 0, total
        b["outcome"] = "crashed"
        b["attempt"], b["node"] = r["attempt"], r["node"]
        for t in b.get("tests", []):
            t["outcome"] = "failed"
        b["finished_at"] = r["finished_at"] = r["finished_at"] + 100
        doc["last_event_at"] = sync["last_event_at"]
        return doc

    # 1. the same (attempt, node) with another outcome: a replay
    _replay_everywhere(nodes, eid, tampered())
    # 2. an older attempt (a late result of an attempt given up)
    _replay_everywhere(nodes, eid, tampered(attempt_delta=-1))
    # 3. the same attempt from a higher address (the lower one wins)
    _replay_everywhere(nodes, eid, tampered(node="zzz.invalid:1"))
    # 4. the whole document again, untouched
    _replay_everywhere(nodes, eid, sync)
    after = wait_identical(nodes, paths, 5, "after the replays")
    for p in paths:
        assert after[p] == before[p], p
    check_everywhere(nodes, shared3["runs"], [n.addr for n in nodes])

    # control: a LATER attempt with that outcome, given to one node only,
    # wins there and replication carries it to the others
    st, js = nodes[2].post_json(f"/evaluation/sync_result/{eid}",
                                tampered(attempt_delta=1))
    assert st == 200 and js["changed"] >= 1, (st, js)
    k = next(i for i, r in enumerate(shared3["runs"]) if r[0] == eid)
    _, acc, projects, modules = shared3["runs"][k]
    projects, modules = copy.deepcopy(projects), copy.deepcopy(modules)
    pid = sync["projects"][key[0]]["project_id"]
    p, f, s, _ = modules[pid][key[1]]
    modules[pid][key[1]] = (0, total, s, "crashed")
    pr = projects[pid]
    pr["passed"] -= p
    pr["failed"] += p
    pr["grade"] = 20 * pr["passed"] / (pr["passed"] + pr["failed"])
    shared3["runs"][k] = (eid, acc, projects, modules)
    results, _ = check_everywhere(nodes, shared3["runs"],
                                  [n.addr for n in nodes])
    m = next(m for x in results[eid]["projects"] for m in x["modules"]
             if m["path"] == key[1] and x["project_id"] == pid)
    assert m["attempt"] == victim["attempt"] + 1


@pytest.mark.timeout(150)
def test_kill9_worker_while_it_runs_a_module(fresh3, work_zip):
    nodes = fresh3
    acceptor, other, victim = nodes
    addrs = [n.addr for n in nodes]
    eid, _ = submit(acceptor, work_zip)
    held = []

    def victim_runs():
        r = running_on(victim)
        if r:
            held[:] = [x for x in r if x["eval_id"] == eid]
        return bool(held)

    wait_for(victim_runs, 30, f"{victim.addr} running a module of {eid}")
    victim.kill9()
    survivors = [acceptor, other]
    wait_done_everywhere(survivors, eid, 90)
    projects, modules = work_expect()
    runs = [(eid, acceptor.addr, projects, modules)]
    results, _ = check_everywhere(survivors, runs, addrs)
    # what the victim ran when it died was given back by the coordinator
    # and run again by a survivor
    check_rerun(results[eid], held, survivors)
    for h in held:
        assert re.search(rf"{re.escape(h['path'])} \(evaluation {eid}, "
                         rf"attempt {h['attempt']}\) goes back to pending: "
                         r"its node is gone", acceptor.log_text()), h
    # restarted, the victim agrees with the survivors
    victim.start()
    wait_converged(nodes, 10)
    check_everywhere(nodes, runs, addrs, timeout=20)


@pytest.mark.timeout(150)
def test_kill9_accepting_node_mid_run(fresh3, work_zip):
    nodes = fresh3
    first, acceptor, third = nodes
    addrs = [n.addr for n in nodes]
    # isolation "module": results are recorded one by one as modules end, so
    # two are in while the acceptor still holds the rest of its batch (a
    # shared session records its batch together, and by then other nodes
    # may have taken all that is left)
    eid, _ = submit(acceptor, work_zip, isolation="module")
    wait_status(acceptor, eid, lambda d: d["executed"] >= 2, 40,
                "2 modules executed")
    held = []

    def acceptor_runs():
        r = running_on(acceptor)
        if r:
            held[:] = [x for x in r if x["eval_id"] == eid]
        return bool(held)

    wait_for(acceptor_runs, 20, f"{acceptor.addr} running a module")
    acceptor.kill9()
    survivors = [first, third]
    wait_done_everywhere(survivors, eid, 90)
    projects, modules = work_expect()
    runs = [(eid, acceptor.addr, projects, modules)]
    results, _ = check_everywhere(survivors, runs, addrs)
    check_rerun(results[eid], held, survivors, later=False)
    acceptor.start()
    wait_converged(nodes, 10)
    check_everywhere(nodes, runs, addrs, timeout=20)


@pytest.mark.timeout(150)
def test_kill9_accepting_node_right_after_201(fresh3, work_zip):
    nodes = fresh3
    first, acceptor, third = nodes
    addrs = [n.addr for n in nodes]
    eid, t201 = submit(acceptor, work_zip)
    acceptor.kill9()
    killed_after = time.monotonic() - t201
    assert killed_after < 0.5, killed_after
    survivors = [first, third]
    wait_done_everywhere(survivors, eid, 90)
    projects, modules = work_expect()
    runs = [(eid, acceptor.addr, projects, modules)]
    results, _ = check_everywhere(survivors, runs, addrs)
    # the acceptor died before any module could finish (each sleeps 1 s):
    # the survivors ran all 18
    assert set(ran_on(results[eid])) <= {first.addr, third.addr}, \
        ran_on(results[eid])


@pytest.mark.timeout(150)
def test_node_joining_mid_run_gets_work(tmp_path):
    # two nodes, a slower corpus (2 s per module's slow test), then a
    # third node seeded with the second joins while it runs
    nodes = loop_nodes(tmp_path, 2, "j")
    joiner = Node(tmp_path, ["--seeds", nodes[1].addr], name="j3")
    try:
        for n in nodes:
            n.start()
        wait_converged(nodes)
        z = make_work_zip(tmp_path, sleep=2.0)
        eid, _ = submit(nodes[0], z)
        wait_status(nodes[0], eid, lambda d: d["executed"] >= 1, 40,
                    "1 module executed")
        joined_at = status_of(nodes[0], eid)["executed"]
        joiner.start()
        everyone = nodes + [joiner]
        wait_done_everywhere(everyone, eid, 120)
        projects, modules = work_expect()
        runs = [(eid, nodes[0].addr, projects, modules)]
        addrs = [n.addr for n in everyone]
        results, expected = check_everywhere(everyone, runs, addrs)
        spread = ran_on(results[eid])
        assert joined_at < 18
        assert spread.get(joiner.addr, 0) > 0, \
            f"the node that joined ran nothing: {spread}"
        assert expected[joiner.addr]["modules"] == spread[joiner.addr]
        st, stats = joiner.get("/stats")
        entry = next(x for x in stats["nodes"] if x["address"] == joiner.addr)
        assert entry["modules"] > 0
        assert entry["evaluations"] == [eid]
    finally:
        close_all(nodes + [joiner])


# --------------------------------------------------------------------------
# network namespaces: a link cut mid-run
# --------------------------------------------------------------------------

def link(cl, k, up):
    """Bring the bridge's port of node k down (cut: nothing in or out) or up."""
    subprocess.run(["ip", "-n", cl.bridge_ns, "link", "set", f"p{k}",
                    "up" if up else "down"], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


@pytest.fixture
def ns3(tmp_path):
    with ns_cluster(tmp_path, "wns", converge=True) as (cl, nodes, sec):
        yield cl, nodes, sec["MESHTEST_API_TOKEN"]


@pytest.mark.timeout(180)
def test_ns_link_cut_mid_run_and_restored(ns3, tmp_path):
    cl, nodes, token = ns3
    a, b, c = nodes
    addrs = [n.addr for n in nodes]
    z = make_work_zip(tmp_path, sleep=1.5)
    eid, _ = submit(a, z, token)
    # cut c while one of its slots runs a module of the evaluation
    runs_re = re.compile(r"engine: slot \d+ runs \d+ modules? of \S+ \(evaluation "
                         + re.escape(eid))
    wait_for(lambda: runs_re.search(c.log_text()) is not None, 40,
             f"{c.addr} running a module of {eid}")
    link(cl, 2, False)
    try:
        # a and b see c dead and go on without it
        time.sleep(8.0)
    finally:
        link(cl, 2, True)
    wait_converged(nodes, 20)
    wait_done_everywhere(nodes, eid, 120)
    # the coordinator gave c's modules back while c was cut off, and a
    # retry's result, a later attempt than the one c started, is the one
    # kept: at once, or (c's first attempts, finished while it was cut off,
    # arrive before the retries end, and a module is done at its first
    # result) when the retry ends
    assert re.search(rf"\(evaluation {eid}, attempt 1\) goes back to "
                     r"pending: its node is gone", a.log_text())

    def max_attempt():
        st, js = get(a, f"/evaluation/{eid}/results")
        return max((m["attempt"] for p in js["projects"]
                    for m in p["modules"]), default=0) if st == 200 else 0

    wait_for(lambda: max_attempt() >= 2, 60, "a retry's result kept")
    projects, modules = work_expect()
    runs = [(eid, a.addr, projects, modules)]
    results, _ = check_everywhere(nodes, runs, addrs, timeout=30)
    assert len(ran_on(results[eid])) >= 2
    assert max(m["attempt"] for p in results[eid]["projects"]
               for m in p["modules"]) >= 2
