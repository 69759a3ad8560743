"""Cancel and delete (issue 12 part 5).

  1. cancel during a run on 3 nodes: when POST /evaluation/<id>/cancel has
     answered, no module of it starts anywhere (each node's log), nothing is
     pending or running, the status is "cancelled" on all three, and every
     module either has its result (finished before the cancel answered: kept
     and counted) or is "cancelled" (counted nowhere); exact numbers;
  2. delete on 3 nodes with one node stopped, then restarted: the
     evaluation stays gone on all three after anti-entropy had time to run,
     /stats "all" is the same before and after, and its files are gone from
     every data folder (those of a project another evaluation shares stay);
  3. bad input: unknown or malformed ids (404), cancel of a finished or
     cancelled evaluation (409), another site's cancel or delete (403), no
     or a wrong API token (401), another method (405), a body (413);
  4. the CLI: meshtest cancel and meshtest delete.
"""

import datetime
import json
import os
import re
import time

import pytest

import corpus
from conftest import loop_nodes, run_cli, running, wait_done, wait_for

MODULES = 12          # modules of the slow project
SLEEP = 2.5           # seconds each of its modules runs
KILL_GRACE = 1.0      # seconds a finished result may trail the cancel's answer


def write_slow(root, name="slow", modules=MODULES, sleep=SLEEP):
    """modules modules, each one passing test that sleeps and one failing."""
    p = os.path.join(root, name)
    for m in range(1, modules + 1):
        corpus._write(p, f"tests/test_s{m:02d}.py", f"""
            import time


            def test_slow():
                time.sleep({sleep})


            def test_fails():
                assert False
            """)
    return p


def slow_zip(tmp_path, name="slow", **kw):
    src = os.path.join(str(tmp_path), f"src-{name}")
    write_slow(src, name, **kw)
    return corpus.zip_dir(src, os.path.join(str(tmp_path), f"{name}.zip"))


def quick_zip(tmp_path, name, projects):
    """A ZIP of write_simple projects {pid: (passed, failed, modules)}."""
    src = os.path.join(str(tmp_path), f"src-{name}")
    for pid, (p, f, m) in projects.items():
        corpus.write_simple(src, pid, p, f, modules=m)
    return corpus.zip_dir(src, os.path.join(str(tmp_path), f"{name}.zip"))


def status(node, eid):
    st, js = node.get(f"/evaluation/{eid}")
    assert st == 200, (node.addr, st, js)
    return js


def count(node, eid, field):
    """A counter of the status, or -1 while the node does not know eid yet."""
    st, js = node.get(f"/evaluation/{eid}")
    return js[field] if st == 200 else -1


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def log_starts(node, eid):
    """Wall-clock times at which the node's slots started a batch of eid."""
    out = []
    for line in node.log_text().splitlines():
        m = LOG_TS.match(line)
        if m and " runs " in line and f"(evaluation {eid}" in line:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            out.append(t.replace(tzinfo=datetime.timezone.utc).timestamp())
    return out


def modules_of(results):
    return [m for p in results["projects"] for m in p["modules"]]


def internal(node, path):
    """GET of an internal route (no cluster key in these tests)."""
    st, js, _ = node.request("GET", path)
    return st, js


def same_everywhere(nodes, path):
    """The parsed answers of path on every node, when all are 200 and equal."""
    docs = []
    for n in nodes:
        st, js = n.get(path)
        if st != 200:
            return None
        docs.append(js)
    return docs[0] if all(d == docs[0] for d in docs) else None


