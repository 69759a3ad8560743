/*
 * fuzz_multipart.c - libFuzzer target: multipart/form-data uploads through
 * the real HTTP server (libmicrohttpd's post processor, our streaming of file
 * fields to disk, text fields, caps). The server runs in-process on a
 * loopback port; each input is one POST body with a fixed boundary.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "http/http_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port;

static json_t *
on_upload(struct http_request *req, void *ctx, int *status)
{
	const char *path = http_request_upload(req, "file");

	(void)ctx;
	*status = 200;
	return json_pack("{s:O, s:b, s:s?}", "form", http_request_form(req), "file",
	    path != NULL, "name", http_request_upload_name(req, "file"));
}

static const struct http_route routes[] = {
	{ "POST", "/up", HTTP_BODY_SUBMIT, 0, on_upload },
	{ NULL, NULL, 0, 0, NULL },
};

static void
start_server(void)
{
	static const struct http_route *const tables[] = { routes, NULL };
	static char dir[] = "/tmp/meshtest-fuzz-mp-XXXXXX";
	struct http_server_config c;
	struct http_server *srv;
	char listen[64], err[256];

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		abort();
	memset(&c, 0, sizeof(c));
	c.max_body = 1 << 20;
	c.upload_dir = dir;
	c.threads = 2;
	for (int tries = 0; tries < 50; tries++) {
		unsigned r;
		util_random(&r, sizeof(r));
		port = 20000 + (int)(r % 30000);
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		c.listen = listen;
		if (http_server_start(&c, tables, NULL, &srv, err, sizeof(err)) == 0)
			return;
	}
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa;
	char head[256], b[4096];
	int fd, n;

	if (port == 0)
		start_server();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return 0;
	}
	n = snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %zu\r\n\r\n",
	    size);
	if (write(fd, head, (size_t)n) == n && (size == 0 || write(fd, data, size) > 0)) {
		shutdown(fd, SHUT_WR);
		while (read(fd, b, sizeof(b)) > 0)
			;
	}
	close(fd);
	return 0;
}
