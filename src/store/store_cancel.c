/*
 * store_cancel.c - cancelling and deleting evaluations: the cancel mark,
 * settling a cancelled evaluation's modules, tombstones, and the files a
 * deleted evaluation leaves for the engine to remove.
 *
 * The rule a cancel and a finish settle by (the same on every node, in any
 * order): per module, a recorded result wins over a cancel; a module without
 * a result in a cancelled evaluation is cancelled and counts nowhere; the
 * evaluation is "cancelled" once none of its modules runs. The cancel itself
 * is a time on the evaluation (the earliest wins), replicated like a row
 * (store.c, STORE_CANCEL_TRIGGER), so anti-entropy carries it.
 *
 * A delete leaves a tombstone: the id, the time, and the evaluation's share
 * of GET /stats "all" (for nodes that never held it). Wherever rows of an
 * evaluation can be created (a merge, a result) the tombstone is checked
 * first; the running totals of /stats are never decremented, so the
 * evaluation's share stays where it was counted. Runs on any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store_int.h"

#define STORE_CANCEL_UNFETCHED "the evaluation was cancelled before this project was fetched"

/* One value from a one-row query with id as ?1; -1 when there is no row. */
static long
store_cancel_one(sqlite3 *db, const char *sql, const char *id)
{
	sqlite3_stmt *s = store_prep(db, sql);
	long v = -1;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(s, 0);
	store_finish(s);
	return v;
}

int
store_tomb_has(sqlite3 *db, const char *id)
{
	return store_cancel_one(db, "SELECT 1 FROM eval_tomb WHERE id = ?1", id) == 1;
}

int
store_eval_tombstoned(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);

	return db != NULL && store_tomb_has(db, id);
}

int
store_eval_stopped(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);

	if (db == NULL)
		return 0;
	return store_cancel_one(db, "SELECT cancelled_at IS NOT NULL FROM evaluation WHERE"
	    " id = ?1", id) == 1 || store_tomb_has(db, id);
}

/* ---------------------------------------------------------------- cancel */

long
store_eval_running(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);

	/* the counter the work triggers keep (store.c): one indexed row */
	return db == NULL ? -1 : store_cancel_one(db, "SELECT running FROM evaluation WHERE"
	    " id = ?1", id);
}

int
store_eval_cancel(struct store *st, const char *id, double now)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	int r = 0;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	s = store_prep(db, "SELECT cancelled_at IS NOT NULL, pend_ready + pend_unready + running"
	    " + fetching FROM evaluation WHERE id = ?");
	if (s == NULL) {
		r = -EIO;
		goto out;
	}
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW)
		r = -ENOENT;
	else if (sqlite3_column_int(s, 0))
		r = -EALREADY;
	else if (sqlite3_column_int64(s, 1) == 0)
		r = -EPERM;             /* done or failed: nothing left to stop */
	store_finish(s);
	s = NULL;
	if (r < 0)
		goto out;
	s = store_prep(db, "UPDATE evaluation SET cancelled_at = ?2 WHERE id = ?1");
	if (s == NULL) {
		r = -EIO;
		goto out;
	}
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, now);
	r = store_step_done(db, s);
	store_finish(s);
	if (r == 0)
		r = store_touch_eval(db, id, now);
	if (r == 0 && store_exec(db, "COMMIT") < 0)
		r = -EIO;
	if (r == 0)
		return 0;
out:
	store_exec(db, "ROLLBACK");
	return r;
}

int
store_cancel_merge(sqlite3 *db, const char *id, json_t *at)
{
	sqlite3_stmt *s;
	int r;

	if (!json_is_number(at))
		return 0;
	s = store_prep(db, "UPDATE evaluation SET cancelled_at = ?2 WHERE id = ?1 AND"
	    " (cancelled_at IS NULL OR cancelled_at > ?2)");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, json_number_value(at));
	r = store_step_done(db, s);
	store_finish(s);
	return r < 0 ? r : sqlite3_changes(db);
}

/* Run a write with id as ?1; how many rows it changed, or -EIO. */
static int
store_cancel_write(sqlite3 *db, const char *sql, const char *id)
{
	sqlite3_stmt *s = store_prep(db, sql);
	int r;

	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	r = store_step_done(db, s);
	store_finish(s);
	return r < 0 ? r : sqlite3_changes(db);
}

