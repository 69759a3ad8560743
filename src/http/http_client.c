/*
 * http_client.c - blocking HTTP requests over libcurl (see http_client.h).
 *
 * Owns nothing between calls but the default CA file (set once at start-up):
 * each request creates, uses and frees its own easy handle, so any thread
 * may call in. curl_global_init runs once through
 * pthread_once. The answer body is collected in a capped struct buf; going
 * past the cap aborts the transfer with -EFBIG. CURLOPT_NOSIGNAL keeps curl
 * away from signals (it is used from worker threads).
 */
#include "http/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

static pthread_once_t http_client_once = PTHREAD_ONCE_INIT;
static int http_client_init_result;
static char *http_client_default_ca;  /* set once before any request */

void
http_client_set_default_ca(const char *path)
{
	free(http_client_default_ca);
	http_client_default_ca = path != NULL ? xstrdup(path) : NULL;
}

static void
http_client_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		http_client_init_result = -EIO;
}

static int
http_client_init(char *err, size_t errlen)
{
	pthread_once(&http_client_once, http_client_global_init);
	if (http_client_init_result < 0)
		snprintf(err, errlen, "cannot initialise libcurl");
	return http_client_init_result;
}

/*
 * What the write callback needs: the capped body (in memory, or written to
 * fd when fd >= 0) and whether it overflowed.
 */
struct http_client_sink {
	struct buf body;
	int fd;
	size_t written;
	int too_big;
};

static size_t
http_client_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_client_sink *sink = userdata;
	size_t n = size * nmemb;
	int r;

	if (sink->fd >= 0) {
		if (n > sink->body.max - sink->written) {
			sink->too_big = 1;
			return 0;
		}
		if (util_write_all(sink->fd, ptr, n) < 0)
			return 0;
		sink->written += n;
		return n;
	}
	r = buf_append(&sink->body, ptr, n);
	if (r == -ENOSPC) {
		sink->too_big = 1;
		return 0; /* any short count aborts the transfer */
	}
	if (r < 0)
		return 0;
	return n;
}

/* "host:port" of url for error messages; "?" when it does not parse. */
static void
http_client_hostport(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;

	snprintf(out, outlen, "%s", url);
	if (u == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto out;
	snprintf(out, outlen, "%s:%s", host, port);
out:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

/* Map a failed transfer to a negative errno and a message. */
static int
http_client_error(CURL *c, CURLcode rc, const char *url, double timeout,
		  size_t max_answer, const struct http_client_sink *sink,
		  const char *curl_err, char *err, size_t errlen)
{
	char hp[256];
	long oserr = 0;

	http_client_hostport(url, hp, sizeof(hp));
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	if (sink->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errlen, "answer from %s exceeds %zu bytes", hp,
			 max_answer);
		return -EFBIG;
	}
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		snprintf(err, errlen, "cannot connect to %s: %s", hp,
			 strerror(oserr ? (int)oserr : ECONNREFUSED));
		return oserr ? -(int)oserr : -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(err, errlen, "cannot reach %s: timed out after %g s",
			 hp, timeout);
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(err, errlen, "cannot resolve the host of %s", hp);
		return -EHOSTUNREACH;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		snprintf(err, errlen, "bad url %s", url);
		return -EINVAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		snprintf(err, errlen, "TLS with %s failed: %s", hp,
			 curl_err[0] ? curl_err : curl_easy_strerror(rc));
		return -EKEYREJECTED;
	case CURLE_READ_ERROR:
		snprintf(err, errlen, "cannot read the request body for %s: %s",
			 hp, curl_err[0] ? curl_err : curl_easy_strerror(rc));
		return -EIO;
	default:
		snprintf(err, errlen, "request to %s failed: %s", hp,
			 curl_err[0] ? curl_err : curl_easy_strerror(rc));
		return -EIO;
	}
}

/* The answer's header name (its first occurrence), malloc'ed, or NULL. */
static char *
http_client_header(CURL *c, const char *name)
{
	struct curl_header *h = NULL;

	if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == NULL ||
	    h->value == NULL)
		return NULL;
	return xstrdup(h->value);
}

