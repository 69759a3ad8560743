/*
 * store_read.c - the documents the API answers from the store: the list of
 * evaluations, an evaluation's status and results, the counters of
 * GET /stats, and the queue and file sizes of GET /metrics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/score.h"
#include "core/util.h"
#include "store/store_int.h"

json_t *
store_eval_list(struct store *st)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *arr = json_array();

	if (db != NULL && (s = store_prep(db, "SELECT id FROM evaluation ORDER BY created_at, id")) != NULL) {
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(arr, json_string(store_col_text(s, 0)));
		store_finish(s);
	}
	return json_pack("{s:o}", "evaluations", arr);
}

/*
 * Build the evaluation document from db, inside the caller's transaction.
 * With details, projects is an array with every module and test (the whole
 * GET .../results, for exports); without, the summary of
 * GET /evaluation/<id>, which the streamed /results starts with.
 */
json_t *
store_eval_doc_in(sqlite3 *db, const char *id, double now, int details,
    struct store_cached_doc *ck)
{
	sqlite3_stmt *s = NULL;
	json_t *doc = NULL, *pp, *pf, *mp, *mf, *np, *projects, *plist;
	double created, last_event;
	long passed = 0, failed = 0, skipped = 0;
	long executed = 0, running = 0, pending = 0, fetching = 0, nproj = 0, nerror = 0;
	long cancelled_mods = 0;
	double grade_sum = 0;
	json_t *cancelled_at = NULL;

	s = store_prep(db, "SELECT created_at, last_event_at, accepted_by, kind, ver,"
	    " cancelled_at FROM evaluation WHERE id = ?");
	if (s == NULL)
		goto out;
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	created = sqlite3_column_double(s, 0);
	last_event = sqlite3_column_double(s, 1);
	if (ck != NULL) {
		ck->ver = sqlite3_column_int64(s, 4);
		ck->created = created;
		ck->last_event = last_event;
	}
	/* cancelled: what is not finished counts nowhere (store_cancel.c) */
	cancelled_at = sqlite3_column_type(s, 5) == SQLITE_NULL ? json_null() :
	    json_real(sqlite3_column_double(s, 5));
	doc = json_pack("{s:s, s:s, s:s, s:f, s:o}", "id", id, "accepted_by",
	    store_col_text(s, 2), "kind", store_col_text(s, 3), "created_at", created,
	    "cancelled_at", cancelled_at);
	store_finish(s);

	pp = json_object();
	pf = json_object();
	mp = json_object();
	mf = json_object();
	np = json_object();
	projects = json_object();
	plist = json_array();

	/* Projects, with their totals. */
	s = store_prep(db, STORE_RESULTS_PROJECTS_SQL);
	if (s == NULL)
		goto fail;
	store_bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *pid = store_col_text(s, 1), *state = store_col_text(s, 3);
		int has_error = sqlite3_column_type(s, 4) != SQLITE_NULL;
		long p = sqlite3_column_int64(s, 6), f = sqlite3_column_int64(s, 7);
		long k = sqlite3_column_int64(s, 8);
		double g = has_error ? 0.0 : score_grade(p, f);
		json_t *err = has_error ? json_string(store_col_text(s, 4)) : json_null();
		json_t *warnings = json_loads(store_col_text(s, 5), 0, NULL);
		json_t *commit = sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() :
		    json_string(store_col_text(s, 9));

