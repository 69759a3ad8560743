/*
 * api_export.c - GET /evaluation/<id>/export?format=csv|junit|gradescope
 * [&project=<project_id>]: an evaluation's results as a CSV gradebook,
 * JUnit XML or Gradescope results.json.
 *
 * The formats are export.c's; this file checks the request and answers
 * from the /results document of the local store (results are replicated to
 * every node, so any node answers). Runs on the HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "engine/engine.h"
#include "export/export.h"
#include "store/store.h"

/* What the client sent, fit to quote in an error message: "" when it is not. */
static const char *
api_export_quotable(const char *s)
{
	json_t *v = strlen(s) <= 200 ? json_string(s) : NULL;   /* NULL: not UTF-8 */
	int ok = v != NULL;

	json_decref(v);
	return ok ? s : "";
}

static json_t *
get_export(struct http_request *req, void *ctx, int *status)
{
	const char *id = http_request_param(req, 0);
	const char *format = http_request_query(req, "format");
	const char *project = http_request_query(req, "project");
	enum export_format f;
	json_t *results = NULL;
	char *text = NULL;
	size_t len = 0;
	int r;

	if (format == NULL || format[0] == '\0')
		return http_error(status, 400, "missing format: use format="
		    EXPORT_FORMAT_NAMES);
	if (export_format_parse(format, &f) < 0)
		return http_error(status, 400, "unknown format '%s': use "
		    EXPORT_FORMAT_NAMES, api_export_quotable(format));
	if (util_is_uuid(id))
		results = store_eval_results(engine_store(api_engine(ctx)), id, util_now());
	if (results == NULL)
		return http_error(status, 404, "not found");
	r = export_render(results, f, project, &text, &len);
	json_decref(results);
	if (r == -ENOENT)
		return http_error(status, 404, "no project '%s' in evaluation %s",
		    api_export_quotable(project), id);
	if (r < 0)
		return http_error(status, 500, "cannot build the export: %s", strerror(-r));
	http_request_respond_text(req, text, len, export_content_type(f));
	*status = 200;
	return NULL;
}

const struct http_route api_export_routes[] = {
	{ "GET", "/evaluation/*/export", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, get_export },
	{ NULL, NULL, 0, 0, NULL },
};
