/*
 * cli_common.c - what meshtest submit and status share: the connection to a
 * node (base URL, bearer token), JSON GETs, waiting for an evaluation with a
 * live progress line, the results table and the exit-status rule.
 *
 * Owns no state beyond the call; runs on the client's main thread. Output
 * formatting lives in small pure functions (cli_progress_format,
 * cli_table_print, cli_exit_code) so it can be unit-tested.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "http/http_client.h"

#define CLI_GET_TIMEOUT 30.0
#define CLI_NAME_MAX 32   /* project column width cap */
#define CLI_ERROR_MAX 60  /* error column width cap */

/* ---- connection ------------------------------------------------------ */

int
cli_conn_init(struct cli_conn *c, const char *node, char *err, size_t errlen)
{
	const char *token = getenv("MESHTEST_API_TOKEN");
	const char *ca = getenv("MESHTEST_CA");
	size_t n;
	int w;

	memset(c, 0, sizeof(*c));
	if (node == NULL || node[0] == '\0')
		node = getenv("MESHTEST_NODE");
	if (node == NULL || node[0] == '\0')
		node = CLI_DEFAULT_NODE;
	if (strpbrk(node, " \t\r\n") != NULL) {
		snprintf(err, errlen, "bad node address %s", node);
		return -EINVAL;
	}
	if (util_starts_with(node, "http://") ||
	    util_starts_with(node, "https://")) {
		w = snprintf(c->base, sizeof(c->base), "%s", node);
	} else if (strchr(node, '/') == NULL && strchr(node, ':') != NULL) {
		w = snprintf(c->base, sizeof(c->base), "http://%s", node);
	} else {
		snprintf(err, errlen, "bad node address %s (want host:port)",
			 node);
		return -EINVAL;
	}
	if (w < 0 || (size_t)w >= sizeof(c->base)) {
		snprintf(err, errlen, "node address too long");
		return -EINVAL;
	}
	n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	/* https://: a node's certificate is checked against MESHTEST_CA, else the system's CAs */
	if (ca != NULL && ca[0] != '\0') {
		if (access(ca, R_OK) < 0) {
			snprintf(err, errlen, "cannot read MESHTEST_CA %s: %s", ca, strerror(errno));
			return -EINVAL;
		}
		http_client_set_default_ca(ca);
	}

	if (token != NULL && token[0] != '\0') {
		if (strpbrk(token, "\r\n") != NULL) {
			snprintf(err, errlen, "MESHTEST_API_TOKEN holds a newline");
			return -EINVAL;
		}
		w = snprintf(c->auth, sizeof(c->auth),
			     "Authorization: Bearer %s", token);
		if (w < 0 || (size_t)w >= sizeof(c->auth)) {
			snprintf(err, errlen, "MESHTEST_API_TOKEN is too long");
			return -EINVAL;
		}
	}
	n = 0;
	if (c->auth[0] != '\0') {
		c->headers[0] = c->auth;
		c->json_headers[n++] = c->auth;
	}
	c->json_headers[n] = "Content-Type: application/json";
	return 0;
}

int
cli_get_json(const struct cli_conn *c, const char *path, size_t max,
	     json_t **out, long *status, char *err, size_t errlen)
{
	struct http_response resp;
	json_error_t jerr;
	char *url = NULL;
	int r;

	*out = NULL;
	*status = 0;
	url = xasprintf("%s%s", c->base, path);
	r = http_client_request("GET", url, c->headers, NULL, 0,
				CLI_GET_TIMEOUT, max, &resp, err, errlen);
	if (r < 0)
		goto out;
	*status = resp.status;
	*out = json_loadb(resp.body, resp.len, 0, &jerr);
	if (*out == NULL && resp.status >= 200 && resp.status < 300) {
		snprintf(err, errlen, "bad json from %s: %s", url, jerr.text);
		r = -EPROTO;
	}
	http_response_free(&resp);
out:
	free(url);
	return r;
}

