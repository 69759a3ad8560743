/*
 * launch.h - the one place that starts submitted code: fork, drop privileges,
 * limit, exec, supervise with a wall-clock deadline, collect capped output.
 */
#ifndef MESHTEST_LAUNCH_H
#define MESHTEST_LAUNCH_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/buf.h"

struct sandbox_spec;

struct launch_limits {
	rlim_t as_bytes, nproc, nofile, fsize_bytes, cpu_seconds; /* 0 = leave as is */
};

/* as 4 GiB, nproc 512, nofile 1024, fsize 1 GiB, cpu 0. */
void launch_limits_default(struct launch_limits *l);

struct launch_spec {
	const char *const *argv;  /* argv[0] is a full path */
	const char *const *envp;  /* the whole environment (nothing inherited) */
	const char *cwd;          /* NULL: stay where we are */
	uid_t uid;                /* (uid_t)-1: run as ourselves */
	gid_t gid;
	double timeout;           /* wall clock seconds; 0 = none */
	size_t out_cap;           /* cap for each of stdout and stderr */
	size_t report_cap;        /* 0: no report pipe; else the child's fd 3 is a pipe collected here */
	const char *stdin_data;   /* may be NULL: stdin is /dev/null */
	size_t stdin_len;
	struct launch_limits lim;
	const int *cancel;        /* optional: once *cancel is nonzero (read atomically, at least
				   * every 100 ms) the child is killed as on a deadline, without
				   * timed_out; NULL: never */
	const struct sandbox_spec *sandbox; /* NULL: exec argv directly; else exec bwrap
					     * (sandbox_argv) as uid, which runs argv inside */
	const int *fd3;           /* NULL, or a descriptor the child gets as its fd 3 (a
				   * worker's control socket; report_cap must be 0) */
};

/* A child started by launch_start: our ends of its pipes and its pid. */
struct launch_proc {
	pid_t pid;
	int pidfd;                /* -1 when the kernel gives none */
	int in, out, err, rep;    /* our ends, non-blocking, CLOEXEC; -1 when unused */
	double start;             /* util_mono() at fork */
};

struct launch_result {
	int started;
	char start_error[256];
	int exit_code, term_signal, timed_out, cancelled;
	double duration;
	struct buf out, err, report; /* capped; .dropped counts what was cut */
};

/*
 * Run the child to its end (or deadline) and fill res, which the caller frees
 * with launch_result_free even on failure. Returns 0 even when the child could
 * not start or failed (see res->started); <0 only on our own failure (pipes,
 * fork). The child runs in its own session and process group, which is killed
 * when it ends. Thread-safe: uses no signal handlers and waits on its own pid.
 *
 * With spec->sandbox the child drops to uid and its limits first and then
 * execs bwrap, whose death (deadline, cancel) takes the whole pid namespace
 * with it. bwrap reports a command killed by signal n as exit status 128 + n;
 * that is turned back into term_signal n (so a command that itself exits
 * with 129..192 reads as killed by a signal).
 */
int launch_run(const struct launch_spec *spec, struct launch_result *res);
void launch_result_free(struct launch_result *res);

/*
 * Start the child as launch_run does and return at once: 0 with *p filled,
 * 1 when the child could not start (a one-line reason in why; nothing to
 * reap), <0 on our own failure. The caller owns p: it reads the pipes, kills
 * the process group (-p->pid) when it must, reaps p->pid and closes the
 * descriptors (launch_proc_close). Thread-safe.
 */
int launch_start(const struct launch_spec *spec, struct launch_proc *p, char *why,
		 size_t whylen);
/* Close every descriptor of p (not the process). */
void launch_proc_close(struct launch_proc *p);

/*
 * Kill every process that runs as uid: a helper child setuid()s to it and
 * kill(-1, SIGKILL)s until none is left (at most about 1 s; -ETIMEDOUT then).
 * No-op for uid 0 and (uid_t)-1.
 */
int launch_kill_uid(uid_t uid);

#endif
