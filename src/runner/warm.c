/*
 * warm.c - warm runs: each slot's workers (worker.c, one per environment,
 * at most WARM_WORKERS_PER_SLOT), its pristine project copies, and one
 * pytest process over one or more modules handed to a worker and supervised
 * to a result per module (see docs/internals/workers.md).
 *
 * Owns <work>/slot-<n>/projects (pristine copies, owned by the slot uid,
 * read-only in the sandbox) and /run (one scratch folder per run). The slot
 * state is touched only by that slot's thread, except nwarm, which other
 * threads read atomically (GET /health), and what warm_publish copies for
 * them under warm_pub_lock: each worker's environment (env.c asks before it
 * removes one) and the environments the disk budget asked the slot to stop
 * its idle workers of (warm_drop_env).
 */
#include "runner/warm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "runner/report.h"
#include "runner/runner_int.h"
#include "runner/sandbox.h"
#include "runner/session.h"
#include "runner/setup.h"
#include "runner/worker.h"

#define WARM_WORKERS_PER_SLOT 2        /* environments a slot keeps warm */
#define WARM_WORKER_IDLE 300.0         /* seconds before an idle worker stops */
#define WARM_WORKER_START 60.0
#define WARM_WORKER_RSS_KB (1024L * 1024)  /* a worker past 1 GiB starts afresh */
#define WARM_RETRY 60.0                /* after a worker failed to start, cold until */
#define WARM_COPIES_PER_SLOT 16        /* pristine project copies a slot keeps */

/*
 * What one slot keeps between runs: its warm workers and a sequence for run
 * folders.
 */
struct warm_slot {
	struct worker *workers[WARM_WORKERS_PER_SLOT];
	unsigned seq;
	double cold_until;            /* no worker starts before (a start failed) */
	int nwarm;                    /* live workers, for other threads (atomic) */
	/* under warm_pub_lock, for other threads: */
	char *keys[WARM_WORKERS_PER_SLOT];  /* each worker's key, as published */
	json_t *drops;                /* environments (venv -> true) to let go of when idle */
};
static struct warm_slot *warm_slots;
static int warm_nslots;
/* The slots' published keys and drop requests (env.c and the disk budget read them). */
static pthread_mutex_t warm_pub_lock = PTHREAD_MUTEX_INITIALIZER;

void
warm_init(int slots)
{
	for (int i = 0; warm_slots != NULL && i < warm_nslots; i++) {
		for (int k = 0; k < WARM_WORKERS_PER_SLOT; k++)
			free(warm_slots[i].keys[k]);
		json_decref(warm_slots[i].drops);
	}
	free(warm_slots);
	warm_slots = xcalloc((size_t)slots, sizeof(*warm_slots));
	warm_nslots = slots;
}

void
warm_cold_for(int slot)
{
	warm_slots[slot].cold_until = util_mono() + WARM_RETRY;
}

/*
 * The slot's pristine copy of a project (owned by the slot's uid, read-only
 * in the sandbox): made once per slot and project, then every run of the
 * project on this slot mounts it under an overlay. Returns its path
 * (malloc'ed) or NULL. Keeps at most WARM_COPIES_PER_SLOT, dropping the
 * least recently used.
 */
char *
warm_copy(int slot, const char *digest, const char *project_dir)
{
	char *dir = xasprintf("%s/slot-%d/projects", runner.work_dir, slot);
	char *path = xasprintf("%s/%s", dir, digest), *tmp = NULL, hex[17];
	uid_t uid = runner_slot_uid(slot);
	DIR *d;
	struct dirent *de;
	int r, count = 0;
	char *oldest = NULL;
	struct timespec oldest_t = { 0, 0 };

	if (access(path, F_OK) == 0) {
		(void)utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
		free(dir);
		return path;
	}
	if (runner_slot_dirs(slot) < 0) {
		free(dir);
		free(path);
		return NULL;
	}
	util_random_hex(hex, 8);
	tmp = xasprintf("%s/.tmp-%s", dir, hex);
	r = util_copy_tree(project_dir, tmp, uid, (gid_t)uid);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		log_error("runner: cannot copy %s for slot %d: %s", project_dir, slot, strerror(-r));
		(void)util_rm_rf(tmp);
		free(tmp);
		free(dir);
		free(path);
		return NULL;
	}
	free(tmp);
	/* the least recently used copies go */
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat st;
			char *p;
			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			if (lstat(p, &st) == 0 && strcmp(p, path) != 0) {
				count++;
				if (oldest == NULL || st.st_mtim.tv_sec < oldest_t.tv_sec ||
				    (st.st_mtim.tv_sec == oldest_t.tv_sec &&
				     st.st_mtim.tv_nsec < oldest_t.tv_nsec)) {
					free(oldest);
					oldest = p;
					oldest_t = st.st_mtim;
					continue;
				}
			}
			free(p);
		}
		closedir(d);
	}
	if (count >= WARM_COPIES_PER_SLOT && oldest != NULL)
		(void)util_rm_rf(oldest);
	free(oldest);
	free(dir);
	return path;
}

