/*
 * test_store_cancel.c - cancel and delete in the store: the answers of a
 * cancel, the rule a cancel and a finish settle by (a recorded result wins,
 * also one that arrives after the cancel; a module the cancel stopped counts
 * nowhere), a cancel carried by anti-entropy and settled the same way on
 * both sides of a partition, and tombstones: a deleted evaluation never comes
 * back by a merge or a late result, keeps its share of GET /stats "all", and
 * leaves its files' digests for the engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store_helpers.h"

#define EVAL_ID "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b01"
#define OTHER_ID "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b02"
#define DIGEST "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define UPLOAD "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"

struct fresh {
	char dir[64];
	char *path;
	struct store *st;
};

static void
fresh_open(struct fresh *f)
{
	snprintf(f->dir, sizeof(f->dir), "%s/meshtest-cancel-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/t.db", f->dir);
	assert_int_equal(store_open(f->path, &f->st), 0);
}

static void
fresh_close(struct fresh *f)
{
	store_close(f->st);
	util_rm_rf(f->dir);
	free(f->path);
}

static json_t *
result(long p, long f)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:[]}", "outcome", "finished", "passed",
	    (json_int_t)p, "failed", (json_int_t)f, "skipped", (json_int_t)0, "duration", 0.5,
	    "tests");
}

/* Evaluation id: one ready project "p" (source zip:p, blob digest) with n modules. */
static void
make_eval(struct store *st, const char *id, const char *digest, size_t n)
{
	struct store_project_new p = { .project_id = "p", .source = "zip:p" };
	char **paths = xcalloc(n, sizeof(*paths));
	json_t *settings = json_object();

	assert_int_equal(store_eval_create(st, id, 5.0, "zip", "n1:1", settings, 0, UPLOAD,
	    &p, 1), 0);
	json_decref(settings);
	for (size_t i = 0; i < n; i++)
		paths[i] = xasprintf("tests/test_m%zu.py", i + 1);
	assert_int_equal(helper_ready(st, id, 0, digest, (const char *const *)paths, n), 0);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Claim one module for node: the claim is in *c. */
static void
claim(struct store *st, const char *node, struct store_claim *c)
{
	assert_int_equal(helper_claim(st, node, c), 1);
}

static void
record(struct store *st, const struct store_claim *c, const char *node, long p, long f,
    int want)
{
	json_t *r = result(p, f);

	assert_int_equal(store_record_result(st, c, node, r, 20.0), want);
	json_decref(r);
}

static json_int_t
num(json_t *doc, const char *key)
{
	return json_integer_value(json_object_get(doc, key));
}

/* status, executed, in_progress, pending, cancelled, passed, failed of the status document. */
static void
check_status(struct store *st, const char *status, long exe, long run, long pend, long canc,
    long passed, long failed)
{
	json_t *doc = store_eval_status(st, EVAL_ID, 30.0);

	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), status);
	assert_int_equal(num(doc, "executed"), exe);
	assert_int_equal(num(doc, "in_progress"), run);
	assert_int_equal(num(doc, "pending"), pend);
	assert_int_equal(num(doc, "cancelled"), canc);
	assert_int_equal(num(doc, "passed"), passed);
	assert_int_equal(num(doc, "failed"), failed);
	json_decref(doc);
}

/* The state of one module in the /results document. */
static const char *
module_state(json_t *res, const char *path)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(json_array_get(json_object_get(res, "projects"), 0),
	    "modules"), i, m) {
		if (strcmp(json_string_value(json_object_get(m, "path")), path) != 0)
			continue;
		if (json_object_get(m, "outcome") != NULL)
			return "done";
		return json_string_value(json_object_get(m, "state"));
	}
	return "absent";
}

