"""Disk budget and retention (issue 12, part 7).

A node keeps its blobs, unpacked projects, work folders and environments
within --max-disk, removing what nothing uses, least recently used first; it
refuses (507) a submission it cannot make room for, before writing any of
it; --retention-days removes the files of old evaluations; results, grades
and /stats stay whole throughout.

Every project here carries a file of random bytes (incompressible, so its
blob, its unpacked folder and the slot's copy each take about the ZIP's
size) and tests with literal outcomes. What the tests measure of the data
folder they measure themselves, like `du`: st_blocks of every entry of the
four counted folders, never through the node's own accounting."""

import hashlib
import io
import os
import re
import sqlite3
import threading
import time
import zipfile

import pytest

from conftest import get_results, run_cli, wait_done

CATEGORIES = ("blobs", "projects", "work", "venvs")
MIB = 1 << 20

# A project's one module: a passing test that reads the data file whole and
# a failing one; grade 20 * 1 / 2.
TWO_TESTS = """
import hashlib
import os

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data.bin")


def test_data_is_whole():
    with open(DATA, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == "{sha}"


def test_fails():
    assert 1 == 2
"""

# The long module: reads its data, sleeps, and then checks that its project
# copy and its environment are still whole (one removed under it fails).
LONG = """
import hashlib
import os
import sys
import time

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data.bin")


def digest():
    with open(DATA, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_files_stay_while_it_runs():
    assert digest() == "{sha}"
    time.sleep({sleep})
    assert os.path.exists(os.path.join(sys.prefix, "pyvenv.cfg")), sys.prefix
    assert digest() == "{sha}"
"""


def project_zip(name, data_bytes, template=TWO_TESTS, **kw):
    """(zip bytes, sha256 of the zip): project `name` with data.bin of
    data_bytes random bytes and tests/test_<name>.py from template."""
    data = os.urandom(data_bytes)
    text = template.replace("{sha}", hashlib.sha256(data).hexdigest())
    for k, v in kw.items():
        text = text.replace("{" + k + "}", str(v))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.bin", data)
        z.writestr(f"{name}/{name}-marker.txt", name + "\n")
        z.writestr(f"{name}/tests/test_{name}.py", text.lstrip("\n"))
    blob = buf.getvalue()
    return blob, hashlib.sha256(blob).hexdigest()


def counted(data_dir):
    """Bytes of the counted folders (blobs, projects, work, venvs) with
    every entry in them, as du counts them (allocated blocks)."""
    total = 0
    for cat in CATEGORIES:
        top = os.path.join(data_dir, cat)
        try:
            total += os.lstat(top).st_blocks * 512
        except OSError:
            continue
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                try:
                    total += os.lstat(os.path.join(root, n)).st_blocks * 512
                except OSError:
                    pass   # removed while we looked
    return total