/*
 * Verify every server (its certificate and that it names the host asked),
 * TLS 1.2 at least. A CA file given replaces the system's store: a peer
 * must be one of the cluster CA's, not any certificate a public CA signed.
 */
static void
http_client_tls_apply(CURL *c, const struct http_client_tls *tls)
{
	const char *ca = tls != NULL && tls->ca != NULL ? tls->ca : http_client_default_ca;

	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca != NULL) {
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
		curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL);
	}
	if (tls != NULL && tls->cert != NULL) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, tls->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, tls->key);
	}
}

/* What every request of this client is, whoever made the handle. */
static void
http_client_base(CURL *c, const char *url)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "meshtest");
	/* loopback and cluster peers only: never pick up a proxy from env */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
}

void
http_client_defaults(void *curl, const char *url)
{
	http_client_base(curl, url);
	http_client_tls_apply(curl, NULL);
}

/*
 * Set the options every request shares, run the transfer and fill resp.
 * c and list belong to the caller; list may be NULL.
 */
static int
http_client_perform(CURL *c, const char *url, struct curl_slist *list,
		    const struct http_client_tls *tls, int answer_fd, double timeout,
		    size_t max_answer, struct http_response *resp, char *err, size_t errlen)
{
	struct http_client_sink sink;
	char curl_err[CURL_ERROR_SIZE];
	char *ct = NULL;
	CURLcode rc;
	int r = 0;

	if (timeout <= 0)
		timeout = 30;
	buf_init(&sink.body, max_answer);
	sink.fd = answer_fd;
	sink.written = 0;
	sink.too_big = 0;
	curl_err[0] = '\0';

	http_client_base(c, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000.0));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_client_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_answer);
	if (list != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	http_client_tls_apply(c, tls);

	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		r = http_client_error(c, rc, url, timeout, max_answer, &sink,
				      curl_err, err, errlen);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	resp->content_type = ct != NULL ? xstrdup(ct) : NULL;
	resp->mac = http_client_header(c, "X-Meshtest-Mac");
	resp->link = http_client_header(c, "Link");
	resp->retry_after = http_client_header(c, "Retry-After");
	resp->rate_remaining = http_client_header(c, "X-RateLimit-Remaining");
	resp->rate_reset = http_client_header(c, "X-RateLimit-Reset");
	resp->len = answer_fd >= 0 ? sink.written : sink.body.len;
	resp->body = buf_steal(&sink.body);
	if (resp->body == NULL)
		resp->body = xstrdup("");
out:
	buf_free(&sink.body);
	return r;
}

/* Headers from the caller, plus "Expect:" (no 100-continue round trip). */
static int
http_client_headers(const char *const *headers, struct curl_slist **out)
{
	struct curl_slist *list = NULL, *tmp;

	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		tmp = curl_slist_append(list, headers[i]);
		if (tmp == NULL)
			goto fail;
		list = tmp;
	}
	tmp = curl_slist_append(list, "Expect:");
	if (tmp == NULL)
		goto fail;
	*out = tmp;
	return 0;
fail:
	curl_slist_free_all(list);
	return -ENOMEM;
}

int
http_client_request(const char *method, const char *url,
		    const char *const *headers, const void *body, size_t len,
		    double timeout, size_t max_answer,
		    struct http_response *resp, char *err, size_t errlen)
{
	return http_client_request_tls(NULL, method, url, headers, body, len, timeout,
				       max_answer, resp, err, errlen);
}

