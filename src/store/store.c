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
#include "store/store_int.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/score.h"
#include "core/util.h"

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
 * What a row's digest covers: what merges (store_sync.c), so that equal
 * digests mean nothing to exchange. r is the row ("NEW", "OLD", a table).
 */
#define STORE_P_HASH(r) "mt_hash('p', " r ".idx, " r ".state)"
#define STORE_M_HASH(r) "mt_hash('m', " r ".project_idx, " r ".path, CASE " r ".state" \
	" WHEN 'done' THEN 'done' ELSE " r ".state || ':' || " r ".version END)"
#define STORE_R_HASH(r) "mt_hash('r', " r ".project_idx, " r ".path, " r ".node, " \
	r ".attempt)"
/* Fold digest h of a row r into its bucket and its evaluation; log it when ours. */
#define STORE_PATH(r) r ".path"
#define STORE_NO_PATH(r) "''"
#define STORE_SYNC_APPLY(r, idx, path, h) \
	"INSERT INTO sync_bucket(eval_id, b, dig) VALUES (" r ".eval_id, mt_bucket(" r "." \
	idx ", " path "), " h ") ON CONFLICT DO UPDATE SET dig = mt_xor(dig, excluded.dig);" \
	"UPDATE evaluation SET dig = mt_xor(dig, " h "), ver = ver + 1 WHERE id = " \
	r ".eval_id;" \
	"INSERT INTO sync_change(eval_id, project_idx, path) SELECT " r ".eval_id, " r "." \
	idx ", " path " WHERE mt_local();"
/*
 * The three triggers of table t: insert, update of the replicated columns
 * cols (old digest out, new in), delete.
 */
#define STORE_SYNC_TRIGGERS(t, cols, idx, P, H) \
	"CREATE TRIGGER " t "_sync_ins AFTER INSERT ON " t " BEGIN " \
	STORE_SYNC_APPLY("NEW", idx, P("NEW"), H("NEW")) " END;" \
	"CREATE TRIGGER " t "_sync_upd AFTER UPDATE OF " cols " ON " t " BEGIN " \
	STORE_SYNC_APPLY("NEW", idx, P("NEW"), "mt_xor(" H("OLD") ", " H("NEW") ")") " END;" \
	"CREATE TRIGGER " t "_sync_del AFTER DELETE ON " t " BEGIN " \
	STORE_SYNC_APPLY("OLD", idx, P("OLD"), H("OLD")) " END;"

/*
 * The work left per evaluation, kept by triggers as the rows change (also by
 * merges): pending modules of ready projects and of the others, running
 * modules, projects still fetching, finished modules and their durations;
 * per project its pending modules, which move between the first two when its
 * state changes. A claim reads these instead of counting rows.
 */
#define STORE_WORK_READY(r) "coalesce((SELECT state = 'ready' FROM project WHERE" \
	" eval_id = " r ".eval_id AND idx = " r ".project_idx), 0)"
#define STORE_WORK_MODULE(r, sign) \
	"UPDATE project SET n_pending = n_pending " sign " (" r ".state = 'pending')" \
	" WHERE eval_id = " r ".eval_id AND idx = " r ".project_idx;" \
	"UPDATE evaluation SET" \
	" pend_ready = pend_ready " sign " (" r ".state = 'pending' AND " STORE_WORK_READY(r) ")," \
	" pend_unready = pend_unready " sign " (" r ".state = 'pending' AND NOT " \
	STORE_WORK_READY(r) ")," \
	" running = running " sign " (" r ".state = 'running') WHERE id = " r ".eval_id;"
#define STORE_WORK_MODULE_TRIGGERS \
	"CREATE TRIGGER module_work_ins AFTER INSERT ON module BEGIN " \
	STORE_WORK_MODULE("NEW", "+") " END;" \
	"CREATE TRIGGER module_work_upd AFTER UPDATE OF state ON module" \
	" WHEN OLD.state IS NOT NEW.state BEGIN " \
	STORE_WORK_MODULE("OLD", "-") STORE_WORK_MODULE("NEW", "+") " END;" \
	"CREATE TRIGGER module_work_del AFTER DELETE ON module BEGIN " \
	STORE_WORK_MODULE("OLD", "-") " END;"
#define STORE_WORK_OTHER_TRIGGERS \
	"CREATE TRIGGER project_work_ins AFTER INSERT ON project BEGIN" \
	" UPDATE evaluation SET fetching = fetching + (NEW.state = 'fetching')" \
	" WHERE id = NEW.eval_id; END;" \
	"CREATE TRIGGER project_work_upd AFTER UPDATE OF state ON project" \
	" WHEN OLD.state IS NOT NEW.state BEGIN" \
	" UPDATE evaluation SET" \
	" fetching = fetching - (OLD.state = 'fetching') + (NEW.state = 'fetching')," \
	" pend_ready = pend_ready + NEW.n_pending * ((NEW.state = 'ready') -" \
	"  (OLD.state = 'ready'))," \
	" pend_unready = pend_unready - NEW.n_pending * ((NEW.state = 'ready') -" \
	"  (OLD.state = 'ready')) WHERE id = NEW.eval_id; END;" \
	"CREATE TRIGGER project_work_del AFTER DELETE ON project BEGIN" \
	" UPDATE evaluation SET fetching = fetching - (OLD.state = 'fetching')" \
	" WHERE id = OLD.eval_id; END;" \
	"CREATE TRIGGER result_work_ins AFTER INSERT ON result BEGIN" \
	" UPDATE evaluation SET done_n = done_n + 1, done_dur = done_dur + NEW.duration" \
	" WHERE id = NEW.eval_id; END;" \
	"CREATE TRIGGER result_work_upd AFTER UPDATE OF duration ON result BEGIN" \
	" UPDATE evaluation SET done_dur = done_dur - OLD.duration + NEW.duration" \
	" WHERE id = NEW.eval_id; END;" \
	"CREATE TRIGGER result_work_del AFTER DELETE ON result BEGIN" \
	" UPDATE evaluation SET done_n = done_n - 1, done_dur = done_dur - OLD.duration" \
	" WHERE id = OLD.eval_id; END;"

/*
 * GET /stats as running totals, kept by triggers: per node (its address; ""
 * for reused results, which no node ran; "*" for the whole network's
 * projects and evaluations) the modules it ran and their passed and failed
 * tests, and, counted by reference, the project sources and evaluations it
 * touched. Nothing is subtracted when rows go away: totals never go down.
 */
