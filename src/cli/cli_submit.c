/*
 * cli_submit.c - meshtest submit: hand a ZIP, a folder or git URLs to a node.
 *
 *   meshtest submit PROJECTS.zip|DIR|GIT_URL... [--node host:port] [--wait]
 *                   [--json] [--module-timeout S] [--deadline TIME] [--reuse]
 *                   [--failures N]
 *   meshtest submit --org ORG [--prefix P] [--include-archived]
 *                   [--include-templates] [--deadline TIME] [...]
 *
 * A .zip file is uploaded as is (multipart field "file"); a folder is first
 * zipped into a temporary folder that is removed afterwards; git URLs go as
 * JSON with the token from MESHTEST_GIT_TOKEN (never from the command line,
 * where every local user could read it). One ZIP or folder per submission,
 * or any number of git URLs, or a GitHub organization's repositories whose
 * names start with a prefix (a Classroom assignment, expanded by the node). Runs on the client's main thread; owns only the
 * temporary ZIP while it exists.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fetch/fetch_zip.h"
#include "http/http_client.h"

#define CLI_SUBMIT_TIMEOUT 600.0 /* uploading a large ZIP may take a while */
#define CLI_SUBMIT_ANSWER_MAX (1u << 20)
#define CLI_SUBMIT_MAX_SOURCES 4096

struct cli_submit_opts {
	const char *node;
	int wait;
	int json;
	double module_timeout; /* 0: not given */
	const char *deadline;  /* NULL: not given */
	int reuse;             /* take results of an identical earlier run */
	long failures;         /* failed tests listed after the table */
	const char *org, *prefix;
	int include_archived, include_templates;
	const char **sources;
	size_t nsources;
	enum cli_source kind;
};

static void
cli_submit_usage(FILE *f)
{
	fprintf(f,
		"usage: meshtest submit PROJECTS.zip|DIR|GIT_URL... "
		"[--node host:port] [--wait] [--json] [--module-timeout S]\n"
		"                       [--deadline TIME] [--reuse] [--failures N]\n"
		"       meshtest submit --org ORG [--prefix PREFIX] "
		"[--include-archived] [--include-templates] [...]\n"
		"  one ZIP or folder per submission, or any number of git URLs,\n"
		"  or the repositories of a GitHub organization named PREFIX*\n"
		"  --node            node to talk to (env MESHTEST_NODE, "
		"default " CLI_DEFAULT_NODE ")\n"
		"  --wait            wait for the results and print a table\n"
		"  --failures N      list at most N failed or errored tests after\n"
		"                    the table (default 20, 0 for none)\n"
		"  --json            print JSON (the /results answer with --wait)\n"
		"  --module-timeout  time limit per test module, in seconds\n"
		"  --deadline        grade each repository at its last commit at or\n"
		"                    before this ISO 8601 time (committer date)\n"
		"  --org, --prefix   a GitHub Classroom assignment: the organization's\n"
		"                    repositories whose names start with the prefix\n"
		"  --include-archived, --include-templates  count those too\n"
		"  --reuse           take the results of an identical earlier run\n"
		"                    (same content, tests, packages and settings)\n"
		"  env MESHTEST_GIT_TOKEN: access token for the git URLs\n"
		"  env MESHTEST_API_TOKEN: the node's API token\n");
}

enum cli_source
cli_source_kind(const char *arg)
{
	struct stat sb;

	if (arg == NULL || arg[0] == '\0')
		return CLI_SOURCE_BAD;
	if (strstr(arg, "://") != NULL ||
	    (util_starts_with(arg, "git@") && strchr(arg, ':') != NULL))
		return CLI_SOURCE_GIT;
	if (stat(arg, &sb) < 0)
		return CLI_SOURCE_BAD;
	if (S_ISDIR(sb.st_mode))
		return CLI_SOURCE_DIR;
	if (S_ISREG(sb.st_mode) && (util_ends_with(arg, ".zip") ||
				    util_ends_with(arg, ".ZIP")))
		return CLI_SOURCE_ZIP;
	return CLI_SOURCE_BAD;
}

/* "--name VALUE" or "--name=VALUE"; 1 if argv[*i] is that option. */
static int
cli_submit_opt_value(int argc, char **argv, int *i, const char *name,
		     const char **value)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*value = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	*value = *i + 1 < argc ? argv[++*i] : NULL;
	return 1;
}

