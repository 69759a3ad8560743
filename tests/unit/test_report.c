/*
 * test_report.c - the counting rules of report_build, table-driven over
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

#include "runner/report.h"

#define M "tests/test_m.py"
#define T(n) M "::test_" #n
#define HELLO "{\"ev\":\"hello\",\"pytest\":\"7.2.1\"}\n"
#define START(id) "{\"ev\":\"start\",\"nodeid\":\"" id "\"}\n"
#define FIN(id) "{\"ev\":\"finish\",\"nodeid\":\"" id "\"}\n"
#define END(n) "{\"ev\":\"end\",\"exitstatus\":" #n "}\n"
#define REP(id, when, out, xf, sx) \
	"{\"ev\":\"report\",\"nodeid\":\"" id "\",\"when\":\"" when "\",\"outcome\":\"" \
	out "\",\"duration\":0.25,\"wasxfail\":" xf ",\"strict_xpass\":" sx "}\n"
#define REPM(id, when, out, msg) \
	"{\"ev\":\"report\",\"nodeid\":\"" id "\",\"when\":\"" when "\",\"outcome\":\"" \
	out "\",\"duration\":0.25,\"wasxfail\":false,\"strict_xpass\":false,\"message\":\"" msg "\"}\n"
#define OK(id, when) REP(id, when, "passed", "false", "false")
#define PASS(id) START(id) OK(id, "setup") OK(id, "call") OK(id, "teardown") FIN(id)
#define COLL1(a) "{\"ev\":\"collected\",\"nodeids\":[\"" a "\"]}\n"
#define COLL6 "{\"ev\":\"collected\",\"nodeids\":[\"" T(1) "\",\"" T(2) "\",\"" T(3) \
	"\",\"" T(4) "\",\"" T(5) "\",\"" T(6) "\"]}\n"

struct report_case {
	const char *name;
	const char *stream;
	struct report_exit ex;
	const char *outcome;
	long passed, failed, skipped, errors;
	const char *tests;   /* comma-separated outcomes, in order */
	const char *message; /* exact module message, NULL: none */
	const char *first_msg; /* exact message of the first test, NULL: not checked */
	const char *first_phase;
};

#define EXITED(code) { .started = 1, .exit_code = (code), .duration = 1.5, .module = M }

