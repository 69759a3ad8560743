"""Instructor tests given as a ZIP file field next to the projects' ZIP: they
replace every project's tests/, and the students' own tests do not count."""

import io
import zipfile

import pytest

from conftest import encode_multipart, wait_done, get_results

STUDENTS = {
    # project: (calc.py, its own always-passing tests)
    "good": "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n",
    "lazy": "def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n",
}
OWN_TESTS = "".join(f"def test_mine_{i}():\n    assert True\n\n" for i in range(5))
INSTRUCTOR = """
from calc import add, mul

def test_add_small():
    assert add(1, 2) == 3

def test_add_zero():
    assert add(0, 0) == 0

def test_mul():
    assert mul(3, 4) == 12
"""


def projects_zip():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, calc in STUDENTS.items():
            z.writestr(f"{name}/calc.py", calc)
            z.writestr(f"{name}/tests/test_mine.py", OWN_TESTS)
    return b.getvalue()


def grading_zip(prefix):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr(f"{prefix}tests/test_grading.py", INSTRUCTOR)
    return b.getvalue()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prefix", ["", "grading/"])
def test_instructor_zip_replaces_student_tests(node, prefix):
    body, ctype = encode_multipart({"module_timeout": "30"}, {
        "file": ("projects.zip", projects_zip(), "application/zip"),
        "instructor_tests": ("grading.zip", grading_zip(prefix), "application/zip"),
    })
    st, _, out = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 201, out
    import json
    eid = json.loads(out)["id"]
    doc = wait_done(node, eid, timeout=90)
    assert doc["status"] == "done"
    # good passes all 3 graded tests; lazy's add is wrong (add(1, 2) fails,
    # add(0, 0) and mul still pass);
    # the students' 5 always-passing tests count nowhere.
    assert doc["projects"]["good"]["passed"] == 3
    assert doc["projects"]["good"]["failed"] == 0
    assert doc["projects"]["lazy"]["passed"] == 2
    assert doc["projects"]["lazy"]["failed"] == 1
    assert doc["nota_final_per_project"]["good"] == pytest.approx(20.0)
    assert doc["nota_final_per_project"]["lazy"] == pytest.approx(40.0 / 3)
    res = get_results(node, eid)
    for p in res["projects"]:
        assert [m["path"] for m in p["modules"]] == ["tests/test_grading.py"]


@pytest.mark.timeout(60)
def test_instructor_zip_and_url_together_is_refused(node):
    body, ctype = encode_multipart({"instructor_tests": "https://example.invalid/t.git"}, {
        "file": ("projects.zip", projects_zip(), "application/zip"),
        "instructor_tests": ("grading.zip", grading_zip(""), "application/zip"),
    })
    # Two fields of one name: the text one is a form field, the file one an upload.
    st, _, out = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 400, out
    assert b"not both" in out


@pytest.mark.timeout(60)
def test_instructor_zip_that_is_not_a_zip_is_refused(node):
    body, ctype = encode_multipart({}, {
        "file": ("projects.zip", projects_zip(), "application/zip"),
        "instructor_tests": ("grading.zip", b"not a zip at all", "application/zip"),
    })
    st, _, out = node.request("POST", "/evaluation", body, {"Content-Type": ctype})
    assert st == 400, out
    assert b"instructor_tests" in out
