/*
 * store_sync.c - what replicates between nodes, and how it merges.
 *
 * What replicates: an evaluation's header (immutable), its projects' states,
 * its modules' states and its results. Local-only fields (the project's
 * folder, the upload's path, the insertion sequence) never leave the node.
 *
 * Merge rules, the same on every node, so that all converge:
 *  - header, project and module rows are inserted when missing;
 *  - a project's state only moves forward: fetching < ready < error;
 *  - a module's state has one writer (the node that schedules it), which
 *    bumps its version on every change: the higher version wins; a module
 *    with a result is done;
 *  - results: store_result_wins() below;
 *  - a cancel (the header's cancelled_at) is kept, the earliest time wins;
 *    between two module rows of one version, "cancelled" wins;
 *  - a tombstone ({"id", "deleted_at", "share"}) deletes the evaluation's
 *    rows, and no row of it is taken afterwards (store_cancel.c).
 *
 * Cost by change, not by evaluation: every replicated row has a digest
 * (mt_hash of what merges), and the schema's triggers keep, per evaluation
 * and per bucket of rows (mt_bucket of the row's project and path), the XOR
 * of its rows' digests, so that two nodes compare an evaluation in one
 * value and find what differs in SYNC_BUCKETS more; the same triggers log
 * every row this node changes itself (not what it merged) in sync_change,
 * which the replica thread pushes as it goes. A document here is any part
 * of an evaluation: the header, then rows, each module or result row with
 * its project's row, so that a part merges on its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store_int.h"

/* ------------------------------------------------ the triggers' functions */

/* Set while this thread merges another node's rows: those are not logged. */
static _Thread_local int sync_merging;

/* The first 8 bytes of SHA-256 of data, as an integer. */
static sqlite3_int64
sync_digest64(const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	uint64_t v = 0;

	if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
		abort();
	for (int i = 0; i < 8; i++)
		v = v << 8 | md[i];
	return (sqlite3_int64)v;
}

/* mt_hash(...): a row's digest, over each argument's type and text. */
static void
sync_fn_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct buf b;

	buf_init(&b, (size_t)1 << 20);   /* a row's fields: paths are at most 1 KiB */
	for (int i = 0; i < argc; i++) {
		unsigned char tag = (unsigned char)sqlite3_value_type(argv[i]);
		const unsigned char *t = sqlite3_value_text(argv[i]);

		buf_append(&b, &tag, 1);
		if (t != NULL)
			buf_append(&b, t, (size_t)sqlite3_value_bytes(argv[i]));
		buf_append(&b, "\x1f", 1);
	}
	sqlite3_result_int64(ctx, sync_digest64(b.data ? b.data : "", b.len));
	buf_free(&b);
}

/* mt_bucket(idx, path): the bucket of a row ("" for a project's own row). */
static void
sync_fn_bucket(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *path = sqlite3_value_text(argv[1]);
	char *text = xasprintf("%lld/%s", (long long)sqlite3_value_int64(argv[0]),
	    path ? (const char *)path : "");

	(void)argc;
	sqlite3_result_int(ctx, (int)((uint64_t)sync_digest64(text, strlen(text)) >> 56) %
	    STORE_SYNC_BUCKETS);
	free(text);
}

static void
sync_fn_xor(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]) ^ sqlite3_value_int64(argv[1]));
}

static void
sync_fn_xor_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, sizeof(*acc));

	(void)argc;
	if (acc != NULL)
		*acc ^= sqlite3_value_int64(argv[0]);
}

static void
sync_fn_xor_final(sqlite3_context *ctx)
{
	sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, 0);

	sqlite3_result_int64(ctx, acc ? *acc : 0);
}

/* 1 when the change being made is this node's own (log it for the push). */
static void
sync_fn_local(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int(ctx, !sync_merging);
}

int
store_sync_register(sqlite3 *db)
{
	int det = SQLITE_UTF8 | SQLITE_DETERMINISTIC;

	if (sqlite3_create_function(db, "mt_hash", -1, det, NULL, sync_fn_hash, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "mt_bucket", 2, det, NULL, sync_fn_bucket, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "mt_xor", 2, det, NULL, sync_fn_xor, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "mt_xor_agg", 1, det, NULL, NULL, sync_fn_xor_step,
	    sync_fn_xor_final) != SQLITE_OK ||
	    sqlite3_create_function(db, "mt_local", 0, SQLITE_UTF8, NULL, sync_fn_local, NULL,
	    NULL) != SQLITE_OK)
		return -EIO;
	return 0;
}

