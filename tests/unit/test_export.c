/*
 * test_export.c - the export formats: exact CSV, JUnit XML and Gradescope
 * output for a small hand-written /results document, formula
 * neutralisation, XML escaping of markup and control characters, and the
 * one-line message rule.
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

#include "export/export.h"

#define ID "11111111-2222-4333-8444-555555555555"

/* alice: 3 passed (one xfailed), 3 failed (one failure, two errors), 1
 * skipped, one module still pending; bob: could not be cloned. */
static const char results_doc[] =
	"{\"id\": \"" ID "\", \"status\": \"done\", \"projects\": ["
	" {\"project_id\": \"alice\", \"passed\": 3, \"failed\": 3, \"skipped\": 1,"
	"  \"grade\": 10.0, \"error\": null,"
	"  \"warnings\": [\"requirements: 'x' was not installed\"], \"modules\": ["
	"  {\"module\": \"alice/tests/test_a.py\", \"path\": \"tests/test_a.py\","
	"   \"outcome\": \"finished\", \"node\": \"127.0.0.1:7001\", \"duration\": 1.5,"
	"   \"passed\": 2, \"failed\": 2, \"skipped\": 1, \"errors\": 1,"
	"   \"stdout\": \"2 passed\\n\", \"stderr\": \"\", \"tests\": ["
	"    {\"nodeid\": \"tests/test_a.py::test_ok\", \"outcome\": \"passed\","
	"     \"counted\": \"passed\", \"duration\": 0.25},"
	"    {\"nodeid\": \"tests/test_a.py::test_bad\", \"outcome\": \"failed\","
	"     \"counted\": \"failed\", \"duration\": 0.5, \"phase\": \"call\","
	"     \"message\": \"def test_bad():\\n>       assert 1 == 2\\nE       assert 1 == 2"
	"\\n\\ntests/test_a.py:4: AssertionError\"},"
	"    {\"nodeid\": \"tests/test_a.py::test_fix\", \"outcome\": \"error\","
	"     \"counted\": \"failed\", \"duration\": 0.125, \"phase\": \"setup\","
	"     \"message\": \"E   RuntimeError: setup boom\"},"
	"    {\"nodeid\": \"tests/test_a.py::test_skip\", \"outcome\": \"skipped\","
	"     \"counted\": \"skipped\", \"duration\": 0, \"message\": \"not today\"},"
	"    {\"nodeid\": \"tests/test_a.py::test_xf\", \"outcome\": \"xfailed\","
	"     \"counted\": \"passed\", \"duration\": 0.001, \"message\": \"known bug\"}]},"
	"  {\"module\": \"alice/tests/test_b.py\", \"path\": \"tests/test_b.py\","
	"   \"outcome\": \"timeout\", \"node\": \"127.0.0.1:7002\", \"duration\": 4.0,"
	"   \"message\": \"timed out after 4 s during tests/test_b.py::TestK::test_z[a::b]\","
	"   \"passed\": 1, \"failed\": 1, \"skipped\": 0, \"errors\": 1, \"tests\": ["
	"    {\"nodeid\": \"tests/test_b.py::TestK::test_y\", \"outcome\": \"passed\","
	"     \"counted\": \"passed\", \"duration\": 0.5},"
	"    {\"nodeid\": \"tests/test_b.py::TestK::test_z[a::b]\", \"outcome\": \"error\","
	"     \"counted\": \"failed\", \"duration\": 3.5, \"phase\": \"call\","
	"     \"message\": \"timed out after 4 s during this test\"}]},"
	"  {\"module\": \"alice/tests/test_c.py\", \"path\": \"tests/test_c.py\","
	"   \"state\": \"pending\", \"attempts\": 0}]},"
	" {\"project_id\": \"bob\", \"passed\": 0, \"failed\": 0, \"skipped\": 0,"
	"  \"grade\": 0, \"error\": \"cannot clone https://example.org/bob.git:\\n"
	"authentication failed\", \"warnings\": [], \"modules\": []}]}";

