/*
 * launch.c - start one child process with dropped privileges and limits,
 * supervise it to its end or its deadline, and collect capped output.
 *
 * Every piece of submitted code (pytest, pip, venv creation, later services)
 * starts in launch_run, so isolation is decided in one place. Called from any
 * thread, at the same time: all descriptors are O_CLOEXEC, no signal handlers
 * are used, and each call waits for its own pid only (through a pidfd).
 *
 * The child runs in a new session whose process group is killed when the
 * child ends or times out; with a separate uid, launch_kill_uid also catches
 * processes that left the group.
 */
#include "runner/launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "runner/sandbox.h"

#define LAUNCH_DRAIN_SECONDS 2.0
#define LAUNCH_KILL_SECONDS 1.0

/* Where the child failed before exec, sent through the error pipe. */
enum launch_stage { LS_SETUP = 1, LS_LIMIT, LS_CRED, LS_CHDIR, LS_EXEC };

struct launch_child_error {
	int stage;
	int err;
};

void
launch_limits_default(struct launch_limits *l)
{
	l->as_bytes = (rlim_t)4 << 30;
	l->nproc = 512;
	l->nofile = 1024;
	l->fsize_bytes = (rlim_t)1 << 30;
	l->cpu_seconds = 0;
}

static void
launch_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* In the child: set one limit, never above the current hard limit unless allowed. */
static int
launch_child_limit(int resource, rlim_t value)
{
	struct rlimit rl;

	if (value == 0)
		return 0;
	rl.rlim_cur = value;
	rl.rlim_max = value;
	if (setrlimit(resource, &rl) == 0)
		return 0;
	if (getrlimit(resource, &rl) < 0)
		return -1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < value)
		value = rl.rlim_max;
	rl.rlim_cur = value;
	return setrlimit(resource, &rl);
}

static _Noreturn void
launch_child_fail(int ep, int stage)
{
	struct launch_child_error e = { stage, errno };
	ssize_t w = write(ep, &e, sizeof(e));
	(void)w;
	_exit(127);
}

/* Move fd out of the way of 0..4 (as a CLOEXEC duplicate); -1 stays -1. */
static int
launch_child_high(int fd)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 16);
}

/* dup2 (the copy has no FD_CLOEXEC); from is always >= 16, never equal to to. */
static int
launch_child_dup(int from, int to)
{
	return dup2(from, to) < 0 ? -1 : 0;
}

/*
 * The child between fork and exec: async-signal-safe calls only. Credentials
 * go through raw syscalls so glibc's multi-thread setxid machinery, whose
 * state was copied from the forking process, is never involved.
 */
