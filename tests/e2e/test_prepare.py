"""Preparing projects is work idle nodes share (issue 11, fetching at scale).

The accepting node coordinates the evaluation and queues its projects to
fetch; a node whose fetchers have nothing queued asks it (POST /task/fetch)
and prepares a project it lends: unpack, set-up commands, module list,
archive. Here the coordinator has one fetcher and every project's set-up
takes a second, so most projects are prepared elsewhere.

  1. Three nodes: every project is prepared exactly once, on all three
     nodes, and graded exactly on every node.
  2. Two evaluations submitted one after the other: a node is lent only
     projects of an evaluation it knows (it names the one it asks about),
     so neither waits on a node that never heard of it; every project is
     prepared once.
  3. A borrower that cannot prepare a project (here: its --git-hosts does
     not allow the repositories' host) records no error but gives it back,
     and the coordinator prepares it: the evaluation ends exact.
  4. Repositories cloned with a token: only the node holding the token
     clones, the rest (set-up commands, module list, archive) runs on idle
     nodes, and the token reaches no other node's disk or log.
  5. A borrower killed (-9) while it prepares: the coordinator takes the
     project back once the borrower is dead, and the evaluation ends exact.
"""

import os
import re

import pytest

import corpus
from conftest import assert_secret_nowhere, loop_nodes, running, wait_done, wait_for
from gitserver import GitServer, make_bare_repo

SETUP_SECONDS = 1


def write_projects(root, n, setup_seconds):
    """n projects p01.. of one passing test each, with a slow set-up command."""
    for i in range(1, n + 1):
        p = os.path.join(root, f"p{i:02d}")
        os.makedirs(os.path.join(p, "tests"))
        with open(os.path.join(p, "tests", "test_one.py"), "w") as f:
            f.write(f"def test_one():\n    assert {i} == {i}\n")
        with open(os.path.join(p, "meshtest.toml"), "w") as f:
            f.write(f'commands = ["sleep {setup_seconds}"]\n')


def make_zip(tmp_path, n, setup_seconds, name="projects"):
    src = os.path.join(str(tmp_path), f"src-{name}")
    write_projects(src, n, setup_seconds)
    return corpus.zip_dir(src, os.path.join(str(tmp_path), f"{name}.zip"))


def counter(node, name):
    """A counter of the node's GET /metrics."""
    st, _, raw = node.request("GET", "/metrics")
    assert st == 200
    m = re.search(rf"^{name} (\d+)$", raw.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def three_nodes(tmp_path, prefix, second_args=()):
    """Three loopback nodes (not started); the first, which the tests submit
    to and which coordinates, with one fetcher, so the others have work to
    borrow."""
    nodes = loop_nodes(tmp_path, 3, prefix)
    nodes[0].extra_args = list(nodes[0].extra_args) + ["--fetchers", "1"]
    nodes[1].extra_args = list(nodes[1].extra_args) + list(second_args)
    return nodes


def check_exact(node, eid, n):
    doc = wait_done(node, eid, timeout=90)
    assert doc["status"] == "done", doc
    assert (doc["passed"], doc["failed"], doc["skipped"]) == (n, 0, 0), doc
    assert doc["nota_final"] == pytest.approx(20.0), doc


@pytest.mark.timeout(150)
def test_idle_nodes_prepare_projects(tmp_path):
    n = 12
    zp = make_zip(tmp_path, n, SETUP_SECONDS)
    nodes = three_nodes(tmp_path, "f")
    with running(nodes):
        eid = nodes[0].submit_zip(zp, module_timeout=30)
        for nd in nodes:
            check_exact(nd, eid, n)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in nodes]
        borrowed = [counter(nd, "meshtest_projects_borrowed_total") for nd in nodes]
        logs = [nd.log_text() for nd in nodes]
    # each project once: nobody prepared one that another did
    assert sum(prepared) == n, prepared
    assert borrowed[0] == 0 and prepared[1] == borrowed[1] and prepared[2] == borrowed[2], \
        (prepared, borrowed)
    assert all(p > 0 for p in prepared), prepared
    # one fetcher at a second each would have prepared them all in 12 s or more
    assert prepared[0] < n - 2, prepared
    lent = re.findall(r"project (\d+) lent to (\S+) to prepare", logs[0])
    assert len(lent) == borrowed[1] + borrowed[2], lent
    assert {a for _, a in lent} == {nodes[1].addr, nodes[2].addr}


@pytest.mark.timeout(150)
def test_two_evaluations_at_once_each_prepared_once(tmp_path):
    n = 6
    za = make_zip(tmp_path, n, SETUP_SECONDS, "first")
    zb = make_zip(tmp_path, n, SETUP_SECONDS, "second")
    nodes = three_nodes(tmp_path, "h")
    with running(nodes):
        ea = nodes[0].submit_zip(za, module_timeout=30)
        eb = nodes[0].submit_zip(zb, module_timeout=30)
        for nd in nodes:
            check_exact(nd, ea, n)
            check_exact(nd, eb, n)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in nodes]
        borrowed = sum(counter(nd, "meshtest_projects_borrowed_total") for nd in nodes)
    assert sum(prepared) == 2 * n, prepared
    assert borrowed > 0, prepared


