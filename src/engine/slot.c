/*
 * slot.c - one thread per slot: claim a batch of modules (from this node's
 * coordinator first, else from the coordinators of other evaluations with
 * POST /task/claim), get the project's files by digest, prepare its
 * environment, run the batch through the runner and record each module's
 * result as it becomes final (replication spreads it; a remote coordinator
 * hears of the batch before the slot stops listing it as running).
 *
 * Threads: slot threads, and HTTP threads reading what the slots run now
 * (slot_running_json, under run_lock) or stopping the batches of a
 * cancelled or deleted evaluation (slot_stop_eval: the runner kills them,
 * the slot records what finished and gives the rest back).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/peer.h"
#include "config/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/blob.h"
#include "engine/engine_int.h"
#include "runner/env.h"
#include "runner/report.h"
#include "runner/runner.h"
#include "runner/setup.h"
#include "runner/warm.h"
#include "store/store.h"

#define SLOT_IDLE_WAIT 1.0      /* seconds a slot with nothing to do sleeps at most */

/* What a slot runs now: the claims of its batch, with the coordinator's address. */
struct slot_run {
	struct store_claim claims[ENGINE_BATCH_MAX];
	size_t n;
	char from[256];          /* "" when this node coordinates them */
	double claimed_at;       /* util_mono() when the claim came back */
	/* recorded while the batch still runs (isolation "module"): not running any more */
	unsigned char finished[ENGINE_BATCH_MAX];
};

struct slot_arg {
	struct engine *eng;
	int slot;
};

static json_t *
slot_claim_json(const struct store_claim *c)
{
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:f, s:s}", "eval_id", c->eval_id,
	    "project_idx", c->project_idx, "project_id", c->project_id, "path", c->path,
	    "digest", c->digest, "attempt", c->attempt, "module_timeout", c->module_timeout,
	    "isolation", c->isolation ? "module" : "project");
}

static int
slot_claim_parse(json_t *j, struct store_claim *c)
{
	const char *id = json_string_value(json_object_get(j, "eval_id"));
	const char *pid = json_string_value(json_object_get(j, "project_id"));
	const char *path = json_string_value(json_object_get(j, "path"));
	const char *digest = json_string_value(json_object_get(j, "digest"));
	const char *iso = json_string_value(json_object_get(j, "isolation"));

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
	c->isolation = iso != NULL && strcmp(iso, "module") == 0;
	return 0;
}

json_t *
slot_claims_json(const struct store_claim *c, size_t n)
{
	json_t *all = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(all, slot_claim_json(&c[i]));
	return json_pack("{s:O?, s:o}", "claim", n > 0 ? json_array_get(all, 0) : NULL,
	    "claims", all);
}

static void
slot_set_running(struct engine *eng, int slot, const struct slot_run *run, double busy)
{
	pthread_mutex_lock(&eng->run_lock);
	if (run != NULL) {
		/* a stop asked for the batch before this one is over (slot_stop_eval) */
		runner_slot_reset(slot);
		eng->running[slot] = *run;
	} else {
		eng->running[slot].n = 0;
	}
	eng->busy_seconds += busy;
	pthread_mutex_unlock(&eng->run_lock);
}

double
slot_busy_seconds(struct engine *eng)
{
	double s;

	pthread_mutex_lock(&eng->run_lock);
	s = eng->busy_seconds;
	pthread_mutex_unlock(&eng->run_lock);
	return s;
}

long
slot_busy_count(struct engine *eng)
{
	long n = 0;

	pthread_mutex_lock(&eng->run_lock);
	for (long i = 0; i < eng->nslots; i++)
		n += eng->running[i].n > 0;
	pthread_mutex_unlock(&eng->run_lock);
	return n;
}

json_t *
slot_running_json(struct engine *eng)
{
	json_t *a = json_array();

	pthread_mutex_lock(&eng->run_lock);
	for (long i = 0; i < eng->nslots; i++) {
		const struct slot_run *r = &eng->running[i];
		for (size_t k = 0; k < r->n; k++) {
			const struct store_claim *c = &r->claims[k];
			if (r->finished[k])
				continue;
			json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:i}", "eval_id",
			    c->eval_id, "project_idx", c->project_idx, "path", c->path, "attempt",
			    c->attempt));
		}
	}
	pthread_mutex_unlock(&eng->run_lock);
	return json_pack("{s:s, s:o}", "node", eng->address, "running", a);
}

