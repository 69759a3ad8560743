/*
 * fetch_github.c - a GitHub Classroom assignment as a list of repositories.
 *
 * Lists an organisation's repositories through the GitHub REST API (GET
 * /orgs/{org}/repos, 100 per page, following the Link header), keeps those
 * whose name starts with the assignment's prefix, and gives back their
 * clone URLs. The API's base URL is the node's --github-api, so GitHub
 * Enterprise and a local fake API (the tests) work alike. The token goes in
 * one request header and nowhere else. Blocking; any thread; owns nothing
 * beyond the lists it returns.
 */
#include "fetch/fetch_github.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/util.h"
#include "http/http_client.h"

#define FETCH_GITHUB_TIMEOUT 60.0
#define FETCH_GITHUB_PAGE_MAX (16u << 20)
#define FETCH_GITHUB_TRIES 3             /* waits for a rate limit, per page */

int
fetch_github_org_valid(const char *org)
{
	size_t n = org != NULL ? strlen(org) : 0;

	if (n == 0 || n > 39 || org[0] == '-')
		return 0;
	return strspn(org, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

void
fetch_github_free(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

int
fetch_github_page(const char *body, size_t len, const struct fetch_github_query *q,
		  char ***urls, size_t *n, size_t *seen, char *err, size_t errlen)
{
	json_t *page = json_loadb(body, len, 0, NULL), *repo;
	size_t i, plen = strlen(q->prefix);

	if (!json_is_array(page)) {
		util_seterr(err, errlen, "the GitHub API answered something other than a list of"
			    " repositories");
		json_decref(page);
		return -EINVAL;
	}
	json_array_foreach(page, i, repo) {
		const char *name = json_string_value(json_object_get(repo, "name"));
		const char *url = json_string_value(json_object_get(repo, "clone_url"));

		(*seen)++;
		if (name == NULL || url == NULL || strncasecmp(name, q->prefix, plen) != 0)
			continue;
		if (json_is_true(json_object_get(repo, "archived")) && !q->include_archived)
			continue;
		if (json_is_true(json_object_get(repo, "is_template")) && !q->include_templates)
			continue;
		*urls = xrealloc(*urls, (*n + 1) * sizeof(**urls));
		(*urls)[(*n)++] = xstrdup(url);
	}
	json_decref(page);
	return 0;
}

char *
fetch_github_next(const char *link)
{
	/* <url>; rel="next", <url>; rel="last" */
	for (const char *p = link; p != NULL && *p != '\0';) {
		const char *lt = strchr(p, '<'), *gt, *end;
		if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
			return NULL;
		end = strchr(gt, ',');
		if (end == NULL)
			end = gt + strlen(gt);
		if (memmem(gt, (size_t)(end - gt), "rel=\"next\"", 10) != NULL) {
			char *url = xmalloc((size_t)(gt - lt));
			memcpy(url, lt + 1, (size_t)(gt - lt - 1));
			url[gt - lt - 1] = '\0';
			return url;
		}
		p = *end ? end + 1 : end;
	}
	return NULL;
}

static int
fetch_github_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Seconds to wait before asking again when resp is a rate-limit answer
 * (403 or 429 with Retry-After, or with X-RateLimit-Remaining 0), else -1.
 */
static double
fetch_github_limited(const struct http_response *resp, double now)
{
	if (resp->status != 403 && resp->status != 429)
		return -1;
	if (resp->retry_after != NULL)
		return atof(resp->retry_after);
	if (resp->rate_remaining != NULL && atol(resp->rate_remaining) == 0 &&
	    resp->rate_reset != NULL) {
		double wait = atof(resp->rate_reset) - now;
		return wait > 0 ? wait : 0;
	}
	return resp->status == 429 ? 60 : -1;
}

/* The "message" of an API error answer, for err (a static fallback otherwise). */
static const char *
fetch_github_message(const struct http_response *resp, json_t **doc)
{
	const char *m;

	*doc = json_loadb(resp->body, resp->len, 0, NULL);
	m = json_string_value(json_object_get(*doc, "message"));
	return m != NULL ? m : "no message";
}

/* One page: 0 with resp filled (status 200), or an HTTP status with err. */
static int
fetch_github_get(const struct fetch_github_query *q, const char *url,
		 struct http_response *resp, char *err, size_t errlen)
{
	char *auth = q->token != NULL ? xasprintf("Authorization: Bearer %s", q->token) : NULL;
	const char *headers[] = { "Accept: application/vnd.github+json",
				  "X-GitHub-Api-Version: 2022-11-28", auth, NULL };
	json_t *doc = NULL;
	int status = 0;

	for (int tries = 0;; tries++) {
		char e[512];
		double wait;

		memset(resp, 0, sizeof(*resp));
		if (http_client_request("GET", url, headers, NULL, 0, FETCH_GITHUB_TIMEOUT,
					FETCH_GITHUB_PAGE_MAX, resp, e, sizeof(e)) < 0) {
			util_seterr(err, errlen, "cannot reach the GitHub API at %s: %s", q->api, e);
			status = 502;
			break;
		}
		if (resp->status == 200)
			break;
		wait = fetch_github_limited(resp, util_now());
		if (wait >= 0 && wait <= FETCH_GITHUB_WAIT_MAX && tries + 1 < FETCH_GITHUB_TRIES) {
			log_info("fetch: the GitHub API is rate limited; waiting %.0f s", wait);
			http_response_free(resp);
			util_sleep(wait > 0 ? wait : 1);
			continue;
		}
		if (wait >= 0) {
			time_t until = (time_t)(util_now() + wait);
			struct tm tm;
			char when[32];
			gmtime_r(&until, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			util_seterr(err, errlen, "the GitHub API's rate limit is used up until %s"
				    " (%.0f s): submit again then", when, wait);
			status = 503;
		} else if (resp->status == 401) {
			util_seterr(err, errlen, "the GitHub API refused the token (401: %s)",
				    fetch_github_message(resp, &doc));
			status = 400;
		} else if (resp->status == 403) {
			util_seterr(err, errlen, "the GitHub API refused to list the repositories"
				    " of %s (403: %s)", q->org, fetch_github_message(resp, &doc));
			status = 400;
		} else if (resp->status == 404) {
			util_seterr(err, errlen, "no organization '%s' at %s (or the token cannot"
				    " see it)", q->org, q->api);
			status = 404;
		} else {
			util_seterr(err, errlen, "the GitHub API answered %ld: %s", resp->status,
				    fetch_github_message(resp, &doc));
			status = 502;
		}
		break;
	}
	if (status != 0)
		http_response_free(resp);
	json_decref(doc);
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	return status;
}

int
fetch_github_list(const struct fetch_github_query *q, char ***urls, size_t *n, char *err,
		  size_t errlen)
{
	char *url = xasprintf("%s/orgs/%s/repos?per_page=100&type=all", q->api, q->org);
	size_t seen = 0, pages = 0;
	int status = 0;

	*urls = NULL;
	*n = 0;
	if (!fetch_github_org_valid(q->org)) {
		util_seterr(err, errlen, "'%s' is not a GitHub organization name", q->org);
		status = 400;
		goto out;
	}
	while (url != NULL) {
		struct http_response resp;
		char *next;

		if (++pages > FETCH_GITHUB_MAX_PAGES) {
			util_seterr(err, errlen, "%s has more than %d pages of repositories", q->org,
				    FETCH_GITHUB_MAX_PAGES);
			status = 413;
			goto out;
		}
		if ((status = fetch_github_get(q, url, &resp, err, errlen)) != 0)
			goto out;
		if (fetch_github_page(resp.body, resp.len, q, urls, n, &seen, err, errlen) < 0) {
			http_response_free(&resp);
			status = 502;
			goto out;
		}
		next = fetch_github_next(resp.link);
		http_response_free(&resp);
		/* the token goes to the configured API only, never where a header points */
		if (next != NULL && (!util_starts_with(next, q->api) ||
				     (next[strlen(q->api)] != '/' && next[strlen(q->api)] != '?'))) {
			util_seterr(err, errlen, "the GitHub API's next page is not under %s", q->api);
			free(next);
			status = 502;
			goto out;
		}
		free(url);
		url = next;
		if (*n > q->max) {
			util_seterr(err, errlen, "more than %zu repositories of %s match", q->max,
				    q->org);
			status = 413;
			goto out;
		}
	}
	if (*n == 0) {
		util_seterr(err, errlen, "no repository of organization '%s' starts with '%s'"
			    " (%zu looked at; archived and template repositories count only when"
			    " asked for)", q->org, q->prefix, seen);
		status = 400;
		goto out;
	}
	qsort(*urls, *n, sizeof(**urls), fetch_github_cmp);
	log_info("fetch: %s has %zu repositories starting with '%s' (%zu looked at, %zu pages)",
		 q->org, *n, q->prefix, seen, pages);
out:
	free(url);
	if (status != 0) {
		fetch_github_free(*urls, *n);
		*urls = NULL;
		*n = 0;
	}
	return status;
}
