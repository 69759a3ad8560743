"""The README's first command on a fresh machine.

On a fresh Debian machine the libraries arrive only when `make run` has run
its `deps` step, so the build must not read pkg-config before that. These
tests copy the tracked tree into an empty folder (a clean clone) and put a
`pkg-config` on PATH that knows nothing until a stubbed `deps` step has run;
`make run` (serially and with -j2) must then build, link and start a node
that answers, in that one invocation.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import REPO, free_port, http_request

REAL_PKG_CONFIG = shutil.which("pkg-config", path="/usr/bin:/bin")


def clean_copy(dest):
    """The tree a fresh clone has: tracked and new, not ignored, files."""
    names = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], check=True, capture_output=True).stdout
    for name in names.decode().split("\0"):
        if not name or not os.path.exists(os.path.join(REPO, name)):
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, name), os.path.join(dest, name),
                     follow_symlinks=False)


def shim_path(tmp_path, flag):
    """A PATH whose pkg-config answers nothing until flag exists."""
    shim = tmp_path / "shim"
    shim.mkdir()
    script = shim / "pkg-config"
    script.write_text("#!/bin/sh\n"
                      f"[ -e '{flag}' ] || exit 1\n"
                      f"exec {REAL_PKG_CONFIG} \"$@\"\n")
    script.chmod(0o755)
    return f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}"


@pytest.fixture
def fresh(tmp_path):
    assert REAL_PKG_CONFIG, "pkg-config is needed to build meshtest"
    tree = tmp_path / "clone"
    tree.mkdir()
    clean_copy(str(tree))
    flag = tmp_path / "deps-installed"
    env = dict(os.environ, PATH=shim_path(tmp_path, flag), CFLAGS="-O0")
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return tree, flag, env


def test_shim_hides_the_libraries_until_deps(fresh):
    """The set-up of the test itself: without deps, the build must fail, and
    say what to do rather than fail in the linker."""
    tree, flag, env = fresh
    r = subprocess.run(["pkg-config", "--libs", "jansson"], env=env,
                       capture_output=True)
    assert r.returncode == 1 and r.stdout == b""
    r = subprocess.run(["make", "-C", str(tree), "all"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "are not all installed" in r.stderr
    assert "make deps" in r.stderr
    assert not (tree / "build" / "meshtest").exists()


@pytest.mark.parametrize("jobs", ["-j1", "-j2"])
def test_make_run_builds_and_serves_in_one_invocation(fresh, tmp_path, jobs):
    tree, flag, env = fresh
    port = free_port()
    data = tmp_path / "data"
    log = open(tmp_path / "make-run.log", "w+")
    proc = subprocess.Popen(
        ["make", "-C", str(tree), jobs, "run", f"DEPS_CMD=touch '{flag}'",
         f"RUN_ARGS=--listen 127.0.0.1:{port} --data-dir {data} --slots 1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    health = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body, _ = http_request(port, "GET", "/health", timeout=2)
                if status == 200:
                    health = body
                    break
            except OSError:
                pass
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert flag.exists(), output[-3000:]
    assert "undefined reference" not in output, output[-3000:]
    assert (tree / "build" / "meshtest").exists(), output[-3000:]
    assert health is not None and health.get("status") == "ok", output[-3000:]
    assert health["address"] == f"127.0.0.1:{port}"
