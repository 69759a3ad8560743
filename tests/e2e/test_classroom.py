"""GitHub Classroom submissions and graded commits (issue 9, part 3).

A fake GitHub REST API on loopback (pagination through Link headers, a
bearer token, 404, rate limits) names repositories served by a real git
smart-HTTP server that demands the same token; the node's --github-api
points at it. Every expected number is a literal."""

import json
import os
import re
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import MESHTEST_BIN, get_results, wait_done
from gitserver import GitServer, make_bare_repo
from test_git import assert_token_nowhere
from test_real import write

TOKEN = "ghp_" + secrets.token_hex(18)
PAGE = 2          # repositories per page: the fake API ignores per_page

PASSING = """
    def test_one():
        assert True


    def test_two():
        assert 2 + 2 == 4
    """
FAILING = """
    def test_one():
        assert True


    def test_two():
        assert 2 + 2 == 5
    """


def git(cwd, *args, date=None):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                         cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class FakeGitHub(BaseHTTPRequestHandler):
    """GET /orgs/<org>/repos, PAGE per page, as GitHub answers it."""

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        srv = self.server
        url = urlsplit(self.path)
        srv.requests.append((url.path, url.query, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(401, {"message": "Bad credentials"})
        m = re.fullmatch(r"/orgs/([^/]+)/repos", url.path)
        if m is None or m.group(1) not in srv.orgs:
            return self.answer(404, {"message": "Not Found"})
        org = m.group(1)
        limit = srv.limits.get(org)
        if limit is not None and limit["left"] > 0:
            limit["left"] -= 1
            return self.answer(403, {"message": "API rate limit exceeded"}, [
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(int(time.time() + limit["wait"])))])
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        repos = srv.orgs[org]
        items = repos[(page - 1) * PAGE:page * PAGE]
        last = max(1, (len(repos) + PAGE - 1) // PAGE)
        links = []
        base = f"http://127.0.0.1:{srv.server_address[1]}{url.path}?per_page=100&type=all"
        if page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
        links.append(f'<{base}&page={last}>; rel="last"')
        return self.answer(200, items, [("Link", ", ".join(links))])


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    base = tmp_path_factory.mktemp("classroom")
    root = base / "repos"
    root.mkdir()
    shas = {}
    for name, body in (("assignment-1-alice", PASSING), ("assignment-1-bob", FAILING),
                       ("assignment-1-carol", PASSING), ("assignment-1-template", PASSING),
                       ("assignment-2-dave", PASSING), ("website", PASSING)):
        src = base / "src" / name
        write(src, "tests/test_work.py", body)
        make_bare_repo(str(src), str(root / f"{name}.git"))
        shas[name] = git(src, "rev-parse", "HEAD")
    # a repository with one commit before the deadline and one after
    late = base / "src" / "assignment-1-late"
    write(late, "tests/test_work.py", PASSING)
    git(late, "init", "-q", "-b", "main")
    git(late, "add", "-A")
    git(late, "commit", "-q", "-m", "on time", date="2026-01-10T12:00:00Z")
    shas["on-time"] = git(late, "rev-parse", "HEAD")
    write(late, "tests/test_work.py", FAILING)
    git(late, "commit", "-q", "-am", "late", date="2026-01-20T12:00:00Z")
    shas["late"] = git(late, "rev-parse", "HEAD")
    git(base, "clone", "-q", "--bare", str(late), str(root / "assignment-1-late.git"))

    gs = GitServer(str(root), TOKEN).start()

    def repo(name, archived=False, template=False):
        return {"name": name, "clone_url": gs.url(name), "archived": archived,
                "is_template": template, "html_url": f"https://example.invalid/{name}"}

    api = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    api.daemon_threads = True
    api.requests = []
    api.orgs = {
        "school": [repo("website"), repo("assignment-1-bob"), repo("assignment-2-dave"),
                   repo("assignment-1-carol", archived=True), repo("assignment-1-alice"),
                   repo("assignment-1-template", template=True)],
        "late-school": [repo("assignment-1-late")],
        "limited": [repo("assignment-1-alice")],
        "exhausted": [repo("assignment-1-alice")],
    }
    api.limits = {"limited": {"left": 1, "wait": 2}, "exhausted": {"left": 99, "wait": 3600}}
    threading.Thread(target=api.serve_forever, daemon=True).start()
    yield {"api": api, "git": gs, "shas": shas,
           "url": f"http://127.0.0.1:{api.server_address[1]}"}
    api.shutdown()
    api.server_close()
    gs.stop()


@pytest.fixture
def gh_node(make_node, classroom):
    return make_node(["--github-api", classroom["url"] + "/"])


def submit_org(node, **body):
    return node.post_json("/evaluation", dict({"auth_token": TOKEN}, **body))


@pytest.mark.timeout(200)
def test_an_assignment_in_one_request(gh_node, classroom):
    api = classroom["api"]
    api.requests.clear()
    st, js = submit_org(gh_node, organization="school", prefix="assignment-1-")
    assert st == 201, js
    js = wait_done(gh_node, js["id"], timeout=150)
    assert js["status"] == "done", js
    # archived and template repositories, and other assignments, are left out
    assert sorted(js["projects"]) == ["assignment-1-alice", "assignment-1-bob"], js
    assert (js["passed"], js["failed"]) == (3, 1), js
    shas = classroom["shas"]
    for name in ("assignment-1-alice", "assignment-1-bob"):
        assert js["projects"][name]["commit"] == shas[name], js["projects"][name]
    res = {p["project_id"]: p for p in get_results(gh_node, js["id"])["projects"]}
    assert res["assignment-1-bob"]["source"] == classroom["git"].url("assignment-1-bob")
    assert res["assignment-1-bob"]["commit"] == shas["assignment-1-bob"]
    # every page, each asked once, with the token as a bearer token
    pages = [q for p, q, _ in api.requests if p == "/orgs/school/repos"]
    assert pages == ["per_page=100&type=all", "per_page=100&type=all&page=2",
                     "per_page=100&type=all&page=3"], api.requests
    assert all(a == f"Bearer {TOKEN}" for _, _, a in api.requests)
    assert_token_nowhere(gh_node)


@pytest.mark.timeout(200)
def test_archived_and_templates_when_asked(gh_node, classroom):
    st, js = submit_org(gh_node, organization="school", prefix="ASSIGNMENT-1-",
                        include_archived=True, include_templates=True)
    assert st == 201, js
    js = wait_done(gh_node, js["id"], timeout=150)
    assert sorted(js["projects"]) == ["assignment-1-alice", "assignment-1-bob",
                                      "assignment-1-carol", "assignment-1-template"], js


@pytest.mark.timeout(120)
def test_bad_requests_are_clear_4xx(gh_node, classroom):
    st, js = gh_node.post_json("/evaluation", {"auth_token": "wrong", "organization": "school",
                                               "prefix": "assignment-1-"})
    assert (st, js) == (400, {"error": "the GitHub API refused the token (401: Bad"
                                       " credentials)"})
    st, js = submit_org(gh_node, organization="nobody", prefix="a")
    assert (st, js) == (404, {"error": f"no organization 'nobody' at {classroom['url']} (or"
                                       " the token cannot see it)"})
    st, js = submit_org(gh_node, organization="school", prefix="assignment-9-")
    assert (st, js) == (400, {"error": "no repository of organization 'school' starts with"
                                       " 'assignment-9-' (6 looked at; archived and template"
                                       " repositories count only when asked for)"})
    st, js = submit_org(gh_node, organization="../etc", prefix="a")
    assert st == 400 and "GitHub organization name" in js["error"], js
    st, js = submit_org(gh_node, organization="school", projects=["http://x/y.git"])
    assert (st, js) == (400, {"error": "send \"projects\" or \"organization\", not both"})
    st, js = gh_node.get("/evaluation")
    assert js["evaluations"] == [], js


@pytest.mark.timeout(120)
def test_rate_limits(gh_node, classroom):
    # a limit that resets in 2 s is waited out
    t0 = time.monotonic()
    st, js = submit_org(gh_node, organization="limited", prefix="assignment-1-")
    assert st == 201, js
    assert time.monotonic() - t0 >= 1.0
    assert wait_done(gh_node, js["id"], timeout=100)["passed"] == 2
    # one that resets in an hour is a clear error
    st, js = submit_org(gh_node, organization="exhausted", prefix="assignment-1-")
    assert st == 503, js
    assert re.fullmatch(r"the GitHub API's rate limit is used up until "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(3\d{3} s\): submit again then",
                        js["error"]), js


@pytest.mark.timeout(200)
def test_deadline_grades_the_last_commit_before_it(gh_node, classroom):
    shas = classroom["shas"]
    st, js = submit_org(gh_node, organization="late-school", prefix="assignment-1-",
                        deadline="2026-01-15T00:00:00+00:00")
    assert st == 201, js
    js = wait_done(gh_node, js["id"], timeout=150)
    p = js["projects"]["assignment-1-late"]
    assert (p["passed"], p["failed"], p["commit"]) == (2, 0, shas["on-time"]), p
    # without a deadline: the tip, which fails a test
    url = classroom["git"].url("assignment-1-late")
    st, js = gh_node.post_json("/evaluation", {"auth_token": TOKEN, "projects": [url]})
    js = wait_done(gh_node, js["id"], timeout=150)
    p = js["projects"]["assignment-1-late"]
    assert (p["passed"], p["failed"], p["commit"]) == (1, 1, shas["late"]), p
    # before the first commit: the project's error
    st, js = gh_node.post_json("/evaluation", {"auth_token": TOKEN, "projects": [url],
                                               "deadline": "2025-12-31"})
    js = wait_done(gh_node, js["id"], timeout=150)
    p = js["projects"]["assignment-1-late"]
    assert p["error"] == "no commit at or before the deadline 2025-12-31T00:00:00Z", p
    assert p["commit"] is None
    # a deadline is refused where it cannot apply, and when it is not a time
    st, js = gh_node.post_json("/evaluation", {"projects": [url], "deadline": "soon"})
    assert st == 400 and js["error"].startswith("deadline must be an ISO 8601 time"), js


@pytest.mark.timeout(200)
def test_cli_submits_an_assignment(gh_node, classroom):
    env = dict(os.environ, MESHTEST_GIT_TOKEN=TOKEN)
    out = subprocess.run([MESHTEST_BIN, "submit", "--org", "school", "--prefix",
                          "assignment-1-", "--node", gh_node.addr, "--wait"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=150, env=env)
    assert out.returncode == 1, out          # bob fails a test
    lines = out.stdout.splitlines()
    shas = classroom["shas"]
    assert any(re.fullmatch(rf"assignment-1-alice\s+2\s+0\s+0\s+20\.0\s+"
                            rf"{shas['assignment-1-alice'][:12]}\s*", ln) for ln in lines), \
        out.stdout
    assert any(re.fullmatch(rf"assignment-1-bob\s+1\s+1\s+0\s+10\.0\s+"
                            rf"{shas['assignment-1-bob'][:12]}\s*", ln) for ln in lines), \
        out.stdout
    bad = subprocess.run([MESHTEST_BIN, "submit", "--org", "school", "x.zip"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "give no projects with it" in bad.stderr, bad