# --------------------------------------------------------------------------
# 1. cancel during a run on three nodes
# --------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_cancel_during_a_run_on_three_nodes(tmp_path):
    nodes = loop_nodes(tmp_path, 3, "c")
    addrs = {n.addr for n in nodes}
    with running(nodes):
        eid = nodes[0].submit_zip(slow_zip(tmp_path), isolation="module")
        # some modules finished, others run or wait
        wait_for(lambda: count(nodes[1], eid, "executed") >= 2, 120,
                 "two modules finished")
        before = status(nodes[1], eid)
        assert before["status"] == "running"
        assert before["executed"] < MODULES

        # the cancel, on another node than the accepting one
        st, js, _ = nodes[1].request("POST", f"/evaluation/{eid}/cancel")
        returned = time.time()
        assert st == 200, js
        assert js["status"] == "cancelled", js
        assert js["in_progress"] == 0 and js["pending"] == 0, js
        assert isinstance(js["cancelled_at"], float)

        # every node agrees, and nothing changes afterwards
        wait_for(lambda: same_everywhere(nodes, f"/evaluation/{eid}") is not None,
                 20, "the same cancelled status on all three nodes")
        doc = same_everywhere(nodes, f"/evaluation/{eid}")
        assert doc["status"] == "cancelled"
        exe, canc = doc["executed"], doc["cancelled"]
        assert exe >= 2 and canc >= 1, doc
        assert exe + canc == MODULES, doc
        assert doc["in_progress"] == 0 and doc["pending"] == 0
        # finished results count (one passed, one failed each), cancelled ones nowhere
        assert doc["passed"] == exe and doc["failed"] == exe and doc["skipped"] == 0
        assert doc["percent_passed"] == 50.0 and doc["percent_failed"] == 50.0
        assert doc["nota_final"] == 10.0
        assert doc["nota_final_per_project"] == {"slow": 10.0}
        assert len(doc["percent_passed_per_module"]) == exe
        assert doc["projects"]["slow"]["passed"] == exe

        res = same_everywhere(nodes, f"/evaluation/{eid}/results")
        assert res is not None
        mods = modules_of(res)
        assert len(mods) == MODULES
        done = [m for m in mods if "outcome" in m]
        cancelled = [m for m in mods if m.get("state") == "cancelled"]
        assert len(done) == exe and len(cancelled) == canc
        for m in done:
            assert m["outcome"] == "finished", m
            assert (m["passed"], m["failed"]) == (1, 1), m
            assert m["node"] in addrs, m
            assert m["finished_at"] <= returned + KILL_GRACE, (m, returned)
        for m in cancelled:
            assert "outcome" not in m and "tests" not in m, m

        # no module of it started anywhere after the cancel answered
        time.sleep(3)
        starts = []
        for n in nodes:
            starts += log_starts(n, eid)
        assert len(starts) >= exe
        late = [t for t in starts if t > returned]
        assert not late, (returned, late)
        assert same_everywhere(nodes, f"/evaluation/{eid}") == doc
        # a second cancel: already cancelled
        st, js, _ = nodes[2].request("POST", f"/evaluation/{eid}/cancel")
        assert st == 409, js
        assert js == {"error": f"evaluation {eid} is already cancelled"}
        # the CLI shows it as cancelled, and exits 3 (not graded to the end)
        r = run_cli("status", eid, "--node", nodes[2].addr)
        assert r.returncode == 3, r.stderr


