"""Authentication: the cluster MAC on internal requests and their answers,
the API token on submissions and on every read of evaluation data,
requests from other web sites, and secrets that never leave memory.

Every node here runs with a random cluster key and API token in its
environment (never on its command line)."""

import hashlib
import hmac
import http.server
import json
import os
import secrets
import threading
import time

import pytest

from conftest import http_request, wait_done, encode_multipart
import corpus

KEY = secrets.token_hex(32)
TOKEN = secrets.token_hex(32)


def sign(method, path, body=b"", key=KEY, t=None, nonce=None):
    t = f"{time.time() if t is None else t:.3f}"
    nonce = nonce or secrets.token_hex(16)
    msg = f"req\n{method}\n{path}\n{t}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
    mac = hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()
    return {"X-Meshtest-Time": t, "X-Meshtest-Nonce": nonce, "X-Meshtest-Mac": mac}


def answer_mac(status, nonce, body, key=KEY):
    msg = f"ans\n{status}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def raw(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) without any parsing."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


@pytest.fixture
def keyed_node(make_node, monkeypatch):
    monkeypatch.setenv("MESHTEST_CLUSTER_KEY", KEY)
    monkeypatch.setenv("MESHTEST_API_TOKEN", TOKEN)
    return make_node(name="keyed")


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_internal_requests_need_a_good_mac(keyed_node):
    n = keyed_node
    # Without, with a wrong, with a stale MAC: refused and logged.
    st, _, body = raw(n.port, "GET", "/task/running")
    assert st == 401 and b"no cluster MAC" in body
    st, _, body = raw(n.port, "GET", "/task/running",
                      headers=sign("GET", "/task/running", key="x" * 64))
    assert st == 401 and b"wrong cluster MAC" in body
    st, _, body = raw(n.port, "GET", "/task/running",
                      headers=sign("GET", "/task/running", t=time.time() - 300))
    assert st == 401 and b"stale timestamp" in body
    # A MAC for another path or body does not carry over.
    h = sign("POST", "/network/gossip", b'{"type":"ping"}')
    st, _, _ = raw(n.port, "POST", "/network/gossip", b'{"type":"pong"}',
                   {**h, "Content-Type": "application/json"})
    assert st == 401
    # A good one is answered, and the answer is signed for that request.
    h = sign("GET", "/task/running")
    st, hdrs, body = raw(n.port, "GET", "/task/running", headers=h)
    assert st == 200, body
    assert json.loads(body)["running"] == []
    mac = {k.lower(): v for k, v in hdrs.items()}["x-meshtest-mac"]
    assert mac == answer_mac(200, h["X-Meshtest-Nonce"], body)
    # The same request again is a replay.
    st, _, body = raw(n.port, "GET", "/task/running", headers=h)
    assert st == 401 and b"replayed" in body
    for path in ("/sync/digests", "/blob/" + "0" * 64):
        st, _, _ = raw(n.port, "GET", path)
        assert st == 401, path
    log = n.log_text()
    for why in ("no cluster MAC", "wrong cluster MAC", "stale timestamp", "replayed"):
        assert why in log, why
    # Public reads stay open.
    st, _, _ = raw(n.port, "GET", "/stats")
    assert st == 200


class ForgingHandler(http.server.BaseHTTPRequestHandler):
    """A 'node' that answers everything with a plausible ack and a bad MAC."""

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"type": "ack", "from": "127.0.0.1:1", "updates": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Meshtest-Mac", "0" * 64)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *a):
        pass


