"""The dashboard at GET /: its files as the node serves them, and the page in a
real browser (Debian's chromium driven by chromedriver through selenium).

1. GET / and /static/<file>: the embedded files byte for byte, their content
   types, the Content-Security-Policy and the other headers; unknown files
   404; no token needed for the page itself, even on a node with one.
2. A 2-node loopback cluster: the page opened on node A shows an evaluation
   submitted through the API run to done, with the exact counts; a project's
   page shows a failure message exactly as /results has it; a test named
   with markup is shown as text (no element made of it, no alert); node B
   killed -9 shows as dead in the network view. The test saves a screenshot
   of the evaluation's page to $MESHTEST_SCREENSHOT (default: the test's
   tmp folder; `MESHTEST_SCREENSHOT=docs/dashboard.png` renews the README's).
3. A node with an API token: the page asks for it (a wrong one is refused
   with a message), then shows the evaluations, and keeps it for the tab.
"""

import http.client
import json
import os
import shutil
import time

import pytest

import corpus
from conftest import REPO, loop_nodes, running, wait_done

TOKEN = "dashboard-token-4f1c9a"
MARKUP_ID = "<img src=x onerror=alert(1)>"
MARKUP_NODEID = f"tests/test_markup.py::test_x[{MARKUP_ID}]"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none';"
       " base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
WEB = os.path.join(REPO, "src", "web")
SCREENSHOT = os.environ.get("MESHTEST_SCREENSHOT")


def raw(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def web_file(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


# --------------------------------------------------------------------------
# 1. the files
# --------------------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.timeout(60)
def test_dashboard_files_are_served_with_a_strict_policy(make_node):
    n = make_node()
    for path, name, ctype in (
            ("/", "index.html", "text/html; charset=utf-8"),
            ("/static/app.js", "app.js", "application/javascript; charset=utf-8"),
            ("/static/style.css", "style.css", "text/css; charset=utf-8"),
            ("/static/favicon.svg", "favicon.svg", "image/svg+xml")):
        st, hdrs, body = raw(n.port, "GET", path)
        assert st == 200, (path, st, body[:200])
        assert hdrs["content-type"] == ctype, path
        assert hdrs["content-security-policy"] == CSP, path
        assert hdrs["x-content-type-options"] == "nosniff", path
        assert hdrs["cache-control"] == "no-cache", path
        assert hdrs["referrer-policy"] == "no-referrer", path
        assert body == web_file(name), f"{path} is not src/web/{name}"
    # The page loads its script from the node and has none inline (the
    # policy would refuse it).
    page = web_file("index.html").decode()
    assert page.count("<script") == 1
    assert '<script src="/static/app.js" defer></script>' in page
    assert " on" + "click=" not in page and "style=" not in page
    for path in ("/static/x", "/static/app.js.map", "/static/index.html", "/static/",
                 "/index.html"):
        st, hdrs, body = raw(n.port, "GET", path)
        assert st == 404, path
        assert json.loads(body) == {"error": "not found"}, path
        assert "content-security-policy" not in hdrs
    st, _, body = raw(n.port, "POST", "/")
    assert st == 405 and json.loads(body) == {"error": "method POST is not allowed on /"}


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_health_counts_busy_slots(make_node, tmp_path):
    """The network view's "busy of all" slots: /health's slots_busy."""
    n = make_node()
    st, h = n.get("/health")
    assert st == 200 and (h["slots"], h["slots_busy"]) == (2, 0), h
    src = tmp_path / "src"
    corpus.write_simple(str(src), "slow", passed=1, failed=0, sleep=3.0)
    eid = n.submit_zip(corpus.zip_dir(str(src), str(tmp_path / "slow.zip")))
    busy = []

    def one_busy():
        st, h = n.get("/health")
        busy.append(h["slots_busy"])
        return h["slots_busy"] == 1
    deadline = time.monotonic() + 60
    while not one_busy():
        assert time.monotonic() < deadline, f"never a busy slot: {busy[-20:]}"
        time.sleep(0.1)
    assert wait_done(n, eid)["passed"] == 1
    st, h = n.get("/health")
    assert h["slots_busy"] == 0, h
    assert set(busy) <= {0, 1}, busy


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_dashboard_files_need_no_token_but_its_data_does(make_node, monkeypatch):
    monkeypatch.setenv("MESHTEST_API_TOKEN", TOKEN)
    n = make_node(name="tok")
    for path in ("/", "/static/app.js", "/static/style.css"):
        st, _, _ = raw(n.port, "GET", path)
        assert st == 200, path
    st, _, body = raw(n.port, "GET", "/evaluation")
    assert st == 401, body
    st, _, body = raw(n.port, "GET", "/evaluation",
                      {"Authorization": "Bearer " + TOKEN})
    assert st == 200 and json.loads(body) == {"evaluations": []}


# --------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------

@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1280,900", "--lang=en-US",
              "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    # An alert (there must be none) stays open for the test to see.
    opts.set_capability("unhandledPromptBehavior", "ignore")
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def wait_dom(drv, pred, timeout, what):
    """Poll pred(drv) until it returns something true; returns it."""
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = pred(drv)
            if got:
                return got
        except (NoSuchElementException, StaleElementReferenceException) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last error: {last!r}); "
                         f"page text:\n{drv.find_element('tag name', 'body').text[:3000]}")


