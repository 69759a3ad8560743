/*
 * api_events.c - GET /evaluation/<id>/events: an evaluation's events as
 * Server-Sent Events, from any node, until it is over.
 *
 *   id: 12            event: module_claimed   data: {"project", "module", "node"}
 *   id: 13:1 ... 13:n event: test_finished    data: {"project", "module", "nodeid",
 *                                                    "outcome", "duration", "message"}
 *   id: 13            event: module_done      data: {"project", "module", "node",
 *                                                    "outcome", "passed", ...}
 *   id: 14            event: project_error    data: {"project", "error"}
 *   id: end           event: evaluation_done  data: {"status", "passed", ...}
 *
 * A client that reconnects with Last-Event-ID (or ?last_event_id=, for
 * clients that cannot set headers) gets what follows that event and nothing
 * twice; after "end" the answer is 204, which tells an EventSource to stop.
 * A deleted evaluation's stream is 410.
 * The events are this node's log of the rows as they reached it (store.c),
 * so ids are per node: resume on the node that sent them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/buf.h"
#include "core/util.h"
#include "engine/engine.h"
#include "export/export.h"
#include "store/store.h"

#define EVENTS_PAGE 16             /* rows of the event log read at once */
#define EVENTS_KEEPALIVE 15.0      /* seconds between comments on a quiet stream */
#define EVENTS_BUF_MAX (64u << 20) /* one page of events, formatted */
#define EVENTS_ID_MAX 9007199254740991LL /* ids stay exact in a JSON number */

struct events_stream {
	struct store *st;
	char id[37];
	long long after;           /* the last event sent ... */
	int after_k;               /* ... and the last test of it (module_done) */
	int ended;                 /* evaluation_done is in out */
	struct buf out;            /* formatted, not yet sent */
	size_t sent;
	double last_out;           /* util_mono() of the last bytes */
};

/* Queue one event; -ENOSPC when the page is full (nothing queued). */
static int
events_put(struct events_stream *es, const char *id, const char *kind, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	int r = buf_printf(&es->out, "id: %s\nevent: %s\ndata: %s\n\n", id, kind,
	    text ? text : "{}");

	free(text);
	return r;
}

/*
 * An event id, "<seq>" or "<seq>:<k>", into *seq and *k (0 without one);
 * -EINVAL for anything else (a client's Last-Event-ID is outside input).
 */
static int
events_parse_id(const char *id, long long *seq, int *k)
{
	char *end = NULL;
	long long v;
	long t = 0;

	errno = 0;
	v = strtoll(id, &end, 10);
	if (errno != 0 || end == id || v < 0 || v > EVENTS_ID_MAX)
		return -EINVAL;
	if (*end == ':') {
		const char *p = end + 1;
		t = strtol(p, &end, 10);
		if (errno != 0 || end == p || t < 1 || t > 1000000000L)
			return -EINVAL;
	}
	if (*end != '\0')
		return -EINVAL;
	*seq = v;
	*k = (int)t;
	return 0;
}

/* What a client sees of a test's failure message: the line that says what failed. */
static void
events_shape(json_t *ev)
{
	json_t *data = json_object_get(ev, "data");
	const char *msg = json_string_value(json_object_get(data, "message"));
	char line[EXPORT_LINE_MAX + 1];

	if (strcmp(json_string_value(json_object_get(ev, "event")), "test_finished") != 0)
		return;
	if (msg == NULL || *msg == '\0') {
		json_object_set_new(data, "message", json_null());
		return;
	}
	export_message_line(msg, line, sizeof(line));
	json_object_set_new(data, "message", json_string(line));
}

/*
 * Queue what the store has after the mark, as far as the page holds; the
 * mark moves past what was queued only. How many events were queued.
 */
