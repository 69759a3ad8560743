/*
 * test_store_sync.c - replication by change: the digests the triggers keep
 * match the rows, buckets find exactly what differs, a pulled copy
 * converges, the change log holds only this node's own changes, and the
 * rows pushed for one module result do not grow with the evaluation.
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

#define EVAL_ID "6f1c2a34-8e1b-4c55-9d0a-2b7e4f1a9c01"

struct fresh {
	char dir[64];
	char *path;
	struct store *st;
};

static void
fresh_open(struct fresh *f)
{
	/* on tmpfs where there is one: the store fsyncs every transaction */
	snprintf(f->dir, sizeof(f->dir), "%s/meshtest-sync-XXXXXX",
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
	    (json_int_t)p, "failed", (json_int_t)f, "skipped", (json_int_t)0, "duration", 0.01,
	    "tests");
}

/* An evaluation of one ready project with n modules; returns nothing, asserts. */
static void
make_eval(struct store *st, size_t n)
{
	struct store_project_new p = { .project_id = "p", .source = "zip:p" };
	char **paths = xcalloc(n, sizeof(*paths));
	json_t *settings = json_object();

	assert_int_equal(store_eval_create(st, EVAL_ID, 5.0, "zip", "n1:1", settings, 0, "/u",
	    &p, 1), 0);
	json_decref(settings);
	for (size_t i = 0; i < n; i++)
		paths[i] = xasprintf("tests/test_m%05zu.py", i);
	assert_int_equal(helper_ready(st, EVAL_ID, 0, "/d", (const char *const *)paths, n), 0);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Claim one module for node and record a result: the claim is in *c. */
static void
run_one(struct store *st, const char *node, struct store_claim *c, long passed)
{
	json_t *r = result(passed, 1);

	assert_int_equal(helper_claim(st, node, c), 1);
	assert_int_equal(store_record_result(st, c, node, r, 9.0), 1);
	json_decref(r);
}

/* Forget the change log (as a push would). */
static size_t
drain(struct store *st)
{
	struct store_sync_change *c;
	size_t n, total = 0;

	do {
		assert_int_equal(store_sync_changes(st, 100000, &c, &n), 0);
		assert_int_equal(store_sync_changes_done(st, c, n), 0);
		store_sync_changes_free(c, n);
		total += n;
	} while (n > 0);
	return total;
}

/* 1 when a and b answer the same GET /sync/digests. */
static int
same_digests(struct store *a, struct store *b)
{
	json_t *da = store_sync_digests(a), *db = store_sync_digests(b);
	int same = json_equal(da, db);

	json_decref(da);
	json_decref(db);
	return same;
}

/* Buckets whose digests differ between a and b, into out; their number. */
static size_t
diff_buckets(struct store *a, struct store *b, int *out)
{
	uint64_t da[STORE_SYNC_BUCKETS], db[STORE_SYNC_BUCKETS];
	double la, lb;
	size_t n = 0;

	assert_int_equal(store_sync_buckets(a, EVAL_ID, da, &la), 0);
	assert_int_equal(store_sync_buckets(b, EVAL_ID, db, &lb), 0);
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++)
		if (da[i] != db[i])
			out[n++] = i;
	return n;
}

/* The digests kept by the triggers, recomputed from the rows: 0 mismatches. */
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
	    "  path, node, attempt) FROM result),"
	    " want(eval_id, b, dig) AS (SELECT eval_id, b, mt_xor_agg(h) FROM rows"
	    "  GROUP BY eval_id, b)"
	    " SELECT (SELECT count(*) FROM want w LEFT JOIN sync_bucket s ON s.eval_id ="
	    "  w.eval_id AND s.b = w.b WHERE coalesce(s.dig, 0) != w.dig)"
	    " + (SELECT count(*) FROM sync_bucket s LEFT JOIN want w ON s.eval_id = w.eval_id"
	    "  AND s.b = w.b WHERE s.dig != coalesce(w.dig, 0))"
	    " + (SELECT count(*) FROM evaluation e WHERE e.dig != coalesce((SELECT"
	    "  mt_xor_agg(dig) FROM sync_bucket WHERE eval_id = e.id), 0))", -1, &s, NULL),
	    SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		bad = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return bad;
}

