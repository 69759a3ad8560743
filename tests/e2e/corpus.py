"""Test corpus for the meshtest end-to-end suite.

Every function writes Python projects (with a tests/ folder) into a folder
and the zip helpers pack them.  The expected numbers live next to the
projects as literal constants, derived by hand from SPEC.md section 1:

  passed  = passed + xfailed + non-strict xpassed
  failed  = failed + error (setup/call/teardown/collection) + strict xpassed
            + the running and never-run tests of a timed out / crashed module
  skipped = reported apart, in no denominator
  grade   = 20 * passed / (passed + failed), 0 when nothing counted
"""

import os
import stat
import textwrap
import zipfile


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))


# --------------------------------------------------------------------------
# project "alpha": counting rules
# --------------------------------------------------------------------------

def write_alpha(root, name="alpha"):
    p = os.path.join(root, name)
    _write(p, "alpha_pkg/__init__.py", """
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """)
    _write(p, "tests/conftest.py", """
        import pytest


        @pytest.fixture
        def answer():
            return 42
        """)
    _write(p, "tests/test_basic.py", """
        def test_one():
            assert 1 + 1 == 2


        def test_two():
            assert "a".upper() == "A"


        def test_three():
            assert [1, 2][1] == 2


        def test_fails():
            assert 1 == 2
        """)
    _write(p, "tests/test_skip_xfail.py", """
        import pytest


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            assert False


        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert False


        @pytest.mark.xfail(reason="fixed meanwhile", strict=False)
        def test_xpass():
            assert True


        @pytest.mark.xfail(reason="must fail", strict=True)
        def test_strict_xpass():
            assert True
        """)
    _write(p, "tests/test_fixture.py", """
        def test_answer(answer):
            assert answer == 42


        def test_answer_type(answer):
            assert isinstance(answer, int)
        """)
    _write(p, "tests/sub/calc_test.py", """
        import alpha_pkg


        def test_add():
            assert alpha_pkg.add(2, 3) == 5


        def test_mul():
            assert alpha_pkg.mul(2, 3) == 6
        """)
    _write(p, "tests/test_teardown.py", """
        import pytest


        @pytest.fixture
        def bad_teardown():
            yield 1
            raise RuntimeError("teardown boom")


        @pytest.fixture
        def bad_setup():
            raise RuntimeError("setup boom")


        def test_passes_then_teardown_errors(bad_teardown):
            assert bad_teardown == 1


        def test_setup_error(bad_setup):
            assert True
        """)
    _write(p, "tests/test_import_error.py", """
        import this_module_does_not_exist_anywhere  # noqa: F401


        def test_never_collected():
            assert True
        """)
    _write(p, "tests/test_not_root.py", """
        import os


        def test_not_root():
            assert os.geteuid() != 0
        """)
    return p


ALPHA_MODULES = {
    # path: (passed, failed, skipped, outcome)
    "tests/test_basic.py": (3, 1, 0, "finished"),
    "tests/test_skip_xfail.py": (2, 1, 1, "finished"),
    "tests/test_fixture.py": (2, 0, 0, "finished"),
    "tests/sub/calc_test.py": (2, 0, 0, "finished"),
    "tests/test_teardown.py": (0, 2, 0, "finished"),
    "tests/test_import_error.py": (0, 1, 0, "finished"),
    "tests/test_not_root.py": (1, 0, 0, "finished"),
}
ALPHA_SKIP_XFAIL_TESTS = {
    "tests/test_skip_xfail.py::test_skipped": "skipped",
    "tests/test_skip_xfail.py::test_xfail": "xfailed",
    "tests/test_skip_xfail.py::test_xpass": "xpassed",
    "tests/test_skip_xfail.py::test_strict_xpass": "failed",
}


# --------------------------------------------------------------------------
# project "beta": a module that hangs and one whose interpreter dies
# --------------------------------------------------------------------------

def write_beta(root, name="beta"):
    p = os.path.join(root, name)
    _write(p, "tests/test_hang.py", """
        import time


        def test_1():
            assert True


        def test_2():
            assert True


        def test_3():
            assert True


        def test_4_hangs():
            time.sleep(600)
        """)
    _write(p, "tests/test_exit.py", """
        import os


        def test_a():
            assert True


        def test_b():
            os._exit(3)


        def test_c():
            assert True
        """)
    _write(p, "tests/test_ok.py", """
        def test_ok_1():
            assert True


        def test_ok_2():
            assert True
        """)
    return p