static const struct report_case report_cases[] = {
	{ "all passed", HELLO "{\"ev\":\"collected\",\"nodeids\":[\"" T(1) "\",\"" T(2) "\"]}\n"
	  PASS(T(1)) PASS(T(2)) END(0), EXITED(0),
	  "finished", 2, 0, 0, 0, "passed,passed", NULL, NULL, NULL },
	{ "failed call", HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  REPM(T(1), "call", "failed", "E   assert 1 == 2") OK(T(1), "teardown") FIN(T(1)) END(1),
	  EXITED(1), "finished", 0, 1, 0, 0, "failed", NULL, "E   assert 1 == 2", "call" },
	{ "error in setup", HELLO COLL1(T(1)) START(T(1)) REPM(T(1), "setup", "failed", "fixture boom")
	  OK(T(1), "teardown") FIN(T(1)) END(1),
	  EXITED(1), "finished", 0, 1, 0, 1, "error", NULL, "fixture boom", "setup" },
	{ "pass then error in teardown", HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  OK(T(1), "call") REPM(T(1), "teardown", "failed", "teardown boom") FIN(T(1)) END(1),
	  EXITED(1), "finished", 0, 1, 0, 1, "error", NULL, "teardown boom", "teardown" },
	{ "skipped", HELLO COLL1(T(1)) START(T(1)) REPM(T(1), "setup", "skipped", "not today")
	  OK(T(1), "teardown") FIN(T(1)) END(0),
	  EXITED(0), "finished", 0, 0, 1, 0, "skipped", NULL, "not today", NULL },
	{ "xfailed", HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  REP(T(1), "call", "skipped", "true", "false") OK(T(1), "teardown") FIN(T(1)) END(0),
	  EXITED(0), "finished", 1, 0, 0, 0, "xfailed", NULL, NULL, NULL },
	{ "non-strict xpass", HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  REP(T(1), "call", "passed", "true", "false") OK(T(1), "teardown") FIN(T(1)) END(0),
	  EXITED(0), "finished", 1, 0, 0, 0, "xpassed", NULL, NULL, NULL },
	{ "strict xpass", HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  REP(T(1), "call", "failed", "false", "true") OK(T(1), "teardown") FIN(T(1)) END(1),
	  EXITED(1), "finished", 0, 1, 0, 0, "failed", NULL, NULL, "call" },
	{ "collect error", HELLO "{\"ev\":\"collect_error\",\"nodeid\":\"" M "\",\"message\":"
	  "\"ImportError: no module named x\"}\n" "{\"ev\":\"collected\",\"nodeids\":[]}\n" END(2),
	  EXITED(2), "finished", 0, 1, 0, 1, "error", NULL, "ImportError: no module named x", "collect" },
	{ "timeout during test 4 of 6", HELLO COLL6 PASS(T(1)) PASS(T(2)) PASS(T(3))
	  START(T(4)) OK(T(4), "setup"),
	  { .started = 1, .term_signal = 9, .timed_out = 1, .duration = 5.01, .timeout = 5, .module = M },
	  "timeout", 3, 3, 0, 3, "passed,passed,passed,error,error,error",
	  "timed out after 5 s during tests/test_m.py::test_4", NULL, NULL },
	{ "os._exit", HELLO COLL1(T(1) "\",\"" T(2)) PASS(T(1)) START(T(2)) OK(T(2), "setup"),
	  EXITED(3), "crashed", 1, 1, 0, 1, "passed,error",
	  "interpreter died (exit status 3) during tests/test_m.py::test_2", NULL, NULL },
	{ "killed by signal", HELLO COLL1(T(1)) START(T(1)),
	  { .started = 1, .term_signal = 9, .duration = 0.5, .module = M },
	  "crashed", 0, 1, 0, 1, "error",
	  "killed by signal 9 (SIGKILL) during tests/test_m.py::test_1",
	  "killed by signal 9 (SIGKILL) during this test", "setup" },
	{ "died during collection", HELLO, EXITED(0), "crashed", 0, 1, 0, 1, "error",
	  "interpreter died (exit status 0) during collection", NULL, "collect" },
	{ "no hello", "", { .started = 1, .exit_code = 1, .duration = 0.1, .module = M,
	  .stderr_tail = "Traceback...\n/v/bin/python: No module named pytest\n" },
	  "infra_error", 0, 1, 0, 1, "error",
	  "pytest could not start: /v/bin/python: No module named pytest", NULL, "collect" },
	{ "not started", "", { .started = 0, .start_error = "cannot execute /x: No such file or directory",
	  .module = M }, "infra_error", 0, 1, 0, 1, "error",
	  "cannot execute /x: No such file or directory", NULL, "collect" },
	{ "usage error", HELLO END(4), { .started = 1, .exit_code = 4, .module = M,
	  .stderr_tail = "ERROR: usage: pytest\npytest: error: unrecognized arguments: --bad\n" },
	  "infra_error", 0, 1, 0, 1, "error",
	  "pytest usage error: pytest: error: unrecognized arguments: --bad", NULL, NULL },
	{ "nothing collected", HELLO "{\"ev\":\"collected\",\"nodeids\":[]}\n" END(5), EXITED(5),
	  "finished", 0, 0, 0, 0, "", NULL, NULL, NULL },
	{ "garbage and a truncated line", HELLO "not json\n[1,2]\n{\"ev\":3}\n\n"
	  "{\"ev\":\"report\",\"nodeid\":7,\"when\":\"call\"}\n" COLL1(T(1)) PASS(T(1)) END(0)
	  "{\"ev\":\"report\",\"nodeid\":\"x\",\"wh", EXITED(0),
	  "finished", 1, 0, 0, 0, "passed", NULL, NULL, NULL },
	{ "stopped early with end", HELLO COLL1(T(1) "\",\"" T(2)) PASS(T(1)) END(2), EXITED(2),
	  "finished", 1, 1, 0, 1, "passed,error", NULL, NULL, NULL },
	/* out of memory */
	{ "oom: died of MemoryError during a test", HELLO COLL1(T(1) "\",\"" T(2)) PASS(T(1))
	  START(T(2)) OK(T(2), "setup"),
	  { .started = 1, .exit_code = 1, .duration = 2, .module = M,
	    .stderr_tail = "Traceback (most recent call last):\n  File \"x.py\", line 3\nMemoryError\n" },
	  "oom", 1, 1, 0, 1, "passed,error",
	  "out of memory (MemoryError) during tests/test_m.py::test_2",
	  NULL, NULL },
	{ "oom: MemoryError as a pytest internal error", HELLO COLL1(T(1)) START(T(1))
	  OK(T(1), "setup") END(3),
	  { .started = 1, .exit_code = 3, .duration = 2, .module = M,
	    .stderr_tail = "INTERNALERROR> MemoryError\n" },
	  "oom", 0, 1, 0, 1, "error",
	  "out of memory (MemoryError) during tests/test_m.py::test_1",
	  "out of memory (MemoryError) during this test", "call" },
	{ "oom: MemoryError as a pytest internal error, on stdout only",
	  HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup") END(3),
	  { .started = 1, .exit_code = 3, .duration = 2, .module = M, .stderr_tail = "",
	    .stdout_tail = "INTERNALERROR>   File \"x.py\"\nINTERNALERROR> MemoryError\n\n"
	    "2 warnings in 0.02s\n" },
	  "oom", 0, 1, 0, 1, "error",
	  "out of memory (MemoryError) during tests/test_m.py::test_1",
	  "out of memory (MemoryError) during this test", "call" },
	{ "internal error: its last line from stdout when stderr is empty", HELLO END(3),
	  { .started = 1, .exit_code = 3, .duration = 2, .module = M, .stderr_tail = "",
	    .stdout_tail = "INTERNALERROR> ValueError: bad hook\n" },
	  "infra_error", 0, 1, 0, 1, "error", "pytest internal error: ValueError: bad hook",
	  NULL, "collect" },
	{ "oom: the OOM killer (cgroup) sent SIGKILL", HELLO COLL1(T(1)) START(T(1)),
	  { .started = 1, .term_signal = 9, .oom_kill = 1, .duration = 2, .module = M },
	  "oom", 0, 1, 0, 1, "error",
	  "out of memory (killed by the OOM killer) during tests/test_m.py::test_1",
	  NULL, "setup" },
	{ "oom: ENOMEM as the last words", HELLO,
	  { .started = 1, .exit_code = 1, .duration = 2, .module = M,
	    .stderr_tail = "OSError: [Errno 12] Cannot allocate memory\n" },
	  "oom", 0, 1, 0, 1, "error", "out of memory (MemoryError) during collection", NULL,
	  "collect" },
	{ "not oom: a test that caught MemoryError and failed",
	  HELLO COLL1(T(1)) START(T(1)) OK(T(1), "setup")
	  REPM(T(1), "call", "failed", "E   MemoryError") OK(T(1), "teardown") FIN(T(1)) END(1),
	  { .started = 1, .exit_code = 1, .duration = 2, .module = M,
	    .stderr_tail = "MemoryError\n" },
	  "finished", 0, 1, 0, 0, "failed", NULL, "E   MemoryError", "call" },
	{ "not oom: SIGKILL without the OOM killer", HELLO COLL1(T(1)) START(T(1)),
	  { .started = 1, .term_signal = 9, .duration = 2, .module = M,
	    .stderr_tail = "something else\n" },
	  "crashed", 0, 1, 0, 1, "error", "killed by signal 9 (SIGKILL) during tests/test_m.py::test_1",
	  NULL, NULL },
	{ "not oom: timed out with MemoryError on stderr", HELLO COLL1(T(1)) START(T(1)),
	  { .started = 1, .term_signal = 9, .timed_out = 1, .oom_kill = 1, .timeout = 3,
	    .duration = 3, .module = M, .stderr_tail = "MemoryError\n" },
	  "timeout", 0, 1, 0, 1, "error", "timed out after 3 s during tests/test_m.py::test_1",
	  NULL, NULL },
	{ "not oom: an infra error stays one", "",
	  { .started = 1, .exit_code = 1, .duration = 0.1, .module = M,
	    .stderr_tail = "MemoryError\n" },
	  "infra_error", 0, 1, 0, 1, "error", "pytest could not start: MemoryError", NULL,
	  "collect" },
};