void
slot_stop_eval(struct engine *eng, const char *eval_id)
{
	pthread_mutex_lock(&eng->run_lock);
	for (long i = 0; i < eng->nslots; i++) {
		const struct slot_run *r = &eng->running[i];
		/* a batch is of one evaluation */
		if (r->n > 0 && strcmp(r->claims[0].eval_id, eval_id) == 0)
			runner_stop_slot((int)i);
	}
	pthread_mutex_unlock(&eng->run_lock);
}

void
slot_stop_halted(struct engine *eng)
{
	struct store_id *ids = xcalloc((size_t)eng->nslots + 1, sizeof(*ids));
	size_t n = 0;

	pthread_mutex_lock(&eng->run_lock);
	for (long i = 0; i < eng->nslots; i++)
		if (eng->running[i].n > 0)
			snprintf(ids[n++].id, sizeof(ids[0].id), "%s", eng->running[i].claims[0].eval_id);
	pthread_mutex_unlock(&eng->run_lock);
	/* outside the lock: the store may wait; slot_stop_eval looks again */
	for (size_t i = 0; i < n; i++)
		if (store_eval_stopped(eng->st, ids[i].id))
			slot_stop_eval(eng, ids[i].id);
	free(ids);
}

int
slot_runs_digest(struct engine *eng, const char *digest)
{
	for (long i = 0; i < eng->nslots; i++)
		if (eng->running[i].n > 0 && strcmp(eng->running[i].claims[0].digest, digest) == 0)
			return 1;
	return 0;
}

/*
 * Find work: from this node's own evaluations first, else from the
 * coordinators of the others. Returns 1 with run filled (run->from: the
 * coordinator's address, or "" when local), 0 when there is nothing.
 */
static int
slot_claim(struct engine *eng, struct slot_run *run)
{
	struct store_work *work = NULL;
	char **alive = NULL, (*asked)[256] = NULL;
	size_t nwork = 0, nalive = 0, nasked = 0;
	int n;

	run->from[0] = '\0';
	run->n = 0;
	memset(run->finished, 0, sizeof(run->finished));
	n = coord_claim(eng, eng->address, (int)eng->nslots, run->claims, ENGINE_BATCH_MAX);
	if (n > 0) {
		run->n = (size_t)n;
		run->claimed_at = util_mono();
		return 1;
	}
	engine_alive(eng, &alive, &nalive);
	if (store_work_list(eng->st, &work, &nwork) < 0)
		nwork = 0;
	asked = xcalloc(nwork ? nwork : 1, sizeof(*asked));
	for (size_t i = 0; i < nwork && run->n == 0; i++) {
		const char *coord = coord_of(&work[i], alive, nalive);
		json_t *answer = NULL, *body, *claims, *c;
		long status = 0;
		size_t k;
		int seen = 0;

		if (coord == NULL || strcmp(coord, eng->address) == 0 || work[i].pending <= 0)
			continue;
		for (k = 0; k < nasked; k++)
			seen |= strcmp(asked[k], coord) == 0;
		if (seen)
			continue;
		snprintf(asked[nasked++], sizeof(asked[0]), "%s", coord);
		body = json_pack("{s:s, s:I}", "node", eng->address, "slots",
		    (json_int_t)eng->nslots);
		if (peer_request(coord, "POST", "/task/claim", body, 5.0, &answer, &status) == 0 &&
		    status == 200) {
			claims = json_object_get(answer, "claims");
			if (!json_is_array(claims) && json_is_object(json_object_get(answer, "claim")))
				claims = json_pack("[O]", json_object_get(answer, "claim"));
			else
				json_incref(claims);
			json_array_foreach(claims, k, c) {
				if (run->n < ENGINE_BATCH_MAX && slot_claim_parse(c, &run->claims[run->n]) == 0)
					run->n++;
			}
			json_decref(claims);
			if (run->n > 0) {
				snprintf(run->from, sizeof(run->from), "%s", coord);
				run->claimed_at = util_mono();
				/* there was work out there: the other idle slots ask too */
				if (work[i].pending > (long)run->n)
					engine_wake_slots(eng);
			}
		}
		json_decref(body);
		json_decref(answer);
	}
	free(asked);
	free(work);
	engine_strv_free(alive, nalive);
	return run->n > 0;
}

