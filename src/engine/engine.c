/*
 * engine.c - intake, fetching and slot workers (see engine.h).
 *
 * Threads:
 *  - HTTP threads call engine_submit_*: they write the evaluation to the
 *    store, queue its projects for fetching and return.
 *  - ENGINE_FETCHERS fetcher threads take projects off the fetch queue (a
 *    mutex-protected list, which alone holds access tokens, in memory only),
 *    unpack or clone them into <data>/projects/<eval>/<idx> and mark them
 *    ready in the store.
 *  - One thread per slot claims the next runnable module from the store,
 *    prepares the project's environment and runs the module through the
 *    runner, then records the result.
 * Shared state: the fetch queue (fetch_lock) and the wake-up condition for
 * slots (work_lock/work_cond). Everything else lives in the store.
 */
#include "engine/engine.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "fetch/fetch_git.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"
#include "runner/runner.h"
#include "store/store.h"

#define ENGINE_FETCHERS 2
#define ENGINE_INFRA_RETRIES 3

struct fetch_item {
	struct fetch_item *next;
	char eval_id[37];
	int idx;
	char *kind;
	char *source;        /* what to clone or the ZIP prefix's project */
	char *url;           /* git: the URL as given (may hold credentials) */
	char *prefix;        /* zip: member prefix */
	char *upload_path;   /* zip: the stored upload */
	char *token;         /* git: in memory only */
};

struct engine {
	const struct config *cfg;
	struct store *st;
	char *address;
	char *data_dir;
	char *work_dir;
	char *uploads_dir;
	char *projects_dir;
	struct fetch_limits limits;
	char **git_hosts;

	pthread_mutex_t fetch_lock;
	pthread_cond_t fetch_cond;
	struct fetch_item *fetch_head, *fetch_tail;

	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	unsigned work_seq;   /* bumped on every wake-up, guarded by work_lock */

	int stopping;        /* guarded by both locks when set */
	engine_change_fn on_change;   /* set once, atomically, after start */
	void *on_change_ctx;
	pthread_t fetchers[ENGINE_FETCHERS];
	pthread_t *slots;
	long nslots;
	struct slot_arg *slot_args;
};

struct slot_arg {
	struct engine *eng;
	int slot;
};

/* ------------------------------------------------------------ wake-ups */

static void
engine_changed(struct engine *eng, const char *eval_id)
{
	engine_change_fn fn = __atomic_load_n(&eng->on_change, __ATOMIC_ACQUIRE);

	if (fn != NULL)
		fn(eng->on_change_ctx, eval_id);
}

void
engine_set_change_hook(struct engine *eng, engine_change_fn fn, void *ctx)
{
	/* Slot threads already run: publish ctx before fn. */
	eng->on_change_ctx = ctx;
	__atomic_store_n(&eng->on_change, fn, __ATOMIC_RELEASE);
}

static void
engine_wake_slots(struct engine *eng)
{
	pthread_mutex_lock(&eng->work_lock);
	eng->work_seq++;
	pthread_cond_broadcast(&eng->work_cond);
	pthread_mutex_unlock(&eng->work_lock);
}

/* --------------------------------------------------------------- queue */

static void
fetch_item_free(struct fetch_item *it)
{
	if (it == NULL)
		return;
	if (it->token != NULL) {
		OPENSSL_cleanse(it->token, strlen(it->token));
		free(it->token);
	}
	if (it->url != NULL) {
		OPENSSL_cleanse(it->url, strlen(it->url));
		free(it->url);
	}
	free(it->kind);
	free(it->source);
	free(it->prefix);
	free(it->upload_path);
	free(it);
}

static void
fetch_enqueue(struct engine *eng, struct fetch_item *it)
{
	pthread_mutex_lock(&eng->fetch_lock);
	it->next = NULL;
	if (eng->fetch_tail != NULL)
		eng->fetch_tail->next = it;
	else
		eng->fetch_head = it;
	eng->fetch_tail = it;
	pthread_cond_signal(&eng->fetch_cond);
	pthread_mutex_unlock(&eng->fetch_lock);
}

