/*
 * store.h - the node's durable state in SQLite (WAL mode): evaluations,
 * projects, test modules and their recorded results.
 *
 * Every thread gets its own connection (opened on first use, closed when the
 * thread exits), so HTTP readers never wait behind a writer. Writes that must
 * be atomic (claiming a module, recording a result) run in one IMMEDIATE
 * transaction. All functions are thread-safe and return 0 or a negative errno
 * (-ENOENT: no such evaluation/module, -EIO: SQLite failed, logged once here).
 *
 * A module's recorded result is final; conflicting results from several
 * nodes are settled by store_result_wins. The schema carries a version
 * (PRAGMA user_version) and store_open migrates an older database.
 *
 * The store holds data, not policy: it lists what is pending and claims
 * what the scheduler (src/sched) chose. Evaluations are named by typed id
 * arrays (struct store_id).
 */
#ifndef MESHTEST_STORE_H
#define MESHTEST_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;

int store_open(const char *path, struct store **out);

/* An evaluation id, for lists of them. */
struct store_id {
	char id[37];
};

/* A test module as the fetcher found it: what scheduling needs to know. */
struct store_module_info {
	const char *path;           /* relative to the project root */
	double est;                 /* estimated seconds (from its tests), <= 0: none */
	const char *iname;          /* the name pytest imports it under (may be NULL) */
};
void store_close(struct store *st);

/* A project as accepted (before its files are fetched). */
struct store_project_new {
	const char *project_id;     /* unique within the evaluation */
	const char *source;         /* repository URL without credentials, or "zip:<folder>" */
	const char *prefix;         /* member prefix in the upload (ZIP) or NULL */
	const char *const *modules; /* known test modules (ZIP) or NULL (git: after clone) */
	size_t nmodules;
};

/*
 * Create an evaluation with its projects (and the modules known so far) in one
 * transaction. kind is "zip" or "git"; settings a JSON object (module_timeout,
 * ...); has_token records whether a token came with it (never the token).
 */
int store_eval_create(struct store *st, const char *id, double created, const char *kind,
    const char *accepted_by, json_t *settings, int has_token, const char *upload_digest,
    const struct store_project_new *projects, size_t nprojects);

/* The evaluation's settings object (new reference) or NULL. */
json_t *store_eval_settings(struct store *st, const char *id);

/* {"evaluations": [...]} in submission order (new reference). */
json_t *store_eval_list(struct store *st);
/* The GET /evaluation/<id> document, or NULL when there is no such id. */
json_t *store_eval_status(struct store *st, const char *id, double now);
/*
 * The same document serialized (compact, keys sorted), malloc'ed with its
 * length in *len, or NULL. Kept between calls while the evaluation does not
 * change, so that asking costs one indexed row and a copy, whatever the
 * evaluation's size.
 */
char *store_eval_status_text(struct store *st, const char *id, double now, size_t *len);
/* The GET /evaluation/<id>/results document whole in memory (checks, tests), or NULL. */
json_t *store_eval_results(struct store *st, const char *id, double now);

/*
 * The same document as text, a piece at a time (store_results.c), from a
 * snapshot taken at open: -ENOENT when there is no such id, -EBUSY when 16
 * readers are open already, -EIO. read writes up to max bytes and returns
 * how many (0: the end), or -EIO when the rest cannot be read. One reader
 * is used by one thread at a time.
 */
struct store_results;
int store_results_open(struct store *st, const char *id, double now,
    struct store_results **out);
long store_results_read(struct store_results *r, char *buf, size_t max);
void store_results_close(struct store_results *r);
/*
 * A reader of the same snapshot a project at a time, without the summary
 * (exports): every project, or only the one whose project_id is project
 * when that is not NULL. next gives each project of the document with its
 * "modules", as /results has it (new reference), and 1; 0 after the last;
 * -EIO. rewind starts again at the first project of the same snapshot. A
 * reader is used either way, never both.
 */
int store_results_open_projects(struct store *st, const char *id, const char *project,
    struct store_results **out);
