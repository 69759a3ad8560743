/*
 * test_metrics.c - the metrics registry and its text (Prometheus exposition
 * format 0.0.4), exactly; the folder sizes of GET /metrics.
 *
 * The registry is process-wide: the tests run in this order, each one
 * bumping what the ones before left at known values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/diskuse.h"
#include "core/metrics.h"
#include "core/util.h"

static char *
render(void)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b), 0);
	return buf_steal(&b);
}

/* The family of name (from its HELP line to the next family), or fail. */
static char *
family(const char *text, const char *name)
{
	char *head = xasprintf("# HELP %s ", name);
	const char *at = strstr(text, head), *end;

	free(head);
	assert_non_null(at);
	end = strstr(at + 1, "# HELP ");
	return end != NULL ? strndup(at, (size_t)(end - at)) : xstrdup(at);
}

static void
assert_family(const char *name, const char *want)
{
	char *text = render(), *f = family(text, name);

	assert_string_equal(f, want);
	free(f);
	free(text);
}

static const char fresh[] =
	"# HELP meshtest_modules_total Test modules this node ran, by the outcome of their"
	" final result.\n"
	"# TYPE meshtest_modules_total counter\n"
	"meshtest_modules_total{outcome=\"finished\"} 0\n"
	"meshtest_modules_total{outcome=\"timeout\"} 0\n"
	"meshtest_modules_total{outcome=\"crashed\"} 0\n"
	"meshtest_modules_total{outcome=\"oom\"} 0\n"
	"meshtest_modules_total{outcome=\"infra_error\"} 0\n"
	"meshtest_modules_total{outcome=\"other\"} 0\n"
	"# HELP meshtest_tests_total Tests in the modules this node ran, as counted for the"
	" grade (xfailed and xpassed count as passed, errors as failed).\n"
	"# TYPE meshtest_tests_total counter\n"
	"meshtest_tests_total{outcome=\"passed\"} 0\n"
	"meshtest_tests_total{outcome=\"failed\"} 0\n"
	"meshtest_tests_total{outcome=\"skipped\"} 0\n"
	"# HELP meshtest_module_duration_seconds Seconds each test module run by this node"
	" took, by its final result.\n"
	"# TYPE meshtest_module_duration_seconds histogram\n"
	"meshtest_module_duration_seconds_bucket{le=\"0.1\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"0.25\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"0.5\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"1\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"2.5\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"5\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"10\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"30\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"60\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"120\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"300\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"600\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"1800\"} 0\n"
	"meshtest_module_duration_seconds_bucket{le=\"+Inf\"} 0\n"
	"meshtest_module_duration_seconds_sum 0.000000\n"
	"meshtest_module_duration_seconds_count 0\n"
	"# HELP meshtest_http_requests_total HTTP requests answered by this node, by method,"
	" route pattern (\"unmatched\" when no route took the path) and status code.\n"
	"# TYPE meshtest_http_requests_total counter\n"
	"# HELP meshtest_replication_sent_bytes_total Bytes of evaluation documents this node"
	" sent to peers: its pushes and its answers to their anti-entropy pulls.\n"
	"# TYPE meshtest_replication_sent_bytes_total counter\n"
	"meshtest_replication_sent_bytes_total 0\n"
	"# HELP meshtest_replication_received_bytes_total Bytes of evaluation documents this"
	" node received from peers: their pushes and the answers to its anti-entropy pulls.\n"
	"# TYPE meshtest_replication_received_bytes_total counter\n"
	"meshtest_replication_received_bytes_total 0\n"
	"# HELP meshtest_replication_sent_documents_total Evaluation documents this node sent"
	" to peers (pushes and pull answers).\n"
	"# TYPE meshtest_replication_sent_documents_total counter\n"
	"meshtest_replication_sent_documents_total 0\n"
	"# HELP meshtest_replication_received_documents_total Evaluation documents this node"
	" received from peers (pushes and pull answers).\n"
	"# TYPE meshtest_replication_received_documents_total counter\n"
	"meshtest_replication_received_documents_total 0\n"
	"# HELP meshtest_blob_sent_bytes_total Bytes of project archives (blobs) this node"
	" sent to peers: pushes and answers.\n"
	"# TYPE meshtest_blob_sent_bytes_total counter\n"
	"meshtest_blob_sent_bytes_total 0\n"
	"# HELP meshtest_blob_received_bytes_total Bytes of project archives (blobs) this node"
	" received from peers.\n"
	"# TYPE meshtest_blob_received_bytes_total counter\n"
	"meshtest_blob_received_bytes_total 0\n"
	"# HELP meshtest_environments_built_total Virtual environments this node built and"
	" put in place.\n"
	"# TYPE meshtest_environments_built_total counter\n"
	"meshtest_environments_built_total 0\n"
	"# HELP meshtest_projects_prepared_total Projects this node fetched and prepared"
	" (unpacked or cloned, set up, packed).\n"
	"# TYPE meshtest_projects_prepared_total counter\n"
	"meshtest_projects_prepared_total 0\n"
	"# HELP meshtest_projects_borrowed_total Of those, projects of evaluations another"
	" node coordinates, lent to this one.\n"
	"# TYPE meshtest_projects_borrowed_total counter\n"
	"meshtest_projects_borrowed_total 0\n";

