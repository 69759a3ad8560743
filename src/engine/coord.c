/*
 * coord.c - the coordinator: for the evaluations this node is responsible
 * for (sched_coordinator: the accepting node while it lives, else a
 * deterministic successor), it hands out batches of modules to the slots
 * that ask (its own and other nodes', POST /task/claim), queues the projects
 * still to fetch (also after a takeover) and takes back those it lent to a
 * node that died (fetchq.c), gives back to pending the
 * modules of workers that died or no longer run them, and settles a cancel
 * (pending modules cancelled, running ones once their node stopped them).
 * Each round also stops this node's batches of evaluations cancelled or
 * deleted elsewhere, removes deleted evaluations' files (gc.c) and keeps
 * the node within its disk budget and retention (gc_budget.c).
 *
 * The policy (which evaluation, which modules together) is src/sched's; this
 * file feeds it from the store and carries out its answer. Threads: claims
 * arrive on slot threads and HTTP threads; the round runs on the
 * coordinator's own thread. The slot counts nodes report are under
 * coord_lock; everything else is in the store.
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
#include "core/util.h"
#include "engine/engine_int.h"
#include "sched/sched.h"
#include "store/store.h"

#define COORD_PERIOD 0.5        /* seconds between coordinator rounds */
#define COORD_STALE_CLAIM 10.0  /* a claim its worker does not run is given back after */

const char *
coord_of(const struct store_work *w, char *const *alive, size_t nalive)
{
	return sched_coordinator(w->id, w->accepted_by, (const char *const *)alive, nalive);
}

void
coord_mine(struct engine *eng, const struct store_work *work, size_t nwork,
    char *const *alive, size_t nalive, struct store_id **ids, size_t *nids)
{
	int warm = engine_warm(eng);

	*ids = xcalloc(nwork ? nwork : 1, sizeof(**ids));
	*nids = 0;
	for (size_t i = 0; i < nwork; i++) {
		const char *c = warm ? coord_of(&work[i], alive, nalive) : work[i].accepted_by;
		if (c == NULL || strcmp(c, eng->address) != 0)
			continue;
		snprintf((*ids)[(*nids)++].id, sizeof((*ids)[0].id), "%s", work[i].id);
	}
}

/* Remember how many slots node has (from its claims). */
static void
coord_note_slots(struct engine *eng, const char *node, int slots)
{
	size_t i;

	if (slots <= 0)
		return;
	pthread_mutex_lock(&eng->coord_lock);
	for (i = 0; i < eng->nnode_slots; i++)
		if (strcmp(eng->node_slots[i].node, node) == 0)
			break;
	if (i == eng->nnode_slots && eng->nnode_slots < ENGINE_NODES_MAX) {
		eng->node_slots = xrealloc(eng->node_slots,
		    (eng->nnode_slots + 1) * sizeof(*eng->node_slots));
		snprintf(eng->node_slots[i].node, sizeof(eng->node_slots[i].node), "%s", node);
		eng->nnode_slots++;
	}
	if (i < eng->nnode_slots)
		eng->node_slots[i].slots = slots;
	pthread_mutex_unlock(&eng->coord_lock);
}

/* The slots of the live nodes: as they said, else as many as ours. */
static int
coord_total_slots(struct engine *eng, char *const *alive, size_t nalive)
{
	int total = 0;

	pthread_mutex_lock(&eng->coord_lock);
	for (size_t a = 0; a < nalive; a++) {
		int s = (int)eng->nslots;
		for (size_t i = 0; i < eng->nnode_slots; i++)
			if (strcmp(eng->node_slots[i].node, alive[a]) == 0)
				s = eng->node_slots[i].slots;
		total += s;
	}
	pthread_mutex_unlock(&eng->coord_lock);
	return total > 0 ? total : 1;
}

/* The scheduler's view of pending modules. */
static struct sched_module *
coord_sched_modules(const struct store_pending *p, size_t n)
{
	struct sched_module *m = xcalloc(n ? n : 1, sizeof(*m));

	for (size_t i = 0; i < n; i++)
		m[i] = (struct sched_module){ p[i].project_idx, p[i].path, p[i].est, p[i].iname,
		    p[i].known || p[i].measured, p[i].project_pending };
	return m;
}

/*
 * Pick the modules of one claim from one evaluation and claim them. The
 * scheduler orders the few modules that may lead (store_pending_summary);
 * the batch comes from the leader's project, with the rest of the pending
 * work counted at that project's mean: the cost of a claim does not grow
 * with the evaluation.
 */
