/*
 * test_session.c - a shared session's bookkeeping: which modules finished
 * in it, each module's own events, and per-module deadlines, over
 * hand-written plugin event streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "runner/report.h"
#include "runner/session.h"

#define A "tests/test_a.py"
#define B "tests/test_b.py"
#define C "tests/test_c.py"
#define HELLO "{\"ev\":\"hello\",\"pytest\":\"7.2.1\"}\n"
#define CSTART(m) "{\"ev\":\"collect_start\",\"path\":\"" m "\"}\n"
#define CERR(id) "{\"ev\":\"collect_error\",\"nodeid\":\"" id "\",\"message\":\"boom\"}\n"
#define COLL3 "{\"ev\":\"collected\",\"nodeids\":[\"" A "::t1\",\"" A "::t2\",\"" B "::t1\",\"" \
	C "::t1\"]}\n"
#define REP(id, when, out) "{\"ev\":\"report\",\"nodeid\":\"" id "\",\"when\":\"" when \
	"\",\"outcome\":\"" out "\",\"duration\":0.1,\"wasxfail\":false,\"strict_xpass\":false}\n"
#define RUN(id, out) "{\"ev\":\"start\",\"nodeid\":\"" id "\"}\n" REP(id, "setup", "passed") \
	REP(id, "call", out) REP(id, "teardown", "passed") "{\"ev\":\"finish\",\"nodeid\":\"" id "\"}\n"
#define END(n) "{\"ev\":\"end\",\"exitstatus\":" #n "}\n"

static const char *const mods3[] = { A, B, C };

static struct session *
feed_as(const char *stream, int normal, double step, int one_by_one)
{
	struct session *s = session_new(mods3, 3, 10.0, 0.0);
	double now = 0;

	if (one_by_one)
		session_one_by_one(s);

	for (const char *p = stream; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		now += step;
		session_on_line(s, p, n, now);
		p += n + (nl != NULL);
	}
	session_end(s, normal, now + step);
	return s;
}

static struct session *
feed(const char *stream, int normal, double step)
{
	return feed_as(stream, normal, step, 0);
}

/* Module i's part of the stream (session_streams, the others dropped). */
static char *
one_stream(struct session *s, const char *st, size_t i, size_t *len)
{
	size_t n = session_count(s), lens[8];
	char *out[8], *mine;

	assert_true(n <= 8 && i < n);
	session_streams(s, st, strlen(st), out, lens);
	for (size_t k = 0; k < n; k++)
		if (k != i)
			free(out[k]);
	mine = out[i];
	*len = lens[i];
	assert_int_equal(strlen(mine), *len);
	return mine;
}

static void
check_finished(struct session *s, int a, int b, int c)
{
	assert_int_equal(session_finished(s, 0), a);
	assert_int_equal(session_finished(s, 1), b);
	assert_int_equal(session_finished(s, 2), c);
}

static void
test_all_finish(void **state)
{
	const char *st = HELLO CSTART(A) CSTART(B) CSTART(C) COLL3 RUN(A "::t1", "passed")
		RUN(A "::t2", "failed") RUN(B "::t1", "passed") RUN(C "::t1", "passed") END(1);
	struct session *s = feed(st, 1, 0.5);
	size_t len;
	char *sub;
	json_t *r;
	struct report_exit ex = { .started = 1, .module = A };

	(void)state;
	check_finished(s, 1, 1, 1);
	/* A's own stream: its two tests, counted as alone */
	sub = one_stream(s, st, 0, &len);
	assert_non_null(strstr(sub, "\"collected\",\"nodeids\":[\"" A "::t1\",\"" A "::t2\"]"));
	assert_null(strstr(sub, B));
	assert_non_null(strstr(sub, "\"exitstatus\": 1"));
	r = report_build(sub, len, &ex);
	assert_string_equal(json_string_value(json_object_get(r, "outcome")), "finished");
	assert_int_equal(json_integer_value(json_object_get(r, "passed")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "failed")), 1);
	json_decref(r);
	free(sub);
	/* C: one passing test, exit status 0 */
	sub = one_stream(s, st, 2, &len);
	assert_non_null(strstr(sub, "\"exitstatus\": 0"));
	free(sub);
	/* time: A was current from its collection start to B's, and for its tests */
	assert_true(session_duration(s, 0) > 0 && session_duration(s, 1) > 0);
	session_free(s);
}

