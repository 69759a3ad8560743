"""Exact-number checks shared by the end-to-end tests."""

import pytest

APPROX = dict(abs=0.01)


def approx(v):
    return pytest.approx(v, **APPROX)


def check_status_doc(js, projects, modules, node_addr=None):
    """Exact check of GET /evaluation/<id> against the expected tables.
    projects: {pid: {"passed","failed","skipped","grade"} or with "error"}
    modules: {pid: {path: (p, f, s, outcome)}}"""
    # compact comparisons first, so a failure shows the whole picture
    got = {pid: (p.get("passed"), p.get("failed"), p.get("skipped"))
           for pid, p in (js.get("projects") or {}).items()}
    want = {pid: (p["passed"], p["failed"], p["skipped"])
            for pid, p in projects.items()}
    assert got == want, "per-project (passed, failed, skipped)"
    tp = sum(p["passed"] for p in projects.values())
    tf = sum(p["failed"] for p in projects.values())
    ts = sum(p["skipped"] for p in projects.values())
    nmod = sum(len(m) for m in modules.values())
    assert js["passed"] == tp
    assert js["failed"] == tf
    assert js["skipped"] == ts
    assert js["percent_passed"] == approx(100 * tp / (tp + tf) if tp + tf else 0)
    assert js["percent_failed"] == approx(100 * tf / (tp + tf) if tp + tf else 0)
    assert js["executed"] == nmod
    assert js["in_progress"] == 0
    assert js["pending"] == 0
    grades = {pid: p["grade"] for pid, p in projects.items()}
    assert js["nota_final"] == approx(sum(grades.values()) / len(grades))
    assert set(js["nota_final_per_project"]) == set(projects)
    for pid, g in grades.items():
        assert js["nota_final_per_project"][pid] == approx(g), pid
    assert set(js["percent_passed_per_project"]) == set(projects)
    assert set(js["percent_failed_per_project"]) == set(projects)
    for pid, p in projects.items():
        c = p["passed"] + p["failed"]
        assert js["percent_passed_per_project"][pid] == approx(
            100 * p["passed"] / c if c else 0), pid
        assert js["percent_failed_per_project"][pid] == approx(
            100 * p["failed"] / c if c else 0), pid
        jp = js["projects"][pid]
        assert (jp["passed"], jp["failed"], jp["skipped"]) == (
            p["passed"], p["failed"], p["skipped"]), (pid, jp)
        assert jp["grade"] == approx(p["grade"]), pid
        if p.get("error"):
            assert isinstance(jp["error"], str) and jp["error"], (pid, jp)
        else:
            assert jp["error"] is None, (pid, jp)
    keys = {f"{pid}/{path}" for pid, m in modules.items() for path in m}
    assert set(js["percent_passed_per_module"]) == keys
    assert set(js["percent_failed_per_module"]) == keys
    for pid, m in modules.items():
        for path, (p, f, _s, _o) in m.items():
            k = f"{pid}/{path}"
            assert js["percent_passed_per_module"][k] == approx(
                100 * p / (p + f) if p + f else 0), k
            assert js["percent_failed_per_module"][k] == approx(
                100 * f / (p + f) if p + f else 0), k
    assert isinstance(js["elapsed_seconds"], (int, float))
    assert js["elapsed_seconds"] > 0


def check_results_doc(res, eval_id, projects, modules, node_addr):
    assert res["id"] == eval_id
    by_pid = {p["project_id"]: p for p in res["projects"]}
    got = {p["project_id"]: {m.get("path"): (m.get("passed"), m.get("failed"),
                                            m.get("skipped"), m.get("outcome"))
                             for m in p.get("modules", [])}
           for p in res["projects"]}
    assert got == modules, "per-module (passed, failed, skipped, outcome)"
    assert set(by_pid) == set(projects)
    assert len(res["projects"]) == len(projects)
    for pid, exp in projects.items():
        p = by_pid[pid]
        assert (p["passed"], p["failed"], p["skipped"]) == (
            exp["passed"], exp["failed"], exp["skipped"]), pid
        assert p["grade"] == approx(exp["grade"]), pid
        assert isinstance(p["warnings"], list)
        mods = {m["path"]: m for m in p["modules"]}
        assert len(p["modules"]) == len(modules[pid]), (pid, list(mods))
        assert set(mods) == set(modules[pid]), pid
        for path, (mp, mf, ms, outcome) in modules[pid].items():
            m = mods[path]
            assert m["module"] == f"{pid}/{path}"
            assert (m["passed"], m["failed"], m["skipped"]) == (mp, mf, ms), \
                (pid, path, m.get("tests"), m.get("message"))
            assert m["outcome"] == outcome, (pid, path, m.get("message"))
            assert m["node"] == node_addr, (pid, path)
            assert isinstance(m["duration"], (int, float))
            assert isinstance(m["tests"], list)
    return by_pid


def outcomes_by_nodeid(module):
    return {t["nodeid"]: t["outcome"] for t in module["tests"]}
