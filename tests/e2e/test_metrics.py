"""GET /metrics: the Prometheus text format (0.0.4), read with the
prometheus_client parser (Debian's python3-prometheus-client), with exact
values for a known corpus.

  1. one node grades the corpus: modules and tests by outcome are the
     corpus' counts, the duration histogram counts every module with
     cumulative buckets, slots, members, the queue, and every HTTP request
     the test made, counted by route pattern and status (never by path);
  2. with an API token set, /metrics stays open while evaluation data is
     refused, and the refusal is counted;
  3. three loopback nodes: every node sees three members alive, and sends
     and receives replication bytes; blob bytes sent add up to blob bytes
     received, and each node's modules are the ones the results name it for.
"""

import http.client
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import corpus
from conftest import SLOTS, loop_nodes, running, wait_done, wait_for

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> type: every family a node always reports
FAMILIES = {
    "meshtest_modules": "counter",
    "meshtest_tests": "counter",
    "meshtest_module_duration_seconds": "histogram",
    "meshtest_http_requests": "counter",
    "meshtest_replication_sent_bytes": "counter",
    "meshtest_replication_received_bytes": "counter",
    "meshtest_replication_sent_documents": "counter",
    "meshtest_replication_received_documents": "counter",
    "meshtest_blob_sent_bytes": "counter",
    "meshtest_blob_received_bytes": "counter",
    "meshtest_environments_built": "counter",
    "meshtest_projects_prepared": "counter",
    "meshtest_projects_borrowed": "counter",
    "meshtest_slots": "gauge",
    "meshtest_slots_busy": "gauge",
    "meshtest_members": "gauge",
    "meshtest_modules_pending": "gauge",
    "meshtest_modules_running": "gauge",
    "meshtest_projects_fetching": "gauge",
    "meshtest_data_dir_bytes": "gauge",
    "meshtest_store_bytes": "gauge",
}


class Scrape:
    """One parsed GET /metrics answer: {sample name: {labels: value}}."""

    def __init__(self, text):
        self.text = text
        self.families = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            assert fam.name not in self.families, f"family {fam.name} twice"
            self.families[fam.name] = fam
            for s in fam.samples:
                key = tuple(sorted(s.labels.items()))
                by = self.samples.setdefault(s.name, {})
                assert key not in by, f"sample {s.name}{s.labels} twice"
                by[key] = s.value

    def value(self, name, **labels):
        return self.samples.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def series(self, name):
        return {tuple(sorted(k)): v for k, v in self.samples.get(name, {}).items()}

    def by_label(self, name, label):
        """{label value: sample value} of a family with one label."""
        out = {}
        for key, v in self.samples.get(name, {}).items():
            d = dict(key)
            assert set(d) == {label}, (name, d)
            out[d[label]] = v
        return out

    def http(self):
        """{(method, route, code): count}."""
        out = {}
        for key, v in self.samples.get("meshtest_http_requests_total", {}).items():
            d = dict(key)
            assert set(d) == {"method", "route", "code"}, d
            out[(d["method"], d["route"], d["code"])] = v
        return out


