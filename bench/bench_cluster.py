#!/usr/bin/python3
"""Cluster benchmark: one corpus of I/O-bound tests on 1 node and on 3 nodes.

    /usr/bin/python3 bench/bench_cluster.py --bin build/meshtest \
        [--slots 2 --projects 4 --modules 6 --tests 5 --sleep 0.3]

Generates a corpus in a temporary folder: P projects, each with M test
modules of T tests that mostly wait (each sleeps --sleep seconds, as socket
tests wait on the network), one failing test every --fail-every modules and
one skipped test per project, so the counts are worth comparing. Then:

  (a) one fresh `meshtest serve` node on a free loopback port, --slots S;
  (b) three fresh nodes on loopback, each --slots S, seeded with the first,
      once they see each other;

the corpus ZIP is submitted to the first node over HTTP (multipart) and
polled until the status is no longer "running". Prints the wall time (POST
to status done) of both, the speedup, how the 3-node run spread its modules,
and exits 1 with MISMATCH when the counts of the two runs differ from each
other or from the generated corpus. Only loopback traffic: urllib is built
without proxy handlers (bench_single.OPENER).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_single import (Node, free_port, http, run_meshtest,  # noqa: E402
                          zip_corpus)


# --------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------

def make_module(p, m, tests, sleep, failing, skipping):
    lines = ["import time", "", "import pytest", "", ""]
    for t in range(tests):
        lines.append(f"def test_p{p}_m{m}_t{t}():")
        lines.append(f"    time.sleep({sleep})")
        if skipping and t == tests - 1:
            lines.append("    pytest.skip('planted skip')")
        elif failing and t == tests - 1:
            lines.append(f"    assert {t} == {t + 1}, 'planted failure'")
        else:
            lines.append(f"    assert {t} + 1 == {t + 1}")
        lines.append("")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def make_corpus(root, projects, modules, tests, sleep, fail_every):
    """Write the corpus; returns (project names, (passed, failed, skipped))."""
    names, k = [], 0
    passed = failed = skipped = 0
    for p in range(projects):
        name = f"io{p:02d}"
        tdir = os.path.join(root, name, "tests")
        os.makedirs(tdir)
        for m in range(modules):
            # the first module of every project holds a skipped test
            skipping = m == 0 and tests > 0
            failing = (not skipping and fail_every > 0 and tests > 0 and
                       k % fail_every == fail_every - 1)
            k += 1
            with open(os.path.join(tdir, f"test_m{m:02d}.py"), "w") as f:
                f.write(make_module(p, m, tests, sleep, failing, skipping))
            passed += tests - (1 if skipping or failing else 0)
            failed += 1 if failing else 0
            skipped += 1 if skipping else 0
        names.append(name)
    return names, (passed, failed, skipped)


# --------------------------------------------------------------------------
# nodes
# --------------------------------------------------------------------------

def peers(node):
    """The alive peers a node names (GET /network/peers), or None."""
    try:
        st, raw = http("GET", node.base + "/network/peers", timeout=3)
    except OSError:
        return None
    if st != 200:
        return None
    return set(json.loads(raw).get("peers", []))


def start_cluster(binary, work, n, slots, extra):
    """n nodes seeded with the first; returns them once each sees the
    others as alive."""
    ports = [free_port() for _ in range(n)]
    seeds = f"127.0.0.1:{ports[0]}" if n > 1 else ""
    nodes = [Node(binary, work, slots, extra, name=f"c{n}-node{i + 1}",
                  seeds=seeds, port=port, ready_path="/health")
             for i, port in enumerate(ports)]
    for nd in nodes:
        nd.start()
    everyone = {nd.addr for nd in nodes}
    t0 = time.monotonic()
    while n > 1:
        if all(peers(nd) == everyone - {nd.addr} for nd in nodes):
            break
        if time.monotonic() - t0 > 20:
            for nd in nodes:
                nd.stop()
            sys.exit(f"bench: the {n} nodes did not find each other in 20 s")
        time.sleep(0.1)
    return nodes


def spread(results):
    out = {}
    for proj in results.get("projects") or []:
        for mod in proj.get("modules") or []:
            node = mod.get("node") or "?"
            out[node] = out.get(node, 0) + 1
    return out


def run_on(binary, work, n, slots, extra, zip_path, module_timeout, timeout):
    nodes = start_cluster(binary, work, n, slots, extra)
    try:
        return run_meshtest(nodes[0], zip_path, module_timeout, timeout)
    finally:
        for nd in nodes:
            nd.stop()


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def counts(run):
    st = run["status"]
    return (int(st.get("passed", -1)), int(st.get("failed", -1)),
            int(st.get("skipped", -1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="path to meshtest")
    ap.add_argument("--slots", type=int, default=2,
                    help="slots per node, the same on 1 and on 3 nodes")
    ap.add_argument("--projects", type=int, default=4)
    ap.add_argument("--modules", type=int, default=6)
    ap.add_argument("--tests", type=int, default=5)
    ap.add_argument("--sleep", type=float, default=0.3,
                    help="seconds every test waits")
    ap.add_argument("--nodes", type=int, default=3,
                    help="size of the cluster compared with one node")
    ap.add_argument("--fail-every", type=int, default=4,
                    help="plant one failing test every N modules (0: none)")
    ap.add_argument("--module-timeout", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=900,
                    help="give up on an evaluation after this")
    ap.add_argument("--node-arg", action="append", default=[],
                    help="extra argument for meshtest serve (repeatable)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary folder")
    a = ap.parse_args()
    if a.nodes < 2 or a.slots < 1 or a.projects < 1 or a.modules < 1:
        sys.exit("bench: need --nodes >= 2, --slots, --projects, --modules >= 1")

    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench: {binary} is not executable")
    work = tempfile.mkdtemp(prefix="meshtest-bench-cluster-")
    # the nodes' slot users must be able to reach their data folders inside
    os.chmod(work, 0o711)
    try:
        corpus = os.path.join(work, "corpus")
        names, want = make_corpus(corpus, a.projects, a.modules, a.tests,
                                  a.sleep, a.fail_every)
        zip_path = os.path.join(work, "corpus.zip")
        zip_corpus(corpus, names, zip_path)
        nmod = a.projects * a.modules
        ntests = nmod * a.tests
        print(f"corpus: {a.projects} projects x {a.modules} modules x "
              f"{a.tests} tests = {ntests} tests, each waiting {a.sleep} s "
              f"(>= {a.tests * a.sleep:.1f} s per module); expected passed/"
              f"failed/skipped {want}; --slots {a.slots} per node", flush=True)

        one = run_on(binary, work, 1, a.slots, a.node_arg, zip_path,
                     a.module_timeout, a.timeout)
        print(f"1 node : {one['wall']:7.2f} s", flush=True)
        many = run_on(binary, work, a.nodes, a.slots, a.node_arg, zip_path,
                      a.module_timeout, a.timeout)
        print(f"{a.nodes} nodes: {many['wall']:7.2f} s", flush=True)

        print()
        print(f"{'run':<10} {'wall s':>8} {'tests/s':>8} {'passed':>7} "
              f"{'failed':>7} {'skipped':>8}  status")
        for label, r in (("1 node", one), (f"{a.nodes} nodes", many)):
            p, f, s = counts(r)
            print(f"{label:<10} {r['wall']:8.2f} {ntests / r['wall']:8.1f} "
                  f"{p:7d} {f:7d} {s:8d}  {r['status'].get('status')}")
        speedup = one["wall"] / many["wall"]
        ideal = a.tests * a.sleep * nmod / (a.slots * a.nodes)
        print()
        print(f"speedup {a.nodes} nodes vs 1 node: {speedup:.2f}x "
              f"(ideal {a.nodes}x; pure waiting alone needs "
              f"{ideal:.2f} s on {a.nodes} nodes)")
        print("modules per node in the "
              f"{a.nodes}-node run: " + ", ".join(
                  f"{k} {v}" for k, v in sorted(spread(many["results"])
                                                 .items())))

        ok = True
        for label, r in (("1 node", one), (f"{a.nodes} nodes", many)):
            if counts(r) != want:
                print(f"MISMATCH: {label} passed/failed/skipped {counts(r)} "
                      f"!= generated {want}")
                ok = False
            if r["status"].get("status") != "done":
                print(f"MISMATCH: {label} status "
                      f"{r['status'].get('status')}, want done")
                ok = False
            if r["status"].get("executed") != nmod:
                print(f"MISMATCH: {label} executed "
                      f"{r['status'].get('executed')}, want {nmod}")
                ok = False
        if ok:
            print("counts match")
        return 0 if ok else 1
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
