/*
 * store.c - SQLite schema and queries (see store.h for the contract).
 *
 * Owns the database file. Each thread has its own connection, kept in a
 * pthread key and closed by the key's destructor when the thread exits; the
 * main thread's connection is closed by store_close. WAL mode lets readers
 * run beside the one writer; busy_timeout absorbs writer contention.
 *
 * Counting is done here, at read time, from the recorded module results: the
 * per-module counters are columns of the result table, the per-test details a
 * JSON body. Nothing derived is stored, so nothing can disagree.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/score.h"
#include "core/util.h"

struct store {
	char *path;
	pthread_key_t key;
};

static const char store_schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS evaluation ("
	"  id TEXT PRIMARY KEY, seq INTEGER, created_at REAL NOT NULL,"
	"  last_event_at REAL NOT NULL, kind TEXT NOT NULL, accepted_by TEXT NOT NULL,"
	"  settings TEXT NOT NULL, has_token INTEGER NOT NULL, upload_path TEXT,"
	"  upload_digest TEXT);"
	"CREATE TABLE IF NOT EXISTS project ("
	"  eval_id TEXT NOT NULL, idx INTEGER NOT NULL, project_id TEXT NOT NULL,"
	"  source TEXT NOT NULL, prefix TEXT, state TEXT NOT NULL, dir TEXT, digest TEXT,"
	"  error TEXT, warnings TEXT NOT NULL DEFAULT '[]',"
	"  PRIMARY KEY (eval_id, idx));"
	"CREATE TABLE IF NOT EXISTS module ("
	"  eval_id TEXT NOT NULL, project_idx INTEGER NOT NULL, path TEXT NOT NULL,"
	"  state TEXT NOT NULL, node TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
	"  started_at REAL, version INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (eval_id, project_idx, path));"
	"CREATE INDEX IF NOT EXISTS module_state ON module(state, eval_id);"
	"CREATE TABLE IF NOT EXISTS result ("
	"  eval_id TEXT NOT NULL, project_idx INTEGER NOT NULL, path TEXT NOT NULL,"
	"  node TEXT NOT NULL, attempt INTEGER NOT NULL, finished_at REAL NOT NULL,"
	"  outcome TEXT NOT NULL, passed INTEGER NOT NULL, failed INTEGER NOT NULL,"
	"  skipped INTEGER NOT NULL, duration REAL NOT NULL, body TEXT NOT NULL,"
	"  PRIMARY KEY (eval_id, project_idx, path));"
	"CREATE INDEX IF NOT EXISTS result_node ON result(node);"
	"CREATE INDEX IF NOT EXISTS result_path ON result(path);";

/*
 * Migrations, one per schema version after the first (PRAGMA user_version
 * says which ran). A database written by an older release gains what the
 * newer code needs; each step runs once, in a transaction with the version.
 */
static const char *const store_migrations[] = {
	/* 2: the scheduler's estimate and import name per module; history by digest */
	"ALTER TABLE module ADD COLUMN est REAL;"
	"ALTER TABLE module ADD COLUMN iname TEXT;"
	"CREATE INDEX IF NOT EXISTS project_digest ON project(digest);",
	/* 3: the commit a git project was graded at */
	"ALTER TABLE project ADD COLUMN commit_sha TEXT;",
	/* 4: what makes two runs of a project the same run (reuse) */
	"ALTER TABLE project ADD COLUMN reuse_key TEXT;"
	"CREATE INDEX IF NOT EXISTS project_reuse ON project(reuse_key);",
};
#define STORE_VERSION (1 + (int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

static void
store_conn_free(void *p)
{
	sqlite3_close_v2(p);
}

/* The calling thread's connection, opened on first use; NULL on failure. */
static sqlite3 *
store_db(struct store *st)
{
	sqlite3 *db = pthread_getspecific(st->key);

	if (db != NULL)
		return db;
	if (sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_error("store: cannot open %s: %s", st->path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close_v2(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	pthread_setspecific(st->key, db);
	return db;
}

/* Bring the schema to STORE_VERSION; a newer database than this code is refused. */
static int
store_migrate(sqlite3 *db, const char *path)
{
	sqlite3_stmt *q = NULL;
	int version = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		version = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (version == 0)
		version = 1;   /* the first schema, before versions were kept */
	if (version > STORE_VERSION) {
		log_error("store: %s has schema version %d, newer than this meshtest (%d)", path,
		    version, STORE_VERSION);
		return -EIO;
	}
	for (; version < STORE_VERSION; version++) {
		char *msg = NULL, *bump = xasprintf("PRAGMA user_version = %d", version + 1);
		int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) == SQLITE_OK &&
		    sqlite3_exec(db, store_migrations[version - 1], NULL, NULL, &msg) == SQLITE_OK &&
		    sqlite3_exec(db, bump, NULL, NULL, &msg) == SQLITE_OK &&
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) == SQLITE_OK;
		free(bump);
		if (!ok) {
			log_error("store: cannot migrate %s to schema version %d: %s", path,
			    version + 1, msg ? msg : "error");
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -EIO;
		}
		log_info("store: %s migrated to schema version %d", path, version + 1);
	}
	return 0;
}

int
store_open(const char *path, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	sqlite3 *db;
	char *msg = NULL;

	st->path = xstrdup(path);
	if (pthread_key_create(&st->key, store_conn_free) != 0) {
		free(st->path);
		free(st);
		return -ENOMEM;
	}
	db = store_db(st);
	if (db == NULL) {
		store_close(st);
		return -EIO;
	}
	if (sqlite3_exec(db, store_schema, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("store: cannot create the schema in %s: %s", path, msg);
		sqlite3_free(msg);
		store_close(st);
		return -EIO;
	}
	if (store_migrate(db, path) < 0) {
		store_close(st);
		return -EIO;
	}
	*out = st;
	return 0;
}

void
store_close(struct store *st)
{
	sqlite3 *db;

	if (st == NULL)
		return;
	db = pthread_getspecific(st->key);
	if (db != NULL) {
		pthread_setspecific(st->key, NULL);
		sqlite3_close_v2(db);
	}
	pthread_key_delete(st->key);
	free(st->path);
	free(st);
}

/* Prepare a statement or log why not. */
static sqlite3_stmt *
store_prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		log_error("store: %s: %s", sqlite3_errmsg(db), sql);
		return NULL;
	}
	return s;
}

static int
store_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("store: %s: %s", msg ? msg : "error", sql);
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? (const char *)t : "";
}