/* ---------------------------------------------------------------- rules */

static int
project_state_rank(const char *s)
{
	if (strcmp(s, "error") == 0)
		return 2;
	if (strcmp(s, "ready") == 0)
		return 1;
	return 0;
}

int
store_result_wins(int attempt, const char *node, int cur_attempt, const char *cur_node)
{
	/*
	 * The latest attempt wins: a module is only tried again when its earlier
	 * attempt was given up (its worker declared dead), so a late result of
	 * that attempt is the one to ignore. Between equal attempts (the two
	 * sides of a healed partition) the lower node address wins. The same
	 * (attempt, node) again is a duplicate or a replay and changes nothing.
	 */
	if (attempt != cur_attempt)
		return attempt > cur_attempt;
	return strcmp(node, cur_node) < 0;
}


/* ------------------------------------------------------------- exports */

/* A document being built: the header, the rows, the projects already in it. */
struct sync_doc {
	sqlite3 *db;
	const char *id;
	json_t *doc, *projects, *modules, *results;
	json_t *have;            /* {"<idx>": true}: project rows in the document */
	json_t *want;            /* {"<idx>": true}: projects its other rows need */
};

static const char *const sync_select[] = {
	"SELECT idx, project_id, source, prefix, state, error, warnings, digest, commit_sha,"
	" reuse_key FROM project WHERE eval_id = ?1",
	"SELECT project_idx, path, state, node, attempts, version, est, iname, known FROM module"
	" WHERE eval_id = ?1",
	"SELECT project_idx, path, node, attempt, finished_at, body FROM result"
	" WHERE eval_id = ?1",
};
enum sync_table { SYNC_PROJECTS, SYNC_MODULES, SYNC_RESULTS };

static json_t *
sync_text_or_null(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? json_null() :
	    json_string(store_col_text(s, i));
}

static void
sync_mark(json_t *set, int idx)
{
	char key[16];

	snprintf(key, sizeof(key), "%d", idx);
	json_object_set_new(set, key, json_true());
}

/* Append every row s yields (a statement of sync_select[t]) to the document. */
static int
sync_add_rows(struct sync_doc *d, enum sync_table t, sqlite3_stmt *s)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *row;
		int idx = sqlite3_column_int(s, 0);

		if (t == SYNC_PROJECTS) {
			json_t *w = json_loads(store_col_text(s, 6), 0, NULL);
			char key[16];

			snprintf(key, sizeof(key), "%d", idx);
			if (json_object_get(d->have, key) != NULL)
				continue;
			json_object_set_new(d->have, key, json_true());
			row = json_pack("{s:i, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o}",
			    "idx", idx, "project_id", store_col_text(s, 1), "source",
			    store_col_text(s, 2), "prefix", sync_text_or_null(s, 3), "state",
			    store_col_text(s, 4), "error", sync_text_or_null(s, 5), "warnings",
			    w ? w : json_array(), "digest", sync_text_or_null(s, 7), "commit",
			    sync_text_or_null(s, 8), "reuse_key", sync_text_or_null(s, 9));
			json_array_append_new(d->projects, row);
		} else if (t == SYNC_MODULES) {
			row = json_pack("{s:i, s:s, s:s, s:o, s:i, s:i, s:o}", "project_idx", idx,
			    "path", store_col_text(s, 1), "state", store_col_text(s, 2), "node",
			    sync_text_or_null(s, 3), "attempts", sqlite3_column_int(s, 4),
			    "version", sqlite3_column_int(s, 5), "iname", sync_text_or_null(s, 7));
			if (sqlite3_column_type(s, 6) != SQLITE_NULL)
				json_object_set_new(row, "est", json_real(sqlite3_column_double(s, 6)));
			if (sqlite3_column_int(s, 8))
				json_object_set_new(row, "known", json_true());
			json_array_append_new(d->modules, row);
			sync_mark(d->want, idx);
		} else {
			json_t *body = json_loads(store_col_text(s, 5), 0, NULL);
			row = json_pack("{s:i, s:s, s:s, s:i, s:f, s:o}", "project_idx", idx,
			    "path", store_col_text(s, 1), "node", store_col_text(s, 2), "attempt",
			    sqlite3_column_int(s, 3), "finished_at", sqlite3_column_double(s, 4),
			    "body", body ? body : json_object());
			json_array_append_new(d->results, row);
			sync_mark(d->want, idx);
		}
	}
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Rows of table t matching the filter (bound from ?2 on by the caller's values). */
static int
sync_query(struct sync_doc *d, enum sync_table t, const char *filter, int ival,
    const char *sval)
{
	char *sql = xasprintf("%s%s", sync_select[t], filter);
	sqlite3_stmt *s = store_prep(d->db, sql);
	int r;

	free(sql);
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, d->id);
	if (strstr(filter, "?2") != NULL)
		sqlite3_bind_int(s, 2, ival);
	if (strstr(filter, "?3") != NULL)
		store_bind_text(s, 3, sval);
	r = sync_add_rows(d, t, s);
	store_finish(s);
	return r;
}

