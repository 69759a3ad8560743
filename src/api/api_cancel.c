/*
 * api_cancel.c - POST /evaluation/<id>/cancel and DELETE /evaluation/<id>.
 *
 * A cancel marks the evaluation cancelled in this node's store, stops this
 * node's runs of it, tells every live peer at once and then waits (at most
 * API_CANCEL_WAIT) until none of its modules runs anywhere, as this node's
 * store sees it: 200 with the status document once it is "cancelled", 202
 * with the document as it is when a module is still being stopped (a node
 * that does not answer); it becomes "cancelled" when that one stops. A
 * delete leaves a tombstone in the store, which removes the evaluation from
 * every node (src/store/store_cancel.c), stops its runs here and tells the
 * peers. Both are HTTP_ROUTE_ACT: the API token, and never from another web
 * site. Runs on the HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"
#include "store/store.h"

#define API_CANCEL_WAIT 10.0     /* seconds a cancel waits for its modules to stop */
#define API_CANCEL_POLL 0.1

/*
 * The status document once none of the evaluation's modules runs (or the
 * wait is over): a counter is polled, the document built once.
 */
static json_t *
api_cancel_settled(struct store *st, const char *id, double wait)
{
	double until = util_mono() + wait;

	while (store_eval_running(st, id) > 0 && util_mono() < until)
		util_sleep(API_CANCEL_POLL);
	return store_eval_status(st, id, util_now());   /* NULL: deleted meanwhile */
}

static json_t *
post_cancel(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	struct store *st = engine_store(eng);
	const char *id = http_request_param(req, 0);
	const char *was;
	json_t *doc;
	int r;

	if (!util_is_uuid(id))
		return http_error(status, 404, "not found");
	r = store_eval_cancel(st, id, util_now());
	if (r == -ENOENT)
		return http_error(status, 404, "not found");
	if (r == -EALREADY)
		return http_error(status, 409, "evaluation %s is already cancelled", id);
	if (r == -EPERM) {
		json_t *e;

		doc = store_eval_status(st, id, util_now());
		was = json_string_value(json_object_get(doc, "status"));
		e = http_error(status, 409, "evaluation %s is no longer running: it is %s", id,
		    was != NULL ? was : "finished");
		json_decref(doc);
		return e;
	}
	if (r < 0)
		return http_error(status, 500, "cannot cancel the evaluation");
	log_info("engine: evaluation %s cancelled here", id);
	engine_eval_stopped_here(eng, id);
	doc = api_cancel_settled(st, id, API_CANCEL_WAIT);
	if (doc == NULL)
		return http_error(status, 404, "not found");
	was = json_string_value(json_object_get(doc, "status"));
	*status = was != NULL && strcmp(was, "cancelled") == 0 ? 200 : 202;
	return doc;
}

static json_t *
delete_evaluation(struct http_request *req, void *ctx, int *status)
{
	struct engine *eng = api_engine(ctx);
	const char *id = http_request_param(req, 0);
	double now = util_now();
	int r;

	if (!util_is_uuid(id))
		return http_error(status, 404, "not found");
	r = store_eval_delete(engine_store(eng), id, now);
	if (r == -ENOENT)
		return http_error(status, 404, "not found");
	if (r < 0)
		return http_error(status, 500, "cannot delete the evaluation");
	log_info("engine: evaluation %s deleted here", id);
	engine_eval_stopped_here(eng, id);
	*status = 200;
	return json_pack("{s:s, s:b, s:f}", "id", id, "deleted", 1, "deleted_at", now);
}

const struct http_route api_cancel_routes[] = {
	{ "POST", "/evaluation/*/cancel", HTTP_BODY_NONE, HTTP_ROUTE_ACT, post_cancel },
	{ "DELETE", "/evaluation/*", HTTP_BODY_NONE, HTTP_ROUTE_ACT, delete_evaluation },
	{ NULL, NULL, 0, 0, NULL },
};
