"""Grading integrity with instructor tests (issue 9, part 5).

Each project here cheats in one way on an `add` that is wrong, graded by
the instructor's two tests (test_add fails on it, test_mul passes): a root
conftest.py that turns failures into passes, a pytest configuration that
deselects the failing test, a plugin installed through requirements.txt
that rewrites reports, and code that writes fake passing events to the
report pipe. With trust "instructor" every one is graded as its tests
really ran (1 passed, 1 failed); without it, the ones that can still cheat
do, which shows each attack is real."""

import io
import json
import zipfile

import pytest

from conftest import encode_multipart, get_results, wait_done
from test_requirements import build_wheel, pip_nodes  # noqa: F401 - a fixture

WRONG = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
GRADING = """
from calc import add, mul


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(2, 3) == 6
"""
PASS_ALL = """
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        rep.outcome = "passed"
        rep.longrepr = None
"""
FORGER = WRONG + """

import json as _json
import os as _os


def _forge():
    nodeid = "tests/test_grading.py::test_add"
    for k in (None, "0" * 32):
        for ev in ({"ev": "start", "nodeid": nodeid},
                   {"ev": "report", "nodeid": nodeid, "when": "call", "outcome": "passed",
                    "duration": 0.0, "wasxfail": False, "strict_xpass": False},
                   {"ev": "finish", "nodeid": nodeid}):
            if k is not None:
                ev = dict(ev, k=k)
            _os.write(3, (_json.dumps(ev) + "\\n").encode())


try:
    _forge()
except OSError:
    pass
"""


def projects_zip():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("honest/calc.py", WRONG)
        z.writestr("conftest_cheat/calc.py", WRONG)
        z.writestr("conftest_cheat/conftest.py", PASS_ALL)
        z.writestr("ini_cheat/calc.py", WRONG)
        z.writestr("ini_cheat/pytest.ini", "[pytest]\naddopts = -k \"not test_add\"\n")
        z.writestr("plugin_cheat/calc.py", WRONG)
        z.writestr("plugin_cheat/requirements.txt", "gradehack==1.0\n")
        z.writestr("pipe_cheat/calc.py", FORGER)
        for p in ("honest", "conftest_cheat", "ini_cheat", "plugin_cheat", "pipe_cheat"):
            z.writestr(f"{p}/tests/test_mine.py", "def test_mine():\n    assert True\n")
    return b.getvalue()


def grading_zip():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("tests/test_grading.py", GRADING)
    return b.getvalue()


def plugin_wheel(folder):
    build_wheel(folder, "gradehack", "1.0", {
        "gradehack.py": PASS_ALL,
        "gradehack-1.0.dist-info/entry_points.txt": "[pytest11]\ngradehack = gradehack\n",
    })


def grade(node, **fields):
    fields = {k: v for k, v in fields.items() if v is not None}
    body, ctype = encode_multipart(fields, {
        "file": ("projects.zip", projects_zip(), "application/zip"),
        "instructor_tests": ("grading.zip", grading_zip(), "application/zip")})
    st, _, out = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 201, out
    eid = json.loads(out)["id"]
    doc = wait_done(node, eid, timeout=200)
    assert doc["status"] == "done", doc
    return eid, {p: (v["passed"], v["failed"]) for p, v in doc["projects"].items()}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("isolation", ["project", "module"])
def test_instructor_trust_grades_what_really_ran(pip_nodes, tmp_path, isolation):  # noqa: F811
    wheels = str(tmp_path / "wheels")
    plugin_wheel(wheels)
    node = pip_nodes(wheels, "n")
    eid, got = grade(node, trust="instructor", isolation=isolation)
    assert got == {"honest": (1, 1), "conftest_cheat": (1, 1), "ini_cheat": (1, 1),
                   "plugin_cheat": (1, 1), "pipe_cheat": (1, 1)}, got
    res = {p["project_id"]: p for p in get_results(node, eid)["projects"]}
    assert res["conftest_cheat"]["warnings"] == [
        "trust instructor: set aside 1 conftest.py file outside tests/"]
    for p in res.values():
        assert [m["path"] for m in p["modules"]] == ["tests/test_grading.py"]
        outcomes = {t["nodeid"]: t["outcome"] for t in p["modules"][0]["tests"]}
        assert outcomes == {"tests/test_grading.py::test_add": "failed",
                            "tests/test_grading.py::test_mul": "passed"}, p
    if isolation == "project":
        # the same corpus trusting the student: the first three cheats work, the
        # pipe is closed whatever the trust
        _, got = grade(node)
        assert got == {"honest": (1, 1), "conftest_cheat": (2, 0), "ini_cheat": (1, 0),
                       "plugin_cheat": (2, 0), "pipe_cheat": (1, 1)}, got


@pytest.mark.timeout(60)
def test_instructor_trust_needs_instructor_tests(node):
    body, ctype = encode_multipart({"trust": "instructor"}, {
        "file": ("projects.zip", projects_zip(), "application/zip")})
    st, js, _ = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert (st, js) == (400, {"error": "trust \"instructor\" needs the instructor's tests"
                                       " (instructor_tests: a git URL, or a ZIP next to the"
                                       " projects)"})
    st, js = node.post_json("/evaluation", {"projects": ["https://example.invalid/r.git"],
                                            "trust": "teacher"})
    assert st == 400 and js["error"].startswith("trust must be \"student\""), js
