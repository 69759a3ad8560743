/*
 * test_fetch_github.c - a Classroom assignment's repositories: which ones
 * a page of the API's answer contributes, and how the next page is found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fetch/fetch_github.h"

static void
test_page_filter(void **state)
{
	const char *page =
	    "[{\"name\": \"assignment-1-alice\", \"clone_url\": \"https://g/o/assignment-1-alice.git\"},"
	    " {\"name\": \"Assignment-1-Bob\", \"clone_url\": \"https://g/o/Assignment-1-Bob.git\"},"
	    " {\"name\": \"assignment-1-old\", \"clone_url\": \"https://g/o/old.git\", \"archived\": true},"
	    " {\"name\": \"assignment-1-tmpl\", \"clone_url\": \"https://g/o/tmpl.git\", \"is_template\": true},"
	    " {\"name\": \"assignment-10-x\", \"clone_url\": \"https://g/o/x.git\"},"
	    " {\"name\": \"website\", \"clone_url\": \"https://g/o/website.git\"},"
	    " {\"name\": \"assignment-1-nourl\"}, \"not an object\"]";
	struct fetch_github_query q = { .org = "o", .prefix = "assignment-1-" };
	char **urls = NULL, err[128];
	size_t n = 0, seen = 0;

	(void)state;
	assert_int_equal(fetch_github_page(page, strlen(page), &q, &urls, &n, &seen, err,
					   sizeof(err)), 0);
	assert_int_equal(seen, 8);
	assert_int_equal(n, 2);
	assert_string_equal(urls[0], "https://g/o/assignment-1-alice.git");
	assert_string_equal(urls[1], "https://g/o/Assignment-1-Bob.git");
	q.include_archived = 1;
	q.include_templates = 1;
	assert_int_equal(fetch_github_page(page, strlen(page), &q, &urls, &n, &seen, err,
					   sizeof(err)), 0);
	assert_int_equal(n, 6);
	assert_string_equal(urls[4], "https://g/o/old.git");
	assert_string_equal(urls[5], "https://g/o/tmpl.git");
	fetch_github_free(urls, n);
	urls = NULL;
	n = 0;
	assert_int_equal(fetch_github_page("{\"message\": \"x\"}", 16, &q, &urls, &n, &seen, err,
					   sizeof(err)), -EINVAL);
	assert_string_equal(err, "the GitHub API answered something other than a list of"
			    " repositories");
	assert_int_equal(n, 0);
}

static void
test_next_link(void **state)
{
	static const struct { const char *link, *want; } cases[] = {
		{ "<https://api/x?page=2>; rel=\"next\", <https://api/x?page=9>; rel=\"last\"",
		  "https://api/x?page=2" },
		{ "<https://api/x?page=1>; rel=\"prev\", <https://api/x?page=3>; rel=\"next\"",
		  "https://api/x?page=3" },
		{ "<https://api/x?page=1>; rel=\"first\", <https://api/x?page=1>; rel=\"prev\"",
		  NULL },
		{ "", NULL },
		{ "garbage; rel=\"next\"", NULL },
		{ NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = fetch_github_next(cases[i].link);
		if (cases[i].want == NULL) {
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_string_equal(got, cases[i].want);
		}
		free(got);
	}
}

static void
test_org_names(void **state)
{
	(void)state;
	assert_true(fetch_github_org_valid("school-2026"));
	assert_true(fetch_github_org_valid("A"));
	assert_false(fetch_github_org_valid(""));
	assert_false(fetch_github_org_valid("-lead"));
	assert_false(fetch_github_org_valid("../etc"));
	assert_false(fetch_github_org_valid("a/b"));
	assert_false(fetch_github_org_valid("a234567890123456789012345678901234567890"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_filter),
		cmocka_unit_test(test_next_link),
		cmocka_unit_test(test_org_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
