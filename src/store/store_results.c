/*
 * store_results.c - the GET /evaluation/<id>/results document, read a row
 * at a time.
 *
 * The document is the evaluation's summary (store_eval_doc_in without
 * details) whose "projects" is an array of every project with its modules
 * and their tests. A reader holds one read transaction on a connection of
 * its own (WAL: a consistent snapshot while results keep coming) and writes
 * the summary, then one project's fields or one module's result at a time:
 * what it holds is the summary (a few numbers per module) and one module's
 * result, whatever the evaluation's size. Exports read the same snapshot a
 * project at a time (store_results_next_project), without the summary.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/score.h"
#include "core/util.h"
#include "store/store_int.h"

json_t *
store_results_project(sqlite3_stmt *s)
{
	int has_error = sqlite3_column_type(s, 4) != SQLITE_NULL;
	long p = sqlite3_column_int64(s, 6), f = sqlite3_column_int64(s, 7);
	long k = sqlite3_column_int64(s, 8);
	json_t *warnings = json_loads(store_col_text(s, 5), 0, NULL);

	return json_pack("{s:s, s:s, s:s, s:f, s:I, s:I, s:I, s:o, s:o, s:o}",
	    "project_id", store_col_text(s, 1), "source", store_col_text(s, 2),
	    "state", store_col_text(s, 3), "grade", has_error ? 0.0 : score_grade(p, f),
	    "passed", (json_int_t)p, "failed", (json_int_t)f, "skipped", (json_int_t)k,
	    "error", has_error ? json_string(store_col_text(s, 4)) : json_null(),
	    "warnings", warnings != NULL ? warnings : json_array(),
	    "commit", sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() :
	    json_string(store_col_text(s, 9)));
}

const char *
store_results_module_state(sqlite3_stmt *s, int eval_cancelled)
{
	const char *state = store_col_text(s, 3);

	if (sqlite3_column_type(s, 5) != SQLITE_NULL)
		return state;
	if (strcmp(state, "running") == 0)
		return state;
	/* a pending module of a cancelled evaluation never starts */
	if (strcmp(state, "cancelled") == 0 || eval_cancelled)
		return "cancelled";
	return state;
}

json_t *
store_results_module(sqlite3_stmt *s, int eval_cancelled)
{
	int done = sqlite3_column_type(s, 5) != SQLITE_NULL;
	json_t *m = done ? json_loads(store_col_text(s, 8), 0, NULL) : NULL;

	if (m == NULL)
		m = json_pack("{s:s, s:I}", "state", store_results_module_state(s, eval_cancelled),
		    "attempts", (json_int_t)sqlite3_column_int64(s, 9));
	json_object_set_new(m, "module", json_sprintf("%s/%s", store_col_text(s, 1),
	    store_col_text(s, 2)));
	json_object_set_new(m, "path", json_string(store_col_text(s, 2)));
	if (!done && sqlite3_column_type(s, 4) != SQLITE_NULL)
		json_object_set_new(m, "node", json_string(store_col_text(s, 4)));
	return m;
}

/* ---------------------------------------------------------------- reader */

/*
 * Readers open at once, each a connection and a read transaction (while one
 * is open the WAL cannot be checkpointed past it): more wait for a 503.
 */
#define RESULTS_READERS_MAX 16
static int results_readers;

enum results_at { RESULTS_PROJECT, RESULTS_MODULE, RESULTS_END };

struct store_results {
	sqlite3 *db;
	sqlite3_stmt *projects, *modules;
	int in_tx;                  /* the read transaction is open */
	int cancelled;              /* the evaluation is: its pending modules say so */
	enum results_at at;
	int project_idx;            /* the project whose modules are being written */
	int module_row;             /* modules holds a row not written yet */
	long nprojects, nmodules;   /* written so far in the current list */
	char *doc_end;              /* what follows the list of projects */
	char *project_end;          /* what follows the current project's modules */
	char *piece;                /* what is being handed out */
	size_t len, off;
	int failed;                 /* a piece could not be made: -EIO after what was written */
	char mark[40];              /* stands for a list in a text, where the reader writes it */
	struct store_results_stats stats;
};