static void
test_crash_in_the_middle(void **state)
{
	/* B's test started and the interpreter died: no end event */
	const char *st = HELLO CSTART(A) CSTART(B) CSTART(C) COLL3 RUN(A "::t1", "passed")
		RUN(A "::t2", "passed") "{\"ev\":\"start\",\"nodeid\":\"" B "::t1\"}\n";
	struct session *s = feed(st, 0, 0.5);

	(void)state;
	/* A finished all its tests and keeps them; B and C run again alone */
	check_finished(s, 1, 0, 0);
	assert_int_equal(session_current(s), 1);
	session_free(s);
	/* a death during collection: no module's tests are known */
	st = HELLO CSTART(A) CSTART(B);
	s = feed(st, 0, 0.5);
	check_finished(s, 0, 0, 0);
	session_free(s);
}

static void
test_stopped_early(void **state)
{
	/* -x: the first failure ends the run; C never ran */
	const char *st = HELLO CSTART(A) CSTART(B) CSTART(C) COLL3 RUN(A "::t1", "failed")
		END(1);
	struct session *s = feed(st, 1, 0.5);

	(void)state;
	/* A's second test never ran, nor did B and C: all run again alone */
	check_finished(s, 0, 0, 0);
	session_free(s);
}

static void
test_collection_errors(void **state)
{
	/* B cannot be collected: one error, the others go on */
	const char *st = HELLO CSTART(A) CSTART(B) CERR(B) CSTART(C)
		"{\"ev\":\"collected\",\"nodeids\":[\"" A "::t1\",\"" C "::t1\"]}\n"
		RUN(A "::t1", "passed") RUN(C "::t1", "passed") END(1);
	struct session *s = feed(st, 1, 0.5);
	size_t len;
	char *sub;
	json_t *r;
	struct report_exit ex = { .started = 1, .module = B };

	(void)state;
	check_finished(s, 1, 1, 1);
	sub = one_stream(s, st, 1, &len);
	r = report_build(sub, len, &ex);
	assert_string_equal(json_string_value(json_object_get(r, "outcome")), "finished");
	assert_int_equal(json_integer_value(json_object_get(r, "failed")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "errors")), 1);
	json_decref(r);
	free(sub);
	session_free(s);
	/* an error no single module owns (a package's __init__): none counts */
	st = HELLO CSTART(A) CERR("tests") COLL3 RUN(A "::t1", "passed") END(1);
	s = feed(st, 1, 0.5);
	check_finished(s, 0, 0, 0);
	session_free(s);
}

static void
test_module_without_tests(void **state)
{
	/* C was collected and holds no test (or all were deselected) */
	const char *st = HELLO CSTART(A) CSTART(C)
		"{\"ev\":\"collected\",\"nodeids\":[\"" A "::t1\"]}\n" RUN(A "::t1", "passed")
		END(0);
	struct session *s = feed(st, 1, 0.5);

	(void)state;
	check_finished(s, 1, 1, 1);
	session_free(s);
}

static void
test_deadlines(void **state)
{
	struct session *s = session_new(mods3, 3, 10.0, 100.0);

	(void)state;
	/* before any collection the first module's clock runs */
	assert_true(session_deadline(s, 100.0) == 110.0);
	session_on_line(s, CSTART(A), strlen(CSTART(A)) - 1, 102.0);
	assert_true(session_deadline(s, 102.0) == 110.0);
	/* B starts collecting at 103: A used 3 s; B has its own 10 s */
	session_on_line(s, CSTART(B), strlen(CSTART(B)) - 1, 103.0);
	assert_true(session_deadline(s, 103.0) == 113.0);
	/* back to A's tests at 105: A has 7 s left */
	{
		const char *start = "{\"ev\":\"start\",\"nodeid\":\"" A "::t1\"}";
		session_on_line(s, start, strlen(start), 105.0);
	}
	assert_int_equal(session_current(s), 0);
	assert_true(session_deadline(s, 105.0) == 112.0);
	/* after the end nobody's clock runs */
	session_on_line(s, END(0), strlen(END(0)) - 1, 106.0);
	assert_true(session_deadline(s, 106.0) == 0);
	session_end(s, 1, 106.0);
	assert_true(session_duration(s, 0) == 3.0 + 1.0);
	assert_true(session_duration(s, 1) == 2.0);
	session_free(s);
}

