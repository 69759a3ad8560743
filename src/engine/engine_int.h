/*
 * engine_int.h - the engine's shared state, for its own files only: intake.c
 * (accepting evaluations), fetchq.c (the fetch queue and its threads),
 * slot.c (one thread per slot, running claimed modules), coord.c (the
 * coordinator: claims, reclaims, fetch scheduling), gc.c (the files of
 * deleted evaluations), gc_budget.c (the disk budget and retention) and
 * engine.c (start, stop and the helpers they share).
 *
 * Locks, and what each guards:
 *  - fetch_lock: the fetch queue, its in-flight set, what it lent (leases)
 *    and the borrowing flags (fetchq.c);
 *  - work_lock: work_seq and stopping (every thread waits on work_cond);
 *  - run_lock: what each slot runs now (slots.c); gc.c holds it while it
 *    removes a project's files, so no slot starts on them meanwhile;
 *  - coord_lock: the slots each node reported (coord.c).
 * Everything else lives in the store.
 */
#ifndef MESHTEST_ENGINE_INT_H
#define MESHTEST_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "engine/engine.h"
#include "fetch/fetch_zip.h"
#include "store/store.h"

#define ENGINE_MAX_INFLIGHT 4096
#define ENGINE_WARMUP 3.0           /* seconds for membership to settle after start */
#define ENGINE_BATCH_MAX 64         /* modules in one claim */
#define ENGINE_NODES_MAX 1024       /* nodes whose slot counts the coordinator keeps */

struct fetch_item;
struct fetch_lease;
struct gc_budget;
struct slot_run;

/* A node's slot count, as its claims said. */
struct engine_node_slots {
	char node[256];
	int slots;
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
	double started;               /* util_mono() at start */

	/* fetchq.c */
	pthread_mutex_t fetch_lock;
	pthread_cond_t fetch_cond;
	struct fetch_item *fetch_head, *fetch_tail;
	char (*inflight)[48];         /* "<eval>/<idx>" queued or being fetched */
	size_t ninflight;
	struct fetch_lease *leases;   /* projects of ours another node prepares */
	size_t nleases;
	int borrowing;                /* a fetcher is asking other coordinators */
	int borrow_more;              /* one was lent a project: an idle fetcher asks too */
	pthread_t *fetchers;                   /* cfg->fetchers of them */
	size_t nfetchers;                      /* started */

	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	unsigned work_seq;            /* bumped on every wake-up */
	int stopping;                 /* guarded by both fetch_lock and work_lock when set */

	engine_change_fn on_change;   /* set once, atomically, after start */
	void *on_change_ctx;
	engine_alive_fn alive_fn;     /* likewise */
	void *alive_ctx;

	/* slot.c */
	pthread_mutex_t run_lock;
	struct slot_run *running;     /* per slot */
	double busy_seconds;          /* slots' time from a claim to its last result */
	pthread_t *slots;
	long nslots;
	struct slot_arg *slot_args;

	/* coord.c */
	pthread_t coord_thread;
	int coord_started;
	pthread_mutex_t coord_lock;
	struct engine_node_slots *node_slots;
	size_t nnode_slots;

	/* gc_budget.c (its own locks) */
	struct gc_budget *budget;
};

/* engine.c: helpers the engine's files share */
void engine_changed(struct engine *eng, const char *eval_id);
/* A change that is work for other nodes too (engine_change_fn's news). */
void engine_news(struct engine *eng, const char *eval_id);
void engine_alive(struct engine *eng, char ***addrs, size_t *n);
void engine_strv_free(char **v, size_t n);
int engine_strv_has(char *const *v, size_t n, const char *s);
int engine_warm(const struct engine *eng);
void engine_wake_slots(struct engine *eng);
int engine_is_stopping(struct engine *eng);
char *engine_project_dir(struct engine *eng, const char *digest);
int engine_get_blob(struct engine *eng, const char *digest, const char *preferred, char *err,
    size_t errlen);
void engine_share_blob(struct engine *eng, const char *digest);
void engine_push_to(struct engine *eng, const char *eval_id, const struct store_sync_key *keys,
    size_t n, const char *node);

/* fetchq.c */
void fetchq_reserve(struct engine *eng, const char *eval_id, size_t n);
void fetchq_unreserve(struct engine *eng, const char *eval_id, size_t n);
/* Queue a reserved project of a new submission; the queue takes token and url. */
void fetchq_push_new(struct engine *eng, const char *eval_id, int idx, const char *kind,
    const char *source, const char *prefix, const char *upload_digest, const char *url,
    const char *token, int has_token);
/* Queue a project still to fetch (a coordinator round) unless it is queued. */
void fetchq_enqueue_job(struct engine *eng, const struct store_fetch_job *job);
/*
 * The answer to POST /task/fetch from node: {"job": {...}} with a queued
 * project of evaluation eval_id any node may prepare (no token), lent to
 * node, or {"job": null}.
 */