		if (warnings == NULL)
			warnings = json_array();
		nproj++;
		nerror += has_error;
		fetching += strcmp(state, "fetching") == 0;
		passed += p;
		failed += f;
		skipped += k;
		grade_sum += g;
		json_object_set_new(pp, pid, json_real(score_percent(p, p + f)));
		json_object_set_new(pf, pid, json_real(score_percent(f, p + f)));
		json_object_set_new(np, pid, json_real(g));
		if (details) {
			json_t *proj = store_results_project(s);
			json_object_set_new(proj, "modules", json_array());
			json_array_append_new(plist, proj);
			json_decref(warnings);
		} else {
			json_object_set_new(projects, pid, json_pack("{s:s, s:O, s:I, s:I, s:I,"
			    " s:f, s:o, s:O}", "state", state, "error", err, "passed", (json_int_t)p,
			    "failed", (json_int_t)f, "skipped", (json_int_t)k, "grade", g,
			    "warnings", warnings, "commit", commit));
		}
		json_decref(err);
		json_decref(commit);
	}
	store_finish(s);

	/* Modules: counters and (with details) their results. */
	s = store_prep(db, details ? STORE_RESULTS_MODULES_SQL : STORE_SUMMARY_MODULES_SQL);
	if (s == NULL)
		goto fail;
	store_bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		int idx = sqlite3_column_int(s, 0);
		const char *state = store_results_module_state(s, !json_is_null(cancelled_at));
		int done = sqlite3_column_type(s, 5) != SQLITE_NULL;

		if (done) {
			long p = sqlite3_column_int64(s, 5), f = sqlite3_column_int64(s, 6);
			char *key = xasprintf("%s/%s", store_col_text(s, 1), store_col_text(s, 2));
			executed++;
			json_object_set_new(mp, key, json_real(score_percent(p, p + f)));
			json_object_set_new(mf, key, json_real(score_percent(f, p + f)));
			free(key);
		} else if (strcmp(state, "running") == 0) {
			running++;
		} else if (strcmp(state, "cancelled") == 0) {
			cancelled_mods++;
		} else {
			pending++;
		}
		if (details)
			json_array_append_new(json_object_get(json_array_get(plist, (size_t)idx),
			    "modules"), store_results_module(s, !json_is_null(cancelled_at)));
	}
	store_finish(s);
	s = NULL;

	{
		int cancelled = !json_is_null(cancelled_at);
		/* a cancelled evaluation fetches nothing more: only what runs keeps it going */
		int active = running > 0 || (!cancelled && (fetching > 0 || pending > 0));
		const char *status = active ? "running" : cancelled ? "cancelled" :
		    (nproj == 0 || nerror == nproj || executed == 0) ? "failed" : "done";
		double elapsed = (active ? now : last_event) - created;

		if (ck != NULL)
			ck->active = active;

		json_object_set_new(doc, "status", json_string(status));
		json_object_set_new(doc, "percent_passed", json_real(score_percent(passed, passed + failed)));
		json_object_set_new(doc, "percent_failed", json_real(score_percent(failed, passed + failed)));
		json_object_set_new(doc, "percent_passed_per_project", pp);
		json_object_set_new(doc, "percent_failed_per_project", pf);
		json_object_set_new(doc, "percent_passed_per_module", mp);
		json_object_set_new(doc, "percent_failed_per_module", mf);
		json_object_set_new(doc, "executed", json_integer(executed));
		json_object_set_new(doc, "in_progress", json_integer(running));
		json_object_set_new(doc, "pending", json_integer(pending));
		json_object_set_new(doc, "cancelled", json_integer(cancelled_mods));
		json_object_set_new(doc, "nota_final",
		    json_real(nproj > 0 ? grade_sum / (double)nproj : 0.0));
		json_object_set_new(doc, "nota_final_per_project", np);
		json_object_set_new(doc, "elapsed_seconds", json_real(elapsed > 0 ? elapsed : 0));
		json_object_set_new(doc, "passed", json_integer(passed));
		json_object_set_new(doc, "failed", json_integer(failed));
		json_object_set_new(doc, "skipped", json_integer(skipped));
		json_object_set_new(doc, "projects", details ? plist : projects);
		if (details)
			json_decref(projects);
		else
			json_decref(plist);
	}
	goto out;
fail:
	json_decref(pp);
	json_decref(pf);
	json_decref(mp);
	json_decref(mf);
	json_decref(np);
	json_decref(projects);
	json_decref(plist);
	json_decref(doc);
	doc = NULL;
out:
	store_finish(s);
	return doc;
}

/* store_eval_doc_in on the calling thread's connection, in a transaction of its own. */
static json_t *
eval_doc(struct store *st, const char *id, double now, int details,
    struct store_cached_doc *ck)
{
	sqlite3 *db = store_db(st);
	json_t *doc;

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return NULL;
	doc = store_eval_doc_in(db, id, now, details, ck);
	store_exec(db, "COMMIT");
	return doc;
}

json_t *
store_eval_status(struct store *st, const char *id, double now)
{
	return eval_doc(st, id, now, 0, NULL);
}