static const char csv_want[] =
	"id,passed,failed,skipped,percent,grade,error\r\n"
	"alice,3,3,1,50.00,10.00,\r\n"
	"bob,0,0,0,0.00,0.00,\"cannot clone https://example.org/bob.git:\n"
	"authentication failed\"\r\n";

static const char junit_want[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<testsuites name=\"meshtest evaluation " ID "\" tests=\"8\" failures=\"1\""
	" errors=\"3\" time=\"5.500\">\n"
	"  <testsuite name=\"alice/tests/test_a.py\" tests=\"5\" failures=\"1\" errors=\"1\""
	" skipped=\"1\" time=\"1.500\" hostname=\"127.0.0.1:7001\">\n"
	"    <testcase classname=\"alice.tests.test_a\" name=\"test_ok\" time=\"0.250\"/>\n"
	"    <testcase classname=\"alice.tests.test_a\" name=\"test_bad\" time=\"0.500\">\n"
	"      <failure message=\"assert 1 == 2\" type=\"call\">def test_bad():\n"
	"&gt;       assert 1 == 2\n"
	"E       assert 1 == 2\n"
	"\n"
	"tests/test_a.py:4: AssertionError</failure>\n"
	"    </testcase>\n"
	"    <testcase classname=\"alice.tests.test_a\" name=\"test_fix\" time=\"0.125\">\n"
	"      <error message=\"RuntimeError: setup boom\" type=\"setup\">E   RuntimeError:"
	" setup boom</error>\n"
	"    </testcase>\n"
	"    <testcase classname=\"alice.tests.test_a\" name=\"test_skip\" time=\"0.000\">\n"
	"      <skipped message=\"not today\"/>\n"
	"    </testcase>\n"
	"    <testcase classname=\"alice.tests.test_a\" name=\"test_xf\" time=\"0.001\"/>\n"
	"    <system-out>2 passed\n"
	"</system-out>\n"
	"  </testsuite>\n"
	"  <testsuite name=\"alice/tests/test_b.py\" tests=\"2\" failures=\"0\" errors=\"1\""
	" skipped=\"0\" time=\"4.000\" hostname=\"127.0.0.1:7002\">\n"
	"    <testcase classname=\"alice.tests.test_b.TestK\" name=\"test_y\" time=\"0.500\"/>\n"
	"    <testcase classname=\"alice.tests.test_b.TestK\" name=\"test_z[a::b]\""
	" time=\"3.500\">\n"
	"      <error message=\"timed out after 4 s during this test\" type=\"call\">timed out"
	" after 4 s during this test</error>\n"
	"    </testcase>\n"
	"  </testsuite>\n"
	"  <testsuite name=\"bob\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\""
	" time=\"0.000\">\n"
	"    <testcase classname=\"bob\" name=\"project error\" time=\"0.000\">\n"
	"      <error message=\"cannot clone https://example.org/bob.git:\" type=\"project\">"
	"cannot clone https://example.org/bob.git:\n"
	"authentication failed</error>\n"
	"    </testcase>\n"
	"  </testsuite>\n"
	"</testsuites>\n";

/* 20 / 6 per counted test of alice */
#define EACH "3.3333333333333335"
static const char gradescope_alice[] =
	"{\"score\": 10.0, \"max_score\": 20.0,"
	" \"output\": \"3 passed, 3 failed, 1 skipped\\nwarning: requirements: 'x' was not"
	" installed\\n\", \"tests\": ["
	" {\"name\": \"tests/test_a.py::test_ok\", \"status\": \"passed\", \"score\": " EACH ","
	"  \"max_score\": " EACH "},"
	" {\"name\": \"tests/test_a.py::test_bad\", \"status\": \"failed\", \"score\": 0.0,"
	"  \"max_score\": " EACH ", \"output\": \"def test_bad():\\n>       assert 1 == 2\\nE"
	"       assert 1 == 2\\n\\ntests/test_a.py:4: AssertionError\"},"
	" {\"name\": \"tests/test_a.py::test_fix\", \"status\": \"failed\", \"score\": 0.0,"
	"  \"max_score\": " EACH ", \"output\": \"E   RuntimeError: setup boom\"},"
	" {\"name\": \"tests/test_a.py::test_skip\", \"score\": 0.0, \"max_score\": 0.0,"
	"  \"output\": \"not today\"},"
	" {\"name\": \"tests/test_a.py::test_xf\", \"status\": \"passed\", \"score\": " EACH ","
	"  \"max_score\": " EACH ", \"output\": \"known bug\"},"
	" {\"name\": \"tests/test_b.py::TestK::test_y\", \"status\": \"passed\", \"score\": "
	EACH ", \"max_score\": " EACH "},"
	" {\"name\": \"tests/test_b.py::TestK::test_z[a::b]\", \"status\": \"failed\","
	"  \"score\": 0.0, \"max_score\": " EACH ","
	"  \"output\": \"timed out after 4 s during this test\"}]}";

/* export_render's text of bob alone: the exact bytes */
static const char gradescope_bob_text[] =
	"{\n"
	"  \"score\": 0.0,\n"
	"  \"max_score\": 20.0,\n"
	"  \"output\": \"error: cannot clone https://example.org/bob.git:\\nauthentication"
	" failed\\n\",\n"
	"  \"tests\": [\n"
	"    {\n"
	"      \"name\": \"project error\",\n"
	"      \"status\": \"failed\",\n"
	"      \"score\": 0.0,\n"
	"      \"max_score\": 20.0,\n"
	"      \"output\": \"cannot clone https://example.org/bob.git:\\nauthentication"
	" failed\"\n"
	"    }\n"
	"  ]\n"
	"}\n";

static json_t *
load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (j == NULL)
		fail_msg("bad test JSON at %d:%d: %s", e.line, e.column, e.text);
	return j;
}