#define STORE_STAT_SOURCE(r) "coalesce((SELECT source FROM project WHERE" \
	" eval_id = " r ".eval_id AND idx = " r ".project_idx), '')"
/*
 * "INSERT OR IGNORE" would not do in a trigger: an outer statement's conflict
 * policy (an upsert's) overrides the trigger's. Hence the NOT EXISTS.
 */
#define STORE_STAT_NODE(node) "INSERT INTO stat_node(node) SELECT " node " WHERE NOT EXISTS" \
	" (SELECT 1 FROM stat_node WHERE node = " node ");"
#define STORE_STAT_REF_ADD(node, kind, key, created) \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT " node ", '" kind "', " key \
	", 0, " created " WHERE NOT EXISTS (SELECT 1 FROM stat_ref WHERE node = " node \
	" AND kind = '" kind "' AND key = " key ");" \
	"UPDATE stat_ref SET n = n + 1 WHERE node = " node " AND kind = '" kind "' AND" \
	" key = " key ";"
#define STORE_STAT_REF_SUB(node, kind, key) \
	"UPDATE stat_ref SET n = n - 1 WHERE node = " node " AND kind = '" kind "' AND" \
	" key = " key ";" \
	"DELETE FROM stat_ref WHERE node = " node " AND kind = '" kind "' AND key = " key \
	" AND n <= 0;"
#define STORE_STAT_RESULT_ADD(r) \
	STORE_STAT_NODE(r ".node") \
	"UPDATE stat_node SET modules = modules + 1, passed = passed + " r ".passed," \
	" failed = failed + " r ".failed WHERE node = " r ".node;" \
	STORE_STAT_REF_ADD(r ".node", "source", STORE_STAT_SOURCE(r), "0") \
	STORE_STAT_REF_ADD(r ".node", "eval", r ".eval_id", \
	    "(SELECT created_at FROM evaluation WHERE id = " r ".eval_id)")
#define STORE_STAT_RESULT_SUB(r) \
	"UPDATE stat_node SET modules = modules - 1, passed = passed - " r ".passed," \
	" failed = failed - " r ".failed WHERE node = " r ".node;" \
	STORE_STAT_REF_SUB(r ".node", "source", STORE_STAT_SOURCE(r)) \
	STORE_STAT_REF_SUB(r ".node", "eval", r ".eval_id")
#define STORE_STAT_TABLES \
	"CREATE TABLE stat_node (node TEXT PRIMARY KEY, modules INTEGER NOT NULL DEFAULT 0," \
	"  passed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0," \
	"  projects INTEGER NOT NULL DEFAULT 0, evaluations INTEGER NOT NULL DEFAULT 0)" \
	"  WITHOUT ROWID;" \
	"CREATE TABLE stat_ref (node TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL," \
	"  n INTEGER NOT NULL, created REAL, PRIMARY KEY (node, kind, key)) WITHOUT ROWID;" \
	"CREATE TRIGGER stat_ref_ins AFTER INSERT ON stat_ref BEGIN " \
	STORE_STAT_NODE("NEW.node") \
	" UPDATE stat_node SET projects = projects + (NEW.kind = 'source')," \
	"  evaluations = evaluations + (NEW.kind = 'eval') WHERE node = NEW.node; END;" \
	"CREATE TRIGGER stat_ref_del AFTER DELETE ON stat_ref BEGIN" \
	" UPDATE stat_node SET projects = projects - (OLD.kind = 'source')," \
	"  evaluations = evaluations - (OLD.kind = 'eval') WHERE node = OLD.node; END;"
#define STORE_STAT_BACKFILL \
	"INSERT INTO stat_node(node, modules, passed, failed) SELECT node, count(*)," \
	"  sum(passed), sum(failed) FROM result GROUP BY node;" \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT r.node, 'source'," \
	"  coalesce(p.source, ''), count(*), 0 FROM result r LEFT JOIN project p ON" \
	"  p.eval_id = r.eval_id AND p.idx = r.project_idx GROUP BY 1, 3;" \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT r.node, 'eval', r.eval_id," \
	"  count(*), e.created_at FROM result r JOIN evaluation e ON e.id = r.eval_id" \
	"  GROUP BY r.node, r.eval_id;" \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT accepted_by, 'eval', id, 1," \
	"  created_at FROM evaluation WHERE true ON CONFLICT DO UPDATE SET n = n + 1;" \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT '*', 'eval', id, 1," \
	"  created_at FROM evaluation;" \
	"INSERT INTO stat_ref(node, kind, key, n, created) SELECT '*', 'source', source," \
	"  count(*), 0 FROM project GROUP BY source;"
#define STORE_STAT_TRIGGERS \
	"CREATE TRIGGER result_stat_ins AFTER INSERT ON result BEGIN " \
	STORE_STAT_RESULT_ADD("NEW") " END;" \
	"CREATE TRIGGER result_stat_upd AFTER UPDATE OF node, passed, failed ON result BEGIN " \
	STORE_STAT_RESULT_SUB("OLD") STORE_STAT_RESULT_ADD("NEW") " END;" \
	"CREATE TRIGGER project_stat_ins AFTER INSERT ON project BEGIN " \
	STORE_STAT_REF_ADD("'*'", "source", "NEW.source", "0") " END;" \
	"CREATE TRIGGER evaluation_stat_ins AFTER INSERT ON evaluation BEGIN " \
	STORE_STAT_REF_ADD("'*'", "eval", "NEW.id", "NEW.created_at") \
	STORE_STAT_REF_ADD("NEW.accepted_by", "eval", "NEW.id", "NEW.created_at") " END;"

/*
 * What GET /evaluation/<id>/events streams, logged by triggers as rows
 * change here (locally or by a merge): a module starting to run, a module's
 * result recorded (again, when a better one replaces it), a project failing.
 * seq numbers one evaluation's events on this node; a module's tests are
 * read from its result when the event is sent (store_events.c).
 */
#define STORE_EVENT(kind, r, idx, path) \
	"INSERT INTO eval_event(eval_id, seq, kind, project_idx, path) VALUES (" r \
	".eval_id, coalesce((SELECT max(seq) FROM eval_event WHERE eval_id = " r \
	".eval_id), 0) + 1, '" kind "', " r "." idx ", " path ");"