/* The digests the triggers keep, recomputed from the rows (the cancel too): 0 mismatches. */
static long
digest_mismatches(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long bad = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(store_sync_register(db), 0);
	assert_int_equal(sqlite3_prepare_v2(db,
	    "WITH rows(eval_id, b, h) AS ("
	    " SELECT eval_id, mt_bucket(idx, ''), mt_hash('p', idx, state) FROM project"
	    " UNION ALL SELECT eval_id, mt_bucket(project_idx, path), mt_hash('m', project_idx,"
	    "  path, CASE state WHEN 'done' THEN 'done' ELSE state || ':' || version END)"
	    "  FROM module"
	    " UNION ALL SELECT eval_id, mt_bucket(project_idx, path), mt_hash('r', project_idx,"
	    "  path, node, attempt) FROM result"
	    " UNION ALL SELECT id, mt_bucket(-1, ''), mt_hash('c', cancelled_at) FROM evaluation"
	    "  WHERE cancelled_at IS NOT NULL),"
	    " want(eval_id, b, dig) AS (SELECT eval_id, b, mt_xor_agg(h) FROM rows"
	    "  GROUP BY eval_id, b)"
	    " SELECT (SELECT count(*) FROM want w LEFT JOIN sync_bucket s ON s.eval_id = w.eval_id"
	    "  AND s.b = w.b WHERE coalesce(s.dig, 0) != w.dig)"
	    " + (SELECT count(*) FROM sync_bucket s LEFT JOIN want w ON s.eval_id = w.eval_id"
	    "  AND s.b = w.b WHERE s.dig != 0 AND w.dig IS NULL)"
	    " + (SELECT count(*) FROM evaluation e WHERE e.dig != coalesce((SELECT"
	    "  mt_xor_agg(dig) FROM sync_bucket s WHERE s.eval_id = e.id), 0))", -1, &s, NULL),
	    SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		bad = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return bad;
}

/* Merge into to the buckets of EVAL_ID that differ from from's; how many differed. */
static size_t
pull_buckets(struct store *from, struct store *to)
{
	uint64_t da[STORE_SYNC_BUCKETS], db[STORE_SYNC_BUCKETS];
	double la, lb;
	int diff[STORE_SYNC_BUCKETS];
	size_t n = 0;
	json_t *doc;

	assert_int_equal(store_sync_buckets(from, EVAL_ID, da, &la), 0);
	assert_int_equal(store_sync_buckets(to, EVAL_ID, db, &lb), 0);
	if (la > lb)    /* as the replica takes the later last event */
		assert_int_equal(store_sync_last_event(to, EVAL_ID, la), 0);
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++)
		if (da[i] != db[i])
			diff[n++] = i;
	if (n == 0)
		return 0;
	doc = store_sync_export_buckets(from, EVAL_ID, diff, n);
	assert_non_null(doc);

	assert_true(store_sync_merge(to, doc) >= 0);
	json_decref(doc);
	return n;
}

/* Anti-entropy both ways until nothing differs (a few rounds at most). */
static void
exchange(struct store *a, struct store *b)
{
	for (int rounds = 0;; rounds++) {
		size_t ab = pull_buckets(a, b), ba = pull_buckets(b, a);

		if (ab == 0 && ba == 0)
			break;
		assert_true(rounds < 4);
	}
}

static void
assert_same_digests(struct store *a, struct store *b)
{
	json_t *da = store_sync_digests(a), *db = store_sync_digests(b);

	assert_true(json_equal(da, db));
	json_decref(da);
	json_decref(db);
}

/* ------------------------------------------------------------------ tests */