static struct fetch_item *
fetch_dequeue(struct engine *eng)
{
	struct fetch_item *it;

	pthread_mutex_lock(&eng->fetch_lock);
	while (eng->fetch_head == NULL && !eng->stopping)
		pthread_cond_wait(&eng->fetch_cond, &eng->fetch_lock);
	it = eng->fetch_head;
	if (it != NULL && !eng->stopping) {
		eng->fetch_head = it->next;
		if (eng->fetch_head == NULL)
			eng->fetch_tail = NULL;
	} else {
		it = NULL;
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	return it;
}

/* ------------------------------------------------------------- fetching */

static json_t *
strv_to_json(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* Fetch one project into its folder and record the outcome in the store. */
static void
fetch_one(struct engine *eng, struct fetch_item *it)
{
	char err[1024] = "";
	char *dir = xasprintf("%s/%s/%d", eng->projects_dir, it->eval_id, it->idx);
	char *parent = xasprintf("%s/%s", eng->projects_dir, it->eval_id);
	char **warnings = NULL, **modules = NULL;
	size_t nwarnings = 0, nmodules = 0;
	json_t *wj = NULL;
	int r;

	util_rm_rf(dir);
	util_mkdir_p(parent, 0700);
	if (strcmp(it->kind, "zip") == 0) {
		r = fetch_zip_extract(it->upload_path, it->prefix ? it->prefix : "", dir,
		    &eng->limits, &warnings, &nwarnings, err, sizeof(err));
	} else {
		struct fetch_git_opts o;
		memset(&o, 0, sizeof(o));
		o.token = it->token;
		o.timeout = 300;
		o.max_bytes = 1ULL << 30;
		o.allow_file_urls = eng->cfg->allow_file_urls != 0;
		o.allowed_hosts = (const char *const *)eng->git_hosts;
		r = fetch_git_clone(it->url ? it->url : it->source, dir, &o, err, sizeof(err));
	}
	wj = strv_to_json(warnings, nwarnings);
	if (r < 0) {
		log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
		store_project_error(eng->st, it->eval_id, it->idx, err[0] ? err :
		    "cannot fetch the project", wj, util_now());
		util_rm_rf(dir);
		engine_changed(eng, it->eval_id);
		goto out;
	}
	r = layout_list_modules(dir, &modules, &nmodules);
	if (r < 0 || nmodules == 0) {
		store_project_error(eng->st, it->eval_id, it->idx, r < 0 ?
		    "cannot list the project's test modules" :
		    "no test modules found: a project needs a tests/ folder with test_*.py or"
		    " *_test.py files", wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	if (store_project_ready(eng->st, it->eval_id, it->idx, dir,
	    (const char *const *)modules, nmodules, wj) == 0) {
		log_info("engine: %s project %d ready: %zu modules, %zu warnings", it->eval_id,
		    it->idx, nmodules, nwarnings);
		engine_wake_slots(eng);
		engine_changed(eng, it->eval_id);
	}
out:
	json_decref(wj);
	layout_strv_free(warnings, nwarnings);
	layout_strv_free(modules, nmodules);
	free(dir);
	free(parent);
}

static void *
fetcher_main(void *arg)
{
	struct engine *eng = arg;
	struct fetch_item *it;

	while ((it = fetch_dequeue(eng)) != NULL) {
		fetch_one(eng, it);
		fetch_item_free(it);
	}
	return NULL;
}

/* ---------------------------------------------------------------- slots */

static int
engine_is_stopping(struct engine *eng)
{
	int s;

	pthread_mutex_lock(&eng->work_lock);
	s = eng->stopping;
	pthread_mutex_unlock(&eng->work_lock);
	return s;
}

static void
run_claimed(struct engine *eng, int slot, struct store_claim *c)
{
	char err[1024] = "";
	char *python = NULL;
	json_t *result = NULL;
	struct runner_module_req req;
	const char *outcome;
	int r;

	r = runner_prepare_env(c->dir, slot, &python, err, sizeof(err));
	if (r < 0) {
		if (engine_is_stopping(eng)) {
			store_release_module(eng->st, c);
			return;
		}
		log_warn("engine: %s %s: environment failed: %s", c->eval_id, c->project_id, err);
		store_project_error(eng->st, c->eval_id, c->project_idx, err, NULL, util_now());
		engine_changed(eng, c->eval_id);
		return;
	}
	memset(&req, 0, sizeof(req));
	req.project_dir = c->dir;
	req.module_path = c->path;
	req.python = python;
	req.timeout = c->module_timeout > 0 ? c->module_timeout : eng->cfg->module_timeout;
	req.slot = slot;
	log_info("engine: slot %d runs %s/%s (evaluation %s, attempt %d)", slot, c->project_id,
	    c->path, c->eval_id, c->attempt);
	r = runner_run_module(&req, &result);
	free(python);
	if (engine_is_stopping(eng)) {
		/* Killed by our own shutdown: not the module's result. */
		json_decref(result);
		store_release_module(eng->st, c);
		return;
	}
	if (r < 0 || result == NULL) {
		log_error("engine: runner failed on %s/%s: %s", c->project_id, c->path,
		    strerror(-r));
		json_decref(result);
		if (c->attempt < ENGINE_INFRA_RETRIES) {
			store_release_module(eng->st, c);
			util_sleep(1);
			return;
		}
		result = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:[]}", "outcome",
		    "infra_error", "message", "the runner failed on this node", "passed", 0,
		    "failed", 1, "skipped", 0, "errors", 1, "duration", 0.0, "tests");
	}
	outcome = json_string_value(json_object_get(result, "outcome"));
	if (outcome != NULL && strcmp(outcome, "infra_error") == 0 &&
	    c->attempt < ENGINE_INFRA_RETRIES) {
		log_warn("engine: %s/%s could not start (%s); retrying", c->project_id, c->path,
		    json_string_value(json_object_get(result, "message")));
		json_decref(result);
		store_release_module(eng->st, c);
		util_sleep(1);
		return;
	}
	json_object_set_new(result, "project_id", json_string(c->project_id));
	if (store_record_result(eng->st, c, eng->address, result, util_now()) < 0)
		log_error("engine: cannot record the result of %s/%s", c->project_id, c->path);
	else
		engine_changed(eng, c->eval_id);
	log_info("engine: %s/%s %s: %lld passed, %lld failed, %lld skipped", c->project_id,
		    c->path, json_string_value(json_object_get(result, "outcome")),
		    json_integer_value(json_object_get(result, "passed")),
		    json_integer_value(json_object_get(result, "failed")),
		    json_integer_value(json_object_get(result, "skipped")));
	json_decref(result);
}

static void *
slot_main(void *arg)
{
	struct slot_arg *sa = arg;
	struct engine *eng = sa->eng;
	struct store_claim c;

	for (;;) {
		unsigned seq;
		int r;

		pthread_mutex_lock(&eng->work_lock);
		if (eng->stopping) {
			pthread_mutex_unlock(&eng->work_lock);
			break;
		}
		seq = eng->work_seq;
		pthread_mutex_unlock(&eng->work_lock);

		r = store_claim_module(eng->st, eng->address, &c);
		if (r == 1) {
			engine_changed(eng, c.eval_id);
			run_claimed(eng, sa->slot, &c);
			continue;
		}
		/* Nothing runnable: sleep until woken (or a second, to be safe). */
		pthread_mutex_lock(&eng->work_lock);
		if (!eng->stopping && seq == eng->work_seq) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&eng->work_cond, &eng->work_lock, &ts);
		}
		pthread_mutex_unlock(&eng->work_lock);
	}
	return NULL;
}

