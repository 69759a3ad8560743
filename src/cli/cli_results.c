/*
 * cli_results.c - what failed, as pytest's short test summary:
 *
 *   meshtest results ID [--project P] [--node host:port]
 *
 * prints every failed or errored test and every project error of an
 * evaluation; submit --wait and status ID print the same lines after their
 * table, capped by --failures (cli_report_failures). Runs on the client's
 * main thread and owns nothing beyond the call.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "export/export.h"

#define CLI_NAME_LINE 512   /* cap on a project/node id as printed */

static void
cli_results_usage(FILE *f)
{
	fprintf(f,
		"usage: meshtest results ID [--project P] [--node host:port]\n"
		"  every failed or errored test (FAILED/ERROR <project>/<test> -\n"
		"  <what went wrong>) and every project error of the evaluation\n"
		"  --project  only this project\n"
		"  --node     node to talk to (env MESHTEST_NODE, default "
		CLI_DEFAULT_NODE ")\n");
}

/* "FAILED alice/tests/test_x.py::test_y - assert 1 == 2" */
static void
cli_failure_line(FILE *f, const char *kind, const char *project, const char *name,
    const char *message)
{
	char pid[CLI_NAME_LINE], nid[CLI_NAME_LINE], line[EXPORT_LINE_MAX + 1];

	/* names and messages are the project's text: no terminal controls */
	export_clean_line(project, pid, sizeof(pid));
	export_clean_line(name, nid, sizeof(nid));
	export_message_line(message, line, sizeof(line));
	fprintf(f, "%s %s%s%s%s%s\n", kind, pid, nid[0] != '\0' ? "/" : "", nid,
		line[0] != '\0' ? " - " : "", line);
}

long
cli_failures_print(FILE *f, const json_t *results, const char *project, long cap,
		   const char *id)
{
	const json_t *projects = json_object_get(results, "projects");
	long shown = 0, more = 0, errors = 0;
	size_t i, k, n;
	json_t *p, *m, *t;

	json_array_foreach(projects, i, p) {
		const char *pid = json_string_value(json_object_get(p, "project_id"));

		if (project != NULL && (pid == NULL || strcmp(pid, project) != 0))
			continue;
		json_array_foreach(json_object_get(p, "modules"), k, m) {
			json_array_foreach(json_object_get(m, "tests"), n, t) {
				const char *outcome = json_string_value(json_object_get(t,
				    "outcome"));
				const char *counted = json_string_value(json_object_get(t,
				    "counted"));
				int error = outcome != NULL && strcmp(outcome, "error") == 0;

				if (counted == NULL || strcmp(counted, "failed") != 0)
					continue;
				if (cap >= 0 && shown >= cap) {
					more++;
					continue;
				}
				cli_failure_line(f, error ? "ERROR" : "FAILED", pid,
				    json_string_value(json_object_get(t, "nodeid")),
				    json_string_value(json_object_get(t, "message")));
				shown++;
			}
		}
	}
	if (more > 0)
		fprintf(f, "... and %ld more failed or errored test%s (meshtest results %s"
			" lists them all)\n", more, more == 1 ? "" : "s", id);
	json_array_foreach(projects, i, p) {
		const char *pid = json_string_value(json_object_get(p, "project_id"));
		const char *error = json_string_value(json_object_get(p, "error"));

		if (error == NULL || (project != NULL && (pid == NULL ||
		    strcmp(pid, project) != 0)))
			continue;
		cli_failure_line(f, "PROJECT ERROR", pid, NULL, error);
		errors++;
	}
	return shown + more + errors;
}

int
cli_failures_parse(const char *value, long *out)
{
	char *end = NULL;
	long n;

	errno = 0;
	n = value != NULL ? strtol(value, &end, 10) : -1;
	if (value == NULL || end == value || *end != '\0' || errno != 0 || n < 0) {
		fprintf(stderr, "meshtest: --failures needs a number of tests to list"
			" (0 for none)\n");
		return -EINVAL;
	}
	*out = n;
	return 0;
}

/* GET /evaluation/<id>/results; prints the error and returns NULL. */
static json_t *
cli_results_get(const struct cli_conn *c, const char *id)
{
	char path[128], err[512];
	json_t *res = NULL;
	long code;

	snprintf(path, sizeof(path), "/evaluation/%s/results", id);
	if (cli_get_json(c, path, CLI_RESULTS_MAX, &res, &code, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		return NULL;
	}
	if (code == 404) {
		fprintf(stderr, "meshtest: evaluation %s not found\n", id);
	} else if (code < 200 || code >= 300) {
		fprintf(stderr, "meshtest: node answered %ld: %s\n", code,
			cli_answer_error(res));
	} else {
		return res;
	}
	json_decref(res);
	return NULL;
}

void
cli_report_failures(const struct cli_conn *c, const char *id, const json_t *st, long cap)
{
	const json_t *projects = json_object_get(st, "projects");
	int project_error = 0;
	const char *key;
	json_t *p, *res;

	json_object_foreach((json_t *)projects, key, p)
		project_error |= json_is_string(json_object_get(p, "error"));
	/* the table already said nothing failed: no need for the details */
	if (!project_error && (cap == 0 || cli_json_int(st, "failed") == 0))
		return;
	res = cli_results_get(c, id);
	if (res == NULL)
		return;
	cli_failures_print(stdout, res, NULL, cap, id);
	json_decref(res);
}

int
cli_results_main(int argc, char **argv)
{
	const char *node = NULL, *id = NULL, *project = NULL, *status;
	struct cli_conn c;
	long lines;
	json_t *res = NULL;
	char err[512];
	int rc = CLI_EXIT_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_results_usage(stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(a, "--project") == 0 && i + 1 < argc) {
			project = argv[++i];
		} else if (util_starts_with(a, "--project=")) {
			project = a + strlen("--project=");
		} else if (strcmp(a, "--node") == 0 && i + 1 < argc) {
			node = argv[++i];
		} else if (util_starts_with(a, "--node=")) {
			node = a + strlen("--node=");
		} else if (a[0] != '-' && id == NULL) {
			id = a;
		} else {
			fprintf(stderr, "meshtest: unexpected argument %s\n", a);
			cli_results_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (id == NULL) {
		fprintf(stderr, "meshtest: results needs an evaluation id\n");
		cli_results_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!util_is_uuid(id)) {
		fprintf(stderr, "meshtest: %s is not an evaluation id\n", id);
		return CLI_EXIT_USAGE;
	}
	if (cli_conn_init(&c, node, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	res = cli_results_get(&c, id);
	if (res == NULL)
		goto out;
	if (project != NULL && export_project(res, project) == NULL) {
		fprintf(stderr, "meshtest: no project %s in evaluation %s\n", project, id);
		goto out;
	}
	lines = cli_failures_print(stdout, res, project, -1, id);
	if (lines == 0)
		printf("no failed or errored tests, no project errors\n");
	fflush(stdout);
	status = json_string_value(json_object_get(res, "status"));
	/* the exit statuses of status ID, for what was printed */
	if (status != NULL && strcmp(status, "failed") == 0)
		rc = CLI_EXIT_EVAL_FAILED;
	else
		rc = lines > 0 ? CLI_EXIT_TESTS_FAILED : CLI_EXIT_OK;
out:
	json_decref(res);
	return rc;
}
