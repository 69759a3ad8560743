/*
 * metrics.c - the process-wide counters of GET /metrics and their text
 * rendering (see metrics.h).
 *
 * Threads: any. A bump is a relaxed atomic add on a fixed slot: no lock, no
 * allocation. Registering a route takes a mutex (the HTTP server does it
 * once per route when it starts); a route's strings are written before
 * the route count that publishes them (release/acquire), so a renderer
 * reads whole entries only. A rendering reads each counter once; samples
 * of one family may be a bump apart, never torn.
 */
#include "core/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define METRICS_CODE_MIN 100
#define METRICS_CODES 500          /* status 100..599: one slot each */

static _Atomic uint64_t metrics_counters[METRICS_COUNTERS];

/* ------------------------------------------------------------ modules */

static const char *const metrics_outcomes[] = {
	"finished", "timeout", "crashed", "oom", "infra_error", "other",
};
#define METRICS_OUTCOMES (sizeof(metrics_outcomes) / sizeof(metrics_outcomes[0]))

static const char *const metrics_test_outcomes[] = { "passed", "failed", "skipped" };
#define METRICS_TEST_OUTCOMES 3

/*
 * Module durations: from a module that fails at once to one that runs into
 * a long timeout. Upper bounds in seconds, as printed and as microseconds.
 */
static const struct {
	const char *le;
	uint64_t usec;
} metrics_buckets[] = {
	{ "0.1", 100000 }, { "0.25", 250000 }, { "0.5", 500000 }, { "1", 1000000 },
	{ "2.5", 2500000 }, { "5", 5000000 }, { "10", 10000000 }, { "30", 30000000 },
	{ "60", 60000000 }, { "120", 120000000 }, { "300", 300000000 },
	{ "600", 600000000 }, { "1800", 1800000000 },
};
#define METRICS_BUCKETS (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

static _Atomic uint64_t metrics_modules[METRICS_OUTCOMES];
static _Atomic uint64_t metrics_tests[METRICS_TEST_OUTCOMES];
/* Per bucket, not cumulative; the last one is +Inf. */
static _Atomic uint64_t metrics_duration_n[METRICS_BUCKETS + 1];
static _Atomic uint64_t metrics_duration_usec;

/* ---------------------------------------------------------------- HTTP */

/* Requests no route took are counted by method, among these. */
static const char *const metrics_methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
};
#define METRICS_METHODS (sizeof(metrics_methods) / sizeof(metrics_methods[0]))

static pthread_mutex_t metrics_route_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *method;
	char *pattern;
} metrics_routes[METRICS_ROUTES_MAX];
static _Atomic size_t metrics_nroutes;
/* ids 0..METRICS_METHODS-1: unmatched, by method; then the routes. */
static _Atomic uint64_t metrics_http[METRICS_METHODS + METRICS_ROUTES_MAX][METRICS_CODES];

/* ------------------------------------------------------------- bumping */

void
metrics_add(enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c < METRICS_COUNTERS)
		atomic_fetch_add_explicit(&metrics_counters[c], n, memory_order_relaxed);
}

uint64_t
metrics_get(enum metrics_counter c)
{
	if ((unsigned)c >= METRICS_COUNTERS)
		return 0;
	return atomic_load_explicit(&metrics_counters[c], memory_order_relaxed);
}

static void
metrics_bump(_Atomic uint64_t *p, uint64_t n)
{
	atomic_fetch_add_explicit(p, n, memory_order_relaxed);
}

void
metrics_module_done(const char *outcome, long passed, long failed, long skipped,
    double seconds)
{
	size_t o = METRICS_OUTCOMES - 1, b = 0;
	uint64_t usec;

	for (size_t i = 0; outcome != NULL && i + 1 < METRICS_OUTCOMES; i++)
		if (strcmp(outcome, metrics_outcomes[i]) == 0)
			o = i;
	metrics_bump(&metrics_modules[o], 1);
	metrics_bump(&metrics_tests[0], passed > 0 ? (uint64_t)passed : 0);
	metrics_bump(&metrics_tests[1], failed > 0 ? (uint64_t)failed : 0);
	metrics_bump(&metrics_tests[2], skipped > 0 ? (uint64_t)skipped : 0);
	/* NaN and negatives (no measure) are 0 s; the cast must stay in range. */
	if (!(seconds > 0))
		seconds = 0;
	if (seconds > 1e12)
		seconds = 1e12;
	usec = (uint64_t)(seconds * 1e6 + 0.5);
	while (b < METRICS_BUCKETS && usec > metrics_buckets[b].usec)
		b++;
	metrics_bump(&metrics_duration_n[b], 1);
	metrics_bump(&metrics_duration_usec, usec);
}

