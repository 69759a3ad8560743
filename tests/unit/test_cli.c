/*
 * test_cli.c - the command-line client: pure formatting and decision
 * functions, then meshtest submit/status/keygen end to end against a fake
 * node (libmicrohttpd on a free loopback port) with stdout/stderr captured.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/util.h"

#define ID_OK "11111111-2222-4333-8444-555555555555"
#define ID_FAILED "99999999-2222-4333-8444-555555555555"
#define ID_MISSING "00000000-2222-4333-8444-555555555555"

static const char status_done[] =
	"{\"id\": \"" ID_OK "\", \"status\": \"done\", \"percent_passed\": 92.86,"
	" \"executed\": 5, \"in_progress\": 0, \"pending\": 0,"
	" \"nota_final\": 11.6667, \"elapsed_seconds\": 75.2,"
	" \"passed\": 13, \"failed\": 1, \"skipped\": 1,"
	" \"projects\": {"
	"  \"bob\": {\"error\": null, \"passed\": 3, \"failed\": 1,"
	"           \"skipped\": 1, \"grade\": 15.0, \"warnings\": [\"requirements:"
	" 'mockselector' was not installed: No matching distribution found for"
	" mockselector\", \"requirements.txt:2: dropped '--no-index'\"]},"
	"  \"alice\": {\"error\": null, \"passed\": 10, \"failed\": 0,"
	"             \"skipped\": 0, \"grade\": 20,"
	"             \"commit\": \"9fceb02d0ae598e95dc970b74767f19372d61af8\"},"
	"  \"carol\": {\"error\": \"cannot clone https://example.org/carol.git:\\n"
	"authentication failed for this repository, check the token\","
	"             \"passed\": 0, \"failed\": 0, \"skipped\": 0, \"grade\": 0}"
	" }}";

static const char table_done[] =
	"evaluation " ID_OK ": done, 5 modules, 01:15\n"
	"project  passed  failed skipped  grade  commit        error\n"
	"alice        10       0       0   20.0  9fceb02d0ae5  \n"
	"bob           3       1       1   15.0  -             \n"
	"carol         0       0       0    0.0  -             cannot clone https://example.org/carol.git: authenticatio...\n"
	"overall: 13 passed, 1 failed, 1 skipped, 92.9% passed, nota_final 11.7\n"
	"warning: bob: requirements: 'mockselector' was not installed: No matching"
	" distribution found for mockselector\n"
	"warning: bob: requirements.txt:2: dropped '--no-index'\n";

/* ---- the fake node --------------------------------------------------- */

static struct MHD_Daemon *daemon_;
static unsigned port_;
static pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
static char last_body_[4096];   /* JSON body of the last POST */
static char last_upload_[512];  /* "name:len|field=value;..." */
static char last_auth_[256];
static int polls_;              /* GET /evaluation/ID_OK so far */
static int running_polls_ = 2;  /* answers "running" this many times */
static int reject_;             /* POST answers 400 */

struct req {
	struct buf body;
	struct MHD_PostProcessor *pp;
	char file_name[128];
	size_t file_len;
	char fields[256];
};

