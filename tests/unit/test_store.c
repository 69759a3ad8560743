/*
 * test_store.c - the store's counting: grades, percentages, live counters,
 * statistics, fairness of claims and first-result-wins, on a real SQLite file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/score.h"
#include "core/util.h"
#include "store/store.h"
#include "store_helpers.h"

static char dir[256];

static struct store *
open_fresh(void)
{
	struct store *st = NULL;
	char *db;

	snprintf(dir, sizeof(dir), "/tmp/meshtest-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	db = xasprintf("%s/t.db", dir);
	assert_int_equal(store_open(db, &st), 0);
	free(db);
	return st;
}

static void
close_fresh(struct store *st)
{
	store_close(st);
	util_rm_rf(dir);
}

static void
test_score(void **state)
{
	(void)state;
	assert_true(score_grade(0, 0) == 0.0);
	assert_true(score_grade(3, 1) == 15.0);
	assert_true(score_grade(5, 0) == 20.0);
	assert_true(score_grade(0, 7) == 0.0);
	assert_true(score_percent(0, 0) == 0.0);
	assert_true(score_percent(1, 4) == 25.0);
}

static json_t *
result(long p, long f, long k)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:[]}", "outcome", "finished",
	    "passed", (json_int_t)p, "failed", (json_int_t)f, "skipped", (json_int_t)k,
	    "duration", 0.5, "tests");
}

/* Claim one module (must be the expected one) and record counts for it. */
static void
run_one(struct store *st, const char *eval, const char *path, long p, long f, long k)
{
	struct store_claim c;
	json_t *r = result(p, f, k);

	assert_int_equal(helper_claim(st, "n1:1", &c), 1);
	assert_string_equal(c.eval_id, eval);
	assert_string_equal(c.path, path);
	assert_int_equal(store_record_result(st, &c, "n1:1", r, 100.0), 1);
	/* The same module again: the first result stays. */
	json_decref(r);
	r = result(0, 9, 0);
	assert_int_equal(store_record_result(st, &c, "n1:1", r, 101.0), 0);
	json_decref(r);
}