@pytest.mark.timeout(240)
def test_cancel_keeps_what_finished_in_a_shared_session(make_node, tmp_path):
    """One slot, isolation "project": the three modules run as one pytest
    session [m1, m3, m2] (equal estimates: the first by name, then from the
    other end), whose results are handed over when it ends. The cancel kills
    it in m2: m1 and m3, finished in it, count; m2 is cancelled."""
    n = make_node(["--slots", "1"], name="one")
    assert n.get("/health")[1]["slots"] == 1
    src = os.path.join(str(tmp_path), "src-sess")
    for m, sleep in ((1, 0), (2, 0), (3, 120)):   # run in this (pytest's) order
        corpus._write(os.path.join(src, "sess"), f"tests/test_m{m}.py", f"""
            import time


            def test_it():
                time.sleep({sleep})
            """)
    eid = n.submit_zip(corpus.zip_dir(src, os.path.join(str(tmp_path), "sess.zip")),
                       isolation="project")
    wait_for(lambda: count(n, eid, "in_progress") == 3, 60, "the session running")
    time.sleep(15)   # its start and m1, m2 (instant) are over: m3 sleeps
    assert status(n, eid)["executed"] == 0
    st, js, _ = n.request("POST", f"/evaluation/{eid}/cancel")
    assert st == 200, js
    assert (js["status"], js["executed"], js["cancelled"]) == ("cancelled", 2, 1), js
    assert (js["passed"], js["failed"]) == (2, 0)
    mods = {m["path"]: m for m in modules_of(get_results_ok(n, eid))}
    assert mods["tests/test_m3.py"]["state"] == "cancelled"
    for p in ("tests/test_m1.py", "tests/test_m2.py"):
        assert mods[p]["outcome"] == "finished" and mods[p]["passed"] == 1, mods[p]
        if n.get("/health")[1]["sandbox"] == "bwrap":
            # warm runs: they finished inside the session the cancel killed
            assert mods[p]["session"]["modules"] == 3, mods[p]


def get_results_ok(node, eid):
    st, js = node.get(f"/evaluation/{eid}/results")
    assert st == 200, js
    return js


# --------------------------------------------------------------------------
# 2. delete with a node down, then back
# --------------------------------------------------------------------------

def blob_files(node, digest):
    """The files of a digest in the node's data folder that exist."""
    paths = [os.path.join(node.data_dir, "blobs", f"{digest}.zip"),
             os.path.join(node.data_dir, "projects", digest)]
    work = os.path.join(node.data_dir, "work")
    if os.path.isdir(work):
        for slot in os.listdir(work):
            paths.append(os.path.join(work, slot, "projects", digest))
    return [p for p in paths if os.path.exists(p)]