/* Before anything happened: every fixed series at 0, no HTTP series. */
static void
test_fresh_text(void **state)
{
	char *text = render();

	(void)state;
	assert_string_equal(text, fresh);
	free(text);
}

static void
test_module_results(void **state)
{
	(void)state;
	metrics_module_done("finished", 3, 1, 0, 0.1);    /* on a bound: its bucket */
	metrics_module_done("timeout", 3, 1, 0, 4.0);
	metrics_module_done("crashed", 1, 2, 0, 0.05);
	metrics_module_done("finished", 2, 0, 1, 2000.0); /* past the last bound */
	metrics_module_done("no such outcome", 0, 0, 0, NAN);
	metrics_module_done(NULL, -5, 0, 0, -1.0);        /* nonsense counts nothing */
	assert_family("meshtest_modules_total",
	    "# HELP meshtest_modules_total Test modules this node ran, by the outcome of their"
	    " final result.\n"
	    "# TYPE meshtest_modules_total counter\n"
	    "meshtest_modules_total{outcome=\"finished\"} 2\n"
	    "meshtest_modules_total{outcome=\"timeout\"} 1\n"
	    "meshtest_modules_total{outcome=\"crashed\"} 1\n"
	    "meshtest_modules_total{outcome=\"oom\"} 0\n"
	    "meshtest_modules_total{outcome=\"infra_error\"} 0\n"
	    "meshtest_modules_total{outcome=\"other\"} 2\n");
	assert_family("meshtest_tests_total",
	    "# HELP meshtest_tests_total Tests in the modules this node ran, as counted for the"
	    " grade (xfailed and xpassed count as passed, errors as failed).\n"
	    "# TYPE meshtest_tests_total counter\n"
	    "meshtest_tests_total{outcome=\"passed\"} 9\n"
	    "meshtest_tests_total{outcome=\"failed\"} 4\n"
	    "meshtest_tests_total{outcome=\"skipped\"} 1\n");
	/* cumulative: 0.05 and 0.1 and two 0 s in the first bucket, 4 s by le=5 */
	assert_family("meshtest_module_duration_seconds",
	    "# HELP meshtest_module_duration_seconds Seconds each test module run by this node"
	    " took, by its final result.\n"
	    "# TYPE meshtest_module_duration_seconds histogram\n"
	    "meshtest_module_duration_seconds_bucket{le=\"0.1\"} 4\n"
	    "meshtest_module_duration_seconds_bucket{le=\"0.25\"} 4\n"
	    "meshtest_module_duration_seconds_bucket{le=\"0.5\"} 4\n"
	    "meshtest_module_duration_seconds_bucket{le=\"1\"} 4\n"
	    "meshtest_module_duration_seconds_bucket{le=\"2.5\"} 4\n"
	    "meshtest_module_duration_seconds_bucket{le=\"5\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"10\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"30\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"60\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"120\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"300\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"600\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"1800\"} 5\n"
	    "meshtest_module_duration_seconds_bucket{le=\"+Inf\"} 6\n"
	    "meshtest_module_duration_seconds_sum 2004.150000\n"
	    "meshtest_module_duration_seconds_count 6\n");
}