/* Run a one-row-or-none write; 0 or -EIO. */
static int
step_done(sqlite3 *db, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("store: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

/* ---------------------------------------------------------------- create */

static int
insert_modules(sqlite3 *db, const char *eval_id, int idx, const struct store_module_info *mods,
    size_t n)
{
	sqlite3_stmt *s = store_prep(db, "INSERT OR IGNORE INTO module(eval_id, project_idx,"
	    " path, state, est, iname) VALUES (?, ?, ?, 'pending', ?, ?)");
	int r = 0;

	if (s == NULL)
		return -EIO;
	for (size_t i = 0; i < n && r == 0; i++) {
		sqlite3_reset(s);
		bind_text(s, 1, eval_id);
		sqlite3_bind_int(s, 2, idx);
		bind_text(s, 3, mods[i].path);
		if (mods[i].est > 0)
			sqlite3_bind_double(s, 4, mods[i].est);
		else
			sqlite3_bind_null(s, 4);
		bind_text(s, 5, mods[i].iname);
		r = step_done(db, s);
	}
	sqlite3_finalize(s);
	return r;
}

/* Paths only (modules planned from a ZIP upload, before their files are seen). */
static int
insert_module_paths(sqlite3 *db, const char *eval_id, int idx, const char *const *paths,
    size_t n)
{
	struct store_module_info *mods = xcalloc(n ? n : 1, sizeof(*mods));
	int r;

	for (size_t i = 0; i < n; i++)
		mods[i].path = paths[i];
	r = insert_modules(db, eval_id, idx, mods, n);
	free(mods);
	return r;
}

int
store_eval_create(struct store *st, const char *id, double created, const char *kind,
    const char *accepted_by, json_t *settings, int has_token, const char *upload_digest,
    const struct store_project_new *projects, size_t nprojects)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	char *settings_text = NULL;
	int r = -EIO;

	if (db == NULL)
		return -EIO;
	if (store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	settings_text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
	s = store_prep(db, "INSERT INTO evaluation(id, seq, created_at, last_event_at, kind,"
	    " accepted_by, settings, has_token, upload_digest) VALUES (?, (SELECT"
	    " coalesce(max(seq), 0) + 1 FROM evaluation), ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL || settings_text == NULL)
		goto fail;
	bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, created);
	sqlite3_bind_double(s, 3, created);
	bind_text(s, 4, kind);
	bind_text(s, 5, accepted_by);
	bind_text(s, 6, settings_text);
	sqlite3_bind_int(s, 7, has_token);
	bind_text(s, 8, upload_digest);
	if (step_done(db, s) < 0)
		goto fail;
	sqlite3_finalize(s);
	s = store_prep(db, "INSERT INTO project(eval_id, idx, project_id, source, prefix,"
	    " state) VALUES (?, ?, ?, ?, ?, 'fetching')");
	if (s == NULL)
		goto fail;
	for (size_t i = 0; i < nprojects; i++) {
		sqlite3_reset(s);
		bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, (int)i);
		bind_text(s, 3, projects[i].project_id);
		bind_text(s, 4, projects[i].source);
		bind_text(s, 5, projects[i].prefix);
		if (step_done(db, s) < 0)
			goto fail;
		if (insert_module_paths(db, id, (int)i, projects[i].modules,
		    projects[i].nmodules) < 0)
			goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	free(settings_text);
	return 0;
fail:
	sqlite3_finalize(s);
	store_exec(db, "ROLLBACK");
	free(settings_text);
	return r;
}

json_t *
store_eval_settings(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *out = NULL;

	if (db == NULL || (s = store_prep(db, "SELECT settings FROM evaluation WHERE id = ?")) == NULL)
		return NULL;
	bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		out = json_loads(col_text(s, 0), 0, NULL);
	sqlite3_finalize(s);
	return out;
}

/* ------------------------------------------------------------ read side */

json_t *
store_eval_list(struct store *st)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *arr = json_array();

	if (db != NULL && (s = store_prep(db, "SELECT id FROM evaluation ORDER BY created_at, id")) != NULL) {
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(arr, json_string(col_text(s, 0)));
		sqlite3_finalize(s);
	}
	return json_pack("{s:o}", "evaluations", arr);
}

/*
 * Build the evaluation document. With details, projects is an array with
 * every module and test (GET .../results); without, the summary of
 * GET /evaluation/<id>.
 */
static json_t *
eval_doc(struct store *st, const char *id, double now, int details)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	json_t *doc = NULL, *pp, *pf, *mp, *mf, *np, *projects, *plist;
	double created, last_event;
	long passed = 0, failed = 0, skipped = 0;
	long executed = 0, running = 0, pending = 0, fetching = 0, nproj = 0, nerror = 0;
	double grade_sum = 0;

	if (db == NULL)
		return NULL;
	if (store_exec(db, "BEGIN") < 0)
		return NULL;
	s = store_prep(db, "SELECT created_at, last_event_at, accepted_by, kind FROM evaluation"
	    " WHERE id = ?");
	if (s == NULL)
		goto out;
	bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	created = sqlite3_column_double(s, 0);
	last_event = sqlite3_column_double(s, 1);
	doc = json_pack("{s:s, s:s, s:s, s:f}", "id", id, "accepted_by", col_text(s, 2),
	    "kind", col_text(s, 3), "created_at", created);
	sqlite3_finalize(s);

	pp = json_object();
	pf = json_object();
	mp = json_object();
	mf = json_object();
	np = json_object();
	projects = json_object();
	plist = json_array();

	/* Projects, with their totals. */
	s = store_prep(db, "SELECT p.idx, p.project_id, p.source, p.state, p.error, p.warnings,"
	    " coalesce(sum(r.passed), 0), coalesce(sum(r.failed), 0), coalesce(sum(r.skipped), 0),"
	    " p.commit_sha FROM project p LEFT JOIN result r ON r.eval_id = p.eval_id AND r.project_idx = p.idx"
	    " WHERE p.eval_id = ? GROUP BY p.idx ORDER BY p.idx");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *pid = col_text(s, 1), *state = col_text(s, 3);
		int has_error = sqlite3_column_type(s, 4) != SQLITE_NULL;
		long p = sqlite3_column_int64(s, 6), f = sqlite3_column_int64(s, 7);
		long k = sqlite3_column_int64(s, 8);
		double g = has_error ? 0.0 : score_grade(p, f);
		json_t *err = has_error ? json_string(col_text(s, 4)) : json_null();
		json_t *warnings = json_loads(col_text(s, 5), 0, NULL);
		json_t *commit = sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() :
		    json_string(col_text(s, 9));

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
			json_array_append_new(plist, json_pack("{s:s, s:s, s:s, s:f, s:I, s:I,"
			    " s:I, s:O, s:o, s:O, s:o}", "project_id", pid, "source", col_text(s, 2),
			    "state", state, "grade", g, "passed", (json_int_t)p, "failed",
			    (json_int_t)f, "skipped", (json_int_t)k, "error", err, "warnings",
			    warnings, "commit", commit, "modules", json_array()));
		} else {
			json_object_set_new(projects, pid, json_pack("{s:s, s:O, s:I, s:I, s:I,"
			    " s:f, s:o, s:O}", "state", state, "error", err, "passed", (json_int_t)p,
			    "failed", (json_int_t)f, "skipped", (json_int_t)k, "grade", g,
			    "warnings", warnings, "commit", commit));
		}
		json_decref(err);
		json_decref(commit);
	}
	sqlite3_finalize(s);

	/* Modules: counters and (with details) their results. */
	s = store_prep(db, "SELECT m.project_idx, p.project_id, m.path, m.state, m.node,"
	    " r.passed, r.failed, r.skipped, r.body, m.attempts"
	    " FROM module m JOIN project p ON p.eval_id = m.eval_id AND p.idx = m.project_idx"
	    " LEFT JOIN result r ON r.eval_id = m.eval_id AND r.project_idx = m.project_idx"
	    " AND r.path = m.path WHERE m.eval_id = ? ORDER BY m.project_idx, m.path");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		int idx = sqlite3_column_int(s, 0);
		const char *state = col_text(s, 3);
		char *key = xasprintf("%s/%s", col_text(s, 1), col_text(s, 2));
		int done = sqlite3_column_type(s, 5) != SQLITE_NULL;

		if (done) {
			long p = sqlite3_column_int64(s, 5), f = sqlite3_column_int64(s, 6);
			executed++;
			json_object_set_new(mp, key, json_real(score_percent(p, p + f)));
			json_object_set_new(mf, key, json_real(score_percent(f, p + f)));
		} else if (strcmp(state, "running") == 0) {
			running++;
		} else {
			pending++;
		}
		if (details) {
			json_t *proj = json_array_get(plist, (size_t)idx);
			json_t *mods = json_object_get(proj, "modules");
			json_t *m = done ? json_loads(col_text(s, 8), 0, NULL) : NULL;

			if (m == NULL)
				m = json_pack("{s:s, s:I}", "state", state, "attempts",
				    (json_int_t)sqlite3_column_int64(s, 9));
			json_object_set_new(m, "module", json_string(key));
			json_object_set_new(m, "path", json_string(col_text(s, 2)));
			if (!done && sqlite3_column_type(s, 4) != SQLITE_NULL)
				json_object_set_new(m, "node", json_string(col_text(s, 4)));
			json_array_append_new(mods, m);
		}
		free(key);
	}
	sqlite3_finalize(s);
	s = NULL;

	{
		int active = fetching > 0 || running > 0 || pending > 0;
		const char *status = active ? "running" :
		    (nproj == 0 || nerror == nproj || executed == 0) ? "failed" : "done";
		double elapsed = (active ? now : last_event) - created;

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
	sqlite3_finalize(s);
	store_exec(db, "COMMIT");
	return doc;
}

