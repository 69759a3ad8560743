/*
 * api.h - the public and internal HTTP endpoints, one route table per
 * endpoint family. Handlers get the node's context (struct node_ctx: the
 * engine and the gossip layer) as their ctx; use api_engine/api_gossip.
 */
#ifndef MESHTEST_API_H
#define MESHTEST_API_H

#include "http/http_server.h"

struct diskuse;
struct engine;
struct gossip;

/* Seconds between two measures of the data folder's size (GET /metrics). */
#define API_DISK_PERIOD 30

/* What main.c hands the HTTP server as every handler's ctx. */
struct node_ctx {
	struct engine *eng;
	struct gossip *gossip;   /* NULL until membership is up */
	struct diskuse *disk;    /* the data folder's size; NULL: not measured */
};

static inline struct engine *
api_engine(void *ctx)
{
	return ((struct node_ctx *)ctx)->eng;
}

static inline struct gossip *
api_gossip(void *ctx)
{
	return __atomic_load_n(&((struct node_ctx *)ctx)->gossip, __ATOMIC_ACQUIRE);
}

static inline struct diskuse *
api_diskuse(void *ctx)
{
	return ((struct node_ctx *)ctx)->disk;
}

extern const struct http_route api_evaluation_routes[];
extern const struct http_route api_cancel_routes[];
extern const struct http_route api_events_routes[];
extern const struct http_route api_export_routes[];
extern const struct http_route api_metrics_routes[];
extern const struct http_route api_stats_routes[];
extern const struct http_route api_network_routes[];
extern const struct http_route api_sync_routes[];
extern const struct http_route api_task_routes[];
extern const struct http_route api_web_routes[];

#endif
