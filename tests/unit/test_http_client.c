/*
 * test_http_client.c - http_client against a real libmicrohttpd server on a
 * free loopback port: bodies, headers, methods, caps, refused connections,
 * timeouts, multipart uploads and concurrent use.
 */
#include <errno.h>
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

#include "core/buf.h"
#include "core/util.h"
#include "engine/blob.h"
#include "http/http_client.h"

static struct MHD_Daemon *daemon_;
static unsigned port_;

/* ---- the test server ------------------------------------------------- */

struct req {
	struct buf body;
	struct MHD_PostProcessor *pp;
	char file_name[128];
	size_t file_len;
	unsigned long file_sum;
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
		for (size_t i = 0; i < size; i++)
			r->file_sum += (unsigned char)data[i];
		return MHD_YES;
	}
	n = strlen(r->fields);
	snprintf(r->fields + n, sizeof(r->fields) - n, "%s%s=%.*s",
		 n ? ";" : "", key, (int)size, data);
	return MHD_YES;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *ct,
      const char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, "Content-Type", ct);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * A peer's /blob/<digest>: GOOD_BLOB under its own digest, other bytes under
 * the digest of EXPECTED_BLOB (a forged or corrupted copy); a PUT is kept in
 * put_body.
 */
#define GOOD_BLOB "the project's files, zipped"
#define EXPECTED_BLOB "what the digest names"
static char put_body[256];

static enum MHD_Result
blob_reply(struct MHD_Connection *conn, const char *method, const char *digest,
	   const struct req *r)
{
	char good[SHA256_HEX_LEN], expected[SHA256_HEX_LEN];

	util_sha256_hex(GOOD_BLOB, strlen(GOOD_BLOB), good);
	util_sha256_hex(EXPECTED_BLOB, strlen(EXPECTED_BLOB), expected);
	if (strcmp(method, "PUT") == 0) {
		snprintf(put_body, sizeof(put_body), "%s:%.*s", digest,
			 (int)r->body.len, r->body.data ? r->body.data : "");
		return reply(conn, 201, "application/json", "{}", 2);
	}
	if (strcmp(digest, good) == 0)
		return reply(conn, 200, "application/zip", GOOD_BLOB, strlen(GOOD_BLOB));
	if (strcmp(digest, expected) == 0)
		return reply(conn, 200, "application/zip", "forged bytes", 12);
	return reply(conn, 404, "application/json", "{}", 2);
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data,
	size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	char out[512];

	(void)cls;
	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		buf_init(&r->body, 1 << 20);
		if (strcmp(url, "/upload") == 0)
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
	if (strncmp(url, "/blob/", 6) == 0)
		return blob_reply(conn, method, url + 6, r);
	if (strcmp(url, "/hello") == 0)
		return reply(conn, 200, "text/plain", "hello", 5);
	if (strcmp(url, "/echo") == 0) {
		const char *ct = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, "Content-Type");
		const char *xt = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, "X-Test");
		const char *ex = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, "Expect");
		int n = snprintf(out, sizeof(out), "%s|%s|%s|%s|%s", method,
				 ct ? ct : "-", xt ? xt : "-", ex ? ex : "-",
				 r->body.data ? r->body.data : "");
		return reply(conn, 200, "application/json", out, (size_t)n);
	}
	if (strcmp(url, "/missing") == 0)
		return reply(conn, 404, "application/json",
			     "{\"error\": \"not found\"}", 22);
	if (strcmp(url, "/big") == 0) {
		char *big = malloc(100000);
		enum MHD_Result ret;

		memset(big, 'x', 100000);
		ret = reply(conn, 200, "text/plain", big, 100000);
		free(big);
		return ret;
	}
	if (strcmp(url, "/slow") == 0) {
		sleep(3);
		return reply(conn, 200, "text/plain", "late", 4);
	}
	if (strcmp(url, "/upload") == 0) {
		int n = snprintf(out, sizeof(out), "%s:%zu:%lu|%s",
				 r->file_name, r->file_len, r->file_sum,
				 r->fields);
		return reply(conn, 200, "text/plain", out, (size_t)n);
	}
	return reply(conn, 404, "text/plain", "", 0);
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

static int
setup(void **state)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
				   MHD_USE_INTERNAL_POLLING_THREAD,
				   0, NULL, NULL, handler, NULL,
				   MHD_OPTION_SOCK_ADDR, &sa,
				   MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				   MHD_OPTION_END);
	if (daemon_ == NULL)
		return -1;
	info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	port_ = info->port;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	return 0;
}

static char *
url_of(const char *path)
{
	return xasprintf("http://127.0.0.1:%u%s", port_, path);
}

/* ---- tests ----------------------------------------------------------- */