#define STORE_EVENT_TRIGGERS \
	"CREATE TABLE eval_event (eval_id TEXT NOT NULL, seq INTEGER NOT NULL," \
	"  kind TEXT NOT NULL, project_idx INTEGER NOT NULL, path TEXT NOT NULL," \
	"  PRIMARY KEY (eval_id, seq)) WITHOUT ROWID;" \
	"CREATE TRIGGER module_event_ins AFTER INSERT ON module WHEN NEW.state = 'running'" \
	" BEGIN " STORE_EVENT("module_claimed", "NEW", "project_idx", "NEW.path") " END;" \
	"CREATE TRIGGER module_event_upd AFTER UPDATE OF state, node ON module" \
	" WHEN NEW.state = 'running' AND (OLD.state IS NOT 'running' OR OLD.node IS NOT" \
	" NEW.node) BEGIN " STORE_EVENT("module_claimed", "NEW", "project_idx", "NEW.path") \
	" END;" \
	"CREATE TRIGGER result_event_ins AFTER INSERT ON result BEGIN " \
	STORE_EVENT("module_done", "NEW", "project_idx", "NEW.path") " END;" \
	"CREATE TRIGGER result_event_upd AFTER UPDATE OF node, attempt, outcome, body ON result" \
	" BEGIN " STORE_EVENT("module_done", "NEW", "project_idx", "NEW.path") " END;" \
	"CREATE TRIGGER project_event_upd AFTER UPDATE OF state ON project" \
	" WHEN NEW.state = 'error' AND OLD.state IS NOT 'error' BEGIN " \
	STORE_EVENT("project_error", "NEW", "idx", "''") " END;" \
	"CREATE TRIGGER project_event_ins AFTER INSERT ON project WHEN NEW.state = 'error'" \
	" BEGIN " STORE_EVENT("project_error", "NEW", "idx", "''") " END;"

/*
 * Cancel and delete (store_cancel.c). An evaluation's cancel is its time
 * (the earliest wins everywhere), replicated like a row of its own in bucket
 * mt_bucket(-1, ''): its digest joins that bucket and the evaluation's, and a
 * local cancel is logged for the push as the change (-1, ''). A deleted
 * evaluation leaves a tombstone (id, time, its share of GET /stats "all")
 * that replicates and keeps its rows from coming back; the blobs and folders
 * of its digests wait in file_gc until no evaluation uses them (the engine
 * removes them, src/engine/gc.c).
 */
#define STORE_C_HASH(v) "(CASE WHEN " v " IS NULL THEN 0 ELSE mt_hash('c', " v ") END)"
#define STORE_CANCEL_TABLES \
	"ALTER TABLE evaluation ADD COLUMN cancelled_at REAL;" \
	"CREATE TABLE eval_tomb (id TEXT PRIMARY KEY, deleted_at REAL NOT NULL," \
	"  share TEXT NOT NULL) WITHOUT ROWID;" \
	"CREATE TABLE file_gc (digest TEXT PRIMARY KEY, since REAL NOT NULL) WITHOUT ROWID;"
#define STORE_CANCEL_TRIGGER \
	"CREATE TRIGGER evaluation_cancel_sync AFTER UPDATE OF cancelled_at ON evaluation" \
	" WHEN OLD.cancelled_at IS NOT NEW.cancelled_at BEGIN" \
	" INSERT INTO sync_bucket(eval_id, b, dig) VALUES (NEW.id, mt_bucket(-1, ''), mt_xor(" \
	STORE_C_HASH("OLD.cancelled_at") ", " STORE_C_HASH("NEW.cancelled_at") "))" \
	" ON CONFLICT DO UPDATE SET dig = mt_xor(dig, excluded.dig);" \
	" UPDATE evaluation SET dig = mt_xor(dig, mt_xor(" STORE_C_HASH("OLD.cancelled_at") ", " \
	STORE_C_HASH("NEW.cancelled_at") ")), ver = ver + 1 WHERE id = NEW.id;" \
	" INSERT INTO sync_change(eval_id, project_idx, path) SELECT NEW.id, -1, ''" \
	" WHERE mt_local(); END;"

/*
 * Migrations, one per schema version after the first (PRAGMA user_version
 * says which ran). A database written by an older release gains what the
 * newer code needs; each step runs once, in a transaction with the version.
 */