static void
test_report_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(report_cases) / sizeof(report_cases[0]); i++) {
		const struct report_case *c = &report_cases[i];
		json_t *r = report_build(c->stream, strlen(c->stream), &c->ex);
		char got[512] = "";
		size_t k, used = 0;
		json_t *t;

		print_message("case: %s\n", c->name);
		assert_non_null(r);
		assert_string_equal(json_string_value(json_object_get(r, "outcome")), c->outcome);
		assert_int_equal(json_integer_value(json_object_get(r, "passed")), c->passed);
		assert_int_equal(json_integer_value(json_object_get(r, "failed")), c->failed);
		assert_int_equal(json_integer_value(json_object_get(r, "skipped")), c->skipped);
		assert_int_equal(json_integer_value(json_object_get(r, "errors")), c->errors);
		json_array_foreach(json_object_get(r, "tests"), k, t) {
			int n = snprintf(got + used, sizeof(got) - used, "%s%s", k ? "," : "",
					 json_string_value(json_object_get(t, "outcome")));
			assert_true(n > 0 && (size_t)n < sizeof(got) - used);
			used += (size_t)n;
		}
		assert_string_equal(got, c->tests);
		if (c->message != NULL)
			assert_string_equal(json_string_value(json_object_get(r, "message")), c->message);
		else
			assert_null(json_object_get(r, "message"));
		json_t *first = json_array_get(json_object_get(r, "tests"), 0);
		if (c->first_msg != NULL)
			assert_string_equal(json_string_value(json_object_get(first, "message")),
					    c->first_msg);
		if (c->first_phase != NULL)
			assert_string_equal(json_string_value(json_object_get(first, "phase")),
					    c->first_phase);
		if (c->ex.started && c->ex.term_signal == 0) {
			assert_int_equal(json_integer_value(json_object_get(r, "exit_code")),
					 c->ex.exit_code);
			assert_true(json_is_null(json_object_get(r, "signal")));
		} else if (c->ex.started) {
			assert_int_equal(json_integer_value(json_object_get(r, "signal")),
					 c->ex.term_signal);
			assert_true(json_is_null(json_object_get(r, "exit_code")));
		}
		json_decref(r);
	}
}