/* Start a document with the evaluation's header: -ENOENT when there is none. */
static int
sync_begin(struct store *st, const char *id, struct sync_doc *d)
{
	sqlite3_stmt *s;
	json_t *settings;

	memset(d, 0, sizeof(*d));
	d->db = store_db(st);
	d->id = id;
	if (d->db == NULL || store_exec(d->db, "BEGIN") < 0)
		return -EIO;
	s = store_prep(d->db, "SELECT created_at, kind, accepted_by, settings, has_token,"
	    " last_event_at, upload_digest, cancelled_at FROM evaluation WHERE id = ?");
	if (s == NULL || (store_bind_text(s, 1, id), sqlite3_step(s)) != SQLITE_ROW) {
		store_finish(s);
		store_exec(d->db, "COMMIT");
		return s == NULL ? -EIO : -ENOENT;
	}
	settings = json_loads(store_col_text(s, 3), 0, NULL);
	d->doc = json_pack("{s:s, s:f, s:s, s:s, s:o, s:b, s:f, s:o}", "id", id,
	    "created_at", sqlite3_column_double(s, 0), "kind", store_col_text(s, 1),
	    "accepted_by", store_col_text(s, 2), "settings", settings ? settings : json_object(),
	    "has_token", sqlite3_column_int(s, 4), "last_event_at",
	    sqlite3_column_double(s, 5), "upload_digest", sync_text_or_null(s, 6));
	if (sqlite3_column_type(s, 7) != SQLITE_NULL)
		json_object_set_new(d->doc, "cancelled_at", json_real(sqlite3_column_double(s, 7)));
	store_finish(s);
	d->projects = json_array();
	d->modules = json_array();
	d->results = json_array();
	d->have = json_object();
	d->want = json_object();
	return 0;
}

/* Add the projects the rows need, end the read: the document, or NULL. */
static json_t *
sync_end(struct sync_doc *d, int r)
{
	const char *key;
	json_t *v;

	json_object_foreach(d->want, key, v) {
		if (r == 0 && json_object_get(d->have, key) == NULL)
			r = sync_query(d, SYNC_PROJECTS, " AND idx = ?2", atoi(key), NULL);
	}
	store_exec(d->db, "COMMIT");
	json_object_set_new(d->doc, "projects", d->projects);
	json_object_set_new(d->doc, "modules", d->modules);
	json_object_set_new(d->doc, "results", d->results);
	json_decref(d->have);
	json_decref(d->want);
	if (r < 0) {
		json_decref(d->doc);
		return NULL;
	}
	return d->doc;
}

json_t *
store_sync_export(struct store *st, const char *id)
{
	struct sync_doc d;
	int r;

	if ((r = sync_begin(st, id, &d)) < 0)
		return r == -ENOENT ? store_tomb_doc(st, id) : NULL;
	r = sync_query(&d, SYNC_PROJECTS, " ORDER BY idx", 0, NULL);
	if (r == 0)
		r = sync_query(&d, SYNC_MODULES, " ORDER BY project_idx, path", 0, NULL);
	if (r == 0)
		r = sync_query(&d, SYNC_RESULTS, " ORDER BY project_idx, path", 0, NULL);
	return sync_end(&d, r);
}