const char *
cli_answer_error(const json_t *answer)
{
	const char *s = json_string_value(json_object_get(answer, "error"));

	return s != NULL ? s : "no error message";
}

long long
cli_json_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	return (long long)json_number_value(v);
}

double
cli_json_num(const json_t *obj, const char *key)
{
	return json_number_value(json_object_get(obj, key));
}

void
cli_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	fflush(stdout);
}

/* ---- formatting ------------------------------------------------------ */

void
cli_format_duration(double seconds, char *out, size_t outlen)
{
	long long s = seconds > 0 ? (long long)seconds : 0;

	if (s >= 3600)
		snprintf(out, outlen, "%lld:%02lld:%02lld", s / 3600,
			 s / 60 % 60, s % 60);
	else
		snprintf(out, outlen, "%02lld:%02lld", s / 60, s % 60);
}

void
cli_progress_format(const json_t *st, double elapsed, char *out,
		    size_t outlen)
{
	long long done = cli_json_int(st, "executed");
	long long running = cli_json_int(st, "in_progress");
	long long pending = cli_json_int(st, "pending");
	long long total = done + running + pending;
	char bar[CLI_BAR_WIDTH + 1];
	char when[32];
	long long fill = 0;

	if (total > 0)
		fill = done * CLI_BAR_WIDTH / total;
	for (int i = 0; i < CLI_BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[CLI_BAR_WIDTH] = '\0';
	if (json_is_number(json_object_get(st, "elapsed_seconds")))
		elapsed = cli_json_num(st, "elapsed_seconds");
	cli_format_duration(elapsed, when, sizeof(when));
	snprintf(out, outlen,
		 "[%s] %lld/%lld modules, %lld running, %lld pending, "
		 "%.1f%% passed, %s",
		 bar, done, total, running, pending,
		 cli_json_num(st, "percent_passed"), when);
}

/* One line of at most max characters: control characters become spaces. */
static void
cli_clip(const char *s, size_t max, char *out, size_t outlen)
{
	size_t n = 0, len = strlen(s);

	if (max >= outlen)
		max = outlen - 1;
	for (; n < len && n < max; n++)
		out[n] = (unsigned char)s[n] < 0x20 ? ' ' : s[n];
	if (len > max && max >= 3)
		memcpy(out + max - 3, "...", 3);
	out[n] = '\0';
}

static int
cli_key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
cli_table_print(FILE *f, const char *id, const json_t *st)
{
	const json_t *projects = json_object_get(st, "projects");
	const char *status = json_string_value(json_object_get(st, "status"));
	size_t count = json_object_size(projects), i = 0, width = 7;
	int has_commit = 0;
	const char **keys;
	const char *key;
	json_t *val;
	char when[32];

	cli_format_duration(cli_json_num(st, "elapsed_seconds"), when,
			    sizeof(when));
	fprintf(f, "evaluation %s: %s, %lld modules, %s\n", id,
		status != NULL ? status : "unknown",
		cli_json_int(st, "executed") + cli_json_int(st, "in_progress") +
		cli_json_int(st, "pending"), when);

	keys = xcalloc(count + 1, sizeof(*keys));
	json_object_foreach((json_t *)projects, key, val) {
		keys[i++] = key;
		if (strlen(key) > width)
			width = strlen(key);
	}
	if (width > CLI_NAME_MAX)
		width = CLI_NAME_MAX;
	if (count > 0)
		qsort(keys, count, sizeof(*keys), cli_key_cmp);

	/* git projects: the commit graded, abbreviated as git does */
	for (i = 0; i < count; i++)
		has_commit |= json_is_string(json_object_get(json_object_get(projects, keys[i]),
							     "commit"));
	fprintf(f, "%-*s %7s %7s %7s %6s  %s%s\n", (int)width, "project",
		"passed", "failed", "skipped", "grade", has_commit ? "commit        " : "",
		"error");
	for (i = 0; i < count; i++) {
		const json_t *p = json_object_get(projects, keys[i]);
		const char *e = json_string_value(json_object_get(p, "error"));
		const char *sha = json_string_value(json_object_get(p, "commit"));
		char name[CLI_NAME_MAX + 1], msg[CLI_ERROR_MAX + 1], col[16] = "";

		cli_clip(keys[i], width, name, sizeof(name));
		cli_clip(e != NULL ? e : "", CLI_ERROR_MAX, msg, sizeof(msg));
		if (has_commit)
			snprintf(col, sizeof(col), "%-12.12s  ", sha != NULL ? sha : "-");
		fprintf(f, "%-*s %7lld %7lld %7lld %6.1f  %s%s\n", (int)width,
			name, cli_json_int(p, "passed"),
			cli_json_int(p, "failed"), cli_json_int(p, "skipped"),
			cli_json_num(p, "grade"), col, msg);
	}
	fprintf(f, "overall: %lld passed, %lld failed, %lld skipped, "
		"%.1f%% passed, nota_final %.1f\n",
		cli_json_int(st, "passed"), cli_json_int(st, "failed"),
		cli_json_int(st, "skipped"), cli_json_num(st, "percent_passed"),
		cli_json_num(st, "nota_final"));
	/* every warning in full: each says what was dropped and why */
	for (i = 0; i < count; i++) {
		const json_t *w = json_object_get(json_object_get(projects, keys[i]),
						  "warnings");
		size_t k;
		json_t *v;

		json_array_foreach((json_t *)w, k, v) {
			if (json_is_string(v))
				fprintf(f, "warning: %s: %s\n", keys[i], json_string_value(v));
		}
	}
	free(keys);
}

int
cli_exit_code(const json_t *st)
{
	const char *status = json_string_value(json_object_get(st, "status"));
	const json_t *projects = json_object_get(st, "projects");
	long long failed = cli_json_int(st, "failed");
	const char *key;
	json_t *p;

	/* a cancelled evaluation did not grade everything: not a success */
	if (status != NULL && (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0))
		return CLI_EXIT_EVAL_FAILED;
	json_object_foreach((json_t *)projects, key, p) {
		if (json_is_string(json_object_get(p, "error")))
			return CLI_EXIT_TESTS_FAILED;
		if (cli_json_int(p, "failed") > 0)
			return CLI_EXIT_TESTS_FAILED;
	}
	if (failed > 0)
		return CLI_EXIT_TESTS_FAILED;
	return CLI_EXIT_OK;
}

/* ---- waiting --------------------------------------------------------- */

static void
cli_wait_quiet(void *arg, const char *kind)
{
	(void)arg;
	(void)kind;
}

/* What an event of the stream does while waiting: redraw the progress line. */
struct cli_waiting {
	const struct cli_conn *c;
	const char *id;
	double start, drawn;
};

static void
cli_wait_event(void *arg, const char *kind)
{
	struct cli_waiting *w = arg;
	char path[128], line[256], err[256];
	json_t *st = NULL;
	long code;

	(void)kind;
	if (util_mono() - w->drawn < CLI_POLL_INTERVAL / 2)
		return;
	w->drawn = util_mono();
	snprintf(path, sizeof(path), "/evaluation/%s", w->id);
	if (cli_get_json(w->c, path, CLI_STATUS_MAX, &st, &code, err, sizeof(err)) == 0 &&
	    code == 200) {
		cli_progress_format(st, util_mono() - w->start, line, sizeof(line));
		fprintf(stderr, "\r%s\033[K", line);
		fflush(stderr);
	}
	json_decref(st);
}

int
cli_wait(const struct cli_conn *c, const char *id, int progress,
	 json_t **final, char *err, size_t errlen)
{
	double start = util_mono(), last_ok = start;
	struct cli_waiting w = { c, id, start, 0 };
	char path[128], line[256];
	const char *status;
	json_t *st = NULL;
	long code;
	int r;

	*final = NULL;
	snprintf(path, sizeof(path), "/evaluation/%s", id);
	/* the event stream, when the node has one; else, or if it fails, polls */
	r = cli_events_follow(c, id, progress ? cli_wait_event : cli_wait_quiet, &w, err, errlen);
	if (r < 0 && r != -ENOTSUP && r != -EIO)
		goto out;
	for (;;) {
		r = cli_get_json(c, path, CLI_STATUS_MAX, &st, &code, err,
				 errlen);
		if (r == 0 && code == 404) {
			snprintf(err, errlen, "evaluation %s not found", id);
			r = -ENOENT;
			goto out;
		}
		if (r == 0 && code >= 400 && code < 500) {
			snprintf(err, errlen, "node answered %ld: %s", code,
				 cli_answer_error(st));
			r = -EPROTO;
			goto out;
		}
		status = json_string_value(json_object_get(st, "status"));
		if (r == 0 && code >= 200 && code < 300 && status == NULL) {
			snprintf(err, errlen, "answer from %s has no status",
				 c->base);
			r = -EPROTO;
		} else if (r == 0 && code >= 200 && code < 300) {
			last_ok = util_mono();
			if (progress) {
				cli_progress_format(st, util_mono() - start,
						    line, sizeof(line));
				fprintf(stderr, "\r%s\033[K", line);
				fflush(stderr);
			}
			if (strcmp(status, "running") != 0)
				break;
		} else if (r == 0) {
			snprintf(err, errlen, "node answered %ld: %s", code,
				 cli_answer_error(st));
			r = -EPROTO;
		}
		/* a restarting node or a 5xx: retry for a while, then give up */
		if (r < 0 && util_mono() - last_ok > CLI_RETRY_WINDOW)
			goto out;
		json_decref(st);
		st = NULL;
		util_sleep(CLI_POLL_INTERVAL);
	}
	r = 0;
	*final = st;
	st = NULL;
out:
	if (progress)
		fputc('\n', stderr);
	json_decref(st);
	return r;
}

int
cli_report(const struct cli_conn *c, const char *id, int wait, int json,
	   long failures)
{
	char err[512], path[128];
	json_t *st = NULL, *res = NULL;
	long code;
	int r, rc = CLI_EXIT_USAGE;

	if (wait) {
		r = cli_wait(c, id, isatty(STDERR_FILENO), &st, err,
			     sizeof(err));
		if (r < 0) {
			fprintf(stderr, "meshtest: %s\n", err);
			goto out;
		}
	} else {
		snprintf(path, sizeof(path), "/evaluation/%s", id);
		r = cli_get_json(c, path, CLI_STATUS_MAX, &st, &code, err,
				 sizeof(err));
		if (r < 0) {
			fprintf(stderr, "meshtest: %s\n", err);
			goto out;
		}
		if (code == 404) {
			fprintf(stderr, "meshtest: evaluation %s not found\n",
				id);
			goto out;
		}
		if (code < 200 || code >= 300) {
			fprintf(stderr, "meshtest: node answered %ld: %s\n",
				code, cli_answer_error(st));
			goto out;
		}
	}
	if (json) {
		snprintf(path, sizeof(path), "/evaluation/%s/results", id);
		r = cli_get_json(c, path, CLI_RESULTS_MAX, &res, &code, err,
				 sizeof(err));
		if (r < 0) {
			fprintf(stderr, "meshtest: %s\n", err);
			goto out;
		}
		if (code < 200 || code >= 300) {
			fprintf(stderr, "meshtest: node answered %ld: %s\n",
				code, cli_answer_error(res));
			goto out;
		}
		cli_print_json(res);
	} else {
		cli_table_print(stdout, id, st);
		cli_report_failures(c, id, st, failures);
		fflush(stdout);
	}
	rc = cli_exit_code(st);
out:
	json_decref(st);
	json_decref(res);
	return rc;
}
