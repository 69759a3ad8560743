# meshtest_supervisor.py - set-up commands once after fetching, and services
# around one module run.
#
#   python meshtest_supervisor.py --commands <seconds>
#   python meshtest_supervisor.py -- <python> -m pytest ...
#
# Reads the evaluation's set-up from .meshtest-evaluation.json (written by the
# node's fetcher) and the project's own from meshtest.toml or meshtest.json.
#
# --commands: run by the node once per project, right after fetching, inside
# a sandbox as the set-up uid with the project folder as working directory
# (setupcmd_run): runs the commands in order, all of them within the
# given seconds, each with stdout passed on and the tail of stderr kept for
# the message. Exit 0 when all succeeded.
#
# --: run inside the module's sandbox (same network namespace, same slot
# user, the project copy as working directory), in place of pytest, when the
# evaluation or the project has a set-up. Does NOT run the commands (they ran
# once after fetching); starts the services and waits until each is ready,
# runs pytest as a child (fd 3, the report pipe, is inherited), then stops
# the services (SIGTERM, then SIGKILL of their process groups) and exits as
# pytest did.
#
# A set-up that fails (bad file, command failing, service never ready) is
# written to fd 3 as {"ev": "setup_error", "message": ...}; pytest is then not
# run and the exit status is 3.
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

EVAL_FILE = ".meshtest-evaluation.json"
PROJECT_FILES = ("meshtest.toml", "meshtest.json")
MAX_FILE = 1 << 20
MAX_COMMANDS = 32
MAX_SERVICES = 8
MAX_CMD = 4096
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
COMMAND_BUDGET = 300.0
STDERR_TAIL = 4096
STOP_GRACE = 5.0
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LOG_DIR = os.environ.get("TMPDIR") or "/tmp"


# The run's report key: out of the environment at once, so that services
# never see it; handed to pytest alone (main), or set by a warm worker.
_KEY = os.environ.pop("MESHTEST_REPORT_KEY", None)


class SetupError(Exception):
    pass


def configure_report(key):
    """The run's report key (a warm worker's child)."""
    global _KEY
    _KEY = key