json_t *
store_sync_export_keys(struct store *st, const char *id, const struct store_sync_key *keys,
    size_t n)
{
	struct sync_doc d;
	int r = 0;

	if ((r = sync_begin(st, id, &d)) < 0)
		return r == -ENOENT ? store_tomb_doc(st, id) : NULL;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (keys[i].path[0] == '\0') {
			r = sync_query(&d, SYNC_PROJECTS, " AND idx = ?2", keys[i].project_idx, NULL);
			continue;
		}
		r = sync_query(&d, SYNC_MODULES, " AND project_idx = ?2 AND path = ?3",
		    keys[i].project_idx, keys[i].path);
		if (r == 0)
			r = sync_query(&d, SYNC_RESULTS, " AND project_idx = ?2 AND path = ?3",
			    keys[i].project_idx, keys[i].path);
		/* a deleted module is told by its project's state */
		sync_mark(d.want, keys[i].project_idx);
	}
	return sync_end(&d, r);
}

json_t *
store_sync_export_buckets(struct store *st, const char *id, const int *buckets, size_t n)
{
	struct sync_doc d;
	int r = 0;

	if ((r = sync_begin(st, id, &d)) < 0)
		return r == -ENOENT ? store_tomb_doc(st, id) : NULL;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = sync_query(&d, SYNC_PROJECTS, " AND mt_bucket(idx, '') = ?2", buckets[i], NULL);
		if (r == 0)
			r = sync_query(&d, SYNC_MODULES, " AND mt_bucket(project_idx, path) = ?2",
			    buckets[i], NULL);
		if (r == 0)
			r = sync_query(&d, SYNC_RESULTS, " AND mt_bucket(project_idx, path) = ?2",
			    buckets[i], NULL);
	}
	return sync_end(&d, r);
}

/* ---------------------------------------------------------------- merge */

int
store_sync_merge_result(sqlite3 *db, const char *id, json_t *r)
{
	sqlite3_stmt *s;
	json_t *body = json_object_get(r, "body");
	const char *path = json_string_value(json_object_get(r, "path"));
	const char *node = json_string_value(json_object_get(r, "node"));
	int idx = (int)json_integer_value(json_object_get(r, "project_idx"));
	int attempt = (int)json_integer_value(json_object_get(r, "attempt"));
	int have = 0, changed = 0;
	char *text;

	if (path == NULL || node == NULL || !json_is_object(body))
		return 0;
	/* A deleted evaluation's late result (a worker that finished it) is dropped. */
	if (store_tomb_has(db, id))
		return 0;
	s = store_prep(db, "SELECT attempt, node FROM result WHERE eval_id = ? AND"
	    " project_idx = ? AND path = ?");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	store_bind_text(s, 3, path);
	if (sqlite3_step(s) == SQLITE_ROW) {
		have = 1;
		changed = store_result_wins(attempt, node, sqlite3_column_int(s, 0),
		    store_col_text(s, 1));
	}
	store_finish(s);
	if (have && !changed)
		return 0;
	text = json_dumps(body, JSON_COMPACT);
	/* An upsert, not a REPLACE: the row's triggers see the row it replaces. */
	s = store_prep(db, "INSERT INTO result(eval_id, project_idx, path, node,"
	    " attempt, finished_at, outcome, passed, failed, skipped, duration, body)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO UPDATE"
	    " SET node = ?4, attempt = ?5, finished_at = ?6, outcome = ?7, passed = ?8,"
	    " failed = ?9, skipped = ?10, duration = ?11, body = ?12");
	if (s == NULL || text == NULL) {
		store_finish(s);
		free(text);
		return -EIO;
	}
	store_bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	store_bind_text(s, 3, path);
	store_bind_text(s, 4, node);
	sqlite3_bind_int(s, 5, attempt);
	sqlite3_bind_double(s, 6, json_number_value(json_object_get(r, "finished_at")));
	store_bind_text(s, 7, json_string_value(json_object_get(body, "outcome")));
	sqlite3_bind_int64(s, 8, json_integer_value(json_object_get(body, "passed")));
	sqlite3_bind_int64(s, 9, json_integer_value(json_object_get(body, "failed")));
	sqlite3_bind_int64(s, 10, json_integer_value(json_object_get(body, "skipped")));
	sqlite3_bind_double(s, 11, json_number_value(json_object_get(body, "duration")));
	store_bind_text(s, 12, text);
	changed = store_step_done(db, s) < 0 ? -EIO : 1;
	store_finish(s);
	free(text);
	if (changed < 0)
		return changed;
	s = store_prep(db, "INSERT INTO module(eval_id, project_idx, path, state, node, attempts)"
	    " VALUES (?1, ?2, ?3, 'done', ?4, ?5) ON CONFLICT DO UPDATE SET state = 'done'");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	store_bind_text(s, 3, path);
	store_bind_text(s, 4, node);
	sqlite3_bind_int(s, 5, attempt);
	if (store_step_done(db, s) < 0)
		changed = -EIO;
	store_finish(s);
	return changed;
}

