/*
 * engine.c - the node's work, wired together: start and stop of the fetch
 * queue (fetchq.c), the slot threads (slots.c) and the coordinator (coord.c),
 * and the helpers they share (wake-ups, live nodes, blobs by digest). See
 * engine_int.h for the threads and the locks.
 */
#include "engine/engine.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/replica.h"
#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/version.h"
#include "engine/blob.h"
#include "engine/engine_int.h"
#include "runner/runner.h"
#include "runner/warm.h"
#include "store/store.h"

/* ------------------------------------------------------------ wake-ups */

static void
engine_tell(struct engine *eng, const char *eval_id, int news)
{
	engine_change_fn fn = __atomic_load_n(&eng->on_change, __ATOMIC_ACQUIRE);

	if (fn != NULL)
		fn(eng->on_change_ctx, eval_id, news);
}

void
engine_changed(struct engine *eng, const char *eval_id)
{
	engine_tell(eng, eval_id, 0);
}

void
engine_news(struct engine *eng, const char *eval_id)
{
	engine_tell(eng, eval_id, 1);
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
void
engine_alive(struct engine *eng, char ***addrs, size_t *n)
{
	engine_alive_fn fn = __atomic_load_n(&eng->alive_fn, __ATOMIC_ACQUIRE);

	if (fn == NULL || fn(eng->alive_ctx, addrs, n) < 0 || *n == 0) {
		*addrs = xcalloc(1, sizeof(**addrs));
		(*addrs)[0] = xstrdup(eng->address);
		*n = 1;
	}
}

void
engine_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
engine_strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/*
 * Until membership has had time to find the other nodes (when there are seeds
 * to find), a node that just started must not believe it is alone: it then
 * coordinates only what it accepted itself.
 */
int
engine_warm(const struct engine *eng)
{
	return eng->cfg->seeds == NULL || eng->cfg->seeds[0] == '\0' ||
	    util_mono() - eng->started >= ENGINE_WARMUP;
}

void
engine_wake_slots(struct engine *eng)
{
	pthread_mutex_lock(&eng->work_lock);
	eng->work_seq++;
	pthread_cond_broadcast(&eng->work_cond);
	pthread_mutex_unlock(&eng->work_lock);
}

void
engine_wake(struct engine *eng)
{
	engine_wake_slots(eng);
}

int
engine_is_stopping(struct engine *eng)
{
	int s;

	pthread_mutex_lock(&eng->work_lock);
	s = eng->stopping;
	pthread_mutex_unlock(&eng->work_lock);
	return s;
}

/* --------------------------------------------------------------- blobs */

/*
 * Give a blob to one live peer, so that the project survives this node
 * (best effort: without peers, or when none takes it, it lives here only).
 */
void
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
int
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
char *
engine_project_dir(struct engine *eng, const char *digest)
{
	return xasprintf("%s/%s", eng->projects_dir, digest);
}

/* Send rows of an evaluation to one node now (best effort, logged). */
void
engine_push_to(struct engine *eng, const char *eval_id, const struct store_sync_key *keys,
    size_t n, const char *node)
{
	json_t *doc = store_sync_export_keys(eng->st, eval_id, keys, n);
	long status = 0;

	if (doc != NULL && (replica_post(node, eval_id, doc, 5.0, &status) < 0 ||
	    status != 200))
		log_warn("engine: cannot hand evaluation %s's rows to %s (status %ld)", eval_id,
		    node, status);
	json_decref(doc);
}

/* ------------------------------------------------------ cancel, delete */

void
engine_eval_stop(struct engine *eng, const char *eval_id)
{
	slot_stop_eval(eng, eval_id);
	/* the coordinator round settles the rest now, not in half a second */
	engine_wake_slots(eng);
}

void
engine_eval_stopped_here(struct engine *eng, const char *eval_id)
{
	/* (-1, ""): no row, so the document is the header (with the cancel) or the tombstone */
	struct store_sync_key key = { -1, "" };
	char **alive = NULL;
	size_t n = 0;

	engine_eval_stop(eng, eval_id);
	engine_alive(eng, &alive, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(alive[i], eng->address) != 0)
			engine_push_to(eng, eval_id, &key, 1, alive[i]);
	engine_strv_free(alive, n);
	engine_changed(eng, eval_id);
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
	/* Blobs half written or half removed by a crash. */
	util_rm_matching(eng->blobs_dir, ".tmp-", NULL);
	pthread_mutex_init(&eng->fetch_lock, NULL);
	pthread_cond_init(&eng->fetch_cond, NULL);
	pthread_mutex_init(&eng->run_lock, NULL);
	pthread_mutex_init(&eng->work_lock, NULL);
	pthread_cond_init(&eng->work_cond, NULL);
	pthread_mutex_init(&eng->coord_lock, NULL);

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
	gc_budget_start(eng);
	if ((r = fetchq_start(eng)) < 0 || (r = slot_start(eng)) < 0 ||
	    (r = coord_start(eng)) < 0) {
		util_seterr(err, errlen, "cannot start the engine's threads");
		engine_stop(eng);
		return r;
	}
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
		slot_join(eng);
		fetchq_join(eng);
	}
	coord_join(eng);
	fetchq_free(eng);
	slot_free(eng);
	coord_free(eng);
	gc_budget_free(eng);
	if (eng->git_hosts != NULL) {
		for (char **p = eng->git_hosts; *p; p++)
			free(*p);
		free(eng->git_hosts);
	}
	free(eng->address);
	free(eng->data_dir);
	free(eng->work_dir);
	free(eng->uploads_dir);
	free(eng->projects_dir);
	free(eng->blobs_dir);
	free(eng);
}

json_t *
engine_claim_for(struct engine *eng, const char *node, int slots)
{
	struct store_claim *c = xcalloc(ENGINE_BATCH_MAX, sizeof(*c));
	int n = coord_claim(eng, node, slots, c, ENGINE_BATCH_MAX);
	json_t *answer = slot_claims_json(c, n > 0 ? (size_t)n : 0);

	free(c);
	return answer;
}

json_t *
engine_fetch_lend(struct engine *eng, const char *node, const char *eval_id)
{
	return fetchq_lend(eng, node, eval_id);
}

void
engine_fetch_give_back(struct engine *eng, const char *node, const char *eval_id, int idx)
{
	fetchq_give_back(eng, node, eval_id, idx);
}

json_t *
engine_running_json(struct engine *eng)
{
	return slot_running_json(eng);
}

void
engine_slots(struct engine *eng, long *busy, long *total)
{
	*busy = slot_busy_count(eng);
	*total = eng->nslots;
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
engine_health(struct engine *eng)
{
	json_t *disk = gc_budget_json(eng);
	uint64_t store = 0;
	int warm = 0;

	for (long i = 0; i < eng->nslots; i++)
		warm += warm_count((int)i);
	/* the store beside the budget: never counted, never removed */
	if (store_disk_bytes(eng->st, &store) == 0)
		json_object_set_new(disk, "store", json_integer((json_int_t)store));
	return json_pack("{s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:f, s:s, s:o}", "status", "ok",
	    "address", eng->address, "isolated",
	    runner_isolated() && strcmp(runner_sandbox_name(), "bwrap") == 0,
	    "sandbox", runner_sandbox_name(), "slots", (json_int_t)eng->nslots,
	    "slots_busy", (json_int_t)slot_busy_count(eng),
	    "warm_workers", (json_int_t)warm, "slot_busy_seconds",
	    slot_busy_seconds(eng), "version", MESHTEST_VERSION, "disk", disk);
}

uint64_t
engine_disk_budget(struct engine *eng)
{
	return gc_budget_bytes(eng);
}
