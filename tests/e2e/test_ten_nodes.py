"""Ten nodes in network namespaces through kills and a partition (issue 11).

Ten nodes of one slot each, each in its own namespace with its own address,
sharing a random cluster key and API token (tests/e2e/netns.py), grade 10
projects x 4 modules (1 to 5 tests of 1 s each) submitted to b. Once five
other nodes hold modules, three of them are killed (-9) and the other two
cut off from the other eight nodes (blackhole routes both ways; the two
still reach each other) for 30 s, then the routes go. During the cut each
side must declare the other dead. Afterwards:

  - the seven live nodes agree on membership: each names the other six as
    its alive peers (all "alive") and the three killed as "dead";
  - every live node reports the evaluation done with the corpus' exact
    numbers (passed, failed, executed, per-project grades and per-module
    outcomes), and GET /evaluation, /evaluation/<id>, .../results and
    /stats read byte for byte the same on all seven;
  - the modules the killed held were run again (attempt 2 or more) by live
    nodes; /stats "all" has the exact totals, and each live node's share is
    what the results document says it ran.
"""

import os
import time

import pytest

import corpus
from conftest import eval_paths, peers_view, wait_converged, wait_done, wait_for
from netns import ns_cluster
from test_replication import (check_eval, expected_node_stats, ns_submit,
                              small_expect, wait_identical)

pytestmark = pytest.mark.serial