static void
test_digests_follow_every_write(void **state)
{
	struct fresh a;
	struct store_claim c;
	json_t *r;

	(void)state;
	fresh_open(&a);
	make_eval(a.st, 40);
	assert_int_equal(digest_mismatches(a.path), 0);
	run_one(a.st, "n1:1", &c, 3);
	run_one(a.st, "n2:1", &c, 2);
	/* a later attempt's result replaces an earlier one: an upsert the digest sees */
	r = result(0, 4);
	c.attempt++;
	assert_int_equal(store_record_result(a.st, &c, "n3:1", r, 10.0), 1);
	json_decref(r);
	assert_int_equal(helper_claim(a.st, "n1:1", &c), 1);
	assert_int_equal(store_release_module(a.st, &c), 1);
	assert_int_equal(helper_claim(a.st, "n1:1", &c), 1);
	assert_int_equal(store_requeue_running(a.st, "n1:1"), 0);
	assert_int_equal(digest_mismatches(a.path), 0);
	assert_int_equal(store_project_error(a.st, EVAL_ID, 0, "broken", NULL, 11.0), 0);
	assert_int_equal(digest_mismatches(a.path), 0);
	fresh_close(&a);
}

static void
test_buckets_pull_converges(void **state)
{
	struct fresh a, b;
	struct store_claim c;
	int diff[STORE_SYNC_BUCKETS];
	size_t n;
	json_t *sa, *sb;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	make_eval(a.st, 300);
	for (int i = 0; i < 20; i++)
		run_one(a.st, "n1:1", &c, i);
	assert_int_equal(helper_claim(a.st, "n1:1", &c), 1);   /* one running */

	/* b has nothing: every bucket with a row differs; pages of 8 carry all */
	n = diff_buckets(a.st, b.st, diff);
	assert_true(n > 150);   /* 301 rows: about 177 of 256 buckets hold one */
	for (size_t i = 0; i < n; i += 8) {
		json_t *doc = store_sync_export_buckets(a.st, EVAL_ID, diff + i,
		    n - i < 8 ? n - i : 8);
		assert_non_null(doc);
		assert_true(store_sync_merge(b.st, doc) > 0);
		json_decref(doc);
	}
	assert_int_equal(diff_buckets(a.st, b.st, diff), 0);
	assert_true(same_digests(a.st, b.st));
	sa = store_eval_status(a.st, EVAL_ID, 20.0);
	sb = store_eval_status(b.st, EVAL_ID, 20.0);
	assert_true(json_equal(sa, sb));
	json_decref(sa);
	json_decref(sb);
	/* what b merged is not b's own change: nothing for b to push */
	assert_int_equal(drain(b.st), 0);
	assert_int_equal(digest_mismatches(b.path), 0);

	/*
	 * A later last event on a only (a result it kept a while, replaced
	 * since): no bucket differs, but the evaluation's digest does, and
	 * taking a's time (as the buckets answer carries it) evens them
	 */
	{
		uint64_t dig[STORE_SYNC_BUCKETS];
		double la, lb;

		assert_int_equal(store_sync_buckets(a.st, EVAL_ID, dig, &la), 0);
		assert_int_equal(store_sync_last_event(a.st, EVAL_ID, la + 2.5), 0);
		assert_int_equal(diff_buckets(a.st, b.st, diff), 0);
		assert_false(same_digests(a.st, b.st));
		assert_int_equal(store_sync_buckets(a.st, EVAL_ID, dig, &la), 0);
		assert_int_equal(store_sync_last_event(b.st, EVAL_ID, la), 0);
		assert_int_equal(store_sync_last_event(b.st, EVAL_ID, la - 1), 0);  /* earlier: kept */
		assert_int_equal(store_sync_buckets(b.st, EVAL_ID, dig, &lb), 0);
		assert_true(lb == la);
		assert_true(same_digests(a.st, b.st));
	}

	/* one more result on a: exactly its bucket differs */
	run_one(a.st, "n1:1", &c, 7);
	assert_int_equal(diff_buckets(a.st, b.st, diff), 1);
	{
		json_t *doc = store_sync_export_buckets(a.st, EVAL_ID, diff, 1);
		assert_int_equal(json_array_size(json_object_get(doc, "results")) > 0, 1);
		assert_int_equal(json_array_size(json_object_get(doc, "projects")), 1);
		assert_true(store_sync_merge(b.st, doc) > 0);
		json_decref(doc);
	}
	assert_int_equal(diff_buckets(a.st, b.st, diff), 0);
	fresh_close(&a);
	fresh_close(&b);
}

