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
peer_request(const char *addr, const char *method, const char *path, json_t *body,
    double timeout, json_t **answer, long *status)
{
	static const char *const json_headers[] = { "Content-Type: application/json", NULL };
	struct http_response resp;
	char err[256] = "";
	char *url = NULL, *data = NULL;
	size_t len = 0;
	int r;

	memset(&resp, 0, sizeof(resp));
	if (answer != NULL)
		*answer = NULL;
	if (status != NULL)
		*status = 0;
	if (addr == NULL || *addr == '\0' || strchr(addr, '/') != NULL || path[0] != '/')
		return -EINVAL;
	url = xasprintf("http://%s%s", addr, path);
	if (body != NULL) {
		data = json_dumps(body, JSON_COMPACT);
		if (data == NULL) {
			r = -ENOMEM;
			goto out;
		}
		len = strlen(data);
	}
	r = http_client_request(method, url, body != NULL ? json_headers : NULL, data, len,
	    timeout, PEER_MAX_ANSWER, &resp, err, sizeof(err));
	if (r < 0) {
		log_debug("peer: %s %s: %s", method, url, err);
		goto out;
	}
	if (status != NULL)
		*status = resp.status;
	if (answer != NULL && resp.len > 0)
		*answer = json_loadb(resp.body, resp.len, 0, NULL);
out:
	http_response_free(&resp);
	free(data);
	free(url);
	return r;
}
