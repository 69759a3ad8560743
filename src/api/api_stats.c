/*
 * api_stats.c - GET /stats and GET /stats/node_stats.
 *
 * "all" comes from every recorded result; "nodes" lists the alive members
 * (self included), each computed from the local store: results are
 * replicated to every node, so the local store is the source. Runs on the
 * HTTP server's threads.
 */
#include "api/api.h"

#include "cluster/gossip.h"
#include "engine/engine.h"
#include "store/store.h"

static json_t *
get_stats(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	struct gossip *g = api_gossip(ctx);
	json_t *nodes = json_array();
	char **addrs = NULL;
	size_t n = 0;

	(void)req;
	if (g != NULL && gossip_alive(g, &addrs, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(nodes, store_stats_node(engine_store(eng), addrs[i]));
		gossip_addrs_free(addrs, n);
	} else {
		json_array_append_new(nodes, store_stats_node(engine_store(eng),
		    engine_address(eng)));
	}
	*status = 200;
	return json_pack("{s:o, s:o}", "all", store_stats_all(engine_store(eng)), "nodes", nodes);
}

static json_t *
get_node_stats(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);

	(void)req;
	*status = 200;
	return store_stats_node(engine_store(eng), engine_address(eng));
}

const struct http_route api_stats_routes[] = {
	{ "GET", "/stats", HTTP_BODY_NONE, 0, get_stats },
	{ "GET", "/stats/node_stats", HTTP_BODY_NONE, 0, get_node_stats },
	{ NULL, NULL, 0, 0, NULL },
};