/*
 * Publish how many workers the slot keeps (read by GET /health's thread) and
 * the environment each runs in (read by env.c before it removes one).
 */
static void
warm_publish(struct warm_slot *rs)
{
	int n = 0;

	pthread_mutex_lock(&warm_pub_lock);
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++) {
		n += rs->workers[i] != NULL;
		free(rs->keys[i]);
		rs->keys[i] = rs->workers[i] != NULL ? xstrdup(worker_key(rs->workers[i])) : NULL;
	}
	pthread_mutex_unlock(&warm_pub_lock);
	__atomic_store_n(&rs->nwarm, n, __ATOMIC_RELAXED);
}

/* 1 when a worker's key ("<venv>/bin/python", " trusted" after it) is of venv. */
static int
warm_key_of(const char *key, const char *venv)
{
	size_t n = strlen(venv);

	return key != NULL && strncmp(key, venv, n) == 0 &&
	    util_starts_with(key + n, "/bin/python") &&
	    (key[n + 11] == '\0' || key[n + 11] == ' ');
}

int
warm_env_busy(const char *venv)
{
	int busy = 0;

	pthread_mutex_lock(&warm_pub_lock);
	for (int i = 0; warm_slots != NULL && i < warm_nslots && !busy; i++)
		for (int k = 0; k < WARM_WORKERS_PER_SLOT; k++)
			busy |= warm_key_of(warm_slots[i].keys[k], venv);
	pthread_mutex_unlock(&warm_pub_lock);
	return busy;
}

void
warm_drop_env(const char *venv)
{
	pthread_mutex_lock(&warm_pub_lock);
	for (int i = 0; warm_slots != NULL && i < warm_nslots; i++) {
		struct warm_slot *rs = &warm_slots[i];
		for (int k = 0; k < WARM_WORKERS_PER_SLOT; k++) {
			if (!warm_key_of(rs->keys[k], venv))
				continue;
			if (rs->drops == NULL)
				rs->drops = json_object();
			json_object_set_new(rs->drops, venv, json_true());
			break;
		}
	}
	pthread_mutex_unlock(&warm_pub_lock);
}

/* In the slot's thread: stop[i] = worker i runs in an environment asked to go; clears the asks. */
static void
warm_take_drops(struct warm_slot *rs, int stop[WARM_WORKERS_PER_SLOT])
{
	const char *venv;
	json_t *v;

	pthread_mutex_lock(&warm_pub_lock);
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++) {
		stop[i] = 0;
		json_object_foreach(rs->drops, venv, v)
			stop[i] |= warm_key_of(rs->keys[i], venv);
	}
	json_object_clear(rs->drops);
	pthread_mutex_unlock(&warm_pub_lock);
}

static void
warm_forget(struct warm_slot *rs, struct worker *w)
{
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++)
		if (rs->workers[i] == w)
			rs->workers[i] = NULL;
	warm_publish(rs);
}

/*
 * The slot's warm worker for an environment (python), started when there is
 * none: NULL when warm runs are not possible here (no sandbox, no user
 * namespaces inside it, or a start failed less than a minute ago), with the
 * reason logged once per failure.
 */