static void
test_counting(void **state)
{
	struct store *st = open_fresh();
	const char *ma[] = { "tests/test_a.py", "tests/test_b.py" };
	const char *mb[] = { "tests/test_c.py" };
	struct store_project_new p[3] = {
		{ "alice", "zip:alice", "alice/", ma, 2 },
		{ "bob", "zip:bob", "bob/", mb, 1 },
		{ "carol", "zip:carol", "carol/", NULL, 0 },
	};
	const char *id = "11111111-2222-4333-8444-555555555555";
	json_t *doc, *stats;

	(void)state;
	json_t *settings = json_object();
	assert_int_equal(store_eval_create(st, id, 10.0, "zip", "n1:1", settings, 0, "/x.zip",
	    p, 3), 0);
	json_decref(settings);
	doc = store_eval_status(st, id, 12.0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "running");
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 3);
	assert_int_equal(json_integer_value(json_object_get(doc, "executed")), 0);
	assert_true(json_real_value(json_object_get(doc, "elapsed_seconds")) == 2.0);
	json_decref(doc);

	/* Nothing is runnable before a project is ready. */
	struct store_claim c;
	assert_int_equal(helper_claim(st, "n1:1", &c), 0);
	assert_int_equal(store_project_fetching(st, id, 0), 1);
	assert_int_equal(helper_ready(st, id, 0, "/d/0", ma, 2), 0);
	assert_int_equal(store_project_fetching(st, id, 0), 0);
	assert_int_equal(store_project_fetching(st, id, 9), 0);
	assert_int_equal(helper_ready(st, id, 1, "/d/1", mb, 1), 0);
	assert_int_equal(store_project_error(st, id, 2, "git clone failed: boom", NULL, 20.0), 0);

	run_one(st, id, "tests/test_a.py", 3, 1, 2);
	run_one(st, id, "tests/test_b.py", 0, 0, 1);
	doc = store_eval_status(st, id, 50.0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "running");
	assert_int_equal(json_integer_value(json_object_get(doc, "executed")), 2);
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 1);
	json_decref(doc);
	run_one(st, id, "tests/test_c.py", 1, 1, 0);

	doc = store_eval_status(st, id, 500.0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "done");
	assert_int_equal(json_integer_value(json_object_get(doc, "executed")), 3);
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "in_progress")), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "passed")), 4);
	assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 2);
	assert_int_equal(json_integer_value(json_object_get(doc, "skipped")), 3);
	/* elapsed: submission (10) to the last result (100). */
	assert_true(json_real_value(json_object_get(doc, "elapsed_seconds")) == 90.0);
	json_t *np = json_object_get(doc, "nota_final_per_project");
	assert_true(json_real_value(json_object_get(np, "alice")) == 15.0);
	assert_true(json_real_value(json_object_get(np, "bob")) == 10.0);
	assert_true(json_real_value(json_object_get(np, "carol")) == 0.0);
	assert_true(json_real_value(json_object_get(doc, "nota_final")) == 25.0 / 3.0);
	json_t *pm = json_object_get(doc, "percent_passed_per_module");
	assert_true(json_real_value(json_object_get(pm, "alice/tests/test_a.py")) == 75.0);
	assert_true(json_real_value(json_object_get(pm, "alice/tests/test_b.py")) == 0.0);
	assert_true(json_real_value(json_object_get(doc, "percent_passed")) ==
	    100.0 * 4.0 / 6.0);
	json_t *carol = json_object_get(json_object_get(doc, "projects"), "carol");
	assert_string_equal(json_string_value(json_object_get(carol, "error")),
	    "git clone failed: boom");
	json_decref(doc);

	stats = store_stats_all(st);
	assert_int_equal(json_integer_value(json_object_get(stats, "passed")), 4);
	assert_int_equal(json_integer_value(json_object_get(stats, "failed")), 2);
	assert_int_equal(json_integer_value(json_object_get(stats, "projects")), 3);
	assert_int_equal(json_integer_value(json_object_get(stats, "evaluations")), 1);
	json_decref(stats);
	stats = store_stats_node(st, "n1:1");
	assert_int_equal(json_integer_value(json_object_get(stats, "modules")), 3);
	assert_int_equal(json_integer_value(json_object_get(stats, "projects")), 2);
	assert_int_equal(json_array_size(json_object_get(stats, "evaluations")), 1);
	json_decref(stats);
	close_fresh(st);
}

static void
test_failed_when_nothing_ran(void **state)
{
	struct store *st = open_fresh();
	struct store_project_new p[1] = { { "x", "https://h/x", NULL, NULL, 0 } };
	const char *id = "11111111-2222-4333-8444-666666666666";
	json_t *doc, *settings = json_object();

	(void)state;
	assert_int_equal(store_eval_create(st, id, 1.0, "git", "n1:1", settings, 1, NULL, p, 1), 0);
	json_decref(settings);
	assert_int_equal(store_project_error(st, id, 0, "authentication failed", NULL, 3.0), 0);
	doc = store_eval_status(st, id, 5.0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "failed");
	assert_true(json_real_value(json_object_get(doc, "nota_final")) == 0.0);
	assert_true(json_real_value(json_object_get(doc, "percent_passed")) == 0.0);
	json_decref(doc);
	assert_null(store_eval_status(st, "11111111-2222-4333-8444-000000000000", 5.0));
	close_fresh(st);
}

