/*
 * runner.h - how the node runs submitted code: start-up, batches of test
 * modules on a slot (warm, through the slot's worker, or cold), and the
 * sandbox and isolation facts the rest of the node reports.
 *
 * Every pytest process runs as the slot's unprivileged uid (when the node is
 * root) inside the sandbox; the plugin's event stream and the way the
 * process ended become each module's result (report_build). Environments
 * are env.h's, set-up commands setupcmd.h's, warm workers warm.h's.
 */
#ifndef MESHTEST_RUNNER_H
#define MESHTEST_RUNNER_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

struct runner_config {
	const char *data_dir;   /* the node's data folder; runner uses <data>/lib, <data>/venvs, <data>/work */
	const char *python;     /* e.g. /usr/bin/python3 */
	int slots;
	long uid_base;          /* slot i runs as uid (and gid) uid_base + i, when we are root;
				 * set-up commands as uid_base + slots */
	size_t output_cap;      /* per stream, e.g. 64 KiB */
	const char *sandbox;    /* "auto" (NULL), "bwrap" or "none": see runner_init */
	const char *bwrap;      /* NULL: /usr/bin/bwrap */
};

/*
 * 0 when every ancestor of path is searchable by others (the slot users can
 * reach it); -EACCES with a message naming the folder that is not.
 */
int runner_check_reachable(const char *path, char *err, size_t errlen);

/*
 * Create the folders, write the embedded plugin and helper, decide isolation,
 * kill leftovers of the slot uids and wipe old slot folders. Call once, before
 * any other runner function. Fails (with err set) when a folder cannot be made,
 * when, isolated, the data folder cannot be reached by the slot users, on an
 * unknown sandbox mode, or with sandbox "bwrap" when bubblewrap does not work
 * here (the probe runs `bwrap ... cat /proc/self/status` as the first slot's
 * uid). With "auto" a failed probe means runs without bwrap and a loud
 * warning; "none" never uses bwrap and warns too.
 */
int runner_init(const struct runner_config *cfg, char *err, size_t errlen);

/* 1 when runs use separate unprivileged uids (node is root); 0 otherwise. */
int runner_isolated(void);

/* The interpreter's and pytest's versions as runs see them, e.g. "3.11.2 pytest-7.2.1". */
const char *runner_versions(void);

/*
 * The uid (and gid) set-up commands run as: uid_base + slots, which no slot
 * uses; (uid_t)-1 (ourselves) when runs are not isolated.
 */
uid_t runner_setup_uid(void);

/*
 * "bwrap" when every run of submitted code (module runs and environment
 * builds) happens inside bubblewrap, "none" otherwise. Fixed after runner_init.
 */
const char *runner_sandbox_name(void);

struct runner_module_req {
	const char *project_dir;  /* read-only canonical copy of the project */
	const char *module_path;  /* relative, e.g. "tests/test_a.py" */
	const char *python;       /* from env_prepare */
	double timeout;           /* seconds */
	int slot;
};

/*
 * Run one module cold: one interpreter of its own, in <work>/slot-<n>/cold (a
 * fresh copy of the project, owned by the slot uid), and return its result
 * (caller owns): the report_build object plus "stdout", "stderr" (capped
 * text) and "stdout_dropped", "stderr_dropped" (bytes cut). Afterwards the
 * copy is removed (and, without the sandbox, every process of the slot uid
 * killed). Returns <0 only when the runner itself failed (bad request, copy
 * failed); a module that crashed is a result. runner_run_batch uses it when
 * no warm worker can run the module. One call per slot at a time.
 *
 * PYTHONPATH is <copy>/src (when the project has a src/ folder), <copy>, then
 * the plugin folder, so the submitted code is imported before anything the
 * node has installed, also by `python3` started through PATH. When the
 * project has a set-up (setup_needed), meshtest_supervisor.py runs inside the
 * same sandbox first (services and their readiness; the commands ran once
 * after fetching, setupcmd_run) and then pytest; a
 * set-up that fails, or a configuration naming an option no plugin provides,
 * becomes one clear error (setup_fix_result).
 */
int runner_run_module(const struct runner_module_req *req, json_t **result);

enum runner_isolation {
	RUNNER_ISOLATION_PROJECT = 0,   /* modules of a project may share a pytest session */
	RUNNER_ISOLATION_MODULE = 1,    /* every module in its own fresh process */
};

/* Modules of one project to run on one slot (a claim of the scheduler). */
struct runner_batch {
	const char *project_dir;        /* read-only canonical copy of the project */
	const char *digest;             /* its blob: names the slot's pristine copy */
	const char *const *modules;     /* relative paths */
	size_t n;
	const char *python;             /* from env_prepare */
	double timeout;                 /* seconds, per module */
	int slot;
	enum runner_isolation isolation;
	/* called once per module, in the slot's thread, when its result is final
	 * (borrowed: the callback takes a reference to keep it) */
	void (*on_result)(void *ctx, size_t i, json_t *result);
	/* optional: the modules idx[0..n) whose results (results[idx[k]]) became
	 * final together, at a shared session's end, handed over at once (one
	 * commit); without it, on_result for each */
	void (*on_results)(void *ctx, const size_t *idx, json_t *const *results, size_t n);
	void *ctx;
};

/*
 * Run a batch on its slot and hand each module's result to on_result as it
 * becomes final. With the sandbox, runs are warm: the slot's worker for the
 * environment (meshtest_worker.py) forks a fresh child per pytest process,
 * in its own namespaces, over an overlay of the slot's pristine copy of the
 * project (made once per slot). Isolation "project" runs the batch as one
 * pytest session first; every module that did not finish in it (the session
 * crashed, hung, hit a module's time limit or stopped early) runs again
 * alone, as does every module with isolation "module". A run that could not
 * start is tried again (3 times in all); a failed module is rerun as the
 * project's reruns setting says. Without the sandbox, or when no worker can
 * start, each module runs cold (runner_run_module). Returns 0, -ECANCELED at
 * shutdown (results not yet handed over are dropped) or after
 * runner_stop_slot, or -EINVAL.
 */
int runner_run_batch(const struct runner_batch *b);

/*
 * For shutdown: kill every running module and environment build (within about
 * 100 ms) and make later env_prepare / runner_run_module calls fail
 * with -ECANCELED. Any thread; runner_init clears it.
 */
void runner_abort_all(void);

/*
 * Stop what slot runs now (its evaluation was cancelled or deleted): its
 * pytest processes are killed within about 100 ms and runner_run_batch
 * returns -ECANCELED, after handing over the modules that had finished (in
 * a shared session too). Any thread. The slot's thread calls
 * runner_slot_reset before it publishes its next batch, so a stop always
 * meets the batch that was visible when it was asked for.
 */
void runner_stop_slot(int slot);
void runner_slot_reset(int slot);

#endif