int store_results_next_project(struct store_results *r, json_t **out);
int store_results_rewind(struct store_results *r);
/* What a reader held: the summary, then the largest single piece after it. */
struct store_results_stats {
	size_t head;         /* bytes of the summary (a few numbers per module) */
	size_t max_piece;    /* the largest project or module written after it */
	size_t total;        /* bytes written so far */
};
void store_results_stats(const struct store_results *r, struct store_results_stats *out);
/*
 * The events of up to limit rows of an evaluation's event log after event
 * "<after>" (with after_k > 0: after test after_k of module_done event
 * <after>), oldest first, as [{"id", "event", "data"}] (store_events.c); a
 * module_done row brings its tests first. NULL when SQLite fails.
 */
json_t *store_events_after(struct store *st, const char *eval_id, long long after,
    int after_k, int limit);
/* 1 while the evaluation has work left (fetching, pending, running), 0 when
 * not, -ENOENT when unknown, -EIO. From its counters: no scan. */
int store_eval_active(struct store *st, const char *eval_id);
/* The "all" part of GET /stats and one "nodes" entry for address. */
json_t *store_stats_all(struct store *st);
json_t *store_stats_node(struct store *st, const char *address);

/* The work left in the store, from the evaluations' running counters (GET /metrics). */
struct store_queue {
	long pending;       /* modules waiting for a slot (of ready projects or not) */
	long running;       /* modules claimed and not finished */
	long fetching;      /* projects whose files are still to fetch */
};
/* Sums the counters of the evaluations with work left only (an index); 0 or -EIO. */
int store_queue(struct store *st, struct store_queue *out);
/* Bytes of the database files (main and write-ahead log); 0 or -errno. */
int store_disk_bytes(struct store *st, uint64_t *bytes);

/* A project still to fetch, for the fetcher (after acceptance or a restart). */
struct store_fetch_job {
	char eval_id[37];
	int idx;
	char *kind;          /* "zip" or "git" */
	char *project_id;
	char *source;
	char *prefix;
	char *upload_digest;  /* ZIP: the upload's blob */
	int has_token;
};
/* Projects in state "fetching" of the evaluations ids[0..nids): free with store_fetch_jobs_free. */
int store_fetch_jobs(struct store *st, const struct store_id *ids, size_t nids,
    struct store_fetch_job **jobs, size_t *n);
void store_fetch_jobs_free(struct store_fetch_job *jobs, size_t n);

/* 1 when the project is still to fetch, 0 when not (or unknown), <0 on error. */
int store_project_fetching(struct store *st, const char *eval_id, int idx);

/* What fetching a project found (store_project_ready). */
struct store_fetched {
	const char *digest;        /* the blob of the project's files */
	const char *commit;        /* git projects: the commit graded; else NULL */
	const char *reuse_key;     /* what makes two runs of it the same run; may be NULL */
	int reuse;                 /* take the results of an earlier same run (reuse: true) */
	const struct store_module_info *modules;
	size_t nmodules;
	json_t *warnings;          /* may be NULL */
	double now;
	size_t reused;             /* out: modules that took an earlier result */
};
/*
 * The project's files are packed: record its blob, modules, commit, reuse
 * key and warnings, and make it runnable (only from "fetching"; a second
 * fetch of the same project is ignored). With f->reuse, each module whose
 * earlier run under the same key finished normally (outcome "finished",
 * not flaky) takes that result at once, marked "reused" and "reused_from",
 * under no node. 1 when it made the project ready, 0 when it was ready or
 * failed already (another node's preparation came first), -EIO.
 */
int store_project_ready(struct store *st, const char *eval_id, int idx, struct store_fetched *f);
/* The project cannot run: grade 0 with this error; its modules are dropped. */
int store_project_error(struct store *st, const char *eval_id, int idx, const char *error,
    json_t *warnings, double when);
/* The same for a project that could not be prepared: only while it is still fetching. */
int store_project_fetch_failed(struct store *st, const char *eval_id, int idx,
    const char *error, json_t *warnings, double when);

/* A module claimed for running. */
struct store_claim {
	char eval_id[37];
	int project_idx;
	char project_id[256];
	char path[1024];
	char digest[65];         /* the project's blob */
	int attempt;
	double module_timeout;   /* from the evaluation's settings, 0: node default */
	int isolation;           /* 1: "module", 0: "project" (the default) */
	double started_at;       /* store_running_modules only */
};

/* An evaluation with work left, and how much. */
struct store_work {
	char id[37];
	char accepted_by[256];
	double created_at;
	long pending;            /* pending modules of ready projects */
	long fetching;           /* projects still to fetch */
	long running;            /* modules running */
	int cancelled;           /* a cancel reached this node (store_cancel_settle) */
};
/* Evaluations with work left, oldest first (free *out). */
int store_work_list(struct store *st, struct store_work **out, size_t *n);

