#!/usr/bin/python3
"""Load check: wrk against GET /evaluation/<id> and GET /stats of a node that
is running an evaluation.

    /usr/bin/python3 bench/bench_load.py --bin build/meshtest [--seconds 10]

Starts a fresh node on a free loopback port, submits a corpus whose modules
keep both slots busy for the whole measurement (tests that sleep), then runs
wrk (Debian's package) for --seconds against each endpoint with 2 threads and
--connections connections, and prints requests per second and the p50/p99
latency wrk reports. Only loopback traffic.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_single as bs  # noqa: E402  (node and HTTP helpers)


def busy_corpus(root):
    names = []
    for p in range(3):
        name = f"load{p}"
        tests = os.path.join(root, name, "tests")
        os.makedirs(tests)
        for m in range(10):
            with open(os.path.join(tests, f"test_m{m}.py"), "w") as f:
                f.write("import time\n\n")
                for t in range(5):
                    f.write(f"def test_{t}():\n    time.sleep(0.4)\n    assert {t} != 4\n\n")
        names.append(name)
    return names


def parse_wrk(text):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return (float(rps.group(1)) if rps else 0.0, lat.get("50", "?"), lat.get("99", "?"),
            int(non2xx.group(1)) if non2xx else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="meshtest-load-")
    os.chmod(work, 0o711)
    corpus = os.path.join(work, "corpus")
    names = busy_corpus(corpus)
    zip_path = os.path.join(work, "corpus.zip")
    bs.zip_corpus(corpus, names, zip_path)
    node = bs.Node(args.bin, work, args.slots, [])
    node.start()
    try:
        with open(zip_path, "rb") as f:
            body, ctype = bs.multipart({"module_timeout": "120"}, "corpus.zip", f.read())
        status, answer = bs.http("POST", node.base + "/evaluation", body,
                                 {"Content-Type": ctype})
        eid = json.loads(answer)["id"]
        time.sleep(1.0)
        rows = []
        for path in (f"/evaluation/{eid}", "/stats"):
            out = subprocess.run(["wrk", "-t2", f"-c{args.connections}",
                                  f"-d{args.seconds}s", "--latency", node.base + path],
                                 capture_output=True, text=True, timeout=args.seconds + 30)
            rows.append((path.replace(eid, "<id>"),) + parse_wrk(out.stdout))
        _, raw = bs.http("GET", node.base + f"/evaluation/{eid}")
        st = json.loads(raw)
        print(f"node busy during the run: status {st['status']}, "
              f"{st['in_progress']} modules in progress, {st['executed']} executed")
        print(f"{'endpoint':<20} {'req/s':>10} {'p50':>10} {'p99':>10} {'non-2xx':>8}")
        for path, rps, p50, p99, bad in rows:
            print(f"{path:<20} {rps:>10.0f} {p50:>10} {p99:>10} {bad:>8}")
        return 1 if any(r[4] for r in rows) else 0
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