int
store_cancel_settle(struct store *st, const char *id, double now)
{
	/*
	 * Only for a cancelled evaluation. A project still to fetch never will
	 * be (its planned modules go with it, as for any project error); a
	 * pending module never starts. Running modules are the coordinator's
	 * to give back once their node stopped them (store_release_module).
	 */
	static const char *const steps[] = {
		"DELETE FROM module WHERE eval_id = ?1 AND state != 'done' AND project_idx IN"
		" (SELECT idx FROM project WHERE eval_id = ?1 AND state = 'fetching') AND EXISTS"
		" (SELECT 1 FROM evaluation WHERE id = ?1 AND cancelled_at IS NOT NULL)",
		"UPDATE project SET state = 'error', error = '" STORE_CANCEL_UNFETCHED "'"
		" WHERE eval_id = ?1 AND state = 'fetching' AND EXISTS (SELECT 1 FROM evaluation"
		" WHERE id = ?1 AND cancelled_at IS NOT NULL)",
		"UPDATE module SET state = 'cancelled', version = version + 1 WHERE eval_id = ?1"
		" AND state = 'pending' AND EXISTS (SELECT 1 FROM evaluation WHERE id = ?1 AND"
		" cancelled_at IS NOT NULL)",
	};
	sqlite3 *db = store_db(st);
	int n = 0, r = 0;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && r >= 0; i++)
		if ((r = store_cancel_write(db, steps[i], id)) > 0)
			n += r;
	if (r >= 0 && n > 0)
		r = store_touch_eval(db, id, now);
	if (r < 0 || store_exec(db, "COMMIT") < 0) {
		store_exec(db, "ROLLBACK");
		return -EIO;
	}
	return n;
}

/* ---------------------------------------------------------------- delete */

/*
 * The evaluation's share of GET /stats "all" as this node counted it: per
 * producing node and project source its modules and tests, the project
 * sources and who accepted it. Applied by a node that never held it.
 */
static json_t *
store_tomb_share(sqlite3 *db, const char *id)
{
	sqlite3_stmt *s;
	json_t *nodes = json_array(), *sources = json_array(), *share;

	if ((s = store_prep(db, "SELECT r.node, coalesce(p.source, ''), count(*),"
	    " sum(r.passed), sum(r.failed) FROM result r LEFT JOIN project p ON"
	    " p.eval_id = r.eval_id AND p.idx = r.project_idx WHERE r.eval_id = ?"
	    " GROUP BY 1, 2 ORDER BY 1, 2")) != NULL) {
		store_bind_text(s, 1, id);
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(nodes, json_pack("{s:s, s:s, s:I, s:I, s:I}", "node",
			    store_col_text(s, 0), "source", store_col_text(s, 1), "modules",
			    (json_int_t)sqlite3_column_int64(s, 2), "passed",
			    (json_int_t)sqlite3_column_int64(s, 3), "failed",
			    (json_int_t)sqlite3_column_int64(s, 4)));
		store_finish(s);
	}
	if ((s = store_prep(db, "SELECT DISTINCT source FROM project WHERE eval_id = ?"
	    " ORDER BY 1")) != NULL) {
		store_bind_text(s, 1, id);
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(sources, json_string(store_col_text(s, 0)));
		store_finish(s);
	}
	share = json_pack("{s:o, s:o}", "nodes", nodes, "sources", sources);
	if ((s = store_prep(db, "SELECT accepted_by, created_at FROM evaluation WHERE"
	    " id = ?")) != NULL) {
		store_bind_text(s, 1, id);
		if (sqlite3_step(s) == SQLITE_ROW) {
			json_object_set_new(share, "accepted_by", json_string(store_col_text(s, 0)));
			json_object_set_new(share, "created_at",
			    json_real(sqlite3_column_double(s, 1)));
		}
		store_finish(s);
	}
	return share;
}

/* One reference more in stat_ref (its insert trigger counts a new one). */
static int
store_tomb_ref(sqlite3 *db, const char *node, const char *kind, const char *key, long n,
    double created)
{
	sqlite3_stmt *s = store_prep(db, "INSERT INTO stat_ref(node, kind, key, n, created)"
	    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n");
	int r;

	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, node);
	store_bind_text(s, 2, kind);
	store_bind_text(s, 3, key);
	sqlite3_bind_int64(s, 4, n);
	sqlite3_bind_double(s, 5, created);
	r = store_step_done(db, s);
	store_finish(s);
	return r;
}

/*
 * Count a share as the stat triggers (store.c) count the rows it stands for:
 * what a node that never held the evaluation adds, so that its "all" agrees
 * with the others'.
 */