static enum MHD_Result
post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
	  const char *filename, const char *content_type,
	  const char *transfer_encoding, const char *data, uint64_t off,
	  size_t size)
{
	struct req *r = cls;
	size_t n;

	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	(void)off;
	if (strcmp(key, "file") == 0) {
		snprintf(r->file_name, sizeof(r->file_name), "%s",
			 filename ? filename : "");
		r->file_len += size;
		return MHD_YES;
	}
	n = strlen(r->fields);
	snprintf(r->fields + n, sizeof(r->fields) - n, "%s%s=%.*s",
		 n ? ";" : "", key, (int)size, data);
	return MHD_YES;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data,
	size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	const char *auth, *ct;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		buf_init(&r->body, 1 << 20);
		ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 "Content-Type");
		if (ct != NULL && util_starts_with(ct, "multipart/form-data"))
			r->pp = MHD_create_post_processor(conn, 4096, post_iter,
							  r);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->pp != NULL)
			MHD_post_process(r->pp, upload_data, *upload_size);
		else
			buf_append(&r->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   "Authorization");
	pthread_mutex_lock(&lock_);
	snprintf(last_auth_, sizeof(last_auth_), "%s", auth ? auth : "");
	if (strcmp(method, "POST") == 0 && strcmp(url, "/evaluation") == 0) {
		if (r->pp != NULL)
			snprintf(last_upload_, sizeof(last_upload_),
				 "%s:%zu|%s", r->file_name, r->file_len,
				 r->fields);
		else
			snprintf(last_body_, sizeof(last_body_), "%s",
				 r->body.data ? r->body.data : "");
		ret = reject_ ? reply(conn, 400, "{\"error\": \"bad zip\"}") :
			reply(conn, 201, "{\"id\": \"" ID_OK "\"}");
	} else if (strcmp(url, "/evaluation") == 0) {
		ret = reply(conn, 200, "{\"evaluations\": [\"" ID_OK "\", \""
			    ID_FAILED "\"]}");
	} else if (strcmp(url, "/evaluation/" ID_OK) == 0) {
		if (polls_++ < running_polls_)
			ret = reply(conn, 200,
				    "{\"status\": \"running\", \"executed\": 1,"
				    " \"in_progress\": 2, \"pending\": 2}");
		else
			ret = reply(conn, 200, status_done);
	} else if (strcmp(url, "/evaluation/" ID_FAILED) == 0) {
		ret = reply(conn, 200,
			    "{\"status\": \"failed\", \"executed\": 0,"
			    " \"in_progress\": 0, \"pending\": 0,"
			    " \"nota_final\": 0, \"projects\": {}}");
	} else if (strcmp(url, "/evaluation/" ID_OK "/results") == 0) {
		ret = reply(conn, 200, "{\"id\":\"" ID_OK "\",\"projects\":[]}");
	} else {
		ret = reply(conn, 404, "{\"error\": \"not found\"}");
	}
	pthread_mutex_unlock(&lock_);
	return ret;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	  enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r == NULL)
		return;
	if (r->pp != NULL)
		MHD_destroy_post_processor(r->pp);
	buf_free(&r->body);
	free(r);
	*con_cls = NULL;
}

static char node_[64];
static char tmp_[64];
static char zip_[128];

static int
setup(void **state)
{
	struct sockaddr_in sa;
	char *p;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL,
				   handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
				   MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				   MHD_OPTION_END);
	if (daemon_ == NULL)
		return -1;
	port_ = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
	snprintf(node_, sizeof(node_), "127.0.0.1:%u", port_);
	snprintf(tmp_, sizeof(tmp_), "/tmp/test_cli-XXXXXX");
	if (mkdtemp(tmp_) == NULL)
		return -1;
	snprintf(zip_, sizeof(zip_), "%s/projects.zip", tmp_);
	util_write_file(zip_, "PK\x05\x06zipzipzipzipzipzipzip", 25, 0600);
	p = xasprintf("%s/plain.txt", tmp_);
	util_write_file(p, "x", 1, 0600);
	free(p);
	p = xasprintf("%s/alice/tests", tmp_);
	util_mkdir_p(p, 0700);
	free(p);
	p = xasprintf("%s/alice/tests/test_a.py", tmp_);
	util_write_file(p, "def test_a():\n    pass\n", 23, 0600);
	free(p);
	unsetenv("MESHTEST_NODE");
	unsetenv("MESHTEST_API_TOKEN");
	unsetenv("MESHTEST_GIT_TOKEN");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	util_rm_rf(tmp_);
	return 0;
}

/* ---- running a command with stdout and stderr captured ---------------- */

struct run {
	int rc;
	char *out;
	char *err;
};

