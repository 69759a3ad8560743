# meshtest_plugin.py - pytest plugin that reports a module run to the meshtest node.
#
# Loaded with `-p meshtest_plugin`. Writes one JSON object per line to the fd
# named by MESHTEST_REPORT_FD (or given to configure() by a warm worker),
# flushed at once with os.write, so a run that is killed keeps every event
# written before it died. Every hook is guarded: the plugin must never change
# the outcome of a run.
#
# Events: hello, collect_start {path} (a test module's collection begins),
# collect_error {nodeid, message}, collected {nodeids}, start {nodeid},
# report {nodeid, when, outcome, ...}, finish {nodeid}, end {exitstatus}.
#
# Every event carries "k", the run's key (MESHTEST_REPORT_KEY, taken out of
# the environment when this module is imported, before any project code;
# or given to configure() by a warm worker): the node takes only events
# that carry it, so code under test that writes to the report pipe is not
# believed. Code in this same process can still reach the key (it can do
# anything this plugin can); what the key closes is the pipe itself.
"""meshtest's reporting plugin. PYTEST_DONT_REWRITE: a warm worker imports
it before pytest's assertion rewriter exists."""
import json
import os

_FD = None
_KEY = os.environ.pop("MESHTEST_REPORT_KEY", None)
_MSG_CAP = 4000
_MAX_IDS = 100000

try:
    _v = os.environ.get("MESHTEST_REPORT_FD")
    if _v is not None and _v.strip() != "":
        _FD = int(_v)
except Exception:
    _FD = None


def configure(fd, key=None):
    """Report to fd with the run's key from now on (a worker's forked child)."""
    global _FD, _KEY
    _FD = fd
    _KEY = key


def emit(obj):
    _emit(obj)


def _emit(obj):
    if _FD is None:
        return
    try:
        if _KEY is not None:
            obj = dict(obj, k=_KEY)
        data = (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
        while data:
            n = os.write(_FD, data)
            if n <= 0:
                return
            data = data[n:]
    except Exception:
        pass


def _tail(text):
    if text is None:
        return ""
    text = str(text)
    if len(text) > _MSG_CAP:
        return text[-_MSG_CAP:]
    return text


def pytest_configure(config):
    try:
        import pytest
        _emit({"ev": "hello", "pytest": str(pytest.__version__)})
    except Exception:
        pass


def pytest_collectstart(collector):
    try:
        import pytest
        if isinstance(collector, pytest.Module):
            _emit({"ev": "collect_start", "path": str(collector.nodeid)})
    except Exception:
        pass


def pytest_collectreport(report):
    try:
        if report.failed:
            _emit({"ev": "collect_error", "nodeid": str(report.nodeid),
                   "message": _tail(report.longreprtext)})
    except Exception:
        pass


def pytest_collection_finish(session):
    try:
        ids = [str(i.nodeid) for i in session.items[:_MAX_IDS]]
        _emit({"ev": "collected", "nodeids": ids})
    except Exception:
        pass


def pytest_runtest_logstart(nodeid, location):
    try:
        _emit({"ev": "start", "nodeid": str(nodeid)})
    except Exception:
        pass


def _skip_reason(report):
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = str(lr[2])
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: "):]
        return reason
    return str(lr) if lr is not None else ""


def pytest_runtest_logreport(report):
    try:
        ev = {"ev": "report", "nodeid": str(report.nodeid),
              "when": str(report.when), "outcome": str(report.outcome),
              "duration": float(getattr(report, "duration", 0.0) or 0.0),
              "wasxfail": hasattr(report, "wasxfail"),
              "strict_xpass": False}
        if report.outcome == "failed":
            text = report.longreprtext or ""
            ev["strict_xpass"] = str(text).startswith("[XPASS(strict)]")
            ev["message"] = _tail(text)
        elif report.outcome == "skipped":
            if hasattr(report, "wasxfail"):
                ev["message"] = _tail(report.wasxfail)
            else:
                ev["message"] = _tail(_skip_reason(report))
        _emit(ev)
    except Exception:
        pass


def pytest_runtest_logfinish(nodeid, location):
    try:
        _emit({"ev": "finish", "nodeid": str(nodeid)})
    except Exception:
        pass


def pytest_sessionfinish(session, exitstatus):
    try:
        _emit({"ev": "end", "exitstatus": int(exitstatus)})
    except Exception:
        pass