@pytest.mark.timeout(150)
def test_a_borrower_that_cannot_prepare_gives_it_back(tmp_path):
    n = 6
    root = bare_repos(tmp_path, n, SETUP_SECONDS)
    nodes = three_nodes(tmp_path, "j", ["--git-hosts", "git.example.org"])
    with GitServer(root, None) as gs, running(nodes):
        st, js = nodes[0].post_json("/evaluation", {
            "projects": [gs.url(f"p{i:02d}") for i in range(1, n + 1)],
            "module_timeout": 30})
        assert st == 201, js
        eid = js["id"]
        for nd in nodes:
            check_exact(nd, eid, n)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in nodes]
        logs = [nd.log_text() for nd in nodes]
    assert prepared[1] == 0 and sum(prepared) == n, prepared
    given = re.findall(r"project (\d+): not prepared here \(.*host.*\); giving it back",
                       logs[1])
    assert given, logs[1][-3000:]
    back = re.findall(rf"project (\d+): {re.escape(nodes[1].addr)} gave it back", logs[0])
    assert sorted(back) == sorted(given), (back, given)


def bare_repos(tmp_path, n, setup_seconds):
    """n bare repositories p01.. (write_projects) under <tmp>/repos."""
    src = os.path.join(str(tmp_path), "src")
    write_projects(src, n, setup_seconds)
    root = os.path.join(str(tmp_path), "repos")
    os.makedirs(root)
    for name in sorted(os.listdir(src)):
        make_bare_repo(os.path.join(src, name), os.path.join(root, name + ".git"))
    return root


@pytest.mark.timeout(150)
def test_a_token_clone_is_set_up_on_idle_nodes(tmp_path):
    n = 6
    token = "prepare-s3cret-token-4711"
    root = bare_repos(tmp_path, n, SETUP_SECONDS)
    nodes = three_nodes(tmp_path, "t")
    with GitServer(root, token) as gs, running(nodes):
        st, js = nodes[0].post_json("/evaluation", {
            "auth_token": token, "module_timeout": 30,
            "projects": [gs.url(f"p{i:02d}") for i in range(1, n + 1)]})
        assert st == 201, js
        eid = js["id"]
        for nd in nodes:
            check_exact(nd, eid, n)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in nodes]
        borrowed = [counter(nd, "meshtest_projects_borrowed_total") for nd in nodes]
        log0 = nodes[0].log_text()
        trees = re.findall(r"cloned; its set-up may run on any node \(tree (\w+)\)", log0)
        assert len(trees) == n, log0[-3000:]

        def trees_left():
            return [f for nd in nodes for f in os.listdir(os.path.join(nd.data_dir, "blobs"))
                    if any(f.startswith(t) for t in trees)]
        # the packed clones are let go once their projects are ready, everywhere
        wait_for(lambda: not trees_left(), 10, "the tree blobs removed",
                 explain=lambda: f"left: {trees_left()}")
    assert sum(prepared) == n, prepared
    assert borrowed[1] + borrowed[2] > 0, (prepared, borrowed)
    for nd in nodes[1:]:
        assert_secret_nowhere(nd, token)


@pytest.mark.timeout(180)
def test_a_borrower_killed_while_preparing_is_taken_back(tmp_path):
    n = 6
    zp = make_zip(tmp_path, n, 6)
    nodes = three_nodes(tmp_path, "g")
    with running(nodes):
        eid = nodes[0].submit_zip(zp, module_timeout=30)
        victim = nodes[1]
        wait_for(lambda: "preparing it for" in victim.log_text(), 30,
                 "the second node borrowing a project")
        taken = re.findall(r"project (\d+): preparing it for", victim.log_text())
        victim.kill9()
        for nd in (nodes[0], nodes[2]):
            check_exact(nd, eid, n)
        log0 = nodes[0].log_text()
        back = re.findall(rf"project (\d+): taken back from {re.escape(victim.addr)}"
                          r" \(no longer alive\)", log0)
        lent = re.findall(rf"project (\d+) lent to {re.escape(victim.addr)} ", log0)
        # what the killed node had been lent and not finished came back (also
        # a project whose answer it did not live to read)
        assert back, log0[-3000:]
        assert set(taken) <= set(lent) and set(back) <= set(lent), (back, taken, lent)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in (nodes[0],
                                                                               nodes[2])]
        # the survivors prepared every project the victim did not finish
        assert sum(prepared) >= n - (len(set(lent)) - len(set(back))), (prepared, lent, back)
