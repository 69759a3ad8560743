/*
 * api_evaluation.c - POST /evaluation, GET /evaluation, GET /evaluation/<id>
 * and GET /evaluation/<id>/results.
 *
 * Decoding and validation of submissions live here (api_evaluation_decode is
 * pure, for unit tests and fuzzing); the work itself is the engine's. Runs on
 * the HTTP server's threads.
 */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api_evaluation.h"
#include "core/util.h"
#include "engine/engine.h"
#include "engine/intake.h"
#include "fetch/fetch_github.h"
#include "store/store.h"

#define API_MAX_URL 2048

/* The organization form's fields into out (borrowed from root). */
static int
api_evaluation_decode_org(json_t *root, struct api_git_submission *out, char *err,
    size_t errlen)
{
	json_t *org = json_object_get(root, "organization");
	json_t *prefix = json_object_get(root, "prefix");
	json_t *arch = json_object_get(root, "include_archived");
	json_t *tmpl = json_object_get(root, "include_templates");

	if (!json_is_string(org) || !fetch_github_org_valid(json_string_value(org))) {
		snprintf(err, errlen, "\"organization\" must be a GitHub organization name (letters,"
		    " digits and '-', at most 39)");
		return -EINVAL;
	}
	if (prefix != NULL && (!json_is_string(prefix) || json_string_length(prefix) > 100 ||
	    strlen(json_string_value(prefix)) != json_string_length(prefix))) {
		snprintf(err, errlen, "\"prefix\" must be a string of at most 100 characters");
		return -EINVAL;
	}
	if ((arch != NULL && !json_is_boolean(arch)) || (tmpl != NULL && !json_is_boolean(tmpl))) {
		snprintf(err, errlen, "\"include_archived\" and \"include_templates\" must be true"
		    " or false");
		return -EINVAL;
	}
	out->organization = json_string_value(org);
	out->prefix = prefix != NULL ? json_string_value(prefix) : "";
	out->include_archived = json_is_true(arch);
	out->include_templates = json_is_true(tmpl);
	return 0;
}

int
api_evaluation_decode(const char *body, size_t len, struct api_git_submission *out,
    char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *projects, *token, *v;
	size_t i;

	memset(out, 0, sizeof(*out));
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line,
		    jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "the body must be a JSON object with a \"projects\" list");
		goto fail;
	}
	projects = json_object_get(root, "projects");
	if (json_object_get(root, "organization") != NULL) {
		if (api_evaluation_decode_org(root, out, err, errlen) < 0)
			goto fail;
		if (projects != NULL) {
			snprintf(err, errlen, "send \"projects\" or \"organization\", not both");
			goto fail;
		}
	} else if (projects == NULL) {
		snprintf(err, errlen, "missing field \"projects\": a list of git repository URLs"
		    " (or \"organization\" and \"prefix\" for a GitHub Classroom assignment)");
		goto fail;
	} else if (!json_is_array(projects) || json_array_size(projects) == 0) {
		snprintf(err, errlen, "\"projects\" must be a non-empty list of git repository URLs");
		goto fail;
	}
	json_array_foreach(projects != NULL && out->organization == NULL ? projects : NULL, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > API_MAX_URL) {
			snprintf(err, errlen, "\"projects\"[%zu] must be a URL string of 1 to %d"
			    " characters", i, API_MAX_URL);
			goto fail;
		}
	}
	token = json_object_get(root, "auth_token");
	if (token != NULL && !json_is_null(token) && !json_is_string(token)) {
		snprintf(err, errlen, "\"auth_token\" must be a string");
		goto fail;
	}
	out->root = root;
	out->projects = out->organization == NULL ? projects : NULL;
	out->token = json_is_string(token) && json_string_length(token) > 0 ?
	    json_string_value(token) : NULL;
	out->settings = intake_settings_parse(root, err, errlen);
	if (out->settings == NULL)
		goto fail;
	return 0;
fail:
	json_decref(root);
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

void
api_git_submission_free(struct api_git_submission *s)
{
	json_decref(s->settings);
	json_decref(s->root);
	memset(s, 0, sizeof(*s));
}

