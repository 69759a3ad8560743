/*
 * api_web.c - GET / and GET /static/<file>: the dashboard.
 *
 * The page, its script and its style sheet are compiled into the binary
 * (scripts/embed.sh, src/web/), so every node serves the same dashboard with
 * no files to install and no network. The page reads the public API from the
 * browser (with the API token the user gives it); these routes need no token,
 * since the files hold no evaluation data.
 *
 * Every answer carries a Content-Security-Policy that allows only this
 * node's own script, style and API, no inline script and no other site: a
 * test name or message that slipped into the page as markup could run
 * nothing. Runs on the HTTP server's threads.
 */
#include "api/api.h"

#include <string.h>

#include "core/util.h"
#include "embedded.h"

struct api_web_file {
	const char *name;       /* under /static/ */
	const char *text;
	const char *type;
};

static const struct api_web_file api_web_files[] = {
	{ "app.js", embedded_web_app_js, "application/javascript; charset=utf-8" },
	{ "style.css", embedded_web_style_css, "text/css; charset=utf-8" },
	{ "favicon.svg", embedded_web_favicon_svg, "image/svg+xml" },
};

/* no-cache: a browser revalidates, so a node upgraded in place serves its own page. */
static const char *const api_web_headers[] = {
	"Content-Security-Policy",
	"default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none';"
	" base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options", "nosniff",
	"Cache-Control", "no-cache",
	"Referrer-Policy", "no-referrer",
	NULL,
};

static json_t *
api_web_respond(struct http_request *req, const char *text, const char *type, int *status)
{
	http_request_respond_text(req, xstrdup(text), strlen(text), type);
	http_request_answer_headers(req, api_web_headers);
	*status = 200;
	return NULL;
}

static json_t *
get_index(struct http_request *req, void *ctx, int *status)
{
	(void)ctx;
	return api_web_respond(req, embedded_web_index_html, "text/html; charset=utf-8", status);
}

static json_t *
get_static(struct http_request *req, void *ctx, int *status)
{
	const char *name = http_request_param(req, 0);

	(void)ctx;
	for (size_t i = 0; i < sizeof(api_web_files) / sizeof(api_web_files[0]); i++)
		if (strcmp(name, api_web_files[i].name) == 0)
			return api_web_respond(req, api_web_files[i].text, api_web_files[i].type,
			    status);
	return http_error(status, 404, "not found");
}

const struct http_route api_web_routes[] = {
	{ "GET", "/", HTTP_BODY_NONE, 0, get_index },
	{ "GET", "/static/*", HTTP_BODY_NONE, 0, get_static },
	{ NULL, NULL, 0, 0, NULL },
};