static void
test_cancel_answers(void **state)
{
	struct fresh a;
	struct store_claim c;

	(void)state;
	fresh_open(&a);
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 10.0), -ENOENT);
	make_eval(a.st, EVAL_ID, DIGEST, 2);
	assert_int_equal(store_eval_stopped(a.st, EVAL_ID), 0);
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 10.0), 0);
	assert_int_equal(store_eval_stopped(a.st, EVAL_ID), 1);
	assert_int_equal(store_eval_tombstoned(a.st, EVAL_ID), 0);
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 11.0), -EALREADY);

	/* a finished evaluation has nothing left to stop */
	make_eval(a.st, OTHER_ID, DIGEST, 1);
	assert_int_equal(helper_claim(a.st, "n1:1", &c), 1);
	assert_string_equal(c.eval_id, OTHER_ID);
	record(a.st, &c, "n1:1", 1, 0, 1);
	assert_int_equal(store_eval_cancel(a.st, OTHER_ID, 12.0), -EPERM);
	assert_int_equal(store_eval_stopped(a.st, OTHER_ID), 0);
	assert_int_equal(digest_mismatches(a.path), 0);
	fresh_close(&a);
}

static void
test_cancel_rule(void **state)
{
	struct fresh a, b;
	struct store_claim c1, c2, cb;
	struct store_work *w = NULL;
	size_t nw = 0;
	json_t *res, *doc;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	make_eval(a.st, EVAL_ID, DIGEST, 4);
	/* m1 finished, m2 runs, m3 and m4 wait */
	claim(a.st, "n1:1", &c1);
	assert_string_equal(c1.path, "tests/test_m1.py");
	record(a.st, &c1, "n1:1", 3, 1, 1);
	claim(a.st, "n2:1", &c2);
	assert_string_equal(c2.path, "tests/test_m2.py");
	/* b has the evaluation as it was before the cancel */
	doc = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, doc) > 0);
	json_decref(doc);

	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 21.0), 0);
	/* before the coordinator settles: pending modules count as cancelled, none starts */
	check_status(a.st, "running", 1, 1, 0, 2, 3, 1);
	assert_int_equal(helper_claim(a.st, "n1:1", &cb), 0);
	assert_int_equal(store_work_list(a.st, &w, &nw), 0);
	assert_int_equal(nw, 1);
	assert_int_equal(w[0].cancelled, 1);
	free(w);
	assert_int_equal(store_cancel_settle(a.st, EVAL_ID, 22.0), 2);
	assert_int_equal(store_cancel_settle(a.st, EVAL_ID, 22.5), 0);
	check_status(a.st, "running", 1, 1, 0, 2, 3, 1);
	/* m2's node stopped it: given back, it is cancelled; nothing runs any more */
	assert_int_equal(store_release_module(a.st, &c2), 1);
	check_status(a.st, "cancelled", 1, 0, 0, 3, 3, 1);
	assert_int_equal(store_work_list(a.st, &w, &nw), 0);
	assert_int_equal(nw, 0);
	free(w);
	res = store_eval_results(a.st, EVAL_ID, 30.0);
	assert_string_equal(module_state(res, "tests/test_m1.py"), "done");
	assert_string_equal(module_state(res, "tests/test_m2.py"), "cancelled");
	assert_string_equal(module_state(res, "tests/test_m3.py"), "cancelled");
	assert_string_equal(module_state(res, "tests/test_m4.py"), "cancelled");
	json_decref(res);

	/*
	 * A result that arrives after the cancel wins: m3 ran on the other side
	 * of a partition (b, which never heard of the cancel) and finished.
	 */
	claim(b.st, "n3:1", &cb);
	assert_string_equal(cb.path, "tests/test_m3.py");
	record(b.st, &cb, "n3:1", 2, 0, 1);
	{
		struct store_sync_key k = { cb.project_idx, cb.path };
		doc = store_sync_export_keys(b.st, EVAL_ID, &k, 1);
	}
	assert_true(store_sync_merge(a.st, doc) > 0);
	json_decref(doc);
	check_status(a.st, "cancelled", 2, 0, 0, 2, 5, 1);
	/* and m2's own late result too (its worker finished as the kill came) */
	record(a.st, &c2, "n2:1", 0, 2, 1);
	check_status(a.st, "cancelled", 3, 0, 0, 1, 5, 3);
	doc = store_eval_status(a.st, EVAL_ID, 30.0);
	/* percentages and grades over what has a result: 5 passed, 3 failed */
	assert_true(json_number_value(json_object_get(doc, "percent_passed")) == 62.5);
	assert_true(json_number_value(json_object_get(doc, "nota_final")) == 12.5);
	assert_int_equal(json_object_size(json_object_get(doc, "percent_passed_per_module")), 3);
	assert_true(json_is_number(json_object_get(doc, "cancelled_at")));
	json_decref(doc);

	/* both sides converge on the same answer, whatever came first */
	exchange(a.st, b.st);
	assert_same_digests(a.st, b.st);
	{
		json_t *sa = store_eval_status(a.st, EVAL_ID, 40.0);
		json_t *sb = store_eval_status(b.st, EVAL_ID, 40.0);

		/* b's m4 is still pending as b wrote it: it counts as cancelled there too */
		assert_true(json_equal(sa, sb));
		json_decref(sa);
		json_decref(sb);
	}
	assert_int_equal(digest_mismatches(a.path), 0);
	assert_int_equal(digest_mismatches(b.path), 0);
	fresh_close(&a);
	fresh_close(&b);
}

