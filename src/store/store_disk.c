/*
 * store_disk.c - what the disk budget and retention (src/engine/gc_budget.c)
 * ask the store about files: the digests unfinished evaluations still need,
 * and those whose evaluations all finished before a given time.
 *
 * An evaluation names its files by digest in three places: its projects'
 * blobs (project.digest), its upload (evaluation.upload_digest) and the
 * instructor's tests (settings.instructor_tests_archive). "Unfinished" is
 * the store's own test of work left (the evaluation_active index: modules
 * pending or running, projects to fetch), so the list costs the active
 * evaluations only. A finished evaluation's time is its last event
 * (last_event_at: its last result, project error or cancel).
 *
 * Any thread (each has its own connection).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store_int.h"

/* The active index's condition, written as the index has it so SQLite uses it. */
#define STORE_DISK_ACTIVE "e.pend_ready + e.pend_unready + e.running + e.fetching > 0"

/* Every digest an evaluation e (where e satisfies w) names, as rows (d, eid). */
#define STORE_DISK_NAMED(w) \
	"(SELECT p.digest AS d, e.id AS eid FROM evaluation e JOIN project p ON" \
	"  p.eval_id = e.id WHERE p.digest IS NOT NULL" w \
	" UNION ALL SELECT e.upload_digest, e.id FROM evaluation e WHERE" \
	"  e.upload_digest IS NOT NULL" w \
	" UNION ALL SELECT json_extract(e.settings, '$.instructor_tests_archive'), e.id" \
	"  FROM evaluation e WHERE json_extract(e.settings, '$.instructor_tests_archive')" \
	"  IS NOT NULL" w ")"

/* The digests of rows of sql (one text column, binds cutoff as ?1 when >= 0). */
static int
store_disk_list(struct store *st, const char *sql, double cutoff, struct store_digest **out,
    size_t *n)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s;
	struct store_digest *v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (db == NULL || (s = store_prep(db, sql)) == NULL)
		return -EIO;
	if (cutoff >= 0)
		sqlite3_bind_double(s, 1, cutoff);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = store_col_text(s, 0);
		/* only a real digest names a file (rows come from other nodes too) */
		if (strlen(d) != 64)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		snprintf(v[cnt++].d, sizeof(v[0].d), "%s", d);
	}
	store_finish(s);
	*out = v;
	*n = cnt;
	return 0;
}

int
store_disk_pinned(struct store *st, struct store_digest **out, size_t *n)
{
	return store_disk_list(st, "SELECT DISTINCT d FROM "
	    STORE_DISK_NAMED(" AND " STORE_DISK_ACTIVE), -1, out, n);
}

int
store_disk_expired(struct store *st, double cutoff, struct store_digest **out, size_t *n)
{
	/* a digest goes only when every evaluation naming it is finished and old */
	return store_disk_list(st, "SELECT u.d FROM " STORE_DISK_NAMED("") " u JOIN evaluation"
	    " e ON e.id = u.eid GROUP BY u.d HAVING max(" STORE_DISK_ACTIVE ") = 0 AND"
	    " max(e.last_event_at) < ?1", cutoff < 0 ? 0 : cutoff, out, n);
}