/* 0, 1 for --help, or -EINVAL with a message on stderr. */
static int
cli_submit_parse(int argc, char **argv, struct cli_submit_opts *o)
{
	const char *v;
	int only_args = 0;

	memset(o, 0, sizeof(*o));
	o->failures = CLI_FAILURES_DEFAULT;
	o->sources = xcalloc((size_t)argc + 1, sizeof(*o->sources));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (o->nsources >= CLI_SUBMIT_MAX_SOURCES) {
				fprintf(stderr, "meshtest: too many projects "
					"(at most %d)\n", CLI_SUBMIT_MAX_SOURCES);
				return -EINVAL;
			}
			o->sources[o->nsources++] = a;
		} else if (strcmp(a, "--") == 0) {
			only_args = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			return 1;
		} else if (strcmp(a, "--wait") == 0) {
			o->wait = 1;
		} else if (strcmp(a, "--json") == 0) {
			o->json = 1;
		} else if (strcmp(a, "--reuse") == 0) {
			o->reuse = 1;
		} else if (strcmp(a, "--include-archived") == 0) {
			o->include_archived = 1;
		} else if (strcmp(a, "--include-templates") == 0) {
			o->include_templates = 1;
		} else if (cli_submit_opt_value(argc, argv, &i, "--org", &v)) {
			if (v == NULL || v[0] == '\0') {
				fprintf(stderr, "meshtest: --org needs an organization\n");
				return -EINVAL;
			}
			o->org = v;
		} else if (cli_submit_opt_value(argc, argv, &i, "--prefix", &v)) {
			if (v == NULL) {
				fprintf(stderr, "meshtest: --prefix needs a value\n");
				return -EINVAL;
			}
			o->prefix = v;
		} else if (cli_submit_opt_value(argc, argv, &i, "--deadline", &v)) {
			double t;
			if (v == NULL || util_parse_time(v, &t) < 0) {
				fprintf(stderr, "meshtest: --deadline needs an ISO 8601 time,"
					" e.g. 2026-03-01T23:59:59Z\n");
				return -EINVAL;
			}
			o->deadline = v;
		} else if (cli_submit_opt_value(argc, argv, &i, "--failures", &v)) {
			if (cli_failures_parse(v, &o->failures) < 0)
				return -EINVAL;
		} else if (cli_submit_opt_value(argc, argv, &i, "--node", &v)) {
			if (v == NULL || v[0] == '\0') {
				fprintf(stderr, "meshtest: --node needs "
					"host:port\n");
				return -EINVAL;
			}
			o->node = v;
		} else if (cli_submit_opt_value(argc, argv, &i,
						"--module-timeout", &v)) {
			char *end = NULL;

			o->module_timeout = v != NULL ? strtod(v, &end) : 0;
			if (v == NULL || end == v || *end != '\0' ||
			    !isfinite(o->module_timeout) ||
			    o->module_timeout <= 0 ||
			    o->module_timeout > 86400) {
				fprintf(stderr, "meshtest: --module-timeout "
					"needs seconds in (0, 86400]\n");
				return -EINVAL;
			}
		} else {
			fprintf(stderr, "meshtest: unknown option %s\n", a);
			return -EINVAL;
		}
	}
	if (o->org != NULL) {
		if (o->nsources > 0) {
			fprintf(stderr, "meshtest: --org submits the organization's "
				"repositories: give no projects with it\n");
			return -EINVAL;
		}
		o->kind = CLI_SOURCE_GIT;
		return 0;
	}
	if (o->prefix != NULL || o->include_archived || o->include_templates) {
		fprintf(stderr, "meshtest: --prefix, --include-archived and "
			"--include-templates go with --org\n");
		return -EINVAL;
	}
	if (o->nsources == 0) {
		fprintf(stderr, "meshtest: nothing to submit\n");
		return -EINVAL;
	}
	for (size_t i = 0; i < o->nsources; i++) {
		enum cli_source k = cli_source_kind(o->sources[i]);

		if (k == CLI_SOURCE_BAD) {
			fprintf(stderr, "meshtest: %s is not a .zip file, a "
				"folder or a git url\n", o->sources[i]);
			return -EINVAL;
		}
		if (i > 0 && (k != CLI_SOURCE_GIT || o->kind != CLI_SOURCE_GIT)) {
			fprintf(stderr, "meshtest: submit one zip or folder, "
				"or any number of git urls, not a mix\n");
			return -EINVAL;
		}
		o->kind = k;
	}
	if (o->deadline != NULL && o->kind != CLI_SOURCE_GIT) {
		fprintf(stderr, "meshtest: --deadline picks the commit of git "
			"repositories; it does not apply to a zip or folder\n");
		return -EINVAL;
	}
	return 0;
}