/* Give claims back: in our store when we coordinate them; else the coordinator notices. */
static void
slot_release(struct engine *eng, const struct slot_run *run, const unsigned char *done)
{
	if (run->from[0] != '\0')
		return;
	for (size_t i = 0; i < run->n; i++) {
		if (done != NULL && done[i])
			continue;
		store_release_module(eng->st, &run->claims[i]);
	}
	if (run->n > 0)
		engine_changed(eng, run->claims[0].eval_id);
}

/* What runner_run_batch's results go through. */
struct slot_ctx {
	struct engine *eng;
	int slot;
	const struct slot_run *run;
	unsigned char *done;
};

/* Before a result is recorded: its project, and the node's counters. */
static void
slot_result_note(struct slot_ctx *sc, size_t i, json_t *result)
{
	json_object_set_new(result, "project_id", json_string(sc->run->claims[i].project_id));
	metrics_module_done(json_string_value(json_object_get(result, "outcome")),
	    (long)json_integer_value(json_object_get(result, "passed")),
	    (long)json_integer_value(json_object_get(result, "failed")),
	    (long)json_integer_value(json_object_get(result, "skipped")),
	    json_number_value(json_object_get(result, "duration")));
}

/* After it was recorded (r: store_record_result's answer). */
static void
slot_result_recorded(struct slot_ctx *sc, size_t i, json_t *result, int r)
{
	struct engine *eng = sc->eng;
	const struct store_claim *c = &sc->run->claims[i];

	if (r < 0)
		log_error("engine: cannot record the result of %s/%s", c->project_id, c->path);
	else
		engine_changed(eng, c->eval_id);
	sc->done[i] = 1;
	/*
	 * With isolation "module" a result comes while the rest of the batch
	 * runs: the coordinator hears of it before GET /task/running stops
	 * listing the module, so it never takes a finished module back.
	 */
	if (c->isolation) {
		if (sc->run->from[0] != '\0') {
			struct store_sync_key key = { c->project_idx, c->path };
			engine_push_to(eng, c->eval_id, &key, 1, sc->run->from);
		}
		pthread_mutex_lock(&eng->run_lock);
		eng->running[sc->slot].finished[i] = 1;
		pthread_mutex_unlock(&eng->run_lock);
	}
	log_info("engine: %s/%s %s: %lld passed, %lld failed, %lld skipped%s", c->project_id,
	    c->path, json_string_value(json_object_get(result, "outcome")),
	    json_integer_value(json_object_get(result, "passed")),
	    json_integer_value(json_object_get(result, "failed")),
	    json_integer_value(json_object_get(result, "skipped")),
	    r == 0 ? " (another result was kept)" : "");
	/* A configuration no module can run with is the project's error. */
	if (json_is_true(json_object_get(result, "config_error")) && sc->run->from[0] == '\0') {
		store_project_error(eng->st, c->eval_id, c->project_idx,
		    json_string_value(json_object_get(result, "message")), NULL, util_now());
		engine_changed(eng, c->eval_id);
	}
}

static void
slot_on_result(void *ctx, size_t i, json_t *result)
{
	struct slot_ctx *sc = ctx;

	slot_result_note(sc, i, result);
	slot_result_recorded(sc, i, result, store_record_result(sc->eng->st,
	    &sc->run->claims[i], sc->eng->address, result, util_now()));
}