static size_t
events_fetch(struct events_stream *es)
{
	json_t *evs = store_events_after(es->st, es->id, es->after, es->after_k, EVENTS_PAGE);
	json_t *ev;
	size_t i, n = 0;

	json_array_foreach(evs, i, ev) {
		const char *id = json_string_value(json_object_get(ev, "id"));

		events_shape(ev);
		if (events_put(es, id, json_string_value(json_object_get(ev, "event")),
		    json_object_get(ev, "data")) < 0)
			break;                /* the rest comes with the next page */
		(void)events_parse_id(id, &es->after, &es->after_k);
		n++;
	}
	json_decref(evs);
	return n;
}

/* The evaluation's end: its summary from the status document. */
static void
events_end(struct events_stream *es)
{
	static const char *const keep[] = { "status", "passed", "failed", "skipped",
		"executed", "percent_passed", "percent_failed", "nota_final", "elapsed_seconds" };
	size_t len = 0;
	char *text = store_eval_status_text(es->st, es->id, util_now(), &len);
	json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL, *sum = json_object();

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		json_t *v = json_object_get(doc, keep[i]);
		if (v != NULL)
			json_object_set(sum, keep[i], v);
	}
	events_put(es, "end", "evaluation_done", sum);
	json_decref(sum);
	json_decref(doc);
	free(text);
	es->ended = 1;
}

static long
events_fill(void *ctx, char *out, size_t max)
{
	struct events_stream *es = ctx;
	size_t n;

	if (es->sent == es->out.len) {
		if (es->ended)
			return -1;
		es->sent = 0;
		buf_reset(&es->out);
		if (events_fetch(es) == 0) {
			int active = store_eval_active(es->st, es->id);
			/* once idle, what came before the counters said so is logged: look again */
			if (active <= 0 && events_fetch(es) == 0)
				events_end(es);
			else if (active > 0 && util_mono() - es->last_out >= EVENTS_KEEPALIVE)
				buf_printf(&es->out, ": keepalive\n\n");
		}
		if (es->out.len == 0)
			return 0;
	}
	n = es->out.len - es->sent;
	if (n > max)
		n = max;
	memcpy(out, es->out.data + es->sent, n);
	es->sent += n;
	es->last_out = util_mono();
	return (long)n;
}

static void
events_done(void *ctx)
{
	struct events_stream *es = ctx;

	buf_free(&es->out);
	free(es);
}

static json_t *
get_events(struct http_request *req, void *ctx, int *status)
{
	const char *id = http_request_param(req, 0);
	const char *last = http_request_header(req, "Last-Event-ID");
	struct store *st = engine_store(api_engine(ctx));
	struct events_stream *es;
	long long after = 0;
	int after_k = 0;

	if (last == NULL)
		last = http_request_query(req, "last_event_id");
	if (util_is_uuid(id) && store_eval_tombstoned(st, id) == 1)
		return http_error(status, 410, "evaluation %s was deleted", id);
	if (!util_is_uuid(id) || store_eval_active(st, id) < 0)
		return http_error(status, 404, "not found");
	if (last != NULL && strcmp(last, "end") == 0) {
		*status = 204;
		return NULL;
	}
	if (last != NULL && events_parse_id(last, &after, &after_k) < 0)
		return http_error(status, 400, "bad Last-Event-ID: want an id this stream sent");
	es = xcalloc(1, sizeof(*es));
	es->st = st;
	buf_init(&es->out, EVENTS_BUF_MAX);
	snprintf(es->id, sizeof(es->id), "%s", id);
	es->after = after;
	es->after_k = after_k;
	buf_printf(&es->out, "retry: 1000\n\n");
	es->last_out = util_mono();
	if (http_request_respond_stream(req, "text/event-stream", events_fill, events_done,
	    es) < 0) {
		events_done(es);
		return http_error(status, 503, "too many event streams open on this node;"
		    " try again later");
	}
	*status = 200;
	return NULL;
}

const struct http_route api_events_routes[] = {
	{ "GET", "/evaluation/*/events", HTTP_BODY_NONE, HTTP_ROUTE_TOKEN, get_events },
	{ NULL, NULL, 0, 0, NULL },
};
