#!/usr/bin/python3
"""Single-node benchmark: meshtest against plain pytest and pytest-xdist.

    /usr/bin/python3 bench/bench_single.py --bin build/meshtest \
        [--projects 6 --modules 8 --tests 10 --slots 2]

Generates a corpus in a temporary folder (P projects, each with M test modules
of T quick tests, a few of which sleep 50 ms like I/O-bound tests, one
failing test every --fail-every modules and one skipped test per project, so
the counts are worth comparing),
then times in one run:

  (a) serial pytest, one project after the other
  (b) pytest -n SLOTS (pytest-xdist), one project after the other
  (c) a fresh `meshtest serve` node on a free loopback port: the corpus ZIP is
      submitted over HTTP (multipart) and polled until the status is no
      longer "running"

and prints wall seconds, tests/s, meshtest's overhead per module, and where
that overhead goes (pytest start-up inside a module versus preparation and
scheduling outside it). Exits 1 with MISMATCH when meshtest's passed/failed/
skipped counts differ from pytest's. Only loopback traffic: urllib is built
without proxy handlers.
"""

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zipfile

PYTHON = "/usr/bin/python3"
PYTEST = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]

# No ProxyHandler: never send anything anywhere but the loopback node.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------

def make_module(p, m, tests, sleepers, failing, skipping):
    lines = ["import time", "", "import pytest", "", ""]
    for t in range(tests):
        lines.append(f"def test_p{p}_m{m}_t{t}():")
        if t < sleepers:
            lines.append("    time.sleep(0.05)")
        if skipping and t == tests - 1:
            lines.append("    pytest.skip('planted skip')")
        elif failing and t == tests - 1:
            lines.append(f"    assert {t} == {t + 1}, 'planted failure'")
        else:
            lines.append(f"    assert sum(range({t + 10})) == {sum(range(t + 10))}")
        lines.append("")
        lines.append("")
    return "\n".join(lines)


def make_corpus(root, projects, modules, tests, sleepers, fail_every):
    """Write the corpus; return (project names, planted failures)."""
    names, failures, k = [], 0, 0
    for p in range(projects):
        name = f"proj{p:02d}"
        tdir = os.path.join(root, name, "tests")
        os.makedirs(tdir)
        for m in range(modules):
            failing = (fail_every > 0 and k % fail_every == fail_every - 1
                       and m > 0)
            failures += 1 if failing else 0
            k += 1
            with open(os.path.join(tdir, f"test_m{m:02d}.py"), "w") as f:
                # the first module of every project has a skipped test
                f.write(make_module(p, m, tests, min(sleepers, tests),
                                    failing and m > 0, m == 0))
        names.append(name)
    return names, failures


def zip_corpus(root, names, zip_path):
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            base = os.path.join(root, name)
            for dirpath, _, files in os.walk(base):
                for fn in sorted(files):
                    full = os.path.join(dirpath, fn)
                    z.write(full, os.path.relpath(full, root))


# --------------------------------------------------------------------------
# pytest runs
# --------------------------------------------------------------------------

def junit_counts(path):
    """(passed, failed, skipped, sum of test durations) from a JUnit XML."""
    passed = failed = skipped = 0
    total = 0.0
    for case in ET.parse(path).getroot().iter("testcase"):
        total += float(case.get("time") or 0)
        if case.find("skipped") is not None:
            skipped += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed, skipped, total


