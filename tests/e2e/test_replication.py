"""Shared state: every evaluation, its projects, progress and module results
reach every node, so GET /evaluation, GET /evaluation/<id>, .../results and
GET /stats answer the same on every node, while running and after.

Loopback (3 nodes seeded with the first):
  1. the corpus submitted to node 2 is known everywhere within 1 s of the
     201, reads the same on all three while running (elapsed_seconds apart)
     and byte for byte the same once done, with the corpus' exact numbers;
  2. a node killed (-9) before two submissions, restarted on the same port
     and data dir, catches up on both within 6 s (anti-entropy: it never
     received a push);
  3. all three stopped (SIGTERM) and restarted: every evaluation and /stats
     intact and identical on all three.

Network namespaces (tests/e2e/netns.py, 3 nodes with their own addresses):
  4. the corpus submitted to b reads the same on a, b and c; then c is cut
     off (blackhole routes both ways) in the middle of a second evaluation,
     and catches up within 10 s of the routes being removed.

Work spreads across the live nodes, so which node runs a module is not
fixed: the per-node /stats expectations are derived from the "node" of each
module in the results document (which must be one of the cluster's
addresses), and the per-node numbers must add up to the corpus' totals.
"""

import copy
import difflib
import json
import os
import threading
import time

import pytest

import corpus
from conftest import (encode_multipart, eval_paths, http_request, loop_nodes, running,
                      wait_converged, wait_done)
from expect import approx, check_results_doc, check_status_doc
from netns import ns_cluster

POLL = 0.05

# small projects for the catch-up tests: {name: (passed, failed, modules)}
SMALL_A = ("repa", 2, 1, 2)
SMALL_B = ("repb", 3, 0, 1)
SMALL_C = ("repc", 1, 2, 2)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def small_expect(spec):
    """(projects, modules) tables of a corpus.write_simple project."""
    name, p, f, nmod = spec
    modules = {name: {f"tests/test_mod{m}.py": (p, f, 0, "finished")
                      for m in range(1, nmod + 1)}}
    projects = {name: {"passed": p * nmod, "failed": f * nmod, "skipped": 0,
                       "grade": 20 * p / (p + f)}}
    return projects, modules


def make_zip(base, spec, sleep=0.0):
    name, p, f, nmod = spec
    src = os.path.join(str(base), f"src-{name}")
    corpus.write_simple(src, name, p, f, sleep=sleep, modules=nmod)
    return corpus.zip_dir(src, os.path.join(str(base), f"{name}.zip"))


def fetch(node, path, timeout=10):
    """(status, raw bytes) of GET path, or (None, repr(error))."""
    try:
        st, _, raw = node.request("GET", path, timeout=timeout)
        return st, raw
    except OSError as e:
        return None, repr(e).encode()


def snapshot(nodes, paths):
    """{path: [(status, raw) per node]}, the nodes asked at the same time
    (one thread each) so that a live evaluation is compared within a few
    milliseconds."""
    out = {p: [None] * len(nodes) for p in paths}

    def one(i, n):
        for p in paths:
            out[p][i] = fetch(n, p)

    ts = [threading.Thread(target=one, args=(i, n)) for i, n in
          enumerate(nodes)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def pretty(raw):
    try:
        return json.dumps(json.loads(raw), indent=1, sort_keys=True)
    except ValueError:
        return raw.decode("utf-8", "replace")


def differences(nodes, snap):
    """Human-readable differences of a snapshot against the first node;
    empty when every path answered 200 with the same bytes everywhere."""
    out = []
    for path, answers in snap.items():
        st0, raw0 = answers[0]
        for n, (st, raw) in zip(nodes, answers):
            if st != 200:
                out.append(f"{path} on {n.addr}: status {st} {raw[:200]!r}")
        for n, (st, raw) in zip(nodes[1:], answers[1:]):
            if st == 200 and st0 == 200 and raw != raw0:
                diff = difflib.unified_diff(
                    pretty(raw0).splitlines(), pretty(raw).splitlines(),
                    nodes[0].addr, n.addr, lineterm="", n=2)
                out.append(f"{path}: {nodes[0].addr} vs {n.addr}:\n"
                           + "\n".join(list(diff)[:80]))
    return out


def wait_identical(nodes, paths, timeout, what):
    """Poll until every path reads byte for byte the same (200) on every
    node; returns (seconds taken, {path: parsed document})."""
    t0 = time.monotonic()
    while True:
        snap = snapshot(nodes, paths)
        diffs = differences(nodes, snap)
        if not diffs:
            return (time.monotonic() - t0,
                    {p: json.loads(a[0][1]) for p, a in snap.items()})
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not identical on "
                                 f"{[n.addr for n in nodes]} within "
                                 f"{timeout} s:\n" + "\n\n".join(diffs))
        time.sleep(POLL)


