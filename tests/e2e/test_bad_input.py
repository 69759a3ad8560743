"""Every bad input gets its exact status, a non-empty error, and leaves the
node serving."""

import io
import json
import os
import subprocess
import zipfile

import pytest

import corpus
from conftest import Node, encode_multipart

MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def bad_node(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    n = Node(base, ["--max-upload-mb", str(MAX_UPLOAD_MB)], name="bad")
    n.start()
    yield n
    n.close()


def still_serving(node):
    st, js = node.get("/stats")
    assert st == 200, "node stopped serving GET /stats"
    assert set(js) == {"all", "nodes"}
    assert node.proc is not None and node.proc.poll() is None


def expect_error(node, status, method, path, body=None, ctype=None):
    headers = {"Content-Type": ctype} if ctype else {}
    st, js, raw = node.request(method, path, body, headers)
    assert st == status, (method, path, st, raw[:300])
    assert isinstance(js, dict), f"error body is not JSON: {raw[:300]!r}"
    assert isinstance(js.get("error"), str) and js["error"].strip(), js
    still_serving(node)
    return js


def zip_bytes(members):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return b.getvalue()


def multipart_zip(data, fields=None):
    return encode_multipart(fields, {"file": ("p.zip", data,
                                              "application/zip")})


JSON = "application/json"
BAD_JSON_BODIES = [
    (b'{"projects": ["http://127.0.0.1:1/x.git"', "truncated"),
    (b"not json at all", "garbage"),
    (b"", "empty body"),
    (b'\xff\xfe{"projects": 1}', "invalid utf-8"),
]


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("body,why", BAD_JSON_BODIES,
                         ids=[w for _, w in BAD_JSON_BODIES])
def test_malformed_json_400(bad_node, body, why):
    expect_error(bad_node, 400, "POST", "/evaluation", body, JSON)


BAD_PROJECTS = [
    ({}, "missing"),
    ({"projects": []}, "empty"),
    ({"projects": "http://127.0.0.1:1/x.git"}, "string not array"),
    ({"projects": {"a": 1}}, "object not array"),
    ({"projects": [1, 2]}, "non-string items"),
    ({"projects": [None]}, "null item"),
    ({"projects": [""]}, "empty string"),
    ([], "top-level array"),
    ("x", "top-level string"),
]


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("obj,why", BAD_PROJECTS,
                         ids=[w for _, w in BAD_PROJECTS])
def test_bad_projects_400(bad_node, obj, why):
    expect_error(bad_node, 400, "POST", "/evaluation",
                 json.dumps(obj).encode(), JSON)


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("ctype", ["text/plain", "application/xml",
                                   "application/x-www-form-urlencoded"])
def test_unsupported_content_type_415(bad_node, ctype):
    expect_error(bad_node, 415, "POST", "/evaluation", b"projects=x", ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_multipart_without_file_400(bad_node):
    body, ctype = encode_multipart({"module_timeout": "5"})
    expect_error(bad_node, 400, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_non_zip_upload_400(bad_node):
    body, ctype = multipart_zip(b"this is not a zip file\n" * 50)
    expect_error(bad_node, 400, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_truncated_zip_400(bad_node, tmp_path):
    corpus.write_gamma(str(tmp_path / "src"))
    z = corpus.zip_dir(str(tmp_path / "src"), str(tmp_path / "g.zip"))
    data = open(z, "rb").read()
    body, ctype = multipart_zip(data[: len(data) // 2])
    expect_error(bad_node, 400, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_empty_zip_422(bad_node):
    data = zip_bytes({})
    assert len(data) == 22  # just the end-of-central-directory record
    body, ctype = multipart_zip(data)
    expect_error(bad_node, 422, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("members", [
    {"proj/README.md": "hello\n", "proj/src/main.py": "print(1)\n"},
    {"proj/tests/helpers.py": "X = 1\n", "proj/tests/conftest.py": ""},
    {"proj/tests/data/readme.txt": "not a test\n"},
], ids=["no-tests-folder", "tests-folder-without-modules", "data-only"])
def test_zip_without_test_modules_422(bad_node, members):
    body, ctype = multipart_zip(zip_bytes(members))
    expect_error(bad_node, 422, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_upload_over_limit_413(bad_node):
    big = os.urandom((MAX_UPLOAD_MB * 1024 * 1024) * 2)
    body, ctype = multipart_zip(big)
    expect_error(bad_node, 413, "POST", "/evaluation", body, ctype)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_json_over_limit_413(bad_node):
    url = "http://127.0.0.1:1/x.git"
    n = (MAX_UPLOAD_MB * 1024 * 1024 * 2) // (len(url) + 3)
    body = json.dumps({"projects": [url] * n}).encode()
    assert len(body) > MAX_UPLOAD_MB * 1024 * 1024
    expect_error(bad_node, 413, "POST", "/evaluation", body, JSON)


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", [
    "/evaluation/00000000-0000-4000-8000-000000000000",
    "/evaluation/00000000-0000-4000-8000-000000000000/results",
    "/evaluation/not-a-uuid",
    "/evaluation/..%2f..%2fetc%2fpasswd",
])
def test_unknown_evaluation_404(bad_node, path):
    js = expect_error(bad_node, 404, "GET", path)
    if path.count("/") == 2 and "not-a-uuid" not in path and "%" not in path:
        assert js == {"error": "not found"}


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/nope", "/evaluations", "/stats/x/y",
                                  "/" + "a" * 5000])
def test_unknown_path_404(bad_node, path):
    expect_error(bad_node, 404, "GET", path)


@pytest.mark.asan
@pytest.mark.timeout(60)
@pytest.mark.parametrize("method,path", [
    ("DELETE", "/evaluation"), ("PUT", "/evaluation"),
    ("POST", "/stats"), ("DELETE", "/stats"), ("POST", "/network"),
    ("POST", "/health"),
    ("PUT", "/evaluation/00000000-0000-4000-8000-000000000000"),
])
def test_wrong_method_405(bad_node, method, path):
    body = b"{}" if method in ("POST", "PUT") else None
    expect_error(bad_node, 405, method, path, body,
                 JSON if body is not None else None)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_option_like_url_never_reaches_git(bad_node, tmp_path):
    """A URL that looks like an option is refused (400) or fails as a
    project error; it never runs a command."""
    marker = tmp_path / "pwned"
    url = f"--upload-pack=touch {marker}"
    st, js, raw = bad_node.request(
        "POST", "/evaluation",
        json.dumps({"projects": [url, "-c core.sshCommand=x"]}).encode(),
        {"Content-Type": JSON})
    assert st in (400, 201), (st, raw[:300])
    if st == 400:
        assert js["error"].strip()
    else:
        from conftest import wait_done
        done = wait_done(bad_node, js["id"], timeout=40)
        assert done["status"] == "failed", done
        for pid, p in done["projects"].items():
            assert p["error"], (pid, p)
    assert not marker.exists()
    still_serving(bad_node)


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_node_still_serving_after_all(bad_node):
    st, js = bad_node.get("/health")
    assert st == 200 and js["status"] == "ok"
    assert js["address"] == bad_node.addr
    st, js = bad_node.get("/evaluation")
    assert st == 200 and isinstance(js["evaluations"], list)


def test_a_port_in_use_refuses_the_second_node(node, tmp_path):
    """Two nodes never share a port: the kernel would split the connections
    between them (SO_REUSEPORT), and a client's POST and its GET would land
    on different nodes. The second one says why and exits."""
    second = Node(tmp_path, port=node.port, name="second")
    os.makedirs(second.base_dir, exist_ok=True)
    out = subprocess.run(second.cmd(), stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0, out
    assert f"cannot listen on {node.addr}" in out.stderr, out.stderr
    st, js, _ = node.request("GET", "/health")
    assert st == 200, js