@pytest.mark.timeout(300)
def test_delete_with_a_node_down_stays_deleted(tmp_path):
    nodes = loop_nodes(tmp_path, 3, "d")
    with running(nodes):
        # e1: projects "shared" and "own"; e2: the same "shared" and "other"
        z1 = quick_zip(tmp_path, "e1", {"shared": (2, 1, 2), "own": (1, 1, 2)})
        z2 = quick_zip(tmp_path, "e2", {"shared": (2, 1, 2), "other": (3, 0, 1)})
        e1 = nodes[0].submit_zip(z1)
        e2 = nodes[1].submit_zip(z2)
        for n in nodes:
            assert wait_done(n, e1)["status"] == "done"
            assert wait_done(n, e2)["status"] == "done"
        wait_for(lambda: same_everywhere(nodes, "/stats") is not None, 20,
                 "the same /stats everywhere")
        stats = same_everywhere(nodes, "/stats")
        assert stats["all"] == {"passed": 2 * 2 * 2 + 1 * 2 + 3, "failed": 1 * 2 * 2 + 1 * 2,
                                "projects": 3, "evaluations": 2}, stats

        # what is on disk: e1's upload, its two projects; "shared" is e2's too
        st, d1 = internal(nodes[0], f"/sync/evaluation/{e1}")
        assert st == 200
        st, d2 = internal(nodes[0], f"/sync/evaluation/{e2}")
        assert st == 200
        dig1 = {p["project_id"]: p["digest"] for p in d1["projects"]}
        dig2 = {p["project_id"]: p["digest"] for p in d2["projects"]}
        assert dig1["shared"] == dig2["shared"]
        gone = [d1["upload_digest"], dig1["own"]]
        kept = [dig2["shared"], d2["upload_digest"], dig2["other"]]
        assert len(set(gone + kept)) == 5
        for d in gone:
            assert any(blob_files(n, d) for n in nodes), d
        shared_before = {n.addr: blob_files(n, dig2["shared"]) for n in nodes}

        # node 3 is down while e1 is deleted on node 1
        assert nodes[2].stop() == 0
        st, js, _ = nodes[0].request("DELETE", f"/evaluation/{e1}")
        assert st == 200, js
        assert js["id"] == e1 and js["deleted"] is True
        for n in nodes[:2]:
            assert n.get(f"/evaluation/{e1}") == (404, {"error": "not found"})
            assert n.get(f"/evaluation/{e1}/results") == (404, {"error": "not found"})
            assert n.get("/evaluation")[1] == {"evaluations": [e2]}
            st, js, _ = n.request("GET", f"/evaluation/{e1}/events")
            assert (st, js) == (410, {"error": f"evaluation {e1} was deleted"})
            assert n.get("/stats")[1]["all"] == stats["all"]
        st, js, _ = nodes[1].request("DELETE", f"/evaluation/{e1}")
        assert (st, js) == (404, {"error": "not found"})

        # node 3 comes back with e1 in its store, and forgets it
        nodes[2].start()
        wait_for(lambda: nodes[2].get(f"/evaluation/{e1}")[0] == 404, 30,
                 "the restarted node forgetting the deleted evaluation")
        time.sleep(8)   # several anti-entropy rounds (every 2 s)
        for n in nodes:
            assert n.get(f"/evaluation/{e1}") == (404, {"error": "not found"}), n.addr
            assert n.get(f"/evaluation/{e1}/results")[0] == 404
            assert n.get("/evaluation")[1] == {"evaluations": [e2]}, n.addr
            assert n.get("/stats")[1]["all"] == stats["all"], n.addr
            assert status(n, e2)["status"] == "done"
            st, js = internal(n, "/sync/digests")
            assert st == 200 and js[e1] == "deleted", (n.addr, js)
            st, js = internal(n, f"/sync/evaluation/{e1}")
            assert st == 200 and "deleted_at" in js and "projects" not in js, js
        assert f"evaluation {e1} was deleted elsewhere" in nodes[2].log_text()

        # its files go from every data folder; the shared project's stay
        def files_gone():
            return not any(blob_files(n, d) for n in nodes for d in gone)
        wait_for(files_gone, 90, "the deleted evaluation's files removed",
                 interval=1.0,
                 explain=lambda: "left: " + json.dumps(
                     {n.addr: [blob_files(n, d) for d in gone] for n in nodes}))
        for n in nodes[:2]:
            assert blob_files(n, dig2["shared"]) == shared_before[n.addr], n.addr
        # (a restarted node starts with fresh slot folders: its blob and project stay)
        assert blob_files(nodes[2], dig2["shared"]) == [
            p for p in shared_before[nodes[2].addr] if "/work/" not in p]
        # and e2 still reads the same everywhere
        assert same_everywhere(nodes, f"/evaluation/{e2}/results") is not None