static void
test_http_requests(void **state)
{
	int ev, ev2, post, odd;

	(void)state;
	ev = metrics_http_route("GET", "/evaluation/*");
	post = metrics_http_route("POST", "/evaluation");
	ev2 = metrics_http_route("GET", "/evaluation/*");
	odd = metrics_http_route("GET", "/a\"b\\c\nd");
	assert_int_equal(ev, ev2);                /* one series per (method, pattern) */
	assert_int_not_equal(ev, post);
	metrics_http_count(ev, 200);
	metrics_http_count(ev, 200);
	metrics_http_count(ev, 404);
	metrics_http_count(post, 201);
	metrics_http_count(odd, 599);
	metrics_http_count(metrics_http_unmatched("GET"), 404);
	metrics_http_count(metrics_http_unmatched("BREW"), 405);
	metrics_http_count(metrics_http_unmatched("PUT"), 405);
	/* statuses no answer can carry, and ids no route has, count nowhere */
	metrics_http_count(ev, 99);
	metrics_http_count(ev, 600);
	metrics_http_count(-1, 200);
	metrics_http_count(100000, 200);
	assert_family("meshtest_http_requests_total",
	    "# HELP meshtest_http_requests_total HTTP requests answered by this node, by method,"
	    " route pattern (\"unmatched\" when no route took the path) and status code.\n"
	    "# TYPE meshtest_http_requests_total counter\n"
	    "meshtest_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"} 1\n"
	    "meshtest_http_requests_total{method=\"PUT\",route=\"unmatched\",code=\"405\"} 1\n"
	    "meshtest_http_requests_total{method=\"other\",route=\"unmatched\",code=\"405\"} 1\n"
	    "meshtest_http_requests_total{method=\"GET\",route=\"/evaluation/*\",code=\"200\"} 2\n"
	    "meshtest_http_requests_total{method=\"GET\",route=\"/evaluation/*\",code=\"404\"} 1\n"
	    "meshtest_http_requests_total{method=\"POST\",route=\"/evaluation\",code=\"201\"} 1\n"
	    "meshtest_http_requests_total{method=\"GET\",route=\"/a\\\"b\\\\c\\nd\","
	    "code=\"599\"} 1\n");
}

static void
test_plain_counters(void **state)
{
	(void)state;
	metrics_add(METRICS_REPL_PUSHED_BYTES, 100);
	metrics_add(METRICS_REPL_SERVED_BYTES, 20);
	metrics_add(METRICS_REPL_RECEIVED_BYTES, 7);
	metrics_add(METRICS_REPL_PULLED_BYTES, 3);
	metrics_add(METRICS_BLOB_SENT_BYTES, 5000000000ULL);   /* past 32 bits */
	metrics_add(METRICS_ENVS_BUILT, 1);
	metrics_add(METRICS_ENVS_BUILT, 1);
	metrics_add(METRICS_COUNTERS, 1);                      /* no such counter */
	assert_int_equal(metrics_get(METRICS_REPL_PUSHED_BYTES), 100);
	assert_int_equal(metrics_get(METRICS_COUNTERS), 0);
	assert_family("meshtest_replication_sent_bytes_total",
	    "# HELP meshtest_replication_sent_bytes_total Bytes of evaluation documents this node"
	    " sent to peers: its pushes and its answers to their anti-entropy pulls.\n"
	    "# TYPE meshtest_replication_sent_bytes_total counter\n"
	    "meshtest_replication_sent_bytes_total 120\n");
	assert_family("meshtest_replication_received_bytes_total",
	    "# HELP meshtest_replication_received_bytes_total Bytes of evaluation documents this"
	    " node received from peers: their pushes and the answers to its anti-entropy pulls.\n"
	    "# TYPE meshtest_replication_received_bytes_total counter\n"
	    "meshtest_replication_received_bytes_total 10\n");
	assert_family("meshtest_blob_sent_bytes_total",
	    "# HELP meshtest_blob_sent_bytes_total Bytes of project archives (blobs) this node"
	    " sent to peers: pushes and answers.\n"
	    "# TYPE meshtest_blob_sent_bytes_total counter\n"
	    "meshtest_blob_sent_bytes_total 5000000000\n");
	assert_family("meshtest_environments_built_total",
	    "# HELP meshtest_environments_built_total Virtual environments this node built and"
	    " put in place.\n"
	    "# TYPE meshtest_environments_built_total counter\n"
	    "meshtest_environments_built_total 2\n");
}