/* A tombstone ({"id", "deleted_at", "share"}): the evaluation goes here too. */
static int
sync_merge_tomb(sqlite3 *db, const char *id, json_t *doc)
{
	int r;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	sync_merging = 1;
	r = store_tomb_merge(db, id, doc);
	sync_merging = 0;
	if (r < 0 || store_exec(db, "COMMIT") < 0) {
		store_exec(db, "ROLLBACK");
		return -EIO;
	}
	return r;
}

int
store_sync_merge(struct store *st, json_t *doc)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	const char *id = json_string_value(json_object_get(doc, "id"));
	json_t *v, *settings = json_object_get(doc, "settings"), *sender_rank = NULL;
	char *settings_text = NULL, key[16];
	size_t i;
	int changed = 0, r;

	if (id != NULL && util_is_uuid(id) && json_is_number(json_object_get(doc, "deleted_at")))
		return sync_merge_tomb(db, id, doc);
	if (id == NULL || !util_is_uuid(id) || !json_is_object(settings) ||
	    json_string_value(json_object_get(doc, "kind")) == NULL ||
	    json_string_value(json_object_get(doc, "accepted_by")) == NULL)
		return -EINVAL;
	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	/* A deleted evaluation never comes back: not by a push, a pull or a late node. */
	if (store_tomb_has(db, id)) {
		store_exec(db, "COMMIT");
		return 0;
	}
	sync_merging = 1;
	sender_rank = json_object();
	settings_text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
	s = store_prep(db, "INSERT OR IGNORE INTO evaluation(id, seq, created_at, last_event_at,"
	    " kind, accepted_by, settings, has_token, upload_digest) VALUES (?, (SELECT"
	    " coalesce(max(seq), 0) + 1 FROM evaluation), ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL || settings_text == NULL)
		goto fail;
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, json_number_value(json_object_get(doc, "created_at")));
	sqlite3_bind_double(s, 3, json_number_value(json_object_get(doc, "last_event_at")));
	store_bind_text(s, 4, json_string_value(json_object_get(doc, "kind")));
	store_bind_text(s, 5, json_string_value(json_object_get(doc, "accepted_by")));
	store_bind_text(s, 6, settings_text);
	sqlite3_bind_int(s, 7, json_is_true(json_object_get(doc, "has_token")));
	store_bind_text(s, 8, json_string_value(json_object_get(doc, "upload_digest")));
	if (store_step_done(db, s) < 0)
		goto fail;
	changed += sqlite3_changes(db);
	store_finish(s);
	s = NULL;
	if ((r = store_cancel_merge(db, id, json_object_get(doc, "cancelled_at"))) < 0)
		goto fail;
	changed += r;

	json_array_foreach(json_object_get(doc, "projects"), i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		const char *pid = json_string_value(json_object_get(v, "project_id"));
		const char *source = json_string_value(json_object_get(v, "source"));
		int idx = (int)json_integer_value(json_object_get(v, "idx"));
		char *w;

		if (state == NULL || pid == NULL || source == NULL)
			continue;
		snprintf(key, sizeof(key), "%d", idx);
		json_object_set_new(sender_rank, key, json_integer(project_state_rank(state)));
		w = json_is_array(json_object_get(v, "warnings")) ?
		    json_dumps(json_object_get(v, "warnings"), JSON_COMPACT) : xstrdup("[]");
		s = store_prep(db, "INSERT INTO project(eval_id, idx, project_id, source, prefix,"
		    " state, error, warnings, digest, commit_sha, reuse_key) VALUES (?1, ?2, ?3, ?4,"
		    " ?5, ?6, ?7, ?8, ?10, ?11, ?12) ON CONFLICT DO UPDATE SET state = ?6,"
		    " error = ?7, warnings = ?8, digest = coalesce(digest, ?10),"
		    " commit_sha = coalesce(commit_sha, ?11), reuse_key = coalesce(reuse_key, ?12)"
		    " WHERE (CASE state WHEN 'error' THEN 2 WHEN 'ready' THEN 1 ELSE 0 END) < ?9");
		if (s == NULL) {
			free(w);
			goto fail;
		}
		store_bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, idx);
		store_bind_text(s, 3, pid);
		store_bind_text(s, 4, source);
		store_bind_text(s, 5, json_string_value(json_object_get(v, "prefix")));
		store_bind_text(s, 6, state);
		store_bind_text(s, 7, json_string_value(json_object_get(v, "error")));
		store_bind_text(s, 8, w);
		sqlite3_bind_int(s, 9, project_state_rank(state));
		store_bind_text(s, 10, json_string_value(json_object_get(v, "digest")));
		store_bind_text(s, 11, json_string_value(json_object_get(v, "commit")));
		store_bind_text(s, 12, json_string_value(json_object_get(v, "reuse_key")));
		r = store_step_done(db, s);
		free(w);
		if (r < 0)
			goto fail;
		r = sqlite3_changes(db);
		changed += r;
		store_finish(s);
		s = NULL;
		if (r > 0 && strcmp(state, "ready") == 0) {
			/*
			 * The project just became ready: its modules are the ones its
			 * coordinator found on disk (in this document), not the ones
			 * planned from the upload.
			 */
			if (store_drop_modules(db, id, idx, 0) < 0)
				goto fail;
		}
		if (strcmp(state, "error") == 0) {
			if ((r = store_drop_modules(db, id, idx, 1)) < 0)
				goto fail;
			changed += r;
		}
	}
	json_array_foreach(json_object_get(doc, "results"), i, v) {
		r = store_sync_merge_result(db, id, v);
		if (r < 0)
			goto fail;
		changed += r;
	}
	json_array_foreach(json_object_get(doc, "modules"), i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		const char *path = json_string_value(json_object_get(v, "path"));
		int idx = (int)json_integer_value(json_object_get(v, "project_idx"));

		if (state == NULL || path == NULL || strcmp(state, "done") == 0)
			continue;
		/*
		 * Not onto a project that failed, nor onto one that is ready here
		 * from a sender that has it still fetching: that row is one planned
		 * from the upload, which the files may not have had.
		 */
		snprintf(key, sizeof(key), "%d", idx);
		s = store_prep(db, "INSERT INTO module(eval_id, project_idx, path, state, node,"
		    " attempts, version, est, iname, known) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
		    " ?11"
		    " WHERE NOT EXISTS (SELECT 1 FROM project p WHERE p.eval_id = ?1 AND"
		    " p.idx = ?2 AND (p.state = 'error' OR (p.state = 'ready' AND ?10 < 1)))"
		    " ON CONFLICT DO UPDATE SET state = ?4,"
		    " node = ?5, attempts = ?6, version = ?7,"
		    " est = CASE WHEN ?11 THEN ?8 ELSE coalesce(est, ?8) END,"
		    " known = max(known, ?11), iname = coalesce(iname, ?9)"
		    " WHERE state != 'done' AND (version < ?7 OR (version = ?7 AND"
		    " ?4 = 'cancelled' AND state != 'cancelled'))");
		if (s == NULL)
			goto fail;
		store_bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, idx);
		store_bind_text(s, 3, path);
		store_bind_text(s, 4, state);
		store_bind_text(s, 5, json_string_value(json_object_get(v, "node")));
		sqlite3_bind_int(s, 6, (int)json_integer_value(json_object_get(v, "attempts")));
		sqlite3_bind_int(s, 7, (int)json_integer_value(json_object_get(v, "version")));
		if (json_is_number(json_object_get(v, "est")))
			sqlite3_bind_double(s, 8, json_number_value(json_object_get(v, "est")));
		else
			sqlite3_bind_null(s, 8);
		store_bind_text(s, 9, json_string_value(json_object_get(v, "iname")));
		sqlite3_bind_int(s, 10, (int)json_integer_value(json_object_get(sender_rank, key)));
		sqlite3_bind_int(s, 11, json_is_true(json_object_get(v, "known")));
		if (store_step_done(db, s) < 0)
			goto fail;
		changed += sqlite3_changes(db);
		store_finish(s);
		s = NULL;
	}
	if (store_touch_eval(db, id, json_number_value(json_object_get(doc, "last_event_at"))) < 0)
		goto fail;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	sync_merging = 0;
	json_decref(sender_rank);
	free(settings_text);
	return changed;
