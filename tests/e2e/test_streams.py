"""What is big passes through a node in pieces, never whole in memory.

A ZIP of 256 MB (one project: a data file of random bytes, stored, and a test
that checks its hash) goes from the client to the accepting node, from it to
a peer before the 201 (PUT /blob), the project's own archive to a peer once
it is unpacked, and either to the node that runs the module when it lacks
it (GET /blob), all signed with a cluster key (the MAC covers the file's
hash; the namespace tests of test_work.py fetch blobs with a key too). It is graded exactly, and no
node's peak resident memory (VmHWM, the node process itself) reaches 64 MB:
before blobs were streamed, the accepting node held the whole archive to
push it, and a fetching node held it to write it.
"""
import hashlib
import os
import zipfile

from conftest import (Node, free_port, get_results, http_request, running,
                      wait_done)

BIG_MB = 256
RSS_LIMIT_KB = 64 * 1024


def write_big_zip(path):
    """projects.zip with project big/: data.bin (BIG_MB of random bytes,
    stored) and tests/test_data.py asserting its size and SHA-256."""
    h = hashlib.sha256()
    chunk_mb = 8
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(zipfile.ZipInfo("big/data.bin"), "w", force_zip64=True) as f:
            for _ in range(BIG_MB // chunk_mb):
                b = os.urandom(chunk_mb << 20)
                h.update(b)
                f.write(b)
        z.writestr("big/tests/test_data.py",
                   "import hashlib, os\n\n"
                   "HERE = os.path.dirname(os.path.abspath(__file__))\n\n\n"
                   "def test_data_is_whole():\n"
                   "    h = hashlib.sha256()\n"
                   "    with open(os.path.join(HERE, '..', 'data.bin'), 'rb') as f:\n"
                   "        for b in iter(lambda: f.read(1 << 20), b''):\n"
                   "            h.update(b)\n"
                   f"    assert h.hexdigest() == {h.hexdigest()!r}\n\n\n"
                   "def test_size():\n"
                   "    assert os.path.getsize(os.path.join(HERE, '..', 'data.bin'))"
                   f" == {BIG_MB << 20}\n")


def peak_rss_kb(node):
    with open(f"/proc/{node.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def metric(node, name):
    st, _, raw = http_request(node.port, "GET", "/metrics")
    assert st == 200
    for line in raw.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_big_upload_passes_through_small_nodes(tmp_path, monkeypatch):
    # signed node-to-node requests: a blob's MAC is over the file, not memory
    monkeypatch.setenv("MESHTEST_CLUSTER_KEY", "streams-test-cluster-key-0123456789")
    zpath = str(tmp_path / "projects.zip")
    write_big_zip(zpath)
    assert os.path.getsize(zpath) > BIG_MB << 20
    ports = [free_port() for _ in range(3)]
    seed = f"127.0.0.1:{ports[0]}"
    nodes = [Node(tmp_path, ["--seeds", seed, "--max-upload-mb", str(BIG_MB + 64)],
                  port=p, name=f"big{i}") for i, p in enumerate(ports)]
    with running(nodes):
        st, js = nodes[0].post_zip(zpath, timeout=120)
        assert st == 201, js
        eid = js["id"]
        doc = wait_done(nodes[0], eid, timeout=240)
        assert doc["status"] == "done", doc
        res = get_results(nodes[0], eid)
        assert (res["passed"], res["failed"], res["skipped"]) == (2, 0, 0), res
        assert res["nota_final"] == 20.0
        # it crossed the network: a peer took the upload before the 201, and
        # a peer the project's own archive once it was unpacked
        received = sum(metric(n, "meshtest_blob_received_bytes_total") for n in nodes[1:])
        assert received >= 2 * (BIG_MB << 20), received
        assert metric(nodes[0], "meshtest_blob_sent_bytes_total") >= BIG_MB << 20
        peaks = {n.addr: peak_rss_kb(n) for n in nodes}
        print(f"peak RSS (KB) per node: {peaks}; blob bytes received by peers:"
              f" {received:.0f}")
        assert all(kb < RSS_LIMIT_KB for kb in peaks.values()), peaks
