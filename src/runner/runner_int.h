/*
 * runner_int.h - the runner's shared state and helpers, for its own files
 * only: runner.c (start-up, cold runs, batches), env.c (environments),
 * setupcmd.c (set-up commands) and warm.c (warm workers).
 *
 * The state is written by runner_init on the main thread before any other
 * runner call and only read afterwards; runner_cancel and runner_slot_cancel
 * are read and written atomically.
 */
#ifndef MESHTEST_RUNNER_INT_H
#define MESHTEST_RUNNER_INT_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

#include "core/buf.h"
#include "runner/launch.h"
#include "runner/runner.h"
#include "runner/sandbox.h"

#define RUNNER_REPORT_CAP (32u << 20)   /* one run's report stream */
#define RUNNER_ENV_MAX 16               /* variables of a run's environment */
#define RUNNER_FILE_MAX (1 << 20)       /* a project file the node reads (requirements, set-up) */
#define RUNNER_PYTEST_ARGS 12           /* runner_pytest_args gives at most this many */
#define RUNNER_KEY_LEN 33               /* a run's report key: 32 hex digits and the NUL */
#define RUNNER_TRUSTED_INI "meshtest_trusted.ini"   /* in lib_dir */

struct runner_state {
	char *data_dir, *python, *lib_dir, *venv_dir, *work_dir;
	int slots;
	long uid_base;
	size_t output_cap;
	int isolated;
	int sandboxed;                 /* runs go through bwrap */
	char *bwrap;
	char *py_prefix;               /* the interpreter's prefix when outside /usr, else NULL */
	char *versions;                /* "3.11.2 pytest-7.2.1" (runner_probe_versions) */
	struct sandbox_sys_entry sys[SANDBOX_SYS_MAX];
	size_t nsys;
};
extern struct runner_state runner;
extern int runner_cancel;          /* set by runner_abort_all */
/* Per slot: what the slot runs now is killed (runner_stop_slot, runner_abort_all). */
#define RUNNER_SLOTS_MAX 256
extern int runner_slot_cancel[RUNNER_SLOTS_MAX];

/*
 * The set-up uid's lock: set-up commands, and without the sandbox every
 * build as that uid (what one leaves behind is swept by uid).
 */
void runner_setup_lock(void);
void runner_setup_unlock(void);
/* 1 once runner_abort_all was called. */
int runner_aborted(void);
/* 1 when the slot's runs must stop: shutdown, or runner_stop_slot since its batch began. */
int runner_stopped(int slot);
/* Kill what a run of uid left behind; only without the sandbox. */
void runner_sweep(uid_t uid);
/* Slot i's uid, or (uid_t)-1 when runs are not isolated. */
uid_t runner_slot_uid(int slot);
/* The uid a sandbox runs as: uid, or ours for (uid_t)-1. */
uid_t runner_sandbox_uid(uid_t uid);

/* Paths a sandbox shows read-only or read-write; NULL entries are skipped. */
struct runner_view {
	const char *ro[6];
	const char *rw[4];
};
/* Fill sb (and the arrays ro, rw: room for 7 and 5) for a run as uid. */
void runner_view_fill(struct sandbox_spec *sb, const char **ro, const char **rw,
		      const struct runner_view *v, uid_t uid);

/* The last non-empty line of b (malloc'ed), capped at 300 bytes. */
char *runner_last_line(const struct buf *b);
/* mkdir path 0700 owned by uid ((uid_t)-1: ours); -EEXIST when it exists. */
int runner_mkdir_owned(const char *path, uid_t uid);
/* Read dir/name without following a link (malloc'ed); -ENOENT when absent. */
int runner_read_project_file(const char *dir, const char *name, char **out, size_t *len);

/*
 * Run a build step (venv, pip, a check) as uid: env PATH, HOME/TMPDIR =
 * home and pip's settings; sandboxed, home and build (may be NULL)
 * writable, the host's network only with net.
 */