json_t *
store_eval_results(struct store *st, const char *id, double now)
{
	return eval_doc(st, id, now, 1, NULL);
}

/* ------------------------------------------- the status, kept serialized */

/* Stands for the elapsed time in a serialized document, where it is spliced. */
#define STORE_ELAPSED_MARK "\\u0001elapsed\\u0001"

static void
cached_doc_clear(struct store_cached_doc *c)
{
	free(c->head);
	free(c->tail);
	memset(c, 0, sizeof(*c));
}

void
store_read_cache_free(struct store *st)
{
	for (int i = 0; i < STORE_DOC_CACHE; i++)
		cached_doc_clear(&st->cache[i]);
}

/* The document's text at now: head, the elapsed time as jansson writes it, tail. */
static char *
cached_doc_text(const struct store_cached_doc *c, double now, size_t *len)
{
	double elapsed = (c->active ? now : c->last_event) - c->created;
	json_t *num = json_real(elapsed > 0 ? elapsed : 0);
	char *mid = json_dumps(num, JSON_ENCODE_ANY | JSON_COMPACT), *text;
	size_t mlen = mid ? strlen(mid) : 0;

	json_decref(num);
	text = xmalloc(c->head_len + mlen + c->tail_len + 1);
	memcpy(text, c->head, c->head_len);
	memcpy(text + c->head_len, mid ? mid : "", mlen);
	memcpy(text + c->head_len + mlen, c->tail, c->tail_len);
	*len = c->head_len + mlen + c->tail_len;
	text[*len] = '\0';
	free(mid);
	return text;
}

/* The cached entry of evaluation id under cache_lock, or NULL. */
static struct store_cached_doc *
cached_doc_find(struct store *st, const char *id)
{
	for (int i = 0; i < STORE_DOC_CACHE; i++) {
		struct store_cached_doc *c = &st->cache[i];
		if (c->head != NULL && strcmp(c->id, id) == 0) {
			c->used = ++st->cache_tick;
			return c;
		}
	}
	return NULL;
}

/* A build of id's document that did not happen: the next reader tries. */
static void
cached_doc_unbuild(struct store *st, const char *id)
{
	struct store_cached_doc *c;

	pthread_mutex_lock(&st->cache_lock);
	if ((c = cached_doc_find(st, id)) != NULL)
		c->building = 0;
	pthread_mutex_unlock(&st->cache_lock);
}

char *
store_eval_status_text(struct store *st, const char *id, double now, size_t *len)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_cached_doc key, *c;
	long long ver = -1;
	double last_event = 0;
	json_t *doc;
	char *text, *mark;
	int slot = 0;

	if (db == NULL || (s = store_prep(db, "SELECT ver, last_event_at FROM evaluation"
	    " WHERE id = ?")) == NULL)
		return NULL;
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW) {
		ver = sqlite3_column_int64(s, 0);
		last_event = sqlite3_column_double(s, 1);
	}
	store_finish(s);
	if (ver < 0)
		return NULL;
	pthread_mutex_lock(&st->cache_lock);
	c = cached_doc_find(st, id);
	text = NULL;
	if (c != NULL && ((c->ver == ver && c->last_event == last_event) || c->building ||
	    (c->active && util_mono() - c->built_at < STORE_DOC_MIN_AGE)))
		text = cached_doc_text(c, now, len);
	else if (c != NULL)
		c->building = 1;
	pthread_mutex_unlock(&st->cache_lock);
	if (text != NULL)
		return text;

	/* Build it (outside the lock: readers of other documents go on). */
	memset(&key, 0, sizeof(key));
	key.built_at = util_mono();
	doc = eval_doc(st, id, now, 0, &key);
	if (doc == NULL) {
		cached_doc_unbuild(st, id);
		return NULL;
	}
	json_object_set_new(doc, "elapsed_seconds", json_string("\001elapsed\001"));
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	mark = text ? strstr(text, "\"" STORE_ELAPSED_MARK "\"") : NULL;
	if (mark == NULL) {
		free(text);
		cached_doc_unbuild(st, id);
		return NULL;
	}
	snprintf(key.id, sizeof(key.id), "%s", id);
	key.head_len = (size_t)(mark - text);
	key.head = xmalloc(key.head_len + 1);
	memcpy(key.head, text, key.head_len);
	mark += strlen("\"" STORE_ELAPSED_MARK "\"");
	key.tail = xstrdup(mark);
	key.tail_len = strlen(mark);
	free(text);
	text = cached_doc_text(&key, now, len);

	pthread_mutex_lock(&st->cache_lock);
	for (int i = 0; i < STORE_DOC_CACHE; i++) {
		if (st->cache[i].head == NULL || strcmp(st->cache[i].id, id) == 0) {
			slot = i;
			break;
		}
		if (st->cache[i].used < st->cache[slot].used)
			slot = i;
	}
	cached_doc_clear(&st->cache[slot]);
	key.used = ++st->cache_tick;
	st->cache[slot] = key;
	pthread_mutex_unlock(&st->cache_lock);
	return text;
}