fail:
	store_finish(s);
	store_exec(db, "ROLLBACK");
	sync_merging = 0;
	json_decref(sender_rank);
	free(settings_text);
	return -EIO;
}


/* ------------------------------------------------- digests and the log */

json_t *
store_sync_digests(struct store *st)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *out = json_object();
	char hex[17];

	if (db == NULL || (s = store_prep(db, "SELECT id, dig, last_event_at FROM evaluation")) == NULL)
		return out;
	while (sqlite3_step(s) == SQLITE_ROW) {
		/*
		 * The rows' digest and the time of the last event, which merges by
		 * max and is in no row: a node that saw a result that was replaced
		 * later, and so a later last event, must still make the others pull
		 */
		double last = sqlite3_column_double(s, 2);
		uint64_t dig = (uint64_t)sqlite3_column_int64(s, 1) ^ sync_digest64(&last, sizeof(last));

		snprintf(hex, sizeof(hex), "%016" PRIx64, dig);
		json_object_set_new(out, store_col_text(s, 0), json_string(hex));
	}
	store_finish(s);
	/* A deleted evaluation is "deleted" (its tombstone), so that it spreads. */
	if ((s = store_prep(db, "SELECT id FROM eval_tomb")) == NULL)
		return out;
	while (sqlite3_step(s) == SQLITE_ROW)
		json_object_set_new(out, store_col_text(s, 0), json_string(STORE_SYNC_DELETED));
	store_finish(s);
	return out;
}

