/*
 * api_network.c - GET /network, GET /network/peers and GET /health.
 *
 * Until membership lands, the network is this node alone. Runs on the HTTP
 * server's threads.
 */
#include "api/api.h"

#include "engine/engine.h"

static json_t *
get_network(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = ctx;
	json_t *o = json_object();

	(void)req;
	json_object_set_new(o, engine_address(eng), json_array());
	*status = 200;
	return o;
}

static json_t *
get_peers(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = ctx;

	(void)req;
	*status = 200;
	return json_pack("{s:s, s:[]}", "address", engine_address(eng), "peers");
}

static json_t *
get_health(struct http_request *req, void *ctx, int *status)
{
	(void)req;
	*status = 200;
	return engine_health(ctx);
}

const struct http_route api_network_routes[] = {
	{ "GET", "/network", HTTP_BODY_NONE, 0, get_network },
	{ "GET", "/network/peers", HTTP_BODY_NONE, 0, get_peers },
	{ "GET", "/health", HTTP_BODY_NONE, 0, get_health },
	{ NULL, NULL, 0, 0, NULL },
};