/* A shared session's results, recorded in one transaction. */
static void
slot_on_results(void *ctx, const size_t *idx, json_t *const *results, size_t n)
{
	struct slot_ctx *sc = ctx;
	const struct store_claim **c = xcalloc(n, sizeof(*c));
	json_t **rs = xcalloc(n, sizeof(*rs));
	int *rec = xcalloc(n, sizeof(*rec));

	for (size_t k = 0; k < n; k++) {
		slot_result_note(sc, idx[k], results[idx[k]]);
		c[k] = &sc->run->claims[idx[k]];
		rs[k] = results[idx[k]];
	}
	if (store_record_results(sc->eng->st, c, sc->eng->address, rs, n, util_now(), rec) < 0)
		for (size_t k = 0; k < n; k++)
			rec[k] = store_record_result(sc->eng->st, c[k], sc->eng->address, rs[k],
			    util_now());
	for (size_t k = 0; k < n; k++)
		slot_result_recorded(sc, idx[k], rs[k], rec[k]);
	free(rec);
	free(rs);
	free(c);
}

/* A batch of an evaluation cancelled or deleted here: given back, not run (1). */
static int
slot_drop_stopped(struct engine *eng, int slot, const struct slot_run *run)
{
	const struct store_claim *c0 = &run->claims[0];

	if (!store_eval_stopped(eng->st, c0->eval_id))
		return 0;
	log_info("engine: slot %d drops %zu module%s of %s (evaluation %s): cancelled", slot,
	    run->n, run->n == 1 ? "" : "s", c0->project_id, c0->eval_id);
	slot_release(eng, run, NULL);
	return 1;
}

static void
slot_run_batch(struct engine *eng, int slot, struct slot_run *run)
{
	char err[1024] = "";
	const struct store_claim *c0 = &run->claims[0];
	char *python = NULL, *pins = NULL, *dir = engine_project_dir(eng, c0->digest);
	const char *modules[ENGINE_BATCH_MAX];
	unsigned char done[ENGINE_BATCH_MAX];
	struct runner_batch b;
	struct slot_ctx sc = { eng, slot, run, done };
	double start = run->claimed_at;
	int r, stopped;

	memset(done, 0, sizeof(done));
	slot_set_running(eng, slot, run, 0);
	/*
	 * A cancel or delete that reached this node first: nothing of it starts
	 * (one that comes later finds the batch listed and stops it).
	 */
	if (slot_drop_stopped(eng, slot, run))
		goto out;
	/* The project's files, once per node. */
	r = engine_get_blob(eng, c0->digest, run->from[0] ? run->from : NULL, err, sizeof(err));
	if (r == 0)
		r = blob_unpack(eng->blobs_dir, c0->digest, dir, &eng->limits, err, sizeof(err));
	if (r < 0) {
		log_warn("engine: cannot get the files of %s (%.12s): %s", c0->project_id,
		    c0->digest, err);
		slot_release(eng, run, NULL);
		util_sleep(1);
		goto out;
	}
	/* The packages the preparing node resolved, exactly, or this node cannot run it. */
	pins = setup_project_packages(dir);
	if (pins == NULL) {
		/* prepared by a node that did not record them: resolve here */
		json_t *w = NULL;
		r = env_resolve(dir, &pins, &w, err, sizeof(err));
		json_decref(w);
	}
	if (r == 0)
		r = env_prepare(pins, slot, &python, err, sizeof(err));
	if (r < 0) {
		if (engine_is_stopping(eng)) {
			slot_release(eng, run, NULL);
			goto out;
		}
		log_warn("engine: %s %s: environment failed: %s", c0->eval_id, c0->project_id, err);
		for (size_t i = 0; i < run->n; i++) {
			json_t *res = report_error_result("infra_error", run->claims[i].path, err);
			slot_on_result(&sc, i, res);
			json_decref(res);
		}
		goto out;
	}
	for (size_t i = 0; i < run->n; i++)
		modules[i] = run->claims[i].path;
	memset(&b, 0, sizeof(b));
	b.project_dir = dir;
	b.digest = c0->digest;
	b.modules = modules;
	b.n = run->n;
	b.python = python;
	b.timeout = c0->module_timeout > 0 ? c0->module_timeout : eng->cfg->module_timeout;
	b.slot = slot;
	b.isolation = c0->isolation ? RUNNER_ISOLATION_MODULE : RUNNER_ISOLATION_PROJECT;
	b.on_result = slot_on_result;
	b.on_results = slot_on_results;
	b.ctx = &sc;
	/* cancelled while its files and environment were prepared: it never starts */
	if (slot_drop_stopped(eng, slot, run))
		goto out;
	log_info("engine: slot %d runs %zu module%s of %s (evaluation %s%s%s)", slot, run->n,
	    run->n == 1 ? "" : "s", c0->project_id, c0->eval_id, run->from[0] ? ", for " : "",
	    run->from);
	r = runner_run_batch(&b);
	stopped = r == -ECANCELED && !engine_is_stopping(eng);
	if (r < 0 && !stopped) {
		/* Killed by our own shutdown (or refused): not the modules' results. */
		if (r != -ECANCELED)
			log_error("engine: slot %d cannot run the batch of %s: %s", slot,
			    c0->project_id, strerror(-r));
		slot_release(eng, run, done);
		goto out;
	}
	if (stopped) {
		/* Its evaluation was cancelled or deleted: what finished is recorded. */
		log_info("engine: slot %d stopped %s (evaluation %s): cancelled", slot,
		    c0->project_id, c0->eval_id);
		slot_release(eng, run, done);
	}
	/*
	 * The coordinator hears of the results before this slot stops listing the
	 * modules in GET /task/running, so it never takes a finished module back.
	 */
	if (run->from[0] != '\0') {
		struct store_sync_key *keys = xcalloc(run->n, sizeof(*keys));

		for (size_t i = 0; i < run->n; i++)
			keys[i] = (struct store_sync_key){ run->claims[i].project_idx,
			    run->claims[i].path };
		engine_push_to(eng, c0->eval_id, keys, run->n, run->from);
		free(keys);
	}
out:
	/* the environment may go once no batch and no warm worker uses it (gc_budget.c) */
	if (python != NULL)
		env_release(python);
	slot_set_running(eng, slot, NULL, util_mono() - start);
	free(pins);
	free(python);
	free(dir);
}

