# meshtest_worker.py - a warm pytest worker: one per slot and environment.
#
#   <env python> meshtest_worker.py        (fd 3: the control socket)
#
# Started by the node (worker.c) inside the slot's bubblewrap sandbox, as the
# slot's uid, with the environment's interpreter. It imports pytest and the
# installed pytest plugins once, makes itself non-dumpable (so no run can
# ptrace it or read its memory through /proc), and then runs one pytest
# process per request, each in a fresh child forked from it (the zygote
# pattern). The worker never runs submitted code itself.
#
# Control socket (AF_UNIX, SOCK_SEQPACKET, one JSON object per message):
#   worker -> node  {"ev": "ready", "pytest", "python", "preloaded": [names],
#                    "ns": bool, "overlay": bool, "why": str}
#   node -> worker  {"op": "run", "id", "argv", "env", "path", "cwd", "lower",
#                    "scratch", "keep": [folders], "services": bool,
#                    "fresh": bool}
#                   with three descriptors attached: stdout, stderr, report
#   worker -> node  {"ev": "exit", "id", "status", "signal", "leftover",
#                    "rss_kb"} once the child has ended
#   node -> worker  {"op": "stop"} (or the socket closes): the worker exits
#
# Each child, before any submitted code runs: its own session, default
# signal dispositions, its own user, mount, network, IPC and UTS namespaces
# (a fresh loopback, nothing left by an earlier run), the project mounted at
# cwd as an overlay over the slot's pristine copy (writes go to the run's
# scratch folder and vanish with it), the run's own /tmp, no capabilities,
# descriptors 0-3 only (stdin /dev/null, stdout, stderr, the report pipe),
# the run's environment, sys.path and sys.argv as `python -m pytest` would
# have them. Then it calls pytest.main once and exits; or, when the project
# has a top-level name the worker already imported (the checkout must win),
# or the request asks for it, it execs a fresh interpreter instead.
#
# The worker is pid 1 of its sandbox (bwrap --as-pid-1): a run's process is
# its child and sees it as its parent, but pid 1 takes no signal from inside
# its namespace, so no run can kill or stop it; being non-dumpable, it cannot
# be traced or read either. As pid 1 it reaps whatever runs leave behind.
# The worker forks only while single-threaded and keeps no state between
# runs. The node enforces every deadline by killing the whole sandbox.
import os
import sys

_STARTUP = {n.split(".")[0] for n in sys.modules}

import gc  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402

import meshtest_each as each  # noqa: E402
import meshtest_plugin  # noqa: E402
import meshtest_sandbox as sandbox  # noqa: E402
import meshtest_supervisor  # noqa: E402
from meshtest_sandbox import MS_NODEV, MS_NOSUID, PR_SET_DUMPABLE, SetupFailed  # noqa: E402

CTL_FD = 3
MSG_MAX = 1 << 20
EXIT_SETUP = 121          # the child could not set up its sandbox


def _top_level_names(cwd):
    names = set()
    for d in (os.path.join(cwd, "src"), cwd):
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            n = e.name
            if n.startswith("."):
                continue
            if n.endswith(".py"):
                names.add(n[:-3])
            elif e.is_dir(follow_symlinks=False):
                names.add(n)
            elif n.endswith((".so", ".pyd")):
                names.add(n.split(".")[0])
    return names


def _preloaded():
    mine = {n.split(".")[0] for n in sys.modules}
    return mine - _STARTUP - set(sys.builtin_module_names)


# ------------------------------------------------------------ pytest, warm

# The arguments every run starts with (the node adds the rest); the prebuilt
# configuration holds what they decide before any project is seen.
BASE_ARGS = ["-p", "meshtest_plugin", "-p", "no:cacheprovider"]
_PREBUILT = None