/* The document pushed for one module result, in an evaluation of n modules. */
static size_t
pushed_for_one_result(size_t n, size_t *changes)
{
	struct fresh a;
	struct store_claim c;
	struct store_sync_change *ch;
	struct store_sync_key keys[8];
	size_t nch, nk = 0, len;
	char *text;
	json_t *doc;

	fresh_open(&a);
	make_eval(a.st, n);
	assert_true(drain(a.st) >= n);       /* the creation was a change of every row */
	run_one(a.st, "n1:1", &c, 1);
	assert_int_equal(store_sync_changes(a.st, 1000, &ch, &nch), 0);
	*changes = nch;
	for (size_t i = 0; i < nch; i++) {
		assert_string_equal(ch[i].eval_id, EVAL_ID);
		assert_int_equal(ch[i].key.project_idx, 0);
		assert_string_equal(ch[i].key.path, c.path);
		if (nk == 0)
			keys[nk++] = ch[i].key;
	}
	doc = store_sync_export_keys(a.st, EVAL_ID, keys, nk);
	assert_int_equal(json_array_size(json_object_get(doc, "modules")), 1);
	assert_int_equal(json_array_size(json_object_get(doc, "results")), 1);
	assert_int_equal(json_array_size(json_object_get(doc, "projects")), 1);
	text = json_dumps(doc, JSON_COMPACT);
	len = strlen(text);
	free(text);
	json_decref(doc);
	store_sync_changes_free(ch, nch);
	fresh_close(&a);
	return len;
}

static void
test_push_cost_does_not_grow(void **state)
{
	size_t small_changes, big_changes;
	size_t small = pushed_for_one_result(100, &small_changes);
	size_t big = pushed_for_one_result(2000, &big_changes);

	(void)state;
	/* the same rows whatever the size: the claim and the result of one module */
	assert_int_equal(small_changes, big_changes);
	assert_true(small_changes <= 4);
	assert_true(big < 2 * small);
	assert_true(big < small + 64);   /* only the numbers in the row differ */
}

static void
test_planned_module_stays_dropped(void **state)
{
	struct fresh a, b;
	struct store_project_new p = { .project_id = "p", .source = "zip:p" };
	const char *planned[2] = { "tests/test_x.py", "tests/test_y.py" };
	const char *found[1] = { "tests/test_y.py" };
	json_t *settings = json_object(), *doc, *st_a;

	(void)state;
	fresh_open(&a);
	fresh_open(&b);
	p.modules = planned;
	p.nmodules = 2;
	assert_int_equal(store_eval_create(a.st, EVAL_ID, 5.0, "zip", "n1:1", settings, 0, "/u",
	    &p, 1), 0);
	json_decref(settings);
	doc = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, doc) > 0);   /* b: fetching, two planned */
	json_decref(doc);
	assert_int_equal(helper_ready(a.st, EVAL_ID, 0, "/d", found, 1), 0);
	/* a pulls what b has: the planned module the files did not have stays out */
	doc = store_sync_export(b.st, EVAL_ID);
	store_sync_merge(a.st, doc);
	json_decref(doc);
	st_a = store_eval_status(a.st, EVAL_ID, 20.0);
	assert_int_equal(json_integer_value(json_object_get(st_a, "pending")), 1);
	json_decref(st_a);
	/* and b, pulling a, drops it */
	doc = store_sync_export(a.st, EVAL_ID);
	assert_true(store_sync_merge(b.st, doc) > 0);
	json_decref(doc);
	st_a = store_eval_status(b.st, EVAL_ID, 20.0);
	assert_int_equal(json_integer_value(json_object_get(st_a, "pending")), 1);
	json_decref(st_a);
	fresh_close(&a);
	fresh_close(&b);
}

