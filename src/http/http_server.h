/*
 * http_server.h - the node's HTTP server: libmicrohttpd, a route table, JSON
 * answers, capped bodies and uploads streamed to disk.
 *
 * Each API file exports a route table; main.c hands them all to
 * http_server_start. A handler runs on one of the server's threads with a
 * request whose body has been received completely (JSON bodies in memory,
 * multipart file fields on disk), and answers with a status and a JSON value.
 */
#ifndef MESHTEST_HTTP_SERVER_H
#define MESHTEST_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;
struct http_server;

/* How a route takes its body. */
enum http_body {
	HTTP_BODY_NONE,     /* any body is refused with 413 */
	HTTP_BODY_JSON,     /* application/json, kept in memory (capped) */
	HTTP_BODY_SUBMIT,   /* application/json or multipart/form-data (file field to disk) */
	HTTP_BODY_RAW,      /* any bytes, streamed to a file: http_request_upload(req, "") */
};

/* Route flags. */
#define HTTP_ROUTE_TOKEN 0x1     /* evaluation data: needs the API token when the node has one */
#define HTTP_ROUTE_INTERNAL 0x2  /* node to node: needs the cluster MAC when there is a key */
#define HTTP_ROUTE_CHANGE 0x4    /* changes state: refused from another site (Origin, Sec-Fetch-Site) */
/* A submission, a cancel, a delete: token and same site. */
#define HTTP_ROUTE_ACT (HTTP_ROUTE_TOKEN | HTTP_ROUTE_CHANGE)

/*
 * A handler fills *status and returns a JSON body (new reference) or NULL for
 * an empty one. It may use http_error() for error answers.
 */
typedef json_t *(*http_handler)(struct http_request *req, void *ctx, int *status);

struct http_route {
	const char *method;     /* "GET", "POST" */
	const char *pattern;    /* "/evaluation/ *" without the space: '*' is one segment */
	enum http_body body;
	int flags;
	http_handler fn;
};

struct http_server_config {
	const char *listen;          /* host:port */
	const char *api_token;       /* NULL: submitting needs no token */
	const char *advertise;       /* host:port: its host is a name browsers may use */
	const char *allowed_hosts;   /* more such names, comma-separated (or NULL) */
	uint64_t max_body;           /* bytes: JSON bodies and uploads */
	const char *upload_dir;      /* where multipart file fields are written */
	unsigned threads;            /* worker threads */
};

/*
 * Start serving. routes is a NULL-terminated array of route tables (each
 * ending with a zeroed row); ctx is passed to every handler. Returns 0 or a
 * negative errno with a message in err.
 */
int http_server_start(const struct http_server_config *cfg,
    const struct http_route *const *routes, void *ctx, struct http_server **out,
    char *err, size_t errlen);
void http_server_stop(struct http_server *srv);

/* Request accessors; pointers live as long as the request. */
const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
/* The i-th '*' segment of the route pattern, URL-decoded. */
const char *http_request_param(const struct http_request *req, unsigned i);
const char *http_request_header(const struct http_request *req, const char *name);
/* Media type without parameters, lowercased ("application/json"), or "". */
const char *http_request_media_type(const struct http_request *req);
const char *http_request_body(const struct http_request *req, size_t *len);
/*
 * A file field of the upload (or "" for a raw body): its path on disk, or
 * NULL. A handler that keeps it renames it away; whatever is left at that
 * path is deleted after the answer.
 */
const char *http_request_upload(const struct http_request *req, const char *field);
/* The client's file name of the uploaded field, or NULL. */
const char *http_request_upload_name(const struct http_request *req, const char *field);
/* Text fields of a multipart form, as a JSON object of strings. */
json_t *http_request_form(const struct http_request *req);
/* Query string argument, or NULL. */
const char *http_request_query(const struct http_request *req, const char *key);

/*
 * Answer with text (len bytes, malloc'ed; the request takes it) of
 * content_type instead of a JSON value: for answers kept serialized. The
 * handler then returns NULL with *status 200.
 */
void http_request_respond_text(struct http_request *req, char *text, size_t len,
    const char *content_type);
/*
 * Extra headers of a text answer: name, value, name, value, ..., NULL; the
 * list must outlive the request (a static table).
 */
void http_request_answer_headers(struct http_request *req, const char *const *headers);

/*
 * A streamed answer (Server-Sent Events, or a document read as it is sent):
 * fill writes up to max bytes into buf and returns how many, 0 when it has
 * nothing now (the connection then waits, without a thread, and fill is
 * asked again within 0.2 s), -1 at the end, or HTTP_STREAM_FAILED when the
 * answer cannot be finished (the connection is closed without the chunked
 * encoding's end: the client sees a cut, not a short document). done(ctx)
 * runs once when the answer is over (sent, cut off, or never sent). The
 * handler then returns NULL with *status 200.
 */
#define HTTP_STREAM_FAILED (-2L)
typedef long (*http_stream_fill)(void *ctx, char *buf, size_t max);
/* What a fill returns for a reader's read(2)-like n: bytes, 0 at the end, < 0 an error. */
static inline long
http_stream_from_read(long n)
{
	return n > 0 ? n : n == 0 ? -1 : HTTP_STREAM_FAILED;
}
/* -EBUSY (nothing taken: done is not called) when too many are open already. */
int http_request_respond_stream(struct http_request *req, const char *content_type,
    http_stream_fill fill, void (*done)(void *), void *ctx);

/*
 * Answer with the file at path instead of JSON (the handler then returns
 * NULL with *status 200). The file is opened now; a missing file is -ENOENT.
 */
int http_request_respond_file(struct http_request *req, const char *path,
    const char *content_type);

/* {"error": "<message>"} and the status, for handlers. */
json_t *http_error(int *status, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