/* Every project of doc in format f, or NULL. */
static char *
render(const json_t *doc, enum export_format f, size_t *len)
{
	char *text = NULL;

	return export_render(doc, f, NULL, &text, len) == 0 ? text : NULL;
}

static void
test_csv_exact(void **state)
{
	json_t *doc = load(results_doc);
	size_t len;
	char *csv = render(doc, EXPORT_CSV, &len);

	(void)state;
	assert_non_null(csv);
	assert_string_equal(csv, csv_want);
	assert_int_equal(len, strlen(csv_want));
	free(csv);
	json_decref(doc);
}

static void
test_junit_exact(void **state)
{
	json_t *doc = load(results_doc);
	size_t len;
	char *xml = render(doc, EXPORT_JUNIT, &len);

	(void)state;
	assert_non_null(xml);
	assert_string_equal(xml, junit_want);
	assert_int_equal(len, strlen(junit_want));
	free(xml);
	json_decref(doc);
}

static void
test_gradescope_exact(void **state)
{
	json_t *doc = load(results_doc), *want = load(gradescope_alice), *got, *all;
	char *text = NULL;
	size_t len;

	(void)state;
	got = export_gradescope_project(export_project(doc, "alice"));
	if (!json_equal(got, want)) {
		char *s = json_dumps(got, JSON_INDENT(1));
		fail_msg("gradescope of alice:\n%s", s);
	}
	json_decref(got);

	/* one project: its results.json alone, byte for byte */
	assert_int_equal(export_render(doc, EXPORT_GRADESCOPE, "bob", &text, &len), 0);
	assert_string_equal(text, gradescope_bob_text);
	assert_int_equal(len, strlen(gradescope_bob_text));
	free(text);

	/* every project: {"projects": {"alice": ..., "bob": ...}} in order */
	assert_int_equal(export_render(doc, EXPORT_GRADESCOPE, NULL, &text, &len), 0);
	all = load(text);
	assert_int_equal(json_object_size(json_object_get(all, "projects")), 2);
	assert_true(json_equal(json_object_get(json_object_get(all, "projects"), "alice"),
	    want));
	assert_non_null(strstr(text, "\"alice\""));
	assert_true(strstr(text, "\"alice\"") < strstr(text, "\"bob\""));
	{
		/* written a project at a time, the bytes jansson writes for the whole */
		json_t *whole = json_object(), *ps = json_object();
		char *want_text;

		json_object_set_new(ps, "alice", export_gradescope_project(export_project(doc,
		    "alice")));
		json_object_set_new(ps, "bob", export_gradescope_project(export_project(doc,
		    "bob")));
		json_object_set_new(whole, "projects", ps);
		want_text = json_dumps(whole, JSON_INDENT(2));
		assert_int_equal(len, strlen(want_text) + 1);
		assert_memory_equal(text, want_text, strlen(want_text));
		assert_int_equal(text[len - 1], '\n');
		free(want_text);
		json_decref(whole);
	}
	free(text);
	json_decref(all);
	/* no project at all: the same rule */
	{
		json_t *none = json_pack("{s:s, s:[]}", "id", ID, "projects");

		assert_int_equal(export_render(none, EXPORT_GRADESCOPE, NULL, &text, &len), 0);
		assert_string_equal(text, "{\n  \"projects\": {}\n}\n");
		free(text);
		json_decref(none);
	}
	json_decref(want);
	json_decref(doc);
}

