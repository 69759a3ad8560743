/*
 * store_events.c - an evaluation's events as GET /evaluation/<id>/events
 * streams them: the rows of eval_event (logged by triggers, store.c) after a
 * given one, each with what a client shows, read when it is asked for.
 *
 * An event is {"id", "event", "data"}. A module_done event is preceded by
 * one test_finished event per test of the result it announces, numbered
 * "<seq>:<k>" (k from 1), so that a client resuming after any of them gets
 * the rest of that module and nothing twice. Failure messages are given
 * whole: what a client sees of them is the API's to shape.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store_int.h"

static void
store_events_add(json_t *out, const char *id, const char *kind, json_t *data)
{
	json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "id", id, "event", kind,
	    "data", data));
}

/* test_finished for each test of a result (from test after_k), then module_done. */
static void
store_events_result(json_t *out, long long seq, int after_k, const char *project,
    const char *path, const char *node, const char *body)
{
	json_t *r = json_loads(body, 0, NULL), *tests = json_object_get(r, "tests"), *t;
	char id[48];
	size_t k;

	json_array_foreach(tests, k, t) {
		if ((int)k + 1 <= after_k)
			continue;
		snprintf(id, sizeof(id), "%lld:%zu", seq, k + 1);
		store_events_add(out, id, "test_finished", json_pack("{s:s, s:s, s:O?, s:O?,"
		    " s:O?, s:O?}", "project", project, "module", path, "nodeid",
		    json_object_get(t, "nodeid"), "outcome", json_object_get(t, "outcome"),
		    "duration", json_object_get(t, "duration"), "message",
		    json_object_get(t, "message")));
	}
	snprintf(id, sizeof(id), "%lld", seq);
	store_events_add(out, id, "module_done", json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:O?,"
	    " s:O?, s:O?}", "project", project, "module", path, "node", node, "outcome",
	    json_object_get(r, "outcome"), "passed", json_object_get(r, "passed"), "failed",
	    json_object_get(r, "failed"), "skipped", json_object_get(r, "skipped"),
	    "duration", json_object_get(r, "duration")));
	json_decref(r);
}

json_t *
store_events_after(struct store *st, const char *eval_id, long long after, int after_k,
    int limit)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *out;

	if (db == NULL)
		return NULL;
	s = store_prep(db, "SELECT e.seq, e.kind, p.project_id, e.path, coalesce(r.node,"
	    " m.node, ''), r.body, coalesce(p.error, '') FROM eval_event e"
	    " JOIN project p ON p.eval_id = e.eval_id AND p.idx = e.project_idx"
	    " LEFT JOIN module m ON m.eval_id = e.eval_id AND m.project_idx = e.project_idx"
	    " AND m.path = e.path"
	    " LEFT JOIN result r ON r.eval_id = e.eval_id AND r.project_idx = e.project_idx"
	    " AND r.path = e.path"
	    " WHERE e.eval_id = ? AND e.seq >= ? ORDER BY e.seq LIMIT ?");
	if (s == NULL)
		return NULL;
	out = json_array();
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int64(s, 2, after_k > 0 ? after : after + 1);
	sqlite3_bind_int(s, 3, limit);
	while (sqlite3_step(s) == SQLITE_ROW) {
		long long seq = sqlite3_column_int64(s, 0);
		const char *kind = store_col_text(s, 1), *project = store_col_text(s, 2);
		const char *path = store_col_text(s, 3), *node = store_col_text(s, 4);
		char id[24];

		snprintf(id, sizeof(id), "%lld", seq);
		if (strcmp(kind, "module_done") == 0) {
			/* a result replaced since by a better one announces the newer */
			if (sqlite3_column_type(s, 5) != SQLITE_NULL)
				store_events_result(out, seq, seq == after ? after_k : 0, project, path,
				    node, store_col_text(s, 5));
		} else if (seq == after) {
			continue;       /* resumed inside a module_done that is not one */
		} else if (strcmp(kind, "module_claimed") == 0) {
			store_events_add(out, id, kind, json_pack("{s:s, s:s, s:s}", "project",
			    project, "module", path, "node", node));
		} else if (strcmp(kind, "project_error") == 0) {
			store_events_add(out, id, kind, json_pack("{s:s, s:s}", "project", project,
			    "error", store_col_text(s, 6)));
		}
	}
	store_finish(s);
	return out;
}

int
store_eval_active(struct store *st, const char *eval_id)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	int r = -ENOENT;

	if (db == NULL)
		return -EIO;
	s = store_prep(db, "SELECT pend_ready + pend_unready + running + fetching > 0"
	    " FROM evaluation WHERE id = ?");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, eval_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		r = sqlite3_column_int(s, 0) != 0;
	store_finish(s);
	return r;
}
