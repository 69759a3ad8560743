/*
 * intake.h - accepting evaluations (POST /evaluation): ZIP uploads and git
 * URLs, with their optional settings. Called on the HTTP server's threads.
 */
#ifndef MESHTEST_INTAKE_H
#define MESHTEST_INTAKE_H

#include <jansson.h>
#include <stddef.h>

struct engine;

/*
 * Check and normalise the optional evaluation settings: module_timeout
 * (seconds), isolation ("project" or "module"), and those of setup.h
 * (setup, reruns, instructor_tests): numbers or numeric strings (form
 * fields). Returns a new settings object, or NULL with a message in err.
 */
json_t *intake_settings_parse(json_t *in, char *err, size_t errlen);

/*
 * Accept a ZIP upload. The file at upload_path is moved into the data
 * folder on success (the caller must then not delete it). filename is the
 * client's name for it (for a ZIP whose root is one project), may be NULL.
 * instructor_zip, when not NULL, is a ZIP of the instructor's tests (moved
 * into the data folder too) that replace each project's tests/.
 * On success returns 0 and writes the id; on refusal returns the HTTP status
 * (4xx/5xx) with a message in err: 507 when the upload does not fit in the
 * node's disk budget even after removing what nothing uses (gc_budget.c).
 */
int intake_submit_zip(struct engine *eng, const char *upload_path, const char *filename,
    const char *instructor_zip, json_t *settings, char id[37], char *err, size_t errlen);
/* Accept git URLs; token may be NULL and is kept in memory only (507: over the disk budget). */
int intake_submit_git(struct engine *eng, const char *const *urls, size_t n,
    const char *token, json_t *settings, char id[37], char *err, size_t errlen);

/* A GitHub Classroom assignment: the organization's repositories named prefix*. */
struct intake_org {
	const char *organization;
	const char *prefix;
	int include_archived, include_templates;
};
/*
 * Expand org through the GitHub REST API at the node's --github-api
 * (fetch_github_list, with token) and accept the repositories as
 * intake_submit_git would. 0, or the HTTP status with err (a bad token,
 * no match, an unknown organization, a rate limit: see fetch_github.h).
 */
int intake_submit_org(struct engine *eng, const struct intake_org *org, const char *token,
    json_t *settings, char id[37], char *err, size_t errlen);

#endif