struct worker *
warm_worker(int slot, const char *python, int trusted)
{
	struct warm_slot *rs = &warm_slots[slot];
	struct worker_spec ws;
	struct worker *w = NULL;
	struct sandbox_spec sb;
	const char *ro[8], *rw[6];
	char *venv = NULL, *env[12], *slot_dir, *projects, *rundir, *pdir, *wtmp, *script, *key;
	char err[512];
	size_t ne = 0;
	int free_at = -1, lru = -1, r;
	uid_t uid = runner_slot_uid(slot);

	if (!runner.sandboxed || runner_aborted() || util_mono() < rs->cold_until)
		return NULL;
	/* a trusted run's worker never loaded the environment's plugins */
	key = trusted ? xasprintf("%s trusted", python) : xstrdup(python);
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++) {
		struct worker *c = rs->workers[i];
		if (c == NULL) {
			free_at = free_at < 0 ? i : free_at;
			continue;
		}
		if (!worker_alive(c)) {
			worker_kill(c);
			rs->workers[i] = NULL;
			free_at = free_at < 0 ? i : free_at;
			continue;
		}
		if (strcmp(worker_key(c), key) == 0) {
			free(key);
			return c;
		}
		if (lru < 0 || worker_last_used(c) < worker_last_used(rs->workers[lru]))
			lru = i;
	}
	if (free_at < 0) {
		worker_stop(rs->workers[lru]);
		rs->workers[lru] = NULL;
		free_at = lru;
	}
	if (runner_slot_dirs(slot) < 0) {
		free(key);
		return NULL;
	}
	venv = runner_venv_of(python);
	slot_dir = xasprintf("%s/slot-%d", runner.work_dir, slot);
	projects = xasprintf("%s/projects", slot_dir);
	rundir = xasprintf("%s/run", slot_dir);
	pdir = xasprintf("%s/project", slot_dir);
	wtmp = xasprintf("%s/wtmp", slot_dir);
	script = xasprintf("%s/meshtest_worker.py", runner.lib_dir);

	if (venv != NULL)
		env[ne++] = xasprintf("PATH=%s/bin:/usr/local/bin:/usr/bin:/bin", venv);
	else
		env[ne++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[ne++] = xasprintf("HOME=%s", wtmp);
	env[ne++] = xasprintf("TMPDIR=%s", wtmp);
	env[ne++] = xstrdup("LANG=C.UTF-8");
	env[ne++] = xasprintf("PYTHONPATH=%s", runner.lib_dir);
	env[ne++] = xstrdup("PYTHONDONTWRITEBYTECODE=1");
	env[ne++] = xstrdup("PYTHONUNBUFFERED=1");   /* the std streams runs inherit */
	env[ne++] = xasprintf("MESHTEST_PROBE_DIR=%s/probe", rundir);
	if (venv != NULL)
		env[ne++] = xasprintf("VIRTUAL_ENV=%s", venv);
	if (trusted)
		env[ne++] = xstrdup("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1");
	env[ne] = NULL;

	struct runner_view view = {
		.ro = { runner.lib_dir, venv, runner.py_prefix, projects },
		.rw = { rundir, pdir },
	};
	runner_view_fill(&sb, ro, rw, &view, uid);
	sb.tmp_dir = wtmp;
	sb.chdir = "/";
	sb.as_pid1 = 1;     /* pid 1 of its namespace: no run can signal or stop it */
	memset(&ws, 0, sizeof(ws));
	ws.python = python;
	ws.script = script;
	ws.envp = (const char *const *)env;
	ws.uid = uid;
	ws.sandbox = &sb;
	ws.start_timeout = WARM_WORKER_START;
	ws.cancel = &runner_slot_cancel[slot];
	r = worker_start(&ws, key, &w, err, sizeof(err));
	if (r == 0 && !worker_has_ns(w)) {
		snprintf(err, sizeof(err), "runs cannot have their own namespaces here (%s)",
			 worker_why(w));
		worker_stop(w);
		w = NULL;
		r = -EPERM;
	}
	if (r == -ECANCELED) {
		/* stopped (shutdown, or the batch's evaluation was cancelled): not the worker's fault */
	} else if (r < 0) {
		log_warn("runner: slot %d runs modules cold (one interpreter each) for "
			 "%g s: %s", slot, WARM_RETRY, err);
		rs->cold_until = util_mono() + WARM_RETRY;
		warm_publish(rs);
	} else {
		rs->workers[free_at] = w;
		warm_publish(rs);
		log_debug("runner: slot %d has a warm worker for %s%s", slot, key,
			  worker_has_overlay(w) ? "" : " (no overlays: a copy per run)");
	}
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(key);
	free(venv);
	free(slot_dir);
	free(projects);
	free(rundir);
	free(pdir);
	free(wtmp);
	free(script);
	return w;
}

