/*
 * test_util.c - the helpers every module shares: ISO 8601 times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>

#include "core/util.h"

static void
test_parse_time(void **state)
{
	static const struct { const char *in; double want; } good[] = {
		{ "2026-01-15", 1768435200.0 },
		{ "2026-01-15T00:00:00Z", 1768435200.0 },
		{ "2026-01-15T00:00Z", 1768435200.0 },
		{ "2026-01-15 01:30:00+01:30", 1768435200.0 },
		{ "2026-01-14T22:00:00-0200", 1768435200.0 },
		{ "2026-01-15T00:00:00.25z", 1768435200.25 },
		{ "2024-02-29T12:00:00Z", 1709208000.0 },
		{ "1970-01-01T00:00:00Z", 0.0 },
	};
	static const char *const bad[] = {
		"", "2026", "2026-13-01", "2026-02-30", "2025-02-29", "2026-01-15T24:00",
		"2026-01-15T10", "2026-01-15T10:00:00+2", "2026-01-15T10:00:00Zjunk",
		"2026-01-15T10:00:00.Z", "1969-12-31", "tomorrow", "2026/01/15",
	};
	char out[32];
	double t;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		t = -1;
		assert_int_equal(util_parse_time(good[i].in, &t), 0);
		assert_true(t == good[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(util_parse_time(bad[i], &t), -EINVAL);
	util_format_time(1768435200.9, out, sizeof(out));
	assert_string_equal(out, "2026-01-15T00:00:00Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
