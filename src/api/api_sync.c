/*
 * api_sync.c - replication endpoints (see cluster/replica.h):
 * POST /evaluation/sync_result/<id> (pushed rows), GET /sync/digests,
 * GET /sync/evaluation/<id>/buckets, GET /sync/evaluation/<id> and
 * GET /sync/evaluation/<id>/part/<b1,b2,...> (anti-entropy; in the path, not
 * a query, since the cluster MAC signs the path), GET /sync/counters (what replication
 * moved). Internal: with a cluster key, only peers reach them. Runs on the
 * HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica.h"
#include "core/util.h"
#include "engine/engine.h"
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
	replica_note_received(len);
	changed = store_sync_merge(st, doc);
	/* a cancel or a delete that came with it stops this node's runs of it now */
	if (changed > 0 && (json_object_get(doc, "cancelled_at") != NULL ||
	    json_object_get(doc, "deleted_at") != NULL))
		engine_eval_stop(api_engine(ctx), id);
	/* else it may bring work (a new evaluation): idle slots look now, not in a second */
	else if (changed > 0)
		engine_wake(api_engine(ctx));
	json_decref(doc);
	if (changed < 0)
		return http_error(status, changed == -EINVAL ? 400 : 500, "cannot merge the evaluation");
	*status = 200;
	return json_pack("{s:i}", "changed", changed);
}

/*
 * Answer an anti-entropy pull with doc (taken), serialized here as the
 * server would, so that its bytes count as replication sent.
 */
static json_t *
sync_answer(struct http_request *req, json_t *doc, int *status)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(doc);
	if (text == NULL)
		return http_error(status, 500, "cannot encode the answer");
	replica_note_served(strlen(text));
	http_request_respond_text(req, text, strlen(text), "application/json");
	*status = 200;
	return NULL;
}

static json_t *
get_digests(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));

	return sync_answer(req, store_sync_digests(st), status);
}

static json_t *
get_buckets(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));
	const char *id = http_request_param(req, 0);
	uint64_t dig[STORE_SYNC_BUCKETS];
	double last;
	json_t *arr;

	if (!util_is_uuid(id) || store_sync_buckets(st, id, dig, &last) < 0)
		return http_error(status, 404, "not found");
	arr = json_array();
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++) {
		char hex[17];
		snprintf(hex, sizeof(hex), "%016" PRIx64, dig[i]);
		json_array_append_new(arr, json_string(hex));
	}
	return sync_answer(req, json_pack("{s:s, s:o, s:f}", "id", id, "buckets", arr,
	    "last_event_at", last), status);
}

/* "b1,b2,..." into out (at most STORE_SYNC_BUCKETS); -EINVAL on anything else. */
static int
parse_buckets(const char *s, int *out, size_t *n)
{
	*n = 0;
	while (*s != '\0') {
		char *end;
		long b = strtol(s, &end, 10);

		if (end == s || b < 0 || b >= STORE_SYNC_BUCKETS || *n == STORE_SYNC_BUCKETS ||
		    (*end != ',' && *end != '\0'))
			return -EINVAL;
		out[(*n)++] = (int)b;
		s = *end == ',' ? end + 1 : end;
	}
	return *n > 0 ? 0 : -EINVAL;
}

static json_t *
get_sync_evaluation(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));
	const char *id = http_request_param(req, 0);
	json_t *doc = util_is_uuid(id) ? store_sync_export(st, id) : NULL;

	if (doc == NULL)
		return http_error(status, 404, "not found");
	return sync_answer(req, doc, status);
}

static json_t *
get_sync_part(struct http_request *req, void *ctx, int *status)
{
	struct store *st = engine_store(api_engine(ctx));
	const char *id = http_request_param(req, 0);
	int buckets[STORE_SYNC_BUCKETS];
	size_t n = 0;
	json_t *doc;

	if (!util_is_uuid(id))
		return http_error(status, 404, "not found");
	if (parse_buckets(http_request_param(req, 1), buckets, &n) < 0)
		return http_error(status, 400, "buckets: a comma-separated list of 0..%d",
		    STORE_SYNC_BUCKETS - 1);
	doc = store_sync_export_buckets(st, id, buckets, n);
	if (doc == NULL)
		return http_error(status, 404, "not found");
	return sync_answer(req, doc, status);
}

static json_t *
get_counters(struct http_request *req, void *ctx, int *status)
{
	struct replica_counters c;

	(void)req;
	(void)ctx;
	replica_counters(&c);
	*status = 200;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pushed_docs",
	    (json_int_t)c.pushed_docs, "pushed_bytes", (json_int_t)c.pushed_bytes,
	    "received_docs", (json_int_t)c.received_docs, "received_bytes",
	    (json_int_t)c.received_bytes, "pulled_docs", (json_int_t)c.pulled_docs,
	    "pulled_bytes", (json_int_t)c.pulled_bytes, "served_docs",
	    (json_int_t)c.served_docs, "served_bytes", (json_int_t)c.served_bytes);
}

const struct http_route api_sync_routes[] = {
	{ "POST", "/evaluation/sync_result/*", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL,
	  post_sync_result },
	{ "GET", "/sync/digests", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_digests },
	{ "GET", "/sync/evaluation/*/buckets", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_buckets },
	{ "GET", "/sync/evaluation/*/part/*", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_sync_part },
	{ "GET", "/sync/evaluation/*", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL,
	  get_sync_evaluation },
	{ "GET", "/sync/counters", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_counters },
	{ NULL, NULL, 0, 0, NULL },
};