static const char *const store_migrations[][8] = {
	/* 2: the scheduler's estimate and import name per module; history by digest */
	{ "ALTER TABLE module ADD COLUMN est REAL;"
	  "ALTER TABLE module ADD COLUMN iname TEXT;"
	  "CREATE INDEX IF NOT EXISTS project_digest ON project(digest);" },
	/* 3: the commit a git project was graded at */
	{ "ALTER TABLE project ADD COLUMN commit_sha TEXT;" },
	/* 4: what makes two runs of a project the same run (reuse) */
	{ "ALTER TABLE project ADD COLUMN reuse_key TEXT;"
	  "CREATE INDEX IF NOT EXISTS project_reuse ON project(reuse_key);" },
	/* 5: replication by change: row digests by bucket, the change log (store_sync.c) */
	{ "ALTER TABLE evaluation ADD COLUMN dig INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE evaluation ADD COLUMN ver INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE sync_bucket (eval_id TEXT NOT NULL, b INTEGER NOT NULL,"
	"  dig INTEGER NOT NULL, PRIMARY KEY (eval_id, b)) WITHOUT ROWID;"
	"CREATE TABLE sync_change (seq INTEGER PRIMARY KEY, eval_id TEXT NOT NULL,"
	"  project_idx INTEGER NOT NULL, path TEXT NOT NULL);"
	"CREATE INDEX project_bucket ON project(eval_id, mt_bucket(idx, ''));"
	"CREATE INDEX module_bucket ON module(eval_id, mt_bucket(project_idx, path));"
	"CREATE INDEX result_bucket ON result(eval_id, mt_bucket(project_idx, path));",
	  STORE_SYNC_TRIGGERS("project", "state, error, warnings, digest, commit_sha, reuse_key",
	      "idx", STORE_NO_PATH, STORE_P_HASH),
	  STORE_SYNC_TRIGGERS("module", "state, node, attempts, version, est, iname",
	      "project_idx", STORE_PATH, STORE_M_HASH),
	  STORE_SYNC_TRIGGERS("result", "node, attempt, finished_at, outcome, body",
	      "project_idx", STORE_PATH, STORE_R_HASH),
	  "INSERT INTO sync_bucket(eval_id, b, dig) SELECT eval_id, b, mt_xor_agg(h) FROM ("
	"  SELECT eval_id, mt_bucket(idx, '') AS b, " STORE_P_HASH("project") " AS h FROM project"
	"  UNION ALL SELECT eval_id, mt_bucket(project_idx, path), " STORE_M_HASH("module")
	"  FROM module UNION ALL SELECT eval_id, mt_bucket(project_idx, path), "
	STORE_R_HASH("result") " FROM result) GROUP BY eval_id, b;"
	"UPDATE evaluation SET dig = coalesce((SELECT mt_xor_agg(dig) FROM sync_bucket"
	"  WHERE eval_id = evaluation.id), 0);" },
	/* 6: the work left and GET /stats as counters (claims and answers that do not scan) */
	{ "ALTER TABLE evaluation ADD COLUMN pend_ready INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE evaluation ADD COLUMN pend_unready INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE evaluation ADD COLUMN running INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE evaluation ADD COLUMN fetching INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE evaluation ADD COLUMN done_n INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE evaluation ADD COLUMN done_dur REAL NOT NULL DEFAULT 0;"
	  "ALTER TABLE project ADD COLUMN n_pending INTEGER NOT NULL DEFAULT 0;"
	  "ALTER TABLE module ADD COLUMN known INTEGER NOT NULL DEFAULT 0;"
	  "CREATE INDEX module_head ON module(eval_id, state, known, est);"
	  "CREATE INDEX module_next ON module(eval_id, state, known, project_idx, path);"
	  "CREATE INDEX evaluation_active ON evaluation(created_at, id)"
	  "  WHERE pend_ready + pend_unready + running + fetching > 0;",
	  STORE_WORK_MODULE_TRIGGERS,
	  STORE_WORK_OTHER_TRIGGERS,
	  "UPDATE project SET n_pending = (SELECT count(*) FROM module m WHERE"
	  "  m.eval_id = project.eval_id AND m.project_idx = project.idx AND m.state = 'pending');"
	  "UPDATE evaluation SET"
	  " fetching = (SELECT count(*) FROM project p WHERE p.eval_id = evaluation.id AND"
	  "  p.state = 'fetching'),"
	  " pend_ready = (SELECT coalesce(sum(n_pending), 0) FROM project p WHERE"
	  "  p.eval_id = evaluation.id AND p.state = 'ready'),"
	  " pend_unready = (SELECT count(*) FROM module m LEFT JOIN project p ON"
	  "  p.eval_id = m.eval_id AND p.idx = m.project_idx WHERE m.eval_id = evaluation.id"
	  "  AND m.state = 'pending' AND coalesce(p.state, '') != 'ready'),"
	  " running = (SELECT count(*) FROM module m WHERE m.eval_id = evaluation.id AND"
	  "  m.state = 'running'),"
	  " done_n = (SELECT count(*) FROM result r WHERE r.eval_id = evaluation.id),"
	  " done_dur = (SELECT coalesce(sum(duration), 0) FROM result r WHERE"
	  "  r.eval_id = evaluation.id);",
	  STORE_STAT_TABLES, STORE_STAT_BACKFILL, STORE_STAT_TRIGGERS },
	/* 7: the event log of GET /evaluation/<id>/events (from now on; none backfilled) */
	{ STORE_EVENT_TRIGGERS },
	/* 8: cancel (replicated), tombstones of deleted evaluations, files to remove */
	{ STORE_CANCEL_TABLES, STORE_CANCEL_TRIGGER },
	/* 9: the ready project with the most pending modules, for the scheduler's lead */
	{ "CREATE INDEX project_pending ON project(eval_id, state, n_pending DESC, idx);" },
};
#define STORE_VERSION (1 + (int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

/*
 * Prepared statements, kept per thread for its connection (compiling one,
 * with the schema's triggers, costs more than running it): store_prep hands
 * out a cached statement that is not in use, store_finish gives it back. A
 * thread that uses a second store (tests do) prepares afresh for that one.
 */
#define STORE_STMT_CACHE 160
struct store_stmt_cache {
	sqlite3 *db;
	size_t n;
	struct {
		uint64_t hash;
		char *sql;
		sqlite3_stmt *s;
		int busy;
	} e[STORE_STMT_CACHE];
};
static _Thread_local struct store_stmt_cache *store_tl_stmts;

static uint64_t
store_sql_hash(const char *sql)
{
	uint64_t h = 14695981039346656037ULL;

	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

/* Close a connection of this thread, with its cached statements. */
static void
store_conn_free(void *p)
{
	struct store_stmt_cache *c = store_tl_stmts;

	if (c != NULL && c->db == p) {
		for (size_t i = 0; i < c->n; i++) {
			sqlite3_finalize(c->e[i].s);
			free(c->e[i].sql);
		}
		free(c);
		store_tl_stmts = NULL;
	}
	sqlite3_close_v2(p);
}

/* The calling thread's connection, opened on first use; NULL on failure. */
sqlite3 *
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
	if (store_sync_register(db) < 0) {
		log_error("store: cannot register the replication functions: %s",
		    sqlite3_errmsg(db));
		sqlite3_close_v2(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	/*
	 * In WAL mode NORMAL keeps every commit through a crash of the process
	 * (kill -9, the fault model), syncing only at checkpoints; an accepted
	 * evaluation, the 201's promise, is synced at once (store_eval_create).
	 */
	sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	/*
	 * Every thread has a connection: a small page cache each (512 KiB, not
	 * SQLite's 2 MiB) bounds the node's memory; the OS caches the file.
	 */
	sqlite3_exec(db, "PRAGMA cache_size=-512;", NULL, NULL, NULL);
	pthread_setspecific(st->key, db);
	if (store_tl_stmts == NULL) {
		store_tl_stmts = xcalloc(1, sizeof(*store_tl_stmts));
		store_tl_stmts->db = db;
	}
	return db;
}

/* Run one migration's statements (a row of store_migrations) in order. */
static int
store_migrate_step(sqlite3 *db, const char *const *sql, char **msg)
{
	for (size_t i = 0; i < 8 && sql[i] != NULL; i++)
		if (sqlite3_exec(db, sql[i], NULL, NULL, msg) != SQLITE_OK)
			return -EIO;
	return 0;
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
		    store_migrate_step(db, store_migrations[version - 1], &msg) == 0 &&
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

/*
 * A statement inside a transaction keeps a journal of the pages it changes,
 * to undo itself alone; a result's insert and its triggers change more than
 * SQLite's 64 KiB, which then spilled to a temporary file (26 writes per
 * module). Statement journals are a few dozen pages: they stay in memory
 * (sorts and temporary tables still spill as SQLite decides). Set before
 * SQLite starts; when it has started already (another store open), it is.
 */
static void
store_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1);
}

int
store_open(const char *path, struct store **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct store *st = xcalloc(1, sizeof(*st));
	sqlite3 *db;
	char *msg = NULL;

	pthread_once(&once, store_configure);

	st->path = xstrdup(path);
	if (pthread_key_create(&st->key, store_conn_free) != 0) {
		free(st->path);
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->cache_lock, NULL);
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
		store_conn_free(db);
	}
	pthread_key_delete(st->key);
	store_read_cache_free(st);
	pthread_mutex_destroy(&st->cache_lock);
	free(st->path);
	free(st);
}