def css(drv, sel):
    return drv.find_element("css selector", sel)


def click(drv, el):
    """Click as a user would: the element in the middle of the window first
    (WebDriver scrolls it to the top, under the page's sticky header)."""
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def text_of(drv, el):
    """The element's exact textContent (WebDriver's .text trims and folds)."""
    return drv.execute_script("return arguments[0].textContent", el)


def shown(drv, sel):
    els = drv.find_elements("css selector", sel)
    return els[0] if els and els[0].is_displayed() else None


def no_alert(drv):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        text = drv.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"an alert fired: {text!r}")


def console_errors(drv):
    """What the page logged as errors (a script error, a failed request)."""
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def write_broken(root):
    """A project whose set-up command fails: a project error, grade 0."""
    p = os.path.join(root, "broken")
    os.makedirs(os.path.join(p, "tests"))
    with open(os.path.join(p, "tests", "test_never.py"), "w") as f:
        f.write("def test_never():\n    assert True\n")
    with open(os.path.join(p, "meshtest.json"), "w") as f:
        json.dump({"commands": ["echo 'cannot reach <db> & co' >&2; exit 1"]}, f)


def write_markup(root):
    """A project whose test id and failure message hold markup."""
    p = os.path.join(root, "markup")
    os.makedirs(os.path.join(p, "tests"))
    with open(os.path.join(p, "tests", "test_markup.py"), "w") as f:
        f.write("import pytest\n\n\n"
                f"@pytest.mark.parametrize('v', [1], ids=[{MARKUP_ID!r}])\n"
                "def test_x(v):\n"
                "    assert v == 2, '<b>not bold</b> & <script>alert(2)</script>'\n")


# --------------------------------------------------------------------------
# 2. a cluster in the browser
# --------------------------------------------------------------------------