BETA_MODULES = {
    "tests/test_hang.py": (3, 1, 0, "timeout"),
    "tests/test_exit.py": (1, 2, 0, "crashed"),
    "tests/test_ok.py": (2, 0, 0, "finished"),
}
BETA_HANG_TESTS = {
    "tests/test_hang.py::test_1": "passed",
    "tests/test_hang.py::test_2": "passed",
    "tests/test_hang.py::test_3": "passed",
    "tests/test_hang.py::test_4_hangs": "error",
}
BETA_EXIT_TESTS = {
    "tests/test_exit.py::test_a": "passed",
    "tests/test_exit.py::test_b": "error",
    "tests/test_exit.py::test_c": "error",
}


# --------------------------------------------------------------------------
# project "gamma": everything passes
# --------------------------------------------------------------------------

def write_gamma(root, name="gamma"):
    p = os.path.join(root, name)
    _write(p, "tests/test_all_pass.py", """
        import pytest


        @pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
        def test_positive(n):
            assert n > 0
        """)
    return p


GAMMA_MODULES = {
    "tests/test_all_pass.py": (5, 0, 0, "finished"),
}


def _sum(modules):
    p = sum(v[0] for v in modules.values())
    f = sum(v[1] for v in modules.values())
    s = sum(v[2] for v in modules.values())
    return p, f, s


# Hand-derived totals (kept literal so a mistake in a table above shows up).
ALPHA = {"passed": 10, "failed": 5, "skipped": 1, "grade": 20 * 10 / 15}
BETA = {"passed": 6, "failed": 3, "skipped": 0, "grade": 20 * 6 / 9}
GAMMA = {"passed": 5, "failed": 0, "skipped": 0, "grade": 20.0}
assert _sum(ALPHA_MODULES) == (10, 5, 1)
assert _sum(BETA_MODULES) == (6, 3, 0)
assert _sum(GAMMA_MODULES) == (5, 0, 0)

CORPUS_MODULES = {"alpha": ALPHA_MODULES, "beta": BETA_MODULES,
                  "gamma": GAMMA_MODULES}
CORPUS_PROJECTS = {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}
CORPUS_TOTAL = {"passed": 21, "failed": 8, "skipped": 1, "modules": 11,
                "percent_passed": 100 * 21 / 29,
                "percent_failed": 100 * 8 / 29,
                "nota_final": (20 * 10 / 15 + 20 * 6 / 9 + 20.0) / 3}
CORPUS_MODULE_TIMEOUT = 4


def write_corpus(root):
    """alpha, beta and gamma side by side in root."""
    os.makedirs(root, exist_ok=True)
    write_alpha(root)
    write_beta(root)
    write_gamma(root)
    return root


# --------------------------------------------------------------------------
# small projects for the other tests
# --------------------------------------------------------------------------

def write_simple(root, name, passed, failed, sleep=0.0, modules=1):
    """A project with `modules` modules, each with `passed` passing and
    `failed` failing tests; every test sleeps `sleep` seconds."""
    p = os.path.join(root, name)
    for m in range(1, modules + 1):
        lines = ["import time", "", ""]
        for i in range(passed):
            lines += [f"def test_pass_{i}():", f"    time.sleep({sleep})",
                      "    assert True", "", ""]
        for i in range(failed):
            lines += [f"def test_fail_{i}():", f"    time.sleep({sleep})",
                      "    assert False", "", ""]
        _write(p, f"tests/test_mod{m}.py", "\n".join(lines).rstrip() + "\n")
    return p


def write_restart_project(root, name="rproj"):
    """Six modules of about one second each; modules 3 and 6 hold one
    failing test.  passed 10, failed 2, grade 20*10/12."""
    p = os.path.join(root, name)
    for m in range(1, 7):
        ok = "True" if m % 3 != 0 else "False"
        _write(p, f"tests/test_m{m}.py", f"""
            import time


            def test_slow():
                time.sleep(1)
                assert True


            def test_quick():
                assert {ok}
            """)
    return p


RESTART = {"passed": 10, "failed": 2, "skipped": 0, "modules": 6,
           "grade": 20 * 10 / 12}


# --------------------------------------------------------------------------
# zip helpers
# --------------------------------------------------------------------------

def zip_dir(src, dest, prefix=""):
    """Zip every file under src into dest; member names are relative to src,
    prefixed with prefix (e.g. "wrapper/")."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                z.write(full, prefix + rel)
    return dest


def gamma_zip(tmp):
    """<tmp>/gamma.zip: project gamma alone (5 passing tests)."""
    src = os.path.join(tmp, "gamma-src")
    write_gamma(src)
    return zip_dir(src, os.path.join(tmp, "gamma.zip"))


def zip_add_symlink(zip_path, member, target):
    """Append a symlink member (unix mode 0120777) pointing at target."""
    info = zipfile.ZipInfo(member)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zip_path, "a") as z:
        z.writestr(info, target)


def zip_add_raw(zip_path, member, data):
    """Append a member with exactly this name (no normalisation)."""
    info = zipfile.ZipInfo(member)
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    with zipfile.ZipFile(zip_path, "a") as z:
        z.writestr(info, data)
