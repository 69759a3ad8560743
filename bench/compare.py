#!/usr/bin/python3
"""meshtest against plain pytest and pytest-xdist, on the same corpora, in one
invocation (issue 10's targets).

    /usr/bin/python3 bench/compare.py --bin build/meshtest [--reps 3]
        [--only trivial,sleepy,cluster,real] [--real-dir /var/tmp/mt-real]

Corpora, freshly generated for every repetition (new content each time, so
no recorded duration of an earlier run helps; result reuse does not exist):

  trivial  10 projects x 10 modules x 3 trivial tests; 1 node, 2 slots.
           Plain pytest one project after the other, pytest-xdist -n 2 over
           all projects (importlib import mode), meshtest with isolation
           "project" (the default) and "module".
  sleepy   6 projects x 8 modules x 5 tests that sleep 200 ms; pytest-xdist
           -n 8 against one node with 8 slots.
  cluster  the sleepy corpus on 3 loopback nodes x 8 slots, against the
           one-node figure.
  real     the projects checked out in --real-dir (e.g. idna,
           more-itertools, boltons and a course project, fetched there by
           hand: their code is never part of this repository): plain pytest
           per project, pytest-xdist -n 2 per project, meshtest warm (a node
           that ran the corpus before) and cold (a fresh node).

Each meshtest figure is a median over --reps, wall time from POST to a status
other than "running" (polled every 50 ms), on a node whose workers are warm
(one unmeasured evaluation first), except "cold". Overhead per module =
(slot-busy seconds, from the node's /health, minus the sum of pytest's own
test durations, from /results) / modules. Exits 1 when meshtest's counts
differ from pytest's on any corpus.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import json
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_single import (PYTEST, Node, free_port, http, junit_counts,  # noqa: E402
                          multipart, zip_corpus)

PYTHON = "/usr/bin/python3"


# ----------------------------------------------------------------- corpora

def write_trivial(root, seed, projects=10, modules=10, tests=3):
    names = []
    for p in range(projects):
        name = f"t{p:02d}"
        d = os.path.join(root, name, "tests")
        os.makedirs(d)
        for m in range(modules):
            with open(os.path.join(d, f"test_m{m:02d}.py"), "w") as f:
                for t in range(tests):
                    # the seed makes every repetition new content
                    f.write(f"def test_{t}():\n    assert {seed} + {t} == {seed + t}\n\n\n")
        names.append(name)
    return names


def write_sleepy(root, seed, projects=6, modules=8, tests=5, sleep=0.2):
    names = []
    for p in range(projects):
        name = f"s{p:02d}"
        d = os.path.join(root, name, "tests")
        os.makedirs(d)
        for m in range(modules):
            with open(os.path.join(d, f"test_m{m:02d}.py"), "w") as f:
                f.write("import time\n\n\n")
                for t in range(tests):
                    f.write(f"def test_{t}():\n    time.sleep({sleep})\n"
                            f"    assert {seed} == {seed}\n\n\n")
        names.append(name)
    return names


# ---------------------------------------------------------------- baselines

def pytest_serial(root, names, work, tag):
    """pytest on each project, one after the other: (wall, counts)."""
    t0 = time.monotonic()
    total = [0, 0, 0]
    for name in names:
        xml = os.path.join(work, f"{tag}-{name}-{uuid.uuid4().hex}.xml")
        subprocess.run(PYTEST + [f"--junit-xml={xml}"], cwd=os.path.join(root, name),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        p, f, s, _ = junit_counts(xml)
        total = [total[0] + p, total[1] + f, total[2] + s]
    return time.monotonic() - t0, tuple(total)


def pytest_xdist_all(root, names, work, n):
    """pytest -n N over all projects at once (importlib mode: same-named
    modules of different projects may coexist)."""
    xml = os.path.join(work, f"xdist-{uuid.uuid4().hex}.xml")
    t0 = time.monotonic()
    subprocess.run(PYTEST + ["-n", str(n), "--import-mode=importlib",
                             f"--junit-xml={xml}"] + names, cwd=root,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    p, f, s, _ = junit_counts(xml)
    return wall, (p, f, s)


def pytest_xdist_each(root, names, work, n):
    """pytest -n N on each project, one after the other."""
    t0 = time.monotonic()
    total = [0, 0, 0]
    for name in names:
        xml = os.path.join(work, f"xdist-{name}-{uuid.uuid4().hex}.xml")
        subprocess.run(PYTEST + ["-n", str(n), f"--junit-xml={xml}"],
                       cwd=os.path.join(root, name), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p, f, s, _ = junit_counts(xml)
        total = [total[0] + p, total[1] + f, total[2] + s]
    return time.monotonic() - t0, tuple(total)


# ------------------------------------------------------------------ meshtest

def health(node):
    st, raw = http("GET", node.base + "/health")
    return json.loads(raw) if st == 200 else {}


def submit(node, zip_path, fields, timeout=900):
    """Submit, wait, fetch /results: (wall, counts, results, busy seconds)."""
    with open(zip_path, "rb") as f:
        data = f.read()
    busy0 = health(node).get("slot_busy_seconds", 0.0)
    body, ctype = multipart(fields, os.path.basename(zip_path), data)
    t0 = time.monotonic()
    st, raw = http("POST", node.base + "/evaluation", body, {"Content-Type": ctype},
                   timeout=120)
    if st != 201:
        sys.exit(f"bench: POST /evaluation answered {st}: {raw[:300]!r}\n{node.tail()}")
    eid = json.loads(raw)["id"]
    while True:
        st, raw = http("GET", f"{node.base}/evaluation/{eid}")
        if st == 200 and json.loads(raw).get("status") != "running":
            break
        if time.monotonic() - t0 > timeout:
            sys.exit(f"bench: {eid} still running after {timeout} s\n{node.tail()}")
        time.sleep(0.05)
    wall = time.monotonic() - t0
    doc = json.loads(raw)
    st, raw = http("GET", f"{node.base}/evaluation/{eid}/results", timeout=120)
    res = json.loads(raw)
    time.sleep(0.2)   # the last slot's time is added as it lets go of the batch
    busy = health(node).get("slot_busy_seconds", 0.0) - busy0
    return wall, (doc["passed"], doc["failed"], doc["skipped"]), res, busy


def overhead_per_module(res, busy):
    modules = tests = 0
    for p in res.get("projects", []):
        for m in p.get("modules", []):
            modules += 1
            tests += sum(float(t.get("duration") or 0) for t in m.get("tests", []))
    return (busy - tests) / modules if modules else 0.0, modules


def start_nodes(binary, work, n, slots, extra=()):
    ports = [free_port() for _ in range(n)]
    seeds = f"127.0.0.1:{ports[0]}" if n > 1 else ""
    nodes = [Node(binary, work, slots, list(extra), name=f"n{n}-{i}-{uuid.uuid4().hex[:6]}",
                  seeds=seeds, port=port, ready_path="/health")
             for i, port in enumerate(ports)]
    for nd in nodes:
        nd.start()
    if n > 1:
        everyone = {nd.addr for nd in nodes}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            views = []
            for nd in nodes:
                st, raw = http("GET", nd.base + "/network/peers", timeout=3)
                views.append(set(json.loads(raw).get("peers", [])) if st == 200 else set())
            if all(v == everyone - {nd.addr} for v, nd in zip(views, nodes)):
                break
            time.sleep(0.2)
    return nodes


def stop_nodes(nodes):
    for nd in nodes:
        nd.stop()


# ------------------------------------------------------------------ report

class Table:
    def __init__(self):
        self.rows = []
        self.mismatch = []

    def add(self, corpus, what, value, note=""):
        self.rows.append((corpus, what, value, note))
        print(f"  {what:<44} {value:>9}  {note}", flush=True)

    def check(self, corpus, what, got, want):
        if got != want:
            self.mismatch.append(f"{corpus}: {what} counted {got}, pytest {want}")
            print(f"  MISMATCH {what}: {got} != pytest {want}", flush=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fresh_zip(work, writer, seed):
    root = os.path.join(work, f"corpus-{uuid.uuid4().hex[:8]}")
    os.makedirs(root)
    names = writer(root, seed)
    zp = root + ".zip"
    zip_corpus(root, names, zp)
    return root, names, zp


# ------------------------------------------------------------------ corpora

def bench_trivial(args, work, table):
    print("trivial: 10 projects x 10 modules x 3 trivial tests; 1 node, 2 slots", flush=True)
    node = start_nodes(args.bin, work, 1, 2)[0]
    try:
        _, _, zp = fresh_zip(work, write_trivial, 1)
        submit(node, zp, {})                                 # warm the workers
        serial, xdist, proj, mod, oh_p, oh_m = [], [], [], [], [], []
        for rep in range(args.reps):
            root, names, zp = fresh_zip(work, write_trivial, 1000 + rep)
            w, want = pytest_serial(root, names, work, "serial")
            serial.append(w)
            w, c = pytest_xdist_all(root, names, work, 2)
            xdist.append(w)
            table.check("trivial", "pytest-xdist", c, want)
            w, c, res, busy = submit(node, zp, {"isolation": "project"})
            proj.append(w)
            oh_p.append(overhead_per_module(res, busy)[0])
            table.check("trivial", "meshtest project", c, want)
            _, _, zp2 = fresh_zip(work, write_trivial, 2000 + rep)
            w, c, res, busy = submit(node, zp2, {"isolation": "module"})
            mod.append(w)
            oh_m.append(overhead_per_module(res, busy)[0])
            table.check("trivial", "meshtest module", c, want)
        x = med(xdist)
        table.add("trivial", "plain pytest, project after project", f"{med(serial):.2f} s")
        table.add("trivial", "pytest-xdist -n 2, all projects", f"{x:.2f} s")
        table.add("trivial", "meshtest, isolation project", f"{med(proj):.2f} s",
                  f"{med(proj) / x:.2f}x xdist (target <= 0.9), "
                  f"{med(proj) / med(serial):.2f}x serial (target <= 0.35)")
        table.add("trivial", "meshtest, isolation module", f"{med(mod):.2f} s",
                  f"{med(mod) / x:.2f}x xdist (target <= 2)")
        table.add("trivial", "overhead per module, project", f"{med(oh_p) * 1000:.1f} ms",
                  "(target <= 15 ms)")
        table.add("trivial", "overhead per module, module", f"{med(oh_m) * 1000:.1f} ms",
                  "(target <= 40 ms)")
    finally:
        stop_nodes([node])


def bench_sleepy(args, work, table, cluster):
    print("sleepy: 6 projects x 8 modules x 5 tests of 200 ms; 8 slots a node", flush=True)
    nodes1 = start_nodes(args.bin, work, 1, 8)
    nodes3 = start_nodes(args.bin, work, 3, 8) if cluster else []
    try:
        _, _, zp = fresh_zip(work, write_sleepy, 1)
        submit(nodes1[0], zp, {})
        if nodes3:
            submit(nodes3[0], zp, {})
        xdist, one, three = [], [], []
        for rep in range(args.reps):
            root, names, zp = fresh_zip(work, write_sleepy, 1000 + rep)
            w, want = pytest_xdist_all(root, names, work, 8)
            xdist.append(w)
            w, c, _, _ = submit(nodes1[0], zp, {})
            one.append(w)
            table.check("sleepy", "meshtest 1 node", c, want)
            if nodes3:
                _, _, zp3 = fresh_zip(work, write_sleepy, 2000 + rep)
                w, c, _, _ = submit(nodes3[0], zp3, {})
                three.append(w)
                table.check("sleepy", "meshtest 3 nodes", c, want)
        table.add("sleepy", "pytest-xdist -n 8, all projects", f"{med(xdist):.2f} s")
        table.add("sleepy", "meshtest, 1 node x 8 slots", f"{med(one):.2f} s",
                  f"{med(one) / med(xdist):.2f}x xdist (target <= 0.85)")
        if three:
            table.add("sleepy", "meshtest, 3 nodes x 8 slots", f"{med(three):.2f} s",
                      f"{med(three) / med(one):.2f}x one node (target <= 0.4)")
    finally:
        stop_nodes(nodes1 + nodes3)


def bench_real(args, work, table):
    real = args.real_dir
    names = sorted(n for n in os.listdir(real) if os.path.isdir(os.path.join(real, n))
                   and not n.startswith(".")) if real and os.path.isdir(real) else []
    if not names:
        print(f"real: no projects in {real!r}; skipped", flush=True)
        return
    print(f"real: {', '.join(names)}; 1 node, 2 slots", flush=True)
    root = os.path.join(work, "real")
    os.makedirs(root)
    for n in names:
        shutil.copytree(os.path.join(real, n), os.path.join(root, n), symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__", ".tox"))
    zp = os.path.join(work, "real.zip")
    zip_corpus(root, names, zp)
    serial, xdist, warm, cold = [], [], [], []
    want = None
    for rep in range(args.reps):
        w, want = pytest_serial(root, names, work, "real")
        serial.append(w)
        w, _ = pytest_xdist_each(root, names, work, 2)
        xdist.append(w)
        # cold: a fresh node, its first evaluation; warm: the same again
        node = start_nodes(args.bin, work, 1, 2)[0]
        try:
            w, c, _, _ = submit(node, zp, {})
            cold.append(w)
            w, c2, _, _ = submit(node, zp, {})
            warm.append(w)
        finally:
            stop_nodes([node])
        table.check("real", "meshtest", c2, want)
    table.add("real", "plain pytest, project after project", f"{med(serial):.2f} s")
    table.add("real", "pytest-xdist -n 2, project after project", f"{med(xdist):.2f} s")
    table.add("real", "meshtest warm", f"{med(warm):.2f} s",
              f"{med(warm) / med(serial):.2f}x serial (target <= 0.7)")
    table.add("real", "meshtest cold (fresh node)", f"{med(cold):.2f} s",
              f"{med(cold) / med(warm):.2f}x warm (target <= 1.15)")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="trivial,sleepy,cluster,real")
    ap.add_argument("--real-dir", default="/var/tmp/mt-real")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    only = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="meshtest-compare-", dir="/var/tmp")
    os.chmod(work, 0o755)
    table = Table()
    try:
        if "trivial" in only:
            bench_trivial(args, work, table)
        if "sleepy" in only or "cluster" in only:
            bench_sleepy(args, work, table, "cluster" in only)
        if "real" in only:
            bench_real(args, work, table)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if table.mismatch:
        print("MISMATCH:\n  " + "\n  ".join(table.mismatch))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
