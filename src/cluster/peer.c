/*
 * peer.c - node-to-node requests over http_client (libcurl).
 *
 * Stateless and thread-safe: any thread may call peer_request at any time
 * (http_client uses one curl handle per call). Failures are logged at debug
 * level only: the callers decide what a missing answer means (a missed
 * probe is routine, not an error). A failed TLS handshake is not routine
 * (a peer without TLS or of another CA) and is a warning. With TLS
 * (http_tls.h) every request is https with this node's certificate.
 */
#include "cluster/peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/auth.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http_client.h"
#include "http/http_tls.h"

#define PEER_STR(x) #x
#define PEER_XSTR(x) PEER_STR(x)

int
peer_protocol_check(const char *value, char *why, size_t whylen)
{
	char *end;
	long v = 1;

	if (value != NULL) {
		v = strtol(value, &end, 10);
		if (end == value || *end != '\0')
			v = -1;
	}
	if (v >= PEER_PROTOCOL_MIN && v <= PEER_PROTOCOL)
		return 0;
	snprintf(why, whylen, "node protocol version %s is not one this node speaks (%d to %d):"
	    " upgrade the nodes one release at a time", value, PEER_PROTOCOL_MIN, PEER_PROTOCOL);
	return -EPROTO;
}

/*
 * Every internal request: body in memory (body, len), or from files
 * (files: body_fd with body_sha, its hash, and/or answer_fd, whose hash goes
 * to answer_sha: computed once, for the MAC and for the caller).
 */
static int
peer_do(const char *addr, const char *method, const char *path, const void *body,
    size_t len, const struct http_client_files *files, const char *body_sha,
    const char *content_type, double timeout, size_t max_answer, struct http_response *resp,
    char *answer_sha)
{
	const char *headers[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
	char err[256] = "", t[32], nonce[AUTH_NONCE_HEX], mac[AUTH_MAC_HEX];
	char *url, *ct = NULL, *h_time = NULL, *h_nonce = NULL, *h_mac = NULL;
	int r, k = 0, signed_req;

	memset(resp, 0, sizeof(*resp));
	if (addr == NULL || *addr == '\0' || strchr(addr, '/') != NULL || path[0] != '/')
		return -EINVAL;
	url = xasprintf("%s://%s%s", http_tls_scheme(), addr, path);
	headers[k++] = PEER_PROTOCOL_HEADER ": " PEER_XSTR(PEER_PROTOCOL);
	if (content_type != NULL) {
		ct = xasprintf("Content-Type: %s", content_type);
		headers[k++] = ct;
	}
	/* With a cluster key every internal request is signed... */
	signed_req = (body_sha != NULL ?
	    auth_sign_request_sha(method, path, body_sha, t, nonce, mac) :
	    auth_sign_request(method, path, body, len, t, nonce, mac)) == 0;
	if (signed_req) {
		h_time = xasprintf("X-Meshtest-Time: %s", t);
		h_nonce = xasprintf("X-Meshtest-Nonce: %s", nonce);
		h_mac = xasprintf("X-Meshtest-Mac: %s", mac);
		headers[k++] = h_time;
		headers[k++] = h_nonce;
		headers[k++] = h_mac;
	}
	r = files != NULL ?
	    http_client_request_files(http_tls_client(), method, url, headers, files, timeout,
	    max_answer, resp, err, sizeof(err)) :
	    http_client_request_tls(http_tls_client(), method, url, headers, body, len,
	    timeout, max_answer, resp, err, sizeof(err));
	if (r == 0 && answer_sha != NULL && util_sha256_fd_hex(files->answer_fd, answer_sha) < 0) {
		snprintf(err, sizeof(err), "cannot read back the answer: %s", strerror(errno));
		http_response_free(resp);
		r = -EIO;
	}
	if (r == 0 && resp->status == 409 && resp->body != NULL &&
	    strstr(resp->body, "node protocol version") != NULL)
		log_error("peer: %s refused %s %s: %s", addr, method, path, resp->body);
	if (r == -EKEYREJECTED) {
		/* not a routine miss: a peer without TLS, or of another CA */
		http_tls_peer_failed(err);
	} else if (r < 0) {
		log_debug("peer: %s %s: %s", method, url, err);
	} else if (signed_req && !(answer_sha != NULL ?
	    auth_check_answer_sha(resp->status, nonce, answer_sha, resp->mac) :
	    auth_check_answer(resp->status, nonce, resp->body, resp->len, resp->mac))) {
		/* ...and so is every answer: a forged one is not believed. */
		log_warn("peer: %s %s: refused a forged or unsigned answer (status %ld)", method,
		    url, resp->status);
		http_response_free(resp);
		r = -EPROTO;
	}
	free(ct);
	free(h_time);
	free(h_nonce);
	free(h_mac);
	free(url);
	return r;
}

int
peer_request_raw(const char *addr, const char *method, const char *path,
    const void *body, size_t len, const char *content_type, double timeout,
    size_t max_answer, struct http_response *resp)
{
	return peer_do(addr, method, path, body, len, NULL, NULL, content_type, timeout,
	    max_answer, resp, NULL);
}

int
peer_request_files(const char *addr, const char *method, const char *path, int body_fd,
    const char *body_sha, const char *content_type, int answer_fd, double timeout,
    size_t max_answer, struct http_response *resp, char *answer_sha)
{
	struct http_client_files files = { body_fd, 0, answer_fd };
	char empty[SHA256_HEX_LEN];
	struct stat sb;

	memset(resp, 0, sizeof(*resp));
	if (body_fd >= 0) {
		if (fstat(body_fd, &sb) < 0)
			return -errno;
		files.body_len = (unsigned long long)sb.st_size;
	} else {
		util_sha256_hex("", 0, empty);
		body_sha = empty;
	}
	return peer_do(addr, method, path, NULL, 0, &files, body_sha, content_type, timeout,
	    max_answer, resp, answer_fd >= 0 ? answer_sha : NULL);
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