json_t *
store_eval_status(struct store *st, const char *id, double now)
{
	return eval_doc(st, id, now, 0);
}

json_t *
store_eval_results(struct store *st, const char *id, double now)
{
	return eval_doc(st, id, now, 1);
}

/* One integer from a query with an optional text parameter. */
static long
query_long(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *s = store_prep(db, sql);
	long v = 0;

	if (s == NULL)
		return 0;
	if (param != NULL)
		bind_text(s, 1, param);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

json_t *
store_stats_all(struct store *st)
{
	sqlite3 *db = store_db(st);
	json_t *o;

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return json_pack("{s:i, s:i, s:i, s:i}", "failed", 0, "passed", 0,
		    "projects", 0, "evaluations", 0);
	o = json_pack("{s:I, s:I, s:I, s:I}",
	    "failed", (json_int_t)query_long(db, "SELECT coalesce(sum(failed), 0) FROM result", NULL),
	    "passed", (json_int_t)query_long(db, "SELECT coalesce(sum(passed), 0) FROM result", NULL),
	    "projects", (json_int_t)query_long(db, "SELECT count(DISTINCT source) FROM project", NULL),
	    "evaluations", (json_int_t)query_long(db, "SELECT count(*) FROM evaluation", NULL));
	store_exec(db, "COMMIT");
	return o;
}

json_t *
store_stats_node(struct store *st, const char *address)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *evals = json_array(), *o;

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return json_pack("{s:s, s:i, s:i, s:i, s:i, s:o}", "address", address,
		    "failed", 0, "passed", 0, "projects", 0, "modules", 0, "evaluations", evals);
	s = store_prep(db, "SELECT e.id FROM evaluation e WHERE e.accepted_by = ?1 OR EXISTS"
	    " (SELECT 1 FROM result r WHERE r.eval_id = e.id AND r.node = ?1) ORDER BY e.created_at, e.id");
	if (s != NULL) {
		bind_text(s, 1, address);
		while (sqlite3_step(s) == SQLITE_ROW)
			json_array_append_new(evals, json_string(col_text(s, 0)));
		sqlite3_finalize(s);
	}
	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "address", address,
	    "failed", (json_int_t)query_long(db, "SELECT coalesce(sum(failed), 0) FROM result"
	    " WHERE node = ?", address),
	    "passed", (json_int_t)query_long(db, "SELECT coalesce(sum(passed), 0) FROM result"
	    " WHERE node = ?", address),
	    "projects", (json_int_t)query_long(db, "SELECT count(DISTINCT p.source) FROM result r"
	    " JOIN project p ON p.eval_id = r.eval_id AND p.idx = r.project_idx WHERE r.node = ?",
	    address),
	    "modules", (json_int_t)query_long(db, "SELECT count(*) FROM result WHERE node = ?",
	    address),
	    "evaluations", evals);
	store_exec(db, "COMMIT");
	return o;
}

/* ----------------------------------------------------------- fetch jobs */

int
store_fetch_jobs(struct store *st, const struct store_id *ids, size_t nids,
    struct store_fetch_job **jobs, size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_fetch_job *v = NULL;
	size_t cnt = 0, cap = 0;

	*jobs = NULL;
	*n = 0;
	if (db == NULL)
		return -EIO;
	s = store_prep(db, "SELECT p.eval_id, p.idx, e.kind, p.project_id, p.source, p.prefix,"
	    " e.upload_digest, e.has_token FROM project p JOIN evaluation e ON e.id = p.eval_id"
	    " WHERE p.state = 'fetching' AND e.id = ? ORDER BY p.idx");
	if (s == NULL)
		return -EIO;
	for (size_t k = 0; k < nids; k++) {
		sqlite3_reset(s);
		bind_text(s, 1, ids[k].id);
		while (sqlite3_step(s) == SQLITE_ROW) {
			struct store_fetch_job *j;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			j = &v[cnt++];
			memset(j, 0, sizeof(*j));
			snprintf(j->eval_id, sizeof(j->eval_id), "%s", col_text(s, 0));
			j->idx = sqlite3_column_int(s, 1);
			j->kind = xstrdup(col_text(s, 2));
			j->project_id = xstrdup(col_text(s, 3));
			j->source = xstrdup(col_text(s, 4));
			j->prefix = xstrdup(col_text(s, 5));
			j->upload_digest = xstrdup(col_text(s, 6));
			j->has_token = sqlite3_column_int(s, 7);
		}
	}
	sqlite3_finalize(s);
	*jobs = v;
	*n = cnt;
	return 0;
}