class Sampler:
    """Measures counted() every 50 ms on a thread; keeps the largest."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, counted(self.data_dir))
            self.samples += 1
            self._stop.wait(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def human(n):
    """Bytes as the node writes them in messages (gc_budget_format)."""
    if n < 1024:
        return f"{n} B"
    v, units = float(n), ["KiB", "MiB", "GiB", "TiB"]
    u = -1
    while v >= 1024 and u < 3:
        v /= 1024
        u += 1
    return f"{v:.1f} {units[u]}"


def health_disk(node):
    st, h = node.get("/health")
    assert st == 200, h
    d = h["disk"]
    assert set(d) == {"budget", "used", "blobs", "projects", "work", "envs", "store",
                      "retention_days", "evicted"}, d
    assert d["used"] == d["blobs"] + d["projects"] + d["work"] + d["envs"], d
    assert d["store"] > 0, d
    return d


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def find_marker(data_dir, sub, marker):
    """The folders of data_dir/sub/* (one level) holding marker."""
    top = os.path.join(data_dir, sub)
    try:
        names = os.listdir(top)
    except OSError:
        return []
    return [os.path.join(top, n) for n in names
            if os.path.exists(os.path.join(top, n, marker))]


def slot_copies(data_dir, marker):
    out = []
    work = os.path.join(data_dir, "work")
    for slot in sorted(os.listdir(work)) if os.path.isdir(work) else []:
        out += find_marker(os.path.join(work, slot), "projects", marker)
    return out


def expect_two_tests(doc, pid):
    assert doc["status"] == "done", doc
    assert (doc["passed"], doc["failed"], doc["skipped"]) == (1, 1, 0), doc
    assert doc["nota_final"] == 10.0, doc
    assert doc["nota_final_per_project"] == {pid: 10.0}, doc


# --------------------------------------------------------------------------

BUDGET = 8 * MIB
DATA = 1536 << 10
RUNS = 8


@pytest.mark.timeout(150)
def test_small_budget_grades_many_in_a_row(make_node):
    """Eight evaluations of 1.5 MiB projects in a row on an 8 MiB budget:
    without eviction they would leave about 48 MiB.

    The bound asserted on every sample (every 50 ms, during the runs and
    after each): counted bytes <= budget + W, W = 4 * S + 1 MiB, S the ZIP's
    size. Before accepting, the node makes room for S (the upload becomes its
    blob); the evaluation then adds, while it runs and so cannot lose them,
    its project's blob (the same files zipped again: ~S), the unpacked
    project (~S) and the slot's pristine copy (~S), which with the upload is
    4 * S; the 1 MiB covers block rounding of the small files and folders,
    the run's scratch folder and an environment built again. Eviction of
    what finished runs every second, so what counts comes back under the
    budget itself after each evaluation: asserted too (within 10 s)."""
    node = make_node(["--max-disk", "8M"])
    assert health_disk(node)["budget"] == BUDGET
    ids, docs, results, shas = [], {}, {}, []
    peak_bound = 0
    with Sampler(node.data_dir) as sampler:
        for i in range(RUNS):
            pid = f"p{i}"
            blob, sha = project_zip(pid, DATA)
            shas.append(sha)
            bound = BUDGET + 4 * len(blob) + MIB
            peak_bound = max(peak_bound, bound)
            eid = node.submit_zip(blob)
            ids.append(eid)
            doc = wait_done(node, eid, timeout=90)
            expect_two_tests(doc, pid)
            docs[eid] = node.get(f"/evaluation/{eid}")[1]
            results[eid] = get_results(node, eid)
            wait_until(lambda: counted(node.data_dir) <= BUDGET, 10,
                       f"after evaluation {i}, the counted folders under {BUDGET}")
            assert sampler.peak <= bound, (i, sampler.peak, bound)
    assert sampler.samples > 50
    assert sampler.peak <= peak_bound, (sampler.peak, peak_bound)
    # it was exceeded on the way (the test measures something) and evicted
    assert sampler.peak > BUDGET, sampler.peak
    d = health_disk(node)
    assert d["budget"] == BUDGET and d["evicted"] > 3 * DATA, d
    assert d["used"] <= BUDGET, d
    assert d["retention_days"] == 0
    # the first uploads' blobs are gone (least recently used went first) ...
    assert not os.path.exists(os.path.join(node.data_dir, "blobs", shas[0] + ".zip"))
    # ... and every grade, status and result is whole
    for eid in ids:
        assert node.get(f"/evaluation/{eid}") == (200, docs[eid])
        assert get_results(node, eid) == results[eid]
    st, listing = node.get("/evaluation")
    assert st == 200 and listing["evaluations"] == ids
    st, stats = node.get("/stats")
    assert st == 200 and stats["all"]["evaluations"] == RUNS, stats
    # the first project again, its files long gone: made again and graded alike
    blob, _ = project_zip("p0", DATA)
    again = node.submit_zip(blob)
    expect_two_tests(wait_done(node, again, timeout=90), "p0")


@pytest.mark.asan
@pytest.mark.timeout(60)
def test_upload_larger_than_the_budget_is_refused(make_node, tmp_path):
    """507 with the sizes, before anything of it is kept; a bad --max-disk
    or --retention-days stops the node at start."""
    node = make_node(["--max-disk", "2M"])
    st, _, raw = node.request("GET", "/metrics")
    assert st == 200
    assert re.findall(r"^meshtest_disk_budget_bytes .*$", raw.decode(), re.M) == \
        ["meshtest_disk_budget_bytes 2097152"]
    blob, sha = project_zip("big", 3 * MIB)
    st, js = node.post_zip(blob)
    assert st == 507, (st, js)
    assert js == {"error": f"the upload ({human(len(blob))}) is larger than this node's"
                           f" whole disk budget (2.0 MiB, --max-disk)"}, js
    # nothing half-written: no evaluation, no blob, no project, no upload left
    assert node.get("/evaluation") == (200, {"evaluations": []})
    assert os.listdir(os.path.join(node.data_dir, "blobs")) == []
    assert os.listdir(os.path.join(node.data_dir, "projects")) == []
    assert os.listdir(os.path.join(node.data_dir, "incoming")) == []
    st, stats = node.get("/stats")
    assert st == 200 and stats["all"]["evaluations"] == 0, stats
    # a project that fits is graded
    small, _ = project_zip("small", 64 << 10)
    expect_two_tests(wait_done(node, node.submit_zip(small)), "small")

    for args, msg in (
            (["--max-disk", "12x"], "--max-disk takes a size of at least 1M, such as 500M"
                                    " or 20G, not '12x'"),
            (["--max-disk", "0.5M"], "--max-disk takes a size of at least 1M, such as 500M"
                                     " or 20G, not '0.5M'"),
            (["--max-disk", "1e9"], "--max-disk takes a size of at least 1M, such as 500M"
                                    " or 20G, not '1e9'"),
            (["--retention-days", "-1"], "--retention-days takes a whole number from 0 to"
                                         " 36500, not '-1'")):
        r = run_cli("serve", "--listen", "127.0.0.1:1", "--data-dir",
                    str(tmp_path / "never"), *args, timeout=30)
        assert (r.returncode, r.stderr) == (2, f"meshtest: {msg}\n"), r


LONG_BUDGET = 4 * MIB


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_a_node_that_cannot_make_room_refuses(make_node):
    """A running evaluation takes more than the whole budget (its files are
    in use, so they stay): new submissions, ZIP or git, are refused with 507
    and what is used; once it is done, its files may go and the same upload
    is accepted."""
    node = make_node(["--max-disk", "4M", "--allow-file-urls"])
    blob, _ = project_zip("long", 3 * MIB, LONG, sleep=6)
    eid = node.submit_zip(blob)
    wait_until(lambda: node.get(f"/evaluation/{eid}")[1]["in_progress"] == 1, 60,
               "the long module running")
    small, small_sha = project_zip("small", 100 << 10)
    pattern = (r"not enough room within this node's disk budget: ([0-9.]+ MiB) of 4\.0 MiB"
               r" used \(blobs [0-9.]+ [KM]iB, projects [0-9.]+ [KM]iB, work folders"
               r" [0-9.]+ [KM]iB, environments [0-9.]+ [KM]iB\) after removing what"
               r" nothing uses{need}; the rest could not be freed: it is in use by"
               r" unfinished evaluations, running modules or fetches, or was written"
               r" moments ago\. Try again later, or raise --max-disk")
    st, js = node.post_zip(small)
    assert st == 507, (st, js)
    need = re.escape(f", and this upload needs {human(len(small))} more")
    m = re.fullmatch(pattern.replace("{need}", need), js["error"])
    assert m, js
    used = float(m.group(1).split()[0])
    assert used > 4.0, js
    st, js = node.post_json("/evaluation", {"projects": ["file:///srv/none.git"]})
    assert st == 507, (st, js)
    assert re.fullmatch(pattern.replace("{need}", ""), js["error"]), js
    assert not os.path.exists(os.path.join(node.data_dir, "blobs", small_sha + ".zip"))
    assert node.get("/evaluation") == (200, {"evaluations": [eid]})
    # the long module saw its copy and environment whole to its end
    done = wait_done(node, eid, timeout=60)
    assert (done["status"], done["passed"], done["failed"]) == ("done", 1, 0), \
        get_results(node, eid)
    # done: its files may go, and there is room again
    wait_until(lambda: health_disk(node)["used"] <= LONG_BUDGET, 10, "back under 4 MiB")
    expect_two_tests(wait_done(node, node.submit_zip(small)), "small")
    assert node.get(f"/evaluation/{eid}")[1]["passed"] == 1


@pytest.mark.timeout(150)
def test_files_in_use_stay_while_others_exceed_the_budget(make_node):
    """A long module holds its project copy and environment while three
    other evaluations push the node past its budget: they are evicted, the
    long one's files never are (its module checks them after its sleep, and
    the test watches them from outside)."""
    node = make_node(["--max-disk", "8M"])
    blob, _ = project_zip("long", DATA, LONG, sleep=15)
    long_id = node.submit_zip(blob)
    marker = "long-marker.txt"
    # a slot keeps a pristine copy of what it runs in the sandbox only
    sandboxed = node.get("/health")[1]["sandbox"] == "bwrap"

    def files_in_use():
        envs = [n for n in os.listdir(os.path.join(node.data_dir, "venvs"))
                if re.fullmatch("[0-9a-f]{64}", n)]
        return (find_marker(node.data_dir, "projects", marker),
                slot_copies(node.data_dir, marker), envs)

    # running: claimed, its environment built and its copy made
    wait_until(lambda: node.get(f"/evaluation/{long_id}")[1]["in_progress"] == 1 and
               [len(x) for x in files_in_use()] == [1, int(sandboxed), 1], 60,
               "the long module running")
    folders, copies, envs = files_in_use()
    env = os.path.join(node.data_dir, "venvs", envs[0])
    project_blob = os.path.join(node.data_dir, "blobs",
                                os.path.basename(folders[0]) + ".zip")
    watched = [folders[0], env, project_blob] + copies
    assert all(os.path.exists(p) for p in watched), watched
    evicted_before = health_disk(node)["evicted"]
    missing = []
    others = []
    with Sampler(node.data_dir) as sampler:
        for i in range(3):
            pid = f"o{i}"
            b, _ = project_zip(pid, DATA)
            eid = node.submit_zip(b)
            while True:
                missing += [p for p in watched if not os.path.exists(p)]
                st, doc = node.get(f"/evaluation/{eid}")
                if doc["status"] != "running":
                    break
                time.sleep(0.1)
            expect_two_tests(doc, pid)
            others.append((eid, pid))
            # evicted after each: this is what pushes on the long one's files
            wait_until(lambda: health_disk(node)["used"] <= BUDGET, 10, "back under budget")
            missing += [p for p in watched if not os.path.exists(p)]
        assert node.get(f"/evaluation/{long_id}")[1]["in_progress"] == 1, \
            "the others took longer than the long module's sleep"
    assert missing == [], missing
    assert sampler.peak > BUDGET, sampler.peak
    assert health_disk(node)["evicted"] > evicted_before
    done = wait_done(node, long_id, timeout=60)
    assert (done["status"], done["passed"], done["failed"]) == ("done", 1, 0), \
        get_results(node, long_id)
    for eid, pid in others:
        expect_two_tests(node.get(f"/evaluation/{eid}")[1], pid)


def backdate(db, eval_id, seconds):
    """Move an evaluation's times back (the node is stopped)."""
    con = sqlite3.connect(db)
    try:
        with con:
            n = con.execute("UPDATE evaluation SET created_at = created_at - ?,"
                            " last_event_at = last_event_at - ? WHERE id = ?",
                            (seconds, seconds, eval_id)).rowcount
        assert n == 1
    finally:
        con.close()


@pytest.mark.timeout(120)
def test_retention_removes_old_files_and_keeps_results(make_node):
    """--retention-days 2: an evaluation that finished three days ago loses
    its upload, its project's blob and unpacked folder; one of today keeps
    them; both keep their status, results and share of /stats."""
    node = make_node()
    old_blob, old_sha = project_zip("old", 256 << 10)
    new_blob, new_sha = project_zip("new", 256 << 10)
    old_id = node.submit_zip(old_blob)
    expect_two_tests(wait_done(node, old_id), "old")
    new_id = node.submit_zip(new_blob)
    expect_two_tests(wait_done(node, new_id), "new")
    d = node.data_dir
    files = {}
    for name, sha in (("old", old_sha), ("new", new_sha)):
        marker = f"{name}-marker.txt"
        [folder] = find_marker(d, "projects", marker)
        digest = os.path.basename(folder)
        # (the slots' copies go at every start of the node: not looked at)
        files[name] = [os.path.join(d, "blobs", sha + ".zip"), folder,
                       os.path.join(d, "blobs", digest + ".zip")]
        assert all(os.path.exists(p) for p in files[name]), files[name]

    node.stop()
    backdate(os.path.join(d, "meshtest.db"), old_id, 3 * 86400)
    node.start()
    paths = ["/stats", f"/evaluation/{old_id}", f"/evaluation/{old_id}/results",
             f"/evaluation/{new_id}", f"/evaluation/{new_id}/results", "/evaluation"]
    before = {p: node.get(p) for p in paths}
    assert before[f"/evaluation/{old_id}"][0] == 200
    time.sleep(2)   # without retention nothing goes
    assert all(os.path.exists(p) for p in files["old"] + files["new"])
    assert health_disk(node)["retention_days"] == 0

    node.stop()
    node.extra_args += ["--retention-days", "2"]
    node.start()
    wait_until(lambda: not any(os.path.exists(p) for p in files["old"]), 15,
               "the old evaluation's files removed")
    assert all(os.path.exists(p) for p in files["new"]), files["new"]
    assert health_disk(node)["retention_days"] == 2
    after = {p: node.get(p) for p in paths}
    assert after == before
    expect_two_tests(after[f"/evaluation/{old_id}"][1], "old")
