/*
 * cli.h - the command-line client: meshtest submit, status, results,
 * export and keygen.
 *
 * The *_main functions are called by src/main.c with argv[0] set to the
 * subcommand name ("submit", "status", "keygen") and return the process exit
 * status. Everything else here is shared by the commands (cli_common.c):
 * talking to a node, waiting for an evaluation, formatting the progress line
 * and the results table, and the exit-status rule. All of it runs on the
 * main thread of the client process.
 */
#ifndef MESHTEST_CLI_H
#define MESHTEST_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Exit statuses of submit and status (SPEC section 5). */
enum cli_exit {
	CLI_EXIT_OK = 0,          /* every test passed, no project error */
	CLI_EXIT_TESTS_FAILED = 1,/* a test failed or a project has an error */
	CLI_EXIT_USAGE = 2,       /* usage, connection or request error */
	CLI_EXIT_EVAL_FAILED = 3, /* the evaluation has status "failed" or "cancelled" */
};

#define CLI_DEFAULT_NODE "127.0.0.1:7000"
#define CLI_POLL_INTERVAL 0.5      /* seconds between status polls */
#define CLI_RETRY_WINDOW 30.0      /* seconds of failed polls before giving up */
#define CLI_STATUS_MAX (64u << 20) /* cap on a GET /evaluation/<id> answer */
#define CLI_RESULTS_MAX (512u << 20) /* cap on a /results answer */
#define CLI_BAR_WIDTH 10
#define CLI_FAILURES_DEFAULT 20   /* failed tests listed after the table */

int cli_submit_main(int argc, char **argv);
int cli_status_main(int argc, char **argv);
int cli_keygen_main(int argc, char **argv);
/* cli_certs.c: meshtest certs --out DIR --node ADDR ... */
int cli_certs_main(int argc, char **argv);
/*
 * The host of a node address "host:port", "host", "[v6]:port" or "[v6]"
 * into host (brackets removed), *is_ip when it is an IP address. A name
 * must be a DNS name (letters, digits, '-', '.'), and not "ca" (the CA's
 * file name). 0 or -EINVAL.
 */
int cli_certs_host(const char *addr, char *host, size_t hostlen, int *is_ip);
int cli_export_main(int argc, char **argv);
int cli_results_main(int argc, char **argv);
/* cli_act.c: meshtest cancel ID, meshtest delete ID */
int cli_cancel_main(int argc, char **argv);
int cli_delete_main(int argc, char **argv);

/* Where the client talks to: base URL and request headers. */
struct cli_conn {
	char base[512];             /* "http(s)://host:port", no trailing slash */
	char auth[1024];            /* "Authorization: Bearer ..." or "" */
	const char *headers[3];     /* NULL-terminated, points into auth */
	const char *json_headers[3];/* the same plus a JSON Content-Type */
};

/*
 * Fill c for node ("host:port" or an http(s):// URL); NULL means env
 * MESHTEST_NODE, else CLI_DEFAULT_NODE. The API token comes from env
 * MESHTEST_API_TOKEN; an https:// node's certificate is checked against the
 * CA file of env MESHTEST_CA (else the system's CAs). -EINVAL with err
 * filled on a bad node, token or CA file.
 */
int cli_conn_init(struct cli_conn *c, const char *node, char *err,
		  size_t errlen);

/*
 * GET base+path and parse the JSON answer. Returns 0 with *out set (caller
 * json_decref's) and *status the HTTP status (a non-2xx answer is returned
 * too, parsed when it is JSON, else *out is NULL). Negative errno with err
 * filled on a connection failure or an unparsable 2xx answer.
 */
int cli_get_json(const struct cli_conn *c, const char *path, size_t max,
		 json_t **out, long *status, char *err, size_t errlen);

/* "error" field of an error answer, or a placeholder; never NULL. */
const char *cli_answer_error(const json_t *answer);

/* Integer/number fields that tolerate being absent or of either type. */
long long cli_json_int(const json_t *obj, const char *key);
double cli_json_num(const json_t *obj, const char *key);

