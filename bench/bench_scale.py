#!/usr/bin/python3
"""The node's own cost as an evaluation grows (issue 11): wall time, node CPU
per module, peak RSS and bytes replicated per module, on 1 and on 3 loopback
nodes, and GET latency under wrk while it grades.

    /usr/bin/python3 bench/bench_scale.py --bin build/meshtest
        [--sizes 50x10,100x10] [--nodes 1,3] [--slots 2] [--wrk-seconds 3]
        [--sim-members 1000]

Each size PxM is P projects x M modules x 1 trivial test, freshly written,
one ZIP, submitted to the first node with the default settings. Node CPU is
the meshtest processes' own user+system time (from /proc/<pid>/stat; pytest,
bubblewrap and the workers are other processes and are excluded) from just
before the POST to the end, summed over the nodes, per module. Peak RSS is
VmHWM of each node. Replicated bytes are what every node pushed and pulled
(GET /sync/counters), per module. While the evaluation runs, wrk (Debian's
package, when installed) loads GET /evaluation/<id> and GET /stats of the
first node for --wrk-seconds each; its requests/s and p99 are printed.

CPU, RSS and bytes are of a first run with nothing else asked of the nodes;
wrk runs during a second run of the same corpus. The baseline of the same
invocation is plain pytest on the same corpus (one process over all
projects, importlib mode), for the wall time a user would otherwise wait.

First, the membership simulation (tests/unit/test_membership_sim.c, built
next to --bin by `make unit`) runs with --sim-members members and prints how
long three deaths took to be known to all, requests per member per second
and false deaths. Only loopback traffic.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_load import parse_wrk  # noqa: E402
from bench_single import PYTEST, http, multipart, zip_corpus  # noqa: E402
from compare import start_nodes, stop_nodes  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def write_corpus(root, projects, modules):
    names = []
    for p in range(projects):
        name = f"s{p:04d}"
        d = os.path.join(root, name, "tests")
        os.makedirs(d)
        for m in range(modules):
            with open(os.path.join(d, f"test_{name}_m{m:03d}.py"), "w") as f:
                f.write(f"def test_one():\n    assert {m} % 7 != 6\n")
        names.append(name)
    return names


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def counters(node):
    st, raw = http("GET", node.base + "/sync/counters")
    c = json.loads(raw) if st == 200 else {}
    return c.get("pushed_bytes", 0) + c.get("pulled_bytes", 0)


def wrk(url, seconds):
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True).stdout
    return parse_wrk(out)


def run_pytest(root, names):
    t0 = time.monotonic()
    subprocess.run([*PYTEST, "--import-mode=importlib", *names], cwd=root,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def submit_and_wait(args, node, zp, during=None):
    """POST the ZIP, call during(eid) in a thread, wait for the end: (eid, wall, doc)."""
    with open(zp, "rb") as f:
        body, ctype = multipart({"module_timeout": "60"}, "c.zip", f.read())
    t0 = time.monotonic()
    st, raw = http("POST", node.base + "/evaluation", body, {"Content-Type": ctype},
                   timeout=300)
    if st != 201:
        sys.exit(f"bench: POST answered {st}: {raw[:300]!r}")
    eid = json.loads(raw)["id"]
    th = None
    if during is not None:
        th = threading.Thread(target=during, args=(eid,))
        th.start()
    while True:
        st, raw = http("GET", f"{node.base}/evaluation/{eid}", timeout=30)
        doc = json.loads(raw) if st == 200 else {}
        if doc.get("status") not in (None, "running"):
            break
        if time.monotonic() - t0 > args.timeout:
            sys.exit(f"bench: {eid} still running after {args.timeout} s")
        time.sleep(0.2)
    wall = time.monotonic() - t0
    if th is not None:
        th.join()
    return eid, wall, doc


def run_size(args, work, projects, modules, n):
    root = os.path.join(work, f"c-{projects}x{modules}-{n}")
    os.makedirs(root)
    names = write_corpus(root, projects, modules)
    zp = root + ".zip"
    zip_corpus(root, names, zp)
    total = projects * modules
    nodes = start_nodes(args.bin, work, n, args.slots)
    loads = {}
    try:
        # measured run: nothing but the evaluation and its own polling
        cpu0 = [cpu_seconds(nd.proc.pid) for nd in nodes]
        eid, wall, doc = submit_and_wait(args, nodes[0], zp)
        time.sleep(3.0)   # replication settles
        cpu = sum(cpu_seconds(nd.proc.pid) - c for nd, c in zip(nodes, cpu0))
        rss = [peak_rss_mb(nd.proc.pid) for nd in nodes]
        repl = sum(counters(nd) for nd in nodes)
        executed = doc.get("executed", 0)
        t_start = time.monotonic()
        http("GET", f"{nodes[0].base}/evaluation/{eid}")
        get_ms = (time.monotonic() - t_start) * 1000
        # the same corpus again, under wrk
        if args.wrk_seconds > 0 and shutil.which("wrk") is not None:
            def load(eid2):
                time.sleep(0.5)
                loads["status"] = wrk(f"{nodes[0].base}/evaluation/{eid2}", args.wrk_seconds)
                loads["stats"] = wrk(f"{nodes[0].base}/stats", args.wrk_seconds)
            submit_and_wait(args, nodes[0], zp, load)
    finally:
        stop_nodes(nodes)
    print(f"  {projects}x{modules} on {n} node{'s' if n > 1 else ''}: wall {wall:.1f} s,"
          f" executed {executed}/{total}, node CPU {cpu:.2f} s"
          f" = {cpu / total * 1000:.2f} ms/module, peak RSS "
          f"{'/'.join(f'{r:.0f}' for r in rss)} MB, replicated "
          f"{repl / total:.0f} B/module, one GET /evaluation/<id> {get_ms:.1f} ms", flush=True)
    for what, res in loads.items():
        if res is not None:
            rps, p50, p99, bad = res
            print(f"    wrk GET {what:<7} while grading: {rps:8.0f} req/s, p50 {p50},"
                  f" p99 {p99}, non-2xx {bad}", flush=True)
    if executed != total:
        sys.exit(f"bench: executed {executed} of {total} modules")
    return root, names


def simulate(args):
    """The SWIM + Lifeguard simulation (tests/unit/test_membership_sim.c),
    built next to --bin, at --sim-members members."""
    sim = os.path.join(os.path.dirname(args.bin), "unit", "test_membership_sim")
    if not os.path.exists(sim):
        print(f"  membership simulation: {sim} is not built (make unit)", flush=True)
        return
    t0 = time.monotonic()
    out = subprocess.run([sim], capture_output=True, text=True,
                         env=dict(os.environ, MESHTEST_SIM_MEMBERS=str(args.sim_members)))
    lines = [x for x in (out.stdout + out.stderr).splitlines() if "simulation" in x]
    print(f"  {lines[0] if lines else 'membership simulation: no result'}"
          f" ({'passed' if out.returncode == 0 else 'FAILED'},"
          f" {time.monotonic() - t0:.0f} s to simulate)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="50x10,100x10")
    ap.add_argument("--nodes", default="1,3")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--sim-members", type=int, default=1000,
                    help="members of the membership simulation (0: skip it)")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="meshtest-scale-")
    os.chmod(work, 0o711)
    try:
        if args.sim_members > 0:
            simulate(args)
        for size in args.sizes.split(","):
            projects, modules = (int(x) for x in size.split("x"))
            root = names = None
            for n in (int(x) for x in args.nodes.split(",")):
                root, names = run_size(args, work, projects, modules, n)
            print(f"  {projects}x{modules} plain pytest (one process, importlib):"
                  f" {run_pytest(root, names):.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