static void
results_piece(struct store_results *r, char *text)
{
	free(r->piece);
	r->piece = text;
	r->len = strlen(text);
	r->off = 0;
	r->stats.total += r->len;
	if (r->stats.head == 0)
		r->stats.head = r->len;
	else if (r->len > r->stats.max_piece)
		r->stats.max_piece = r->len;
}

/*
 * obj's text as the HTTP server writes JSON (compact, sorted keys), cut where
 * the value of key goes: *pre is what comes before it with lead in front
 * and "[" after, *post "]" and what follows. 0 or -EIO.
 */
static int
results_split(const struct store_results *r, json_t *obj, const char *key, const char *lead,
    char **pre, char **post)
{
	char *text, *at;

	json_object_set_new(obj, key, json_string(r->mark));
	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	/* the mark is random and holds no character JSON escapes: its text is itself */
	at = text ? strstr(text, r->mark) : NULL;
	if (at == NULL || at == text || at[-1] != '"' || at[strlen(r->mark)] != '"') {
		free(text);
		return -EIO;
	}
	at[-1] = '\0';
	*pre = xasprintf("%s%s[", lead, text);
	*post = xasprintf("]%s", at + strlen(r->mark) + 1);
	free(text);
	return 0;
}

/* The next piece of the document into r->piece: 0, -1 at the end, -EIO. */
static int
results_next(struct store_results *r)
{
	json_t *obj;
	char *text;
	int rc;

	switch (r->at) {
	case RESULTS_PROJECT:
		rc = sqlite3_step(r->projects);
		if (rc == SQLITE_DONE) {
			results_piece(r, r->doc_end);
			r->doc_end = NULL;
			r->at = RESULTS_END;
			return 0;
		}
		if (rc != SQLITE_ROW)
			return -EIO;
		r->project_idx = sqlite3_column_int(r->projects, 0);
		obj = store_results_project(r->projects);
		free(r->project_end);
		r->project_end = NULL;
		rc = results_split(r, obj, "modules", r->nprojects++ ? "," : "", &text,
		    &r->project_end);
		json_decref(obj);
		if (rc < 0)
			return rc;
		results_piece(r, text);
		r->nmodules = 0;
		r->at = RESULTS_MODULE;
		return 0;
	case RESULTS_MODULE:
		if (!r->module_row) {
			rc = sqlite3_step(r->modules);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE)
				return -EIO;
			r->module_row = rc == SQLITE_ROW;
		}
		if (!r->module_row || sqlite3_column_int(r->modules, 0) != r->project_idx) {
			results_piece(r, r->project_end);
			r->project_end = NULL;
			r->at = RESULTS_PROJECT;
			return 0;
		}
		r->module_row = 0;
		obj = store_results_module(r->modules, r->cancelled);
		text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(obj);
		if (text == NULL)
			return -EIO;
		if (r->nmodules++ > 0) {
			char *with = xasprintf(",%s", text);
			free(text);
			text = with;
		}
		results_piece(r, text);
		return 0;
	case RESULTS_END:
		break;
	}
	return -1;
}

/*
 * A reader on its own connection, in a read transaction, its statements
 * bound to id (and project, when not NULL); with head, the summary written
 * first. 0, -ENOENT, -EBUSY,
 * -EIO.
 */