void
store_fetch_jobs_free(struct store_fetch_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(jobs[i].kind);
		free(jobs[i].project_id);
		free(jobs[i].source);
		free(jobs[i].prefix);
		free(jobs[i].upload_digest);
	}
	free(jobs);
}

static int
touch_eval(sqlite3 *db, const char *eval_id, double t)
{
	sqlite3_stmt *s = store_prep(db, "UPDATE evaluation SET last_event_at ="
	    " max(last_event_at, ?) WHERE id = ?");
	int r;

	if (s == NULL)
		return -EIO;
	sqlite3_bind_double(s, 1, t);
	bind_text(s, 2, eval_id);
	r = step_done(db, s);
	sqlite3_finalize(s);
	return r;
}

int
store_project_fetching(struct store *st, const char *eval_id, int idx)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	int r = 0;

	if (db == NULL || (s = store_prep(db, "SELECT state = 'fetching' FROM project WHERE"
	    " eval_id = ? AND idx = ?")) == NULL)
		return -EIO;
	bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	if (sqlite3_step(s) == SQLITE_ROW)
		r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return r;
}

static int merge_result(sqlite3 *db, const char *id, json_t *r);

/*
 * Record, for each still pending module of the project, the result of the
 * same module in an earlier run with the same reuse key, when that result
 * finished normally (outcome "finished", not flaky): marked "reused" with
 * the evaluation it came from, under no node (no node is credited again),
 * attempt 0 (any result of a real run wins over it). The number reused, or
 * -EIO. Inside the caller's transaction.
 */
static int
reuse_results(sqlite3 *db, const char *eval_id, int idx, const char *key, double now)
{
	sqlite3_stmt *s;
	json_t *rows = json_array(), *row;
	char last[1024] = "";
	size_t i;
	int n = 0;

	s = store_prep(db, "SELECT m.path, r.body, r.eval_id FROM module m"
	    " JOIN project p2 ON p2.reuse_key = ?3 AND NOT (p2.eval_id = ?1 AND p2.idx = ?2)"
	    " JOIN result r ON r.eval_id = p2.eval_id AND r.project_idx = p2.idx AND r.path = m.path"
	    " WHERE m.eval_id = ?1 AND m.project_idx = ?2 AND m.state = 'pending'"
	    " AND r.outcome = 'finished' AND coalesce(json_extract(r.body, '$.flaky'), 0) = 0"
	    " ORDER BY m.path, r.finished_at DESC");
	if (s == NULL) {
		json_decref(rows);
		return -EIO;
	}
	bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	bind_text(s, 3, key);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *path = col_text(s, 0);
		json_t *body;

		if (strcmp(path, last) == 0)
			continue;   /* the newest earlier result of this module only */
		snprintf(last, sizeof(last), "%s", path);
		body = json_loads(col_text(s, 1), 0, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			continue;
		}
		if (json_object_get(body, "reused_from") == NULL)
			json_object_set_new(body, "reused_from", json_string(col_text(s, 2)));
		json_object_set_new(body, "reused", json_true());
		json_array_append_new(rows, json_pack("{s:i, s:s, s:s, s:i, s:f, s:o}",
		    "project_idx", idx, "path", path, "node", "", "attempt", 0, "finished_at",
		    now, "body", body));
	}
	sqlite3_finalize(s);
	json_array_foreach(rows, i, row) {
		int r = merge_result(db, eval_id, row);
		if (r < 0) {
			n = -EIO;
			break;
		}
		n += r;
	}
	json_decref(rows);
	return n;
}

int
store_project_ready(struct store *st, const char *eval_id, int idx, struct store_fetched *f)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	char *w = NULL;
	int n;

	f->reused = 0;
	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	w = f->warnings ? json_dumps(f->warnings, JSON_COMPACT) : xstrdup("[]");
	s = store_prep(db, "UPDATE project SET state = 'ready', digest = ?, warnings = ?,"
	    " commit_sha = ?, reuse_key = ? WHERE eval_id = ? AND idx = ? AND state = 'fetching'");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, f->digest);
	bind_text(s, 2, w);
	bind_text(s, 3, f->commit);
	bind_text(s, 4, f->reuse_key);
	bind_text(s, 5, eval_id);
	sqlite3_bind_int(s, 6, idx);
	if (step_done(db, s) < 0)
		goto fail;
	if (sqlite3_changes(db) == 0) {
		/* Ready (or failed) already, here or by a merge: nothing to redo. */
		sqlite3_finalize(s);
		store_exec(db, "COMMIT");
		free(w);
		return 0;
	}
	sqlite3_finalize(s);
	s = NULL;
	/*
	 * ZIP projects knew their modules at acceptance, git ones learn them now;
	 * what is on disk is the truth (a dropped member is no module).
	 */
	s = store_prep(db, "DELETE FROM module WHERE eval_id = ? AND project_idx = ? AND"
	    " state = 'pending'");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	if (step_done(db, s) < 0)
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	if (insert_modules(db, eval_id, idx, f->modules, f->nmodules) < 0)
		goto fail;
	if (f->reuse && f->reuse_key != NULL) {
		if ((n = reuse_results(db, eval_id, idx, f->reuse_key, f->now)) < 0)
			goto fail;
		f->reused = (size_t)n;
		if (n > 0 && touch_eval(db, eval_id, f->now) < 0)
			goto fail;
	}
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	free(w);
	return 0;
fail:
	sqlite3_finalize(s);
	store_exec(db, "ROLLBACK");
	free(w);
	return -EIO;
}

int
store_project_error(struct store *st, const char *eval_id, int idx, const char *error,
    json_t *warnings, double when)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	char *w = NULL;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	w = warnings ? json_dumps(warnings, JSON_COMPACT) : xstrdup("[]");
	s = store_prep(db, "UPDATE project SET state = 'error', error = ?, warnings = ?"
	    " WHERE eval_id = ? AND idx = ?");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, error);
	bind_text(s, 2, w);
	bind_text(s, 3, eval_id);
	sqlite3_bind_int(s, 4, idx);
	if (step_done(db, s) < 0)
		goto fail;
	sqlite3_finalize(s);
	s = store_prep(db, "DELETE FROM module WHERE eval_id = ? AND project_idx = ? AND"
	    " state != 'done'");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	if (step_done(db, s) < 0)
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	if (touch_eval(db, eval_id, when) < 0 || store_exec(db, "COMMIT") < 0)
		goto fail;
	free(w);
	return 0;