/* SQLite's virtual machine steps on this thread's connection (every 10). */
static long vm_ticks;

static int
count_ticks(void *arg)
{
	(void)arg;
	vm_ticks++;
	return 0;
}

/* VM work of one claim (and of recording its result) in an evaluation of p x m. */
static long
claim_cost(size_t projects, size_t modules, long *record)
{
	struct fresh a;
	json_t *r;
	struct store_claim c;
	long claim;

	fresh_open(&a);
	assert_int_equal(helper_eval(a.st, EVAL_ID, projects, 0, modules), 0);
	run_one(a.st, "n1:1", &c, 1);          /* the evaluation has a mean now */
	sqlite3_progress_handler(store_db(a.st), 10, count_ticks, NULL);
	vm_ticks = 0;
	assert_int_equal(helper_claim(a.st, "n1:1", &c), 1);
	claim = vm_ticks;
	vm_ticks = 0;
	r = result(1, 0);
	assert_int_equal(store_record_result(a.st, &c, "n1:1", r, 9.0), 1);
	json_decref(r);
	*record = vm_ticks;
	sqlite3_progress_handler(store_db(a.st), 0, NULL, NULL);
	fresh_close(&a);
	return claim;
}

static void
test_claim_cost_does_not_grow(void **state)
{
	long rec_small, rec_big;
	long small = claim_cost(100, 10, &rec_small);
	long big = claim_cost(1000, 10, &rec_big);

	(void)state;
	print_message("claim: %ld vs %ld, record: %ld vs %ld (x10 VM steps)\n", small, big,
	    rec_small, rec_big);
	assert_true(small > 0 && rec_small > 0);
	assert_true(big < 2 * small);
	assert_true(rec_big < 2 * rec_small);
}

static int commits;

static int
count_commit(void *arg)
{
	(void)arg;
	commits++;
	return 0;   /* go on with the commit */
}

/* A shared session's results: one commit for all of them, each counted as alone. */
static void
test_session_results_commit_once(void **state)
{
	struct fresh a;
	struct store_claim c[5];
	const struct store_claim *cp[5];
	json_t *r[5];
	int out[5];

	(void)state;
	fresh_open(&a);
	make_eval(a.st, 8);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(helper_claim(a.st, "n1:1", &c[i]), 1);
		cp[i] = &c[i];
		r[i] = result(i, 1);
	}
	sqlite3_commit_hook(store_db(a.st), count_commit, NULL);
	commits = 0;
	assert_int_equal(store_record_results(a.st, cp, "n1:1", r, 5, 9.0, out), 0);
	assert_int_equal(commits, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(out[i], 1);
	/* the same again: kept as they were, in one commit too */
	commits = 0;
	assert_int_equal(store_record_results(a.st, cp, "n1:1", r, 5, 10.0, out), 0);
	assert_int_equal(commits, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(out[i], 0);
	/* one at a time: a commit each */
	commits = 0;
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_record_result(a.st, cp[i], "n1:1", r[i], 11.0), 0);
	assert_int_equal(commits, 5);
	sqlite3_commit_hook(store_db(a.st), NULL, NULL);
	{
		json_t *doc = store_eval_status(a.st, EVAL_ID, 20.0);
		assert_int_equal(json_integer_value(json_object_get(doc, "executed")), 5);
		/* 0 + 1 + 2 + 3 + 4 passed, one failed each */
		assert_int_equal(json_integer_value(json_object_get(doc, "passed")), 10);
		assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 5);
		json_decref(doc);
	}
	for (int i = 0; i < 5; i++)
		json_decref(r[i]);
	fresh_close(&a);
}