static void
test_get(void **state)
{
	struct http_response resp;
	char err[256] = "";
	char *url = url_of("/hello");

	(void)state;
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 5,
					     1024, &resp, err, sizeof(err)), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.len, 5);
	assert_string_equal(resp.body, "hello");
	assert_string_equal(resp.content_type, "text/plain");
	http_response_free(&resp);
	assert_null(resp.body);
	free(url);
}

static void
test_post_headers(void **state)
{
	const char *headers[] = { "Content-Type: application/json",
				  "X-Test: yes", NULL };
	const char body[] = "{\"a\": 1}";
	struct http_response resp;
	char err[256] = "";
	char *url = url_of("/echo");

	(void)state;
	assert_int_equal(http_client_request("POST", url, headers, body,
					     strlen(body), 5, 1024, &resp, err,
					     sizeof(err)), 0);
	assert_int_equal(resp.status, 200);
	/* no Expect: 100-continue, body sent verbatim */
	assert_string_equal(resp.body,
			    "POST|application/json|yes|-|{\"a\": 1}");
	http_response_free(&resp);

	assert_int_equal(http_client_request("PUT", url, headers, "xyz", 3, 5,
					     1024, &resp, err, sizeof(err)), 0);
	assert_string_equal(resp.body, "PUT|application/json|yes|-|xyz");
	http_response_free(&resp);

	assert_int_equal(http_client_request("DELETE", url, NULL, NULL, 0, 5,
					     1024, &resp, err, sizeof(err)), 0);
	assert_string_equal(resp.body, "DELETE|-|-|-|");
	http_response_free(&resp);
	free(url);
}

static void
test_http_error_is_answer(void **state)
{
	struct http_response resp;
	char err[256] = "";
	char *url = url_of("/missing");

	(void)state;
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 5,
					     1024, &resp, err, sizeof(err)), 0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.body, "{\"error\": \"not found\"}");
	assert_string_equal(err, "");
	http_response_free(&resp);
	free(url);
}

static void
test_cap(void **state)
{
	struct http_response resp;
	char err[256] = "", want[256];
	char *url = url_of("/big");

	(void)state;
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 5,
					     1000, &resp, err, sizeof(err)),
			 -EFBIG);
	snprintf(want, sizeof(want),
		 "answer from 127.0.0.1:%u exceeds 1000 bytes", port_);
	assert_string_equal(err, want);
	assert_null(resp.body);
	assert_int_equal(resp.status, 0);

	/* exactly at the cap is fine */
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 5,
					     100000, &resp, err, sizeof(err)),
			 0);
	assert_int_equal(resp.len, 100000);
	assert_int_equal(resp.body[99999], 'x');
	assert_int_equal(resp.body[100000], '\0');
	http_response_free(&resp);
	free(url);
}

static void
test_refused(void **state)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct http_response resp;
	char err[256] = "", want[256];
	char *url;
	int fd;

	(void)state;
	/* a port nobody listens on: bind, read it back, close */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	url = xasprintf("http://127.0.0.1:%u/x", ntohs(sa.sin_port));
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 5,
					     1024, &resp, err, sizeof(err)),
			 -ECONNREFUSED);
	snprintf(want, sizeof(want),
		 "cannot connect to 127.0.0.1:%u: Connection refused",
		 ntohs(sa.sin_port));
	assert_string_equal(err, want);
	assert_null(resp.body);
	free(url);
}

static void
test_timeout(void **state)
{
	struct http_response resp;
	char err[256] = "", want[256];
	char *url = url_of("/slow");
	double t0 = util_mono();

	(void)state;
	assert_int_equal(http_client_request("GET", url, NULL, NULL, 0, 0.5,
					     1024, &resp, err, sizeof(err)),
			 -ETIMEDOUT);
	assert_true(util_mono() - t0 < 2.0);
	snprintf(want, sizeof(want),
		 "cannot reach 127.0.0.1:%u: timed out after 0.5 s", port_);
	assert_string_equal(err, want);
	free(url);
}

static void
test_bad_url(void **state)
{
	struct http_response resp;
	char err[256] = "";

	(void)state;
	assert_int_equal(http_client_request("GET", "ftp://127.0.0.1/x", NULL,
					     NULL, 0, 5, 1024, &resp, err,
					     sizeof(err)), -EINVAL);
	assert_string_equal(err, "bad url ftp://127.0.0.1/x");
	assert_int_equal(http_client_request("GE T", "http://127.0.0.1/", NULL,
					     NULL, 0, 5, 1024, &resp, err,
					     sizeof(err)), -EINVAL);
	assert_string_equal(err, "bad http method");
}