static void
test_garbage_is_ignored(void **state)
{
	/* lines that are not events, events of modules nobody asked for */
	const char *st = HELLO "not json\n{\"ev\":42}\n" CSTART("tests/test_zzz.py")
		CSTART(A) "{\"ev\":\"collected\",\"nodeids\":[\"" A "::t1\", 7]}\n"
		RUN(A "::t1", "passed") "{\"ev\":\"finish\",\"nodeid\":\"nobody::x\"}\n" END(0);
	struct session *s = feed(st, 1, 0.5);

	(void)state;
	check_finished(s, 1, 1, 1);
	assert_int_equal(session_module_of(s, A "::t1[param::x]"), 0);
	assert_int_equal(session_module_of(s, "tests/test_q.py::t"), -1);
	assert_int_equal(session_module_of(s, NULL), -1);
	session_free(s);
}

#define EXIT(m, st, sig) "{\"ev\":\"module_exit\",\"path\":\"" m "\",\"status\":" #st \
	",\"signal\":" #sig "}\n"
#define COLL(m) "{\"ev\":\"collected\",\"nodeids\":[\"" m "::t1\"]}\n"

/*
 * Isolation "module" with pytest started once: each module in a process of
 * its own, one after the other, a module_exit marker after each. A exits
 * normally, B dies by a signal in its test, C is running when the run ends
 * (killed at its deadline). The node cuts each module's part at the
 * markers as the lines come (warm.c).
 */
static void
test_each_module_in_its_own_process(void **state)
{
	const char *st = HELLO CSTART(A) COLL(A) RUN(A "::t1", "passed") END(0) EXIT(A, 0, null)
		CSTART(B) COLL(B) "{\"ev\":\"start\",\"nodeid\":\"" B "::t1\"}\n"
		/* B's events about C make C neither current nor finished */
		CSTART(C) "{\"ev\":\"start\",\"nodeid\":\"" C "::t1\"}\n"
		EXIT(B, null, 11)
		/* a marker for no module of the run, or out of order, changes nothing */
		EXIT("tests/test_z.py", 0, null) EXIT(A, 0, null)
		CSTART(C) COLL(C) "{\"ev\":\"start\",\"nodeid\":\"" C "::t1\"}\n";
	struct session *s = feed_as(st, 0, 0.5, 1);
	int status = 7, sig = 7;

	(void)state;
	/* A and B ended in their processes; C did not: the caller decides (its deadline) */
	check_finished(s, 1, 1, 0);
	assert_int_equal(session_exit(s, 0, &status, &sig), 1);
	assert_int_equal(status, 0);
	assert_int_equal(sig, 0);
	assert_int_equal(session_exit(s, 1, &status, &sig), 1);
	assert_int_equal(status, -1);
	assert_int_equal(sig, 11);
	assert_int_equal(session_exit(s, 2, &status, &sig), 0);
	assert_int_equal(session_current(s), 2);
	/* session_on_line names the module a marker ends, and only then */
	{
		const char *const lines[] = { EXIT(B, 0, null), EXIT(A, 0, null), CSTART(B),
			EXIT(B, 0, null), EXIT(A, 0, null), EXIT(B, 0, null) };
		const long want[] = { -1, 0, -1, 1, -1, -1 };
		struct session *t = session_new(mods3, 3, 10.0, 0.0);

		session_one_by_one(t);
		for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
			assert_int_equal(session_on_line(t, lines[k], strlen(lines[k]) - 1, 1.0),
			    want[k]);
		assert_int_equal(session_current(t), 2);
		session_free(t);
	}
	/* one by one, the clock is C's only from B's marker on: five lines of
	 * half a second, and the end's half second (not B's forged C events) */
	assert_true(session_duration(s, 2) > 2.9 && session_duration(s, 2) < 3.1);
	/* each module's clock ran from its predecessor's marker */
	assert_true(session_duration(s, 1) > 0 && session_duration(s, 2) > 0);
	session_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_finish),
		cmocka_unit_test(test_crash_in_the_middle),
		cmocka_unit_test(test_stopped_early),
		cmocka_unit_test(test_collection_errors),
		cmocka_unit_test(test_module_without_tests),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_garbage_is_ignored),
		cmocka_unit_test(test_each_module_in_its_own_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
