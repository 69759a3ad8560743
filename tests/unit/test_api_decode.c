/*
 * test_api_decode.c - decoding of POST /evaluation JSON bodies and of the
 * evaluation settings, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "api/api_evaluation.h"
#include "engine/engine.h"
#include "engine/intake.h"

static void
test_bad_bodies(void **state)
{
	static const struct {
		const char *body;
		const char *msg; /* a part of the error */
	} cases[] = {
		{ "", "malformed JSON" },
		{ "{", "malformed JSON" },
		{ "[1,2]", "JSON object" },
		{ "{}", "missing field \"projects\"" },
		{ "{\"projects\": []}", "non-empty list" },
		{ "{\"projects\": \"https://h/r\"}", "non-empty list" },
		{ "{\"projects\": [1]}", "\"projects\"[0]" },
		{ "{\"projects\": [\"\"]}", "\"projects\"[0]" },
		{ "{\"projects\": [\"https://h/r\"], \"auth_token\": 5}", "auth_token" },
		{ "{\"projects\": [\"https://h/r\"], \"module_timeout\": 0}", "module_timeout" },
		{ "{\"projects\": [\"https://h/r\"], \"module_timeout\": \"x\"}", "module_timeout" },
		{ "{\"projects\": [\"a\"], \"projects\": [\"b\"]}", "malformed JSON" },
		{ "{\"organization\": 5}", "GitHub organization name" },
		{ "{\"organization\": \"a/b\"}", "GitHub organization name" },
		{ "{\"organization\": \"o\", \"prefix\": 3}", "\"prefix\"" },
		{ "{\"organization\": \"o\", \"include_archived\": \"yes\"}", "true or false" },
		{ "{\"organization\": \"o\", \"projects\": [\"https://h/r\"]}", "not both" },
		{ "{\"projects\": [\"https://h/r\"], \"deadline\": \"next week\"}", "ISO 8601" },
		{ "{\"projects\": [\"https://h/r\"], \"deadline\": 5}", "ISO 8601" },
	};
	struct api_git_submission s;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(api_evaluation_decode(cases[i].body, strlen(cases[i].body), &s,
		    err, sizeof(err)), -EINVAL);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].msg);
		assert_null(s.root);
	}
}

static void
test_good_body(void **state)
{
	const char *b = "{\"auth_token\": \"tok\", \"projects\": [\"https://h/a\","
	    " \"git@h:o/b.git\"], \"module_timeout\": 12, \"extra\": true}";
	struct api_git_submission s;
	char err[512];

	(void)state;
	assert_int_equal(api_evaluation_decode(b, strlen(b), &s, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(s.projects), 2);
	assert_string_equal(s.token, "tok");
	assert_true(json_real_value(json_object_get(s.settings, "module_timeout")) == 12.0);
	api_git_submission_free(&s);

	b = "{\"organization\": \"school\", \"prefix\": \"hw-1-\", \"include_templates\": true,"
	    " \"deadline\": \"2026-03-01T23:59:59+01:00\"}";
	assert_int_equal(api_evaluation_decode(b, strlen(b), &s, err, sizeof(err)), 0);
	assert_null(s.projects);
	assert_string_equal(s.organization, "school");
	assert_string_equal(s.prefix, "hw-1-");
	assert_int_equal(s.include_archived, 0);
	assert_int_equal(s.include_templates, 1);
	assert_string_equal(json_string_value(json_object_get(s.settings, "deadline")),
	    "2026-03-01T22:59:59Z");
	api_git_submission_free(&s);

	b = "{\"projects\": [\"https://h/a\"], \"auth_token\": \"\"}";
	assert_int_equal(api_evaluation_decode(b, strlen(b), &s, err, sizeof(err)), 0);
	assert_null(s.token);
	assert_int_equal(json_object_size(s.settings), 0);
	api_git_submission_free(&s);
}

static void
test_form_settings(void **state)
{
	json_t *form = json_pack("{s:s}", "module_timeout", "4.5"), *set;
	char err[256];

	(void)state;
	set = intake_settings_parse(form, err, sizeof(err));
	assert_non_null(set);
	assert_true(json_real_value(json_object_get(set, "module_timeout")) == 4.5);
	json_decref(set);
	json_object_set_new(form, "module_timeout", json_string("4.5s"));
	assert_null(intake_settings_parse(form, err, sizeof(err)));
	json_decref(form);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_good_body),
		cmocka_unit_test(test_form_settings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
