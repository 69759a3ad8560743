/*
 * api_task.c - work between nodes: POST /task/claim (a worker asks the
 * coordinator for a module), POST /task/fetch (an idle fetcher asks it for
 * a project to prepare) and /task/fetch/back (one it did not prepare),
 * GET /task/running (what a node runs now, for the
 * coordinator's checks), POST /task (a nudge: work may be waiting),
 * GET /task/results/<id> (the results this node produced), and the project
 * archives, GET and PUT /blob/<digest>. Runs on the HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/metrics.h"
#include "core/util.h"
#include "engine/blob.h"
#include "engine/engine.h"
#include "store/store.h"

static json_t *
body_json(struct http_request *req, int *status, json_t **err)
{
	size_t len;
	const char *body = http_request_body(req, &len);
	json_error_t jerr;
	json_t *j = json_loadb(body, len, 0, &jerr);

	*err = NULL;
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		*err = http_error(status, 400, "malformed JSON: %s", j ? "not an object" : jerr.text);
		return NULL;
	}
	return j;
}

/*
 * The JSON body of a node's request and its "node" (the asking node's
 * address, borrowed from the body): the body, or NULL with *err the 400.
 */
static json_t *
body_node(struct http_request *req, int *status, json_t **err, const char **node)
{
	json_t *j = body_json(req, status, err);

	*node = j != NULL ? json_string_value(json_object_get(j, "node")) : NULL;
	if (j != NULL && (*node == NULL || strlen(*node) > 255)) {
		json_decref(j);
		*err = http_error(status, 400, "missing \"node\": the asking node's address");
		return NULL;
	}
	return j;
}

static json_t *
post_claim(struct http_request *req, void *ctx, int *status)
{
	const char *node;
	json_t *err, *j = body_node(req, status, &err, &node), *answer;

	if (j == NULL)
		return err;
	answer = engine_claim_for(api_engine(ctx), node,
	    (int)json_integer_value(json_object_get(j, "slots")));
	json_decref(j);
	*status = 200;
	return answer;
}

/* The body's "eval_id" (a UUID) and "idx" (0 or more; NULL idx: not wanted), or -1. */
static int
body_project(json_t *j, const char **eval_id, int *idx)
{
	json_t *i = json_object_get(j, "idx");

	*eval_id = json_string_value(json_object_get(j, "eval_id"));
	if (*eval_id == NULL || !util_is_uuid(*eval_id))
		return -1;
	if (idx == NULL)
		return 0;
	if (!json_is_integer(i) || json_integer_value(i) < 0 || json_integer_value(i) > INT_MAX)
		return -1;
	*idx = (int)json_integer_value(i);
	return 0;
}

static json_t *
post_fetch(struct http_request *req, void *ctx, int *status)
{
	const char *node, *eval_id;
	json_t *err, *j = body_node(req, status, &err, &node), *answer;

	if (j == NULL)
		return err;
	if (body_project(j, &eval_id, NULL) < 0) {
		json_decref(j);
		return http_error(status, 400, "missing \"eval_id\": the evaluation to help");
	}
	answer = engine_fetch_lend(api_engine(ctx), node, eval_id);
	json_decref(j);
	*status = 200;
	return answer;
}

static json_t *
post_fetch_back(struct http_request *req, void *ctx, int *status)
{
	const char *node, *eval_id;
	json_t *err, *j = body_node(req, status, &err, &node);
	int idx;

	if (j == NULL)
		return err;
	if (body_project(j, &eval_id, &idx) < 0) {
		json_decref(j);
		return http_error(status, 400, "missing \"eval_id\" or \"idx\": the project");
	}
	engine_fetch_give_back(api_engine(ctx), node, eval_id, idx);
	json_decref(j);
	*status = 200;
	return json_object();
}

static json_t *
get_running(struct http_request *req, void *ctx, int *status)
{
	(void)req;
	*status = 200;
	return engine_running_json(api_engine(ctx));
}

static json_t *
post_task(struct http_request *req, void *ctx, int *status)
{
	(void)req;
	engine_wake(api_engine(ctx));
	*status = 200;
	return json_object();
}

static json_t *
get_task_results(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	const char *id = http_request_param(req, 0);
	json_t *doc = util_is_uuid(id) ? store_sync_export(engine_store(eng), id) : NULL;
	json_t *mine = json_array(), *r;
	size_t i;

	if (doc == NULL) {
		json_decref(mine);
		return http_error(status, 404, "not found");
	}
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		const char *node = json_string_value(json_object_get(r, "node"));
		if (node != NULL && strcmp(node, engine_address(eng)) == 0)
			json_array_append(mine, r);
	}
	json_decref(doc);
	*status = 200;
	return json_pack("{s:s, s:s, s:o}", "id", id, "node", engine_address(eng), "results", mine);
}

static json_t *
get_blob(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	const char *digest = http_request_param(req, 0);
	struct stat sb;
	char *path;
	int r;

	if (!blob_digest_valid(digest))
		return http_error(status, 404, "not found");
	path = blob_path(engine_blobs_dir(eng), digest);
	r = http_request_respond_file(req, path, "application/zip");
	if (r == 0 && stat(path, &sb) == 0)
		metrics_add(METRICS_BLOB_SENT_BYTES, (uint64_t)sb.st_size);
	free(path);
	if (r < 0)
		return http_error(status, 404, "not found");
	*status = 200;
	return NULL;
}

static json_t *
put_blob(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	const char *digest = http_request_param(req, 0);
	const char *path = http_request_upload(req, "");
	struct stat sb;
	int r;

	if (path != NULL && stat(path, &sb) == 0)
		metrics_add(METRICS_BLOB_RECEIVED_BYTES, (uint64_t)sb.st_size);
	if (!blob_digest_valid(digest))
		return http_error(status, 404, "not found");
	/* here already: stamped, as a copy written now would be (gc_budget.c keeps it) */
	if (blob_touch(engine_blobs_dir(eng), digest) == 0) {
		*status = 200;
		return json_pack("{s:s}", "digest", digest);
	}
	if (path == NULL)
		return http_error(status, 400, "no body");
	r = blob_adopt(engine_blobs_dir(eng), path, digest);
	if (r == -EBADMSG)
		return http_error(status, 400, "the body does not match digest %s", digest);
	if (r < 0)
		return http_error(status, 500, "cannot store the blob");
	*status = 201;
	return json_pack("{s:s}", "digest", digest);
}

const struct http_route api_task_routes[] = {
	{ "POST", "/task/claim", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL, post_claim },
	{ "POST", "/task/fetch", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL, post_fetch },
	{ "POST", "/task/fetch/back", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL, post_fetch_back },
	{ "GET", "/task/running", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_running },
	{ "POST", "/task", HTTP_BODY_JSON, HTTP_ROUTE_INTERNAL, post_task },
	{ "GET", "/task/results/*", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_task_results },
	{ "GET", "/blob/*", HTTP_BODY_NONE, HTTP_ROUTE_INTERNAL, get_blob },
	{ "PUT", "/blob/*", HTTP_BODY_RAW, HTTP_ROUTE_INTERNAL, put_blob },
	{ NULL, NULL, 0, 0, NULL },
};
