"""The client in the same binary: meshtest submit / status / keygen."""

import json
import re

import pytest

import corpus
from conftest import free_port, run_cli


@pytest.fixture(scope="module")
def cli_node(tmp_path_factory):
    from conftest import Node
    base = tmp_path_factory.mktemp("cli")
    n = Node(base, name="cli", module_timeout=corpus.CORPUS_MODULE_TIMEOUT)
    n.start()
    yield n
    n.close()


def find_uuid(text):
    m = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}", text)
    assert m, f"no evaluation id in output:\n{text}"
    return m.group(0)


@pytest.mark.timeout(150)
def test_submit_corpus_wait_exit_1(cli_node, tmp_path):
    corpus.write_corpus(str(tmp_path / "src"))
    z = corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "corpus.zip"))
    r = run_cli("submit", z, "--node", cli_node.addr, "--wait", timeout=140)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for pid in ("alpha", "beta", "gamma"):
        assert pid in r.stdout, r.stdout
    eid = find_uuid(out)
    st, js = cli_node.get(f"/evaluation/{eid}")
    assert st == 200 and js["status"] == "done"
    assert (js["passed"], js["failed"]) == (21, 8)

    r2 = run_cli("status", eid, "--node", cli_node.addr)
    assert r2.returncode == 1, r2.stdout + r2.stderr


@pytest.mark.timeout(90)
def test_submit_folder_all_pass_exit_0_and_json(cli_node, tmp_path):
    proj = corpus.write_gamma(str(tmp_path / "src"))
    r = run_cli("submit", proj, "--node", cli_node.addr, "--wait", timeout=80)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gamma" in r.stdout
    eid = find_uuid(r.stdout + r.stderr)
    r2 = run_cli("status", eid, "--node", cli_node.addr)
    assert r2.returncode == 0, r2.stdout + r2.stderr

    r3 = run_cli("submit", proj, "--node", cli_node.addr, "--wait", "--json",
                 timeout=80)
    assert r3.returncode == 0, r3.stdout + r3.stderr
    doc = json.loads(r3.stdout)
    assert "projects" in doc, doc
    projects = doc["projects"]
    if isinstance(projects, dict):
        assert set(projects) == {"gamma"}
        assert projects["gamma"]["passed"] == 5
    else:
        assert [p["project_id"] for p in projects] == ["gamma"]
        assert projects[0]["passed"] == 5


@pytest.mark.timeout(30)
def test_unreachable_node_exit_2(tmp_path):
    proj = corpus.write_gamma(str(tmp_path / "src"))
    port = free_port()
    r = run_cli("submit", proj, "--node", f"127.0.0.1:{port}", timeout=25)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip(), "no error message on stderr"
    r = run_cli("status", "00000000-0000-4000-8000-000000000000", "--node",
                f"127.0.0.1:{port}", timeout=25)
    assert r.returncode == 2, r.stdout + r.stderr


@pytest.mark.timeout(30)
def test_usage_error_exit_2():
    r = run_cli("submit", "--no-such-flag", timeout=25)
    assert r.returncode == 2, r.stdout + r.stderr


@pytest.mark.timeout(30)
def test_keygen_64_hex():
    r = run_cli("keygen", timeout=25)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-fA-F]{64}", key), r.stdout
    r2 = run_cli("keygen", timeout=25)
    assert r2.stdout.strip() != key