/* A pending module of a ready project, with what the scheduler weighs. */
struct store_pending {
	int project_idx;
	char *path;
	char *iname;             /* may be NULL */
	double est;              /* seconds: a recorded duration of this module and content
				  * (found when the project became ready), else the mean of
				  * this evaluation's finished modules, else the estimate
				  * from its tests, else 0 */
	int known;               /* est is a duration recorded for this module and content */
	int measured;            /* est is this evaluation's mean so far */
	long project_pending;    /* its project's pending modules */
};
/* An evaluation's pending work in brief, for one claim. */
struct store_pending_summary {
	long ready;              /* pending modules of ready projects */
	long unready;            /* pending modules of projects still being fetched */
	double mean;             /* mean duration of its finished modules; < 0: none yet */
	struct store_pending *lead;  /* the modules one of which comes first (<= 4) */
	size_t nlead;
};
/*
 * The counts, and the pending modules that may come first in the
 * scheduler's order: the longest one with a recorded duration and the first
 * (or, before any module finished, the longest) of the others. Costs a few
 * indexed rows, whatever the evaluation's size. Free with
 * store_pending_summary_free.
 */
int store_pending_summary(struct store *st, const char *eval_id,
    struct store_pending_summary *out);
void store_pending_summary_free(struct store_pending_summary *s);
/* The pending modules of one ready project (free with store_pending_free). */
int store_pending_project(struct store *st, const char *eval_id, int project_idx,
    double mean, struct store_pending **out, size_t *n);
void store_pending_free(struct store_pending *p, size_t n);

/*
 * Claim mods (of evaluation eval_id) for node, in one transaction: each one
 * still pending on a ready project becomes running with the next attempt and
 * its claim is written to out (room for n). Returns how many were claimed
 * (the others moved on meanwhile), or <0.
 */
int store_claim_modules(struct store *st, const char *eval_id, const char *node,
    const struct store_pending *const *mods, size_t n, struct store_claim *out);
/*
 * Modules running in the evaluations ids[0..nids), with the node running
 * each (parallel arrays; free both).
 */
int store_running_modules(struct store *st, const struct store_id *ids, size_t nids,
    struct store_claim **out, char (**nodes)[256], size_t *n);
/*
 * Give a claimed module back to pending: only while it is still running that
 * very claim (same attempt) and has no result. Returns 1 when it went back,
 * 0 when it had moved on meanwhile.
 */
int store_release_module(struct store *st, const struct store_claim *c);
/*
 * Record the final result of a module (result: the runner's JSON, which gains
 * node/attempt/finished_at). Returns 1 when recorded, 0 when the module already
 * had a result (kept as it was).
 */
int store_record_result(struct store *st, const struct store_claim *c, const char *node,
    json_t *result, double finished);
/*
 * The same for n results in one transaction (one commit for a session's
 * modules): out[i] is what store_record_result would return for each. 0, or
 * -EIO with nothing recorded.
 */
int store_record_results(struct store *st, const struct store_claim *const *c, const char *node,
    json_t *const *results, size_t n, double finished, int *out);
/* After a crash: modules this node was running go back to pending. */
int store_requeue_running(struct store *st, const char *node);
/* 1 if any module is pending on a ready project. */
int store_has_runnable(struct store *st);

/*
 * Replication (store_sync.c). A document is an evaluation's header and any
 * of its rows (projects, modules, results; no local paths), each module or
 * result row with its project's row, so that any part merges on its own.
 */
#define STORE_SYNC_BUCKETS 256
/* A row of an evaluation: a module (and its result), or with path "" its project. */
struct store_sync_key {
	int project_idx;
	const char *path;
};
/* All of an evaluation, or NULL when there is no such id. */
json_t *store_sync_export(struct store *st, const char *id);
/* The rows of keys[0..n), with the header. */
json_t *store_sync_export_keys(struct store *st, const char *id,
    const struct store_sync_key *keys, size_t n);
/* The rows in the given buckets, with the header. */
json_t *store_sync_export_buckets(struct store *st, const char *id, const int *buckets,
    size_t n);
/*
 * Merge a document from another node by the deterministic rules in
 * store_sync.c. Returns how many rows changed (0: nothing new), or <0
 * (-EINVAL: malformed). What a merge changes is not logged as a change.
 */