/* Durations sum over phases; the module keys of a not-run test are exact. */
static void
test_report_details(void **state)
{
	(void)state;
	const char *s = HELLO COLL6 PASS(T(1)) START(T(2)) OK(T(2), "setup");
	struct report_exit ex = { .started = 1, .term_signal = 11, .duration = 2, .module = M };
	json_t *r = report_build(s, strlen(s), &ex);
	json_t *tests = json_object_get(r, "tests");

	assert_int_equal(json_array_size(tests), 6);
	json_t *t1 = json_array_get(tests, 0), *t2 = json_array_get(tests, 1);
	json_t *t3 = json_array_get(tests, 2);
	assert_string_equal(json_string_value(json_object_get(t1, "nodeid")), T(1));
	assert_true(json_real_value(json_object_get(t1, "duration")) == 0.75);
	assert_string_equal(json_string_value(json_object_get(t1, "counted")), "passed");
	assert_string_equal(json_string_value(json_object_get(t2, "phase")), "call");
	assert_string_equal(json_string_value(json_object_get(t3, "message")),
			    "not run: killed by signal 11 (SIGSEGV)");
	assert_string_equal(json_string_value(json_object_get(t3, "counted")), "failed");
	assert_string_equal(json_string_value(json_object_get(r, "outcome")), "crashed");
	json_decref(r);
}