void
warm_slot_idle(int slot)
{
	struct warm_slot *rs;
	double now = util_mono();
	int drop[WARM_WORKERS_PER_SLOT];

	if (warm_slots == NULL || slot < 0 || slot >= runner.slots)
		return;
	rs = &warm_slots[slot];
	/* the disk budget wants an environment gone: its idle workers stop first */
	warm_take_drops(rs, drop);
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++) {
		struct worker *w = rs->workers[i];
		if (w != NULL && (drop[i] || !worker_alive(w) ||
		    now - worker_last_used(w) > WARM_WORKER_IDLE)) {
			worker_stop(w);
			rs->workers[i] = NULL;
		}
	}
	warm_publish(rs);
}

void
warm_slot_close(int slot)
{
	struct warm_slot *rs;

	if (warm_slots == NULL || slot < 0 || slot >= runner.slots)
		return;
	rs = &warm_slots[slot];
	for (int i = 0; i < WARM_WORKERS_PER_SLOT; i++) {
		if (runner_aborted())
			worker_kill(rs->workers[i]);
		else
			worker_stop(rs->workers[i]);
		rs->workers[i] = NULL;
	}
	warm_publish(rs);
}

void
warm_drop_copies(const char *digest)
{
	for (int i = 0; runner.work_dir != NULL && i < runner.slots; i++) {
		char *path = xasprintf("%s/slot-%d/projects/%s", runner.work_dir, i, digest);
		int r = util_rm_rf(path);

		if (r < 0 && r != -ENOENT)
			log_warn("runner: cannot remove %s: %s", path, strerror(-r));
		free(path);
	}
}

int
warm_count(int slot)
{
	if (warm_slots == NULL || slot < 0 || slot >= runner.slots)
		return 0;
	return __atomic_load_n(&warm_slots[slot].nwarm, __ATOMIC_RELAXED);
}

