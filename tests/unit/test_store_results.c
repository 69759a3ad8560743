/*
 * test_store_results.c - the /results document read a piece at a time
 * (store_results.c) and the exports read a project at a time
 * (export_stream.c): the same bytes as the document or export built whole,
 * from a snapshot, and what a reader holds does not grow with the
 * evaluation.
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

#include "core/buf.h"
#include "core/util.h"
#include "export/export.h"
#include "export/export_stream.h"
#include "store/store.h"
#include "store_helpers.h"

#define EVAL_ID "0b6d7f0e-1c2a-4e3b-9f4d-5a6b7c8d9e0f"

struct fresh {
	char dir[64];
	struct store *st;
};

static void
fresh_open(struct fresh *f)
{
	char *path;

	snprintf(f->dir, sizeof(f->dir), "%s/meshtest-results-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	path = xasprintf("%s/t.db", f->dir);
	assert_int_equal(store_open(path, &f->st), 0);
	free(path);
}

static void
fresh_close(struct fresh *f)
{
	store_close(f->st);
	util_rm_rf(f->dir);
}

/* A module's result with three tests and 2 KB of captured output. */
static json_t *
result_body(void)
{
	char out[2049];

	memset(out, 'o', sizeof(out) - 1);
	out[sizeof(out) - 1] = '\0';
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:s, s:[{s:s, s:s}, {s:s, s:s},"
	    " {s:s, s:s}]}", "outcome", "finished", "passed", (json_int_t)2, "failed",
	    (json_int_t)1, "skipped", (json_int_t)0, "duration", 0.25, "stdout", out, "tests",
	    "name", "test_a", "outcome", "passed", "name", "test_b", "outcome", "passed",
	    "name", "test_c", "outcome", "failed");
}

/*
 * An evaluation of projects x modules: every module of every project but the
 * last finished, one of the last running, the rest pending, and a project
 * that could not be fetched.
 */
static void
make_eval(struct store *st, size_t projects, size_t modules)
{
	struct store_claim c;

	assert_int_equal(helper_eval(st, EVAL_ID, projects, 1, modules), 0);
	assert_int_equal(store_project_error(st, EVAL_ID, (int)projects,
	    "git clone failed: not found", NULL, 6.0), 0);
	for (size_t n = 0; n < (projects - 1) * modules; n++) {
		json_t *r = result_body();
		assert_int_equal(helper_claim(st, "n1:1", &c), 1);
		assert_int_equal(store_record_result(st, &c, "n1:1", r, 9.0), 1);
		json_decref(r);
	}
	assert_int_equal(helper_claim(st, "n1:1", &c), 1);     /* one running */
}