N = 10
ACCEPTOR = 1                    # b
CUT_SECONDS = 30.0
# (name, passed, failed, modules) per project; every test sleeps 1 s
SPECS = [(f"p{i}", 1 + i % 3, i % 2 + i // 5, 4) for i in range(N)]


def write_corpus_zip(base):
    src = os.path.join(str(base), "ten-src")
    projects, modules = {}, {}
    for name, p, f, nmod in SPECS:
        corpus.write_simple(src, name, p, f, sleep=1.0, modules=nmod)
        pr, mo = small_expect((name, p, f, nmod))
        projects.update(pr)
        modules.update(mo)
    return corpus.zip_dir(src, os.path.join(str(base), "ten.zip")), projects, modules


def states(view):
    return {m["address"]: m["state"] for m in view.get("members", [])}


def agrees(node, alive, dead):
    """node names exactly `alive` (less itself) as alive peers, every one
    of them alive, and every one of `dead` dead."""
    v = peers_view(node)
    if v is None or v.get("address") != node.addr:
        return False
    st = states(v)
    return (set(v.get("peers", [])) == alive - {node.addr}
            and all(st.get(a) == "alive" for a in alive)
            and all(st.get(a) == "dead" for a in dead))


def views(nodes):
    out = {}
    for n in nodes:
        v = peers_view(n)
        out[n.addr] = None if v is None else sorted(
            f"{a}={s}" for a, s in states(v).items())
    return out


def running(node, eid):
    """{module: node running it} of eid, as node sees it."""
    st, res = node.get(f"/evaluation/{eid}/results", timeout=10)
    assert st == 200, res
    return {m["module"]: m.get("node") for p in res["projects"]
            for m in p["modules"] if m.get("state") == "running"}


def cut(cl, group, on):
    """Blackhole routes both ways between the nodes of group (indexes) and
    every other node."""
    for k in group:
        for j in range(len(cl.names)):
            if j in group:
                continue
            for a, b in ((k, j), (j, k)):
                (cl.blackhole if on else cl.unblackhole)(a, b)


@pytest.mark.timeout(200)
def test_ten_nodes_kill_three_cut_two_agree_and_exact(tmp_path):
    t_start = time.monotonic()
    zip_path, projects, modules = write_corpus_zip(tmp_path)
    with ns_cluster(tmp_path, "t", n=N, slots=1) as (cl, nodes, sec):
        everyone = {n.addr for n in nodes}
        wait_converged(nodes, 40.0)
        t_conv = time.monotonic()
        acceptor = nodes[ACCEPTOR]
        eid = ns_submit(acceptor, zip_path, sec["MESHTEST_API_TOKEN"])

        # five nodes besides the acceptor hold modules: the victims
        def busy():
            held_by = set(running(acceptor, eid).values())
            return [k for k, n in enumerate(nodes)
                    if k != ACCEPTOR and n.addr in held_by]
        wait_for(lambda: len(busy()) >= 5, 60.0, "five nodes running modules",
                 explain=lambda: f"running: {running(acceptor, eid)}")
        victims = busy()
        killed, cut_ks = victims[:3], victims[3:5]
        dead = {nodes[k].addr for k in killed}
        cut_off = {nodes[k].addr for k in cut_ks}
        live = everyone - dead
        held = {m for m, a in running(acceptor, eid).items() if a in dead}
        st, before = acceptor.get(f"/evaluation/{eid}", timeout=10)
        assert st == 200 and before["status"] == "running", before
        for k in killed:
            nodes[k].kill9()
        cut(cl, cut_ks, True)
        t_cut = time.monotonic()
        major = [n for n in nodes if n.addr in live - cut_off]
        minor = [nodes[k] for k in cut_ks]
        try:
            # each side sees the other (and the killed) dead before the end
            # of the cut, and its own side alive
            wait_for(lambda: all(agrees(n, live - cut_off, dead | cut_off)
                                 for n in major)
                     and all(agrees(n, cut_off, dead | (live - cut_off))
                             for n in minor),
                     CUT_SECONDS - 2.0, "both sides of the cut", interval=0.5,
                     explain=lambda: f"views during the cut: {views(major + minor)}")
            time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - t_cut)))
            # what each side made of the evaluation meanwhile
            at_heal = {n.addr: n.get(f"/evaluation/{eid}", timeout=10)[1]
                       for n in (acceptor, minor[0])}
        finally:
            cut(cl, cut_ks, False)
        t_heal = time.monotonic()

        alive_nodes = major + minor
        wait_for(lambda: all(agrees(n, live, dead) for n in alive_nodes), 30.0,
                 "membership after the heal", interval=0.5,
                 explain=lambda: f"views after the heal: {views(alive_nodes)}")
        t_agree = time.monotonic()
        for n in alive_nodes:
            wait_done(n, eid, timeout=max(10.0, 170.0 - (time.monotonic() - t_start)))
        _, docs = wait_identical(alive_nodes, eval_paths([eid]), 20.0,
                                 "the seven live nodes after the heal")
        t_same = time.monotonic()

        res = docs[f"/evaluation/{eid}/results"]
        check_eval(docs[f"/evaluation/{eid}"], res, eid, projects, modules,
                   acceptor, nodes)
        assert docs["/evaluation"] == {"evaluations": [eid]}
        # what the killed held was run again by a live node, unless it was
        # recorded in the moment between the look and the kill
        final = {m["module"]: m for p in res["projects"] for m in p["modules"]}
        again = {m for m in held if final[m]["node"] in live}
        tries = {m: (final[m]["node"], final[m]["attempt"]) for m in held}
        assert all(final[m]["attempt"] >= 2 for m in again), tries
        assert len(again) >= max(3, len(held) - 1), tries
        stats = docs["/stats"]
        passed = sum(p["passed"] for p in projects.values())
        failed = sum(p["failed"] for p in projects.values())
        assert stats["all"] == {"failed": failed, "passed": passed,
                                "projects": N, "evaluations": 1}
        # "nodes" lists the alive members; the killed ones' share (modules
        # they finished before kill -9) is in "all" only
        assert stats["nodes"] == [
            expected_node_stats(a, [res], {eid} if a == acceptor.addr else set())
            for a in sorted(live)]
        print("\n" + "; ".join(
            f"{a} at the heal: {d['status']}, {d['executed']} run, "
            f"{d['in_progress']} running, {d['pending']} pending"
            for a, d in at_heal.items())
            + f"; at the cut: {before['executed']} run")
        print(f"ten nodes: converged {t_conv - t_start:.1f} s, five busy "
              f"{t_cut - t_conv:.1f} s later, cut {t_heal - t_cut:.1f} s, "
              f"agreement {t_agree - t_heal:.1f} s and done and identical "
              f"{t_same - t_heal:.1f} s after the heal, total "
              f"{time.monotonic() - t_start:.1f} s; of {len(held)} modules the "
              f"killed held, {len(again)} run again; attempts: "
              f"{sorted(m['attempt'] for m in final.values())}")
