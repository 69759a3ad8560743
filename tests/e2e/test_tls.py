"""Optional TLS (issue 11, part 8): https for clients, mutual TLS between nodes.

Loopback (cheap, also under ASan):
  1. `meshtest certs` makes a CA and one certificate per host, with the host
     as an IP or DNS subjectAltName, good for a TLS server and client (openssl
     verify says so); a second run signs with the CA already there; bad
     arguments are refused with exit 2 and a message.
  2. `meshtest serve` refuses, before it touches anything, TLS options that
     would fail at the first handshake: a missing option, an unreadable
     file, a key of another certificate, a certificate of another CA or of
     another address, the CA itself as a node certificate.
  3. Two TLS nodes (one configured by flags, one by MESHTEST_TLS_*) join
     each other; public routes answer a client without a certificate; an
     internal route refuses a client without one (403) or with one of
     another CA (403) and answers one of the cluster CA; a plain-HTTP GET of
     /stats gets no answer at all, and the node's log says why. Two nodes
     with certificates made by the README's openssl commands join as well.

Network namespaces (3 TLS nodes with their own addresses, a cluster key and
an API token, as on a real network):
  4. the corpus submitted over https to b ends with its exact numbers, read
     identically on a, b and c; the CLI over https works with MESHTEST_CA
     (a submission, and status) and fails clearly without it;
  5. a node started without TLS, and a node with a certificate of another
     CA, both seeded with a, never join: a, b and c keep exactly each
     other, the newcomers see nobody, and the logs say why.
"""

import http.client
import os
import socket
import ssl
import subprocess
import uuid

import pytest

import corpus
from conftest import (MESHTEST_BIN, Node, close_all, close_nodes, free_port, peers_view,
                      read_response, run_cli, wait_converged, wait_done, wait_for)
from netns import NetnsCluster, NsNode, cluster_secrets, ns_connect
from test_replication import check_eval, ns_submit, wait_identical

NO_CERT = ("refused: no client certificate: internal routes answer only nodes with a"
           " certificate of the cluster CA")
OTHER_CA = ("refused: the client certificate is not one of the cluster CA's (The"
            " certificate is NOT trusted. The certificate issuer is unknown.)")