def _report(obj):
    try:
        fd = int(os.environ.get("MESHTEST_REPORT_FD", ""))
    except ValueError:
        return
    if _KEY is not None:
        obj = dict(obj, k=_KEY)
    data = (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
    try:
        while data:
            n = os.write(fd, data)
            if n <= 0:
                return
            data = data[n:]
    except OSError:
        pass


def _num(v, what, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SetupError("%s must be a number" % what)
    if not lo <= v <= hi:
        raise SetupError("%s must be from %g to %g" % (what, lo, hi))
    return float(v)


def normalize(doc, where):
    """Check a set-up section; returns (commands, services)."""
    if doc is None:
        return [], []
    if not isinstance(doc, dict):
        raise SetupError("%s: the set-up must be a table/object" % where)
    for k in doc:
        if k not in ("commands", "services"):
            raise SetupError("%s: unknown key '%s' (commands, services)" % (where, k))
    cmds = doc.get("commands", [])
    if not isinstance(cmds, list) or len(cmds) > MAX_COMMANDS or not all(
            isinstance(c, str) and 0 < len(c) <= MAX_CMD for c in cmds):
        raise SetupError("%s: commands must be a list of at most %d non-empty strings"
                         % (where, MAX_COMMANDS))
    svcs = doc.get("services", [])
    if not isinstance(svcs, list) or len(svcs) > MAX_SERVICES:
        raise SetupError("%s: services must be a list of at most %d tables"
                         % (where, MAX_SERVICES))
    out = []
    for i, s in enumerate(svcs):
        if not isinstance(s, dict):
            raise SetupError("%s: service %d is not a table" % (where, i + 1))
        for k in s:
            if k not in ("name", "command", "ready", "timeout"):
                raise SetupError("%s: service %d: unknown key '%s'" % (where, i + 1, k))
        name = s.get("name", "service-%d" % (i + 1))
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise SetupError("%s: service %d: name must be 1 to 64 of A-Z a-z 0-9 _ . -"
                             % (where, i + 1))
        cmd = s.get("command")
        if not isinstance(cmd, str) or not 0 < len(cmd) <= MAX_CMD:
            raise SetupError("%s: service '%s' needs a command" % (where, name))
        ready = s.get("ready", {"delay": 1})
        if not isinstance(ready, dict) or len(ready) != 1 or not (
                "port" in ready or "delay" in ready):
            raise SetupError("%s: service '%s': ready must be {port = N} or {delay = S}"
                             % (where, name))
        if "port" in ready:
            p = ready["port"]
            if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
                raise SetupError("%s: service '%s': ready.port must be 1 to 65535"
                                 % (where, name))
            ready = {"port": p}
        else:
            ready = {"delay": _num(ready["delay"], "%s: service '%s': ready.delay"
                                   % (where, name), 0, MAX_TIMEOUT)}
        timeout = _num(s.get("timeout", DEFAULT_TIMEOUT), "%s: service '%s': timeout"
                       % (where, name), 1, MAX_TIMEOUT)
        out.append({"name": name, "command": cmd, "ready": ready, "timeout": timeout})
    return list(cmds), out


def _read(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not os.path.isfile("/proc/self/fd/%d" % fd):
            raise SetupError("%s is not a regular file" % path)
        data = os.read(fd, MAX_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise SetupError("%s is larger than 1 MiB" % path)
    return data


def load():
    """The evaluation's set-up, then the project's (a project service named
    like an evaluation service is left out: the evaluation's wins)."""
    cmds, svcs = [], []
    if os.path.lexists(EVAL_FILE):
        try:
            doc = json.loads(_read(EVAL_FILE).decode("utf-8"))
        except (OSError, ValueError) as e:
            raise SetupError("cannot read the evaluation's set-up: %s" % e)
        c, s = normalize(doc.get("setup") if isinstance(doc, dict) else None,
                         "evaluation setup")
        cmds += c
        svcs += s
    for name in PROJECT_FILES:
        if not os.path.lexists(name):
            continue
        try:
            data = _read(name).decode("utf-8")
            if name.endswith(".toml"):
                import tomllib
                doc = tomllib.loads(data)
            else:
                doc = json.loads(data)
        except SetupError:
            raise
        except Exception as e:
            raise SetupError("%s: %s" % (name, " ".join(str(e).split())))
        c, s = normalize(doc, name)
        cmds += c
        taken = {x["name"] for x in svcs}
        svcs += [x for x in s if x["name"] not in taken]
        break
    return cmds, svcs


def _tail(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else ""


def _status(rc):
    return "killed by signal %d" % -rc if rc < 0 else "status %d" % rc


def _last_line(data):
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else ""


def _pump_stderr(pipe, tail):
    """Pass the command's stderr on (the node caps it); keep its last bytes."""
    while True:
        try:
            chunk = os.read(pipe.fileno(), 65536)
        except OSError:
            break
        if not chunk:
            break
        tail[0] = (tail[0] + chunk)[-STDERR_TAIL:]
        try:
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()
        except OSError:
            pass


def run_commands(cmds, budget):
    """Run every command in order, all within budget seconds."""
    deadline = time.monotonic() + budget
    for i, cmd in enumerate(cmds):
        tail = [b""]
        p = subprocess.Popen(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        t = threading.Thread(target=_pump_stderr, args=(p.stderr, tail), daemon=True)
        t.start()
        try:
            rc = p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            raise SetupError("set-up command %d timed out (%g s for all set-up commands)"
                             % (i + 1, budget))
        finally:
            t.join(1.0)
        if rc != 0:
            last = _last_line(tail[0])
            how = "exit %d" % rc if rc > 0 else "killed by signal %d" % -rc
            raise SetupError("set-up command %d failed (%s)%s" % (
                i + 1, how, ": " + last if last else ""))


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_services(svcs, running):
    for s in svcs:
        log = os.path.join(LOG_DIR, "meshtest-service-%s.log" % s["name"])
        out = open(log, "wb")
        try:
            p = subprocess.Popen(["/bin/sh", "-c", s["command"]], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        finally:
            out.close()
        running.append(p)
        start = time.monotonic()
        ready = s["ready"]
        limit = s["timeout"]
        while True:
            rc = p.poll()
            if rc is not None and (rc != 0 or "port" in ready):
                last = _tail(log)
                raise SetupError("service '%s' exited with %s before it was ready%s" % (
                    s["name"], _status(rc), ": " + last if last else ""))
            waited = time.monotonic() - start
            if "port" in ready:
                if _port_open(ready["port"]):
                    break
                if waited >= limit:
                    raise SetupError("service '%s' not ready after %g s (nothing accepts "
                                     "connections on port %d)" %
                                     (s["name"], limit, ready["port"]))
            elif waited >= ready["delay"]:
                break
            time.sleep(0.1)


def stop_services(running):
    for p in running:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(1)
        except subprocess.TimeoutExpired:
            pass


def _fail(e):
    msg = " ".join(str(e).split())
    _report({"ev": "setup_error", "message": msg})
    sys.stderr.write("meshtest: %s\n" % msg)
    return 3


def main_commands(budget):
    try:
        cmds, _ = load()
        run_commands(cmds, budget)
    except SetupError as e:
        return _fail(e)
    return 0


def main():
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "--commands":
        try:
            budget = float(argv[1])
        except ValueError:
            budget = COMMAND_BUDGET
        return main_commands(budget)
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write("usage: meshtest_supervisor.py --commands <seconds> | "
                         "-- <command>...\n")
        return 2
    running = []
    child = None
    try:
        try:
            _, svcs = load()  # the commands ran once, after fetching
            start_services(svcs, running)
        except SetupError as e:
            return _fail(e)
        env = dict(os.environ)
        if _KEY is not None:
            env["MESHTEST_REPORT_KEY"] = _KEY
        child = subprocess.Popen(argv[1:], pass_fds=(3,) if _has_fd3() else (), env=env)
        rc = child.wait()
    finally:
        stop_services(running)
    if rc < 0:
        # die the way pytest died, so the node sees the same signal
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            signal.signal(-rc, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP cannot be changed, nor caught
        os.kill(os.getpid(), -rc)
        time.sleep(1)
        return 128 - rc
    return rc


def _has_fd3():
    try:
        os.fstat(3)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