static json_t *
warm_json_env(char **env)
{
	json_t *o = json_object();

	for (char **e = env; *e != NULL; e++) {
		char *eq = strchr(*e, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		json_object_set_new(o, *e, json_string(eq + 1));
		*eq = '=';
	}
	return o;
}

/* The message of a "worker_error" event in the stream (malloc'ed), or NULL. */
static char *
warm_worker_error(const char *stream, size_t len)
{
	for (size_t at = 0; stream != NULL && at < len;) {
		const char *nl = memchr(stream + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (stream + at)) : len - at;
		json_t *ev = json_loadb(stream + at, n, 0, NULL);
		const char *kind = json_string_value(json_object_get(ev, "ev"));
		if (kind != NULL && strcmp(kind, "worker_error") == 0) {
			const char *m = json_string_value(json_object_get(ev, "message"));
			char *msg = xstrdup(m ? m : "the worker could not prepare the run");
			json_decref(ev);
			return msg;
		}
		json_decref(ev);
		at += n + 1;
	}
	return NULL;
}

/*
 * What a run's watcher sees: its session, fed only the lines that carry the
 * run's key. With each (isolation "module") it also cuts the stream at each
 * module's marker as the lines come: the module's part is the run's first
 * line (its "hello") and what came since the marker before; its result is
 * built then, and handed on at once with live.
 */
struct warm_watch_ctx {
	struct session *sess;
	const char *key;
	int each;
	const struct warm_live *live;    /* NULL: results wait for the run's end */
	char *hello;                     /* the run's first line (each) */
	struct buf part;                 /* the current module's lines so far (each) */
	const struct runner_batch *b;
	const char *const *mods;
	json_t **results;
};

static json_t *warm_each_result(const struct session *sess, const struct worker_result *res,
				const struct runner_batch *b, const struct warm_watch_ctx *wc,
				const char *module, size_t i);

static void
warm_watch_line(void *ctx, const char *line, size_t len, double now)
{
	struct warm_watch_ctx *wc = ctx;
	long i;

	if (!report_line_keyed(line, len, wc->key))
		return;
	i = session_on_line(wc->sess, line, len, now);
	if (!wc->each)
		return;
	if (i < 0) {
		if (wc->hello == NULL)
			wc->hello = xasprintf("%.*s", (int)len, line);
		else if (buf_append(&wc->part, line, len) == 0)
			(void)buf_append(&wc->part, "\n", 1);
		return;
	}
	/* module i's marker: its part is complete (the marker itself is not in it) */
	wc->results[i] = warm_each_result(wc->sess, NULL, wc->b, wc, wc->mods[i], (size_t)i);
	buf_reset(&wc->part);
	if (wc->results[i] != NULL && wc->live != NULL)
		wc->live->deliver(wc->live->ctx, (size_t)i, wc->results[i]);
}

static double
warm_watch_deadline(void *ctx, double now)
{
	return session_deadline(((struct warm_watch_ctx *)ctx)->sess, now);
}

/*
 * A new run's scratch folder in the slot (malloc'ed) and its environment and
 * sys.path as JSON for the worker (new references).
 */
static char *
warm_env(int slot, const struct runner_batch *b, json_t **env_out, json_t **path_out)
{
	struct warm_slot *rs = &warm_slots[slot];
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot);
	char *scratch = xasprintf("%s/slot-%d/run/%u", runner.work_dir, slot, ++rs->seq);
	char *home = xasprintf("%s/home", scratch), *tmpd = xasprintf("%s/tmp", scratch);
	char *venv = runner_venv_of(b->python), *env[RUNNER_ENV_MAX + 1];
	size_t ne = runner_run_env(env, slot, venv, b->project_dir, cwd, home, tmpd);

	/* sys.path as `python -m pytest` builds it from that PYTHONPATH */
	*path_out = json_array();
	for (char **e = env; *e != NULL; e++) {
		if (!util_starts_with(*e, "PYTHONPATH="))
			continue;
		char *copy = xstrdup(*e + strlen("PYTHONPATH=")), *save = NULL;
		for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
			json_array_append_new(*path_out, json_string(t));
		free(copy);
	}
	*env_out = warm_json_env(env);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(cwd);
	free(home);
	free(tmpd);
	free(venv);
	return scratch;
}

/*
 * The request for a pytest process over mods[0..n), as meshtest_worker.py
 * takes it; with each (isolation "module"), each module in a child of its
 * own ("modules", meshtest_each.py).
 */
static json_t *
warm_request(int slot, const struct runner_batch *b, const char *lower,
	     const char *const *mods, size_t n, int each)
{
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot), *scratch;
	char **pargs = runner_pytest_args(b->project_dir, cwd), key[RUNNER_KEY_LEN];
	json_t *env, *path, *argv = json_array(), *req;

	scratch = warm_env(slot, b, &env, &path);
	for (size_t i = 0; pargs[i] != NULL; i++)
		json_array_append_new(argv, json_string(pargs[i]));
	runner_strv_free(pargs);
	runner_report_key(key);
	if (n > 1 && !each)   /* one module's collection error stops no other */
		json_array_append_new(argv, json_string("--continue-on-collection-errors"));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(argv, json_string(mods[i]));
	/* the key goes to the plugin over the worker's socket, never through the environment */
	req = json_pack("{s:s, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:[s], s:b, s:b, s:s}",
			"op", "run", "id", (json_int_t)warm_slots[slot].seq, "argv", argv, "env",
			env, "path", path, "cwd", cwd, "lower", lower, "scratch", scratch,
			"keep", runner.data_dir, "services", setup_needed(b->project_dir),
			"fresh", 0, "key", key);
	if (runner.py_prefix != NULL)
		json_array_append_new(json_object_get(req, "keep"), json_string(runner.py_prefix));
	if (each) {
		json_t *m = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(m, json_string(mods[i]));
		json_object_set_new(req, "modules", m);
		json_object_set_new(req, "output_cap", json_integer((json_int_t)runner.output_cap));
		json_object_set_new(req, "report_cap", json_integer((json_int_t)RUNNER_REPORT_CAP));
	}
	free(scratch);
	free(cwd);
	return req;
}

