/*
 * metrics.h - the node's counters for GET /metrics (Prometheus text format).
 *
 * One process-wide registry of lock-free atomic counters. The modules that
 * see an event bump it with one call (an atomic add, or a few for a module
 * result); api_metrics.c renders the registry with metrics_render and adds
 * the gauges it reads at render time (slots, members, queue, disk).
 *
 * Every label set is fixed or bounded: module and test outcomes are fixed
 * lists, HTTP requests are labelled by the route's pattern (registered once
 * when the server starts, at most METRICS_ROUTES_MAX) and never by the raw
 * path. Any thread may call any function here.
 */
#ifndef MESHTEST_METRICS_H
#define MESHTEST_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Plain counters, each bumped by metrics_add. */
enum metrics_counter {
	METRICS_REPL_PUSHED_DOCS,     /* evaluation documents pushed to a peer */
	METRICS_REPL_PUSHED_BYTES,
	METRICS_REPL_RECEIVED_DOCS,   /* pushes a peer sent here */
	METRICS_REPL_RECEIVED_BYTES,
	METRICS_REPL_PULLED_DOCS,     /* anti-entropy answers taken from a peer */
	METRICS_REPL_PULLED_BYTES,
	METRICS_REPL_SERVED_DOCS,     /* anti-entropy answers given to a peer */
	METRICS_REPL_SERVED_BYTES,
	METRICS_BLOB_SENT_BYTES,      /* blobs pushed to or served to a peer */
	METRICS_BLOB_RECEIVED_BYTES,  /* blobs fetched from or pushed by a peer */
	METRICS_ENVS_BUILT,           /* virtual environments put in place */
	METRICS_PROJECTS_PREPARED,    /* projects fetched and prepared here (ready) */
	METRICS_PROJECTS_BORROWED,    /* of them, lent by another node's coordinator */
	METRICS_COUNTERS
};

#define METRICS_ROUTES_MAX 128     /* registered (method, pattern) pairs */

void metrics_add(enum metrics_counter c, uint64_t n);
uint64_t metrics_get(enum metrics_counter c);

/*
 * A module this node ran has its final result: outcome ("finished",
 * "timeout", "crashed", "oom", "infra_error"; anything else counts as
 * "other"), its counted tests and the seconds it ran.
 */
void metrics_module_done(const char *outcome, long passed, long failed, long skipped,
    double seconds);

/*
 * The id of a route (method, pattern) for metrics_http_count, registered
 * on first sight (the strings are copied). Past METRICS_ROUTES_MAX routes,
 * the requests of the others count as unmatched.
 */
int metrics_http_route(const char *method, const char *pattern);
/* The id for a request no route took (404, 405), by its method. */
int metrics_http_unmatched(const char *method);
/* An answer with this status was queued for a request of route id. */
void metrics_http_count(int id, int status);

/*
 * Append the registry in the text exposition format 0.0.4: every family
 * with its HELP and TYPE lines. 0 or -ENOSPC when out would pass its cap.
 */
int metrics_render(struct buf *out);

/* One unlabelled family of one sample: "gauge" or "counter". */
int metrics_render_one(struct buf *out, const char *name, const char *type,
    const char *help, uint64_t value);
/* A family with one label: a sample per value (labels[i], values[i]). */
int metrics_render_labelled(struct buf *out, const char *name, const char *type,
    const char *help, const char *label, const char *const *labels,
    const uint64_t *values, size_t n);

#endif