fail:
	sqlite3_finalize(s);
	store_exec(db, "ROLLBACK");
	free(w);
	return -EIO;
}

/* ----------------------------------------------------------- scheduling */

int
store_work_list(struct store *st, struct store_work **out, size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_work *v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (db == NULL)
		return -EIO;
	/* Evaluations with something left to do: fetching, pending or running. */
	s = store_prep(db, "SELECT e.id, e.accepted_by, e.created_at,"
	    " (SELECT count(*) FROM module m JOIN project p ON p.eval_id = m.eval_id AND"
	    "  p.idx = m.project_idx WHERE m.eval_id = e.id AND m.state = 'pending' AND"
	    "  p.state = 'ready'),"
	    " (SELECT count(*) FROM project p WHERE p.eval_id = e.id AND p.state = 'fetching'),"
	    " (SELECT count(*) FROM module m WHERE m.eval_id = e.id AND m.state = 'running')"
	    " FROM evaluation e WHERE EXISTS (SELECT 1 FROM project p WHERE p.eval_id = e.id AND"
	    " p.state = 'fetching') OR EXISTS (SELECT 1 FROM module m WHERE m.eval_id = e.id AND"
	    " m.state != 'done') ORDER BY e.created_at, e.id");
	if (s == NULL)
		return -EIO;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct store_work *w;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		w = &v[cnt++];
		memset(w, 0, sizeof(*w));
		snprintf(w->id, sizeof(w->id), "%s", col_text(s, 0));
		snprintf(w->accepted_by, sizeof(w->accepted_by), "%s", col_text(s, 1));
		w->created_at = sqlite3_column_double(s, 2);
		w->pending = (long)sqlite3_column_int64(s, 3);
		w->fetching = (long)sqlite3_column_int64(s, 4);
		w->running = (long)sqlite3_column_int64(s, 5);
	}
	sqlite3_finalize(s);
	*out = v;
	*n = cnt;
	return 0;
}

int
store_pending_list(struct store *st, const char *eval_id, struct store_pending **out,
    size_t *n, size_t *unready)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_pending *v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	*unready = 0;
	if (db == NULL)
		return -EIO;
	s = store_prep(db, "SELECT count(*) FROM module m JOIN project p ON p.eval_id = m.eval_id"
	    " AND p.idx = m.project_idx WHERE m.eval_id = ? AND m.state = 'pending' AND"
	    " p.state = 'fetching'");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, eval_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		*unready = (size_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	/*
	 * A recorded duration of the same module in the same project content
	 * (any evaluation; the shortest, which is the module's own time in a
	 * shared session rather than a whole interpreter's) beats the estimate
	 * made when the project was fetched; else the mean duration of the
	 * modules of this evaluation that finished so far, a better guess than
	 * counting tests.
	 */
	s = store_prep(db, "SELECT m.project_idx, m.path, m.iname, m.est,"
	    " (SELECT min(r.duration) FROM project q JOIN result r ON r.eval_id = q.eval_id"
	    "  AND r.project_idx = q.idx AND r.path = m.path WHERE q.digest = p.digest),"
	    " (SELECT avg(r.duration) FROM result r WHERE r.eval_id = m.eval_id)"
	    " FROM module m JOIN project p ON p.eval_id = m.eval_id AND p.idx = m.project_idx"
	    " WHERE m.eval_id = ? AND m.state = 'pending' AND p.state = 'ready' AND"
	    " p.digest IS NOT NULL ORDER BY m.project_idx, m.path");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, eval_id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct store_pending *m;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		m = &v[cnt++];
		memset(m, 0, sizeof(*m));
		m->project_idx = sqlite3_column_int(s, 0);
		m->path = xstrdup(col_text(s, 1));
		m->iname = sqlite3_column_type(s, 2) == SQLITE_NULL ? NULL : xstrdup(col_text(s, 2));
		if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
			m->known = 1;
			m->est = sqlite3_column_double(s, 4);
		} else if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
			m->measured = 1;
			m->est = sqlite3_column_double(s, 5);
		} else if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
			m->est = sqlite3_column_double(s, 3);
		}
	}
	sqlite3_finalize(s);
	*out = v;
	*n = cnt;
	return 0;
}

void
store_pending_free(struct store_pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].path);
		free(p[i].iname);
	}
	free(p);
}

int
store_claim_modules(struct store *st, const char *eval_id, const char *node,
    const struct store_pending *const *mods, size_t n, struct store_claim *out)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *q = NULL, *u = NULL;
	double timeout = 0;
	int isolation = 0, r = 0;
	size_t got = 0;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	q = store_prep(db, "SELECT p.project_id, p.digest, m.attempts, e.settings FROM module m"
	    " JOIN project p ON p.eval_id = m.eval_id AND p.idx = m.project_idx"
	    " JOIN evaluation e ON e.id = m.eval_id WHERE m.eval_id = ? AND m.project_idx = ?"
	    " AND m.path = ? AND m.state = 'pending' AND p.state = 'ready' AND"
	    " p.digest IS NOT NULL");
	u = store_prep(db, "UPDATE module SET state = 'running', node = ?, attempts = ?,"
	    " started_at = ?, version = version + 1 WHERE eval_id = ? AND project_idx = ?"
	    " AND path = ?");
	if (q == NULL || u == NULL) {
		r = -EIO;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_claim *c = &out[got];
		sqlite3_reset(q);
		bind_text(q, 1, eval_id);
		sqlite3_bind_int(q, 2, mods[i]->project_idx);
		bind_text(q, 3, mods[i]->path);
		if (sqlite3_step(q) != SQLITE_ROW)
			continue;   /* claimed, finished or failed meanwhile */
		memset(c, 0, sizeof(*c));
		snprintf(c->eval_id, sizeof(c->eval_id), "%s", eval_id);
		c->project_idx = mods[i]->project_idx;
		snprintf(c->project_id, sizeof(c->project_id), "%s", col_text(q, 0));
		snprintf(c->path, sizeof(c->path), "%s", mods[i]->path);
		snprintf(c->digest, sizeof(c->digest), "%s", col_text(q, 1));
		c->attempt = sqlite3_column_int(q, 2) + 1;
		if (got == 0) {
			json_t *set = json_loads(col_text(q, 3), 0, NULL);
			const char *iso = json_string_value(json_object_get(set, "isolation"));
			timeout = json_number_value(json_object_get(set, "module_timeout"));
			isolation = iso != NULL && strcmp(iso, "module") == 0;
			json_decref(set);
		}
		c->module_timeout = timeout;
		c->isolation = isolation;
		sqlite3_reset(u);
		bind_text(u, 1, node);
		sqlite3_bind_int(u, 2, c->attempt);
		sqlite3_bind_double(u, 3, util_now());
		bind_text(u, 4, eval_id);
		sqlite3_bind_int(u, 5, c->project_idx);
		bind_text(u, 6, c->path);
		if (step_done(db, u) < 0) {
			r = -EIO;
			goto out;
		}
		got++;
	}
