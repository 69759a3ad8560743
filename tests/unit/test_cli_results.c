/*
 * test_cli_results.c - the client's short summary of what failed
 * (cli_failures_print): the exact lines, the cap and its "more" line, one
 * project, project errors, and names that try to drive the terminal.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli.h"

#define ID "11111111-2222-4333-8444-555555555555"

static const char results_doc[] =
	"{\"id\": \"" ID "\", \"status\": \"done\", \"projects\": ["
	" {\"project_id\": \"alice\", \"error\": null, \"modules\": ["
	"  {\"module\": \"alice/tests/test_a.py\", \"tests\": ["
	"   {\"nodeid\": \"tests/test_a.py::test_ok\", \"outcome\": \"passed\","
	"    \"counted\": \"passed\"},"
	"   {\"nodeid\": \"tests/test_a.py::test_bad\", \"outcome\": \"failed\","
	"    \"counted\": \"failed\", \"message\": \"def test_bad():\\n>       assert 1 == 2"
	"\\nE       assert 1 == 2\\n\\ntests/test_a.py:4: AssertionError\"},"
	"   {\"nodeid\": \"tests/test_a.py::test_fix\", \"outcome\": \"error\","
	"    \"counted\": \"failed\", \"message\": \"E   RuntimeError: setup boom\"},"
	"   {\"nodeid\": \"tests/test_a.py::test_skip\", \"outcome\": \"skipped\","
	"    \"counted\": \"skipped\", \"message\": \"not today\"},"
	"   {\"nodeid\": \"tests/test_a.py::test_strict\", \"outcome\": \"failed\","
	"    \"counted\": \"failed\"}]},"
	"  {\"module\": \"alice/tests/test_c.py\", \"state\": \"pending\"}]},"
	" {\"project_id\": \"bob\", \"error\": \"cannot clone https://example.org/bob.git:\\n"
	"authentication failed\", \"modules\": []},"
	" {\"project_id\": \"e\\u001b]0;pwned\\u0007vil\", \"error\": null, \"modules\": ["
	"  {\"module\": \"x\", \"tests\": ["
	"   {\"nodeid\": \"tests/test_x.py::test_\\u001b[2Jclear\", \"outcome\": \"error\","
	"    \"counted\": \"failed\", \"message\": \"\\u001b[31mred\\u001b[0m\"}]}]}]}";

#define L_BAD "FAILED alice/tests/test_a.py::test_bad - assert 1 == 2\n"
#define L_FIX "ERROR alice/tests/test_a.py::test_fix - RuntimeError: setup boom\n"
#define L_STRICT "FAILED alice/tests/test_a.py::test_strict\n"
#define L_EVIL "ERROR e ]0;pwned vil/tests/test_x.py::test_ [2Jclear - [31mred [0m\n"
#define L_BOB "PROJECT ERROR bob - cannot clone https://example.org/bob.git:\n"

/* cli_failures_print's output and return value. */
static char *
print(const char *project, long cap, long *count)
{
	json_t *doc = json_loads(results_doc, 0, NULL);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(doc);
	assert_non_null(f);
	*count = cli_failures_print(f, doc, project, cap, ID);
	fclose(f);
	json_decref(doc);
	return text;
}

static void
test_all(void **state)
{
	long n;
	char *out = print(NULL, -1, &n);

	(void)state;
	assert_string_equal(out, L_BAD L_FIX L_STRICT L_EVIL L_BOB);
	assert_int_equal(n, 5);
	free(out);
}

static void
test_cap(void **state)
{
	long n;
	char *out = print(NULL, 2, &n);

	(void)state;
	assert_string_equal(out, L_BAD L_FIX "... and 2 more failed or errored tests"
	    " (meshtest results " ID " lists them all)\n" L_BOB);
	assert_int_equal(n, 5);
	free(out);

	out = print(NULL, 3, &n);
	assert_string_equal(out, L_BAD L_FIX L_STRICT "... and 1 more failed or errored"
	    " test (meshtest results " ID " lists them all)\n" L_BOB);
	free(out);

	/* 0: no test lines at all; project errors still have their line */
	out = print(NULL, 0, &n);
	assert_string_equal(out, "... and 4 more failed or errored tests (meshtest"
	    " results " ID " lists them all)\n" L_BOB);
	assert_int_equal(n, 5);
	free(out);

	out = print(NULL, 4, &n);
	assert_string_equal(out, L_BAD L_FIX L_STRICT L_EVIL L_BOB);
	free(out);
}

static void
test_project(void **state)
{
	long n;
	char *out = print("alice", -1, &n);

	(void)state;
	assert_string_equal(out, L_BAD L_FIX L_STRICT);
	assert_int_equal(n, 3);
	free(out);
	out = print("bob", -1, &n);
	assert_string_equal(out, L_BOB);
	assert_int_equal(n, 1);
	free(out);
	out = print("nobody", -1, &n);
	assert_string_equal(out, "");
	assert_int_equal(n, 0);
	free(out);
}

static void
test_failures_parse(void **state)
{
	long n = -5;

	(void)state;
	assert_int_equal(cli_failures_parse("0", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cli_failures_parse("25", &n), 0);
	assert_int_equal(n, 25);
	assert_int_equal(cli_failures_parse("-1", &n), -EINVAL);
	assert_int_equal(cli_failures_parse("ten", &n), -EINVAL);
	assert_int_equal(cli_failures_parse("3x", &n), -EINVAL);
	assert_int_equal(cli_failures_parse("", &n), -EINVAL);
	assert_int_equal(cli_failures_parse(NULL, &n), -EINVAL);
	assert_int_equal(n, 25);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_project),
		cmocka_unit_test(test_failures_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