@pytest.mark.timeout(420)
def test_dashboard_follows_an_evaluation_and_the_network(tmp_path, browser):
    src = tmp_path / "src"
    corpus.write_alpha(str(src))
    corpus.write_gamma(str(src))
    write_markup(str(src))
    write_broken(str(src))
    z = corpus.zip_dir(str(src), str(tmp_path / "corpus.zip"))
    drv = browser
    with running(loop_nodes(tmp_path, 2, "d")) as nodes:
        a, b = nodes
        drv.get(f"http://{a.addr}/")
        wait_dom(drv, lambda d: shown(d, "#list-empty"), 15, "the empty list")
        assert text_of(drv, css(drv, "#node-address")) == a.addr

        eid = a.submit_zip(z)
        row = f'#list-body tr[data-id="{eid}"]'
        wait_dom(drv, lambda d: css(d, row), 15, "the evaluation's row")
        wait_dom(drv, lambda d: css(d, row + ' [data-status="done"]'), 240,
                 "the evaluation done on the page")
        doc = wait_done(a, eid, timeout=30)
        assert doc["status"] == "done" and doc["executed"] == 9, doc

        def cell(name):
            return text_of(drv, css(drv, f"{row} td.{name}"))
        assert text_of(drv, css(drv, row + " td.status")) == "done"
        assert cell("progress") == "9 of 9 modules executed"
        assert (cell("projects"), cell("passed"), cell("failed"), cell("skipped")) == \
            ("4", "15", "6", "1")
        assert cell("grade") == f"{(20 * 10 / 15 + 20.0 + 0.0 + 0.0) / 4:.2f}" == "8.33"

        # One evaluation: its projects with counts and grades.
        click(drv, css(drv, row + " th a"))
        wait_dom(drv, lambda d: shown(d, "#view-eval") and
                 len(d.find_elements("css selector", "#eval-body tr")) == 4, 15,
                 "the evaluation's projects")
        assert text_of(drv, css(drv, "#eval-progress")) == "9 of 9 modules executed"
        want = {"alpha": ("ready", "10", "5", "1", "13.33"),
                "gamma": ("ready", "5", "0", "0", "20.00"),
                "markup": ("ready", "0", "1", "0", "0.00"),
                "broken": ("error", "0", "0", "0", "0.00")}
        for pid, exp in want.items():
            tr = f'#eval-body tr[data-project="{pid}"]'
            got = tuple(text_of(drv, css(drv, f"{tr} td.{k}"))
                        for k in ("state", "passed", "failed", "skipped", "grade"))
            assert got == exp, (pid, got)
        broken = doc["projects"]["broken"]["error"]
        assert broken == "set-up command 1 failed (exit 1): cannot reach <db> & co", broken
        assert text_of(drv, css(drv, '#eval-body tr[data-project="broken"] td.problems')) == \
            "Error: " + broken
        assert drv.find_elements("tag name", "db") == []
        wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Finished", 15,
                 "the page stops updating a finished evaluation")
        assert not css(drv, "#eval-cancel").is_displayed(), "no cancel once done"
        shot = SCREENSHOT or os.path.join(str(tmp_path), "dashboard.png")
        os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
        assert drv.save_screenshot(shot)
        assert os.path.getsize(shot) > 10000

        # A project: its modules and a failure message, exactly as /results.
        st, res = a.get(f"/evaluation/{eid}/results")
        assert st == 200
        alpha = next(p for p in res["projects"] if p["project_id"] == "alpha")
        tests = {t["nodeid"]: t for m in alpha["modules"] for t in m["tests"]}
        fail = tests["tests/test_basic.py::test_fails"]
        assert fail["outcome"] == "failed" and "assert 1 == 2" in fail["message"]
        click(drv, css(drv, '#eval-body tr[data-project="alpha"] th a'))
        sel = '#project-modules tr[data-nodeid="tests/test_basic.py::test_fails"]'
        wait_dom(drv, lambda d: shown(d, "#view-project") and css(d, sel), 15,
                 "alpha's tests")
        assert text_of(drv, css(drv, "#project-title")) == "alpha"
        assert len(drv.find_elements("css selector", "#project-modules section.module")) == 7
        msg = css(drv, sel + " td.msg pre")
        assert msg.is_displayed(), "a failing module's tests are open"
        assert text_of(drv, msg) == fail["message"]
        assert text_of(drv, css(drv, sel + " td [data-outcome]")) == "failed"
        mod = css(drv, '#project-modules section[data-module="alpha/tests/test_basic.py"]')
        basic = next(m for m in alpha["modules"] if m["path"] == "tests/test_basic.py")
        assert basic["node"] in (a.addr, b.addr)
        assert "Node" + basic["node"] in text_of(drv, mod)

        # Markup from a project is text: no element made of it, no alert.
        drv.get(f"http://{a.addr}/#/evaluation/{eid}/project/markup")
        sel = f'#project-modules tr[data-nodeid="{MARKUP_NODEID}"]'
        wait_dom(drv, lambda d: css(d, sel), 15, "the markup project's test")
        markup = next(p for p in res["projects"] if p["project_id"] == "markup")
        mtest = markup["modules"][0]["tests"][0]
        assert mtest["nodeid"] == MARKUP_NODEID
        assert text_of(drv, css(drv, sel + " th.nodeid")) == MARKUP_NODEID
        assert css(drv, sel + " th.nodeid").text == MARKUP_NODEID
        assert text_of(drv, css(drv, sel + " td.msg pre")) == mtest["message"]
        assert "<b>not bold</b>" in mtest["message"]
        assert drv.find_elements("tag name", "img") == []
        assert drv.find_elements("tag name", "b") == []
        assert len(drv.find_elements("tag name", "script")) == 1
        no_alert(drv)

        # The network: both alive, then B killed and seen dead.
        click(drv, css(drv, "#nav-network"))

        def state_of(addr):
            def pred(d):
                return d.find_element(
                    "css selector", f'#network-body tr[data-address="{addr}"] [data-state]'
                ).get_attribute("data-state")
            return pred
        wait_dom(drv, lambda d: state_of(a.addr)(d) == "alive" and
                 state_of(b.addr)(d) == "alive", 15, "both nodes alive")
        summary = text_of(drv, css(drv, "#network-summary"))
        assert "2 alive, 0 suspect, 0 dead" in summary, summary
        assert "Slots0 busy of 2" in text_of(drv, css(drv, "#network-health"))
        mods = {addr: text_of(drv, css(drv, f'#network-body tr[data-address="{addr}"] td.modules'))
                for addr in (a.addr, b.addr)}
        by_node = {}
        for p in res["projects"]:
            for m in p["modules"]:
                by_node[m["node"]] = by_node.get(m["node"], 0) + 1
        assert mods == {addr: str(by_node.get(addr, 0)) for addr in mods}, (mods, by_node)
        b.kill9()
        seen = set()

        def dead(d):
            s = state_of(b.addr)(d)
            seen.add(s)
            return s == "dead"
        wait_dom(drv, dead, 30, f"{b.addr} dead in the network view")
        assert seen <= {"alive", "suspect", "dead"}, seen
        assert state_of(a.addr)(drv) == "alive"
        wait_dom(drv, lambda d: "1 alive, 0 suspect, 1 dead" in
                 text_of(d, css(d, "#network-summary")), 10, "the summary counts")
        no_alert(drv)
        assert console_errors(drv) == []