static void
test_report_json_text(void **state)
{
	(void)state;
	json_t *j = report_json_text("a\xff" "b\0c\xc3\xa9\xed\xa0\x80", 10);
	assert_string_equal(json_string_value(j), "a?b?c\xc3\xa9???");
	json_decref(j);
	char *big = malloc(100000);
	memset(big, 'x', 100000);
	big[99999] = '\xe2';
	j = report_json_text(big, 100000);
	assert_int_equal(json_string_length(j), 100000);
	assert_int_equal(json_string_value(j)[99999], '?');
	json_decref(j);
	free(big);
}

/* Hostile streams: deep nesting, wrong types, NUL bytes, a huge message. */
static void
test_report_hostile(void **state)
{
	(void)state;
	size_t n = 3 * 1024 * 1024;
	char *s = malloc(n + 200);
	size_t o = 0;
	o += (size_t)snprintf(s, 200, "%s", HELLO);
	for (size_t i = 0; i < 100000; i++)
		s[o++] = '[';
	s[o++] = '\n';
	o += (size_t)snprintf(s + o, 200, "{\"ev\":\"collected\",\"nodeids\":{\"a\":1}}\n");
	s[o++] = '\0';
	s[o++] = '\n';
	o += (size_t)snprintf(s + o, 200, "{\"ev\":\"end\",\"exitstatus\":\"zero\"}\n");
	struct report_exit ex = { .started = 1, .exit_code = 0, .module = M };
	json_t *r = report_build(s, o, &ex);
	/* end with a bad exitstatus is not a normal end */
	assert_string_equal(json_string_value(json_object_get(r, "outcome")), "infra_error");
	assert_int_equal(json_integer_value(json_object_get(r, "errors")), 1);
	json_decref(r);
	free(s);
}

/* Only the lines that carry the run's key are the plugin's. */
static void
test_report_keyed(void **state)
{
	const char *stream =
	    "{\"ev\": \"start\", \"nodeid\": \"t::a\", \"k\": \"0123abcd\"}\n"
	    "{\"ev\": \"report\", \"nodeid\": \"t::a\", \"outcome\": \"passed\"}\n"
	    "{\"ev\": \"report\", \"nodeid\": \"t::a\", \"k\": \"0123abce\"}\n"
	    "{\"ev\": \"report\", \"message\": \"0123abcd\"}\n"
	    "not json 0123abcd\n"
	    "{\"ev\": \"finish\", \"nodeid\": \"t::a\", \"k\": \"0123abcd\"}";
	size_t len;
	char *out = report_keep_keyed(stream, strlen(stream), "0123abcd", &len);

	(void)state;
	assert_string_equal(out, "{\"ev\": \"start\", \"nodeid\": \"t::a\", \"k\": \"0123abcd\"}\n"
			    "{\"ev\": \"finish\", \"nodeid\": \"t::a\", \"k\": \"0123abcd\"}\n");
	assert_int_equal(len, strlen(out));
	free(out);
	out = report_keep_keyed(stream, strlen(stream), NULL, &len);
	assert_int_equal(len, strlen(stream) + 1);
	free(out);
	out = report_keep_keyed(NULL, 0, "k", &len);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_cases),
		cmocka_unit_test(test_report_details),
		cmocka_unit_test(test_report_json_text),
		cmocka_unit_test(test_report_hostile),
		cmocka_unit_test(test_report_keyed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
