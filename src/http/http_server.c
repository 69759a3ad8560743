/*
 * http_server.c - libmicrohttpd glue: route table, body handling, JSON
 * answers (see http_server.h).
 *
 * Threads: libmicrohttpd runs a pool of cfg->threads threads (epoll); every
 * callback here runs on one of them. A request's state (struct http_request)
 * belongs to its connection and is touched by one thread at a time; it is
 * freed by the request-completed callback.
 *
 * Bodies: JSON bodies are kept in a capped buffer. Multipart file fields are
 * streamed to a file in upload_dir and deleted after the answer unless the
 * handler kept them. Bodies over the cap are read and thrown away (so the
 * client can read the 413), up to a hard limit past which the connection is
 * closed.
 *
 * Answers: every one is queued through request_queue, which counts it for
 * GET /metrics by route pattern (never the raw path) and status.
 */
#include "http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/peer.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "http/http_tls.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_FORM_FIELD_MAX 4096
#define HTTP_DISCARD_SLACK (64ULL << 20) /* read past the cap before closing */
#define HTTP_PUBLIC_JSON_MAX (8u << 20)  /* a public JSON body (a list of URLs) */
#define HTTP_MAX_UPLOADS 4               /* file fields kept per request */

/*
 * A streamed answer (http_request_respond_stream). A stream with nothing to
 * send parks its connection (MHD_suspend_connection) on the server's list;
 * the waker thread resumes every parked one each HTTP_STREAM_WAKE seconds,
 * so a stream costs a thread only while it has something to send.
 */
#define HTTP_STREAM_WAKE 0.2
#define HTTP_STREAMS_MAX 256       /* streamed answers at once; more get 503 */
struct http_stream {
	struct http_server *srv;
	struct MHD_Connection *conn;
	http_stream_fill fill;
	void (*done)(void *);
	void *ctx;
	int parked;
	int gone;                      /* the client closed its end: stop */
	struct http_stream *next_parked;
};

struct http_server {
	struct MHD_Daemon *daemon;
	pthread_mutex_t streams_lock;
	pthread_cond_t streams_cond;
	struct http_stream *parked;
	int nstreams;                  /* streamed answers not yet over */
	pthread_t waker;
	int waker_started, stopping;
	const struct http_route *const *routes;
	void *ctx;
	char *api_token;
	char *host_names;        /* ",name,name," browsers may reach us by, beside IPs */
	char *upload_dir;
	uint64_t max_body;
	int route_metric[METRICS_ROUTES_MAX]; /* per route, in table order: its metrics id */
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	char *method;
	char *path;
	const struct http_route *route;
	int metric;              /* metrics id of the route (or of "unmatched") */
	char *params[HTTP_MAX_PARAMS];
	char media[128];

	int early_status;        /* answer this instead of calling the handler */
	char *early_error;
	uint64_t received;       /* body bytes seen */
	struct buf body;         /* JSON body */
	struct MHD_PostProcessor *pp;
	json_t *form;            /* multipart text fields */
	struct buf field;        /* the text field being read */
	char *field_name;
	struct http_upload {
		char *field;     /* form field name ("" for a raw body) */
		char *name;      /* the client's file name */
		char *path;      /* on disk, in upload_dir */
	} uploads[HTTP_MAX_UPLOADS];
	size_t nuploads;
	int upload_fd;           /* the file being written: uploads[nuploads - 1] */
	int upload_error;
	int answer_fd;           /* http_request_respond_file */
	char *answer_type;
	char *answer_text;       /* http_request_respond_text */
	const char *const *answer_headers; /* http_request_answer_headers */
	struct http_stream *answer_stream; /* http_request_respond_stream */
	size_t answer_len;
	EVP_MD_CTX *body_sha;    /* over every body byte, for the cluster MAC */
	double arrived;          /* util_now() when its headers came (the MAC's time) */
	char nonce[AUTH_NONCE_HEX]; /* of a request with a good MAC: sign the answer */
};

/* ------------------------------------------------------------ accessors */

