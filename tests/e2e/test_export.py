"""Exports (issue 12 part 3) and the client's summary of what failed (part 6).

One evaluation of a known corpus: alpha, beta and gamma of corpus.py (passed,
failed, erroring, skipped, timed out and crashed tests), a project whose
set-up command fails (the project error of a ZIP: `broken`) and a project
whose folder is named like a spreadsheet formula. A folder name cannot hold
'/', so the issue's `=cmd|' /C calc'!A0` becomes `=cmd|' -C calc'!A0` here.

Standard consumers read every format: Python's csv module, xml.etree against
the attributes the Jenkins junit-10.xsd schema declares, json for Gradescope.
Every expected number is a literal or comes from /results."""

import csv
import io
import json
import os
import secrets
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

import corpus
from conftest import MESHTEST_BIN, Node, get_results, http_request, run_cli, wait_done
from expect import approx

CALC = "=cmd|' -C calc'!A0"
BROKEN_ERROR = "set-up command 1 failed (exit 1): gen.py: no such input"
ORDER = [CALC, "alpha", "beta", "broken", "gamma"]
MISSING = "00000000-0000-4000-8000-000000000000"

CSV_WANT = (
    "id,passed,failed,skipped,percent,grade,error\r\n"
    "'=cmd|' -C calc'!A0,1,2,0,33.33,6.67,\r\n"
    "alpha,10,5,1,66.67,13.33,\r\n"
    "beta,6,3,0,66.67,13.33,\r\n"
    "broken,0,0,0,0.00,0.00," + BROKEN_ERROR + "\r\n"
    "gamma,5,0,0,100.00,20.00,\r\n")

# What failed, in the order of /results: projects, module paths, tests.
FAILURE_LINES = [
    f"FAILED {CALC}/tests/test_mod1.py::test_fail_0 - assert False",
    f"FAILED {CALC}/tests/test_mod1.py::test_fail_1 - assert False",
    "FAILED alpha/tests/test_basic.py::test_fails - assert 1 == 2",
    "ERROR alpha/tests/test_import_error.py - ModuleNotFoundError: No module named"
    " 'this_module_does_not_exist_anywhere'",
    "FAILED alpha/tests/test_skip_xfail.py::test_strict_xpass - [XPASS(strict)] must fail",
    "ERROR alpha/tests/test_teardown.py::test_passes_then_teardown_errors -"
    " RuntimeError: teardown boom",
    "ERROR alpha/tests/test_teardown.py::test_setup_error - RuntimeError: setup boom",
    "ERROR beta/tests/test_exit.py::test_b - interpreter died (exit status 3) during"
    " this test",
    "ERROR beta/tests/test_exit.py::test_c - not run: interpreter died (exit status 3)",
    "ERROR beta/tests/test_hang.py::test_4_hangs - timed out after 4 s during this test",
]
PROJECT_ERROR_LINE = f"PROJECT ERROR broken - {BROKEN_ERROR}"

# The attributes junit-10.xsd (Jenkins xUnit plugin) declares, and the
# ones it requires (the issue asks for classname on every testcase too).
XSD_ATTRS = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped",
                   "timestamp", "hostname", "id", "package", "file", "log", "url"},
                  {"name", "tests", "failures", "errors"}),
    "testcase": ({"name", "time", "classname", "group"}, {"name", "classname"}),
    "failure": ({"type", "message"}, set()),
    "error": ({"type", "message"}, set()),
    "skipped": ({"type", "message"}, set()),
}
XSD_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "system-out", "system-err"},
}


def write_broken(root):
    """A project whose set-up command fails: the project's error."""
    corpus._write(os.path.join(root, "broken"), "meshtest.toml",
                  "commands = [\"echo 'gen.py: no such input' >&2; exit 1\"]\n")
    corpus._write(os.path.join(root, "broken"), "tests/test_ok.py",
                  "def test_ok():\n    assert True\n")