@pytest.mark.timeout(240)
def test_dashboard_cancels_a_running_evaluation(tmp_path, make_node, browser):
    n = make_node()
    src = tmp_path / "src"
    corpus.write_simple(str(src), "slow", passed=1, failed=0, sleep=120.0, modules=3)
    eid = n.submit_zip(corpus.zip_dir(str(src), str(tmp_path / "slow.zip")),
                       module_timeout=200)
    drv = browser
    drv.get(f"http://{n.addr}/#/evaluation/{eid}")
    wait_dom(drv, lambda d: css(d, '#eval-summary [data-status="running"]') and
             shown(d, "#eval-cancel"), 30, "a running evaluation with a cancel button")
    # A running evaluation is followed through its event stream, not polled.
    wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Live: following events", 15,
             "the page following the event stream")
    assert f"GET /evaluation/{eid}/events -> 200 (stream)" in n.log_text()
    # The first click asks; "No" leaves it running.
    click(drv, css(drv, "#eval-cancel"))
    assert shown(drv, "#eval-confirm")
    click(drv, css(drv, "#eval-cancel-no"))
    assert not shown(drv, "#eval-confirm")
    st, doc = n.get(f"/evaluation/{eid}")
    assert doc["status"] == "running"
    click(drv, css(drv, "#eval-cancel"))
    click(drv, css(drv, "#eval-cancel-yes"))
    wait_dom(drv, lambda d: css(d, '#eval-summary [data-status="cancelled"]'), 30,
             "the evaluation cancelled on the page")
    st, doc = n.get(f"/evaluation/{eid}")
    assert st == 200 and doc["status"] == "cancelled", doc
    assert not shown(drv, "#eval-cancel")
    assert not shown(drv, "#eval-cancel-msg")
    wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Finished", 15,
             "the page stops following it")
    # A cancel that comes too late says why (409).
    drv.execute_script("document.getElementById('eval-actions').hidden = false;"
                       "document.getElementById('eval-confirm').hidden = false;")
    click(drv, css(drv, "#eval-cancel-yes"))
    wait_dom(drv, lambda d: shown(d, "#eval-cancel-msg"), 15, "the refusal")
    assert text_of(drv, css(drv, "#eval-cancel-msg")) == \
        f"Cannot cancel it: evaluation {eid} is already cancelled"