static _Noreturn void
launch_child(const struct launch_spec *spec, char *const *argv, int in_fd, int out_fd,
	     int err_fd, int rep_fd, int ep, pid_t parent)
{
	struct sigaction sa;
	sigset_t none;

	/* Everything to fds >= 16 first, so the dups below clobber nothing. */
	if (in_fd < 0)
		in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	in_fd = launch_child_high(in_fd);
	out_fd = launch_child_high(out_fd);
	err_fd = launch_child_high(err_fd);
	rep_fd = launch_child_high(rep_fd);
	ep = launch_child_high(ep);
	if (ep < 0 || dup3(ep, 4, O_CLOEXEC) < 0)
		_exit(127);
	ep = 4;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || setsid() < 0)
		launch_child_fail(ep, LS_SETUP);

	if (launch_child_limit(RLIMIT_AS, spec->lim.as_bytes) < 0 ||
	    launch_child_limit(RLIMIT_NPROC, spec->lim.nproc) < 0 ||
	    launch_child_limit(RLIMIT_NOFILE, spec->lim.nofile) < 0 ||
	    launch_child_limit(RLIMIT_FSIZE, spec->lim.fsize_bytes) < 0 ||
	    launch_child_limit(RLIMIT_CPU, spec->lim.cpu_seconds) < 0)
		launch_child_fail(ep, LS_LIMIT);
	struct rlimit nocore = { 0, 0 };
	if (setrlimit(RLIMIT_CORE, &nocore) < 0)
		launch_child_fail(ep, LS_LIMIT);

	if (in_fd < 0 || out_fd < 0 || err_fd < 0 ||
	    launch_child_dup(in_fd, 0) < 0 || launch_child_dup(out_fd, 1) < 0 ||
	    launch_child_dup(err_fd, 2) < 0)
		launch_child_fail(ep, LS_SETUP);
	if (rep_fd >= 0) {
		if (launch_child_dup(rep_fd, 3) < 0)
			launch_child_fail(ep, LS_SETUP);
	} else {
		close(3);
	}
	util_close_from(5);

	if (spec->uid != (uid_t)-1) {
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, spec->gid, spec->gid, spec->gid) < 0 ||
		    syscall(SYS_setresuid, spec->uid, spec->uid, spec->uid) < 0)
			launch_child_fail(ep, LS_CRED);
	}
	/* PDEATHSIG after the uid change: changing credentials clears it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		launch_child_fail(ep, LS_CRED);
	if (getppid() != parent)
		_exit(127);
	if (spec->cwd != NULL && chdir(spec->cwd) < 0)
		launch_child_fail(ep, LS_CHDIR);
	execve(argv[0], argv, (char *const *)spec->envp);
	launch_child_fail(ep, LS_EXEC);
}

static void
launch_start_error(const struct launch_spec *spec, const char *path,
		   const struct launch_child_error *e, char *why, size_t whylen)
{
	const char *msg = strerrordesc_np(e->err);

	if (msg == NULL)
		msg = "unknown error";
	switch (e->stage) {
	case LS_EXEC:
		snprintf(why, whylen, "cannot execute %s: %s", path, msg);
		break;
	case LS_CRED:
		snprintf(why, whylen, "cannot switch to uid %ld: %s", (long)spec->uid, msg);
		break;
	case LS_LIMIT:
		snprintf(why, whylen, "cannot set resource limits: %s", msg);
		break;
	case LS_CHDIR:
		snprintf(why, whylen, "cannot enter %s: %s", spec->cwd, msg);
		break;
	default:
		snprintf(why, whylen, "cannot set up the child process: %s", msg);
		break;
	}
}

void
launch_proc_close(struct launch_proc *p)
{
	launch_close(&p->in);
	launch_close(&p->out);
	launch_close(&p->err);
	launch_close(&p->rep);
	launch_close(&p->pidfd);
}

int
launch_start(const struct launch_spec *spec, struct launch_proc *p, char *why, size_t whylen)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, repp[2] = { -1, -1 };
	int inp[2] = { -1, -1 }, ep[2] = { -1, -1 }, r = 0, status = 0;
	char **sbargv = NULL;
	char *const *argv;
	struct launch_child_error ce;
	ssize_t n;
	pid_t pid, parent;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->pidfd = p->in = p->out = p->err = p->rep = -1;
	if (spec->argv == NULL || spec->argv[0] == NULL || spec->envp == NULL ||
	    (spec->fd3 != NULL && spec->report_cap > 0))
		return -EINVAL;
	/* built before fork: the child may only make async-signal-safe calls */
	if (spec->sandbox != NULL) {
		if ((r = sandbox_argv(spec->sandbox, spec->argv, &sbargv)) < 0) {
			log_error("launch: cannot build the sandbox command: %s", strerror(-r));
			return r;
		}
		argv = sbargv;
	} else {
		argv = (char *const *)spec->argv;
	}

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0 ||
	    (spec->report_cap > 0 && pipe2(repp, O_CLOEXEC) < 0) ||
	    (spec->stdin_data != NULL &&
	     socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inp) < 0)) {
		r = -errno;
		log_error("launch: cannot create pipes: %s", strerror(-r));
		goto out;
	}
	parent = getpid();
	p->start = util_mono();
	pid = fork();
	if (pid < 0) {
		r = -errno;
		log_error("launch: fork failed: %s", strerror(-r));
		goto out;
	}
	if (pid == 0)
		launch_child(spec, argv, inp[1], outp[1], errp[1],
			     spec->fd3 != NULL ? *spec->fd3 : repp[1], ep[1], parent);
	launch_close(&outp[1]);
	launch_close(&errp[1]);
	launch_close(&repp[1]);
	launch_close(&inp[1]);
	launch_close(&ep[1]);

	/* exec closes the error pipe (CLOEXEC); a failure writes to it first. */
	do {
		n = read(ep[0], &ce, sizeof(ce));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(ce)) {
		launch_start_error(spec, argv[0], &ce, why, whylen);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		r = 1;
		goto out;
	}
	p->pid = pid;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	p->out = outp[0];
	p->err = errp[0];
	p->rep = repp[0];
	p->in = inp[0];
	outp[0] = errp[0] = repp[0] = inp[0] = -1;
	if (p->in >= 0 && fcntl(p->in, F_SETFL, O_NONBLOCK) < 0)
		launch_close(&p->in);