static json_t *
post_git(struct http_request *req, struct engine *eng, int *status)
{
	struct api_git_submission sub;
	const char **urls = NULL;
	char err[1024], id[UUID_STR_LEN];
	size_t len, n;
	const char *body = http_request_body(req, &len);
	json_t *answer;
	int r;

	if (api_evaluation_decode(body, len, &sub, err, sizeof(err)) < 0)
		return http_error(status, 400, "%s", err);
	if (sub.organization != NULL) {
		struct intake_org org = { sub.organization, sub.prefix, sub.include_archived,
					  sub.include_templates };
		r = intake_submit_org(eng, &org, sub.token, sub.settings, id, err, sizeof(err));
		api_git_submission_free(&sub);
		if (r != 0)
			return http_error(status, r, "%s", err);
		*status = 201;
		return json_pack("{s:s}", "id", id);
	}
	n = json_array_size(sub.projects);
	urls = xcalloc(n, sizeof(*urls));
	for (size_t i = 0; i < n; i++)
		urls[i] = json_string_value(json_array_get(sub.projects, i));
	r = intake_submit_git(eng, urls, n, sub.token, sub.settings, id, err, sizeof(err));
	free(urls);
	api_git_submission_free(&sub);
	if (r != 0)
		return http_error(status, r, "%s", err);
	*status = 201;
	answer = json_pack("{s:s}", "id", id);
	return answer;
}

static json_t *
post_zip(struct http_request *req, struct engine *eng, int *status)
{
	const char *path = http_request_upload(req, "file");
	json_t *settings;
	char err[1024], id[UUID_STR_LEN];
	int r;

	if (path == NULL)
		return http_error(status, 400, "missing the 'file' field: upload a ZIP as"
		    " multipart/form-data field 'file'");
	settings = intake_settings_parse(http_request_form(req), err, sizeof(err));
	if (settings == NULL)
		return http_error(status, 400, "%s", err);
	r = intake_submit_zip(eng, path, http_request_upload_name(req, "file"),
	    http_request_upload(req, "instructor_tests"), settings, id,
	    err, sizeof(err));
	json_decref(settings);
	if (r != 0)
		return http_error(status, r, "%s", err);
	*status = 201;
	return json_pack("{s:s}", "id", id);
}

static json_t *
post_evaluation(struct http_request *req, void *ctx, int *status)
{
	if (strcmp(http_request_media_type(req), "multipart/form-data") == 0)
		return post_zip(req, api_engine(ctx), status);
	return post_git(req, api_engine(ctx), status);
}

static json_t *
list_evaluations(struct http_request *req, void *ctx, int *status)
{
	(void)req;
	*status = 200;
	return store_eval_list(engine_store(api_engine(ctx)));
}

static json_t *
get_evaluation(struct http_request *req, void *ctx, int *status)
{
	const char *id = http_request_param(req, 0);
	char *text = NULL;
	size_t len = 0;

	if (util_is_uuid(id))
		text = store_eval_status_text(engine_store(api_engine(ctx)), id, util_now(), &len);
	if (text == NULL)
		return http_error(status, 404, "not found");
	http_request_respond_text(req, text, len, "application/json");
	*status = 200;
	return NULL;
}

/* http_stream_fill of /results: the store's reader; an error cuts the answer. */
static long
results_fill(void *ctx, char *buf, size_t max)
{
	return http_stream_from_read(store_results_read(ctx, buf, max));
}

static void
results_done(void *ctx)
{
	store_results_close(ctx);
}

/* The document is streamed as it is read: never whole in memory. */
static json_t *
get_results(struct http_request *req, void *ctx, int *status)
{
	const char *id = http_request_param(req, 0);
	struct store_results *r = NULL;
	int rc = -ENOENT;

	if (util_is_uuid(id))
		rc = store_results_open(engine_store(api_engine(ctx)), id, util_now(), &r);
	if (rc == -ENOENT)
		return http_error(status, 404, "not found");
	if (rc == -EBUSY)
		return http_error(status, 503, "too many results being read on this node;"
		    " try again later");
	if (rc < 0)
		return http_error(status, 500, "cannot read the evaluation's results");
	if (http_request_respond_stream(req, "application/json", results_fill, results_done,
	    r) < 0) {
		store_results_close(r);
		return http_error(status, 503, "too many streamed answers open on this node;"
		    " try again later");
	}
	*status = 200;
	return NULL;
}

const struct http_route api_evaluation_routes[] = {
	{ "POST", "/evaluation", HTTP_BODY_SUBMIT, HTTP_ROUTE_ACT, post_evaluation },
	{ "GET", "/evaluation", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, list_evaluations },
	{ "GET", "/evaluation/*", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, get_evaluation },
	{ "GET", "/evaluation/*/results", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, get_results },
	{ NULL, NULL, 0, 0, NULL },
};