static void
test_cancel_replicates(void **state)
{
	struct fresh a, b;
	struct store_claim cb;
	json_t *doc, *sa, *sb;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	make_eval(a.st, EVAL_ID, DIGEST, 3);
	doc = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, doc) > 0);
	json_decref(doc);
	assert_same_digests(a.st, b.st);

	/* both sides of a partition cancel, at different times: the earliest wins */
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 50.0), 0);
	assert_int_equal(store_eval_cancel(b.st, EVAL_ID, 40.0), 0);
	/* a's coordinator settles; b's modules stay pending as b wrote them */
	assert_int_equal(store_cancel_settle(a.st, EVAL_ID, 51.0), 3);
	/* anti-entropy by buckets carries the cancel, in both directions */
	assert_true(pull_buckets(a.st, b.st) > 0);
	assert_true(pull_buckets(b.st, a.st) > 0);
	exchange(a.st, b.st);
	assert_same_digests(a.st, b.st);
	sa = store_eval_status(a.st, EVAL_ID, 60.0);
	sb = store_eval_status(b.st, EVAL_ID, 60.0);
	assert_true(json_equal(sa, sb));
	assert_true(json_number_value(json_object_get(sa, "cancelled_at")) == 40.0);
	assert_string_equal(json_string_value(json_object_get(sa, "status")), "cancelled");
	assert_int_equal(num(sa, "cancelled"), 3);
	json_decref(sa);
	json_decref(sb);
	/* nothing starts on either side */
	assert_int_equal(helper_claim(a.st, "n1:1", &cb), 0);
	assert_int_equal(helper_claim(b.st, "n2:1", &cb), 0);
	assert_int_equal(digest_mismatches(a.path), 0);
	assert_int_equal(digest_mismatches(b.path), 0);
	fresh_close(&a);
	fresh_close(&b);
}

static void
test_cancel_wins_a_tie(void **state)
{
	struct fresh a, b;
	struct store_claim cb;
	json_t *doc;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	make_eval(a.st, EVAL_ID, DIGEST, 1);
	doc = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, doc) > 0);
	json_decref(doc);
	/*
	 * Two coordinators (a partition): a cancels and settles m1 (version 1),
	 * b, not knowing, claims it (version 1 too). At one version "cancelled"
	 * wins, so both keep the same row.
	 */
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 50.0), 0);
	assert_int_equal(store_cancel_settle(a.st, EVAL_ID, 50.0), 1);
	claim(b.st, "n2:1", &cb);
	exchange(a.st, b.st);
	assert_same_digests(a.st, b.st);
	check_status(a.st, "cancelled", 0, 0, 0, 1, 0, 0);
	{
		json_t *sb = store_eval_status(b.st, EVAL_ID, 30.0);
		assert_string_equal(json_string_value(json_object_get(sb, "status")), "cancelled");
		json_decref(sb);
	}
	/* b's worker still finishes it: the result wins over the cancel on both */
	record(b.st, &cb, "n2:1", 1, 0, 1);
	exchange(a.st, b.st);
	check_status(a.st, "cancelled", 1, 0, 0, 0, 1, 0);
	assert_same_digests(a.st, b.st);
	fresh_close(&a);
	fresh_close(&b);
}