sqlite3_stmt *
store_prep(sqlite3 *db, const char *sql)
{
	struct store_stmt_cache *c = store_tl_stmts;
	sqlite3_stmt *s = NULL;
	uint64_t h = 0;

	if (c != NULL && c->db == db) {
		h = store_sql_hash(sql);
		for (size_t i = 0; i < c->n; i++) {
			if (c->e[i].hash != h || c->e[i].busy || strcmp(c->e[i].sql, sql) != 0)
				continue;
			c->e[i].busy = 1;
			return c->e[i].s;
		}
	}
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_error("store: %s: %s", sqlite3_errmsg(db), sql);
		sqlite3_finalize(s);
		return NULL;
	}
	if (c != NULL && c->db == db && c->n < STORE_STMT_CACHE) {
		c->e[c->n].hash = h;
		c->e[c->n].sql = xstrdup(sql);
		c->e[c->n].s = s;
		c->e[c->n].busy = 1;
		c->n++;
	}
	return s;
}

void
store_finish(sqlite3_stmt *s)
{
	struct store_stmt_cache *c = store_tl_stmts;

	if (s == NULL)
		return;
	if (c != NULL && c->db == sqlite3_db_handle(s)) {
		for (size_t i = 0; i < c->n; i++) {
			if (c->e[i].s != s)
				continue;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			c->e[i].busy = 0;
			return;
		}
	}
	sqlite3_finalize(s);
}

int
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

void
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

const char *
store_col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? (const char *)t : "";
}