# --------------------------------------------------------------------------
# 3. the API token
# --------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_dashboard_asks_for_the_token_once(tmp_path, make_node, monkeypatch, browser):
    monkeypatch.setenv("MESHTEST_API_TOKEN", TOKEN)
    n = make_node(name="tok")
    eid = n.submit_zip(corpus.gamma_zip(str(tmp_path)))
    wait_done(n, eid)
    drv = browser
    drv.get(f"http://{n.addr}/")
    form = wait_dom(drv, lambda d: shown(d, "#login"), 15, "the token form")
    assert not css(drv, "#view-list").is_displayed()
    assert "API token needed" in form.text
    field = css(drv, "#login-token")
    assert field.get_attribute("type") == "password"
    assert css(drv, 'label[for="login-token"]').text == "API token"

    field.send_keys("naïve token")
    click(drv, css(drv, "#login-form button"))
    wait_dom(drv, lambda d: text_of(d, css(d, "#login-error")) ==
             "A token is printable ASCII without spaces.", 10, "a token no header can carry")
    field.clear()
    field.send_keys("not-the-token")
    click(drv, css(drv, "#login-form button"))
    wait_dom(drv, lambda d: text_of(d, css(d, "#login-error")) ==
             "The node refused that token: try again.", 15, "a wrong token refused")
    assert shown(drv, "#login")
    assert drv.execute_script("return sessionStorage.getItem('meshtest.token')") is None

    css(drv, "#login-token").send_keys(TOKEN)
    click(drv, css(drv, "#login-form button"))
    row = f'#list-body tr[data-id="{eid}"]'
    wait_dom(drv, lambda d: css(d, row + ' [data-status="done"]'), 15,
             "the evaluation after the token")
    assert not css(drv, "#login").is_displayed()
    assert text_of(drv, css(drv, row + " td.passed")) == "5"
    assert drv.execute_script("return sessionStorage.getItem('meshtest.token')") == TOKEN

    # Kept for the tab: a reload and another view ask no more.
    drv.refresh()
    drv.get(f"http://{n.addr}/#/evaluation/{eid}")
    wait_dom(drv, lambda d: text_of(d, css(d, '#eval-body tr[data-project="gamma"] td.grade'))
             == "20.00", 15, "the evaluation's page with the kept token")
    assert not css(drv, "#login").is_displayed()
    no_alert(drv)


# --------------------------------------------------------------------------
# 4. a large evaluation and the event stream, against a scripted API
# --------------------------------------------------------------------------