int store_sync_merge(struct store *st, json_t *doc);
/*
 * {"<id>": "<16 hex digits>", ...}: each evaluation's digest (its rows' and
 * its last event's time), and STORE_SYNC_DELETED for each deleted one (new
 * reference).
 */
#define STORE_SYNC_DELETED "deleted"
json_t *store_sync_digests(struct store *st);
/*
 * The evaluation's bucket digests (all 0 when it has no rows here) and the
 * time of its last event (0: none).
 */
int store_sync_buckets(struct store *st, const char *id, uint64_t out[STORE_SYNC_BUCKETS],
    double *last_event);
/* A peer's time of the evaluation's last event: kept when later than ours. */
int store_sync_last_event(struct store *st, const char *id, double t);
/* A row this node changed itself, not pushed yet. */
struct store_sync_change {
	long long seq;
	char eval_id[37];
	struct store_sync_key key;   /* path owned by the change */
};
/* The oldest max changes (free with store_sync_changes_free). */
int store_sync_changes(struct store *st, size_t max, struct store_sync_change **out, size_t *n);
/* Forget changes that were pushed (or handed to anti-entropy). */
int store_sync_changes_done(struct store *st, const struct store_sync_change *c, size_t n);
void store_sync_changes_free(struct store_sync_change *c, size_t n);
/*
 * The conflict rule for two results of one module: 1 when (attempt, node)
 * beats (cur_attempt, cur_node). Pure.
 */
int store_result_wins(int attempt, const char *node, int cur_attempt, const char *cur_node);

/*
 * Cancel and delete (store_cancel.c). The rule a cancel and a finish settle
 * by, on every node: per module, a recorded result wins over a cancel; a
 * module without a result in a cancelled evaluation is "cancelled" and counts
 * nowhere (not executed, pending or in progress, in no percentage or grade);
 * the evaluation's status is "cancelled" once none of its modules runs.
 *
 * store_eval_cancel marks the evaluation cancelled now (replicated; the
 * earliest time wins): 0, -ENOENT (no such evaluation), -EALREADY (already
 * cancelled) or -EPERM (nothing left to stop: done or failed).
 */
int store_eval_cancel(struct store *st, const char *id, double now);
/*
 * The coordinator's part of a cancel (only once the evaluation is cancelled):
 * pending modules become "cancelled", projects still to fetch get an error.
 * Returns how many rows changed, or <0. Running modules go to "cancelled"
 * when they are given back (store_release_module, store_requeue_running).
 */
int store_cancel_settle(struct store *st, const char *id, double now);
/* Modules of the evaluation running now (one row, no scan), or -1 when it is unknown. */
long store_eval_running(struct store *st, const char *id);
/* 1 when nothing of the evaluation may start or run here: cancelled or deleted. */
int store_eval_stopped(struct store *st, const char *id);
/* 1 when the evaluation was deleted (its tombstone is here). */
int store_eval_tombstoned(struct store *st, const char *id);
/*
 * Delete the evaluation here: its rows go, a tombstone (id, time, its share
 * of GET /stats "all") stays and replicates, and its digests are queued for
 * the engine to remove their files. GET /stats totals do not change.
 * 0 or -ENOENT (unknown, or deleted already).
 */
int store_eval_delete(struct store *st, const char *id, double now);

/* A blob's digest (64 hex digits), for lists of them. */
struct store_digest {
	char d[65];
};
/* Digests of deleted evaluations whose files may go, oldest first (free *out). */
int store_gc_list(struct store *st, size_t max, struct store_digest **out, size_t *n);
/* The files of digest are gone (or in use again): forget it. */
int store_gc_done(struct store *st, const char *digest);
/* 1 when an evaluation here uses digest (a project's files, an upload, tests). */
int store_digest_used(struct store *st, const char *digest);

/*
 * The disk budget's questions (store_disk.c). Digests that an evaluation with
 * work left (modules pending or running, projects to fetch) names: its
 * projects' blobs, its upload, its instructor's tests (free *out).
 */
int store_disk_pinned(struct store *st, struct store_digest **out, size_t *n);
/*
 * Digests named only by evaluations that are finished (no work left) and
 * whose last event was before cutoff (util_now() time); free *out.
 */
int store_disk_expired(struct store *st, double cutoff, struct store_digest **out, size_t *n);

#endif
