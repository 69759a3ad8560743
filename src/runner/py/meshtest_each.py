# meshtest_each.py - isolation "module" over several modules of one folder:
# pytest starts once, and each module runs in a child of its own.
#
# A warm worker's child for such a run (the zygote) builds its sandbox as for
# any run, reads pytest's configuration and starts the session once (the
# folder's conftest files imported, the plugins configured: what a run of
# any one of these modules alone does first, identical for all of them), and
# then forks, module after module, a child that builds a sandbox of its own
# inside the zygote's (fresh user, mount, network, IPC and UTS namespaces; a
# fresh scratch folder bound at the same path, so its /tmp, home and view of
# the project are new; its own loopback; no capabilities) and collects and
# runs that module alone. With "fresh" (the project shadows a module the
# worker imported) the zygote starts no pytest and each child execs a fresh
# interpreter over its module instead.
#
# Each child writes its events to a pipe of its own, which the zygote passes
# on to the node's report pipe; the child never holds the node's. After the
# child ended the zygote adds {"ev": "module_exit", "path", "status",
# "signal"}: the node cuts the stream at these markers, and each module's
# part is its report as if it had run alone. A child cannot forge a marker
# (the zygote drops any it writes), cannot trace or read the zygote (not
# dumpable), and anything it leaves running stops the zygote before the
# next fork: the zygote forks only while it is single-threaded and no other
# process runs in the sandbox (not a thread or process of a conftest either).
# When it stops early, the node runs the modules it did not reach alone.
import faulthandler
import gc
import json
import os
import select
import signal
import stat
import sys
import tempfile
import threading

import meshtest_plugin
import meshtest_sandbox as sandbox
from meshtest_sandbox import PR_SET_DUMPABLE, SetupFailed

EXIT_SETUP = 121            # as meshtest_worker's: the child could not set up its sandbox
LINE_MAX = 1 << 20          # a longer line is not passed on


def fork_each(req, caps, in_child=None):
    """In the zygote: each module of req["modules"] in turn in a child of its
    own. Returns that module in the child, once its sandbox is built (the
    caller runs it there; in_child(), when given, runs first, while the
    child still has the zygote's stdout and stderr); the zygote exits once
    it is done or stopped."""
    sandbox.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # no module's SIGINT ends the zygote
    relay = _Relay()
    budget = int(req.get("report_cap") or (32 << 20)) // 2
    for k, module in enumerate(req["modules"]):
        # the node's report of this run has room for another module's
        if relay.sent > budget or not _alone():
            break
        fresh = "%s.%d" % (req["scratch"], k)
        try:
            os.mkdir(fresh, 0o700)
            outs = [_unnamed_file(), _unnamed_file()]
            r, w = os.pipe()
        except OSError:
            break
        _flush()
        gc.collect()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            if in_child is not None:
                in_child()
            _enter(req, caps, fresh, w, outs)
            return module
        os.close(w)
        ended = _pass_on(r, pid, relay)
        ended.update(_outputs(outs, int(req.get("output_cap") or 65536)))
        sandbox.rmtree(fresh)     # before its marker: not on the next module's clock
        if relay.setup_failed:
            break                 # the worker's fault: the node runs the rest alone
        relay.sent += len(ended["stdout"]) + len(ended["stderr"])
        meshtest_plugin.emit(dict(ended, ev="module_exit", path=module))
    _zygote_exit()


