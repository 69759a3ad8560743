/*
 * test_disk.c - the disk budget's pure parts and questions: --max-disk
 * sizes, the default budget, sizes as messages write them, and the store's
 * answers on which digests unfinished evaluations pin and which expired.
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

#include "config/config.h"
#include "core/util.h"
#include "engine/engine_int.h"
#include "store/store.h"
#include "store_helpers.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

static void
test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t want;
	} cases[] = {
		{ "500M", 1, 500 * MIB },
		{ "20G", 1, 20 * GIB },
		{ "1.5g", 1, 3 * GIB / 2 },
		{ "12MiB", 1, 12 * MIB },
		{ "12mb", 1, 12 * MIB },
		{ "1k", 1, 1024 },
		{ "2T", 1, 2048 * GIB },
		{ "1024", 1, 1024 },
		{ "4096B", 1, 4096 },
		{ "0", 1, 0 },
		{ "", 0, 0 },
		{ "M", 0, 0 },
		{ "12x", 0, 0 },
		{ "1e9", 0, 0 },
		{ "-1M", 0, 0 },
		{ ".5M", 0, 0 },
		{ "1.2.3M", 0, 0 },
		{ "12 M", 0, 0 },
		{ "12Mi", 0, 0 },
		{ "12MBB", 0, 0 },
		{ "inf", 0, 0 },
		{ "0x10", 0, 0 },
		{ "99999999T", 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int r = config_parse_size(cases[i].in, &v);

		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_true(v == cases[i].want);
		} else {
			assert_int_equal(r, -EINVAL);
			assert_true(v == 12345);
		}
	}
	assert_int_equal(config_parse_size(NULL, NULL), -EINVAL);
}

static int
load(struct config *c, char *err, int argc, const char *a0, const char *a1)
{
	char *argv[2] = { (char *)a0, (char *)a1 };

	return config_load(c, argc, argv, err, 512);
}

static void
test_options(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	unsetenv("MESHTEST_MAX_DISK");
	unsetenv("MESHTEST_RETENTION_DAYS");
	assert_int_equal(load(&c, err, 0, NULL, NULL), 0);
	assert_null(c.max_disk);
	assert_true(c.max_disk_bytes == 0);
	assert_int_equal(c.retention_days, 0);
	config_free(&c);

	assert_int_equal(load(&c, err, 2, "--max-disk", "500M"), 0);
	assert_true(c.max_disk_bytes == 500 * MIB);
	config_free(&c);

	setenv("MESHTEST_MAX_DISK", "2G", 1);
	setenv("MESHTEST_RETENTION_DAYS", "30", 1);
	assert_int_equal(load(&c, err, 0, NULL, NULL), 0);
	assert_true(c.max_disk_bytes == 2 * GIB);
	assert_int_equal(c.retention_days, 30);
	config_free(&c);
	/* the flag wins; an empty variable is the default */
	assert_int_equal(load(&c, err, 2, "--retention-days", "7"), 0);
	assert_int_equal(c.retention_days, 7);
	config_free(&c);
	setenv("MESHTEST_MAX_DISK", "", 1);
	assert_int_equal(load(&c, err, 0, NULL, NULL), 0);
	assert_true(c.max_disk_bytes == 0);
	config_free(&c);
	unsetenv("MESHTEST_MAX_DISK");
	unsetenv("MESHTEST_RETENTION_DAYS");

	assert_int_equal(load(&c, err, 2, "--max-disk", "512K"), -EINVAL);
	assert_string_equal(err, "--max-disk takes a size of at least 1M, such as 500M or 20G,"
	    " not '512K'");
	config_free(&c);
	assert_int_equal(load(&c, err, 2, "--max-disk", "lots"), -EINVAL);
	assert_string_equal(err, "--max-disk takes a size of at least 1M, such as 500M or 20G,"
	    " not 'lots'");
	config_free(&c);
	assert_int_equal(load(&c, err, 2, "--retention-days", "36501"), -EINVAL);
	assert_string_equal(err, "--retention-days takes a whole number from 0 to 36500, not"
	    " '36501'");
	config_free(&c);
}

static void
test_default_budget(void **state)
{
	(void)state;
	/* 80% of what meshtest holds and what is free, at most 20 GiB, at least 1 MiB */
	assert_true(gc_budget_default(0, 100 * GIB) == 20 * GIB);
	assert_true(gc_budget_default(1 * GIB, 1 * GIB) == 8 * GIB / 5);
	assert_true(gc_budget_default(10 * GIB, 0) == 8 * GIB);
	assert_true(gc_budget_default(30 * GIB, 0) == 20 * GIB);
	assert_true(gc_budget_default(0, 0) == MIB);
	assert_true(gc_budget_default(0, 10 * MIB) == 8 * MIB);
}