static void
test_fair_claims_and_requeue(void **state)
{
	struct store *st = open_fresh();
	const char *m[] = { "tests/test_1.py", "tests/test_2.py", "tests/test_3.py" };
	struct store_project_new p1[1] = { { "a", "zip:a", "a/", m, 3 } };
	struct store_project_new p2[1] = { { "b", "zip:b", "b/", m, 3 } };
	const char *e1 = "11111111-2222-4333-8444-000000000001";
	const char *e2 = "11111111-2222-4333-8444-000000000002";
	struct store_claim c1, c2, c3;
	json_t *settings = json_pack("{s:f}", "module_timeout", 7.0);

	(void)state;
	assert_int_equal(store_eval_create(st, e1, 1.0, "zip", "n", settings, 0, "/1", p1, 1), 0);
	assert_int_equal(store_eval_create(st, e2, 2.0, "zip", "n", settings, 0, "/2", p2, 1), 0);
	json_decref(settings);
	assert_int_equal(helper_ready(st, e1, 0, "/d1", m, 3), 0);
	assert_int_equal(helper_ready(st, e2, 0, "/d2", m, 3), 0);
	/* Oldest first, then the evaluation with fewer running modules. */
	assert_int_equal(helper_claim(st, "n", &c1), 1);
	assert_string_equal(c1.eval_id, e1);
	assert_true(c1.module_timeout == 7.0);
	assert_int_equal(helper_claim(st, "n", &c2), 1);
	assert_string_equal(c2.eval_id, e2);
	assert_int_equal(helper_claim(st, "n", &c3), 1);
	assert_string_equal(c3.eval_id, e1);
	assert_int_equal(c3.attempt, 1);
	/* A crash: running modules go back to pending, attempts count up. */
	assert_int_equal(store_requeue_running(st, "n"), 0);
	json_t *doc = store_eval_status(st, e1, 3.0);
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 3);
	assert_int_equal(json_integer_value(json_object_get(doc, "in_progress")), 0);
	json_decref(doc);
	assert_int_equal(helper_claim(st, "n", &c1), 1);
	assert_string_equal(c1.eval_id, e1);
	assert_string_equal(c1.path, "tests/test_1.py");
	assert_int_equal(c1.attempt, 2);
	close_fresh(st);
}

/*
 * Among modules of equal estimates the project with the most pending modules
 * leads (the store's lead query finds it by index), the lower index between
 * equals, as sched_cmp orders them.
 */
static void
test_most_pending_project_leads(void **state)
{
	struct store *st = open_fresh();
	const char *few[] = { "tests/test_1.py", "tests/test_2.py" };
	const char *many[] = { "tests/test_1.py", "tests/test_2.py", "tests/test_3.py",
		"tests/test_4.py", "tests/test_5.py" };
	struct store_project_new p[2] = { { "few", "zip:few", "few/", few, 2 },
		{ "many", "zip:many", "many/", many, 5 } };
	const char *e = "11111111-2222-4333-8444-000000000003";
	/* pending (few, many) before each claim: (2,5) (2,4) (2,3) (2,2) (1,2) (1,1) (0,1) */
	const int want[] = { 1, 1, 1, 0, 1, 0, 1 };
	struct store_claim c;
	json_t *settings = json_object();

	(void)state;
	assert_int_equal(store_eval_create(st, e, 1.0, "zip", "n", settings, 0, "/1", p, 2), 0);
	json_decref(settings);
	assert_int_equal(helper_ready(st, e, 0, "/d1", few, 2), 0);
	assert_int_equal(helper_ready(st, e, 1, "/d2", many, 5), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(helper_claim(st, "n", &c), 1);
		assert_int_equal(c.project_idx, want[i]);
	}
	assert_int_equal(helper_claim(st, "n", &c), 0);
	close_fresh(st);
}