static void
test_post_file(void **state)
{
	const char *fields[] = { "module_timeout", "30", "x", "y z", NULL };
	struct http_response resp;
	char dir[] = "/tmp/test_http_client-XXXXXX";
	char err[256] = "", want[256];
	char *path, *url = url_of("/upload");
	char data[3000];
	unsigned long sum = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (char)(i * 7 + 3);
		sum += (unsigned char)data[i];
	}
	path = xasprintf("%s/proj.zip", dir);
	assert_int_equal(util_write_file(path, data, sizeof(data), 0600), 0);
	assert_int_equal(http_client_post_file(url, NULL, path, fields, 5,
					       1024, &resp, err, sizeof(err)),
			 0);
	assert_int_equal(resp.status, 200);
	snprintf(want, sizeof(want), "proj.zip:3000:%lu|module_timeout=30;x=y z",
		 sum);
	assert_string_equal(resp.body, want);
	http_response_free(&resp);

	/* no extra fields */
	assert_int_equal(http_client_post_file(url, NULL, path, NULL, 5, 1024,
					       &resp, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "proj.zip:3000:%lu|", sum);
	assert_string_equal(resp.body, want);
	http_response_free(&resp);

	assert_int_equal(http_client_post_file(url, NULL, "/nonexistent.zip",
					       NULL, 5, 1024, &resp, err,
					       sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot read /nonexistent.zip: No such file "
			    "or directory");
	util_rm_rf(dir);
	free(path);
	free(url);
}

static void *
worker(void *arg)
{
	const char *url = arg;
	struct http_response resp;
	char err[256];
	intptr_t ok = 0;

	for (int i = 0; i < 25; i++) {
		if (http_client_request("GET", url, NULL, NULL, 0, 5, 64, &resp,
					err, sizeof(err)) == 0 &&
		    resp.status == 200 && strcmp(resp.body, "hello") == 0)
			ok++;
		http_response_free(&resp);
	}
	return (void *)ok;
}

static void
test_threads(void **state)
{
	pthread_t t[4];
	char *url = url_of("/hello");
	intptr_t total = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, url), 0);
	for (int i = 0; i < 4; i++) {
		void *res;

		pthread_join(t[i], &res);
		total += (intptr_t)res;
	}
	assert_int_equal(total, 100);
	free(url);
}

/* How many files a folder holds (but . and ..). */
static int
files_in(const char *dir)
{
	char *cmd = xasprintf("ls -A %s | wc -l", dir);
	FILE *f = popen(cmd, "r");
	int n = -1;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &n), 1);
	pclose(f);
	free(cmd);
	return n;
}

/* Blobs go to and come from a peer through files, and a wrong copy is never kept. */
static void
test_blob_fetch_and_push(void **state)
{
	char dir[] = "/tmp/meshtest-blob-XXXXXX", good[SHA256_HEX_LEN];
	char expected[SHA256_HEX_LEN], missing[SHA256_HEX_LEN], err[256];
	char *peer = xasprintf("127.0.0.1:%u", port_), *peers[] = { peer }, *data = NULL;
	char *want;
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	util_sha256_hex(GOOD_BLOB, strlen(GOOD_BLOB), good);
	util_sha256_hex(EXPECTED_BLOB, strlen(EXPECTED_BLOB), expected);
	util_sha256_hex("nobody has it", 13, missing);
	/* a good copy: kept under its digest, nothing else left */
	assert_int_equal(blob_fetch(dir, good, peers, 1, 1 << 20, err, sizeof(err)), 0);
	assert_true(blob_has(dir, good));
	{
		char *path = blob_path(dir, good);
		assert_int_equal(util_read_file(path, 1 << 20, &data, &len), 0);
		assert_int_equal(len, strlen(GOOD_BLOB));
		assert_memory_equal(data, GOOD_BLOB, len);
		free(data);
		free(path);
	}
	assert_int_equal(files_in(dir), 1);
	/* bytes that are not what the digest names: refused, no file left */
	assert_int_equal(blob_fetch(dir, expected, peers, 1, 1 << 20, err, sizeof(err)),
			 -EBADMSG);
	assert_false(blob_has(dir, expected));
	/* nobody has it: the error says so */
	assert_true(blob_fetch(dir, missing, peers, 1, 1 << 20, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no live node has the project's files"));
	/* longer than allowed: refused while it comes, its part removed */
	assert_int_equal(blob_fetch(dir, good, peers, 1, 4, err, sizeof(err)), -EFBIG);
	assert_int_equal(files_in(dir), 1);
	/* a push sends the file as it is, under its digest */
	assert_int_equal(blob_push(dir, good, peer, 1 << 20), 0);
	want = xasprintf("%s:%s", good, GOOD_BLOB);
	assert_string_equal(put_body, want);
	free(want);
	assert_int_equal(blob_push(dir, good, peer, 4), -EFBIG);
	assert_true(blob_push(dir, expected, peer, 1 << 20) < 0);   /* not here */
	util_rm_rf(dir);
	free(peer);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_post_headers),
		cmocka_unit_test(test_http_error_is_answer),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_url),
		cmocka_unit_test(test_post_file),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_blob_fetch_and_push),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
