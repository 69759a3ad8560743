/*
 * cli_act.c - meshtest cancel and meshtest delete: act on one evaluation.
 *
 *   meshtest cancel ID [--node host:port] [--json]
 *   meshtest delete ID [--node host:port] [--json]
 *
 * cancel: POST /evaluation/<id>/cancel, then one line with what was kept
 * and what was cancelled (or the answer as JSON); delete: DELETE
 * /evaluation/<id>. Exit status 0 when the node did it, 2 otherwise (usage,
 * connection, or the node's refusal, whose message is printed). Runs on the
 * client's main thread and owns nothing beyond the call.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "http/http_client.h"

/* A cancel waits on the node for its modules to stop (up to 10 s there). */
#define CLI_ACT_TIMEOUT 60.0
#define CLI_ACT_MAX (64u << 20)

struct cli_act {
	const char *name;        /* "cancel", "delete" */
	const char *method;
	const char *suffix;      /* after /evaluation/<id> */
	const char *does;        /* for the usage */
};

static const struct cli_act cli_act_cancel = {
	"cancel", "POST", "/cancel",
	"stop the evaluation everywhere: running modules are killed, pending ones\n"
	"  never start, finished results are kept; its status becomes cancelled",
};
static const struct cli_act cli_act_delete = {
	"delete", "DELETE", "",
	"remove the evaluation and its files from every node (cancelling it first\n"
	"  when it runs); GET /stats keeps counting its tests",
};

static void
cli_act_usage(FILE *f, const struct cli_act *a)
{
	fprintf(f,
		"usage: meshtest %s ID [--node host:port] [--json]\n"
		"  %s\n"
		"  --node  node to talk to (env MESHTEST_NODE, default "
		CLI_DEFAULT_NODE ")\n"
		"  --json  print the node's answer as JSON\n", a->name, a->does);
}

/* What the node said, in one line. */
static void
cli_act_print(const struct cli_act *a, const char *id, long status, const json_t *ans)
{
	if (a == &cli_act_delete) {
		printf("deleted evaluation %s\n", id);
		return;
	}
	printf("%s evaluation %s: %lld modules executed, %lld cancelled%s\n",
	       status == 202 ? "cancelling" : "cancelled", id,
	       cli_json_int(ans, "executed"), cli_json_int(ans, "cancelled"),
	       status == 202 ? ", some still stopping" : "");
}

static int
cli_act_main(const struct cli_act *a, int argc, char **argv)
{
	const char *node = NULL, *id = NULL;
	struct cli_conn c;
	struct http_response resp;
	json_t *ans = NULL;
	char err[512], *url;
	int json = 0, r, rc = CLI_EXIT_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			cli_act_usage(stdout, a);
			return CLI_EXIT_OK;
		} else if (strcmp(s, "--json") == 0) {
			json = 1;
		} else if (strcmp(s, "--node") == 0 && i + 1 < argc) {
			node = argv[++i];
		} else if (util_starts_with(s, "--node=")) {
			node = s + strlen("--node=");
		} else if (s[0] != '-' && id == NULL) {
			id = s;
		} else {
			fprintf(stderr, "meshtest: unexpected argument %s\n", s);
			cli_act_usage(stderr, a);
			return CLI_EXIT_USAGE;
		}
	}
	if (id == NULL) {
		fprintf(stderr, "meshtest: %s needs an evaluation id\n", a->name);
		cli_act_usage(stderr, a);
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
	url = xasprintf("%s/evaluation/%s%s", c.base, id, a->suffix);
	r = http_client_request(a->method, url, c.headers, NULL, 0, CLI_ACT_TIMEOUT,
				CLI_ACT_MAX, &resp, err, sizeof(err));
	free(url);
	if (r < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	ans = json_loadb(resp.body, resp.len, 0, NULL);
	if (resp.status < 200 || resp.status >= 300) {
		fprintf(stderr, "meshtest: node answered %ld: %s\n", resp.status,
			cli_answer_error(ans));
	} else if (json && ans != NULL) {
		cli_print_json(ans);
		rc = CLI_EXIT_OK;
	} else {
		cli_act_print(a, id, resp.status, ans);
		rc = CLI_EXIT_OK;
	}
	json_decref(ans);
	http_response_free(&resp);
	return rc;
}

int
cli_cancel_main(int argc, char **argv)
{
	return cli_act_main(&cli_act_cancel, argc, argv);
}

int
cli_delete_main(int argc, char **argv)
{
	return cli_act_main(&cli_act_delete, argc, argv);
}