json_t *
store_stats_all(struct store *st)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_int_t passed = 0, failed = 0, projects = 0, evaluations = 0;

	/* The running totals of the nodes (store.c), and of "*" for the network. */
	if (db != NULL && (s = store_prep(db, "SELECT node, passed, failed, projects,"
	    " evaluations FROM stat_node")) != NULL) {
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (strcmp(store_col_text(s, 0), "*") == 0) {
				projects = sqlite3_column_int64(s, 3);
				evaluations = sqlite3_column_int64(s, 4);
				continue;
			}
			passed += sqlite3_column_int64(s, 1);
			failed += sqlite3_column_int64(s, 2);
		}
		store_finish(s);
	}
	return json_pack("{s:I, s:I, s:I, s:I}", "failed", failed, "passed", passed,
	    "projects", projects, "evaluations", evaluations);
}

json_t *
store_stats_node(struct store *st, const char *address)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *evals = json_array();
	json_int_t v[4] = { 0, 0, 0, 0 };

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		goto out;
	if ((s = store_prep(db, "SELECT failed, passed, projects, modules FROM stat_node"
	    " WHERE node = ?")) != NULL) {
		store_bind_text(s, 1, address);
		if (sqlite3_step(s) == SQLITE_ROW)
			for (int i = 0; i < 4; i++)
				v[i] = sqlite3_column_int64(s, i);
		store_finish(s);
	}
	/* a deleted evaluation's share stays in the totals, its id is not listed */
	if ((s = store_prep(db, "SELECT key FROM stat_ref WHERE node = ? AND kind = 'eval'"
	    " AND NOT EXISTS (SELECT 1 FROM eval_tomb t WHERE t.id = stat_ref.key)"
	    " ORDER BY created, key")) != NULL) {
		store_bind_text(s, 1, address);
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(evals, json_string(store_col_text(s, 0)));
		store_finish(s);
	}
	store_exec(db, "COMMIT");
out:
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "address", address, "failed", v[0],
	    "passed", v[1], "projects", v[2], "modules", v[3], "evaluations", evals);
}

int
store_queue(struct store *st, struct store_queue *out)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;

	memset(out, 0, sizeof(*out));
	if (db == NULL)
		return -EIO;
	/* The WHERE is evaluation_active's: finished evaluations are never read. */
	s = store_prep(db, "SELECT coalesce(sum(pend_ready + pend_unready), 0),"
	    " coalesce(sum(running), 0), coalesce(sum(fetching), 0) FROM evaluation"
	    " WHERE pend_ready + pend_unready + running + fetching > 0");
	if (s == NULL)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW) {
		out->pending = (long)sqlite3_column_int64(s, 0);
		out->running = (long)sqlite3_column_int64(s, 1);
		out->fetching = (long)sqlite3_column_int64(s, 2);
	}
	store_finish(s);
	return 0;
}

int
store_disk_bytes(struct store *st, uint64_t *bytes)
{
	static const char *const suffix[] = { "", "-wal" };
	struct stat sb;

	*bytes = 0;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *p = xasprintf("%s%s", st->path, suffix[i]);
		int r = stat(p, &sb) < 0 ? -errno : 0;

		free(p);
		if (r == 0)
			*bytes += (uint64_t)sb.st_blocks * 512;
		else if (i == 0)
			return r;
	}
	return 0;
}
