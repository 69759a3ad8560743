/*
 * http_client.h - a small blocking HTTP client over libcurl.
 *
 * Used by the command-line client (meshtest submit/status) and for
 * node-to-node calls. Every call uses its own curl handle, so the functions
 * may be called from any thread at once; curl_global_init runs once, on the
 * first call, through pthread_once. Only http:// and https:// URLs are
 * accepted and redirects are never followed.
 */
#ifndef MESHTEST_HTTP_CLIENT_H
#define MESHTEST_HTTP_CLIENT_H

#include <stddef.h>

struct http_response {
	long status;         /* HTTP status code */
	char *body;          /* NUL-terminated (never NULL after success) */
	size_t len;          /* body bytes, not counting the NUL */
	char *content_type;  /* Content-Type of the answer, or NULL */
	char *mac;           /* X-Meshtest-Mac of the answer (cluster auth), or NULL */
	char *link;          /* Link (pagination), or NULL */
	char *retry_after;   /* Retry-After, or NULL */
	char *rate_remaining; /* X-RateLimit-Remaining, or NULL */
	char *rate_reset;    /* X-RateLimit-Reset (epoch seconds), or NULL */
};

/*
 * TLS settings of a request to an https:// URL. The server's certificate is
 * always verified, and must name the host of the URL.
 */
struct http_client_tls {
	const char *ca;    /* PEM file of the only CAs trusted; NULL: the default */
	const char *cert;  /* PEM client certificate presented (mutual TLS), or NULL */
	const char *key;   /* its private key */
};

/*
 * The CA file of requests that name none (the CLI's MESHTEST_CA), copied;
 * NULL: the system's store. Call before any request, on the main thread.
 */
void http_client_set_default_ca(const char *path);

/*
 * What every request of http_client_request is (url, protocols, no proxy,
 * no signals, TLS verification and the default CA) on a libcurl handle
 * made elsewhere (a long-lived stream, cli_events.c).
 */
void http_client_defaults(void *curl, const char *url);

/*
 * GET/POST (or any other method) with a cap on the answer body: an answer
 * longer than max_answer bytes fails with -EFBIG. timeout is the total time
 * in seconds (<= 0: 30 s). headers is a NULL-terminated array of
 * "Name: value" strings, or NULL. body/len is sent as is when body is not
 * NULL (set the Content-Type in headers).
 *
 * Returns 0 on any HTTP answer (check resp->status), or a negative errno
 * with err filled, e.g. "cannot connect to 127.0.0.1:7000: Connection
 * refused": -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH (name not resolved),
 * -EINVAL (bad URL or method), -EFBIG, -EKEYREJECTED (the TLS handshake or
 * the check of a certificate failed), -EIO (anything else). On failure resp
 * holds nothing to free. resp belongs to the caller: http_response_free.
 */
int http_client_request(const char *method, const char *url,
			const char *const *headers, const void *body, size_t len,
			double timeout, size_t max_answer,
			struct http_response *resp, char *err, size_t errlen);
/* The same with TLS settings (NULL: the defaults), for requests to peers. */
int http_client_request_tls(const struct http_client_tls *tls, const char *method,
			    const char *url, const char *const *headers, const void *body,
			    size_t len, double timeout, size_t max_answer,
			    struct http_response *resp, char *err, size_t errlen);

/*
 * The same with files instead of memory: the request's body, when body_fd
 * >= 0, read from it (body_len bytes from its offset; the method, PUT unless
 * named, sends it with a Content-Length), and the answer's body, when
 * answer_fd >= 0, written to it as it comes (resp->body is then "" and
 * resp->len counts what was written; past max_answer: -EFBIG). Either fd
 * may be -1. Neither is closed.
 */
struct http_client_files {
	int body_fd;
	unsigned long long body_len;
	int answer_fd;
};
int http_client_request_files(const struct http_client_tls *tls, const char *method,
			      const char *url, const char *const *headers,
			      const struct http_client_files *files, double timeout,
			      size_t max_answer, struct http_response *resp, char *err,
			      size_t errlen);

/*
 * multipart/form-data POST of one file field "file" (streamed from disk,
 * sent with the file's base name) plus optional text fields given as a
 * NULL-terminated list name, value, name, value, ... (fields may be NULL).
 * Same results as http_client_request; -ENOENT/-EACCES when field_path
 * cannot be read.
 */
int http_client_post_file(const char *url, const char *const *headers,
			  const char *field_path, const char *const *fields,
			  double timeout, size_t max_answer,
			  struct http_response *resp, char *err, size_t errlen);

/* Free what a response holds and zero it; NULL and zeroed are fine. */
void http_response_free(struct http_response *r);

#endif