int
metrics_http_unmatched(const char *method)
{
	for (size_t i = 0; method != NULL && i + 1 < METRICS_METHODS; i++)
		if (strcmp(method, metrics_methods[i]) == 0)
			return (int)i;
	return (int)METRICS_METHODS - 1;
}

int
metrics_http_route(const char *method, const char *pattern)
{
	size_t n;
	int id = -1;

	pthread_mutex_lock(&metrics_route_lock);
	n = atomic_load_explicit(&metrics_nroutes, memory_order_relaxed);
	for (size_t i = 0; i < n && id < 0; i++)
		if (strcmp(metrics_routes[i].method, method) == 0 &&
		    strcmp(metrics_routes[i].pattern, pattern) == 0)
			id = (int)(METRICS_METHODS + i);
	if (id < 0 && n < METRICS_ROUTES_MAX) {
		metrics_routes[n].method = xstrdup(method);
		metrics_routes[n].pattern = xstrdup(pattern);
		atomic_store_explicit(&metrics_nroutes, n + 1, memory_order_release);
		id = (int)(METRICS_METHODS + n);
	}
	pthread_mutex_unlock(&metrics_route_lock);
	return id >= 0 ? id : metrics_http_unmatched(method);
}

void
metrics_http_count(int id, int status)
{
	/* libmicrohttpd sends no answer with a status outside 100..599 */
	if (id < 0 || (size_t)id >= METRICS_METHODS + METRICS_ROUTES_MAX ||
	    status < METRICS_CODE_MIN || status >= METRICS_CODE_MIN + METRICS_CODES)
		return;
	metrics_bump(&metrics_http[id][status - METRICS_CODE_MIN], 1);
}

/* ----------------------------------------------------------- rendering */