/* The helpers api_metrics.c renders its gauges with. */
static void
test_gauge_helpers(void **state)
{
	static const char *const states[] = { "alive", "su\"spect" };
	static const uint64_t counts[] = { 3, 0 };
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(metrics_render_one(&b, "meshtest_slots", "gauge", "Slots.", 4), 0);
	assert_int_equal(metrics_render_labelled(&b, "meshtest_members", "gauge", "Members.",
	    "state", states, counts, 2), 0);
	assert_string_equal(b.data,
	    "# HELP meshtest_slots Slots.\n"
	    "# TYPE meshtest_slots gauge\n"
	    "meshtest_slots 4\n"
	    "# HELP meshtest_members Members.\n"
	    "# TYPE meshtest_members gauge\n"
	    "meshtest_members{state=\"alive\"} 3\n"
	    "meshtest_members{state=\"su\\\"spect\"} 0\n");
	buf_free(&b);
	/* an answer past its cap is refused, not cut */
	buf_init(&b, 100);
	assert_int_equal(metrics_render(&b), -ENOSPC);
	buf_free(&b);
}

/* Past METRICS_ROUTES_MAX routes the others count as unmatched (runs last). */
static void
test_route_cap(void **state)
{
	int last = -1;

	(void)state;
	for (int i = 0; i < METRICS_ROUTES_MAX + 5; i++) {
		char p[32];

		snprintf(p, sizeof(p), "/r%d", i);
		last = metrics_http_route("DELETE", p);
	}
	assert_int_equal(last, metrics_http_unmatched("DELETE"));
}

static void
write_bytes(const char *path, size_t n)
{
	char *data = calloc(1, n);

	assert_int_equal(util_write_file(path, data, n, 0600), 0);
	free(data);
}

static uint64_t
blocks(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void
test_diskuse(void **state)
{
	char tmpl[] = "/tmp/test_metrics.XXXXXX";
	char *dir = mkdtemp(tmpl), *sub, *a, *b, *link;
	struct diskuse *du = NULL;
	uint64_t bytes = 0, want, got = 0;

	(void)state;
	assert_non_null(dir);
	sub = xasprintf("%s/sub", dir);
	a = xasprintf("%s/a", dir);
	b = xasprintf("%s/sub/b", dir);
	link = xasprintf("%s/sub/link", dir);
	assert_int_equal(util_mkdir_p(sub, 0700), 0);
	write_bytes(a, 10000);
	write_bytes(b, 70000);
	assert_int_equal(symlink("/usr", link), 0);   /* counted as a link, never followed */
	want = blocks(dir) + blocks(sub) + blocks(a) + blocks(b) + blocks(link);
	assert_int_equal(diskuse_measure(dir, &bytes), 0);
	assert_int_equal(bytes, want);
	assert_true(bytes >= 80000);

	/* the thread measures on the first ask; the reader waits for it once */
	assert_int_equal(diskuse_start(dir, 3600, &du), 0);
	assert_int_equal(diskuse_get(du, 10.0, &got), 0);
	assert_int_equal(got, want);
	/* within the period the cached value stands, whatever changed */
	write_bytes(a, 200000);
	assert_int_equal(diskuse_get(du, 10.0, &got), 0);
	assert_int_equal(got, want);
	diskuse_stop(du);

	/* a folder that is not there: no measure, never a made-up 0 */
	assert_int_equal(diskuse_measure("/nonexistent/meshtest", &bytes), -ENOENT);
	assert_int_equal(diskuse_start("/nonexistent/meshtest", 3600, &du), 0);
	assert_int_equal(diskuse_get(du, 2.0, &got), -EAGAIN);
	diskuse_stop(du);
	diskuse_stop(NULL);

	util_rm_rf(dir);
	free(sub);
	free(a);
	free(b);
	free(link);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_text),
		cmocka_unit_test(test_module_results),
		cmocka_unit_test(test_http_requests),
		cmocka_unit_test(test_plain_counters),
		cmocka_unit_test(test_gauge_helpers),
		cmocka_unit_test(test_route_cap),
		cmocka_unit_test(test_diskuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