static int
results_open(struct store *st, const char *id, const char *project, double now,
    int with_head, struct store_results **out)
{
	struct store_results *r;
	json_t *head = NULL;
	char *text, rnd[17];
	int err = -EIO;

	*out = NULL;
	if (__atomic_add_fetch(&results_readers, 1, __ATOMIC_ACQ_REL) > RESULTS_READERS_MAX) {
		__atomic_sub_fetch(&results_readers, 1, __ATOMIC_ACQ_REL);
		return -EBUSY;
	}
	r = xcalloc(1, sizeof(*r));
	util_random_hex(rnd, 8);
	snprintf(r->mark, sizeof(r->mark), "meshtest-list-%s", rnd);
	if (sqlite3_open_v2(st->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK) {
		log_error("store: cannot open %s: %s", st->path,
		    r->db ? sqlite3_errmsg(r->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(r->db, 10000);
	/* as small a page cache as every connection of the node's (store.c) */
	store_exec(r->db, "PRAGMA cache_size=-512");
	if (store_exec(r->db, "BEGIN") < 0)
		goto fail;
	r->in_tx = 1;
	if (store_query_long(r->db, "SELECT count(*) FROM evaluation WHERE id = ?", id) <= 0) {
		err = -ENOENT;
		goto fail;
	}
	r->cancelled = store_query_long(r->db, "SELECT count(*) FROM evaluation WHERE id = ?"
	    " AND cancelled_at IS NOT NULL", id) > 0;
	if (with_head) {
		head = store_eval_doc_in(r->db, id, now, 0, NULL);
		if (head == NULL || results_split(r, head, "projects", "", &text,
		    &r->doc_end) < 0)
			goto fail;
		results_piece(r, text);
	}
	r->projects = store_prep(r->db, STORE_RESULTS_PROJECTS_SQL);
	r->modules = store_prep(r->db, STORE_RESULTS_MODULES_SQL);
	if (r->projects == NULL || r->modules == NULL)
		goto fail;
	store_bind_text(r->projects, 1, id);
	store_bind_text(r->modules, 1, id);
	if (project != NULL) {
		store_bind_text(r->projects, 2, project);
		store_bind_text(r->modules, 2, project);
	}
	r->at = RESULTS_PROJECT;
	json_decref(head);
	*out = r;
	return 0;
fail:
	json_decref(head);
	store_results_close(r);
	return err;
}

int
store_results_open(struct store *st, const char *id, double now, struct store_results **out)
{
	return results_open(st, id, NULL, now, 1, out);
}

int
store_results_open_projects(struct store *st, const char *id, const char *project,
    struct store_results **out)
{
	return results_open(st, id, project, 0, 0, out);
}

int
store_results_next_project(struct store_results *r, json_t **out)
{
	json_t *project, *modules;
	int rc = sqlite3_step(r->projects);

	*out = NULL;
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return -EIO;
	r->project_idx = sqlite3_column_int(r->projects, 0);
	project = store_results_project(r->projects);
	modules = json_array();
	for (;;) {
		if (!r->module_row) {
			rc = sqlite3_step(r->modules);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
				json_decref(project);
				json_decref(modules);
				return -EIO;
			}
			r->module_row = rc == SQLITE_ROW;
		}
		if (!r->module_row || sqlite3_column_int(r->modules, 0) != r->project_idx)
			break;
		r->module_row = 0;
		json_array_append_new(modules, store_results_module(r->modules, r->cancelled));
	}
	json_object_set_new(project, "modules", modules);
	*out = project;
	return 1;
}

int
store_results_rewind(struct store_results *r)
{
	sqlite3_reset(r->projects);
	sqlite3_reset(r->modules);
	r->module_row = 0;
	r->at = RESULTS_PROJECT;
	return 0;
}

long
store_results_read(struct store_results *r, char *buf, size_t max)
{
	size_t n = 0;

	while (n < max && !r->failed) {
		size_t take;

		if (r->off == r->len) {
			int rc = results_next(r);
			if (rc == -1)
				break;
			/* what this call wrote goes first; the next says why there is no more */
			r->failed = rc < 0;
			continue;
		}
		take = r->len - r->off < max - n ? r->len - r->off : max - n;
		memcpy(buf + n, r->piece + r->off, take);
		r->off += take;
		n += take;
	}
	return n == 0 && r->failed ? -EIO : (long)n;
}

void
store_results_stats(const struct store_results *r, struct store_results_stats *out)
{
	*out = r->stats;
}

void
store_results_close(struct store_results *r)
{
	if (r == NULL)
		return;
	store_finish(r->projects);
	store_finish(r->modules);
	if (r->in_tx)
		store_exec(r->db, "COMMIT");
	sqlite3_close_v2(r->db);
	free(r->doc_end);
	free(r->project_end);
	free(r->piece);
	free(r);
	__atomic_sub_fetch(&results_readers, 1, __ATOMIC_ACQ_REL);
}