def _prebuild():
    """What every pytest.main does first, done once here: a plugin manager
    with the built-in plugins imported and registered, the installed plugins
    (the pytest11 entry points) loaded, and a fresh Config around it. Each
    child then hands this to pytest.main in place of building its own
    (_use_prebuilt). Only for the pytest versions whose internals this
    follows (7 and 8); others run pytest.main as it comes."""
    global _PREBUILT
    try:
        import _pytest.config as pc
        major = int(str(pytest.__version__).split(".")[0])
        if major not in (7, 8) or not hasattr(pc, "get_config"):
            return
        cfg = pc.get_config(args=list(BASE_ARGS))
        pm = cfg.pluginmanager
        # a trusted worker (trust "instructor") imports no plugin of the environment
        if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            pm.load_setuptools_entrypoints("pytest11")
        pm.import_plugin("meshtest_plugin")
        _memo_argparser(cfg._parser)
        _memo_fixture_scan(pm.get_plugins())
        _PREBUILT = cfg
    except Exception:  # noqa: BLE001 - then every run builds its own
        _PREBUILT = None


def _memo_argparser(parser):
    """pytest builds its argparse parser from scratch for every parse (six
    times a run); build it once per set of options instead. A conftest that
    adds an option changes the set, and the next parse builds anew."""
    build = type(parser)._getparser
    memo = {}

    def key():
        groups = parser._groups + [parser._anonymous]
        return (len(groups), tuple(len(g.options) for g in groups),
                tuple(sorted(parser.extra_info.items(), key=str)), parser.prog)

    def getparser():
        k = key()
        if k not in memo:
            memo.clear()
            memo[k] = build(parser)
        return memo[k]

    getparser()
    parser._getparser = getparser


def _memo_fixture_scan(plugins):
    """Every session's fixture manager scans each registered plugin module
    for fixtures (FixtureManager.parsefactories: a getattr and a marker test
    per name, a third of a trivial run's time). The modules loaded here are
    the same objects in every child: scan them once and let the loop of
    parsefactories, which asks dir() for the names, see only the names that
    hold fixtures. Anything else (a project's conftest, a test module, an
    object) goes through the real dir(). Only where parsefactories is the
    loop this copies the test of."""
    import inspect
    import types
    import builtins
    import _pytest.fixtures as fx
    from _pytest.compat import safe_getattr
    try:
        src = inspect.getsource(fx.FixtureManager.parsefactories)
    except (OSError, TypeError):
        return
    if ("dir(holderobj)" not in src or "getfixturemarker(obj)" not in src
            or not hasattr(fx, "FixtureFunctionMarker")):
        return
    memo = {}
    for plugin in plugins:
        if not isinstance(plugin, types.ModuleType):
            continue
        names = [n for n in builtins.dir(plugin)
                 if isinstance(fx.getfixturemarker(safe_getattr(plugin, n, None)),
                               fx.FixtureFunctionMarker)]
        memo[id(plugin)] = (plugin, names)
    real_dir = builtins.dir

    def fixture_dir(obj):
        hit = memo.get(id(obj))
        if hit is not None and hit[0] is obj:
            return list(hit[1])
        return real_dir(obj)

    fx.dir = fixture_dir


def _memo_hook_varnames():
    """Each session registers a handful of fresh plugin objects (the session,
    its fixture manager, the terminal reporter, ...), and pluggy reads the
    signature of every hook method of each (inspect, for every run anew).
    Their classes are the same in every child: read each signature once,
    here, for the hook methods of the classes of every module loaded, and
    keep pluggy's answer per function."""
    import inspect
    import types
    try:
        import pluggy._hooks as ph
        real = ph.varnames
    except (ImportError, AttributeError):
        return
    memo = {}

    def varnames(func):
        if inspect.ismethod(func) and inspect.isfunction(func.__func__):
            fn, bound = func.__func__, True
        elif inspect.isfunction(func):
            fn, bound = func, False
        else:
            return real(func)
        hit = memo.get((fn, bound))
        if hit is None or hit[0] is not fn.__code__:
            hit = memo[(fn, bound)] = (fn.__code__, real(func))
        return hit[1]

    def warm(fn, bound):
        try:
            varnames(types.MethodType(fn, holder) if bound else fn)
        except Exception:  # noqa: BLE001 - then it is read when used
            pass

    # hook implementations (bound methods) and specifications (plain
    # functions, in modules and in classes) alike
    holder = object()
    for mod in list(sys.modules.values()):
        for name, obj in list(getattr(mod, "__dict__", {}).items()):
            if name.startswith("pytest_") and inspect.isfunction(obj):
                warm(obj, False)
            if not isinstance(obj, type) or obj.__module__ != getattr(mod, "__name__", None):
                continue
            for name, fn in list(vars(obj).items()):
                if name.startswith("pytest_") and inspect.isfunction(fn):
                    warm(fn, True)
                    warm(fn, False)
    ph.varnames = varnames


