/*
 * store_int.h - what the files of src/store share and nothing else sees:
 * the store itself, the calling thread's connection and the small SQLite
 * helpers every query uses.
 *
 * store.c owns the schema, the connections and the writes of this node's own
 * work; store_read.c the documents the API answers; store_results.c the
 * /results document read a row at a time; store_sync.c what
 * replicates (row digests, the change log, exports and merges);
 * store_cancel.c cancels, tombstones and the files deleted evaluations leave.
 */
#ifndef MESHTEST_STORE_INT_H
#define MESHTEST_STORE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#include "store/store.h"

/*
 * A status document kept serialized (store_read.c): valid while the
 * evaluation's version (bumped by every change of its rows) and time of its
 * last event are the ones it was built at. The elapsed time, which moves
 * with the clock while the evaluation runs, is spliced between head and tail.
 * While one thread builds a newer one, and for STORE_DOC_MIN_AGE after a
 * build while the evaluation runs, readers get the one there is: rebuilds of
 * a running evaluation are bounded in time, not driven by every change.
 */
#define STORE_DOC_MIN_AGE 0.05
#define STORE_DOC_CACHE 16
struct store_cached_doc {
	char id[37];
	long long ver;
	double last_event, created;
	int active;
	int building;                 /* a thread is building a newer one */
	double built_at;              /* util_mono() */
	char *head, *tail;
	size_t head_len, tail_len;
	unsigned long long used;
};

struct store {
	char *path;
	pthread_key_t key;
	pthread_mutex_t cache_lock;
	struct store_cached_doc cache[STORE_DOC_CACHE];
	unsigned long long cache_tick;
};

/* The calling thread's connection, opened on first use; NULL on failure. */
sqlite3 *store_db(struct store *st);
/*
 * A prepared statement for sql on db (kept for the thread and handed out
 * again), or NULL with the reason logged. Give it back with store_finish,
 * never sqlite3_finalize.
 */
sqlite3_stmt *store_prep(sqlite3 *db, const char *sql);
/* Done with a statement of store_prep (reset for the next use); NULL is fine. */
void store_finish(sqlite3_stmt *s);
/* Run SQL without rows; 0 or -EIO (logged). */
int store_exec(sqlite3 *db, const char *sql);
/* Run a one-row-or-none write; 0 or -EIO (logged). */
int store_step_done(sqlite3 *db, sqlite3_stmt *s);
/* Bind text, NULL as SQL NULL. */
void store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* A column's text, "" for NULL. */
const char *store_col_text(sqlite3_stmt *s, int i);
/* One integer from a query with an optional text parameter (0 when none). */
long store_query_long(sqlite3 *db, const char *sql, const char *param);
/* Move the evaluation's time of its last event forward to t. */
int store_touch_eval(sqlite3 *db, const char *eval_id, double t);

/*
 * Delete a project's modules that have no result: only the pending ones
 * (planned before its files were seen), or with unfinished also running
 * ones (a project that failed). Returns how many, or -EIO.
 */
int store_drop_modules(sqlite3 *db, const char *eval_id, int idx, int unfinished);

/* Forget the serialized documents (store_close). store_read.c. */
void store_read_cache_free(struct store *st);

/*
 * Merge one result row ({project_idx, path, node, attempt, finished_at,
 * body}) by store_result_wins, inside the caller's transaction; the module
 * becomes done. Returns 1 when it changed the store, 0 when not, or -EIO.
 * store_sync.c.
 */
int store_sync_merge_result(sqlite3 *db, const char *eval_id, json_t *r);
/*
 * The SQL functions the schema's triggers call (row digests, buckets, the
 * change log's switch), registered on every new connection. store_sync.c.
 */
int store_sync_register(sqlite3 *db);

/* Cancel and delete, for the merge (store_cancel.c): 1 when id was deleted here. */
int store_tomb_has(sqlite3 *db, const char *id);
/* The tombstone of id as a replicated document ({"id", "deleted_at", "share"}) or NULL. */
json_t *store_tomb_doc(struct store *st, const char *id);
/*
 * A tombstone from another node, inside the caller's transaction: the
 * evaluation's rows go (its share of /stats is counted when this node never
 * counted any of it). 1 when it was new here, 0 when not, or -EIO.
 */
int store_tomb_merge(sqlite3 *db, const char *id, json_t *doc);
/* A replicated cancel time (a number, else nothing): the earliest wins. Rows changed or -EIO. */
int store_cancel_merge(sqlite3 *db, const char *id, json_t *at);

/*
 * The rows of the /results document (store_read.c builds it whole,
 * store_results.c a row at a time): the projects of evaluation ?1 (only the
 * one whose project_id is ?2, when ?2 is bound) with their totals, by index,
 * and their modules with their results, by project and path. store_results_project and store_results_module turn one row into its
 * JSON (the project without "modules"); store_results_module_state is the
 * state a module shows (pending modules of a cancelled evaluation:
 * "cancelled").
 */
#define STORE_RESULTS_PROJECTS_SQL \
	"SELECT p.idx, p.project_id, p.source, p.state, p.error, p.warnings," \
	" coalesce(sum(r.passed), 0), coalesce(sum(r.failed), 0), coalesce(sum(r.skipped), 0)," \
	" p.commit_sha FROM project p LEFT JOIN result r ON r.eval_id = p.eval_id" \
	" AND r.project_idx = p.idx WHERE p.eval_id = ?1 AND (?2 IS NULL OR" \
	" p.project_id = ?2) GROUP BY p.idx ORDER BY p.idx"
#define STORE_MODULES_SQL(body) \
	"SELECT m.project_idx, p.project_id, m.path, m.state, m.node," \
	" r.passed, r.failed, r.skipped, " body ", m.attempts" \
	" FROM module m JOIN project p ON p.eval_id = m.eval_id AND p.idx = m.project_idx" \
	" LEFT JOIN result r ON r.eval_id = m.eval_id AND r.project_idx = m.project_idx" \
	" AND r.path = m.path WHERE m.eval_id = ?1 AND (?2 IS NULL OR p.project_id = ?2)" \
	" ORDER BY m.project_idx, m.path"
#define STORE_RESULTS_MODULES_SQL STORE_MODULES_SQL("r.body")
/* The same rows without the results' bodies, which the summary never reads. */
#define STORE_SUMMARY_MODULES_SQL STORE_MODULES_SQL("NULL")
json_t *store_results_project(sqlite3_stmt *s);
json_t *store_results_module(sqlite3_stmt *s, int eval_cancelled);
const char *store_results_module_state(sqlite3_stmt *s, int eval_cancelled);
/*
 * The evaluation document from db inside the caller's transaction (details:
 * the whole /results; else the summary of GET /evaluation/<id>); NULL when
 * there is no such id. ck, when not NULL, takes what its cache entry needs.
 */
json_t *store_eval_doc_in(sqlite3 *db, const char *id, double now, int details,
    struct store_cached_doc *ck);

#endif