static uint64_t
metrics_load(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static int
metrics_head(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants (backslash, quote, newline). */
static int
metrics_label_value(struct buf *out, const char *v)
{
	int r = 0;

	for (; *v != '\0' && r == 0; v++) {
		if (*v == '\\')
			r = buf_append(out, "\\\\", 2);
		else if (*v == '"')
			r = buf_append(out, "\\\"", 2);
		else if (*v == '\n')
			r = buf_append(out, "\\n", 2);
		else
			r = buf_append(out, v, 1);
	}
	return r;
}

int
metrics_render_one(struct buf *out, const char *name, const char *type, const char *help,
    uint64_t value)
{
	int r = metrics_head(out, name, type, help);

	return r < 0 ? r : buf_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

int
metrics_render_labelled(struct buf *out, const char *name, const char *type,
    const char *help, const char *label, const char *const *labels,
    const uint64_t *values, size_t n)
{
	int r = metrics_head(out, name, type, help);

	for (size_t i = 0; i < n && r == 0; i++) {
		r = buf_printf(out, "%s{%s=\"", name, label);
		if (r == 0)
			r = metrics_label_value(out, labels[i]);
		if (r == 0)
			r = buf_printf(out, "\"} %llu\n", (unsigned long long)values[i]);
	}
	return r;
}

/* A fixed list of labelled atomics. */
static int
metrics_render_fixed(struct buf *out, const char *name, const char *help, const char *label,
    const char *const *labels, _Atomic uint64_t *v, size_t n)
{
	uint64_t vals[METRICS_OUTCOMES];

	for (size_t i = 0; i < n && i < METRICS_OUTCOMES; i++)
		vals[i] = metrics_load(&v[i]);
	return metrics_render_labelled(out, name, "counter", help, label, labels, vals,
	    n < METRICS_OUTCOMES ? n : METRICS_OUTCOMES);
}

static int
metrics_render_histogram(struct buf *out)
{
	static const char name[] = "meshtest_module_duration_seconds";
	uint64_t cum = 0, usec = metrics_load(&metrics_duration_usec);
	int r = metrics_head(out, name, "histogram",
	    "Seconds each test module run by this node took, by its final result.");

	for (size_t b = 0; b <= METRICS_BUCKETS && r == 0; b++) {
		cum += metrics_load(&metrics_duration_n[b]);
		r = buf_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name,
		    b < METRICS_BUCKETS ? metrics_buckets[b].le : "+Inf", (unsigned long long)cum);
	}
	/* _count is the +Inf bucket, so the two always agree */
	if (r == 0)
		r = buf_printf(out, "%s_sum %llu.%06llu\n%s_count %llu\n", name,
		    (unsigned long long)(usec / 1000000), (unsigned long long)(usec % 1000000),
		    name, (unsigned long long)cum);
	return r;
}

/* Only the (route, status) pairs seen: the rest would be noise. */
static int
metrics_render_http(struct buf *out)
{
	static const char name[] = "meshtest_http_requests_total";
	size_t nroutes = atomic_load_explicit(&metrics_nroutes, memory_order_acquire);
	int r = metrics_head(out, name, "counter",
	    "HTTP requests answered by this node, by method, route pattern (\"unmatched\""
	    " when no route took the path) and status code.");

	for (size_t id = 0; id < METRICS_METHODS + nroutes && r == 0; id++) {
		const char *method = id < METRICS_METHODS ? metrics_methods[id] :
		    metrics_routes[id - METRICS_METHODS].method;
		const char *route = id < METRICS_METHODS ? "unmatched" :
		    metrics_routes[id - METRICS_METHODS].pattern;

		for (int c = 0; c < METRICS_CODES && r == 0; c++) {
			uint64_t v = metrics_load(&metrics_http[id][c]);

			if (v == 0)
				continue;
			r = buf_printf(out, "%s{method=\"", name);
			if (r == 0)
				r = metrics_label_value(out, method);
			if (r == 0)
				r = buf_append(out, "\",route=\"", 9);
			if (r == 0)
				r = metrics_label_value(out, route);
			if (r == 0)
				r = buf_printf(out, "\",code=\"%d\"} %llu\n", c + METRICS_CODE_MIN,
				    (unsigned long long)v);
		}
	}
	return r;
}

/* Families of plain counters: each the sum of some of them. */
static const struct {
	const char *name;
	const char *help;
	enum metrics_counter sum[2];
	size_t n;
} metrics_plain[] = {
	{ "meshtest_replication_sent_bytes_total",
	  "Bytes of evaluation documents this node sent to peers: its pushes and its"
	  " answers to their anti-entropy pulls.",
	  { METRICS_REPL_PUSHED_BYTES, METRICS_REPL_SERVED_BYTES }, 2 },
	{ "meshtest_replication_received_bytes_total",
	  "Bytes of evaluation documents this node received from peers: their pushes and"
	  " the answers to its anti-entropy pulls.",
	  { METRICS_REPL_RECEIVED_BYTES, METRICS_REPL_PULLED_BYTES }, 2 },
	{ "meshtest_replication_sent_documents_total",
	  "Evaluation documents this node sent to peers (pushes and pull answers).",
	  { METRICS_REPL_PUSHED_DOCS, METRICS_REPL_SERVED_DOCS }, 2 },
	{ "meshtest_replication_received_documents_total",
	  "Evaluation documents this node received from peers (pushes and pull answers).",
	  { METRICS_REPL_RECEIVED_DOCS, METRICS_REPL_PULLED_DOCS }, 2 },
	{ "meshtest_blob_sent_bytes_total",
	  "Bytes of project archives (blobs) this node sent to peers: pushes and answers.",
	  { METRICS_BLOB_SENT_BYTES }, 1 },
	{ "meshtest_blob_received_bytes_total",
	  "Bytes of project archives (blobs) this node received from peers.",
	  { METRICS_BLOB_RECEIVED_BYTES }, 1 },
	{ "meshtest_environments_built_total",
	  "Virtual environments this node built and put in place.",
	  { METRICS_ENVS_BUILT }, 1 },
	{ "meshtest_projects_prepared_total",
	  "Projects this node fetched and prepared (unpacked or cloned, set up, packed).",
	  { METRICS_PROJECTS_PREPARED }, 1 },
	{ "meshtest_projects_borrowed_total",
	  "Of those, projects of evaluations another node coordinates, lent to this one.",
	  { METRICS_PROJECTS_BORROWED }, 1 },
};

int
metrics_render(struct buf *out)
{
	int r;

	r = metrics_render_fixed(out, "meshtest_modules_total",
	    "Test modules this node ran, by the outcome of their final result.", "outcome",
	    metrics_outcomes, metrics_modules, METRICS_OUTCOMES);
	if (r == 0)
		r = metrics_render_fixed(out, "meshtest_tests_total",
		    "Tests in the modules this node ran, as counted for the grade (xfailed and"
		    " xpassed count as passed, errors as failed).", "outcome",
		    metrics_test_outcomes, metrics_tests, METRICS_TEST_OUTCOMES);
	if (r == 0)
		r = metrics_render_histogram(out);
	if (r == 0)
		r = metrics_render_http(out);
	for (size_t i = 0; i < sizeof(metrics_plain) / sizeof(metrics_plain[0]) && r == 0; i++) {
		uint64_t v = 0;

		for (size_t k = 0; k < metrics_plain[i].n; k++)
			v += metrics_get(metrics_plain[i].sum[k]);
		r = metrics_render_one(out, metrics_plain[i].name, "counter", metrics_plain[i].help, v);
	}
	return r;
}