static int
coord_claim_from(struct engine *eng, const char *eval_id, const char *node, int total_slots,
    struct store_claim *out, size_t max)
{
	struct store_pending_summary sum;
	struct store_pending *p = NULL;
	struct sched_module *m = NULL;
	const struct store_pending **chosen = NULL;
	size_t n = 0, *idx = NULL, k, lead = 0, others;
	long total;
	int r = 0;

	if (store_pending_summary(eng->st, eval_id, &sum) < 0 || sum.nlead == 0)
		goto out;
	m = coord_sched_modules(sum.lead, sum.nlead);
	idx = xcalloc(sum.nlead, sizeof(*idx));
	sched_order(m, sum.nlead, idx);
	lead = idx[0];
	free(m);
	free(idx);
	m = NULL;
	idx = NULL;
	if (store_pending_project(eng->st, eval_id, sum.lead[lead].project_idx, sum.mean, &p,
	    &n) < 0 || n == 0)
		goto out;
	m = coord_sched_modules(p, n);
	idx = xcalloc(n, sizeof(*idx));
	/*
	 * The work the slots share is what is still pending (guided
	 * self-scheduling): a claim leaves the later ones, and a node that joins
	 * mid-run, their part.
	 */
	total = sum.ready + sum.unready;
	others = (size_t)total > n ? (size_t)total - n : 0;
	k = sched_batch(m, n, others, total_slots, max, idx);
	chosen = xcalloc(k ? k : 1, sizeof(*chosen));
	for (size_t i = 0; i < k; i++)
		chosen[i] = &p[idx[i]];
	r = store_claim_modules(eng->st, eval_id, node, chosen, k, out);
out:
	free(chosen);
	free(idx);
	free(m);
	store_pending_free(p, n);
	store_pending_summary_free(&sum);
	return r;
}

int
coord_claim(struct engine *eng, const char *node, int slots, struct store_claim *out,
    size_t max)
{
	struct store_work *work = NULL;
	struct store_id *mine = NULL;
	struct sched_eval *ev = NULL;
	char **alive = NULL;
	size_t nwork = 0, nalive = 0, nmine = 0, nev = 0;
	int r = 0;

	coord_note_slots(eng, node, slots);
	engine_alive(eng, &alive, &nalive);
	/* Work goes to members only: a stranger's claim would look dead at once. */
	if (!engine_strv_has(alive, nalive, node))
		goto out;
	if (store_work_list(eng->st, &work, &nwork) < 0)
		goto out;
	coord_mine(eng, work, nwork, alive, nalive, &mine, &nmine);
	ev = xcalloc(nmine ? nmine : 1, sizeof(*ev));
	for (size_t i = 0; i < nwork; i++) {
		for (size_t j = 0; j < nmine; j++) {
			if (strcmp(work[i].id, mine[j].id) != 0)
				continue;
			ev[nev++] = (struct sched_eval){ work[i].id, work[i].created_at,
			    work[i].pending, work[i].running };
		}
	}
	/* Fair share between evaluations; one that raced empty gives way to the next. */
	while (r == 0) {
		long pick = sched_pick_eval(ev, nev);
		if (pick < 0)
			break;
		r = coord_claim_from(eng, ev[pick].id, node, coord_total_slots(eng, alive, nalive),
		    out, max);
		ev[pick].pending = 0;
	}
	if (r > 0) {
		log_info("engine: %d module%s of %s (evaluation %s, attempt %d) go%s to %s", r,
		    r == 1 ? "" : "s", out[0].project_id, out[0].eval_id, out[0].attempt,
		    r == 1 ? "es" : "", node);
		engine_changed(eng, out[0].eval_id);
	}
out:
	free(ev);
	free(mine);
	free(work);
	engine_strv_free(alive, nalive);
	return r;
}

/* ---------------------------------------------------------- the round */

/* One worker's answer to GET /task/running, cached for a round. */
struct coord_view {
	char node[256];
	json_t *running;   /* array, or NULL when the worker did not answer */
};