/* The whole text through a reader, in reads of an odd size; its stats in *stats. */
static char *
read_all(struct store *st, struct store_results_stats *stats)
{
	struct store_results *r = NULL;
	struct buf b;
	char chunk[97];
	long n;

	buf_init(&b, (size_t)1 << 30);
	assert_int_equal(store_results_open(st, EVAL_ID, 20.0, &r), 0);
	while ((n = store_results_read(r, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(&b, chunk, (size_t)n), 0);
	assert_int_equal(n, 0);
	store_results_stats(r, stats);
	store_results_close(r);
	return buf_steal(&b);
}

static void
test_same_document(void **state)
{
	struct fresh f;
	struct store_results_stats stats;
	struct store_results *r = NULL;
	json_t *whole, *streamed, *projects, *last;
	char *text;

	(void)state;
	fresh_open(&f);
	make_eval(f.st, 3, 4);
	text = read_all(f.st, &stats);
	streamed = json_loads(text, 0, NULL);
	assert_non_null(streamed);
	whole = store_eval_results(f.st, EVAL_ID, 20.0);
	/* byte for byte what the HTTP server writes of the whole document */
	{
		char *want = json_dumps(whole, JSON_COMPACT | JSON_SORT_KEYS);
		assert_string_equal(text, want);
		free(want);
	}
	/* what it holds: 4 projects, the last one's error, a running module, pending ones */
	projects = json_object_get(streamed, "projects");
	assert_int_equal(json_array_size(projects), 4);
	last = json_array_get(projects, 3);
	assert_string_equal(json_string_value(json_object_get(last, "error")),
	    "git clone failed: not found");
	assert_int_equal(json_array_size(json_object_get(last, "modules")), 0);
	assert_int_equal(json_integer_value(json_object_get(streamed, "executed")), 8);
	assert_int_equal(json_integer_value(json_object_get(streamed, "in_progress")), 1);
	assert_int_equal(json_integer_value(json_object_get(streamed, "pending")), 3);
	assert_int_equal(stats.total, strlen(text));
	json_decref(whole);
	json_decref(streamed);
	free(text);

	/* a snapshot: what is recorded after the open is not in it */
	{
		struct store_claim c;
		json_t *res = result_body();
		char buf[65536];
		long n;

		assert_int_equal(store_results_open(f.st, EVAL_ID, 20.0, &r), 0);
		assert_true(store_results_read(r, buf, 10) == 10);
		assert_int_equal(helper_claim(f.st, "n1:1", &c), 1);
		assert_int_equal(store_record_result(f.st, &c, "n1:1", res, 10.0), 1);
		json_decref(res);
		struct buf b;
		buf_init(&b, (size_t)1 << 30);
		assert_int_equal(buf_append(&b, buf, 10), 0);
		while ((n = store_results_read(r, buf, sizeof(buf))) > 0)
			assert_int_equal(buf_append(&b, buf, (size_t)n), 0);
		store_results_close(r);
		streamed = json_loads(b.data, 0, NULL);
		assert_non_null(streamed);
		assert_int_equal(json_integer_value(json_object_get(streamed, "executed")), 8);
		json_decref(streamed);
		buf_free(&b);
		streamed = store_eval_results(f.st, EVAL_ID, 20.0);
		assert_int_equal(json_integer_value(json_object_get(streamed, "executed")), 9);
		json_decref(streamed);
	}
	assert_int_equal(store_results_open(f.st, "00000000-0000-4000-8000-000000000000", 1.0,
	    &r), -ENOENT);
	assert_null(r);
	/* readers at once are bounded: the 17th waits for one to close */
	{
		struct store_results *open[17];
		for (int i = 0; i < 16; i++)
			assert_int_equal(store_results_open(f.st, EVAL_ID, 20.0, &open[i]), 0);
		assert_int_equal(store_results_open(f.st, EVAL_ID, 20.0, &open[16]), -EBUSY);
		store_results_close(open[0]);
		assert_int_equal(store_results_open(f.st, EVAL_ID, 20.0, &open[0]), 0);
		for (int i = 0; i < 16; i++)
			store_results_close(open[i]);
	}
	fresh_close(&f);
}

/* What a reader holds: the summary grows by a few numbers per module, the rest not at all. */
static void
test_reader_does_not_grow(void **state)
{
	struct fresh a, b;
	struct store_results_stats small, big;
	char *ta, *tb;

	(void)state;
	fresh_open(&a);
	make_eval(a.st, 10, 10);
	ta = read_all(a.st, &small);
	fresh_open(&b);
	make_eval(b.st, 50, 20);
	tb = read_all(b.st, &big);
	print_message("100 modules: %zu bytes, summary %zu, largest piece %zu;"
	    " 1,000 modules: %zu bytes, summary %zu, largest piece %zu\n", small.total,
	    small.head, small.max_piece, big.total, big.head, big.max_piece);
	assert_true(big.total > 8 * small.total);
	assert_int_equal(big.max_piece, small.max_piece);
	assert_true(big.head < 200 * 1000);
	assert_true(big.max_piece + big.head < big.total / 8);
	free(ta);
	free(tb);
	fresh_close(&a);
	fresh_close(&b);
}

/* The export of EVAL_ID through a stream, in reads of an odd size; its longest piece. */
static char *
export_all(struct store *st, enum export_format f, const char *project, size_t *max_piece)
{
	struct export_stream *s = NULL;
	struct buf b;
	char chunk[97];
	long n;

	buf_init(&b, (size_t)1 << 30);
	assert_int_equal(export_stream_open(st, EVAL_ID, f, project, &s), 0);
	while ((n = export_stream_read(s, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(&b, chunk, (size_t)n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(buf_append(&b, "", 0), 0);
	*max_piece = export_stream_max_piece(s);
	export_stream_close(s);
	return buf_steal(&b);
}

/* Every format, every project or one: the bytes export_render writes of the whole document. */
static void
test_export_streamed(void **state)
{
	static const enum export_format formats[] = { EXPORT_CSV, EXPORT_JUNIT,
	    EXPORT_GRADESCOPE };
	static const char *const only[] = { NULL, "p00001", "p00003" };  /* p00003: not fetched */
	struct export_stream *s = NULL;
	struct fresh f;
	json_t *whole;

	(void)state;
	fresh_open(&f);
	make_eval(f.st, 3, 4);
	whole = store_eval_results(f.st, EVAL_ID, 20.0);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		for (size_t k = 0; k < sizeof(only) / sizeof(only[0]); k++) {
			char *want = NULL, *got;
			size_t len, max;

			assert_int_equal(export_render(whole, formats[i], only[k], &want, &len), 0);
			got = export_all(f.st, formats[i], only[k], &max);
			assert_string_equal(got, want);
			assert_true(max > 0 && max < len + 1);
			free(want);
			free(got);
		}
	}
	assert_int_equal(export_stream_open(f.st, EVAL_ID, EXPORT_CSV, "nobody", &s), -ENODATA);
	assert_null(s);
	assert_int_equal(export_stream_open(f.st, "0b6d7f0e-1c2a-4e3b-9f4d-000000000000",
	    EXPORT_JUNIT, NULL, &s), -ENOENT);
	json_decref(whole);
	fresh_close(&f);
}

/* What an export holds is one project's text, whatever the number of projects. */
static void
test_export_does_not_grow(void **state)
{
	struct fresh a, b;
	size_t small, big;
	char *ta, *tb;

	(void)state;
	fresh_open(&a);
	make_eval(a.st, 10, 10);
	ta = export_all(a.st, EXPORT_JUNIT, NULL, &small);
	fresh_open(&b);
	make_eval(b.st, 100, 10);
	tb = export_all(b.st, EXPORT_JUNIT, NULL, &big);
	print_message("JUnit of 100 modules: %zu bytes, largest piece %zu; of 1,000 modules:"
	    " %zu bytes, largest piece %zu\n", strlen(ta), small, strlen(tb), big);
	assert_true(strlen(tb) > 9 * strlen(ta));
	/*
	 * One project of ten modules at most either way (claims spread over
	 * the projects: the small one has nine done in each, the big one ten
	 * in some), a fiftieth of the big export.
	 */
	assert_true(big < small + small / 8);
	assert_true(big < strlen(tb) / 50);
	free(ta);
	free(tb);
	fresh_close(&a);
	fresh_close(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_document),
		cmocka_unit_test(test_reader_does_not_grow),
		cmocka_unit_test(test_export_streamed),
		cmocka_unit_test(test_export_does_not_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
