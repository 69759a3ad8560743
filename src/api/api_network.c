/*
 * api_network.c - GET /network, GET /network/peers, POST /network/gossip and
 * GET /health.
 *
 * Thin: membership lives in cluster/gossip.c. GET /network asks every alive
 * peer for its view in parallel (GET /network/peers, short timeout). Runs on
 * the HTTP server's threads.
 */
#include "api/api.h"


#include "cluster/gossip.h"
#include "engine/engine.h"

#define API_NETWORK_VIEW_TIMEOUT 1.0  /* seconds per peer for GET /network */

static json_t *
get_network(struct http_request *req, void *ctx, int *status)
{
	struct gossip *g = api_gossip(ctx);
	json_t *o;

	(void)req;
	*status = 200;
	if (g != NULL)
		return gossip_network(g, API_NETWORK_VIEW_TIMEOUT);
	o = json_object();
	json_object_set_new(o, engine_address(api_engine(ctx)), json_array());
	return o;
}

static json_t *
get_peers(struct http_request *req, void *ctx, int *status)
{
	struct gossip *g = api_gossip(ctx);

	(void)req;
	*status = 200;
	if (g != NULL)
		return gossip_view(g);
	return json_pack("{s:s, s:[], s:[]}", "address", engine_address(api_engine(ctx)),
	    "peers", "members");
}

static json_t *
post_gossip(struct http_request *req, void *ctx, int *status)
{
	struct gossip *g = api_gossip(ctx);
	const char *body;
	json_t *msg, *reply = NULL;
	size_t len;

	if (g == NULL)
		return http_error(status, 503, "membership is not running");
	body = http_request_body(req, &len);
	msg = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
	if (msg == NULL)
		return http_error(status, 400, "malformed JSON in the gossip message");
	if (gossip_handle_message(g, msg, &reply) < 0) {
		json_decref(msg);
		return http_error(status, 400, "not a gossip message: need \"type\" (ping,"
		    " ping-req, ack, nack, leave), \"from\" (host:port) and \"incarnation\"");
	}
	json_decref(msg);
	*status = 200;
	return reply != NULL ? reply : json_object();
}

static json_t *
get_health(struct http_request *req, void *ctx, int *status)
{
	(void)req;
	*status = 200;
	return engine_health(api_engine(ctx));
}

const struct http_route api_network_routes[] = {
	{ "GET", "/network", HTTP_BODY_NONE, 0, get_network },
	{ "GET", "/network/peers", HTTP_BODY_NONE, 0, get_peers },
	{ "POST", "/network/gossip", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL, post_gossip },
	{ "GET", "/health", HTTP_BODY_NONE, 0, get_health },
	{ NULL, NULL, 0, 0, NULL },
};