def probe():
    """Can a zygote be pid 1 of a pid namespace of its own, with its own
    /proc, here? Tried in a child, as every zygote does."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            sandbox.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            sandbox.own_namespaces(pid=True)
            sandbox.own_init()
            if os.getpid() == 1 and os.listdir("/proc/self/fd"):
                os.write(w, b"1")
        except BaseException:  # noqa: BLE001 - then it cannot
            pass
        os._exit(0)
    os.close(w)
    ok = os.read(r, 1) == b"1"
    os.close(r)
    sandbox.wait_end(pid)
    return ok


def _enter(req, caps, fresh, report, outs):
    """In a module's child: its own report pipe as fd 3, its own files for
    stdout and stderr, and its own sandbox inside the zygote's. A failure
    is the worker's, not the module's."""
    try:
        sandbox.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)   # its own /proc files
        # descriptors that are the zygote's stdout and stderr (pytest's
        # faulthandler keeps a copy of stderr) become the child's own
        mine = {_file_id(1): 1, _file_id(2): 2}
        for fd, to in ((report, 3), (outs[0], 1), (outs[1], 2)):
            os.dup2(fd, to)
            os.close(fd)
        for fd in _fds():
            if fd > 3 and _file_id(fd) in mine:
                os.dup2(mine[_file_id(fd)], fd)
        if faulthandler.is_enabled():    # pytest's: a crash's traceback goes to its stderr
            faulthandler.enable(file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)   # as a fresh interpreter
        os.setsid()
        sandbox.enter(req, caps["overlay"], fresh=fresh)
    except SetupFailed as e:
        meshtest_plugin.emit({"ev": "worker_error", "message": str(e)})
        os._exit(EXIT_SETUP)
    except BaseException as e:  # noqa: BLE001 - anything here is the worker's fault
        meshtest_plugin.emit({"ev": "worker_error",
                              "message": "cannot prepare the module's run: %r" % e})
        os._exit(EXIT_SETUP)


def _unnamed_file():
    """A file of the zygote's that has no name (its /tmp), for a child's output."""
    try:
        return os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        fd, name = tempfile.mkstemp()
        os.unlink(name)
        return fd


def own_output():
    """In the zygote, before pytest starts: its stdout and stderr go to files
    of its own, whose content begins each module's output (what pytest
    printed before the modules forked, as it would for each alone)."""
    for to in (1, 2):
        fd = _unnamed_file()
        os.dup2(fd, to)
        os.close(fd)


def _outputs(outs, cap):
    """A child's stdout and stderr as module_exit fields: the zygote's
    output, then the child's, the first cap bytes as text, and how many
    bytes were left out."""
    got = {}
    for name, zygote, fd in zip(("stdout", "stderr"), (1, 2), outs):
        data, size = b"", 0
        for f in (zygote, fd):
            try:
                size += os.fstat(f).st_size
                data += os.pread(f, cap - len(data), 0) if len(data) < cap else b""
            except OSError:
                pass
        os.close(fd)
        # as text, and without NULs, which the node's JSON parser refuses
        got[name] = data.decode("utf-8", "replace").replace("\x00", "\ufffd")
        got[name + "_dropped"] = max(0, size - len(data))
    return got


def _flush():
    """What the zygote's Python buffers hold goes out before a fork, not
    again from the child."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:  # noqa: BLE001
            pass


def _fds():
    try:
        return [int(n) for n in os.listdir("/proc/self/fd") if n.isdigit()]
    except OSError:
        return []


