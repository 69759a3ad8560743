"""GET /evaluation/<id>/events: Server-Sent Events from any node; a client
that disconnects and reconnects with Last-Event-ID gets every event once."""

import http.client
import json
import os
import time

import pytest

from conftest import get_results, loop_nodes, running, wait_done
import corpus


class Stream:
    """A raw SSE reader over http.client: events as (id, event, data)."""

    def __init__(self, node, eid, last=None, timeout=60):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
        hdrs = node.auth({"Accept": "text/event-stream"})
        if last is not None:
            hdrs["Last-Event-ID"] = last
        self.conn.request("GET", f"/evaluation/{eid}/events", headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.retry = None

    def events(self):
        ev = {}
        while True:
            line = self.resp.readline()      # chunked decoding; b"" at the end
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in ev:
                    yield ev.get("id"), ev["event"], json.loads(ev.get("data", "null"))
                ev = {}
            elif line.startswith(":"):
                continue
            else:
                k, _, v = line.partition(": ")
                if k == "retry":
                    self.retry = int(v)
                else:
                    ev[k] = v

    def close(self):
        self.conn.close()


def slow_corpus(tmp):
    """Two projects of three modules, each module three tests of 0.2 s
    (two pass, one fails): long enough to cut a stream mid-run."""
    src = os.path.join(tmp, "slow-src")
    corpus.write_simple(src, "p1", 2, 1, sleep=0.2, modules=3)
    corpus.write_simple(src, "p2", 2, 1, sleep=0.2, modules=3)
    return corpus.zip_dir(src, os.path.join(tmp, "slow.zip"))


@pytest.mark.asan
@pytest.mark.timeout(240)
def test_reconnecting_client_gets_every_event_once(tmp_path):
    with running(loop_nodes(tmp_path, 2, "ev")) as (a, b):
        eid = a.submit_zip(slow_corpus(str(tmp_path)))
        # follow it on the other node; cut the stream after a few tests
        seen, cuts = [], 0
        last = None
        while True:
            s = Stream(b, eid, last)
            assert s.status == 200, s.resp.read()
            assert s.resp.getheader("Content-Type") == "text/event-stream"
            n, ended = 0, False
            for ev in s.events():
                seen.append(ev)
                last, n = ev[0], n + 1
                if ev[1] == "evaluation_done":
                    ended = True
                    break
                if ev[1] == "test_finished" and n >= 4 and cuts < 3:
                    cuts += 1
                    break
            s.close()
            assert s.retry == 1000
            if ended:
                break
        assert cuts == 3, seen
        doc = wait_done(b, eid, timeout=60)
        ids = [e[0] for e in seen]
        assert len(ids) == len(set(ids)), ids
        # every test of the results exactly once, with its outcome
        res = get_results(b, eid)
        want = sorted((p["project_id"], m["path"], t["nodeid"], t["outcome"])
                      for p in res["projects"] for m in p["modules"] for t in m["tests"])
        got = sorted((d["project"], d["module"], d["nodeid"], d["outcome"])
                     for _, k, d in seen if k == "test_finished")
        assert got == want and len(got) == 18
        # a module's tests come before its module_done, which counts them
        done = [(d["project"], d["module"]) for _, k, d in seen if k == "module_done"]
        assert sorted(done) == sorted((p, f"tests/test_mod{m}.py")
                                      for p in ("p1", "p2") for m in (1, 2, 3))
        for i, (eid_, kind, d) in enumerate(seen):
            if kind == "module_done":
                assert (d["passed"], d["failed"], d["skipped"]) == (2, 1, 0)
                assert d["outcome"] == "finished" and d["node"] in (a.addr, b.addr)
                mine = [x for x in seen[:i] if x[1] == "test_finished"
                        and x[2]["module"] == d["module"] and x[2]["project"] == d["project"]]
                assert len(mine) == 3
                assert all(x[0].startswith(eid_ + ":") for x in mine)
        failed = [d for _, k, d in seen if k == "test_finished" and d["outcome"] == "failed"]
        # the line that says what failed (pytest's "E" line), as the CLI shows it
        assert len(failed) == 6 and {d["message"] for d in failed} == {"assert False"}
        assert all(d["message"] is None for _, k, d in seen
                   if k == "test_finished" and d["outcome"] == "passed")
        # the end: last, with the status document's counts
        assert seen[-1][0] == "end" and seen[-1][1] == "evaluation_done"
        end = seen[-1][2]
        assert (end["status"], end["passed"], end["failed"], end["executed"]) == \
            ("done", 12, 6, 6) == (doc["status"], doc["passed"], doc["failed"], doc["executed"])
        # after the end: 204, which stops an EventSource
        s = Stream(b, eid, "end")
        assert s.status == 204
        s.close()
        # a stream opened after the end replays everything once, then ends
        wait_done(a, eid, timeout=60)
        s = Stream(a, eid)
        replay = list(s.events())
        s.close()
        assert sorted(e[2]["nodeid"] for e in replay if e[1] == "test_finished") == \
            sorted(w[2] for w in want)
        assert replay[-1][1] == "evaluation_done"


@pytest.mark.asan
@pytest.mark.timeout(120)
def test_events_bad_input_and_token(make_node, tmp_path, monkeypatch):
    n = make_node(name="evbad")
    for path in ("/evaluation/00000000-0000-4000-8000-000000000000/events",
                 "/evaluation/not-a-uuid/events"):
        st, js, _ = n.request("GET", path)
        assert st == 404 and js == {"error": "not found"}
    eid0 = n.submit_zip(corpus.gamma_zip(str(tmp_path)))
    for bad in ("99999999999999999999", "abc", "3:0", "3:", "-1", "3:x", "1 ", "9007199254740992"):
        st, js, _ = n.request("GET", f"/evaluation/{eid0}/events",
                              headers={"Last-Event-ID": bad})
        assert (st, js) == (400, {"error": "bad Last-Event-ID: want an id this stream sent"}), bad
    monkeypatch.setenv("MESHTEST_API_TOKEN", "t" * 64)
    k = make_node(name="evtok")
    eid = k.submit_zip(corpus.gamma_zip(str(tmp_path)))
    st, js, _ = k.request("GET", f"/evaluation/{eid}/events", headers={"Authorization": None})
    assert st == 401 and "API token" in js["error"]
    s = Stream(k, eid)
    kinds = [e[1] for e in s.events()]
    s.close()
    assert kinds.count("test_finished") == 5 and kinds[-1] == "evaluation_done"


@pytest.mark.timeout(120)
def test_node_stops_with_a_stream_open(make_node, tmp_path):
    """A follower of a long evaluation does not keep its node from stopping:
    the stream ends and the node exits 0 within its stop timeout."""
    n = make_node(name="evstop")
    src = os.path.join(str(tmp_path), "long-src")
    corpus.write_simple(src, "long", 1, 0, sleep=30, modules=2)
    eid = n.submit_zip(corpus.zip_dir(src, os.path.join(str(tmp_path), "long.zip")))
    s = Stream(n, eid)
    t0 = time.monotonic()
    it = s.events()
    first = next(it)
    assert first[1] == "module_claimed"
    rc = n.stop()
    rest = list(it)
    s.close()
    assert rc == 0 and time.monotonic() - t0 < 20
    assert all(k != "evaluation_done" for _, k, _ in rest)


@pytest.mark.timeout(120)
def test_cli_wait_follows_the_stream(make_node, tmp_path):
    """`meshtest submit --wait` waits on the event stream, not by polling:
    one stream, and the status read once at the end."""
    from conftest import run_cli
    n = make_node(name="evcli")
    r = run_cli("submit", slow_corpus(str(tmp_path)), "--node", n.addr, "--wait")
    assert r.returncode == 1, r.stderr           # tests failed: exit 1
    eid = n.get("/evaluation")[1]["evaluations"][0]
    log = n.log_text()
    assert log.count(f"GET /evaluation/{eid}/events -> 200 (stream)") == 1, log[-3000:]
    assert log.count(f"GET /evaluation/{eid} -> 200") <= 2
    doc = wait_done(n, eid)
    assert (doc["passed"], doc["failed"]) == (12, 6)
    assert "p1" in r.stdout and "p2" in r.stdout


@pytest.mark.timeout(120)
def test_event_streams_are_capped(make_node, tmp_path):
    """Open streams cost a connection each: past 256 at once a node answers
    503 instead of letting followers crowd out its other traffic; a place
    freed is taken again."""
    n = make_node(name="evcap")
    src = os.path.join(str(tmp_path), "long-src")
    corpus.write_simple(src, "long", 1, 0, sleep=60, modules=1)
    eid = n.submit_zip(corpus.zip_dir(src, os.path.join(str(tmp_path), "long.zip")))
    streams = []
    try:
        for _ in range(256):
            s = Stream(n, eid)
            assert s.status == 200
            streams.append(s)
        st, js, _ = n.request("GET", f"/evaluation/{eid}/events")
        assert (st, js) == (503, {"error": "too many event streams open on this node;"
                                           " try again later"})
        st, doc = n.get(f"/evaluation/{eid}")
        assert st == 200 and doc["status"] == "running"
        streams.pop().close()

        def reopened():
            s = Stream(n, eid)
            if s.status == 200:
                streams.append(s)
                return True
            s.close()
            return False
        from conftest import wait_for
        # a follower that went away is noticed within a wake-up (0.2 s)
        wait_for(reopened, 5, "a freed place taken again")
    finally:
        for s in streams:
            s.close()
