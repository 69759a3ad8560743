/*
 * fetch_github.h - a GitHub Classroom assignment as a list of repositories:
 * the organisation's repositories from the GitHub REST API (every page),
 * filtered by name prefix (fetch_github.c).
 */
#ifndef MESHTEST_FETCH_GITHUB_H
#define MESHTEST_FETCH_GITHUB_H

#include <stddef.h>

#define FETCH_GITHUB_DEFAULT_API "https://api.github.com"
#define FETCH_GITHUB_MAX_PAGES 200        /* of 100 repositories each */
#define FETCH_GITHUB_WAIT_MAX 20.0        /* seconds a rate limit is waited out */

struct fetch_github_query {
	const char *api;           /* base URL, e.g. https://api.github.com (no trailing /) */
	const char *token;         /* NULL: anonymous (public repositories, low rate limit) */
	const char *org;
	const char *prefix;        /* "" matches every repository */
	int include_archived;
	int include_templates;
	size_t max;                /* more matches than this is an error (413) */
};

/* 1 when org is a GitHub login: 1-39 of [A-Za-z0-9-], not starting with '-'. */
int fetch_github_org_valid(const char *org);

/*
 * The clone URLs of the repositories of q->org whose name starts with
 * q->prefix (case-insensitively), archived and template repositories left
 * out unless asked, sorted by name: *urls (malloc'ed array of malloc'ed
 * strings, fetch_github_free), *n > 0.
 *
 * GET <api>/orgs/<org>/repos?per_page=100&type=all, then each Link
 * rel="next" (only while it stays under <api>), with the token as a Bearer
 * token (never logged). A rate limit that resets within
 * FETCH_GITHUB_WAIT_MAX seconds is waited out; a longer one is an error.
 *
 * Returns 0, or the HTTP status for the submitter with err set: 400 (the
 * API refused the token, or nothing matched), 404 (no such organisation, or
 * the token cannot see it), 413 (more than q->max matches), 502 (the API
 * cannot be reached or answered something else), 503 (rate limited: err
 * says until when). Blocking; any thread.
 */
int fetch_github_list(const struct fetch_github_query *q, char ***urls, size_t *n, char *err,
		      size_t errlen);

/*
 * One page of the API's answer (a JSON array of repositories): append the
 * clone URLs of those that match q to *urls, count the repositories seen
 * in *seen. 0, or -EINVAL with err when the page is not such an array.
 * Pure.
 */
int fetch_github_page(const char *body, size_t len, const struct fetch_github_query *q,
		      char ***urls, size_t *n, size_t *seen, char *err, size_t errlen);

/* The URL of rel="next" in a Link header (malloc'ed), or NULL. Pure. */
char *fetch_github_next(const char *link);

void fetch_github_free(char **urls, size_t n);

#endif
