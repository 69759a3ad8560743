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
 *  - One thread per slot claims the next runnable module (from this node's
 *    store for the evaluations it coordinates, else from the coordinator of
 *    another evaluation with POST /task/claim), gets the project's files by
 *    digest, prepares its environment, runs the module through the runner
 *    and records the result (which replication spreads).
 *  - One coordinator thread looks after the evaluations this node
 *    coordinates (sched_coordinator: the accepting node while it lives, else
 *    a deterministic successor): it fetches their projects (also after a
 *    takeover) and gives back to pending the modules of workers that died or
 *    no longer run them.
 * Shared state: the fetch queue and its in-flight set (fetch_lock), the
 * wake-up condition for slots (work_lock/work_cond), what each slot runs now
 * (run_lock). Everything else lives in the store.
 */
#include "engine/engine.h"

#include <dirent.h>
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
#include "cluster/peer.h"
#include "engine/blob.h"
#include "runner/runner.h"
#include "runner/setup.h"
#include "sched/sched.h"
#include "store/store.h"

#define ENGINE_FETCHERS 2
#define ENGINE_INFRA_RETRIES 3
#define ENGINE_SCHED_PERIOD 0.5     /* seconds between coordinator rounds */
#define ENGINE_STALE_CLAIM 10.0     /* a claim its worker does not run is given back after */
#define ENGINE_RUNNING_POLL 3.0     /* seconds between GET /task/running of one worker */
#define ENGINE_MAX_INFLIGHT 4096
#define ENGINE_WARMUP 3.0           /* seconds for membership to settle after start */

struct fetch_item {
	struct fetch_item *next;
	char eval_id[37];
	int idx;
	char *kind;
	char *source;        /* what to clone or the ZIP prefix's project */
	char *url;           /* git: the URL as submitted (may hold credentials); only
	                      * the submission's own items have it, never a retry */
	char *prefix;        /* zip: member prefix */
	char *upload_digest; /* zip: the upload's blob */
	char *token;         /* git: in memory only */
	int has_token;       /* git: the submission came with credentials */
};

struct engine {
	const struct config *cfg;
	struct store *st;
	char *address;
	char *data_dir;
	char *work_dir;
	char *uploads_dir;
	char *projects_dir;
	char *blobs_dir;
	struct fetch_limits limits;
	char **git_hosts;

	pthread_mutex_t fetch_lock;
	pthread_cond_t fetch_cond;
	struct fetch_item *fetch_head, *fetch_tail;
	char (*inflight)[48];   /* "<eval>/<idx>" queued or being fetched */
	size_t ninflight;

	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	unsigned work_seq;   /* bumped on every wake-up, guarded by work_lock */

	int stopping;        /* guarded by both locks when set */
	engine_change_fn on_change;   /* set once, atomically, after start */
	void *on_change_ctx;
	engine_alive_fn alive_fn;     /* likewise */
	void *alive_ctx;

	pthread_mutex_t run_lock;
	struct store_claim *running;  /* per slot; eval_id[0] == 0: idle */
	pthread_t sched_thread;
	int sched_started;
	double started;               /* util_mono() at start */
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

void
engine_set_alive_fn(struct engine *eng, engine_alive_fn fn, void *ctx)
{
	eng->alive_ctx = ctx;
	__atomic_store_n(&eng->alive_fn, fn, __ATOMIC_RELEASE);
}

/* The live nodes, this one included (malloc'ed strings; engine_strv_free). */
static void
engine_alive(struct engine *eng, char ***addrs, size_t *n)
{
	engine_alive_fn fn = __atomic_load_n(&eng->alive_fn, __ATOMIC_ACQUIRE);

	if (fn == NULL || fn(eng->alive_ctx, addrs, n) < 0 || *n == 0) {
		*addrs = xcalloc(1, sizeof(**addrs));
		(*addrs)[0] = xstrdup(eng->address);
		*n = 1;
	}
}

static void
engine_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* The coordinator of one evaluation of store_eval_work's list. */
static const char *
engine_coordinator_of(json_t *ev, char *const *alive, size_t nalive)
{
	return sched_coordinator(json_string_value(json_object_get(ev, "id")),
	    json_string_value(json_object_get(ev, "accepted_by")),
	    (const char *const *)alive, nalive);
}

/*
 * Until membership has had time to find the other nodes (when there are seeds
 * to find), a node that just started must not believe it is alone: it then
 * coordinates only what it accepted itself.
 */
static int
engine_warm(const struct engine *eng)
{
	return eng->cfg->seeds == NULL || eng->cfg->seeds[0] == '\0' ||
	    util_mono() - eng->started >= ENGINE_WARMUP;
}

/*
 * The ids of the evaluations of work that this node coordinates, as a JSON
 * array text (malloc'ed); with need set, only those with that counter > 0.
 */
static char *
engine_mine(struct engine *eng, json_t *work, char *const *alive, size_t nalive,
    const char *need)
{
	json_t *ids = json_array(), *ev;
	size_t i;
	char *text;
	int warm = engine_warm(eng);

	json_array_foreach(work, i, ev) {
		const char *c = warm ? engine_coordinator_of(ev, alive, nalive) :
		    json_string_value(json_object_get(ev, "accepted_by"));
		if (c == NULL || strcmp(c, eng->address) != 0)
			continue;
		if (need != NULL && json_integer_value(json_object_get(ev, need)) <= 0)
			continue;
		json_array_append(ids, json_object_get(ev, "id"));
	}
	text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	return text;
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
	free(it->upload_digest);
	free(it);
}

static void fetch_done(struct engine *eng, const struct fetch_item *it);

/*
 * Reserve the fetch of projects 0..n-1 of a new evaluation before it is
 * stored, so that no coordinator round can queue them first (without the
 * token, which only the submission's items carry).
 */
static void
fetch_reserve(struct engine *eng, const char *eval_id, size_t n)
{
	pthread_mutex_lock(&eng->fetch_lock);
	for (size_t i = 0; i < n && eng->ninflight < ENGINE_MAX_INFLIGHT; i++)
		snprintf(eng->inflight[eng->ninflight++], sizeof(eng->inflight[0]), "%s/%zu",
		    eval_id, i);
	pthread_mutex_unlock(&eng->fetch_lock);
}

static void
fetch_unreserve(struct engine *eng, const char *eval_id, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fetch_item it;
		memset(&it, 0, sizeof(it));
		snprintf(it.eval_id, sizeof(it.eval_id), "%s", eval_id);
		it.idx = (int)i;
		fetch_done(eng, &it);
	}
}