def expected_node_stats(addr, results_docs, accepted):
    """One entry of /stats "nodes", from the results documents (the node of
    every module) and the evaluations this node accepted."""
    passed = failed = modules = 0
    projects = set()
    evals = []
    for res in results_docs:
        took_part = res["id"] in accepted
        for p in res["projects"]:
            for m in p["modules"]:
                if m["node"] != addr:
                    continue
                took_part = True
                passed += m["passed"]
                failed += m["failed"]
                modules += 1
                projects.add(p["source"])
        if took_part:
            evals.append(res["id"])
    return {"address": addr, "failed": failed, "passed": passed,
            "projects": len(projects), "modules": modules,
            "evaluations": evals}


def check_stats(stats, nodes, runs, results):
    """runs: [(eid, acceptor node, projects table)] in submission order;
    results: {eid: results document}."""
    passed = sum(p["passed"] for _, _, projs in runs for p in projs.values())
    failed = sum(p["failed"] for _, _, projs in runs for p in projs.values())
    names = {pid for _, _, projs in runs for pid in projs}
    assert stats["all"] == {"failed": failed, "passed": passed,
                            "projects": len(names),
                            "evaluations": len(runs)}
    docs = [results[eid] for eid, _, _ in runs]
    want = [expected_node_stats(n.addr, docs,
                                {eid for eid, acc, _ in runs if acc is n})
            for n in sorted(nodes, key=lambda x: x.addr)]
    assert stats["nodes"] == want
    # every module ran somewhere in the cluster, once
    assert sum(x["modules"] for x in stats["nodes"]) == \
        sum(len(p["modules"]) for d in docs for p in d["projects"])
    assert sum(x["passed"] for x in stats["nodes"]) == passed
    assert sum(x["failed"] for x in stats["nodes"]) == failed


def check_eval(doc, res, eid, projects, modules, acceptor, nodes):
    """Exact numbers of a done evaluation; every module ran on one of the
    cluster's nodes."""
    assert doc["status"] == "done", doc
    assert doc["id"] == eid
    assert doc["accepted_by"] == acceptor.addr
    check_status_doc(doc, projects, modules)
    assert res["status"] == "done"
    assert res["id"] == eid
    addrs = {n.addr for n in nodes}
    ran_on = {m["module"]: m.get("node") for p in res["projects"]
              for m in p["modules"]}
    assert all(a in addrs for a in ran_on.values()), ran_on
    anon = copy.deepcopy(res)
    for p in anon["projects"]:
        for m in p["modules"]:
            m["node"] = "*"
    check_results_doc(anon, eid, projects, modules, "*")