def _use_prebuilt(run_path):
    """In a child: make pytest.main take the prebuilt configuration. Plugin
    discovery looks only at what the zygote did not see: distributions on
    the run's own path entries (a project that ships a plugin)."""
    if _PREBUILT is None:
        return
    import importlib.metadata as md
    from pathlib import Path
    import _pytest.config as pc
    cfg, pm = _PREBUILT, _PREBUILT.pluginmanager

    def get_config(args=None, plugins=None):
        cfg.invocation_params = pc.Config.InvocationParams(
            args=args or (), plugins=plugins, dir=Path.cwd())
        if args is not None:
            pm.consider_preparse(args, exclude_only=True)
        return cfg

    def load_entrypoints(group, name=None):
        count = 0
        for dist in md.distributions(path=list(run_path)):
            for ep in dist.entry_points:
                if (ep.group != group or (name is not None and ep.name != name)
                        or pm.get_plugin(ep.name) or pm.is_blocked(ep.name)):
                    continue
                pm.register(ep.load(), name=ep.name)
                count += 1
        return count

    def mark_plugins_for_rewrite(hook):
        pm.rewrite_hook = hook   # the installed plugins were imported already

    pc.get_config = get_config
    pm.load_setuptools_entrypoints = load_entrypoints
    cfg._mark_plugins_for_rewrite = mark_plugins_for_rewrite


def _warm_imports(base):
    """Run pytest once in a child over a one-test project and import here
    what it imported on the way (plugins load parts of themselves lazily),
    so that no run pays for those imports again."""
    proj = os.path.join(base, "warm")
    try:
        os.makedirs(os.path.join(proj, "tests"), exist_ok=True)
        with open(os.path.join(proj, "tests", "test_warm.py"), "w") as f:
            f.write("def test_warm():\n    assert True\n")
    except OSError:
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            devnull = os.open("/dev/null", os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(proj)
            before = set(sys.modules)
            _use_prebuilt([proj])
            pytest.main(BASE_ARGS + ["-q", "--rootdir=" + proj, "tests/test_warm.py"])
            new = [n for n in set(sys.modules) - before
                   if getattr(sys.modules.get(n), "__file__", None)
                   and not str(sys.modules[n].__file__).startswith(proj)]
            os.write(w, json.dumps(sorted(new)).encode())
        except BaseException:  # noqa: BLE001
            pass
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    sandbox.rmtree(proj)
    try:
        names = json.loads(data.decode() or "[]")
    except ValueError:
        names = []
    import importlib
    for n in names:
        try:
            importlib.import_module(n)
        except BaseException:  # noqa: BLE001 - a module that will not import here is left
            pass


def _enter_run(req, fds, caps, zygote=False):
    """The start of every child: its own session, default signal
    dispositions, descriptors 0-3 only, its own
    namespaces, /tmp and view of the project, no capabilities, the project
    as working folder. A zygote (meshtest_each.py) goes on as pid 1 of a
    pid namespace of its own. A failure here is the worker's, not the
    module's: reported as worker_error, exit EXIT_SETUP."""
    try:
        # dumpable again (the worker is not): our own /proc files, uid_map
        # included, must be ours to write
        sandbox.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        os.setsid()
        for sig in signal.valid_signals():
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)       # as a fresh interpreter
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        # descriptors first: a setup failure is then reported on the pipe
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.dup2(fds[2], 3)
        os.closerange(4, 65536)
        meshtest_plugin.configure(3, req.get("key"))
        meshtest_supervisor.configure_report(req.get("key"))
        scratch = req["scratch"]
        sandbox.mkdirs(scratch, ("tmp", "home"))
        if caps["ns"]:
            sandbox.enter(req, caps["overlay"], pid=zygote)
        else:
            os.chdir(req["cwd"])
    except SetupFailed as e:
        meshtest_plugin.emit({"ev": "worker_error", "message": str(e)})
        os._exit(EXIT_SETUP)
    except BaseException as e:  # noqa: BLE001 - anything here is the worker's fault
        meshtest_plugin.emit({"ev": "worker_error", "message": "cannot prepare the run: %r" % e})
        os._exit(EXIT_SETUP)