/* --------------------------------------------------------------- intake */

json_t *
engine_settings_parse(json_t *in, char *err, size_t errlen)
{
	json_t *out = json_object();
	json_t *v = json_object_get(in, "module_timeout");

	if (v != NULL && !json_is_null(v)) {
		double t = -1;
		if (json_is_number(v)) {
			t = json_number_value(v);
		} else if (json_is_string(v)) {
			char *end = NULL;
			t = strtod(json_string_value(v), &end);
			if (end == json_string_value(v) || *end != '\0')
				t = -1;
		}
		if (!(t >= 1 && t <= 86400)) {
			snprintf(err, errlen, "module_timeout must be a number of seconds from 1"
			    " to 86400");
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, "module_timeout", json_real(t));
	}
	return out;
}

/* Remove "user:password@" from a URL for storing and showing it. */
static char *
url_without_credentials(const char *url, int *had)
{
	const char *scheme = strstr(url, "://");
	const char *host, *at, *slash;

	*had = 0;
	if (scheme == NULL)
		return xstrdup(url);
	host = scheme + 3;
	slash = strchr(host, '/');
	at = strchr(host, '@');
	if (at == NULL || (slash != NULL && at > slash))
		return xstrdup(url);
	*had = 1;
	return xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

static char *
root_name_of(const char *filename)
{
	const char *base;
	char *name;

	if (filename == NULL || *filename == '\0')
		return xstrdup("project");
	base = strrchr(filename, '/');
	base = base ? base + 1 : filename;
	name = xstrdup(*base ? base : "project");
	if (util_ends_with(name, ".zip") || util_ends_with(name, ".ZIP"))
		name[strlen(name) - 4] = '\0';
	if (*name == '\0' || *name == '.' || strchr(name, '/') != NULL) {
		free(name);
		name = xstrdup("project");
	}
	return name;
}

int
engine_submit_zip(struct engine *eng, const char *upload_path, const char *filename,
    json_t *settings, char id[37], char *err, size_t errlen)
{
	struct fetch_zip_plan *plan = NULL;
	struct store_project_new *projects = NULL;
	char **ids = NULL, **sources = NULL;
	char *root = root_name_of(filename), *stored = NULL;
	int r, status = 0;

	r = fetch_zip_scan(upload_path, root, &eng->limits, &plan, err, errlen);
	if (r < 0) {
		status = r == -EINVAL ? 400 : r == -E2BIG ? 413 : 422;
		goto out;
	}
	if (plan->nprojects > (size_t)eng->cfg->max_projects) {
		snprintf(err, errlen, "the upload holds %zu projects, more than the limit of %ld",
		    plan->nprojects, eng->cfg->max_projects);
		status = 413;
		goto out;
	}
	projects = xcalloc(plan->nprojects, sizeof(*projects));
	ids = xcalloc(plan->nprojects, sizeof(*ids));
	sources = xcalloc(plan->nprojects, sizeof(*sources));
	for (size_t i = 0; i < plan->nprojects; i++)
		ids[i] = xstrdup(plan->projects[i].name);
	layout_dedupe_ids(ids, plan->nprojects);
	for (size_t i = 0; i < plan->nprojects; i++) {
		sources[i] = xasprintf("zip:%s", plan->projects[i].name);
		projects[i].project_id = ids[i];
		projects[i].source = sources[i];
		projects[i].prefix = plan->projects[i].prefix;
		projects[i].modules = (const char *const *)plan->projects[i].modules;
		projects[i].nmodules = plan->projects[i].nmodules;
	}
	util_uuid4(id);
	stored = xasprintf("%s/%s.zip", eng->uploads_dir, id);
	if (rename(upload_path, stored) < 0) {
		snprintf(err, errlen, "cannot store the upload: %s", strerror(errno));
		status = 500;
		goto out;
	}
	util_fsync_path(eng->uploads_dir);
	if (store_eval_create(eng->st, id, util_now(), "zip", eng->address, settings, 0,
	    stored, projects, plan->nprojects) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		(void)!rename(stored, upload_path);
		status = 500;
		goto out;
	}
	for (size_t i = 0; i < plan->nprojects; i++) {
		struct fetch_item *it = xcalloc(1, sizeof(*it));
		snprintf(it->eval_id, sizeof(it->eval_id), "%s", id);
		it->idx = (int)i;
		it->kind = xstrdup("zip");
		it->source = xstrdup(sources[i]);
		it->prefix = xstrdup(plan->projects[i].prefix);
		it->upload_path = xstrdup(stored);
		fetch_enqueue(eng, it);
	}
	engine_changed(eng, id);
	log_info("engine: accepted evaluation %s: ZIP with %zu projects", id, plan->nprojects);
out:
	if (ids != NULL)
		for (size_t i = 0; plan != NULL && i < plan->nprojects; i++) {
			free(ids[i]);
			free(sources[i]);
		}
	free(ids);
	free(sources);
	free(projects);
	free(stored);
	free(root);
	fetch_zip_plan_free(plan);
	return status;
}

int
engine_submit_git(struct engine *eng, const char *const *urls, size_t n,
    const char *token, json_t *settings, char id[37], char *err, size_t errlen)
{
	struct store_project_new *projects = NULL;
	struct fetch_git_opts o;
	char **ids = NULL, **sources = NULL;
	int status = 0, any_secret = token != NULL;

	if (n > (size_t)eng->cfg->max_projects) {
		snprintf(err, errlen, "%zu projects is more than the limit of %ld", n,
		    eng->cfg->max_projects);
		return 413;
	}
	memset(&o, 0, sizeof(o));
	o.allow_file_urls = eng->cfg->allow_file_urls != 0;
	o.allowed_hosts = (const char *const *)eng->git_hosts;
	projects = xcalloc(n, sizeof(*projects));
	ids = xcalloc(n, sizeof(*ids));
	sources = xcalloc(n, sizeof(*sources));
	for (size_t i = 0; i < n; i++) {
		char e[512];
		int had = 0;
		if (fetch_git_check_url(urls[i], &o, e, sizeof(e)) < 0) {
			sources[i] = url_without_credentials(urls[i], &had);
			snprintf(err, errlen, "project %zu (%s): %s", i + 1, sources[i], e);
			status = 400;
			goto out;
		}
		sources[i] = url_without_credentials(urls[i], &had);
		any_secret |= had;
		ids[i] = layout_repo_name(sources[i]);
		if (ids[i] == NULL)
			ids[i] = xasprintf("project-%zu", i + 1);
	}
	layout_dedupe_ids(ids, n);
	for (size_t i = 0; i < n; i++) {
		projects[i].project_id = ids[i];
		projects[i].source = sources[i];
	}
	util_uuid4(id);
	if (store_eval_create(eng->st, id, util_now(), "git", eng->address, settings,
	    any_secret, NULL, projects, n) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		status = 500;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct fetch_item *it = xcalloc(1, sizeof(*it));
		snprintf(it->eval_id, sizeof(it->eval_id), "%s", id);
		it->idx = (int)i;
		it->kind = xstrdup("git");
		it->source = xstrdup(sources[i]);
		it->url = xstrdup(urls[i]);
		it->token = token ? xstrdup(token) : NULL;
		fetch_enqueue(eng, it);
	}
	engine_changed(eng, id);
	log_info("engine: accepted evaluation %s: %zu git repositories", id, n);
out:
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(sources[i]);
	}
	free(ids);
	free(sources);
	free(projects);
	return status;
}