out:
	sqlite3_finalize(q);
	sqlite3_finalize(u);
	if (r < 0 || store_exec(db, "COMMIT") < 0) {
		store_exec(db, "ROLLBACK");
		return r < 0 ? r : -EIO;
	}
	return (int)got;
}

int
store_running_modules(struct store *st, const struct store_id *ids, size_t nids,
    struct store_claim **out, char (**nodes)[256], size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_claim *v = NULL;
	char (*nv)[256] = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*nodes = NULL;
	*n = 0;
	if (db == NULL)
		return -EIO;
	s = store_prep(db, "SELECT m.eval_id, m.project_idx, p.project_id, m.path, p.digest,"
	    " m.attempts, m.node, m.started_at FROM module m JOIN project p ON"
	    " p.eval_id = m.eval_id AND p.idx = m.project_idx WHERE m.state = 'running' AND"
	    " m.eval_id = ?");
	if (s == NULL)
		return -EIO;
	for (size_t k = 0; k < nids; k++) {
		sqlite3_reset(s);
		bind_text(s, 1, ids[k].id);
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (cnt == cap) {
				cap = cap ? 2 * cap : 16;
				v = xrealloc(v, cap * sizeof(*v));
				nv = xrealloc(nv, cap * sizeof(*nv));
			}
			memset(&v[cnt], 0, sizeof(v[cnt]));
			snprintf(v[cnt].eval_id, sizeof(v[cnt].eval_id), "%s", col_text(s, 0));
			v[cnt].project_idx = sqlite3_column_int(s, 1);
			snprintf(v[cnt].project_id, sizeof(v[cnt].project_id), "%s", col_text(s, 2));
			snprintf(v[cnt].path, sizeof(v[cnt].path), "%s", col_text(s, 3));
			snprintf(v[cnt].digest, sizeof(v[cnt].digest), "%s", col_text(s, 4));
			v[cnt].attempt = sqlite3_column_int(s, 5);
			v[cnt].started_at = sqlite3_column_double(s, 7);
			snprintf(nv[cnt], sizeof(nv[cnt]), "%s", col_text(s, 6));
			cnt++;
		}
	}
	sqlite3_finalize(s);
	*out = v;
	*nodes = nv;
	*n = cnt;
	return 0;
}

int
store_release_module(struct store *st, const struct store_claim *c)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return -EIO;
	/*
	 * Only the claim that was looked at, and only while nothing is recorded
	 * for the module: a result that arrived meanwhile is final, and a newer
	 * claim is not this one.
	 */
	s = store_prep(db, "UPDATE module SET state = 'pending', version = version + 1"
	    " WHERE eval_id = ?1 AND project_idx = ?2 AND path = ?3 AND state = 'running' AND"
	    " attempts = ?4 AND NOT EXISTS (SELECT 1 FROM result r WHERE r.eval_id = ?1 AND"
	    " r.project_idx = ?2 AND r.path = ?3)");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, c->eval_id);
	sqlite3_bind_int(s, 2, c->project_idx);
	bind_text(s, 3, c->path);
	sqlite3_bind_int(s, 4, c->attempt);
	r = step_done(db, s);
	if (r == 0)
		r = sqlite3_changes(db) > 0 ? 1 : 0;
	sqlite3_finalize(s);
	return r;
}


int
store_record_result(struct store *st, const struct store_claim *c, const char *node,
    json_t *result, double finished)
{
	sqlite3 *db = store_db(st);
	json_t *row;
	int r;

	if (db == NULL)
		return -EIO;
	json_object_set_new(result, "node", json_string(node));
	json_object_set_new(result, "attempt", json_integer(c->attempt));
	json_object_set_new(result, "finished_at", json_real(finished));
	row = json_pack("{s:i, s:s, s:s, s:i, s:f, s:O}", "project_idx", c->project_idx,
	    "path", c->path, "node", node, "attempt", c->attempt, "finished_at", finished,
	    "body", result);
	if (row == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0) {
		json_decref(row);
		return -EIO;
	}
	/* The same rule as for results from other nodes. */
	r = merge_result(db, c->eval_id, row);
	json_decref(row);
	if (r < 0)
		goto fail;
	/* A duplicate changes nothing, not even the time of the last event. */
	if (r == 1 && touch_eval(db, c->eval_id, finished) < 0)
		goto fail;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	return r;
fail:
	store_exec(db, "ROLLBACK");
	return -EIO;
}

int
store_requeue_running(struct store *st, const char *node)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return -EIO;
	s = store_prep(db, "UPDATE module SET state = 'pending', version = version + 1"
	    " WHERE state = 'running' AND node = ?");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, node);
	r = step_done(db, s);
	if (r == 0 && sqlite3_changes(db) > 0)
		log_info("store: %d unfinished modules go back to pending", sqlite3_changes(db));
	sqlite3_finalize(s);
	return r;
}

int
store_has_runnable(struct store *st)
{
	sqlite3 *db = store_db(st);

	if (db == NULL)
		return 0;
	return query_long(db, "SELECT EXISTS (SELECT 1 FROM module m JOIN project p ON"
	    " p.eval_id = m.eval_id AND p.idx = m.project_idx WHERE m.state = 'pending' AND"
	    " p.state = 'ready')", NULL) != 0;
}

/* ---------------------------------------------------------- replication */

/*
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
 *  - results: store_result_wins() below.
 */

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