class FakeApi:
    """The page's files from src/web and an API whose answers the test sets:
    status documents by id, and event streams scripted per connection."""

    def __init__(self):
        import http.server
        import threading
        self.docs = {}          # id -> status document
        self.results = {}       # id -> results document
        self.streams = {}       # id -> list of (event text, threading.Event to wait for)
        self.stream_requests = []   # (id, Last-Event-ID) per connection
        self.gets = {}          # path -> count
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", CSP)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                with api.lock:
                    api.gets[path] = api.gets.get(path, 0) + 1
                files = {"/": ("index.html", "text/html"),
                         "/static/app.js": ("app.js", "application/javascript"),
                         "/static/style.css": ("style.css", "text/css"),
                         "/static/favicon.svg": ("favicon.svg", "image/svg+xml")}
                if path in files:
                    name, ctype = files[path]
                    return self.send(200, web_file(name), ctype)
                parts = path.strip("/").split("/")
                if path == "/health":
                    return self.json({"address": "fake:1", "slots": 2})
                if path == "/evaluation":
                    return self.json({"evaluations": list(api.docs)})
                if len(parts) == 2 and parts[1] in api.docs:
                    return self.json(api.docs[parts[1]])
                if len(parts) == 3 and parts[2] == "results" and parts[1] in api.results:
                    return self.json(api.results[parts[1]])
                if len(parts) == 3 and parts[2] == "events" and parts[1] in api.streams:
                    return self.stream(parts[1])
                return self.send(404, b'{"error": "not found"}', "application/json")

            def json(self, obj):
                self.send(200, json.dumps(obj).encode(), "application/json")

            def stream(self, eid):
                with api.lock:
                    api.stream_requests.append((eid, self.headers.get("Last-Event-ID")))
                    script = api.streams[eid].pop(0) if api.streams[eid] else None
                if script is None:
                    return self.send(404, b'{"error": "not found"}', "application/json")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for text, before in script:
                    if before is not None:
                        before.wait(60)
                    self.wfile.write(text.encode())
                    self.wfile.flush()
                # the connection closes here (HTTP/1.0)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def status_doc(eid, projects, status="running", executed=0, pending=0):
    return {"id": eid, "status": status, "executed": executed, "in_progress": 0,
            "pending": pending, "passed": sum(p["passed"] for p in projects.values()),
            "failed": sum(p["failed"] for p in projects.values()), "skipped": 0,
            "nota_final": 0.0, "percent_passed": 0.0, "elapsed_seconds": 1.0,
            "created_at": 1795000000.0, "accepted_by": "fake:1", "kind": "zip",
            "projects": projects}


def fake_project(i, passed=1, failed=1):
    return {"state": "ready", "error": None, "passed": passed, "failed": failed,
            "skipped": 0, "grade": 20 * passed / max(1, passed + failed), "commit": None,
            "warnings": [f"warning <i>{i}</i>"] if i % 100 == 0 else []}


WATCH_MUTATIONS = """
window.__mutated = [];
new MutationObserver(function (recs) {
  for (const r of recs) {
    const n = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    const tr = n.closest('tr');
    window.__mutated.push(tr ? tr.getAttribute('data-project') : n.tagName);
  }
}).observe(document.getElementById('eval-body'),
           {subtree: true, childList: true, characterData: true, attributes: true});
"""