static char *
slurp(FILE *f)
{
	struct buf b;
	char chunk[4096];
	size_t n;

	buf_init(&b, 1 << 20);
	rewind(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

static struct run
run_cmd(int (*fn)(int, char **), ...)
{
	char *argv[32];
	int argc = 0, saved_out, saved_err;
	FILE *fo = tmpfile(), *fe = tmpfile();
	struct run r;
	va_list ap;

	va_start(ap, fn);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	r.rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	r.out = slurp(fo);
	r.err = slurp(fe);
	return r;
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* ---- pure functions -------------------------------------------------- */

static void
test_duration(void **state)
{
	static const struct { double s; const char *want; } cases[] = {
		{ 0, "00:00" }, { -3, "00:00" }, { 12.9, "00:12" },
		{ 75, "01:15" }, { 3599, "59:59" }, { 3725, "1:02:05" },
		{ 36000, "10:00:00" },
	};
	char out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cli_format_duration(cases[i].s, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

static void
test_progress(void **state)
{
	json_t *st = json_loads("{\"status\": \"running\", \"executed\": 12,"
				" \"in_progress\": 3, \"pending\": 25,"
				" \"percent_passed\": 78.5,"
				" \"elapsed_seconds\": 12.4}", 0, NULL);
	json_t *empty = json_object();
	char out[256];

	(void)state;
	cli_progress_format(st, 99, out, sizeof(out));
	assert_string_equal(out, "[###.......] 12/40 modules, 3 running, "
			    "25 pending, 78.5% passed, 00:12");
	/* nothing known yet: empty bar, local clock */
	cli_progress_format(empty, 61, out, sizeof(out));
	assert_string_equal(out, "[..........] 0/0 modules, 0 running, "
			    "0 pending, 0.0% passed, 01:01");
	json_object_set_new(st, "executed", json_integer(40));
	json_object_set_new(st, "in_progress", json_integer(0));
	json_object_set_new(st, "pending", json_integer(0));
	cli_progress_format(st, 0, out, sizeof(out));
	assert_string_equal(out, "[##########] 40/40 modules, 0 running, "
			    "0 pending, 78.5% passed, 00:12");
	json_decref(st);
	json_decref(empty);
}

static void
test_table(void **state)
{
	json_t *st = json_loads(status_done, 0, NULL);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(st);
	cli_table_print(f, ID_OK, st);
	fclose(f);
	assert_string_equal(text, table_done);
	free(text);
	json_decref(st);
}

static void
test_exit_code(void **state)
{
	static const struct { const char *json; int want; } cases[] = {
		{ "{\"status\": \"done\", \"failed\": 0, \"projects\": {\"a\":"
		  " {\"error\": null, \"failed\": 0, \"passed\": 3}}}", 0 },
		{ "{\"status\": \"done\", \"failed\": 2, \"projects\": {}}", 1 },
		{ "{\"status\": \"done\", \"failed\": 0, \"projects\": {\"a\":"
		  " {\"error\": null, \"failed\": 1}}}", 1 },
		{ "{\"status\": \"done\", \"failed\": 0, \"projects\": {\"a\":"
		  " {\"error\": \"cannot unpack\", \"failed\": 0}}}", 1 },
		{ "{\"status\": \"failed\", \"failed\": 0, \"projects\": {}}", 3 },
		{ "{\"status\": \"failed\", \"failed\": 4, \"projects\": {\"a\":"
		  " {\"error\": \"x\"}}}", 3 },
		{ "{\"status\": \"done\"}", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *st = json_loads(cases[i].json, 0, NULL);

		assert_non_null(st);
		assert_int_equal(cli_exit_code(st), cases[i].want);
		json_decref(st);
	}
}

static void
test_source_kind(void **state)
{
	char *dir = xasprintf("%s/alice", tmp_);
	char *txt = xasprintf("%s/plain.txt", tmp_);
	char *none = xasprintf("%s/none.zip", tmp_);

	(void)state;
	assert_int_equal(cli_source_kind(zip_), CLI_SOURCE_ZIP);
	assert_int_equal(cli_source_kind(dir), CLI_SOURCE_DIR);
	assert_int_equal(cli_source_kind(txt), CLI_SOURCE_BAD);
	assert_int_equal(cli_source_kind(none), CLI_SOURCE_BAD);
	assert_int_equal(cli_source_kind(""), CLI_SOURCE_BAD);
	assert_int_equal(cli_source_kind("https://github.com/org/repo"),
			 CLI_SOURCE_GIT);
	assert_int_equal(cli_source_kind("file:///srv/git/repo.git"),
			 CLI_SOURCE_GIT);
	assert_int_equal(cli_source_kind("git@github.com:org/repo.git"),
			 CLI_SOURCE_GIT);
	free(dir);
	free(txt);
	free(none);
}

static void
test_conn(void **state)
{
	struct cli_conn c;
	char err[256];

	(void)state;
	assert_int_equal(cli_conn_init(&c, "10.0.0.2:7001", err, sizeof(err)),
			 0);
	assert_string_equal(c.base, "http://10.0.0.2:7001");
	assert_null(c.headers[0]);
	assert_string_equal(c.json_headers[0], "Content-Type: application/json");
	assert_null(c.json_headers[1]);

	assert_int_equal(cli_conn_init(&c, "https://node.example:443//", err,
				       sizeof(err)), 0);
	assert_string_equal(c.base, "https://node.example:443");

	setenv("MESHTEST_NODE", "127.0.0.9:7005", 1);
	setenv("MESHTEST_API_TOKEN", "s3cret", 1);
	assert_int_equal(cli_conn_init(&c, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.base, "http://127.0.0.9:7005");
	assert_string_equal(c.headers[0], "Authorization: Bearer s3cret");
	assert_null(c.headers[1]);
	assert_string_equal(c.json_headers[0], "Authorization: Bearer s3cret");
	assert_string_equal(c.json_headers[1], "Content-Type: application/json");
	unsetenv("MESHTEST_NODE");
	unsetenv("MESHTEST_API_TOKEN");
	assert_int_equal(cli_conn_init(&c, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.base, "http://127.0.0.1:7000");

	assert_int_equal(cli_conn_init(&c, "nocolon", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "bad node address nocolon (want host:port)");
	assert_int_equal(cli_conn_init(&c, "a b:1", err, sizeof(err)), -EINVAL);
}

/* ---- commands end to end --------------------------------------------- */

static void
test_keygen(void **state)
{
	struct run a, b;

	(void)state;
	a = run_cmd(cli_keygen_main, "keygen", NULL);
	b = run_cmd(cli_keygen_main, "keygen", NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(strlen(a.out), 65);
	assert_int_equal(strspn(a.out, "0123456789abcdef"), 64);
	assert_int_equal(a.out[64], '\n');
	assert_string_not_equal(a.out, b.out);
	run_free(&a);
	run_free(&b);
	a = run_cmd(cli_keygen_main, "keygen", "extra", NULL);
	assert_int_equal(a.rc, 2);
	assert_string_equal(a.out, "");
	run_free(&a);
}

static void
test_submit_git(void **state)
{
	struct run r;

	(void)state;
	setenv("MESHTEST_GIT_TOKEN", "ghp_token", 1);
	setenv("MESHTEST_API_TOKEN", "apitok", 1);
	r = run_cmd(cli_submit_main, "submit", "https://example.org/a.git",
		    "git@example.org:b.git", "--node", node_,
		    "--module-timeout", "30", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, ID_OK "\n");
	assert_string_equal(r.err, "");
	assert_string_equal(last_body_,
			    "{\"projects\":[\"https://example.org/a.git\","
			    "\"git@example.org:b.git\"],\"auth_token\":"
			    "\"ghp_token\",\"module_timeout\":30}");
	assert_string_equal(last_auth_, "Bearer apitok");
	run_free(&r);
	unsetenv("MESHTEST_GIT_TOKEN");
	unsetenv("MESHTEST_API_TOKEN");

	/* no token: the field is left out; fractional timeout stays a number */
	r = run_cmd(cli_submit_main, "submit", "https://example.org/a.git",
		    "--module-timeout=2.5", "--node=" "127.0.0.1:0", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	setenv("MESHTEST_NODE", node_, 1);
	r = run_cmd(cli_submit_main, "submit", "https://example.org/a.git",
		    "--module-timeout=2.5", "--json", NULL);
	unsetenv("MESHTEST_NODE");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "{\n  \"id\": \"" ID_OK "\"\n}\n");
	assert_string_equal(last_body_,
			    "{\"projects\":[\"https://example.org/a.git\"],"
			    "\"module_timeout\":2.5}");
	assert_string_equal(last_auth_, "");
	run_free(&r);
}

static void
test_submit_zip_wait(void **state)
{
	struct run r;

	(void)state;
	polls_ = 0;
	r = run_cmd(cli_submit_main, "submit", zip_, "--node", node_, "--wait",
		    "--module-timeout", "7", NULL);
	assert_int_equal(r.rc, 1); /* bob has a failed test, carol an error */
	assert_string_equal(last_upload_, "projects.zip:25|module_timeout=7");
	assert_int_equal(polls_, 3); /* running, running, done */
	assert_string_equal(r.out, table_done);
	assert_string_equal(r.err, ""); /* not a terminal: no progress */
	run_free(&r);

	/* --wait --json prints the /results answer */
	polls_ = 0;
	r = run_cmd(cli_submit_main, "submit", zip_, "--node", node_, "--wait",
		    "--json", NULL);
	assert_int_equal(r.rc, 1);
	assert_string_equal(last_upload_, "projects.zip:25|");
	assert_string_equal(r.out, "{\n  \"id\": \"" ID_OK "\",\n"
			    "  \"projects\": []\n}\n");
	run_free(&r);
}

static void
test_submit_dir(void **state)
{
	char *dir = xasprintf("%s/alice/", tmp_);
	struct run r;

	(void)state;
	r = run_cmd(cli_submit_main, "submit", dir, "--node", node_, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, ID_OK "\n");
	/* the ZIP is named after the folder and holds something */
	assert_true(util_starts_with(last_upload_, "alice.zip:"));
	assert_true(strtol(last_upload_ + strlen("alice.zip:"), NULL, 10) > 22);
	run_free(&r);
	free(dir);
}

static void
test_submit_errors(void **state)
{
	char *dir = xasprintf("%s/alice", tmp_);
	char *txt = xasprintf("%s/plain.txt", tmp_);
	char want[256];
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct run r;
	int fd;

	(void)state;
	/* usage errors: exit 2, message and usage on stderr */
	r = run_cmd(cli_submit_main, "submit", NULL);
	assert_int_equal(r.rc, 2);
	assert_true(util_starts_with(r.err, "meshtest: nothing to submit\n"
				     "usage: meshtest submit"));
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", zip_, "https://x.org/r.git",
		    "--node", node_, NULL);
	assert_int_equal(r.rc, 2);
	assert_true(util_starts_with(r.err, "meshtest: submit one zip or "
				     "folder, or any number of git urls, not "
				     "a mix\n"));
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", zip_, dir, NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", txt, NULL);
	assert_int_equal(r.rc, 2);
	snprintf(want, sizeof(want), "meshtest: %s is not a .zip file, a "
		 "folder or a git url\n", txt);
	assert_true(util_starts_with(r.err, want));
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", zip_, "--bogus", NULL);
	assert_int_equal(r.rc, 2);
	assert_true(util_starts_with(r.err, "meshtest: unknown option --bogus\n"));
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", zip_, "--module-timeout", "-1",
		    NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", zip_, "--node", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = run_cmd(cli_submit_main, "submit", "--help", NULL);
	assert_int_equal(r.rc, 0);
	assert_true(util_starts_with(r.out, "usage: meshtest submit"));
	run_free(&r);

	/* the node refuses the submission */
	reject_ = 1;
	r = run_cmd(cli_submit_main, "submit", zip_, "--node", node_, NULL);
	reject_ = 0;
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "meshtest: node answered 400: bad zip\n");
	run_free(&r);

	/* nobody listens */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(sa.sin_port));
	r = run_cmd(cli_submit_main, "submit", zip_, "--node", want, NULL);
	assert_int_equal(r.rc, 2);
	snprintf(want, sizeof(want), "meshtest: cannot connect to 127.0.0.1:%u:"
		 " Connection refused\n", ntohs(sa.sin_port));
	assert_string_equal(r.err, want);
	run_free(&r);
	free(dir);
	free(txt);
}

static void
test_status(void **state)
{
	struct run r;

	(void)state;
	polls_ = 100; /* done at once */
	r = run_cmd(cli_status_main, "status", "--node", node_, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out,
			    ID_OK "  done     5/5 modules  nota_final 11.7\n"
			    ID_FAILED "  failed   0/0 modules  nota_final 0.0\n");
	run_free(&r);

	r = run_cmd(cli_status_main, "status", ID_OK, "--node", node_, NULL);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.out, table_done);
	run_free(&r);

	r = run_cmd(cli_status_main, "status", ID_FAILED, "--node", node_,
		    "--wait", NULL);
	assert_int_equal(r.rc, 3);
	assert_true(util_starts_with(r.out, "evaluation " ID_FAILED
				     ": failed, 0 modules, 00:00\n"));
	run_free(&r);

	/* without --wait a running evaluation is shown as it is */
	polls_ = 0;
	r = run_cmd(cli_status_main, "status", ID_OK, "--node", node_, NULL);
	assert_int_equal(r.rc, 0);
	assert_true(util_starts_with(r.out, "evaluation " ID_OK
				     ": running, 5 modules, 00:00\n"));
	assert_int_equal(polls_, 1);
	run_free(&r);

	r = run_cmd(cli_status_main, "status", ID_MISSING, "--node", node_,
		    NULL);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "meshtest: evaluation " ID_MISSING
			    " not found\n");
	run_free(&r);

	r = run_cmd(cli_status_main, "status", ID_MISSING, "--node", node_,
		    "--wait", NULL);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "meshtest: evaluation " ID_MISSING
			    " not found\n");
	run_free(&r);

	r = run_cmd(cli_status_main, "status", "not-an-id", NULL);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "meshtest: not-an-id is not an evaluation "
			    "id\n");
	run_free(&r);
	r = run_cmd(cli_status_main, "status", "--wait", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_exit_code),
		cmocka_unit_test(test_source_kind),
		cmocka_unit_test(test_conn),
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_submit_git),
		cmocka_unit_test(test_submit_zip_wait),
		cmocka_unit_test(test_submit_dir),
		cmocka_unit_test(test_submit_errors),
		cmocka_unit_test(test_status),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