/* Run a one-row-or-none write; 0 or -EIO. */
int
store_step_done(sqlite3 *db, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("store: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

/* One integer from a query with an optional text parameter. */
long
store_query_long(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *s = store_prep(db, sql);
	long v = 0;

	if (s == NULL)
		return 0;
	if (param != NULL)
		store_bind_text(s, 1, param);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(s, 0);
	store_finish(s);
	return v;
}

int
store_drop_modules(sqlite3 *db, const char *eval_id, int idx, int unfinished)
{
	sqlite3_stmt *s = store_prep(db, unfinished ?
	    "DELETE FROM module WHERE eval_id = ? AND project_idx = ? AND state != 'done'" :
	    "DELETE FROM module WHERE eval_id = ? AND project_idx = ? AND state = 'pending'");
	int r;

	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	r = store_step_done(db, s);
	store_finish(s);
	return r < 0 ? r : sqlite3_changes(db);
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
		store_bind_text(s, 1, eval_id);
		sqlite3_bind_int(s, 2, idx);
		store_bind_text(s, 3, mods[i].path);
		if (mods[i].est > 0)
			sqlite3_bind_double(s, 4, mods[i].est);
		else
			sqlite3_bind_null(s, 4);
		store_bind_text(s, 5, mods[i].iname);
		r = store_step_done(db, s);
	}
	store_finish(s);
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
	if (store_exec(db, "PRAGMA synchronous=FULL") < 0 || store_exec(db, "BEGIN IMMEDIATE") < 0) {
		store_exec(db, "PRAGMA synchronous=NORMAL");
		return -EIO;
	}
	settings_text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
	s = store_prep(db, "INSERT INTO evaluation(id, seq, created_at, last_event_at, kind,"
	    " accepted_by, settings, has_token, upload_digest) VALUES (?, (SELECT"
	    " coalesce(max(seq), 0) + 1 FROM evaluation), ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL || settings_text == NULL)
		goto fail;
	store_bind_text(s, 1, id);
	sqlite3_bind_double(s, 2, created);
	sqlite3_bind_double(s, 3, created);
	store_bind_text(s, 4, kind);
	store_bind_text(s, 5, accepted_by);
	store_bind_text(s, 6, settings_text);
	sqlite3_bind_int(s, 7, has_token);
	store_bind_text(s, 8, upload_digest);
	if (store_step_done(db, s) < 0)
		goto fail;
	store_finish(s);
	s = store_prep(db, "INSERT INTO project(eval_id, idx, project_id, source, prefix,"
	    " state) VALUES (?, ?, ?, ?, ?, 'fetching')");
	if (s == NULL)
		goto fail;
	for (size_t i = 0; i < nprojects; i++) {
		sqlite3_reset(s);
		store_bind_text(s, 1, id);
		sqlite3_bind_int(s, 2, (int)i);
		store_bind_text(s, 3, projects[i].project_id);
		store_bind_text(s, 4, projects[i].source);
		store_bind_text(s, 5, projects[i].prefix);
		if (store_step_done(db, s) < 0)
			goto fail;
		if (insert_module_paths(db, id, (int)i, projects[i].modules,
		    projects[i].nmodules) < 0)
			goto fail;
	}
	store_finish(s);
	s = NULL;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	store_exec(db, "PRAGMA synchronous=NORMAL");
	free(settings_text);
	return 0;
fail:
	store_finish(s);
	store_exec(db, "ROLLBACK");
	store_exec(db, "PRAGMA synchronous=NORMAL");
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
	store_bind_text(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		out = json_loads(store_col_text(s, 0), 0, NULL);
	store_finish(s);
	return out;
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
	    " WHERE p.state = 'fetching' AND e.id = ? AND e.cancelled_at IS NULL ORDER BY p.idx");
	if (s == NULL)
		return -EIO;
	for (size_t k = 0; k < nids; k++) {
		sqlite3_reset(s);
		store_bind_text(s, 1, ids[k].id);
		while (sqlite3_step(s) == SQLITE_ROW) {
			struct store_fetch_job *j;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			j = &v[cnt++];
			memset(j, 0, sizeof(*j));
			snprintf(j->eval_id, sizeof(j->eval_id), "%s", store_col_text(s, 0));
			j->idx = sqlite3_column_int(s, 1);
			j->kind = xstrdup(store_col_text(s, 2));
			j->project_id = xstrdup(store_col_text(s, 3));
			j->source = xstrdup(store_col_text(s, 4));
			j->prefix = xstrdup(store_col_text(s, 5));
			j->upload_digest = xstrdup(store_col_text(s, 6));
			j->has_token = sqlite3_column_int(s, 7);
		}
	}
	store_finish(s);
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

int
store_touch_eval(sqlite3 *db, const char *eval_id, double t)
{
	sqlite3_stmt *s = store_prep(db, "UPDATE evaluation SET last_event_at ="
	    " max(last_event_at, ?) WHERE id = ?");
	int r;

	if (s == NULL)
		return -EIO;
	sqlite3_bind_double(s, 1, t);
	store_bind_text(s, 2, eval_id);
	r = store_step_done(db, s);
	store_finish(s);
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
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	if (sqlite3_step(s) == SQLITE_ROW)
		r = sqlite3_column_int(s, 0);
	store_finish(s);
	return r;
}

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
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	store_bind_text(s, 3, key);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *path = store_col_text(s, 0);
		json_t *body;

		if (strcmp(path, last) == 0)
			continue;   /* the newest earlier result of this module only */
		snprintf(last, sizeof(last), "%s", path);
		body = json_loads(store_col_text(s, 1), 0, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			continue;
		}
		if (json_object_get(body, "reused_from") == NULL)
			json_object_set_new(body, "reused_from", json_string(store_col_text(s, 2)));
		json_object_set_new(body, "reused", json_true());
		json_array_append_new(rows, json_pack("{s:i, s:s, s:s, s:i, s:f, s:o}",
		    "project_idx", idx, "path", path, "node", "", "attempt", 0, "finished_at",
		    now, "body", body));
	}
	store_finish(s);
	json_array_foreach(rows, i, row) {
		int r = store_sync_merge_result(db, eval_id, row);
		if (r < 0) {
			n = -EIO;
			break;
		}
		n += r;
	}
	json_decref(rows);
	return n;
}

/*
 * A recorded duration of the same module in the same project content (any
 * evaluation; the shortest, which is the module's own time in a shared
 * session rather than a whole interpreter's) beats the estimate made from
 * its tests: found once, when the project becomes ready, and kept with the
 * module as known. Inside the caller's transaction.
 */
static int
known_durations(sqlite3 *db, const char *eval_id, int idx, const char *digest)
{
	sqlite3_stmt *s = store_prep(db, "UPDATE module SET est = h.d, known = 1 FROM"
	    " (SELECT m2.path AS path, min(r.duration) AS d FROM module m2"
	    "  JOIN project q ON q.digest = ?3 AND NOT (q.eval_id = ?1 AND q.idx = ?2)"
	    "  JOIN result r ON r.eval_id = q.eval_id AND r.project_idx = q.idx AND"
	    "  r.path = m2.path WHERE m2.eval_id = ?1 AND m2.project_idx = ?2"
	    "  GROUP BY m2.path) AS h"
	    " WHERE module.eval_id = ?1 AND module.project_idx = ?2 AND module.path = h.path");
	int r;

	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, idx);
	store_bind_text(s, 3, digest);
	r = store_step_done(db, s);
	store_finish(s);
	return r;
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
	store_bind_text(s, 1, f->digest);
	store_bind_text(s, 2, w);
	store_bind_text(s, 3, f->commit);
	store_bind_text(s, 4, f->reuse_key);
	store_bind_text(s, 5, eval_id);
	sqlite3_bind_int(s, 6, idx);
	if (store_step_done(db, s) < 0)
		goto fail;
	if (sqlite3_changes(db) == 0) {
		/* Ready (or failed) already, here or by a merge: nothing to redo. */
		store_finish(s);
		store_exec(db, "COMMIT");
		free(w);
		return 0;
	}
	n = 1;
	store_finish(s);
	s = NULL;
	/*
	 * ZIP projects knew their modules at acceptance, git ones learn them now;
	 * what is on disk is the truth (a dropped member is no module).
	 */
	if (store_drop_modules(db, eval_id, idx, 0) < 0)
		goto fail;
	if (insert_modules(db, eval_id, idx, f->modules, f->nmodules) < 0 ||
	    known_durations(db, eval_id, idx, f->digest) < 0)
		goto fail;
	if (f->reuse && f->reuse_key != NULL) {
		int reused = reuse_results(db, eval_id, idx, f->reuse_key, f->now);

		if (reused < 0)
			goto fail;
		f->reused = (size_t)reused;
		if (reused > 0 && store_touch_eval(db, eval_id, f->now) < 0)
			goto fail;
	}
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	free(w);
	return n;
fail:
	store_finish(s);
	store_exec(db, "ROLLBACK");
	free(w);
	return -EIO;
}

/* The project's error (sql: the UPDATE, which may narrow the rows it takes). */
static int
project_error(struct store *st, const char *sql, const char *eval_id, int idx,
    const char *error, json_t *warnings, double when)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	char *w = NULL;

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	w = warnings ? json_dumps(warnings, JSON_COMPACT) : xstrdup("[]");
	s = store_prep(db, sql);
	if (s == NULL)
		goto fail;
	store_bind_text(s, 1, error);
	store_bind_text(s, 2, w);
	store_bind_text(s, 3, eval_id);
	sqlite3_bind_int(s, 4, idx);
	if (store_step_done(db, s) < 0)
		goto fail;
	store_finish(s);
	s = NULL;
	if (sqlite3_changes(db) == 0) {         /* not this project's state to change */
		store_exec(db, "COMMIT");
		free(w);
		return 0;
	}
	if (store_drop_modules(db, eval_id, idx, 1) < 0)
		goto fail;
	if (store_touch_eval(db, eval_id, when) < 0 || store_exec(db, "COMMIT") < 0)
		goto fail;
	free(w);
	return 0;
fail:
	store_finish(s);
	store_exec(db, "ROLLBACK");
	free(w);
	return -EIO;
}

#define STORE_PROJECT_ERROR_SQL \
	"UPDATE project SET state = 'error', error = ?1, warnings = ?2 WHERE eval_id = ?3" \
	" AND idx = ?4"

int
store_project_error(struct store *st, const char *eval_id, int idx, const char *error,
    json_t *warnings, double when)
{
	return project_error(st, STORE_PROJECT_ERROR_SQL, eval_id, idx, error, warnings, when);
}

