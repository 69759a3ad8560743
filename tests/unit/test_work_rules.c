/*
 * test_work_rules.c - the store's rules for shared work that the end-to-end
 * takeover tests (tests/e2e/test_work.py) rely on, on a real SQLite file:
 * a recorded result stays final even when the coordinator gives the claim
 * back afterwards (a reclaim racing a result), and replays of a result with
 * another outcome change nothing unless they win by store_result_wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"
#include "store_helpers.h"

#define EVAL_ID "11111111-2222-4333-8444-666666666666"
#define DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char dir[256];

static struct store *
open_with_one_module(void)
{
	struct store *st = NULL;
	const char *mods[] = { "tests/test_a.py" };
	struct store_project_new p[1] = { { "alice", "zip:alice", "alice/", mods, 1 } };
	json_t *settings = json_object();
	char *db;

	snprintf(dir, sizeof(dir), "/tmp/meshtest-work-XXXXXX");
	assert_non_null(mkdtemp(dir));
	db = xasprintf("%s/t.db", dir);
	assert_int_equal(store_open(db, &st), 0);
	free(db);
	assert_int_equal(store_eval_create(st, EVAL_ID, 1.0, "zip", "127.0.0.1:1", settings, 0,
	    NULL, p, 1), 0);
	json_decref(settings);
	assert_int_equal(helper_ready(st, EVAL_ID, 0, DIGEST, mods, 1), 0);
	return st;
}

static void
close_fresh(struct store *st)
{
	store_close(st);
	util_rm_rf(dir);
}

static json_t *
result(long p, long f)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:[]}", "outcome", "finished",
	    "passed", (json_int_t)p, "failed", (json_int_t)f, "skipped", (json_int_t)0,
	    "duration", 0.5, "tests");
}

static long
status_int(struct store *st, const char *field)
{
	json_t *doc = store_eval_status(st, EVAL_ID, 50.0);
	long v;

	assert_non_null(doc);
	v = (long)json_integer_value(json_object_get(doc, field));
	json_decref(doc);
	return v;
}

/*
 * The coordinator's round reads the running modules, asks the worker, and
 * gives the module back; the worker's result can land in between. The
 * result is final: the module must not run again, and the status must not
 * say "done" while the module runs a second time.
 */
static void
test_release_after_result_keeps_it_final(void **state)
{
	struct store *st = open_with_one_module();
	struct store_claim c, again;
	json_t *r = result(3, 1);

	(void)state;
	assert_int_equal(helper_claim(st, "127.0.0.1:2", &c), 1);
	assert_int_equal(c.attempt, 1);
	assert_int_equal(store_record_result(st, &c, "127.0.0.1:2", r, 5.0), 1);
	json_decref(r);
	/* the reclaim decided on an older snapshot */
	store_release_module(st, &c);
	assert_int_equal(helper_claim(st, "127.0.0.1:3", &again), 0);
	assert_int_equal(status_int(st, "executed"), 1);
	assert_int_equal(status_int(st, "pending"), 0);
	assert_int_equal(status_int(st, "in_progress"), 0);
	assert_int_equal(status_int(st, "passed"), 3);
	assert_int_equal(status_int(st, "failed"), 1);
	close_fresh(st);
}

/* One result row of st's export with its body's counts changed. */
static json_t *
tampered(struct store *st, int attempt, const char *node, long p, long f)
{
	json_t *doc = store_sync_export(st, EVAL_ID), *r, *body;

	assert_non_null(doc);
	assert_int_equal(json_array_size(json_object_get(doc, "results")), 1);
	r = json_array_get(json_object_get(doc, "results"), 0);
	body = json_object_get(r, "body");
	json_object_set_new(r, "attempt", json_integer(attempt));
	json_object_set_new(r, "node", json_string(node));
	json_object_set_new(body, "attempt", json_integer(attempt));
	json_object_set_new(body, "node", json_string(node));
	json_object_set_new(body, "passed", json_integer(p));
	json_object_set_new(body, "failed", json_integer(f));
	return doc;
}

static void
test_replays_change_nothing_unless_they_win(void **state)
{
	struct store *st = open_with_one_module();
	struct store_claim c;
	json_t *r = result(3, 1), *doc;

	(void)state;
	assert_int_equal(helper_claim(st, "127.0.0.1:5", &c), 1);
	assert_int_equal(store_record_result(st, &c, "127.0.0.1:5", r, 5.0), 1);
	json_decref(r);

	/* the same (attempt, node), another outcome: a replay */
	doc = tampered(st, 1, "127.0.0.1:5", 0, 4);
	assert_int_equal(store_sync_merge(st, doc), 0);
	json_decref(doc);
	/* an older attempt */
	doc = tampered(st, 0, "127.0.0.1:1", 0, 4);
	assert_int_equal(store_sync_merge(st, doc), 0);
	json_decref(doc);
	/* the same attempt from a higher address */
	doc = tampered(st, 1, "127.0.0.1:9", 0, 4);
	assert_int_equal(store_sync_merge(st, doc), 0);
	json_decref(doc);
	assert_int_equal(status_int(st, "passed"), 3);
	assert_int_equal(status_int(st, "failed"), 1);
	assert_int_equal(status_int(st, "executed"), 1);

	/* the same attempt from a lower address wins (a healed partition) */
	doc = tampered(st, 1, "127.0.0.1:4", 2, 2);
	assert_int_equal(store_sync_merge(st, doc), 1);
	json_decref(doc);
	assert_int_equal(status_int(st, "passed"), 2);
	assert_int_equal(status_int(st, "failed"), 2);
	/* and a later attempt wins over it, wherever it ran */
	doc = tampered(st, 2, "127.0.0.1:9", 4, 0);
	assert_int_equal(store_sync_merge(st, doc), 1);
	json_decref(doc);
	assert_int_equal(status_int(st, "passed"), 4);
	assert_int_equal(status_int(st, "failed"), 0);
	/* still one module, counted once */
	assert_int_equal(status_int(st, "executed"), 1);
	assert_int_equal(status_int(st, "pending"), 0);
	close_fresh(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replays_change_nothing_unless_they_win),
		cmocka_unit_test(test_release_after_result_keeps_it_final),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