# --------------------------------------------------------------------------
# 3. bad input
# --------------------------------------------------------------------------

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_bad_input(make_node, tmp_path):
    n = make_node()
    for method, path in (("POST", f"/evaluation/{UNKNOWN}/cancel"),
                         ("DELETE", f"/evaluation/{UNKNOWN}"),
                         ("POST", "/evaluation/not-an-id/cancel"),
                         ("DELETE", "/evaluation/not-an-id")):
        st, js, _ = n.request(method, path)
        assert (st, js) == (404, {"error": "not found"}), (method, path)

    eid = n.submit_zip(quick_zip(tmp_path, "q", {"q": (1, 1, 1)}))
    assert wait_done(n, eid)["status"] == "done"
    st, js, _ = n.request("POST", f"/evaluation/{eid}/cancel")
    assert (st, js) == (409, {"error": f"evaluation {eid} is no longer running: it is done"})
    # another method, a body
    st, js, _ = n.request("GET", f"/evaluation/{eid}/cancel")
    assert st == 405, js
    st, js, _ = n.request("POST", f"/evaluation/{eid}/cancel", b"{}",
                          {"Content-Type": "application/json"})
    assert st == 413, js
    # another web site, by Origin or Sec-Fetch-Site: refused, nothing happens
    for hdrs in ({"Origin": "http://evil.example"},
                 {"Sec-Fetch-Site": "cross-site"}):
        for method, path in (("POST", f"/evaluation/{eid}/cancel"),
                             ("DELETE", f"/evaluation/{eid}")):
            st, js, _ = n.request(method, path, headers=hdrs)
            assert st == 403, (method, hdrs, js)
            assert "another web site" in js["error"]
    assert status(n, eid)["status"] == "done"
    # the same site may
    st, js, _ = n.request("DELETE", f"/evaluation/{eid}",
                          headers={"Origin": f"http://{n.addr}"})
    assert st == 200, js
    assert n.get(f"/evaluation/{eid}")[0] == 404


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_token_required(make_node, tmp_path, monkeypatch):
    token = "t0ken-" + "x" * 40
    monkeypatch.setenv("MESHTEST_API_TOKEN", token)
    n = make_node(name="tok")
    eid = n.submit_zip(slow_zip(tmp_path, modules=2, sleep=30), isolation="module")
    for hdr in (None, "Bearer wrong", "Basic " + token):
        for method, path in (("POST", f"/evaluation/{eid}/cancel"),
                             ("DELETE", f"/evaluation/{eid}")):
            st, js, _ = n.request(method, path, headers={"Authorization": hdr})
            assert st == 401, (method, hdr, js)
            assert js == {"error": "missing or wrong API token: send "
                                   "'Authorization: Bearer <token>'"}
    assert status(n, eid)["status"] == "running"
    # with it: cancelled, while its modules ran (killed at once: a 30 s sleep)
    wait_for(lambda: status(n, eid)["in_progress"] > 0, 60, "a module running")
    t0 = time.monotonic()
    st, js, _ = n.request("POST", f"/evaluation/{eid}/cancel")
    assert st == 200, js
    assert time.monotonic() - t0 < 15
    assert (js["status"], js["executed"], js["cancelled"]) == ("cancelled", 0, 2), js
    r = run_cli("delete", eid, "--node", n.addr)
    assert r.returncode == 0, r.stderr
    assert n.get(f"/evaluation/{eid}")[0] == 404


# --------------------------------------------------------------------------
# 4. the CLI
# --------------------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.timeout(120)
def test_cli_cancel_and_delete(make_node, tmp_path):
    n = make_node()
    eid = n.submit_zip(slow_zip(tmp_path, modules=3, sleep=30), isolation="module")
    wait_for(lambda: status(n, eid)["in_progress"] > 0, 60, "a module running")

    r = run_cli("cancel", eid, "--node", n.addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"cancelled evaluation {eid}: 0 modules executed, 3 cancelled\n"
    r = run_cli("cancel", eid, "--node", n.addr)
    assert r.returncode == 2
    assert r.stderr == (f"meshtest: node answered 409: evaluation {eid} is already "
                        "cancelled\n")
    r = run_cli("cancel", eid, "--node", n.addr, "--json")
    assert r.returncode == 2
    r = run_cli("status", eid, "--node", n.addr, "--json")
    assert json.loads(r.stdout)["projects"][0]["modules"][0]["state"] == "cancelled"

    r = run_cli("delete", eid, "--node", n.addr, "--json")
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["id"] == eid and js["deleted"] is True
    r = run_cli("delete", eid, "--node", n.addr)
    assert (r.returncode, r.stderr) == (2, "meshtest: node answered 404: not found\n")
    r = run_cli("cancel", UNKNOWN, "--node", n.addr)
    assert (r.returncode, r.stderr) == (2, "meshtest: node answered 404: not found\n")
    r = run_cli("cancel", "nope", "--node", n.addr)
    assert (r.returncode, r.stderr) == (2, "meshtest: nope is not an evaluation id\n")
    r = run_cli("delete")
    assert r.returncode == 2 and "delete needs an evaluation id" in r.stderr
    r = run_cli("cancel", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: meshtest cancel ID")