UNTRUSTED = "SSL certificate problem: unable to get local issuer certificate"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def make_certs(out, *addrs):
    """meshtest certs --out out --node addr ...; returns out."""
    args = ["certs", "--out", str(out)]
    for a in addrs:
        args += ["--node", a]
    r = run_cli(*args, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(out)


def tls_args(certs, host):
    return ["--tls-cert", f"{certs}/{host}.pem", "--tls-key", f"{certs}/{host}.key",
            "--tls-ca", f"{certs}/ca.pem"]


def tls_context(certs, client_host=None):
    """Trusts the CA of certs; presents client_host's certificate if given."""
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    if client_host is not None:
        ctx.load_cert_chain(f"{certs}/{client_host}.pem", f"{certs}/{client_host}.key")
    return ctx


def other_client(certs, other):
    """Trusts the cluster CA of certs, presents a certificate of other's CA."""
    ctx = tls_context(certs)
    ctx.load_cert_chain(f"{other}/127.0.0.1.pem", f"{other}/127.0.0.1.key")
    return ctx


def https_on(sock, host, port, ctx, method, path, body=None, headers=None, timeout=30):
    """(status, JSON or None, raw) of one https request over the TCP socket
    sock, checking the server's certificate for host."""
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    conn.sock = ctx.wrap_socket(sock, server_hostname=host)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return read_response(conn)
    finally:
        conn.close()


def plain_get_stats(sock):
    """What a server sends back to a plain-HTTP GET /stats on sock: b"" when
    it closes the connection without an answer."""
    got = []
    try:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got.append(d)
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return b"".join(got)


class TlsNode(Node):
    """A loopback node serving https with the certificate of 127.0.0.1;
    by_env: the three files come from MESHTEST_TLS_* instead of flags."""

    def __init__(self, base, certs, extra_args=(), name="tls", by_env=False):
        self.certs = certs
        self.by_env = by_env
        args = [] if by_env else tls_args(certs, "127.0.0.1")
        super().__init__(base, [*args, *extra_args], name=name)
        self.ctx = tls_context(certs)

    def env_extra(self):
        if not self.by_env:
            return {}
        c = self.certs
        return {"MESHTEST_TLS_CERT": f"{c}/127.0.0.1.pem",
                "MESHTEST_TLS_KEY": f"{c}/127.0.0.1.key",
                "MESHTEST_TLS_CA": f"{c}/ca.pem"}

    def request(self, method, path, body=None, headers=None, timeout=30, ctx=None):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return https_on(sock, "127.0.0.1", self.port, ctx or self.ctx, method, path, body,
                        self.auth(headers), timeout)


class TlsNsNode(NsNode):
    """A node in a namespace serving https with the certificate of its IP."""

    def __init__(self, base, ns, ip, certs, extra_args=(), name="tlsns", secrets_env=None):
        super().__init__(base, ns, ip, 7000, [*tls_args(certs, ip), *extra_args],
                         name=name, secrets_env=secrets_env)
        self.ctx = tls_context(certs)

    def request(self, method, path, body=None, headers=None, timeout=30, ctx=None):
        sock = ns_connect(self.ns, self.ip, self.port, timeout)
        return https_on(sock, self.ip, self.port, ctx or self.ctx, method, path, body,
                        self.auth(headers), timeout)


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def serve_refused(base, *args, env=None):
    """Run meshtest serve expecting it to refuse its options: (stderr, data
    dir); the exit status must be 2."""
    data = os.path.join(str(base), f"refused-{free_port()}")
    e = dict(os.environ)
    for k in ("MESHTEST_TLS_CERT", "MESHTEST_TLS_KEY", "MESHTEST_TLS_CA"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([MESHTEST_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}",
                        "--data-dir", data, *args], capture_output=True, text=True,
                       timeout=30, env=e, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, (p.returncode, p.stderr)
    return p.stderr, data


def members(node):
    v = peers_view(node)
    return None if v is None else {m["address"] for m in v.get("members", [])}


# --------------------------------------------------------------------------
# loopback
# --------------------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.timeout(60)
def test_certs_command(tmp_path):
    d = tmp_path / "certs"
    r = run_cli("certs", "--out", str(d), "--node", "127.0.0.1:7001", "--node",
                "node-1.example:7000", "--node", "127.0.0.1:7002", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        f"made the cluster CA {d}/ca.pem (its key {d}/ca.key: keep it off the nodes)\n"
        f"{d}/127.0.0.1.pem {d}/127.0.0.1.key  (IP:127.0.0.1)\n"
        f"{d}/node-1.example.pem {d}/node-1.example.key  (DNS:node-1.example)\n")
    assert sorted(os.listdir(d)) == ["127.0.0.1.key", "127.0.0.1.pem", "ca.key", "ca.pem",
                                     "node-1.example.key", "node-1.example.pem"]
    for f in ("ca.key", "127.0.0.1.key", "node-1.example.key"):
        assert os.stat(d / f).st_mode & 0o777 == 0o600, f
    for host, san in (("127.0.0.1", "IP Address:127.0.0.1"),
                      ("node-1.example", "DNS:node-1.example")):
        for purpose in ("sslserver", "sslclient"):
            rc, out, err = openssl("verify", "-CAfile", f"{d}/ca.pem", "-purpose", purpose,
                                   f"{d}/{host}.pem")
            assert (rc, out) == (0, f"{d}/{host}.pem: OK"), err
        rc, out, err = openssl("x509", "-in", f"{d}/{host}.pem", "-noout", "-ext",
                               "subjectAltName")
        assert rc == 0, err
        assert out.splitlines()[1].strip() == san, out
    rc, out, _ = openssl("x509", "-in", f"{d}/ca.pem", "-noout", "-ext", "basicConstraints")
    assert "CA:TRUE" in out, out

    # a node added later: signed by the CA already there, which stays as it was
    ca_before = (d / "ca.pem").read_bytes()
    r = run_cli("certs", "--out", str(d), "--node", "10.9.8.7:7000", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"using the cluster CA {d}/ca.pem\n"
                        f"{d}/10.9.8.7.pem {d}/10.9.8.7.key  (IP:10.9.8.7)\n")
    assert (d / "ca.pem").read_bytes() == ca_before
    rc, out, err = openssl("verify", "-CAfile", f"{d}/ca.pem", f"{d}/10.9.8.7.pem")
    assert (rc, out) == (0, f"{d}/10.9.8.7.pem: OK"), err

    half = tmp_path / "half"
    half.mkdir()
    (half / "ca.pem").write_bytes(ca_before)
    bad = [
        ((), "give --out DIR and at least one --node ADDR"),
        (("--out", str(tmp_path / "x")), "give --out DIR and at least one --node ADDR"),
        (("--out", str(tmp_path / "x"), "--node", "bad/host:1"),
         "--node takes a node's advertised address HOST:PORT (or HOST): an IP address or a"
         " DNS name, not 'bad/host:1'"),
        (("--out", str(tmp_path / "x"), "--node", "ca:7000"),
         "--node takes a node's advertised address HOST:PORT (or HOST): an IP address or a"
         " DNS name, not 'ca:7000'"),
        (("--out", str(tmp_path / "x"), "--node", "h:1", "--days", "0"),
         "--days takes a whole number from 1 to 36500, not '0'"),
        (("--out", str(tmp_path / "x"), "--bogus"), "unknown argument '--bogus'"),
        (("--out",), "--out needs a value"),
        (("--out", str(half), "--node", "h:1"),
         f"{half}/ca.pem is there but {half}/ca.key is not: give an empty folder for a new"
         " CA, or one with both files"),
    ]
    for args, msg in bad:
        r = run_cli("certs", *args, timeout=30)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.splitlines()[0] == f"meshtest: certs: {msg}", (args, r.stderr)
    assert not os.path.exists(tmp_path / "x")
    assert os.listdir(half) == ["ca.pem"]


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_serve_refuses_bad_tls_options(tmp_path):
    c = make_certs(tmp_path / "certs", "127.0.0.1:7000")
    o = make_certs(tmp_path / "other", "127.0.0.1:7000")
    cert, key, ca = f"{c}/127.0.0.1.pem", f"{c}/127.0.0.1.key", f"{c}/ca.pem"
    cases = [
        (["--tls-cert", cert], None,
         "TLS needs all of --tls-cert, --tls-key and --tls-ca, or none; missing:"
         " --tls-key --tls-ca"),
        (["--tls-ca", ca], {"MESHTEST_TLS_KEY": key},
         "TLS needs all of --tls-cert, --tls-key and --tls-ca, or none; missing:"
         " --tls-cert"),
        (["--tls-cert", f"{c}/nope.pem", "--tls-key", key, "--tls-ca", ca], None,
         f"cannot read the TLS certificate {c}/nope.pem: No such file or directory"),
        (["--tls-cert", cert, "--tls-key", f"{o}/127.0.0.1.key", "--tls-ca", ca], None,
         f"the TLS key {o}/127.0.0.1.key is not the key of the certificate {cert}"),
        (["--tls-cert", f"{o}/127.0.0.1.pem", "--tls-key", f"{o}/127.0.0.1.key",
          "--tls-ca", ca], None,
         f"the certificate {o}/127.0.0.1.pem is not one the cluster CA {ca} signed for a"
         " server and a client: unable to get local issuer certificate"),
        (["--tls-cert", ca, "--tls-key", f"{c}/ca.key", "--tls-ca", ca], None,
         f"the certificate {ca} is not one the cluster CA {ca} signed for a server and a"
         " client: unsuitable certificate purpose"),
        (["--tls-cert", cert, "--tls-key", key, "--tls-ca", f"{c}/ca.key"], None,
         f"the TLS CA file {c}/ca.key holds no PEM certificate"),
        (["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--advertise",
          "localhost:7000"], None,
         f"the TLS certificate {cert} does not name this node's advertised address"
         " localhost (a subjectAltName DNS:localhost): peers would refuse it; make one with"
         " 'meshtest certs --node localhost:7000'"),
    ]
    for args, env, msg in cases:
        err, data = serve_refused(tmp_path, *args, env=env)
        assert err == f"meshtest: {msg}\n", (args, err)
        assert not os.path.exists(data), "the node touched its data folder"


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_loopback_tls_pair(tmp_path):
    c = make_certs(tmp_path / "certs", "127.0.0.1:7000")
    o = make_certs(tmp_path / "other", "127.0.0.1:7000")
    n1 = TlsNode(tmp_path, c, name="tls1")
    n2 = TlsNode(tmp_path, c, ["--seeds", n1.addr], name="tls2", by_env=True)
    try:
        n1.start()
        n2.start()
        wait_converged([n1, n2], timeout=15)
        assert "serving https on" in n2.log_text()
        # public: any client, no certificate needed
        st, js, _ = n1.request("GET", "/stats")
        assert st == 200 and "all" in js, js
        # internal: a node's certificate of this CA only
        st, js, _ = n1.request("GET", "/sync/digests")
        assert (st, js) == (403, {"error": NO_CERT})
        st, js, _ = n1.request("GET", "/sync/digests", ctx=other_client(c, o))
        assert (st, js) == (403, {"error": OTHER_CA})
        st, js, _ = n1.request("GET", "/sync/digests", ctx=tls_context(c, "127.0.0.1"))
        assert (st, js) == (200, {}), js
        assert f"GET /sync/digests refused: {NO_CERT[len('refused: '):]}" in n1.log_text()
        # plain HTTP: no answer at all, and the log says why
        got = plain_get_stats(socket.create_connection(("127.0.0.1", n1.port), 10))
        assert got == b""
        wait_for(lambda: "http: refused plain HTTP from 127.0.0.1:" in n1.log_text(), 5,
                 "the log line on plain HTTP")
        assert "this node serves https only (a node started without --tls-cert/--tls-key/"\
               "--tls-ca, or a client using http://)" in n1.log_text()
        # a client that does not trust the node's CA gets no further
        with pytest.raises(ssl.SSLCertVerificationError):
            n1.request("GET", "/health", ctx=tls_context(o))
    finally:
        close_all([n1, n2])


def openssl_certs(d, host):
    """The README's openssl commands: a CA and host's certificate in d."""
    d.mkdir()
    ext = d / "node.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:{host}\n")
    steps = [
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "3650", "-subj", "/O=meshtest/CN=meshtest cluster CA", "-keyout",
         f"{d}/ca.key", "-out", f"{d}/ca.pem", "-addext",
         "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext",
         "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
         f"/O=meshtest/CN={host}", "-keyout", f"{d}/{host}.key", "-out", f"{d}/{host}.csr"],
        ["x509", "-req", "-in", f"{d}/{host}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
         f"{d}/ca.key", "-CAcreateserial", "-days", "3650", "-out", f"{d}/{host}.pem",
         "-extfile", str(ext)],
    ]
    for args in steps:
        rc, _, err = openssl(*args)
        assert rc == 0, (args, err)
    return str(d)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_openssl_made_certs_work(tmp_path):
    """Certificates made with the README's openssl commands, not meshtest's."""
    c = openssl_certs(tmp_path / "osl", "127.0.0.1")
    n1 = TlsNode(tmp_path, c, name="osl1")
    n2 = TlsNode(tmp_path, c, ["--seeds", n1.addr], name="osl2")
    try:
        n1.start()
        n2.start()
        wait_converged([n1, n2], timeout=15)
        st, js, _ = n2.request("GET", "/sync/digests", ctx=tls_context(c, "127.0.0.1"))
        assert (st, js) == (200, {}), js
    finally:
        close_all([n1, n2])


