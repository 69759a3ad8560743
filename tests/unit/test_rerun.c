/*
 * test_rerun.c - reruns of failed modules: which results get one, and the
 * merged result of several runs, exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <jansson.h>

#include "runner/rerun.h"

static char *
dumps(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static void
test_merge_runs(void **state)
{
	json_t *runs, *m;
	char *s;

	(void)state;
	runs = json_pack("[{s:s, s:i, s:i, s:i, s:f, s:s, s:[{s:s}]}, "
			 "{s:s, s:i, s:i, s:i, s:f, s:s, s:[{s:s}]}]",
			 "outcome", "finished", "passed", 1, "failed", 1, "skipped", 0,
			 "duration", 2.0, "stdout", "big", "tests", "outcome", "failed",
			 "outcome", "finished", "passed", 2, "failed", 0, "skipped", 0,
			 "duration", 1.0, "stdout", "ok", "tests", "outcome", "passed");
	m = rerun_merge(runs);
	s = dumps(m);
	assert_string_equal(s, "{\"duration\":1.0,\"failed\":0,\"first_result\":{\"duration\":"
			    "2.0,\"failed\":1,\"outcome\":\"finished\",\"passed\":1,\"skipped\":0,"
			    "\"tests\":[{\"outcome\":\"failed\"}]},\"flaky\":true,\"outcome\":"
			    "\"finished\",\"passed\":2,\"runs\":[{\"duration\":2.0,\"failed\":1,"
			    "\"outcome\":\"finished\",\"passed\":1,\"skipped\":0},{\"duration\":1.0,"
			    "\"failed\":0,\"outcome\":\"finished\",\"passed\":2,\"skipped\":0}],"
			    "\"skipped\":0,\"stdout\":\"ok\",\"tests\":[{\"outcome\":\"passed\"}]}");
	free(s);
	json_decref(m);
	/* still failing at the end: not flaky */
	json_object_set_new(json_array_get(runs, 1), "failed", json_integer(1));
	m = rerun_merge(runs);
	assert_true(json_is_false(json_object_get(m, "flaky")));
	assert_int_equal(json_array_size(json_object_get(m, "runs")), 2);
	json_decref(m);
	/* one run: unchanged */
	json_array_remove(runs, 1);
	m = rerun_merge(runs);
	assert_null(json_object_get(m, "runs"));
	assert_null(json_object_get(m, "flaky"));
	json_decref(m);
	json_decref(runs);
}

static void
test_should_rerun(void **state)
{
	json_t *r;

	(void)state;
	r = json_pack("{s:s, s:i}", "outcome", "timeout", "failed", 2);
	assert_int_equal(rerun_wanted(r), 1);
	json_decref(r);
	r = json_pack("{s:s, s:i}", "outcome", "finished", "failed", 0);
	assert_int_equal(rerun_wanted(r), 0);
	json_decref(r);
	r = json_pack("{s:s, s:i}", "outcome", "infra_error", "failed", 1);
	assert_int_equal(rerun_wanted(r), 0);
	json_decref(r);
	r = json_pack("{s:s, s:i, s:b}", "outcome", "finished", "failed", 1, "config_error", 1);
	assert_int_equal(rerun_wanted(r), 0);
	json_decref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_runs),
		cmocka_unit_test(test_should_rerun),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