@pytest.mark.timeout(60)
def test_forged_answers_are_refused(make_node, monkeypatch):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ForgingHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    fake = f"127.0.0.1:{srv.server_address[1]}"
    try:
        monkeypatch.setenv("MESHTEST_CLUSTER_KEY", KEY)
        n = make_node(name="asker", extra_args=("--seeds", fake))
        time.sleep(4)
        st, view = n.get("/network/peers")
        assert st == 200
        assert fake not in view["peers"], view
        assert "refused a forged or unsigned answer" in n.log_text()
    finally:
        srv.shutdown()


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_api_token_and_secrets_stay_in_memory(keyed_node, tmp_path):
    n = keyed_node
    zip_path = tmp_path / "g.zip"
    corpus.write_gamma(str(tmp_path / "src"))
    corpus.zip_dir(str(tmp_path / "src"), str(zip_path))
    data = zip_path.read_bytes()
    body, ctype = encode_multipart({}, {"file": ("g.zip", data, "application/zip")})
    # Submitting needs the token.
    st, _, out = raw(n.port, "POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 401 and b"API token" in out
    st, _, _ = raw(n.port, "POST", "/evaluation", body,
                   {"Content-Type": ctype, "Authorization": "Bearer " + "x" * 64})
    assert st == 401
    st, _, out = raw(n.port, "POST", "/evaluation", body,
                     {"Content-Type": ctype, "Authorization": "Bearer " + TOKEN})
    assert st == 201, out
    eid = json.loads(out)["id"]
    wait_done(n, eid, timeout=90)
    st, doc = n.get(f"/evaluation/{eid}")
    assert st == 200 and doc["status"] == "done" and doc["passed"] == 5
    # Neither secret anywhere on disk, in the log, the answers, or argv.
    pid = n.proc.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    n.stop()
    needles = (KEY.encode(), TOKEN.encode())
    for root, _, files in os.walk(n.data_dir):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):
                continue
            with open(p, "rb") as fh:
                blob = fh.read()
            for s in needles:
                assert s not in blob, p
    log = open(n.log_path, "rb").read()
    for s in needles:
        assert s not in log
        assert s not in cmdline


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_reads_of_evaluation_data_need_the_token(keyed_node, tmp_path):
    """Grades and failure messages are personal data: with an API token,
    the list, the status and the results need it (401 without, or with a
    wrong one); /stats, /network and /health stay open."""
    n = keyed_node
    eid = n.submit_zip(corpus.gamma_zip(str(tmp_path)))
    wait_done(n, eid, timeout=90)
    for path in ("/evaluation", f"/evaluation/{eid}", f"/evaluation/{eid}/results"):
        for auth in (None, "Bearer " + "y" * 64, "Basic " + TOKEN, TOKEN):
            hdrs = {"Authorization": auth} if auth else {}
            st, _, out = raw(n.port, "GET", path, headers=hdrs)
            assert st == 401, (path, auth, st, out)
            assert b"API token" in out
        st, _, out = raw(n.port, "GET", path, headers={"Authorization": "Bearer " + TOKEN})
        assert st == 200, (path, out)
        assert eid.encode() in out
    for path in ("/stats", "/network", "/health"):
        st, _, out = raw(n.port, "GET", path)
        assert st == 200, (path, out)
    st, _, out = raw(n.port, "GET", "/stats")
    assert json.loads(out)["all"]["passed"] == 5


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},          # another port of the same host
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:{port}"},
]


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_cross_site_submissions_are_refused(make_node, tmp_path):
    """A web page in the user's browser cannot submit code to a loopback
    node without a token: its multipart POST carries the page's Origin and
    Sec-Fetch-Site, and the node answers 403 before reading the upload.
    The node's own pages (same-origin), a typed URL (none) and programs
    (neither header) may."""
    n = make_node(name="site")
    data = open(corpus.gamma_zip(str(tmp_path)), "rb").read()
    body, ctype = encode_multipart({}, {"file": ("g.zip", data, "application/zip")})
    for extra in CROSS_SITE:
        hdrs = {"Content-Type": ctype}
        hdrs.update({k: v.format(port=n.port) for k, v in extra.items()})
        st, _, out = raw(n.port, "POST", "/evaluation", body, hdrs)
        assert st == 403, (extra, st, out)
        assert b"another web site" in out
    st, evals = n.get("/evaluation")
    assert st == 200 and evals["evaluations"] == []
    assert "refused: sent from another site" in n.log_text()
    accepted = []
    for extra in ({"Sec-Fetch-Site": "same-origin", "Origin": f"http://127.0.0.1:{n.port}"},
                  {"Sec-Fetch-Site": "none"},
                  {"Origin": f"http://127.0.0.1:{n.port}"},
                  {}):
        hdrs = {"Content-Type": ctype}
        hdrs.update(extra)
        st, _, out = raw(n.port, "POST", "/evaluation", body, hdrs)
        assert st == 201, (extra, st, out)
        accepted.append(json.loads(out)["id"])
    for eid in accepted:
        doc = wait_done(n, eid, timeout=90)
        assert doc["passed"] == 5
    # a JSON submission from another site is refused as well
    st, _, out = raw(n.port, "POST", "/evaluation",
                     json.dumps({"projects": ["https://example.invalid/x.git"]}).encode(),
                     {"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert st == 403, out


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_token_without_cluster_key_guards_internal_routes(tmp_path, monkeypatch):
    """A node with an API token but no cluster key signs its node-to-node
    traffic with a key derived from the token: the internal routes, which
    hand out grades, messages and students' code, are not a way around the
    token; two nodes that share the token replicate as usual."""
    from conftest import loop_nodes, running
    token = secrets.token_hex(32)
    monkeypatch.delenv("MESHTEST_CLUSTER_KEY", raising=False)
    monkeypatch.setenv("MESHTEST_API_TOKEN", token)
    with running(loop_nodes(tmp_path, 2, "tk")) as (a, b):
        eid = a.submit_zip(corpus.gamma_zip(str(tmp_path)))
        doc = wait_done(b, eid, timeout=90)
        assert doc["passed"] == 5
        assert "signed with a key derived from the API token" in a.log_text()
        for method, path, body in (
                ("GET", f"/sync/evaluation/{eid}", None),
                ("GET", f"/sync/evaluation/{eid}/buckets", None),
                ("GET", "/sync/digests", None),
                ("GET", f"/task/results/{eid}", None),
                ("GET", "/blob/" + "0" * 64, None),
                ("POST", f"/evaluation/sync_result/{eid}",
                 json.dumps({"id": eid, "deleted_at": 1, "share": {}}).encode())):
            for hdrs in ({}, {"Authorization": "Bearer " + token}):
                if body is not None:
                    hdrs = dict(hdrs, **{"Content-Type": "application/json"})
                st, _, out = raw(a.port, method, path, body, hdrs)
                assert st == 401, (method, path, st, out[:200])
        # the forged tombstone changed nothing
        st, doc = a.get(f"/evaluation/{eid}")
        assert st == 200 and doc["passed"] == 5


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_browser_reaching_a_node_by_a_foreign_name_is_refused(make_node, tmp_path):
    """DNS rebinding: a page whose name was made to resolve to the node
    sends requests that look same-origin but name the page's host. A
    browser's request (Origin or Sec-Fetch-Site) for a name the node does
    not have is refused with 421, reads included; IP addresses, localhost
    and --allowed-hosts names pass; programs (no such headers) are not
    concerned."""
    n = make_node(["--allowed-hosts", "grader.test,other.test"], name="rebind")
    data = open(corpus.gamma_zip(str(tmp_path)), "rb").read()
    body, ctype = encode_multipart({}, {"file": ("g.zip", data, "application/zip")})

    def post(host, extra):
        hdrs = {"Content-Type": ctype, "Host": host}
        hdrs.update(extra)
        return raw(n.port, "POST", "/evaluation", body, hdrs)

    evil = f"evil.example:{n.port}"
    for extra in ({"Origin": f"http://{evil}", "Sec-Fetch-Site": "same-origin"},
                  {"Origin": f"http://{evil}"}, {"Sec-Fetch-Site": "none"}):
        st, _, out = post(evil, extra)
        assert st == 421, (extra, st, out)
        assert b"not known by that name" in out
    st, _, out = raw(n.port, "GET", "/evaluation", None,
                     {"Host": evil, "Sec-Fetch-Site": "same-origin"})
    assert st == 421, out
    st, js = n.get("/evaluation")
    assert js == {"evaluations": []}
    assert "refused: a browser reached this node by a name it does not have" in n.log_text()
    ok = []
    for host in (f"grader.test:{n.port}", f"localhost:{n.port}", f"127.0.0.1:{n.port}",
                 "OTHER.test"):
        st, _, out = post(host, {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
        assert st == 201, (host, st, out)
        ok.append(json.loads(out)["id"])
    st, _, out = post(evil, {})                 # curl: no browser headers
    assert st == 201, out
    for eid in ok + [json.loads(out)["id"]]:
        assert wait_done(n, eid, timeout=90)["passed"] == 5