/* The serialized status is the JSON document, kept current across changes. */
static void
assert_text_is_status(struct store *st, double now)
{
	size_t len = 0;
	char *text = store_eval_status_text(st, EVAL_ID, now, &len);
	json_t *doc = store_eval_status(st, EVAL_ID, now);
	char *want = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, want);
	free(text);
	free(want);
	json_decref(doc);
}

static void
test_status_text_follows_changes(void **state)
{
	struct fresh a;
	struct store_claim c;
	size_t len;

	(void)state;
	fresh_open(&a);
	assert_null(store_eval_status_text(a.st, EVAL_ID, 10.0, &len));
	make_eval(a.st, 3);
	assert_text_is_status(a.st, 10.0);
	assert_text_is_status(a.st, 12.5);      /* cached: only the elapsed time moved */
	run_one(a.st, "n1:1", &c, 2);
	/* a running evaluation's document is rebuilt at most every STORE_DOC_MIN_AGE */
	usleep((useconds_t)(STORE_DOC_MIN_AGE * 1e6) + 20000);
	assert_text_is_status(a.st, 13.0);
	run_one(a.st, "n1:1", &c, 1);
	run_one(a.st, "n1:1", &c, 0);
	usleep((useconds_t)(STORE_DOC_MIN_AGE * 1e6) + 20000);
	assert_text_is_status(a.st, 14.0);      /* done: elapsed is the last event's */
	assert_text_is_status(a.st, 99.0);
	fresh_close(&a);
}

/*
 * A database the previous release wrote (schema 4, tests/fixtures/store-v4.db:
 * one evaluation done, 16 modules, 14 passed and 2 failed tests; a second one
 * cut off by kill -9 with 1 module done, 4 running and 1 pending) opens,
 * migrates, and reads and counts exactly as it did.
 */
#define V4_NODE "127.0.0.1:47999"
#define V4_DONE "4da16286-7b36-4dd0-bf3e-74ef1d43c2c9"
#define V4_CUT "3f5e7046-2571-4175-9faf-9c3a03902648"

static long
json_int(json_t *o, const char *key)
{
	return (long)json_integer_value(json_object_get(o, key));
}

