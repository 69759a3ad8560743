"""Reuse of unchanged results (issue 9, part 4).

With `reuse: true`, a project whose content, instructor tests, packages,
interpreter and settings match an earlier run takes that run's results of
the modules that finished normally. What ran is counted, not timed: the
node's /stats credits each module it executed, and reused modules credit
no node."""

import io
import json
import zipfile

import pytest

from conftest import encode_multipart, get_results, wait_done

PASS2 = "def test_a():\n    assert True\n\n\ndef test_b():\n    assert 1 < 2\n"
FAIL1 = "def test_a():\n    assert True\n\n\ndef test_b():\n    assert 1 > 2\n"
HANG = "import time\n\n\ndef test_slow():\n    time.sleep(60)\n"
CALC = "def add(a, b):\n    return a + b\n"
GRADING = "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"
GRADING2 = ("from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n\n\n"
            "def test_add_negative():\n    assert add(-1, -1) == -2\n")


def corpus(bob_test=PASS2):
    """alice: 2 modules; bob: 2 modules; carol: one module that passes and
    one that hangs past the time limit (never reused)."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name in ("alice", "bob", "carol"):
            z.writestr(f"{name}/calc.py", CALC)
        z.writestr("alice/tests/test_one.py", PASS2)
        z.writestr("alice/tests/test_two.py", FAIL1)
        z.writestr("bob/tests/test_one.py", bob_test)
        z.writestr("bob/tests/test_two.py", PASS2)
        z.writestr("carol/tests/test_one.py", PASS2)
        z.writestr("carol/tests/test_hang.py", HANG)
    return b.getvalue()


def grading(text):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("tests/test_grading.py", text)
    return b.getvalue()


def submit(node, projects, reuse, tests=None, timeout="3"):
    fields = {"module_timeout": timeout}
    if reuse:
        fields["reuse"] = "true"
    files = {"file": ("projects.zip", projects, "application/zip")}
    if tests is not None:
        files["instructor_tests"] = ("grading.zip", tests, "application/zip")
    body, ctype = encode_multipart(fields, files)
    st, _, out = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 201, out
    eid = json.loads(out)["id"]
    doc = wait_done(node, eid, timeout=120)
    assert doc["status"] == "done", doc
    return eid, doc


def executed_here(node):
    """Modules this node has executed so far (its /stats entry)."""
    st, js = node.get("/stats")
    assert st == 200, js
    return next(n["modules"] for n in js["nodes"] if n["address"] == node.addr)


def reused_paths(node, eid):
    out = set()
    for p in get_results(node, eid)["projects"]:
        for m in p["modules"]:
            if m.get("reused"):
                out.add(m["module"])
    return out


def counts(doc):
    return {p: (v["passed"], v["failed"]) for p, v in doc["projects"].items()}


@pytest.mark.timeout(300)
def test_unchanged_results_are_reused(node):
    e1, d1 = submit(node, corpus(), reuse=False)
    assert counts(d1) == {"alice": (3, 1), "bob": (4, 0), "carol": (2, 1)}, d1
    ran = executed_here(node)
    assert ran == 6

    # the same corpus again: only the module that hung runs again
    e2, d2 = submit(node, corpus(), reuse=True)
    assert counts(d2) == counts(d1)
    assert (d2["executed"], d2["nota_final"]) == (6, d1["nota_final"])
    assert executed_here(node) == ran + 1
    ran += 1
    assert reused_paths(node, e2) == {
        "alice/tests/test_one.py", "alice/tests/test_two.py", "bob/tests/test_one.py",
        "bob/tests/test_two.py", "carol/tests/test_one.py"}
    res = {m["module"]: m for p in get_results(node, e2)["projects"] for m in p["modules"]}
    assert res["alice/tests/test_two.py"]["reused_from"] == e1
    assert res["alice/tests/test_two.py"]["node"] == node.addr
    assert [t["outcome"] for t in res["alice/tests/test_two.py"]["tests"]] == ["passed",
                                                                                 "failed"]
    assert "reused" not in res["carol/tests/test_hang.py"]
    assert res["carol/tests/test_hang.py"]["outcome"] == "timeout"

    # without reuse: everything runs
    submit(node, corpus(), reuse=False)
    assert executed_here(node) == ran + 6
    ran += 6

    # one student pushed again: that project runs alone (and the hung module)
    e4, d4 = submit(node, corpus(bob_test=FAIL1), reuse=True)
    assert counts(d4) == {"alice": (3, 1), "bob": (3, 1), "carol": (2, 1)}, d4
    assert executed_here(node) == ran + 3
    ran += 3
    assert "bob/tests/test_one.py" not in reused_paths(node, e4)
    assert "alice/tests/test_one.py" in reused_paths(node, e4)

    # other settings are another run: everything runs
    submit(node, corpus(), reuse=True, timeout="4")
    assert executed_here(node) == ran + 6
    ran += 6


@pytest.mark.timeout(240)
def test_changed_instructor_tests_run_everything(node):
    submit(node, corpus(), reuse=False, tests=grading(GRADING))
    ran = executed_here(node)
    assert ran == 3
    # the same tests: all reused
    e2, d2 = submit(node, corpus(), reuse=True, tests=grading(GRADING))
    assert executed_here(node) == ran
    assert len(reused_paths(node, e2)) == 3
    assert counts(d2) == {"alice": (1, 0), "bob": (1, 0), "carol": (1, 0)}
    # other instructor tests: nothing reused
    e3, d3 = submit(node, corpus(), reuse=True, tests=grading(GRADING2))
    assert executed_here(node) == ran + 3
    assert reused_paths(node, e3) == set()
    assert counts(d3) == {"alice": (2, 0), "bob": (2, 0), "carol": (2, 0)}