int
store_sync_buckets(struct store *st, const char *id, uint64_t out[STORE_SYNC_BUCKETS],
    double *last_event)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;

	memset(out, 0, STORE_SYNC_BUCKETS * sizeof(*out));
	*last_event = 0;
	if (db == NULL || (s = store_prep(db, "SELECT b, dig FROM sync_bucket WHERE"
	    " eval_id = ?")) == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		int b = sqlite3_column_int(s, 0);
		if (b >= 0 && b < STORE_SYNC_BUCKETS)
			out[b] = (uint64_t)sqlite3_column_int64(s, 1);
	}
	store_finish(s);
	if ((s = store_prep(db, "SELECT last_event_at FROM evaluation WHERE id = ?")) == NULL)
		return -EIO;
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		*last_event = sqlite3_column_double(s, 0);
	store_finish(s);
	return 0;
}

int
store_sync_last_event(struct store *st, const char *id, double t)
{
	sqlite3 *db = store_db(st);

	return db == NULL ? -EIO : store_touch_eval(db, id, t);
}

int
store_sync_changes(struct store *st, size_t max, struct store_sync_change **out, size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_sync_change *v;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (db == NULL || (s = store_prep(db, "SELECT seq, eval_id, project_idx, path FROM"
	    " sync_change ORDER BY seq LIMIT ?")) == NULL)
		return -EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
	v = xcalloc(max ? max : 1, sizeof(*v));
	while (cnt < max && sqlite3_step(s) == SQLITE_ROW) {
		v[cnt].seq = sqlite3_column_int64(s, 0);
		snprintf(v[cnt].eval_id, sizeof(v[cnt].eval_id), "%s", store_col_text(s, 1));
		v[cnt].key.project_idx = sqlite3_column_int(s, 2);
		v[cnt].key.path = xstrdup(store_col_text(s, 3));
		cnt++;
	}
	store_finish(s);
	*out = v;
	*n = cnt;
	return 0;
}

int
store_sync_changes_done(struct store *st, const struct store_sync_change *c, size_t n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	int r = 0;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	s = store_prep(db, "DELETE FROM sync_change WHERE seq = ?");
	for (size_t i = 0; s != NULL && i < n && r == 0; i++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, c[i].seq);
		r = store_step_done(db, s);
	}
	store_finish(s);
	if (s == NULL || r < 0 || store_exec(db, "COMMIT") < 0) {
		store_exec(db, "ROLLBACK");
		return -EIO;
	}
	return 0;
}

void
store_sync_changes_free(struct store_sync_change *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)c[i].key.path);
	free(c);
}