out:
	sandbox_argv_free(sbargv);
	launch_close(&outp[0]);
	launch_close(&outp[1]);
	launch_close(&errp[0]);
	launch_close(&errp[1]);
	launch_close(&repp[0]);
	launch_close(&repp[1]);
	launch_close(&inp[0]);
	launch_close(&inp[1]);
	launch_close(&ep[0]);
	launch_close(&ep[1]);
	return r;
}

int
launch_run(const struct launch_spec *spec, struct launch_result *res)
{
	struct launch_proc p;
	size_t in_off = 0;
	double deadline, drain_until = 0;
	int reaped = 0, r, status = 0;

	memset(res, 0, sizeof(*res));
	buf_init(&res->out, spec->out_cap);
	buf_init(&res->err, spec->out_cap);
	buf_init(&res->report, spec->report_cap);
	r = launch_start(spec, &p, res->start_error, sizeof(res->start_error));
	if (r < 0)
		return r;
	if (r == 1) {
		res->duration = 0;
		return 0;
	}
	r = 0;
	res->started = 1;
	deadline = spec->timeout > 0 ? p.start + spec->timeout : 0;

	for (;;) {
		struct pollfd pfd[5];
		int *fds[4] = { &p.out, &p.err, &p.rep, &p.in };
		struct buf *bufs[3] = { &res->out, &res->err, &res->report };
		int nfd = 0, idx[5], timeout_ms = -1;
		double now = util_mono();

		if (reaped && p.out < 0 && p.err < 0 && p.rep < 0)
			break;
		if (reaped && now >= drain_until)
			break;
		if (!reaped && deadline > 0 && now >= deadline && !res->timed_out &&
		    !res->cancelled) {
			res->timed_out = 1;
			kill(-p.pid, SIGKILL);
			kill(p.pid, SIGKILL);
		}
		if (!reaped && spec->cancel != NULL && !res->cancelled && !res->timed_out &&
		    __atomic_load_n(spec->cancel, __ATOMIC_SEQ_CST)) {
			res->cancelled = 1;
			kill(-p.pid, SIGKILL);
			kill(p.pid, SIGKILL);
		}
		double wait = -1;
		if (!reaped && deadline > 0 && !res->timed_out)
			wait = deadline - now;
		if (reaped)
			wait = drain_until - now;
		if (!reaped && p.pidfd < 0 && (wait < 0 || wait > 0.02))
			wait = 0.02;
		if (!reaped && spec->cancel != NULL && (wait < 0 || wait > 0.1))
			wait = 0.1;
		if (wait >= 0)
			timeout_ms = (int)(wait * 1000) + 1;

		for (int i = 0; i < 3; i++) {
			if (*fds[i] >= 0) {
				pfd[nfd] = (struct pollfd){ .fd = *fds[i], .events = POLLIN };
				idx[nfd++] = i;
			}
		}
		if (p.in >= 0) {
			pfd[nfd] = (struct pollfd){ .fd = p.in, .events = POLLOUT };
			idx[nfd++] = 3;
		}
		if (!reaped && p.pidfd >= 0) {
			pfd[nfd] = (struct pollfd){ .fd = p.pidfd, .events = POLLIN };
			idx[nfd++] = 4;
		}
		int pr = poll(pfd, (nfds_t)nfd, timeout_ms);
		if (pr < 0 && errno != EINTR) {
			r = -errno;
			log_error("launch: poll failed: %s", strerror(-r));
			kill(-p.pid, SIGKILL);
			kill(p.pid, SIGKILL);
			while (waitpid(p.pid, &status, 0) < 0 && errno == EINTR)
				;
			goto out;
		}
		int child_done = 0;
		for (int k = 0; pr > 0 && k < nfd; k++) {
			if (pfd[k].revents == 0)
				continue;
			if (idx[k] < 3) {
				buf_drain_fd(bufs[idx[k]], fds[idx[k]]);
			} else if (idx[k] == 3) {
				size_t left = spec->stdin_len - in_off;
				ssize_t w = left ? send(p.in, spec->stdin_data + in_off, left,
							MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
				if (w > 0)
					in_off += (size_t)w;
				if (in_off >= spec->stdin_len ||
				    (w < 0 && errno != EAGAIN && errno != EINTR) ||
				    (pfd[k].revents & (POLLERR | POLLHUP)))
					launch_close(&p.in);
			} else {
				child_done = 1;
			}
		}
		if (!reaped && p.pidfd < 0) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t)p.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == p.pid)
				child_done = 1;
		}
		if (child_done && !reaped) {
			/* Still a zombie: its process group id cannot be reused yet. */
			kill(-p.pid, SIGKILL);
			while (waitpid(p.pid, &status, 0) < 0 && errno == EINTR)
				;
			reaped = 1;
			res->duration = util_mono() - p.start;
			drain_until = util_mono() + LAUNCH_DRAIN_SECONDS;
			launch_close(&p.in);
			if ((res->timed_out || res->cancelled) && spec->sandbox == NULL)
				(void)launch_kill_uid(spec->uid);
		}
	}
	if (WIFSIGNALED(status))
		res->term_signal = WTERMSIG(status);
	else
		res->exit_code = WEXITSTATUS(status);
	/* bwrap passes on "killed by signal n" as 128 + n */
	if (spec->sandbox != NULL && res->term_signal == 0 && res->exit_code > 128 &&
	    res->exit_code < 128 + 65) {
		res->term_signal = res->exit_code - 128;
		res->exit_code = 0;
	}