/*
 * A module's own output, from its module_exit event: "<name>" (what pytest
 * printed before the modules forked, then what its process printed) and
 * "<name>_dropped", under the cap.
 */
static void
warm_each_output(struct buf *b, json_t *exit_ev, const char *name)
{
	char dropped[32];
	const char *text = json_string_value(json_object_get(exit_ev, name));
	json_t *d;

	buf_init(b, runner.output_cap);
	if (text != NULL)
		(void)buf_append_trunc(b, text, strlen(text));
	snprintf(dropped, sizeof(dropped), "%s_dropped", name);
	d = json_object_get(exit_ev, dropped);
	if (json_is_integer(d) && json_integer_value(d) > 0)
		b->dropped += (size_t)json_integer_value(d);
}

/*
 * In a run with each module in a process of its own: module i's result, as
 * if it had run alone, from its part of the stream and how its process
 * ended; or, with res (the run is over), for the module the deadline or the
 * worker's death stopped. NULL for the others (the zygote did not reach
 * them: they run alone).
 */
static json_t *
warm_each_result(const struct session *sess, const struct worker_result *res,
		 const struct runner_batch *b, const struct warm_watch_ctx *wc,
		 const char *module, size_t i)
{
	struct report_exit ex = {
		.started = 1,
		.duration = session_duration(sess, i),
		.timeout = b->timeout,
		.module = module,
	};
	json_t *exit_ev = session_exit_event(sess, i), *j;
	struct buf out, err;
	int status, sig;
	char *part;

	if (session_exit(sess, i, &status, &sig)) {
		ex.exit_code = status < 0 ? 0 : status;
		ex.term_signal = sig;
	} else if (res != NULL && (res->timed_out || res->worker_died) &&
		   session_current(sess) == (long)i) {
		/* ended as it would have alone (its output went with the zygote) */
		ex.timed_out = res->timed_out;
		ex.term_signal = SIGKILL;
	} else {
		return NULL;
	}
	warm_each_output(&out, exit_ev, "stdout");
	warm_each_output(&err, exit_ev, "stderr");
	ex.stdout_tail = out.data;
	ex.stderr_tail = err.data;
	part = xasprintf("%s\n%s", wc->hello ? wc->hello : "", wc->part.data ? wc->part.data : "");
	j = report_build(part, strlen(part), &ex);
	free(part);
	runner_attach_output(j, &out, &err);
	buf_free(&out);
	buf_free(&err);
	return j;
}

/*
 * Hand req (a pytest process over mods[0..n)) to the slot's worker *wp and
 * supervise it: per-module deadlines, then a result for each module that
 * counts from this run (all of them for one module; in a session those that
 * finished in it) into results[], the others left NULL. Returns 0,
 * -ECANCELED at shutdown (nothing in results[]) or when the slot was stopped
 * (results[] holds the modules that finished in the session before it), or
 * -EAGAIN when the worker could not run it. A run
 * that timed out, crashed or left processes behind costs the worker (*wp
 * becomes NULL): the next run starts a fresh one.
 */
