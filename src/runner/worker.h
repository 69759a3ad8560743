/*
 * worker.h - warm pytest workers: a long-lived process per slot and
 * environment (meshtest_worker.py, inside the slot's sandbox) that has
 * imported pytest once and runs each pytest process as a fresh child forked
 * from itself.
 *
 * A worker belongs to the slot thread that started it: every function here
 * is called from that thread only, and the worker pool of a slot is that
 * thread's own. The node, not the worker, enforces deadlines: it kills the
 * whole worker (its sandbox and every process in it).
 */
#ifndef MESHTEST_WORKER_H
#define MESHTEST_WORKER_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

#include "core/buf.h"

struct sandbox_spec;
struct worker;

/* How a worker is started (runner.c fills it). */
struct worker_spec {
	const char *python;                 /* the environment's interpreter */
	const char *script;                 /* meshtest_worker.py */
	const char *const *envp;            /* the worker's own environment */
	uid_t uid;                          /* the slot's uid ((uid_t)-1: ours) */
	const struct sandbox_spec *sandbox; /* the worker's view (required) */
	double start_timeout;               /* seconds to wait for "ready" */
	const int *cancel;                  /* shutdown flag, read atomically */
};

/*
 * Start a worker and wait until it says it is ready. 0 with *out set, or a
 * negative errno with a one-line reason in err (the worker's own last line
 * of output when it died while starting).
 */
int worker_start(const struct worker_spec *spec, const char *key, struct worker **out,
		 char *err, size_t errlen);
/* Ask the worker to exit (killing it after a second) and free it. NULL is fine. */
void worker_stop(struct worker *w);
/* Kill the worker's whole sandbox at once and free it. NULL is fine. */
void worker_kill(struct worker *w);

/*
 * What its start-up probe found: children get their own namespaces /
 * overlays; a child can be a zygote, pid 1 of its own pid namespace, that
 * runs each module in a child of its own (meshtest_each.py).
 */
int worker_has_ns(const struct worker *w);
int worker_has_overlay(const struct worker *w);
int worker_has_each(const struct worker *w);
/* Why not, when either is 0 ("" otherwise). */
const char *worker_why(const struct worker *w);
const char *worker_key(const struct worker *w);
/* 1 while the worker can take a run. */
int worker_alive(const struct worker *w);
double worker_last_used(const struct worker *w);

/*
 * How a run is watched: on_line gets every complete line of the report
 * stream as it arrives (the session tracker), deadline the monotonic time at
 * which the run must be killed (0: none), asked after every event.
 */
struct worker_watch {
	void *ctx;
	void (*on_line)(void *ctx, const char *line, size_t len, double now);
	double (*deadline)(void *ctx, double now);
};

struct worker_result {
	int started;          /* the worker took the run */
	char error[256];      /* why not, or why the worker failed */
	int exit_code;        /* the child's, when term_signal == 0 */
	int term_signal;
	int timed_out;        /* the deadline killed the worker */
	int cancelled;        /* shutdown killed it */
	int worker_died;      /* the worker (not only the child) ended during the run */
	int leftover;         /* processes the child left behind (the worker was recycled) */
	long rss_kb;          /* the worker's size after the run */
	double duration;      /* request sent -> child reaped */
	struct buf out, err, report;
};

/*
 * Hand the worker one pytest run (req: the "run" object of the protocol,
 * without "op"; borrowed) and supervise it: stdout and stderr capped at
 * out_cap each, the report stream at report_cap. Returns 0 when the run
 * happened (res says how it ended), <0 when it could not be handed over
 * (the worker is then dead). After a timeout, a cancel, a leftover process or
 * the worker's death the worker is killed: worker_alive() says 0 and the
 * caller frees it with worker_kill. Free res with worker_result_free.
 */
int worker_run(struct worker *w, json_t *req, const struct worker_watch *watch,
	       size_t out_cap, size_t report_cap, struct worker_result *res);
void worker_result_free(struct worker_result *res);

#endif