out:
	launch_proc_close(&p);
	return r;
}

void
launch_result_free(struct launch_result *res)
{
	buf_free(&res->out);
	buf_free(&res->err);
	buf_free(&res->report);
}

/* How many processes with real uid `uid` are alive (not zombies). */
static int
launch_count_uid(uid_t uid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int count = 0;

	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char path[300], text[1024];
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n <= 0)
			continue;
		text[n] = '\0';
		const char *state = strstr(text, "\nState:\t");
		const char *uidl = strstr(text, "\nUid:\t");
		if (state == NULL || uidl == NULL)
			continue;
		if (state[8] == 'Z' || state[8] == 'X')
			continue;
		if (strtoul(uidl + 6, NULL, 10) == (unsigned long)uid)
			count++;
	}
	closedir(d);
	return count;
}

int
launch_kill_uid(uid_t uid)
{
	double end = util_mono() + LAUNCH_KILL_SECONDS;

	if (uid == 0 || uid == (uid_t)-1)
		return 0;
	for (;;) {
		int live = launch_count_uid(uid), status = 0;
		if (live == 0)
			return 0;
		if (util_mono() > end) {
			log_warn("launch: %d processes of uid %ld survived SIGKILL", live, (long)uid);
			return -ETIMEDOUT;
		}
		pid_t pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			/* kill(-1) as that uid reaches exactly its processes, never ours. */
			if (syscall(SYS_setresuid, uid, uid, uid) < 0)
				_exit(2);
			kill(-1, SIGKILL);
			_exit(0);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -EPERM;
		util_sleep(0.005);
	}
}