@pytest.fixture
def loop3(tmp_path):
    with running(loop_nodes(tmp_path, 3, "r")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def corpus_zip(tmp_path_factory):
    d = tmp_path_factory.mktemp("repl-corpus")
    corpus.write_corpus(str(d / "src"))
    return corpus.zip_dir(str(d / "src"), str(d / "corpus.zip"))


def watch_run(nodes, acceptor, eid, t201, timeout=90.0):
    """Poll every node while the evaluation runs. Returns (seconds after the
    201 until every node knew it, "executed" of every snapshot in which all
    three were running and equal but for elapsed_seconds, last
    differences)."""
    path = f"/evaluation/{eid}"
    known_after = None
    equal_running = []
    last_diff = None
    deadline = t201 + timeout
    while time.monotonic() < deadline:
        snap = snapshot(nodes, [path])[path]
        now = time.monotonic()
        if known_after is None and all(st == 200 for st, _ in snap):
            known_after = now - t201
        if all(st == 200 for st, _ in snap):
            docs = [json.loads(raw) for _, raw in snap]
            if all(d["status"] == "running" for d in docs):
                for d in docs:
                    d.pop("elapsed_seconds")
                if all(d == docs[0] for d in docs):
                    equal_running.append(docs[0]["executed"])
                else:
                    last_diff = [json.dumps(d, sort_keys=True) for d in docs]
            if docs[nodes.index(acceptor)]["status"] != "running":
                return known_after, equal_running, last_diff
        time.sleep(POLL)
    raise AssertionError(f"evaluation {eid} still running on "
                         f"{acceptor.addr} after {timeout} s")


# --------------------------------------------------------------------------
# loopback
# --------------------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.timeout(120)
def test_corpus_reads_identically_everywhere_while_running_and_after(
        loop3, corpus_zip):
    n2 = loop3[1]
    eid = n2.submit_zip(corpus_zip, corpus.CORPUS_MODULE_TIMEOUT)
    t201 = time.monotonic()
    known_after, equal_running, last_diff = watch_run(loop3, n2, eid, t201)
    assert known_after is not None and known_after <= 1.0, \
        f"every node knew {eid} only {known_after} s after the 201"
    # equal while running, also once results were coming in (not only the
    # all-pending state right after the 201)
    assert equal_running and max(equal_running) >= 1, \
        ("never saw the three GET /evaluation/<id> equal (elapsed_seconds "
         f"apart) while running with executed >= 1: equal snapshots had "
         f"executed {equal_running}; last difference: {last_diff}")

    paths = eval_paths([eid])
    _, docs = wait_identical(loop3, paths, 3.0, "after done")
    doc = docs[f"/evaluation/{eid}"]
    res = docs[f"/evaluation/{eid}/results"]
    check_eval(doc, res, eid, corpus.CORPUS_PROJECTS, corpus.CORPUS_MODULES,
               n2, loop3)
    assert (doc["passed"], doc["failed"], doc["skipped"]) == (21, 8, 1)
    assert doc["executed"] == 11
    assert doc["nota_final"] == approx(corpus.CORPUS_TOTAL["nota_final"])
    assert docs["/evaluation"] == {"evaluations": [eid]}
    stats = docs["/stats"]
    assert sorted(x["address"] for x in stats["nodes"]) == \
        sorted(n.addr for n in loop3)
    check_stats(stats, loop3, [(eid, n2, corpus.CORPUS_PROJECTS)],
                {eid: res})
    assert stats["all"] == {"failed": 8, "passed": 21, "projects": 3,
                            "evaluations": 1}
    by_addr = {x["address"]: x for x in stats["nodes"]}
    assert eid in by_addr[n2.addr]["evaluations"]
    assert sum(x["modules"] for x in stats["nodes"]) == 11
    # elapsed_seconds is fixed once done: the same bytes a moment later
    time.sleep(1.0)
    snap = snapshot(loop3, paths)
    assert differences(loop3, snap) == []
    assert json.loads(snap[f"/evaluation/{eid}"][0][1]) == doc


@pytest.mark.timeout(120)
def test_node_down_during_two_runs_catches_up_after_restart(loop3, tmp_path):
    n1, n2, n3 = loop3
    zip_a = make_zip(tmp_path, SMALL_A, sleep=0.3)
    zip_b = make_zip(tmp_path, SMALL_B, sleep=0.3)
    n3.kill9()
    eid_a = n2.submit_zip(zip_a)
    eid_b = n1.submit_zip(zip_b)
    wait_done(n2, eid_a, timeout=60)
    wait_done(n1, eid_b, timeout=60)
    up = [n1, n2]
    wait_converged(up, 10)   # node 3 dead for both: /stats lists two nodes
    _, before = wait_identical(up, eval_paths([eid_a, eid_b]), 5.0,
                               "nodes 1 and 2 after done")
    assert sorted(x["address"] for x in before["/stats"]["nodes"]) == \
        sorted([n1.addr, n2.addr])

    t0 = time.monotonic()
    n3.start()
    _, docs = wait_identical(loop3, eval_paths([eid_a, eid_b]),
                                6.0 - (time.monotonic() - t0),
                                "restarted node 3 catching up")
    assert time.monotonic() - t0 <= 6.0
    # the documents did not change on 1 and 2 (apart from /stats, which
    # lists node 3 again)
    for p, d in before.items():
        if p != "/stats":
            assert docs[p] == d, p
    assert docs["/evaluation"] == {"evaluations": [eid_a, eid_b]}
    pa, ma = small_expect(SMALL_A)
    pb, mb = small_expect(SMALL_B)
    check_eval(docs[f"/evaluation/{eid_a}"],
               docs[f"/evaluation/{eid_a}/results"], eid_a, pa, ma, n2, loop3)
    check_eval(docs[f"/evaluation/{eid_b}"],
               docs[f"/evaluation/{eid_b}/results"], eid_b, pb, mb, n1, loop3)
    check_stats(docs["/stats"], loop3, [(eid_a, n2, pa), (eid_b, n1, pb)],
                {eid_a: docs[f"/evaluation/{eid_a}/results"],
                 eid_b: docs[f"/evaluation/{eid_b}/results"]})
    assert docs["/stats"]["all"] == {"failed": 2, "passed": 7,
                                     "projects": 2, "evaluations": 2}


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_all_stopped_and_restarted_keep_everything(loop3, tmp_path):
    n1, n2, n3 = loop3
    specs = [(SMALL_A, n1), (SMALL_C, n3)]
    runs = []
    for spec, acceptor in specs:
        eid = acceptor.submit_zip(make_zip(tmp_path, spec))
        runs.append((eid, acceptor, spec))
    for eid, acceptor, _ in runs:
        wait_done(acceptor, eid, timeout=60)
    paths = eval_paths([e for e, _, _ in runs])
    _, before = wait_identical(loop3, paths, 5.0, "before the restart")
    raw_before = snapshot(loop3, paths)

    for n in loop3:
        assert n.stop() == 0, f"{n.addr}: exit code of SIGTERM"
    for n in loop3:
        n.start()
    wait_converged(loop3, 10)
    after = snapshot(loop3, paths)
    assert differences(loop3, after) == []
    for p in paths:
        assert after[p][0] == raw_before[p][0], \
            (p, pretty(raw_before[p][0][1]), pretty(after[p][0][1]))

    assert before["/evaluation"] == {"evaluations": [e for e, _, _ in runs]}
    tables = []
    for eid, acceptor, spec in runs:
        pr, mo = small_expect(spec)
        check_eval(before[f"/evaluation/{eid}"],
                   before[f"/evaluation/{eid}/results"], eid, pr, mo,
                   acceptor, loop3)
        tables.append((eid, acceptor, pr))
    check_stats(before["/stats"], loop3, tables,
                {e: before[f"/evaluation/{e}/results"] for e, _, _ in runs})
    assert before["/stats"]["all"] == {"failed": 6, "passed": 6,
                                       "projects": 2, "evaluations": 2}


# --------------------------------------------------------------------------
# network namespaces
# --------------------------------------------------------------------------

def ns_submit(node, zip_path, token, module_timeout=None):
    """POST the ZIP with the cluster's API token; returns the id."""
    with open(zip_path, "rb") as f:
        data = f.read()
    fields = {}
    if module_timeout is not None:
        fields["module_timeout"] = str(module_timeout)
    body, ctype = encode_multipart(
        fields, {"file": (os.path.basename(zip_path), data,
                          "application/zip")})
    st, js, raw = node.request("POST", "/evaluation", body,
                               {"Content-Type": ctype,
                                "Authorization": f"Bearer {token}"}, 60)
    assert st == 201, f"POST /evaluation on {node.addr} -> {st} {raw[:300]!r}"
    return js["id"]


@pytest.fixture
def ns3(tmp_path):
    with ns_cluster(tmp_path, "rns", converge=True) as (cl, nodes, sec):
        yield cl, nodes, sec["MESHTEST_API_TOKEN"]


def cut_off(cl, k, on):
    """Blackhole routes both ways between node k and every other node."""
    for j in range(len(cl.names)):
        if j == k:
            continue
        if on:
            cl.blackhole(k, j)
            cl.blackhole(j, k)
        else:
            cl.unblackhole(k, j)
            cl.unblackhole(j, k)


@pytest.mark.timeout(150)
def test_ns_identical_everywhere_and_cut_off_node_catches_up(
        ns3, corpus_zip, tmp_path):
    cl, nodes, token = ns3
    a, b, c = nodes
    eid1 = ns_submit(b, corpus_zip, token, corpus.CORPUS_MODULE_TIMEOUT)
    wait_done(b, eid1, timeout=90)
    _, docs = wait_identical(nodes, eval_paths([eid1]), 3.0,
                             "corpus after done")
    check_eval(docs[f"/evaluation/{eid1}"],
               docs[f"/evaluation/{eid1}/results"], eid1,
               corpus.CORPUS_PROJECTS, corpus.CORPUS_MODULES, b, nodes)
    check_stats(docs["/stats"], nodes, [(eid1, b, corpus.CORPUS_PROJECTS)],
                {eid1: docs[f"/evaluation/{eid1}/results"]})
    assert sorted(x["address"] for x in docs["/stats"]["nodes"]) == \
        sorted(cl_ip + ":7000" for cl_ip in cl.ips)

    # a second evaluation: c sees it start, then is cut off until it is done
    spec = ("slowp", 2, 1, 4)       # 4 modules of 3 s on 2 slots
    eid2 = ns_submit(b, make_zip(tmp_path, spec, sleep=1.0), token)
    t0 = time.monotonic()
    while True:
        st, raw = fetch(c, f"/evaluation/{eid2}")
        if st == 200:
            break
        assert time.monotonic() - t0 < 2.0, f"c never learnt of {eid2}"
        time.sleep(POLL)
    cut_off(cl, 2, True)
    try:
        wait_done(b, eid2, timeout=60)
        wait_identical([a, b], eval_paths([eid1, eid2]), 5.0,
                       "a and b while c is cut off")
        # c really missed the end of the run: what it holds differs from
        # what a holds (still running, or its own partition-side results)
        snap = snapshot([a, c], [f"/evaluation/{eid2}/results"])
        (st_a, raw_a), (st_c, raw_c) = snap[f"/evaluation/{eid2}/results"]
        assert st_a == 200 and st_c == 200, snap
        assert raw_a != raw_c, "c followed the run although cut off"
    finally:
        cut_off(cl, 2, False)
    t1 = time.monotonic()
    _, docs = wait_identical(nodes, eval_paths([eid1, eid2]), 10.0,
                                "c after its routes came back")
    assert time.monotonic() - t1 <= 10.0
    pr, mo = small_expect(spec)
    check_eval(docs[f"/evaluation/{eid2}"],
               docs[f"/evaluation/{eid2}/results"], eid2, pr, mo, b, nodes)
    assert docs["/evaluation"] == {"evaluations": [eid1, eid2]}
    check_stats(docs["/stats"], nodes,
                [(eid1, b, corpus.CORPUS_PROJECTS), (eid2, b, pr)],
                {eid1: docs[f"/evaluation/{eid1}/results"],
                 eid2: docs[f"/evaluation/{eid2}/results"]})
    assert docs["/stats"]["all"] == {"failed": 12, "passed": 29,
                                     "projects": 4, "evaluations": 2}


def test_node_protocol_versions(node):
    """Internal requests carry the node protocol's version: the release before
    (no header) is served, an unknown version is refused with 409 and a log
    line that says what to do."""
    st, js, _ = http_request(node.port, "GET", "/sync/digests")
    assert st == 200 and js == {}, js
    st, js, _ = http_request(node.port, "GET", "/sync/digests",
                             headers={"X-Meshtest-Protocol": "2"})
    assert st == 200 and js == {}, js
    for bad in ("99", "0", "two"):
        st, js, _ = http_request(node.port, "GET", "/sync/digests",
                                 headers={"X-Meshtest-Protocol": bad})
        assert st == 409, (bad, st, js)
        assert js["error"] == (f"node protocol version {bad} is not one this node "
                               "speaks (1 to 2): upgrade the nodes one release at a time")
    # anti-entropy by bucket: an unknown evaluation has no rows (all zero
    # digests) and no last event, a bad bucket list is a 400, a malformed id
    # a 404
    eid = "00000000-0000-4000-8000-000000000000"
    st, js, _ = http_request(node.port, "GET", f"/sync/evaluation/{eid}/buckets")
    assert st == 200 and js == {"id": eid, "buckets": ["0" * 16] * 256,
                                "last_event_at": 0.0}, js
    for bad in ("256", "-1", "1,,2", "x", "1;2"):
        st, js, _ = http_request(node.port, "GET", f"/sync/evaluation/{eid}/part/{bad}")
        assert st == 400, (bad, st, js)
        assert js["error"] == "buckets: a comma-separated list of 0..255", js
    st, js, _ = http_request(node.port, "GET", f"/sync/evaluation/{eid}/part/0,255")
    assert st == 404, js
    st, js, _ = http_request(node.port, "GET", "/sync/evaluation/nope/buckets")
    assert st == 404, js
    # public routes do not care
    st, _, _ = http_request(node.port, "GET", "/evaluation",
                            headers={"X-Meshtest-Protocol": "99"})
    assert st == 200
    assert "refused: node protocol version 99" in node.log_text()
