"""Git submissions against a token-protected git smart-HTTP server on
loopback."""

import os
import secrets

import pytest

import corpus
from conftest import assert_secret_nowhere, get_results, wait_done
from gitserver import GitServer, make_bare_repo
from expect import approx, check_results_doc, check_status_doc

TOKEN = "mt_" + secrets.token_hex(20)


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("git")
    src = base / "src"
    corpus.write_corpus(str(src))
    root = base / "repos"
    root.mkdir()
    for name in ("alpha", "beta", "gamma"):
        make_bare_repo(str(src / name), str(root / f"{name}.git"))
    gs = GitServer(str(root), TOKEN).start()
    yield gs
    gs.stop()


def assert_token_nowhere(node):
    """The token must not reach the data dir (any file, also SQLite/WAL)
    nor the log."""
    assert_secret_nowhere(node, TOKEN)


@pytest.mark.asan
@pytest.mark.timeout(150)
def test_git_with_token_exact_numbers(module_node, git_server):
    urls = [git_server.url(n) for n in ("alpha", "beta", "gamma")]
    st, js = module_node.post_json("/evaluation", {
        "auth_token": TOKEN, "projects": urls,
        "module_timeout": corpus.CORPUS_MODULE_TIMEOUT})
    assert st == 201, js
    eid = js["id"]
    js = wait_done(module_node, eid, timeout=120)
    assert js["status"] == "done", js
    check_status_doc(js, corpus.CORPUS_PROJECTS, corpus.CORPUS_MODULES)
    assert (js["passed"], js["failed"], js["skipped"]) == (21, 8, 1)
    assert js["nota_final"] == approx(15.5556)
    res = get_results(module_node, eid)
    by_pid = check_results_doc(res, eid, corpus.CORPUS_PROJECTS,
                               corpus.CORPUS_MODULES, module_node.addr)
    for name in ("alpha", "beta", "gamma"):
        assert by_pid[name]["source"] == git_server.url(name)
        assert by_pid[name]["error"] is None
    assert git_server.served > 0
    assert_token_nowhere(module_node)
    assert TOKEN not in str(res)


@pytest.mark.timeout(90)
def test_git_wrong_token(module_node, git_server):
    urls = [git_server.url(n) for n in ("alpha", "beta", "gamma")]
    denied_before = git_server.denied
    st, js = module_node.post_json("/evaluation", {
        "auth_token": "wrong-" + secrets.token_hex(8), "projects": urls,
        "module_timeout": 5})
    assert st == 201, js
    eid = js["id"]
    js = wait_done(module_node, eid, timeout=80)
    assert js["status"] == "failed", js
    assert set(js["projects"]) == {"alpha", "beta", "gamma"}
    for pid, p in js["projects"].items():
        assert isinstance(p["error"], str) and "auth" in p["error"].lower(), \
            (pid, p)
        assert p["grade"] == 0
        assert (p["passed"], p["failed"]) == (0, 0)
        assert js["nota_final_per_project"][pid] == 0
        assert js["percent_passed_per_project"][pid] == 0
        assert js["percent_failed_per_project"][pid] == 0
    assert js["nota_final"] == 0
    assert js["percent_passed"] == 0 and js["percent_failed"] == 0
    assert (js["executed"], js["in_progress"], js["pending"]) == (0, 0, 0)
    assert git_server.denied > denied_before
    assert_token_nowhere(module_node)


@pytest.mark.timeout(90)
def test_git_good_and_missing_repo(module_node, git_server):
    urls = [git_server.url("gamma"), git_server.url("does-not-exist")]
    st, js = module_node.post_json("/evaluation", {
        "auth_token": TOKEN, "projects": urls, "module_timeout": 5})
    assert st == 201, js
    eid = js["id"]
    js = wait_done(module_node, eid, timeout=80)
    assert js["status"] == "done", js
    assert set(js["projects"]) == {"gamma", "does-not-exist"}
    g = js["projects"]["gamma"]
    assert (g["passed"], g["failed"], g["skipped"]) == (5, 0, 0)
    assert g["grade"] == approx(20.0) and g["error"] is None
    bad = js["projects"]["does-not-exist"]
    assert isinstance(bad["error"], str) and bad["error"], bad
    assert bad["grade"] == 0 and (bad["passed"], bad["failed"]) == (0, 0)
    assert js["nota_final"] == approx(10.0)
    assert js["nota_final_per_project"] == {"gamma": approx(20.0),
                                            "does-not-exist": 0}
    assert js["percent_passed"] == approx(100.0)
    assert js["executed"] == 1
    assert_token_nowhere(module_node)


@pytest.mark.timeout(90)
def test_git_repeated_names_get_suffix(module_node, git_server):
    url = git_server.url("gamma")
    st, js = module_node.post_json("/evaluation", {
        "auth_token": TOKEN, "projects": [url, url], "module_timeout": 5})
    assert st == 201, js
    js = wait_done(module_node, js["id"], timeout=80)
    assert js["status"] == "done", js
    assert set(js["projects"]) == {"gamma", "gamma-2"}
    assert (js["passed"], js["failed"], js["executed"]) == (10, 0, 2)
    assert set(js["percent_passed_per_module"]) == {
        "gamma/tests/test_all_pass.py", "gamma-2/tests/test_all_pass.py"}
    assert_token_nowhere(module_node)


@pytest.mark.timeout(90)
def test_git_credentials_in_url_never_reach_argv_or_disk(make_node, git_server,
                                                         tmp_path, monkeypatch):
    """https://user:TOKEN@host/repo works without auth_token, and the
    credentials reach git only as a header: a git wrapper on the node's PATH
    logs every argv it gets."""
    wrap = tmp_path / "bin"
    wrap.mkdir()
    argv_log = tmp_path / "git-argv.log"
    (wrap / "git").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {argv_log}\n"
        "exec /usr/bin/git \"$@\"\n")
    (wrap / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrap}:{os.environ['PATH']}")
    node = make_node(name="urlcreds")
    url = git_server.url("gamma").replace("http://", f"http://x-access-token:{TOKEN}@")
    st, js = node.post_json("/evaluation", {"projects": [url], "module_timeout": 5})
    assert st == 201, js
    js = wait_done(node, js["id"], timeout=80)
    assert js["status"] == "done", js
    assert (js["passed"], js["failed"]) == (5, 0)
    res = get_results(node, js["id"])
    assert res["projects"][0]["source"] == git_server.url("gamma")
    calls = argv_log.read_text()
    assert "clone" in calls, calls
    assert TOKEN not in calls
    assert_token_nowhere(node)