# --------------------------------------------------------------------------
# network namespaces
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_ns(tmp_path_factory):
    """Five namespaces; a, b and c run TLS nodes (certificates of one CA,
    seeded with a) once every one sees the other two. d and e are free for
    the newcomers of the refusal test, which it adds to `extra` to close."""
    assert os.geteuid() == 0, "the namespace tests must run as root"
    base = tmp_path_factory.mktemp("tls-ns")
    cl = NetnsCluster(5)
    nodes, extra = [], []
    sec = cluster_secrets()
    try:
        cl.setup()
        certs = make_certs(base / "certs", *[f"{ip}:7000" for ip in cl.ips[:3]])
        seed = f"{cl.ips[0]}:7000"
        for i in range(3):
            nodes.append(TlsNsNode(base, cl.names[i], cl.ips[i], certs, ["--seeds", seed],
                                   name=f"tls-{'abc'[i]}", secrets_env=sec))
        for n in nodes:
            n.start()
        wait_converged(nodes, timeout=15)
        yield {"cl": cl, "nodes": nodes, "sec": sec, "certs": certs, "base": base,
               "extra": extra}
    finally:
        errors = close_nodes(nodes + extra)
        errors += cl.teardown()
        assert not errors, "\n".join(errors)


def ns_cli(ns, *args, env=None, timeout=60):
    """The CLI run inside namespace ns, with env added (and no MESHTEST_CA
    but the one given)."""
    e = dict(os.environ)
    e.pop("MESHTEST_CA", None)
    e.update(env or {})
    return subprocess.run(["ip", "netns", "exec", ns, MESHTEST_BIN, *args], env=e,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.timeout(90)
def test_ns_corpus_over_https_exact_everywhere_and_cli(tls_ns, tmp_path):
    nodes, sec, certs = tls_ns["nodes"], tls_ns["sec"], tls_ns["certs"]
    a, b, c = nodes
    token = sec["MESHTEST_API_TOKEN"]
    corpus.write_corpus(str(tmp_path / "src"))
    z = corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "corpus.zip"))
    eid = ns_submit(b, z, token, corpus.CORPUS_MODULE_TIMEOUT)

    # meanwhile, the CLI over https: a submission (a multipart upload)
    gamma = corpus.write_gamma(str(tmp_path / "gsrc"))
    env = {"MESHTEST_CA": f"{certs}/ca.pem", "MESHTEST_API_TOKEN": token}
    url = f"https://{a.ip}:7000"
    r = ns_cli(a.ns, "submit", gamma, "--node", url, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    gid = r.stdout.strip()
    uuid.UUID(gid)
    # without the CA the node's certificate is not trusted: exit 2, and why
    r = ns_cli(a.ns, "status", "--node", url, env={"MESHTEST_API_TOKEN": token})
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == f"meshtest: TLS with {a.ip}:7000 failed: {UNTRUSTED}\n"

    wait_done(b, eid, timeout=80)
    _, docs = wait_identical(nodes, [f"/evaluation/{eid}", f"/evaluation/{eid}/results"],
                             5.0, "the corpus over TLS after done")
    doc, res = docs[f"/evaluation/{eid}"], docs[f"/evaluation/{eid}/results"]
    check_eval(doc, res, eid, corpus.CORPUS_PROJECTS, corpus.CORPUS_MODULES, b, nodes)
    assert (doc["passed"], doc["failed"], doc["skipped"], doc["executed"]) == (21, 8, 1, 11)
    assert {m["node"] for p in res["projects"] for m in p["modules"]} <= \
        {n.addr for n in nodes}

    # status of both through c, over https: the exact totals, exit 1 and 0
    wait_done(a, gid, timeout=30)
    r = ns_cli(c.ns, "status", eid, "--node", f"https://{c.ip}:7000", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "overall: 21 passed, 8 failed, 1 skipped" in r.stdout, r.stdout
    r = ns_cli(c.ns, "status", gid, "--node", f"https://{c.ip}:7000", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "overall: 5 passed, 0 failed, 0 skipped" in r.stdout, r.stdout
    # --wait follows the event stream over https too (MESHTEST_CA), not polls
    r = ns_cli(c.ns, "status", gid, "--wait", "--node", f"https://{c.ip}:7000", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"GET /evaluation/{gid}/events -> 200 (stream)" in c.log_text()
    # every node knows both evaluations, and /stats adds them up
    _, docs = wait_identical(nodes, ["/evaluation", "/stats"], 5.0, "lists and stats")
    assert len(docs["/evaluation"]["evaluations"]) == 2
    assert docs["/stats"]["all"] == {"failed": 8, "passed": 26, "projects": 3,
                                     "evaluations": 2}


@pytest.mark.timeout(90)
def test_ns_plain_http_and_foreign_nodes_refused(tls_ns):
    cl, nodes, sec, base = tls_ns["cl"], tls_ns["nodes"], tls_ns["sec"], tls_ns["base"]
    a, b, c = nodes
    seed = f"{a.ip}:7000"
    addrs = {n.addr for n in nodes}

    # plain HTTP from b's namespace to a: no answer at all
    got = plain_get_stats(ns_connect(b.ns, a.ip, 7000, 10))
    assert got == b""
    # an internal route from a client without a node certificate: 403
    st, js, _ = a.request("GET", "/sync/digests")
    assert (st, js) == (403, {"error": NO_CERT})
    # with the certificate of a node of this CA but no cluster MAC: the MAC
    # is still required on top of TLS
    st, js, _ = a.request("GET", "/sync/digests", ctx=tls_context(tls_ns["certs"], b.ip))
    assert (st, js) == (401, {"error": "refused: no cluster MAC"})

    # d: no TLS at all; e: TLS with a CA of its own
    other = make_certs(base / "other", f"{cl.ips[4]}:7000")
    d = NsNode(base, cl.names[3], cl.ips[3], 7000, ["--seeds", seed], name="plain-d",
               secrets_env=sec)
    e = TlsNsNode(base, cl.names[4], cl.ips[4], other, ["--seeds", seed], name="other-e",
                  secrets_env=sec)
    tls_ns["extra"] += [d, e]
    d.start()
    e.start()
    wait_for(lambda: f"http: refused plain HTTP from {d.ip}:" in a.log_text(), 25,
             "a's log line on d's plain HTTP")
    wait_for(lambda: f"peer: TLS with {seed} failed: {UNTRUSTED}" in e.log_text(), 15,
             "e's log line on a's certificate")
    assert "http: a TLS handshake failed: a client that does not trust this node's" \
           " certificate (of another cluster's CA?), or one that speaks no TLS" \
           in a.log_text()
    # they keep trying; the cluster never takes them in
    for n in nodes:
        assert members(n) == addrs, (n.addr, peers_view(n))
    wait_converged(nodes, timeout=5)
    assert members(d) == {d.addr}, peers_view(d)
    assert members(e) == {e.addr}, peers_view(e)