def scrape(node, headers=None):
    """GET /metrics (no API token unless headers carry one), checked and parsed."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        resp = conn.getresponse()
        st, ctype, raw = resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()
    assert st == 200, (st, raw[:300])
    assert ctype == CONTENT_TYPE
    text = raw.decode("utf-8")
    s = Scrape(text)
    # every family with its HELP and TYPE, each named meshtest_*
    for name, typ in FAMILIES.items():
        assert name in s.families, f"{name} missing:\n{text}"
        assert s.families[name].type == typ, (name, s.families[name].type)
        assert s.families[name].documentation, name
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name.startswith("meshtest_"), line
            assert f"# HELP {name} " in text, line
            if line.endswith(" counter"):
                assert name.endswith("_total"), line
    return s


def assert_histogram(s, count):
    """Buckets cumulative, +Inf == _count == count."""
    buckets = []
    for key, v in s.samples["meshtest_module_duration_seconds_bucket"].items():
        le = dict(key)["le"]
        buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    assert buckets[-1][0] == float("inf")
    values = [v for _, v in buckets]
    assert values == sorted(values), buckets
    assert buckets[-1][1] == count
    assert s.value("meshtest_module_duration_seconds_count") == count
    return buckets


@pytest.fixture(scope="module")
def corpus_zip(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics-corpus")
    corpus.write_corpus(str(d / "src"))
    return corpus.zip_dir(str(d / "src"), str(d / "corpus.zip"))


@pytest.mark.timeout(300)
def test_one_node_corpus(make_node, corpus_zip):
    node = make_node(name="met")
    scrapes = 0

    first = scrape(node)
    scrapes += 1
    assert first.value("meshtest_slots") == SLOTS
    assert first.by_label("meshtest_modules_total", "outcome") == {
        "finished": 0, "timeout": 0, "crashed": 0, "oom": 0, "infra_error": 0,
        "other": 0}

    eid = node.submit_zip(corpus_zip, corpus.CORPUS_MODULE_TIMEOUT)
    # poll by hand: every GET of the status is counted
    gets = 0
    status = None
    for _ in range(2400):
        st, js = node.get(f"/evaluation/{eid}")
        assert st == 200, js
        gets += 1
        status = js["status"]
        if status != "running":
            break
        time.sleep(0.25)
    assert status == "done", status
    st, res = node.get(f"/evaluation/{eid}/results")
    assert st == 200
    st, _, _ = node.request("GET", "/no/such/secret-path-4711")
    assert st == 404
    st, _, _ = node.request("PUT", "/stats", b"")
    assert st == 405

    # the slots let go of the batch just after its last result
    def idle():
        nonlocal scrapes
        scrapes += 1
        return scrape(node).value("meshtest_slots_busy") == 0
    wait_for(idle, 30, "slots idle")

    s = scrape(node)
    # modules and tests by outcome: the corpus' counts, exactly
    outcomes = {}
    for mods in corpus.CORPUS_MODULES.values():
        for (_, _, _, outcome) in mods.values():
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes == {"finished": 9, "timeout": 1, "crashed": 1}
    want = {"finished": 0, "timeout": 0, "crashed": 0, "oom": 0,
            "infra_error": 0, "other": 0}
    want.update(outcomes)
    assert s.by_label("meshtest_modules_total", "outcome") == want
    assert s.by_label("meshtest_tests_total", "outcome") == {
        "passed": corpus.CORPUS_TOTAL["passed"], "failed": corpus.CORPUS_TOTAL["failed"],
        "skipped": corpus.CORPUS_TOTAL["skipped"]}
    # the histogram: one observation per module; the timeout one ran >= 4 s
    buckets = assert_histogram(s, corpus.CORPUS_TOTAL["modules"])
    assert dict(buckets)[2.5] <= corpus.CORPUS_TOTAL["modules"] - 1, buckets
    assert s.value("meshtest_module_duration_seconds_sum") >= corpus.CORPUS_MODULE_TIMEOUT
    # durations as the results document recorded them
    total = sum(m["duration"] for p in res["projects"] for m in p["modules"])
    assert abs(s.value("meshtest_module_duration_seconds_sum") - total) < 0.01 * 11

    # gauges
    assert s.value("meshtest_slots") == SLOTS
    assert s.value("meshtest_slots_busy") == 0
    assert s.by_label("meshtest_members", "state") == {
        "alive": 1, "suspect": 0, "dead": 0, "left": 0}
    assert s.value("meshtest_modules_pending") == 0
    assert s.value("meshtest_modules_running") == 0
    assert s.value("meshtest_projects_fetching") == 0
    assert s.value("meshtest_environments_built_total") >= 1
    # one node: it prepared every project itself, none lent by another
    assert s.value("meshtest_projects_prepared_total") == len(res["projects"])
    assert s.value("meshtest_projects_borrowed_total") == 0
    # the folder's size is a cached measure (taken at the first scrape), the store's is now
    assert s.value("meshtest_data_dir_bytes") > 0
    assert s.value("meshtest_store_bytes") > 0
    # alone: no peer to replicate with or to send blobs to
    for name in ("meshtest_replication_sent_bytes_total",
                 "meshtest_replication_received_bytes_total",
                 "meshtest_blob_sent_bytes_total", "meshtest_blob_received_bytes_total"):
        assert s.value(name) == 0, name

    # HTTP: every request of this test, by pattern and status
    h = s.http()
    assert h[("POST", "/evaluation", "201")] == 1
    assert h[("GET", "/evaluation/*", "200")] == gets
    assert h[("GET", "/evaluation/*/results", "200")] == 1
    assert h[("GET", "/metrics", "200")] == scrapes
    assert h[("GET", "unmatched", "404")] == 1
    assert h[("PUT", "unmatched", "405")] == 1
    assert h[("GET", "/health", "200")] >= 1        # the fixture's readiness polls
    assert set(h) - {("GET", "/health", "200")} == {
        ("POST", "/evaluation", "201"), ("GET", "/evaluation/*", "200"),
        ("GET", "/evaluation/*/results", "200"), ("GET", "/metrics", "200"),
        ("GET", "unmatched", "404"), ("PUT", "unmatched", "405")}, h
    assert "secret-path" not in s.text and eid not in s.text


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_open_without_token(make_node, monkeypatch):
    monkeypatch.setenv("MESHTEST_API_TOKEN", "metrics-token-" + os.urandom(8).hex())
    node = make_node(name="tok")
    # evaluation data needs the token; /metrics does not
    st, _, _ = node.request("GET", "/evaluation", headers={"Authorization": None})
    assert st == 401
    st, _, _ = node.request("GET", "/evaluation", headers={"Authorization": "Bearer wrong"})
    assert st == 401
    st, _, _ = node.request("GET", "/evaluation")
    assert st == 200
    s = scrape(node)                 # no Authorization header at all
    h = s.http()
    assert h[("GET", "/evaluation", "401")] == 2
    assert h[("GET", "/evaluation", "200")] == 1
    assert "metrics-token" not in s.text
    # a wrong token on /metrics is no reason to refuse it either
    s = scrape(node, {"Authorization": "Bearer wrong"})
    assert s.http()[("GET", "/metrics", "200")] == 1


@pytest.mark.timeout(300)
def test_three_nodes(tmp_path):
    src = str(tmp_path / "src")
    corpus.write_simple(src, "spread", 2, 1, sleep=0.3, modules=6)
    z = corpus.zip_dir(src, str(tmp_path / "spread.zip"))
    nodes = loop_nodes(tmp_path, 3, "m")
    with running(nodes):
        eid = nodes[0].submit_zip(z)
        js = wait_done(nodes[0], eid, timeout=180)
        assert js["status"] == "done", js
        for n in nodes:
            wait_done(n, eid, timeout=30)

        # replication runs both ways on every node, within a few rounds
        def replicated():
            for n in nodes:
                s = scrape(n)
                if s.value("meshtest_replication_sent_bytes_total") <= 0 or \
                   s.value("meshtest_replication_received_bytes_total") <= 0 or \
                   s.value("meshtest_replication_sent_documents_total") <= 0 or \
                   s.value("meshtest_replication_received_documents_total") <= 0:
                    return False
            return True
        wait_for(replicated, 60, "replication bytes on every node")

        def settled():
            return all(scrape(n).value("meshtest_slots_busy") == 0 for n in nodes)
        wait_for(settled, 30, "slots idle")

        res = nodes[0].get(f"/evaluation/{eid}/results")[1]
        ran = {n.addr: 0 for n in nodes}
        passed = {n.addr: 0 for n in nodes}
        for p in res["projects"]:
            for m in p["modules"]:
                ran[m["node"]] += 1
                passed[m["node"]] += m["passed"]
        assert sum(ran.values()) == 6
        scrapes = [scrape(n) for n in nodes]
        for n, s in zip(nodes, scrapes):
            assert s.by_label("meshtest_members", "state") == {
                "alive": 3, "suspect": 0, "dead": 0, "left": 0}, n.addr
            mods = s.by_label("meshtest_modules_total", "outcome")
            assert mods["finished"] == ran[n.addr], (n.addr, mods, ran)
            assert sum(mods.values()) == ran[n.addr]
            assert s.value("meshtest_tests_total", outcome="passed") == passed[n.addr]
            assert_histogram(s, ran[n.addr])
            assert s.value("meshtest_modules_pending") == 0
            assert s.value("meshtest_modules_running") == 0
        # the node that took the ZIP handed its blob on; whatever moved arrived whole
        assert scrapes[0].value("meshtest_blob_sent_bytes_total") > 0
        sent = sum(s.value("meshtest_blob_sent_bytes_total") for s in scrapes)
        got = sum(s.value("meshtest_blob_received_bytes_total") for s in scrapes)
        assert sent == got > 0
