"""Preparing projects is work idle nodes share (issue 11, fetching at scale).

The accepting node coordinates the evaluation and queues its projects to
fetch; a node whose fetchers have nothing queued asks it (POST /task/fetch)
and prepares a project it lends: unpack, set-up commands, module list,
archive. Here the coordinator has one fetcher and every project's set-up
takes a second, so most projects are prepared elsewhere.

  1. Three nodes: every project is prepared exactly once, on all three
     nodes, and graded exactly on every node.
  2. A borrower killed (-9) while it prepares: the coordinator takes the
     project back once the borrower is dead, and the evaluation ends exact.
"""

import os
import re

import pytest

import corpus
from conftest import loop_nodes, running, wait_done, wait_for

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


def make_zip(tmp_path, n, setup_seconds):
    src = os.path.join(str(tmp_path), "src")
    write_projects(src, n, setup_seconds)
    return corpus.zip_dir(src, os.path.join(str(tmp_path), "projects.zip"))


def counter(node, name):
    """A counter of the node's GET /metrics."""
    st, _, raw = node.request("GET", "/metrics")
    assert st == 200
    m = re.search(rf"^{name} (\d+)$", raw.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def check_exact(node, eid, n):
    doc = wait_done(node, eid, timeout=90)
    assert doc["status"] == "done", doc
    assert (doc["passed"], doc["failed"], doc["skipped"]) == (n, 0, 0), doc
    assert doc["nota_final"] == pytest.approx(20.0), doc


@pytest.mark.timeout(150)
def test_idle_nodes_prepare_projects(tmp_path):
    n = 12
    zp = make_zip(tmp_path, n, SETUP_SECONDS)
    nodes = loop_nodes(tmp_path, 3, "f")
    nodes[0].extra_args = list(nodes[0].extra_args) + ["--fetchers", "1"]
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


@pytest.mark.timeout(180)
def test_a_borrower_killed_while_preparing_is_taken_back(tmp_path):
    n = 6
    zp = make_zip(tmp_path, n, 6)
    nodes = loop_nodes(tmp_path, 3, "g")
    nodes[0].extra_args = list(nodes[0].extra_args) + ["--fetchers", "1"]
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
        # what the killed node had borrowed and not finished came back
        assert back, log0[-3000:]
        assert set(back) <= set(taken), (back, taken)
        prepared = [counter(nd, "meshtest_projects_prepared_total") for nd in (nodes[0],
                                                                               nodes[2])]
        # the survivors prepared every project the victim did not finish
        assert sum(prepared) >= n - (len(taken) - len(back)), (prepared, taken, back)
