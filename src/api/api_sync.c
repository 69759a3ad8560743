/*
 * api_sync.c - replication endpoints: POST /evaluation/sync_result/<id>
 * (a pushed evaluation state), GET /sync/digests and
 * GET /sync/evaluation/<id> (anti-entropy pulls). Internal: with a cluster
 * key, only peers reach them. Runs on the HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <string.h>

#include "engine/engine.h"
#include "core/util.h"
#include "store/store.h"

static json_t *
post_sync_result(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));
	const char *id = http_request_param(req, 0);
	size_t len;
	const char *body = http_request_body(req, &len);
	json_error_t jerr;
	json_t *doc;
	int changed;

	if (!util_is_uuid(id))
		return http_error(status, 404, "not found");
	doc = json_loadb(body, len, 0, &jerr);
	if (doc == NULL)
		return http_error(status, 400, "malformed JSON: %s", jerr.text);
	if (strcmp(json_string_value(json_object_get(doc, "id")) ?
	    json_string_value(json_object_get(doc, "id")) : "", id) != 0) {
		json_decref(doc);
		return http_error(status, 400, "the document's id does not match the path");
	}
	changed = store_eval_merge(st, doc);
	json_decref(doc);
	if (changed < 0)
		return http_error(status, changed == -EINVAL ? 400 : 500, "cannot merge the evaluation");
	*status = 200;
	return json_pack("{s:i}", "changed", changed);
}

static json_t *
get_digests(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));

	(void)req;
	*status = 200;
	return store_eval_digests(st);
}

static json_t *
get_sync_evaluation(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));
	const char *id = http_request_param(req, 0);
	json_t *doc = util_is_uuid(id) ? store_eval_export(st, id) : NULL;

	if (doc == NULL)
		return http_error(status, 404, "not found");
	*status = 200;
	return doc;
}

const struct http_route api_sync_routes[] = {
	{ "POST", "/evaluation/sync_result/*", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL,
	  post_sync_result },
	{ "GET", "/sync/digests", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_digests },
	{ "GET", "/sync/evaluation/*", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL,
	  get_sync_evaluation },
	{ NULL, NULL, 0, 0, NULL },
};
