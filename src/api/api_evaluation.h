/*
 * api_evaluation.h - decoding of POST /evaluation bodies (pure; unit-tested
 * and fuzzed).
 */
#ifndef MESHTEST_API_EVALUATION_H
#define MESHTEST_API_EVALUATION_H

#include <jansson.h>
#include <stddef.h>

struct api_git_submission {
	json_t *root;          /* the parsed body; owns the strings below */
	json_t *projects;      /* borrowed from root: array of URL strings, or NULL */
	const char *token;     /* borrowed from root, NULL when absent or empty */
	const char *organization; /* borrowed: a GitHub organization instead of projects */
	const char *prefix;    /* borrowed: with organization ("" when absent) */
	int include_archived, include_templates;
	json_t *settings;      /* owned: normalised evaluation settings */
};

/*
 * Decode {"auth_token": "...", "projects": [...], settings...}, or instead
 * of "projects" {"organization": "org", "prefix": "assignment-1-",
 * "include_archived": false, "include_templates": false}.
 * Returns 0, or -EINVAL with a clear message in err.
 */
int api_evaluation_decode(const char *body, size_t len, struct api_git_submission *out,
    char *err, size_t errlen);
void api_git_submission_free(struct api_git_submission *s);

#endif