def _file_id(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _own_fd(fd, std):
    """One of the zygote's descriptors a child may inherit: its stdin,
    stdout, stderr or report pipe, a copy of one of them (pytest's capture
    and faulthandler keep some), or a file without a name (pytest's capture
    files, which each child replaces); not a file or socket a conftest
    opened, which every module would share."""
    if fd <= 3:
        return True
    try:
        st = os.fstat(fd)
    except OSError:
        return True       # closed meanwhile (listdir's own)
    if (st.st_dev, st.st_ino) in std:
        return True
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 0


def _alone():
    """Nothing but this one thread of the zygote, no process in its pid
    namespace but itself (pid 1), and no descriptor a child would share with
    the next: then a fork copies no lock held elsewhere, and nothing of one
    module meets the next."""
    if threading.active_count() != 1:
        return False
    std = {_file_id(fd) for fd in (0, 1, 2, 3)}
    if not all(_own_fd(fd, std) for fd in _fds()):
        return False
    try:
        with open("/proc/self/status") as f:
            if not any(line.split() == ["Threads:", "1"] for line in f):
                return False
    except OSError:
        return False
    while True:   # orphans of earlier modules come to us, pid 1
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == 0:
            break
    return all(not n.isdigit() or n == "1" for n in os.listdir("/proc"))


class _Relay:
    """The zygote's side of the children's report pipes: a line that parses
    as a JSON object goes on to fd 3 as the zygote encodes it again (so the
    node reads what was judged here), but never a module_exit (only the
    zygote writes those); a line that does not parse, or is longer than
    LINE_MAX, is dropped, as the node would drop it. Counts the bytes it
    passed on, and notes a worker_error (a child that could not build its
    sandbox)."""

    def __init__(self):
        self.sent = 0
        self.setup_failed = False
        self._pending = b""
        self._skip = False        # inside an overlong line

    def start(self):
        self._pending = b""
        self._skip = False

    def feed(self, data):
        *lines, rest = (self._pending + data).split(b"\n")
        for line in lines:
            if self._skip:
                self._skip = False
                continue
            self._line(line)
        if len(rest) > LINE_MAX:
            self._skip, rest = True, b""
        self._pending = rest

    def _line(self, line):
        if len(line) > LINE_MAX:
            return
        try:
            ev = json.loads(line)
        except ValueError:
            return
        if not isinstance(ev, dict) or ev.get("ev") == "module_exit":
            return
        if ev.get("ev") == "worker_error":
            self.setup_failed = True
        data = (json.dumps(ev, ensure_ascii=True) + "\n").encode("ascii")
        _write_all(3, data)
        self.sent += len(data)


def _pass_on(r, pid, relay):
    """Pass the child's report lines on (relay) until it ended (not until
    its pipe closes: a process it left may hold that); how it ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poll = select.poll()
    poll.register(r, select.POLLIN)
    if pidfd is not None:
        poll.register(pidfd, select.POLLIN)
    relay.start()
    while True:
        ready = {fd for fd, _ in poll.poll()}
        if pidfd in ready:
            # it ended: what it wrote is in the pipe, take that and no more
            os.set_blocking(r, False)
            while True:
                try:
                    chunk = os.read(r, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                relay.feed(chunk)
            break
        chunk = os.read(r, 65536)
        if not chunk:
            break
        relay.feed(chunk)
    os.close(r)
    if pidfd is not None:
        os.close(pidfd)
    return sandbox.wait_end(pid)


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return
        data = data[n:]


def plugin(req, caps):
    """The pytest plugin of a zygote with pytest started once: at the
    collection of its session (configured, started) it forks the modules'
    children; in each, the session collects and runs that module alone; the
    zygote itself ends there."""
    import pytest

    class Each:
        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session):
            cm = session.config.pluginmanager.getplugin("capturemanager")
            stopped = []
            session.config.args = [fork_each(req, caps,
                                             lambda: stopped.append(_stop_capture(cm)))]
            if stopped[0]:
                cm.start_global_capturing()    # its own, over its own stdout and stderr
                cm.suspend_global_capture()    # held, as pytest holds it between collections
            return None

    return Each()


def _zygote_exit():
    """The zygote's end: its output flushed, nothing of the session's end
    run (each child ran its own), no exit handler of a conftest file."""
    _flush()
    os._exit(0)


def _stop_capture(cm):
    """In a module's child: end the zygote's global capture (its files are
    shared with every child, and one that died while capturing left its
    output in them), putting back the zygote's stdout and stderr. True
    when there was one (the child then starts its own)."""
    old = getattr(cm, "_global_capturing", None)
    if old is None:
        return False
    try:
        old.stop_capturing()
    except Exception:  # noqa: BLE001 - already stopped: start anew all the same
        pass
    cm._global_capturing = None
    return True
