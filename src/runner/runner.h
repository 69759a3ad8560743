/*
 * runner.h - virtual environments and supervised module runs.
 *
 * One pytest process per test module, as the slot's unprivileged uid (when
 * the node is root), in a fresh copy of the project; the plugin's event
 * stream and the way the process ended become the module result
 * (report_build).
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

/*
 * The uid (and gid) set-up commands run as: uid_base + slots, which no slot
 * uses; (uid_t)-1 (ourselves) when runs are not isolated.
 */
uid_t runner_setup_uid(void);

/*
 * Run the project's set-up commands ONCE, right after fetching, so that what
 * they make travels in the project's blob: the evaluation's commands (from
 * project_dir/SETUP_FILE), then those of the project's meshtest.toml or
 * meshtest.json, in order, each with sh -c in the project root, through
 * meshtest_supervisor.py --commands. Nothing to do (0) when the project has
 * no commands (setup_has_commands).
 *
 * They run as runner_setup_uid() inside the sandbox (no network, like module
 * runs) with the project's environment (built as that uid when missing), in
 * a copy of project_dir under <data>/work/setup owned by that uid, 300 s for
 * all of them, output capped; one project at a time. On success the copy,
 * handed back to root:root, replaces project_dir, with SETUP_FILE restored
 * as it was. Every process of the uid is killed afterwards.
 *
 * 0, or a negative errno with err set to one line for the project's error:
 * "set-up command 2 failed (exit 1): <last line of its stderr>", "set-up
 * command 1 timed out (300 s for all set-up commands)", "meshtest.toml: ...",
 * an environment error (runner_prepare_env), or -ECANCELED at shutdown.
 * project_dir is left as it was when a command failed. Thread-safe.
 */
int runner_run_setup(const char *project_dir, char *err, size_t errlen);

/*
 * "bwrap" when every run of submitted code (module runs and environment
 * builds) happens inside bubblewrap, "none" otherwise. Fixed after runner_init.
 */
const char *runner_sandbox_name(void);

/*
 * Prepare (or reuse) the virtual environment for the project folder and return
 * the path of its python (malloc'ed) in *python_out. Identical requirement
 * sets (requirements.txt, else [project].dependencies of pyproject.toml) share
 * one read-only venv under <data>/venvs/<key>; concurrent calls for one key
 * wait for a single build. Errors: -EIO with err set, e.g. "installing
 * requirements failed: <last line of pip's stderr>" or "pytest is not
 * available in the project's environment: ..."; -EINVAL for a bad slot.
 * Slot -1 prepares it ahead of time (right after fetching), as the set-up
 * uid; without the sandbox that does nothing (0, *python_out NULL).
 * Thread-safe.
 */
int runner_prepare_env(const char *project_dir, int slot, char **python_out,
		       char *err, size_t errlen);

struct runner_module_req {
	const char *project_dir;  /* read-only canonical copy of the project */
	const char *module_path;  /* relative, e.g. "tests/test_a.py" */
	const char *python;       /* from runner_prepare_env */
	double timeout;           /* seconds */
	int slot;
};

/*
 * Run one module in <data>/work/slot-<n> (a fresh copy of the project, owned
 * by the slot uid) and return its result (caller owns): the report_build
 * object plus "stdout", "stderr" (capped text) and "stdout_dropped",
 * "stderr_dropped" (bytes cut). Afterwards every process of the slot uid is
 * killed and the slot folder removed. Returns <0 only when the runner itself
 * failed (bad request, copy failed); a module that crashed is a result.
 * One call per slot at a time; different slots may run in parallel.
 *
 * PYTHONPATH is <copy>/src (when the project has a src/ folder), <copy>, then
 * the plugin folder, so the submitted code is imported before anything the
 * node has installed, also by `python3` started through PATH. When the
 * project has a set-up (setup_needed), meshtest_supervisor.py runs inside the
 * same sandbox first (services and their readiness; the commands ran once
 * after fetching, runner_run_setup) and then pytest; a
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
	const char *python;             /* from runner_prepare_env */
	double timeout;                 /* seconds, per module */
	int slot;
	enum runner_isolation isolation;
	/* called once per module, in the slot's thread, when its result is final
	 * (borrowed: the callback takes a reference to keep it) */
	void (*on_result)(void *ctx, size_t i, json_t *result);
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
 * shutdown (results not yet handed over are dropped) or -EINVAL.
 */
int runner_run_batch(const struct runner_batch *b);

/* In the slot's thread: stop its workers idle for five minutes. */
void runner_slot_idle(int slot);
/* In the slot's thread, before it ends: stop its workers. */
void runner_slot_close(int slot);
/* Warm workers the slot has now. */
int runner_slot_warm_count(int slot);

/*
 * For shutdown: kill every running module and environment build (within about
 * 100 ms) and make later runner_prepare_env / runner_run_module calls fail
 * with -ECANCELED. Any thread; runner_init clears it.
 */
void runner_abort_all(void);

#endif