/* The JSON body for git URLs; caller frees. */
static char *
cli_submit_git_body(const struct cli_submit_opts *o)
{
	const char *token = getenv("MESHTEST_GIT_TOKEN");
	json_t *root = json_object(), *list = json_array();
	char *s;

	for (size_t i = 0; i < o->nsources; i++)
		json_array_append_new(list, json_string(o->sources[i]));
	if (o->org != NULL) {
		json_decref(list);
		json_object_set_new(root, "organization", json_string(o->org));
		json_object_set_new(root, "prefix", json_string(o->prefix ? o->prefix : ""));
		if (o->include_archived)
			json_object_set_new(root, "include_archived", json_true());
		if (o->include_templates)
			json_object_set_new(root, "include_templates", json_true());
	} else {
		json_object_set_new(root, "projects", list);
	}
	if (o->deadline != NULL)
		json_object_set_new(root, "deadline", json_string(o->deadline));
	if (o->reuse)
		json_object_set_new(root, "reuse", json_true());
	if (token != NULL && token[0] != '\0')
		json_object_set_new(root, "auth_token", json_string(token));
	if (o->module_timeout > 0) {
		double t = o->module_timeout;

		json_object_set_new(root, "module_timeout", t == (double)(long long)t ?
				    json_integer((json_int_t)t) : json_real(t));
	}
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* Upload one ZIP file; form fields module_timeout and reuse when given. */
static int
cli_submit_zip(const struct cli_conn *c, const struct cli_submit_opts *o,
	       const char *zip_path, struct http_response *resp, char *err,
	       size_t errlen)
{
	const char *fields[5] = { NULL, NULL, NULL, NULL, NULL };
	char tbuf[64];
	char *url = xasprintf("%s/evaluation", c->base);
	size_t nf = 0;
	int r;

	if (o->module_timeout > 0) {
		snprintf(tbuf, sizeof(tbuf), "%g", o->module_timeout);
		fields[nf++] = "module_timeout";
		fields[nf++] = tbuf;
	}
	if (o->reuse) {
		fields[nf++] = "reuse";
		fields[nf++] = "true";
	}
	r = http_client_post_file(url, c->headers, zip_path, fields,
				  CLI_SUBMIT_TIMEOUT, CLI_SUBMIT_ANSWER_MAX,
				  resp, err, errlen);
	free(url);
	return r;
}

/* Zip a folder into a temporary folder, upload it, remove it. */
static int
cli_submit_dir(const struct cli_conn *c, const struct cli_submit_opts *o,
	       const char *dir, struct http_response *resp, char *err,
	       size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	char *tmpl = NULL, *zip = NULL, *copy = NULL, *base;
	size_t n;
	int r;

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	tmpl = xasprintf("%s/meshtest-submit-XXXXXX", tmp);
	if (mkdtemp(tmpl) == NULL) {
		r = -errno;
		snprintf(err, errlen, "cannot create a temporary folder in %s: "
			 "%s", tmp, strerror(errno));
		free(tmpl);
		return r;
	}
	/* the ZIP carries the folder's name: a project at its root is named so */
	copy = xstrdup(dir);
	n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	base = strrchr(copy, '/');
	base = base != NULL ? base + 1 : copy;
	if (base[0] == '\0' || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0 || strcmp(base, "/") == 0) {
		char *real = realpath(dir, NULL);
		const char *b = NULL;

		if (real != NULL && strcmp(real, "/") != 0)
			b = strrchr(real, '/') + 1;
		zip = xasprintf("%s/%s.zip", tmpl, b != NULL ? b : "project");
		free(real);
	} else {
		zip = xasprintf("%s/%s.zip", tmpl, base);
	}
	r = fetch_zip_create_from_dir(dir, zip, err, errlen);
	if (r < 0)
		goto out;
	r = cli_submit_zip(c, o, zip, resp, err, errlen);
out:
	util_rm_rf(tmpl);
	free(copy);
	free(zip);
	free(tmpl);
	return r;
}

int
cli_submit_main(int argc, char **argv)
{
	struct http_response resp = { 0 };
	struct cli_submit_opts o;
	struct cli_conn c;
	json_t *answer = NULL;
	json_error_t jerr;
	const char *id;
	char err[512];
	char *body = NULL, *url = NULL;
	int r, rc = CLI_EXIT_USAGE;

	r = cli_submit_parse(argc, argv, &o);
	if (r == 1) {
		cli_submit_usage(stdout);
		rc = CLI_EXIT_OK;
		goto out;
	}
	if (r < 0) {
		cli_submit_usage(stderr);
		goto out;
	}
	if (cli_conn_init(&c, o.node, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		goto out;
	}

	if (o.kind == CLI_SOURCE_GIT) {
		body = cli_submit_git_body(&o);
		url = xasprintf("%s/evaluation", c.base);
		r = http_client_request("POST", url, c.json_headers, body,
					strlen(body), CLI_SUBMIT_TIMEOUT,
					CLI_SUBMIT_ANSWER_MAX, &resp, err,
					sizeof(err));
	} else if (o.kind == CLI_SOURCE_DIR) {
		r = cli_submit_dir(&c, &o, o.sources[0], &resp, err,
				   sizeof(err));
	} else {
		r = cli_submit_zip(&c, &o, o.sources[0], &resp, err,
				   sizeof(err));
	}
	if (r < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		goto out;
	}
	answer = json_loadb(resp.body, resp.len, 0, &jerr);
	if (resp.status < 200 || resp.status >= 300) {
		fprintf(stderr, "meshtest: node answered %ld: %s\n",
			resp.status, cli_answer_error(answer));
		goto out;
	}
	id = json_string_value(json_object_get(answer, "id"));
	if (id == NULL || !util_is_uuid(id)) {
		fprintf(stderr, "meshtest: node accepted the submission but "
			"sent no evaluation id\n");
		goto out;
	}
	if (!o.wait) {
		if (o.json)
			cli_print_json(answer);
		else
			printf("%s\n", id);
		fflush(stdout);
		rc = CLI_EXIT_OK;
		goto out;
	}
	rc = cli_report(&c, id, 1, o.json, o.failures);
out:
	json_decref(answer);
	http_response_free(&resp);
	free(o.sources);
	free(body);
	free(url);
	return rc;
}
