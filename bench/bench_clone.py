#!/usr/bin/python3
"""A thousand git projects (issue 11, fetching at scale): how long a node
takes to clone and prepare them, against a local git server, at several
--fetchers values, beside a plain loop of `git clone` over the same
repositories.

    /usr/bin/python3 bench/bench_clone.py --bin build/meshtest
        [--repos 1000] [--fetchers 2,8,32] [--nodes 1] [--slots 2] [--public]

Each repository is distinct (its test file names its number), written as a
bare repository straight from Python (loose objects: no git process per
repository to make the corpus) and served over smart HTTP by git
http-backend behind HTTP Basic authentication (tests/e2e/gitserver.py, the
e2e tests' server), so every clone carries the token and only the node that
holds it clones; with --public the server asks for nothing and idle nodes
prepare projects the coordinator lends them (printed: projects prepared per
node). One evaluation of
--repos projects (1 module, 1 passing test each) goes to the first node
with the token; printed per --fetchers value: the time until no project is
left to fetch (the node's meshtest_projects_fetching gauge at 0), the time
until the evaluation is done, the node processes' own CPU; every run is checked for --repos projects and as many passed
tests. The baseline of the same invocation: `git clone` of every
repository one after the other (what a grader's shell loop does), then 8 at
a time. Only loopback traffic.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from bench_single import http  # noqa: E402
from compare import start_nodes, stop_nodes  # noqa: E402
from gitserver import GitServer  # noqa: E402

TOKEN = "bench-clone-token"
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------ bare repositories

def _object(objects, kind, data):
    """Write a loose object into objects/; its binary SHA-1."""
    raw = f"{kind} {len(data)}\0".encode() + data
    sha = hashlib.sha1(raw).hexdigest()
    folder = os.path.join(objects, sha[:2])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, sha[2:])
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(zlib.compress(raw, 1))
    return bytes.fromhex(sha)


def _tree(objects, files):
    """files: {name: bytes or {sub-tree}}; git sorts a sub-tree as its name plus '/'."""
    entries = []
    for name in sorted(files, key=lambda n: n + "/" if isinstance(files[n], dict) else n):
        content = files[name]
        if isinstance(content, dict):
            entries.append(b"40000 " + name.encode() + b"\0" + _tree(objects, content))
        else:
            entries.append(b"100644 " + name.encode() + b"\0" +
                           _object(objects, "blob", content))
    return _object(objects, "tree", b"".join(entries))


def write_bare_repo(path, files):
    """A bare repository whose main branch has one commit of files."""
    objects = os.path.join(path, "objects")
    for d in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    with open(os.path.join(path, "HEAD"), "w") as f:
        f.write("ref: refs/heads/main\n")
    with open(os.path.join(path, "config"), "w") as f:
        f.write("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
    tree = _tree(objects, files).hex()
    who = "bench <bench@localhost> 1700000000 +0000"
    commit = _object(objects, "commit",
                     f"tree {tree}\nauthor {who}\ncommitter {who}\n\nwork\n".encode())
    with open(os.path.join(path, "refs", "heads", "main"), "w") as f:
        f.write(commit.hex() + "\n")


def write_corpus(root, n):
    names = []
    for i in range(n):
        name = f"student{i:04d}"
        write_bare_repo(os.path.join(root, name + ".git"), {
            "README.md": f"# {name}\n".encode(),
            "calc.py": f"def value():\n    return {i}\n".encode(),
            "tests": {"test_calc.py": (f"from calc import value\n\n\ndef test_value():\n"
                                       f"    assert value() == {i}\n").encode()},
        })
        names.append(name)
    return names


# ------------------------------------------------------------------- measures

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(node, name):
    """An unlabelled sample of the node's GET /metrics, or None."""
    st, raw = http("GET", node.base + "/metrics", timeout=10)
    if st != 200:
        return None
    for line in raw.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def clone_all(gs, names, dest, parallel):
    """git clone of every repository, parallel at a time: seconds."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")

    def one(name):
        url = gs.url(name) if gs.httpd.token is None else \
            gs.url(name).replace("http://", f"http://t:{TOKEN}@")
        subprocess.run(["git", "clone", "-q", url, os.path.join(dest, name)], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    t0 = time.monotonic()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, names))
    return time.monotonic() - t0


def run_meshtest(args, work, gs, names, fetchers):
    nodes = start_nodes(args.bin, work, args.nodes, args.slots,
                        extra=["--fetchers", str(fetchers)])
    try:
        cpu0 = [cpu_seconds(nd.proc.pid) for nd in nodes]
        sub = {"projects": [gs.url(n) for n in names], "module_timeout": 60}
        if not args.public:
            sub["auth_token"] = TOKEN
        body = json.dumps(sub).encode()
        t0 = time.monotonic()
        st, raw = http("POST", nodes[0].base + "/evaluation", body,
                       {"Content-Type": "application/json"}, timeout=300)
        if st != 201:
            sys.exit(f"bench: POST answered {st}: {raw[:300]!r}")
        raw = json.loads(raw)
        eid = raw["id"]
        fetched_at = None
        while True:
            if fetched_at is None and metric(nodes[0], "meshtest_projects_fetching") == 0:
                fetched_at = time.monotonic() - t0
            st, body = http("GET", f"{nodes[0].base}/evaluation/{eid}", timeout=30)
            doc = json.loads(body) if st == 200 else {}
            if doc.get("status") not in (None, "running"):
                break
            if time.monotonic() - t0 > args.timeout:
                sys.exit(f"bench: {eid} still running after {args.timeout} s")
            time.sleep(0.2)
        wall = time.monotonic() - t0
        if fetched_at is None:
            fetched_at = wall
        cpu = sum(cpu_seconds(nd.proc.pid) - c for nd, c in zip(nodes, cpu0))
        prepared = [metric(nd, "meshtest_projects_prepared_total") for nd in nodes]
    finally:
        stop_nodes(nodes)
    errors = [p for p, g in (doc.get("nota_final_per_project") or {}).items() if g != 20]
    ok = doc.get("passed") == len(names) and doc.get("failed") == 0 and not errors
    print(f"  meshtest --fetchers {fetchers:<3} {args.nodes} node(s): all fetched"
          f" {fetched_at:6.1f} s, done {wall:6.1f} s ({len(names) / fetched_at:5.1f}"
          f" repositories/s), node CPU {cpu:6.2f} s, passed {doc.get('passed')}"
          f"/{len(names)}, prepared per node {'/'.join(str(p) for p in prepared)}"
          f"{'' if ok else '  MISMATCH'}", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--fetchers", default="2,8,32")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--public", action="store_true",
                    help="a server without authentication and no token: any node may clone")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="mt-bench-clone-", dir="/var/tmp")
    root = os.path.join(work, "repos")
    os.makedirs(root)
    t0 = time.monotonic()
    names = write_corpus(root, args.repos)
    print(f"{args.repos} bare repositories written in {time.monotonic() - t0:.1f} s;"
          f" git http-backend on loopback"
          f" {'without authentication' if args.public else 'with Basic authentication'}",
          flush=True)
    ok = True
    with GitServer(root, None if args.public else TOKEN) as gs:
        for parallel in ((1, 8) if not os.environ.get("NO_BASELINE") else ()):
            dest = os.path.join(work, f"clones-{parallel}")
            os.makedirs(dest)
            secs = clone_all(gs, names, dest, parallel)
            print(f"  git clone, {parallel} at a time{' ' if parallel > 1 else ''}:"
                  f"            {secs:6.1f} s ({len(names) / secs:5.1f} repositories/s)",
                  flush=True)
            subprocess.run(["rm", "-rf", dest])
        for f in (int(x) for x in args.fetchers.split(",")):
            ok = run_meshtest(args, work, gs, names, f) and ok
    subprocess.run(["rm", "-rf", work])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