static int
store_tomb_share_apply(sqlite3 *db, const char *id, json_t *share)
{
	double created = json_number_value(json_object_get(share, "created_at"));
	const char *by = json_string_value(json_object_get(share, "accepted_by"));
	sqlite3_stmt *s;
	json_t *v;
	size_t i;
	int r = 0;

	json_array_foreach(json_object_get(share, "nodes"), i, v) {
		const char *node = json_string_value(json_object_get(v, "node"));
		const char *src = json_string_value(json_object_get(v, "source"));
		json_int_t mods = json_integer_value(json_object_get(v, "modules"));

		if (node == NULL || src == NULL || mods <= 0)
			continue;
		s = store_prep(db, "INSERT INTO stat_node(node) VALUES (?1) ON CONFLICT DO NOTHING;");
		if (s == NULL || (store_bind_text(s, 1, node), store_step_done(db, s)) < 0) {
			store_finish(s);
			return -EIO;
		}
		store_finish(s);
		s = store_prep(db, "UPDATE stat_node SET modules = modules + ?2, passed = passed + ?3,"
		    " failed = failed + ?4 WHERE node = ?1");
		if (s == NULL)
			return -EIO;
		store_bind_text(s, 1, node);
		sqlite3_bind_int64(s, 2, mods);
		sqlite3_bind_int64(s, 3, json_integer_value(json_object_get(v, "passed")));
		sqlite3_bind_int64(s, 4, json_integer_value(json_object_get(v, "failed")));
		r = store_step_done(db, s);
		store_finish(s);
		if (r < 0 || store_tomb_ref(db, node, "source", src, (long)mods, 0) < 0 ||
		    store_tomb_ref(db, node, "eval", id, (long)mods, created) < 0)
			return -EIO;
	}
	json_array_foreach(json_object_get(share, "sources"), i, v) {
		if (json_is_string(v) && store_tomb_ref(db, "*", "source", json_string_value(v), 1,
		    0) < 0)
			return -EIO;
	}
	if (store_tomb_ref(db, "*", "eval", id, 1, created) < 0 ||
	    (by != NULL && store_tomb_ref(db, by, "eval", id, 1, created) < 0))
		return -EIO;
	return 0;
}

/* The evaluation's digests wait in file_gc for the engine (src/engine/gc.c). */
static int
store_tomb_queue_files(sqlite3 *db, const char *id, double now)
{
	sqlite3_stmt *s = store_prep(db, "INSERT OR IGNORE INTO file_gc(digest, since)"
	    " SELECT d, ?2 FROM (SELECT digest AS d FROM project WHERE eval_id = ?1"
	    " UNION SELECT upload_digest FROM evaluation WHERE id = ?1"
	    " UNION SELECT json_extract(settings, '$.instructor_tests_archive') FROM evaluation"
	    " WHERE id = ?1) WHERE d IS NOT NULL");
	int r;

	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, now);
	r = store_step_done(db, s);
	store_finish(s);
	return r;
}

/*
 * Every row of the evaluation, and what is kept about them (digests, the
 * change log, events); stat_ref and stat_node stay (totals never go down).
 */
static int
store_tomb_forget(sqlite3 *db, const char *id)
{
	static const char *const steps[] = {
		"DELETE FROM result WHERE eval_id = ?1",
		"DELETE FROM module WHERE eval_id = ?1",
		"DELETE FROM project WHERE eval_id = ?1",
		"DELETE FROM eval_event WHERE eval_id = ?1",
		"DELETE FROM sync_bucket WHERE eval_id = ?1",
		"DELETE FROM sync_change WHERE eval_id = ?1",
		"DELETE FROM evaluation WHERE id = ?1",
	};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (store_cancel_write(db, steps[i], id) < 0)
			return -EIO;
	return 0;
}

static int
store_tomb_insert(sqlite3 *db, const char *id, double at, json_t *share)
{
	char *text = json_dumps(share, JSON_COMPACT | JSON_SORT_KEYS);
	sqlite3_stmt *s = store_prep(db, "INSERT INTO eval_tomb(id, deleted_at, share)"
	    " VALUES (?, ?, ?)");
	int r;

	if (s == NULL || text == NULL) {
		store_finish(s);
		free(text);
		return -EIO;
	}
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, at);
	store_bind_text(s, 3, text);
	r = store_step_done(db, s);
	store_finish(s);
	free(text);
	return r;
}