/* Queue an item whose key fetch_reserve took (never dropped, never deduplicated). */
static void
fetch_push_reserved(struct engine *eng, struct fetch_item *it)
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

/* Queue a project for fetching unless it is queued or being fetched already. */
static void
fetch_enqueue(struct engine *eng, struct fetch_item *it)
{
	char key[48];

	snprintf(key, sizeof(key), "%s/%d", it->eval_id, it->idx);
	pthread_mutex_lock(&eng->fetch_lock);
	for (size_t i = 0; i < eng->ninflight; i++) {
		if (strcmp(eng->inflight[i], key) == 0) {
			pthread_mutex_unlock(&eng->fetch_lock);
			fetch_item_free(it);
			return;
		}
	}
	if (eng->ninflight >= ENGINE_MAX_INFLIGHT) {
		/* The coordinator round queues it again later. */
		pthread_mutex_unlock(&eng->fetch_lock);
		fetch_item_free(it);
		return;
	}
	snprintf(eng->inflight[eng->ninflight++], sizeof(eng->inflight[0]), "%s", key);
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

/*
 * Give a blob to one live peer, so that the project survives this node
 * (best effort: without peers, or when none takes it, it lives here only).
 */
static void
engine_share_blob(struct engine *eng, const char *digest)
{
	char **alive = NULL;
	size_t n = 0;

	engine_alive(eng, &alive, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(alive[i], eng->address) == 0)
			continue;
		if (blob_push(eng->blobs_dir, digest, alive[i],
		    (size_t)eng->cfg->max_upload_mb << 20) == 0)
			break;
		log_warn("engine: cannot give blob %.12s to %s", digest, alive[i]);
	}
	engine_strv_free(alive, n);
}

/* Get a blob from the live nodes (preferred first) unless it is here. */
static int
engine_get_blob(struct engine *eng, const char *digest, const char *preferred, char *err,
    size_t errlen)
{
	char **alive = NULL, **order;
	size_t n = 0, k = 0;
	int r;

	if (blob_has(eng->blobs_dir, digest))
		return 0;
	engine_alive(eng, &alive, &n);
	order = xcalloc(n + 1, sizeof(*order));
	if (preferred != NULL && strcmp(preferred, eng->address) != 0)
		order[k++] = (char *)preferred;
	for (size_t i = 0; i < n; i++)
		if (strcmp(alive[i], eng->address) != 0 &&
		    (preferred == NULL || strcmp(alive[i], preferred) != 0))
			order[k++] = alive[i];
	r = blob_fetch(eng->blobs_dir, digest, order, k, (size_t)eng->cfg->max_upload_mb << 20,
	    err, errlen);
	free(order);
	engine_strv_free(alive, n);
	return r;
}

/* The project's folder for a digest, unpacked once per node (malloc'ed). */
static char *
engine_project_dir(struct engine *eng, const char *digest)
{
	return xasprintf("%s/%s", eng->projects_dir, digest);
}

/*
 * The folder to take tests from in an unpacked instructor archive: the
 * archive's root, or its only folder when that is all it holds and the root
 * has no tests/ (malloc'ed).
 */
static char *
engine_single_folder(const char *root)
{
	DIR *d = opendir(root);
	struct dirent *de;
	char *only = NULL, *tests = xasprintf("%s/tests", root);
	int n = 0;
	struct stat st;

	if (d == NULL || stat(tests, &st) == 0) {
		if (d != NULL)
			closedir(d);
		free(tests);
		return xstrdup(root);
	}
	free(tests);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		free(only);
		only = xasprintf("%s/%s", root, de->d_name);
	}
	closedir(d);
	if (n == 1 && only != NULL && lstat(only, &st) == 0 && S_ISDIR(st.st_mode))
		return only;
	free(only);
	return xstrdup(root);
}

/*
 * Split "scheme://user:password@host/..." into the URL without credentials
 * and the percent-decoded user and password (malloc'ed, NULL when absent).
 */