static void
test_render_project_and_formats(void **state)
{
	json_t *doc = load(results_doc);
	enum export_format f = EXPORT_CSV;
	char *text = (char *)"x";
	size_t len = 9;

	(void)state;
	assert_int_equal(export_render(doc, EXPORT_CSV, "bob", &text, &len), 0);
	assert_string_equal(text, "id,passed,failed,skipped,percent,grade,error\r\n"
	    "bob,0,0,0,0.00,0.00,\"cannot clone https://example.org/bob.git:\n"
	    "authentication failed\"\r\n");
	free(text);
	assert_int_equal(export_render(doc, EXPORT_JUNIT, "bob", &text, &len), 0);
	assert_non_null(strstr(text, " tests=\"1\" failures=\"0\" errors=\"1\" time=\"0.000\">"));
	assert_null(strstr(text, "alice"));
	free(text);
	text = (char *)"x";
	assert_int_equal(export_render(doc, EXPORT_CSV, "carol", &text, &len), -ENOENT);
	assert_null(text);
	assert_int_equal(len, 0);
	assert_int_equal(export_render(doc, EXPORT_GRADESCOPE, "", &text, &len), -ENOENT);

	assert_int_equal(export_format_parse("csv", &f), 0);
	assert_int_equal(f, EXPORT_CSV);
	assert_int_equal(export_format_parse("junit", &f), 0);
	assert_int_equal(f, EXPORT_JUNIT);
	assert_int_equal(export_format_parse("gradescope", &f), 0);
	assert_int_equal(f, EXPORT_GRADESCOPE);
	assert_int_equal(export_format_parse("CSV", &f), -EINVAL);
	assert_int_equal(export_format_parse("xml", &f), -EINVAL);
	assert_int_equal(export_format_parse("", &f), -EINVAL);
	assert_int_equal(export_format_parse(NULL, &f), -EINVAL);
	assert_string_equal(export_content_type(EXPORT_CSV), "text/csv; charset=utf-8");
	assert_string_equal(export_content_type(EXPORT_JUNIT), "application/xml");
	assert_string_equal(export_content_type(EXPORT_GRADESCOPE), "application/json");

	/* an evaluation with no projects yet: the header alone, an empty suite list */
	json_decref(doc);
	doc = load("{\"id\": \"" ID "\", \"projects\": []}");
	text = render(doc, EXPORT_CSV, &len);
	assert_string_equal(text, "id,passed,failed,skipped,percent,grade,error\r\n");
	free(text);
	text = render(doc, EXPORT_JUNIT, &len);
	assert_string_equal(text, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<testsuites name=\"meshtest evaluation " ID "\" tests=\"0\" failures=\"0\""
	    " errors=\"0\" time=\"0.000\">\n</testsuites>\n");
	free(text);
	json_decref(doc);
}