/* GET /stats "all" of a store. */
static json_t *
stats_all(struct store *st)
{
	return store_stats_all(st);
}

static void
test_tombstone(void **state)
{
	struct fresh a, b, c;
	struct store_claim c1, c2;
	json_t *full, *tomb, *before, *after, *list, *dig;
	struct store_digest *d = NULL;
	size_t nd = 0;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	fresh_open(&c);
	make_eval(a.st, EVAL_ID, DIGEST, 3);
	claim(a.st, "n1:1", &c1);
	record(a.st, &c1, "n1:1", 3, 1, 1);
	claim(a.st, "n2:1", &c2);
	record(a.st, &c2, "n2:1", 2, 0, 1);
	full = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, full) > 0);
	before = stats_all(a.st);
	assert_int_equal(num(before, "passed"), 5);
	assert_int_equal(num(before, "failed"), 1);
	assert_int_equal(num(before, "projects"), 1);
	assert_int_equal(num(before, "evaluations"), 1);

	/* delete on a: gone from every answer, the totals stay */
	assert_int_equal(store_eval_delete(a.st, "not-there", 60.0), -ENOENT);
	assert_int_equal(store_eval_delete(a.st, EVAL_ID, 60.0), 0);
	assert_int_equal(store_eval_delete(a.st, EVAL_ID, 61.0), -ENOENT);
	assert_int_equal(store_eval_tombstoned(a.st, EVAL_ID), 1);
	assert_int_equal(store_eval_stopped(a.st, EVAL_ID), 1);
	assert_null(store_eval_status(a.st, EVAL_ID, 61.0));
	assert_null(store_eval_results(a.st, EVAL_ID, 61.0));
	assert_int_equal(store_eval_cancel(a.st, EVAL_ID, 61.0), -ENOENT);
	list = store_eval_list(a.st);
	assert_int_equal(json_array_size(json_object_get(list, "evaluations")), 0);
	json_decref(list);
	after = stats_all(a.st);
	assert_true(json_equal(before, after));
	json_decref(after);
	{
		json_t *node = store_stats_node(a.st, "n1:1");
		assert_int_equal(num(node, "passed"), 3);
		assert_int_equal(json_array_size(json_object_get(node, "evaluations")), 0);
		json_decref(node);
	}
	dig = store_sync_digests(a.st);
	assert_string_equal(json_string_value(json_object_get(dig, EVAL_ID)), STORE_SYNC_DELETED);
	json_decref(dig);

	/* its files wait for the engine: the project's blob and the upload */
	assert_int_equal(store_gc_list(a.st, 10, &d, &nd), 0);
	assert_int_equal(nd, 2);
	assert_true((strcmp(d[0].d, DIGEST) == 0 && strcmp(d[1].d, UPLOAD) == 0) ||
	    (strcmp(d[0].d, UPLOAD) == 0 && strcmp(d[1].d, DIGEST) == 0));
	free(d);
	assert_int_equal(store_digest_used(a.st, DIGEST), 0);
	assert_int_equal(store_digest_used(a.st, UPLOAD), 0);

	/* the old rows never come back: a late push, a replay, a late result */
	assert_int_equal(store_sync_merge(a.st, full), 0);
	assert_null(store_eval_status(a.st, EVAL_ID, 62.0));
	record(a.st, &c2, "n2:1", 9, 9, 0);
	{
		struct store_claim late = c1;
		late.attempt = 5;
		record(a.st, &late, "n0:1", 9, 9, 0);
	}
	{
		int b0 = 0;
		json_t *part = store_sync_export_buckets(a.st, EVAL_ID, &b0, 1);
		assert_non_null(part);
		assert_true(json_is_number(json_object_get(part, "deleted_at")));
		json_decref(part);
	}
	after = stats_all(a.st);
	assert_true(json_equal(before, after));
	json_decref(after);
	assert_int_equal(digest_mismatches(a.path), 0);

	/* any export of the id is the tombstone; b, which had it all, takes it */
	tomb = store_sync_export(a.st, EVAL_ID);
	assert_non_null(tomb);
	assert_true(json_is_number(json_object_get(tomb, "deleted_at")));
	assert_null(json_object_get(tomb, "projects"));
	assert_int_equal(store_sync_merge(b.st, tomb), 1);
	assert_int_equal(store_sync_merge(b.st, tomb), 0);
	assert_null(store_eval_status(b.st, EVAL_ID, 62.0));
	after = stats_all(b.st);
	assert_true(json_equal(before, after));
	json_decref(after);
	assert_same_digests(a.st, b.st);
	assert_int_equal(store_sync_merge(b.st, full), 0);
	assert_null(store_eval_status(b.st, EVAL_ID, 62.0));

	/* c never had it: the tombstone's share makes its totals agree */
	after = stats_all(c.st);
	assert_int_equal(num(after, "passed"), 0);
	json_decref(after);
	assert_int_equal(store_sync_merge(c.st, tomb), 1);
	after = stats_all(c.st);
	assert_true(json_equal(before, after));
	json_decref(after);
	{
		json_t *node = store_stats_node(c.st, "n2:1");
		assert_int_equal(num(node, "passed"), 2);
		assert_int_equal(num(node, "modules"), 1);
		assert_int_equal(num(node, "projects"), 1);
		json_decref(node);
	}
	assert_int_equal(store_sync_merge(c.st, full), 0);
	assert_null(store_eval_status(c.st, EVAL_ID, 62.0));
	after = stats_all(c.st);
	assert_true(json_equal(before, after));
	json_decref(after);
	assert_same_digests(a.st, c.st);
	/* nothing of it is left to push from b or c, and no file to remove from c */
	assert_int_equal(store_gc_list(c.st, 10, &d, &nd), 0);
	assert_int_equal(nd, 0);
	free(d);

	json_decref(tomb);
	json_decref(full);
	json_decref(before);
	fresh_close(&a);
	fresh_close(&b);
	fresh_close(&c);
}