json_t *fetchq_lend(struct engine *eng, const char *node, const char *eval_id);
/* POST /task/fetch/back: node did not prepare a project lent to it; queued here again. */
void fetchq_give_back(struct engine *eng, const char *node, const char *eval_id, int idx);
/*
 * A coordinator round: a lent project that is no longer to fetch is done
 * with; one whose borrower is not alive, or that took longer than a clone
 * may, is ours to queue again.
 */
void fetchq_check_leases(struct engine *eng, char *const *alive, size_t nalive);
int fetchq_start(struct engine *eng);
void fetchq_join(struct engine *eng);
void fetchq_free(struct engine *eng);

/* slot.c */
int slot_start(struct engine *eng);
void slot_join(struct engine *eng);
void slot_free(struct engine *eng);
/* {"claim": first or null, "claims": [...]}: the answer to POST /task/claim. */
json_t *slot_claims_json(const struct store_claim *c, size_t n);
/* What this node's slots run now: the answer to GET /task/running. */
json_t *slot_running_json(struct engine *eng);
/* Seconds the slots have been busy since the node started. */
double slot_busy_seconds(struct engine *eng);
/* Slots running a batch now. */
long slot_busy_count(struct engine *eng);
/* Stop this node's batches of a cancelled or deleted evaluation (any thread). */
void slot_stop_eval(struct engine *eng, const char *eval_id);
/* Stop every batch whose evaluation the store says is cancelled or deleted. */
void slot_stop_halted(struct engine *eng);
/* 1 while a slot runs a batch of the project with this blob digest (hold run_lock). */
int slot_runs_digest(struct engine *eng, const char *digest);

/* gc.c: remove the files of deleted evaluations that nothing uses any more */
void gc_run(struct engine *eng);
#define GC_GRACE 15.0      /* seconds: a file no evaluation names yet may be a new one's */
#define GC_BLOB 1u         /* the blob <data>/blobs/<digest>.zip */
#define GC_PROJECT 2u      /* the unpacked <data>/projects/<digest> */
#define GC_COPIES 4u       /* every slot's pristine copy of it */
#define GC_ALL (GC_BLOB | GC_PROJECT | GC_COPIES)
/*
 * Remove what of the digest's files unless they are in use: a slot runs the
 * project, a fetch holds it (gc_budget_hold), or the blob or the folder
 * changed (written, renamed into place, touched) at or after since
 * (util_now() time). 1 when they went (or were not there), 0 when they stay.
 * Takes run_lock. Any thread.
 */
int gc_files_remove(struct engine *eng, const char *digest, unsigned what, double since);

/*
 * gc_budget.c: the disk budget (--max-disk) and retention (--retention-days):
 * what the node's files take, by category, and the removal of what no
 * running or unfinished work uses, least recently used first.
 */
int gc_budget_start(struct engine *eng);
void gc_budget_free(struct engine *eng);
/* The coordinator round's part: keep within the budget, apply retention. */
void gc_budget_run(struct engine *eng);
/*
 * Make room for need more bytes before accepting a submission: 0, or
 * -ENOSPC with the reason (how much is used, the budget, what could not be
 * freed) in err. Any thread.
 */
int gc_budget_make_room(struct engine *eng, uint64_t need, char *err, size_t errlen);
/* A fetch made the digest's files and no evaluation names them yet: keep them. */
void gc_budget_hold(struct engine *eng, const char *digest);
void gc_budget_unhold(struct engine *eng, const char *digest);
/* 1 while a hold is on digest. */
int gc_budget_held(struct engine *eng, const char *digest);
/* GET /health's "disk" object (new reference); the store's size is the caller's. */
json_t *gc_budget_json(struct engine *eng);
/* The budget in bytes (0 before the first measure). */
uint64_t gc_budget_bytes(struct engine *eng);
/* Pure, for the unit tests: the default budget for what meshtest holds and what is free. */
uint64_t gc_budget_default(uint64_t used, uint64_t avail);
/* bytes as people read them ("1.5 MiB", "512 B") into out. */
void gc_budget_format(uint64_t bytes, char *out, size_t len);

/* coord.c */
int coord_start(struct engine *eng);
void coord_join(struct engine *eng);
void coord_free(struct engine *eng);
/*
 * Claim a batch for node (a node with `slots` slots) from the evaluations
 * this node coordinates; writes up to max claims. Returns how many, 0 when
 * nothing is runnable, <0 on error.
 */
int coord_claim(struct engine *eng, const char *node, int slots, struct store_claim *out,
    size_t max);
/* The evaluations of work this node coordinates (free *ids). */
void coord_mine(struct engine *eng, const struct store_work *work, size_t nwork,
    char *const *alive, size_t nalive, struct store_id **ids, size_t *nids);
/* The coordinator of one evaluation (a pointer into alive or w). */
const char *coord_of(const struct store_work *w, char *const *alive, size_t nalive);

#endif
