/*
 * api_export.c - GET /evaluation/<id>/export?format=csv|junit|gradescope
 * [&project=<project_id>]: an evaluation's results as a CSV gradebook,
 * JUnit XML or Gradescope results.json.
 *
 * The formats are export.c's; this file checks the request and streams the
 * answer from the local store a project at a time (export_stream.c; results
 * are replicated to every node, so any node answers). Runs on the HTTP
 * server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "engine/engine.h"
#include "export/export.h"
#include "export/export_stream.h"
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

/* http_stream_fill of an export: the stream's reader; an error cuts the answer. */
static long
export_fill(void *ctx, char *buf, size_t max)
{
	return http_stream_from_read(export_stream_read(ctx, buf, max));
}

static void
export_done(void *ctx)
{
	export_stream_close(ctx);
}

/* Streamed as it is read from the store: one project in memory at a time. */
static json_t *
get_export(struct http_request *req, void *ctx, int *status)
{
	const char *id = http_request_param(req, 0);
	const char *format = http_request_query(req, "format");
	const char *project = http_request_query(req, "project");
	struct export_stream *s = NULL;
	enum export_format f;
	int r = -ENOENT;

	if (format == NULL || format[0] == '\0')
		return http_error(status, 400, "missing format: use format="
		    EXPORT_FORMAT_NAMES);
	if (export_format_parse(format, &f) < 0)
		return http_error(status, 400, "unknown format '%s': use "
		    EXPORT_FORMAT_NAMES, api_export_quotable(format));
	if (util_is_uuid(id))
		r = export_stream_open(engine_store(api_engine(ctx)), id, f, project, &s);
	if (r == -ENOENT)
		return http_error(status, 404, "not found");
	if (r == -ENODATA)
		return http_error(status, 404, "no project '%s' in evaluation %s",
		    api_export_quotable(project), id);
	if (r == -EBUSY)
		return http_error(status, 503, "too many results being read on this node;"
		    " try again later");
	if (r < 0)
		return http_error(status, 500, "cannot read the evaluation's results");
	if (http_request_respond_stream(req, export_content_type(f), export_fill, export_done,
	    s) < 0) {
		export_stream_close(s);
		return http_error(status, 503, "too many streamed answers open on this node;"
		    " try again later");
	}
	*status = 200;
	return NULL;
}

const struct http_route api_export_routes[] = {
	{ "GET", "/evaluation/*/export", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, get_export },
	{ NULL, NULL, 0, 0, NULL },
};