static void
test_shared_files_stay(void **state)
{
	struct fresh a;
	struct store_digest *d = NULL;
	size_t nd = 0;

	(void)state;
	fresh_open(&a);
	/* two evaluations of the same project content and upload */
	make_eval(a.st, EVAL_ID, DIGEST, 1);
	make_eval(a.st, OTHER_ID, DIGEST, 1);
	assert_int_equal(store_eval_delete(a.st, EVAL_ID, 60.0), 0);
	assert_int_equal(store_gc_list(a.st, 10, &d, &nd), 0);
	assert_int_equal(nd, 2);
	free(d);
	/* the other one still uses both: the engine drops them from the list */
	assert_int_equal(store_digest_used(a.st, DIGEST), 1);
	assert_int_equal(store_digest_used(a.st, UPLOAD), 1);
	assert_int_equal(store_gc_done(a.st, DIGEST), 0);
	assert_int_equal(store_gc_list(a.st, 10, &d, &nd), 0);
	assert_int_equal(nd, 1);
	assert_string_equal(d[0].d, UPLOAD);
	free(d);
	{
		json_t *doc = store_eval_status(a.st, OTHER_ID, 61.0);
		assert_non_null(doc);
		json_decref(doc);
	}
	fresh_close(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cancel_answers),
		cmocka_unit_test(test_cancel_rule),
		cmocka_unit_test(test_cancel_replicates),
		cmocka_unit_test(test_cancel_wins_a_tie),
		cmocka_unit_test(test_tombstone),
		cmocka_unit_test(test_shared_files_stay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