int runner_step(uid_t uid, const char *const *argv, const char *home, const char *cwd,
		double timeout, const char *in, size_t inlen, const char *build, int net,
		struct launch_result *res);
/* "<what>: <why>" of a failed step into err. */
void runner_step_error(const struct launch_result *res, double timeout, const char *what,
		       char *err, size_t errlen);
int runner_step_ok(const struct launch_result *res);

/* <venv>/bin/python -> <venv> (malloc'ed) when it is a venv, else NULL. */
char *runner_venv_of(const char *python);
/*
 * The arguments of every pytest process of a module run, after "-m pytest"
 * and before the modules (a NULL-terminated malloc'ed vector, at most
 * RUNNER_PYTEST_ARGS; runner_strv_free): meshtest's plugin, no cache
 * provider, cwd (where the run sees the project) as rootdir, quiet, no
 * colour; with trust "instructor" also meshtest's own configuration file
 * in place of the project's and no conftest.py above cwd/tests.
 */
char **runner_pytest_args(const char *project_dir, const char *cwd);
void runner_strv_free(char **v);
/*
 * A fresh random key for one pytest process: the plugin puts it in every
 * event, and the node takes only events that carry it (report_keep_keyed).
 */
void runner_report_key(char key[RUNNER_KEY_LEN]);
/*
 * A module run's environment into env (RUNNER_ENV_MAX + 1 entries); returns
 * how many. With trust "instructor": PYTEST_DISABLE_PLUGIN_AUTOLOAD=1.
 */
size_t runner_run_env(char **env, int slot, const char *venv, const char *project_dir,
		      const char *cwd, const char *home, const char *tmpd);
/* The slot's folders (slot-<n>/ with projects/, run/, project/, wtmp/). */
int runner_slot_dirs(int slot);
/* A run's stdout and stderr into its result. */
void runner_attach_output(json_t *j, const struct buf *out, const struct buf *err);

/* env.c: start-up, and waking the waiters for a build when aborting. */
void env_init(void);
void env_abort_wake(void);
/* env_resolve and env_prepare for an explicit uid (the set-up commands' own). */
int env_resolve_as(const char *project_dir, uid_t uid, char **pins, json_t **warnings,
		   char *err, size_t errlen);
int env_prepare_as(const char *pins, uid_t uid, char **python_out, char *err, size_t errlen);

/* warm.c, for runner.c */
void warm_init(int slots);
/* The slot's pristine copy of a project (malloc'ed path), made once; NULL on failure. */
char *warm_copy(int slot, const char *digest, const char *project_dir);
/*
 * The slot's warm worker for python, started when needed; NULL: run cold.
 * A trusted one (trust "instructor") loads no plugin of the environment.
 */
struct worker *warm_worker(int slot, const char *python, int trusted);
/* No worker starts on the slot for a while (one could not run). */
void warm_cold_for(int slot);
/* 1 while a warm worker of any slot runs in the environment at venv (any thread). */
int warm_env_busy(const char *venv);
/* Ask the slots whose workers run in venv to stop them when idle (any thread). */
void warm_drop_env(const char *venv);
/* Where a run hands on each module's result as soon as it is final. */
struct warm_live {
	void (*deliver)(void *ctx, size_t i, json_t *result);   /* result borrowed */
	void *ctx;
};

/*
 * One pytest process over mods[0..n) in worker *wp: a shared session, or
 * with each (isolation "module", n > 1) pytest started once and each module
 * in a child of its own. A result for each module that counts from it into
 * results[] (the others NULL); with each and live, each module's result also
 * goes to live as soon as its process ended. 0, -ECANCELED (a stop of the
 * slot keeps what finished in results[]), or -EAGAIN when the worker could
 * not run it. *wp becomes NULL when the run cost the worker.
 */
int warm_run(int slot, struct worker **wp, const struct runner_batch *b, const char *lower,
	     const char *const *mods, size_t n, int each, const struct warm_live *live,
	     json_t **results);

#endif
