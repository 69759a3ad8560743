/*
 * peer.c - node-to-node requests over http_client (libcurl).
 *
 * Stateless and thread-safe: any thread may call peer_request at any time
 * (http_client uses one curl handle per call). Failures are logged at debug
 * level only: the callers decide what a missing answer means (a missed
 * probe is routine, not an error).
 */
#include "cluster/peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/http_client.h"

int
peer_request_raw(const char *addr, const char *method, const char *path,
    const void *body, size_t len, const char *content_type, double timeout,
    size_t max_answer, struct http_response *resp)
{
	const char *headers[2] = { NULL, NULL };
	char err[256] = "";
	char *url, *ct = NULL;
	int r;

	memset(resp, 0, sizeof(*resp));
	if (addr == NULL || *addr == '\0' || strchr(addr, '/') != NULL || path[0] != '/')
		return -EINVAL;
	url = xasprintf("http://%s%s", addr, path);
	if (content_type != NULL) {
		ct = xasprintf("Content-Type: %s", content_type);
		headers[0] = ct;
	}
	r = http_client_request(method, url, content_type != NULL ? headers : NULL, body, len,
	    timeout, max_answer, resp, err, sizeof(err));
	if (r < 0)
		log_debug("peer: %s %s: %s", method, url, err);
	free(ct);
	free(url);
	return r;
}

int
peer_request(const char *addr, const char *method, const char *path, json_t *body,
    double timeout, json_t **answer, long *status)
{
	struct http_response resp;
	char *data = NULL;
	size_t len = 0;
	int r;

	memset(&resp, 0, sizeof(resp));
	if (answer != NULL)
		*answer = NULL;
	if (status != NULL)
		*status = 0;
	if (body != NULL) {
		data = json_dumps(body, JSON_COMPACT);
		if (data == NULL)
			return -ENOMEM;
		len = strlen(data);
	}
	r = peer_request_raw(addr, method, path, data, len,
	    body != NULL ? "application/json" : NULL, timeout, PEER_MAX_ANSWER, &resp);
	if (r == 0) {
		if (status != NULL)
			*status = resp.status;
		if (answer != NULL && resp.len > 0)
			*answer = json_loadb(resp.body, resp.len, 0, NULL);
	}
	http_response_free(&resp);
	free(data);
	return r;
}