def small_zip(tmp, name="small.zip"):
    """The formula-named project (1 passed, 2 failed) and broken."""
    src = os.path.join(tmp, name + "-src")
    corpus.write_simple(src, CALC, 1, 2)
    write_broken(src)
    return corpus.zip_dir(src, os.path.join(tmp, name))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """(node, evaluation id, /results) of the whole corpus, graded."""
    base = tmp_path_factory.mktemp("export")
    node = Node(base, name="export", module_timeout=corpus.CORPUS_MODULE_TIMEOUT)
    node.start()
    try:
        src = str(base / "src")
        corpus.write_corpus(src)
        corpus.write_simple(src, CALC, 1, 2)
        write_broken(src)
        eid = node.submit_zip(corpus.zip_dir(src, str(base / "corpus.zip")),
                              module_timeout=corpus.CORPUS_MODULE_TIMEOUT)
        js = wait_done(node, eid, timeout=200)
        assert js["status"] == "done", js
        res = get_results(node, eid)
        assert [p["project_id"] for p in res["projects"]] == ORDER
        yield node, eid, res
    finally:
        node.close()


def export(node, eid, query, headers=None):
    """(status, Content-Type, body bytes) of GET /evaluation/<eid>/export?query."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        conn.request("GET", f"/evaluation/{eid}/export?{query}",
                     headers=node.auth(headers))
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def by_project(res):
    return {p["project_id"]: p for p in res["projects"]}


def cli_bytes(*args, env=None):
    """The client's exit status, stdout bytes and stderr text."""
    r = subprocess.run([MESHTEST_BIN, *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120, env=env)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


# ------------------------------------------------------------------- CSV

@pytest.mark.timeout(300)
def test_csv_gradebook_exact(done):
    node, eid, res = done
    st, ctype, body = export(node, eid, "format=csv")
    assert (st, ctype) == (200, "text/csv; charset=utf-8"), body[:300]
    assert body.decode("utf-8") == CSV_WANT
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows[0] == ["id", "passed", "failed", "skipped", "percent", "grade", "error"]
    assert [r[0] for r in rows[1:]] == ["'" + CALC, "alpha", "beta", "broken", "gamma"]
    # the cells agree with /results; numbers are numbers, not neutralised text
    for row, p in zip(rows[1:], res["projects"]):
        assert [int(v) for v in row[1:4]] == [p["passed"], p["failed"], p["skipped"]]
        counted = p["passed"] + p["failed"]
        assert float(row[4]) == approx(100 * p["passed"] / counted if counted else 0)
        assert float(row[5]) == approx(p["grade"])
        assert row[6] == (p["error"] or "")
    # a one-project gradebook has that row alone
    st, _, body = export(node, eid, "format=csv&project=" + urllib.parse.quote(CALC))
    assert st == 200
    assert body.decode() == CSV_WANT.split("\r\n")[0] + "\r\n" + \
        CSV_WANT.split("\r\n")[1] + "\r\n"


# ----------------------------------------------------------------- JUnit

def check_xsd_shape(el):
    """Attributes and children of every element as junit-10.xsd has them."""
    allowed, required = XSD_ATTRS[el.tag]
    assert set(el.attrib) <= allowed, (el.tag, el.attrib)
    assert required <= set(el.attrib), (el.tag, el.attrib)
    for child in el:
        if el.tag in XSD_CHILDREN:
            assert child.tag in XSD_CHILDREN[el.tag], (el.tag, child.tag)
        if child.tag in XSD_ATTRS:
            check_xsd_shape(child)
    for k in ("tests", "failures", "errors", "skipped"):
        if k in el.attrib:
            assert int(el.attrib[k]) >= 0
    if "time" in el.attrib:
        assert float(el.attrib["time"]) >= 0


def outcome_of(case):
    kids = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
    assert len(kids) <= 1, kids
    return kids[0] if kids else "passed"


@pytest.mark.timeout(300)
def test_junit_counts_equal_results(done):
    node, eid, res = done
    st, ctype, body = export(node, eid, "format=junit")
    assert (st, ctype) == (200, "application/xml"), body[:300]
    root = ET.fromstring(body)
    assert root.tag == "testsuites"
    check_xsd_shape(root)
    assert root.attrib["name"] == f"meshtest evaluation {eid}"
    suites = {s.attrib["name"]: s for s in root.findall("testsuite")}
    want = []
    for p in res["projects"]:
        if p["error"]:
            want.append(p["project_id"])
        want += [m["module"] for m in p["modules"]]
    assert list(suites) == want
    assert len(root.findall("testsuite")) == len(want)

    for p in res["projects"]:
        for m in p["modules"]:
            s = suites[m["module"]]
            cases = s.findall("testcase")
            kinds = [outcome_of(c) for c in cases]
            a = s.attrib
            assert int(a["tests"]) == len(cases) == len(m["tests"])
            assert int(a["failures"]) == kinds.count("failure")
            assert int(a["errors"]) == kinds.count("error")
            assert int(a["skipped"]) == kinds.count("skipped") == m["skipped"]
            assert int(a["failures"]) + int(a["errors"]) == m["failed"]
            assert kinds.count("passed") == m["passed"]
            assert int(a["errors"]) == sum(t["outcome"] == "error" for t in m["tests"])
            assert a["hostname"] == m["node"]
            assert float(a["time"]) == approx(m["duration"])
            for c, t in zip(cases, m["tests"]):
                name = t["nodeid"].split("::")[-1]
                assert c.attrib["name"] == name
                assert c.attrib["classname"].startswith(p["project_id"] + ".tests.")
    n_err = sum(1 for p in res["projects"] if p["error"])
    total = res["passed"] + res["failed"] + res["skipped"] + n_err
    a = root.attrib
    assert int(a["tests"]) == total == len(root.findall("testsuite/testcase"))
    assert int(a["failures"]) + int(a["errors"]) == res["failed"] + n_err

    def case(suite, name):
        (c,) = [c for c in suites[suite].findall("testcase") if c.attrib["name"] == name]
        return c

    f = case("alpha/tests/test_basic.py", "test_fails").find("failure")
    assert (f.attrib, f.text.splitlines()[-1]) == (
        {"message": "assert 1 == 2", "type": "call"}, "tests/test_basic.py:14: AssertionError")
    assert case("alpha/tests/test_basic.py", "test_fails").attrib["classname"] == \
        "alpha.tests.test_basic"
    e = case("alpha/tests/test_teardown.py", "test_setup_error").find("error")
    assert e.attrib == {"message": "RuntimeError: setup boom", "type": "setup"}
    e = case("alpha/tests/test_import_error.py", "tests/test_import_error.py").find("error")
    assert e.attrib == {"message": "ModuleNotFoundError: No module named "
                        "'this_module_does_not_exist_anywhere'", "type": "collect"}
    s = case("alpha/tests/test_skip_xfail.py", "test_skipped").find("skipped")
    assert s.attrib == {"message": "not today"}
    assert outcome_of(case("alpha/tests/test_skip_xfail.py", "test_xfail")) == "passed"
    assert outcome_of(case("alpha/tests/test_skip_xfail.py", "test_strict_xpass")) == \
        "failure"
    e = case("beta/tests/test_hang.py", "test_4_hangs").find("error")
    assert e.attrib == {"message": "timed out after 4 s during this test", "type": "call"}
    e = case("beta/tests/test_exit.py", "test_c").find("error")
    assert e.attrib == {"message": "not run: interpreter died (exit status 3)",
                        "type": "setup"}
    assert case("gamma/tests/test_all_pass.py", "test_positive[3]").attrib["classname"] \
        == "gamma.tests.test_all_pass"
    assert case(f"{CALC}/tests/test_mod1.py", "test_fail_1").attrib["classname"] == \
        f"{CALC}.tests.test_mod1"


# ------------------------------------------------------------ Gradescope

@pytest.mark.timeout(300)
def test_gradescope_per_project(done):
    node, eid, res = done
    st, ctype, body = export(node, eid, "format=gradescope")
    assert (st, ctype) == (200, "application/json"), body[:300]
    doc = json.loads(body)
    assert list(doc) == ["projects"]
    assert list(doc["projects"]) == ORDER
    for p in res["projects"]:
        g = doc["projects"][p["project_id"]]
        assert g["score"] == approx(p["grade"]) and g["max_score"] == 20
        statuses = [t.get("status") for t in g["tests"]]
        if p["error"]:
            assert g["tests"] == [{"name": "project error", "status": "failed",
                                   "score": 0, "max_score": 20, "output": p["error"]}]
            assert g["output"] == f"error: {p['error']}\n"
            continue
        assert g["output"] == \
            f"{p['passed']} passed, {p['failed']} failed, {p['skipped']} skipped\n"
        assert statuses.count("passed") == p["passed"]
        assert statuses.count("failed") == p["failed"]
        assert statuses.count(None) == p["skipped"]
        assert set(statuses) <= {"passed", "failed", None}
        assert sum(t["score"] for t in g["tests"]) == approx(p["grade"])
        assert sum(t["max_score"] for t in g["tests"]) == approx(20 if p["passed"] +
                                                                 p["failed"] else 0)
        names = [t["nodeid"] for m in p["modules"] for t in m["tests"]]
        assert [t["name"] for t in g["tests"]] == names
    alpha = {t["name"]: t for t in doc["projects"]["alpha"]["tests"]}
    assert alpha["tests/test_basic.py::test_fails"]["status"] == "failed"
    assert alpha["tests/test_basic.py::test_fails"]["score"] == 0
    assert alpha["tests/test_basic.py::test_fails"]["max_score"] == approx(20 / 15)
    assert "E       assert 1 == 2" in alpha["tests/test_basic.py::test_fails"]["output"]
    assert alpha["tests/test_basic.py::test_one"]["score"] == approx(20 / 15)
    assert alpha["tests/test_skip_xfail.py::test_skipped"] == {
        "name": "tests/test_skip_xfail.py::test_skipped", "score": 0, "max_score": 0,
        "output": "not today"}

    # &project=: exactly that project's results.json
    for pid in ORDER:
        st, ctype, one = export(node, eid, "format=gradescope&project=" +
                                urllib.parse.quote(pid, safe=""))
        assert (st, ctype) == (200, "application/json"), one
        assert json.loads(one) == doc["projects"][pid]


@pytest.mark.timeout(300)
def test_project_error_in_every_format(done):
    node, eid, _ = done
    _, _, body = export(node, eid, "format=csv&project=broken")
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[1] == ["broken", "0", "0", "0", "0.00", "0.00", BROKEN_ERROR]
    _, _, body = export(node, eid, "format=junit&project=broken")
    root = ET.fromstring(body)
    (suite,) = root.findall("testsuite")
    assert suite.attrib == {"name": "broken", "tests": "1", "failures": "0",
                            "errors": "1", "skipped": "0", "time": "0.000"}
    (c,) = suite.findall("testcase")
    assert c.attrib == {"classname": "broken", "name": "project error", "time": "0.000"}
    assert c.find("error").attrib == {"message": BROKEN_ERROR, "type": "project"}
    assert c.find("error").text == BROKEN_ERROR
    _, _, body = export(node, eid, "format=gradescope&project=broken")
    g = json.loads(body)
    assert (g["score"], g["output"]) == (0, f"error: {BROKEN_ERROR}\n")
    assert g["tests"][0]["output"] == BROKEN_ERROR


# ------------------------------------------------------------ the client

@pytest.mark.timeout(300)
def test_cli_export_writes_the_same_bytes(done, tmp_path):
    node, eid, _ = done
    for fmt, project in (("csv", None), ("junit", None), ("gradescope", None),
                         ("gradescope", CALC), ("junit", "beta")):
        q = f"format={fmt}" + (f"&project={urllib.parse.quote(project)}" if project else "")
        st, _, want = export(node, eid, q)
        assert st == 200
        extra = ["--project", project] if project else []
        rc, out, err = cli_bytes("export", eid, "--format", fmt, "--node", node.addr, *extra)
        assert (rc, err) == (0, ""), err
        assert out == want, fmt
        path = tmp_path / f"out-{fmt}"
        rc, out, err = cli_bytes("export", eid, f"--format={fmt}", "--node", node.addr,
                                 "--output", str(path), *extra)
        assert (rc, out, err) == (0, b"", ""), err
        assert path.read_bytes() == want
        assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


@pytest.mark.timeout(300)
def test_cli_results_prints_every_failure(done):
    node, eid, _ = done
    r = run_cli("results", eid, "--node", node.addr)
    assert (r.returncode, r.stderr) == (1, ""), r.stderr
    assert r.stdout.splitlines() == FAILURE_LINES + [PROJECT_ERROR_LINE]
    r = run_cli("results", eid, "--project", "beta", "--node", node.addr)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [ln for ln in FAILURE_LINES if " beta/" in ln]
    r = run_cli("results", eid, "--project", "broken", "--node", node.addr)
    assert (r.returncode, r.stdout) == (1, PROJECT_ERROR_LINE + "\n")
    r = run_cli("results", eid, "--project", "gamma", "--node", node.addr)
    assert (r.returncode, r.stdout) == (0, "no failed or errored tests, no project errors\n")
    r = run_cli("results", eid, "--project", "nobody", "--node", node.addr)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"meshtest: no project nobody in evaluation {eid}\n"
    r = run_cli("results", MISSING, "--node", node.addr)
    assert (r.returncode, r.stderr) == (2, f"meshtest: evaluation {MISSING} not found\n")
    r = run_cli("results", "not-an-id", "--node", node.addr)
    assert (r.returncode, r.stderr) == (2, "meshtest: not-an-id is not an evaluation id\n")


@pytest.mark.timeout(300)
def test_status_lists_failures_after_the_table(done):
    node, eid, _ = done
    r = run_cli("status", eid, "--wait", "--node", node.addr)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"evaluation {eid}: done, 12 modules, ")
    assert lines[-len(FAILURE_LINES) - 1:] == FAILURE_LINES + [PROJECT_ERROR_LINE]
    more = f"... and %d more failed or errored tests (meshtest results {eid} lists them all)"
    r = run_cli("status", eid, "--failures", "3", "--node", node.addr)
    assert r.stdout.splitlines()[-5:] == FAILURE_LINES[:3] + [more % 7, PROJECT_ERROR_LINE]
    r = run_cli("status", eid, "--failures=0", "--node", node.addr)
    lines = r.stdout.splitlines()
    assert lines[-3].startswith("overall: ")
    assert lines[-2:] == [more % 10, PROJECT_ERROR_LINE]
    r = run_cli("status", eid, "--json", "--node", node.addr)
    assert json.loads(r.stdout)["id"] == eid  # JSON stays JSON
    r = run_cli("status", eid, "--failures", "-1", "--node", node.addr)
    assert r.returncode == 2
    assert r.stderr == "meshtest: --failures needs a number of tests to list (0 for none)\n"