/*
 * One progress line from a GET /evaluation/<id> answer:
 * "[###.......] 12/40 modules, 3 running, 25 pending, 78.5% passed, 00:12".
 * elapsed is used when the answer has no elapsed_seconds.
 */
void cli_progress_format(const json_t *st, double elapsed, char *out,
			 size_t outlen);
/* "mm:ss", or "h:mm:ss" from one hour on. */
void cli_format_duration(double seconds, char *out, size_t outlen);

/*
 * The results table from a GET /evaluation/<id> answer: a header line, one
 * row per project (sorted by id: project, passed, failed, skipped, grade
 * with one decimal, error truncated to one line) and an overall line with
 * nota_final.
 */
void cli_table_print(FILE *f, const char *id, const json_t *st);

/* Exit status for a GET /evaluation/<id> answer (enum cli_exit). */
int cli_exit_code(const json_t *st);

/*
 * Wait for the evaluation's end: follow its event stream (redrawing the
 * progress line on stderr at an event when progress is set), or, from a
 * node without one, poll GET /evaluation/<id> every CLI_POLL_INTERVAL until
 * status is not "running"; then read the final status.
 * Failed polls are retried for CLI_RETRY_WINDOW seconds. 0 with *final set,
 * or negative errno with err filled (-ENOENT: no such evaluation).
 */
int cli_wait(const struct cli_conn *c, const char *id, int progress,
	     json_t **final, char *err, size_t errlen);

/*
 * Follow GET /evaluation/<id>/events until evaluation_done (cli_events.c),
 * calling on_event for each event; a cut stream is resumed for
 * CLI_RETRY_WINDOW seconds. 0 at the end, -ENOTSUP when the node has no
 * stream (404: an older node, or no such evaluation), -EPROTO on another
 * 4xx, -EIO when it stays unreachable.
 */
int cli_events_follow(const struct cli_conn *c, const char *id,
    void (*on_event)(void *arg, const char *kind), void *arg, char *err, size_t errlen);

/*
 * The shared tail of submit --wait and status ID: optionally wait, then
 * print the table and what failed (cli_report_failures, at most failures
 * tests), or the /results JSON when json is set, on stdout.
 * Returns the exit status; errors are printed on stderr.
 */
int cli_report(const struct cli_conn *c, const char *id, int wait, int json,
	       long failures);

/*
 * The short summary of what failed in a /results document, in its order:
 * "FAILED <project>/<node id> - <line>" for a failed test, "ERROR ..." for
 * an errored one (the line is export_message_line's), at most cap of them
 * (cap < 0: all), then "... and N more failed or errored tests (meshtest
 * results <id> lists them all)" when some were left out; then "PROJECT
 * ERROR <project> - <line>" for each project error. project: only that
 * project (NULL: all). Returns how many tests and project errors there
 * are, shown or not.
 */
long cli_failures_print(FILE *f, const json_t *results, const char *project, long cap,
			const char *id);

/*
 * After the table of a GET /evaluation/<id> answer st: when a test failed
 * (and cap is not 0) or a project has an error, fetch /results and print
 * cli_failures_print's lines on stdout. A failed fetch is reported on
 * stderr and changes nothing else.
 */
void cli_report_failures(const struct cli_conn *c, const char *id, const json_t *st,
			 long cap);

/*
 * --failures N of submit and status: 0 with *out set, or -EINVAL with a
 * message on stderr.
 */
int cli_failures_parse(const char *value, long *out);

/* Print a JSON value on stdout, indented by 2, with a newline. */
void cli_print_json(const json_t *j);

/* Kinds of submit arguments. */
enum cli_source {
	CLI_SOURCE_BAD = -1, /* neither: no such file, or not a .zip file */
	CLI_SOURCE_ZIP = 0,
	CLI_SOURCE_DIR = 1,
	CLI_SOURCE_GIT = 2,
};

/* What a submit argument is: a git URL, a folder or a .zip file. */
enum cli_source cli_source_kind(const char *arg);

#endif