/* The request's body read from a file descriptor (CURLOPT_READFUNCTION). */
static size_t
http_client_read(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	int fd = *(const int *)userdata;
	ssize_t n;

	do
		n = read(fd, ptr, size * nmemb);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

/* http_client_request_tls and http_client_request_files: body in memory, or files. */
static int
http_client_do(const struct http_client_tls *tls, const char *method, const char *url,
	       const char *const *headers, const void *body, size_t len,
	       const struct http_client_files *files, double timeout, size_t max_answer,
	       struct http_response *resp, char *err, size_t errlen)
{
	struct curl_slist *list = NULL;
	CURL *c = NULL;
	int r, body_fd = files != NULL ? files->body_fd : -1;

	memset(resp, 0, sizeof(*resp));
	r = http_client_init(err, errlen);
	if (r < 0)
		return r;
	if (method == NULL || method[0] == '\0' || strpbrk(method, " \r\n")) {
		snprintf(err, errlen, "bad http method");
		return -EINVAL;
	}
	c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "cannot create a curl handle");
		r = -ENOMEM;
		goto out;
	}
	r = http_client_headers(headers, &list);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (body_fd >= 0) {
		/* an upload: PUT unless told otherwise, the length known */
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, http_client_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &body_fd);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)files->body_len);
		if (strcmp(method, "PUT") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	if (body_fd < 0 && (body != NULL || strcmp(method, "POST") == 0)) {
		/* borrowed: body outlives the transfer (it ends before we return) */
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body != NULL ? len : 0));
	}
	r = http_client_perform(c, url, list, tls, files != NULL ? files->answer_fd : -1,
				timeout, max_answer, resp, err, errlen);
out:
	curl_slist_free_all(list);
	if (c != NULL)
		curl_easy_cleanup(c);
	return r;
}

int
http_client_request_tls(const struct http_client_tls *tls, const char *method,
			const char *url, const char *const *headers, const void *body,
			size_t len, double timeout, size_t max_answer,
			struct http_response *resp, char *err, size_t errlen)
{
	return http_client_do(tls, method, url, headers, body, len, NULL, timeout,
			      max_answer, resp, err, errlen);
}

int
http_client_request_files(const struct http_client_tls *tls, const char *method,
			  const char *url, const char *const *headers,
			  const struct http_client_files *files, double timeout,
			  size_t max_answer, struct http_response *resp, char *err,
			  size_t errlen)
{
	return http_client_do(tls, method, url, headers, NULL, 0, files, timeout,
			      max_answer, resp, err, errlen);
}

int
http_client_post_file(const char *url, const char *const *headers,
		      const char *field_path, const char *const *fields,
		      double timeout, size_t max_answer,
		      struct http_response *resp, char *err, size_t errlen)
{
	struct curl_slist *list = NULL;
	curl_mime *mime = NULL;
	curl_mimepart *part;
	CURL *c = NULL;
	int r;

	memset(resp, 0, sizeof(*resp));
	r = http_client_init(err, errlen);
	if (r < 0)
		return r;
	if (access(field_path, R_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot read %s: %s", field_path,
			 strerror(errno));
		return r;
	}
	c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "cannot create a curl handle");
		r = -ENOMEM;
		goto out;
	}
	r = http_client_headers(headers, &list);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mime = curl_mime_init(c);
	part = mime != NULL ? curl_mime_addpart(mime) : NULL;
	if (part == NULL) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	curl_mime_name(part, "file");
	if (curl_mime_filedata(part, field_path) != CURLE_OK) {
		snprintf(err, errlen, "cannot read %s", field_path);
		r = -EIO;
		goto out;
	}
	curl_mime_type(part, util_ends_with(field_path, ".zip") ?
		       "application/zip" : "application/octet-stream");
	for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2) {
		if (fields[i + 1] == NULL) {
			snprintf(err, errlen, "form field %s has no value",
				 fields[i]);
			r = -EINVAL;
			goto out;
		}
		part = curl_mime_addpart(mime);
		if (part == NULL) {
			snprintf(err, errlen, "out of memory");
			r = -ENOMEM;
			goto out;
		}
		curl_mime_name(part, fields[i]);
		curl_mime_data(part, fields[i + 1], CURL_ZERO_TERMINATED);
	}
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	r = http_client_perform(c, url, list, NULL, -1, timeout, max_answer, resp, err,
				errlen);
out:
	curl_slist_free_all(list);
	curl_mime_free(mime);
	if (c != NULL)
		curl_easy_cleanup(c);
	return r;
}

void
http_response_free(struct http_response *r)
{
	if (r == NULL)
		return;
	free(r->body);
	free(r->content_type);
	free(r->mac);
	free(r->link);
	free(r->retry_after);
	free(r->rate_remaining);
	free(r->rate_reset);
	memset(r, 0, sizeof(*r));
}