static int
coord_worker_runs(json_t *running, const struct store_claim *c)
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
coord_reclaim(struct engine *eng, const struct store_id *mine, size_t nmine,
    char *const *alive, size_t nalive)
{
	struct store_claim *run = NULL;
	char (*nodes)[256] = NULL;
	struct coord_view *views = NULL;
	size_t n = 0, nviews = 0;
	double now = util_now();
	json_t *local = NULL;
	char last[37] = "";
	int stopped = 0;

	if (store_running_modules(eng->st, mine, nmine, &run, &nodes, &n) < 0 || n == 0)
		goto out;
	views = xcalloc(n, sizeof(*views));
	for (size_t i = 0; i < n; i++) {
		json_t *running = NULL;
		const char *why = NULL;

		/* rows come by evaluation: ask the store once per evaluation */
		if (strcmp(last, run[i].eval_id) != 0) {
			snprintf(last, sizeof(last), "%s", run[i].eval_id);
			stopped = store_eval_stopped(eng->st, last);
		}
		if (!engine_strv_has(alive, nalive, nodes[i])) {
			why = "its node is gone";
		} else if (stopped || now - run[i].started_at > COORD_STALE_CLAIM) {
			/*
			 * A cancelled evaluation's module is given back (cancelled) as
			 * soon as its node no longer runs it: a claim still on its way
			 * finds the cancel there first and never starts.
			 */
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
			if (running != NULL && !coord_worker_runs(running, &run[i]))
				why = "its node does not run it";
		}
		if (why == NULL)
			continue;
		if (store_release_module(eng->st, &run[i]) != 1)
			continue;   /* finished or claimed again meanwhile */
		if (stopped)
			log_info("engine: %s/%s (evaluation %s, attempt %d) is cancelled: %s",
			    run[i].project_id, run[i].path, run[i].eval_id, run[i].attempt, why);
		else
			log_warn("engine: %s/%s (evaluation %s, attempt %d) goes back to pending: %s",
			    run[i].project_id, run[i].path, run[i].eval_id, run[i].attempt, why);
		engine_news(eng, run[i].eval_id);
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

/*
 * The coordinator's part of a cancel: pending modules of the cancelled
 * evaluations it coordinates never start, projects still to fetch never
 * will be (store_cancel_settle).
 */
static void
coord_cancel(struct engine *eng, const struct store_work *work, size_t nwork,
    const struct store_id *mine, size_t nmine)
{
	for (size_t i = 0; i < nwork; i++) {
		int n;

		if (!work[i].cancelled)
			continue;
		for (size_t j = 0; j < nmine; j++) {
			if (strcmp(work[i].id, mine[j].id) != 0)
				continue;
			if ((n = store_cancel_settle(eng->st, work[i].id, util_now())) > 0) {
				log_info("engine: evaluation %s is cancelled: %d pending modules and"
				    " projects stopped", work[i].id, n);
				engine_changed(eng, work[i].id);
			}
		}
	}
}

/* Queue the projects still to fetch of the evaluations we coordinate. */
static void
coord_fetch(struct engine *eng, const struct store_id *mine, size_t nmine)
{
	struct store_fetch_job *jobs = NULL;
	size_t n = 0;

	if (store_fetch_jobs(eng->st, mine, nmine, &jobs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		fetchq_enqueue_job(eng, &jobs[i]);
	store_fetch_jobs_free(jobs, n);
}

static void *
coord_main(void *arg)
{
	struct engine *eng = arg;

	util_thread_name("coord");
	while (!engine_is_stopping(eng)) {
		struct store_work *work = NULL;
		struct store_id *mine = NULL;
		char **alive = NULL;
		size_t nwork = 0, nalive = 0, nmine = 0;

		/* what a cancel or delete that came by replication stops here */
		slot_stop_halted(eng);
		engine_alive(eng, &alive, &nalive);
		if (store_work_list(eng->st, &work, &nwork) == 0 && nwork > 0) {
			coord_mine(eng, work, nwork, alive, nalive, &mine, &nmine);
			if (nmine > 0) {
				coord_cancel(eng, work, nwork, mine, nmine);
				coord_fetch(eng, mine, nmine);
				if (engine_warm(eng))
					coord_reclaim(eng, mine, nmine, alive, nalive);
			}
		}
		fetchq_check_leases(eng, alive, nalive);
		gc_run(eng);
		gc_budget_run(eng);
		free(mine);
		free(work);
		engine_strv_free(alive, nalive);
		pthread_mutex_lock(&eng->work_lock);
		if (!eng->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(COORD_PERIOD * 1e9);
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

int
coord_start(struct engine *eng)
{
	if (pthread_create(&eng->coord_thread, NULL, coord_main, eng) != 0)
		return -EAGAIN;
	eng->coord_started = 1;
	return 0;
}

void
coord_join(struct engine *eng)
{
	if (eng->coord_started)
		pthread_join(eng->coord_thread, NULL);
	eng->coord_started = 0;
}

void
coord_free(struct engine *eng)
{
	free(eng->node_slots);
	eng->node_slots = NULL;
	eng->nnode_slots = 0;
}