/* Cells a spreadsheet would run as a formula get a leading quote. */
static void
test_csv_formulas(void **state)
{
	static const struct {
		const char *id, *error, *row;
	} cases[] = {
		{ "=cmd|' /C calc'!A0", NULL, "'=cmd|' /C calc'!A0,1,0,0,100.00,20.00," },
		{ "+1", NULL, "'+1,1,0,0,100.00,20.00," },
		{ "-2", NULL, "'-2,1,0,0,100.00,20.00," },
		{ "@SUM(A1)", NULL, "'@SUM(A1),1,0,0,100.00,20.00," },
		{ "\tTAB", NULL, "'\tTAB,1,0,0,100.00,20.00," },
		{ "\rCR", NULL, "\"'\rCR\",1,0,0,100.00,20.00," },
		{ "=1,2", NULL, "\"'=1,2\",1,0,0,100.00,20.00," },
		{ "a,b", NULL, "\"a,b\",1,0,0,100.00,20.00," },
		{ "say \"hi\"", NULL, "\"say \"\"hi\"\"\",1,0,0,100.00,20.00," },
		{ "x=1", NULL, "x=1,1,0,0,100.00,20.00," },
		{ "e1", "=HYPERLINK(\"http://x\")",
		  "e1,1,0,0,100.00,20.00,\"'=HYPERLINK(\"\"http://x\"\")\"" },
		{ "e2", "-1+2", "e2,1,0,0,100.00,20.00,'-1+2" },
		{ "e3", "@x", "e3,1,0,0,100.00,20.00,'@x" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *doc = json_pack("{s:[{s:s, s:i, s:i, s:i, s:f, s:s?}]}", "projects",
		    "project_id", cases[i].id, "passed", 1, "failed", 0, "skipped", 0, "grade",
		    20.0, "error", cases[i].error);
		char *want = NULL, *csv;
		size_t len;

		assert_non_null(doc);
		csv = render(doc, EXPORT_CSV, &len);
		assert_non_null(csv);
		if (asprintf(&want, "id,passed,failed,skipped,percent,grade,error\r\n%s\r\n",
		    cases[i].row) < 0)
			fail();
		if (strcmp(csv, want) != 0)
			fail_msg("case %zu: got [%s], want [%s]", i, csv, want);
		free(want);
		free(csv);
		json_decref(doc);
	}
}

/* Markup in names and messages is text; XML 1.0's illegal characters go. */
static void
test_junit_escaping(void **state)
{
	const char *name = "tests/test_x.py::test_<img src=x onerror=alert(1)>";
	/* \001 and ESC are illegal in XML 1.0, U+FFFE (EF BF BE) too, as is the
	 * stray byte \377; CR would be read back as LF if written raw */
	const char *msg = "a\001b\033[31mc\rd\te\"f'g<h>&i\357\277\276j\377k";
	json_t *doc = json_pack("{s:s, s:[{s:s, s:s, s:[{s:s, s:s, s:f, s:[{s:s, s:s, s:s,"
	    " s:s, s:f}]}]}]}", "id", "<\"id\">", "projects", "project_id", "p<&>\"q",
	    "error", "bad\001 \"clone\"\r\n<x>", "modules", "module", "p/tests/test_x.py",
	    "outcome", "finished", "duration", 0.5, "tests", "nodeid", name, "outcome",
	    "failed", "counted", "failed", "message", "", "duration", 0.5);
	size_t len;
	char *xml;

	(void)state;
	assert_non_null(doc);
	/* a stored document is valid UTF-8; the writer copes even when it is not */
	json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(
	    json_array_get(json_object_get(doc, "projects"), 0), "modules"), 0), "tests"), 0),
	    "message", json_string_nocheck(msg));
	xml = render(doc, EXPORT_JUNIT, &len);
	assert_non_null(xml);
	assert_null(strstr(xml, "<img"));
	assert_null(strstr(xml, "\001"));
	assert_null(strstr(xml, "\033"));
	assert_null(strstr(xml, "\r"));
	assert_null(strstr(xml, "\357\277\276"));
	assert_null(strstr(xml, "\377"));
	assert_non_null(strstr(xml, "<testsuites name=\"meshtest evaluation &lt;&quot;id&quot;&gt;\""));
	assert_non_null(strstr(xml, "  <testsuite name=\"p&lt;&amp;&gt;&quot;q\" tests=\"1\""));
	assert_non_null(strstr(xml, "<testcase classname=\"p&lt;&amp;&gt;&quot;q\" name=\"project"
	    " error\" time=\"0.000\">\n      <error message=\"bad  &quot;clone&quot;\""
	    " type=\"project\">bad \"clone\"&#13;\n&lt;x&gt;</error>"));
	assert_non_null(strstr(xml, "<testcase classname=\"p&lt;&amp;&gt;&quot;q.tests.test_x\""
	    " name=\"test_&lt;img src=x onerror=alert(1)&gt;\" time=\"0.500\">\n"));
	/* the message line: controls are spaces; the body keeps tab and CR */
	assert_non_null(strstr(xml, "<failure message=\"a b [31mc d e&quot;f'g&lt;h&gt;&amp;ij?k\">"
	    "ab[31mc&#13;d\te\"f'g&lt;h&gt;&amp;ijk</failure>"));
	free(xml);
	json_decref(doc);
}