static int
warm_supervise(int slot, struct worker **wp, const struct runner_batch *b, json_t *req,
	       const char *const *mods, size_t n, int each, const struct warm_live *live,
	       json_t **results)
{
	struct warm_slot *rs = &warm_slots[slot];
	struct worker *w = *wp;
	struct worker_result res;
	struct session *sess;
	struct worker_watch watch;
	struct warm_watch_ctx wctx;
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot), *msg = NULL;
	char *report = NULL;
	size_t rlen = 0;
	int r, normal, stopped;

	sess = session_new(mods, n, b->timeout, util_mono());
	if (each)
		session_one_by_one(sess);
	memset(&wctx, 0, sizeof(wctx));
	wctx.sess = sess;
	wctx.key = json_string_value(json_object_get(req, "key"));
	wctx.each = each;
	wctx.live = each ? live : NULL;
	buf_init(&wctx.part, RUNNER_REPORT_CAP);
	wctx.b = b;
	wctx.mods = mods;
	wctx.results = results;
	watch.ctx = &wctx;
	watch.on_line = warm_watch_line;
	watch.deadline = warm_watch_deadline;
	r = worker_run(w, req, &watch, runner.output_cap, RUNNER_REPORT_CAP, &res);
	/*
	 * A shutdown drops everything; a stop of the slot (its evaluation was
	 * cancelled) keeps the modules that finished in a session before it.
	 */
	if (runner_aborted() || (res.cancelled && n == 1)) {
		r = -ECANCELED;
		goto out;
	}
	stopped = res.cancelled;
	/* from here on, only what the plugin wrote */
	report = report_keep_keyed(res.report.data, res.report.len, wctx.key, &rlen);
	if (!stopped && (r < 0 || !res.started ||
			 (msg = warm_worker_error(report, rlen)) != NULL)) {
		log_warn("runner: slot %d: the worker could not run %s: %s", slot, mods[0],
			 msg ? msg : res.error[0] ? res.error : strerror(-r));
		r = -EAGAIN;
		goto out;
	}
	normal = !stopped && !res.timed_out && !res.worker_died && res.term_signal == 0 &&
		 (res.exit_code == 0 || res.exit_code == 1 || res.exit_code == 5);
	session_end(sess, normal, util_mono());
	if (n == 1) {
		struct report_exit ex = {
			.started = 1,
			.exit_code = res.exit_code,
			.term_signal = res.worker_died ? SIGKILL : res.term_signal,
			.timed_out = res.timed_out,
			.duration = res.duration,
			.timeout = b->timeout,
			.stderr_tail = res.err.data,
			.stdout_tail = res.out.data,
			.module = mods[0],
		};
		json_t *j = report_build(report, rlen, &ex);
		(void)setup_fix_result(j, report, rlen, res.err.data, cwd, mods[0]);
		runner_attach_output(j, &res.out, &res.err);
		results[0] = j;
	} else if (each) {
		/* those whose marker came have theirs; the one the run's end stopped */
		long cur = session_current(sess);
		if (cur >= 0 && results[cur] == NULL)
			results[cur] = warm_each_result(sess, &res, b, &wctx, mods[cur], (size_t)cur);
	} else {
		const char *first = NULL;
		char **streams = xcalloc(n, sizeof(*streams));
		size_t *lens = xcalloc(n, sizeof(*lens));

		session_streams(sess, report, rlen, streams, lens);
		for (size_t i = 0; i < n; i++) {
			json_t *j;
			if (!session_finished(sess, i))
				continue;
			struct report_exit ex = {
				.started = 1,
				.duration = session_duration(sess, i),
				.timeout = b->timeout,
				.module = mods[i],
			};
			j = report_build(streams[i], lens[i], &ex);
			/* the session's output once, with its first module */
			if (first == NULL) {
				first = mods[i];
				runner_attach_output(j, &res.out, &res.err);
			} else {
				json_object_set_new(j, "output_in", json_string(first));
			}
			json_object_set_new(j, "session", json_pack("{s:I, s:f}", "modules",
				(json_int_t)n, "wall", res.duration));
			results[i] = j;
		}
		for (size_t i = 0; i < n; i++)
			free(streams[i]);
		free(streams);
		free(lens);
	}
	if (res.report.dropped > 0)
		log_warn("runner: report of %s cut at %u bytes", mods[0], RUNNER_REPORT_CAP);
	if (stopped)
		r = -ECANCELED;
out:
	if (worker_alive(w) && (res.term_signal != 0 || res.rss_kb > WARM_WORKER_RSS_KB ||
				r == -EAGAIN)) {
		warm_forget(rs, w);
		worker_stop(w);
		*wp = NULL;
	} else if (!worker_alive(w)) {
		warm_forget(rs, w);
		worker_kill(w);
		*wp = NULL;
	}
	worker_result_free(&res);
	buf_free(&wctx.part);
	free(wctx.hello);
	session_free(sess);
	free(report);
	free(msg);
	free(cwd);
	return r;
}

/* One pytest process over mods[0..n) in the slot's worker (see warm_supervise). */
int
warm_run(int slot, struct worker **wp, const struct runner_batch *b, const char *lower,
	 const char *const *mods, size_t n, int each, const struct warm_live *live,
	 json_t **results)
{
	json_t *req = warm_request(slot, b, lower, mods, n, each);
	int r = warm_supervise(slot, wp, b, req, mods, n, each, live, results);

	json_decref(req);
	return r;
}