json_t *
store_eval_export(struct store *st, const char *id)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	json_t *doc = NULL, *projects, *modules, *results;

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return NULL;
	s = store_prep(db, "SELECT created_at, kind, accepted_by, settings, has_token,"
	    " last_event_at, upload_digest FROM evaluation WHERE id = ?");
	if (s == NULL)
		goto out;
	bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	{
		json_t *settings = json_loads(col_text(s, 3), 0, NULL);
		doc = json_pack("{s:s, s:f, s:s, s:s, s:o, s:b, s:f, s:s?}", "id", id,
		    "created_at", sqlite3_column_double(s, 0), "kind", col_text(s, 1),
		    "accepted_by", col_text(s, 2), "settings", settings ? settings : json_object(),
		    "has_token", sqlite3_column_int(s, 4), "last_event_at",
		    sqlite3_column_double(s, 5), "upload_digest",
		    sqlite3_column_type(s, 6) == SQLITE_NULL ? NULL : col_text(s, 6));
	}
	sqlite3_finalize(s);
	projects = json_array();
	modules = json_array();
	results = json_array();
	json_object_set_new(doc, "projects", projects);
	json_object_set_new(doc, "modules", modules);
	json_object_set_new(doc, "results", results);

	s = store_prep(db, "SELECT idx, project_id, source, prefix, state, error, warnings,"
	    " digest, commit_sha, reuse_key FROM project WHERE eval_id = ? ORDER BY idx");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *w = json_loads(col_text(s, 6), 0, NULL);
		json_array_append_new(projects, json_pack("{s:i, s:s, s:s, s:s?, s:s, s:s?, s:o,"
		    " s:s?, s:s?, s:s?}", "idx", sqlite3_column_int(s, 0), "project_id", col_text(s, 1),
		    "source", col_text(s, 2), "prefix", sqlite3_column_type(s, 3) == SQLITE_NULL ?
		    NULL : col_text(s, 3), "state", col_text(s, 4), "error",
		    sqlite3_column_type(s, 5) == SQLITE_NULL ? NULL : col_text(s, 5),
		    "warnings", w ? w : json_array(), "digest",
		    sqlite3_column_type(s, 7) == SQLITE_NULL ? NULL : col_text(s, 7),
		    "commit", sqlite3_column_type(s, 8) == SQLITE_NULL ? NULL : col_text(s, 8),
		    "reuse_key", sqlite3_column_type(s, 9) == SQLITE_NULL ? NULL : col_text(s, 9)));
	}
	sqlite3_finalize(s);
	s = store_prep(db, "SELECT project_idx, path, state, node, attempts, version, est, iname"
	    " FROM module WHERE eval_id = ? ORDER BY project_idx, path");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *m = json_pack("{s:i, s:s, s:s, s:s?, s:i, s:i, s:s?}",
		    "project_idx", sqlite3_column_int(s, 0), "path", col_text(s, 1), "state",
		    col_text(s, 2), "node", sqlite3_column_type(s, 3) == SQLITE_NULL ? NULL :
		    col_text(s, 3), "attempts", sqlite3_column_int(s, 4), "version",
		    sqlite3_column_int(s, 5), "iname", sqlite3_column_type(s, 7) == SQLITE_NULL ?
		    NULL : col_text(s, 7));
		if (sqlite3_column_type(s, 6) != SQLITE_NULL)
			json_object_set_new(m, "est", json_real(sqlite3_column_double(s, 6)));
		json_array_append_new(modules, m);
	}
	sqlite3_finalize(s);
	s = store_prep(db, "SELECT project_idx, path, node, attempt, finished_at, body"
	    " FROM result WHERE eval_id = ? ORDER BY project_idx, path");
	if (s == NULL)
		goto fail;
	bind_text(s, 1, id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *body = json_loads(col_text(s, 5), 0, NULL);
		json_array_append_new(results, json_pack("{s:i, s:s, s:s, s:i, s:f, s:o}",
		    "project_idx", sqlite3_column_int(s, 0), "path", col_text(s, 1), "node",
		    col_text(s, 2), "attempt", sqlite3_column_int(s, 3), "finished_at",
		    sqlite3_column_double(s, 4), "body", body ? body : json_object()));
	}
	goto out;
fail:
	json_decref(doc);
	doc = NULL;
out:
	sqlite3_finalize(s);
	store_exec(db, "COMMIT");
	return doc;
}

/* Merge one result row; returns 1 when it changed the store. */
static int
merge_result(sqlite3 *db, const char *id, json_t *r)
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
	s = store_prep(db, "SELECT attempt, node FROM result WHERE eval_id = ? AND"
	    " project_idx = ? AND path = ?");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	bind_text(s, 3, path);
	if (sqlite3_step(s) == SQLITE_ROW) {
		have = 1;
		changed = store_result_wins(attempt, node, sqlite3_column_int(s, 0),
		    col_text(s, 1));
	}
	sqlite3_finalize(s);
	if (have && !changed)
		return 0;
	text = json_dumps(body, JSON_COMPACT);
	s = store_prep(db, "INSERT OR REPLACE INTO result(eval_id, project_idx, path, node,"
	    " attempt, finished_at, outcome, passed, failed, skipped, duration, body)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL || text == NULL) {
		sqlite3_finalize(s);
		free(text);
		return -EIO;
	}
	bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	bind_text(s, 3, path);
	bind_text(s, 4, node);
	sqlite3_bind_int(s, 5, attempt);
	sqlite3_bind_double(s, 6, json_number_value(json_object_get(r, "finished_at")));
	bind_text(s, 7, json_string_value(json_object_get(body, "outcome")));
	sqlite3_bind_int64(s, 8, json_integer_value(json_object_get(body, "passed")));
	sqlite3_bind_int64(s, 9, json_integer_value(json_object_get(body, "failed")));
	sqlite3_bind_int64(s, 10, json_integer_value(json_object_get(body, "skipped")));
	sqlite3_bind_double(s, 11, json_number_value(json_object_get(body, "duration")));
	bind_text(s, 12, text);
	changed = step_done(db, s) < 0 ? -EIO : 1;
	sqlite3_finalize(s);
	free(text);
	if (changed < 0)
		return changed;
	s = store_prep(db, "INSERT INTO module(eval_id, project_idx, path, state, node, attempts)"
	    " VALUES (?1, ?2, ?3, 'done', ?4, ?5) ON CONFLICT DO UPDATE SET state = 'done'");
	if (s == NULL)
		return -EIO;
	bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, idx);
	bind_text(s, 3, path);
	bind_text(s, 4, node);
	sqlite3_bind_int(s, 5, attempt);
	if (step_done(db, s) < 0)
		changed = -EIO;
	sqlite3_finalize(s);
	return changed;
}