const char *
http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *
http_request_param(const struct http_request *req, unsigned i)
{
	return i < HTTP_MAX_PARAMS ? req->params[i] : NULL;
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_request_media_type(const struct http_request *req)
{
	return req->media;
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
	if (len != NULL)
		*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

static const struct http_upload *
upload_find(const struct http_request *req, const char *field)
{
	for (size_t i = 0; i < req->nuploads; i++)
		if (strcmp(req->uploads[i].field, field) == 0)
			return &req->uploads[i];
	return NULL;
}

const char *
http_request_upload(const struct http_request *req, const char *field)
{
	const struct http_upload *u = upload_find(req, field);

	return u != NULL ? u->path : NULL;
}

const char *
http_request_upload_name(const struct http_request *req, const char *field)
{
	const struct http_upload *u = upload_find(req, field);

	return u != NULL ? u->name : NULL;
}

json_t *
http_request_form(const struct http_request *req)
{
	return req->form;
}

const char *
http_request_query(const struct http_request *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

void
http_request_respond_text(struct http_request *req, char *text, size_t len,
    const char *content_type)
{
	free(req->answer_text);
	req->answer_text = text;
	req->answer_len = len;
	free(req->answer_type);
	req->answer_type = xstrdup(content_type);
}

void
http_request_answer_headers(struct http_request *req, const char *const *headers)
{
	req->answer_headers = headers;
}

int
http_request_respond_stream(struct http_request *req, const char *content_type,
    http_stream_fill fill, void (*done)(void *), void *ctx)
{
	struct http_stream *hs;

	pthread_mutex_lock(&req->srv->streams_lock);
	if (req->srv->nstreams >= HTTP_STREAMS_MAX) {
		pthread_mutex_unlock(&req->srv->streams_lock);
		return -EBUSY;
	}
	req->srv->nstreams++;
	pthread_mutex_unlock(&req->srv->streams_lock);
	hs = xcalloc(1, sizeof(*hs));

	hs->srv = req->srv;
	hs->conn = req->conn;
	hs->fill = fill;
	hs->done = done;
	hs->ctx = ctx;
	req->answer_stream = hs;
	free(req->answer_type);
	req->answer_type = xstrdup(content_type);
	return 0;
}

/* A streamed answer is over: its context goes, and its place. */
static void
stream_over(struct http_stream *hs)
{
	struct http_server *srv = hs->srv;

	if (hs->done != NULL)
		hs->done(hs->ctx);
	free(hs);
	pthread_mutex_lock(&srv->streams_lock);
	srv->nstreams--;
	pthread_mutex_unlock(&srv->streams_lock);
}

static void
stream_unpark(struct http_stream *hs)
{
	struct http_stream **pp = &hs->srv->parked;

	while (*pp != NULL && *pp != hs)
		pp = &(*pp)->next_parked;
	if (*pp == hs)
		*pp = hs->next_parked;
	hs->parked = 0;
}

/* MHD asks for more of a streamed answer. */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *hs = cls;
	struct http_server *srv = hs->srv;
	long n;

	(void)pos;
	/*
	 * A stop before the stream's own end cuts it (no chunked end): a
	 * document sent as it is read must never look whole when it is not.
	 */
	if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (__atomic_load_n(&hs->gone, __ATOMIC_ACQUIRE))
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = hs->fill(hs->ctx, buf, max);
	if (n == HTTP_STREAM_FAILED)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return (ssize_t)n;
	pthread_mutex_lock(&srv->streams_lock);
	if (srv->stopping) {
		pthread_mutex_unlock(&srv->streams_lock);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	hs->parked = 1;
	hs->next_parked = srv->parked;
	srv->parked = hs;
	MHD_suspend_connection(hs->conn);
	pthread_mutex_unlock(&srv->streams_lock);
	return 0;
}

static void
stream_free(void *cls)
{
	struct http_stream *hs = cls;

	pthread_mutex_lock(&hs->srv->streams_lock);
	if (hs->parked)
		stream_unpark(hs);
	pthread_mutex_unlock(&hs->srv->streams_lock);
	stream_over(hs);
}

/*
 * Has the client of a parked stream gone? A suspended connection's socket
 * is not watched, and a stream with nothing to say never writes to it: look
 * for the end of its input.
 */
static int
stream_client_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	ssize_t n;

	if (ci == NULL)
		return 0;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Resume every parked stream; all of them, for good, when stopping. */
static void
stream_wake_all(struct http_server *srv)
{
	while (srv->parked != NULL) {
		struct http_stream *hs = srv->parked;

		srv->parked = hs->next_parked;
		hs->parked = 0;
		if (stream_client_gone(hs->conn))
			__atomic_store_n(&hs->gone, 1, __ATOMIC_RELEASE);
		MHD_resume_connection(hs->conn);
	}
}

static void *
stream_waker(void *arg)
{
	struct http_server *srv = arg;

	util_thread_name("stream");
	pthread_mutex_lock(&srv->streams_lock);
	while (!srv->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(HTTP_STREAM_WAKE * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->streams_cond, &srv->streams_lock, &ts);
		stream_wake_all(srv);
	}
	pthread_mutex_unlock(&srv->streams_lock);
	return NULL;
}

/* Every answer goes out here: counted by route and status, then queued. */
static enum MHD_Result
request_queue(struct http_request *req, unsigned int status, struct MHD_Response *resp)
{
	metrics_http_count(req->metric, (int)status);
	return MHD_queue_response(req->conn, status, resp);
}

static enum MHD_Result
respond_stream(struct http_request *req)
{
	struct http_stream *hs = req->answer_stream;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	req->answer_stream = NULL;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, hs,
	    stream_free);
	if (resp == NULL) {
		stream_over(hs);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->answer_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = request_queue(req, 200, resp);
	MHD_destroy_response(resp);
	log_debug("http: %s %s -> 200 (stream)", req->method, req->path);
	return ret;
}

int
http_request_respond_file(struct http_request *req, const char *path,
    const char *content_type)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (req->answer_fd >= 0)
		close(req->answer_fd);
	req->answer_fd = fd;
	free(req->answer_type);
	req->answer_type = xstrdup(content_type);
	return 0;
}

json_t *
http_error(int *status, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*status = code;
	return json_pack("{s:s}", "error", msg);
}

/* -------------------------------------------------------------- routing */

/* Match path against pattern; fills params. 1 on a match. */
static int
route_match(const char *pattern, const char *path, char **params)
{
	unsigned np = 0;

	while (*pattern && *path) {
		if (*pattern == '*') {
			const char *end = strchr(path, '/');
			size_t n = end ? (size_t)(end - path) : strlen(path);
			if (n == 0 || np >= HTTP_MAX_PARAMS)
				return 0;
			params[np] = strndup(path, n);
			if (params[np] == NULL)
				abort();
			np++;
			path += n;
			pattern++;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	/* A trailing slash is the same resource. */
	if (*pattern == '\0' && strcmp(path, "/") == 0)
		return 1;
	return *pattern == '\0' && *path == '\0';
}

static void
params_free(char **params)
{
	for (unsigned i = 0; i < HTTP_MAX_PARAMS; i++) {
		free(params[i]);
		params[i] = NULL;
	}
}

/* Find the route (*index: its place in table order); *path_known tells a 405 from a 404. */
static const struct http_route *
route_find(struct http_server *srv, const char *method, const char *path, char **params,
    int *path_known, size_t *index)
{
	size_t k = 0;

	*path_known = 0;
	for (const struct http_route *const *t = srv->routes; *t != NULL; t++) {
		for (const struct http_route *r = *t; r->pattern != NULL; r++, k++) {
			if (!route_match(r->pattern, path, params)) {
				params_free(params);
				continue;
			}
			*path_known = 1;
			if (strcmp(r->method, method) == 0) {
				*index = k;
				return r;
			}
			params_free(params);
		}
	}
	return NULL;
}

/* Give every route its metrics id once, so that counting a request is an atomic add. */
static void
routes_register(struct http_server *srv)
{
	size_t k = 0;

	for (const struct http_route *const *t = srv->routes; *t != NULL; t++)
		for (const struct http_route *r = *t; r->pattern != NULL; r++, k++)
			if (k < METRICS_ROUTES_MAX)
				srv->route_metric[k] = metrics_http_route(r->method, r->pattern);
}

/* ------------------------------------------------------------- answers */

/* Sign a file answer over the file's bytes (read with pread: the offset stays). */
static void
sign_file_answer(struct http_request *req, struct MHD_Response *resp, int fd)
{
	char sha[SHA256_HEX_LEN], mac[AUTH_MAC_HEX];

	if (util_sha256_fd_hex(fd, sha) == 0 &&
	    auth_answer_mac_with_sha(200, req->nonce, sha, mac) == 0)
		MHD_add_response_header(resp, "X-Meshtest-Mac", mac);
}

/* Sign the answer to a request that carried a good cluster MAC. */
static void
sign_answer(struct http_request *req, struct MHD_Response *resp, int status,
    const void *body, size_t len)
{
	char mac[AUTH_MAC_HEX];

	if (req->nonce[0] != '\0' && auth_sign_answer(status, req->nonce, body, len, mac) == 0)
		MHD_add_response_header(resp, "X-Meshtest-Mac", mac);
}

static enum MHD_Result
respond_json(struct http_request *req, int status, json_t *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = NULL;
	size_t len = 0;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(body);
	}
	if (text == NULL && body != NULL) {
		status = 500;
		text = xstrdup("{\"error\": \"cannot encode the answer\"}");
	}
	if (text != NULL) {
		len = strlen(text);
		resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	if (text != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	sign_answer(req, resp, status, text ? text : "", len);
	ret = request_queue(req, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
set_early(struct http_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_early(struct http_request *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (req->early_status != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req->early_status = status;
	req->early_error = xstrdup(msg);
}

/* -------------------------------------------------------------- uploads */

static enum MHD_Result
post_iterator(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
    const char *content_type, const char *transfer_encoding, const char *data,
    uint64_t off, size_t size)
{
	struct http_request *req = cls;

	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	if (key == NULL)
		return MHD_YES;
	if (filename != NULL) {
		/*
		 * A file field, streamed to disk: a new field name starts a new file
		 * (at most HTTP_MAX_UPLOADS; a repeated name keeps its first file).
		 */
		struct http_upload *cur = req->nuploads > 0 ? &req->uploads[req->nuploads - 1] : NULL;

		if (cur == NULL || strcmp(cur->field, key) != 0) {
			char id[UUID_STR_LEN];

			if (upload_find(req, key) != NULL || req->nuploads == HTTP_MAX_UPLOADS)
				return MHD_YES;
			if (req->upload_fd >= 0) {
				close(req->upload_fd);
				req->upload_fd = -1;
			}
			util_uuid4(id);
			cur = &req->uploads[req->nuploads++];
			cur->field = xstrdup(key);
			cur->name = xstrdup(filename);
			cur->path = xasprintf("%s/%s.upload", req->srv->upload_dir, id);
			req->upload_fd = open(cur->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (req->upload_fd < 0) {
				log_error("http: cannot create %s: %s", cur->path, strerror(errno));
				req->upload_error = 1;
				return MHD_NO;
			}
		}
		(void)off;
		for (size_t done = 0; done < size;) {
			ssize_t w = write(req->upload_fd, data + done, size - done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				log_error("http: cannot write an upload: %s", strerror(errno));
				req->upload_error = 1;
				return MHD_NO;
			}
			done += (size_t)w;
		}
		return MHD_YES;
	}
	/* A text field, possibly in several pieces. */
	if (req->field_name == NULL || strcmp(req->field_name, key) != 0) {
		if (req->field_name != NULL)
			json_object_set_new(req->form, req->field_name,
			    json_stringn(req->field.data ? req->field.data : "", req->field.len));
		free(req->field_name);
		req->field_name = xstrdup(key);
		buf_reset(&req->field);
	}
	if (buf_append(&req->field, data, size) < 0) {
		set_early(req, 400, "form field '%s' is longer than %d bytes", key,
		    HTTP_FORM_FIELD_MAX);
		return MHD_NO;
	}
	return MHD_YES;
}

static void
form_finish(struct http_request *req)
{
	if (req->field_name != NULL) {
		json_object_set_new(req->form, req->field_name,
		    json_stringn(req->field.data ? req->field.data : "", req->field.len));
		free(req->field_name);
		req->field_name = NULL;
	}
	if (req->upload_fd >= 0) {
		if (fsync(req->upload_fd) < 0)
			req->upload_error = 1;
		close(req->upload_fd);
		req->upload_fd = -1;
	}
}

/* -------------------------------------------------------------- request */

static int
token_ok(const struct http_server *srv, const char *auth)
{
	size_t n;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	auth += 7;
	n = strlen(srv->api_token);
	return strlen(auth) == n && CRYPTO_memcmp(auth, srv->api_token, n) == 0;
}

/*
 * Did another web site make the browser send this request? Sec-Fetch-Site
 * (sent by every current browser) must say the request came from a page of
 * this node or from no page at all: "same-site" is refused too, since a page
 * on another port of the same host is same-site. Without it, an Origin must
 * name this very host and port. Requests with neither (curl, the CLI, other
 * programs) are not a browser's and pass.
 */
static int
cross_site(struct MHD_Connection *conn, const char **why)
{
	const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);

	if (site != NULL) {
		*why = "Sec-Fetch-Site";
		return strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0;
	}
	if (origin == NULL)
		return 0;
	*why = "Origin";
	if (strncasecmp(origin, "http://", 7) == 0)
		origin += 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		origin += 8;
	else
		return 1;               /* "null" (a sandboxed or file page) or unknown */
	return host == NULL || strcasecmp(origin, host) != 0;
}

/*
 * May a browser reach this node by the name in Host? A page whose name was
 * made to resolve to this node (DNS rebinding) would otherwise pass as
 * same-origin: its requests name the page's host. IP addresses (v4, or v6 in
 * brackets), localhost and the names the node was told (its advertised
 * address, --allowed-hosts) are fine.
 */
static int
host_allowed(const struct http_server *srv, const char *host)
{
	char name[256], *colon;
	size_t n;
	int dotted = 1;

	if (host == NULL || *host == '\0')
		return 0;
	if (host[0] == '[')
		return strchr(host, ']') != NULL;
	snprintf(name, sizeof(name), "%s", host);
	if ((colon = strrchr(name, ':')) != NULL)
		*colon = '\0';
	if (name[0] == '\0')
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			dotted = 0;
	if (dotted || strcasecmp(name, "localhost") == 0)
		return 1;
	n = strlen(name);
	for (const char *p = srv->host_names; p != NULL && (p = strcasestr(p, name)) != NULL; p++)
		if (p > srv->host_names && p[-1] == ',' && p[n] == ',')
			return 1;
	return 0;
}

/* ",a,b," from the advertised address's host and a comma-separated list. */
static char *
host_names_of(const char *advertise, const char *more)
{
	char *adv = xstrdup(advertise ? advertise : ""), *colon = strrchr(adv, ':'), *out;

	if (colon != NULL && adv[0] != '[')
		*colon = '\0';
	out = xasprintf(",%s,%s,", adv, more ? more : "");
	for (char *p = out; *p; p++)
		if (*p == ' ')
			*p = ',';
	free(adv);
	return out;
}

/* First call for a request: route it and check what can be checked now. */
static void
request_begin(struct http_request *req)
{
	struct http_server *srv = req->srv;
	const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	int known = 0;
	size_t i, index = 0;

	if (ct != NULL) {
		for (i = 0; ct[i] && ct[i] != ';' && ct[i] != ' ' && i + 1 < sizeof(req->media); i++)
			req->media[i] = (char)(ct[i] >= 'A' && ct[i] <= 'Z' ? ct[i] + 32 : ct[i]);
		req->media[i] = '\0';
	}
	req->route = route_find(srv, req->method, req->path, req->params, &known, &index);
	/* Labelled by the pattern, never the path: the label set stays bounded. */
	req->metric = req->route != NULL && index < METRICS_ROUTES_MAX ? srv->route_metric[index] :
	    metrics_http_unmatched(req->method);
	if (req->route == NULL) {
		if (known)
			set_early(req, 405, "method %s is not allowed on %s", req->method, req->path);
		else
			set_early(req, 404, "not found");
		return;
	}
	/* With TLS an internal route answers only a peer: a client certificate of the CA. */
	if ((req->route->flags & HTTP_ROUTE_INTERNAL) && http_tls_enabled()) {
		char why[300];

		if (http_tls_peer_check(req->conn, why, sizeof(why)) < 0) {
			log_warn("http: %s %s refused: %s", req->method, req->path, why);
			set_early(req, 403, "refused: %s", why);
			return;
		}
	}
	/* An internal request without a MAC is refused before its body is read. */
	if ((req->route->flags & HTTP_ROUTE_INTERNAL) && auth_enabled() &&
	    MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Meshtest-Mac") == NULL) {
		log_warn("http: %s %s refused: no cluster MAC", req->method, req->path);
		set_early(req, 401, "refused: no cluster MAC");
		return;
	}
	if ((MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Sec-Fetch-Site") != NULL ||
	    MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin") != NULL) &&
	    !host_allowed(srv, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_HOST))) {
		log_warn("http: %s %s refused: a browser reached this node by a name it does not"
		    " have (%s)", req->method, req->path, MHD_lookup_connection_value(req->conn,
		    MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST));
		set_early(req, 421, "this node is not known by that name: use its address, or"
		    " add the name to --allowed-hosts");
		return;
	}
	if (req->route->flags & HTTP_ROUTE_CHANGE) {
		const char *why = "";
		if (cross_site(req->conn, &why)) {
			log_warn("http: %s %s refused: sent from another site (%s)", req->method,
				 req->path, why);
			set_early(req, 403, "refused: a request that changes state must not come from"
			    " another web site (%s)", why);
			return;
		}
	}
	if ((req->route->flags & HTTP_ROUTE_TOKEN) && srv->api_token != NULL &&
	    !token_ok(srv, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION))) {
		log_warn("http: %s %s refused: missing or wrong API token", req->method, req->path);
		set_early(req, 401, "missing or wrong API token: send 'Authorization: Bearer <token>'");
		return;
	}
	if (cl != NULL) {
		char *end = NULL;
		unsigned long long n = strtoull(cl, &end, 10);
		if (end != NULL && *end == '\0' && n > srv->max_body) {
			set_early(req, 413, "request body of %llu bytes is larger than the limit"
			    " of %llu bytes", n, (unsigned long long)srv->max_body);
			return;
		}
	}
	/* Public JSON bodies are small; replicated documents may be large. */
	if (!(req->route->flags & HTTP_ROUTE_INTERNAL) && req->body.max > HTTP_PUBLIC_JSON_MAX)
		req->body.max = HTTP_PUBLIC_JSON_MAX;
	switch (req->route->body) {
	case HTTP_BODY_NONE:
		break;
	case HTTP_BODY_JSON:
		if (strcmp(req->media, "application/json") != 0)
			set_early(req, 415, "send the body as application/json");
		break;
	case HTTP_BODY_RAW: {
		char id[UUID_STR_LEN];
		util_uuid4(id);
		req->uploads[0].field = xstrdup("");
		req->uploads[0].name = xstrdup("");
		req->uploads[0].path = xasprintf("%s/%s.upload", srv->upload_dir, id);
		req->nuploads = 1;
		req->upload_fd = open(req->uploads[0].path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (req->upload_fd < 0)
			set_early(req, 500, "cannot store the body");
		break;
	}
	case HTTP_BODY_SUBMIT:
		if (strcmp(req->media, "multipart/form-data") == 0) {
			req->pp = MHD_create_post_processor(req->conn, 64 * 1024, post_iterator, req);
			if (req->pp == NULL)
				set_early(req, 400, "malformed multipart/form-data request (no boundary?)");
		} else if (strcmp(req->media, "application/json") != 0) {
			set_early(req, 415, "send application/json (git URLs) or multipart/form-data"
			    " with a 'file' field (a ZIP), not '%s'",
			    req->media[0] ? req->media : "no content type");
		}
		break;
	}
}

/* Take a piece of the body. Returns 0, or -1 to close the connection. */
static int
request_body(struct http_request *req, const char *data, size_t size)
{
	struct http_server *srv = req->srv;

	req->received += size;
	if (req->body_sha != NULL)
		EVP_DigestUpdate(req->body_sha, data, size);
	if (req->early_status != 0) {
		/* Read and drop, so the client sees the answer; not forever. */
		return req->received > srv->max_body + HTTP_DISCARD_SLACK ? -1 : 0;
	}
	if (req->received > srv->max_body) {
		set_early(req, 413, "request body is larger than the limit of %llu bytes",
		    (unsigned long long)srv->max_body);
		return 0;
	}
	if (req->route->body == HTTP_BODY_NONE) {
		set_early(req, 413, "%s %s takes no body", req->method, req->path);
		return 0;
	}
	if (req->route->body == HTTP_BODY_RAW) {
		for (size_t done = 0; done < size;) {
			ssize_t w = write(req->upload_fd, data + done, size - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				set_early(req, 500, "cannot store the body");
				return 0;
			}
			done += (size_t)w;
		}
		return 0;
	}
	if (req->pp != NULL) {
		if (MHD_post_process(req->pp, data, size) != MHD_YES)
			set_early(req, req->upload_error ? 500 : 400, req->upload_error ?
			    "cannot store the upload" : "malformed multipart/form-data body");
		return 0;
	}
	if (buf_append(&req->body, data, size) < 0)
		set_early(req, 413, "request body is larger than the limit of %llu bytes",
		    (unsigned long long)srv->max_body);
	return 0;
}

/*
 * Internal routes need a good cluster MAC (401 otherwise, logged); any
 * request with a good one gets a signed answer.
 */
static void
request_check_mac(struct http_request *req)
{
	const char *mac = http_request_header(req, "X-Meshtest-Mac");
	const char *t = http_request_header(req, "X-Meshtest-Time");
	const char *nonce = http_request_header(req, "X-Meshtest-Nonce");
	int internal = req->route != NULL && (req->route->flags & HTTP_ROUTE_INTERNAL);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char sha[SHA256_HEX_LEN], why[160];

	if (!internal && mac == NULL)
		return;
	EVP_DigestFinal_ex(req->body_sha, md, &mdlen);
	util_hex(md, 32, sha);
	/* fresh when it arrived: a big body (a blob) may take longer than the window */
	if (auth_check_request(req->method, req->path, sha, t, nonce, mac, req->arrived, why,
	    sizeof(why)) == 0) {
		snprintf(req->nonce, sizeof(req->nonce), "%s", nonce);
		return;
	}
	if (internal) {
		log_warn("http: %s %s refused: %s", req->method, req->path, why);
		set_early(req, 401, "refused: %s", why);
	}
}


/*
 * The uploads the handler did not keep (what it keeps, it moves away with a
 * rename) go before the answer does: a client that hears a refusal finds
 * nothing of its upload left. request_completed unlinks them again, harmless.
 */
static void
request_drop_uploads(struct http_request *req)
{
	for (size_t i = 0; i < req->nuploads; i++)
		if (req->uploads[i].path != NULL)
			(void)unlink(req->uploads[i].path);
}
static enum MHD_Result
request_finish(struct http_request *req)
{
	int status = 200;
	json_t *body;

	if ((req->pp != NULL || (req->route != NULL && req->route->body == HTTP_BODY_RAW)) &&
	    req->early_status == 0) {
		form_finish(req);
		if (req->upload_error)
			set_early(req, 500, "cannot store the upload");
	}
	if (req->early_status == 0 && req->route != NULL &&
	    (req->route->flags & HTTP_ROUTE_INTERNAL)) {
		char why[200];

		if (peer_protocol_check(http_request_header(req, PEER_PROTOCOL_HEADER), why,
		    sizeof(why)) < 0) {
			log_warn("http: %s %s refused: %s", req->method, req->path, why);
			set_early(req, 409, "%s", why);
		}
	}
	if (req->early_status == 0 && auth_enabled())
		request_check_mac(req);
	if (req->early_status != 0) {
		log_info("http: %s %s -> %d %s", req->method, req->path, req->early_status,
		    req->early_error);
		request_drop_uploads(req);
		return respond_json(req, req->early_status,
		    json_pack("{s:s}", "error", req->early_error));
	}
	body = req->route->fn(req, req->srv->ctx, &status);
	request_drop_uploads(req);
	if (req->answer_stream != NULL && body == NULL && status == 200)
		return respond_stream(req);
	if (req->answer_text != NULL && body == NULL && status == 200) {
		struct MHD_Response *resp;
		enum MHD_Result ret;

		resp = MHD_create_response_from_buffer(req->answer_len, req->answer_text,
		    MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			return MHD_NO;
		sign_answer(req, resp, 200, req->answer_text, req->answer_len);
		req->answer_text = NULL;   /* the response owns it now */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->answer_type);
		for (const char *const *h = req->answer_headers; h != NULL && h[0] != NULL; h += 2)
			MHD_add_response_header(resp, h[0], h[1]);
		ret = request_queue(req, 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (req->answer_fd >= 0 && body == NULL && status == 200) {
		struct stat st;
		struct MHD_Response *resp = NULL;
		enum MHD_Result ret = MHD_NO;

		int fd_for_mac = req->answer_fd;

		if (fstat(req->answer_fd, &st) == 0)
			resp = MHD_create_response_from_fd((uint64_t)st.st_size, req->answer_fd);
		if (resp == NULL)
			return respond_json(req, 500, json_pack("{s:s}", "error",
			    "cannot send the file"));
		if (req->nonce[0] != '\0')
			sign_file_answer(req, resp, fd_for_mac);
		req->answer_fd = -1; /* the response owns it now */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->answer_type);
		ret = request_queue(req, 200, resp);
		MHD_destroy_response(resp);
		log_debug("http: %s %s -> 200 (file)", req->method, req->path);
		return ret;
	}
	if (status >= 400) {
		log_info("http: %s %s -> %d %s", req->method, req->path, status,
		    json_string_value(json_object_get(body, "error")));
	} else {
		log_debug("http: %s %s -> %d", req->method, req->path, status);
	}
	return respond_json(req, status, body);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	(void)version;
	if (req == NULL) {
		req = xcalloc(1, sizeof(*req));
		req->srv = srv;
		req->conn = conn;
		req->method = xstrdup(method);
		req->path = xstrdup(url);
		req->arrived = util_now();
		req->upload_fd = -1;
		req->answer_fd = -1;
		req->body_sha = EVP_MD_CTX_new();
		if (req->body_sha == NULL)
			abort();
		EVP_DigestInit_ex(req->body_sha, EVP_sha256(), NULL);
		req->form = json_object();
		buf_init(&req->body, srv->max_body);
		buf_init(&req->field, HTTP_FORM_FIELD_MAX);
		*con_cls = req;
		request_begin(req);
		/* Hopeless bodies are refused before they are sent. */
		if (req->early_status == 413 || req->early_status == 401) {
			const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
			    MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl != NULL && strtoull(cl, NULL, 10) > srv->max_body + HTTP_DISCARD_SLACK)
				return request_finish(req);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (request_body(req, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return request_finish(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_request *req = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (req == NULL)
		return;
	if (req->pp != NULL)
		MHD_destroy_post_processor(req->pp);
	if (req->upload_fd >= 0)
		close(req->upload_fd);
	if (req->answer_fd >= 0)
		close(req->answer_fd);
	free(req->answer_type);
	free(req->answer_text);
	if (req->answer_stream != NULL)          /* never answered */
		stream_over(req->answer_stream);
	EVP_MD_CTX_free(req->body_sha);
	for (size_t i = 0; i < req->nuploads; i++) {
		/* What a handler kept, it moved away (rename); the rest goes. */
		unlink(req->uploads[i].path);
		free(req->uploads[i].field);
		free(req->uploads[i].name);
		free(req->uploads[i].path);
	}
	params_free(req->params);
	json_decref(req->form);
	buf_free(&req->body);
	buf_free(&req->field);
	free(req->field_name);
	free(req->early_error);
	free(req->method);
	free(req->path);
	free(req);
	*con_cls = NULL;
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!http_tls_server_log(msg))
		log_warn("http: %s", msg);
}

int
http_server_start(const struct http_server_config *cfg,
    const struct http_route *const *routes, void *ctx, struct http_server **out,
    char *err, size_t errlen)
{
	struct http_server *srv;
	struct sockaddr_in sa;
	struct MHD_OptionItem tls_opts[HTTP_TLS_MHD_OPTIONS + 1];
	char host[256];
	int port;

	if (config_split_hostport(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "bad listen address '%s'", cfg->listen);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		struct addrinfo hints = { .ai_family = AF_INET }, *res = NULL;
		if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
			snprintf(err, errlen, "cannot resolve listen host '%s'", host);
			return -EINVAL;
		}
		sa.sin_addr = ((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
	}
	srv = xcalloc(1, sizeof(*srv));
	srv->routes = routes;
	routes_register(srv);
	srv->ctx = ctx;
	srv->max_body = cfg->max_body;
	srv->api_token = cfg->api_token ? xstrdup(cfg->api_token) : NULL;
	srv->upload_dir = xstrdup(cfg->upload_dir);
	srv->host_names = host_names_of(cfg->advertise, cfg->allowed_hosts);
	pthread_mutex_init(&srv->streams_lock, NULL);
	pthread_cond_init(&srv->streams_cond, NULL);
	http_tls_server_options(tls_opts);
	srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | http_tls_server_flags(),
	    (uint16_t)port, NULL, NULL, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : 4,
	    MHD_OPTION_CONNECTION_LIMIT, 512,
	    MHD_OPTION_CONNECTION_TIMEOUT, 60,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_ARRAY, tls_opts,
	    MHD_OPTION_END);
	if (srv->daemon == NULL) {
		snprintf(err, errlen, "cannot listen on %s (address in use or not local?)",
		    cfg->listen);
		pthread_mutex_destroy(&srv->streams_lock);
		pthread_cond_destroy(&srv->streams_cond);
		free(srv->api_token);
		free(srv->upload_dir);
		free(srv->host_names);
		free(srv);
		return -EADDRINUSE;
	}
	srv->waker_started = pthread_create(&srv->waker, NULL, stream_waker, srv) == 0;
	*out = srv;
	return 0;
}

void
http_server_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->streams_lock);
	srv->stopping = 1;
	stream_wake_all(srv);
	pthread_cond_broadcast(&srv->streams_cond);
	pthread_mutex_unlock(&srv->streams_lock);
	if (srv->waker_started)
		pthread_join(srv->waker, NULL);
	MHD_stop_daemon(srv->daemon);
	pthread_mutex_destroy(&srv->streams_lock);
	pthread_cond_destroy(&srv->streams_cond);
	if (srv->api_token != NULL)
		OPENSSL_cleanse(srv->api_token, strlen(srv->api_token));
	free(srv->api_token);
	free(srv->upload_dir);
	free(srv->host_names);
	free(srv);
}
