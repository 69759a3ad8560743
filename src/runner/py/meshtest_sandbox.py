# meshtest_sandbox.py - the pieces of a run's sandbox that a warm worker's
# children build for themselves, inside the slot's bubblewrap sandbox: their
# own user, mount, network, IPC and UTS namespaces, their own /tmp, a view of
# the project that their writes never leave, a loopback of their own, no
# capabilities. Used by meshtest_worker.py (one run per child) and
# meshtest_each.py (one module per grandchild). A failure raises SetupFailed
# with a one-line reason: the worker's fault, never the module's.
import ctypes
import errno
import fcntl
import os
import shutil
import socket
import struct

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 1

libc = ctypes.CDLL(None, use_errno=True)


class SetupFailed(Exception):
    pass


def _call(fn, *args):
    if fn(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _b(s):
    return None if s is None else s.encode()


def mount(src, dst, fstype, flags, data):
    try:
        _call(libc.mount, _b(src), _b(dst), _b(fstype), ctypes.c_ulong(flags),
              _b(data))
    except OSError as e:
        raise SetupFailed("cannot mount %s on %s: %s" % (fstype or src, dst, e.strerror))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def own_namespaces(pid=False):
    """Enter fresh user, mount, network, IPC and UTS namespaces, keeping our
    uid and gid (mapped to themselves); with pid, our next child is the
    first process of a fresh pid namespace (own_init)."""
    uid, gid = os.getuid(), os.getgid()
    try:
        _call(libc.unshare, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
              CLONE_NEWUTS | (CLONE_NEWPID if pid else 0))
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", "%d %d 1" % (uid, uid))
        _write("/proc/self/gid_map", "%d %d 1" % (gid, gid))
    except OSError as e:
        raise SetupFailed("cannot make the run's namespaces: %s" % e.strerror)
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)


def own_init():
    """After own_namespaces(pid=True): fork; the parent waits for the child
    and exits as it did, the child goes on as pid 1 of the new namespace,
    with a /proc of its own. pid 1 takes no signal from the processes it
    starts, and they see no process outside their namespace."""
    pid = os.fork()
    if pid != 0:
        end = wait_end(pid)
        os._exit(end["status"] if end["status"] is not None else 128 + end["signal"])
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)


def wait_end(pid):
    """Wait for a child; how it ended, as the protocol's fields: "status"
    (its exit status, or None) and "signal" (the signal that ended it, or None)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    return {"status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}


def private_shm():
    """A /dev/shm of its own (POSIX shared memory, multiprocessing's
    semaphores): the sandbox's /dev is the worker's, shared by every run."""
    if os.path.isdir("/dev/shm"):
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=1777,size=64m")


def loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14s", b"lo", 0, b""))
        flags = struct.unpack("16sH14s", ifr)[1] | IFF_UP
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags, b""))
    except OSError as e:
        raise SetupFailed("cannot bring up the run's loopback: %s" % e.strerror)
    finally:
        s.close()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    """No capabilities left, not even in the run's own user namespace."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break
            raise SetupFailed("cannot drop capability %d" % cap)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    try:
        _call(libc.capset, ctypes.byref(hdr), data)
    except OSError as e:
        raise SetupFailed("cannot drop capabilities: %s" % e.strerror)


def mkdirs(scratch, names):
    for n in names:
        os.makedirs(os.path.join(scratch, n), mode=0o700, exist_ok=True)


def project_view(req, use_overlay):
    """Mount the project at cwd: an overlay over the pristine copy, or (no
    overlay here) a private copy of it bound there."""
    cwd, lower, scratch = req["cwd"], req.get("lower"), req["scratch"]
    if lower is None:
        return
    if use_overlay:
        mkdirs(scratch, ("upper", "work"))
        mount("overlay", cwd, "overlay", MS_NOSUID | MS_NODEV,
               "lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr" %
               (lower, scratch, scratch))
    else:
        copy = os.path.join(scratch, "copy")
        try:
            shutil.copytree(lower, copy, symlinks=True)
        except (OSError, shutil.Error) as e:
            raise SetupFailed("cannot copy the project: %s" % e)
        mount(copy, cwd, None, MS_BIND | MS_REC, None)


def private_tmp(scratch, keep):
    """The run's own /tmp (scratch/tmp), with the folders of keep that lie
    under the old /tmp (the node's work folder, in tests) bound back in."""
    under = sorted({p.rstrip("/") for p in keep if p.startswith("/tmp/")})
    under = [p for p in under if not any(p.startswith(q + "/") for q in under)]
    held = []
    try:
        for p in under:     # reachable through these once /tmp is covered
            held.append((p, os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
    except OSError as e:
        raise SetupFailed("cannot keep %s in the run's /tmp: %s" % (p, e.strerror))
    mount(os.path.join(scratch, "tmp"), "/tmp", None, MS_BIND | MS_REC, None)
    for p, fd in held:
        try:
            os.makedirs(p, mode=0o700, exist_ok=True)
        except OSError as e:
            raise SetupFailed("cannot keep %s in the run's /tmp: %s" % (p, e.strerror))
        mount("/proc/self/fd/%d" % fd, p, None, MS_BIND | MS_REC, None)
        os.close(fd)
        # the folders bwrap made for its mount points live in the worker's
        # /tmp: read-only here, or a run could leave files for the next one
        keep_flags = os.statvfs(p).f_flag & (MS_NOSUID | MS_NODEV | 8 | 1024 | 2048 | 4096)
        mount(None, p, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep_flags, None)


def rmtree(path):
    """Remove a run's scratch folder, also the overlay's unreadable work/work."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    if st.st_mode & 0o700 != 0o700:
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
    try:
        names = os.listdir(path)
    except OSError:
        names = []
    for n in names:
        rmtree(os.path.join(path, n))
    try:
        os.rmdir(path)
    except OSError:
        pass


def enter(req, overlay, pid=False, fresh=None):
    """All of a run's sandbox (req: the worker's "run" request): its own
    namespaces, /tmp, view of the project (an overlay, or a copy when
    overlay is false) and loopback, no capabilities, the project as working
    folder. fresh: a folder bound over the scratch folder first (a module's
    child in a zygote: new /tmp, home and overlay at the same paths). pid:
    go on as pid 1 of a pid namespace of its own (own_init)."""
    scratch = req["scratch"]
    own_namespaces(pid=pid)
    if fresh is not None:
        mount(fresh, scratch, None, MS_BIND | MS_REC, None)
        mkdirs(scratch, ("tmp", "home"))
    private_tmp(scratch, req.get("keep", []))
    private_shm()
    project_view(req, overlay)
    loopback_up()
    if pid:
        own_init()
    drop_capabilities()
    os.chdir(req["cwd"])