def _set_env(req):
    env = {str(k): str(v) for k, v in req["env"].items()}
    os.environ.clear()
    os.environ.update(env)
    meshtest_supervisor.LOG_DIR = env.get("TMPDIR") or "/tmp"
    return env


def _run_path(req):
    """sys.path as `python -m pytest` has it: the working folder first, then
    PYTHONPATH, then the interpreter's own."""
    sys.path[:] = [req["cwd"]] + [str(p) for p in req.get("path", [])] + _BASE_PATH
    return sys.path[:1 + len(req.get("path", []))]


def _with_services(req, run):
    """run() between the project's services (started, then stopped), as the
    supervisor does for a cold run; returns its exit status."""
    rc = 1
    running = []
    try:
        if req.get("services"):
            try:
                _, svcs = meshtest_supervisor.load()
                meshtest_supervisor.start_services(svcs, running)
            except meshtest_supervisor.SetupError as e:
                meshtest_supervisor.stop_services(running)
                running = []
                return meshtest_supervisor._fail(e)
        rc = int(run())
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - as an interpreter would: print and fail
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        if running:
            meshtest_supervisor.stop_services(running)
    return rc


def _child(req, fds, caps):
    """In the forked child: build the run's sandbox and run pytest. Never
    returns."""
    modules = [str(m) for m in req.get("modules") or []] if caps.get("each") else []
    _enter_run(req, fds, caps, zygote=bool(modules))
    if modules:
        each.own_output()
    env = _set_env(req)
    argv = [str(a) for a in req["argv"]]
    fresh = bool(req.get("fresh")) or bool(_top_level_names(req["cwd"]) & _preloaded())
    if fresh:
        if modules:   # isolation "module": each in a fresh interpreter of its own
            module = each.fork_each(req, caps)
            argv = [a for a in argv if a not in modules] + [module]
        try:
            if req.get("key"):
                env = dict(env, MESHTEST_REPORT_KEY=str(req["key"]))
            os.execve(sys.executable, [sys.executable, "-m", "pytest"] + argv, env)
        except OSError as e:
            meshtest_plugin.emit({"ev": "worker_error",
                                  "message": "cannot start a fresh interpreter: %s" % e})
            os._exit(EXIT_SETUP)
    own = _run_path(req)
    sys.argv[:] = [pytest_main_file()] + argv
    if argv[:len(BASE_ARGS)] == BASE_ARGS:
        _use_prebuilt(own)
    # isolation "module": pytest starts here once, each module runs in a child of its own
    plugins = [each.plugin(req, caps)] if modules else []
    _flush_exit(_with_services(req, lambda: pytest.main(argv, plugins=plugins)))


def _flush_exit(rc):
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(rc & 0xff)


def pytest_main_file():
    return os.path.join(os.path.dirname(pytest.__file__), "__main__.py")