def run_pytest(root, names, work, extra, tag):
    """Run pytest per project, one after the other; return timings/counts."""
    t0 = time.monotonic()
    passed = failed = skipped = 0
    test_time = 0.0
    for name in names:
        xml = os.path.join(work, f"{tag}-{name}.xml")
        proc = subprocess.run(PYTEST + extra + [f"--junit-xml={xml}"],
                              cwd=os.path.join(root, name),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode not in (0, 1):
            sys.exit(f"bench: pytest {tag} failed on {name} "
                     f"(exit {proc.returncode}):\n"
                     f"{proc.stdout.decode(errors='replace')[-3000:]}")
        p, f, s, d = junit_counts(xml)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        test_time += d
    return {"wall": time.monotonic() - t0, "passed": passed,
            "failed": failed, "skipped": skipped, "test_time": test_time}


def pytest_startup(work):
    """Mean wall time of pytest on one module with one trivial test."""
    d = os.path.join(work, "startup", "tests")
    os.makedirs(d)
    with open(os.path.join(d, "test_one.py"), "w") as f:
        f.write("def test_one():\n    assert True\n")
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run(PYTEST, cwd=os.path.dirname(d),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        runs.append(time.monotonic() - t0)
    return sum(runs) / len(runs)


# --------------------------------------------------------------------------
# meshtest node
# --------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_headers():
    tok = os.environ.get("MESHTEST_API_TOKEN")
    return {"Authorization": f"Bearer {tok}"} if tok else {}


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={**auth_headers(), **(headers or {})})
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def multipart(fields, file_name, file_bytes):
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; "
                  f"name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\";"
              f" filename=\"{file_name}\"\r\nContent-Type: application/zip"
              f"\r\n\r\n".encode())
    out.write(file_bytes)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Node:
    """One `meshtest serve` on a loopback port (free_port() unless given),
    logging to <work>/<name>.log with its data in <work>/<name>-data, seeded
    with seeds when given; start() waits until GET ready_path answers 200."""

    def __init__(self, binary, work, slots, extra, name="node", seeds="",
                 port=None, ready_path="/evaluation"):
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.addr}"
        self.ready_path = ready_path
        self.log_path = os.path.join(work, f"{name}.log")
        self.cmd = [binary, "serve", "--listen", self.addr,
                    "--data-dir", os.path.join(work, f"{name}-data"),
                    "--slots", str(slots)]
        if seeds:
            self.cmd += ["--seeds", seeds]
        self.cmd += extra
        self.proc = None

    def start(self, timeout=20.0):
        log = open(self.log_path, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                sys.exit(f"bench: meshtest serve exited with "
                         f"{self.proc.returncode}:\n{self.tail()}")
            try:
                st, _ = http("GET", self.base + self.ready_path, timeout=2)
                if st == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        sys.exit(f"bench: node {self.addr} not ready after {timeout}s:\n"
                 f"{self.tail()}")

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def run_meshtest(node, zip_path, module_timeout, timeout):
    with open(zip_path, "rb") as f:
        data = f.read()
    fields = {"module_timeout": str(module_timeout)} if module_timeout else {}
    body, ctype = multipart(fields, os.path.basename(zip_path), data)
    t0 = time.monotonic()
    st, raw = http("POST", node.base + "/evaluation", body,
                   {"Content-Type": ctype}, timeout=120)
    accepted = time.monotonic() - t0
    if st != 201:
        sys.exit(f"bench: POST /evaluation answered {st}: {raw[:500]!r}\n"
                 f"{node.tail()}")
    eid = json.loads(raw)["id"]
    while True:
        st, raw = http("GET", f"{node.base}/evaluation/{eid}")
        if st == 200:
            status = json.loads(raw)
            if status.get("status") != "running":
                break
        if time.monotonic() - t0 > timeout:
            sys.exit(f"bench: evaluation {eid} still running after "
                     f"{timeout}s\n{node.tail()}")
        time.sleep(0.05)
    wall = time.monotonic() - t0
    st, raw = http("GET", f"{node.base}/evaluation/{eid}/results",
                   timeout=120)
    results = json.loads(raw) if st == 200 else {}
    return {"wall": wall, "accepted": accepted, "status": status,
            "results": results, "id": eid}


def module_stats(results):
    """(module count, mean module duration, mean summed test durations)."""
    durations, test_sums = [], []
    for proj in results.get("projects") or []:
        for mod in proj.get("modules") or []:
            durations.append(float(mod.get("duration") or 0))
            test_sums.append(sum(float(t.get("duration") or 0)
                                 for t in mod.get("tests") or []))
    n = len(durations)
    if n == 0:
        return 0, 0.0, 0.0
    return n, sum(durations) / n, sum(test_sums) / n


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="path to meshtest")
    ap.add_argument("--projects", type=int, default=6)
    ap.add_argument("--modules", type=int, default=8)
    ap.add_argument("--tests", type=int, default=10)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--sleepers", type=int, default=2,
                    help="tests per module that sleep 50 ms")
    ap.add_argument("--fail-every", type=int, default=4,
                    help="plant one failing test every N modules (0: none)")
    ap.add_argument("--module-timeout", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=900,
                    help="give up on the meshtest evaluation after this")
    ap.add_argument("--node-arg", action="append", default=[],
                    help="extra argument for meshtest serve (repeatable)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary folder")
    a = ap.parse_args()

    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench: {binary} is not executable")
    work = tempfile.mkdtemp(prefix="meshtest-bench-")
    # the node's slot users must be able to reach its data folder inside
    os.chmod(work, 0o711)
    node = None
    try:
        corpus = os.path.join(work, "corpus")
        names, planted = make_corpus(corpus, a.projects, a.modules, a.tests,
                                     a.sleepers, a.fail_every)
        zip_path = os.path.join(work, "corpus.zip")
        zip_corpus(corpus, names, zip_path)
        modules = a.projects * a.modules
        tests = modules * a.tests
        print(f"corpus: {a.projects} projects x {a.modules} modules x "
              f"{a.tests} tests = {tests} tests ({a.sleepers} sleeping 50 ms "
              f"per module, {planted} planted failures), slots {a.slots}",
              flush=True)

        startup = pytest_startup(work)
        serial = run_pytest(corpus, names, work, [], "serial")
        xdist = run_pytest(corpus, names, work, ["-n", str(a.slots)], "xdist")

        node = Node(binary, work, a.slots, a.node_arg)
        boot = node.start()
        mesh = run_meshtest(node, zip_path, a.module_timeout, a.timeout)
        node.stop()
        node = None

        st = mesh["status"]
        m_passed, m_failed = int(st.get("passed", -1)), int(st.get("failed", -1))
        m_skipped = int(st.get("skipped", -1))
        nmod, mean_mod, mean_tests = module_stats(mesh["results"])

        print()
        print(f"{'runner':<22} {'wall s':>8} {'tests/s':>9} "
              f"{'passed':>7} {'failed':>7} {'skipped':>8}")
        for label, r in (("pytest (serial)", serial),
                         (f"pytest -n {a.slots}", xdist)):
            print(f"{label:<22} {r['wall']:8.2f} {tests / r['wall']:9.1f} "
                  f"{r['passed']:7d} {r['failed']:7d} {r['skipped']:8d}")
        print(f"{'meshtest --slots ' + str(a.slots):<22} {mesh['wall']:8.2f} "
              f"{tests / mesh['wall']:9.1f} {m_passed:7d} {m_failed:7d} "
              f"{m_skipped:8d}")
        print()
        ideal = serial["wall"] / a.slots
        print(f"meshtest status {st.get('status')}, nota_final "
              f"{float(st.get('nota_final', 0)):.2f}; node ready in "
              f"{boot:.2f} s (not counted), POST answered in "
              f"{mesh['accepted'] * 1000:.0f} ms")
        print(f"overhead per module: ({mesh['wall']:.2f} - {serial['wall']:.2f}"
              f"/{a.slots}) / {modules} = "
              f"{(mesh['wall'] - ideal) / modules * 1000:.0f} ms")
        print(f"pytest start-up (one trivial module, serial): "
              f"{startup * 1000:.0f} ms")
        print(f"sum of test durations per module: pytest "
              f"{serial['test_time'] / modules * 1000:.0f} ms, meshtest "
              f"{mean_tests * 1000:.0f} ms")
        if nmod:
            slot_time = mesh["wall"] * a.slots / nmod
            print(f"meshtest per module ({nmod} in /results): mean duration "
                  f"{mean_mod * 1000:.0f} ms = tests {mean_tests * 1000:.0f} "
                  f"ms + pytest start-up/collection "
                  f"{(mean_mod - mean_tests) * 1000:.0f} ms; slot time per "
                  f"module {slot_time * 1000:.0f} ms, of which outside pytest "
                  f"(fetch/copy/venv/scheduling/idle) "
                  f"{(slot_time - mean_mod) * 1000:.0f} ms")
        else:
            print("meshtest /results: no module details")

        want = (serial["passed"], serial["failed"], serial["skipped"])
        got = (m_passed, m_failed, m_skipped)
        ok = True
        if got != want:
            print(f"MISMATCH: meshtest passed/failed/skipped {got} != "
                  f"pytest {want}")
            ok = False
        if (xdist["passed"], xdist["failed"], xdist["skipped"]) != want:
            print(f"MISMATCH: pytest -n {a.slots} "
                  f"{(xdist['passed'], xdist['failed'], xdist['skipped'])} "
                  f"!= serial pytest {want}")
            ok = False
        if st.get("status") != "done":
            print(f"MISMATCH: evaluation status {st.get('status')}, "
                  f"want done")
            ok = False
        if ok:
            print("counts match")
        return 0 if ok else 1
    finally:
        if node is not None:
            node.stop()
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