@pytest.mark.timeout(240)
def test_submit_wait_failures_1(done, tmp_path):
    node, _, _ = done
    z = small_zip(str(tmp_path))
    r = run_cli("submit", z, "--wait", "--failures", "1", "--node", node.addr, timeout=200)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    eid = lines[0].split()[1].rstrip(":")
    assert lines[-4:] == [
        "overall: 1 passed, 2 failed, 0 skipped, 33.3% passed, nota_final 3.3",
        FAILURE_LINES[0],
        f"... and 1 more failed or errored test (meshtest results {eid} lists them all)",
        PROJECT_ERROR_LINE]


# ------------------------------------------------------------ bad input

@pytest.mark.timeout(300)
def test_bad_requests(done):
    node, eid, _ = done
    cases = [
        (MISSING, "format=csv", 404, "not found"),
        ("not-a-uuid", "format=junit", 404, "not found"),
        (eid, "", 400, "missing format: use format=csv, junit or gradescope"),
        (eid, "format=", 400, "missing format: use format=csv, junit or gradescope"),
        (eid, "format=xml", 400, "unknown format 'xml': use csv, junit or gradescope"),
        (eid, "format=CSV", 400, "unknown format 'CSV': use csv, junit or gradescope"),
        (eid, "format=gradescope&project=nobody", 404,
         f"no project 'nobody' in evaluation {eid}"),
        (eid, "format=csv&project=", 404, f"no project '' in evaluation {eid}"),
        (eid, "format=junit&project=%ff", 404, f"no project '' in evaluation {eid}"),
    ]
    for e, q, code, msg in cases:
        st, ctype, body = export(node, e, q)
        assert (st, json.loads(body)) == (code, {"error": msg}), (e, q, body)
        assert ctype == "application/json"
    # the client: usage errors before asking, the node's answer after
    r = run_cli("export", MISSING, "--format", "csv", "--node", node.addr)
    assert (r.returncode, r.stdout, r.stderr) == (
        2, "", f"meshtest: evaluation {MISSING} not found\n")
    r = run_cli("export", eid, "--format", "gradescope", "--project", "nobody",
                "--node", node.addr)
    assert (r.returncode, r.stderr) == (
        2, f"meshtest: node answered 404: no project 'nobody' in evaluation {eid}\n")
    r = run_cli("export", eid, "--format", "xml", "--node", node.addr)
    assert (r.returncode, r.stderr) == (
        2, "meshtest: unknown format xml: use csv, junit or gradescope\n")
    r = run_cli("export", eid, "--node", node.addr)
    assert r.returncode == 2
    assert r.stderr.startswith("meshtest: export needs --format csv, junit or gradescope\n")
    r = run_cli("export", "--format", "csv")
    assert r.returncode == 2 and r.stderr.startswith("meshtest: export needs an evaluation id\n")


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_export_needs_the_api_token(make_node, monkeypatch, tmp_path):
    token = secrets.token_hex(32)
    monkeypatch.setenv("MESHTEST_API_TOKEN", token)
    node = make_node(name="tokened")
    eid = node.submit_zip(corpus.gamma_zip(str(tmp_path)))
    assert wait_done(node, eid, timeout=100)["status"] == "done"
    for q in ("format=csv", "format=junit", "format=gradescope",
              "format=gradescope&project=gamma", "format=xml"):
        st, _, raw = http_request(node.port, "GET", f"/evaluation/{eid}/export?{q}")
        assert st == 401, (q, raw)
        st, _, raw = http_request(node.port, "GET", f"/evaluation/{eid}/export?{q}",
                                  headers={"Authorization": "Bearer " + "0" * 64})
        assert st == 401, (q, raw)
    st, ctype, body = export(node, eid, "format=csv")
    assert (st, ctype) == (200, "text/csv; charset=utf-8")
    assert body == (b"id,passed,failed,skipped,percent,grade,error\r\n"
                    b"gamma,5,0,0,100.00,20.00,\r\n")
    # the client sends MESHTEST_API_TOKEN; without it the node refuses
    rc, out, err = cli_bytes("export", eid, "--format", "csv", "--node", node.addr)
    assert (rc, out, err) == (0, body, "")
    env = {k: v for k, v in os.environ.items() if k != "MESHTEST_API_TOKEN"}
    rc, out, err = cli_bytes("export", eid, "--format", "csv", "--node", node.addr, env=env)
    assert (rc, out) == (2, b"")
    assert err.startswith("meshtest: node answered 401: ")
    rc, out, err = cli_bytes("results", eid, "--node", node.addr, env=env)
    assert (rc, out) == (2, b"") and err.startswith("meshtest: node answered 401: ")
    rc, out, err = cli_bytes("results", eid, "--node", node.addr)
    assert (rc, out, err) == (0, b"no failed or errored tests, no project errors\n", "")