/* Export from one store, merge into another: same documents, same digests. */
static void
test_replication(void **state)
{
	struct store *a = open_fresh(), *b;
	char dir_a[256];
	const char *m[] = { "tests/test_1.py", "tests/test_2.py" };
	struct store_project_new p[2] = {
		{ "a", "zip:a", "a/", m, 2 }, { "z", "zip:z", "z/", m, 2 },
	};
	const char *id = "11111111-2222-4333-8444-00000000000a";
	struct store_claim c;
	json_t *doc, *da, *db_, *st_a, *st_b, *settings = json_object();

	(void)state;
	snprintf(dir_a, sizeof(dir_a), "%s", dir);
	b = open_fresh();
	assert_int_equal(store_eval_create(a, id, 5.0, "zip", "n1:1", settings, 0, "/u", p, 2), 0);
	json_decref(settings);
	{
		struct store_module_info mi[2] = { { .path = m[0] }, { .path = m[1] } };
		struct store_fetched f = { .digest = "/d", .modules = mi, .nmodules = 2,
		    .commit = "0123456789abcdef0123456789abcdef01234567" };
		assert_int_equal(store_project_ready(a, id, 0, &f), 1);
		/* prepared a second time: nothing to redo, and it stays ready */
		assert_int_equal(store_project_ready(a, id, 0, &f), 0);
		assert_int_equal(store_project_fetch_failed(a, id, 0, "late", NULL, 5.5), 0);
		assert_int_equal(store_project_fetching(a, id, 0), 0);
	}
	assert_int_equal(store_project_fetch_failed(a, id, 1, "cannot install", NULL, 6.0), 0);
	assert_int_equal(helper_claim(a, "n1:1", &c), 1);
	json_t *r = result(2, 1, 0);
	assert_int_equal(store_record_result(a, &c, "n1:1", r, 9.0), 1);
	json_decref(r);
	assert_int_equal(helper_claim(a, "n1:1", &c), 1); /* running, not done */

	doc = store_sync_export(a, id);
	assert_non_null(doc);
	assert_null(json_object_get(json_array_get(json_object_get(doc, "projects"), 0), "dir"));
	assert_true(store_sync_merge(b, doc) > 0);
	/* The same document again changes nothing. */
	assert_int_equal(store_sync_merge(b, doc), 0);
	json_decref(doc);

	da = store_sync_digests(a);
	db_ = store_sync_digests(b);
	assert_true(json_equal(da, db_));
	json_decref(da);
	json_decref(db_);
	st_a = store_eval_status(a, id, 20.0);
	st_b = store_eval_status(b, id, 20.0);
	assert_true(json_equal(st_a, st_b));
	assert_int_equal(json_integer_value(json_object_get(st_b, "in_progress")), 1);
	assert_int_equal(json_integer_value(json_object_get(st_b, "executed")), 1);
	/* the graded commit travels with the project; a ZIP-like one has none */
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
	    st_b, "projects"), "a"), "commit")), "0123456789abcdef0123456789abcdef01234567");
	assert_true(json_is_null(json_object_get(json_object_get(json_object_get(st_b,
	    "projects"), "z"), "commit")));
	json_decref(st_a);
	json_decref(st_b);
	/* b does not run a's evaluation (until work is spread). */
	assert_int_equal(helper_claim(b, "n2:1", &c), 0);

	/* A replay of the same (attempt, node) with another outcome changes nothing. */
	doc = store_sync_export(a, id);
	json_t *res0 = json_array_get(json_object_get(doc, "results"), 0);
	json_object_set_new(json_object_get(res0, "body"), "passed", json_integer(0));
	json_object_set_new(json_object_get(res0, "body"), "failed", json_integer(3));
	assert_int_equal(store_sync_merge(b, doc), 0);
	/* A result from an earlier attempt loses; from a later one it wins. */
	json_object_set_new(res0, "attempt", json_integer(0));
	assert_int_equal(store_sync_merge(b, doc), 0);
	st_b = store_eval_status(b, id, 20.0);
	assert_int_equal(json_integer_value(json_object_get(st_b, "passed")), 2);
	json_decref(st_b);
	json_object_set_new(res0, "attempt", json_integer(2));
	assert_int_equal(store_sync_merge(b, doc), 1);
	st_b = store_eval_status(b, id, 20.0);
	assert_int_equal(json_integer_value(json_object_get(st_b, "passed")), 0);
	assert_int_equal(json_integer_value(json_object_get(st_b, "failed")), 3);
	json_decref(st_b);
	json_decref(doc);

	/* Malformed documents are refused. */
	doc = json_pack("{s:s}", "id", "nope");
	assert_int_equal(store_sync_merge(b, doc), -EINVAL);
	json_decref(doc);

	assert_false(store_result_wins(1, "b", 2, "a"));
	assert_true(store_result_wins(2, "a", 1, "b"));
	assert_true(store_result_wins(1, "a", 1, "b"));
	assert_false(store_result_wins(1, "b", 1, "b"));
	close_fresh(b);
	store_close(a);
	util_rm_rf(dir_a);
}

/*
 * Reuse: a second evaluation whose project has the same key takes the
 * earlier results of the modules that finished normally, and only those;
 * they count in the evaluation and credit no node.
 */