static void *
slot_main(void *arg)
{
	struct slot_arg *sa = arg;
	struct engine *eng = sa->eng;
	struct slot_run *run = xcalloc(1, sizeof(*run));

	util_thread_name("slot");
	for (;;) {
		unsigned seq;

		pthread_mutex_lock(&eng->work_lock);
		if (eng->stopping) {
			pthread_mutex_unlock(&eng->work_lock);
			break;
		}
		seq = eng->work_seq;
		pthread_mutex_unlock(&eng->work_lock);

		if (slot_claim(eng, run) == 1) {
			slot_run_batch(eng, sa->slot, run);
			continue;
		}
		warm_slot_idle(sa->slot);
		/* Nothing runnable: sleep until woken (or a second, to look again). */
		pthread_mutex_lock(&eng->work_lock);
		if (!eng->stopping && seq == eng->work_seq) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)SLOT_IDLE_WAIT;
			pthread_cond_timedwait(&eng->work_cond, &eng->work_lock, &ts);
		}
		pthread_mutex_unlock(&eng->work_lock);
	}
	warm_slot_close(sa->slot);
	free(run);
	return NULL;
}

int
slot_start(struct engine *eng)
{
	eng->nslots = eng->cfg->slots;
	eng->slots = xcalloc((size_t)eng->nslots, sizeof(*eng->slots));
	eng->running = xcalloc((size_t)eng->nslots, sizeof(*eng->running));
	eng->slot_args = xcalloc((size_t)eng->nslots, sizeof(*eng->slot_args));
	for (long i = 0; i < eng->nslots; i++) {
		eng->slot_args[i].eng = eng;
		eng->slot_args[i].slot = (int)i;
		if (pthread_create(&eng->slots[i], NULL, slot_main, &eng->slot_args[i]) != 0) {
			eng->nslots = i;
			return -EAGAIN;
		}
	}
	return 0;
}

void
slot_join(struct engine *eng)
{
	for (long i = 0; i < eng->nslots; i++)
		pthread_join(eng->slots[i], NULL);
}

void
slot_free(struct engine *eng)
{
	free(eng->slots);
	free(eng->slot_args);
	free(eng->running);
	eng->slots = NULL;
	eng->slot_args = NULL;
	eng->running = NULL;
}
