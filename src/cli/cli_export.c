/*
 * cli_export.c - meshtest export: an evaluation's results as a CSV
 * gradebook, JUnit XML or Gradescope results.json.
 *
 *   meshtest export ID --format csv|junit|gradescope [--project P]
 *                   [--output FILE] [--node host:port]
 *
 * Asks the node for GET /evaluation/<id>/export and writes its answer as it
 * came, byte for byte, to stdout or to FILE (through a temporary file in
 * the same folder, renamed into place, so FILE is never half written). Runs
 * on the client's main thread and owns nothing beyond the call.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "export/export.h"
#include "http/http_client.h"

#define CLI_EXPORT_TIMEOUT 120.0

static void
cli_export_usage(FILE *f)
{
	fprintf(f,
		"usage: meshtest export ID --format csv|junit|gradescope "
		"[--project P] [--output FILE]\n"
		"                       [--node host:port]\n"
		"  csv         gradebook: one row per project\n"
		"  junit       JUnit XML: one testsuite per module, for CI tools\n"
		"  gradescope  Gradescope results.json of every project, or of P\n"
		"  --project   only this project\n"
		"  --output    write to FILE instead of stdout\n"
		"  --node      node to talk to (env MESHTEST_NODE, default "
		CLI_DEFAULT_NODE ")\n");
}

/* Percent-encode s for a query string (RFC 3986 unreserved kept). */
static char *
cli_export_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(s) * 3 + 1), *w = out;

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
			*w++ = (char)*p;
		} else {
			*w++ = '%';
			*w++ = hex[*p >> 4];
			*w++ = hex[*p & 15];
		}
	}
	*w = '\0';
	return out;
}

/* data into path through a temporary file beside it; -errno with a message. */
static int
cli_export_write(const char *path, const char *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	FILE *f = NULL;
	int fd, r = 0;

	fd = mkstemp(tmp);
	if (fd >= 0) {
		/* mkstemp makes it 0600: give it the mode any new file gets */
		mode_t mask = umask(0);

		umask(mask);
		fchmod(fd, 0666 & ~mask);
	}
	if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "meshtest: cannot write %s: %s\n", path, strerror(-r));
		goto out;
	}
	if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) != 0)
		r = -errno;
	if (r < 0) {
		fprintf(stderr, "meshtest: cannot write %s: %s\n", path, strerror(-r));
		unlink(tmp);
	}
out:
	free(tmp);
	return r;
}

int
cli_export_main(int argc, char **argv)
{
	const char *node = NULL, *id = NULL, *format = NULL, *project = NULL;
	const char *output = NULL;
	struct http_response resp = { 0 };
	enum export_format f;
	struct cli_conn c;
	char err[512];
	char *url = NULL, *q = NULL;
	int rc = CLI_EXIT_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **opt = NULL;
		const char *name = NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_export_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (util_starts_with(a, "--format"))
			opt = &format, name = "--format";
		else if (util_starts_with(a, "--project"))
			opt = &project, name = "--project";
		else if (util_starts_with(a, "--output"))
			opt = &output, name = "--output";
		else if (util_starts_with(a, "--node"))
			opt = &node, name = "--node";
		if (opt != NULL && a[strlen(name)] == '=') {
			*opt = a + strlen(name) + 1;
		} else if (opt != NULL && a[strlen(name)] == '\0' && i + 1 < argc) {
			*opt = argv[++i];
		} else if (opt == NULL && a[0] != '-' && id == NULL) {
			id = a;
		} else {
			fprintf(stderr, "meshtest: unexpected argument %s\n", a);
			cli_export_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (id == NULL || format == NULL) {
		fprintf(stderr, "meshtest: export needs %s\n", id == NULL ?
			"an evaluation id" : "--format csv, junit or gradescope");
		cli_export_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!util_is_uuid(id)) {
		fprintf(stderr, "meshtest: %s is not an evaluation id\n", id);
		return CLI_EXIT_USAGE;
	}
	if (export_format_parse(format, &f) < 0) {
		fprintf(stderr, "meshtest: unknown format %s: use " EXPORT_FORMAT_NAMES "\n",
			format);
		return CLI_EXIT_USAGE;
	}
	if (output != NULL && output[0] == '\0') {
		fprintf(stderr, "meshtest: --output needs a file name\n");
		return CLI_EXIT_USAGE;
	}
	if (cli_conn_init(&c, node, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	if (project != NULL)
		q = cli_export_escape(project);
	url = xasprintf("%s/evaluation/%s/export?format=%s%s%s", c.base, id, format,
			q != NULL ? "&project=" : "", q != NULL ? q : "");
	if (http_client_request("GET", url, c.headers, NULL, 0, CLI_EXPORT_TIMEOUT,
				EXPORT_MAX, &resp, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		goto out;
	}
	if (resp.status < 200 || resp.status >= 300) {
		json_t *answer = json_loadb(resp.body, resp.len, 0, NULL);

		if (resp.status == 404 && strcmp(cli_answer_error(answer), "not found") == 0)
			fprintf(stderr, "meshtest: evaluation %s not found\n", id);
		else
			fprintf(stderr, "meshtest: node answered %ld: %s\n", resp.status,
				cli_answer_error(answer));
		json_decref(answer);
		goto out;
	}
	if (output != NULL) {
		if (cli_export_write(output, resp.body, resp.len) < 0)
			goto out;
	} else if (fwrite(resp.body, 1, resp.len, stdout) != resp.len || fflush(stdout) != 0) {
		fprintf(stderr, "meshtest: cannot write the export: %s\n", strerror(errno));
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	http_response_free(&resp);
	free(url);
	free(q);
	return rc;
}