/* --------------------------------------------------------------- set-up */

/* Slot uids derived from the data folder, so a restart finds its leftovers. */
static long
derive_uid_base(const char *data_dir)
{
	char real[PATH_MAX];
	unsigned long h = 1469598103UL;

	if (realpath(data_dir, real) == NULL)
		snprintf(real, sizeof(real), "%s", data_dir);
	for (const char *p = real; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619UL;
	return 200000 + (long)(h % 20000UL) * 256;
}

static char **
split_commas(const char *s)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap + 1, sizeof(*v));
	char *copy = xstrdup(s), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (*t == '\0')
			continue;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, (cap + 1) * sizeof(*v));
			if (v == NULL)
				abort();
		}
		v[n++] = xstrdup(t);
		v[n] = NULL;
	}
	free(copy);
	if (n == 0) {
		free(v);
		return NULL;
	}
	return v;
}

/* Projects left half-fetched by a previous run of this node. */
static void
engine_recover(struct engine *eng)
{
	struct store_fetch_job *jobs = NULL;
	size_t n = 0;

	store_requeue_running(eng->st, eng->address);
	if (store_fetch_jobs(eng->st, eng->address, &jobs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct fetch_item *it;
		if (strcmp(jobs[i].kind, "git") == 0 && jobs[i].has_token) {
			store_project_error(eng->st, jobs[i].eval_id, jobs[i].idx,
			    "the node restarted before this repository was cloned, and access"
			    " tokens are kept in memory only: submit this project again", NULL,
			    util_now());
			continue;
		}
		it = xcalloc(1, sizeof(*it));
		snprintf(it->eval_id, sizeof(it->eval_id), "%s", jobs[i].eval_id);
		it->idx = jobs[i].idx;
		it->kind = xstrdup(jobs[i].kind);
		it->source = xstrdup(jobs[i].source);
		it->prefix = xstrdup(jobs[i].prefix);
		it->upload_path = xstrdup(jobs[i].upload_path);
		fetch_enqueue(eng, it);
	}
	if (n > 0)
		log_info("engine: %zu projects to fetch again after a restart", n);
	store_fetch_jobs_free(jobs, n);
}

int
engine_start(const struct config *cfg, struct store *st, struct engine **out,
    char *err, size_t errlen)
{
	struct engine *eng = xcalloc(1, sizeof(*eng));
	struct runner_config rc;
	int r;

	eng->cfg = cfg;
	eng->st = st;
	eng->address = xstrdup(cfg->advertise);
	eng->data_dir = xstrdup(cfg->data_dir);
	eng->uploads_dir = xasprintf("%s/uploads", cfg->data_dir);
	eng->projects_dir = xasprintf("%s/projects", cfg->data_dir);
	eng->git_hosts = cfg->git_hosts ? split_commas(cfg->git_hosts) : NULL;
	fetch_limits_default(&eng->limits);
	util_mkdir_p(eng->uploads_dir, 0700);
	util_mkdir_p(eng->projects_dir, 0700);
	pthread_mutex_init(&eng->fetch_lock, NULL);
	pthread_cond_init(&eng->fetch_cond, NULL);
	pthread_mutex_init(&eng->work_lock, NULL);
	pthread_cond_init(&eng->work_cond, NULL);

	/*
	 * The slot users must reach the runner's folder; a data folder under a
	 * private home (/root/...) is not, so the runner then works elsewhere.
	 */
	if (cfg->work_dir != NULL) {
		eng->work_dir = xstrdup(cfg->work_dir);
	} else if (runner_check_reachable(cfg->data_dir, err, errlen) == 0) {
		eng->work_dir = xstrdup(cfg->data_dir);
	} else {
		eng->work_dir = xasprintf("/var/tmp/meshtest-%ld", derive_uid_base(cfg->data_dir));
		log_info("engine: %s; environments and runs go to %s", err, eng->work_dir);
		err[0] = '\0';
	}
	util_mkdir_p(eng->work_dir, 0711);
	memset(&rc, 0, sizeof(rc));
	rc.data_dir = eng->work_dir;
	rc.python = cfg->python;
	rc.slots = (int)cfg->slots;
	rc.uid_base = cfg->uid_base ? cfg->uid_base : derive_uid_base(cfg->data_dir);
	rc.output_cap = (size_t)cfg->output_kb * 1024;
	rc.sandbox = cfg->sandbox;
	r = runner_init(&rc, err, errlen);
	if (r < 0) {
		engine_stop(eng);
		return r;
	}
	engine_recover(eng);
	for (int i = 0; i < ENGINE_FETCHERS; i++)
		pthread_create(&eng->fetchers[i], NULL, fetcher_main, eng);
	eng->nslots = cfg->slots;
	eng->slots = xcalloc((size_t)eng->nslots, sizeof(*eng->slots));
	eng->slot_args = xcalloc((size_t)eng->nslots, sizeof(*eng->slot_args));
	for (long i = 0; i < eng->nslots; i++) {
		eng->slot_args[i].eng = eng;
		eng->slot_args[i].slot = (int)i;
		pthread_create(&eng->slots[i], NULL, slot_main, &eng->slot_args[i]);
	}
	log_info("engine: %ld slots, uids from %ld, %s", eng->nslots, rc.uid_base,
	    runner_isolated() ? "runs isolated as unprivileged users" :
	    "runs NOT isolated (not root)");
	*out = eng;
	return 0;
}

void
engine_stop(struct engine *eng)
{
	struct fetch_item *it;

	if (eng == NULL)
		return;
	pthread_mutex_lock(&eng->fetch_lock);
	pthread_mutex_lock(&eng->work_lock);
	eng->stopping = 1;
	pthread_cond_broadcast(&eng->work_cond);
	pthread_cond_broadcast(&eng->fetch_cond);
	pthread_mutex_unlock(&eng->work_lock);
	pthread_mutex_unlock(&eng->fetch_lock);
	if (eng->slots != NULL) {
		runner_abort_all();
		for (long i = 0; i < eng->nslots; i++)
			pthread_join(eng->slots[i], NULL);
		for (int i = 0; i < ENGINE_FETCHERS; i++)
			pthread_join(eng->fetchers[i], NULL);
	}
	while ((it = eng->fetch_head) != NULL) {
		eng->fetch_head = it->next;
		fetch_item_free(it);
	}
	if (eng->git_hosts != NULL) {
		for (char **p = eng->git_hosts; *p; p++)
			free(*p);
		free(eng->git_hosts);
	}
	free(eng->slots);
	free(eng->slot_args);
	free(eng->address);
	free(eng->data_dir);
	free(eng->work_dir);
	free(eng->uploads_dir);
	free(eng->projects_dir);
	free(eng);
}

const char *
engine_address(const struct engine *eng)
{
	return eng->address;
}

struct store *
engine_store(const struct engine *eng)
{
	return eng->st;
}

json_t *
engine_health(const struct engine *eng)
{
	return json_pack("{s:s, s:s, s:b, s:s, s:I, s:s}", "status", "ok", "address",
	    eng->address, "isolated",
	    runner_isolated() && strcmp(runner_sandbox_name(), "bwrap") == 0,
	    "sandbox", runner_sandbox_name(), "slots",
	    (json_int_t)eng->nslots, "version", "0.1.0");
}