int
store_project_fetch_failed(struct store *st, const char *eval_id, int idx, const char *error,
    json_t *warnings, double when)
{
	return project_error(st, STORE_PROJECT_ERROR_SQL " AND state = 'fetching'", eval_id, idx,
	    error, warnings, when);
}

/* ----------------------------------------------------------- scheduling */

/* The state of a module given back (not finished): pending, or cancelled with its evaluation. */
#define STORE_GIVEN_BACK(id) "(CASE WHEN (SELECT cancelled_at FROM evaluation WHERE id = " \
	id ") IS NULL THEN 'pending' ELSE 'cancelled' END)"

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
	s = store_prep(db, "SELECT id, accepted_by, created_at, pend_ready, fetching, running,"
	    " cancelled_at IS NOT NULL FROM evaluation WHERE pend_ready + pend_unready + running"
	    " + fetching > 0 ORDER BY created_at, id");
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
		snprintf(w->id, sizeof(w->id), "%s", store_col_text(s, 0));
		snprintf(w->accepted_by, sizeof(w->accepted_by), "%s", store_col_text(s, 1));
		w->created_at = sqlite3_column_double(s, 2);
		w->pending = (long)sqlite3_column_int64(s, 3);
		w->fetching = (long)sqlite3_column_int64(s, 4);
		w->running = (long)sqlite3_column_int64(s, 5);
		w->cancelled = sqlite3_column_int(s, 6);
	}
	store_finish(s);
	*out = v;
	*n = cnt;
	return 0;
}

/* Append the rows of s (project_idx, path, iname, est, known, n_pending) to *v. */
static void
pending_rows(sqlite3_stmt *s, double mean, struct store_pending **v, size_t *cnt, size_t *cap)
{
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct store_pending *m;
		if (*cnt == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		m = &(*v)[(*cnt)++];
		memset(m, 0, sizeof(*m));
		m->project_idx = sqlite3_column_int(s, 0);
		m->path = xstrdup(store_col_text(s, 1));
		m->iname = sqlite3_column_type(s, 2) == SQLITE_NULL ? NULL :
		    xstrdup(store_col_text(s, 2));
		m->project_pending = sqlite3_column_int64(s, 5);
		if (sqlite3_column_int(s, 4)) {
			m->known = 1;
			m->est = sqlite3_column_double(s, 3);
		} else if (mean >= 0) {
			m->measured = 1;
			m->est = mean;
		} else if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
			m->est = sqlite3_column_double(s, 3);
		}
	}
}

#define PENDING_COLS "SELECT m.project_idx, m.path, m.iname, m.est, m.known, p.n_pending" \
	" FROM module m"
#define PENDING_READY " JOIN project p ON p.eval_id = m.eval_id AND p.idx = m.project_idx" \
	" WHERE m.eval_id = ?1 AND m.state = 'pending' AND p.state = 'ready'"

int
store_pending_summary(struct store *st, const char *eval_id, struct store_pending_summary *out)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	size_t cap = 0;
	/*
	 * The modules that may come first in the scheduler's order (longest
	 * first): the longest of those with a recorded duration; of the others,
	 * which all weigh this evaluation's mean once one module finished, the
	 * first by project and path, and before that the longest guess and the
	 * first without one (the scheduler weighs it at its default); and the
	 * first of the project with the most pending modules, which leads among
	 * equals. Each an indexed lookup, whatever the evaluation's size (the
	 * guesses are sorted only until the first module finishes).
	 */
	static const char *const lead_sql[] = {
		PENDING_COLS PENDING_READY " AND m.known = 1"
		" ORDER BY m.est DESC, m.project_idx, m.path LIMIT 1",
		PENDING_COLS PENDING_READY " AND m.known = 0"
		" ORDER BY m.project_idx, m.path LIMIT 1",
		PENDING_COLS PENDING_READY " AND m.known = 0"
		" ORDER BY m.est DESC, m.project_idx, m.path LIMIT 1",
		PENDING_COLS PENDING_READY " AND m.known = 0 AND m.est IS NULL"
		" ORDER BY m.project_idx, m.path LIMIT 1",
		PENDING_COLS PENDING_READY " AND m.project_idx = (SELECT idx FROM project"
		"  WHERE eval_id = ?1 AND state = 'ready' AND n_pending > 0"
		"  ORDER BY n_pending DESC, idx LIMIT 1)"   /* sched_cmp's order among equals */
		" ORDER BY m.path LIMIT 1",
	};

	memset(out, 0, sizeof(*out));
	out->mean = -1;
	if (db == NULL || store_exec(db, "BEGIN") < 0)
		return -EIO;
	s = store_prep(db, "SELECT pend_ready, pend_unready, done_n, done_dur"
	    " FROM evaluation WHERE id = ?");
	if (s == NULL) {
		store_exec(db, "COMMIT");
		return -EIO;
	}
	store_bind_text(s, 1, eval_id);
	if (sqlite3_step(s) == SQLITE_ROW) {
		out->ready = sqlite3_column_int64(s, 0);
		out->unready = sqlite3_column_int64(s, 1);
		if (sqlite3_column_int64(s, 2) > 0)
			out->mean = sqlite3_column_double(s, 3) / (double)sqlite3_column_int64(s, 2);
	}
	store_finish(s);
	for (int i = 0; out->ready > 0 && i < (int)(sizeof(lead_sql) / sizeof(lead_sql[0])); i++) {
		if ((i == 1 && out->mean < 0) || ((i == 2 || i == 3) && out->mean >= 0))
			continue;
		if ((s = store_prep(db, lead_sql[i])) == NULL)
			break;
		store_bind_text(s, 1, eval_id);
		pending_rows(s, out->mean, &out->lead, &out->nlead, &cap);
		store_finish(s);
	}
	store_exec(db, "COMMIT");
	return 0;
}

void
store_pending_summary_free(struct store_pending_summary *s)
{
	store_pending_free(s->lead, s->nlead);
	s->lead = NULL;
	s->nlead = 0;
}