static void
test_reuse(void **state)
{
	struct store *st = open_fresh();
	const char *m[] = { "tests/test_a.py", "tests/test_b.py", "tests/test_c.py",
			    "tests/test_d.py" };
	struct store_module_info mi[4] = { { .path = m[0] }, { .path = m[1] }, { .path = m[2] },
					   { .path = m[3] } };
	struct store_project_new p = { "alice", "zip:alice", "alice/", m, 4 };
	const char *e1 = "11111111-2222-4333-8444-0000000000e1";
	const char *e2 = "11111111-2222-4333-8444-0000000000e2";
	const char *e3 = "11111111-2222-4333-8444-0000000000e3";
	const char *outcome[] = { "finished", "timeout", "finished", "infra_error" };
	struct store_fetched f = { .digest = "d1", .reuse_key = "K", .modules = mi,
				   .nmodules = 4, .now = 50.0 };
	json_t *settings = json_object(), *res, *mods, *stats;
	struct store_claim c;

	(void)state;
	assert_int_equal(store_eval_create(st, e1, 1.0, "zip", "n1:1", settings, 0, "/u", &p, 1), 0);
	assert_int_equal(store_project_ready(st, e1, 0, &f), 1);
	assert_int_equal(f.reused, 0);
	for (int i = 0; i < 4; i++) {
		json_t *r = result(2, 1, 0);
		assert_int_equal(helper_claim(st, "n1:1", &c), 1);
		json_object_set_new(r, "outcome", json_string(outcome[strcmp(c.path, m[0]) == 0 ? 0 :
		    strcmp(c.path, m[1]) == 0 ? 1 : strcmp(c.path, m[2]) == 0 ? 2 : 3]));
		if (strcmp(c.path, m[2]) == 0)
			json_object_set_new(r, "flaky", json_true());
		assert_int_equal(store_record_result(st, &c, "n1:1", r, 60.0 + i), 1);
		json_decref(r);
	}
	stats = store_stats_node(st, "n1:1");
	assert_int_equal(json_integer_value(json_object_get(stats, "modules")), 4);
	json_decref(stats);

	/* the same key, reuse: test_a only (b timed out, c was flaky, d infra) */
	assert_int_equal(store_eval_create(st, e2, 2.0, "zip", "n1:1", settings, 0, "/u", &p, 1), 0);
	f.reuse = 1;
	f.now = 70.0;
	assert_int_equal(store_project_ready(st, e2, 0, &f), 1);
	assert_int_equal(f.reused, 1);
	res = store_eval_results(st, e2, 80.0);
	mods = json_object_get(json_array_get(json_object_get(res, "projects"), 0), "modules");
	assert_int_equal(json_array_size(mods), 4);
	assert_true(json_is_true(json_object_get(json_array_get(mods, 0), "reused")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(mods, 0),
	    "reused_from")), e1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(mods, 0), "node")),
	    "n1:1");
	for (size_t i = 1; i < 4; i++) {
		assert_null(json_object_get(json_array_get(mods, i), "reused"));
		assert_string_equal(json_string_value(json_object_get(json_array_get(mods, i),
		    "state")), "pending");
	}
	assert_int_equal(json_integer_value(json_object_get(res, "executed")), 1);
	assert_int_equal(json_integer_value(json_object_get(res, "passed")), 2);
	json_decref(res);
	/* no node is credited again */
	stats = store_stats_node(st, "n1:1");
	assert_int_equal(json_integer_value(json_object_get(stats, "modules")), 4);
	json_decref(stats);

	/* another key, or no reuse asked: nothing taken */
	assert_int_equal(store_eval_create(st, e3, 3.0, "zip", "n1:1", settings, 0, "/u", &p, 1), 0);
	f.reuse_key = "other";
	assert_int_equal(store_project_ready(st, e3, 0, &f), 1);
	assert_int_equal(f.reused, 0);
	json_decref(settings);
	close_fresh(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_score),
		cmocka_unit_test(test_counting),
		cmocka_unit_test(test_failed_when_nothing_ran),
		cmocka_unit_test(test_fair_claims_and_requeue),
		cmocka_unit_test(test_most_pending_project_leads),
		cmocka_unit_test(test_replication),
		cmocka_unit_test(test_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