int
store_eval_merge(struct store *st, json_t *doc)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	const char *id = json_string_value(json_object_get(doc, "id"));
	json_t *v, *settings = json_object_get(doc, "settings");
	char *settings_text = NULL;
	size_t i;
	int changed = 0, r;

	if (id == NULL || !util_is_uuid(id) || !json_is_object(settings) ||
	    json_string_value(json_object_get(doc, "kind")) == NULL ||
	    json_string_value(json_object_get(doc, "accepted_by")) == NULL)
		return -EINVAL;
	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	settings_text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
	s = store_prep(db, "INSERT OR IGNORE INTO evaluation(id, seq, created_at, last_event_at,"
	    " kind, accepted_by, settings, has_token, upload_digest) VALUES (?, (SELECT"
	    " coalesce(max(seq), 0) + 1 FROM evaluation), ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL || settings_text == NULL)
		goto fail;
	bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, json_number_value(json_object_get(doc, "created_at")));
	sqlite3_bind_double(s, 3, json_number_value(json_object_get(doc, "last_event_at")));
	bind_text(s, 4, json_string_value(json_object_get(doc, "kind")));
	bind_text(s, 5, json_string_value(json_object_get(doc, "accepted_by")));
	bind_text(s, 6, settings_text);
	sqlite3_bind_int(s, 7, json_is_true(json_object_get(doc, "has_token")));
	bind_text(s, 8, json_string_value(json_object_get(doc, "upload_digest")));
	if (step_done(db, s) < 0)
		goto fail;
	changed += sqlite3_changes(db);
	sqlite3_finalize(s);
	s = NULL;

	json_array_foreach(json_object_get(doc, "projects"), i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		const char *pid = json_string_value(json_object_get(v, "project_id"));
		const char *source = json_string_value(json_object_get(v, "source"));
		int idx = (int)json_integer_value(json_object_get(v, "idx"));
		char *w;

		if (state == NULL || pid == NULL || source == NULL)
			continue;
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
		bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, idx);
		bind_text(s, 3, pid);
		bind_text(s, 4, source);
		bind_text(s, 5, json_string_value(json_object_get(v, "prefix")));
		bind_text(s, 6, state);
		bind_text(s, 7, json_string_value(json_object_get(v, "error")));
		bind_text(s, 8, w);
		sqlite3_bind_int(s, 9, project_state_rank(state));
		bind_text(s, 10, json_string_value(json_object_get(v, "digest")));
		bind_text(s, 11, json_string_value(json_object_get(v, "commit")));
		bind_text(s, 12, json_string_value(json_object_get(v, "reuse_key")));
		r = step_done(db, s);
		free(w);
		if (r < 0)
			goto fail;
		r = sqlite3_changes(db);
		changed += r;
		sqlite3_finalize(s);
		s = NULL;
		if (r > 0 && strcmp(state, "ready") == 0) {
			/*
			 * The project just became ready: its modules are the ones its
			 * coordinator found on disk (in this document), not the ones
			 * planned from the upload.
			 */
			s = store_prep(db, "DELETE FROM module WHERE eval_id = ? AND project_idx = ?"
			    " AND state = 'pending'");
			if (s == NULL)
				goto fail;
			bind_text(s, 1, id);
			sqlite3_bind_int(s, 2, idx);
			if (step_done(db, s) < 0)
				goto fail;
			sqlite3_finalize(s);
			s = NULL;
		}
		if (strcmp(state, "error") == 0) {
			s = store_prep(db, "DELETE FROM module WHERE eval_id = ? AND project_idx = ?"
			    " AND state != 'done'");
			if (s == NULL)
				goto fail;
			bind_text(s, 1, id);
			sqlite3_bind_int(s, 2, idx);
			if (step_done(db, s) < 0)
				goto fail;
			changed += sqlite3_changes(db);
			sqlite3_finalize(s);
			s = NULL;
		}
	}
	json_array_foreach(json_object_get(doc, "results"), i, v) {
		r = merge_result(db, id, v);
		if (r < 0)
			goto fail;
		changed += r;
	}
	json_array_foreach(json_object_get(doc, "modules"), i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		const char *path = json_string_value(json_object_get(v, "path"));

		if (state == NULL || path == NULL || strcmp(state, "done") == 0)
			continue;
		s = store_prep(db, "INSERT INTO module(eval_id, project_idx, path, state, node,"
		    " attempts, version, est, iname) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9"
		    " WHERE NOT EXISTS (SELECT 1 FROM project p WHERE p.eval_id = ?1 AND"
		    " p.idx = ?2 AND p.state = 'error') ON CONFLICT DO UPDATE SET state = ?4,"
		    " node = ?5, attempts = ?6, version = ?7, est = coalesce(est, ?8),"
		    " iname = coalesce(iname, ?9) WHERE state != 'done' AND version < ?7");
		if (s == NULL)
			goto fail;
		bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, (int)json_integer_value(json_object_get(v, "project_idx")));
		bind_text(s, 3, path);
		bind_text(s, 4, state);
		bind_text(s, 5, json_string_value(json_object_get(v, "node")));
		sqlite3_bind_int(s, 6, (int)json_integer_value(json_object_get(v, "attempts")));
		sqlite3_bind_int(s, 7, (int)json_integer_value(json_object_get(v, "version")));
		if (json_is_number(json_object_get(v, "est")))
			sqlite3_bind_double(s, 8, json_number_value(json_object_get(v, "est")));
		else
			sqlite3_bind_null(s, 8);
		bind_text(s, 9, json_string_value(json_object_get(v, "iname")));
		if (step_done(db, s) < 0)
			goto fail;
		changed += sqlite3_changes(db);
		sqlite3_finalize(s);
		s = NULL;
	}
	if (touch_eval(db, id, json_number_value(json_object_get(doc, "last_event_at"))) < 0)
		goto fail;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	free(settings_text);
	return changed;
fail:
	sqlite3_finalize(s);
	store_exec(db, "ROLLBACK");
	free(settings_text);
	return -EIO;
}

json_t *
store_eval_digests(struct store *st)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	json_t *out = json_object();

	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return out;
	/*
	 * A digest over what merges: project states, module states and the
	 * (node, attempt) of each result. Equal digests: nothing to exchange.
	 */
	s = store_prep(db, "SELECT e.id,"
	    " (SELECT group_concat(x, '|') FROM (SELECT p.idx || ':' || p.state AS x FROM project p"
	    "   WHERE p.eval_id = e.id ORDER BY p.idx)),"
	    " (SELECT group_concat(x, '|') FROM (SELECT m.project_idx || ':' || m.path || ':' ||"
	    "   (CASE m.state WHEN 'done' THEN 'done' ELSE m.state || ':' || m.version END)"
	    "   AS x FROM module m WHERE m.eval_id = e.id"
	    "   ORDER BY m.project_idx, m.path)),"
	    " (SELECT group_concat(x, '|') FROM (SELECT r.project_idx || ':' || r.path || ':' ||"
	    "   r.node || ':' || r.attempt AS x FROM result r WHERE r.eval_id = e.id"
	    "   ORDER BY r.project_idx, r.path))"
	    " FROM evaluation e ORDER BY e.created_at, e.id");
	if (s != NULL) {
		while (sqlite3_step(s) == SQLITE_ROW) {
			char *text = xasprintf("%s#%s#%s", col_text(s, 1), col_text(s, 2),
			    col_text(s, 3));
			char hex[SHA256_HEX_LEN];
			util_sha256_hex(text, strlen(text), hex);
			json_object_set_new(out, col_text(s, 0), json_string(hex));
			free(text);
		}
		sqlite3_finalize(s);
	}
	store_exec(db, "COMMIT");
	return out;
}