@pytest.mark.timeout(180)
def test_dashboard_thousand_projects_and_the_event_stream(browser):
    drv = browser
    big = "11111111-1111-4111-8111-111111111111"
    live = "22222222-2222-4222-8222-222222222222"
    projects = {f"p{i:04d}": fake_project(i) for i in range(1000)}
    with FakeApi() as api:
        api.docs[big] = status_doc(big, projects, pending=1000)
        # 1. No event stream for it (404): the page polls. 1,000 rows, then
        # one project changes and only its row is touched.
        drv.get(f"http://127.0.0.1:{api.port}/#/evaluation/{big}")
        wait_dom(drv, lambda d: len(d.find_elements("css selector", "#eval-body tr")) == 1000,
                 30, "1,000 project rows")
        wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Updating every 1.5 s", 15,
                 "polling without an event stream")
        assert text_of(drv, css(drv, "#eval-shown")) == "showing 1000 of 1000"
        # markup in a warning is text
        warn = css(drv, '#eval-body tr[data-project="p0100"] td.problems li')
        assert text_of(drv, warn) == "warning <i>100</i>"
        assert drv.find_elements("css selector", "#eval-body i") == []
        drv.execute_script(WATCH_MUTATIONS)
        changed = dict(projects, p0500=fake_project(500, passed=7, failed=0))
        api.docs[big] = status_doc(big, changed, executed=1, pending=999)
        wait_dom(drv, lambda d: text_of(d, css(
            d, '#eval-body tr[data-project="p0500"] td.passed')) == "7", 15,
            "the changed project's row")
        polls = api.gets[f"/evaluation/{big}"]
        wait_dom(drv, lambda d: api.gets[f"/evaluation/{big}"] >= polls + 2, 15,
                 "two more polls")
        touched = set(drv.execute_script("return window.__mutated"))
        assert touched == {"p0500"}, sorted(touched)[:20]
        assert css(drv, '#eval-body tr[data-project="p0500"] td.failed').get_attribute(
            "class") == "failed num"
        assert "bad" in css(drv, '#eval-body tr[data-project="p0501"] td.failed'
                            ).get_attribute("class")
        # the filters
        css(drv, "#eval-filter").send_keys("p05")
        wait_dom(drv, lambda d: text_of(d, css(d, "#eval-shown")) == "showing 100 of 1000",
                 10, "the name filter")
        click(drv, css(drv, "#eval-only-bad"))
        wait_dom(drv, lambda d: text_of(d, css(d, "#eval-shown")) == "showing 99 of 1000",
                 10, "only projects with failures")
        assert not css(drv, '#eval-body tr[data-project="p0500"]').is_displayed()
        api.docs[big] = status_doc(big, changed, status="done", executed=1000)
        wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Finished", 15,
                 "polling ends with the evaluation")

        # 2. With an event stream: each event brings a refresh; a stream that
        # ends early is resumed from the last event id; evaluation_done ends it.
        import threading
        go = threading.Event()
        one = {"a": fake_project(1, 0, 0)}
        api.docs[live] = status_doc(live, one, pending=1)
        api.streams[live] = [
            [("id: 7\nevent: module_claimed\ndata: {\"project\": \"a\"}\n\n", None)],
            [(": keep-alive\n\n", None),
             ("id: 8:1\nevent: test_finished\ndata: {\"project\": \"a\"}\n\n", go),
             ("id: end\nevent: evaluation_done\ndata: {\"status\": \"done\"}\n\n", None)],
        ]
        drv.get(f"http://127.0.0.1:{api.port}/#/evaluation/{live}")
        wait_dom(drv, lambda d: len(api.stream_requests) == 2, 15, "the stream resumed")
        assert api.stream_requests == [(live, None), (live, "7")]
        wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Live: following events", 10,
                 "the page says it follows events")
        api.docs[live] = status_doc(live, {"a": fake_project(1, 3, 0)}, status="done",
                                    executed=1)
        go.set()
        wait_dom(drv, lambda d: text_of(d, css(d, '#eval-body tr[data-project="a"] td.passed'))
                 == "3", 10, "the refresh an event brings")
        wait_dom(drv, lambda d: text_of(d, css(d, "#live")) == "Finished", 10,
                 "the stream's end")
        time.sleep(2)
        assert len(api.stream_requests) == 2, "no reconnection after evaluation_done"
        # the first page's stream answered 404 on purpose: nothing else failed
        errors = console_errors(drv)
        assert all(f"/evaluation/{big}/events" in e["message"] and "404" in e["message"]
                   for e in errors), errors
