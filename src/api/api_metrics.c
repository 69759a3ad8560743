/*
 * api_metrics.c - GET /metrics: the node's counters and gauges in the
 * Prometheus text exposition format, version 0.0.4.
 *
 * The counters are the registry's (core/metrics.h); the gauges are read now:
 * the slots, the members by state, the work in the store (its running
 * counters, never a scan of modules), the data folder's size (cached and
 * measured in the background, core/diskuse.h) and the database's files.
 * Open like /health: no API token, nothing personal in it. Runs on the
 * HTTP server's threads.
 */
#include "api/api.h"

#include <stdint.h>

#include "cluster/gossip.h"
#include "cluster/membership.h"
#include "core/buf.h"
#include "core/diskuse.h"
#include "core/metrics.h"
#include "engine/engine.h"
#include "store/store.h"

#define API_METRICS_CAP (4u << 20)       /* bytes of one answer */
#define API_METRICS_DISK_WAIT 5.0        /* seconds the first scrape waits for a measure */
#define API_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define API_METRICS_STR(x) #x
#define API_METRICS_XSTR(x) API_METRICS_STR(x)

static const char *const api_metrics_states[] = { "alive", "suspect", "dead", "left" };

static int
api_metrics_gauges(struct buf *out, void *ctx)
{
	struct engine *eng = api_engine(ctx);
	struct gossip *g = api_gossip(ctx);
	struct diskuse *du = api_diskuse(ctx);
	struct store_queue q;
	size_t counts[4] = { 1, 0, 0, 0 };   /* before membership runs: this node */
	uint64_t members[4], bytes;
	long busy, total;
	int r;

	engine_slots(eng, &busy, &total);
	r = metrics_render_one(out, "meshtest_slots", "gauge",
	    "Test modules this node runs at once (--slots).", (uint64_t)total);
	if (r == 0)
		r = metrics_render_one(out, "meshtest_slots_busy", "gauge",
		    "Slots running a batch of modules now.", (uint64_t)busy);
	if (g != NULL)
		gossip_counts(g, counts);
	for (int s = 0; s < 4; s++)
		members[s] = counts[s];
	if (r == 0)
		r = metrics_render_labelled(out, "meshtest_members", "gauge",
		    "Cluster members by state in this node's view, itself included.", "state",
		    api_metrics_states, members, 4);
	if (r == 0 && store_queue(engine_store(eng), &q) == 0) {
		r = metrics_render_one(out, "meshtest_modules_pending", "gauge",
		    "Test modules waiting for a slot, in every evaluation this node holds.",
		    (uint64_t)q.pending);
		if (r == 0)
			r = metrics_render_one(out, "meshtest_modules_running", "gauge",
			    "Test modules claimed by a slot somewhere and not finished.",
			    (uint64_t)q.running);
		if (r == 0)
			r = metrics_render_one(out, "meshtest_projects_fetching", "gauge",
			    "Projects whose files are still to fetch.", (uint64_t)q.fetching);
	}
	/* A failed measure leaves its family out: an absent sample, not a false 0. */
	if (r == 0 && du != NULL && diskuse_get(du, API_METRICS_DISK_WAIT, &bytes) == 0)
		r = metrics_render_one(out, "meshtest_data_dir_bytes", "gauge",
		    "Bytes the data folder takes on disk, the store included (measured in the"
		    " background, at most every " API_METRICS_XSTR(API_DISK_PERIOD) " seconds).",
		    bytes);
	if (r == 0 && store_disk_bytes(engine_store(eng), &bytes) == 0)
		r = metrics_render_one(out, "meshtest_store_bytes", "gauge",
		    "Bytes of the SQLite store's files (database and write-ahead log).", bytes);
	if (r == 0)
		r = metrics_render_one(out, "meshtest_disk_budget_bytes", "gauge",
		    "Disk budget for blobs, projects, work folders and environments (--max-disk"
		    " or its default).", engine_disk_budget(eng));
	return r;
}

static json_t *
get_metrics(struct http_request *req, void *ctx, int *status)
{
	struct buf out;
	size_t len;

	buf_init(&out, API_METRICS_CAP);
	if (metrics_render(&out) < 0 || api_metrics_gauges(&out, ctx) < 0) {
		buf_free(&out);
		return http_error(status, 500, "the metrics do not fit in %u bytes", API_METRICS_CAP);
	}
	len = out.len;
	http_request_respond_text(req, buf_steal(&out), len, API_METRICS_TYPE);
	*status = 200;
	return NULL;
}

const struct http_route api_metrics_routes[] = {
	{ "GET", "/metrics", HTTP_BODY_NONE, 0, get_metrics },
	{ NULL, NULL, 0, 0, NULL },
};