static void
test_previous_release_database(void **state)
{
	struct fresh a;
	FILE *in = fopen("tests/fixtures/store-v4.db", "rb"), *out;
	char buf[8192];
	size_t n;
	json_t *doc, *want;
	struct store_work *w = NULL;
	size_t nw = 0;
	struct store_claim c;

	(void)state;
	assert_non_null(in);   /* run from the repository's root, as make unit does */
	snprintf(a.dir, sizeof(a.dir), "/tmp/meshtest-v4-XXXXXX");
	assert_non_null(mkdtemp(a.dir));
	a.path = xasprintf("%s/meshtest.db", a.dir);
	out = fopen(a.path, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	assert_int_equal(store_open(a.path, &a.st), 0);

	doc = store_eval_status(a.st, V4_DONE, 0.0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "done");
	assert_int_equal(json_int(doc, "passed"), 14);
	assert_int_equal(json_int(doc, "failed"), 2);
	assert_int_equal(json_int(doc, "executed"), 16);
	json_decref(doc);
	doc = store_eval_status(a.st, V4_CUT, 0.0);
	assert_int_equal(json_int(doc, "executed"), 1);
	assert_int_equal(json_int(doc, "in_progress"), 4);
	assert_int_equal(json_int(doc, "pending"), 1);
	json_decref(doc);

	/* the counters the migration filled in: statistics and the work left */
	doc = store_stats_all(a.st);
	want = json_pack("{s:i, s:i, s:i, s:i}", "evaluations", 2, "failed", 2, "passed", 15,
	    "projects", 3);
	assert_true(json_equal(doc, want));
	json_decref(doc);
	json_decref(want);
	doc = store_stats_node(a.st, V4_NODE);
	want = json_pack("{s:s, s:i, s:i, s:i, s:i, s:[s, s]}", "address", V4_NODE, "failed", 2,
	    "passed", 15, "projects", 3, "modules", 17, "evaluations", V4_DONE, V4_CUT);
	assert_true(json_equal(doc, want));
	json_decref(doc);
	json_decref(want);
	assert_int_equal(store_work_list(a.st, &w, &nw), 0);
	assert_int_equal(nw, 1);
	assert_string_equal(w[0].id, V4_CUT);
	assert_int_equal(w[0].pending, 1);
	assert_int_equal(w[0].running, 4);
	free(w);
	assert_int_equal(digest_mismatches(a.path), 0);

	/* and the node carries on: the cut-off modules run again */
	assert_int_equal(store_requeue_running(a.st, V4_NODE), 0);
	assert_int_equal(store_work_list(a.st, &w, &nw), 0);
	assert_int_equal(w[0].pending, 5);
	free(w);
	run_one(a.st, V4_NODE, &c, 1);
	doc = store_stats_all(a.st);
	assert_int_equal(json_int(doc, "passed"), 16);
	json_decref(doc);
	assert_int_equal(digest_mismatches(a.path), 0);
	fresh_close(&a);
}

/* The default VFS with a count of the statement journals it opens as files. */
static sqlite3_vfs *real_vfs;
static sqlite3_vfs counting_vfs;
static int subjournal_files;

static int
counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	(void)vfs;
	if (flags & SQLITE_OPEN_SUBJOURNAL)
		subjournal_files++;
	return real_vfs->xOpen(real_vfs, name, f, flags, out);
}

/*
 * Statement journals stay in memory: an evaluation of 100 projects x 10
 * modules made ready, 20 modules claimed and their results recorded in one
 * transaction open no journal file (with SQLite's 64 KiB spill, 73 here).
 */
static void
test_statement_journals_in_memory(void **state)
{
	struct fresh a, b;
	struct store_claim c[20];
	const struct store_claim *cp[20];
	json_t *r[20];
	int out[20];

	(void)state;
	fresh_open(&a);         /* SQLite configured and started by the first store */
	fresh_close(&a);
	real_vfs = sqlite3_vfs_find(NULL);
	counting_vfs = *real_vfs;
	counting_vfs.zName = "counting";
	counting_vfs.xOpen = counting_open;
	assert_int_equal(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
	fresh_open(&b);
	subjournal_files = 0;
	assert_int_equal(helper_eval(b.st, EVAL_ID, 100, 0, 10), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(helper_claim(b.st, "n1:1", &c[i]), 1);
		cp[i] = &c[i];
		r[i] = json_pack("{s:s, s:I, s:I, s:I, s:f, s:s, s:[{s:s, s:s}]}", "outcome",
		    "finished", "passed", (json_int_t)1, "failed", (json_int_t)0, "skipped",
		    (json_int_t)0, "duration", 0.01, "stdout", "collected 1 item", "tests",
		    "nodeid", "tests/test_m000.py::test_a", "outcome", "passed");
	}
	assert_int_equal(store_record_results(b.st, cp, "n1:1", r, 20, 9.0, out), 0);
	assert_int_equal(subjournal_files, 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(out[i], 1);
		json_decref(r[i]);
	}
	fresh_close(&b);
	sqlite3_vfs_unregister(&counting_vfs);
	sqlite3_vfs_register(real_vfs, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digests_follow_every_write),
		cmocka_unit_test(test_buckets_pull_converges),
		cmocka_unit_test(test_push_cost_does_not_grow),
		cmocka_unit_test(test_planned_module_stays_dropped),
		cmocka_unit_test(test_status_text_follows_changes),
		cmocka_unit_test(test_claim_cost_does_not_grow),
		cmocka_unit_test(test_session_results_commit_once),
		cmocka_unit_test(test_statement_journals_in_memory),
		cmocka_unit_test(test_previous_release_database),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