int
store_eval_delete(struct store *st, const char *id, double now)
{
	sqlite3 *db = store_db(st);
	json_t *share = NULL;
	int r = -EIO;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	if (store_tomb_has(db, id) ||
	    store_cancel_one(db, "SELECT 1 FROM evaluation WHERE id = ?1", id) != 1) {
		r = -ENOENT;
		goto fail;
	}
	share = store_tomb_share(db, id);
	if (store_tomb_queue_files(db, id, now) < 0 || store_tomb_forget(db, id) < 0 ||
	    store_tomb_insert(db, id, now, share) < 0)
		goto fail;
	/* The push carries the tombstone: any export of a deleted id is one (store_sync.c). */
	if (store_cancel_write(db, "INSERT INTO sync_change(eval_id, project_idx, path)"
	    " VALUES (?1, -1, '')", id) < 0 || store_exec(db, "COMMIT") < 0)
		goto fail;
	json_decref(share);
	return 0;
fail:
	store_exec(db, "ROLLBACK");
	json_decref(share);
	return r;
}

json_t *
store_tomb_doc(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *doc = NULL, *share;

	if (db == NULL || (s = store_prep(db, "SELECT deleted_at, share FROM eval_tomb"
	    " WHERE id = ?")) == NULL)
		return NULL;
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW) {
		share = json_loads(store_col_text(s, 1), 0, NULL);
		doc = json_pack("{s:s, s:f, s:o}", "id", id, "deleted_at",
		    sqlite3_column_double(s, 0), "share", share ? share : json_object());
	}
	store_finish(s);
	return doc;
}

int
store_tomb_merge(sqlite3 *db, const char *id, json_t *doc)
{
	json_t *share = json_object_get(doc, "share");
	double at = json_number_value(json_object_get(doc, "deleted_at"));
	long counted;
	sqlite3_stmt *s;
	int r;

	if (store_tomb_has(db, id)) {
		/* the earliest time, wherever the delete was heard of first */
		if ((s = store_prep(db, "UPDATE eval_tomb SET deleted_at = ?2 WHERE id = ?1 AND"
		    " deleted_at > ?2")) == NULL)
			return -EIO;
		store_bind_text(s, 1, id);
		sqlite3_bind_double(s, 2, at);
		r = store_step_done(db, s);
		store_finish(s);
		return r < 0 ? r : 0;
	}
	if (!json_is_object(share))
		share = NULL;
	/*
	 * A node that counted any of it (its header, or a result that came
	 * first) keeps what it counted; one that never did counts the share.
	 */
	counted = store_cancel_one(db, "SELECT EXISTS (SELECT 1 FROM stat_ref WHERE node = '*'"
	    " AND kind = 'eval' AND key = ?1) OR EXISTS (SELECT 1 FROM result WHERE"
	    " eval_id = ?1)", id);
	if (counted < 0 || store_tomb_queue_files(db, id, util_now()) < 0 ||
	    store_tomb_forget(db, id) < 0)
		return -EIO;
	if (counted == 0 && share != NULL && store_tomb_share_apply(db, id, share) < 0)
		return -EIO;
	if (share == NULL) {
		json_t *none = json_object();
		r = store_tomb_insert(db, id, at, none);
		json_decref(none);
	} else {
		r = store_tomb_insert(db, id, at, share);
	}
	if (r < 0)
		return -EIO;
	log_info("store: evaluation %s was deleted elsewhere: forgotten here", id);
	return 1;
}

/* ------------------------------------------------------------------ files */

int
store_gc_list(struct store *st, size_t max, struct store_digest **out, size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_digest *v;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (db == NULL || (s = store_prep(db, "SELECT digest FROM file_gc ORDER BY since,"
	    " digest LIMIT ?")) == NULL)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
	v = xcalloc(max ? max : 1, sizeof(*v));
	while (cnt < max && sqlite3_step(s) == SQLITE_ROW)
		snprintf(v[cnt++].d, sizeof(v[0].d), "%s", store_col_text(s, 0));
	store_finish(s);
	*out = v;
	*n = cnt;
	return 0;
}

int
store_gc_done(struct store *st, const char *digest)
{
	sqlite3 *db = store_db(st);

	if (db == NULL)
		return -EIO;
	return store_cancel_write(db, "DELETE FROM file_gc WHERE digest = ?1", digest) < 0 ?
	    -EIO : 0;
}

int
store_digest_used(struct store *st, const char *digest)
{
	sqlite3 *db = store_db(st);

	if (db == NULL)
		return -EIO;
	/* the last one scans the evaluations: it runs only for a deleted one's digests */
	return (int)store_cancel_one(db, "SELECT EXISTS (SELECT 1 FROM project WHERE"
	    " digest = ?1) OR EXISTS (SELECT 1 FROM evaluation WHERE upload_digest = ?1) OR"
	    " EXISTS (SELECT 1 FROM evaluation WHERE json_extract(settings,"
	    " '$.instructor_tests_archive') = ?1)", digest);
}