def _reap():
    """Collect orphans of earlier runs (we are pid 1)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def _leftovers():
    """Processes of this sandbox other than us: what a run left behind."""
    _reap()
    me = os.getpid()
    return sum(1 for name in os.listdir("/proc") if name.isdigit() and int(name) != me)


def _rss_kb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _probe():
    """Can children make their own namespaces and overlays here? Tried in a
    child, as every run does."""
    base = os.environ.get("MESHTEST_PROBE_DIR")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = {"ns": False, "overlay": False, "why": ""}
        sandbox.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        try:
            sandbox.own_namespaces()
            out["ns"] = True
            if base:
                for d in ("lower", "upper", "work", "merged"):
                    os.makedirs(os.path.join(base, d), exist_ok=True)
                sandbox.mount("overlay", base + "/merged", "overlay", MS_NOSUID | MS_NODEV,
                       "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work,userxattr" %
                       (base, base, base))
                out["overlay"] = True
            sandbox.private_shm()
            sandbox.loopback_up()
            sandbox.drop_capabilities()
        except SetupFailed as e:
            out["why"] = str(e)
        except OSError as e:
            out["why"] = str(e)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if base:
        sandbox.rmtree(base)
    try:
        return json.loads(data.decode())
    except ValueError:
        return {"ns": False, "overlay": False, "why": "the probe died"}


def _send(sock, obj):
    sock.send(json.dumps(obj).encode())


def _finish(sock, req, ended):
    """Tell the node how a run ended, then clear its scratch folder."""
    msg = {"ev": "exit", "id": req.get("id"), "leftover": _leftovers(),
           "rss_kb": _rss_kb()}
    msg.update(ended)
    _send(sock, msg)
    _clear_scratch(req.get("scratch"))


def _clear_scratch(scratch):
    """Remove a run's scratch folder and those of its modules' children
    (scratch.<k>, meshtest_each.py)."""
    if not scratch:
        return
    sandbox.rmtree(scratch)
    parent, base = os.path.split(scratch)
    try:
        names = os.listdir(parent)
    except OSError:
        names = []
    for n in names:
        if n.startswith(base + "."):
            sandbox.rmtree(os.path.join(parent, n))


def _fork(sock, req, fds):
    gc.collect()
    gc.freeze()
    try:
        return os.fork()
    except OSError as e:
        for fd in fds:
            os.close(fd)
        _send(sock, {"ev": "exit", "id": req.get("id"), "status": None, "signal": None,
                     "error": "fork failed: %s" % e, "leftover": 0, "rss_kb": _rss_kb()})
        return None


def _run(sock, req, fds, caps):
    # the slot's run folder is writable to runs: an earlier one may have
    # planted this run's scratch folder (its /tmp, home, overlay upper)
    _clear_scratch(req.get("scratch"))
    pid = _fork(sock, req, fds)
    if pid is None:
        return
    if pid == 0:
        sock.close()
        _child(req, fds, caps)
    for fd in fds:
        os.close(fd)
    _finish(sock, req, sandbox.wait_end(pid))


def main():
    global pytest, _BASE_PATH
    sock = socket.socket(fileno=CTL_FD)
    # as pid 1, a signal with a handler would reach us from a run: none here
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    import pytest  # noqa: F401 - the expensive part, done once
    _prebuild()
    _BASE_PATH = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    sandbox.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    caps = _probe()
    caps["each"] = caps["ns"] and each.probe()
    if os.environ.get("MESHTEST_PROBE_DIR"):
        _warm_imports(os.environ["MESHTEST_PROBE_DIR"])
    _memo_hook_varnames()
    _send(sock, {"ev": "ready", "pytest": getattr(pytest, "__version__", "?"),
                 "python": "%d.%d.%d" % sys.version_info[:3],
                 "preloaded": sorted(_preloaded()), "ns": caps["ns"],
                 "overlay": caps["overlay"], "each": caps["each"], "why": caps["why"]})
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MSG_MAX, 3)
        except InterruptedError:
            continue
        except OSError:
            return 0
        if not msg:
            return 0
        try:
            req = json.loads(msg.decode())
        except ValueError:
            req = {}
        if req.get("op") != "run" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return 0 if req.get("op") == "stop" else 2
        _run(sock, req, fds, caps)


pytest = None
_BASE_PATH = []

if __name__ == "__main__":
    sys.exit(main())
