/*
 * cli_status.c - meshtest status: list evaluations, or show one.
 *
 *   meshtest status [ID] [--node host:port] [--json] [--wait] [--failures N]
 *
 * Without ID: GET /evaluation, then one line per evaluation with its
 * status, executed/total modules and nota_final (fetched per id when the
 * list holds bare ids, as the seed's API does). With ID: the same table as
 * submit --wait (waiting only with --wait) and the same exit status. Runs on
 * the client's main thread and owns nothing beyond the call.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define CLI_STATUS_LIST_MAX (16u << 20)

static void
cli_status_usage(FILE *f)
{
	fprintf(f,
		"usage: meshtest status [ID] [--node host:port] [--json] "
		"[--wait] [--failures N]\n"
		"  without ID: list the evaluations the node knows\n"
		"  --node  node to talk to (env MESHTEST_NODE, default "
		CLI_DEFAULT_NODE ")\n"
		"  --wait  wait until the evaluation is no longer running\n"
		"  --json  print JSON (the /results answer for one evaluation)\n"
		"  --failures N  list at most N failed or errored tests after the\n"
		"          table (default 20, 0 for none; meshtest results lists all)\n");
}

/* One list line: "<id>  <status>  <executed>/<total> modules  nota_final x". */
static void
cli_status_line(FILE *f, const char *id, const json_t *st)
{
	const char *status = json_string_value(json_object_get(st, "status"));
	long long done = cli_json_int(st, "executed");
	long long total = done + cli_json_int(st, "in_progress") +
			  cli_json_int(st, "pending") + cli_json_int(st, "cancelled");

	fprintf(f, "%s  %-7s  %lld/%lld modules  nota_final %.1f\n", id,
		status != NULL ? status : "unknown", done, total,
		cli_json_num(st, "nota_final"));
}

static int
cli_status_list(const struct cli_conn *c, int json)
{
	json_t *list = NULL, *evals, *item, *st = NULL, *out = NULL;
	char err[512], path[128];
	size_t i;
	long code;
	int rc = CLI_EXIT_USAGE;

	if (cli_get_json(c, "/evaluation", CLI_STATUS_LIST_MAX, &list, &code,
			 err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		goto out;
	}
	if (code < 200 || code >= 300) {
		fprintf(stderr, "meshtest: node answered %ld: %s\n", code,
			cli_answer_error(list));
		goto out;
	}
	evals = json_object_get(list, "evaluations");
	if (!json_is_array(evals)) {
		fprintf(stderr, "meshtest: node sent no evaluation list\n");
		goto out;
	}
	out = json_array();
	json_array_foreach(evals, i, item) {
		const char *id = json_string_value(item);

		if (id == NULL) /* a list of objects: use what they carry */
			id = json_string_value(json_object_get(item, "id"));
		if (id == NULL || !util_is_uuid(id))
			continue;
		if (json_is_object(item) && json_object_get(item, "status")) {
			st = json_incref(item);
		} else {
			snprintf(path, sizeof(path), "/evaluation/%s", id);
			if (cli_get_json(c, path, CLI_STATUS_MAX, &st, &code,
					 err, sizeof(err)) < 0) {
				fprintf(stderr, "meshtest: %s\n", err);
				goto out;
			}
			if (code < 200 || code >= 300) {
				json_decref(st);
				st = json_pack("{s:s,s:s}", "id", id, "status",
					       "unknown");
			}
		}
		if (json)
			json_array_append(out, st);
		else
			cli_status_line(stdout, id, st);
		json_decref(st);
		st = NULL;
	}
	if (json) {
		json_t *root = json_pack("{s:O}", "evaluations", out);

		cli_print_json(root);
		json_decref(root);
	}
	fflush(stdout);
	rc = CLI_EXIT_OK;
out:
	json_decref(st);
	json_decref(out);
	json_decref(list);
	return rc;
}

int
cli_status_main(int argc, char **argv)
{
	const char *node = NULL, *id = NULL;
	struct cli_conn c;
	int wait = 0, json = 0;
	long failures = CLI_FAILURES_DEFAULT;
	char err[512];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_status_usage(stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(a, "--wait") == 0) {
			wait = 1;
		} else if (strcmp(a, "--json") == 0) {
			json = 1;
		} else if (strcmp(a, "--failures") == 0 || util_starts_with(a, "--failures=")) {
			const char *v = a[strlen("--failures")] == '=' ?
			    a + strlen("--failures=") : i + 1 < argc ? argv[++i] : NULL;

			if (cli_failures_parse(v, &failures) < 0)
				return CLI_EXIT_USAGE;
		} else if (strcmp(a, "--node") == 0 && i + 1 < argc) {
			node = argv[++i];
		} else if (util_starts_with(a, "--node=")) {
			node = a + strlen("--node=");
		} else if (a[0] != '-' && id == NULL) {
			id = a;
		} else {
			fprintf(stderr, "meshtest: unexpected argument %s\n", a);
			cli_status_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (id != NULL && !util_is_uuid(id)) {
		fprintf(stderr, "meshtest: %s is not an evaluation id\n", id);
		return CLI_EXIT_USAGE;
	}
	if (id == NULL && wait) {
		fprintf(stderr, "meshtest: --wait needs an evaluation id\n");
		cli_status_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_conn_init(&c, node, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	if (id == NULL)
		return cli_status_list(&c, json);
	return cli_report(&c, id, wait, json, failures);
}