static char *
url_split_credentials(const char *url, char **user, char **pass)
{
	const char *scheme = strstr(url, "://"), *host, *at, *slash, *colon;

	*user = *pass = NULL;
	if (scheme == NULL)
		return xstrdup(url);
	host = scheme + 3;
	slash = strchr(host, '/');
	at = strchr(host, '@');
	if (at == NULL || (slash != NULL && at > slash))
		return xstrdup(url);
	colon = memchr(host, ':', (size_t)(at - host));
	if (colon != NULL) {
		*user = strndup(host, (size_t)(colon - host));
		*pass = strndup(colon + 1, (size_t)(at - colon - 1));
	} else {
		*user = strndup(host, (size_t)(at - host));
	}
	if (*user == NULL || (colon != NULL && *pass == NULL))
		abort();
	return xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

/*
 * Fetch one project (unpack it from the upload's blob, or clone it), pack it
 * as a blob named by its digest, give the blob to a peer, and record the
 * project as ready (or its error) in the store.
 */
static void
fetch_one(struct engine *eng, struct fetch_item *it)
{
	char err[1024] = "", rnd[17], digest[SHA256_HEX_LEN];
	char *tmp, *final = NULL, *zip = NULL;
	char **warnings = NULL, **modules = NULL;
	size_t nwarnings = 0, nmodules = 0;
	json_t *wj = NULL, *settings = NULL;
	int r;

	/*
	 * A coordinator round may queue a project again from a snapshot taken
	 * just before an earlier fetch of it finished: fetch only what is still
	 * to fetch, so a second (token-less) fetch never undoes the first.
	 */
	if (store_project_fetching(eng->st, it->eval_id, it->idx) != 1)
		return;
	util_random_hex(rnd, 8);
	tmp = xasprintf("%s/.fetch-%s", eng->projects_dir, rnd);
	if (strcmp(it->kind, "zip") == 0) {
		r = it->upload_digest != NULL && blob_digest_valid(it->upload_digest) ?
		    engine_get_blob(eng, it->upload_digest, NULL, err, sizeof(err)) : -ENOENT;
		if (r == 0) {
			zip = blob_path(eng->blobs_dir, it->upload_digest);
			r = fetch_zip_extract(zip, it->prefix ? it->prefix : "", tmp, &eng->limits,
			    &warnings, &nwarnings, err, sizeof(err));
		} else if (it->upload_digest != NULL) {
			/*
			 * The upload is on another node that this one cannot reach now
			 * (a partition, a restart): not the project's fault, and not
			 * final. The next coordinator round tries again.
			 */
			log_warn("engine: %s project %d waits for its upload: %s", it->eval_id,
			    it->idx, err);
			goto out;
		} else {
			snprintf(err, sizeof(err), "the uploaded archive is lost");
		}
	} else if (it->has_token && it->token == NULL && it->url == NULL) {
		snprintf(err, sizeof(err), "the node that accepted this repository stopped before"
		    " cloning it, and access tokens are kept in memory only: submit this"
		    " project again");
		r = -EAGAIN;
	} else {
		struct fetch_git_opts o;
		memset(&o, 0, sizeof(o));
		o.token = it->token;
		o.timeout = 300;
		o.max_bytes = 1ULL << 30;
		o.allow_file_urls = eng->cfg->allow_file_urls != 0;
		o.allowed_hosts = (const char *const *)eng->git_hosts;
		{
			/* user:password@ in the URL travels like a token, never in argv. */
			char *user = NULL, *pass = NULL;
			char *clean = url_split_credentials(it->url ? it->url : it->source, &user,
			    &pass);
			if (pass != NULL || user != NULL) {
				o.username = pass != NULL ? user : NULL;
				o.token = pass != NULL ? pass : user;
			}
			r = fetch_git_clone(clean, tmp, &o, err, sizeof(err));
			if (user != NULL)
				OPENSSL_cleanse(user, strlen(user));
			if (pass != NULL)
				OPENSSL_cleanse(pass, strlen(pass));
			free(user);
			free(pass);
			free(clean);
		}
	}
	wj = strv_to_json(warnings, nwarnings);
	if (r < 0) {
		log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
		store_project_error(eng->st, it->eval_id, it->idx, err[0] ? err :
		    "cannot fetch the project", wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	/* The evaluation's tests replace the project's; its set-up rides in the blob. */
	settings = store_eval_settings(eng->st, it->eval_id);
	if (json_string_value(json_object_get(settings, "instructor_tests_archive")) != NULL) {
		const char *td = json_string_value(json_object_get(settings,
		    "instructor_tests_archive"));
		char *itests = xasprintf("%s.tests", tmp), *zip_t = NULL, *src = NULL;
		char **tw = NULL;
		size_t ntw = 0;

		r = blob_digest_valid(td) ? engine_get_blob(eng, td, NULL, err, sizeof(err)) :
		    -EINVAL;
		if (r == 0) {
			zip_t = blob_path(eng->blobs_dir, td);
			r = fetch_zip_extract(zip_t, "", itests, &eng->limits, &tw, &ntw, err,
			    sizeof(err));
			layout_strv_free(tw, ntw);
		}
		if (r == 0) {
			/* A ZIP of tests/, of the test files, or of one folder holding either. */
			src = engine_single_folder(itests);
			r = setup_install_tests(tmp, src, err, sizeof(err));
		} else {
			char *m = xasprintf("cannot unpack the instructor's tests: %s", err);
			snprintf(err, sizeof(err), "%s", m);
			free(m);
		}
		util_rm_rf(itests);
		free(itests);
		free(zip_t);
		free(src);
		if (r < 0) {
			store_project_error(eng->st, it->eval_id, it->idx, err, wj, util_now());
			engine_changed(eng, it->eval_id);
			goto out;
		}
	} else if (json_string_value(json_object_get(settings, "instructor_tests")) != NULL) {
		struct fetch_git_opts o;
		char *itests = xasprintf("%s.tests", tmp);
		fetch_git_opts_default(&o);
		o.allow_file_urls = eng->cfg->allow_file_urls != 0;
		o.allowed_hosts = (const char *const *)eng->git_hosts;
		r = fetch_git_clone(json_string_value(json_object_get(settings, "instructor_tests")),
		    itests, &o, err, sizeof(err));
		if (r < 0) {
			char *m = xasprintf("cannot fetch the instructor's tests: %s", err);
			snprintf(err, sizeof(err), "%s", m);
			free(m);
		} else {
			r = setup_install_tests(tmp, itests, err, sizeof(err));
		}
		util_rm_rf(itests);
		free(itests);
		if (r < 0) {
			store_project_error(eng->st, it->eval_id, it->idx, err, wj, util_now());
			engine_changed(eng, it->eval_id);
			goto out;
		}
	}
	if (setup_write_project(tmp, settings) < 0) {
		store_project_error(eng->st, it->eval_id, it->idx, "cannot write the evaluation's"
		    " set-up into the project", wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	/* Set-up commands run once, here; what they make rides in the blob. */
	if ((r = runner_run_setup(tmp, err, sizeof(err))) < 0) {
		if (r == -ECANCELED)   /* shutting down: fetched again after a restart */
			goto out;
		log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
		store_project_error(eng->st, it->eval_id, it->idx, err, wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	r = layout_list_modules(tmp, &modules, &nmodules);
	if (r < 0 || nmodules == 0) {
		store_project_error(eng->st, it->eval_id, it->idx, r < 0 ?
		    "cannot list the project's test modules" :
		    "no test modules found: a project needs a tests/ folder with test_*.py or"
		    " *_test.py files", wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	if (blob_from_dir(eng->blobs_dir, tmp, digest, err, sizeof(err)) < 0) {
		store_project_error(eng->st, it->eval_id, it->idx, err, wj, util_now());
		engine_changed(eng, it->eval_id);
		goto out;
	}
	final = engine_project_dir(eng, digest);
	if (rename(tmp, final) < 0)
		util_rm_rf(tmp);   /* the same files are there already */
	engine_share_blob(eng, digest);
	if (store_project_ready(eng->st, it->eval_id, it->idx, digest,
	    (const char *const *)modules, nmodules, wj) == 0) {
		log_info("engine: %s project %d ready: %zu modules, %zu warnings, blob %.12s",
		    it->eval_id, it->idx, nmodules, nwarnings, digest);
		engine_wake_slots(eng);
		engine_changed(eng, it->eval_id);
	}
out:
	util_rm_rf(tmp);
	json_decref(wj);
	json_decref(settings);
	layout_strv_free(warnings, nwarnings);
	layout_strv_free(modules, nmodules);
	free(tmp);
	free(final);
	free(zip);
}

static void
fetch_done(struct engine *eng, const struct fetch_item *it)
{
	char key[48];

	snprintf(key, sizeof(key), "%s/%d", it->eval_id, it->idx);
	pthread_mutex_lock(&eng->fetch_lock);
	for (size_t i = 0; i < eng->ninflight; i++) {
		if (strcmp(eng->inflight[i], key) == 0) {
			memmove(eng->inflight[i], eng->inflight[eng->ninflight - 1],
			    sizeof(eng->inflight[0]));
			eng->ninflight--;
			break;
		}
	}
	pthread_mutex_unlock(&eng->fetch_lock);
}

static void *
fetcher_main(void *arg)
{
	struct engine *eng = arg;
	struct fetch_item *it;

	while ((it = fetch_dequeue(eng)) != NULL) {
		fetch_one(eng, it);
		fetch_done(eng, it);
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
slot_set_running(struct engine *eng, int slot, const struct store_claim *c)
{
	pthread_mutex_lock(&eng->run_lock);
	if (c != NULL)
		eng->running[slot] = *c;
	else
		memset(&eng->running[slot], 0, sizeof(eng->running[slot]));
	pthread_mutex_unlock(&eng->run_lock);
}

json_t *
engine_running_json(struct engine *eng)
{
	json_t *a = json_array();

	pthread_mutex_lock(&eng->run_lock);
	for (long i = 0; i < eng->nslots; i++) {
		const struct store_claim *c = &eng->running[i];
		if (c->eval_id[0] == '\0')
			continue;
		json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:i}", "eval_id", c->eval_id,
		    "project_idx", c->project_idx, "path", c->path, "attempt", c->attempt));
	}
	pthread_mutex_unlock(&eng->run_lock);
	return json_pack("{s:s, s:o}", "node", eng->address, "running", a);
}

static json_t *
claim_to_json(const struct store_claim *c)
{
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:f}", "eval_id", c->eval_id,
	    "project_idx", c->project_idx, "project_id", c->project_id, "path", c->path,
	    "digest", c->digest, "attempt", c->attempt, "module_timeout", c->module_timeout);
}

static int
claim_from_json(json_t *j, struct store_claim *c)
{
	const char *id = json_string_value(json_object_get(j, "eval_id"));
	const char *pid = json_string_value(json_object_get(j, "project_id"));
	const char *path = json_string_value(json_object_get(j, "path"));
	const char *digest = json_string_value(json_object_get(j, "digest"));

	if (id == NULL || pid == NULL || path == NULL || digest == NULL || !util_is_uuid(id) ||
	    !blob_digest_valid(digest) || strlen(pid) >= sizeof(c->project_id) ||
	    strlen(path) >= sizeof(c->path))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	snprintf(c->eval_id, sizeof(c->eval_id), "%s", id);
	snprintf(c->project_id, sizeof(c->project_id), "%s", pid);
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->digest, sizeof(c->digest), "%s", digest);
	c->project_idx = (int)json_integer_value(json_object_get(j, "project_idx"));
	c->attempt = (int)json_integer_value(json_object_get(j, "attempt"));
	c->module_timeout = json_number_value(json_object_get(j, "module_timeout"));
	return 0;
}

json_t *
engine_claim_for(struct engine *eng, const char *node)
{
	char **alive = NULL, *mine = NULL;
	size_t nalive = 0;
	json_t *work, *answer;
	struct store_claim c;
	int r = 0;

	engine_alive(eng, &alive, &nalive);
	/* Work goes to members only: a stranger's claim would look dead at once. */
	if (strv_has(alive, nalive, node)) {
		work = store_eval_work(eng->st);
		mine = engine_mine(eng, work, alive, nalive, "pending");
		json_decref(work);
		if (mine != NULL && strcmp(mine, "[]") != 0)
			r = store_claim_module(eng->st, node, mine, &c);
	}
	if (r == 1) {
		log_info("engine: %s/%s (evaluation %s, attempt %d) goes to %s", c.project_id,
		    c.path, c.eval_id, c.attempt, node);
		engine_changed(eng, c.eval_id);
		answer = json_pack("{s:o}", "claim", claim_to_json(&c));
	} else {
		answer = json_pack("{s:n}", "claim");
	}
	free(mine);
	engine_strv_free(alive, nalive);
	return answer;
}

/*
 * Find a module to run: from this node's own evaluations first, else from
 * the coordinators of the others. Returns 1 with c filled (and *from set to
 * the coordinator's address, or "" when local), 0 when there is nothing.
 */
static int
slot_claim(struct engine *eng, struct store_claim *c, char *from, size_t fromlen)
{
	char **alive = NULL, *mine;
	size_t nalive = 0, i;
	json_t *work, *ev, *asked = json_array();
	int r = 0;

	from[0] = '\0';
	engine_alive(eng, &alive, &nalive);
	work = store_eval_work(eng->st);
	mine = engine_mine(eng, work, alive, nalive, "pending");
	if (mine != NULL && strcmp(mine, "[]") != 0) {
		r = store_claim_module(eng->st, eng->address, mine, c);
		if (r == 1)
			engine_changed(eng, c->eval_id);
	}
	json_array_foreach(work, i, ev) {
		const char *coord = engine_coordinator_of(ev, alive, nalive);
		json_t *answer = NULL, *claim, *body, *a;
		long status = 0;
		size_t k;
		int seen = 0;

		if (r == 1)
			break;
		if (coord == NULL || strcmp(coord, eng->address) == 0 ||
		    json_integer_value(json_object_get(ev, "pending")) <= 0)
			continue;
		json_array_foreach(asked, k, a)
			seen |= strcmp(json_string_value(a), coord) == 0;
		if (seen)
			continue;
		json_array_append_new(asked, json_string(coord));
		body = json_pack("{s:s}", "node", eng->address);
		if (peer_request(coord, "POST", "/task/claim", body, 5.0, &answer, &status) == 0 &&
		    status == 200 && json_is_object(claim = json_object_get(answer, "claim")) &&
		    claim_from_json(claim, c) == 0) {
			snprintf(from, fromlen, "%s", coord);
			r = 1;
		}
		json_decref(body);
		json_decref(answer);
	}
	json_decref(asked);
	json_decref(work);
	free(mine);
	engine_strv_free(alive, nalive);
	return r;
}

/* Give a claim back: in our store when we coordinate it; else its coordinator notices. */
static void
slot_release(struct engine *eng, const struct store_claim *c, const char *from)
{
	if (from[0] == '\0') {
		store_release_module(eng->st, c);
		engine_changed(eng, c->eval_id);
	}
}

/* Send an evaluation's state to one node now (best effort, logged). */
static void
engine_push_to(struct engine *eng, const char *eval_id, const char *node)
{
	char *path = xasprintf("/evaluation/sync_result/%s", eval_id);
	json_t *doc = store_eval_export(eng->st, eval_id);
	long status = 0;

	if (doc != NULL && (peer_request(node, "POST", path, doc, 5.0, NULL, &status) < 0 ||
	    status != 200))
		log_warn("engine: cannot hand evaluation %s's result to %s (status %ld)", eval_id,
		    node, status);
	json_decref(doc);
	free(path);
}

static json_t *
infra_result(const char *msg)
{
	return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:[]}", "outcome", "infra_error",
	    "message", msg, "passed", 0, "failed", 1, "skipped", 0, "errors", 1, "duration",
	    0.0, "tests");
}

static void
run_claimed(struct engine *eng, int slot, struct store_claim *c, const char *from)
{
	char err[1024] = "";
	char *python = NULL, *dir = engine_project_dir(eng, c->digest);
	json_t *result = NULL;
	struct runner_module_req req;
	const char *outcome;
	int r, tries, reruns;

	slot_set_running(eng, slot, c);
	/* The project's files, once per node. */
	r = engine_get_blob(eng, c->digest, from[0] ? from : NULL, err, sizeof(err));
	if (r == 0)
		r = blob_unpack(eng->blobs_dir, c->digest, dir, &eng->limits, err, sizeof(err));
	if (r < 0) {
		log_warn("engine: cannot get the files of %s (%.12s): %s", c->project_id, c->digest,
		    err);
		slot_release(eng, c, from);
		util_sleep(1);
		goto out;
	}
	r = runner_prepare_env(dir, slot, &python, err, sizeof(err));
	if (r < 0) {
		if (engine_is_stopping(eng)) {
			slot_release(eng, c, from);
			goto out;
		}
		log_warn("engine: %s %s: environment failed: %s", c->eval_id, c->project_id, err);
		store_project_error(eng->st, c->eval_id, c->project_idx, err, NULL, util_now());
		engine_changed(eng, c->eval_id);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.project_dir = dir;
	req.module_path = c->path;
	req.python = python;
	req.timeout = c->module_timeout > 0 ? c->module_timeout : eng->cfg->module_timeout;
	req.slot = slot;
	/* Infrastructure failures are tried again here, on this slot. */
	for (tries = 1;; tries++) {
		log_info("engine: slot %d runs %s/%s (evaluation %s, attempt %d%s%s)", slot,
		    c->project_id, c->path, c->eval_id, c->attempt, from[0] ? ", for " : "",
		    from);
		r = runner_run_module(&req, &result);
		if (engine_is_stopping(eng)) {
			/* Killed by our own shutdown: not the module's result. */
			json_decref(result);
			slot_release(eng, c, from);
			goto out;
		}
		if (r < 0 || result == NULL) {
			json_decref(result);
			result = infra_result("the runner failed on this node");
		}
		outcome = json_string_value(json_object_get(result, "outcome"));
		/* A set-up or configuration that cannot work fails the same way again. */
		if (outcome == NULL || strcmp(outcome, "infra_error") != 0 ||
		    tries >= ENGINE_INFRA_RETRIES ||
		    json_is_true(json_object_get(result, "setup_failed")) ||
		    json_is_true(json_object_get(result, "config_error")))
			break;
		log_warn("engine: %s/%s could not start (%s); trying again", c->project_id,
		    c->path, json_string_value(json_object_get(result, "message")));
		json_decref(result);
		result = NULL;
		util_sleep(1);
	}
	/* Opt-in reruns of failed modules; the last run counts (setup.h). */
	reruns = setup_project_reruns(dir);
	if (reruns > 0 && setup_should_rerun(result)) {
		json_t *runs = json_array(), *again;
		json_array_append(runs, result);
		for (tries = 0; tries < reruns && setup_should_rerun(result); tries++) {
			log_info("engine: slot %d reruns %s/%s (rerun %d of %d)", slot,
			    c->project_id, c->path, tries + 1, reruns);
			again = NULL;
			r = runner_run_module(&req, &again);
			if (engine_is_stopping(eng)) {
				json_decref(again);
				json_decref(runs);
				json_decref(result);
				slot_release(eng, c, from);
				goto out;
			}
			if (r < 0 || again == NULL) {
				json_decref(again);
				break;
			}
			json_array_append_new(runs, again);
			json_decref(result);
			result = json_incref(again);
		}
		json_decref(result);
		result = setup_merge_runs(runs);
		json_decref(runs);
	}
	json_object_set_new(result, "project_id", json_string(c->project_id));
	r = store_record_result(eng->st, c, eng->address, result, util_now());
	if (r < 0)
		log_error("engine: cannot record the result of %s/%s", c->project_id, c->path);
	else
		engine_changed(eng, c->eval_id);
	/*
	 * The coordinator hears of the result before this slot stops listing the
	 * module in GET /task/running, so it never takes a finished module back.
	 */
	if (r >= 0 && from[0] != '\0')
		engine_push_to(eng, c->eval_id, from);
	log_info("engine: %s/%s %s: %lld passed, %lld failed, %lld skipped%s", c->project_id,
	    c->path, json_string_value(json_object_get(result, "outcome")),
	    json_integer_value(json_object_get(result, "passed")),
	    json_integer_value(json_object_get(result, "failed")),
	    json_integer_value(json_object_get(result, "skipped")),
	    r == 0 ? " (another result was kept)" : "");
	/* A configuration no module can run with is the project's error. */
	if (json_is_true(json_object_get(result, "config_error")) && from[0] == '\0') {
		store_project_error(eng->st, c->eval_id, c->project_idx,
		    json_string_value(json_object_get(result, "message")), NULL, util_now());
		engine_changed(eng, c->eval_id);
	}
	json_decref(result);
out:
	slot_set_running(eng, slot, NULL);
	free(python);
	free(dir);
}

static void *
slot_main(void *arg)
{
	struct slot_arg *sa = arg;
	struct engine *eng = sa->eng;
	struct store_claim c;
	char from[256];

	for (;;) {
		unsigned seq;

		pthread_mutex_lock(&eng->work_lock);
		if (eng->stopping) {
			pthread_mutex_unlock(&eng->work_lock);
			break;
		}
		seq = eng->work_seq;
		pthread_mutex_unlock(&eng->work_lock);

		if (slot_claim(eng, &c, from, sizeof(from)) == 1) {
			run_claimed(eng, sa->slot, &c, from);
			continue;
		}
		/* Nothing runnable: sleep until woken (or a second, to look again). */
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

void
engine_wake(struct engine *eng)
{
	engine_wake_slots(eng);
}

/* ---------------------------------------------------------- coordinator */

/* One worker's answer to GET /task/running, cached for a round. */
struct worker_view {
	char node[256];
	json_t *running;   /* array, or NULL when the worker did not answer */
};

static int
worker_runs(json_t *running, const struct store_claim *c)
{
	json_t *r;
	size_t i;

	json_array_foreach(running, i, r) {
		const char *id = json_string_value(json_object_get(r, "eval_id"));
		const char *path = json_string_value(json_object_get(r, "path"));
		if (id != NULL && path != NULL && strcmp(id, c->eval_id) == 0 &&
		    json_integer_value(json_object_get(r, "project_idx")) == c->project_idx &&
		    strcmp(path, c->path) == 0)
			return 1;
	}
	return 0;
}

/*
 * Modules that can no longer finish go back to pending: their worker is
 * dead, or alive but not running them (a claim answer that was lost, a
 * restarted worker, the far side of a healed partition).
 */
static void
sched_reclaim(struct engine *eng, const char *mine, char *const *alive, size_t nalive)
{
	struct store_claim *run = NULL;
	char (*nodes)[256] = NULL;
	struct worker_view *views = NULL;
	size_t n = 0, nviews = 0;
	double now = util_now();
	json_t *local = NULL;

	if (store_running_modules(eng->st, mine, &run, &nodes, &n) < 0 || n == 0)
		goto out;
	views = xcalloc(n, sizeof(*views));
	for (size_t i = 0; i < n; i++) {
		json_t *running = NULL;
		const char *why = NULL;

		if (!strv_has(alive, nalive, nodes[i])) {
			why = "its node is gone";
		} else if (now - run[i].started_at > ENGINE_STALE_CLAIM) {
			if (strcmp(nodes[i], eng->address) == 0) {
				if (local == NULL)
					local = engine_running_json(eng);
				running = json_object_get(local, "running");
			} else {
				size_t k;
				for (k = 0; k < nviews; k++)
					if (strcmp(views[k].node, nodes[i]) == 0)
						break;
				if (k == nviews) {
					json_t *ans = NULL;
					long status = 0;
					snprintf(views[k].node, sizeof(views[k].node), "%s", nodes[i]);
					if (peer_request(nodes[i], "GET", "/task/running", NULL, 3.0, &ans,
					    &status) == 0 && status == 200)
						views[k].running = json_incref(json_object_get(ans,
						    "running"));
					json_decref(ans);
					nviews++;
				}
				running = views[k].running;
			}
			if (running != NULL && !worker_runs(running, &run[i]))
				why = "its node does not run it";
		}
		if (why == NULL)
			continue;
		if (store_release_module(eng->st, &run[i]) != 1)
			continue;   /* finished or claimed again meanwhile */
		log_warn("engine: %s/%s (evaluation %s, attempt %d) goes back to pending: %s",
		    run[i].project_id, run[i].path, run[i].eval_id, run[i].attempt, why);
		engine_changed(eng, run[i].eval_id);
		engine_wake_slots(eng);
	}
out:
	for (size_t k = 0; k < nviews; k++)
		json_decref(views[k].running);
	free(views);
	json_decref(local);
	free(run);
	free(nodes);
}

/* Queue the projects still to fetch of the evaluations we coordinate. */
static void
sched_fetch(struct engine *eng, const char *mine)
{
	struct store_fetch_job *jobs = NULL;
	size_t n = 0;

	if (store_fetch_jobs(eng->st, mine, &jobs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct fetch_item *it = xcalloc(1, sizeof(*it));
		snprintf(it->eval_id, sizeof(it->eval_id), "%s", jobs[i].eval_id);
		it->idx = jobs[i].idx;
		it->kind = xstrdup(jobs[i].kind);
		it->source = xstrdup(jobs[i].source);
		it->prefix = xstrdup(jobs[i].prefix);
		it->upload_digest = jobs[i].upload_digest[0] ? xstrdup(jobs[i].upload_digest) : NULL;
		it->has_token = jobs[i].has_token;
		fetch_enqueue(eng, it);
	}
	store_fetch_jobs_free(jobs, n);
}

static void *
sched_main(void *arg)
{
	struct engine *eng = arg;

	while (!engine_is_stopping(eng)) {
		char **alive = NULL, *mine;
		size_t nalive = 0;
		json_t *work = store_eval_work(eng->st);

		engine_alive(eng, &alive, &nalive);
		mine = engine_mine(eng, work, alive, nalive, NULL);
		if (mine != NULL && strcmp(mine, "[]") != 0) {
			sched_fetch(eng, mine);
			if (engine_warm(eng))
				sched_reclaim(eng, mine, alive, nalive);
		}
		free(mine);
		json_decref(work);
		engine_strv_free(alive, nalive);
		pthread_mutex_lock(&eng->work_lock);
		if (!eng->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(ENGINE_SCHED_PERIOD * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
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
	/* setup, reruns, instructor_tests */
	if (setup_settings_parse(in, out, err, errlen) < 0) {
		json_decref(out);
		return NULL;
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

/*
 * Before the 201: the evaluation (and its upload) on at least one other live
 * node, so that the accepting node may die right after answering. Tries the
 * live peers in turn until one has both. Without live peers (a one-node
 * network) the 201 promises this node's disk only.
 */
static void
engine_share_eval(struct engine *eng, const char *id, const char *upload_digest)
{
	char **alive = NULL, *path = xasprintf("/evaluation/sync_result/%s", id);
	size_t n = 0;
	json_t *doc = store_eval_export(eng->st, id);
	const char *tests_digest = json_string_value(json_object_get(json_object_get(doc,
	    "settings"), "instructor_tests_archive"));
	int done = 0, peers = 0;

	engine_alive(eng, &alive, &n);
	for (size_t i = 0; i < n && !done && doc != NULL; i++) {
		long status = 0;
		if (strcmp(alive[i], eng->address) == 0)
			continue;
		peers++;
		if (upload_digest != NULL && blob_push(eng->blobs_dir, upload_digest, alive[i],
		    (size_t)eng->cfg->max_upload_mb << 20) < 0)
			continue;
		if (tests_digest != NULL && blob_push(eng->blobs_dir, tests_digest, alive[i],
		    (size_t)eng->cfg->max_upload_mb << 20) < 0)
			continue;
		if (peer_request(alive[i], "POST", path, doc, 10.0, NULL, &status) == 0 &&
		    status == 200)
			done = 1;
	}
	if (peers > 0 && !done)
		log_warn("engine: evaluation %s is on this node only: no live peer took it", id);
	json_decref(doc);
	free(path);
	engine_strv_free(alive, n);
}

int
engine_submit_zip(struct engine *eng, const char *upload_path, const char *filename,
    const char *instructor_zip, json_t *settings, char id[37], char *err, size_t errlen)
{
	struct fetch_zip_plan *plan = NULL;
	struct store_project_new *projects = NULL;
	char **ids = NULL, **sources = NULL;
	char *root = root_name_of(filename);
	char upload_digest[SHA256_HEX_LEN];
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
	if (instructor_zip != NULL) {
		char tdigest[SHA256_HEX_LEN];
		struct fetch_zip_plan *tplan = NULL;
		char terr[512];

		if (json_object_get(settings, "instructor_tests") != NULL) {
			snprintf(err, errlen, "give the instructor's tests as a git URL or as a ZIP"
			    " file field, not both");
			status = 400;
			goto out;
		}
		/* Any ZIP with files will do; it need not hold test modules itself. */
		r = fetch_zip_scan(instructor_zip, "tests", &eng->limits, &tplan, terr, sizeof(terr));
		fetch_zip_plan_free(tplan);
		if (r == -EINVAL || r == -E2BIG) {
			snprintf(err, errlen, "instructor_tests: %s", terr);
			status = r == -EINVAL ? 400 : 413;
			goto out;
		}
		if (blob_from_file(eng->blobs_dir, instructor_zip, tdigest) < 0) {
			snprintf(err, errlen, "cannot store the instructor's tests");
			status = 500;
			goto out;
		}
		json_object_set_new(settings, "instructor_tests_archive", json_string(tdigest));
	}
	util_uuid4(id);
	/* The upload becomes a blob: kept by digest, and given to a peer. */
	if (blob_from_file(eng->blobs_dir, upload_path, upload_digest) < 0) {
		snprintf(err, errlen, "cannot store the upload: %s", strerror(errno));
		status = 500;
		goto out;
	}
	fetch_reserve(eng, id, plan->nprojects);
	if (store_eval_create(eng->st, id, util_now(), "zip", eng->address, settings, 0,
	    upload_digest, projects, plan->nprojects) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		fetch_unreserve(eng, id, plan->nprojects);
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
		it->upload_digest = xstrdup(upload_digest);
		fetch_push_reserved(eng, it);
	}
	engine_share_eval(eng, id, upload_digest);
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
	fetch_reserve(eng, id, n);
	if (store_eval_create(eng->st, id, util_now(), "git", eng->address, settings,
	    any_secret, NULL, projects, n) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		fetch_unreserve(eng, id, n);
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
		it->has_token = any_secret;
		fetch_push_reserved(eng, it);
	}
	engine_share_eval(eng, id, NULL);
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
			v = xrealloc(v, (cap + 1) * sizeof(*v));
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

/*
 * After a crash: the modules this node was running go back to pending (they
 * run again); projects left half-fetched are queued again by the coordinator
 * round (a git clone that needed a token then fails with a clear error).
 */
static void
engine_recover(struct engine *eng)
{
	store_requeue_running(eng->st, eng->address);
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
	eng->blobs_dir = xasprintf("%s/blobs", cfg->data_dir);
	eng->inflight = xcalloc(ENGINE_MAX_INFLIGHT, sizeof(*eng->inflight));
	eng->started = util_mono();
	eng->git_hosts = cfg->git_hosts ? split_commas(cfg->git_hosts) : NULL;
	fetch_limits_default(&eng->limits);
	util_mkdir_p(eng->uploads_dir, 0700);
	util_mkdir_p(eng->projects_dir, 0700);
	util_mkdir_p(eng->blobs_dir, 0700);
	/* Fetches cut off by a crash (a clone may hold credentials in .git/config). */
	util_rm_matching(eng->projects_dir, ".fetch-", NULL);
	pthread_mutex_init(&eng->fetch_lock, NULL);
	pthread_mutex_init(&eng->run_lock, NULL);
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
	eng->running = xcalloc((size_t)eng->nslots, sizeof(*eng->running));
	eng->slot_args = xcalloc((size_t)eng->nslots, sizeof(*eng->slot_args));
	for (long i = 0; i < eng->nslots; i++) {
		eng->slot_args[i].eng = eng;
		eng->slot_args[i].slot = (int)i;
		pthread_create(&eng->slots[i], NULL, slot_main, &eng->slot_args[i]);
	}
	if (pthread_create(&eng->sched_thread, NULL, sched_main, eng) == 0)
		eng->sched_started = 1;
	log_info("engine: %ld slots, uids from %ld, %s", eng->nslots, rc.uid_base,
	    !runner_isolated() ? "runs NOT isolated (not root)" :
	    strcmp(runner_sandbox_name(), "bwrap") == 0 ?
	    "runs isolated as unprivileged users inside bubblewrap" :
	    "runs as unprivileged users WITHOUT the sandbox");
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
	if (eng->sched_started)
		pthread_join(eng->sched_thread, NULL);
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
	free(eng->blobs_dir);
	free(eng->inflight);
	free(eng->running);
	free(eng);
}

const char *
engine_address(const struct engine *eng)
{
	return eng->address;
}

const char *
engine_blobs_dir(const struct engine *eng)
{
	return eng->blobs_dir;
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