static void
test_message_line(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "def test_bad():\n>       assert 1 == 2\nE       assert 1 == 2\nE   more",
		  "assert 1 == 2" },
		{ "E\tValueError: x  ", "ValueError: x" },
		{ "\n  \n   timed out after 4 s during this test  \nsecond", "timed out after 4 s"
		  " during this test" },
		{ "Exception: not an E line\nE  real", "real" },
		{ "", "" },
		{ " \n\t\n", "" },
		{ "tab\there\033[2Jesc\001", "tab here [2Jesc" },
		{ "bad \377 byte", "bad ? byte" },
		{ "c1 \302\233 csi", "c1   csi" },
	};
	char out[EXPORT_LINE_MAX + 1], small[8], longer[400];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		export_message_line(cases[i].in, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got [%s], want [%s]", i, out, cases[i].want);
	}
	export_message_line(NULL, out, sizeof(out));
	assert_string_equal(out, "");

	/* cut to EXPORT_LINE_MAX bytes, marked, never inside a character */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	export_message_line(longer, out, sizeof(out));
	assert_int_equal(strlen(out), EXPORT_LINE_MAX);
	assert_string_equal(out + EXPORT_LINE_MAX - 3, "...");
	export_message_line("ab\303\251\303\251\303\251", small, sizeof(small));
	assert_string_equal(small, "ab\303\251...");
	export_message_line("abcdefg", small, sizeof(small));
	assert_string_equal(small, "abcdefg");
	export_message_line("abcdefgh", small, sizeof(small));
	assert_string_equal(small, "abcd...");

	export_clean_line("a\nb\033c", small, sizeof(small));
	assert_string_equal(small, "a b c");
	export_clean_line(NULL, small, sizeof(small));
	assert_string_equal(small, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_exact),
		cmocka_unit_test(test_junit_exact),
		cmocka_unit_test(test_gradescope_exact),
		cmocka_unit_test(test_render_project_and_formats),
		cmocka_unit_test(test_csv_formulas),
		cmocka_unit_test(test_junit_escaping),
		cmocka_unit_test(test_message_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