int
store_pending_project(struct store *st, const char *eval_id, int project_idx, double mean,
    struct store_pending **out, size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (db == NULL || (s = store_prep(db, PENDING_COLS PENDING_READY
	    " AND m.project_idx = ?2 ORDER BY m.path")) == NULL)
		return -EIO;
	store_bind_text(s, 1, eval_id);
	sqlite3_bind_int(s, 2, project_idx);
	pending_rows(s, mean, out, n, &cap);
	store_finish(s);
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
	    " p.digest IS NOT NULL AND e.cancelled_at IS NULL");
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
		store_bind_text(q, 1, eval_id);
		sqlite3_bind_int(q, 2, mods[i]->project_idx);
		store_bind_text(q, 3, mods[i]->path);
		if (sqlite3_step(q) != SQLITE_ROW)
			continue;   /* claimed, finished or failed meanwhile */
		memset(c, 0, sizeof(*c));
		snprintf(c->eval_id, sizeof(c->eval_id), "%s", eval_id);
		c->project_idx = mods[i]->project_idx;
		snprintf(c->project_id, sizeof(c->project_id), "%s", store_col_text(q, 0));
		snprintf(c->path, sizeof(c->path), "%s", mods[i]->path);
		snprintf(c->digest, sizeof(c->digest), "%s", store_col_text(q, 1));
		c->attempt = sqlite3_column_int(q, 2) + 1;
		if (got == 0) {
			json_t *set = json_loads(store_col_text(q, 3), 0, NULL);
			const char *iso = json_string_value(json_object_get(set, "isolation"));
			timeout = json_number_value(json_object_get(set, "module_timeout"));
			isolation = iso != NULL && strcmp(iso, "module") == 0;
			json_decref(set);
		}
		c->module_timeout = timeout;
		c->isolation = isolation;
		sqlite3_reset(u);
		store_bind_text(u, 1, node);
		sqlite3_bind_int(u, 2, c->attempt);
		sqlite3_bind_double(u, 3, util_now());
		store_bind_text(u, 4, eval_id);
		sqlite3_bind_int(u, 5, c->project_idx);
		store_bind_text(u, 6, c->path);
		if (store_step_done(db, u) < 0) {
			r = -EIO;
			goto out;
		}
		got++;
	}
out:
	store_finish(q);
	store_finish(u);
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
		store_bind_text(s, 1, ids[k].id);
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (cnt == cap) {
				cap = cap ? 2 * cap : 16;
				v = xrealloc(v, cap * sizeof(*v));
				nv = xrealloc(nv, cap * sizeof(*nv));
			}
			memset(&v[cnt], 0, sizeof(v[cnt]));
			snprintf(v[cnt].eval_id, sizeof(v[cnt].eval_id), "%s", store_col_text(s, 0));
			v[cnt].project_idx = sqlite3_column_int(s, 1);
			snprintf(v[cnt].project_id, sizeof(v[cnt].project_id), "%s", store_col_text(s, 2));
			snprintf(v[cnt].path, sizeof(v[cnt].path), "%s", store_col_text(s, 3));
			snprintf(v[cnt].digest, sizeof(v[cnt].digest), "%s", store_col_text(s, 4));
			v[cnt].attempt = sqlite3_column_int(s, 5);
			v[cnt].started_at = sqlite3_column_double(s, 7);
			snprintf(nv[cnt], sizeof(nv[cnt]), "%s", store_col_text(s, 6));
			cnt++;
		}
	}
	store_finish(s);
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
	 * claim is not this one. In a cancelled evaluation it is cancelled.
	 */
	s = store_prep(db, "UPDATE module SET state = " STORE_GIVEN_BACK("?1") ","
	    " version = version + 1 WHERE eval_id = ?1 AND project_idx = ?2 AND path = ?3 AND state = 'running' AND"
	    " attempts = ?4 AND NOT EXISTS (SELECT 1 FROM result r WHERE r.eval_id = ?1 AND"
	    " r.project_idx = ?2 AND r.path = ?3)");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, c->eval_id);
	sqlite3_bind_int(s, 2, c->project_idx);
	store_bind_text(s, 3, c->path);
	sqlite3_bind_int(s, 4, c->attempt);
	r = store_step_done(db, s);
	if (r == 0)
		r = sqlite3_changes(db) > 0 ? 1 : 0;
	store_finish(s);
	return r;
}

/* One result inside the caller's transaction: 1 recorded, 0 a duplicate, -EIO. */
static int
store_record_in(sqlite3 *db, const struct store_claim *c, const char *node, json_t *result,
    double finished)
{
	json_t *row;
	int r;

	json_object_set_new(result, "node", json_string(node));
	json_object_set_new(result, "attempt", json_integer(c->attempt));
	json_object_set_new(result, "finished_at", json_real(finished));
	row = json_pack("{s:i, s:s, s:s, s:i, s:f, s:O}", "project_idx", c->project_idx,
	    "path", c->path, "node", node, "attempt", c->attempt, "finished_at", finished,
	    "body", result);
	if (row == NULL)
		return -EIO;
	/* The same rule as for results from other nodes. */
	r = store_sync_merge_result(db, c->eval_id, row);
	json_decref(row);
	/* A duplicate changes nothing, not even the time of the last event. */
	if (r == 1 && store_touch_eval(db, c->eval_id, finished) < 0)
		return -EIO;
	return r < 0 ? -EIO : r;
}

int
store_record_result(struct store *st, const struct store_claim *c, const char *node,
    json_t *result, double finished)
{
	int r;

	return store_record_results(st, &c, node, &result, 1, finished, &r) < 0 ? -EIO : r;
}

int
store_record_results(struct store *st, const struct store_claim *const *c, const char *node,
    json_t *const *results, size_t n, double finished, int *out)
{
	sqlite3 *db = store_db(st);

	if (db == NULL || store_exec(db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	for (size_t i = 0; i < n; i++)
		if ((out[i] = store_record_in(db, c[i], node, results[i], finished)) < 0)
			goto fail;
	if (store_exec(db, "COMMIT") < 0)
		goto fail;
	return 0;
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
	s = store_prep(db, "UPDATE module SET state = " STORE_GIVEN_BACK("module.eval_id") ","
	    " version = version + 1 WHERE state = 'running' AND node = ?");
	if (s == NULL)
		return -EIO;
	store_bind_text(s, 1, node);
	r = store_step_done(db, s);
	if (r == 0 && sqlite3_changes(db) > 0)
		log_info("store: %d unfinished modules go back to pending", sqlite3_changes(db));
	store_finish(s);
	return r;
}

int
store_has_runnable(struct store *st)
{
	sqlite3 *db = store_db(st);

	if (db == NULL)
		return 0;
	return store_query_long(db, "SELECT EXISTS (SELECT 1 FROM evaluation WHERE"
	    " pend_ready > 0)", NULL) != 0;
}