static void
test_format(void **state)
{
	static const struct {
		uint64_t n;
		const char *want;
	} cases[] = {
		{ 0, "0 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.0 KiB" },
		{ 1536 << 10, "1.5 MiB" },
		{ 8 * MIB, "8.0 MiB" },
		{ 20 * GIB, "20.0 GiB" },
		{ 3 * 1024 * GIB, "3.0 TiB" },
		{ 2048 * 1024 * GIB, "2048.0 TiB" },
	};
	char out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gc_budget_format(cases[i].n, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

/* ------------------------------------------------------------------ store */

#define D(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define SHARED D("a")       /* one project's blob, in two evaluations */
#define ONLY_E3 D("b")      /* a project of E3 alone */
#define UPLOAD1 D("1")
#define UPLOAD2 D("2")
#define UPLOAD3 D("3")
#define UPLOAD4 D("4")
#define TESTS1 D("c")       /* E1's instructor tests */
#define E1 "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b01"
#define E2 "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b02"
#define E3 "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b03"
#define E4 "0b7d4f62-1c3a-4e8b-9a55-7e2f9c1d3b04"

/* An evaluation with one project of one module; ready with digest unless NULL. */
static void
make_eval(struct store *st, const char *id, const char *upload, const char *digest,
    const char *tests)
{
	struct store_project_new p = { .project_id = "p", .source = "zip:p" };
	const char *path = "tests/test_m.py";
	json_t *settings = tests != NULL ?
	    json_pack("{s:s}", "instructor_tests_archive", tests) : json_object();

	assert_int_equal(store_eval_create(st, id, 5.0, "zip", "n1:1", settings, 0, upload,
	    &p, 1), 0);
	json_decref(settings);
	if (digest != NULL)
		assert_int_equal(helper_ready(st, id, 0, digest, &path, 1), 0);
}

/* Run the one pending module to its end at time `at`. */
static void
finish_one(struct store *st, const char *id, double at)
{
	struct store_claim c;
	json_t *r = json_pack("{s:s, s:I, s:I, s:I, s:f, s:[]}", "outcome", "finished",
	    "passed", (json_int_t)1, "failed", (json_int_t)0, "skipped", (json_int_t)0,
	    "duration", 0.5, "tests");

	assert_int_equal(helper_claim(st, "n1:1", &c), 1);
	assert_string_equal(c.eval_id, id);
	assert_int_equal(store_record_result(st, &c, "n1:1", r, at), 1);
	json_decref(r);
	assert_int_equal(store_eval_active(st, id), 0);
}

static int
digest_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_digest *)a)->d, ((const struct store_digest *)b)->d);
}

/* The digests sorted and joined with commas ("" for none); frees d. */
static char *
joined(struct store_digest *d, size_t n)
{
	char *s = xstrdup("");

	if (n > 0)
		qsort(d, n, sizeof(*d), digest_cmp);
	for (size_t i = 0; i < n; i++) {
		char *t = xasprintf("%s%s%s", s, i > 0 ? "," : "", d[i].d);
		free(s);
		s = t;
	}
	free(d);
	return s;
}

static char *
pinned(struct store *st)
{
	struct store_digest *d = NULL;
	size_t n = 0;

	assert_int_equal(store_disk_pinned(st, &d, &n), 0);
	return joined(d, n);
}

static char *
expired(struct store *st, double cutoff)
{
	struct store_digest *d = NULL;
	size_t n = 0;

	assert_int_equal(store_disk_expired(st, cutoff, &d, &n), 0);
	return joined(d, n);
}

static void
check(char *got, const char *want)
{
	assert_string_equal(got, want);
	free(got);
}

static void
test_store_pinned_and_expired(void **state)
{
	char dir[64];
	char *path;
	struct store *st;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/meshtest-disk-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/t.db", dir);
	assert_int_equal(store_open(path, &st), 0);

	check(pinned(st), "");
	check(expired(st, 1e12), "");
	/* E1 and E3 finish at 20; E2 shares E1's project and waits; E4 is still fetching */
	make_eval(st, E1, UPLOAD1, SHARED, TESTS1);
	check(pinned(st), UPLOAD1 "," SHARED "," TESTS1);
	finish_one(st, E1, 20.0);
	make_eval(st, E3, UPLOAD3, ONLY_E3, NULL);
	finish_one(st, E3, 20.0);
	check(pinned(st), "");
	make_eval(st, E2, UPLOAD2, SHARED, NULL);
	make_eval(st, E4, UPLOAD4, NULL, NULL);
	check(pinned(st), UPLOAD2 "," UPLOAD4 "," SHARED);

	/* the shared blob stays: E2 has work left */
	check(expired(st, 30.0), UPLOAD1 "," UPLOAD3 "," ONLY_E3 "," TESTS1);
	check(expired(st, 20.0), "");
	check(expired(st, 10.0), "");
	/* E2 finishes at 40: its files expire after that, the shared one with them */
	finish_one(st, E2, 40.0);
	check(pinned(st), UPLOAD4);
	check(expired(st, 30.0), UPLOAD1 "," UPLOAD3 "," ONLY_E3 "," TESTS1);
	check(expired(st, 50.0), UPLOAD1 "," UPLOAD2 "," UPLOAD3 "," SHARED "," ONLY_E3 ","
	    TESTS1);

	store_close(st);
	util_rm_rf(dir);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_default_budget),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_store_pinned_and_expired),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
